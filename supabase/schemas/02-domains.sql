-- Platform: domains for shapes that repeat across tables.
-- slug, email_address, http_url, phone_number (E.164), jsonb_object.

-- Shapes that repeat across tables. A violation names the domain's constraint, which says what is wrong.

create domain public.slug as text
  constraint slug_format_invalid
  check (value ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$');
comment on domain public.slug is 'URL-safe identifier: 1-63 chars of a-z, 0-9 and inner hyphens.';

create domain public.email_address as text
  constraint email_address_format_invalid
  check (
    length(value) <= 254
    and value ~ '^[A-Za-z0-9._%+''-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,}$'
  );
comment on domain public.email_address is 'An e-mail address (RFC 5321 length limit, common syntax).';

create domain public.http_url as text
  constraint http_url_format_invalid
  check (length(value) <= 2048 and value ~ '^https?://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?(?:[/?#][^\s]*)?$');
comment on domain public.http_url is 'An absolute http(s) URL.';

create domain public.phone_number as text
  constraint phone_number_not_e164
  check (value ~ '^\+[1-9][0-9]{6,14}$');
comment on domain public.phone_number is 'A phone number in E.164 form, e.g. +48123456789.';

create domain public.jsonb_object as jsonb
  constraint jsonb_object_not_object
  check (jsonb_typeof(value) = 'object');
comment on domain public.jsonb_object is 'A JSON object ({...}), not an array, scalar or null JSON value.';
