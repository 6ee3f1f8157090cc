-- AI receptionist: appointments (no double booking: an exclusion constraint over the range with buffers) and the
-- availability helpers; available_slots(), book_appointment(), cancel_appointment(), reschedule_appointment().

create table public.appointments (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  service_id uuid not null,
  staff_id uuid not null,
  conversation_id uuid,
  client_name text,
  client_phone text,
  client_email public.email_address,
  scheduled_at timestamptz not null,
  service_duration integer not null,
  service_type text not null,
  service_price numeric(10, 2) not null,
  service_currency text not null,
  booking_buffer integer not null default 0,
  ends_at timestamptz not null,
  blocked_range tstzrange not null,
  status text not null default 'scheduled',
  cancellation_reason text,
  cancelled_at timestamptz,
  confirmation_sent_at timestamptz,
  reminder_sent_at timestamptz,
  calendar_event_id text,
  notes text,
  metadata jsonb not null default '{}'::jsonb,
  idempotency_key text,
  created_by uuid default auth.uid(),
  client_data_cleared_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint appointments_pkey primary key (id),
  constraint appointments_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint appointments_service_id_fkey foreign key (service_id) references public.services (id) on delete restrict,
  constraint appointments_staff_id_fkey foreign key (staff_id) references public.staff (id) on delete restrict,
  constraint appointments_conversation_id_fkey foreign key (conversation_id) references public.conversations (id) on delete set null,
  constraint appointments_idempotency_key_key unique (organization_id, idempotency_key),
  constraint appointments_status_known check (status in ('scheduled', 'confirmed', 'completed', 'cancelled', 'no_show')),
  constraint appointments_cancellation_reason_required check (status <> 'cancelled'
    or (cancellation_reason is not null and char_length(btrim(cancellation_reason)) between 1 and 500)),
  constraint appointments_client_present check (client_data_cleared_at is not null
    or (client_name is not null and char_length(btrim(client_name)) between 1 and 200 and client_phone is not null)),
  constraint appointments_client_phone_format check (client_phone is null or client_phone ~ '^\+?[0-9][0-9 ()./-]{5,30}$'),
  constraint appointments_service_duration_positive check (service_duration > 0),
  constraint appointments_service_price_not_negative check (service_price >= 0),
  constraint appointments_booking_buffer_not_negative check (booking_buffer >= 0),
  constraint appointments_ends_after_start check (ends_at > scheduled_at),
  constraint appointments_notes_length check (notes is null or char_length(notes) <= 5000),
  constraint appointments_metadata_object check (jsonb_typeof(metadata) = 'object'),
  constraint appointments_idempotency_key_length check (idempotency_key is null or char_length(idempotency_key) between 1 and 200),
  constraint appointments_no_double_booking exclude using gist (staff_id with =, blocked_range with &&)
    where (status in ('scheduled', 'confirmed'))
);
comment on table public.appointments is 'Booked appointments (seed 003). Service fields are copied at booking; ends_at and blocked_range are maintained by trigger; no two active appointments of one staff member overlap, buffers included (appointments_no_double_booking, 23P01 "slot taken").';
comment on column public.appointments.scheduled_at is 'The start.';
comment on column public.appointments.blocked_range is 'Derived: [scheduled_at - booking_buffer, ends_at + booking_buffer), what the exclusion constraint compares.';
comment on column public.appointments.ends_at is 'Derived: scheduled_at + service_duration minutes.';
comment on column public.appointments.service_type is 'The service''s name at booking (the seed''s service_type).';
comment on column public.appointments.client_phone is 'Client contact data (personal data): cleared by retention after completion plus the retention period, and by erase_caller_data().';
comment on column public.appointments.created_by is 'Who booked (a staff member''s or an agent''s auth.users id). No foreign key: the record outlives a deleted agent''s identity.';
comment on column public.appointments.idempotency_key is 'A booking retried with the same key (per organization) returns the first booking.';

create index appointments_organization_id_idx on public.appointments (organization_id, scheduled_at);
create index appointments_service_id_idx on public.appointments (service_id);
create index appointments_staff_id_idx on public.appointments (staff_id, scheduled_at);
create index appointments_conversation_id_idx on public.appointments (conversation_id);
create index appointments_client_phone_idx on public.appointments (organization_id, client_phone) where client_phone is not null;

alter table public.messages add constraint messages_appointment_id_fkey
  foreign key (appointment_id) references public.appointments (id) on delete set null;

-- Copies the service, derives ends_at and blocked_range, enforces the status lifecycle and, whenever an active
-- appointment gets a time or a staff member, checks it against the schedule. security definer: the checks must see
-- every appointment and the schedule whatever the writer may read; the write itself is gated by RLS.
create function private.prepare_appointment() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  svc public.services;
  org public.organizations;
  slot tstzrange;
  needs_check boolean;
  local_day date;
  day_hours jsonb;
begin
  if tg_op = 'INSERT' then
    select s.* into svc from public.services s where s.id = new.service_id;
    if svc.id is null or svc.deleted_at is not null or not svc.is_active then
      raise exception 'service % cannot be booked', new.service_id
        using errcode = '23514', constraint = 'appointments_service_bookable', hint = 'Book an active service.';
    end if;
    new.organization_id := svc.organization_id;
    new.service_duration := svc.duration;
    new.service_type := svc.name;
    new.service_price := svc.price;
    new.service_currency := svc.currency;
    new.booking_buffer := svc.booking_buffer;
    if new.status not in ('scheduled', 'confirmed') then
      raise exception 'a new appointment is scheduled or confirmed (got %)', new.status
        using errcode = '23514', constraint = 'appointments_status_transition';
    end if;
    needs_check := true;
  else
    new.organization_id := old.organization_id;
    new.service_id := old.service_id;
    new.service_duration := old.service_duration;
    new.service_type := old.service_type;
    new.service_price := old.service_price;
    new.service_currency := old.service_currency;
    new.booking_buffer := old.booking_buffer;
    new.idempotency_key := old.idempotency_key;
    if new.status is distinct from old.status and not (old.status, new.status) in (
         ('scheduled', 'confirmed'), ('scheduled', 'cancelled'), ('scheduled', 'completed'), ('scheduled', 'no_show'),
         ('confirmed', 'cancelled'), ('confirmed', 'completed'), ('confirmed', 'no_show')) then
      raise exception 'an appointment cannot go from % to %', old.status, new.status
        using errcode = '23514', constraint = 'appointments_status_transition',
              hint = 'scheduled -> confirmed -> completed | no_show; scheduled or confirmed -> cancelled.';
    end if;
    if new.status = 'cancelled' and old.status <> 'cancelled' then
      new.cancelled_at := pg_catalog.now();
    end if;
    needs_check := (new.scheduled_at, new.staff_id) is distinct from (old.scheduled_at, old.staff_id);
    if needs_check and old.status not in ('scheduled', 'confirmed') then
      raise exception 'a % appointment cannot be moved', old.status
        using errcode = '23514', constraint = 'appointments_status_transition';
    end if;
    select s.* into svc from public.services s where s.id = new.service_id;
  end if;

  new.ends_at := new.scheduled_at + make_interval(mins => new.service_duration);
  new.blocked_range := tstzrange(new.scheduled_at - make_interval(mins => new.booking_buffer),
                                 new.ends_at + make_interval(mins => new.booking_buffer), '[)');

  if needs_check and new.status in ('scheduled', 'confirmed') then
    slot := tstzrange(new.scheduled_at, new.ends_at, '[)');
    if not exists (select 1 from public.staff st join public.staff_services ss on ss.staff_id = st.id
                   where st.id = new.staff_id and st.organization_id = new.organization_id and st.is_active
                     and st.deleted_at is null and ss.service_id = new.service_id) then
      raise exception 'staff member % does not perform this service (or is inactive)', new.staff_id
        using errcode = '23514', constraint = 'appointments_staff_performs_service';
    end if;
    if new.conversation_id is not null then
      if not exists (select 1 from public.conversations c
                     where c.id = new.conversation_id and c.organization_id = new.organization_id) then
        raise exception 'conversation % belongs to another organization', new.conversation_id
          using errcode = '23514', constraint = 'appointments_conversation_same_organization';
      end if;
    end if;
    if new.scheduled_at < pg_catalog.now() + make_interval(mins => svc.min_notice_minutes) then
      raise exception 'the appointment starts too soon: % needs % minutes'' notice', svc.name, svc.min_notice_minutes
        using errcode = '23514', constraint = 'appointments_min_notice', hint = 'Offer a later slot (available_slots).';
    end if;
    if new.scheduled_at > pg_catalog.now() + make_interval(days => svc.max_advance_booking_days) then
      raise exception 'the appointment is too far ahead: % books at most % days in advance', svc.name, svc.max_advance_booking_days
        using errcode = '23514', constraint = 'appointments_max_advance', hint = 'Offer an earlier slot (available_slots).';
    end if;
    -- Every window lies within one local day (a close of 24:00 at the latest), so only the start's local day can
    -- hold the slot: the same windows as available_slots() computes, for that one day.
    select o.* into org from public.organizations o where o.id = new.organization_id;
    local_day := (new.scheduled_at at time zone org.timezone)::date;
    day_hours := org.business_hours -> (array['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'])
                                       [extract(dow from local_day)::integer + 1];
    if org.business_hours <> '{}'::jsonb and (jsonb_typeof(day_hours) is distinct from 'object'
       or not tstzrange((local_day + (day_hours ->> 'open')::time) at time zone org.timezone,
                        (local_day + (day_hours ->> 'close')::time) at time zone org.timezone) @> slot) then
      raise exception 'the appointment is outside business hours' using errcode = '23514',
        constraint = 'appointments_within_business_hours', hint = 'Offer a slot from available_slots.';
    end if;
    if not exists (select 1 from public.staff_working_hours w
                   where w.staff_id = new.staff_id and w.weekday = extract(dow from local_day)::integer
                     and tstzrange((local_day + w.start_time) at time zone org.timezone,
                                   (local_day + w.end_time) at time zone org.timezone) @> slot) then
      raise exception 'the appointment is outside the staff member''s working hours' using errcode = '23514',
        constraint = 'appointments_within_working_hours', hint = 'Offer a slot from available_slots.';
    end if;
    if exists (select 1 from public.staff_time_off t where t.staff_id = new.staff_id and t.period && slot) then
      raise exception 'the staff member is off at that time' using errcode = '23514',
        constraint = 'appointments_outside_time_off', hint = 'Offer a slot from available_slots.';
    end if;
    -- The exclusion constraint decides races; this check only gives the common case its hint.
    if exists (select 1 from public.appointments a
               where a.staff_id = new.staff_id and a.status in ('scheduled', 'confirmed') and a.id <> new.id
                 and a.blocked_range && new.blocked_range) then
      raise exception 'the slot is taken for this staff member' using errcode = '23P01',
        constraint = 'appointments_no_double_booking', hint = 'slot taken';
    end if;
  end if;
  return new;
end;
$$;

create trigger appointments_prepare before insert or update on public.appointments
  for each row execute function private.prepare_appointment();
create trigger appointments_set_updated_at before update on public.appointments
  for each row execute function private.set_updated_at();
create trigger appointments_audit after insert or update or delete on public.appointments
  for each row execute function private.audit_row_change();

create function private.emit_appointment_event() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  event text;
begin
  if tg_op = 'INSERT' then
    event := 'appointment.booked';
  elsif new.status is distinct from old.status then
    event := 'appointment.' || new.status;
  elsif (new.scheduled_at, new.staff_id) is distinct from (old.scheduled_at, old.staff_id) then
    event := 'appointment.rescheduled';
  else
    return null;
  end if;
  perform private.emit_event(new.organization_id, event,
    jsonb_build_object('appointment_id', new.id, 'service_id', new.service_id, 'staff_id', new.staff_id,
                       'conversation_id', new.conversation_id, 'status', new.status, 'scheduled_at', new.scheduled_at,
                       'ends_at', new.ends_at, 'service_type', new.service_type));
  return null;
end;
$$;

create trigger appointments_emit_event after insert or update of status, scheduled_at, staff_id on public.appointments
  for each row execute function private.emit_appointment_event();

alter table public.appointments enable row level security;

-- appointments_select: receptionist readers see the organization's appointments.
create policy appointments_select on public.appointments for select to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.read')));
-- appointments_insert: receptionist.operate holders (agents, staff) book.
create policy appointments_insert on public.appointments for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('receptionist.operate')));
-- appointments_update: receptionist.operate holders confirm, cancel, reschedule.
create policy appointments_update on public.appointments for update to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.operate')))
  with check (organization_id in (select private.organizations_with_permission('receptionist.operate')));
-- appointments_delete: receptionist.manage holders delete (cancelling is the usual way).
create policy appointments_delete on public.appointments for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.manage')));

grant select, delete on public.appointments to authenticated, service_role;
grant insert (service_id, staff_id, conversation_id, client_name, client_phone, client_email, scheduled_at, status,
              notes, metadata, idempotency_key, calendar_event_id),
      update (staff_id, scheduled_at, status, cancellation_reason, confirmation_sent_at, reminder_sent_at, notes,
              metadata, calendar_event_id)
  on public.appointments to authenticated, service_role;

-- The candidate starts of available_slots(), once it has found the service and its staff under RLS: the schedule of
-- those staff members (working hours, appointments, time off) read as the definer, so that no table's policy runs
-- its permission subquery again. A candidate start s is free for a staff member when no forbidden-start range
-- contains it: an appointment blocking [a, b) forbids (a - duration - buffer, b + buffer), time off [t1, t2) forbids
-- (t1 - duration, t2); each staff member's forbidden starts are one multirange, aggregated from probes of the
-- exclusion constraint's index and staff_time_off's by (staff_id, range) of that organization only. Every window lies
-- within one local day, so a staff member's working hours meet the business hours of that day only; the zone
-- conversions are made once per day (business hours) and once per working-hours row and day, not per candidate, and
-- each window's steps start at the first step (counted from the window's opening) at or after `earliest` and stop
-- before `latest`, so no candidate outside the range is generated.
create function private.slot_candidates(organization uuid, staff_ids uuid[], zone text, hours jsonb, earliest timestamptz,
                                        latest timestamptz, duration interval, buffer interval, step interval)
returns table (staff_id uuid, starts_at timestamptz, ends_at timestamptz)
language plpgsql stable security definer
set search_path = ''
as $$
declare
  booked_probe tstzrange := tstzrange(earliest - duration - buffer, latest + duration + buffer);
  off_probe tstzrange := tstzrange(earliest - duration, latest + duration);
  step_seconds numeric := extract(epoch from step);
  last_start timestamptz := latest - interval '1 microsecond';
begin
  return query
  with days as materialized (
    -- each local day of the range (and the one before) that is open, with its business hours as instants (null: no
    -- business-hours limit, which greatest() and least() below skip)
    select d.day, d.dow,
           case when hours <> '{}'::jsonb then (d.day + (d.spec ->> 'open')::time) at time zone zone end as opens,
           case when hours <> '{}'::jsonb then (d.day + (d.spec ->> 'close')::time) at time zone zone end as closes
    from (
      select g::date as day, extract(dow from g)::integer as dow,
             hours -> (array['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'])
                      [extract(dow from g)::integer + 1] as spec
      from generate_series((earliest at time zone zone)::date - 1, ((latest + duration) at time zone zone)::date,
                           interval '1 day') g
    ) d
    where hours = '{}'::jsonb or jsonb_typeof(d.spec) = 'object'
  ),
  windows as materialized (
    -- working hours met with business hours: the window's opening and its last possible start
    select w.staff_id,
           greatest((d.day + w.start_time) at time zone zone, d.opens) as opens,
           least((d.day + w.end_time) at time zone zone, d.closes) - duration as last_open
    from days d
    join public.staff_working_hours w on w.weekday = d.dow
    where w.organization_id = organization and w.staff_id = any (staff_ids)
  ),
  forbidden as materialized (
    select u.id as staff_id,
           (select range_agg(f.r)
            from (
              select tstzrange(lower(a.blocked_range) - duration - buffer, upper(a.blocked_range) + buffer, '()') as r
              from public.appointments a
              where a.staff_id = u.id and a.blocked_range && booked_probe and a.status in ('scheduled', 'confirmed')
                and a.organization_id = organization
              union all
              select tstzrange(lower(t.period) - duration, upper(t.period), '()')
              from public.staff_time_off t
              where t.staff_id = u.id and t.period && off_probe and t.organization_id = organization
            ) f) as starts
    from unnest(staff_ids) u(id)
  )
  select c.staff_id, c.s, c.s + duration
  from (
    select w.staff_id, f.starts,
           generate_series(w.opens + step * ceil(greatest(extract(epoch from earliest - w.opens), 0) / step_seconds),
                           least(w.last_open, last_start), step) as s
    from windows w join forbidden f on f.staff_id = w.staff_id
    where w.last_open >= earliest and w.opens < latest
  ) c
  where c.starts is null or not c.starts @> c.s
  order by 2, 1;
end;
$$;
comment on function private.slot_candidates(uuid, uuid[], text, jsonb, timestamptz, timestamptz, interval, interval, interval) is 'Free starts of the given staff members between two instants (working and business hours in the zone, appointments with buffers, time off; one forbidden-start multirange per staff member, read by staff and range), ordered by start and staff. Internal to available_slots(), which checks the caller''s access first.';
grant execute on function private.slot_candidates(uuid, uuid[], text, jsonb, timestamptz, timestamptz, interval, interval, interval)
  to authenticated, service_role;

-- Free slots of a service: the service and its qualified active staff read under RLS (the caller's access), then
-- private.slot_candidates() for business and working hours in the organization's time zone, existing appointments and
-- buffers (the candidate's and theirs), time off, minimum notice and advance window. Candidates step by
-- slot_step_minutes, by default the service's duration (as Cal.com does), from the start of each open window.
create function public.available_slots(service_id uuid, range_start timestamptz, range_end timestamptz,
                                       only_staff_id uuid default null, slot_step_minutes int default null)
returns table (staff_id uuid, starts_at timestamptz, ends_at timestamptz)
language plpgsql stable
set search_path = ''
as $$
declare
  svc public.services;
  zone text;
  hours jsonb;
  duration interval;
  buffer interval;
  step interval;
  earliest timestamptz;
  latest timestamptz;
  staff_ids uuid[];
begin
  if range_start is null or range_end is null or range_end <= range_start then
    raise exception 'range_end must be after range_start' using errcode = '22023';
  end if;
  if range_end - range_start > interval '62 days' then
    raise exception 'a range covers at most 62 days (got %)', range_end - range_start using errcode = '22023',
      hint = 'Ask for a shorter range.';
  end if;
  if slot_step_minutes is not null and slot_step_minutes not between 5 and 1440 then
    raise exception 'slot_step_minutes must be between 5 and 1440' using errcode = '22023';
  end if;
  select s.* into svc from public.services s where s.id = available_slots.service_id and s.deleted_at is null;
  if svc.id is null then
    raise exception 'service % not found', available_slots.service_id using errcode = 'P0002';
  end if;
  if not svc.is_active then
    return;
  end if;
  duration := make_interval(mins => svc.duration);
  buffer := make_interval(mins => svc.booking_buffer);
  step := make_interval(mins => coalesce(slot_step_minutes, svc.duration));
  earliest := greatest(range_start, pg_catalog.now() + make_interval(mins => svc.min_notice_minutes));
  latest := least(range_end, pg_catalog.now() + make_interval(days => svc.max_advance_booking_days) + interval '1 microsecond');
  if earliest >= latest then
    return;
  end if;
  select o.timezone, o.business_hours into zone, hours from public.organizations o where o.id = svc.organization_id;

  select array_agg(st.id) into staff_ids
  from public.staff st join public.staff_services ss on ss.staff_id = st.id
  where ss.service_id = svc.id and st.organization_id = svc.organization_id and st.is_active and st.deleted_at is null
    and (only_staff_id is null or st.id = only_staff_id);
  if staff_ids is null then
    return;
  end if;
  return query
  select c.staff_id, c.starts_at, c.ends_at
  from private.slot_candidates(svc.organization_id, staff_ids, zone, hours, earliest, latest, duration, buffer, step) c;
end;
$$;
comment on function public.available_slots(uuid, timestamptz, timestamptz, uuid, integer) is 'Free slots (staff, start, end) of a service in a range of at most 62 days (22023 beyond): business and working hours in the organization''s time zone (DST-correct), buffers, time off, existing appointments, notice and advance window. Steps of slot_step_minutes (default: the service''s duration) from the start of each open window. Under RLS (receptionist.read).';
grant execute on function public.available_slots(uuid, timestamptz, timestamptz, uuid, integer) to authenticated, service_role;

create function public.book_appointment(service_id uuid, starts_at timestamptz, client_name text, client_phone text,
                                        client_email text default null, staff_id uuid default null,
                                        conversation_id uuid default null, idempotency_key text default null)
returns public.appointments
language plpgsql
set search_path = ''
as $$
declare
  svc public.services;
  booked public.appointments;
  candidates uuid[];
  candidate uuid;
  taken boolean := false;
  last_state text;
  last_message text;
  last_constraint text;
  last_hint text;
begin
  select s.* into svc from public.services s where s.id = book_appointment.service_id;
  if svc.id is null then
    raise exception 'service % not found', book_appointment.service_id using errcode = 'P0002';
  end if;
  -- A given staff member is the only candidate: prepare_appointment() checks that they perform the service (23514,
  -- appointments_staff_performs_service). Without one, the qualified staff in a fixed order.
  if book_appointment.staff_id is not null then
    candidates := array[book_appointment.staff_id];
  else
    candidates := array(
      select st.id from public.staff st join public.staff_services ss on ss.staff_id = st.id
      where ss.service_id = svc.id and st.organization_id = svc.organization_id and st.is_active and st.deleted_at is null
      order by st.created_at, st.name, st.id);
  end if;

  -- The first try, the common case, runs no lookup for an earlier booking with this key: a retry is refused by the
  -- key's unique index (or first by the slot its own booking holds, or a check its time no longer passes), and is
  -- answered after the loop.
  foreach candidate in array candidates loop
    begin
      insert into public.appointments (service_id, staff_id, conversation_id, client_name, client_phone, client_email,
                                       scheduled_at, idempotency_key)
      values (svc.id, candidate, book_appointment.conversation_id, book_appointment.client_name,
              book_appointment.client_phone, book_appointment.client_email, book_appointment.starts_at,
              book_appointment.idempotency_key)
      returning * into booked;
      return booked;
    exception
      when exclusion_violation or unique_violation or check_violation then
        get stacked diagnostics last_state = returned_sqlstate, last_message = message_text,
                                last_constraint = constraint_name, last_hint = pg_exception_hint;
        -- A taken slot or a failed check lets the next candidate try; a key already used ends the search.
        exit when last_state = '23505';
        taken := taken or last_state = '23P01';
    end;
  end loop;

  -- A retry answers with the booking it repeats, whatever refused it (also when no staff member qualifies any more).
  if book_appointment.idempotency_key is not null then
    select a.* into booked from public.appointments a
    where a.organization_id = svc.organization_id and a.idempotency_key = book_appointment.idempotency_key;
    if booked.id is not null then
      return booked;
    end if;
  end if;
  if cardinality(candidates) = 0 then
    raise exception 'no active staff member performs this service'
      using errcode = '23514', constraint = 'appointments_staff_performs_service';
  end if;
  if last_state = '23505' then
    raise exception '%', last_message using errcode = '23505', constraint = last_constraint;
  end if;
  if taken then
    raise exception 'slot taken: % at % is no longer free', svc.name, book_appointment.starts_at
      using errcode = '23P01', constraint = 'appointments_no_double_booking', hint = 'slot taken';
  end if;
  raise exception '%', last_message using errcode = last_state, constraint = coalesce(last_constraint, ''),
    hint = coalesce(last_hint, '');
end;
$$;
comment on function public.book_appointment(uuid, timestamptz, text, text, text, uuid, uuid, text) is 'Books a service at a start time with the given staff member or the first free qualified one (by creation time, then name); a retry with the same idempotency key returns the same appointment; a taken slot is 23P01 with hint "slot taken". Under RLS (receptionist.operate).';
grant execute on function public.book_appointment(uuid, timestamptz, text, text, text, uuid, uuid, text) to authenticated, service_role;

create function public.cancel_appointment(appointment_id uuid, reason text)
returns public.appointments
language plpgsql
set search_path = ''
as $$
declare
  changed public.appointments;
begin
  update public.appointments a set status = 'cancelled', cancellation_reason = reason
  where a.id = appointment_id and a.status in ('scheduled', 'confirmed')
  returning * into changed;
  if changed.id is null then
    select a.* into changed from public.appointments a where a.id = appointment_id;
    if changed.id is null then
      raise exception 'appointment % not found', appointment_id using errcode = 'P0002';
    end if;
    raise exception 'a % appointment cannot be cancelled', changed.status using errcode = '23514',
      constraint = 'appointments_status_transition';
  end if;
  return changed;
end;
$$;
comment on function public.cancel_appointment(uuid, text) is 'Cancels an appointment (a reason is required; the slot becomes free). Under RLS (receptionist.operate).';
grant execute on function public.cancel_appointment(uuid, text) to authenticated, service_role;

create function public.reschedule_appointment(appointment_id uuid, new_starts_at timestamptz)
returns public.appointments
language plpgsql
set search_path = ''
as $$
declare
  changed public.appointments;
begin
  update public.appointments a set scheduled_at = new_starts_at
  where a.id = appointment_id
  returning * into changed;
  if changed.id is null then
    raise exception 'appointment % not found', appointment_id using errcode = 'P0002';
  end if;
  return changed;
exception
  when exclusion_violation then
    raise exception 'slot taken: the appointment keeps its time' using errcode = '23P01',
      constraint = 'appointments_no_double_booking', hint = 'slot taken';
end;
$$;
comment on function public.reschedule_appointment(uuid, timestamptz) is 'Moves an active appointment to a new start, same staff member, atomically: when the new slot is taken (23P01 "slot taken") or not allowed, the old one is kept. Under RLS (receptionist.operate).';
grant execute on function public.reschedule_appointment(uuid, timestamptz) to authenticated, service_role;
