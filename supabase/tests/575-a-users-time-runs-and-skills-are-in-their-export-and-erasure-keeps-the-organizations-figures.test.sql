-- Personal data: export_my_data() holds a user's time entries, the task executions they started, the skills and
-- templates they wrote and their reviews, and nothing of anyone else's; deleting the user keeps the organization's
-- entries, runs, totals, skills and templates without the user's id, removes their reviews and recomputes the rating.
begin;
select plan(10);

select tests.create_user(h) from unnest(array['tx_owner', 'tx_worker', 'tx_other']) h;
select tests.create_organization('tx_owner', 'test-tx-personal');
select tests.add_member(tests.org_id('test-tx-personal'), h, 'member') from unnest(array['tx_worker', 'tx_other']) h;
create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to authenticated;

select tests.authenticate_as('tx_owner');
with p as (insert into public.projects (organization_id, title) values (tests.org_id('test-tx-personal'), 'Launch') returning id)
insert into ids select 'project', id from p;
insert into public.project_members (project_id, user_id, role)
  values ((select id from ids where name = 'project'), tests.user_id('tx_worker'), 'editor');
with t as (insert into public.tasks (project_id, title) values ((select id from ids where name = 'project'), 'Write the announcement') returning id)
insert into ids select 'task', id from t;

select tests.authenticate_as('tx_worker');
insert into public.time_entries (task_id, start_time, end_time, description)
  values ((select id from ids where name = 'task'), '2026-11-02 09:00Z', '2026-11-02 10:00Z', 'First draft');
insert into public.time_entries (task_id, start_time) values ((select id from ids where name = 'task'), '2026-11-02 11:00Z');
insert into public.task_executions (task_id, prompt, ai_provider, model, cost, status)
  values ((select id from ids where name = 'task'), 'Draft the announcement', 'openai', 'gpt-4o-mini', 0.02, 'success');
with s as (insert into public.skills (organization_id, name, description, prompt, category, is_public)
           values (tests.org_id('test-tx-personal'), 'Announcer', 'Writes announcements', 'Announce {{thing}}', 'writing', true) returning id)
insert into ids select 'skill', id from s;
insert into public.templates (organization_id, name, description, category, project_structure)
  values (tests.org_id('test-tx-personal'), 'Launch kit', 'Announce a launch', 'writing', '{"tasks": [{"title": "Announce"}]}');
select tests.authenticate_as('tx_other');
insert into public.skill_reviews (skill_id, rating, comment) values ((select id from ids where name = 'skill'), 4, 'Handy');
select tests.authenticate_as('tx_owner');
insert into public.skill_reviews (skill_id, rating) values ((select id from ids where name = 'skill'), 2);
select tests.authenticate_as('tx_worker');
select results_eq(
  $$select jsonb_array_length(d -> 'time_entries'), d -> 'time_entries' -> 0 ->> 'description', (d -> 'time_entries' -> 0 ->> 'duration')::int,
           jsonb_array_length(d -> 'task_executions'), d -> 'task_executions' -> 0 ->> 'prompt'
    from (select public.export_my_data() d) x$$,
  $$values (2, 'First draft'::text, 3600, 1, 'Draft the announcement'::text)$$,
  'the worker''s export holds their time entries and the run they started');
select results_eq($$select d -> 'skills_authored' -> 0 ->> 'name', jsonb_array_length(d -> 'skill_reviews') from (select public.export_my_data() d) x$$,
  $$values ('Announcer'::text, 0)$$, 'and the skill they wrote');
select results_eq($$select d -> 'templates_authored' -> 0 ->> 'name' from (select public.export_my_data() d) x$$,
  $$values ('Launch kit'::text)$$, 'and the template they wrote');
select tests.authenticate_as('tx_other');
select results_eq($$select jsonb_array_length(d -> 'time_entries') + jsonb_array_length(d -> 'task_executions')
                         + jsonb_array_length(d -> 'skills_authored'), d -> 'skill_reviews' -> 0 ->> 'comment'
                    from (select public.export_my_data() d) x$$,
  $$values (0, 'Handy'::text)$$, 'a member who tracked nothing exports their review and none of the others'' time or skills');

select tests.clear_authentication();
delete from auth.users where id = tests.user_id('tx_worker');
select results_eq($$select count(*)::int, count(*) filter (where user_id is null)::int, count(*) filter (where end_time is null)::int
                    from public.time_entries where task_id = (select id from ids where name = 'task')$$,
  $$values (2, 2, 0)$$, 'deleting the worker keeps their entries without their id and stops their timer');
select results_eq($$select started_by from public.task_executions where task_id = (select id from ids where name = 'task')$$,
  $$values (null::uuid)$$, 'and keeps their run without their id');
select results_eq($$select t.actual_cost, p.total_cost from public.tasks t join public.projects p on p.id = t.project_id
                    where t.id = (select id from ids where name = 'task')$$,
  $$values (0.02::numeric, 0.02::numeric)$$, 'so the organization''s cost figures stay');
select results_eq($$select author_id from public.skills where id = (select id from ids where name = 'skill')$$,
  $$values (null::uuid)$$, 'the skill stays with the organization without its author');
select results_eq($$select author_id from public.templates where organization_id = tests.org_id('test-tx-personal')$$,
  $$values (null::uuid)$$, 'and so does the template');
delete from auth.users where id = tests.user_id('tx_other');
select results_eq($$select rating, review_count from public.skills where id = (select id from ids where name = 'skill')$$,
  $$values (2.00::numeric, 1)$$, 'deleting a reviewer removes their review and the rating is recomputed');

select * from finish();
rollback;
