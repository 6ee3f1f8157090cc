-- Work management (seed 004): notifications (private.notify, mark_notifications_read, the due-soon sweep), activities
-- (private.record_activity), what writes them, the comment.created event and the realtime publication.

insert into public.webhook_event_types (key, description) values
  ('comment.created', 'A comment was added to a task (payload: comment_id, task_id, project_id, user_id, parent_comment_id)');

create table public.notifications (
  id uuid not null default gen_random_uuid(),
  user_id uuid not null,
  organization_id uuid not null,
  type text not null,
  title text not null,
  content text not null,
  related_project_id uuid not null,
  related_task_id uuid,
  action_url text,
  dedupe_key text,
  read_at timestamptz,
  is_read boolean not null generated always as (read_at is not null) stored,
  created_at timestamptz not null default now(),
  constraint notifications_pkey primary key (id),
  constraint notifications_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint notifications_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint notifications_related_project_id_fkey foreign key (related_project_id) references public.projects (id) on delete cascade,
  constraint notifications_related_task_id_fkey foreign key (related_task_id) references public.tasks (id) on delete cascade,
  constraint notifications_user_dedupe_key unique (user_id, dedupe_key),
  constraint notifications_type_known check (type in ('task_assigned', 'mention', 'comment', 'status_changed', 'task_due_soon')),
  constraint notifications_title_length check (char_length(btrim(title)) between 1 and 300),
  constraint notifications_content_length check (char_length(content) <= 2000),
  constraint notifications_action_url_format check (action_url is null or action_url ~ '^/[^/\s][^\s]*$' or action_url ~ '^https://[^\s]+$')
);
comment on table public.notifications is 'A user''s notifications (seed 004): assignment, mention, a comment or status change on a watched task, a due date within 24 hours. Written only by private.notify(); each user reads, marks read (mark_notifications_read) and deletes only their own. Published to realtime.';
comment on column public.notifications.user_id is 'The recipient (the seed''s userId).';
comment on column public.notifications.related_project_id is 'The project it is about (the seed''s relatedProjectId); the recipient must be able to read it.';
comment on column public.notifications.related_task_id is 'The task it is about, if any (the seed''s relatedTaskId).';
comment on column public.notifications.type is 'task_assigned, mention, comment (on a watched task), status_changed (of a watched task), task_due_soon.';
comment on column public.notifications.action_url is 'Where the app takes the user: a path of the app (/projects/<id>/tasks/<id>) or an https URL.';
comment on column public.notifications.dedupe_key is 'Set when a notification must exist at most once per recipient (task_due_soon: one per task and due date).';
comment on column public.notifications.is_read is 'Derived from read_at.';
comment on column public.notifications.organization_id is 'The organization the notification is about (the project''s).';

create index notifications_user_id_idx on public.notifications (user_id, created_at desc);
create index notifications_unread_idx on public.notifications (user_id) where read_at is null;
create index notifications_organization_id_idx on public.notifications (organization_id);
create index notifications_related_project_id_idx on public.notifications (related_project_id);
create index notifications_related_task_id_idx on public.notifications (related_task_id);

alter table public.notifications enable row level security;

-- notifications: each user reads and deletes their own; read_at changes only through mark_notifications_read().
create policy notifications_select on public.notifications for select to authenticated
  using (user_id = (select auth.uid()));
create policy notifications_delete on public.notifications for delete to authenticated
  using (user_id = (select auth.uid()));

grant select, delete on public.notifications to authenticated, service_role;

-- The one way a notification is written. Never to the user who caused it, never about a project the recipient cannot
-- read; idempotent per (recipient, dedupe_key). Returns the id, or null when nothing was written.
create function private.notify(recipient uuid, type text, title text, content text default null,
                               project_id uuid default null, task_id uuid default null, action_url text default null,
                               dedupe_key text default null)
returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  organization uuid;
  project uuid := notify.project_id;
  new_id uuid;
begin
  if recipient is null or recipient is not distinct from (select auth.uid()) then
    return null;
  end if;
  if project is null and notify.task_id is not null then
    select t.project_id into project from public.tasks t where t.id = notify.task_id;
  end if;
  if project is null then
    raise exception 'a notification is about a project or a task' using errcode = '22023';
  end if;
  select p.organization_id into organization from public.projects p where p.id = project;
  if not private.user_can_read_project(project, recipient) then
    return null;
  end if;
  insert into public.notifications (user_id, organization_id, type, title, content, related_project_id, related_task_id,
                                    action_url, dedupe_key)
  values (recipient, organization, notify.type, left(notify.title, 300),
          left(private.redact_text(coalesce(nullif(btrim(notify.content), ''), notify.title)), 2000),
          project, notify.task_id, notify.action_url, notify.dedupe_key)
  on conflict on constraint notifications_user_dedupe_key do nothing
  returning id into new_id;
  return new_id;
end;
$$;
comment on function private.notify(uuid, text, text, text, uuid, uuid, text, text) is 'Writes one notification unless the recipient caused it or cannot read the project (returns null then); content (the title when omitted) passes through redact_text; at most one per recipient and dedupe_key. Not granted to API roles.';

create function public.mark_notifications_read(ids uuid[] default null) returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  marked integer;
begin
  update public.notifications n set read_at = pg_catalog.now()
  where n.user_id = uid and n.read_at is null and (ids is null or n.id = any (ids));
  get diagnostics marked = row_count;
  return marked;
end;
$$;
comment on function public.mark_notifications_read(uuid[]) is 'Marks the caller''s unread notifications read: those listed, or all of them when ids is null; others'' ids are ignored. Returns how many changed.';

grant execute on function public.mark_notifications_read(uuid[]) to authenticated;

create table public.activities (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  user_id uuid,
  project_id uuid,
  task_id uuid,
  type text not null,
  description text not null,
  changes jsonb not null default '{}'::jsonb,
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  constraint activities_pkey primary key (id),
  constraint activities_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint activities_user_id_fkey foreign key (user_id) references auth.users (id) on delete set null,
  constraint activities_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade,
  constraint activities_task_id_fkey foreign key (task_id) references public.tasks (id) on delete cascade,
  constraint activities_type_format check (type ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
  constraint activities_description_length check (char_length(btrim(description)) between 1 and 1000),
  constraint activities_changes_object check (jsonb_typeof(changes) = 'object'),
  constraint activities_metadata_object check (jsonb_typeof(metadata) = 'object')
);
comment on table public.activities is 'The activity feed (seed 004 activities, seed 000 activity_logs): who did what in the organization. Written only by private.record_activity(); readable by whoever reads its project, or, without a project, by the actor and audit.read holders. Never changed.';
comment on column public.activities.user_id is 'Who did it (the seed''s userId, the actor); null for the system (workers, pg_cron) and once the account is erased.';
comment on column public.activities.type is 'Dotted event name (task.created, task.status_changed, task.assigned, comment.created, webhook.disabled, ...).';
comment on column public.activities.changes is 'Only the changed columns: {"column": {"before": ..., "after": ...}}, text values passed through redact_text.';

create index activities_organization_id_idx on public.activities (organization_id, created_at desc);
create index activities_user_id_idx on public.activities (user_id);
create index activities_project_id_idx on public.activities (project_id, created_at desc);
create index activities_task_id_idx on public.activities (task_id);

alter table public.activities enable row level security;

-- activities_select: with a project, its readers; without one, the actor and audit.read holders of the organization.
create policy activities_select on public.activities for select to authenticated
  using (case when project_id is not null then project_id in (select private.readable_project_ids())
              else user_id = (select auth.uid())
                   or organization_id in (select private.organizations_with_permission('audit.read')) end);

grant select on public.activities to authenticated, service_role;

-- A JSON value with its text redacted: strings through redact_text, arrays and objects element by element.
create function private.redact_json_value(value jsonb) returns jsonb
language sql immutable parallel safe
set search_path = ''
as $$
  select case jsonb_typeof(value)
           when 'string' then to_jsonb(private.redact_text(value #>> '{}'))
           when 'array' then coalesce((select jsonb_agg(private.redact_json_value(e) order by o)
                                      from jsonb_array_elements(value) with ordinality x(e, o)), '[]'::jsonb)
           when 'object' then coalesce((select jsonb_object_agg(k, private.redact_json_value(v)) from jsonb_each(value) y(k, v)),
                                       '{}'::jsonb)
           else value end
$$;

-- The one way an activity is written (other domains call it too). changes holds only the columns whose value differs
-- between before and after, redacted.
create function private.record_activity(organization_id uuid, type text, description text, project_id uuid default null,
                                        task_id uuid default null, before jsonb default null, after jsonb default null,
                                        metadata jsonb default '{}'::jsonb, actor_id uuid default auth.uid())
returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  changed jsonb;
  new_id uuid;
begin
  if organization_id is null then
    raise exception 'an activity belongs to an organization' using errcode = '22023';
  end if;
  if (before is not null and jsonb_typeof(before) <> 'object') or (after is not null and jsonb_typeof(after) <> 'object') then
    raise exception 'before and after must be JSON objects of column values' using errcode = '22023';
  end if;
  select coalesce(jsonb_object_agg(k, jsonb_build_object('before', private.redact_json_value(coalesce(before -> k, 'null'::jsonb)),
                                                         'after', private.redact_json_value(coalesce(after -> k, 'null'::jsonb)))),
                  '{}'::jsonb)
  into changed
  from (select jsonb_object_keys(coalesce(before, '{}'::jsonb)) union select jsonb_object_keys(coalesce(after, '{}'::jsonb))) x(k)
  where k not in ('updated_at', 'search_vector')
    and coalesce(before -> k, 'null'::jsonb) is distinct from coalesce(after -> k, 'null'::jsonb);
  insert into public.activities (organization_id, user_id, project_id, task_id, type, description, changes, metadata)
  values (record_activity.organization_id, record_activity.actor_id, record_activity.project_id, record_activity.task_id,
          record_activity.type, left(private.redact_text(record_activity.description), 1000), changed,
          private.redact_json_value(coalesce(record_activity.metadata, '{}'::jsonb)))
  returning id into new_id;
  return new_id;
end;
$$;
comment on function private.record_activity(uuid, text, text, uuid, uuid, jsonb, jsonb, jsonb, uuid) is 'Writes one activity: changes = before/after of the columns that differ (updated_at ignored), text redacted with redact_text; description and metadata redacted too. Not granted to API roles.';

create function private.task_action_url(project uuid, task uuid) returns text
language sql immutable
set search_path = ''
as $$ select '/projects/' || project::text || '/tasks/' || task::text $$;

-- tasks: created, deleted or restored, status changed (watchers are told), assigned (the assignee is told).
create function private.task_activity() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  watcher uuid;
begin
  if tg_op = 'INSERT' then
    perform private.record_activity(new.organization_id, 'task.created', format('Task "%s" was created', new.title),
      new.project_id, new.id, null, jsonb_build_object('title', new.title, 'status', new.status, 'assignee_id', new.assignee_id));
  else
    -- Soft delete and restore, once for the task deleted or restored: a subtask that goes with its parent (deleted with
    -- the parent's timestamp, or restored in the transaction that restored the parent) is not recorded on its own.
    if new.deleted_at is distinct from old.deleted_at and not exists (
         select 1 from public.tasks p where p.id = new.parent_task_id
         and case when new.deleted_at is not null then p.deleted_at = new.deleted_at
                  else p.deleted_at is null and p.updated_at = pg_catalog.now() end) then
      perform private.record_activity(new.organization_id, case when new.deleted_at is null then 'task.restored' else 'task.deleted' end,
        format(case when new.deleted_at is null then 'Task "%s" was restored' else 'Task "%s" was deleted' end, new.title),
        new.project_id, new.id, jsonb_build_object('deleted_at', old.deleted_at), jsonb_build_object('deleted_at', new.deleted_at));
    end if;
    if new.status is distinct from old.status then
      perform private.record_activity(new.organization_id, 'task.status_changed',
        format('Task "%s" moved from %s to %s', new.title, old.status, new.status), new.project_id, new.id,
        jsonb_build_object('status', old.status, 'blocked_reason', old.blocked_reason),
        jsonb_build_object('status', new.status, 'blocked_reason', new.blocked_reason));
      for watcher in select w.user_id from public.task_watchers w where w.task_id = new.id loop
        perform private.notify(watcher, 'status_changed', format('"%s" is now %s', new.title, replace(new.status, '_', ' ')),
          new.blocked_reason, new.project_id, new.id, private.task_action_url(new.project_id, new.id));
      end loop;
    end if;
  end if;
  if new.assignee_id is not null and (tg_op = 'INSERT' or new.assignee_id is distinct from old.assignee_id) then
    if tg_op = 'UPDATE' then
      perform private.record_activity(new.organization_id, 'task.assigned', format('Task "%s" was reassigned', new.title),
        new.project_id, new.id, jsonb_build_object('assignee_id', old.assignee_id), jsonb_build_object('assignee_id', new.assignee_id));
    end if;
    perform private.notify(new.assignee_id, 'task_assigned', format('You were assigned "%s"', new.title), null,
      new.project_id, new.id, private.task_action_url(new.project_id, new.id));
  elsif tg_op = 'UPDATE' and new.assignee_id is null and old.assignee_id is not null then
    perform private.record_activity(new.organization_id, 'task.assigned', format('Task "%s" was unassigned', new.title),
      new.project_id, new.id, jsonb_build_object('assignee_id', old.assignee_id), jsonb_build_object('assignee_id', null));
  end if;
  return null;
end;
$$;

create trigger tasks_record_activity after insert or update of status, assignee_id, deleted_at on public.tasks
  for each row execute function private.task_activity();

-- comments: the activity, the comment.created event, and the watchers' notification (those the comment mentions are
-- told by the mention instead). Named to fire after comments_sync_mentions (triggers fire in name order).
create function private.comment_created() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  task record;
  watcher uuid;
  url text;
begin
  select t.title into task from public.tasks t where t.id = new.task_id;
  url := private.task_action_url(new.project_id, new.task_id) || '#comment-' || new.id::text;
  perform private.record_activity(new.organization_id, 'comment.created', format('Comment on "%s"', task.title),
    new.project_id, new.task_id, null, null,
    jsonb_build_object('comment_id', new.id, 'parent_comment_id', new.parent_comment_id), new.user_id);
  perform private.emit_event(new.organization_id, 'comment.created',
    jsonb_build_object('comment_id', new.id, 'task_id', new.task_id, 'project_id', new.project_id,
                       'user_id', new.user_id, 'parent_comment_id', new.parent_comment_id),
    project_id => new.project_id);
  for watcher in select w.user_id from public.task_watchers w where w.task_id = new.task_id
                 and w.user_id is distinct from new.user_id
                 and not exists (select 1 from public.comment_mentions m where m.comment_id = new.id and m.user_id = w.user_id) loop
    perform private.notify(watcher, 'comment', format('New comment on "%s"', task.title), left(new.content, 280),
      new.project_id, new.task_id, url);
  end loop;
  return null;
end;
$$;

create trigger comments_watchers_notified after insert on public.comments
  for each row execute function private.comment_created();

-- A comment deleted or restored is an activity too (the content never goes into it).
create function private.comment_deleted_or_restored() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform private.record_activity(new.organization_id,
    case when new.deleted_at is null then 'comment.restored' else 'comment.deleted' end,
    case when new.deleted_at is null then 'A comment was restored' else 'A comment was deleted' end,
    new.project_id, new.task_id, null, null, jsonb_build_object('comment_id', new.id));
  return null;
end;
$$;

create trigger comments_record_deletion after update of deleted_at on public.comments
  for each row when (old.deleted_at is distinct from new.deleted_at) execute function private.comment_deleted_or_restored();

-- comment_mentions: the mentioned member is told (whether resolved from the content or added by the author).
create function private.mention_created() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  c record;
begin
  select cm.project_id, cm.task_id, cm.content, cm.user_id, t.title into c
  from public.comments cm join public.tasks t on t.id = cm.task_id where cm.id = new.comment_id;
  if c.user_id is distinct from new.user_id then
    perform private.notify(new.user_id, 'mention', format('You were mentioned on "%s"', c.title), left(c.content, 280),
      c.project_id, c.task_id, private.task_action_url(c.project_id, c.task_id) || '#comment-' || new.comment_id::text);
  end if;
  return null;
end;
$$;

create trigger comment_mentions_notify after insert on public.comment_mentions
  for each row execute function private.mention_created();

-- Connectors (44-connectors-webhook-deliveries.sql): a webhook being disabled, by its owner or by the dispatcher after
-- five dead deliveries (record_webhook_deliveries), is an activity of the organization. A trigger here rather than a
-- call there, since 44 is built before this file. project_id is read from the row as JSON so this works whether or not
-- webhooks.project_id exists yet.
create function private.webhook_disabled_activity() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  project uuid := (to_jsonb(new) ->> 'project_id')::uuid;
begin
  perform private.record_activity(new.organization_id, 'webhook.disabled',
    case when new.disabled_reason is not null then format('Webhook "%s" was disabled: %s', new.name, new.disabled_reason)
         else format('Webhook "%s" was disabled', new.name) end,
    project, null, jsonb_build_object('is_enabled', old.is_enabled), jsonb_build_object('is_enabled', new.is_enabled),
    jsonb_build_object('webhook_id', new.id, 'failure_count', new.failure_count, 'by_dispatcher', new.disabled_reason is not null));
  return null;
end;
$$;

create trigger webhooks_record_disabled_activity after update of is_enabled on public.webhooks
  for each row when (old.is_enabled and not new.is_enabled)
  execute function private.webhook_disabled_activity();

-- pg_cron (90-scheduled-jobs.sql): tasks due within 24 hours, not done and not deleted, notify their assignee and
-- watchers, once per task and due date (a moved due date notifies again).
create function private.notify_tasks_due_soon() returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  sent integer := 0;
  r record;
begin
  for r in
    select t.id, t.project_id, t.title, t.due_date, u.user_id
    from public.tasks t
    cross join lateral (select t.assignee_id as user_id union select w.user_id from public.task_watchers w where w.task_id = t.id) u
    where t.deleted_at is null and t.status <> 'done' and t.due_date is not null
      and t.due_date > pg_catalog.now() and t.due_date <= pg_catalog.now() + interval '24 hours' and u.user_id is not null
  loop
    if private.notify(r.user_id, 'task_due_soon', format('"%s" is due within 24 hours', r.title), null, r.project_id, r.id,
                      private.task_action_url(r.project_id, r.id),
                      'task_due_soon:' || r.id::text || ':' || to_char(r.due_date at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')) is not null then
      sent := sent + 1;
    end if;
  end loop;
  return sent;
end;
$$;
comment on function private.notify_tasks_due_soon() is 'pg_cron: notifies the assignee and watchers of each open task due within 24 hours, at most once per task and due date; returns how many notifications were written.';

-- A user's collaboration data for export_my_data() (36-privacy-health-export-erasure.sql): comments written,
-- reactions, watched tasks, notifications received, activities as actor. Erasure (deleting the account) deletes
-- their reactions, watches, mentions and notifications and keeps the organization's comments and activities with the
-- author and actor set to null.
create function private.work_collab_personal_data(uid uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'comments', coalesce((select jsonb_agg(jsonb_build_object('id', c.id, 'task_id', c.task_id, 'project_id', c.project_id,
        'parent_comment_id', c.parent_comment_id, 'content', c.content, 'created_at', c.created_at, 'edited_at', c.edited_at,
        'deleted_at', c.deleted_at) order by c.created_at, c.id)
      from public.comments c where c.user_id = uid), '[]'::jsonb),
    'comment_reactions', coalesce((select jsonb_agg(jsonb_build_object('comment_id', r.comment_id, 'emoji', r.emoji,
        'created_at', r.created_at) order by r.created_at, r.comment_id, r.emoji)
      from public.comment_reactions r where r.user_id = uid), '[]'::jsonb),
    'task_watches', coalesce((select jsonb_agg(jsonb_build_object('task_id', w.task_id, 'project_id', w.project_id,
        'created_at', w.created_at) order by w.created_at, w.task_id)
      from public.task_watchers w where w.user_id = uid), '[]'::jsonb),
    'notifications', coalesce((select jsonb_agg(jsonb_build_object('id', n.id, 'type', n.type, 'title', n.title,
        'content', n.content, 'related_project_id', n.related_project_id, 'related_task_id', n.related_task_id,
        'read_at', n.read_at, 'created_at', n.created_at) order by n.created_at, n.id)
      from public.notifications n where n.user_id = uid), '[]'::jsonb),
    'activities', coalesce((select jsonb_agg(jsonb_build_object('id', a.id, 'organization_id', a.organization_id,
        'project_id', a.project_id, 'task_id', a.task_id, 'type', a.type, 'description', a.description,
        'changes', a.changes, 'created_at', a.created_at) order by a.created_at, a.id)
      from public.activities a where a.user_id = uid), '[]'::jsonb))
$$;
comment on function private.work_collab_personal_data(uuid) is 'A user''s collaboration data for their export: comments, reactions, watched tasks, notifications, activities as actor.';

-- Realtime: apps follow tasks, comments and their own notifications live, under RLS.
alter publication supabase_realtime add table public.tasks, public.comments, public.notifications;
