-- Personal data: export_my_data() holds the executions a user started and the approval decisions they made, and
-- nothing of anyone else's; deleting the user keeps the organization's record with the user's id removed.
begin;
select plan(6);

select tests.create_user(h) from unnest(array['u_owner', 'u_starter', 'u_approver', 'u_other']) h;
select tests.create_organization('u_owner', 'test-wf-personal');
select tests.add_member(tests.org_id('test-wf-personal'), h, 'member') from unnest(array['u_starter', 'u_approver', 'u_other']) h;
create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to authenticated;
with w as (insert into public.workflows (organization_id, name, definition) values (tests.org_id('test-wf-personal'), 'Personal',
  jsonb_build_object('nodes', jsonb_build_array(jsonb_build_object('id', 'sign', 'type', 'approval', 'name', 'Sign',
    'config', jsonb_build_object('approval_type', 'single', 'approvers', jsonb_build_object('user_ids', jsonb_build_array(tests.user_id('u_approver'))))),
    jsonb_build_object('id', 'after', 'type', 'task', 'name', 'After', 'config', '{"action": "emit_event"}'::jsonb)),
  'edges', '[{"from": "sign", "to": "after"}]'::jsonb)) returning id)
insert into ids select 'workflow', id from w;

select tests.authenticate_as('u_starter');
insert into ids values ('mine', public.start_workflow((select id from ids where name = 'workflow'), '{"note": "mine"}'));
select tests.authenticate_as('u_other');
insert into ids values ('theirs', public.start_workflow((select id from ids where name = 'workflow'), '{"note": "theirs"}'));
select tests.authenticate_as('u_approver');
select public.decide_approval((select id from public.approval_requests where execution_id = (select id from ids where name = 'mine')), 'approve', 'ok');

select tests.authenticate_as('u_starter');
select results_eq($$select jsonb_array_length(d -> 'workflow_executions'), d -> 'workflow_executions' -> 0 -> 'input' ->> 'note', jsonb_array_length(d -> 'approval_decisions')
                  from (select public.export_my_data() d) x$$,
  $$values (1, 'mine'::text, 0)$$, 'the starter''s export holds the execution they started, not the other one');
select tests.authenticate_as('u_approver');
select results_eq($$select jsonb_array_length(d -> 'workflow_executions'), d -> 'approval_decisions' -> 0 ->> 'comment'
                  from (select public.export_my_data() d) x$$,
  $$values (0, 'ok'::text)$$, 'the approver''s export holds their decision');
select ok((select not (public.export_my_data()::text like '%' || tests.user_id('u_other')::text || '%')), 'no export holds another user''s id');

select tests.clear_authentication();
delete from auth.users where id = tests.user_id('u_approver');
select results_eq($$select approver_id, decision, comment from public.approval_decisions
                  where approval_request_id = (select id from public.approval_requests where execution_id = (select id from ids where name = 'mine'))$$,
  $$values (null::uuid, 'approve'::text, 'ok'::text)$$, 'deleting the approver keeps their decision without their id');
select is_empty($$select 1 from public.approval_request_approvers where user_id not in (select id from auth.users)$$, 'and removes them as an approver');
delete from auth.users where id = tests.user_id('u_starter');
select is((select triggered_by from public.workflow_executions where id = (select id from ids where name = 'mine')), null::uuid,
  'deleting the starter keeps the execution without their id');

select * from finish();
rollback;
