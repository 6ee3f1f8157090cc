-- Analytics, auditor (seed 000): usage_status_thresholds, usage_analytics, efficiency_metrics, quick_wins.
-- refresh_my_usage_analytics() derives a user's usage from their own telemetry, as that user; it expires with it.

-- The auditor's figures are the user's telemetry in another shape: computed by the user's own call over the
-- telemetry RLS lets them read (no administrator, no service role), owner-only, guarded by MFA like telemetry,
-- removed by erase_my_telemetry() and by retention together with the telemetry they came from, and exported.
--
-- How the figures are computed (all in SQL, from `app.focus` telemetry events, in the user's profile time zone):
--   active day       a day of the period with at least one app.focus event
--   usage_percentage per app: round(100 * days that app had focus / active days)
--   status           the usage_status_thresholds row whose [min_percentage, max_percentage] holds the percentage
--   active_tools     apps with at least one app.focus event in the period
--   efficiency_score round(sum(usage_percentage * focus_ms) / sum(focus_ms)) over the active tools: how regularly the
--                    tools that take the user's time are used, weighted by that time (0 without focus time)
--   time_saved_hours each quick win completed by the period's end saves its estimated_time_saved per week for the
--                    days of the period after its completion: sum(estimate * days / 7), capped at 999.99

create table public.usage_status_thresholds (
  status text not null,
  min_percentage integer not null,
  max_percentage integer not null,
  description text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint usage_status_thresholds_pkey primary key (status),
  constraint usage_status_thresholds_status_known check (status in ('optimal', 'needs_attention', 'underutilized', 'moderate')),
  constraint usage_status_thresholds_bounds check (min_percentage between 0 and 100 and max_percentage between 0 and 100),
  constraint usage_status_thresholds_ordered check (min_percentage <= max_percentage),
  constraint usage_status_thresholds_no_overlap exclude using gist (
    int4range(min_percentage, max_percentage, '[]') with &&) deferrable initially immediate
);
comment on table public.usage_status_thresholds is 'Reference data: which usage percentage (0-100, both bounds inclusive) earns which usage_analytics status. The four ranges cover 0-100 without gaps or overlaps (both checked at the end of each statement, so neighbouring bounds move together); operators (service_role) may move the bounds.';

create trigger usage_status_thresholds_set_updated_at before update on public.usage_status_thresholds
  for each row execute function private.set_updated_at();

create function private.check_usage_status_thresholds_cover() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- Ranges never overlap (exclusion constraint), so they cover 0-100 exactly when their sizes add up to 101.
  if (select coalesce(sum(t.max_percentage - t.min_percentage + 1), 0) from public.usage_status_thresholds t) <> 101 then
    raise exception 'usage status thresholds must cover every percentage from 0 to 100 exactly once'
      using errcode = '23514', hint = 'Move the neighbouring bounds in the same statement.';
  end if;
  return null;
end;
$$;
comment on function private.check_usage_status_thresholds_cover() is 'AFTER statement trigger on usage_status_thresholds: the ranges cover 0-100 (23514 otherwise).';

create trigger usage_status_thresholds_cover after insert or update or delete on public.usage_status_thresholds
  for each statement execute function private.check_usage_status_thresholds_cover();

insert into public.usage_status_thresholds (status, min_percentage, max_percentage, description) values
  ('underutilized', 0, 24, 'Used on fewer than a quarter of the active days'),
  ('needs_attention', 25, 49, 'Used on a quarter to half of the active days'),
  ('moderate', 50, 74, 'Used on half to three quarters of the active days'),
  ('optimal', 75, 100, 'Used on at least three quarters of the active days');

alter table public.usage_status_thresholds enable row level security;

-- usage_status_thresholds_select: every signed-in user may read the thresholds (they explain the statuses).
create policy usage_status_thresholds_select on public.usage_status_thresholds for select to authenticated
  using (true);

grant select on public.usage_status_thresholds to authenticated;
grant select, update (min_percentage, max_percentage, description) on public.usage_status_thresholds to service_role;

create table public.usage_analytics (
  id uuid not null default gen_random_uuid(),
  user_id uuid not null,
  platform text not null,
  usage_percentage integer not null,
  status text not null,
  active_days integer not null,
  focus_ms bigint not null,
  period_start date not null,
  period_end date not null,
  computed_at timestamptz not null default now(),
  created_at timestamptz not null default now(),
  constraint usage_analytics_pkey primary key (id),
  constraint usage_analytics_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint usage_analytics_platform_format check (char_length(platform) <= 128 and platform ~ '^[A-Za-z0-9][A-Za-z0-9._:-]*$'),
  constraint usage_analytics_usage_percentage_range check (usage_percentage between 0 and 100),
  constraint usage_analytics_status_known check (status in ('optimal', 'needs_attention', 'underutilized', 'moderate')),
  constraint usage_analytics_active_days_range check (active_days between 1 and 366),
  constraint usage_analytics_focus_ms_non_negative check (focus_ms >= 0),
  constraint usage_analytics_period_ordered check (period_start <= period_end),
  constraint usage_analytics_no_overlapping_periods exclude using gist (
    user_id with =, platform with =, daterange(period_start, period_end, '[]') with &&)
);
comment on table public.usage_analytics is 'Per user, app and period: how regularly the app had focus (seed 000). Derived from the user''s own telemetry by refresh_my_usage_analytics(); never written by clients; expires and is erased with the telemetry.';
comment on column public.usage_analytics.platform is 'The telemetry app_id the figures are about (the seed''s platform).';
comment on column public.usage_analytics.usage_percentage is 'round(100 * days the app had focus / days with any app focus in the period).';
comment on column public.usage_analytics.status is 'From usage_status_thresholds at the time of computing.';
comment on column public.usage_analytics.active_days is 'Days of the period (user''s time zone) on which this app had focus.';
comment on column public.usage_analytics.focus_ms is 'Sum of the app''s app.focus durations in the period.';

create table public.efficiency_metrics (
  id uuid not null default gen_random_uuid(),
  user_id uuid not null,
  efficiency_score integer not null,
  time_saved_hours numeric(5, 2) not null default 0,
  active_tools_count integer not null default 0,
  active_days integer not null default 0,
  period_start date not null,
  period_end date not null,
  computed_at timestamptz not null default now(),
  created_at timestamptz not null default now(),
  constraint efficiency_metrics_pkey primary key (id),
  constraint efficiency_metrics_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint efficiency_metrics_score_range check (efficiency_score between 0 and 100),
  constraint efficiency_metrics_time_saved_non_negative check (time_saved_hours >= 0),
  constraint efficiency_metrics_active_tools_non_negative check (active_tools_count >= 0),
  constraint efficiency_metrics_active_days_range check (active_days between 0 and 366),
  constraint efficiency_metrics_period_ordered check (period_start <= period_end),
  constraint efficiency_metrics_no_overlapping_periods exclude using gist (
    user_id with =, daterange(period_start, period_end, '[]') with &&)
);
comment on table public.efficiency_metrics is 'Per user and period: efficiency score, time saved and active tools (seed 000); one row per period, periods never overlap. Derived by refresh_my_usage_analytics() (see the file''s opening comment for the formulas); expires and is erased with the telemetry.';
comment on column public.efficiency_metrics.efficiency_score is 'Focus-time-weighted mean of the period''s usage percentages (0-100).';
comment on column public.efficiency_metrics.time_saved_hours is 'Hours saved by completed quick wins in the period (their weekly estimate for each day after completion).';
comment on column public.efficiency_metrics.active_days is 'Days of the period with any app focus (the denominator of the usage percentages).';

create table public.quick_wins (
  id uuid not null default gen_random_uuid(),
  user_id uuid not null default auth.uid(),
  title text not null,
  description text,
  category text not null,
  impact text not null default 'medium',
  effort text not null default 'medium',
  estimated_time_saved interval,
  completed_at timestamptz,
  is_completed boolean generated always as (completed_at is not null) stored,
  deleted_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint quick_wins_pkey primary key (id),
  constraint quick_wins_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint quick_wins_title_length check (char_length(btrim(title)) between 1 and 255),
  constraint quick_wins_description_length check (description is null or char_length(description) <= 5000),
  constraint quick_wins_category_format check (category ~ '^[a-z0-9][a-z0-9_-]{0,49}$'),
  constraint quick_wins_impact_known check (impact in ('low', 'medium', 'high')),
  constraint quick_wins_effort_known check (effort in ('low', 'medium', 'high')),
  constraint quick_wins_estimated_time_saved_range check (
    estimated_time_saved is null or (estimated_time_saved > interval '0' and estimated_time_saved <= interval '168 hours'))
);
comment on table public.quick_wins is 'Improvements suggested to one user (seed 000), owner-only: organization administrators do not see them. Created by the user or by the server (service_role); completed by setting completed_at; soft-deleted by deleted_at.';
comment on column public.quick_wins.estimated_time_saved is 'Time the win saves per week once completed (at most a week of time: 168 hours); the seed''s free text became an interval.';
comment on column public.quick_wins.is_completed is 'Derived: completed_at is set.';
comment on column public.quick_wins.category is 'Lower-case key such as automation, meetings, email (1-50 of a-z, 0-9, _ and -).';

create index quick_wins_user_idx on public.quick_wins (user_id, created_at desc) where deleted_at is null;
create index quick_wins_user_id_idx on public.quick_wins (user_id);

create trigger quick_wins_set_updated_at before update on public.quick_wins
  for each row execute function private.set_updated_at();

alter table public.usage_analytics enable row level security;
alter table public.efficiency_metrics enable row level security;
alter table public.quick_wins enable row level security;

-- usage_analytics_select: a user reads only their own usage (no administrator policy: it is telemetry).
create policy usage_analytics_select on public.usage_analytics for select to authenticated
  using (user_id = (select auth.uid()));
-- usage_analytics_select_mfa: derived from telemetry, so with mfa_required only an aal2 session reads it (restrictive).
create policy usage_analytics_select_mfa on public.usage_analytics as restrictive for select to authenticated
  using ((select private.mfa_satisfied()));
-- efficiency_metrics_select: a user reads only their own metrics.
create policy efficiency_metrics_select on public.efficiency_metrics for select to authenticated
  using (user_id = (select auth.uid()));
-- efficiency_metrics_select_mfa: derived from telemetry, guarded like it (restrictive).
create policy efficiency_metrics_select_mfa on public.efficiency_metrics as restrictive for select to authenticated
  using ((select private.mfa_satisfied()));
-- quick_wins_select: a user reads their own quick wins, soft-deleted ones included (to restore them).
create policy quick_wins_select on public.quick_wins for select to authenticated
  using (user_id = (select auth.uid()));
-- quick_wins_insert: a user adds quick wins for themselves only.
create policy quick_wins_insert on public.quick_wins for insert to authenticated
  with check (user_id = (select auth.uid()));
-- quick_wins_update: a user changes, completes or soft-deletes their own quick wins, and keeps them theirs.
create policy quick_wins_update on public.quick_wins for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));

-- Derived rows are written only by private.store_usage_analytics(); quick wins are never hard-deleted by clients.
grant select on public.usage_analytics, public.efficiency_metrics to authenticated;
grant select on public.quick_wins to authenticated;
grant insert (title, description, category, impact, effort, estimated_time_saved, completed_at)
  on public.quick_wins to authenticated;
grant update (title, description, category, impact, effort, estimated_time_saved, completed_at, deleted_at)
  on public.quick_wins to authenticated;
-- The server suggests quick wins to a user (service_role bypasses RLS); it has no privilege on the derived usage.
grant select, insert (user_id, title, description, category, impact, effort, estimated_time_saved),
  update (title, description, category, impact, effort, estimated_time_saved, deleted_at)
  on public.quick_wins to service_role;

-- The writing half of refresh_my_usage_analytics(): security definer because clients hold no write privilege on the
-- derived tables. It writes for the caller only (auth.uid(), never a parameter); the per-app figures it is given
-- come from the caller's own telemetry, read by the caller. Everything else (status, score, active tools, time saved)
-- is computed here. `private` is not exposed through the API.
create function private.store_usage_analytics(_period_start date, _period_end date, _active_days integer, _apps jsonb)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := (select auth.uid());
  zone text;
  replaced integer;
  score integer;
  tools integer;
  saved numeric;
  usage jsonb;
begin
  if uid is null then
    raise exception 'not authenticated' using errcode = '42501', hint = 'Call this with a user''s JWT.';
  end if;
  if jsonb_typeof(_apps) is distinct from 'array' then
    raise exception 'the per-app figures must be a JSON array' using errcode = '22023';
  end if;
  -- The wrapper derives these from the caller's telemetry; checked here too, so that no figure is stored that the
  -- telemetry could not have given (and a bad one is named, not reported as some table constraint).
  if _period_start is null or _period_end is null or _period_start > _period_end
     or _active_days is null or _active_days not between 0 and _period_end - _period_start + 1 then
    raise exception 'a period needs a start no later than its end and 0 to its length in active days'
      using errcode = '22023';
  end if;
  if exists (select 1 from jsonb_array_elements(_apps) x where jsonb_typeof(x) <> 'object')
     or exists (select 1 from jsonb_to_recordset(_apps) as a(platform text, days_used integer, focus_ms bigint)
                where a.platform is null or a.days_used is null or a.days_used not between 0 and _active_days
                   or a.focus_ms is null or a.focus_ms < 0)
     or (select count(*) <> count(distinct a.platform) from jsonb_to_recordset(_apps) as a(platform text)) then
    raise exception 'each app needs a distinct platform, 0 to active_days days used and a focus_ms of 0 or more'
      using errcode = '22023';
  end if;
  -- One refresh per user at a time: two refreshes of one period would otherwise both delete and then collide.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('auditor:' || uid::text, 0));

  if exists (select 1 from public.efficiency_metrics e
             where e.user_id = uid and daterange(e.period_start, e.period_end, '[]') && daterange(_period_start, _period_end, '[]')
               and (e.period_start, e.period_end) <> (_period_start, _period_end))
     or exists (select 1 from public.usage_analytics u
                where u.user_id = uid and daterange(u.period_start, u.period_end, '[]') && daterange(_period_start, _period_end, '[]')
                  and (u.period_start, u.period_end) <> (_period_start, _period_end)) then
    raise exception 'period % to % overlaps another period already computed', _period_start, _period_end
      using errcode = '23P01', hint = 'Refresh exactly that period again, or choose a period that does not overlap it.';
  end if;

  delete from public.usage_analytics u
  where u.user_id = uid and u.period_start = _period_start and u.period_end = _period_end;
  -- Every computed period has its efficiency_metrics row (a period without focus events has no usage rows).
  delete from public.efficiency_metrics e
  where e.user_id = uid and e.period_start = _period_start and e.period_end = _period_end;
  get diagnostics replaced = row_count;

  with apps as (
    select a.platform, a.days_used, a.focus_ms,
           round(100.0 * a.days_used / greatest(_active_days, 1))::integer as pct
    from jsonb_to_recordset(_apps) as a(platform text, days_used integer, focus_ms bigint)
  ),
  stored as (
    insert into public.usage_analytics (user_id, platform, usage_percentage, status, active_days, focus_ms,
                                        period_start, period_end)
    select uid, a.platform, a.pct,
           (select t.status from public.usage_status_thresholds t where a.pct between t.min_percentage and t.max_percentage),
           a.days_used, a.focus_ms, _period_start, _period_end
    from apps a
    returning platform, usage_percentage, status, active_days, focus_ms
  )
  select coalesce(round(sum(s.usage_percentage::numeric * s.focus_ms) / nullif(sum(s.focus_ms), 0))::integer, 0),
         count(*)::integer,
         coalesce(jsonb_agg(jsonb_build_object('platform', s.platform, 'usage_percentage', s.usage_percentage,
                                               'status', s.status, 'active_days', s.active_days, 'focus_ms', s.focus_ms)
                            order by s.platform), '[]')
  into score, tools, usage
  from stored s;

  zone := coalesce((select p.timezone from public.profiles p where p.id = uid), 'UTC');
  select coalesce(sum(extract(epoch from w.estimated_time_saved) / 3600.0
                      * ((_period_end - greatest(_period_start, (w.completed_at at time zone zone)::date)) + 1) / 7.0), 0)
  into saved
  from public.quick_wins w
  where w.user_id = uid and w.deleted_at is null and w.estimated_time_saved is not null
    and w.completed_at is not null and (w.completed_at at time zone zone)::date <= _period_end;
  saved := least(round(saved, 2), 999.99);

  insert into public.efficiency_metrics (user_id, efficiency_score, time_saved_hours, active_tools_count, active_days,
                                         period_start, period_end)
  values (uid, score, saved, tools, _active_days, _period_start, _period_end);

  return jsonb_build_object('period_start', _period_start, 'period_end', _period_end, 'active_days', _active_days,
                            'efficiency_score', score, 'time_saved_hours', saved, 'active_tools_count', tools,
                            'replaced', replaced > 0, 'usage', usage);
end;
$$;
comment on function private.store_usage_analytics(date, date, integer, jsonb) is 'Replaces the caller''s usage_analytics and efficiency_metrics of exactly this period (23P01 when it overlaps another computed period): statuses from usage_status_thresholds, score, active tools and time saved from quick wins. Called by refresh_my_usage_analytics().';

grant execute on function private.store_usage_analytics(date, date, integer, jsonb) to authenticated;

create function public.refresh_my_usage_analytics(period_start date, period_end date)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
  uid uuid := (select auth.uid());
  zone text;
  window_start timestamptz;
  window_end timestamptz;
  days integer;
  apps jsonb;
begin
  if uid is null then
    raise exception 'not authenticated' using errcode = '42501', hint = 'Call this with a user''s JWT.';
  end if;
  -- Telemetry RLS would silently hide the events from an aal1 session of a user who requires MFA, and the refresh
  -- would then overwrite the period with zeros: refuse instead.
  if not private.mfa_satisfied() then
    raise exception 'your privacy settings require a multi-factor (aal2) session for this' using errcode = '42501',
      hint = 'Verify a second factor and retry with the new session token.';
  end if;
  if refresh_my_usage_analytics.period_start is null or refresh_my_usage_analytics.period_end is null then
    raise exception 'period_start and period_end are required' using errcode = '22004';
  end if;
  if refresh_my_usage_analytics.period_start > refresh_my_usage_analytics.period_end then
    raise exception 'period_start % is after period_end %', refresh_my_usage_analytics.period_start,
      refresh_my_usage_analytics.period_end using errcode = '22023';
  end if;
  if refresh_my_usage_analytics.period_end - refresh_my_usage_analytics.period_start >= 366 then
    raise exception 'a period spans at most 366 days' using errcode = '22023',
      hint = 'Refresh a month or a quarter at a time.';
  end if;

  zone := coalesce((select p.timezone from public.profiles p where p.id = uid), 'UTC');
  window_start := refresh_my_usage_analytics.period_start::timestamp at time zone zone;
  window_end := (refresh_my_usage_analytics.period_end + 1)::timestamp at time zone zone;

  -- The caller's own focus events, read as the caller: telemetry RLS applies in full.
  with focus as (
    select t.app_id, (t.occurred_at at time zone zone)::date as day, coalesce(t.duration_ms, 0)::bigint as ms
    from public.telemetry_events t
    where t.user_id = uid and t.event_type = 'app.focus'
      and t.occurred_at >= window_start and t.occurred_at < window_end
  ),
  per_app as (
    select f.app_id, count(distinct f.day)::integer as days_used, sum(f.ms)::bigint as focus_ms
    from focus f group by f.app_id
  )
  select (select count(distinct f.day)::integer from focus f),
         coalesce((select jsonb_agg(jsonb_build_object('platform', a.app_id, 'days_used', a.days_used, 'focus_ms', a.focus_ms)
                                    order by a.app_id) from per_app a), '[]')
  into days, apps;

  return private.store_usage_analytics(refresh_my_usage_analytics.period_start, refresh_my_usage_analytics.period_end,
                                       days, apps);
end;
$$;
comment on function public.refresh_my_usage_analytics(date, date) is 'Computes the caller''s usage_analytics and efficiency_metrics for a period (dates in their profile time zone, at most 366 days) from their own app.focus telemetry, read as the caller, and replaces that period''s rows in one transaction (repeatable). 42501 without a user or without aal2 when MFA is required; 22023 for a bad period; 23P01 when it overlaps another computed period.';

grant execute on function public.refresh_my_usage_analytics(date, date) to authenticated;

-- Derived usage expires with the telemetry it came from: a row goes as soon as the first day it covers is past the
-- cutoff (it never outlives any of the events it summarizes). A null cutoff means each user's own data_retention_days.
create function private.purge_expired_usage_analytics(cutoff timestamptz, purge_reason text)
returns bigint
language plpgsql
set search_path = ''
set timezone = 'UTC'
as $$
declare
  affected record;
  removed bigint := 0;
begin
  for affected in
    with gone_usage as (
      delete from public.usage_analytics u
      where u.period_start <= (coalesce(cutoff, (select pg_catalog.now() - make_interval(days => p.data_retention_days)
                                                 from public.privacy_prefs p where p.user_id = u.user_id)))::date
      returning u.user_id
    ),
    gone_metrics as (
      delete from public.efficiency_metrics e
      where e.period_start <= (coalesce(cutoff, (select pg_catalog.now() - make_interval(days => p.data_retention_days)
                                                 from public.privacy_prefs p where p.user_id = e.user_id)))::date
      returning e.user_id
    ),
    per_user as (
      select g.user_id, 1 as usage_rows, 0 as metric_rows from gone_usage g
      union all
      select g.user_id, 0, 1 from gone_metrics g
    )
    select u.user_id, sum(u.usage_rows)::bigint as usage_rows, sum(u.metric_rows)::bigint as metric_rows
    from per_user u group by u.user_id
  loop
    perform private.append_transparency_entry(affected.user_id, 'retention_purge', 'usage_analytics', null, null, null,
      jsonb_build_object('usage_analytics', affected.usage_rows, 'efficiency_metrics', affected.metric_rows,
                         'reason', purge_reason));
    removed := removed + affected.usage_rows + affected.metric_rows;
  end loop;
  return removed;
end;
$$;
comment on function private.purge_expired_usage_analytics(timestamptz, text) is 'Deletes usage_analytics/efficiency_metrics whose first day is past the cutoff (null: each user''s own retention); logs counts per user in the transparency log. Called by both retention functions.';

-- A user's auditor data for export_my_data().
create function private.auditor_personal_data(uid uuid) returns jsonb
language sql stable
set search_path = ''
as $$
  select jsonb_build_object(
    'usage_analytics', (select coalesce(jsonb_agg(to_jsonb(u) order by u.period_start, u.platform), '[]')
                        from public.usage_analytics u where u.user_id = uid),
    'efficiency_metrics', (select coalesce(jsonb_agg(to_jsonb(e) order by e.period_start), '[]')
                           from public.efficiency_metrics e where e.user_id = uid),
    'quick_wins', (select coalesce(jsonb_agg(to_jsonb(w) order by w.created_at, w.id), '[]')
                   from public.quick_wins w where w.user_id = uid))
$$;
comment on function private.auditor_personal_data(uuid) is 'The user''s usage_analytics, efficiency_metrics and quick_wins (soft-deleted ones too) for export_my_data().';

-- Erasure half for erase_my_telemetry(): the derived usage goes with the telemetry (quick wins are not telemetry).
create function private.erase_auditor_usage(uid uuid) returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  usage_rows bigint;
  metric_rows bigint;
begin
  delete from public.usage_analytics u where u.user_id = uid;
  get diagnostics usage_rows = row_count;
  delete from public.efficiency_metrics e where e.user_id = uid;
  get diagnostics metric_rows = row_count;
  return jsonb_build_object('usage_analytics', usage_rows, 'efficiency_metrics', metric_rows);
end;
$$;
comment on function private.erase_auditor_usage(uuid) is 'Deletes the user''s usage_analytics and efficiency_metrics; returns the counts (erase_my_telemetry()).';
