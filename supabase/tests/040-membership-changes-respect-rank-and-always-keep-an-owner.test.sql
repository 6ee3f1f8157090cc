begin;
select plan(34);
-- Check the "keep an owner" constraint trigger at each statement instead of at commit (tests roll back).
set constraints all immediate;

select tests.create_user(h) from unnest(array['owner', 'admin', 'member', 'viewer', 'stranger', 'newcomer', 'other_owner']) as h;
select tests.create_organization('owner', 'test-acme');
select tests.add_member(tests.org_id('test-acme'), 'admin', 'admin');
select tests.add_member(tests.org_id('test-acme'), 'member', 'member');
select tests.add_member(tests.org_id('test-acme'), 'viewer', 'viewer');
select tests.create_organization('other_owner', 'test-elsewhere');
insert into public.roles (organization_id, key, name, rank) values (tests.org_id('test-elsewhere'), 'elsewhere_only', 'Elsewhere', 20);

-- Inviting and joining: membership needs the invitee's consent.
select tests.authenticate_as('member');
select throws_ok($$select public.invite_organization_member(tests.org_id('test-acme'), 'newcomer@example.test', 'viewer')$$,
  '42501', null, 'a member cannot invite');
select tests.authenticate_as('viewer');
select throws_ok($$select public.invite_organization_member(tests.org_id('test-acme'), 'newcomer@example.test', 'viewer')$$,
  '42501', null, 'a viewer cannot invite');

select tests.authenticate_as('admin');
select throws_ok($$select public.invite_organization_member(tests.org_id('test-acme'), 'newcomer@example.test', 'owner')$$,
  '42501', null, 'an admin cannot invite an owner');
select throws_ok($$select public.invite_organization_member(tests.org_id('test-acme'), 'newcomer@example.test', 'elsewhere_only')$$,
  '22023', null, 'a custom role of another organization cannot be used (no cross-tenant roles)');
select throws_ok($$select public.invite_organization_member(tests.org_id('test-acme'), 'member@example.test', 'viewer')$$,
  '23505', null, 'inviting an existing member is a duplicate');
select lives_ok($$select public.invite_organization_member(tests.org_id('test-acme'), 'nobody-yet@example.test', 'member')$$,
  'inviting an address with no account looks the same as any other invitation (no account enumeration)');
select lives_ok($$select public.invite_organization_member(tests.org_id('test-acme'), 'NewComer@Example.test', 'member')$$,
  'an admin invites an e-mail address with a role up to their own');
select is_empty($$select 1 from public.organization_members where user_id = tests.user_id('newcomer')
                  and organization_id = tests.org_id('test-acme')$$,
  'an invitation alone makes nobody a member');
select throws_ok($$update public.organization_members set organization_id = tests.org_id('test-elsewhere')
                   where user_id = tests.user_id('member')$$,
  '42501', null, 'a membership cannot be moved to another tenant through the table API');

select tests.authenticate_as('stranger');
select is_empty($$select 1 from public.organization_invitations$$, 'a stranger sees no invitations of others');
select throws_ok($$select public.accept_organization_invitation(
                     (select id from public.organization_invitations limit 1))$$,
  'P0002', null, 'a stranger cannot accept an invitation addressed to someone else');
select throws_ok($$select public.invite_organization_member(tests.org_id('test-acme'), 'stranger@example.test', 'owner')$$,
  'P0002', null, 'a stranger cannot invite themselves: the organization does not exist for them');
select throws_ok($$select public.invite_organization_member(
                     (select id from public.organizations where personal_user_id = auth.uid()), 'newcomer@example.test', 'member')$$,
  '22023', null, 'a personal organization cannot have other members');

select tests.authenticate_as('newcomer');
select results_eq($$select lower(email) from public.organization_invitations$$, $$values ('newcomer@example.test')$$,
  'the invitee sees the invitation addressed to them');
select results_eq(
  $$select r.key from public.accept_organization_invitation((select id from public.organization_invitations)) m
    join public.roles r on r.id = m.role_id$$,
  $$values ('member')$$, 'the invitee accepts and joins with the invited role');
select is_empty($$select 1 from public.organization_invitations$$, 'an accepted invitation is gone');

-- Changing roles
select tests.authenticate_as('member');
select throws_ok($$select public.change_member_role(tests.org_id('test-acme'), auth.uid(), 'admin')$$,
  '42501', null, 'a member cannot raise their own role');

select tests.authenticate_as('admin');
select throws_ok($$select public.change_member_role(tests.org_id('test-acme'), auth.uid(), 'owner')$$,
  '42501', null, 'an admin cannot make themselves owner');
select throws_ok($$select public.change_member_role(tests.org_id('test-acme'), tests.user_id('owner'), 'viewer')$$,
  '42501', null, 'an admin cannot demote an owner');
select throws_ok($$select public.change_member_role(tests.org_id('test-acme'), auth.uid(), 'member')$$,
  '42501', null, 'an admin cannot change their own role, not even downwards');
select results_eq(
  $$select r.key from public.change_member_role(tests.org_id('test-acme'), tests.user_id('viewer'), 'member') m
    join public.roles r on r.id = m.role_id$$,
  $$values ('member')$$, 'an admin promotes a viewer to member');
select throws_ok($$select public.change_member_role(tests.org_id('test-acme'), tests.user_id('stranger'), 'member')$$,
  'P0002', null, 'changing the role of a non-member is reported as not found');

select tests.authenticate_as('owner');
select throws_ok($$select public.change_member_role(tests.org_id('test-acme'), auth.uid(), 'admin')$$,
  '23514', null, 'the last owner cannot demote themselves');
select lives_ok($$select public.change_member_role(tests.org_id('test-acme'), tests.user_id('admin'), 'owner')$$,
  'an owner makes an admin a second owner');
select lives_ok($$select public.change_member_role(tests.org_id('test-acme'), auth.uid(), 'admin')$$,
  'with a second owner in place, the first may step down');

-- Removing members and leaving (admin is now the only owner; owner is now an admin)
select tests.authenticate_as('member');
select throws_ok($$select public.remove_organization_member(tests.org_id('test-acme'), tests.user_id('viewer'))$$,
  '42501', null, 'a member cannot remove others');

select tests.authenticate_as('owner');
select throws_ok($$select public.remove_organization_member(tests.org_id('test-acme'), tests.user_id('admin'))$$,
  '42501', null, 'an admin cannot remove an owner');
select lives_ok($$select public.remove_organization_member(tests.org_id('test-acme'), tests.user_id('newcomer'))$$,
  'an admin removes a member');

select tests.authenticate_as('viewer');
select lives_ok($$select public.leave_organization(tests.org_id('test-acme'))$$, 'a member may leave');
select is_empty($$select 1 from public.organizations where slug = 'test-acme'$$,
  'after leaving, the organization is no longer visible');
select throws_ok($$select public.leave_organization((select id from public.organizations where personal_user_id = auth.uid()))$$,
  '22023', null, 'nobody leaves their personal organization');

select tests.authenticate_as('admin');
select throws_ok($$select public.leave_organization(tests.org_id('test-acme'))$$,
  '23514', null, 'the last owner cannot leave');

select tests.authenticate_as_service_role();
select throws_ok($$delete from public.organization_members where organization_id = tests.org_id('test-acme')
                   and user_id = tests.user_id('admin')$$,
  '23514', null, 'even the service role cannot remove the last owner of an organization that has members');
select lives_ok($$delete from public.organization_members where organization_id = tests.org_id('test-acme')
                  and user_id = tests.user_id('member')$$,
  'the service role may remove other members directly');

select * from finish();
rollback;
