-- The actor matrix of the tables of 54-56 on a private project: organization owner, project editor, project viewer,
-- organization member outside the project, stranger, anon and the service role, reading and writing each table.
begin;
select plan(29);

create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to anon, authenticated, service_role;
create function pg_temp.id(key text) returns uuid language sql stable as $$ select id from ids where name = key $$;
grant execute on function pg_temp.id(text) to anon, authenticated, service_role;
-- What the current actor sees: time_entries, task_executions, task_suggested_skills, skills, skill_tags,
-- skill_reviews, templates, template_tasks (rows of the fixture only).
create function pg_temp.seen() returns int[] language sql stable as $$
  select array[
    (select count(*)::int from public.time_entries where task_id = pg_temp.id('task')),
    (select count(*)::int from public.task_executions where task_id = pg_temp.id('task')),
    (select count(*)::int from public.task_suggested_skills where task_id = pg_temp.id('task')),
    (select count(*)::int from public.skills where id = pg_temp.id('skill')),
    (select count(*)::int from public.skill_tags where skill_id = pg_temp.id('skill')),
    (select count(*)::int from public.skill_reviews where skill_id = pg_temp.id('skill')),
    (select count(*)::int from public.templates where id = pg_temp.id('template')),
    (select count(*)::int from public.template_tasks where template_id = pg_temp.id('template'))]
$$;
grant execute on function pg_temp.seen() to authenticated, service_role;

select tests.create_user(h) from unnest(array['am_owner', 'am_editor', 'am_viewer', 'am_outsider', 'am_stranger']) h;
select tests.create_organization('am_owner', 'test-am');
select tests.create_organization('am_stranger', 'test-am-other');
select tests.add_member(tests.org_id('test-am'), h, 'member') from unnest(array['am_editor', 'am_outsider']) h;
select tests.add_member(tests.org_id('test-am'), 'am_viewer', 'viewer');
with p as (insert into public.projects (organization_id, owner_id, title, visibility)
           values (tests.org_id('test-am'), tests.user_id('am_owner'), 'Private', 'private') returning id)
insert into ids select 'project', id from p;
insert into public.project_members (project_id, user_id, role) values
  (pg_temp.id('project'), tests.user_id('am_editor'), 'editor'), (pg_temp.id('project'), tests.user_id('am_viewer'), 'viewer');
with t as (insert into public.tasks (project_id, title) values (pg_temp.id('project'), 'Task') returning id)
insert into ids select 'task', id from t;
with s as (insert into public.skills (organization_id, author_id, name, description, prompt, category)
           values (tests.org_id('test-am'), tests.user_id('am_editor'), 'Skill', 'A skill', 'Do {{x}}', 'dev') returning id)
insert into ids select 'skill', id from s;
insert into public.skill_tags (skill_id, tag) values (pg_temp.id('skill'), 'dev');
insert into public.skill_reviews (skill_id, user_id, rating) values (pg_temp.id('skill'), tests.user_id('am_viewer'), 4);
insert into public.task_suggested_skills (task_id, skill_id) values (pg_temp.id('task'), pg_temp.id('skill'));
insert into public.time_entries (task_id, user_id, start_time, end_time) values (pg_temp.id('task'), tests.user_id('am_editor'), '2026-11-02 09:00Z', '2026-11-02 10:00Z');
insert into public.task_executions (task_id, started_by, prompt, ai_provider, model) values (pg_temp.id('task'), tests.user_id('am_editor'), 'Go', 'openai', 'gpt-4o');
with t as (insert into public.templates (organization_id, name, description, category, project_structure)
           values (tests.org_id('test-am'), 'Template', 'A template', 'dev', '{"tasks": [{"title": "A", "subtasks": [{"title": "B"}]}]}') returning id)
insert into ids select 'template', id from t;

-- Reads.
select tests.authenticate_as('am_owner');
select is(pg_temp.seen(), array[1, 1, 1, 1, 1, 1, 1, 2], 'the organization owner reads every table');
select tests.authenticate_as('am_editor');
select is(pg_temp.seen(), array[1, 1, 1, 1, 1, 1, 1, 2], 'the project editor reads every table');
select tests.authenticate_as('am_viewer');
select is(pg_temp.seen(), array[1, 1, 1, 1, 1, 1, 1, 2], 'the project viewer reads every table');
select tests.authenticate_as('am_outsider');
select is(pg_temp.seen(), array[0, 0, 0, 1, 1, 1, 1, 2], 'a member outside the private project reads the organization''s skills and templates, not the project''s time, runs or suggestions');
select tests.authenticate_as('am_stranger');
select is(pg_temp.seen(), array[0, 0, 0, 0, 0, 0, 0, 0], 'a stranger reads nothing');
select tests.authenticate_as_service_role();
select is(pg_temp.seen(), array[1, 1, 1, 1, 1, 1, 1, 2], 'the service role reads every table');
select tests.authenticate_as_anon();
select throws_ok($$select 1 from public.time_entries$$, '42501', null, 'anon reads no time entry');
select throws_ok($$select 1 from public.task_executions$$, '42501', null, 'no task execution');
select throws_ok($$select 1 from public.task_suggested_skills$$, '42501', null, 'no suggested skill');
select throws_ok($$select 1 from public.skill_tags$$, '42501', null, 'no skill tag');
select throws_ok($$select 1 from public.skill_reviews$$, '42501', null, 'no skill review');
select throws_ok($$select 1 from public.template_tasks$$, '42501', null, 'and no template task');
select throws_ok($$select public.fork_skill(pg_temp.id('skill'), tests.org_id('test-am'))$$, '42501', null, 'nor forks a skill');
select throws_ok($$select public.create_project_from_template(pg_temp.id('template'), tests.org_id('test-am'), 'x')$$, '42501', null, 'nor uses a template');

-- Writes.
select tests.authenticate_as('am_outsider');
select throws_ok($$insert into public.task_executions (task_id, prompt, ai_provider, model) values (pg_temp.id('task'), 'x', 'openai', 'gpt-4o')$$,
                 '42501', null, 'a member outside the project records no AI run');
select throws_ok($$insert into public.task_suggested_skills (task_id, skill_id) values (pg_temp.id('task'), pg_temp.id('skill'))$$,
                 '42501', null, 'nor suggests a skill on its tasks');
select lives_ok($$insert into public.skill_tags (skill_id, tag) values (pg_temp.id('skill'), 'shared')$$, 'but, holding projects.manage, tags the organization''s skill');
select tests.authenticate_as('am_viewer');
select throws_ok($$insert into public.skill_tags (skill_id, tag) values (pg_temp.id('skill'), 'mine')$$, '42501', null, 'an organization viewer tags no skill');
select throws_ok($$insert into public.task_suggested_skills (task_id, skill_id) values (pg_temp.id('task'), pg_temp.id('skill'))$$,
                 '42501', null, 'and, as project viewer, suggests no skill');
select is(tests.rows_affected($$delete from public.task_executions$$), 0::bigint, 'nor deletes a run');
select is(tests.rows_affected($$delete from public.time_entries$$), 0::bigint, 'nor someone else''s time');
select lives_ok($$update public.skill_reviews set comment = 'useful' where user_id = tests.user_id('am_viewer')$$, 'but edits their own review');
select tests.authenticate_as('am_editor');
select throws_ok($$insert into public.template_tasks (template_id, organization_id, position, title) values (pg_temp.id('template'), tests.org_id('test-am'), 9, 'x')$$,
                 '42501', null, 'template tasks are never written by clients');
select is(tests.rows_affected($$delete from public.skill_reviews$$), 0::bigint, 'an editor deletes no one else''s review');
select is(tests.rows_affected($$delete from public.task_suggested_skills where task_id = pg_temp.id('task')$$), 1::bigint, 'the project editor removes a suggestion');
select is((select usage_count from public.skills where id = pg_temp.id('skill')), 0, 'and the skill''s usage count follows');
select tests.authenticate_as('am_stranger');
select is(tests.rows_affected($$update public.skills set name = 'x' where id = pg_temp.id('skill')$$), 0::bigint, 'a stranger changes no skill');
select is(tests.rows_affected($$update public.templates set name = 'x' where id = pg_temp.id('template')$$), 0::bigint, 'nor template');
select tests.authenticate_as_service_role();
select throws_ok($$update public.skills set usage_count = 5$$, '42501', null, 'not even the service role writes a derived count');

select * from finish();
rollback;
