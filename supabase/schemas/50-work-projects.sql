-- Work management (seed 004): the projects.admin permission, the hex_color domain, projects, project_members,
-- project_favorites, and the project access helpers every table hanging off a project uses in its policies.

-- Reference data: projects.admin sees private projects and changes any project of the organization.
insert into public.permissions (key, description) values
  ('projects.admin', 'See private projects and change any project, its members and its tasks');

insert into public.role_permissions (role_id, permission_key)
select r.id, 'projects.admin' from public.roles r where r.organization_id is null and r.key in ('owner', 'admin');

create domain public.hex_color as text
  constraint hex_color_format_invalid
  check (value ~ '^#[0-9a-f]{6}$');
comment on domain public.hex_color is 'A colour as #rrggbb, lower-case hex digits.';

create table public.projects (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  owner_id uuid default auth.uid(),
  title text not null,
  description text,
  main_prompt text,
  status text not null default 'active',
  archived_at timestamptz,
  visibility text not null default 'organization',
  ai_provider text,
  cover_image_url public.http_url,
  color public.hex_color,
  emoji text,
  estimated_hours numeric(10, 2),
  actual_hours numeric(12, 2) not null default 0,
  total_cost numeric(14, 6) not null default 0,
  git_repository public.http_url,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint projects_pkey primary key (id),
  constraint projects_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint projects_owner_id_fkey foreign key (owner_id) references auth.users (id) on delete set null,
  constraint projects_title_length check (char_length(btrim(title)) between 1 and 200),
  constraint projects_description_length check (description is null or char_length(description) <= 20000),
  constraint projects_main_prompt_length check (main_prompt is null or char_length(main_prompt) <= 50000),
  constraint projects_status_known check (status in ('active', 'completed', 'archived', 'on_hold')),
  constraint projects_archived_at_matches_status check ((status = 'archived') = (archived_at is not null)),
  constraint projects_visibility_known check (visibility in ('organization', 'private')),
  constraint projects_ai_provider_known check (ai_provider is null or ai_provider in ('openai', 'anthropic', 'google', 'local')),
  constraint projects_emoji_length check (emoji is null or char_length(emoji) between 1 and 16),
  constraint projects_estimated_hours_non_negative check (estimated_hours is null or estimated_hours >= 0),
  constraint projects_actual_hours_non_negative check (actual_hours >= 0),
  constraint projects_total_cost_non_negative check (total_cost >= 0)
);
comment on table public.projects is 'Projects (seed 004, the epic level) of an organization. visibility organization: readable with projects.read; private: only by project members, the owner and projects.admin holders. Create with projects.manage; change as project owner/editor or with projects.admin.';
comment on column public.projects.owner_id is 'The project''s owner (the creator by default); also its first project member with role owner. Null once the owner''s account is deleted (the project stays with the organization).';
comment on column public.projects.archived_at is 'Set when status becomes archived (filled in by trigger when omitted), null otherwise (projects_archived_at_matches_status).';
comment on column public.projects.actual_hours is 'Derived: hours of the project''s time entries, kept by the database; 0 until time entries exist. Not writable by clients.';
comment on column public.projects.total_cost is 'Derived: AI cost of the project''s task executions, kept by the database; 0 until executions exist. Not writable by clients.';
comment on column public.projects.color is 'Theme colour, #rrggbb (the seed''s color).';

create index projects_organization_id_idx on public.projects (organization_id, status);
create index projects_owner_id_idx on public.projects (owner_id);

create table public.project_members (
  project_id uuid not null,
  user_id uuid not null,
  organization_id uuid not null,
  role text not null default 'viewer',
  added_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint project_members_pkey primary key (project_id, user_id),
  constraint project_members_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade,
  constraint project_members_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint project_members_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint project_members_added_by_fkey foreign key (added_by) references auth.users (id) on delete set null,
  constraint project_members_role_known check (role in ('owner', 'editor', 'commenter', 'viewer'))
);
comment on table public.project_members is 'Who works on a project and with which role (owner, editor, commenter, viewer); every member is a member of the project''s organization. Managed by project owners and projects.admin holders.';
comment on column public.project_members.organization_id is 'The project''s organization (copied by trigger, for policies and the audit log).';

create index project_members_user_id_idx on public.project_members (user_id);
create index project_members_organization_id_idx on public.project_members (organization_id);
create index project_members_added_by_idx on public.project_members (added_by);

create table public.project_favorites (
  user_id uuid not null default auth.uid(),
  project_id uuid not null,
  organization_id uuid not null,
  created_at timestamptz not null default now(),
  constraint project_favorites_pkey primary key (user_id, project_id),
  constraint project_favorites_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint project_favorites_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade,
  constraint project_favorites_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade
);
comment on table public.project_favorites is 'A user''s favourite projects (the seed''s isFavorite, which belongs to a user, not to the project). Each user sees and changes only their own.';

create index project_favorites_project_id_idx on public.project_favorites (project_id);
create index project_favorites_organization_id_idx on public.project_favorites (organization_id);

-- Access helpers. security definer so that policies on projects and project_members do not recurse into each other.
create function private.project_role(project uuid) returns text
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return (select pm.role from public.project_members pm
          join public.organization_members m on m.organization_id = pm.organization_id and m.user_id = pm.user_id
          where pm.project_id = project_role.project and pm.user_id = (select auth.uid()));
end;
$$;
comment on function private.project_role(uuid) is 'The caller''s role in a project (owner, editor, commenter, viewer), or null; only while still a member of its organization.';

create function private.can_read_project(project uuid) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
declare
  p record;
begin
  select pr.organization_id, pr.visibility, pr.owner_id into p from public.projects pr where pr.id = can_read_project.project;
  if not found or not exists (select 1 from private.user_organization_ids() o where o = p.organization_id) then
    return false;
  end if;
  return (p.visibility = 'organization' and private.has_permission(p.organization_id, 'projects.read'))
      or private.has_permission(p.organization_id, 'projects.admin')
      or p.owner_id = (select auth.uid())
      or private.project_role(can_read_project.project) is not null;
end;
$$;
comment on function private.can_read_project(uuid) is 'Whether the caller may read the project and what hangs off it: organization-visible with projects.read, or a project member, its owner or a projects.admin holder.';

create function private.can_edit_project(project uuid) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
declare
  organization uuid := (select pr.organization_id from public.projects pr where pr.id = can_edit_project.project);
begin
  return organization is not null
     and (private.has_permission(organization, 'projects.admin')
          or coalesce(private.project_role(can_edit_project.project) in ('owner', 'editor'), false));
end;
$$;
comment on function private.can_edit_project(uuid) is 'Whether the caller may change the project and its tasks: project owner or editor, or projects.admin.';

create function private.can_manage_project_members(project uuid) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
declare
  organization uuid := (select pr.organization_id from public.projects pr where pr.id = can_manage_project_members.project);
begin
  return organization is not null
     and (private.has_permission(organization, 'projects.admin')
          or coalesce(private.project_role(can_manage_project_members.project) = 'owner', false));
end;
$$;
comment on function private.can_manage_project_members(uuid) is 'Whether the caller may add, change or remove project members (and delete the project): project owner or projects.admin.';

-- The set form of can_read_project for policies on tables with many rows per project: `project_id in (select
-- private.readable_project_ids())` is evaluated once per statement (a hashed subplan) instead of once per row, which
-- keeps a listing under RLS within 1.5x of the same query without it (npm run bench -- work). It reads every project
-- of the caller's organizations, so its cost grows with the projects of those organizations, not with their tasks.
create function private.readable_project_ids() returns setof uuid
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return query
  with memberships as (
    select m.organization_id,
           exists (select 1 from public.role_permissions rp
                   where rp.role_id = m.role_id and rp.permission_key = 'projects.admin') as admin,
           exists (select 1 from public.role_permissions rp
                   where rp.role_id = m.role_id and rp.permission_key = 'projects.read') as reader
    from public.organization_members m
    join public.organizations o on o.id = m.organization_id and o.deleted_at is null
    where m.user_id = (select auth.uid()))
  select p.id
  from memberships m
  join public.projects p on p.organization_id = m.organization_id
  where m.admin or (m.reader and p.visibility = 'organization') or p.owner_id = (select auth.uid())
  union
  select pm.project_id
  from memberships m
  join public.project_members pm on pm.organization_id = m.organization_id and pm.user_id = (select auth.uid());
end;
$$;
comment on function private.readable_project_ids() is 'Ids of the projects the caller may read (the rule of can_read_project, as a set for `project_id in (select ...)` policies).';

grant execute on function private.project_role(uuid), private.can_read_project(uuid), private.can_edit_project(uuid),
  private.can_manage_project_members(uuid), private.readable_project_ids() to authenticated, service_role;

-- projects: archived_at follows status when omitted; the organization never changes; the owner must be a member.
create function private.check_project() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' and new.organization_id <> old.organization_id then
    raise exception 'a project cannot move to another organization' using errcode = '23514',
      constraint = 'projects_organization_id_immutable';
  end if;
  if new.status = 'archived' and new.archived_at is null then
    new.archived_at := pg_catalog.now();
  elsif tg_op = 'UPDATE' and old.status = 'archived' and new.status <> 'archived'
        and new.archived_at is not distinct from old.archived_at then
    new.archived_at := null;
  end if;
  if new.owner_id is null and (tg_op = 'INSERT' or exists (select 1 from auth.users u where u.id = old.owner_id)) then
    raise exception 'a project needs an owner' using errcode = '23502', constraint = 'projects_owner_id_required';
  end if;
  if new.owner_id is not null and (tg_op = 'INSERT' or new.owner_id is distinct from old.owner_id) and not exists (
       select 1 from public.organization_members m where m.organization_id = new.organization_id and m.user_id = new.owner_id) then
    raise exception 'the project owner must be a member of its organization' using errcode = '23514',
      constraint = 'projects_owner_is_member';
  end if;
  return new;
end;
$$;

-- The owner becomes a project member with role owner (a new owner too; the previous one stays as editor).
create function private.add_project_owner_member() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into public.project_members (project_id, user_id, organization_id, role, added_by)
  values (new.id, new.owner_id, new.organization_id, 'owner', (select auth.uid()))
  on conflict (project_id, user_id) do update set role = 'owner';
  if tg_op = 'UPDATE' then
    update public.project_members set role = 'editor'
    where project_id = new.id and user_id = old.owner_id and role = 'owner';
  end if;
  return null;
end;
$$;

create trigger projects_check before insert or update of organization_id, owner_id, status, archived_at on public.projects
  for each row execute function private.check_project();
create trigger projects_set_updated_at before update on public.projects
  for each row execute function private.set_updated_at();
create trigger projects_add_owner_member after insert on public.projects
  for each row execute function private.add_project_owner_member();
create trigger projects_owner_changed after update of owner_id on public.projects
  for each row when (old.owner_id is distinct from new.owner_id and new.owner_id is not null)
  execute function private.add_project_owner_member();
create trigger projects_audit after insert or update or delete on public.projects
  for each row execute function private.audit_row_change();

-- project_members and project_favorites: the organization is the project's; a project member is an organization member.
create function private.fill_project_organization() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  select p.organization_id into new.organization_id from public.projects p where p.id = new.project_id;
  if new.organization_id is null then
    raise exception 'project % does not exist', new.project_id using errcode = '23503';
  end if;
  if tg_table_name = 'project_members' and not exists (
       select 1 from public.organization_members m where m.organization_id = new.organization_id and m.user_id = new.user_id) then
    raise exception 'a project member must be a member of the project''s organization' using errcode = '23514',
      constraint = 'project_members_user_is_organization_member';
  end if;
  return new;
end;
$$;

create trigger project_members_fill_organization before insert or update of project_id, user_id on public.project_members
  for each row execute function private.fill_project_organization();
create trigger project_members_set_updated_at before update on public.project_members
  for each row execute function private.set_updated_at();
create trigger project_members_audit after insert or update or delete on public.project_members
  for each row execute function private.audit_row_change();
create trigger project_favorites_fill_organization before insert or update of project_id on public.project_favorites
  for each row execute function private.fill_project_organization();

alter table public.projects enable row level security;
alter table public.project_members enable row level security;
alter table public.project_favorites enable row level security;

-- projects_select: organization-visible projects for projects.read holders; private ones for their members, their
-- owner and projects.admin holders.
create policy projects_select on public.projects for select to authenticated
  using (id in (select private.readable_project_ids()) or owner_id = (select auth.uid()));
-- projects_insert: projects.manage holders create projects they own.
create policy projects_insert on public.projects for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('projects.manage'))
              and owner_id = (select auth.uid()));
-- projects_update: project owners and editors, and projects.admin holders.
create policy projects_update on public.projects for update to authenticated
  using (private.can_edit_project(id))
  with check (private.can_edit_project(id));
-- projects_delete: the project's owner and projects.admin holders.
create policy projects_delete on public.projects for delete to authenticated
  using (private.can_manage_project_members(id));

-- project_members_select: whoever reads the project sees who works on it.
create policy project_members_select on public.project_members for select to authenticated
  using (project_id in (select private.readable_project_ids()));
create policy project_members_insert on public.project_members for insert to authenticated
  with check (private.can_manage_project_members(project_id));
create policy project_members_update on public.project_members for update to authenticated
  using (private.can_manage_project_members(project_id))
  with check (private.can_manage_project_members(project_id));
create policy project_members_delete on public.project_members for delete to authenticated
  using (private.can_manage_project_members(project_id));

-- project_favorites: one's own, on projects one can read.
create policy project_favorites_select on public.project_favorites for select to authenticated
  using (user_id = (select auth.uid()));
create policy project_favorites_insert on public.project_favorites for insert to authenticated
  with check (user_id = (select auth.uid()) and private.can_read_project(project_id));
create policy project_favorites_delete on public.project_favorites for delete to authenticated
  using (user_id = (select auth.uid()));

grant select, delete on public.projects to authenticated, service_role;
grant insert (organization_id, owner_id, title, description, main_prompt, status, archived_at, visibility, ai_provider,
              cover_image_url, color, emoji, estimated_hours, git_repository)
  on public.projects to authenticated, service_role;
grant update (owner_id, title, description, main_prompt, status, archived_at, visibility, ai_provider,
              cover_image_url, color, emoji, estimated_hours, git_repository)
  on public.projects to authenticated, service_role;
grant select, delete on public.project_members to authenticated, service_role;
grant insert (project_id, user_id, role) on public.project_members to authenticated, service_role;
grant update (role) on public.project_members to authenticated, service_role;
grant select, delete on public.project_favorites to authenticated, service_role;
grant insert (user_id, project_id) on public.project_favorites to authenticated, service_role;
