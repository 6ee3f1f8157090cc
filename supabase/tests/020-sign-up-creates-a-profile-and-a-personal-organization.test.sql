begin;
select plan(14);
set constraints all immediate;

select tests.create_user('newbie', 'newbie@example.test');

select results_eq(
  $$select email::text, full_name from public.profiles where id = tests.user_id('newbie')$$,
  $$values ('newbie@example.test', 'Newbie')$$,
  'sign-up creates a profile with the e-mail and the name from user metadata');

select results_eq(
  $$select o.is_personal, o.personal_user_id, r.key
    from public.organizations o
    join public.organization_members m on m.organization_id = o.id
    join public.roles r on r.id = m.role_id
    where o.personal_user_id = tests.user_id('newbie')$$,
  $$select true, tests.user_id('newbie'), 'owner'::text$$,
  'sign-up creates a personal organization the user owns');

update auth.users set email = 'renamed@example.test' where id = tests.user_id('newbie');
select is((select email::text from public.profiles where id = tests.user_id('newbie')), 'renamed@example.test',
  'an e-mail change in auth.users reaches the profile');

select tests.authenticate_as('newbie');
select is(tests.rows_affected($$update public.profiles set full_name = 'New Name', timezone = 'Europe/Warsaw'
                                  where id = auth.uid()$$), 1::bigint,
  'a user edits their own profile');
select throws_ok($$update public.profiles set email = 'x@example.test' where id = auth.uid()$$, '42501', null,
  'a user cannot change the e-mail copy on their profile');
select throws_ok($$update public.profiles set timezone = 'Mars/Olympus' where id = auth.uid()$$, '23514', null,
  'a profile rejects a time zone that is not an IANA name');
select throws_ok($$insert into public.profiles (id) values (gen_random_uuid())$$, '42501', null,
  'a user cannot create profiles: sign-up does');
select tests.clear_authentication();

select tests.create_user('other');
select tests.authenticate_as('other');
select is_empty($$select 1 from public.profiles where id = tests.user_id('newbie')$$,
  'a user does not see the profile of someone they share no organization with');
select tests.clear_authentication();

select tests.add_member(tests.create_organization('other', 'test-shared'), 'newbie', 'member');
select tests.authenticate_as('other');
select isnt_empty($$select 1 from public.profiles where id = tests.user_id('newbie')$$,
  'co-members see each other''s profiles');
select is(tests.rows_affected($$update public.profiles set full_name = 'Defaced' where id = tests.user_id('newbie')$$),
  0::bigint, 'a co-member cannot edit someone else''s profile');
select tests.clear_authentication();

-- Auth accepts addresses and metadata that the app's stricter shapes would not; sign-up must never fail on them.
insert into auth.users (id, email, raw_user_meta_data, created_at, updated_at)
values (gen_random_uuid(), 'jörg@bücher.example', '{"full_name": "Jörg", "avatar_url": "https://bad host/x.png"}', now(), now());
select results_eq($$select email, avatar_url::text from public.profiles where full_name = 'Jörg'$$,
  $$values ('jörg@bücher.example'::text, null::text)$$,
  'sign-up keeps an internationalised e-mail and drops an avatar URL that is not a valid URL');

-- Deleting the user removes the profile and the personal organization.
delete from auth.users where id = tests.user_id('newbie');
select is_empty($$select 1 from public.profiles where email = 'renamed@example.test'$$,
  'deleting a user removes their profile');
select is_empty($$select 1 from public.organizations
                  where slug = 'personal-' || replace(tests.user_id('newbie')::text, '-', '')$$,
  'deleting a user removes their personal organization');

-- A user who is the only owner of a shared organization with other members cannot simply vanish.
select tests.create_user('founder');
select tests.create_user('employee');
select tests.add_member(tests.create_organization('founder', 'test-founded'), 'employee', 'member');
select throws_ok($$delete from auth.users where id = tests.user_id('founder')$$, '23514', null,
  'deleting the last owner of an organization that still has members is rejected');

select * from finish();
rollback;
