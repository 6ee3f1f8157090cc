-- The create_task action of workflow task nodes: params checked when the definition is saved (WF006), rendered from
-- the context at run time, the task created as the workflow in its project (or a project the params name: same
-- organization, not archived, a private one only by its own workflows), once per run: a stale attempt whose lease
-- ran out creates nothing, and a retried run finds the task its earlier attempt created.
begin;
select plan(33);

create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to authenticated, service_role;
create function pg_temp.id(key text) returns uuid language sql stable as $$ select id from ids where name = key $$;
grant execute on function pg_temp.id(text) to authenticated, service_role;
-- Starts a workflow and claims its run as worker `worker` (the service role's claim, filtered to that execution).
create temporary table claims (name text primary key, execution_id uuid, run_id uuid, lease_token uuid) on commit drop;
grant all on claims to authenticated, service_role;
create function pg_temp.start_and_claim(claim text, workflow text, input jsonb, worker text default 'w1') returns void
language plpgsql as $$
declare
  execution uuid := public.start_workflow(pg_temp.id(workflow), input);
begin
  insert into claims select claim, execution, r.id, r.lease_token
  from public.claim_workflow_runs(worker, 100) r where r.execution_id = execution;
end;
$$;
create function pg_temp.run_task(claim text) returns text language sql as $$
  select public.create_workflow_task(c.run_id, c.lease_token) from claims c where c.name = claim $$;
create function pg_temp.error_of(claim text) returns text language sql stable as $$
  select r.error ->> 'message' from public.workflow_runs r join claims c on c.run_id = r.id where c.name = claim $$;
grant execute on function pg_temp.start_and_claim(text, text, jsonb, text), pg_temp.run_task(text), pg_temp.error_of(text)
  to authenticated, service_role;

select tests.create_user(h) from unnest(array['ct_owner', 'ct_editor', 'ct_outsider', 'ct_stranger']) h;
select tests.create_organization('ct_owner', 'test-ct');
select tests.create_organization('ct_stranger', 'test-ct-other');
select tests.add_member(tests.org_id('test-ct'), h, 'member') from unnest(array['ct_editor', 'ct_outsider']) h;
with p as (insert into public.projects (organization_id, owner_id, title, visibility, status)
           select tests.org_id(v.org), tests.user_id(v.owner), v.title, v.visibility, v.status
           from (values ('test-ct', 'ct_owner', 'Secret launch', 'private', 'active'),
                        ('test-ct', 'ct_owner', 'Website', 'organization', 'active'),
                        ('test-ct', 'ct_owner', 'Old site', 'organization', 'archived'),
                        ('test-ct-other', 'ct_stranger', 'Elsewhere', 'organization', 'active')) v (org, owner, title, visibility, status)
           returning id, title)
insert into ids select case title when 'Secret launch' then 'private' when 'Website' then 'open' when 'Old site' then 'archived'
                                  else 'foreign' end, id from p;
insert into public.project_members (project_id, user_id, role) values (pg_temp.id('private'), tests.user_id('ct_editor'), 'editor');

-- Saving: the params' shape.
create function pg_temp.save(params jsonb) returns void language sql as $$
  insert into public.workflows (organization_id, name, definition)
  values (tests.org_id('test-ct'), 'probe', jsonb_build_object('nodes', jsonb_build_array(jsonb_build_object('id', 'make', 'type', 'task',
    'name', 'Make', 'config', jsonb_build_object('action', 'create_task', 'params', params))), 'edges', '[]'::jsonb)) $$;
select throws_ok($$select pg_temp.save('{}')$$, 'WF006', null, 'a create_task node needs params.title');
select throws_ok($$select pg_temp.save('{"title": "x", "titel": "y"}')$$, 'WF006', null, 'unknown params are refused (typos fail loudly)');
select throws_ok($$select pg_temp.save('{"title": "x", "priority": "huge"}')$$, 'WF006', null, 'priority is low, medium, high or urgent');
select throws_ok($$select pg_temp.save('{"title": "x", "tags": ["a", 1]}')$$, 'WF006', null, 'tags are strings');
select throws_ok($$select pg_temp.save('{"title": "x", "estimated_minutes": 1.5}')$$, 'WF006', null, 'estimated_minutes is a whole number');
select throws_ok($$select pg_temp.save('{"title": "x", "project_id": 7}')$$, 'WF006', null, 'project_id is a string (a UUID or a template)');
select lives_ok($$select pg_temp.save('{"title": "x", "description": "y", "project_id": "{{input.p}}", "parent_task_id": "{{input.t}}",
                  "assignee_id": "{{input.a}}", "priority": "low", "due_date": "2027-01-01T00:00:00Z", "estimated_minutes": 30, "tags": ["a"]}')$$,
                'every documented param is accepted');

-- The workflows.
with w as (insert into public.workflows (organization_id, project_id, name, definition)
           select tests.org_id('test-ct'), pg_temp.id(v.project), v.name, jsonb_build_object('nodes', jsonb_build_array(
                    jsonb_build_object('id', 'make', 'type', 'task', 'name', 'Make', 'config',
                                       jsonb_build_object('action', 'create_task', 'params', v.params::jsonb))), 'edges', '[]'::jsonb)
           from (values
             ('project_flow', 'private', '{"title": "Follow up: {{input.topic}}", "description": "Asked by {{input.who}}", "priority": "high", "tags": ["auto"], "assignee_id": "{{input.assignee}}", "estimated_minutes": 45}'),
             ('org_flow', null, '{"title": "Ticket: {{input.topic}}", "project_id": "{{input.project}}"}'),
             ('bare_flow', null, '{"title": "Nowhere"}')) v (name, project, params)
           returning name, id)
insert into ids select name, id from w;
-- The private project's automation on task.created, to see the causation depth of the task a workflow creates.
with w as (insert into public.workflows (organization_id, project_id, name, definition, trigger_type, trigger_config)
           values (tests.org_id('test-ct'), pg_temp.id('private'), 'On new tasks',
                   '{"nodes": [{"id": "note", "type": "task", "name": "Note", "config": {"action": "emit_event"}}], "edges": []}',
                   'event', '{"event_type": "task.created"}') returning id)
insert into ids select 'listener', id from w;

select tests.authenticate_as_service_role();

-- A run in the workflow's own project.
select pg_temp.start_and_claim('first', 'project_flow', jsonb_build_object('topic', 'press kit', 'who', 'Ana', 'assignee', tests.user_id('ct_editor')));
select is(pg_temp.run_task('first'), 'completed', 'the create_task run completes');
select results_eq($$select t.project_id, t.title, t.description, t.priority, t.tags, t.assignee_id, t.estimated_minutes, t.created_by, t.status
                    from public.tasks t join claims c on c.run_id = t.workflow_run_id where c.name = 'first'$$,
                  $$values (pg_temp.id('private'), 'Follow up: press kit'::text, 'Asked by Ana'::text, 'high'::text, array['auto']::text[],
                            tests.user_id('ct_editor'), 45, null::uuid, 'todo'::text)$$,
                  'the task is created in the workflow''s project from the rendered params, as the workflow (created_by null)');
select is((select r.output - 'task_id' from public.workflow_runs r join claims c on c.run_id = r.id where c.name = 'first'),
          jsonb_build_object('project_id', pg_temp.id('private'), 'title', 'Follow up: press kit', 'created', true),
          'the run''s output names the task');
select is((select (r.output ->> 'task_id')::uuid from public.workflow_runs r join claims c on c.run_id = r.id where c.name = 'first'),
          (select t.id from public.tasks t join claims c on c.run_id = t.workflow_run_id where c.name = 'first'),
          'the output''s task_id is the created task');
select is((select e.status from public.workflow_executions e join claims c on c.execution_id = e.id where c.name = 'first'),
          'succeeded', 'the execution succeeds');
select is((select e.causation_depth::integer from public.workflow_executions e
           where e.workflow_id = pg_temp.id('listener')
             and e.input -> 'data' ->> 'workflow_run_id' = (select run_id::text from claims where name = 'first')),
          1, 'the task.created event of a workflow''s task is one causation level deeper (automation loops stop)');

-- A worker whose lease ran out creates nothing; the worker that claimed the run again creates the one task.
select pg_temp.start_and_claim('stale', 'project_flow', jsonb_build_object('topic', 'retry', 'who', 'Bo', 'assignee', tests.user_id('ct_editor')), 'w-stale');
select tests.clear_authentication();
update public.workflow_runs set run_at = now() - interval '1 second', locked_until = now() - interval '1 second'
where id = (select run_id from claims where name = 'stale');
select tests.authenticate_as_service_role();
insert into claims select 'fresh', c.execution_id, r.id, r.lease_token
from claims c, public.claim_workflow_runs('w-fresh', 100) r where c.name = 'stale' and r.id = c.run_id;
select is((select count(*) from claims where name = 'fresh'), 1::bigint, 'the expired run is claimed again by another worker');
select is(pg_temp.run_task('stale'), 'lease_lost', 'the stale worker''s attempt is refused');
select is((select count(*) from public.tasks t join claims c on c.run_id = t.workflow_run_id where c.name = 'stale'), 0::bigint,
          'and created no task');
select is(pg_temp.run_task('fresh'), 'completed', 'the current worker''s attempt completes');
select is((select count(*) from public.tasks t join claims c on c.run_id = t.workflow_run_id where c.name = 'fresh'), 1::bigint,
          'one task for the run');
select is(pg_temp.run_task('fresh'), 'lease_lost', 'a repeated call after completion creates nothing more');

-- A retried run whose earlier attempt created its task (as if that attempt's completion was lost) finds that task.
select pg_temp.start_and_claim('retried', 'project_flow', jsonb_build_object('topic', 'again', 'who', 'Cy', 'assignee', tests.user_id('ct_editor')));
select tests.clear_authentication();
insert into public.tasks (project_id, title, workflow_run_id)
select pg_temp.id('private'), 'Follow up: again', run_id from claims where name = 'retried';
select tests.authenticate_as_service_role();
select is(pg_temp.run_task('retried'), 'completed', 'the retried run completes');
select is((select r.output ->> 'created' from public.workflow_runs r join claims c on c.run_id = r.id where c.name = 'retried'), 'false',
          'without creating a task (created false)');
select is((select count(*) from public.tasks t join claims c on c.run_id = t.workflow_run_id where c.name = 'retried'), 1::bigint,
          'the run still has exactly one task');

-- A project named in the params.
select pg_temp.start_and_claim('named', 'org_flow', jsonb_build_object('topic', 'footer', 'project', pg_temp.id('open')));
select is(pg_temp.run_task('named'), 'completed', 'an organization-wide workflow creates a task in the project its params name');
select is((select t.project_id from public.tasks t join claims c on c.run_id = t.workflow_run_id where c.name = 'named'),
          pg_temp.id('open'), 'in that project');

-- Refusals: the run fails at once (not retried) with invalid_params and the reason; no task.
select pg_temp.start_and_claim('private', 'org_flow', jsonb_build_object('topic', 'leak', 'project', pg_temp.id('private')));
select is(pg_temp.run_task('private'), 'failed', 'an organization-wide workflow cannot put a task into a private project');
select is(pg_temp.error_of('private'), 'a private project takes tasks only from its own workflows', 'the reason is given');
select pg_temp.start_and_claim('foreign', 'org_flow', jsonb_build_object('topic', 'x', 'project', pg_temp.id('foreign')));
select pg_temp.start_and_claim('archived', 'org_flow', jsonb_build_object('topic', 'x', 'project', pg_temp.id('archived')));
select pg_temp.start_and_claim('not_uuid', 'org_flow', jsonb_build_object('topic', 'x', 'project', 'website'));
select pg_temp.start_and_claim('missing', 'org_flow', jsonb_build_object('project', pg_temp.id('open')));
select pg_temp.start_and_claim('bare', 'bare_flow', '{}');
select pg_temp.start_and_claim('outsider', 'project_flow', jsonb_build_object('topic', 'x', 'who', 'x', 'assignee', tests.user_id('ct_outsider')));
create temporary table outcomes on commit drop as
  select c.name, pg_temp.run_task(c.name) as outcome from claims c
  where c.name in ('foreign', 'archived', 'not_uuid', 'missing', 'bare', 'outsider');
select results_eq($$select c.name, o.outcome, r.status::text, r.attempt, r.error ->> 'code', r.error ->> 'message'
                    from claims c join outcomes o on o.name = c.name join public.workflow_runs r on r.id = c.run_id
                    where c.name in ('foreign', 'archived', 'not_uuid', 'missing', 'bare', 'outsider') order by c.name$$,
                  $$values ('archived'::text, 'failed'::text, 'failed'::text, 1, 'invalid_params'::text, 'the project is archived'::text),
                           ('bare', 'failed', 'failed', 1, 'invalid_params', 'a create_task task needs params.project_id unless its workflow belongs to a project'),
                           ('foreign', 'failed', 'failed', 1, 'invalid_params', 'the project does not exist in this organization'),
                           ('missing', 'failed', 'failed', 1, 'invalid_params', 'the template refers to {{input.topic}}, which the execution context does not hold'),
                           ('not_uuid', 'failed', 'failed', 1, 'invalid_params', 'params.project_id must be a UUID'),
                           ('outsider', 'failed', 'failed', 1, 'invalid_params', 'the assignee must be a member of the project')$$,
                  'another organization''s, an archived or an unnamed project, a bad UUID, a missing input and a rule of tasks fail the run with the reason');
select is((select count(*) from public.tasks t join claims c on c.run_id = t.workflow_run_id
           where c.name in ('private', 'foreign', 'archived', 'not_uuid', 'missing', 'bare', 'outsider')), 0::bigint,
          'no refused run created a task');
select is((select count(*) from public.workflow_executions e join claims c on c.execution_id = e.id
           where c.name in ('private', 'foreign', 'archived', 'not_uuid', 'missing', 'bare', 'outsider') and e.status = 'failed'), 7::bigint,
          'and each of their executions failed');

-- Only the worker runs the action; clients cannot write workflow_run_id.
select tests.authenticate_as('ct_owner');
select throws_ok($$select public.create_workflow_task(gen_random_uuid(), gen_random_uuid())$$, '42501', null,
                 'a signed-in user cannot call create_workflow_task');
select throws_ok($$insert into public.tasks (project_id, title, workflow_run_id) values (pg_temp.id('open'), 'forged', gen_random_uuid())$$,
                 '42501', null, 'nor set a task''s workflow_run_id');
select tests.clear_authentication();

-- A project's workflow emits its events (emit_event nodes) as the project's: its webhooks get them, organization-wide
-- ones do not (the project is private).
select tests.authenticate_as('ct_owner');
insert into ids select h.name, public.create_webhook(tests.org_id('test-ct'), h.name, 'https://hooks.example.com/' || h.name,
  array['workflow.event'], 'whsec_' || encode(extensions.gen_random_bytes(32), 'base64'), '{}', pg_temp.id(h.project))
from (values ('project_events', 'private'), ('org_events', null)) h (name, project);
select tests.clear_authentication();
with w as (insert into public.workflows (organization_id, project_id, name, definition)
           values (tests.org_id('test-ct'), pg_temp.id('private'), 'Announce',
                   '{"nodes": [{"id": "say", "type": "task", "name": "Say", "config": {"action": "emit_event", "params": {"event_type": "workflow.event", "payload": {"note": "term sheet signed"}}}}], "edges": []}')
           returning id)
insert into ids select 'emitter', id from w;
select tests.authenticate_as_service_role();
select pg_temp.start_and_claim('emitted', 'emitter', '{}');
select is((select public.emit_workflow_event(run_id, lease_token) from claims where name = 'emitted'), 'completed',
          'the project workflow''s emit_event node completes');
select tests.clear_authentication();
select results_eq($$select w.name, d.project_id from public.webhook_deliveries d join public.webhooks w on w.id = d.webhook_id
                    where d.event_type = 'workflow.event' and w.organization_id = tests.org_id('test-ct')$$,
                  $$values ('project_events'::text, pg_temp.id('private'))$$,
                  'its event reaches the project''s webhook, as the project''s, and not the organization-wide one');

select * from finish();
rollback;
