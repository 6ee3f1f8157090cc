-- Time entries: who logs time (owners, editors, commenters, projects.admin; never viewers), someone else's entry only
-- with projects.admin, one running timer per user, no overlaps (23P01), the derived duration, and the actor matrix.
begin;
select plan(35);

create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to anon, authenticated, service_role;
create function pg_temp.id(key text) returns uuid language sql stable as $$ select id from ids where name = key $$;
grant execute on function pg_temp.id(text) to anon, authenticated, service_role;
create function pg_temp.at(hhmm text) returns timestamptz language sql immutable as $$ select ('2026-11-02 ' || hhmm || 'Z')::timestamptz $$;
grant execute on function pg_temp.at(text) to anon, authenticated, service_role;

select tests.create_user(h) from unnest(array['te_owner', 'te_editor', 'te_commenter', 'te_viewer', 'te_outsider', 'te_stranger']) h;
select tests.create_organization('te_owner', 'test-te');
select tests.create_organization('te_stranger', 'test-te-other');
select tests.add_member(tests.org_id('test-te'), h, 'member') from unnest(array['te_editor', 'te_commenter', 'te_outsider']) h;
select tests.add_member(tests.org_id('test-te'), 'te_viewer', 'viewer');
with p as (insert into public.projects (organization_id, owner_id, title, visibility)
           values (tests.org_id('test-te'), tests.user_id('te_owner'), 'Private', 'private') returning id)
insert into ids select 'project', id from p;
insert into public.project_members (project_id, user_id, role) values
  (pg_temp.id('project'), tests.user_id('te_editor'), 'editor'),
  (pg_temp.id('project'), tests.user_id('te_commenter'), 'commenter'),
  (pg_temp.id('project'), tests.user_id('te_viewer'), 'viewer');
with t as (insert into public.tasks (project_id, title) values (pg_temp.id('project'), 'Build') returning id)
insert into ids select 'task', id from t;
with t as (insert into public.tasks (project_id, title) values (pg_temp.id('project'), 'Test') returning id)
insert into ids select 'other_task', id from t;

-- Who logs time.
select tests.authenticate_as('te_editor');
select lives_ok($$insert into public.time_entries (task_id, start_time, end_time, is_manual) values (pg_temp.id('task'), pg_temp.at('09:00'), pg_temp.at('10:30'), true)$$,
                'a project editor logs their own time');
select is((select (user_id, duration) from public.time_entries where task_id = pg_temp.id('task')),
          (tests.user_id('te_editor'), 5400), 'the entry is theirs and its duration is derived in seconds');
select throws_ok($$update public.time_entries set duration = 60$$, '428C9', null, 'duration is generated and cannot be written');
select throws_ok($$insert into public.time_entries (task_id, user_id, start_time, end_time) values (pg_temp.id('task'), tests.user_id('te_commenter'), pg_temp.at('11:00'), pg_temp.at('12:00'))$$,
                 '42501', null, 'an editor cannot log time for someone else');
select tests.authenticate_as('te_commenter');
select lives_ok($$insert into public.time_entries (task_id, start_time, end_time) values (pg_temp.id('task'), pg_temp.at('09:00'), pg_temp.at('09:45'))$$,
                'a project commenter logs their own time (overlapping someone else''s is fine)');
select tests.authenticate_as('te_viewer');
select throws_ok($$insert into public.time_entries (task_id, start_time, end_time) values (pg_temp.id('task'), pg_temp.at('09:00'), pg_temp.at('10:00'))$$,
                 '42501', null, 'a project viewer cannot log time');
select tests.authenticate_as('te_outsider');
select throws_ok($$insert into public.time_entries (task_id, start_time, end_time) values (pg_temp.id('task'), pg_temp.at('09:00'), pg_temp.at('10:00'))$$,
                 '42501', null, 'an organization member outside the private project cannot log time');
select tests.authenticate_as('te_stranger');
select throws_ok($$insert into public.time_entries (task_id, start_time, end_time) values (pg_temp.id('task'), pg_temp.at('09:00'), pg_temp.at('10:00'))$$,
                 '42501', null, 'a stranger cannot log time');
select tests.authenticate_as('te_owner');
select lives_ok($$insert into public.time_entries (task_id, user_id, start_time, end_time) values (pg_temp.id('task'), tests.user_id('te_commenter'), pg_temp.at('13:00'), pg_temp.at('13:30'))$$,
                'a projects.admin holder logs time for a project member');
select throws_ok($$insert into public.time_entries (task_id, user_id, start_time, end_time) values (pg_temp.id('task'), tests.user_id('te_stranger'), pg_temp.at('13:00'), pg_temp.at('13:30'))$$,
                 '23514', null, 'but not for someone outside the organization');

-- Shape rules.
select tests.authenticate_as('te_editor');
select throws_ok($$insert into public.time_entries (task_id, start_time, end_time) values (pg_temp.id('task'), pg_temp.at('12:00'), pg_temp.at('11:00'))$$,
                 '23514', null, 'an entry ends after it starts');
select throws_ok($$insert into public.time_entries (task_id, start_time, end_time, hourly_rate) values (pg_temp.id('task'), pg_temp.at('14:00'), pg_temp.at('15:00'), 80)$$,
                 '23514', null, 'an hourly rate needs billable time');
select lives_ok($$insert into public.time_entries (task_id, start_time, end_time, is_billable, hourly_rate) values (pg_temp.id('task'), pg_temp.at('14:00'), pg_temp.at('15:00'), true, 80)$$,
                'billable time carries its hourly rate');

-- No overlaps, one running timer.
select throws_ok($$insert into public.time_entries (task_id, start_time, end_time) values (pg_temp.id('other_task'), pg_temp.at('10:00'), pg_temp.at('11:00'))$$,
                 '23P01', null, 'a user''s entries never overlap, even on another task');
select lives_ok($$insert into public.time_entries (task_id, start_time, end_time) values (pg_temp.id('other_task'), pg_temp.at('10:30'), pg_temp.at('11:00'))$$,
                'an entry may start where the previous one ended');
select lives_ok($$insert into public.time_entries (task_id, start_time) values (pg_temp.id('other_task'), pg_temp.at('16:00'))$$, 'a timer starts');
select is((select duration from public.time_entries where end_time is null and user_id = tests.user_id('te_editor')), null::integer,
          'a running timer has no duration yet');
select throws_ok($$insert into public.time_entries (task_id, start_time) values (pg_temp.id('task'), pg_temp.at('17:00'))$$,
                 '23505', null, 'a second timer cannot run at the same time');
select throws_ok($$insert into public.time_entries (task_id, start_time, end_time) values (pg_temp.id('task'), pg_temp.at('18:00'), pg_temp.at('18:30'))$$,
                 '23P01', null, 'nor can time be logged after a running timer''s start');
select lives_ok($$update public.time_entries set end_time = pg_temp.at('16:20') where end_time is null and user_id = tests.user_id('te_editor')$$, 'the timer stops');
select lives_ok($$insert into public.time_entries (task_id, start_time) values (pg_temp.id('task'), pg_temp.at('17:00'))$$, 'and a new one can start');
select throws_ok($$update public.time_entries set end_time = null where start_time = pg_temp.at('09:00') and user_id = tests.user_id('te_editor')$$,
                 '23505', null, 'a finished entry cannot be reopened while another timer runs');

-- Editing someone else's entry needs projects.admin.
select is(tests.rows_affected($$update public.time_entries set description = 'mine' where user_id = tests.user_id('te_commenter')$$), 0::bigint,
          'an editor changes no one else''s entry');
select is(tests.rows_affected($$delete from public.time_entries where user_id = tests.user_id('te_commenter')$$), 0::bigint,
          'nor deletes one');
select tests.authenticate_as('te_owner');
select is(tests.rows_affected($$update public.time_entries set description = 'checked' where user_id = tests.user_id('te_commenter')$$), 2::bigint,
          'a projects.admin holder edits anyone''s entries');
select tests.authenticate_as('te_commenter');
select is(tests.rows_affected($$update public.time_entries set description = 'call with client' where start_time = pg_temp.at('09:00')$$), 1::bigint,
          'a commenter edits their own entry');
select tests.authenticate_as('te_viewer');
select is(tests.rows_affected($$update public.time_entries set description = 'x'$$), 0::bigint, 'a viewer changes no entry');

-- Who reads time.
select is((select count(*)::int from public.time_entries), 7, 'a project viewer reads the project''s time');
select tests.authenticate_as('te_outsider');
select is((select count(*)::int from public.time_entries), 0, 'an organization member outside the private project reads none');
select tests.authenticate_as('te_stranger');
select is((select count(*)::int from public.time_entries), 0, 'a stranger reads none');
select tests.authenticate_as_anon();
select throws_ok($$select count(*) from public.time_entries$$, '42501', null, 'anon cannot read time entries');
select tests.authenticate_as_service_role();
select is((select count(*)::int from public.time_entries where project_id = pg_temp.id('project')), 7, 'the service role reads every entry');
select throws_ok($$update public.time_entries set organization_id = tests.org_id('test-te-other')$$, '42501', null,
                 'nobody moves an entry to another organization by hand');

-- Deleting an account stops its running timer and keeps its entries for the organization.
select tests.clear_authentication();
delete from auth.users where id = tests.user_id('te_editor');
select is((select count(*)::int from public.time_entries where user_id is null and project_id = pg_temp.id('project')), 5,
          'the deleted user''s entries stay, without their id');
select is((select count(*)::int from public.time_entries where end_time is null and project_id = pg_temp.id('project')), 0,
          'and their running timer was stopped');

select * from finish();
rollback;
