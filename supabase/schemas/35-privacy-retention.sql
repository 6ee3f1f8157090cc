-- Privacy: retention_policies, metrics_log, and the retention functions.
-- cleanup_retention_data() drops expired months whole; cleanup_telemetry_by_retention() applies each user's setting.

-- Retention drops whole expired monthly partitions (and reports per user what went), per-user retention removes what
-- a user's own setting expires, the guardian health check watches all of it, and users export or erase their data.

create table public.retention_policies (
  id uuid not null default gen_random_uuid(),
  table_name text not null,
  retention_days integer not null,
  enabled boolean not null default true,
  last_run_at timestamptz,
  last_run_rows bigint,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint retention_policies_pkey primary key (id),
  constraint retention_policies_table_name_key unique (table_name),
  constraint retention_policies_table_known check (table_name in ('telemetry_events', 'file_events', 'audit_logs', 'metrics_log', 'webhook_deliveries', 'analytics_events')),
  constraint retention_policies_days_range check (retention_days between 1 and 3650)
);
comment on table public.retention_policies is 'How long each append-only table keeps rows (reference data created by this migration; operators tune it).';
comment on column public.retention_policies.last_run_rows is 'Rows removed by the last run (partitions dropped are counted from the per-month counters or statistics).';

create trigger retention_policies_set_updated_at before update on public.retention_policies
  for each row execute function private.set_updated_at();

alter table public.retention_policies enable row level security;

-- retention_policies_select: every signed-in user may see how long data is kept.
create policy retention_policies_select on public.retention_policies for select to authenticated
  using (true);

grant select on public.retention_policies to authenticated;
grant select, update (retention_days, enabled) on public.retention_policies to service_role;

insert into public.retention_policies (table_name, retention_days) values
  ('telemetry_events', 365),
  ('file_events', 365),
  ('audit_logs', 730),
  ('metrics_log', 90);

create table public.metrics_log (
  id bigint generated always as identity,
  ts timestamptz not null default now(),
  source text not null,
  metric text not null,
  value numeric not null,
  details jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  constraint metrics_log_pkey primary key (id),
  constraint metrics_log_source_length check (char_length(source) between 1 and 100),
  constraint metrics_log_metric_length check (char_length(metric) between 1 and 100),
  constraint metrics_log_details_object check (jsonb_typeof(details) = 'object')
);
comment on table public.metrics_log is 'Operational measurements written by maintenance functions (retention runs, ...). Aggregates only, never user data.';

create index metrics_log_source_ts_idx on public.metrics_log (source, ts desc);

alter table public.metrics_log enable row level security;

-- metrics_log_select: operators (service_role) read metrics; no user may.
create policy metrics_log_select on public.metrics_log for select to service_role
  using (true);

grant select on public.metrics_log to service_role;

-- file_patterns and file_relationships add up file events as they arrive; when retention removes events, the
-- affected users' aggregates are rebuilt from the events that remain (set-based), so they never describe more than
-- is stored.
create function private.rebuild_file_insights(users uuid[]) returns void
language plpgsql
set search_path = ''
as $$
begin
  if users is null or cardinality(users) = 0 then
    return;
  end if;
  delete from public.file_patterns p where p.user_id = any (users);
  delete from public.file_relationships r where r.user_id = any (users);
  insert into public.file_patterns (user_id, file_extension, event_count, last_used_at, tools)
  select s.user_id, s.ext, count(*), max(s.occurred_at), array_agg(distinct s.tool order by s.tool)
  from (select f.user_id, f.occurred_at, f.tool, private.file_extension(f.file_path) as ext
        from public.file_events f where f.user_id = any (users)) s
  where s.ext is not null
  group by s.user_id, s.ext;
  insert into public.file_relationships (user_id, source_path, target_path, relation_type, weight, last_seen_at)
  select f.user_id, f.file_path, f.related_path, f.event_type, count(*), max(f.occurred_at)
  from public.file_events f
  where f.user_id = any (users) and f.related_path is not null and f.event_type in ('renamed', 'moved', 'copied')
  group by f.user_id, f.file_path, f.related_path, f.event_type;
end;
$$;
comment on function private.rebuild_file_insights(uuid[]) is 'Recomputes file_patterns and file_relationships of these users from their stored file events (after retention removed some).';

-- Drops the monthly partitions of a table that end on or before the cutoff (and the months listed in also_months),
-- logging each affected user's counts.
create function private.drop_expired_partitions(parent regclass, cutoff timestamptz, purge_reason text,
                                                also_months date[] default '{}')
returns bigint
language plpgsql
set search_path = ''
set timezone = 'UTC'
as $$
declare
  parent_name text := (select c.relname from pg_catalog.pg_class c where c.oid = parent);
  expired date[];
  part record;
  removed bigint := 0;
  affected record;
  touched uuid[] := '{}'::uuid[];
begin
  select coalesce(array_agg(to_date(substring(c.relname from '_p([0-9]{6})$'), 'YYYYMM') order by c.relname), '{}')
  into expired
  from pg_catalog.pg_inherits i
  join pg_catalog.pg_class c on c.oid = i.inhrelid
  where i.inhparent = parent
    and c.relname ~ ('^' || parent_name || '_p[0-9]{6}$')
    and ((to_date(substring(c.relname from '_p([0-9]{6})$'), 'YYYYMM') + interval '1 month') <= cutoff
         or to_date(substring(c.relname from '_p([0-9]{6})$'), 'YYYYMM') = any (also_months))
    -- Event months still open to inserts (the insert policies accept events up to 30 days old) are never dropped:
    -- an insert in flight would be lost with its partition, uncounted. Row-by-row retention covers them.
    and (parent_name not in ('telemetry_events', 'file_events')
         or (to_date(substring(c.relname from '_p([0-9]{6})$'), 'YYYYMM') + interval '1 month') <= pg_catalog.now() - interval '31 days');
  if expired = '{}' then
    return 0;
  end if;

  if parent_name in ('telemetry_events', 'file_events') then
    for affected in
      select m.user_id, sum(m.events) as events, min(m.month) as first_month, max(m.month) as last_month
      from private.event_month_counts m
      where m.table_name = parent_name and m.month = any (expired)
      group by m.user_id
      having sum(m.events) > 0
    loop
      perform private.append_transparency_entry(affected.user_id, 'retention_purge', parent_name, null, null, null,
        jsonb_build_object('rows', affected.events, 'reason', purge_reason, 'from_month', affected.first_month,
                           'to_month', affected.last_month, 'partitions_dropped', true));
      removed := removed + affected.events;
      touched := touched || affected.user_id;
    end loop;
    delete from private.event_month_counts m where m.table_name = parent_name and m.month = any (expired);
  end if;

  for part in
    select c.oid, c.relname, c.reltuples
    from pg_catalog.pg_inherits i
    join pg_catalog.pg_class c on c.oid = i.inhrelid
    where i.inhparent = parent and c.relname = any (
      select parent_name || '_p' || to_char(m, 'YYYYMM') from unnest(expired) m)
  loop
    if parent_name not in ('telemetry_events', 'file_events') then
      removed := removed + greatest(part.reltuples, 0)::bigint;
    end if;
    execute format('drop table private.%I', part.relname);
  end loop;
  if parent_name = 'file_events' then
    perform private.rebuild_file_insights(touched);
  end if;
  return removed;
end;
$$;
comment on function private.drop_expired_partitions(regclass, timestamptz, text, date[]) is 'Drops whole monthly partitions that ended before the cutoff (or are listed); for event tables, logs a retention_purge entry per affected user first.';

-- file_patterns and file_relationships are derived from file events and hold file paths, so they expire with them:
-- an aggregate goes once the newest event it reflects is past the cutoff (its counts are lifetime counts until then).
create function private.purge_expired_file_insights(cutoff timestamptz, purge_reason text)
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  purged jsonb;
  affected record;
  removed bigint := 0;
begin
  -- A null cutoff means each user's own data_retention_days.
  with gone_patterns as (
    delete from public.file_patterns fp
    where fp.last_used_at < coalesce(cutoff, (select pg_catalog.now() - make_interval(days => p.data_retention_days)
                                              from public.privacy_prefs p where p.user_id = fp.user_id))
    returning fp.user_id
  ),
  gone_relationships as (
    delete from public.file_relationships r
    where r.last_seen_at < coalesce(cutoff, (select pg_catalog.now() - make_interval(days => p.data_retention_days)
                                             from public.privacy_prefs p where p.user_id = r.user_id))
    returning r.user_id
  ),
  per_user as (
    select g.user_id, 1 as patterns, 0 as relationships from gone_patterns g
    union all
    select g.user_id, 0, 1 from gone_relationships g
  )
  select coalesce(jsonb_agg(jsonb_build_object('user_id', x.user_id, 'patterns', x.patterns, 'relationships', x.relationships)), '[]')
  into purged
  from (select u.user_id, sum(u.patterns) as patterns, sum(u.relationships) as relationships
        from per_user u group by u.user_id) x;

  for affected in
    select (e.value ->> 'user_id')::uuid as user_id, (e.value ->> 'patterns')::bigint as patterns,
           (e.value ->> 'relationships')::bigint as relationships
    from jsonb_array_elements(purged) e
  loop
    perform private.append_transparency_entry(affected.user_id, 'retention_purge', 'file_insights', null, null, null,
      jsonb_build_object('file_patterns', affected.patterns, 'file_relationships', affected.relationships,
                         'reason', purge_reason));
    removed := removed + affected.patterns + affected.relationships;
  end loop;
  return removed;
end;
$$;
comment on function private.purge_expired_file_insights(timestamptz, text) is 'Deletes file_patterns/file_relationships last seen before the cutoff (null: each user''s own retention); logs counts per user in the transparency log.';

create function public.cleanup_retention_data()
returns jsonb
language plpgsql security definer
set search_path = ''
set timezone = 'UTC'
as $$
declare
  policy public.retention_policies;
  cutoff timestamptz;
  removed bigint;
  summary jsonb := '{}'::jsonb;
  started timestamptz := pg_catalog.clock_timestamp();
begin
  for policy in select * from public.retention_policies p where p.enabled order by p.table_name loop
    cutoff := pg_catalog.now() - make_interval(days => policy.retention_days);
    if policy.table_name = 'metrics_log' then
      delete from public.metrics_log m where m.ts < cutoff;
      get diagnostics removed = row_count;
    elsif policy.table_name = 'webhook_deliveries' then
      -- Not partitioned (44-connectors-webhook-deliveries.sql): finished rows are deleted in batches.
      removed := private.prune_webhook_deliveries(cutoff);
    elsif policy.table_name = 'analytics_events' then
      -- Whole months, with their exact-once keys (71-analytics-events.sql).
      removed := private.purge_expired_analytics_events(cutoff);
    else
      removed := private.drop_expired_partitions(('public.' || policy.table_name)::regclass, cutoff, 'retention_policy');
    end if;
    update public.retention_policies p set last_run_at = pg_catalog.now(), last_run_rows = removed where p.id = policy.id;
    summary := summary || jsonb_build_object(policy.table_name, removed);
    if policy.table_name = 'file_events' then
      summary := summary || jsonb_build_object('file_insights',
                                               private.purge_expired_file_insights(cutoff, 'retention_policy'));
    end if;
    -- ---- Auditor (issue 14): usage derived from telemetry expires with it (70-analytics-auditor.sql).
    if policy.table_name = 'telemetry_events' then
      summary := summary || jsonb_build_object('usage_analytics',
                                               private.purge_expired_usage_analytics(cutoff, 'retention_policy'));
    end if;
    -- ---- end Auditor
  end loop;
  insert into public.metrics_log (source, metric, value, details)
  values ('cleanup_retention_data', 'rows_removed',
          coalesce((select sum(v::bigint) from jsonb_each_text(summary) s(k, v)), 0),
          jsonb_build_object('tables', summary,
                             'duration_ms', round(extract(epoch from pg_catalog.clock_timestamp() - started) * 1000)));
  return jsonb_build_object('removed', summary,
                            'duration_ms', round(extract(epoch from pg_catalog.clock_timestamp() - started) * 1000));
end;
$$;
comment on function public.cleanup_retention_data() is 'Applies retention_policies: drops whole expired monthly partitions (metrics_log rows are deleted; file patterns and relationships expire with file_events). Returns counts per table; logs to metrics_log and each affected user''s transparency log.';

create function private.delete_rows_past_user_retention(table_name text)
returns table (user_id uuid, month date, events bigint)
language plpgsql
set search_path = ''
as $$
begin
  if table_name not in ('telemetry_events', 'file_events') then
    raise exception 'per-user retention does not apply to %', table_name using errcode = '22023';
  end if;
  if table_name = 'telemetry_events' then
    return query
      with gone as (
        delete from public.telemetry_events e
        using public.privacy_prefs p
        where e.user_id = p.user_id and e.occurred_at < pg_catalog.now() - make_interval(days => p.data_retention_days)
        returning e.user_id as owner, date_trunc('month', e.occurred_at at time zone 'UTC')::date as purged_month
      )
      select g.owner, g.purged_month, count(*) from gone g group by g.owner, g.purged_month;
  else
    return query
      with gone as (
        delete from public.file_events e
        using public.privacy_prefs p
        where e.user_id = p.user_id and e.occurred_at < pg_catalog.now() - make_interval(days => p.data_retention_days)
        returning e.user_id as owner, date_trunc('month', e.occurred_at at time zone 'UTC')::date as purged_month
      )
      select g.owner, g.purged_month, count(*) from gone g group by g.owner, g.purged_month;
  end if;
end;
$$;
comment on function private.delete_rows_past_user_retention(text) is 'Deletes the events each user''s data_retention_days has expired; returns counts per user and month.';

create function public.cleanup_telemetry_by_retention()
returns jsonb
language plpgsql security definer
set search_path = ''
set timezone = 'UTC'
as $$
declare
  tbl text;
  month_cutoff timestamptz;
  expired_months date[];
  touched uuid[];
  dropped bigint;
  total_dropped bigint := 0;
  total_deleted bigint := 0;
  affected record;
  started timestamptz := pg_catalog.clock_timestamp();
begin
  foreach tbl in array array['telemetry_events', 'file_events'] loop
    -- A whole month goes when it has expired for every user with events in it (users without preferences, i.e.
    -- deleted ones, count as expired).
    select min(pg_catalog.now() - make_interval(days => p.data_retention_days))
    into month_cutoff
    from public.privacy_prefs p
    where p.user_id in (select m.user_id from private.event_month_counts m where m.table_name = tbl);
    month_cutoff := coalesce(month_cutoff, pg_catalog.now() - interval '3650 days');
    -- Month by month, too: a month goes when it has ended past the retention of every user with events in it, so one
    -- user who keeps ten years does not turn everyone else's purge into row-by-row deletes.
    select coalesce(array_agg(x.month), '{}') into expired_months
    from (select m.month
          from private.event_month_counts m
          left join public.privacy_prefs p on p.user_id = m.user_id
          where m.table_name = tbl and m.events > 0
          group by m.month
          having bool_and(p.user_id is null
                          or m.month + interval '1 month' <= pg_catalog.now() - make_interval(days => p.data_retention_days))) x;
    dropped := private.drop_expired_partitions(('public.' || tbl)::regclass, month_cutoff, 'user_retention', expired_months);
    total_dropped := total_dropped + dropped;

    -- Inside months that stay, each user's own setting removes their expired rows.
    touched := '{}'::uuid[];
    for affected in select * from private.delete_rows_past_user_retention(tbl) loop
      touched := touched || affected.user_id;
      update private.event_month_counts m set events = greatest(m.events - affected.events, 0)
      where m.table_name = tbl and m.user_id = affected.user_id and m.month = affected.month;
      perform private.append_transparency_entry(affected.user_id, 'retention_purge', tbl, null, null, null,
        jsonb_build_object('rows', affected.events, 'reason', 'user_retention', 'from_month', affected.month,
                           'to_month', affected.month, 'partitions_dropped', false));
      total_deleted := total_deleted + affected.events;
    end loop;
    if tbl = 'file_events' then
      perform private.rebuild_file_insights(touched);
    end if;
  end loop;
  -- What was derived from file events expires on the same per-user horizon.
  total_deleted := total_deleted + private.purge_expired_file_insights(null, 'user_retention');
  -- ---- Auditor (issue 14): so does the usage derived from telemetry (70-analytics-auditor.sql).
  total_deleted := total_deleted + private.purge_expired_usage_analytics(null, 'user_retention');
  -- ---- end Auditor

  insert into public.metrics_log (source, metric, value, details)
  values ('cleanup_telemetry_by_retention', 'rows_removed', total_dropped + total_deleted,
          jsonb_build_object('rows_in_dropped_partitions', total_dropped, 'rows_deleted', total_deleted,
                             'duration_ms', round(extract(epoch from pg_catalog.clock_timestamp() - started) * 1000)));
  return jsonb_build_object('rows_in_dropped_partitions', total_dropped, 'rows_deleted', total_deleted,
                            'duration_ms', round(extract(epoch from pg_catalog.clock_timestamp() - started) * 1000));
end;
$$;
comment on function public.cleanup_telemetry_by_retention() is 'Enforces each user''s data_retention_days on telemetry and file events: drops months expired for everyone, deletes expired rows of shorter-retention users elsewhere. Returns counts; logs metrics_log and transparency entries.';

grant execute on function public.cleanup_retention_data(), public.cleanup_telemetry_by_retention() to service_role;
