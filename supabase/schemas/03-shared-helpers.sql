-- Platform: shared helpers.
-- updated_at and write-guard triggers, request-context accessors, CHECK validators, monthly partition upkeep.

-- The updated_at trigger, request-context accessors (the headers PostgREST and the edge functions set per request),
-- validators used by CHECK constraints, and monthly partition upkeep for append-only tables.

create function private.set_updated_at() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := pg_catalog.now();
  return new;
end;
$$;
comment on function private.set_updated_at() is 'BEFORE UPDATE trigger: keeps updated_at current on every table that has one.';

-- Guards of append-only and logged tables: the trigger's argument says why the operation is refused.
create function private.reject_write() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception '% on % is not allowed', lower(tg_op), tg_table_name
    using errcode = '42501', hint = coalesce(tg_argv[0], 'The table does not allow it.');
end;
$$;
comment on function private.reject_write() is 'BEFORE UPDATE/DELETE/TRUNCATE guard: always raises 42501, with the trigger''s argument as the hint.';

-- Request context. PostgREST (and the edge functions' request-context runner) put the request headers in
-- `request.headers` as JSON for the duration of the transaction; outside a request these return null.
create function private.request_header(name text) returns text
language sql stable
set search_path = ''
as $$
  select nullif(current_setting('request.headers', true), '')::jsonb ->> lower(name)
$$;
comment on function private.request_header(text) is 'A header of the current API request (lower-cased name), or null outside a request.';

-- The client IP from already parsed request headers (request_ip() and the audit trigger, which parses the headers
-- once per row). An IPv4 address in dotted-quad form (the common case) is recognised by its shape and cast directly;
-- anything else goes through the guarded cast, whose exception block costs a subtransaction.
create function private.client_ip_from_headers(headers jsonb) returns inet
language plpgsql stable
set search_path = ''
as $$
declare
  -- Headers the platform's proxies set, before X-Forwarded-For; of that, the hop the last proxy appended: the
  -- left-most entries are whatever the client sent.
  forwarded text := headers ->> 'x-forwarded-for';
  raw text := pg_catalog.btrim(coalesce(headers ->> 'cf-connecting-ip', headers ->> 'x-real-ip',
    (pg_catalog.string_to_array(forwarded, ','))[pg_catalog.array_length(pg_catalog.string_to_array(forwarded, ','), 1)],
    ''));
begin
  if raw = '' then
    return null;
  end if;
  if raw ~ '^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$' then
    return raw::inet;
  end if;
  return private.try_inet(raw);
end;
$$;
comment on function private.client_ip_from_headers(jsonb) is 'Client IP from request headers as JSON (CF-Connecting-IP, X-Real-IP, else the last X-Forwarded-For hop), or null.';

create function private.try_inet(value text) returns inet
language plpgsql immutable
set search_path = ''
as $$
begin
  return value::inet;
exception when invalid_text_representation then
  return null;
end;
$$;
comment on function private.try_inet(text) is 'The text as inet, or null when it is not an address.';

create function private.request_ip() returns inet
language sql stable
set search_path = ''
as $$
  select private.client_ip_from_headers(nullif(current_setting('request.headers', true), '')::jsonb)
$$;
comment on function private.request_ip() is 'Client IP of the current request (CF-Connecting-IP, X-Real-IP, else the last X-Forwarded-For hop), or null.';

-- plpgsql, not sql: a SQL function with a pinned search_path is never inlined and is planned again on every call;
-- this one runs for every workflow start.
create function private.request_correlation_id() returns text
language plpgsql stable
set search_path = ''
as $$
declare
  h jsonb := nullif(current_setting('request.headers', true), '')::jsonb;
begin
  return left(coalesce(h ->> 'x-correlation-id', h ->> 'x-request-id', h ->> 'sb-request-id'), 128);
end;
$$;
comment on function private.request_correlation_id() is 'Correlation id of the current request (x-correlation-id, x-request-id or sb-request-id), or null.';

-- Validators. They are immutable in practice: the inputs they check against (ISO 3166 list, the server''s time zone
-- database) change only with a release of this schema or of PostgreSQL.
create function private.is_iso_country_code(code text) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select code = any (array[
    'AD','AE','AF','AG','AI','AL','AM','AO','AQ','AR','AS','AT','AU','AW','AX','AZ','BA','BB','BD','BE','BF','BG',
    'BH','BI','BJ','BL','BM','BN','BO','BQ','BR','BS','BT','BV','BW','BY','BZ','CA','CC','CD','CF','CG','CH','CI',
    'CK','CL','CM','CN','CO','CR','CU','CV','CW','CX','CY','CZ','DE','DJ','DK','DM','DO','DZ','EC','EE','EG','EH',
    'ER','ES','ET','FI','FJ','FK','FM','FO','FR','GA','GB','GD','GE','GF','GG','GH','GI','GL','GM','GN','GP','GQ',
    'GR','GS','GT','GU','GW','GY','HK','HM','HN','HR','HT','HU','ID','IE','IL','IM','IN','IO','IQ','IR','IS','IT',
    'JE','JM','JO','JP','KE','KG','KH','KI','KM','KN','KP','KR','KW','KY','KZ','LA','LB','LC','LI','LK','LR','LS',
    'LT','LU','LV','LY','MA','MC','MD','ME','MF','MG','MH','MK','ML','MM','MN','MO','MP','MQ','MR','MS','MT','MU',
    'MV','MW','MX','MY','MZ','NA','NC','NE','NF','NG','NI','NL','NO','NP','NR','NU','NZ','OM','PA','PE','PF','PG',
    'PH','PK','PL','PM','PN','PR','PS','PT','PW','PY','QA','RE','RO','RS','RU','RW','SA','SB','SC','SD','SE','SG',
    'SH','SI','SJ','SK','SL','SM','SN','SO','SR','SS','ST','SV','SX','SY','SZ','TC','TD','TF','TG','TH','TJ','TK',
    'TL','TM','TN','TO','TR','TT','TV','TW','TZ','UA','UG','UM','US','UY','UZ','VA','VC','VE','VG','VI','VN','VU',
    'WF','WS','YE','YT','ZA','ZM','ZW'])
$$;
comment on function private.is_iso_country_code(text) is 'True for an ISO 3166-1 alpha-2 country code (upper case).';

create function private.is_iana_timezone(tz text) returns boolean
language plpgsql immutable parallel safe
set search_path = ''
as $$
begin
  -- The shape rules out abbreviations (EST) and POSIX offsets (UTC+3); the conversion asks the server's zone
  -- database, which is ~1000x cheaper than scanning pg_timezone_names on every CHECK.
  if tz is null or tz !~ '^(?:UTC|[A-Z][A-Za-z_]+(?:/[A-Za-z0-9_+-]+){1,2})$' then
    return false;
  end if;
  perform pg_catalog.now() at time zone tz;
  return true;
exception when invalid_parameter_value then
  return false;
end;
$$;
comment on function private.is_iana_timezone(text) is 'True for a canonical IANA time zone name such as Europe/Warsaw (or UTC); abbreviations and POSIX offsets are rejected.';

-- business_hours: {"monday": {"open": "09:00", "close": "17:00"}, "sunday": null, ...}; days are optional, a null
-- (or missing) day is closed, open must be before close.
create function private.is_valid_business_hours(hours jsonb) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select jsonb_typeof(hours) = 'object'
     and not exists (
       select 1
       from jsonb_each(hours) as d(day, spec)
       where d.day not in ('monday','tuesday','wednesday','thursday','friday','saturday','sunday')
          or (jsonb_typeof(d.spec) <> 'null' and (
                jsonb_typeof(d.spec) <> 'object'
             or not (d.spec ?& array['open','close'])
             or exists (select 1 from jsonb_object_keys(d.spec) k where k not in ('open','close'))
             or coalesce(d.spec ->> 'open', '') !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'
             or coalesce(d.spec ->> 'close', '') !~ '^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$'
             or (d.spec ->> 'open') >= (d.spec ->> 'close')))
     )
$$;
comment on function private.is_valid_business_hours(jsonb) is 'True when business_hours maps weekday names to null or {open, close} as HH:MM with open < close.';

-- CHECK constraints run with the writer's privileges, so every role that writes must be able to call these.
grant execute on function private.is_iso_country_code(text), private.is_iana_timezone(text),
  private.is_valid_business_hours(jsonb) to authenticated, service_role;

-- Monthly range partitions for the append-only tables. Partitions live in `private` (never exposed); each
-- partitioned table also has a DEFAULT partition so that a write is never lost when upkeep has not run. Creating a
-- month whose rows already sit in the default partition moves them into the new partition first.
create function private.create_monthly_partition(parent regclass, month date) returns boolean
language plpgsql
set search_path = ''
-- Months are UTC months whatever the session's (or the database's) time zone: bounds, names and the per-month
-- counters must agree, and adjacent partitions must meet.
set timezone = 'UTC'
as $$
declare
  start_at timestamptz := date_trunc('month', month)::timestamptz;
  end_at timestamptz := (date_trunc('month', month) + interval '1 month')::timestamptz;
  parent_name text := (select c.relname from pg_catalog.pg_class c where c.oid = parent);
  part_name text := parent_name || '_p' || to_char(month, 'YYYYMM');
  default_name text := parent_name || '_default';
  key_column text;
  moved bigint;
begin
  if exists (select 1 from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
             where n.nspname = 'private' and c.relname = part_name) then
    return false;
  end if;
  select a.attname into key_column
  from pg_catalog.pg_partitioned_table p
  join pg_catalog.pg_attribute a on a.attrelid = p.partrelid and a.attnum = p.partattrs[0]
  where p.partrelid = parent;
  if key_column is null then
    raise exception '% is not a range-partitioned table', parent using errcode = '22023';
  end if;

  execute format('create table private.%I (like %s including defaults including constraints)', part_name, parent);
  -- Moving rows is not a change of the data: row triggers (audit, immutability, derived tables) stay out of it.
  execute format('alter table private.%I disable trigger user', default_name);
  execute format('with moved as (delete from private.%I where %I >= %L and %I < %L returning *) insert into private.%I select * from moved',
                 default_name, key_column, start_at, key_column, end_at, part_name);
  get diagnostics moved = row_count;
  execute format('alter table private.%I enable trigger user', default_name);
  execute format('alter table %s attach partition private.%I for values from (%L) to (%L)', parent, part_name, start_at, end_at);
  if moved > 0 then
    raise notice 'moved % rows of % from the default partition into %', moved, parent, part_name;
  end if;
  return true;
end;
$$;
comment on function private.create_monthly_partition(regclass, date) is 'Creates (idempotently) the partition of a monthly range-partitioned table holding the given month; true when it created one.';

-- The tables maintained here: every range-partitioned table in `public` (found in the catalog, so later files
-- only need to create the parent and its default partition).
create function private.ensure_monthly_partitions(months_back integer default 1, months_ahead integer default 3)
returns integer
language plpgsql
set search_path = ''
set timezone = 'UTC'
as $$
declare
  parent regclass;
  created integer := 0;
begin
  for parent in
    select p.partrelid::regclass
    from pg_catalog.pg_partitioned_table p
    join pg_catalog.pg_class c on c.oid = p.partrelid
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and p.partstrat = 'r'
  loop
    for m in -months_back .. months_ahead loop
      if private.create_monthly_partition(parent, (date_trunc('month', pg_catalog.now()) + make_interval(months => m))::date) then
        created := created + 1;
      end if;
    end loop;
  end loop;
  return created;
end;
$$;
comment on function private.ensure_monthly_partitions(integer, integer) is 'Makes sure every partitioned table in public has monthly (UTC) partitions from months_back to months_ahead (run nightly by pg_cron; three ahead, so that two ahead exist even before the run on the 1st); returns how many it created.';
