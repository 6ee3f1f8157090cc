begin;
select plan(27);

select tests.create_user(h) from unnest(array['owner', 'admin', 'member', 'viewer', 'stranger']) as h;
select tests.create_organization('owner', 'test-acme');
select tests.add_member(tests.org_id('test-acme'), 'admin', 'admin');
select tests.add_member(tests.org_id('test-acme'), 'member', 'member');
select tests.add_member(tests.org_id('test-acme'), 'viewer', 'viewer');
select tests.create_organization('stranger', 'test-elsewhere');

-- Reading
select tests.authenticate_as('viewer');
select results_eq($$select slug::text from public.organizations where not is_personal$$, $$values ('test-acme')$$,
  'a viewer sees their shared organization and no other');
select results_eq($$select count(*)::int from public.organization_members where organization_id = tests.org_id('test-acme')$$,
  $$values (4)$$, 'a viewer sees every member of their organization');
select results_eq($$select count(*)::int from public.profiles$$, $$values (4)$$,
  'a viewer sees the profiles of their co-members (and their own)');

select tests.authenticate_as('stranger');
select is_empty($$select 1 from public.organizations where slug = 'test-acme'$$,
  'a stranger does not see an organization they do not belong to');
select is_empty($$select 1 from public.organization_members where organization_id = tests.org_id('test-acme')$$,
  'a stranger does not see its members');
select is_empty($$select 1 from public.profiles where id = tests.user_id('owner')$$,
  'a stranger does not see the profiles of its members');

select tests.authenticate_as_anon();
select throws_ok($$select 1 from public.organizations$$, '42501', null, 'anon cannot read organizations at all');
select throws_ok($$select 1 from public.organization_members$$, '42501', null, 'anon cannot read memberships at all');
select throws_ok($$select 1 from public.profiles$$, '42501', null, 'anon cannot read profiles at all');

-- Writing the organization row
select tests.authenticate_as('member');
select is(tests.rows_affected($$update public.organizations set name = 'Hijacked' where id = tests.org_id('test-acme')$$),
  0::bigint, 'a member cannot rename the organization (RLS hides it from UPDATE)');
select throws_ok($$insert into public.organizations (name, slug) values ('Direct', 'test-direct')$$, '42501', null,
  'nobody inserts organizations directly: create_organization() does');

select tests.authenticate_as('admin');
select is(tests.rows_affected($$update public.organizations set name = 'Acme Renamed', city = 'Kraków', country = 'PL',
                                  timezone = 'Europe/Warsaw' where id = tests.org_id('test-acme')$$),
  1::bigint, 'an admin edits the organization profile');
select throws_ok($$update public.organizations set plan = 'enterprise' where id = tests.org_id('test-acme')$$, '42501', null,
  'an admin cannot change the billing plan column');
select throws_ok($$update public.organizations set deleted_at = now() where id = tests.org_id('test-acme')$$, '42501', null,
  'an admin cannot soft-delete by writing deleted_at');
select is(tests.rows_affected($$update public.organizations set name = 'Taken over' where id = tests.org_id('test-elsewhere')$$),
  0::bigint, 'an admin cannot edit another tenant''s organization');
select throws_ok($$select public.delete_organization(tests.org_id('test-acme'))$$, '42501', null,
  'an admin cannot delete the organization');

select tests.authenticate_as_service_role();
select throws_ok($$update public.organizations set plan = 'enterprise' where id = tests.org_id('test-acme')$$, '42501', null,
  'not even the service role writes the plan column: billing derives it');
select is(tests.rows_affected($$update public.organizations set description = 'Set by server code' where id = tests.org_id('test-acme')$$),
  1::bigint, 'the service role edits the other organization columns');

-- create_organization
select tests.authenticate_as('stranger');
select results_eq($$select (public.create_organization('Stranger Co', 'test-stranger-co')).slug::text$$,
  $$values ('test-stranger-co')$$, 'any signed-in user can create an organization');
select results_eq(
  $$select r.key from public.organization_members m join public.roles r on r.id = m.role_id
    where m.organization_id = tests.org_id('test-stranger-co') and m.user_id = auth.uid()$$,
  $$values ('owner')$$, 'the creator becomes its owner');
select throws_ok($$select public.create_organization('Dup', 'test-acme')$$, '23505', null,
  'a taken slug is rejected as a duplicate');
select throws_ok($$select public.create_organization('Bad', 'Not A Slug')$$, '23514', null,
  'an invalid slug is rejected');

select tests.authenticate_as_anon();
select throws_ok($$select public.create_organization('Anon', 'test-anon')$$, '42501', null,
  'anon cannot create organizations');

-- delete_organization
select tests.authenticate_as('owner');
select throws_ok($$select public.delete_organization(
                     (select id from public.organizations where personal_user_id = auth.uid()))$$, '22023', null,
  'a personal organization cannot be deleted on its own');
select lives_ok($$select public.delete_organization(tests.org_id('test-acme'))$$, 'the owner deletes the organization');
select tests.authenticate_as('member');
select is_empty($$select 1 from public.organizations where slug = 'test-acme'$$,
  'a deleted organization disappears for its members');
select tests.clear_authentication();
select isnt_empty($$select 1 from public.organizations where slug = 'test-acme' and deleted_at is not null$$,
  'deletion is soft: the row is kept with deleted_at set');

select * from finish();
rollback;
