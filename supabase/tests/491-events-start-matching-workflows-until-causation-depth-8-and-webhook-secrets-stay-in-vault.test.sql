-- Event triggers: private.emit_event() starts the active event-triggered workflows whose event type and filter (JSON
-- containment) match, once per event id; an event a workflow caused 8 levels deep starts nothing and the refusal is
-- logged. The emit_event task action. Webhook-trigger secrets: set by workflows.manage holders, kept in Vault, never
-- readable by API roles; the refusal log's actor matrix.
begin;
select plan(27);

select tests.create_user(h) from unnest(array['e_owner', 'e_member', 'e_viewer', 'e_stranger']) h;
select tests.create_organization('e_owner', 'test-wf-events');
select tests.create_organization('e_stranger', 'test-wf-events-other');
select tests.add_member(tests.org_id('test-wf-events'), 'e_member', 'member');
select tests.add_member(tests.org_id('test-wf-events'), 'e_viewer', 'viewer');

create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to anon, authenticated, service_role;
create function pg_temp.id(key text) returns uuid language sql stable as $$ select id from ids where name = key $$;
grant execute on function pg_temp.id(text) to anon, authenticated, service_role;
create function pg_temp.executions(key text) returns bigint language sql stable as $$
  select count(*) from public.workflow_executions where workflow_id = pg_temp.id(key) $$;

with w as (insert into public.workflows (organization_id, name, definition, trigger_type, trigger_config)
           values (tests.org_id('test-wf-events'), 'On big connections',
                   '{"nodes": [{"id": "note", "type": "task", "name": "Note", "config": {"action": "emit_event", "params": {"event_type": "workflow.event", "payload": {"from": "note"}}}}], "edges": []}',
                   'event', '{"event_type": "integration.connected", "filter": {"provider": "github", "settings": {"tier": "big"}}}')
           returning id)
insert into ids select 'filtered', id from w;
with w as (insert into public.workflows (organization_id, name, definition, trigger_type, trigger_config)
           values (tests.org_id('test-wf-events'), 'On any connection',
                   '{"nodes": [{"id": "note", "type": "task", "name": "Note", "config": {"action": "emit_event"}}], "edges": []}',
                   'event', '{"event_type": "integration.connected"}')
           returning id)
insert into ids select 'any', id from w;
with w as (insert into public.workflows (organization_id, name, definition, trigger_type, trigger_config, is_active)
           values (tests.org_id('test-wf-events'), 'Inactive',
                   '{"nodes": [{"id": "note", "type": "task", "name": "Note", "config": {"action": "emit_event"}}], "edges": []}',
                   'event', '{"event_type": "integration.connected"}', false)
           returning id)
insert into ids select 'inactive', id from w;
with w as (insert into public.workflows (organization_id, name, definition, trigger_type, trigger_config)
           values (tests.org_id('test-wf-events-other'), 'Another organization',
                   '{"nodes": [{"id": "note", "type": "task", "name": "Note", "config": {"action": "emit_event"}}], "edges": []}',
                   'event', '{"event_type": "integration.connected"}')
           returning id)
insert into ids select 'other_org', id from w;

-- Matching.
insert into ids values ('small', private.emit_event(tests.org_id('test-wf-events'), 'integration.connected',
  '{"provider": "github", "settings": {"tier": "small"}}'));
select is(pg_temp.executions('filtered'), 0::bigint, 'a payload that does not contain the filter starts nothing');
select is(pg_temp.executions('any'), 1::bigint, 'a workflow without a filter starts for every event of its type');
select is(pg_temp.executions('inactive'), 0::bigint, 'an inactive workflow does not start');
select is(pg_temp.executions('other_org'), 0::bigint, 'another organization''s workflow does not start');
insert into ids values ('big', private.emit_event(tests.org_id('test-wf-events'), 'integration.connected',
  '{"provider": "github", "display_name": "GH", "settings": {"tier": "big", "seats": 40}}'));
select is(pg_temp.executions('filtered'), 1::bigint, 'a payload containing the filter (nested, with more keys) starts the workflow');
select results_eq($$select trigger_type::text, triggered_by, causation_depth::integer, input ->> 'event_type', input -> 'data' ->> 'provider', idempotency_key::text
                    from public.workflow_executions where workflow_id = pg_temp.id('filtered')$$,
                  $$values ('event'::text, null::uuid, 0, 'integration.connected'::text, 'github'::text, 'event:' || pg_temp.id('big')::text)$$,
                  'the execution is an event start with the event as input and depth 0');
select private.emit_event(tests.org_id('test-wf-events'), 'integration.connected',
  '{"provider": "github", "settings": {"tier": "big"}}', pg_temp.id('big'));
select is(pg_temp.executions('filtered'), 1::bigint, 'the same event id again starts nothing new');
select is(pg_temp.executions('any'), 2::bigint, 'one start per distinct event');

-- The emit_event action: one level deeper than its execution.
select tests.authenticate_as_service_role();
create temporary table all_claimed on commit drop as
  select c.id, c.lease_token, c.execution_id, e.workflow_id from public.claim_workflow_runs('pgtap', 100) c
  join public.workflow_executions e on e.id = c.execution_id;
create temporary table claimed on commit drop as select * from all_claimed where workflow_id = pg_temp.id('filtered');
select is(public.emit_workflow_event((select id from claimed), (select lease_token from claimed)), 'completed',
          'emit_workflow_event emits the task''s event and completes the run');
select is(public.emit_workflow_event((select id from claimed), (select lease_token from claimed)), 'lease_lost',
          'a second call with the spent lease changes nothing');
select tests.clear_authentication();
select is((select output -> 'note' ->> 'causation_depth' from public.workflow_executions where id = (select execution_id from claimed)), '1',
          'the event it emitted is one level deeper');
create temporary table bad_params on commit drop as select * from all_claimed where workflow_id = pg_temp.id('any') limit 1;
grant select on bad_params to service_role;
select tests.authenticate_as_service_role();
select is(public.emit_workflow_event((select id from bad_params), (select lease_token from bad_params)), 'failed',
          'an emit_event task without a known event_type fails without retry');
select tests.clear_authentication();

-- Depth: an event at depth 7 still starts (depth 7), at depth 8 it is refused and logged.
select set_config('workflows.causation_depth', '7', true);
insert into ids values ('deep7', private.emit_event(tests.org_id('test-wf-events'), 'integration.connected', '{"provider": "gitlab"}'));
select is((select max(causation_depth) from public.workflow_executions where workflow_id = pg_temp.id('any')), 7,
          'an event 7 levels deep starts its workflow at depth 7');
select set_config('workflows.causation_depth', '8', true);
insert into ids values ('deep8', private.emit_event(tests.org_id('test-wf-events'), 'integration.connected', '{"provider": "gitlab"}'));
select set_config('workflows.causation_depth', '', true);
select is(pg_temp.executions('any'), 3::bigint, 'an event 8 levels deep starts nothing');
select results_eq($$select workflow_id, event_type, causation_depth, reason from public.workflow_event_refusals where event_id = pg_temp.id('deep8')$$,
                  $$values (pg_temp.id('any'), 'integration.connected'::text, 8, 'causation_depth_exceeded'::text)$$,
                  'the refusal is logged');
select isnt(pg_temp.id('deep8'), null, 'the event itself is still emitted (emit_event returns its id)');

-- Who reads the refusal log.
select tests.authenticate_as('e_viewer');
select is((select count(*) from public.workflow_event_refusals where organization_id = tests.org_id('test-wf-events')), 1::bigint,
          'a viewer (workflows.read) sees the refusal');
select tests.authenticate_as('e_stranger');
select is((select count(*) from public.workflow_event_refusals where organization_id = tests.org_id('test-wf-events')), 0::bigint,
          'a stranger does not');
select throws_ok($$delete from public.workflow_event_refusals$$, '42501', null, 'nobody but the engine writes the log');
select tests.authenticate_as_anon();
select throws_ok($$select 1 from public.workflow_event_refusals$$, '42501', null, 'anon cannot read the log');
select tests.clear_authentication();

-- Webhook secrets.
with w as (insert into public.workflows (organization_id, name, definition, trigger_type)
           values (tests.org_id('test-wf-events'), 'Webhook',
                   '{"nodes": [{"id": "note", "type": "task", "name": "Note", "config": {"action": "emit_event"}}], "edges": []}', 'webhook')
           returning id)
insert into ids select 'hooked', id from w;
select tests.authenticate_as('e_member');
select throws_ok($$select public.set_workflow_webhook_secret(pg_temp.id('hooked'), 'whsec_' || encode(extensions.gen_random_bytes(32), 'base64'))$$,
                 '42501', null, 'a member (no workflows.manage) cannot set the secret');
select tests.authenticate_as('e_stranger');
select throws_ok($$select public.set_workflow_webhook_secret(pg_temp.id('hooked'), 'whsec_' || encode(extensions.gen_random_bytes(32), 'base64'))$$,
                 'P0002', null, 'a stranger is told the workflow does not exist');
select tests.authenticate_as('e_owner');
select throws_ok($$select public.set_workflow_webhook_secret(pg_temp.id('any'), 'whsec_' || encode(extensions.gen_random_bytes(32), 'base64'))$$,
                 '55000', null, 'a workflow not triggered by webhooks takes no secret');
select throws_ok($$select public.set_workflow_webhook_secret(pg_temp.id('hooked'), 'not-a-secret')$$, '22023', null,
                 'a secret that is not whsec_ + base64 is refused');
select lives_ok($$select public.set_workflow_webhook_secret(pg_temp.id('hooked'), 'whsec_dGhpcyBpcyBhIHRlc3Qgc2VjcmV0IG9mIDMyIGJ5dGVz')$$,
                'the owner (workflows.manage) sets the secret');
select throws_ok($$select public.workflow_webhook_secret_for_verification(pg_temp.id('hooked'))$$, '42501', null,
                 'the owner cannot read it back');
select tests.authenticate_as_service_role();
select is(public.workflow_webhook_secret_for_verification(pg_temp.id('hooked')), 'whsec_dGhpcyBpcyBhIHRlc3Qgc2VjcmV0IG9mIDMyIGJ5dGVz',
          'the service role reads it through the audited function');
select tests.clear_authentication();

select * from finish();
rollback;
