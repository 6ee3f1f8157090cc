-- search() runs as the caller: RLS decides what comes back. A private project's rows reach only its members and
-- projects.admin holders, through full text and trigram matches alike; strangers find nothing, anon cannot call it.
begin;
select plan(15);

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

select tests.authenticate_as('se_owner');
select is(cardinality(pg_temp.found('kubernetes')), 3, 'the organization owner (projects.admin) finds the private project and its tasks');
select is(cardinality(pg_temp.found('deploy')), 2, 'and the organization-visible tasks, not another organization''s');
select tests.authenticate_as('se_editor');
select is(cardinality(pg_temp.found('kubernetes')), 3, 'a project editor finds the private project''s rows');
select tests.authenticate_as('se_viewer');
select is(cardinality(pg_temp.found('kubernetes')), 3, 'a project viewer finds them too');
select is(cardinality(pg_temp.found('deploy')), 2, 'and an organization viewer finds the organization-visible tasks');
select tests.authenticate_as('se_outsider');
select is(pg_temp.found('kubernetes'), '{}'::uuid[], 'an organization member outside the private project finds none of its rows');
select is(pg_temp.found('kubernetse'), '{}'::uuid[], 'not through trigram matches either');
select is(pg_temp.found('vault', array['project']), '{}'::uuid[], 'nor the private project itself');
select is(pg_temp.found('kubernetes', null, pg_temp.id('zeus')), '{}'::uuid[], 'nor by naming the project');
select is(cardinality(pg_temp.found('deploy')), 2, 'but finds the organization-visible tasks');
select tests.authenticate_as('se_stranger');
select is(pg_temp.found('deploy'), array[pg_temp.id('elsewhere'), pg_temp.id('foreign')],
          'a member of another organization finds only that organization''s rows');
select is(pg_temp.found('kubernetes'), '{}'::uuid[], 'and none of this one''s');
select tests.authenticate_as_anon();
select throws_ok($$select * from public.search('deploy')$$, '42501', null, 'anon cannot search');
select tests.authenticate_as_service_role();
select throws_ok($$select * from public.search('deploy')$$, '42501', null, 'the service role cannot search: search is for signed-in users');
select tests.clear_authentication();
select is((select prosecdef from pg_proc where oid = 'public.search(text, text[], uuid, integer)'::regprocedure), false,
          'search runs as its caller (security invoker)');

select * from finish();
rollback;
