-- Access helpers used by policies.
-- user_organization_ids(), organizations_with_permission(), has_permission(), my_rank(), is_platform_admin().

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
comment on function private.member_rank(uuid, uuid) is 'Rank of a member''s role in an organization, or null when not a member. Internal: not granted to API roles.';

create function private.my_rank(organization uuid) returns integer
language sql stable security definer
set search_path = ''
as $$
  select private.member_rank(organization, (select auth.uid()))
$$;
comment on function private.my_rank(uuid) is 'Rank of the caller''s role in an organization, or null when not a member.';

create function private.is_platform_admin() returns boolean
language sql stable
set search_path = ''
as $$
  select coalesce(((select auth.jwt()) -> 'app_metadata' ->> 'platform_admin')::boolean, false)
$$;
comment on function private.is_platform_admin() is 'Platform administrator flag from app_metadata (server-controlled, never user_metadata).';

grant execute on function private.user_organization_ids(), private.organizations_with_permission(text),
  private.has_permission(uuid, text), private.my_rank(uuid), private.is_platform_admin()
  to authenticated, service_role;
