-- AI receptionist: services, staff, staff_services, staff_working_hours, staff_time_off.
-- What can be booked, who performs it and when they work; receptionist.manage writes, receptionist.read reads.

create table public.services (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  name text not null,
  description text,
  duration integer not null,
  price numeric(10, 2) not null default 0,
  currency text not null default 'PLN',
  category text,
  is_active boolean not null default true,
  booking_buffer integer not null default 0,
  min_notice_minutes integer not null default 60,
  max_advance_booking_days integer not null default 30,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  constraint services_pkey primary key (id),
  constraint services_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint services_name_length check (char_length(btrim(name)) between 1 and 200),
  constraint services_description_length check (description is null or char_length(description) <= 2000),
  constraint services_duration_positive check (duration > 0 and duration <= 1440),
  constraint services_price_not_negative check (price >= 0),
  constraint services_currency_iso4217 check (currency ~ '^[A-Z]{3}$'),
  constraint services_category_length check (category is null or char_length(category) <= 100),
  constraint services_booking_buffer_not_negative check (booking_buffer >= 0 and booking_buffer <= 720),
  constraint services_min_notice_not_negative check (min_notice_minutes >= 0),
  constraint services_max_advance_positive check (max_advance_booking_days between 1 and 730)
);
comment on table public.services is 'Bookable services of an organization (seed 003). Soft-deleted via deleted_at; appointments copy duration, name, price and buffer at booking.';
comment on column public.services.duration is 'Minutes.';
comment on column public.services.booking_buffer is 'Minutes kept free before and after each appointment of this service.';
comment on column public.services.min_notice_minutes is 'An appointment must start at least this many minutes after booking.';
comment on column public.services.max_advance_booking_days is 'An appointment may start at most this many days after booking.';
comment on column public.services.currency is 'ISO 4217 code, upper case.';

create index services_organization_id_idx on public.services (organization_id) where deleted_at is null;
create index services_organization_id_all_idx on public.services (organization_id);

create trigger services_set_updated_at before update on public.services
  for each row execute function private.set_updated_at();
create trigger services_audit after insert or update or delete on public.services
  for each row execute function private.audit_row_change();

create table public.staff (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  user_id uuid,
  name text not null,
  email public.email_address,
  phone public.phone_number,
  role text,
  is_active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  constraint staff_pkey primary key (id),
  constraint staff_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint staff_user_id_fkey foreign key (user_id) references auth.users (id) on delete set null,
  constraint staff_name_length check (char_length(btrim(name)) between 1 and 200),
  constraint staff_role_length check (role is null or char_length(role) <= 100)
);
comment on table public.staff is 'People who perform services (seed 003). user_id links a member of the organization; soft-deleted via deleted_at.';
comment on column public.staff.user_id is 'Optional: the organization member this staff member is (must be a member).';

create unique index staff_user_id_key on public.staff (organization_id, user_id) where deleted_at is null and user_id is not null;
create index staff_organization_id_idx on public.staff (organization_id) where deleted_at is null;
create index staff_organization_id_all_idx on public.staff (organization_id);
create index staff_user_id_idx on public.staff (user_id);

create function private.check_staff_user() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.user_id is not null and not exists (
       select 1 from public.organization_members m where m.organization_id = new.organization_id and m.user_id = new.user_id) then
    raise exception 'user % is not a member of the organization', new.user_id
      using errcode = '23514', constraint = 'staff_user_is_member', hint = 'Invite the person first, or leave user_id empty.';
  end if;
  return new;
end;
$$;

create trigger staff_check_user before insert or update of user_id, organization_id on public.staff
  for each row execute function private.check_staff_user();
create trigger staff_set_updated_at before update on public.staff
  for each row execute function private.set_updated_at();
create trigger staff_audit after insert or update or delete on public.staff
  for each row execute function private.audit_row_change();

create table public.staff_services (
  organization_id uuid not null,
  staff_id uuid not null,
  service_id uuid not null,
  created_at timestamptz not null default now(),
  constraint staff_services_pkey primary key (staff_id, service_id),
  constraint staff_services_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint staff_services_staff_id_fkey foreign key (staff_id) references public.staff (id) on delete cascade,
  constraint staff_services_service_id_fkey foreign key (service_id) references public.services (id) on delete cascade
);
comment on table public.staff_services is 'Who performs what: staff member x service, both of the row''s organization.';

create index staff_services_service_id_idx on public.staff_services (service_id, staff_id);
create index staff_services_organization_id_idx on public.staff_services (organization_id);

create table public.staff_working_hours (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  staff_id uuid not null,
  weekday integer not null,
  start_time time not null,
  end_time time not null,
  created_at timestamptz not null default now(),
  constraint staff_working_hours_pkey primary key (id),
  constraint staff_working_hours_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint staff_working_hours_staff_id_fkey foreign key (staff_id) references public.staff (id) on delete cascade,
  constraint staff_working_hours_weekday_range check (weekday between 0 and 6),
  constraint staff_working_hours_ordered check (start_time < end_time or end_time = '24:00'::time),
  constraint staff_working_hours_no_overlap exclude using gist (
    staff_id with =, weekday with =,
    tsrange(date '2000-01-01' + start_time, date '2000-01-01' + end_time) with &&)
);
comment on table public.staff_working_hours is 'Weekly working hours: weekday 0 = Sunday ... 6 = Saturday (extract(dow)), local times in the organization''s time zone; several ranges a day, never overlapping.';
comment on column public.staff_working_hours.end_time is 'Exclusive end; 24:00 means until midnight.';

create index staff_working_hours_organization_id_idx on public.staff_working_hours (organization_id);

create table public.staff_time_off (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  staff_id uuid not null,
  period tstzrange not null,
  reason text,
  created_at timestamptz not null default now(),
  constraint staff_time_off_pkey primary key (id),
  constraint staff_time_off_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint staff_time_off_staff_id_fkey foreign key (staff_id) references public.staff (id) on delete cascade,
  constraint staff_time_off_period_bounded check (not isempty(period) and not lower_inf(period) and not upper_inf(period)),
  constraint staff_time_off_reason_length check (reason is null or char_length(reason) <= 500)
);
comment on table public.staff_time_off is 'Absences (holidays, sick leave): no appointment of the staff member may touch the period.';

create index staff_time_off_staff_id_idx on public.staff_time_off using gist (staff_id, period);
create index staff_time_off_staff_id_btree_idx on public.staff_time_off (staff_id);
create index staff_time_off_organization_id_idx on public.staff_time_off (organization_id);

-- The child rows take their staff member's organization; a staff member's service must be of the same organization.
create function private.inherit_staff_organization() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  select s.organization_id into new.organization_id from public.staff s where s.id = new.staff_id;
  return new;
end;
$$;

create function private.check_staff_service() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if not exists (select 1 from public.services v where v.id = new.service_id and v.organization_id = new.organization_id) then
    raise exception 'service % belongs to another organization', new.service_id
      using errcode = '23514', constraint = 'staff_services_same_organization';
  end if;
  return new;
end;
$$;

create trigger staff_services_inherit_organization before insert or update on public.staff_services
  for each row execute function private.inherit_staff_organization();
create trigger staff_services_same_organization before insert or update on public.staff_services
  for each row execute function private.check_staff_service();
create trigger staff_working_hours_inherit_organization before insert or update on public.staff_working_hours
  for each row execute function private.inherit_staff_organization();
create trigger staff_time_off_inherit_organization before insert or update on public.staff_time_off
  for each row execute function private.inherit_staff_organization();
create trigger staff_services_audit after insert or update or delete on public.staff_services
  for each row execute function private.audit_row_change();
create trigger staff_working_hours_audit after insert or update or delete on public.staff_working_hours
  for each row execute function private.audit_row_change();
create trigger staff_time_off_audit after insert or update or delete on public.staff_time_off
  for each row execute function private.audit_row_change();

alter table public.services enable row level security;
alter table public.staff enable row level security;
alter table public.staff_services enable row level security;
alter table public.staff_working_hours enable row level security;
alter table public.staff_time_off enable row level security;

-- services_select: receptionist readers see the organization's services.
create policy services_select on public.services for select to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.read')));
-- services_insert: receptionist.manage holders add services.
create policy services_insert on public.services for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('receptionist.manage')));
-- services_update: receptionist.manage holders edit them.
create policy services_update on public.services for update to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.manage')))
  with check (organization_id in (select private.organizations_with_permission('receptionist.manage')));
-- services_delete: receptionist.manage holders delete them.
create policy services_delete on public.services for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.manage')));

-- staff_select: receptionist readers see the organization's staff.
create policy staff_select on public.staff for select to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.read')));
-- staff_insert: receptionist.manage holders add staff.
create policy staff_insert on public.staff for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('receptionist.manage')));
-- staff_update: receptionist.manage holders edit staff.
create policy staff_update on public.staff for update to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.manage')))
  with check (organization_id in (select private.organizations_with_permission('receptionist.manage')));
-- staff_delete: receptionist.manage holders delete staff.
create policy staff_delete on public.staff for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.manage')));

-- staff_services_select: receptionist readers.
create policy staff_services_select on public.staff_services for select to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.read')));
-- staff_services_insert: receptionist.manage holders.
create policy staff_services_insert on public.staff_services for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('receptionist.manage')));
-- staff_services_delete: receptionist.manage holders.
create policy staff_services_delete on public.staff_services for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.manage')));

-- staff_working_hours_select: receptionist readers.
create policy staff_working_hours_select on public.staff_working_hours for select to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.read')));
-- staff_working_hours_insert: receptionist.manage holders.
create policy staff_working_hours_insert on public.staff_working_hours for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('receptionist.manage')));
-- staff_working_hours_update: receptionist.manage holders.
create policy staff_working_hours_update on public.staff_working_hours for update to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.manage')))
  with check (organization_id in (select private.organizations_with_permission('receptionist.manage')));
-- staff_working_hours_delete: receptionist.manage holders.
create policy staff_working_hours_delete on public.staff_working_hours for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.manage')));

-- staff_time_off_select: receptionist readers.
create policy staff_time_off_select on public.staff_time_off for select to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.read')));
-- staff_time_off_insert: receptionist.manage holders.
create policy staff_time_off_insert on public.staff_time_off for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('receptionist.manage')));
-- staff_time_off_update: receptionist.manage holders.
create policy staff_time_off_update on public.staff_time_off for update to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.manage')))
  with check (organization_id in (select private.organizations_with_permission('receptionist.manage')));
-- staff_time_off_delete: receptionist.manage holders.
create policy staff_time_off_delete on public.staff_time_off for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.manage')));

grant select, delete on public.services, public.staff, public.staff_services, public.staff_working_hours,
  public.staff_time_off to authenticated, service_role;
grant insert (organization_id, name, description, duration, price, currency, category, is_active, booking_buffer,
              min_notice_minutes, max_advance_booking_days),
      update (name, description, duration, price, currency, category, is_active, booking_buffer, min_notice_minutes,
              max_advance_booking_days, deleted_at)
  on public.services to authenticated, service_role;
grant insert (organization_id, user_id, name, email, phone, role, is_active),
      update (user_id, name, email, phone, role, is_active, deleted_at)
  on public.staff to authenticated, service_role;
grant insert (staff_id, service_id) on public.staff_services to authenticated, service_role;
grant insert (staff_id, weekday, start_time, end_time), update (weekday, start_time, end_time)
  on public.staff_working_hours to authenticated, service_role;
grant insert (staff_id, period, reason), update (period, reason) on public.staff_time_off to authenticated, service_role;
