-- Work management (seed 004): tasks (subtasks, status transitions, gapped ordering, soft delete) and
-- task_dependencies (blocked-by, cycle-safe under concurrent inserts). Both follow their project's visibility.

create function private.is_valid_token_usage(usage jsonb) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select usage is null
      or (jsonb_typeof(usage) = 'object'
          and not exists (select 1 from jsonb_each(usage) e
                          where e.key not in ('prompt_tokens', 'completion_tokens', 'total_tokens', 'cached_tokens')
                             or jsonb_typeof(e.value) <> 'number' or (e.value #>> '{}')::numeric < 0))
$$;
comment on function private.is_valid_token_usage(jsonb) is 'True when token_usage is null or an object of non-negative numbers keyed prompt_tokens, completion_tokens, total_tokens, cached_tokens.';
grant execute on function private.is_valid_token_usage(jsonb) to authenticated, service_role;

create table public.tasks (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  project_id uuid not null,
  parent_task_id uuid,
  title text not null,
  description text,
  generated_prompt text,
  status text not null default 'todo',
  priority text not null default 'medium',
  execution_type text not null default 'serial',
  ai_provider text,
  mcp_config jsonb,
  position numeric not null,
  assignee_id uuid,
  estimated_minutes integer,
  actual_minutes integer not null default 0,
  token_usage jsonb,
  actual_cost numeric(14, 6) not null default 0,
  due_date timestamptz,
  started_at timestamptz,
  completed_at timestamptz,
  blocked_reason text,
  tags text[] not null default '{}',
  created_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  constraint tasks_pkey primary key (id),
  constraint tasks_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint tasks_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade,
  constraint tasks_parent_task_id_fkey foreign key (parent_task_id) references public.tasks (id) on delete cascade,
  constraint tasks_assignee_id_fkey foreign key (assignee_id) references auth.users (id) on delete set null,
  constraint tasks_created_by_fkey foreign key (created_by) references auth.users (id) on delete set null,
  constraint tasks_title_length check (char_length(btrim(title)) between 1 and 500),
  constraint tasks_description_length check (description is null or char_length(description) <= 50000),
  constraint tasks_generated_prompt_length check (generated_prompt is null or char_length(generated_prompt) <= 50000),
  constraint tasks_status_known check (status in ('todo', 'in_progress', 'in_review', 'done', 'blocked')),
  constraint tasks_priority_known check (priority in ('low', 'medium', 'high', 'urgent')),
  constraint tasks_execution_type_known check (execution_type in ('serial', 'parallel')),
  constraint tasks_ai_provider_known check (ai_provider is null or ai_provider in ('openai', 'anthropic', 'google', 'local')),
  constraint tasks_mcp_config_object check (mcp_config is null or jsonb_typeof(mcp_config) = 'object'),
  constraint tasks_blocked_reason_required check (status <> 'blocked' or coalesce(btrim(blocked_reason), '') <> ''),
  constraint tasks_not_own_parent check (parent_task_id is distinct from id),
  constraint tasks_estimated_minutes_non_negative check (estimated_minutes is null or estimated_minutes >= 0),
  constraint tasks_actual_minutes_non_negative check (actual_minutes >= 0),
  constraint tasks_actual_cost_non_negative check (actual_cost >= 0),
  constraint tasks_token_usage_shape check (private.is_valid_token_usage(token_usage)),
  constraint tasks_tags_limit check (cardinality(tags) <= 50 and array_position(tags, null) is null)
);
comment on table public.tasks is 'Tasks of a project (seed 004, the story level), with subtasks through parent_task_id (same project, no cycles). Readable by whoever reads the project; written by its owners and editors and projects.admin holders.';
comment on column public.tasks.organization_id is 'The project''s organization (copied by trigger).';
comment on column public.tasks.position is 'Order among the siblings (the seed''s order): gapped numbers (1024 apart when appended); a reorder writes one row with a value between its neighbours, never renumbers.';
comment on column public.tasks.started_at is 'Set by the first move to in_progress.';
comment on column public.tasks.completed_at is 'Set by the move to done; cleared when the task leaves done.';
comment on column public.tasks.blocked_reason is 'Required while status is blocked (tasks_blocked_reason_required).';
comment on column public.tasks.actual_minutes is 'Derived from time entries, kept by the database; not writable by clients.';
comment on column public.tasks.actual_cost is 'Derived from task executions, kept by the database; not writable by clients.';
comment on column public.tasks.deleted_at is 'Soft delete: deleting a task hides its subtasks with it (same timestamp); restoring it restores them.';

create index tasks_project_position_idx on public.tasks (project_id, parent_task_id, position) where deleted_at is null;
create index tasks_organization_id_idx on public.tasks (organization_id);
create index tasks_parent_task_id_idx on public.tasks (parent_task_id);
create index tasks_assignee_id_idx on public.tasks (assignee_id, status) where deleted_at is null;
create index tasks_created_by_idx on public.tasks (created_by);
create index tasks_due_date_idx on public.tasks (due_date) where deleted_at is null and due_date is not null;
create index tasks_tags_idx on public.tasks using gin (tags);

create table public.task_dependencies (
  task_id uuid not null,
  blocked_by_task_id uuid not null,
  organization_id uuid not null,
  created_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  constraint task_dependencies_pkey primary key (task_id, blocked_by_task_id),
  constraint task_dependencies_task_id_fkey foreign key (task_id) references public.tasks (id) on delete cascade,
  constraint task_dependencies_blocked_by_task_id_fkey foreign key (blocked_by_task_id) references public.tasks (id) on delete cascade,
  constraint task_dependencies_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint task_dependencies_created_by_fkey foreign key (created_by) references auth.users (id) on delete set null,
  constraint task_dependencies_not_self check (task_id <> blocked_by_task_id)
);
comment on table public.task_dependencies is 'task_id is blocked by blocked_by_task_id (the seed''s blockedByTaskId, generalised to many). Both tasks in one organization, no cycles; a task cannot start while a blocker is not done.';

create index task_dependencies_blocked_by_task_id_idx on public.task_dependencies (blocked_by_task_id);
create index task_dependencies_organization_id_idx on public.task_dependencies (organization_id);
create index task_dependencies_created_by_idx on public.task_dependencies (created_by);

-- tasks: organization from the project; parent in the same project and not a descendant (checked under a per-project
-- advisory lock, so two concurrent re-parentings cannot close a cycle); assignee a project member; position appended
-- when omitted; the status transitions stamp started_at/completed_at; no start while a blocker is not done.
create function private.check_task() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  select p.organization_id into new.organization_id from public.projects p where p.id = new.project_id;
  if tg_op = 'UPDATE' and new.project_id <> old.project_id then
    raise exception 'a task cannot move to another project' using errcode = '23514', constraint = 'tasks_project_id_immutable';
  end if;
  if new.parent_task_id is not null and (tg_op = 'INSERT' or new.parent_task_id is distinct from old.parent_task_id) then
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('tasks.parent:' || new.project_id::text, 0));
    if not exists (select 1 from public.tasks t where t.id = new.parent_task_id and t.project_id = new.project_id) then
      raise exception 'the parent task must belong to the same project' using errcode = '23514',
        constraint = 'tasks_parent_same_project';
    end if;
    if tg_op = 'UPDATE' and exists (
         with recursive ancestors (id) as (
           select new.parent_task_id
           union
           select t.parent_task_id from public.tasks t join ancestors a on a.id = t.id where t.parent_task_id is not null)
         select 1 from ancestors where id = new.id) then
      raise exception 'task % cannot become a subtask of its own subtask', new.id using errcode = '23514',
        constraint = 'tasks_parent_no_cycle';
    end if;
  end if;
  if new.assignee_id is not null and (tg_op = 'INSERT' or new.assignee_id is distinct from old.assignee_id)
     and not exists (select 1 from public.project_members pm where pm.project_id = new.project_id and pm.user_id = new.assignee_id) then
    raise exception 'the assignee must be a member of the project' using errcode = '23514',
      constraint = 'tasks_assignee_is_project_member';
  end if;
  if new.position is null then
    select coalesce(max(t.position), 0) + 1024 into new.position from public.tasks t
    where t.project_id = new.project_id and t.parent_task_id is not distinct from new.parent_task_id;
  end if;
  if tg_op = 'INSERT' or new.status is distinct from old.status then
    if new.status = 'in_progress' and tg_op = 'UPDATE' and exists (
         select 1 from public.task_dependencies d join public.tasks b on b.id = d.blocked_by_task_id
         where d.task_id = new.id and b.status <> 'done' and b.deleted_at is null) then
      raise exception 'task % is blocked by a task that is not done', new.id using errcode = '55000',
        hint = 'Finish the blocking tasks or remove the dependency first.';
    end if;
    if new.status = 'in_progress' and new.started_at is null then
      new.started_at := pg_catalog.now();
    end if;
    if new.status = 'done' then
      new.completed_at := coalesce(new.completed_at, pg_catalog.now());
    else
      new.completed_at := null;
    end if;
    if new.status <> 'blocked' then
      new.blocked_reason := null;
    end if;
  end if;
  return new;
end;
$$;

-- Soft delete reaches the subtasks (stamped with the same time); restoring a task restores what went with it.
create function private.cascade_task_soft_delete() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.deleted_at is not null then
    update public.tasks set deleted_at = new.deleted_at where parent_task_id = new.id and deleted_at is null;
  else
    update public.tasks set deleted_at = null where parent_task_id = new.id and deleted_at = old.deleted_at;
  end if;
  return null;
end;
$$;

create trigger tasks_check before insert or update of project_id, parent_task_id, assignee_id, position, status on public.tasks
  for each row execute function private.check_task();
create trigger tasks_set_updated_at before update on public.tasks
  for each row execute function private.set_updated_at();
create trigger tasks_cascade_soft_delete after update of deleted_at on public.tasks
  for each row when (old.deleted_at is distinct from new.deleted_at) execute function private.cascade_task_soft_delete();
create trigger tasks_audit after insert or update or delete on public.tasks
  for each row execute function private.audit_row_change();

-- task_dependencies: same organization, no cycle. The recursive check runs under a per-organization advisory lock
-- taken before it reads (READ COMMITTED: the check's statement sees what an earlier holder committed), so of two
-- transactions that would each close half of a cycle the second waits and then sees the first's edge.
create function private.check_task_dependency() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  task_org uuid := (select t.organization_id from public.tasks t where t.id = new.task_id);
  blocker_org uuid := (select t.organization_id from public.tasks t where t.id = new.blocked_by_task_id);
begin
  if task_org is distinct from blocker_org then
    raise exception 'a task can only be blocked by a task of the same organization' using errcode = '23514',
      constraint = 'task_dependencies_same_organization';
  end if;
  new.organization_id := task_org;
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('task_dependencies:' || task_org::text, 0));
  if exists (
       with recursive blockers (id) as (
         select new.blocked_by_task_id
         union
         select d.blocked_by_task_id from public.task_dependencies d join blockers b on b.id = d.task_id)
       select 1 from blockers where id = new.task_id) then
    raise exception 'task % already blocks task %, directly or through others', new.task_id, new.blocked_by_task_id
      using errcode = '23514', constraint = 'task_dependencies_no_cycle';
  end if;
  return new;
end;
$$;

create trigger task_dependencies_check before insert or update on public.task_dependencies
  for each row execute function private.check_task_dependency();
create trigger task_dependencies_audit after insert or update or delete on public.task_dependencies
  for each row execute function private.audit_row_change();

alter table public.tasks enable row level security;
alter table public.task_dependencies enable row level security;

-- tasks follow their project: readable by its readers, written by its owners, editors and projects.admin holders.
create policy tasks_select on public.tasks for select to authenticated
  using (project_id in (select private.readable_project_ids()));
create policy tasks_insert on public.tasks for insert to authenticated
  with check (private.can_edit_project(project_id));
create policy tasks_update on public.tasks for update to authenticated
  using (private.can_edit_project(project_id))
  with check (private.can_edit_project(project_id));
create policy tasks_delete on public.tasks for delete to authenticated
  using (private.can_edit_project(project_id));

-- task_dependencies follow the blocked task's project.
create policy task_dependencies_select on public.task_dependencies for select to authenticated
  using (exists (select 1 from public.tasks t where t.id = task_id));
create policy task_dependencies_insert on public.task_dependencies for insert to authenticated
  with check (exists (select 1 from public.tasks t where t.id = task_id and private.can_edit_project(t.project_id))
              and exists (select 1 from public.tasks t where t.id = blocked_by_task_id));
create policy task_dependencies_delete on public.task_dependencies for delete to authenticated
  using (exists (select 1 from public.tasks t where t.id = task_id and private.can_edit_project(t.project_id)));

grant select, delete on public.tasks to authenticated, service_role;
grant insert (project_id, parent_task_id, title, description, generated_prompt, status, priority, execution_type,
              ai_provider, mcp_config, position, assignee_id, estimated_minutes, token_usage, due_date, blocked_reason, tags)
  on public.tasks to authenticated, service_role;
grant update (parent_task_id, title, description, generated_prompt, status, priority, execution_type, ai_provider,
              mcp_config, position, assignee_id, estimated_minutes, token_usage, due_date, blocked_reason, tags, deleted_at)
  on public.tasks to authenticated, service_role;
grant select, delete on public.task_dependencies to authenticated, service_role;
grant insert (task_id, blocked_by_task_id) on public.task_dependencies to authenticated, service_role;

-- A user's work-management data for export_my_data() (36-privacy-health-export-erasure.sql): the projects they own,
-- their project memberships and favourites, and the tasks assigned to them or created by them. Erasure needs no
-- function of its own: memberships and favourites go with the account (cascade), owner, assignee and creator
-- become null, and the organization keeps its projects and tasks.
create function private.work_personal_data(uid uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'projects_owned', coalesce((select jsonb_agg(jsonb_build_object('id', p.id, 'organization_id', p.organization_id,
        'title', p.title, 'status', p.status, 'visibility', p.visibility, 'created_at', p.created_at) order by p.created_at, p.id)
      from public.projects p where p.owner_id = uid), '[]'::jsonb),
    'project_memberships', coalesce((select jsonb_agg(jsonb_build_object('project_id', m.project_id,
        'organization_id', m.organization_id, 'role', m.role, 'created_at', m.created_at) order by m.created_at, m.project_id)
      from public.project_members m where m.user_id = uid), '[]'::jsonb),
    'project_favorites', coalesce((select jsonb_agg(jsonb_build_object('project_id', f.project_id, 'created_at', f.created_at)
        order by f.created_at, f.project_id)
      from public.project_favorites f where f.user_id = uid), '[]'::jsonb),
    'tasks', coalesce((select jsonb_agg(jsonb_build_object('id', t.id, 'project_id', t.project_id, 'title', t.title,
        'status', t.status, 'assigned', t.assignee_id = uid, 'created', t.created_by = uid, 'due_date', t.due_date,
        'deleted_at', t.deleted_at) order by t.created_at, t.id)
      from public.tasks t where t.assignee_id = uid or t.created_by = uid), '[]'::jsonb))
$$;
comment on function private.work_personal_data(uuid) is 'A user''s work-management data for their export: projects owned, memberships, favourites, tasks assigned to or created by them.';
