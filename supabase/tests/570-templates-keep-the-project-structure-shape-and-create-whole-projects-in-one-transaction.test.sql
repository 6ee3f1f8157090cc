-- Templates: project_structure in the seed's ProjectStructure shape, template_tasks derived from it, who reads and
-- writes templates, official only by platform administrators, and create_project_from_template() building the
-- project, its tasks, subtasks and suggested skills at once, counting the use, and changing nothing when refused.
begin;
select plan(45);

create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to anon, authenticated, service_role;
create function pg_temp.id(key text) returns uuid language sql stable as $$ select id from ids where name = key $$;
grant execute on function pg_temp.id(text) to anon, authenticated, service_role;
create function pg_temp.bad(structure text) returns text language sql as $$
  select format($f$insert into public.templates (organization_id, name, description, category, project_structure)
                   values (tests.org_id('test-tp'), 'Bad', 'Bad', 'dev', %L)$f$, structure)
$$;
grant execute on function pg_temp.bad(text) to authenticated;

select tests.create_user(h) from unnest(array['tp_owner', 'tp_member', 'tp_viewer', 'tp_stranger']) h;
select tests.create_user('tp_platform', null, '{"platform_admin": true}');
select tests.create_organization('tp_owner', 'test-tp');
select tests.create_organization('tp_stranger', 'test-tp-other');
select tests.add_member(tests.org_id('test-tp'), 'tp_member', 'member');
select tests.add_member(tests.org_id('test-tp'), 'tp_viewer', 'viewer');
with s as (insert into public.skills (organization_id, name, description, prompt, category)
           values (tests.org_id('test-tp'), 'API design', 'Designs REST APIs', 'Design {{thing}}', 'development') returning id)
insert into ids select 'own_skill', id from s;
with s as (insert into public.skills (organization_id, name, description, prompt, category, is_public)
           values (tests.org_id('test-tp-other'), 'Release notes', 'Writes release notes', 'Summarise {{commits}}', 'writing', true) returning id)
insert into ids select 'public_skill', id from s;

-- The shape.
select tests.authenticate_as('tp_member');
select throws_ok(pg_temp.bad('[]'), '23514', null, 'a project structure is an object');
select throws_ok(pg_temp.bad('{"tasks": []}'), '23514', null, 'with at least one task');
select throws_ok(pg_temp.bad('{"tasks": [{"description": "no title"}]}'), '23514', null, 'each task has a title');
select throws_ok(pg_temp.bad('{"tasks": [{"title": "A", "priority": "asap"}]}'), '23514', null, 'a known priority');
select throws_ok(pg_temp.bad('{"tasks": [{"title": "A", "estimatedMinutes": -5}]}'), '23514', null, 'non-negative whole estimated minutes');
select throws_ok(pg_temp.bad('{"tasks": [{"title": "A", "estimatedMinutes": "60"}]}'), '23514', null, 'given as a number');
select throws_ok(pg_temp.bad('{"tasks": [{"title": "A", "skills": [1]}]}'), '23514', null, 'skills as names');
select throws_ok(pg_temp.bad('{"tasks": [{"title": "A", "owner": "me"}]}'), '23514', null, 'and no unknown keys');
select throws_ok(pg_temp.bad('{"tasks": [{"title": "A", "subtasks": [{"title": ""}]}]}'), '23514', null, 'subtasks have the same shape');
select throws_ok(pg_temp.bad('{"tasks": [{"title": "1", "subtasks": [{"title": "2", "subtasks": [{"title": "3", "subtasks": [{"title": "4", "subtasks": [{"title": "5", "subtasks": [{"title": "6"}]}]}]}]}]}]}'),
                 '23514', null, 'nested at most five levels');
select throws_ok(pg_temp.bad('{"tasks": [{"title": "A"}], "automations": [{"name": "x", "trigger": "daily", "actions": []}]}'), '23514', null,
                 'an automation''s trigger is an object');
select lives_ok($$with t as (insert into public.templates (organization_id, name, description, category, tags, project_structure)
  values (tests.org_id('test-tp'), 'API launch', 'Ship a public API', 'development', '{api}',
          '{"tasks": [{"title": "Design", "priority": "high", "estimatedMinutes": 120, "skills": ["api design", "Unknown skill"],
                       "subtasks": [{"title": "Endpoints"}, {"title": "Errors", "subtasks": [{"title": "Error codes"}]}]},
                      {"title": "Announce", "skills": ["Release notes"]}],
            "skills": ["API design"],
            "automations": [{"name": "Notify on done", "trigger": {"type": "status_change", "to": "done"}, "actions": [{"type": "notify"}]}]}')
  returning id) insert into ids select 'private_template', id from t$$, 'a projects.manage holder writes a template in the ProjectStructure shape');
select is((select count(*)::int from public.template_tasks where template_id = pg_temp.id('private_template')), 5,
          'its tasks and subtasks become template_tasks');
select is((select array_agg(title order by position) from public.template_tasks where parent_template_task_id =
            (select id from public.template_tasks where template_id = pg_temp.id('private_template') and title = 'Design')),
          array['Endpoints', 'Errors'], 'in the structure''s order under their parent');
select lives_ok($$update public.templates set project_structure = jsonb_set(project_structure, '{tasks,1,title}', '"Announce it"') where id = pg_temp.id('private_template')$$,
                'the author edits the structure');
select is((select count(*)::int from public.template_tasks where template_id = pg_temp.id('private_template') and title = 'Announce it'), 1,
          'and the template_tasks follow');
select lives_ok($$with t as (insert into public.templates (organization_id, name, description, category, project_structure, is_public)
  values (tests.org_id('test-tp'), 'Blog post', 'Write and publish', 'writing', '{"tasks": [{"title": "Draft"}, {"title": "Publish"}]}', true)
  returning id) insert into ids select 'public_template', id from t$$, 'and publishes a public one');
select throws_ok($$update public.templates set usage_count = 9$$, '42501', null, 'usage_count is derived');
select throws_ok($$update public.projects set template_id = pg_temp.id('public_template')$$, '42501', null, 'projects.template_id is set only by the function');

-- Who reads and writes.
select tests.authenticate_as('tp_viewer');
select is((select count(*)::int from public.templates where organization_id = tests.org_id('test-tp')), 2, 'an organization viewer reads its templates');
select throws_ok($$insert into public.templates (organization_id, name, description, category, project_structure) values (tests.org_id('test-tp'), 'x', 'x', 'dev', '{"tasks": [{"title": "x"}]}')$$,
                 '42501', null, 'but writes none');
select tests.authenticate_as('tp_stranger');
select is((select array_agg(name) from public.templates where organization_id = tests.org_id('test-tp')), array['Blog post'],
          'another organization''s member reads only the public template');
select is((select count(*)::int from public.template_tasks where template_id = pg_temp.id('private_template')), 0, 'and none of the private one''s tasks');
select is(tests.rows_affected($$update public.templates set name = 'mine' where id = pg_temp.id('public_template')$$), 0::bigint, 'nor changes the public one');
select tests.authenticate_as_anon();
select throws_ok($$select count(*) from public.templates$$, '42501', null, 'anon reads no template');
select tests.authenticate_as('tp_owner');
select throws_ok($$update public.templates set is_official = true where id = pg_temp.id('public_template')$$, '42501', null,
                 'the organization owner cannot mark a template official');
select tests.authenticate_as('tp_platform');
select lives_ok($$update public.templates set is_official = true where id = pg_temp.id('public_template')$$, 'a platform administrator can');

-- create_project_from_template.
select tests.authenticate_as('tp_viewer');
select throws_ok($$select public.create_project_from_template(pg_temp.id('private_template'), tests.org_id('test-tp'), 'Mine')$$, '42501', null,
                 'a viewer cannot create a project from a template');
select tests.authenticate_as('tp_member');
select throws_ok($$select public.create_project_from_template(pg_temp.id('private_template'), tests.org_id('test-tp'), '   ')$$, '23514', null,
                 'a blank title is refused');
select throws_ok($$select public.create_project_from_template(pg_temp.id('private_template'), tests.org_id('test-tp'), null)$$, '22004', null,
  'a project from a template needs a title (null is refused before anything is written)');
select throws_ok($$select public.create_project_from_template(null, tests.org_id('test-tp'), 'No template')$$, '22004', null,
  'and a template id');
select throws_ok($$select public.create_project_from_template(pg_temp.id('private_template'), null, 'No organization')$$, '22004', null,
  'and an organization');
select is((select usage_count from public.templates where id = pg_temp.id('private_template')), 0, 'and the refused call counted nothing');
select is((select count(*)::int from public.projects where organization_id = tests.org_id('test-tp')), 0, 'nor left a project behind');
select lives_ok($$insert into ids select 'project', public.create_project_from_template(pg_temp.id('private_template'), tests.org_id('test-tp'), 'Payments API')$$,
                'a projects.manage holder creates a project from a template');
select is((select (title, owner_id, template_id, organization_id) from public.projects where id = pg_temp.id('project')),
          ('Payments API'::text, tests.user_id('tp_member'), pg_temp.id('private_template'), tests.org_id('test-tp')),
          'the project is theirs and remembers its template');
select is((select array_agg(t.title || coalesce(' < ' || p.title, '') order by t.title) from public.tasks t left join public.tasks p on p.id = t.parent_task_id
           where t.project_id = pg_temp.id('project')),
          array['Announce it', 'Design', 'Endpoints < Design', 'Error codes < Errors', 'Errors < Design'], 'with its tasks and subtasks');
select is((select (priority, estimated_minutes) from public.tasks where project_id = pg_temp.id('project') and title = 'Design'), ('high'::text, 120),
          'carrying priority and estimate');
select is((select array_agg(s.name || ' > ' || t.title order by t.title, s.name) from public.task_suggested_skills x
           join public.tasks t on t.id = x.task_id join public.skills s on s.id = x.skill_id where t.project_id = pg_temp.id('project')),
          array['API design > Announce it', 'Release notes > Announce it', 'API design > Design'],
          'and the suggested skills resolved by name (the structure''s own skills on every top-level task; unknown names skipped)');
select is((select usage_count from public.templates where id = pg_temp.id('private_template')), 1, 'the template counts the use');

select tests.authenticate_as('tp_stranger');
select throws_ok($$select public.create_project_from_template(pg_temp.id('private_template'), tests.org_id('test-tp-other'), 'Copy')$$, 'P0002', null,
                 'a private template of another organization cannot be used');
select throws_ok($$select public.create_project_from_template(pg_temp.id('public_template'), tests.org_id('test-tp'), 'Copy')$$, '42501', null,
                 'nor a public one in an organization without projects.manage');
select lives_ok($$insert into ids select 'blog', public.create_project_from_template(pg_temp.id('public_template'), tests.org_id('test-tp-other'), 'Our blog')$$,
                'a public template is used in the caller''s organization');
select tests.authenticate_as('tp_member');
select lives_ok($$delete from public.templates where id = pg_temp.id('private_template')$$, 'a projects.manage holder deletes a template');
select is((select (template_id, (select count(*)::int from public.tasks t where t.project_id = p.id)) from public.projects p where p.id = pg_temp.id('project')),
          (null::uuid, 5), 'the projects made from it stay, with their tasks, without the link');

select * from finish();
rollback;
