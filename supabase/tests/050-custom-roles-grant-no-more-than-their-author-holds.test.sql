begin;
select plan(24);

select tests.create_user(h) from unnest(array['owner', 'admin', 'member', 'lead', 'stranger', 'later']) as h;
select tests.create_organization('owner', 'test-acme');
select tests.add_member(tests.org_id('test-acme'), 'admin', 'admin');
select tests.add_member(tests.org_id('test-acme'), 'member', 'member');
select tests.create_organization('stranger', 'test-elsewhere');

select tests.authenticate_as('member');
select throws_ok($$insert into public.roles (organization_id, key, name, rank) values (tests.org_id('test-acme'), 'support', 'Support', 30)$$,
  '42501', null, 'a member cannot create roles');

select tests.authenticate_as('admin');
select lives_ok($$insert into public.roles (organization_id, key, name, rank) values (tests.org_id('test-acme'), 'support', 'Support', 30)$$,
  'an admin creates a custom role below their rank');
select throws_ok($$insert into public.roles (organization_id, key, name, rank) values (tests.org_id('test-elsewhere'), 'mole', 'Mole', 10)$$,
  '42501', null, 'an admin cannot create roles in another organization');
select throws_ok($$insert into public.roles (organization_id, key, name, rank) values (null, 'superuser', 'Superuser', 10)$$,
  '42501', null, 'nobody creates system roles through the API');
select is(tests.rows_affected($$update public.roles set name = 'Boss' where organization_id is null and key = 'viewer'$$),
  0::bigint, 'system roles cannot be edited');
select throws_ok($$update public.roles set organization_id = tests.org_id('test-elsewhere') where key = 'support'$$,
  '42501', null, 'a custom role cannot be moved to another organization');
select lives_ok($$insert into public.role_permissions (role_id, permission_key)
                 select id, 'receptionist.manage' from public.roles where key = 'support'$$,
  'an admin grants the custom role a permission they hold');
select throws_ok($$insert into public.role_permissions (role_id, permission_key)
                  select id, 'organizations.delete' from public.roles where key = 'support'$$,
  '42501', null, 'an admin cannot grant a permission they do not hold themselves');
select throws_ok($$insert into public.role_permissions (role_id, permission_key)
                  select id, 'members.manage' from public.roles where organization_id is null and key = 'viewer'$$,
  '42501', null, 'nobody adds permissions to system roles');
select lives_ok($$select public.change_member_role(tests.org_id('test-acme'), tests.user_id('member'), 'support')$$,
  'an admin assigns the custom role');

select tests.authenticate_as('owner');
select throws_ok($$insert into public.roles (organization_id, key, name, rank) values (tests.org_id('test-acme'), 'boss', 'Boss', 90)$$,
  '23514', null, 'a custom role cannot rank at or above admin, even when an owner creates it');
select throws_ok($$insert into public.roles (organization_id, key, name, rank) values (tests.org_id('test-acme'), 'owner', 'Fake owner', 10)$$,
  '23514', null, 'a custom role cannot take a system role''s key');

-- A custom role that manages roles and members cannot lift itself: it only touches roles ranked below it.
insert into public.roles (organization_id, key, name, rank) values (tests.org_id('test-acme'), 'lead', 'Team lead', 40);
insert into public.role_permissions (role_id, permission_key)
select id, p from public.roles, unnest(array['roles.manage', 'members.manage', 'members.read']) as p where key = 'lead';
select tests.clear_authentication();
select tests.add_member(tests.org_id('test-acme'), 'lead', 'lead');

select tests.authenticate_as('lead');
select is(tests.rows_affected($$update public.roles set rank = 79 where key = 'lead'$$), 0::bigint,
  'a role manager cannot raise the rank of their own role');
select is(tests.rows_affected($$delete from public.role_permissions
                                  where role_id = (select id from public.roles where key = 'lead')$$), 0::bigint,
  'a role manager cannot change the permissions of their own role');
select throws_ok($$insert into public.roles (organization_id, key, name, rank) values (tests.org_id('test-acme'), 'senior', 'Senior', 45)$$,
  '42501', null, 'a role manager cannot create a role that outranks them');
select lives_ok($$insert into public.roles (organization_id, key, name, rank) values (tests.org_id('test-acme'), 'junior', 'Junior', 20)$$,
  'a role manager creates a role below their own rank');
select throws_ok($$select public.change_member_role(tests.org_id('test-acme'), tests.user_id('admin'), 'junior')$$,
  '42501', null, 'a role manager cannot demote someone who outranks them');
select throws_ok($$select public.invite_organization_member(tests.org_id('test-acme'), 'later@example.test', 'support')$$,
  '42501', null, 'a member manager cannot hand out a lower role that holds permissions they lack');
select lives_ok($$select public.invite_organization_member(tests.org_id('test-acme'), 'later@example.test', 'junior')$$,
  'a member manager invites with a role within their own permissions');

-- The lead loses members.manage before the invitation is accepted: it no longer holds.
select tests.clear_authentication();
delete from public.role_permissions
where role_id = (select id from public.roles where key = 'lead') and permission_key = 'members.manage';
select tests.authenticate_as('later');
select throws_ok($$select public.accept_organization_invitation(
                     (select id from public.organization_invitations where email = 'later@example.test'))$$,
  '42501', null, 'an invitation stops working once its inviter may no longer grant its role');

select tests.authenticate_as('member');
select ok(private.has_permission(tests.org_id('test-acme'), 'receptionist.manage')
          and not private.has_permission(tests.org_id('test-acme'), 'workflows.read'),
  'a member with the custom role holds exactly its permissions');

select tests.authenticate_as('stranger');
select is_empty($$select 1 from public.roles where key = 'support'$$, 'a stranger does not see another organization''s custom roles');
select is(tests.rows_affected($$delete from public.role_permissions where role_id in (select id from public.roles where key = 'support')$$),
  0::bigint, 'a stranger cannot strip permissions from another organization''s roles');

select tests.authenticate_as('admin');
select throws_ok($$delete from public.roles where key = 'support'$$, '23503', null,
  'a custom role that is still assigned cannot be deleted');

select * from finish();
rollback;
