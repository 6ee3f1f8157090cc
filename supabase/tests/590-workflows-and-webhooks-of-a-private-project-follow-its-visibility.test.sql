-- Automations of a project: workflows.project_id and webhooks.project_id. The actor matrix (organization owner and
-- admin, project editor, project viewer, organization member outside the private project, a member role without
-- workflows.manage, stranger, anon, service role) for the workflow, its version, execution, runs, approval request
-- and approvers, the webhook and its deliveries; writes and RPCs narrowed to those who edit the project.
begin;
select plan(39);

create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to anon, authenticated, service_role;
create function pg_temp.id(key text) returns uuid language sql stable as $$ select id from ids where name = key $$;
grant execute on function pg_temp.id(text) to anon, authenticated, service_role;

select tests.create_user(h) from unnest(array['au_owner', 'au_admin', 'au_editor', 'au_viewer', 'au_outsider', 'au_member', 'au_stranger']) h;
select tests.create_organization('au_owner', 'test-au');
select tests.create_organization('au_stranger', 'test-au-other');
-- A custom role that manages workflows and webhooks but is not projects.admin: only the project decides what it sees.
insert into public.roles (organization_id, key, name, rank) values (tests.org_id('test-au'), 'automator', 'Automator', 30);
insert into public.role_permissions (role_id, permission_key)
select r.id, p from public.roles r, unnest(array['members.read', 'workflows.read', 'workflows.manage', 'workflows.execute',
                                                 'webhooks.manage', 'projects.read', 'projects.manage', 'approvals.decide']) p
where r.key = 'automator' and r.organization_id = tests.org_id('test-au');
select tests.add_member(tests.org_id('test-au'), 'au_admin', 'admin');
select tests.add_member(tests.org_id('test-au'), h, 'automator') from unnest(array['au_editor', 'au_viewer', 'au_outsider']) h;
select tests.add_member(tests.org_id('test-au'), 'au_member', 'member');

with p as (insert into public.projects (organization_id, owner_id, title, visibility)
           values (tests.org_id('test-au'), tests.user_id('au_owner'), 'Secret launch', 'private') returning id)
insert into ids select 'private', id from p;
with p as (insert into public.projects (organization_id, owner_id, title)
           values (tests.org_id('test-au'), tests.user_id('au_owner'), 'Website') returning id)
insert into ids select 'open', id from p;
with p as (insert into public.projects (organization_id, owner_id, title)
           values (tests.org_id('test-au-other'), tests.user_id('au_stranger'), 'Elsewhere') returning id)
insert into ids select 'foreign', id from p;
insert into public.project_members (project_id, user_id, role) values
  (pg_temp.id('private'), tests.user_id('au_editor'), 'editor'),
  (pg_temp.id('private'), tests.user_id('au_viewer'), 'viewer'),
  (pg_temp.id('private'), tests.user_id('au_member'), 'editor');

-- The private project's workflow (an approval, then a task) and an organization-wide one, each started once.
create temporary table definitions (name text primary key, body jsonb) on commit drop;
grant select on definitions to authenticated, service_role;
insert into definitions values ('approve', jsonb_build_object('nodes', jsonb_build_array(
  jsonb_build_object('id', 'sign', 'type', 'approval', 'name', 'Sign', 'config',
                     jsonb_build_object('approval_type', 'single', 'approvers', jsonb_build_object('user_ids', jsonb_build_array(tests.user_id('au_owner'))))),
  jsonb_build_object('id', 'send', 'type', 'task', 'name', 'Send', 'config', jsonb_build_object('action', 'emit_event'))),
  'edges', jsonb_build_array(jsonb_build_object('from', 'sign', 'to', 'send'))));
with w as (insert into public.workflows (organization_id, project_id, name, definition)
           values (tests.org_id('test-au'), pg_temp.id('private'), 'Launch sign-off', (select body from definitions where name = 'approve'))
           returning id)
insert into ids select 'project_workflow', id from w;
with w as (insert into public.workflows (organization_id, name, definition)
           values (tests.org_id('test-au'), 'Organization sign-off', (select body from definitions where name = 'approve'))
           returning id)
insert into ids select 'org_workflow', id from w;
insert into ids values ('execution', public.start_workflow(pg_temp.id('project_workflow'), '{}'));
insert into ids select 'request', id from public.approval_requests where execution_id = pg_temp.id('execution');

-- The private project's webhook (created by its editor) and an organization-wide one, both on task.created.
select tests.authenticate_as('au_editor');
insert into ids values ('project_hook', public.create_webhook(tests.org_id('test-au'), 'Launch hook', 'https://hooks.example.com/launch',
  array['task.created'], 'whsec_' || encode(extensions.gen_random_bytes(32), 'base64'), '{}', pg_temp.id('private')));
select tests.authenticate_as('au_owner');
insert into ids values ('org_hook', public.create_webhook(tests.org_id('test-au'), 'All tasks', 'https://hooks.example.com/all',
  array['task.created'], 'whsec_' || encode(extensions.gen_random_bytes(32), 'base64')));
select tests.clear_authentication();
insert into public.tasks (project_id, title) values (pg_temp.id('private'), 'Draft the announcement');

create temporary table probe (sql text) on commit drop;
grant select on probe to anon, authenticated, service_role;
insert into probe values ($$
  select (select count(*) from public.workflows where id = pg_temp.id('project_workflow'))::integer as workflows,
         (select count(*) from public.workflow_versions where workflow_id = pg_temp.id('project_workflow'))::integer as versions,
         (select count(*) from public.workflow_executions where workflow_id = pg_temp.id('project_workflow'))::integer as executions,
         (select count(*) from public.workflow_runs where execution_id = pg_temp.id('execution'))::integer as runs,
         (select count(*) from public.approval_requests where execution_id = pg_temp.id('execution'))::integer as requests,
         (select count(*) from public.approval_request_approvers where approval_request_id = pg_temp.id('request'))::integer as approvers,
         (select count(*) from public.webhooks where id = pg_temp.id('project_hook'))::integer as webhooks,
         (select count(*) from public.webhook_deliveries where webhook_id = pg_temp.id('project_hook'))::integer as deliveries,
         (select count(*) from public.workflows where id = pg_temp.id('org_workflow'))::integer as org_workflows$$);

select is((select count(*) from public.webhook_deliveries where webhook_id = pg_temp.id('project_hook')), 1::bigint,
          'setup: the private project''s task reached its webhook');

-- Reads.
select tests.authenticate_as('au_owner');
select results_eq((select sql from probe), $$values (1, 1, 1, 1, 1, 1, 1, 1, 1)$$, 'the organization owner sees all of the private project''s automation');
select tests.authenticate_as('au_admin');
select results_eq((select sql from probe), $$values (1, 1, 1, 1, 1, 1, 1, 1, 1)$$, 'an admin (projects.admin) sees the same');
select tests.authenticate_as('au_editor');
select results_eq((select sql from probe), $$values (1, 1, 1, 1, 1, 1, 1, 1, 1)$$, 'the project editor sees the same');
select tests.authenticate_as('au_viewer');
select results_eq((select sql from probe), $$values (1, 1, 1, 1, 1, 1, 1, 1, 1)$$, 'the project viewer sees the same (reading is enough)');
select tests.authenticate_as('au_member');
select results_eq((select sql from probe), $$values (1, 1, 1, 1, 1, 1, 0, 0, 1)$$, 'a project editor without webhooks.manage sees the workflow but no webhook');
select tests.authenticate_as('au_outsider');
select results_eq((select sql from probe), $$values (0, 0, 0, 0, 0, 0, 0, 0, 1)$$, 'an organization member outside the private project sees none of it, only the organization-wide workflow');
select tests.authenticate_as('au_stranger');
select results_eq((select sql from probe), $$values (0, 0, 0, 0, 0, 0, 0, 0, 0)$$, 'a stranger sees nothing');
select tests.authenticate_as_service_role();
select results_eq((select sql from probe), $$values (1, 1, 1, 1, 1, 1, 1, 1, 1)$$, 'the service role sees everything');
select tests.authenticate_as_anon();
select throws_ok(format('select 1 from public.%I', t), '42501', null, format('anon cannot read %s', t))
from unnest(array['workflows', 'webhooks', 'webhook_deliveries']) t;

-- Workflow writes: workflows.manage and editing the project.
select tests.authenticate_as('au_editor');
select is(tests.rows_affected($$update public.workflows set description = 'edited' where id = pg_temp.id('project_workflow')$$), 1::bigint,
          'the project editor (workflows.manage) edits the project''s workflow');
select lives_ok($$insert into public.workflows (organization_id, project_id, name, definition)
                  values (tests.org_id('test-au'), pg_temp.id('private'), 'Another', (select body from definitions where name = 'approve'))$$,
                'the project editor creates a workflow of the project');
select tests.authenticate_as('au_viewer');
select is(tests.rows_affected($$update public.workflows set description = 'viewer' where id = pg_temp.id('project_workflow')$$), 0::bigint,
          'the project viewer cannot edit it');
select throws_ok($$insert into public.workflows (organization_id, project_id, name, definition)
                   values (tests.org_id('test-au'), pg_temp.id('private'), 'Viewer''s', (select body from definitions where name = 'approve'))$$,
                 '42501', null, 'the project viewer cannot create one');
select tests.authenticate_as('au_member');
select is(tests.rows_affected($$update public.workflows set description = 'member' where id = pg_temp.id('project_workflow')$$), 0::bigint,
          'a project editor without workflows.manage cannot edit it (the project only narrows)');
select tests.authenticate_as('au_outsider');
select is(tests.rows_affected($$update public.workflows set description = 'outsider' where id = pg_temp.id('project_workflow')$$), 0::bigint,
          'an organization member outside the project cannot edit it');
select throws_ok($$insert into public.workflows (organization_id, project_id, name, definition)
                   values (tests.org_id('test-au'), pg_temp.id('private'), 'Sneaky', (select body from definitions where name = 'approve'))$$,
                 '42501', null, 'nor create a workflow in it');
select throws_ok($$update public.workflows set project_id = pg_temp.id('private') where id = pg_temp.id('org_workflow')$$,
                 '42501', null, 'nor move an organization-wide workflow into it');
select throws_ok($$update public.workflows set project_id = pg_temp.id('open') where id = pg_temp.id('org_workflow')$$,
                 '42501', null, 'nor tie one to an organization-visible project it only reads');
select tests.authenticate_as_service_role();
select throws_ok($$insert into public.workflows (organization_id, project_id, name, definition)
                   values (tests.org_id('test-au'), pg_temp.id('foreign'), 'Cross', (select body from definitions where name = 'approve'))$$,
                 '23514', 'the project must belong to the workflow''s organization', 'a workflow''s project belongs to its organization');

-- RPCs: running, cancelling, webhook management.
select tests.authenticate_as('au_outsider');
select throws_ok($$select public.start_workflow(pg_temp.id('project_workflow'), '{}')$$, '42501', null,
                 'an outsider cannot start the private project''s workflow');
select throws_ok($$select public.cancel_workflow_execution(pg_temp.id('execution'), 'no')$$, '42501', null,
                 'nor cancel its execution');
select throws_ok($$select public.create_webhook(tests.org_id('test-au'), 'Mine', 'https://hooks.example.com/x', array['task.created'],
                   'whsec_' || encode(extensions.gen_random_bytes(32), 'base64'), '{}', pg_temp.id('private'))$$,
                 'P0002', null, 'nor create a webhook of it (the project is not found)');
select is(tests.rows_affected($$update public.webhooks set name = 'mine' where id = pg_temp.id('project_hook')$$), 0::bigint,
          'nor edit its webhook');
select is(tests.rows_affected($$delete from public.webhooks where id = pg_temp.id('project_hook')$$), 0::bigint,
          'nor delete it');
select tests.authenticate_as('au_viewer');
select isnt(public.start_workflow(pg_temp.id('project_workflow'), '{}'), null, 'the project viewer (workflows.execute) starts it');
select throws_ok($$select public.create_webhook(tests.org_id('test-au'), 'Viewer', 'https://hooks.example.com/v', array['task.created'],
                   'whsec_' || encode(extensions.gen_random_bytes(32), 'base64'), '{}', pg_temp.id('private'))$$,
                 '42501', null, 'the project viewer cannot create a webhook of it');
select is(tests.rows_affected($$update public.webhooks set name = 'viewer' where id = pg_temp.id('project_hook')$$), 0::bigint,
          'nor edit its webhook');
select throws_ok($$select public.send_test_webhook(pg_temp.id('project_hook'))$$, '42501', null,
                 'nor send it a test delivery');
select tests.authenticate_as('au_editor');
select is(tests.rows_affected($$update public.webhooks set name = 'Launch hook 2' where id = pg_temp.id('project_hook')$$), 1::bigint,
          'the project editor edits the project''s webhook');
select throws_ok($$update public.webhooks set project_id = pg_temp.id('foreign') where id = pg_temp.id('project_hook')$$,
                 '23514', 'the project must belong to the webhook''s organization', 'a webhook''s project belongs to its organization');
select lives_ok($$select public.send_test_webhook(pg_temp.id('project_hook'))$$, 'and sends it a test delivery');
select lives_ok($$select public.cancel_workflow_execution(pg_temp.id('execution'), 'not needed')$$, 'and cancels the project''s execution');
select tests.clear_authentication();

-- The project's automation goes with it.
select is((select count(*) from public.workflows where project_id = pg_temp.id('private')), 2::bigint,
          'before: the private project has two workflows');
delete from public.projects where id = pg_temp.id('private');
select is((select count(*) from public.workflows where id = pg_temp.id('project_workflow')), 0::bigint,
          'deleting the project deletes its workflows');
select is((select count(*) from public.webhooks where id = pg_temp.id('project_hook')), 0::bigint,
          'and its webhooks (their deliveries with them)');
select is((select count(*) from public.webhooks where id = pg_temp.id('org_hook')), 1::bigint,
          'organization-wide webhooks stay');

select * from finish();
rollback;
