-- export_my_data() returns everything the caller owns in the privacy domain and erase_my_telemetry() removes their
-- events; both are logged. With mfa_required, reading telemetry, file events and the transparency log, exporting and
-- erasing need an aal2 session (restrictive policies and explicit checks).
begin;
select plan(22);

select tests.create_user('eve');
select tests.create_user('zed');

select tests.authenticate_as('eve');
update public.privacy_prefs set consent_given = true, monitoring_enabled = true;
insert into public.app_allowlist (app_id) values ('notion');
insert into public.signal_toggles (signal_key) values ('page.view'), ('file.copied');
select public.ingest_events(jsonb_build_array(
  jsonb_build_object('kind', 'telemetry', 'id', gen_random_uuid(), 'occurred_at', now(), 'app_id', 'notion', 'event_type', 'page.view'),
  jsonb_build_object('kind', 'telemetry', 'id', gen_random_uuid(), 'occurred_at', now(), 'app_id', 'notion', 'event_type', 'page.view'),
  jsonb_build_object('kind', 'file', 'id', gen_random_uuid(), 'occurred_at', now(), 'tool', 'notion', 'event_type', 'copied',
                     'file_path', '/tmp/a.md', 'related_path', '/tmp/b.md')));
select tests.authenticate_as('zed');
update public.privacy_prefs set consent_given = true, monitoring_enabled = true;
insert into public.app_allowlist (app_id) values ('notion');
insert into public.signal_toggles (signal_key) values ('page.view'), ('file.copied');
select public.ingest_events(jsonb_build_array(
  jsonb_build_object('kind', 'telemetry', 'id', gen_random_uuid(), 'occurred_at', now(), 'app_id', 'notion', 'event_type', 'page.view'),
  jsonb_build_object('kind', 'file', 'id', gen_random_uuid(), 'occurred_at', now(), 'tool', 'notion', 'event_type', 'copied',
                     'file_path', '/tmp/z.md', 'related_path', '/tmp/y.md')));

-- Export.
select tests.authenticate_as('eve');
create temporary table exported on commit drop as select public.export_my_data() as data;
select is((select jsonb_array_length(data -> 'telemetry_events') from exported), 2, 'the export holds the caller''s telemetry');
select is((select jsonb_array_length(data -> 'file_events') + jsonb_array_length(data -> 'file_patterns')
                  + jsonb_array_length(data -> 'file_relationships') from exported), 3,
  'the export holds the caller''s file events, patterns and relationships');
select ok((select data -> 'privacy_prefs' ->> 'user_id' = tests.user_id('eve')::text
              and jsonb_array_length(data -> 'app_allowlist') = 1 and jsonb_array_length(data -> 'signal_toggles') = 2
           from exported), 'the export holds the caller''s preferences, allowlist and toggles');
select ok((select not (data::text like '%' || tests.user_id('zed')::text || '%') from exported),
  'the export holds nothing of another user');
select is((select action from public.privacy_transparency_log order by seq desc limit 1), 'export',
  'the export is recorded in the transparency log');

-- Erasure.
select is(public.erase_my_telemetry(),
  '{"telemetry_events": 2, "file_events": 1, "file_patterns": 1, "file_relationships": 1, "usage_analytics": 0, "efficiency_metrics": 0}'::jsonb,
  'erasure removes the caller''s events and what was derived from them, and reports the counts');
select is_empty($$select 1 from public.telemetry_events union all select 1 from public.file_events$$,
  'after erasure the caller has no events');
select is((select metadata ->> 'telemetry_events' from public.privacy_transparency_log where action = 'erasure'), '2',
  'the erasure is recorded in the transparency log with its counts');
select tests.authenticate_as('zed');
select is((select count(*)::integer from public.telemetry_events), 1, 'another user''s events survive the erasure');

-- MFA requirement.
update public.privacy_prefs set mfa_required = true;
select is_empty($$select 1 from public.telemetry_events$$, 'with mfa_required an aal1 session reads no telemetry');
select is_empty($$select 1 from public.privacy_transparency_log$$, 'with mfa_required an aal1 session reads no transparency log');
select is_empty($$select 1 from public.file_patterns$$, 'with mfa_required an aal1 session reads no file patterns');
select is_empty($$select 1 from public.file_relationships$$, 'with mfa_required an aal1 session reads no file relationships');
select throws_ok($$update public.privacy_prefs set mfa_required = false$$, '42501', null,
  'an aal1 session cannot switch mfa_required off again');
select throws_ok($$select public.export_my_data()$$, '42501', null, 'with mfa_required an aal1 session cannot export');
select throws_ok($$select public.erase_my_telemetry()$$, '42501', null, 'with mfa_required an aal1 session cannot erase');
select is((public.ingest_events(jsonb_build_array(jsonb_build_object('kind', 'telemetry', 'id', gen_random_uuid(),
             'occurred_at', now(), 'app_id', 'notion', 'event_type', 'page.view'))) ->> 'accepted')::integer, 1,
  'with mfa_required an aal1 session can still report events');
select tests.authenticate_as('zed', 'aal2');
select is((select count(*)::integer from public.telemetry_events), 2, 'an aal2 session reads the telemetry');
select cmp_ok((select count(*)::integer from public.privacy_transparency_log), '>', 0, 'an aal2 session reads the transparency log');
select is((select count(*)::integer from public.file_patterns) + (select count(*)::integer from public.file_relationships), 2,
  'an aal2 session reads the file patterns and relationships');
select lives_ok($$update public.privacy_prefs set mfa_required = false$$, 'an aal2 session switches mfa_required off');
select is((select mfa_required from public.privacy_prefs), false, 'and the switch took effect');

select * from finish();
rollback;
