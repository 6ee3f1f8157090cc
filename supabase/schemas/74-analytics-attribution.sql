-- Growth analytics: cohorts and utm_tracks (first, last and last non-direct touch), derived from analytics_events.
-- Maintained set-based as events are stored, rebuilt by recompute_metrics_daily(); cohort_retention() reads them.

-- A subject is a user (user_id) or, for a visitor who is not one, their anonymous_id; an event with both counts for
-- the user. A touch is an event that says where a visit came from: every session.started, and any event carrying
-- UTM parameters or an ad click id. Its source is utm_source, else the click id's platform, else the referrer's host;
-- a touch without any of them is direct.

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

create trigger cohorts_set_updated_at before update on public.cohorts
  for each row execute function private.set_updated_at();
create trigger utm_tracks_set_updated_at before update on public.utm_tracks
  for each row execute function private.set_updated_at();

alter table public.cohorts enable row level security;
alter table public.utm_tracks enable row level security;

-- cohorts_select: members holding analytics.read read their organization's cohorts.
create policy cohorts_select on public.cohorts for select to authenticated
  using (organization_id in (select private.organizations_with_permission('analytics.read')));
-- utm_tracks_select: members holding analytics.read read their organization's attribution.
create policy utm_tracks_select on public.utm_tracks for select to authenticated
  using (organization_id in (select private.organizations_with_permission('analytics.read')));

grant select on public.cohorts, public.utm_tracks to authenticated, service_role;

create function private.referrer_host(referrer text) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select nullif(lower(substring(referrer from '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^/:?#]+)')), '')
$$;
comment on function private.referrer_host(text) is 'The host of a referrer URL, lower case, or null.';

-- What an event says about where its visit came from: is_touch, and its source (null: direct), medium, campaign,
-- term, content and click id. PL/pgSQL without queries: a few microseconds per event.
create function private.analytics_touch(event_name text, props jsonb, out is_touch boolean, out source text,
                                        out medium text, out campaign text, out term text, out content text,
                                        out click_id text)
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  host text;
begin
  is_touch := event_name = 'session.started'
    or props ?| array['utm_source', 'utm_medium', 'utm_campaign', 'gclid', 'fbclid', 'msclkid', 'ttclid'];
  if not is_touch then
    return;
  end if;
  host := private.referrer_host(props ->> 'referrer');
  click_id := coalesce(props ->> 'gclid', props ->> 'fbclid', props ->> 'msclkid', props ->> 'ttclid');
  source := coalesce(nullif(props ->> 'utm_source', ''),
                     case when props ? 'gclid' then 'google' when props ? 'fbclid' then 'facebook'
                          when props ? 'msclkid' then 'bing' when props ? 'ttclid' then 'tiktok' end,
                     host);
  medium := coalesce(nullif(props ->> 'utm_medium', ''),
                     case when click_id is not null then 'cpc' when host is not null then 'referral' end);
  campaign := nullif(props ->> 'utm_campaign', '');
  term := nullif(props ->> 'utm_term', '');
  content := nullif(props ->> 'utm_content', '');
end;
$$;
comment on function private.analytics_touch(text, jsonb) is 'Whether an event is a touch (session.started, or UTM parameters or an ad click id in props) and its source (utm_source, else the click id''s platform, else the referrer host; null = direct), medium, campaign, term, content and click id.';

-- Adds newly stored events to cohorts and utm_tracks (set-based, one statement each): an earlier first event or
-- touch replaces the stored one, a later last touch replaces the last, a later non-direct one the last non-direct.
create function private.derive_attribution() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into public.cohorts as c (organization_id, user_id, anonymous_id, cohort_month, acquired_at)
  select s.organization_id, s.user_id, s.anonymous_id,
         date_trunc('month', s.acquired_at at time zone o.timezone)::date, s.acquired_at
  from (select i.organization_id, i.user_id, case when i.user_id is null then i.anonymous_id end as anonymous_id,
               min(i.occurred_at) as acquired_at
        from inserted i
        where i.user_id is not null or i.anonymous_id is not null
        group by 1, 2, 3) s
  join public.organizations o on o.id = s.organization_id
  on conflict (organization_id, subject_key) do update set
    acquired_at = excluded.acquired_at, cohort_month = excluded.cohort_month
  where excluded.acquired_at < c.acquired_at;

  with t as materialized (
    select i.organization_id, i.user_id, case when i.user_id is null then i.anonymous_id end as anonymous_id,
           i.occurred_at, i.event_id, x.*
    from inserted i
    cross join lateral private.analytics_touch(i.event_name, i.props) x
    where (i.user_id is not null or i.anonymous_id is not null) and x.is_touch
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
  from (select t.organization_id, t.user_id, t.anonymous_id, count(*) as touches from t group by 1, 2, 3) a
  join (select distinct on (t.organization_id, t.user_id, t.anonymous_id) t.* from t
        order by t.organization_id, t.user_id, t.anonymous_id, t.occurred_at, t.event_id) f
    on f.organization_id = a.organization_id and f.user_id is not distinct from a.user_id
   and f.anonymous_id is not distinct from a.anonymous_id
  join (select distinct on (t.organization_id, t.user_id, t.anonymous_id) t.* from t
        order by t.organization_id, t.user_id, t.anonymous_id, t.occurred_at desc, t.event_id desc) l
    on l.organization_id = a.organization_id and l.user_id is not distinct from a.user_id
   and l.anonymous_id is not distinct from a.anonymous_id
  left join (select distinct on (t.organization_id, t.user_id, t.anonymous_id) t.* from t where t.source is not null
             order by t.organization_id, t.user_id, t.anonymous_id, t.occurred_at desc, t.event_id desc) n
    on n.organization_id = a.organization_id and n.user_id is not distinct from a.user_id
   and n.anonymous_id is not distinct from a.anonymous_id
  on conflict (organization_id, subject_key) do update set
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

-- Rebuilds cohorts and utm_tracks of every subject with an event in [_start, _end] (UTC days, widened by the time
-- zones) of these organizations, from all their events: the same result as if the events had arrived in order.
create function private.rebuild_attribution(organizations uuid[], _start date, _end date) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  subjects text[];
begin
  -- organization_id/subject_key of everyone active in the range.
  select coalesce(array_agg(distinct e.organization_id::text || '/' || coalesce('user:' || e.user_id::text, 'anonymous:' || e.anonymous_id)), '{}')
  into subjects
  from public.analytics_events e
  where e.organization_id = any (organizations) and (e.user_id is not null or e.anonymous_id is not null)
    and e.occurred_at >= (_start - 2)::timestamp at time zone 'UTC' and e.occurred_at < (_end + 3)::timestamp at time zone 'UTC';

  delete from public.cohorts c using unnest(subjects) s(k)
  where c.organization_id = any (organizations) and c.organization_id::text || '/' || c.subject_key = s.k;
  delete from public.utm_tracks u using unnest(subjects) s(k)
  where u.organization_id = any (organizations) and u.organization_id::text || '/' || u.subject_key = s.k;

  insert into public.cohorts (organization_id, user_id, anonymous_id, cohort_month, acquired_at)
  select s.organization_id, s.user_id, s.anonymous_id, date_trunc('month', s.acquired_at at time zone o.timezone)::date,
         s.acquired_at
  from (select e.organization_id, e.user_id, case when e.user_id is null then e.anonymous_id end as anonymous_id,
               min(e.occurred_at) as acquired_at
        from public.analytics_events e
        join unnest(subjects) x(k)
          on x.k = e.organization_id::text || '/' || coalesce('user:' || e.user_id::text, 'anonymous:' || e.anonymous_id)
        where e.organization_id = any (organizations)
        group by 1, 2, 3) s
  join public.organizations o on o.id = s.organization_id;

  with t as materialized (
    select e.organization_id, e.user_id, case when e.user_id is null then e.anonymous_id end as anonymous_id,
           e.occurred_at, e.event_id, x.*
    from public.analytics_events e
    join unnest(subjects) k(k)
      on k.k = e.organization_id::text || '/' || coalesce('user:' || e.user_id::text, 'anonymous:' || e.anonymous_id)
    cross join lateral private.analytics_touch(e.event_name, e.props) x
    where e.organization_id = any (organizations) and x.is_touch
  ),
  firsts as (
    select distinct on (t.organization_id, t.user_id, t.anonymous_id) t.*
    from t order by t.organization_id, t.user_id, t.anonymous_id, t.occurred_at, t.event_id
  ),
  lasts as (
    select distinct on (t.organization_id, t.user_id, t.anonymous_id) t.*
    from t order by t.organization_id, t.user_id, t.anonymous_id, t.occurred_at desc, t.event_id desc
  ),
  non_direct as (
    select distinct on (t.organization_id, t.user_id, t.anonymous_id) t.*
    from t where t.source is not null
    order by t.organization_id, t.user_id, t.anonymous_id, t.occurred_at desc, t.event_id desc
  ),
  counts as (
    select t.organization_id, t.user_id, t.anonymous_id, count(*) as touches from t group by 1, 2, 3
  )
  insert into public.utm_tracks (organization_id, user_id, anonymous_id, touches,
    first_source, first_medium, first_campaign, first_term, first_content, first_click_id, first_touch_at,
    last_source, last_medium, last_campaign, last_term, last_content, last_click_id, last_touch_at,
    last_non_direct_source, last_non_direct_medium, last_non_direct_campaign, last_non_direct_term,
    last_non_direct_content, last_non_direct_click_id, last_non_direct_touch_at)
  select c.organization_id, c.user_id, c.anonymous_id, c.touches,
         f.source, f.medium, f.campaign, f.term, f.content, f.click_id, f.occurred_at,
         l.source, l.medium, l.campaign, l.term, l.content, l.click_id, l.occurred_at,
         n.source, n.medium, n.campaign, n.term, n.content, n.click_id, n.occurred_at
  from counts c
  join firsts f on f.organization_id = c.organization_id and f.user_id is not distinct from c.user_id
   and f.anonymous_id is not distinct from c.anonymous_id
  join lasts l on l.organization_id = c.organization_id and l.user_id is not distinct from c.user_id
   and l.anonymous_id is not distinct from c.anonymous_id
  left join non_direct n on n.organization_id = c.organization_id and n.user_id is not distinct from c.user_id
   and n.anonymous_id is not distinct from c.anonymous_id;
end;
$$;
comment on function private.rebuild_attribution(uuid[], date, date) is 'Recomputes cohorts and utm_tracks of the subjects active in the date range from all their events (called by recompute_metrics_daily).';

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
  if current_user in ('anon', 'authenticated')
     and cohort_retention.organization_id not in (select private.organizations_with_permission('analytics.read')) then
    raise exception 'analytics.read is required in this organization' using errcode = '42501';
  end if;
  select o.timezone into tz from public.organizations o where o.id = cohort_retention.organization_id;
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
