-- Personal data: export_my_data() holds a user's comments, reactions, watched tasks, notifications and activities as
-- actor; deleting the account deletes their notifications, reactions, watches and mentions and keeps the
-- organization's comments and activities with the author and actor set to null.
begin;
select plan(8);

select tests.create_user(h) from unnest(array['we_owner', 'we_worker', 'we_other']) h;
select tests.create_organization('we_owner', 'test-we-personal');
select tests.add_member(tests.org_id('test-we-personal'), h, 'member') from unnest(array['we_worker', 'we_other']) h;
create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to authenticated;

select tests.authenticate_as('we_owner');
with p as (insert into public.projects (organization_id, title) values (tests.org_id('test-we-personal'), 'Launch') returning id)
insert into ids select 'project', id from p;
insert into public.project_members (project_id, user_id, role)
  values ((select id from ids where name = 'project'), tests.user_id('we_worker'), 'editor');
with t as (insert into public.tasks (project_id, title, assignee_id)
  values ((select id from ids where name = 'project'), 'Write the announcement', tests.user_id('we_worker')) returning id)
insert into ids select 'task', id from t;
with c as (insert into public.comments (task_id, content) values ((select id from ids where name = 'task'), 'Draft by Friday?') returning id)
insert into ids select 'owner_comment', id from c;

select tests.authenticate_as('we_worker');
insert into public.task_watchers (task_id) values ((select id from ids where name = 'task'));
with c as (insert into public.comments (task_id, content) values ((select id from ids where name = 'task'),
  'Yes. @we_owner@example.test see the outline') returning id)
insert into ids select 'comment', id from c;
insert into public.comment_reactions (comment_id, emoji) values ((select id from ids where name = 'owner_comment'), '👍');
update public.tasks set status = 'in_progress' where id = (select id from ids where name = 'task');

select results_eq(
  $$select jsonb_array_length(d -> 'comments'), d -> 'comments' -> 0 ->> 'content', d -> 'comment_reactions' -> 0 ->> 'emoji',
           jsonb_array_length(d -> 'task_watches'), d -> 'notifications' -> 0 ->> 'type',
           (select array_agg(a ->> 'type' order by a ->> 'type') from jsonb_array_elements(d -> 'activities') a)
    from (select public.export_my_data() d) x$$,
  $$values (1, 'Yes. @we_owner@example.test see the outline'::text, '👍'::text, 1, 'task_assigned'::text,
            array['comment.created', 'task.status_changed'])$$,
  'the worker''s export holds their comment, reaction, watch, notification and the activities they did');
select tests.authenticate_as('we_other');
select results_eq($$select jsonb_array_length(d -> 'comments') + jsonb_array_length(d -> 'comment_reactions')
                         + jsonb_array_length(d -> 'task_watches') + jsonb_array_length(d -> 'notifications')
                         + jsonb_array_length(d -> 'activities')
                    from (select public.export_my_data() d) x$$,
  $$values (0)$$, 'a member with no collaboration data exports none of the others''');

select tests.clear_authentication();
select is((select count(*)::int from public.notifications where user_id = tests.user_id('we_worker')), 1,
          'before erasure the worker has a notification');
delete from auth.users where id = tests.user_id('we_worker');
select results_eq($$select user_id, content from public.comments where id = (select id from ids where name = 'comment')$$,
  $$values (null::uuid, 'Yes. @we_owner@example.test see the outline'::text)$$,
  'erasure keeps the organization''s comment with the author set to null');
select is_empty($$select 1 from public.notifications n where n.user_id not in (select id from auth.users)$$,
  'and deletes their notifications');
select is_empty($$select 1 from public.comment_reactions r where r.user_id not in (select id from auth.users)
                  union all select 1 from public.task_watchers w where w.user_id not in (select id from auth.users)
                  union all select 1 from public.comment_mentions m where m.user_id not in (select id from auth.users)$$,
  'and their reactions, watches and mentions');
select is((select count(*)::int from public.activities where task_id = (select id from ids where name = 'task') and user_id is null
           and type in ('comment.created', 'task.status_changed')), 2,
          'their activities stay in the organization''s feed without their id');
select is((select count(*)::int from public.notifications where user_id = tests.user_id('we_owner') and type = 'mention'), 1,
          'the owner keeps the mention they were sent');

select * from finish();
rollback;
