-- Privacy: privacy_prefs, app_allowlist, signal_toggles (owner-only, zero trust).
-- Consent and what may report; the gate helpers used by the event tables' insert policies.

-- What each user allows: consent and monitoring switches, retention and MFA requirement (privacy_prefs, one row per
-- user created at sign-up), which apps may report (app_allowlist) and which signals at what sampling rate.

create table public.privacy_prefs (
  id uuid not null default gen_random_uuid(),
  user_id uuid not null,
  consent_given boolean not null default false,
  consent_given_at timestamptz,
  monitoring_enabled boolean not null default false,
  data_retention_days integer not null default 90,
  mfa_required boolean not null default false,
  last_reviewed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint privacy_prefs_pkey primary key (id),
  constraint privacy_prefs_user_id_key unique (user_id),
  constraint privacy_prefs_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint privacy_prefs_retention_range check (data_retention_days between 1 and 3650)
);
comment on table public.privacy_prefs is 'One row per user (created at sign-up with safe defaults: no consent, monitoring off, 90 days, MFA not required).';
comment on column public.privacy_prefs.consent_given_at is 'Set by trigger when consent is given, cleared when it is withdrawn.';
comment on column public.privacy_prefs.data_retention_days is 'How long the user''s events are kept at most: retention_policies (operators'') may remove them sooner, never later.';
comment on column public.privacy_prefs.mfa_required is 'When true, reading telemetry and the transparency log needs an aal2 session.';

create table public.app_allowlist (
  id uuid not null default gen_random_uuid(),
  user_id uuid not null default auth.uid(),
  app_id text not null,
  app_name text,
  enabled boolean not null default true,
  scope text not null default 'all',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint app_allowlist_pkey primary key (id),
  constraint app_allowlist_user_app_key unique (user_id, app_id),
  constraint app_allowlist_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint app_allowlist_app_id_format check (char_length(app_id) <= 128 and app_id ~ '^[A-Za-z0-9][A-Za-z0-9._:-]*$'),
  constraint app_allowlist_app_name_length check (app_name is null or char_length(app_name) between 1 and 200),
  constraint app_allowlist_scope_known check (scope in ('all', 'telemetry', 'files'))
);
comment on table public.app_allowlist is 'Apps a user allows to report: telemetry events by app_id, file events by tool.';
comment on column public.app_allowlist.scope is 'all, telemetry (telemetry_events only) or files (file_events only).';

create table public.signal_toggles (
  id uuid not null default gen_random_uuid(),
  user_id uuid not null default auth.uid(),
  signal_key text not null,
  enabled boolean not null default true,
  sampling_rate numeric(5, 4) not null default 1,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint signal_toggles_pkey primary key (id),
  constraint signal_toggles_user_signal_key unique (user_id, signal_key),
  constraint signal_toggles_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint signal_toggles_signal_key_format check (char_length(signal_key) <= 128 and signal_key ~ '^[a-z0-9][a-z0-9._:-]*$'),
  constraint signal_toggles_sampling_rate_range check (sampling_rate between 0 and 1)
);
comment on table public.signal_toggles is 'Signals (telemetry event types; "file.<event_type>" for file events) a user allows, with a sampling rate.';
comment on column public.signal_toggles.sampling_rate is 'Share of events kept, 0..1; the decision is a deterministic function of the event id.';

create trigger privacy_prefs_set_updated_at before update on public.privacy_prefs
  for each row execute function private.set_updated_at();
create trigger app_allowlist_set_updated_at before update on public.app_allowlist
  for each row execute function private.set_updated_at();
create trigger signal_toggles_set_updated_at before update on public.signal_toggles
  for each row execute function private.set_updated_at();

create function private.stamp_consent() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.consent_given and (tg_op = 'INSERT' or not old.consent_given) then
    new.consent_given_at := pg_catalog.now();
  elsif not new.consent_given then
    new.consent_given_at := null;
  end if;
  return new;
end;
$$;
comment on function private.stamp_consent() is 'BEFORE INSERT/UPDATE on privacy_prefs: keeps consent_given_at in step with consent_given.';

create trigger privacy_prefs_stamp_consent before insert or update of consent_given on public.privacy_prefs
  for each row execute function private.stamp_consent();

-- mfa_required protects reads behind aal2; a stolen aal1 session must not be able to switch it off. Server code
-- (service role, owner) may, e.g. for account recovery.
create function private.guard_mfa_downgrade() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if old.mfa_required and not new.mfa_required
     and current_user in ('authenticated', 'anon')
     and coalesce((select auth.jwt()) ->> 'aal', '') <> 'aal2' then
    raise exception 'turning off mfa_required needs an aal2 session'
      using errcode = '42501', hint = 'Verify a second factor, then retry with the aal2 token.';
  end if;
  return new;
end;
$$;
comment on function private.guard_mfa_downgrade() is 'BEFORE UPDATE OF mfa_required on privacy_prefs: only an aal2 session (or server code) turns MFA off.';

create trigger privacy_prefs_guard_mfa_downgrade before update of mfa_required on public.privacy_prefs
  for each row execute function private.guard_mfa_downgrade();
alter table public.privacy_prefs enable always trigger privacy_prefs_guard_mfa_downgrade;

-- Every change of a privacy setting lands in the owner's transparency log: hashes of the old and new row and the
-- names of the changed columns.
create function private.log_privacy_setting_change() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  old_row jsonb := case when tg_op in ('UPDATE', 'DELETE') then to_jsonb(old) end;
  new_row jsonb := case when tg_op in ('INSERT', 'UPDATE') then to_jsonb(new) end;
  changed text[];
begin
  if tg_op = 'UPDATE' then
    select coalesce(array_agg(n.key order by n.key), '{}') into changed
    from jsonb_each(new_row) n
    where n.key <> 'updated_at' and n.value is distinct from old_row -> n.key;
    if changed = '{}' then
      return null;
    end if;
  end if;
  perform private.append_transparency_entry(
    (coalesce(new_row, old_row) ->> 'user_id')::uuid, lower(tg_op), tg_table_name, coalesce(new_row, old_row) ->> 'id',
    case when old_row is not null then encode(extensions.digest(convert_to(old_row::text, 'UTF8'), 'sha256'), 'hex') end,
    case when new_row is not null then encode(extensions.digest(convert_to(new_row::text, 'UTF8'), 'sha256'), 'hex') end,
    case when tg_op = 'UPDATE' then jsonb_build_object('changed', to_jsonb(changed)) else '{}'::jsonb end);
  return null;
end;
$$;
comment on function private.log_privacy_setting_change() is 'AFTER ROW trigger on privacy_prefs, app_allowlist, signal_toggles: appends a transparency log entry.';

create trigger privacy_prefs_transparency after insert or update or delete on public.privacy_prefs
  for each row execute function private.log_privacy_setting_change();
create trigger app_allowlist_transparency after insert or update or delete on public.app_allowlist
  for each row execute function private.log_privacy_setting_change();
create trigger signal_toggles_transparency after insert or update or delete on public.signal_toggles
  for each row execute function private.log_privacy_setting_change();

-- A TRUNCATE would change settings without a row trigger firing: it is refused. And like the log's own guards,
-- these fire ALWAYS, also under session_replication_role = replica.
create trigger privacy_prefs_no_truncate before truncate on public.privacy_prefs
  for each statement execute function private.reject_write('Every change of a privacy setting is logged per row: delete rows instead.');
create trigger app_allowlist_no_truncate before truncate on public.app_allowlist
  for each statement execute function private.reject_write('Every change of a privacy setting is logged per row: delete rows instead.');
create trigger signal_toggles_no_truncate before truncate on public.signal_toggles
  for each statement execute function private.reject_write('Every change of a privacy setting is logged per row: delete rows instead.');
alter table public.privacy_prefs enable always trigger privacy_prefs_transparency;
alter table public.app_allowlist enable always trigger app_allowlist_transparency;
alter table public.signal_toggles enable always trigger signal_toggles_transparency;
alter table public.privacy_prefs enable always trigger privacy_prefs_stamp_consent;
alter table public.privacy_prefs enable always trigger privacy_prefs_no_truncate;
alter table public.app_allowlist enable always trigger app_allowlist_no_truncate;
alter table public.signal_toggles enable always trigger signal_toggles_no_truncate;

alter table public.privacy_prefs enable row level security;
alter table public.app_allowlist enable row level security;
alter table public.signal_toggles enable row level security;

-- privacy_prefs_select: a user reads only their own preferences.
create policy privacy_prefs_select on public.privacy_prefs for select to authenticated
  using (user_id = (select auth.uid()));
-- privacy_prefs_update: a user changes only their own preferences (the row itself is created at sign-up).
create policy privacy_prefs_update on public.privacy_prefs for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));

grant select on public.privacy_prefs to authenticated;
grant update (consent_given, monitoring_enabled, data_retention_days, mfa_required, last_reviewed_at)
  on public.privacy_prefs to authenticated;

-- app_allowlist_select: a user reads only their own allowlist.
create policy app_allowlist_select on public.app_allowlist for select to authenticated
  using (user_id = (select auth.uid()));
-- app_allowlist_insert: a user adds apps to their own allowlist only.
create policy app_allowlist_insert on public.app_allowlist for insert to authenticated
  with check (user_id = (select auth.uid()));
-- app_allowlist_update: a user edits only their own allowlist entries.
create policy app_allowlist_update on public.app_allowlist for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));
-- app_allowlist_delete: a user removes only their own allowlist entries.
create policy app_allowlist_delete on public.app_allowlist for delete to authenticated
  using (user_id = (select auth.uid()));

grant select, delete on public.app_allowlist to authenticated;
grant insert (user_id, app_id, app_name, enabled, scope) on public.app_allowlist to authenticated;
grant update (app_name, enabled, scope) on public.app_allowlist to authenticated;

-- signal_toggles_select: a user reads only their own toggles.
create policy signal_toggles_select on public.signal_toggles for select to authenticated
  using (user_id = (select auth.uid()));
-- signal_toggles_insert: a user adds toggles for themselves only.
create policy signal_toggles_insert on public.signal_toggles for insert to authenticated
  with check (user_id = (select auth.uid()));
-- signal_toggles_update: a user edits only their own toggles.
create policy signal_toggles_update on public.signal_toggles for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));
-- signal_toggles_delete: a user removes only their own toggles.
create policy signal_toggles_delete on public.signal_toggles for delete to authenticated
  using (user_id = (select auth.uid()));

grant select, delete on public.signal_toggles to authenticated;
grant insert (user_id, signal_key, enabled, sampling_rate) on public.signal_toggles to authenticated;
grant update (enabled, sampling_rate) on public.signal_toggles to authenticated;

-- Sign-up: every new user gets privacy preferences with the safe defaults (a second trigger beside
-- handle_new_user(), so each module owns its own sign-up work).
create function private.handle_new_user_privacy() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into public.privacy_prefs (user_id) values (new.id);
  return new;
end;
$$;
comment on function private.handle_new_user_privacy() is 'AFTER INSERT on auth.users: creates privacy_prefs with safe defaults.';

create trigger on_auth_user_created_privacy after insert on auth.users
  for each row execute function private.handle_new_user_privacy();

-- Gate helpers used by the insert policies of telemetry_events and file_events and by ingest_events(). Each depends
-- only on the caller, so `x in (select ...)` is evaluated once per statement.
create function private.monitoring_allowed() returns boolean
language sql stable
set search_path = ''
as $$
  select exists (select 1 from public.privacy_prefs p
                 where p.user_id = (select auth.uid()) and p.consent_given and p.monitoring_enabled)
$$;
comment on function private.monitoring_allowed() is 'Whether the caller has given consent and switched monitoring on.';

create function private.allowed_apps(kind text) returns setof text
language sql stable
set search_path = ''
as $$
  select a.app_id from public.app_allowlist a
  where a.user_id = (select auth.uid()) and a.enabled and a.scope in ('all', kind)
$$;
comment on function private.allowed_apps(text) is 'The caller''s enabled apps for telemetry or files.';

create function private.full_rate_signals() returns setof text
language sql stable
set search_path = ''
as $$
  select s.signal_key from public.signal_toggles s
  where s.user_id = (select auth.uid()) and s.enabled and s.sampling_rate >= 1
$$;
comment on function private.full_rate_signals() is 'The caller''s enabled signals that keep every event.';

create function private.signal_sampling_rate(signal text) returns numeric
language sql stable
set search_path = ''
as $$
  select s.sampling_rate from public.signal_toggles s
  where s.user_id = (select auth.uid()) and s.signal_key = signal and s.enabled
$$;
comment on function private.signal_sampling_rate(text) is 'Sampling rate of one of the caller''s enabled signals, or null.';

-- Deterministic in the event id (its last 32 bits, random in both v4 and time-ordered v7 UUIDs): a retried event
-- gets the same decision.
create function private.sample_point(event_id uuid) returns double precision
language sql immutable parallel safe
set search_path = ''
as $$
  select ('x' || right(event_id::text, 8))::bit(32)::bigint / 4294967296.0
$$;
comment on function private.sample_point(uuid) is 'A number in [0, 1) derived from the event id; an event is kept when it is below the sampling rate.';

create function private.mfa_satisfied() returns boolean
language sql stable
set search_path = ''
as $$
  select coalesce((select auth.jwt()) ->> 'aal', '') = 'aal2'
      or not exists (select 1 from public.privacy_prefs p where p.user_id = (select auth.uid()) and p.mfa_required)
$$;
comment on function private.mfa_satisfied() is 'True unless the caller requires MFA for privacy data and the session is not aal2.';

grant execute on function private.monitoring_allowed(), private.allowed_apps(text), private.full_rate_signals(),
  private.signal_sampling_rate(text), private.sample_point(uuid), private.mfa_satisfied() to authenticated;

-- Restrictive: with mfa_required set, transparency log reads need aal2 on top of ownership.
-- privacy_transparency_log_select_mfa: with mfa_required, only an aal2 session reads the log.
create policy privacy_transparency_log_select_mfa on public.privacy_transparency_log as restrictive for select
  to authenticated using ((select private.mfa_satisfied()));
