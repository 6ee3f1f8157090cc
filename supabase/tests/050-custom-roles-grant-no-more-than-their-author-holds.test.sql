begin;
select plan(14);

select tests.create_user(h) from unnest(array['owner', 'admin', 'member', 'stranger']) as h;
select tests.create_organization('owner', 'test-acme');
select tests.add_member(tests.org_id('test-acme'), 'admin', 'admin');
select tests.add_member(tests.org_id('test-acme'), 'member', 'member');
select tests.create_organization('stranger', 'test-elsewhere');

select tests.authenticate_as('member');
select throws_ok($$insert into public.roles (organization_id, key, name, rank) values (tests.org_id('test-acme'), 'support', 'Support', 30)$$,
  '42501', null, 'a member cannot create roles');

select tests.authenticate_as('admin');
select lives_ok($$insert into public.roles (organization_id, key, name, rank) values (tests.org_id('test-acme'), 'support', 'Support', 30)$$,
  'an admin creates a custom role');
select throws_ok($$insert into public.roles (organization_id, key, name, rank) values (tests.org_id('test-acme'), 'boss', 'Boss', 90)$$,
  '23514', null, 'a custom role cannot rank at or above admin');
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
select tests.authenticate_as('member');
select ok(private.has_permission(tests.org_id('test-acme'), 'receptionist.manage')
          and not private.has_permission(tests.org_id('test-acme'), 'workflows.read'),
  'the member now holds exactly the custom role''s permissions');

select tests.authenticate_as('stranger');
select is_empty($$select 1 from public.roles where key = 'support'$$, 'a stranger does not see another organization''s custom roles');

select tests.authenticate_as('admin');
select throws_ok($$delete from public.roles where key = 'support'$$, '23503', null,
  'a custom role that is still assigned cannot be deleted');

select * from finish();
rollback;
