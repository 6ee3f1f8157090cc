-- Notifications: the fan-out (assignment, mention, a comment or status change on a watched task, due within 24 hours;
-- never the actor, never someone who cannot read the project), derived is_read, mark_notifications_read(), the actor
-- matrix, and the realtime publication.
begin;
select plan(42);

create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to anon, authenticated, service_role;
create function pg_temp.id(key text) returns uuid language sql stable as $$ select id from ids where name = key $$;
grant execute on function pg_temp.id(text) to anon, authenticated, service_role;
-- How many notifications of a type a user has about the test task (read as the table owner).
create function pg_temp.n(handle text, kind text, task text default 'task') returns int language sql stable security definer as $$
  select count(*)::int from public.notifications where user_id = tests.user_id(handle) and type = kind and related_task_id = pg_temp.id(task) $$;
grant execute on function pg_temp.n(text, text, text) to anon, authenticated, service_role;

select tests.create_user(h) from unnest(array['wn_owner', 'wn_editor', 'wn_commenter', 'wn_viewer', 'wn_outsider', 'wn_stranger']) h;
select tests.create_organization('wn_owner', 'test-wn');
select tests.create_organization('wn_stranger', 'test-wn-other');
select tests.add_member(tests.org_id('test-wn'), h, 'member') from unnest(array['wn_editor', 'wn_commenter', 'wn_outsider']) h;
select tests.add_member(tests.org_id('test-wn'), 'wn_viewer', 'viewer');

select tests.authenticate_as('wn_owner');
with p as (insert into public.projects (organization_id, title, visibility) values (tests.org_id('test-wn'), 'Private', 'private') returning id)
insert into ids select 'private', id from p;
insert into public.project_members (project_id, user_id, role) values
  (pg_temp.id('private'), tests.user_id('wn_editor'), 'editor'),
  (pg_temp.id('private'), tests.user_id('wn_commenter'), 'commenter'),
  (pg_temp.id('private'), tests.user_id('wn_viewer'), 'viewer');

-- Assignment.
with t as (insert into public.tasks (project_id, title, assignee_id) values (pg_temp.id('private'), 'Ship it', tests.user_id('wn_editor')) returning id)
insert into ids select 'task', id from t;
with t as (insert into public.tasks (project_id, title, assignee_id) values (pg_temp.id('private'), 'Mine', tests.user_id('wn_owner')) returning id)
insert into ids select 'own', id from t;
select is(pg_temp.n('wn_editor', 'task_assigned'), 1, 'the assignee of a new task is notified');
select is(pg_temp.n('wn_owner', 'task_assigned', 'own'), 0, 'assigning oneself notifies nobody (never the actor)');
update public.tasks set assignee_id = tests.user_id('wn_commenter') where id = pg_temp.id('task');
select is(pg_temp.n('wn_commenter', 'task_assigned'), 1, 'a new assignee is notified on reassignment');
select tests.clear_authentication();
select is((select action_url from public.notifications where user_id = tests.user_id('wn_commenter') and type = 'task_assigned'),
          '/projects/' || pg_temp.id('private') || '/tasks/' || pg_temp.id('task'), 'the notification links to the task');

-- Status changes reach the task's watchers, except whoever made the change.
select tests.authenticate_as('wn_owner');
insert into public.task_watchers (task_id, user_id) values
  (pg_temp.id('task'), tests.user_id('wn_editor')), (pg_temp.id('task'), tests.user_id('wn_viewer')), (pg_temp.id('task'), tests.user_id('wn_owner'));
select tests.authenticate_as('wn_editor');
update public.tasks set status = 'in_progress' where id = pg_temp.id('task');
select is(pg_temp.n('wn_viewer', 'status_changed'), 1, 'a watcher is told of a status change');
select is(pg_temp.n('wn_owner', 'status_changed'), 1, 'so is every other watcher');
select is(pg_temp.n('wn_editor', 'status_changed'), 0, 'the watcher who changed the status is not');
select is(pg_temp.n('wn_commenter', 'status_changed'), 0, 'a member who does not watch the task is not');
update public.tasks set title = 'Ship it now' where id = pg_temp.id('task');
select tests.clear_authentication();
select is((select count(*)::int from public.notifications where related_task_id = pg_temp.id('task') and type = 'status_changed'), 2,
          'a change that is not a status change notifies no watcher');

-- Comments reach the watchers; a watcher the comment mentions gets the mention instead; the author gets neither.
select tests.authenticate_as('wn_commenter');
select lives_ok($$with c as (insert into public.comments (task_id, content) values (pg_temp.id('task'), 'Done soon, @wn_viewer@example.test')
                  returning id) insert into ids select 'comment', id from c$$, 'the assignee comments and mentions the viewer');
select is(pg_temp.n('wn_viewer', 'mention'), 1, 'the mentioned member is notified of the mention');
select is(pg_temp.n('wn_viewer', 'comment'), 0, 'and not a second time for the comment');
select is(pg_temp.n('wn_editor', 'comment'), 1, 'a watcher is notified of the comment');
select is(pg_temp.n('wn_commenter', 'comment') + pg_temp.n('wn_commenter', 'mention'), 0, 'the author is notified of nothing');
select lives_ok(format($f$insert into public.comment_mentions (comment_id, user_id) values (pg_temp.id('comment'), '%s')$f$, tests.user_id('wn_editor')),
                'the author mentions the editor explicitly');
select is(pg_temp.n('wn_editor', 'mention'), 1, 'an explicit mention notifies too');

-- Nobody is told about a project they cannot read; private.notify is not for clients.
select tests.clear_authentication();
select is(private.notify(tests.user_id('wn_outsider'), 'mention', 'x', null, pg_temp.id('private')), null,
          'notify() writes nothing for a member who cannot read the private project');
select is(private.notify(tests.user_id('wn_stranger'), 'mention', 'x', null, pg_temp.id('private')), null, 'nor for a stranger');
select throws_ok($$select private.notify(tests.user_id('wn_viewer'), 'gossip', 'x', null, pg_temp.id('private'))$$,
                 '23514', null, 'a notification type must be known (notifications_type_known)');
select throws_ok($$select private.notify(tests.user_id('wn_viewer'), 'mention', 'x', null, pg_temp.id('private'), null, 'javascript:alert(1)')$$,
                 '23514', null, 'an action URL is an app path or an https URL');

-- Reading and marking: only one's own; is_read is derived from read_at.
select tests.authenticate_as('wn_viewer');
select is((select count(*)::int from public.notifications where user_id <> tests.user_id('wn_viewer')), 0, 'a user reads only their own notifications');
select is((select bool_or(is_read) from public.notifications), false, 'new notifications are unread');
insert into ids select 'viewer_mention', id from public.notifications where type = 'mention';
select is(public.mark_notifications_read(array[pg_temp.id('viewer_mention')]), 1, 'marking one notification read changes one');
select results_eq($$select is_read, read_at is not null from public.notifications where id = pg_temp.id('viewer_mention')$$,
                  $$values (true, true)$$, 'is_read follows read_at');
select throws_ok($$update public.notifications set read_at = null$$, '42501', null, 'read_at is not written directly');
select throws_ok($$insert into public.notifications (user_id, organization_id, type, title) values (auth.uid(), tests.org_id('test-wn'), 'mention', 'fake')$$,
                 '42501', null, 'a client cannot write a notification');
select throws_ok($$select private.notify(auth.uid(), 'mention', 'x', null, pg_temp.id('private'))$$, '42501', null, 'nor call notify()');
select tests.clear_authentication();
insert into ids select 'editor_comment', id from public.notifications where user_id = tests.user_id('wn_editor') and type = 'comment';
select tests.authenticate_as('wn_viewer');
select is(public.mark_notifications_read(array[pg_temp.id('editor_comment')]), 0, 'someone else''s notification is not marked');
select is(public.mark_notifications_read(), 1, 'with no ids, every unread notification of the caller is marked');
select is(tests.rows_affected($$delete from public.notifications where id = pg_temp.id('editor_comment')$$), 0::bigint, 'nor deleted');
select is(tests.rows_affected($$delete from public.notifications where id = pg_temp.id('viewer_mention')$$), 1::bigint, 'a user deletes their own');
select tests.clear_authentication();
select is((select read_at from public.notifications where id = pg_temp.id('editor_comment')), null, 'the editor''s notification is still unread');
select tests.authenticate_as('wn_stranger');
select is((select count(*)::int from public.notifications), 0, 'a stranger reads no notification');
select tests.authenticate_as_anon();
select throws_ok($$select count(*) from public.notifications$$, '42501', null, 'anon cannot read notifications');
select throws_ok($$select public.mark_notifications_read()$$, '42501', null, 'nor mark any read');
select tests.authenticate_as_service_role();
select is((select count(*)::int from public.notifications where related_task_id = pg_temp.id('task')), 7, 'service_role reads every notification');

-- Due within 24 hours (the pg_cron sweep): the assignee and the watchers, once per task and due date.
select tests.clear_authentication();
update public.tasks set due_date = now() + interval '3 hours' where id = pg_temp.id('task');
with t as (insert into public.tasks (project_id, title, assignee_id, due_date) values (pg_temp.id('private'), 'Later', tests.user_id('wn_editor'), now() + interval '3 days') returning id)
insert into ids select 'later', id from t;
with t as (insert into public.tasks (project_id, title, assignee_id, due_date, status) values (pg_temp.id('private'), 'Finished', tests.user_id('wn_editor'), now() + interval '1 hour', 'done') returning id)
insert into ids select 'finished', id from t;
select is(private.notify_tasks_due_soon(), 4, 'the sweep tells the assignee and the three watchers of the one open task due within 24 hours');
select is(private.notify_tasks_due_soon(), 0, 'running it again writes nothing new');
update public.tasks set due_date = now() + interval '5 hours' where id = pg_temp.id('task');
select is(private.notify_tasks_due_soon(), 4, 'a moved due date is notified again to each of them');
select is(pg_temp.n('wn_commenter', 'task_due_soon'), 2, 'a moved due date is notified again, once');

select results_eq($$select schedule::text collate "default", command::text collate "default" from cron.job where jobname = 'work-due-soon-notifications'$$,
  $$values ('*/15 * * * *'::text, 'select private.notify_tasks_due_soon()'::text)$$, 'pg_cron runs the due-soon sweep every 15 minutes');

-- Realtime.
select results_eq($$select tablename::text collate "default" from pg_catalog.pg_publication_tables where pubname = 'supabase_realtime' and schemaname = 'public'
                  and tablename in ('tasks', 'comments', 'notifications') order by tablename$$,
  $$values ('comments'::text), ('notifications'), ('tasks')$$, 'tasks, comments and notifications are published to realtime');

select * from finish();
rollback;
