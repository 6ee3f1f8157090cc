-- The derived totals: tasks.actual_minutes/actual_cost (own entries and executions plus live subtasks') and
-- projects.actual_hours/total_cost, after insert, update, delete, soft delete and restore, re-parenting and hard
-- delete; task_executions' numbering, rules and actors; and that no client writes a derived column.
begin;
select plan(42);

create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to anon, authenticated, service_role;
create function pg_temp.id(key text) returns uuid language sql stable as $$ select id from ids where name = key $$;
grant execute on function pg_temp.id(text) to anon, authenticated, service_role;
create function pg_temp.at(hhmm text) returns timestamptz language sql immutable as $$ select ('2026-11-03 ' || hhmm || 'Z')::timestamptz $$;
grant execute on function pg_temp.at(text) to anon, authenticated, service_role;
create function pg_temp.new_task(key text, title text, parent text default null) returns void
language sql as $$
  with t as (insert into public.tasks (project_id, title, parent_task_id) values (pg_temp.id('project'), title, pg_temp.id(parent)) returning id)
  insert into ids select key, id from t
$$;
grant execute on function pg_temp.new_task(text, text, text) to authenticated;
-- minutes of every task, in a fixed order, and the project's (minutes, hours, cost)
create function pg_temp.minutes() returns int[] language sql stable as $$
  select array_agg(t.actual_minutes order by i.name) from ids i join public.tasks t on t.id = i.id where i.name in ('r', 'a', 'a1', 'b')
$$;
create function pg_temp.project() returns text language sql stable as $$
  select format('%s min, %s h, %s USD', actual_minutes, actual_hours, total_cost) from public.projects where id = pg_temp.id('project')
$$;
grant execute on function pg_temp.minutes(), pg_temp.project() to authenticated;

select tests.create_user(h) from unnest(array['ru_owner', 'ru_editor', 'ru_viewer', 'ru_other_editor']) h;
select tests.create_organization('ru_owner', 'test-ru');
select tests.create_organization('ru_other_editor', 'test-ru-other');
select tests.add_member(tests.org_id('test-ru'), 'ru_editor', 'member');
select tests.add_member(tests.org_id('test-ru'), 'ru_viewer', 'viewer');
with p as (insert into public.projects (organization_id, owner_id, title) values (tests.org_id('test-ru'), tests.user_id('ru_owner'), 'Roll-up') returning id)
insert into ids select 'project', id from p;
insert into public.project_members (project_id, user_id, role) values
  (pg_temp.id('project'), tests.user_id('ru_editor'), 'editor'), (pg_temp.id('project'), tests.user_id('ru_viewer'), 'viewer');
with a as (insert into public.ai_agent_tasks (organization_id, provider, model, prompt, messages)
           values (tests.org_id('test-ru-other'), 'openai', 'gpt-4o-mini', 'x', '[]') returning id)
insert into ids select 'foreign_agent_task', id from a;

-- r ── a ── a1, r ── b (pg_temp.minutes() lists a, a1, b, r)
select tests.authenticate_as('ru_editor');
select pg_temp.new_task('r', 'Release');
select pg_temp.new_task('a', 'Backend', 'r');
select pg_temp.new_task('a1', 'API', 'a');
select pg_temp.new_task('b', 'Frontend', 'r');

-- Inserts.
insert into public.time_entries (task_id, start_time, end_time) values (pg_temp.id('a1'), pg_temp.at('09:00'), pg_temp.at('10:00'));
select is(pg_temp.minutes(), array[60, 60, 0, 60], 'an hour on a sub-subtask counts on it, its parent and the root');
select is(pg_temp.project(), '60 min, 1.00 h, 0.000000 USD', 'and on the project');
insert into public.time_entries (task_id, start_time, end_time) values (pg_temp.id('b'), pg_temp.at('10:00'), pg_temp.at('10:20'));
insert into public.time_entries (task_id, start_time, end_time) values (pg_temp.id('a'), pg_temp.at('10:20'), pg_temp.at('10:30'));
select is(pg_temp.minutes(), array[70, 60, 20, 90], 'time on siblings adds up at the root');
select is(pg_temp.project(), '90 min, 1.50 h, 0.000000 USD', 'the project''s hours are its minutes over 60');
insert into public.time_entries (task_id, start_time) values (pg_temp.id('b'), pg_temp.at('11:00'));
select is(pg_temp.minutes(), array[70, 60, 20, 90], 'a running timer counts nothing yet');
update public.time_entries set end_time = pg_temp.at('11:07') where end_time is null;
select is(pg_temp.minutes(), array[70, 60, 27, 97], 'stopping it adds its minutes');
insert into public.time_entries (task_id, start_time, end_time) values (pg_temp.id('b'), pg_temp.at('12:00'), pg_temp.at('12:00:40'));
select is(pg_temp.minutes(), array[70, 60, 28, 98], 'an entry counts its duration rounded to whole minutes');

-- Updates and deletes.
update public.time_entries set start_time = pg_temp.at('08:30') where start_time = pg_temp.at('09:00');
select is(pg_temp.minutes(), array[100, 90, 28, 128], 'lengthening an entry adds the difference up the tree');
update public.time_entries set task_id = pg_temp.id('b') where start_time = pg_temp.at('08:30');
select is(pg_temp.minutes(), array[10, 0, 118, 128], 'moving an entry to another task moves its minutes between the branches');
select is(pg_temp.project(), '128 min, 2.13 h, 0.000000 USD', 'and leaves the project''s total alone');
update public.time_entries set task_id = pg_temp.id('a1') where start_time = pg_temp.at('08:30');
delete from public.time_entries where start_time = pg_temp.at('12:00');
select is(pg_temp.minutes(), array[100, 90, 27, 127], 'deleting an entry takes its minutes away');

-- Executions and their cost.
select lives_ok($$insert into public.task_executions (task_id, prompt, ai_provider, model, cost, status, tokens_used)
                  values (pg_temp.id('a1'), 'Write the API', 'openai', 'gpt-4o-mini', 0.25, 'success', '{"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}')$$,
                'a project editor records an AI run');
select lives_ok($$insert into public.task_executions (task_id, prompt, ai_provider, model, cost, status, error_message)
                  values (pg_temp.id('a1'), 'Write the API again', 'anthropic', 'claude-3-5-haiku-20241022', 0.125, 'failed', 'rate limited')$$,
                'and a failed retry');
select is((select array_agg(execution_number order by created_at, execution_number) from public.task_executions where task_id = pg_temp.id('a1')),
          array[1, 2], 'runs are numbered per task');
select isnt((select completed_at from public.task_executions where execution_number = 1 and task_id = pg_temp.id('a1')), null,
            'a final status stamps completed_at');
select is((select array_agg(t.actual_cost order by i.name) from ids i join public.tasks t on t.id = i.id where i.name in ('r', 'a', 'a1', 'b')),
          array[0.375, 0.375, 0, 0.375]::numeric[], 'AI cost rolls up like time, failed runs included');
update public.task_executions set cost = 0.5 where execution_number = 1 and task_id = pg_temp.id('a1');
select is(pg_temp.project(), '127 min, 2.12 h, 0.625000 USD', 'changing a run''s cost changes the project''s total');
delete from public.task_executions where execution_number = 2 and task_id = pg_temp.id('a1');
select is(pg_temp.project(), '127 min, 2.12 h, 0.500000 USD', 'deleting a run takes its cost away');
select throws_ok($$insert into public.task_executions (task_id, prompt, ai_provider, model, rating) values (pg_temp.id('a1'), 'x', 'openai', 'gpt-4o', 6)$$,
                 '23514', null, 'a rating is 1 to 5');
select throws_ok($$insert into public.task_executions (task_id, prompt, ai_provider, model, status) values (pg_temp.id('a1'), 'x', 'openai', 'gpt-4o', 'succeeded')$$,
                 '23514', null, 'an unknown status is refused');
select throws_ok($$insert into public.task_executions (task_id, prompt, ai_provider, model, tokens_used) values (pg_temp.id('a1'), 'x', 'openai', 'gpt-4o', '{"total_tokens": -5}')$$,
                 '23514', null, 'token usage has the TokenUsage shape');
select throws_ok($$insert into public.task_executions (task_id, prompt, ai_provider, model, error_message) values (pg_temp.id('a1'), 'x', 'openai', 'gpt-4o', 'boom')$$,
                 '23514', null, 'only a failed run carries an error');
select throws_ok($$insert into public.task_executions (task_id, prompt, ai_provider, model, ai_agent_task_id) values (pg_temp.id('a1'), 'x', 'openai', 'gpt-4o', pg_temp.id('foreign_agent_task'))$$,
                 '23514', null, 'an engine run of another organization cannot be linked');
select lives_ok($$update public.task_executions set rating = 4, user_feedback = 'good enough' where task_id = pg_temp.id('a1')$$, 'an editor rates a run');

select tests.authenticate_as('ru_viewer');
select is((select count(*)::int from public.task_executions), 1, 'a project viewer reads the runs');
select throws_ok($$insert into public.task_executions (task_id, prompt, ai_provider, model) values (pg_temp.id('b'), 'x', 'openai', 'gpt-4o')$$,
                 '42501', null, 'a project viewer records no AI run');
select tests.authenticate_as('ru_editor');

-- Soft delete, restore, re-parent, hard delete.
update public.tasks set deleted_at = now() where id = pg_temp.id('a');
select is(pg_temp.minutes(), array[10, 90, 27, 27], 'soft-deleting a subtree takes its time off the root (a deleted task keeps only what is live beneath it)');
select is(pg_temp.project(), '27 min, 0.45 h, 0.000000 USD', 'and off the project, cost included');
insert into public.time_entries (task_id, start_time, end_time) values (pg_temp.id('a1'), pg_temp.at('13:00'), pg_temp.at('13:10'));
select is(pg_temp.minutes(), array[10, 100, 27, 27], 'time logged inside a deleted subtree stays on its task');
update public.tasks set deleted_at = null where id = pg_temp.id('a');
select is(pg_temp.minutes(), array[110, 100, 27, 137], 'restoring the subtree brings all of its time back, once');
select is(pg_temp.project(), '137 min, 2.28 h, 0.500000 USD', 'to the project too');
update public.tasks set deleted_at = now() where id = pg_temp.id('a1');
select is(pg_temp.minutes(), array[10, 100, 27, 37], 'soft-deleting a single subtask takes only its time away');
update public.tasks set deleted_at = null where id = pg_temp.id('a1');
update public.tasks set parent_task_id = pg_temp.id('b') where id = pg_temp.id('a1');
select is(pg_temp.minutes(), array[10, 100, 127, 137], 're-parenting a subtask moves its total to the new branch');
update public.tasks set parent_task_id = null where id = pg_temp.id('a1');
select is(pg_temp.minutes(), array[10, 100, 27, 37], 'a subtask that becomes a root counts on the project directly');
select is(pg_temp.project(), '137 min, 2.28 h, 0.500000 USD', 'so the project''s total stays');
delete from public.tasks where id = pg_temp.id('a1');
select is(pg_temp.project(), '37 min, 0.62 h, 0.000000 USD', 'deleting a task for good takes its time and cost away');
delete from public.tasks where id = pg_temp.id('r');
select is(pg_temp.project(), '0 min, 0.00 h, 0.000000 USD', 'and deleting a root with its subtasks takes the rest');

-- Nobody writes a derived column.
select throws_ok($$update public.tasks set actual_minutes = 1 where id = pg_temp.id('b')$$, '42501', null, 'an editor cannot write actual_minutes');
select throws_ok($$update public.projects set actual_hours = 1 where id = pg_temp.id('project')$$, '42501', null, 'nor actual_hours');
select throws_ok($$update public.projects set total_cost = 1 where id = pg_temp.id('project')$$, '42501', null, 'nor total_cost');
select tests.authenticate_as('ru_owner');
select throws_ok($$update public.projects set actual_minutes = 1 where id = pg_temp.id('project')$$, '42501', null, 'nor can the organization owner write the project''s minutes');
select tests.authenticate_as_service_role();
select throws_ok($$update public.tasks set actual_cost = 1$$, '42501', null, 'nor the service role a task''s cost');

select * from finish();
rollback;
