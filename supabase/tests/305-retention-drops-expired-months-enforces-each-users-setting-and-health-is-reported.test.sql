-- Retention: cleanup_retention_data() drops whole expired monthly partitions and tells each affected user how many
-- events went; cleanup_telemetry_by_retention() enforces each user's data_retention_days; both write metrics_log;
-- privacy_guardian_health_check() reports RLS, redaction triggers, PII in recent data, retention recency and
-- future partitions. Maintenance is for service_role only and returns counts, never rows.
begin;
select plan(32);

select tests.create_user('old_timer');
select tests.create_user('short_keeper');
select tests.create_user('one_day');
update public.privacy_prefs set data_retention_days = 7 where user_id = tests.user_id('short_keeper');
update public.privacy_prefs set data_retention_days = 1 where user_id = tests.user_id('one_day');

select private.create_monthly_partition('public.telemetry_events', (now() - interval '14 months')::date);
select private.create_monthly_partition('public.telemetry_events', (now() - interval '13 months')::date);
insert into public.telemetry_events (id, user_id, occurred_at, app_id, event_type)
select gen_random_uuid(), tests.user_id('old_timer'), date_trunc('month', now() - interval '14 months') + interval '3 days', 'cli', 'run'
from generate_series(1, 3);
insert into public.telemetry_events (id, user_id, occurred_at, app_id, event_type)
select gen_random_uuid(), tests.user_id('short_keeper'), date_trunc('month', now() - interval '13 months') + interval '3 days', 'cli', 'run'
from generate_series(1, 2);
insert into public.telemetry_events (id, user_id, occurred_at, app_id, event_type) values
  -- Always in the current month, so that last month holds only expired events (see 'last_month' below).
  (gen_random_uuid(), tests.user_id('old_timer'), greatest(date_trunc('month', now()), now() - interval '20 days'), 'cli', 'recent'),
  (gen_random_uuid(), tests.user_id('short_keeper'), now() - interval '20 days', 'cli', 'expired_for_me'),
  (gen_random_uuid(), tests.user_id('short_keeper'), now(), 'cli', 'fresh');

-- A month in which only the short keeper has events: past their 7 days, though not past the old timer's 90.
select private.create_monthly_partition('public.telemetry_events', (now() - interval '3 months')::date);
insert into public.telemetry_events (id, user_id, occurred_at, app_id, event_type)
values (gen_random_uuid(), tests.user_id('short_keeper'), date_trunc('month', now() - interval '3 months') + interval '3 days', 'cli', 'old_month');
-- Last month is still open to inserts (events up to 30 days old are accepted): it is never dropped, even when all of
-- its events have expired; they are deleted row by row.
insert into public.telemetry_events (id, user_id, occurred_at, app_id, event_type)
values (gen_random_uuid(), tests.user_id('one_day'), date_trunc('month', now()) - interval '2 days', 'cli', 'last_month');

-- File events of the short keeper: a copy from 20 days ago (past their 7 days) and two edits today.
insert into public.file_events (id, user_id, occurred_at, file_path, related_path, event_type, tool) values
  (gen_random_uuid(), tests.user_id('short_keeper'), now() - interval '20 days', '/tmp/s.pdf', '/tmp/t.pdf', 'copied', 'secretvault'),
  (gen_random_uuid(), tests.user_id('short_keeper'), now(), '/tmp/u.pdf', null, 'modified', 'vscode'),
  (gen_random_uuid(), tests.user_id('short_keeper'), now(), '/tmp/u.pdf', null, 'modified', 'vscode');

-- Aggregates without events behind them: one long expired, one past its owner's 1 day, one fresh.
insert into public.file_patterns (user_id, file_extension, event_count, last_used_at) values
  (tests.user_id('old_timer'), 'psd', 4, now() - interval '14 months'),
  (tests.user_id('one_day'), 'md', 1, now());
insert into public.file_relationships (user_id, source_path, target_path, relation_type, weight, last_seen_at) values
  (tests.user_id('one_day'), '/tmp/a.md', '/tmp/b.md', 'copied', 1, now() - interval '20 days');

-- Who may run maintenance.
select tests.authenticate_as('old_timer');
select throws_ok($$select public.cleanup_retention_data()$$, '42501', null, 'a user cannot run retention');
select throws_ok($$select public.privacy_guardian_health_check()$$, '42501', null, 'a user cannot run the guardian health check');
select tests.authenticate_as_anon();
select throws_ok($$select public.cleanup_telemetry_by_retention()$$, '42501', null, 'anon cannot run per-user retention');

select tests.authenticate_as_service_role();
select is((public.cleanup_retention_data() -> 'removed' ->> 'telemetry_events')::integer, 5,
  'cleanup_retention_data removes the five events of the two months older than a year');
select tests.clear_authentication();
select ok(to_regclass('private.telemetry_events_p' || to_char(now() - interval '14 months', 'YYYYMM')) is null
          and to_regclass('private.telemetry_events_p' || to_char(now() - interval '13 months', 'YYYYMM')) is null,
  'the expired months are dropped as whole partitions');
select is((select count(*)::integer from public.telemetry_events where occurred_at < now() - interval '1 year'), 0,
  'no event older than the policy remains');
select results_eq(
  $$select l.user_id, (l.metadata ->> 'rows')::integer, l.metadata ->> 'reason' from public.privacy_transparency_log l
    where l.action = 'retention_purge' and l.resource = 'telemetry_events' order by 2$$,
  $$values (tests.user_id('short_keeper'), 2, 'retention_policy'), (tests.user_id('old_timer'), 3, 'retention_policy')$$,
  'each affected user gets one retention_purge entry with their own count');
select isnt((select last_run_at from public.retention_policies where table_name = 'telemetry_events'), null,
  'the policy records when it last ran');
select is((select value::integer from public.metrics_log where source = 'cleanup_retention_data' order by id desc limit 1), 6,
  'the run is written to metrics_log (five events and one expired file pattern)');
select is((select metadata from public.privacy_transparency_log where action = 'retention_purge' and resource = 'file_insights'),
  '{"file_patterns": 1, "file_relationships": 0, "reason": "retention_policy"}'::jsonb,
  'a file pattern older than the file_events policy expires with them, and its owner is told');
select is((select count(*)::integer from private.event_month_counts where month < now() - interval '1 year'), 0,
  'the per-month counters of dropped months are removed');

select tests.authenticate_as_service_role();
create temporary table user_retention_run on commit drop as select public.cleanup_telemetry_by_retention() as result;
select is((select result ->> 'rows_deleted' from user_retention_run), '4',
  'per-user retention deletes the events and the file relationship past their owners'' own retention, row by row');
select is((select result ->> 'rows_in_dropped_partitions' from user_retention_run), '1',
  'a month expired for every user with events in it is dropped whole, although another user keeps data longer');
select ok(to_regclass('private.telemetry_events_p' || to_char(now() - interval '3 months', 'YYYYMM')) is null,
  'that month''s partition is gone');
select ok(to_regclass('private.telemetry_events_p' || to_char(date_trunc('month', now()) - interval '2 days', 'YYYYMM')) is not null,
  'last month''s partition, still open to inserts, is kept');
select tests.clear_authentication();
select results_eq($$select event_type from public.telemetry_events order by event_type$$,
  $$values ('fresh'), ('recent')$$, 'events within each user''s own retention remain');
select is((select (metadata ->> 'rows')::integer from public.privacy_transparency_log
           where user_id = tests.user_id('short_keeper') and resource = 'telemetry_events'
             and metadata ->> 'reason' = 'user_retention' and metadata ->> 'partitions_dropped' = 'false'), 1,
  'the short keeper''s transparency log records the per-user purge');
select results_eq($$select x from (select file_extension from public.file_patterns union all select source_path from public.file_relationships) u(x) order by x$$,
  $$values ('md'), ('pdf')$$, 'only the file aggregates within their owner''s retention remain');
select results_eq($$select event_count, tools from public.file_patterns where file_extension = 'pdf'$$,
  $$values (2::bigint, array['vscode'])$$,
  'aggregates of file events that went are rebuilt from the events that remain');
select is_empty($$select 1 from public.file_relationships where source_path = '/tmp/s.pdf'$$,
  'a relationship whose only event expired goes with it');
select is((select (metadata ->> 'file_relationships')::integer from public.privacy_transparency_log
           where user_id = tests.user_id('one_day') and resource = 'file_insights'), 1,
  'an aggregate past its owner''s retention goes too, and its owner is told');
select is((select count(*)::integer from public.metrics_log where source = 'cleanup_telemetry_by_retention'), 1,
  'per-user retention is written to metrics_log');

-- Health.
select tests.authenticate_as_service_role();
select is(public.privacy_guardian_health_check() ->> 'status', 'healthy',
  'with RLS, redaction triggers, clean data, fresh retention and future partitions the guardian is healthy');
select ok(not (public.privacy_guardian_health_check()::text ~ 'expired_for_me|"fresh"|@'),
  'the health report holds aggregates, not event data');
select tests.clear_authentication();

-- Rows that slipped past redaction, stored now although they happened two days ago.
set local session_replication_role = replica;
insert into public.telemetry_events (id, user_id, occurred_at, app_id, event_type, metadata_redacted)
values (gen_random_uuid(), tests.user_id('old_timer'), now() - interval '2 days', 'cli', 'leak', '{"email": "leak@example.com"}');
insert into public.file_events (id, user_id, occurred_at, file_path, event_type, tool)
values (gen_random_uuid(), tests.user_id('old_timer'), now() - interval '2 days', '/home/alice/notes.md', 'modified', 'cli');
set local session_replication_role = origin;
select tests.authenticate_as_service_role();
select is(public.privacy_guardian_health_check() -> 'recent_sample' ->> 'with_detectable_pii', '2',
  'a telemetry event and a file event that slipped past redaction are found among the newest stored rows');
select ok((public.privacy_guardian_health_check() -> 'failing') ? 'pii_in_recent_sample'
          and public.privacy_guardian_health_check() ->> 'status' = 'degraded',
  'and the guardian reports itself degraded because of them');
select tests.clear_authentication();

alter table public.telemetry_events disable trigger auto_redact_telemetry_before_insert;
select tests.authenticate_as_service_role();
select is(public.privacy_guardian_health_check() -> 'redaction_triggers_enabled' ->> 'auto_redact_telemetry_before_insert', 'false',
  'a disabled redaction trigger is reported');
select ok((public.privacy_guardian_health_check() -> 'failing') ? 'redaction_triggers', 'as a failing check');
select tests.clear_authentication();
alter table public.telemetry_events enable trigger auto_redact_telemetry_before_insert;

update public.metrics_log set ts = now() - interval '27 hours';
select tests.authenticate_as_service_role();
select ok((public.privacy_guardian_health_check() -> 'failing') ? 'retention_stale',
  'retention that has not run for 26 hours is reported');
select tests.clear_authentication();

select results_eq(
  $$select jobname::text collate "default", schedule::text collate "default", command::text collate "default" from cron.job
    where jobname in ('privacy-retention', 'privacy-user-retention', 'partition-upkeep') order by jobname$$,
  $$values ('partition-upkeep', '15 0 * * *', 'select private.ensure_monthly_partitions(1, 3)'),
           ('privacy-retention', '30 2 * * *', 'select public.cleanup_retention_data()'),
           ('privacy-user-retention', '45 2 * * *', 'select public.cleanup_telemetry_by_retention()')$$,
  'pg_cron keeps partitions three months ahead and runs both retention jobs nightly, after the upkeep');

-- Months are UTC months whatever the session's time zone: partitions still meet end to end.
set local timezone = 'Europe/Berlin';
select lives_ok($$select private.ensure_monthly_partitions(1, 5)$$,
  'partition upkeep works in a session that is not in UTC');
set local timezone = 'UTC';
select ok(pg_get_expr(c.relpartbound, c.oid) collate "C" = format('FOR VALUES FROM (%L) TO (%L)',
            to_char(date_trunc('month', now() + interval '5 months'), 'YYYY-MM-DD') || ' 00:00:00+00',
            to_char(date_trunc('month', now() + interval '6 months'), 'YYYY-MM-DD') || ' 00:00:00+00'),
  'and the new month runs from UTC midnight to UTC midnight')
from pg_class c where c.relname = 'telemetry_events_p' || to_char(now() + interval '5 months', 'YYYYMM');

select * from finish();
rollback;
