-- Privacy: telemetry_events and file_events (monthly partitions), file_patterns and file_relationships.
-- Consent-gated, redacted before insert, owner-only; derived file insights.

-- The append-only event tables (partitioned by month; partitions in `private`), redacted before they are stored and
-- admitted only when the owner's consent, allowlist and signal toggles allow it; file patterns and relationships are
-- derived from file_events inside the database, one set-based statement per insert statement.

-- Per (table, user, month) event counts, kept by statement triggers, so that retention can drop a whole month and
-- still tell each affected user how many of their events went, without scanning the month.
create table private.event_month_counts (
  table_name text not null,
  user_id uuid not null,
  month date not null,
  events bigint not null,
  constraint event_month_counts_pkey primary key (table_name, user_id, month),
  constraint event_month_counts_table_known check (table_name in ('telemetry_events', 'file_events')),
  constraint event_month_counts_month_first check (month = date_trunc('month', month)::date)
);
comment on table private.event_month_counts is 'Events per table, user and month (maintained by triggers; read by retention to report purges per user).';

create index event_month_counts_user_idx on private.event_month_counts (user_id);

create table public.telemetry_events (
  id uuid not null,
  user_id uuid not null default auth.uid(),
  occurred_at timestamptz not null,
  app_id text not null,
  event_type text not null,
  duration_ms integer,
  metadata_redacted jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  constraint telemetry_events_pkey primary key (id, user_id, occurred_at),
  constraint telemetry_events_duration_non_negative check (duration_ms is null or duration_ms >= 0),
  constraint telemetry_events_app_id_format check (char_length(app_id) <= 128 and app_id ~ '^[A-Za-z0-9][A-Za-z0-9._:-]*$'),
  constraint telemetry_events_event_type_format check (char_length(event_type) <= 128 and event_type ~ '^[a-z0-9][a-z0-9._:-]*$'),
  constraint telemetry_events_metadata_object check (jsonb_typeof(metadata_redacted) = 'object')
) partition by range (occurred_at);
comment on table public.telemetry_events is 'Telemetry events, partitioned by month on occurred_at. The client-generated id makes retries idempotent; each user has their own id space (the key is id, user_id, occurred_at), so an id another user chose neither blocks an event nor reveals anything. No foreign key to auth.users (it would cost a lookup per event); a user''s events are removed with the user by trigger.';
-- What the key guarantees: one row per (user_id, id, occurred_at). A unique (user_id, id) alone cannot be declared on a
-- table partitioned by occurred_at, so a direct insert may store a second row under an id it already used when it gives
-- another occurred_at. ingest_events() closes that gap for the ingest path: it reports such an event as a duplicate
-- when the first copy lies in the accepted window (the last 30 days), and stores nothing.
comment on column public.telemetry_events.metadata_redacted is 'Event metadata after redact_telemetry_metadata() (applied by trigger; never stored unredacted).';

create table private.telemetry_events_default partition of public.telemetry_events default;

create index telemetry_events_user_occurred_idx on public.telemetry_events (user_id, occurred_at desc);
create index telemetry_events_user_app_idx on public.telemetry_events (user_id, app_id, occurred_at desc);

create function private.auto_redact_telemetry() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.metadata_redacted := public.redact_telemetry_metadata(new.metadata_redacted);
  return new;
end;
$$;
comment on function private.auto_redact_telemetry() is 'BEFORE INSERT/UPDATE on telemetry_events: redacts metadata_redacted.';

create trigger auto_redact_telemetry_before_insert before insert or update on public.telemetry_events
  for each row execute function private.auto_redact_telemetry();

create function private.events_inserted_in_transaction() returns bigint
language sql stable
set search_path = ''
as $$
  select coalesce(nullif(pg_catalog.current_setting('ingest.inserted_events', true), ''), '0')::bigint
$$;
comment on function private.events_inserted_in_transaction() is 'How many telemetry and file events this transaction has inserted so far (kept by count_event_months).';

create function private.count_event_months() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into private.event_month_counts as c (table_name, user_id, month, events)
  select tg_table_name, i.user_id, date_trunc('month', i.occurred_at at time zone 'UTC')::date, count(*)
  from inserted i
  group by 2, 3
  on conflict (table_name, user_id, month) do update set events = c.events + excluded.events;
  -- A running count of the events this transaction inserted: ingest_events() compares it with what it reported
  -- accepted (RETURNING would need the SELECT policies, which an aal1 session of an MFA user does not pass).
  perform pg_catalog.set_config('ingest.inserted_events',
    (private.events_inserted_in_transaction() + (select count(*) from inserted))::text, true);
  return null;
end;
$$;
comment on function private.count_event_months() is 'AFTER INSERT statement trigger: adds the inserted rows to private.event_month_counts and to the transaction''s ingest.inserted_events count.';

create trigger telemetry_events_count_months after insert on public.telemetry_events
  referencing new table as inserted
  for each statement execute function private.count_event_months();

alter table public.telemetry_events enable row level security;

-- telemetry_events_select: a user reads only their own events (no administrator policy: zero trust).
create policy telemetry_events_select on public.telemetry_events for select to authenticated
  using (user_id = (select auth.uid()));
-- telemetry_events_select_mfa: with mfa_required, only an aal2 session reads telemetry (restrictive).
create policy telemetry_events_select_mfa on public.telemetry_events as restrictive for select to authenticated
  using ((select private.mfa_satisfied()));
-- telemetry_events_insert: own events only, with consent and monitoring on, an allowed app, an enabled signal
-- (sampled deterministically on the id) and a time in the accepted range.
create policy telemetry_events_insert on public.telemetry_events for insert to authenticated
  with check (
    user_id = (select auth.uid())
    and (select private.monitoring_allowed())
    and app_id in (select private.allowed_apps('telemetry'))
    and (event_type in (select private.full_rate_signals())
         or private.sample_point(id) < private.signal_sampling_rate(event_type))
    and occurred_at >= now() - interval '30 days' and occurred_at <= now() + interval '5 minutes'
  );

grant select on public.telemetry_events to authenticated;
grant insert (id, user_id, occurred_at, app_id, event_type, duration_ms, metadata_redacted)
  on public.telemetry_events to authenticated;

create table public.file_events (
  id uuid not null,
  user_id uuid not null default auth.uid(),
  occurred_at timestamptz not null,
  file_path text not null,
  related_path text,
  event_type text not null,
  tool text not null,
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  constraint file_events_pkey primary key (id, user_id, occurred_at),
  constraint file_events_event_type_known check (
    event_type in ('created', 'modified', 'deleted', 'renamed', 'moved', 'copied', 'opened', 'closed')),
  constraint file_events_file_path_length check (char_length(file_path) between 1 and 4096),
  constraint file_events_related_path_length check (related_path is null or char_length(related_path) between 1 and 4096),
  constraint file_events_tool_format check (char_length(tool) <= 128 and tool ~ '^[A-Za-z0-9][A-Za-z0-9._:-]*$'),
  constraint file_events_metadata_object check (jsonb_typeof(metadata) = 'object')
) partition by range (occurred_at);
comment on table public.file_events is 'File-system events (seed 002 "events"), partitioned by month. tool is the app that touched the file (checked against the allowlist); the signal is "file.<event_type>". Ids are per user and unique per (id, user_id, occurred_at), as for telemetry_events.';
comment on column public.file_events.related_path is 'The other path of a rename, move or copy (feeds file_relationships).';

create table private.file_events_default partition of public.file_events default;

create index file_events_user_occurred_idx on public.file_events (user_id, occurred_at desc);
create index file_events_user_event_type_idx on public.file_events (user_id, event_type, occurred_at desc);

create function private.auto_redact_file_event() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.file_path := private.redact_path(new.file_path);
  new.related_path := private.redact_path(new.related_path);
  new.metadata := public.redact_telemetry_metadata(new.metadata);
  return new;
end;
$$;
comment on function private.auto_redact_file_event() is 'BEFORE INSERT/UPDATE on file_events: redacts paths (home-directory user names) and metadata.';

create trigger file_events_auto_redact before insert or update on public.file_events
  for each row execute function private.auto_redact_file_event();

create trigger file_events_count_months after insert on public.file_events
  referencing new table as inserted
  for each statement execute function private.count_event_months();

alter table public.file_events enable row level security;

-- file_events_select: a user reads only their own file events.
create policy file_events_select on public.file_events for select to authenticated
  using (user_id = (select auth.uid()));
-- file_events_select_mfa: with mfa_required, only an aal2 session reads file events (restrictive).
create policy file_events_select_mfa on public.file_events as restrictive for select to authenticated
  using ((select private.mfa_satisfied()));
-- file_events_insert: own events only, with consent and monitoring on, an allowed tool, an enabled file signal and
-- a time in the accepted range.
create policy file_events_insert on public.file_events for insert to authenticated
  with check (
    user_id = (select auth.uid())
    and (select private.monitoring_allowed())
    and tool in (select private.allowed_apps('files'))
    and ('file.' || event_type in (select private.full_rate_signals())
         or private.sample_point(id) < private.signal_sampling_rate('file.' || event_type))
    and occurred_at >= now() - interval '30 days' and occurred_at <= now() + interval '5 minutes'
  );

grant select on public.file_events to authenticated;
grant insert (id, user_id, occurred_at, file_path, related_path, event_type, tool, metadata)
  on public.file_events to authenticated;

create table public.file_patterns (
  id uuid not null default gen_random_uuid(),
  user_id uuid not null,
  file_extension text not null,
  event_count bigint not null default 0,
  last_used_at timestamptz not null,
  tools text[] not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint file_patterns_pkey primary key (id),
  constraint file_patterns_user_extension_key unique (user_id, file_extension),
  constraint file_patterns_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint file_patterns_extension_format check (file_extension ~ '^[a-z0-9]{1,16}$'),
  constraint file_patterns_event_count_non_negative check (event_count >= 0)
);
comment on table public.file_patterns is 'Per user and file extension: how often, how recently and with which tools (seed 002 "patterns"). Maintained from file_events by trigger.';

create index file_patterns_extension_idx on public.file_patterns (file_extension);

create table public.file_relationships (
  id uuid not null default gen_random_uuid(),
  user_id uuid not null,
  source_path text not null,
  target_path text not null,
  relation_type text not null,
  weight bigint not null default 0,
  last_seen_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint file_relationships_pkey primary key (id),
  constraint file_relationships_unique_edge unique (user_id, source_path, target_path, relation_type),
  constraint file_relationships_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint file_relationships_relation_type_known check (relation_type in ('renamed', 'moved', 'copied')),
  constraint file_relationships_weight_non_negative check (weight >= 0)
);
comment on table public.file_relationships is 'Edges between files (renamed/moved/copied), weighted by how often (seed 002 "relationships"). Maintained from file_events by trigger.';

create index file_relationships_source_target_idx on public.file_relationships (user_id, source_path, target_path);

create trigger file_patterns_set_updated_at before update on public.file_patterns
  for each row execute function private.set_updated_at();
create trigger file_relationships_set_updated_at before update on public.file_relationships
  for each row execute function private.set_updated_at();

create function private.file_extension(path text) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select lower(substring(path from '\.([A-Za-z0-9]{1,16})$'))
$$;
comment on function private.file_extension(text) is 'The lower-case extension file_patterns groups a path under (1-16 letters or digits), or null.';

create function private.derive_file_insights() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into public.file_patterns as p (user_id, file_extension, event_count, last_used_at, tools)
  select s.user_id, s.ext, count(*), max(s.occurred_at), array_agg(distinct s.tool order by s.tool)
  from (select i.user_id, i.occurred_at, i.tool,
               private.file_extension(i.file_path) as ext
        from inserted i) s
  where s.ext is not null
  group by s.user_id, s.ext
  on conflict (user_id, file_extension) do update set
    event_count = p.event_count + excluded.event_count,
    last_used_at = greatest(p.last_used_at, excluded.last_used_at),
    tools = (select array_agg(distinct x order by x) from unnest(p.tools || excluded.tools) x);

  insert into public.file_relationships as r (user_id, source_path, target_path, relation_type, weight, last_seen_at)
  select i.user_id, i.file_path, i.related_path, i.event_type, count(*), max(i.occurred_at)
  from inserted i
  where i.related_path is not null and i.event_type in ('renamed', 'moved', 'copied')
  group by i.user_id, i.file_path, i.related_path, i.event_type
  on conflict (user_id, source_path, target_path, relation_type) do update set
    weight = r.weight + excluded.weight,
    last_seen_at = greatest(r.last_seen_at, excluded.last_seen_at);
  return null;
end;
$$;
comment on function private.derive_file_insights() is 'AFTER INSERT statement trigger on file_events: upserts file_patterns and file_relationships from the inserted rows, set-based.';

create trigger file_events_derive_insights after insert on public.file_events
  referencing new table as inserted
  for each statement execute function private.derive_file_insights();

alter table public.file_patterns enable row level security;
alter table public.file_relationships enable row level security;

-- file_patterns_select: a user reads only their own patterns.
create policy file_patterns_select on public.file_patterns for select to authenticated
  using (user_id = (select auth.uid()));
-- file_relationships_select: a user reads only their own relationships.
create policy file_relationships_select on public.file_relationships for select to authenticated
  using (user_id = (select auth.uid()));
-- file_patterns_select_mfa / file_relationships_select_mfa: derived from file events, so guarded like them.
create policy file_patterns_select_mfa on public.file_patterns as restrictive for select to authenticated
  using ((select private.mfa_satisfied()));
create policy file_relationships_select_mfa on public.file_relationships as restrictive for select to authenticated
  using ((select private.mfa_satisfied()));

grant select on public.file_patterns, public.file_relationships to authenticated;

-- Events carry no foreign key to auth.users (see telemetry_events); they go with the user.
create function private.handle_deleted_user_events() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  delete from public.telemetry_events t where t.user_id = old.id;
  delete from public.file_events f where f.user_id = old.id;
  delete from private.event_month_counts c where c.user_id = old.id;
  return old;
end;
$$;
comment on function private.handle_deleted_user_events() is 'AFTER DELETE on auth.users: removes the user''s telemetry and file events.';

create trigger on_auth_user_deleted_events after delete on auth.users
  for each row execute function private.handle_deleted_user_events();
