-- Executions and the step queue: starting (idempotency, pinned version, refusals), claiming with leases, completing
-- and failing with the lease token, retries with backoff, the graph advancing (conditions, skipped branches, joins,
-- final outputs), cancellation, the state machine, deadlines, expired leases and scheduled starts.
begin;
select plan(71);

-- The test owns the queue: runs that are already due (demo data) wait until after this rolled-back transaction.
update public.workflow_runs set run_at = 'infinity' where status in ('queued', 'running');

select tests.create_user('x_owner');
select tests.create_organization('x_owner', 'test-executions');

create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to authenticated, service_role;
create function pg_temp.id(key text) returns uuid language sql stable as $$ select id from ids where name = key $$;
grant execute on function pg_temp.id(text) to authenticated, service_role;
create function pg_temp.run(node text, execution text default 'main') returns public.workflow_runs language sql stable as $$
  select r from public.workflow_runs r where r.execution_id = pg_temp.id(execution) and r.node_id = node
$$;
grant execute on function pg_temp.run(text, text) to authenticated, service_role;
create function pg_temp.status(execution text default 'main') returns text language sql stable as $$
  select e.status from public.workflow_executions e where e.id = pg_temp.id(execution)
$$;
grant execute on function pg_temp.status(text) to authenticated, service_role;
-- Moves time on for one execution's runs: backoffs and leases end now (the transaction's clock stands still).
create function pg_temp.due(execution text) returns void language sql security definer set search_path = '' as $$
  update public.workflow_runs set run_at = now() - interval '1 second',
    locked_until = case when locked_until is not null then now() - interval '1 second' end
  where execution_id = pg_temp.id(execution) and status in ('queued', 'running')
$$;
grant execute on function pg_temp.due(text) to authenticated, service_role;
-- The deadline the timeout job tracks for an execution (private.workflow_execution_deadlines), or null.
create function pg_temp.tracked(execution text) returns timestamptz language sql security definer set search_path = '' as $$
  select d.deadline from private.workflow_execution_deadlines d where d.execution_id = pg_temp.id(execution)
$$;
grant execute on function pg_temp.tracked(text) to authenticated, service_role;

-- fetch -> gate (amount > 100) -> big (true) | small (false) -> join
with w as (insert into public.workflows (organization_id, name, definition) values (tests.org_id('test-executions'), 'Graph',
  '{"nodes": [{"id": "fetch", "type": "task", "name": "Fetch", "config": {"action": "http_request", "params": {"url": "https://example.com"}}},
              {"id": "gate", "type": "condition", "name": "Big?", "config": {"expression": "$.input.amount > 100 && $.nodes.fetch.ok == true"}},
              {"id": "big", "type": "task", "name": "Big", "config": {"action": "emit_event"}},
              {"id": "small", "type": "ai_agent", "name": "Small", "config": {"prompt": "Note {{input.amount}}", "max_retries": 4}},
              {"id": "join", "type": "task", "name": "Join", "config": {"action": "emit_event"}}],
    "edges": [{"from": "fetch", "to": "gate"}, {"from": "gate", "to": "big", "when": true}, {"from": "gate", "to": "small", "when": false},
              {"from": "big", "to": "join"}, {"from": "small", "to": "join"}]}') returning id)
insert into ids select 'graph', id from w;

-- Starting.
select tests.authenticate_as('x_owner');
insert into ids values ('main', public.start_workflow(pg_temp.id('graph'), '{"amount": 500}', 'order-1'));
select results_eq($$select e.status::text, e.trigger_type::text, e.triggered_by, v.version, e.deadline = e.started_at + interval '24 hours', e.correlation_id is not null
                  from public.workflow_executions e join public.workflow_versions v on v.id = e.workflow_version_id where e.id = pg_temp.id('main')$$,
  $$values ('queued'::text, 'manual'::text, tests.user_id('x_owner'), 1, true, true)$$,
  'a start is queued, manual, by its caller, pinned to version 1, with a deadline and a correlation id');
select is(public.start_workflow(pg_temp.id('graph'), '{"amount": 1}', 'order-1'), pg_temp.id('main'), 'the same idempotency key returns the existing execution');
select is((select count(*)::integer from public.workflow_executions where workflow_id = pg_temp.id('graph')), 1, 'and starts nothing new');
select results_eq($$select status::text, attempt, max_attempts::integer, input -> 'node' -> 'config' ->> 'action', input -> 'context' -> 'input' ->> 'amount' from public.workflow_runs where execution_id = pg_temp.id('main')$$,
  $$values ('queued'::text, 0, 3, 'http_request'::text, '500'::text)$$, 'only the entry node is queued, with its config and the context');
select throws_ok($$select public.start_workflow(pg_temp.id('graph'), '[1]')$$, '22023', null, 'an input that is not an object is refused');
select tests.clear_authentication();
update public.workflows set is_active = false where id = pg_temp.id('graph');
select throws_ok($$select public.start_workflow(pg_temp.id('graph'), '{}')$$, '55000', null, 'an inactive workflow cannot be started');
update public.workflows set is_active = true, deleted_at = now() where id = pg_temp.id('graph');
select throws_ok($$select public.start_workflow(pg_temp.id('graph'), '{}')$$, '55000', null, 'a deleted workflow cannot be started');
update public.workflows set deleted_at = null where id = pg_temp.id('graph');
select throws_ok($$select public.start_workflow(gen_random_uuid(), '{}')$$, 'P0002', null, 'the service side learns that a workflow does not exist');

-- Claiming: one UPDATE ... RETURNING with a fresh lease.
select tests.authenticate_as_service_role();
select throws_ok($$select * from public.claim_workflow_runs('w1', 0)$$, '22023', null, 'a claim of zero runs is refused');
insert into ids select 'lease1', lease_token from public.claim_workflow_runs('w1', 10, '5 minutes');
select results_eq($$select status::text, attempt, locked_by, locked_until = now() + interval '5 minutes', run_at = locked_until, lease_token = pg_temp.id('lease1')
                  from public.workflow_runs where execution_id = pg_temp.id('main')$$,
  $$values ('running'::text, 1, 'w1'::text, true, true, true)$$, 'a claim leases the run to its worker with a fresh token');
select is(pg_temp.status(), 'running', 'the first claim makes the execution running');
select is_empty($$select * from public.claim_workflow_runs('w2')$$, 'a leased run is not claimed again while its lease lasts');
select is(public.complete_workflow_run((pg_temp.run('fetch')).id, gen_random_uuid(), '{"ok": true}'), 'lease_lost', 'a completion with another token is lease_lost');
select is((pg_temp.run('fetch')).status, 'running', 'and changes nothing');
select throws_ok($$select public.complete_workflow_run(gen_random_uuid(), gen_random_uuid(), '{}')$$, 'P0002', null, 'completing a run that does not exist is an error');

-- Completion advances the graph: the condition is evaluated at once, the false branch is skipped.
select is(public.complete_workflow_run((pg_temp.run('fetch')).id, pg_temp.id('lease1'), '{"ok": true}'), 'completed', 'the current token completes the run');
select results_eq($$select node_id, status::text, output from public.workflow_runs where execution_id = pg_temp.id('main') order by node_id$$,
  $$values ('big'::text, 'queued'::text, null::jsonb), ('fetch', 'succeeded', '{"ok": true}'), ('gate', 'succeeded', '{"result": true}'), ('small', 'skipped', null)$$,
  'the condition chose its true edge, its false branch is skipped and the join waits');
select is((pg_temp.run('fetch')).lease_token, null, 'a completed run holds no lease');
insert into ids select 'lease2', lease_token from public.claim_workflow_runs('w1');
select is(public.complete_workflow_run((pg_temp.run('big')).id, pg_temp.id('lease2'), '{"sent": 1}'), 'completed', 'the true branch completes');
select is((pg_temp.run('join')).status, 'queued', 'the join is enqueued once its predecessors are done (one succeeded, one skipped)');
select is(((pg_temp.run('join')).input -> 'context' -> 'nodes'), '{"big": {"sent": 1}, "gate": {"result": true}, "fetch": {"ok": true}}'::jsonb,
  'a run sees the outputs of the nodes before it');
insert into ids select 'lease3', lease_token from public.claim_workflow_runs('w1');
select is(public.complete_workflow_run((pg_temp.run('join')).id, pg_temp.id('lease3'), '{"done": true}'), 'completed', 'the final node completes');
select results_eq($$select status::text, output, completed_at is not null from public.workflow_executions where id = pg_temp.id('main')$$,
  $$values ('succeeded'::text, '{"join": {"done": true}}'::jsonb, true)$$, 'the execution succeeds with the output of its final node');

-- The other branch, and an ai_agent's retries from its config.
insert into ids values ('small', public.start_workflow(pg_temp.id('graph'), '{"amount": 5}'));
insert into ids select 'lease4', lease_token from public.claim_workflow_runs('w1');
select public.complete_workflow_run((pg_temp.run('fetch', 'small')).id, pg_temp.id('lease4'), '{"ok": true}');
select results_eq($$select node_id, status::text, max_attempts::integer from public.workflow_runs where execution_id = pg_temp.id('small') and node_id in ('big', 'small') order by node_id$$,
  $$values ('big'::text, 'skipped'::text, 3), ('small', 'queued', 5)$$, 'a false result takes the false edge; an ai_agent runs max_retries + 1 times');

-- Failure: retries with exponential backoff and jitter, then the execution fails.
insert into ids select 'lease5', lease_token from public.claim_workflow_runs('w1');
select is(public.fail_workflow_run((pg_temp.run('small', 'small')).id, pg_temp.id('lease5'), '{"message": "503"}'), 'retrying', 'a retryable failure with attempts left is retried');
select results_eq($$select status::text, attempt, error, lease_token is null, run_at between now() + interval '5 seconds' and now() + interval '10 seconds'
                  from public.workflow_runs where id = (pg_temp.run('small', 'small')).id$$,
  $$values ('queued'::text, 1, '{"message": "503"}'::jsonb, true, true)$$, 'the first retry waits 5-10 s (10 s base, equal jitter)');
select is_empty($$select * from public.claim_workflow_runs('w1')$$, 'a run backing off is not due');
select pg_temp.due('small');
delete from ids where name = 'lease5';
insert into ids select 'lease5', lease_token from public.claim_workflow_runs('w1');
select is(public.fail_workflow_run((pg_temp.run('small', 'small')).id, pg_temp.id('lease5'), '{"message": "503"}'), 'retrying', 'the second failure is retried too');
select ok((select run_at between now() + interval '10 seconds' and now() + interval '20 seconds' from public.workflow_runs where id = (pg_temp.run('small', 'small')).id),
  'and waits twice as long (10-20 s)');
select is(public.fail_workflow_run((pg_temp.run('small', 'small')).id, pg_temp.id('lease5'), '{}'), 'lease_lost', 'a failure reported with a spent token is lease_lost');
select pg_temp.due('small');
delete from ids where name = 'lease5';
insert into ids select 'lease5', lease_token from public.claim_workflow_runs('w1');
select is(public.fail_workflow_run((pg_temp.run('small', 'small')).id, pg_temp.id('lease5'), '{"message": "bad request"}', false), 'failed', 'a failure that is not retryable fails at once');
select results_eq($$select status::text, error ->> 'code', error ->> 'node_id', (error ->> 'attempts')::integer from public.workflow_executions where id = pg_temp.id('small')$$,
  $$values ('failed'::text, 'node_failed'::text, 'small'::text, 3)$$, 'and fails the execution, naming the node');

-- Attempts run out.
insert into ids values ('retries', public.start_workflow(pg_temp.id('graph'), '{"amount": 5}'));
select tests.clear_authentication();
update public.workflow_runs set max_attempts = 2 where execution_id = pg_temp.id('retries');
select tests.authenticate_as_service_role();
insert into ids select 'lease6', lease_token from public.claim_workflow_runs('w1');
select public.fail_workflow_run((pg_temp.run('fetch', 'retries')).id, pg_temp.id('lease6'), '{}');
select pg_temp.due('retries');
delete from ids where name = 'lease6';
insert into ids select 'lease6', lease_token from public.claim_workflow_runs('w1');
select is(public.fail_workflow_run((pg_temp.run('fetch', 'retries')).id, pg_temp.id('lease6'), '{}'), 'failed', 'the last allowed attempt fails even when retryable');
select is(pg_temp.status('retries'), 'failed', 'and the execution fails');

-- A worker that dies: its lease expires, another worker claims the run, the first one's late completion is refused.
insert into ids values ('lease', public.start_workflow(pg_temp.id('graph'), '{"amount": 500}'));
insert into ids select 'dead', lease_token from public.claim_workflow_runs('dying-worker', 1, '30 seconds');
select pg_temp.due('lease');
select is(public.complete_workflow_run((pg_temp.run('fetch', 'lease')).id, pg_temp.id('dead'), '{"ok": true}'), 'lease_lost', 'a completion after the lease expired is lease_lost');
insert into ids select 'alive', lease_token from public.claim_workflow_runs('w2', 1);
select results_eq($$select locked_by, attempt from public.workflow_runs where execution_id = pg_temp.id('lease') and node_id = 'fetch'$$,
  $$values ('w2'::text, 2)$$, 'a run whose lease expired is claimed again, as a new attempt');
select is(public.complete_workflow_run((pg_temp.run('fetch', 'lease')).id, pg_temp.id('dead'), '{"ok": true}'), 'lease_lost', 'the first worker''s token is refused');
select is(public.complete_workflow_run((pg_temp.run('fetch', 'lease')).id, pg_temp.id('alive'), '{"ok": true}'), 'completed', 'the second worker''s completes');

-- Cancelling.
select tests.authenticate_as('x_owner');
select is((public.cancel_workflow_execution(pg_temp.id('lease'), 'no longer needed')).status, 'cancelled', 'the owner cancels a running execution');
select tests.authenticate_as_service_role();
select results_eq($$select status::text, count(*)::integer from public.workflow_runs where execution_id = pg_temp.id('lease') group by status order by status$$,
  $$values ('cancelled'::text, 1), ('skipped', 1), ('succeeded', 2)$$, 'its queued run is cancelled');
select is((select error ->> 'reason' from public.workflow_executions where id = pg_temp.id('lease')), 'no longer needed', 'the reason is kept');
select throws_ok($$select public.cancel_workflow_execution(pg_temp.id('lease'), 'again')$$, '55000', null, 'a finished execution cannot be cancelled');
select is_empty($$select * from public.claim_workflow_runs('w1') where execution_id = pg_temp.id('lease')$$, 'nothing of a cancelled execution is claimed');
insert into ids values ('cancel-held', public.start_workflow(pg_temp.id('graph'), '{}'));
insert into ids select 'held', lease_token from public.claim_workflow_runs('w1', 1);
select public.cancel_workflow_execution(pg_temp.id('cancel-held'), 'stop');
select is(public.complete_workflow_run((pg_temp.run('fetch', 'cancel-held')).id, pg_temp.id('held'), '{}'), 'lease_lost', 'a worker finishing a run of a cancelled execution gets lease_lost');

-- The state machine.
select tests.clear_authentication();
select throws_ok($$update public.workflow_executions set status = 'running' where id = pg_temp.id('main')$$, '55000', null, 'succeeded is final');
select throws_ok($$update public.workflow_executions set status = 'succeeded' where id = pg_temp.id('lease')$$, '55000', null, 'cancelled is final');
insert into ids values ('sm', public.start_workflow(pg_temp.id('graph'), '{}'));
select is(pg_temp.tracked('sm'), (select deadline from public.workflow_executions where id = pg_temp.id('sm')),
  'an unfinished execution with a timeout is tracked for the timeout job at its deadline');
select is(pg_temp.tracked('lease'), null, 'a cancelled one no longer is');
update public.workflow_executions set status = 'running' where id = pg_temp.id('sm');
select throws_ok($$update public.workflow_executions set status = 'queued' where id = pg_temp.id('sm')$$, '55000', null, 'a running execution never goes back to queued');
update public.workflow_executions set status = 'waiting' where id = pg_temp.id('sm');
select is(pg_temp.status('sm'), 'waiting', 'running -> waiting is allowed');
-- The columns' shapes are domains; the CHECKs that relate two columns stay on the tables.
select set_eq($$select conrelid::regclass::text || '.' || conname from pg_constraint
                where contype = 'c' and conrelid in ('public.workflow_executions'::regclass, 'public.workflow_runs'::regclass)$$,
  $$values ('workflow_executions.workflow_executions_completed_when_final'), ('workflow_runs.workflow_runs_attempts_range'),
           ('workflow_runs.workflow_runs_lease_when_running')$$,
  'the queue tables keep only their two-column CHECKs (a table CHECK is prepared again for every statement; a domain is not)');
select throws_ok($$update public.workflow_executions set status = 'paused' where id = pg_temp.id('sm')$$, '23514',
  'value for domain workflow_execution_status violates check constraint "workflow_execution_status_known"', 'an unknown execution status is refused by its domain');
select throws_ok($$update public.workflow_runs set status = 'done' where execution_id = pg_temp.id('sm')$$, '23514',
  'value for domain workflow_run_status violates check constraint "workflow_run_status_known"', 'an unknown run status is refused by its domain');
select throws_ok($$select public.start_workflow(pg_temp.id('graph'), '{}', '')$$, '23514',
  'value for domain public.workflow_idempotency_key violates check constraint "workflow_idempotency_key_length"', 'an empty idempotency key is refused by its domain');
select throws_ok($$update public.workflow_executions set completed_at = now() where id = pg_temp.id('sm')$$, '23514',
  'new row for relation "workflow_executions" violates check constraint "workflow_executions_completed_when_final"', 'an unfinished execution has no completed_at');
select throws_ok($$update public.workflow_executions set status = 'queued', completed_at = now() where id = pg_temp.id('sm')$$, '23514',
  'new row for relation "workflow_executions" violates check constraint "workflow_executions_completed_when_final"',
  'back to queued with a completed_at is refused too (by the constraint: the transition trigger''s WHEN lets it pass)');

-- Deadlines and expired last attempts (pg_cron).
update public.workflow_executions set deadline = now() - interval '1 second' where id = pg_temp.id('sm');
select is(pg_temp.tracked('sm'), now() - interval '1 second', 'a changed deadline is tracked as changed');
select is(private.expire_workflow_executions(), 1, 'the deadline job times out the overdue execution');
select is(pg_temp.tracked('sm'), null, 'and stops tracking it');
select results_eq($$select e.status::text, e.error ->> 'code', (select r.status::text from public.workflow_runs r where r.execution_id = e.id) from public.workflow_executions e where e.id = pg_temp.id('sm')$$,
  $$values ('timed_out'::text, 'deadline_exceeded'::text, 'cancelled'::text)$$, 'timed out, with its queued run cancelled');
insert into ids values ('exhausted', public.start_workflow(pg_temp.id('graph'), '{}'));
update public.workflow_runs set max_attempts = 1 where execution_id = pg_temp.id('exhausted');
select tests.authenticate_as_service_role();
select ok((select count(*) = 1 from public.claim_workflow_runs('w1', 1) where execution_id = pg_temp.id('exhausted')), 'the only attempt is claimed');
select tests.clear_authentication();
update public.workflow_runs set run_at = now() - interval '1 second', locked_until = now() - interval '1 second' where execution_id = pg_temp.id('exhausted');
select tests.authenticate_as_service_role();
select is_empty($$select * from public.claim_workflow_runs('w1') where execution_id = pg_temp.id('exhausted')$$, 'a run with no attempt left is not claimed again');
select tests.clear_authentication();
select private.expire_workflow_executions();
select results_eq($$select pg_temp.status('exhausted'), (pg_temp.run('fetch', 'exhausted')).status::text, (pg_temp.run('fetch', 'exhausted')).error ->> 'code'$$,
  $$values ('failed'::text, 'failed'::text, 'lease_expired'::text)$$, 'the deadline job fails a run whose last lease expired, and its execution');

-- A graph of conditions only finishes without any worker.
with w as (insert into public.workflows (organization_id, name, definition) values (tests.org_id('test-executions'), 'Conditions',
  '{"nodes": [{"id": "vip", "type": "condition", "name": "VIP?", "config": {"expression": "$.input.tier == \"gold\""}},
              {"id": "notify", "type": "task", "name": "Notify", "config": {"action": "emit_event"}}],
    "edges": [{"from": "vip", "to": "notify", "when": true}]}') returning id)
insert into ids select 'conditions', id from w;
insert into ids values ('cond', public.start_workflow(pg_temp.id('conditions'), '{"tier": "silver"}'));
select results_eq($$select status::text, output, trigger_type::text from public.workflow_executions where id = pg_temp.id('cond')$$,
  $$values ('succeeded'::text, '{}'::jsonb, 'manual'::text)$$, 'a start that only skips succeeds at once with no final output');

-- Scheduled starts: each cron occurrence once, even when the job runs twice.
with w as (insert into public.workflows (organization_id, name, definition, trigger_type, trigger_config) values (tests.org_id('test-executions'), 'Every 5',
  '{"nodes": [{"id": "tick", "type": "task", "name": "Tick", "config": {"action": "emit_event"}}], "edges": []}', 'scheduled', '{"cron": "*/5 * * * *"}') returning id)
insert into ids select 'scheduled', id from w;
select is(private.start_scheduled_workflows('2026-12-01 10:05:20+00'), 1, 'the 10:05 occurrence of */5 starts');
select is(private.start_scheduled_workflows('2026-12-01 10:05:50+00'), 0, 'a second tick in the same minute starts nothing');
select is(private.start_scheduled_workflows('2026-12-01 10:06:10+00'), 0, 'nor does the next minute, which still looks back at 10:05');
select is(private.start_scheduled_workflows('2026-12-01 10:11:05+00'), 1, 'a tick late into 10:11 still starts the 10:10 occurrence');
select results_eq($$select scheduled_for, trigger_type::text, triggered_by, input ->> 'scheduled_for' is not null from public.workflow_executions where workflow_id = pg_temp.id('scheduled') order by scheduled_for$$,
  $$values ('2026-12-01 10:05:00+00'::timestamptz, 'scheduled'::text, null::uuid, true), ('2026-12-01 10:10:00+00', 'scheduled', null, true)$$,
  'scheduled executions record their occurrence and have no triggering user');
update public.workflows set is_active = false where id = pg_temp.id('scheduled');
select is(private.start_scheduled_workflows('2026-12-01 10:15:05+00'), 0, 'an inactive scheduled workflow does not start');

-- The jobs exist.
select ok((select count(*) = 4 from cron.job where jobname in ('workflow-deadlines', 'workflow-schedules', 'approval-escalation', 'approval-expiry') and schedule = '* * * * *'),
  'pg_cron runs the deadline, schedule, escalation and expiry jobs every minute');

select * from finish();
rollback;
