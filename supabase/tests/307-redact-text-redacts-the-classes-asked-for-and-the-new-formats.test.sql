-- private.redact_text(): every class by default, only the classes named otherwise, a clear error for an unknown class;
-- and the formats of issue 9 through redact_telemetry_metadata(): national phones, more card issuers and layouts,
-- secrets inside strings, vendor keys, Unicode e-mail, lower-case IBANs, while look-alikes stay.
begin;
select plan(21);

select is(private.redact_text('mail ann@example.com, card 4111 1111 1111 1111, from 203.0.113.7'),
  'mail [EMAIL], card [CARD], from [IP]', 'redact_text with no classes redacts every class');
select is(private.redact_text('card 4111 1111 1111 1111, Authorization: Bearer abcdefghijklmnop1234567890, mail ann@example.com, call 020 7946 0958', array['card', 'secret']),
  'card [CARD], Authorization: Bearer [TOKEN], mail ann@example.com, call 020 7946 0958',
  'redact_text with card and secret keeps the contact details (the receptionist''s choice)');
select is(private.redact_text('ann@example.com 4111 1111 1111 1111', array[]::text[]), 'ann@example.com 4111 1111 1111 1111',
  'redact_text with an empty class list changes nothing');
select is(private.redact_text(null), null, 'redact_text of null is null');
select throws_ok($$select private.redact_text('x', array['email', 'passport'])$$, '22023', null,
  'an unknown class is refused with 22023');
select results_eq($$select p.provolatile::text from pg_catalog.pg_proc p
                    where p.oid in ('private.redact_text(text, text[])'::regprocedure, 'private.redact_jsonb(jsonb, text[])'::regprocedure)$$,
  $$values ('i'), ('i')$$, 'redact_text and the engine are immutable');

select is(public.redact_telemetry_metadata('{"a": "call 0490 75 40 81", "b": "tel: 467 3395", "c": "(37) 788-063", "d": "Telefon 030 12345678", "e": "0049 30 12345678"}'),
  '{"a": "call [PHONE]", "b": "tel: [PHONE]", "c": "[PHONE]", "d": "Telefon [PHONE]", "e": "[PHONE]"}'::jsonb,
  'national phone formats of several countries are masked, bare digits after a phone word');
select is(public.redact_telemetry_metadata('{"a": "467 3395 units", "b": "total 1 234 567 EUR", "c": "ship to 02134-1234", "d": "call count 1234567 this month", "e": "at 15.01.2024"}'),
  '{"a": "467 3395 units", "b": "total 1 234 567 EUR", "c": "ship to 02134-1234", "d": "call count 1234567 this month", "e": "at 15.01.2024"}'::jsonb,
  'amounts, postal codes, counts and dates that look like phone digits stay');
select is(public.redact_telemetry_metadata('{"a": "maestro 6759 6498 2648", "b": "jcb 180014432785130", "c": "visa 4111.1111.1111.1111", "d": "order #4111111111111111-001"}'),
  '{"a": "maestro [CARD]", "b": "jcb [CARD]", "c": "visa [CARD]", "d": "order #[CARD]-001"}'::jsonb,
  '12-digit Maestro, 15-digit JCB, dotted and glued card numbers are masked');
select is(public.redact_telemetry_metadata('{"a": "ts 1700000000000", "b": "us 1700000000000007", "c": "EAN 5901234123457", "d": "1234 5678 9012 3456"}'),
  '{"a": "ts 1700000000000", "b": "us 1700000000000007", "c": "EAN 5901234123457", "d": "1234 5678 9012 3456"}'::jsonb,
  'epoch milliseconds and microseconds, barcodes and Luhn-invalid digit groups stay');
select is(public.redact_telemetry_metadata('{"a": "X-API-Key: 9f8e7d6c5b4a3928", "b": "Authorization: Basic dXNlcjpwYXNzd29yZA==", "c": "Cookie: theme=dark; JSESSIONID=1A2B3C4D5E6F7A8B", "d": "GET /me?access_token=abc123def456ghi7 200"}'),
  '{"a": "X-API-Key: [SECRET]", "b": "Authorization: Basic [TOKEN]", "c": "Cookie: theme=[SECRET]; JSESSIONID=[SECRET]", "d": "GET /me?access_token=[SECRET] 200"}'::jsonb,
  'header lines, cookie lines and query-string credentials lose their values');
select is(private.redact_text('Authorization:Basic dXNlcjpwYXNz; X-Auth-Token:abc123def456; Cookie:sid=77aa55cc99ee1234'),
  'Authorization:Basic [TOKEN]; X-Auth-Token:[SECRET]; Cookie:sid=[SECRET]', 'header lines without a space after the colon are caught too');
select is(public.redact_telemetry_metadata('{"a": "Set-Cookie: PHPSESSID=9f8e7d6c5b4a3928; Path=/; HttpOnly", "b": "replayed sess=77aa55cc99ee1234", "c": "session=expired", "d": "session_count=3"}'),
  '{"a": "Set-Cookie: PHPSESSID=[SECRET]; Path=/; HttpOnly", "b": "replayed sess=[SECRET]", "c": "session=expired", "d": "session_count=3"}'::jsonb,
  'session ids are masked, Set-Cookie attributes and words without a digit stay');
select is(public.redact_telemetry_metadata(jsonb_build_object(
    'a', 'SG.' || repeat('a1B2', 5) || 'xy.' || repeat('Cd3E', 10) || 'fgh', 'b', 'ya29.' || repeat('Zx9_', 10),
    'c', 'xapp-1-A0123456789-1234567890123-' || repeat('ab12', 16), 'd', 'glpat-' || repeat('Ab3_', 5),
    'e', 'npm_' || repeat('aB3d', 9), 'f', 'dop_v1_' || repeat('0f1e', 16))),
  '{"a": "[API_KEY]", "b": "[API_KEY]", "c": "[API_KEY]", "d": "[API_KEY]", "e": "[API_KEY]", "f": "[API_KEY]"}'::jsonb,
  'SendGrid, Google OAuth, Slack app, GitLab, npm and DigitalOcean tokens are masked');
select is(public.redact_telemetry_metadata(jsonb_build_object('k', E'-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn\n-----END RSA PRIVATE KEY-----', 'n', 'ok')),
  '{"k": "[PRIVATE_KEY]", "n": "ok"}'::jsonb, 'private-key PEM blocks are masked whole');
select is(public.redact_telemetry_metadata('{"a": "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "b": "key: 3f2a9c1e8b7d6a5f4e3d2c1b"}'),
  '{"a": "aws_secret_access_key = [SECRET]", "b": "key: [SECRET]"}'::jsonb, 'long secrets after a secret-ish name are masked');
select is(public.redact_telemetry_metadata('{"a": "commit 3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39", "b": "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "c": "digest: sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "d": "cache key: 3f2a9c1e8b7d6a5f4e3d2c1b"}'),
  '{"a": "commit 3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39", "b": "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "c": "digest: sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "d": "cache key: 3f2a9c1e8b7d6a5f4e3d2c1b"}'::jsonb,
  'git SHAs, trace ids, content digests and cache keys stay');
select is(public.redact_telemetry_metadata('{"a": "from иван@пример.рф", "b": "to 用户@例子.广告", "c": "payout de89 3704 0044 0532 0130 00 today", "d": "iban gb82west12345698765432"}'),
  '{"a": "from [EMAIL]", "b": "to [EMAIL]", "c": "payout [IBAN] today", "d": "iban [IBAN]"}'::jsonb,
  'internationalised e-mail addresses and lower-case IBANs are masked');
select is(public.redact_telemetry_metadata('{"m": "prompt_tokens: 1532, completion_tokens: 210", "v": "claude-3-5-sonnet-20241022", "p": "charged 1.234,56 €", "g": "52.520008, 13.404954", "i": "ISBN 978-3-16-148410-0"}'),
  '{"m": "prompt_tokens: 1532, completion_tokens: 210", "v": "claude-3-5-sonnet-20241022", "p": "charged 1.234,56 €", "g": "52.520008, 13.404954", "i": "ISBN 978-3-16-148410-0"}'::jsonb,
  'token counts, dated model names, prices, coordinates and ISBNs stay');
select is(public.redact_telemetry_metadata(public.redact_telemetry_metadata('{"a": "Cookie: sid=77aa55cc99ee1234; x=1", "b": "tel: 467 3395", "c": "Authorization: Basic dXNlcjpwYXNz"}')),
  public.redact_telemetry_metadata('{"a": "Cookie: sid=77aa55cc99ee1234; x=1", "b": "tel: 467 3395", "c": "Authorization: Basic dXNlcjpwYXNz"}'),
  'the new classes are idempotent');
select lives_ok($$
  select private.redact_text(v, c.c)
  from unnest(array[E'Cookie: \\"a=1', 'tel: (((((', 'Authorization:', '-----BEGIN PRIVATE KEY-----', U&'\E008 4111-1111-1111-1111-0', 'key: ' || repeat('a1', 400)]) v,
       (values (null::text[]), (array['phone']), (array['secret', 'card'])) c(c)
$$, 'odd inputs for the new classes never make the redactor raise');

select * from finish();
rollback;
