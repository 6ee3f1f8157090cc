-- The tenancy matrix: for every tenancy table and RPC, what an owner, admin, member, viewer, stranger and anonymous
-- client can read and do in one organization. Reads first (one row of visibility per actor), then writes in an order
-- that leaves each later actor's view unchanged.
begin;
select plan(45);

select tests.create_user(h) from unnest(array['m_owner', 'm_admin', 'm_member', 'm_viewer', 'm_stranger']) as h;
select tests.create_organization('m_owner', 'test-matrix');
select tests.add_member(tests.org_id('test-matrix'), 'm_admin', 'admin');
select tests.add_member(tests.org_id('test-matrix'), 'm_member', 'member');
select tests.add_member(tests.org_id('test-matrix'), 'm_viewer', 'viewer');
insert into public.roles (organization_id, key, name, rank) values (tests.org_id('test-matrix'), 'helper', 'Helper', 20);
insert into public.role_permissions (role_id, permission_key)
select id, 'projects.read' from public.roles where key = 'helper' and organization_id = tests.org_id('test-matrix');
select tests.authenticate_as('m_owner');
select public.invite_organization_member(tests.org_id('test-matrix'), 'pending@example.test', 'viewer');

-- What each actor sees of the organization: the organization, its members, their profiles, its custom roles and
-- their permissions, its pending invitations, and whether any of its audit entries.
create temporary table visibility_probe (sql text) on commit drop;
insert into visibility_probe values ($$
  select (select count(*) from public.organizations where id = tests.org_id('test-matrix'))::integer as organizations,
         (select count(*) from public.organization_members where organization_id = tests.org_id('test-matrix'))::integer as members,
         (select count(*) from public.profiles where id in (tests.user_id('m_admin'), tests.user_id('m_member'), tests.user_id('m_viewer')))::integer as co_member_profiles,
         (select count(*) from public.roles where organization_id = tests.org_id('test-matrix'))::integer as custom_roles,
         (select count(*) from public.role_permissions rp join public.roles r on r.id = rp.role_id
          where r.organization_id = tests.org_id('test-matrix'))::integer as custom_role_permissions,
         (select count(*) from public.organization_invitations where organization_id = tests.org_id('test-matrix'))::integer as invitations,
         exists (select 1 from public.audit_logs where organization_id = tests.org_id('test-matrix')) as audit$$);
grant select on visibility_probe to authenticated;

select tests.authenticate_as('m_owner');
select results_eq((select sql from visibility_probe), $$values (1, 4, 3, 1, 1, 1, true)$$,
  'the owner sees the organization, every member and profile, custom roles, invitations and the audit log');
select tests.authenticate_as('m_admin');
select results_eq((select sql from visibility_probe), $$values (1, 4, 3, 1, 1, 1, true)$$,
  'an admin sees the same as the owner');
select tests.authenticate_as('m_member');
select results_eq((select sql from visibility_probe), $$values (1, 4, 3, 1, 1, 0, false)$$,
  'a member sees the organization, members and roles, but neither invitations nor the audit log');
select tests.authenticate_as('m_viewer');
select results_eq((select sql from visibility_probe), $$values (1, 4, 3, 1, 1, 0, false)$$,
  'a viewer sees what a member sees');
select tests.authenticate_as('m_stranger');
select results_eq((select sql from visibility_probe), $$values (0, 0, 0, 0, 0, 0, false)$$,
  'a stranger sees nothing of the organization');
select ok((select count(*) > 0 from public.permissions) and (select count(*) = 5 from public.roles where organization_id is null),
  'every signed-in user reads the permission catalogue and the system roles');

-- Anonymous clients: no table of the tenancy domain, no RPC.
select tests.authenticate_as_anon();
select throws_ok(format('select 1 from public.%I', t), '42501', null, format('anon cannot read %s', t))
from unnest(array['organizations', 'organization_members', 'organization_invitations', 'profiles', 'roles',
                  'role_permissions', 'permissions', 'audit_logs']) as t;
select throws_ok(format('select %s', call), '42501', null, format('anon cannot call %s', split_part(call, '(', 1)))
from unnest(array[
  $$public.create_organization('Anon', 'test-anon')$$,
  $$public.invite_organization_member(tests.org_id('test-matrix'), 'x@example.test', 'viewer')$$,
  $$public.accept_organization_invitation(gen_random_uuid())$$,
  $$public.cancel_organization_invitation(gen_random_uuid())$$,
  $$public.change_member_role(tests.org_id('test-matrix'), tests.user_id('m_viewer'), 'member')$$,
  $$public.remove_organization_member(tests.org_id('test-matrix'), tests.user_id('m_viewer'))$$,
  $$public.leave_organization(tests.org_id('test-matrix'))$$,
  $$public.delete_organization(tests.org_id('test-matrix'))$$]) as call;

-- Writes. Viewer, member and stranger first: none of their attempts may change anything.
select tests.authenticate_as('m_stranger');
select is(tests.rows_affected($$update public.organizations set description = 'x' where id = tests.org_id('test-matrix')$$),
  0::bigint, 'a stranger cannot edit the organization');
select throws_ok($$select public.invite_organization_member(tests.org_id('test-matrix'), 'x@example.test', 'viewer')$$,
  'P0002', null, 'a stranger cannot invite: the organization does not exist for them');
select throws_ok($$select public.change_member_role(tests.org_id('test-matrix'), tests.user_id('m_viewer'), 'member')$$,
  'P0002', null, 'a stranger cannot change roles');
select throws_ok($$select public.leave_organization(tests.org_id('test-matrix'))$$, 'P0002', null,
  'a stranger cannot leave an organization they are not in');
select throws_ok($$insert into public.roles (organization_id, key, name, rank) values (tests.org_id('test-matrix'), 'spy', 'Spy', 5)$$,
  '42501', null, 'a stranger cannot create roles');

select tests.authenticate_as('m_viewer');
select is(tests.rows_affected($$update public.organizations set description = 'x' where id = tests.org_id('test-matrix')$$),
  0::bigint, 'a viewer cannot edit the organization');
select throws_ok($$select public.invite_organization_member(tests.org_id('test-matrix'), 'x@example.test', 'viewer')$$,
  '42501', null, 'a viewer cannot invite');
select throws_ok($$select public.change_member_role(tests.org_id('test-matrix'), tests.user_id('m_viewer'), 'member')$$,
  '42501', null, 'a viewer cannot raise their own role');
select throws_ok($$insert into public.roles (organization_id, key, name, rank) values (tests.org_id('test-matrix'), 'v_role', 'V', 5)$$,
  '42501', null, 'a viewer cannot create roles');
select throws_ok($$select public.delete_organization(tests.org_id('test-matrix'))$$, '42501', null,
  'a viewer cannot delete the organization');

select tests.authenticate_as('m_member');
select is(tests.rows_affected($$update public.organizations set description = 'x' where id = tests.org_id('test-matrix')$$),
  0::bigint, 'a member cannot edit the organization');
select throws_ok($$select public.remove_organization_member(tests.org_id('test-matrix'), tests.user_id('m_viewer'))$$,
  '42501', null, 'a member cannot remove anyone');
select is(tests.rows_affected($$delete from public.role_permissions where role_id = (select id from public.roles where key = 'helper')$$),
  0::bigint, 'a member cannot strip permissions from a custom role');
select throws_ok($$select public.delete_organization(tests.org_id('test-matrix'))$$, '42501', null,
  'a member cannot delete the organization');

select tests.authenticate_as('m_admin');
select is(tests.rows_affected($$update public.organizations set description = 'Edited' where id = tests.org_id('test-matrix')$$),
  1::bigint, 'an admin edits the organization');
select lives_ok($$insert into public.roles (organization_id, key, name, rank) values (tests.org_id('test-matrix'), 'a_role', 'A', 10)$$,
  'an admin creates a custom role');
select lives_ok($$select public.change_member_role(tests.org_id('test-matrix'), tests.user_id('m_viewer'), 'helper')$$,
  'an admin assigns a custom role');
select throws_ok($$select public.delete_organization(tests.org_id('test-matrix'))$$, '42501', null,
  'an admin cannot delete the organization');

select tests.authenticate_as('m_viewer');
select lives_ok($$select public.leave_organization(tests.org_id('test-matrix'))$$, 'a viewer may leave');
select is_empty($$select 1 from public.organizations where id = tests.org_id('test-matrix')$$,
  'after leaving, the organization is gone from their view');

select tests.authenticate_as('m_owner');
select lives_ok($$select public.remove_organization_member(tests.org_id('test-matrix'), tests.user_id('m_member'))$$,
  'the owner removes a member');
select throws_ok($$select public.leave_organization(tests.org_id('test-matrix'))$$, '23514', null,
  'the only owner cannot leave');
select lives_ok($$select public.delete_organization(tests.org_id('test-matrix'))$$, 'the owner deletes the organization');

select * from finish();
rollback;
