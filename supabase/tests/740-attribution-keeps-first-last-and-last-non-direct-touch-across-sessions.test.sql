-- Attribution on a crafted multi-session history: first touch, last touch and last non-direct touch per user and
-- per visitor, whatever order the events arrive in; cohorts by first event in the organization's time zone; the
-- explicit repair rebuild (private.rebuild_attribution) gives the same rows; cohort_retention; every constraint by SQLSTATE.
begin;
select plan(27);

select tests.create_user(h) from unnest(array['at_owner', 'at_buyer']) h;
select tests.create_organization('at_owner', 'test-at-shop');
update public.organizations set timezone = 'Europe/Warsaw' where id = tests.org_id('test-at-shop');

-- m0 starts two months ago (UTC); t1 is 30 minutes before it in UTC, already m0 in Warsaw.
create temporary table m on commit drop as
select date_trunc('month', (now() at time zone 'UTC') - interval '2 months')::date as m0;
create function pg_temp.at(hours numeric) returns timestamptz language sql stable as $$
  select ((select m0 from m)::timestamp + make_interval(secs => hours * 3600)) at time zone 'UTC'
$$;
create function pg_temp.ev(n int, hours numeric, event_name text, props jsonb, who text default 'buyer') returns jsonb
language sql stable as $$
  select jsonb_strip_nulls(jsonb_build_object(
    'organization_id', tests.org_id('test-at-shop'), 'event_id', '00000000-0000-4000-a000-' || lpad(n::text, 12, '0'),
    'occurred_at', pg_temp.at(hours), 'event_name', event_name, 'props', props,
    'user_id', case when who = 'buyer' then tests.user_id('at_buyer') end,
    'anonymous_id', case when who = 'buyer' then 'anon-before-login' else who end))
$$;

-- The buyer's history, in time order:
--   t1 (-0.5 h)  session.started from a Google ad (UTM + gclid)       first touch
--   t2 (+24 h)   session.started, direct
--   t3 (+25 h)   page.viewed with a referrer                           not a touch
--   t4 (+48 h)   session.started from a newsletter link (referrer)     last non-direct touch
--   t5 (+40 d)   session.started, direct                               last touch (next month)
--   t6 (+40 d)   order.completed
-- The events arrive late and out of order: first the later ones, then the earlier ones.
select is((public.upsert_events(jsonb_build_array(
  pg_temp.ev(5, 960, 'session.started', '{}'),
  pg_temp.ev(4, 48, 'session.started', '{"referrer": "https://News.Example.org/issue/12?x=1"}'),
  pg_temp.ev(6, 960.5, 'order.completed', '{"amount_cents": 4200}'))) ->> 'inserted'), '3', 'the later events arrive first');
select results_eq($$select touches, first_source, first_medium, first_touch_at, last_source, last_touch_at, last_non_direct_source, last_non_direct_medium from public.utm_tracks where user_id = tests.user_id('at_buyer')$$,
  $$values (2::bigint, 'news.example.org', 'referral', pg_temp.at(48), null::text, pg_temp.at(960), 'news.example.org', 'referral')$$,
  'after the first batch: the referral is first and last non-direct, the direct visit is last');
select is((public.upsert_events(jsonb_build_array(
  pg_temp.ev(2, 24, 'session.started', '{}'),
  pg_temp.ev(3, 25, 'page.viewed', '{"path": "/shoes", "referrer": "https://www.bing.com/"}'),
  pg_temp.ev(1, -0.5, 'session.started', '{"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "winter", "utm_term": "boots", "utm_content": "ad-7", "gclid": "Cj0KCQ"}'))) ->> 'inserted'),
  '3', 'the earlier events arrive later');
select results_eq($$select first_source, first_medium, first_campaign, first_term, first_content, first_click_id, first_touch_at from public.utm_tracks where user_id = tests.user_id('at_buyer')$$,
  $$values ('google', 'cpc', 'winter', 'boots', 'ad-7', 'Cj0KCQ', pg_temp.at(-0.5))$$, 'the first touch is the Google ad, with every UTM field and the click id');
select results_eq($$select last_source, last_medium, last_campaign, last_touch_at from public.utm_tracks where user_id = tests.user_id('at_buyer')$$,
  $$values (null::text, null::text, null::text, pg_temp.at(960))$$, 'the last touch is the direct visit');
select results_eq($$select last_non_direct_source, last_non_direct_medium, last_non_direct_touch_at from public.utm_tracks where user_id = tests.user_id('at_buyer')$$,
  $$values ('news.example.org', 'referral', pg_temp.at(48))$$, 'the last non-direct touch is the newsletter referral (a later direct visit does not replace it)');
select is((select touches from public.utm_tracks where user_id = tests.user_id('at_buyer')), 4::bigint, 'four touches: the page view with a referrer is not one');
select is((select count(*)::int from public.utm_tracks where organization_id = tests.org_id('test-at-shop')), 1, 'events with a user count for the user, not for their anonymous id');

-- Cohort: acquired at the first event, month in Warsaw time.
select results_eq($$select cohort_month, acquired_at from public.cohorts where user_id = tests.user_id('at_buyer')$$,
  $$values ((select m0 from m), pg_temp.at(-0.5))$$, 'the cohort is the month of the first event in the organization''s time zone (UTC says the month before)');

-- A visitor from a Facebook ad who later comes from a partner site, and one who only ever came directly.
select is((public.upsert_events(jsonb_build_array(
  pg_temp.ev(11, 2, 'page.viewed', '{"fbclid": "IwAR0"}', 'visitor-a'),
  pg_temp.ev(12, 3, 'session.started', '{"referrer": "https://partner.example.com/"}', 'visitor-a'),
  pg_temp.ev(13, 4, 'session.started', '{}', 'visitor-b'),
  pg_temp.ev(14, 800, 'cart.added', '{}', 'visitor-b'))) ->> 'inserted'), '4', 'two visitors arrive');
select results_eq($$select first_source, first_medium, first_click_id, last_source, last_medium from public.utm_tracks where anonymous_id = 'visitor-a'$$,
  $$values ('facebook', 'cpc', 'IwAR0', 'partner.example.com', 'referral')$$, 'a click id alone names its platform; a referrer is a referral');
select results_eq($$select first_source, last_source, last_non_direct_source, last_non_direct_touch_at from public.utm_tracks where anonymous_id = 'visitor-b'$$,
  $$values (null::text, null::text, null::text, null::timestamptz)$$, 'a visitor who only came directly has no non-direct touch');

-- The explicit repair rebuild (private.rebuild_attribution) gives exactly the rows the incremental path built.
create temporary table incremental on commit drop as
select subject_key, touches, first_source, first_medium, first_campaign, first_term, first_content, first_click_id, first_touch_at,
       last_source, last_medium, last_campaign, last_term, last_content, last_click_id, last_touch_at,
       last_non_direct_source, last_non_direct_medium, last_non_direct_campaign, last_non_direct_term,
       last_non_direct_content, last_non_direct_click_id, last_non_direct_touch_at
from public.utm_tracks where organization_id = tests.org_id('test-at-shop');
create temporary table incremental_cohorts on commit drop as
select subject_key, cohort_month, acquired_at from public.cohorts where organization_id = tests.org_id('test-at-shop');
update public.utm_tracks set first_source = 'tampered' where organization_id = tests.org_id('test-at-shop');
delete from public.cohorts where organization_id = tests.org_id('test-at-shop');
select private.rebuild_attribution(array[tests.org_id('test-at-shop')], (select m0 - 1 from m));
select set_eq($$select subject_key, touches, first_source, first_medium, first_campaign, first_term, first_content, first_click_id, first_touch_at,
       last_source, last_medium, last_campaign, last_term, last_content, last_click_id, last_touch_at,
       last_non_direct_source, last_non_direct_medium, last_non_direct_campaign, last_non_direct_term,
       last_non_direct_content, last_non_direct_click_id, last_non_direct_touch_at from public.utm_tracks where organization_id = tests.org_id('test-at-shop')$$,
  $$select * from incremental$$, 'the rebuild restores utm_tracks to exactly what the incremental path kept');
select set_eq($$select subject_key, cohort_month, acquired_at from public.cohorts where organization_id = tests.org_id('test-at-shop')$$,
  $$select * from incremental_cohorts$$, 'and rebuilds the cohorts');

-- Retention: cohort m0 has the buyer and both visitors; in m0 + 1 the buyer (t5, t6) and visitor-b (800 h) return.
select results_eq($$select cohort_month, months_since, users, retained from public.cohort_retention(tests.org_id('test-at-shop'), (select m0 from m), (select (m0 + interval '1 month')::date from m))$$,
  $$values ((select m0 from m), 0, 3, 3), ((select m0 from m), 1, 3, 2)$$, 'cohort_retention counts the cohort and who came back each month');
select throws_ok($$select * from public.cohort_retention(tests.org_id('test-at-shop'), '2026-05-01', '2026-04-01')$$, '22023', null, 'a month range ending before it starts is refused');
select throws_ok($$select * from public.cohort_retention(null, '2026-04-01', '2026-05-01')$$, '22004', null, 'cohort_retention needs an organization');
select throws_ok($$select * from public.cohort_retention(gen_random_uuid(), '2026-04-01', '2026-05-01')$$, 'P0002', null, 'and an existing one');

-- Constraints, by SQLSTATE.
select throws_ok($$insert into public.cohorts (organization_id, user_id, anonymous_id, cohort_month, acquired_at) values (tests.org_id('test-at-shop'), tests.user_id('at_owner'), 'x', '2026-01-01', now())$$,
  '23514', null, 'a cohort row for a user and a visitor at once violates cohorts_one_subject');
select throws_ok($$insert into public.cohorts (organization_id, anonymous_id, cohort_month, acquired_at) values (tests.org_id('test-at-shop'), 'x', '2026-01-15', now())$$,
  '23514', null, 'a cohort month that is not a first of the month violates cohorts_month_first');
select throws_ok($$insert into public.cohorts (organization_id, anonymous_id, cohort_month, acquired_at) values (tests.org_id('test-at-shop'), 'visitor-a', '2026-01-01', now())$$,
  '23505', null, 'a second cohort row for a subject violates cohorts_subject_key');
select throws_ok($$insert into public.utm_tracks (organization_id, anonymous_id, touches, first_touch_at, last_touch_at) values (tests.org_id('test-at-shop'), 'y', 1, now(), now() - interval '1 day')$$,
  '23514', null, 'a last touch before the first violates utm_tracks_touches_ordered');
select throws_ok($$insert into public.utm_tracks (organization_id, anonymous_id, touches, first_touch_at, last_touch_at, last_non_direct_touch_at) values (tests.org_id('test-at-shop'), 'y', 1, now(), now(), now())$$,
  '23514', null, 'a non-direct touch without a source violates utm_tracks_non_direct_has_source');
select throws_ok($$insert into public.utm_tracks (organization_id, anonymous_id, touches, first_touch_at, last_touch_at) values (tests.org_id('test-at-shop'), 'y', 0, now(), now())$$,
  '23514', null, 'zero touches violates utm_tracks_touches_positive');
select throws_ok($$insert into public.utm_tracks (organization_id, touches, first_touch_at, last_touch_at) values (tests.org_id('test-at-shop'), 1, now(), now())$$,
  '23514', null, 'a track without a subject violates utm_tracks_one_subject');

-- A deleted user's cohort and attribution go with them.
delete from auth.users where id = tests.user_id('at_buyer');
select is_empty($$select 1 from public.utm_tracks where subject_key like 'user:%' and organization_id = tests.org_id('test-at-shop')$$, 'a deleted user''s attribution is gone');
select is_empty($$select 1 from public.cohorts where subject_key like 'user:%' and organization_id = tests.org_id('test-at-shop')$$, 'and so is their cohort row');

select * from finish();
rollback;
