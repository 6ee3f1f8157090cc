-- recompute_metrics_daily: for random ranges the rollup rows equal a direct aggregate over the raw events and spend
-- (written here independently of analytics_metric_events), days in each organization's time zone; repeatable; late
-- events are picked up by recomputing their day; ranges outside are untouched; every constraint by SQLSTATE.
begin;
select plan(25);

select tests.create_user('ro_owner');
select tests.create_organization('ro_owner', 'test-ro-ny');
select tests.create_organization('ro_owner', 'test-ro-tokyo');
update public.organizations set timezone = 'America/New_York' where id = tests.org_id('test-ro-ny');
update public.organizations set timezone = 'Asia/Tokyo', settings = '{"currency": "EUR"}' where id = tests.org_id('test-ro-tokyo');

select setseed(0.4242);
create temporary table base_day on commit drop as select (now() at time zone 'UTC')::date - 70 as d;

-- 3,000 events over 60 days for both organizations: sessions, page views, carts, orders (usd or eur, some with a
-- cost), refunds, unmapped events and garbage amounts, 60 visitors each.
create temporary table generated on commit drop as
select jsonb_build_object(
         'organization_id', case when i % 3 = 0 then tests.org_id('test-ro-tokyo') else tests.org_id('test-ro-ny') end,
         'event_id', gen_random_uuid(),
         'occurred_at', (((select d from base_day) + (random() * 60)::int) + make_interval(secs => (random() * 86399)::int))
                         at time zone 'UTC',
         'event_name', (array['session.started', 'page.viewed', 'page.viewed', 'cart.added', 'order.completed',
                              'order.refunded', 'newsletter.signup'])[1 + (random() * 6)::int],
         'anonymous_id', 'v' || (random() * 59)::int,
         'props', jsonb_strip_nulls(jsonb_build_object(
           'amount_cents', case when random() < 0.05 then to_jsonb('12.50'::text) else to_jsonb((random() * 20000)::int) end,
           'currency', (array['usd', 'USD', 'eur', null])[1 + (random() * 3)::int],
           'cost_cents', case when random() < 0.5 then (random() * 5000)::int end))) as row
from generate_series(1, 3000) i;
select is((public.upsert_events((select jsonb_agg(row) from generated)) ->> 'inserted')::int, 3000, 'the generated events are stored');
select is((public.upsert_spend((
  select jsonb_agg(jsonb_build_object('organization_id', o, 'platform', p, 'campaign_id', 'c1',
                                      'date', (select d from base_day) + k, 'spend_cents', (random() * 90000)::int))
  from unnest(array[tests.org_id('test-ro-ny'), tests.org_id('test-ro-tokyo')]) o, unnest(array['google', 'meta']) p,
       generate_series(0, 60, 2) k)) ->> 'inserted')::int, 124, 'spend for every other day is stored');

-- The direct aggregate: raw events and spend in each organization's calendar, event names and property paths
-- spelled out here.
create function pg_temp.direct(s date, e date) returns table (
  organization_id uuid, day date, currency text, sessions bigint, traffic bigint, add_to_carts bigint, orders bigint,
  new_customers bigint, revenue_cents bigint, refunds_cents bigint, cost_cents bigint, spend_cents bigint,
  aov_cents bigint, cac_cents bigint, conversion_rate numeric, gross_margin_cents bigint)
language sql stable as $$
  with o as (
    select id, timezone, case when settings ->> 'currency' is null then 'usd' else lower(settings ->> 'currency') end as cur
    from public.organizations where id in (tests.org_id('test-ro-ny'), tests.org_id('test-ro-tokyo'))
  ),
  ev as (
    select e.organization_id as org, (e.occurred_at at time zone o.timezone)::date as day, e.event_name as n,
           e.anonymous_id as who, e.occurred_at as at,
           case when coalesce(lower(e.props ->> 'currency'), o.cur) = o.cur and e.props ->> 'amount_cents' ~ '^\d+$'
                then (e.props ->> 'amount_cents')::bigint end as amount,
           case when coalesce(lower(e.props ->> 'currency'), o.cur) = o.cur and e.props ->> 'cost_cents' ~ '^\d+$'
                then (e.props ->> 'cost_cents')::bigint end as cost
    from public.analytics_events e join o on o.id = e.organization_id
  ),
  firsts as (
    select org, who, min(at) as first_at from ev where n = 'order.completed' group by org, who
  ),
  newc as (
    select f.org, (f.first_at at time zone o.timezone)::date as day, count(*) as k
    from firsts f join o on o.id = f.org group by 1, 2
  ),
  sp as (
    select s.organization_id as org, s.date as day, sum(s.spend_cents) as cents from public.spend s
    where s.organization_id in (select id from o) group by 1, 2
  ),
  agg as (
    select org, day,
           count(*) filter (where n = 'session.started') as sessions,
           count(*) filter (where n = 'page.viewed') as traffic,
           count(*) filter (where n = 'cart.added') as carts,
           count(*) filter (where n = 'order.completed') as orders,
           coalesce(sum(amount) filter (where n = 'order.completed'), 0) as revenue,
           coalesce(sum(amount) filter (where n = 'order.refunded'), 0) as refunds,
           coalesce(sum(cost) filter (where n = 'order.completed'), 0) as cost
    from ev where n in ('session.started', 'page.viewed', 'cart.added', 'order.completed', 'order.refunded')
    group by org, day
  ),
  days as (select org, day from agg union select org, day from sp)
  select d.org, d.day, o.cur, coalesce(a.sessions, 0), coalesce(a.traffic, 0), coalesce(a.carts, 0),
         coalesce(a.orders, 0), coalesce(nc.k, 0), coalesce(a.revenue, 0), coalesce(a.refunds, 0), coalesce(a.cost, 0),
         coalesce(sp.cents, 0),
         case when a.orders > 0 then round(a.revenue::numeric / a.orders)::bigint end,
         case when nc.k > 0 then round(coalesce(sp.cents, 0)::numeric / nc.k)::bigint end,
         case when a.sessions > 0 then round(a.orders::numeric / a.sessions, 6) end,
         coalesce(a.revenue, 0) - coalesce(a.refunds, 0) - coalesce(a.cost, 0)
  from days d join o on o.id = d.org
  left join agg a on a.org = d.org and a.day = d.day
  left join newc nc on nc.org = d.org and nc.day = d.day
  left join sp on sp.org = d.org and sp.day = d.day
  where d.day between s and e
  order by 1, 2
$$;
create function pg_temp.rollup(s date, e date) returns table (
  organization_id uuid, day date, currency text, sessions bigint, traffic bigint, add_to_carts bigint, orders bigint,
  new_customers bigint, revenue_cents bigint, refunds_cents bigint, cost_cents bigint, spend_cents bigint,
  aov_cents bigint, cac_cents bigint, conversion_rate numeric, gross_margin_cents bigint)
language sql stable as $$
  select organization_id, day, currency, sessions, traffic, add_to_carts, orders, new_customers, revenue_cents,
         refunds_cents, cost_cents, spend_cents, aov_cents, cac_cents, conversion_rate, gross_margin_cents
  from public.metrics_daily
  where organization_id in (tests.org_id('test-ro-ny'), tests.org_id('test-ro-tokyo')) and day between s and e
  order by 1, 2
$$;

-- Five random ranges, each recomputed on its own and compared with the direct aggregate.
create temporary table ranges on commit drop as
select k, s, s + (random() * 25)::int as e
from (select k, (select d from base_day) + (random() * 55)::int - 3 as s from generate_series(1, 5) k) r;

select cmp_ok((select public.recompute_metrics_daily(s, e) from ranges where k = 1), '>', 0, 'recomputing random range 1 writes rows');
select results_eq($$select * from pg_temp.rollup((select s from ranges where k = 1), (select e from ranges where k = 1))$$,
                  $$select * from pg_temp.direct((select s from ranges where k = 1), (select e from ranges where k = 1))$$,
                  'range 1: the rollup rows equal the direct aggregate');
select public.recompute_metrics_daily(s, e) from ranges where k = 2;
select results_eq($$select * from pg_temp.rollup((select s from ranges where k = 2), (select e from ranges where k = 2))$$,
                  $$select * from pg_temp.direct((select s from ranges where k = 2), (select e from ranges where k = 2))$$,
                  'range 2: the rollup rows equal the direct aggregate');
select public.recompute_metrics_daily(s, e, tests.org_id('test-ro-ny')) from ranges where k = 3;
select results_eq($$select * from pg_temp.rollup((select s from ranges where k = 3), (select e from ranges where k = 3)) where organization_id = tests.org_id('test-ro-ny')$$,
                  $$select * from pg_temp.direct((select s from ranges where k = 3), (select e from ranges where k = 3)) where organization_id = tests.org_id('test-ro-ny')$$,
                  'range 3, one organization: the rollup rows equal the direct aggregate');
select public.recompute_metrics_daily(s, e) from ranges where k = 4;
select results_eq($$select * from pg_temp.rollup((select s from ranges where k = 4), (select e from ranges where k = 4))$$,
                  $$select * from pg_temp.direct((select s from ranges where k = 4), (select e from ranges where k = 4))$$,
                  'range 4: the rollup rows equal the direct aggregate');
select public.recompute_metrics_daily(s, e) from ranges where k = 5;
select results_eq($$select * from pg_temp.rollup((select s from ranges where k = 5), (select e from ranges where k = 5))$$,
                  $$select * from pg_temp.direct((select s from ranges where k = 5), (select e from ranges where k = 5))$$,
                  'range 5: the rollup rows equal the direct aggregate');

-- The whole period, twice: repeatable, and it equals the direct aggregate everywhere.
select public.recompute_metrics_daily((select d - 2 from base_day), (select d + 62 from base_day));
create temporary table first_pass on commit drop as select * from pg_temp.rollup('2000-01-01', '2100-01-01');
select results_eq($$select * from pg_temp.rollup('2000-01-01', '2100-01-01')$$, $$select * from pg_temp.direct('2000-01-01', '2100-01-01')$$,
                  'the whole period equals the direct aggregate');
select public.recompute_metrics_daily((select d - 2 from base_day), (select d + 62 from base_day));
select results_eq($$select * from pg_temp.rollup('2000-01-01', '2100-01-01')$$, $$select * from first_pass$$,
                  'recomputing again gives the same rows');
select cmp_ok((select count(*)::int from public.metrics_daily where organization_id = tests.org_id('test-ro-tokyo') and currency = 'eur'), '>', 0,
              'the Tokyo organization reports in its own currency');

-- Days follow the organization's time zone: 03:30 UTC is the evening before in New York, noon in Tokyo.
create temporary table late_day on commit drop as select (select d + 30 from base_day) as d;
create temporary table before_late on commit drop as
select * from public.metrics_daily where organization_id = tests.org_id('test-ro-ny') and day between (select d - 1 from late_day) and (select d from late_day);
select is((public.upsert_events(jsonb_build_array(jsonb_build_object(
  'organization_id', tests.org_id('test-ro-ny'), 'event_id', gen_random_uuid(), 'event_name', 'order.completed',
  'occurred_at', ((select d from late_day) + time '03:30') at time zone 'UTC', 'anonymous_id', 'late-buyer',
  'props', '{"amount_cents": 777, "currency": "usd"}'::jsonb))) ->> 'inserted'), '1', 'a late order arrives');
select results_eq($$select orders, revenue_cents from public.metrics_daily where organization_id = tests.org_id('test-ro-ny') and day = (select d - 1 from late_day)$$,
                  $$select orders, revenue_cents from before_late where day = (select d - 1 from late_day)$$,
                  'until its day is recomputed, the rollup does not change');
select public.recompute_metrics_daily((select d - 1 from late_day), (select d from late_day), tests.org_id('test-ro-ny'));
select results_eq($$select orders, revenue_cents, new_customers from public.metrics_daily where organization_id = tests.org_id('test-ro-ny') and day = (select d - 1 from late_day)$$,
                  $$select coalesce(max(orders), 0) + 1, coalesce(max(revenue_cents), 0) + 777, coalesce(max(new_customers), 0) + 1 from before_late where day = (select d - 1 from late_day)$$,
                  'recomputing picks it up on the New York calendar day before (03:30 UTC is 22:30 or 23:30 there)');
select results_eq($$select * from pg_temp.rollup('2000-01-01', '2100-01-01')$$, $$select * from pg_temp.direct('2000-01-01', '2100-01-01')$$,
                  'and the rollup equals the direct aggregate again');
select is((select count(*)::int from public.metrics_daily where organization_id = tests.org_id('test-ro-ny') and day < (select d - 1 from late_day)),
          (select count(*)::int from first_pass where organization_id = tests.org_id('test-ro-ny') and day < (select d - 1 from late_day)),
          'days outside the recomputed range are untouched');

-- Bad calls.
select throws_ok($$select public.recompute_metrics_daily('2026-02-01', '2026-01-01')$$, '22023', null, 'a range ending before it starts is refused');
select throws_ok($$select public.recompute_metrics_daily('2026-01-01', '2026-01-02', gen_random_uuid())$$, 'P0002', null, 'an unknown organization is refused');

-- Constraints, by SQLSTATE.
select throws_ok($$insert into public.metrics_daily (organization_id, day, currency, orders, revenue_cents, aov_cents) values (tests.org_id('test-ro-ny'), '1999-01-01', 'usd', 2, 100, 70)$$,
  '23514', null, 'an AOV that is not revenue / orders violates metrics_daily_aov_derived');
select throws_ok($$insert into public.metrics_daily (organization_id, day, currency, sessions, orders, conversion_rate, aov_cents, revenue_cents, new_customers) values (tests.org_id('test-ro-ny'), '1999-01-01', 'usd', 4, 1, 0.5, 0, 0, 0)$$,
  '23514', null, 'a conversion rate that is not orders / sessions violates metrics_daily_conversion_derived');
select throws_ok($$insert into public.metrics_daily (organization_id, day, currency, new_customers, spend_cents, cac_cents, orders, aov_cents) values (tests.org_id('test-ro-ny'), '1999-01-01', 'usd', 1, 100, 1, 1, 0)$$,
  '23514', null, 'a CAC that is not spend / new customers violates metrics_daily_cac_derived');
select throws_ok($$insert into public.metrics_daily (organization_id, day, currency, revenue_cents, gross_margin_cents) values (tests.org_id('test-ro-ny'), '1999-01-01', 'usd', 0, 5)$$,
  '23514', null, 'a margin that is not revenue - refunds - cost violates metrics_daily_margin_derived');
select throws_ok($$insert into public.metrics_daily (organization_id, day, currency) values (tests.org_id('test-ro-ny'), '1999-01-01', 'US$')$$,
  '23514', null, 'a currency that is not ISO 4217 violates metrics_daily_currency_iso4217');
select throws_ok($$insert into public.metrics_daily (organization_id, day, currency) select organization_id, day, currency from public.metrics_daily limit 1$$,
  '23505', null, 'a second row for an organization and day violates metrics_daily_pkey');
select throws_ok($$insert into public.analytics_metric_events (event_name, metric, description) values ('order.paid', 'orders', 'no amount')$$,
  '23514', null, 'a money metric without an amount path violates analytics_metric_events_amounts_for_money');

select * from finish();
rollback;
