-- Growth analytics: analytics_metric_events (which events feed which metric), metrics_daily, recompute_metrics_daily().
-- Daily rollups per organization in its own time zone, derived only from analytics_events and spend, safe to recompute.

create table public.analytics_metric_events (
  event_name text not null,
  metric text not null,
  amount_path text[],
  currency_path text[],
  cost_path text[],
  customer_event boolean not null default false,
  description text not null,
  constraint analytics_metric_events_pkey primary key (event_name),
  constraint analytics_metric_events_metric_known check (metric in ('sessions', 'traffic', 'add_to_carts', 'orders', 'refunds')),
  constraint analytics_metric_events_amounts_for_money check (
    (metric in ('orders', 'refunds')) = (amount_path is not null)
    and (currency_path is null or amount_path is not null)
    and (cost_path is null or metric = 'orders')),
  constraint analytics_metric_events_customer_is_order check (not customer_event or metric = 'orders')
);
comment on table public.analytics_metric_events is 'Reference data: which event names count toward which metrics_daily metric, and where their amounts (cents), currency and cost of goods (cents) sit in props. The only way events reach the rollups.';
comment on column public.analytics_metric_events.amount_path is 'Path in props of the amount in cents (orders: revenue; refunds: refunded amount).';
comment on column public.analytics_metric_events.currency_path is 'Path in props of the ISO 4217 currency; amounts in another currency than the organization''s reporting currency are not summed (events without one count as that currency).';
comment on column public.analytics_metric_events.cost_path is 'Path in props of the cost of goods in cents (gross margin); absent means none known.';
comment on column public.analytics_metric_events.customer_event is 'A subject''s first such event makes them a new customer that day (CAC).';

alter table public.analytics_metric_events enable row level security;

-- analytics_metric_events_select: reference data, readable by every signed-in user.
create policy analytics_metric_events_select on public.analytics_metric_events for select to authenticated
  using (true);

grant select on public.analytics_metric_events to authenticated, service_role;

insert into public.analytics_metric_events (event_name, metric, amount_path, currency_path, cost_path, customer_event, description) values
  ('session.started', 'sessions', null, null, null, false, 'A visit began'),
  ('page.viewed', 'traffic', null, null, null, false, 'A page view'),
  ('cart.added', 'add_to_carts', null, null, null, false, 'A product was added to the cart'),
  ('order.completed', 'orders', '{amount_cents}', '{currency}', '{cost_cents}', true, 'An order was paid'),
  ('order.refunded', 'refunds', '{amount_cents}', '{currency}', null, false, 'An order was (partly) refunded');

create table public.metrics_daily (
  organization_id uuid not null,
  day date not null,
  currency text not null,
  sessions bigint not null default 0,
  traffic bigint not null default 0,
  add_to_carts bigint not null default 0,
  orders bigint not null default 0,
  new_customers bigint not null default 0,
  revenue_cents bigint not null default 0,
  refunds_cents bigint not null default 0,
  cost_cents bigint not null default 0,
  spend_cents bigint not null default 0,
  aov_cents bigint,
  cac_cents bigint,
  conversion_rate numeric(12, 6),
  gross_margin_cents bigint not null default 0,
  computed_at timestamptz not null default now(),
  constraint metrics_daily_pkey primary key (organization_id, day),
  constraint metrics_daily_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint metrics_daily_currency_iso4217 check (currency ~ '^[a-z]{3}$'),
  constraint metrics_daily_counts_non_negative check (sessions >= 0 and traffic >= 0 and add_to_carts >= 0 and orders >= 0
    and new_customers >= 0 and new_customers <= orders and revenue_cents >= 0 and refunds_cents >= 0 and cost_cents >= 0
    and spend_cents >= 0),
  constraint metrics_daily_aov_derived check (aov_cents is not distinct from
    case when orders > 0 then round(revenue_cents::numeric / orders)::bigint end),
  constraint metrics_daily_cac_derived check (cac_cents is not distinct from
    case when new_customers > 0 then round(spend_cents::numeric / new_customers)::bigint end),
  constraint metrics_daily_conversion_derived check (conversion_rate is not distinct from
    case when sessions > 0 then round(orders::numeric / sessions, 6) end),
  constraint metrics_daily_margin_derived check (gross_margin_cents = revenue_cents - refunds_cents - cost_cents)
);
comment on table public.metrics_daily is 'Daily rollup per organization (seed 002 "metrics_daily"), days in the organization''s time zone. Derived only, by recompute_metrics_daily(), from analytics_events (through analytics_metric_events) and spend; the ratios are checked against their parts.';
comment on column public.metrics_daily.currency is 'The organization''s reporting currency (organizations.settings ->> ''currency'', default usd) the amounts are in.';
comment on column public.metrics_daily.traffic is 'Page views.';
comment on column public.metrics_daily.new_customers is 'Subjects (user or anonymous id) whose first order ever was that day.';
comment on column public.metrics_daily.aov_cents is 'Average order value: revenue / orders (null without orders).';
comment on column public.metrics_daily.cac_cents is 'Customer acquisition cost: spend / new customers (null without new customers).';
comment on column public.metrics_daily.conversion_rate is 'Orders per session (null without sessions).';
comment on column public.metrics_daily.gross_margin_cents is 'Revenue less refunds less the cost of goods the order events carry.';

alter table public.metrics_daily enable row level security;

-- metrics_daily_select: members holding analytics.read read their organization's rollups.
create policy metrics_daily_select on public.metrics_daily for select to authenticated
  using (organization_id in (select private.organizations_with_permission('analytics.read')));

grant select on public.metrics_daily to authenticated, service_role;

create function private.reporting_currency(settings jsonb) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select case when lower(settings ->> 'currency') ~ '^[a-z]{3}$' then lower(settings ->> 'currency') else 'usd' end
$$;
comment on function private.reporting_currency(jsonb) is 'An organization''s reporting currency from its settings (settings.currency, ISO 4217), usd by default.';

-- Replaces the rollup rows of [_start, _end] (the organizations' own calendar days) in one transaction: deletes them
-- and inserts what the events and spend of those days add up to (only days with data get a row). Recomputes run one
-- at a time. Cohorts and utm_tracks are not rebuilt here: upsert_events() keeps them current as events are stored
-- (74-analytics-attribution.sql), and private.rebuild_attribution() repairs them on demand, to the same rows.
create function public.recompute_metrics_daily(_start date, _end date, _organization_id uuid default null)
returns int
language plpgsql security definer
set search_path = ''
set jit = off
set work_mem = '128MB'
as $$
declare
  written integer;
  scope uuid[];
  counted text[];
  priced text[];
  customer_events text[];
begin
  if _start is null or _end is null or _start > _end then
    raise exception 'need _start <= _end (got % and %)', _start, _end using errcode = '22023';
  end if;
  if _end - _start > 3660 then
    raise exception 'at most 10 years per recompute (got % days)', _end - _start + 1 using errcode = '54000';
  end if;
  if _organization_id is not null
     and not exists (select 1 from public.organizations o where o.id = _organization_id) then
    raise exception 'no organization %', _organization_id using errcode = 'P0002';
  end if;
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('recompute_metrics_daily', 0));

  select coalesce(array_agg(o.id), '{}') into scope
  from public.organizations o
  where (_organization_id is null or o.id = _organization_id);

  delete from public.metrics_daily m where m.organization_id = any (scope) and m.day between _start and _end;

  -- The metric event names as arrays, so that each scan below filters by them on the events' own
  -- (organization_id, event_name, occurred_at) index instead of joining every event with the reference table.
  select coalesce(array_agg(m.event_name), '{}'),
         coalesce(array_agg(m.event_name) filter (where m.amount_path is not null), '{}'),
         coalesce(array_agg(m.event_name) filter (where m.customer_event), '{}')
  into counted, priced, customer_events
  from public.analytics_metric_events m;

  with orgs as (
    select o.id, o.timezone, private.reporting_currency(o.settings) as currency,
           (_start::timestamp at time zone o.timezone) as from_at,
           ((_end + 1)::timestamp at time zone o.timezone) as to_at
    from public.organizations o where o.id = any (scope)
  ),
  -- Time zones are at most 26 hours apart: the constant bounds prune partitions, the per-organization ones decide.
  -- Events are first counted per organization, event name and quarter hour (UTC): every time zone's offset is a
  -- whole number of quarter hours, so a quarter hour lies within one local day, and the time zone is applied per
  -- bucket, not per event. Only the events with amounts (orders, refunds) are read a second time, for their props.
  counts as (
    select e.organization_id, e.event_name,
           date_bin('15 minutes', e.occurred_at, timestamptz '2000-01-01 00:00:00+00') as bucket,
           count(*) as events
    from public.analytics_events e
    join orgs o on o.id = e.organization_id
    where e.event_name = any (counted)
      and e.occurred_at >= (_start - 2)::timestamp at time zone 'UTC'
      and e.occurred_at < (_end + 3)::timestamp at time zone 'UTC'
      and e.occurred_at >= o.from_at and e.occurred_at < o.to_at
    group by 1, 2, 3
  ),
  amounts as (
    select e.organization_id, e.event_name,
           date_bin('15 minutes', e.occurred_at, timestamptz '2000-01-01 00:00:00+00') as bucket,
           sum(case when coalesce(lower(e.props #>> m.currency_path), o.currency) = o.currency
                     and (e.props #>> m.amount_path) ~ '^[0-9]{1,15}$'
                    then (e.props #>> m.amount_path)::bigint end) as amount,
           sum(case when m.cost_path is not null
                     and coalesce(lower(e.props #>> m.currency_path), o.currency) = o.currency
                     and (e.props #>> m.cost_path) ~ '^[0-9]{1,15}$'
                    then (e.props #>> m.cost_path)::bigint end) as cost
    from public.analytics_events e
    join orgs o on o.id = e.organization_id
    join public.analytics_metric_events m on m.event_name = e.event_name
    where e.event_name = any (priced)
      and e.occurred_at >= (_start - 2)::timestamp at time zone 'UTC'
      and e.occurred_at < (_end + 3)::timestamp at time zone 'UTC'
      and e.occurred_at >= o.from_at and e.occurred_at < o.to_at
    group by 1, 2, 3
  ),
  buckets as (
    select c.organization_id, m.metric, c.bucket, c.events, a.amount, a.cost
    from counts c
    join public.analytics_metric_events m on m.event_name = c.event_name
    left join amounts a on a.organization_id = c.organization_id and a.event_name = c.event_name and a.bucket = c.bucket
  ),
  event_days as (
    select b.organization_id, (b.bucket at time zone o.timezone)::date as day,
           coalesce(sum(b.events) filter (where b.metric = 'sessions'), 0) as sessions,
           coalesce(sum(b.events) filter (where b.metric = 'traffic'), 0) as traffic,
           coalesce(sum(b.events) filter (where b.metric = 'add_to_carts'), 0) as add_to_carts,
           coalesce(sum(b.events) filter (where b.metric = 'orders'), 0) as orders,
           coalesce(sum(b.amount) filter (where b.metric = 'orders'), 0) as revenue_cents,
           coalesce(sum(b.amount) filter (where b.metric = 'refunds'), 0) as refunds_cents,
           coalesce(sum(b.cost) filter (where b.metric = 'orders'), 0) as cost_cents
    from buckets b join orgs o on o.id = b.organization_id
    group by 1, 2
  ),
  -- A new customer's first order ever (earlier than the range too), by user or anonymous id.
  first_orders as (
    select e.organization_id, min(e.occurred_at) as first_at
    from public.analytics_events e
    where e.organization_id = any (scope) and e.event_name = any (customer_events)
      and (e.user_id is not null or e.anonymous_id is not null)
      and e.occurred_at < (_end + 3)::timestamp at time zone 'UTC'
    group by e.organization_id, coalesce(e.user_id::text, 'anonymous:' || e.anonymous_id)
  ),
  customer_days as (
    select f.organization_id, (f.first_at at time zone o.timezone)::date as day, count(*) as new_customers
    from first_orders f join orgs o on o.id = f.organization_id
    where f.first_at >= o.from_at and f.first_at < o.to_at
    group by 1, 2
  ),
  spend_days as (
    select s.organization_id, s.date as day, sum(s.spend_cents) as spend_cents
    from public.spend s
    where s.organization_id = any (scope) and s.date between _start and _end
    group by 1, 2
  ),
  days as (
    select d.organization_id, d.day from event_days d
    union select s.organization_id, s.day from spend_days s
  ),
  totals as (
    select d.organization_id, d.day, o.currency,
           coalesce(ev.sessions, 0) as sessions, coalesce(ev.traffic, 0) as traffic,
           coalesce(ev.add_to_carts, 0) as add_to_carts, coalesce(ev.orders, 0) as orders,
           coalesce(c.new_customers, 0) as new_customers,
           coalesce(ev.revenue_cents, 0) as revenue_cents, coalesce(ev.refunds_cents, 0) as refunds_cents,
           coalesce(ev.cost_cents, 0) as cost_cents, coalesce(s.spend_cents, 0) as spend_cents
    from days d
    join orgs o on o.id = d.organization_id
    left join event_days ev on ev.organization_id = d.organization_id and ev.day = d.day
    left join customer_days c on c.organization_id = d.organization_id and c.day = d.day
    left join spend_days s on s.organization_id = d.organization_id and s.day = d.day
  )
  insert into public.metrics_daily (organization_id, day, currency, sessions, traffic, add_to_carts, orders,
                                    new_customers, revenue_cents, refunds_cents, cost_cents, spend_cents, aov_cents,
                                    cac_cents, conversion_rate, gross_margin_cents)
  select t.organization_id, t.day, t.currency, t.sessions, t.traffic, t.add_to_carts, t.orders, t.new_customers,
         t.revenue_cents, t.refunds_cents, t.cost_cents, t.spend_cents,
         case when t.orders > 0 then round(t.revenue_cents::numeric / t.orders)::bigint end,
         case when t.new_customers > 0 then round(t.spend_cents::numeric / t.new_customers)::bigint end,
         case when t.sessions > 0 then round(t.orders::numeric / t.sessions, 6) end,
         t.revenue_cents - t.refunds_cents - t.cost_cents
  from totals t;
  get diagnostics written = row_count;
  return written;
end;
$$;
comment on function public.recompute_metrics_daily(date, date, uuid) is 'Replaces metrics_daily rows of the days _start.._end (organization-local) for one organization or all (null), from analytics_events through analytics_metric_events and spend, in one transaction (cohorts and utm_tracks are kept by upsert_events; private.rebuild_attribution repairs them). Repeatable; returns the rows written. Service role only (pg_cron recomputes the last 3 days nightly).';

grant execute on function public.recompute_metrics_daily(date, date, uuid) to service_role;
