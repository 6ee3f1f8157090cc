-- Workflows: approvals (approval_requests, approval_request_approvers, approval_decisions) and decide_approval().
-- Quorum rules decided in the deciding statement, form data checked against a JSON Schema subset, escalation, expiry.

-- An approval node opens its request as soon as it becomes due; its approvers are resolved then (user ids, a role
-- key, a permission; only members who hold approvals.decide; never the requester unless the node allows
-- self-approval) and by escalation. Decisions are append-only, one per approver. The request closes in the statement
-- of the deciding vote, which resumes (approved) or fails (rejected) the execution.

-- A small JSON Schema validator for approval forms. Supported keywords, and only these (the definition validator
-- refuses others): type (string, number, integer, boolean, object, array, null), required, properties, enum,
-- minimum, maximum, minLength, maxLength; title and description are ignored. Returns one message per violation.
create function private.json_schema_errors(schema jsonb, instance jsonb, path text default '$') returns text[]
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  errors text[] := array[]::text[];
  actual text := jsonb_typeof(instance);
  expected text := schema ->> 'type';
  property record;
  missing text;
begin
  if expected is not null and not (actual = expected
      or (expected = 'integer' and actual = 'number' and (instance #>> '{}')::numeric % 1 = 0)) then
    return array[pg_catalog.format('%s: expected %s, got %s', path, expected, actual)];
  end if;
  if schema ? 'enum' and not exists (select 1 from jsonb_array_elements(schema -> 'enum') e where e.value = instance) then
    errors := errors || pg_catalog.format('%s: must be one of %s', path, schema -> 'enum');
  end if;
  if actual = 'number' then
    if schema ? 'minimum' and (instance #>> '{}')::numeric < (schema ->> 'minimum')::numeric then
      errors := errors || pg_catalog.format('%s: must be at least %s', path, schema ->> 'minimum');
    end if;
    if schema ? 'maximum' and (instance #>> '{}')::numeric > (schema ->> 'maximum')::numeric then
      errors := errors || pg_catalog.format('%s: must be at most %s', path, schema ->> 'maximum');
    end if;
  elsif actual = 'string' then
    if schema ? 'minLength' and char_length(instance #>> '{}') < (schema ->> 'minLength')::integer then
      errors := errors || pg_catalog.format('%s: must be at least %s characters', path, schema ->> 'minLength');
    end if;
    if schema ? 'maxLength' and char_length(instance #>> '{}') > (schema ->> 'maxLength')::integer then
      errors := errors || pg_catalog.format('%s: must be at most %s characters', path, schema ->> 'maxLength');
    end if;
  elsif actual = 'object' then
    for missing in select r from jsonb_array_elements_text(coalesce(schema -> 'required', '[]'::jsonb)) r where not instance ? r loop
      errors := errors || pg_catalog.format('%s.%s: is required', path, missing);
    end loop;
    for property in select p.key, p.value from jsonb_each(coalesce(schema -> 'properties', '{}'::jsonb)) p where instance ? p.key loop
      errors := errors || private.json_schema_errors(property.value, instance -> property.key, path || '.' || property.key);
    end loop;
  end if;
  return errors;
end;
$$;
comment on function private.json_schema_errors(jsonb, jsonb, text) is 'Violations of a JSON Schema subset (type, required, properties, enum, minimum, maximum, minLength, maxLength) by a value; empty when it conforms.';

create table public.approval_requests (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  execution_id uuid not null,
  workflow_run_id uuid not null,
  node_id text not null,
  title text not null,
  description text,
  form_schema jsonb,
  approval_type text not null,
  required_approvals integer,
  status text not null default 'pending',
  requested_by uuid,
  allow_self_approval boolean not null default false,
  expires_at timestamptz,
  escalate_after timestamptz,
  escalate_to jsonb,
  escalated_at timestamptz,
  on_timeout text not null default 'reject',
  decided_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint approval_requests_pkey primary key (id),
  constraint approval_requests_execution_node_key unique (execution_id, node_id),
  constraint approval_requests_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint approval_requests_execution_id_fkey foreign key (execution_id) references public.workflow_executions (id) on delete cascade,
  constraint approval_requests_workflow_run_id_fkey foreign key (workflow_run_id) references public.workflow_runs (id) on delete cascade,
  constraint approval_requests_requested_by_fkey foreign key (requested_by) references auth.users (id) on delete set null,
  constraint approval_requests_type_known check (approval_type in ('single', 'multiple', 'unanimous', 'majority')),
  constraint approval_requests_required_for_multiple check ((approval_type = 'multiple') = (required_approvals is not null) and coalesce(required_approvals, 1) >= 1),
  constraint approval_requests_status_known check (status in ('pending', 'approved', 'rejected', 'expired', 'cancelled')),
  constraint approval_requests_on_timeout_known check (on_timeout in ('reject', 'approve', 'fail')),
  constraint approval_requests_decided_when_closed check ((decided_at is not null) = (status <> 'pending'))
);
comment on table public.approval_requests is 'An approval node''s request, opened when the node becomes due; closed by the deciding vote (decide_approval), by expiry (the node''s on_timeout) or by the end of its execution.';
comment on column public.approval_requests.requested_by is 'The execution''s triggered_by: never an approver of the request unless allow_self_approval.';
comment on column public.approval_requests.escalate_to is 'Approver spec ({"user_ids", "role", "permission"}) added once past escalate_after.';
comment on column public.approval_requests.on_timeout is 'What expiry does to the execution: approve (resumes it), reject or fail (fails it with approval_rejected or approval_expired). The request itself becomes expired.';

create index approval_requests_organization_id_idx on public.approval_requests (organization_id, created_at desc);
create index approval_requests_workflow_run_id_idx on public.approval_requests (workflow_run_id);
create index approval_requests_requested_by_idx on public.approval_requests (requested_by);
create index approval_requests_pending_expiry_idx on public.approval_requests (expires_at) where status = 'pending';
create index approval_requests_pending_escalation_idx on public.approval_requests (escalate_after)
  where status = 'pending' and escalated_at is null;

create trigger approval_requests_set_updated_at before update on public.approval_requests
  for each row execute function private.set_updated_at();
create trigger approval_requests_audit after insert or update or delete on public.approval_requests
  for each row execute function private.audit_row_change();

create table public.approval_request_approvers (
  id uuid not null default gen_random_uuid(),
  approval_request_id uuid not null,
  organization_id uuid not null,
  user_id uuid not null,
  source text not null,
  created_at timestamptz not null default now(),
  constraint approval_request_approvers_pkey primary key (id),
  constraint approval_request_approvers_request_user_key unique (approval_request_id, user_id),
  constraint approval_request_approvers_approval_request_id_fkey foreign key (approval_request_id) references public.approval_requests (id) on delete cascade,
  constraint approval_request_approvers_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint approval_request_approvers_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint approval_request_approvers_source_known check (source in ('user_ids', 'role', 'permission', 'escalation'))
);
comment on table public.approval_request_approvers is 'Who may decide a request: resolved from the node config when it opened (source user_ids, role or permission) and added by escalation.';

create index approval_request_approvers_organization_id_idx on public.approval_request_approvers (organization_id);
create index approval_request_approvers_user_id_idx on public.approval_request_approvers (user_id);

create trigger approval_request_approvers_audit after insert or update or delete on public.approval_request_approvers
  for each row execute function private.audit_row_change();

create table public.approval_decisions (
  id uuid not null default gen_random_uuid(),
  approval_request_id uuid not null,
  organization_id uuid not null,
  approver_id uuid,
  decision text not null,
  comment text,
  form_data jsonb,
  created_at timestamptz not null default now(),
  constraint approval_decisions_pkey primary key (id),
  constraint approval_decisions_one_per_approver unique (approval_request_id, approver_id),
  constraint approval_decisions_approval_request_id_fkey foreign key (approval_request_id) references public.approval_requests (id) on delete cascade,
  constraint approval_decisions_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint approval_decisions_approver_id_fkey foreign key (approver_id) references auth.users (id) on delete set null,
  constraint approval_decisions_decision_known check (decision in ('approve', 'reject')),
  constraint approval_decisions_comment_length check (comment is null or char_length(comment) <= 4000)
);
comment on table public.approval_decisions is 'Append-only: one decision per approver of a request, with comment and form data (validated against the request''s form schema). Written by decide_approval() only.';
comment on column public.approval_decisions.approver_id is 'Set to null when the user is erased (the only change a decision ever sees).';

create index approval_decisions_organization_id_idx on public.approval_decisions (organization_id);
create index approval_decisions_approver_id_idx on public.approval_decisions (approver_id);

create function private.approval_decisions_append_only() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.approver_id is null and (to_jsonb(new) - 'approver_id') = (to_jsonb(old) - 'approver_id') then
    return new;
  end if;
  raise exception 'approval decisions are never changed' using errcode = '42501';
end;
$$;
comment on function private.approval_decisions_append_only() is 'BEFORE UPDATE on approval_decisions: refuses every change except the erasure of the approver (approver_id set null).';

create trigger approval_decisions_append_only before update on public.approval_decisions
  for each row execute function private.approval_decisions_append_only();
create trigger approval_decisions_audit after insert or update or delete on public.approval_decisions
  for each row execute function private.audit_row_change();

-- Requests the caller is an approver of (security definer: policies of the three tables use it without recursing).
create function private.my_approval_request_ids() returns setof uuid
language sql stable security definer
set search_path = ''
as $$
  select a.approval_request_id from public.approval_request_approvers a where a.user_id = (select auth.uid())
$$;
comment on function private.my_approval_request_ids() is 'Approval requests the caller may decide (or could, while open).';

alter table public.approval_requests enable row level security;
alter table public.approval_request_approvers enable row level security;
alter table public.approval_decisions enable row level security;

-- Narrowed in 57-work-automations.sql (alter policy): for workflows.read holders, only requests of executions they
-- see (a project's workflow: its readers); the request's approvers always see what they are asked to decide.
-- approval_requests_select: workflows.read holders of the organization, and the request's approvers.
create policy approval_requests_select on public.approval_requests for select to authenticated
  using (organization_id in (select private.organizations_with_permission('workflows.read'))
         or id in (select private.my_approval_request_ids()));
-- approval_request_approvers_select: whoever sees the request sees its approvers.
create policy approval_request_approvers_select on public.approval_request_approvers for select to authenticated
  using (organization_id in (select private.organizations_with_permission('workflows.read'))
         or approval_request_id in (select private.my_approval_request_ids()));
-- approval_decisions_select: whoever sees the request sees its decisions.
create policy approval_decisions_select on public.approval_decisions for select to authenticated
  using (organization_id in (select private.organizations_with_permission('workflows.read'))
         or approval_request_id in (select private.my_approval_request_ids()));

grant select on public.approval_requests, public.approval_request_approvers, public.approval_decisions
  to authenticated, service_role;
grant execute on function private.my_approval_request_ids() to authenticated, service_role;

-- Members named by an approver spec who hold approvals.decide, each once (the first source that names them).
create function private.resolve_approvers(organization uuid, spec jsonb)
returns table (user_id uuid, source text)
language sql stable
set search_path = ''
as $$
  select distinct on (c.user_id) c.user_id, c.source
  from (
    select m.user_id, 'user_ids' as source, 1 as priority
    from public.organization_members m
    where m.organization_id = organization
      and m.user_id::text in (select jsonb_array_elements_text(coalesce(spec -> 'user_ids', '[]'::jsonb)))
    union all
    select m.user_id, 'role', 2
    from public.organization_members m
    join public.roles r on r.id = m.role_id
    where m.organization_id = organization and r.key = spec ->> 'role'
    union all
    select m.user_id, 'permission', 3
    from public.organization_members m
    join public.role_permissions rp on rp.role_id = m.role_id
    where m.organization_id = organization and rp.permission_key = spec ->> 'permission'
  ) c
  join public.organization_members m on m.organization_id = organization and m.user_id = c.user_id
  join public.role_permissions d on d.role_id = m.role_id and d.permission_key = 'approvals.decide'
  order by c.user_id, c.priority
$$;
comment on function private.resolve_approvers(uuid, jsonb) is 'Members of the organization named by {"user_ids", "role", "permission"} who hold approvals.decide.';

-- The quorum: approved, rejected, or null while undecided, from n approvers, a approvals and r rejections.
create function private.approval_outcome(approval_type text, required integer, n integer, a integer, r integer) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select case
    when n = 0 then 'rejected'
    when approval_type = 'single' then case when a >= 1 then 'approved' when r >= 1 then 'rejected' end
    when approval_type = 'multiple' then case when a >= required then 'approved' when n - r < required then 'rejected' end
    when approval_type = 'unanimous' then case when r >= 1 then 'rejected' when a = n then 'approved' end
    when approval_type = 'majority' then case when 2 * a > n then 'approved' when 2 * (n - r) <= n then 'rejected' end
  end
$$;
comment on function private.approval_outcome(text, integer, integer, integer, integer) is 'Quorum: single (first decision), multiple (approved at N approvals, rejected once N is out of reach), unanimous (any rejection rejects), majority (more than half approve; rejected once half cannot be exceeded). No approvers: rejected.';

-- Closes a pending request and resumes (approve) or fails (reject, fail) its execution. The caller holds the
-- execution's lock.
create function private.close_approval_request(request uuid, closed_status text, resolution text) returns void
language plpgsql
set search_path = ''
as $$
declare
  req public.approval_requests;
begin
  update public.approval_requests a set status = closed_status, decided_at = pg_catalog.now()
  where a.id = request and a.status = 'pending'
  returning * into req;
  if req.id is null then
    return;
  end if;
  if resolution = 'approve' then
    update public.workflow_runs r
    set status = 'succeeded', completed_at = pg_catalog.now(),
        output = jsonb_build_object(
          'approved', true, 'status', closed_status, 'request_id', req.id,
          'decisions', coalesce((select jsonb_agg(jsonb_build_object('approver_id', d.approver_id, 'decision', d.decision,
                                                                     'comment', d.comment, 'form_data', d.form_data) order by d.created_at)
                                 from public.approval_decisions d where d.approval_request_id = req.id), '[]'::jsonb))
    where r.id = req.workflow_run_id and r.status = 'waiting';
    perform private.advance_workflow_execution(req.execution_id, array[req.node_id]);
  else
    update public.workflow_runs r
    set status = 'failed', completed_at = pg_catalog.now(),
        error = jsonb_build_object('code', case when resolution = 'fail' then 'approval_expired' else 'approval_rejected' end,
                                   'status', closed_status, 'request_id', req.id)
    where r.id = req.workflow_run_id and r.status = 'waiting';
    perform private.finish_workflow_execution(req.execution_id, 'failed',
      jsonb_build_object('code', case when resolution = 'fail' then 'approval_expired' else 'approval_rejected' end,
                         'node_id', req.node_id, 'request_id', req.id, 'status', closed_status));
  end if;
end;
$$;
comment on function private.close_approval_request(uuid, text, text) is 'Closes a pending request (approved, rejected or expired) and resumes (approve) or fails (reject, fail) its execution.';

-- Called by the engine when an approval node becomes due.
create function private.open_approval_request(execution uuid, run uuid, node jsonb) returns uuid
language plpgsql
set search_path = ''
as $$
declare
  cfg jsonb := node -> 'config';
  ex record;
  request uuid;
  approvers integer;
begin
  select e.organization_id, e.triggered_by into ex from public.workflow_executions e where e.id = execution;
  insert into public.approval_requests (organization_id, execution_id, workflow_run_id, node_id, title, description,
                                        form_schema, approval_type, required_approvals, requested_by, allow_self_approval,
                                        expires_at, escalate_after, escalate_to, on_timeout)
  values (ex.organization_id, execution, run, node ->> 'id', coalesce(cfg ->> 'title', node ->> 'name'), cfg ->> 'description',
          cfg -> 'form_schema', cfg ->> 'approval_type', (cfg ->> 'required_approvals')::integer, ex.triggered_by,
          coalesce((cfg ->> 'allow_self_approval')::boolean, false),
          pg_catalog.now() + (cfg ->> 'expires_in')::interval, pg_catalog.now() + (cfg ->> 'escalate_after')::interval,
          cfg -> 'escalate_to', coalesce(cfg ->> 'on_timeout', 'reject'))
  returning id into request;
  insert into public.approval_request_approvers (approval_request_id, organization_id, user_id, source)
  select request, ex.organization_id, a.user_id, a.source
  from private.resolve_approvers(ex.organization_id, cfg -> 'approvers') a
  where coalesce((cfg ->> 'allow_self_approval')::boolean, false) or a.user_id is distinct from ex.triggered_by;
  get diagnostics approvers = row_count;
  -- A quorum out of reach from the start (no approvers, or fewer than a multiple request needs) with no escalation
  -- to widen it can never be approved: reject at once rather than wait for expiry.
  if cfg -> 'escalate_to' is null
     and private.approval_outcome(cfg ->> 'approval_type', (cfg ->> 'required_approvals')::integer, approvers, 0, 0) = 'rejected' then
    perform private.close_approval_request(request, 'rejected', 'reject');
  end if;
  return request;
end;
$$;
comment on function private.open_approval_request(uuid, uuid, jsonb) is 'Opens an approval node''s request and resolves its approvers (never the requester unless self-approval is allowed); rejects at once when the quorum can never be reached.';

create function public.decide_approval(request_id uuid, decision text, comment text default null, form_data jsonb default null)
returns public.approval_requests
language plpgsql security definer
set search_path = ''
as $$
declare
  caller uuid := (select auth.uid());
  execution uuid;
  req public.approval_requests;
  problems text[];
  n integer;
  a integer;
  r integer;
  outcome text;
begin
  if decide_approval.decision is null or decide_approval.decision not in ('approve', 'reject') then
    raise exception 'decision must be approve or reject, not %', coalesce(decide_approval.decision, 'null') using errcode = '22023';
  end if;
  select x.execution_id into execution from public.approval_requests x
  where x.id = decide_approval.request_id and x.organization_id in (select private.user_organization_ids());
  if caller is null or execution is null then
    raise exception 'approval request % does not exist or you may not decide it', decide_approval.request_id
      using errcode = '42501';
  end if;
  -- The execution, then the request: every writer of either locks in this order, and the second of two approvers
  -- deciding at the same moment reads the first one's vote (and a closed request) once it gets the lock.
  perform 1 from public.workflow_executions e where e.id = execution for update;
  select * into req from public.approval_requests x where x.id = decide_approval.request_id for update;
  if caller = req.requested_by and not req.allow_self_approval then
    raise exception 'you requested this approval and cannot decide it yourself' using errcode = '42501';
  end if;
  if req.status <> 'pending' or req.expires_at <= pg_catalog.now() then
    raise exception 'approval request % is % and takes no more decisions', req.id,
      case when req.status = 'pending' then 'past its expiry' else req.status end
      using errcode = '55000';
  end if;
  if not exists (select 1 from public.approval_request_approvers x where x.approval_request_id = req.id and x.user_id = caller)
     or not private.has_permission(req.organization_id, 'approvals.decide') then
    raise exception 'you are not an approver of request %', req.id
      using errcode = '42501', hint = 'Approvers are resolved from the node''s config and need approvals.decide.';
  end if;
  if exists (select 1 from public.approval_decisions d where d.approval_request_id = req.id and d.approver_id = caller) then
    raise exception 'you have already decided request %', req.id using errcode = '23505';
  end if;
  if decide_approval.form_data is not null and jsonb_typeof(decide_approval.form_data) <> 'object' then
    raise exception 'form_data must be a JSON object' using errcode = '22023';
  end if;
  if req.form_schema is not null and (decide_approval.decision = 'approve' or decide_approval.form_data is not null) then
    problems := private.json_schema_errors(req.form_schema, coalesce(decide_approval.form_data, '{}'::jsonb));
    if cardinality(problems) > 0 then
      raise exception 'form data does not match the request''s form: %', pg_catalog.array_to_string(problems, '; ')
        using errcode = '22023', detail = pg_catalog.to_jsonb(problems)::text;
    end if;
  end if;
  insert into public.approval_decisions (approval_request_id, organization_id, approver_id, decision, comment, form_data)
  values (req.id, req.organization_id, caller, decide_approval.decision, decide_approval.comment, decide_approval.form_data);

  select (select count(*) from public.approval_request_approvers x where x.approval_request_id = req.id),
         count(*) filter (where d.decision = 'approve'), count(*) filter (where d.decision = 'reject')
  into n, a, r
  from public.approval_decisions d where d.approval_request_id = req.id;
  outcome := private.approval_outcome(req.approval_type, req.required_approvals, n, a, r);
  if outcome is not null then
    perform private.close_approval_request(req.id, outcome, case when outcome = 'approved' then 'approve' else 'reject' end);
  end if;
  select * into req from public.approval_requests x where x.id = req.id;
  return req;
end;
$$;
comment on function public.decide_approval(uuid, text, text, jsonb) is 'An approver''s decision (approve or reject) on a pending request; the quorum is decided in the same statement and closing the request resumes or fails the execution. 42501 not an approver (or the requester), 55000 closed, 23505 decided already, 22023 bad input or form data.';

-- pg_cron (90-scheduled-jobs.sql): escalation once past escalate_after, expiry past expires_at.
create function private.escalate_approval_requests() returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  req record;
  escalated integer := 0;
begin
  for req in
    select x.id, x.organization_id, x.escalate_to, x.requested_by, x.allow_self_approval
    from public.approval_requests x
    join public.workflow_executions e on e.id = x.execution_id
    where x.status = 'pending' and x.escalated_at is null and x.escalate_after <= pg_catalog.now()
    for update of e, x skip locked
  loop
    insert into public.approval_request_approvers (approval_request_id, organization_id, user_id, source)
    select req.id, req.organization_id, a.user_id, 'escalation'
    from private.resolve_approvers(req.organization_id, req.escalate_to) a
    where req.allow_self_approval or a.user_id is distinct from req.requested_by
    on conflict (approval_request_id, user_id) do nothing;
    update public.approval_requests x set escalated_at = pg_catalog.now() where x.id = req.id;
    escalated := escalated + 1;
  end loop;
  return escalated;
end;
$$;
comment on function private.escalate_approval_requests() is 'pg_cron: adds the escalation approvers of pending requests past escalate_after, once per request. Returns how many were escalated.';

create function private.expire_approval_requests() returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  req record;
  expired integer := 0;
begin
  for req in
    select x.id, x.on_timeout
    from public.approval_requests x
    join public.workflow_executions e on e.id = x.execution_id
    where x.status = 'pending' and x.expires_at <= pg_catalog.now()
    for update of e, x skip locked
  loop
    perform private.close_approval_request(req.id, 'expired', req.on_timeout);
    expired := expired + 1;
  end loop;
  return expired;
end;
$$;
comment on function private.expire_approval_requests() is 'pg_cron: expires pending requests past expires_at, applying the node''s on_timeout (approve resumes, reject or fail fails the execution). Returns how many expired.';

grant execute on function public.decide_approval(uuid, text, text, jsonb) to authenticated;

-- Realtime: apps subscribe to executions and approval requests (RLS applies to what each subscriber receives).
alter publication supabase_realtime add table public.workflow_executions, public.approval_requests;

-- Personal data (for export_my_data() in 36-privacy-health-export-erasure.sql): the executions a user started and the
-- approval decisions they made. Erasure needs nothing more: deleting the user sets triggered_by, requested_by,
-- created_by and approver_id to null (the decision itself stays, as the organization's record) and removes the
-- user's approver rows.
create function private.workflow_personal_data(uid uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'workflow_executions', coalesce((select jsonb_agg(jsonb_build_object('id', e.id, 'workflow_id', e.workflow_id,
        'organization_id', e.organization_id, 'status', e.status, 'input', e.input, 'output', e.output, 'error', e.error,
        'started_at', e.started_at, 'completed_at', e.completed_at) order by e.created_at)
      from public.workflow_executions e where e.triggered_by = uid), '[]'::jsonb),
    'approval_decisions', coalesce((select jsonb_agg(jsonb_build_object('id', d.id, 'approval_request_id', d.approval_request_id,
        'organization_id', d.organization_id, 'decision', d.decision, 'comment', d.comment, 'form_data', d.form_data,
        'created_at', d.created_at) order by d.created_at)
      from public.approval_decisions d where d.approver_id = uid), '[]'::jsonb))
$$;
comment on function private.workflow_personal_data(uuid) is 'A user''s workflow data for their export: the executions they started and the approval decisions they made.';
