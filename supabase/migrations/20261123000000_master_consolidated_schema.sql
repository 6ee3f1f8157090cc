-- =====================================================================================================================
-- Master consolidated schema
-- One backend for a family of AI workflow products (see shared/DESIGN.md). Read top to bottom: every section depends
-- only on the ones above it. This file runs unchanged on Supabase Cloud, `supabase start`, and the project's own
-- local platform (scripts/), which provides the same roles, `auth` schema and grants Supabase does.
--
-- Table of contents
--   1. Extensions
--   2. Schemas
--   3. Privilege lockdown
--   4. Domains
--   5. Shared helpers (updated_at, request context, validation, partitions)
--   6. Identity: profiles
--   7. Tenancy: organizations, roles, permissions, role_permissions, organization_members
--   8. Access helpers used by policies
--   9. Audit: audit_logs, the generic audit trigger, audit_rls_violation()
--  10. Tenancy row-level security and grants
--  11. Tenancy RPCs
--  12. Sign-up: profile + personal organization for every new user
--  13. Operations: get_table_sizes(), get_index_usage(), system_healthcheck()
--  14. Scheduled jobs
-- =====================================================================================================================


-- ===== Section 1: Extensions =====
-- Everything lives in `extensions` (Supabase's convention) except pg_cron, which must own the `cron` schema.

create extension if not exists pgcrypto with schema extensions;
create extension if not exists pg_trgm with schema extensions;
create extension if not exists btree_gist with schema extensions;
create extension if not exists pg_cron with schema pg_catalog;


-- ===== Section 2: Schemas =====
-- `public` is the API (exposed through PostgREST). `private` holds helpers, trigger functions, internal tables and
-- partitions; it is never listed in the API schemas, so nothing in it is reachable over HTTP.

create schema if not exists private;
comment on schema private is 'Internal: helpers, trigger functions, internal tables and partitions. Never exposed through the API.';

-- Policies run as the caller and call helpers in `private`, so the API roles may resolve names there; what they can
-- execute is granted function by function below.
grant usage on schema private to authenticated, service_role;


-- ===== Section 3: Privilege lockdown =====
-- Supabase grants the API roles everything on new objects in `public` and every role EXECUTE on new functions.
-- This backend is default-deny: nothing is reachable until a grant further down says so.

alter default privileges for role postgres revoke execute on functions from public;
alter default privileges for role postgres in schema public revoke all on tables from anon, authenticated, service_role;
alter default privileges for role postgres in schema public revoke all on sequences from anon, authenticated, service_role;
alter default privileges for role postgres in schema public revoke all on functions from anon, authenticated, service_role;
revoke all on schema private from public;


-- ===== Section 4: Domains =====
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


-- ===== Section 5: Shared helpers =====
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

-- Request context. PostgREST (and the edge functions' request-context runner) put the request headers in
-- `request.headers` as JSON for the duration of the transaction; outside a request these return null.
create function private.request_header(name text) returns text
language sql stable
set search_path = ''
as $$
  select nullif(current_setting('request.headers', true), '')::jsonb ->> lower(name)
$$;
comment on function private.request_header(text) is 'A header of the current API request (lower-cased name), or null outside a request.';

create function private.request_ip() returns inet
language plpgsql stable
set search_path = ''
as $$
declare
  raw text := pg_catalog.btrim(pg_catalog.split_part(
    coalesce(private.request_header('x-forwarded-for'), private.request_header('x-real-ip'), ''), ',', 1));
begin
  if raw = '' then
    return null;
  end if;
  return raw::inet;
exception when invalid_text_representation then
  return null;
end;
$$;
comment on function private.request_ip() is 'Client IP of the current request (first X-Forwarded-For hop), or null.';

create function private.request_correlation_id() returns text
language sql stable
set search_path = ''
as $$
  select left(coalesce(private.request_header('x-correlation-id'), private.request_header('x-request-id'),
                       private.request_header('sb-request-id')), 128)
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
language sql immutable parallel safe
set search_path = ''
as $$
  select tz ~ '^(?:UTC|[A-Z][A-Za-z_]+(?:/[A-Za-z0-9_+-]+){1,2})$'
     and exists (select 1 from pg_catalog.pg_timezone_names n where n.name = tz)
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
create function private.create_monthly_partition(parent regclass, month date) returns text
language plpgsql
set search_path = ''
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
    return part_name;
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
  return part_name;
end;
$$;
comment on function private.create_monthly_partition(regclass, date) is 'Creates (idempotently) the partition of a monthly range-partitioned table holding the given month.';

-- The tables maintained here: every range-partitioned table in `public` (found in the catalog, so later sections
-- only need to create the parent and its default partition).
create function private.ensure_monthly_partitions(months_back integer default 1, months_ahead integer default 2)
returns integer
language plpgsql
set search_path = ''
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
      perform private.create_monthly_partition(parent, (date_trunc('month', pg_catalog.now()) + make_interval(months => m))::date);
      created := created + 1;
    end loop;
  end loop;
  return created;
end;
$$;
comment on function private.ensure_monthly_partitions(integer, integer) is 'Makes sure every partitioned table in public has monthly partitions from months_back to months_ahead (run nightly by pg_cron).';


-- ===== Section 6: Identity: profiles =====
-- Supabase Auth owns users, sessions, identities and MFA factors (the seeds' users, sessions, accounts,
-- verification_tokens, mfa_enforced_sessions). profiles holds what the apps add to a user.

create table public.profiles (
  id uuid not null,
  email public.email_address,
  full_name text,
  avatar_url public.http_url,
  phone public.phone_number,
  timezone text not null default 'UTC',
  locale text not null default 'en',
  preferences jsonb not null default '{}'::jsonb,
  onboarding_completed boolean not null default false,
  last_active_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint profiles_pkey primary key (id),
  constraint profiles_id_fkey foreign key (id) references auth.users (id) on delete cascade,
  constraint profiles_full_name_length check (full_name is null or char_length(full_name) between 1 and 200),
  constraint profiles_timezone_iana check (private.is_iana_timezone(timezone)),
  constraint profiles_locale_bcp47 check (locale ~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$'),
  constraint profiles_preferences_object check (jsonb_typeof(preferences) = 'object')
);
comment on table public.profiles is 'App-level profile of an auth.users row: created at sign-up, removed with the user.';
comment on column public.profiles.email is 'Copy of auth.users.email kept in sync by trigger (read-only for clients), so teammates can see it.';
comment on column public.profiles.preferences is 'Free-form UI preferences (JSON object).';

create trigger profiles_set_updated_at before update on public.profiles
  for each row execute function private.set_updated_at();


-- ===== Section 7: Tenancy =====
-- organizations are the seeds' tenants (001), organizations (002, 003) and teams (004). Every user also gets a
-- personal organization, so user-level and team-level products share one model. Roles are rows: four system roles
-- plus per-organization custom roles; permissions are system-wide keys.

create table public.organizations (
  id uuid not null default gen_random_uuid(),
  name text not null,
  slug public.slug not null,
  description text,
  plan text not null default 'free',
  is_personal boolean not null default false,
  personal_user_id uuid,
  created_by uuid,
  settings jsonb not null default '{}'::jsonb,
  industry text,
  business_type text,
  phone public.phone_number,
  email public.email_address,
  website public.http_url,
  address text,
  city text,
  country text,
  timezone text not null default 'UTC',
  business_hours jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  constraint organizations_pkey primary key (id),
  constraint organizations_slug_key unique (slug),
  constraint organizations_personal_user_id_key unique (personal_user_id),
  constraint organizations_personal_user_id_fkey foreign key (personal_user_id) references auth.users (id) on delete cascade,
  constraint organizations_created_by_fkey foreign key (created_by) references auth.users (id) on delete set null,
  constraint organizations_name_length check (char_length(btrim(name)) between 1 and 200),
  constraint organizations_description_length check (description is null or char_length(description) <= 2000),
  constraint organizations_plan_known check (plan in ('free', 'pro', 'business', 'enterprise')),
  constraint organizations_personal_has_user check (is_personal = (personal_user_id is not null)),
  constraint organizations_settings_object check (jsonb_typeof(settings) = 'object'),
  constraint organizations_country_iso3166 check (country is null or private.is_iso_country_code(country)),
  constraint organizations_timezone_iana check (private.is_iana_timezone(timezone)),
  constraint organizations_business_hours_shape check (private.is_valid_business_hours(business_hours)),
  constraint organizations_text_lengths check (
    coalesce(char_length(industry), 0) <= 100 and coalesce(char_length(business_type), 0) <= 100
    and coalesce(char_length(address), 0) <= 500 and coalesce(char_length(city), 0) <= 100)
);
comment on table public.organizations is 'Tenants: a team, company or a user''s personal workspace. Soft-deleted via deleted_at.';
comment on column public.organizations.plan is 'Billing plan; written by the billing module only (clients cannot update it).';
comment on column public.organizations.personal_user_id is 'For a personal organization: its user (deleted with the user). Null for shared organizations.';
comment on column public.organizations.business_hours is 'Opening hours per weekday: {"monday": {"open": "09:00", "close": "17:00"}, "sunday": null}.';
comment on column public.organizations.country is 'ISO 3166-1 alpha-2 code, upper case.';

create index organizations_created_by_idx on public.organizations (created_by);
create index organizations_active_idx on public.organizations (id) where deleted_at is null;

create trigger organizations_set_updated_at before update on public.organizations
  for each row execute function private.set_updated_at();

create table public.permissions (
  key text not null,
  description text not null,
  created_at timestamptz not null default now(),
  constraint permissions_pkey primary key (key),
  constraint permissions_key_format check (key ~ '^[a-z_]+\.[a-z_]+$')
);
comment on table public.permissions is 'System-wide permission keys (reference data created by this migration). The key is the primary key: it is what policies and code name.';

create table public.roles (
  id uuid not null default gen_random_uuid(),
  organization_id uuid,
  key text not null,
  name text not null,
  description text,
  rank integer not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint roles_pkey primary key (id),
  constraint roles_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint roles_key_unique unique nulls not distinct (organization_id, key),
  constraint roles_key_format check (key ~ '^[a-z][a-z0-9_]{0,39}$'),
  constraint roles_name_length check (char_length(btrim(name)) between 1 and 100),
  constraint roles_custom_rank_below_admin check (organization_id is null or rank between 1 and 79)
);
comment on table public.roles is 'System roles (organization_id null: owner, admin, member, viewer) and per-organization custom roles.';
comment on column public.roles.rank is 'Seniority: a member may only assign roles up to their own rank. owner 100, admin 80, member 50, viewer 10; custom roles 1-79.';

create index roles_organization_id_idx on public.roles (organization_id);

create trigger roles_set_updated_at before update on public.roles
  for each row execute function private.set_updated_at();

create table public.role_permissions (
  role_id uuid not null,
  permission_key text not null,
  created_at timestamptz not null default now(),
  constraint role_permissions_pkey primary key (role_id, permission_key),
  constraint role_permissions_role_id_fkey foreign key (role_id) references public.roles (id) on delete cascade,
  constraint role_permissions_permission_key_fkey foreign key (permission_key) references public.permissions (key) on delete cascade
);
comment on table public.role_permissions is 'Which permissions each role grants.';

create index role_permissions_permission_key_idx on public.role_permissions (permission_key);

create table public.organization_members (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  user_id uuid not null,
  role_id uuid not null,
  invited_by uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint organization_members_pkey primary key (id),
  constraint organization_members_unique_member unique (organization_id, user_id),
  constraint organization_members_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint organization_members_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint organization_members_role_id_fkey foreign key (role_id) references public.roles (id) on delete restrict,
  constraint organization_members_invited_by_fkey foreign key (invited_by) references auth.users (id) on delete set null
);
comment on table public.organization_members is 'Membership of a user in an organization, with one role. Written through the membership RPCs only.';

create index organization_members_user_id_idx on public.organization_members (user_id, organization_id);
create index organization_members_role_id_idx on public.organization_members (role_id);
create index organization_members_invited_by_idx on public.organization_members (invited_by);

create trigger organization_members_set_updated_at before update on public.organization_members
  for each row execute function private.set_updated_at();

-- A member's role must be a system role or a custom role of the same organization; a personal organization has
-- exactly its user as its member.
create function private.check_membership_role() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  role_org uuid;
  personal_user uuid;
begin
  select r.organization_id into role_org from public.roles r where r.id = new.role_id;
  if role_org is not null and role_org <> new.organization_id then
    raise exception 'role % belongs to another organization', new.role_id
      using errcode = '23514', hint = 'Use a system role or a custom role of this organization.';
  end if;
  select o.personal_user_id into personal_user from public.organizations o where o.id = new.organization_id;
  if personal_user is not null and personal_user <> new.user_id then
    raise exception 'a personal organization cannot have other members'
      using errcode = '23514', hint = 'Create a shared organization to work with others.';
  end if;
  return new;
end;
$$;

create trigger organization_members_check_role before insert or update of role_id, organization_id, user_id
  on public.organization_members for each row execute function private.check_membership_role();

-- An organization that still has members always has an owner. Checked at commit, so ownership can be handed over
-- within one transaction (promote first, then demote); the membership RPCs check it at once for a clearer error.
create function private.organization_has_owner(organization uuid) returns boolean
language sql stable
set search_path = ''
as $$
  select exists (
    select 1 from public.organization_members m
    join public.roles r on r.id = m.role_id
    where m.organization_id = organization and r.organization_id is null and r.key = 'owner')
$$;
comment on function private.organization_has_owner(uuid) is 'Whether at least one member of the organization holds the system owner role.';

-- security definer: it must see every membership, whoever deletes (service role, Auth's admin role, a cascade).
create function private.check_organization_has_owner() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if exists (select 1 from public.organization_members m where m.organization_id = old.organization_id)
     and not private.organization_has_owner(old.organization_id)
  then
    raise exception 'organization % would be left without an owner', old.organization_id
      using errcode = '23514', hint = 'Make another member owner first.';
  end if;
  return null;
end;
$$;

create constraint trigger organization_members_keep_an_owner
  after update of role_id or delete on public.organization_members
  deferrable initially deferred
  for each row execute function private.check_organization_has_owner();

-- Reference data: permissions and system roles. Later modules check these keys; changing them is a migration.
insert into public.permissions (key, description) values
  ('organizations.update',  'Edit the organization''s profile and settings'),
  ('organizations.delete',  'Delete the organization'),
  ('members.read',          'See who belongs to the organization'),
  ('members.manage',        'Add, remove and change the role of members'),
  ('roles.manage',          'Create and edit custom roles'),
  ('audit.read',            'Read the organization''s audit log'),
  ('billing.read',          'See subscriptions, invoices and the billing customer'),
  ('billing.manage',        'Change the plan and payment details'),
  ('integrations.read',     'See connected integrations'),
  ('integrations.manage',   'Connect, configure and remove integrations'),
  ('workflows.read',        'See workflows and their executions'),
  ('workflows.manage',      'Create, edit and delete workflows'),
  ('workflows.execute',     'Run workflows'),
  ('approvals.decide',      'Approve or reject approval requests'),
  ('ai_agents.manage',      'Configure AI agents and AI provider settings'),
  ('projects.read',         'See projects and their tasks'),
  ('projects.manage',       'Create and edit projects and tasks'),
  ('receptionist.read',     'See conversations, appointments, services and staff'),
  ('receptionist.manage',   'Manage services, staff and appointments'),
  ('analytics.read',        'See analytics and metrics'),
  ('webhooks.manage',       'Create and edit outgoing webhooks');

insert into public.roles (organization_id, key, name, description, rank) values
  (null, 'owner',  'Owner',  'Full control, including billing and deleting the organization', 100),
  (null, 'admin',  'Admin',  'Manages members, settings and every module; cannot delete the organization', 80),
  (null, 'member', 'Member', 'Works in every module; cannot manage members, billing or settings', 50),
  (null, 'viewer', 'Viewer', 'Read-only access', 10);

insert into public.role_permissions (role_id, permission_key)
select r.id, p.key
from public.roles r
cross join public.permissions p
where r.organization_id is null
  and (
    r.key = 'owner'
    or (r.key = 'admin' and p.key <> 'organizations.delete')
    or (r.key = 'member' and p.key in ('members.read', 'integrations.read', 'workflows.read', 'workflows.execute',
                                       'approvals.decide', 'projects.read', 'projects.manage', 'receptionist.read',
                                       'receptionist.manage', 'analytics.read'))
    or (r.key = 'viewer' and p.key in ('members.read', 'integrations.read', 'workflows.read', 'projects.read',
                                       'receptionist.read', 'analytics.read'))
  );


-- ===== Section 8: Access helpers used by policies =====
-- security definer so that policies can read membership without recursing into membership's own policies; each
-- depends only on the caller (not on the row), so `x in (select private.f())` is evaluated once per statement.

create function private.user_organization_ids() returns setof uuid
language sql stable security definer
set search_path = ''
as $$
  select m.organization_id
  from public.organization_members m
  join public.organizations o on o.id = m.organization_id
  where m.user_id = (select auth.uid()) and o.deleted_at is null
$$;
comment on function private.user_organization_ids() is 'Organizations the caller belongs to (not deleted).';

create function private.organizations_with_permission(permission text) returns setof uuid
language sql stable security definer
set search_path = ''
as $$
  select m.organization_id
  from public.organization_members m
  join public.organizations o on o.id = m.organization_id
  join public.role_permissions rp on rp.role_id = m.role_id
  where m.user_id = (select auth.uid()) and o.deleted_at is null and rp.permission_key = permission
$$;
comment on function private.organizations_with_permission(text) is 'Organizations in which the caller''s role grants the permission.';

create function private.has_permission(organization uuid, permission text) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (select 1 from private.organizations_with_permission(permission) o where o = organization)
$$;
comment on function private.has_permission(uuid, text) is 'Whether the caller holds the permission in the organization.';

create function private.member_rank(organization uuid, member uuid) returns integer
language sql stable security definer
set search_path = ''
as $$
  select r.rank
  from public.organization_members m
  join public.roles r on r.id = m.role_id
  where m.organization_id = organization and m.user_id = member
$$;
comment on function private.member_rank(uuid, uuid) is 'Rank of a member''s role in an organization, or null when not a member.';

create function private.is_platform_admin() returns boolean
language sql stable
set search_path = ''
as $$
  select coalesce(((select auth.jwt()) -> 'app_metadata' ->> 'platform_admin')::boolean, false)
$$;
comment on function private.is_platform_admin() is 'Platform administrator flag from app_metadata (server-controlled, never user_metadata).';

grant execute on function private.user_organization_ids(), private.organizations_with_permission(text),
  private.has_permission(uuid, text), private.member_rank(uuid, uuid), private.is_platform_admin()
  to authenticated, service_role;


-- ===== Section 9: Audit =====
-- audit_logs is append-only and partitioned by month; rows are written only by the generic audit trigger and by
-- audit_rls_violation(). Organization admins (audit.read) read their organization's entries. Values are not copied
-- into the log: only hashes of the old and new row, and the names of the changed columns.

create table public.audit_logs (
  id uuid not null default gen_random_uuid(),
  occurred_at timestamptz not null default now(),
  actor_id uuid,
  actor_role text,
  organization_id uuid,
  action text not null,
  resource text not null,
  resource_id text,
  ip inet,
  user_agent text,
  correlation_id text,
  metadata jsonb not null default '{}'::jsonb,
  old_value_hash text,
  new_value_hash text,
  constraint audit_logs_pkey primary key (id, occurred_at),
  constraint audit_logs_action_known check (action in ('insert', 'update', 'delete', 'rls_violation')),
  constraint audit_logs_metadata_object check (jsonb_typeof(metadata) = 'object'),
  constraint audit_logs_hash_format check (
    (old_value_hash is null or old_value_hash ~ '^[0-9a-f]{64}$') and (new_value_hash is null or new_value_hash ~ '^[0-9a-f]{64}$'))
) partition by range (occurred_at);
comment on table public.audit_logs is 'Immutable audit trail (actor, organization, action, resource, request context, value hashes). Partitioned by month; no foreign keys so entries outlive what they describe.';
comment on column public.audit_logs.metadata is 'For updates: {"changed": [column names]}; never row values.';

create table private.audit_logs_default partition of public.audit_logs default;

create index audit_logs_organization_idx on public.audit_logs (organization_id, occurred_at desc);
create index audit_logs_actor_idx on public.audit_logs (actor_id, occurred_at desc);
create index audit_logs_resource_idx on public.audit_logs (resource, resource_id);

create function private.reject_audit_change() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception 'audit_logs is append-only: % is not allowed', lower(tg_op)
    using errcode = '42501', hint = 'Audit entries are never changed; old partitions are dropped by retention.';
end;
$$;

create trigger audit_logs_immutable before update or delete on public.audit_logs
  for each row execute function private.reject_audit_change();
create trigger audit_logs_no_truncate before truncate on public.audit_logs
  for each statement execute function private.reject_audit_change();

-- The generic row-change audit trigger. Attach it AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW; the organization is
-- the row's organization_id (or its id, for organizations itself).
create function private.audit_row_change() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  old_row jsonb := case when tg_op in ('UPDATE', 'DELETE') then to_jsonb(old) end;
  new_row jsonb := case when tg_op in ('INSERT', 'UPDATE') then to_jsonb(new) end;
  any_row jsonb := coalesce(new_row, old_row);
  changed text[];
begin
  if tg_op = 'UPDATE' then
    select coalesce(array_agg(n.key order by n.key), '{}') into changed
    from jsonb_each(new_row) n
    where n.key <> 'updated_at' and n.value is distinct from old_row -> n.key;
    if changed = '{}' then
      return null;
    end if;
  end if;

  insert into public.audit_logs (actor_id, actor_role, organization_id, action, resource, resource_id, ip, user_agent,
                                 correlation_id, metadata, old_value_hash, new_value_hash)
  values (
    (select auth.uid()),
    coalesce((select auth.role()), current_user),
    coalesce(any_row ->> 'organization_id', case when tg_table_name = 'organizations' then any_row ->> 'id' end)::uuid,
    lower(tg_op),
    tg_table_name,
    coalesce(any_row ->> 'id', any_row ->> 'role_id'),
    private.request_ip(),
    left(private.request_header('user-agent'), 512),
    private.request_correlation_id(),
    case when tg_op = 'UPDATE' then jsonb_build_object('changed', to_jsonb(changed))
         when tg_table_name = 'role_permissions' then jsonb_build_object('permission', any_row ->> 'permission_key')
         else '{}'::jsonb end,
    encode(pg_catalog.sha256(convert_to(old_row::text, 'UTF8')), 'hex'),
    encode(pg_catalog.sha256(convert_to(new_row::text, 'UTF8')), 'hex')
  );
  return null;
end;
$$;
comment on function private.audit_row_change() is 'AFTER ROW trigger: appends one audit_logs entry per changed row (hashes and changed column names, no values).';

create trigger organizations_audit after insert or update or delete on public.organizations
  for each row execute function private.audit_row_change();
create trigger organization_members_audit after insert or update or delete on public.organization_members
  for each row execute function private.audit_row_change();
create trigger roles_audit after insert or update or delete on public.roles
  for each row execute function private.audit_row_change();
create trigger role_permissions_audit after insert or delete on public.role_permissions
  for each row execute function private.audit_row_change();

alter table public.audit_logs enable row level security;

-- audit_logs_select: members holding audit.read see their organization's entries.
create policy audit_logs_select on public.audit_logs for select to authenticated
  using (organization_id in (select private.organizations_with_permission('audit.read')));

grant select on public.audit_logs to authenticated, service_role;

-- Server code reports a blocked access attempt (seed 002's audit_rls_violation). Service role only: a client must
-- not be able to fill the audit log.
create function public.audit_rls_violation(table_name text, attempted_user_id uuid, operation text)
returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  entry_id uuid;
begin
  if operation is null or lower(operation) not in ('select', 'insert', 'update', 'delete') then
    raise exception 'operation must be one of select, insert, update, delete (got %)', coalesce(operation, 'null')
      using errcode = '22023';
  end if;
  if not exists (select 1 from pg_catalog.pg_tables t where t.schemaname = 'public' and t.tablename = table_name) then
    raise exception 'unknown table public.%', table_name using errcode = '42P01';
  end if;
  insert into public.audit_logs (actor_id, actor_role, action, resource, ip, user_agent, correlation_id, metadata)
  values (attempted_user_id, coalesce((select auth.role()), current_user), 'rls_violation', table_name,
          private.request_ip(), left(private.request_header('user-agent'), 512), private.request_correlation_id(),
          jsonb_build_object('operation', lower(operation)))
  returning id into entry_id;
  return entry_id;
end;
$$;
comment on function public.audit_rls_violation(text, uuid, text) is 'Records a blocked access attempt in audit_logs. service_role only.';
grant execute on function public.audit_rls_violation(text, uuid, text) to service_role;


-- ===== Section 10: Tenancy row-level security and grants =====
-- Members see their organizations, co-members and roles; writes to membership go through the RPCs in section 11.
-- Custom roles and their permissions are edited directly under RLS by members holding roles.manage.

alter table public.profiles enable row level security;
alter table public.organizations enable row level security;
alter table public.permissions enable row level security;
alter table public.roles enable row level security;
alter table public.role_permissions enable row level security;
alter table public.organization_members enable row level security;

-- profiles_select: a user sees their own profile and the profiles of people they share an organization with.
create policy profiles_select on public.profiles for select to authenticated
  using (
    id = (select auth.uid())
    or id in (select m.user_id from public.organization_members m
              where m.organization_id in (select private.user_organization_ids()))
  );
-- profiles_update: a user edits only their own profile (the editable columns are granted below).
create policy profiles_update on public.profiles for update to authenticated
  using (id = (select auth.uid()))
  with check (id = (select auth.uid()));

grant select on public.profiles to authenticated;
grant update (full_name, avatar_url, phone, timezone, locale, preferences, onboarding_completed, last_active_at)
  on public.profiles to authenticated;
grant select, insert, update, delete on public.profiles to service_role;

-- organizations_select: members see their (not deleted) organizations.
create policy organizations_select on public.organizations for select to authenticated
  using (id in (select private.user_organization_ids()));
-- organizations_update: members holding organizations.update edit the profile columns granted below.
create policy organizations_update on public.organizations for update to authenticated
  using (id in (select private.organizations_with_permission('organizations.update')))
  with check (id in (select private.organizations_with_permission('organizations.update')));

grant select on public.organizations to authenticated;
grant update (name, slug, description, settings, industry, business_type, phone, email, website, address, city,
              country, timezone, business_hours)
  on public.organizations to authenticated;
grant select, insert, update, delete on public.organizations to service_role;

-- permissions_select: every signed-in user may read the permission catalogue.
create policy permissions_select on public.permissions for select to authenticated
  using (true);

grant select on public.permissions to authenticated, service_role;

-- roles_select: system roles, and custom roles of the caller's organizations.
create policy roles_select on public.roles for select to authenticated
  using (organization_id is null or organization_id in (select private.user_organization_ids()));
-- roles_insert: members holding roles.manage create custom roles in that organization.
create policy roles_insert on public.roles for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('roles.manage')));
-- roles_update: members holding roles.manage edit that organization's custom roles (never system roles).
create policy roles_update on public.roles for update to authenticated
  using (organization_id in (select private.organizations_with_permission('roles.manage')))
  with check (organization_id in (select private.organizations_with_permission('roles.manage')));
-- roles_delete: members holding roles.manage delete unused custom roles (a role in use is protected by its FK).
create policy roles_delete on public.roles for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('roles.manage')));

grant select, delete on public.roles to authenticated;
grant insert (organization_id, key, name, description, rank) on public.roles to authenticated;
grant update (name, description, rank) on public.roles to authenticated;
grant select, insert, update, delete on public.roles to service_role;

-- role_permissions_select: the permissions of every role the caller can see.
create policy role_permissions_select on public.role_permissions for select to authenticated
  using (role_id in (select r.id from public.roles r
                     where r.organization_id is null or r.organization_id in (select private.user_organization_ids())));
-- role_permissions_insert: roles.manage holders grant a custom role only permissions they hold themselves.
create policy role_permissions_insert on public.role_permissions for insert to authenticated
  with check (
    exists (select 1 from public.roles r
            where r.id = role_id
              and r.organization_id in (select private.organizations_with_permission('roles.manage'))
              and private.has_permission(r.organization_id, permission_key))
  );
-- role_permissions_delete: roles.manage holders take permissions away from their organization's custom roles.
create policy role_permissions_delete on public.role_permissions for delete to authenticated
  using (role_id in (select r.id from public.roles r
                     where r.organization_id in (select private.organizations_with_permission('roles.manage'))));

grant select, insert, delete on public.role_permissions to authenticated;
grant select, insert, update, delete on public.role_permissions to service_role;

-- organization_members_select: members see the members of their organizations.
create policy organization_members_select on public.organization_members for select to authenticated
  using (organization_id in (select private.user_organization_ids()));

grant select on public.organization_members to authenticated;
grant select, insert, update, delete on public.organization_members to service_role;


-- ===== Section 11: Tenancy RPCs =====
-- What RLS alone cannot express safely: creating an organization with its first owner, and membership changes that
-- depend on the actor's and the target's rank. Each checks the caller, raises a clear error and changes nothing on
-- failure. Errors: 42501 not allowed, P0002 not found, 22023 bad argument, 23505 duplicate, 23514 last owner.

create function private.require_user() returns uuid
language plpgsql stable
set search_path = ''
as $$
declare
  uid uuid := (select auth.uid());
begin
  if uid is null then
    raise exception 'not authenticated' using errcode = '42501', hint = 'Call this with a user''s JWT.';
  end if;
  return uid;
end;
$$;

create function private.system_role_id(role_key text) returns uuid
language plpgsql stable
set search_path = ''
as $$
declare
  found uuid;
begin
  select r.id into found from public.roles r where r.organization_id is null and r.key = role_key;
  return found;
end;
$$;

-- Resolve a role key for an organization: a custom role of that organization wins over nothing; system keys are
-- reserved (custom roles cannot reuse them because they are looked up first).
create function private.resolve_role(organization uuid, role_key text) returns public.roles
language plpgsql stable
set search_path = ''
as $$
declare
  found public.roles;
begin
  select r.* into found from public.roles r
  where r.key = role_key and (r.organization_id is null or r.organization_id = organization)
  order by r.organization_id nulls first
  limit 1;
  if found.id is null then
    raise exception 'unknown role "%"', role_key using errcode = '22023',
      hint = 'Use owner, admin, member, viewer or a custom role of this organization.';
  end if;
  return found;
end;
$$;

create function private.require_active_organization(organization uuid) returns public.organizations
language plpgsql stable
set search_path = ''
as $$
declare
  found public.organizations;
begin
  select o.* into found from public.organizations o where o.id = organization and o.deleted_at is null;
  if found.id is null or not exists (select 1 from private.user_organization_ids() u where u = organization) then
    raise exception 'organization % not found', organization using errcode = 'P0002';
  end if;
  return found;
end;
$$;

create function public.create_organization(name text, slug text, description text default null)
returns public.organizations
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  created public.organizations;
begin
  if exists (select 1 from public.organizations o where o.slug = create_organization.slug) then
    raise exception 'slug "%" is already taken', create_organization.slug using errcode = '23505';
  end if;
  insert into public.organizations (name, slug, description, created_by)
  values (create_organization.name, create_organization.slug, create_organization.description, uid)
  returning * into created;
  insert into public.organization_members (organization_id, user_id, role_id)
  values (created.id, uid, private.system_role_id('owner'));
  return created;
end;
$$;
comment on function public.create_organization(text, text, text) is 'Creates a shared organization; the caller becomes its owner.';

create function public.add_organization_member(organization_id uuid, user_email text, role text default 'member')
returns public.organization_members
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  org public.organizations := private.require_active_organization(add_organization_member.organization_id);
  new_role public.roles := private.resolve_role(org.id, add_organization_member.role);
  target uuid;
  added public.organization_members;
begin
  if not private.has_permission(org.id, 'members.manage') then
    raise exception 'you may not manage members of this organization' using errcode = '42501';
  end if;
  if org.is_personal then
    raise exception 'a personal organization cannot have other members' using errcode = '22023',
      hint = 'Create a shared organization with create_organization().';
  end if;
  if new_role.rank > private.member_rank(org.id, uid) or (new_role.key = 'owner' and new_role.organization_id is null
     and private.member_rank(org.id, uid) < 100) then
    raise exception 'you may not grant the role "%"', new_role.key using errcode = '42501',
      hint = 'You can only grant roles up to your own.';
  end if;
  select u.id into target from auth.users u where lower(u.email) = lower(btrim(user_email)) and u.deleted_at is null;
  if target is null then
    raise exception 'no user with e-mail %', user_email using errcode = 'P0002',
      hint = 'The person must sign up before they can be added.';
  end if;
  if exists (select 1 from public.organization_members m where m.organization_id = org.id and m.user_id = target) then
    raise exception 'that user is already a member' using errcode = '23505';
  end if;
  insert into public.organization_members (organization_id, user_id, role_id, invited_by)
  values (org.id, target, new_role.id, uid)
  returning * into added;
  return added;
end;
$$;
comment on function public.add_organization_member(uuid, text, text) is 'Adds an existing user (by e-mail) with a role up to the caller''s own. Needs members.manage.';

create function public.change_member_role(organization_id uuid, user_id uuid, role text)
returns public.organization_members
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  org public.organizations := private.require_active_organization(change_member_role.organization_id);
  new_role public.roles := private.resolve_role(org.id, change_member_role.role);
  actor_rank integer := private.member_rank(org.id, uid);
  target_rank integer := private.member_rank(org.id, change_member_role.user_id);
  changed public.organization_members;
begin
  if not private.has_permission(org.id, 'members.manage') then
    raise exception 'you may not manage members of this organization' using errcode = '42501';
  end if;
  if target_rank is null then
    raise exception 'user % is not a member of this organization', change_member_role.user_id using errcode = 'P0002';
  end if;
  if actor_rank < 100 and (target_rank > actor_rank or new_role.rank > actor_rank or new_role.key = 'owner') then
    raise exception 'you may not change this member to "%"', new_role.key using errcode = '42501',
      hint = 'You can only manage members and grant roles up to your own rank; only owners manage owners.';
  end if;
  if actor_rank < 100 and change_member_role.user_id = uid then
    raise exception 'you may not change your own role' using errcode = '42501';
  end if;
  update public.organization_members m set role_id = new_role.id
  where m.organization_id = org.id and m.user_id = change_member_role.user_id
  returning * into changed;
  if not private.organization_has_owner(org.id) then
    raise exception 'the last owner cannot be demoted' using errcode = '23514',
      hint = 'Make another member owner first.';
  end if;
  return changed;
end;
$$;
comment on function public.change_member_role(uuid, uuid, text) is 'Changes a member''s role (members.manage; up to the caller''s rank; only owners manage owners). The last owner cannot be demoted.';

create function public.remove_organization_member(organization_id uuid, user_id uuid)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  org public.organizations := private.require_active_organization(remove_organization_member.organization_id);
  actor_rank integer := private.member_rank(org.id, uid);
  target_rank integer := private.member_rank(org.id, remove_organization_member.user_id);
begin
  if target_rank is null then
    raise exception 'user % is not a member of this organization', remove_organization_member.user_id using errcode = 'P0002';
  end if;
  if remove_organization_member.user_id <> uid then
    if not private.has_permission(org.id, 'members.manage') then
      raise exception 'you may not manage members of this organization' using errcode = '42501';
    end if;
    if actor_rank < 100 and target_rank > actor_rank then
      raise exception 'you may not remove a member who outranks you' using errcode = '42501';
    end if;
  end if;
  if org.is_personal then
    raise exception 'you cannot leave your personal organization' using errcode = '22023';
  end if;
  delete from public.organization_members m
  where m.organization_id = org.id and m.user_id = remove_organization_member.user_id;
  if not private.organization_has_owner(org.id) then
    raise exception 'the last owner cannot leave or be removed' using errcode = '23514',
      hint = 'Make another member owner first, or delete the organization.';
  end if;
end;
$$;
comment on function public.remove_organization_member(uuid, uuid) is 'Removes a member (members.manage, not someone who outranks you) or yourself. The last owner cannot be removed.';

create function public.leave_organization(organization_id uuid)
returns void
language sql security definer
set search_path = ''
as $$
  select public.remove_organization_member(leave_organization.organization_id, private.require_user())
$$;
comment on function public.leave_organization(uuid) is 'The caller leaves the organization (not their personal one; not as its last owner).';

create function public.delete_organization(organization_id uuid)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  org public.organizations;
begin
  perform private.require_user();
  org := private.require_active_organization(delete_organization.organization_id);
  if not private.has_permission(org.id, 'organizations.delete') then
    raise exception 'only an owner may delete the organization' using errcode = '42501';
  end if;
  if org.is_personal then
    raise exception 'a personal organization is deleted with its user' using errcode = '22023';
  end if;
  update public.organizations o set deleted_at = pg_catalog.now() where o.id = org.id;
end;
$$;
comment on function public.delete_organization(uuid) is 'Soft-deletes a shared organization (owners only); it disappears for every member.';

grant execute on function private.require_user(), private.system_role_id(text), private.resolve_role(uuid, text),
  private.require_active_organization(uuid) to authenticated;
grant execute on function public.create_organization(text, text, text), public.add_organization_member(uuid, text, text),
  public.change_member_role(uuid, uuid, text), public.remove_organization_member(uuid, uuid),
  public.leave_organization(uuid), public.delete_organization(uuid)
  to authenticated;


-- ===== Section 12: Sign-up =====
-- Every auth.users insert gets a profile and a personal organization it owns; e-mail changes reach the profile.

create function private.handle_new_user() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  display_name text := nullif(btrim(coalesce(new.raw_user_meta_data ->> 'full_name', new.raw_user_meta_data ->> 'name', '')), '');
  personal_org uuid;
begin
  insert into public.profiles (id, email, full_name, avatar_url)
  values (
    new.id,
    new.email,
    left(display_name, 200),
    case when (new.raw_user_meta_data ->> 'avatar_url') ~ '^https?://' then new.raw_user_meta_data ->> 'avatar_url' end
  );
  insert into public.organizations (name, slug, is_personal, personal_user_id, created_by)
  values (
    left(coalesce(display_name, split_part(new.email, '@', 1), 'Personal'), 180) || ' (personal)',
    'personal-' || replace(new.id::text, '-', ''),
    true, new.id, new.id
  )
  returning id into personal_org;
  insert into public.organization_members (organization_id, user_id, role_id)
  values (personal_org, new.id, private.system_role_id('owner'));
  return new;
end;
$$;
comment on function private.handle_new_user() is 'AFTER INSERT on auth.users: creates the profile and the personal organization (owner).';

create trigger on_auth_user_created after insert on auth.users
  for each row execute function private.handle_new_user();

create function private.handle_user_email_change() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  update public.profiles p set email = new.email where p.id = new.id;
  return new;
end;
$$;

create trigger on_auth_user_email_changed after update of email on auth.users
  for each row when (old.email is distinct from new.email)
  execute function private.handle_user_email_change();


-- ===== Section 13: Operations =====
-- Read-only views of the database's health for operators; service_role only. They return statistics, never rows.

create function public.get_table_sizes()
returns table (schema_name text, table_name text, row_estimate bigint, total_bytes bigint, table_bytes bigint,
               index_bytes bigint, total_size text)
language sql stable
set search_path = ''
as $$
  select n.nspname::text, c.relname::text, c.reltuples::bigint,
         pg_catalog.pg_total_relation_size(c.oid), pg_catalog.pg_relation_size(c.oid),
         pg_catalog.pg_indexes_size(c.oid), pg_catalog.pg_size_pretty(pg_catalog.pg_total_relation_size(c.oid))
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p') and n.nspname in ('public', 'private')
  order by pg_catalog.pg_total_relation_size(c.oid) desc
$$;
comment on function public.get_table_sizes() is 'Size of every table in public and private (service_role).';

create function public.get_index_usage()
returns table (schema_name text, table_name text, index_name text, index_scans bigint, index_bytes bigint,
               is_unique boolean)
language sql stable
set search_path = ''
as $$
  select s.schemaname::text, s.relname::text, s.indexrelname::text, s.idx_scan,
         pg_catalog.pg_relation_size(s.indexrelid), i.indisunique
  from pg_catalog.pg_stat_user_indexes s
  join pg_catalog.pg_index i on i.indexrelid = s.indexrelid
  where s.schemaname in ('public', 'private')
  order by s.idx_scan, pg_catalog.pg_relation_size(s.indexrelid) desc
$$;
comment on function public.get_index_usage() is 'Scans and size of every index in public and private, least used first (service_role).';

-- security definer: reads cron.job, which only the database owner may read on Supabase.
create function public.system_healthcheck()
returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'status', case when exists (
                select 1 from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
                where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relrowsecurity and not c.relispartition)
              then 'degraded' else 'ok' end,
    'checked_at', pg_catalog.now(),
    'server_version', pg_catalog.current_setting('server_version'),
    'database_bytes', pg_catalog.pg_database_size(pg_catalog.current_database()),
    'connections', jsonb_build_object(
      'used', (select count(*) from pg_catalog.pg_stat_activity where datname = pg_catalog.current_database()),
      'max', pg_catalog.current_setting('max_connections')::integer),
    'long_running_queries', (select count(*) from pg_catalog.pg_stat_activity
                             where state = 'active' and query_start < pg_catalog.now() - interval '5 minutes'),
    'tables_without_rls', (select coalesce(jsonb_agg(c.relname order by c.relname), '[]'::jsonb)
                           from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
                           where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relrowsecurity
                             and not c.relispartition),
    'partitions_ahead', (select coalesce(jsonb_object_agg(c.relname, (
                            select count(*) from pg_catalog.pg_inherits i
                            join pg_catalog.pg_class pc on pc.oid = i.inhrelid
                            where i.inhparent = p.partrelid
                              and pc.relname >= c.relname || '_p' || to_char(pg_catalog.now() + interval '1 month', 'YYYYMM')
                              and pc.relname <> c.relname || '_default')), '{}'::jsonb)
                         from pg_catalog.pg_partitioned_table p
                         join pg_catalog.pg_class c on c.oid = p.partrelid
                         join pg_catalog.pg_namespace n on n.oid = c.relnamespace
                         where n.nspname = 'public'),
    'scheduled_jobs', (select coalesce(jsonb_agg(jsonb_build_object('name', j.jobname, 'schedule', j.schedule,
                                                                     'active', j.active) order by j.jobname), '[]'::jsonb)
                       from cron.job j)
  )
$$;
comment on function public.system_healthcheck() is 'JSON summary: RLS coverage, connections, long queries, partitions ahead, cron jobs (service_role).';

grant execute on function public.get_table_sizes(), public.get_index_usage(), public.system_healthcheck() to service_role;


-- ===== Section 14: Scheduled jobs =====
-- pg_cron keeps partitions two months ahead. Later modules add their retention jobs here.

select private.ensure_monthly_partitions(1, 2);

select cron.schedule('partition-upkeep', '15 0 * * *', $$select private.ensure_monthly_partitions(1, 2)$$);
