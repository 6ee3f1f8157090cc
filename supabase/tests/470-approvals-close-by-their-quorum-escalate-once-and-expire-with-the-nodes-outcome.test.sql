-- Approvals: who the approvers are, the quorum matrix (every type with decision sequences, majority ties), the
-- self-approval rule, errors by SQLSTATE, form data against the form schema, what closing does to the execution,
-- escalation (once) and expiry with each on_timeout.
begin;
select plan(60);

select tests.create_user(h) from unnest(array['p_owner', 'p_a1', 'p_a2', 'p_a3', 'p_a4', 'p_a5', 'p_viewer', 'p_stranger']) h;
select tests.create_organization('p_owner', 'test-approvals');
select tests.add_member(tests.org_id('test-approvals'), h, 'member') from unnest(array['p_a1', 'p_a2', 'p_a3', 'p_a4']) h;
select tests.add_member(tests.org_id('test-approvals'), 'p_a5', 'admin');
select tests.add_member(tests.org_id('test-approvals'), 'p_viewer', 'viewer');

create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to authenticated, service_role;

-- A workflow "sign -> after" whose approval node has the given config; started by `starter` (null: by the system).
create function pg_temp.request(config jsonb, starter text default null) returns uuid language plpgsql as $$
declare
  workflow uuid;
  execution uuid;
begin
  insert into public.workflows (organization_id, name, definition)
  values (tests.org_id('test-approvals'), 'Approval probe', jsonb_build_object(
    'nodes', jsonb_build_array(
      jsonb_build_object('id', 'sign', 'type', 'approval', 'name', 'Sign off', 'config', config),
      jsonb_build_object('id', 'after', 'type', 'task', 'name', 'After', 'config', '{"action": "emit_event"}'::jsonb)),
    'edges', '[{"from": "sign", "to": "after"}]'::jsonb))
  returning id into workflow;
  if starter is not null then
    perform tests.authenticate_as(starter);
  end if;
  execution := public.start_workflow(workflow, '{}');
  perform tests.clear_authentication();
  return (select a.id from public.approval_requests a where a.execution_id = execution);
end;
$$;
-- Approvers a1..aN by user id.
create function pg_temp.approvers(n integer) returns jsonb language sql as $$
  select jsonb_build_object('user_ids', jsonb_agg(tests.user_id('p_a' || i))) from generate_series(1, n) i
$$;
-- Decides as each approver in turn (a1, a2, ...; A approve, R reject) and lists the request's status after each vote.
create function pg_temp.votes(request uuid, decisions text) returns text language plpgsql as $$
declare
  i integer;
  trail text[] := array[]::text[];
begin
  for i in 1..length(decisions) loop
    perform tests.authenticate_as('p_a' || i);
    trail := trail || (public.decide_approval(request, case substr(decisions, i, 1) when 'A' then 'approve' else 'reject' end)).status;
    perform tests.clear_authentication();
  end loop;
  return array_to_string(trail, ',');
end;
$$;
create function pg_temp.matrix(approval_type text, required integer, n integer, decisions text) returns text language sql as $$
  select pg_temp.votes(pg_temp.request(jsonb_build_object('approval_type', approval_type, 'approvers', pg_temp.approvers(n))
    || case when required is null then '{}'::jsonb else jsonb_build_object('required_approvals', required) end), decisions)
$$;

-- Approvers are resolved when the request opens: user ids, a role key, a permission; only members with approvals.decide.
insert into ids values ('resolved', pg_temp.request(jsonb_build_object('approval_type', 'single',
  'approvers', jsonb_build_object('user_ids', jsonb_build_array(tests.user_id('p_a1'), tests.user_id('p_viewer'), tests.user_id('p_stranger')), 'role', 'admin'))));
select results_eq($$select u.handle, a.source from public.approval_request_approvers a join tests.users u on u.id = a.user_id
                  where a.approval_request_id = (select id from ids where name = 'resolved') order by u.handle$$,
  $$values ('p_a1'::text, 'user_ids'::text), ('p_a5', 'role')$$,
  'user ids and a role key resolve to members holding approvals.decide (not a viewer, not a stranger)');
select results_eq($$select a.status, e.status::text, r.status::text from public.approval_requests a join public.workflow_executions e on e.id = a.execution_id
                  join public.workflow_runs r on r.id = a.workflow_run_id where a.id = (select id from ids where name = 'resolved')$$,
  $$values ('pending'::text, 'waiting'::text, 'waiting'::text)$$, 'an approval node opens its request at once and the execution waits');
insert into ids values ('by-permission', pg_temp.request('{"approval_type": "single", "approvers": {"permission": "members.manage"}}'));
select results_eq($$select u.handle, a.source from public.approval_request_approvers a join tests.users u on u.id = a.user_id
                  where a.approval_request_id = (select id from ids where name = 'by-permission') order by u.handle$$,
  $$values ('p_a5'::text, 'permission'::text), ('p_owner', 'permission')$$, 'a permission resolves to the members whose role grants it');

-- The quorum matrix: the request's status after each vote.
select is(pg_temp.matrix('single', null, 3, 'A'), 'approved', 'single: the first approval approves');
select is(pg_temp.matrix('single', null, 3, 'R'), 'rejected', 'single: the first rejection rejects');
select is(pg_temp.matrix('multiple', 2, 3, 'AA'), 'pending,approved', 'multiple (2 of 3): approved at the second approval');
select is(pg_temp.matrix('multiple', 2, 3, 'ARA'), 'pending,pending,approved', 'multiple (2 of 3): a rejection in between still leaves 2 reachable');
select is(pg_temp.matrix('multiple', 2, 3, 'RR'), 'pending,rejected', 'multiple (2 of 3): rejected once 2 approvals are out of reach');
select is(pg_temp.matrix('multiple', 2, 3, 'AR'), 'pending,pending', 'multiple (2 of 3): one of each leaves it open');
select is(pg_temp.matrix('multiple', 3, 4, 'AARR'), 'pending,pending,pending,rejected', 'multiple (3 of 4): the second rejection makes 3 unreachable');
select is(pg_temp.matrix('unanimous', null, 3, 'AAA'), 'pending,pending,approved', 'unanimous: approved when every approver approves');
select is(pg_temp.matrix('unanimous', null, 3, 'AR'), 'pending,rejected', 'unanimous: any rejection rejects');
select is(pg_temp.matrix('unanimous', null, 3, 'R'), 'rejected', 'unanimous: even the first one');
select is(pg_temp.matrix('majority', null, 3, 'AA'), 'pending,approved', 'majority of 3: two approvals approve');
select is(pg_temp.matrix('majority', null, 3, 'RR'), 'pending,rejected', 'majority of 3: two rejections reject');
select is(pg_temp.matrix('majority', null, 3, 'ARA'), 'pending,pending,approved', 'majority of 3: 2 to 1 approves');
select is(pg_temp.matrix('majority', null, 3, 'ARR'), 'pending,pending,rejected', 'majority of 3: 1 to 2 rejects');
select is(pg_temp.matrix('majority', null, 4, 'AARR'), 'pending,pending,pending,rejected', 'majority of 4: a 2-2 tie rejects (half is not more than half)');
select is(pg_temp.matrix('majority', null, 4, 'ARR'), 'pending,pending,rejected', 'majority of 4: rejected as soon as more than half cannot be reached');
select is(pg_temp.matrix('majority', null, 4, 'RAAA'), 'pending,pending,pending,approved', 'majority of 4: three approvals win after a rejection');
select is(pg_temp.matrix('majority', null, 2, 'AR'), 'pending,rejected', 'majority of 2: 1-1 rejects');
select is(pg_temp.matrix('majority', null, 2, 'AA'), 'pending,approved', 'majority of 2: both must approve');
insert into ids values ('unreachable', pg_temp.request(jsonb_build_object('approval_type', 'multiple', 'required_approvals', 3, 'approvers', pg_temp.approvers(2))));
select results_eq($$select a.status, e.status::text, e.error ->> 'code' from public.approval_requests a join public.workflow_executions e on e.id = a.execution_id
                  where a.id = (select id from ids where name = 'unreachable')$$,
  $$values ('rejected'::text, 'failed'::text, 'approval_rejected'::text)$$, 'a quorum that no approver set can reach is rejected when the request opens');

-- Closing resumes or fails the execution.
insert into ids values ('approve', pg_temp.request(jsonb_build_object('approval_type', 'single', 'approvers', pg_temp.approvers(2))));
select tests.authenticate_as('p_a2');
select is((public.decide_approval((select id from ids where name = 'approve'), 'approve', 'looks right')).status, 'approved', 'an approver approves');
select tests.clear_authentication();
select results_eq($$select e.status::text, r.status::text, r.output -> 'decisions' -> 0 ->> 'comment', (select q.status::text from public.workflow_runs q where q.execution_id = e.id and q.node_id = 'after')
                  from public.approval_requests a join public.workflow_executions e on e.id = a.execution_id join public.workflow_runs r on r.id = a.workflow_run_id
                  where a.id = (select id from ids where name = 'approve')$$,
  $$values ('running'::text, 'succeeded'::text, 'looks right'::text, 'queued'::text)$$, 'approval resumes the execution: the node succeeds with the decisions and the next node is queued');
select tests.authenticate_as('p_a1');
select throws_ok($$select public.decide_approval((select id from ids where name = 'approve'), 'reject')$$, '55000', null, 'a closed request takes no more decisions');
select tests.clear_authentication();
insert into ids values ('reject', pg_temp.request(jsonb_build_object('approval_type', 'single', 'approvers', pg_temp.approvers(2))));
select pg_temp.votes((select id from ids where name = 'reject'), 'R');
select results_eq($$select e.status::text, e.error ->> 'code', e.error ->> 'node_id' from public.approval_requests a join public.workflow_executions e on e.id = a.execution_id
                  where a.id = (select id from ids where name = 'reject')$$,
  $$values ('failed'::text, 'approval_rejected'::text, 'sign'::text)$$, 'rejection fails the execution, naming the node');

-- Who may decide, and how errors read.
insert into ids values ('rules', pg_temp.request(jsonb_build_object('approval_type', 'unanimous',
  'approvers', jsonb_build_object('user_ids', jsonb_build_array(tests.user_id('p_a1'), tests.user_id('p_a2'), tests.user_id('p_viewer'))))));
select tests.authenticate_as('p_a3');
select throws_ok($$select public.decide_approval((select id from ids where name = 'rules'), 'approve')$$, '42501', null, 'a member who is not an approver cannot decide');
select tests.authenticate_as('p_viewer');
select throws_ok($$select public.decide_approval((select id from ids where name = 'rules'), 'approve')$$, '42501', null, 'a listed viewer (no approvals.decide) cannot decide');
select tests.authenticate_as('p_stranger');
select throws_ok($$select public.decide_approval((select id from ids where name = 'rules'), 'approve')$$, '42501', null, 'a stranger cannot decide');
select tests.authenticate_as('p_a1');
select throws_ok($$select public.decide_approval((select id from ids where name = 'rules'), 'maybe')$$, '22023', null, 'a decision other than approve or reject is refused');
select is((public.decide_approval((select id from ids where name = 'rules'), 'approve')).status, 'pending', 'one approval of a unanimous two leaves it pending');
select throws_ok($$select public.decide_approval((select id from ids where name = 'rules'), 'approve')$$, '23505', null, 'an approver decides only once');
select tests.authenticate_as_anon();
select throws_ok($$select public.decide_approval((select id from ids where name = 'rules'), 'approve')$$, '42501', null, 'anon cannot decide');
select tests.authenticate_as_service_role();
select throws_ok($$select public.decide_approval(gen_random_uuid(), 'approve')$$, '42501', null, 'the service role cannot decide: decisions are people''s');
select tests.clear_authentication();
select throws_ok($$update public.approval_decisions set comment = 'changed'$$, '42501', null, 'a decision is never changed');

-- Self-approval: the requester is the execution's triggered_by.
insert into ids values ('self', pg_temp.request('{"approval_type": "single", "approvers": {"role": "owner"}}', 'p_owner'));
select tests.authenticate_as('p_owner');
select throws_ok($$select public.decide_approval((select id from ids where name = 'self'), 'approve')$$, '42501', null, 'the requester cannot approve their own request');
select tests.clear_authentication();
select results_eq($$select a.requested_by, e.status::text, e.error ->> 'code' from public.approval_requests a join public.workflow_executions e on e.id = a.execution_id where a.id = (select id from ids where name = 'self')$$,
  $$values (tests.user_id('p_owner'), 'failed'::text, 'approval_rejected'::text)$$, 'with the requester the only approver, the request can never be approved and is rejected');
insert into ids values ('self-ok', pg_temp.request('{"approval_type": "single", "approvers": {"role": "owner"}, "allow_self_approval": true}', 'p_owner'));
select tests.authenticate_as('p_owner');
select is((public.decide_approval((select id from ids where name = 'self-ok'), 'approve')).status, 'approved', 'when the node allows it, the requester may approve');
select tests.clear_authentication();
insert into ids values ('self-mixed', pg_temp.request('{"approval_type": "majority", "approvers": {"permission": "approvals.decide"}}', 'p_a1'));
select is((select count(*)::integer from public.approval_request_approvers where approval_request_id = (select id from ids where name = 'self-mixed')
           and user_id = tests.user_id('p_a1')), 0, 'the requester is not among the resolved approvers');

-- Form data against the form schema (the supported JSON Schema subset).
insert into ids values ('form', pg_temp.request(jsonb_build_object('approval_type', 'single', 'approvers', pg_temp.approvers(1),
  'form_schema', '{"type": "object", "required": ["reason"], "properties": {"reason": {"type": "string", "minLength": 3}, "amount": {"type": "integer", "minimum": 1, "maximum": 500}, "level": {"enum": ["low", "high"]}}}'::jsonb)));
select tests.authenticate_as('p_a1');
select throws_ok($$select public.decide_approval((select id from ids where name = 'form'), 'approve')$$, '22023', null, 'approving without the required form data is refused');
select throws_ok($$select public.decide_approval((select id from ids where name = 'form'), 'approve', null, '{"reason": "ok"}')$$, '22023', null, 'a reason shorter than minLength is refused');
select throws_ok($$select public.decide_approval((select id from ids where name = 'form'), 'approve', null, '{"reason": "fine", "amount": 1.5}')$$, '22023', null, 'a fraction where an integer is required is refused');
select throws_ok($$select public.decide_approval((select id from ids where name = 'form'), 'approve', null, '{"reason": "fine", "level": "urgent"}')$$, '22023', null, 'a value outside the enum is refused');
select throws_ok($$select public.decide_approval((select id from ids where name = 'form'), 'approve', null, '[1]')$$, '22023', null, 'form data that is not an object is refused');
select is((select count(*)::integer from public.approval_decisions where approval_request_id = (select id from ids where name = 'form')), 0, 'refused form data records no decision');
select is((public.decide_approval((select id from ids where name = 'form'), 'approve', null, '{"reason": "budget ok", "amount": 120, "level": "high"}')).status, 'approved', 'valid form data is accepted');
select tests.clear_authentication();
select is((select form_data ->> 'reason' from public.approval_decisions where approval_request_id = (select id from ids where name = 'form')), 'budget ok', 'and stored with the decision');
select is(private.json_schema_errors('{"type": "object", "properties": {"n": {"type": "number", "maximum": 5}, "s": {"type": "string", "maxLength": 2}}}', '{"n": 7, "s": "abc"}'),
  array['$.n: must be at most 5', '$.s: must be at most 2 characters'], 'the validator reports every violation with its path');
select is(private.json_schema_errors('{"type": "boolean"}', '"yes"'), array['$: expected boolean, got string'], 'and wrong types');

-- Escalation: once, past escalate_after, adding the escalation approvers.
insert into ids values ('escalate', pg_temp.request(jsonb_build_object('approval_type', 'single', 'approvers', pg_temp.approvers(1),
  'escalate_after', '1 hour', 'escalate_to', jsonb_build_object('user_ids', jsonb_build_array(tests.user_id('p_a5'))))));
select is(private.escalate_approval_requests(), 0, 'nothing escalates before escalate_after');
update public.approval_requests set escalate_after = now() - interval '1 second' where id = (select id from ids where name = 'escalate');
select is(private.escalate_approval_requests(), 1, 'a request past escalate_after escalates');
select results_eq($$select u.handle, a.source from public.approval_request_approvers a join tests.users u on u.id = a.user_id where a.approval_request_id = (select id from ids where name = 'escalate') order by u.handle$$,
  $$values ('p_a1'::text, 'user_ids'::text), ('p_a5', 'escalation')$$, 'the escalation approver is added beside the original one');
select is(private.escalate_approval_requests(), 0, 'and it escalates only once');
select tests.authenticate_as('p_a5');
select is((public.decide_approval((select id from ids where name = 'escalate'), 'approve')).status, 'approved', 'the escalation approver can decide');
select tests.clear_authentication();

-- Expiry applies the node's on_timeout.
insert into ids select 'expire-' || o, pg_temp.request(jsonb_build_object('approval_type', 'single', 'approvers', pg_temp.approvers(1), 'expires_in', '2 days', 'on_timeout', o))
from unnest(array['approve', 'reject', 'fail']) o;
select is(private.expire_approval_requests(), 0, 'nothing expires early');
update public.approval_requests set expires_at = now() - interval '1 second' where id in (select id from ids where name like 'expire-%');
select tests.authenticate_as('p_a1');
select throws_ok($$select public.decide_approval((select id from ids where name = 'expire-reject'), 'approve')$$, '55000', null, 'a request past its expiry takes no decision, even before the job has run');
select tests.clear_authentication();
select is(private.expire_approval_requests(), 3, 'the expiry job closes the three overdue requests');
select results_eq($$select i.name, a.status, e.status::text, coalesce(e.error ->> 'code', '-') from ids i join public.approval_requests a on a.id = i.id
                  join public.workflow_executions e on e.id = a.execution_id where i.name like 'expire-%' order by i.name$$,
  $$values ('expire-approve'::text, 'expired'::text, 'running'::text, '-'::text), ('expire-fail', 'expired', 'failed', 'approval_expired'), ('expire-reject', 'expired', 'failed', 'approval_rejected')$$,
  'on_timeout approve resumes the execution, reject and fail fail it with their own codes');

-- Cancelling the execution cancels its pending request.
insert into ids values ('cancel', pg_temp.request(jsonb_build_object('approval_type', 'single', 'approvers', pg_temp.approvers(1))));
select public.cancel_workflow_execution((select execution_id from public.approval_requests where id = (select id from ids where name = 'cancel')), 'withdrawn');
select is((select status from public.approval_requests where id = (select id from ids where name = 'cancel')), 'cancelled', 'cancelling the execution cancels its pending request');

select * from finish();
rollback;
