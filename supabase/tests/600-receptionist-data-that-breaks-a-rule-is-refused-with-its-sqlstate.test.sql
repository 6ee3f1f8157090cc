-- Receptionist data that breaks a rule is refused by a named constraint or trigger with its SQLSTATE: services,
-- agents, staff hours and time off, transcripts, the message lifecycle, and appointments (overlap with buffers,
-- business and working hours, time off, notice, advance window, status transitions).
begin;
select plan(48);

-- Fixture (tests.create_receptionist_salon in 000): a salon in Warsaw open Monday-Friday 09:00-17:00; Anna works
-- those hours and cuts hair (60 min, 15 min buffer, 60 min notice, 60 days ahead); Bob works Monday 12:00-17:00.
select tests.create_receptionist_salon();

-- Services.
select throws_ok($$insert into public.services (organization_id, name, duration) values (tests.org_id('test-rx-salon'), 'Zero', 0)$$,
  '23514', null, 'a service lasts more than zero minutes');
select throws_ok($$insert into public.services (organization_id, name, duration, price) values (tests.org_id('test-rx-salon'), 'Paid', 30, -1)$$,
  '23514', null, 'a price is never negative');
select throws_ok($$insert into public.services (organization_id, name, duration, currency) values (tests.org_id('test-rx-salon'), 'Cur', 30, 'pln')$$,
  '23514', null, 'a currency is an ISO 4217 code');
select throws_ok($$insert into public.services (organization_id, name, duration, booking_buffer) values (tests.org_id('test-rx-salon'), 'Buf', 30, -5)$$,
  '23514', null, 'a buffer is never negative');

-- Agents.
select throws_ok($$insert into public.ai_agents (organization_id, user_id, name, language) values (tests.org_id('test-rx-salon'), tests.user_id('rx_owner'), 'A', 'polish language')$$,
  '23514', null, 'an agent''s language is a BCP 47 tag');
select throws_ok($$insert into public.ai_agents (organization_id, user_id, name, capabilities) values (tests.org_id('test-rx-salon'), tests.user_id('rx_owner'), 'A', '["dancing"]')$$,
  '23514', null, 'capabilities are the reference values');
select throws_ok($$insert into public.ai_agents (organization_id, user_id, name, phone_number) values (tests.org_id('test-rx-salon'), tests.user_id('rx_owner'), 'A', '123')$$,
  '23514', null, 'an agent''s phone number is E.164');
select throws_ok($$insert into public.ai_agents (organization_id, name) values (tests.org_id('test-rx-salon'), 'Ghost')$$,
  '23514', null, 'a live agent has an identity');
select tests.authenticate_as('rx_owner');
insert into ids select 'agent', id from public.create_ai_agent(tests.org_id('test-rx-salon'), 'Ola', 'pl-PL', '+48221234567');
select tests.clear_authentication();
select throws_ok($$insert into public.ai_agents (organization_id, user_id, name, phone_number) values (tests.org_id('test-rx-salon'), tests.user_id('rx_owner'), 'B', '+48221234567')$$,
  '23505', null, 'two live agents never share a phone number');
update public.ai_agents set deleted_at = now() where id = pg_temp.id('agent');
select lives_ok($$insert into public.ai_agents (organization_id, user_id, name, phone_number) values (tests.org_id('test-rx-salon'), tests.user_id('rx_owner'), 'B', '+48221234567')$$,
  'a deleted agent''s number may be reused');

-- Staff and their hours.
select tests.create_user('rx_outsider');
select throws_ok($$insert into public.staff (organization_id, name, user_id) values (tests.org_id('test-rx-salon'), 'Out', tests.user_id('rx_outsider'))$$,
  '23514', 'user ' || tests.user_id('rx_outsider') || ' is not a member of the organization', 'a staff member''s user must be a member');
select throws_ok($$insert into public.staff_working_hours (staff_id, weekday, start_time, end_time) values (pg_temp.id('anna'), 1, '16:00', '18:00')$$,
  '23P01', null, 'working hours of one day never overlap');
select lives_ok($$insert into public.staff_working_hours (staff_id, weekday, start_time, end_time) values (pg_temp.id('anna'), 6, '10:00', '12:00'), (pg_temp.id('anna'), 6, '12:00', '14:00')$$,
  'several adjacent ranges a day are allowed');
select throws_ok($$insert into public.staff_working_hours (staff_id, weekday, start_time, end_time) values (pg_temp.id('anna'), 7, '10:00', '12:00')$$,
  '23514', null, 'weekdays are 0 (Sunday) to 6');
select throws_ok($$insert into public.staff_working_hours (staff_id, weekday, start_time, end_time) values (pg_temp.id('anna'), 0, '12:00', '10:00')$$,
  '23514', null, 'working hours start before they end');
select throws_ok($$insert into public.staff_time_off (staff_id, period) values (pg_temp.id('anna'), tstzrange(now(), null))$$,
  '23514', null, 'time off is bounded');
with o as (insert into public.organizations (name, slug) values ('Other', 'test-rx-other') returning id),
     s as (insert into public.services (organization_id, name, duration) select id, 'Foreign', 30 from o returning id)
insert into ids select 'foreign_service', id from s;
select throws_ok($$insert into public.staff_services (staff_id, service_id) values (pg_temp.id('anna'), pg_temp.id('foreign_service'))$$,
  '23514', null, 'a staff member performs only services of their organization');

-- Conversations.
insert into ids select 'agent2', id from public.ai_agents where name = 'B';
select throws_ok($$insert into public.conversations (agent_id, transcript) values (pg_temp.id('agent2'), '[{"speaker": "caller", "text": "hi"}]')$$,
  '23514', null, 'a transcript turn has speaker, text and at');
select throws_ok($$insert into public.conversations (agent_id, transcript) values (pg_temp.id('agent2'), '[{"speaker": "robot", "text": "hi", "at": "2026-01-01T10:00:00Z"}]')$$,
  '23514', null, 'a speaker is agent, caller, staff or system');
select throws_ok($$insert into public.conversations (agent_id, sentiment_score) values (pg_temp.id('agent2'), 1.5)$$,
  '23514', null, 'sentiment lies between -1 and 1');
select throws_ok($$insert into public.conversations (agent_id, status, started_at, ended_at) values (pg_temp.id('agent2'), 'completed', now(), now() - interval '1 minute')$$,
  '23514', null, 'a conversation ends after it starts');
select throws_ok($$insert into public.conversations (agent_id, direction) values (pg_temp.id('agent2'), 'sideways')$$,
  '23514', null, 'a direction is inbound or outbound');
with c as (insert into public.conversations (agent_id, status, started_at, ended_at)
  values (pg_temp.id('agent2'), 'completed', now() - interval '5 minutes', now()) returning id)
insert into ids select 'conversation', id from c;
select is((select duration_seconds from public.conversations where id = pg_temp.id('conversation')), 300, 'the duration is derived from the start and the end');

-- Messages.
select throws_ok($$insert into public.messages (organization_id, direction, channel, body) values (tests.org_id('test-rx-salon'), 'outbound', 'sms', 'Hi')$$,
  '23514', null, 'an SMS has phone numbers');
select throws_ok($$insert into public.messages (organization_id, direction, channel, body, to_email, from_email, to_number) values (tests.org_id('test-rx-salon'), 'outbound', 'email', 'Hi', 'a@example.com', 'b@example.com', '+48221234567')$$,
  '23514', null, 'an e-mail has e-mail addresses only');
select throws_ok($$insert into public.messages (organization_id, direction, channel, body, from_number, to_number, subject) values (tests.org_id('test-rx-salon'), 'outbound', 'sms', 'Hi', '+48221234567', '+48601234567', 'Subject')$$,
  '23514', null, 'only e-mails have a subject');
select throws_ok($$insert into public.messages (organization_id, direction, channel, body, from_number, to_number, status) values (tests.org_id('test-rx-salon'), 'outbound', 'sms', 'Hi', '+48221234567', '+48601234567', 'sent')$$,
  '23514', 'an outbound message starts as pending (got sent)', 'an outbound message starts as pending');
with m as (insert into public.messages (organization_id, conversation_id, direction, channel, body, from_number, to_number, provider, provider_message_id)
  values (tests.org_id('test-rx-salon'), pg_temp.id('conversation'), 'outbound', 'sms', 'See you Monday', '+48221234567', '+48601234567', 'twilio', 'SM1') returning id)
insert into ids select 'sms', id from m;
select throws_ok($$update public.messages set status = 'delivered' where id = pg_temp.id('sms')$$,
  '23514', 'a message cannot go from pending to delivered', 'a pending message is sent before it is delivered');
update public.messages set status = 'sent' where id = pg_temp.id('sms');
update public.messages set status = 'delivered' where id = pg_temp.id('sms');
select ok((select sent_at is not null and delivered_at >= sent_at from public.messages where id = pg_temp.id('sms')), 'sent and delivered times are stamped');
select throws_ok($$update public.messages set status = 'sent' where id = pg_temp.id('sms')$$,
  '23514', 'a message cannot go from delivered to sent', 'a delivered message stays delivered');
select throws_ok($$insert into public.messages (organization_id, direction, channel, body, from_number, to_number, provider, provider_message_id) values (tests.org_id('test-rx-salon'), 'outbound', 'sms', 'Again', '+48221234567', '+48601234567', 'twilio', 'SM1')$$,
  '23505', null, 'a provider message id is unique per provider');

-- Appointments.
select tests.authenticate_as('rx_owner');
insert into ids select 'a1', id from public.book_appointment(pg_temp.id('haircut'), pg_temp.at('monday', '10:00'), 'Jan Kowalski', '+48 601 234 567', null, pg_temp.id('anna'));
select tests.clear_authentication();
select results_eq($$select service_duration, service_type, service_price, booking_buffer, ends_at, blocked_range from public.appointments where id = pg_temp.id('a1')$$,
  $$values (60, 'Haircut', 120.00::numeric(10,2), 15, pg_temp.at('monday', '11:00'), tstzrange(pg_temp.at('monday', '09:45'), pg_temp.at('monday', '11:15')))$$,
  'the service is copied and ends_at and blocked_range are derived');
select throws_ok($$insert into public.appointments (service_id, staff_id, client_name, client_phone, scheduled_at) values (pg_temp.id('haircut'), pg_temp.id('anna'), 'X', '+48601234500', pg_temp.at('monday', '10:30'))$$,
  '23P01', 'the slot is taken for this staff member', 'an overlapping appointment of the same staff member is refused');
select throws_ok($$insert into public.appointments (service_id, staff_id, client_name, client_phone, scheduled_at) values (pg_temp.id('haircut'), pg_temp.id('anna'), 'X', '+48601234500', pg_temp.at('monday', '11:15'))$$,
  '23P01', 'the slot is taken for this staff member', 'the buffers keep the time around an appointment free');
select lives_ok($$insert into public.appointments (service_id, staff_id, client_name, client_phone, scheduled_at) values (pg_temp.id('haircut'), pg_temp.id('anna'), 'X', '+48601234500', pg_temp.at('monday', '11:30'))$$,
  'an appointment just past both buffers fits');
select throws_ok($$select public.book_appointment(pg_temp.id('haircut'), pg_temp.at('monday', '10:30'), 'Y', '+48601234501', null, pg_temp.id('anna'))$$,
  '23P01', null, 'book_appointment reports a taken slot as 23P01');
select throws_ok($$insert into public.appointments (service_id, staff_id, client_name, client_phone, scheduled_at) values (pg_temp.id('haircut'), pg_temp.id('anna'), 'X', '+48601234500', pg_temp.at('monday', '08:00'))$$,
  '23514', 'the appointment is outside business hours', 'an appointment lies within business hours');
select throws_ok($$insert into public.appointments (service_id, staff_id, client_name, client_phone, scheduled_at) values (pg_temp.id('haircut'), pg_temp.id('bob'), 'X', '+48601234500', pg_temp.at('monday', '10:00'))$$,
  '23514', 'the appointment is outside the staff member''s working hours', 'an appointment lies within the staff member''s working hours');
insert into public.staff_time_off (staff_id, period) values (pg_temp.id('bob'), tstzrange(pg_temp.at('monday', '14:00'), pg_temp.at('monday', '15:00')));
select throws_ok($$insert into public.appointments (service_id, staff_id, client_name, client_phone, scheduled_at) values (pg_temp.id('haircut'), pg_temp.id('bob'), 'X', '+48601234500', pg_temp.at('monday', '14:30'))$$,
  '23514', 'the staff member is off at that time', 'an appointment never touches time off');
select throws_ok($$insert into public.appointments (service_id, staff_id, client_name, client_phone, scheduled_at) values (pg_temp.id('haircut'), pg_temp.id('anna'), 'X', '+48601234500', now() + interval '10 minutes')$$,
  '23514', 'the appointment starts too soon: Haircut needs 60 minutes'' notice', 'an appointment respects the minimum notice');
select throws_ok($$insert into public.appointments (service_id, staff_id, client_name, client_phone, scheduled_at) values (pg_temp.id('haircut'), pg_temp.id('anna'), 'X', '+48601234500', now() + interval '90 days')$$,
  '23514', 'the appointment is too far ahead: Haircut books at most 60 days in advance', 'an appointment lies within the advance window');
select throws_ok($$update public.appointments set status = 'cancelled' where id = pg_temp.id('a1')$$,
  '23514', null, 'a cancellation needs a reason');
update public.appointments set status = 'completed' where id = pg_temp.id('a1');
select throws_ok($$update public.appointments set status = 'scheduled' where id = pg_temp.id('a1')$$,
  '23514', 'an appointment cannot go from completed to scheduled', 'a completed appointment stays completed');
select throws_ok($$insert into public.appointments (service_id, staff_id, client_name, client_phone, scheduled_at) values (pg_temp.id('foreign_service'), pg_temp.id('anna'), 'X', '+48601234500', pg_temp.at('monday', '13:00'))$$,
  '23514', null, 'a staff member is booked only for services they perform');
select throws_ok($$insert into public.appointments (service_id, staff_id, client_name, client_phone, scheduled_at) values (pg_temp.id('haircut'), pg_temp.id('anna'), 'X', 'call me', pg_temp.at('monday', '13:00'))$$,
  '23514', null, 'a client phone looks like a phone number');
select throws_ok($$insert into public.appointments (service_id, staff_id, client_phone, scheduled_at) values (pg_temp.id('haircut'), pg_temp.id('anna'), '+48601234500', pg_temp.at('monday', '13:00'))$$,
  '23514', null, 'an appointment names its client');
select throws_ok($$select * from public.available_slots(pg_temp.id('haircut'), now(), now() + interval '63 days')$$,
  '22023', null, 'available_slots refuses ranges longer than 62 days');
select throws_ok($$select * from public.available_slots(pg_temp.id('haircut'), now(), now() - interval '1 day')$$,
  '22023', null, 'available_slots refuses a range that ends before it starts');

select * from finish();
rollback;
