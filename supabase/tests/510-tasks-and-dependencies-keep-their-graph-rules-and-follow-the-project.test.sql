-- Tasks and task dependencies: transitions, gapped positions, parents in the same project without cycles, assignees
-- from the project, dependencies without cycles or strangers, soft delete of subtrees, and the actor matrix.
begin;
select plan(54);

create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to anon, authenticated, service_role;
create function pg_temp.id(key text) returns uuid language sql stable as $$ select id from ids where name = key $$;
grant execute on function pg_temp.id(text) to anon, authenticated, service_role;
create function pg_temp.new_task(key text, project text, title text, parent text default null) returns void
language sql as $$
  with t as (insert into public.tasks (project_id, title, parent_task_id) values (pg_temp.id(project), title, pg_temp.id(parent)) returning id)
  insert into ids select key, id from t
$$;
grant execute on function pg_temp.new_task(text, text, text, text) to authenticated;

select tests.create_user(h) from unnest(array['wt_owner', 'wt_editor', 'wt_viewer', 'wt_outsider', 'wt_stranger']) h;
select tests.create_organization('wt_owner', 'test-wt');
select tests.create_organization('wt_stranger', 'test-wt-other');
select tests.add_member(tests.org_id('test-wt'), 'wt_editor', 'member');
select tests.add_member(tests.org_id('test-wt'), 'wt_viewer', 'viewer');
select tests.add_member(tests.org_id('test-wt'), 'wt_outsider', 'member');
with p as (insert into public.projects (organization_id, owner_id, title, visibility)
           values (tests.org_id('test-wt'), tests.user_id('wt_owner'), 'Private', 'private') returning id)
insert into ids select 'private', id from p;
with p as (insert into public.projects (organization_id, owner_id, title)
           values (tests.org_id('test-wt'), tests.user_id('wt_owner'), 'Open') returning id)
insert into ids select 'open', id from p;
with p as (insert into public.projects (organization_id, owner_id, title)
           values (tests.org_id('test-wt-other'), tests.user_id('wt_stranger'), 'Elsewhere') returning id)
insert into ids select 'elsewhere', id from p;
insert into public.project_members (project_id, user_id, role) values
  (pg_temp.id('private'), tests.user_id('wt_editor'), 'editor'),
  (pg_temp.id('private'), tests.user_id('wt_viewer'), 'viewer');
with t as (insert into public.tasks (project_id, title) values (pg_temp.id('elsewhere'), 'Foreign') returning id)
insert into ids select 'foreign', id from t;
with t as (insert into public.tasks (project_id, title) values (pg_temp.id('open'), 'Open task') returning id)
insert into ids select 'open_task', id from t;

-- The project editor builds a small tree.
select tests.authenticate_as('wt_editor');
select lives_ok($$select pg_temp.new_task('a', 'private', 'Design')$$, 'project editor creates a task');
select lives_ok($$select pg_temp.new_task('b', 'private', 'Build')$$, 'and a second one');
select lives_ok($$select pg_temp.new_task('c', 'private', 'Ship')$$, 'and a third one');
select lives_ok($$select pg_temp.new_task('a1', 'private', 'Sketch', 'a')$$, 'and a subtask');
select lives_ok($$select pg_temp.new_task('a1x', 'private', 'Detail', 'a1')$$, 'and a sub-subtask');
select is((select array_agg(position order by position) from public.tasks where project_id = pg_temp.id('private') and parent_task_id is null),
          array[1024, 2048, 3072]::numeric[], 'appended tasks get gapped positions');
select is((select position from public.tasks where id = pg_temp.id('a1')), 1024::numeric, 'positions count within the parent');
select lives_ok($$update public.tasks set position = 1536 where id = pg_temp.id('c')$$, 'a reorder writes one row between its neighbours');
select is((select array_agg(title order by position) from public.tasks where project_id = pg_temp.id('private') and parent_task_id is null),
          array['Design', 'Ship', 'Build'], 'the order follows the positions');

-- Parents: same project, no cycles.
select throws_ok($$update public.tasks set parent_task_id = pg_temp.id('a1x') where id = pg_temp.id('a')$$, '23514', null,
                 'a task cannot become a subtask of its own descendant');
select throws_ok($$update public.tasks set parent_task_id = id where id = pg_temp.id('b')$$, '23514', null, 'a task is not its own parent');
select throws_ok($$insert into public.tasks (project_id, title, parent_task_id) values (pg_temp.id('private'), 'x', pg_temp.id('open_task'))$$,
                 '23514', null, 'the parent must be in the same project');
select lives_ok($$update public.tasks set parent_task_id = pg_temp.id('b') where id = pg_temp.id('a1')$$, 'a subtask moves to another parent');

-- Status transitions.
select throws_ok($$update public.tasks set status = 'blocked' where id = pg_temp.id('c')$$, '23514', null, 'blocked needs a blocked_reason');
select lives_ok($$update public.tasks set status = 'blocked', blocked_reason = 'waiting for legal' where id = pg_temp.id('c')$$, 'blocked with a reason');
select lives_ok($$update public.tasks set status = 'in_progress' where id = pg_temp.id('c')$$, 'the task starts');
select is((select (started_at is not null, blocked_reason) from public.tasks where id = pg_temp.id('c')), (true, null::text),
          'starting stamps started_at and leaving blocked clears the reason');
select lives_ok($$update public.tasks set status = 'done' where id = pg_temp.id('c')$$, 'the task is done');
select isnt((select completed_at from public.tasks where id = pg_temp.id('c')), null, 'done stamps completed_at');
select lives_ok($$update public.tasks set status = 'in_review' where id = pg_temp.id('c')$$, 'the task is reopened for review');
select is((select completed_at from public.tasks where id = pg_temp.id('c')), null, 'leaving done clears completed_at');
select throws_ok($$update public.tasks set status = 'started' where id = pg_temp.id('c')$$, '23514', null, 'unknown status is refused');
select throws_ok($$update public.tasks set priority = 'whenever' where id = pg_temp.id('c')$$, '23514', null, 'unknown priority is refused');
select throws_ok($$update public.tasks set token_usage = '{"prompt_tokens": -1}' where id = pg_temp.id('c')$$, '23514', null, 'token_usage counts are non-negative numbers');
select throws_ok($$update public.tasks set token_usage = '{"words": 3}' where id = pg_temp.id('c')$$, '23514', null, 'token_usage has known keys only');
select throws_ok($$update public.tasks set actual_cost = 3 where id = pg_temp.id('c')$$, '42501', null, 'actual_cost is derived, never written by clients');

-- Assignees come from the project.
select lives_ok($$update public.tasks set assignee_id = tests.user_id('wt_viewer') where id = pg_temp.id('b')$$, 'a project member can be assigned');
select throws_ok($$update public.tasks set assignee_id = tests.user_id('wt_outsider') where id = pg_temp.id('b')$$, '23514', null,
                 'an organization member outside the project cannot be assigned');

-- Dependencies.
select lives_ok($$insert into public.task_dependencies (task_id, blocked_by_task_id) values (pg_temp.id('a'), pg_temp.id('b'))$$, 'Design is blocked by Build');
select lives_ok($$insert into public.task_dependencies (task_id, blocked_by_task_id) values (pg_temp.id('b'), pg_temp.id('c'))$$, 'Build is blocked by Ship');
select throws_ok($$insert into public.task_dependencies (task_id, blocked_by_task_id) values (pg_temp.id('c'), pg_temp.id('a'))$$, '23514', null,
                 'a dependency that closes a cycle through others is refused');
select throws_ok($$insert into public.task_dependencies (task_id, blocked_by_task_id) values (pg_temp.id('b'), pg_temp.id('a'))$$, '23514', null,
                 'a direct two-task cycle is refused');
select throws_ok($$insert into public.task_dependencies (task_id, blocked_by_task_id) values (pg_temp.id('a'), pg_temp.id('a'))$$, '23514', null,
                 'a task does not block itself');
select throws_ok($$update public.tasks set status = 'in_progress' where id = pg_temp.id('a')$$, '55000', null, 'a task cannot start while a blocker is not done');
select lives_ok($$update public.tasks set status = 'done' where id = pg_temp.id('b')$$, 'the blocker is done');
select lives_ok($$update public.tasks set status = 'in_progress' where id = pg_temp.id('a')$$, 'now the task starts');
select tests.clear_authentication();
select throws_ok($$insert into public.task_dependencies (task_id, blocked_by_task_id) values (pg_temp.id('a'), pg_temp.id('foreign'))$$, '23514', null,
                 'a task is blocked only by tasks of its organization');

-- Soft delete hides the subtree and restoring brings it back.
select tests.authenticate_as('wt_editor');
select lives_ok($$update public.tasks set deleted_at = now() where id = pg_temp.id('b')$$, 'the editor soft-deletes a task');
select is((select count(*)::int from public.tasks where id in (pg_temp.id('a1'), pg_temp.id('a1x')) and deleted_at is not null), 2,
          'its subtasks are deleted with it');
select lives_ok($$update public.tasks set deleted_at = null where id = pg_temp.id('b')$$, 'the editor restores it');
select is((select count(*)::int from public.tasks where id in (pg_temp.id('a1'), pg_temp.id('a1x')) and deleted_at is null), 2,
          'its subtasks come back');
select lives_ok($$update public.tasks set tags = array['frontend', 'urgent'] where id = pg_temp.id('a')$$, 'tags are a text array');
select is((select count(*)::int from public.tasks where tags @> array['urgent']), 1, 'tags are searchable by containment');

-- The actor matrix on the private project's tasks.
select tests.authenticate_as('wt_owner');
select is((select count(*)::int from public.tasks where project_id = pg_temp.id('private')), 5, 'the organization owner reads the tasks of a private project');
select tests.authenticate_as('wt_viewer');
select is((select count(*)::int from public.tasks where project_id = pg_temp.id('private')), 5, 'project viewer reads its tasks');
select is((select count(*)::int from public.task_dependencies), 2, 'and their dependencies');
select is(tests.rows_affected($$update public.tasks set title = 'mine' where project_id = pg_temp.id('private')$$), 0::bigint, 'project viewer changes no task');
select throws_ok($$insert into public.tasks (project_id, title) values (pg_temp.id('private'), 'x')$$, '42501', null, 'project viewer creates no task');
select tests.authenticate_as('wt_outsider');
select is((select count(*)::int from public.tasks where project_id = pg_temp.id('private')), 0, 'an organization member outside the private project sees none of its tasks');
select is((select count(*)::int from public.task_dependencies), 0, 'nor their dependencies');
select is((select count(*)::int from public.tasks where id = pg_temp.id('open_task')), 1, 'but reads the organization-visible project''s tasks');
select is(tests.rows_affected($$update public.tasks set title = 'mine' where id = pg_temp.id('open_task')$$), 0::bigint, 'and, not being a project editor, cannot change them');
select tests.authenticate_as('wt_stranger');
select is((select count(*)::int from public.tasks where organization_id = tests.org_id('test-wt')), 0, 'a stranger sees no task of the organization');
select tests.authenticate_as_anon();
select throws_ok($$select count(*) from public.tasks$$, '42501', null, 'anon cannot read tasks');

select * from finish();
rollback;
