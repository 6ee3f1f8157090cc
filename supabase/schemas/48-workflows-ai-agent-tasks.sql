-- Workflows: AI agent tasks (ai_agent_tasks), the price list they are costed with (ai_model_prices), prompt templates.
-- What the workflow-worker calls for an ai_agent node: begin (budget, template, task row), complete or fail (tokens, cost).

-- An ai_agent node's run is claimed like any other (claim_workflow_runs); the worker then calls
-- begin_ai_agent_task(run, lease), which resolves the provider configuration (the node's provider_config_id, else the
-- organization's default), refuses the task when that configuration's monthly_budget_usd is spent, renders the
-- prompt from the execution context and writes one ai_agent_tasks row per run (a retry reuses it, attempt counts up).
-- The worker reads the key through ai_provider_api_key_for_request(), calls the provider with its official SDK and
-- ends with complete_ai_agent_task() (tokens from the provider's response, cost from ai_model_prices, then
-- complete_workflow_run) or fail_ai_agent_task() (then fail_workflow_run with its retryable classification).

create table public.ai_model_prices (
  provider text not null,
  model text not null,
  input_usd_per_million numeric(12, 4) not null,
  output_usd_per_million numeric(12, 4) not null,
  source text,
  updated_at timestamptz not null default now(),
  constraint ai_model_prices_pkey primary key (provider, model),
  constraint ai_model_prices_provider_known check (provider in ('openai', 'anthropic', 'google', 'local')),
  constraint ai_model_prices_model_length check (char_length(model) between 1 and 200),
  constraint ai_model_prices_not_negative check (input_usd_per_million >= 0 and output_usd_per_million >= 0)
);
comment on table public.ai_model_prices is 'Reference data: list price per million input (prompt) and output (completion) tokens, per provider and model, used to cost ai_agent_tasks. Not Stripe''s prices. A response model with a dated suffix (gpt-4o-mini-2024-07-18) is priced by the longest listed prefix.';
comment on column public.ai_model_prices.source is 'Where the price was read (the provider''s public pricing page) and when.';

-- Public list prices (USD per million tokens) as the providers published them; operators update them with a migration.
insert into public.ai_model_prices (provider, model, input_usd_per_million, output_usd_per_million, source) values
  ('openai', 'gpt-4o', 2.50, 10.00, 'openai.com/api/pricing, 2025'),
  ('openai', 'gpt-4o-mini', 0.15, 0.60, 'openai.com/api/pricing, 2025'),
  ('openai', 'gpt-4.1', 2.00, 8.00, 'openai.com/api/pricing, 2025'),
  ('openai', 'gpt-4.1-mini', 0.40, 1.60, 'openai.com/api/pricing, 2025'),
  ('openai', 'gpt-4.1-nano', 0.10, 0.40, 'openai.com/api/pricing, 2025'),
  ('anthropic', 'claude-3-5-haiku-20241022', 0.80, 4.00, 'anthropic.com/pricing, 2025'),
  ('anthropic', 'claude-sonnet-4-20250514', 3.00, 15.00, 'anthropic.com/pricing, 2025'),
  ('anthropic', 'claude-opus-4-20250514', 15.00, 75.00, 'anthropic.com/pricing, 2025'),
  ('google', 'gemini-2.0-flash', 0.10, 0.40, 'ai.google.dev/pricing, 2025'),
  ('google', 'gemini-2.5-pro', 1.25, 10.00, 'ai.google.dev/pricing, 2025 (prompts up to 200k tokens)');

create trigger ai_model_prices_set_updated_at before update on public.ai_model_prices
  for each row execute function private.set_updated_at();

alter table public.ai_model_prices enable row level security;
-- ai_model_prices_select: every signed-in user may read the price list.
create policy ai_model_prices_select on public.ai_model_prices for select to authenticated using (true);
grant select on public.ai_model_prices to authenticated, service_role;

create table public.ai_agent_tasks (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  execution_id uuid,
  workflow_run_id uuid,
  node_id text,
  provider_config_id uuid,
  provider text not null,
  model text not null,
  system_prompt text,
  prompt text not null,
  messages jsonb not null,
  input jsonb not null default '{}'::jsonb,
  output jsonb,
  status text not null default 'running',
  attempt integer not null default 1,
  max_retries integer not null default 0,
  timeout_ms integer not null default 60000,
  max_tokens integer,
  temperature numeric(3, 2),
  prompt_tokens integer,
  completion_tokens integer,
  total_tokens integer,
  cost_usd numeric(14, 8),
  latency_ms integer,
  error jsonb,
  started_at timestamptz not null default now(),
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint ai_agent_tasks_pkey primary key (id),
  constraint ai_agent_tasks_workflow_run_id_key unique (workflow_run_id),
  constraint ai_agent_tasks_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint ai_agent_tasks_execution_id_fkey foreign key (execution_id) references public.workflow_executions (id) on delete cascade,
  constraint ai_agent_tasks_workflow_run_id_fkey foreign key (workflow_run_id) references public.workflow_runs (id) on delete cascade,
  constraint ai_agent_tasks_provider_config_id_fkey foreign key (provider_config_id) references public.ai_provider_configs (id) on delete set null,
  constraint ai_agent_tasks_workflow_link_complete check ((execution_id is null) = (workflow_run_id is null) and (execution_id is null) = (node_id is null)),
  constraint ai_agent_tasks_status_known check (status in ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  constraint ai_agent_tasks_provider_known check (provider in ('openai', 'anthropic', 'google', 'local')),
  constraint ai_agent_tasks_messages_array check (jsonb_typeof(messages) = 'array'),
  constraint ai_agent_tasks_attempt_range check (attempt >= 1 and max_retries between 0 and 10),
  constraint ai_agent_tasks_timeout_range check (timeout_ms between 1 and 600000),
  constraint ai_agent_tasks_tokens_not_negative check (coalesce(prompt_tokens, 0) >= 0 and coalesce(completion_tokens, 0) >= 0
                                                       and coalesce(total_tokens, 0) >= 0 and coalesce(latency_ms, 0) >= 0),
  constraint ai_agent_tasks_cost_not_negative check (cost_usd is null or cost_usd >= 0),
  constraint ai_agent_tasks_completed_when_final check ((completed_at is not null) = (status in ('succeeded', 'failed', 'cancelled')))
);
comment on table public.ai_agent_tasks is 'One call of an AI provider: for an ai_agent node (one row per node run; retries count attempt up) or standalone (execution, run and node null). Tokens come from the provider''s response, cost_usd from ai_model_prices. Organization data, written by the workflow engine''s functions only.';
comment on column public.ai_agent_tasks.messages is 'The chat messages sent ([{"role", "content"}]), the rendered prompt included.';
comment on column public.ai_agent_tasks.input is 'The execution context the prompt was rendered from ({"input", "nodes"}).';
comment on column public.ai_agent_tasks.output is '{"text", "model"}: the answer and the model that gave it.';
comment on column public.ai_agent_tasks.status is 'running (a worker is calling the provider), queued (a retry is due), succeeded, failed, cancelled.';
comment on column public.ai_agent_tasks.cost_usd is 'prompt_tokens and completion_tokens at the ai_model_prices list price; null when the model has no listed price (a local model without a price row costs 0). Counts against the provider configuration''s monthly budget.';
comment on column public.ai_agent_tasks.latency_ms is 'Time the provider took to answer the last attempt, as the worker measured it.';

create index ai_agent_tasks_organization_id_idx on public.ai_agent_tasks (organization_id, created_at desc);
create index ai_agent_tasks_execution_id_idx on public.ai_agent_tasks (execution_id);
create index ai_agent_tasks_provider_config_id_idx on public.ai_agent_tasks (provider_config_id, created_at);

create trigger ai_agent_tasks_set_updated_at before update on public.ai_agent_tasks
  for each row execute function private.set_updated_at();
create trigger ai_agent_tasks_audit after insert or update or delete on public.ai_agent_tasks
  for each row execute function private.audit_row_change();

alter table public.ai_agent_tasks enable row level security;

-- ai_agent_tasks_select: members holding workflows.read see their organization's AI tasks (prompts, answers, cost);
-- narrowed in 57-work-automations.sql: a task of an execution follows the execution's visibility.
create policy ai_agent_tasks_select on public.ai_agent_tasks for select to authenticated
  using (organization_id in (select private.organizations_with_permission('workflows.read')));

-- Written only through the functions below.
grant select on public.ai_agent_tasks to authenticated, service_role;

-- {{input.x}} and {{nodes.<id>.y}} (any depth, array indexes as numbers) replaced by the value in the context:
-- strings as they are, other JSON values as JSON text. A reference the context does not hold raises 22023.
create function private.render_workflow_template(template text, context jsonb) returns text
language plpgsql immutable
set search_path = ''
as $$
declare
  pattern constant text := '\{\{\s*((?:input|nodes)(?:\.[A-Za-z0-9_-]+)+)\s*\}\}';
  pieces text[];
  refs text[];
  value jsonb;
  result text;
begin
  if template is null then
    return null;
  end if;
  pieces := pg_catalog.regexp_split_to_array(template, pattern);
  select coalesce(array_agg(m[1] order by n), array[]::text[]) into refs
  from pg_catalog.regexp_matches(template, pattern, 'g') with ordinality as x(m, n);
  result := pieces[1];
  for i in 1..coalesce(pg_catalog.array_length(refs, 1), 0) loop
    value := context #> pg_catalog.string_to_array(refs[i], '.');
    if value is null then
      raise exception 'the template refers to {{%}}, which the execution context does not hold', refs[i]
        using errcode = '22023', hint = 'Reference {{input.<key>}} or {{nodes.<node id>.<key>}} of a node that ran before this one.';
    end if;
    result := result || case when jsonb_typeof(value) = 'string' then value #>> '{}' else value::text end || pieces[i + 1];
  end loop;
  return result;
end;
$$;
comment on function private.render_workflow_template(text, jsonb) is 'Renders {{input.x}} and {{nodes.<id>.y}} from an execution context (strings as is, other values as JSON); 22023 for a reference the context does not hold.';

-- What a provider configuration has spent in the current calendar month (UTC).
create function private.ai_provider_month_spend(config_id uuid) returns numeric
language sql stable
set search_path = ''
as $$
  select coalesce(sum(t.cost_usd), 0)
  from public.ai_agent_tasks t
  where t.provider_config_id = config_id
    and t.created_at >= (pg_catalog.date_trunc('month', pg_catalog.now() at time zone 'UTC') at time zone 'UTC')
$$;
comment on function private.ai_provider_month_spend(uuid) is 'Sum of cost_usd of the AI tasks on a provider configuration since the start of the month (UTC).';

-- The cost of a call at list price: the exact model, else the longest listed prefix of it (dated model names).
-- A local model without a price row costs nothing; any other unlisted model has no known cost (null).
create function private.ai_task_cost(provider text, model text, prompt_tokens integer, completion_tokens integer)
returns numeric
language sql stable
set search_path = ''
as $$
  select coalesce(
    (select round((coalesce(prompt_tokens, 0) * p.input_usd_per_million
                   + coalesce(completion_tokens, 0) * p.output_usd_per_million) / 1000000.0, 8)
     from public.ai_model_prices p
     where p.provider = ai_task_cost.provider and (ai_task_cost.model = p.model or ai_task_cost.model like p.model || '-%')
     order by char_length(p.model) desc
     limit 1),
    case when provider = 'local' then 0 end)
$$;
comment on function private.ai_task_cost(text, text, integer, integer) is 'USD cost of a call from ai_model_prices (exact model, else the longest listed prefix); 0 for an unlisted local model, null for other unlisted models.';

-- Ends the task and the run when a task cannot be started (no provider, budget spent, a broken template): the run
-- fails without retry, so the execution fails with the reason.
create function private.refuse_ai_agent_task(run public.workflow_runs, lease_token uuid, task_fields jsonb, failure jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
begin
  if task_fields is not null then
    insert into public.ai_agent_tasks (organization_id, execution_id, workflow_run_id, node_id, provider_config_id, provider,
                                       model, prompt, messages, input, status, attempt, error, completed_at)
    values (run.organization_id, run.execution_id, run.id, run.node_id, (task_fields ->> 'provider_config_id')::uuid,
            task_fields ->> 'provider', task_fields ->> 'model', coalesce(task_fields ->> 'prompt', ''), '[]'::jsonb,
            coalesce(run.input -> 'context', '{}'::jsonb), 'failed', run.attempt, failure, pg_catalog.now())
    on conflict on constraint ai_agent_tasks_workflow_run_id_key do update
    set status = 'failed', attempt = excluded.attempt, error = excluded.error, completed_at = excluded.completed_at;
  end if;
  perform public.fail_workflow_run(run.id, lease_token, failure, false);
  return jsonb_build_object('status', 'refused', 'error', failure);
end;
$$;
comment on function private.refuse_ai_agent_task(public.workflow_runs, uuid, jsonb, jsonb) is 'Records a refused AI task (when its provider is known) and fails its run without retry. Internal to begin_ai_agent_task().';

create function public.begin_ai_agent_task(run_id uuid, lease_token uuid) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  run public.workflow_runs;
  config jsonb;
  provider_config public.ai_provider_configs;
  spent numeric;
  model text;
  system_prompt text;
  prompt text;
  messages jsonb;
  task uuid;
  fields jsonb;
begin
  -- Lock order: the execution first (as complete_workflow_run and fail_workflow_run take it).
  perform 1 from public.workflow_executions e
  where e.id = (select r.execution_id from public.workflow_runs r where r.id = begin_ai_agent_task.run_id) for update;
  select r.* into run from public.workflow_runs r
  where r.id = begin_ai_agent_task.run_id and r.lease_token = begin_ai_agent_task.lease_token and r.status = 'running'
    and r.locked_until >= pg_catalog.now();
  if run.id is null then
    return jsonb_build_object('status', 'lease_lost');
  end if;
  if run.node_type <> 'ai_agent' then
    raise exception 'run % is a % node, not an ai_agent node', run.id, run.node_type using errcode = '22023';
  end if;
  config := run.input -> 'node' -> 'config';

  select c.* into provider_config from public.ai_provider_configs c
  where c.organization_id = run.organization_id
    and case when config ? 'provider_config_id' then c.id = (config ->> 'provider_config_id')::uuid else c.is_default end;
  if provider_config.id is null then
    return private.refuse_ai_agent_task(run, lease_token, null, jsonb_build_object('code', 'provider_not_configured',
      'message', case when config ? 'provider_config_id'
                      then pg_catalog.format('AI provider configuration %s does not exist in this organization', config ->> 'provider_config_id')
                      else 'the organization has no default AI provider configuration (ai_provider_configs.is_default)' end));
  end if;
  model := coalesce(nullif(config ->> 'model', ''), provider_config.default_model);
  fields := jsonb_build_object('provider_config_id', provider_config.id, 'provider', provider_config.provider, 'model', model);

  if provider_config.monthly_budget_usd is not null then
    spent := private.ai_provider_month_spend(provider_config.id);
    if spent >= provider_config.monthly_budget_usd then
      return private.refuse_ai_agent_task(run, lease_token, fields, jsonb_build_object('code', 'budget_exceeded',
        'message', pg_catalog.format('AI provider configuration "%s" has spent its monthly budget of %s USD (%s USD this month, UTC); no new AI tasks run on it until the month ends or the budget is raised',
                                     provider_config.name, provider_config.monthly_budget_usd, round(spent, 4)),
        'provider_config_id', provider_config.id, 'monthly_budget_usd', provider_config.monthly_budget_usd, 'spent_usd', spent));
    end if;
  end if;

  begin
    prompt := private.render_workflow_template(config ->> 'prompt', run.input -> 'context');
    system_prompt := private.render_workflow_template(config ->> 'system', run.input -> 'context');
  exception when sqlstate '22023' then
    return private.refuse_ai_agent_task(run, lease_token, fields || jsonb_build_object('prompt', config ->> 'prompt'),
      jsonb_build_object('code', 'template_error', 'message', sqlerrm));
  end;
  messages := jsonb_build_array(jsonb_build_object('role', 'user', 'content', prompt));

  insert into public.ai_agent_tasks (organization_id, execution_id, workflow_run_id, node_id, provider_config_id, provider,
                                     model, system_prompt, prompt, messages, input, status, attempt, max_retries, timeout_ms,
                                     max_tokens, temperature)
  values (run.organization_id, run.execution_id, run.id, run.node_id, provider_config.id, provider_config.provider, model,
          system_prompt, prompt, messages, coalesce(run.input -> 'context', '{}'::jsonb), 'running', run.attempt,
          coalesce((config ->> 'max_retries')::integer, 0), coalesce((config ->> 'timeout_ms')::integer, 60000),
          (config ->> 'max_tokens')::integer, (config ->> 'temperature')::numeric)
  on conflict on constraint ai_agent_tasks_workflow_run_id_key do update
  set status = 'running', attempt = excluded.attempt, provider_config_id = excluded.provider_config_id,
      provider = excluded.provider, model = excluded.model, system_prompt = excluded.system_prompt,
      prompt = excluded.prompt, messages = excluded.messages, input = excluded.input, output = null, error = null,
      started_at = pg_catalog.now(), completed_at = null
  returning id into task;

  return jsonb_build_object('status', 'ready', 'task_id', task, 'provider_config_id', provider_config.id,
    'provider', provider_config.provider, 'base_url', provider_config.base_url, 'has_credentials', provider_config.has_credentials,
    'model', model, 'system', system_prompt, 'messages', messages, 'max_tokens', (config ->> 'max_tokens')::integer,
    'temperature', (config ->> 'temperature')::numeric, 'timeout_ms', coalesce((config ->> 'timeout_ms')::integer, 60000));
end;
$$;
comment on function public.begin_ai_agent_task(uuid, uuid) is 'workflow-worker (service_role): for a claimed ai_agent run, resolves the provider configuration, refuses when its monthly budget is spent (the run fails: budget_exceeded), renders the prompt and writes the ai_agent_tasks row. Returns {"status": "ready", task...}, {"status": "refused", "error"} or {"status": "lease_lost"}.';

create function public.complete_ai_agent_task(task_id uuid, lease_token uuid, output_text text, response_model text,
                                              prompt_tokens integer, completion_tokens integer, latency_ms integer)
returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  task public.ai_agent_tasks;
  cost numeric;
  outcome text;
begin
  select t.* into task from public.ai_agent_tasks t where t.id = complete_ai_agent_task.task_id;
  if task.id is null or task.workflow_run_id is null then
    raise exception 'no workflow AI task %', complete_ai_agent_task.task_id using errcode = 'P0002';
  end if;
  cost := private.ai_task_cost(task.provider, coalesce(nullif(response_model, ''), task.model), prompt_tokens, completion_tokens);
  outcome := public.complete_workflow_run(task.workflow_run_id, complete_ai_agent_task.lease_token,
    jsonb_build_object('text', output_text, 'model', coalesce(nullif(response_model, ''), task.model), 'task_id', task.id,
                       'usage', jsonb_build_object('prompt_tokens', prompt_tokens, 'completion_tokens', completion_tokens,
                                                   'total_tokens', coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0)),
                       'cost_usd', cost));
  -- The provider answered (and charged) either way, so the tokens and the cost are recorded even when the lease was lost.
  update public.ai_agent_tasks t
  set status = case when outcome = 'completed' then 'succeeded' else 'failed' end,
      output = jsonb_build_object('text', output_text, 'model', coalesce(nullif(response_model, ''), task.model)),
      error = case when outcome = 'completed' then null else jsonb_build_object('code', 'lease_lost') end,
      prompt_tokens = complete_ai_agent_task.prompt_tokens, completion_tokens = complete_ai_agent_task.completion_tokens,
      total_tokens = coalesce(complete_ai_agent_task.prompt_tokens, 0) + coalesce(complete_ai_agent_task.completion_tokens, 0),
      cost_usd = cost, latency_ms = greatest(complete_ai_agent_task.latency_ms, 0), completed_at = pg_catalog.now()
  where t.id = task.id;
  return outcome;
end;
$$;
comment on function public.complete_ai_agent_task(uuid, uuid, text, text, integer, integer, integer) is 'workflow-worker (service_role): records the provider''s answer, tokens and cost (ai_model_prices) and completes the run with {"text", "model", "task_id", "usage", "cost_usd"}. Returns completed or lease_lost (the usage is recorded either way).';

create function public.fail_ai_agent_task(task_id uuid, lease_token uuid, error jsonb, retryable boolean default true,
                                          latency_ms integer default null)
returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  task public.ai_agent_tasks;
  outcome text;
begin
  select t.* into task from public.ai_agent_tasks t where t.id = fail_ai_agent_task.task_id;
  if task.id is null or task.workflow_run_id is null then
    raise exception 'no workflow AI task %', fail_ai_agent_task.task_id using errcode = 'P0002';
  end if;
  outcome := public.fail_workflow_run(task.workflow_run_id, fail_ai_agent_task.lease_token, fail_ai_agent_task.error,
                                      fail_ai_agent_task.retryable);
  if outcome <> 'lease_lost' then
    update public.ai_agent_tasks t
    set status = case when outcome = 'retrying' then 'queued' else 'failed' end, error = fail_ai_agent_task.error,
        latency_ms = greatest(fail_ai_agent_task.latency_ms, 0),
        completed_at = case when outcome = 'retrying' then null else pg_catalog.now() end
    where t.id = task.id;
  end if;
  return outcome;
end;
$$;
comment on function public.fail_ai_agent_task(uuid, uuid, jsonb, boolean, integer) is 'workflow-worker (service_role): records a failed provider call and fails the run (retrying, failed or lease_lost, as fail_workflow_run decides).';

-- An execution that ends (cancelled, timed out, failed elsewhere) ends its AI tasks still running or queued.
create function private.end_ai_agent_tasks_of_finished_execution() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  update public.ai_agent_tasks t
  set status = 'cancelled', completed_at = pg_catalog.now(), error = coalesce(t.error, jsonb_build_object('code', 'execution_' || new.status))
  where t.execution_id = new.id and t.status in ('queued', 'running');
  return null;
end;
$$;
comment on function private.end_ai_agent_tasks_of_finished_execution() is 'AFTER UPDATE on workflow_executions: cancels the AI tasks still open when the execution is cancelled, times out or fails.';

create trigger workflow_executions_end_ai_agent_tasks after update on public.workflow_executions
  for each row when (old.completed_at is null and new.status in ('cancelled', 'timed_out', 'failed'))
  execute function private.end_ai_agent_tasks_of_finished_execution();

revoke execute on function public.begin_ai_agent_task(uuid, uuid),
  public.complete_ai_agent_task(uuid, uuid, text, text, integer, integer, integer),
  public.fail_ai_agent_task(uuid, uuid, jsonb, boolean, integer) from public, anon, authenticated;
grant execute on function public.begin_ai_agent_task(uuid, uuid),
  public.complete_ai_agent_task(uuid, uuid, text, text, integer, integer, integer),
  public.fail_ai_agent_task(uuid, uuid, jsonb, boolean, integer) to service_role;
