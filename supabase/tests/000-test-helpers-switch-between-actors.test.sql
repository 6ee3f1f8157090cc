-- Request-context helpers for every pgTAP file, applied the way PostgREST applies a request: inside the test's
-- transaction, `role` and `request.jwt.claims` are set with set_config(..., true) so they end with it.
-- This file runs first (pg_prove runs files in name order) and COMMITS the `tests` schema so later files can use
-- it; everything else a test does is rolled back. The schema exists only in test databases.
--
--   tests.create_user(handle, email default <handle>@example.test, app_metadata default '{}') -> uuid
--   tests.user_id(handle) -> uuid
--   tests.authenticate_as(handle, aal default 'aal1')   act as that user (role authenticated, claims like GoTrue's)
--   tests.authenticate_as_anon()                          act as an anonymous client (anon key)
--   tests.authenticate_as_service_role()                  act as the server (service_role key)
--   tests.clear_authentication()                          back to the test runner (postgres), no claims
--   tests.create_organization(owner_handle, slug) -> uuid a shared organization owned by that user
--   tests.add_member(organization, handle, role_key)      membership with a system or custom role
--   tests.org_id(slug) -> uuid                            an organization's id, whoever is acting
--   tests.rows_affected(sql) -> bigint                    runs a statement as the current actor, returns its row count
--                                                         (RLS filters silently: an UPDATE it hides affects 0 rows)
begin;

-- pgTAP itself, executable by every actor (the migration revokes default EXECUTE from new functions).
create extension if not exists pgtap with schema extensions;
grant execute on all functions in schema extensions to anon, authenticated, service_role;

create schema if not exists tests;
grant usage on schema tests to anon, authenticated, service_role;

create table if not exists tests.users (
  handle text primary key,
  id uuid not null unique
);

create or replace function tests.create_user(handle text, email text default null, app_metadata jsonb default '{}')
returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  new_id uuid := gen_random_uuid();
begin
  insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at,
                          email_confirmed_at)
  values ('00000000-0000-0000-0000-000000000000', new_id, 'authenticated', 'authenticated',
          coalesce(email, handle || '@example.test'),
          '{"provider": "email", "providers": ["email"]}'::jsonb || app_metadata,
          jsonb_build_object('full_name', initcap(handle)), now(), now(), now());
  insert into tests.users (handle, id) values (handle, new_id);
  return new_id;
end;
$$;

create or replace function tests.user_id(handle text) returns uuid
language plpgsql stable security definer
set search_path = ''
as $$
declare
  found uuid;
begin
  select u.id into found from tests.users u where u.handle = user_id.handle;
  if found is null then
    raise exception 'no test user "%" (create it with tests.create_user)', handle;
  end if;
  return found;
end;
$$;

-- security definer: reads auth.users, which the API roles cannot.
create or replace function tests.user_claims(handle text, aal text) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'sub', u.id, 'role', 'authenticated', 'aud', 'authenticated', 'email', u.email, 'aal', aal,
    'app_metadata', coalesce(u.raw_app_meta_data, '{}'), 'user_metadata', coalesce(u.raw_user_meta_data, '{}'),
    'iat', extract(epoch from now())::bigint, 'exp', extract(epoch from now())::bigint + 3600,
    'session_id', gen_random_uuid())
  from auth.users u where u.id = tests.user_id(handle)
$$;

create or replace function tests.authenticate_as(handle text, aal text default 'aal1') returns void
language plpgsql
set search_path = ''
as $$
declare
  claims jsonb := tests.user_claims(handle, aal);
begin
  perform set_config('role', 'authenticated', true);
  perform set_config('request.jwt.claims', claims::text, true);
  perform set_config('request.method', 'POST', true);
  perform set_config('request.path', '/rest/v1/rpc', true);
  perform set_config('request.headers', '{"x-forwarded-for": "203.0.113.7", "user-agent": "pgtap"}', true);
end;
$$;

create or replace function tests.authenticate_as_anon() returns void
language plpgsql
set search_path = ''
as $$
begin
  perform set_config('role', 'anon', true);
  perform set_config('request.jwt.claims', '{"role": "anon", "iss": "supabase"}', true);
end;
$$;

create or replace function tests.authenticate_as_service_role() returns void
language plpgsql
set search_path = ''
as $$
begin
  perform set_config('role', 'service_role', true);
  perform set_config('request.jwt.claims', '{"role": "service_role", "iss": "supabase"}', true);
end;
$$;

create or replace function tests.clear_authentication() returns void
language plpgsql
set search_path = ''
as $$
begin
  perform set_config('role', 'postgres', true);
  perform set_config('request.jwt.claims', '', true);
  perform set_config('request.headers', '', true);
end;
$$;

create or replace function tests.create_organization(owner_handle text, slug text) returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  org uuid;
begin
  insert into public.organizations (name, slug, created_by)
  values (initcap(replace(slug, '-', ' ')), slug, tests.user_id(owner_handle))
  returning id into org;
  insert into public.organization_members (organization_id, user_id, role_id)
  values (org, tests.user_id(owner_handle), (select r.id from public.roles r where r.organization_id is null and r.key = 'owner'));
  return org;
end;
$$;

create or replace function tests.add_member(organization uuid, handle text, role_key text) returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  member uuid;
begin
  insert into public.organization_members (organization_id, user_id, role_id)
  values (organization, tests.user_id(handle),
          (select r.id from public.roles r where r.key = role_key and (r.organization_id is null or r.organization_id = organization)
           order by r.organization_id nulls first limit 1))
  returning id into member;
  return member;
end;
$$;

create or replace function tests.org_id(slug text) returns uuid
language sql stable security definer
set search_path = ''
as $$
  select o.id from public.organizations o where o.slug = org_id.slug
$$;

create or replace function tests.rows_affected(statement text) returns bigint
language plpgsql
set search_path = ''
as $$
declare
  n bigint;
begin
  execute statement;
  get diagnostics n = row_count;
  return n;
end;
$$;

-- The fixtures' name -> id table: the temporary table `ids` and pg_temp.id(name), readable by every actor; both go
-- with the test's transaction.
create or replace function tests.create_ids() returns void
language plpgsql
as $fixture$
begin
  create temporary table ids (name text primary key, id uuid) on commit drop;
  grant all on ids to anon, authenticated, service_role;
  create function pg_temp.id(key text) returns uuid language sql stable as $$ select id from ids where name = key $$;
  grant execute on function pg_temp.id(text) to anon, authenticated, service_role;
end;
$fixture$;

-- The receptionist tests' shared fixture (600-630): a salon in Warsaw open Monday-Friday 09:00-17:00; Anna works those hours and cuts hair (60 min, 15 min
-- buffer, 60 min notice, 60 days ahead); Bob works Monday 12:00-17:00 only. `monday` is a Monday 2-3 weeks ahead.
-- It creates the temporary tables `ids` and `days` and the lookups pg_temp.id(name) and pg_temp.at(day, 'HH:MM')
-- that those tests use; everything goes with the test's transaction.
create or replace function tests.create_receptionist_salon() returns void
language plpgsql
as $fixture$
begin
  perform tests.create_ids();
  create temporary table days (name text primary key, day date) on commit drop;
  grant all on days to anon, authenticated, service_role;
  create function pg_temp.at(day_name text, local_time text) returns timestamptz language sql stable
    as $$ select (d.day + local_time::time) at time zone 'Europe/Warsaw' from days d where d.name = day_name $$;
  grant execute on function pg_temp.at(text, text) to anon, authenticated, service_role;
  insert into days select 'monday', current_date + 14 + ((8 - extract(dow from current_date + 14)::integer) % 7);
  perform tests.create_user('rx_owner');
  perform tests.create_organization('rx_owner', 'test-rx-salon');
  update public.organizations set timezone = 'Europe/Warsaw', business_hours =
    '{"monday": {"open": "09:00", "close": "17:00"}, "tuesday": {"open": "09:00", "close": "17:00"}, "wednesday": {"open": "09:00", "close": "17:00"}, "thursday": {"open": "09:00", "close": "17:00"}, "friday": {"open": "09:00", "close": "17:00"}, "saturday": null}'
  where id = tests.org_id('test-rx-salon');
  with s as (insert into public.services (organization_id, name, duration, price, currency, booking_buffer, min_notice_minutes, max_advance_booking_days)
             values (tests.org_id('test-rx-salon'), 'Haircut', 60, 120, 'PLN', 15, 60, 60) returning id)
  insert into ids select 'haircut', id from s;
  with s as (insert into public.staff (organization_id, name) values (tests.org_id('test-rx-salon'), 'Anna') returning id)
  insert into ids select 'anna', id from s;
  with s as (insert into public.staff (organization_id, name) values (tests.org_id('test-rx-salon'), 'Bob') returning id)
  insert into ids select 'bob', id from s;
  insert into public.staff_services (staff_id, service_id) values (pg_temp.id('anna'), pg_temp.id('haircut')), (pg_temp.id('bob'), pg_temp.id('haircut'));
  insert into public.staff_working_hours (staff_id, weekday, start_time, end_time)
  select pg_temp.id('anna'), d, '09:00', '17:00' from generate_series(1, 5) d;
  insert into public.staff_working_hours (staff_id, weekday, start_time, end_time) values (pg_temp.id('bob'), 1, '12:00', '17:00');
end;
$fixture$;

-- The search tests' shared fixture (580-585): organization test-se (owner se_owner; se_editor and se_outsider members,
-- se_viewer a viewer) with the public project apollo and the private project zeus (se_editor its editor, se_viewer its
-- viewer), test-se-other (se_stranger) with project elsewhere, and ten tasks. It creates the temporary table `ids` and
-- pg_temp.id(name), pg_temp.new_task(key, project, title, description, parent) and pg_temp.found(query, ...) (the ids
-- search() returns, best first, of this fixture's rows only: the demo seed may hold matching rows too); everything
-- goes with the test's transaction.
create or replace function tests.create_search_fixture() returns void
language plpgsql
as $fixture$
begin
  perform tests.create_ids();
  create function pg_temp.new_task(key text, project text, title text, description text default null, parent text default null)
  returns void language sql as $$
    with t as (insert into public.tasks (project_id, title, description, parent_task_id)
               values (pg_temp.id(project), title, description, pg_temp.id(parent)) returning id)
    insert into ids select key, id from t
  $$;
  grant execute on function pg_temp.new_task(text, text, text, text, text) to authenticated;
  -- The ids a search returns, best first; only the fixture's rows (the demo seed may hold matching rows too).
  create function pg_temp.found(query text, entity_types text[] default null, within_project uuid default null,
                                max_results integer default 20) returns uuid[]
  language sql as $$ select coalesce(array_agg(s.entity_id order by s.rank desc, s.entity_type, s.entity_id), '{}')
                     from public.search(query, entity_types, within_project, max_results) s
                     where s.entity_id in (select id from ids) $$;
  grant execute on function pg_temp.found(text, text[], uuid, integer) to anon, authenticated, service_role;

  perform tests.create_user(h) from unnest(array['se_owner', 'se_editor', 'se_viewer', 'se_outsider', 'se_stranger']) h;
  perform tests.create_organization('se_owner', 'test-se');
  perform tests.create_organization('se_stranger', 'test-se-other');
  perform tests.add_member(tests.org_id('test-se'), 'se_editor', 'member');
  perform tests.add_member(tests.org_id('test-se'), 'se_viewer', 'viewer');
  perform tests.add_member(tests.org_id('test-se'), 'se_outsider', 'member');
  with p as (insert into public.projects (organization_id, owner_id, title, description)
             values (tests.org_id('test-se'), tests.user_id('se_owner'), 'Apollo launch', 'Rocket engines and the countdown checklist')
             returning id)
  insert into ids select 'apollo', id from p;
  with p as (insert into public.projects (organization_id, owner_id, title, description, visibility)
             values (tests.org_id('test-se'), tests.user_id('se_owner'), 'Zeus vault', 'Secret kubernetes migration plan', 'private')
             returning id)
  insert into ids select 'zeus', id from p;
  with p as (insert into public.projects (organization_id, owner_id, title)
             values (tests.org_id('test-se-other'), tests.user_id('se_stranger'), 'Deploy elsewhere') returning id)
  insert into ids select 'elsewhere', id from p;
  insert into public.project_members (project_id, user_id, role) values
    (pg_temp.id('zeus'), tests.user_id('se_editor'), 'editor'),
    (pg_temp.id('zeus'), tests.user_id('se_viewer'), 'viewer');
  perform pg_temp.new_task('deploy_title', 'apollo', 'Deploy the landing page', 'Ship the marketing site before the launch');
  perform pg_temp.new_task('deploy_body', 'apollo', 'Write release notes', 'Mention the deploy steps');
  perform pg_temp.new_task('login_page', 'apollo', 'Fix login page', 'Users see an error');
  perform pg_temp.new_task('page_login', 'apollo', 'Page for login', 'Words in the other order');
  perform pg_temp.new_task('pager', 'apollo', 'Pager rotation', 'Who is on call');
  perform pg_temp.new_task('billing', 'apollo', 'Refactor billing', null);
  perform pg_temp.new_task('apollo_retro', 'apollo', 'Apollo retro', 'What went well');
  perform pg_temp.new_task('kube', 'zeus', 'Kubernetes migration', 'Move the cluster');
  perform pg_temp.new_task('kube_sub', 'zeus', 'Drain the kubernetes nodes', null, 'kube');
  perform pg_temp.new_task('foreign', 'elsewhere', 'Deploy the other thing', null);
end;
$fixture$;

grant all on tests.users to anon, authenticated, service_role;
grant execute on all functions in schema tests to anon, authenticated, service_role;

select plan(7);

select has_function('tests', 'create_user', array['text', 'text', 'jsonb'], 'tests.create_user exists');
select has_function('tests', 'authenticate_as', array['text', 'text'], 'tests.authenticate_as exists');
select has_function('tests', 'clear_authentication', 'tests.clear_authentication exists');

select tests.create_user('helper_probe');
select tests.authenticate_as('helper_probe');
select is(auth.uid(), tests.user_id('helper_probe'), 'authenticate_as sets auth.uid() to the user');
select is(current_user::text, 'authenticated', 'authenticate_as switches to the authenticated role');
select tests.clear_authentication();
select is(current_user::text, 'postgres', 'clear_authentication returns to the test runner');
select tests.authenticate_as_anon();
select is(auth.role(), 'anon', 'authenticate_as_anon sets the anon role claim');
select tests.clear_authentication();

select * from finish();

-- Keep the helpers (this file's one commit); remove the probe user it created.
delete from auth.users where id = (select id from tests.users where handle = 'helper_probe');
delete from tests.users where handle = 'helper_probe';
commit;
