-- Supabase platform shim: what Supabase's Postgres image and Auth service provide before any project migration
-- runs, reproduced for a plain PostgreSQL server. Applied by scripts/db.sh before `supabase db push`.
-- It is NOT part of the project's migrations: on Supabase (Cloud or `supabase start`) all of this already exists,
-- and the migrations must run there unchanged. Keep it faithful: same names, same definitions, same grants.

-- ===== Roles =====
-- anon / authenticated / service_role are the roles PostgREST switches to per request; authenticator is the login
-- role PostgREST connects as. service_role bypasses RLS (but not grants).
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then create role anon nologin noinherit; end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then create role authenticated nologin noinherit; end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then create role service_role nologin noinherit bypassrls; end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticator') then create role authenticator login noinherit; end if;
  if not exists (select 1 from pg_roles where rolname = 'supabase_auth_admin') then create role supabase_auth_admin nologin noinherit createrole; end if;
end $$;

grant anon, authenticated, service_role to authenticator;
grant anon, authenticated, service_role to postgres;

-- PostgREST's statement timeouts per role (Supabase defaults).
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';

-- ===== Schemas =====
create schema if not exists extensions;
create schema if not exists auth authorization supabase_auth_admin;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
grant usage on schema auth to postgres, anon, authenticated, service_role;
grant usage on schema public to postgres, anon, authenticated, service_role;

alter database postgres set search_path = "$user", public, extensions;

-- Supabase installs these in `extensions` from the start.
create extension if not exists pgcrypto with schema extensions;
create extension if not exists "uuid-ossp" with schema extensions;

-- ===== Supabase's default privileges on public =====
-- Supabase grants every role in the API everything on objects postgres creates in public; RLS is the gate.
-- (The project's migration tightens this; the shim reproduces the platform as it is.)
alter default privileges for role postgres in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on sequences to anon, authenticated, service_role;

-- ===== auth: JWT accessors (Supabase Auth's exact definitions) =====
create or replace function auth.uid() returns uuid
language sql stable
as $$
  select
    coalesce(
      nullif(current_setting('request.jwt.claim.sub', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid
$$;
comment on function auth.uid() is 'Deprecated. Use auth.jwt() -> ''sub'' instead.';

create or replace function auth.role() returns text
language sql stable
as $$
  select
    coalesce(
      nullif(current_setting('request.jwt.claim.role', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
    )::text
$$;
comment on function auth.role() is 'Deprecated. Use auth.jwt() -> ''role'' instead.';

create or replace function auth.email() returns text
language sql stable
as $$
  select
    coalesce(
      nullif(current_setting('request.jwt.claim.email', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
    )::text
$$;
comment on function auth.email() is 'Deprecated. Use auth.jwt() -> ''email'' instead.';

create or replace function auth.jwt() returns jsonb
language sql stable
as $$
  select
    coalesce(
      nullif(current_setting('request.jwt.claim', true), ''),
      nullif(current_setting('request.jwt.claims', true), '')
    )::jsonb
$$;

alter function auth.uid() owner to supabase_auth_admin;
alter function auth.role() owner to supabase_auth_admin;
alter function auth.email() owner to supabase_auth_admin;
alter function auth.jwt() owner to supabase_auth_admin;
grant execute on function auth.uid(), auth.role(), auth.email(), auth.jwt() to public;

-- ===== auth tables (the columns of GoTrue's schema that apps, triggers and seeds use) =====
create table if not exists auth.users (
  instance_id uuid,
  id uuid not null primary key,
  aud varchar(255),
  role varchar(255),
  email varchar(255),
  encrypted_password varchar(255),
  email_confirmed_at timestamptz,
  invited_at timestamptz,
  confirmation_token varchar(255),
  confirmation_sent_at timestamptz,
  recovery_token varchar(255),
  recovery_sent_at timestamptz,
  email_change varchar(255),
  email_change_sent_at timestamptz,
  last_sign_in_at timestamptz,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  is_super_admin boolean,
  created_at timestamptz,
  updated_at timestamptz,
  phone text unique default null,
  phone_confirmed_at timestamptz,
  phone_change text default '',
  banned_until timestamptz,
  reauthentication_sent_at timestamptz,
  is_sso_user boolean not null default false,
  deleted_at timestamptz,
  is_anonymous boolean not null default false
);
create index if not exists users_instance_id_idx on auth.users (instance_id);
create unique index if not exists users_email_partial_key on auth.users (email) where is_sso_user = false;

create table if not exists auth.identities (
  provider_id text not null,
  user_id uuid not null references auth.users (id) on delete cascade,
  identity_data jsonb not null,
  provider text not null,
  last_sign_in_at timestamptz,
  created_at timestamptz,
  updated_at timestamptz,
  email text generated always as (lower(identity_data ->> 'email')) stored,
  id uuid not null default gen_random_uuid() primary key,
  constraint identities_provider_id_provider_unique unique (provider_id, provider)
);
create index if not exists identities_user_id_idx on auth.identities (user_id);

create table if not exists auth.sessions (
  id uuid not null primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  created_at timestamptz,
  updated_at timestamptz,
  aal text,
  not_after timestamptz
);
create index if not exists sessions_user_id_idx on auth.sessions (user_id);

create table if not exists auth.mfa_factors (
  id uuid not null primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  friendly_name text,
  factor_type text not null,
  status text not null,
  created_at timestamptz not null,
  updated_at timestamptz not null
);
create index if not exists mfa_factors_user_id_idx on auth.mfa_factors (user_id);

alter table auth.users owner to supabase_auth_admin;
alter table auth.identities owner to supabase_auth_admin;
alter table auth.sessions owner to supabase_auth_admin;
alter table auth.mfa_factors owner to supabase_auth_admin;

-- Supabase lets the dashboard role (postgres) read and write auth tables; API roles get nothing here.
grant all on all tables in schema auth to postgres;
grant all on schema auth to postgres;

-- ===== vault: Supabase Vault (supabase_vault 0.3.x), a stand-in =====
-- On Supabase the `supabase_vault` extension provides this schema: `vault.secrets` holds authenticated ciphertext,
-- `vault.decrypted_secrets` decrypts on read, `vault.create_secret()` / `vault.update_secret()` write. The key lives
-- outside the database (libsodium's server key). This stand-in keeps the same names, columns, signatures and
-- privileges (the dashboard role postgres only; no API role may use the schema) and does the same job with pgcrypto:
-- AES-256-CBC under a random IV (the `nonce` column), then HMAC-SHA256 over (id, nonce, ciphertext), so a ciphertext
-- moved to another row or altered fails to decrypt. The root key is a file in the server's data directory
-- (vault_root.key, mode 0600, created once per cluster), readable only by superusers through pg_read_file(): it is in
-- no table, so a dump, a replica of the tables or a role without superuser never sees it. Unlike Vault 0.3, which
-- inserts the plaintext and then overwrites it, create_secret() encrypts before the row is written.
create schema if not exists vault;
revoke all on schema vault from public;
grant usage on schema vault to postgres;

do $$
begin
  if pg_stat_file('vault_root.key', true) is null then
    execute format('copy (select %L) to %L', encode(extensions.gen_random_bytes(32), 'hex'),
                   current_setting('data_directory') || '/vault_root.key');
  end if;
end $$;

create or replace function vault._root_key() returns bytea
language sql stable
set search_path = ''
as $$ select decode(btrim(pg_catalog.pg_read_file('vault_root.key'), E' \n\r\t'), 'hex') $$;

create or replace function vault._crypto_aead_det_noncegen() returns bytea
language sql volatile
set search_path = ''
as $$ select extensions.gen_random_bytes(16) $$;

create or replace function vault._encrypt(message text, secret_id uuid, nonce bytea) returns text
language plpgsql stable
set search_path = ''
as $$
declare
  root bytea := vault._root_key();
  ciphertext bytea := extensions.encrypt_iv(convert_to(message, 'utf8'),
    extensions.hmac('vault-encryption'::bytea, root, 'sha256'), nonce, 'aes-cbc/pad:pkcs');
begin
  return encode(ciphertext || extensions.hmac(convert_to(secret_id::text, 'utf8') || nonce || ciphertext,
                                              extensions.hmac('vault-authentication'::bytea, root, 'sha256'), 'sha256'),
                'base64');
end;
$$;

create or replace function vault._decrypt(secret text, secret_id uuid, nonce bytea) returns text
language plpgsql stable
set search_path = ''
as $$
declare
  root bytea := vault._root_key();
  raw bytea := decode(secret, 'base64');
  ciphertext bytea := substring(raw from 1 for length(raw) - 32);
begin
  if length(raw) < 48 or substring(raw from length(raw) - 31) <> extensions.hmac(
       convert_to(secret_id::text, 'utf8') || nonce || ciphertext,
       extensions.hmac('vault-authentication'::bytea, root, 'sha256'), 'sha256') then
    raise exception 'vault secret % failed authentication', secret_id using errcode = '39000';
  end if;
  return convert_from(extensions.decrypt_iv(ciphertext, extensions.hmac('vault-encryption'::bytea, root, 'sha256'),
                                            nonce, 'aes-cbc/pad:pkcs'), 'utf8');
end;
$$;

create table if not exists vault.secrets (
  id uuid primary key default gen_random_uuid(),
  name text,
  description text not null default '',
  secret text not null,
  key_id uuid,
  nonce bytea default vault._crypto_aead_det_noncegen(),
  created_at timestamptz not null default current_timestamp,
  updated_at timestamptz not null default current_timestamp
);
comment on table vault.secrets is 'Table with encrypted `secret` column for storing sensitive information on disk.';
create unique index if not exists secrets_name_idx on vault.secrets using btree (name) where name is not null;

create or replace view vault.decrypted_secrets as
select s.id, s.name, s.description, s.secret, vault._decrypt(s.secret, s.id, s.nonce) as decrypted_secret,
       s.key_id, s.nonce, s.created_at, s.updated_at
from vault.secrets s;

create or replace function vault.create_secret(new_secret text, new_name text = null, new_description text = '',
                                               new_key_id uuid = null)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  new_id uuid := gen_random_uuid();
  new_nonce bytea := vault._crypto_aead_det_noncegen();
begin
  insert into vault.secrets (id, secret, name, description, nonce)
  values (new_id, vault._encrypt(new_secret, new_id, new_nonce), new_name, coalesce(new_description, ''), new_nonce);
  return new_id;
end;
$$;

create or replace function vault.update_secret(secret_id uuid, new_secret text = null, new_name text = null,
                                               new_description text = null, new_key_id uuid = null)
returns void
language plpgsql
set search_path = ''
as $$
declare
  new_nonce bytea := vault._crypto_aead_det_noncegen();
begin
  update vault.secrets s
  set secret = case when new_secret is null then s.secret else vault._encrypt(new_secret, s.id, new_nonce) end,
      nonce = case when new_secret is null then s.nonce else new_nonce end,
      name = coalesce(new_name, s.name),
      description = coalesce(new_description, s.description),
      updated_at = now()
  where s.id = secret_id;
end;
$$;

revoke all on all functions in schema vault from public;
revoke all on all tables in schema vault from public, anon, authenticated, service_role;
grant select, delete on vault.secrets, vault.decrypted_secrets to postgres;
grant execute on function vault.create_secret(text, text, text, uuid), vault.update_secret(uuid, text, text, text, uuid)
  to postgres;

-- ---------------------------------------------------------------------------------------------------------------
-- Workflows (issue 11): Supabase Realtime's publication. On Supabase it always exists (realtime streams the tables
-- added to it); locally nothing consumes it, but the migration adds tables to it, so create it where it is missing
-- (quietly: without wal_level = logical PostgreSQL warns that nothing can subscribe yet).
set client_min_messages = error;
do $$
begin
  if not exists (select 1 from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end;
$$;
reset client_min_messages;
