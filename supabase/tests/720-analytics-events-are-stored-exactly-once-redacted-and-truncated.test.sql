-- upsert_events: exact-once per (organization, event_id) inside a batch, across batches and partitions (the private
-- key table decides), a per-row report with reasons, the 10,000-row limit, redaction and IP truncation, every
-- constraint by SQLSTATE; the receptionist's calls and appointments as events; users and organizations going.
begin;
select plan(40);

select tests.create_user(h) from unnest(array['an_owner', 'an_customer', 'an_other']) h;
select tests.create_organization('an_owner', 'test-an-shop');
select tests.create_organization('an_other', 'test-an-other');
update public.organizations set timezone = 'Europe/Warsaw' where id = tests.org_id('test-an-shop');

create temporary table reports (name text primary key, report jsonb) on commit drop;
grant all on reports to authenticated;
create function pg_temp.ev(event_id text, occurred_at timestamptz, extra jsonb default '{}') returns jsonb
language sql stable as $$
  select jsonb_build_object('organization_id', tests.org_id('test-an-shop'), 'event_id', event_id,
                            'occurred_at', occurred_at, 'event_name', 'page.viewed') || extra
$$;
create function pg_temp.uid(n int) returns text language sql immutable as $$
  select '00000000-0000-4000-8000-' || lpad(n::text, 12, '0')
$$;

-- One batch: a first copy and its duplicate, another event, and one row per rejection reason.
insert into reports select 'first', public.upsert_events(jsonb_build_array(
  pg_temp.ev(pg_temp.uid(1), now() - interval '2 days', '{"props": {"path": "/", "note": "write to jan.kowalski@example.com"}, "ip_address": "203.0.113.77"}'),
  pg_temp.ev(pg_temp.uid(1), now() - interval '2 days'),
  pg_temp.ev(pg_temp.uid(2), now() - interval '40 days', jsonb_build_object('ip_address', '2001:db8:1234:5678::1', 'user_id', tests.user_id('an_customer'))),
  '"not an object"'::jsonb,
  pg_temp.ev('not-a-uuid', now()),
  pg_temp.ev(pg_temp.uid(3), now()) - 'occurred_at',
  pg_temp.ev(pg_temp.uid(4), now(), '{"event_name": "Page Viewed"}'),
  pg_temp.ev(pg_temp.uid(5), now(), '{"props": [1, 2]}'),
  pg_temp.ev(pg_temp.uid(6), now(), '{"ip_address": "999.1.1.1"}'),
  pg_temp.ev(pg_temp.uid(7), now() + interval '1 hour'),
  pg_temp.ev(pg_temp.uid(8), now() - interval '3000 days'),
  pg_temp.ev(pg_temp.uid(9), now(), jsonb_build_object('organization_id', gen_random_uuid())),
  pg_temp.ev(pg_temp.uid(10), now(), jsonb_build_object('user_id', gen_random_uuid())),
  pg_temp.ev(pg_temp.uid(11), now(), jsonb_build_object('category', repeat('c', 101))),
  pg_temp.ev(pg_temp.uid(12), now(), '{"organization_id": "nope"}')));

select is((select report ->> 'inserted' from reports where name = 'first'), '2', 'the first batch inserts its two distinct valid events');
select is((select report ->> 'duplicate' from reports where name = 'first'), '1', 'the second copy of an event inside the batch is one duplicate');
select is((select report -> 'results' -> 1 ->> 'status' from reports where name = 'first'), 'duplicate', 'the duplicate is reported at its own index');
select is((select report ->> 'rejected' from reports where name = 'first'), '12', 'every malformed row is rejected');
select results_eq(
  $$select r ->> 'reason' from reports, jsonb_array_elements(report -> 'results') with ordinality x(r, n) where name = 'first' and r ->> 'status' = 'rejected' order by n$$,
  $$values ('not_an_object'), ('invalid_event_id'), ('invalid_occurred_at'), ('invalid_event_name'), ('invalid_props'),
           ('invalid_ip_address'), ('in_the_future'), ('outside_retention'), ('unknown_organization'), ('unknown_user'),
           ('field_too_long'), ('invalid_organization_id')$$,
  'each rejected row carries the reason it was refused');
select is((select count(*)::int from public.analytics_events where organization_id = tests.org_id('test-an-shop')), 2, 'only the inserted events are stored');

-- Props are redacted and IP addresses truncated on the way in.
select is((select props ->> 'note' from public.analytics_events where event_id = pg_temp.uid(1)::uuid), 'write to [EMAIL]', 'an e-mail address in props is redacted');
select is((select ip_address from public.analytics_events where event_id = pg_temp.uid(1)::uuid), '203.0.113.0/24'::inet, 'an IPv4 address is kept as its /24');
select is((select ip_address from public.analytics_events where event_id = pg_temp.uid(2)::uuid), '2001:db8:1234::/48'::inet, 'an IPv6 address is kept as its /48');

-- Across batches, and across partitions: the same key with another occurred_at is still a duplicate.
insert into reports select 'second', public.upsert_events(jsonb_build_array(
  pg_temp.ev(pg_temp.uid(1), now() - interval '2 days'),
  pg_temp.ev(pg_temp.uid(2), now() - interval '1 day'),
  pg_temp.ev(pg_temp.uid(13), now() - interval '1 hour')));
select is((select report ->> 'inserted' from reports where name = 'second'), '1', 'a later batch inserts only its new event');
select is((select report ->> 'duplicate' from reports where name = 'second'), '2', 'events stored by an earlier batch are duplicates');
select is((select count(*)::int from public.analytics_events where event_id = pg_temp.uid(2)::uuid), 1, 'an event resent with another time (another month partition) is stored once');
select is((select count(*)::int from private.analytics_event_keys where organization_id = tests.org_id('test-an-shop')),
          (select count(*)::int from public.analytics_events where organization_id = tests.org_id('test-an-shop')), 'the key table holds one key per stored event');

-- The same event id in another organization is another event.
insert into reports select 'other_org', public.upsert_events(jsonb_build_array(
  pg_temp.ev(pg_temp.uid(1), now(), jsonb_build_object('organization_id', tests.org_id('test-an-other')))));
select is((select report ->> 'inserted' from reports where name = 'other_org'), '1', 'an event id is scoped to its organization');

-- The key decides: a key already claimed (as by a concurrent batch that committed first) makes the event a duplicate.
insert into private.analytics_event_keys values (tests.org_id('test-an-shop'), pg_temp.uid(14)::uuid, now());
insert into reports select 'claimed', public.upsert_events(jsonb_build_array(pg_temp.ev(pg_temp.uid(14), now())));
select is((select report ->> 'duplicate' from reports where name = 'claimed'), '1', 'an event whose key is taken is reported duplicate');
select is_empty($$select 1 from public.analytics_events where event_id = '00000000-0000-4000-8000-000000000014'$$, 'and is not stored');

-- A rejected first copy does not make a good second copy a duplicate.
insert into reports select 'late_good', public.upsert_events(jsonb_build_array(
  pg_temp.ev(pg_temp.uid(15), now(), '{"event_name": "BAD"}'), pg_temp.ev(pg_temp.uid(15), now())));
select is((select report -> 'results' -> 1 ->> 'status' from reports where name = 'late_good'), 'inserted', 'the valid copy after a rejected one is inserted');

-- An agent of another organization is refused.
select tests.authenticate_as('an_other');
insert into reports select 'agent_other', jsonb_build_object('id', (public.create_ai_agent(tests.org_id('test-an-other'), 'Other agent')).id);
select tests.clear_authentication();
insert into reports select 'foreign_agent', public.upsert_events(jsonb_build_array(
  pg_temp.ev(pg_temp.uid(16), now(), jsonb_build_object('agent_id', (select report ->> 'id' from reports where name = 'agent_other')))));
select is((select report -> 'results' -> 0 ->> 'reason' from reports where name = 'foreign_agent'), 'unknown_agent', 'an agent of another organization is refused');

-- Limits and shapes: more than 10,000 rows is an error and stores nothing; so is anything but an array.
select throws_ok($$select public.upsert_events((select jsonb_agg(pg_temp.ev(gen_random_uuid()::text, now())) from generate_series(1, 10001)))$$,
  '54000', null, 'a batch of 10,001 events is refused');
select is((select count(*)::int from public.analytics_events where organization_id = tests.org_id('test-an-shop')), 4, 'the refused batch stored nothing');
select throws_ok($$select public.upsert_events('{"organization_id": "x"}')$$, '22023', null, 'a batch that is not an array is refused');
select throws_ok($$select public.upsert_events(null)$$, '22023', null, 'a null batch is refused');
select is((public.upsert_events('[]') ->> 'inserted'), '0', 'an empty batch inserts nothing');

-- Constraints, by SQLSTATE.
select throws_ok($$insert into public.analytics_events (organization_id, event_id, occurred_at, event_name) values (tests.org_id('test-an-shop'), gen_random_uuid(), now(), 'Bad Name')$$,
  '23514', null, 'an event name outside the lower-case pattern violates analytics_events_event_name_format');
select throws_ok($$insert into public.analytics_events (organization_id, event_id, occurred_at, event_name, props) values (tests.org_id('test-an-shop'), gen_random_uuid(), now(), 'x', '[]')$$,
  '23514', null, 'props that are not an object violate analytics_events_props_object');
select throws_ok($$insert into public.analytics_events (organization_id, event_id, occurred_at, event_name, ip_address) values (tests.org_id('test-an-shop'), gen_random_uuid(), now(), 'x', '203.0.113.7')$$,
  '23514', null, 'a full IP address violates analytics_events_ip_truncated');
select throws_ok($$insert into public.analytics_events (organization_id, event_id, occurred_at, event_name, category) values (tests.org_id('test-an-shop'), gen_random_uuid(), now(), 'x', '')$$,
  '23514', null, 'an empty category violates analytics_events_category_length');
select throws_ok($$insert into public.analytics_events (organization_id, event_id, occurred_at, event_name, session_id, anonymous_id, user_agent) values (tests.org_id('test-an-shop'), gen_random_uuid(), now(), 'x', repeat('s', 256), null, null)$$,
  '23514', null, 'a session id over 255 characters violates analytics_events_session_id_length');
select throws_ok($$insert into public.analytics_events (organization_id, event_id, occurred_at, event_name) values (tests.org_id('test-an-shop'), '00000000-0000-4000-8000-000000000001', now() - interval '2 days', 'x')$$,
  '23505', null, 'the same event at the same time twice violates analytics_events_pkey');
select throws_ok($$insert into private.analytics_event_keys values (tests.org_id('test-an-shop'), '00000000-0000-4000-8000-000000000001', now())$$,
  '23505', null, 'a second key for an event violates analytics_event_keys_pkey');
select throws_ok($$insert into public.analytics_events (organization_id, event_id, occurred_at, event_name, agent_id) values (tests.org_id('test-an-shop'), gen_random_uuid(), now(), 'x', gen_random_uuid())$$,
  '23503', null, 'an unknown agent violates analytics_events_agent_id_fkey');

-- The receptionist's conversations and appointments land here, with their agent.
select tests.create_receptionist_salon();
select tests.authenticate_as('rx_owner');
insert into ids select 'agent', id from public.create_ai_agent(tests.org_id('test-rx-salon'), 'Ola');
select tests.clear_authentication();
with c as (insert into public.conversations (organization_id, agent_id, caller_phone) values (tests.org_id('test-rx-salon'), pg_temp.id('agent'), '+48601234567') returning id)
insert into ids select 'call', id from c;
select results_eq($$select event_name, agent_id, category, props ->> 'conversation_id' from public.analytics_events where organization_id = tests.org_id('test-rx-salon')$$,
  $$values ('call.started', pg_temp.id('agent'), 'receptionist', pg_temp.id('call')::text)$$, 'a new conversation records call.started with its agent');
update public.conversations set ended_at = started_at + interval '3 minutes', status = 'completed' where id = pg_temp.id('call');
select is((select count(*)::int from public.analytics_events where organization_id = tests.org_id('test-rx-salon') and event_name = 'call.ended'), 1, 'ending the conversation records call.ended');
with a as (insert into public.appointments (organization_id, service_id, staff_id, conversation_id, client_name, client_phone, scheduled_at)
           values (tests.org_id('test-rx-salon'), pg_temp.id('haircut'), pg_temp.id('anna'), pg_temp.id('call'), 'Jan', '+48601234567', pg_temp.at('monday', '10:00')) returning id)
insert into ids select 'visit', id from a;
select is((select agent_id from public.analytics_events where organization_id = tests.org_id('test-rx-salon') and event_name = 'appointment.booked'),
          pg_temp.id('agent'), 'a booking records appointment.booked with the agent of its conversation');
update public.appointments set status = 'cancelled', cancellation_reason = 'ill' where id = pg_temp.id('visit');
select is((select count(*)::int from public.analytics_events where organization_id = tests.org_id('test-rx-salon') and event_name = 'appointment.cancelled'), 1, 'a cancellation records appointment.cancelled');
select is((select count(*)::int from private.analytics_event_keys where organization_id = tests.org_id('test-rx-salon')), 4, 'the receptionist''s events claim their keys too');

-- A deleted user's events stay with the organization, without them; a deleted organization takes its events.
delete from auth.users where id = tests.user_id('an_customer');
select is((select user_id from public.analytics_events where event_id = pg_temp.uid(2)::uuid), null, 'a deleted user''s events lose their user');
select is((select ip_address from public.analytics_events where event_id = pg_temp.uid(2)::uuid), null, 'and their IP network');
delete from public.organizations where id = tests.org_id('test-an-other');
select is_empty($$select 1 from public.analytics_events e where not exists (select 1 from public.organizations o where o.id = e.organization_id)$$, 'a deleted organization''s events are gone');
select is_empty($$select 1 from private.analytics_event_keys k where not exists (select 1 from public.organizations o where o.id = k.organization_id)$$, 'and so are their keys');

select * from finish();
rollback;
