-- Personal data: export_my_data() holds the projects a user owns, their project memberships and favourites and the
-- tasks assigned to them, and nothing of anyone else's; deleting the user keeps the organization's projects and tasks.
begin;
select plan(5);

select tests.create_user(h) from unnest(array['wx_owner', 'wx_worker', 'wx_other']) h;
select tests.create_organization('wx_owner', 'test-wx-personal');
select tests.add_member(tests.org_id('test-wx-personal'), h, 'member') from unnest(array['wx_worker', 'wx_other']) h;
create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to authenticated;

select tests.authenticate_as('wx_owner');
with p as (insert into public.projects (organization_id, title) values (tests.org_id('test-wx-personal'), 'Launch') returning id)
insert into ids select 'project', id from p;
insert into public.project_members (project_id, user_id, role)
  values ((select id from ids where name = 'project'), tests.user_id('wx_worker'), 'editor');
with t as (insert into public.tasks (project_id, title, assignee_id)
  values ((select id from ids where name = 'project'), 'Write the announcement', tests.user_id('wx_worker')) returning id)
insert into ids select 'task', id from t;

select tests.authenticate_as('wx_worker');
insert into public.project_favorites (project_id) values ((select id from ids where name = 'project'));
select results_eq(
  $$select jsonb_array_length(d -> 'projects_owned'), d -> 'project_memberships' -> 0 ->> 'role',
           jsonb_array_length(d -> 'project_favorites'), d -> 'tasks' -> 0 ->> 'title', (d -> 'tasks' -> 0 ->> 'assigned')::boolean
    from (select public.export_my_data() d) x$$,
  $$values (0, 'editor'::text, 1, 'Write the announcement'::text, true)$$,
  'the worker''s export holds their membership, favourite and assigned task, and no project they do not own');
select tests.authenticate_as('wx_owner');
select results_eq($$select d -> 'projects_owned' -> 0 ->> 'title', (d -> 'tasks' -> 0 ->> 'created')::boolean
                    from (select public.export_my_data() d) x$$,
  $$values ('Launch'::text, true)$$, 'the owner''s export holds the project they own and the task they created');
select tests.authenticate_as('wx_other');
select results_eq($$select jsonb_array_length(d -> 'projects_owned') + jsonb_array_length(d -> 'project_memberships')
                         + jsonb_array_length(d -> 'project_favorites') + jsonb_array_length(d -> 'tasks')
                    from (select public.export_my_data() d) x$$,
  $$values (0)$$, 'a member with no work data exports none of the others''');

select tests.clear_authentication();
delete from auth.users where id = tests.user_id('wx_worker');
select results_eq($$select title, assignee_id from public.tasks where id = (select id from ids where name = 'task')$$,
  $$values ('Write the announcement'::text, null::uuid)$$, 'deleting the worker keeps the task without their id');
select is_empty($$select 1 from public.project_members m where m.user_id not in (select id from auth.users)
                  union all select 1 from public.project_favorites f where f.user_id not in (select id from auth.users)$$,
  'and removes their memberships and favourites');

select * from finish();
rollback;
