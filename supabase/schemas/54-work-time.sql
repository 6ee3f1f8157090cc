-- Work management (seed 004): time_entries (one running timer, no overlaps), task_executions (AI runs of a task), and
-- the derived totals rolled up the task tree: tasks.actual_minutes/actual_cost, projects.actual_hours/total_cost.

-- The exact minute total behind projects.actual_hours (hours are rounded to 2 places, minutes are exact, so the
-- incremental roll-up never drifts).
alter table public.projects add column actual_minutes integer not null default 0;
alter table public.projects add constraint projects_actual_minutes_non_negative check (actual_minutes >= 0);
comment on column public.projects.actual_minutes is 'Derived: whole minutes of the project''s live tasks'' time entries (the sum of its live root tasks'' actual_minutes); actual_hours is this over 60, rounded to 2 places. Kept by the database; not writable by clients.';

create table public.time_entries (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  project_id uuid not null,
  task_id uuid not null,
  user_id uuid default auth.uid(),
  start_time timestamptz not null default now(),
  end_time timestamptz,
  duration integer generated always as ((extract(epoch from (end_time - start_time)))::integer) stored,
  description text,
  is_manual boolean not null default false,
  is_billable boolean not null default false,
  hourly_rate numeric(10, 2),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint time_entries_pkey primary key (id),
  constraint time_entries_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint time_entries_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade,
  constraint time_entries_task_id_fkey foreign key (task_id) references public.tasks (id) on delete cascade,
  constraint time_entries_user_id_fkey foreign key (user_id) references auth.users (id) on delete set null,
  constraint time_entries_period_ordered check (end_time is null or end_time > start_time),
  constraint time_entries_running_has_user check (end_time is not null or user_id is not null),
  constraint time_entries_description_length check (description is null or char_length(description) <= 2000),
  constraint time_entries_hourly_rate_billable check (hourly_rate is null or (is_billable and hourly_rate >= 0)),
  constraint time_entries_no_overlap exclude using gist (
    user_id with =, tstzrange(start_time, coalesce(end_time, 'infinity'::timestamptz), '[)') with &&)
);
comment on table public.time_entries is 'Time a user tracked on a task (seed 004). A running timer has no end_time; at most one runs per user and a user''s entries never overlap (time_entries_no_overlap, 23P01). Readable by whoever reads the project; logged by project owners, editors and commenters (not viewers) and projects.admin holders, for themselves; someone else''s entry is changed only with projects.admin.';
comment on column public.time_entries.organization_id is 'The task''s organization (copied by trigger).';
comment on column public.time_entries.project_id is 'The task''s project (copied by trigger, for policies and the roll-up).';
comment on column public.time_entries.user_id is 'Who tracked the time (the caller by default). Null once their account is deleted: the entry and the organization''s totals stay.';
comment on column public.time_entries.end_time is 'Null while the timer runs; a running timer counts nothing towards the totals until it stops.';
comment on column public.time_entries.duration is 'Derived: seconds between start_time and end_time; null while running. Each finished entry adds round(duration / 60) minutes to its task.';
comment on column public.time_entries.is_manual is 'Entered by hand rather than by a timer (the seed''s isManual).';
comment on column public.time_entries.hourly_rate is 'Rate for billable time (only when is_billable, time_entries_hourly_rate_billable).';

create unique index time_entries_one_running_timer on public.time_entries (user_id) where end_time is null;
create index time_entries_task_id_idx on public.time_entries (task_id);
create index time_entries_project_id_idx on public.time_entries (project_id, start_time);
create index time_entries_organization_id_idx on public.time_entries (organization_id);
create index time_entries_user_id_idx on public.time_entries (user_id, start_time);

create table public.task_executions (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  project_id uuid not null,
  task_id uuid not null,
  execution_number integer not null,
  ai_agent_task_id uuid,
  started_by uuid default auth.uid(),
  prompt text not null,
  response text,
  context text,
  ai_provider text not null,
  model text not null,
  temperature numeric(3, 2),
  max_tokens integer,
  tokens_used jsonb,
  duration integer,
  cost numeric(14, 6),
  status text not null default 'running',
  error_message text,
  retry_count integer not null default 0,
  user_feedback text,
  rating integer,
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint task_executions_pkey primary key (id),
  constraint task_executions_task_number_key unique (task_id, execution_number),
  constraint task_executions_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint task_executions_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade,
  constraint task_executions_task_id_fkey foreign key (task_id) references public.tasks (id) on delete cascade,
  constraint task_executions_ai_agent_task_id_fkey foreign key (ai_agent_task_id) references public.ai_agent_tasks (id) on delete set null,
  constraint task_executions_started_by_fkey foreign key (started_by) references auth.users (id) on delete set null,
  constraint task_executions_prompt_length check (char_length(prompt) between 1 and 200000),
  constraint task_executions_ai_provider_known check (ai_provider in ('openai', 'anthropic', 'google', 'local')),
  constraint task_executions_model_length check (char_length(model) between 1 and 200),
  constraint task_executions_temperature_range check (temperature is null or temperature between 0 and 2),
  constraint task_executions_max_tokens_positive check (max_tokens is null or max_tokens > 0),
  constraint task_executions_tokens_used_shape check (private.is_valid_token_usage(tokens_used)),
  constraint task_executions_duration_non_negative check (duration is null or duration >= 0),
  constraint task_executions_cost_non_negative check (cost is null or cost >= 0),
  constraint task_executions_status_known check (status in ('running', 'success', 'failed', 'cancelled')),
  constraint task_executions_retry_count_range check (retry_count between 0 and 100),
  constraint task_executions_rating_range check (rating is null or rating between 1 and 5),
  constraint task_executions_completed_when_final check ((completed_at is not null) = (status <> 'running')),
  constraint task_executions_error_when_failed check (status = 'failed' or error_message is null)
);
comment on table public.task_executions is 'AI runs of a task (seed 004): prompt, response, model, tokens, duration, cost, outcome, the user''s feedback. Readable by whoever reads the project; written by its owners and editors and projects.admin holders. Each run''s cost adds to its task''s actual_cost and up the tree.';
comment on column public.task_executions.execution_number is 'Run number within the task (1, 2, ...), assigned by trigger under a per-task lock.';
comment on column public.task_executions.ai_agent_task_id is 'The workflow engine''s ai_agent_tasks row when the engine ran it (same organization); null for runs recorded by an app.';
comment on column public.task_executions.started_by is 'Who started the run (the caller by default); null once their account is deleted.';
comment on column public.task_executions.tokens_used is 'Token usage: an object of non-negative numbers keyed prompt_tokens, completion_tokens, total_tokens, cached_tokens.';
comment on column public.task_executions.duration is 'Run time in milliseconds.';
comment on column public.task_executions.cost is 'Cost in USD; counts towards the task''s actual_cost whatever the status (a failed call is paid for too).';
comment on column public.task_executions.completed_at is 'Set when the status leaves running (filled in by trigger when omitted), null while running.';

create index task_executions_task_id_idx on public.task_executions (task_id, status);
create index task_executions_project_id_idx on public.task_executions (project_id);
create index task_executions_organization_id_idx on public.task_executions (organization_id);
create index task_executions_ai_agent_task_id_idx on public.task_executions (ai_agent_task_id);
create index task_executions_started_by_idx on public.task_executions (started_by);

-- Who may log time on a project: the same people as may comment on it (private.can_comment_on_project, 52): its
-- owners, editors and commenters and projects.admin holders; viewers only read.
create function private.is_project_admin(project uuid) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return coalesce(private.has_permission((select pr.organization_id from public.projects pr where pr.id = is_project_admin.project),
                                         'projects.admin'), false);
end;
$$;
comment on function private.is_project_admin(uuid) is 'Whether the caller holds projects.admin in the project''s organization.';

grant execute on function private.is_project_admin(uuid) to authenticated, service_role;

-- The roll-up: adds a change of minutes and cost to a task and, while the task counts towards its parent (it is not
-- soft-deleted), to each ancestor and finally to the project. One UPDATE per ancestor, each `x = x + delta`, so two
-- transactions changing sibling subtasks queue on the shared parent row and neither loses its update (READ
-- COMMITTED re-reads the row after the lock); locks are taken leaf to root, so paths never lock in opposite orders.
create function private.roll_up_task_totals(task uuid, minutes integer, cost numeric) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  current_task uuid := task;
  parent uuid;
  project uuid;
  live boolean;
begin
  if coalesce(minutes, 0) = 0 and coalesce(cost, 0) = 0 then
    return;
  end if;
  loop
    update public.tasks t
    set actual_minutes = t.actual_minutes + coalesce(minutes, 0), actual_cost = t.actual_cost + coalesce(cost, 0)
    where t.id = current_task
    returning t.parent_task_id, t.project_id, t.deleted_at is null into parent, project, live;
    if not found or not live then
      return;
    end if;
    exit when parent is null;
    current_task := parent;
  end loop;
  update public.projects p
  set actual_minutes = p.actual_minutes + coalesce(minutes, 0),
      actual_hours = round((p.actual_minutes + coalesce(minutes, 0)) / 60.0, 2),
      total_cost = p.total_cost + coalesce(cost, 0)
  where p.id = project;
end;
$$;
comment on function private.roll_up_task_totals(uuid, integer, numeric) is 'Adds minutes and cost to a task, its live ancestors and its project (a soft-deleted task keeps its own total but stops counting above it).';

-- tasks: a task counts towards its parent while it is not soft-deleted. Deleting, restoring, re-parenting or removing
-- a task moves its total (as it stood at that change) out of or into the ancestors above it; the subtasks a soft
-- delete reaches are handled by their own rows' triggers, in whatever order they fire.
create function private.roll_up_task_change() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  was_counted boolean := tg_op <> 'INSERT' and old.deleted_at is null;
  is_counted boolean := tg_op <> 'DELETE' and new.deleted_at is null;
  moved boolean := tg_op = 'UPDATE' and old.parent_task_id is distinct from new.parent_task_id;
begin
  if was_counted and (not is_counted or moved) then
    if old.parent_task_id is null then
      update public.projects p
      set actual_minutes = p.actual_minutes - old.actual_minutes,
          actual_hours = round((p.actual_minutes - old.actual_minutes) / 60.0, 2),
          total_cost = p.total_cost - old.actual_cost
      where p.id = old.project_id;
    else
      perform private.roll_up_task_totals(old.parent_task_id, -old.actual_minutes, -old.actual_cost);
    end if;
  end if;
  if is_counted and (not was_counted or moved) then
    if new.parent_task_id is null then
      update public.projects p
      set actual_minutes = p.actual_minutes + new.actual_minutes,
          actual_hours = round((p.actual_minutes + new.actual_minutes) / 60.0, 2),
          total_cost = p.total_cost + new.actual_cost
      where p.id = new.project_id;
    else
      perform private.roll_up_task_totals(new.parent_task_id, new.actual_minutes, new.actual_cost);
    end if;
  end if;
  return null;
end;
$$;

create trigger tasks_roll_up_totals after update of deleted_at, parent_task_id or delete on public.tasks
  for each row execute function private.roll_up_task_change();

-- time_entries: organization and project from the task; a user has one running timer (checked here for a clear
-- message, enforced by the unique index under concurrency); when an account is deleted its running timer stops.
create function private.check_time_entry() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  select t.organization_id, t.project_id into new.organization_id, new.project_id from public.tasks t where t.id = new.task_id;
  if new.project_id is null then
    raise exception 'task % does not exist', new.task_id using errcode = '23503';
  end if;
  if tg_op = 'UPDATE' and new.user_id is null and old.user_id is not null and new.end_time is null then
    new.end_time := greatest(pg_catalog.now(), new.start_time + interval '1 second');
  end if;
  if new.end_time is null and new.user_id is not null
     and (tg_op = 'INSERT' or old.end_time is not null or new.user_id is distinct from old.user_id)
     and exists (select 1 from public.time_entries e where e.user_id = new.user_id and e.end_time is null and e.id <> new.id) then
    raise exception 'a timer is already running for this user' using errcode = '23505',
      constraint = 'time_entries_one_running_timer', hint = 'Stop the running timer (set its end_time) first.';
  end if;
  return new;
end;
$$;

-- The entry's user is a member of the organization (an AFTER trigger, so that row-level security answers first).
create function private.check_time_entry_user() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if not exists (select 1 from public.organization_members m where m.organization_id = new.organization_id and m.user_id = new.user_id) then
    raise exception 'time is tracked only for members of the task''s organization' using errcode = '23514',
      constraint = 'time_entries_user_is_member';
  end if;
  return null;
end;
$$;

-- Each finished entry adds round(duration / 60) whole minutes to its task and up the tree.
create function private.roll_up_time_entry() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  old_minutes integer := case when tg_op <> 'INSERT' then coalesce(round(old.duration / 60.0)::integer, 0) else 0 end;
  new_minutes integer := case when tg_op <> 'DELETE' then coalesce(round(new.duration / 60.0)::integer, 0) else 0 end;
begin
  if tg_op = 'UPDATE' and old.task_id = new.task_id then
    perform private.roll_up_task_totals(new.task_id, new_minutes - old_minutes, 0);
  else
    if tg_op <> 'INSERT' then
      perform private.roll_up_task_totals(old.task_id, -old_minutes, 0);
    end if;
    if tg_op <> 'DELETE' then
      perform private.roll_up_task_totals(new.task_id, new_minutes, 0);
    end if;
  end if;
  return null;
end;
$$;

create trigger time_entries_check before insert or update on public.time_entries
  for each row execute function private.check_time_entry();
create trigger time_entries_check_user after insert or update of user_id on public.time_entries
  for each row when (new.user_id is not null) execute function private.check_time_entry_user();
create trigger time_entries_set_updated_at before update on public.time_entries
  for each row execute function private.set_updated_at();
create trigger time_entries_roll_up after insert or delete on public.time_entries
  for each row execute function private.roll_up_time_entry();
create trigger time_entries_roll_up_change after update on public.time_entries
  for each row when (old.task_id is distinct from new.task_id or old.duration is distinct from new.duration)
  execute function private.roll_up_time_entry();
create trigger time_entries_audit after insert or update or delete on public.time_entries
  for each row execute function private.audit_row_change();

-- task_executions: organization and project from the task, the number under a per-task lock, an engine link only
-- within the organization, completed_at stamped by the final status.
create function private.check_task_execution() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  select t.organization_id, t.project_id into new.organization_id, new.project_id from public.tasks t where t.id = new.task_id;
  if new.project_id is null then
    raise exception 'task % does not exist', new.task_id using errcode = '23503';
  end if;
  if tg_op = 'UPDATE' and new.task_id <> old.task_id then
    raise exception 'an execution cannot move to another task' using errcode = '23514',
      constraint = 'task_executions_task_id_immutable';
  end if;
  if tg_op = 'INSERT' then
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('task_executions:' || new.task_id::text, 0));
    select coalesce(max(e.execution_number), 0) + 1 into new.execution_number
    from public.task_executions e where e.task_id = new.task_id;
  elsif new.execution_number <> old.execution_number then
    new.execution_number := old.execution_number;
  end if;
  if new.ai_agent_task_id is not null and (tg_op = 'INSERT' or new.ai_agent_task_id is distinct from old.ai_agent_task_id)
     and not exists (select 1 from public.ai_agent_tasks a where a.id = new.ai_agent_task_id and a.organization_id = new.organization_id) then
    raise exception 'the AI agent task must belong to the task''s organization' using errcode = '23514',
      constraint = 'task_executions_ai_agent_task_same_organization';
  end if;
  if new.status <> 'running' and new.completed_at is null then
    new.completed_at := pg_catalog.now();
  elsif new.status = 'running' then
    new.completed_at := null;
  end if;
  return new;
end;
$$;

create function private.roll_up_task_execution() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform private.roll_up_task_totals(coalesce(new.task_id, old.task_id), 0,
    case when tg_op <> 'DELETE' then coalesce(new.cost, 0) else 0 end
    - case when tg_op <> 'INSERT' then coalesce(old.cost, 0) else 0 end);
  return null;
end;
$$;

create trigger task_executions_check before insert or update on public.task_executions
  for each row execute function private.check_task_execution();
create trigger task_executions_set_updated_at before update on public.task_executions
  for each row execute function private.set_updated_at();
create trigger task_executions_roll_up after insert or delete on public.task_executions
  for each row execute function private.roll_up_task_execution();
create trigger task_executions_roll_up_change after update on public.task_executions
  for each row when (old.cost is distinct from new.cost) execute function private.roll_up_task_execution();
create trigger task_executions_audit after insert or update or delete on public.task_executions
  for each row execute function private.audit_row_change();

alter table public.time_entries enable row level security;
alter table public.task_executions enable row level security;

-- time_entries_select: whoever reads the project sees its time.
create policy time_entries_select on public.time_entries for select to authenticated
  using (private.can_read_project(project_id));
-- time_entries_insert: project owners, editors, commenters and projects.admin holders log their own time; only
-- projects.admin holders log time for someone else.
create policy time_entries_insert on public.time_entries for insert to authenticated
  with check (exists (select 1 from public.tasks t where t.id = task_id and private.can_comment_on_project(t.project_id)
                      and (user_id = (select auth.uid()) or private.is_project_admin(t.project_id))));
-- time_entries_update: one's own entries (while one may log time on the project), anyone's with projects.admin.
create policy time_entries_update on public.time_entries for update to authenticated
  using ((user_id = (select auth.uid()) and private.can_comment_on_project(project_id)) or private.is_project_admin(project_id))
  with check (exists (select 1 from public.tasks t where t.id = task_id
                      and ((user_id = (select auth.uid()) and private.can_comment_on_project(t.project_id)) or private.is_project_admin(t.project_id))));
-- time_entries_delete: as update.
create policy time_entries_delete on public.time_entries for delete to authenticated
  using ((user_id = (select auth.uid()) and private.can_comment_on_project(project_id)) or private.is_project_admin(project_id));

-- task_executions follow the task: read by the project's readers, written by its owners, editors and projects.admin.
create policy task_executions_select on public.task_executions for select to authenticated
  using (private.can_read_project(project_id));
create policy task_executions_insert on public.task_executions for insert to authenticated
  with check (exists (select 1 from public.tasks t where t.id = task_id and private.can_edit_project(t.project_id)));
create policy task_executions_update on public.task_executions for update to authenticated
  using (private.can_edit_project(project_id))
  with check (private.can_edit_project(project_id));
create policy task_executions_delete on public.task_executions for delete to authenticated
  using (private.can_edit_project(project_id));

grant select, delete on public.time_entries to authenticated, service_role;
grant insert (task_id, user_id, start_time, end_time, description, is_manual, is_billable, hourly_rate)
  on public.time_entries to authenticated, service_role;
grant update (task_id, user_id, start_time, end_time, description, is_manual, is_billable, hourly_rate)
  on public.time_entries to authenticated, service_role;
grant select, delete on public.task_executions to authenticated, service_role;
grant insert (task_id, ai_agent_task_id, prompt, response, context, ai_provider, model, temperature, max_tokens,
              tokens_used, duration, cost, status, error_message, retry_count, user_feedback, rating, completed_at)
  on public.task_executions to authenticated, service_role;
grant update (response, context, tokens_used, duration, cost, status, error_message, retry_count, user_feedback,
              rating, completed_at)
  on public.task_executions to authenticated, service_role;

-- A user's time and AI runs for export_my_data(): their time entries and the executions they started. Erasure
-- (deleting the account) sets user_id / started_by to null and stops a running timer: the organization keeps
-- every entry and run, so its actual_minutes, actual_hours and costs do not change.
create function private.work_time_personal_data(uid uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'time_entries', coalesce((select jsonb_agg(jsonb_build_object('id', e.id, 'task_id', e.task_id, 'project_id', e.project_id,
        'start_time', e.start_time, 'end_time', e.end_time, 'duration', e.duration, 'description', e.description,
        'is_manual', e.is_manual, 'is_billable', e.is_billable, 'hourly_rate', e.hourly_rate) order by e.start_time, e.id)
      from public.time_entries e where e.user_id = uid), '[]'::jsonb),
    'task_executions', coalesce((select jsonb_agg(jsonb_build_object('id', x.id, 'task_id', x.task_id,
        'execution_number', x.execution_number, 'ai_provider', x.ai_provider, 'model', x.model, 'prompt', x.prompt,
        'status', x.status, 'cost', x.cost, 'user_feedback', x.user_feedback, 'rating', x.rating,
        'created_at', x.created_at) order by x.created_at, x.id)
      from public.task_executions x where x.started_by = uid), '[]'::jsonb))
$$;
comment on function private.work_time_personal_data(uuid) is 'A user''s time entries and the task executions they started, for their export.';
