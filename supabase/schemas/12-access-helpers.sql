-- Access helpers used by policies.
-- user_organization_ids(), organizations_with_permission(), has_permission(), my_rank(), is_platform_admin().

-- security definer so that policies can read membership without recursing into membership's own policies; each
-- depends only on the caller (not on the row), so `x in (select private.f())` is evaluated once per statement.
-- PL/pgSQL rather than SQL: a security definer SQL function is never inlined and is planned again on every call
-- (about 0.25 ms, several times per API write); PL/pgSQL keeps its plans for the session (about 0.03 ms a call).

create function private.user_organization_ids() returns setof uuid
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return query
  select m.organization_id
  from public.organization_members m
  join public.organizations o on o.id = m.organization_id
  where m.user_id = (select auth.uid()) and o.deleted_at is null;
end;
$$;
comment on function private.user_organization_ids() is 'Organizations the caller belongs to (not deleted).';

create function private.organizations_with_permission(permission text) returns setof uuid
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return query
  select m.organization_id
  from public.organization_members m
  join public.organizations o on o.id = m.organization_id
  join public.role_permissions rp on rp.role_id = m.role_id
  where m.user_id = (select auth.uid()) and o.deleted_at is null
    and rp.permission_key = organizations_with_permission.permission;
end;
$$;
comment on function private.organizations_with_permission(text) is 'Organizations in which the caller''s role grants the permission.';

create function private.has_permission(organization uuid, permission text) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return exists (select 1 from public.organization_members m
                 join public.organizations o on o.id = m.organization_id
                 join public.role_permissions rp on rp.role_id = m.role_id
                 where m.user_id = (select auth.uid()) and m.organization_id = has_permission.organization
                   and o.deleted_at is null and rp.permission_key = has_permission.permission);
end;
$$;
comment on function private.has_permission(uuid, text) is 'Whether the caller holds the permission in the organization.';

create function private.member_rank(organization uuid, member uuid) returns integer
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return (select r.rank
          from public.organization_members m
          join public.roles r on r.id = m.role_id
          where m.organization_id = member_rank.organization and m.user_id = member_rank.member);
end;
$$;
comment on function private.member_rank(uuid, uuid) is 'Rank of a member''s role in an organization, or null when not a member. Internal: not granted to API roles.';

create function private.my_rank(organization uuid) returns integer
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return private.member_rank(my_rank.organization, (select auth.uid()));
end;
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
