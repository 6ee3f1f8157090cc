-- Privacy: ingest_events(), the batch ingestion RPC behind the ingest edge function.
-- Set-based classification with a per-event report; stores only what it reports as accepted.

-- Event ids the caller already stored (ids only, never rows), for the ingest report. security definer because a
-- user who requires MFA cannot read their own events from an aal1 session, yet must still get honest duplicates.
create function private.stored_event_ids(kind text, ids uuid[], since timestamptz) returns setof uuid
language plpgsql stable security definer
set search_path = ''
as $$
begin
  -- PL/pgSQL keeps these plans for the session; as one SQL function the union over every partition of both tables was
  -- planned again on each call. The ids are looked up in the primary key (it leads with id) first and the owner is
  -- checked after: given the owner as well, the planner (on a fresh table, before ANALYZE) walks all of the caller's
  -- events in the window through the user index, growing with every batch stored. Only the partitions between since
  -- and now (plus the five minutes of clock skew ingest accepts) are searched.
  if ids is null or cardinality(ids) = 0 then
    return;
  elsif kind = 'telemetry' then
    return query
      with hit as materialized (
        select t.id, t.user_id from public.telemetry_events t
        where t.id = any (ids) and t.occurred_at >= since and t.occurred_at <= pg_catalog.now() + interval '5 minutes')
      select h.id from hit h where h.user_id = (select auth.uid());
  elsif kind = 'file' then
    return query
      with hit as materialized (
        select f.id, f.user_id from public.file_events f
        where f.id = any (ids) and f.occurred_at >= since and f.occurred_at <= pg_catalog.now() + interval '5 minutes')
      select h.id from hit h where h.user_id = (select auth.uid());
  end if;
end;
$$;
comment on function private.stored_event_ids(text, uuid[], timestamptz) is 'Which of these event ids the caller already stored (since a time): ids only.';

-- Which of these event ids the caller inserted in this transaction (rows created now), for the rare ingest report
-- whose accepted count does not match what its inserts stored.
create function private.event_ids_inserted_now(kind text, ids uuid[]) returns setof uuid
language sql stable security definer
set search_path = ''
as $$
  with hit as materialized (
    select t.id, t.user_id, t.created_at from public.telemetry_events t where kind = 'telemetry' and t.id = any (ids)
    union all
    select f.id, f.user_id, f.created_at from public.file_events f where kind = 'file' and f.id = any (ids))
  select h.id from hit h where h.user_id = (select auth.uid()) and h.created_at = pg_catalog.now()
$$;
comment on function private.event_ids_inserted_now(text, uuid[]) is 'Which of these event ids the caller inserted in the current transaction: ids only.';

create function private.try_timestamptz(value text) returns timestamptz
language plpgsql immutable
set search_path = ''
as $$
begin
  if value is null or value !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)$' then
    return null;
  end if;
  return value::timestamptz;
exception when others then
  return null;
end;
$$;
comment on function private.try_timestamptz(text) is 'An ISO 8601 timestamp with an explicit offset, or null when the text is not one.';

grant execute on function private.stored_event_ids(text, uuid[], timestamptz), private.event_ids_inserted_now(text, uuid[]),
  private.try_timestamptz(text), private.events_inserted_in_transaction() to authenticated;

-- The ingest RPC: classifies every event set-based and stores the admitted ones with one insert per table, as the
-- caller (RLS and triggers apply; redaction happens once, in the triggers). Report per event: accepted, duplicate,
-- sampled_out, or rejected with a reason. accepted means inserted (checked against the count the insert triggers keep).
-- plan_cache_mode: the batch statement is large and its plan does not depend on the parameter values, so it is
-- planned once per session instead of once per call.
create function public.ingest_events(events jsonb)
returns jsonb
language plpgsql
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
  uid uuid := (select auth.uid());
  earliest timestamptz := pg_catalog.now() - interval '30 days';
  latest timestamptz := pg_catalog.now() + interval '5 minutes';
  allowed boolean;
  inserted_before bigint := private.events_inserted_in_transaction();
  report jsonb;
begin
  if uid is null then
    raise exception 'not authenticated' using errcode = '42501', hint = 'Call this with a user''s JWT.';
  end if;
  if events is null or jsonb_typeof(events) <> 'array' then
    raise exception 'events must be a JSON array' using errcode = '22023';
  end if;
  if jsonb_array_length(events) > 1000 then
    raise exception 'at most 1000 events per batch (got %)', jsonb_array_length(events) using errcode = '54000',
      hint = 'Split the batch.';
  end if;
  allowed := private.monitoring_allowed();
  -- Batches of one user are serialised, so the duplicate check below cannot race a concurrent retry.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('ingest:' || uid::text, 0));

  -- raw is materialized so that the id and timestamp checks run once per event, not once per reference below.
  with fields as (
    select e.n::integer as n, e.value as v,
           e.value ->> 'kind' as kind,
           e.value ->> 'id' as id_text,
           e.value ->> 'occurred_at' as at_text,
           case when e.value ->> 'kind' = 'telemetry' then e.value ->> 'app_id' else e.value ->> 'tool' end as app_id,
           e.value ->> 'event_type' as event_type,
           e.value ->> 'duration_ms' as duration_text,
           e.value ->> 'file_path' as file_path,
           e.value ->> 'related_path' as related_path,
           coalesce(e.value -> 'metadata', '{}'::jsonb) as metadata
    from jsonb_array_elements(events) with ordinality e(value, n)
  ),
  raw as materialized (
    select f.*,
      case when f.id_text ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
           then f.id_text::uuid end as id,
      -- Well-formed timestamps (years 1900-2999, days up to the 28th, offsets up to 15:59) cannot fail to cast; the
      -- rest go through the careful path, so that no single event can make the batch fail.
      case when f.at_text ~ '^(?:19|2[0-9])[0-9]{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])[T ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?(?:Z|[+-](?:0[0-9]|1[0-5])(?::?[0-5][0-9])?)$'
           then f.at_text::timestamptz
           else private.try_timestamptz(f.at_text) end as occurred_at
    from fields f
  ),
  checked as (
    select r.n, r.kind, r.metadata, r.app_id, r.event_type, r.file_path, r.related_path, r.id, r.occurred_at,
      case when r.kind = 'telemetry' then r.event_type else 'file.' || r.event_type end as signal,
      case when r.kind = 'telemetry' and r.duration_text ~ '^[0-9]{1,9}$' then r.duration_text::integer end as duration_ms,
      case
        when jsonb_typeof(r.v) <> 'object' then 'invalid'
        when r.kind is null or r.kind not in ('telemetry', 'file') then 'invalid'
        when r.id is null or r.occurred_at is null then 'invalid'
        when jsonb_typeof(r.metadata) <> 'object' or pg_catalog.pg_column_size(r.metadata) > 32768 then 'invalid'
        when r.kind = 'telemetry' and (
               (char_length(coalesce(r.app_id, '')) > 128 or coalesce(r.app_id, '') !~ '^[A-Za-z0-9][A-Za-z0-9._:-]*$')
            or (char_length(coalesce(r.event_type, '')) > 128 or coalesce(r.event_type, '') !~ '^[a-z0-9][a-z0-9._:-]*$')
            or (r.duration_text is not null and r.duration_text !~ '^[0-9]{1,9}$')) then 'invalid'
        when r.kind = 'file' and (
               (char_length(coalesce(r.app_id, '')) > 128 or coalesce(r.app_id, '') !~ '^[A-Za-z0-9][A-Za-z0-9._:-]*$')
            or coalesce(r.event_type, '') not in ('created', 'modified', 'deleted', 'renamed', 'moved', 'copied', 'opened', 'closed')
            or char_length(coalesce(r.file_path, '')) not between 1 and 4096
            or char_length(coalesce(r.related_path, 'x')) not between 1 and 4096) then 'invalid'
      end as invalid_reason
    from raw r
  ),
  signals as (
    select s.signal_key, s.sampling_rate from public.signal_toggles s where s.user_id = uid and s.enabled
  ),
  apps as (
    select a.app_id, a.scope from public.app_allowlist a where a.user_id = uid and a.enabled
  ),
  gated as materialized (
    select c.*, sg.sampling_rate,
      case
        when c.invalid_reason is not null then c.invalid_reason
        when c.occurred_at < earliest or c.occurred_at > latest then 'outside_time_range'
        when not allowed then 'no_consent'
        when not exists (select 1 from apps a where a.app_id = c.app_id
                           and a.scope in ('all', case when c.kind = 'telemetry' then 'telemetry' else 'files' end)) then 'app_not_allowed'
        when sg.signal_key is null then 'signal_disabled'
      end as reason
    from checked c
    left join signals sg on sg.signal_key = c.signal
  ),
  -- distinct: a direct insert may have stored one id under two occurred_at values (see telemetry_events).
  stored as (
    select distinct s.kind, s.id from (
      select 'telemetry' as kind, x.id from private.stored_event_ids('telemetry',
        (select array_agg(g.id) from gated g where g.reason is null and g.kind = 'telemetry'), earliest) x(id)
      union all
      select 'file', x.id from private.stored_event_ids('file',
        (select array_agg(g.id) from gated g where g.reason is null and g.kind = 'file'), earliest) x(id)) s
  ),
  -- Only copies that passed the gate count for duplicates: a rejected first copy does not make a good second one a
  -- duplicate. (A hash aggregate over the ids, not a window over the sorted wide rows: a third of the cost.)
  firsts as (
    select g.kind, g.id, min(g.n) as first_n from gated g where g.reason is null group by g.kind, g.id
  ),
  decided as materialized (
    select g.*,
      case
        when g.reason is not null then 'rejected'
        when g.n > f.first_n or st.id is not null then 'duplicate'
        when private.sample_point(g.id) >= g.sampling_rate then 'sampled_out'
        else 'accepted'
      end as status
    from gated g
    left join firsts f on f.kind = g.kind and f.id = g.id
    left join stored st on st.kind = g.kind and st.id = g.id
  ),
  telemetry_written as (
    insert into public.telemetry_events (id, user_id, occurred_at, app_id, event_type, duration_ms, metadata_redacted)
    select d.id, uid, d.occurred_at, d.app_id, d.event_type, d.duration_ms, d.metadata
    from decided d
    where d.status = 'accepted' and d.kind = 'telemetry'
    on conflict do nothing
  ),
  files_written as (
    insert into public.file_events (id, user_id, occurred_at, file_path, related_path, event_type, tool, metadata)
    select d.id, uid, d.occurred_at, d.file_path, d.related_path, d.event_type, d.app_id, d.metadata
    from decided d
    where d.status = 'accepted' and d.kind = 'file'
    on conflict do nothing
  )
  select jsonb_build_object(
           'accepted', count(*) filter (where d.status = 'accepted'),
           'duplicate', count(*) filter (where d.status = 'duplicate'),
           'sampled_out', count(*) filter (where d.status = 'sampled_out'),
           'rejected', count(*) filter (where d.status = 'rejected'),
           'results', coalesce(jsonb_agg(
             case when d.reason is null then jsonb_build_object('index', d.n - 1, 'id', d.id, 'status', d.status)
                  when d.id is null then jsonb_build_object('index', d.n - 1, 'status', d.status, 'reason', d.reason)
                  else jsonb_build_object('index', d.n - 1, 'id', d.id, 'status', d.status, 'reason', d.reason)
             end order by d.n), '[]'::jsonb))
  into report
  from decided d;

  -- accepted must mean inserted. The inserts skip only rows that meet one of the caller's own (id, occurred_at), and
  -- the lookup above already reported those as duplicates, so the counts agree unless a row was stored concurrently
  -- (by a direct insert, which does not take the lock): then ask which accepted ids this transaction inserted.
  if (report ->> 'accepted')::bigint
     <> private.events_inserted_in_transaction() - inserted_before then
    with res as (
      select r.item, r.ord, events -> ((r.item ->> 'index')::integer) ->> 'kind' as kind
      from jsonb_array_elements(report -> 'results') with ordinality r(item, ord)
    ),
    ins as (
      select 'telemetry' as kind, x.id from private.event_ids_inserted_now('telemetry',
        (select array_agg((res.item ->> 'id')::uuid) from res where res.item ->> 'status' = 'accepted' and res.kind = 'telemetry')) x(id)
      union all
      select 'file', x.id from private.event_ids_inserted_now('file',
        (select array_agg((res.item ->> 'id')::uuid) from res where res.item ->> 'status' = 'accepted' and res.kind = 'file')) x(id)
    ),
    fixed as (
      select res.ord,
             case when res.item ->> 'status' = 'accepted'
                   and not exists (select 1 from ins where ins.kind = res.kind and ins.id = (res.item ->> 'id')::uuid)
                  then jsonb_set(res.item, '{status}', '"duplicate"') else res.item end as item
      from res
    )
    select jsonb_build_object(
             'accepted', count(*) filter (where f.item ->> 'status' = 'accepted'),
             'duplicate', count(*) filter (where f.item ->> 'status' = 'duplicate'),
             'sampled_out', count(*) filter (where f.item ->> 'status' = 'sampled_out'),
             'rejected', count(*) filter (where f.item ->> 'status' = 'rejected'),
             'results', coalesce(jsonb_agg(f.item order by f.ord), '[]'::jsonb))
    into report
    from fixed f;
  end if;
  return report;
end;
$$;
comment on function public.ingest_events(jsonb) is 'Stores a batch of telemetry ({"kind": "telemetry", id, occurred_at, app_id, event_type, duration_ms, metadata}) and file events ({"kind": "file", id, occurred_at, file_path, related_path, event_type, tool, metadata}) as the caller; returns per-event outcomes. Any user id in the payload is ignored.';

grant execute on function public.ingest_events(jsonb) to authenticated;
