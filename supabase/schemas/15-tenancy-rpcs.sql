-- Tenancy: RPCs.
-- create_organization, invitations, role changes, removal, leaving and deleting an organization.

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

-- Resolve a role key for an organization: a system role or a custom role of that organization (custom roles cannot
-- reuse the system keys: roles_custom_key_not_reserved).
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

-- Whether a member may hand out a role: they hold members.manage, and either they are an owner or the role ranks no
-- higher than theirs, is not owner, and carries no permission their own role lacks (rank alone would let a member
-- manager give out e.g. billing.read through a low-ranked custom role). Checked again when an invitation is accepted.
create function private.can_grant_role(organization uuid, granter uuid, granted_role uuid) returns boolean
language sql stable
set search_path = ''
as $$
  select coalesce((
    select exists (select 1 from public.role_permissions gp where gp.role_id = g.role_id and gp.permission_key = 'members.manage')
       and (g.rank >= 100
            or (t.rank <= g.rank and not (t.key = 'owner' and t.organization_id is null)
                and not exists (select 1 from public.role_permissions tp
                                where tp.role_id = t.id
                                  and not exists (select 1 from public.role_permissions gp
                                                  where gp.role_id = g.role_id and gp.permission_key = tp.permission_key))))
    from (select m.role_id, r.rank from public.organization_members m join public.roles r on r.id = m.role_id
          where m.organization_id = organization and m.user_id = granter) g,
         public.roles t
    where t.id = granted_role), false)
$$;
comment on function private.can_grant_role(uuid, uuid, uuid) is 'Whether a member may grant a role: members.manage, and owner, or rank up to their own with no permission they lack. Internal.';

create function public.invite_organization_member(organization_id uuid, email text, role text default 'member')
returns public.organization_invitations
language plpgsql security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  uid uuid := private.require_user();
  org public.organizations := private.require_active_organization(invite_organization_member.organization_id);
  new_role public.roles := private.resolve_role(org.id, invite_organization_member.role);
  actor_rank integer := private.member_rank(org.id, uid);
  invitee text := lower(btrim(invite_organization_member.email));
  invitation public.organization_invitations;
begin
  if not private.has_permission(org.id, 'members.manage') then
    raise exception 'you may not manage members of this organization' using errcode = '42501';
  end if;
  if org.is_personal then
    raise exception 'a personal organization cannot have other members' using errcode = '22023',
      hint = 'Create a shared organization with create_organization().';
  end if;
  if new_role.rank > actor_rank or (new_role.key = 'owner' and new_role.organization_id is null and actor_rank < 100) then
    raise exception 'you may not grant the role "%"', new_role.key using errcode = '42501',
      hint = 'You can only grant roles up to your own; only owners invite owners.';
  end if;
  if not private.can_grant_role(org.id, uid, new_role.id) then
    raise exception 'you may not grant the role "%": it holds permissions you do not have', new_role.key
      using errcode = '42501';
  end if;
  if exists (select 1 from public.organization_members m join auth.users u on u.id = m.user_id
             where m.organization_id = org.id and lower(u.email) = invitee) then
    raise exception '% is already a member', invitee using errcode = '23505';
  end if;
  -- No look-up of whether an account exists: the answer is the same for every address.
  insert into public.organization_invitations (organization_id, email, role_id, invited_by)
  values (org.id, invitee, new_role.id, uid)
  on conflict (organization_id, lower(email)) do update
    set role_id = excluded.role_id, invited_by = excluded.invited_by,
        expires_at = pg_catalog.now() + interval '14 days'
  returning * into invitation;
  return invitation;
end;
$$;
comment on function public.invite_organization_member(uuid, text, text) is 'Invites an e-mail address with a role up to the caller''s own (members.manage). Re-inviting refreshes the role and expiry.';

create function public.accept_organization_invitation(invitation_id uuid)
returns public.organization_members
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  invitation public.organization_invitations;
  joined public.organization_members;
begin
  select i.* into invitation
  from public.organization_invitations i
  join auth.users u on u.id = uid and lower(u.email) = lower(i.email)
  join public.organizations o on o.id = i.organization_id and o.deleted_at is null
  where i.id = invitation_id and i.expires_at > pg_catalog.now()
  for update of i;
  if invitation.id is null then
    raise exception 'invitation not found or expired' using errcode = 'P0002',
      hint = 'Ask for a new invitation to the e-mail address of this account.';
  end if;
  if not private.can_grant_role(invitation.organization_id, invitation.invited_by, invitation.role_id) then
    raise exception 'this invitation is no longer valid' using errcode = '42501',
      hint = 'Whoever invited you can no longer grant this role; ask for a new invitation.';
  end if;
  insert into public.organization_members (organization_id, user_id, role_id, invited_by)
  values (invitation.organization_id, uid, invitation.role_id, invitation.invited_by)
  on conflict (organization_id, user_id) do nothing
  returning * into joined;
  if joined.id is null then
    select m.* into joined from public.organization_members m
    where m.organization_id = invitation.organization_id and m.user_id = uid;
  end if;
  delete from public.organization_invitations i where i.id = invitation.id;
  return joined;
end;
$$;
comment on function public.accept_organization_invitation(uuid) is 'The invitee (matched by the account''s e-mail) joins the organization with the invited role.';

create function public.cancel_organization_invitation(invitation_id uuid)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  invitation public.organization_invitations;
begin
  select i.* into invitation from public.organization_invitations i where i.id = invitation_id;
  if invitation.id is null
     or not (exists (select 1 from auth.users u where u.id = uid and lower(u.email) = lower(invitation.email))
             or private.has_permission(invitation.organization_id, 'members.manage')) then
    raise exception 'invitation not found' using errcode = 'P0002';
  end if;
  delete from public.organization_invitations i where i.id = invitation.id;
end;
$$;
comment on function public.cancel_organization_invitation(uuid) is 'The invitee declines, or a members.manage holder revokes, a pending invitation.';

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
  if not private.can_grant_role(org.id, uid, new_role.id) then
    raise exception 'you may not grant the role "%": it holds permissions you do not have', new_role.key
      using errcode = '42501';
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

grant execute on function public.create_organization(text, text, text),
  public.invite_organization_member(uuid, text, text), public.accept_organization_invitation(uuid),
  public.cancel_organization_invitation(uuid),
  public.change_member_role(uuid, uuid, text), public.remove_organization_member(uuid, uuid),
  public.leave_organization(uuid), public.delete_organization(uuid)
  to authenticated;
