-- The webhooks matrix: webhooks.manage holders (owner, admin) create, see and change webhooks and their delivery log;
-- members, viewers, strangers and anonymous clients neither see nor change anything; extra headers never carry
-- Authorization or hop-by-hop headers; only known event types; the queue is written by the database's functions only.
begin;
select plan(42);

select tests.create_user(h) from unnest(array['w_owner', 'w_admin', 'w_member', 'w_viewer', 'w_stranger']) as h;
select tests.create_organization('w_owner', 'test-webhooks');
select tests.add_member(tests.org_id('test-webhooks'), 'w_admin', 'admin');
select tests.add_member(tests.org_id('test-webhooks'), 'w_member', 'member');
select tests.add_member(tests.org_id('test-webhooks'), 'w_viewer', 'viewer');
-- Deliveries queued by anything else (demo data, earlier runs) wait until after this test, which rolls back.
update public.webhook_deliveries set next_attempt_at = now() + interval '1 day' where status in ('pending', 'failed');
select tests.authenticate_as('w_owner');
select public.create_webhook(tests.org_id('test-webhooks'), 'CRM', 'https://crm.example.com/hooks', array['integration.connected'],
  'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', '{"X-Team": "ops"}') as hook \gset
select public.send_test_webhook(:'hook');
select tests.clear_authentication();

create temporary table probe (sql text) on commit drop;
insert into probe values ($$
  select (select count(*) from public.webhooks where organization_id = tests.org_id('test-webhooks'))::integer,
         (select count(*) from public.webhook_deliveries where organization_id = tests.org_id('test-webhooks'))::integer,
         (select count(*) from public.webhook_event_types)::integer > 0$$);
grant select on probe to authenticated;

select tests.authenticate_as('w_owner');
select results_eq((select sql from probe), $$values (1, 1, true)$$, 'the owner sees the webhook, its delivery log and the event types');
select results_eq($$select events, headers, has_credentials, is_enabled from public.webhooks$$,
  $$values (array['integration.connected'], '{"X-Team": "ops"}'::jsonb, true, true)$$,
  'the webhook shows its subscriptions, headers and that a signing secret is set');
select tests.authenticate_as('w_admin');
select results_eq((select sql from probe), $$values (1, 1, true)$$, 'an admin sees the same');
select tests.authenticate_as('w_member');
select results_eq((select sql from probe), $$values (0, 0, true)$$, 'a member sees no webhook and no delivery');
select tests.authenticate_as('w_viewer');
select results_eq((select sql from probe), $$values (0, 0, true)$$, 'a viewer sees none either');
select tests.authenticate_as('w_stranger');
select results_eq((select sql from probe), $$values (0, 0, true)$$, 'a stranger sees nothing');

select tests.authenticate_as_anon();
select throws_ok(format('select 1 from public.%I', t), '42501', null, format('anon cannot read %s', t))
from unnest(array['webhooks', 'webhook_deliveries', 'webhook_event_types']) as t;
select throws_ok(format('select %s', call), '42501', null, format('anon cannot call %s', split_part(call, '(', 1)))
from unnest(array[
  $$public.create_webhook(gen_random_uuid(), 'x', 'https://x.test', array['webhook.test'], 'whsec_x')$$,
  $$public.set_webhook_signing_secret(gen_random_uuid(), 'whsec_x')$$,
  $$public.send_test_webhook(gen_random_uuid())$$,
  $$public.claim_webhook_deliveries(1, 30)$$,
  $$public.record_webhook_deliveries('[]')$$]) as call;

select tests.authenticate_as('w_stranger');
select throws_ok($$select public.create_webhook(tests.org_id('test-webhooks'), 'Spy', 'https://spy.test', array['webhook.test'],
  'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')$$, 'P0002', null, 'a stranger cannot create a webhook in the organization');
select throws_ok(format($$select public.send_test_webhook(%L)$$, :'hook'), 'P0002', null, 'a stranger cannot send a test delivery');
select tests.authenticate_as('w_viewer');
select is(tests.rows_affected($$update public.webhooks set url = 'https://evil.test'$$), 0::bigint, 'a viewer cannot edit a webhook');
select tests.authenticate_as('w_member');
select throws_ok($$select public.create_webhook(tests.org_id('test-webhooks'), 'Member', 'https://m.test', array['webhook.test'],
  'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')$$, '42501', null, 'a member cannot create a webhook');
select throws_ok(format($$select public.set_webhook_signing_secret(%L, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')$$, :'hook'),
  '42501', null, 'a member cannot rotate a signing secret');
select is(tests.rows_affected($$delete from public.webhooks$$), 0::bigint, 'a member cannot delete a webhook');
select throws_ok($$select * from public.claim_webhook_deliveries(10, 30)$$, '42501', null, 'a member cannot claim deliveries');
select throws_ok($$select public.record_webhook_deliveries('[]')$$, '42501', null, 'a member cannot record outcomes');
select throws_ok(format($$select public.send_test_webhook(%L)$$, :'hook'), '42501', null, 'a member cannot send a test delivery');

select tests.authenticate_as('w_admin');
select throws_ok($$insert into public.webhooks (organization_id, name, url, events, credentials_secret_id)
                   values (tests.org_id('test-webhooks'), 'Direct', 'https://d.test', array['webhook.test'], gen_random_uuid())$$,
  '42501', null, 'webhooks are created through create_webhook only');
select throws_ok($$update public.webhooks set headers = '{"Authorization": "Bearer abc"}'$$, '23514', null,
  'an Authorization header is refused');
select throws_ok($$update public.webhooks set headers = '{"Connection": "keep-alive"}'$$, '23514', null,
  'a hop-by-hop header is refused');
select throws_ok($$update public.webhooks set headers = '{"webhook-signature": "v1,forged"}'$$, '23514', null,
  'a signature header is refused');
select throws_ok($$update public.webhooks set headers = '{"X-Count": 3}'$$, '23514', null, 'a header value must be a string');
select throws_ok($$update public.webhooks set events = array['task.exploded']$$, '23514', 'unknown event type "task.exploded"',
  'an unknown event type is refused');
select throws_ok($$update public.webhooks set url = 'ftp://files.example.com'$$, '23514', null, 'the URL must be http(s)');
select throws_ok($$update public.webhooks set failure_count = 0$$, '42501', null, 'clients cannot reset delivery state');
select throws_ok(format($$select public.set_webhook_signing_secret(%L, 'not-a-secret')$$, :'hook'), '22023', null,
  'a malformed signing secret is refused');
select lives_ok(format($$select public.set_webhook_signing_secret(%L, 'whsec_QmV0dGVyIHJvdGF0ZSB0aGlzIHNlY3JldCBub3c=')$$, :'hook'),
  'an admin rotates the signing secret');
select throws_ok($$select credentials_secret_id from public.webhooks$$, '42501', null, 'no client may select the Vault secret id');
select throws_ok($$insert into public.webhook_deliveries (organization_id, webhook_id, event_id, event_type, payload)
                   values (tests.org_id('test-webhooks'), (select id from public.webhooks limit 1), gen_random_uuid(), 'webhook.test', '{}')$$,
  '42501', null, 'clients cannot forge deliveries');
select ok(not has_function_privilege('authenticated', 'private.emit_event(uuid, text, jsonb, uuid, uuid)', 'execute')
          and not has_function_privilege('service_role', 'private.emit_event(uuid, text, jsonb, uuid, uuid)', 'execute')
          and not has_function_privilege('anon', 'private.emit_event(uuid, text, jsonb, uuid, uuid)', 'execute'),
  'no API role may call emit_event');

select ok(public.send_test_webhook(:'hook') is not null, 'an admin sends a test delivery');

select tests.authenticate_as_service_role();
select results_eq(format($$select (select count(*) from public.webhooks where id = %L)::integer,
                                  (select count(*) from public.webhook_deliveries where webhook_id = %L)::integer,
                                  (select count(*) from public.webhook_event_types)::integer > 0$$, :'hook', :'hook'),
  $$values (1, 2, true)$$, 'the service role reads webhooks, deliveries and event types');
select throws_ok($$select public.create_webhook(tests.org_id('test-webhooks'), 'Server', 'https://s.test', array['webhook.test'],
  'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')$$, '42501', null, 'the service role cannot create webhooks as if it were a user');
select is((select count(*)::integer from public.claim_webhook_deliveries(10, 30) where webhook_id = :'hook'), 2,
  'the service role claims the queued deliveries');

select tests.authenticate_as('w_owner');
select is(tests.rows_affected($$delete from public.webhooks$$), 1::bigint, 'the owner deletes the webhook');
select is_empty($$select 1 from public.webhook_deliveries where organization_id = tests.org_id('test-webhooks')$$,
  'its deliveries went with it');

select * from finish();
rollback;
