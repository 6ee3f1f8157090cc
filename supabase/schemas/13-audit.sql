-- Audit: audit_logs (monthly partitions), the generic audit trigger, audit_rls_violation().
-- Append-only; written by triggers and security definer functions only; the tenancy tables' audit triggers.

-- audit_logs is append-only and partitioned by month; rows are written only by the generic audit trigger and by
-- audit_rls_violation(). Organization admins (audit.read) read their organization's entries. Values are not copied
-- into the log: only hashes of the old and new row, and the names of the changed columns.

create table public.audit_logs (
  id uuid not null default gen_random_uuid(),
  occurred_at timestamptz not null default now(),
  actor_id uuid,
  actor_role text,
  organization_id uuid,
  action text not null,
  resource text not null,
  resource_id text,
  ip inet,
  user_agent text,
  correlation_id text,
  metadata jsonb not null default '{}'::jsonb,
  old_value_hash text,
  new_value_hash text,
  constraint audit_logs_pkey primary key (id, occurred_at),
  constraint audit_logs_action_known check (action in ('insert', 'update', 'delete', 'rls_violation')),
  constraint audit_logs_metadata_object check (jsonb_typeof(metadata) = 'object'),
  constraint audit_logs_hash_format check (
    (old_value_hash is null or old_value_hash ~ '^[0-9a-f]{64}$') and (new_value_hash is null or new_value_hash ~ '^[0-9a-f]{64}$'))
) partition by range (occurred_at);
comment on table public.audit_logs is 'Immutable audit trail (actor, organization, action, resource, request context, value hashes). Partitioned by month; no foreign keys so entries outlive what they describe. Metadata is redacted on insert by a trigger from 30-privacy-redaction.sql.';
comment on column public.audit_logs.metadata is 'For updates: {"changed": [column names]}; never row values.';

create table private.audit_logs_default partition of public.audit_logs default;

create index audit_logs_organization_idx on public.audit_logs (organization_id, occurred_at desc);
create index audit_logs_actor_idx on public.audit_logs (actor_id, occurred_at desc);
create index audit_logs_resource_idx on public.audit_logs (resource, resource_id);

create trigger audit_logs_immutable before update or delete on public.audit_logs
  for each row execute function private.reject_write('Audit entries are never changed; old partitions are dropped by retention.');
create trigger audit_logs_no_truncate before truncate on public.audit_logs
  for each statement execute function private.reject_write('Audit entries are never changed; old partitions are dropped by retention.');

-- The generic row-change audit trigger. Attach it AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW; the organization is
-- the row's organization_id (or its id, for organizations itself).
create function private.audit_row_change() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  old_row jsonb := case when tg_op in ('UPDATE', 'DELETE') then to_jsonb(old) end;
  new_row jsonb := case when tg_op in ('INSERT', 'UPDATE') then to_jsonb(new) end;
  any_row jsonb := coalesce(new_row, old_row);
  -- The request headers, parsed once per row (the request helpers would parse them again on every call); outside
  -- an API request (workers, pg_cron, the engine's own steps) there are none and the request columns stay null.
  headers jsonb := nullif(current_setting('request.headers', true), '')::jsonb;
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

  insert into public.audit_logs (actor_id, actor_role, organization_id, action, resource, resource_id, ip, user_agent,
                                 correlation_id, metadata, old_value_hash, new_value_hash)
  values (
    (select auth.uid()),
    coalesce((select auth.role()), current_user),
    coalesce(any_row ->> 'organization_id',
             case tg_table_name
               when 'organizations' then any_row ->> 'id'
               when 'role_permissions' then (select r.organization_id::text from public.roles r
                                             where r.id = (any_row ->> 'role_id')::uuid)
             end)::uuid,
    lower(tg_op),
    tg_table_name,
    coalesce(any_row ->> 'id', any_row ->> 'role_id'),
    case when headers is not null then private.client_ip_from_headers(headers) end,
    left(headers ->> 'user-agent', 512),
    left(coalesce(headers ->> 'x-correlation-id', headers ->> 'x-request-id', headers ->> 'sb-request-id'), 128),
    case when tg_op = 'UPDATE' then jsonb_build_object('changed', to_jsonb(changed))
         when tg_table_name = 'role_permissions' then jsonb_build_object('permission', any_row ->> 'permission_key')
         else '{}'::jsonb end,
    encode(pg_catalog.sha256(convert_to(old_row::text, 'UTF8')), 'hex'),
    encode(pg_catalog.sha256(convert_to(new_row::text, 'UTF8')), 'hex')
  );
  return null;
end;
$$;
comment on function private.audit_row_change() is 'AFTER ROW trigger: appends one audit_logs entry per changed row (hashes and changed column names, no values).';

create trigger organizations_audit after insert or update or delete on public.organizations
  for each row execute function private.audit_row_change();
create trigger organization_members_audit after insert or update or delete on public.organization_members
  for each row execute function private.audit_row_change();
create trigger roles_audit after insert or update or delete on public.roles
  for each row execute function private.audit_row_change();
create trigger role_permissions_audit after insert or delete on public.role_permissions
  for each row execute function private.audit_row_change();
create trigger organization_invitations_audit after insert or update or delete on public.organization_invitations
  for each row execute function private.audit_row_change();

alter table public.audit_logs enable row level security;

-- audit_logs_select: members holding audit.read see their organization's entries; entries about billing objects
-- (customers, subscriptions, invoices) also need billing.read, so the audit log never shows more than the tables do.
create policy audit_logs_select on public.audit_logs for select to authenticated
  using (organization_id in (select private.organizations_with_permission('audit.read'))
         and (resource not in ('billing_customers', 'subscriptions', 'subscription_items', 'invoices')
              or organization_id in (select private.organizations_with_permission('billing.read'))));

grant select on public.audit_logs to authenticated, service_role;

-- Server code reports a blocked access attempt (seed 002's audit_rls_violation). Service role only: a client must
-- not be able to fill the audit log.
create function public.audit_rls_violation(table_name text, attempted_user_id uuid, operation text)
returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  entry_id uuid;
begin
  if operation is null or lower(operation) not in ('select', 'insert', 'update', 'delete') then
    raise exception 'operation must be one of select, insert, update, delete (got %)', coalesce(operation, 'null')
      using errcode = '22023';
  end if;
  if not exists (select 1 from pg_catalog.pg_tables t where t.schemaname = 'public' and t.tablename = table_name) then
    raise exception 'unknown table public.%', table_name using errcode = '42P01';
  end if;
  insert into public.audit_logs (actor_id, actor_role, action, resource, ip, user_agent, correlation_id, metadata)
  values (attempted_user_id, coalesce((select auth.role()), current_user), 'rls_violation', table_name,
          private.request_ip(), left(private.request_header('user-agent'), 512), private.request_correlation_id(),
          jsonb_build_object('operation', lower(operation)))
  returning id into entry_id;
  return entry_id;
end;
$$;
comment on function public.audit_rls_violation(text, uuid, text) is 'Records a blocked access attempt in audit_logs. service_role only.';
grant execute on function public.audit_rls_violation(text, uuid, text) to service_role;
