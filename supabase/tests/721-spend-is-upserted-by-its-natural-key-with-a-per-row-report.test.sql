-- upsert_spend: insert or update by (organization, platform, campaign, ad set, date) in one statement, a per-row
-- report (inserted, updated, unchanged, superseded, rejected with a reason), limits, and every constraint by SQLSTATE.
begin;
select plan(17);

select tests.create_user('sp_owner');
select tests.create_organization('sp_owner', 'test-sp-shop');
create temporary table reports (name text primary key, report jsonb) on commit drop;
create function pg_temp.sp(extra jsonb default '{}') returns jsonb language sql stable as $$
  select jsonb_build_object('organization_id', tests.org_id('test-sp-shop'), 'platform', 'google', 'campaign_id', 'brand',
                            'adset_id', 'exact', 'date', '2026-11-02', 'spend_cents', 1500, 'clicks', 30, 'impressions', 1000) || extra
$$;

insert into reports select 'first', public.upsert_spend(jsonb_build_array(
  pg_temp.sp(), pg_temp.sp('{"adset_id": null}'), pg_temp.sp('{"date": "2026-11-03", "spend_cents": 10}'),
  pg_temp.sp('{"date": "2026-11-03", "spend_cents": 20}'),
  pg_temp.sp('{"platform": "Google Ads"}'), pg_temp.sp('{"date": "2026-02-30"}'), pg_temp.sp('{"spend_cents": -5}'),
  pg_temp.sp('{"clicks": 5000}'), pg_temp.sp(jsonb_build_object('organization_id', gen_random_uuid())), pg_temp.sp('{"campaign_id": ""}')));
select is((select report ->> 'inserted' from reports where name = 'first'), '3', 'three distinct natural keys are inserted');
select is((select report -> 'results' -> 2 ->> 'status' from reports where name = 'first'), 'superseded', 'a key given twice keeps its last row; the earlier one is superseded');
select is((select spend_cents from public.spend where date = '2026-11-03'), 20::bigint, 'the last row of a repeated key is what is stored');
select is((select count(*)::int from public.spend where organization_id = tests.org_id('test-sp-shop') and date = '2026-11-02'), 2, 'a null ad set is its own key beside a named one');
select results_eq(
  $$select r ->> 'reason' from reports, jsonb_array_elements(report -> 'results') with ordinality x(r, n) where name = 'first' and r ->> 'status' = 'rejected' order by n$$,
  $$values ('invalid_platform'), ('invalid_date'), ('invalid_number'), ('clicks_exceed_impressions'), ('unknown_organization'), ('invalid_campaign_id')$$,
  'each rejected row carries its reason');

insert into reports select 'second', public.upsert_spend(jsonb_build_array(pg_temp.sp(), pg_temp.sp('{"adset_id": null, "spend_cents": 99}'), '7'::jsonb));
select is((select report ->> 'unchanged' from reports where name = 'second'), '1', 'the same row again is unchanged');
select is((select report ->> 'updated' from reports where name = 'second'), '1', 'a changed row for a stored key is updated');
select is((select report -> 'results' -> 2 ->> 'reason' from reports where name = 'second'), 'not_an_object', 'a row that is not an object is rejected');
select is((select spend_cents from public.spend where adset_id is null), 99::bigint, 'the update is stored');
select is((select count(*)::int from public.spend where organization_id = tests.org_id('test-sp-shop')), 3, 'updates never add rows');

select throws_ok($$select public.upsert_spend((select jsonb_agg(pg_temp.sp()) from generate_series(1, 10001)))$$, '54000', null, 'more than 10,000 rows are refused');
select throws_ok($$select public.upsert_spend('{}')$$, '22023', null, 'a batch that is not an array is refused');

select throws_ok($$insert into public.spend (organization_id, platform, campaign_id, date, spend_cents) values (tests.org_id('test-sp-shop'), 'google', 'brand', '2026-11-02', 1)$$,
  '23505', null, 'a second row for a natural key violates spend_natural_key (a null ad set included)');
select throws_ok($$insert into public.spend (organization_id, platform, campaign_id, date, spend_cents) values (tests.org_id('test-sp-shop'), 'google', 'x', '2026-11-03', -1)$$,
  '23514', null, 'negative spend violates spend_amounts_non_negative');
select throws_ok($$insert into public.spend (organization_id, platform, campaign_id, date, clicks, impressions) values (tests.org_id('test-sp-shop'), 'google', 'x', '2026-11-03', 11, 10)$$,
  '23514', null, 'more clicks than impressions violates spend_clicks_within_impressions');
select throws_ok($$insert into public.spend (organization_id, platform, campaign_id, date) values (tests.org_id('test-sp-shop'), 'Meta!', 'x', '2026-11-03')$$,
  '23514', null, 'a platform outside the pattern violates spend_platform_format');
select throws_ok($$insert into public.spend (organization_id, platform, campaign_id, date) values (gen_random_uuid(), 'meta', 'x', '2026-11-03')$$,
  '23503', null, 'an unknown organization violates spend_organization_id_fkey');

select * from finish();
rollback;
