-- The workflow actor matrix: what an owner, admin, member, viewer, stranger, anonymous client and the service role
-- can read of workflows, versions, executions, runs and approvals, and which writes and RPCs each may use. Also: an
-- approver without workflows.read sees the requests they decide; realtime publishes executions and approvals.
begin;
select plan(65);

select tests.create_user(h) from unnest(array['r_owner', 'r_admin', 'r_member', 'r_viewer', 'r_stranger', 'r_approver']) h;
select tests.create_organization('r_owner', 'test-wf-matrix');
select tests.add_member(tests.org_id('test-wf-matrix'), 'r_admin', 'admin');
select tests.add_member(tests.org_id('test-wf-matrix'), 'r_member', 'member');
select tests.add_member(tests.org_id('test-wf-matrix'), 'r_viewer', 'viewer');
insert into public.roles (organization_id, key, name, rank) values (tests.org_id('test-wf-matrix'), 'approver', 'Approver', 20);
insert into public.role_permissions (role_id, permission_key)
select id, 'approvals.decide' from public.roles where key = 'approver' and organization_id = tests.org_id('test-wf-matrix');
select tests.add_member(tests.org_id('test-wf-matrix'), 'r_approver', 'approver');

create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to anon, authenticated, service_role;
create function pg_temp.id(key text) returns uuid language sql stable as $$ select id from ids where name = key $$;
grant execute on function pg_temp.id(text) to anon, authenticated, service_role;

with w as (insert into public.workflows (organization_id, name, definition) values (tests.org_id('test-wf-matrix'), 'Matrix',
  '{"nodes": [{"id": "sign", "type": "approval", "name": "Sign", "config": {"approval_type": "majority", "approvers": {"role": "member"}, "escalate_after": "1 day", "escalate_to": {"role": "approver"}}},
              {"id": "send", "type": "task", "name": "Send", "config": {"action": "emit_event"}}],
    "edges": [{"from": "sign", "to": "send"}]}') returning id)
insert into ids select 'workflow', id from w;
insert into ids values ('execution', public.start_workflow(pg_temp.id('workflow'), '{"n": 1}'));
update public.approval_requests set escalate_after = now() - interval '1 second' where execution_id = pg_temp.id('execution');
select private.escalate_approval_requests();

create temporary table visibility_probe (sql text) on commit drop;
insert into visibility_probe values ($$
  select (select count(*) from public.workflows where organization_id = tests.org_id('test-wf-matrix'))::integer as workflows,
         (select count(*) from public.workflow_versions where organization_id = tests.org_id('test-wf-matrix'))::integer as versions,
         (select count(*) from public.workflow_executions where organization_id = tests.org_id('test-wf-matrix'))::integer as executions,
         (select count(*) from public.workflow_runs where organization_id = tests.org_id('test-wf-matrix'))::integer as runs,
         (select count(*) from public.approval_requests where organization_id = tests.org_id('test-wf-matrix'))::integer as requests,
         (select count(*) from public.approval_request_approvers where organization_id = tests.org_id('test-wf-matrix'))::integer as approvers$$);
grant select on visibility_probe to anon, authenticated, service_role;

-- Reads.
select tests.authenticate_as('r_owner');
select results_eq((select sql from visibility_probe), $$values (1, 1, 1, 1, 1, 2)$$, 'the owner sees the workflow, its version, execution, run, request and approvers');
select tests.authenticate_as('r_admin');
select results_eq((select sql from visibility_probe), $$values (1, 1, 1, 1, 1, 2)$$, 'an admin sees the same');
select tests.authenticate_as('r_member');
select results_eq((select sql from visibility_probe), $$values (1, 1, 1, 1, 1, 2)$$, 'a member sees the same (workflows.read)');
select tests.authenticate_as('r_viewer');
select results_eq((select sql from visibility_probe), $$values (1, 1, 1, 1, 1, 2)$$, 'a viewer sees the same (workflows.read)');
select tests.authenticate_as('r_approver');
select results_eq((select sql from visibility_probe), $$values (0, 0, 0, 0, 1, 2)$$, 'an approver without workflows.read sees only the request they decide and its approvers');
select tests.authenticate_as('r_stranger');
select results_eq((select sql from visibility_probe), $$values (0, 0, 0, 0, 0, 0)$$, 'a stranger sees nothing');
select tests.authenticate_as_service_role();
select results_eq((select sql from visibility_probe), $$values (1, 1, 1, 1, 1, 2)$$, 'the service role sees everything');
select tests.authenticate_as_anon();
select throws_ok(format('select 1 from public.%I', t), '42501', null, format('anon cannot read %s', t))
from unnest(array['workflows', 'workflow_versions', 'workflow_executions', 'workflow_runs', 'approval_requests',
                  'approval_request_approvers', 'approval_decisions']) t;

-- Writing workflows: workflows.manage (owner, admin), the service role.
create temporary table insert_probe (sql text) on commit drop;
insert into insert_probe values ($$insert into public.workflows (organization_id, name, definition) values (tests.org_id('test-wf-matrix'), 'New',
  '{"nodes": [{"id": "a", "type": "task", "name": "A", "config": {"action": "emit_event"}}], "edges": []}')$$);
grant select on insert_probe to anon, authenticated, service_role;
select tests.authenticate_as('r_owner');
select lives_ok((select sql from insert_probe), 'the owner creates a workflow');
select is((select created_by from public.workflows where name = 'New' limit 1), tests.user_id('r_owner'), 'created_by is the caller');
select tests.authenticate_as('r_admin');
select lives_ok((select sql from insert_probe), 'an admin creates a workflow');
select tests.authenticate_as('r_member');
select throws_ok((select sql from insert_probe), '42501', null, 'a member cannot create a workflow');
select tests.authenticate_as('r_viewer');
select throws_ok((select sql from insert_probe), '42501', null, 'a viewer cannot create a workflow');
select tests.authenticate_as('r_stranger');
select throws_ok((select sql from insert_probe), '42501', null, 'a stranger cannot create a workflow');
select tests.authenticate_as_anon();
select throws_ok((select sql from insert_probe), '42501', null, 'anon cannot create a workflow');
select tests.authenticate_as_service_role();
select lives_ok((select sql from insert_probe), 'the service role creates a workflow');

select tests.authenticate_as('r_owner');
select throws_ok($$insert into public.workflows (organization_id, name, definition, created_by) values (tests.org_id('test-wf-matrix'), 'x',
  '{"nodes": [{"id": "a", "type": "task", "name": "A", "config": {"action": "emit_event"}}], "edges": []}', tests.user_id('r_admin'))$$,
  '42501', null, 'nobody sets created_by');
select throws_ok($$update public.workflows set organization_id = gen_random_uuid() where id = pg_temp.id('workflow')$$, '42501', null, 'nobody moves a workflow to another organization');
select throws_ok($$update public.workflows set current_version = 7 where id = pg_temp.id('workflow')$$, '42501', null, 'nobody sets current_version');
select throws_ok($$delete from public.workflows where id = pg_temp.id('workflow')$$, '42501', null, 'workflows are soft-deleted, never deleted');
select tests.authenticate_as('r_member');
select is(tests.rows_affected($$update public.workflows set name = 'Member edit' where id = pg_temp.id('workflow')$$), 0::bigint, 'a member cannot edit a workflow');
select tests.authenticate_as('r_viewer');
select is(tests.rows_affected($$update public.workflows set name = 'Viewer edit' where id = pg_temp.id('workflow')$$), 0::bigint, 'a viewer cannot edit a workflow');
select tests.authenticate_as('r_stranger');
select is(tests.rows_affected($$update public.workflows set name = 'Stranger edit' where id = pg_temp.id('workflow')$$), 0::bigint, 'a stranger cannot edit a workflow');
select tests.authenticate_as('r_admin');
select is(tests.rows_affected($$update public.workflows set description = 'Edited by an admin' where id = pg_temp.id('workflow')$$), 1::bigint, 'an admin edits a workflow');
select tests.authenticate_as('r_owner');
select is(tests.rows_affected($$update public.workflows set deleted_at = now() where name = 'New'$$), 3::bigint, 'the owner soft-deletes workflows');

-- Nobody writes executions, runs, versions or approvals directly.
select tests.authenticate_as('r_owner');
select throws_ok(s, '42501', null, d) from (values
  ($$insert into public.workflow_executions (workflow_id, workflow_version_id, organization_id, trigger_type) select workflow_id, workflow_version_id, organization_id, 'manual' from public.workflow_executions limit 1$$, 'the owner cannot insert an execution'),
  ($$update public.workflow_executions set status = 'succeeded'$$, 'the owner cannot update an execution'),
  ($$update public.workflow_runs set status = 'succeeded'$$, 'the owner cannot update a run'),
  ($$insert into public.workflow_versions (workflow_id, organization_id, version, definition) values (pg_temp.id('workflow'), tests.org_id('test-wf-matrix'), 9, '{}')$$, 'the owner cannot write a version'),
  ($$update public.approval_requests set status = 'approved'$$, 'the owner cannot approve by updating the request'),
  ($$insert into public.approval_decisions (approval_request_id, organization_id, approver_id, decision) select id, organization_id, auth.uid(), 'approve' from public.approval_requests limit 1$$, 'the owner cannot insert a decision'),
  ($$insert into public.approval_request_approvers (approval_request_id, organization_id, user_id, source) select id, organization_id, auth.uid(), 'user_ids' from public.approval_requests limit 1$$, 'the owner cannot make themselves an approver')
) cases(s, d);
select tests.authenticate_as_service_role();
select throws_ok($$update public.workflow_runs set status = 'succeeded'$$, '42501', null, 'the service role changes runs only through the RPCs');

-- start_workflow: workflows.execute (owner, admin, member).
select tests.clear_authentication();
with w as (insert into public.workflows (organization_id, name, definition) values (tests.org_id('test-wf-matrix'), 'Runnable',
  '{"nodes": [{"id": "a", "type": "task", "name": "A", "config": {"action": "emit_event"}}], "edges": []}') returning id)
insert into ids select 'runnable', id from w;
select tests.authenticate_as('r_owner');
select isnt(public.start_workflow(pg_temp.id('runnable')), null, 'the owner starts a workflow');
select tests.authenticate_as('r_admin');
select isnt(public.start_workflow(pg_temp.id('runnable')), null, 'an admin starts a workflow');
select tests.authenticate_as('r_member');
insert into ids values ('member-run', public.start_workflow(pg_temp.id('runnable'), '{}', 'member-key'));
select isnt(pg_temp.id('member-run'), null, 'a member starts a workflow');
select tests.authenticate_as('r_viewer');
select throws_ok($$select public.start_workflow(pg_temp.id('runnable'))$$, '42501', null, 'a viewer cannot start a workflow');
select throws_ok($$select public.cancel_workflow_execution(pg_temp.id('member-run'), 'viewer')$$, '42501', null, 'a viewer cannot cancel an execution');
select tests.authenticate_as('r_stranger');
select throws_ok($$select public.start_workflow(pg_temp.id('runnable'))$$, '42501', null, 'a stranger cannot start a workflow');
select throws_ok($$select public.cancel_workflow_execution(pg_temp.id('member-run'), 'stranger')$$, '42501', null, 'a stranger cannot cancel an execution');
select tests.authenticate_as('r_approver');
select throws_ok($$select public.start_workflow(pg_temp.id('runnable'))$$, '42501', null, 'an approver without workflows.execute cannot start a workflow');
select tests.authenticate_as_anon();
select throws_ok($$select public.start_workflow(pg_temp.id('runnable'))$$, '42501', null, 'anon cannot start a workflow');
select tests.authenticate_as_service_role();
insert into ids values ('service-run', public.start_workflow(pg_temp.id('runnable')));
select results_eq($$select e.trigger_type::text, e.triggered_by from public.workflow_executions e where e.id = pg_temp.id('service-run')$$,
  $$values ('manual'::text, null::uuid)$$, 'the service role starts a workflow with no triggering user');
select tests.authenticate_as('r_member');
select is((public.cancel_workflow_execution(pg_temp.id('member-run'), 'changed my mind')).status, 'cancelled', 'a member cancels an execution');

-- The worker RPCs: service role only.
select throws_ok(format('select %s', c), '42501', null, format('%s cannot call %s', a, split_part(c, '(', 1)))
from (values ('r_owner'), ('r_member'), ('anon')) actors(a),
     unnest(array[$$public.claim_workflow_runs('w')$$, $$public.complete_workflow_run(gen_random_uuid(), gen_random_uuid(), '{}')$$,
                  $$public.fail_workflow_run(gen_random_uuid(), gen_random_uuid(), '{}')$$]) c
where (a = 'anon' and tests.authenticate_as_anon() is not null) or (a <> 'anon' and tests.authenticate_as(a) is not null);
select tests.authenticate_as('r_owner');
select throws_ok($$select private.start_workflow_execution(pg_temp.id('runnable'), '{}', null, 'manual', null)$$, '42501', null, 'the engine''s internals are not callable by clients');

-- Deciding: the approvers (members, and the custom approver added by escalation); a viewer is none.
select tests.authenticate_as('r_viewer');
select throws_ok($$select public.decide_approval((select id from public.approval_requests where execution_id = pg_temp.id('execution')), 'approve')$$, '42501', null, 'a viewer cannot decide');
select tests.authenticate_as('r_member');
select is((public.decide_approval((select id from public.approval_requests where execution_id = pg_temp.id('execution')), 'approve')).status, 'pending',
  'a member approver decides (1 of 2: the member by role, the custom approver by escalation; no majority yet)');
select tests.authenticate_as('r_approver');
select is((select count(*)::integer from public.approval_decisions), 1, 'an approver without workflows.read sees the decisions of their request');
select tests.authenticate_as('r_stranger');
select is((select count(*)::integer from public.approval_decisions), 0, 'a stranger sees no decision');

-- Realtime.
select tests.clear_authentication();
select results_eq($$select tablename::text collate "default" from pg_catalog.pg_publication_tables where pubname = 'supabase_realtime' and schemaname = 'public'
                  and tablename in ('workflow_executions', 'approval_requests') order by tablename$$,
  $$values ('approval_requests'::text), ('workflow_executions')$$, 'executions and approval requests are published to realtime');

select * from finish();
rollback;
