-- redact_telemetry_metadata(): sensitive keys lose their values at any depth and in any spelling, PII inside strings
-- becomes placeholders, JSON escapes and numbers survive, no valid input makes it raise, the result is idempotent;
-- the same redaction guards file events and audit_logs; metadata can be encrypted with pgcrypto.
begin;
select plan(36);

select is(public.redact_telemetry_metadata('{"password": "hunter2", "Authorization": "Basic dXNlcjpwYXNz", "apiKey": "abc123", "client_secret": 42, "card_number": "4111"}'),
  '{"password": "[REDACTED]", "Authorization": "[REDACTED]", "apiKey": "[REDACTED]", "client_secret": "[REDACTED]", "card_number": "[REDACTED]"}'::jsonb,
  'values of sensitive keys are replaced, whatever their spelling or type');
select is(public.redact_telemetry_metadata('{"a": [{"b": {"access_token": "t0k3n", "session_id": "s-1", "cvv": "123", "IBAN": "x", "ssn": "y"}}]}'),
  '{"a": [{"b": {"access_token": "[REDACTED]", "session_id": "[REDACTED]", "cvv": "[REDACTED]", "IBAN": "[REDACTED]", "ssn": "[REDACTED]"}}]}'::jsonb,
  'sensitive keys are found inside nested objects and arrays');
select is(public.redact_telemetry_metadata('{"auth": {"user": "ann", "pass": "x"}, "cookies": ["a=1", "b=2"], "keep": {"n": 1}}'),
  '{"auth": "[REDACTED]", "cookies": "[REDACTED]", "keep": {"n": 1}}'::jsonb,
  'objects and arrays held by sensitive keys are replaced whole');
select is(public.redact_telemetry_metadata('{"tokens_used": 1532, "max_tokens": 4096, "token_count": 7, "session_count": 3, "keyboard": "qwerty", "password_changed_at": "2024-01-15T10:30:00Z"}'),
  '{"tokens_used": 1532, "max_tokens": 4096, "token_count": 7, "session_count": 3, "keyboard": "qwerty", "password_changed_at": "2024-01-15T10:30:00Z"}'::jsonb,
  'keys that only mention a sensitive word (token counts, timestamps) keep their values');
select is(public.redact_telemetry_metadata('{"note": "mail ann@example.com or call +1 (415) 555-2671, card 4111 1111 1111 1111"}') ->> 'note',
  'mail [EMAIL] or call [PHONE], card [CARD]', 'e-mail, phone and card inside one string are all masked');
select is(public.redact_telemetry_metadata('{"m": "from 192.168.1.20 and 2001:db8::8a2e:370:7334"}') ->> 'm',
  'from [IP] and [IP]', 'IPv4 and IPv6 addresses are masked');
select is(public.redact_telemetry_metadata('{"h": "Authorization: Bearer abcdefghijklmnop1234567890"}') ->> 'h',
  'Authorization: Bearer [TOKEN]', 'bearer tokens are masked');
select is(public.redact_telemetry_metadata('{"k": "sk_live_4eC39HqLyjWDarjtT1zdp7dc AKIAIOSFODNN7EXAMPLE"}') ->> 'k',
  '[API_KEY] [API_KEY]', 'Stripe and AWS keys are masked');
select is(public.redact_telemetry_metadata('{"i": "DE89 3704 0044 0532 0130 00", "s": "ssn 123-45-6789"}'),
  '{"i": "[IBAN]", "s": "ssn [SSN]"}'::jsonb, 'IBANs and US social security numbers are masked');
select is(public.redact_telemetry_metadata('{"ok": "4111 1111 1111 1112", "n": 4111111111111111, "epoch": 1700000000123, "list": [4111111111111111]}'),
  '{"ok": "4111 1111 1111 1112", "n": 4111111111111111, "epoch": 1700000000123, "list": [4111111111111111]}'::jsonb,
  'Luhn-invalid digits and JSON numbers are left alone');
select is(public.redact_telemetry_metadata('{"id": "550e8400-e29b-41d4-a716-446655440000", "at": "2024-01-15T10:30:00.123+01:00", "v": "2.14.0-beta.3", "took": "00:05:30", "path": "/var/log/app.log"}'),
  '{"id": "550e8400-e29b-41d4-a716-446655440000", "at": "2024-01-15T10:30:00.123+01:00", "v": "2.14.0-beta.3", "took": "00:05:30", "path": "/var/log/app.log"}'::jsonb,
  'UUIDs, ISO timestamps, versions, durations and ordinary paths are left alone');
select is(public.redact_telemetry_metadata(jsonb_build_object('p', E'C:\\Users\\John Smith\\Desktop\\a.txt', 'u', '/Users/jdoe/x', 'h', '/home/ann/.bashrc', 's', '/Users/Shared/x')),
  jsonb_build_object('p', E'C:\\Users\\[USER]\\Desktop\\a.txt', 'u', '/Users/[USER]/x', 'h', '/home/[USER]/.bashrc', 's', '/Users/Shared/x'),
  'home-directory user names are masked on macOS, Linux and Windows paths');
select is(public.redact_telemetry_metadata(jsonb_build_object('t', E'line one\nbob@example.com said "hi"\t\\o/')),
  jsonb_build_object('t', E'line one\n[EMAIL] said "hi"\t\\o/'), 'JSON escapes next to PII survive redaction');
select is(public.redact_telemetry_metadata(public.redact_telemetry_metadata('{"a": "ann@example.com", "password": "x", "b": "+48 601 234 567"}')),
  public.redact_telemetry_metadata('{"a": "ann@example.com", "password": "x", "b": "+48 601 234 567"}'),
  'redaction is idempotent');
-- Key names in other spellings: separators, spaces, case, prefixes and suffixes.
select is(public.redact_telemetry_metadata('{"API Key": "a1", "api key": "a2", "x-api-key": "a3", "Private Key": "a4", "privateKeyPem": "a5", "private_key_pem": "a6"}'),
  '{"API Key": "[REDACTED]", "api key": "[REDACTED]", "x-api-key": "[REDACTED]", "Private Key": "[REDACTED]", "privateKeyPem": "[REDACTED]", "private_key_pem": "[REDACTED]"}'::jsonb,
  'API and private keys are caught with spaces, dashes, camel case and a pem suffix');
select is(public.redact_telemetry_metadata('{"card number": "4111", "Card-Number": 4111, "social security number": "078-05-1120", "session id": "s-1"}'),
  '{"card number": "[REDACTED]", "Card-Number": "[REDACTED]", "social security number": "[REDACTED]", "session id": "[REDACTED]"}'::jsonb,
  'card numbers, social security numbers and session ids are caught when their words are spaced or dashed');
select is(public.redact_telemetry_metadata('{"pass": "p1", "db_pass": "p2", "passwords": ["p3"], "password_hash": "$2b$10$abc", "client_secret": "c1", "refresh_token": "r1", "Set-Cookie": "sid=1"}'),
  '{"pass": "[REDACTED]", "db_pass": "[REDACTED]", "passwords": "[REDACTED]", "password_hash": "[REDACTED]", "client_secret": "[REDACTED]", "refresh_token": "[REDACTED]", "Set-Cookie": "[REDACTED]"}'::jsonb,
  'pass as a word, plural passwords, password hashes, client secrets, refresh tokens and Set-Cookie are caught');
select is(public.redact_telemetry_metadata('{"token_count": 7, "tokens_used": 12, "passenger": "Ann", "compass": "north", "session_count": 3, "keyboard_layout": "qwerty", "monkey": "island", "primary_key_column": "id"}'),
  '{"token_count": 7, "tokens_used": 12, "passenger": "Ann", "compass": "north", "session_count": 3, "keyboard_layout": "qwerty", "monkey": "island", "primary_key_column": "id"}'::jsonb,
  'keys that only contain a sensitive word (token counts, passenger, compass, monkey, primary key column) keep their values');
select is(public.redact_telemetry_metadata('{"monkey": {"name": "bo"}, "x": {"API Key": {"v": 1}}}'),
  '{"monkey": {"name": "bo"}, "x": {"API Key": "[REDACTED]"}}'::jsonb,
  'an object under an ordinary key that ends in "key" is kept, one under a sensitive key is replaced');
select ok(private.is_sensitive_key('Refresh-Token') and private.is_sensitive_key('userPassword') and not private.is_sensitive_key('compass')
          and not private.is_sensitive_key('tokens_used'),
  'is_sensitive_key agrees with the text path on the same spellings');

-- JSON escapes and the marker characters the redactor folds them into: never an error, nothing lost.
select is(public.redact_telemetry_metadata('{"n": "a\u0001b ann@example.com \u001f 4111 1111 1111 1111"}'),
  '{"n": "a\u0001b [EMAIL] \u001f [CARD]"}'::jsonb, 'control-character escapes next to PII survive and do not break the JSON');
select is(public.redact_telemetry_metadata('{"n": "\u0001ann@example.com", "\u0002x": "\u0003192.168.1.1"}'),
  '{"n": "\u0001[EMAIL]", "\u0002x": "\u0003[IP]"}'::jsonb, 'an escape directly before an e-mail or an address is not taken for part of it');
select is(public.redact_telemetry_metadata(jsonb_build_object('t', E'\\u0041 \\\\u00e9 \u00e9 \U0001F600 ann@example.com')),
  jsonb_build_object('t', E'\\u0041 \\\\u00e9 \u00e9 \U0001F600 [EMAIL]'), 'literal backslash-u text, accents and emoji next to PII survive');
select is(public.redact_telemetry_metadata(jsonb_build_object('password', E'a"b\\c', 'x', U&'\E001\E007\E008 ann@example.com', U&'k\E000', '+1 415 555 2671')),
  jsonb_build_object('password', '[REDACTED]', 'x', U&'\E001\E007\E008 [EMAIL]', U&'k\E000', '[PHONE]'),
  'metadata already holding the marker characters is redacted on the safe path and keeps them');
select is(public.redact_telemetry_metadata(jsonb_build_object('n', U&'\E008 4111 1111 1111 1111 \E101', 'q', E'say \\"hi\\"')),
  jsonb_build_object('n', U&'\E008 [CARD] \E101', 'q', E'say \\"hi\\"'), 'marker characters next to a card number are kept');
select lives_ok($$
  select public.redact_telemetry_metadata(jsonb_build_object(k, v, 'password', v, 'a', jsonb_build_array(v, k)))
  from unnest(array[E'\\', '"', E'\\u', E'\\u0041', U&'\E000', U&'\E007', U&'\E008', U&'\E100', U&'\E11F', E'\u0001@x.com', E'\u001f4111 1111 1111 1111']) k,
       unnest(array[E'\\"ann@example.com', E'\u0001ann@example.com', U&'\E007 +1 415 555 2671', E'C:\\Users\\bob\\"x', E'\\u00e9 192.168.1.1 \u0002']) v
$$, 'no combination of backslashes, quotes, escapes and marker characters makes the redactor raise');
select is(public.redact_telemetry_metadata(null), null, 'null stays null');
select is(public.redact_telemetry_metadata('[]'), '[]'::jsonb, 'an empty array stays as it is');
select is((select p.provolatile from pg_catalog.pg_proc p where p.oid = 'public.redact_telemetry_metadata(jsonb)'::regprocedure), 'i',
  'redact_telemetry_metadata is immutable');

-- The same redaction guards audit_logs.
insert into public.audit_logs (action, resource, metadata) values ('update', 'probe', '{"note": "reach me at ann@example.com"}');
select is((select metadata ->> 'note' from public.audit_logs where resource = 'probe'), 'reach me at [EMAIL]',
  'audit_logs metadata is redacted before it is stored');

-- Triggers redact whatever path a row takes.
select tests.create_user('rae');
insert into public.telemetry_events (id, user_id, occurred_at, app_id, event_type, metadata_redacted)
values ('00000000-0000-4000-8000-0000000000aa', tests.user_id('rae'), now(), 'cli', 'run', '{"cmd": "login --password hunter2", "token": "x", "by": "rae@example.com"}');
select is((select metadata_redacted from public.telemetry_events where id = '00000000-0000-4000-8000-0000000000aa'),
  '{"cmd": "login --password hunter2", "token": "[REDACTED]", "by": "[EMAIL]"}'::jsonb,
  'telemetry inserted by the table owner is redacted too');

-- pgcrypto wrappers.
select is(public.decrypt_telemetry_metadata(public.encrypt_telemetry_metadata('{"a": 1}', 'a-long-enough-test-key'), 'a-long-enough-test-key'),
  '{"a": 1}'::jsonb, 'encrypted metadata decrypts back with the same key');
select throws_ok($$select public.decrypt_telemetry_metadata(public.encrypt_telemetry_metadata('{"a": 1}', 'a-long-enough-test-key'), 'another-long-wrong-key')$$,
  '28P01', null, 'a wrong key is refused with 28P01');
select throws_ok($$select public.encrypt_telemetry_metadata('{"a": 1}', 'short')$$, '22023', null,
  'a short encryption key is refused');
select isnt(public.encrypt_telemetry_metadata('{"a": 1}', 'a-long-enough-test-key'), public.encrypt_telemetry_metadata('{"a": 1}', 'a-long-enough-test-key'),
  'encrypting the same metadata twice gives different ciphertexts (random IV)');
select results_eq($$select p.provolatile::text from pg_catalog.pg_proc p
                    where p.oid in ('public.encrypt_telemetry_metadata(jsonb, text)'::regprocedure, 'public.decrypt_telemetry_metadata(bytea, text)'::regprocedure)
                    order by p.proname desc$$,
  $$values ('v'), ('i')$$, 'encrypt_telemetry_metadata is volatile and decrypt_telemetry_metadata immutable');

select * from finish();
rollback;
