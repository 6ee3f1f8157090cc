-- Work management (seed 004): automations. workflows.project_id and webhooks.project_id (what hangs off them follows
-- the project's visibility), the task.created / task.status_changed / task.assigned events, the create_task action.

-- An automation is a workflow triggered by an event (trigger_type 'event', 49-workflows-triggers-and-actions.sql).
-- Routing of a project's events (private.emit_event, 44; private.start_event_workflows, 49): an event with a
-- project_id reaches the webhooks and workflows of that project, and the organization-wide ones (project_id null)
-- only when the project is organization-visible; nothing of a private project leaves it through an automation its
-- members cannot see. Visibility: the policies of 43-49 are narrowed here with alter policy (a comment at each
-- original says so): a workflow or webhook with a project_id is seen only by those who also read the project and
-- changed only by those who also edit it; versions, executions, runs, approvals, AI tasks, refusals and deliveries
-- follow their workflow or webhook. Narrowing only: workflows.manage and webhooks.manage are still needed.

insert into public.webhook_event_types (key, description) values
  ('task.created', 'A task was created. {"task_id", "project_id", "parent_task_id", "title", "status", "priority", "assignee_id", "due_date", "tags", "created_by", "workflow_run_id"}'),
  ('task.status_changed', 'A task changed status. {"task_id", "project_id", "title", "previous_status", "status", "blocked_reason", "changed_by"}'),
  ('task.assigned', 'A task was assigned (at creation or later; not when unassigned). {"task_id", "project_id", "title", "assignee_id", "previous_assignee_id", "assigned_by"}');

-- The project links.
alter table public.workflows add column project_id uuid;
alter table public.workflows add constraint workflows_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade;
comment on column public.workflows.project_id is 'The project this workflow automates, or null for an organization-wide workflow. Set: seen only by workflows.read holders who read the project, written only by workflows.manage holders who edit it; started only by its project''s events. Deleted with the project.';
create index workflows_project_id_idx on public.workflows (project_id);

alter table public.webhooks add column project_id uuid;
alter table public.webhooks add constraint webhooks_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade;
comment on column public.webhooks.project_id is 'The project whose events this webhook receives, or null for organization-wide (which gets no event of a private project). Set: seen only by webhooks.manage holders who read the project, changed only by those who edit it. Deleted with the project.';
create index webhooks_project_id_idx on public.webhooks (project_id);

alter table public.webhook_deliveries add constraint webhook_deliveries_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade;
create index webhook_deliveries_project_id_idx on public.webhook_deliveries (project_id) where project_id is not null;

alter table public.tasks add column workflow_run_id uuid;
alter table public.tasks add constraint tasks_workflow_run_id_key unique (workflow_run_id);
alter table public.tasks add constraint tasks_workflow_run_id_fkey foreign key (workflow_run_id) references public.workflow_runs (id) on delete set null;
comment on column public.tasks.workflow_run_id is 'The workflow run (a create_task node) that created this task; null for tasks people created. Unique: a retried run finds its task instead of creating another. Not writable by clients.';

-- A workflow's or webhook's project belongs to its organization.
create function private.check_automation_project() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.project_id is not null and not exists (
       select 1 from public.projects p where p.id = new.project_id and p.organization_id = new.organization_id) then
    raise exception 'the project must belong to the %''s organization', case tg_table_name when 'webhooks' then 'webhook' else 'workflow' end
      using errcode = '23514', constraint = tg_table_name || '_project_same_organization';
  end if;
  return new;
end;
$$;

create trigger workflows_check_project before insert or update of project_id on public.workflows
  for each row execute function private.check_automation_project();
create trigger webhooks_check_project before insert or update of project_id on public.webhooks
  for each row execute function private.check_automation_project();

grant insert (project_id), update (project_id) on public.workflows to authenticated, service_role;
grant select (project_id), update (project_id) on public.webhooks to authenticated, service_role;

-- Helpers.
create function private.event_reaches_organization(project uuid) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select project is null or exists (select 1 from public.projects p where p.id = project and p.visibility = 'organization')
$$;
comment on function private.event_reaches_organization(uuid) is 'Whether an event of this project (null: of no project) may reach organization-wide webhooks and workflows: only when the project is organization-visible.';

create function private.can_read_workflow_project(workflow uuid) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select coalesce((select w.project_id is null or private.can_read_project(w.project_id)
                   from public.workflows w where w.id = workflow), false)
$$;
comment on function private.can_read_workflow_project(uuid) is 'Whether the caller may see this workflow as far as its project goes: organization-wide, or the caller reads its project. False for an unknown workflow.';

create function private.event_has_listeners(organization uuid, project uuid, event_types text[]) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (select 1 from public.webhooks w
                 where w.organization_id = organization and w.is_enabled and w.events && event_types
                   and (w.project_id is null or w.project_id = project))
      or exists (select 1 from public.workflows x
                 where x.organization_id = organization and x.trigger_type = 'event' and x.is_active and x.deleted_at is null
                   and x.trigger_config ->> 'event_type' = any (event_types)
                   and (x.project_id is null or x.project_id = project))
$$;
comment on function private.event_has_listeners(uuid, uuid, text[]) is 'Whether any enabled webhook or active event-triggered workflow of the organization, organization-wide or of this project, listens to one of these event types (the task triggers skip emitting otherwise).';

grant execute on function private.event_reaches_organization(uuid), private.can_read_workflow_project(uuid)
  to authenticated, service_role;

-- The narrowed policies (originals in 43, 44, 45, 46, 47, 48 and 49).
alter policy workflows_select on public.workflows
  using (organization_id in (select private.organizations_with_permission('workflows.read'))
         and (project_id is null or private.can_read_project(project_id)));
alter policy workflows_insert on public.workflows
  with check (organization_id in (select private.organizations_with_permission('workflows.manage'))
              and (project_id is null or private.can_edit_project(project_id)));
alter policy workflows_update on public.workflows
  using (organization_id in (select private.organizations_with_permission('workflows.manage'))
         and (project_id is null or private.can_edit_project(project_id)))
  with check (organization_id in (select private.organizations_with_permission('workflows.manage'))
              and (project_id is null or private.can_edit_project(project_id)));
-- Versions, executions and refusals follow their workflow (whose policy holds the organization and project rule).
alter policy workflow_versions_select on public.workflow_versions
  using (organization_id in (select private.organizations_with_permission('workflows.read'))
         and exists (select 1 from public.workflows w where w.id = workflow_id));
alter policy workflow_executions_select on public.workflow_executions
  using (organization_id in (select private.organizations_with_permission('workflows.read'))
         and exists (select 1 from public.workflows w where w.id = workflow_id));
alter policy workflow_event_refusals_select on public.workflow_event_refusals
  using (organization_id in (select private.organizations_with_permission('workflows.read'))
         and exists (select 1 from public.workflows w where w.id = workflow_id));
-- Runs, approval requests and AI tasks follow their execution; an approver still sees what they are asked to decide.
alter policy workflow_runs_select on public.workflow_runs
  using (organization_id in (select private.organizations_with_permission('workflows.read'))
         and exists (select 1 from public.workflow_executions e where e.id = execution_id));
alter policy approval_requests_select on public.approval_requests
  using ((organization_id in (select private.organizations_with_permission('workflows.read'))
          and exists (select 1 from public.workflow_executions e where e.id = execution_id))
         or id in (select private.my_approval_request_ids()));
alter policy approval_request_approvers_select on public.approval_request_approvers
  using (exists (select 1 from public.approval_requests r where r.id = approval_request_id));
alter policy approval_decisions_select on public.approval_decisions
  using (exists (select 1 from public.approval_requests r where r.id = approval_request_id));
alter policy ai_agent_tasks_select on public.ai_agent_tasks
  using (organization_id in (select private.organizations_with_permission('workflows.read'))
         and (execution_id is null or exists (select 1 from public.workflow_executions e where e.id = execution_id)));
-- Webhooks: a project's webhook is seen by webhooks.manage holders who read the project, changed by those who edit it.
alter policy webhooks_select on public.webhooks
  using (organization_id in (select private.organizations_with_permission('webhooks.manage'))
         and (project_id is null or private.can_read_project(project_id)));
alter policy webhooks_update on public.webhooks
  using (organization_id in (select private.organizations_with_permission('webhooks.manage'))
         and (project_id is null or private.can_edit_project(project_id)))
  with check (organization_id in (select private.organizations_with_permission('webhooks.manage'))
              and (project_id is null or private.can_edit_project(project_id)));
alter policy webhooks_delete on public.webhooks
  using (organization_id in (select private.organizations_with_permission('webhooks.manage'))
         and (project_id is null or private.can_edit_project(project_id)));
-- Deliveries: of webhooks one sees, and of events of projects one reads (an event's payload is the project's data).
alter policy webhook_deliveries_select on public.webhook_deliveries
  using (organization_id in (select private.organizations_with_permission('webhooks.manage'))
         and exists (select 1 from public.webhooks w where w.id = webhook_id)
         and (project_id is null or private.can_read_project(project_id)));

-- Task events. Creation is a statement trigger (a bulk insert checks for listeners once per project); status
-- and assignment changes are row triggers that fire only when the column really changed. Soft-deleted tasks emit
-- nothing. The actor (created_by, changed_by, assigned_by) is the signed-in user, null for the service or a workflow.
create function private.task_created_payload(t public.tasks) returns jsonb
language sql stable
set search_path = ''
as $$
  select jsonb_build_object('task_id', t.id, 'project_id', t.project_id, 'parent_task_id', t.parent_task_id,
    'title', t.title, 'status', t.status, 'priority', t.priority, 'assignee_id', t.assignee_id, 'due_date', t.due_date,
    'tags', to_jsonb(t.tags), 'created_by', t.created_by, 'workflow_run_id', t.workflow_run_id)
$$;

create function private.emit_task_created_events() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  t public.tasks;
begin
  for t in
    select n.* from new_tasks n
    where n.deleted_at is null
      and (n.organization_id, n.project_id) in (
            select o.organization_id, o.project_id from (select distinct x.organization_id, x.project_id from new_tasks x) o
            where private.event_has_listeners(o.organization_id, o.project_id, array['task.created', 'task.assigned']))
    order by n.created_at, n.position, n.id
  loop
    perform private.emit_event(t.organization_id, 'task.created', private.task_created_payload(t), gen_random_uuid(), t.project_id);
    if t.assignee_id is not null then
      perform private.emit_event(t.organization_id, 'task.assigned',
        jsonb_build_object('task_id', t.id, 'project_id', t.project_id, 'title', t.title, 'assignee_id', t.assignee_id,
                           'previous_assignee_id', null, 'assigned_by', (select auth.uid())),
        gen_random_uuid(), t.project_id);
    end if;
  end loop;
  return null;
end;
$$;

create function private.emit_task_changed_event() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if not private.event_has_listeners(new.organization_id, new.project_id, array[tg_argv[0]]) then
    return null;
  end if;
  perform private.emit_event(new.organization_id, tg_argv[0], case tg_argv[0]
    when 'task.status_changed' then
      jsonb_build_object('task_id', new.id, 'project_id', new.project_id, 'title', new.title, 'previous_status', old.status,
                         'status', new.status, 'blocked_reason', new.blocked_reason, 'changed_by', (select auth.uid()))
    else
      jsonb_build_object('task_id', new.id, 'project_id', new.project_id, 'title', new.title, 'assignee_id', new.assignee_id,
                         'previous_assignee_id', old.assignee_id, 'assigned_by', (select auth.uid())) end,
    gen_random_uuid(), new.project_id);
  return null;
end;
$$;

create trigger tasks_emit_created after insert on public.tasks
  referencing new table as new_tasks
  for each statement execute function private.emit_task_created_events();
create trigger tasks_emit_status_changed after update of status on public.tasks
  for each row when (old.status is distinct from new.status and new.deleted_at is null)
  execute function private.emit_task_changed_event('task.status_changed');
create trigger tasks_emit_assigned after update of assignee_id on public.tasks
  for each row when (old.assignee_id is distinct from new.assignee_id and new.assignee_id is not null and new.deleted_at is null)
  execute function private.emit_task_changed_event('task.assigned');

-- The create_task action. params (checked when the definition is saved, through workflow_node_config_problem in 45):
-- {"title", "description"?, "project_id"?, "parent_task_id"?, "assignee_id"?, "priority"?, "due_date"?,
--  "estimated_minutes"?, "tags"?}; the string values may hold {{input.x}} / {{nodes.<id>.y}}.
create function private.create_task_params_problem(params jsonb) returns text
language sql immutable
set search_path = ''
as $$
  select case
    when jsonb_typeof(params) is distinct from 'object' then '"params" must be an object'
    when exists (select 1 from jsonb_object_keys(params) k
                 where k not in ('title', 'description', 'project_id', 'parent_task_id', 'assignee_id', 'priority', 'due_date',
                                 'estimated_minutes', 'tags'))
      then 'create_task params are title, description, project_id, parent_task_id, assignee_id, priority, due_date, estimated_minutes and tags'
    when jsonb_typeof(params -> 'title') is distinct from 'string' or btrim(params ->> 'title') = ''
      then 'a create_task task needs params.title (a string, which may hold {{input.x}})'
    when exists (select 1 from unnest(array['description', 'project_id', 'parent_task_id', 'assignee_id', 'due_date']) k
                 where params ? k and jsonb_typeof(params -> k) <> 'string')
      then 'params description, project_id, parent_task_id, assignee_id and due_date must be strings'
    when params ? 'priority' and coalesce(params ->> 'priority', '') not in ('low', 'medium', 'high', 'urgent')
      then 'params.priority must be low, medium, high or urgent'
    when params ? 'estimated_minutes' and not (jsonb_typeof(params -> 'estimated_minutes') = 'number'
                                               and (params ->> 'estimated_minutes')::numeric between 0 and 1000000
                                               and (params ->> 'estimated_minutes')::numeric % 1 = 0)
      then 'params.estimated_minutes must be a whole number of minutes'
    when params ? 'tags' and (jsonb_typeof(params -> 'tags') <> 'array'
                              or exists (select 1 from jsonb_array_elements(params -> 'tags') e where jsonb_typeof(e) <> 'string'))
      then 'params.tags must be an array of strings'
  end
$$;
comment on function private.create_task_params_problem(jsonb) is 'Why create_task params do not fit their shape, or null when they fit.';

-- Run by the worker in one call, as the workflow: the task goes into params.project_id, else the workflow's project;
-- a private project only takes tasks from its own workflows; created_by is null and workflow_run_id the run, so a
-- retried run (same run id) completes with the task its earlier attempt created. The task.created event it causes
-- is one causation level deeper than the execution (an automation that creates tasks on task.created stops at 8).
create function public.create_workflow_task(run_id uuid, lease_token uuid) returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  run record;
  params jsonb;
  context jsonb;
  rendered jsonb := '{}'::jsonb;
  field text;
  problem text;
  target public.projects;
  existing public.tasks;
  created public.tasks;
begin
  perform 1 from public.workflow_executions e
  where e.id = (select r.execution_id from public.workflow_runs r where r.id = create_workflow_task.run_id) for update;
  select r.id, r.organization_id, r.input, e.causation_depth, w.project_id as workflow_project into run
  from public.workflow_runs r join public.workflow_executions e on e.id = r.execution_id
  join public.workflows w on w.id = e.workflow_id
  where r.id = create_workflow_task.run_id and r.lease_token = create_workflow_task.lease_token and r.status = 'running'
    and r.locked_until >= pg_catalog.now();
  if run.id is null then
    return 'lease_lost';
  end if;
  select t.* into existing from public.tasks t where t.workflow_run_id = run.id;
  if existing.id is not null then
    return public.complete_workflow_run(run.id, create_workflow_task.lease_token, jsonb_build_object('task_id', existing.id,
      'project_id', existing.project_id, 'title', existing.title, 'created', false));
  end if;
  params := coalesce(run.input -> 'node' -> 'config' -> 'params', '{}'::jsonb);
  context := coalesce(run.input -> 'context', '{}'::jsonb);
  problem := private.create_task_params_problem(params);
  if problem is null then
    begin
      for field in select k from jsonb_object_keys(params) k
                   where k in ('title', 'description', 'project_id', 'parent_task_id', 'assignee_id', 'due_date') loop
        rendered := rendered || jsonb_build_object(field, private.render_workflow_template(params ->> field, context));
      end loop;
    exception when sqlstate '22023' then
      problem := sqlerrm;
    end;
  end if;
  problem := coalesce(problem, case
    when coalesce(rendered ->> 'project_id', run.workflow_project::text) is null
      then 'a create_task task needs params.project_id unless its workflow belongs to a project'
    when rendered ? 'project_id' and not private.is_uuid_text(rendered -> 'project_id') then 'params.project_id must be a UUID'
    when rendered ? 'parent_task_id' and not private.is_uuid_text(rendered -> 'parent_task_id') then 'params.parent_task_id must be a UUID'
    when rendered ? 'assignee_id' and not private.is_uuid_text(rendered -> 'assignee_id') then 'params.assignee_id must be a UUID' end);
  if problem is null then
    select p.* into target from public.projects p
    where p.id = coalesce((rendered ->> 'project_id')::uuid, run.workflow_project) and p.organization_id = run.organization_id;
    problem := case
      when target.id is null then 'the project does not exist in this organization'
      when target.visibility = 'private' and target.id is distinct from run.workflow_project
        then 'a private project takes tasks only from its own workflows'
      when target.status = 'archived' then 'the project is archived' end;
  end if;
  if problem is null then
    perform pg_catalog.set_config('workflows.causation_depth', (run.causation_depth + 1)::text, true);
    begin
      insert into public.tasks (project_id, parent_task_id, title, description, priority, assignee_id, due_date,
                                estimated_minutes, tags, created_by, workflow_run_id)
      values (target.id, (rendered ->> 'parent_task_id')::uuid, rendered ->> 'title', rendered ->> 'description',
              coalesce(params ->> 'priority', 'medium'), (rendered ->> 'assignee_id')::uuid, (rendered ->> 'due_date')::timestamptz,
              (params ->> 'estimated_minutes')::integer,
              coalesce(array(select jsonb_array_elements_text(params -> 'tags')), '{}'::text[]), null, run.id)
      returning * into created;
    exception when integrity_constraint_violation or data_exception then
      problem := sqlerrm;
    end;
    perform pg_catalog.set_config('workflows.causation_depth', '', true);
  end if;
  if problem is not null then
    perform public.fail_workflow_run(run.id, create_workflow_task.lease_token,
      jsonb_build_object('code', 'invalid_params', 'message', problem), false);
    return 'failed';
  end if;
  return public.complete_workflow_run(run.id, create_workflow_task.lease_token, jsonb_build_object('task_id', created.id,
    'project_id', created.project_id, 'title', created.title, 'created', true));
end;
$$;
comment on function public.create_workflow_task(uuid, uuid) is 'workflow-worker (service_role): runs a create_task task (params rendered from the context) as the workflow and completes the run with {"task_id", "project_id", "title", "created"}; idempotent per run (a retry answers created false with the same task). failed (invalid_params: bad params, unknown or archived project, a private project not the workflow''s, a rule of tasks broken) or lease_lost.';

revoke execute on function public.create_workflow_task(uuid, uuid) from public, anon, authenticated;
grant execute on function public.create_workflow_task(uuid, uuid) to service_role;
