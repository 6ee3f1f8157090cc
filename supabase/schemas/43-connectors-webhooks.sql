-- Connectors: webhook_event_types (reference) and webhooks.
-- Outgoing webhook endpoints of an organization: URL, subscribed events, extra headers; signing secret in Vault.

-- Seed 004's webhooks, organization-level or of one project (project_id, added in 57-work-automations.sql). Deliveries are
-- signed per the Standard Webhooks specification with the endpoint's secret (`whsec_` + base64 of 24-64 random
-- bytes), which lives in Vault; the webhook-dispatcher edge function reads it through claim_webhook_deliveries().

create table public.webhook_event_types (
  key text not null,
  description text not null,
  created_at timestamptz not null default now(),
  constraint webhook_event_types_pkey primary key (key),
  constraint webhook_event_types_key_format check (key ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$')
);
comment on table public.webhook_event_types is 'Business events a webhook may subscribe to (reference data; each domain adds its own with its migration).';

insert into public.webhook_event_types (key, description) values
  ('webhook.test', 'A test event sent on request (send_test_webhook)'),
  ('integration.connected', 'An integration was added to the organization'),
  ('integration.disconnected', 'An integration was removed from the organization'),
  ('integration.credentials_updated', 'An integration''s credentials were set, replaced or removed');

-- Extra headers: an object of string values with token names, never Authorization, the hop-by-hop headers, or a
-- header the dispatcher itself sets (framing, content type, the Standard Webhooks signature headers).
create function private.webhook_headers_allowed(headers jsonb) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select jsonb_typeof(headers) = 'object'
     and (select count(*) from jsonb_object_keys(headers)) <= 20
     and not exists (
       select 1 from jsonb_each(headers) h
       where h.key !~ '^[A-Za-z0-9!#$%&''*+.^_`|~-]{1,64}$'
          or jsonb_typeof(h.value) <> 'string'
          or char_length(h.value #>> '{}') > 1024
          or (h.value #>> '{}') ~ '[\r\n\x00]'
          or lower(h.key) in ('authorization', 'proxy-authorization', 'proxy-authenticate', 'connection', 'keep-alive',
                              'te', 'trailer', 'trailers', 'transfer-encoding', 'upgrade', 'host', 'content-length',
                              'content-type', 'cookie', 'webhook-id', 'webhook-timestamp', 'webhook-signature'))
$$;
comment on function private.webhook_headers_allowed(jsonb) is 'True when extra webhook headers are string values with token names, none of them Authorization, hop-by-hop or set by the dispatcher.';

create table public.webhooks (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  name text not null,
  url public.http_url not null,
  events text[] not null,
  headers jsonb not null default '{}'::jsonb,
  is_enabled boolean not null default true,
  failure_count integer not null default 0,
  last_triggered_at timestamptz,
  disabled_reason text,
  credentials_secret_id uuid not null,
  has_credentials boolean not null generated always as (credentials_secret_id is not null) stored,
  credentials_updated_at timestamptz not null default now(),
  created_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint webhooks_pkey primary key (id),
  constraint webhooks_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint webhooks_created_by_fkey foreign key (created_by) references auth.users (id) on delete set null,
  constraint webhooks_credentials_secret_id_key unique (credentials_secret_id),
  constraint webhooks_name_length check (char_length(btrim(name)) between 1 and 200),
  constraint webhooks_events_not_empty check (cardinality(events) between 1 and 100 and array_position(events, null) is null),
  constraint webhooks_headers_allowed check (private.webhook_headers_allowed(headers)),
  constraint webhooks_failure_count_not_negative check (failure_count >= 0),
  constraint webhooks_disabled_reason_length check (disabled_reason is null or char_length(disabled_reason) <= 500)
);
comment on table public.webhooks is 'Outgoing webhook endpoints (seed 004), signed per Standard Webhooks. Create with create_webhook(); edit url, events, headers, is_enabled directly.';
comment on column public.webhooks.events is 'Subscribed event types (keys of webhook_event_types).';
comment on column public.webhooks.headers is 'Extra request headers; Authorization, hop-by-hop and signature headers are refused (webhooks_headers_allowed).';
comment on column public.webhooks.failure_count is 'Consecutive dead deliveries (every retry failed) since the last success; at 5 the webhook is disabled.';
comment on column public.webhooks.disabled_reason is 'Why the dispatcher disabled the webhook; cleared when it is enabled again.';
comment on column public.webhooks.credentials_secret_id is 'Id of the Vault secret holding the signing secret. Not selectable by API roles; the secret is deleted with the row.';
comment on column public.webhooks.credentials_updated_at is 'When the signing secret was last set (there is no hint: the secret is random).';

create index webhooks_organization_id_idx on public.webhooks (organization_id);
create index webhooks_created_by_idx on public.webhooks (created_by);
create index webhooks_events_idx on public.webhooks using gin (events);

-- Event types must exist; re-enabling a webhook starts its failure count afresh.
create function private.prepare_webhook() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  unknown text;
begin
  select e into unknown from unnest(new.events) e
  where not exists (select 1 from public.webhook_event_types t where t.key = e) limit 1;
  if unknown is not null then
    raise exception 'unknown event type "%"', unknown using errcode = '23514', constraint = 'webhooks_events_known',
      hint = 'Subscribe to keys of webhook_event_types.';
  end if;
  new.events := (select array_agg(distinct e order by e) from unnest(new.events) e);
  if tg_op = 'UPDATE' and new.is_enabled and not old.is_enabled then
    new.failure_count := 0;
    new.disabled_reason := null;
  end if;
  return new;
end;
$$;

create trigger webhooks_prepare before insert or update on public.webhooks
  for each row execute function private.prepare_webhook();
create trigger webhooks_set_updated_at before update on public.webhooks
  for each row execute function private.set_updated_at();
create trigger webhooks_audit after insert or update or delete on public.webhooks
  for each row execute function private.audit_row_change();
create trigger webhooks_delete_secret after delete or update of credentials_secret_id on public.webhooks
  for each row execute function private.delete_row_secret('credentials_secret_id');

alter table public.webhook_event_types enable row level security;
alter table public.webhooks enable row level security;

-- webhook_event_types_select: every signed-in user may read the event catalogue.
create policy webhook_event_types_select on public.webhook_event_types for select to authenticated
  using (true);
-- webhooks_select, webhooks_update, webhooks_delete: narrowed in 57-work-automations.sql (alter policy) so that a
-- project's webhook is seen only by those who read the project and changed only by those who edit it.
-- webhooks_select: webhooks.manage holders see their organization's webhooks.
create policy webhooks_select on public.webhooks for select to authenticated
  using (organization_id in (select private.organizations_with_permission('webhooks.manage')));
-- webhooks_update: webhooks.manage holders edit them (granted columns only).
create policy webhooks_update on public.webhooks for update to authenticated
  using (organization_id in (select private.organizations_with_permission('webhooks.manage')))
  with check (organization_id in (select private.organizations_with_permission('webhooks.manage')));
-- webhooks_delete: webhooks.manage holders remove them (the signing secret and queued deliveries go with them).
create policy webhooks_delete on public.webhooks for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('webhooks.manage')));

grant select on public.webhook_event_types to authenticated, service_role;
grant select (id, organization_id, name, url, events, headers, is_enabled, failure_count, last_triggered_at,
              disabled_reason, has_credentials, credentials_updated_at, created_by, created_at, updated_at)
  on public.webhooks to authenticated, service_role;
grant update (name, url, events, headers, is_enabled) on public.webhooks to authenticated;
grant delete on public.webhooks to authenticated, service_role;

-- A Standard Webhooks secret: whsec_ + base64 of 24-64 bytes.
create function private.validate_webhook_secret(signing_secret text) returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if signing_secret is null or signing_secret !~ '^whsec_[A-Za-z0-9+/]+={0,2}$'
     or char_length(signing_secret) - 6 not between 32 and 88 or (char_length(signing_secret) - 6) % 4 <> 0 then
    raise exception 'a signing secret is whsec_ followed by the base64 of 24-64 random bytes' using errcode = '22023',
      hint = 'For example: whsec_$(openssl rand -base64 32).';
  end if;
end;
$$;

-- A project's webhooks are managed only by those who can also edit the project (not found unless they read it).
create function private.require_webhook_manager(organization uuid, project uuid default null) returns void
language plpgsql stable
set search_path = ''
as $$
begin
  perform private.require_user();
  if organization is null or organization not in (select private.user_organization_ids())
     or (project is not null and not private.can_read_project(project)) then
    raise exception 'organization % not found', organization using errcode = 'P0002';
  end if;
  if not private.has_permission(organization, 'webhooks.manage') then
    raise exception 'managing webhooks needs webhooks.manage' using errcode = '42501';
  end if;
  if project is not null and not private.can_edit_project(project) then
    raise exception 'managing a project''s webhooks needs editing the project' using errcode = '42501';
  end if;
end;
$$;

-- project_id: a webhook of that project (its events only); the column is added in 57-work-automations.sql.
create function public.create_webhook(organization_id uuid, name text, url text, events text[], signing_secret text,
                                      headers jsonb default '{}'::jsonb, project_id uuid default null)
returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  new_id uuid := gen_random_uuid();
begin
  perform private.require_webhook_manager(create_webhook.organization_id, create_webhook.project_id);
  perform private.validate_webhook_secret(signing_secret);
  insert into public.webhooks (id, organization_id, project_id, name, url, events, headers, credentials_secret_id, created_by)
  values (new_id, create_webhook.organization_id, create_webhook.project_id, create_webhook.name, create_webhook.url,
          create_webhook.events, coalesce(create_webhook.headers, '{}'::jsonb),
          private.vault_store(null, signing_secret, 'webhook:' || new_id, 'signing secret of webhook ' || new_id),
          (select auth.uid()));
  return new_id;
end;
$$;
comment on function public.create_webhook(uuid, text, text, text[], text, jsonb, uuid) is 'Creates a webhook with its Standard Webhooks signing secret (stored in Vault); webhooks.manage, and editing the project for a project''s webhook (project_id). Returns its id.';

create function public.set_webhook_signing_secret(webhook_id uuid, signing_secret text) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.webhooks;
begin
  select w.* into target from public.webhooks w where w.id = webhook_id for update;
  perform private.require_webhook_manager(target.organization_id, target.project_id);
  perform private.validate_webhook_secret(signing_secret);
  perform private.vault_store(target.credentials_secret_id, signing_secret, 'webhook:' || target.id,
                              'signing secret of webhook ' || target.id);
  update public.webhooks w set credentials_updated_at = pg_catalog.now() where w.id = target.id;
end;
$$;
comment on function public.set_webhook_signing_secret(uuid, text) is 'Replaces a webhook''s signing secret (rotation); webhooks.manage. Never returns it.';

grant execute on function public.create_webhook(uuid, text, text, text[], text, jsonb, uuid),
  public.set_webhook_signing_secret(uuid, text) to authenticated;
grant execute on function private.webhook_headers_allowed(jsonb) to authenticated, service_role;
