-- Workflows: executions (workflow_executions, a state machine) and the step queue (workflow_runs, one row per node run).
-- Starting, claiming, completing, failing and cancelling; the graph advances inside the database.

-- Lock order, everywhere: an execution row before its runs (claims never wait: they skip locked rows of both).
-- Completion and failure of a run, cancellation, timers and approval decisions all lock the execution first, so two
-- branches finishing at once advance the graph one after the other and a join node is enqueued exactly once.

-- The columns' shapes are domains (45-workflows-definitions.sql says why); the CHECKs left on these two tables are
-- the ones that relate two columns.
create table public.workflow_executions (
  id uuid not null default gen_random_uuid(),
  workflow_id uuid not null,
  workflow_version_id uuid not null,
  organization_id uuid not null,
  status public.workflow_execution_status not null default 'queued',
  input public.jsonb_object not null default '{}'::jsonb,
  output jsonb,
  error jsonb,
  trigger_type public.workflow_trigger_type not null,
  triggered_by uuid,
  correlation_id text not null default gen_random_uuid()::text,
  idempotency_key public.workflow_idempotency_key,
  scheduled_for timestamptz,
  started_at timestamptz not null default now(),
  completed_at timestamptz,
  deadline timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint workflow_executions_pkey primary key (id),
  constraint workflow_executions_workflow_id_fkey foreign key (workflow_id) references public.workflows (id) on delete cascade,
  constraint workflow_executions_workflow_version_id_fkey foreign key (workflow_version_id) references public.workflow_versions (id) on delete cascade,
  constraint workflow_executions_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint workflow_executions_triggered_by_fkey foreign key (triggered_by) references auth.users (id) on delete set null,
  constraint workflow_executions_idempotency_key_key unique (workflow_id, idempotency_key),
  constraint workflow_executions_scheduled_for_key unique (workflow_id, scheduled_for),
  constraint workflow_executions_completed_when_final check ((completed_at is null) = (status in ('queued', 'running', 'waiting')))
) with (fillfactor = 80);
comment on table public.workflow_executions is 'One run of a workflow, pinned to a version. Status is a state machine enforced by trigger: queued -> running/waiting -> succeeded | failed | cancelled | timed_out.';
comment on column public.workflow_executions.idempotency_key is 'Unique per workflow: starting again with the same key returns the existing execution.';
comment on column public.workflow_executions.scheduled_for is 'For scheduled starts: the cron occurrence (UTC minute); unique per workflow, so an occurrence starts at most once.';
comment on column public.workflow_executions.triggered_by is 'The user who started it; null for scheduled, webhook and event starts. The requester of its approvals.';
comment on column public.workflow_executions.output is 'On success: {"<final node id>": <its output>} for the final nodes (no outgoing edges) that ran.';
comment on column public.workflow_executions.deadline is 'started_at + the workflow''s timeout; past it, pg_cron marks the execution timed_out.';

create index workflow_executions_workflow_version_id_idx on public.workflow_executions (workflow_version_id);
create index workflow_executions_organization_id_idx on public.workflow_executions (organization_id, created_at desc);
create index workflow_executions_triggered_by_idx on public.workflow_executions (triggered_by);

create function private.workflow_execution_transition() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.status is distinct from old.status
     and not (old.status in ('queued', 'running', 'waiting')
              and new.status in ('running', 'waiting', 'succeeded', 'failed', 'cancelled', 'timed_out')
              and not (old.status <> 'queued' and new.status = 'queued')) then
    raise exception 'a workflow execution cannot go from % to %', old.status, new.status
      using errcode = '55000', hint = 'Finished executions (succeeded, failed, cancelled, timed_out) never change state.';
  end if;
  if new.status in ('succeeded', 'failed', 'cancelled', 'timed_out') and old.status not in ('succeeded', 'failed', 'cancelled', 'timed_out') then
    new.completed_at := pg_catalog.now();
  end if;
  return new;
end;
$$;
comment on function private.workflow_execution_transition() is 'BEFORE UPDATE on workflow_executions: allows only queued/running/waiting -> running/waiting/final (55000 otherwise; an unknown status is refused earlier by its domain, 23514) and stamps completed_at.';

-- The WHEN clauses skip the trigger functions' calls where they would change nothing: the transition check where an
-- unfinished execution stays unfinished as running or waiting, or finishes with completed_at already stamped now(),
-- and set_updated_at where updated_at already is now(). The queue's hot path sets both itself. One illegal update
-- skips the function and is refused by completed_when_final instead (23514, not 55000): an unfinished execution set
-- back to queued with completed_at = now() in the same statement. An unknown status never reaches the function: the
-- workflow_execution_status domain refuses it first (23514).
-- The transition's WHEN is written in terms of completed_at, which the completed_when_final constraint ties to the
-- status (null exactly while the status is queued, running or waiting): "old.completed_at is not null" is "the
-- execution had finished" (any change then is checked), so the clause needs no status lists and no comparison of
-- old and new status (the function itself lets an unchanged status pass). It is kept this short on purpose:
-- PostgreSQL reads and prepares every row trigger's WHEN clause (and every table CHECK) again for each statement
-- that updates the table, and with status lists this one cost about as much as the run's own UPDATE.
create trigger workflow_executions_transition before update on public.workflow_executions
  for each row when (old.completed_at is not null
                     or (new.completed_at is distinct from pg_catalog.now() and new.status <> 'running' and new.status <> 'waiting'))
  execute function private.workflow_execution_transition();
create trigger workflow_executions_set_updated_at before update on public.workflow_executions
  for each row when (new.updated_at is distinct from pg_catalog.now()) execute function private.set_updated_at();
-- The audit trail records what actors do to executions: starting (insert), cancelling, deleting. How the engine moves
-- an execution on (running, waiting, succeeded, failed, timed_out) is recorded in the execution itself: auditing it
-- would add an audit row to every step of the queue's hot path.
create trigger workflow_executions_audit after insert or delete on public.workflow_executions
  for each row execute function private.audit_row_change();
create trigger workflow_executions_audit_cancel after update on public.workflow_executions
  for each row when (new.status = 'cancelled' and old.completed_at is null)
  execute function private.audit_row_change();

-- Unfinished executions that have a deadline, for the timeout job: kept beside the execution rather than as a partial
-- index on it, because such an index names columns that finishing changes (completed_at or status), and PostgreSQL
-- then writes every finishing UPDATE as a new row version in all of the table's indexes (not HOT). Kept by the
-- triggers below: a row when an execution starts with a deadline or gets one, none once it finishes.
create table private.workflow_execution_deadlines (
  execution_id uuid not null,
  deadline timestamptz not null,
  constraint workflow_execution_deadlines_pkey primary key (execution_id),
  constraint workflow_execution_deadlines_execution_id_fkey foreign key (execution_id)
    references public.workflow_executions (id) on delete cascade
);
comment on table private.workflow_execution_deadlines is 'Unfinished executions with a deadline (a copy of workflow_executions.deadline kept by trigger), walked by expire_workflow_executions() in deadline order.';

create index workflow_execution_deadlines_deadline_idx on private.workflow_execution_deadlines (deadline);

create function private.track_workflow_execution_deadline() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.deadline is null or new.completed_at is not null then
    delete from private.workflow_execution_deadlines d where d.execution_id = new.id;
  else
    insert into private.workflow_execution_deadlines as d (execution_id, deadline) values (new.id, new.deadline)
    on conflict (execution_id) do update set deadline = excluded.deadline;
  end if;
  return null;
end;
$$;
comment on function private.track_workflow_execution_deadline() is 'AFTER INSERT or UPDATE on workflow_executions (only where the deadline is set, changed or the execution finishes): keeps private.workflow_execution_deadlines to the unfinished executions with a deadline.';

-- The WHEN clauses are the only cost for executions without a deadline (no trigger call).
create trigger workflow_executions_deadline_insert after insert on public.workflow_executions
  for each row when (new.deadline is not null) execute function private.track_workflow_execution_deadline();
create trigger workflow_executions_deadline_update after update on public.workflow_executions
  for each row when (new.deadline is distinct from old.deadline
                     or (new.deadline is not null and old.completed_at is null and new.completed_at is not null))
  execute function private.track_workflow_execution_deadline();

create table public.workflow_runs (
  id uuid not null default gen_random_uuid(),
  execution_id uuid not null,
  organization_id uuid not null,
  node_id text not null,
  node_type public.workflow_node_type not null,
  status public.workflow_run_status not null default 'queued',
  attempt integer not null default 0,
  max_attempts public.workflow_max_attempts not null default 3,
  run_at timestamptz not null default now(),
  locked_by text,
  locked_until timestamptz,
  lease_token uuid,
  input jsonb not null default '{}'::jsonb,
  output jsonb,
  error jsonb,
  started_at timestamptz,
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint workflow_runs_pkey primary key (id),
  constraint workflow_runs_execution_node_key unique (execution_id, node_id),
  constraint workflow_runs_execution_id_fkey foreign key (execution_id) references public.workflow_executions (id) on delete cascade,
  constraint workflow_runs_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint workflow_runs_attempts_range check (attempt between 0 and max_attempts),
  constraint workflow_runs_lease_when_running check ((status = 'running') = (lease_token is not null and locked_until is not null and locked_by is not null))
);
comment on table public.workflow_runs is 'The step queue: one row per node run of an execution. Workers claim due task and ai_agent runs with claim_workflow_runs() (for update skip locked, a lease); condition, approval and skipped runs are written by the engine itself.';
comment on column public.workflow_runs.run_at is 'When the run is next claimable: for a queued run, when it is due (later after a failed attempt: backoff); for a running run, when its lease expires.';
comment on column public.workflow_runs.lease_token is 'Fresh on every claim; complete_workflow_run() and fail_workflow_run() change nothing unless they present the current one.';
comment on column public.workflow_runs.input is '{"node": {"name", "type", "config"}, "context": {"input", "nodes": {"<id>": output}}} as it was when the run became due.';

create index workflow_runs_due_idx on public.workflow_runs (run_at) where status in ('queued', 'running');
create index workflow_runs_organization_id_idx on public.workflow_runs (organization_id);

-- Skipped where updated_at already is now() (the claim and completion set it themselves): the same result.
create trigger workflow_runs_set_updated_at before update on public.workflow_runs
  for each row when (new.updated_at is distinct from pg_catalog.now()) execute function private.set_updated_at();

alter table public.workflow_executions enable row level security;
alter table public.workflow_runs enable row level security;

-- Narrowed in 57-work-automations.sql (alter policy): executions and runs follow their workflow's project.
-- workflow_executions_select: members holding workflows.read see their organization's executions.
create policy workflow_executions_select on public.workflow_executions for select to authenticated
  using (organization_id in (select private.organizations_with_permission('workflows.read')));
-- workflow_runs_select: whoever reads the execution reads its runs.
create policy workflow_runs_select on public.workflow_runs for select to authenticated
  using (organization_id in (select private.organizations_with_permission('workflows.read')));

-- Written only through the RPCs below.
grant select on public.workflow_executions, public.workflow_runs to authenticated, service_role;

-- The execution context conditions and nodes see: {"input": ..., "nodes": {"<node id>": <output>, ...}}.
create function private.workflow_context(execution uuid) returns jsonb
language sql stable
set search_path = ''
as $$
  select jsonb_build_object(
    'input', (select e.input from public.workflow_executions e where e.id = execution),
    'nodes', coalesce((select jsonb_object_agg(r.node_id, coalesce(r.output, 'null'::jsonb))
                       from public.workflow_runs r where r.execution_id = execution and r.status = 'succeeded'), '{}'::jsonb))
$$;
comment on function private.workflow_context(uuid) is 'An execution''s context: its input and the outputs of its succeeded nodes by node id.';

-- Ends an execution that has not ended yet: its open runs and pending approvals are cancelled (a worker still
-- holding a lease then gets lease_lost).
create function private.finish_workflow_execution(execution uuid, final_status text, failure jsonb) returns void
language plpgsql
set search_path = ''
as $$
begin
  update public.workflow_executions e
  set status = final_status, error = failure
  where e.id = execution and e.status in ('queued', 'running', 'waiting');
  if not found then
    return;
  end if;
  update public.workflow_runs r
  set status = 'cancelled', locked_by = null, locked_until = null, lease_token = null,
      completed_at = pg_catalog.now()
  where r.execution_id = execution and r.status in ('queued', 'running', 'waiting');
  update public.approval_requests a
  set status = 'cancelled', decided_at = pg_catalog.now()
  where a.execution_id = execution and a.status = 'pending';
end;
$$;
comment on function private.finish_workflow_execution(uuid, text, jsonb) is 'Marks an unfinished execution failed, cancelled or timed_out with an error, cancelling its open runs and pending approvals. The caller holds the execution''s lock.';

-- After the graph has advanced: running while runs are queued or running, waiting while only approvals are open,
-- succeeded when nothing is left (with the outputs of its final nodes).
create function private.settle_workflow_execution(execution uuid, definition jsonb) returns void
language plpgsql
set search_path = ''
as $$
declare
  current_status text;
  active integer;
  running integer;
  waiting integer;
  next_status text;
begin
  select e.status, count(r.id) filter (where r.status in ('queued', 'running')), count(r.id) filter (where r.status = 'running'),
         count(r.id) filter (where r.status = 'waiting')
  into current_status, active, running, waiting
  from public.workflow_executions e
  left join public.workflow_runs r on r.execution_id = e.id and r.status in ('queued', 'running', 'waiting')
  where e.id = execution
  group by e.status;
  if current_status not in ('queued', 'running', 'waiting') then
    return;
  end if;
  next_status := case when active > 0 then case when current_status = 'queued' and running = 0 then 'queued' else 'running' end
                      when waiting > 0 then 'waiting'
                      else 'succeeded' end;
  if next_status = 'succeeded' then
    update public.workflow_executions e
    set status = 'succeeded',
        output = coalesce((
          select jsonb_object_agg(r.node_id, coalesce(r.output, 'null'::jsonb))
          from public.workflow_runs r
          where r.execution_id = execution and r.status = 'succeeded'
            and not exists (select 1 from jsonb_array_elements(definition -> 'edges') x where x ->> 'from' = r.node_id)), '{}'::jsonb)
    where e.id = execution;
  elsif next_status <> current_status then
    update public.workflow_executions e set status = next_status where e.id = execution;
  end if;
end;
$$;
comment on function private.settle_workflow_execution(uuid, jsonb) is 'Derives an unfinished execution''s status from its runs; succeeds it, with its final nodes'' outputs, when nothing is left.';

-- The engine: enqueue every node whose predecessors are all done. A node runs when at least one incoming edge was
-- taken (its source succeeded and, out of a condition, its `when` matches the result); otherwise it is skipped.
-- Only successors of what just changed can become due (at the start: the entry node); conditions are evaluated at
-- once and skipped nodes are marked, which makes their successors the next candidates; approvals open their request
-- and wait. Then the execution's status is settled.
create function private.advance_workflow_execution(execution uuid, changed text[] default null) returns void
language plpgsql
set search_path = ''
-- One generic plan per statement for the session: with the definition and the changed nodes as parameters, the plan
-- cache otherwise chose a custom plan for the node loop's query on every call (planning it cost about 0.15 ms, ten
-- times running it).
set plan_cache_mode = force_generic_plan
as $$
declare
  ex record;
  node jsonb;
  taken boolean;
  next_changed text[];
  context jsonb;
  result boolean;
  new_run uuid;
begin
  select e.status, e.organization_id, v.definition, w.max_attempts into ex
  from public.workflow_executions e
  join public.workflow_versions v on v.id = e.workflow_version_id
  join public.workflows w on w.id = e.workflow_id
  where e.id = execution;
  if ex.status is null or ex.status not in ('queued', 'running', 'waiting') then
    return;
  end if;
  -- Final nodes (no outgoing edges) make nothing due: settle at once.
  if changed is not null and not exists (select 1 from jsonb_array_elements(ex.definition -> 'edges') x where x ->> 'from' = any (changed)) then
    perform private.settle_workflow_execution(execution, ex.definition);
    return;
  end if;
  loop
    next_changed := array[]::text[];
    for node in
      select n.value from jsonb_array_elements(ex.definition -> 'nodes') n
      where case when changed is null
                 then not exists (select 1 from jsonb_array_elements(ex.definition -> 'edges') x where x.value ->> 'to' = n.value ->> 'id')
                 else exists (select 1 from jsonb_array_elements(ex.definition -> 'edges') x
                              where x.value ->> 'to' = n.value ->> 'id' and x.value ->> 'from' = any (changed)) end
        and not exists (select 1 from public.workflow_runs r where r.execution_id = execution and r.node_id = n.value ->> 'id')
        and not exists (
          select 1 from jsonb_array_elements(ex.definition -> 'edges') x
          where x.value ->> 'to' = n.value ->> 'id'
            and not exists (select 1 from public.workflow_runs r
                            where r.execution_id = execution and r.node_id = x.value ->> 'from' and r.status in ('succeeded', 'skipped')))
    loop
      select not exists (select 1 from jsonb_array_elements(ex.definition -> 'edges') x where x.value ->> 'to' = node ->> 'id')
          or exists (select 1 from jsonb_array_elements(ex.definition -> 'edges') x
                     join public.workflow_runs r on r.execution_id = execution and r.node_id = x.value ->> 'from'
                     where x.value ->> 'to' = node ->> 'id' and r.status = 'succeeded'
                       and (not x.value ? 'when' or x.value -> 'when' = r.output -> 'result'))
      into taken;
      if not taken then
        insert into public.workflow_runs (execution_id, organization_id, node_id, node_type, status, completed_at)
        values (execution, ex.organization_id, node ->> 'id', node ->> 'type', 'skipped', pg_catalog.now());
        next_changed := next_changed || (node ->> 'id');
        continue;
      end if;
      context := private.workflow_context(execution);
      case node ->> 'type'
        when 'condition' then
          result := coalesce(jsonb_path_match(context, (node -> 'config' ->> 'expression')::jsonpath, silent => true), false);
          insert into public.workflow_runs (execution_id, organization_id, node_id, node_type, status, attempt, max_attempts,
                                            input, output, started_at, completed_at)
          values (execution, ex.organization_id, node ->> 'id', 'condition', 'succeeded', 1, 1,
                  jsonb_build_object('node', node - 'id', 'context', context), jsonb_build_object('result', result),
                  pg_catalog.now(), pg_catalog.now());
          next_changed := next_changed || (node ->> 'id');
        when 'approval' then
          insert into public.workflow_runs (execution_id, organization_id, node_id, node_type, status, attempt, max_attempts,
                                            input, started_at)
          values (execution, ex.organization_id, node ->> 'id', 'approval', 'waiting', 1, 1,
                  jsonb_build_object('node', node - 'id', 'context', context), pg_catalog.now())
          returning id into new_run;
          perform private.open_approval_request(execution, new_run, node);
          if (select e.status from public.workflow_executions e where e.id = execution) not in ('queued', 'running', 'waiting') then
            return;
          end if;
        else
          insert into public.workflow_runs (execution_id, organization_id, node_id, node_type, status, max_attempts, input)
          values (execution, ex.organization_id, node ->> 'id', node ->> 'type', 'queued',
                  case when node ->> 'type' = 'ai_agent' and node -> 'config' ? 'max_retries'
                       then (node -> 'config' ->> 'max_retries')::integer + 1 else ex.max_attempts end,
                  jsonb_build_object('node', node - 'id', 'context', context));
      end case;
    end loop;
    exit when cardinality(next_changed) = 0;
    changed := next_changed;
  end loop;
  perform private.settle_workflow_execution(execution, ex.definition);
end;
$$;
comment on function private.advance_workflow_execution(uuid, text[]) is 'Advances an execution''s graph after the given nodes finished (null: at the start): enqueues due task/ai_agent nodes, evaluates conditions, opens approvals, marks skipped branches, settles the status. The caller holds the execution''s lock.';

create function private.start_workflow_execution(workflow uuid, input jsonb, idempotency_key text, trigger_type text,
                                                 triggered_by uuid, scheduled_for timestamptz default null)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  w record;
  execution uuid;
begin
  select x.id, x.organization_id, x.timeout, x.is_active, x.deleted_at, v.id as version_id into w
  from public.workflows x
  join public.workflow_versions v on v.workflow_id = x.id and v.version = x.current_version
  where x.id = workflow;
  if w.id is null then
    raise exception 'no workflow %', workflow using errcode = 'P0002';
  end if;
  if w.deleted_at is not null or not w.is_active then
    raise exception 'workflow % is % and cannot be started', workflow, case when w.deleted_at is not null then 'deleted' else 'inactive' end
      using errcode = '55000', hint = 'Activate the workflow (is_active = true) first.';
  end if;
  if jsonb_typeof(input) is distinct from 'object' then
    raise exception 'a workflow''s input must be a JSON object' using errcode = '22023';
  end if;
  insert into public.workflow_executions (workflow_id, workflow_version_id, organization_id, input, trigger_type,
                                          triggered_by, correlation_id, idempotency_key, scheduled_for, deadline)
  values (workflow, w.version_id, w.organization_id, input, trigger_type, triggered_by,
          coalesce(private.request_correlation_id(), gen_random_uuid()::text), idempotency_key, scheduled_for,
          pg_catalog.now() + w.timeout)
  on conflict do nothing
  returning id into execution;
  if execution is null then
    select e.id into execution from public.workflow_executions e
    where e.workflow_id = workflow
      and (e.idempotency_key = start_workflow_execution.idempotency_key or e.scheduled_for = start_workflow_execution.scheduled_for);
    return execution;
  end if;
  perform private.advance_workflow_execution(execution);
  return execution;
end;
$$;
comment on function private.start_workflow_execution(uuid, jsonb, text, text, uuid, timestamptz) is 'Creates an execution of the workflow''s current version and enqueues its entry node; a repeated idempotency key or schedule occurrence returns the existing execution.';

create function public.start_workflow(workflow_id uuid, input jsonb default '{}', idempotency_key text default null)
returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  caller uuid := (select auth.uid());
  organization uuid;
  workflow_trigger text;
  project uuid;
begin
  select w.organization_id, w.trigger_type, w.project_id into organization, workflow_trigger, project
  from public.workflows w where w.id = start_workflow.workflow_id;
  -- A project's workflow (project_id, 57-work-automations.sql) runs only for those who read the project.
  if caller is not null and (organization is null or not private.has_permission(organization, 'workflows.execute')
                             or (project is not null and not private.can_read_project(project))) then
    raise exception 'workflow % does not exist or you may not run it', start_workflow.workflow_id
      using errcode = '42501', hint = 'Running a workflow needs workflows.execute in its organization.';
  end if;
  return private.start_workflow_execution(start_workflow.workflow_id, coalesce(start_workflow.input, '{}'::jsonb),
    start_workflow.idempotency_key, case when caller is null then coalesce(workflow_trigger, 'manual') else 'manual' end, caller);
end;
$$;
comment on function public.start_workflow(uuid, jsonb, text) is 'Starts a workflow (members with workflows.execute: trigger manual; the service role for any: the workflow''s trigger type, triggered_by null). Returns the execution id; the same idempotency key returns the same execution. Inactive or deleted workflow: 55000.';

create function public.claim_workflow_runs(worker_id text, max_runs integer default 10, lease interval default interval '5 minutes')
returns setof public.workflow_runs
language plpgsql security definer
set search_path = ''
-- One generic plan, kept for the session: the claim's plan does not depend on the arguments (ids are matched as
-- arrays, so the LIMIT's size does not change the plan's shape), and planning it anew per call cost as much as
-- running it.
set plan_cache_mode = force_generic_plan
as $$
begin
  if worker_id is null or char_length(worker_id) not between 1 and 200 or max_runs is null or max_runs not between 1 and 1000
     or lease is null or lease <= interval '0' or lease > interval '1 day' then
    raise exception 'claim_workflow_runs needs a worker id (1-200 chars), 1-1000 runs and a lease of up to a day'
      using errcode = '22023';
  end if;
  return query
  with due as (
    select r.id from public.workflow_runs r
    where r.status in ('queued', 'running') and r.run_at <= pg_catalog.now() and r.attempt < r.max_attempts
    order by r.run_at
    limit max_runs
    for update skip locked
  ), claimed as (
    update public.workflow_runs r
    set status = 'running', attempt = r.attempt + 1, locked_by = worker_id, locked_until = pg_catalog.now() + lease,
        run_at = pg_catalog.now() + lease, lease_token = gen_random_uuid(), started_at = coalesce(r.started_at, pg_catalog.now()),
        updated_at = pg_catalog.now()
    where r.id = any (array(select due.id from due))
    returning r.*
  ), started as (
    update public.workflow_executions e set status = 'running', updated_at = pg_catalog.now()
    where e.id = any (array(select x.id from public.workflow_executions x
                            where x.id = any (array(select c.execution_id from claimed c)) and x.status = 'queued'
                            for update skip locked))
  )
  select * from claimed;
end;
$$;
comment on function public.claim_workflow_runs(text, integer, interval) is 'Service role only: claims up to max_runs due runs (queued and due, or running with an expired lease) in one UPDATE ... RETURNING with for update skip locked; each gets a fresh lease_token and locked_until = now() + lease.';

create function public.complete_workflow_run(run_id uuid, lease_token uuid, output jsonb)
returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  execution uuid;
  node text;
  result jsonb := coalesce(complete_workflow_run.output, '{}'::jsonb);
begin
  -- The queue's hot path, a graph of one node and no edges: this run is the execution's only one, so completing it
  -- succeeds the execution with {"<node>": output}, which is what advance_workflow_execution() and
  -- settle_workflow_execution() would derive. The execution's UPDATE takes its lock (the lock order: the execution
  -- before its run) and needs no separate locking statement; it happens only while the run holds the presented,
  -- unexpired lease, and the run's UPDATE then checks that lease again on the run's newest version. The one way they
  -- can disagree is a lease that ended during this very call and was claimed again by another worker (a claim does not
  -- lock the execution): then the execution must not keep this completion, and the whole call fails with 40001 (retry:
  -- the retry answers lease_lost).
  with run as (
    select r.execution_id, r.node_id from public.workflow_runs r
    where r.id = complete_workflow_run.run_id and r.lease_token = complete_workflow_run.lease_token
      and r.status = 'running' and r.locked_until >= pg_catalog.now()
  )
  update public.workflow_executions e
  set status = 'succeeded', output = jsonb_build_object(run.node_id, result), completed_at = pg_catalog.now(),
      updated_at = pg_catalog.now()
  from run, public.workflow_versions v
  where e.id = run.execution_id and v.id = e.workflow_version_id and e.status in ('queued', 'running', 'waiting')
    and jsonb_array_length(v.definition -> 'edges') = 0 and jsonb_array_length(v.definition -> 'nodes') = 1
  returning run.node_id into node;
  if node is not null then
    update public.workflow_runs r
    set status = 'succeeded', output = result, error = null,
        locked_by = null, locked_until = null, lease_token = null, completed_at = pg_catalog.now(), updated_at = pg_catalog.now()
    where r.id = complete_workflow_run.run_id and r.lease_token = complete_workflow_run.lease_token
      and r.status = 'running' and r.locked_until >= pg_catalog.now();
    if not found then
      raise exception 'the lease of workflow run % ended while it was being completed', complete_workflow_run.run_id
        using errcode = '40001', hint = 'Retry the call: it then answers lease_lost, and the run''s new holder completes it.';
    end if;
    return 'completed';
  end if;
  -- Every other graph. One statement: the execution's lock (taken first: the run's row is locked only by the UPDATE,
  -- which needs the locked execution's row to join) and the run's update. The run's conditions are
  -- checked against its newest version (READ COMMITTED re-checks a row changed meanwhile), as a later statement would.
  with ex as materialized (
    select e.id
    from public.workflow_executions e
    where e.id = (select r.execution_id from public.workflow_runs r where r.id = complete_workflow_run.run_id)
    for update of e
  )
  update public.workflow_runs r
  set status = 'succeeded', output = result, error = null,
      locked_by = null, locked_until = null, lease_token = null, completed_at = pg_catalog.now(), updated_at = pg_catalog.now()
  from ex
  where r.id = complete_workflow_run.run_id and r.execution_id = ex.id and r.lease_token = complete_workflow_run.lease_token
    and r.status = 'running' and r.locked_until >= pg_catalog.now()
  returning r.node_id, ex.id into node, execution;
  if node is null then
    if not exists (select 1 from public.workflow_runs r where r.id = complete_workflow_run.run_id) then
      raise exception 'no workflow run %', complete_workflow_run.run_id using errcode = 'P0002';
    end if;
    return 'lease_lost';
  end if;
  -- (A single-node graph gets here only when its execution had finished meanwhile: advancing then changes nothing.)
  perform private.advance_workflow_execution(execution, array[node]);
  return 'completed';
end;
$$;
comment on function public.complete_workflow_run(uuid, uuid, jsonb) is 'Service role only: records a run''s output and advances the graph. Returns completed, or lease_lost (changing nothing) when the token is not the current one or the lease has expired; 40001 (retry) when the lease ended during the call itself.';

create function public.fail_workflow_run(run_id uuid, lease_token uuid, error jsonb, retryable boolean default true)
returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  execution uuid;
  run record;
  delay interval;
begin
  select r.execution_id into execution from public.workflow_runs r where r.id = fail_workflow_run.run_id;
  if execution is null then
    raise exception 'no workflow run %', fail_workflow_run.run_id using errcode = 'P0002';
  end if;
  perform 1 from public.workflow_executions e where e.id = execution for update;
  select r.attempt, r.max_attempts, r.node_id, w.retry_delay into run
  from public.workflow_runs r
  join public.workflow_executions e on e.id = r.execution_id
  join public.workflows w on w.id = e.workflow_id
  where r.id = fail_workflow_run.run_id and r.lease_token = fail_workflow_run.lease_token
    and r.status = 'running' and r.locked_until >= pg_catalog.now();
  if run.node_id is null then
    return 'lease_lost';
  end if;
  if coalesce(retryable, true) and run.attempt < run.max_attempts then
    -- Exponential backoff (retry_delay * 2^(attempt - 1), at most an hour) with equal jitter: half fixed, half random.
    delay := least(run.retry_delay * power(2, run.attempt - 1), interval '1 hour');
    delay := delay * (0.5 + random() * 0.5);
    update public.workflow_runs r
    set status = 'queued', error = fail_workflow_run.error, run_at = pg_catalog.now() + delay,
        locked_by = null, locked_until = null, lease_token = null
    where r.id = fail_workflow_run.run_id;
    return 'retrying';
  end if;
  update public.workflow_runs r
  set status = 'failed', error = fail_workflow_run.error, locked_by = null, locked_until = null, lease_token = null,
      completed_at = pg_catalog.now()
  where r.id = fail_workflow_run.run_id;
  perform private.finish_workflow_execution(execution, 'failed',
    jsonb_build_object('code', 'node_failed', 'node_id', run.node_id, 'attempts', run.attempt, 'error', fail_workflow_run.error));
  return 'failed';
end;
$$;
comment on function public.fail_workflow_run(uuid, uuid, jsonb, boolean) is 'Service role only: records a failed attempt. retrying (queued again after exponential backoff with jitter) while attempts remain and the error is retryable, else failed (and the execution fails); lease_lost changes nothing.';

create function public.cancel_workflow_execution(execution_id uuid, reason text)
returns public.workflow_executions
language plpgsql security definer
set search_path = ''
as $$
declare
  caller uuid := (select auth.uid());
  ex public.workflow_executions;
begin
  select * into ex from public.workflow_executions e where e.id = cancel_workflow_execution.execution_id for update;
  if ex.id is null or (caller is not null and (not private.has_permission(ex.organization_id, 'workflows.execute')
                                               or not private.can_read_workflow_project(ex.workflow_id))) then
    raise exception 'execution % does not exist or you may not cancel it', cancel_workflow_execution.execution_id
      using errcode = '42501', hint = 'Cancelling needs workflows.execute in the execution''s organization.';
  end if;
  if ex.status not in ('queued', 'running', 'waiting') then
    raise exception 'execution % has already finished (%)', ex.id, ex.status using errcode = '55000';
  end if;
  perform private.finish_workflow_execution(ex.id, 'cancelled',
    jsonb_build_object('code', 'cancelled', 'reason', left(reason, 1000), 'cancelled_by', caller));
  select * into ex from public.workflow_executions e where e.id = ex.id;
  return ex;
end;
$$;
comment on function public.cancel_workflow_execution(uuid, text) is 'Cancels an unfinished execution (members with workflows.execute, or the service role): open runs and pending approvals are cancelled; 55000 once finished.';

-- pg_cron (90-scheduled-jobs.sql): executions past their deadline, and runs whose last lease expired.
create function private.expire_workflow_executions() returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  ex record;
  expired integer := 0;
begin
  for ex in
    select e.id from private.workflow_execution_deadlines d
    join public.workflow_executions e on e.id = d.execution_id
    where d.deadline < pg_catalog.now() and e.completed_at is null and e.deadline < pg_catalog.now()
    order by d.deadline
    for update of e skip locked
  loop
    perform private.finish_workflow_execution(ex.id, 'timed_out', jsonb_build_object('code', 'deadline_exceeded'));
    expired := expired + 1;
  end loop;
  for ex in
    select e.id, r.id as run_id, r.node_id, r.attempt from public.workflow_runs r
    join public.workflow_executions e on e.id = r.execution_id
    where r.status = 'running' and r.run_at < pg_catalog.now() and r.attempt >= r.max_attempts
    for update of e skip locked
  loop
    update public.workflow_runs r
    set status = 'failed', error = jsonb_build_object('code', 'lease_expired'), locked_by = null, locked_until = null,
        lease_token = null, completed_at = pg_catalog.now()
    where r.id = ex.run_id;
    perform private.finish_workflow_execution(ex.id, 'failed',
      jsonb_build_object('code', 'node_failed', 'node_id', ex.node_id, 'attempts', ex.attempt, 'error', jsonb_build_object('code', 'lease_expired')));
  end loop;
  return expired;
end;
$$;
comment on function private.expire_workflow_executions() is 'pg_cron: marks executions past their deadline timed_out, and fails runs whose last allowed attempt''s lease expired. Returns how many executions timed out.';

create function private.start_scheduled_workflows(at timestamptz default pg_catalog.now()) returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  w record;
  occurrence timestamptz;
  started integer := 0;
begin
  -- The current minute and the one before, so that a tick that runs late still starts its occurrence; the unique
  -- (workflow_id, scheduled_for) makes a second tick (or a second scheduler) start nothing.
  for w in
    select x.id, x.trigger_config ->> 'cron' as cron from public.workflows x
    where x.trigger_type = 'scheduled' and x.is_active and x.deleted_at is null
  loop
    for occurrence in select pg_catalog.date_trunc('minute', at) - m * interval '1 minute' from generate_series(1, 0, -1) m loop
      if private.cron_matches(w.cron, occurrence)
         and not exists (select 1 from public.workflow_executions e where e.workflow_id = w.id and e.scheduled_for = occurrence) then
        -- One workflow that cannot start (say, its organization was just deleted) must not stop the others.
        begin
          perform private.start_workflow_execution(w.id, jsonb_build_object('scheduled_for', occurrence), null, 'scheduled', null, occurrence);
          started := started + 1;
        exception when others then
          raise warning 'scheduled workflow % did not start for %: % (%)', w.id, occurrence, sqlerrm, sqlstate;
        end;
      end if;
    end loop;
  end loop;
  return started;
end;
$$;
comment on function private.start_scheduled_workflows(timestamptz) is 'pg_cron, every minute: starts each active scheduled workflow whose cron expression (UTC) matches this minute or the previous one, each occurrence at most once.';

revoke execute on function public.claim_workflow_runs(text, integer, interval), public.complete_workflow_run(uuid, uuid, jsonb),
  public.fail_workflow_run(uuid, uuid, jsonb, boolean) from public, anon, authenticated;
grant execute on function public.claim_workflow_runs(text, integer, interval), public.complete_workflow_run(uuid, uuid, jsonb),
  public.fail_workflow_run(uuid, uuid, jsonb, boolean) to service_role;
grant execute on function public.start_workflow(uuid, jsonb, text), public.cancel_workflow_execution(uuid, text)
  to authenticated, service_role;
