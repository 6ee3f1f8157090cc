-- AI agent tasks: the actor matrix of ai_agent_tasks, ai_model_prices and the worker's AI task functions; prompt
-- templates; costing from the price list (exact model, longest prefix, local, unlisted); the monthly budget stop
-- (this month's spend only, null is unlimited); a task's row follows its run through retry and failure.
begin;
select plan(42);

select tests.create_user(h) from unnest(array['t_owner', 't_admin', 't_member', 't_viewer', 't_stranger']) h;
select tests.create_organization('t_owner', 'test-ai-tasks');
select tests.add_member(tests.org_id('test-ai-tasks'), 't_admin', 'admin');
select tests.add_member(tests.org_id('test-ai-tasks'), 't_member', 'member');
select tests.add_member(tests.org_id('test-ai-tasks'), 't_viewer', 'viewer');

create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to anon, authenticated, service_role;
create function pg_temp.id(key text) returns uuid language sql stable as $$ select id from ids where name = key $$;
grant execute on function pg_temp.id(text) to anon, authenticated, service_role;

insert into public.ai_model_prices (provider, model, input_usd_per_million, output_usd_per_million)
values ('local', 'pgtap-model', 1000, 2000);
with c as (insert into public.ai_provider_configs (organization_id, name, provider, base_url, default_model, monthly_budget_usd, is_default)
           values (tests.org_id('test-ai-tasks'), 'Local', 'local', 'http://127.0.0.1:1/v1', 'pgtap-model', 0.05, true) returning id)
insert into ids select 'config', id from c;
with w as (insert into public.workflows (organization_id, name, definition) values (tests.org_id('test-ai-tasks'), 'Ask',
  '{"nodes": [{"id": "ask", "type": "ai_agent", "name": "Ask", "config": {"prompt": "Invoice {{input.invoice}}", "system": "Be brief", "max_retries": 1}}], "edges": []}')
  returning id)
insert into ids select 'workflow', id from w;

-- Prompt templates.
select is(private.render_workflow_template('{{input.a}} and {{ nodes.n-1.out.0 }} and {{input.obj}} and {{other}}',
            '{"input": {"a": "x", "obj": {"k": 1}}, "nodes": {"n-1": {"out": [7]}}}'),
          'x and 7 and {"k": 1} and {{other}}', 'templates render strings as they are, other values as JSON, and leave unknown braces alone');
select throws_ok($$select private.render_workflow_template('{{nodes.fetch.amount}}', '{"input": {}, "nodes": {}}')$$, '22023', null,
                 'a template reference the context does not hold is refused');

-- Costs.
select is(private.ai_task_cost('openai', 'gpt-4o-mini', 1000000, 1000000), 0.75::numeric, 'gpt-4o-mini costs 0.15 + 0.60 USD per million tokens each way');
select is(private.ai_task_cost('openai', 'gpt-4o-mini-2024-07-18', 1000000, 0), 0.15::numeric, 'a dated model name is priced by its longest listed prefix');
select is(private.ai_task_cost('openai', 'gpt-4o-2024-08-06', 1000000, 0), 2.5::numeric, 'gpt-4o- dated is priced as gpt-4o, not as gpt-4o-mini');
select is(private.ai_task_cost('local', 'llama-somewhere', 500, 500), 0::numeric, 'an unlisted local model costs nothing');
select is(private.ai_task_cost('openai', 'gpt-unknown', 500, 500), null::numeric, 'an unlisted hosted model has no known cost');

-- A worker's pass: begin, complete.
insert into ids values ('execution', public.start_workflow(pg_temp.id('workflow'), '{"invoice": "INV-9"}'));
select tests.authenticate_as_service_role();
insert into ids select 'run', id from public.claim_workflow_runs('pgtap', 100) where execution_id = pg_temp.id('execution');
create temporary table begun on commit drop as
  select public.begin_ai_agent_task(pg_temp.id('run'), (select lease_token from public.workflow_runs where id = pg_temp.id('run'))) as b;
select tests.clear_authentication();
select is((select b ->> 'status' from begun), 'ready', 'begin_ai_agent_task readies the task');
select is((select b -> 'messages' from begun), '[{"role": "user", "content": "Invoice INV-9"}]'::jsonb, 'the prompt is rendered from the execution input');
select is((select b ->> 'provider_config_id' from begun)::uuid, pg_temp.id('config'), 'without provider_config_id the organization default is used');
select is((select b ->> 'system' from begun), 'Be brief', 'the system prompt is passed on');
select results_eq($$select status, attempt, max_retries, model from public.ai_agent_tasks where workflow_run_id = pg_temp.id('run')$$,
                  $$values ('running'::text, 1, 1, 'pgtap-model'::text)$$, 'one ai_agent_tasks row per run, running, with the default model');
select tests.authenticate_as_service_role();
select is(public.complete_ai_agent_task((select (b ->> 'task_id')::uuid from begun),
            (select lease_token from public.workflow_runs where id = pg_temp.id('run')), 'Done', 'pgtap-model', 20, 10, 123),
          'completed', 'complete_ai_agent_task completes the run');
select tests.clear_authentication();
select results_eq($$select status, prompt_tokens, completion_tokens, total_tokens, cost_usd, latency_ms from public.ai_agent_tasks where workflow_run_id = pg_temp.id('run')$$,
                  $$values ('succeeded'::text, 20, 10, 30, 0.04::numeric, 123)$$, 'tokens, cost (20 * 1000 + 10 * 2000 per million) and latency are recorded');
select is((select output -> 'ask' ->> 'text' from public.workflow_executions where id = pg_temp.id('execution')), 'Done',
          'the execution succeeds with the answer');

-- The budget: 0.04 of 0.05 spent lets one more task start; then 0.08 of 0.05 stops the next.
create function pg_temp.begin_next(label text) returns jsonb language plpgsql as $$
declare
  ex uuid := public.start_workflow(pg_temp.id('workflow'), '{"invoice": "INV-10"}');
  r public.workflow_runs;
  result jsonb;
begin
  insert into ids values (label, ex);
  perform tests.authenticate_as_service_role();
  select * into r from public.claim_workflow_runs('pgtap', 100) c where c.execution_id = ex;
  result := public.begin_ai_agent_task(r.id, r.lease_token);
  if result ->> 'status' = 'ready' then
    perform public.complete_ai_agent_task((result ->> 'task_id')::uuid, r.lease_token, 'ok', 'pgtap-model', 20, 10, 1);
  end if;
  perform tests.clear_authentication();
  return result;
end;
$$;
select is(pg_temp.begin_next('second') ->> 'status', 'ready', 'under the monthly budget a task starts');
create temporary table refused on commit drop as select pg_temp.begin_next('third') as r;
select is((select r ->> 'status' from refused), 'refused', 'once the monthly budget is spent no new task starts');
select is((select r -> 'error' ->> 'code' from refused), 'budget_exceeded', 'the refusal says budget_exceeded');
select matches((select r -> 'error' ->> 'message' from refused), 'monthly budget of 0.05 USD', 'the message names the budget');
select results_eq($$select e.status::text, e.error -> 'error' ->> 'code', (select t.status from public.ai_agent_tasks t where t.execution_id = e.id)
                    from public.workflow_executions e where e.id = pg_temp.id('third')$$,
                  $$values ('failed'::text, 'budget_exceeded'::text, 'failed'::text)$$, 'the refused task and its execution fail at once');
select is((select attempt from public.workflow_runs where execution_id = pg_temp.id('third')), 1, 'a budget refusal is not retried');
update public.ai_agent_tasks set created_at = now() - interval '1 month' - interval '1 day'
where organization_id = tests.org_id('test-ai-tasks') and status = 'succeeded';
select is(pg_temp.begin_next('next_month') ->> 'status', 'ready', 'spending of earlier months does not count');
update public.ai_provider_configs set monthly_budget_usd = null where id = pg_temp.id('config');
update public.ai_agent_tasks set created_at = now() where organization_id = tests.org_id('test-ai-tasks');
select is(pg_temp.begin_next('unlimited') ->> 'status', 'ready', 'a null budget is unlimited');

-- A retryable failure keeps the task queued for the next attempt; a provider that is not configured refuses.
insert into ids values ('retry', public.start_workflow(pg_temp.id('workflow'), '{"invoice": "INV-11"}'));
select tests.authenticate_as_service_role();
create temporary table retry_run on commit drop as select * from public.claim_workflow_runs('pgtap', 100) where execution_id = pg_temp.id('retry');
create temporary table retry_task on commit drop as select public.begin_ai_agent_task((select id from retry_run), (select lease_token from retry_run)) as b;
select is(public.fail_ai_agent_task((select (b ->> 'task_id')::uuid from retry_task), (select lease_token from retry_run), '{"code": "http_500"}', true),
          'retrying', 'a retryable failure with attempts left is retried');
select tests.clear_authentication();
select results_eq($$select status, error ->> 'code', completed_at is null from public.ai_agent_tasks where execution_id = pg_temp.id('retry')$$,
                  $$values ('queued'::text, 'http_500'::text, true)$$, 'the task waits, queued, for its next attempt');
select lives_ok($$select public.cancel_workflow_execution(pg_temp.id('retry'), 'no longer needed')$$, 'the execution can be cancelled');
select is((select status from public.ai_agent_tasks where execution_id = pg_temp.id('retry')), 'cancelled', 'cancelling the execution cancels its open AI task');
update public.ai_provider_configs set is_default = false where id = pg_temp.id('config');
insert into ids values ('no_provider', public.start_workflow(pg_temp.id('workflow'), '{"invoice": "INV-12"}'));
select is((select e.error -> 'error' ->> 'code' from public.workflow_executions e where e.id = pg_temp.id('no_provider')), null,
          'the execution waits for a worker');
select tests.authenticate_as_service_role();
select is((select public.begin_ai_agent_task(c.id, c.lease_token) -> 'error' ->> 'code' from public.claim_workflow_runs('pgtap', 100) c
           where c.execution_id = pg_temp.id('no_provider')), 'provider_not_configured', 'without a default provider the task is refused');
select tests.clear_authentication();

-- Who sees AI tasks: workflows.read holders of the organization, and the service role.
select tests.authenticate_as('t_owner');
select is((select count(*)::integer from public.ai_agent_tasks where organization_id = tests.org_id('test-ai-tasks')), 6, 'the owner sees the organization''s AI tasks');
select tests.authenticate_as('t_admin');
select is((select count(*)::integer from public.ai_agent_tasks where organization_id = tests.org_id('test-ai-tasks')), 6, 'an admin sees them');
select tests.authenticate_as('t_member');
select is((select count(*)::integer from public.ai_agent_tasks where organization_id = tests.org_id('test-ai-tasks')), 6, 'a member sees them (workflows.read)');
select tests.authenticate_as('t_viewer');
select is((select count(*)::integer from public.ai_agent_tasks where organization_id = tests.org_id('test-ai-tasks')), 6, 'a viewer sees them (workflows.read)');
select cmp_ok((select count(*)::integer from public.ai_model_prices), '>=', 10, 'a signed-in user reads the price list');
select throws_ok($$update public.ai_agent_tasks set cost_usd = 0$$, '42501', null, 'a member cannot change an AI task');
select throws_ok($$insert into public.ai_model_prices (provider, model, input_usd_per_million, output_usd_per_million) values ('openai', 'x', 0, 0)$$,
                 '42501', null, 'a member cannot change the price list');
select throws_ok($$select public.begin_ai_agent_task(gen_random_uuid(), gen_random_uuid())$$, '42501', null, 'a member cannot begin an AI task');
select throws_ok($$select public.complete_ai_agent_task(gen_random_uuid(), gen_random_uuid(), 'x', 'm', 1, 1, 1)$$, '42501', null,
                 'a member cannot complete an AI task');
select tests.authenticate_as('t_stranger');
select is((select count(*)::integer from public.ai_agent_tasks where organization_id = tests.org_id('test-ai-tasks')), 0, 'a stranger sees none');
select tests.authenticate_as_anon();
select throws_ok($$select 1 from public.ai_agent_tasks$$, '42501', null, 'anon cannot read AI tasks');
select throws_ok($$select 1 from public.ai_model_prices$$, '42501', null, 'anon cannot read the price list');
select tests.authenticate_as_service_role();
select is((select count(*)::integer from public.ai_agent_tasks where organization_id = tests.org_id('test-ai-tasks')), 6, 'the service role sees them');
select tests.clear_authentication();

select * from finish();
rollback;
