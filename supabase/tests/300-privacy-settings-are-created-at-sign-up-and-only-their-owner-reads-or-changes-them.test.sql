-- Privacy preferences exist for every user from sign-up with safe defaults; preferences, allowlist and toggles are
-- owner-only (no administrator policy), and service_role holds no privilege on the zero-trust tables.
begin;
select plan(24);

select tests.create_user('pat');
select tests.create_user('sam');

-- Sign-up defaults.
select results_eq(
  $$select consent_given, monitoring_enabled, data_retention_days, mfa_required from public.privacy_prefs
    where user_id = tests.user_id('pat')$$,
  $$values (false, false, 90, false)$$,
  'a new user gets privacy_prefs with no consent, monitoring off, 90 days retention and no MFA requirement');
select is((select count(*)::integer from public.privacy_transparency_log where user_id = tests.user_id('pat') and action = 'insert'
           and resource = 'privacy_prefs'), 1, 'creating the preferences is the first entry of the user''s transparency log');

-- Owner reads and changes their own preferences.
select tests.authenticate_as('pat');
select is((select count(*)::integer from public.privacy_prefs), 1, 'a user sees exactly one privacy_prefs row: their own');
select lives_ok($$update public.privacy_prefs set consent_given = true, monitoring_enabled = true$$,
  'a user may give consent and switch monitoring on');
select isnt((select consent_given_at from public.privacy_prefs), null, 'giving consent stamps consent_given_at');
select throws_ok($$update public.privacy_prefs set user_id = gen_random_uuid()$$, '42501', null,
  'a user cannot move their preferences to another user');
select throws_ok($$update public.privacy_prefs set data_retention_days = 0$$, '23514', null,
  'retention must be at least one day');
select throws_ok($$insert into public.privacy_prefs (user_id) values ((select auth.uid()))$$, '42501', null,
  'a user cannot create a second preferences row');
select lives_ok($$insert into public.app_allowlist (app_id, app_name) values ('vscode', 'VS Code')$$,
  'a user may allow an app');
select lives_ok($$insert into public.signal_toggles (signal_key, sampling_rate) values ('click', 0.25)$$,
  'a user may enable a signal with a sampling rate');
select throws_ok($$insert into public.signal_toggles (signal_key, sampling_rate) values ('scroll', 1.5)$$, '23514', null,
  'a sampling rate above 1 is rejected');
select throws_ok($$insert into public.app_allowlist (user_id, app_id) values (tests.user_id('sam'), 'slack')$$, '42501', null,
  'a user cannot add an app to someone else''s allowlist');

-- A stranger sees and changes nothing of it.
select tests.authenticate_as('sam');
select is_empty($$select 1 from public.privacy_prefs where user_id = tests.user_id('pat')$$,
  'a stranger does not see another user''s preferences');
select is_empty($$select 1 from public.app_allowlist where user_id = tests.user_id('pat')$$,
  'a stranger does not see another user''s allowlist');
select is_empty($$update public.privacy_prefs set monitoring_enabled = false where user_id = tests.user_id('pat') returning 1$$,
  'a stranger cannot change another user''s preferences');
select is_empty($$delete from public.signal_toggles where user_id = tests.user_id('pat') returning 1$$,
  'a stranger cannot delete another user''s signal toggles');

-- anon and service_role.
select tests.authenticate_as_anon();
select throws_ok($$select * from public.privacy_prefs$$, '42501', null, 'anon cannot read privacy preferences');
select tests.authenticate_as_service_role();
select throws_ok($$select * from public.privacy_prefs$$, '42501', null,
  'service_role holds no privilege on privacy_prefs (it bypasses RLS, not grants)');
select throws_ok($$select * from public.telemetry_events$$, '42501', null, 'service_role cannot read telemetry_events');
select throws_ok($$select * from public.file_events$$, '42501', null, 'service_role cannot read file_events');
select throws_ok($$select * from public.privacy_transparency_log$$, '42501', null,
  'service_role cannot read the transparency log');
select tests.clear_authentication();

-- Catalog: owner-only policies, no policy for any role but authenticated on these tables.
select is_empty($$
  select c.relname from pg_catalog.pg_class c
  where c.relnamespace = 'public'::regnamespace
    and c.relname in ('privacy_prefs', 'app_allowlist', 'signal_toggles', 'telemetry_events', 'file_events',
                      'file_patterns', 'file_relationships', 'privacy_transparency_log')
    and not c.relrowsecurity$$,
  'every privacy table has row-level security enabled');
select is_empty($$
  select p.tablename, p.policyname from pg_catalog.pg_policies p
  where p.schemaname = 'public'
    and p.tablename in ('privacy_prefs', 'app_allowlist', 'signal_toggles', 'telemetry_events', 'file_events',
                        'file_patterns', 'file_relationships', 'privacy_transparency_log')
    and (p.roles <> '{authenticated}' or (p.permissive = 'PERMISSIVE' and coalesce(p.qual, p.with_check) !~ 'user_id = \( SELECT auth\.uid\(\)'))$$,
  'every permissive policy on a privacy table is for authenticated users and pins user_id to auth.uid()');
select is_empty($$
  select t.name, p.privilege
  from unnest(array['privacy_prefs', 'telemetry_events', 'file_events', 'privacy_transparency_log']) t(name)
  cross join unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p(privilege)
  where has_table_privilege('service_role', 'public.' || t.name, p.privilege)
     or (p.privilege in ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES')
         and has_any_column_privilege('service_role', 'public.' || t.name, p.privilege))$$,
  'service_role holds no table or column privilege on the zero-trust tables, directly, through PUBLIC or a role');

select * from finish();
rollback;
