-- emit_event() enqueues one delivery per enabled subscribing webhook of the organization, once per event id; the
-- dispatcher's claim leases due deliveries; outcomes follow the Standard Webhooks retry schedule to `dead`; five
-- consecutive dead deliveries disable the webhook; retention prunes finished rows only; scheduling needs pg_net.
-- (Concurrent claims are proven in vitest, tests/webhook-dispatcher.test.ts.)
begin;
select plan(31);

select tests.create_user(h) from unnest(array['q_owner', 'q_other']) as h;
select tests.create_organization('q_owner', 'test-queue');
select tests.create_organization('q_other', 'test-queue-other');
-- Deliveries queued by anything else (demo data, earlier runs) wait until after this test, which rolls back.
update public.webhook_deliveries set next_attempt_at = now() + interval '1 day' where status in ('pending', 'failed');
select tests.authenticate_as('q_owner');
select public.create_webhook(tests.org_id('test-queue'), 'A', 'https://a.example.com/in',
  array['integration.connected', 'integration.disconnected'], 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw') as hook_a \gset
select public.create_webhook(tests.org_id('test-queue'), 'B', 'https://b.example.com/in', array['webhook.test'],
  'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw') as hook_b \gset
select public.create_webhook(tests.org_id('test-queue'), 'C', 'https://c.example.com/in', array['integration.connected'],
  'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw') as hook_c \gset
update public.webhooks set is_enabled = false where id = :'hook_c';
select tests.authenticate_as('q_other');
select public.create_webhook(tests.org_id('test-queue-other'), 'Other', 'https://o.example.com/in', array['integration.connected'],
  'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw') as hook_other \gset
select tests.clear_authentication();

select is(private.emit_event(tests.org_id('test-queue'), 'integration.connected', '{"integration_id": "x"}',
                             'e0000000-0000-4000-8000-000000000001'), 'e0000000-0000-4000-8000-000000000001'::uuid,
  'emit_event returns the event id');
select results_eq($$select webhook_id, status, attempt from public.webhook_deliveries where event_id = 'e0000000-0000-4000-8000-000000000001'$$,
  format($$values (%L::uuid, 'pending', 0)$$, :'hook_a'),
  'one delivery for the enabled subscriber; none for a non-subscriber, a disabled one or another organization');
select private.emit_event(tests.org_id('test-queue'), 'integration.connected', '{"integration_id": "x"}', 'e0000000-0000-4000-8000-000000000001');
select is((select count(*)::integer from public.webhook_deliveries where event_id = 'e0000000-0000-4000-8000-000000000001'), 1,
  'emitting the same event id again enqueues nothing more');
select ok(private.emit_event(tests.org_id('test-queue'), 'integration.disconnected', '{}') is not null,
  'the event id defaults to a fresh one');
select throws_ok($$select private.emit_event(tests.org_id('test-queue'), 'task.exploded', '{}')$$, '22023', null,
  'an unknown event type is refused');
select throws_ok($$select private.emit_event(tests.org_id('test-queue'), 'webhook.test', '[1, 2]')$$, '22023', null,
  'a payload must be a JSON object');

-- An integration announces itself without its credentials.
select tests.authenticate_as('q_owner');
insert into public.integrations (organization_id, provider, display_name) values (tests.org_id('test-queue'), 'zapier', 'Zaps');
select tests.clear_authentication();
select results_eq($$select payload ->> 'provider', payload ? 'credentials_secret_id' from public.webhook_deliveries
                    where webhook_id = '$$ || :'hook_a' || $$' and event_type = 'integration.connected' and payload ? 'provider'$$,
  $$values ('zapier', false)$$, 'adding an integration emits integration.connected to its subscribers, without secrets');
delete from public.webhook_deliveries where event_type <> 'integration.connected' or event_id <> 'e0000000-0000-4000-8000-000000000001';

-- Claim, lease, outcome.
select tests.authenticate_as_service_role();
create temporary table claim1 on commit drop as select * from public.claim_webhook_deliveries(10, 60);
select results_eq($$select attempt, (body::jsonb) ->> 'type', (body::jsonb) -> 'data', (body::jsonb) ? 'timestamp' from claim1$$,
  $$values (1, 'integration.connected', '{"integration_id": "x"}'::jsonb, true)$$,
  'a claim returns the delivery with its first attempt and the Standard Webhooks body (type, timestamp, data)');
select is_empty($$select 1 from public.claim_webhook_deliveries(10, 60)$$, 'a leased delivery is not claimed again');
select is(public.record_webhook_deliveries(jsonb_build_array(jsonb_build_object('delivery_id', (select delivery_id from claim1),
  'lease_id', gen_random_uuid(), 'status_code', 200))), 0, 'an outcome under another lease is ignored');
select is(public.record_webhook_deliveries(jsonb_build_array(jsonb_build_object('delivery_id', (select delivery_id from claim1),
  'lease_id', (select lease_id from claim1), 'status_code', 500, 'response_body', repeat('x', 5000), 'duration_ms', 12))), 1,
  'the dispatcher records a 500');
select tests.clear_authentication();
select results_eq($$select status, error, response_status, char_length(response_body),
                           next_attempt_at - now() between interval '5 seconds' and interval '5.5 seconds'
                    from public.webhook_deliveries where event_id = 'e0000000-0000-4000-8000-000000000001'$$,
  $$values ('failed', 'http_500', 500, 2048, true)$$,
  'a failed first attempt is retried after 5 seconds (plus jitter), with the response truncated');
select results_eq($$select bool_and(d >= s and d <= s * 1.1) from (
                      select private.webhook_retry_delay(n::integer) as d, s from unnest(array[interval '5 seconds', interval '5 minutes',
                        interval '30 minutes', interval '2 hours', interval '5 hours', interval '10 hours', interval '10 hours'])
                        with ordinality as x(s, n), generate_series(1, 20)) r$$,
  $$values (true)$$, 'retries follow 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h with up to 10 % jitter');
select is(private.webhook_retry_delay(8), null, 'there is no retry after the eighth attempt');

-- A lease that ran out makes the delivery claimable again.
update public.webhook_deliveries set next_attempt_at = now() - interval '1 second' where event_id = 'e0000000-0000-4000-8000-000000000001';
select tests.authenticate_as_service_role();
create temporary table claim2 on commit drop as select * from public.claim_webhook_deliveries(10, 60);
select tests.clear_authentication();
update public.webhook_deliveries set locked_until = now() - interval '1 second' where id = (select delivery_id from claim2);
select tests.authenticate_as_service_role();
select results_eq($$select attempt from public.claim_webhook_deliveries(10, 60)$$, $$values (3)$$,
  'a delivery whose lease ran out is claimed again, as the next attempt');
select tests.clear_authentication();

-- The eighth failed attempt is the last: dead.
update public.webhook_deliveries set attempt = 7, status = 'failed', lease_id = null, locked_until = null,
  next_attempt_at = now() - interval '1 second' where event_id = 'e0000000-0000-4000-8000-000000000001';
select tests.authenticate_as_service_role();
create temporary table claim3 on commit drop as select * from public.claim_webhook_deliveries(10, 60);
select public.record_webhook_deliveries(jsonb_build_array(jsonb_build_object('delivery_id', (select delivery_id from claim3),
  'lease_id', (select lease_id from claim3), 'error', 'timeout')));
select tests.clear_authentication();
select results_eq($$select status, attempt, error from public.webhook_deliveries where event_id = 'e0000000-0000-4000-8000-000000000001'$$,
  $$values ('dead', 8, 'timeout')$$, 'after the eighth failed attempt the delivery is dead');
select results_eq(format($$select failure_count, is_enabled from public.webhooks where id = %L$$, :'hook_a'), $$values (1, true)$$,
  'a dead delivery counts one consecutive failure on its webhook');

-- Five consecutive dead deliveries disable the webhook.
insert into public.webhook_deliveries (organization_id, webhook_id, event_id, event_type, payload, attempt, status)
select tests.org_id('test-queue'), :'hook_a', gen_random_uuid(), 'integration.connected', '{}', 7, 'failed' from generate_series(1, 4);
insert into public.webhook_deliveries (organization_id, webhook_id, event_id, event_type, payload, next_attempt_at)
values (tests.org_id('test-queue'), :'hook_a', gen_random_uuid(), 'integration.connected', '{"later": true}', now() + interval '1 hour');
select tests.authenticate_as_service_role();
create temporary table claim4 on commit drop as select * from public.claim_webhook_deliveries(10, 60);
select is((select count(*)::integer from claim4), 4, 'four more last attempts are due');
select public.record_webhook_deliveries((select jsonb_agg(jsonb_build_object('delivery_id', delivery_id, 'lease_id', lease_id,
  'error', 'connection_failed')) from claim4));
select tests.clear_authentication();
select results_eq(format($$select failure_count, is_enabled, disabled_reason like 'disabled after 5 consecutive deliveries failed%%'
                          from public.webhooks where id = %L$$, :'hook_a'),
  $$values (5, false, true)$$, 'after five consecutive dead deliveries the webhook is disabled, with the reason');
select results_eq($$select status, error from public.webhook_deliveries where payload ? 'later'$$,
  $$values ('dead', 'webhook_disabled')$$, 'what a disabled webhook still had queued is ended');
select is((select count(*)::integer from public.webhook_deliveries where webhook_id = :'hook_a' and status = 'delivering'), 0,
  'nothing of it is left in flight');
select ok(private.emit_event(tests.org_id('test-queue'), 'integration.connected', '{}') is not null
          and not exists (select 1 from public.webhook_deliveries where webhook_id = :'hook_a' and status = 'pending'),
  'a disabled webhook receives no new deliveries');
select tests.authenticate_as('q_owner');
update public.webhooks set is_enabled = true where id = :'hook_a';
select tests.clear_authentication();
select results_eq(format($$select failure_count, disabled_reason from public.webhooks where id = %L$$, :'hook_a'),
  $$values (0, null::text)$$, 'enabling it again starts afresh');

-- A success resets the count.
update public.webhooks set failure_count = 3 where id = :'hook_a';
select private.emit_event(tests.org_id('test-queue'), 'integration.connected', '{"ok": true}');
select tests.authenticate_as_service_role();
create temporary table claim5 on commit drop as select * from public.claim_webhook_deliveries(10, 60);
select public.record_webhook_deliveries((select jsonb_agg(jsonb_build_object('delivery_id', delivery_id, 'lease_id', lease_id,
  'status_code', 204, 'duration_ms', 3)) from claim5));
select tests.clear_authentication();
select results_eq(format($$select w.failure_count, w.last_triggered_at is not null, d.status, d.delivered_at is not null
                          from public.webhooks w join public.webhook_deliveries d on d.webhook_id = w.id and d.payload ? 'ok'
                          where w.id = %L$$, :'hook_a'),
  $$values (0, true, 'delivered', true)$$, 'a delivered event resets the failure count and is marked delivered');
select throws_ok($$select * from public.claim_webhook_deliveries(0, 60)$$, '22023', null, 'a claim needs a sensible batch size');

-- Retention removes finished deliveries past their days, in batches; queued ones stay.
select is((select retention_days from public.retention_policies where table_name = 'webhook_deliveries'), 30,
  'finished deliveries are kept 30 days by default');
set local session_replication_role = replica;
update public.webhook_deliveries set updated_at = now() - interval '40 days' where organization_id = tests.org_id('test-queue');
set local session_replication_role = origin;
insert into public.webhook_deliveries (organization_id, webhook_id, event_id, event_type, payload)
values (tests.org_id('test-queue'), :'hook_a', gen_random_uuid(), 'integration.connected', '{"queued": true}');
select is(private.prune_webhook_deliveries(now() - interval '30 days', 2),
  (select count(*) from public.webhook_deliveries where organization_id = tests.org_id('test-queue') and status in ('delivered', 'dead')),
  'pruning in small batches removes every finished delivery past the cutoff');
select results_eq($$select payload from public.webhook_deliveries where organization_id = tests.org_id('test-queue')$$,
  $$values ('{"queued": true}'::jsonb)$$, 'a queued delivery is never pruned');
select ok((public.cleanup_retention_data() -> 'removed') ? 'webhook_deliveries', 'cleanup_retention_data applies the webhook_deliveries policy');

-- Without pg_net there is nothing to schedule, and asking twice changes nothing.
select is(private.schedule_edge_functions(), '{}'::text[], 'without pg_net no edge function is scheduled');
select is((select count(*)::integer from cron.job where jobname = 'webhook-dispatcher'), 0, 'and no cron job exists for it');

select * from finish();
rollback;
