-- Work management (seed 004): project templates (project_structure in the seed's ProjectStructure shape), the
-- template_tasks derived from it, projects.template_id, and create_project_from_template().

-- The seed's ProjectStructure task: { title, description?, priority?, estimatedMinutes?, skills?: string[] }, and, our
-- extension for subtasks, subtasks?: the same shape (at most 5 levels deep).
create function private.is_valid_template_task(task jsonb, depth integer) returns boolean
language plpgsql immutable parallel safe
set search_path = ''
as $$
begin
  if jsonb_typeof(task) <> 'object' or depth > 5
     or exists (select 1 from jsonb_object_keys(task) k where k not in ('title', 'description', 'priority', 'estimatedMinutes', 'skills', 'subtasks'))
     or jsonb_typeof(task -> 'title') is distinct from 'string' or char_length(btrim(task ->> 'title')) not between 1 and 500
     or (task ? 'description' and jsonb_typeof(task -> 'description') not in ('string', 'null'))
     or (task ? 'priority' and (jsonb_typeof(task -> 'priority') <> 'string' or task ->> 'priority' not in ('low', 'medium', 'high', 'urgent')))
     or (task ? 'estimatedMinutes' and (jsonb_typeof(task -> 'estimatedMinutes') <> 'number'
                                        or (task ->> 'estimatedMinutes')::numeric < 0
                                        or (task ->> 'estimatedMinutes')::numeric <> trunc((task ->> 'estimatedMinutes')::numeric)
                                        or (task ->> 'estimatedMinutes')::numeric > 1000000))
     or (task ? 'skills' and not private.is_string_array(task -> 'skills'))
     or (task ? 'subtasks' and jsonb_typeof(task -> 'subtasks') <> 'array') then
    return false;
  end if;
  return not exists (select 1 from jsonb_array_elements(coalesce(task -> 'subtasks', '[]'::jsonb)) s
                     where not private.is_valid_template_task(s, depth + 1));
end;
$$;
comment on function private.is_valid_template_task(jsonb, integer) is 'True when the value is a ProjectStructure task (title, description, priority, estimatedMinutes, skills, subtasks) nested at most 5 levels.';

create function private.is_string_array(value jsonb) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select jsonb_typeof(value) = 'array' and jsonb_array_length(value) <= 100
     and not exists (select 1 from jsonb_array_elements(value) e where jsonb_typeof(e) <> 'string' or char_length(e #>> '{}') not between 1 and 200)
$$;
comment on function private.is_string_array(jsonb) is 'True when the value is a JSON array of at most 100 non-empty strings of up to 200 characters.';

-- The seed's ProjectStructure: { tasks: Task[], skills?: string[], automations?: { name, trigger, actions }[] }.
create function private.is_valid_project_structure(structure jsonb) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select jsonb_typeof(structure) = 'object'
     and not exists (select 1 from jsonb_object_keys(structure) k where k not in ('tasks', 'skills', 'automations'))
     and jsonb_typeof(structure -> 'tasks') = 'array'
     and jsonb_array_length(structure -> 'tasks') between 1 and 500
     and not exists (select 1 from jsonb_array_elements(structure -> 'tasks') t where not private.is_valid_template_task(t, 1))
     and (not structure ? 'skills' or private.is_string_array(structure -> 'skills'))
     and (not structure ? 'automations'
          or (jsonb_typeof(structure -> 'automations') = 'array'
              and not exists (select 1 from jsonb_array_elements(structure -> 'automations') a
                              where jsonb_typeof(a) <> 'object' or jsonb_typeof(a -> 'name') is distinct from 'string'
                                 or jsonb_typeof(a -> 'trigger') is distinct from 'object'
                                 or jsonb_typeof(a -> 'actions') is distinct from 'array')))
$$;
comment on function private.is_valid_project_structure(jsonb) is 'True when the value has seed 004''s ProjectStructure shape: 1-500 tasks (with optional subtasks), optional skill names, optional automations {name, trigger object, actions array}.';

grant execute on function private.is_valid_template_task(jsonb, integer), private.is_string_array(jsonb),
  private.is_valid_project_structure(jsonb) to authenticated, service_role;

create table public.templates (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  author_id uuid default auth.uid(),
  name text not null,
  description text not null,
  category text not null,
  cover_image_url public.http_url,
  tags text[] not null default '{}',
  project_structure jsonb not null,
  ai_provider_recommendations jsonb,
  is_public boolean not null default false,
  is_official boolean not null default false,
  usage_count integer not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint templates_pkey primary key (id),
  constraint templates_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint templates_author_id_fkey foreign key (author_id) references auth.users (id) on delete set null,
  constraint templates_name_length check (char_length(btrim(name)) between 1 and 200),
  constraint templates_description_length check (char_length(btrim(description)) between 1 and 5000),
  constraint templates_category_format check (category ~ '^[a-z0-9][a-z0-9_-]{0,49}$'),
  constraint templates_tags_limit check (cardinality(tags) <= 50 and array_position(tags, null) is null),
  constraint templates_project_structure_shape check (private.is_valid_project_structure(project_structure)),
  constraint templates_ai_provider_recommendations_object check (ai_provider_recommendations is null or jsonb_typeof(ai_provider_recommendations) = 'object'),
  constraint templates_official_is_public check (not is_official or is_public),
  constraint templates_usage_count_non_negative check (usage_count >= 0)
);
comment on table public.templates is 'Project templates (seed 004) of an organization. Readable by its projects.read holders and, when is_public, by every signed-in user; written by projects.manage holders; is_official only by platform administrators. create_project_from_template() turns one into a project.';
comment on column public.templates.author_id is 'Who wrote the template (the caller by default); null once their account is deleted.';
comment on column public.templates.cover_image_url is 'The seed''s coverImage (named like projects.cover_image_url).';
comment on column public.templates.project_structure is 'Seed 004''s ProjectStructure: {tasks: [{title, description?, priority?, estimatedMinutes?, skills?, subtasks?}], skills?, automations?}; subtasks are our extension. Checked by templates_project_structure_shape.';
comment on column public.templates.ai_provider_recommendations is 'AI settings per provider (an object).';
comment on column public.templates.is_official is 'Marked by a platform administrator; an official template is public.';
comment on column public.templates.usage_count is 'Derived: projects created from the template, counted by create_project_from_template().';

create index templates_organization_id_idx on public.templates (organization_id, category);
create index templates_public_idx on public.templates (category, usage_count desc) where is_public;
create index templates_author_id_idx on public.templates (author_id);
create index templates_tags_idx on public.templates using gin (tags);

create table public.template_tasks (
  id uuid not null default gen_random_uuid(),
  template_id uuid not null,
  organization_id uuid not null,
  parent_template_task_id uuid,
  position integer not null,
  title text not null,
  description text,
  priority text not null default 'medium',
  estimated_minutes integer,
  skills text[] not null default '{}',
  constraint template_tasks_pkey primary key (id),
  constraint template_tasks_template_position_key unique (template_id, parent_template_task_id, position),
  constraint template_tasks_template_id_fkey foreign key (template_id) references public.templates (id) on delete cascade,
  constraint template_tasks_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint template_tasks_parent_template_task_id_fkey foreign key (parent_template_task_id) references public.template_tasks (id) on delete cascade,
  constraint template_tasks_priority_known check (priority in ('low', 'medium', 'high', 'urgent'))
);
comment on table public.template_tasks is 'The tasks of a template''s project_structure, one row per task and subtask (seed 004''s TemplateTasks): derived from project_structure by trigger, never written by clients. Read with the template.';
comment on column public.template_tasks.parent_template_task_id is 'The task this one is a subtask of (project_structure''s subtasks); null for top-level tasks.';
comment on column public.template_tasks.position is 'Order among its siblings, from the array order (0, 1, ...).';
comment on column public.template_tasks.skills is 'Skill names or ids the task suggests, as written in project_structure; resolved when a project is created.';

create index template_tasks_parent_template_task_id_idx on public.template_tasks (parent_template_task_id);
create index template_tasks_organization_id_idx on public.template_tasks (organization_id);

-- projects.template_id: the template a project was created from (set only by create_project_from_template()).
alter table public.projects add column template_id uuid;
alter table public.projects add constraint projects_template_id_fkey foreign key (template_id) references public.templates (id) on delete set null;
create index projects_template_id_idx on public.projects (template_id);
comment on column public.projects.template_id is 'The template the project was created from (the seed''s templateId); set by create_project_from_template(), null when the template is deleted. Not writable by clients.';

-- templates: official only by platform administrators (security invoker, so current_user is the caller's role);
-- the organization never changes.
create function private.check_template() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.is_official is distinct from (tg_op = 'UPDATE' and old.is_official) and (tg_op = 'UPDATE' or new.is_official)
     and current_user in ('authenticated', 'anon') and not private.is_platform_admin() then
    raise exception 'only platform administrators mark a template official or withdraw the mark' using errcode = '42501';
  end if;
  if tg_op = 'UPDATE' and new.organization_id <> old.organization_id then
    raise exception 'a template cannot move to another organization' using errcode = '23514',
      constraint = 'templates_organization_id_immutable';
  end if;
  return new;
end;
$$;

-- template_tasks are rebuilt from project_structure whenever it is written.
create function private.sync_template_tasks() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  delete from public.template_tasks where template_id = new.id;
  with recursive walk (id, parent_id, position, task) as (
    select gen_random_uuid(), null::uuid, (t.ordinality - 1)::integer, t.value
    from jsonb_array_elements(new.project_structure -> 'tasks') with ordinality t
    union all
    select gen_random_uuid(), w.id, (s.ordinality - 1)::integer, s.value
    from walk w, jsonb_array_elements(coalesce(w.task -> 'subtasks', '[]'::jsonb)) with ordinality s
  )
  insert into public.template_tasks (id, template_id, organization_id, parent_template_task_id, position, title, description,
                                     priority, estimated_minutes, skills)
  select w.id, new.id, new.organization_id, w.parent_id, w.position, btrim(w.task ->> 'title'), w.task ->> 'description',
         coalesce(w.task ->> 'priority', 'medium'), (w.task ->> 'estimatedMinutes')::integer,
         coalesce((select array_agg(e #>> '{}') from jsonb_array_elements(w.task -> 'skills') e), '{}')
  from walk w;
  return null;
end;
$$;

create trigger templates_check before insert or update on public.templates
  for each row execute function private.check_template();
create trigger templates_set_updated_at before update on public.templates
  for each row execute function private.set_updated_at();
create trigger templates_sync_tasks after insert or update of project_structure on public.templates
  for each row execute function private.sync_template_tasks();
create trigger templates_audit after insert or update or delete on public.templates
  for each row execute function private.audit_row_change();

alter table public.templates enable row level security;
alter table public.template_tasks enable row level security;

-- templates_select: public templates for every signed-in user; the organization's own for its projects.read holders.
create policy templates_select on public.templates for select to authenticated
  using (is_public or organization_id in (select private.organizations_with_permission('projects.read')));
-- templates_insert: projects.manage holders write their organization's templates.
create policy templates_insert on public.templates for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('projects.manage')));
-- templates_update: projects.manage holders; platform administrators too on public templates (to mark them official).
create policy templates_update on public.templates for update to authenticated
  using (organization_id in (select private.organizations_with_permission('projects.manage'))
         or (is_public and (select private.is_platform_admin())))
  with check (organization_id in (select private.organizations_with_permission('projects.manage'))
              or (is_public and (select private.is_platform_admin())));
-- templates_delete: projects.manage holders.
create policy templates_delete on public.templates for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('projects.manage')));
-- template_tasks_select: read with the template.
create policy template_tasks_select on public.template_tasks for select to authenticated
  using (exists (select 1 from public.templates t where t.id = template_id));

grant select, delete on public.templates to authenticated, service_role;
-- author_id is not granted: a template is the caller's (the column's default), never someone else's by assertion.
grant insert (organization_id, name, description, category, cover_image_url, tags, project_structure,
              ai_provider_recommendations, is_public, is_official)
  on public.templates to authenticated, service_role;
grant update (name, description, category, cover_image_url, tags, project_structure, ai_provider_recommendations,
              is_public, is_official)
  on public.templates to authenticated, service_role;
grant select on public.template_tasks to authenticated, service_role;

-- create_project_from_template: in one transaction, a project owned by the caller in an organization where they hold
-- projects.manage, its tasks and subtasks in the template's order, each task's suggested skills (a name or id the
-- organization can use: its own skills first, then official, then the best-rated public one; names that match
-- nothing are skipped; the structure's top-level skills are suggested on every top-level task), and one more use
-- of the template. The structure's automations are not created here (workflows own them).
create function public.create_project_from_template(template_id uuid, organization_id uuid, title text) returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  tpl public.templates;
  project_id uuid;
  created jsonb := '{}'::jsonb;
  new_task uuid;
  item record;
  top_skills text[];
begin
  if create_project_from_template.template_id is null or create_project_from_template.title is null
     or create_project_from_template.organization_id is null then
    raise exception 'template_id, organization_id and title are required' using errcode = '22004';
  end if;
  select t.* into tpl from public.templates t where t.id = create_project_from_template.template_id
    and (t.is_public or t.organization_id in (select private.organizations_with_permission('projects.read')));
  if not found then
    raise exception 'template % not found', create_project_from_template.template_id using errcode = 'P0002';
  end if;
  if not private.has_permission(create_project_from_template.organization_id, 'projects.manage') then
    raise exception 'creating a project in this organization needs projects.manage there' using errcode = '42501';
  end if;
  insert into public.projects (organization_id, owner_id, title, description, cover_image_url, template_id)
  values (create_project_from_template.organization_id, uid, btrim(create_project_from_template.title), tpl.description,
          tpl.cover_image_url, tpl.id)
  returning id into project_id;

  select coalesce(array_agg(e #>> '{}'), '{}') into top_skills
  from jsonb_array_elements(coalesce(tpl.project_structure -> 'skills', '[]'::jsonb)) e;
  for item in
    with recursive walk (id, parent_id, depth, path) as (
      select tt.id, tt.parent_template_task_id, 1, array[tt.position]
      from public.template_tasks tt where tt.template_id = tpl.id and tt.parent_template_task_id is null
      union all
      select tt.id, tt.parent_template_task_id, w.depth + 1, w.path || tt.position
      from public.template_tasks tt join walk w on tt.parent_template_task_id = w.id
    )
    select tt.*, w.depth from walk w join public.template_tasks tt on tt.id = w.id order by w.depth, w.path
  loop
    insert into public.tasks (project_id, parent_task_id, title, description, priority, estimated_minutes)
    values (project_id, (created ->> item.parent_template_task_id::text)::uuid, item.title, item.description, item.priority,
            item.estimated_minutes)
    returning id into new_task;
    created := created || jsonb_build_object(item.id::text, new_task);
    insert into public.task_suggested_skills (task_id, skill_id)
    select distinct new_task, chosen.id
    from unnest(item.skills || case when item.parent_template_task_id is null then top_skills else '{}'::text[] end) wanted (name)
    cross join lateral (
      select s.id from public.skills s
      where (s.organization_id = create_project_from_template.organization_id or s.is_public)
        and (s.id::text = wanted.name or lower(s.name) = lower(wanted.name))
      order by s.organization_id = create_project_from_template.organization_id desc, s.is_official desc,
               s.rating desc nulls last, s.created_at
      limit 1) chosen
    on conflict do nothing;
  end loop;

  update public.templates t set usage_count = t.usage_count + 1 where t.id = tpl.id;
  return project_id;
end;
$$;
comment on function public.create_project_from_template(uuid, uuid, text) is 'Creates, in one transaction, a project from a template the caller can read (P0002 otherwise) in an organization where they hold projects.manage (42501 otherwise): its tasks, subtasks and suggested skills; counts the template''s usage; returns the project id.';
grant execute on function public.create_project_from_template(uuid, uuid, text) to authenticated;

-- A user's templates for export_my_data(). Erasure (deleting the account) keeps them with the organization, author null.
create function private.work_templates_personal_data(uid uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'templates_authored', coalesce((select jsonb_agg(jsonb_build_object('id', t.id, 'organization_id', t.organization_id,
        'name', t.name, 'category', t.category, 'is_public', t.is_public, 'created_at', t.created_at) order by t.created_at, t.id)
      from public.templates t where t.author_id = uid), '[]'::jsonb))
$$;
comment on function private.work_templates_personal_data(uuid) is 'A user''s authored templates, for their export.';
