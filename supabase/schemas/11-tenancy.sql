-- Tenancy: organizations, permissions, roles, role_permissions, organization_members, organization_invitations.
-- Tables, their invariants and the reference data (permission keys, system roles and what they grant).

-- The rest of these tables' story is in the files that depend on them: their audit triggers in 13-audit.sql, their
-- row-level security and grants in 14-tenancy-security.sql, the membership RPCs in 15-tenancy-rpcs.sql.

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
  constraint roles_custom_rank_below_admin check (organization_id is null or rank between 1 and 79),
  constraint roles_custom_key_not_reserved check (organization_id is null or key not in ('owner', 'admin', 'member', 'viewer'))
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
  after update or delete on public.organization_members
  deferrable initially deferred
  for each row execute function private.check_organization_has_owner();

-- Invitations: membership needs the invitee's consent. A manager invites an e-mail address; the person with that
-- address (once signed up) accepts or declines. Accepted invitations become memberships and are removed.
create table public.organization_invitations (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  email public.email_address not null,
  role_id uuid not null,
  invited_by uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  expires_at timestamptz not null default now() + interval '14 days',
  constraint organization_invitations_pkey primary key (id),
  constraint organization_invitations_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint organization_invitations_role_id_fkey foreign key (role_id) references public.roles (id) on delete cascade,
  constraint organization_invitations_invited_by_fkey foreign key (invited_by) references auth.users (id) on delete set null,
  constraint organization_invitations_expires_after_creation check (expires_at > created_at)
);
comment on table public.organization_invitations is 'Pending invitations to join an organization, by e-mail. Written through the invitation RPCs only.';

create unique index organization_invitations_one_per_email on public.organization_invitations (organization_id, lower(email));
create index organization_invitations_email_idx on public.organization_invitations (lower(email));
create index organization_invitations_role_id_idx on public.organization_invitations (role_id);
create index organization_invitations_invited_by_idx on public.organization_invitations (invited_by);

create trigger organization_invitations_set_updated_at before update on public.organization_invitations
  for each row execute function private.set_updated_at();

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
