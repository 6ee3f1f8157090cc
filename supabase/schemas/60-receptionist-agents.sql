-- AI receptionist: the `agent` role and `receptionist.operate`, ai_agents, their API keys, the receptionist events.
-- An agent is an auth.users row and a member of its organization; it calls the receptionist edge function with a key.

-- Reference data. `agent` ranks between viewer (10) and member (50): it reads the receptionist module and writes
-- conversations, messages and appointments (receptionist.operate), never services, staff or settings.
insert into public.permissions (key, description) values
  ('receptionist.operate', 'Write conversations, messages and appointments (what an AI receptionist does on a call)');

insert into public.roles (organization_id, key, name, description, rank) values
  (null, 'agent', 'AI agent', 'An AI receptionist: reads the receptionist module, books appointments and records calls', 30);

-- `agent` becomes a reserved key like the other system roles.
alter table public.roles drop constraint roles_custom_key_not_reserved;
alter table public.roles add constraint roles_custom_key_not_reserved
  check (organization_id is null or key not in ('owner', 'admin', 'member', 'viewer', 'agent'));

insert into public.role_permissions (role_id, permission_key)
select r.id, p.key
from public.roles r
join public.permissions p on p.key = 'receptionist.operate'
where r.organization_id is null and r.key in ('owner', 'admin', 'member', 'agent')
union all
select r.id, 'receptionist.read' from public.roles r where r.organization_id is null and r.key = 'agent';

insert into public.webhook_event_types (key, description) values
  ('call.started', 'A receptionist conversation (call, chat) started'),
  ('call.ended', 'A receptionist conversation ended'),
  ('message.received', 'An inbound message (SMS, e-mail, chat) was recorded'),
  ('message.sent', 'An outbound message was handed to its provider'),
  ('message.delivered', 'An outbound message was delivered'),
  ('message.failed', 'An outbound message failed'),
  ('appointment.booked', 'An appointment was booked'),
  ('appointment.rescheduled', 'An appointment moved to another time or staff member'),
  ('appointment.confirmed', 'An appointment was confirmed'),
  ('appointment.cancelled', 'An appointment was cancelled'),
  ('appointment.completed', 'An appointment took place'),
  ('appointment.no_show', 'The client did not come');

create function private.is_valid_agent_capabilities(capabilities jsonb) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select jsonb_typeof(capabilities) = 'array'
     and not exists (select 1 from jsonb_array_elements(capabilities) c
                     where jsonb_typeof(c) <> 'string'
                        or c #>> '{}' not in ('phone_answering', 'appointment_booking', 'information_providing', 'sms_follow_up'))
$$;
comment on function private.is_valid_agent_capabilities(jsonb) is 'True when capabilities is an array of phone_answering, appointment_booking, information_providing, sms_follow_up.';
grant execute on function private.is_valid_agent_capabilities(jsonb) to authenticated, service_role;

create table public.ai_agents (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  user_id uuid,
  name text not null,
  voice_id text,
  language text not null default 'pl',
  personality_traits jsonb not null default '{}'::jsonb,
  knowledge_base jsonb not null default '{}'::jsonb,
  capabilities jsonb not null default '["phone_answering", "appointment_booking", "information_providing"]'::jsonb,
  status text not null default 'active',
  phone_number public.phone_number,
  sms_enabled boolean not null default true,
  calendar_integration_id uuid,
  created_by uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  constraint ai_agents_pkey primary key (id),
  constraint ai_agents_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint ai_agents_user_id_fkey foreign key (user_id) references auth.users (id) on delete set null,
  constraint ai_agents_calendar_integration_id_fkey foreign key (calendar_integration_id) references public.integrations (id) on delete set null,
  constraint ai_agents_created_by_fkey foreign key (created_by) references auth.users (id) on delete set null,
  constraint ai_agents_user_id_key unique (user_id),
  constraint ai_agents_name_length check (char_length(btrim(name)) between 1 and 200),
  constraint ai_agents_voice_id_length check (voice_id is null or char_length(voice_id) <= 255),
  constraint ai_agents_language_bcp47 check (language ~ '^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$'),
  constraint ai_agents_personality_traits_object check (jsonb_typeof(personality_traits) = 'object'),
  constraint ai_agents_knowledge_base_object check (jsonb_typeof(knowledge_base) = 'object'),
  constraint ai_agents_capabilities_known check (private.is_valid_agent_capabilities(capabilities)),
  constraint ai_agents_status_known check (status in ('active', 'inactive', 'training', 'error')),
  constraint ai_agents_live_has_identity check (deleted_at is not null or user_id is not null)
);
comment on table public.ai_agents is 'AI receptionists (seed 003). Each live agent is an auth.users row (app_metadata.agent) and a member with the system role agent; create with create_ai_agent(); soft-deleting or deleting the agent removes that identity and its keys.';
comment on column public.ai_agents.user_id is 'The agent''s auth.users identity (set by create_ai_agent, cleared when the agent is deleted).';
comment on column public.ai_agents.calendar_integration_id is 'The seed''s calendar_integration: the organization''s calendar integration the agent books into.';
comment on column public.ai_agents.language is 'BCP 47 language tag, e.g. pl, en-GB.';
comment on column public.ai_agents.phone_number is 'E.164; unique among agents not deleted.';

create unique index ai_agents_phone_number_key on public.ai_agents (phone_number) where deleted_at is null;
create index ai_agents_organization_id_idx on public.ai_agents (organization_id) where deleted_at is null;
create index ai_agents_organization_id_all_idx on public.ai_agents (organization_id);
create index ai_agents_calendar_integration_id_idx on public.ai_agents (calendar_integration_id);
create index ai_agents_created_by_idx on public.ai_agents (created_by);

-- The calendar integration must be one of the agent's organization.
create function private.check_ai_agent() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.calendar_integration_id is not null and not exists (
       select 1 from public.integrations i where i.id = new.calendar_integration_id and i.organization_id = new.organization_id) then
    raise exception 'integration % does not belong to the agent''s organization', new.calendar_integration_id
      using errcode = '23514', constraint = 'ai_agents_calendar_integration_same_organization';
  end if;
  return new;
end;
$$;

-- Deleting an agent (soft or hard) removes its identity: the auth.users row, hence its membership and keys.
create function private.remove_ai_agent_identity() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if old.user_id is not null then
    delete from auth.users u where u.id = old.user_id;
  end if;
  return null;
end;
$$;

create trigger ai_agents_check before insert or update of organization_id, calendar_integration_id on public.ai_agents
  for each row execute function private.check_ai_agent();
create trigger ai_agents_set_updated_at before update on public.ai_agents
  for each row execute function private.set_updated_at();
create trigger ai_agents_audit after insert or update or delete on public.ai_agents
  for each row execute function private.audit_row_change();
create trigger ai_agents_remove_identity_on_delete after delete on public.ai_agents
  for each row execute function private.remove_ai_agent_identity();
create trigger ai_agents_remove_identity_on_soft_delete after update of deleted_at on public.ai_agents
  for each row when (old.deleted_at is null and new.deleted_at is not null)
  execute function private.remove_ai_agent_identity();

create table public.ai_agent_api_keys (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  agent_id uuid not null,
  name text not null default 'default',
  key_prefix text not null,
  key_hash text not null,
  created_by uuid,
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  revoked_at timestamptz,
  constraint ai_agent_api_keys_pkey primary key (id),
  constraint ai_agent_api_keys_key_hash_key unique (key_hash),
  constraint ai_agent_api_keys_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint ai_agent_api_keys_agent_id_fkey foreign key (agent_id) references public.ai_agents (id) on delete cascade,
  constraint ai_agent_api_keys_created_by_fkey foreign key (created_by) references auth.users (id) on delete set null,
  constraint ai_agent_api_keys_name_length check (char_length(btrim(name)) between 1 and 100),
  constraint ai_agent_api_keys_key_prefix_format check (key_prefix ~ '^rk_[A-Za-z0-9_-]{8}$'),
  constraint ai_agent_api_keys_key_hash_format check (key_hash ~ '^[0-9a-f]{64}$')
);
comment on table public.ai_agent_api_keys is 'Per-agent API keys for the receptionist edge function: rk_ + 32 random bytes (base64url), shown once by create_ai_agent_api_key(); only the SHA-256 is stored. Revoked keys stay for the record.';
comment on column public.ai_agent_api_keys.key_prefix is 'The first 11 characters of the key (rk_ + 8), to tell keys apart; not enough to use it.';
comment on column public.ai_agent_api_keys.key_hash is 'SHA-256 of the key, hex. Not selectable by API roles.';

create index ai_agent_api_keys_agent_id_idx on public.ai_agent_api_keys (agent_id);
create index ai_agent_api_keys_organization_id_idx on public.ai_agent_api_keys (organization_id);
create index ai_agent_api_keys_created_by_idx on public.ai_agent_api_keys (created_by);

create trigger ai_agent_api_keys_audit after insert or update or delete on public.ai_agent_api_keys
  for each row execute function private.audit_row_change();

alter table public.ai_agents enable row level security;
alter table public.ai_agent_api_keys enable row level security;

-- ai_agents_select: receptionist readers (staff, viewers, agents) see their organization's agents.
create policy ai_agents_select on public.ai_agents for select to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.read')));
-- ai_agents_update: ai_agents.manage holders configure agents (granted columns only; deleted_at soft-deletes).
create policy ai_agents_update on public.ai_agents for update to authenticated
  using (organization_id in (select private.organizations_with_permission('ai_agents.manage')))
  with check (organization_id in (select private.organizations_with_permission('ai_agents.manage')));
-- ai_agents_delete: ai_agents.manage holders delete agents (their conversations go with them).
create policy ai_agents_delete on public.ai_agents for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('ai_agents.manage')));
-- ai_agent_api_keys_select: ai_agents.manage holders see the keys (never their hashes).
create policy ai_agent_api_keys_select on public.ai_agent_api_keys for select to authenticated
  using (organization_id in (select private.organizations_with_permission('ai_agents.manage')));

grant select on public.ai_agents to authenticated, service_role;
grant update (name, voice_id, language, personality_traits, knowledge_base, capabilities, status, phone_number,
              sms_enabled, calendar_integration_id, deleted_at) on public.ai_agents to authenticated;
grant delete on public.ai_agents to authenticated, service_role;
grant select (id, organization_id, agent_id, name, key_prefix, created_by, created_at, last_used_at, revoked_at)
  on public.ai_agent_api_keys to authenticated, service_role;

create function private.require_agent_manager(organization uuid) returns void
language plpgsql stable security definer
set search_path = ''
as $$
begin
  if organization is null or not private.has_permission(organization, 'ai_agents.manage') then
    raise exception 'you may not manage AI agents here' using errcode = '42501',
      hint = 'Managing agents needs ai_agents.manage (owner or admin).';
  end if;
end;
$$;

-- Provisions the agent's identity: an auth.users row marked {"agent": true} in app_metadata (the sign-up trigger
-- gives it no profile and no personal organization), with no password and an address that cannot receive mail,
-- and a membership with the system role agent (no invitation: the organization creates its own agent).
create function public.create_ai_agent(organization_id uuid, name text, language text default 'pl',
                                       phone_number text default null, voice_id text default null,
                                       capabilities jsonb default null)
returns public.ai_agents
language plpgsql security definer
set search_path = ''
as $$
declare
  new_user uuid := gen_random_uuid();
  created public.ai_agents;
begin
  perform private.require_agent_manager(create_ai_agent.organization_id);
  perform private.require_active_organization(create_ai_agent.organization_id);
  insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
  values ('00000000-0000-0000-0000-000000000000', new_user, 'authenticated', 'authenticated',
          'agent-' || replace(new_user::text, '-', '') || '@agents.invalid',
          jsonb_build_object('provider', 'agent', 'providers', jsonb_build_array('agent'), 'agent', true,
                             'organization_id', create_ai_agent.organization_id),
          jsonb_build_object('name', left(create_ai_agent.name, 200)), pg_catalog.now(), pg_catalog.now());
  insert into public.organization_members (organization_id, user_id, role_id, invited_by)
  values (create_ai_agent.organization_id, new_user, private.system_role_id('agent'), (select auth.uid()));
  insert into public.ai_agents (organization_id, user_id, name, language, phone_number, voice_id, capabilities, created_by)
  values (create_ai_agent.organization_id, new_user, create_ai_agent.name, coalesce(create_ai_agent.language, 'pl'),
          create_ai_agent.phone_number, create_ai_agent.voice_id,
          coalesce(create_ai_agent.capabilities, '["phone_answering", "appointment_booking", "information_providing"]'::jsonb),
          (select auth.uid()))
  returning * into created;
  return created;
end;
$$;
comment on function public.create_ai_agent(uuid, text, text, text, text, jsonb) is 'Creates an AI agent with its own identity (auth.users, app_metadata.agent, no password, no personal organization) and agent membership; ai_agents.manage.';
grant execute on function public.create_ai_agent(uuid, text, text, text, text, jsonb) to authenticated;

create function public.create_ai_agent_api_key(agent_id uuid, name text default 'default')
returns table (key_id uuid, api_key text)
language plpgsql security definer
set search_path = ''
as $$
declare
  agent public.ai_agents;
  secret text := 'rk_' || translate(encode(extensions.gen_random_bytes(32), 'base64'), '+/=', '-_');
begin
  select a.* into agent from public.ai_agents a where a.id = create_ai_agent_api_key.agent_id;
  perform private.require_agent_manager(agent.organization_id);
  if agent.deleted_at is not null then
    raise exception 'agent % is deleted', agent_id using errcode = '55000';
  end if;
  insert into public.ai_agent_api_keys (organization_id, agent_id, name, key_prefix, key_hash, created_by)
  values (agent.organization_id, agent.id, coalesce(create_ai_agent_api_key.name, 'default'), left(secret, 11),
          encode(pg_catalog.sha256(convert_to(secret, 'UTF8')), 'hex'), (select auth.uid()))
  returning id into key_id;
  api_key := secret;
  return next;
end;
$$;
comment on function public.create_ai_agent_api_key(uuid, text) is 'Issues an API key for an agent and returns it once (only its hash is kept); ai_agents.manage.';
grant execute on function public.create_ai_agent_api_key(uuid, text) to authenticated;

create function public.revoke_ai_agent_api_key(key_id uuid) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.ai_agent_api_keys;
begin
  select k.* into target from public.ai_agent_api_keys k where k.id = key_id;
  perform private.require_agent_manager(target.organization_id);
  update public.ai_agent_api_keys k set revoked_at = coalesce(k.revoked_at, pg_catalog.now()) where k.id = key_id;
end;
$$;
comment on function public.revoke_ai_agent_api_key(uuid) is 'Revokes an agent API key at once (idempotent); ai_agents.manage.';
grant execute on function public.revoke_ai_agent_api_key(uuid) to authenticated;

-- What the receptionist edge function asks first (as the service role): whose key is this? Null for an unknown,
-- revoked or deleted agent's key; stamps last_used_at (at most once a minute, so a busy agent does not rewrite it).
create function public.authenticate_ai_agent_key(api_key text)
returns table (agent_id uuid, user_id uuid, organization_id uuid, email text, app_metadata jsonb)
language plpgsql security definer
set search_path = ''
as $$
declare
  hashed text := encode(pg_catalog.sha256(convert_to(coalesce(api_key, ''), 'UTF8')), 'hex');
  found_key uuid;
begin
  select k.id, a.id, a.user_id, a.organization_id, u.email, u.raw_app_meta_data
    into found_key, agent_id, user_id, organization_id, email, app_metadata
  from public.ai_agent_api_keys k
  join public.ai_agents a on a.id = k.agent_id
  join auth.users u on u.id = a.user_id
  where k.key_hash = hashed and k.revoked_at is null and a.deleted_at is null and a.status = 'active';
  if found_key is null then
    return;
  end if;
  update public.ai_agent_api_keys k set last_used_at = pg_catalog.now()
  where k.id = found_key and (k.last_used_at is null or k.last_used_at < pg_catalog.now() - interval '1 minute');
  return next;
end;
$$;
comment on function public.authenticate_ai_agent_key(text) is 'Resolves a receptionist API key to its live agent and identity (nothing for unknown or revoked keys); stamps last_used_at. service_role only.';
grant execute on function public.authenticate_ai_agent_key(text) to service_role;
