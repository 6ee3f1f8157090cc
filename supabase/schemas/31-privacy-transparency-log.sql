-- Privacy: the transparency log (privacy_transparency_log).
-- Append-only for every role, hash-chained per user, verify_transparency_log().

-- What happened to a user's privacy settings and data, for that user to read: append-only for every role (owner
-- included), hash-chained per user so that a changed or removed entry is detectable by verify_transparency_log().

create table public.privacy_transparency_log (
  id uuid not null default gen_random_uuid(),
  user_id uuid not null,
  seq bigint not null,
  occurred_at timestamptz not null default now(),
  action text not null,
  resource text not null,
  resource_id text,
  old_value_hash text,
  new_value_hash text,
  metadata jsonb not null default '{}'::jsonb,
  prev_hash text,
  entry_hash text not null,
  constraint privacy_transparency_log_pkey primary key (id),
  constraint privacy_transparency_log_user_seq_key unique (user_id, seq),
  constraint privacy_transparency_log_seq_positive check (seq >= 1),
  constraint privacy_transparency_log_action_known check (
    action in ('insert', 'update', 'delete', 'retention_purge', 'export', 'erasure')),
  constraint privacy_transparency_log_metadata_object check (jsonb_typeof(metadata) = 'object'),
  constraint privacy_transparency_log_hash_format check (
    entry_hash ~ '^[0-9a-f]{64}$' and (prev_hash is null or prev_hash ~ '^[0-9a-f]{64}$')
    and (old_value_hash is null or old_value_hash ~ '^[0-9a-f]{64}$')
    and (new_value_hash is null or new_value_hash ~ '^[0-9a-f]{64}$')),
  constraint privacy_transparency_log_chain_start check ((seq = 1) = (prev_hash is null))
);
comment on table public.privacy_transparency_log is 'Per-user, append-only, hash-chained record of privacy setting changes, retention purges, exports and erasures. No foreign key: entries outlive the rows they describe. Reads need aal2 when the owner requires MFA (restrictive policy in 32-privacy-preferences.sql).';
comment on column public.privacy_transparency_log.seq is 'Position in the user''s chain, from 1 without gaps.';
comment on column public.privacy_transparency_log.prev_hash is 'entry_hash of the user''s previous entry (null for the first).';
comment on column public.privacy_transparency_log.entry_hash is 'sha256 over prev_hash and this entry''s fields (private.transparency_entry_hash).';

create index privacy_transparency_log_user_occurred_idx on public.privacy_transparency_log (user_id, occurred_at desc);

create function private.transparency_entry_hash(prev_hash text, user_id uuid, seq bigint, occurred_at timestamptz,
  action text, resource text, resource_id text, old_value_hash text, new_value_hash text, metadata jsonb)
returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select encode(extensions.digest(convert_to(concat_ws('|', coalesce(prev_hash, ''), user_id::text, seq::text,
    extract(epoch from occurred_at)::text, action, resource, coalesce(resource_id, ''), coalesce(old_value_hash, ''),
    coalesce(new_value_hash, ''), metadata::text), 'UTF8'), 'sha256'), 'hex')
$$;
comment on function private.transparency_entry_hash(text, uuid, bigint, timestamptz, text, text, text, text, text, jsonb) is 'The hash that links a transparency log entry to its predecessor.';

-- The head of each user's chain, kept apart from the log: without it, removing the newest entries of a chain would
-- leave a shorter chain that still verifies. A head only ever moves one entry forward and is never removed.
create table private.transparency_chain_heads (
  user_id uuid not null,
  seq bigint not null,
  entry_hash text not null,
  constraint transparency_chain_heads_pkey primary key (user_id),
  constraint transparency_chain_heads_seq_positive check (seq >= 1),
  constraint transparency_chain_heads_hash_format check (entry_hash ~ '^[0-9a-f]{64}$')
);
comment on table private.transparency_chain_heads is 'Last seq and entry_hash of each user''s transparency chain (written by append_transparency_entry only).';

create function private.guard_transparency_chain_head() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' and new.user_id = old.user_id and new.seq = old.seq + 1 then
    return new;
  end if;
  raise exception 'a transparency chain head only moves one entry forward (% rejected)', lower(tg_op)
    using errcode = '42501';
end;
$$;
comment on function private.guard_transparency_chain_head() is 'BEFORE UPDATE/DELETE on transparency_chain_heads: only a one-step advance passes.';

create trigger transparency_chain_heads_guard before update or delete on private.transparency_chain_heads
  for each row execute function private.guard_transparency_chain_head();
create trigger transparency_chain_heads_no_truncate before truncate on private.transparency_chain_heads
  for each statement execute function private.reject_write('Chain heads are never removed.');
alter table private.transparency_chain_heads enable always trigger transparency_chain_heads_guard;
alter table private.transparency_chain_heads enable always trigger transparency_chain_heads_no_truncate;

-- The only writer. A per-user advisory lock serialises appends so that the chain never forks.
create function private.append_transparency_entry(target_user uuid, action text, resource text, resource_id text,
  old_value_hash text, new_value_hash text, metadata jsonb default '{}'::jsonb)
returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  last_seq bigint;
  last_hash text;
  stamp timestamptz := pg_catalog.clock_timestamp();
  entry_id uuid := gen_random_uuid();
begin
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('privacy_transparency_log:' || target_user::text, 0));
  select h.seq, h.entry_hash into last_seq, last_hash
  from private.transparency_chain_heads h
  where h.user_id = target_user;
  last_seq := coalesce(last_seq, 0) + 1;
  insert into public.privacy_transparency_log (id, user_id, seq, occurred_at, action, resource, resource_id,
                                               old_value_hash, new_value_hash, metadata, prev_hash, entry_hash)
  values (entry_id, target_user, last_seq, stamp, action, resource, resource_id, old_value_hash, new_value_hash,
          coalesce(metadata, '{}'::jsonb), last_hash,
          private.transparency_entry_hash(last_hash, target_user, last_seq, stamp, action, resource, resource_id,
                                          old_value_hash, new_value_hash, coalesce(metadata, '{}'::jsonb)))
  returning entry_hash into last_hash;
  insert into private.transparency_chain_heads as h (user_id, seq, entry_hash)
  values (target_user, last_seq, last_hash)
  on conflict on constraint transparency_chain_heads_pkey do update set seq = excluded.seq, entry_hash = excluded.entry_hash;
  return entry_id;
end;
$$;
comment on function private.append_transparency_entry(uuid, text, text, text, text, text, jsonb) is 'Appends one hash-chained entry to a user''s transparency log (the only way entries are written).';

create trigger privacy_transparency_log_immutable before update or delete on public.privacy_transparency_log
  for each row execute function private.reject_write('The transparency log is append-only, not even its owner changes or removes entries.');
create trigger privacy_transparency_log_no_truncate before truncate on public.privacy_transparency_log
  for each statement execute function private.reject_write('The transparency log is append-only, not even its owner changes or removes entries.');
-- ALWAYS: the triggers fire under session_replication_role = replica too (the switch logical replication and
-- restore tools use), so only an explicit, visible ALTER TABLE ... DISABLE TRIGGER by the owner gets past them.
alter table public.privacy_transparency_log enable always trigger privacy_transparency_log_immutable;
alter table public.privacy_transparency_log enable always trigger privacy_transparency_log_no_truncate;

alter table public.privacy_transparency_log enable row level security;

-- privacy_transparency_log_select: a user reads only their own entries.
create policy privacy_transparency_log_select on public.privacy_transparency_log for select to authenticated
  using (user_id = (select auth.uid()));

grant select on public.privacy_transparency_log to authenticated;

-- Verification returns where the chain breaks, never entry contents. A user checks their own chain; service_role
-- (operators, monitoring) checks every user's.
create function public.verify_transparency_log(target_user uuid default null)
returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  caller uuid := (select auth.uid());
  -- service_role by its JWT, or a direct database session without claims (pg_cron, psql as the owner).
  is_service boolean := coalesce((select auth.role()), '') = 'service_role'
                        or ((select auth.role()) is null and caller is null);
  result jsonb;
begin
  if caller is null and not is_service then
    raise exception 'not authenticated' using errcode = '42501', hint = 'Call this with a user''s JWT.';
  end if;
  if caller is not null and not is_service and target_user is not null and target_user <> caller then
    raise exception 'you may only verify your own transparency log' using errcode = '42501';
  end if;
  if caller is not null and not is_service then
    target_user := caller;
  end if;

  with chain as (
    select l.user_id, l.seq, l.prev_hash, l.entry_hash,
           private.transparency_entry_hash(l.prev_hash, l.user_id, l.seq, l.occurred_at, l.action, l.resource,
                                           l.resource_id, l.old_value_hash, l.new_value_hash, l.metadata) as computed,
           lag(l.entry_hash) over w as expected_prev,
           lag(l.seq) over w as previous_seq
    from public.privacy_transparency_log l
    where target_user is null or l.user_id = target_user
    window w as (partition by l.user_id order by l.seq)
  ),
  broken_links as (
    select c.user_id, c.seq,
           case when c.computed <> c.entry_hash then 'entry_hash_mismatch'
                when c.seq <> coalesce(c.previous_seq, 0) + 1 then 'missing_entry'
                else 'prev_hash_mismatch' end as reason
    from chain c
    where c.computed <> c.entry_hash
       or c.seq <> coalesce(c.previous_seq, 0) + 1
       or c.prev_hash is distinct from c.expected_prev
  ),
  -- The chain must end where its head says: entries removed from the end leave the head pointing past it.
  chain_ends as (
    select distinct on (c.user_id) c.user_id, c.seq, c.entry_hash from chain c order by c.user_id, c.seq desc
  ),
  missing_tail as (
    select h.user_id, h.seq, 'missing_tail' as reason
    from private.transparency_chain_heads h
    left join chain_ends e on e.user_id = h.user_id
    where (target_user is null or h.user_id = target_user)
      and (e.seq is distinct from h.seq or e.entry_hash is distinct from h.entry_hash)
  ),
  broken as (
    select x.user_id, x.seq, x.reason, row_number() over (partition by x.user_id order by x.seq) as n
    from (select * from broken_links union all select * from missing_tail) x
  )
  select jsonb_build_object(
    'valid', not exists (select 1 from broken),
    'entries_checked', (select count(*) from chain),
    'users_checked', (select count(distinct c.user_id) from chain c),
    'first_broken', (select jsonb_agg(jsonb_build_object('user_id', b.user_id, 'seq', b.seq, 'reason', b.reason)
                                      order by b.user_id)
                     from broken b where b.n = 1))
  into result;
  return result;
end;
$$;
comment on function public.verify_transparency_log(uuid) is 'Recomputes the hash chain: {valid, entries_checked, users_checked, first_broken: [{user_id, seq, reason}]}. Users verify their own chain; service_role any.';

grant execute on function public.verify_transparency_log(uuid) to authenticated, service_role;
