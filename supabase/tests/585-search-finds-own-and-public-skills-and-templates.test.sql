-- search() over skills and templates: the organization's own (with projects.read) and public ones of any organization,
-- never another organization's private ones; full text and trigram on names; no project, so within_project skips them.
begin;
select plan(10);

select tests.create_search_fixture();
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
