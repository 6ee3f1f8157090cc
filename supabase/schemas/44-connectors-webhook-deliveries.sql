-- Connectors: webhook_deliveries (the outbound queue), emit_event(), and what the webhook-dispatcher calls.
-- Claiming with a lease, recording outcomes on the Standard Webhooks retry schedule, retention, pg_cron + pg_net jobs.

-- private.emit_event() is the one way any domain announces a business event: one delivery per enabled webhook of the
-- organization that subscribes to the type, idempotent per (webhook, event id). The webhook-dispatcher edge function
-- claims due deliveries (for update skip locked, a lease), signs and posts them, and records each outcome; failures
-- are retried after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (with up to 10 % jitter), then the delivery is dead;
-- five consecutive dead deliveries disable the webhook. Not partitioned, so (webhook_id, event_id) can be unique;
-- finished rows are pruned in batches by retention (retention_policies 'webhook_deliveries').

create table public.webhook_deliveries (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  webhook_id uuid not null,
  event_id uuid not null,
  event_type text not null,
  project_id uuid,
  payload jsonb not null,
  occurred_at timestamptz not null default now(),
  status text not null default 'pending',
  attempt integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  locked_until timestamptz,
  lease_id uuid,
  last_attempt_at timestamptz,
  response_status integer,
  response_body text,
  error text,
  duration_ms integer,
  delivered_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint webhook_deliveries_pkey primary key (id),
  constraint webhook_deliveries_webhook_event_key unique (webhook_id, event_id),
  constraint webhook_deliveries_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint webhook_deliveries_webhook_id_fkey foreign key (webhook_id) references public.webhooks (id) on delete cascade,
  constraint webhook_deliveries_status_known check (status in ('pending', 'delivering', 'delivered', 'failed', 'dead')),
  constraint webhook_deliveries_attempt_range check (attempt between 0 and 8),
  constraint webhook_deliveries_lease_while_delivering check ((status = 'delivering') = (lease_id is not null and locked_until is not null)),
  constraint webhook_deliveries_payload_object check (jsonb_typeof(payload) = 'object'),
  constraint webhook_deliveries_response_status_range check (response_status is null or response_status between 100 and 599),
  constraint webhook_deliveries_response_body_length check (response_body is null or char_length(response_body) <= 2048),
  constraint webhook_deliveries_error_length check (error is null or char_length(error) <= 500),
  constraint webhook_deliveries_duration_not_negative check (duration_ms is null or duration_ms >= 0)
);
comment on table public.webhook_deliveries is 'Outbound webhook queue and its recent log: one row per (webhook, event), retried on the Standard Webhooks schedule. Written by emit_event() and the dispatcher''s functions only.';
comment on column public.webhook_deliveries.project_id is 'Project the event belongs to, if any (foreign key added in 57-work-automations.sql).';
comment on column public.webhook_deliveries.attempt is 'Attempts made so far (at most 8: the first, then 7 retries).';
comment on column public.webhook_deliveries.lease_id is 'Identifies the dispatcher''s claim while delivering; an outcome with another lease is ignored.';
comment on column public.webhook_deliveries.response_body is 'First 2048 characters of the receiver''s last response.';
comment on column public.webhook_deliveries.error is 'Why the last attempt failed: http_<status>, timeout, connection_failed, redirect_refused, address_refused, ...';

create index webhook_deliveries_organization_id_idx on public.webhook_deliveries (organization_id, created_at desc);
create index webhook_deliveries_due_idx on public.webhook_deliveries (next_attempt_at) where status in ('pending', 'failed');
create index webhook_deliveries_lease_idx on public.webhook_deliveries (locked_until) where status = 'delivering';
create index webhook_deliveries_finished_idx on public.webhook_deliveries (updated_at) where status in ('delivered', 'dead');

create trigger webhook_deliveries_set_updated_at before update on public.webhook_deliveries
  for each row execute function private.set_updated_at();

alter table public.webhook_deliveries enable row level security;

-- webhook_deliveries_select: webhooks.manage holders see their organization's delivery log (narrowed in
-- 57-work-automations.sql: only deliveries of webhooks they see, and of events of projects they read).
create policy webhook_deliveries_select on public.webhook_deliveries for select to authenticated
  using (organization_id in (select private.organizations_with_permission('webhooks.manage')));

grant select (id, organization_id, webhook_id, event_id, event_type, project_id, payload, occurred_at, status, attempt,
              next_attempt_at, last_attempt_at, response_status, response_body, error, duration_ms, delivered_at,
              created_at, updated_at)
  on public.webhook_deliveries to authenticated, service_role;

-- Disabling a webhook ends what it still had queued; those deliveries are dead without counting as failures.
create function private.end_deliveries_of_disabled_webhook() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  update public.webhook_deliveries d
  set status = 'dead', error = 'webhook_disabled', lease_id = null, locked_until = null
  where d.webhook_id = new.id and d.status in ('pending', 'failed');
  return null;
end;
$$;

create trigger webhooks_end_deliveries_when_disabled after update of is_enabled on public.webhooks
  for each row when (old.is_enabled and not new.is_enabled)
  execute function private.end_deliveries_of_disabled_webhook();

create function private.emit_event(organization_id uuid, event_type text, payload jsonb,
                                   event_id uuid default gen_random_uuid(), project_id uuid default null)
returns uuid
language plpgsql security definer
set search_path = ''
as $$
begin
  if not exists (select 1 from public.webhook_event_types t where t.key = emit_event.event_type) then
    raise exception 'unknown event type "%"', event_type using errcode = '22023',
      hint = 'Add it to webhook_event_types in the migration of the domain that emits it.';
  end if;
  if payload is null or jsonb_typeof(payload) <> 'object' then
    raise exception 'an event payload must be a JSON object' using errcode = '22023';
  end if;
  if event_id is null then
    raise exception 'an event needs an id' using errcode = '22023';
  end if;
  insert into public.webhook_deliveries (organization_id, webhook_id, event_id, event_type, project_id, payload)
  select w.organization_id, w.id, emit_event.event_id, emit_event.event_type, emit_event.project_id, emit_event.payload
  from public.webhooks w
  where w.organization_id = emit_event.organization_id and w.is_enabled and emit_event.event_type = any (w.events)
    -- A project's webhooks get only its events; organization-wide ones no event of a private project (57).
    and (w.project_id = emit_event.project_id
         or (w.project_id is null and (select private.event_reaches_organization(emit_event.project_id))))
  on conflict on constraint webhook_deliveries_webhook_event_key do nothing;
  -- Event-triggered workflows (49-workflows-triggers-and-actions.sql; resolved when called, after every file loaded).
  -- Most organizations have none for most events: one index probe here spares the call. Keep in step with the
  -- workflows start_event_workflows() selects (49): this is its filter without the payload and project tests.
  if exists (select 1 from public.workflows w
             where w.organization_id = emit_event.organization_id and w.trigger_type = 'event' and w.is_active
               and w.deleted_at is null and w.trigger_config ->> 'event_type' = emit_event.event_type) then
    perform private.start_event_workflows(emit_event.organization_id, emit_event.event_type, emit_event.payload,
                                          emit_event.event_id, emit_event.project_id);
  end if;
  return event_id;
end;
$$;
comment on function private.emit_event(uuid, text, jsonb, uuid, uuid) is 'Announces a business event: enqueues one delivery per enabled subscribing webhook of the organization (idempotent per webhook and event id) and starts the matching event-triggered workflows; returns the event id. An event of a project reaches that project''s webhooks and workflows, and the organization-wide ones only when the project is organization-visible. Not granted to API roles.';

-- A client may ask for a test delivery to one of its own webhooks (subscribed to webhook.test or not).
create function public.send_test_webhook(webhook_id uuid) returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.webhooks;
  new_event uuid := gen_random_uuid();
begin
  select w.* into target from public.webhooks w where w.id = webhook_id;
  perform private.require_webhook_manager(target.organization_id, target.project_id);
  if not target.is_enabled then
    raise exception 'webhook % is disabled', webhook_id using errcode = '55000', hint = 'Enable it first.';
  end if;
  insert into public.webhook_deliveries (organization_id, webhook_id, event_id, event_type, payload)
  values (target.organization_id, target.id, new_event, 'webhook.test',
          jsonb_build_object('webhook_id', target.id, 'requested_by', (select auth.uid())));
  return new_event;
end;
$$;
comment on function public.send_test_webhook(uuid) is 'Queues a webhook.test delivery to one webhook; webhooks.manage. Returns the event id.';

-- Integrations announce themselves (payloads never carry credentials).
create function private.emit_integration_event() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  row_data public.integrations := coalesce(new, old);
begin
  perform private.emit_event(row_data.organization_id,
    case when tg_op = 'INSERT' then 'integration.connected' when tg_op = 'DELETE' then 'integration.disconnected'
         else 'integration.credentials_updated' end,
    jsonb_build_object('integration_id', row_data.id, 'provider', row_data.provider,
                       'display_name', row_data.display_name, 'has_credentials', row_data.has_credentials));
  return null;
end;
$$;

create trigger integrations_emit_connected after insert or delete on public.integrations
  for each row execute function private.emit_integration_event();
create trigger integrations_emit_credentials_updated after update of credentials_updated_at on public.integrations
  for each row when (old.credentials_updated_at is distinct from new.credentials_updated_at)
  execute function private.emit_integration_event();

-- Delay before the retry that follows a failed attempt (Standard Webhooks' reference schedule), with jitter.
create function private.webhook_retry_delay(failed_attempt integer) returns interval
language sql volatile
set search_path = ''
as $$
  select (array[interval '5 seconds', interval '5 minutes', interval '30 minutes', interval '2 hours',
                interval '5 hours', interval '10 hours', interval '10 hours'])[failed_attempt] * (1 + random() * 0.1)
$$;
comment on function private.webhook_retry_delay(integer) is 'Wait after failed attempt n (1-7): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, plus up to 10 % jitter; null after the 8th (dead).';

-- The dispatcher's claim: due deliveries of enabled webhooks, locked with skip locked and leased; each comes with its
-- webhook's URL, headers, signing secret and the exact body to sign. Reading the secrets is audited once per webhook
-- and claim. A lease that ran out (a dispatcher died) makes the delivery claimable again; one that ran out on the
-- last attempt makes it dead.
create function public.claim_webhook_deliveries(batch_size integer default 50, lease_seconds integer default 60)
returns table (delivery_id uuid, lease_id uuid, webhook_id uuid, event_id uuid, event_type text, attempt integer,
               url text, headers jsonb, signing_secret text, body text)
language plpgsql security definer
set search_path = ''
as $$
#variable_conflict use_column
begin
  if batch_size is null or batch_size not between 1 and 1000 or lease_seconds is null or lease_seconds not between 5 and 900 then
    raise exception 'batch_size must be 1-1000 and lease_seconds 5-900' using errcode = '22023';
  end if;
  update public.webhook_deliveries d
  set status = 'dead', error = 'lease_expired', lease_id = null, locked_until = null
  where d.status = 'delivering' and d.locked_until < pg_catalog.now() and d.attempt >= 8;

  return query
    -- Due retries and first attempts come in next_attempt_at order through the partial index; deliveries whose lease
    -- ran out (rare) are picked separately, so neither search scans the other's rows.
    with scheduled as (
      select d.id, d.next_attempt_at
      from public.webhook_deliveries d
      where d.status in ('pending', 'failed') and d.next_attempt_at <= pg_catalog.now()
        and exists (select 1 from public.webhooks w where w.id = d.webhook_id and w.is_enabled)
      order by d.next_attempt_at
      limit batch_size
      for update of d skip locked
    ), abandoned as (
      select d.id, d.next_attempt_at
      from public.webhook_deliveries d
      where d.status = 'delivering' and d.locked_until < pg_catalog.now()
        and exists (select 1 from public.webhooks w where w.id = d.webhook_id and w.is_enabled)
      limit batch_size
      for update of d skip locked
    ), due as (
      select x.id from (select * from abandoned union all select * from scheduled) x
      order by x.next_attempt_at
      limit batch_size
    ), claimed as (
      update public.webhook_deliveries d
      set status = 'delivering', attempt = d.attempt + 1, lease_id = gen_random_uuid(),
          locked_until = pg_catalog.now() + make_interval(secs => lease_seconds), last_attempt_at = pg_catalog.now()
      from due
      where d.id = due.id
      returning d.id, d.lease_id, d.webhook_id, d.event_id, d.event_type, d.attempt, d.payload, d.occurred_at
    ), enriched as (
      select c.*, w.url, w.headers, w.credentials_secret_id, w.organization_id
      from claimed c join public.webhooks w on w.id = c.webhook_id
    ), secrets as materialized (
      -- One decryption per webhook, not per delivery.
      select s.id, s.decrypted_secret
      from vault.decrypted_secrets s
      where s.id in (select e.credentials_secret_id from enriched e)
    ), audited as (
      insert into public.audit_logs (actor_id, actor_role, organization_id, action, resource, resource_id,
                                     correlation_id, metadata)
      select null, coalesce((select auth.role()), session_user::text), e.organization_id, 'credential_read', 'webhooks',
             e.webhook_id::text, private.request_correlation_id(),
             jsonb_build_object('purpose', 'webhook_dispatch', 'reason', 'sign claimed deliveries', 'deliveries', count(*),
                                'session_user', session_user::text,
                                'application_name', left(pg_catalog.current_setting('application_name', true), 64))
      from enriched e
      group by e.organization_id, e.webhook_id
    )
    select e.id, e.lease_id, e.webhook_id, e.event_id, e.event_type, e.attempt, e.url::text, e.headers,
           s.decrypted_secret,
           jsonb_build_object('type', e.event_type,
                              'timestamp', to_char(e.occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                              'data', e.payload)::text
    from enriched e
    join secrets s on s.id = e.credentials_secret_id;
end;
$$;
comment on function public.claim_webhook_deliveries(integer, integer) is 'webhook-dispatcher: claims up to batch_size due deliveries with a lease (for update skip locked) and returns them with URL, headers, signing secret and body; each webhook''s secret read is an audit_logs credential_read entry. service_role only.';

-- The dispatcher's outcomes, in one call per batch: [{delivery_id, lease_id, status_code, response_body, error,
-- duration_ms}]. A 2xx without error is delivered; anything else is retried on the schedule, or dead after the 8th
-- attempt. Outcomes whose lease no longer holds the delivery are ignored. Returns how many were recorded.
create function public.record_webhook_deliveries(outcomes jsonb) returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  recorded integer;
begin
  if outcomes is null or jsonb_typeof(outcomes) <> 'array' then
    raise exception 'outcomes must be a JSON array' using errcode = '22023';
  end if;
  -- A success resets the webhook's count of consecutive dead deliveries; each dead delivery adds one; at five the
  -- webhook is disabled with the reason.
  with o as (
    select x.delivery_id, x.lease_id, x.status_code, x.response_body, x.error, x.duration_ms,
           coalesce(x.status_code between 200 and 299 and x.error is null, false) as ok
    from jsonb_to_recordset(outcomes) as x(delivery_id uuid, lease_id uuid, status_code integer, response_body text,
                                            error text, duration_ms integer)
  ), done as (
    update public.webhook_deliveries d
    set status = case when o.ok then 'delivered' when d.attempt >= 8 then 'dead' else 'failed' end,
        next_attempt_at = case when o.ok or d.attempt >= 8 then d.next_attempt_at
                               else pg_catalog.now() + private.webhook_retry_delay(d.attempt) end,
        lease_id = null, locked_until = null,
        response_status = case when o.status_code between 100 and 599 then o.status_code end,
        response_body = left(o.response_body, 2048),
        error = case when o.ok then null else left(coalesce(o.error, 'http_' || o.status_code, 'unknown'), 500) end,
        duration_ms = greatest(o.duration_ms, 0),
        delivered_at = case when o.ok then pg_catalog.now() end
    from o
    where d.id = o.delivery_id and d.lease_id = o.lease_id and d.status = 'delivering'
    returning d.webhook_id, d.status, d.error
  ), per_webhook as (
    select x.webhook_id, count(*) filter (where x.status = 'delivered') as delivered,
           count(*) filter (where x.status = 'dead') as dead,
           max(x.error) filter (where x.status = 'dead') as last_error
    from done x group by x.webhook_id
  ), webhooks_updated as (
    update public.webhooks w
    set last_triggered_at = pg_catalog.now(),
        failure_count = case when r.delivered > 0 then 0 else w.failure_count + r.dead end,
        is_enabled = w.is_enabled and (r.delivered > 0 or w.failure_count + r.dead < 5),
        disabled_reason = case when w.is_enabled and r.delivered = 0 and w.failure_count + r.dead >= 5
                               then format('disabled after %s consecutive deliveries failed on every attempt (last error: %s)',
                                           w.failure_count + r.dead, r.last_error)
                               else w.disabled_reason end
    from per_webhook r
    where w.id = r.webhook_id
    returning w.id
  )
  select count(*) into recorded from done;
  return recorded;
end;
$$;
comment on function public.record_webhook_deliveries(jsonb) is 'webhook-dispatcher: records a batch of outcomes (delivered, retried on the Standard Webhooks schedule, or dead) and disables a webhook after 5 consecutive dead deliveries. service_role only.';

grant execute on function public.send_test_webhook(uuid) to authenticated;
grant execute on function public.claim_webhook_deliveries(integer, integer), public.record_webhook_deliveries(jsonb)
  to service_role;

-- Retention: finished deliveries (delivered or dead) go after retention_policies' days, in batches so that a large
-- backlog never holds long locks; queued ones stay.
create function private.prune_webhook_deliveries(cutoff timestamptz, batch_size integer default 5000) returns bigint
language plpgsql
set search_path = ''
as $$
declare
  removed bigint := 0;
  batch bigint;
begin
  loop
    delete from public.webhook_deliveries d
    where d.id in (select f.id from public.webhook_deliveries f
                   where f.status in ('delivered', 'dead') and f.updated_at < cutoff
                   limit batch_size);
    get diagnostics batch = row_count;
    removed := removed + batch;
    exit when batch < batch_size;
  end loop;
  return removed;
end;
$$;
comment on function private.prune_webhook_deliveries(timestamptz, integer) is 'Deletes delivered and dead webhook deliveries finished before the cutoff, batch_size rows at a time; returns how many.';

insert into public.retention_policies (table_name, retention_days) values ('webhook_deliveries', 30);

-- On Supabase, pg_cron calls the dispatcher every minute through pg_net (Supabase's "scheduling edge functions"
-- pattern); the project URL and the service role key are read from Vault (secrets named project_url and
-- service_role_key) when the job runs, so they are in no table. Idempotent: cron.schedule() replaces a job of the
-- same name. Without pg_net (the local platform, where `npm start` runs the loop itself) it schedules nothing.
create function private.schedule_edge_functions() returns text[]
language plpgsql
set search_path = ''
as $$
begin
  if not exists (select 1 from pg_catalog.pg_extension e where e.extname = 'pg_net') then
    raise notice 'pg_net is not installed: no edge function is scheduled (enable pg_net, then run select private.schedule_edge_functions())';
    return '{}'::text[];
  end if;
  perform cron.schedule('webhook-dispatcher', '* * * * *', $job$
    select net.http_post(
      url := (select decrypted_secret from vault.decrypted_secrets where name = 'project_url') || '/functions/v1/webhook-dispatcher',
      headers := jsonb_build_object('Content-Type', 'application/json', 'Authorization',
                                    'Bearer ' || (select decrypted_secret from vault.decrypted_secrets where name = 'service_role_key')),
      body := jsonb_build_object('scheduled_at', now()),
      timeout_milliseconds := 55000)
  $job$);
  -- The workflow worker (issue 11), the same way.
  perform cron.schedule('workflow-worker', '* * * * *', $job$
    select net.http_post(
      url := (select decrypted_secret from vault.decrypted_secrets where name = 'project_url') || '/functions/v1/workflow-worker',
      headers := jsonb_build_object('Content-Type', 'application/json', 'Authorization',
                                    'Bearer ' || (select decrypted_secret from vault.decrypted_secrets where name = 'service_role_key')),
      body := jsonb_build_object('scheduled_at', now()),
      timeout_milliseconds := 55000)
  $job$);
  return array['webhook-dispatcher', 'workflow-worker'];
end;
$$;
comment on function private.schedule_edge_functions() is 'Creates (or updates) the pg_cron jobs that invoke edge functions through pg_net (webhook-dispatcher and workflow-worker every minute); does nothing without pg_net. Run it again after enabling pg_net.';

select private.schedule_edge_functions();
