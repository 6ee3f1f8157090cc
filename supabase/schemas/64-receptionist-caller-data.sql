-- AI receptionist: caller-data retention per organization (receptionist_settings, pg_cron), erase_caller_data(),
-- and a staff member's own receptionist data for export_my_data().

create table public.receptionist_settings (
  organization_id uuid not null,
  caller_data_retention_days integer not null default 90,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint receptionist_settings_pkey primary key (organization_id),
  constraint receptionist_settings_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint receptionist_settings_retention_range check (caller_data_retention_days between 1 and 3650)
);
comment on table public.receptionist_settings is 'Per-organization receptionist settings. Without a row, caller data is kept 90 days.';
comment on column public.receptionist_settings.caller_data_retention_days is 'Days after which conversations'' caller fields, transcripts and recordings, messages'' addresses and bodies, and (counted from the appointment''s end) appointments'' client contacts are cleared.';

create trigger receptionist_settings_set_updated_at before update on public.receptionist_settings
  for each row execute function private.set_updated_at();
create trigger receptionist_settings_audit after insert or update or delete on public.receptionist_settings
  for each row execute function private.audit_row_change();

alter table public.receptionist_settings enable row level security;

-- receptionist_settings_select: receptionist readers see the setting.
create policy receptionist_settings_select on public.receptionist_settings for select to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.read')));
-- receptionist_settings_insert: receptionist.manage holders set it.
create policy receptionist_settings_insert on public.receptionist_settings for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('receptionist.manage')));
-- receptionist_settings_update: receptionist.manage holders change it.
create policy receptionist_settings_update on public.receptionist_settings for update to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.manage')))
  with check (organization_id in (select private.organizations_with_permission('receptionist.manage')));

grant select on public.receptionist_settings to authenticated, service_role;
grant insert (organization_id, caller_data_retention_days), update (caller_data_retention_days)
  on public.receptionist_settings to authenticated, service_role;

-- Clears caller data past each organization's retention period; logged in metrics_log (counts only). Run nightly
-- by pg_cron; `as_of` lets tests move the clock.
create function private.apply_caller_data_retention(as_of timestamptz default now()) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  conversations_cleared bigint;
  messages_cleared bigint;
  appointments_cleared bigint;
  summary jsonb;
begin
  with expired as (
    select o.id, make_interval(days => coalesce(r.caller_data_retention_days, 90)) as keep
    from public.organizations o left join public.receptionist_settings r on r.organization_id = o.id
  )
  update public.conversations c
  set caller_phone = null, caller_name = null, caller_email = null, transcript = '[]'::jsonb, recording_url = null,
      caller_data_cleared_at = as_of
  from expired e
  where c.organization_id = e.id and c.caller_data_cleared_at is null and coalesce(c.ended_at, c.started_at) < as_of - e.keep;
  get diagnostics conversations_cleared = row_count;

  with expired as (
    select o.id, make_interval(days => coalesce(r.caller_data_retention_days, 90)) as keep
    from public.organizations o left join public.receptionist_settings r on r.organization_id = o.id
  )
  update public.messages m
  set from_number = null, to_number = null, from_email = null, to_email = null, subject = null, body = '[removed]',
      caller_data_cleared_at = as_of
  from expired e
  where m.organization_id = e.id and m.caller_data_cleared_at is null and m.created_at < as_of - e.keep;
  get diagnostics messages_cleared = row_count;

  with expired as (
    select o.id, make_interval(days => coalesce(r.caller_data_retention_days, 90)) as keep
    from public.organizations o left join public.receptionist_settings r on r.organization_id = o.id
  )
  update public.appointments a
  set client_name = null, client_phone = null, client_email = null, notes = null, client_data_cleared_at = as_of
  from expired e
  where a.organization_id = e.id and a.client_data_cleared_at is null
    and a.status in ('completed', 'cancelled', 'no_show') and a.ends_at < as_of - e.keep;
  get diagnostics appointments_cleared = row_count;

  summary := jsonb_build_object('conversations', conversations_cleared, 'messages', messages_cleared,
                                'appointments', appointments_cleared);
  insert into public.metrics_log (source, metric, value, details)
  values ('receptionist_caller_retention', 'rows_cleared', conversations_cleared + messages_cleared + appointments_cleared,
          summary);
  return summary;
end;
$$;
comment on function private.apply_caller_data_retention(timestamptz) is 'Clears receptionist caller data older than each organization''s retention (default 90 days); logs the counts in metrics_log. pg_cron, nightly.';

select cron.schedule('receptionist-caller-retention', '50 2 * * *', $$select private.apply_caller_data_retention()$$);

-- A caller's right to erasure: the caller is not a user, so a receptionist.manage holder erases on their behalf, in
-- every organization where the holder has that permission. Matches phone numbers by digits and e-mail
-- case-insensitively. Logged in metrics_log with counts only (never the phone or address).
create function public.erase_caller_data(phone text, email text)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  digits text := nullif(regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g'), '');
  address text := nullif(lower(btrim(coalesce(email, ''))), '');
  orgs uuid[];
  conversations_cleared bigint;
  messages_cleared bigint;
  appointments_cleared bigint;
  summary jsonb;
begin
  if digits is null and address is null then
    raise exception 'give the caller''s phone number or e-mail address' using errcode = '22023';
  end if;
  if digits is not null and char_length(digits) < 6 then
    raise exception 'a phone number has at least 6 digits' using errcode = '22023';
  end if;
  select array_agg(o) into orgs from private.organizations_with_permission('receptionist.manage') o;
  if orgs is null then
    raise exception 'erasing caller data needs receptionist.manage' using errcode = '42501';
  end if;

  update public.conversations c
  set caller_phone = null, caller_name = null, caller_email = null, transcript = '[]'::jsonb, recording_url = null,
      summary = null, caller_data_cleared_at = pg_catalog.now()
  where c.organization_id = any (orgs)
    and ((digits is not null and regexp_replace(coalesce(c.caller_phone, ''), '[^0-9]', '', 'g') = digits)
      or (address is not null and lower(c.caller_email) = address));
  get diagnostics conversations_cleared = row_count;

  update public.messages m
  set from_number = null, to_number = null, from_email = null, to_email = null, subject = null, body = '[removed]',
      caller_data_cleared_at = pg_catalog.now()
  where m.organization_id = any (orgs)
    and ((digits is not null and (regexp_replace(coalesce(m.from_number, ''), '[^0-9]', '', 'g') = digits
                                  or regexp_replace(coalesce(m.to_number, ''), '[^0-9]', '', 'g') = digits))
      or (address is not null and (lower(m.from_email) = address or lower(m.to_email) = address)));
  get diagnostics messages_cleared = row_count;

  update public.appointments a
  set client_name = null, client_phone = null, client_email = null, notes = null,
      client_data_cleared_at = pg_catalog.now()
  where a.organization_id = any (orgs)
    and ((digits is not null and regexp_replace(coalesce(a.client_phone, ''), '[^0-9]', '', 'g') = digits)
      or (address is not null and lower(a.client_email) = address));
  get diagnostics appointments_cleared = row_count;

  summary := jsonb_build_object('conversations', conversations_cleared, 'messages', messages_cleared,
                                'appointments', appointments_cleared);
  insert into public.metrics_log (source, metric, value, details)
  values ('erase_caller_data', 'rows_cleared', conversations_cleared + messages_cleared + appointments_cleared,
          summary || jsonb_build_object('requested_by', uid, 'organizations', to_jsonb(orgs)));
  return summary;
end;
$$;
comment on function public.erase_caller_data(text, text) is 'Clears one caller''s data (conversations, messages, appointment contacts) in the organizations where the caller holds receptionist.manage; logged in metrics_log with counts. Returns the counts.';
grant execute on function public.erase_caller_data(text, text) to authenticated;

-- For export_my_data(): the staff records linked to the user and the appointments they were booked for.
create function private.receptionist_personal_data(uid uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'staff', coalesce((select jsonb_agg(jsonb_build_object('id', s.id, 'organization_id', s.organization_id,
        'name', s.name, 'email', s.email, 'phone', s.phone, 'role', s.role, 'is_active', s.is_active,
        'created_at', s.created_at, 'deleted_at', s.deleted_at,
        'working_hours', coalesce((select jsonb_agg(jsonb_build_object('weekday', w.weekday, 'start_time', w.start_time,
                                    'end_time', w.end_time) order by w.weekday, w.start_time)
                                   from public.staff_working_hours w where w.staff_id = s.id), '[]'::jsonb),
        'time_off', coalesce((select jsonb_agg(jsonb_build_object('period', t.period, 'reason', t.reason) order by t.period)
                              from public.staff_time_off t where t.staff_id = s.id), '[]'::jsonb)) order by s.created_at)
      from public.staff s where s.user_id = uid), '[]'::jsonb),
    'staff_appointments', coalesce((select jsonb_agg(jsonb_build_object('id', a.id, 'organization_id', a.organization_id,
        'staff_id', a.staff_id, 'service_type', a.service_type, 'scheduled_at', a.scheduled_at, 'ends_at', a.ends_at,
        'status', a.status) order by a.scheduled_at)
      from public.appointments a join public.staff s on s.id = a.staff_id where s.user_id = uid), '[]'::jsonb))
$$;
comment on function private.receptionist_personal_data(uuid) is 'A user''s receptionist data for their export: their staff records (with hours and time off) and the appointments booked with them (without the clients'' contacts).';
