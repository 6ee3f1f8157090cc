-- Connectors: credentials in Supabase Vault.
-- Vault helpers (store, read, delete, hint), the audited credential read, and the trigger that deletes a secret with its row.

-- Every credential (integration tokens, AI provider keys, webhook signing secrets) lives in Supabase Vault; the
-- connector tables keep only the secret's id (a `*_secret_id` column that no API role may select), plus what the API
-- shows: has_credentials, a last-4 hint where the provider has one, and credentials_updated_at. Clients write through
-- RPCs and never read a credential back; the service role reads one only through a purpose-named security definer
-- function, and each read is an audit_logs entry (action credential_read: who, which row, why). On Supabase these
-- helpers run as postgres, which Vault grants create_secret, update_secret and decrypted_secrets; locally the platform
-- shim's stand-in (scripts/sql/platform-shim.sql) grants the same.

-- A credential read is an audit event of its own.
alter table public.audit_logs drop constraint audit_logs_action_known;
alter table public.audit_logs add constraint audit_logs_action_known
  check (action in ('insert', 'update', 'delete', 'rls_violation', 'credential_read'));
comment on column public.audit_logs.action is 'insert, update, delete (row changes), rls_violation, or credential_read (a service-side read of a Vault secret, 40-connectors-secrets.sql; metadata says why).';

-- Creates the secret, or replaces the value of an existing one; returns its id. The name is unique in Vault, so
-- it carries the row's id.
create function private.vault_store(existing_secret_id uuid, secret text, secret_name text, secret_description text)
returns uuid
language plpgsql
set search_path = ''
as $$
begin
  if secret is null or secret = '' then
    raise exception 'a credential must not be empty' using errcode = '22023';
  end if;
  if existing_secret_id is not null and exists (select 1 from vault.secrets s where s.id = existing_secret_id) then
    perform vault.update_secret(existing_secret_id, secret, null, secret_description);
    return existing_secret_id;
  end if;
  return vault.create_secret(secret, secret_name, secret_description);
end;
$$;
comment on function private.vault_store(uuid, text, text, text) is 'Stores a credential in Vault: updates the existing secret or creates one named secret_name; returns the secret id. Internal.';

create function private.vault_delete(secret_id uuid) returns void
language sql
set search_path = ''
as $$
  delete from vault.secrets s where s.id = secret_id
$$;
comment on function private.vault_delete(uuid) is 'Deletes a Vault secret (no-op for null or unknown ids). Internal.';

create function private.vault_read(secret_id uuid) returns text
language sql stable
set search_path = ''
as $$
  select s.decrypted_secret from vault.decrypted_secrets s where s.id = secret_id
$$;
comment on function private.vault_read(uuid) is 'Decrypts a Vault secret. Internal: only the audited purpose functions call it.';

-- A hint shows the last four characters, and only of values long enough that four characters give nothing away.
create function private.credential_hint(secret text) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select case when char_length(secret) >= 16 then right(secret, 4) end
$$;
comment on function private.credential_hint(text) is 'Last four characters of a credential of at least 16 characters, else null.';

-- The audit entry of a credential read: who (database role, auth user, session user, application), which row, why.
create function private.audit_credential_read(organization uuid, resource text, resource_id uuid, purpose text,
                                              reason text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  if reason is null or char_length(btrim(reason)) not between 1 and 200 then
    raise exception 'say why the credential is read (1-200 characters)' using errcode = '22023';
  end if;
  insert into public.audit_logs (actor_id, actor_role, organization_id, action, resource, resource_id, ip, user_agent,
                                 correlation_id, metadata)
  values ((select auth.uid()), coalesce((select auth.role()), session_user::text), organization, 'credential_read',
          resource, resource_id::text, private.request_ip(), left(private.request_header('user-agent'), 512),
          private.request_correlation_id(),
          jsonb_build_object('purpose', purpose, 'reason', btrim(reason), 'session_user', session_user::text,
                             'application_name', left(pg_catalog.current_setting('application_name', true), 64)));
end;
$$;
comment on function private.audit_credential_read(uuid, text, uuid, text, text) is 'Appends a credential_read entry to audit_logs (who, which row, purpose, reason). Internal.';

-- AFTER DELETE (and AFTER UPDATE of the secret column) trigger: the Vault secret goes with its row, in the same
-- transaction, whether the row is deleted directly, by a cascade or by the service role. The argument names the
-- column holding the secret id.
create function private.delete_row_secret() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  old_secret uuid := (to_jsonb(old) ->> tg_argv[0])::uuid;
begin
  if tg_op = 'DELETE' or old_secret is distinct from (to_jsonb(new) ->> tg_argv[0])::uuid then
    perform private.vault_delete(old_secret);
  end if;
  return null;
end;
$$;
comment on function private.delete_row_secret() is 'AFTER DELETE/UPDATE trigger: deletes the Vault secret whose id the row held in the column named by the trigger argument.';
