-- Derived usage is the user's telemetry in another shape: cleanup_retention_data() removes rows whose first day is
-- past the telemetry policy, cleanup_telemetry_by_retention() those past their owner's own data_retention_days, each
-- owner is told in the transparency log; erase_my_telemetry() erases it (quick wins stay: they are no telemetry);
-- export_my_data() includes usage, metrics and quick wins; deleting the account removes everything.
begin;
select plan(21);

select tests.create_user('ann');
select tests.create_user('short');
select tests.create_user('other');
update public.privacy_prefs set data_retention_days = 3650 where user_id = tests.user_id('ann');
update public.privacy_prefs set data_retention_days = 7 where user_id = tests.user_id('short');

-- Ann keeps ten years herself, so only the operators' policy (telemetry_events: 365 days) expires her old rows.
insert into public.usage_analytics (user_id, platform, usage_percentage, status, active_days, focus_ms, period_start, period_end)
values
  (tests.user_id('ann'), 'vscode', 90, 'optimal', 9, 1000, current_date - 400, current_date - 390),
  (tests.user_id('ann'), 'vscode', 90, 'optimal', 9, 1000, current_date - 370, current_date - 360),
  (tests.user_id('ann'), 'vscode', 90, 'optimal', 9, 1000, current_date - 10, current_date - 1),
  (tests.user_id('short'), 'vscode', 50, 'moderate', 1, 1000, current_date - 10, current_date - 9),
  (tests.user_id('short'), 'vscode', 50, 'moderate', 1, 1000, current_date - 2, current_date - 1),
  (tests.user_id('other'), 'vscode', 50, 'moderate', 1, 1000, current_date - 10, current_date - 9);
insert into public.efficiency_metrics (user_id, efficiency_score, active_tools_count, active_days, period_start, period_end)
values
  (tests.user_id('ann'), 90, 1, 9, current_date - 400, current_date - 390),
  (tests.user_id('ann'), 90, 1, 9, current_date - 10, current_date - 1),
  (tests.user_id('short'), 50, 1, 1, current_date - 10, current_date - 9),
  (tests.user_id('other'), 50, 1, 1, current_date - 10, current_date - 9);
insert into public.quick_wins (user_id, title, category, estimated_time_saved, completed_at)
values (tests.user_id('ann'), 'Use snippets', 'automation', interval '1 hour', now() - interval '3 days');

-- Operators' policy.
select tests.authenticate_as_service_role();
select is((public.cleanup_retention_data() -> 'removed' ->> 'usage_analytics')::integer, 3,
  'cleanup_retention_data removes the usage and metrics rows whose first day is past the 365-day telemetry policy');
select tests.clear_authentication();
select results_eq($$select period_start from public.usage_analytics where user_id = tests.user_id('ann') order by period_start$$,
  $$values (current_date - 10)$$, 'Ann''s recent usage stays, both old periods went');
select is((select count(*)::integer from public.efficiency_metrics where user_id = tests.user_id('ann')), 1,
  'Ann''s recent efficiency row stays');
select is((select metadata - 'reason' from public.privacy_transparency_log
           where user_id = tests.user_id('ann') and resource = 'usage_analytics' and action = 'retention_purge'),
  '{"usage_analytics": 2, "efficiency_metrics": 1}'::jsonb, 'Ann''s transparency log tells her what expired');

-- Each user's own setting.
select tests.authenticate_as_service_role();
select lives_ok($$select public.cleanup_telemetry_by_retention()$$, 'per-user retention runs');
select tests.clear_authentication();
select results_eq($$select period_start from public.usage_analytics where user_id = tests.user_id('short') order by period_start$$,
  $$values (current_date - 2)$$, 'usage past the short keeper''s 7 days goes, the recent period stays');
select is_empty($$select 1 from public.efficiency_metrics where user_id = tests.user_id('short')$$,
  'the short keeper''s efficiency row past 7 days goes too');
select is((select count(*)::integer from public.usage_analytics where user_id = tests.user_id('other'))
        + (select count(*)::integer from public.efficiency_metrics where user_id = tests.user_id('other')), 2,
  'a user with the default 90 days keeps rows from 10 days ago');
select is((select (metadata ->> 'usage_analytics')::integer from public.privacy_transparency_log
           where user_id = tests.user_id('short') and resource = 'usage_analytics' and metadata ->> 'reason' = 'user_retention'), 1,
  'the short keeper is told about the per-user purge');

-- Export.
select tests.authenticate_as('ann');
create temporary table exported on commit drop as select public.export_my_data() as data;
select is((select jsonb_array_length(data -> 'usage_analytics') from exported), 1, 'the export holds the caller''s usage');
select is((select jsonb_array_length(data -> 'efficiency_metrics') from exported), 1, 'the export holds the caller''s efficiency metrics');
select is((select data -> 'quick_wins' -> 0 ->> 'title' from exported), 'Use snippets', 'the export holds the caller''s quick wins');
select ok((select not (data::text like '%' || tests.user_id('other')::text || '%') from exported),
  'the export holds nothing of another user');

-- Erasure, end to end: usage refreshed from telemetry goes with it.
select tests.clear_authentication();
insert into public.telemetry_events (id, user_id, occurred_at, app_id, event_type, duration_ms)
values (gen_random_uuid(), tests.user_id('ann'), now() - interval '40 days', 'slack', 'app.focus', 60000);
select tests.authenticate_as('ann');
select is((public.refresh_my_usage_analytics(current_date - 45, current_date - 35) ->> 'active_tools_count')::integer, 1,
  'a period refreshed from the telemetry');
select is(public.erase_my_telemetry() - array['telemetry_events', 'file_events', 'file_patterns', 'file_relationships'],
  '{"usage_analytics": 2, "efficiency_metrics": 2}'::jsonb,
  'erase_my_telemetry erases the derived usage and metrics with the telemetry and reports the counts');
select is_empty($$select 1 from public.usage_analytics union all select 1 from public.efficiency_metrics$$,
  'after erasure the caller has no derived usage');
select is((select count(*)::integer from public.quick_wins), 1, 'quick wins are no telemetry and stay');
select is((select (metadata ->> 'usage_analytics')::integer from public.privacy_transparency_log where action = 'erasure'), 2,
  'the erasure is logged with the derived counts');
select tests.clear_authentication();
select is((select count(*)::integer from public.usage_analytics where user_id = tests.user_id('other')), 1,
  'another user''s usage survives the erasure');

-- Account deletion.
delete from auth.users where id = tests.user_id('other');
select is_empty(format($$select 1 from public.usage_analytics where user_id = %L union all
                         select 1 from public.efficiency_metrics where user_id = %L$$, tests.user_id('other'), tests.user_id('other')),
  'deleting the account removes its derived usage');

-- Health.
select tests.authenticate_as_service_role();
select is((select public.privacy_guardian_health_check() -> 'rls_enabled' -> 'usage_analytics')
          || (select public.privacy_guardian_health_check() -> 'rls_enabled' -> 'efficiency_metrics'), '[true, true]'::jsonb,
  'the privacy health check watches row-level security on the derived usage too');

select * from finish();
rollback;
