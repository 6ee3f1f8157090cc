-- Growth analytics: spend (ad spend per platform, campaign, ad set and day) and upsert_spend().
-- Written by the server-side pipeline only; read by members with analytics.read.

create table public.spend (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  platform text not null,
  campaign_id text not null,
  adset_id text,
  date date not null,
  spend_cents bigint not null default 0,
  clicks bigint not null default 0,
  impressions bigint not null default 0,
  conversions bigint not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint spend_pkey primary key (id),
  constraint spend_natural_key unique nulls not distinct (organization_id, platform, campaign_id, adset_id, date),
  constraint spend_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint spend_platform_format check (char_length(platform) <= 50 and platform ~ '^[a-z0-9][a-z0-9_.-]*$'),
  constraint spend_campaign_id_length check (char_length(campaign_id) between 1 and 255),
  constraint spend_adset_id_length check (adset_id is null or char_length(adset_id) between 1 and 255),
  constraint spend_amounts_non_negative check (spend_cents >= 0 and clicks >= 0 and impressions >= 0 and conversions >= 0),
  constraint spend_clicks_within_impressions check (impressions = 0 or clicks <= impressions)
);
comment on table public.spend is 'Advertising spend per organization, platform, campaign, ad set and day (seed 002 "spend"; conv -> conversions). Written by upsert_spend() only; feeds metrics_daily (CAC).';
comment on column public.spend.date is 'The day the platform reports the spend for (the organization''s calendar day, as metrics_daily).';
comment on column public.spend.adset_id is 'Ad set (or ad group); null when the platform reports per campaign. Part of the natural key (nulls not distinct).';
comment on column public.spend.spend_cents is 'Spend in cents of the organization''s reporting currency (see metrics_daily.currency).';

create index spend_organization_date_idx on public.spend (organization_id, date);

create trigger spend_set_updated_at before update on public.spend
  for each row execute function private.set_updated_at();
create trigger spend_audit after insert or update or delete on public.spend
  for each row execute function private.audit_row_change();

alter table public.spend enable row level security;

-- spend_select: members holding analytics.read read their organization's spend.
create policy spend_select on public.spend for select to authenticated
  using (organization_id in (select private.organizations_with_permission('analytics.read')));

grant select on public.spend to authenticated, service_role;

-- Inserts or updates spend rows by their natural key in one statement; a key given twice in a batch keeps its last
-- row (the earlier ones are reported superseded). Report per row: inserted, updated, unchanged, superseded, rejected.
create function public.upsert_spend(_rows jsonb) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  report jsonb;
begin
  if _rows is null or jsonb_typeof(_rows) <> 'array' then
    raise exception '_rows must be a JSON array of spend rows' using errcode = '22023';
  end if;
  if jsonb_array_length(_rows) > 10000 then
    raise exception 'at most 10000 spend rows per call (got %)', jsonb_array_length(_rows) using errcode = '54000',
      hint = 'Split the batch; nothing was stored.';
  end if;

  with raw as materialized (
    select e.n::integer as n, case when jsonb_typeof(e.value) = 'object' then e.value end as o
    from jsonb_array_elements(_rows) with ordinality e(value, n)
  ),
  parsed as materialized (
    select r.n, r.o,
      case when r.o ->> 'organization_id' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
           then (r.o ->> 'organization_id')::uuid end as organization_id,
      r.o ->> 'platform' as platform,
      r.o ->> 'campaign_id' as campaign_id,
      r.o ->> 'adset_id' as adset_id,
      case when r.o ->> 'date' ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' then private.try_date(r.o ->> 'date') end as date,
      case when coalesce(r.o ->> 'spend_cents', '0') ~ '^[0-9]{1,15}$' then coalesce(r.o ->> 'spend_cents', '0')::bigint end as spend_cents,
      case when coalesce(r.o ->> 'clicks', '0') ~ '^[0-9]{1,15}$' then coalesce(r.o ->> 'clicks', '0')::bigint end as clicks,
      case when coalesce(r.o ->> 'impressions', '0') ~ '^[0-9]{1,15}$' then coalesce(r.o ->> 'impressions', '0')::bigint end as impressions,
      case when coalesce(r.o ->> 'conversions', '0') ~ '^[0-9]{1,15}$' then coalesce(r.o ->> 'conversions', '0')::bigint end as conversions
    from raw r
  ),
  checked as materialized (
    select p.*,
      case
        when p.o is null then 'not_an_object'
        when p.organization_id is null then 'invalid_organization_id'
        when p.platform is null or char_length(p.platform) > 50 or p.platform !~ '^[a-z0-9][a-z0-9_.-]*$' then 'invalid_platform'
        when p.campaign_id is null or char_length(p.campaign_id) not between 1 and 255 then 'invalid_campaign_id'
        when p.adset_id is not null and char_length(p.adset_id) not between 1 and 255 then 'invalid_adset_id'
        when p.date is null then 'invalid_date'
        when p.spend_cents is null or p.clicks is null or p.impressions is null or p.conversions is null then 'invalid_number'
        when p.impressions > 0 and p.clicks > p.impressions then 'clicks_exceed_impressions'
        when not exists (select 1 from public.organizations o where o.id = p.organization_id and o.deleted_at is null) then 'unknown_organization'
      end as reason
    from parsed p
  ),
  lasts as (
    select c.organization_id, c.platform, c.campaign_id, c.adset_id, c.date, max(c.n) as last_n
    from checked c where c.reason is null
    group by c.organization_id, c.platform, c.campaign_id, c.adset_id, c.date
  ),
  chosen as (
    select c.* from checked c join lasts l on l.last_n = c.n
  ),
  written as (
    insert into public.spend as s (organization_id, platform, campaign_id, adset_id, date, spend_cents, clicks,
                                   impressions, conversions)
    select c.organization_id, c.platform, c.campaign_id, c.adset_id, c.date, c.spend_cents, c.clicks, c.impressions,
           c.conversions
    from chosen c
    -- In key order, so that two batches sharing keys wait for each other instead of deadlocking (as upsert_events).
    order by c.organization_id, c.platform, c.campaign_id, c.adset_id, c.date
    on conflict on constraint spend_natural_key do update set
      spend_cents = excluded.spend_cents, clicks = excluded.clicks, impressions = excluded.impressions,
      conversions = excluded.conversions
    where (s.spend_cents, s.clicks, s.impressions, s.conversions)
          is distinct from (excluded.spend_cents, excluded.clicks, excluded.impressions, excluded.conversions)
    returning s.id, s.organization_id, s.platform, s.campaign_id, s.adset_id, s.date, (s.xmax = 0) as was_inserted
  ),
  decided as (
    select c.n, c.reason, w.id,
      case
        when c.reason is not null then 'rejected'
        when not exists (select 1 from lasts l where l.last_n = c.n) then 'superseded'
        when w.id is null then 'unchanged'
        when w.was_inserted then 'inserted'
        else 'updated'
      end as status
    from checked c
    left join written w on c.reason is null and w.organization_id = c.organization_id and w.platform = c.platform
      and w.campaign_id = c.campaign_id and w.adset_id is not distinct from c.adset_id and w.date = c.date
      and exists (select 1 from lasts l where l.last_n = c.n)
  )
  select jsonb_build_object(
           'inserted', count(*) filter (where d.status = 'inserted'),
           'updated', count(*) filter (where d.status = 'updated'),
           'unchanged', count(*) filter (where d.status = 'unchanged'),
           'superseded', count(*) filter (where d.status = 'superseded'),
           'rejected', count(*) filter (where d.status = 'rejected'),
           'results', coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
             'index', d.n - 1, 'id', d.id, 'status', d.status, 'reason', d.reason)) order by d.n), '[]'::jsonb))
  into report
  from decided d;
  return report;
end;
$$;
comment on function public.upsert_spend(jsonb) is 'Inserts or updates up to 10,000 spend rows ({organization_id, platform, campaign_id, adset_id, date, spend_cents, clicks, impressions, conversions}) by (organization, platform, campaign, ad set, date) in one statement; returns {inserted, updated, unchanged, superseded, rejected, results: [{index, id, status, reason}]}. Service role only.';

create function private.try_date(value text) returns date
language plpgsql immutable
set search_path = ''
as $$
begin
  return value::date;
exception when others then
  return null;
end;
$$;
comment on function private.try_date(text) is 'The date, or null when the text is not a valid one.';

grant execute on function public.upsert_spend(jsonb) to service_role;
