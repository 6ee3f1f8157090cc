-- Conversations store card numbers, IBANs and secrets redacted; conversations and appointments emit events; agent API
-- keys resolve while live and not once revoked; caller data is cleared after the organization's retention period and
-- on erase_caller_data(); a staff member's data is in export_my_data().
begin;
select plan(29);

-- Fixture (tests.create_receptionist_salon in 000): a salon in Warsaw open Monday-Friday 09:00-17:00; Anna works
-- those hours and cuts hair (60 min, 15 min buffer, 60 min notice, 60 days ahead); Bob works Monday 12:00-17:00.
select tests.create_receptionist_salon();

select tests.create_user('rx_member');
select tests.add_member(tests.org_id('test-rx-salon'), 'rx_member', 'member');
update public.staff set user_id = tests.user_id('rx_member') where id = pg_temp.id('anna');
select tests.authenticate_as('rx_owner');
insert into ids select 'agent', id from public.create_ai_agent(tests.org_id('test-rx-salon'), 'Ola');
select public.create_webhook(tests.org_id('test-rx-salon'), 'CRM', 'https://crm.example.com/hooks',
  array['call.started', 'call.ended', 'appointment.booked', 'appointment.cancelled', 'message.received'], 'whsec_' || encode(extensions.gen_random_bytes(32), 'base64'));
select tests.clear_authentication();
insert into ids select 'agent_user', user_id from public.ai_agents where id = pg_temp.id('agent');
insert into tests.users values ('rx_agent', pg_temp.id('agent_user'));

-- PCI: a card number read out on a call never reaches the table, on insert or on update.
select tests.authenticate_as('rx_agent');
with c as (insert into public.conversations (agent_id, caller_phone, caller_name, summary, transcript)
  values (pg_temp.id('agent'), '+48601234567', 'Jan Kowalski', 'Paid with 4111 1111 1111 1111',
          '[{"speaker": "agent", "text": "How would you like to pay?", "at": "2026-11-30T10:00:00Z"},
            {"speaker": "caller", "text": "My card is 4111 1111 1111 1111, expiry 12/29", "at": "2026-11-30T10:00:05Z"}]') returning id)
insert into ids select 'call', id from c;
select tests.clear_authentication();
select ok((select transcript::text not like '%4111%' and transcript -> 1 ->> 'text' like 'My card is [CARD]%' from public.conversations where id = pg_temp.id('call')),
  'a card number in a transcript turn is stored redacted');
select ok((select summary = 'Paid with [CARD]' from public.conversations where id = pg_temp.id('call')), 'the summary is redacted too');
select is((select transcript -> 0 ->> 'text' from public.conversations where id = pg_temp.id('call')), 'How would you like to pay?', 'ordinary turns are kept as said');
select is((select caller_phone from public.conversations where id = pg_temp.id('call')), '+48601234567', 'the caller''s own contact fields are not redacted');
select tests.authenticate_as('rx_agent');
update public.conversations set transcript = transcript || '[{"speaker": "caller", "text": "IBAN PL61109010140000071219812874 and key sk_live_4eC39HqLyjWDarjtT1zdp7dc", "at": "2026-11-30T10:01:00Z"}]'::jsonb
where id = pg_temp.id('call');
select tests.clear_authentication();
select is((select transcript -> 2 ->> 'text' from public.conversations where id = pg_temp.id('call')), 'IBAN [IBAN] and key [API_KEY]', 'an appended turn is redacted on update');
select is((select jsonb_array_length(transcript) from public.conversations where id = pg_temp.id('call')), 3, 'appending keeps the earlier turns');

-- Events: a conversation and an appointment announce themselves to the organization's webhooks.
select tests.authenticate_as('rx_agent');
update public.conversations set status = 'completed', ended_at = now() where id = pg_temp.id('call');
insert into ids select 'booking', id from public.book_appointment(pg_temp.id('haircut'), pg_temp.at('monday', '10:00'), 'Jan Kowalski', '+48601234567', 'jan@example.com', null, pg_temp.id('call'));
select public.cancel_appointment(pg_temp.id('booking'), 'Caller cancelled');
select tests.clear_authentication();
select results_eq($$select event_type from public.webhook_deliveries where organization_id = tests.org_id('test-rx-salon') order by event_type$$,
  $$values ('appointment.booked'), ('appointment.cancelled'), ('call.ended'), ('call.started')$$,
  'conversations and appointments emit call.started, call.ended, appointment.booked, appointment.cancelled');
select ok((select bool_and(payload::text not like '%Kowalski%' and payload::text not like '%+48601234567%') from public.webhook_deliveries where organization_id = tests.org_id('test-rx-salon')),
  'event payloads carry no caller data');
select ok((select count(*) > 0 from public.audit_logs where organization_id = tests.org_id('test-rx-salon') and resource = 'appointments'), 'appointment changes are audited');

-- API keys: resolved while live, stamped when used, refused once revoked.
select tests.authenticate_as('rx_owner');
create temporary table issued on commit drop as select * from public.create_ai_agent_api_key(pg_temp.id('agent'));
grant select on issued to service_role;
select tests.authenticate_as_service_role();
select is((select user_id from public.authenticate_ai_agent_key((select api_key from issued))), pg_temp.id('agent_user'), 'a live key resolves to the agent''s identity');
select ok((select last_used_at is not null from public.ai_agent_api_keys where id = (select key_id from issued)), 'using a key stamps last_used_at');
select is_empty($$select * from public.authenticate_ai_agent_key('rk_not-a-key')$$, 'an unknown key resolves to nothing');
select tests.authenticate_as('rx_owner');
select public.revoke_ai_agent_api_key((select key_id from issued));
select tests.authenticate_as_service_role();
select is_empty($$select * from public.authenticate_ai_agent_key((select api_key from issued))$$, 'a revoked key resolves to nothing');

-- Retention: after the organization's period, caller fields, transcripts and recordings are cleared; logged.
select tests.clear_authentication();
insert into public.receptionist_settings (organization_id, caller_data_retention_days) values (tests.org_id('test-rx-salon'), 30);
select is(private.apply_caller_data_retention(now() + interval '29 days') ->> 'conversations', '0', 'nothing is cleared before the period ends');
select is(private.apply_caller_data_retention(now() + interval '31 days') ->> 'conversations', '1', 'the conversation''s caller data is cleared after it');
select results_eq($$select caller_phone, caller_name, transcript, recording_url from public.conversations where id = pg_temp.id('call')$$,
  $$values (null::text, null::text, '[]'::jsonb, null::public.http_url)$$, 'caller fields, transcript and recording are gone');
select is((select client_phone from public.appointments where id = pg_temp.id('booking')), '+48601234567', 'an appointment''s contacts wait for its end plus the period');
select ok(private.apply_caller_data_retention(pg_temp.at('monday', '11:00') + interval '31 days') ->> 'appointments' = '1', 'then they are cleared');
select ok((select count(*) = 3 from public.metrics_log where source = 'receptionist_caller_retention'), 'each retention run is logged in metrics_log');
select ok(exists (select 1 from cron.job where jobname = 'receptionist-caller-retention'), 'pg_cron runs retention nightly');

-- Erasure on a caller's request: receptionist.manage (a staff member here), by phone or e-mail, logged without the data.
select tests.authenticate_as('rx_agent');
insert into public.conversations (agent_id, caller_phone, caller_email) values (pg_temp.id('agent'), '+48 601 999 888', 'Ewa@Example.com');
select public.book_appointment(pg_temp.id('haircut'), pg_temp.at('monday', '13:00'), 'Ewa', '+48601999888', 'ewa@example.com');
insert into public.messages (organization_id, direction, channel, body, from_number, to_number) values (tests.org_id('test-rx-salon'), 'outbound', 'sms', 'Hi Ewa', '+48221234567', '+48601999888');
select throws_ok($$select public.erase_caller_data('+48601999888', null)$$, '42501', null, 'an agent cannot erase caller data');
select tests.authenticate_as('rx_member');
select throws_ok($$select public.erase_caller_data(null, null)$$, '22023', null, 'erasure needs a phone or an e-mail');
select is(public.erase_caller_data('+48601999888', 'ewa@example.com'), '{"messages": 1, "appointments": 1, "conversations": 1}'::jsonb, 'a staff member erases one caller''s data everywhere it is held');
select tests.clear_authentication();
select is_empty($$select 1 from public.conversations where caller_email ilike 'ewa@%' union all select 1 from public.appointments where client_phone = '+48601999888'
                  union all select 1 from public.messages where to_number = '+48601999888'$$, 'nothing of the caller remains');
select ok((select details::text not like '%601999888%' and details::text not like '%ewa%' from public.metrics_log where source = 'erase_caller_data'), 'the erasure is logged without the caller''s data');

-- A staff member's own data is in their export.
select tests.authenticate_as('rx_member');
select is((select jsonb_array_length(d -> 'staff') from (select public.export_my_data() d) x), 1, 'export_my_data holds the staff record linked to the user');
select is((select d -> 'staff' -> 0 ->> 'name' from (select public.export_my_data() d) x), 'Anna', 'with its details');
select is((select jsonb_array_length(d -> 'staff_appointments') || ' ' || (d::text like '%+48601%') from (select public.export_my_data() d) x), '2 false', 'and the appointments booked with them, without clients'' contacts');

-- Hard-deleting an agent removes its identity too.
select tests.authenticate_as('rx_owner');
delete from public.ai_agents where id = pg_temp.id('agent');
select tests.clear_authentication();
select is_empty($$select 1 from auth.users where id = pg_temp.id('agent_user')$$, 'deleting the agent removes its auth.users row');

select * from finish();
rollback;
