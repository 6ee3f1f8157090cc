-- redact_telemetry_metadata(): sensitive keys lose their values at any depth, PII inside strings becomes
-- placeholders, JSON escapes and numbers survive, the result is idempotent; the same redaction guards file events
-- and audit_logs; metadata can be encrypted with pgcrypto.
begin;
select plan(22);

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

select * from finish();
rollback;
