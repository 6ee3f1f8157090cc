-- refresh_my_usage_analytics() runs as the caller (security invoker) over the caller's own app.focus telemetry, in
-- the caller's time zone; it writes usage_analytics and efficiency_metrics of exactly that period (statuses from
-- usage_status_thresholds, time saved from completed quick wins), gives the same rows when repeated, picks up new
-- events, refuses overlapping periods, bad periods, anon, the service role and an aal1 session that MFA forbids.
begin;
select plan(30);

select tests.create_user('ann');
select tests.create_user('bob');
select tests.create_user('kiwi');
update public.profiles set timezone = 'Pacific/Auckland' where id = tests.user_id('kiwi');

-- Ann, 2-5 November 2026 (UTC): vscode every day (1 h), slack one day (30 min), notion two days (15 min each);
-- outside the period or not a focus event: ignored.
insert into public.telemetry_events (id, user_id, occurred_at, app_id, event_type, duration_ms)
select gen_random_uuid(), tests.user_id('ann'), e.at, e.app, e.kind, e.ms
from (values
  (timestamptz '2026-11-02 09:00Z', 'vscode', 'app.focus', 3600000),
  (timestamptz '2026-11-03 09:00Z', 'vscode', 'app.focus', 3600000),
  (timestamptz '2026-11-04 09:00Z', 'vscode', 'app.focus', 1800000),
  (timestamptz '2026-11-04 15:00Z', 'vscode', 'app.focus', 1800000),
  (timestamptz '2026-11-05 23:59Z', 'vscode', 'app.focus', 3600000),
  (timestamptz '2026-11-02 10:00Z', 'slack', 'app.focus', 1800000),
  (timestamptz '2026-11-03 11:00Z', 'notion', 'app.focus', 900000),
  (timestamptz '2026-11-04 11:00Z', 'notion', 'app.focus', 900000),
  (timestamptz '2026-11-03 12:00Z', 'figma', 'editor.keystroke', 5000),
  (timestamptz '2026-11-06 00:00Z', 'figma', 'app.focus', 3600000),
  (timestamptz '2026-11-01 23:59Z', 'figma', 'app.focus', 3600000)) e(at, app, kind, ms);
-- Bob, the same days: vscode once and an app of his own.
insert into public.telemetry_events (id, user_id, occurred_at, app_id, event_type, duration_ms) values
  (gen_random_uuid(), tests.user_id('bob'), '2026-11-02 09:00Z', 'vscode', 'app.focus', 600000),
  (gen_random_uuid(), tests.user_id('bob'), '2026-11-03 09:00Z', 'bobapp', 'app.focus', 600000);
-- Kiwi (UTC+13 in November): 1 Nov 12:00 UTC is 2 Nov 01:00 in Auckland; 2 Nov 12:00 UTC is already 3 Nov there.
insert into public.telemetry_events (id, user_id, occurred_at, app_id, event_type, duration_ms) values
  (gen_random_uuid(), tests.user_id('kiwi'), '2026-11-01 12:00Z', 'vscode', 'app.focus', 60000),
  (gen_random_uuid(), tests.user_id('kiwi'), '2026-11-02 12:00Z', 'slack', 'app.focus', 60000);
-- Ann's quick wins: one completed before the period (14 h a week: 4 days = 8 h), one during it (7 h a week from
-- 3 November: 3 days = 3 h); one open, one completed after the period, one completed but soft-deleted: none count.
insert into public.quick_wins (user_id, title, category, estimated_time_saved, completed_at, deleted_at) values
  (tests.user_id('ann'), 'Template the weekly report', 'reporting', interval '14 hours', '2026-10-01 10:00Z', null),
  (tests.user_id('ann'), 'Mute the busy channel', 'messaging', interval '7 hours', '2026-11-03 10:00Z', null),
  (tests.user_id('ann'), 'Close unused tabs', 'focus', interval '1 hour', null, null),
  (tests.user_id('ann'), 'Later win', 'focus', interval '1 hour', '2026-11-06 10:00Z', null),
  (tests.user_id('ann'), 'Dropped win', 'focus', interval '1 hour', '2026-11-03 10:00Z', '2026-11-04 10:00Z');

select is((select prosecdef from pg_proc where oid = 'public.refresh_my_usage_analytics(date, date)'::regprocedure), false,
  'refresh_my_usage_analytics is security invoker: it reads telemetry as the caller');

select tests.authenticate_as('ann');
create temporary table first_run on commit drop as
  select public.refresh_my_usage_analytics('2026-11-02', '2026-11-05') as report;
select results_eq($$select platform, usage_percentage, status, active_days, focus_ms from public.usage_analytics order by platform$$,
  $$values ('notion', 50, 'moderate', 2, 1800000::bigint), ('slack', 25, 'needs_attention', 1, 1800000::bigint),
           ('vscode', 100, 'optimal', 4, 14400000::bigint)$$,
  'usage per app: the share of the 4 active days each app had focus, its status from the thresholds, its focus time');
select results_eq($$select efficiency_score, time_saved_hours, active_tools_count, active_days, period_start, period_end from public.efficiency_metrics$$,
  $$values (88, 11.00::numeric(5,2), 3, 4, date '2026-11-02', date '2026-11-05')$$,
  'efficiency: score (100*4h + 25*0.5h + 50*0.5h) / 5h = 87.5 rounds to 88, 8 + 3 hours saved, 3 tools');
select is((select report ->> 'efficiency_score' from first_run), '88', 'the report gives the score');
select is((select jsonb_array_length(report -> 'usage') from first_run), 3, 'the report lists the three apps');
select is((select report ->> 'replaced' from first_run), 'false', 'the first run replaces nothing');

-- Repeatable.
create temporary table usage_before on commit drop as
  select platform, usage_percentage, status, active_days, focus_ms, period_start, period_end from public.usage_analytics;
create temporary table metrics_before on commit drop as
  select efficiency_score, time_saved_hours, active_tools_count, active_days, period_start, period_end from public.efficiency_metrics;
select is(public.refresh_my_usage_analytics('2026-11-02', '2026-11-05') - 'replaced', (select report - 'replaced' from first_run),
  'a second run reports the same figures');
select results_eq($$select platform, usage_percentage, status, active_days, focus_ms, period_start, period_end from public.usage_analytics order by platform$$,
  $$select * from usage_before order by platform$$, 'a second run leaves the same usage rows');
select results_eq($$select efficiency_score, time_saved_hours, active_tools_count, active_days, period_start, period_end from public.efficiency_metrics$$,
  $$select * from metrics_before$$, 'a second run leaves the same efficiency row');
select is((select count(*)::integer from public.usage_analytics) + (select count(*)::integer from public.efficiency_metrics), 4,
  'and no duplicates');

-- Only the caller's events: Bob's vscode and bobapp never reach Ann's figures, and Bob gets only his.
select is_empty($$select 1 from public.usage_analytics where platform = 'bobapp'$$, 'Ann''s usage holds no app only Bob used');
select tests.authenticate_as('bob');
select lives_ok($$select public.refresh_my_usage_analytics('2026-11-02', '2026-11-05')$$, 'Bob refreshes the same period');
select results_eq($$select platform, usage_percentage, active_days, focus_ms from public.usage_analytics order by platform$$,
  $$values ('bobapp', 50, 1, 600000::bigint), ('vscode', 50, 1, 600000::bigint)$$,
  'Bob''s usage comes from his two events only');
select results_eq($$select efficiency_score, time_saved_hours, active_tools_count, active_days from public.efficiency_metrics$$,
  $$values (50, 0.00::numeric(5,2), 2, 2)$$, 'Bob''s efficiency counts his tools and days, and none of Ann''s quick wins');
select tests.clear_authentication();
select is((select count(*)::integer from public.usage_analytics where user_id = tests.user_id('ann')), 3,
  'Bob''s refresh left Ann''s rows alone');

-- New events are picked up by refreshing again.
insert into public.telemetry_events (id, user_id, occurred_at, app_id, event_type, duration_ms)
values (gen_random_uuid(), tests.user_id('ann'), '2026-11-05 10:00Z', 'slack', 'app.focus', 1800000);
select tests.authenticate_as('ann');
select is((public.refresh_my_usage_analytics('2026-11-02', '2026-11-05') ->> 'replaced'), 'true',
  'refreshing a computed period replaces it');
select is((select usage_percentage from public.usage_analytics where platform = 'slack'), 50,
  'a late event moves slack from one to two of four days');
select throws_ok($$select private.store_usage_analytics('2026-11-02', '2026-11-05', 9, '[]')$$, '22023', null,
  'the writer refuses more active days than the period has');
select throws_ok($$select private.store_usage_analytics('2026-11-02', '2026-11-05', 4, '[{"platform": "vscode", "days_used": 5, "focus_ms": 1}]')$$,
  '22023', null, 'and an app used on more days than were active, changing nothing');
select is((select usage_percentage from public.usage_analytics where platform = 'slack'), 50, 'the refused calls left the period as it was');

-- The caller's time zone decides the days.
select tests.authenticate_as('kiwi');
select is((public.refresh_my_usage_analytics('2026-11-02', '2026-11-02') -> 'usage' -> 0 ->> 'platform'), 'vscode',
  'days are the caller''s own: 1 Nov 12:00 UTC is 2 Nov in Auckland, 2 Nov 12:00 UTC is not');
select is((select count(*)::integer from public.usage_analytics), 1, 'and only that event counts');
select is(public.refresh_my_usage_analytics('2026-12-02', '2026-12-02') -> 'usage', '[]'::jsonb,
  'a period without focus events writes no usage rows');
select is((select efficiency_score from public.efficiency_metrics where period_start = '2026-12-02'), 0,
  'and an efficiency row with score 0');

-- Refusals.
select tests.authenticate_as('ann');
select throws_ok($$select public.refresh_my_usage_analytics('2026-11-04', '2026-11-10')$$, '23P01', null,
  'a period overlapping one already computed is refused');
select throws_ok($$select public.refresh_my_usage_analytics('2026-11-10', '2026-11-04')$$, '22023', null,
  'a period that ends before it starts is refused');
select throws_ok($$select public.refresh_my_usage_analytics('2025-01-01', '2026-01-02')$$, '22023', null,
  'a period longer than 366 days is refused');
update public.privacy_prefs set mfa_required = true;
select throws_ok($$select public.refresh_my_usage_analytics('2026-11-02', '2026-11-05')$$, '42501', null,
  'with mfa_required an aal1 session may not refresh (it would see no telemetry and overwrite the figures)');
select tests.authenticate_as_anon();
select throws_ok($$select public.refresh_my_usage_analytics('2026-11-02', '2026-11-05')$$, '42501', null,
  'anon is refused');
select tests.authenticate_as_service_role();
select throws_ok($$select public.refresh_my_usage_analytics('2026-11-02', '2026-11-05')$$, '42501', null,
  'the service role is refused: nobody but the owner computes from telemetry');

select * from finish();
rollback;
