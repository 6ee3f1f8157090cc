-- Connectors: ai_provider_configs.
-- An organization's AI providers (openai, anthropic, google, local): endpoint, default model, budget; API key in Vault.

-- Seed 004's AIProviderConfigs. At most one default per organization (a partial unique index); the monthly budget is
-- enforced by the workflow engine. Members see the configurations (never a key); ai_agents.manage holders change them.

create table public.ai_provider_configs (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  name text not null,
  provider text not null,
  base_url public.http_url,
  default_model text not null,
  monthly_budget_usd numeric(12, 2),
  is_default boolean not null default false,
  credentials_secret_id uuid,
  has_credentials boolean not null generated always as (credentials_secret_id is not null) stored,
  credentials_hint text,
  credentials_updated_at timestamptz,
  created_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint ai_provider_configs_pkey primary key (id),
  constraint ai_provider_configs_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint ai_provider_configs_created_by_fkey foreign key (created_by) references auth.users (id) on delete set null,
  constraint ai_provider_configs_credentials_secret_id_key unique (credentials_secret_id),
  constraint ai_provider_configs_name_unique unique (organization_id, name),
  constraint ai_provider_configs_provider_known check (provider in ('openai', 'anthropic', 'google', 'local')),
  constraint ai_provider_configs_local_has_base_url check (provider <> 'local' or base_url is not null),
  constraint ai_provider_configs_name_length check (char_length(btrim(name)) between 1 and 100),
  constraint ai_provider_configs_default_model_length check (char_length(btrim(default_model)) between 1 and 200),
  constraint ai_provider_configs_budget_not_negative check (monthly_budget_usd is null or monthly_budget_usd >= 0),
  constraint ai_provider_configs_hint_shape check (credentials_hint is null or char_length(credentials_hint) = 4),
  constraint ai_provider_configs_credentials_consistent check (
    (credentials_secret_id is null) = (credentials_updated_at is null) and (credentials_secret_id is not null or credentials_hint is null))
);
comment on table public.ai_provider_configs is 'AI provider settings of an organization (seed 004). The API key is in Vault: set it with set_ai_provider_api_key().';
comment on column public.ai_provider_configs.base_url is 'Endpoint override (required for local providers; null means the provider''s public API).';
comment on column public.ai_provider_configs.monthly_budget_usd is 'Spending cap per calendar month (UTC) in USD; null is unlimited. Enforced by the workflow engine.';
comment on column public.ai_provider_configs.is_default is 'The organization''s default provider; at most one per organization (partial unique index).';
comment on column public.ai_provider_configs.credentials_secret_id is 'Id of the Vault secret holding the API key. Not selectable by API roles; the secret is deleted with the row.';
comment on column public.ai_provider_configs.credentials_hint is 'Last four characters of the API key.';

create unique index ai_provider_configs_one_default on public.ai_provider_configs (organization_id) where is_default;
create index ai_provider_configs_created_by_idx on public.ai_provider_configs (created_by);

create trigger ai_provider_configs_set_updated_at before update on public.ai_provider_configs
  for each row execute function private.set_updated_at();
create trigger ai_provider_configs_audit after insert or update or delete on public.ai_provider_configs
  for each row execute function private.audit_row_change();
create trigger ai_provider_configs_delete_secret after delete or update of credentials_secret_id on public.ai_provider_configs
  for each row execute function private.delete_row_secret('credentials_secret_id');

alter table public.ai_provider_configs enable row level security;

-- ai_provider_configs_select: members see their organization's AI provider settings (never a key).
create policy ai_provider_configs_select on public.ai_provider_configs for select to authenticated
  using (organization_id in (select private.user_organization_ids()));
-- ai_provider_configs_insert: ai_agents.manage holders add providers.
create policy ai_provider_configs_insert on public.ai_provider_configs for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('ai_agents.manage')));
-- ai_provider_configs_update: ai_agents.manage holders edit them (granted columns only).
create policy ai_provider_configs_update on public.ai_provider_configs for update to authenticated
  using (organization_id in (select private.organizations_with_permission('ai_agents.manage')))
  with check (organization_id in (select private.organizations_with_permission('ai_agents.manage')));
-- ai_provider_configs_delete: ai_agents.manage holders remove them (the API key goes with them).
create policy ai_provider_configs_delete on public.ai_provider_configs for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('ai_agents.manage')));

grant select (id, organization_id, name, provider, base_url, default_model, monthly_budget_usd, is_default,
              has_credentials, credentials_hint, credentials_updated_at, created_by, created_at, updated_at)
  on public.ai_provider_configs to authenticated, service_role;
grant insert (organization_id, name, provider, base_url, default_model, monthly_budget_usd, is_default)
  on public.ai_provider_configs to authenticated;
grant update (name, base_url, default_model, monthly_budget_usd, is_default) on public.ai_provider_configs to authenticated;
grant delete on public.ai_provider_configs to authenticated, service_role;

create function private.require_ai_provider_manager(config_id uuid) returns public.ai_provider_configs
language plpgsql stable
set search_path = ''
as $$
declare
  target public.ai_provider_configs;
begin
  perform private.require_user();
  select c.* into target from public.ai_provider_configs c where c.id = config_id;
  if target.id is null or target.organization_id not in (select private.user_organization_ids()) then
    raise exception 'AI provider configuration % not found', config_id using errcode = 'P0002';
  end if;
  if not private.has_permission(target.organization_id, 'ai_agents.manage') then
    raise exception 'changing AI provider settings needs ai_agents.manage' using errcode = '42501';
  end if;
  return target;
end;
$$;

create function public.set_ai_provider_api_key(config_id uuid, api_key text) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.ai_provider_configs := private.require_ai_provider_manager(config_id);
begin
  if api_key is null or char_length(api_key) not between 8 and 4096 or api_key ~ '\s' then
    raise exception 'an API key is 8-4096 characters without whitespace' using errcode = '22023';
  end if;
  update public.ai_provider_configs c
  set credentials_secret_id = private.vault_store(target.credentials_secret_id, api_key, 'ai_provider_config:' || target.id,
                                                  'API key of AI provider configuration ' || target.id),
      credentials_hint = private.credential_hint(api_key),
      credentials_updated_at = pg_catalog.now()
  where c.id = target.id;
end;
$$;
comment on function public.set_ai_provider_api_key(uuid, text) is 'Stores (or replaces) the API key of an AI provider configuration in Vault; ai_agents.manage. Never returns it.';

create function public.clear_ai_provider_api_key(config_id uuid) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.ai_provider_configs := private.require_ai_provider_manager(config_id);
begin
  update public.ai_provider_configs c
  set credentials_secret_id = null, credentials_hint = null, credentials_updated_at = null
  where c.id = target.id;
end;
$$;
comment on function public.clear_ai_provider_api_key(uuid) is 'Removes the API key of an AI provider configuration (the Vault secret is deleted); ai_agents.manage.';

-- The one way server code reads an AI provider key: to call the provider for a request. Audited.
create function public.ai_provider_api_key_for_request(config_id uuid, reason text) returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.ai_provider_configs;
begin
  select c.* into target from public.ai_provider_configs c where c.id = config_id;
  if target.id is null or target.credentials_secret_id is null then
    raise exception 'AI provider configuration % has no API key', config_id using errcode = 'P0002';
  end if;
  perform private.audit_credential_read(target.organization_id, 'ai_provider_configs', target.id, 'ai_request', reason);
  return private.vault_read(target.credentials_secret_id);
end;
$$;
comment on function public.ai_provider_api_key_for_request(uuid, text) is 'Decrypted API key of an AI provider configuration for a call to the provider; service_role only; every call is an audit_logs credential_read entry.';

grant execute on function public.set_ai_provider_api_key(uuid, text), public.clear_ai_provider_api_key(uuid)
  to authenticated;
grant execute on function public.ai_provider_api_key_for_request(uuid, text) to service_role;
