-- A user's analytics data is in export_my_data(); retention_policies drops expired analytics months with their
-- exact-once keys; pg_cron recomputes the last 3 days nightly.
begin;
select plan(9);

select tests.create_user(h) from unnest(array['ap_owner', 'ap_buyer']) h;
select tests.create_organization('ap_owner', 'test-ap-shop');
select is((public.upsert_events(jsonb_build_array(
  jsonb_build_object('organization_id', tests.org_id('test-ap-shop'), 'event_id', gen_random_uuid(), 'occurred_at', now() - interval '1 hour',
                     'event_name', 'session.started', 'user_id', tests.user_id('ap_buyer'), 'props', '{"utm_source": "newsletter"}'::jsonb),
  jsonb_build_object('organization_id', tests.org_id('test-ap-shop'), 'event_id', gen_random_uuid(), 'occurred_at', now() - interval '1 hour',
                     'event_name', 'page.viewed', 'anonymous_id', 'someone-else'))) ->> 'inserted'), '2', 'a user''s event and a visitor''s event are stored');

select tests.authenticate_as('ap_buyer');
create temporary table exported on commit drop as select public.export_my_data() as data;
select tests.clear_authentication();
select is((select jsonb_array_length(data -> 'analytics_events') from exported), 1, 'the export holds the user''s own analytics event, not the visitor''s');
select is((select data -> 'analytics_cohorts' -> 0 ->> 'user_id' from exported), tests.user_id('ap_buyer')::text, 'and their cohort row');
select is((select data -> 'analytics_attribution' -> 0 ->> 'first_source' from exported), 'newsletter', 'and their attribution');

-- An expired month (26 months ago, past the 730 days) goes whole, with its keys.
select private.create_monthly_partition('public.analytics_events', (date_trunc('month', now()) - interval '26 months')::date);
insert into private.analytics_event_keys values (tests.org_id('test-ap-shop'), '00000000-0000-4000-b000-000000000001', date_trunc('month', now()) - interval '26 months' + interval '3 days');
insert into public.analytics_events (organization_id, event_id, occurred_at, event_name)
values (tests.org_id('test-ap-shop'), '00000000-0000-4000-b000-000000000001', date_trunc('month', now()) - interval '26 months' + interval '3 days', 'page.viewed');
analyze public.analytics_events;
select ok((public.cleanup_retention_data() -> 'removed') ? 'analytics_events', 'cleanup_retention_data applies the analytics_events policy');
select is_empty($$select 1 from public.analytics_events where event_id = '00000000-0000-4000-b000-000000000001'$$, 'the expired month''s events are gone');
select is_empty($$select 1 from private.analytics_event_keys where event_id = '00000000-0000-4000-b000-000000000001'$$, 'and so are their keys');
select is((select count(*)::int from public.analytics_events where organization_id = tests.org_id('test-ap-shop')), 2, 'recent events stay');

select results_eq($$select schedule::text collate "default", command::text collate "default" from cron.job where jobname = 'analytics-recompute'$$,
  $$values ('15 3 * * *', 'select public.recompute_metrics_daily(current_date - 3, current_date)')$$,
  'pg_cron recomputes the last 3 days every night');

select * from finish();
rollback;
