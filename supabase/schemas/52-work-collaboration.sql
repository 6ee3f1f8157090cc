-- Work management (seed 004): task_watchers, task_commits, comments (threaded, soft-deleted), comment_mentions and
-- comment_reactions; the helpers user_can_read_project() and can_comment_on_project().

-- Whether a given user (not the caller) may read a project: what notifications and watchers need, since they are
-- about someone else. The same rule as private.can_read_project() (50-work-projects.sql).
create function private.user_can_read_project(project uuid, member uuid) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
declare
  p record;
  has_role boolean;
begin
  select pr.organization_id, pr.visibility, pr.owner_id into p from public.projects pr where pr.id = user_can_read_project.project;
  if not found or member is null or not exists (
       select 1 from public.organization_members m join public.organizations o on o.id = m.organization_id
       where m.organization_id = p.organization_id and m.user_id = member and o.deleted_at is null) then
    return false;
  end if;
  has_role := exists (select 1 from public.project_members pm where pm.project_id = user_can_read_project.project and pm.user_id = member);
  return has_role or p.owner_id = member or exists (
    select 1 from public.organization_members m join public.role_permissions rp on rp.role_id = m.role_id
    where m.organization_id = p.organization_id and m.user_id = member
      and (rp.permission_key = 'projects.admin' or (p.visibility = 'organization' and rp.permission_key = 'projects.read')));
end;
$$;
comment on function private.user_can_read_project(uuid, uuid) is 'Whether the given user may read the project (same rule as can_read_project for the caller). Internal: not granted to API roles.';

create function private.can_comment_on_project(project uuid) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
declare
  organization uuid := (select pr.organization_id from public.projects pr where pr.id = can_comment_on_project.project);
begin
  return organization is not null
     and (private.has_permission(organization, 'projects.admin')
          or coalesce(private.project_role(can_comment_on_project.project) in ('owner', 'editor', 'commenter'), false));
end;
$$;
comment on function private.can_comment_on_project(uuid) is 'Whether the caller may comment on the project''s tasks: project owner, editor or commenter, or projects.admin (a viewer or a reader without a project role may not).';

-- Policies on the large tables hanging off a project use `project_id in (select private.readable_project_ids())`
-- (50-work-projects.sql), evaluated once per statement and hashed, instead of calling can_read_project() on every row
-- (measured: 500 comments of a task, about 0.2 ms a row).

-- For policies that already checked the project: one indexed lookup, without evaluating the tasks policy again.
create function private.task_is_live(task uuid) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return exists (select 1 from public.tasks t where t.id = task_is_live.task and t.deleted_at is null);
end;
$$;
comment on function private.task_is_live(uuid) is 'Whether the task exists and is not soft-deleted (no access check: for policies that check the project).';

grant execute on function private.can_comment_on_project(uuid), private.task_is_live(uuid)
  to authenticated, service_role;

create table public.task_watchers (
  task_id uuid not null,
  user_id uuid not null default auth.uid(),
  organization_id uuid not null,
  project_id uuid not null,
  added_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  constraint task_watchers_pkey primary key (task_id, user_id),
  constraint task_watchers_task_id_fkey foreign key (task_id) references public.tasks (id) on delete cascade,
  constraint task_watchers_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint task_watchers_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint task_watchers_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade,
  constraint task_watchers_added_by_fkey foreign key (added_by) references auth.users (id) on delete set null
);
comment on table public.task_watchers is 'Who follows a task (the seed''s watcherIds): watchers are notified of its comments and status changes. A watcher must be able to read the project. Anyone who reads the project watches or unwatches themself; project editors add or remove others.';
comment on column public.task_watchers.organization_id is 'The task''s organization (copied by trigger).';
comment on column public.task_watchers.project_id is 'The task''s project (copied by trigger, for policies).';

create index task_watchers_user_id_idx on public.task_watchers (user_id);
create index task_watchers_organization_id_idx on public.task_watchers (organization_id);
create index task_watchers_project_id_idx on public.task_watchers (project_id);
create index task_watchers_added_by_idx on public.task_watchers (added_by);

create table public.task_commits (
  id uuid not null default gen_random_uuid(),
  task_id uuid not null,
  organization_id uuid not null,
  project_id uuid not null,
  sha text not null,
  message text not null,
  author text,
  committed_at timestamptz not null default now(),
  url public.http_url,
  created_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  constraint task_commits_pkey primary key (id),
  constraint task_commits_task_id_fkey foreign key (task_id) references public.tasks (id) on delete cascade,
  constraint task_commits_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint task_commits_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade,
  constraint task_commits_created_by_fkey foreign key (created_by) references auth.users (id) on delete set null,
  constraint task_commits_task_sha_key unique (task_id, sha),
  constraint task_commits_sha_format check (sha ~ '^([0-9a-f]{40}|[0-9a-f]{64})$'),
  constraint task_commits_message_length check (char_length(btrim(message)) between 1 and 10000),
  constraint task_commits_author_length check (author is null or char_length(author) between 1 and 320)
);
comment on table public.task_commits is 'Git commits linked to a task (the seed''s gitCommits), one row per task and commit. Readable with the project; linked and unlinked by its owners, editors and projects.admin holders.';
comment on column public.task_commits.sha is 'The full commit id: 40 hex digits (SHA-1) or 64 (SHA-256), lower case (upper case is folded by trigger); abbreviated ids are refused so one commit cannot be linked twice under two spellings.';
comment on column public.task_commits.author is 'The commit''s author as Git records it ("Name <email>"), free text: not necessarily a user here.';
comment on column public.task_commits.committed_at is 'When the commit was made (the seed''s timestamp, renamed: a timestamp column named timestamp reads badly).';
comment on column public.task_commits.organization_id is 'The task''s organization (copied by trigger).';
comment on column public.task_commits.project_id is 'The task''s project (copied by trigger, for policies).';

create index task_commits_organization_id_idx on public.task_commits (organization_id);
create index task_commits_project_id_idx on public.task_commits (project_id);
create index task_commits_created_by_idx on public.task_commits (created_by);

create table public.comments (
  id uuid not null default gen_random_uuid(),
  task_id uuid not null,
  organization_id uuid not null,
  project_id uuid not null,
  user_id uuid default auth.uid(),
  parent_comment_id uuid,
  content text not null,
  content_type text not null default 'markdown',
  edited_at timestamptz,
  deleted_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint comments_pkey primary key (id),
  constraint comments_task_id_fkey foreign key (task_id) references public.tasks (id) on delete cascade,
  constraint comments_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint comments_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade,
  constraint comments_user_id_fkey foreign key (user_id) references auth.users (id) on delete set null,
  constraint comments_parent_comment_id_fkey foreign key (parent_comment_id) references public.comments (id) on delete cascade,
  constraint comments_content_length check (char_length(btrim(content)) between 1 and 20000),
  constraint comments_content_type_known check (content_type in ('markdown', 'text')),
  constraint comments_not_own_parent check (parent_comment_id is distinct from id)
);
comment on table public.comments is 'Comments on a task (markdown), threaded by parent_comment_id within the same task. Readable with the project while the task is not soft-deleted; written by project owners, editors, commenters and projects.admin holders; only the author edits the content; the author or a project editor soft-deletes.';
comment on column public.comments.content_type is 'How content is rendered: markdown (the default) or text.';
comment on column public.comments.content is 'Markdown (or plain text, see content_type). Mentions: @[<user uuid>] or @<email address> of a project member become comment_mentions rows (a mention of anyone else stays plain text).';
comment on column public.comments.user_id is 'The author (the seed''s userId); null once their account is erased (the organization keeps the comment).';
comment on column public.comments.parent_comment_id is 'The comment this one answers; always a comment of the same task (comments_parent_same_task).';
comment on column public.comments.edited_at is 'Set by trigger when the author changes the content.';
comment on column public.comments.deleted_at is 'Soft delete: hidden from readers other than its author and project editors, who can restore it by clearing it.';
comment on column public.comments.organization_id is 'The task''s organization (copied by trigger).';
comment on column public.comments.project_id is 'The task''s project (copied by trigger, for policies).';

create index comments_task_id_idx on public.comments (task_id, created_at);
create index comments_organization_id_idx on public.comments (organization_id);
create index comments_project_id_idx on public.comments (project_id);
create index comments_user_id_idx on public.comments (user_id);
create index comments_parent_comment_id_idx on public.comments (parent_comment_id);

create table public.comment_mentions (
  comment_id uuid not null,
  user_id uuid not null,
  organization_id uuid not null,
  source text not null default 'explicit',
  created_at timestamptz not null default now(),
  constraint comment_mentions_pkey primary key (comment_id, user_id),
  constraint comment_mentions_comment_id_fkey foreign key (comment_id) references public.comments (id) on delete cascade,
  constraint comment_mentions_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint comment_mentions_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint comment_mentions_source_known check (source in ('content', 'explicit'))
);
comment on table public.comment_mentions is 'Project members a comment mentions: resolved from its content (source content, re-synced when the content changes) or added by its author (source explicit; a non-member is refused with 23514). Readable with the comment.';
comment on column public.comment_mentions.organization_id is 'The comment''s organization (copied by trigger).';

create index comment_mentions_user_id_idx on public.comment_mentions (user_id);
create index comment_mentions_organization_id_idx on public.comment_mentions (organization_id);

create table public.comment_reactions (
  comment_id uuid not null,
  user_id uuid not null default auth.uid(),
  emoji text not null,
  organization_id uuid not null,
  created_at timestamptz not null default now(),
  constraint comment_reactions_pkey primary key (comment_id, user_id, emoji),
  constraint comment_reactions_comment_id_fkey foreign key (comment_id) references public.comments (id) on delete cascade,
  constraint comment_reactions_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint comment_reactions_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint comment_reactions_emoji_format check (char_length(emoji) between 1 and 32 and emoji !~ '\s')
);
comment on table public.comment_reactions is 'Reactions to a comment (the seed''s reactions JSON): one row per comment, user and emoji. Anyone who reads the comment reacts as themself and removes only their own.';
comment on column public.comment_reactions.emoji is 'An emoji or a short code (":tada:"), without spaces, at most 32 characters.';
comment on column public.comment_reactions.organization_id is 'The comment''s organization (copied by trigger).';

create index comment_reactions_user_id_idx on public.comment_reactions (user_id);
create index comment_reactions_organization_id_idx on public.comment_reactions (organization_id);

-- task_watchers, task_commits and comments: organization and project from the task; a watcher can read the project;
-- a commit id is folded to lower case; a reply stays in its parent's task.
create function private.fill_task_context() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' and new.task_id <> old.task_id then
    raise exception 'a % row cannot move to another task', tg_table_name using errcode = '23514',
      constraint = tg_table_name || '_task_id_immutable';
  end if;
  select t.organization_id, t.project_id into new.organization_id, new.project_id from public.tasks t where t.id = new.task_id;
  if new.project_id is null then
    raise exception 'task % does not exist', new.task_id using errcode = '23503';
  end if;
  -- Nested ifs: PL/pgSQL plans a whole condition, and each table has its own columns.
  if tg_table_name = 'task_watchers' then
    if not private.user_can_read_project(new.project_id, new.user_id) then
      raise exception 'a watcher must be able to read the project' using errcode = '23514',
        constraint = 'task_watchers_user_can_read_project';
    end if;
  elsif tg_table_name = 'task_commits' then
    new.sha := lower(new.sha);
  elsif tg_table_name = 'comments' then
    if new.parent_comment_id is not null and not exists (
         select 1 from public.comments c where c.id = new.parent_comment_id and c.task_id = new.task_id) then
      raise exception 'a reply must belong to the same task as the comment it answers' using errcode = '23514',
        constraint = 'comments_parent_same_task';
    end if;
  end if;
  return new;
end;
$$;

-- comments: only the author changes the content or its type (stamping edited_at); the author or a project editor
-- soft-deletes; nothing else changes.
create function private.check_comment_update() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := (select auth.uid());
begin
  if uid is null then
    return new;
  end if;
  if (new.content, new.content_type) is distinct from (old.content, old.content_type) then
    if old.user_id is distinct from uid then
      raise exception 'only the author edits a comment' using errcode = '42501';
    end if;
    if old.deleted_at is not null then
      raise exception 'a deleted comment cannot be edited; restore it first' using errcode = '55000';
    end if;
    new.edited_at := pg_catalog.now();
  end if;
  if new.deleted_at is distinct from old.deleted_at and old.user_id is distinct from uid
     and not private.can_edit_project(old.project_id) then
    raise exception 'only the author or a project editor deletes or restores a comment' using errcode = '42501';
  end if;
  return new;
end;
$$;

-- The mentions in a comment's content: @[<uuid>] or @<email>, resolved against the project's members only.
create function private.comment_content_mentions(content text, project uuid) returns setof uuid
language sql stable security definer
set search_path = ''
as $$
  with tokens as (
    select (regexp_matches(content, '(?:^|[^A-Za-z0-9._%+@-])@(\[[0-9a-fA-F-]{36}\]|[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})', 'g'))[1] as token
  )
  select distinct pm.user_id
  from tokens k
  join public.project_members pm on pm.project_id = project
  left join public.profiles p on p.id = pm.user_id
  where (k.token like '[%' and lower(pm.user_id::text) = lower(btrim(k.token, '[]')))
     or (k.token not like '[%' and lower(p.email) = lower(k.token))
$$;
comment on function private.comment_content_mentions(text, uuid) is 'Project members mentioned in a comment''s markdown as @[<uuid>] or @<email>; mentions of anyone else are ignored. Internal.';

create function private.sync_comment_mentions() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' then
    delete from public.comment_mentions m
    where m.comment_id = new.id and m.source = 'content'
      and m.user_id not in (select private.comment_content_mentions(new.content, new.project_id));
  end if;
  insert into public.comment_mentions (comment_id, user_id, organization_id, source)
  select new.id, u, new.organization_id, 'content' from private.comment_content_mentions(new.content, new.project_id) u
  on conflict (comment_id, user_id) do nothing;
  return null;
end;
$$;

-- comment_mentions and comment_reactions: the organization is the comment's; an explicit mention is a project member.
create function private.fill_comment_context() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  project uuid;
begin
  select c.organization_id, c.project_id into new.organization_id, project from public.comments c where c.id = new.comment_id;
  if project is null then
    raise exception 'comment % does not exist', new.comment_id using errcode = '23503';
  end if;
  if tg_table_name = 'comment_mentions' then
    if not exists (select 1 from public.project_members pm where pm.project_id = project and pm.user_id = new.user_id) then
      raise exception 'only a member of the project can be mentioned' using errcode = '23514',
        constraint = 'comment_mentions_user_is_project_member';
    end if;
  end if;
  return new;
end;
$$;

create trigger task_watchers_fill_context before insert or update on public.task_watchers
  for each row execute function private.fill_task_context();
create trigger task_watchers_audit after insert or update or delete on public.task_watchers
  for each row execute function private.audit_row_change();
create trigger task_commits_fill_context before insert or update on public.task_commits
  for each row execute function private.fill_task_context();
create trigger task_commits_audit after insert or update or delete on public.task_commits
  for each row execute function private.audit_row_change();
create trigger comments_fill_context before insert or update of task_id, parent_comment_id on public.comments
  for each row execute function private.fill_task_context();
create trigger comments_check_update before update on public.comments
  for each row execute function private.check_comment_update();
create trigger comments_set_updated_at before update on public.comments
  for each row execute function private.set_updated_at();
create trigger comments_sync_mentions after insert or update of content on public.comments
  for each row execute function private.sync_comment_mentions();
create trigger comments_audit after insert or update or delete on public.comments
  for each row execute function private.audit_row_change();
create trigger comment_mentions_fill_context before insert or update on public.comment_mentions
  for each row execute function private.fill_comment_context();
create trigger comment_reactions_fill_context before insert or update on public.comment_reactions
  for each row execute function private.fill_comment_context();
create trigger comment_reactions_audit after insert or update or delete on public.comment_reactions
  for each row execute function private.audit_row_change();

alter table public.task_watchers enable row level security;
alter table public.task_commits enable row level security;
alter table public.comments enable row level security;
alter table public.comment_mentions enable row level security;
alter table public.comment_reactions enable row level security;

-- task_watchers: readers of the task see its watchers; one watches oneself, a project editor adds anyone who can read.
create policy task_watchers_select on public.task_watchers for select to authenticated
  using (project_id in (select private.readable_project_ids()));
create policy task_watchers_insert on public.task_watchers for insert to authenticated
  with check (private.task_is_live(task_id) and private.can_read_project(project_id)
              and (user_id = (select auth.uid()) or private.can_edit_project(project_id)));
create policy task_watchers_delete on public.task_watchers for delete to authenticated
  using (user_id = (select auth.uid()) or private.can_edit_project(project_id));

-- task_commits: readable with the project, linked and unlinked by its editors.
create policy task_commits_select on public.task_commits for select to authenticated
  using (project_id in (select private.readable_project_ids()));
create policy task_commits_insert on public.task_commits for insert to authenticated
  with check (private.can_edit_project(project_id));
create policy task_commits_delete on public.task_commits for delete to authenticated
  using (private.can_edit_project(project_id));

-- comments_select: readers of a task that is not soft-deleted; a deleted comment only for its author and project editors.
create policy comments_select on public.comments for select to authenticated
  using (project_id in (select private.readable_project_ids()) and private.task_is_live(task_id)
         and (deleted_at is null or user_id = (select auth.uid()) or private.can_edit_project(project_id)));
-- comments_insert: commenters and above, as themselves, on a task that is not deleted.
create policy comments_insert on public.comments for insert to authenticated
  with check (user_id = (select auth.uid()) and private.task_is_live(task_id) and private.can_comment_on_project(project_id));
-- comments_update: the author (content, delete) or a project editor (delete and restore); see check_comment_update.
create policy comments_update on public.comments for update to authenticated
  using (user_id = (select auth.uid()) or private.can_edit_project(project_id))
  with check (user_id = (select auth.uid()) or private.can_edit_project(project_id));

-- comment_mentions: readable with the comment; the comment's author adds or removes explicit mentions.
create policy comment_mentions_select on public.comment_mentions for select to authenticated
  using (exists (select 1 from public.comments c where c.id = comment_id));
create policy comment_mentions_insert on public.comment_mentions for insert to authenticated
  with check (source = 'explicit'
              and exists (select 1 from public.comments c where c.id = comment_id and c.user_id = (select auth.uid())
                          and c.deleted_at is null));
create policy comment_mentions_delete on public.comment_mentions for delete to authenticated
  using (exists (select 1 from public.comments c where c.id = comment_id and c.user_id = (select auth.uid())));

-- comment_reactions: readable with the comment; anyone who reads a live comment reacts as themself.
create policy comment_reactions_select on public.comment_reactions for select to authenticated
  using (exists (select 1 from public.comments c where c.id = comment_id));
create policy comment_reactions_insert on public.comment_reactions for insert to authenticated
  with check (user_id = (select auth.uid())
              and exists (select 1 from public.comments c where c.id = comment_id and c.deleted_at is null));
create policy comment_reactions_delete on public.comment_reactions for delete to authenticated
  using (user_id = (select auth.uid()));

grant select, delete on public.task_watchers to authenticated, service_role;
grant insert (task_id, user_id) on public.task_watchers to authenticated, service_role;
grant select, delete on public.task_commits to authenticated, service_role;
grant insert (task_id, sha, message, author, committed_at, url) on public.task_commits to authenticated, service_role;
grant select on public.comments to authenticated, service_role;
grant insert (task_id, parent_comment_id, content, content_type) on public.comments to authenticated, service_role;
grant update (content, content_type, deleted_at) on public.comments to authenticated, service_role;
grant select, delete on public.comment_mentions to authenticated, service_role;
grant insert (comment_id, user_id) on public.comment_mentions to authenticated, service_role;
grant select, delete on public.comment_reactions to authenticated, service_role;
grant insert (comment_id, emoji) on public.comment_reactions to authenticated, service_role;
