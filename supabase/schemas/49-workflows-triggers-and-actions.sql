-- Workflows: event triggers (through private.emit_event), causation depth and the refusal log, webhook-trigger secrets.
-- And the task actions the workflow-worker runs in SQL: emit_event, and preparing an http_request through an integration.

-- Every event carries a causation depth: 0 for an event a person or a domain caused, and, for an event a workflow
-- caused, its execution's depth plus one. An execution started by an event has that event's depth. So a workflow
-- that (directly or through others) triggers itself stops: an event 8 levels deep starts nothing, and each refusal is
-- a workflow_event_refusals row. The depth travels in the transaction-local setting workflows.causation_depth, which
-- emit_workflow_event() sets before it emits, so events that triggers emit inside a workflow's action carry it too.

insert into public.webhook_event_types (key, description) values
  ('workflow.event', 'An event a workflow announced with an emit_event task (payload as the task''s params give it)');

-- plpgsql, not sql: a SQL function with a pinned search_path is never inlined and is planned again on every call,
-- and this one runs for every new execution (the column default below) and every event that matches a workflow.
create function private.current_causation_depth() returns integer
language plpgsql stable
set search_path = ''
as $$
begin
  return case when pg_catalog.current_setting('workflows.causation_depth', true) ~ '^[0-9]{1,4}$'
              then pg_catalog.current_setting('workflows.causation_depth', true)::integer else 0 end;
end;
$$;
comment on function private.current_causation_depth() is 'The causation depth of events emitted in this transaction: workflows.causation_depth (set by emit_workflow_event), else 0.';

-- A domain, not a table CHECK, like the executions' other columns (see 45-workflows-definitions.sql).
create domain public.workflow_causation_depth as integer
  constraint workflow_causation_depth_range check (value between 0 and 8);
comment on domain public.workflow_causation_depth is 'How many workflow-caused events led to an execution: 0-8.';

alter table public.workflow_executions add column causation_depth public.workflow_causation_depth not null default 0;
alter table public.workflow_executions alter column causation_depth set default private.current_causation_depth();
comment on column public.workflow_executions.causation_depth is 'How many workflow-caused events led to this execution (49-workflows-triggers-and-actions.sql): 0 unless an event a workflow emitted started it; at 8 nothing more is started.';

create table public.workflow_event_refusals (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  workflow_id uuid not null,
  event_id uuid not null,
  event_type text not null,
  causation_depth integer not null,
  reason text not null,
  created_at timestamptz not null default now(),
  constraint workflow_event_refusals_pkey primary key (id),
  constraint workflow_event_refusals_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint workflow_event_refusals_workflow_id_fkey foreign key (workflow_id) references public.workflows (id) on delete cascade,
  constraint workflow_event_refusals_reason_known check (reason in ('causation_depth_exceeded', 'start_failed'))
);
comment on table public.workflow_event_refusals is 'Log of event-triggered starts that did not happen: the event was 8 workflow-caused levels deep (an automation loop), or the start failed. Written by private.start_event_workflows() only; not audited (it is a log itself).';

create index workflow_event_refusals_organization_id_idx on public.workflow_event_refusals (organization_id, created_at desc);
create index workflow_event_refusals_workflow_id_idx on public.workflow_event_refusals (workflow_id);
create index workflows_event_trigger_idx on public.workflows (organization_id, (trigger_config ->> 'event_type'))
  where trigger_type = 'event' and is_active and deleted_at is null;

alter table public.workflow_event_refusals enable row level security;
-- workflow_event_refusals_select: members holding workflows.read see their organization's refused starts (narrowed
-- in 57-work-automations.sql: those of workflows they see).
create policy workflow_event_refusals_select on public.workflow_event_refusals for select to authenticated
  using (organization_id in (select private.organizations_with_permission('workflows.read')));
grant select on public.workflow_event_refusals to authenticated, service_role;

-- Called by private.emit_event() (44-connectors-webhook-deliveries.sql) for every event: starts each active workflow
-- of the organization whose trigger_config names the event type and whose filter the payload contains (@>), and
-- whose project fits (57-work-automations.sql): a project's workflow starts only on that project's events, an
-- organization-wide one on no event of a private project. The event
-- id makes the start idempotent (a repeated event starts nothing new). One workflow that cannot start never stops the
-- event or the others: its refusal is logged.
create function private.start_event_workflows(organization_id uuid, event_type text, payload jsonb, event_id uuid,
                                              project_id uuid default null)
returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  depth integer;
  w record;
  started integer := 0;
begin
  -- Most events match no workflow: the depth is read only for one that does. emit_event() (44) skips this call when
  -- no workflow passes the first five conditions below: keep the two in step.
  for w in
    select x.id from public.workflows x
    where x.organization_id = start_event_workflows.organization_id and x.trigger_type = 'event' and x.is_active
      and x.deleted_at is null and x.trigger_config ->> 'event_type' = start_event_workflows.event_type
      and payload @> coalesce(x.trigger_config -> 'filter', '{}'::jsonb)
      and (x.project_id = start_event_workflows.project_id
           or (x.project_id is null and (select private.event_reaches_organization(start_event_workflows.project_id))))
    order by x.created_at, x.id
  loop
    depth := coalesce(depth, private.current_causation_depth());
    if depth >= 8 then
      insert into public.workflow_event_refusals (organization_id, workflow_id, event_id, event_type, causation_depth, reason)
      values (start_event_workflows.organization_id, w.id, start_event_workflows.event_id, start_event_workflows.event_type,
              depth, 'causation_depth_exceeded');
      raise log 'workflow % not started by event % (%): causation depth % reached the limit of 8', w.id, event_id, event_type, depth;
      continue;
    end if;
    begin
      perform private.start_workflow_execution(w.id,
        jsonb_build_object('event_id', event_id, 'event_type', event_type, 'causation_depth', depth, 'data', payload)
          || case when start_event_workflows.project_id is null then '{}'::jsonb
                  else jsonb_build_object('project_id', start_event_workflows.project_id) end,
        'event:' || event_id::text, 'event', null);
      started := started + 1;
    exception when others then
      insert into public.workflow_event_refusals (organization_id, workflow_id, event_id, event_type, causation_depth, reason)
      values (start_event_workflows.organization_id, w.id, start_event_workflows.event_id, start_event_workflows.event_type,
              depth, 'start_failed');
      raise log 'workflow % not started by event %: % (%)', w.id, event_id, sqlerrm, sqlstate;
    end;
  end loop;
  return started;
end;
$$;
comment on function private.start_event_workflows(uuid, text, jsonb, uuid, uuid) is 'emit_event hook: starts the active event-triggered workflows whose event_type and filter (JSON containment) match and whose project fits the event''s, with input {"event_id", "event_type", "causation_depth", "data", "project_id"?}; refuses (and logs in workflow_event_refusals) at causation depth 8.';

-- The emit_event task action, run by the worker in one call: emits params.event_type with params.payload as the
-- run's organization, one causation level deeper than the run's execution, and completes the run with the event id.
-- The event id is the run's id, so a retried attempt emits nothing twice (deliveries and starts are per event id).
create function public.emit_workflow_event(run_id uuid, lease_token uuid) returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  run record;
  params jsonb;
begin
  perform 1 from public.workflow_executions e
  where e.id = (select r.execution_id from public.workflow_runs r where r.id = emit_workflow_event.run_id) for update;
  select r.id, r.organization_id, r.input, e.causation_depth, w.project_id into run
  from public.workflow_runs r join public.workflow_executions e on e.id = r.execution_id
  join public.workflows w on w.id = e.workflow_id
  where r.id = emit_workflow_event.run_id and r.lease_token = emit_workflow_event.lease_token and r.status = 'running'
    and r.locked_until >= pg_catalog.now();
  if run.id is null then
    return 'lease_lost';
  end if;
  params := coalesce(run.input -> 'node' -> 'config' -> 'params', '{}'::jsonb);
  if jsonb_typeof(params -> 'event_type') is distinct from 'string'
     or not exists (select 1 from public.webhook_event_types t where t.key = params ->> 'event_type')
     or (params ? 'payload' and jsonb_typeof(params -> 'payload') <> 'object') then
    perform public.fail_workflow_run(run.id, emit_workflow_event.lease_token, jsonb_build_object('code', 'invalid_params',
      'message', 'an emit_event task needs params {"event_type": <a key of webhook_event_types>, "payload"?: {...}}'), false);
    return 'failed';
  end if;
  perform pg_catalog.set_config('workflows.causation_depth', (run.causation_depth + 1)::text, true);
  -- A project's workflow (57-work-automations.sql) emits its events as the project's.
  perform private.emit_event(run.organization_id, params ->> 'event_type', coalesce(params -> 'payload', '{}'::jsonb), run.id,
                             run.project_id);
  perform pg_catalog.set_config('workflows.causation_depth', '', true);
  return public.complete_workflow_run(run.id, emit_workflow_event.lease_token,
    jsonb_build_object('event_id', run.id, 'event_type', params ->> 'event_type', 'causation_depth', run.causation_depth + 1));
end;
$$;
comment on function public.emit_workflow_event(uuid, uuid) is 'workflow-worker (service_role): runs an emit_event task (params {"event_type", "payload"?}) one causation level deeper than its execution and completes the run with {"event_id", "event_type", "causation_depth"}; completed, failed (bad params) or lease_lost.';

-- The http_request task action's request, rendered and authorised in SQL so that the worker never chooses whose
-- credentials it uses: params {"url", "method"?, "headers"?, "body"?, "integration_id"?}; url and string header values
-- and a string body may hold {{input.x}} / {{nodes.<id>.y}}. The integration must be an active one of the run's
-- organization; its credentials (read through the audited purpose path) become the Authorization header.
create function public.prepare_workflow_http_request(run_id uuid, lease_token uuid) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  run public.workflow_runs;
  params jsonb;
  context jsonb;
  integration public.integrations;
  kind text;
  credentials jsonb;
  headers jsonb := '{}'::jsonb;
  header record;
  body jsonb;
  problem text;
begin
  select r.* into run from public.workflow_runs r
  where r.id = prepare_workflow_http_request.run_id and r.lease_token = prepare_workflow_http_request.lease_token
    and r.status = 'running' and r.locked_until >= pg_catalog.now();
  if run.id is null then
    return jsonb_build_object('status', 'lease_lost');
  end if;
  params := coalesce(run.input -> 'node' -> 'config' -> 'params', '{}'::jsonb);
  context := coalesce(run.input -> 'context', '{}'::jsonb);
  problem := case
    when jsonb_typeof(params -> 'url') is distinct from 'string' then 'an http_request task needs params.url'
    when exists (select 1 from jsonb_object_keys(params) k where k not in ('url', 'method', 'headers', 'body', 'integration_id'))
      then 'http_request params are url, method, headers, body and integration_id'
    when params ? 'method' and coalesce(params ->> 'method', '') not in ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')
      then 'params.method must be GET, POST, PUT, PATCH or DELETE'
    when params ? 'headers' and not private.webhook_headers_allowed(params -> 'headers')
      then 'params.headers must be an object of string values, without Authorization, hop-by-hop or framing headers'
    when params ? 'integration_id' and not private.is_uuid_text(params -> 'integration_id') then 'params.integration_id must be a UUID'
  end;
  if problem is null and params ? 'integration_id' then
    select i.* into integration from public.integrations i
    where i.id = (params ->> 'integration_id')::uuid and i.organization_id = run.organization_id;
    problem := case when integration.id is null then 'the integration does not exist in this organization'
                    when not integration.is_active then 'the integration is not active'
                    when integration.credentials_secret_id is null then 'the integration has no credentials' end;
  end if;
  begin
    if problem is null then
      for header in select h.key, h.value from jsonb_each_text(coalesce(params -> 'headers', '{}'::jsonb)) h loop
        headers := headers || jsonb_build_object(header.key, private.render_workflow_template(header.value, context));
      end loop;
      body := case when jsonb_typeof(params -> 'body') = 'string'
                   then to_jsonb(private.render_workflow_template(params ->> 'body', context)) else params -> 'body' end;
      params := params || jsonb_build_object('url', private.render_workflow_template(params ->> 'url', context));
    end if;
  exception when sqlstate '22023' then
    problem := sqlerrm;
  end;
  if problem is not null then
    perform public.fail_workflow_run(run.id, prepare_workflow_http_request.lease_token,
      jsonb_build_object('code', 'invalid_params', 'message', problem), false);
    return jsonb_build_object('status', 'refused', 'error', jsonb_build_object('code', 'invalid_params', 'message', problem));
  end if;
  if integration.id is not null then
    select p.auth_kind into kind from public.integration_providers p where p.key = integration.provider;
    credentials := public.integration_credentials_for_sync(integration.id,
      pg_catalog.format('workflow http_request, run %s', run.id));
    headers := headers || jsonb_build_object('authorization', case kind
      when 'oauth2' then 'Bearer ' || (credentials ->> 'access_token')
      when 'api_key' then 'Bearer ' || (credentials ->> 'api_key')
      else 'Basic ' || pg_catalog.translate(pg_catalog.encode(pg_catalog.convert_to(
             (credentials ->> 'username') || ':' || (credentials ->> 'password'), 'UTF8'), 'base64'), E'\n', '') end);
  end if;
  return jsonb_build_object('status', 'ready', 'method', coalesce(params ->> 'method', case when params ? 'body' then 'POST' else 'GET' end),
                            'url', params ->> 'url', 'headers', headers, 'body', body, 'integration_id', integration.id);
end;
$$;
comment on function public.prepare_workflow_http_request(uuid, uuid) is 'workflow-worker (service_role): renders an http_request task''s url, headers and body from the context and adds the Authorization of its integration (same organization, active; an audited credential read). Returns {"status": "ready", "method", "url", "headers", "body"}, or refused (the run failed: invalid_params) or lease_lost.';

-- Webhook-triggered workflows: the Standard Webhooks signing secret of each lives in Vault; the table that holds its
-- id is private (no API role reaches it). Set by workflows.manage holders, never read back; read by the
-- workflow-webhook function through an audited purpose function.
create table private.workflow_webhook_secrets (
  workflow_id uuid not null,
  organization_id uuid not null,
  secret_id uuid not null,
  updated_by uuid,
  updated_at timestamptz not null default now(),
  constraint workflow_webhook_secrets_pkey primary key (workflow_id),
  constraint workflow_webhook_secrets_workflow_id_fkey foreign key (workflow_id) references public.workflows (id) on delete cascade,
  constraint workflow_webhook_secrets_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint workflow_webhook_secrets_updated_by_fkey foreign key (updated_by) references auth.users (id) on delete set null,
  constraint workflow_webhook_secrets_secret_id_key unique (secret_id)
);
comment on table private.workflow_webhook_secrets is 'Vault secret id of each webhook-triggered workflow''s signing secret; the secret goes with the row (and the row with its workflow).';

create index workflow_webhook_secrets_organization_id_idx on private.workflow_webhook_secrets (organization_id);
create index workflow_webhook_secrets_updated_by_idx on private.workflow_webhook_secrets (updated_by);

create trigger workflow_webhook_secrets_delete_secret after delete or update of secret_id on private.workflow_webhook_secrets
  for each row execute function private.delete_row_secret('secret_id');
create trigger workflow_webhook_secrets_audit after insert or update or delete on private.workflow_webhook_secrets
  for each row execute function private.audit_row_change();

create function public.set_workflow_webhook_secret(workflow_id uuid, signing_secret text) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.workflows;
  existing uuid;
begin
  perform private.require_user();
  select w.* into target from public.workflows w where w.id = set_workflow_webhook_secret.workflow_id;
  if target.id is null or not private.has_permission(target.organization_id, 'workflows.read')
     or not private.can_read_workflow_project(target.id) then
    raise exception 'workflow % not found', set_workflow_webhook_secret.workflow_id using errcode = 'P0002';
  end if;
  if not private.has_permission(target.organization_id, 'workflows.manage')
     or (target.project_id is not null and not private.can_edit_project(target.project_id)) then
    raise exception 'setting a workflow''s webhook secret needs workflows.manage (and editing its project)' using errcode = '42501';
  end if;
  if target.trigger_type <> 'webhook' then
    raise exception 'workflow % is triggered by %, not by a webhook', target.id, target.trigger_type using errcode = '55000',
      hint = 'Set trigger_type = ''webhook'' first.';
  end if;
  perform private.validate_webhook_secret(signing_secret);
  select s.secret_id into existing from private.workflow_webhook_secrets s where s.workflow_id = target.id;
  insert into private.workflow_webhook_secrets (workflow_id, organization_id, secret_id, updated_by)
  values (target.id, target.organization_id,
          private.vault_store(existing, signing_secret, 'workflow_webhook:' || target.id, 'webhook signing secret of workflow ' || target.id),
          (select auth.uid()))
  on conflict on constraint workflow_webhook_secrets_pkey do update
  set secret_id = excluded.secret_id, updated_by = excluded.updated_by, updated_at = pg_catalog.now();
end;
$$;
comment on function public.set_workflow_webhook_secret(uuid, text) is 'Stores (or replaces) the Standard Webhooks signing secret (whsec_ + base64 of 24-64 bytes) of a webhook-triggered workflow in Vault; workflows.manage. Never returns it.';

create function public.workflow_webhook_secret_for_verification(workflow_id uuid) returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  target record;
begin
  select w.id, w.organization_id, s.secret_id into target
  from public.workflows w join private.workflow_webhook_secrets s on s.workflow_id = w.id
  where w.id = workflow_webhook_secret_for_verification.workflow_id and w.trigger_type = 'webhook' and w.deleted_at is null;
  if target.id is null then
    raise exception 'no webhook-triggered workflow % with a signing secret', workflow_webhook_secret_for_verification.workflow_id
      using errcode = 'P0002';
  end if;
  perform private.audit_credential_read(target.organization_id, 'workflows', target.id, 'workflow_webhook',
                                        'verify an incoming webhook signature');
  return private.vault_read(target.secret_id);
end;
$$;
comment on function public.workflow_webhook_secret_for_verification(uuid) is 'workflow-webhook (service_role): the signing secret of a webhook-triggered workflow, to verify a request; P0002 when there is none; every call is an audit_logs credential_read entry.';

grant execute on function public.set_workflow_webhook_secret(uuid, text) to authenticated;
revoke execute on function public.emit_workflow_event(uuid, uuid), public.prepare_workflow_http_request(uuid, uuid),
  public.workflow_webhook_secret_for_verification(uuid) from public, anon, authenticated;
grant execute on function public.emit_workflow_event(uuid, uuid), public.prepare_workflow_http_request(uuid, uuid),
  public.workflow_webhook_secret_for_verification(uuid) to service_role;
