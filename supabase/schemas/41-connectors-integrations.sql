-- Connectors: integration_providers (reference) and integrations.
-- Organization-level connections to external services; settings validated per provider, credentials in Vault.

-- Seed 000's integrations.platform, seed 002's user_integrations.provider and seed 004's integrations.type are the
-- provider. A user's own integrations live in their personal organization (DESIGN.md section 5), so there is one
-- table for both. Credentials are one Vault secret per integration holding a JSON object whose shape the provider's
-- auth kind fixes: oauth2 {access_token, refresh_token?}, api_key {api_key}, basic {username, password}.

create table public.integration_providers (
  key text not null,
  name text not null,
  auth_kind text not null,
  settings_schema jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  constraint integration_providers_pkey primary key (key),
  constraint integration_providers_key_format check (key ~ '^[a-z][a-z0-9_]{1,39}$'),
  constraint integration_providers_auth_kind_known check (auth_kind in ('oauth2', 'api_key', 'basic')),
  constraint integration_providers_settings_schema_object check (jsonb_typeof(settings_schema) = 'object')
);
comment on table public.integration_providers is 'Known external services (reference data created by this migration) with their auth kind and the settings they accept.';
comment on column public.integration_providers.settings_schema is 'Accepted settings: {"<key>": {"type": "string"|"number"|"boolean"|"array"|"object", "required": true?}}; any other key is rejected.';

insert into public.integration_providers (key, name, auth_kind, settings_schema) values
  ('slack', 'Slack', 'oauth2', '{"workspace": {"type": "string"}, "default_channel": {"type": "string"}}'),
  ('github', 'GitHub', 'oauth2', '{"organization": {"type": "string"}, "repositories": {"type": "array"}}'),
  ('gitlab', 'GitLab', 'oauth2', '{"base_url": {"type": "string"}, "group": {"type": "string"}}'),
  ('google_workspace', 'Google Workspace', 'oauth2', '{"domain": {"type": "string"}, "calendar_id": {"type": "string"}}'),
  ('microsoft_365', 'Microsoft 365', 'oauth2', '{"tenant_id": {"type": "string"}}'),
  ('notion', 'Notion', 'oauth2', '{"workspace": {"type": "string"}}'),
  ('jira', 'Jira', 'basic', '{"site_url": {"type": "string", "required": true}, "project_keys": {"type": "array"}}'),
  ('linear', 'Linear', 'api_key', '{"team_id": {"type": "string"}}'),
  ('asana', 'Asana', 'api_key', '{"workspace_gid": {"type": "string"}}'),
  ('zapier', 'Zapier', 'api_key', '{}');

create table public.integrations (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  created_by uuid default auth.uid(),
  provider text not null,
  display_name text not null,
  settings jsonb not null default '{}'::jsonb,
  scopes text[] not null default '{}',
  is_active boolean not null default true,
  token_expires_at timestamptz,
  last_sync_at timestamptz,
  last_error text,
  credentials_secret_id uuid,
  has_credentials boolean not null generated always as (credentials_secret_id is not null) stored,
  credentials_hint text,
  credentials_updated_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint integrations_pkey primary key (id),
  constraint integrations_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint integrations_created_by_fkey foreign key (created_by) references auth.users (id) on delete set null,
  constraint integrations_provider_fkey foreign key (provider) references public.integration_providers (key) on delete restrict,
  constraint integrations_credentials_secret_id_key unique (credentials_secret_id),
  constraint integrations_display_name_length check (char_length(btrim(display_name)) between 1 and 200),
  constraint integrations_settings_object check (jsonb_typeof(settings) = 'object'),
  constraint integrations_scopes_valid check (cardinality(scopes) <= 100 and array_position(scopes, null) is null),
  constraint integrations_last_error_length check (last_error is null or char_length(last_error) <= 2000),
  constraint integrations_hint_shape check (credentials_hint is null or char_length(credentials_hint) = 4),
  constraint integrations_credentials_consistent check (
    (credentials_secret_id is null) = (credentials_updated_at is null) and (credentials_secret_id is not null or credentials_hint is null))
);
comment on table public.integrations is 'An organization''s connection to an external service (a user''s own live in their personal organization). Credentials are in Vault; write them with set_integration_credentials().';
comment on column public.integrations.created_by is 'Who connected it (personal data: in export_my_data(); set null when the user is deleted).';
comment on column public.integrations.settings is 'Provider settings, validated against integration_providers.settings_schema.';
comment on column public.integrations.credentials_secret_id is 'Id of the Vault secret holding the credentials. Not selectable by API roles; the secret is deleted with the row.';
comment on column public.integrations.credentials_hint is 'Last four characters of an API key (api_key providers only), for recognising which key is set.';
comment on column public.integrations.token_expires_at is 'When the OAuth access token expires (set with the credentials).';

create index integrations_organization_id_idx on public.integrations (organization_id, provider);
create index integrations_created_by_idx on public.integrations (created_by);
create index integrations_provider_idx on public.integrations (provider);

-- Settings follow the provider's schema: only known keys, each of its declared JSON type, required keys present.
create function private.integration_settings_problem(provider_key text, settings jsonb) returns text
language sql stable
set search_path = ''
as $$
  select coalesce(
    (select format('unknown setting "%s" for provider %s', s.key, provider_key)
     from jsonb_each(settings) s
     where not (p.settings_schema ? s.key) limit 1),
    (select format('setting "%s" must be of type %s', s.key, p.settings_schema -> s.key ->> 'type')
     from jsonb_each(settings) s
     where jsonb_typeof(s.value) <> (p.settings_schema -> s.key ->> 'type') limit 1),
    (select format('setting "%s" is required for provider %s', r.key, provider_key)
     from jsonb_each(p.settings_schema) r
     where (r.value ->> 'required')::boolean and not (settings ? r.key) limit 1))
  from public.integration_providers p
  where p.key = provider_key
$$;
comment on function private.integration_settings_problem(text, jsonb) is 'Why settings do not fit the provider''s settings_schema, or null when they do.';

create function private.check_integration_settings() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  problem text := private.integration_settings_problem(new.provider, new.settings);
begin
  if problem is not null then
    raise exception '%', problem using errcode = '23514', constraint = 'integrations_settings_valid',
      hint = 'See integration_providers.settings_schema for the settings this provider accepts.';
  end if;
  return new;
end;
$$;

create trigger integrations_check_settings before insert or update of provider, settings on public.integrations
  for each row execute function private.check_integration_settings();
create trigger integrations_set_updated_at before update on public.integrations
  for each row execute function private.set_updated_at();
create trigger integrations_audit after insert or update or delete on public.integrations
  for each row execute function private.audit_row_change();
create trigger integrations_delete_secret after delete or update of credentials_secret_id on public.integrations
  for each row execute function private.delete_row_secret('credentials_secret_id');

alter table public.integration_providers enable row level security;
alter table public.integrations enable row level security;

-- integration_providers_select: every signed-in user may read the provider catalogue.
create policy integration_providers_select on public.integration_providers for select to authenticated
  using (true);
-- integrations_select: members holding integrations.read see their organization's integrations.
create policy integrations_select on public.integrations for select to authenticated
  using (organization_id in (select private.organizations_with_permission('integrations.read')));
-- integrations_insert: integrations.manage holders connect integrations in their organization.
create policy integrations_insert on public.integrations for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('integrations.manage')));
-- integrations_update: integrations.manage holders edit their organization's integrations (granted columns only).
create policy integrations_update on public.integrations for update to authenticated
  using (organization_id in (select private.organizations_with_permission('integrations.manage')))
  with check (organization_id in (select private.organizations_with_permission('integrations.manage')));
-- integrations_delete: integrations.manage holders remove integrations (their Vault secret goes with them).
create policy integrations_delete on public.integrations for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('integrations.manage')));

grant select on public.integration_providers to authenticated, service_role;
-- Every column but the secret id; created_by comes from the caller's JWT (column default).
grant select (id, organization_id, created_by, provider, display_name, settings, scopes, is_active, token_expires_at,
              last_sync_at, last_error, has_credentials, credentials_hint, credentials_updated_at, created_at, updated_at)
  on public.integrations to authenticated, service_role;
grant insert (organization_id, provider, display_name, settings, scopes, is_active) on public.integrations to authenticated;
grant update (display_name, settings, scopes, is_active) on public.integrations to authenticated;
grant delete on public.integrations to authenticated, service_role;
-- Sync workers (service role) record how a sync went.
grant update (is_active, token_expires_at, last_sync_at, last_error) on public.integrations to service_role;

-- The credentials' shape for an auth kind; raises 22023 naming what is wrong.
create function private.validate_credentials(auth_kind text, credentials jsonb) returns void
language plpgsql immutable
set search_path = ''
as $$
declare
  required_keys text[] := case auth_kind when 'oauth2' then array['access_token'] when 'api_key' then array['api_key']
                                         else array['username', 'password'] end;
  allowed_keys text[] := case auth_kind when 'oauth2' then array['access_token', 'refresh_token']
                                        else required_keys end;
  bad text;
begin
  if credentials is null or jsonb_typeof(credentials) <> 'object' then
    raise exception 'credentials must be a JSON object' using errcode = '22023';
  end if;
  select k into bad from jsonb_object_keys(credentials) k where k <> all (allowed_keys) limit 1;
  if bad is not null then
    raise exception 'unknown credential field "%" for auth kind %', bad, auth_kind using errcode = '22023',
      hint = format('Accepted fields: %s.', array_to_string(allowed_keys, ', '));
  end if;
  select k into bad from unnest(allowed_keys) k
  where (credentials ? k or k = any (required_keys))
    and (jsonb_typeof(credentials -> k) is distinct from 'string' or char_length(credentials ->> k) not between 1 and 8192)
  limit 1;
  if bad is not null then
    raise exception 'credential field "%" must be a non-empty string (at most 8192 characters)', bad using errcode = '22023';
  end if;
end;
$$;
comment on function private.validate_credentials(text, jsonb) is 'Checks a credentials object against its auth kind (oauth2, api_key, basic); raises 22023.';

-- Writes (or replaces) an integration's credentials. The caller needs integrations.manage in its organization.
create function public.set_integration_credentials(integration_id uuid, credentials jsonb,
                                                   token_expires_at timestamptz default null)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.integrations;
  kind text;
begin
  perform private.require_user();
  select i.* into target from public.integrations i where i.id = integration_id for update;
  if target.id is null or not private.has_permission(target.organization_id, 'integrations.read') then
    raise exception 'integration % not found', integration_id using errcode = 'P0002';
  end if;
  if not private.has_permission(target.organization_id, 'integrations.manage') then
    raise exception 'managing integrations needs integrations.manage' using errcode = '42501';
  end if;
  select p.auth_kind into kind from public.integration_providers p where p.key = target.provider;
  perform private.validate_credentials(kind, credentials);
  update public.integrations i
  set credentials_secret_id = private.vault_store(target.credentials_secret_id, credentials::text,
                                                  'integration:' || target.id, 'credentials of integration ' || target.id),
      credentials_hint = case when kind = 'api_key' then private.credential_hint(credentials ->> 'api_key') end,
      credentials_updated_at = pg_catalog.now(),
      token_expires_at = case when kind = 'oauth2' then set_integration_credentials.token_expires_at end,
      last_error = null
  where i.id = target.id;
end;
$$;
comment on function public.set_integration_credentials(uuid, jsonb, timestamptz) is 'Stores an integration''s credentials in Vault (oauth2 {access_token, refresh_token?}, api_key {api_key}, basic {username, password}); integrations.manage. Never returns them.';

create function public.clear_integration_credentials(integration_id uuid) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.integrations;
begin
  perform private.require_user();
  select i.* into target from public.integrations i where i.id = integration_id for update;
  if target.id is null or not private.has_permission(target.organization_id, 'integrations.read') then
    raise exception 'integration % not found', integration_id using errcode = 'P0002';
  end if;
  if not private.has_permission(target.organization_id, 'integrations.manage') then
    raise exception 'managing integrations needs integrations.manage' using errcode = '42501';
  end if;
  update public.integrations i
  set credentials_secret_id = null, credentials_hint = null, credentials_updated_at = null, token_expires_at = null
  where i.id = target.id;
end;
$$;
comment on function public.clear_integration_credentials(uuid) is 'Removes an integration''s credentials (the Vault secret is deleted); integrations.manage.';

-- The one way server code reads an integration's credentials: for a sync run. Audited.
create function public.integration_credentials_for_sync(integration_id uuid, reason text) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.integrations;
begin
  select i.* into target from public.integrations i where i.id = integration_id;
  if target.id is null or target.credentials_secret_id is null then
    raise exception 'integration % has no credentials', integration_id using errcode = 'P0002';
  end if;
  perform private.audit_credential_read(target.organization_id, 'integrations', target.id, 'integration_sync', reason);
  return private.vault_read(target.credentials_secret_id)::jsonb;
end;
$$;
comment on function public.integration_credentials_for_sync(uuid, text) is 'Decrypted credentials of an integration for a sync worker; service_role only; every call is an audit_logs credential_read entry.';

grant execute on function public.set_integration_credentials(uuid, jsonb, timestamptz),
  public.clear_integration_credentials(uuid) to authenticated;
grant execute on function public.integration_credentials_for_sync(uuid, text) to service_role;
grant execute on function private.integration_settings_problem(text, jsonb) to authenticated, service_role;
