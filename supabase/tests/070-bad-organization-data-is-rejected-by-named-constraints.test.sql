begin;
select plan(13);

select tests.create_user('owner');
select tests.create_organization('owner', 'test-valid');
select tests.authenticate_as('owner');

select throws_ok($$update public.organizations set slug = 'Has Spaces' where slug = 'test-valid'$$, '23514',
  'value for domain slug violates check constraint "slug_format_invalid"', 'a slug with spaces or capitals is rejected');
select throws_ok($$update public.organizations set email = 'not-an-email' where slug = 'test-valid'$$, '23514',
  'value for domain email_address violates check constraint "email_address_format_invalid"', 'a malformed e-mail is rejected');
select throws_ok($$update public.organizations set website = 'ftp://files.example.com' where slug = 'test-valid'$$, '23514',
  'value for domain http_url violates check constraint "http_url_format_invalid"', 'a non-http URL is rejected');
select throws_ok($$update public.organizations set phone = '555-1234' where slug = 'test-valid'$$, '23514',
  'value for domain phone_number violates check constraint "phone_number_not_e164"', 'a phone number not in E.164 form is rejected');
select throws_ok($$update public.organizations set country = 'XX' where slug = 'test-valid'$$, '23514',
  'new row for relation "organizations" violates check constraint "organizations_country_iso3166"', 'an unknown country code is rejected');
select throws_ok($$update public.organizations set country = 'pl' where slug = 'test-valid'$$, '23514',
  'new row for relation "organizations" violates check constraint "organizations_country_iso3166"', 'a lower-case country code is rejected');
select throws_ok($$update public.organizations set timezone = 'Mars/Olympus_Mons' where slug = 'test-valid'$$, '23514',
  'new row for relation "organizations" violates check constraint "organizations_timezone_iana"', 'an unknown time zone is rejected');
select throws_ok($$update public.organizations set timezone = 'EST' where slug = 'test-valid'$$, '23514',
  'new row for relation "organizations" violates check constraint "organizations_timezone_iana"', 'a time-zone abbreviation is rejected');
select throws_ok($$update public.organizations set business_hours = '{"monday": {"open": "17:00", "close": "09:00"}}' where slug = 'test-valid'$$, '23514',
  'new row for relation "organizations" violates check constraint "organizations_business_hours_shape"', 'opening after closing is rejected');
select throws_ok($$update public.organizations set business_hours = '{"funday": {"open": "09:00", "close": "17:00"}}' where slug = 'test-valid'$$, '23514',
  'new row for relation "organizations" violates check constraint "organizations_business_hours_shape"', 'an unknown weekday is rejected');
select throws_ok($$update public.organizations set business_hours = '["monday"]' where slug = 'test-valid'$$, '23514',
  'new row for relation "organizations" violates check constraint "organizations_business_hours_shape"', 'business hours that are not an object are rejected');
select throws_ok($$update public.organizations set name = '   ' where slug = 'test-valid'$$, '23514',
  'new row for relation "organizations" violates check constraint "organizations_name_length"', 'a blank name is rejected');

select is(tests.rows_affected($$update public.organizations set email = 'team@example.com', website = 'https://example.com/about',
    phone = '+48123456789', country = 'PL', timezone = 'Europe/Warsaw',
    business_hours = '{"monday": {"open": "09:00", "close": "17:00"}, "sunday": null, "friday": {"open": "10:00", "close": "24:00"}}'
  where slug = 'test-valid'$$), 1::bigint, 'well-formed values are accepted');

select * from finish();
rollback;
