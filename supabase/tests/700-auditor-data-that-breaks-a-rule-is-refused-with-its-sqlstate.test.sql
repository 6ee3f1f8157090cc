-- The auditor's tables (70-analytics-auditor.sql) refuse what breaks a rule, each with its SQLSTATE: status
-- thresholds that overlap or leave a gap, usage and efficiency figures out of range, overlapping periods (23P01),
-- quick wins with unknown levels or an estimate that is no time span; is_completed follows completed_at.
begin;
select plan(40);

select tests.create_user('ann');
select tests.create_user('bob');

-- Status thresholds (reference data).
select throws_ok($$insert into public.usage_status_thresholds (status, min_percentage, max_percentage, description) values ('great', 0, 0, 'x')$$,
  '23514', null, 'a threshold with an unknown status is refused');
select throws_ok($$update public.usage_status_thresholds set max_percentage = 101 where status = 'optimal'$$,
  '23514', null, 'a threshold bound above 100 is refused');
select throws_ok($$update public.usage_status_thresholds set min_percentage = 30 where status = 'underutilized'$$,
  '23514', null, 'a threshold whose minimum lies above its maximum is refused');
select throws_ok($$update public.usage_status_thresholds set max_percentage = 30 where status = 'underutilized'$$,
  '23P01', null, 'thresholds that overlap are refused by the exclusion constraint');
select throws_ok($$update public.usage_status_thresholds set max_percentage = 20 where status = 'underutilized'$$,
  '23514', null, 'thresholds that leave a percentage without a status are refused');
select throws_ok($$delete from public.usage_status_thresholds where status = 'moderate'$$,
  '23514', null, 'removing a status would leave a gap and is refused');
select lives_ok($$update public.usage_status_thresholds
                  set max_percentage = case status when 'underutilized' then 19 else max_percentage end,
                      min_percentage = case status when 'needs_attention' then 20 else min_percentage end
                  where status in ('underutilized', 'needs_attention')$$,
  'moving two neighbouring bounds in one statement keeps 0-100 covered and is accepted');
select is((select count(*)::integer from public.usage_status_thresholds), 4, 'four statuses are defined');

-- usage_analytics.
create temporary table ua_ok on commit drop as
  select tests.user_id('ann') as user_id, 'vscode'::text as platform, 50 as usage_percentage, 'moderate'::text as status,
         3 as active_days, 1000::bigint as focus_ms, date '2026-11-01' as period_start, date '2026-11-30' as period_end;
select lives_ok($$insert into public.usage_analytics (user_id, platform, usage_percentage, status, active_days, focus_ms, period_start, period_end)
                  select * from ua_ok$$, 'a valid usage row is stored');
select throws_ok($$insert into public.usage_analytics (user_id, platform, usage_percentage, status, active_days, focus_ms, period_start, period_end)
                   select user_id, 'has space', usage_percentage, status, active_days, focus_ms, date '2026-12-01', date '2026-12-31' from ua_ok$$,
  '23514', null, 'a platform that is no app id is refused');
select throws_ok($$insert into public.usage_analytics (user_id, platform, usage_percentage, status, active_days, focus_ms, period_start, period_end)
                   select user_id, platform, 101, status, active_days, focus_ms, date '2026-12-01', date '2026-12-31' from ua_ok$$,
  '23514', null, 'a usage percentage above 100 is refused');
select throws_ok($$insert into public.usage_analytics (user_id, platform, usage_percentage, status, active_days, focus_ms, period_start, period_end)
                   select user_id, platform, -1, status, active_days, focus_ms, date '2026-12-01', date '2026-12-31' from ua_ok$$,
  '23514', null, 'a negative usage percentage is refused');
select throws_ok($$insert into public.usage_analytics (user_id, platform, usage_percentage, status, active_days, focus_ms, period_start, period_end)
                   select user_id, platform, usage_percentage, 'great', active_days, focus_ms, date '2026-12-01', date '2026-12-31' from ua_ok$$,
  '23514', null, 'an unknown status is refused');
select throws_ok($$insert into public.usage_analytics (user_id, platform, usage_percentage, status, active_days, focus_ms, period_start, period_end)
                   select user_id, platform, usage_percentage, status, 0, focus_ms, date '2026-12-01', date '2026-12-31' from ua_ok$$,
  '23514', null, 'a usage row without an active day is refused');
select throws_ok($$insert into public.usage_analytics (user_id, platform, usage_percentage, status, active_days, focus_ms, period_start, period_end)
                   select user_id, platform, usage_percentage, status, active_days, -1, date '2026-12-01', date '2026-12-31' from ua_ok$$,
  '23514', null, 'a negative focus time is refused');
select throws_ok($$insert into public.usage_analytics (user_id, platform, usage_percentage, status, active_days, focus_ms, period_start, period_end)
                   select user_id, platform, usage_percentage, status, active_days, focus_ms, date '2026-12-31', date '2026-12-01' from ua_ok$$,
  '23514', null, 'a usage period that ends before it starts is refused');
select throws_ok($$insert into public.usage_analytics (user_id, platform, usage_percentage, status, active_days, focus_ms, period_start, period_end)
                   select user_id, platform, usage_percentage, status, active_days, focus_ms, date '2026-11-30', date '2026-12-05' from ua_ok$$,
  '23P01', null, 'a usage period overlapping another of the same user and platform is refused');
select lives_ok($$insert into public.usage_analytics (user_id, platform, usage_percentage, status, active_days, focus_ms, period_start, period_end)
                  select user_id, 'slack', usage_percentage, status, active_days, focus_ms, period_start, period_end from ua_ok$$,
  'the same period for another platform is accepted');
select lives_ok($$insert into public.usage_analytics (user_id, platform, usage_percentage, status, active_days, focus_ms, period_start, period_end)
                  select tests.user_id('bob'), platform, usage_percentage, status, active_days, focus_ms, period_start, period_end from ua_ok$$,
  'the same period and platform for another user is accepted');
select lives_ok($$insert into public.usage_analytics (user_id, platform, usage_percentage, status, active_days, focus_ms, period_start, period_end)
                  select user_id, platform, usage_percentage, status, active_days, focus_ms, date '2026-12-01', date '2026-12-31' from ua_ok$$,
  'the adjacent period (starting the day after) is accepted');
select throws_ok($$insert into public.usage_analytics (user_id, platform, usage_percentage, status, active_days, focus_ms, period_start, period_end)
                   select gen_random_uuid(), platform, usage_percentage, status, active_days, focus_ms, period_start, period_end from ua_ok$$,
  '23503', null, 'usage of a user who does not exist is refused');

-- efficiency_metrics.
select lives_ok($$insert into public.efficiency_metrics (user_id, efficiency_score, time_saved_hours, active_tools_count, active_days, period_start, period_end)
                  values (tests.user_id('ann'), 80, 999.99, 3, 20, '2026-11-01', '2026-11-30')$$,
  'a valid efficiency row is stored (999.99 hours is the most numeric(5,2) holds)');
select throws_ok($$insert into public.efficiency_metrics (user_id, efficiency_score, period_start, period_end)
                   values (tests.user_id('ann'), 101, '2026-12-01', '2026-12-31')$$,
  '23514', null, 'an efficiency score above 100 is refused');
select throws_ok($$insert into public.efficiency_metrics (user_id, efficiency_score, period_start, period_end)
                   values (tests.user_id('ann'), -1, '2026-12-01', '2026-12-31')$$,
  '23514', null, 'a negative efficiency score is refused');
select throws_ok($$insert into public.efficiency_metrics (user_id, efficiency_score, time_saved_hours, period_start, period_end)
                   values (tests.user_id('ann'), 50, -0.01, '2026-12-01', '2026-12-31')$$,
  '23514', null, 'negative time saved is refused');
select throws_ok($$insert into public.efficiency_metrics (user_id, efficiency_score, time_saved_hours, period_start, period_end)
                   values (tests.user_id('ann'), 50, 1000, '2026-12-01', '2026-12-31')$$,
  '22003', null, 'time saved beyond numeric(5,2) is refused');
select throws_ok($$insert into public.efficiency_metrics (user_id, efficiency_score, active_tools_count, period_start, period_end)
                   values (tests.user_id('ann'), 50, -1, '2026-12-01', '2026-12-31')$$,
  '23514', null, 'a negative active tools count is refused');
select throws_ok($$insert into public.efficiency_metrics (user_id, efficiency_score, period_start, period_end)
                   values (tests.user_id('ann'), 50, '2026-12-31', '2026-12-01')$$,
  '23514', null, 'an efficiency period that ends before it starts is refused');
select throws_ok($$insert into public.efficiency_metrics (user_id, efficiency_score, period_start, period_end)
                   values (tests.user_id('ann'), 50, '2026-11-15', '2026-11-15')$$,
  '23P01', null, 'an efficiency period inside another of the same user is refused (one row per user and period)');
select lives_ok($$insert into public.efficiency_metrics (user_id, efficiency_score, period_start, period_end)
                  values (tests.user_id('bob'), 50, '2026-11-15', '2026-11-15')$$,
  'the same period for another user is accepted');

-- quick_wins.
select lives_ok($$insert into public.quick_wins (user_id, title, category, impact, effort, estimated_time_saved)
                  values (tests.user_id('ann'), 'Batch e-mail twice a day', 'email', 'high', 'low', interval '2 hours')$$,
  'a valid quick win is stored');
select throws_ok($$insert into public.quick_wins (user_id, title, category) values (tests.user_id('ann'), '  ', 'email')$$,
  '23514', null, 'a blank title is refused');
select throws_ok($$insert into public.quick_wins (user_id, title, category) values (tests.user_id('ann'), repeat('x', 256), 'email')$$,
  '23514', null, 'a title over 255 characters is refused');
select throws_ok($$insert into public.quick_wins (user_id, title, category) values (tests.user_id('ann'), 'Title', 'Not A Key')$$,
  '23514', null, 'a category that is no lower-case key is refused');
select throws_ok($$insert into public.quick_wins (user_id, title, category, impact) values (tests.user_id('ann'), 'Title', 'email', 'huge')$$,
  '23514', null, 'an impact other than low, medium or high is refused');
select throws_ok($$insert into public.quick_wins (user_id, title, category, effort) values (tests.user_id('ann'), 'Title', 'email', 'none')$$,
  '23514', null, 'an effort other than low, medium or high is refused');
select throws_ok($$insert into public.quick_wins (user_id, title, category, estimated_time_saved) values (tests.user_id('ann'), 'Title', 'email', interval '-1 hour')$$,
  '23514', null, 'a negative time-saved estimate is refused');
select throws_ok($$insert into public.quick_wins (user_id, title, category, estimated_time_saved) values (tests.user_id('ann'), 'Title', 'email', interval '169 hours')$$,
  '23514', null, 'a weekly estimate above the hours of a week is refused');
select throws_ok($$insert into public.quick_wins (user_id, title, category, is_completed) values (tests.user_id('ann'), 'Title', 'email', true)$$,
  '428C9', null, 'is_completed cannot be written: it is derived');
update public.quick_wins set completed_at = now() where title = 'Batch e-mail twice a day';
select is((select is_completed from public.quick_wins where title = 'Batch e-mail twice a day'), true,
  'setting completed_at makes the quick win completed');

select * from finish();
rollback;
