-- Tenancy: row-level security and grants.
-- Policies and column grants of profiles and the tenancy tables (11-tenancy.sql).

-- Members see their organizations, co-members and roles; writes to membership go through the RPCs in 15-tenancy-rpcs.sql.
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
-- The service role (server code, the dashboard's API) manages organizations but, like clients, never sets plan:
-- plan is derived from Stripe by the billing module (21-billing-stripe-sync.sql), which runs as the table owner.
grant select, delete on public.organizations to service_role;
grant insert (id, name, slug, description, is_personal, personal_user_id, created_by, settings, industry, business_type,
              phone, email, website, address, city, country, timezone, business_hours, created_at, updated_at, deleted_at),
      update (name, slug, description, is_personal, personal_user_id, created_by, settings, industry, business_type,
              phone, email, website, address, city, country, timezone, business_hours, updated_at, deleted_at)
  on public.organizations to service_role;

-- permissions_select: every signed-in user may read the permission catalogue.
create policy permissions_select on public.permissions for select to authenticated
  using (true);

grant select on public.permissions to authenticated, service_role;

-- roles_select: system roles, and custom roles of the caller's organizations.
create policy roles_select on public.roles for select to authenticated
  using (organization_id is null or organization_id in (select private.user_organization_ids()));
-- Custom roles are managed by members holding roles.manage, and only below their own rank: nobody creates, edits,
-- re-ranks or deletes a role at or above their own (their own role included).
-- roles_insert: roles.manage holders create custom roles ranked below their own.
create policy roles_insert on public.roles for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('roles.manage'))
              and rank < private.my_rank(organization_id));
-- roles_update: roles.manage holders edit custom roles ranked below their own, and keep them below.
create policy roles_update on public.roles for update to authenticated
  using (organization_id in (select private.organizations_with_permission('roles.manage'))
         and rank < private.my_rank(organization_id))
  with check (organization_id in (select private.organizations_with_permission('roles.manage'))
              and rank < private.my_rank(organization_id));
-- roles_delete: roles.manage holders delete unused custom roles ranked below their own (a role in use is kept by its FK).
create policy roles_delete on public.roles for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('roles.manage'))
         and rank < private.my_rank(organization_id));

grant select, delete on public.roles to authenticated;
grant insert (organization_id, key, name, description, rank) on public.roles to authenticated;
grant update (name, description, rank) on public.roles to authenticated;
grant select, insert, update, delete on public.roles to service_role;

-- role_permissions_select: the permissions of every role the caller can see.
create policy role_permissions_select on public.role_permissions for select to authenticated
  using (role_id in (select r.id from public.roles r
                     where r.organization_id is null or r.organization_id in (select private.user_organization_ids())));
-- role_permissions_insert: roles.manage holders grant a custom role below their rank only permissions they hold.
create policy role_permissions_insert on public.role_permissions for insert to authenticated
  with check (
    exists (select 1 from public.roles r
            where r.id = role_id
              and r.organization_id in (select private.organizations_with_permission('roles.manage'))
              and r.rank < private.my_rank(r.organization_id)
              and private.has_permission(r.organization_id, permission_key))
  );
-- role_permissions_delete: roles.manage holders take permissions away from custom roles below their rank.
create policy role_permissions_delete on public.role_permissions for delete to authenticated
  using (role_id in (select r.id from public.roles r
                     where r.organization_id in (select private.organizations_with_permission('roles.manage'))
                       and r.rank < private.my_rank(r.organization_id)));

grant select, insert, delete on public.role_permissions to authenticated;
grant select, insert, update, delete on public.role_permissions to service_role;

-- organization_members_select: members see the members of their organizations.
create policy organization_members_select on public.organization_members for select to authenticated
  using (organization_id in (select private.user_organization_ids()));

grant select on public.organization_members to authenticated;
grant select, insert, update, delete on public.organization_members to service_role;

alter table public.organization_invitations enable row level security;

-- organization_invitations_select: members holding members.manage see their organization's pending invitations;
-- a user sees the invitations addressed to their own (JWT) e-mail.
create policy organization_invitations_select on public.organization_invitations for select to authenticated
  using (organization_id in (select private.organizations_with_permission('members.manage'))
         or lower(email) = lower((select auth.jwt()) ->> 'email'));

grant select on public.organization_invitations to authenticated;
grant select, insert, update, delete on public.organization_invitations to service_role;
