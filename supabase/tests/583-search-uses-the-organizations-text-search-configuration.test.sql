-- The organization's text-search configuration (organizations.settings.text_search_config): english by default, a
-- known name only (22023 otherwise), simple when the stored name is unknown; changing it re-indexes the organization.
-- The search vectors are derived and not writable by clients.
begin;
select plan(14);

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
select pg_temp.new_task('running', 'apollo', 'Running the smoke tests', null);

select is(private.search_config(tests.org_id('test-se')), 'english'::regconfig, 'an organization without the setting searches in english');
select is((select search_vector from public.tasks where id = pg_temp.id('running')),
          private.search_document('english', 'Running the smoke tests', null), 'a task''s vector is its title (A) and description (B) in that configuration');
select tests.authenticate_as('se_owner');
select is(pg_temp.found('runs', array['task']), array[pg_temp.id('running')], 'english stems: runs finds running');
select throws_ok($$update public.organizations set settings = settings || '{"text_search_config": "klingon"}' where id = tests.org_id('test-se')$$,
                 '22023', null, 'an unknown configuration is refused');
select throws_ok($$update public.organizations set settings = settings || '{"text_search_config": 7}' where id = tests.org_id('test-se')$$,
                 '22023', null, 'a configuration that is not a name is refused');
select lives_ok($$update public.organizations set settings = settings || '{"text_search_config": "simple"}' where id = tests.org_id('test-se')$$,
                'the owner switches the organization to simple');
select is((select search_vector from public.tasks where id = pg_temp.id('running')),
          setweight(to_tsvector('simple', 'Running the smoke tests'), 'A'), 'which re-indexes its tasks');
select is((select count(*)::int from public.search('runs', array['task']) where rank > 1), 0, 'simple does not stem: runs no longer finds running by full text');
select is((select array_agg(entity_id) from public.search('running', array['task']) where rank > 1), array[pg_temp.id('running')],
          'running still does');
select lives_ok($$update public.organizations set settings = settings || '{"text_search_config": "german"}' where id = tests.org_id('test-se')$$,
                'the owner switches to german');
select lives_ok($$select pg_temp.new_task('haeuser', 'apollo', 'Häuser bauen', null)$$, 'the owner adds a German task');
select is((select array_agg(entity_id) from public.search('haus', array['task']) where rank > 1), array[pg_temp.id('haeuser')],
          'german stems: haus finds Häuser');
select throws_ok($$update public.tasks set search_vector = null where id = pg_temp.id('running')$$, '42501', null,
                 'clients cannot write a search vector');

select tests.clear_authentication();
alter table public.organizations disable trigger organizations_check_text_search_config;
update public.organizations set settings = settings || '{"text_search_config": "klingon"}' where id = tests.org_id('test-se');
select is(private.search_config(tests.org_id('test-se')), 'simple'::regconfig, 'a stored name that is no configuration searches as simple');

select * from finish();
rollback;
