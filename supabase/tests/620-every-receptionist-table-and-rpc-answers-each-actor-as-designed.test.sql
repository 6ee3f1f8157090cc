-- The receptionist actor matrix: owner, admin, staff member (member), viewer, the AI agent, a stranger, anon and the
-- service role, on reads, service and staff writes, booking, agents and their keys; the agent's identity (no personal
-- organization, no password, agent role) and its removal with the agent.
begin;
select plan(63);

-- Fixture (tests.create_receptionist_salon in 000): a salon in Warsaw open Monday-Friday 09:00-17:00; Anna works
-- those hours and cuts hair (60 min, 15 min buffer, 60 min notice, 60 days ahead); Bob works Monday 12:00-17:00.
select tests.create_receptionist_salon();

select tests.create_user(h) from unnest(array['rx_admin', 'rx_member', 'rx_viewer', 'rx_stranger']) h;
select tests.add_member(tests.org_id('test-rx-salon'), 'rx_admin', 'admin');
select tests.add_member(tests.org_id('test-rx-salon'), 'rx_member', 'member');
select tests.add_member(tests.org_id('test-rx-salon'), 'rx_viewer', 'viewer');
update public.staff set user_id = tests.user_id('rx_member') where id = pg_temp.id('anna');

-- The agent: created by the owner, an identity without a personal organization, a member with the agent role.
select tests.authenticate_as('rx_owner');
insert into ids select 'agent', id from public.create_ai_agent(tests.org_id('test-rx-salon'), 'Ola', 'pl-PL', '+48221234567');
select tests.clear_authentication();
insert into ids select 'agent_user', user_id from public.ai_agents where id = pg_temp.id('agent');
insert into tests.users values ('rx_agent', pg_temp.id('agent_user'));
select is((select raw_app_meta_data ->> 'agent' from auth.users where id = pg_temp.id('agent_user')), 'true', 'the agent''s identity is marked as an agent in app_metadata');
select is((select encrypted_password from auth.users where id = pg_temp.id('agent_user')), null, 'the agent has no password');
select is_empty($$select 1 from public.organizations where personal_user_id = pg_temp.id('agent_user')$$, 'the agent has no personal organization');
select is((select r.key from public.organization_members m join public.roles r on r.id = m.role_id
           where m.user_id = pg_temp.id('agent_user')), 'agent', 'the agent is a member with the agent role, without an invitation');
select is((select rank from public.roles where key = 'agent' and organization_id is null), 30, 'agent ranks between viewer and member');

-- A conversation and an appointment to read.
select tests.authenticate_as('rx_agent');
select lives_ok($$insert into public.conversations (agent_id, caller_phone) values (pg_temp.id('agent'), '+48601234567')$$, 'the agent starts a conversation');
select lives_ok($$select public.book_appointment(pg_temp.id('haircut'), pg_temp.at('monday', '10:00'), 'Jan', '+48601234567')$$, 'the agent books an appointment');
select lives_ok($$insert into public.messages (organization_id, direction, channel, body, from_number, to_number) values (tests.org_id('test-rx-salon'), 'outbound', 'sms', 'See you', '+48221234567', '+48601234567')$$, 'the agent records an SMS');

create temporary table visibility_probe (sql text) on commit drop;
insert into visibility_probe values ($$
  select (select count(*) from public.ai_agents where organization_id = tests.org_id('test-rx-salon'))::integer,
         (select count(*) from public.services where organization_id = tests.org_id('test-rx-salon'))::integer,
         (select count(*) from public.staff where organization_id = tests.org_id('test-rx-salon'))::integer,
         (select count(*) from public.staff_working_hours where organization_id = tests.org_id('test-rx-salon'))::integer,
         (select count(*) from public.conversations where organization_id = tests.org_id('test-rx-salon'))::integer,
         (select count(*) from public.messages where organization_id = tests.org_id('test-rx-salon'))::integer,
         (select count(*) from public.appointments where organization_id = tests.org_id('test-rx-salon'))::integer$$);
grant select on visibility_probe to anon, authenticated, service_role;
select tests.authenticate_as('rx_owner');
select results_eq((select sql from visibility_probe), $$values (1, 1, 2, 6, 1, 1, 1)$$, 'the owner sees the whole module');
select tests.authenticate_as('rx_admin');
select results_eq((select sql from visibility_probe), $$values (1, 1, 2, 6, 1, 1, 1)$$, 'an admin sees the whole module');
select tests.authenticate_as('rx_member');
select results_eq((select sql from visibility_probe), $$values (1, 1, 2, 6, 1, 1, 1)$$, 'a staff member sees the whole module');
select tests.authenticate_as('rx_viewer');
select results_eq((select sql from visibility_probe), $$values (1, 1, 2, 6, 1, 1, 1)$$, 'a viewer sees the whole module');
select tests.authenticate_as('rx_agent');
select results_eq((select sql from visibility_probe), $$values (1, 1, 2, 6, 1, 1, 1)$$, 'the agent sees the whole module');
select tests.authenticate_as('rx_stranger');
select results_eq((select sql from visibility_probe), $$values (0, 0, 0, 0, 0, 0, 0)$$, 'a stranger sees nothing');
select tests.authenticate_as_service_role();
select results_eq((select sql from visibility_probe), $$values (1, 1, 2, 6, 1, 1, 1)$$, 'the service role sees everything');
select tests.authenticate_as_anon();
select throws_ok(format('select 1 from public.%I', t), '42501', null, format('anon cannot read %s', t))
from unnest(array['ai_agents', 'ai_agent_api_keys', 'services', 'staff', 'staff_services', 'staff_working_hours', 'staff_time_off',
                  'conversations', 'messages', 'appointments', 'receptionist_settings']) t;
-- +1
-- +1
-- +1
-- +1
-- +1
-- +1
-- +1
-- +1
-- +1
-- +1
select throws_ok($$select * from public.available_slots(pg_temp.id('haircut'), now(), now() + interval '1 day')$$, '42501', null, 'anon cannot ask for slots');

-- Services and staff: receptionist.manage (owner, admin, staff member), not the agent, viewer or stranger.
create temporary table service_probe (sql text) on commit drop;
insert into service_probe values ($$insert into public.services (organization_id, name, duration) values (tests.org_id('test-rx-salon'), 'Colour', 90)$$);
grant select on service_probe to anon, authenticated, service_role;
select tests.authenticate_as('rx_owner');
select lives_ok((select sql from service_probe), 'the owner adds a service');
select tests.authenticate_as('rx_admin');
select lives_ok((select sql from service_probe), 'an admin adds a service');
select tests.authenticate_as('rx_member');
select lives_ok((select sql from service_probe), 'a staff member adds a service');
select tests.authenticate_as('rx_agent');
select throws_ok((select sql from service_probe), '42501', null, 'the agent cannot add a service');
select is(tests.rows_affected($$update public.staff set name = 'Hacked' where id = pg_temp.id('anna')$$), 0::bigint, 'the agent cannot edit staff');
select is(tests.rows_affected($$update public.staff_working_hours set end_time = '23:00' where staff_id = pg_temp.id('anna')$$), 0::bigint, 'the agent cannot change working hours');
select throws_ok($$insert into public.receptionist_settings (organization_id, caller_data_retention_days) values (tests.org_id('test-rx-salon'), 10)$$, '42501', null, 'the agent cannot change settings');
select tests.authenticate_as('rx_viewer');
select throws_ok((select sql from service_probe), '42501', null, 'a viewer cannot add a service');
select tests.authenticate_as('rx_stranger');
select throws_ok((select sql from service_probe), '42501', null, 'a stranger cannot add a service');

-- Booking: receptionist.operate (owner, admin, staff member, agent), not the viewer or a stranger.
create temporary table booking_probe (who text, hour text) on commit drop;
insert into booking_probe values ('rx_owner', '11:30'), ('rx_admin', '13:00'), ('rx_member', '14:30'), ('rx_agent', '16:00');
grant select on booking_probe to anon, authenticated, service_role;
select tests.authenticate_as('rx_owner');
select lives_ok($$select public.book_appointment(pg_temp.id('haircut'), pg_temp.at('monday', '11:30'), 'A', '+48601000001', null, pg_temp.id('anna'))$$, 'the owner books');
select tests.authenticate_as('rx_admin');
select lives_ok($$select public.book_appointment(pg_temp.id('haircut'), pg_temp.at('monday', '13:00'), 'B', '+48601000002', null, pg_temp.id('anna'))$$, 'an admin books');
select tests.authenticate_as('rx_member');
select lives_ok($$select public.book_appointment(pg_temp.id('haircut'), pg_temp.at('monday', '14:30'), 'C', '+48601000003', null, pg_temp.id('anna'))$$, 'a staff member books');
select tests.authenticate_as('rx_viewer');
select throws_ok($$select public.book_appointment(pg_temp.id('haircut'), pg_temp.at('monday', '16:00'), 'D', '+48601000004', null, pg_temp.id('anna'))$$, '42501', null, 'a viewer cannot book');
select is(tests.rows_affected($$update public.appointments set status = 'confirmed' where organization_id = tests.org_id('test-rx-salon')$$), 0::bigint, 'a viewer cannot confirm');
select throws_ok($$insert into public.conversations (agent_id) values (pg_temp.id('agent'))$$, '42501', null, 'a viewer cannot record a conversation');
select tests.authenticate_as('rx_stranger');
select throws_ok($$select public.book_appointment(pg_temp.id('haircut'), pg_temp.at('monday', '16:00'), 'D', '+48601000004', null, pg_temp.id('anna'))$$, 'P0002', null, 'a stranger cannot even find the service');
select throws_ok($$select * from public.available_slots(pg_temp.id('haircut'), now(), now() + interval '1 day')$$, 'P0002', null, 'a stranger gets no slots of another organization');
select tests.authenticate_as('rx_agent');
select is((select count(*)::integer from public.available_slots(pg_temp.id('haircut'), pg_temp.at('monday', '00:00'), pg_temp.at('monday', '23:59'), null, 60)) > 0, true, 'the agent asks for slots');
select is(tests.rows_affected($$update public.appointments set status = 'confirmed' where organization_id = tests.org_id('test-rx-salon') and status = 'scheduled'$$), 4::bigint, 'the agent confirms appointments');
select lives_ok($$select public.reschedule_appointment((select id from public.appointments where client_name = 'C'), pg_temp.at('monday', '16:00'))$$, 'the agent reschedules');
select lives_ok($$select public.cancel_appointment((select id from public.appointments where client_name = 'B'), 'Client called')$$, 'the agent cancels');
select is(tests.rows_affected($$delete from public.appointments$$), 0::bigint, 'the agent cannot delete appointments');

-- Agents and keys: ai_agents.manage (owner, admin) only.
select tests.authenticate_as('rx_member');
select throws_ok($$select public.create_ai_agent(tests.org_id('test-rx-salon'), 'Rogue')$$, '42501', null, 'a staff member cannot create agents');
select throws_ok($$select public.create_ai_agent_api_key(pg_temp.id('agent'))$$, '42501', null, 'a staff member cannot issue agent keys');
select tests.authenticate_as('rx_agent');
select throws_ok($$select public.create_ai_agent_api_key(pg_temp.id('agent'))$$, '42501', null, 'an agent cannot issue itself keys');
select throws_ok($$select public.authenticate_ai_agent_key('rk_x')$$, '42501', null, 'an agent cannot resolve keys');
select tests.authenticate_as('rx_admin');
select ok((select api_key like 'rk_%' and char_length(api_key) = 46 from public.create_ai_agent_api_key(pg_temp.id('agent'), 'phone line')), 'an admin issues a key, shown once with the rk_ prefix');
select is((select count(*)::integer from public.ai_agent_api_keys where agent_id = pg_temp.id('agent')), 1, 'an admin sees the key''s record');
select throws_ok($$select key_hash from public.ai_agent_api_keys$$, '42501', null, 'nobody reads a key''s hash');
select tests.authenticate_as('rx_member');
select is_empty($$select 1 from public.ai_agent_api_keys$$, 'a staff member does not see agent keys');
select tests.authenticate_as('rx_stranger');
select is(public.erase_caller_data('+48601234567', null), '{"messages": 0, "appointments": 0, "conversations": 0}'::jsonb, 'a stranger''s erasure reaches only their own organizations');
select tests.clear_authentication();
select is((select count(*)::integer from public.conversations where caller_phone = '+48601234567'), 1, 'the salon''s caller data is untouched by a stranger');
select tests.authenticate_as_anon();
select throws_ok($$select public.erase_caller_data('+48601234567', null)$$, '42501', null, 'anon cannot erase caller data');

-- Deleting the agent removes its identity.
select tests.authenticate_as('rx_owner');
update public.ai_agents set deleted_at = now() where id = pg_temp.id('agent');
select tests.clear_authentication();
select is_empty($$select 1 from auth.users where id = pg_temp.id('agent_user')$$, 'soft-deleting the agent removes its auth.users row');
select is_empty($$select 1 from public.organization_members where user_id = pg_temp.id('agent_user')$$, 'and its membership');
select is((select count(*)::integer from public.conversations where agent_id = pg_temp.id('agent')), 1, 'the agent''s conversations stay on record');

select * from finish();
rollback;
