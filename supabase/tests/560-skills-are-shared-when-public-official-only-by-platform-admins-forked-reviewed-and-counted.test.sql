-- Skills: who reads and writes them (public ones for every signed-in user), official only by platform
-- administrators, JSON Schemas validated, versions counted, tags, one review per user with the rating derived,
-- suggested skills counting usage, fork_skill() copying into the caller's organization and counting forks.
begin;
select plan(54);

create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to anon, authenticated, service_role;
create function pg_temp.id(key text) returns uuid language sql stable as $$ select id from ids where name = key $$;
grant execute on function pg_temp.id(text) to anon, authenticated, service_role;

select tests.create_user(h) from unnest(array['sk_owner', 'sk_member', 'sk_viewer', 'sk_stranger', 'sk_reviewer']) h;
select tests.create_user('sk_platform', null, '{"platform_admin": true}');
select tests.create_organization('sk_owner', 'test-sk');
select tests.create_organization('sk_stranger', 'test-sk-other');
select tests.add_member(tests.org_id('test-sk'), 'sk_member', 'member');
select tests.add_member(tests.org_id('test-sk'), 'sk_viewer', 'viewer');
with p as (insert into public.projects (organization_id, owner_id, title) values (tests.org_id('test-sk'), tests.user_id('sk_owner'), 'Skills') returning id)
insert into ids select 'project', id from p;
with t as (insert into public.tasks (project_id, title) values (pg_temp.id('project'), 'Review the PR') returning id)
insert into ids select 'task', id from t;

-- Writing skills.
select tests.authenticate_as('sk_member');
select lives_ok($$with s as (insert into public.skills (organization_id, name, description, prompt, category, input_schema, output_schema)
                    values (tests.org_id('test-sk'), 'Code review', 'Reviews a diff', 'Review this diff: {{diff}}', 'development',
                            '{"type": "object", "properties": {"diff": {"type": "string"}}}', '{"type": ["object", "null"]}') returning id)
                  insert into ids select 'private_skill', id from s$$, 'a projects.manage holder writes a skill');
select throws_ok($$insert into public.skills (organization_id, author_id, name, description, prompt, category)
                   values (tests.org_id('test-sk'), tests.user_id('sk_owner'), 'x', 'x', 'x', 'dev')$$,
                 '42501', null, 'but cannot name someone else as its author');
select is((select (author_id, version, fork_count, usage_count, rating) from public.skills where id = pg_temp.id('private_skill')),
          (tests.user_id('sk_member'), 1, 0, 0, null::numeric), 'the author is the caller, version 1, counts 0, no rating');
select throws_ok($$insert into public.skills (organization_id, name, description, prompt, category, input_schema) values (tests.org_id('test-sk'), 'x', 'x', 'x', 'dev', '[]')$$,
                 '23514', null, 'an input schema must be an object');
select throws_ok($$insert into public.skills (organization_id, name, description, prompt, category, output_schema) values (tests.org_id('test-sk'), 'x', 'x', 'x', 'dev', '{"properties": {}}')$$,
                 '23514', null, 'an output schema must name its type');
select throws_ok($$insert into public.skills (organization_id, name, description, prompt, category, input_schema) values (tests.org_id('test-sk'), 'x', 'x', 'x', 'dev', '{"type": "text"}')$$,
                 '23514', null, 'and that type must be a JSON Schema type');
select throws_ok($$insert into public.skills (organization_id, name, description, prompt, category, mcp_requirements) values (tests.org_id('test-sk'), 'x', 'x', 'x', 'dev', '[1]')$$,
                 '23514', null, 'MCP requirements are server names');
select throws_ok($$insert into public.skills (organization_id, name, description, prompt, category, is_public, is_official) values (tests.org_id('test-sk'), 'x', 'x', 'x', 'dev', true, true)$$,
                 '42501', null, 'an organization member cannot mark a skill official');
select throws_ok($$update public.skills set fork_count = 10 where id = pg_temp.id('private_skill')$$, '42501', null, 'fork_count is derived');
select throws_ok($$update public.skills set rating = 5 where id = pg_temp.id('private_skill')$$, '42501', null, 'rating is derived');
select throws_ok($$update public.skills set version = 7 where id = pg_temp.id('private_skill')$$, '42501', null, 'version is kept by the database');
select lives_ok($$update public.skills set prompt = 'Review this diff carefully: {{diff}}', changelog = 'More careful' where id = pg_temp.id('private_skill')$$,
                'the author changes the prompt');
select is((select version from public.skills where id = pg_temp.id('private_skill')), 2, 'a prompt change counts a new version');
select lives_ok($$update public.skills set description = 'Reviews a diff for bugs' where id = pg_temp.id('private_skill')$$, 'a description change');
select is((select version from public.skills where id = pg_temp.id('private_skill')), 2, 'does not');
select lives_ok($$insert into public.skill_tags (skill_id, tag) values (pg_temp.id('private_skill'), 'review'), (pg_temp.id('private_skill'), 'git')$$, 'skills carry tags');
select throws_ok($$insert into public.skill_tags (skill_id, tag) values (pg_temp.id('private_skill'), 'Not A Tag!')$$, '23514', null, 'tags are lower-case words');
select lives_ok($$with s as (insert into public.skills (organization_id, name, description, prompt, category, is_public)
                    values (tests.org_id('test-sk'), 'Release notes', 'Writes release notes', 'Summarise: {{commits}}', 'writing', true) returning id)
                  insert into ids select 'public_skill', id from s$$, 'and publishes a public one');

select tests.authenticate_as('sk_viewer');
select is((select count(*)::int from public.skills where organization_id = tests.org_id('test-sk')), 2, 'an organization viewer reads the organization''s skills');
select throws_ok($$insert into public.skills (organization_id, name, description, prompt, category) values (tests.org_id('test-sk'), 'x', 'x', 'x', 'dev')$$,
                 '42501', null, 'but writes none');
select is(tests.rows_affected($$update public.skills set name = 'mine' where organization_id = tests.org_id('test-sk')$$), 0::bigint, 'and changes none');
select is((select count(*)::int from public.skill_tags where skill_id = pg_temp.id('private_skill')), 2, 'tags are read with the skill');

select tests.authenticate_as('sk_stranger');
select is((select array_agg(name) from public.skills where organization_id = tests.org_id('test-sk')), array['Release notes'],
          'another organization''s member reads only its public skills');
select is((select count(*)::int from public.skill_tags where skill_id = pg_temp.id('private_skill')), 0, 'and not the private one''s tags');
select is(tests.rows_affected($$update public.skills set name = 'mine' where id = pg_temp.id('public_skill')$$), 0::bigint, 'nor changes a public skill');
select is(tests.rows_affected($$delete from public.skills where id = pg_temp.id('public_skill')$$), 0::bigint, 'nor deletes it');
select tests.authenticate_as_anon();
select throws_ok($$select count(*) from public.skills$$, '42501', null, 'anon reads no skill');

-- Official: platform administrators only.
select tests.authenticate_as('sk_owner');
select throws_ok($$update public.skills set is_official = true where id = pg_temp.id('public_skill')$$, '42501', null,
                 'not even the organization owner marks a skill official');
select tests.authenticate_as('sk_platform');
select lives_ok($$update public.skills set is_official = true where id = pg_temp.id('public_skill')$$, 'a platform administrator marks a public skill official');
select is(tests.rows_affected($$update public.skills set is_official = true where id = pg_temp.id('private_skill')$$), 0::bigint,
          'but cannot reach a private skill');
select tests.authenticate_as('sk_owner');
select throws_ok($$update public.skills set is_public = false where id = pg_temp.id('public_skill')$$, '23514', null, 'an official skill stays public');
select throws_ok($$update public.skills set is_official = false where id = pg_temp.id('public_skill')$$, '42501', null,
                 'and only a platform administrator withdraws the mark');

-- Reviews.
select tests.authenticate_as('sk_reviewer');
select is((select count(*)::int from public.skills where id = pg_temp.id('public_skill')), 1, 'a signed-in user outside the organization reads a public skill');
select lives_ok($$insert into public.skill_reviews (skill_id, rating, comment) values (pg_temp.id('public_skill'), 5, 'Saves me an hour a week')$$, 'and reviews it');
select throws_ok($$insert into public.skill_reviews (skill_id, rating) values (pg_temp.id('public_skill'), 3)$$, '23505', null, 'once');
select throws_ok($$insert into public.skill_reviews (skill_id, rating) values (pg_temp.id('private_skill'), 3)$$, '42501', null, 'and cannot review a skill they cannot read');
select tests.authenticate_as('sk_stranger');
select throws_ok($$insert into public.skill_reviews (skill_id, rating) values (pg_temp.id('public_skill'), 0)$$, '23514', null, 'a rating is 1 to 5');
select lives_ok($$insert into public.skill_reviews (skill_id, rating) values (pg_temp.id('public_skill'), 2)$$, 'another user reviews it');
select is((select (rating, review_count) from public.skills where id = pg_temp.id('public_skill')), (3.5::numeric, 2), 'the rating is the reviews'' average');
select is(tests.rows_affected($$update public.skill_reviews set rating = 1 where user_id = tests.user_id('sk_reviewer')$$), 0::bigint, 'nobody changes someone else''s review');
select lives_ok($$update public.skill_reviews set rating = 4 where user_id = tests.user_id('sk_stranger')$$, 'a reviewer changes their own');
select is((select rating from public.skills where id = pg_temp.id('public_skill')), 4.5::numeric, 'and the rating follows');
select tests.authenticate_as('sk_member');
select throws_ok($$insert into public.skill_reviews (skill_id, rating) values (pg_temp.id('private_skill'), 5)$$, '23514', null, 'authors do not review their own skills');

-- Suggested skills and usage.
select tests.authenticate_as('sk_owner');
select lives_ok($$insert into public.task_suggested_skills (task_id, skill_id) values (pg_temp.id('task'), pg_temp.id('private_skill'))$$, 'a project editor suggests a skill for a task');
select is((select usage_count from public.skills where id = pg_temp.id('private_skill')), 1, 'which counts a use');

-- Forking.
select tests.authenticate_as('sk_stranger');
select throws_ok($$select public.fork_skill(pg_temp.id('private_skill'), tests.org_id('test-sk-other'))$$, 'P0002', null, 'a private skill of another organization cannot be forked');
select throws_ok($$select public.fork_skill(null, tests.org_id('test-sk-other'))$$, '22004', null, 'forking needs a skill id');
select throws_ok($$select public.fork_skill(pg_temp.id('public_skill'), null)$$, '22004', null, 'and an organization to fork into');
select throws_ok($$select public.fork_skill(pg_temp.id('public_skill'), tests.org_id('test-sk'))$$, '42501', null, 'nor can one fork into an organization without projects.manage');
select lives_ok($$insert into ids select 'fork', public.fork_skill(pg_temp.id('public_skill'), tests.org_id('test-sk-other'))$$, 'a public skill is forked into the caller''s organization');
select is((select (organization_id, author_id, forked_from_id, is_public, is_official, version, name) from public.skills where id = pg_temp.id('fork')),
          (tests.org_id('test-sk-other'), tests.user_id('sk_stranger'), pg_temp.id('public_skill'), false, false, 1, 'Release notes'::text),
          'the copy is the caller''s, private, not official, version 1');
select is((select fork_count from public.skills where id = pg_temp.id('public_skill')), 1, 'and the original counts the fork');
select throws_ok($$insert into public.task_suggested_skills (task_id, skill_id) values (pg_temp.id('task'), pg_temp.id('public_skill'))$$, '42501', null,
                 'a stranger suggests nothing on another organization''s task');

select throws_ok($$insert into public.task_suggested_skills (task_id, skill_id) values (pg_temp.id('task'), pg_temp.id('fork'))$$, '23514', null,
                 'and a task suggests no private skill of another organization');

select * from finish();
rollback;
