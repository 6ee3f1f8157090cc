-- Growth analytics: cohorts and utm_tracks (first, last and last non-direct touch), derived from analytics_events.
-- Maintained set-based as events are stored, repaired by rebuild_attribution(); cohort_retention() reads them.

-- A subject is a user (user_id) or, for a visitor who is not one, their anonymous_id; an event with both counts for
-- the user. A touch is an event that says where a visit came from: every session.started, and any event carrying
-- UTM parameters or an ad click id. Its source is utm_source, else the click id's platform, else the referrer's host;
-- a touch without any of them is direct. That rule is written out twice below (the incremental merge and the
-- rebuild), as SQL inside each statement: a function per event cost more than the rest of the statement.

create table public.cohorts (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  user_id uuid,
  anonymous_id text,
  subject_key text generated always as (coalesce('user:' || user_id::text, 'anonymous:' || anonymous_id)) stored,
  cohort_month date not null,
  acquired_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint cohorts_pkey primary key (id),
  constraint cohorts_subject_key unique (organization_id, subject_key),
  constraint cohorts_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint cohorts_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint cohorts_one_subject check (num_nonnulls(user_id, anonymous_id) = 1),
  constraint cohorts_anonymous_id_length check (anonymous_id is null or char_length(anonymous_id) between 1 and 255),
  constraint cohorts_month_first check (cohort_month = date_trunc('month', cohort_month)::date)
);
comment on table public.cohorts is 'When each user or visitor was first seen by an organization (seed 002 "cohorts"): acquired_at is their first event, cohort_month its month in the organization''s time zone. Derived from analytics_events only.';
comment on column public.cohorts.subject_key is 'user:<uuid> or anonymous:<id>: one row per subject and organization.';

create index cohorts_user_id_idx on public.cohorts (user_id) where user_id is not null;
create index cohorts_organization_month_idx on public.cohorts (organization_id, cohort_month);

create table public.utm_tracks (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  user_id uuid,
  anonymous_id text,
  subject_key text generated always as (coalesce('user:' || user_id::text, 'anonymous:' || anonymous_id)) stored,
  touches bigint not null,
  first_source text, first_medium text, first_campaign text, first_term text, first_content text, first_click_id text,
  first_touch_at timestamptz not null,
  last_source text, last_medium text, last_campaign text, last_term text, last_content text, last_click_id text,
  last_touch_at timestamptz not null,
  last_non_direct_source text, last_non_direct_medium text, last_non_direct_campaign text, last_non_direct_term text,
  last_non_direct_content text, last_non_direct_click_id text,
  last_non_direct_touch_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint utm_tracks_pkey primary key (id),
  constraint utm_tracks_subject_key unique (organization_id, subject_key),
  constraint utm_tracks_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint utm_tracks_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint utm_tracks_one_subject check (num_nonnulls(user_id, anonymous_id) = 1),
  constraint utm_tracks_anonymous_id_length check (anonymous_id is null or char_length(anonymous_id) between 1 and 255),
  constraint utm_tracks_touches_positive check (touches >= 1),
  constraint utm_tracks_touches_ordered check (first_touch_at <= last_touch_at
    and (last_non_direct_touch_at is null or last_non_direct_touch_at between first_touch_at and last_touch_at)),
  constraint utm_tracks_non_direct_has_source check ((last_non_direct_touch_at is null) = (last_non_direct_source is null))
);
comment on table public.utm_tracks is 'Attribution per user or visitor and organization (seed 002 "utm_tracks"): the first touch, the last touch and the last non-direct touch across all their sessions, each with source, medium, campaign, term, content, click id and time. Derived from analytics_events only.';
comment on column public.utm_tracks.first_source is 'Null means direct (no UTM source, click id or referrer).';
comment on column public.utm_tracks.last_non_direct_touch_at is 'The latest touch with a source; null when every touch was direct.';

create index utm_tracks_user_id_idx on public.utm_tracks (user_id) where user_id is not null;

-- The merge and the rebuild below set updated_at themselves (a PL/pgSQL trigger call per updated row was a third of
-- the merge's time); the shared trigger keeps it current for any other writer.
create trigger cohorts_set_updated_at before update on public.cohorts
  for each row when (new.updated_at is not distinct from old.updated_at) execute function private.set_updated_at();
create trigger utm_tracks_set_updated_at before update on public.utm_tracks
  for each row when (new.updated_at is not distinct from old.updated_at) execute function private.set_updated_at();

alter table public.cohorts enable row level security;
alter table public.utm_tracks enable row level security;

-- cohorts_select: members holding analytics.read read their organization's cohorts.
create policy cohorts_select on public.cohorts for select to authenticated
  using (organization_id in (select private.organizations_with_permission('analytics.read')));
-- utm_tracks_select: members holding analytics.read read their organization's attribution.
create policy utm_tracks_select on public.utm_tracks for select to authenticated
  using (organization_id in (select private.organizations_with_permission('analytics.read')));

grant select on public.cohorts, public.utm_tracks to authenticated, service_role;

-- Adds newly stored events to cohorts and utm_tracks (set-based, one statement each): an earlier first event or
-- touch replaces the stored one, a later last touch replaces the last, a later non-direct one the last non-direct.
create function private.derive_attribution() returns trigger
language plpgsql security definer
set search_path = ''
set enable_nestloop = on
as $$
begin
  -- Events without a subject (the receptionist's call and appointment events, one per booking) have nothing to merge:
  -- skip the two upserts rather than plan and run them for no rows.
  if not exists (select 1 from inserted i where i.user_id is not null or i.anonymous_id is not null) then
    return null;
  end if;
  insert into public.cohorts as c (organization_id, user_id, anonymous_id, cohort_month, acquired_at)
  select s.organization_id, s.user_id, s.anonymous_id,
         date_trunc('month', s.acquired_at at time zone o.timezone)::date, s.acquired_at
  from (select i.organization_id, i.user_id, case when i.user_id is null then i.anonymous_id end as anonymous_id,
               min(i.occurred_at) as acquired_at
        from inserted i
        where i.user_id is not null or i.anonymous_id is not null
        group by 1, 2, 3) s
  join public.organizations o on o.id = s.organization_id
  -- Only subjects that are new or seen earlier than stored (by index, before the upsert): a subject already acquired
  -- no later costs one lookup, not a speculative insert, a row lock and an update check. ON CONFLICT still decides
  -- when a concurrent batch adds the subject meanwhile.
  where not exists (select 1 from public.cohorts x
                    where x.organization_id = s.organization_id
                      and x.subject_key = coalesce('user:' || s.user_id::text, 'anonymous:' || s.anonymous_id)
                      and x.acquired_at <= s.acquired_at)
  on conflict (organization_id, subject_key) do update set
    acquired_at = excluded.acquired_at, cohort_month = excluded.cohort_month, updated_at = pg_catalog.now()
  where excluded.acquired_at < c.acquired_at;

  with t as materialized (
    select i.organization_id, i.user_id, case when i.user_id is null then i.anonymous_id end as anonymous_id,
           coalesce('user:' || i.user_id::text, 'anonymous:' || i.anonymous_id) collate "C" as sk, i.occurred_at, i.event_id, x.*
    from inserted i
    cross join lateral (
      -- The touch (keep in step with the other copy in this file): source = utm_source, else the click id's platform,
      -- else the referrer's host (null = direct); medium = utm_medium, else cpc for a click id, referral for a referrer.
      select coalesce(nullif(i.props ->> 'utm_source', ''),
                      case when i.props ? 'gclid' then 'google' when i.props ? 'fbclid' then 'facebook'
                           when i.props ? 'msclkid' then 'bing' when i.props ? 'ttclid' then 'tiktok' end,
                      r.host) as source,
             coalesce(nullif(i.props ->> 'utm_medium', ''),
                      case when i.props ?| array['gclid', 'fbclid', 'msclkid', 'ttclid'] then 'cpc'
                           when r.host is not null then 'referral' end) as medium,
             nullif(i.props ->> 'utm_campaign', '') as campaign, nullif(i.props ->> 'utm_term', '') as term,
             nullif(i.props ->> 'utm_content', '') as content,
             coalesce(i.props ->> 'gclid', i.props ->> 'fbclid', i.props ->> 'msclkid', i.props ->> 'ttclid') as click_id
      from (select nullif(lower(substring(i.props ->> 'referrer' from '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^/:?#]+)')), '') as host) r) x
    where (i.user_id is not null or i.anonymous_id is not null)
      and (i.event_name = 'session.started' or i.props ?| array['utm_source', 'utm_medium', 'utm_campaign', 'gclid', 'fbclid', 'msclkid', 'ttclid'])
  )
  insert into public.utm_tracks as u (organization_id, user_id, anonymous_id, touches,
    first_source, first_medium, first_campaign, first_term, first_content, first_click_id, first_touch_at,
    last_source, last_medium, last_campaign, last_term, last_content, last_click_id, last_touch_at,
    last_non_direct_source, last_non_direct_medium, last_non_direct_campaign, last_non_direct_term,
    last_non_direct_content, last_non_direct_click_id, last_non_direct_touch_at)
  select a.organization_id, a.user_id, a.anonymous_id, a.touches,
         f.source, f.medium, f.campaign, f.term, f.content, f.click_id, f.occurred_at,
         l.source, l.medium, l.campaign, l.term, l.content, l.click_id, l.occurred_at,
         n.source, n.medium, n.campaign, n.term, n.content, n.click_id, n.occurred_at
  from (select t.organization_id, t.sk, min(t.user_id::text)::uuid as user_id, min(t.anonymous_id) as anonymous_id,
               count(*) as touches
        from t group by 1, 2) a
  join (select distinct on (t.organization_id, t.sk) t.* from t
        order by t.organization_id, t.sk, t.occurred_at, t.event_id) f
    on f.organization_id = a.organization_id and f.sk = a.sk
  join (select distinct on (t.organization_id, t.sk) t.* from t
        order by t.organization_id, t.sk, t.occurred_at desc, t.event_id desc) l
    on l.organization_id = a.organization_id and l.sk = a.sk
  left join (select distinct on (t.organization_id, t.sk) t.* from t where t.source is not null
             order by t.organization_id, t.sk, t.occurred_at desc, t.event_id desc) n
    on n.organization_id = a.organization_id and n.sk = a.sk
  on conflict (organization_id, subject_key) do update set
    updated_at = pg_catalog.now(),
    touches = u.touches + excluded.touches,
    first_source = case when excluded.first_touch_at < u.first_touch_at then excluded.first_source else u.first_source end,
    first_medium = case when excluded.first_touch_at < u.first_touch_at then excluded.first_medium else u.first_medium end,
    first_campaign = case when excluded.first_touch_at < u.first_touch_at then excluded.first_campaign else u.first_campaign end,
    first_term = case when excluded.first_touch_at < u.first_touch_at then excluded.first_term else u.first_term end,
    first_content = case when excluded.first_touch_at < u.first_touch_at then excluded.first_content else u.first_content end,
    first_click_id = case when excluded.first_touch_at < u.first_touch_at then excluded.first_click_id else u.first_click_id end,
    first_touch_at = least(u.first_touch_at, excluded.first_touch_at),
    last_source = case when excluded.last_touch_at > u.last_touch_at then excluded.last_source else u.last_source end,
    last_medium = case when excluded.last_touch_at > u.last_touch_at then excluded.last_medium else u.last_medium end,
    last_campaign = case when excluded.last_touch_at > u.last_touch_at then excluded.last_campaign else u.last_campaign end,
    last_term = case when excluded.last_touch_at > u.last_touch_at then excluded.last_term else u.last_term end,
    last_content = case when excluded.last_touch_at > u.last_touch_at then excluded.last_content else u.last_content end,
    last_click_id = case when excluded.last_touch_at > u.last_touch_at then excluded.last_click_id else u.last_click_id end,
    last_touch_at = greatest(u.last_touch_at, excluded.last_touch_at),
    last_non_direct_source = case when excluded.last_non_direct_touch_at > coalesce(u.last_non_direct_touch_at, '-infinity')
      then excluded.last_non_direct_source else u.last_non_direct_source end,
    last_non_direct_medium = case when excluded.last_non_direct_touch_at > coalesce(u.last_non_direct_touch_at, '-infinity')
      then excluded.last_non_direct_medium else u.last_non_direct_medium end,
    last_non_direct_campaign = case when excluded.last_non_direct_touch_at > coalesce(u.last_non_direct_touch_at, '-infinity')
      then excluded.last_non_direct_campaign else u.last_non_direct_campaign end,
    last_non_direct_term = case when excluded.last_non_direct_touch_at > coalesce(u.last_non_direct_touch_at, '-infinity')
      then excluded.last_non_direct_term else u.last_non_direct_term end,
    last_non_direct_content = case when excluded.last_non_direct_touch_at > coalesce(u.last_non_direct_touch_at, '-infinity')
      then excluded.last_non_direct_content else u.last_non_direct_content end,
    last_non_direct_click_id = case when excluded.last_non_direct_touch_at > coalesce(u.last_non_direct_touch_at, '-infinity')
      then excluded.last_non_direct_click_id else u.last_non_direct_click_id end,
    last_non_direct_touch_at = greatest(u.last_non_direct_touch_at, excluded.last_non_direct_touch_at);
  return null;
end;
$$;
comment on function private.derive_attribution() is 'AFTER INSERT statement trigger on analytics_events: merges the inserted events into cohorts and utm_tracks, set-based.';

create trigger analytics_events_derive_attribution after insert on public.analytics_events
  referencing new table as inserted
  for each statement execute function private.derive_attribution();

-- Rebuilds cohorts and utm_tracks of every subject of these organizations seen since _start (widened by the time
-- zones), from all their events: the same result as if the events had arrived in order.
-- Subject keys compare in the C collation and join by hash (no JIT: its compilation costs more than it saves here;
-- work_mem for the sorts and hashes over every touch and subject, which spilled to disk at 2,000,000 events).
create function private.rebuild_attribution(organizations uuid[], _start date) returns void
language plpgsql security definer
set search_path = ''
set jit = off
set work_mem = '128MB'
set enable_mergejoin = off
as $$
declare
  active_from timestamptz := (_start - 2)::timestamp at time zone 'UTC';
begin
  -- One pass over the organizations' events: every subject seen since the range began (a superset of those active in
  -- it, which is harmless: a rebuild writes what is already right) gets its first event afresh.
  insert into public.cohorts as c (organization_id, user_id, anonymous_id, cohort_month, acquired_at)
  select s.organization_id, s.user_id, s.anonymous_id, date_trunc('month', s.acquired_at at time zone o.timezone)::date,
         s.acquired_at
  from (select e.organization_id, e.user_id, case when e.user_id is null then e.anonymous_id end as anonymous_id,
               min(e.occurred_at) as acquired_at
        from public.analytics_events e
        where e.organization_id = any (organizations) and (e.user_id is not null or e.anonymous_id is not null)
        group by 1, 2, 3
        having max(e.occurred_at) >= active_from) s
  join public.organizations o on o.id = s.organization_id
  on conflict (organization_id, subject_key) do update set
    acquired_at = excluded.acquired_at, cohort_month = excluded.cohort_month, updated_at = pg_catalog.now()
  where (c.acquired_at, c.cohort_month) is distinct from (excluded.acquired_at, excluded.cohort_month);

  -- Attribution depends on touches only: every subject with a touch since the range began is rebuilt from all of
  -- their touches (in the C collation, which sorts subject keys fastest).
  with all_touches as (
    select e.organization_id, e.user_id, case when e.user_id is null then e.anonymous_id end as anonymous_id,
           (e.organization_id::text || '/' || coalesce('user:' || e.user_id::text, 'anonymous:' || e.anonymous_id)) collate "C" as sk,
           e.occurred_at, e.event_id, x.*
    from public.analytics_events e
    cross join lateral (
      -- The touch (keep in step with the other copy in this file): source = utm_source, else the click id's platform,
      -- else the referrer's host (null = direct); medium = utm_medium, else cpc for a click id, referral for a referrer.
      select coalesce(nullif(e.props ->> 'utm_source', ''),
                      case when e.props ? 'gclid' then 'google' when e.props ? 'fbclid' then 'facebook'
                           when e.props ? 'msclkid' then 'bing' when e.props ? 'ttclid' then 'tiktok' end,
                      r.host) as source,
             coalesce(nullif(e.props ->> 'utm_medium', ''),
                      case when e.props ?| array['gclid', 'fbclid', 'msclkid', 'ttclid'] then 'cpc'
                           when r.host is not null then 'referral' end) as medium,
             nullif(e.props ->> 'utm_campaign', '') as campaign, nullif(e.props ->> 'utm_term', '') as term,
             nullif(e.props ->> 'utm_content', '') as content,
             coalesce(e.props ->> 'gclid', e.props ->> 'fbclid', e.props ->> 'msclkid', e.props ->> 'ttclid') as click_id
      from (select nullif(lower(substring(e.props ->> 'referrer' from '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^/:?#]+)')), '') as host) r) x
    where e.organization_id = any (organizations)
      and (e.event_name = 'session.started' or e.props ?| array['utm_source', 'utm_medium', 'utm_campaign', 'gclid', 'fbclid', 'msclkid', 'ttclid'])
      and (e.user_id is not null or e.anonymous_id is not null)
  ),
  t as materialized (
    select a.* from all_touches a
    where a.sk in (select b.sk from all_touches b group by b.sk having max(b.occurred_at) >= active_from)
  ),
  firsts as (
    select distinct on (t.sk) t.* from t order by t.sk, t.occurred_at, t.event_id
  ),
  lasts as (
    select distinct on (t.sk) t.* from t order by t.sk, t.occurred_at desc, t.event_id desc
  ),
  non_direct as (
    select distinct on (t.sk) t.* from t where t.source is not null order by t.sk, t.occurred_at desc, t.event_id desc
  ),
  counts as (
    select t.sk, count(*) as touches from t group by 1
  )
  insert into public.utm_tracks as u (organization_id, user_id, anonymous_id, touches,
    first_source, first_medium, first_campaign, first_term, first_content, first_click_id, first_touch_at,
    last_source, last_medium, last_campaign, last_term, last_content, last_click_id, last_touch_at,
    last_non_direct_source, last_non_direct_medium, last_non_direct_campaign, last_non_direct_term,
    last_non_direct_content, last_non_direct_click_id, last_non_direct_touch_at)
  select f.organization_id, f.user_id, f.anonymous_id, c.touches,
         f.source, f.medium, f.campaign, f.term, f.content, f.click_id, f.occurred_at,
         l.source, l.medium, l.campaign, l.term, l.content, l.click_id, l.occurred_at,
         n.source, n.medium, n.campaign, n.term, n.content, n.click_id, n.occurred_at
  from counts c
  join firsts f on f.sk = c.sk
  join lasts l on l.sk = c.sk
  left join non_direct n on n.sk = c.sk
  on conflict (organization_id, subject_key) do update set
    updated_at = pg_catalog.now(),
    touches = excluded.touches,
    first_source = excluded.first_source,
    first_medium = excluded.first_medium,
    first_campaign = excluded.first_campaign,
    first_term = excluded.first_term,
    first_content = excluded.first_content,
    first_click_id = excluded.first_click_id,
    first_touch_at = excluded.first_touch_at,
    last_source = excluded.last_source,
    last_medium = excluded.last_medium,
    last_campaign = excluded.last_campaign,
    last_term = excluded.last_term,
    last_content = excluded.last_content,
    last_click_id = excluded.last_click_id,
    last_touch_at = excluded.last_touch_at,
    last_non_direct_source = excluded.last_non_direct_source,
    last_non_direct_medium = excluded.last_non_direct_medium,
    last_non_direct_campaign = excluded.last_non_direct_campaign,
    last_non_direct_term = excluded.last_non_direct_term,
    last_non_direct_content = excluded.last_non_direct_content,
    last_non_direct_click_id = excluded.last_non_direct_click_id,
    last_non_direct_touch_at = excluded.last_non_direct_touch_at
  where (
      u.touches, u.first_source, u.first_medium, u.first_campaign, u.first_term, u.first_content, u.first_click_id,
      u.first_touch_at, u.last_source, u.last_medium, u.last_campaign, u.last_term, u.last_content, u.last_click_id,
      u.last_touch_at, u.last_non_direct_source, u.last_non_direct_medium, u.last_non_direct_campaign,
      u.last_non_direct_term, u.last_non_direct_content, u.last_non_direct_click_id, u.last_non_direct_touch_at)
    is distinct from (
      excluded.touches, excluded.first_source, excluded.first_medium, excluded.first_campaign, excluded.first_term,
      excluded.first_content, excluded.first_click_id, excluded.first_touch_at, excluded.last_source,
      excluded.last_medium, excluded.last_campaign, excluded.last_term, excluded.last_content,
      excluded.last_click_id, excluded.last_touch_at, excluded.last_non_direct_source,
      excluded.last_non_direct_medium, excluded.last_non_direct_campaign, excluded.last_non_direct_term,
      excluded.last_non_direct_content, excluded.last_non_direct_click_id, excluded.last_non_direct_touch_at);
end;
$$;
comment on function private.rebuild_attribution(uuid[], date) is 'Recomputes cohorts and utm_tracks of the subjects seen since _start from all their events: a repair, to the rows upsert_events keeps incrementally (not part of recompute_metrics_daily).';

-- Retention triangle: for each cohort month in [from_month, to_month], its size and how many of it were active
-- (any event) in each month since, through to_month (months in the organization's time zone).
create function public.cohort_retention(organization_id uuid, from_month date, to_month date)
returns table (cohort_month date, months_since int, users int, retained int)
language plpgsql stable
set search_path = ''
as $$
declare
  tz text;
  first_month date := date_trunc('month', from_month)::date;
  last_month date := date_trunc('month', to_month)::date;
begin
  if from_month is null or to_month is null or from_month > to_month then
    raise exception 'need from_month <= to_month' using errcode = '22023';
  end if;
  if cohort_retention.organization_id is null then
    raise exception 'organization_id is required' using errcode = '22004';
  end if;
  if current_user in ('anon', 'authenticated') and not private.has_permission(cohort_retention.organization_id, 'analytics.read') then
    raise exception 'analytics.read is required in this organization' using errcode = '42501';
  end if;
  select o.timezone into tz from public.organizations o where o.id = cohort_retention.organization_id;
  if not found then
    raise exception 'no organization %', cohort_retention.organization_id using errcode = 'P0002';
  end if;
  return query
    with members as (
      select c.subject_key, c.cohort_month from public.cohorts c
      where c.organization_id = cohort_retention.organization_id and c.cohort_month between first_month and last_month
    ),
    activity as (
      select distinct coalesce('user:' || e.user_id::text, 'anonymous:' || e.anonymous_id) as subject_key,
             date_trunc('month', e.occurred_at at time zone tz)::date as active_month
      from public.analytics_events e
      where e.organization_id = cohort_retention.organization_id
        and (e.user_id is not null or e.anonymous_id is not null)
        and e.occurred_at >= (first_month::timestamp at time zone tz)
        and e.occurred_at < ((last_month + interval '1 month')::timestamp at time zone tz)
    ),
    sizes as (
      select m.cohort_month, count(*)::int as users from members m group by 1
    ),
    grid as (
      select s.cohort_month, s.users, g.k::int as months_since
      from sizes s cross join lateral generate_series(0, ((extract(year from age(last_month, s.cohort_month)) * 12
                                                          + extract(month from age(last_month, s.cohort_month))))::int) g(k)
    )
    select g.cohort_month, g.months_since, g.users,
           (select count(distinct m.subject_key)::int from members m join activity a on a.subject_key = m.subject_key
            where m.cohort_month = g.cohort_month
              and a.active_month = (g.cohort_month + make_interval(months => g.months_since))::date)
    from grid g
    order by 1, 2;
end;
$$;
comment on function public.cohort_retention(uuid, date, date) is 'Per cohort month in the range: its size and how many were active in each month since (through to_month). Members with analytics.read and the service role; others get 42501.';

grant execute on function public.cohort_retention(uuid, date, date) to authenticated, service_role;
