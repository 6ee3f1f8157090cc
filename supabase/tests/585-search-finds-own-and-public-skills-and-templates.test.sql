-- search() over skills and templates: the organization's own (with projects.read) and public ones of any organization,
-- never another organization's private ones; full text and trigram on names; no project, so within_project skips them.
begin;
select plan(10);

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
with s as (insert into public.skills (organization_id, name, description, prompt, category) values
             (tests.org_id('test-se'), 'Code review', 'Reviews a diff for bugs', 'Review {{diff}}', 'development') returning id)
insert into ids select 'own_skill', id from s;
with s as (insert into public.skills (organization_id, name, description, prompt, category, is_public) values
             (tests.org_id('test-se-other'), 'Changelog writer', 'Writes release changelog entries', 'Write', 'writing', true) returning id)
insert into ids select 'public_skill', id from s;
with s as (insert into public.skills (organization_id, name, description, prompt, category) values
             (tests.org_id('test-se-other'), 'Secret sauce', 'A hidden changelog recipe and a review', 'Cook', 'writing') returning id)
insert into ids select 'hidden_skill', id from s;
with t as (insert into public.templates (organization_id, name, description, category, project_structure) values
             (tests.org_id('test-se'), 'Sprint board', 'A kanban template for a sprint', 'agile', '{"tasks": [{"title": "A"}]}') returning id)
insert into ids select 'own_template', id from t;
with t as (insert into public.templates (organization_id, name, description, category, project_structure, is_public) values
             (tests.org_id('test-se-other'), 'Kanban launch plan', 'A public kanban template to launch', 'agile', '{"tasks": [{"title": "A"}]}', true) returning id)
insert into ids select 'public_template', id from t;

select tests.authenticate_as('se_outsider');
select is(pg_temp.found('review', array['skill']), array[pg_temp.id('own_skill')],
          'an organization member finds the organization''s skill, not another organization''s private one');
select is(pg_temp.found('changelog', array['skill']), array[pg_temp.id('public_skill')], 'and finds a public skill of another organization');
select is((select project_id from public.search('review', array['skill']) where entity_id = pg_temp.id('own_skill')), null::uuid, 'a skill has no project');
select is((select array_agg(entity_id order by entity_id) from public.search('kanban', array['template']) where entity_id in (select id from ids)),
          (select array_agg(id order by id) from ids where name in ('own_template', 'public_template')),
          'templates: the organization''s own and public ones');
select is(pg_temp.found('changelg', array['skill']), array[pg_temp.id('public_skill')], 'a misspelt skill name is found by trigram');
select is(pg_temp.found('review', null, pg_temp.id('apollo')), '{}'::uuid[], 'within_project leaves skills and templates out');
select tests.authenticate_as('se_viewer');
select is(pg_temp.found('review', array['skill']), array[pg_temp.id('own_skill')], 'an organization viewer (projects.read) finds the organization''s skill');
select tests.authenticate_as('se_stranger');
select is(pg_temp.found('review', array['skill']), array[pg_temp.id('hidden_skill')], 'the other organization finds its own private skill');
select is(pg_temp.found('kanban', array['template']), array[pg_temp.id('public_template')], 'and not this organization''s template');
select is(pg_temp.found('sprint'), '{}'::uuid[], 'nor anything else of this organization');

select * from finish();
rollback;
