-- search() never returns deleted rows: a soft-deleted task and the subtasks deleted with it stay out of full-text and
-- trigram results alike, and come back when restored.
begin;
select plan(6);

create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to anon, authenticated, service_role;
create function pg_temp.id(key text) returns uuid language sql stable as $$ select id from ids where name = key $$;
grant execute on function pg_temp.id(text) to anon, authenticated, service_role;
create function pg_temp.new_task(key text, project text, title text, description text default null, parent text default null)
returns void language sql as $$
  with t as (insert into public.tasks (project_id, title, description, parent_task_id)
             values (pg_temp.id(project), title, description, pg_temp.id(parent)) returning id)
  insert into ids select key, id from t
$$;
grant execute on function pg_temp.new_task(text, text, text, text, text) to authenticated;
-- The ids a search returns, best first; only this file's rows (the demo seed may hold matching rows too).
create function pg_temp.found(query text, entity_types text[] default null, within_project uuid default null,
                              max_results integer default 20) returns uuid[]
language sql as $$ select coalesce(array_agg(s.entity_id order by s.rank desc, s.entity_type, s.entity_id), '{}')
                   from public.search(query, entity_types, within_project, max_results) s
                   where s.entity_id in (select id from ids) $$;
grant execute on function pg_temp.found(text, text[], uuid, integer) to anon, authenticated, service_role;

select tests.create_user(h) from unnest(array['se_owner', 'se_editor', 'se_viewer', 'se_outsider', 'se_stranger']) h;
select tests.create_organization('se_owner', 'test-se');
select tests.create_organization('se_stranger', 'test-se-other');
select tests.add_member(tests.org_id('test-se'), 'se_editor', 'member');
select tests.add_member(tests.org_id('test-se'), 'se_viewer', 'viewer');
select tests.add_member(tests.org_id('test-se'), 'se_outsider', 'member');
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
select pg_temp.new_task('deploy_title', 'apollo', 'Deploy the landing page', 'Ship the marketing site before the launch');
select pg_temp.new_task('deploy_body', 'apollo', 'Write release notes', 'Mention the deploy steps');
select pg_temp.new_task('login_page', 'apollo', 'Fix login page', 'Users see an error');
select pg_temp.new_task('page_login', 'apollo', 'Page for login', 'Words in the other order');
select pg_temp.new_task('pager', 'apollo', 'Pager rotation', 'Who is on call');
select pg_temp.new_task('billing', 'apollo', 'Refactor billing', null);
select pg_temp.new_task('apollo_retro', 'apollo', 'Apollo retro', 'What went well');
select pg_temp.new_task('kube', 'zeus', 'Kubernetes migration', 'Move the cluster');
select pg_temp.new_task('kube_sub', 'zeus', 'Drain the kubernetes nodes', null, 'kube');
select pg_temp.new_task('foreign', 'elsewhere', 'Deploy the other thing', null);

select tests.authenticate_as('se_editor');
select lives_ok($$update public.tasks set deleted_at = now() where id = pg_temp.id('kube')$$, 'the editor soft-deletes a task with a subtask');
select is(pg_temp.found('kubernetes', array['task']), '{}'::uuid[], 'neither the task nor its subtask is found by full text');
select is(pg_temp.found('kubernetse', array['task']), '{}'::uuid[], 'nor by trigram');
select is(pg_temp.found('kubernetes', array['project']), array[pg_temp.id('zeus')], 'the project is still found');
select lives_ok($$update public.tasks set deleted_at = null where id = pg_temp.id('kube')$$, 'the editor restores the task');
select is(cardinality(pg_temp.found('kubernetes', array['task'])), 2, 'and both are found again');

select * from finish();
rollback;
