-- search() over comments: found by full text with their task's title and project, under the comments' RLS; never a
-- soft-deleted comment (not even for its author) nor a comment of a soft-deleted task; no trigram matches.
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
create function pg_temp.new_comment(key text, task text, content text) returns void
language sql as $$
  with c as (insert into public.comments (task_id, content) values (pg_temp.id(task), content) returning id)
  insert into ids select key, id from c
$$;
grant execute on function pg_temp.new_comment(text, text, text) to authenticated;

select tests.authenticate_as('se_owner');
select pg_temp.new_comment('live', 'deploy_title', 'The rollout needs a feature flag');
select pg_temp.new_comment('private', 'kube', 'Rollout of the cluster needs downtime');
select pg_temp.new_comment('deleted', 'deploy_title', 'Rollout notes, withdrawn');
select pg_temp.new_comment('on_deleted_task', 'billing', 'Rollout billing later');
update public.comments set deleted_at = now() where id = pg_temp.id('deleted');
update public.tasks set deleted_at = now() where id = pg_temp.id('billing');

select is((select array_agg(entity_id order by entity_id) from public.search('rollout', array['comment'])),
          (select array_agg(id order by id) from ids where name in ('live', 'private')),
          'the owner finds the live comments, not the deleted one they wrote nor the one on a deleted task');
select ok(exists (select 1 from public.comments where id = pg_temp.id('deleted')), 'although RLS still shows its author the deleted comment');
select is((select title || ' / ' || snippet from public.search('rollout', array['comment']) where entity_id = pg_temp.id('live')),
          'Deploy the landing page / **rollout** needs a feature flag', 'a comment comes with its task''s title and a snippet of its content');
select is((select project_id from public.search('rollout', array['comment']) where entity_id = pg_temp.id('live')), pg_temp.id('apollo'),
          'and with its project');
select is(pg_temp.found('rollout', array['comment'], pg_temp.id('zeus')), array[pg_temp.id('private')], 'within_project finds that project''s comments');
select is(pg_temp.found('rolout', array['comment']), '{}'::uuid[], 'comments are found by full text only, not by trigram');
select is(pg_temp.found('"feature flag"', array['comment']), array[pg_temp.id('live')], 'a quoted phrase finds the comment holding it');
select is(pg_temp.found('"flag feature"', array['comment']), '{}'::uuid[], 'but not the words in another order');
update public.tasks set deleted_at = null where id = pg_temp.id('billing');
select ok(pg_temp.id('on_deleted_task') = any(pg_temp.found('rollout', array['comment'])), 'restoring the task brings its comment back');

select tests.authenticate_as('se_viewer');
select is(cardinality(pg_temp.found('rollout', array['comment'])), 3, 'a project viewer of the private project finds its comments too');
select tests.authenticate_as('se_outsider');
select is((select array_agg(entity_id order by entity_id) from public.search('rollout', array['comment'])),
          (select array_agg(id order by id) from ids where name in ('live', 'on_deleted_task')),
          'an organization member outside the private project finds only the organization-visible comments');
select tests.authenticate_as('se_stranger');
select is(pg_temp.found('rollout'), '{}'::uuid[], 'a stranger finds no comment');

select tests.clear_authentication();
update public.organizations set settings = settings || '{"text_search_config": "simple"}' where id = tests.org_id('test-se');
select is((select search_vector from public.comments where id = pg_temp.id('live')),
          setweight(to_tsvector('simple', 'The rollout needs a feature flag'), 'B'), 'a configuration change re-indexes the comments');
select tests.authenticate_as('se_owner');
select throws_ok($$update public.comments set search_vector = null where id = pg_temp.id('live')$$,
                 '42501', null, 'clients cannot write a comment''s search vector');

select * from finish();
rollback;
