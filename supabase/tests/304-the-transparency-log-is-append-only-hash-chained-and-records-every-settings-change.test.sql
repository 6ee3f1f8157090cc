-- privacy_transparency_log: every change of privacy_prefs, app_allowlist and signal_toggles is logged with old/new
-- value hashes; no role (the table owner included) can update, delete or truncate it; each user's entries form a
-- hash chain that verify_transparency_log() checks, naming the first broken link.
begin;
select plan(22);

select tests.create_user('lou');
select tests.create_user('kim');
select tests.create_user('ned');

select tests.authenticate_as('lou');
update public.privacy_prefs set consent_given = true, monitoring_enabled = true;
insert into public.app_allowlist (app_id) values ('figma');
update public.app_allowlist set enabled = false where app_id = 'figma';
insert into public.signal_toggles (signal_key) values ('click');
delete from public.signal_toggles where signal_key = 'click';
update public.privacy_prefs set last_reviewed_at = last_reviewed_at;

select results_eq(
  $$select seq, action, resource from public.privacy_transparency_log order by seq$$,
  $$values (1::bigint, 'insert', 'privacy_prefs'), (2, 'update', 'privacy_prefs'), (3, 'insert', 'app_allowlist'),
           (4, 'update', 'app_allowlist'), (5, 'insert', 'signal_toggles'), (6, 'delete', 'signal_toggles')$$,
  'each settings change is logged in order, and an update that changes nothing is not');
select is((select metadata from public.privacy_transparency_log where seq = 2),
  '{"changed": ["consent_given", "consent_given_at", "monitoring_enabled"]}'::jsonb,
  'an update entry names the changed columns, not their values');
select ok((select old_value_hash ~ '^[0-9a-f]{64}$' and new_value_hash ~ '^[0-9a-f]{64}$' and old_value_hash <> new_value_hash
           from public.privacy_transparency_log where seq = 4),
  'an update entry carries sha256 hashes of the old and new values');
select ok((select old_value_hash is not null and new_value_hash is null from public.privacy_transparency_log where seq = 6),
  'a delete entry has an old hash and no new hash');
select ok((select bool_and(l.prev_hash is not distinct from p.entry_hash)
           from public.privacy_transparency_log l
           left join public.privacy_transparency_log p on p.user_id = l.user_id and p.seq = l.seq - 1),
  'each entry holds the hash of the entry before it');
select is(public.verify_transparency_log(), '{"valid": true, "first_broken": null, "users_checked": 1, "entries_checked": 6}'::jsonb,
  'a user verifies their own intact chain');
select throws_ok($$select public.verify_transparency_log(tests.user_id('kim'))$$, '42501', null,
  'a user cannot verify someone else''s chain');

-- Nobody writes the log directly.
select throws_ok($$insert into public.privacy_transparency_log (user_id, seq, action, resource, entry_hash) values ((select auth.uid()), 99, 'insert', 'x', repeat('a', 64))$$,
  '42501', null, 'a user cannot insert log entries');
select throws_ok($$update public.privacy_transparency_log set action = 'export'$$, '42501', null,
  'a user cannot update log entries');
select throws_ok($$delete from public.privacy_transparency_log$$, '42501', null, 'a user cannot delete log entries');

select tests.authenticate_as('kim');
insert into public.app_allowlist (app_id) values ('slack');
select is_empty($$select 1 from public.privacy_transparency_log where user_id = tests.user_id('lou')$$,
  'another user cannot read the log');

select tests.authenticate_as('ned');
insert into public.app_allowlist (app_id) values ('zoom');

select tests.clear_authentication();
select throws_ok($$update public.privacy_transparency_log set action = 'export' where seq = 2$$, '42501', null,
  'even the table owner cannot update an entry');
select throws_ok($$delete from public.privacy_transparency_log where seq = 2$$, '42501', null,
  'even the table owner cannot delete an entry');
select throws_ok($$truncate public.privacy_transparency_log$$, '42501', null, 'even the table owner cannot truncate the log');
select throws_ok($$delete from private.transparency_chain_heads where user_id = tests.user_id('lou')$$, '42501', null,
  'nor remove or rewind the head of a chain');

-- The triggers fire ALWAYS: the replica switch of replication and restore tools does not get past them.
set local session_replication_role = replica;
select throws_ok($$delete from public.privacy_transparency_log where seq = 2$$, '42501', null,
  'with session_replication_role = replica the log still cannot be changed');
set local session_replication_role = origin;

select throws_ok($$truncate public.app_allowlist$$, '42501', null, 'settings cannot be truncated past the log');
set local session_replication_role = replica;
update public.privacy_prefs set data_retention_days = 30 where user_id = tests.user_id('lou');
set local session_replication_role = origin;
select is((select resource from public.privacy_transparency_log where user_id = tests.user_id('lou') order by seq desc limit 1),
  'privacy_prefs', 'a settings change under session_replication_role = replica is still logged');

-- Tampering by an owner who explicitly switches the trigger off is detected.
alter table public.privacy_transparency_log disable trigger privacy_transparency_log_immutable;
update public.privacy_transparency_log set metadata = '{"changed": ["mfa_required"]}'
where user_id = tests.user_id('lou') and seq = 2;
delete from public.privacy_transparency_log where user_id = tests.user_id('kim') and seq = 1;
delete from public.privacy_transparency_log where user_id = tests.user_id('ned') and seq = 2;
alter table public.privacy_transparency_log enable always trigger privacy_transparency_log_immutable;
select is(public.verify_transparency_log(tests.user_id('lou')) -> 'first_broken',
  jsonb_build_array(jsonb_build_object('user_id', tests.user_id('lou'), 'seq', 2, 'reason', 'entry_hash_mismatch')),
  'a changed entry is reported as the first broken link of its chain');
select is(public.verify_transparency_log(tests.user_id('kim')) -> 'first_broken' -> 0 ->> 'reason', 'missing_entry',
  'a removed entry is reported as a missing link');
select is(public.verify_transparency_log(tests.user_id('ned')) -> 'first_broken' -> 0 ->> 'reason', 'missing_tail',
  'entries removed from the end of a chain are reported: the chain head remembers where it ended');
select tests.authenticate_as_service_role();
select is((public.verify_transparency_log() ->> 'valid')::boolean, false, 'service_role verifies every chain and sees the breaks');
select tests.clear_authentication();

select * from finish();
rollback;
