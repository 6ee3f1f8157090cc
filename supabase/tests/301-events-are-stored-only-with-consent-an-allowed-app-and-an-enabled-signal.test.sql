-- Default deny at insert: an event is stored only when its owner consented and switched monitoring on, its app is
-- on the owner's allowlist and its signal is toggled on; sampling is deterministic on the id; ingest_events()
-- reports every event's outcome and stores nothing twice.
begin;
select plan(35);

select tests.create_user('ivy');
select tests.create_user('mal');

create temporary table batch_results (label text primary key, report jsonb) on commit drop;
grant all on batch_results to authenticated;

-- Without consent nothing goes in, directly or through the RPC.
select tests.authenticate_as('ivy');
insert into public.app_allowlist (app_id) values ('vscode');
insert into public.signal_toggles (signal_key) values ('click'), ('file.modified'), ('file.renamed');
select throws_ok(
  $$insert into public.telemetry_events (id, occurred_at, app_id, event_type) values (gen_random_uuid(), now(), 'vscode', 'click')$$,
  '42501', null, 'a direct insert without consent violates the insert policy');
select is(public.ingest_events(jsonb_build_array(jsonb_build_object('kind', 'telemetry', 'id', gen_random_uuid(),
            'occurred_at', now(), 'app_id', 'vscode', 'event_type', 'click'))) -> 'results' -> 0 ->> 'reason',
          'no_consent', 'ingest_events reports no_consent while consent is not given');

update public.privacy_prefs set consent_given = true;
select is(public.ingest_events(jsonb_build_array(jsonb_build_object('kind', 'telemetry', 'id', gen_random_uuid(),
            'occurred_at', now(), 'app_id', 'vscode', 'event_type', 'click'))) -> 'results' -> 0 ->> 'reason',
          'no_consent', 'consent without monitoring switched on still stores nothing');
update public.privacy_prefs set monitoring_enabled = true;

select lives_ok(
  $$insert into public.telemetry_events (id, occurred_at, app_id, event_type) values ('00000000-0000-4000-8000-000000000001', now(), 'vscode', 'click')$$,
  'with consent, monitoring, an allowed app and an enabled signal a direct insert succeeds');
select throws_ok(
  $$insert into public.telemetry_events (id, occurred_at, app_id, event_type) values (gen_random_uuid(), now(), 'slack', 'click')$$,
  '42501', null, 'an app that is not on the allowlist is refused');
select throws_ok(
  $$insert into public.telemetry_events (id, occurred_at, app_id, event_type) values (gen_random_uuid(), now(), 'vscode', 'keypress')$$,
  '42501', null, 'a signal that is not toggled on is refused');
select throws_ok(
  $$insert into public.telemetry_events (id, user_id, occurred_at, app_id, event_type) values (gen_random_uuid(), tests.user_id('mal'), now(), 'vscode', 'click')$$,
  '42501', null, 'a user cannot insert events for another user');
select throws_ok(
  $$insert into public.telemetry_events (id, occurred_at, app_id, event_type, duration_ms) values (gen_random_uuid(), now(), 'vscode', 'click', -1)$$,
  '23514', null, 'a negative duration is rejected by a constraint');

-- One batch with every outcome.
insert into batch_results values ('mixed', public.ingest_events(jsonb_build_array(
  jsonb_build_object('kind', 'telemetry', 'id', '00000000-0000-4000-8000-00000000000a', 'occurred_at', now(), 'app_id', 'vscode',
                     'event_type', 'click', 'duration_ms', 12, 'user_id', tests.user_id('mal'),
                     'metadata', jsonb_build_object('email', 'ivy@example.com')),
  jsonb_build_object('kind', 'telemetry', 'id', '00000000-0000-4000-8000-00000000000a', 'occurred_at', now(), 'app_id', 'vscode', 'event_type', 'click'),
  jsonb_build_object('kind', 'telemetry', 'id', gen_random_uuid(), 'occurred_at', now(), 'app_id', 'slack', 'event_type', 'click'),
  jsonb_build_object('kind', 'telemetry', 'id', gen_random_uuid(), 'occurred_at', now(), 'app_id', 'vscode', 'event_type', 'keypress'),
  jsonb_build_object('kind', 'telemetry', 'id', gen_random_uuid(), 'occurred_at', now() - interval '90 days', 'app_id', 'vscode', 'event_type', 'click'),
  jsonb_build_object('kind', 'telemetry', 'id', 'not-a-uuid', 'occurred_at', now(), 'app_id', 'vscode', 'event_type', 'click'),
  jsonb_build_object('kind', 'file', 'id', '00000000-0000-4000-8000-00000000000b', 'occurred_at', now(), 'tool', 'vscode',
                     'event_type', 'modified', 'file_path', '/home/ivy/notes/todo.md'),
  jsonb_build_object('kind', 'file', 'id', '00000000-0000-4000-8000-00000000000c', 'occurred_at', now(), 'tool', 'vscode',
                     'event_type', 'renamed', 'file_path', '/srv/app/a.ts', 'related_path', '/srv/app/b.ts'),
  '"just a string"'::jsonb
)));
select is((select report -> 'results' -> 0 ->> 'status' from batch_results), 'accepted', 'a good telemetry event is accepted');
select is((select report -> 'results' -> 1 ->> 'status' from batch_results), 'duplicate', 'the same id twice in a batch is a duplicate');
select is((select report -> 'results' -> 2 ->> 'reason' from batch_results), 'app_not_allowed', 'an app off the allowlist is reported as app_not_allowed');
select is((select report -> 'results' -> 3 ->> 'reason' from batch_results), 'signal_disabled', 'a signal that is off is reported as signal_disabled');
select is((select report -> 'results' -> 4 ->> 'reason' from batch_results), 'outside_time_range', 'an event from 90 days ago is outside the accepted time range');
select is((select report -> 'results' -> 5 ->> 'reason' from batch_results), 'invalid', 'a malformed id makes the event invalid');
select is((select report -> 'results' -> 8 ->> 'reason' from batch_results), 'invalid', 'an event that is not an object is invalid');
select is((select (report ->> 'accepted')::integer from batch_results), 3, 'one telemetry and two file events are accepted');
select results_eq($$select user_id, metadata_redacted from public.telemetry_events where id = '00000000-0000-4000-8000-00000000000a'$$,
  $$values (tests.user_id('ivy'), '{"email": "[EMAIL]"}'::jsonb)$$,
  'the stored event belongs to the caller whatever the payload says, with its metadata redacted');
select is((select file_path from public.file_events where id = '00000000-0000-4000-8000-00000000000b'), '/home/[USER]/notes/todo.md',
  'file paths lose their home-directory user name');
select results_eq($$select file_extension, event_count from public.file_patterns order by file_extension$$,
  $$values ('md', 1::bigint), ('ts', 1::bigint)$$, 'file patterns are derived from the stored file events');
select results_eq($$select source_path, target_path, relation_type, weight from public.file_relationships$$,
  $$values ('/srv/app/a.ts', '/srv/app/b.ts', 'renamed', 1::bigint)$$, 'a rename becomes a weighted file relationship');

-- A retried batch stores nothing twice.
insert into batch_results values ('retry', public.ingest_events(jsonb_build_array(
  jsonb_build_object('kind', 'telemetry', 'id', '00000000-0000-4000-8000-00000000000a', 'occurred_at', now(), 'app_id', 'vscode', 'event_type', 'click'),
  jsonb_build_object('kind', 'file', 'id', '00000000-0000-4000-8000-00000000000b', 'occurred_at', now(), 'tool', 'vscode',
                     'event_type', 'modified', 'file_path', '/home/ivy/notes/todo.md'))));
select is((select report ->> 'duplicate' from batch_results where label = 'retry'), '2', 'a retried batch reports its events as duplicates');
select is((select count(*)::integer from public.telemetry_events where id = '00000000-0000-4000-8000-00000000000a'), 1,
  'a retried event is stored once');
select is((select event_count from public.file_patterns where file_extension = 'md'), 1::bigint,
  'a retried file event does not count twice in file_patterns');

-- The insert policy on file_events is the same gate, for direct inserts as much as for the RPC.
insert into public.app_allowlist (app_id, scope) values ('figma', 'telemetry');
select lives_ok(
  $$insert into public.file_events (id, occurred_at, file_path, event_type, tool) values (gen_random_uuid(), now(), '/srv/app/c.ts', 'modified', 'vscode')$$,
  'a direct file event with an allowed tool and an enabled signal is stored');
select throws_ok(
  $$insert into public.file_events (id, occurred_at, file_path, event_type, tool) values (gen_random_uuid(), now(), '/srv/app/c.ts', 'modified', 'slack')$$,
  '42501', null, 'a direct file event from a tool off the allowlist is refused');
select throws_ok(
  $$insert into public.file_events (id, occurred_at, file_path, event_type, tool) values (gen_random_uuid(), now(), '/srv/app/c.ts', 'modified', 'figma')$$,
  '42501', null, 'a direct file event from an app allowed for telemetry only is refused');
select throws_ok(
  $$insert into public.file_events (id, occurred_at, file_path, event_type, tool) values (gen_random_uuid(), now(), '/srv/app/c.ts', 'deleted', 'vscode')$$,
  '42501', null, 'a direct file event whose signal is off is refused');

-- Sampling is deterministic on the id.
update public.signal_toggles set sampling_rate = 0.5 where signal_key = 'click';
-- An id whose sample point is near 1 is sampled out on every try; one near 0 is kept.
select is(
  (select array_agg(public.ingest_events(jsonb_build_array(jsonb_build_object('kind', 'telemetry',
      'id', '00000000-0000-4000-8000-0000ffffffff', 'occurred_at', now(), 'app_id', 'vscode', 'event_type', 'click')))
      -> 'results' -> 0 ->> 'status') from generate_series(1, 3)),
  array['sampled_out', 'sampled_out', 'sampled_out'], 'a sampled-out event is sampled out again on every retry');
select is((select count(*)::integer from public.telemetry_events where id = '00000000-0000-4000-8000-0000ffffffff'), 0,
  'a sampled-out event is not stored');
select throws_ok(
  $$insert into public.telemetry_events (id, occurred_at, app_id, event_type) values ('00000000-0000-4000-8000-0001ffffffff', now(), 'vscode', 'click')$$,
  '42501', null, 'a direct insert of an event the sampling rate leaves out is refused by the same rule');
select lives_ok(
  $$insert into public.telemetry_events (id, occurred_at, app_id, event_type) values ('00000000-0000-4000-8000-000100000002', now(), 'vscode', 'click')$$,
  'and one it keeps is stored');
select is(public.ingest_events(jsonb_build_array(jsonb_build_object('kind', 'telemetry',
      'id', '00000000-0000-4000-8000-0000000000f2', 'occurred_at', now(), 'app_id', 'vscode', 'event_type', 'click')))
      -> 'results' -> 0 ->> 'status', 'accepted', 'an event below the sampling rate is kept');
select cmp_ok(
  (select count(*) filter (where private.sample_point(gen_random_uuid()) < 0.5)::numeric / 10000 from generate_series(1, 10000)),
  '>', 0.45, 'a sampling rate of 0.5 keeps about half of the events (lower bound)');
select cmp_ok(
  (select count(*) filter (where private.sample_point(gen_random_uuid()) < 0.5)::numeric / 10000 from generate_series(1, 10000)),
  '<', 0.55, 'a sampling rate of 0.5 keeps about half of the events (upper bound)');

-- The other user sees none of it.
select tests.authenticate_as('mal');
select is_empty($$select 1 from public.telemetry_events union all select 1 from public.file_events$$,
  'another user sees none of these events');

select * from finish();
rollback;
