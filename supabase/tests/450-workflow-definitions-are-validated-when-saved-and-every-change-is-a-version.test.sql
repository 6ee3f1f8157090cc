-- Definitions: every rule of the validator by its SQLSTATE (WF001-WF009), the node configs with their extra keys,
-- versions written by trigger and immutable, and the cron matcher scheduled workflows rely on.
begin;
select plan(80);

select tests.create_user('d_owner');
select tests.create_organization('d_owner', 'test-definitions');

-- Saves a workflow with the given definition (and trigger) as the database owner.
create function pg_temp.save(definition text, trigger_type text default 'manual', trigger_config text default '{}')
returns uuid language sql as $$
  insert into public.workflows (organization_id, name, definition, trigger_type, trigger_config)
  values (tests.org_id('test-definitions'), 'probe', definition::jsonb, trigger_type, trigger_config::jsonb)
  returning id
$$;
-- One node of each type in a line, with the given config replacing the node named `target`'s config.
create function pg_temp.with_config(target text, config text) returns text language sql as $$
  select jsonb_build_object(
    'nodes', jsonb_build_array(
      jsonb_build_object('id', 'start', 'type', 'task', 'name', 'Start',
        'config', case when target = 'task' then config::jsonb else '{"action": "http_request", "params": {}}' end),
      jsonb_build_object('id', 'gate', 'type', 'condition', 'name', 'Gate',
        'config', case when target = 'condition' then config::jsonb else '{"expression": "$.input.amount > 100"}' end),
      jsonb_build_object('id', 'sign', 'type', 'approval', 'name', 'Sign',
        'config', case when target = 'approval' then config::jsonb else '{"approval_type": "single", "approvers": {"role": "admin"}}' end),
      jsonb_build_object('id', 'write', 'type', 'ai_agent', 'name', 'Write',
        'config', case when target = 'ai_agent' then config::jsonb else '{"prompt": "Summarise {{input.amount}}"}' end)),
    'edges', '[{"from": "start", "to": "gate"}, {"from": "gate", "to": "sign", "when": true}, {"from": "gate", "to": "write", "when": false}]'::jsonb)::text
$$;

select lives_ok($$select pg_temp.save(pg_temp.with_config('none', '{}'))$$, 'a definition using every node type is accepted');
select lives_ok($$select pg_temp.save('{"nodes": [{"id": "only", "type": "task", "name": "Only", "config": {"action": "emit_event"}}], "edges": []}')$$,
  'a single task node without params is accepted');

-- WF001: the shape.
select throws_ok($$select pg_temp.save('[]')$$, 'WF001', null, 'a definition that is not an object is refused (WF001)');
select throws_ok($$select pg_temp.save('{"nodes": []}')$$, 'WF001', null, 'a definition without edges is refused (WF001)');
select throws_ok($$select pg_temp.save('{"nodes": [], "edges": []}')$$, 'WF001', null, 'a definition without nodes is refused (WF001)');
select throws_ok($$select pg_temp.save('{"nodes": [{"id": "a", "type": "task", "name": "A", "config": {"action": "emit_event"}}], "edges": [], "extra": 1}')$$,
  'WF001', null, 'an extra top-level key is refused (WF001)');
select throws_ok($$select pg_temp.save('{"nodes": [{"id": "a", "type": "task", "config": {"action": "emit_event"}}], "edges": []}')$$,
  'WF001', null, 'a node without a name is refused (WF001)');
select throws_ok($$select pg_temp.save('{"nodes": [{"id": "a", "type": "email", "name": "A", "config": {}}], "edges": []}')$$,
  'WF001', null, 'an unknown node type is refused (WF001)');
select throws_ok($$select pg_temp.save('{"nodes": [{"id": "a", "type": "task", "name": "A", "config": {"action": "emit_event"}, "retries": 3}], "edges": []}')$$,
  'WF001', null, 'an extra key on a node is refused (WF001)');
select throws_ok($$select pg_temp.save('{"nodes": [{"id": "1a", "type": "task", "name": "A", "config": {"action": "emit_event"}}], "edges": []}')$$,
  'WF001', null, 'a node id that does not start with a letter is refused (WF001)');
select throws_ok($$select pg_temp.save('{"nodes": [{"id": "a", "type": "task", "name": "A", "config": {"action": "emit_event"}}, {"id": "b", "type": "task", "name": "B", "config": {"action": "emit_event"}}], "edges": [{"from": "a", "to": "b", "label": "x"}]}')$$,
  'WF001', null, 'an extra key on an edge is refused (WF001)');

-- WF002-WF005: the graph.
select throws_ok($$select pg_temp.save('{"nodes": [{"id": "a", "type": "task", "name": "A", "config": {"action": "emit_event"}}, {"id": "a", "type": "task", "name": "B", "config": {"action": "emit_event"}}], "edges": []}')$$,
  'WF002', null, 'a duplicate node id is refused (WF002)');
select throws_ok($$select pg_temp.save('{"nodes": [{"id": "a", "type": "task", "name": "A", "config": {"action": "emit_event"}}], "edges": [{"from": "a", "to": "ghost"}]}')$$,
  'WF003', null, 'an edge to a node that does not exist is refused (WF003)');
select throws_ok($$select pg_temp.save('{"nodes": [{"id": "a", "type": "task", "name": "A", "config": {"action": "emit_event"}}], "edges": [{"from": "ghost", "to": "a"}]}')$$,
  'WF003', null, 'an edge from a node that does not exist is refused (WF003)');
select throws_ok($$select pg_temp.save('{"nodes": [{"id": "a", "type": "task", "name": "A", "config": {"action": "emit_event"}}, {"id": "b", "type": "task", "name": "B", "config": {"action": "emit_event"}}], "edges": []}')$$,
  'WF004', null, 'two entry nodes are refused (WF004)');
select throws_ok($$select pg_temp.save('{"nodes": [{"id": "a", "type": "task", "name": "A", "config": {"action": "emit_event"}}, {"id": "b", "type": "task", "name": "B", "config": {"action": "emit_event"}}], "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "a"}]}')$$,
  'WF004', null, 'a graph in which every node has an incoming edge has no entry node (WF004)');
select throws_ok($$select pg_temp.save('{"nodes": [{"id": "a", "type": "task", "name": "A", "config": {"action": "emit_event"}}, {"id": "b", "type": "task", "name": "B", "config": {"action": "emit_event"}}, {"id": "c", "type": "task", "name": "C", "config": {"action": "emit_event"}}], "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "b"}]}')$$,
  'WF005', null, 'a cycle behind the entry node is refused (WF005)');
select throws_ok($$select pg_temp.save('{"nodes": [{"id": "a", "type": "task", "name": "A", "config": {"action": "emit_event"}}], "edges": [{"from": "a", "to": "a"}]}')$$,
  'WF004', null, 'a node looping onto itself leaves no entry node (WF004)');

-- WF006: the config of each node type; extra keys fail loudly.
select throws_ok(format($$select pg_temp.save(pg_temp.with_config(%L, %L))$$, t, c), 'WF006', null, d)
from (values
  ('condition', '{}', 'a condition without an expression is refused (WF006)'),
  ('condition', '{"expression": "$.input.a > 1", "negate": true}', 'an extra key on a condition is refused (WF006)'),
  ('approval', '{"approval_type": "some", "approvers": {"role": "admin"}}', 'an unknown approval type is refused (WF006)'),
  ('approval', '{"approval_type": "multiple", "approvers": {"role": "admin"}}', 'multiple without required_approvals is refused (WF006)'),
  ('approval', '{"approval_type": "single", "required_approvals": 2, "approvers": {"role": "admin"}}', 'required_approvals on a single approval is refused (WF006)'),
  ('approval', '{"approval_type": "multiple", "required_approvals": 0, "approvers": {"role": "admin"}}', 'zero required approvals are refused (WF006)'),
  ('approval', '{"approval_type": "single", "approvers": {}}', 'an approval without approvers is refused (WF006)'),
  ('approval', '{"approval_type": "single", "approvers": {"user_ids": ["not-a-uuid"]}}', 'an approver id that is not a UUID is refused (WF006)'),
  ('approval', '{"approval_type": "single", "approvers": {"team": "x"}}', 'an unknown key in approvers is refused (WF006)'),
  ('approval', '{"approval_type": "single", "approvers": {"role": "admin"}, "expires_in": "soon"}', 'an expiry that is not an interval is refused (WF006)'),
  ('approval', '{"approval_type": "single", "approvers": {"role": "admin"}, "escalate_to": {"role": "owner"}}', 'escalate_to without escalate_after is refused (WF006)'),
  ('approval', '{"approval_type": "single", "approvers": {"role": "admin"}, "on_timeout": "ignore"}', 'an unknown on_timeout is refused (WF006)'),
  ('approval', '{"approval_type": "single", "approvers": {"role": "admin"}, "allow_self_approval": "yes"}', 'a non-boolean allow_self_approval is refused (WF006)'),
  ('approval', '{"approval_type": "single", "approvers": {"role": "admin"}, "form_schema": {"type": "object", "properties": {"iban": {"type": "string", "pattern": "^DE"}}}}', 'a form schema keyword outside the supported subset is refused (WF006)'),
  ('approval', '{"approval_type": "single", "approvers": {"role": "admin"}, "titel": "typo"}', 'a misspelt approval key is refused (WF006)'),
  ('ai_agent', '{"model": "gpt-4o"}', 'an ai_agent without a prompt is refused (WF006)'),
  ('ai_agent', '{"promt": "hello"}', 'a misspelt ai_agent key is refused (WF006)'),
  ('ai_agent', '{"prompt": "hello", "temperature": 3}', 'a temperature above 2 is refused (WF006)'),
  ('ai_agent', '{"prompt": "hello", "max_retries": 1.5}', 'fractional max_retries are refused (WF006)'),
  ('ai_agent', '{"prompt": "hello", "provider_config_id": "openai"}', 'a provider config id that is not a UUID is refused (WF006)'),
  ('task', '{"action": "send_fax"}', 'an unknown task action is refused (WF006)'),
  ('task', '{"action": "http_request", "params": []}', 'task params that are not an object are refused (WF006)'),
  ('task', '{"action": "http_request", "url": "https://example.com"}', 'an extra key on a task is refused (WF006)')
) as cases(t, c, d);

select lives_ok($$select pg_temp.save(pg_temp.with_config('approval', '{"approval_type": "multiple", "required_approvals": 2, "approvers": {"user_ids": ["a11ce000-0000-4000-8000-000000000001"], "role": "admin", "permission": "approvals.decide"}, "expires_in": "2 days", "escalate_after": "1 day", "escalate_to": {"role": "owner"}, "on_timeout": "fail", "allow_self_approval": false, "title": "Pay?", "description": "Large invoice", "form_schema": {"type": "object", "required": ["reason"], "properties": {"reason": {"type": "string", "minLength": 3, "maxLength": 200}, "amount": {"type": "number", "minimum": 0, "maximum": 1000}, "level": {"enum": ["low", "high"]}}}}'))$$,
  'an approval config using every key is accepted');
select lives_ok($$select pg_temp.save(pg_temp.with_config('ai_agent', '{"provider_config_id": "a11ce000-0000-4000-8000-000000000001", "model": "gpt-4o-mini", "system": "Be brief", "prompt": "Summarise {{nodes.start.body}}", "max_tokens": 200, "temperature": 0.2, "max_retries": 2, "timeout_ms": 30000}'))$$,
  'an ai_agent config using every key is accepted');

-- WF007: `when` only out of a condition, and always there.
select throws_ok($$select pg_temp.save('{"nodes": [{"id": "a", "type": "task", "name": "A", "config": {"action": "emit_event"}}, {"id": "b", "type": "task", "name": "B", "config": {"action": "emit_event"}}], "edges": [{"from": "a", "to": "b", "when": true}]}')$$,
  'WF007', null, '"when" on an edge out of a task is refused (WF007)');
select throws_ok($$select pg_temp.save('{"nodes": [{"id": "c", "type": "condition", "name": "C", "config": {"expression": "$.input.x == 1"}}, {"id": "b", "type": "task", "name": "B", "config": {"action": "emit_event"}}], "edges": [{"from": "c", "to": "b", "when": "yes"}]}')$$,
  'WF007', null, 'a "when" that is not true or false is refused (WF007)');
select throws_ok($$select pg_temp.save('{"nodes": [{"id": "c", "type": "condition", "name": "C", "config": {"expression": "$.input.x == 1"}}, {"id": "b", "type": "task", "name": "B", "config": {"action": "emit_event"}}], "edges": [{"from": "c", "to": "b"}]}')$$,
  'WF007', null, 'an edge out of a condition without "when" is refused (WF007)');

-- WF008: the expression must be an SQL/JSON path predicate.
select throws_ok(format($$select pg_temp.save(pg_temp.with_config('condition', %L))$$, jsonb_build_object('expression', e)), 'WF008', null, d)
from (values
  ('$.input.amount', 'a path that is not a predicate is refused (WF008)'),
  ('$.input.amount >', 'an expression that is not valid SQL/JSON path is refused (WF008)'),
  ('$.input.name like_regex "("', 'a predicate with an invalid regular expression is refused (WF008)')
) as cases(e, d);
select lives_ok($$select pg_temp.save(pg_temp.with_config('condition', '{"expression": "$.nodes.start.status == 200 && exists($.input.customer)"}'))$$,
  'a compound predicate over input and node outputs is accepted');

-- WF009: trigger configurations.
select throws_ok($$select pg_temp.save(pg_temp.with_config('none', '{}'), 'scheduled', '{}')$$, 'WF009', null, 'a scheduled workflow without a cron expression is refused (WF009)');
select throws_ok($$select pg_temp.save(pg_temp.with_config('none', '{}'), 'scheduled', '{"cron": "61 * * * *"}')$$, 'WF009', null, 'a cron minute of 61 is refused (WF009)');
select throws_ok($$select pg_temp.save(pg_temp.with_config('none', '{}'), 'manual', '{"cron": "* * * * *"}')$$, 'WF009', null, 'a manual workflow takes no trigger config (WF009)');
select throws_ok($$select pg_temp.save(pg_temp.with_config('none', '{}'), 'webhook', '{"secret": "whsec_x"}')$$, 'WF009', null, 'a webhook secret in trigger_config is refused (WF009)');
select throws_ok($$select pg_temp.save(pg_temp.with_config('none', '{}'), 'event', '{"filter": {}}')$$, 'WF009', null, 'an event trigger without event_type is refused (WF009)');
select lives_ok($$select pg_temp.save(pg_temp.with_config('none', '{}'), 'event', '{"event_type": "invoice.paid", "filter": {"currency": "eur"}}')$$, 'an event trigger with a containment filter is accepted');
select throws_ok($$insert into public.workflows (organization_id, name, definition, trigger_type) values (tests.org_id('test-definitions'), 'x', pg_temp.with_config('none', '{}')::jsonb, 'email')$$,
  '23514', null, 'an unknown trigger type is refused by the workflow_trigger_type domain');
select throws_ok($$insert into public.workflows (organization_id, name, definition, max_attempts) values (tests.org_id('test-definitions'), 'x', pg_temp.with_config('none', '{}')::jsonb, 26)$$,
  '23514', 'value for domain workflow_max_attempts violates check constraint "workflow_max_attempts_range"', 'more than 25 attempts are refused by the workflow_max_attempts domain');

-- Versions: one snapshot per definition change, written by trigger, never changed.
create temporary table probe on commit drop as
select pg_temp.save('{"nodes": [{"id": "a", "type": "task", "name": "A", "config": {"action": "emit_event"}}], "edges": []}') as id;
select results_eq($$select w.current_version, (select count(*)::integer from public.workflow_versions v where v.workflow_id = w.id)
                  from public.workflows w where w.id = (select id from probe)$$,
  $$values (1, 1)$$, 'a new workflow is version 1 with one snapshot');
update public.workflows set name = 'renamed' where id = (select id from probe);
select is((select current_version from public.workflows where id = (select id from probe)), 1, 'a rename is not a new version');
update public.workflows set definition = '{"nodes": [{"id": "a", "type": "task", "name": "A2", "config": {"action": "emit_event"}}], "edges": []}'
where id = (select id from probe);
select results_eq($$select v.version, v.definition -> 'nodes' -> 0 ->> 'name' from public.workflow_versions v
                  where v.workflow_id = (select id from probe) order by v.version$$,
  $$values (1, 'A'), (2, 'A2')$$, 'a definition change writes version 2 and keeps version 1 as it was');
select is((select current_version from public.workflows where id = (select id from probe)), 2, 'current_version follows the definition');
select throws_ok($$update public.workflows set definition = '{"nodes": [], "edges": []}' where id = (select id from probe)$$,
  'WF001', null, 'an invalid change is refused');
select is((select count(*)::integer from public.workflow_versions where workflow_id = (select id from probe)), 2, 'and writes no version');
select throws_ok($$update public.workflow_versions set definition = '{}' where workflow_id = (select id from probe)$$,
  '42501', null, 'a version is never changed');
update public.workflows set current_version = 9 where id = (select id from probe);
select is((select current_version from public.workflows where id = (select id from probe)), 2, 'current_version cannot be set by hand');

-- The cron matcher (UTC): lists, ranges, steps, names, the day-of-month/day-of-week rule.
select is(private.cron_matches('*/15 9-17 * * 1-5', '2026-11-30 09:30:00+00'), true, '*/15 9-17 * * 1-5 fires on a Monday at 09:30');
select is(private.cron_matches('*/15 9-17 * * 1-5', '2026-11-30 09:31:00+00'), false, 'but not at 09:31');
select is(private.cron_matches('*/15 9-17 * * 1-5', '2026-11-28 09:30:00+00'), false, 'nor on a Saturday');
select is(private.cron_matches('*/15 9-17 * * 1-5', '2026-11-30 18:00:00+00'), false, 'nor after 17:59');
select is(private.cron_matches('0 9 * * *', '2026-11-30 10:00:00+01'), true, 'times are compared in UTC');
select is(private.cron_matches('5,10-12/2 0 * * *', '2026-11-30 00:12:00+00'), true, 'a list with a stepped range matches its members');
select is(private.cron_matches('5,10-12/2 0 * * *', '2026-11-30 00:11:00+00'), false, 'and not the values the step skips');
select is(private.cron_matches('0 0 1 jan,Jul *', '2026-07-01 00:00:00+00'), true, 'month names match in any case');
select is(private.cron_matches('0 0 * * sun', '2026-11-29 00:00:00+00'), true, 'day names match');
select is(private.cron_matches('0 0 * * 7', '2026-11-29 00:00:00+00'), true, 'day of week 7 is Sunday');
select is(private.cron_matches('0 0 13 * 5', '2026-11-27 00:00:00+00'), true, 'with both day fields restricted, either one matching is enough');
select is(private.cron_matches('0 0 13 * *', '2026-11-27 00:00:00+00'), false, 'a restricted day of month alone must match');
select is(private.cron_matches('30/10 * * * *', '2026-11-27 00:50:00+00'), true, 'a/n steps from a to the end of the range');
select ok(private.cron_matches('60 * * * *', now()) is null and private.cron_matches('* * *', now()) is null
          and private.cron_matches('*/0 * * * *', now()) is null and private.cron_matches('5-1 * * * *', now()) is null,
  'malformed expressions (out of range, too few fields, step 0, reversed range) match nothing');

select * from finish();
rollback;
