-- search(): weighted full text with the websearch syntax, ts_headline snippets, trigram matches for partial and misspelt
-- words ranked below every full-text match, the entity-type, project and size filters, and bad arguments (22023).
begin;
select plan(24);

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
-- Weights: a title match (A) ranks above a body match (B).
select is(pg_temp.found('deploy'), array[pg_temp.id('deploy_title'), pg_temp.id('deploy_body')],
          'a word finds the tasks that hold it, the one with it in the title first');
select ok((select bool_and(rank > 1 and rank < 2) from public.search('deploy') where entity_id in (select id from ids)), 'full-text matches rank between 1 and 2');
select is((select snippet from public.search('deploy') where entity_id = pg_temp.id('deploy_body')), 'Mention the **deploy** steps',
          'the snippet is the body with the match in bold');
select is((select snippet from public.search('deploy') where entity_id = pg_temp.id('deploy_title')), '**Deploy** the landing page',
          'when only the title matches, the snippet is the title');
select is((select array_agg(entity_type || ':' || title order by title) from public.search('countdown') where entity_id in (select id from ids)),
          array['project:Apollo launch'], 'projects are found by their description');
select is((select project_id from public.search('deploy') where entity_id = pg_temp.id('deploy_title')), pg_temp.id('apollo'),
          'a task comes with its project');
-- The websearch syntax.
select is((select array_agg(entity_id) from public.search('"login page"', array['task']) where rank > 1), array[pg_temp.id('login_page')],
          'a quoted phrase finds by full text the words in that order only');
select is(pg_temp.found('deploy -notes'), array[pg_temp.id('deploy_title')], 'a minus excludes a word');
select is((select array_agg(title order by title) from public.search('billing or countdown') where entity_id in (select id from ids)), array['Apollo launch', 'Refactor billing'],
          'or finds either word');
select is(pg_temp.found('deployed'), array[pg_temp.id('deploy_title'), pg_temp.id('deploy_body')],
          'words are stemmed (english by default): deployed finds deploy');
-- Trigram matches for what full text cannot find.
select is(pg_temp.found('deplo', array['task']), array[pg_temp.id('deploy_title')], 'a partial word finds the title it starts');
select is((select array_agg(entity_id order by entity_id) from public.search('kubernetse', array['task'])),
          (select array_agg(id order by id) from ids where name in ('kube', 'kube_sub')), 'a misspelt word finds the titles it resembles');
select ok((select bool_and(rank > 0 and rank < 1) from public.search('kubernetse') where entity_id in (select id from ids)), 'trigram matches rank below 1');
select is((select array_agg(case when s.rank > 1 then 'full text: ' else 'trigram: ' end || i.name order by s.rank desc, i.name)
           from public.search('page', array['task']) s join ids i on i.id = s.entity_id),
          array['full text: deploy_title', 'full text: login_page', 'full text: page_login', 'trigram: pager'],
          'full-text matches come first, then trigram matches (pager) fill the remaining places');
-- Filters.
select is((select array_agg(entity_type order by entity_type) from public.search('apollo') where entity_id in (select id from ids)), array['project', 'task'],
          'without entity_types every type is searched');
select is(pg_temp.found('apollo', array['project']), array[pg_temp.id('apollo')], 'entity_types limits the types');
select is(pg_temp.found('kubernetes', null, pg_temp.id('apollo')), '{}'::uuid[], 'within_project limits the search to one project');
select is(cardinality(pg_temp.found('kubernetes', null, pg_temp.id('zeus'))), 3, 'which finds that project''s rows');
select is(pg_temp.found('deploy', null, null, 1), array[pg_temp.id('deploy_title')], 'max_results keeps the best ones');
-- Bad arguments.
select throws_ok($$select * from public.search('   ')$$, '22023', null, 'a blank query is refused');
select throws_ok($$select * from public.search(null)$$, '22023', null, 'a null query is refused');
select throws_ok($$select * from public.search(repeat('a', 201))$$, '22023', null, 'a query over 200 characters is refused');
select throws_ok($$select * from public.search('deploy', array['invoice'])$$, '22023', null, 'an unknown entity type is refused');
select throws_ok($$select * from public.search('deploy', null, null, 101)$$, '22023', null, 'max_results over 100 is refused');

select * from finish();
rollback;
