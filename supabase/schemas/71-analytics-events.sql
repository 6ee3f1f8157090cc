-- Growth analytics: analytics_events (monthly partitions), the private exact-once key table, upsert_events().
-- Events are redacted and their IP truncated on the way in; the receptionist's calls and appointments land here too.

-- analytics_events is append-only and partitioned by month on occurred_at (partitions in `private`, upkeep by
-- private.ensure_monthly_partitions). A unique index on a partitioned table must include the partition key, so
-- exact-once per (organization_id, event_id) is decided by private.analytics_event_keys, one row per stored event,
-- kept as long as the event (retention_policies 'analytics_events' drops both).

create table private.analytics_event_keys (
  organization_id uuid not null,
  event_id uuid not null,
  occurred_at timestamptz not null,
  constraint analytics_event_keys_pkey primary key (organization_id, event_id)
);
comment on table private.analytics_event_keys is 'One row per stored analytics event: its primary key decides exact-once per (organization_id, event_id) across partitions and concurrent batches. Removed with the event by retention, and with the organization by trigger (no foreign key: it cost a lookup per event, a third of a batch''s time).';
comment on column private.analytics_event_keys.occurred_at is 'The event''s occurred_at (which partition holds it; retention removes keys older than the cutoff).';

create table public.analytics_events (
  organization_id uuid not null,
  event_id uuid not null,
  occurred_at timestamptz not null,
  event_name text not null,
  category text,
  agent_id uuid,
  user_id uuid,
  anonymous_id text,
  session_id text,
  props jsonb not null default '{}'::jsonb,
  ip_address inet,
  user_agent text,
  received_at timestamptz not null default now(),
  constraint analytics_events_pkey primary key (organization_id, event_id, occurred_at),
  constraint analytics_events_agent_id_fkey foreign key (agent_id) references public.ai_agents (id) on delete set null,
  constraint analytics_events_event_name_format check (char_length(event_name) <= 100 and event_name ~ '^[a-z0-9][a-z0-9._:-]*$'),
  constraint analytics_events_category_length check (category is null or char_length(category) between 1 and 100),
  constraint analytics_events_anonymous_id_length check (anonymous_id is null or char_length(anonymous_id) between 1 and 255),
  constraint analytics_events_session_id_length check (session_id is null or char_length(session_id) between 1 and 255),
  constraint analytics_events_user_agent_length check (user_agent is null or char_length(user_agent) <= 1024),
  constraint analytics_events_props_object check (jsonb_typeof(props) = 'object'),
  constraint analytics_events_ip_truncated check (ip_address is null or ip_address
    = pg_catalog.network(pg_catalog.set_masklen(ip_address, case when pg_catalog.family(ip_address) = 4 then 24 else 48 end))::inet)
) partition by range (occurred_at);
comment on table public.analytics_events is 'Product and business events per organization (seed 002 "events", seed 003 "analytics_events"), partitioned by month on occurred_at. Written only by upsert_events() and the receptionist''s triggers (no client or service-role table writes); exact-once per (organization_id, event_id) through private.analytics_event_keys. No foreign keys to organizations or auth.users (a lookup per event): events go with their organization and are anonymised with their user, by triggers.';
comment on column public.analytics_events.event_id is 'Client-supplied idempotency key: an event sent twice, in one batch or in two, is stored once.';
comment on column public.analytics_events.event_name is 'Seed 003''s event_type (session.started, page.viewed, cart.added, order.completed, call.started, ...).';
comment on column public.analytics_events.category is 'Seed 003''s event_category.';
comment on column public.analytics_events.props is 'Seed 003''s event_data, after public.redact_telemetry_metadata() (never stored unredacted).';
comment on column public.analytics_events.anonymous_id is 'The visitor''s id when they are not (yet) a user.';
comment on column public.analytics_events.ip_address is 'Truncated on insert to its /24 (IPv4) or /48 (IPv6) network (the CHECK holds it there).';
comment on column public.analytics_events.occurred_at is 'When it happened (seed 003''s created_at); received_at is when it was stored.';

create table private.analytics_events_default partition of public.analytics_events default;

create index analytics_events_org_name_occurred_idx on public.analytics_events (organization_id, event_name, occurred_at);
create index analytics_events_agent_id_idx on public.analytics_events (agent_id) where agent_id is not null;
create index analytics_events_user_id_idx on public.analytics_events (user_id) where user_id is not null;

-- No foreign key to organizations (a lookup per event): the events and their keys go with their organization by trigger.
create function private.delete_organization_analytics() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  delete from public.analytics_events e where e.organization_id = old.id;
  delete from private.analytics_event_keys k where k.organization_id = old.id;
  return old;
end;
$$;
comment on function private.delete_organization_analytics() is 'AFTER DELETE on organizations: removes the organization''s analytics events and their keys.';

create trigger organizations_delete_analytics after delete on public.organizations
  for each row execute function private.delete_organization_analytics();

alter table public.analytics_events enable row level security;

-- analytics_events_select: members holding analytics.read read their organization's events.
create policy analytics_events_select on public.analytics_events for select to authenticated
  using (organization_id in (select private.organizations_with_permission('analytics.read')));

grant select on public.analytics_events to authenticated, service_role;

-- Two years, then whole months go (cleanup_retention_data(), with their keys); upsert_events() refuses older events.
insert into public.retention_policies (table_name, retention_days) values ('analytics_events', 730);

-- Retention (cleanup_retention_data() in 35): whole expired months go, then the keys older than the cutoff. A key
-- may go while its event still sits in a month that stays: upsert_events() refuses events older than the cutoff, so
-- no second copy can arrive for it.
create function private.purge_expired_analytics_events(cutoff timestamptz) returns bigint
language plpgsql security definer
set search_path = ''
as $$
declare
  removed bigint;
begin
  removed := private.drop_expired_partitions('public.analytics_events'::regclass, cutoff, 'retention_policy');
  delete from private.analytics_event_keys k where k.occurred_at < cutoff;
  return removed;
end;
$$;
comment on function private.purge_expired_analytics_events(timestamptz) is 'Drops the analytics_events months that ended before the cutoff and the exact-once keys older than it; returns the rows dropped (from statistics).';

-- Stores one event the database derives itself (the receptionist's triggers, below), exact-once: the key insert
-- decides, the event follows its key. One row, two single-row INSERTs: a booking pays for its own event and nothing
-- else (no JSON batch to unpack). The caller passes props that are safe to store: redacted where they hold free text
-- (a conversation's intent and outcome), as they are where they hold only ids, statuses and times (an
-- appointment's). upsert_events() does the same inline for a client's whole batch, with validation and redaction.
create function private.record_analytics_event(organization_id uuid, event_id uuid, occurred_at timestamptz,
                                               event_name text, category text, agent_id uuid, props jsonb)
returns boolean
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into private.analytics_event_keys (organization_id, event_id, occurred_at)
  values (record_analytics_event.organization_id, record_analytics_event.event_id, record_analytics_event.occurred_at)
  on conflict do nothing;
  if not found then
    return false;
  end if;
  insert into public.analytics_events (organization_id, event_id, occurred_at, event_name, category, agent_id, props)
  values (record_analytics_event.organization_id, record_analytics_event.event_id, record_analytics_event.occurred_at,
          record_analytics_event.event_name, record_analytics_event.category, record_analytics_event.agent_id,
          coalesce(record_analytics_event.props, '{}'::jsonb));
  return true;
end;
$$;
comment on function private.record_analytics_event(uuid, uuid, timestamptz, text, text, uuid, jsonb) is 'Stores one trusted event the database derives (props already safe to store) exact-once; returns whether it was new. Not granted to API roles.';

create function private.try_uuid(value text) returns uuid
language plpgsql immutable
set search_path = ''
as $$
begin
  return value::uuid;
exception when others then
  return null;
end;
$$;
comment on function private.try_uuid(text) is 'The text as uuid, or null when it is not one.';

create function private.try_cast_timestamptz(value text) returns timestamptz
language plpgsql stable
set search_path = ''
as $$
begin
  return value::timestamptz;
exception when others then
  return null;
end;
$$;
comment on function private.try_cast_timestamptz(text) is 'The text as timestamptz, or null when it is not one.';

-- The server-side pipeline's batch RPC. One statement classifies every row, claims the keys of the first valid copy
-- of each (organization_id, event_id), and stores exactly the rows whose key it claimed: a concurrent batch with the
-- same key waits on the key's unique index entry and then finds it taken, so it reports a duplicate. The batch is
-- joined by hash (enable_nestloop off: the JSON rows have no statistics, and a nested loop over them is quadratic);
-- JIT is off because the penalised plan costs would make every batch pay seconds of compilation.
create function public.upsert_events(_rows jsonb) returns jsonb
language plpgsql security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
set enable_nestloop = off
set jit = off
as $$
declare
  retention_days integer := coalesce((select p.retention_days from public.retention_policies p
                                      where p.table_name = 'analytics_events' and p.enabled), 3650);
  earliest timestamptz := pg_catalog.now() - make_interval(days => retention_days);
  latest timestamptz := pg_catalog.now() + interval '5 minutes';
  report jsonb;
  fast boolean := true;
begin
  if _rows is null or jsonb_typeof(_rows) <> 'array' then
    raise exception '_rows must be a JSON array of events' using errcode = '22023';
  end if;
  if jsonb_array_length(_rows) > 10000 then
    raise exception 'at most 10000 events per call (got %)', jsonb_array_length(_rows) using errcode = '54000',
      hint = 'Split the batch; nothing was stored.';
  end if;

  <<attempt>>
  loop
  begin
  with fields as (
    select e.n::integer as n, e.value as v,
           case when jsonb_typeof(e.value) = 'object' then e.value end as o
    from jsonb_array_elements(_rows) with ordinality e(value, n)
  ),
  -- Fast: every value cast directly (one batch, no per-row exception handling). Careful (after a data exception in the
  -- fast attempt): the same casts, each one caught. Both read the same values the same way; only the cost differs.
  raw as materialized (
    select f.n, f.o,
      case when fast then (f.o ->> 'organization_id')::uuid else private.try_uuid(f.o ->> 'organization_id') end as organization_id,
      case when fast then (f.o ->> 'event_id')::uuid else private.try_uuid(f.o ->> 'event_id') end as event_id,
      case when fast then (f.o ->> 'agent_id')::uuid else private.try_uuid(f.o ->> 'agent_id') end as agent_id,
      case when fast then (f.o ->> 'user_id')::uuid else private.try_uuid(f.o ->> 'user_id') end as user_id,
      -- Only timestamps with an explicit offset (Z or +hh[:mm]): a bare local time would depend on the session.
      case when f.o ->> 'occurred_at' ~ '[0-9](Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$'
           then case when fast then (f.o ->> 'occurred_at')::timestamptz
                     else private.try_cast_timestamptz(f.o ->> 'occurred_at') end end as occurred_at,
      case when fast then (f.o ->> 'ip_address')::inet else private.try_inet(f.o ->> 'ip_address') end as ip_address,
      f.o ->> 'event_name' as event_name,
      f.o ->> 'category' as category,
      f.o ->> 'anonymous_id' as anonymous_id,
      f.o ->> 'session_id' as session_id,
      f.o ->> 'user_agent' as user_agent,
      coalesce(f.o -> 'props', '{}'::jsonb) as props
    from fields f
  ),
  -- Every field but the source object (only the checks read it): the later stages copy narrower rows.
  checked as materialized (
    select r.n, r.organization_id, r.event_id, r.agent_id, r.user_id, r.occurred_at, r.ip_address, r.event_name,
      r.category, r.anonymous_id, r.session_id, r.user_agent, r.props,
      case
        when r.o is null then 'not_an_object'
        when r.organization_id is null then 'invalid_organization_id'
        when r.event_id is null then 'invalid_event_id'
        when r.occurred_at is null then 'invalid_occurred_at'
        when r.event_name is null or char_length(r.event_name) > 100 or r.event_name !~ '^[a-z0-9][a-z0-9._:-]*$' then 'invalid_event_name'
        when jsonb_typeof(r.props) <> 'object' or pg_catalog.pg_column_size(r.props) > 32768 then 'invalid_props'
        when r.o ? 'agent_id' and jsonb_typeof(r.o -> 'agent_id') <> 'null' and r.agent_id is null then 'invalid_agent_id'
        when r.o ? 'user_id' and jsonb_typeof(r.o -> 'user_id') <> 'null' and r.user_id is null then 'invalid_user_id'
        when r.o ? 'ip_address' and jsonb_typeof(r.o -> 'ip_address') <> 'null' and r.ip_address is null then 'invalid_ip_address'
        when (r.category is not null and char_length(r.category) not between 1 and 100)
          or (r.anonymous_id is not null and char_length(r.anonymous_id) not between 1 and 255)
          or (r.session_id is not null and char_length(r.session_id) not between 1 and 255)
          or (r.user_agent is not null and char_length(r.user_agent) > 1024) then 'field_too_long'
        when r.occurred_at < earliest then 'outside_retention'
        when r.occurred_at > latest then 'in_the_future'
      end as invalid_reason
    from raw r
  ),
  -- Lookups by array (index scans), then hash joins: the batch is joined as a set, never row by row.
  orgs as (
    select o.id from public.organizations o
    where o.id = any (array(select distinct c.organization_id from checked c where c.invalid_reason is null))
      and o.deleted_at is null
  ),
  agents as (
    select a.id, a.organization_id from public.ai_agents a
    where a.id = any (array(select distinct c.agent_id from checked c where c.invalid_reason is null and c.agent_id is not null))
  ),
  users as (
    select u.id from auth.users u
    where u.id = any (array(select distinct c.user_id from checked c where c.invalid_reason is null and c.user_id is not null))
  ),
  gated as materialized (
    select c.*,
      case
        when c.invalid_reason is not null then c.invalid_reason
        when o.id is null then 'unknown_organization'
        when c.agent_id is not null and a.id is null then 'unknown_agent'
        when c.user_id is not null and u.id is null then 'unknown_user'
      end as reason
    from checked c
    left join orgs o on o.id = c.organization_id
    left join agents a on a.id = c.agent_id and a.organization_id = c.organization_id
    left join users u on u.id = c.user_id
  ),
  firsts as (
    select g.organization_id, g.event_id, min(g.n) as first_n
    from gated g where g.reason is null group by g.organization_id, g.event_id
  ),
  candidates as materialized (
    select g.* from gated g
    join firsts f on f.organization_id = g.organization_id and f.event_id = g.event_id and f.first_n = g.n
  ),
  keys as (
    insert into private.analytics_event_keys (organization_id, event_id, occurred_at)
    select c.organization_id, c.event_id, c.occurred_at from candidates c
    -- In key order, so that two batches sharing keys wait for each other instead of deadlocking.
    order by c.organization_id, c.event_id
    on conflict do nothing
    returning organization_id, event_id
  ),
  written as (
    insert into public.analytics_events (organization_id, event_id, occurred_at, event_name, category, agent_id, user_id,
                                         anonymous_id, session_id, props, ip_address, user_agent)
    select c.organization_id, c.event_id, c.occurred_at, c.event_name, c.category, c.agent_id, c.user_id,
           c.anonymous_id, c.session_id, public.redact_telemetry_metadata(c.props),
           pg_catalog.network(pg_catalog.set_masklen(c.ip_address, case when pg_catalog.family(c.ip_address) = 4 then 24 else 48 end))::inet,
           c.user_agent
    from candidates c
    join keys k on k.organization_id = c.organization_id and k.event_id = c.event_id
    returning organization_id, event_id
  ),
  decided as (
    select g.n, g.event_id, g.reason,
      case
        when g.reason is not null then 'rejected'
        when w.event_id is not null then 'inserted'
        else 'duplicate'
      end as status
    from gated g
    left join candidates c on c.n = g.n
    left join written w on c.n is not null and w.organization_id = c.organization_id and w.event_id = c.event_id
  )
  select jsonb_build_object(
           'inserted', count(*) filter (where d.status = 'inserted'),
           'duplicate', count(*) filter (where d.status = 'duplicate'),
           'rejected', count(*) filter (where d.status = 'rejected'),
           'results', coalesce(jsonb_agg(
             case when d.reason is null then jsonb_build_object('index', d.n - 1, 'event_id', d.event_id, 'status', d.status)
                  when d.event_id is null then jsonb_build_object('index', d.n - 1, 'status', d.status, 'reason', d.reason)
                  else jsonb_build_object('index', d.n - 1, 'event_id', d.event_id, 'status', d.status, 'reason', d.reason)
             end order by d.n), '[]'::jsonb))
  into report
  from decided d;
  exit attempt;
  exception when data_exception then
    -- A malformed value in the batch: nothing of the fast attempt stays; the careful attempt rejects just that row.
    if not fast then
      raise;
    end if;
    fast := false;
  end;
  end loop;
  return report;
end;
$$;
comment on function public.upsert_events(jsonb) is 'Stores up to 10,000 analytics events ({organization_id, event_id, occurred_at, event_name, category, agent_id, user_id, anonymous_id, session_id, props, ip_address, user_agent}) exact-once per (organization_id, event_id), in one statement; returns {inserted, duplicate, rejected, results: [{index, event_id, status, reason}]}. Service role only.';

grant execute on function public.upsert_events(jsonb) to service_role;

-- plpgsql, not sql: a SQL function with a pinned search_path is never inlined, and PostgreSQL plans its body again on
-- every call; plpgsql evaluates the expression with a plan it keeps for the session. It runs once per derived event.
create function private.derived_uuid(seed text) returns uuid
language plpgsql immutable parallel safe
set search_path = ''
as $$
begin
  return pg_catalog.md5(seed)::uuid;
end;
$$;
comment on function private.derived_uuid(text) is 'A stable uuid for an event the database derives from a row and a change (the same change gives the same id).';

-- The receptionist's conversations and appointments as analytics events (60-64 announce them to webhooks through
-- private.emit_event; these triggers are separate so that the two domains evolve apart). Event ids are derived from
-- the row and the change: a call's start and end once each; an appointment's change once per transaction (its id
-- includes the transaction's time, so the same status set again later is a new event).
create function private.analytics_from_conversation() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform private.record_analytics_event(new.organization_id,
    private.derived_uuid(new.id::text || case when tg_op = 'INSERT' then ':call.started' else ':call.ended' end),
    case when tg_op = 'INSERT' then new.started_at else new.ended_at end,
    case when tg_op = 'INSERT' then 'call.started' else 'call.ended' end,
    'receptionist', new.agent_id,
    -- intent and outcome are free text (an agent's words): redacted like a client's props.
    public.redact_telemetry_metadata(jsonb_strip_nulls(jsonb_build_object(
      'conversation_id', new.id, 'direction', new.direction, 'status', new.status,
      'duration_seconds', new.duration_seconds, 'intent', new.intent, 'outcome', new.outcome))));
  return null;
end;
$$;
comment on function private.analytics_from_conversation() is 'AFTER INSERT / ended_at set on conversations: records call.started / call.ended in analytics_events (with agent_id).';

create trigger conversations_analytics_started after insert on public.conversations
  for each row execute function private.analytics_from_conversation();
create trigger conversations_analytics_ended after update of ended_at on public.conversations
  for each row when (old.ended_at is null and new.ended_at is not null)
  execute function private.analytics_from_conversation();

create function private.analytics_from_appointment() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  event text;
  agent uuid;
begin
  if tg_op = 'INSERT' then
    event := 'appointment.booked';
  elsif new.status is distinct from old.status then
    event := 'appointment.' || new.status;
  elsif (new.scheduled_at, new.staff_id) is distinct from (old.scheduled_at, old.staff_id) then
    event := 'appointment.rescheduled';
  else
    return null;
  end if;
  -- The agent is looked up in a statement of its own, and only for a booking made in a conversation: inside the call
  -- below, the subquery would make PostgreSQL plan the whole call again on every row (a custom plan for each value).
  if new.conversation_id is not null then
    select c.agent_id into agent from public.conversations c where c.id = new.conversation_id;
  end if;
  perform private.record_analytics_event(new.organization_id,
    private.derived_uuid(new.id::text || ':' || event || ':' || pg_catalog.now()::text), pg_catalog.now(), event,
    'receptionist', agent,
    -- Ids, a status and a time: nothing to redact.
    jsonb_strip_nulls(jsonb_build_object('appointment_id', new.id, 'service_id', new.service_id,
                                         'staff_id', new.staff_id, 'conversation_id', new.conversation_id,
                                         'status', new.status, 'scheduled_at', new.scheduled_at)));
  return null;
end;
$$;
comment on function private.analytics_from_appointment() is 'AFTER INSERT / status or time change on appointments: records appointment.booked, appointment.<status> or appointment.rescheduled in analytics_events (agent_id from the conversation that booked it).';

create trigger appointments_analytics after insert or update of status, scheduled_at, staff_id on public.appointments
  for each row execute function private.analytics_from_appointment();

-- A deleted user's events stay with their organization, without the user: anonymised, like an erased visitor.
create function private.anonymise_deleted_user_analytics() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  update public.analytics_events e
  set user_id = null, anonymous_id = null, session_id = null, ip_address = null, user_agent = null
  where e.user_id = old.id;
  return old;
end;
$$;
comment on function private.anonymise_deleted_user_analytics() is 'AFTER DELETE on auth.users: strips the user (and their visitor and session ids, IP and user agent) from analytics events (their cohort and attribution rows go by foreign key).';

create trigger on_auth_user_deleted_analytics after delete on auth.users
  for each row execute function private.anonymise_deleted_user_analytics();
