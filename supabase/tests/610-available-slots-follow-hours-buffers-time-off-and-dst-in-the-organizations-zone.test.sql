-- available_slots() on fixed calendars: working and business hours, buffers on both sides, time off, the first free
-- qualified staff member, idempotent retries, reschedule keeping the old slot, and DST changes in Europe/Warsaw and
-- America/New_York (09:00-17:00 stays local on both sides).
begin;
select plan(27);

-- Fixture (tests.create_receptionist_salon in 000): a salon in Warsaw open Monday-Friday 09:00-17:00; Anna works
-- those hours and cuts hair (60 min, 15 min buffer, 60 min notice, 60 days ahead); Bob works Monday 12:00-17:00.
select tests.create_receptionist_salon();

-- A fixed day: Anna free 09:00-17:00 (8 hourly slots from 09:00 to 16:00), Bob 12:00-17:00 (12:00 to 16:00).
select tests.authenticate_as('rx_owner');
select results_eq($$select to_char(starts_at at time zone 'Europe/Warsaw', 'HH24:MI') from public.available_slots(pg_temp.id('haircut'), pg_temp.at('monday', '00:00'), pg_temp.at('monday', '23:59'), pg_temp.id('anna'), 60)$$,
  $$values ('09:00'), ('10:00'), ('11:00'), ('12:00'), ('13:00'), ('14:00'), ('15:00'), ('16:00')$$,
  'an empty working day offers every hour from opening to the last full slot');
select is((select count(*)::integer from public.available_slots(pg_temp.id('haircut'), pg_temp.at('monday', '00:00'), pg_temp.at('monday', '23:59'), null, 60)), 13,
  'without a staff member, every qualified staff member''s slots are offered');
select is((select count(*)::integer from public.available_slots(pg_temp.id('haircut'), pg_temp.at('monday', '00:00'), pg_temp.at('monday', '23:59'), pg_temp.id('anna'))), 8,
  'the default step is the service''s duration (60 minutes: 09:00 to 16:00)');
select is((select count(*)::integer from public.available_slots(pg_temp.id('haircut'), pg_temp.at('monday', '00:00'), pg_temp.at('monday', '23:59'), pg_temp.id('anna'), 15)), 29,
  'an explicit 15-minute step offers every quarter hour from 09:00 to 16:00');

-- Buffers: a booking at 12:00-13:00 blocks 11:45-13:15; a 60-minute slot with its own 15 minutes may touch that, no more:
-- the last start before is 10:30, the first after 13:30.
select lives_ok($$select public.book_appointment(pg_temp.id('haircut'), pg_temp.at('monday', '12:00'), 'Jan', '+48601234567', null, pg_temp.id('anna'))$$,
  'the owner books Anna at noon');
select results_eq($$select to_char(starts_at at time zone 'Europe/Warsaw', 'HH24:MI') from public.available_slots(pg_temp.id('haircut'), pg_temp.at('monday', '00:00'), pg_temp.at('monday', '23:59'), pg_temp.id('anna'), 15)
                    where starts_at between pg_temp.at('monday', '10:00') and pg_temp.at('monday', '15:00')$$,
  $$values ('10:00'), ('10:15'), ('10:30'), ('13:30'), ('13:45'), ('14:00'), ('14:15'), ('14:30'), ('14:45'), ('15:00')$$,
  'slots keep both buffers clear around the booking');

-- Time off: Bob is off 13:00-14:30; of his 12:00-17:00 hours 12:00-13:00 (ending as it starts) and 14:30 onwards remain.
select tests.clear_authentication();
insert into public.staff_time_off (staff_id, period) values (pg_temp.id('bob'), tstzrange(pg_temp.at('monday', '13:00'), pg_temp.at('monday', '14:30')));
select tests.authenticate_as('rx_owner');
select results_eq($$select to_char(starts_at at time zone 'Europe/Warsaw', 'HH24:MI') from public.available_slots(pg_temp.id('haircut'), pg_temp.at('monday', '00:00'), pg_temp.at('monday', '23:59'), pg_temp.id('bob'), 30)$$,
  $$values ('12:00'), ('14:30'), ('15:00'), ('15:30'), ('16:00')$$,
  'time off removes every slot that would touch it');

-- Booking without a staff member takes the first free qualified one.
select is((select staff_id from public.book_appointment(pg_temp.id('haircut'), pg_temp.at('monday', '15:00'), 'Ewa', '+48601234568')), pg_temp.id('anna'),
  'with no staff given, the first free qualified staff member is booked');
select is((select staff_id from public.book_appointment(pg_temp.id('haircut'), pg_temp.at('monday', '15:00'), 'Iza', '+48601234569')), pg_temp.id('bob'),
  'when the first is taken, the next qualified staff member is booked');
select throws_ok($$select public.book_appointment(pg_temp.id('haircut'), pg_temp.at('monday', '15:00'), 'Ola', '+48601234560')$$,
  '23P01', null, 'when every qualified staff member is taken the slot is taken');
select is((select count(*)::integer from public.available_slots(pg_temp.id('haircut'), pg_temp.at('monday', '15:00'), pg_temp.at('monday', '15:01'))), 0,
  'a slot booked by everyone is no longer offered');

-- Idempotency, cancelling and rescheduling.
select is((select id from public.book_appointment(pg_temp.id('haircut'), pg_temp.at('monday', '09:00'), 'Kim', '+48601234561', null, null, null, 'call-42')),
          (select id from public.book_appointment(pg_temp.id('haircut'), pg_temp.at('monday', '09:00'), 'Kim', '+48601234561', null, null, null, 'call-42')),
  'a retry with the same idempotency key returns the same appointment');
select is((select count(*)::integer from public.appointments where idempotency_key = 'call-42'), 1, 'and makes one appointment');
select is((select id from public.book_appointment(pg_temp.id('haircut'), pg_temp.at('monday', '09:00'), 'Kim', '+48601234561', null,
                                                  (select staff_id from public.appointments where idempotency_key = 'call-42'), null, 'call-42')),
          (select id from public.appointments where idempotency_key = 'call-42'),
  'a retry naming the booked staff member returns it too (its own booking holds the slot)');
select is((select id from public.book_appointment(pg_temp.id('haircut'), pg_temp.at('monday', '03:00'), 'Kim', '+48601234561', null, null, null, 'call-42')),
          (select id from public.appointments where idempotency_key = 'call-42'),
  'a retry whose time no longer passes the checks (outside business hours) still returns the booking it repeats');
select tests.clear_authentication();
update public.staff set is_active = false where id in (pg_temp.id('anna'), pg_temp.id('bob'));
select tests.authenticate_as('rx_owner');
select is((select id from public.book_appointment(pg_temp.id('haircut'), pg_temp.at('monday', '09:00'), 'Kim', '+48601234561', null, null, null, 'call-42')),
          (select id from public.appointments where idempotency_key = 'call-42'),
  'a retry when no staff member qualifies any more still returns the booking it repeats');
select tests.clear_authentication();
update public.staff set is_active = true where id in (pg_temp.id('anna'), pg_temp.id('bob'));
select tests.authenticate_as('rx_owner');
insert into ids select 'kim', id from public.appointments where idempotency_key = 'call-42';
select throws_ok($$select public.reschedule_appointment(pg_temp.id('kim'), pg_temp.at('monday', '12:30'))$$,
  '23P01', null, 'rescheduling into a taken slot is refused');
select is((select to_char(scheduled_at at time zone 'Europe/Warsaw', 'HH24:MI') from public.appointments where id = pg_temp.id('kim')), '09:00',
  'and the appointment keeps its old slot');
select is((select to_char(ends_at at time zone 'Europe/Warsaw', 'HH24:MI') from public.reschedule_appointment(pg_temp.id('kim'), pg_temp.at('monday', '10:00'))), '11:00',
  'rescheduling into a free slot moves the appointment and its end');
select is((select status from public.cancel_appointment(pg_temp.id('kim'), 'Caller changed plans')), 'cancelled', 'cancel_appointment cancels');
select ok(exists (select 1 from public.available_slots(pg_temp.id('haircut'), pg_temp.at('monday', '10:00'), pg_temp.at('monday', '10:01'), pg_temp.id('anna'))),
  'a cancelled appointment frees its slot');
select throws_ok($$select public.cancel_appointment(pg_temp.id('kim'), 'again')$$, '23514', null, 'a cancelled appointment cannot be cancelled again');

-- DST: the next change of clocks in Warsaw and in New York. A 09:00-17:00 day stays 09:00-17:00 local on the day
-- before, the day of and the day after the change, so its UTC times move by an hour.
select tests.clear_authentication();
insert into days
select 'warsaw_change', d::date from generate_series(current_date + 2, current_date + 400, interval '1 day') d
where ((d::date + 1)::timestamp at time zone 'Europe/Warsaw') - (d::date::timestamp at time zone 'Europe/Warsaw') <> interval '24 hours'
order by d limit 1;
insert into days
select 'new_york_change', d::date from generate_series(current_date + 2, current_date + 400, interval '1 day') d
where ((d::date + 1)::timestamp at time zone 'America/New_York') - (d::date::timestamp at time zone 'America/New_York') <> interval '24 hours'
order by d limit 1;
update public.services set max_advance_booking_days = 730 where id = pg_temp.id('haircut');
update public.organizations set business_hours = '{}' where id = tests.org_id('test-rx-salon');
insert into public.staff_working_hours (staff_id, weekday, start_time, end_time)
select pg_temp.id('anna'), d, '09:00', '17:00' from unnest(array[0, 6]) d;
create function pg_temp.dst_slots(tz text, change_day date) returns table (local_day date, local_times text, first_utc timestamptz)
language sql as $$
  select (s.starts_at at time zone tz)::date, string_agg(to_char(s.starts_at at time zone tz, 'HH24:MI'), ' ' order by s.starts_at), min(s.starts_at)
  from public.available_slots(pg_temp.id('haircut'), (change_day - 1)::timestamp at time zone tz, (change_day + 2)::timestamp at time zone tz, pg_temp.id('anna'), 60) s
  group by 1 order by 1
$$;
grant execute on function pg_temp.dst_slots(text, date) to authenticated;
update public.organizations set timezone = 'Europe/Warsaw' where id = tests.org_id('test-rx-salon');
select tests.authenticate_as('rx_owner');
select results_eq($$select local_day - (select day from days where name = 'warsaw_change'), local_times from pg_temp.dst_slots('Europe/Warsaw', (select day from days where name = 'warsaw_change'))$$,
  $$values (-1, '09:00 10:00 11:00 12:00 13:00 14:00 15:00 16:00'), (0, '09:00 10:00 11:00 12:00 13:00 14:00 15:00 16:00'), (1, '09:00 10:00 11:00 12:00 13:00 14:00 15:00 16:00')$$,
  'Europe/Warsaw: 09:00-17:00 local before, on and after the change of clocks');
select is((select abs(extract(epoch from (max(first_utc) - min(first_utc)))::integer - 2 * 86400) from pg_temp.dst_slots('Europe/Warsaw', (select day from days where name = 'warsaw_change'))), 3600,
  'Europe/Warsaw: the first slot''s UTC time moves by one hour across the change');
select tests.clear_authentication();
update public.organizations set timezone = 'America/New_York' where id = tests.org_id('test-rx-salon');
select tests.authenticate_as('rx_owner');
select results_eq($$select local_day - (select day from days where name = 'new_york_change'), local_times from pg_temp.dst_slots('America/New_York', (select day from days where name = 'new_york_change'))$$,
  $$values (-1, '09:00 10:00 11:00 12:00 13:00 14:00 15:00 16:00'), (0, '09:00 10:00 11:00 12:00 13:00 14:00 15:00 16:00'), (1, '09:00 10:00 11:00 12:00 13:00 14:00 15:00 16:00')$$,
  'America/New_York: 09:00-17:00 local before, on and after the change of clocks');
select is((select abs(extract(epoch from (max(first_utc) - min(first_utc)))::integer - 2 * 86400) from pg_temp.dst_slots('America/New_York', (select day from days where name = 'new_york_change'))), 3600,
  'America/New_York: the first slot''s UTC time moves by one hour across the change');
select lives_ok($$select public.book_appointment(pg_temp.id('haircut'), ((select day from days where name = 'new_york_change') + time '09:00') at time zone 'America/New_York', 'Nat', '+12125550100', null, pg_temp.id('anna'))$$,
  'a slot offered on the day of the change can be booked');

select * from finish();
rollback;
