-- Task events: task.created, task.status_changed and task.assigned are emitted from tasks with the documented
-- payloads, reach the project's webhooks and event-triggered workflows, reach organization-wide ones only for
-- organization-visible projects, and never fire for changes that are not one.
begin;
select plan(28);

create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to authenticated;
create function pg_temp.id(key text) returns uuid language sql stable as $$ select id from ids where name = key $$;
grant execute on function pg_temp.id(text) to authenticated;
create function pg_temp.deliveries(hook text, kind text) returns bigint language sql stable as $$
  select count(*) from public.webhook_deliveries where webhook_id = pg_temp.id(hook) and event_type = kind $$;
create function pg_temp.executions(workflow text) returns bigint language sql stable as $$
  select count(*) from public.workflow_executions where workflow_id = pg_temp.id(workflow) $$;

select tests.create_user(h) from unnest(array['ev_owner', 'ev_editor', 'ev_quiet']) h;
select tests.create_organization('ev_owner', 'test-ev');
select tests.create_organization('ev_quiet', 'test-ev-quiet');
select tests.add_member(tests.org_id('test-ev'), 'ev_editor', 'member');

select is((select array_agg(key order by key) from public.webhook_event_types where key like 'task.%'),
          array['task.assigned', 'task.created', 'task.status_changed'], 'the three task event types exist');

with p as (insert into public.projects (organization_id, owner_id, title, visibility)
           values (tests.org_id('test-ev'), tests.user_id('ev_owner'), 'Secret launch', 'private') returning id)
insert into ids select 'private', id from p;
with p as (insert into public.projects (organization_id, owner_id, title)
           values (tests.org_id('test-ev'), tests.user_id('ev_owner'), 'Website') returning id)
insert into ids select 'open', id from p;
insert into public.project_members (project_id, user_id, role) values (pg_temp.id('private'), tests.user_id('ev_editor'), 'editor');

-- Webhooks: the private project's, the open project's, an organization-wide one; all on the three task events.
select tests.authenticate_as('ev_owner');
insert into ids select h.name, public.create_webhook(tests.org_id('test-ev'), h.name, 'https://hooks.example.com/' || h.name,
  array['task.created', 'task.status_changed', 'task.assigned'], 'whsec_' || encode(extensions.gen_random_bytes(32), 'base64'), '{}',
  pg_temp.id(h.project))
from (values ('private_hook', 'private'), ('open_hook', 'open'), ('org_hook', null)) h (name, project);
select tests.clear_authentication();

-- Event-triggered workflows on task.created: the private project's, and an organization-wide one.
with w as (insert into public.workflows (organization_id, project_id, name, definition, trigger_type, trigger_config)
           select tests.org_id('test-ev'), pg_temp.id(f.project), f.name,
                  '{"nodes": [{"id": "note", "type": "task", "name": "Note", "config": {"action": "emit_event"}}], "edges": []}',
                  'event', '{"event_type": "task.created"}'
           from (values ('private_flow', 'private'), ('org_flow', null)) f (name, project)
           returning name, id)
insert into ids select name, id from w;

-- task.created and task.assigned at creation, as the editor.
select tests.authenticate_as('ev_editor');
with t as (insert into public.tasks (project_id, title, priority, assignee_id, tags)
           values (pg_temp.id('private'), 'Draft the announcement', 'high', tests.user_id('ev_editor'), array['launch']) returning id)
insert into ids select 'secret_task', id from t;
select tests.clear_authentication();
select is(pg_temp.deliveries('private_hook', 'task.created'), 1::bigint, 'a private project''s new task reaches its webhook');
select is(pg_temp.deliveries('org_hook', 'task.created'), 0::bigint, 'but not the organization-wide webhook');
select is(pg_temp.deliveries('open_hook', 'task.created'), 0::bigint, 'nor another project''s webhook');
select is((select payload from public.webhook_deliveries where webhook_id = pg_temp.id('private_hook') and event_type = 'task.created'),
          jsonb_build_object('task_id', pg_temp.id('secret_task'), 'project_id', pg_temp.id('private'), 'parent_task_id', null,
                             'title', 'Draft the announcement', 'status', 'todo', 'priority', 'high',
                             'assignee_id', tests.user_id('ev_editor'), 'due_date', null, 'tags', jsonb_build_array('launch'),
                             'created_by', tests.user_id('ev_editor'), 'workflow_run_id', null),
          'the task.created payload is the documented one');
select is((select project_id from public.webhook_deliveries where webhook_id = pg_temp.id('private_hook') and event_type = 'task.created'),
          pg_temp.id('private'), 'the delivery carries the project');
select is(pg_temp.deliveries('private_hook', 'task.assigned'), 1::bigint, 'a task created with an assignee is also task.assigned');
select is(pg_temp.executions('private_flow'), 1::bigint, 'the private project''s event workflow starts');
select is(pg_temp.executions('org_flow'), 0::bigint, 'the organization-wide event workflow does not (the project is private)');
select is((select input ->> 'project_id' from public.workflow_executions where workflow_id = pg_temp.id('private_flow')),
          pg_temp.id('private')::text, 'the execution''s input names the project');

-- An organization-visible project's task reaches its own webhook and the organization-wide ones, not the private one.
with t as (insert into public.tasks (project_id, title) values (pg_temp.id('open'), 'Fix the footer') returning id)
insert into ids select 'open_task', id from t;
select is(pg_temp.deliveries('open_hook', 'task.created'), 1::bigint, 'an open project''s task reaches its webhook');
select is(pg_temp.deliveries('org_hook', 'task.created'), 1::bigint, 'and the organization-wide webhook');
select is(pg_temp.deliveries('private_hook', 'task.created'), 1::bigint, 'and not the private project''s webhook');
select is(pg_temp.executions('org_flow'), 1::bigint, 'the organization-wide event workflow starts for it');
select is(pg_temp.executions('private_flow'), 1::bigint, 'the private project''s workflow does not');
select is(pg_temp.deliveries('org_hook', 'task.assigned'), 0::bigint, 'a task created without an assignee is not task.assigned');

-- task.status_changed.
select tests.authenticate_as('ev_editor');
update public.tasks set status = 'blocked', blocked_reason = 'waiting for legal' where id = pg_temp.id('secret_task');
select tests.clear_authentication();
select is((select payload from public.webhook_deliveries where webhook_id = pg_temp.id('private_hook') and event_type = 'task.status_changed'),
          jsonb_build_object('task_id', pg_temp.id('secret_task'), 'project_id', pg_temp.id('private'), 'title', 'Draft the announcement',
                             'previous_status', 'todo', 'status', 'blocked', 'blocked_reason', 'waiting for legal',
                             'changed_by', tests.user_id('ev_editor')),
          'a status change is task.status_changed with the previous and new status and who changed it');
update public.tasks set title = 'Draft the announcement (v2)', priority = 'urgent' where id = pg_temp.id('secret_task');
update public.tasks set status = 'blocked', blocked_reason = 'still legal' where id = pg_temp.id('secret_task');
select is(pg_temp.deliveries('private_hook', 'task.status_changed'), 1::bigint, 'other changes, or the same status again, emit nothing');

-- task.assigned on a later assignment, not on unassignment.
update public.tasks set assignee_id = tests.user_id('ev_owner') where id = pg_temp.id('open_task');
select is((select payload - 'assigned_by' from public.webhook_deliveries where webhook_id = pg_temp.id('open_hook') and event_type = 'task.assigned'),
          jsonb_build_object('task_id', pg_temp.id('open_task'), 'project_id', pg_temp.id('open'), 'title', 'Fix the footer',
                             'assignee_id', tests.user_id('ev_owner'), 'previous_assignee_id', null),
          'assigning a task is task.assigned with the new and previous assignee');
update public.tasks set assignee_id = null where id = pg_temp.id('open_task');
select is(pg_temp.deliveries('open_hook', 'task.assigned'), 1::bigint, 'unassigning emits no task.assigned');

-- Soft-deleted tasks stay quiet.
update public.tasks set deleted_at = now() where id = pg_temp.id('open_task');
update public.tasks set status = 'done' where id = pg_temp.id('open_task');
select is(pg_temp.deliveries('open_hook', 'task.status_changed'), 0::bigint, 'a deleted task''s status change emits nothing');

-- Bulk inserts emit one event per task.
insert into public.tasks (project_id, title) select pg_temp.id('open'), 'Bulk ' || n from generate_series(1, 3) n;
select is(pg_temp.deliveries('open_hook', 'task.created'), 4::bigint, 'a three-row insert emits three task.created events');

-- A disabled webhook gets nothing; an organization without listeners emits nothing at all.
update public.webhooks set is_enabled = false where id = pg_temp.id('open_hook');
insert into public.tasks (project_id, title) values (pg_temp.id('open'), 'After disabling');
select is(pg_temp.deliveries('open_hook', 'task.created'), 4::bigint, 'a disabled webhook receives no new task events');
with p as (insert into public.projects (organization_id, owner_id, title)
           values (tests.org_id('test-ev-quiet'), tests.user_id('ev_quiet'), 'Quiet') returning id)
insert into public.tasks (project_id, title) select id, 'Nobody listens' from p;
select is((select count(*) from public.webhook_deliveries where organization_id = tests.org_id('test-ev-quiet')), 0::bigint,
          'an organization without webhooks queues no delivery');

-- Making the private project organization-visible opens its events to the organization-wide automations.
update public.projects set visibility = 'organization' where id = pg_temp.id('private');
insert into public.tasks (project_id, title) values (pg_temp.id('private'), 'Now public');
-- (5 open-project tasks so far reached them: the footer, three bulk tasks, the one after disabling; this is the 6th.)
select is(pg_temp.deliveries('org_hook', 'task.created'), 6::bigint, 'once organization-visible, its task reaches the organization-wide webhook');
select is(pg_temp.executions('org_flow'), 6::bigint, 'and the organization-wide workflow');
select is(pg_temp.executions('private_flow'), 2::bigint, 'and still its own workflow');

-- An event-triggered workflow's project must match at creation too: workflows of the project only hear its events.
select is((select count(*) from public.workflow_executions e join public.workflows w on w.id = e.workflow_id
           where w.project_id is not null and (e.input ->> 'project_id')::uuid is distinct from w.project_id), 0::bigint,
          'no project workflow ever started for another project''s event');

select * from finish();
rollback;
