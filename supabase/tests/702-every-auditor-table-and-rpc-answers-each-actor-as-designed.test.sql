-- The auditor's actor matrix: the owner of the rows reads their usage, metrics and quick wins and manages their
-- quick wins (never the derived rows); the organization's admin, a member of the same organization and a stranger
-- see and change nothing of it; anon holds no privilege; the service role suggests quick wins and tunes thresholds
-- but cannot read the derived usage (zero trust). With mfa_required only an aal2 session reads the derived usage.
begin;
select plan(35);

select tests.create_user('ann');
select tests.create_user('adam');
select tests.create_user('ben');
select tests.create_user('sam');
select tests.create_organization('ann', 'auditor-co');
select tests.add_member(tests.org_id('auditor-co'), 'adam', 'admin');
select tests.add_member(tests.org_id('auditor-co'), 'ben', 'member');

insert into public.usage_analytics (user_id, platform, usage_percentage, status, active_days, focus_ms, period_start, period_end)
values (tests.user_id('ann'), 'vscode', 80, 'optimal', 8, 3600000, '2026-11-01', '2026-11-10');
insert into public.efficiency_metrics (user_id, efficiency_score, time_saved_hours, active_tools_count, active_days, period_start, period_end)
values (tests.user_id('ann'), 80, 2.5, 1, 10, '2026-11-01', '2026-11-10');
insert into public.quick_wins (id, user_id, title, category, impact, effort, estimated_time_saved)
values ('00000000-0000-4000-8000-00000000a001', tests.user_id('ann'), 'Use keyboard shortcuts', 'focus', 'medium', 'low', interval '30 minutes');

-- The owner.
select tests.authenticate_as('ann');
select is((select count(*)::integer from public.usage_analytics), 1, 'the owner reads their usage');
select is((select count(*)::integer from public.efficiency_metrics), 1, 'the owner reads their efficiency metrics');
select is((select count(*)::integer from public.quick_wins), 1, 'the owner reads their quick wins');
select is((select count(*)::integer from public.usage_status_thresholds), 4, 'a signed-in user reads the status thresholds');
select throws_ok($$insert into public.usage_analytics (user_id, platform, usage_percentage, status, active_days, focus_ms, period_start, period_end)
                   values (auth.uid(), 'slack', 100, 'optimal', 1, 1, '2026-12-01', '2026-12-01')$$,
  '42501', null, 'the owner cannot write usage rows directly: they are derived');
select throws_ok($$update public.efficiency_metrics set efficiency_score = 100$$, '42501', null,
  'the owner cannot polish their efficiency score');
select throws_ok($$delete from public.usage_analytics$$, '42501', null, 'the owner cannot delete usage rows one by one (erasure does)');
select lives_ok($$insert into public.quick_wins (title, category, impact, effort, estimated_time_saved)
                  values ('Schedule focus blocks', 'calendar', 'high', 'medium', interval '3 hours')$$,
  'the owner adds a quick win for themselves');
select throws_ok(format($$insert into public.quick_wins (user_id, title, category) values (%L, 'For Ben', 'focus')$$, tests.user_id('ben')),
  '42501', null, 'the owner cannot add a quick win for someone else');
select is(tests.rows_affected($$update public.quick_wins set completed_at = now() where id = '00000000-0000-4000-8000-00000000a001'$$), 1::bigint,
  'the owner completes a quick win');
select is((select is_completed from public.quick_wins where id = '00000000-0000-4000-8000-00000000a001'), true,
  'and it reads as completed');
select is(tests.rows_affected($$update public.quick_wins set deleted_at = now() where title = 'Schedule focus blocks'$$), 1::bigint,
  'the owner soft-deletes a quick win');
select throws_ok($$delete from public.quick_wins$$, '42501', null, 'quick wins are never hard-deleted by clients');
select throws_ok($$update public.quick_wins set user_id = gen_random_uuid()$$, '42501', null,
  'the owner cannot hand a quick win to someone else');
select throws_ok($$update public.usage_status_thresholds set max_percentage = 30 where status = 'underutilized'$$, '42501', null,
  'a user cannot change the thresholds');

-- The organization's admin, a member of the same organization, a stranger.
select tests.authenticate_as('adam');
select is_empty($$select 1 from public.usage_analytics union all select 1 from public.efficiency_metrics union all select 1 from public.quick_wins$$,
  'the owner''s organization admin sees none of their usage, metrics or quick wins');
select is(tests.rows_affected($$update public.quick_wins set title = 'mine now'$$), 0::bigint,
  'the admin changes none of their quick wins');
select tests.authenticate_as('ben');
select is_empty($$select 1 from public.usage_analytics union all select 1 from public.efficiency_metrics union all select 1 from public.quick_wins$$,
  'a member of the same organization sees none of them');
select is(tests.rows_affected($$update public.quick_wins set title = 'mine now'$$), 0::bigint,
  'a member of the same organization changes none of their quick wins');
select lives_ok($$select public.refresh_my_usage_analytics('2026-11-01', '2026-11-10')$$,
  'a member refreshes the same period for themselves (periods are per user)');
select is((select count(*)::integer from public.efficiency_metrics), 1, 'and sees only their own new row');
select tests.authenticate_as('sam');
select is_empty($$select 1 from public.usage_analytics union all select 1 from public.efficiency_metrics union all select 1 from public.quick_wins$$,
  'a stranger sees none of them');
select is(tests.rows_affected($$update public.quick_wins set deleted_at = now()$$), 0::bigint,
  'a stranger soft-deletes none of them');

-- anon.
select tests.authenticate_as_anon();
select throws_ok($$select 1 from public.usage_analytics$$, '42501', null, 'anon cannot read usage');
select throws_ok($$select 1 from public.efficiency_metrics$$, '42501', null, 'anon cannot read efficiency metrics');
select throws_ok($$select 1 from public.quick_wins$$, '42501', null, 'anon cannot read quick wins');
select throws_ok($$select 1 from public.usage_status_thresholds$$, '42501', null, 'anon cannot read the thresholds');

-- The service role.
select tests.authenticate_as_service_role();
select throws_ok($$select 1 from public.usage_analytics$$, '42501', null, 'the service role cannot read anyone''s usage (zero trust)');
select throws_ok($$select 1 from public.efficiency_metrics$$, '42501', null, 'the service role cannot read efficiency metrics');
select lives_ok(format($$insert into public.quick_wins (user_id, title, category, impact, effort, estimated_time_saved)
                         values (%L, 'Turn off e-mail notifications', 'email', 'high', 'low', interval '1 hour')$$, tests.user_id('ann')),
  'the service role suggests a quick win to a user');
select is((select count(*)::integer from public.quick_wins where user_id = tests.user_id('ann')), 3, 'the service role reads quick wins (its suggestions)');
select throws_ok($$delete from public.quick_wins$$, '42501', null, 'the service role does not hard-delete quick wins either');
select lives_ok($$update public.usage_status_thresholds
                  set max_percentage = case status when 'moderate' then 79 else max_percentage end,
                      min_percentage = case status when 'optimal' then 80 else min_percentage end
                  where status in ('moderate', 'optimal')$$,
  'the service role (operators) moves the thresholds');

-- MFA.
select tests.authenticate_as('ann');
update public.privacy_prefs set mfa_required = true;
select is_empty($$select 1 from public.usage_analytics union all select 1 from public.efficiency_metrics$$,
  'with mfa_required an aal1 session reads no derived usage');
select tests.authenticate_as('ann', 'aal2');
select is((select count(*)::integer from public.usage_analytics) + (select count(*)::integer from public.efficiency_metrics), 2,
  'an aal2 session reads it');

select * from finish();
rollback;
