-- Activities: written only through private.record_activity() (task created, status and assignment changes, comments,
-- a webhook disabled by its owner or the dispatcher), changes limited to the changed columns and redacted, readable
-- with the project or, without one, by the actor and audit.read holders; comment.created reaches webhooks.
begin;
select plan(31);

create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to anon, authenticated, service_role;
create function pg_temp.id(key text) returns uuid language sql stable as $$ select id from ids where name = key $$;
grant execute on function pg_temp.id(text) to anon, authenticated, service_role;

select tests.create_user(h) from unnest(array['wa_owner', 'wa_editor', 'wa_viewer', 'wa_outsider', 'wa_stranger']) h;
select tests.create_organization('wa_owner', 'test-wa');
select tests.create_organization('wa_stranger', 'test-wa-other');
select tests.add_member(tests.org_id('test-wa'), h, 'member') from unnest(array['wa_editor', 'wa_outsider']) h;
select tests.add_member(tests.org_id('test-wa'), 'wa_viewer', 'viewer');
-- Deliveries queued by anything else wait until after this test, which rolls back.
update public.webhook_deliveries set next_attempt_at = now() + interval '1 day' where status in ('pending', 'failed');

select tests.authenticate_as('wa_owner');
with p as (insert into public.projects (organization_id, title, visibility) values (tests.org_id('test-wa'), 'Private', 'private') returning id)
insert into ids select 'private', id from p;
insert into public.project_members (project_id, user_id, role) values
  (pg_temp.id('private'), tests.user_id('wa_editor'), 'editor'), (pg_temp.id('private'), tests.user_id('wa_viewer'), 'viewer');
insert into ids select 'hook', public.create_webhook(tests.org_id('test-wa'), 'Comments', 'https://hooks.example.com/in',
  array['comment.created'], 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');

select tests.authenticate_as('wa_editor');
with t as (insert into public.tasks (project_id, title) values (pg_temp.id('private'), 'Ship it') returning id)
insert into ids select 'task', id from t;
select results_eq($$select type, user_id, project_id from public.activities where task_id = pg_temp.id('task')$$,
  $$values ('task.created'::text, tests.user_id('wa_editor'), pg_temp.id('private'))$$, 'creating a task records task.created with its actor and project');
update public.tasks set status = 'blocked', blocked_reason = 'Waiting for legal' where id = pg_temp.id('task');
select is((select changes from public.activities where task_id = pg_temp.id('task') and type = 'task.status_changed'),
          '{"status": {"before": "todo", "after": "blocked"}, "blocked_reason": {"before": null, "after": "Waiting for legal"}}'::jsonb,
          'a status change records before and after of the changed columns only');
update public.tasks set assignee_id = tests.user_id('wa_viewer') where id = pg_temp.id('task');
select is((select changes from public.activities where task_id = pg_temp.id('task') and type = 'task.assigned'),
          jsonb_build_object('assignee_id', jsonb_build_object('before', null, 'after', tests.user_id('wa_viewer'))),
          'an assignment records the assignee before and after');
update public.tasks set title = 'Ship it today' where id = pg_temp.id('task');
select is((select count(*)::int from public.activities where task_id = pg_temp.id('task')), 3,
          'a change of another column records no status or assignment activity');
with c as (insert into public.comments (task_id, content) values (pg_temp.id('task'), 'Legal says next week') returning id)
insert into ids select 'comment', id from c;
select results_eq($$select type, metadata ->> 'comment_id' from public.activities where task_id = pg_temp.id('task') and type like 'comment.%'$$,
  $$values ('comment.created'::text, pg_temp.id('comment')::text)$$, 'a comment records comment.created (without its content)');
update public.comments set deleted_at = now() where id = pg_temp.id('comment');
select is((select count(*)::int from public.activities where task_id = pg_temp.id('task') and type = 'comment.deleted'), 1,
          'deleting a comment is recorded too');

-- comment.created is an event: the subscribed webhook gets a delivery carrying the project.
select tests.clear_authentication();
select results_eq($$select event_type, project_id, payload ->> 'comment_id' from public.webhook_deliveries where webhook_id = pg_temp.id('hook')$$,
  $$values ('comment.created'::text, pg_temp.id('private'), pg_temp.id('comment')::text)$$,
  'comment.created is emitted with the project id to the subscribed webhook');
select ok(exists (select 1 from public.webhook_event_types where key = 'comment.created'), 'comment.created is a known event type');

-- record_activity(): only the changed columns, text redacted, description and metadata too; bad input refused.
select lives_ok($$insert into ids select 'manual', private.record_activity(tests.org_id('test-wa'), 'project.updated',
    'Contact changed to ann@example.com', pg_temp.id('private'), null,
    '{"title": "Same", "description": "call ann@example.com", "estimated_hours": 10, "tags": ["x"]}',
    '{"title": "Same", "description": "call bob@example.com or 203.0.113.7", "estimated_hours": 12, "tags": ["x"]}',
    '{"note": "by ann@example.com"}')$$, 'another domain records an activity through record_activity()');
select results_eq($$select changes, description, metadata from public.activities where id = pg_temp.id('manual')$$,
  $$values ('{"description": {"before": "call [EMAIL]", "after": "call [EMAIL] or [IP]"}, "estimated_hours": {"before": 10, "after": 12}}'::jsonb,
            'Contact changed to [EMAIL]'::text, '{"note": "by [EMAIL]"}'::jsonb)$$,
  'changes hold only the changed columns, and text is redacted everywhere');
select throws_ok($$select private.record_activity(tests.org_id('test-wa'), 'Not A Type', 'x')$$, '23514', null,
                 'an activity type is a dotted lower-case name (activities_type_format)');
select throws_ok($$select private.record_activity(null, 'task.created', 'x')$$, '22023', null, 'an activity belongs to an organization');
select throws_ok($$select private.record_activity(tests.org_id('test-wa'), 'task.created', 'x', null, null, '[1]')$$, '22023', null,
                 'before and after are objects of column values');

-- An activity without a project: the actor and audit.read holders.
select lives_ok($$insert into ids select 'orgwide', private.record_activity(tests.org_id('test-wa'), 'organization.settings_changed',
    'Changed the billing e-mail', null, null, null, null, '{}', tests.user_id('wa_editor'))$$, 'an organization-wide activity is recorded');

-- Webhooks disabled: by their owner, and by the dispatcher after five dead deliveries (record_webhook_deliveries).
select tests.authenticate_as('wa_owner');
insert into ids select 'hook2', public.create_webhook(tests.org_id('test-wa'), 'Old', 'https://old.example.com/in',
  array['comment.created'], 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
update public.webhooks set is_enabled = false where id = pg_temp.id('hook2');
select results_eq($$select user_id, project_id, description, changes from public.activities where type = 'webhook.disabled' and metadata ->> 'webhook_id' = pg_temp.id('hook2')::text$$,
  $$values (tests.user_id('wa_owner'), null::uuid, 'Webhook "Old" was disabled'::text, '{"is_enabled": {"before": true, "after": false}}'::jsonb)$$,
  'disabling a webhook records webhook.disabled with its actor');
select tests.clear_authentication();
update public.webhooks set failure_count = 4 where id = pg_temp.id('hook');
update public.webhook_deliveries set status = 'delivering', attempt = 8, lease_id = '00000000-0000-4000-8000-0000000000aa', locked_until = now() + interval '1 minute'
where webhook_id = pg_temp.id('hook');
select tests.authenticate_as_service_role();
select is(public.record_webhook_deliveries(jsonb_build_array(jsonb_build_object('delivery_id',
            (select id from public.webhook_deliveries where webhook_id = pg_temp.id('hook')),
            'lease_id', '00000000-0000-4000-8000-0000000000aa', 'status_code', 500))), 1, 'the dispatcher records a fifth dead delivery');
select tests.clear_authentication();
select results_eq($$select w.is_enabled, a.user_id, a.description like 'Webhook "Comments" was disabled: disabled after 5 consecutive%', (a.metadata ->> 'by_dispatcher')::boolean
                    from public.webhooks w join public.activities a on a.metadata ->> 'webhook_id' = w.id::text and a.type = 'webhook.disabled'
                    where w.id = pg_temp.id('hook')$$,
  $$values (false, null::uuid, true, true)$$, 'the dispatcher disabling a webhook records webhook.disabled with the reason and no actor');

-- Who reads what.
select tests.authenticate_as('wa_viewer');
select is((select count(*)::int from public.activities where project_id = pg_temp.id('private')), 6, 'a project viewer reads the project''s activities');
select is((select count(*)::int from public.activities where project_id is null), 0, 'but not organization-wide ones they did not do');
select tests.authenticate_as('wa_editor');
select is((select count(*)::int from public.activities where id = pg_temp.id('orgwide')), 1, 'the actor reads their organization-wide activity');
select tests.authenticate_as('wa_owner');
select is((select count(*)::int from public.activities where project_id is null), 3, 'an audit.read holder reads every organization-wide activity');
select tests.authenticate_as('wa_outsider');
select is((select count(*)::int from public.activities), 0, 'an organization member outside the private project reads none of it');
select tests.authenticate_as('wa_stranger');
select is((select count(*)::int from public.activities where organization_id = tests.org_id('test-wa')), 0, 'a stranger reads none');
select throws_ok($$insert into public.activities (organization_id, type, description) values (tests.org_id('test-wa-other'), 'x.y', 'forged')$$,
                 '42501', null, 'a client cannot write an activity');
select throws_ok($$select private.record_activity(tests.org_id('test-wa-other'), 'x.y', 'forged')$$, '42501', null, 'nor call record_activity()');
select tests.authenticate_as('wa_owner');
select throws_ok($$update public.activities set description = 'rewritten'$$, '42501', null, 'activities are never changed');
select throws_ok($$delete from public.activities$$, '42501', null, 'nor deleted by clients');
select tests.authenticate_as_anon();
select throws_ok($$select count(*) from public.activities$$, '42501', null, 'anon cannot read activities');
select tests.authenticate_as_service_role();
select is((select count(*)::int from public.activities where organization_id = tests.org_id('test-wa')), 9, 'service_role reads every activity');

-- Soft delete and restore are recorded once for the task deleted, not for each subtask that goes with it; the
-- history stays readable.
select tests.authenticate_as('wa_owner');
insert into public.tasks (project_id, parent_task_id, title) values (pg_temp.id('private'), pg_temp.id('task'), 'Subtask');
update public.tasks set deleted_at = now() where id = pg_temp.id('task');
update public.tasks set deleted_at = null where id = pg_temp.id('task');
select results_eq($$select type, count(*)::int from public.activities where project_id = pg_temp.id('private') and type in ('task.deleted', 'task.restored')
                    group by type order by type$$,
  $$values ('task.deleted'::text, 1), ('task.restored', 1)$$, 'deleting and restoring a task with a subtask records one activity each');
select ok((select count(*) from public.activities where task_id = pg_temp.id('task') and type = 'task.created') = 1,
          'a task''s history stays in the feed');

select * from finish();
rollback;
