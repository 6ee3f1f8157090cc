-- =====================================================================================================================
-- Master consolidated schema
-- One backend for a family of AI workflow products (see shared/DESIGN.md). BUILT by `npm run db:build` from the
-- files in supabase/schemas/, concatenated in file-name order: edit those, never this file. Every file depends only
-- on the ones above it. It runs unchanged on Supabase Cloud, `supabase start`, and the project's own local platform
-- (scripts/), which provides the same roles, `auth` schema and grants Supabase does.
--
-- Table of contents (the opening comment of each file)
--   00-extensions.sql                           Platform: extensions.
--                                               pgcrypto, pg_trgm and btree_gist in `extensions`; pg_cron, which owns the `cron` schema.
--   01-schemas-and-privileges.sql               Platform: schemas and the privilege lockdown.
--                                               The `private` schema, and default privileges revoked so that nothing is reachable until a grant says so.
--   02-domains.sql                              Platform: domains for shapes that repeat across tables.
--                                               slug, email_address, http_url, phone_number (E.164), jsonb_object.
--   03-shared-helpers.sql                       Platform: shared helpers.
--                                               updated_at and write-guard triggers, request-context accessors, CHECK validators, monthly partition upkeep.
--   10-identity-profiles.sql                    Identity: profiles.
--                                               The app-level profile of every auth.users row (Supabase Auth owns users, sessions, identities, MFA).
--   11-tenancy.sql                              Tenancy: organizations, permissions, roles, role_permissions, organization_members, organization_invitations.
--                                               Tables, their invariants and the reference data (permission keys, system roles and what they grant).
--   12-access-helpers.sql                       Access helpers used by policies.
--                                               user_organization_ids(), organizations_with_permission(), has_permission(), my_rank(), is_platform_admin().
--   13-audit.sql                                Audit: audit_logs (monthly partitions), the generic audit trigger, audit_rls_violation().
--                                               Append-only; written by triggers and security definer functions only; the tenancy tables' audit triggers.
--   14-tenancy-security.sql                     Tenancy: row-level security and grants.
--                                               Policies and column grants of profiles and the tenancy tables (11-tenancy.sql).
--   15-tenancy-rpcs.sql                         Tenancy: RPCs.
--                                               create_organization, invitations, role changes, removal, leaving and deleting an organization.
--   16-sign-up.sql                              Sign-up: a profile and a personal organization for every new auth.users row.
--                                               Triggers on auth.users; e-mail changes reach the profile.
--   17-operations.sql                           Operations: get_table_sizes(), get_index_usage(), system_healthcheck().
--                                               Read-only statistics for operators; service_role only.
--   20-billing-stripe-mirror.sql                Billing: the Stripe mirror (billing_customers, products, prices, subscriptions, subscription_items, invoices).
--                                               Tables, policies and grants; written only by private.handle_stripe_event() (23-billing-stripe-events.sql).
--   21-billing-stripe-sync.sql                  Billing: the Stripe event ledger, the state transitions, and how each Stripe object is applied to the mirror.
--                                               Exactly-once application of verified Stripe events, in any order, onto the mirror (20-billing-stripe-mirror.sql).
--   22-billing-offers-flags-usage.sql           Billing: offers, feature flags, usage metrics, entitlements and the organization_billing view.
--                                               Public read of what is live; organization_entitlements(), has_feature().
--   23-billing-stripe-events.sql                Billing: the entry points of the Stripe sync: private.handle_stripe_event(), private.replay_stripe_event() and
--                                               the operators' view of events that fail (public.billing_sync_problems); which failures are permanent.
--   30-privacy-redaction.sql                    Privacy: redaction (redact_telemetry_metadata, redact_text) and metadata encryption.
--                                               Pure functions that strip secrets and personal data before anything is stored; the audit metadata redactor.
--   31-privacy-transparency-log.sql             Privacy: the transparency log (privacy_transparency_log).
--                                               Append-only for every role, hash-chained per user, verify_transparency_log().
--   32-privacy-preferences.sql                  Privacy: privacy_prefs, app_allowlist, signal_toggles (owner-only, zero trust).
--                                               Consent and what may report; the gate helpers used by the event tables' insert policies.
--   33-privacy-events.sql                       Privacy: telemetry_events and file_events (monthly partitions), file_patterns and file_relationships.
--                                               Consent-gated, redacted before insert, owner-only; derived file insights.
--   34-privacy-ingest.sql                       Privacy: ingest_events(), the batch ingestion RPC behind the ingest edge function.
--                                               Set-based classification with a per-event report; stores only what it reports as accepted.
--   35-privacy-retention.sql                    Privacy: retention_policies, metrics_log, and the retention functions.
--                                               cleanup_retention_data() drops expired months whole; cleanup_telemetry_by_retention() applies each user's setting.
--   36-privacy-health-export-erasure.sql        Privacy: privacy_guardian_health_check(), export_my_data(), erase_my_telemetry().
--                                               Health for operators (aggregates only); a user's own export and erasure.
--   40-connectors-secrets.sql                   Connectors: credentials in Supabase Vault.
--                                               Vault helpers (store, read, delete, hint), the audited credential read, and the trigger that deletes a secret with its row.
--   41-connectors-integrations.sql              Connectors: integration_providers (reference) and integrations.
--                                               Organization-level connections to external services; settings validated per provider, credentials in Vault.
--   42-connectors-ai-providers.sql              Connectors: ai_provider_configs.
--                                               An organization's AI providers (openai, anthropic, google, local): endpoint, default model, budget; API key in Vault.
--   43-connectors-webhooks.sql                  Connectors: webhook_event_types (reference) and webhooks.
--                                               Outgoing webhook endpoints of an organization: URL, subscribed events, extra headers; signing secret in Vault.
--   44-connectors-webhook-deliveries.sql        Connectors: webhook_deliveries (the outbound queue), emit_event(), and what the webhook-dispatcher calls.
--                                               Claiming with a lease, recording outcomes on the Standard Webhooks retry schedule, retention, pg_cron + pg_net jobs.
--   45-workflows-definitions.sql                Workflows: definitions (workflows), their immutable versions (workflow_versions), and the definition validator.
--                                               A definition is a DAG of task, approval, ai_agent and condition nodes, checked in SQL whenever it is saved.
--   46-workflows-executions.sql                 Workflows: executions (workflow_executions, a state machine) and the step queue (workflow_runs, one row per node run).
--                                               Starting, claiming, completing, failing and cancelling; the graph advances inside the database.
--   47-workflows-approvals.sql                  Workflows: approvals (approval_requests, approval_request_approvers, approval_decisions) and decide_approval().
--                                               Quorum rules decided in the deciding statement, form data checked against a JSON Schema subset, escalation, expiry.
--   48-workflows-ai-agent-tasks.sql             Workflows: AI agent tasks (ai_agent_tasks), the price list they are costed with (ai_model_prices), prompt templates.
--                                               What the workflow-worker calls for an ai_agent node: begin (budget, template, task row), complete or fail (tokens, cost).
--   49-workflows-triggers-and-actions.sql       Workflows: event triggers (through private.emit_event), causation depth and the refusal log, webhook-trigger secrets.
--                                               And the task actions the workflow-worker runs in SQL: emit_event, and preparing an http_request through an integration.
--   50-work-projects.sql                        Work management (seed 004): the projects.admin permission, the hex_color domain, projects, project_members,
--                                               project_favorites, and the project access helpers every table hanging off a project uses in its policies.
--   51-work-tasks.sql                           Work management (seed 004): tasks (subtasks, status transitions, gapped ordering, soft delete) and
--                                               task_dependencies (blocked-by, cycle-safe under concurrent inserts). Both follow their project's visibility.
--   52-work-collaboration.sql                   Work management (seed 004): task_watchers, task_commits, comments (threaded, soft-deleted), comment_mentions and
--                                               comment_reactions; the helpers user_can_read_project() and can_comment_on_project().
--   53-work-notifications-activities.sql        Work management (seed 004): notifications (private.notify, mark_notifications_read, the due-soon sweep), activities
--                                               (private.record_activity), what writes them, the comment.created event and the realtime publication.
--   54-work-time.sql                            Work management (seed 004): time_entries (one running timer, no overlaps), task_executions (AI runs of a task), and
--                                               the derived totals rolled up the task tree: tasks.actual_minutes/actual_cost, projects.actual_hours/total_cost.
--   55-work-skills.sql                          Work management (seed 004): skills (reusable AI prompts, public or official), skill_tags, skill_reviews (the seed's
--                                               reviews JSON), task_suggested_skills, and fork_skill(); fork_count, usage_count and rating are derived.
--   56-work-templates.sql                       Work management (seed 004): project templates (project_structure in the seed's ProjectStructure shape), the
--                                               template_tasks derived from it, projects.template_id, and create_project_from_template().
--   57-work-automations.sql                     Work management (seed 004): automations. workflows.project_id and webhooks.project_id (what hangs off them follows
--                                               the project's visibility), the task.created / task.status_changed / task.assigned events, the create_task action.
--   58-work-search.sql                          Work management (seed 004): search over projects, tasks, comments, skills and templates (replacing the seed's
--                                               search_indexes): weighted tsvectors in the organization's text-search configuration, GIN/trigram indexes, search().
--   60-receptionist-agents.sql                  AI receptionist: the `agent` role and `receptionist.operate`, ai_agents, their API keys, the receptionist events.
--                                               An agent is an auth.users row and a member of its organization; it calls the receptionist edge function with a key.
--   61-receptionist-services-staff.sql          AI receptionist: services, staff, staff_services, staff_working_hours, staff_time_off.
--                                               What can be booked, who performs it and when they work; receptionist.manage writes, receptionist.read reads.
--   62-receptionist-conversations-messages.sql  AI receptionist: conversations (redacted transcripts) and messages (SMS, e-mail, voice, chat), ai_agent_performance.
--                                               Written by receptionist.operate holders (agents, staff); they announce call.* and message.* events.
--   63-receptionist-appointments.sql            AI receptionist: appointments (no double booking: an exclusion constraint over the range with buffers) and the
--                                               availability helpers; available_slots(), book_appointment(), cancel_appointment(), reschedule_appointment().
--   64-receptionist-caller-data.sql             AI receptionist: caller-data retention per organization (receptionist_settings, pg_cron), erase_caller_data(),
--                                               and a staff member's own receptionist data for export_my_data().
--   70-analytics-auditor.sql                    Analytics, auditor (seed 000): usage_status_thresholds, usage_analytics, efficiency_metrics, quick_wins.
--                                               refresh_my_usage_analytics() derives a user's usage from their own telemetry, as that user; it expires with it.
--   71-analytics-events.sql                     Growth analytics: analytics_events (monthly partitions), the private exact-once key table, upsert_events().
--                                               Events are redacted and their IP truncated on the way in; the receptionist's calls and appointments land here too.
--   72-analytics-spend.sql                      Growth analytics: spend (ad spend per platform, campaign, ad set and day) and upsert_spend().
--                                               Written by the server-side pipeline only; read by members with analytics.read.
--   73-analytics-rollups.sql                    Growth analytics: analytics_metric_events (which events feed which metric), metrics_daily, recompute_metrics_daily().
--                                               Daily rollups per organization in its own time zone, derived only from analytics_events and spend, safe to recompute.
--   74-analytics-attribution.sql                Growth analytics: cohorts and utm_tracks (first, last and last non-direct touch), derived from analytics_events.
--                                               Maintained set-based as events are stored, repaired by rebuild_attribution(); cohort_retention() reads them.
--   75-analytics-personal-data.sql              Growth analytics: a user's analytics data in export_my_data() (36); erasure is by account deletion (71, 74).
--                                               Events keep serving their organization without the user; cohorts and attribution go with the user.
--   90-scheduled-jobs.sql                       Scheduled jobs (pg_cron) and what spans domains.
--                                               Partition upkeep, ledger cleanup and privacy retention; times are UTC.
-- =====================================================================================================================


-- =====================================================================================================================
-- source: supabase/schemas/00-extensions.sql
-- =====================================================================================================================
-- Platform: extensions.
-- pgcrypto, pg_trgm and btree_gist in `extensions`; pg_cron, which owns the `cron` schema.

-- Everything lives in `extensions` (Supabase's convention) except pg_cron, which must own the `cron` schema.

create extension if not exists pgcrypto with schema extensions;
create extension if not exists pg_trgm with schema extensions;
create extension if not exists btree_gist with schema extensions;
create extension if not exists pg_cron with schema pg_catalog;


-- =====================================================================================================================
-- source: supabase/schemas/01-schemas-and-privileges.sql
-- =====================================================================================================================
-- Platform: schemas and the privilege lockdown.
-- The `private` schema, and default privileges revoked so that nothing is reachable until a grant says so.

-- `public` is the API (exposed through PostgREST). `private` holds helpers, trigger functions, internal tables and
-- partitions; it is never listed in the API schemas, so nothing in it is reachable over HTTP.

create schema if not exists private;
comment on schema private is 'Internal: helpers, trigger functions, internal tables and partitions. Never exposed through the API.';

-- Policies run as the caller and call helpers in `private`, so the API roles may resolve names there; what they can
-- execute is granted function by function below.
grant usage on schema private to authenticated, service_role;


-- Privilege lockdown.
-- Supabase grants the API roles everything on new objects in `public` and every role EXECUTE on new functions.
-- This backend is default-deny: nothing is reachable until a grant further down says so.

alter default privileges for role postgres revoke execute on functions from public;
alter default privileges for role postgres in schema public revoke all on tables from anon, authenticated, service_role;
alter default privileges for role postgres in schema public revoke all on sequences from anon, authenticated, service_role;
alter default privileges for role postgres in schema public revoke all on functions from anon, authenticated, service_role;
revoke all on schema private from public;


-- =====================================================================================================================
-- source: supabase/schemas/02-domains.sql
-- =====================================================================================================================
-- Platform: domains for shapes that repeat across tables.
-- slug, email_address, http_url, phone_number (E.164), jsonb_object.

-- Shapes that repeat across tables. A violation names the domain's constraint, which says what is wrong.

create domain public.slug as text
  constraint slug_format_invalid
  check (value ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$');
comment on domain public.slug is 'URL-safe identifier: 1-63 chars of a-z, 0-9 and inner hyphens.';

create domain public.email_address as text
  constraint email_address_format_invalid
  check (
    length(value) <= 254
    and value ~ '^[A-Za-z0-9._%+''-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,}$'
  );
comment on domain public.email_address is 'An e-mail address (RFC 5321 length limit, common syntax).';

create domain public.http_url as text
  constraint http_url_format_invalid
  check (length(value) <= 2048 and value ~ '^https?://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?(?:[/?#][^\s]*)?$');
comment on domain public.http_url is 'An absolute http(s) URL.';

create domain public.phone_number as text
  constraint phone_number_not_e164
  check (value ~ '^\+[1-9][0-9]{6,14}$');
comment on domain public.phone_number is 'A phone number in E.164 form, e.g. +48123456789.';

create domain public.jsonb_object as jsonb
  constraint jsonb_object_not_object
  check (jsonb_typeof(value) = 'object');
comment on domain public.jsonb_object is 'A JSON object ({...}), not an array, scalar or null JSON value.';


-- =====================================================================================================================
-- source: supabase/schemas/03-shared-helpers.sql
-- =====================================================================================================================
-- Platform: shared helpers.
-- updated_at and write-guard triggers, request-context accessors, CHECK validators, monthly partition upkeep.

-- The updated_at trigger, request-context accessors (the headers PostgREST and the edge functions set per request),
-- validators used by CHECK constraints, and monthly partition upkeep for append-only tables.

create function private.set_updated_at() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := pg_catalog.now();
  return new;
end;
$$;
comment on function private.set_updated_at() is 'BEFORE UPDATE trigger: keeps updated_at current on every table that has one.';

-- Guards of append-only and logged tables: the trigger's argument says why the operation is refused.
create function private.reject_write() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception '% on % is not allowed', lower(tg_op), tg_table_name
    using errcode = '42501', hint = coalesce(tg_argv[0], 'The table does not allow it.');
end;
$$;
comment on function private.reject_write() is 'BEFORE UPDATE/DELETE/TRUNCATE guard: always raises 42501, with the trigger''s argument as the hint.';

-- Request context. PostgREST (and the edge functions' request-context runner) put the request headers in
-- `request.headers` as JSON for the duration of the transaction; outside a request these return null.
create function private.request_header(name text) returns text
language sql stable
set search_path = ''
as $$
  select nullif(current_setting('request.headers', true), '')::jsonb ->> lower(name)
$$;
comment on function private.request_header(text) is 'A header of the current API request (lower-cased name), or null outside a request.';

-- The client IP from already parsed request headers (request_ip() and the audit trigger, which parses the headers
-- once per row). An IPv4 address in dotted-quad form (the common case) is recognised by its shape and cast directly;
-- anything else goes through the guarded cast, whose exception block costs a subtransaction.
create function private.client_ip_from_headers(headers jsonb) returns inet
language plpgsql stable
set search_path = ''
as $$
declare
  -- Headers the platform's proxies set, before X-Forwarded-For; of that, the hop the last proxy appended: the
  -- left-most entries are whatever the client sent.
  forwarded text := headers ->> 'x-forwarded-for';
  raw text := pg_catalog.btrim(coalesce(headers ->> 'cf-connecting-ip', headers ->> 'x-real-ip',
    (pg_catalog.string_to_array(forwarded, ','))[pg_catalog.array_length(pg_catalog.string_to_array(forwarded, ','), 1)],
    ''));
begin
  if raw = '' then
    return null;
  end if;
  if raw ~ '^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$' then
    return raw::inet;
  end if;
  return private.try_inet(raw);
end;
$$;
comment on function private.client_ip_from_headers(jsonb) is 'Client IP from request headers as JSON (CF-Connecting-IP, X-Real-IP, else the last X-Forwarded-For hop), or null.';

create function private.try_inet(value text) returns inet
language plpgsql immutable
set search_path = ''
as $$
begin
  return value::inet;
exception when invalid_text_representation then
  return null;
end;
$$;
comment on function private.try_inet(text) is 'The text as inet, or null when it is not an address.';

create function private.request_ip() returns inet
language sql stable
set search_path = ''
as $$
  select private.client_ip_from_headers(nullif(current_setting('request.headers', true), '')::jsonb)
$$;
comment on function private.request_ip() is 'Client IP of the current request (CF-Connecting-IP, X-Real-IP, else the last X-Forwarded-For hop), or null.';

-- plpgsql, not sql: a SQL function with a pinned search_path is never inlined and is planned again on every call;
-- this one runs for every workflow start.
create function private.request_correlation_id() returns text
language plpgsql stable
set search_path = ''
as $$
declare
  h jsonb := nullif(current_setting('request.headers', true), '')::jsonb;
begin
  return left(coalesce(h ->> 'x-correlation-id', h ->> 'x-request-id', h ->> 'sb-request-id'), 128);
end;
$$;
comment on function private.request_correlation_id() is 'Correlation id of the current request (x-correlation-id, x-request-id or sb-request-id), or null.';

-- Validators. They are immutable in practice: the inputs they check against (ISO 3166 list, the server''s time zone
-- database) change only with a release of this schema or of PostgreSQL.
create function private.is_iso_country_code(code text) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select code = any (array[
    'AD','AE','AF','AG','AI','AL','AM','AO','AQ','AR','AS','AT','AU','AW','AX','AZ','BA','BB','BD','BE','BF','BG',
    'BH','BI','BJ','BL','BM','BN','BO','BQ','BR','BS','BT','BV','BW','BY','BZ','CA','CC','CD','CF','CG','CH','CI',
    'CK','CL','CM','CN','CO','CR','CU','CV','CW','CX','CY','CZ','DE','DJ','DK','DM','DO','DZ','EC','EE','EG','EH',
    'ER','ES','ET','FI','FJ','FK','FM','FO','FR','GA','GB','GD','GE','GF','GG','GH','GI','GL','GM','GN','GP','GQ',
    'GR','GS','GT','GU','GW','GY','HK','HM','HN','HR','HT','HU','ID','IE','IL','IM','IN','IO','IQ','IR','IS','IT',
    'JE','JM','JO','JP','KE','KG','KH','KI','KM','KN','KP','KR','KW','KY','KZ','LA','LB','LC','LI','LK','LR','LS',
    'LT','LU','LV','LY','MA','MC','MD','ME','MF','MG','MH','MK','ML','MM','MN','MO','MP','MQ','MR','MS','MT','MU',
    'MV','MW','MX','MY','MZ','NA','NC','NE','NF','NG','NI','NL','NO','NP','NR','NU','NZ','OM','PA','PE','PF','PG',
    'PH','PK','PL','PM','PN','PR','PS','PT','PW','PY','QA','RE','RO','RS','RU','RW','SA','SB','SC','SD','SE','SG',
    'SH','SI','SJ','SK','SL','SM','SN','SO','SR','SS','ST','SV','SX','SY','SZ','TC','TD','TF','TG','TH','TJ','TK',
    'TL','TM','TN','TO','TR','TT','TV','TW','TZ','UA','UG','UM','US','UY','UZ','VA','VC','VE','VG','VI','VN','VU',
    'WF','WS','YE','YT','ZA','ZM','ZW'])
$$;
comment on function private.is_iso_country_code(text) is 'True for an ISO 3166-1 alpha-2 country code (upper case).';

create function private.is_iana_timezone(tz text) returns boolean
language plpgsql immutable parallel safe
set search_path = ''
as $$
begin
  -- The shape rules out abbreviations (EST) and POSIX offsets (UTC+3); the conversion asks the server's zone
  -- database, which is ~1000x cheaper than scanning pg_timezone_names on every CHECK.
  if tz is null or tz !~ '^(?:UTC|[A-Z][A-Za-z_]+(?:/[A-Za-z0-9_+-]+){1,2})$' then
    return false;
  end if;
  perform pg_catalog.now() at time zone tz;
  return true;
exception when invalid_parameter_value then
  return false;
end;
$$;
comment on function private.is_iana_timezone(text) is 'True for a canonical IANA time zone name such as Europe/Warsaw (or UTC); abbreviations and POSIX offsets are rejected.';

-- business_hours: {"monday": {"open": "09:00", "close": "17:00"}, "sunday": null, ...}; days are optional, a null
-- (or missing) day is closed, open must be before close.
create function private.is_valid_business_hours(hours jsonb) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select jsonb_typeof(hours) = 'object'
     and not exists (
       select 1
       from jsonb_each(hours) as d(day, spec)
       where d.day not in ('monday','tuesday','wednesday','thursday','friday','saturday','sunday')
          or (jsonb_typeof(d.spec) <> 'null' and (
                jsonb_typeof(d.spec) <> 'object'
             or not (d.spec ?& array['open','close'])
             or exists (select 1 from jsonb_object_keys(d.spec) k where k not in ('open','close'))
             or coalesce(d.spec ->> 'open', '') !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'
             or coalesce(d.spec ->> 'close', '') !~ '^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$'
             or (d.spec ->> 'open') >= (d.spec ->> 'close')))
     )
$$;
comment on function private.is_valid_business_hours(jsonb) is 'True when business_hours maps weekday names to null or {open, close} as HH:MM with open < close.';

-- CHECK constraints run with the writer's privileges, so every role that writes must be able to call these.
grant execute on function private.is_iso_country_code(text), private.is_iana_timezone(text),
  private.is_valid_business_hours(jsonb) to authenticated, service_role;

-- Monthly range partitions for the append-only tables. Partitions live in `private` (never exposed); each
-- partitioned table also has a DEFAULT partition so that a write is never lost when upkeep has not run. Creating a
-- month whose rows already sit in the default partition moves them into the new partition first.
create function private.create_monthly_partition(parent regclass, month date) returns boolean
language plpgsql
set search_path = ''
-- Months are UTC months whatever the session's (or the database's) time zone: bounds, names and the per-month
-- counters must agree, and adjacent partitions must meet.
set timezone = 'UTC'
as $$
declare
  start_at timestamptz := date_trunc('month', month)::timestamptz;
  end_at timestamptz := (date_trunc('month', month) + interval '1 month')::timestamptz;
  parent_name text := (select c.relname from pg_catalog.pg_class c where c.oid = parent);
  part_name text := parent_name || '_p' || to_char(month, 'YYYYMM');
  default_name text := parent_name || '_default';
  key_column text;
  moved bigint;
begin
  if exists (select 1 from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
             where n.nspname = 'private' and c.relname = part_name) then
    return false;
  end if;
  select a.attname into key_column
  from pg_catalog.pg_partitioned_table p
  join pg_catalog.pg_attribute a on a.attrelid = p.partrelid and a.attnum = p.partattrs[0]
  where p.partrelid = parent;
  if key_column is null then
    raise exception '% is not a range-partitioned table', parent using errcode = '22023';
  end if;

  execute format('create table private.%I (like %s including defaults including constraints)', part_name, parent);
  -- Moving rows is not a change of the data: row triggers (audit, immutability, derived tables) stay out of it.
  execute format('alter table private.%I disable trigger user', default_name);
  execute format('with moved as (delete from private.%I where %I >= %L and %I < %L returning *) insert into private.%I select * from moved',
                 default_name, key_column, start_at, key_column, end_at, part_name);
  get diagnostics moved = row_count;
  execute format('alter table private.%I enable trigger user', default_name);
  execute format('alter table %s attach partition private.%I for values from (%L) to (%L)', parent, part_name, start_at, end_at);
  if moved > 0 then
    raise notice 'moved % rows of % from the default partition into %', moved, parent, part_name;
  end if;
  return true;
end;
$$;
comment on function private.create_monthly_partition(regclass, date) is 'Creates (idempotently) the partition of a monthly range-partitioned table holding the given month; true when it created one.';

-- The tables maintained here: every range-partitioned table in `public` (found in the catalog, so later files
-- only need to create the parent and its default partition).
create function private.ensure_monthly_partitions(months_back integer default 1, months_ahead integer default 3)
returns integer
language plpgsql
set search_path = ''
set timezone = 'UTC'
as $$
declare
  parent regclass;
  created integer := 0;
begin
  for parent in
    select p.partrelid::regclass
    from pg_catalog.pg_partitioned_table p
    join pg_catalog.pg_class c on c.oid = p.partrelid
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and p.partstrat = 'r'
  loop
    for m in -months_back .. months_ahead loop
      if private.create_monthly_partition(parent, (date_trunc('month', pg_catalog.now()) + make_interval(months => m))::date) then
        created := created + 1;
      end if;
    end loop;
  end loop;
  return created;
end;
$$;
comment on function private.ensure_monthly_partitions(integer, integer) is 'Makes sure every partitioned table in public has monthly (UTC) partitions from months_back to months_ahead (run nightly by pg_cron; three ahead, so that two ahead exist even before the run on the 1st); returns how many it created.';


-- =====================================================================================================================
-- source: supabase/schemas/10-identity-profiles.sql
-- =====================================================================================================================
-- Identity: profiles.
-- The app-level profile of every auth.users row (Supabase Auth owns users, sessions, identities, MFA).

-- Its row-level security and grants are in 14-tenancy-security.sql (they need the membership tables), its creation at
-- sign-up in 16-sign-up.sql.

-- Supabase Auth owns users, sessions, identities and MFA factors (the seeds' users, sessions, accounts,
-- verification_tokens, mfa_enforced_sessions). profiles holds what the apps add to a user.

create table public.profiles (
  id uuid not null,
  email text,
  full_name text,
  avatar_url public.http_url,
  phone public.phone_number,
  timezone text not null default 'UTC',
  locale text not null default 'en',
  preferences jsonb not null default '{}'::jsonb,
  onboarding_completed boolean not null default false,
  last_active_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint profiles_pkey primary key (id),
  constraint profiles_id_fkey foreign key (id) references auth.users (id) on delete cascade,
  constraint profiles_full_name_length check (full_name is null or char_length(full_name) between 1 and 200),
  constraint profiles_timezone_iana check (private.is_iana_timezone(timezone)),
  constraint profiles_locale_bcp47 check (locale ~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$'),
  constraint profiles_preferences_object check (jsonb_typeof(preferences) = 'object')
);
comment on table public.profiles is 'App-level profile of an auth.users row: created at sign-up, removed with the user.';
comment on column public.profiles.email is 'Copy of auth.users.email kept in sync by trigger (read-only for clients), so teammates can see it. Plain text: Auth decides what an acceptable address is, and sign-up must never fail here.';
comment on column public.profiles.preferences is 'Free-form UI preferences (JSON object).';

create trigger profiles_set_updated_at before update on public.profiles
  for each row execute function private.set_updated_at();


-- =====================================================================================================================
-- source: supabase/schemas/11-tenancy.sql
-- =====================================================================================================================
-- Tenancy: organizations, permissions, roles, role_permissions, organization_members, organization_invitations.
-- Tables, their invariants and the reference data (permission keys, system roles and what they grant).

-- The rest of these tables' story is in the files that depend on them: their audit triggers in 13-audit.sql, their
-- row-level security and grants in 14-tenancy-security.sql, the membership RPCs in 15-tenancy-rpcs.sql.

-- organizations are the seeds' tenants (001), organizations (002, 003) and teams (004). Every user also gets a
-- personal organization, so user-level and team-level products share one model. Roles are rows: four system roles
-- plus per-organization custom roles; permissions are system-wide keys.

create table public.organizations (
  id uuid not null default gen_random_uuid(),
  name text not null,
  slug public.slug not null,
  description text,
  plan text not null default 'free',
  is_personal boolean not null default false,
  personal_user_id uuid,
  created_by uuid,
  settings jsonb not null default '{}'::jsonb,
  industry text,
  business_type text,
  phone public.phone_number,
  email public.email_address,
  website public.http_url,
  address text,
  city text,
  country text,
  timezone text not null default 'UTC',
  business_hours jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  constraint organizations_pkey primary key (id),
  constraint organizations_slug_key unique (slug),
  constraint organizations_personal_user_id_key unique (personal_user_id),
  constraint organizations_personal_user_id_fkey foreign key (personal_user_id) references auth.users (id) on delete cascade,
  constraint organizations_created_by_fkey foreign key (created_by) references auth.users (id) on delete set null,
  constraint organizations_name_length check (char_length(btrim(name)) between 1 and 200),
  constraint organizations_description_length check (description is null or char_length(description) <= 2000),
  constraint organizations_plan_known check (plan in ('free', 'pro', 'business', 'enterprise')),
  constraint organizations_personal_has_user check (is_personal = (personal_user_id is not null)),
  constraint organizations_settings_object check (jsonb_typeof(settings) = 'object'),
  constraint organizations_country_iso3166 check (country is null or private.is_iso_country_code(country)),
  constraint organizations_timezone_iana check (private.is_iana_timezone(timezone)),
  constraint organizations_business_hours_shape check (private.is_valid_business_hours(business_hours)),
  constraint organizations_text_lengths check (
    coalesce(char_length(industry), 0) <= 100 and coalesce(char_length(business_type), 0) <= 100
    and coalesce(char_length(address), 0) <= 500 and coalesce(char_length(city), 0) <= 100)
);
comment on table public.organizations is 'Tenants: a team, company or a user''s personal workspace. Soft-deleted via deleted_at.';
comment on column public.organizations.plan is 'Billing plan; written by the billing module only (clients cannot update it).';
comment on column public.organizations.personal_user_id is 'For a personal organization: its user (deleted with the user). Null for shared organizations.';
comment on column public.organizations.business_hours is 'Opening hours per weekday: {"monday": {"open": "09:00", "close": "17:00"}, "sunday": null}.';
comment on column public.organizations.country is 'ISO 3166-1 alpha-2 code, upper case.';

create index organizations_created_by_idx on public.organizations (created_by);
create index organizations_active_idx on public.organizations (id) where deleted_at is null;

create trigger organizations_set_updated_at before update on public.organizations
  for each row execute function private.set_updated_at();

create table public.permissions (
  key text not null,
  description text not null,
  created_at timestamptz not null default now(),
  constraint permissions_pkey primary key (key),
  constraint permissions_key_format check (key ~ '^[a-z_]+\.[a-z_]+$')
);
comment on table public.permissions is 'System-wide permission keys (reference data created by this migration). The key is the primary key: it is what policies and code name.';

create table public.roles (
  id uuid not null default gen_random_uuid(),
  organization_id uuid,
  key text not null,
  name text not null,
  description text,
  rank integer not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint roles_pkey primary key (id),
  constraint roles_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint roles_key_unique unique nulls not distinct (organization_id, key),
  constraint roles_key_format check (key ~ '^[a-z][a-z0-9_]{0,39}$'),
  constraint roles_name_length check (char_length(btrim(name)) between 1 and 100),
  constraint roles_custom_rank_below_admin check (organization_id is null or rank between 1 and 79),
  constraint roles_custom_key_not_reserved check (organization_id is null or key not in ('owner', 'admin', 'member', 'viewer'))
);
comment on table public.roles is 'System roles (organization_id null: owner, admin, member, viewer) and per-organization custom roles.';
comment on column public.roles.rank is 'Seniority: a member may only assign roles up to their own rank. owner 100, admin 80, member 50, viewer 10; custom roles 1-79.';

create index roles_organization_id_idx on public.roles (organization_id);

create trigger roles_set_updated_at before update on public.roles
  for each row execute function private.set_updated_at();

create table public.role_permissions (
  role_id uuid not null,
  permission_key text not null,
  created_at timestamptz not null default now(),
  constraint role_permissions_pkey primary key (role_id, permission_key),
  constraint role_permissions_role_id_fkey foreign key (role_id) references public.roles (id) on delete cascade,
  constraint role_permissions_permission_key_fkey foreign key (permission_key) references public.permissions (key) on delete cascade
);
comment on table public.role_permissions is 'Which permissions each role grants.';

create index role_permissions_permission_key_idx on public.role_permissions (permission_key);

create table public.organization_members (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  user_id uuid not null,
  role_id uuid not null,
  invited_by uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint organization_members_pkey primary key (id),
  constraint organization_members_unique_member unique (organization_id, user_id),
  constraint organization_members_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint organization_members_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint organization_members_role_id_fkey foreign key (role_id) references public.roles (id) on delete restrict,
  constraint organization_members_invited_by_fkey foreign key (invited_by) references auth.users (id) on delete set null
);
comment on table public.organization_members is 'Membership of a user in an organization, with one role. Written through the membership RPCs only.';

create index organization_members_user_id_idx on public.organization_members (user_id, organization_id);
create index organization_members_role_id_idx on public.organization_members (role_id);
create index organization_members_invited_by_idx on public.organization_members (invited_by);

create trigger organization_members_set_updated_at before update on public.organization_members
  for each row execute function private.set_updated_at();

-- A member's role must be a system role or a custom role of the same organization; a personal organization has
-- exactly its user as its member.
create function private.check_membership_role() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  role_org uuid;
  personal_user uuid;
begin
  select r.organization_id into role_org from public.roles r where r.id = new.role_id;
  if role_org is not null and role_org <> new.organization_id then
    raise exception 'role % belongs to another organization', new.role_id
      using errcode = '23514', hint = 'Use a system role or a custom role of this organization.';
  end if;
  select o.personal_user_id into personal_user from public.organizations o where o.id = new.organization_id;
  if personal_user is not null and personal_user <> new.user_id then
    raise exception 'a personal organization cannot have other members'
      using errcode = '23514', hint = 'Create a shared organization to work with others.';
  end if;
  return new;
end;
$$;

create trigger organization_members_check_role before insert or update of role_id, organization_id, user_id
  on public.organization_members for each row execute function private.check_membership_role();

-- An organization that still has members always has an owner. Checked at commit, so ownership can be handed over
-- within one transaction (promote first, then demote); the membership RPCs check it at once for a clearer error.
create function private.organization_has_owner(organization uuid) returns boolean
language sql stable
set search_path = ''
as $$
  select exists (
    select 1 from public.organization_members m
    join public.roles r on r.id = m.role_id
    where m.organization_id = organization and r.organization_id is null and r.key = 'owner')
$$;
comment on function private.organization_has_owner(uuid) is 'Whether at least one member of the organization holds the system owner role.';

-- security definer: it must see every membership, whoever deletes (service role, Auth's admin role, a cascade).
create function private.check_organization_has_owner() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if exists (select 1 from public.organization_members m where m.organization_id = old.organization_id)
     and not private.organization_has_owner(old.organization_id)
  then
    raise exception 'organization % would be left without an owner', old.organization_id
      using errcode = '23514', hint = 'Make another member owner first.';
  end if;
  return null;
end;
$$;

create constraint trigger organization_members_keep_an_owner
  after update or delete on public.organization_members
  deferrable initially deferred
  for each row execute function private.check_organization_has_owner();

-- Invitations: membership needs the invitee's consent. A manager invites an e-mail address; the person with that
-- address (once signed up) accepts or declines. Accepted invitations become memberships and are removed.
create table public.organization_invitations (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  email public.email_address not null,
  role_id uuid not null,
  invited_by uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  expires_at timestamptz not null default now() + interval '14 days',
  constraint organization_invitations_pkey primary key (id),
  constraint organization_invitations_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint organization_invitations_role_id_fkey foreign key (role_id) references public.roles (id) on delete cascade,
  constraint organization_invitations_invited_by_fkey foreign key (invited_by) references auth.users (id) on delete set null,
  constraint organization_invitations_expires_after_creation check (expires_at > created_at)
);
comment on table public.organization_invitations is 'Pending invitations to join an organization, by e-mail. Written through the invitation RPCs only.';

create unique index organization_invitations_one_per_email on public.organization_invitations (organization_id, lower(email));
create index organization_invitations_email_idx on public.organization_invitations (lower(email));
create index organization_invitations_role_id_idx on public.organization_invitations (role_id);
create index organization_invitations_invited_by_idx on public.organization_invitations (invited_by);

create trigger organization_invitations_set_updated_at before update on public.organization_invitations
  for each row execute function private.set_updated_at();

-- Reference data: permissions and system roles. Later modules check these keys; changing them is a migration.
insert into public.permissions (key, description) values
  ('organizations.update',  'Edit the organization''s profile and settings'),
  ('organizations.delete',  'Delete the organization'),
  ('members.read',          'See who belongs to the organization'),
  ('members.manage',        'Add, remove and change the role of members'),
  ('roles.manage',          'Create and edit custom roles'),
  ('audit.read',            'Read the organization''s audit log'),
  ('billing.read',          'See subscriptions, invoices and the billing customer'),
  ('billing.manage',        'Change the plan and payment details'),
  ('integrations.read',     'See connected integrations'),
  ('integrations.manage',   'Connect, configure and remove integrations'),
  ('workflows.read',        'See workflows and their executions'),
  ('workflows.manage',      'Create, edit and delete workflows'),
  ('workflows.execute',     'Run workflows'),
  ('approvals.decide',      'Approve or reject approval requests'),
  ('ai_agents.manage',      'Configure AI agents and AI provider settings'),
  ('projects.read',         'See projects and their tasks'),
  ('projects.manage',       'Create and edit projects and tasks'),
  ('receptionist.read',     'See conversations, appointments, services and staff'),
  ('receptionist.manage',   'Manage services, staff and appointments'),
  ('analytics.read',        'See analytics and metrics'),
  ('webhooks.manage',       'Create and edit outgoing webhooks');

insert into public.roles (organization_id, key, name, description, rank) values
  (null, 'owner',  'Owner',  'Full control, including billing and deleting the organization', 100),
  (null, 'admin',  'Admin',  'Manages members, settings and every module; cannot delete the organization', 80),
  (null, 'member', 'Member', 'Works in every module; cannot manage members, billing or settings', 50),
  (null, 'viewer', 'Viewer', 'Read-only access', 10);

insert into public.role_permissions (role_id, permission_key)
select r.id, p.key
from public.roles r
cross join public.permissions p
where r.organization_id is null
  and (
    r.key = 'owner'
    or (r.key = 'admin' and p.key <> 'organizations.delete')
    or (r.key = 'member' and p.key in ('members.read', 'integrations.read', 'workflows.read', 'workflows.execute',
                                       'approvals.decide', 'projects.read', 'projects.manage', 'receptionist.read',
                                       'receptionist.manage', 'analytics.read'))
    or (r.key = 'viewer' and p.key in ('members.read', 'integrations.read', 'workflows.read', 'projects.read',
                                       'receptionist.read', 'analytics.read'))
  );


-- =====================================================================================================================
-- source: supabase/schemas/12-access-helpers.sql
-- =====================================================================================================================
-- Access helpers used by policies.
-- user_organization_ids(), organizations_with_permission(), has_permission(), my_rank(), is_platform_admin().

-- security definer so that policies can read membership without recursing into membership's own policies; each
-- depends only on the caller (not on the row), so `x in (select private.f())` is evaluated once per statement.
-- PL/pgSQL rather than SQL: a security definer SQL function is never inlined and is planned again on every call
-- (about 0.25 ms, several times per API write); PL/pgSQL keeps its plans for the session (about 0.03 ms a call).

create function private.user_organization_ids() returns setof uuid
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return query
  select m.organization_id
  from public.organization_members m
  join public.organizations o on o.id = m.organization_id
  where m.user_id = (select auth.uid()) and o.deleted_at is null;
end;
$$;
comment on function private.user_organization_ids() is 'Organizations the caller belongs to (not deleted).';

create function private.organizations_with_permission(permission text) returns setof uuid
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return query
  select m.organization_id
  from public.organization_members m
  join public.organizations o on o.id = m.organization_id
  join public.role_permissions rp on rp.role_id = m.role_id
  where m.user_id = (select auth.uid()) and o.deleted_at is null
    and rp.permission_key = organizations_with_permission.permission;
end;
$$;
comment on function private.organizations_with_permission(text) is 'Organizations in which the caller''s role grants the permission.';

create function private.has_permission(organization uuid, permission text) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return exists (select 1 from public.organization_members m
                 join public.organizations o on o.id = m.organization_id
                 join public.role_permissions rp on rp.role_id = m.role_id
                 where m.user_id = (select auth.uid()) and m.organization_id = has_permission.organization
                   and o.deleted_at is null and rp.permission_key = has_permission.permission);
end;
$$;
comment on function private.has_permission(uuid, text) is 'Whether the caller holds the permission in the organization.';

create function private.member_rank(organization uuid, member uuid) returns integer
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return (select r.rank
          from public.organization_members m
          join public.roles r on r.id = m.role_id
          where m.organization_id = member_rank.organization and m.user_id = member_rank.member);
end;
$$;
comment on function private.member_rank(uuid, uuid) is 'Rank of a member''s role in an organization, or null when not a member. Internal: not granted to API roles.';

create function private.my_rank(organization uuid) returns integer
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return private.member_rank(my_rank.organization, (select auth.uid()));
end;
$$;
comment on function private.my_rank(uuid) is 'Rank of the caller''s role in an organization, or null when not a member.';

create function private.is_platform_admin() returns boolean
language sql stable
set search_path = ''
as $$
  select coalesce(((select auth.jwt()) -> 'app_metadata' ->> 'platform_admin')::boolean, false)
$$;
comment on function private.is_platform_admin() is 'Platform administrator flag from app_metadata (server-controlled, never user_metadata).';

grant execute on function private.user_organization_ids(), private.organizations_with_permission(text),
  private.has_permission(uuid, text), private.my_rank(uuid), private.is_platform_admin()
  to authenticated, service_role;


-- =====================================================================================================================
-- source: supabase/schemas/13-audit.sql
-- =====================================================================================================================
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


-- =====================================================================================================================
-- source: supabase/schemas/14-tenancy-security.sql
-- =====================================================================================================================
-- Tenancy: row-level security and grants.
-- Policies and column grants of profiles and the tenancy tables (11-tenancy.sql).

-- Members see their organizations, co-members and roles; writes to membership go through the RPCs in 15-tenancy-rpcs.sql.
-- Custom roles and their permissions are edited directly under RLS by members holding roles.manage.

alter table public.profiles enable row level security;
alter table public.organizations enable row level security;
alter table public.permissions enable row level security;
alter table public.roles enable row level security;
alter table public.role_permissions enable row level security;
alter table public.organization_members enable row level security;

-- profiles_select: a user sees their own profile and the profiles of people they share an organization with.
create policy profiles_select on public.profiles for select to authenticated
  using (
    id = (select auth.uid())
    or id in (select m.user_id from public.organization_members m
              where m.organization_id in (select private.user_organization_ids()))
  );
-- profiles_update: a user edits only their own profile (the editable columns are granted below).
create policy profiles_update on public.profiles for update to authenticated
  using (id = (select auth.uid()))
  with check (id = (select auth.uid()));

grant select on public.profiles to authenticated;
grant update (full_name, avatar_url, phone, timezone, locale, preferences, onboarding_completed, last_active_at)
  on public.profiles to authenticated;
grant select, insert, update, delete on public.profiles to service_role;

-- organizations_select: members see their (not deleted) organizations.
create policy organizations_select on public.organizations for select to authenticated
  using (id in (select private.user_organization_ids()));
-- organizations_update: members holding organizations.update edit the profile columns granted below.
create policy organizations_update on public.organizations for update to authenticated
  using (id in (select private.organizations_with_permission('organizations.update')))
  with check (id in (select private.organizations_with_permission('organizations.update')));

grant select on public.organizations to authenticated;
grant update (name, slug, description, settings, industry, business_type, phone, email, website, address, city,
              country, timezone, business_hours)
  on public.organizations to authenticated;
-- The service role (server code, the dashboard's API) manages organizations but, like clients, never sets plan:
-- plan is derived from Stripe by the billing module (21-billing-stripe-sync.sql), which runs as the table owner.
grant select, delete on public.organizations to service_role;
grant insert (id, name, slug, description, is_personal, personal_user_id, created_by, settings, industry, business_type,
              phone, email, website, address, city, country, timezone, business_hours, created_at, updated_at, deleted_at),
      update (name, slug, description, is_personal, personal_user_id, created_by, settings, industry, business_type,
              phone, email, website, address, city, country, timezone, business_hours, updated_at, deleted_at)
  on public.organizations to service_role;

-- permissions_select: every signed-in user may read the permission catalogue.
create policy permissions_select on public.permissions for select to authenticated
  using (true);

grant select on public.permissions to authenticated, service_role;

-- roles_select: system roles, and custom roles of the caller's organizations.
create policy roles_select on public.roles for select to authenticated
  using (organization_id is null or organization_id in (select private.user_organization_ids()));
-- Custom roles are managed by members holding roles.manage, and only below their own rank: nobody creates, edits,
-- re-ranks or deletes a role at or above their own (their own role included).
-- roles_insert: roles.manage holders create custom roles ranked below their own.
create policy roles_insert on public.roles for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('roles.manage'))
              and rank < private.my_rank(organization_id));
-- roles_update: roles.manage holders edit custom roles ranked below their own, and keep them below.
create policy roles_update on public.roles for update to authenticated
  using (organization_id in (select private.organizations_with_permission('roles.manage'))
         and rank < private.my_rank(organization_id))
  with check (organization_id in (select private.organizations_with_permission('roles.manage'))
              and rank < private.my_rank(organization_id));
-- roles_delete: roles.manage holders delete unused custom roles ranked below their own (a role in use is kept by its FK).
create policy roles_delete on public.roles for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('roles.manage'))
         and rank < private.my_rank(organization_id));

grant select, delete on public.roles to authenticated;
grant insert (organization_id, key, name, description, rank) on public.roles to authenticated;
grant update (name, description, rank) on public.roles to authenticated;
grant select, insert, update, delete on public.roles to service_role;

-- role_permissions_select: the permissions of every role the caller can see.
create policy role_permissions_select on public.role_permissions for select to authenticated
  using (role_id in (select r.id from public.roles r
                     where r.organization_id is null or r.organization_id in (select private.user_organization_ids())));
-- role_permissions_insert: roles.manage holders grant a custom role below their rank only permissions they hold.
create policy role_permissions_insert on public.role_permissions for insert to authenticated
  with check (
    exists (select 1 from public.roles r
            where r.id = role_id
              and r.organization_id in (select private.organizations_with_permission('roles.manage'))
              and r.rank < private.my_rank(r.organization_id)
              and private.has_permission(r.organization_id, permission_key))
  );
-- role_permissions_delete: roles.manage holders take permissions away from custom roles below their rank.
create policy role_permissions_delete on public.role_permissions for delete to authenticated
  using (role_id in (select r.id from public.roles r
                     where r.organization_id in (select private.organizations_with_permission('roles.manage'))
                       and r.rank < private.my_rank(r.organization_id)));

grant select, insert, delete on public.role_permissions to authenticated;
grant select, insert, update, delete on public.role_permissions to service_role;

-- organization_members_select: members see the members of their organizations.
create policy organization_members_select on public.organization_members for select to authenticated
  using (organization_id in (select private.user_organization_ids()));

grant select on public.organization_members to authenticated;
grant select, insert, update, delete on public.organization_members to service_role;

alter table public.organization_invitations enable row level security;

-- organization_invitations_select: members holding members.manage see their organization's pending invitations;
-- a user sees the invitations addressed to their own (JWT) e-mail.
create policy organization_invitations_select on public.organization_invitations for select to authenticated
  using (organization_id in (select private.organizations_with_permission('members.manage'))
         or lower(email) = lower((select auth.jwt()) ->> 'email'));

grant select on public.organization_invitations to authenticated;
grant select, insert, update, delete on public.organization_invitations to service_role;


-- =====================================================================================================================
-- source: supabase/schemas/15-tenancy-rpcs.sql
-- =====================================================================================================================
-- Tenancy: RPCs.
-- create_organization, invitations, role changes, removal, leaving and deleting an organization.

-- What RLS alone cannot express safely: creating an organization with its first owner, and membership changes that
-- depend on the actor's and the target's rank. Each checks the caller, raises a clear error and changes nothing on
-- failure. Errors: 42501 not allowed, P0002 not found, 22023 bad argument, 23505 duplicate, 23514 last owner.

create function private.require_user() returns uuid
language plpgsql stable
set search_path = ''
as $$
declare
  uid uuid := (select auth.uid());
begin
  if uid is null then
    raise exception 'not authenticated' using errcode = '42501', hint = 'Call this with a user''s JWT.';
  end if;
  return uid;
end;
$$;

create function private.system_role_id(role_key text) returns uuid
language plpgsql stable
set search_path = ''
as $$
declare
  found uuid;
begin
  select r.id into found from public.roles r where r.organization_id is null and r.key = role_key;
  return found;
end;
$$;

-- Resolve a role key for an organization: a system role or a custom role of that organization (custom roles cannot
-- reuse the system keys: roles_custom_key_not_reserved).
create function private.resolve_role(organization uuid, role_key text) returns public.roles
language plpgsql stable
set search_path = ''
as $$
declare
  found public.roles;
begin
  select r.* into found from public.roles r
  where r.key = role_key and (r.organization_id is null or r.organization_id = organization)
  order by r.organization_id nulls first
  limit 1;
  if found.id is null then
    raise exception 'unknown role "%"', role_key using errcode = '22023',
      hint = 'Use owner, admin, member, viewer or a custom role of this organization.';
  end if;
  return found;
end;
$$;

create function private.require_active_organization(organization uuid) returns public.organizations
language plpgsql stable
set search_path = ''
as $$
declare
  found public.organizations;
begin
  select o.* into found from public.organizations o where o.id = organization and o.deleted_at is null;
  if found.id is null or not exists (select 1 from private.user_organization_ids() u where u = organization) then
    raise exception 'organization % not found', organization using errcode = 'P0002';
  end if;
  return found;
end;
$$;

create function public.create_organization(name text, slug text, description text default null)
returns public.organizations
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  created public.organizations;
begin
  if exists (select 1 from public.organizations o where o.slug = create_organization.slug) then
    raise exception 'slug "%" is already taken', create_organization.slug using errcode = '23505';
  end if;
  insert into public.organizations (name, slug, description, created_by)
  values (create_organization.name, create_organization.slug, create_organization.description, uid)
  returning * into created;
  insert into public.organization_members (organization_id, user_id, role_id)
  values (created.id, uid, private.system_role_id('owner'));
  return created;
end;
$$;
comment on function public.create_organization(text, text, text) is 'Creates a shared organization; the caller becomes its owner.';

-- Whether a member may hand out a role: they hold members.manage, and either they are an owner or the role ranks no
-- higher than theirs, is not owner, and carries no permission their own role lacks (rank alone would let a member
-- manager give out e.g. billing.read through a low-ranked custom role). Checked again when an invitation is accepted.
create function private.can_grant_role(organization uuid, granter uuid, granted_role uuid) returns boolean
language sql stable
set search_path = ''
as $$
  select coalesce((
    select exists (select 1 from public.role_permissions gp where gp.role_id = g.role_id and gp.permission_key = 'members.manage')
       and (g.rank >= 100
            or (t.rank <= g.rank and not (t.key = 'owner' and t.organization_id is null)
                and not exists (select 1 from public.role_permissions tp
                                where tp.role_id = t.id
                                  and not exists (select 1 from public.role_permissions gp
                                                  where gp.role_id = g.role_id and gp.permission_key = tp.permission_key))))
    from (select m.role_id, r.rank from public.organization_members m join public.roles r on r.id = m.role_id
          where m.organization_id = organization and m.user_id = granter) g,
         public.roles t
    where t.id = granted_role), false)
$$;
comment on function private.can_grant_role(uuid, uuid, uuid) is 'Whether a member may grant a role: members.manage, and owner, or rank up to their own with no permission they lack. Internal.';

create function public.invite_organization_member(organization_id uuid, email text, role text default 'member')
returns public.organization_invitations
language plpgsql security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  uid uuid := private.require_user();
  org public.organizations := private.require_active_organization(invite_organization_member.organization_id);
  new_role public.roles := private.resolve_role(org.id, invite_organization_member.role);
  actor_rank integer := private.member_rank(org.id, uid);
  invitee text := lower(btrim(invite_organization_member.email));
  invitation public.organization_invitations;
begin
  if not private.has_permission(org.id, 'members.manage') then
    raise exception 'you may not manage members of this organization' using errcode = '42501';
  end if;
  if org.is_personal then
    raise exception 'a personal organization cannot have other members' using errcode = '22023',
      hint = 'Create a shared organization with create_organization().';
  end if;
  if new_role.rank > actor_rank or (new_role.key = 'owner' and new_role.organization_id is null and actor_rank < 100) then
    raise exception 'you may not grant the role "%"', new_role.key using errcode = '42501',
      hint = 'You can only grant roles up to your own; only owners invite owners.';
  end if;
  if not private.can_grant_role(org.id, uid, new_role.id) then
    raise exception 'you may not grant the role "%": it holds permissions you do not have', new_role.key
      using errcode = '42501';
  end if;
  if exists (select 1 from public.organization_members m join auth.users u on u.id = m.user_id
             where m.organization_id = org.id and lower(u.email) = invitee) then
    raise exception '% is already a member', invitee using errcode = '23505';
  end if;
  -- No look-up of whether an account exists: the answer is the same for every address.
  insert into public.organization_invitations (organization_id, email, role_id, invited_by)
  values (org.id, invitee, new_role.id, uid)
  on conflict (organization_id, lower(email)) do update
    set role_id = excluded.role_id, invited_by = excluded.invited_by,
        expires_at = pg_catalog.now() + interval '14 days'
  returning * into invitation;
  return invitation;
end;
$$;
comment on function public.invite_organization_member(uuid, text, text) is 'Invites an e-mail address with a role up to the caller''s own (members.manage). Re-inviting refreshes the role and expiry.';

create function public.accept_organization_invitation(invitation_id uuid)
returns public.organization_members
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  invitation public.organization_invitations;
  joined public.organization_members;
begin
  select i.* into invitation
  from public.organization_invitations i
  join auth.users u on u.id = uid and lower(u.email) = lower(i.email)
  join public.organizations o on o.id = i.organization_id and o.deleted_at is null
  where i.id = invitation_id and i.expires_at > pg_catalog.now()
  for update of i;
  if invitation.id is null then
    raise exception 'invitation not found or expired' using errcode = 'P0002',
      hint = 'Ask for a new invitation to the e-mail address of this account.';
  end if;
  if not private.can_grant_role(invitation.organization_id, invitation.invited_by, invitation.role_id) then
    raise exception 'this invitation is no longer valid' using errcode = '42501',
      hint = 'Whoever invited you can no longer grant this role; ask for a new invitation.';
  end if;
  insert into public.organization_members (organization_id, user_id, role_id, invited_by)
  values (invitation.organization_id, uid, invitation.role_id, invitation.invited_by)
  on conflict (organization_id, user_id) do nothing
  returning * into joined;
  if joined.id is null then
    select m.* into joined from public.organization_members m
    where m.organization_id = invitation.organization_id and m.user_id = uid;
  end if;
  delete from public.organization_invitations i where i.id = invitation.id;
  return joined;
end;
$$;
comment on function public.accept_organization_invitation(uuid) is 'The invitee (matched by the account''s e-mail) joins the organization with the invited role.';

create function public.cancel_organization_invitation(invitation_id uuid)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  invitation public.organization_invitations;
begin
  select i.* into invitation from public.organization_invitations i where i.id = invitation_id;
  if invitation.id is null
     or not (exists (select 1 from auth.users u where u.id = uid and lower(u.email) = lower(invitation.email))
             or private.has_permission(invitation.organization_id, 'members.manage')) then
    raise exception 'invitation not found' using errcode = 'P0002';
  end if;
  delete from public.organization_invitations i where i.id = invitation.id;
end;
$$;
comment on function public.cancel_organization_invitation(uuid) is 'The invitee declines, or a members.manage holder revokes, a pending invitation.';

create function public.change_member_role(organization_id uuid, user_id uuid, role text)
returns public.organization_members
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  org public.organizations := private.require_active_organization(change_member_role.organization_id);
  new_role public.roles := private.resolve_role(org.id, change_member_role.role);
  actor_rank integer := private.member_rank(org.id, uid);
  target_rank integer := private.member_rank(org.id, change_member_role.user_id);
  changed public.organization_members;
begin
  if not private.has_permission(org.id, 'members.manage') then
    raise exception 'you may not manage members of this organization' using errcode = '42501';
  end if;
  if target_rank is null then
    raise exception 'user % is not a member of this organization', change_member_role.user_id using errcode = 'P0002';
  end if;
  if actor_rank < 100 and (target_rank > actor_rank or new_role.rank > actor_rank or new_role.key = 'owner') then
    raise exception 'you may not change this member to "%"', new_role.key using errcode = '42501',
      hint = 'You can only manage members and grant roles up to your own rank; only owners manage owners.';
  end if;
  if not private.can_grant_role(org.id, uid, new_role.id) then
    raise exception 'you may not grant the role "%": it holds permissions you do not have', new_role.key
      using errcode = '42501';
  end if;
  if actor_rank < 100 and change_member_role.user_id = uid then
    raise exception 'you may not change your own role' using errcode = '42501';
  end if;
  update public.organization_members m set role_id = new_role.id
  where m.organization_id = org.id and m.user_id = change_member_role.user_id
  returning * into changed;
  if not private.organization_has_owner(org.id) then
    raise exception 'the last owner cannot be demoted' using errcode = '23514',
      hint = 'Make another member owner first.';
  end if;
  return changed;
end;
$$;
comment on function public.change_member_role(uuid, uuid, text) is 'Changes a member''s role (members.manage; up to the caller''s rank; only owners manage owners). The last owner cannot be demoted.';

create function public.remove_organization_member(organization_id uuid, user_id uuid)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  org public.organizations := private.require_active_organization(remove_organization_member.organization_id);
  actor_rank integer := private.member_rank(org.id, uid);
  target_rank integer := private.member_rank(org.id, remove_organization_member.user_id);
begin
  if target_rank is null then
    raise exception 'user % is not a member of this organization', remove_organization_member.user_id using errcode = 'P0002';
  end if;
  if remove_organization_member.user_id <> uid then
    if not private.has_permission(org.id, 'members.manage') then
      raise exception 'you may not manage members of this organization' using errcode = '42501';
    end if;
    if actor_rank < 100 and target_rank > actor_rank then
      raise exception 'you may not remove a member who outranks you' using errcode = '42501';
    end if;
  end if;
  if org.is_personal then
    raise exception 'you cannot leave your personal organization' using errcode = '22023';
  end if;
  delete from public.organization_members m
  where m.organization_id = org.id and m.user_id = remove_organization_member.user_id;
  if not private.organization_has_owner(org.id) then
    raise exception 'the last owner cannot leave or be removed' using errcode = '23514',
      hint = 'Make another member owner first, or delete the organization.';
  end if;
end;
$$;
comment on function public.remove_organization_member(uuid, uuid) is 'Removes a member (members.manage, not someone who outranks you) or yourself. The last owner cannot be removed.';

create function public.leave_organization(organization_id uuid)
returns void
language sql security definer
set search_path = ''
as $$
  select public.remove_organization_member(leave_organization.organization_id, private.require_user())
$$;
comment on function public.leave_organization(uuid) is 'The caller leaves the organization (not their personal one; not as its last owner).';

create function public.delete_organization(organization_id uuid)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  org public.organizations;
begin
  perform private.require_user();
  org := private.require_active_organization(delete_organization.organization_id);
  if not private.has_permission(org.id, 'organizations.delete') then
    raise exception 'only an owner may delete the organization' using errcode = '42501';
  end if;
  if org.is_personal then
    raise exception 'a personal organization is deleted with its user' using errcode = '22023';
  end if;
  update public.organizations o set deleted_at = pg_catalog.now() where o.id = org.id;
end;
$$;
comment on function public.delete_organization(uuid) is 'Soft-deletes a shared organization (owners only); it disappears for every member.';

grant execute on function public.create_organization(text, text, text),
  public.invite_organization_member(uuid, text, text), public.accept_organization_invitation(uuid),
  public.cancel_organization_invitation(uuid),
  public.change_member_role(uuid, uuid, text), public.remove_organization_member(uuid, uuid),
  public.leave_organization(uuid), public.delete_organization(uuid)
  to authenticated;


-- =====================================================================================================================
-- source: supabase/schemas/16-sign-up.sql
-- =====================================================================================================================
-- Sign-up: a profile and a personal organization for every new auth.users row.
-- Triggers on auth.users; e-mail changes reach the profile.

-- Every auth.users insert gets a profile and a personal organization it owns; e-mail changes reach the profile.

-- User metadata is client-controlled: a value that does not fit is dropped, never allowed to fail the sign-up.
create function private.try_http_url(value text) returns public.http_url
language plpgsql immutable
set search_path = ''
as $$
begin
  return value::public.http_url;
exception when check_violation then
  return null;
end;
$$;

create function private.handle_new_user() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  display_name text := nullif(btrim(coalesce(new.raw_user_meta_data ->> 'full_name', new.raw_user_meta_data ->> 'name', '')), '');
  personal_org uuid;
begin
  -- AI receptionist agents (public.create_ai_agent, 60-receptionist-agents.sql) are not people: no profile, no
  -- personal organization.
  if coalesce(new.raw_app_meta_data ->> 'agent', '') = 'true' then
    return new;
  end if;
  insert into public.profiles (id, email, full_name, avatar_url)
  values (
    new.id,
    new.email,
    left(display_name, 200),
    private.try_http_url(new.raw_user_meta_data ->> 'avatar_url')
  );
  insert into public.organizations (name, slug, is_personal, personal_user_id, created_by)
  values (
    left(coalesce(display_name, split_part(new.email, '@', 1), 'Personal'), 180) || ' (personal)',
    'personal-' || replace(new.id::text, '-', ''),
    true, new.id, new.id
  )
  returning id into personal_org;
  insert into public.organization_members (organization_id, user_id, role_id)
  values (personal_org, new.id, private.system_role_id('owner'));
  return new;
end;
$$;
comment on function private.handle_new_user() is 'AFTER INSERT on auth.users: creates the profile and the personal organization (owner); skips AI agents (app_metadata.agent).';

create trigger on_auth_user_created after insert on auth.users
  for each row execute function private.handle_new_user();

create function private.handle_user_email_change() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  update public.profiles p set email = new.email where p.id = new.id;
  return new;
end;
$$;

create trigger on_auth_user_email_changed after update of email on auth.users
  for each row when (old.email is distinct from new.email)
  execute function private.handle_user_email_change();


-- =====================================================================================================================
-- source: supabase/schemas/17-operations.sql
-- =====================================================================================================================
-- Operations: get_table_sizes(), get_index_usage(), system_healthcheck().
-- Read-only statistics for operators; service_role only.

-- Read-only views of the database's health for operators; service_role only. They return statistics, never rows.

create function public.get_table_sizes()
returns table (schema_name text, table_name text, row_estimate bigint, total_bytes bigint, table_bytes bigint,
               index_bytes bigint, total_size text)
language sql stable
set search_path = ''
as $$
  select n.nspname::text, c.relname::text, c.reltuples::bigint,
         pg_catalog.pg_total_relation_size(c.oid), pg_catalog.pg_relation_size(c.oid),
         pg_catalog.pg_indexes_size(c.oid), pg_catalog.pg_size_pretty(pg_catalog.pg_total_relation_size(c.oid))
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p') and n.nspname in ('public', 'private')
  order by pg_catalog.pg_total_relation_size(c.oid) desc
$$;
comment on function public.get_table_sizes() is 'Size of every table in public and private (service_role).';

create function public.get_index_usage()
returns table (schema_name text, table_name text, index_name text, index_scans bigint, index_bytes bigint,
               is_unique boolean)
language sql stable
set search_path = ''
as $$
  select s.schemaname::text, s.relname::text, s.indexrelname::text, s.idx_scan,
         pg_catalog.pg_relation_size(s.indexrelid), i.indisunique
  from pg_catalog.pg_stat_user_indexes s
  join pg_catalog.pg_index i on i.indexrelid = s.indexrelid
  where s.schemaname in ('public', 'private')
  order by s.idx_scan, pg_catalog.pg_relation_size(s.indexrelid) desc
$$;
comment on function public.get_index_usage() is 'Scans and size of every index in public and private, least used first (service_role).';

-- security definer: reads cron.job, which only the database owner may read on Supabase.
create function public.system_healthcheck()
returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'status', case when exists (
                select 1 from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
                where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relrowsecurity and not c.relispartition)
              then 'degraded' else 'ok' end,
    'checked_at', pg_catalog.now(),
    'server_version', pg_catalog.current_setting('server_version'),
    'database_bytes', pg_catalog.pg_database_size(pg_catalog.current_database()),
    'connections', jsonb_build_object(
      'used', (select count(*) from pg_catalog.pg_stat_activity where datname = pg_catalog.current_database()),
      'max', pg_catalog.current_setting('max_connections')::integer),
    'long_running_queries', (select count(*) from pg_catalog.pg_stat_activity
                             where state = 'active' and query_start < pg_catalog.now() - interval '5 minutes'),
    'tables_without_rls', (select coalesce(jsonb_agg(c.relname order by c.relname), '[]'::jsonb)
                           from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
                           where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relrowsecurity
                             and not c.relispartition),
    'partitions_ahead', (select coalesce(jsonb_object_agg(c.relname, (
                            select count(*) from pg_catalog.pg_inherits i
                            join pg_catalog.pg_class pc on pc.oid = i.inhrelid
                            where i.inhparent = p.partrelid
                              and pc.relname >= c.relname || '_p' || to_char(pg_catalog.now() + interval '1 month', 'YYYYMM')
                              and pc.relname <> c.relname || '_default')), '{}'::jsonb)
                         from pg_catalog.pg_partitioned_table p
                         join pg_catalog.pg_class c on c.oid = p.partrelid
                         join pg_catalog.pg_namespace n on n.oid = c.relnamespace
                         where n.nspname = 'public'),
    'scheduled_jobs', (select coalesce(jsonb_agg(jsonb_build_object('name', j.jobname, 'schedule', j.schedule,
                                                                     'active', j.active) order by j.jobname), '[]'::jsonb)
                       from cron.job j)
  )
$$;
comment on function public.system_healthcheck() is 'JSON summary: RLS coverage, connections, long queries, partitions ahead, cron jobs (service_role).';

grant execute on function public.get_table_sizes(), public.get_index_usage(), public.system_healthcheck() to service_role;


-- =====================================================================================================================
-- source: supabase/schemas/20-billing-stripe-mirror.sql
-- =====================================================================================================================
-- Billing: the Stripe mirror (billing_customers, products, prices, subscriptions, subscription_items, invoices).
-- Tables, policies and grants; written only by private.handle_stripe_event() (23-billing-stripe-events.sql).

-- Stripe mirrors (billing_customers, products, prices, subscriptions, subscription_items, invoices) written only by
-- the stripe-webhook function through private.handle_stripe_event(); offers, feature flags, usage and entitlements.

-- Stripe sends Unix seconds and ids that may arrive expanded into objects; these read both shapes.
create function private.stripe_time(value jsonb) returns timestamptz
language sql immutable parallel safe
set search_path = ''
as $$
  select case when jsonb_typeof(value) = 'number' then pg_catalog.to_timestamp((value #>> '{}')::double precision) end
$$;
comment on function private.stripe_time(jsonb) is 'A Stripe timestamp (Unix seconds) as timestamptz; null for null or a non-number.';

create function private.stripe_id(value jsonb) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select case jsonb_typeof(value) when 'string' then value #>> '{}' when 'object' then value ->> 'id' end
$$;
comment on function private.stripe_id(jsonb) is 'The id of a Stripe reference, whether sent as an id string or as an expanded object.';

create function private.plan_rank(plan text) returns integer
language sql immutable parallel safe
set search_path = ''
as $$
  select coalesce(array_position(array['free', 'pro', 'business', 'enterprise'], plan), 0)
$$;
comment on function private.plan_rank(text) is 'Order of the plans (free 1 < pro 2 < business 3 < enterprise 4; unknown 0).';

create table public.billing_customers (
  id uuid not null default gen_random_uuid(),
  organization_id uuid,
  stripe_customer_id text not null,
  email text,
  name text,
  metadata jsonb not null default '{}'::jsonb,
  deleted_at timestamptz,
  stripe_created_at timestamptz,
  stripe_updated_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint billing_customers_pkey primary key (id),
  constraint billing_customers_stripe_customer_id_key unique (stripe_customer_id),
  constraint billing_customers_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete set null,
  constraint billing_customers_stripe_id_format check (stripe_customer_id ~ '^[A-Za-z0-9_]{1,255}$'),
  constraint billing_customers_text_lengths check (coalesce(char_length(email), 0) <= 512 and coalesce(char_length(name), 0) <= 512),
  constraint billing_customers_metadata_object check (jsonb_typeof(metadata) = 'object')
);
comment on table public.billing_customers is 'Stripe customers, each linked to at most one organization and each live organization to at most one customer. Written by the Stripe webhook only.';
comment on column public.billing_customers.organization_id is 'Set from checkout.session client_reference_id / metadata.organization_id or the customer''s metadata.organization_id; null while no organization claims the customer.';
comment on column public.billing_customers.stripe_updated_at is 'created time of the last Stripe event applied to this row; null for a placeholder created by an event that referenced the customer first.';
comment on column public.billing_customers.deleted_at is 'When the customer was deleted in Stripe (customer.deleted). The row stays for the invoice history.';

create unique index billing_customers_organization_id_key on public.billing_customers (organization_id) where deleted_at is null;
create index billing_customers_organization_id_idx on public.billing_customers (organization_id);

create trigger billing_customers_set_updated_at before update on public.billing_customers
  for each row execute function private.set_updated_at();
create trigger billing_customers_audit after insert or update or delete on public.billing_customers
  for each row execute function private.audit_row_change();

alter table public.billing_customers enable row level security;

-- billing_customers_select: members holding billing.read see their organization's customer.
create policy billing_customers_select on public.billing_customers for select to authenticated
  using (organization_id in (select private.organizations_with_permission('billing.read')));

grant select on public.billing_customers to authenticated, service_role;

create table public.products (
  id uuid not null default gen_random_uuid(),
  stripe_product_id text not null,
  name text,
  description text,
  active boolean not null default false,
  plan text,
  metadata jsonb not null default '{}'::jsonb,
  deleted_at timestamptz,
  stripe_created_at timestamptz,
  stripe_updated_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint products_pkey primary key (id),
  constraint products_stripe_product_id_key unique (stripe_product_id),
  constraint products_stripe_id_format check (stripe_product_id ~ '^[A-Za-z0-9_-]{1,255}$'),
  constraint products_plan_known check (plan is null or plan in ('free', 'pro', 'business', 'enterprise')),
  constraint products_name_required check (stripe_updated_at is null or name is not null),
  constraint products_metadata_object check (jsonb_typeof(metadata) = 'object')
);
comment on table public.products is 'Stripe products. A row with stripe_updated_at null is a placeholder for a product referenced before its own event arrived (inactive until then).';
comment on column public.products.plan is 'The plan the product grants (Stripe product metadata.plan: free, pro, business or enterprise); null grants none.';

create trigger products_set_updated_at before update on public.products
  for each row execute function private.set_updated_at();
create trigger products_audit after insert or update or delete on public.products
  for each row execute function private.audit_row_change();

alter table public.products enable row level security;

-- products_select: signed-in users see the active catalogue (for plan pickers).
create policy products_select on public.products for select to authenticated
  using (active and deleted_at is null);

grant select on public.products to authenticated, service_role;

create table public.prices (
  id uuid not null default gen_random_uuid(),
  stripe_price_id text not null,
  product_id uuid not null,
  active boolean not null default false,
  currency text,
  unit_amount bigint,
  type text,
  recurring_interval text,
  recurring_interval_count integer,
  nickname text,
  lookup_key text,
  metadata jsonb not null default '{}'::jsonb,
  deleted_at timestamptz,
  stripe_created_at timestamptz,
  stripe_updated_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint prices_pkey primary key (id),
  constraint prices_stripe_price_id_key unique (stripe_price_id),
  constraint prices_product_id_fkey foreign key (product_id) references public.products (id) on delete restrict,
  constraint prices_stripe_id_format check (stripe_price_id ~ '^[A-Za-z0-9_-]{1,255}$'),
  constraint prices_currency_iso4217 check (currency is null or currency ~ '^[a-z]{3}$'),
  constraint prices_unit_amount_not_negative check (unit_amount is null or unit_amount >= 0),
  constraint prices_type_known check (type is null or type in ('one_time', 'recurring')),
  constraint prices_interval_known check (recurring_interval is null or recurring_interval in ('day', 'week', 'month', 'year')),
  constraint prices_interval_count_positive check (recurring_interval_count is null or recurring_interval_count > 0),
  constraint prices_recurring_has_interval check (type is distinct from 'recurring' or recurring_interval is not null),
  constraint prices_complete check (stripe_updated_at is null or (currency is not null and type is not null)),
  constraint prices_metadata_object check (jsonb_typeof(metadata) = 'object')
);
comment on table public.prices is 'Stripe prices (amounts in minor units of currency). A row with stripe_updated_at null is a placeholder for a price referenced before its own event arrived.';
comment on column public.prices.unit_amount is 'Amount in the currency''s minor unit (cents); null for tiered or custom-amount prices.';

create index prices_product_id_idx on public.prices (product_id);

create trigger prices_set_updated_at before update on public.prices
  for each row execute function private.set_updated_at();
create trigger prices_audit after insert or update or delete on public.prices
  for each row execute function private.audit_row_change();

alter table public.prices enable row level security;

-- prices_select: signed-in users see active prices of the catalogue.
create policy prices_select on public.prices for select to authenticated
  using (active and deleted_at is null);

grant select on public.prices to authenticated, service_role;

create table public.subscriptions (
  id uuid not null default gen_random_uuid(),
  stripe_subscription_id text not null,
  customer_id uuid not null,
  organization_id uuid,
  status text not null,
  currency text,
  cancel_at_period_end boolean not null default false,
  cancel_at timestamptz,
  canceled_at timestamptz,
  ended_at timestamptz,
  trial_start timestamptz,
  trial_end timestamptz,
  current_period_start timestamptz,
  current_period_end timestamptz,
  metadata jsonb not null default '{}'::jsonb,
  stripe_created_at timestamptz,
  stripe_updated_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint subscriptions_pkey primary key (id),
  constraint subscriptions_stripe_subscription_id_key unique (stripe_subscription_id),
  constraint subscriptions_customer_id_fkey foreign key (customer_id) references public.billing_customers (id) on delete restrict,
  constraint subscriptions_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete set null,
  constraint subscriptions_stripe_id_format check (stripe_subscription_id ~ '^[A-Za-z0-9_]{1,255}$'),
  constraint subscriptions_status_known check (status in ('trialing', 'active', 'past_due', 'canceled', 'unpaid',
                                                          'incomplete', 'incomplete_expired', 'paused')),
  constraint subscriptions_currency_iso4217 check (currency is null or currency ~ '^[a-z]{3}$'),
  constraint subscriptions_period_ordered check (current_period_end is null or current_period_start is null
                                                 or current_period_end >= current_period_start),
  constraint subscriptions_trial_ordered check (trial_end is null or trial_start is null or trial_end >= trial_start),
  constraint subscriptions_metadata_object check (jsonb_typeof(metadata) = 'object')
);
comment on table public.subscriptions is 'Stripe subscriptions of an organization (seeds 002, 003). Written by the Stripe webhook only; ordered by private.stripe_status_transitions, then by event time: a canceled subscription is never revived.';
comment on column public.subscriptions.organization_id is 'The organization of the customer (copied from billing_customers, kept in sync when the customer is linked).';
comment on column public.subscriptions.current_period_start is 'Start of the current billing period: the subscription''s own field on API versions before 2025-03-31, else the earliest of its items.';
comment on column public.subscriptions.current_period_end is 'End of the current billing period: the subscription''s own field on API versions before 2025-03-31, else the latest of its items.';
comment on column public.subscriptions.stripe_updated_at is 'created time of the last Stripe event applied to this row.';

create index subscriptions_customer_id_idx on public.subscriptions (customer_id);
create index subscriptions_organization_id_idx on public.subscriptions (organization_id, status);

create trigger subscriptions_set_updated_at before update on public.subscriptions
  for each row execute function private.set_updated_at();
create trigger subscriptions_audit after insert or update or delete on public.subscriptions
  for each row execute function private.audit_row_change();

alter table public.subscriptions enable row level security;

-- subscriptions_select: members holding billing.read see their organization's subscriptions.
create policy subscriptions_select on public.subscriptions for select to authenticated
  using (organization_id in (select private.organizations_with_permission('billing.read')));

grant select on public.subscriptions to authenticated, service_role;

create table public.subscription_items (
  id uuid not null default gen_random_uuid(),
  stripe_subscription_item_id text not null,
  subscription_id uuid not null,
  price_id uuid not null,
  quantity integer,
  current_period_start timestamptz,
  current_period_end timestamptz,
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint subscription_items_pkey primary key (id),
  constraint subscription_items_stripe_subscription_item_id_key unique (stripe_subscription_item_id),
  constraint subscription_items_subscription_id_fkey foreign key (subscription_id) references public.subscriptions (id) on delete cascade,
  constraint subscription_items_price_id_fkey foreign key (price_id) references public.prices (id) on delete restrict,
  constraint subscription_items_stripe_id_format check (stripe_subscription_item_id ~ '^[A-Za-z0-9_]{1,255}$'),
  constraint subscription_items_quantity_not_negative check (quantity is null or quantity >= 0),
  constraint subscription_items_period_ordered check (current_period_end is null or current_period_start is null
                                                      or current_period_end >= current_period_start),
  constraint subscription_items_metadata_object check (jsonb_typeof(metadata) = 'object')
);
comment on table public.subscription_items is 'The prices a subscription bills, with their billing period (where API versions from 2025-03-31 put it). Replaced with each applied subscription event.';

create index subscription_items_subscription_id_idx on public.subscription_items (subscription_id);
create index subscription_items_price_id_idx on public.subscription_items (price_id);

create trigger subscription_items_set_updated_at before update on public.subscription_items
  for each row execute function private.set_updated_at();
create trigger subscription_items_audit after insert or update or delete on public.subscription_items
  for each row execute function private.audit_row_change();

alter table public.subscription_items enable row level security;

-- subscription_items_select: members holding billing.read see the items of their organization's subscriptions.
create policy subscription_items_select on public.subscription_items for select to authenticated
  using (subscription_id in (select s.id from public.subscriptions s
                             where s.organization_id in (select private.organizations_with_permission('billing.read'))));

grant select on public.subscription_items to authenticated, service_role;

create table public.invoices (
  id uuid not null default gen_random_uuid(),
  stripe_invoice_id text not null,
  customer_id uuid not null,
  organization_id uuid,
  subscription_id uuid,
  stripe_subscription_id text,
  status text not null,
  number text,
  currency text not null,
  amount_due bigint not null default 0,
  amount_paid bigint not null default 0,
  amount_remaining bigint not null default 0,
  subtotal bigint,
  total bigint,
  attempt_count integer not null default 0,
  billing_reason text,
  hosted_invoice_url text,
  invoice_pdf text,
  period_start timestamptz,
  period_end timestamptz,
  due_date timestamptz,
  finalized_at timestamptz,
  paid_at timestamptz,
  voided_at timestamptz,
  marked_uncollectible_at timestamptz,
  metadata jsonb not null default '{}'::jsonb,
  stripe_created_at timestamptz,
  stripe_updated_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint invoices_pkey primary key (id),
  constraint invoices_stripe_invoice_id_key unique (stripe_invoice_id),
  constraint invoices_customer_id_fkey foreign key (customer_id) references public.billing_customers (id) on delete restrict,
  constraint invoices_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete set null,
  constraint invoices_subscription_id_fkey foreign key (subscription_id) references public.subscriptions (id) on delete set null,
  constraint invoices_stripe_id_format check (stripe_invoice_id ~ '^[A-Za-z0-9_]{1,255}$'),
  constraint invoices_status_known check (status in ('draft', 'open', 'paid', 'uncollectible', 'void')),
  constraint invoices_currency_iso4217 check (currency ~ '^[a-z]{3}$'),
  constraint invoices_amounts_not_negative check (amount_due >= 0 and amount_paid >= 0 and amount_remaining >= 0),
  constraint invoices_attempt_count_not_negative check (attempt_count >= 0),
  constraint invoices_period_ordered check (period_end is null or period_start is null or period_end >= period_start),
  constraint invoices_metadata_object check (jsonb_typeof(metadata) = 'object')
);
comment on table public.invoices is 'Stripe invoices (amounts in minor units of currency). Written by the Stripe webhook only; the status moves only along private.stripe_status_transitions (paid before finalized stays paid).';
comment on column public.invoices.stripe_subscription_id is 'The subscription that generated the invoice (invoice.subscription, or parent.subscription_details.subscription from API 2025-03-31); subscription_id is linked when that subscription is known.';

create index invoices_customer_id_idx on public.invoices (customer_id);
create index invoices_organization_id_idx on public.invoices (organization_id, stripe_created_at desc);
create index invoices_subscription_id_idx on public.invoices (subscription_id);
create index invoices_unlinked_subscription_idx on public.invoices (stripe_subscription_id) where subscription_id is null;

create trigger invoices_set_updated_at before update on public.invoices
  for each row execute function private.set_updated_at();
create trigger invoices_audit after insert or update or delete on public.invoices
  for each row execute function private.audit_row_change();

alter table public.invoices enable row level security;

-- invoices_select: members holding billing.read see their organization's invoices.
create policy invoices_select on public.invoices for select to authenticated
  using (organization_id in (select private.organizations_with_permission('billing.read')));

grant select on public.invoices to authenticated, service_role;


-- =====================================================================================================================
-- source: supabase/schemas/21-billing-stripe-sync.sql
-- =====================================================================================================================
-- Billing: the Stripe event ledger, the state transitions, and how each Stripe object is applied to the mirror.
-- Exactly-once application of verified Stripe events, in any order, onto the mirror (20-billing-stripe-mirror.sql).

-- The ledger of Stripe events: one row per event id, which is what makes a redelivery a no-op. Only what is needed
-- to reason about delivery is kept for events that were applied. The payload (it can hold personal data such as a
-- customer's name and e-mail, never card data here) is kept only while an event fails, so that a problem can be
-- inspected and replayed; it is cleared when the event is applied, and retention deletes the row after 90 days.
create table private.stripe_events (
  id text not null,
  type text not null,
  api_version text,
  created timestamptz not null,
  livemode boolean not null default false,
  object_type text,
  object_id text,
  received_at timestamptz not null default now(),
  processed_at timestamptz,
  outcome text,
  error text,
  sqlstate text,
  attempts integer not null default 0,
  payload jsonb,
  replayed_at timestamptz,
  constraint stripe_events_pkey primary key (id),
  constraint stripe_events_id_format check (id ~ '^[A-Za-z0-9_]{1,255}$'),
  constraint stripe_events_outcome_known check (outcome is null or outcome in ('applied', 'ignored', 'stale', 'failed', 'problem')),
  constraint stripe_events_processed_has_outcome check ((outcome is null) = (processed_at is null)),
  constraint stripe_events_failed_has_error check (outcome not in ('failed', 'problem') or (error is not null and sqlstate is not null)),
  constraint stripe_events_sqlstate_format check (sqlstate is null or sqlstate ~ '^[0-9A-Z]{5}$'),
  constraint stripe_events_payload_only_while_failing check (payload is null or outcome in ('failed', 'problem')),
  constraint stripe_events_problem_has_payload check (outcome is distinct from 'problem' or payload is not null),
  constraint stripe_events_attempts_not_negative check (attempts >= 0)
);
comment on table private.stripe_events is 'Stripe event ledger: id, type, timing and outcome of every delivered event with the last error and the attempt count. The payload only while the event fails (failed, problem).';
comment on column private.stripe_events.outcome is 'applied: changed state; ignored: type not used or nothing to link; stale: the stored state may not be replaced by it; failed: error, answered 500 so Stripe retries; problem: a permanent error after 5 attempts, answered 200 and kept for private.replay_stripe_event().';
comment on column private.stripe_events.sqlstate is 'SQLSTATE of the last failure; private.stripe_failure_is_permanent() tells a data error (kept as a problem) from a transient one (retried).';
comment on column private.stripe_events.attempts is 'Deliveries and replays that tried to apply the event.';
comment on column private.stripe_events.payload is 'The verified event exactly as Stripe sent it, kept only while the event fails (outcome failed or problem); null otherwise.';
comment on column private.stripe_events.replayed_at is 'When private.replay_stripe_event() last applied the event.';

create index stripe_events_object_idx on private.stripe_events (object_id, created);
create index stripe_events_failed_idx on private.stripe_events (received_at) where outcome in ('failed', 'problem');

-- Operators (service role) read the problems through public.billing_sync_problems (23-billing-stripe-events.sql).
grant select on private.stripe_events to service_role;

-- Serializes every event about one Stripe object (customers cover their subscriptions and invoices), so two events
-- for the same object never interleave their reads and writes.
create function private.lock_stripe_object(stripe_id text, shared boolean default false) returns void
language plpgsql
set search_path = ''
as $$
begin
  if shared then
    perform pg_catalog.pg_advisory_xact_lock_shared(pg_catalog.hashtextextended('stripe:' || stripe_id, 0));
  else
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('stripe:' || stripe_id, 0));
  end if;
end;
$$;
comment on function private.lock_stripe_object(text, boolean) is 'Transaction-level advisory lock on a Stripe object id (shared or exclusive).';

-- The state transitions Stripe documents per object, which decide (with the event time) whether an incoming state
-- may replace the stored one. Events can be delayed, redelivered or missed, so the table holds every state that can
-- follow another one, directly or through states whose events never arrived (draft -> paid: the finalization event
-- may come later or not at all). private.stripe_state_may_replace() reads it:
--   same state, or a transition listed both ways (a live subscription moving between active and past_due): the
--     newer event wins;
--   listed one way only: the later state wins whatever the event times say (paid stays paid when an older
--     finalized event arrives after it, and a paid event older than the stored open state still applies);
--   the other way only: the incoming event is stale;
--   not listed either way: an end state (one with no way out) wins over a state that is not (an expired
--     subscription is never active); between two end states that one object never both reaches (paid and void)
--     the newer event wins. End states thus rank above all others, so the result does not depend on the order.
create table private.stripe_status_transitions (
  object_type text not null,
  from_status text not null,
  to_status text not null,
  constraint stripe_status_transitions_pkey primary key (object_type, from_status, to_status),
  constraint stripe_status_transitions_object_type_known check (object_type in ('customer', 'product', 'price', 'subscription', 'invoice')),
  constraint stripe_status_transitions_changes_state check (from_status <> to_status)
);
comment on table private.stripe_status_transitions is 'Reference data: which state of a Stripe object may follow which (transitively closed: skipped states included). Read by private.stripe_state_may_replace().';
comment on column private.stripe_status_transitions.object_type is 'customer, product, price (states live and deleted), subscription or invoice (their Stripe status).';
comment on column private.stripe_status_transitions.from_status is 'The stored state.';
comment on column private.stripe_status_transitions.to_status is 'A state Stripe can move the object to from from_status, directly or through states whose events were missed.';

-- Customers, products and prices: a deleted object is never live again.
insert into private.stripe_status_transitions (object_type, from_status, to_status)
select object_type, 'live', 'deleted' from unnest(array['customer', 'product', 'price']) object_type;

-- Invoices (https://docs.stripe.com/invoicing/overview#invoice-statuses): draft -> open -> paid | void |
-- uncollectible, and an uncollectible invoice can still be paid or voided. Nothing returns to draft or open.
insert into private.stripe_status_transitions (object_type, from_status, to_status) values
  ('invoice', 'draft', 'open'), ('invoice', 'draft', 'paid'), ('invoice', 'draft', 'void'),
  ('invoice', 'draft', 'uncollectible'),
  ('invoice', 'open', 'paid'), ('invoice', 'open', 'void'), ('invoice', 'open', 'uncollectible'),
  ('invoice', 'uncollectible', 'paid'), ('invoice', 'uncollectible', 'void');

-- Subscriptions (https://docs.stripe.com/billing/subscriptions/overview#subscription-statuses): an incomplete
-- subscription becomes live once its first payment succeeds, or incomplete_expired after 23 hours, or canceled.
-- Live statuses move among each other in every direction (payments fail and recover, trials are extended, a paused
-- subscription resumes), so among them the newer event decides. canceled and incomplete_expired are final: a
-- canceled subscription never becomes active again, however the events are ordered.
insert into private.stripe_status_transitions (object_type, from_status, to_status)
select 'subscription', 'incomplete', s from unnest(array['trialing', 'active', 'past_due', 'unpaid', 'paused',
                                                         'canceled', 'incomplete_expired']) s
union all
select 'subscription', a, b
from unnest(array['trialing', 'active', 'past_due', 'unpaid', 'paused']) a
cross join unnest(array['trialing', 'active', 'past_due', 'unpaid', 'paused', 'canceled']) b
where a <> b;

-- Whether an incoming state (of an event at incoming_at) may replace the stored one (written by an event at
-- stored_at; null for a placeholder nothing has been applied to). Where the newer event decides, a same-second
-- event (Stripe timestamps have one-second resolution) replaces the stored state unless it is a *.created.
create function private.stripe_state_may_replace(object_type text, stored_status text, stored_at timestamptz,
                                                 incoming_status text, incoming_at timestamptz, event_type text)
returns boolean
-- PL/pgSQL, not SQL: its one query keeps a cached plan per connection, where a SQL function this size (it cannot
-- be inlined) is planned again on every call, which cost more than the rest of an invoice event.
language plpgsql stable parallel safe
set search_path = ''
as $$
declare
  newer boolean := incoming_at > stored_at or (incoming_at = stored_at and event_type not like '%.created');
  forward boolean;
  backward boolean;
  stored_has_way_out boolean;
  incoming_has_way_out boolean;
begin
  if stored_at is null then
    return true;
  end if;
  if stored_status is not distinct from incoming_status then
    return newer;
  end if;
  select coalesce(bool_or(t.from_status = stored_status and t.to_status = incoming_status), false),
         coalesce(bool_or(t.from_status = incoming_status and t.to_status = stored_status), false),
         coalesce(bool_or(t.from_status = stored_status), false),
         coalesce(bool_or(t.from_status = incoming_status), false)
  into forward, backward, stored_has_way_out, incoming_has_way_out
  from private.stripe_status_transitions t
  where t.object_type = stripe_state_may_replace.object_type and t.from_status in (stored_status, incoming_status);
  return case
    when forward and not backward then true
    when backward and not forward then false
    when not forward and not backward and stored_has_way_out <> incoming_has_way_out then not incoming_has_way_out
    else newer
  end;
end;
$$;
comment on function private.stripe_state_may_replace(text, text, timestamptz, text, timestamptz, text) is 'The ordering rule of the Stripe mirrors: may the incoming state replace the stored one? By private.stripe_status_transitions first, event time second.';

-- A legacy plan (API versions before prices, and plan.* events) is a price in today's model, with the same ids.
create function private.stripe_plan_as_price(plan jsonb) returns jsonb
language sql immutable parallel safe
set search_path = ''
as $$
  select plan || jsonb_build_object(
    'object', 'price',
    'type', 'recurring',
    'unit_amount', coalesce(plan -> 'unit_amount', plan -> 'amount'),
    'recurring', jsonb_build_object('interval', plan -> 'interval', 'interval_count', coalesce(plan -> 'interval_count', '1'::jsonb),
                                    'usage_type', plan -> 'usage_type'))
$$;
comment on function private.stripe_plan_as_price(jsonb) is 'A Stripe plan object in the shape of a price (amount -> unit_amount, interval -> recurring).';

-- The price a subscription item bills: items.data[].price, or the legacy items.data[].plan of older API shapes.
create function private.stripe_item_price(item jsonb) returns jsonb
language sql immutable parallel safe
set search_path = ''
as $$
  select case when jsonb_typeof(item -> 'price') in ('string', 'object') then item -> 'price'
              when jsonb_typeof(item -> 'plan') in ('string', 'object') then item -> 'plan' end
$$;
comment on function private.stripe_item_price(jsonb) is 'The price (id or object) of a subscription item: its price, else its legacy plan.';

-- The items of a subscription. A legacy single-plan subscription without an items list becomes one item with the
-- subscription's own id (Stripe item ids are never subscription ids), replaced once an event lists real items.
create function private.stripe_subscription_items(subscription jsonb) returns jsonb
language sql immutable parallel safe
set search_path = ''
as $$
  select case
    when jsonb_typeof(subscription -> 'items' -> 'data') = 'array' and jsonb_array_length(subscription -> 'items' -> 'data') > 0
      then subscription -> 'items' -> 'data'
    when jsonb_typeof(subscription -> 'plan') = 'object'
      then jsonb_build_array(jsonb_build_object('id', subscription ->> 'id', 'object', 'subscription_item',
                                                'plan', subscription -> 'plan', 'quantity', subscription -> 'quantity'))
    else '[]'::jsonb
  end
$$;
comment on function private.stripe_subscription_items(jsonb) is 'items.data of a subscription, or one item made of the legacy subscription.plan when there is no list.';

-- The organization a Stripe object claims, when it exists; anything else (no claim, not a uuid, unknown or deleted
-- organization) is no claim, so the event is still stored.
create function private.claimed_organization(claim text) returns uuid
language sql stable
set search_path = ''
as $$
  select o.id from public.organizations o
  where claim ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
    and o.id = claim::uuid and o.deleted_at is null
$$;
comment on function private.claimed_organization(text) is 'The live organization named by a Stripe client_reference_id or metadata.organization_id, or null.';

-- The plan an organization's Stripe subscriptions grant: the best plan among subscriptions that still give access.
create function private.organization_plan(organization uuid) returns text
language sql stable
set search_path = ''
as $$
  select coalesce((
    select p.plan
    from public.subscriptions s
    join public.subscription_items i on i.subscription_id = s.id
    join public.prices pr on pr.id = i.price_id
    join public.products p on p.id = pr.product_id
    where s.organization_id = organization and s.status in ('trialing', 'active', 'past_due') and p.plan is not null
    order by private.plan_rank(p.plan) desc
    limit 1), 'free')
$$;
comment on function private.organization_plan(uuid) is 'Plan granted by the organization''s trialing, active or past_due subscriptions (free when none).';

-- Keeps organizations.plan equal to what its subscriptions grant. The row lock comes first so the plan is computed
-- from what concurrent events have committed.
create function private.refresh_organization_plan(organization uuid) returns void
language plpgsql
set search_path = ''
as $$
declare
  granted text;
begin
  if organization is null then
    return;
  end if;
  perform 1 from public.organizations o where o.id = organization for update;
  granted := private.organization_plan(organization);
  update public.organizations o set plan = granted where o.id = organization and o.plan is distinct from granted;
end;
$$;
comment on function private.refresh_organization_plan(uuid) is 'Sets organizations.plan from the organization''s subscriptions.';

create function private.ensure_stripe_customer(stripe_customer_id text) returns public.billing_customers
language plpgsql
set search_path = ''
as $$
declare
  found public.billing_customers;
begin
  insert into public.billing_customers (stripe_customer_id) values (ensure_stripe_customer.stripe_customer_id)
  on conflict on constraint billing_customers_stripe_customer_id_key do nothing;
  select c.* into found from public.billing_customers c where c.stripe_customer_id = ensure_stripe_customer.stripe_customer_id;
  return found;
end;
$$;
comment on function private.ensure_stripe_customer(text) is 'The customer row for a Stripe customer id, created as a placeholder when no event about it has arrived yet.';

create function private.ensure_stripe_product(stripe_product_id text) returns uuid
language plpgsql
set search_path = ''
as $$
declare
  found uuid;
begin
  insert into public.products (stripe_product_id) values (ensure_stripe_product.stripe_product_id)
  on conflict on constraint products_stripe_product_id_key do nothing;
  select p.id into found from public.products p where p.stripe_product_id = ensure_stripe_product.stripe_product_id;
  return found;
end;
$$;
comment on function private.ensure_stripe_product(text) is 'The product row for a Stripe product id, created as an inactive placeholder when unseen.';

create function private.ensure_stripe_price(stripe_price_id text, stripe_product_id text) returns uuid
language plpgsql
set search_path = ''
as $$
declare
  found uuid;
begin
  select pr.id into found from public.prices pr where pr.stripe_price_id = ensure_stripe_price.stripe_price_id;
  if found is not null then
    return found;
  end if;
  if stripe_product_id is null then
    raise exception 'price % arrived without its product', stripe_price_id
      using errcode = '22023', hint = 'A Stripe price always names its product; check the event payload.';
  end if;
  insert into public.prices (stripe_price_id, product_id)
  values (ensure_stripe_price.stripe_price_id, private.ensure_stripe_product(stripe_product_id))
  on conflict on constraint prices_stripe_price_id_key do nothing;
  select pr.id into found from public.prices pr where pr.stripe_price_id = ensure_stripe_price.stripe_price_id;
  return found;
end;
$$;
comment on function private.ensure_stripe_price(text, text) is 'The price row for a Stripe price id, created as an inactive placeholder (under its product) when unseen.';

-- Links a customer to an organization, carrying its subscriptions and invoices along. An organization keeps the
-- first live customer that claimed it; a second claim leaves the new customer unlinked (stored, visible to no one).
-- A customer that is already linked is never moved by a later claim (a metadata edit in Stripe, a checkout naming
-- another organization): moving it would hand its invoices to that organization. Re-linking is an operator's job.
create function private.link_stripe_customer(customer uuid, organization uuid) returns boolean
language plpgsql
set search_path = ''
as $$
declare
  previous uuid;
  product text;
begin
  if organization is null then
    return false;
  end if;
  -- Shared locks on the products the customer's subscriptions bill (the caller holds the customer's lock): a
  -- concurrent product event that changes a plan then waits and sees the linked subscriptions, or this link waits
  -- and sees the new plan. Without them each could miss the other and leave the organization on the old plan.
  for product in
    select distinct p.stripe_product_id from public.subscriptions s
    join public.subscription_items i on i.subscription_id = s.id
    join public.prices pr on pr.id = i.price_id
    join public.products p on p.id = pr.product_id
    where s.customer_id = customer order by 1
  loop
    perform private.lock_stripe_object(product, true);
  end loop;
  select c.organization_id into previous from public.billing_customers c where c.id = customer;
  if previous is not null then
    return false;
  end if;
  if exists (select 1 from public.billing_customers c
             where c.organization_id = organization and c.deleted_at is null and c.id <> customer) then
    return false;
  end if;
  update public.billing_customers c set organization_id = organization where c.id = customer;
  update public.subscriptions s set organization_id = organization where s.customer_id = customer;
  update public.invoices i set organization_id = organization where i.customer_id = customer;
  perform private.refresh_organization_plan(organization);
  return true;
end;
$$;
comment on function private.link_stripe_customer(uuid, uuid) is 'Links an unlinked customer (and its subscriptions and invoices) to an organization unless that organization already has another live customer; never moves a linked one.';

create function private.apply_stripe_customer(customer jsonb, event_created timestamptz, event_type text) returns text
language plpgsql
set search_path = ''
as $$
declare
  customer_stripe_id text := customer ->> 'id';
  deleting boolean := event_type = 'customer.deleted' or coalesce((customer ->> 'deleted')::boolean, false);
  existing public.billing_customers;
begin
  if customer_stripe_id is null then
    raise exception 'customer event without a customer id' using errcode = '22023', hint = 'Check data.object.id of the event.';
  end if;
  perform private.lock_stripe_object(customer_stripe_id);
  existing := private.ensure_stripe_customer(customer_stripe_id);
  if not private.stripe_state_may_replace('customer', case when existing.deleted_at is null then 'live' else 'deleted' end,
                                          existing.stripe_updated_at, case when deleting then 'deleted' else 'live' end,
                                          event_created, event_type) then
    return 'stale';
  end if;
  update public.billing_customers c set
    email = left(customer ->> 'email', 512),
    name = left(customer ->> 'name', 512),
    metadata = case when jsonb_typeof(customer -> 'metadata') = 'object' then customer -> 'metadata' else '{}'::jsonb end,
    deleted_at = case when deleting then coalesce(existing.deleted_at, event_created) end,
    stripe_created_at = coalesce(private.stripe_time(customer -> 'created'), existing.stripe_created_at),
    stripe_updated_at = event_created
  where c.id = existing.id;
  if not deleting then
    perform private.link_stripe_customer(existing.id, private.claimed_organization(customer -> 'metadata' ->> 'organization_id'));
  end if;
  return 'applied';
end;
$$;
comment on function private.apply_stripe_customer(jsonb, timestamptz, text) is 'Applies customer.created/updated/deleted (newest event wins; a deleted customer stays deleted).';

create function private.apply_stripe_checkout_session(session jsonb) returns text
language plpgsql
set search_path = ''
as $$
declare
  customer_stripe_id text := private.stripe_id(session -> 'customer');
  -- The first claim that names a live organization: a stale or foreign client_reference_id does not hide a good
  -- metadata.organization_id.
  claimed uuid := coalesce(private.claimed_organization(session ->> 'client_reference_id'),
                           private.claimed_organization(session -> 'metadata' ->> 'organization_id'));
  customer public.billing_customers;
begin
  if customer_stripe_id is null then
    return 'ignored';
  end if;
  perform private.lock_stripe_object(customer_stripe_id);
  customer := private.ensure_stripe_customer(customer_stripe_id);
  if claimed is null then
    return 'ignored';
  end if;
  perform private.link_stripe_customer(customer.id, claimed);
  return 'applied';
end;
$$;
comment on function private.apply_stripe_checkout_session(jsonb) is 'Applies checkout.session.completed: links the session''s customer to the organization it names.';

create function private.apply_stripe_subscription(subscription jsonb, event_created timestamptz, event_type text) returns text
language plpgsql
set search_path = ''
as $$
declare
  subscription_stripe_id text := subscription ->> 'id';
  customer_stripe_id text := private.stripe_id(subscription -> 'customer');
  new_status text := subscription ->> 'status';
  items jsonb := private.stripe_subscription_items(subscription);
  customer public.billing_customers;
  existing public.subscriptions;
  saved uuid;
  product text;
  item jsonb;
begin
  if subscription_stripe_id is null or customer_stripe_id is null then
    raise exception 'subscription event without id or customer' using errcode = '22023',
      hint = 'Check data.object.id and data.object.customer of the event.';
  end if;
  perform private.lock_stripe_object(customer_stripe_id);
  -- Shared locks on the products it bills: a concurrent product event (exclusive) then sees this subscription.
  for product in
    select distinct private.stripe_id(private.stripe_item_price(i) -> 'product') from jsonb_array_elements(items) i
    where private.stripe_id(private.stripe_item_price(i) -> 'product') is not null order by 1
  loop
    perform private.lock_stripe_object(product, true);
  end loop;
  customer := private.ensure_stripe_customer(customer_stripe_id);

  select s.* into existing from public.subscriptions s where s.stripe_subscription_id = subscription_stripe_id;
  if found and not private.stripe_state_may_replace('subscription', existing.status, existing.stripe_updated_at,
                                                    new_status, event_created, event_type) then
    return 'stale';
  end if;

  insert into public.subscriptions as s (stripe_subscription_id, customer_id, organization_id, status, currency,
    cancel_at_period_end, cancel_at, canceled_at, ended_at, trial_start, trial_end, current_period_start,
    current_period_end, metadata, stripe_created_at, stripe_updated_at)
  values (
    subscription_stripe_id, customer.id, customer.organization_id, new_status, subscription ->> 'currency',
    coalesce((subscription ->> 'cancel_at_period_end')::boolean, false),
    private.stripe_time(subscription -> 'cancel_at'), private.stripe_time(subscription -> 'canceled_at'),
    private.stripe_time(subscription -> 'ended_at'), private.stripe_time(subscription -> 'trial_start'),
    private.stripe_time(subscription -> 'trial_end'),
    coalesce(private.stripe_time(subscription -> 'current_period_start'),
             (select min(private.stripe_time(i -> 'current_period_start')) from jsonb_array_elements(items) i)),
    coalesce(private.stripe_time(subscription -> 'current_period_end'),
             (select max(private.stripe_time(i -> 'current_period_end')) from jsonb_array_elements(items) i)),
    case when jsonb_typeof(subscription -> 'metadata') = 'object' then subscription -> 'metadata' else '{}'::jsonb end,
    private.stripe_time(subscription -> 'created'), event_created)
  on conflict on constraint subscriptions_stripe_subscription_id_key do update set
    customer_id = excluded.customer_id, organization_id = excluded.organization_id, status = excluded.status,
    currency = excluded.currency, cancel_at_period_end = excluded.cancel_at_period_end, cancel_at = excluded.cancel_at,
    canceled_at = excluded.canceled_at, ended_at = excluded.ended_at, trial_start = excluded.trial_start,
    trial_end = excluded.trial_end, current_period_start = excluded.current_period_start,
    current_period_end = excluded.current_period_end, metadata = excluded.metadata,
    stripe_created_at = coalesce(excluded.stripe_created_at, s.stripe_created_at),
    stripe_updated_at = excluded.stripe_updated_at
  returning s.id into saved;

  for item in select i from jsonb_array_elements(items) i loop
    insert into public.subscription_items as si (stripe_subscription_item_id, subscription_id, price_id, quantity,
      current_period_start, current_period_end, metadata)
    values (
      item ->> 'id', saved,
      private.ensure_stripe_price(private.stripe_id(private.stripe_item_price(item)),
                                  private.stripe_id(private.stripe_item_price(item) -> 'product')),
      (item ->> 'quantity')::integer,
      coalesce(private.stripe_time(item -> 'current_period_start'), private.stripe_time(subscription -> 'current_period_start')),
      coalesce(private.stripe_time(item -> 'current_period_end'), private.stripe_time(subscription -> 'current_period_end')),
      case when jsonb_typeof(item -> 'metadata') = 'object' then item -> 'metadata' else '{}'::jsonb end)
    on conflict on constraint subscription_items_stripe_subscription_item_id_key do update set
      subscription_id = excluded.subscription_id, price_id = excluded.price_id, quantity = excluded.quantity,
      current_period_start = excluded.current_period_start, current_period_end = excluded.current_period_end,
      metadata = excluded.metadata;
  end loop;
  delete from public.subscription_items si
  where si.subscription_id = saved
    and si.stripe_subscription_item_id not in (select i ->> 'id' from jsonb_array_elements(items) i);

  update public.invoices i set subscription_id = saved
  where i.stripe_subscription_id = subscription_stripe_id and i.subscription_id is null;

  perform private.refresh_organization_plan(customer.organization_id);
  return 'applied';
end;
$$;
comment on function private.apply_stripe_subscription(jsonb, timestamptz, text) is 'Applies customer.subscription.* (either API shape of the billing period; items with a price or a legacy plan); never revives a canceled subscription.';

create function private.apply_stripe_invoice(invoice jsonb, event_created timestamptz, event_type text) returns text
language plpgsql
set search_path = ''
as $$
declare
  invoice_stripe_id text := invoice ->> 'id';
  customer_stripe_id text := private.stripe_id(invoice -> 'customer');
  subscription_stripe_id text := coalesce(private.stripe_id(invoice -> 'subscription'),
                                          private.stripe_id(invoice -> 'parent' -> 'subscription_details' -> 'subscription'));
  -- API versions before 2018-11-08 had no status, only paid and forgiven (marked uncollectible).
  new_status text := coalesce(invoice ->> 'status', case when invoice ->> 'paid' = 'true' then 'paid'
                                                         when invoice ->> 'forgiven' = 'true' then 'uncollectible'
                                                         when invoice ->> 'paid' = 'false' then 'open'
                                                         else 'draft' end);
  transitions jsonb := coalesce(invoice -> 'status_transitions', '{}'::jsonb);
  customer public.billing_customers;
  existing public.invoices;
begin
  if invoice_stripe_id is null or customer_stripe_id is null then
    raise exception 'invoice event without id or customer' using errcode = '22023',
      hint = 'Check data.object.id and data.object.customer of the event.';
  end if;
  perform private.lock_stripe_object(customer_stripe_id);
  customer := private.ensure_stripe_customer(customer_stripe_id);

  select i.* into existing from public.invoices i where i.stripe_invoice_id = invoice_stripe_id;
  if found and not private.stripe_state_may_replace('invoice', existing.status, existing.stripe_updated_at,
                                                    new_status, event_created, event_type) then
    return 'stale';
  end if;

  insert into public.invoices as inv (stripe_invoice_id, customer_id, organization_id, subscription_id,
    stripe_subscription_id, status, number, currency, amount_due, amount_paid, amount_remaining, subtotal, total,
    attempt_count, billing_reason, hosted_invoice_url, invoice_pdf, period_start, period_end, due_date, finalized_at,
    paid_at, voided_at, marked_uncollectible_at, metadata, stripe_created_at, stripe_updated_at)
  values (
    invoice_stripe_id, customer.id, customer.organization_id,
    (select s.id from public.subscriptions s where s.stripe_subscription_id = subscription_stripe_id),
    subscription_stripe_id, new_status, invoice ->> 'number', invoice ->> 'currency',
    coalesce((invoice ->> 'amount_due')::bigint, 0), coalesce((invoice ->> 'amount_paid')::bigint, 0),
    coalesce((invoice ->> 'amount_remaining')::bigint, 0), (invoice ->> 'subtotal')::bigint, (invoice ->> 'total')::bigint,
    coalesce((invoice ->> 'attempt_count')::integer, 0), invoice ->> 'billing_reason',
    invoice ->> 'hosted_invoice_url', invoice ->> 'invoice_pdf',
    private.stripe_time(invoice -> 'period_start'), private.stripe_time(invoice -> 'period_end'),
    private.stripe_time(invoice -> 'due_date'), private.stripe_time(transitions -> 'finalized_at'),
    private.stripe_time(transitions -> 'paid_at'), private.stripe_time(transitions -> 'voided_at'),
    private.stripe_time(transitions -> 'marked_uncollectible_at'),
    case when jsonb_typeof(invoice -> 'metadata') = 'object' then invoice -> 'metadata' else '{}'::jsonb end,
    coalesce(private.stripe_time(invoice -> 'created'), private.stripe_time(invoice -> 'date')), event_created)
  on conflict on constraint invoices_stripe_invoice_id_key do update set
    customer_id = excluded.customer_id, organization_id = excluded.organization_id,
    subscription_id = coalesce(excluded.subscription_id, inv.subscription_id),
    stripe_subscription_id = excluded.stripe_subscription_id, status = excluded.status, number = excluded.number,
    currency = excluded.currency, amount_due = excluded.amount_due, amount_paid = excluded.amount_paid,
    amount_remaining = excluded.amount_remaining, subtotal = excluded.subtotal, total = excluded.total,
    attempt_count = excluded.attempt_count, billing_reason = excluded.billing_reason,
    hosted_invoice_url = excluded.hosted_invoice_url, invoice_pdf = excluded.invoice_pdf,
    period_start = excluded.period_start, period_end = excluded.period_end, due_date = excluded.due_date,
    finalized_at = excluded.finalized_at, paid_at = excluded.paid_at, voided_at = excluded.voided_at,
    marked_uncollectible_at = excluded.marked_uncollectible_at, metadata = excluded.metadata,
    stripe_created_at = coalesce(excluded.stripe_created_at, inv.stripe_created_at),
    stripe_updated_at = excluded.stripe_updated_at;
  return 'applied';
end;
$$;
comment on function private.apply_stripe_invoice(jsonb, timestamptz, text) is 'Applies invoice.* events (both API shapes of the invoice''s subscription); the status moves only forward (private.stripe_status_transitions).';

create function private.apply_stripe_product(product jsonb, event_created timestamptz, event_type text) returns text
language plpgsql
set search_path = ''
as $$
declare
  product_stripe_id text := product ->> 'id';
  deleting boolean := event_type = 'product.deleted' or coalesce((product ->> 'deleted')::boolean, false);
  new_plan text := case when product -> 'metadata' ->> 'plan' in ('free', 'pro', 'business', 'enterprise')
                        then product -> 'metadata' ->> 'plan' end;
  existing public.products;
  organization uuid;
begin
  if product_stripe_id is null then
    raise exception 'product event without a product id' using errcode = '22023', hint = 'Check data.object.id of the event.';
  end if;
  perform private.lock_stripe_object(product_stripe_id);
  perform private.ensure_stripe_product(product_stripe_id);
  select p.* into existing from public.products p where p.stripe_product_id = product_stripe_id;
  if not private.stripe_state_may_replace('product', case when existing.deleted_at is null then 'live' else 'deleted' end,
                                          existing.stripe_updated_at, case when deleting then 'deleted' else 'live' end,
                                          event_created, event_type) then
    return 'stale';
  end if;
  update public.products p set
    name = coalesce(product ->> 'name', existing.name, product_stripe_id),
    description = product ->> 'description',
    active = not deleting and coalesce((product ->> 'active')::boolean, false),
    plan = new_plan,
    metadata = case when jsonb_typeof(product -> 'metadata') = 'object' then product -> 'metadata' else '{}'::jsonb end,
    deleted_at = case when deleting then coalesce(existing.deleted_at, event_created) end,
    stripe_created_at = coalesce(private.stripe_time(product -> 'created'), existing.stripe_created_at),
    stripe_updated_at = event_created
  where p.id = existing.id;
  if new_plan is distinct from existing.plan then
    for organization in
      select distinct s.organization_id
      from public.subscriptions s
      join public.subscription_items i on i.subscription_id = s.id
      join public.prices pr on pr.id = i.price_id
      where pr.product_id = existing.id and s.organization_id is not null
      order by 1
    loop
      perform private.refresh_organization_plan(organization);
    end loop;
  end if;
  return 'applied';
end;
$$;
comment on function private.apply_stripe_product(jsonb, timestamptz, text) is 'Applies product.created/updated/deleted and re-derives the plan of organizations subscribed to it.';

create function private.apply_stripe_price(price jsonb, event_created timestamptz, event_type text) returns text
language plpgsql
set search_path = ''
as $$
declare
  price_stripe_id text := price ->> 'id';
  deleting boolean := event_type = 'price.deleted' or coalesce((price ->> 'deleted')::boolean, false);
  existing public.prices;
begin
  if price_stripe_id is null then
    raise exception 'price event without a price id' using errcode = '22023', hint = 'Check data.object.id of the event.';
  end if;
  perform private.lock_stripe_object(price_stripe_id);
  perform private.ensure_stripe_price(price_stripe_id, private.stripe_id(price -> 'product'));
  select pr.* into existing from public.prices pr where pr.stripe_price_id = price_stripe_id;
  if not private.stripe_state_may_replace('price', case when existing.deleted_at is null then 'live' else 'deleted' end,
                                          existing.stripe_updated_at, case when deleting then 'deleted' else 'live' end,
                                          event_created, event_type) then
    return 'stale';
  end if;
  update public.prices pr set
    product_id = coalesce(private.ensure_stripe_product(private.stripe_id(price -> 'product')), existing.product_id),
    active = not deleting and coalesce((price ->> 'active')::boolean, false),
    currency = coalesce(lower(price ->> 'currency'), existing.currency, 'usd'),
    unit_amount = (price ->> 'unit_amount')::bigint,
    type = coalesce(price ->> 'type', existing.type, case when price ? 'recurring' and jsonb_typeof(price -> 'recurring') = 'object'
                                                     then 'recurring' else 'one_time' end),
    recurring_interval = price -> 'recurring' ->> 'interval',
    recurring_interval_count = (price -> 'recurring' ->> 'interval_count')::integer,
    nickname = price ->> 'nickname',
    lookup_key = price ->> 'lookup_key',
    metadata = case when jsonb_typeof(price -> 'metadata') = 'object' then price -> 'metadata' else '{}'::jsonb end,
    deleted_at = case when deleting then coalesce(existing.deleted_at, event_created) end,
    stripe_created_at = coalesce(private.stripe_time(price -> 'created'), existing.stripe_created_at),
    stripe_updated_at = event_created
  where pr.id = existing.id;
  return 'applied';
end;
$$;
comment on function private.apply_stripe_price(jsonb, timestamptz, text) is 'Applies price.* and legacy plan.* events (as prices, see private.stripe_plan_as_price); a deleted price stays deleted.';


-- =====================================================================================================================
-- source: supabase/schemas/22-billing-offers-flags-usage.sql
-- =====================================================================================================================
-- Billing: offers, feature flags, usage metrics, entitlements and the organization_billing view.
-- Public read of what is live; organization_entitlements(), has_feature().

create table public.offers (
  id uuid not null default gen_random_uuid(),
  key text not null,
  name text not null,
  description text,
  plan text not null,
  discount_percent numeric(5, 2),
  discount_amount bigint,
  currency text,
  stripe_coupon_id text,
  valid_from timestamptz not null default now(),
  valid_to timestamptz,
  enabled boolean not null default false,
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint offers_pkey primary key (id),
  constraint offers_key_key unique (key),
  constraint offers_key_format check (key ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  constraint offers_name_length check (char_length(btrim(name)) between 1 and 200),
  constraint offers_plan_known check (plan in ('free', 'pro', 'business', 'enterprise')),
  constraint offers_one_discount check (num_nonnulls(discount_percent, discount_amount) = 1),
  constraint offers_discount_percent_range check (discount_percent is null or (discount_percent > 0 and discount_percent <= 100)),
  constraint offers_discount_amount_positive check (discount_amount is null or discount_amount > 0),
  constraint offers_amount_has_currency check ((discount_amount is null) = (currency is null)),
  constraint offers_currency_iso4217 check (currency is null or currency ~ '^[a-z]{3}$'),
  constraint offers_validity_ordered check (valid_to is null or valid_to > valid_from),
  constraint offers_metadata_object check (jsonb_typeof(metadata) = 'object')
);
comment on table public.offers is 'Pricing offers (seed 002): a percent or fixed discount on a plan, live while enabled and within valid_from..valid_to. Managed by the server (service_role).';
comment on column public.offers.discount_amount is 'Fixed discount in minor units of currency (cents); exclusive with discount_percent.';

create trigger offers_set_updated_at before update on public.offers
  for each row execute function private.set_updated_at();
create trigger offers_audit after insert or update or delete on public.offers
  for each row execute function private.audit_row_change();

alter table public.offers enable row level security;

-- offers_select: anyone, signed in or not, sees offers that are enabled and currently valid.
create policy offers_select on public.offers for select to anon, authenticated
  using (enabled and valid_from <= (select pg_catalog.now()) and (valid_to is null or valid_to > (select pg_catalog.now())));

grant select on public.offers to anon, authenticated;
grant select, insert, update, delete on public.offers to service_role;

create table public.feature_flags (
  id uuid not null default gen_random_uuid(),
  key text not null,
  description text,
  enabled boolean not null default false,
  plans text[] not null default '{}',
  rollout_percentage integer not null default 100,
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint feature_flags_pkey primary key (id),
  constraint feature_flags_key_key unique (key),
  constraint feature_flags_key_format check (key ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
  constraint feature_flags_plans_known check (plans <@ array['free', 'pro', 'business', 'enterprise']),
  constraint feature_flags_rollout_range check (rollout_percentage between 0 and 100),
  constraint feature_flags_metadata_object check (jsonb_typeof(metadata) = 'object')
);
comment on table public.feature_flags is 'Feature flags (seed 002): on for everyone when enabled, optionally only for some plans, and optionally for a deterministic percentage of organizations. Managed by the server (service_role).';
comment on column public.feature_flags.plans is 'Plans that get the feature; empty means every plan.';
comment on column public.feature_flags.rollout_percentage is 'Share of organizations (0-100) that get the feature; an organization''s bucket is fixed per flag (private.rollout_bucket).';

create trigger feature_flags_set_updated_at before update on public.feature_flags
  for each row execute function private.set_updated_at();
create trigger feature_flags_audit after insert or update or delete on public.feature_flags
  for each row execute function private.audit_row_change();

alter table public.feature_flags enable row level security;

-- feature_flags_select: anyone, signed in or not, sees enabled flags.
create policy feature_flags_select on public.feature_flags for select to anon, authenticated
  using (enabled);

grant select on public.feature_flags to anon, authenticated;
grant select, insert, update, delete on public.feature_flags to service_role;

create table public.usage_metrics (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  metric_type text not null,
  metric_value numeric(14, 2) not null,
  metric_unit text,
  period_start timestamptz not null,
  period_end timestamptz not null,
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint usage_metrics_pkey primary key (id),
  constraint usage_metrics_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint usage_metrics_unique_period unique (organization_id, metric_type, period_start, period_end),
  constraint usage_metrics_metric_type_format check (metric_type ~ '^[a-z][a-z0-9_.]{0,62}$'),
  constraint usage_metrics_value_not_negative check (metric_value >= 0),
  constraint usage_metrics_period_ordered check (period_end > period_start),
  constraint usage_metrics_periods_disjoint exclude using gist (
    organization_id with =, metric_type with =, tstzrange(period_start, period_end) with &&),
  constraint usage_metrics_metadata_object check (jsonb_typeof(metadata) = 'object')
);
comment on table public.usage_metrics is 'Metered usage per organization and period (seed 003), written by the server (service_role). Not audited row by row: it is itself a record of counts.';

create index usage_metrics_period_idx on public.usage_metrics (organization_id, period_start desc);

create trigger usage_metrics_set_updated_at before update on public.usage_metrics
  for each row execute function private.set_updated_at();

alter table public.usage_metrics enable row level security;

-- usage_metrics_select: members holding billing.read or analytics.read see their organization's usage.
create policy usage_metrics_select on public.usage_metrics for select to authenticated
  using (organization_id in (select private.organizations_with_permission('billing.read'))
         or organization_id in (select private.organizations_with_permission('analytics.read')));

grant select on public.usage_metrics to authenticated;
grant select, insert, update, delete on public.usage_metrics to service_role;

-- Entitlements. The plan is organizations.plan (kept equal to what Stripe subscriptions grant); a flag is on for
-- an organization when it is enabled, its plan is listed (or none are) and the organization's bucket is below the
-- rollout percentage. The bucket hashes flag key and organization id, so it is stable and independent per flag.
create function private.rollout_bucket(feature_key text, organization uuid) returns integer
language sql immutable parallel safe
set search_path = ''
as $$
  select (('x' || substr(md5(feature_key || ':' || organization::text), 1, 8))::bit(32)::bigint % 100)::integer
$$;
comment on function private.rollout_bucket(text, uuid) is 'Deterministic bucket 0-99 of an organization for a flag (md5 of key and id).';

create function private.flag_enabled_for(flag public.feature_flags, organization uuid, plan text) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select flag.enabled
     and (cardinality(flag.plans) = 0 or plan = any (flag.plans))
     and private.rollout_bucket(flag.key, organization) < flag.rollout_percentage
$$;
comment on function private.flag_enabled_for(public.feature_flags, uuid, text) is 'Whether a flag is on for an organization on a plan (global switch, plan list, rollout).';

create function public.organization_entitlements(organization_id uuid)
returns table (plan text, features text[])
language plpgsql stable
set search_path = ''
as $$
declare
  org_plan text;
begin
  select o.plan into org_plan from public.organizations o
  where o.id = organization_entitlements.organization_id and o.deleted_at is null;
  if org_plan is null then
    raise exception 'organization % not found', organization_id using errcode = 'P0002',
      hint = 'Entitlements are visible to the organization''s members only.';
  end if;
  return query
    select org_plan, coalesce(array_agg(f.key order by f.key) filter (where private.flag_enabled_for(f, organization_entitlements.organization_id, org_plan)), '{}')
    from public.feature_flags f;
end;
$$;
comment on function public.organization_entitlements(uuid) is 'The organization''s plan and the keys of the features it has. Members only (P0002 otherwise).';

create function public.has_feature(organization_id uuid, feature_key text) returns boolean
language sql stable
set search_path = ''
as $$
  select feature_key = any (e.features) from public.organization_entitlements(has_feature.organization_id) e
$$;
comment on function public.has_feature(uuid, text) is 'Whether the organization has the feature (see organization_entitlements). Members only.';

grant execute on function private.rollout_bucket(text, uuid), private.flag_enabled_for(public.feature_flags, uuid, text)
  to authenticated, service_role;
grant execute on function public.organization_entitlements(uuid), public.has_feature(uuid, text) to authenticated, service_role;

-- Seed 003 kept subscription_status, subscription_tier and stripe_customer_id on users. Here they are derived: one
-- row per organization (a user's own are on their personal organization), computed under the caller's RLS, so
-- members without billing.read see the plan but not the Stripe fields.
create view public.organization_billing with (security_invoker = true) as
select
  o.id as organization_id,
  o.is_personal,
  o.personal_user_id,
  o.plan as subscription_tier,
  s.status as subscription_status,
  c.stripe_customer_id,
  s.stripe_subscription_id,
  s.trial_end as trial_ends_at,
  s.current_period_end,
  s.cancel_at_period_end
from public.organizations o
left join public.billing_customers c on c.organization_id = o.id and c.deleted_at is null
left join lateral (
  select s.status, s.stripe_subscription_id, s.trial_end, s.current_period_end, s.cancel_at_period_end
  from public.subscriptions s
  where s.organization_id = o.id
  order by s.status in ('trialing', 'active', 'past_due') desc, s.stripe_created_at desc nulls last, s.id
  limit 1
) s on true;
comment on view public.organization_billing is 'Per organization: plan (seed 003 subscription_tier), status of the current subscription (subscription_status) and stripe_customer_id. Invoker rights: Stripe fields need billing.read.';

grant select on public.organization_billing to authenticated, service_role;


-- =====================================================================================================================
-- source: supabase/schemas/23-billing-stripe-events.sql
-- =====================================================================================================================
-- Billing: the entry points of the Stripe sync: private.handle_stripe_event(), private.replay_stripe_event() and
-- the operators' view of events that fail (public.billing_sync_problems); which failures are permanent.

-- Whether a failure will fail the same way on every retry. Transient: a lock wait that timed out (55P03), a
-- serialization failure or deadlock (class 40), a lost connection (class 08), insufficient resources (class 53),
-- a cancel or shutdown (class 57) and system errors (class 58): a retry can succeed, so Stripe keeps retrying.
-- Everything else is permanent: data errors (class 22, including the handler's own 22023 for shapes it cannot use),
-- integrity violations (class 23), and any other error, which only a change of code or data can cure; those end
-- as a problem after a bounded number of attempts instead of failing for Stripe's three days of retries.
create function private.stripe_failure_is_permanent(sqlstate text) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select not (sqlstate = '55P03' or left(sqlstate, 2) in ('08', '40', '53', '57', '58'))
$$;
comment on function private.stripe_failure_is_permanent(text) is 'true for an SQLSTATE a retry cannot cure (classes 22, 23 and anything not transient); false for 55P03 and classes 08, 40, 53, 57, 58.';

create function private.stripe_max_attempts() returns integer
language sql immutable parallel safe
set search_path = ''
as $$
  select 5
$$;
comment on function private.stripe_max_attempts() is 'Attempts after which an event that keeps failing permanently is kept as a problem and answered 200.';

-- Which apply function an event type goes to; a type the mirror does not use is ignored.
create function private.apply_stripe_event(event_type text, object jsonb, event_created timestamptz) returns text
language plpgsql
set search_path = ''
as $$
begin
  return case
    when event_type = 'checkout.session.completed' then private.apply_stripe_checkout_session(object)
    when event_type in ('customer.created', 'customer.updated', 'customer.deleted')
      then private.apply_stripe_customer(object, event_created, event_type)
    when event_type in ('customer.subscription.created', 'customer.subscription.updated',
                        'customer.subscription.deleted', 'customer.subscription.paused',
                        'customer.subscription.resumed', 'customer.subscription.trial_will_end',
                        'customer.subscription.pending_update_applied', 'customer.subscription.pending_update_expired')
      then private.apply_stripe_subscription(object, event_created, event_type)
    when event_type in ('invoice.created', 'invoice.finalized', 'invoice.paid', 'invoice.payment_succeeded',
                        'invoice.payment_failed', 'invoice.payment_action_required', 'invoice.voided',
                        'invoice.marked_uncollectible', 'invoice.updated', 'invoice.sent', 'invoice.overdue')
      then private.apply_stripe_invoice(object, event_created, event_type)
    when event_type in ('product.created', 'product.updated', 'product.deleted')
      then private.apply_stripe_product(object, event_created, event_type)
    when event_type in ('price.created', 'price.updated', 'price.deleted')
      then private.apply_stripe_price(object, event_created, event_type)
    -- Legacy plans are prices with the same ids (plan.deleted deletes the price).
    when event_type in ('plan.created', 'plan.updated', 'plan.deleted')
      then private.apply_stripe_price(private.stripe_plan_as_price(object), event_created,
                                      'price.' || pg_catalog.split_part(event_type, '.', 2))
    else 'ignored'
  end;
end;
$$;
comment on function private.apply_stripe_event(text, jsonb, timestamptz) is 'Applies one Stripe object by event type: applied, stale or ignored (type not used); raises on what cannot be applied.';

-- Applies a locked ledger row's event in a subtransaction and records the attempt: on failure its partial writes
-- are rolled back and the ledger keeps the payload, the error and its SQLSTATE; a permanent failure at the last
-- allowed attempt (or one that is already a problem) becomes a problem. Shared by delivery and replay.
create function private.attempt_stripe_event(event jsonb, previous_outcome text, replay boolean) returns private.stripe_events
language plpgsql
set search_path = ''
as $$
declare
  event_id text := event ->> 'id';
  result_outcome text;
  failure text;
  failure_state text;
  recorded private.stripe_events;
begin
  begin
    result_outcome := private.apply_stripe_event(event ->> 'type', event -> 'data' -> 'object',
                                                 private.stripe_time(event -> 'created'));
  exception when others then
    result_outcome := 'failed';
    failure_state := sqlstate;
    failure := left(sqlstate || ': ' || sqlerrm, 1000);
  end;

  update private.stripe_events e set
    outcome = case
      when result_outcome <> 'failed' then result_outcome
      when previous_outcome = 'problem' then 'problem'
      when private.stripe_failure_is_permanent(failure_state) and e.attempts + 1 >= private.stripe_max_attempts()
        then 'problem'
      else 'failed'
    end,
    error = failure,
    sqlstate = failure_state,
    attempts = e.attempts + 1,
    processed_at = pg_catalog.now(),
    payload = case when result_outcome = 'failed' then event end,
    replayed_at = case when replay and result_outcome <> 'failed' then pg_catalog.now() else e.replayed_at end
  where e.id = event_id
  returning e.* into recorded;
  return recorded;
end;
$$;
comment on function private.attempt_stripe_event(jsonb, text, boolean) is 'One attempt at a ledger row''s event: applies it or records the failure (failed, or problem once permanent at the last attempt).';

-- The one entry point of the stripe-webhook function, called with the verified event in its own transaction.
-- Exactly once: the ledger row is inserted (or found) and locked first, so concurrent deliveries of one event
-- queue here and all but the first find it processed. An event kept as a problem is attempted again when Stripe
-- delivers it again (a resend from the Dashboard), and answered 200 whatever happens.
create function private.handle_stripe_event(event jsonb) returns jsonb
language plpgsql
set search_path = ''
-- A wait for a lock ends as an error the handler records (failed, transient) rather than running into the caller's
-- statement timeout, which would roll the ledger row back with everything else.
set lock_timeout = '10s'
as $$
declare
  event_id text := event ->> 'id';
  event_type text := event ->> 'type';
  event_created timestamptz := private.stripe_time(event -> 'created');
  object jsonb := event -> 'data' -> 'object';
  ledger private.stripe_events;
begin
  if event_id is null or event_type is null or event_created is null or jsonb_typeof(object) is distinct from 'object' then
    raise exception 'not a Stripe event: id, type, created and data.object are required'
      using errcode = '22023', hint = 'Pass the verified event JSON exactly as Stripe sent it.';
  end if;

  insert into private.stripe_events (id, type, api_version, created, livemode, object_type, object_id)
  values (event_id, event_type, event ->> 'api_version', event_created,
          case when jsonb_typeof(event -> 'livemode') = 'boolean' then (event ->> 'livemode')::boolean else false end,
          object ->> 'object', object ->> 'id')
  on conflict on constraint stripe_events_pkey do nothing;
  select e.* into ledger from private.stripe_events e where e.id = event_id for update;
  if ledger.outcome in ('applied', 'ignored', 'stale') then
    return jsonb_build_object('event_id', event_id, 'type', event_type, 'outcome', ledger.outcome,
                              'duplicate', true, 'attempts', ledger.attempts);
  end if;

  ledger := private.attempt_stripe_event(event, ledger.outcome, false);
  return jsonb_build_object('event_id', event_id, 'type', event_type, 'outcome', ledger.outcome, 'duplicate', false,
                            'attempts', ledger.attempts, 'error', ledger.error, 'sqlstate', ledger.sqlstate);
end;
$$;
comment on function private.handle_stripe_event(jsonb) is 'Applies one verified Stripe event exactly once: {event_id, type, outcome, duplicate, attempts, error, sqlstate}. outcome failed means answer 500 (Stripe retries); problem means answer 200 (kept for replay).';

-- Applies a kept event again once its cause is fixed (a missing parent delivered, a code fix deployed). The event
-- is applied by the same rules as a delivery, so a replay that comes after newer events is stale, not a rollback.
create function private.replay_stripe_event(event_id text) returns jsonb
language plpgsql
security definer
set search_path = ''
set lock_timeout = '10s'
as $$
declare
  ledger private.stripe_events;
begin
  select e.* into ledger from private.stripe_events e where e.id = replay_stripe_event.event_id for update;
  if not found then
    raise exception 'no Stripe event % in the ledger', event_id using errcode = 'P0002',
      hint = 'The id is the event''s evt_... id; retention removes events after 90 days.';
  end if;
  if ledger.outcome not in ('failed', 'problem') or ledger.payload is null then
    raise exception 'Stripe event % is not kept for replay (outcome %)', event_id, coalesce(ledger.outcome, 'none')
      using errcode = '55000', hint = 'Only failed events and problems (public.billing_sync_problems) can be replayed.';
  end if;

  ledger := private.attempt_stripe_event(ledger.payload, ledger.outcome, true);
  return jsonb_build_object('event_id', ledger.id, 'type', ledger.type, 'outcome', ledger.outcome, 'replayed', true,
                            'attempts', ledger.attempts, 'error', ledger.error, 'sqlstate', ledger.sqlstate);
end;
$$;
comment on function private.replay_stripe_event(text) is 'Operators: applies a failed or problem event again from its kept payload: {event_id, type, outcome, replayed, attempts, error, sqlstate}; a success clears the payload.';

grant execute on function private.replay_stripe_event(text) to service_role;

-- What operators look at: every event that is failing. kept: a permanent failure answered 200, which only a
-- replay (private.replay_stripe_event) applies; retrying: answered 500, Stripe delivers it again; stalled: answered
-- 500, but Stripe's retries (three days in live mode) are over, so it too needs a replay.
create view public.billing_sync_problems with (security_invoker = true) as
select
  e.id as event_id,
  e.type,
  e.object_type,
  e.object_id,
  e.api_version,
  e.livemode,
  e.created,
  e.received_at,
  e.processed_at as last_attempt_at,
  e.attempts,
  case when e.outcome = 'problem' then 'kept'
       when e.received_at > pg_catalog.now() - interval '3 days' then 'retrying'
       else 'stalled' end as state,
  private.stripe_failure_is_permanent(e.sqlstate) as permanent,
  e.sqlstate,
  e.error,
  e.payload
from private.stripe_events e
where e.outcome in ('failed', 'problem');
comment on view public.billing_sync_problems is 'Operators (service role): Stripe events that fail. state kept: given up after 5 permanent failures (answered 200), replay with private.replay_stripe_event(event_id); retrying: Stripe retries it; stalled: Stripe''s 3 days of retries are over, replay it.';

grant execute on function private.stripe_failure_is_permanent(text) to service_role;
grant select on public.billing_sync_problems to service_role;


-- =====================================================================================================================
-- source: supabase/schemas/30-privacy-redaction.sql
-- =====================================================================================================================
-- Privacy: redaction (redact_telemetry_metadata, redact_text) and metadata encryption.
-- Pure functions that strip secrets and personal data before anything is stored; the audit metadata redactor.

-- Pure functions that strip secrets and personal data from telemetry metadata before it is stored, and the pgcrypto
-- wrappers for metadata that must be kept encrypted. Used by the triggers of the privacy and file-event tables.

-- The redactor works on the JSON text once: JSON escapes are folded into private-use characters (so `"` only ever
-- delimits strings and no pattern can straddle an escape), one digit-shape pass and a row of strpos() calls decide
-- whether anything can match at all (clean metadata leaves there), then each class's passes run behind their own
-- cheap prefilters, and the text is cast back only when something changed. Card and IBAN candidates are confirmed by
-- issuer range and Luhn, country length and mod 97; bare national phone numbers need a word or key that says phone.
-- private.redact_text() runs the same engine on one text with a choice of classes. Sensitive keys whose value is an
-- object or array take the slow path below, and so does metadata that already holds one of the private-use marker
-- characters (U+E000..U+E008, U+E100..U+E11F), which the text path cannot fold and unfold faithfully.
--
-- Sensitive key names are matched on their ending, case-insensitively, with "-", "_" or " " allowed between the
-- words ("API Key", "x-api-key", "privateKeyPem", "card number", "Set-Cookie", "refresh_token"). "pass" alone counts
-- only as a whole word ("pass", "db_pass"), so that "compass" and "passenger" keep their values; "token_count",
-- "tokens_used", "session_count" or "primary_key_column" do not end in a sensitive word and keep theirs too.
create function private.is_sensitive_key(key text) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select lower(key) ~ '(?:pass[-_ ]?(?:words?|wd|phrase|word[-_ ]?hash)|pwd|secret|token|(?:api|access|private|secret|signing|encryption|session)[-_ ]?key|private[-_ ]?key[-_ ]?pem|auth|authorization|credentials?|cookies?|session(?:[-_ ]?id)?|ssn|social[-_ ]?security(?:[-_ ]?number)?|card[-_ ]?(?:number|num|no)|credit[-_ ]?card|cc[-_ ]?num(?:ber)?|cvv2?|cvc2?|iban|(?:^|[-_ .])pass)$'
$$;
comment on function private.is_sensitive_key(text) is 'Whether a metadata key names a secret (password, token, API key, card number, ...), whatever its case and word separators.';

create function private.redact_sensitive_containers(value jsonb) returns jsonb
language sql immutable parallel safe
set search_path = ''
as $$
  select case jsonb_typeof(value)
    when 'object' then coalesce((
      select jsonb_object_agg(e.key,
               case when jsonb_typeof(e.value) in ('object', 'array') and private.is_sensitive_key(e.key)
                    then '"[REDACTED]"'::jsonb
                    else private.redact_sensitive_containers(e.value) end)
      from jsonb_each(value) e), '{}'::jsonb)
    when 'array' then coalesce((
      select jsonb_agg(private.redact_sensitive_containers(a.value) order by a.n)
      from jsonb_array_elements(value) with ordinality a(value, n)), '[]'::jsonb)
    else value
  end
$$;
comment on function private.redact_sensitive_containers(jsonb) is 'Replaces objects and arrays held under sensitive keys (password, token, auth, ...) with "[REDACTED]", recursively.';

create function private.is_card_number(candidate text) returns boolean
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  digits text := translate(candidate, ' .-', '');
  n integer := length(digits);
  total integer := 0;
  d integer;
begin
  -- Issuer ranges (IIN) and the lengths each issues: Visa; Mastercard 51-55 and 2221-2720; American Express; JCB
  -- 15-digit 1800/2131 and 3528-3589; Diners; Discover; UnionPay; Mir; Maestro (50, 56-58, 6) from 12 digits up, but not
  -- at 13 or 14 digits, the lengths of EAN-13 and GTIN-14 barcodes.
  if n < 12 or n > 19 or not (
       (left(digits, 1) = '4' and n in (13, 16, 19))
    or (n = 16 and digits ~ '^(?:5[1-5]|222[1-9]|22[3-9][0-9]|2[3-6][0-9]{2}|27[01][0-9]|2720)')
    or (n = 15 and digits ~ '^(?:3[47]|1800|2131)')
    or (n >= 14 and digits ~ '^(?:30[0-5]|3095|3[689])')
    or (n >= 16 and digits ~ '^(?:6011|64[4-9]|65|62|35(?:2[89]|[3-8][0-9])|220[0-4])')
    or (n not in (13, 14) and digits ~ '^(?:50|5[6-8]|6)')) then
    return false;
  end if;
  if translate(digits, '0123456789', '') <> '' then
    return false;
  end if;
  -- Luhn, two digits a step from the right: the last as it is, the one before doubled (its digit sum read from
  -- '0246813579').
  d := n;
  while d > 0 loop
    total := total + ascii(substr(digits, d, 1)) - 48
           + case when d > 1 then ascii(substr('0246813579', ascii(substr(digits, d - 1, 1)) - 47, 1)) - 48 else 0 end;
    d := d - 2;
  end loop;
  return total % 10 = 0;
end;
$$;
comment on function private.is_card_number(text) is 'True for 12-19 digits (spaces, dots and dashes ignored) whose prefix and length belong to a card issuer and whose Luhn checksum is valid.';

create function private.is_iban(candidate text) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  with c as (select upper(replace(candidate, ' ', '')) as s)
  -- The registry's length for each country code (two letters and the length, four characters an entry).
  select length(c.s) between 15 and 34
     and strpos('AD24AE23AL28AT20AZ28BA20BE16BG22BH22BI27BR29BY28CH21CR22CY28CZ24DE22DJ27DK18DO28EE20EG29ES24FI18FK18FO18FR27GB22GE22GI23GL18GR27GT28HR21HU28IE22IL23IQ23IS26IT27JO30KW30KZ20LB28LC32LI21LT20LU20LV21LY25MC27MD24ME22MK19MN20MR27MT31MU30NI28NL18NO15OM23PK24PL28PS29PT25QA29RO24RS22RU33SA24SC31SD18SE24SI19SK24SM27SO23ST25SV28TL23TN24TR26UA29VA22VG24XK20YE30',
                left(c.s, 2) || length(c.s)::text) > 0
     and c.s ~ '^[A-Z]{2}[0-9]{2}[0-9A-Z]+$'
     and (select string_agg(case when x.ch between 'A' and 'Z' then (ascii(x.ch) - 55)::text else x.ch end, '' order by x.n)
          from regexp_split_to_table(substr(c.s, 5) || left(c.s, 4), '') with ordinality x(ch, n))::numeric % 97 = 1
  from c
$$;
comment on function private.is_iban(text) is 'True when the candidate (spaces and letter case ignored) has its country''s IBAN length and passes the mod-97 check.';

-- The card in a run of digits: the run itself, or the run without a dash-joined last group, so that a card glued to an
-- order suffix ("#<card>-001") is still found. A run with separators must be grouped as cards are printed (fours;
-- 4-6-4 or 4-6-5), which amounts in thousands never are.
create function private.card_in_run(run text) returns text
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  span text;
begin
  if private.is_card_number(run) and (strpos(run, ' ') + strpos(run, '.') + strpos(run, '-') = 0
                                      or run ~ '^[0-9]{4}(?:(?:[ .-][0-9]{4}){1,3}(?:[ .-][0-9]{1,5})?|[ .-][0-9]{6}[ .-][0-9]{4,5})$') then
    return run;
  end if;
  -- Without its last group when a dash joins that on: an order or line suffix ("<card>-001").
  span := substring(run from '^(.*[0-9])-[0-9]+$');
  if span is not null and length(span) >= 12 and private.is_card_number(span)
     and (strpos(span, ' ') + strpos(span, '.') + strpos(span, '-') = 0
          or span ~ '^[0-9]{4}(?:(?:[ .-][0-9]{4}){1,3}(?:[ .-][0-9]{1,5})?|[ .-][0-9]{6}[ .-][0-9]{4,5})$') then
    return span;
  end if;
  return null;
end;
$$;
comment on function private.card_in_run(text) is 'The card number in a run of digits and separators (the whole run, or the run without a dash-joined suffix), or null.';

-- The engine behind redact_telemetry_metadata() and redact_text(): classes null redacts every class, otherwise only
-- those named (see redact_text). It works on the JSON text once, with the escapes folded as described at the top.
create function private.redact_jsonb(raw_metadata jsonb, classes text[]) returns jsonb
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  every boolean := classes is null;
  original text;
  t text;
  lt text;
  escaped boolean;
  candidate text;
  hits text;
  nt text;
  keys boolean;
  digits boolean;
  words boolean;
  named boolean := false;
  twilio boolean;
  contained jsonb;
  m text[];
  value_re constant text := '(?:"[^"]*"|-?[0-9][0-9.eE+-]*|true|false)';
  -- Letters of the scripts an internationalised address is written in (Latin, Greek, Cyrillic, Hebrew, Arabic, Indic,
  -- Thai, Japanese, Chinese, Korean), by code point: the database's locale may not classify them.
  u constant text := '\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F\u0370-\u03FF\u0400-\u052F\u0590-\u06FF\u0900-\u0DFF\u0E00-\u0E7F\u3040-\u30FF\u3400-\u4DBF\u4E00-\u9FFF\uAC00-\uD7AF';
begin
  if raw_metadata is null then
    return null;
  end if;
  original := raw_metadata::text;
  t := original;

  escaped := strpos(t, '\') > 0;
  if escaped then
    -- Text that already holds a marker character cannot be folded and unfolded faithfully: walk it instead.
    if t ~ '[\uE000-\uE008\uE100-\uE11F]' then
      return private.redact_metadata_walk(raw_metadata, classes);
    end if;
    t := replace(t, '\\', U&'\E000');
    t := replace(replace(replace(replace(replace(replace(t,
           '\"', U&'\E001'), '\n', U&'\E002'), '\r', U&'\E003'), '\t', U&'\E004'), '\b', U&'\E005'), '\f', U&'\E006');
    -- jsonb writes the other control characters as \u00XX (and nothing else as \u). Each whole escape becomes one
    -- marker character U+E1XX, so that no pattern can take its hex digits for part of a number, e-mail or name.
    if strpos(t, '\u') > 0 then
      for candidate in select distinct x[1] from regexp_matches(t, '\\u(00[01][0-9a-fA-F])', 'g') x loop
        t := replace(t, '\u' || candidate, pg_catalog.chr(57600 + ('x' || candidate)::bit(16)::integer));
      end loop;
    end if;
  end if;

  -- Whether a sensitive key name may occur, by the words such names end in (lower case; see private.is_sensitive_key):
  -- strpos() calls joined by "or", which stops at the first that finds one. Lower-casing in the "C" collation touches
  -- ASCII only, which is all key names need, and costs a quarter of a locale-aware lower().
  lt := lower(t collate "C");
  keys := strpos(lt, 'word": ') > 0 or strpos(lt, 'words": ') > 0 or strpos(lt, 'wd": ') > 0
    or strpos(lt, 'phrase": ') > 0 or strpos(lt, 'hash": ') > 0 or strpos(lt, 'pass": ') > 0
    or strpos(lt, 'secret": ') > 0 or strpos(lt, 'token": ') > 0 or strpos(lt, 'key": ') > 0 or strpos(lt, 'pem": ') > 0
    or strpos(lt, 'auth') > 0 or strpos(lt, 'credential') > 0 or strpos(lt, 'cookie') > 0 or strpos(lt, 'session') > 0
    or strpos(lt, 'ssn": ') > 0 or strpos(lt, 'security') > 0 or strpos(lt, 'num') > 0 or strpos(lt, 'no": ') > 0
    or strpos(lt, 'card') > 0 or strpos(lt, 'cvv') > 0 or strpos(lt, 'cvc') > 0 or strpos(lt, 'iban": ') > 0;
  -- "=" or ": " inside a string (outside strings ": " only follows keys) opens the secrets that follow a name:
  -- headers, cookies, session ids, query strings, "key: ..." in prose.
  words := strpos(t, '=') > 0 or strpos(lt, 'key:') > 0 or strpos(lt, 'token:') > 0 or strpos(replace(lt, '": ', ''), ': ') > 0;
  -- Clean metadata, the common case, leaves here: every step below needs a key name, a word, one of the literal
  -- markers, a run of 20 letters and digits (the vendor key families whose prefixes are not listed here) or a digit
  -- shape. The literal markers are strpos() calls (an alternation of them all costs more: its automaton grows with
  -- every literal, and joining the run or the digit shapes to another pattern costs more than both alone).
  --
  -- The digit shapes are one pass that every IBAN, card, SSN, IP address and phone number without "+" must match
  -- (digit groups split by a space, parenthesis or slash; a bounded 2-4 digit group before a dash; seven digits in a
  -- row; dotted groups; hex between colons; an IBAN's leading digits), while ISO timestamps, versions and counts do
  -- not. Replacements only put bracketed placeholders in, so it holds for the text as it is when each pass below runs.
  -- A UUID can look like one (seven digits in a row, an IBAN's start): when nothing else calls for a pass, the shapes
  -- are looked for once more with UUIDs and ISO 8601 timestamps taken out, which no class below redacts.
  -- The shapes are five patterns joined by "or" rather than one alternation: it stops at the first that matches (PII
  -- usually matches the first, digit groups split by a space), and apart they cost less than together even when all
  -- of them run.
  if not (keys or words or strpos(t, '@') > 0 or strpos(t, '+') > 0 or strpos(t, '::') > 0
          or strpos(t, 'Users') > 0 or strpos(t, '/home/') > 0 or strpos(t, 'eyJ') > 0 or strpos(lt, 'bearer') > 0
          or strpos(t, '_live_') > 0 or strpos(t, '_test_') > 0 or strpos(t, 'whsec_') > 0 or strpos(t, 'sk-') > 0
          or strpos(t, 'AIza') > 0 or strpos(t, 'SG.') > 0 or strpos(t, 'ya29.') > 0 or strpos(t, 'glpat-') > 0
          or strpos(t, 'xox') > 0 or strpos(t, 'pypi-') > 0 or (strpos(t, '~') > 0 and strpos(t, 'Q~') > 0)
          or strpos(t, 'PRIVATE KEY') > 0 or t ~ '[0-9A-Za-z]{20}') then
    if not (t ~ '[0-9][ )/][ (]?[0-9]' or t ~ '(?<![0-9A-Za-z-])(?:[0-9]{2,3}-[0-9]|[0-9]{4,5}-[0-9]{3}|[0-9]{7})'
       or t ~ '[A-Z]{2}[0-9]{2}[0-9A-Z]{4}|[a-z]{2}[0-9]{2}[0-9a-z]{4}[0-9]{4}'
       or t ~ '[0-9]\.[0-9]{1,4}\.[0-9]{1,4}\.[0-9]|[0-9]{4}\.[0-9]{4}|[0-9]{2}\.[0-9]{2,4}\.[0-9]{2}'
       or t ~ ':[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:') then
      return raw_metadata;
    end if;
    candidate := regexp_replace(t, '[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?Z?', '_', 'g');
    if not (candidate ~ '[0-9][ )/][ (]?[0-9]' or candidate ~ '(?<![0-9A-Za-z-])(?:[0-9]{2,3}-[0-9]|[0-9]{4,5}-[0-9]{3}|[0-9]{7})'
            or candidate ~ '[A-Z]{2}[0-9]{2}[0-9A-Z]{4}|[a-z]{2}[0-9]{2}[0-9a-z]{4}[0-9]{4}'
            or candidate ~ '[0-9]\.[0-9]{1,4}\.[0-9]{1,4}\.[0-9]|[0-9]{4}\.[0-9]{4}|[0-9]{2}\.[0-9]{2,4}\.[0-9]{2}'
            or candidate ~ ':[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:') then
      return raw_metadata;
    end if;
    digits := true;
  else
    digits := t ~ '[0-9][ )/][ (]?[0-9]' or t ~ '(?<![0-9A-Za-z-])(?:[0-9]{2,3}-[0-9]|[0-9]{4,5}-[0-9]{3}|[0-9]{7})'
      or t ~ '[A-Z]{2}[0-9]{2}[0-9A-Z]{4}|[a-z]{2}[0-9]{2}[0-9a-z]{4}[0-9]{4}'
      or t ~ '[0-9]\.[0-9]{1,4}\.[0-9]{1,4}\.[0-9]|[0-9]{4}\.[0-9]{4}|[0-9]{2}\.[0-9]{2,4}\.[0-9]{2}'
      or t ~ ':[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:';
  end if;
  if not escaped and t ~ '[\uE000-\uE008]' then
    return private.redact_metadata_walk(raw_metadata, classes);
  end if;

  if every or 'secret' = any(classes) then
    -- Twilio SIDs ("AC" or "SK" and 32 hex digits), looked for in the text before any pass: "[REDACTED]" holds "AC".
    twilio := strpos(t, 'AC') + strpos(t, 'SK') > 0;
    -- Sensitive keys: the whole value goes.
    if keys then
      if (strpos(t, '": {') > 0 or strpos(t, '": [') > 0)
         and lt ~ '(?:pass[-_ ]?(?:words?|wd|phrase|word[-_ ]?hash)|pwd|secret|token|key|pem|auth|authorization|credentials?|cookies?|session(?:[-_ ]?id)?|ssn|security(?:[-_ ]?number)?|card[-_ ]?(?:number|num|no)|credit[-_ ]?card|cc[-_ ]?num(?:ber)?|cvv2?|cvc2?|iban|pass)": [[{]' then
        -- Recurse only on progress: a key such as "monkey" holding an object passes the cheap test but is not secret.
        contained := private.redact_sensitive_containers(raw_metadata);
        if contained is distinct from raw_metadata then
          return private.redact_jsonb(contained, classes);
        end if;
      end if;
      -- Only the endings that occur go into the pattern: a short alternation is far cheaper to run than all of them.
      -- They are looked for in the lower-case text without separators (nt, so "API Key", "api-key" and "apikey" are
      -- one ending), each only when its family (the ending in lt, as above) occurs. array_to_string skips the nulls
      -- (nullif turns an empty group into one); one expression, so no query is planned or run per call.
      nt := replace(replace(replace(lt, '_', ''), '-', ''), ' ', '');
      hits := array_to_string(array[
        case when (strpos(lt, 'word": ') > 0 or strpos(lt, 'words": ') > 0)
              and strpos(nt, 'password":') + strpos(nt, 'passwords":') > 0 then 'pass[-_ ]?words?' end,
        case when strpos(lt, 'wd": ') > 0 and strpos(nt, 'passwd":') > 0 then 'pass[-_ ]?wd' end,
        case when strpos(lt, 'pwd": ') > 0 then 'pwd' end,
        case when strpos(lt, 'phrase": ') > 0 and strpos(nt, 'passphrase":') > 0 then 'pass[-_ ]?phrase' end,
        case when strpos(lt, 'hash": ') > 0 and strpos(nt, 'passwordhash":') > 0 then 'pass[-_ ]?word[-_ ]?hash' end,
        case when strpos(lt, 'pass": ') > 0 and strpos(lt, '"pass": ') + strpos(lt, '_pass": ') + strpos(lt, '-pass": ')
                                                + strpos(lt, ' pass": ') + strpos(lt, '.pass": ') > 0 then '["_ .-]pass' end,
        case when strpos(lt, 'secret": ') > 0 then 'secret' end,
        case when strpos(lt, 'token": ') > 0 then 'token' end,
        case when strpos(lt, 'key": ') > 0 then nullif(array_to_string(array[
          case when strpos(nt, 'apikey":') > 0 then 'api[-_ ]?key' end,
          case when strpos(nt, 'accesskey":') > 0 then 'access[-_ ]?key' end,
          case when strpos(nt, 'privatekey":') > 0 then 'private[-_ ]?key' end,
          case when strpos(nt, 'secretkey":') > 0 then 'secret[-_ ]?key' end,
          case when strpos(nt, 'signingkey":') > 0 then 'signing[-_ ]?key' end,
          case when strpos(nt, 'encryptionkey":') > 0 then 'encryption[-_ ]?key' end,
          case when strpos(nt, 'sessionkey":') > 0 then 'session[-_ ]?key' end], '|'), '') end,
        case when strpos(lt, 'pem": ') > 0 and strpos(nt, 'privatekeypem":') > 0 then 'private[-_ ]?key[-_ ]?pem' end,
        case when strpos(lt, 'auth": ') > 0 then 'auth' end,
        case when strpos(lt, 'authorization": ') > 0 then 'authorization' end,
        case when strpos(lt, 'credential": ') + strpos(lt, 'credentials": ') > 0 then 'credentials?' end,
        case when strpos(lt, 'cookie": ') + strpos(lt, 'cookies": ') > 0 then 'cookies?' end,
        case when strpos(lt, 'session": ') > 0 then 'session' end,
        case when strpos(lt, 'session') > 0 and strpos(nt, 'sessionid":') > 0 then 'session[-_ ]?id' end,
        case when strpos(lt, 'ssn": ') > 0 then 'ssn' end,
        case when strpos(lt, 'security') > 0 then nullif(array_to_string(array[
          case when strpos(nt, 'socialsecurity":') > 0 then 'social[-_ ]?security' end,
          case when strpos(nt, 'socialsecuritynumber":') > 0 then 'social[-_ ]?security[-_ ]?number' end], '|'), '') end,
        case when strpos(lt, 'num') + strpos(lt, 'no": ') > 0 then nullif(array_to_string(array[
          case when strpos(nt, 'cardnumber":') + strpos(nt, 'cardnum":') + strpos(nt, 'cardno":') > 0
               then 'card[-_ ]?(?:number|num|no)' end,
          case when strpos(nt, 'ccnumber":') + strpos(nt, 'ccnum":') > 0 then 'cc[-_ ]?num(?:ber)?' end], '|'), '') end,
        case when strpos(lt, 'card') > 0 and strpos(nt, 'creditcard":') > 0 then 'credit[-_ ]?card' end,
        case when strpos(lt, 'cvv') > 0 and strpos(lt, 'cvv": ') + strpos(lt, 'cvv2": ') > 0 then 'cvv2?' end,
        case when strpos(lt, 'cvc') > 0 and strpos(lt, 'cvc": ') + strpos(lt, 'cvc2": ') > 0 then 'cvc2?' end,
        case when strpos(lt, 'iban": ') > 0 then 'iban' end], '|');
      if hits <> '' then
        t := regexp_replace(t, '((?:' || hits || ')": )' || value_re, '\1"[REDACTED]"', 'gi');
      end if;
    end if;

    -- Private-key PEM blocks, whole (or up to the end of the string when the footer is cut off).
    if strpos(t, 'PRIVATE KEY') > 0 then
      t := regexp_replace(t, '-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:[^"-]|-(?!----END))*(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)?',
                          '[PRIVATE_KEY]', 'g');
    end if;
  end if;

  if (every or 'jwt' = any(classes)) and strpos(t, 'eyJ') > 0 then
    t := regexp_replace(t, 'eyJ[0-9A-Za-z_-]{5,}\.eyJ[0-9A-Za-z_-]{5,}\.[0-9A-Za-z_-]*', '[JWT]', 'g');
  end if;

  if every or 'secret' = any(classes) then
    -- Secrets that follow a name inside a string: Authorization headers, Cookie and Set-Cookie lines, session ids,
    -- credentials in query strings, and "name: value" or "NAME=value" for names that say secret.
    if (words or strpos(lt, 'authorization:') > 0) and strpos(lt, 'authorization') > 0 and lt ~ 'authorization *[:=]' then
      t := regexp_replace(t, '((?:proxy-)?authorization[ ]*[:=][ ]*(?:(?:basic|bearer|digest|token|negotiate|ntlm|apikey|bot|sso-key|aws4-hmac-sha256)[ ]+)?)(?!\[|(?:basic|bearer|digest|token|negotiate|ntlm|apikey|bot|sso-key|aws4-hmac-sha256)(?![0-9A-Za-z]))[^ "\uE000-\uE11F,;]{3,}',
                          '\1[TOKEN]', 'gi');
    end if;
    if strpos(lt, 'bearer') > 0 then
      t := regexp_replace(t, '([Bb][Ee][Aa][Rr][Ee][Rr])[ ]+(?=[A-Za-z._~+/=-]*[0-9])[0-9A-Za-z._~+/=-]{16,}', '\1 [TOKEN]', 'g');
    end if;
    if words and strpos(lt, 'cookie') > 0 and lt ~ 'cookie *:' then
      -- Every value on a Cookie or Set-Cookie line, but not the attributes of Set-Cookie.
      for m in select regexp_matches(t, '(?:set-)?cookie[ ]*:[ ]*([^"\uE000-\uE11F]+)', 'gi') loop
        t := replace(t, m[1], regexp_replace(m[1],
               '(^|;[ ]*)(?!(?:path|domain|expires|max-age|samesite|secure|httponly|priority|partitioned)(?:[=;]|$))([^=; ]+=)(?!\[)[^;]+',
               '\1\2[SECRET]', 'gi'));
      end loop;
    end if;
    if strpos(t, '=') > 0 then
      -- Session ids by the names frameworks give them (OWASP: JSESSIONID, PHPSESSID, ASP.NET_SessionId, CFID/CFTOKEN),
      -- also as a URL path parameter (";jsessionid="). A value holds a digit, so "session=expired" stays.
      if strpos(lt, 'sess') + strpos(lt, 'sid=') + strpos(lt, 'cfid=') + strpos(lt, 'cftoken=') > 0
         and lt ~ '(?:sess[a-z_.]*|sid|cfid|cftoken)=' then
        t := regexp_replace(t, '((?<![0-9A-Za-z_.-])(?:jsessionid|phpsessid|asp\.net_sessionid|aspsessionid[a-z]{8}|cfid|cftoken|sid|sessid|sessionid|session_id|session|sess|connect\.sid|laravel_session|ci_session|_session_id|rack\.session)=)(?!\[)(?=[^;&, "\uE000-\uE11F]*[0-9])[^;&, "\uE000-\uE11F]{4,}',
                            '\1[SECRET]', 'gi');
      end if;
      -- Credentials in query strings and fragments.
      if t ~ '[?&#;][A-Za-z_-]+=' then
        t := regexp_replace(t, '([?&#;](?:access_token|refresh_token|id_token|client_secret|auth_token|api_key|apikey|api-key|key|token|code|secret|password|passwd|pwd|sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|session_token|private_token)=)(?!\[)[^&#; "\uE000-\uE11F]{4,}',
                            '\1[SECRET]', 'gi');
      end if;
    end if;
    -- "name: value" and "NAME=value" (headers, prose, environment lines). Passwords take any value but a few words
    -- that describe one; tokens, keys and secrets take 8 or more characters holding a digit, so that "token: 1532"
    -- and "secret: none" stay.
    if words and strpos(lt, 'pass') + strpos(lt, 'pwd') + strpos(lt, 'key') + strpos(lt, 'token') + strpos(lt, 'secret') + strpos(lt, 'sig') > 0
       and lt ~ '(?:pass|pwd|passwd|password|passphrase|key|token|secret|sig|signature) *[:=]' then
      named := true;
    end if;
    if named and strpos(lt, 'pass') + strpos(lt, 'pwd') > 0 then
      t := regexp_replace(t, '((?<![0-9A-Za-z])(?:[a-z]+[-_]pass|password|passwd|pwd|passphrase)[ ]*[:=][ ]*)(?![\[/])(?!(?:reset|changed|updated|required|expired|incorrect|invalid|wrong|forgotten|policy|strength|hidden|protected|less)(?![0-9A-Za-z]))[^ "\uE000-\uE11F,;&]+',
                          '\1[SECRET]', 'gi');
    end if;
    if named and strpos(lt, 'key') + strpos(lt, 'token') + strpos(lt, 'secret') + strpos(lt, 'sig') > 0 then
      t := regexp_replace(t, '((?<![0-9A-Za-z])(?:x[-_])?(?:(?:auth|api|access|refresh|id|session|csrf|xsrf|vault|private|secret|client|security|app|master|admin|service|webhook|signing|encryption|account|shared[-_ ]?access|subscription|consumer|bot|deploy|personal[-_ ]?access|amz[-_]security|goog[-_]api|aws[-_]secret[-_]access|secret[-_]access|ocp-apim-subscription)[-_ ]?(?:token|key|secret|signature)|apikey|secret|token|sig|signature|accountkey|sharedaccesskey|sharedaccesssignature)[ ]*[:=][ ]*)(?!\[)(?=[^ "\uE000-\uE11F,;&]*[0-9])[A-Za-z0-9._~+/=-]{8,}',
                          '\1[SECRET]', 'gi');
    end if;
    -- "key: <secret>" in prose, unless the key is one that names no secret (cache, sort, primary, public, ...).
    if named and strpos(lt, 'key') > 0 then
      t := regexp_replace(t, '((?<![0-9A-Za-z_-])(?<!(?:cache|sort|primary|partition|idempotency|public|foreign|object|row|hash|lookup|dedup|s3|map|license|registry|translation|message|storage|bucket|index|dedupe)[-_ ])key[ ]*[:=][ ]*)(?!\[)(?=[^ "\uE000-\uE11F,;&]*[0-9])[A-Za-z0-9+/=_.~-]{16,}',
                          '\1[SECRET]', 'gi');
    end if;

    -- Vendor key families (after gitleaks' rules), each pass only when its prefix occurs.
    -- One expression first: most metadata holds none of the prefixes, and each IF costs a statement. Twilio's "AC" is
    -- looked for before the sensitive keys put in "[REDACTED]", which holds it too (above).
    if twilio or strpos(t, '_live_') + strpos(t, '_test_') + strpos(t, 'whsec_') + strpos(t, 'gh') + strpos(t, 'github_pat_')
       + strpos(t, 'gl') + strpos(t, 'xox') + strpos(t, 'xapp-') + strpos(t, 'hooks.slack.com/') + strpos(t, 'AKIA')
       + strpos(t, 'ASIA') + strpos(t, 'ABIA') + strpos(t, 'ACCA') + strpos(t, 'A3T') + strpos(t, 'AIza') + strpos(t, 'ya29.')
       + strpos(t, 'sk-') + strpos(t, 'SG.') + strpos(t, 'npm_') + strpos(t, 'pypi-') + strpos(t, '_v1_') + strpos(t, 'key-')
       > 0 or (strpos(t, '~') > 0 and strpos(t, 'Q~') > 0) then
      if strpos(t, '_live_') > 0 or strpos(t, '_test_') > 0 then
        t := regexp_replace(t, '[spr]k_(?:live|test)_[0-9A-Za-z]{10,}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'whsec_') > 0 then
        t := regexp_replace(t, 'whsec_[0-9A-Za-z]{16,}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'gh') + strpos(t, 'github_pat_') > 0 then
        t := regexp_replace(t, 'gh[pousr]_[0-9A-Za-z]{30,}|github_pat_[0-9A-Za-z_]{40,}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'gl') > 0 then
        t := regexp_replace(t, 'gl(?:pat|ptt|rt|dt|cbt|oas|soat|ft|imt|agent)-[0-9A-Za-z_-]{20,}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'xox') > 0 or strpos(t, 'xapp-') > 0 then
        t := regexp_replace(t, 'xox[abposre]-[0-9A-Za-z-]{10,}|xapp-[0-9A-Za-z-]{20,}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'hooks.slack.com/') > 0 then
        t := regexp_replace(t, '(hooks\.slack\.com/(?:services|workflows|triggers)/)[0-9A-Za-z/_+-]{20,}', '\1[API_KEY]', 'g');
      end if;
      if strpos(t, 'AKIA') + strpos(t, 'ASIA') + strpos(t, 'ABIA') + strpos(t, 'ACCA') + strpos(t, 'A3T') > 0 then
        t := regexp_replace(t, '(?:A[KS]IA|ABIA|ACCA|A3T[0-9A-Z])[0-9A-Z]{16}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'AIza') > 0 then
        t := regexp_replace(t, 'AIza[0-9A-Za-z_-]{35}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'ya29.') > 0 then
        t := regexp_replace(t, 'ya29\.[0-9A-Za-z_-]{20,}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'sk-') > 0 then
        t := regexp_replace(t, '(?<![0-9A-Za-z])sk-(?:proj-|ant-|svcacct-|admin-)?[0-9A-Za-z_-]{20,}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'SG.') > 0 then
        t := regexp_replace(t, 'SG\.[0-9A-Za-z_-]{16,32}\.[0-9A-Za-z_-]{16,64}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'npm_') > 0 then
        t := regexp_replace(t, 'npm_[0-9A-Za-z]{36}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'pypi-') > 0 then
        t := regexp_replace(t, 'pypi-Ag[0-9A-Za-z_-]{40,}', '[API_KEY]', 'g');
      end if;
      if strpos(t, '_v1_') > 0 then
        t := regexp_replace(t, 'do[opr]_v1_[0-9a-f]{64}', '[API_KEY]', 'g');
      end if;
      if strpos(t, 'key-') > 0 then
        -- Mailgun private and public keys.
        t := regexp_replace(t, '(?<![0-9A-Za-z])(?:pub)?key-[0-9a-f]{32}(?![0-9A-Za-z])', '[API_KEY]', 'g');
      end if;
      if strpos(t, '~') > 0 and strpos(t, 'Q~') > 0 then
        -- Azure AD client secrets.
        t := regexp_replace(t, '(?<![0-9A-Za-z_~.-])[0-9A-Za-z_~.]{3}[0-9]Q~[0-9A-Za-z_~.-]{31,34}(?![0-9A-Za-z_~.-])', '[API_KEY]', 'g');
      end if;
      if twilio then
        -- Twilio account SIDs and API key SIDs.
        t := regexp_replace(t, '(?<![0-9A-Za-z])(?:AC|SK)[0-9a-f]{32}(?![0-9A-Za-z])', '[API_KEY]', 'g');
      end if;
    end if;
  end if;

  -- Contact details and identifiers inside strings.
  if (every or 'email' = any(classes)) and strpos(t, '@') > 0 then
    t := regexp_replace(t, '[A-Za-z0-9._%+' || u || '-]+@(?![0-9]+x\.)[A-Za-z0-9' || u || '-]+(?:\.[A-Za-z0-9' || u || '-]+)*\.(?:[A-Za-z]{2,}|xn--[0-9A-Za-z-]+|[' || u || ']{2,})',
                        '[EMAIL]', 'g');
  end if;
  if digits and (every or 'iban' = any(classes)) and t ~ '(?<![0-9A-Za-z])[A-Za-z]{2}[0-9]{2} ?[0-9A-Za-z]{4}' then
    for candidate in
      select x[1] from regexp_matches(t, '(?:^|[^0-9A-Za-z])([A-Z]{2}[0-9]{2}(?: ?[0-9A-Z]{4}){2,7}(?: ?[0-9A-Z]{1,3})?|[a-z]{2}[0-9]{2}(?: ?[0-9a-z]{4}){2,7}(?: ?[0-9a-z]{1,3})?)(?![0-9A-Za-z])', 'g') x
    loop
      -- A lower-case candidate may have taken in the words after it: drop spaced groups from its end until it checks.
      while length(candidate) >= 15 loop
        if private.is_iban(candidate) then
          t := replace(t, candidate, '[IBAN]');
          exit;
        end if;
        candidate := substring(candidate from '^(.*) [0-9A-Za-z]+$');
      end loop;
    end loop;
  end if;
  if digits and (every or 'card' = any(classes)) and t ~ '(?<![0-9A-Za-z-])[0-9]{4}[ .-]?[0-9]{4}' then
    -- JSON numbers are not strings: mark them so that the card pattern skips them. Only a number that starts with 12
    -- digits can hold a candidate (a float has one dot, so it is never grouped as a card), and most metadata has none:
    -- the cheaper test first.
    if t ~ '[0-9]{12}' and t ~ '(?:": |\[|, )-?[0-9]{12}' then
      t := regexp_replace(t, '(": |\[|, )(-?[0-9][0-9.eE+-]*)(?=[],}])', '\1' || U&'\E008' || '\2', 'g');
    end if;
    for candidate in
      select distinct x[1] from regexp_matches(t, '(?<![0-9A-Za-z\uE008.,_-])[0-9]{4}(?:[ .-]?[0-9]){8,15}(?![0-9])', 'g') x
    loop
      if not (private.is_card_number(candidate) and (strpos(candidate, ' ') + strpos(candidate, '.') + strpos(candidate, '-') = 0
              or candidate ~ '^[0-9]{4}(?:(?:[ .-][0-9]{4}){1,3}(?:[ .-][0-9]{1,5})?|[ .-][0-9]{6}[ .-][0-9]{4,5})$')) then
        candidate := private.card_in_run(candidate);
      end if;
      if candidate is null then
        continue;
      elsif strpos(candidate, ' ') + strpos(candidate, '.') + strpos(candidate, '-') > 0 then
        -- With a separator between digits it cannot be part of a JSON number: a plain replace is enough (and several
        -- times cheaper than the pattern below).
        t := replace(t, candidate, '[CARD]');
      else
        -- The candidate is digits only, so it is safe inside a pattern.
        t := regexp_replace(t, '(?<![0-9A-Za-z\uE008.,_-])' || candidate || '(?![0-9])', '[CARD]', 'g');
      end if;
    end loop;
    t := replace(t, U&'\E008', '');
  end if;
  if digits and (every or 'ssn' = any(classes)) and t ~ '[0-9]{3}[- ][0-9]{2}[- ][0-9]{4}' then
    t := regexp_replace(t, '(?<![0-9A-Za-z-])(?!000|666|9[0-9]{2})[0-9]{3}(?:-(?!00)[0-9]{2}-|[ ](?!00)[0-9]{2}[ ])(?!0000)[0-9]{4}(?![0-9A-Za-z-])', '[SSN]', 'g');
  end if;
  if (every or 'ip' = any(classes)) then
    if strpos(t, '::') > 0 or (digits and t ~ '[0-9A-Fa-f]:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:') then
      t := regexp_replace(t,
        '(?<![0-9A-Za-z:])(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,7}:|(?:[0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,5}(?::[0-9A-Fa-f]{1,4}){1,2}|(?:[0-9A-Fa-f]{1,4}:){1,4}(?::[0-9A-Fa-f]{1,4}){1,3}|(?:[0-9A-Fa-f]{1,4}:){1,3}(?::[0-9A-Fa-f]{1,4}){1,4}|(?:[0-9A-Fa-f]{1,4}:){1,2}(?::[0-9A-Fa-f]{1,4}){1,5}|[0-9A-Fa-f]{1,4}:(?::[0-9A-Fa-f]{1,4}){1,6}|::(?:ffff(?::0{1,4})?:)?(?:[0-9]{1,3}\.){3}[0-9]{1,3}|::(?:[0-9A-Fa-f]{1,4}:){0,5}[0-9A-Fa-f]{1,4})(?![0-9A-Za-z:])',
        '[IP]', 'g');
    end if;
    if digits and strpos(t, '.') > 0 then
      t := regexp_replace(t, '(?<![0-9A-Za-z.])(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?![0-9A-Za-z]|\.[0-9])', '[IP]', 'g');
    end if;
  end if;
  if every or 'phone' = any(classes) then
    -- International: "+" and a country code, or "00" and a country code followed by a separator.
    if strpos(t, '+') > 0 then
      t := regexp_replace(t, '(?<![0-9A-Za-z+])\+[1-9](?:[ .()-]{0,2}[0-9]){7,14}(?![0-9])', '[PHONE]', 'g');
    end if;
    if digits and strpos(t, '00') > 0 then
      t := regexp_replace(t, '(?<![0-9A-Za-z+.,:/-])00[1-9][0-9]{0,2}[ .-](?:\(0\) ?)?[0-9]{1,5}(?:[ .-][0-9]{2,8}){1,4}(?![0-9A-Za-z]|[.,:/-][0-9])', '[PHONE]', 'g');
    end if;
    -- North American numbers: (415) 555-2671, 415-555-2671, 415.555.2671.
    if digits and t ~ '[0-9]{3}[ .)-] ?[0-9]{3}[ .-][0-9]{4}' then
      t := regexp_replace(t, '(?<![0-9A-Za-z(+-])(?:\([0-9]{3}\) ?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}(?![0-9A-Za-z])', '[PHONE]', 'g');
    end if;
    -- National numbers after a trunk prefix 0, grouped by spaces, dots, dashes or a slash, 9 to 12 digits in all:
    -- 020 7946 0958, 0490 75 40 81, 01 23 45 67 89, (02) 9876 5432, 030/1234567, 03-1234-5678. A ZIP+4 code is not one.
    if digits and t ~ '(?:^|[^0-9A-Za-z:.,+/-])\(?0[1-9][0-9]{0,4}\)?[ ./-][0-9]{2}' then
      for candidate in
        select x[1] from regexp_matches(t, '(?<![0-9A-Za-z+.,:/-])(?![0-9]{5}-[0-9]{4}(?![0-9]))((?:\(0[1-9][0-9]{0,4}\) ?|0[1-9][0-9]{0,4}[ ./-])[0-9]{2,8}(?:[ .-][0-9]{2,8}){0,3})(?![0-9A-Za-z]|[.,:/-][0-9])', 'g') x
      loop
        if length(regexp_replace(candidate, '[^0-9]', '', 'g')) between 9 and 12 then
          t := replace(t, candidate, '[PHONE]');
        end if;
      end loop;
    end if;
    -- An area code in parentheses: (37) 788-063, (11) 91234-5678.
    if digits and strpos(t, '(') > 0 then
      t := regexp_replace(t, '(?<![0-9A-Za-z+(])\([1-9][0-9]{1,3}\) ?(?![0-9]{4}-[0-9]{2}-[0-9]{2})[0-9]{3,5}(?:[ .-][0-9]{2,4}){1,3}(?![0-9A-Za-z]|[.,:/-][0-9])', '[PHONE]', 'g');
    end if;
    -- Bare national digits collide with amounts, postal codes and ids, so they count only after a word or key that
    -- says phone (phone, tel, mobile, call, fax, a tel: link, ...): 7 to 13 digits, not a date, not an amount in
    -- thousands unless it has nine digits or more (601 234 567), and fewer than nine digits in a row only right after
    -- the word ("tel: 4673395", not "call count 1234567"). The gate reads the text as the passes above left it.
    -- The gate is two cheap tests: a phone word, then digits grouped as a phone's would be (seven in a row end the run:
    -- a candidate never ends inside a run of letters and digits; four patterns joined by "or", cheaper than their
    -- alternation). The words are strpos() calls in lt, the text before any pass (a word the passes left is in it too),
    -- or the "[PHONE]" a pass above put in.
    if digits
       and (strpos(t, '[PHONE]') > 0
            or strpos(lt, 'phone') > 0 or strpos(lt, 'tel') > 0 or strpos(lt, 'call') > 0 or strpos(lt, 'mobil') > 0
            or strpos(lt, 'cell') > 0 or strpos(lt, 'fax') > 0 or strpos(lt, 'sms') > 0 or strpos(lt, 'text') > 0
            or strpos(lt, 'contact') > 0 or strpos(lt, 'whatsapp') > 0 or strpos(lt, 'hotline') > 0 or strpos(lt, 'dial') > 0
            or strpos(lt, 'ring') > 0 or strpos(lt, 'handy') > 0 or strpos(lt, 'numero') > 0 or strpos(lt, 'nummer') > 0)
       and (t ~ '[0-9][ )][ (]?[0-9]{2}' or t ~ '[0-9]{7}(?:[^0-9A-Za-z]|$)' or t ~ '(?:^|[^0-9A-Za-z-])[0-9]{2,5}-[0-9]{3}'
            or t ~ '[0-9]{2}\.[0-9]{2}\.[0-9]{2}') then
      for m in
        select x from regexp_matches(t, '(?:^|[^A-Za-z])(?:tele?phone|phone|tel|mobile?|mobil|cell(?:phone)?|call(?:ed|ing)?|fax|sms|text|whatsapp|contact|hotline|dial|ring|telefon[eo]?|telefono|handy|numero|nummer)((?:[A-Za-z_ -]{0,16}": "|[^0-9"(+\uE000-\uE11F]{0,24}))(\(?[0-9][0-9 ()./-]{5,20}[0-9])(?![0-9A-Za-z])', 'gi') x
      loop
        candidate := m[2];
        if length(regexp_replace(candidate, '[^0-9]', '', 'g')) between 7 and 13
           and candidate !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}|^[0-9]{1,2}[./][0-9]{1,2}[./][0-9]{2,4}$'
           and (candidate !~ '^[0-9]{1,3}(?:[ .,][0-9]{3})+$' or length(regexp_replace(candidate, '[^0-9]', '', 'g')) >= 9)
           and (candidate ~ '[^0-9]' or length(candidate) >= 9 or length(m[1]) <= 3 or m[1] ~ '": "$') then
          t := replace(t, candidate, '[PHONE]');
        end if;
      end loop;
    end if;
  end if;

  -- User names in home-directory paths.
  -- Windows and Unix paths are separate passes, each only when its form occurs: two small patterns run faster than
  -- their alternation, and metadata rarely holds both. The Unix pass leaves "C:/Users/[USER]" as it is.
  if every or 'home_path' = any(classes) then
    if strpos(t, ':/Users') > 0 or strpos(t, U&':\E000Users') > 0 then
      t := regexp_replace(t,
        '([A-Za-z]:(?:\uE000|/)Users(?:\uE000|/))(?!Public[\uE000/"]|Default[\uE000/"]|Shared[\uE000/"])[^\uE000/"]+',
        '\1[USER]', 'g');
    end if;
    if strpos(t, '/Users/') > 0 or strpos(t, '/home/') > 0 then
      t := regexp_replace(t, '((?:^|[^0-9A-Za-z._-])/(?:Users|home)/)(?!Shared[/"])[^/"\s\uE000]+', '\1[USER]', 'g');
    end if;
  end if;

  if t = original then
    return raw_metadata;
  end if;
  if escaped then
    t := replace(replace(replace(replace(replace(replace(replace(t,
           U&'\E001', '\"'), U&'\E002', '\n'), U&'\E003', '\r'), U&'\E004', '\t'), U&'\E005', '\b'), U&'\E006', '\f'),
           U&'\E000', '\\');
    if t ~ '[\uE100-\uE11F]' then
      for candidate in select distinct x[1] from regexp_matches(t, '[\uE100-\uE11F]', 'g') x loop
        t := replace(t, candidate, '\u' || lpad(to_hex(ascii(candidate) - 57600), 4, '0'));
      end loop;
    end if;
  end if;
  return t::jsonb;
end;
$$;
comment on function private.redact_jsonb(jsonb, text[]) is 'The redaction engine: redact_telemetry_metadata() with a choice of classes (null = all; see redact_text). Immutable and idempotent.';

create function public.redact_telemetry_metadata(raw_metadata jsonb) returns jsonb
language plpgsql immutable parallel safe
set search_path = ''
as $$
begin
  return private.redact_jsonb(raw_metadata, null);
end;
$$;
comment on function public.redact_telemetry_metadata(jsonb) is 'Redacts metadata: values of sensitive keys become "[REDACTED]"; e-mails (also internationalised), phone numbers (international and national), cards (issuer ranges, Luhn), IBANs, SSNs, IPs, JWTs, bearer and header tokens, cookies and session ids, query-string credentials, vendor API keys, private-key blocks and home-directory user names inside strings become placeholders. Immutable and idempotent.';

create function private.redact_text(value text, classes text[] default null) returns text
language plpgsql immutable parallel safe
set search_path = ''
as $$
begin
  if classes is not null
     and not classes <@ array['email', 'phone', 'card', 'iban', 'ssn', 'ip', 'jwt', 'secret', 'home_path'] then
    raise exception 'unknown redaction class in %', classes using errcode = '22023',
      hint = 'Name classes among email, phone, card, iban, ssn, ip, jwt, secret, home_path, or pass null for all.';
  end if;
  if value is null then
    return null;
  end if;
  return private.redact_jsonb(pg_catalog.to_jsonb(value), classes) #>> '{}';
end;
$$;
comment on function private.redact_text(text, text[]) is 'Redacts one text (a transcript, a property, a path) with the JSON redactor: classes null = every class, else only those named (email, phone, card, iban, ssn, ip, jwt, secret, home_path); an unknown class raises 22023.';

-- The safe path for metadata holding the marker characters themselves: walk the value, redact keys and strings one
-- by one, and cut each string at those characters (which no PII contains) so that every piece can take the fast path.
create function private.redact_metadata_string(value text, classes text[]) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select coalesce(string_agg(
           case when m[1] ~ '^[\uE000-\uE008\uE100-\uE11F]$' then m[1]
                else private.redact_jsonb(to_jsonb(m[1]), classes) #>> '{}' end, '' order by m.n), '')
  from regexp_matches(value, '[\uE000-\uE008\uE100-\uE11F]|[^\uE000-\uE008\uE100-\uE11F]+', 'g') with ordinality m(m, n)
$$;
comment on function private.redact_metadata_string(text, text[]) is 'Redacts one string that may hold the marker characters U+E000..U+E008 or U+E100..U+E11F, piece by piece between them.';

create function private.redact_metadata_walk(value jsonb, classes text[]) returns jsonb
language sql immutable parallel safe
set search_path = ''
as $$
  select case jsonb_typeof(value)
    when 'object' then coalesce((
      select jsonb_object_agg(private.redact_metadata_string(e.key, classes),
               case when (classes is null or 'secret' = any(classes)) and private.is_sensitive_key(e.key)
                         and jsonb_typeof(e.value) <> 'null' then '"[REDACTED]"'::jsonb
                    else private.redact_metadata_walk(e.value, classes) end)
      from jsonb_each(value) e), '{}'::jsonb)
    when 'array' then coalesce((
      select jsonb_agg(private.redact_metadata_walk(a.value, classes) order by a.n)
      from jsonb_array_elements(value) with ordinality a(value, n)), '[]'::jsonb)
    when 'string' then to_jsonb(private.redact_metadata_string(value #>> '{}', classes))
    else value
  end
$$;
comment on function private.redact_metadata_walk(jsonb, text[]) is 'Slow, structural redaction for metadata the text path of the redactor cannot fold.';

create function private.redact_path(path text) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select case when path is null then null
              else private.redact_jsonb(to_jsonb(path), null) #>> '{}' end
$$;
comment on function private.redact_path(text) is 'A file path with home-directory user names (and any other detectable PII) replaced by placeholders.';

-- volatile: every call draws a fresh random session key and IV, so the same input never encrypts the same way twice.
create function public.encrypt_telemetry_metadata(plaintext jsonb, encryption_key text) returns bytea
language plpgsql volatile
set search_path = ''
as $$
begin
  if coalesce(length(encryption_key), 0) < 16 then
    raise exception 'encryption key must be at least 16 characters' using errcode = '22023',
      hint = 'Pass a key from your secret store (e.g. Vault), never a short passphrase.';
  end if;
  return extensions.pgp_sym_encrypt(plaintext::text, encryption_key, 'cipher-algo=aes256');
end;
$$;
comment on function public.encrypt_telemetry_metadata(jsonb, text) is 'Encrypts metadata with pgcrypto (PGP symmetric, AES-256).';

-- immutable: the plaintext depends only on the ciphertext and the key (pgcrypto declares pgp_sym_decrypt immutable too).
create function public.decrypt_telemetry_metadata(ciphertext bytea, encryption_key text) returns jsonb
language plpgsql immutable
set search_path = ''
as $$
begin
  return extensions.pgp_sym_decrypt(ciphertext, encryption_key)::jsonb;
exception when external_routine_invocation_exception or data_exception then
  raise exception 'metadata could not be decrypted with this key' using errcode = '28P01',
    hint = 'Use the key the metadata was encrypted with.';
end;
$$;
comment on function public.decrypt_telemetry_metadata(bytea, text) is 'Decrypts what encrypt_telemetry_metadata() produced; a wrong key raises 28P01.';

grant execute on function public.redact_telemetry_metadata(jsonb), public.encrypt_telemetry_metadata(jsonb, text),
  public.decrypt_telemetry_metadata(bytea, text) to authenticated, service_role;
-- The redaction triggers run as the writer, so the writer needs the pure helpers too.
grant execute on function private.is_sensitive_key(text), private.redact_sensitive_containers(jsonb),
  private.is_card_number(text), private.is_iban(text), private.card_in_run(text), private.redact_jsonb(jsonb, text[]),
  private.redact_text(text, text[]), private.redact_metadata_string(text, text[]),
  private.redact_metadata_walk(jsonb, text[]), private.redact_path(text) to authenticated, service_role;

-- audit_logs metadata goes through the same redactor.
create function private.redact_audit_metadata() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.metadata := public.redact_telemetry_metadata(new.metadata);
  return new;
end;
$$;
comment on function private.redact_audit_metadata() is 'BEFORE INSERT on audit_logs: redacts metadata.';

-- An empty object (every insert and delete the audit trigger records) has nothing to redact: no call.
create trigger audit_logs_redact_metadata before insert on public.audit_logs
  for each row when (new.metadata <> '{}'::jsonb) execute function private.redact_audit_metadata();


-- =====================================================================================================================
-- source: supabase/schemas/31-privacy-transparency-log.sql
-- =====================================================================================================================
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


-- =====================================================================================================================
-- source: supabase/schemas/32-privacy-preferences.sql
-- =====================================================================================================================
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


-- =====================================================================================================================
-- source: supabase/schemas/33-privacy-events.sql
-- =====================================================================================================================
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


-- =====================================================================================================================
-- source: supabase/schemas/34-privacy-ingest.sql
-- =====================================================================================================================
-- Privacy: ingest_events(), the batch ingestion RPC behind the ingest edge function.
-- Set-based classification with a per-event report; stores only what it reports as accepted.

-- Event ids the caller already stored (ids only, never rows), for the ingest report. security definer because a
-- user who requires MFA cannot read their own events from an aal1 session, yet must still get honest duplicates.
create function private.stored_event_ids(kind text, ids uuid[], since timestamptz) returns setof uuid
language plpgsql stable security definer
set search_path = ''
as $$
begin
  -- PL/pgSQL keeps these plans for the session; as one SQL function the union over every partition of both tables was
  -- planned again on each call. The ids are looked up in the primary key (it leads with id) first and the owner is
  -- checked after: given the owner as well, the planner (on a fresh table, before ANALYZE) walks all of the caller's
  -- events in the window through the user index, growing with every batch stored. Only the partitions between since
  -- and now (plus the five minutes of clock skew ingest accepts) are searched.
  if ids is null or cardinality(ids) = 0 then
    return;
  elsif kind = 'telemetry' then
    return query
      with hit as materialized (
        select t.id, t.user_id from public.telemetry_events t
        where t.id = any (ids) and t.occurred_at >= since and t.occurred_at <= pg_catalog.now() + interval '5 minutes')
      select h.id from hit h where h.user_id = (select auth.uid());
  elsif kind = 'file' then
    return query
      with hit as materialized (
        select f.id, f.user_id from public.file_events f
        where f.id = any (ids) and f.occurred_at >= since and f.occurred_at <= pg_catalog.now() + interval '5 minutes')
      select h.id from hit h where h.user_id = (select auth.uid());
  end if;
end;
$$;
comment on function private.stored_event_ids(text, uuid[], timestamptz) is 'Which of these event ids the caller already stored (since a time): ids only.';

-- Which of these event ids the caller inserted in this transaction (rows created now), for the rare ingest report
-- whose accepted count does not match what its inserts stored.
create function private.event_ids_inserted_now(kind text, ids uuid[]) returns setof uuid
language sql stable security definer
set search_path = ''
as $$
  with hit as materialized (
    select t.id, t.user_id, t.created_at from public.telemetry_events t where kind = 'telemetry' and t.id = any (ids)
    union all
    select f.id, f.user_id, f.created_at from public.file_events f where kind = 'file' and f.id = any (ids))
  select h.id from hit h where h.user_id = (select auth.uid()) and h.created_at = pg_catalog.now()
$$;
comment on function private.event_ids_inserted_now(text, uuid[]) is 'Which of these event ids the caller inserted in the current transaction: ids only.';

create function private.try_timestamptz(value text) returns timestamptz
language plpgsql immutable
set search_path = ''
as $$
begin
  if value is null or value !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)$' then
    return null;
  end if;
  return value::timestamptz;
exception when others then
  return null;
end;
$$;
comment on function private.try_timestamptz(text) is 'An ISO 8601 timestamp with an explicit offset, or null when the text is not one.';

grant execute on function private.stored_event_ids(text, uuid[], timestamptz), private.event_ids_inserted_now(text, uuid[]),
  private.try_timestamptz(text), private.events_inserted_in_transaction() to authenticated;

-- The ingest RPC: classifies every event set-based and stores the admitted ones with one insert per table, as the
-- caller (RLS and triggers apply; redaction happens once, in the triggers). Report per event: accepted, duplicate,
-- sampled_out, or rejected with a reason. accepted means inserted (checked against the count the insert triggers keep).
-- plan_cache_mode: the batch statement is large and its plan does not depend on the parameter values, so it is
-- planned once per session instead of once per call.
create function public.ingest_events(events jsonb)
returns jsonb
language plpgsql
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
  uid uuid := (select auth.uid());
  earliest timestamptz := pg_catalog.now() - interval '30 days';
  latest timestamptz := pg_catalog.now() + interval '5 minutes';
  allowed boolean;
  inserted_before bigint := private.events_inserted_in_transaction();
  report jsonb;
begin
  if uid is null then
    raise exception 'not authenticated' using errcode = '42501', hint = 'Call this with a user''s JWT.';
  end if;
  if events is null or jsonb_typeof(events) <> 'array' then
    raise exception 'events must be a JSON array' using errcode = '22023';
  end if;
  if jsonb_array_length(events) > 1000 then
    raise exception 'at most 1000 events per batch (got %)', jsonb_array_length(events) using errcode = '54000',
      hint = 'Split the batch.';
  end if;
  allowed := private.monitoring_allowed();
  -- Batches of one user are serialised, so the duplicate check below cannot race a concurrent retry.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('ingest:' || uid::text, 0));

  -- raw is materialized so that the id and timestamp checks run once per event, not once per reference below.
  with fields as (
    select e.n::integer as n, e.value as v,
           e.value ->> 'kind' as kind,
           e.value ->> 'id' as id_text,
           e.value ->> 'occurred_at' as at_text,
           case when e.value ->> 'kind' = 'telemetry' then e.value ->> 'app_id' else e.value ->> 'tool' end as app_id,
           e.value ->> 'event_type' as event_type,
           e.value ->> 'duration_ms' as duration_text,
           e.value ->> 'file_path' as file_path,
           e.value ->> 'related_path' as related_path,
           coalesce(e.value -> 'metadata', '{}'::jsonb) as metadata
    from jsonb_array_elements(events) with ordinality e(value, n)
  ),
  raw as materialized (
    select f.*,
      case when f.id_text ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
           then f.id_text::uuid end as id,
      -- Well-formed timestamps (years 1900-2999, days up to the 28th, offsets up to 15:59) cannot fail to cast; the
      -- rest go through the careful path, so that no single event can make the batch fail.
      case when f.at_text ~ '^(?:19|2[0-9])[0-9]{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])[T ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?(?:Z|[+-](?:0[0-9]|1[0-5])(?::?[0-5][0-9])?)$'
           then f.at_text::timestamptz
           else private.try_timestamptz(f.at_text) end as occurred_at
    from fields f
  ),
  checked as (
    select r.n, r.kind, r.metadata, r.app_id, r.event_type, r.file_path, r.related_path, r.id, r.occurred_at,
      case when r.kind = 'telemetry' then r.event_type else 'file.' || r.event_type end as signal,
      case when r.kind = 'telemetry' and r.duration_text ~ '^[0-9]{1,9}$' then r.duration_text::integer end as duration_ms,
      case
        when jsonb_typeof(r.v) <> 'object' then 'invalid'
        when r.kind is null or r.kind not in ('telemetry', 'file') then 'invalid'
        when r.id is null or r.occurred_at is null then 'invalid'
        when jsonb_typeof(r.metadata) <> 'object' or pg_catalog.pg_column_size(r.metadata) > 32768 then 'invalid'
        when r.kind = 'telemetry' and (
               (char_length(coalesce(r.app_id, '')) > 128 or coalesce(r.app_id, '') !~ '^[A-Za-z0-9][A-Za-z0-9._:-]*$')
            or (char_length(coalesce(r.event_type, '')) > 128 or coalesce(r.event_type, '') !~ '^[a-z0-9][a-z0-9._:-]*$')
            or (r.duration_text is not null and r.duration_text !~ '^[0-9]{1,9}$')) then 'invalid'
        when r.kind = 'file' and (
               (char_length(coalesce(r.app_id, '')) > 128 or coalesce(r.app_id, '') !~ '^[A-Za-z0-9][A-Za-z0-9._:-]*$')
            or coalesce(r.event_type, '') not in ('created', 'modified', 'deleted', 'renamed', 'moved', 'copied', 'opened', 'closed')
            or char_length(coalesce(r.file_path, '')) not between 1 and 4096
            or char_length(coalesce(r.related_path, 'x')) not between 1 and 4096) then 'invalid'
      end as invalid_reason
    from raw r
  ),
  signals as (
    select s.signal_key, s.sampling_rate from public.signal_toggles s where s.user_id = uid and s.enabled
  ),
  apps as (
    select a.app_id, a.scope from public.app_allowlist a where a.user_id = uid and a.enabled
  ),
  gated as materialized (
    select c.*, sg.sampling_rate,
      case
        when c.invalid_reason is not null then c.invalid_reason
        when c.occurred_at < earliest or c.occurred_at > latest then 'outside_time_range'
        when not allowed then 'no_consent'
        when not exists (select 1 from apps a where a.app_id = c.app_id
                           and a.scope in ('all', case when c.kind = 'telemetry' then 'telemetry' else 'files' end)) then 'app_not_allowed'
        when sg.signal_key is null then 'signal_disabled'
      end as reason
    from checked c
    left join signals sg on sg.signal_key = c.signal
  ),
  -- distinct: a direct insert may have stored one id under two occurred_at values (see telemetry_events).
  stored as (
    select distinct s.kind, s.id from (
      select 'telemetry' as kind, x.id from private.stored_event_ids('telemetry',
        (select array_agg(g.id) from gated g where g.reason is null and g.kind = 'telemetry'), earliest) x(id)
      union all
      select 'file', x.id from private.stored_event_ids('file',
        (select array_agg(g.id) from gated g where g.reason is null and g.kind = 'file'), earliest) x(id)) s
  ),
  -- Only copies that passed the gate count for duplicates: a rejected first copy does not make a good second one a
  -- duplicate. (A hash aggregate over the ids, not a window over the sorted wide rows: a third of the cost.)
  firsts as (
    select g.kind, g.id, min(g.n) as first_n from gated g where g.reason is null group by g.kind, g.id
  ),
  decided as materialized (
    select g.*,
      case
        when g.reason is not null then 'rejected'
        when g.n > f.first_n or st.id is not null then 'duplicate'
        when private.sample_point(g.id) >= g.sampling_rate then 'sampled_out'
        else 'accepted'
      end as status
    from gated g
    left join firsts f on f.kind = g.kind and f.id = g.id
    left join stored st on st.kind = g.kind and st.id = g.id
  ),
  telemetry_written as (
    insert into public.telemetry_events (id, user_id, occurred_at, app_id, event_type, duration_ms, metadata_redacted)
    select d.id, uid, d.occurred_at, d.app_id, d.event_type, d.duration_ms, d.metadata
    from decided d
    where d.status = 'accepted' and d.kind = 'telemetry'
    on conflict do nothing
  ),
  files_written as (
    insert into public.file_events (id, user_id, occurred_at, file_path, related_path, event_type, tool, metadata)
    select d.id, uid, d.occurred_at, d.file_path, d.related_path, d.event_type, d.app_id, d.metadata
    from decided d
    where d.status = 'accepted' and d.kind = 'file'
    on conflict do nothing
  )
  select jsonb_build_object(
           'accepted', count(*) filter (where d.status = 'accepted'),
           'duplicate', count(*) filter (where d.status = 'duplicate'),
           'sampled_out', count(*) filter (where d.status = 'sampled_out'),
           'rejected', count(*) filter (where d.status = 'rejected'),
           'results', coalesce(jsonb_agg(
             case when d.reason is null then jsonb_build_object('index', d.n - 1, 'id', d.id, 'status', d.status)
                  when d.id is null then jsonb_build_object('index', d.n - 1, 'status', d.status, 'reason', d.reason)
                  else jsonb_build_object('index', d.n - 1, 'id', d.id, 'status', d.status, 'reason', d.reason)
             end order by d.n), '[]'::jsonb))
  into report
  from decided d;

  -- accepted must mean inserted. The inserts skip only rows that meet one of the caller's own (id, occurred_at), and
  -- the lookup above already reported those as duplicates, so the counts agree unless a row was stored concurrently
  -- (by a direct insert, which does not take the lock): then ask which accepted ids this transaction inserted.
  if (report ->> 'accepted')::bigint
     <> private.events_inserted_in_transaction() - inserted_before then
    with res as (
      select r.item, r.ord, events -> ((r.item ->> 'index')::integer) ->> 'kind' as kind
      from jsonb_array_elements(report -> 'results') with ordinality r(item, ord)
    ),
    ins as (
      select 'telemetry' as kind, x.id from private.event_ids_inserted_now('telemetry',
        (select array_agg((res.item ->> 'id')::uuid) from res where res.item ->> 'status' = 'accepted' and res.kind = 'telemetry')) x(id)
      union all
      select 'file', x.id from private.event_ids_inserted_now('file',
        (select array_agg((res.item ->> 'id')::uuid) from res where res.item ->> 'status' = 'accepted' and res.kind = 'file')) x(id)
    ),
    fixed as (
      select res.ord,
             case when res.item ->> 'status' = 'accepted'
                   and not exists (select 1 from ins where ins.kind = res.kind and ins.id = (res.item ->> 'id')::uuid)
                  then jsonb_set(res.item, '{status}', '"duplicate"') else res.item end as item
      from res
    )
    select jsonb_build_object(
             'accepted', count(*) filter (where f.item ->> 'status' = 'accepted'),
             'duplicate', count(*) filter (where f.item ->> 'status' = 'duplicate'),
             'sampled_out', count(*) filter (where f.item ->> 'status' = 'sampled_out'),
             'rejected', count(*) filter (where f.item ->> 'status' = 'rejected'),
             'results', coalesce(jsonb_agg(f.item order by f.ord), '[]'::jsonb))
    into report
    from fixed f;
  end if;
  return report;
end;
$$;
comment on function public.ingest_events(jsonb) is 'Stores a batch of telemetry ({"kind": "telemetry", id, occurred_at, app_id, event_type, duration_ms, metadata}) and file events ({"kind": "file", id, occurred_at, file_path, related_path, event_type, tool, metadata}) as the caller; returns per-event outcomes. Any user id in the payload is ignored.';

grant execute on function public.ingest_events(jsonb) to authenticated;


-- =====================================================================================================================
-- source: supabase/schemas/35-privacy-retention.sql
-- =====================================================================================================================
-- Privacy: retention_policies, metrics_log, and the retention functions.
-- cleanup_retention_data() drops expired months whole; cleanup_telemetry_by_retention() applies each user's setting.

-- Retention drops whole expired monthly partitions (and reports per user what went), per-user retention removes what
-- a user's own setting expires, the guardian health check watches all of it, and users export or erase their data.

create table public.retention_policies (
  id uuid not null default gen_random_uuid(),
  table_name text not null,
  retention_days integer not null,
  enabled boolean not null default true,
  last_run_at timestamptz,
  last_run_rows bigint,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint retention_policies_pkey primary key (id),
  constraint retention_policies_table_name_key unique (table_name),
  constraint retention_policies_table_known check (table_name in ('telemetry_events', 'file_events', 'audit_logs', 'metrics_log', 'webhook_deliveries', 'analytics_events')),
  constraint retention_policies_days_range check (retention_days between 1 and 3650)
);
comment on table public.retention_policies is 'How long each append-only table keeps rows (reference data created by this migration; operators tune it).';
comment on column public.retention_policies.last_run_rows is 'Rows removed by the last run (partitions dropped are counted from the per-month counters or statistics).';

create trigger retention_policies_set_updated_at before update on public.retention_policies
  for each row execute function private.set_updated_at();

alter table public.retention_policies enable row level security;

-- retention_policies_select: every signed-in user may see how long data is kept.
create policy retention_policies_select on public.retention_policies for select to authenticated
  using (true);

grant select on public.retention_policies to authenticated;
grant select, update (retention_days, enabled) on public.retention_policies to service_role;

insert into public.retention_policies (table_name, retention_days) values
  ('telemetry_events', 365),
  ('file_events', 365),
  ('audit_logs', 730),
  ('metrics_log', 90);

create table public.metrics_log (
  id bigint generated always as identity,
  ts timestamptz not null default now(),
  source text not null,
  metric text not null,
  value numeric not null,
  details jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  constraint metrics_log_pkey primary key (id),
  constraint metrics_log_source_length check (char_length(source) between 1 and 100),
  constraint metrics_log_metric_length check (char_length(metric) between 1 and 100),
  constraint metrics_log_details_object check (jsonb_typeof(details) = 'object')
);
comment on table public.metrics_log is 'Operational measurements written by maintenance functions (retention runs, ...). Aggregates only, never user data.';

create index metrics_log_source_ts_idx on public.metrics_log (source, ts desc);

alter table public.metrics_log enable row level security;

-- metrics_log_select: operators (service_role) read metrics; no user may.
create policy metrics_log_select on public.metrics_log for select to service_role
  using (true);

grant select on public.metrics_log to service_role;

-- file_patterns and file_relationships add up file events as they arrive; when retention removes events, the
-- affected users' aggregates are rebuilt from the events that remain (set-based), so they never describe more than
-- is stored.
create function private.rebuild_file_insights(users uuid[]) returns void
language plpgsql
set search_path = ''
as $$
begin
  if users is null or cardinality(users) = 0 then
    return;
  end if;
  delete from public.file_patterns p where p.user_id = any (users);
  delete from public.file_relationships r where r.user_id = any (users);
  insert into public.file_patterns (user_id, file_extension, event_count, last_used_at, tools)
  select s.user_id, s.ext, count(*), max(s.occurred_at), array_agg(distinct s.tool order by s.tool)
  from (select f.user_id, f.occurred_at, f.tool, private.file_extension(f.file_path) as ext
        from public.file_events f where f.user_id = any (users)) s
  where s.ext is not null
  group by s.user_id, s.ext;
  insert into public.file_relationships (user_id, source_path, target_path, relation_type, weight, last_seen_at)
  select f.user_id, f.file_path, f.related_path, f.event_type, count(*), max(f.occurred_at)
  from public.file_events f
  where f.user_id = any (users) and f.related_path is not null and f.event_type in ('renamed', 'moved', 'copied')
  group by f.user_id, f.file_path, f.related_path, f.event_type;
end;
$$;
comment on function private.rebuild_file_insights(uuid[]) is 'Recomputes file_patterns and file_relationships of these users from their stored file events (after retention removed some).';

-- Drops the monthly partitions of a table that end on or before the cutoff (and the months listed in also_months),
-- logging each affected user's counts.
create function private.drop_expired_partitions(parent regclass, cutoff timestamptz, purge_reason text,
                                                also_months date[] default '{}')
returns bigint
language plpgsql
set search_path = ''
set timezone = 'UTC'
as $$
declare
  parent_name text := (select c.relname from pg_catalog.pg_class c where c.oid = parent);
  expired date[];
  part record;
  removed bigint := 0;
  affected record;
  touched uuid[] := '{}'::uuid[];
begin
  select coalesce(array_agg(to_date(substring(c.relname from '_p([0-9]{6})$'), 'YYYYMM') order by c.relname), '{}')
  into expired
  from pg_catalog.pg_inherits i
  join pg_catalog.pg_class c on c.oid = i.inhrelid
  where i.inhparent = parent
    and c.relname ~ ('^' || parent_name || '_p[0-9]{6}$')
    and ((to_date(substring(c.relname from '_p([0-9]{6})$'), 'YYYYMM') + interval '1 month') <= cutoff
         or to_date(substring(c.relname from '_p([0-9]{6})$'), 'YYYYMM') = any (also_months))
    -- Event months still open to inserts (the insert policies accept events up to 30 days old) are never dropped:
    -- an insert in flight would be lost with its partition, uncounted. Row-by-row retention covers them.
    and (parent_name not in ('telemetry_events', 'file_events')
         or (to_date(substring(c.relname from '_p([0-9]{6})$'), 'YYYYMM') + interval '1 month') <= pg_catalog.now() - interval '31 days');
  if expired = '{}' then
    return 0;
  end if;

  if parent_name in ('telemetry_events', 'file_events') then
    for affected in
      select m.user_id, sum(m.events) as events, min(m.month) as first_month, max(m.month) as last_month
      from private.event_month_counts m
      where m.table_name = parent_name and m.month = any (expired)
      group by m.user_id
      having sum(m.events) > 0
    loop
      perform private.append_transparency_entry(affected.user_id, 'retention_purge', parent_name, null, null, null,
        jsonb_build_object('rows', affected.events, 'reason', purge_reason, 'from_month', affected.first_month,
                           'to_month', affected.last_month, 'partitions_dropped', true));
      removed := removed + affected.events;
      touched := touched || affected.user_id;
    end loop;
    delete from private.event_month_counts m where m.table_name = parent_name and m.month = any (expired);
  end if;

  for part in
    select c.oid, c.relname, c.reltuples
    from pg_catalog.pg_inherits i
    join pg_catalog.pg_class c on c.oid = i.inhrelid
    where i.inhparent = parent and c.relname = any (
      select parent_name || '_p' || to_char(m, 'YYYYMM') from unnest(expired) m)
  loop
    if parent_name not in ('telemetry_events', 'file_events') then
      removed := removed + greatest(part.reltuples, 0)::bigint;
    end if;
    execute format('drop table private.%I', part.relname);
  end loop;
  if parent_name = 'file_events' then
    perform private.rebuild_file_insights(touched);
  end if;
  return removed;
end;
$$;
comment on function private.drop_expired_partitions(regclass, timestamptz, text, date[]) is 'Drops whole monthly partitions that ended before the cutoff (or are listed); for event tables, logs a retention_purge entry per affected user first.';

-- file_patterns and file_relationships are derived from file events and hold file paths, so they expire with them:
-- an aggregate goes once the newest event it reflects is past the cutoff (its counts are lifetime counts until then).
create function private.purge_expired_file_insights(cutoff timestamptz, purge_reason text)
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  purged jsonb;
  affected record;
  removed bigint := 0;
begin
  -- A null cutoff means each user's own data_retention_days.
  with gone_patterns as (
    delete from public.file_patterns fp
    where fp.last_used_at < coalesce(cutoff, (select pg_catalog.now() - make_interval(days => p.data_retention_days)
                                              from public.privacy_prefs p where p.user_id = fp.user_id))
    returning fp.user_id
  ),
  gone_relationships as (
    delete from public.file_relationships r
    where r.last_seen_at < coalesce(cutoff, (select pg_catalog.now() - make_interval(days => p.data_retention_days)
                                             from public.privacy_prefs p where p.user_id = r.user_id))
    returning r.user_id
  ),
  per_user as (
    select g.user_id, 1 as patterns, 0 as relationships from gone_patterns g
    union all
    select g.user_id, 0, 1 from gone_relationships g
  )
  select coalesce(jsonb_agg(jsonb_build_object('user_id', x.user_id, 'patterns', x.patterns, 'relationships', x.relationships)), '[]')
  into purged
  from (select u.user_id, sum(u.patterns) as patterns, sum(u.relationships) as relationships
        from per_user u group by u.user_id) x;

  for affected in
    select (e.value ->> 'user_id')::uuid as user_id, (e.value ->> 'patterns')::bigint as patterns,
           (e.value ->> 'relationships')::bigint as relationships
    from jsonb_array_elements(purged) e
  loop
    perform private.append_transparency_entry(affected.user_id, 'retention_purge', 'file_insights', null, null, null,
      jsonb_build_object('file_patterns', affected.patterns, 'file_relationships', affected.relationships,
                         'reason', purge_reason));
    removed := removed + affected.patterns + affected.relationships;
  end loop;
  return removed;
end;
$$;
comment on function private.purge_expired_file_insights(timestamptz, text) is 'Deletes file_patterns/file_relationships last seen before the cutoff (null: each user''s own retention); logs counts per user in the transparency log.';

create function public.cleanup_retention_data()
returns jsonb
language plpgsql security definer
set search_path = ''
set timezone = 'UTC'
as $$
declare
  policy public.retention_policies;
  cutoff timestamptz;
  removed bigint;
  summary jsonb := '{}'::jsonb;
  started timestamptz := pg_catalog.clock_timestamp();
begin
  for policy in select * from public.retention_policies p where p.enabled order by p.table_name loop
    cutoff := pg_catalog.now() - make_interval(days => policy.retention_days);
    if policy.table_name = 'metrics_log' then
      delete from public.metrics_log m where m.ts < cutoff;
      get diagnostics removed = row_count;
    elsif policy.table_name = 'webhook_deliveries' then
      -- Not partitioned (44-connectors-webhook-deliveries.sql): finished rows are deleted in batches.
      removed := private.prune_webhook_deliveries(cutoff);
    elsif policy.table_name = 'analytics_events' then
      -- Whole months, with their exact-once keys (71-analytics-events.sql).
      removed := private.purge_expired_analytics_events(cutoff);
    else
      removed := private.drop_expired_partitions(('public.' || policy.table_name)::regclass, cutoff, 'retention_policy');
    end if;
    update public.retention_policies p set last_run_at = pg_catalog.now(), last_run_rows = removed where p.id = policy.id;
    summary := summary || jsonb_build_object(policy.table_name, removed);
    if policy.table_name = 'file_events' then
      summary := summary || jsonb_build_object('file_insights',
                                               private.purge_expired_file_insights(cutoff, 'retention_policy'));
    end if;
    -- ---- Auditor (issue 14): usage derived from telemetry expires with it (70-analytics-auditor.sql).
    if policy.table_name = 'telemetry_events' then
      summary := summary || jsonb_build_object('usage_analytics',
                                               private.purge_expired_usage_analytics(cutoff, 'retention_policy'));
    end if;
    -- ---- end Auditor
  end loop;
  insert into public.metrics_log (source, metric, value, details)
  values ('cleanup_retention_data', 'rows_removed',
          coalesce((select sum(v::bigint) from jsonb_each_text(summary) s(k, v)), 0),
          jsonb_build_object('tables', summary,
                             'duration_ms', round(extract(epoch from pg_catalog.clock_timestamp() - started) * 1000)));
  return jsonb_build_object('removed', summary,
                            'duration_ms', round(extract(epoch from pg_catalog.clock_timestamp() - started) * 1000));
end;
$$;
comment on function public.cleanup_retention_data() is 'Applies retention_policies: drops whole expired monthly partitions (metrics_log rows are deleted; file patterns and relationships expire with file_events). Returns counts per table; logs to metrics_log and each affected user''s transparency log.';

create function private.delete_rows_past_user_retention(table_name text)
returns table (user_id uuid, month date, events bigint)
language plpgsql
set search_path = ''
as $$
begin
  if table_name not in ('telemetry_events', 'file_events') then
    raise exception 'per-user retention does not apply to %', table_name using errcode = '22023';
  end if;
  if table_name = 'telemetry_events' then
    return query
      with gone as (
        delete from public.telemetry_events e
        using public.privacy_prefs p
        where e.user_id = p.user_id and e.occurred_at < pg_catalog.now() - make_interval(days => p.data_retention_days)
        returning e.user_id as owner, date_trunc('month', e.occurred_at at time zone 'UTC')::date as purged_month
      )
      select g.owner, g.purged_month, count(*) from gone g group by g.owner, g.purged_month;
  else
    return query
      with gone as (
        delete from public.file_events e
        using public.privacy_prefs p
        where e.user_id = p.user_id and e.occurred_at < pg_catalog.now() - make_interval(days => p.data_retention_days)
        returning e.user_id as owner, date_trunc('month', e.occurred_at at time zone 'UTC')::date as purged_month
      )
      select g.owner, g.purged_month, count(*) from gone g group by g.owner, g.purged_month;
  end if;
end;
$$;
comment on function private.delete_rows_past_user_retention(text) is 'Deletes the events each user''s data_retention_days has expired; returns counts per user and month.';

create function public.cleanup_telemetry_by_retention()
returns jsonb
language plpgsql security definer
set search_path = ''
set timezone = 'UTC'
as $$
declare
  tbl text;
  month_cutoff timestamptz;
  expired_months date[];
  touched uuid[];
  dropped bigint;
  total_dropped bigint := 0;
  total_deleted bigint := 0;
  affected record;
  started timestamptz := pg_catalog.clock_timestamp();
begin
  foreach tbl in array array['telemetry_events', 'file_events'] loop
    -- A whole month goes when it has expired for every user with events in it (users without preferences, i.e.
    -- deleted ones, count as expired).
    select min(pg_catalog.now() - make_interval(days => p.data_retention_days))
    into month_cutoff
    from public.privacy_prefs p
    where p.user_id in (select m.user_id from private.event_month_counts m where m.table_name = tbl);
    month_cutoff := coalesce(month_cutoff, pg_catalog.now() - interval '3650 days');
    -- Month by month, too: a month goes when it has ended past the retention of every user with events in it, so one
    -- user who keeps ten years does not turn everyone else's purge into row-by-row deletes.
    select coalesce(array_agg(x.month), '{}') into expired_months
    from (select m.month
          from private.event_month_counts m
          left join public.privacy_prefs p on p.user_id = m.user_id
          where m.table_name = tbl and m.events > 0
          group by m.month
          having bool_and(p.user_id is null
                          or m.month + interval '1 month' <= pg_catalog.now() - make_interval(days => p.data_retention_days))) x;
    dropped := private.drop_expired_partitions(('public.' || tbl)::regclass, month_cutoff, 'user_retention', expired_months);
    total_dropped := total_dropped + dropped;

    -- Inside months that stay, each user's own setting removes their expired rows.
    touched := '{}'::uuid[];
    for affected in select * from private.delete_rows_past_user_retention(tbl) loop
      touched := touched || affected.user_id;
      update private.event_month_counts m set events = greatest(m.events - affected.events, 0)
      where m.table_name = tbl and m.user_id = affected.user_id and m.month = affected.month;
      perform private.append_transparency_entry(affected.user_id, 'retention_purge', tbl, null, null, null,
        jsonb_build_object('rows', affected.events, 'reason', 'user_retention', 'from_month', affected.month,
                           'to_month', affected.month, 'partitions_dropped', false));
      total_deleted := total_deleted + affected.events;
    end loop;
    if tbl = 'file_events' then
      perform private.rebuild_file_insights(touched);
    end if;
  end loop;
  -- What was derived from file events expires on the same per-user horizon.
  total_deleted := total_deleted + private.purge_expired_file_insights(null, 'user_retention');
  -- ---- Auditor (issue 14): so does the usage derived from telemetry (70-analytics-auditor.sql).
  total_deleted := total_deleted + private.purge_expired_usage_analytics(null, 'user_retention');
  -- ---- end Auditor

  insert into public.metrics_log (source, metric, value, details)
  values ('cleanup_telemetry_by_retention', 'rows_removed', total_dropped + total_deleted,
          jsonb_build_object('rows_in_dropped_partitions', total_dropped, 'rows_deleted', total_deleted,
                             'duration_ms', round(extract(epoch from pg_catalog.clock_timestamp() - started) * 1000)));
  return jsonb_build_object('rows_in_dropped_partitions', total_dropped, 'rows_deleted', total_deleted,
                            'duration_ms', round(extract(epoch from pg_catalog.clock_timestamp() - started) * 1000));
end;
$$;
comment on function public.cleanup_telemetry_by_retention() is 'Enforces each user''s data_retention_days on telemetry and file events: drops months expired for everyone, deletes expired rows of shorter-retention users elsewhere. Returns counts; logs metrics_log and transparency entries.';

grant execute on function public.cleanup_retention_data(), public.cleanup_telemetry_by_retention() to service_role;


-- =====================================================================================================================
-- source: supabase/schemas/36-privacy-health-export-erasure.sql
-- =====================================================================================================================
-- Privacy: privacy_guardian_health_check(), export_my_data(), erase_my_telemetry().
-- Health for operators (aggregates only); a user's own export and erasure.

create function public.privacy_guardian_health_check()
returns jsonb
language plpgsql stable security definer
set search_path = ''
set timezone = 'UTC'
as $$
declare
  privacy_tables constant text[] := array['privacy_prefs', 'app_allowlist', 'signal_toggles', 'telemetry_events',
    'file_events', 'file_patterns', 'file_relationships', 'privacy_transparency_log', 'retention_policies', 'metrics_log',
    -- Auditor (issue 14): usage derived from telemetry (70-analytics-auditor.sql).
    'usage_analytics', 'efficiency_metrics'];
  rls jsonb;
  triggers jsonb;
  sampled integer;
  with_pii integer;
  last_retention timestamptz;
  last_user_retention timestamptz;
  partitions jsonb;
  failing text[] := array[]::text[];
begin
  select jsonb_object_agg(t.name, coalesce(c.relrowsecurity, false)) into rls
  from unnest(privacy_tables) t(name)
  left join pg_catalog.pg_class c on c.relname = t.name
    and c.relnamespace = 'public'::regnamespace;
  if exists (select 1 from jsonb_each(rls) r where r.value = 'false'::jsonb) then
    failing := array_append(failing, 'rls');
  end if;

  select jsonb_object_agg(x.trigger_name, coalesce(tr.tgenabled in ('O', 'A'), false)) into triggers
  from (values ('auto_redact_telemetry_before_insert', 'public.telemetry_events'),
               ('file_events_auto_redact', 'public.file_events'),
               ('audit_logs_redact_metadata', 'public.audit_logs')) x(trigger_name, table_name)
  left join pg_catalog.pg_trigger tr on tr.tgname = x.trigger_name and tr.tgrelid = x.table_name::regclass;
  if exists (select 1 from jsonb_each(triggers) r where r.value = 'false'::jsonb) then
    failing := array_append(failing, 'redaction_triggers');
  end if;

  -- The newest stored rows (by when they were stored: events may be up to 30 days old when they arrive), telemetry
  -- metadata and file events' paths and metadata alike.
  select count(*), count(*) filter (where s.dirty)
  into sampled, with_pii
  from (
    (select public.redact_telemetry_metadata(t.metadata_redacted) <> t.metadata_redacted as dirty
     from public.telemetry_events t
     where t.created_at > pg_catalog.now() - interval '1 day'
     order by t.created_at desc limit 1000)
    union all
    (select private.redact_path(f.file_path) <> f.file_path
            or coalesce(private.redact_path(f.related_path) <> f.related_path, false)
            or public.redact_telemetry_metadata(f.metadata) <> f.metadata
     from public.file_events f
     where f.created_at > pg_catalog.now() - interval '1 day'
     order by f.created_at desc limit 1000)) s;
  if with_pii > 0 then
    failing := array_append(failing, 'pii_in_recent_sample');
  end if;

  select max(m.ts) filter (where m.source = 'cleanup_retention_data'),
         max(m.ts) filter (where m.source = 'cleanup_telemetry_by_retention')
  into last_retention, last_user_retention
  from public.metrics_log m
  where m.source in ('cleanup_retention_data', 'cleanup_telemetry_by_retention');
  if last_retention is null or last_retention < pg_catalog.now() - interval '26 hours'
     or last_user_retention is null or last_user_retention < pg_catalog.now() - interval '26 hours' then
    failing := array_append(failing, 'retention_stale');
  end if;

  select jsonb_object_agg(t.name, (
           select count(*) from generate_series(1, 2) a
           where exists (select 1 from pg_catalog.pg_class c
                         where c.relnamespace = 'private'::regnamespace
                           and c.relname = t.name || '_p' || to_char(pg_catalog.now() + make_interval(months => a), 'YYYYMM'))))
  into partitions
  from unnest(array['telemetry_events', 'file_events']) t(name);
  if exists (select 1 from jsonb_each(partitions) p where p.value::integer < 2) then
    failing := array_append(failing, 'future_partitions_missing');
  end if;

  return jsonb_build_object(
    'status', case when cardinality(failing) = 0 then 'healthy' else 'degraded' end,
    'failing', to_jsonb(failing),
    'checked_at', pg_catalog.now(),
    'rls_enabled', rls,
    'redaction_triggers_enabled', triggers,
    'recent_sample', jsonb_build_object('events', sampled, 'with_detectable_pii', with_pii),
    'retention', jsonb_build_object('cleanup_retention_data', last_retention,
                                    'cleanup_telemetry_by_retention', last_user_retention),
    'future_partitions', partitions);
end;
$$;
comment on function public.privacy_guardian_health_check() is 'JSON health of the privacy system: RLS, redaction triggers, PII in a recent sample (counts only), retention recency (26 h), partitions two months ahead. service_role only.';

grant execute on function public.privacy_guardian_health_check() to service_role;

create function private.require_privacy_session() returns uuid
language plpgsql stable security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
begin
  if not private.mfa_satisfied() then
    raise exception 'your privacy settings require a multi-factor (aal2) session for this' using errcode = '42501',
      hint = 'Verify a second factor and retry with the new session token.';
  end if;
  return uid;
end;
$$;
comment on function private.require_privacy_session() is 'The caller''s id; raises 42501 without a user, or without aal2 when the user requires MFA.';

create function public.export_my_data()
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_privacy_session();
  result jsonb;
begin
  select jsonb_build_object(
    'exported_at', pg_catalog.now(),
    'user_id', uid,
    'privacy_prefs', (select to_jsonb(p) from public.privacy_prefs p where p.user_id = uid),
    'app_allowlist', (select coalesce(jsonb_agg(to_jsonb(a) order by a.app_id), '[]') from public.app_allowlist a where a.user_id = uid),
    'signal_toggles', (select coalesce(jsonb_agg(to_jsonb(s) order by s.signal_key), '[]') from public.signal_toggles s where s.user_id = uid),
    'telemetry_events', (select coalesce(jsonb_agg(to_jsonb(t) order by t.occurred_at, t.id), '[]') from public.telemetry_events t where t.user_id = uid),
    'file_events', (select coalesce(jsonb_agg(to_jsonb(f) order by f.occurred_at, f.id), '[]') from public.file_events f where f.user_id = uid),
    'file_patterns', (select coalesce(jsonb_agg(to_jsonb(p) order by p.file_extension), '[]') from public.file_patterns p where p.user_id = uid),
    'file_relationships', (select coalesce(jsonb_agg(to_jsonb(r) order by r.source_path, r.target_path), '[]') from public.file_relationships r where r.user_id = uid),
    'transparency_log', (select coalesce(jsonb_agg(to_jsonb(l) order by l.seq), '[]') from public.privacy_transparency_log l where l.user_id = uid),
    -- Integrations the user connected (any organization); never the Vault secret or its id.
    'integrations', (select coalesce(jsonb_agg(to_jsonb(i) - 'credentials_secret_id' order by i.created_at, i.id), '[]')
                     from public.integrations i where i.created_by = uid))
  into result;
  -- ---- Workflows (issue 11): executions the user started, approval decisions they made (47-workflows-approvals.sql).
  result := result || private.workflow_personal_data(uid);
  -- ---- end Workflows
  -- ---- Receptionist (issue 13): staff records linked to the user and their appointments (64-receptionist-caller-data.sql).
  result := result || private.receptionist_personal_data(uid);
  -- ---- end Receptionist
  -- ---- Work management (issue 12): projects owned, memberships, favourites, tasks (51-work-tasks.sql).
  result := result || private.work_personal_data(uid);
  -- ---- end Work management
  -- ---- Auditor (issue 14): usage analytics, efficiency metrics, quick wins (70-analytics-auditor.sql).
  result := result || private.auditor_personal_data(uid);
  -- ---- end Auditor
  -- ---- Work management, time and skills (issue 12): time entries, executions started, skills, reviews, templates (54-56).
  result := result || private.work_time_personal_data(uid);
  result := result || private.work_skills_personal_data(uid);
  result := result || private.work_templates_personal_data(uid);
  -- ---- end Work management, time and skills
  -- ---- Work collaboration (issue 12): comments, reactions, watched tasks, notifications, activities as actor
  -- (53-work-notifications-activities.sql).
  result := result || private.work_collab_personal_data(uid);
  -- ---- end Work collaboration
  -- ---- Growth analytics (issue 14): events with the user's id, their cohort and attribution (75-analytics-personal-data.sql).
  result := result || private.analytics_personal_data(uid);
  -- ---- end Growth analytics
  perform private.append_transparency_entry(uid, 'export', 'export_my_data', null, null,
    encode(extensions.digest(convert_to(result::text, 'UTF8'), 'sha256'), 'hex'),
    jsonb_build_object('telemetry_events', jsonb_array_length(result -> 'telemetry_events'),
                       'file_events', jsonb_array_length(result -> 'file_events'),
                       'transparency_entries', jsonb_array_length(result -> 'transparency_log')));
  return result;
end;
$$;
comment on function public.export_my_data() is 'Everything the caller owns in the privacy domain, and the integrations they connected (without credentials), as JSON (needs aal2 when the user requires MFA); logged in the transparency log.';

create function public.erase_my_telemetry()
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_privacy_session();
  telemetry bigint;
  files bigint;
  patterns bigint;
  relationships bigint;
  derived_usage jsonb;
begin
  -- The lock ingest_events() takes per user: a batch in flight commits before the erasure, not after it.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('ingest:' || uid::text, 0));
  delete from public.telemetry_events t where t.user_id = uid;
  get diagnostics telemetry = row_count;
  delete from public.file_events f where f.user_id = uid;
  get diagnostics files = row_count;
  delete from public.file_patterns p where p.user_id = uid;
  get diagnostics patterns = row_count;
  delete from public.file_relationships r where r.user_id = uid;
  get diagnostics relationships = row_count;
  delete from private.event_month_counts m where m.user_id = uid;
  -- ---- Auditor (issue 14): usage derived from the telemetry goes with it (70-analytics-auditor.sql).
  derived_usage := private.erase_auditor_usage(uid);
  -- ---- end Auditor
  perform private.append_transparency_entry(uid, 'erasure', 'erase_my_telemetry', null, null, null,
    jsonb_build_object('telemetry_events', telemetry, 'file_events', files, 'file_patterns', patterns,
                       'file_relationships', relationships) || derived_usage);
  return jsonb_build_object('telemetry_events', telemetry, 'file_events', files, 'file_patterns', patterns,
                            'file_relationships', relationships) || derived_usage;
end;
$$;
comment on function public.erase_my_telemetry() is 'Erases the caller''s telemetry and file events (and what was derived from them); returns counts; logged in the transparency log.';

grant execute on function public.export_my_data(), public.erase_my_telemetry() to authenticated;


-- =====================================================================================================================
-- source: supabase/schemas/40-connectors-secrets.sql
-- =====================================================================================================================
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


-- =====================================================================================================================
-- source: supabase/schemas/41-connectors-integrations.sql
-- =====================================================================================================================
-- Connectors: integration_providers (reference) and integrations.
-- Organization-level connections to external services; settings validated per provider, credentials in Vault.

-- Seed 000's integrations.platform, seed 002's user_integrations.provider and seed 004's integrations.type are the
-- provider. A user's own integrations live in their personal organization (DESIGN.md section 5), so there is one
-- table for both. Credentials are one Vault secret per integration holding a JSON object whose shape the provider's
-- auth kind fixes: oauth2 {access_token, refresh_token?}, api_key {api_key}, basic {username, password}.

create table public.integration_providers (
  key text not null,
  name text not null,
  auth_kind text not null,
  settings_schema jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  constraint integration_providers_pkey primary key (key),
  constraint integration_providers_key_format check (key ~ '^[a-z][a-z0-9_]{1,39}$'),
  constraint integration_providers_auth_kind_known check (auth_kind in ('oauth2', 'api_key', 'basic')),
  constraint integration_providers_settings_schema_object check (jsonb_typeof(settings_schema) = 'object')
);
comment on table public.integration_providers is 'Known external services (reference data created by this migration) with their auth kind and the settings they accept.';
comment on column public.integration_providers.settings_schema is 'Accepted settings: {"<key>": {"type": "string"|"number"|"boolean"|"array"|"object", "required": true?}}; any other key is rejected.';

insert into public.integration_providers (key, name, auth_kind, settings_schema) values
  ('slack', 'Slack', 'oauth2', '{"workspace": {"type": "string"}, "default_channel": {"type": "string"}}'),
  ('github', 'GitHub', 'oauth2', '{"organization": {"type": "string"}, "repositories": {"type": "array"}}'),
  ('gitlab', 'GitLab', 'oauth2', '{"base_url": {"type": "string"}, "group": {"type": "string"}}'),
  ('google_workspace', 'Google Workspace', 'oauth2', '{"domain": {"type": "string"}, "calendar_id": {"type": "string"}}'),
  ('microsoft_365', 'Microsoft 365', 'oauth2', '{"tenant_id": {"type": "string"}}'),
  ('notion', 'Notion', 'oauth2', '{"workspace": {"type": "string"}}'),
  ('jira', 'Jira', 'basic', '{"site_url": {"type": "string", "required": true}, "project_keys": {"type": "array"}}'),
  ('linear', 'Linear', 'api_key', '{"team_id": {"type": "string"}}'),
  ('asana', 'Asana', 'api_key', '{"workspace_gid": {"type": "string"}}'),
  ('zapier', 'Zapier', 'api_key', '{}');

create table public.integrations (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  created_by uuid default auth.uid(),
  provider text not null,
  display_name text not null,
  settings jsonb not null default '{}'::jsonb,
  scopes text[] not null default '{}',
  is_active boolean not null default true,
  token_expires_at timestamptz,
  last_sync_at timestamptz,
  last_error text,
  credentials_secret_id uuid,
  has_credentials boolean not null generated always as (credentials_secret_id is not null) stored,
  credentials_hint text,
  credentials_updated_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint integrations_pkey primary key (id),
  constraint integrations_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint integrations_created_by_fkey foreign key (created_by) references auth.users (id) on delete set null,
  constraint integrations_provider_fkey foreign key (provider) references public.integration_providers (key) on delete restrict,
  constraint integrations_credentials_secret_id_key unique (credentials_secret_id),
  constraint integrations_display_name_length check (char_length(btrim(display_name)) between 1 and 200),
  constraint integrations_settings_object check (jsonb_typeof(settings) = 'object'),
  constraint integrations_scopes_valid check (cardinality(scopes) <= 100 and array_position(scopes, null) is null),
  constraint integrations_last_error_length check (last_error is null or char_length(last_error) <= 2000),
  constraint integrations_hint_shape check (credentials_hint is null or char_length(credentials_hint) = 4),
  constraint integrations_credentials_consistent check (
    (credentials_secret_id is null) = (credentials_updated_at is null) and (credentials_secret_id is not null or credentials_hint is null))
);
comment on table public.integrations is 'An organization''s connection to an external service (a user''s own live in their personal organization). Credentials are in Vault; write them with set_integration_credentials().';
comment on column public.integrations.created_by is 'Who connected it (personal data: in export_my_data(); set null when the user is deleted).';
comment on column public.integrations.settings is 'Provider settings, validated against integration_providers.settings_schema.';
comment on column public.integrations.credentials_secret_id is 'Id of the Vault secret holding the credentials. Not selectable by API roles; the secret is deleted with the row.';
comment on column public.integrations.credentials_hint is 'Last four characters of an API key (api_key providers only), for recognising which key is set.';
comment on column public.integrations.token_expires_at is 'When the OAuth access token expires (set with the credentials).';

create index integrations_organization_id_idx on public.integrations (organization_id, provider);
create index integrations_created_by_idx on public.integrations (created_by);
create index integrations_provider_idx on public.integrations (provider);

-- Settings follow the provider's schema: only known keys, each of its declared JSON type, required keys present.
create function private.integration_settings_problem(provider_key text, settings jsonb) returns text
language sql stable
set search_path = ''
as $$
  select coalesce(
    (select format('unknown setting "%s" for provider %s', s.key, provider_key)
     from jsonb_each(settings) s
     where not (p.settings_schema ? s.key) limit 1),
    (select format('setting "%s" must be of type %s', s.key, p.settings_schema -> s.key ->> 'type')
     from jsonb_each(settings) s
     where jsonb_typeof(s.value) <> (p.settings_schema -> s.key ->> 'type') limit 1),
    (select format('setting "%s" is required for provider %s', r.key, provider_key)
     from jsonb_each(p.settings_schema) r
     where (r.value ->> 'required')::boolean and not (settings ? r.key) limit 1))
  from public.integration_providers p
  where p.key = provider_key
$$;
comment on function private.integration_settings_problem(text, jsonb) is 'Why settings do not fit the provider''s settings_schema, or null when they do.';

create function private.check_integration_settings() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  problem text := private.integration_settings_problem(new.provider, new.settings);
begin
  if problem is not null then
    raise exception '%', problem using errcode = '23514', constraint = 'integrations_settings_valid',
      hint = 'See integration_providers.settings_schema for the settings this provider accepts.';
  end if;
  return new;
end;
$$;

create trigger integrations_check_settings before insert or update of provider, settings on public.integrations
  for each row execute function private.check_integration_settings();
create trigger integrations_set_updated_at before update on public.integrations
  for each row execute function private.set_updated_at();
create trigger integrations_audit after insert or update or delete on public.integrations
  for each row execute function private.audit_row_change();
create trigger integrations_delete_secret after delete or update of credentials_secret_id on public.integrations
  for each row execute function private.delete_row_secret('credentials_secret_id');

alter table public.integration_providers enable row level security;
alter table public.integrations enable row level security;

-- integration_providers_select: every signed-in user may read the provider catalogue.
create policy integration_providers_select on public.integration_providers for select to authenticated
  using (true);
-- integrations_select: members holding integrations.read see their organization's integrations.
create policy integrations_select on public.integrations for select to authenticated
  using (organization_id in (select private.organizations_with_permission('integrations.read')));
-- integrations_insert: integrations.manage holders connect integrations in their organization.
create policy integrations_insert on public.integrations for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('integrations.manage')));
-- integrations_update: integrations.manage holders edit their organization's integrations (granted columns only).
create policy integrations_update on public.integrations for update to authenticated
  using (organization_id in (select private.organizations_with_permission('integrations.manage')))
  with check (organization_id in (select private.organizations_with_permission('integrations.manage')));
-- integrations_delete: integrations.manage holders remove integrations (their Vault secret goes with them).
create policy integrations_delete on public.integrations for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('integrations.manage')));

grant select on public.integration_providers to authenticated, service_role;
-- Every column but the secret id; created_by comes from the caller's JWT (column default).
grant select (id, organization_id, created_by, provider, display_name, settings, scopes, is_active, token_expires_at,
              last_sync_at, last_error, has_credentials, credentials_hint, credentials_updated_at, created_at, updated_at)
  on public.integrations to authenticated, service_role;
grant insert (organization_id, provider, display_name, settings, scopes, is_active) on public.integrations to authenticated;
grant update (display_name, settings, scopes, is_active) on public.integrations to authenticated;
grant delete on public.integrations to authenticated, service_role;
-- Sync workers (service role) record how a sync went.
grant update (is_active, token_expires_at, last_sync_at, last_error) on public.integrations to service_role;

-- The credentials' shape for an auth kind; raises 22023 naming what is wrong.
create function private.validate_credentials(auth_kind text, credentials jsonb) returns void
language plpgsql immutable
set search_path = ''
as $$
declare
  required_keys text[] := case auth_kind when 'oauth2' then array['access_token'] when 'api_key' then array['api_key']
                                         else array['username', 'password'] end;
  allowed_keys text[] := case auth_kind when 'oauth2' then array['access_token', 'refresh_token']
                                        else required_keys end;
  bad text;
begin
  if credentials is null or jsonb_typeof(credentials) <> 'object' then
    raise exception 'credentials must be a JSON object' using errcode = '22023';
  end if;
  select k into bad from jsonb_object_keys(credentials) k where k <> all (allowed_keys) limit 1;
  if bad is not null then
    raise exception 'unknown credential field "%" for auth kind %', bad, auth_kind using errcode = '22023',
      hint = format('Accepted fields: %s.', array_to_string(allowed_keys, ', '));
  end if;
  select k into bad from unnest(allowed_keys) k
  where (credentials ? k or k = any (required_keys))
    and (jsonb_typeof(credentials -> k) is distinct from 'string' or char_length(credentials ->> k) not between 1 and 8192)
  limit 1;
  if bad is not null then
    raise exception 'credential field "%" must be a non-empty string (at most 8192 characters)', bad using errcode = '22023';
  end if;
end;
$$;
comment on function private.validate_credentials(text, jsonb) is 'Checks a credentials object against its auth kind (oauth2, api_key, basic); raises 22023.';

-- Writes (or replaces) an integration's credentials. The caller needs integrations.manage in its organization.
create function public.set_integration_credentials(integration_id uuid, credentials jsonb,
                                                   token_expires_at timestamptz default null)
returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.integrations;
  kind text;
begin
  perform private.require_user();
  select i.* into target from public.integrations i where i.id = integration_id for update;
  if target.id is null or not private.has_permission(target.organization_id, 'integrations.read') then
    raise exception 'integration % not found', integration_id using errcode = 'P0002';
  end if;
  if not private.has_permission(target.organization_id, 'integrations.manage') then
    raise exception 'managing integrations needs integrations.manage' using errcode = '42501';
  end if;
  select p.auth_kind into kind from public.integration_providers p where p.key = target.provider;
  perform private.validate_credentials(kind, credentials);
  update public.integrations i
  set credentials_secret_id = private.vault_store(target.credentials_secret_id, credentials::text,
                                                  'integration:' || target.id, 'credentials of integration ' || target.id),
      credentials_hint = case when kind = 'api_key' then private.credential_hint(credentials ->> 'api_key') end,
      credentials_updated_at = pg_catalog.now(),
      token_expires_at = case when kind = 'oauth2' then set_integration_credentials.token_expires_at end,
      last_error = null
  where i.id = target.id;
end;
$$;
comment on function public.set_integration_credentials(uuid, jsonb, timestamptz) is 'Stores an integration''s credentials in Vault (oauth2 {access_token, refresh_token?}, api_key {api_key}, basic {username, password}); integrations.manage. Never returns them.';

create function public.clear_integration_credentials(integration_id uuid) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.integrations;
begin
  perform private.require_user();
  select i.* into target from public.integrations i where i.id = integration_id for update;
  if target.id is null or not private.has_permission(target.organization_id, 'integrations.read') then
    raise exception 'integration % not found', integration_id using errcode = 'P0002';
  end if;
  if not private.has_permission(target.organization_id, 'integrations.manage') then
    raise exception 'managing integrations needs integrations.manage' using errcode = '42501';
  end if;
  update public.integrations i
  set credentials_secret_id = null, credentials_hint = null, credentials_updated_at = null, token_expires_at = null
  where i.id = target.id;
end;
$$;
comment on function public.clear_integration_credentials(uuid) is 'Removes an integration''s credentials (the Vault secret is deleted); integrations.manage.';

-- The one way server code reads an integration's credentials: for a sync run. Audited.
create function public.integration_credentials_for_sync(integration_id uuid, reason text) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.integrations;
begin
  select i.* into target from public.integrations i where i.id = integration_id;
  if target.id is null or target.credentials_secret_id is null then
    raise exception 'integration % has no credentials', integration_id using errcode = 'P0002';
  end if;
  perform private.audit_credential_read(target.organization_id, 'integrations', target.id, 'integration_sync', reason);
  return private.vault_read(target.credentials_secret_id)::jsonb;
end;
$$;
comment on function public.integration_credentials_for_sync(uuid, text) is 'Decrypted credentials of an integration for a sync worker; service_role only; every call is an audit_logs credential_read entry.';

grant execute on function public.set_integration_credentials(uuid, jsonb, timestamptz),
  public.clear_integration_credentials(uuid) to authenticated;
grant execute on function public.integration_credentials_for_sync(uuid, text) to service_role;
grant execute on function private.integration_settings_problem(text, jsonb) to authenticated, service_role;


-- =====================================================================================================================
-- source: supabase/schemas/42-connectors-ai-providers.sql
-- =====================================================================================================================
-- Connectors: ai_provider_configs.
-- An organization's AI providers (openai, anthropic, google, local): endpoint, default model, budget; API key in Vault.

-- Seed 004's AIProviderConfigs. At most one default per organization (a partial unique index); the monthly budget is
-- enforced by the workflow engine. Members see the configurations (never a key); ai_agents.manage holders change them.

create table public.ai_provider_configs (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  name text not null,
  provider text not null,
  base_url public.http_url,
  default_model text not null,
  monthly_budget_usd numeric(12, 2),
  is_default boolean not null default false,
  credentials_secret_id uuid,
  has_credentials boolean not null generated always as (credentials_secret_id is not null) stored,
  credentials_hint text,
  credentials_updated_at timestamptz,
  created_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint ai_provider_configs_pkey primary key (id),
  constraint ai_provider_configs_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint ai_provider_configs_created_by_fkey foreign key (created_by) references auth.users (id) on delete set null,
  constraint ai_provider_configs_credentials_secret_id_key unique (credentials_secret_id),
  constraint ai_provider_configs_name_unique unique (organization_id, name),
  constraint ai_provider_configs_provider_known check (provider in ('openai', 'anthropic', 'google', 'local')),
  constraint ai_provider_configs_local_has_base_url check (provider <> 'local' or base_url is not null),
  constraint ai_provider_configs_name_length check (char_length(btrim(name)) between 1 and 100),
  constraint ai_provider_configs_default_model_length check (char_length(btrim(default_model)) between 1 and 200),
  constraint ai_provider_configs_budget_not_negative check (monthly_budget_usd is null or monthly_budget_usd >= 0),
  constraint ai_provider_configs_hint_shape check (credentials_hint is null or char_length(credentials_hint) = 4),
  constraint ai_provider_configs_credentials_consistent check (
    (credentials_secret_id is null) = (credentials_updated_at is null) and (credentials_secret_id is not null or credentials_hint is null))
);
comment on table public.ai_provider_configs is 'AI provider settings of an organization (seed 004). The API key is in Vault: set it with set_ai_provider_api_key().';
comment on column public.ai_provider_configs.base_url is 'Endpoint override (required for local providers; null means the provider''s public API).';
comment on column public.ai_provider_configs.monthly_budget_usd is 'Spending cap per calendar month (UTC) in USD; null is unlimited. Enforced by the workflow engine.';
comment on column public.ai_provider_configs.is_default is 'The organization''s default provider; at most one per organization (partial unique index).';
comment on column public.ai_provider_configs.credentials_secret_id is 'Id of the Vault secret holding the API key. Not selectable by API roles; the secret is deleted with the row.';
comment on column public.ai_provider_configs.credentials_hint is 'Last four characters of the API key.';

create unique index ai_provider_configs_one_default on public.ai_provider_configs (organization_id) where is_default;
create index ai_provider_configs_created_by_idx on public.ai_provider_configs (created_by);

create trigger ai_provider_configs_set_updated_at before update on public.ai_provider_configs
  for each row execute function private.set_updated_at();
create trigger ai_provider_configs_audit after insert or update or delete on public.ai_provider_configs
  for each row execute function private.audit_row_change();
create trigger ai_provider_configs_delete_secret after delete or update of credentials_secret_id on public.ai_provider_configs
  for each row execute function private.delete_row_secret('credentials_secret_id');

alter table public.ai_provider_configs enable row level security;

-- ai_provider_configs_select: members see their organization's AI provider settings (never a key).
create policy ai_provider_configs_select on public.ai_provider_configs for select to authenticated
  using (organization_id in (select private.user_organization_ids()));
-- ai_provider_configs_insert: ai_agents.manage holders add providers.
create policy ai_provider_configs_insert on public.ai_provider_configs for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('ai_agents.manage')));
-- ai_provider_configs_update: ai_agents.manage holders edit them (granted columns only).
create policy ai_provider_configs_update on public.ai_provider_configs for update to authenticated
  using (organization_id in (select private.organizations_with_permission('ai_agents.manage')))
  with check (organization_id in (select private.organizations_with_permission('ai_agents.manage')));
-- ai_provider_configs_delete: ai_agents.manage holders remove them (the API key goes with them).
create policy ai_provider_configs_delete on public.ai_provider_configs for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('ai_agents.manage')));

grant select (id, organization_id, name, provider, base_url, default_model, monthly_budget_usd, is_default,
              has_credentials, credentials_hint, credentials_updated_at, created_by, created_at, updated_at)
  on public.ai_provider_configs to authenticated, service_role;
grant insert (organization_id, name, provider, base_url, default_model, monthly_budget_usd, is_default)
  on public.ai_provider_configs to authenticated;
grant update (name, base_url, default_model, monthly_budget_usd, is_default) on public.ai_provider_configs to authenticated;
grant delete on public.ai_provider_configs to authenticated, service_role;

create function private.require_ai_provider_manager(config_id uuid) returns public.ai_provider_configs
language plpgsql stable
set search_path = ''
as $$
declare
  target public.ai_provider_configs;
begin
  perform private.require_user();
  select c.* into target from public.ai_provider_configs c where c.id = config_id;
  if target.id is null or target.organization_id not in (select private.user_organization_ids()) then
    raise exception 'AI provider configuration % not found', config_id using errcode = 'P0002';
  end if;
  if not private.has_permission(target.organization_id, 'ai_agents.manage') then
    raise exception 'changing AI provider settings needs ai_agents.manage' using errcode = '42501';
  end if;
  return target;
end;
$$;

create function public.set_ai_provider_api_key(config_id uuid, api_key text) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.ai_provider_configs := private.require_ai_provider_manager(config_id);
begin
  if api_key is null or char_length(api_key) not between 8 and 4096 or api_key ~ '\s' then
    raise exception 'an API key is 8-4096 characters without whitespace' using errcode = '22023';
  end if;
  update public.ai_provider_configs c
  set credentials_secret_id = private.vault_store(target.credentials_secret_id, api_key, 'ai_provider_config:' || target.id,
                                                  'API key of AI provider configuration ' || target.id),
      credentials_hint = private.credential_hint(api_key),
      credentials_updated_at = pg_catalog.now()
  where c.id = target.id;
end;
$$;
comment on function public.set_ai_provider_api_key(uuid, text) is 'Stores (or replaces) the API key of an AI provider configuration in Vault; ai_agents.manage. Never returns it.';

create function public.clear_ai_provider_api_key(config_id uuid) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.ai_provider_configs := private.require_ai_provider_manager(config_id);
begin
  update public.ai_provider_configs c
  set credentials_secret_id = null, credentials_hint = null, credentials_updated_at = null
  where c.id = target.id;
end;
$$;
comment on function public.clear_ai_provider_api_key(uuid) is 'Removes the API key of an AI provider configuration (the Vault secret is deleted); ai_agents.manage.';

-- The one way server code reads an AI provider key: to call the provider for a request. Audited.
create function public.ai_provider_api_key_for_request(config_id uuid, reason text) returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.ai_provider_configs;
begin
  select c.* into target from public.ai_provider_configs c where c.id = config_id;
  if target.id is null or target.credentials_secret_id is null then
    raise exception 'AI provider configuration % has no API key', config_id using errcode = 'P0002';
  end if;
  perform private.audit_credential_read(target.organization_id, 'ai_provider_configs', target.id, 'ai_request', reason);
  return private.vault_read(target.credentials_secret_id);
end;
$$;
comment on function public.ai_provider_api_key_for_request(uuid, text) is 'Decrypted API key of an AI provider configuration for a call to the provider; service_role only; every call is an audit_logs credential_read entry.';

grant execute on function public.set_ai_provider_api_key(uuid, text), public.clear_ai_provider_api_key(uuid)
  to authenticated;
grant execute on function public.ai_provider_api_key_for_request(uuid, text) to service_role;


-- =====================================================================================================================
-- source: supabase/schemas/43-connectors-webhooks.sql
-- =====================================================================================================================
-- Connectors: webhook_event_types (reference) and webhooks.
-- Outgoing webhook endpoints of an organization: URL, subscribed events, extra headers; signing secret in Vault.

-- Seed 004's webhooks, organization-level or of one project (project_id, added in 57-work-automations.sql). Deliveries are
-- signed per the Standard Webhooks specification with the endpoint's secret (`whsec_` + base64 of 24-64 random
-- bytes), which lives in Vault; the webhook-dispatcher edge function reads it through claim_webhook_deliveries().

create table public.webhook_event_types (
  key text not null,
  description text not null,
  created_at timestamptz not null default now(),
  constraint webhook_event_types_pkey primary key (key),
  constraint webhook_event_types_key_format check (key ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$')
);
comment on table public.webhook_event_types is 'Business events a webhook may subscribe to (reference data; each domain adds its own with its migration).';

insert into public.webhook_event_types (key, description) values
  ('webhook.test', 'A test event sent on request (send_test_webhook)'),
  ('integration.connected', 'An integration was added to the organization'),
  ('integration.disconnected', 'An integration was removed from the organization'),
  ('integration.credentials_updated', 'An integration''s credentials were set, replaced or removed');

-- Extra headers: an object of string values with token names, never Authorization, the hop-by-hop headers, or a
-- header the dispatcher itself sets (framing, content type, the Standard Webhooks signature headers).
create function private.webhook_headers_allowed(headers jsonb) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select jsonb_typeof(headers) = 'object'
     and (select count(*) from jsonb_object_keys(headers)) <= 20
     and not exists (
       select 1 from jsonb_each(headers) h
       where h.key !~ '^[A-Za-z0-9!#$%&''*+.^_`|~-]{1,64}$'
          or jsonb_typeof(h.value) <> 'string'
          or char_length(h.value #>> '{}') > 1024
          or (h.value #>> '{}') ~ '[\r\n\x00]'
          or lower(h.key) in ('authorization', 'proxy-authorization', 'proxy-authenticate', 'connection', 'keep-alive',
                              'te', 'trailer', 'trailers', 'transfer-encoding', 'upgrade', 'host', 'content-length',
                              'content-type', 'cookie', 'webhook-id', 'webhook-timestamp', 'webhook-signature'))
$$;
comment on function private.webhook_headers_allowed(jsonb) is 'True when extra webhook headers are string values with token names, none of them Authorization, hop-by-hop or set by the dispatcher.';

create table public.webhooks (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  name text not null,
  url public.http_url not null,
  events text[] not null,
  headers jsonb not null default '{}'::jsonb,
  is_enabled boolean not null default true,
  failure_count integer not null default 0,
  last_triggered_at timestamptz,
  disabled_reason text,
  credentials_secret_id uuid not null,
  has_credentials boolean not null generated always as (credentials_secret_id is not null) stored,
  credentials_updated_at timestamptz not null default now(),
  created_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint webhooks_pkey primary key (id),
  constraint webhooks_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint webhooks_created_by_fkey foreign key (created_by) references auth.users (id) on delete set null,
  constraint webhooks_credentials_secret_id_key unique (credentials_secret_id),
  constraint webhooks_name_length check (char_length(btrim(name)) between 1 and 200),
  constraint webhooks_events_not_empty check (cardinality(events) between 1 and 100 and array_position(events, null) is null),
  constraint webhooks_headers_allowed check (private.webhook_headers_allowed(headers)),
  constraint webhooks_failure_count_not_negative check (failure_count >= 0),
  constraint webhooks_disabled_reason_length check (disabled_reason is null or char_length(disabled_reason) <= 500)
);
comment on table public.webhooks is 'Outgoing webhook endpoints (seed 004), signed per Standard Webhooks. Create with create_webhook(); edit url, events, headers, is_enabled directly.';
comment on column public.webhooks.events is 'Subscribed event types (keys of webhook_event_types).';
comment on column public.webhooks.headers is 'Extra request headers; Authorization, hop-by-hop and signature headers are refused (webhooks_headers_allowed).';
comment on column public.webhooks.failure_count is 'Consecutive dead deliveries (every retry failed) since the last success; at 5 the webhook is disabled.';
comment on column public.webhooks.disabled_reason is 'Why the dispatcher disabled the webhook; cleared when it is enabled again.';
comment on column public.webhooks.credentials_secret_id is 'Id of the Vault secret holding the signing secret. Not selectable by API roles; the secret is deleted with the row.';
comment on column public.webhooks.credentials_updated_at is 'When the signing secret was last set (there is no hint: the secret is random).';

create index webhooks_organization_id_idx on public.webhooks (organization_id);
create index webhooks_created_by_idx on public.webhooks (created_by);
create index webhooks_events_idx on public.webhooks using gin (events);

-- Event types must exist; re-enabling a webhook starts its failure count afresh.
create function private.prepare_webhook() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  unknown text;
begin
  select e into unknown from unnest(new.events) e
  where not exists (select 1 from public.webhook_event_types t where t.key = e) limit 1;
  if unknown is not null then
    raise exception 'unknown event type "%"', unknown using errcode = '23514', constraint = 'webhooks_events_known',
      hint = 'Subscribe to keys of webhook_event_types.';
  end if;
  new.events := (select array_agg(distinct e order by e) from unnest(new.events) e);
  if tg_op = 'UPDATE' and new.is_enabled and not old.is_enabled then
    new.failure_count := 0;
    new.disabled_reason := null;
  end if;
  return new;
end;
$$;

create trigger webhooks_prepare before insert or update on public.webhooks
  for each row execute function private.prepare_webhook();
create trigger webhooks_set_updated_at before update on public.webhooks
  for each row execute function private.set_updated_at();
create trigger webhooks_audit after insert or update or delete on public.webhooks
  for each row execute function private.audit_row_change();
create trigger webhooks_delete_secret after delete or update of credentials_secret_id on public.webhooks
  for each row execute function private.delete_row_secret('credentials_secret_id');

alter table public.webhook_event_types enable row level security;
alter table public.webhooks enable row level security;

-- webhook_event_types_select: every signed-in user may read the event catalogue.
create policy webhook_event_types_select on public.webhook_event_types for select to authenticated
  using (true);
-- webhooks_select, webhooks_update, webhooks_delete: narrowed in 57-work-automations.sql (alter policy) so that a
-- project's webhook is seen only by those who read the project and changed only by those who edit it.
-- webhooks_select: webhooks.manage holders see their organization's webhooks.
create policy webhooks_select on public.webhooks for select to authenticated
  using (organization_id in (select private.organizations_with_permission('webhooks.manage')));
-- webhooks_update: webhooks.manage holders edit them (granted columns only).
create policy webhooks_update on public.webhooks for update to authenticated
  using (organization_id in (select private.organizations_with_permission('webhooks.manage')))
  with check (organization_id in (select private.organizations_with_permission('webhooks.manage')));
-- webhooks_delete: webhooks.manage holders remove them (the signing secret and queued deliveries go with them).
create policy webhooks_delete on public.webhooks for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('webhooks.manage')));

grant select on public.webhook_event_types to authenticated, service_role;
grant select (id, organization_id, name, url, events, headers, is_enabled, failure_count, last_triggered_at,
              disabled_reason, has_credentials, credentials_updated_at, created_by, created_at, updated_at)
  on public.webhooks to authenticated, service_role;
grant update (name, url, events, headers, is_enabled) on public.webhooks to authenticated;
grant delete on public.webhooks to authenticated, service_role;

-- A Standard Webhooks secret: whsec_ + base64 of 24-64 bytes.
create function private.validate_webhook_secret(signing_secret text) returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if signing_secret is null or signing_secret !~ '^whsec_[A-Za-z0-9+/]+={0,2}$'
     or char_length(signing_secret) - 6 not between 32 and 88 or (char_length(signing_secret) - 6) % 4 <> 0 then
    raise exception 'a signing secret is whsec_ followed by the base64 of 24-64 random bytes' using errcode = '22023',
      hint = 'For example: whsec_$(openssl rand -base64 32).';
  end if;
end;
$$;

-- A project's webhooks are managed only by those who can also edit the project (not found unless they read it).
create function private.require_webhook_manager(organization uuid, project uuid default null) returns void
language plpgsql stable
set search_path = ''
as $$
begin
  perform private.require_user();
  if organization is null or organization not in (select private.user_organization_ids())
     or (project is not null and not private.can_read_project(project)) then
    raise exception 'organization % not found', organization using errcode = 'P0002';
  end if;
  if not private.has_permission(organization, 'webhooks.manage') then
    raise exception 'managing webhooks needs webhooks.manage' using errcode = '42501';
  end if;
  if project is not null and not private.can_edit_project(project) then
    raise exception 'managing a project''s webhooks needs editing the project' using errcode = '42501';
  end if;
end;
$$;

-- project_id: a webhook of that project (its events only); the column is added in 57-work-automations.sql.
create function public.create_webhook(organization_id uuid, name text, url text, events text[], signing_secret text,
                                      headers jsonb default '{}'::jsonb, project_id uuid default null)
returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  new_id uuid := gen_random_uuid();
begin
  perform private.require_webhook_manager(create_webhook.organization_id, create_webhook.project_id);
  perform private.validate_webhook_secret(signing_secret);
  insert into public.webhooks (id, organization_id, project_id, name, url, events, headers, credentials_secret_id, created_by)
  values (new_id, create_webhook.organization_id, create_webhook.project_id, create_webhook.name, create_webhook.url,
          create_webhook.events, coalesce(create_webhook.headers, '{}'::jsonb),
          private.vault_store(null, signing_secret, 'webhook:' || new_id, 'signing secret of webhook ' || new_id),
          (select auth.uid()));
  return new_id;
end;
$$;
comment on function public.create_webhook(uuid, text, text, text[], text, jsonb, uuid) is 'Creates a webhook with its Standard Webhooks signing secret (stored in Vault); webhooks.manage, and editing the project for a project''s webhook (project_id). Returns its id.';

create function public.set_webhook_signing_secret(webhook_id uuid, signing_secret text) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.webhooks;
begin
  select w.* into target from public.webhooks w where w.id = webhook_id for update;
  perform private.require_webhook_manager(target.organization_id, target.project_id);
  perform private.validate_webhook_secret(signing_secret);
  perform private.vault_store(target.credentials_secret_id, signing_secret, 'webhook:' || target.id,
                              'signing secret of webhook ' || target.id);
  update public.webhooks w set credentials_updated_at = pg_catalog.now() where w.id = target.id;
end;
$$;
comment on function public.set_webhook_signing_secret(uuid, text) is 'Replaces a webhook''s signing secret (rotation); webhooks.manage. Never returns it.';

grant execute on function public.create_webhook(uuid, text, text, text[], text, jsonb, uuid),
  public.set_webhook_signing_secret(uuid, text) to authenticated;
grant execute on function private.webhook_headers_allowed(jsonb) to authenticated, service_role;


-- =====================================================================================================================
-- source: supabase/schemas/44-connectors-webhook-deliveries.sql
-- =====================================================================================================================
-- Connectors: webhook_deliveries (the outbound queue), emit_event(), and what the webhook-dispatcher calls.
-- Claiming with a lease, recording outcomes on the Standard Webhooks retry schedule, retention, pg_cron + pg_net jobs.

-- private.emit_event() is the one way any domain announces a business event: one delivery per enabled webhook of the
-- organization that subscribes to the type, idempotent per (webhook, event id). The webhook-dispatcher edge function
-- claims due deliveries (for update skip locked, a lease), signs and posts them, and records each outcome; failures
-- are retried after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (with up to 10 % jitter), then the delivery is dead;
-- five consecutive dead deliveries disable the webhook. Not partitioned, so (webhook_id, event_id) can be unique;
-- finished rows are pruned in batches by retention (retention_policies 'webhook_deliveries').

create table public.webhook_deliveries (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  webhook_id uuid not null,
  event_id uuid not null,
  event_type text not null,
  project_id uuid,
  payload jsonb not null,
  occurred_at timestamptz not null default now(),
  status text not null default 'pending',
  attempt integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  locked_until timestamptz,
  lease_id uuid,
  last_attempt_at timestamptz,
  response_status integer,
  response_body text,
  error text,
  duration_ms integer,
  delivered_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint webhook_deliveries_pkey primary key (id),
  constraint webhook_deliveries_webhook_event_key unique (webhook_id, event_id),
  constraint webhook_deliveries_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint webhook_deliveries_webhook_id_fkey foreign key (webhook_id) references public.webhooks (id) on delete cascade,
  constraint webhook_deliveries_status_known check (status in ('pending', 'delivering', 'delivered', 'failed', 'dead')),
  constraint webhook_deliveries_attempt_range check (attempt between 0 and 8),
  constraint webhook_deliveries_lease_while_delivering check ((status = 'delivering') = (lease_id is not null and locked_until is not null)),
  constraint webhook_deliveries_payload_object check (jsonb_typeof(payload) = 'object'),
  constraint webhook_deliveries_response_status_range check (response_status is null or response_status between 100 and 599),
  constraint webhook_deliveries_response_body_length check (response_body is null or char_length(response_body) <= 2048),
  constraint webhook_deliveries_error_length check (error is null or char_length(error) <= 500),
  constraint webhook_deliveries_duration_not_negative check (duration_ms is null or duration_ms >= 0)
);
comment on table public.webhook_deliveries is 'Outbound webhook queue and its recent log: one row per (webhook, event), retried on the Standard Webhooks schedule. Written by emit_event() and the dispatcher''s functions only.';
comment on column public.webhook_deliveries.project_id is 'Project the event belongs to, if any (foreign key added in 57-work-automations.sql).';
comment on column public.webhook_deliveries.attempt is 'Attempts made so far (at most 8: the first, then 7 retries).';
comment on column public.webhook_deliveries.lease_id is 'Identifies the dispatcher''s claim while delivering; an outcome with another lease is ignored.';
comment on column public.webhook_deliveries.response_body is 'First 2048 characters of the receiver''s last response.';
comment on column public.webhook_deliveries.error is 'Why the last attempt failed: http_<status>, timeout, connection_failed, redirect_refused, address_refused, ...';

create index webhook_deliveries_organization_id_idx on public.webhook_deliveries (organization_id, created_at desc);
create index webhook_deliveries_due_idx on public.webhook_deliveries (next_attempt_at) where status in ('pending', 'failed');
create index webhook_deliveries_lease_idx on public.webhook_deliveries (locked_until) where status = 'delivering';
create index webhook_deliveries_finished_idx on public.webhook_deliveries (updated_at) where status in ('delivered', 'dead');

create trigger webhook_deliveries_set_updated_at before update on public.webhook_deliveries
  for each row execute function private.set_updated_at();

alter table public.webhook_deliveries enable row level security;

-- webhook_deliveries_select: webhooks.manage holders see their organization's delivery log (narrowed in
-- 57-work-automations.sql: only deliveries of webhooks they see, and of events of projects they read).
create policy webhook_deliveries_select on public.webhook_deliveries for select to authenticated
  using (organization_id in (select private.organizations_with_permission('webhooks.manage')));

grant select (id, organization_id, webhook_id, event_id, event_type, project_id, payload, occurred_at, status, attempt,
              next_attempt_at, last_attempt_at, response_status, response_body, error, duration_ms, delivered_at,
              created_at, updated_at)
  on public.webhook_deliveries to authenticated, service_role;

-- Disabling a webhook ends what it still had queued; those deliveries are dead without counting as failures.
create function private.end_deliveries_of_disabled_webhook() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  update public.webhook_deliveries d
  set status = 'dead', error = 'webhook_disabled', lease_id = null, locked_until = null
  where d.webhook_id = new.id and d.status in ('pending', 'failed');
  return null;
end;
$$;

create trigger webhooks_end_deliveries_when_disabled after update of is_enabled on public.webhooks
  for each row when (old.is_enabled and not new.is_enabled)
  execute function private.end_deliveries_of_disabled_webhook();

create function private.emit_event(organization_id uuid, event_type text, payload jsonb,
                                   event_id uuid default gen_random_uuid(), project_id uuid default null)
returns uuid
language plpgsql security definer
set search_path = ''
as $$
begin
  if not exists (select 1 from public.webhook_event_types t where t.key = emit_event.event_type) then
    raise exception 'unknown event type "%"', event_type using errcode = '22023',
      hint = 'Add it to webhook_event_types in the migration of the domain that emits it.';
  end if;
  if payload is null or jsonb_typeof(payload) <> 'object' then
    raise exception 'an event payload must be a JSON object' using errcode = '22023';
  end if;
  if event_id is null then
    raise exception 'an event needs an id' using errcode = '22023';
  end if;
  insert into public.webhook_deliveries (organization_id, webhook_id, event_id, event_type, project_id, payload)
  select w.organization_id, w.id, emit_event.event_id, emit_event.event_type, emit_event.project_id, emit_event.payload
  from public.webhooks w
  where w.organization_id = emit_event.organization_id and w.is_enabled and emit_event.event_type = any (w.events)
    -- A project's webhooks get only its events; organization-wide ones no event of a private project (57).
    and (w.project_id = emit_event.project_id
         or (w.project_id is null and (select private.event_reaches_organization(emit_event.project_id))))
  on conflict on constraint webhook_deliveries_webhook_event_key do nothing;
  -- Event-triggered workflows (49-workflows-triggers-and-actions.sql; resolved when called, after every file loaded).
  -- Most organizations have none for most events: one index probe here spares the call. Keep in step with the
  -- workflows start_event_workflows() selects (49): this is its filter without the payload and project tests.
  if exists (select 1 from public.workflows w
             where w.organization_id = emit_event.organization_id and w.trigger_type = 'event' and w.is_active
               and w.deleted_at is null and w.trigger_config ->> 'event_type' = emit_event.event_type) then
    perform private.start_event_workflows(emit_event.organization_id, emit_event.event_type, emit_event.payload,
                                          emit_event.event_id, emit_event.project_id);
  end if;
  return event_id;
end;
$$;
comment on function private.emit_event(uuid, text, jsonb, uuid, uuid) is 'Announces a business event: enqueues one delivery per enabled subscribing webhook of the organization (idempotent per webhook and event id) and starts the matching event-triggered workflows; returns the event id. An event of a project reaches that project''s webhooks and workflows, and the organization-wide ones only when the project is organization-visible. Not granted to API roles.';

-- A client may ask for a test delivery to one of its own webhooks (subscribed to webhook.test or not).
create function public.send_test_webhook(webhook_id uuid) returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.webhooks;
  new_event uuid := gen_random_uuid();
begin
  select w.* into target from public.webhooks w where w.id = webhook_id;
  perform private.require_webhook_manager(target.organization_id, target.project_id);
  if not target.is_enabled then
    raise exception 'webhook % is disabled', webhook_id using errcode = '55000', hint = 'Enable it first.';
  end if;
  insert into public.webhook_deliveries (organization_id, webhook_id, event_id, event_type, payload)
  values (target.organization_id, target.id, new_event, 'webhook.test',
          jsonb_build_object('webhook_id', target.id, 'requested_by', (select auth.uid())));
  return new_event;
end;
$$;
comment on function public.send_test_webhook(uuid) is 'Queues a webhook.test delivery to one webhook; webhooks.manage. Returns the event id.';

-- Integrations announce themselves (payloads never carry credentials).
create function private.emit_integration_event() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  row_data public.integrations := coalesce(new, old);
begin
  perform private.emit_event(row_data.organization_id,
    case when tg_op = 'INSERT' then 'integration.connected' when tg_op = 'DELETE' then 'integration.disconnected'
         else 'integration.credentials_updated' end,
    jsonb_build_object('integration_id', row_data.id, 'provider', row_data.provider,
                       'display_name', row_data.display_name, 'has_credentials', row_data.has_credentials));
  return null;
end;
$$;

create trigger integrations_emit_connected after insert or delete on public.integrations
  for each row execute function private.emit_integration_event();
create trigger integrations_emit_credentials_updated after update of credentials_updated_at on public.integrations
  for each row when (old.credentials_updated_at is distinct from new.credentials_updated_at)
  execute function private.emit_integration_event();

-- Delay before the retry that follows a failed attempt (Standard Webhooks' reference schedule), with jitter.
create function private.webhook_retry_delay(failed_attempt integer) returns interval
language sql volatile
set search_path = ''
as $$
  select (array[interval '5 seconds', interval '5 minutes', interval '30 minutes', interval '2 hours',
                interval '5 hours', interval '10 hours', interval '10 hours'])[failed_attempt] * (1 + random() * 0.1)
$$;
comment on function private.webhook_retry_delay(integer) is 'Wait after failed attempt n (1-7): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, plus up to 10 % jitter; null after the 8th (dead).';

-- The dispatcher's claim: due deliveries of enabled webhooks, locked with skip locked and leased; each comes with its
-- webhook's URL, headers, signing secret and the exact body to sign. Reading the secrets is audited once per webhook
-- and claim. A lease that ran out (a dispatcher died) makes the delivery claimable again; one that ran out on the
-- last attempt makes it dead.
create function public.claim_webhook_deliveries(batch_size integer default 50, lease_seconds integer default 60)
returns table (delivery_id uuid, lease_id uuid, webhook_id uuid, event_id uuid, event_type text, attempt integer,
               url text, headers jsonb, signing_secret text, body text)
language plpgsql security definer
set search_path = ''
as $$
#variable_conflict use_column
begin
  if batch_size is null or batch_size not between 1 and 1000 or lease_seconds is null or lease_seconds not between 5 and 900 then
    raise exception 'batch_size must be 1-1000 and lease_seconds 5-900' using errcode = '22023';
  end if;
  update public.webhook_deliveries d
  set status = 'dead', error = 'lease_expired', lease_id = null, locked_until = null
  where d.status = 'delivering' and d.locked_until < pg_catalog.now() and d.attempt >= 8;

  return query
    -- Due retries and first attempts come in next_attempt_at order through the partial index; deliveries whose lease
    -- ran out (rare) are picked separately, so neither search scans the other's rows.
    with scheduled as (
      select d.id, d.next_attempt_at
      from public.webhook_deliveries d
      where d.status in ('pending', 'failed') and d.next_attempt_at <= pg_catalog.now()
        and exists (select 1 from public.webhooks w where w.id = d.webhook_id and w.is_enabled)
      order by d.next_attempt_at
      limit batch_size
      for update of d skip locked
    ), abandoned as (
      select d.id, d.next_attempt_at
      from public.webhook_deliveries d
      where d.status = 'delivering' and d.locked_until < pg_catalog.now()
        and exists (select 1 from public.webhooks w where w.id = d.webhook_id and w.is_enabled)
      limit batch_size
      for update of d skip locked
    ), due as (
      select x.id from (select * from abandoned union all select * from scheduled) x
      order by x.next_attempt_at
      limit batch_size
    ), claimed as (
      update public.webhook_deliveries d
      set status = 'delivering', attempt = d.attempt + 1, lease_id = gen_random_uuid(),
          locked_until = pg_catalog.now() + make_interval(secs => lease_seconds), last_attempt_at = pg_catalog.now()
      from due
      where d.id = due.id
      returning d.id, d.lease_id, d.webhook_id, d.event_id, d.event_type, d.attempt, d.payload, d.occurred_at
    ), enriched as (
      select c.*, w.url, w.headers, w.credentials_secret_id, w.organization_id
      from claimed c join public.webhooks w on w.id = c.webhook_id
    ), secrets as materialized (
      -- One decryption per webhook, not per delivery.
      select s.id, s.decrypted_secret
      from vault.decrypted_secrets s
      where s.id in (select e.credentials_secret_id from enriched e)
    ), audited as (
      insert into public.audit_logs (actor_id, actor_role, organization_id, action, resource, resource_id,
                                     correlation_id, metadata)
      select null, coalesce((select auth.role()), session_user::text), e.organization_id, 'credential_read', 'webhooks',
             e.webhook_id::text, private.request_correlation_id(),
             jsonb_build_object('purpose', 'webhook_dispatch', 'reason', 'sign claimed deliveries', 'deliveries', count(*),
                                'session_user', session_user::text,
                                'application_name', left(pg_catalog.current_setting('application_name', true), 64))
      from enriched e
      group by e.organization_id, e.webhook_id
    )
    select e.id, e.lease_id, e.webhook_id, e.event_id, e.event_type, e.attempt, e.url::text, e.headers,
           s.decrypted_secret,
           jsonb_build_object('type', e.event_type,
                              'timestamp', to_char(e.occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                              'data', e.payload)::text
    from enriched e
    join secrets s on s.id = e.credentials_secret_id;
end;
$$;
comment on function public.claim_webhook_deliveries(integer, integer) is 'webhook-dispatcher: claims up to batch_size due deliveries with a lease (for update skip locked) and returns them with URL, headers, signing secret and body; each webhook''s secret read is an audit_logs credential_read entry. service_role only.';

-- The dispatcher's outcomes, in one call per batch: [{delivery_id, lease_id, status_code, response_body, error,
-- duration_ms}]. A 2xx without error is delivered; anything else is retried on the schedule, or dead after the 8th
-- attempt. Outcomes whose lease no longer holds the delivery are ignored. Returns how many were recorded.
create function public.record_webhook_deliveries(outcomes jsonb) returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  recorded integer;
begin
  if outcomes is null or jsonb_typeof(outcomes) <> 'array' then
    raise exception 'outcomes must be a JSON array' using errcode = '22023';
  end if;
  -- A success resets the webhook's count of consecutive dead deliveries; each dead delivery adds one; at five the
  -- webhook is disabled with the reason.
  with o as (
    select x.delivery_id, x.lease_id, x.status_code, x.response_body, x.error, x.duration_ms,
           coalesce(x.status_code between 200 and 299 and x.error is null, false) as ok
    from jsonb_to_recordset(outcomes) as x(delivery_id uuid, lease_id uuid, status_code integer, response_body text,
                                            error text, duration_ms integer)
  ), done as (
    update public.webhook_deliveries d
    set status = case when o.ok then 'delivered' when d.attempt >= 8 then 'dead' else 'failed' end,
        next_attempt_at = case when o.ok or d.attempt >= 8 then d.next_attempt_at
                               else pg_catalog.now() + private.webhook_retry_delay(d.attempt) end,
        lease_id = null, locked_until = null,
        response_status = case when o.status_code between 100 and 599 then o.status_code end,
        response_body = left(o.response_body, 2048),
        error = case when o.ok then null else left(coalesce(o.error, 'http_' || o.status_code, 'unknown'), 500) end,
        duration_ms = greatest(o.duration_ms, 0),
        delivered_at = case when o.ok then pg_catalog.now() end
    from o
    where d.id = o.delivery_id and d.lease_id = o.lease_id and d.status = 'delivering'
    returning d.webhook_id, d.status, d.error
  ), per_webhook as (
    select x.webhook_id, count(*) filter (where x.status = 'delivered') as delivered,
           count(*) filter (where x.status = 'dead') as dead,
           max(x.error) filter (where x.status = 'dead') as last_error
    from done x group by x.webhook_id
  ), webhooks_updated as (
    update public.webhooks w
    set last_triggered_at = pg_catalog.now(),
        failure_count = case when r.delivered > 0 then 0 else w.failure_count + r.dead end,
        is_enabled = w.is_enabled and (r.delivered > 0 or w.failure_count + r.dead < 5),
        disabled_reason = case when w.is_enabled and r.delivered = 0 and w.failure_count + r.dead >= 5
                               then format('disabled after %s consecutive deliveries failed on every attempt (last error: %s)',
                                           w.failure_count + r.dead, r.last_error)
                               else w.disabled_reason end
    from per_webhook r
    where w.id = r.webhook_id
    returning w.id
  )
  select count(*) into recorded from done;
  return recorded;
end;
$$;
comment on function public.record_webhook_deliveries(jsonb) is 'webhook-dispatcher: records a batch of outcomes (delivered, retried on the Standard Webhooks schedule, or dead) and disables a webhook after 5 consecutive dead deliveries. service_role only.';

grant execute on function public.send_test_webhook(uuid) to authenticated;
grant execute on function public.claim_webhook_deliveries(integer, integer), public.record_webhook_deliveries(jsonb)
  to service_role;

-- Retention: finished deliveries (delivered or dead) go after retention_policies' days, in batches so that a large
-- backlog never holds long locks; queued ones stay.
create function private.prune_webhook_deliveries(cutoff timestamptz, batch_size integer default 5000) returns bigint
language plpgsql
set search_path = ''
as $$
declare
  removed bigint := 0;
  batch bigint;
begin
  loop
    delete from public.webhook_deliveries d
    where d.id in (select f.id from public.webhook_deliveries f
                   where f.status in ('delivered', 'dead') and f.updated_at < cutoff
                   limit batch_size);
    get diagnostics batch = row_count;
    removed := removed + batch;
    exit when batch < batch_size;
  end loop;
  return removed;
end;
$$;
comment on function private.prune_webhook_deliveries(timestamptz, integer) is 'Deletes delivered and dead webhook deliveries finished before the cutoff, batch_size rows at a time; returns how many.';

insert into public.retention_policies (table_name, retention_days) values ('webhook_deliveries', 30);

-- On Supabase, pg_cron calls the dispatcher every minute through pg_net (Supabase's "scheduling edge functions"
-- pattern); the project URL and the service role key are read from Vault (secrets named project_url and
-- service_role_key) when the job runs, so they are in no table. Idempotent: cron.schedule() replaces a job of the
-- same name. Without pg_net (the local platform, where `npm start` runs the loop itself) it schedules nothing.
create function private.schedule_edge_functions() returns text[]
language plpgsql
set search_path = ''
as $$
begin
  if not exists (select 1 from pg_catalog.pg_extension e where e.extname = 'pg_net') then
    raise notice 'pg_net is not installed: no edge function is scheduled (enable pg_net, then run select private.schedule_edge_functions())';
    return '{}'::text[];
  end if;
  perform cron.schedule('webhook-dispatcher', '* * * * *', $job$
    select net.http_post(
      url := (select decrypted_secret from vault.decrypted_secrets where name = 'project_url') || '/functions/v1/webhook-dispatcher',
      headers := jsonb_build_object('Content-Type', 'application/json', 'Authorization',
                                    'Bearer ' || (select decrypted_secret from vault.decrypted_secrets where name = 'service_role_key')),
      body := jsonb_build_object('scheduled_at', now()),
      timeout_milliseconds := 55000)
  $job$);
  -- The workflow worker (issue 11), the same way.
  perform cron.schedule('workflow-worker', '* * * * *', $job$
    select net.http_post(
      url := (select decrypted_secret from vault.decrypted_secrets where name = 'project_url') || '/functions/v1/workflow-worker',
      headers := jsonb_build_object('Content-Type', 'application/json', 'Authorization',
                                    'Bearer ' || (select decrypted_secret from vault.decrypted_secrets where name = 'service_role_key')),
      body := jsonb_build_object('scheduled_at', now()),
      timeout_milliseconds := 55000)
  $job$);
  return array['webhook-dispatcher', 'workflow-worker'];
end;
$$;
comment on function private.schedule_edge_functions() is 'Creates (or updates) the pg_cron jobs that invoke edge functions through pg_net (webhook-dispatcher and workflow-worker every minute); does nothing without pg_net. Run it again after enabling pg_net.';

select private.schedule_edge_functions();


-- =====================================================================================================================
-- source: supabase/schemas/45-workflows-definitions.sql
-- =====================================================================================================================
-- Workflows: definitions (workflows), their immutable versions (workflow_versions), and the definition validator.
-- A definition is a DAG of task, approval, ai_agent and condition nodes, checked in SQL whenever it is saved.

-- A definition is {"nodes": [{"id", "type", "name", "config"}], "edges": [{"from", "to", "when"?}]}. Every rule has
-- its own SQLSTATE (class WF) so callers and tests can tell them apart:
--   WF001 the shape (not an object, missing or extra keys, unknown node type)   WF002 duplicate node id
--   WF003 an edge names a node that does not exist      WF004 not exactly one entry node (no incoming edge)
--   WF005 a cycle                                        WF006 a node's config does not fit its type
--   WF007 `when` on an edge not out of a condition, or not true/false, or missing on an edge out of a condition
--   WF008 a condition expression that is not an SQL/JSON path predicate       WF009 the trigger configuration

-- Standard 5-field cron (minute hour day-of-month month day-of-week, UTC) with lists, ranges, steps and names.
-- One field against one value; null when the field is malformed.
create function private.cron_field_matches(field text, value integer, low integer, high integer) returns boolean
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  part text;
  range_part text;
  step integer;
  first_value integer;
  last_value integer;
  matched boolean := false;
begin
  if field is null or field = '' then
    return null;
  end if;
  foreach part in array pg_catalog.string_to_array(field, ',') loop
    if part !~ '^(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?$' then
      return null;
    end if;
    range_part := pg_catalog.split_part(part, '/', 1);
    step := coalesce(nullif(pg_catalog.split_part(part, '/', 2), '')::integer, 1);
    if step < 1 then
      return null;
    end if;
    if range_part = '*' then
      first_value := low;
      last_value := high;
    else
      first_value := pg_catalog.split_part(range_part, '-', 1)::integer;
      last_value := case when range_part like '%-%' then pg_catalog.split_part(range_part, '-', 2)::integer
                         when part like '%/%' then high
                         else first_value end;
    end if;
    if first_value < low or last_value > high or first_value > last_value then
      return null;
    end if;
    if value between first_value and last_value and (value - first_value) % step = 0 then
      matched := true;
    end if;
  end loop;
  return matched;
end;
$$;
comment on function private.cron_field_matches(text, integer, integer, integer) is 'Whether one cron field (lists, ranges a-b, steps */n, a-b/n, a/n) matches a value in [low, high]; null when the field is malformed.';

-- Names (JAN-DEC, SUN-SAT) are replaced by numbers; day of week 7 is Sunday like 0. When both day fields are
-- restricted, a day matches when either does (the behaviour of Vixie cron and pg_cron).
create function private.cron_matches(expression text, at timestamptz) returns boolean
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  fields text[] := pg_catalog.regexp_split_to_array(pg_catalog.btrim(pg_catalog.upper(coalesce(expression, ''))), '\s+');
  utc timestamp := at at time zone 'UTC';
  names text[] := array['JAN','FEB','MAR','APR','MAY','JUN','JUL','AUG','SEP','OCT','NOV','DEC'];
  days text[] := array['SUN','MON','TUE','WED','THU','FRI','SAT'];
  minute_ok boolean;
  hour_ok boolean;
  dom_ok boolean;
  month_ok boolean;
  dow_ok boolean;
  dow_sunday_7 boolean;
begin
  if pg_catalog.array_length(fields, 1) is distinct from 5 then
    return null;
  end if;
  for i in 1..12 loop
    fields[4] := pg_catalog.replace(fields[4], names[i], i::text);
  end loop;
  for i in 1..7 loop
    fields[5] := pg_catalog.replace(fields[5], days[i], (i - 1)::text);
  end loop;
  minute_ok := private.cron_field_matches(fields[1], extract(minute from utc)::integer, 0, 59);
  hour_ok := private.cron_field_matches(fields[2], extract(hour from utc)::integer, 0, 23);
  dom_ok := private.cron_field_matches(fields[3], extract(day from utc)::integer, 1, 31);
  month_ok := private.cron_field_matches(fields[4], extract(month from utc)::integer, 1, 12);
  dow_ok := private.cron_field_matches(fields[5], extract(dow from utc)::integer, 0, 7);
  dow_sunday_7 := extract(dow from utc) = 0 and private.cron_field_matches(fields[5], 7, 0, 7);
  if minute_ok is null or hour_ok is null or dom_ok is null or month_ok is null or dow_ok is null then
    return null;
  end if;
  dow_ok := dow_ok or dow_sunday_7;
  return minute_ok and hour_ok and month_ok
    and case when fields[3] like '*%' or fields[5] like '*%' then dom_ok and dow_ok else dom_ok or dow_ok end;
end;
$$;
comment on function private.cron_matches(text, timestamptz) is 'Whether a standard 5-field cron expression (UTC) fires at the minute of a timestamp; null when the expression is malformed.';

create function private.is_interval_text(value jsonb) returns boolean
language plpgsql immutable parallel safe
set search_path = ''
as $$
begin
  return jsonb_typeof(value) = 'string' and (value #>> '{}')::interval > interval '0';
exception when others then
  return false;
end;
$$;
comment on function private.is_interval_text(jsonb) is 'Whether a JSON value is a string holding a positive PostgreSQL interval such as "2 days".';

create function private.is_uuid_text(value jsonb) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select jsonb_typeof(value) = 'string'
     and (value #>> '{}') ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
$$;
comment on function private.is_uuid_text(jsonb) is 'Whether a JSON value is a string holding a UUID.';

-- Keywords of the JSON Schema subset that approval forms may use (validated by private.json_schema_errors()).
create function private.is_supported_form_schema(schema jsonb) returns boolean
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  key text;
  item jsonb;
begin
  if jsonb_typeof(schema) <> 'object' then
    return false;
  end if;
  for key, item in select * from jsonb_each(schema) loop
    case key
      when 'type' then
        if not (jsonb_typeof(item) = 'string' and item #>> '{}' in ('string','number','integer','boolean','object','array','null')) then
          return false;
        end if;
      when 'required' then
        if jsonb_typeof(item) <> 'array' or exists (select 1 from jsonb_array_elements(item) e where jsonb_typeof(e) <> 'string') then
          return false;
        end if;
      when 'properties' then
        if jsonb_typeof(item) <> 'object' or exists (select 1 from jsonb_each(item) p where not private.is_supported_form_schema(p.value)) then
          return false;
        end if;
      when 'enum' then
        if jsonb_typeof(item) <> 'array' or jsonb_array_length(item) = 0 then
          return false;
        end if;
      when 'minimum', 'maximum' then
        if jsonb_typeof(item) <> 'number' then
          return false;
        end if;
      when 'minLength', 'maxLength' then
        if jsonb_typeof(item) <> 'number' or (item #>> '{}')::numeric < 0 or (item #>> '{}')::numeric % 1 <> 0 then
          return false;
        end if;
      when 'title', 'description' then
        if jsonb_typeof(item) <> 'string' then
          return false;
        end if;
      else
        return false;
    end case;
  end loop;
  return true;
end;
$$;
comment on function private.is_supported_form_schema(jsonb) is 'Whether a form schema uses only the supported JSON Schema subset: type, required, properties, enum, minimum, maximum, minLength, maxLength (plus title, description).';

create function private.is_valid_approver_spec(spec jsonb) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select jsonb_typeof(spec) = 'object'
     and spec <> '{}'::jsonb
     and not exists (select 1 from jsonb_object_keys(spec) k where k not in ('user_ids', 'role', 'permission'))
     and (not spec ? 'user_ids' or (jsonb_typeof(spec -> 'user_ids') = 'array'
          and not exists (select 1 from jsonb_array_elements(spec -> 'user_ids') u where not private.is_uuid_text(u))))
     and (not spec ? 'role' or (jsonb_typeof(spec -> 'role') = 'string' and spec ->> 'role' ~ '^[a-z][a-z0-9_]{0,39}$'))
     and (not spec ? 'permission' or (jsonb_typeof(spec -> 'permission') = 'string' and spec ->> 'permission' ~ '^[a-z_]+\.[a-z_]+$'))
$$;
comment on function private.is_valid_approver_spec(jsonb) is 'Whether an approvers object is {"user_ids"?: [uuid], "role"?: key, "permission"?: key} with at least one of them.';

-- Why a node's config does not fit its type, or null when it does.
create function private.workflow_node_config_problem(node_type text, config jsonb) returns text
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  allowed text[];
  extra text;
begin
  if jsonb_typeof(config) is distinct from 'object' then
    return 'config must be an object';
  end if;
  allowed := case node_type
    when 'condition' then array['expression']
    when 'approval' then array['approval_type', 'required_approvals', 'approvers', 'expires_in', 'escalate_after',
                               'escalate_to', 'on_timeout', 'allow_self_approval', 'title', 'description', 'form_schema']
    when 'ai_agent' then array['provider_config_id', 'model', 'system', 'prompt', 'max_tokens', 'temperature',
                               'max_retries', 'timeout_ms']
    when 'task' then array['action', 'params']
  end;
  select k into extra from jsonb_object_keys(config) k where k <> all (allowed) order by k limit 1;
  if extra is not null then
    return pg_catalog.format('unknown config key "%s" for a %s node (allowed: %s)', extra, node_type, pg_catalog.array_to_string(allowed, ', '));
  end if;
  case node_type
    when 'condition' then
      if jsonb_typeof(config -> 'expression') is distinct from 'string' then
        return 'a condition needs "expression", an SQL/JSON path predicate such as "$.input.amount > 100"';
      end if;
    when 'approval' then
      if coalesce(config ->> 'approval_type', '') not in ('single', 'multiple', 'unanimous', 'majority') then
        return '"approval_type" must be single, multiple, unanimous or majority';
      end if;
      if (config ->> 'approval_type' = 'multiple') <> (config ? 'required_approvals') then
        return '"required_approvals" is required for multiple approvals and allowed for no other type';
      end if;
      if config ? 'required_approvals' and not (jsonb_typeof(config -> 'required_approvals') = 'number'
          and (config ->> 'required_approvals')::numeric >= 1 and (config ->> 'required_approvals')::numeric % 1 = 0) then
        return '"required_approvals" must be a whole number of at least 1';
      end if;
      if not private.is_valid_approver_spec(config -> 'approvers') then
        return '"approvers" must be {"user_ids": [uuid], "role": "<role key>", "permission": "<permission key>"} (any combination, at least one)';
      end if;
      if config ? 'escalate_to' and not private.is_valid_approver_spec(config -> 'escalate_to') then
        return '"escalate_to" must have the shape of "approvers"';
      end if;
      if (config ? 'escalate_to') <> (config ? 'escalate_after') then
        return '"escalate_after" and "escalate_to" go together';
      end if;
      if (config ? 'expires_in' and not private.is_interval_text(config -> 'expires_in'))
         or (config ? 'escalate_after' and not private.is_interval_text(config -> 'escalate_after')) then
        return '"expires_in" and "escalate_after" must be positive intervals such as "2 days"';
      end if;
      if config ? 'on_timeout' and coalesce(config ->> 'on_timeout', '') not in ('reject', 'approve', 'fail') then
        return '"on_timeout" must be reject, approve or fail';
      end if;
      if config ? 'allow_self_approval' and jsonb_typeof(config -> 'allow_self_approval') <> 'boolean' then
        return '"allow_self_approval" must be a boolean';
      end if;
      if (config ? 'title' and jsonb_typeof(config -> 'title') <> 'string')
         or (config ? 'description' and jsonb_typeof(config -> 'description') <> 'string') then
        return '"title" and "description" must be strings';
      end if;
      if config ? 'form_schema' and not private.is_supported_form_schema(config -> 'form_schema') then
        return '"form_schema" must be a JSON Schema using only type, required, properties, enum, minimum, maximum, minLength, maxLength, title, description';
      end if;
    when 'ai_agent' then
      if jsonb_typeof(config -> 'prompt') is distinct from 'string' or config ->> 'prompt' = '' then
        return 'an ai_agent node needs a non-empty "prompt"';
      end if;
      if config ? 'provider_config_id' and not private.is_uuid_text(config -> 'provider_config_id') then
        return '"provider_config_id" must be a UUID';
      end if;
      if (config ? 'model' and jsonb_typeof(config -> 'model') <> 'string')
         or (config ? 'system' and jsonb_typeof(config -> 'system') <> 'string') then
        return '"model" and "system" must be strings';
      end if;
      if (config ? 'max_tokens' and not (jsonb_typeof(config -> 'max_tokens') = 'number' and (config ->> 'max_tokens')::numeric >= 1 and (config ->> 'max_tokens')::numeric % 1 = 0))
         or (config ? 'max_retries' and not (jsonb_typeof(config -> 'max_retries') = 'number' and (config ->> 'max_retries')::numeric between 0 and 10 and (config ->> 'max_retries')::numeric % 1 = 0))
         or (config ? 'timeout_ms' and not (jsonb_typeof(config -> 'timeout_ms') = 'number' and (config ->> 'timeout_ms')::numeric between 1 and 600000 and (config ->> 'timeout_ms')::numeric % 1 = 0)) then
        return '"max_tokens" (>= 1), "max_retries" (0-10) and "timeout_ms" (1-600000) must be whole numbers';
      end if;
      if config ? 'temperature' and not (jsonb_typeof(config -> 'temperature') = 'number' and (config ->> 'temperature')::numeric between 0 and 2) then
        return '"temperature" must be a number from 0 to 2';
      end if;
    when 'task' then
      if coalesce(config ->> 'action', '') not in ('http_request', 'emit_event', 'create_task') then
        return '"action" must be http_request, emit_event or create_task';
      end if;
      if config ? 'params' and jsonb_typeof(config -> 'params') <> 'object' then
        return '"params" must be an object';
      end if;
      if config ->> 'action' = 'create_task' then
        -- The create_task params' shape (57-work-automations.sql; resolved when called).
        return private.create_task_params_problem(coalesce(config -> 'params', '{}'::jsonb));
      end if;
  end case;
  return null;
end;
$$;
comment on function private.workflow_node_config_problem(text, jsonb) is 'Why a node config does not fit its node type (extra keys included), or null when it fits.';

-- Raises on the first rule a definition breaks (SQLSTATEs WF001-WF008, see the top of this file).
create function private.assert_valid_workflow_definition(definition jsonb) returns void
language plpgsql immutable
set search_path = ''
as $$
declare
  node jsonb;
  edge jsonb;
  extra text;
  problem text;
  ids text[];
  duplicate text;
  entry_count integer;
  remaining text[];
  ready text[];
begin
  if jsonb_typeof(definition) is distinct from 'object' or jsonb_typeof(definition -> 'nodes') is distinct from 'array'
     or jsonb_typeof(definition -> 'edges') is distinct from 'array'
     or exists (select 1 from jsonb_object_keys(definition) k where k not in ('nodes', 'edges')) then
    raise exception 'a workflow definition is {"nodes": [...], "edges": [...]} and nothing else'
      using errcode = 'WF001';
  end if;
  if jsonb_array_length(definition -> 'nodes') = 0 or jsonb_array_length(definition -> 'nodes') > 200 then
    raise exception 'a workflow definition has 1 to 200 nodes, not %', jsonb_array_length(definition -> 'nodes')
      using errcode = 'WF001';
  end if;
  for node in select value from jsonb_array_elements(definition -> 'nodes') loop
    if jsonb_typeof(node) is distinct from 'object' or jsonb_typeof(node -> 'id') is distinct from 'string'
       or jsonb_typeof(node -> 'name') is distinct from 'string' or not node ? 'config'
       or coalesce(node ->> 'type', '') not in ('task', 'approval', 'ai_agent', 'condition') then
      raise exception 'node % must be {"id": string, "type": task|approval|ai_agent|condition, "name": string, "config": {...}}', node
        using errcode = 'WF001';
    end if;
    if node ->> 'id' !~ '^[A-Za-z][A-Za-z0-9_-]{0,63}$' then
      raise exception 'node id "%" must start with a letter and hold only letters, digits, _ and - (at most 64)', node ->> 'id'
        using errcode = 'WF001';
    end if;
    select k into extra from jsonb_object_keys(node) k where k not in ('id', 'type', 'name', 'config') limit 1;
    if extra is not null then
      raise exception 'node "%" has an unknown key "%"', node ->> 'id', extra using errcode = 'WF001';
    end if;
  end loop;
  for edge in select value from jsonb_array_elements(definition -> 'edges') loop
    if jsonb_typeof(edge) is distinct from 'object' or jsonb_typeof(edge -> 'from') is distinct from 'string'
       or jsonb_typeof(edge -> 'to') is distinct from 'string'
       or exists (select 1 from jsonb_object_keys(edge) k where k not in ('from', 'to', 'when')) then
      raise exception 'edge % must be {"from": node id, "to": node id, "when"?: true|false}', edge
        using errcode = 'WF001';
    end if;
  end loop;

  select array_agg(n ->> 'id') into ids from jsonb_array_elements(definition -> 'nodes') n;
  select d into duplicate from unnest(ids) d group by d having count(*) > 1 limit 1;
  if duplicate is not null then
    raise exception 'node id "%" is used more than once', duplicate using errcode = 'WF002';
  end if;

  select e into edge from jsonb_array_elements(definition -> 'edges') e
  where e ->> 'from' <> all (ids) or e ->> 'to' <> all (ids) limit 1;
  if edge is not null then
    raise exception 'edge from "%" to "%" names a node that does not exist', edge ->> 'from', edge ->> 'to'
      using errcode = 'WF003';
  end if;

  select count(*) into entry_count from unnest(ids) i
  where not exists (select 1 from jsonb_array_elements(definition -> 'edges') e where e ->> 'to' = i);
  if entry_count <> 1 then
    raise exception 'a workflow has exactly one entry node (a node without incoming edges), this one has %', entry_count
      using errcode = 'WF004', hint = 'Connect the nodes so that exactly one of them starts the workflow.';
  end if;

  -- Kahn's algorithm: peel off nodes without incoming edges from the nodes left; what cannot be peeled is a cycle.
  remaining := ids;
  loop
    select array_agg(r) into ready from unnest(remaining) r
    where not exists (select 1 from jsonb_array_elements(definition -> 'edges') e
                      where e ->> 'to' = r and e ->> 'from' = any (remaining));
    exit when ready is null;
    select array_agg(r) into remaining from unnest(remaining) r where r <> all (ready);
    exit when remaining is null;
  end loop;
  if remaining is not null then
    raise exception 'the workflow has a cycle through %', pg_catalog.array_to_string(remaining, ', ')
      using errcode = 'WF005';
  end if;

  for node in select value from jsonb_array_elements(definition -> 'nodes') loop
    problem := private.workflow_node_config_problem(node ->> 'type', node -> 'config');
    if problem is not null then
      raise exception 'node "%": %', node ->> 'id', problem using errcode = 'WF006';
    end if;
  end loop;

  for edge in select value from jsonb_array_elements(definition -> 'edges') loop
    if (select n ->> 'type' from jsonb_array_elements(definition -> 'nodes') n where n ->> 'id' = edge ->> 'from') = 'condition' then
      if jsonb_typeof(edge -> 'when') is distinct from 'boolean' then
        raise exception 'the edge from condition "%" to "%" needs "when": true or false', edge ->> 'from', edge ->> 'to'
          using errcode = 'WF007';
      end if;
    elsif edge ? 'when' then
      raise exception 'the edge from "%" to "%" has "when", but only edges out of a condition may', edge ->> 'from', edge ->> 'to'
        using errcode = 'WF007';
    end if;
  end loop;

  for node in select value from jsonb_array_elements(definition -> 'nodes') where value ->> 'type' = 'condition' loop
    begin
      perform jsonb_path_match('{"input": {}, "nodes": {}}'::jsonb, (node -> 'config' ->> 'expression')::jsonpath);
    exception when others then
      raise exception 'node "%": "%" is not an SQL/JSON path predicate (%)', node ->> 'id',
        node -> 'config' ->> 'expression', sqlerrm
        using errcode = 'WF008', hint = 'Write a predicate over {"input", "nodes"}, such as $.input.amount > 100.';
    end;
  end loop;
end;
$$;
comment on function private.assert_valid_workflow_definition(jsonb) is 'Raises (SQLSTATE WF001-WF008) on the first rule a workflow definition breaks; returns quietly for a valid one.';

create function private.assert_valid_trigger_config(trigger_type text, config jsonb) returns void
language plpgsql stable
set search_path = ''
as $$
begin
  if jsonb_typeof(config) is distinct from 'object' then
    raise exception 'trigger_config must be an object' using errcode = 'WF009';
  end if;
  case trigger_type
    when 'scheduled' then
      if exists (select 1 from jsonb_object_keys(config) k where k <> 'cron') or jsonb_typeof(config -> 'cron') is distinct from 'string'
         or private.cron_matches(config ->> 'cron', pg_catalog.now()) is null then
        raise exception 'a scheduled workflow needs {"cron": "<minute hour day month weekday>"} (UTC), not %', config
          using errcode = 'WF009';
      end if;
    when 'event' then
      if exists (select 1 from jsonb_object_keys(config) k where k not in ('event_type', 'filter'))
         or jsonb_typeof(config -> 'event_type') is distinct from 'string'
         or (config ? 'filter' and jsonb_typeof(config -> 'filter') <> 'object') then
        raise exception 'an event-triggered workflow needs {"event_type": "...", "filter"?: {...}}, not %', config
          using errcode = 'WF009';
      end if;
    else
      if config <> '{}'::jsonb then
        raise exception 'a % workflow takes no trigger_config (a webhook''s signing secret lives in Vault)', trigger_type
          using errcode = 'WF009';
      end if;
  end case;
end;
$$;
comment on function private.assert_valid_trigger_config(text, jsonb) is 'Raises WF009 unless trigger_config fits the trigger type: {"cron"} for scheduled, {"event_type", "filter"?} for event, {} otherwise.';

-- The shapes of the workflow tables' small columns, as domains rather than table CHECKs: PostgreSQL checks a
-- domain only where a value is assigned to it, with its expression prepared once per session, whereas it reads back
-- and prepares every CHECK of a table again for each statement that updates the table, whichever columns it sets.
-- On the queue's single-row UPDATEs (46-workflows-executions.sql) that preparation cost more than the rows.
create domain public.workflow_trigger_type as text
  constraint workflow_trigger_type_known check (value in ('manual', 'scheduled', 'webhook', 'event'));
comment on domain public.workflow_trigger_type is 'How a workflow is started: manual, scheduled, webhook or event.';
create domain public.workflow_max_attempts as integer
  constraint workflow_max_attempts_range check (value between 1 and 25);
comment on domain public.workflow_max_attempts is 'Attempts a node run may take: 1-25.';
-- The shapes of workflow_executions and workflow_runs (46-workflows-executions.sql).
create domain public.workflow_execution_status as text
  constraint workflow_execution_status_known
  check (value in ('queued', 'running', 'waiting', 'succeeded', 'failed', 'cancelled', 'timed_out'));
comment on domain public.workflow_execution_status is 'queued, running, waiting (an approval or AI task), or final: succeeded, failed, cancelled, timed_out.';
create domain public.workflow_run_status as text
  constraint workflow_run_status_known
  check (value in ('queued', 'running', 'succeeded', 'failed', 'skipped', 'waiting', 'cancelled'));
comment on domain public.workflow_run_status is 'A node run: queued, running (leased), waiting (approval, AI task), or final: succeeded, failed, skipped, cancelled.';
create domain public.workflow_node_type as text
  constraint workflow_node_type_known check (value in ('task', 'approval', 'ai_agent', 'condition'));
comment on domain public.workflow_node_type is 'A definition node''s type: task, approval, ai_agent or condition.';
create domain public.workflow_idempotency_key as text
  constraint workflow_idempotency_key_length check (char_length(value) between 1 and 255);
comment on domain public.workflow_idempotency_key is 'A caller''s idempotency key for a start: 1-255 characters.';

create table public.workflows (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  created_by uuid,
  name text not null,
  description text,
  definition jsonb not null,
  trigger_type public.workflow_trigger_type not null default 'manual',
  trigger_config jsonb not null default '{}'::jsonb,
  is_active boolean not null default true,
  current_version integer not null default 1,
  max_attempts public.workflow_max_attempts not null default 3,
  retry_delay interval not null default interval '10 seconds',
  timeout interval default interval '24 hours',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  constraint workflows_pkey primary key (id),
  constraint workflows_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint workflows_created_by_fkey foreign key (created_by) references auth.users (id) on delete set null,
  constraint workflows_name_length check (char_length(btrim(name)) between 1 and 200),
  constraint workflows_description_length check (description is null or char_length(description) <= 2000),
  constraint workflows_retry_delay_positive check (retry_delay > interval '0' and retry_delay <= interval '1 day'),
  constraint workflows_timeout_positive check (timeout is null or timeout > interval '0')
);
comment on table public.workflows is 'Workflow definitions of an organization: a DAG of nodes (task, approval, ai_agent, condition), validated when saved, and how it is triggered. Soft-deleted via deleted_at.';
comment on column public.workflows.definition is '{"nodes": [{"id", "type", "name", "config"}], "edges": [{"from", "to", "when"?}]}; see the README (Workflows).';
comment on column public.workflows.trigger_config is 'scheduled: {"cron": "<5-field cron, UTC>"}; event: {"event_type", "filter"?: JSON containment}; manual and webhook: {} (the webhook secret is in Vault).';
comment on column public.workflows.current_version is 'Version number of the current definition (workflow_versions.version); maintained by trigger.';
comment on column public.workflows.max_attempts is 'Default retry policy: attempts per task node run (an ai_agent node uses its max_retries + 1).';
comment on column public.workflows.retry_delay is 'Default retry policy: the first backoff; each retry doubles it (capped at 1 hour), with jitter.';
comment on column public.workflows.timeout is 'An execution''s deadline is its start plus this; past it, pg_cron marks it timed_out. Null: no deadline.';

create index workflows_organization_id_idx on public.workflows (organization_id);
create index workflows_created_by_idx on public.workflows (created_by);
create index workflows_scheduled_idx on public.workflows (id) where trigger_type = 'scheduled' and is_active and deleted_at is null;

-- security definer: the validators live in private, which the API roles cannot execute.
create function private.workflows_before_write() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform private.assert_valid_workflow_definition(new.definition);
  perform private.assert_valid_trigger_config(new.trigger_type, new.trigger_config);
  if tg_op = 'INSERT' then
    new.current_version := 1;
    new.created_by := coalesce((select auth.uid()), new.created_by);
  else
    new.created_by := old.created_by;
    new.organization_id := old.organization_id;
    new.current_version := old.current_version + case when new.definition is distinct from old.definition then 1 else 0 end;
  end if;
  return new;
end;
$$;
comment on function private.workflows_before_write() is 'BEFORE INSERT/UPDATE on workflows: validates the definition and trigger_config, keeps created_by and organization_id, and counts versions.';

create trigger workflows_validate before insert or update on public.workflows
  for each row execute function private.workflows_before_write();
create trigger workflows_set_updated_at before update on public.workflows
  for each row execute function private.set_updated_at();
create trigger workflows_audit after insert or update or delete on public.workflows
  for each row execute function private.audit_row_change();

create table public.workflow_versions (
  id uuid not null default gen_random_uuid(),
  workflow_id uuid not null,
  organization_id uuid not null,
  version integer not null,
  definition jsonb not null,
  created_by uuid,
  created_at timestamptz not null default now(),
  constraint workflow_versions_pkey primary key (id),
  constraint workflow_versions_workflow_version_key unique (workflow_id, version),
  constraint workflow_versions_workflow_id_fkey foreign key (workflow_id) references public.workflows (id) on delete cascade,
  constraint workflow_versions_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint workflow_versions_created_by_fkey foreign key (created_by) references auth.users (id) on delete set null
);
comment on table public.workflow_versions is 'Immutable snapshot of a workflow''s definition, one per change, written by trigger; executions pin one.';

create index workflow_versions_organization_id_idx on public.workflow_versions (organization_id);
create index workflow_versions_created_by_idx on public.workflow_versions (created_by);

create function private.workflows_snapshot_version() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' or new.definition is distinct from old.definition then
    insert into public.workflow_versions (workflow_id, organization_id, version, definition, created_by)
    values (new.id, new.organization_id, new.current_version, new.definition, coalesce((select auth.uid()), new.created_by));
  end if;
  return null;
end;
$$;
comment on function private.workflows_snapshot_version() is 'AFTER INSERT/UPDATE on workflows: writes the workflow_versions snapshot of a new or changed definition.';

create trigger workflows_snapshot_version after insert or update of definition on public.workflows
  for each row execute function private.workflows_snapshot_version();
create trigger workflow_versions_immutable before update on public.workflow_versions
  for each row execute function private.reject_write('A workflow version is an immutable snapshot; change the workflow instead.');
create trigger workflow_versions_audit after insert on public.workflow_versions
  for each row execute function private.audit_row_change();

alter table public.workflows enable row level security;
alter table public.workflow_versions enable row level security;

-- These policies are narrowed in 57-work-automations.sql (alter policy): a workflow with a project_id is seen only by
-- those who also read the project, and written only by those who also edit it; versions follow their workflow.
-- workflows_select: members holding workflows.read see their organization's workflows (soft-deleted ones too, so
-- that a manager's update setting deleted_at still reads back its row).
create policy workflows_select on public.workflows for select to authenticated
  using (organization_id in (select private.organizations_with_permission('workflows.read')));
-- workflows_insert: workflows.manage holders create workflows in their organization.
create policy workflows_insert on public.workflows for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('workflows.manage')));
-- workflows_update: workflows.manage holders edit (and soft-delete) their organization's workflows.
create policy workflows_update on public.workflows for update to authenticated
  using (organization_id in (select private.organizations_with_permission('workflows.manage')))
  with check (organization_id in (select private.organizations_with_permission('workflows.manage')));
-- workflow_versions_select: whoever reads the workflow reads its versions.
create policy workflow_versions_select on public.workflow_versions for select to authenticated
  using (organization_id in (select private.organizations_with_permission('workflows.read')));

grant select on public.workflows, public.workflow_versions to authenticated, service_role;
grant insert (organization_id, name, description, definition, trigger_type, trigger_config, is_active, max_attempts,
              retry_delay, timeout)
  on public.workflows to authenticated, service_role;
grant update (name, description, definition, trigger_type, trigger_config, is_active, max_attempts, retry_delay,
              timeout, deleted_at)
  on public.workflows to authenticated, service_role;


-- =====================================================================================================================
-- source: supabase/schemas/46-workflows-executions.sql
-- =====================================================================================================================
-- Workflows: executions (workflow_executions, a state machine) and the step queue (workflow_runs, one row per node run).
-- Starting, claiming, completing, failing and cancelling; the graph advances inside the database.

-- Lock order, everywhere: an execution row before its runs (claims never wait: they skip locked rows of both).
-- Completion and failure of a run, cancellation, timers and approval decisions all lock the execution first, so two
-- branches finishing at once advance the graph one after the other and a join node is enqueued exactly once.

-- The columns' shapes are domains (45-workflows-definitions.sql says why); the CHECKs left on these two tables are
-- the ones that relate two columns.
create table public.workflow_executions (
  id uuid not null default gen_random_uuid(),
  workflow_id uuid not null,
  workflow_version_id uuid not null,
  organization_id uuid not null,
  status public.workflow_execution_status not null default 'queued',
  input public.jsonb_object not null default '{}'::jsonb,
  output jsonb,
  error jsonb,
  trigger_type public.workflow_trigger_type not null,
  triggered_by uuid,
  correlation_id text not null default gen_random_uuid()::text,
  idempotency_key public.workflow_idempotency_key,
  scheduled_for timestamptz,
  started_at timestamptz not null default now(),
  completed_at timestamptz,
  deadline timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint workflow_executions_pkey primary key (id),
  constraint workflow_executions_workflow_id_fkey foreign key (workflow_id) references public.workflows (id) on delete cascade,
  constraint workflow_executions_workflow_version_id_fkey foreign key (workflow_version_id) references public.workflow_versions (id) on delete cascade,
  constraint workflow_executions_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint workflow_executions_triggered_by_fkey foreign key (triggered_by) references auth.users (id) on delete set null,
  constraint workflow_executions_idempotency_key_key unique (workflow_id, idempotency_key),
  constraint workflow_executions_scheduled_for_key unique (workflow_id, scheduled_for),
  constraint workflow_executions_completed_when_final check ((completed_at is null) = (status in ('queued', 'running', 'waiting')))
) with (fillfactor = 80);
comment on table public.workflow_executions is 'One run of a workflow, pinned to a version. Status is a state machine enforced by trigger: queued -> running/waiting -> succeeded | failed | cancelled | timed_out.';
comment on column public.workflow_executions.idempotency_key is 'Unique per workflow: starting again with the same key returns the existing execution.';
comment on column public.workflow_executions.scheduled_for is 'For scheduled starts: the cron occurrence (UTC minute); unique per workflow, so an occurrence starts at most once.';
comment on column public.workflow_executions.triggered_by is 'The user who started it; null for scheduled, webhook and event starts. The requester of its approvals.';
comment on column public.workflow_executions.output is 'On success: {"<final node id>": <its output>} for the final nodes (no outgoing edges) that ran.';
comment on column public.workflow_executions.deadline is 'started_at + the workflow''s timeout; past it, pg_cron marks the execution timed_out.';

create index workflow_executions_workflow_version_id_idx on public.workflow_executions (workflow_version_id);
create index workflow_executions_organization_id_idx on public.workflow_executions (organization_id, created_at desc);
create index workflow_executions_triggered_by_idx on public.workflow_executions (triggered_by);

create function private.workflow_execution_transition() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.status is distinct from old.status
     and not (old.status in ('queued', 'running', 'waiting')
              and new.status in ('running', 'waiting', 'succeeded', 'failed', 'cancelled', 'timed_out')
              and not (old.status <> 'queued' and new.status = 'queued')) then
    raise exception 'a workflow execution cannot go from % to %', old.status, new.status
      using errcode = '55000', hint = 'Finished executions (succeeded, failed, cancelled, timed_out) never change state.';
  end if;
  if new.status in ('succeeded', 'failed', 'cancelled', 'timed_out') and old.status not in ('succeeded', 'failed', 'cancelled', 'timed_out') then
    new.completed_at := pg_catalog.now();
  end if;
  return new;
end;
$$;
comment on function private.workflow_execution_transition() is 'BEFORE UPDATE on workflow_executions: allows only queued/running/waiting -> running/waiting/final (55000 otherwise; an unknown status is refused earlier by its domain, 23514) and stamps completed_at.';

-- The WHEN clauses skip the trigger functions' calls where they would change nothing: the transition check where an
-- unfinished execution stays unfinished as running or waiting, or finishes with completed_at already stamped now(),
-- and set_updated_at where updated_at already is now(). The queue's hot path sets both itself. One illegal update
-- skips the function and is refused by completed_when_final instead (23514, not 55000): an unfinished execution set
-- back to queued with completed_at = now() in the same statement. An unknown status never reaches the function: the
-- workflow_execution_status domain refuses it first (23514).
-- The transition's WHEN is written in terms of completed_at, which the completed_when_final constraint ties to the
-- status (null exactly while the status is queued, running or waiting): "old.completed_at is not null" is "the
-- execution had finished" (any change then is checked), so the clause needs no status lists and no comparison of
-- old and new status (the function itself lets an unchanged status pass). It is kept this short on purpose:
-- PostgreSQL reads and prepares every row trigger's WHEN clause (and every table CHECK) again for each statement
-- that updates the table, and with status lists this one cost about as much as the run's own UPDATE.
create trigger workflow_executions_transition before update on public.workflow_executions
  for each row when (old.completed_at is not null
                     or (new.completed_at is distinct from pg_catalog.now() and new.status <> 'running' and new.status <> 'waiting'))
  execute function private.workflow_execution_transition();
create trigger workflow_executions_set_updated_at before update on public.workflow_executions
  for each row when (new.updated_at is distinct from pg_catalog.now()) execute function private.set_updated_at();
-- The audit trail records what actors do to executions: starting (insert), cancelling, deleting. How the engine moves
-- an execution on (running, waiting, succeeded, failed, timed_out) is recorded in the execution itself: auditing it
-- would add an audit row to every step of the queue's hot path.
create trigger workflow_executions_audit after insert or delete on public.workflow_executions
  for each row execute function private.audit_row_change();
create trigger workflow_executions_audit_cancel after update on public.workflow_executions
  for each row when (new.status = 'cancelled' and old.completed_at is null)
  execute function private.audit_row_change();

-- Unfinished executions that have a deadline, for the timeout job: kept beside the execution rather than as a partial
-- index on it, because such an index names columns that finishing changes (completed_at or status), and PostgreSQL
-- then writes every finishing UPDATE as a new row version in all of the table's indexes (not HOT). Kept by the
-- triggers below: a row when an execution starts with a deadline or gets one, none once it finishes.
create table private.workflow_execution_deadlines (
  execution_id uuid not null,
  deadline timestamptz not null,
  constraint workflow_execution_deadlines_pkey primary key (execution_id),
  constraint workflow_execution_deadlines_execution_id_fkey foreign key (execution_id)
    references public.workflow_executions (id) on delete cascade
);
comment on table private.workflow_execution_deadlines is 'Unfinished executions with a deadline (a copy of workflow_executions.deadline kept by trigger), walked by expire_workflow_executions() in deadline order.';

create index workflow_execution_deadlines_deadline_idx on private.workflow_execution_deadlines (deadline);

create function private.track_workflow_execution_deadline() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.deadline is null or new.completed_at is not null then
    delete from private.workflow_execution_deadlines d where d.execution_id = new.id;
  else
    insert into private.workflow_execution_deadlines as d (execution_id, deadline) values (new.id, new.deadline)
    on conflict (execution_id) do update set deadline = excluded.deadline;
  end if;
  return null;
end;
$$;
comment on function private.track_workflow_execution_deadline() is 'AFTER INSERT or UPDATE on workflow_executions (only where the deadline is set, changed or the execution finishes): keeps private.workflow_execution_deadlines to the unfinished executions with a deadline.';

-- The WHEN clauses are the only cost for executions without a deadline (no trigger call).
create trigger workflow_executions_deadline_insert after insert on public.workflow_executions
  for each row when (new.deadline is not null) execute function private.track_workflow_execution_deadline();
create trigger workflow_executions_deadline_update after update on public.workflow_executions
  for each row when (new.deadline is distinct from old.deadline
                     or (new.deadline is not null and old.completed_at is null and new.completed_at is not null))
  execute function private.track_workflow_execution_deadline();

create table public.workflow_runs (
  id uuid not null default gen_random_uuid(),
  execution_id uuid not null,
  organization_id uuid not null,
  node_id text not null,
  node_type public.workflow_node_type not null,
  status public.workflow_run_status not null default 'queued',
  attempt integer not null default 0,
  max_attempts public.workflow_max_attempts not null default 3,
  run_at timestamptz not null default now(),
  locked_by text,
  locked_until timestamptz,
  lease_token uuid,
  input jsonb not null default '{}'::jsonb,
  output jsonb,
  error jsonb,
  started_at timestamptz,
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint workflow_runs_pkey primary key (id),
  constraint workflow_runs_execution_node_key unique (execution_id, node_id),
  constraint workflow_runs_execution_id_fkey foreign key (execution_id) references public.workflow_executions (id) on delete cascade,
  constraint workflow_runs_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint workflow_runs_attempts_range check (attempt between 0 and max_attempts),
  constraint workflow_runs_lease_when_running check ((status = 'running') = (lease_token is not null and locked_until is not null and locked_by is not null))
);
comment on table public.workflow_runs is 'The step queue: one row per node run of an execution. Workers claim due task and ai_agent runs with claim_workflow_runs() (for update skip locked, a lease); condition, approval and skipped runs are written by the engine itself.';
comment on column public.workflow_runs.run_at is 'When the run is next claimable: for a queued run, when it is due (later after a failed attempt: backoff); for a running run, when its lease expires.';
comment on column public.workflow_runs.lease_token is 'Fresh on every claim; complete_workflow_run() and fail_workflow_run() change nothing unless they present the current one.';
comment on column public.workflow_runs.input is '{"node": {"name", "type", "config"}, "context": {"input", "nodes": {"<id>": output}}} as it was when the run became due.';

create index workflow_runs_due_idx on public.workflow_runs (run_at) where status in ('queued', 'running');
create index workflow_runs_organization_id_idx on public.workflow_runs (organization_id);

-- Skipped where updated_at already is now() (the claim and completion set it themselves): the same result.
create trigger workflow_runs_set_updated_at before update on public.workflow_runs
  for each row when (new.updated_at is distinct from pg_catalog.now()) execute function private.set_updated_at();

alter table public.workflow_executions enable row level security;
alter table public.workflow_runs enable row level security;

-- Narrowed in 57-work-automations.sql (alter policy): executions and runs follow their workflow's project.
-- workflow_executions_select: members holding workflows.read see their organization's executions.
create policy workflow_executions_select on public.workflow_executions for select to authenticated
  using (organization_id in (select private.organizations_with_permission('workflows.read')));
-- workflow_runs_select: whoever reads the execution reads its runs.
create policy workflow_runs_select on public.workflow_runs for select to authenticated
  using (organization_id in (select private.organizations_with_permission('workflows.read')));

-- Written only through the RPCs below.
grant select on public.workflow_executions, public.workflow_runs to authenticated, service_role;

-- The execution context conditions and nodes see: {"input": ..., "nodes": {"<node id>": <output>, ...}}.
create function private.workflow_context(execution uuid) returns jsonb
language sql stable
set search_path = ''
as $$
  select jsonb_build_object(
    'input', (select e.input from public.workflow_executions e where e.id = execution),
    'nodes', coalesce((select jsonb_object_agg(r.node_id, coalesce(r.output, 'null'::jsonb))
                       from public.workflow_runs r where r.execution_id = execution and r.status = 'succeeded'), '{}'::jsonb))
$$;
comment on function private.workflow_context(uuid) is 'An execution''s context: its input and the outputs of its succeeded nodes by node id.';

-- Ends an execution that has not ended yet: its open runs and pending approvals are cancelled (a worker still
-- holding a lease then gets lease_lost).
create function private.finish_workflow_execution(execution uuid, final_status text, failure jsonb) returns void
language plpgsql
set search_path = ''
as $$
begin
  update public.workflow_executions e
  set status = final_status, error = failure
  where e.id = execution and e.status in ('queued', 'running', 'waiting');
  if not found then
    return;
  end if;
  update public.workflow_runs r
  set status = 'cancelled', locked_by = null, locked_until = null, lease_token = null,
      completed_at = pg_catalog.now()
  where r.execution_id = execution and r.status in ('queued', 'running', 'waiting');
  update public.approval_requests a
  set status = 'cancelled', decided_at = pg_catalog.now()
  where a.execution_id = execution and a.status = 'pending';
end;
$$;
comment on function private.finish_workflow_execution(uuid, text, jsonb) is 'Marks an unfinished execution failed, cancelled or timed_out with an error, cancelling its open runs and pending approvals. The caller holds the execution''s lock.';

-- After the graph has advanced: running while runs are queued or running, waiting while only approvals are open,
-- succeeded when nothing is left (with the outputs of its final nodes).
create function private.settle_workflow_execution(execution uuid, definition jsonb) returns void
language plpgsql
set search_path = ''
as $$
declare
  current_status text;
  active integer;
  running integer;
  waiting integer;
  next_status text;
begin
  select e.status, count(r.id) filter (where r.status in ('queued', 'running')), count(r.id) filter (where r.status = 'running'),
         count(r.id) filter (where r.status = 'waiting')
  into current_status, active, running, waiting
  from public.workflow_executions e
  left join public.workflow_runs r on r.execution_id = e.id and r.status in ('queued', 'running', 'waiting')
  where e.id = execution
  group by e.status;
  if current_status not in ('queued', 'running', 'waiting') then
    return;
  end if;
  next_status := case when active > 0 then case when current_status = 'queued' and running = 0 then 'queued' else 'running' end
                      when waiting > 0 then 'waiting'
                      else 'succeeded' end;
  if next_status = 'succeeded' then
    update public.workflow_executions e
    set status = 'succeeded',
        output = coalesce((
          select jsonb_object_agg(r.node_id, coalesce(r.output, 'null'::jsonb))
          from public.workflow_runs r
          where r.execution_id = execution and r.status = 'succeeded'
            and not exists (select 1 from jsonb_array_elements(definition -> 'edges') x where x ->> 'from' = r.node_id)), '{}'::jsonb)
    where e.id = execution;
  elsif next_status <> current_status then
    update public.workflow_executions e set status = next_status where e.id = execution;
  end if;
end;
$$;
comment on function private.settle_workflow_execution(uuid, jsonb) is 'Derives an unfinished execution''s status from its runs; succeeds it, with its final nodes'' outputs, when nothing is left.';

-- The engine: enqueue every node whose predecessors are all done. A node runs when at least one incoming edge was
-- taken (its source succeeded and, out of a condition, its `when` matches the result); otherwise it is skipped.
-- Only successors of what just changed can become due (at the start: the entry node); conditions are evaluated at
-- once and skipped nodes are marked, which makes their successors the next candidates; approvals open their request
-- and wait. Then the execution's status is settled.
create function private.advance_workflow_execution(execution uuid, changed text[] default null) returns void
language plpgsql
set search_path = ''
-- One generic plan per statement for the session: with the definition and the changed nodes as parameters, the plan
-- cache otherwise chose a custom plan for the node loop's query on every call (planning it cost about 0.15 ms, ten
-- times running it).
set plan_cache_mode = force_generic_plan
as $$
declare
  ex record;
  node jsonb;
  taken boolean;
  next_changed text[];
  context jsonb;
  result boolean;
  new_run uuid;
begin
  select e.status, e.organization_id, v.definition, w.max_attempts into ex
  from public.workflow_executions e
  join public.workflow_versions v on v.id = e.workflow_version_id
  join public.workflows w on w.id = e.workflow_id
  where e.id = execution;
  if ex.status is null or ex.status not in ('queued', 'running', 'waiting') then
    return;
  end if;
  -- Final nodes (no outgoing edges) make nothing due: settle at once.
  if changed is not null and not exists (select 1 from jsonb_array_elements(ex.definition -> 'edges') x where x ->> 'from' = any (changed)) then
    perform private.settle_workflow_execution(execution, ex.definition);
    return;
  end if;
  loop
    next_changed := array[]::text[];
    for node in
      select n.value from jsonb_array_elements(ex.definition -> 'nodes') n
      where case when changed is null
                 then not exists (select 1 from jsonb_array_elements(ex.definition -> 'edges') x where x.value ->> 'to' = n.value ->> 'id')
                 else exists (select 1 from jsonb_array_elements(ex.definition -> 'edges') x
                              where x.value ->> 'to' = n.value ->> 'id' and x.value ->> 'from' = any (changed)) end
        and not exists (select 1 from public.workflow_runs r where r.execution_id = execution and r.node_id = n.value ->> 'id')
        and not exists (
          select 1 from jsonb_array_elements(ex.definition -> 'edges') x
          where x.value ->> 'to' = n.value ->> 'id'
            and not exists (select 1 from public.workflow_runs r
                            where r.execution_id = execution and r.node_id = x.value ->> 'from' and r.status in ('succeeded', 'skipped')))
    loop
      select not exists (select 1 from jsonb_array_elements(ex.definition -> 'edges') x where x.value ->> 'to' = node ->> 'id')
          or exists (select 1 from jsonb_array_elements(ex.definition -> 'edges') x
                     join public.workflow_runs r on r.execution_id = execution and r.node_id = x.value ->> 'from'
                     where x.value ->> 'to' = node ->> 'id' and r.status = 'succeeded'
                       and (not x.value ? 'when' or x.value -> 'when' = r.output -> 'result'))
      into taken;
      if not taken then
        insert into public.workflow_runs (execution_id, organization_id, node_id, node_type, status, completed_at)
        values (execution, ex.organization_id, node ->> 'id', node ->> 'type', 'skipped', pg_catalog.now());
        next_changed := next_changed || (node ->> 'id');
        continue;
      end if;
      context := private.workflow_context(execution);
      case node ->> 'type'
        when 'condition' then
          result := coalesce(jsonb_path_match(context, (node -> 'config' ->> 'expression')::jsonpath, silent => true), false);
          insert into public.workflow_runs (execution_id, organization_id, node_id, node_type, status, attempt, max_attempts,
                                            input, output, started_at, completed_at)
          values (execution, ex.organization_id, node ->> 'id', 'condition', 'succeeded', 1, 1,
                  jsonb_build_object('node', node - 'id', 'context', context), jsonb_build_object('result', result),
                  pg_catalog.now(), pg_catalog.now());
          next_changed := next_changed || (node ->> 'id');
        when 'approval' then
          insert into public.workflow_runs (execution_id, organization_id, node_id, node_type, status, attempt, max_attempts,
                                            input, started_at)
          values (execution, ex.organization_id, node ->> 'id', 'approval', 'waiting', 1, 1,
                  jsonb_build_object('node', node - 'id', 'context', context), pg_catalog.now())
          returning id into new_run;
          perform private.open_approval_request(execution, new_run, node);
          if (select e.status from public.workflow_executions e where e.id = execution) not in ('queued', 'running', 'waiting') then
            return;
          end if;
        else
          insert into public.workflow_runs (execution_id, organization_id, node_id, node_type, status, max_attempts, input)
          values (execution, ex.organization_id, node ->> 'id', node ->> 'type', 'queued',
                  case when node ->> 'type' = 'ai_agent' and node -> 'config' ? 'max_retries'
                       then (node -> 'config' ->> 'max_retries')::integer + 1 else ex.max_attempts end,
                  jsonb_build_object('node', node - 'id', 'context', context));
      end case;
    end loop;
    exit when cardinality(next_changed) = 0;
    changed := next_changed;
  end loop;
  perform private.settle_workflow_execution(execution, ex.definition);
end;
$$;
comment on function private.advance_workflow_execution(uuid, text[]) is 'Advances an execution''s graph after the given nodes finished (null: at the start): enqueues due task/ai_agent nodes, evaluates conditions, opens approvals, marks skipped branches, settles the status. The caller holds the execution''s lock.';

create function private.start_workflow_execution(workflow uuid, input jsonb, idempotency_key text, trigger_type text,
                                                 triggered_by uuid, scheduled_for timestamptz default null)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  w record;
  execution uuid;
begin
  select x.id, x.organization_id, x.timeout, x.is_active, x.deleted_at, v.id as version_id into w
  from public.workflows x
  join public.workflow_versions v on v.workflow_id = x.id and v.version = x.current_version
  where x.id = workflow;
  if w.id is null then
    raise exception 'no workflow %', workflow using errcode = 'P0002';
  end if;
  if w.deleted_at is not null or not w.is_active then
    raise exception 'workflow % is % and cannot be started', workflow, case when w.deleted_at is not null then 'deleted' else 'inactive' end
      using errcode = '55000', hint = 'Activate the workflow (is_active = true) first.';
  end if;
  if jsonb_typeof(input) is distinct from 'object' then
    raise exception 'a workflow''s input must be a JSON object' using errcode = '22023';
  end if;
  insert into public.workflow_executions (workflow_id, workflow_version_id, organization_id, input, trigger_type,
                                          triggered_by, correlation_id, idempotency_key, scheduled_for, deadline)
  values (workflow, w.version_id, w.organization_id, input, trigger_type, triggered_by,
          coalesce(private.request_correlation_id(), gen_random_uuid()::text), idempotency_key, scheduled_for,
          pg_catalog.now() + w.timeout)
  on conflict do nothing
  returning id into execution;
  if execution is null then
    select e.id into execution from public.workflow_executions e
    where e.workflow_id = workflow
      and (e.idempotency_key = start_workflow_execution.idempotency_key or e.scheduled_for = start_workflow_execution.scheduled_for);
    return execution;
  end if;
  perform private.advance_workflow_execution(execution);
  return execution;
end;
$$;
comment on function private.start_workflow_execution(uuid, jsonb, text, text, uuid, timestamptz) is 'Creates an execution of the workflow''s current version and enqueues its entry node; a repeated idempotency key or schedule occurrence returns the existing execution.';

create function public.start_workflow(workflow_id uuid, input jsonb default '{}', idempotency_key text default null)
returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  caller uuid := (select auth.uid());
  organization uuid;
  workflow_trigger text;
  project uuid;
begin
  select w.organization_id, w.trigger_type, w.project_id into organization, workflow_trigger, project
  from public.workflows w where w.id = start_workflow.workflow_id;
  -- A project's workflow (project_id, 57-work-automations.sql) runs only for those who read the project.
  if caller is not null and (organization is null or not private.has_permission(organization, 'workflows.execute')
                             or (project is not null and not private.can_read_project(project))) then
    raise exception 'workflow % does not exist or you may not run it', start_workflow.workflow_id
      using errcode = '42501', hint = 'Running a workflow needs workflows.execute in its organization.';
  end if;
  return private.start_workflow_execution(start_workflow.workflow_id, coalesce(start_workflow.input, '{}'::jsonb),
    start_workflow.idempotency_key, case when caller is null then coalesce(workflow_trigger, 'manual') else 'manual' end, caller);
end;
$$;
comment on function public.start_workflow(uuid, jsonb, text) is 'Starts a workflow (members with workflows.execute: trigger manual; the service role for any: the workflow''s trigger type, triggered_by null). Returns the execution id; the same idempotency key returns the same execution. Inactive or deleted workflow: 55000.';

create function public.claim_workflow_runs(worker_id text, max_runs integer default 10, lease interval default interval '5 minutes')
returns setof public.workflow_runs
language plpgsql security definer
set search_path = ''
-- One generic plan, kept for the session: the claim's plan does not depend on the arguments (ids are matched as
-- arrays, so the LIMIT's size does not change the plan's shape), and planning it anew per call cost as much as
-- running it.
set plan_cache_mode = force_generic_plan
as $$
begin
  if worker_id is null or char_length(worker_id) not between 1 and 200 or max_runs is null or max_runs not between 1 and 1000
     or lease is null or lease <= interval '0' or lease > interval '1 day' then
    raise exception 'claim_workflow_runs needs a worker id (1-200 chars), 1-1000 runs and a lease of up to a day'
      using errcode = '22023';
  end if;
  return query
  with due as (
    select r.id from public.workflow_runs r
    where r.status in ('queued', 'running') and r.run_at <= pg_catalog.now() and r.attempt < r.max_attempts
    order by r.run_at
    limit max_runs
    for update skip locked
  ), claimed as (
    update public.workflow_runs r
    set status = 'running', attempt = r.attempt + 1, locked_by = worker_id, locked_until = pg_catalog.now() + lease,
        run_at = pg_catalog.now() + lease, lease_token = gen_random_uuid(), started_at = coalesce(r.started_at, pg_catalog.now()),
        updated_at = pg_catalog.now()
    where r.id = any (array(select due.id from due))
    returning r.*
  ), started as (
    update public.workflow_executions e set status = 'running', updated_at = pg_catalog.now()
    where e.id = any (array(select x.id from public.workflow_executions x
                            where x.id = any (array(select c.execution_id from claimed c)) and x.status = 'queued'
                            for update skip locked))
  )
  select * from claimed;
end;
$$;
comment on function public.claim_workflow_runs(text, integer, interval) is 'Service role only: claims up to max_runs due runs (queued and due, or running with an expired lease) in one UPDATE ... RETURNING with for update skip locked; each gets a fresh lease_token and locked_until = now() + lease.';

create function public.complete_workflow_run(run_id uuid, lease_token uuid, output jsonb)
returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  execution uuid;
  node text;
  result jsonb := coalesce(complete_workflow_run.output, '{}'::jsonb);
begin
  -- The queue's hot path, a graph of one node and no edges: this run is the execution's only one, so completing it
  -- succeeds the execution with {"<node>": output}, which is what advance_workflow_execution() and
  -- settle_workflow_execution() would derive. The execution's UPDATE takes its lock (the lock order: the execution
  -- before its run) and needs no separate locking statement; it happens only while the run holds the presented,
  -- unexpired lease, and the run's UPDATE then checks that lease again on the run's newest version. The one way they
  -- can disagree is a lease that ended during this very call and was claimed again by another worker (a claim does not
  -- lock the execution): then the execution must not keep this completion, and the whole call fails with 40001 (retry:
  -- the retry answers lease_lost).
  with run as (
    select r.execution_id, r.node_id from public.workflow_runs r
    where r.id = complete_workflow_run.run_id and r.lease_token = complete_workflow_run.lease_token
      and r.status = 'running' and r.locked_until >= pg_catalog.now()
  )
  update public.workflow_executions e
  set status = 'succeeded', output = jsonb_build_object(run.node_id, result), completed_at = pg_catalog.now(),
      updated_at = pg_catalog.now()
  from run, public.workflow_versions v
  where e.id = run.execution_id and v.id = e.workflow_version_id and e.status in ('queued', 'running', 'waiting')
    and jsonb_array_length(v.definition -> 'edges') = 0 and jsonb_array_length(v.definition -> 'nodes') = 1
  returning run.node_id into node;
  if node is not null then
    update public.workflow_runs r
    set status = 'succeeded', output = result, error = null,
        locked_by = null, locked_until = null, lease_token = null, completed_at = pg_catalog.now(), updated_at = pg_catalog.now()
    where r.id = complete_workflow_run.run_id and r.lease_token = complete_workflow_run.lease_token
      and r.status = 'running' and r.locked_until >= pg_catalog.now();
    if not found then
      raise exception 'the lease of workflow run % ended while it was being completed', complete_workflow_run.run_id
        using errcode = '40001', hint = 'Retry the call: it then answers lease_lost, and the run''s new holder completes it.';
    end if;
    return 'completed';
  end if;
  -- Every other graph. One statement: the execution's lock (taken first: the run's row is locked only by the UPDATE,
  -- which needs the locked execution's row to join) and the run's update. The run's conditions are
  -- checked against its newest version (READ COMMITTED re-checks a row changed meanwhile), as a later statement would.
  with ex as materialized (
    select e.id
    from public.workflow_executions e
    where e.id = (select r.execution_id from public.workflow_runs r where r.id = complete_workflow_run.run_id)
    for update of e
  )
  update public.workflow_runs r
  set status = 'succeeded', output = result, error = null,
      locked_by = null, locked_until = null, lease_token = null, completed_at = pg_catalog.now(), updated_at = pg_catalog.now()
  from ex
  where r.id = complete_workflow_run.run_id and r.execution_id = ex.id and r.lease_token = complete_workflow_run.lease_token
    and r.status = 'running' and r.locked_until >= pg_catalog.now()
  returning r.node_id, ex.id into node, execution;
  if node is null then
    if not exists (select 1 from public.workflow_runs r where r.id = complete_workflow_run.run_id) then
      raise exception 'no workflow run %', complete_workflow_run.run_id using errcode = 'P0002';
    end if;
    return 'lease_lost';
  end if;
  -- (A single-node graph gets here only when its execution had finished meanwhile: advancing then changes nothing.)
  perform private.advance_workflow_execution(execution, array[node]);
  return 'completed';
end;
$$;
comment on function public.complete_workflow_run(uuid, uuid, jsonb) is 'Service role only: records a run''s output and advances the graph. Returns completed, or lease_lost (changing nothing) when the token is not the current one or the lease has expired; 40001 (retry) when the lease ended during the call itself.';

create function public.fail_workflow_run(run_id uuid, lease_token uuid, error jsonb, retryable boolean default true)
returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  execution uuid;
  run record;
  delay interval;
begin
  select r.execution_id into execution from public.workflow_runs r where r.id = fail_workflow_run.run_id;
  if execution is null then
    raise exception 'no workflow run %', fail_workflow_run.run_id using errcode = 'P0002';
  end if;
  perform 1 from public.workflow_executions e where e.id = execution for update;
  select r.attempt, r.max_attempts, r.node_id, w.retry_delay into run
  from public.workflow_runs r
  join public.workflow_executions e on e.id = r.execution_id
  join public.workflows w on w.id = e.workflow_id
  where r.id = fail_workflow_run.run_id and r.lease_token = fail_workflow_run.lease_token
    and r.status = 'running' and r.locked_until >= pg_catalog.now();
  if run.node_id is null then
    return 'lease_lost';
  end if;
  if coalesce(retryable, true) and run.attempt < run.max_attempts then
    -- Exponential backoff (retry_delay * 2^(attempt - 1), at most an hour) with equal jitter: half fixed, half random.
    delay := least(run.retry_delay * power(2, run.attempt - 1), interval '1 hour');
    delay := delay * (0.5 + random() * 0.5);
    update public.workflow_runs r
    set status = 'queued', error = fail_workflow_run.error, run_at = pg_catalog.now() + delay,
        locked_by = null, locked_until = null, lease_token = null
    where r.id = fail_workflow_run.run_id;
    return 'retrying';
  end if;
  update public.workflow_runs r
  set status = 'failed', error = fail_workflow_run.error, locked_by = null, locked_until = null, lease_token = null,
      completed_at = pg_catalog.now()
  where r.id = fail_workflow_run.run_id;
  perform private.finish_workflow_execution(execution, 'failed',
    jsonb_build_object('code', 'node_failed', 'node_id', run.node_id, 'attempts', run.attempt, 'error', fail_workflow_run.error));
  return 'failed';
end;
$$;
comment on function public.fail_workflow_run(uuid, uuid, jsonb, boolean) is 'Service role only: records a failed attempt. retrying (queued again after exponential backoff with jitter) while attempts remain and the error is retryable, else failed (and the execution fails); lease_lost changes nothing.';

create function public.cancel_workflow_execution(execution_id uuid, reason text)
returns public.workflow_executions
language plpgsql security definer
set search_path = ''
as $$
declare
  caller uuid := (select auth.uid());
  ex public.workflow_executions;
begin
  select * into ex from public.workflow_executions e where e.id = cancel_workflow_execution.execution_id for update;
  if ex.id is null or (caller is not null and (not private.has_permission(ex.organization_id, 'workflows.execute')
                                               or not private.can_read_workflow_project(ex.workflow_id))) then
    raise exception 'execution % does not exist or you may not cancel it', cancel_workflow_execution.execution_id
      using errcode = '42501', hint = 'Cancelling needs workflows.execute in the execution''s organization.';
  end if;
  if ex.status not in ('queued', 'running', 'waiting') then
    raise exception 'execution % has already finished (%)', ex.id, ex.status using errcode = '55000';
  end if;
  perform private.finish_workflow_execution(ex.id, 'cancelled',
    jsonb_build_object('code', 'cancelled', 'reason', left(reason, 1000), 'cancelled_by', caller));
  select * into ex from public.workflow_executions e where e.id = ex.id;
  return ex;
end;
$$;
comment on function public.cancel_workflow_execution(uuid, text) is 'Cancels an unfinished execution (members with workflows.execute, or the service role): open runs and pending approvals are cancelled; 55000 once finished.';

-- pg_cron (90-scheduled-jobs.sql): executions past their deadline, and runs whose last lease expired.
create function private.expire_workflow_executions() returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  ex record;
  expired integer := 0;
begin
  for ex in
    select e.id from private.workflow_execution_deadlines d
    join public.workflow_executions e on e.id = d.execution_id
    where d.deadline < pg_catalog.now() and e.completed_at is null and e.deadline < pg_catalog.now()
    order by d.deadline
    for update of e skip locked
  loop
    perform private.finish_workflow_execution(ex.id, 'timed_out', jsonb_build_object('code', 'deadline_exceeded'));
    expired := expired + 1;
  end loop;
  for ex in
    select e.id, r.id as run_id, r.node_id, r.attempt from public.workflow_runs r
    join public.workflow_executions e on e.id = r.execution_id
    where r.status = 'running' and r.run_at < pg_catalog.now() and r.attempt >= r.max_attempts
    for update of e skip locked
  loop
    update public.workflow_runs r
    set status = 'failed', error = jsonb_build_object('code', 'lease_expired'), locked_by = null, locked_until = null,
        lease_token = null, completed_at = pg_catalog.now()
    where r.id = ex.run_id;
    perform private.finish_workflow_execution(ex.id, 'failed',
      jsonb_build_object('code', 'node_failed', 'node_id', ex.node_id, 'attempts', ex.attempt, 'error', jsonb_build_object('code', 'lease_expired')));
  end loop;
  return expired;
end;
$$;
comment on function private.expire_workflow_executions() is 'pg_cron: marks executions past their deadline timed_out, and fails runs whose last allowed attempt''s lease expired. Returns how many executions timed out.';

create function private.start_scheduled_workflows(at timestamptz default pg_catalog.now()) returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  w record;
  occurrence timestamptz;
  started integer := 0;
begin
  -- The current minute and the one before, so that a tick that runs late still starts its occurrence; the unique
  -- (workflow_id, scheduled_for) makes a second tick (or a second scheduler) start nothing.
  for w in
    select x.id, x.trigger_config ->> 'cron' as cron from public.workflows x
    where x.trigger_type = 'scheduled' and x.is_active and x.deleted_at is null
  loop
    for occurrence in select pg_catalog.date_trunc('minute', at) - m * interval '1 minute' from generate_series(1, 0, -1) m loop
      if private.cron_matches(w.cron, occurrence)
         and not exists (select 1 from public.workflow_executions e where e.workflow_id = w.id and e.scheduled_for = occurrence) then
        -- One workflow that cannot start (say, its organization was just deleted) must not stop the others.
        begin
          perform private.start_workflow_execution(w.id, jsonb_build_object('scheduled_for', occurrence), null, 'scheduled', null, occurrence);
          started := started + 1;
        exception when others then
          raise warning 'scheduled workflow % did not start for %: % (%)', w.id, occurrence, sqlerrm, sqlstate;
        end;
      end if;
    end loop;
  end loop;
  return started;
end;
$$;
comment on function private.start_scheduled_workflows(timestamptz) is 'pg_cron, every minute: starts each active scheduled workflow whose cron expression (UTC) matches this minute or the previous one, each occurrence at most once.';

revoke execute on function public.claim_workflow_runs(text, integer, interval), public.complete_workflow_run(uuid, uuid, jsonb),
  public.fail_workflow_run(uuid, uuid, jsonb, boolean) from public, anon, authenticated;
grant execute on function public.claim_workflow_runs(text, integer, interval), public.complete_workflow_run(uuid, uuid, jsonb),
  public.fail_workflow_run(uuid, uuid, jsonb, boolean) to service_role;
grant execute on function public.start_workflow(uuid, jsonb, text), public.cancel_workflow_execution(uuid, text)
  to authenticated, service_role;


-- =====================================================================================================================
-- source: supabase/schemas/47-workflows-approvals.sql
-- =====================================================================================================================
-- Workflows: approvals (approval_requests, approval_request_approvers, approval_decisions) and decide_approval().
-- Quorum rules decided in the deciding statement, form data checked against a JSON Schema subset, escalation, expiry.

-- An approval node opens its request as soon as it becomes due; its approvers are resolved then (user ids, a role
-- key, a permission; only members who hold approvals.decide; never the requester unless the node allows
-- self-approval) and by escalation. Decisions are append-only, one per approver. The request closes in the statement
-- of the deciding vote, which resumes (approved) or fails (rejected) the execution.

-- A small JSON Schema validator for approval forms. Supported keywords, and only these (the definition validator
-- refuses others): type (string, number, integer, boolean, object, array, null), required, properties, enum,
-- minimum, maximum, minLength, maxLength; title and description are ignored. Returns one message per violation.
create function private.json_schema_errors(schema jsonb, instance jsonb, path text default '$') returns text[]
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  errors text[] := array[]::text[];
  actual text := jsonb_typeof(instance);
  expected text := schema ->> 'type';
  property record;
  missing text;
begin
  if expected is not null and not (actual = expected
      or (expected = 'integer' and actual = 'number' and (instance #>> '{}')::numeric % 1 = 0)) then
    return array[pg_catalog.format('%s: expected %s, got %s', path, expected, actual)];
  end if;
  if schema ? 'enum' and not exists (select 1 from jsonb_array_elements(schema -> 'enum') e where e.value = instance) then
    errors := errors || pg_catalog.format('%s: must be one of %s', path, schema -> 'enum');
  end if;
  if actual = 'number' then
    if schema ? 'minimum' and (instance #>> '{}')::numeric < (schema ->> 'minimum')::numeric then
      errors := errors || pg_catalog.format('%s: must be at least %s', path, schema ->> 'minimum');
    end if;
    if schema ? 'maximum' and (instance #>> '{}')::numeric > (schema ->> 'maximum')::numeric then
      errors := errors || pg_catalog.format('%s: must be at most %s', path, schema ->> 'maximum');
    end if;
  elsif actual = 'string' then
    if schema ? 'minLength' and char_length(instance #>> '{}') < (schema ->> 'minLength')::integer then
      errors := errors || pg_catalog.format('%s: must be at least %s characters', path, schema ->> 'minLength');
    end if;
    if schema ? 'maxLength' and char_length(instance #>> '{}') > (schema ->> 'maxLength')::integer then
      errors := errors || pg_catalog.format('%s: must be at most %s characters', path, schema ->> 'maxLength');
    end if;
  elsif actual = 'object' then
    for missing in select r from jsonb_array_elements_text(coalesce(schema -> 'required', '[]'::jsonb)) r where not instance ? r loop
      errors := errors || pg_catalog.format('%s.%s: is required', path, missing);
    end loop;
    for property in select p.key, p.value from jsonb_each(coalesce(schema -> 'properties', '{}'::jsonb)) p where instance ? p.key loop
      errors := errors || private.json_schema_errors(property.value, instance -> property.key, path || '.' || property.key);
    end loop;
  end if;
  return errors;
end;
$$;
comment on function private.json_schema_errors(jsonb, jsonb, text) is 'Violations of a JSON Schema subset (type, required, properties, enum, minimum, maximum, minLength, maxLength) by a value; empty when it conforms.';

create table public.approval_requests (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  execution_id uuid not null,
  workflow_run_id uuid not null,
  node_id text not null,
  title text not null,
  description text,
  form_schema jsonb,
  approval_type text not null,
  required_approvals integer,
  status text not null default 'pending',
  requested_by uuid,
  allow_self_approval boolean not null default false,
  expires_at timestamptz,
  escalate_after timestamptz,
  escalate_to jsonb,
  escalated_at timestamptz,
  on_timeout text not null default 'reject',
  decided_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint approval_requests_pkey primary key (id),
  constraint approval_requests_execution_node_key unique (execution_id, node_id),
  constraint approval_requests_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint approval_requests_execution_id_fkey foreign key (execution_id) references public.workflow_executions (id) on delete cascade,
  constraint approval_requests_workflow_run_id_fkey foreign key (workflow_run_id) references public.workflow_runs (id) on delete cascade,
  constraint approval_requests_requested_by_fkey foreign key (requested_by) references auth.users (id) on delete set null,
  constraint approval_requests_type_known check (approval_type in ('single', 'multiple', 'unanimous', 'majority')),
  constraint approval_requests_required_for_multiple check ((approval_type = 'multiple') = (required_approvals is not null) and coalesce(required_approvals, 1) >= 1),
  constraint approval_requests_status_known check (status in ('pending', 'approved', 'rejected', 'expired', 'cancelled')),
  constraint approval_requests_on_timeout_known check (on_timeout in ('reject', 'approve', 'fail')),
  constraint approval_requests_decided_when_closed check ((decided_at is not null) = (status <> 'pending'))
);
comment on table public.approval_requests is 'An approval node''s request, opened when the node becomes due; closed by the deciding vote (decide_approval), by expiry (the node''s on_timeout) or by the end of its execution.';
comment on column public.approval_requests.requested_by is 'The execution''s triggered_by: never an approver of the request unless allow_self_approval.';
comment on column public.approval_requests.escalate_to is 'Approver spec ({"user_ids", "role", "permission"}) added once past escalate_after.';
comment on column public.approval_requests.on_timeout is 'What expiry does to the execution: approve (resumes it), reject or fail (fails it with approval_rejected or approval_expired). The request itself becomes expired.';

create index approval_requests_organization_id_idx on public.approval_requests (organization_id, created_at desc);
create index approval_requests_workflow_run_id_idx on public.approval_requests (workflow_run_id);
create index approval_requests_requested_by_idx on public.approval_requests (requested_by);
create index approval_requests_pending_expiry_idx on public.approval_requests (expires_at) where status = 'pending';
create index approval_requests_pending_escalation_idx on public.approval_requests (escalate_after)
  where status = 'pending' and escalated_at is null;

create trigger approval_requests_set_updated_at before update on public.approval_requests
  for each row execute function private.set_updated_at();
create trigger approval_requests_audit after insert or update or delete on public.approval_requests
  for each row execute function private.audit_row_change();

create table public.approval_request_approvers (
  id uuid not null default gen_random_uuid(),
  approval_request_id uuid not null,
  organization_id uuid not null,
  user_id uuid not null,
  source text not null,
  created_at timestamptz not null default now(),
  constraint approval_request_approvers_pkey primary key (id),
  constraint approval_request_approvers_request_user_key unique (approval_request_id, user_id),
  constraint approval_request_approvers_approval_request_id_fkey foreign key (approval_request_id) references public.approval_requests (id) on delete cascade,
  constraint approval_request_approvers_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint approval_request_approvers_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint approval_request_approvers_source_known check (source in ('user_ids', 'role', 'permission', 'escalation'))
);
comment on table public.approval_request_approvers is 'Who may decide a request: resolved from the node config when it opened (source user_ids, role or permission) and added by escalation.';

create index approval_request_approvers_organization_id_idx on public.approval_request_approvers (organization_id);
create index approval_request_approvers_user_id_idx on public.approval_request_approvers (user_id);

create trigger approval_request_approvers_audit after insert or update or delete on public.approval_request_approvers
  for each row execute function private.audit_row_change();

create table public.approval_decisions (
  id uuid not null default gen_random_uuid(),
  approval_request_id uuid not null,
  organization_id uuid not null,
  approver_id uuid,
  decision text not null,
  comment text,
  form_data jsonb,
  created_at timestamptz not null default now(),
  constraint approval_decisions_pkey primary key (id),
  constraint approval_decisions_one_per_approver unique (approval_request_id, approver_id),
  constraint approval_decisions_approval_request_id_fkey foreign key (approval_request_id) references public.approval_requests (id) on delete cascade,
  constraint approval_decisions_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint approval_decisions_approver_id_fkey foreign key (approver_id) references auth.users (id) on delete set null,
  constraint approval_decisions_decision_known check (decision in ('approve', 'reject')),
  constraint approval_decisions_comment_length check (comment is null or char_length(comment) <= 4000)
);
comment on table public.approval_decisions is 'Append-only: one decision per approver of a request, with comment and form data (validated against the request''s form schema). Written by decide_approval() only.';
comment on column public.approval_decisions.approver_id is 'Set to null when the user is erased (the only change a decision ever sees).';

create index approval_decisions_organization_id_idx on public.approval_decisions (organization_id);
create index approval_decisions_approver_id_idx on public.approval_decisions (approver_id);

create function private.approval_decisions_append_only() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.approver_id is null and (to_jsonb(new) - 'approver_id') = (to_jsonb(old) - 'approver_id') then
    return new;
  end if;
  raise exception 'approval decisions are never changed' using errcode = '42501';
end;
$$;
comment on function private.approval_decisions_append_only() is 'BEFORE UPDATE on approval_decisions: refuses every change except the erasure of the approver (approver_id set null).';

create trigger approval_decisions_append_only before update on public.approval_decisions
  for each row execute function private.approval_decisions_append_only();
create trigger approval_decisions_audit after insert or update or delete on public.approval_decisions
  for each row execute function private.audit_row_change();

-- Requests the caller is an approver of (security definer: policies of the three tables use it without recursing).
create function private.my_approval_request_ids() returns setof uuid
language sql stable security definer
set search_path = ''
as $$
  select a.approval_request_id from public.approval_request_approvers a where a.user_id = (select auth.uid())
$$;
comment on function private.my_approval_request_ids() is 'Approval requests the caller may decide (or could, while open).';

alter table public.approval_requests enable row level security;
alter table public.approval_request_approvers enable row level security;
alter table public.approval_decisions enable row level security;

-- Narrowed in 57-work-automations.sql (alter policy): for workflows.read holders, only requests of executions they
-- see (a project's workflow: its readers); the request's approvers always see what they are asked to decide.
-- approval_requests_select: workflows.read holders of the organization, and the request's approvers.
create policy approval_requests_select on public.approval_requests for select to authenticated
  using (organization_id in (select private.organizations_with_permission('workflows.read'))
         or id in (select private.my_approval_request_ids()));
-- approval_request_approvers_select: whoever sees the request sees its approvers.
create policy approval_request_approvers_select on public.approval_request_approvers for select to authenticated
  using (organization_id in (select private.organizations_with_permission('workflows.read'))
         or approval_request_id in (select private.my_approval_request_ids()));
-- approval_decisions_select: whoever sees the request sees its decisions.
create policy approval_decisions_select on public.approval_decisions for select to authenticated
  using (organization_id in (select private.organizations_with_permission('workflows.read'))
         or approval_request_id in (select private.my_approval_request_ids()));

grant select on public.approval_requests, public.approval_request_approvers, public.approval_decisions
  to authenticated, service_role;
grant execute on function private.my_approval_request_ids() to authenticated, service_role;

-- Members named by an approver spec who hold approvals.decide, each once (the first source that names them).
create function private.resolve_approvers(organization uuid, spec jsonb)
returns table (user_id uuid, source text)
language sql stable
set search_path = ''
as $$
  select distinct on (c.user_id) c.user_id, c.source
  from (
    select m.user_id, 'user_ids' as source, 1 as priority
    from public.organization_members m
    where m.organization_id = organization
      and m.user_id::text in (select jsonb_array_elements_text(coalesce(spec -> 'user_ids', '[]'::jsonb)))
    union all
    select m.user_id, 'role', 2
    from public.organization_members m
    join public.roles r on r.id = m.role_id
    where m.organization_id = organization and r.key = spec ->> 'role'
    union all
    select m.user_id, 'permission', 3
    from public.organization_members m
    join public.role_permissions rp on rp.role_id = m.role_id
    where m.organization_id = organization and rp.permission_key = spec ->> 'permission'
  ) c
  join public.organization_members m on m.organization_id = organization and m.user_id = c.user_id
  join public.role_permissions d on d.role_id = m.role_id and d.permission_key = 'approvals.decide'
  order by c.user_id, c.priority
$$;
comment on function private.resolve_approvers(uuid, jsonb) is 'Members of the organization named by {"user_ids", "role", "permission"} who hold approvals.decide.';

-- The quorum: approved, rejected, or null while undecided, from n approvers, a approvals and r rejections.
create function private.approval_outcome(approval_type text, required integer, n integer, a integer, r integer) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select case
    when n = 0 then 'rejected'
    when approval_type = 'single' then case when a >= 1 then 'approved' when r >= 1 then 'rejected' end
    when approval_type = 'multiple' then case when a >= required then 'approved' when n - r < required then 'rejected' end
    when approval_type = 'unanimous' then case when r >= 1 then 'rejected' when a = n then 'approved' end
    when approval_type = 'majority' then case when 2 * a > n then 'approved' when 2 * (n - r) <= n then 'rejected' end
  end
$$;
comment on function private.approval_outcome(text, integer, integer, integer, integer) is 'Quorum: single (first decision), multiple (approved at N approvals, rejected once N is out of reach), unanimous (any rejection rejects), majority (more than half approve; rejected once half cannot be exceeded). No approvers: rejected.';

-- Closes a pending request and resumes (approve) or fails (reject, fail) its execution. The caller holds the
-- execution's lock.
create function private.close_approval_request(request uuid, closed_status text, resolution text) returns void
language plpgsql
set search_path = ''
as $$
declare
  req public.approval_requests;
begin
  update public.approval_requests a set status = closed_status, decided_at = pg_catalog.now()
  where a.id = request and a.status = 'pending'
  returning * into req;
  if req.id is null then
    return;
  end if;
  if resolution = 'approve' then
    update public.workflow_runs r
    set status = 'succeeded', completed_at = pg_catalog.now(),
        output = jsonb_build_object(
          'approved', true, 'status', closed_status, 'request_id', req.id,
          'decisions', coalesce((select jsonb_agg(jsonb_build_object('approver_id', d.approver_id, 'decision', d.decision,
                                                                     'comment', d.comment, 'form_data', d.form_data) order by d.created_at)
                                 from public.approval_decisions d where d.approval_request_id = req.id), '[]'::jsonb))
    where r.id = req.workflow_run_id and r.status = 'waiting';
    perform private.advance_workflow_execution(req.execution_id, array[req.node_id]);
  else
    update public.workflow_runs r
    set status = 'failed', completed_at = pg_catalog.now(),
        error = jsonb_build_object('code', case when resolution = 'fail' then 'approval_expired' else 'approval_rejected' end,
                                   'status', closed_status, 'request_id', req.id)
    where r.id = req.workflow_run_id and r.status = 'waiting';
    perform private.finish_workflow_execution(req.execution_id, 'failed',
      jsonb_build_object('code', case when resolution = 'fail' then 'approval_expired' else 'approval_rejected' end,
                         'node_id', req.node_id, 'request_id', req.id, 'status', closed_status));
  end if;
end;
$$;
comment on function private.close_approval_request(uuid, text, text) is 'Closes a pending request (approved, rejected or expired) and resumes (approve) or fails (reject, fail) its execution.';

-- Called by the engine when an approval node becomes due.
create function private.open_approval_request(execution uuid, run uuid, node jsonb) returns uuid
language plpgsql
set search_path = ''
as $$
declare
  cfg jsonb := node -> 'config';
  ex record;
  request uuid;
  approvers integer;
begin
  select e.organization_id, e.triggered_by into ex from public.workflow_executions e where e.id = execution;
  insert into public.approval_requests (organization_id, execution_id, workflow_run_id, node_id, title, description,
                                        form_schema, approval_type, required_approvals, requested_by, allow_self_approval,
                                        expires_at, escalate_after, escalate_to, on_timeout)
  values (ex.organization_id, execution, run, node ->> 'id', coalesce(cfg ->> 'title', node ->> 'name'), cfg ->> 'description',
          cfg -> 'form_schema', cfg ->> 'approval_type', (cfg ->> 'required_approvals')::integer, ex.triggered_by,
          coalesce((cfg ->> 'allow_self_approval')::boolean, false),
          pg_catalog.now() + (cfg ->> 'expires_in')::interval, pg_catalog.now() + (cfg ->> 'escalate_after')::interval,
          cfg -> 'escalate_to', coalesce(cfg ->> 'on_timeout', 'reject'))
  returning id into request;
  insert into public.approval_request_approvers (approval_request_id, organization_id, user_id, source)
  select request, ex.organization_id, a.user_id, a.source
  from private.resolve_approvers(ex.organization_id, cfg -> 'approvers') a
  where coalesce((cfg ->> 'allow_self_approval')::boolean, false) or a.user_id is distinct from ex.triggered_by;
  get diagnostics approvers = row_count;
  -- A quorum out of reach from the start (no approvers, or fewer than a multiple request needs) with no escalation
  -- to widen it can never be approved: reject at once rather than wait for expiry.
  if cfg -> 'escalate_to' is null
     and private.approval_outcome(cfg ->> 'approval_type', (cfg ->> 'required_approvals')::integer, approvers, 0, 0) = 'rejected' then
    perform private.close_approval_request(request, 'rejected', 'reject');
  end if;
  return request;
end;
$$;
comment on function private.open_approval_request(uuid, uuid, jsonb) is 'Opens an approval node''s request and resolves its approvers (never the requester unless self-approval is allowed); rejects at once when the quorum can never be reached.';

create function public.decide_approval(request_id uuid, decision text, comment text default null, form_data jsonb default null)
returns public.approval_requests
language plpgsql security definer
set search_path = ''
as $$
declare
  caller uuid := (select auth.uid());
  execution uuid;
  req public.approval_requests;
  problems text[];
  n integer;
  a integer;
  r integer;
  outcome text;
begin
  if decide_approval.decision is null or decide_approval.decision not in ('approve', 'reject') then
    raise exception 'decision must be approve or reject, not %', coalesce(decide_approval.decision, 'null') using errcode = '22023';
  end if;
  select x.execution_id into execution from public.approval_requests x
  where x.id = decide_approval.request_id and x.organization_id in (select private.user_organization_ids());
  if caller is null or execution is null then
    raise exception 'approval request % does not exist or you may not decide it', decide_approval.request_id
      using errcode = '42501';
  end if;
  -- The execution, then the request: every writer of either locks in this order, and the second of two approvers
  -- deciding at the same moment reads the first one's vote (and a closed request) once it gets the lock.
  perform 1 from public.workflow_executions e where e.id = execution for update;
  select * into req from public.approval_requests x where x.id = decide_approval.request_id for update;
  if caller = req.requested_by and not req.allow_self_approval then
    raise exception 'you requested this approval and cannot decide it yourself' using errcode = '42501';
  end if;
  if req.status <> 'pending' or req.expires_at <= pg_catalog.now() then
    raise exception 'approval request % is % and takes no more decisions', req.id,
      case when req.status = 'pending' then 'past its expiry' else req.status end
      using errcode = '55000';
  end if;
  if not exists (select 1 from public.approval_request_approvers x where x.approval_request_id = req.id and x.user_id = caller)
     or not private.has_permission(req.organization_id, 'approvals.decide') then
    raise exception 'you are not an approver of request %', req.id
      using errcode = '42501', hint = 'Approvers are resolved from the node''s config and need approvals.decide.';
  end if;
  if exists (select 1 from public.approval_decisions d where d.approval_request_id = req.id and d.approver_id = caller) then
    raise exception 'you have already decided request %', req.id using errcode = '23505';
  end if;
  if decide_approval.form_data is not null and jsonb_typeof(decide_approval.form_data) <> 'object' then
    raise exception 'form_data must be a JSON object' using errcode = '22023';
  end if;
  if req.form_schema is not null and (decide_approval.decision = 'approve' or decide_approval.form_data is not null) then
    problems := private.json_schema_errors(req.form_schema, coalesce(decide_approval.form_data, '{}'::jsonb));
    if cardinality(problems) > 0 then
      raise exception 'form data does not match the request''s form: %', pg_catalog.array_to_string(problems, '; ')
        using errcode = '22023', detail = pg_catalog.to_jsonb(problems)::text;
    end if;
  end if;
  insert into public.approval_decisions (approval_request_id, organization_id, approver_id, decision, comment, form_data)
  values (req.id, req.organization_id, caller, decide_approval.decision, decide_approval.comment, decide_approval.form_data);

  select (select count(*) from public.approval_request_approvers x where x.approval_request_id = req.id),
         count(*) filter (where d.decision = 'approve'), count(*) filter (where d.decision = 'reject')
  into n, a, r
  from public.approval_decisions d where d.approval_request_id = req.id;
  outcome := private.approval_outcome(req.approval_type, req.required_approvals, n, a, r);
  if outcome is not null then
    perform private.close_approval_request(req.id, outcome, case when outcome = 'approved' then 'approve' else 'reject' end);
  end if;
  select * into req from public.approval_requests x where x.id = req.id;
  return req;
end;
$$;
comment on function public.decide_approval(uuid, text, text, jsonb) is 'An approver''s decision (approve or reject) on a pending request; the quorum is decided in the same statement and closing the request resumes or fails the execution. 42501 not an approver (or the requester), 55000 closed, 23505 decided already, 22023 bad input or form data.';

-- pg_cron (90-scheduled-jobs.sql): escalation once past escalate_after, expiry past expires_at.
create function private.escalate_approval_requests() returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  req record;
  escalated integer := 0;
begin
  for req in
    select x.id, x.organization_id, x.escalate_to, x.requested_by, x.allow_self_approval
    from public.approval_requests x
    join public.workflow_executions e on e.id = x.execution_id
    where x.status = 'pending' and x.escalated_at is null and x.escalate_after <= pg_catalog.now()
    for update of e, x skip locked
  loop
    insert into public.approval_request_approvers (approval_request_id, organization_id, user_id, source)
    select req.id, req.organization_id, a.user_id, 'escalation'
    from private.resolve_approvers(req.organization_id, req.escalate_to) a
    where req.allow_self_approval or a.user_id is distinct from req.requested_by
    on conflict (approval_request_id, user_id) do nothing;
    update public.approval_requests x set escalated_at = pg_catalog.now() where x.id = req.id;
    escalated := escalated + 1;
  end loop;
  return escalated;
end;
$$;
comment on function private.escalate_approval_requests() is 'pg_cron: adds the escalation approvers of pending requests past escalate_after, once per request. Returns how many were escalated.';

create function private.expire_approval_requests() returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  req record;
  expired integer := 0;
begin
  for req in
    select x.id, x.on_timeout
    from public.approval_requests x
    join public.workflow_executions e on e.id = x.execution_id
    where x.status = 'pending' and x.expires_at <= pg_catalog.now()
    for update of e, x skip locked
  loop
    perform private.close_approval_request(req.id, 'expired', req.on_timeout);
    expired := expired + 1;
  end loop;
  return expired;
end;
$$;
comment on function private.expire_approval_requests() is 'pg_cron: expires pending requests past expires_at, applying the node''s on_timeout (approve resumes, reject or fail fails the execution). Returns how many expired.';

grant execute on function public.decide_approval(uuid, text, text, jsonb) to authenticated;

-- Realtime: apps subscribe to executions and approval requests (RLS applies to what each subscriber receives).
alter publication supabase_realtime add table public.workflow_executions, public.approval_requests;

-- Personal data (for export_my_data() in 36-privacy-health-export-erasure.sql): the executions a user started and the
-- approval decisions they made. Erasure needs nothing more: deleting the user sets triggered_by, requested_by,
-- created_by and approver_id to null (the decision itself stays, as the organization's record) and removes the
-- user's approver rows.
create function private.workflow_personal_data(uid uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'workflow_executions', coalesce((select jsonb_agg(jsonb_build_object('id', e.id, 'workflow_id', e.workflow_id,
        'organization_id', e.organization_id, 'status', e.status, 'input', e.input, 'output', e.output, 'error', e.error,
        'started_at', e.started_at, 'completed_at', e.completed_at) order by e.created_at)
      from public.workflow_executions e where e.triggered_by = uid), '[]'::jsonb),
    'approval_decisions', coalesce((select jsonb_agg(jsonb_build_object('id', d.id, 'approval_request_id', d.approval_request_id,
        'organization_id', d.organization_id, 'decision', d.decision, 'comment', d.comment, 'form_data', d.form_data,
        'created_at', d.created_at) order by d.created_at)
      from public.approval_decisions d where d.approver_id = uid), '[]'::jsonb))
$$;
comment on function private.workflow_personal_data(uuid) is 'A user''s workflow data for their export: the executions they started and the approval decisions they made.';


-- =====================================================================================================================
-- source: supabase/schemas/48-workflows-ai-agent-tasks.sql
-- =====================================================================================================================
-- Workflows: AI agent tasks (ai_agent_tasks), the price list they are costed with (ai_model_prices), prompt templates.
-- What the workflow-worker calls for an ai_agent node: begin (budget, template, task row), complete or fail (tokens, cost).

-- An ai_agent node's run is claimed like any other (claim_workflow_runs); the worker then calls
-- begin_ai_agent_task(run, lease), which resolves the provider configuration (the node's provider_config_id, else the
-- organization's default), refuses the task when that configuration's monthly_budget_usd is spent, renders the
-- prompt from the execution context and writes one ai_agent_tasks row per run (a retry reuses it, attempt counts up).
-- The worker reads the key through ai_provider_api_key_for_request(), calls the provider with its official SDK and
-- ends with complete_ai_agent_task() (tokens from the provider's response, cost from ai_model_prices, then
-- complete_workflow_run) or fail_ai_agent_task() (then fail_workflow_run with its retryable classification).

create table public.ai_model_prices (
  provider text not null,
  model text not null,
  input_usd_per_million numeric(12, 4) not null,
  output_usd_per_million numeric(12, 4) not null,
  source text,
  updated_at timestamptz not null default now(),
  constraint ai_model_prices_pkey primary key (provider, model),
  constraint ai_model_prices_provider_known check (provider in ('openai', 'anthropic', 'google', 'local')),
  constraint ai_model_prices_model_length check (char_length(model) between 1 and 200),
  constraint ai_model_prices_not_negative check (input_usd_per_million >= 0 and output_usd_per_million >= 0)
);
comment on table public.ai_model_prices is 'Reference data: list price per million input (prompt) and output (completion) tokens, per provider and model, used to cost ai_agent_tasks. Not Stripe''s prices. A response model with a dated suffix (gpt-4o-mini-2024-07-18) is priced by the longest listed prefix.';
comment on column public.ai_model_prices.source is 'Where the price was read (the provider''s public pricing page) and when.';

-- Public list prices (USD per million tokens) as the providers published them; operators update them with a migration.
insert into public.ai_model_prices (provider, model, input_usd_per_million, output_usd_per_million, source) values
  ('openai', 'gpt-4o', 2.50, 10.00, 'openai.com/api/pricing, 2025'),
  ('openai', 'gpt-4o-mini', 0.15, 0.60, 'openai.com/api/pricing, 2025'),
  ('openai', 'gpt-4.1', 2.00, 8.00, 'openai.com/api/pricing, 2025'),
  ('openai', 'gpt-4.1-mini', 0.40, 1.60, 'openai.com/api/pricing, 2025'),
  ('openai', 'gpt-4.1-nano', 0.10, 0.40, 'openai.com/api/pricing, 2025'),
  ('anthropic', 'claude-3-5-haiku-20241022', 0.80, 4.00, 'anthropic.com/pricing, 2025'),
  ('anthropic', 'claude-sonnet-4-20250514', 3.00, 15.00, 'anthropic.com/pricing, 2025'),
  ('anthropic', 'claude-opus-4-20250514', 15.00, 75.00, 'anthropic.com/pricing, 2025'),
  ('google', 'gemini-2.0-flash', 0.10, 0.40, 'ai.google.dev/pricing, 2025'),
  ('google', 'gemini-2.5-pro', 1.25, 10.00, 'ai.google.dev/pricing, 2025 (prompts up to 200k tokens)');

create trigger ai_model_prices_set_updated_at before update on public.ai_model_prices
  for each row execute function private.set_updated_at();

alter table public.ai_model_prices enable row level security;
-- ai_model_prices_select: every signed-in user may read the price list.
create policy ai_model_prices_select on public.ai_model_prices for select to authenticated using (true);
grant select on public.ai_model_prices to authenticated, service_role;

create table public.ai_agent_tasks (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  execution_id uuid,
  workflow_run_id uuid,
  node_id text,
  provider_config_id uuid,
  provider text not null,
  model text not null,
  system_prompt text,
  prompt text not null,
  messages jsonb not null,
  input jsonb not null default '{}'::jsonb,
  output jsonb,
  status text not null default 'running',
  attempt integer not null default 1,
  max_retries integer not null default 0,
  timeout_ms integer not null default 60000,
  max_tokens integer,
  temperature numeric(3, 2),
  prompt_tokens integer,
  completion_tokens integer,
  total_tokens integer,
  cost_usd numeric(14, 8),
  latency_ms integer,
  error jsonb,
  started_at timestamptz not null default now(),
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint ai_agent_tasks_pkey primary key (id),
  constraint ai_agent_tasks_workflow_run_id_key unique (workflow_run_id),
  constraint ai_agent_tasks_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint ai_agent_tasks_execution_id_fkey foreign key (execution_id) references public.workflow_executions (id) on delete cascade,
  constraint ai_agent_tasks_workflow_run_id_fkey foreign key (workflow_run_id) references public.workflow_runs (id) on delete cascade,
  constraint ai_agent_tasks_provider_config_id_fkey foreign key (provider_config_id) references public.ai_provider_configs (id) on delete set null,
  constraint ai_agent_tasks_workflow_link_complete check ((execution_id is null) = (workflow_run_id is null) and (execution_id is null) = (node_id is null)),
  constraint ai_agent_tasks_status_known check (status in ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  constraint ai_agent_tasks_provider_known check (provider in ('openai', 'anthropic', 'google', 'local')),
  constraint ai_agent_tasks_messages_array check (jsonb_typeof(messages) = 'array'),
  constraint ai_agent_tasks_attempt_range check (attempt >= 1 and max_retries between 0 and 10),
  constraint ai_agent_tasks_timeout_range check (timeout_ms between 1 and 600000),
  constraint ai_agent_tasks_tokens_not_negative check (coalesce(prompt_tokens, 0) >= 0 and coalesce(completion_tokens, 0) >= 0
                                                       and coalesce(total_tokens, 0) >= 0 and coalesce(latency_ms, 0) >= 0),
  constraint ai_agent_tasks_cost_not_negative check (cost_usd is null or cost_usd >= 0),
  constraint ai_agent_tasks_completed_when_final check ((completed_at is not null) = (status in ('succeeded', 'failed', 'cancelled')))
);
comment on table public.ai_agent_tasks is 'One call of an AI provider: for an ai_agent node (one row per node run; retries count attempt up) or standalone (execution, run and node null). Tokens come from the provider''s response, cost_usd from ai_model_prices. Organization data, written by the workflow engine''s functions only.';
comment on column public.ai_agent_tasks.messages is 'The chat messages sent ([{"role", "content"}]), the rendered prompt included.';
comment on column public.ai_agent_tasks.input is 'The execution context the prompt was rendered from ({"input", "nodes"}).';
comment on column public.ai_agent_tasks.output is '{"text", "model"}: the answer and the model that gave it.';
comment on column public.ai_agent_tasks.status is 'running (a worker is calling the provider), queued (a retry is due), succeeded, failed, cancelled.';
comment on column public.ai_agent_tasks.cost_usd is 'prompt_tokens and completion_tokens at the ai_model_prices list price; null when the model has no listed price (a local model without a price row costs 0). Counts against the provider configuration''s monthly budget.';
comment on column public.ai_agent_tasks.latency_ms is 'Time the provider took to answer the last attempt, as the worker measured it.';

create index ai_agent_tasks_organization_id_idx on public.ai_agent_tasks (organization_id, created_at desc);
create index ai_agent_tasks_execution_id_idx on public.ai_agent_tasks (execution_id);
create index ai_agent_tasks_provider_config_id_idx on public.ai_agent_tasks (provider_config_id, created_at);

create trigger ai_agent_tasks_set_updated_at before update on public.ai_agent_tasks
  for each row execute function private.set_updated_at();
create trigger ai_agent_tasks_audit after insert or update or delete on public.ai_agent_tasks
  for each row execute function private.audit_row_change();

alter table public.ai_agent_tasks enable row level security;

-- ai_agent_tasks_select: members holding workflows.read see their organization's AI tasks (prompts, answers, cost);
-- narrowed in 57-work-automations.sql: a task of an execution follows the execution's visibility.
create policy ai_agent_tasks_select on public.ai_agent_tasks for select to authenticated
  using (organization_id in (select private.organizations_with_permission('workflows.read')));

-- Written only through the functions below.
grant select on public.ai_agent_tasks to authenticated, service_role;

-- {{input.x}} and {{nodes.<id>.y}} (any depth, array indexes as numbers) replaced by the value in the context:
-- strings as they are, other JSON values as JSON text. A reference the context does not hold raises 22023.
create function private.render_workflow_template(template text, context jsonb) returns text
language plpgsql immutable
set search_path = ''
as $$
declare
  pattern constant text := '\{\{\s*((?:input|nodes)(?:\.[A-Za-z0-9_-]+)+)\s*\}\}';
  pieces text[];
  refs text[];
  value jsonb;
  result text;
begin
  if template is null then
    return null;
  end if;
  pieces := pg_catalog.regexp_split_to_array(template, pattern);
  select coalesce(array_agg(m[1] order by n), array[]::text[]) into refs
  from pg_catalog.regexp_matches(template, pattern, 'g') with ordinality as x(m, n);
  result := pieces[1];
  for i in 1..coalesce(pg_catalog.array_length(refs, 1), 0) loop
    value := context #> pg_catalog.string_to_array(refs[i], '.');
    if value is null then
      raise exception 'the template refers to {{%}}, which the execution context does not hold', refs[i]
        using errcode = '22023', hint = 'Reference {{input.<key>}} or {{nodes.<node id>.<key>}} of a node that ran before this one.';
    end if;
    result := result || case when jsonb_typeof(value) = 'string' then value #>> '{}' else value::text end || pieces[i + 1];
  end loop;
  return result;
end;
$$;
comment on function private.render_workflow_template(text, jsonb) is 'Renders {{input.x}} and {{nodes.<id>.y}} from an execution context (strings as is, other values as JSON); 22023 for a reference the context does not hold.';

-- What a provider configuration has spent in the current calendar month (UTC).
create function private.ai_provider_month_spend(config_id uuid) returns numeric
language sql stable
set search_path = ''
as $$
  select coalesce(sum(t.cost_usd), 0)
  from public.ai_agent_tasks t
  where t.provider_config_id = config_id
    and t.created_at >= (pg_catalog.date_trunc('month', pg_catalog.now() at time zone 'UTC') at time zone 'UTC')
$$;
comment on function private.ai_provider_month_spend(uuid) is 'Sum of cost_usd of the AI tasks on a provider configuration since the start of the month (UTC).';

-- The cost of a call at list price: the exact model, else the longest listed prefix of it (dated model names).
-- A local model without a price row costs nothing; any other unlisted model has no known cost (null).
create function private.ai_task_cost(provider text, model text, prompt_tokens integer, completion_tokens integer)
returns numeric
language sql stable
set search_path = ''
as $$
  select coalesce(
    (select round((coalesce(prompt_tokens, 0) * p.input_usd_per_million
                   + coalesce(completion_tokens, 0) * p.output_usd_per_million) / 1000000.0, 8)
     from public.ai_model_prices p
     where p.provider = ai_task_cost.provider and (ai_task_cost.model = p.model or ai_task_cost.model like p.model || '-%')
     order by char_length(p.model) desc
     limit 1),
    case when provider = 'local' then 0 end)
$$;
comment on function private.ai_task_cost(text, text, integer, integer) is 'USD cost of a call from ai_model_prices (exact model, else the longest listed prefix); 0 for an unlisted local model, null for other unlisted models.';

-- Ends the task and the run when a task cannot be started (no provider, budget spent, a broken template): the run
-- fails without retry, so the execution fails with the reason.
create function private.refuse_ai_agent_task(run public.workflow_runs, lease_token uuid, task_fields jsonb, failure jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
begin
  if task_fields is not null then
    insert into public.ai_agent_tasks (organization_id, execution_id, workflow_run_id, node_id, provider_config_id, provider,
                                       model, prompt, messages, input, status, attempt, error, completed_at)
    values (run.organization_id, run.execution_id, run.id, run.node_id, (task_fields ->> 'provider_config_id')::uuid,
            task_fields ->> 'provider', task_fields ->> 'model', coalesce(task_fields ->> 'prompt', ''), '[]'::jsonb,
            coalesce(run.input -> 'context', '{}'::jsonb), 'failed', run.attempt, failure, pg_catalog.now())
    on conflict on constraint ai_agent_tasks_workflow_run_id_key do update
    set status = 'failed', attempt = excluded.attempt, error = excluded.error, completed_at = excluded.completed_at;
  end if;
  perform public.fail_workflow_run(run.id, lease_token, failure, false);
  return jsonb_build_object('status', 'refused', 'error', failure);
end;
$$;
comment on function private.refuse_ai_agent_task(public.workflow_runs, uuid, jsonb, jsonb) is 'Records a refused AI task (when its provider is known) and fails its run without retry. Internal to begin_ai_agent_task().';

create function public.begin_ai_agent_task(run_id uuid, lease_token uuid) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  run public.workflow_runs;
  config jsonb;
  provider_config public.ai_provider_configs;
  spent numeric;
  model text;
  system_prompt text;
  prompt text;
  messages jsonb;
  task uuid;
  fields jsonb;
begin
  -- Lock order: the execution first (as complete_workflow_run and fail_workflow_run take it).
  perform 1 from public.workflow_executions e
  where e.id = (select r.execution_id from public.workflow_runs r where r.id = begin_ai_agent_task.run_id) for update;
  select r.* into run from public.workflow_runs r
  where r.id = begin_ai_agent_task.run_id and r.lease_token = begin_ai_agent_task.lease_token and r.status = 'running'
    and r.locked_until >= pg_catalog.now();
  if run.id is null then
    return jsonb_build_object('status', 'lease_lost');
  end if;
  if run.node_type <> 'ai_agent' then
    raise exception 'run % is a % node, not an ai_agent node', run.id, run.node_type using errcode = '22023';
  end if;
  config := run.input -> 'node' -> 'config';

  select c.* into provider_config from public.ai_provider_configs c
  where c.organization_id = run.organization_id
    and case when config ? 'provider_config_id' then c.id = (config ->> 'provider_config_id')::uuid else c.is_default end;
  if provider_config.id is null then
    return private.refuse_ai_agent_task(run, lease_token, null, jsonb_build_object('code', 'provider_not_configured',
      'message', case when config ? 'provider_config_id'
                      then pg_catalog.format('AI provider configuration %s does not exist in this organization', config ->> 'provider_config_id')
                      else 'the organization has no default AI provider configuration (ai_provider_configs.is_default)' end));
  end if;
  model := coalesce(nullif(config ->> 'model', ''), provider_config.default_model);
  fields := jsonb_build_object('provider_config_id', provider_config.id, 'provider', provider_config.provider, 'model', model);

  if provider_config.monthly_budget_usd is not null then
    spent := private.ai_provider_month_spend(provider_config.id);
    if spent >= provider_config.monthly_budget_usd then
      return private.refuse_ai_agent_task(run, lease_token, fields, jsonb_build_object('code', 'budget_exceeded',
        'message', pg_catalog.format('AI provider configuration "%s" has spent its monthly budget of %s USD (%s USD this month, UTC); no new AI tasks run on it until the month ends or the budget is raised',
                                     provider_config.name, provider_config.monthly_budget_usd, round(spent, 4)),
        'provider_config_id', provider_config.id, 'monthly_budget_usd', provider_config.monthly_budget_usd, 'spent_usd', spent));
    end if;
  end if;

  begin
    prompt := private.render_workflow_template(config ->> 'prompt', run.input -> 'context');
    system_prompt := private.render_workflow_template(config ->> 'system', run.input -> 'context');
  exception when sqlstate '22023' then
    return private.refuse_ai_agent_task(run, lease_token, fields || jsonb_build_object('prompt', config ->> 'prompt'),
      jsonb_build_object('code', 'template_error', 'message', sqlerrm));
  end;
  messages := jsonb_build_array(jsonb_build_object('role', 'user', 'content', prompt));

  insert into public.ai_agent_tasks (organization_id, execution_id, workflow_run_id, node_id, provider_config_id, provider,
                                     model, system_prompt, prompt, messages, input, status, attempt, max_retries, timeout_ms,
                                     max_tokens, temperature)
  values (run.organization_id, run.execution_id, run.id, run.node_id, provider_config.id, provider_config.provider, model,
          system_prompt, prompt, messages, coalesce(run.input -> 'context', '{}'::jsonb), 'running', run.attempt,
          coalesce((config ->> 'max_retries')::integer, 0), coalesce((config ->> 'timeout_ms')::integer, 60000),
          (config ->> 'max_tokens')::integer, (config ->> 'temperature')::numeric)
  on conflict on constraint ai_agent_tasks_workflow_run_id_key do update
  set status = 'running', attempt = excluded.attempt, provider_config_id = excluded.provider_config_id,
      provider = excluded.provider, model = excluded.model, system_prompt = excluded.system_prompt,
      prompt = excluded.prompt, messages = excluded.messages, input = excluded.input, output = null, error = null,
      started_at = pg_catalog.now(), completed_at = null
  returning id into task;

  return jsonb_build_object('status', 'ready', 'task_id', task, 'provider_config_id', provider_config.id,
    'provider', provider_config.provider, 'base_url', provider_config.base_url, 'has_credentials', provider_config.has_credentials,
    'model', model, 'system', system_prompt, 'messages', messages, 'max_tokens', (config ->> 'max_tokens')::integer,
    'temperature', (config ->> 'temperature')::numeric, 'timeout_ms', coalesce((config ->> 'timeout_ms')::integer, 60000));
end;
$$;
comment on function public.begin_ai_agent_task(uuid, uuid) is 'workflow-worker (service_role): for a claimed ai_agent run, resolves the provider configuration, refuses when its monthly budget is spent (the run fails: budget_exceeded), renders the prompt and writes the ai_agent_tasks row. Returns {"status": "ready", task...}, {"status": "refused", "error"} or {"status": "lease_lost"}.';

create function public.complete_ai_agent_task(task_id uuid, lease_token uuid, output_text text, response_model text,
                                              prompt_tokens integer, completion_tokens integer, latency_ms integer)
returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  task public.ai_agent_tasks;
  cost numeric;
  outcome text;
begin
  select t.* into task from public.ai_agent_tasks t where t.id = complete_ai_agent_task.task_id;
  if task.id is null or task.workflow_run_id is null then
    raise exception 'no workflow AI task %', complete_ai_agent_task.task_id using errcode = 'P0002';
  end if;
  cost := private.ai_task_cost(task.provider, coalesce(nullif(response_model, ''), task.model), prompt_tokens, completion_tokens);
  outcome := public.complete_workflow_run(task.workflow_run_id, complete_ai_agent_task.lease_token,
    jsonb_build_object('text', output_text, 'model', coalesce(nullif(response_model, ''), task.model), 'task_id', task.id,
                       'usage', jsonb_build_object('prompt_tokens', prompt_tokens, 'completion_tokens', completion_tokens,
                                                   'total_tokens', coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0)),
                       'cost_usd', cost));
  -- The provider answered (and charged) either way, so the tokens and the cost are recorded even when the lease was lost.
  update public.ai_agent_tasks t
  set status = case when outcome = 'completed' then 'succeeded' else 'failed' end,
      output = jsonb_build_object('text', output_text, 'model', coalesce(nullif(response_model, ''), task.model)),
      error = case when outcome = 'completed' then null else jsonb_build_object('code', 'lease_lost') end,
      prompt_tokens = complete_ai_agent_task.prompt_tokens, completion_tokens = complete_ai_agent_task.completion_tokens,
      total_tokens = coalesce(complete_ai_agent_task.prompt_tokens, 0) + coalesce(complete_ai_agent_task.completion_tokens, 0),
      cost_usd = cost, latency_ms = greatest(complete_ai_agent_task.latency_ms, 0), completed_at = pg_catalog.now()
  where t.id = task.id;
  return outcome;
end;
$$;
comment on function public.complete_ai_agent_task(uuid, uuid, text, text, integer, integer, integer) is 'workflow-worker (service_role): records the provider''s answer, tokens and cost (ai_model_prices) and completes the run with {"text", "model", "task_id", "usage", "cost_usd"}. Returns completed or lease_lost (the usage is recorded either way).';

create function public.fail_ai_agent_task(task_id uuid, lease_token uuid, error jsonb, retryable boolean default true,
                                          latency_ms integer default null)
returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  task public.ai_agent_tasks;
  outcome text;
begin
  select t.* into task from public.ai_agent_tasks t where t.id = fail_ai_agent_task.task_id;
  if task.id is null or task.workflow_run_id is null then
    raise exception 'no workflow AI task %', fail_ai_agent_task.task_id using errcode = 'P0002';
  end if;
  outcome := public.fail_workflow_run(task.workflow_run_id, fail_ai_agent_task.lease_token, fail_ai_agent_task.error,
                                      fail_ai_agent_task.retryable);
  if outcome <> 'lease_lost' then
    update public.ai_agent_tasks t
    set status = case when outcome = 'retrying' then 'queued' else 'failed' end, error = fail_ai_agent_task.error,
        latency_ms = greatest(fail_ai_agent_task.latency_ms, 0),
        completed_at = case when outcome = 'retrying' then null else pg_catalog.now() end
    where t.id = task.id;
  end if;
  return outcome;
end;
$$;
comment on function public.fail_ai_agent_task(uuid, uuid, jsonb, boolean, integer) is 'workflow-worker (service_role): records a failed provider call and fails the run (retrying, failed or lease_lost, as fail_workflow_run decides).';

-- An execution that ends (cancelled, timed out, failed elsewhere) ends its AI tasks still running or queued.
create function private.end_ai_agent_tasks_of_finished_execution() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  update public.ai_agent_tasks t
  set status = 'cancelled', completed_at = pg_catalog.now(), error = coalesce(t.error, jsonb_build_object('code', 'execution_' || new.status))
  where t.execution_id = new.id and t.status in ('queued', 'running');
  return null;
end;
$$;
comment on function private.end_ai_agent_tasks_of_finished_execution() is 'AFTER UPDATE on workflow_executions: cancels the AI tasks still open when the execution is cancelled, times out or fails.';

create trigger workflow_executions_end_ai_agent_tasks after update on public.workflow_executions
  for each row when (old.completed_at is null and new.status in ('cancelled', 'timed_out', 'failed'))
  execute function private.end_ai_agent_tasks_of_finished_execution();

revoke execute on function public.begin_ai_agent_task(uuid, uuid),
  public.complete_ai_agent_task(uuid, uuid, text, text, integer, integer, integer),
  public.fail_ai_agent_task(uuid, uuid, jsonb, boolean, integer) from public, anon, authenticated;
grant execute on function public.begin_ai_agent_task(uuid, uuid),
  public.complete_ai_agent_task(uuid, uuid, text, text, integer, integer, integer),
  public.fail_ai_agent_task(uuid, uuid, jsonb, boolean, integer) to service_role;


-- =====================================================================================================================
-- source: supabase/schemas/49-workflows-triggers-and-actions.sql
-- =====================================================================================================================
-- Workflows: event triggers (through private.emit_event), causation depth and the refusal log, webhook-trigger secrets.
-- And the task actions the workflow-worker runs in SQL: emit_event, and preparing an http_request through an integration.

-- Every event carries a causation depth: 0 for an event a person or a domain caused, and, for an event a workflow
-- caused, its execution's depth plus one. An execution started by an event has that event's depth. So a workflow
-- that (directly or through others) triggers itself stops: an event 8 levels deep starts nothing, and each refusal is
-- a workflow_event_refusals row. The depth travels in the transaction-local setting workflows.causation_depth, which
-- emit_workflow_event() sets before it emits, so events that triggers emit inside a workflow's action carry it too.

insert into public.webhook_event_types (key, description) values
  ('workflow.event', 'An event a workflow announced with an emit_event task (payload as the task''s params give it)');

-- plpgsql, not sql: a SQL function with a pinned search_path is never inlined and is planned again on every call,
-- and this one runs for every new execution (the column default below) and every event that matches a workflow.
create function private.current_causation_depth() returns integer
language plpgsql stable
set search_path = ''
as $$
begin
  return case when pg_catalog.current_setting('workflows.causation_depth', true) ~ '^[0-9]{1,4}$'
              then pg_catalog.current_setting('workflows.causation_depth', true)::integer else 0 end;
end;
$$;
comment on function private.current_causation_depth() is 'The causation depth of events emitted in this transaction: workflows.causation_depth (set by emit_workflow_event), else 0.';

-- A domain, not a table CHECK, like the executions' other columns (see 45-workflows-definitions.sql).
create domain public.workflow_causation_depth as integer
  constraint workflow_causation_depth_range check (value between 0 and 8);
comment on domain public.workflow_causation_depth is 'How many workflow-caused events led to an execution: 0-8.';

alter table public.workflow_executions add column causation_depth public.workflow_causation_depth not null default 0;
alter table public.workflow_executions alter column causation_depth set default private.current_causation_depth();
comment on column public.workflow_executions.causation_depth is 'How many workflow-caused events led to this execution (49-workflows-triggers-and-actions.sql): 0 unless an event a workflow emitted started it; at 8 nothing more is started.';

create table public.workflow_event_refusals (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  workflow_id uuid not null,
  event_id uuid not null,
  event_type text not null,
  causation_depth integer not null,
  reason text not null,
  created_at timestamptz not null default now(),
  constraint workflow_event_refusals_pkey primary key (id),
  constraint workflow_event_refusals_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint workflow_event_refusals_workflow_id_fkey foreign key (workflow_id) references public.workflows (id) on delete cascade,
  constraint workflow_event_refusals_reason_known check (reason in ('causation_depth_exceeded', 'start_failed'))
);
comment on table public.workflow_event_refusals is 'Log of event-triggered starts that did not happen: the event was 8 workflow-caused levels deep (an automation loop), or the start failed. Written by private.start_event_workflows() only; not audited (it is a log itself).';

create index workflow_event_refusals_organization_id_idx on public.workflow_event_refusals (organization_id, created_at desc);
create index workflow_event_refusals_workflow_id_idx on public.workflow_event_refusals (workflow_id);
create index workflows_event_trigger_idx on public.workflows (organization_id, (trigger_config ->> 'event_type'))
  where trigger_type = 'event' and is_active and deleted_at is null;

alter table public.workflow_event_refusals enable row level security;
-- workflow_event_refusals_select: members holding workflows.read see their organization's refused starts (narrowed
-- in 57-work-automations.sql: those of workflows they see).
create policy workflow_event_refusals_select on public.workflow_event_refusals for select to authenticated
  using (organization_id in (select private.organizations_with_permission('workflows.read')));
grant select on public.workflow_event_refusals to authenticated, service_role;

-- Called by private.emit_event() (44-connectors-webhook-deliveries.sql) for every event: starts each active workflow
-- of the organization whose trigger_config names the event type and whose filter the payload contains (@>), and
-- whose project fits (57-work-automations.sql): a project's workflow starts only on that project's events, an
-- organization-wide one on no event of a private project. The event
-- id makes the start idempotent (a repeated event starts nothing new). One workflow that cannot start never stops the
-- event or the others: its refusal is logged.
create function private.start_event_workflows(organization_id uuid, event_type text, payload jsonb, event_id uuid,
                                              project_id uuid default null)
returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  depth integer;
  w record;
  started integer := 0;
begin
  -- Most events match no workflow: the depth is read only for one that does. emit_event() (44) skips this call when
  -- no workflow passes the first five conditions below: keep the two in step.
  for w in
    select x.id from public.workflows x
    where x.organization_id = start_event_workflows.organization_id and x.trigger_type = 'event' and x.is_active
      and x.deleted_at is null and x.trigger_config ->> 'event_type' = start_event_workflows.event_type
      and payload @> coalesce(x.trigger_config -> 'filter', '{}'::jsonb)
      and (x.project_id = start_event_workflows.project_id
           or (x.project_id is null and (select private.event_reaches_organization(start_event_workflows.project_id))))
    order by x.created_at, x.id
  loop
    depth := coalesce(depth, private.current_causation_depth());
    if depth >= 8 then
      insert into public.workflow_event_refusals (organization_id, workflow_id, event_id, event_type, causation_depth, reason)
      values (start_event_workflows.organization_id, w.id, start_event_workflows.event_id, start_event_workflows.event_type,
              depth, 'causation_depth_exceeded');
      raise log 'workflow % not started by event % (%): causation depth % reached the limit of 8', w.id, event_id, event_type, depth;
      continue;
    end if;
    begin
      perform private.start_workflow_execution(w.id,
        jsonb_build_object('event_id', event_id, 'event_type', event_type, 'causation_depth', depth, 'data', payload)
          || case when start_event_workflows.project_id is null then '{}'::jsonb
                  else jsonb_build_object('project_id', start_event_workflows.project_id) end,
        'event:' || event_id::text, 'event', null);
      started := started + 1;
    exception when others then
      insert into public.workflow_event_refusals (organization_id, workflow_id, event_id, event_type, causation_depth, reason)
      values (start_event_workflows.organization_id, w.id, start_event_workflows.event_id, start_event_workflows.event_type,
              depth, 'start_failed');
      raise log 'workflow % not started by event %: % (%)', w.id, event_id, sqlerrm, sqlstate;
    end;
  end loop;
  return started;
end;
$$;
comment on function private.start_event_workflows(uuid, text, jsonb, uuid, uuid) is 'emit_event hook: starts the active event-triggered workflows whose event_type and filter (JSON containment) match and whose project fits the event''s, with input {"event_id", "event_type", "causation_depth", "data", "project_id"?}; refuses (and logs in workflow_event_refusals) at causation depth 8.';

-- The emit_event task action, run by the worker in one call: emits params.event_type with params.payload as the
-- run's organization, one causation level deeper than the run's execution, and completes the run with the event id.
-- The event id is the run's id, so a retried attempt emits nothing twice (deliveries and starts are per event id).
create function public.emit_workflow_event(run_id uuid, lease_token uuid) returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  run record;
  params jsonb;
begin
  perform 1 from public.workflow_executions e
  where e.id = (select r.execution_id from public.workflow_runs r where r.id = emit_workflow_event.run_id) for update;
  select r.id, r.organization_id, r.input, e.causation_depth, w.project_id into run
  from public.workflow_runs r join public.workflow_executions e on e.id = r.execution_id
  join public.workflows w on w.id = e.workflow_id
  where r.id = emit_workflow_event.run_id and r.lease_token = emit_workflow_event.lease_token and r.status = 'running'
    and r.locked_until >= pg_catalog.now();
  if run.id is null then
    return 'lease_lost';
  end if;
  params := coalesce(run.input -> 'node' -> 'config' -> 'params', '{}'::jsonb);
  if jsonb_typeof(params -> 'event_type') is distinct from 'string'
     or not exists (select 1 from public.webhook_event_types t where t.key = params ->> 'event_type')
     or (params ? 'payload' and jsonb_typeof(params -> 'payload') <> 'object') then
    perform public.fail_workflow_run(run.id, emit_workflow_event.lease_token, jsonb_build_object('code', 'invalid_params',
      'message', 'an emit_event task needs params {"event_type": <a key of webhook_event_types>, "payload"?: {...}}'), false);
    return 'failed';
  end if;
  perform pg_catalog.set_config('workflows.causation_depth', (run.causation_depth + 1)::text, true);
  -- A project's workflow (57-work-automations.sql) emits its events as the project's.
  perform private.emit_event(run.organization_id, params ->> 'event_type', coalesce(params -> 'payload', '{}'::jsonb), run.id,
                             run.project_id);
  perform pg_catalog.set_config('workflows.causation_depth', '', true);
  return public.complete_workflow_run(run.id, emit_workflow_event.lease_token,
    jsonb_build_object('event_id', run.id, 'event_type', params ->> 'event_type', 'causation_depth', run.causation_depth + 1));
end;
$$;
comment on function public.emit_workflow_event(uuid, uuid) is 'workflow-worker (service_role): runs an emit_event task (params {"event_type", "payload"?}) one causation level deeper than its execution and completes the run with {"event_id", "event_type", "causation_depth"}; completed, failed (bad params) or lease_lost.';

-- The http_request task action's request, rendered and authorised in SQL so that the worker never chooses whose
-- credentials it uses: params {"url", "method"?, "headers"?, "body"?, "integration_id"?}; url and string header values
-- and a string body may hold {{input.x}} / {{nodes.<id>.y}}. The integration must be an active one of the run's
-- organization; its credentials (read through the audited purpose path) become the Authorization header.
create function public.prepare_workflow_http_request(run_id uuid, lease_token uuid) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  run public.workflow_runs;
  params jsonb;
  context jsonb;
  integration public.integrations;
  kind text;
  credentials jsonb;
  headers jsonb := '{}'::jsonb;
  header record;
  body jsonb;
  problem text;
begin
  select r.* into run from public.workflow_runs r
  where r.id = prepare_workflow_http_request.run_id and r.lease_token = prepare_workflow_http_request.lease_token
    and r.status = 'running' and r.locked_until >= pg_catalog.now();
  if run.id is null then
    return jsonb_build_object('status', 'lease_lost');
  end if;
  params := coalesce(run.input -> 'node' -> 'config' -> 'params', '{}'::jsonb);
  context := coalesce(run.input -> 'context', '{}'::jsonb);
  problem := case
    when jsonb_typeof(params -> 'url') is distinct from 'string' then 'an http_request task needs params.url'
    when exists (select 1 from jsonb_object_keys(params) k where k not in ('url', 'method', 'headers', 'body', 'integration_id'))
      then 'http_request params are url, method, headers, body and integration_id'
    when params ? 'method' and coalesce(params ->> 'method', '') not in ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')
      then 'params.method must be GET, POST, PUT, PATCH or DELETE'
    when params ? 'headers' and not private.webhook_headers_allowed(params -> 'headers')
      then 'params.headers must be an object of string values, without Authorization, hop-by-hop or framing headers'
    when params ? 'integration_id' and not private.is_uuid_text(params -> 'integration_id') then 'params.integration_id must be a UUID'
  end;
  if problem is null and params ? 'integration_id' then
    select i.* into integration from public.integrations i
    where i.id = (params ->> 'integration_id')::uuid and i.organization_id = run.organization_id;
    problem := case when integration.id is null then 'the integration does not exist in this organization'
                    when not integration.is_active then 'the integration is not active'
                    when integration.credentials_secret_id is null then 'the integration has no credentials' end;
  end if;
  begin
    if problem is null then
      for header in select h.key, h.value from jsonb_each_text(coalesce(params -> 'headers', '{}'::jsonb)) h loop
        headers := headers || jsonb_build_object(header.key, private.render_workflow_template(header.value, context));
      end loop;
      body := case when jsonb_typeof(params -> 'body') = 'string'
                   then to_jsonb(private.render_workflow_template(params ->> 'body', context)) else params -> 'body' end;
      params := params || jsonb_build_object('url', private.render_workflow_template(params ->> 'url', context));
    end if;
  exception when sqlstate '22023' then
    problem := sqlerrm;
  end;
  if problem is not null then
    perform public.fail_workflow_run(run.id, prepare_workflow_http_request.lease_token,
      jsonb_build_object('code', 'invalid_params', 'message', problem), false);
    return jsonb_build_object('status', 'refused', 'error', jsonb_build_object('code', 'invalid_params', 'message', problem));
  end if;
  if integration.id is not null then
    select p.auth_kind into kind from public.integration_providers p where p.key = integration.provider;
    credentials := public.integration_credentials_for_sync(integration.id,
      pg_catalog.format('workflow http_request, run %s', run.id));
    headers := headers || jsonb_build_object('authorization', case kind
      when 'oauth2' then 'Bearer ' || (credentials ->> 'access_token')
      when 'api_key' then 'Bearer ' || (credentials ->> 'api_key')
      else 'Basic ' || pg_catalog.translate(pg_catalog.encode(pg_catalog.convert_to(
             (credentials ->> 'username') || ':' || (credentials ->> 'password'), 'UTF8'), 'base64'), E'\n', '') end);
  end if;
  return jsonb_build_object('status', 'ready', 'method', coalesce(params ->> 'method', case when params ? 'body' then 'POST' else 'GET' end),
                            'url', params ->> 'url', 'headers', headers, 'body', body, 'integration_id', integration.id);
end;
$$;
comment on function public.prepare_workflow_http_request(uuid, uuid) is 'workflow-worker (service_role): renders an http_request task''s url, headers and body from the context and adds the Authorization of its integration (same organization, active; an audited credential read). Returns {"status": "ready", "method", "url", "headers", "body"}, or refused (the run failed: invalid_params) or lease_lost.';

-- Webhook-triggered workflows: the Standard Webhooks signing secret of each lives in Vault; the table that holds its
-- id is private (no API role reaches it). Set by workflows.manage holders, never read back; read by the
-- workflow-webhook function through an audited purpose function.
create table private.workflow_webhook_secrets (
  workflow_id uuid not null,
  organization_id uuid not null,
  secret_id uuid not null,
  updated_by uuid,
  updated_at timestamptz not null default now(),
  constraint workflow_webhook_secrets_pkey primary key (workflow_id),
  constraint workflow_webhook_secrets_workflow_id_fkey foreign key (workflow_id) references public.workflows (id) on delete cascade,
  constraint workflow_webhook_secrets_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint workflow_webhook_secrets_updated_by_fkey foreign key (updated_by) references auth.users (id) on delete set null,
  constraint workflow_webhook_secrets_secret_id_key unique (secret_id)
);
comment on table private.workflow_webhook_secrets is 'Vault secret id of each webhook-triggered workflow''s signing secret; the secret goes with the row (and the row with its workflow).';

create index workflow_webhook_secrets_organization_id_idx on private.workflow_webhook_secrets (organization_id);
create index workflow_webhook_secrets_updated_by_idx on private.workflow_webhook_secrets (updated_by);

create trigger workflow_webhook_secrets_delete_secret after delete or update of secret_id on private.workflow_webhook_secrets
  for each row execute function private.delete_row_secret('secret_id');
create trigger workflow_webhook_secrets_audit after insert or update or delete on private.workflow_webhook_secrets
  for each row execute function private.audit_row_change();

create function public.set_workflow_webhook_secret(workflow_id uuid, signing_secret text) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.workflows;
  existing uuid;
begin
  perform private.require_user();
  select w.* into target from public.workflows w where w.id = set_workflow_webhook_secret.workflow_id;
  if target.id is null or not private.has_permission(target.organization_id, 'workflows.read')
     or not private.can_read_workflow_project(target.id) then
    raise exception 'workflow % not found', set_workflow_webhook_secret.workflow_id using errcode = 'P0002';
  end if;
  if not private.has_permission(target.organization_id, 'workflows.manage')
     or (target.project_id is not null and not private.can_edit_project(target.project_id)) then
    raise exception 'setting a workflow''s webhook secret needs workflows.manage (and editing its project)' using errcode = '42501';
  end if;
  if target.trigger_type <> 'webhook' then
    raise exception 'workflow % is triggered by %, not by a webhook', target.id, target.trigger_type using errcode = '55000',
      hint = 'Set trigger_type = ''webhook'' first.';
  end if;
  perform private.validate_webhook_secret(signing_secret);
  select s.secret_id into existing from private.workflow_webhook_secrets s where s.workflow_id = target.id;
  insert into private.workflow_webhook_secrets (workflow_id, organization_id, secret_id, updated_by)
  values (target.id, target.organization_id,
          private.vault_store(existing, signing_secret, 'workflow_webhook:' || target.id, 'webhook signing secret of workflow ' || target.id),
          (select auth.uid()))
  on conflict on constraint workflow_webhook_secrets_pkey do update
  set secret_id = excluded.secret_id, updated_by = excluded.updated_by, updated_at = pg_catalog.now();
end;
$$;
comment on function public.set_workflow_webhook_secret(uuid, text) is 'Stores (or replaces) the Standard Webhooks signing secret (whsec_ + base64 of 24-64 bytes) of a webhook-triggered workflow in Vault; workflows.manage. Never returns it.';

create function public.workflow_webhook_secret_for_verification(workflow_id uuid) returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  target record;
begin
  select w.id, w.organization_id, s.secret_id into target
  from public.workflows w join private.workflow_webhook_secrets s on s.workflow_id = w.id
  where w.id = workflow_webhook_secret_for_verification.workflow_id and w.trigger_type = 'webhook' and w.deleted_at is null;
  if target.id is null then
    raise exception 'no webhook-triggered workflow % with a signing secret', workflow_webhook_secret_for_verification.workflow_id
      using errcode = 'P0002';
  end if;
  perform private.audit_credential_read(target.organization_id, 'workflows', target.id, 'workflow_webhook',
                                        'verify an incoming webhook signature');
  return private.vault_read(target.secret_id);
end;
$$;
comment on function public.workflow_webhook_secret_for_verification(uuid) is 'workflow-webhook (service_role): the signing secret of a webhook-triggered workflow, to verify a request; P0002 when there is none; every call is an audit_logs credential_read entry.';

grant execute on function public.set_workflow_webhook_secret(uuid, text) to authenticated;
revoke execute on function public.emit_workflow_event(uuid, uuid), public.prepare_workflow_http_request(uuid, uuid),
  public.workflow_webhook_secret_for_verification(uuid) from public, anon, authenticated;
grant execute on function public.emit_workflow_event(uuid, uuid), public.prepare_workflow_http_request(uuid, uuid),
  public.workflow_webhook_secret_for_verification(uuid) to service_role;


-- =====================================================================================================================
-- source: supabase/schemas/50-work-projects.sql
-- =====================================================================================================================
-- Work management (seed 004): the projects.admin permission, the hex_color domain, projects, project_members,
-- project_favorites, and the project access helpers every table hanging off a project uses in its policies.

-- Reference data: projects.admin sees private projects and changes any project of the organization.
insert into public.permissions (key, description) values
  ('projects.admin', 'See private projects and change any project, its members and its tasks');

insert into public.role_permissions (role_id, permission_key)
select r.id, 'projects.admin' from public.roles r where r.organization_id is null and r.key in ('owner', 'admin');

create domain public.hex_color as text
  constraint hex_color_format_invalid
  check (value ~ '^#[0-9a-f]{6}$');
comment on domain public.hex_color is 'A colour as #rrggbb, lower-case hex digits.';

create table public.projects (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  owner_id uuid default auth.uid(),
  title text not null,
  description text,
  main_prompt text,
  status text not null default 'active',
  archived_at timestamptz,
  visibility text not null default 'organization',
  ai_provider text,
  cover_image_url public.http_url,
  color public.hex_color,
  emoji text,
  estimated_hours numeric(10, 2),
  actual_hours numeric(12, 2) not null default 0,
  total_cost numeric(14, 6) not null default 0,
  git_repository public.http_url,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint projects_pkey primary key (id),
  constraint projects_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint projects_owner_id_fkey foreign key (owner_id) references auth.users (id) on delete set null,
  constraint projects_title_length check (char_length(btrim(title)) between 1 and 200),
  constraint projects_description_length check (description is null or char_length(description) <= 20000),
  constraint projects_main_prompt_length check (main_prompt is null or char_length(main_prompt) <= 50000),
  constraint projects_status_known check (status in ('active', 'completed', 'archived', 'on_hold')),
  constraint projects_archived_at_matches_status check ((status = 'archived') = (archived_at is not null)),
  constraint projects_visibility_known check (visibility in ('organization', 'private')),
  constraint projects_ai_provider_known check (ai_provider is null or ai_provider in ('openai', 'anthropic', 'google', 'local')),
  constraint projects_emoji_length check (emoji is null or char_length(emoji) between 1 and 16),
  constraint projects_estimated_hours_non_negative check (estimated_hours is null or estimated_hours >= 0),
  constraint projects_actual_hours_non_negative check (actual_hours >= 0),
  constraint projects_total_cost_non_negative check (total_cost >= 0)
);
comment on table public.projects is 'Projects (seed 004, the epic level) of an organization. visibility organization: readable with projects.read; private: only by project members, the owner and projects.admin holders. Create with projects.manage; change as project owner/editor or with projects.admin.';
comment on column public.projects.owner_id is 'The project''s owner (the creator by default); also its first project member with role owner. Null once the owner''s account is deleted (the project stays with the organization).';
comment on column public.projects.archived_at is 'Set when status becomes archived (filled in by trigger when omitted), null otherwise (projects_archived_at_matches_status).';
comment on column public.projects.actual_hours is 'Derived: hours of the project''s time entries, kept by the database; 0 until time entries exist. Not writable by clients.';
comment on column public.projects.total_cost is 'Derived: AI cost of the project''s task executions, kept by the database; 0 until executions exist. Not writable by clients.';
comment on column public.projects.color is 'Theme colour, #rrggbb (the seed''s color).';

create index projects_organization_id_idx on public.projects (organization_id, status);
create index projects_owner_id_idx on public.projects (owner_id);

create table public.project_members (
  project_id uuid not null,
  user_id uuid not null,
  organization_id uuid not null,
  role text not null default 'viewer',
  added_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint project_members_pkey primary key (project_id, user_id),
  constraint project_members_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade,
  constraint project_members_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint project_members_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint project_members_added_by_fkey foreign key (added_by) references auth.users (id) on delete set null,
  constraint project_members_role_known check (role in ('owner', 'editor', 'commenter', 'viewer'))
);
comment on table public.project_members is 'Who works on a project and with which role (owner, editor, commenter, viewer); every member is a member of the project''s organization. Managed by project owners and projects.admin holders.';
comment on column public.project_members.organization_id is 'The project''s organization (copied by trigger, for policies and the audit log).';

create index project_members_user_id_idx on public.project_members (user_id);
create index project_members_organization_id_idx on public.project_members (organization_id);
create index project_members_added_by_idx on public.project_members (added_by);

create table public.project_favorites (
  user_id uuid not null default auth.uid(),
  project_id uuid not null,
  organization_id uuid not null,
  created_at timestamptz not null default now(),
  constraint project_favorites_pkey primary key (user_id, project_id),
  constraint project_favorites_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint project_favorites_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade,
  constraint project_favorites_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade
);
comment on table public.project_favorites is 'A user''s favourite projects (the seed''s isFavorite, which belongs to a user, not to the project). Each user sees and changes only their own.';

create index project_favorites_project_id_idx on public.project_favorites (project_id);
create index project_favorites_organization_id_idx on public.project_favorites (organization_id);

-- Access helpers. security definer so that policies on projects and project_members do not recurse into each other.
create function private.project_role(project uuid) returns text
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return (select pm.role from public.project_members pm
          join public.organization_members m on m.organization_id = pm.organization_id and m.user_id = pm.user_id
          where pm.project_id = project_role.project and pm.user_id = (select auth.uid()));
end;
$$;
comment on function private.project_role(uuid) is 'The caller''s role in a project (owner, editor, commenter, viewer), or null; only while still a member of its organization.';

create function private.can_read_project(project uuid) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
declare
  p record;
begin
  select pr.organization_id, pr.visibility, pr.owner_id into p from public.projects pr where pr.id = can_read_project.project;
  if not found or not exists (select 1 from private.user_organization_ids() o where o = p.organization_id) then
    return false;
  end if;
  return (p.visibility = 'organization' and private.has_permission(p.organization_id, 'projects.read'))
      or private.has_permission(p.organization_id, 'projects.admin')
      or p.owner_id = (select auth.uid())
      or private.project_role(can_read_project.project) is not null;
end;
$$;
comment on function private.can_read_project(uuid) is 'Whether the caller may read the project and what hangs off it: organization-visible with projects.read, or a project member, its owner or a projects.admin holder.';

create function private.can_edit_project(project uuid) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
declare
  organization uuid := (select pr.organization_id from public.projects pr where pr.id = can_edit_project.project);
begin
  return organization is not null
     and (private.has_permission(organization, 'projects.admin')
          or coalesce(private.project_role(can_edit_project.project) in ('owner', 'editor'), false));
end;
$$;
comment on function private.can_edit_project(uuid) is 'Whether the caller may change the project and its tasks: project owner or editor, or projects.admin.';

create function private.can_manage_project_members(project uuid) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
declare
  organization uuid := (select pr.organization_id from public.projects pr where pr.id = can_manage_project_members.project);
begin
  return organization is not null
     and (private.has_permission(organization, 'projects.admin')
          or coalesce(private.project_role(can_manage_project_members.project) = 'owner', false));
end;
$$;
comment on function private.can_manage_project_members(uuid) is 'Whether the caller may add, change or remove project members (and delete the project): project owner or projects.admin.';

-- The set form of can_read_project for policies on tables with many rows per project: `project_id in (select
-- private.readable_project_ids())` is evaluated once per statement (a hashed subplan) instead of once per row, which
-- keeps a listing under RLS within 1.5x of the same query without it (npm run bench -- work). It reads every project
-- of the caller's organizations, so its cost grows with the projects of those organizations, not with their tasks.
create function private.readable_project_ids() returns setof uuid
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return query
  with memberships as (
    select m.organization_id,
           exists (select 1 from public.role_permissions rp
                   where rp.role_id = m.role_id and rp.permission_key = 'projects.admin') as admin,
           exists (select 1 from public.role_permissions rp
                   where rp.role_id = m.role_id and rp.permission_key = 'projects.read') as reader
    from public.organization_members m
    join public.organizations o on o.id = m.organization_id and o.deleted_at is null
    where m.user_id = (select auth.uid()))
  select p.id
  from memberships m
  join public.projects p on p.organization_id = m.organization_id
  where m.admin or (m.reader and p.visibility = 'organization') or p.owner_id = (select auth.uid())
  union
  select pm.project_id
  from memberships m
  join public.project_members pm on pm.organization_id = m.organization_id and pm.user_id = (select auth.uid());
end;
$$;
comment on function private.readable_project_ids() is 'Ids of the projects the caller may read (the rule of can_read_project, as a set for `project_id in (select ...)` policies).';

grant execute on function private.project_role(uuid), private.can_read_project(uuid), private.can_edit_project(uuid),
  private.can_manage_project_members(uuid), private.readable_project_ids() to authenticated, service_role;

-- projects: archived_at follows status when omitted; the organization never changes; the owner must be a member.
create function private.check_project() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' and new.organization_id <> old.organization_id then
    raise exception 'a project cannot move to another organization' using errcode = '23514',
      constraint = 'projects_organization_id_immutable';
  end if;
  if new.status = 'archived' and new.archived_at is null then
    new.archived_at := pg_catalog.now();
  elsif tg_op = 'UPDATE' and old.status = 'archived' and new.status <> 'archived'
        and new.archived_at is not distinct from old.archived_at then
    new.archived_at := null;
  end if;
  if new.owner_id is null and (tg_op = 'INSERT' or exists (select 1 from auth.users u where u.id = old.owner_id)) then
    raise exception 'a project needs an owner' using errcode = '23502', constraint = 'projects_owner_id_required';
  end if;
  if new.owner_id is not null and (tg_op = 'INSERT' or new.owner_id is distinct from old.owner_id) and not exists (
       select 1 from public.organization_members m where m.organization_id = new.organization_id and m.user_id = new.owner_id) then
    raise exception 'the project owner must be a member of its organization' using errcode = '23514',
      constraint = 'projects_owner_is_member';
  end if;
  return new;
end;
$$;

-- The owner becomes a project member with role owner (a new owner too; the previous one stays as editor).
create function private.add_project_owner_member() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into public.project_members (project_id, user_id, organization_id, role, added_by)
  values (new.id, new.owner_id, new.organization_id, 'owner', (select auth.uid()))
  on conflict (project_id, user_id) do update set role = 'owner';
  if tg_op = 'UPDATE' then
    update public.project_members set role = 'editor'
    where project_id = new.id and user_id = old.owner_id and role = 'owner';
  end if;
  return null;
end;
$$;

create trigger projects_check before insert or update of organization_id, owner_id, status, archived_at on public.projects
  for each row execute function private.check_project();
create trigger projects_set_updated_at before update on public.projects
  for each row execute function private.set_updated_at();
create trigger projects_add_owner_member after insert on public.projects
  for each row execute function private.add_project_owner_member();
create trigger projects_owner_changed after update of owner_id on public.projects
  for each row when (old.owner_id is distinct from new.owner_id and new.owner_id is not null)
  execute function private.add_project_owner_member();
create trigger projects_audit after insert or update or delete on public.projects
  for each row execute function private.audit_row_change();

-- project_members and project_favorites: the organization is the project's; a project member is an organization member.
create function private.fill_project_organization() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  select p.organization_id into new.organization_id from public.projects p where p.id = new.project_id;
  if new.organization_id is null then
    raise exception 'project % does not exist', new.project_id using errcode = '23503';
  end if;
  if tg_table_name = 'project_members' and not exists (
       select 1 from public.organization_members m where m.organization_id = new.organization_id and m.user_id = new.user_id) then
    raise exception 'a project member must be a member of the project''s organization' using errcode = '23514',
      constraint = 'project_members_user_is_organization_member';
  end if;
  return new;
end;
$$;

create trigger project_members_fill_organization before insert or update of project_id, user_id on public.project_members
  for each row execute function private.fill_project_organization();
create trigger project_members_set_updated_at before update on public.project_members
  for each row execute function private.set_updated_at();
create trigger project_members_audit after insert or update or delete on public.project_members
  for each row execute function private.audit_row_change();
create trigger project_favorites_fill_organization before insert or update of project_id on public.project_favorites
  for each row execute function private.fill_project_organization();

alter table public.projects enable row level security;
alter table public.project_members enable row level security;
alter table public.project_favorites enable row level security;

-- projects_select: organization-visible projects for projects.read holders; private ones for their members, their
-- owner and projects.admin holders.
create policy projects_select on public.projects for select to authenticated
  using (id in (select private.readable_project_ids()) or owner_id = (select auth.uid()));
-- projects_insert: projects.manage holders create projects they own.
create policy projects_insert on public.projects for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('projects.manage'))
              and owner_id = (select auth.uid()));
-- projects_update: project owners and editors, and projects.admin holders.
create policy projects_update on public.projects for update to authenticated
  using (private.can_edit_project(id))
  with check (private.can_edit_project(id));
-- projects_delete: the project's owner and projects.admin holders.
create policy projects_delete on public.projects for delete to authenticated
  using (private.can_manage_project_members(id));

-- project_members_select: whoever reads the project sees who works on it.
create policy project_members_select on public.project_members for select to authenticated
  using (project_id in (select private.readable_project_ids()));
create policy project_members_insert on public.project_members for insert to authenticated
  with check (private.can_manage_project_members(project_id));
create policy project_members_update on public.project_members for update to authenticated
  using (private.can_manage_project_members(project_id))
  with check (private.can_manage_project_members(project_id));
create policy project_members_delete on public.project_members for delete to authenticated
  using (private.can_manage_project_members(project_id));

-- project_favorites: one's own, on projects one can read.
create policy project_favorites_select on public.project_favorites for select to authenticated
  using (user_id = (select auth.uid()));
create policy project_favorites_insert on public.project_favorites for insert to authenticated
  with check (user_id = (select auth.uid()) and private.can_read_project(project_id));
create policy project_favorites_delete on public.project_favorites for delete to authenticated
  using (user_id = (select auth.uid()));

grant select, delete on public.projects to authenticated, service_role;
grant insert (organization_id, owner_id, title, description, main_prompt, status, archived_at, visibility, ai_provider,
              cover_image_url, color, emoji, estimated_hours, git_repository)
  on public.projects to authenticated, service_role;
grant update (owner_id, title, description, main_prompt, status, archived_at, visibility, ai_provider,
              cover_image_url, color, emoji, estimated_hours, git_repository)
  on public.projects to authenticated, service_role;
grant select, delete on public.project_members to authenticated, service_role;
grant insert (project_id, user_id, role) on public.project_members to authenticated, service_role;
grant update (role) on public.project_members to authenticated, service_role;
grant select, delete on public.project_favorites to authenticated, service_role;
grant insert (user_id, project_id) on public.project_favorites to authenticated, service_role;


-- =====================================================================================================================
-- source: supabase/schemas/51-work-tasks.sql
-- =====================================================================================================================
-- Work management (seed 004): tasks (subtasks, status transitions, gapped ordering, soft delete) and
-- task_dependencies (blocked-by, cycle-safe under concurrent inserts). Both follow their project's visibility.

create function private.is_valid_token_usage(usage jsonb) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select usage is null
      or (jsonb_typeof(usage) = 'object'
          and not exists (select 1 from jsonb_each(usage) e
                          where e.key not in ('prompt_tokens', 'completion_tokens', 'total_tokens', 'cached_tokens')
                             or jsonb_typeof(e.value) <> 'number' or (e.value #>> '{}')::numeric < 0))
$$;
comment on function private.is_valid_token_usage(jsonb) is 'True when token_usage is null or an object of non-negative numbers keyed prompt_tokens, completion_tokens, total_tokens, cached_tokens.';
grant execute on function private.is_valid_token_usage(jsonb) to authenticated, service_role;

create table public.tasks (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  project_id uuid not null,
  parent_task_id uuid,
  title text not null,
  description text,
  generated_prompt text,
  status text not null default 'todo',
  priority text not null default 'medium',
  execution_type text not null default 'serial',
  ai_provider text,
  mcp_config jsonb,
  position numeric not null,
  assignee_id uuid,
  estimated_minutes integer,
  actual_minutes integer not null default 0,
  token_usage jsonb,
  actual_cost numeric(14, 6) not null default 0,
  due_date timestamptz,
  started_at timestamptz,
  completed_at timestamptz,
  blocked_reason text,
  tags text[] not null default '{}',
  created_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  constraint tasks_pkey primary key (id),
  constraint tasks_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint tasks_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade,
  constraint tasks_parent_task_id_fkey foreign key (parent_task_id) references public.tasks (id) on delete cascade,
  constraint tasks_assignee_id_fkey foreign key (assignee_id) references auth.users (id) on delete set null,
  constraint tasks_created_by_fkey foreign key (created_by) references auth.users (id) on delete set null,
  constraint tasks_title_length check (char_length(btrim(title)) between 1 and 500),
  constraint tasks_description_length check (description is null or char_length(description) <= 50000),
  constraint tasks_generated_prompt_length check (generated_prompt is null or char_length(generated_prompt) <= 50000),
  constraint tasks_status_known check (status in ('todo', 'in_progress', 'in_review', 'done', 'blocked')),
  constraint tasks_priority_known check (priority in ('low', 'medium', 'high', 'urgent')),
  constraint tasks_execution_type_known check (execution_type in ('serial', 'parallel')),
  constraint tasks_ai_provider_known check (ai_provider is null or ai_provider in ('openai', 'anthropic', 'google', 'local')),
  constraint tasks_mcp_config_object check (mcp_config is null or jsonb_typeof(mcp_config) = 'object'),
  constraint tasks_blocked_reason_required check (status <> 'blocked' or coalesce(btrim(blocked_reason), '') <> ''),
  constraint tasks_not_own_parent check (parent_task_id is distinct from id),
  constraint tasks_estimated_minutes_non_negative check (estimated_minutes is null or estimated_minutes >= 0),
  constraint tasks_actual_minutes_non_negative check (actual_minutes >= 0),
  constraint tasks_actual_cost_non_negative check (actual_cost >= 0),
  constraint tasks_token_usage_shape check (private.is_valid_token_usage(token_usage)),
  constraint tasks_tags_limit check (cardinality(tags) <= 50 and array_position(tags, null) is null)
);
comment on table public.tasks is 'Tasks of a project (seed 004, the story level), with subtasks through parent_task_id (same project, no cycles). Readable by whoever reads the project; written by its owners and editors and projects.admin holders.';
comment on column public.tasks.organization_id is 'The project''s organization (copied by trigger).';
comment on column public.tasks.position is 'Order among the siblings (the seed''s order): gapped numbers (1024 apart when appended); a reorder writes one row with a value between its neighbours, never renumbers.';
comment on column public.tasks.started_at is 'Set by the first move to in_progress.';
comment on column public.tasks.completed_at is 'Set by the move to done; cleared when the task leaves done.';
comment on column public.tasks.blocked_reason is 'Required while status is blocked (tasks_blocked_reason_required).';
comment on column public.tasks.actual_minutes is 'Derived from time entries, kept by the database; not writable by clients.';
comment on column public.tasks.actual_cost is 'Derived from task executions, kept by the database; not writable by clients.';
comment on column public.tasks.deleted_at is 'Soft delete: deleting a task hides its subtasks with it (same timestamp); restoring it restores them.';

create index tasks_project_position_idx on public.tasks (project_id, parent_task_id, position) where deleted_at is null;
create index tasks_organization_id_idx on public.tasks (organization_id);
create index tasks_parent_task_id_idx on public.tasks (parent_task_id);
create index tasks_assignee_id_idx on public.tasks (assignee_id, status) where deleted_at is null;
create index tasks_created_by_idx on public.tasks (created_by);
create index tasks_due_date_idx on public.tasks (due_date) where deleted_at is null and due_date is not null;
create index tasks_tags_idx on public.tasks using gin (tags);

create table public.task_dependencies (
  task_id uuid not null,
  blocked_by_task_id uuid not null,
  organization_id uuid not null,
  created_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  constraint task_dependencies_pkey primary key (task_id, blocked_by_task_id),
  constraint task_dependencies_task_id_fkey foreign key (task_id) references public.tasks (id) on delete cascade,
  constraint task_dependencies_blocked_by_task_id_fkey foreign key (blocked_by_task_id) references public.tasks (id) on delete cascade,
  constraint task_dependencies_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint task_dependencies_created_by_fkey foreign key (created_by) references auth.users (id) on delete set null,
  constraint task_dependencies_not_self check (task_id <> blocked_by_task_id)
);
comment on table public.task_dependencies is 'task_id is blocked by blocked_by_task_id (the seed''s blockedByTaskId, generalised to many). Both tasks in one organization, no cycles; a task cannot start while a blocker is not done.';

create index task_dependencies_blocked_by_task_id_idx on public.task_dependencies (blocked_by_task_id);
create index task_dependencies_organization_id_idx on public.task_dependencies (organization_id);
create index task_dependencies_created_by_idx on public.task_dependencies (created_by);

-- tasks: organization from the project; parent in the same project and not a descendant (checked under a per-project
-- advisory lock, so two concurrent re-parentings cannot close a cycle); assignee a project member; position appended
-- when omitted; the status transitions stamp started_at/completed_at; no start while a blocker is not done.
create function private.check_task() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  select p.organization_id into new.organization_id from public.projects p where p.id = new.project_id;
  if tg_op = 'UPDATE' and new.project_id <> old.project_id then
    raise exception 'a task cannot move to another project' using errcode = '23514', constraint = 'tasks_project_id_immutable';
  end if;
  if new.parent_task_id is not null and (tg_op = 'INSERT' or new.parent_task_id is distinct from old.parent_task_id) then
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('tasks.parent:' || new.project_id::text, 0));
    if not exists (select 1 from public.tasks t where t.id = new.parent_task_id and t.project_id = new.project_id) then
      raise exception 'the parent task must belong to the same project' using errcode = '23514',
        constraint = 'tasks_parent_same_project';
    end if;
    if tg_op = 'UPDATE' and exists (
         with recursive ancestors (id) as (
           select new.parent_task_id
           union
           select t.parent_task_id from public.tasks t join ancestors a on a.id = t.id where t.parent_task_id is not null)
         select 1 from ancestors where id = new.id) then
      raise exception 'task % cannot become a subtask of its own subtask', new.id using errcode = '23514',
        constraint = 'tasks_parent_no_cycle';
    end if;
  end if;
  if new.assignee_id is not null and (tg_op = 'INSERT' or new.assignee_id is distinct from old.assignee_id)
     and not exists (select 1 from public.project_members pm where pm.project_id = new.project_id and pm.user_id = new.assignee_id) then
    raise exception 'the assignee must be a member of the project' using errcode = '23514',
      constraint = 'tasks_assignee_is_project_member';
  end if;
  if new.position is null then
    select coalesce(max(t.position), 0) + 1024 into new.position from public.tasks t
    where t.project_id = new.project_id and t.parent_task_id is not distinct from new.parent_task_id;
  end if;
  if tg_op = 'INSERT' or new.status is distinct from old.status then
    if new.status = 'in_progress' and tg_op = 'UPDATE' and exists (
         select 1 from public.task_dependencies d join public.tasks b on b.id = d.blocked_by_task_id
         where d.task_id = new.id and b.status <> 'done' and b.deleted_at is null) then
      raise exception 'task % is blocked by a task that is not done', new.id using errcode = '55000',
        hint = 'Finish the blocking tasks or remove the dependency first.';
    end if;
    if new.status = 'in_progress' and new.started_at is null then
      new.started_at := pg_catalog.now();
    end if;
    if new.status = 'done' then
      new.completed_at := coalesce(new.completed_at, pg_catalog.now());
    else
      new.completed_at := null;
    end if;
    if new.status <> 'blocked' then
      new.blocked_reason := null;
    end if;
  end if;
  return new;
end;
$$;

-- Soft delete reaches the subtasks (stamped with the same time); restoring a task restores what went with it.
create function private.cascade_task_soft_delete() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.deleted_at is not null then
    update public.tasks set deleted_at = new.deleted_at where parent_task_id = new.id and deleted_at is null;
  else
    update public.tasks set deleted_at = null where parent_task_id = new.id and deleted_at = old.deleted_at;
  end if;
  return null;
end;
$$;

create trigger tasks_check before insert or update of project_id, parent_task_id, assignee_id, position, status on public.tasks
  for each row execute function private.check_task();
create trigger tasks_set_updated_at before update on public.tasks
  for each row execute function private.set_updated_at();
create trigger tasks_cascade_soft_delete after update of deleted_at on public.tasks
  for each row when (old.deleted_at is distinct from new.deleted_at) execute function private.cascade_task_soft_delete();
create trigger tasks_audit after insert or update or delete on public.tasks
  for each row execute function private.audit_row_change();

-- task_dependencies: same organization, no cycle. The recursive check runs under a per-organization advisory lock
-- taken before it reads (READ COMMITTED: the check's statement sees what an earlier holder committed), so of two
-- transactions that would each close half of a cycle the second waits and then sees the first's edge.
create function private.check_task_dependency() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  task_org uuid := (select t.organization_id from public.tasks t where t.id = new.task_id);
  blocker_org uuid := (select t.organization_id from public.tasks t where t.id = new.blocked_by_task_id);
begin
  if task_org is distinct from blocker_org then
    raise exception 'a task can only be blocked by a task of the same organization' using errcode = '23514',
      constraint = 'task_dependencies_same_organization';
  end if;
  new.organization_id := task_org;
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('task_dependencies:' || task_org::text, 0));
  if exists (
       with recursive blockers (id) as (
         select new.blocked_by_task_id
         union
         select d.blocked_by_task_id from public.task_dependencies d join blockers b on b.id = d.task_id)
       select 1 from blockers where id = new.task_id) then
    raise exception 'task % already blocks task %, directly or through others', new.task_id, new.blocked_by_task_id
      using errcode = '23514', constraint = 'task_dependencies_no_cycle';
  end if;
  return new;
end;
$$;

create trigger task_dependencies_check before insert or update on public.task_dependencies
  for each row execute function private.check_task_dependency();
create trigger task_dependencies_audit after insert or update or delete on public.task_dependencies
  for each row execute function private.audit_row_change();

alter table public.tasks enable row level security;
alter table public.task_dependencies enable row level security;

-- tasks follow their project: readable by its readers, written by its owners, editors and projects.admin holders.
create policy tasks_select on public.tasks for select to authenticated
  using (project_id in (select private.readable_project_ids()));
create policy tasks_insert on public.tasks for insert to authenticated
  with check (private.can_edit_project(project_id));
create policy tasks_update on public.tasks for update to authenticated
  using (private.can_edit_project(project_id))
  with check (private.can_edit_project(project_id));
create policy tasks_delete on public.tasks for delete to authenticated
  using (private.can_edit_project(project_id));

-- task_dependencies follow the blocked task's project.
create policy task_dependencies_select on public.task_dependencies for select to authenticated
  using (exists (select 1 from public.tasks t where t.id = task_id));
create policy task_dependencies_insert on public.task_dependencies for insert to authenticated
  with check (exists (select 1 from public.tasks t where t.id = task_id and private.can_edit_project(t.project_id))
              and exists (select 1 from public.tasks t where t.id = blocked_by_task_id));
create policy task_dependencies_delete on public.task_dependencies for delete to authenticated
  using (exists (select 1 from public.tasks t where t.id = task_id and private.can_edit_project(t.project_id)));

grant select, delete on public.tasks to authenticated, service_role;
grant insert (project_id, parent_task_id, title, description, generated_prompt, status, priority, execution_type,
              ai_provider, mcp_config, position, assignee_id, estimated_minutes, token_usage, due_date, blocked_reason, tags)
  on public.tasks to authenticated, service_role;
grant update (parent_task_id, title, description, generated_prompt, status, priority, execution_type, ai_provider,
              mcp_config, position, assignee_id, estimated_minutes, token_usage, due_date, blocked_reason, tags, deleted_at)
  on public.tasks to authenticated, service_role;
grant select, delete on public.task_dependencies to authenticated, service_role;
grant insert (task_id, blocked_by_task_id) on public.task_dependencies to authenticated, service_role;

-- A user's work-management data for export_my_data() (36-privacy-health-export-erasure.sql): the projects they own,
-- their project memberships and favourites, and the tasks assigned to them or created by them. Erasure needs no
-- function of its own: memberships and favourites go with the account (cascade), owner, assignee and creator
-- become null, and the organization keeps its projects and tasks.
create function private.work_personal_data(uid uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'projects_owned', coalesce((select jsonb_agg(jsonb_build_object('id', p.id, 'organization_id', p.organization_id,
        'title', p.title, 'status', p.status, 'visibility', p.visibility, 'created_at', p.created_at) order by p.created_at, p.id)
      from public.projects p where p.owner_id = uid), '[]'::jsonb),
    'project_memberships', coalesce((select jsonb_agg(jsonb_build_object('project_id', m.project_id,
        'organization_id', m.organization_id, 'role', m.role, 'created_at', m.created_at) order by m.created_at, m.project_id)
      from public.project_members m where m.user_id = uid), '[]'::jsonb),
    'project_favorites', coalesce((select jsonb_agg(jsonb_build_object('project_id', f.project_id, 'created_at', f.created_at)
        order by f.created_at, f.project_id)
      from public.project_favorites f where f.user_id = uid), '[]'::jsonb),
    'tasks', coalesce((select jsonb_agg(jsonb_build_object('id', t.id, 'project_id', t.project_id, 'title', t.title,
        'status', t.status, 'assigned', t.assignee_id = uid, 'created', t.created_by = uid, 'due_date', t.due_date,
        'deleted_at', t.deleted_at) order by t.created_at, t.id)
      from public.tasks t where t.assignee_id = uid or t.created_by = uid), '[]'::jsonb))
$$;
comment on function private.work_personal_data(uuid) is 'A user''s work-management data for their export: projects owned, memberships, favourites, tasks assigned to or created by them.';


-- =====================================================================================================================
-- source: supabase/schemas/52-work-collaboration.sql
-- =====================================================================================================================
-- Work management (seed 004): task_watchers, task_commits, comments (threaded, soft-deleted), comment_mentions and
-- comment_reactions; the helpers user_can_read_project() and can_comment_on_project().

-- Whether a given user (not the caller) may read a project: what notifications and watchers need, since they are
-- about someone else. The same rule as private.can_read_project() (50-work-projects.sql).
create function private.user_can_read_project(project uuid, member uuid) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
declare
  p record;
  has_role boolean;
begin
  select pr.organization_id, pr.visibility, pr.owner_id into p from public.projects pr where pr.id = user_can_read_project.project;
  if not found or member is null or not exists (
       select 1 from public.organization_members m join public.organizations o on o.id = m.organization_id
       where m.organization_id = p.organization_id and m.user_id = member and o.deleted_at is null) then
    return false;
  end if;
  has_role := exists (select 1 from public.project_members pm where pm.project_id = user_can_read_project.project and pm.user_id = member);
  return has_role or p.owner_id = member or exists (
    select 1 from public.organization_members m join public.role_permissions rp on rp.role_id = m.role_id
    where m.organization_id = p.organization_id and m.user_id = member
      and (rp.permission_key = 'projects.admin' or (p.visibility = 'organization' and rp.permission_key = 'projects.read')));
end;
$$;
comment on function private.user_can_read_project(uuid, uuid) is 'Whether the given user may read the project (same rule as can_read_project for the caller). Internal: not granted to API roles.';

create function private.can_comment_on_project(project uuid) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
declare
  organization uuid := (select pr.organization_id from public.projects pr where pr.id = can_comment_on_project.project);
begin
  return organization is not null
     and (private.has_permission(organization, 'projects.admin')
          or coalesce(private.project_role(can_comment_on_project.project) in ('owner', 'editor', 'commenter'), false));
end;
$$;
comment on function private.can_comment_on_project(uuid) is 'Whether the caller may comment on the project''s tasks: project owner, editor or commenter, or projects.admin (a viewer or a reader without a project role may not).';

-- Policies on the large tables hanging off a project use `project_id in (select private.readable_project_ids())`
-- (50-work-projects.sql), evaluated once per statement and hashed, instead of calling can_read_project() on every row
-- (measured: 500 comments of a task, about 0.2 ms a row).

-- For policies that already checked the project: one indexed lookup, without evaluating the tasks policy again.
create function private.task_is_live(task uuid) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return exists (select 1 from public.tasks t where t.id = task_is_live.task and t.deleted_at is null);
end;
$$;
comment on function private.task_is_live(uuid) is 'Whether the task exists and is not soft-deleted (no access check: for policies that check the project).';

grant execute on function private.can_comment_on_project(uuid), private.task_is_live(uuid)
  to authenticated, service_role;

create table public.task_watchers (
  task_id uuid not null,
  user_id uuid not null default auth.uid(),
  organization_id uuid not null,
  project_id uuid not null,
  added_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  constraint task_watchers_pkey primary key (task_id, user_id),
  constraint task_watchers_task_id_fkey foreign key (task_id) references public.tasks (id) on delete cascade,
  constraint task_watchers_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint task_watchers_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint task_watchers_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade,
  constraint task_watchers_added_by_fkey foreign key (added_by) references auth.users (id) on delete set null
);
comment on table public.task_watchers is 'Who follows a task (the seed''s watcherIds): watchers are notified of its comments and status changes. A watcher must be able to read the project. Anyone who reads the project watches or unwatches themself; project editors add or remove others.';
comment on column public.task_watchers.organization_id is 'The task''s organization (copied by trigger).';
comment on column public.task_watchers.project_id is 'The task''s project (copied by trigger, for policies).';

create index task_watchers_user_id_idx on public.task_watchers (user_id);
create index task_watchers_organization_id_idx on public.task_watchers (organization_id);
create index task_watchers_project_id_idx on public.task_watchers (project_id);
create index task_watchers_added_by_idx on public.task_watchers (added_by);

create table public.task_commits (
  id uuid not null default gen_random_uuid(),
  task_id uuid not null,
  organization_id uuid not null,
  project_id uuid not null,
  sha text not null,
  message text not null,
  author text,
  committed_at timestamptz not null default now(),
  url public.http_url,
  created_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  constraint task_commits_pkey primary key (id),
  constraint task_commits_task_id_fkey foreign key (task_id) references public.tasks (id) on delete cascade,
  constraint task_commits_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint task_commits_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade,
  constraint task_commits_created_by_fkey foreign key (created_by) references auth.users (id) on delete set null,
  constraint task_commits_task_sha_key unique (task_id, sha),
  constraint task_commits_sha_format check (sha ~ '^([0-9a-f]{40}|[0-9a-f]{64})$'),
  constraint task_commits_message_length check (char_length(btrim(message)) between 1 and 10000),
  constraint task_commits_author_length check (author is null or char_length(author) between 1 and 320)
);
comment on table public.task_commits is 'Git commits linked to a task (the seed''s gitCommits), one row per task and commit. Readable with the project; linked and unlinked by its owners, editors and projects.admin holders.';
comment on column public.task_commits.sha is 'The full commit id: 40 hex digits (SHA-1) or 64 (SHA-256), lower case (upper case is folded by trigger); abbreviated ids are refused so one commit cannot be linked twice under two spellings.';
comment on column public.task_commits.author is 'The commit''s author as Git records it ("Name <email>"), free text: not necessarily a user here.';
comment on column public.task_commits.committed_at is 'When the commit was made (the seed''s timestamp, renamed: a timestamp column named timestamp reads badly).';
comment on column public.task_commits.organization_id is 'The task''s organization (copied by trigger).';
comment on column public.task_commits.project_id is 'The task''s project (copied by trigger, for policies).';

create index task_commits_organization_id_idx on public.task_commits (organization_id);
create index task_commits_project_id_idx on public.task_commits (project_id);
create index task_commits_created_by_idx on public.task_commits (created_by);

create table public.comments (
  id uuid not null default gen_random_uuid(),
  task_id uuid not null,
  organization_id uuid not null,
  project_id uuid not null,
  user_id uuid default auth.uid(),
  parent_comment_id uuid,
  content text not null,
  content_type text not null default 'markdown',
  edited_at timestamptz,
  deleted_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint comments_pkey primary key (id),
  constraint comments_task_id_fkey foreign key (task_id) references public.tasks (id) on delete cascade,
  constraint comments_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint comments_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade,
  constraint comments_user_id_fkey foreign key (user_id) references auth.users (id) on delete set null,
  constraint comments_parent_comment_id_fkey foreign key (parent_comment_id) references public.comments (id) on delete cascade,
  constraint comments_content_length check (char_length(btrim(content)) between 1 and 20000),
  constraint comments_content_type_known check (content_type in ('markdown', 'text')),
  constraint comments_not_own_parent check (parent_comment_id is distinct from id)
);
comment on table public.comments is 'Comments on a task (markdown), threaded by parent_comment_id within the same task. Readable with the project while the task is not soft-deleted; written by project owners, editors, commenters and projects.admin holders; only the author edits the content; the author or a project editor soft-deletes.';
comment on column public.comments.content_type is 'How content is rendered: markdown (the default) or text.';
comment on column public.comments.content is 'Markdown (or plain text, see content_type). Mentions: @[<user uuid>] or @<email address> of a project member become comment_mentions rows (a mention of anyone else stays plain text).';
comment on column public.comments.user_id is 'The author (the seed''s userId); null once their account is erased (the organization keeps the comment).';
comment on column public.comments.parent_comment_id is 'The comment this one answers; always a comment of the same task (comments_parent_same_task).';
comment on column public.comments.edited_at is 'Set by trigger when the author changes the content.';
comment on column public.comments.deleted_at is 'Soft delete: hidden from readers other than its author and project editors, who can restore it by clearing it.';
comment on column public.comments.organization_id is 'The task''s organization (copied by trigger).';
comment on column public.comments.project_id is 'The task''s project (copied by trigger, for policies).';

create index comments_task_id_idx on public.comments (task_id, created_at);
create index comments_organization_id_idx on public.comments (organization_id);
create index comments_project_id_idx on public.comments (project_id);
create index comments_user_id_idx on public.comments (user_id);
create index comments_parent_comment_id_idx on public.comments (parent_comment_id);

create table public.comment_mentions (
  comment_id uuid not null,
  user_id uuid not null,
  organization_id uuid not null,
  source text not null default 'explicit',
  created_at timestamptz not null default now(),
  constraint comment_mentions_pkey primary key (comment_id, user_id),
  constraint comment_mentions_comment_id_fkey foreign key (comment_id) references public.comments (id) on delete cascade,
  constraint comment_mentions_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint comment_mentions_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint comment_mentions_source_known check (source in ('content', 'explicit'))
);
comment on table public.comment_mentions is 'Project members a comment mentions: resolved from its content (source content, re-synced when the content changes) or added by its author (source explicit; a non-member is refused with 23514). Readable with the comment.';
comment on column public.comment_mentions.organization_id is 'The comment''s organization (copied by trigger).';

create index comment_mentions_user_id_idx on public.comment_mentions (user_id);
create index comment_mentions_organization_id_idx on public.comment_mentions (organization_id);

create table public.comment_reactions (
  comment_id uuid not null,
  user_id uuid not null default auth.uid(),
  emoji text not null,
  organization_id uuid not null,
  created_at timestamptz not null default now(),
  constraint comment_reactions_pkey primary key (comment_id, user_id, emoji),
  constraint comment_reactions_comment_id_fkey foreign key (comment_id) references public.comments (id) on delete cascade,
  constraint comment_reactions_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint comment_reactions_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint comment_reactions_emoji_format check (char_length(emoji) between 1 and 32 and emoji !~ '\s')
);
comment on table public.comment_reactions is 'Reactions to a comment (the seed''s reactions JSON): one row per comment, user and emoji. Anyone who reads the comment reacts as themself and removes only their own.';
comment on column public.comment_reactions.emoji is 'An emoji or a short code (":tada:"), without spaces, at most 32 characters.';
comment on column public.comment_reactions.organization_id is 'The comment''s organization (copied by trigger).';

create index comment_reactions_user_id_idx on public.comment_reactions (user_id);
create index comment_reactions_organization_id_idx on public.comment_reactions (organization_id);

-- task_watchers, task_commits and comments: organization and project from the task; a watcher can read the project;
-- a commit id is folded to lower case; a reply stays in its parent's task.
create function private.fill_task_context() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' and new.task_id <> old.task_id then
    raise exception 'a % row cannot move to another task', tg_table_name using errcode = '23514',
      constraint = tg_table_name || '_task_id_immutable';
  end if;
  select t.organization_id, t.project_id into new.organization_id, new.project_id from public.tasks t where t.id = new.task_id;
  if new.project_id is null then
    raise exception 'task % does not exist', new.task_id using errcode = '23503';
  end if;
  -- Nested ifs: PL/pgSQL plans a whole condition, and each table has its own columns.
  if tg_table_name = 'task_watchers' then
    if not private.user_can_read_project(new.project_id, new.user_id) then
      raise exception 'a watcher must be able to read the project' using errcode = '23514',
        constraint = 'task_watchers_user_can_read_project';
    end if;
  elsif tg_table_name = 'task_commits' then
    new.sha := lower(new.sha);
  elsif tg_table_name = 'comments' then
    if new.parent_comment_id is not null and not exists (
         select 1 from public.comments c where c.id = new.parent_comment_id and c.task_id = new.task_id) then
      raise exception 'a reply must belong to the same task as the comment it answers' using errcode = '23514',
        constraint = 'comments_parent_same_task';
    end if;
  end if;
  return new;
end;
$$;

-- comments: only the author changes the content or its type (stamping edited_at); the author or a project editor
-- soft-deletes; nothing else changes.
create function private.check_comment_update() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := (select auth.uid());
begin
  if uid is null then
    return new;
  end if;
  if (new.content, new.content_type) is distinct from (old.content, old.content_type) then
    if old.user_id is distinct from uid then
      raise exception 'only the author edits a comment' using errcode = '42501';
    end if;
    if old.deleted_at is not null then
      raise exception 'a deleted comment cannot be edited; restore it first' using errcode = '55000';
    end if;
    new.edited_at := pg_catalog.now();
  end if;
  if new.deleted_at is distinct from old.deleted_at and old.user_id is distinct from uid
     and not private.can_edit_project(old.project_id) then
    raise exception 'only the author or a project editor deletes or restores a comment' using errcode = '42501';
  end if;
  return new;
end;
$$;

-- The mentions in a comment's content: @[<uuid>] or @<email>, resolved against the project's members only.
create function private.comment_content_mentions(content text, project uuid) returns setof uuid
language sql stable security definer
set search_path = ''
as $$
  with tokens as (
    select (regexp_matches(content, '(?:^|[^A-Za-z0-9._%+@-])@(\[[0-9a-fA-F-]{36}\]|[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})', 'g'))[1] as token
  )
  select distinct pm.user_id
  from tokens k
  join public.project_members pm on pm.project_id = project
  left join public.profiles p on p.id = pm.user_id
  where (k.token like '[%' and lower(pm.user_id::text) = lower(btrim(k.token, '[]')))
     or (k.token not like '[%' and lower(p.email) = lower(k.token))
$$;
comment on function private.comment_content_mentions(text, uuid) is 'Project members mentioned in a comment''s markdown as @[<uuid>] or @<email>; mentions of anyone else are ignored. Internal.';

create function private.sync_comment_mentions() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' then
    delete from public.comment_mentions m
    where m.comment_id = new.id and m.source = 'content'
      and m.user_id not in (select private.comment_content_mentions(new.content, new.project_id));
  end if;
  insert into public.comment_mentions (comment_id, user_id, organization_id, source)
  select new.id, u, new.organization_id, 'content' from private.comment_content_mentions(new.content, new.project_id) u
  on conflict (comment_id, user_id) do nothing;
  return null;
end;
$$;

-- comment_mentions and comment_reactions: the organization is the comment's; an explicit mention is a project member.
create function private.fill_comment_context() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  project uuid;
begin
  select c.organization_id, c.project_id into new.organization_id, project from public.comments c where c.id = new.comment_id;
  if project is null then
    raise exception 'comment % does not exist', new.comment_id using errcode = '23503';
  end if;
  if tg_table_name = 'comment_mentions' then
    if not exists (select 1 from public.project_members pm where pm.project_id = project and pm.user_id = new.user_id) then
      raise exception 'only a member of the project can be mentioned' using errcode = '23514',
        constraint = 'comment_mentions_user_is_project_member';
    end if;
  end if;
  return new;
end;
$$;

create trigger task_watchers_fill_context before insert or update on public.task_watchers
  for each row execute function private.fill_task_context();
create trigger task_watchers_audit after insert or update or delete on public.task_watchers
  for each row execute function private.audit_row_change();
create trigger task_commits_fill_context before insert or update on public.task_commits
  for each row execute function private.fill_task_context();
create trigger task_commits_audit after insert or update or delete on public.task_commits
  for each row execute function private.audit_row_change();
create trigger comments_fill_context before insert or update of task_id, parent_comment_id on public.comments
  for each row execute function private.fill_task_context();
create trigger comments_check_update before update on public.comments
  for each row execute function private.check_comment_update();
create trigger comments_set_updated_at before update on public.comments
  for each row execute function private.set_updated_at();
create trigger comments_sync_mentions after insert or update of content on public.comments
  for each row execute function private.sync_comment_mentions();
create trigger comments_audit after insert or update or delete on public.comments
  for each row execute function private.audit_row_change();
create trigger comment_mentions_fill_context before insert or update on public.comment_mentions
  for each row execute function private.fill_comment_context();
create trigger comment_reactions_fill_context before insert or update on public.comment_reactions
  for each row execute function private.fill_comment_context();
create trigger comment_reactions_audit after insert or update or delete on public.comment_reactions
  for each row execute function private.audit_row_change();

alter table public.task_watchers enable row level security;
alter table public.task_commits enable row level security;
alter table public.comments enable row level security;
alter table public.comment_mentions enable row level security;
alter table public.comment_reactions enable row level security;

-- task_watchers: readers of the task see its watchers; one watches oneself, a project editor adds anyone who can read.
create policy task_watchers_select on public.task_watchers for select to authenticated
  using (project_id in (select private.readable_project_ids()));
create policy task_watchers_insert on public.task_watchers for insert to authenticated
  with check (private.task_is_live(task_id) and private.can_read_project(project_id)
              and (user_id = (select auth.uid()) or private.can_edit_project(project_id)));
create policy task_watchers_delete on public.task_watchers for delete to authenticated
  using (user_id = (select auth.uid()) or private.can_edit_project(project_id));

-- task_commits: readable with the project, linked and unlinked by its editors.
create policy task_commits_select on public.task_commits for select to authenticated
  using (project_id in (select private.readable_project_ids()));
create policy task_commits_insert on public.task_commits for insert to authenticated
  with check (private.can_edit_project(project_id));
create policy task_commits_delete on public.task_commits for delete to authenticated
  using (private.can_edit_project(project_id));

-- comments_select: readers of a task that is not soft-deleted; a deleted comment only for its author and project editors.
create policy comments_select on public.comments for select to authenticated
  using (project_id in (select private.readable_project_ids()) and private.task_is_live(task_id)
         and (deleted_at is null or user_id = (select auth.uid()) or private.can_edit_project(project_id)));
-- comments_insert: commenters and above, as themselves, on a task that is not deleted.
create policy comments_insert on public.comments for insert to authenticated
  with check (user_id = (select auth.uid()) and private.task_is_live(task_id) and private.can_comment_on_project(project_id));
-- comments_update: the author (content, delete) or a project editor (delete and restore); see check_comment_update.
create policy comments_update on public.comments for update to authenticated
  using (user_id = (select auth.uid()) or private.can_edit_project(project_id))
  with check (user_id = (select auth.uid()) or private.can_edit_project(project_id));

-- comment_mentions: readable with the comment; the comment's author adds or removes explicit mentions.
create policy comment_mentions_select on public.comment_mentions for select to authenticated
  using (exists (select 1 from public.comments c where c.id = comment_id));
create policy comment_mentions_insert on public.comment_mentions for insert to authenticated
  with check (source = 'explicit'
              and exists (select 1 from public.comments c where c.id = comment_id and c.user_id = (select auth.uid())
                          and c.deleted_at is null));
create policy comment_mentions_delete on public.comment_mentions for delete to authenticated
  using (exists (select 1 from public.comments c where c.id = comment_id and c.user_id = (select auth.uid())));

-- comment_reactions: readable with the comment; anyone who reads a live comment reacts as themself.
create policy comment_reactions_select on public.comment_reactions for select to authenticated
  using (exists (select 1 from public.comments c where c.id = comment_id));
create policy comment_reactions_insert on public.comment_reactions for insert to authenticated
  with check (user_id = (select auth.uid())
              and exists (select 1 from public.comments c where c.id = comment_id and c.deleted_at is null));
create policy comment_reactions_delete on public.comment_reactions for delete to authenticated
  using (user_id = (select auth.uid()));

grant select, delete on public.task_watchers to authenticated, service_role;
grant insert (task_id, user_id) on public.task_watchers to authenticated, service_role;
grant select, delete on public.task_commits to authenticated, service_role;
grant insert (task_id, sha, message, author, committed_at, url) on public.task_commits to authenticated, service_role;
grant select on public.comments to authenticated, service_role;
grant insert (task_id, parent_comment_id, content, content_type) on public.comments to authenticated, service_role;
grant update (content, content_type, deleted_at) on public.comments to authenticated, service_role;
grant select, delete on public.comment_mentions to authenticated, service_role;
grant insert (comment_id, user_id) on public.comment_mentions to authenticated, service_role;
grant select, delete on public.comment_reactions to authenticated, service_role;
grant insert (comment_id, emoji) on public.comment_reactions to authenticated, service_role;


-- =====================================================================================================================
-- source: supabase/schemas/53-work-notifications-activities.sql
-- =====================================================================================================================
-- Work management (seed 004): notifications (private.notify, mark_notifications_read, the due-soon sweep), activities
-- (private.record_activity), what writes them, the comment.created event and the realtime publication.

insert into public.webhook_event_types (key, description) values
  ('comment.created', 'A comment was added to a task (payload: comment_id, task_id, project_id, user_id, parent_comment_id)');

create table public.notifications (
  id uuid not null default gen_random_uuid(),
  user_id uuid not null,
  organization_id uuid not null,
  type text not null,
  title text not null,
  content text not null,
  related_project_id uuid not null,
  related_task_id uuid,
  action_url text,
  dedupe_key text,
  read_at timestamptz,
  is_read boolean not null generated always as (read_at is not null) stored,
  created_at timestamptz not null default now(),
  constraint notifications_pkey primary key (id),
  constraint notifications_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint notifications_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint notifications_related_project_id_fkey foreign key (related_project_id) references public.projects (id) on delete cascade,
  constraint notifications_related_task_id_fkey foreign key (related_task_id) references public.tasks (id) on delete cascade,
  constraint notifications_user_dedupe_key unique (user_id, dedupe_key),
  constraint notifications_type_known check (type in ('task_assigned', 'mention', 'comment', 'status_changed', 'task_due_soon')),
  constraint notifications_title_length check (char_length(btrim(title)) between 1 and 300),
  constraint notifications_content_length check (char_length(content) <= 2000),
  constraint notifications_action_url_format check (action_url is null or action_url ~ '^/[^/\s][^\s]*$' or action_url ~ '^https://[^\s]+$')
);
comment on table public.notifications is 'A user''s notifications (seed 004): assignment, mention, a comment or status change on a watched task, a due date within 24 hours. Written only by private.notify(); each user reads, marks read (mark_notifications_read) and deletes only their own. Published to realtime.';
comment on column public.notifications.user_id is 'The recipient (the seed''s userId).';
comment on column public.notifications.related_project_id is 'The project it is about (the seed''s relatedProjectId); the recipient must be able to read it.';
comment on column public.notifications.related_task_id is 'The task it is about, if any (the seed''s relatedTaskId).';
comment on column public.notifications.type is 'task_assigned, mention, comment (on a watched task), status_changed (of a watched task), task_due_soon.';
comment on column public.notifications.action_url is 'Where the app takes the user: a path of the app (/projects/<id>/tasks/<id>) or an https URL.';
comment on column public.notifications.dedupe_key is 'Set when a notification must exist at most once per recipient (task_due_soon: one per task and due date).';
comment on column public.notifications.is_read is 'Derived from read_at.';
comment on column public.notifications.organization_id is 'The organization the notification is about (the project''s).';

create index notifications_user_id_idx on public.notifications (user_id, created_at desc);
create index notifications_unread_idx on public.notifications (user_id) where read_at is null;
create index notifications_organization_id_idx on public.notifications (organization_id);
create index notifications_related_project_id_idx on public.notifications (related_project_id);
create index notifications_related_task_id_idx on public.notifications (related_task_id);

alter table public.notifications enable row level security;

-- notifications: each user reads and deletes their own; read_at changes only through mark_notifications_read().
create policy notifications_select on public.notifications for select to authenticated
  using (user_id = (select auth.uid()));
create policy notifications_delete on public.notifications for delete to authenticated
  using (user_id = (select auth.uid()));

grant select, delete on public.notifications to authenticated, service_role;

-- The one way a notification is written. Never to the user who caused it, never about a project the recipient cannot
-- read; idempotent per (recipient, dedupe_key). Returns the id, or null when nothing was written.
create function private.notify(recipient uuid, type text, title text, content text default null,
                               project_id uuid default null, task_id uuid default null, action_url text default null,
                               dedupe_key text default null)
returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  organization uuid;
  project uuid := notify.project_id;
  new_id uuid;
begin
  if recipient is null or recipient is not distinct from (select auth.uid()) then
    return null;
  end if;
  if project is null and notify.task_id is not null then
    select t.project_id into project from public.tasks t where t.id = notify.task_id;
  end if;
  if project is null then
    raise exception 'a notification is about a project or a task' using errcode = '22023';
  end if;
  select p.organization_id into organization from public.projects p where p.id = project;
  if not private.user_can_read_project(project, recipient) then
    return null;
  end if;
  insert into public.notifications (user_id, organization_id, type, title, content, related_project_id, related_task_id,
                                    action_url, dedupe_key)
  values (recipient, organization, notify.type, left(notify.title, 300),
          left(private.redact_text(coalesce(nullif(btrim(notify.content), ''), notify.title)), 2000),
          project, notify.task_id, notify.action_url, notify.dedupe_key)
  on conflict on constraint notifications_user_dedupe_key do nothing
  returning id into new_id;
  return new_id;
end;
$$;
comment on function private.notify(uuid, text, text, text, uuid, uuid, text, text) is 'Writes one notification unless the recipient caused it or cannot read the project (returns null then); content (the title when omitted) passes through redact_text; at most one per recipient and dedupe_key. Not granted to API roles.';

create function public.mark_notifications_read(ids uuid[] default null) returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  marked integer;
begin
  update public.notifications n set read_at = pg_catalog.now()
  where n.user_id = uid and n.read_at is null and (ids is null or n.id = any (ids));
  get diagnostics marked = row_count;
  return marked;
end;
$$;
comment on function public.mark_notifications_read(uuid[]) is 'Marks the caller''s unread notifications read: those listed, or all of them when ids is null; others'' ids are ignored. Returns how many changed.';

grant execute on function public.mark_notifications_read(uuid[]) to authenticated;

create table public.activities (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  user_id uuid,
  project_id uuid,
  task_id uuid,
  type text not null,
  description text not null,
  changes jsonb not null default '{}'::jsonb,
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  constraint activities_pkey primary key (id),
  constraint activities_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint activities_user_id_fkey foreign key (user_id) references auth.users (id) on delete set null,
  constraint activities_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade,
  constraint activities_task_id_fkey foreign key (task_id) references public.tasks (id) on delete cascade,
  constraint activities_type_format check (type ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
  constraint activities_description_length check (char_length(btrim(description)) between 1 and 1000),
  constraint activities_changes_object check (jsonb_typeof(changes) = 'object'),
  constraint activities_metadata_object check (jsonb_typeof(metadata) = 'object')
);
comment on table public.activities is 'The activity feed (seed 004 activities, seed 000 activity_logs): who did what in the organization. Written only by private.record_activity(); readable by whoever reads its project, or, without a project, by the actor and audit.read holders. Never changed.';
comment on column public.activities.user_id is 'Who did it (the seed''s userId, the actor); null for the system (workers, pg_cron) and once the account is erased.';
comment on column public.activities.type is 'Dotted event name (task.created, task.status_changed, task.assigned, comment.created, webhook.disabled, ...).';
comment on column public.activities.changes is 'Only the changed columns: {"column": {"before": ..., "after": ...}}, text values passed through redact_text.';

create index activities_organization_id_idx on public.activities (organization_id, created_at desc);
create index activities_user_id_idx on public.activities (user_id);
create index activities_project_id_idx on public.activities (project_id, created_at desc);
create index activities_task_id_idx on public.activities (task_id);

alter table public.activities enable row level security;

-- activities_select: with a project, its readers; without one, the actor and audit.read holders of the organization.
create policy activities_select on public.activities for select to authenticated
  using (case when project_id is not null then project_id in (select private.readable_project_ids())
              else user_id = (select auth.uid())
                   or organization_id in (select private.organizations_with_permission('audit.read')) end);

grant select on public.activities to authenticated, service_role;

-- A JSON value with its text redacted: strings through redact_text, arrays and objects element by element.
create function private.redact_json_value(value jsonb) returns jsonb
language sql immutable parallel safe
set search_path = ''
as $$
  select case jsonb_typeof(value)
           when 'string' then to_jsonb(private.redact_text(value #>> '{}'))
           when 'array' then coalesce((select jsonb_agg(private.redact_json_value(e) order by o)
                                      from jsonb_array_elements(value) with ordinality x(e, o)), '[]'::jsonb)
           when 'object' then coalesce((select jsonb_object_agg(k, private.redact_json_value(v)) from jsonb_each(value) y(k, v)),
                                       '{}'::jsonb)
           else value end
$$;

-- The one way an activity is written (other domains call it too). changes holds only the columns whose value differs
-- between before and after, redacted.
create function private.record_activity(organization_id uuid, type text, description text, project_id uuid default null,
                                        task_id uuid default null, before jsonb default null, after jsonb default null,
                                        metadata jsonb default '{}'::jsonb, actor_id uuid default auth.uid())
returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  changed jsonb;
  new_id uuid;
begin
  if organization_id is null then
    raise exception 'an activity belongs to an organization' using errcode = '22023';
  end if;
  if (before is not null and jsonb_typeof(before) <> 'object') or (after is not null and jsonb_typeof(after) <> 'object') then
    raise exception 'before and after must be JSON objects of column values' using errcode = '22023';
  end if;
  select coalesce(jsonb_object_agg(k, jsonb_build_object('before', private.redact_json_value(coalesce(before -> k, 'null'::jsonb)),
                                                         'after', private.redact_json_value(coalesce(after -> k, 'null'::jsonb)))),
                  '{}'::jsonb)
  into changed
  from (select jsonb_object_keys(coalesce(before, '{}'::jsonb)) union select jsonb_object_keys(coalesce(after, '{}'::jsonb))) x(k)
  where k not in ('updated_at', 'search_vector')
    and coalesce(before -> k, 'null'::jsonb) is distinct from coalesce(after -> k, 'null'::jsonb);
  insert into public.activities (organization_id, user_id, project_id, task_id, type, description, changes, metadata)
  values (record_activity.organization_id, record_activity.actor_id, record_activity.project_id, record_activity.task_id,
          record_activity.type, left(private.redact_text(record_activity.description), 1000), changed,
          private.redact_json_value(coalesce(record_activity.metadata, '{}'::jsonb)))
  returning id into new_id;
  return new_id;
end;
$$;
comment on function private.record_activity(uuid, text, text, uuid, uuid, jsonb, jsonb, jsonb, uuid) is 'Writes one activity: changes = before/after of the columns that differ (updated_at ignored), text redacted with redact_text; description and metadata redacted too. Not granted to API roles.';

create function private.task_action_url(project uuid, task uuid) returns text
language sql immutable
set search_path = ''
as $$ select '/projects/' || project::text || '/tasks/' || task::text $$;

-- tasks: created, deleted or restored, status changed (watchers are told), assigned (the assignee is told).
create function private.task_activity() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  watcher uuid;
begin
  if tg_op = 'INSERT' then
    perform private.record_activity(new.organization_id, 'task.created', format('Task "%s" was created', new.title),
      new.project_id, new.id, null, jsonb_build_object('title', new.title, 'status', new.status, 'assignee_id', new.assignee_id));
  else
    -- Soft delete and restore, once for the task deleted or restored: a subtask that goes with its parent (deleted with
    -- the parent's timestamp, or restored in the transaction that restored the parent) is not recorded on its own.
    if new.deleted_at is distinct from old.deleted_at and not exists (
         select 1 from public.tasks p where p.id = new.parent_task_id
         and case when new.deleted_at is not null then p.deleted_at = new.deleted_at
                  else p.deleted_at is null and p.updated_at = pg_catalog.now() end) then
      perform private.record_activity(new.organization_id, case when new.deleted_at is null then 'task.restored' else 'task.deleted' end,
        format(case when new.deleted_at is null then 'Task "%s" was restored' else 'Task "%s" was deleted' end, new.title),
        new.project_id, new.id, jsonb_build_object('deleted_at', old.deleted_at), jsonb_build_object('deleted_at', new.deleted_at));
    end if;
    if new.status is distinct from old.status then
      perform private.record_activity(new.organization_id, 'task.status_changed',
        format('Task "%s" moved from %s to %s', new.title, old.status, new.status), new.project_id, new.id,
        jsonb_build_object('status', old.status, 'blocked_reason', old.blocked_reason),
        jsonb_build_object('status', new.status, 'blocked_reason', new.blocked_reason));
      for watcher in select w.user_id from public.task_watchers w where w.task_id = new.id loop
        perform private.notify(watcher, 'status_changed', format('"%s" is now %s', new.title, replace(new.status, '_', ' ')),
          new.blocked_reason, new.project_id, new.id, private.task_action_url(new.project_id, new.id));
      end loop;
    end if;
  end if;
  if new.assignee_id is not null and (tg_op = 'INSERT' or new.assignee_id is distinct from old.assignee_id) then
    if tg_op = 'UPDATE' then
      perform private.record_activity(new.organization_id, 'task.assigned', format('Task "%s" was reassigned', new.title),
        new.project_id, new.id, jsonb_build_object('assignee_id', old.assignee_id), jsonb_build_object('assignee_id', new.assignee_id));
    end if;
    perform private.notify(new.assignee_id, 'task_assigned', format('You were assigned "%s"', new.title), null,
      new.project_id, new.id, private.task_action_url(new.project_id, new.id));
  elsif tg_op = 'UPDATE' and new.assignee_id is null and old.assignee_id is not null then
    perform private.record_activity(new.organization_id, 'task.assigned', format('Task "%s" was unassigned', new.title),
      new.project_id, new.id, jsonb_build_object('assignee_id', old.assignee_id), jsonb_build_object('assignee_id', null));
  end if;
  return null;
end;
$$;

create trigger tasks_record_activity after insert or update of status, assignee_id, deleted_at on public.tasks
  for each row execute function private.task_activity();

-- comments: the activity, the comment.created event, and the watchers' notification (those the comment mentions are
-- told by the mention instead). Named to fire after comments_sync_mentions (triggers fire in name order).
create function private.comment_created() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  task record;
  watcher uuid;
  url text;
begin
  select t.title into task from public.tasks t where t.id = new.task_id;
  url := private.task_action_url(new.project_id, new.task_id) || '#comment-' || new.id::text;
  perform private.record_activity(new.organization_id, 'comment.created', format('Comment on "%s"', task.title),
    new.project_id, new.task_id, null, null,
    jsonb_build_object('comment_id', new.id, 'parent_comment_id', new.parent_comment_id), new.user_id);
  perform private.emit_event(new.organization_id, 'comment.created',
    jsonb_build_object('comment_id', new.id, 'task_id', new.task_id, 'project_id', new.project_id,
                       'user_id', new.user_id, 'parent_comment_id', new.parent_comment_id),
    project_id => new.project_id);
  for watcher in select w.user_id from public.task_watchers w where w.task_id = new.task_id
                 and w.user_id is distinct from new.user_id
                 and not exists (select 1 from public.comment_mentions m where m.comment_id = new.id and m.user_id = w.user_id) loop
    perform private.notify(watcher, 'comment', format('New comment on "%s"', task.title), left(new.content, 280),
      new.project_id, new.task_id, url);
  end loop;
  return null;
end;
$$;

create trigger comments_watchers_notified after insert on public.comments
  for each row execute function private.comment_created();

-- A comment deleted or restored is an activity too (the content never goes into it).
create function private.comment_deleted_or_restored() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform private.record_activity(new.organization_id,
    case when new.deleted_at is null then 'comment.restored' else 'comment.deleted' end,
    case when new.deleted_at is null then 'A comment was restored' else 'A comment was deleted' end,
    new.project_id, new.task_id, null, null, jsonb_build_object('comment_id', new.id));
  return null;
end;
$$;

create trigger comments_record_deletion after update of deleted_at on public.comments
  for each row when (old.deleted_at is distinct from new.deleted_at) execute function private.comment_deleted_or_restored();

-- comment_mentions: the mentioned member is told (whether resolved from the content or added by the author).
create function private.mention_created() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  c record;
begin
  select cm.project_id, cm.task_id, cm.content, cm.user_id, t.title into c
  from public.comments cm join public.tasks t on t.id = cm.task_id where cm.id = new.comment_id;
  if c.user_id is distinct from new.user_id then
    perform private.notify(new.user_id, 'mention', format('You were mentioned on "%s"', c.title), left(c.content, 280),
      c.project_id, c.task_id, private.task_action_url(c.project_id, c.task_id) || '#comment-' || new.comment_id::text);
  end if;
  return null;
end;
$$;

create trigger comment_mentions_notify after insert on public.comment_mentions
  for each row execute function private.mention_created();

-- Connectors (44-connectors-webhook-deliveries.sql): a webhook being disabled, by its owner or by the dispatcher after
-- five dead deliveries (record_webhook_deliveries), is an activity of the organization. A trigger here rather than a
-- call there, since 44 is built before this file. project_id is read from the row as JSON so this works whether or not
-- webhooks.project_id exists yet.
create function private.webhook_disabled_activity() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  project uuid := (to_jsonb(new) ->> 'project_id')::uuid;
begin
  perform private.record_activity(new.organization_id, 'webhook.disabled',
    case when new.disabled_reason is not null then format('Webhook "%s" was disabled: %s', new.name, new.disabled_reason)
         else format('Webhook "%s" was disabled', new.name) end,
    project, null, jsonb_build_object('is_enabled', old.is_enabled), jsonb_build_object('is_enabled', new.is_enabled),
    jsonb_build_object('webhook_id', new.id, 'failure_count', new.failure_count, 'by_dispatcher', new.disabled_reason is not null));
  return null;
end;
$$;

create trigger webhooks_record_disabled_activity after update of is_enabled on public.webhooks
  for each row when (old.is_enabled and not new.is_enabled)
  execute function private.webhook_disabled_activity();

-- pg_cron (90-scheduled-jobs.sql): tasks due within 24 hours, not done and not deleted, notify their assignee and
-- watchers, once per task and due date (a moved due date notifies again).
create function private.notify_tasks_due_soon() returns integer
language plpgsql security definer
set search_path = ''
as $$
declare
  sent integer := 0;
  r record;
begin
  for r in
    select t.id, t.project_id, t.title, t.due_date, u.user_id
    from public.tasks t
    cross join lateral (select t.assignee_id as user_id union select w.user_id from public.task_watchers w where w.task_id = t.id) u
    where t.deleted_at is null and t.status <> 'done' and t.due_date is not null
      and t.due_date > pg_catalog.now() and t.due_date <= pg_catalog.now() + interval '24 hours' and u.user_id is not null
  loop
    if private.notify(r.user_id, 'task_due_soon', format('"%s" is due within 24 hours', r.title), null, r.project_id, r.id,
                      private.task_action_url(r.project_id, r.id),
                      'task_due_soon:' || r.id::text || ':' || to_char(r.due_date at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')) is not null then
      sent := sent + 1;
    end if;
  end loop;
  return sent;
end;
$$;
comment on function private.notify_tasks_due_soon() is 'pg_cron: notifies the assignee and watchers of each open task due within 24 hours, at most once per task and due date; returns how many notifications were written.';

-- A user's collaboration data for export_my_data() (36-privacy-health-export-erasure.sql): comments written,
-- reactions, watched tasks, notifications received, activities as actor. Erasure (deleting the account) deletes
-- their reactions, watches, mentions and notifications and keeps the organization's comments and activities with the
-- author and actor set to null.
create function private.work_collab_personal_data(uid uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'comments', coalesce((select jsonb_agg(jsonb_build_object('id', c.id, 'task_id', c.task_id, 'project_id', c.project_id,
        'parent_comment_id', c.parent_comment_id, 'content', c.content, 'created_at', c.created_at, 'edited_at', c.edited_at,
        'deleted_at', c.deleted_at) order by c.created_at, c.id)
      from public.comments c where c.user_id = uid), '[]'::jsonb),
    'comment_reactions', coalesce((select jsonb_agg(jsonb_build_object('comment_id', r.comment_id, 'emoji', r.emoji,
        'created_at', r.created_at) order by r.created_at, r.comment_id, r.emoji)
      from public.comment_reactions r where r.user_id = uid), '[]'::jsonb),
    'task_watches', coalesce((select jsonb_agg(jsonb_build_object('task_id', w.task_id, 'project_id', w.project_id,
        'created_at', w.created_at) order by w.created_at, w.task_id)
      from public.task_watchers w where w.user_id = uid), '[]'::jsonb),
    'notifications', coalesce((select jsonb_agg(jsonb_build_object('id', n.id, 'type', n.type, 'title', n.title,
        'content', n.content, 'related_project_id', n.related_project_id, 'related_task_id', n.related_task_id,
        'read_at', n.read_at, 'created_at', n.created_at) order by n.created_at, n.id)
      from public.notifications n where n.user_id = uid), '[]'::jsonb),
    'activities', coalesce((select jsonb_agg(jsonb_build_object('id', a.id, 'organization_id', a.organization_id,
        'project_id', a.project_id, 'task_id', a.task_id, 'type', a.type, 'description', a.description,
        'changes', a.changes, 'created_at', a.created_at) order by a.created_at, a.id)
      from public.activities a where a.user_id = uid), '[]'::jsonb))
$$;
comment on function private.work_collab_personal_data(uuid) is 'A user''s collaboration data for their export: comments, reactions, watched tasks, notifications, activities as actor.';

-- Realtime: apps follow tasks, comments and their own notifications live, under RLS.
alter publication supabase_realtime add table public.tasks, public.comments, public.notifications;


-- =====================================================================================================================
-- source: supabase/schemas/54-work-time.sql
-- =====================================================================================================================
-- Work management (seed 004): time_entries (one running timer, no overlaps), task_executions (AI runs of a task), and
-- the derived totals rolled up the task tree: tasks.actual_minutes/actual_cost, projects.actual_hours/total_cost.

-- The exact minute total behind projects.actual_hours (hours are rounded to 2 places, minutes are exact, so the
-- incremental roll-up never drifts).
alter table public.projects add column actual_minutes integer not null default 0;
alter table public.projects add constraint projects_actual_minutes_non_negative check (actual_minutes >= 0);
comment on column public.projects.actual_minutes is 'Derived: whole minutes of the project''s live tasks'' time entries (the sum of its live root tasks'' actual_minutes); actual_hours is this over 60, rounded to 2 places. Kept by the database; not writable by clients.';

create table public.time_entries (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  project_id uuid not null,
  task_id uuid not null,
  user_id uuid default auth.uid(),
  start_time timestamptz not null default now(),
  end_time timestamptz,
  duration integer generated always as ((extract(epoch from (end_time - start_time)))::integer) stored,
  description text,
  is_manual boolean not null default false,
  is_billable boolean not null default false,
  hourly_rate numeric(10, 2),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint time_entries_pkey primary key (id),
  constraint time_entries_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint time_entries_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade,
  constraint time_entries_task_id_fkey foreign key (task_id) references public.tasks (id) on delete cascade,
  constraint time_entries_user_id_fkey foreign key (user_id) references auth.users (id) on delete set null,
  constraint time_entries_period_ordered check (end_time is null or end_time > start_time),
  constraint time_entries_running_has_user check (end_time is not null or user_id is not null),
  constraint time_entries_description_length check (description is null or char_length(description) <= 2000),
  constraint time_entries_hourly_rate_billable check (hourly_rate is null or (is_billable and hourly_rate >= 0)),
  constraint time_entries_no_overlap exclude using gist (
    user_id with =, tstzrange(start_time, coalesce(end_time, 'infinity'::timestamptz), '[)') with &&)
);
comment on table public.time_entries is 'Time a user tracked on a task (seed 004). A running timer has no end_time; at most one runs per user and a user''s entries never overlap (time_entries_no_overlap, 23P01). Readable by whoever reads the project; logged by project owners, editors and commenters (not viewers) and projects.admin holders, for themselves; someone else''s entry is changed only with projects.admin.';
comment on column public.time_entries.organization_id is 'The task''s organization (copied by trigger).';
comment on column public.time_entries.project_id is 'The task''s project (copied by trigger, for policies and the roll-up).';
comment on column public.time_entries.user_id is 'Who tracked the time (the caller by default). Null once their account is deleted: the entry and the organization''s totals stay.';
comment on column public.time_entries.end_time is 'Null while the timer runs; a running timer counts nothing towards the totals until it stops.';
comment on column public.time_entries.duration is 'Derived: seconds between start_time and end_time; null while running. Each finished entry adds round(duration / 60) minutes to its task.';
comment on column public.time_entries.is_manual is 'Entered by hand rather than by a timer (the seed''s isManual).';
comment on column public.time_entries.hourly_rate is 'Rate for billable time (only when is_billable, time_entries_hourly_rate_billable).';

create unique index time_entries_one_running_timer on public.time_entries (user_id) where end_time is null;
create index time_entries_task_id_idx on public.time_entries (task_id);
create index time_entries_project_id_idx on public.time_entries (project_id, start_time);
create index time_entries_organization_id_idx on public.time_entries (organization_id);
create index time_entries_user_id_idx on public.time_entries (user_id, start_time);

create table public.task_executions (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  project_id uuid not null,
  task_id uuid not null,
  execution_number integer not null,
  ai_agent_task_id uuid,
  started_by uuid default auth.uid(),
  prompt text not null,
  response text,
  context text,
  ai_provider text not null,
  model text not null,
  temperature numeric(3, 2),
  max_tokens integer,
  tokens_used jsonb,
  duration integer,
  cost numeric(14, 6),
  status text not null default 'running',
  error_message text,
  retry_count integer not null default 0,
  user_feedback text,
  rating integer,
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint task_executions_pkey primary key (id),
  constraint task_executions_task_number_key unique (task_id, execution_number),
  constraint task_executions_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint task_executions_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade,
  constraint task_executions_task_id_fkey foreign key (task_id) references public.tasks (id) on delete cascade,
  constraint task_executions_ai_agent_task_id_fkey foreign key (ai_agent_task_id) references public.ai_agent_tasks (id) on delete set null,
  constraint task_executions_started_by_fkey foreign key (started_by) references auth.users (id) on delete set null,
  constraint task_executions_prompt_length check (char_length(prompt) between 1 and 200000),
  constraint task_executions_ai_provider_known check (ai_provider in ('openai', 'anthropic', 'google', 'local')),
  constraint task_executions_model_length check (char_length(model) between 1 and 200),
  constraint task_executions_temperature_range check (temperature is null or temperature between 0 and 2),
  constraint task_executions_max_tokens_positive check (max_tokens is null or max_tokens > 0),
  constraint task_executions_tokens_used_shape check (private.is_valid_token_usage(tokens_used)),
  constraint task_executions_duration_non_negative check (duration is null or duration >= 0),
  constraint task_executions_cost_non_negative check (cost is null or cost >= 0),
  constraint task_executions_status_known check (status in ('running', 'success', 'failed', 'cancelled')),
  constraint task_executions_retry_count_range check (retry_count between 0 and 100),
  constraint task_executions_rating_range check (rating is null or rating between 1 and 5),
  constraint task_executions_completed_when_final check ((completed_at is not null) = (status <> 'running')),
  constraint task_executions_error_when_failed check (status = 'failed' or error_message is null)
);
comment on table public.task_executions is 'AI runs of a task (seed 004): prompt, response, model, tokens, duration, cost, outcome, the user''s feedback. Readable by whoever reads the project; written by its owners and editors and projects.admin holders. Each run''s cost adds to its task''s actual_cost and up the tree.';
comment on column public.task_executions.execution_number is 'Run number within the task (1, 2, ...), assigned by trigger under a per-task lock.';
comment on column public.task_executions.ai_agent_task_id is 'The workflow engine''s ai_agent_tasks row when the engine ran it (same organization); null for runs recorded by an app.';
comment on column public.task_executions.started_by is 'Who started the run (the caller by default); null once their account is deleted.';
comment on column public.task_executions.tokens_used is 'Token usage: an object of non-negative numbers keyed prompt_tokens, completion_tokens, total_tokens, cached_tokens.';
comment on column public.task_executions.duration is 'Run time in milliseconds.';
comment on column public.task_executions.cost is 'Cost in USD; counts towards the task''s actual_cost whatever the status (a failed call is paid for too).';
comment on column public.task_executions.completed_at is 'Set when the status leaves running (filled in by trigger when omitted), null while running.';

create index task_executions_task_id_idx on public.task_executions (task_id, status);
create index task_executions_project_id_idx on public.task_executions (project_id);
create index task_executions_organization_id_idx on public.task_executions (organization_id);
create index task_executions_ai_agent_task_id_idx on public.task_executions (ai_agent_task_id);
create index task_executions_started_by_idx on public.task_executions (started_by);

-- Who may log time on a project: the same people as may comment on it (private.can_comment_on_project, 52): its
-- owners, editors and commenters and projects.admin holders; viewers only read.
create function private.is_project_admin(project uuid) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return coalesce(private.has_permission((select pr.organization_id from public.projects pr where pr.id = is_project_admin.project),
                                         'projects.admin'), false);
end;
$$;
comment on function private.is_project_admin(uuid) is 'Whether the caller holds projects.admin in the project''s organization.';

grant execute on function private.is_project_admin(uuid) to authenticated, service_role;

-- The roll-up: adds a change of minutes and cost to a task and, while the task counts towards its parent (it is not
-- soft-deleted), to each ancestor and finally to the project. One UPDATE per ancestor, each `x = x + delta`, so two
-- transactions changing sibling subtasks queue on the shared parent row and neither loses its update (READ
-- COMMITTED re-reads the row after the lock); locks are taken leaf to root, so paths never lock in opposite orders.
create function private.roll_up_task_totals(task uuid, minutes integer, cost numeric) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  current_task uuid := task;
  parent uuid;
  project uuid;
  live boolean;
begin
  if coalesce(minutes, 0) = 0 and coalesce(cost, 0) = 0 then
    return;
  end if;
  loop
    update public.tasks t
    set actual_minutes = t.actual_minutes + coalesce(minutes, 0), actual_cost = t.actual_cost + coalesce(cost, 0)
    where t.id = current_task
    returning t.parent_task_id, t.project_id, t.deleted_at is null into parent, project, live;
    if not found or not live then
      return;
    end if;
    exit when parent is null;
    current_task := parent;
  end loop;
  update public.projects p
  set actual_minutes = p.actual_minutes + coalesce(minutes, 0),
      actual_hours = round((p.actual_minutes + coalesce(minutes, 0)) / 60.0, 2),
      total_cost = p.total_cost + coalesce(cost, 0)
  where p.id = project;
end;
$$;
comment on function private.roll_up_task_totals(uuid, integer, numeric) is 'Adds minutes and cost to a task, its live ancestors and its project (a soft-deleted task keeps its own total but stops counting above it).';

-- tasks: a task counts towards its parent while it is not soft-deleted. Deleting, restoring, re-parenting or removing
-- a task moves its total (as it stood at that change) out of or into the ancestors above it; the subtasks a soft
-- delete reaches are handled by their own rows' triggers, in whatever order they fire.
create function private.roll_up_task_change() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  was_counted boolean := tg_op <> 'INSERT' and old.deleted_at is null;
  is_counted boolean := tg_op <> 'DELETE' and new.deleted_at is null;
  moved boolean := tg_op = 'UPDATE' and old.parent_task_id is distinct from new.parent_task_id;
begin
  if was_counted and (not is_counted or moved) then
    if old.parent_task_id is null then
      update public.projects p
      set actual_minutes = p.actual_minutes - old.actual_minutes,
          actual_hours = round((p.actual_minutes - old.actual_minutes) / 60.0, 2),
          total_cost = p.total_cost - old.actual_cost
      where p.id = old.project_id;
    else
      perform private.roll_up_task_totals(old.parent_task_id, -old.actual_minutes, -old.actual_cost);
    end if;
  end if;
  if is_counted and (not was_counted or moved) then
    if new.parent_task_id is null then
      update public.projects p
      set actual_minutes = p.actual_minutes + new.actual_minutes,
          actual_hours = round((p.actual_minutes + new.actual_minutes) / 60.0, 2),
          total_cost = p.total_cost + new.actual_cost
      where p.id = new.project_id;
    else
      perform private.roll_up_task_totals(new.parent_task_id, new.actual_minutes, new.actual_cost);
    end if;
  end if;
  return null;
end;
$$;

create trigger tasks_roll_up_totals after update of deleted_at, parent_task_id or delete on public.tasks
  for each row execute function private.roll_up_task_change();

-- time_entries: organization and project from the task; a user has one running timer (checked here for a clear
-- message, enforced by the unique index under concurrency); when an account is deleted its running timer stops.
create function private.check_time_entry() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  select t.organization_id, t.project_id into new.organization_id, new.project_id from public.tasks t where t.id = new.task_id;
  if new.project_id is null then
    raise exception 'task % does not exist', new.task_id using errcode = '23503';
  end if;
  if tg_op = 'UPDATE' and new.user_id is null and old.user_id is not null and new.end_time is null then
    new.end_time := greatest(pg_catalog.now(), new.start_time + interval '1 second');
  end if;
  if new.end_time is null and new.user_id is not null
     and (tg_op = 'INSERT' or old.end_time is not null or new.user_id is distinct from old.user_id)
     and exists (select 1 from public.time_entries e where e.user_id = new.user_id and e.end_time is null and e.id <> new.id) then
    raise exception 'a timer is already running for this user' using errcode = '23505',
      constraint = 'time_entries_one_running_timer', hint = 'Stop the running timer (set its end_time) first.';
  end if;
  return new;
end;
$$;

-- The entry's user is a member of the organization (an AFTER trigger, so that row-level security answers first).
create function private.check_time_entry_user() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if not exists (select 1 from public.organization_members m where m.organization_id = new.organization_id and m.user_id = new.user_id) then
    raise exception 'time is tracked only for members of the task''s organization' using errcode = '23514',
      constraint = 'time_entries_user_is_member';
  end if;
  return null;
end;
$$;

-- Each finished entry adds round(duration / 60) whole minutes to its task and up the tree.
create function private.roll_up_time_entry() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  old_minutes integer := case when tg_op <> 'INSERT' then coalesce(round(old.duration / 60.0)::integer, 0) else 0 end;
  new_minutes integer := case when tg_op <> 'DELETE' then coalesce(round(new.duration / 60.0)::integer, 0) else 0 end;
begin
  if tg_op = 'UPDATE' and old.task_id = new.task_id then
    perform private.roll_up_task_totals(new.task_id, new_minutes - old_minutes, 0);
  else
    if tg_op <> 'INSERT' then
      perform private.roll_up_task_totals(old.task_id, -old_minutes, 0);
    end if;
    if tg_op <> 'DELETE' then
      perform private.roll_up_task_totals(new.task_id, new_minutes, 0);
    end if;
  end if;
  return null;
end;
$$;

create trigger time_entries_check before insert or update on public.time_entries
  for each row execute function private.check_time_entry();
create trigger time_entries_check_user after insert or update of user_id on public.time_entries
  for each row when (new.user_id is not null) execute function private.check_time_entry_user();
create trigger time_entries_set_updated_at before update on public.time_entries
  for each row execute function private.set_updated_at();
create trigger time_entries_roll_up after insert or delete on public.time_entries
  for each row execute function private.roll_up_time_entry();
create trigger time_entries_roll_up_change after update on public.time_entries
  for each row when (old.task_id is distinct from new.task_id or old.duration is distinct from new.duration)
  execute function private.roll_up_time_entry();
create trigger time_entries_audit after insert or update or delete on public.time_entries
  for each row execute function private.audit_row_change();

-- task_executions: organization and project from the task, the number under a per-task lock, an engine link only
-- within the organization, completed_at stamped by the final status.
create function private.check_task_execution() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  select t.organization_id, t.project_id into new.organization_id, new.project_id from public.tasks t where t.id = new.task_id;
  if new.project_id is null then
    raise exception 'task % does not exist', new.task_id using errcode = '23503';
  end if;
  if tg_op = 'UPDATE' and new.task_id <> old.task_id then
    raise exception 'an execution cannot move to another task' using errcode = '23514',
      constraint = 'task_executions_task_id_immutable';
  end if;
  if tg_op = 'INSERT' then
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('task_executions:' || new.task_id::text, 0));
    select coalesce(max(e.execution_number), 0) + 1 into new.execution_number
    from public.task_executions e where e.task_id = new.task_id;
  elsif new.execution_number <> old.execution_number then
    new.execution_number := old.execution_number;
  end if;
  if new.ai_agent_task_id is not null and (tg_op = 'INSERT' or new.ai_agent_task_id is distinct from old.ai_agent_task_id)
     and not exists (select 1 from public.ai_agent_tasks a where a.id = new.ai_agent_task_id and a.organization_id = new.organization_id) then
    raise exception 'the AI agent task must belong to the task''s organization' using errcode = '23514',
      constraint = 'task_executions_ai_agent_task_same_organization';
  end if;
  if new.status <> 'running' and new.completed_at is null then
    new.completed_at := pg_catalog.now();
  elsif new.status = 'running' then
    new.completed_at := null;
  end if;
  return new;
end;
$$;

create function private.roll_up_task_execution() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform private.roll_up_task_totals(coalesce(new.task_id, old.task_id), 0,
    case when tg_op <> 'DELETE' then coalesce(new.cost, 0) else 0 end
    - case when tg_op <> 'INSERT' then coalesce(old.cost, 0) else 0 end);
  return null;
end;
$$;

create trigger task_executions_check before insert or update on public.task_executions
  for each row execute function private.check_task_execution();
create trigger task_executions_set_updated_at before update on public.task_executions
  for each row execute function private.set_updated_at();
create trigger task_executions_roll_up after insert or delete on public.task_executions
  for each row execute function private.roll_up_task_execution();
create trigger task_executions_roll_up_change after update on public.task_executions
  for each row when (old.cost is distinct from new.cost) execute function private.roll_up_task_execution();
create trigger task_executions_audit after insert or update or delete on public.task_executions
  for each row execute function private.audit_row_change();

alter table public.time_entries enable row level security;
alter table public.task_executions enable row level security;

-- time_entries_select: whoever reads the project sees its time.
create policy time_entries_select on public.time_entries for select to authenticated
  using (private.can_read_project(project_id));
-- time_entries_insert: project owners, editors, commenters and projects.admin holders log their own time; only
-- projects.admin holders log time for someone else.
create policy time_entries_insert on public.time_entries for insert to authenticated
  with check (exists (select 1 from public.tasks t where t.id = task_id and private.can_comment_on_project(t.project_id)
                      and (user_id = (select auth.uid()) or private.is_project_admin(t.project_id))));
-- time_entries_update: one's own entries (while one may log time on the project), anyone's with projects.admin.
create policy time_entries_update on public.time_entries for update to authenticated
  using ((user_id = (select auth.uid()) and private.can_comment_on_project(project_id)) or private.is_project_admin(project_id))
  with check (exists (select 1 from public.tasks t where t.id = task_id
                      and ((user_id = (select auth.uid()) and private.can_comment_on_project(t.project_id)) or private.is_project_admin(t.project_id))));
-- time_entries_delete: as update.
create policy time_entries_delete on public.time_entries for delete to authenticated
  using ((user_id = (select auth.uid()) and private.can_comment_on_project(project_id)) or private.is_project_admin(project_id));

-- task_executions follow the task: read by the project's readers, written by its owners, editors and projects.admin.
create policy task_executions_select on public.task_executions for select to authenticated
  using (private.can_read_project(project_id));
create policy task_executions_insert on public.task_executions for insert to authenticated
  with check (exists (select 1 from public.tasks t where t.id = task_id and private.can_edit_project(t.project_id)));
create policy task_executions_update on public.task_executions for update to authenticated
  using (private.can_edit_project(project_id))
  with check (private.can_edit_project(project_id));
create policy task_executions_delete on public.task_executions for delete to authenticated
  using (private.can_edit_project(project_id));

grant select, delete on public.time_entries to authenticated, service_role;
grant insert (task_id, user_id, start_time, end_time, description, is_manual, is_billable, hourly_rate)
  on public.time_entries to authenticated, service_role;
grant update (task_id, user_id, start_time, end_time, description, is_manual, is_billable, hourly_rate)
  on public.time_entries to authenticated, service_role;
grant select, delete on public.task_executions to authenticated, service_role;
grant insert (task_id, ai_agent_task_id, prompt, response, context, ai_provider, model, temperature, max_tokens,
              tokens_used, duration, cost, status, error_message, retry_count, user_feedback, rating, completed_at)
  on public.task_executions to authenticated, service_role;
grant update (response, context, tokens_used, duration, cost, status, error_message, retry_count, user_feedback,
              rating, completed_at)
  on public.task_executions to authenticated, service_role;

-- A user's time and AI runs for export_my_data(): their time entries and the executions they started. Erasure
-- (deleting the account) sets user_id / started_by to null and stops a running timer: the organization keeps
-- every entry and run, so its actual_minutes, actual_hours and costs do not change.
create function private.work_time_personal_data(uid uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'time_entries', coalesce((select jsonb_agg(jsonb_build_object('id', e.id, 'task_id', e.task_id, 'project_id', e.project_id,
        'start_time', e.start_time, 'end_time', e.end_time, 'duration', e.duration, 'description', e.description,
        'is_manual', e.is_manual, 'is_billable', e.is_billable, 'hourly_rate', e.hourly_rate) order by e.start_time, e.id)
      from public.time_entries e where e.user_id = uid), '[]'::jsonb),
    'task_executions', coalesce((select jsonb_agg(jsonb_build_object('id', x.id, 'task_id', x.task_id,
        'execution_number', x.execution_number, 'ai_provider', x.ai_provider, 'model', x.model, 'prompt', x.prompt,
        'status', x.status, 'cost', x.cost, 'user_feedback', x.user_feedback, 'rating', x.rating,
        'created_at', x.created_at) order by x.created_at, x.id)
      from public.task_executions x where x.started_by = uid), '[]'::jsonb))
$$;
comment on function private.work_time_personal_data(uuid) is 'A user''s time entries and the task executions they started, for their export.';


-- =====================================================================================================================
-- source: supabase/schemas/55-work-skills.sql
-- =====================================================================================================================
-- Work management (seed 004): skills (reusable AI prompts, public or official), skill_tags, skill_reviews (the seed's
-- reviews JSON), task_suggested_skills, and fork_skill(); fork_count, usage_count and rating are derived.

-- A JSON Schema as the skills store it: null, or an object whose "type" is a JSON Schema type or a non-empty array of them.
create function private.is_json_schema_object(schema jsonb) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select schema is null
      or (jsonb_typeof(schema) = 'object'
          and case jsonb_typeof(schema -> 'type')
                when 'string' then schema ->> 'type' in ('object', 'array', 'string', 'number', 'integer', 'boolean', 'null')
                when 'array' then jsonb_array_length(schema -> 'type') > 0
                                  and not exists (select 1 from jsonb_array_elements(schema -> 'type') t
                                                  where jsonb_typeof(t) <> 'string'
                                                     or t #>> '{}' not in ('object', 'array', 'string', 'number', 'integer', 'boolean', 'null'))
                else false
              end)
$$;
comment on function private.is_json_schema_object(jsonb) is 'True when the value is null or a JSON Schema object with a type (a JSON Schema type name, or a non-empty array of them).';
grant execute on function private.is_json_schema_object(jsonb) to authenticated, service_role;

create table public.skills (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  author_id uuid default auth.uid(),
  forked_from_id uuid,
  name text not null,
  description text not null,
  prompt text not null,
  category text not null,
  ai_provider text,
  mcp_requirements jsonb not null default '[]'::jsonb,
  input_schema jsonb,
  output_schema jsonb,
  is_public boolean not null default false,
  is_official boolean not null default false,
  fork_count integer not null default 0,
  usage_count integer not null default 0,
  rating numeric(3, 2),
  review_count integer not null default 0,
  version integer not null default 1,
  changelog text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint skills_pkey primary key (id),
  constraint skills_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint skills_author_id_fkey foreign key (author_id) references auth.users (id) on delete set null,
  constraint skills_forked_from_id_fkey foreign key (forked_from_id) references public.skills (id) on delete set null,
  constraint skills_name_length check (char_length(btrim(name)) between 1 and 200),
  constraint skills_description_length check (char_length(btrim(description)) between 1 and 5000),
  constraint skills_prompt_length check (char_length(btrim(prompt)) between 1 and 50000),
  constraint skills_category_format check (category ~ '^[a-z0-9][a-z0-9_-]{0,49}$'),
  constraint skills_ai_provider_known check (ai_provider is null or ai_provider in ('openai', 'anthropic', 'google', 'local')),
  constraint skills_mcp_requirements_strings check (jsonb_typeof(mcp_requirements) = 'array'
    and jsonb_array_length(mcp_requirements) <= 50
    and not jsonb_path_exists(mcp_requirements, '$[*] ? (@.type() != "string")')),
  constraint skills_input_schema_valid check (private.is_json_schema_object(input_schema)),
  constraint skills_output_schema_valid check (private.is_json_schema_object(output_schema)),
  constraint skills_official_is_public check (not is_official or is_public),
  constraint skills_counts_non_negative check (fork_count >= 0 and usage_count >= 0 and review_count >= 0),
  constraint skills_rating_range check (rating is null or rating between 1 and 5),
  constraint skills_version_positive check (version >= 1),
  constraint skills_changelog_length check (changelog is null or char_length(changelog) <= 20000),
  constraint skills_not_own_fork check (forked_from_id is distinct from id)
);
comment on table public.skills is 'Reusable AI prompts (seed 004) of an organization. Readable by its projects.read holders and, when is_public, by every signed-in user; written by projects.manage holders. is_official is set only by platform administrators.';
comment on column public.skills.author_id is 'Who wrote the skill (the caller by default); null once their account is deleted (the skill stays with the organization).';
comment on column public.skills.forked_from_id is 'The skill this one was copied from by fork_skill(); null for originals or when the original is deleted.';
comment on column public.skills.prompt is 'The prompt template (the seed''s prompt).';
comment on column public.skills.mcp_requirements is 'Names of the MCP servers the skill needs (a JSON array of strings).';
comment on column public.skills.input_schema is 'JSON Schema of the skill''s inputs: an object with a type (skills_input_schema_valid).';
comment on column public.skills.output_schema is 'JSON Schema of the skill''s outputs: an object with a type (skills_output_schema_valid).';
comment on column public.skills.is_official is 'Marked by a platform administrator (app_metadata.platform_admin); an official skill is public.';
comment on column public.skills.fork_count is 'Derived: skills forked from this one, kept by the database.';
comment on column public.skills.usage_count is 'Derived: tasks suggesting this skill (task_suggested_skills), kept by the database.';
comment on column public.skills.rating is 'Derived: average of the skill''s reviews, null without reviews.';
comment on column public.skills.review_count is 'Derived: number of reviews (a column the seed''s reviews JSON implied).';
comment on column public.skills.version is 'Starts at 1 and goes up by one, by trigger, whenever prompt, input_schema or output_schema change.';

create index skills_organization_id_idx on public.skills (organization_id, category);
create index skills_public_idx on public.skills (category, rating desc nulls last) where is_public;
create index skills_author_id_idx on public.skills (author_id);
create index skills_forked_from_id_idx on public.skills (forked_from_id);

create table public.skill_tags (
  skill_id uuid not null,
  tag text not null,
  organization_id uuid not null,
  constraint skill_tags_pkey primary key (skill_id, tag),
  constraint skill_tags_skill_id_fkey foreign key (skill_id) references public.skills (id) on delete cascade,
  constraint skill_tags_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint skill_tags_tag_format check (tag ~ '^[a-z0-9][a-z0-9 _.+#-]{0,49}$')
);
comment on table public.skill_tags is 'Tags of a skill (seed 004''s SkillTags): lower-case, up to 50 characters. Follow the skill.';
comment on column public.skill_tags.organization_id is 'The skill''s organization (copied by trigger).';

create index skill_tags_tag_idx on public.skill_tags (tag);
create index skill_tags_organization_id_idx on public.skill_tags (organization_id);

create table public.skill_reviews (
  id uuid not null default gen_random_uuid(),
  skill_id uuid not null,
  user_id uuid not null default auth.uid(),
  organization_id uuid not null,
  rating integer not null,
  comment text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint skill_reviews_pkey primary key (id),
  constraint skill_reviews_one_per_user unique (skill_id, user_id),
  constraint skill_reviews_skill_id_fkey foreign key (skill_id) references public.skills (id) on delete cascade,
  constraint skill_reviews_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint skill_reviews_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint skill_reviews_rating_range check (rating between 1 and 5),
  constraint skill_reviews_comment_length check (comment is null or char_length(comment) <= 5000)
);
comment on table public.skill_reviews is 'Reviews of a skill (the seed''s reviews JSON, one row per review): one per user and skill, not by the skill''s author. Readable by whoever reads the skill; each user writes only their own.';
comment on column public.skill_reviews.organization_id is 'The skill''s organization (copied by trigger, for the audit log); the reviewer may belong to another one.';

create index skill_reviews_user_id_idx on public.skill_reviews (user_id);
create index skill_reviews_organization_id_idx on public.skill_reviews (organization_id);

create table public.task_suggested_skills (
  task_id uuid not null,
  skill_id uuid not null,
  organization_id uuid not null,
  added_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  constraint task_suggested_skills_pkey primary key (task_id, skill_id),
  constraint task_suggested_skills_task_id_fkey foreign key (task_id) references public.tasks (id) on delete cascade,
  constraint task_suggested_skills_skill_id_fkey foreign key (skill_id) references public.skills (id) on delete cascade,
  constraint task_suggested_skills_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint task_suggested_skills_added_by_fkey foreign key (added_by) references auth.users (id) on delete set null
);
comment on table public.task_suggested_skills is 'Skills suggested for a task (seed 004''s TaskSuggestedSkills): a skill of the task''s organization or a public one. Follow the task''s project.';
comment on column public.task_suggested_skills.organization_id is 'The task''s organization (copied by trigger).';

create index task_suggested_skills_skill_id_idx on public.task_suggested_skills (skill_id);
create index task_suggested_skills_organization_id_idx on public.task_suggested_skills (organization_id);
create index task_suggested_skills_added_by_idx on public.task_suggested_skills (added_by);

-- skills: official only by platform administrators (security invoker, so current_user is the caller's role; the
-- service role and the database owner may too); the organization never changes; version counts content changes.
create function private.check_skill() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.is_official and (tg_op = 'INSERT' or not old.is_official)
     and current_user in ('authenticated', 'anon') and not private.is_platform_admin() then
    raise exception 'only platform administrators mark a skill official' using errcode = '42501';
  end if;
  if tg_op = 'UPDATE' then
    if new.organization_id <> old.organization_id then
      raise exception 'a skill cannot move to another organization' using errcode = '23514',
        constraint = 'skills_organization_id_immutable';
    end if;
    if old.is_official and not new.is_official and current_user in ('authenticated', 'anon') and not private.is_platform_admin() then
      raise exception 'only platform administrators withdraw a skill''s official mark' using errcode = '42501';
    end if;
    if (new.prompt, new.input_schema, new.output_schema) is distinct from (old.prompt, old.input_schema, old.output_schema) then
      new.version := old.version + 1;
    end if;
  end if;
  return new;
end;
$$;

-- fork_count: one more (or fewer) on the original, `x = x + 1`, safe under concurrent forks.
create function private.count_skill_fork() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' and new.forked_from_id is not null then
    update public.skills set fork_count = fork_count + 1 where id = new.forked_from_id;
  elsif tg_op = 'DELETE' and old.forked_from_id is not null then
    update public.skills set fork_count = fork_count - 1 where id = old.forked_from_id;
  end if;
  return null;
end;
$$;

create trigger skills_check before insert or update on public.skills
  for each row execute function private.check_skill();
create trigger skills_set_updated_at before update on public.skills
  for each row execute function private.set_updated_at();
create trigger skills_count_fork after insert or delete on public.skills
  for each row execute function private.count_skill_fork();
create trigger skills_audit after insert or update or delete on public.skills
  for each row execute function private.audit_row_change();

-- skill_tags and skill_reviews: the skill's organization; no review of one's own skill.
create function private.fill_skill_organization() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  author uuid;
begin
  select s.organization_id, s.author_id into new.organization_id, author from public.skills s where s.id = new.skill_id;
  if new.organization_id is null then
    raise exception 'skill % does not exist', new.skill_id using errcode = '23503';
  end if;
  if tg_table_name = 'skill_reviews' then
    if (to_jsonb(new) ->> 'user_id')::uuid = author then
      raise exception 'authors do not review their own skills' using errcode = '23514', constraint = 'skill_reviews_not_by_author';
    end if;
  end if;
  return new;
end;
$$;

-- rating and review_count: the skill row is locked first, then the average is read by a new statement (READ
-- COMMITTED: it sees every review committed before the lock was granted), so concurrent reviews cannot lose one.
create function private.rate_skill() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  skill uuid := coalesce(new.skill_id, old.skill_id);
begin
  perform 1 from public.skills s where s.id = skill for update;
  update public.skills s
  set rating = (select round(avg(r.rating), 2) from public.skill_reviews r where r.skill_id = skill),
      review_count = (select count(*) from public.skill_reviews r where r.skill_id = skill)
  where s.id = skill;
  return null;
end;
$$;

create trigger skill_tags_fill_organization before insert or update on public.skill_tags
  for each row execute function private.fill_skill_organization();
create trigger skill_tags_audit after insert or update or delete on public.skill_tags
  for each row execute function private.audit_row_change();
create trigger skill_reviews_fill_organization before insert or update of skill_id, user_id on public.skill_reviews
  for each row execute function private.fill_skill_organization();
create trigger skill_reviews_set_updated_at before update on public.skill_reviews
  for each row execute function private.set_updated_at();
create trigger skill_reviews_rate after insert or delete or update of rating on public.skill_reviews
  for each row execute function private.rate_skill();
create trigger skill_reviews_audit after insert or update or delete on public.skill_reviews
  for each row execute function private.audit_row_change();

-- task_suggested_skills: the task's organization; the skill is the organization's own or public; usage_count follows.
create function private.check_task_suggested_skill() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    select t.organization_id into new.organization_id from public.tasks t where t.id = new.task_id;
    if new.organization_id is null then
      raise exception 'task % does not exist', new.task_id using errcode = '23503';
    end if;
    if not exists (select 1 from public.skills s where s.id = new.skill_id and (s.organization_id = new.organization_id or s.is_public)) then
      raise exception 'a task can suggest only its organization''s skills and public ones' using errcode = '23514',
        constraint = 'task_suggested_skills_skill_available';
    end if;
  end if;
  return new;
end;
$$;

create function private.count_skill_usage() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    update public.skills set usage_count = usage_count + 1 where id = new.skill_id;
  else
    update public.skills set usage_count = usage_count - 1 where id = old.skill_id;
  end if;
  return null;
end;
$$;

create trigger task_suggested_skills_check before insert on public.task_suggested_skills
  for each row execute function private.check_task_suggested_skill();
create trigger task_suggested_skills_count_usage after insert or delete on public.task_suggested_skills
  for each row execute function private.count_skill_usage();
create trigger task_suggested_skills_audit after insert or update or delete on public.task_suggested_skills
  for each row execute function private.audit_row_change();

alter table public.skills enable row level security;
alter table public.skill_tags enable row level security;
alter table public.skill_reviews enable row level security;
alter table public.task_suggested_skills enable row level security;

-- skills_select: public skills for every signed-in user; the organization's own for its projects.read holders.
create policy skills_select on public.skills for select to authenticated
  using (is_public or organization_id in (select private.organizations_with_permission('projects.read')));
-- skills_insert: projects.manage holders write their organization's skills.
create policy skills_insert on public.skills for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('projects.manage')));
-- skills_update: projects.manage holders; platform administrators too on public skills (to mark them official).
create policy skills_update on public.skills for update to authenticated
  using (organization_id in (select private.organizations_with_permission('projects.manage'))
         or (is_public and (select private.is_platform_admin())))
  with check (organization_id in (select private.organizations_with_permission('projects.manage'))
              or (is_public and (select private.is_platform_admin())));
-- skills_delete: projects.manage holders.
create policy skills_delete on public.skills for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('projects.manage')));

-- skill_tags follow the skill: read with it, written by its editors.
create policy skill_tags_select on public.skill_tags for select to authenticated
  using (exists (select 1 from public.skills s where s.id = skill_id));
create policy skill_tags_insert on public.skill_tags for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('projects.manage')));
create policy skill_tags_delete on public.skill_tags for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('projects.manage')));

-- skill_reviews: read with the skill; each user writes their own review of a skill they can read.
create policy skill_reviews_select on public.skill_reviews for select to authenticated
  using (exists (select 1 from public.skills s where s.id = skill_id));
create policy skill_reviews_insert on public.skill_reviews for insert to authenticated
  with check (user_id = (select auth.uid()) and exists (select 1 from public.skills s where s.id = skill_id));
create policy skill_reviews_update on public.skill_reviews for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));
create policy skill_reviews_delete on public.skill_reviews for delete to authenticated
  using (user_id = (select auth.uid()));

-- task_suggested_skills follow the task: read by its readers, changed by its project's editors.
create policy task_suggested_skills_select on public.task_suggested_skills for select to authenticated
  using (exists (select 1 from public.tasks t where t.id = task_id));
create policy task_suggested_skills_insert on public.task_suggested_skills for insert to authenticated
  with check (exists (select 1 from public.tasks t where t.id = task_id and private.can_edit_project(t.project_id))
              and exists (select 1 from public.skills s where s.id = skill_id));
create policy task_suggested_skills_delete on public.task_suggested_skills for delete to authenticated
  using (exists (select 1 from public.tasks t where t.id = task_id and private.can_edit_project(t.project_id)));

grant select, delete on public.skills to authenticated, service_role;
-- author_id is not granted: a skill is the caller's (the column's default), never someone else's by assertion.
grant insert (organization_id, name, description, prompt, category, ai_provider, mcp_requirements,
              input_schema, output_schema, is_public, is_official, changelog)
  on public.skills to authenticated, service_role;
grant update (name, description, prompt, category, ai_provider, mcp_requirements, input_schema, output_schema,
              is_public, is_official, changelog)
  on public.skills to authenticated, service_role;
grant select, delete on public.skill_tags to authenticated, service_role;
grant insert (skill_id, tag) on public.skill_tags to authenticated, service_role;
grant select, delete on public.skill_reviews to authenticated, service_role;
grant insert (skill_id, user_id, rating, comment) on public.skill_reviews to authenticated, service_role;
grant update (rating, comment) on public.skill_reviews to authenticated, service_role;
grant select, delete on public.task_suggested_skills to authenticated, service_role;
grant insert (task_id, skill_id) on public.task_suggested_skills to authenticated, service_role;

-- fork_skill: copies a skill the caller can read (public, or their organization's) into an organization where they
-- hold projects.manage, with its tags; the copy is private, not official, version 1, authored by the caller.
create function public.fork_skill(skill_id uuid, organization_id uuid) returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  source public.skills;
  copy_id uuid;
begin
  if fork_skill.skill_id is null or fork_skill.organization_id is null then
    raise exception '% is required', case when fork_skill.skill_id is null then 'skill_id' else 'organization_id' end
      using errcode = '22004';
  end if;
  select s.* into source from public.skills s where s.id = fork_skill.skill_id
    and (s.is_public or s.organization_id in (select private.organizations_with_permission('projects.read')));
  if not found then
    raise exception 'skill % not found', fork_skill.skill_id using errcode = 'P0002';
  end if;
  if not private.has_permission(fork_skill.organization_id, 'projects.manage') then
    raise exception 'forking into this organization needs projects.manage there' using errcode = '42501';
  end if;
  insert into public.skills (organization_id, author_id, forked_from_id, name, description, prompt, category, ai_provider,
                             mcp_requirements, input_schema, output_schema, changelog)
  values (fork_skill.organization_id, uid, source.id, source.name, source.description, source.prompt, source.category,
          source.ai_provider, source.mcp_requirements, source.input_schema, source.output_schema,
          format('Forked from %s (version %s)', source.name, source.version))
  returning id into copy_id;
  insert into public.skill_tags (skill_id, tag) select copy_id, t.tag from public.skill_tags t where t.skill_id = source.id;
  return copy_id;
end;
$$;
comment on function public.fork_skill(uuid, uuid) is 'Copies a skill the caller can read (public or their organization''s) into an organization where they hold projects.manage, with its tags; returns the copy''s id. P0002 when the skill is not readable, 42501 without projects.manage.';
grant execute on function public.fork_skill(uuid, uuid) to authenticated;

-- A user's skills and reviews for export_my_data(). Erasure (deleting the account): their skills stay with the
-- organization without the author; their reviews go with them and each skill's rating is recomputed.
create function private.work_skills_personal_data(uid uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'skills_authored', coalesce((select jsonb_agg(jsonb_build_object('id', s.id, 'organization_id', s.organization_id,
        'name', s.name, 'category', s.category, 'is_public', s.is_public, 'version', s.version, 'created_at', s.created_at)
        order by s.created_at, s.id)
      from public.skills s where s.author_id = uid), '[]'::jsonb),
    'skill_reviews', coalesce((select jsonb_agg(jsonb_build_object('id', r.id, 'skill_id', r.skill_id, 'rating', r.rating,
        'comment', r.comment, 'created_at', r.created_at) order by r.created_at, r.id)
      from public.skill_reviews r where r.user_id = uid), '[]'::jsonb))
$$;
comment on function private.work_skills_personal_data(uuid) is 'A user''s authored skills and skill reviews, for their export.';


-- =====================================================================================================================
-- source: supabase/schemas/56-work-templates.sql
-- =====================================================================================================================
-- Work management (seed 004): project templates (project_structure in the seed's ProjectStructure shape), the
-- template_tasks derived from it, projects.template_id, and create_project_from_template().

-- The seed's ProjectStructure task: { title, description?, priority?, estimatedMinutes?, skills?: string[] }, and, our
-- extension for subtasks, subtasks?: the same shape (at most 5 levels deep).
create function private.is_valid_template_task(task jsonb, depth integer) returns boolean
language plpgsql immutable parallel safe
set search_path = ''
as $$
begin
  if jsonb_typeof(task) <> 'object' or depth > 5
     or exists (select 1 from jsonb_object_keys(task) k where k not in ('title', 'description', 'priority', 'estimatedMinutes', 'skills', 'subtasks'))
     or jsonb_typeof(task -> 'title') is distinct from 'string' or char_length(btrim(task ->> 'title')) not between 1 and 500
     or (task ? 'description' and jsonb_typeof(task -> 'description') not in ('string', 'null'))
     or (task ? 'priority' and (jsonb_typeof(task -> 'priority') <> 'string' or task ->> 'priority' not in ('low', 'medium', 'high', 'urgent')))
     or (task ? 'estimatedMinutes' and (jsonb_typeof(task -> 'estimatedMinutes') <> 'number'
                                        or (task ->> 'estimatedMinutes')::numeric < 0
                                        or (task ->> 'estimatedMinutes')::numeric <> trunc((task ->> 'estimatedMinutes')::numeric)
                                        or (task ->> 'estimatedMinutes')::numeric > 1000000))
     or (task ? 'skills' and not private.is_string_array(task -> 'skills'))
     or (task ? 'subtasks' and jsonb_typeof(task -> 'subtasks') <> 'array') then
    return false;
  end if;
  return not exists (select 1 from jsonb_array_elements(coalesce(task -> 'subtasks', '[]'::jsonb)) s
                     where not private.is_valid_template_task(s, depth + 1));
end;
$$;
comment on function private.is_valid_template_task(jsonb, integer) is 'True when the value is a ProjectStructure task (title, description, priority, estimatedMinutes, skills, subtasks) nested at most 5 levels.';

create function private.is_string_array(value jsonb) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select jsonb_typeof(value) = 'array' and jsonb_array_length(value) <= 100
     and not exists (select 1 from jsonb_array_elements(value) e where jsonb_typeof(e) <> 'string' or char_length(e #>> '{}') not between 1 and 200)
$$;
comment on function private.is_string_array(jsonb) is 'True when the value is a JSON array of at most 100 non-empty strings of up to 200 characters.';

-- The seed's ProjectStructure: { tasks: Task[], skills?: string[], automations?: { name, trigger, actions }[] }.
create function private.is_valid_project_structure(structure jsonb) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select jsonb_typeof(structure) = 'object'
     and not exists (select 1 from jsonb_object_keys(structure) k where k not in ('tasks', 'skills', 'automations'))
     and jsonb_typeof(structure -> 'tasks') = 'array'
     and jsonb_array_length(structure -> 'tasks') between 1 and 500
     and not exists (select 1 from jsonb_array_elements(structure -> 'tasks') t where not private.is_valid_template_task(t, 1))
     and (not structure ? 'skills' or private.is_string_array(structure -> 'skills'))
     and (not structure ? 'automations'
          or (jsonb_typeof(structure -> 'automations') = 'array'
              and not exists (select 1 from jsonb_array_elements(structure -> 'automations') a
                              where jsonb_typeof(a) <> 'object' or jsonb_typeof(a -> 'name') is distinct from 'string'
                                 or jsonb_typeof(a -> 'trigger') is distinct from 'object'
                                 or jsonb_typeof(a -> 'actions') is distinct from 'array')))
$$;
comment on function private.is_valid_project_structure(jsonb) is 'True when the value has seed 004''s ProjectStructure shape: 1-500 tasks (with optional subtasks), optional skill names, optional automations {name, trigger object, actions array}.';

grant execute on function private.is_valid_template_task(jsonb, integer), private.is_string_array(jsonb),
  private.is_valid_project_structure(jsonb) to authenticated, service_role;

create table public.templates (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  author_id uuid default auth.uid(),
  name text not null,
  description text not null,
  category text not null,
  cover_image_url public.http_url,
  tags text[] not null default '{}',
  project_structure jsonb not null,
  ai_provider_recommendations jsonb,
  is_public boolean not null default false,
  is_official boolean not null default false,
  usage_count integer not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint templates_pkey primary key (id),
  constraint templates_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint templates_author_id_fkey foreign key (author_id) references auth.users (id) on delete set null,
  constraint templates_name_length check (char_length(btrim(name)) between 1 and 200),
  constraint templates_description_length check (char_length(btrim(description)) between 1 and 5000),
  constraint templates_category_format check (category ~ '^[a-z0-9][a-z0-9_-]{0,49}$'),
  constraint templates_tags_limit check (cardinality(tags) <= 50 and array_position(tags, null) is null),
  constraint templates_project_structure_shape check (private.is_valid_project_structure(project_structure)),
  constraint templates_ai_provider_recommendations_object check (ai_provider_recommendations is null or jsonb_typeof(ai_provider_recommendations) = 'object'),
  constraint templates_official_is_public check (not is_official or is_public),
  constraint templates_usage_count_non_negative check (usage_count >= 0)
);
comment on table public.templates is 'Project templates (seed 004) of an organization. Readable by its projects.read holders and, when is_public, by every signed-in user; written by projects.manage holders; is_official only by platform administrators. create_project_from_template() turns one into a project.';
comment on column public.templates.author_id is 'Who wrote the template (the caller by default); null once their account is deleted.';
comment on column public.templates.cover_image_url is 'The seed''s coverImage (named like projects.cover_image_url).';
comment on column public.templates.project_structure is 'Seed 004''s ProjectStructure: {tasks: [{title, description?, priority?, estimatedMinutes?, skills?, subtasks?}], skills?, automations?}; subtasks are our extension. Checked by templates_project_structure_shape.';
comment on column public.templates.ai_provider_recommendations is 'AI settings per provider (an object).';
comment on column public.templates.is_official is 'Marked by a platform administrator; an official template is public.';
comment on column public.templates.usage_count is 'Derived: projects created from the template, counted by create_project_from_template().';

create index templates_organization_id_idx on public.templates (organization_id, category);
create index templates_public_idx on public.templates (category, usage_count desc) where is_public;
create index templates_author_id_idx on public.templates (author_id);
create index templates_tags_idx on public.templates using gin (tags);

create table public.template_tasks (
  id uuid not null default gen_random_uuid(),
  template_id uuid not null,
  organization_id uuid not null,
  parent_template_task_id uuid,
  position integer not null,
  title text not null,
  description text,
  priority text not null default 'medium',
  estimated_minutes integer,
  skills text[] not null default '{}',
  constraint template_tasks_pkey primary key (id),
  constraint template_tasks_template_position_key unique (template_id, parent_template_task_id, position),
  constraint template_tasks_template_id_fkey foreign key (template_id) references public.templates (id) on delete cascade,
  constraint template_tasks_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint template_tasks_parent_template_task_id_fkey foreign key (parent_template_task_id) references public.template_tasks (id) on delete cascade,
  constraint template_tasks_priority_known check (priority in ('low', 'medium', 'high', 'urgent'))
);
comment on table public.template_tasks is 'The tasks of a template''s project_structure, one row per task and subtask (seed 004''s TemplateTasks): derived from project_structure by trigger, never written by clients. Read with the template.';
comment on column public.template_tasks.parent_template_task_id is 'The task this one is a subtask of (project_structure''s subtasks); null for top-level tasks.';
comment on column public.template_tasks.position is 'Order among its siblings, from the array order (0, 1, ...).';
comment on column public.template_tasks.skills is 'Skill names or ids the task suggests, as written in project_structure; resolved when a project is created.';

create index template_tasks_parent_template_task_id_idx on public.template_tasks (parent_template_task_id);
create index template_tasks_organization_id_idx on public.template_tasks (organization_id);

-- projects.template_id: the template a project was created from (set only by create_project_from_template()).
alter table public.projects add column template_id uuid;
alter table public.projects add constraint projects_template_id_fkey foreign key (template_id) references public.templates (id) on delete set null;
create index projects_template_id_idx on public.projects (template_id);
comment on column public.projects.template_id is 'The template the project was created from (the seed''s templateId); set by create_project_from_template(), null when the template is deleted. Not writable by clients.';

-- templates: official only by platform administrators (security invoker, so current_user is the caller's role);
-- the organization never changes.
create function private.check_template() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.is_official is distinct from (tg_op = 'UPDATE' and old.is_official) and (tg_op = 'UPDATE' or new.is_official)
     and current_user in ('authenticated', 'anon') and not private.is_platform_admin() then
    raise exception 'only platform administrators mark a template official or withdraw the mark' using errcode = '42501';
  end if;
  if tg_op = 'UPDATE' and new.organization_id <> old.organization_id then
    raise exception 'a template cannot move to another organization' using errcode = '23514',
      constraint = 'templates_organization_id_immutable';
  end if;
  return new;
end;
$$;

-- template_tasks are rebuilt from project_structure whenever it is written.
create function private.sync_template_tasks() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  delete from public.template_tasks where template_id = new.id;
  with recursive walk (id, parent_id, position, task) as (
    select gen_random_uuid(), null::uuid, (t.ordinality - 1)::integer, t.value
    from jsonb_array_elements(new.project_structure -> 'tasks') with ordinality t
    union all
    select gen_random_uuid(), w.id, (s.ordinality - 1)::integer, s.value
    from walk w, jsonb_array_elements(coalesce(w.task -> 'subtasks', '[]'::jsonb)) with ordinality s
  )
  insert into public.template_tasks (id, template_id, organization_id, parent_template_task_id, position, title, description,
                                     priority, estimated_minutes, skills)
  select w.id, new.id, new.organization_id, w.parent_id, w.position, btrim(w.task ->> 'title'), w.task ->> 'description',
         coalesce(w.task ->> 'priority', 'medium'), (w.task ->> 'estimatedMinutes')::integer,
         coalesce((select array_agg(e #>> '{}') from jsonb_array_elements(w.task -> 'skills') e), '{}')
  from walk w;
  return null;
end;
$$;

create trigger templates_check before insert or update on public.templates
  for each row execute function private.check_template();
create trigger templates_set_updated_at before update on public.templates
  for each row execute function private.set_updated_at();
create trigger templates_sync_tasks after insert or update of project_structure on public.templates
  for each row execute function private.sync_template_tasks();
create trigger templates_audit after insert or update or delete on public.templates
  for each row execute function private.audit_row_change();

alter table public.templates enable row level security;
alter table public.template_tasks enable row level security;

-- templates_select: public templates for every signed-in user; the organization's own for its projects.read holders.
create policy templates_select on public.templates for select to authenticated
  using (is_public or organization_id in (select private.organizations_with_permission('projects.read')));
-- templates_insert: projects.manage holders write their organization's templates.
create policy templates_insert on public.templates for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('projects.manage')));
-- templates_update: projects.manage holders; platform administrators too on public templates (to mark them official).
create policy templates_update on public.templates for update to authenticated
  using (organization_id in (select private.organizations_with_permission('projects.manage'))
         or (is_public and (select private.is_platform_admin())))
  with check (organization_id in (select private.organizations_with_permission('projects.manage'))
              or (is_public and (select private.is_platform_admin())));
-- templates_delete: projects.manage holders.
create policy templates_delete on public.templates for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('projects.manage')));
-- template_tasks_select: read with the template.
create policy template_tasks_select on public.template_tasks for select to authenticated
  using (exists (select 1 from public.templates t where t.id = template_id));

grant select, delete on public.templates to authenticated, service_role;
-- author_id is not granted: a template is the caller's (the column's default), never someone else's by assertion.
grant insert (organization_id, name, description, category, cover_image_url, tags, project_structure,
              ai_provider_recommendations, is_public, is_official)
  on public.templates to authenticated, service_role;
grant update (name, description, category, cover_image_url, tags, project_structure, ai_provider_recommendations,
              is_public, is_official)
  on public.templates to authenticated, service_role;
grant select on public.template_tasks to authenticated, service_role;

-- create_project_from_template: in one transaction, a project owned by the caller in an organization where they hold
-- projects.manage, its tasks and subtasks in the template's order, each task's suggested skills (a name or id the
-- organization can use: its own skills first, then official, then the best-rated public one; names that match
-- nothing are skipped; the structure's top-level skills are suggested on every top-level task), and one more use
-- of the template. The structure's automations are not created here (workflows own them).
create function public.create_project_from_template(template_id uuid, organization_id uuid, title text) returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  tpl public.templates;
  project_id uuid;
  created jsonb := '{}'::jsonb;
  new_task uuid;
  item record;
  top_skills text[];
begin
  if create_project_from_template.template_id is null or create_project_from_template.title is null
     or create_project_from_template.organization_id is null then
    raise exception 'template_id, organization_id and title are required' using errcode = '22004';
  end if;
  select t.* into tpl from public.templates t where t.id = create_project_from_template.template_id
    and (t.is_public or t.organization_id in (select private.organizations_with_permission('projects.read')));
  if not found then
    raise exception 'template % not found', create_project_from_template.template_id using errcode = 'P0002';
  end if;
  if not private.has_permission(create_project_from_template.organization_id, 'projects.manage') then
    raise exception 'creating a project in this organization needs projects.manage there' using errcode = '42501';
  end if;
  insert into public.projects (organization_id, owner_id, title, description, cover_image_url, template_id)
  values (create_project_from_template.organization_id, uid, btrim(create_project_from_template.title), tpl.description,
          tpl.cover_image_url, tpl.id)
  returning id into project_id;

  select coalesce(array_agg(e #>> '{}'), '{}') into top_skills
  from jsonb_array_elements(coalesce(tpl.project_structure -> 'skills', '[]'::jsonb)) e;
  for item in
    with recursive walk (id, parent_id, depth, path) as (
      select tt.id, tt.parent_template_task_id, 1, array[tt.position]
      from public.template_tasks tt where tt.template_id = tpl.id and tt.parent_template_task_id is null
      union all
      select tt.id, tt.parent_template_task_id, w.depth + 1, w.path || tt.position
      from public.template_tasks tt join walk w on tt.parent_template_task_id = w.id
    )
    select tt.*, w.depth from walk w join public.template_tasks tt on tt.id = w.id order by w.depth, w.path
  loop
    insert into public.tasks (project_id, parent_task_id, title, description, priority, estimated_minutes)
    values (project_id, (created ->> item.parent_template_task_id::text)::uuid, item.title, item.description, item.priority,
            item.estimated_minutes)
    returning id into new_task;
    created := created || jsonb_build_object(item.id::text, new_task);
    insert into public.task_suggested_skills (task_id, skill_id)
    select distinct new_task, chosen.id
    from unnest(item.skills || case when item.parent_template_task_id is null then top_skills else '{}'::text[] end) wanted (name)
    cross join lateral (
      select s.id from public.skills s
      where (s.organization_id = create_project_from_template.organization_id or s.is_public)
        and (s.id::text = wanted.name or lower(s.name) = lower(wanted.name))
      order by s.organization_id = create_project_from_template.organization_id desc, s.is_official desc,
               s.rating desc nulls last, s.created_at
      limit 1) chosen
    on conflict do nothing;
  end loop;

  update public.templates t set usage_count = t.usage_count + 1 where t.id = tpl.id;
  return project_id;
end;
$$;
comment on function public.create_project_from_template(uuid, uuid, text) is 'Creates, in one transaction, a project from a template the caller can read (P0002 otherwise) in an organization where they hold projects.manage (42501 otherwise): its tasks, subtasks and suggested skills; counts the template''s usage; returns the project id.';
grant execute on function public.create_project_from_template(uuid, uuid, text) to authenticated;

-- A user's templates for export_my_data(). Erasure (deleting the account) keeps them with the organization, author null.
create function private.work_templates_personal_data(uid uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'templates_authored', coalesce((select jsonb_agg(jsonb_build_object('id', t.id, 'organization_id', t.organization_id,
        'name', t.name, 'category', t.category, 'is_public', t.is_public, 'created_at', t.created_at) order by t.created_at, t.id)
      from public.templates t where t.author_id = uid), '[]'::jsonb))
$$;
comment on function private.work_templates_personal_data(uuid) is 'A user''s authored templates, for their export.';


-- =====================================================================================================================
-- source: supabase/schemas/57-work-automations.sql
-- =====================================================================================================================
-- Work management (seed 004): automations. workflows.project_id and webhooks.project_id (what hangs off them follows
-- the project's visibility), the task.created / task.status_changed / task.assigned events, the create_task action.

-- An automation is a workflow triggered by an event (trigger_type 'event', 49-workflows-triggers-and-actions.sql).
-- Routing of a project's events (private.emit_event, 44; private.start_event_workflows, 49): an event with a
-- project_id reaches the webhooks and workflows of that project, and the organization-wide ones (project_id null)
-- only when the project is organization-visible; nothing of a private project leaves it through an automation its
-- members cannot see. Visibility: the policies of 43-49 are narrowed here with alter policy (a comment at each
-- original says so): a workflow or webhook with a project_id is seen only by those who also read the project and
-- changed only by those who also edit it; versions, executions, runs, approvals, AI tasks, refusals and deliveries
-- follow their workflow or webhook. Narrowing only: workflows.manage and webhooks.manage are still needed.

insert into public.webhook_event_types (key, description) values
  ('task.created', 'A task was created. {"task_id", "project_id", "parent_task_id", "title", "status", "priority", "assignee_id", "due_date", "tags", "created_by", "workflow_run_id"}'),
  ('task.status_changed', 'A task changed status. {"task_id", "project_id", "title", "previous_status", "status", "blocked_reason", "changed_by"}'),
  ('task.assigned', 'A task was assigned (at creation or later; not when unassigned). {"task_id", "project_id", "title", "assignee_id", "previous_assignee_id", "assigned_by"}');

-- The project links.
alter table public.workflows add column project_id uuid;
alter table public.workflows add constraint workflows_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade;
comment on column public.workflows.project_id is 'The project this workflow automates, or null for an organization-wide workflow. Set: seen only by workflows.read holders who read the project, written only by workflows.manage holders who edit it; started only by its project''s events. Deleted with the project.';
create index workflows_project_id_idx on public.workflows (project_id);

alter table public.webhooks add column project_id uuid;
alter table public.webhooks add constraint webhooks_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade;
comment on column public.webhooks.project_id is 'The project whose events this webhook receives, or null for organization-wide (which gets no event of a private project). Set: seen only by webhooks.manage holders who read the project, changed only by those who edit it. Deleted with the project.';
create index webhooks_project_id_idx on public.webhooks (project_id);

alter table public.webhook_deliveries add constraint webhook_deliveries_project_id_fkey foreign key (project_id) references public.projects (id) on delete cascade;
create index webhook_deliveries_project_id_idx on public.webhook_deliveries (project_id) where project_id is not null;

alter table public.tasks add column workflow_run_id uuid;
alter table public.tasks add constraint tasks_workflow_run_id_key unique (workflow_run_id);
alter table public.tasks add constraint tasks_workflow_run_id_fkey foreign key (workflow_run_id) references public.workflow_runs (id) on delete set null;
comment on column public.tasks.workflow_run_id is 'The workflow run (a create_task node) that created this task; null for tasks people created. Unique: a retried run finds its task instead of creating another. Not writable by clients.';

-- A workflow's or webhook's project belongs to its organization.
create function private.check_automation_project() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.project_id is not null and not exists (
       select 1 from public.projects p where p.id = new.project_id and p.organization_id = new.organization_id) then
    raise exception 'the project must belong to the %''s organization', case tg_table_name when 'webhooks' then 'webhook' else 'workflow' end
      using errcode = '23514', constraint = tg_table_name || '_project_same_organization';
  end if;
  return new;
end;
$$;

create trigger workflows_check_project before insert or update of project_id on public.workflows
  for each row execute function private.check_automation_project();
create trigger webhooks_check_project before insert or update of project_id on public.webhooks
  for each row execute function private.check_automation_project();

grant insert (project_id), update (project_id) on public.workflows to authenticated, service_role;
grant select (project_id), update (project_id) on public.webhooks to authenticated, service_role;

-- Helpers.
create function private.event_reaches_organization(project uuid) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select project is null or exists (select 1 from public.projects p where p.id = project and p.visibility = 'organization')
$$;
comment on function private.event_reaches_organization(uuid) is 'Whether an event of this project (null: of no project) may reach organization-wide webhooks and workflows: only when the project is organization-visible.';

create function private.can_read_workflow_project(workflow uuid) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select coalesce((select w.project_id is null or private.can_read_project(w.project_id)
                   from public.workflows w where w.id = workflow), false)
$$;
comment on function private.can_read_workflow_project(uuid) is 'Whether the caller may see this workflow as far as its project goes: organization-wide, or the caller reads its project. False for an unknown workflow.';

create function private.event_has_listeners(organization uuid, project uuid, event_types text[]) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (select 1 from public.webhooks w
                 where w.organization_id = organization and w.is_enabled and w.events && event_types
                   and (w.project_id is null or w.project_id = project))
      or exists (select 1 from public.workflows x
                 where x.organization_id = organization and x.trigger_type = 'event' and x.is_active and x.deleted_at is null
                   and x.trigger_config ->> 'event_type' = any (event_types)
                   and (x.project_id is null or x.project_id = project))
$$;
comment on function private.event_has_listeners(uuid, uuid, text[]) is 'Whether any enabled webhook or active event-triggered workflow of the organization, organization-wide or of this project, listens to one of these event types (the task triggers skip emitting otherwise).';

grant execute on function private.event_reaches_organization(uuid), private.can_read_workflow_project(uuid)
  to authenticated, service_role;

-- The narrowed policies (originals in 43, 44, 45, 46, 47, 48 and 49).
alter policy workflows_select on public.workflows
  using (organization_id in (select private.organizations_with_permission('workflows.read'))
         and (project_id is null or private.can_read_project(project_id)));
alter policy workflows_insert on public.workflows
  with check (organization_id in (select private.organizations_with_permission('workflows.manage'))
              and (project_id is null or private.can_edit_project(project_id)));
alter policy workflows_update on public.workflows
  using (organization_id in (select private.organizations_with_permission('workflows.manage'))
         and (project_id is null or private.can_edit_project(project_id)))
  with check (organization_id in (select private.organizations_with_permission('workflows.manage'))
              and (project_id is null or private.can_edit_project(project_id)));
-- Versions, executions and refusals follow their workflow (whose policy holds the organization and project rule).
alter policy workflow_versions_select on public.workflow_versions
  using (organization_id in (select private.organizations_with_permission('workflows.read'))
         and exists (select 1 from public.workflows w where w.id = workflow_id));
alter policy workflow_executions_select on public.workflow_executions
  using (organization_id in (select private.organizations_with_permission('workflows.read'))
         and exists (select 1 from public.workflows w where w.id = workflow_id));
alter policy workflow_event_refusals_select on public.workflow_event_refusals
  using (organization_id in (select private.organizations_with_permission('workflows.read'))
         and exists (select 1 from public.workflows w where w.id = workflow_id));
-- Runs, approval requests and AI tasks follow their execution; an approver still sees what they are asked to decide.
alter policy workflow_runs_select on public.workflow_runs
  using (organization_id in (select private.organizations_with_permission('workflows.read'))
         and exists (select 1 from public.workflow_executions e where e.id = execution_id));
alter policy approval_requests_select on public.approval_requests
  using ((organization_id in (select private.organizations_with_permission('workflows.read'))
          and exists (select 1 from public.workflow_executions e where e.id = execution_id))
         or id in (select private.my_approval_request_ids()));
alter policy approval_request_approvers_select on public.approval_request_approvers
  using (exists (select 1 from public.approval_requests r where r.id = approval_request_id));
alter policy approval_decisions_select on public.approval_decisions
  using (exists (select 1 from public.approval_requests r where r.id = approval_request_id));
alter policy ai_agent_tasks_select on public.ai_agent_tasks
  using (organization_id in (select private.organizations_with_permission('workflows.read'))
         and (execution_id is null or exists (select 1 from public.workflow_executions e where e.id = execution_id)));
-- Webhooks: a project's webhook is seen by webhooks.manage holders who read the project, changed by those who edit it.
alter policy webhooks_select on public.webhooks
  using (organization_id in (select private.organizations_with_permission('webhooks.manage'))
         and (project_id is null or private.can_read_project(project_id)));
alter policy webhooks_update on public.webhooks
  using (organization_id in (select private.organizations_with_permission('webhooks.manage'))
         and (project_id is null or private.can_edit_project(project_id)))
  with check (organization_id in (select private.organizations_with_permission('webhooks.manage'))
              and (project_id is null or private.can_edit_project(project_id)));
alter policy webhooks_delete on public.webhooks
  using (organization_id in (select private.organizations_with_permission('webhooks.manage'))
         and (project_id is null or private.can_edit_project(project_id)));
-- Deliveries: of webhooks one sees, and of events of projects one reads (an event's payload is the project's data).
alter policy webhook_deliveries_select on public.webhook_deliveries
  using (organization_id in (select private.organizations_with_permission('webhooks.manage'))
         and exists (select 1 from public.webhooks w where w.id = webhook_id)
         and (project_id is null or private.can_read_project(project_id)));

-- Task events. Creation is a statement trigger (a bulk insert checks for listeners once per project); status
-- and assignment changes are row triggers that fire only when the column really changed. Soft-deleted tasks emit
-- nothing. The actor (created_by, changed_by, assigned_by) is the signed-in user, null for the service or a workflow.
create function private.task_created_payload(t public.tasks) returns jsonb
language sql stable
set search_path = ''
as $$
  select jsonb_build_object('task_id', t.id, 'project_id', t.project_id, 'parent_task_id', t.parent_task_id,
    'title', t.title, 'status', t.status, 'priority', t.priority, 'assignee_id', t.assignee_id, 'due_date', t.due_date,
    'tags', to_jsonb(t.tags), 'created_by', t.created_by, 'workflow_run_id', t.workflow_run_id)
$$;

create function private.emit_task_created_events() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  t public.tasks;
begin
  for t in
    select n.* from new_tasks n
    where n.deleted_at is null
      and (n.organization_id, n.project_id) in (
            select o.organization_id, o.project_id from (select distinct x.organization_id, x.project_id from new_tasks x) o
            where private.event_has_listeners(o.organization_id, o.project_id, array['task.created', 'task.assigned']))
    order by n.created_at, n.position, n.id
  loop
    perform private.emit_event(t.organization_id, 'task.created', private.task_created_payload(t), gen_random_uuid(), t.project_id);
    if t.assignee_id is not null then
      perform private.emit_event(t.organization_id, 'task.assigned',
        jsonb_build_object('task_id', t.id, 'project_id', t.project_id, 'title', t.title, 'assignee_id', t.assignee_id,
                           'previous_assignee_id', null, 'assigned_by', (select auth.uid())),
        gen_random_uuid(), t.project_id);
    end if;
  end loop;
  return null;
end;
$$;

create function private.emit_task_changed_event() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if not private.event_has_listeners(new.organization_id, new.project_id, array[tg_argv[0]]) then
    return null;
  end if;
  perform private.emit_event(new.organization_id, tg_argv[0], case tg_argv[0]
    when 'task.status_changed' then
      jsonb_build_object('task_id', new.id, 'project_id', new.project_id, 'title', new.title, 'previous_status', old.status,
                         'status', new.status, 'blocked_reason', new.blocked_reason, 'changed_by', (select auth.uid()))
    else
      jsonb_build_object('task_id', new.id, 'project_id', new.project_id, 'title', new.title, 'assignee_id', new.assignee_id,
                         'previous_assignee_id', old.assignee_id, 'assigned_by', (select auth.uid())) end,
    gen_random_uuid(), new.project_id);
  return null;
end;
$$;

create trigger tasks_emit_created after insert on public.tasks
  referencing new table as new_tasks
  for each statement execute function private.emit_task_created_events();
create trigger tasks_emit_status_changed after update of status on public.tasks
  for each row when (old.status is distinct from new.status and new.deleted_at is null)
  execute function private.emit_task_changed_event('task.status_changed');
create trigger tasks_emit_assigned after update of assignee_id on public.tasks
  for each row when (old.assignee_id is distinct from new.assignee_id and new.assignee_id is not null and new.deleted_at is null)
  execute function private.emit_task_changed_event('task.assigned');

-- The create_task action. params (checked when the definition is saved, through workflow_node_config_problem in 45):
-- {"title", "description"?, "project_id"?, "parent_task_id"?, "assignee_id"?, "priority"?, "due_date"?,
--  "estimated_minutes"?, "tags"?}; the string values may hold {{input.x}} / {{nodes.<id>.y}}.
create function private.create_task_params_problem(params jsonb) returns text
language sql immutable
set search_path = ''
as $$
  select case
    when jsonb_typeof(params) is distinct from 'object' then '"params" must be an object'
    when exists (select 1 from jsonb_object_keys(params) k
                 where k not in ('title', 'description', 'project_id', 'parent_task_id', 'assignee_id', 'priority', 'due_date',
                                 'estimated_minutes', 'tags'))
      then 'create_task params are title, description, project_id, parent_task_id, assignee_id, priority, due_date, estimated_minutes and tags'
    when jsonb_typeof(params -> 'title') is distinct from 'string' or btrim(params ->> 'title') = ''
      then 'a create_task task needs params.title (a string, which may hold {{input.x}})'
    when exists (select 1 from unnest(array['description', 'project_id', 'parent_task_id', 'assignee_id', 'due_date']) k
                 where params ? k and jsonb_typeof(params -> k) <> 'string')
      then 'params description, project_id, parent_task_id, assignee_id and due_date must be strings'
    when params ? 'priority' and coalesce(params ->> 'priority', '') not in ('low', 'medium', 'high', 'urgent')
      then 'params.priority must be low, medium, high or urgent'
    when params ? 'estimated_minutes' and not (jsonb_typeof(params -> 'estimated_minutes') = 'number'
                                               and (params ->> 'estimated_minutes')::numeric between 0 and 1000000
                                               and (params ->> 'estimated_minutes')::numeric % 1 = 0)
      then 'params.estimated_minutes must be a whole number of minutes'
    when params ? 'tags' and (jsonb_typeof(params -> 'tags') <> 'array'
                              or exists (select 1 from jsonb_array_elements(params -> 'tags') e where jsonb_typeof(e) <> 'string'))
      then 'params.tags must be an array of strings'
  end
$$;
comment on function private.create_task_params_problem(jsonb) is 'Why create_task params do not fit their shape, or null when they fit.';

-- Run by the worker in one call, as the workflow: the task goes into params.project_id, else the workflow's project;
-- a private project only takes tasks from its own workflows; created_by is null and workflow_run_id the run, so a
-- retried run (same run id) completes with the task its earlier attempt created. The task.created event it causes
-- is one causation level deeper than the execution (an automation that creates tasks on task.created stops at 8).
create function public.create_workflow_task(run_id uuid, lease_token uuid) returns text
language plpgsql security definer
set search_path = ''
as $$
declare
  run record;
  params jsonb;
  context jsonb;
  rendered jsonb := '{}'::jsonb;
  field text;
  problem text;
  target public.projects;
  existing public.tasks;
  created public.tasks;
begin
  perform 1 from public.workflow_executions e
  where e.id = (select r.execution_id from public.workflow_runs r where r.id = create_workflow_task.run_id) for update;
  select r.id, r.organization_id, r.input, e.causation_depth, w.project_id as workflow_project into run
  from public.workflow_runs r join public.workflow_executions e on e.id = r.execution_id
  join public.workflows w on w.id = e.workflow_id
  where r.id = create_workflow_task.run_id and r.lease_token = create_workflow_task.lease_token and r.status = 'running'
    and r.locked_until >= pg_catalog.now();
  if run.id is null then
    return 'lease_lost';
  end if;
  select t.* into existing from public.tasks t where t.workflow_run_id = run.id;
  if existing.id is not null then
    return public.complete_workflow_run(run.id, create_workflow_task.lease_token, jsonb_build_object('task_id', existing.id,
      'project_id', existing.project_id, 'title', existing.title, 'created', false));
  end if;
  params := coalesce(run.input -> 'node' -> 'config' -> 'params', '{}'::jsonb);
  context := coalesce(run.input -> 'context', '{}'::jsonb);
  problem := private.create_task_params_problem(params);
  if problem is null then
    begin
      for field in select k from jsonb_object_keys(params) k
                   where k in ('title', 'description', 'project_id', 'parent_task_id', 'assignee_id', 'due_date') loop
        rendered := rendered || jsonb_build_object(field, private.render_workflow_template(params ->> field, context));
      end loop;
    exception when sqlstate '22023' then
      problem := sqlerrm;
    end;
  end if;
  problem := coalesce(problem, case
    when coalesce(rendered ->> 'project_id', run.workflow_project::text) is null
      then 'a create_task task needs params.project_id unless its workflow belongs to a project'
    when rendered ? 'project_id' and not private.is_uuid_text(rendered -> 'project_id') then 'params.project_id must be a UUID'
    when rendered ? 'parent_task_id' and not private.is_uuid_text(rendered -> 'parent_task_id') then 'params.parent_task_id must be a UUID'
    when rendered ? 'assignee_id' and not private.is_uuid_text(rendered -> 'assignee_id') then 'params.assignee_id must be a UUID' end);
  if problem is null then
    select p.* into target from public.projects p
    where p.id = coalesce((rendered ->> 'project_id')::uuid, run.workflow_project) and p.organization_id = run.organization_id;
    problem := case
      when target.id is null then 'the project does not exist in this organization'
      when target.visibility = 'private' and target.id is distinct from run.workflow_project
        then 'a private project takes tasks only from its own workflows'
      when target.status = 'archived' then 'the project is archived' end;
  end if;
  if problem is null then
    perform pg_catalog.set_config('workflows.causation_depth', (run.causation_depth + 1)::text, true);
    begin
      insert into public.tasks (project_id, parent_task_id, title, description, priority, assignee_id, due_date,
                                estimated_minutes, tags, created_by, workflow_run_id)
      values (target.id, (rendered ->> 'parent_task_id')::uuid, rendered ->> 'title', rendered ->> 'description',
              coalesce(params ->> 'priority', 'medium'), (rendered ->> 'assignee_id')::uuid, (rendered ->> 'due_date')::timestamptz,
              (params ->> 'estimated_minutes')::integer,
              coalesce(array(select jsonb_array_elements_text(params -> 'tags')), '{}'::text[]), null, run.id)
      returning * into created;
    exception when integrity_constraint_violation or data_exception then
      problem := sqlerrm;
    end;
    perform pg_catalog.set_config('workflows.causation_depth', '', true);
  end if;
  if problem is not null then
    perform public.fail_workflow_run(run.id, create_workflow_task.lease_token,
      jsonb_build_object('code', 'invalid_params', 'message', problem), false);
    return 'failed';
  end if;
  return public.complete_workflow_run(run.id, create_workflow_task.lease_token, jsonb_build_object('task_id', created.id,
    'project_id', created.project_id, 'title', created.title, 'created', true));
end;
$$;
comment on function public.create_workflow_task(uuid, uuid) is 'workflow-worker (service_role): runs a create_task task (params rendered from the context) as the workflow and completes the run with {"task_id", "project_id", "title", "created"}; idempotent per run (a retry answers created false with the same task). failed (invalid_params: bad params, unknown or archived project, a private project not the workflow''s, a rule of tasks broken) or lease_lost.';

revoke execute on function public.create_workflow_task(uuid, uuid) from public, anon, authenticated;
grant execute on function public.create_workflow_task(uuid, uuid) to service_role;


-- =====================================================================================================================
-- source: supabase/schemas/58-work-search.sql
-- =====================================================================================================================
-- Work management (seed 004): search over projects, tasks, comments, skills and templates (replacing the seed's
-- search_indexes): weighted tsvectors in the organization's text-search configuration, GIN/trigram indexes, search().

-- btree_gin lets one GIN index hold a project id and a tsvector (or a title's trigrams), so that a search scoped to
-- the caller's readable projects reads only those projects' entries.
create extension if not exists btree_gin with schema extensions;

-- The organization's text-search configuration lives in organizations.settings (key text_search_config, a name from
-- pg_ts_config such as 'english', 'german' or 'simple'): an organization setting like its other preferences, edited
-- with organizations.update. Unset means english; a name that is not (or no longer) a configuration means simple.
create function private.is_known_text_search_config(config text) returns boolean
language sql stable
set search_path = ''
as $$
  select exists (select 1 from pg_catalog.pg_ts_config c
                 where c.cfgname = config and c.cfgnamespace = 'pg_catalog'::regnamespace)
$$;
comment on function private.is_known_text_search_config(text) is 'Whether the name is a built-in text-search configuration (pg_ts_config in pg_catalog).';

create function private.search_config(organization uuid) returns regconfig
language plpgsql stable security definer
set search_path = ''
as $$
declare
  setting text := (select o.settings ->> 'text_search_config' from public.organizations o where o.id = search_config.organization);
begin
  if setting is null then
    return 'pg_catalog.english'::regconfig;
  elsif private.is_known_text_search_config(setting) then
    return ('pg_catalog.' || setting)::regconfig;
  end if;
  return 'pg_catalog.simple'::regconfig;
end;
$$;
comment on function private.search_config(uuid) is 'The organization''s text-search configuration: settings.text_search_config, english when unset, simple when it names no configuration.';

create function private.search_document(config regconfig, title text, body text) returns tsvector
language sql immutable parallel safe
set search_path = ''
as $$
  select pg_catalog.setweight(pg_catalog.to_tsvector(config, coalesce(title, '')), 'A')
      || pg_catalog.setweight(pg_catalog.to_tsvector(config, coalesce(body, '')), 'B')
$$;
comment on function private.search_document(regconfig, text, text) is 'A searchable document: the title''s words weighted A, the body''s weighted B.';

grant execute on function private.is_known_text_search_config(text), private.search_config(uuid) to authenticated, service_role;

-- The setting is checked when written: an unknown name is refused (22023) rather than silently searched as simple.
create function private.check_text_search_config() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.settings ? 'text_search_config'
     and (jsonb_typeof(new.settings -> 'text_search_config') <> 'string'
          or not private.is_known_text_search_config(new.settings ->> 'text_search_config')) then
    raise exception 'unknown text-search configuration %', new.settings -> 'text_search_config' using errcode = '22023',
      constraint = 'organizations_text_search_config_known',
      hint = 'Use a name from pg_ts_config, for example english, german, french or simple.';
  end if;
  return new;
end;
$$;

create trigger organizations_check_text_search_config before insert or update of settings on public.organizations
  for each row execute function private.check_text_search_config();

alter table public.projects add column search_vector tsvector;
comment on column public.projects.search_vector is 'Derived for search(): title (A) and description (B) in the organization''s text-search configuration, kept by trigger.';
alter table public.tasks add column search_vector tsvector;
comment on column public.tasks.search_vector is 'Derived for search(): title (A) and description (B) in the organization''s text-search configuration, kept by trigger.';
alter table public.comments add column search_vector tsvector;
comment on column public.comments.search_vector is 'Derived for search(): the content (B) in the organization''s text-search configuration, kept by trigger.';
alter table public.skills add column search_vector tsvector;
comment on column public.skills.search_vector is 'Derived for search(): name (A) and description (B) in the organization''s text-search configuration, kept by trigger.';
alter table public.templates add column search_vector tsvector;
comment on column public.templates.search_vector is 'Derived for search(): name (A) and description (B) in the organization''s text-search configuration, kept by trigger.';

create index projects_search_vector_idx on public.projects using gin (search_vector);
create index projects_title_trgm_idx on public.projects using gin (title extensions.gin_trgm_ops);
create index tasks_search_vector_idx on public.tasks using gin (project_id, search_vector) where deleted_at is null;
create index tasks_title_trgm_idx on public.tasks using gin (project_id, title extensions.gin_trgm_ops) where deleted_at is null;
create index comments_search_vector_idx on public.comments using gin (project_id, search_vector) where deleted_at is null;
create index skills_search_vector_idx on public.skills using gin (search_vector);
create index skills_name_trgm_idx on public.skills using gin (name extensions.gin_trgm_ops);
create index templates_search_vector_idx on public.templates using gin (search_vector);
create index templates_name_trgm_idx on public.templates using gin (name extensions.gin_trgm_ops);

-- One trigger function for every searchable table: the document's title and body per table.
create function private.set_search_vector() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  config regconfig := private.search_config(new.organization_id);
begin
  case tg_table_name
    when 'projects' then new.search_vector := private.search_document(config, new.title, new.description);
    when 'tasks' then new.search_vector := private.search_document(config, new.title, new.description);
    when 'comments' then new.search_vector := private.search_document(config, null, new.content);
    when 'skills', 'templates' then new.search_vector := private.search_document(config, new.name, new.description);
  end case;
  return new;
end;
$$;

create trigger projects_set_search_vector before insert or update of title, description on public.projects
  for each row execute function private.set_search_vector();
create trigger tasks_set_search_vector before insert or update of title, description on public.tasks
  for each row execute function private.set_search_vector();
create trigger comments_set_search_vector before insert or update of content on public.comments
  for each row execute function private.set_search_vector();
create trigger skills_set_search_vector before insert or update of name, description on public.skills
  for each row execute function private.set_search_vector();
create trigger templates_set_search_vector before insert or update of name, description on public.templates
  for each row execute function private.set_search_vector();

-- A changed configuration re-indexes the organization's documents in the new one.
create function private.reindex_organization_search() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  config regconfig := private.search_config(new.id);
begin
  update public.projects p set search_vector = private.search_document(config, p.title, p.description)
  where p.organization_id = new.id;
  update public.tasks t set search_vector = private.search_document(config, t.title, t.description)
  where t.organization_id = new.id;
  update public.comments c set search_vector = private.search_document(config, null, c.content)
  where c.organization_id = new.id;
  update public.skills k set search_vector = private.search_document(config, k.name, k.description)
  where k.organization_id = new.id;
  update public.templates m set search_vector = private.search_document(config, m.name, m.description)
  where m.organization_id = new.id;
  return null;
end;
$$;

create trigger organizations_reindex_search after update of settings on public.organizations
  for each row when (old.settings ->> 'text_search_config' is distinct from new.settings ->> 'text_search_config')
  execute function private.reindex_organization_search();

-- One search match before its row is read (search_candidates() collects them per text-search configuration).
create type private.search_hit as (
  entity_type text, entity_id uuid, project_id uuid, title text, body text, rank real, config text, tsq tsquery
);
comment on type private.search_hit is 'A search() match: what it is, its text, its rank, and the configuration and query it matched (null for trigram matches).';

-- The candidates of a search, best first, for the caller only: RLS keeps a non-leakproof condition such as @@ or
-- <% out of index scans (it must not run before the policies), so under RLS the GIN indexes could never be used
-- and every row of the caller's projects would pay for its policies. This security definer helper finds the
-- matches through the indexes within what the caller may read by the same rules (readable_project_ids(), the
-- organizations where they hold projects.read, public skills and templates), returning ids and ranks only; search()
-- then reads the rows under RLS, which has the last word. Full text in each text-search configuration of the
-- caller's organizations (the best max_results of each), then, while fewer than max_results were found, trigram
-- matches of titles and names (not comments). Public skills and templates of other organizations are matched with
-- the caller's configurations. Custom plans only (plan_cache_mode): a generic plan cannot see whether a word is rare
-- (read the GIN index) or common (read the caller's projects), and was four times slower on common words.
create function private.search_candidates(words text, wanted text[], within_project uuid, max_results integer)
returns table (entity_type text, entity_id uuid, rank real, config text, tsq tsquery)
language plpgsql stable security definer
set search_path = ''
set pg_trgm.word_similarity_threshold = '0.5'
set plan_cache_mode = 'force_custom_plan'
as $$
declare
  readable uuid[] := array(select r from private.readable_project_ids() r where within_project is null or r = within_project);
  mine uuid[] := array(select o from private.organizations_with_permission('projects.read') o);
  project_scoped boolean := within_project is not null;
  hits private.search_hit[] := array[]::private.search_hit[];
  scope record;
  query tsquery;
  phrase boolean;
begin
  for scope in
    select c.config, array_agg(c.organization_id) as organizations,
           coalesce(array_agg(p.id) filter (where p.id is not null), '{}') as projects
    from (select o as organization_id, private.search_config(o) as config
          from unnest(array(select o from private.user_organization_ids() o)) o) c
    left join public.projects p on p.organization_id = c.organization_id and p.id = any(readable)
    group by c.config
  loop
    query := pg_catalog.websearch_to_tsquery(scope.config, words);
    continue when pg_catalog.numnode(query) = 0;
    phrase := pg_catalog.strpos(query::text, '<') > 0;
    hits := hits || array(
      select row(m.*)::private.search_hit from (
        select 'project'::text, p.id, null::uuid, null::text, null::text,
               (1 + pg_catalog.ts_rank(p.search_vector, query, 32))::real, scope.config::text, query
        from public.projects p
        where 'project' = any(wanted) and p.id = any(scope.projects) and p.search_vector @@ query
        union all
        select 'task', t.id, null, null, null, (1 + pg_catalog.ts_rank(t.search_vector, query, 32))::real, scope.config::text, query
        from public.tasks t
        where 'task' = any(wanted) and t.project_id = any(scope.projects) and t.search_vector @@ query and t.deleted_at is null
        union all
        select 'comment', c.id, null, null, null, (1 + pg_catalog.ts_rank(c.search_vector, query, 32))::real, scope.config::text, query
        from public.comments c
        where 'comment' = any(wanted) and not phrase and c.project_id = any(scope.projects) and c.search_vector @@ query
          and c.deleted_at is null and exists (select 1 from public.tasks t where t.id = c.task_id and t.deleted_at is null)
        union all
        -- A phrase's words are each common enough that the GIN index hands back every comment holding both (tens of
        -- thousands) for the phrase check; reading the caller's projects' comments first is far cheaper.
        select 'comment', c.id, null, null, null, (1 + pg_catalog.ts_rank(c.search_vector, query, 32))::real, scope.config::text, query
        from (select * from public.comments c
              where 'comment' = any(wanted) and phrase and c.project_id = any(scope.projects) and c.deleted_at is null
              offset 0) c
        where c.search_vector @@ query and exists (select 1 from public.tasks t where t.id = c.task_id and t.deleted_at is null)
        union all
        select 'skill', k.id, null, null, null, (1 + pg_catalog.ts_rank(k.search_vector, query, 32))::real, scope.config::text, query
        from public.skills k
        where 'skill' = any(wanted) and not project_scoped and k.search_vector @@ query
          and ((k.organization_id = any(scope.organizations) and k.organization_id = any(mine))
               or (k.is_public and not k.organization_id = any(mine)))
        union all
        select 'template', m.id, null, null, null, (1 + pg_catalog.ts_rank(m.search_vector, query, 32))::real, scope.config::text, query
        from public.templates m
        where 'template' = any(wanted) and not project_scoped and m.search_vector @@ query
          and ((m.organization_id = any(scope.organizations) and m.organization_id = any(mine))
               or (m.is_public and not m.organization_id = any(mine)))
        order by 6 desc limit max_results) m);
  end loop;

  if cardinality(hits) < max_results then
    hits := hits || array(
      select row(m.*)::private.search_hit from (
        select 'project'::text, p.id, null::uuid, null::text, null::text,
               extensions.word_similarity(words, p.title), null::text, null::tsquery
        from public.projects p
        where 'project' = any(wanted) and p.id = any(readable) and words operator(extensions.<%) p.title
        union all
        select 'task', t.id, null, null, null, extensions.word_similarity(words, t.title), null, null
        from public.tasks t
        where 'task' = any(wanted) and t.project_id = any(readable) and words operator(extensions.<%) t.title
          and t.deleted_at is null
        union all
        select 'skill', k.id, null, null, null, extensions.word_similarity(words, k.name), null, null
        from public.skills k
        where 'skill' = any(wanted) and not project_scoped and words operator(extensions.<%) k.name
          and (k.organization_id = any(mine) or k.is_public)
        union all
        select 'template', m.id, null, null, null, extensions.word_similarity(words, m.name), null, null
        from public.templates m
        where 'template' = any(wanted) and not project_scoped and words operator(extensions.<%) m.name
          and (m.organization_id = any(mine) or m.is_public)
        order by 6 desc limit max_results) m (entity_type, entity_id)
      where not exists (select 1 from unnest(hits) h where h.entity_id = m.entity_id));
  end if;

  return query
  select distinct on (h.entity_id) h.entity_type, h.entity_id, h.rank, h.config, h.tsq
  from unnest(hits) h
  order by h.entity_id, h.rank desc;
end;
$$;
comment on function private.search_candidates(text, text[], uuid, integer) is 'For search(): ids and ranks of the rows matching the words that the caller may read (same rules as the policies), through the GIN and trigram indexes. Reveals nothing the caller cannot read.';
grant execute on function private.search_candidates(text, text[], uuid, integer) to authenticated;

-- search(): validates its arguments, takes the candidates, and reads each one under the caller's RLS (security
-- invoker: a row RLS hides is never returned). Deleted rows never come back: soft-deleted tasks, soft-deleted
-- comments (even to their author) and the comments of soft-deleted tasks. Full-text matches rank above trigram
-- ones: their rank is 1 + ts_rank(..., 32) (between 1 and 2), a trigram match's is its word similarity (between 0.5
-- and 1). Snippets come from ts_headline over the body when the body matches (else the title), the matches wrapped
-- in ** (markdown bold); trigram matches get the start of their body. A comment's title is its task's title; skills
-- and templates have no project, so within_project leaves them out.
create function public.search(query text, entity_types text[] default null, within_project uuid default null,
                              max_results integer default 20)
returns table (entity_type text, entity_id uuid, project_id uuid, title text, snippet text, rank real)
language plpgsql stable
set search_path = ''
as $$
declare
  known constant text[] := array['project', 'task', 'comment', 'skill', 'template'];
  words text := btrim(coalesce(query, ''));
  candidates private.search_hit[];
begin
  if words = '' then
    raise exception 'search needs a query' using errcode = '22023';
  elsif char_length(words) > 200 then
    raise exception 'a search query has at most 200 characters' using errcode = '22023';
  elsif entity_types is not null and (cardinality(entity_types) = 0 or not entity_types <@ known) then
    raise exception 'unknown entity type in %', entity_types using errcode = '22023',
      hint = 'Use null for every type, or some of: ' || array_to_string(known, ', ') || '.';
  elsif max_results is null or max_results not between 1 and 100 then
    raise exception 'max_results must be between 1 and 100' using errcode = '22023';
  end if;
  candidates := array(
    select row(c.entity_type, c.entity_id, null, null, null, c.rank, c.config, c.tsq)::private.search_hit
    from private.search_candidates(words, coalesce(entity_types, known), within_project, max_results) c);

  return query
  select h.entity_type, h.entity_id, h.project_id, h.title,
         case when h.tsq is null then left(coalesce(nullif(h.body, ''), h.title), 200)
              else pg_catalog.ts_headline(h.config::regconfig,
                     case when pg_catalog.to_tsvector(h.config::regconfig, coalesce(h.body, '')) @@ h.tsq then h.body else h.title end, h.tsq,
                     'StartSel=**, StopSel=**, MaxWords=30, MinWords=10, MaxFragments=2, FragmentDelimiter=" … "')
         end,
         h.rank
  from (
    select c.entity_type, c.entity_id, p.id as project_id, p.title, p.description as body, c.rank, c.config, c.tsq
    from unnest(candidates) c join public.projects p on p.id = c.entity_id
    where c.entity_type = 'project'
    union all
    select c.entity_type, c.entity_id, t.project_id, t.title, t.description, c.rank, c.config, c.tsq
    from unnest(candidates) c join public.tasks t on t.id = c.entity_id and t.deleted_at is null
    where c.entity_type = 'task'
    union all
    select c.entity_type, c.entity_id, k.project_id, t.title, k.content, c.rank, c.config, c.tsq
    from unnest(candidates) c join public.comments k on k.id = c.entity_id and k.deleted_at is null
    join public.tasks t on t.id = k.task_id and t.deleted_at is null
    where c.entity_type = 'comment'
    union all
    select c.entity_type, c.entity_id, null, s.name, s.description, c.rank, c.config, c.tsq
    from unnest(candidates) c join public.skills s on s.id = c.entity_id
    where c.entity_type = 'skill'
    union all
    select c.entity_type, c.entity_id, null, m.name, m.description, c.rank, c.config, c.tsq
    from unnest(candidates) c join public.templates m on m.id = c.entity_id
    where c.entity_type = 'template'
    order by 6 desc, 1, 2
    limit max_results) h
  order by h.rank desc, h.entity_type, h.entity_id;
end;
$$;
comment on function public.search(text, text[], uuid, integer) is 'Search what the caller may read (RLS decides), best first: projects, tasks, comments, skills and templates by full text in the organization''s configuration, then trigram matches of titles and names for short, partial or misspelt words. entity_types: null for all, or some of project, task, comment, skill, template; within_project limits to one project (skills and templates have none); max_results 1-100.';
grant execute on function public.search(text, text[], uuid, integer) to authenticated;


-- =====================================================================================================================
-- source: supabase/schemas/60-receptionist-agents.sql
-- =====================================================================================================================
-- AI receptionist: the `agent` role and `receptionist.operate`, ai_agents, their API keys, the receptionist events.
-- An agent is an auth.users row and a member of its organization; it calls the receptionist edge function with a key.

-- Reference data. `agent` ranks between viewer (10) and member (50): it reads the receptionist module and writes
-- conversations, messages and appointments (receptionist.operate), never services, staff or settings.
insert into public.permissions (key, description) values
  ('receptionist.operate', 'Write conversations, messages and appointments (what an AI receptionist does on a call)');

insert into public.roles (organization_id, key, name, description, rank) values
  (null, 'agent', 'AI agent', 'An AI receptionist: reads the receptionist module, books appointments and records calls', 30);

-- `agent` becomes a reserved key like the other system roles.
alter table public.roles drop constraint roles_custom_key_not_reserved;
alter table public.roles add constraint roles_custom_key_not_reserved
  check (organization_id is null or key not in ('owner', 'admin', 'member', 'viewer', 'agent'));

insert into public.role_permissions (role_id, permission_key)
select r.id, p.key
from public.roles r
join public.permissions p on p.key = 'receptionist.operate'
where r.organization_id is null and r.key in ('owner', 'admin', 'member', 'agent')
union all
select r.id, 'receptionist.read' from public.roles r where r.organization_id is null and r.key = 'agent';

insert into public.webhook_event_types (key, description) values
  ('call.started', 'A receptionist conversation (call, chat) started'),
  ('call.ended', 'A receptionist conversation ended'),
  ('message.received', 'An inbound message (SMS, e-mail, chat) was recorded'),
  ('message.sent', 'An outbound message was handed to its provider'),
  ('message.delivered', 'An outbound message was delivered'),
  ('message.failed', 'An outbound message failed'),
  ('appointment.booked', 'An appointment was booked'),
  ('appointment.rescheduled', 'An appointment moved to another time or staff member'),
  ('appointment.confirmed', 'An appointment was confirmed'),
  ('appointment.cancelled', 'An appointment was cancelled'),
  ('appointment.completed', 'An appointment took place'),
  ('appointment.no_show', 'The client did not come');

create function private.is_valid_agent_capabilities(capabilities jsonb) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select jsonb_typeof(capabilities) = 'array'
     and not exists (select 1 from jsonb_array_elements(capabilities) c
                     where jsonb_typeof(c) <> 'string'
                        or c #>> '{}' not in ('phone_answering', 'appointment_booking', 'information_providing', 'sms_follow_up'))
$$;
comment on function private.is_valid_agent_capabilities(jsonb) is 'True when capabilities is an array of phone_answering, appointment_booking, information_providing, sms_follow_up.';
grant execute on function private.is_valid_agent_capabilities(jsonb) to authenticated, service_role;

create table public.ai_agents (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  user_id uuid,
  name text not null,
  voice_id text,
  language text not null default 'pl',
  personality_traits jsonb not null default '{}'::jsonb,
  knowledge_base jsonb not null default '{}'::jsonb,
  capabilities jsonb not null default '["phone_answering", "appointment_booking", "information_providing"]'::jsonb,
  status text not null default 'active',
  phone_number public.phone_number,
  sms_enabled boolean not null default true,
  calendar_integration_id uuid,
  created_by uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  constraint ai_agents_pkey primary key (id),
  constraint ai_agents_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint ai_agents_user_id_fkey foreign key (user_id) references auth.users (id) on delete set null,
  constraint ai_agents_calendar_integration_id_fkey foreign key (calendar_integration_id) references public.integrations (id) on delete set null,
  constraint ai_agents_created_by_fkey foreign key (created_by) references auth.users (id) on delete set null,
  constraint ai_agents_user_id_key unique (user_id),
  constraint ai_agents_name_length check (char_length(btrim(name)) between 1 and 200),
  constraint ai_agents_voice_id_length check (voice_id is null or char_length(voice_id) <= 255),
  constraint ai_agents_language_bcp47 check (language ~ '^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$'),
  constraint ai_agents_personality_traits_object check (jsonb_typeof(personality_traits) = 'object'),
  constraint ai_agents_knowledge_base_object check (jsonb_typeof(knowledge_base) = 'object'),
  constraint ai_agents_capabilities_known check (private.is_valid_agent_capabilities(capabilities)),
  constraint ai_agents_status_known check (status in ('active', 'inactive', 'training', 'error')),
  constraint ai_agents_live_has_identity check (deleted_at is not null or user_id is not null)
);
comment on table public.ai_agents is 'AI receptionists (seed 003). Each live agent is an auth.users row (app_metadata.agent) and a member with the system role agent; create with create_ai_agent(); soft-deleting or deleting the agent removes that identity and its keys.';
comment on column public.ai_agents.user_id is 'The agent''s auth.users identity (set by create_ai_agent, cleared when the agent is deleted).';
comment on column public.ai_agents.calendar_integration_id is 'The seed''s calendar_integration: the organization''s calendar integration the agent books into.';
comment on column public.ai_agents.language is 'BCP 47 language tag, e.g. pl, en-GB.';
comment on column public.ai_agents.phone_number is 'E.164; unique among agents not deleted.';

create unique index ai_agents_phone_number_key on public.ai_agents (phone_number) where deleted_at is null;
create index ai_agents_organization_id_idx on public.ai_agents (organization_id) where deleted_at is null;
create index ai_agents_organization_id_all_idx on public.ai_agents (organization_id);
create index ai_agents_calendar_integration_id_idx on public.ai_agents (calendar_integration_id);
create index ai_agents_created_by_idx on public.ai_agents (created_by);

-- The calendar integration must be one of the agent's organization.
create function private.check_ai_agent() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.calendar_integration_id is not null and not exists (
       select 1 from public.integrations i where i.id = new.calendar_integration_id and i.organization_id = new.organization_id) then
    raise exception 'integration % does not belong to the agent''s organization', new.calendar_integration_id
      using errcode = '23514', constraint = 'ai_agents_calendar_integration_same_organization';
  end if;
  return new;
end;
$$;

-- Deleting an agent (soft or hard) removes its identity: the auth.users row, hence its membership and keys.
create function private.remove_ai_agent_identity() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if old.user_id is not null then
    delete from auth.users u where u.id = old.user_id;
  end if;
  return null;
end;
$$;

create trigger ai_agents_check before insert or update of organization_id, calendar_integration_id on public.ai_agents
  for each row execute function private.check_ai_agent();
create trigger ai_agents_set_updated_at before update on public.ai_agents
  for each row execute function private.set_updated_at();
create trigger ai_agents_audit after insert or update or delete on public.ai_agents
  for each row execute function private.audit_row_change();
create trigger ai_agents_remove_identity_on_delete after delete on public.ai_agents
  for each row execute function private.remove_ai_agent_identity();
create trigger ai_agents_remove_identity_on_soft_delete after update of deleted_at on public.ai_agents
  for each row when (old.deleted_at is null and new.deleted_at is not null)
  execute function private.remove_ai_agent_identity();

create table public.ai_agent_api_keys (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  agent_id uuid not null,
  name text not null default 'default',
  key_prefix text not null,
  key_hash text not null,
  created_by uuid,
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  revoked_at timestamptz,
  constraint ai_agent_api_keys_pkey primary key (id),
  constraint ai_agent_api_keys_key_hash_key unique (key_hash),
  constraint ai_agent_api_keys_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint ai_agent_api_keys_agent_id_fkey foreign key (agent_id) references public.ai_agents (id) on delete cascade,
  constraint ai_agent_api_keys_created_by_fkey foreign key (created_by) references auth.users (id) on delete set null,
  constraint ai_agent_api_keys_name_length check (char_length(btrim(name)) between 1 and 100),
  constraint ai_agent_api_keys_key_prefix_format check (key_prefix ~ '^rk_[A-Za-z0-9_-]{8}$'),
  constraint ai_agent_api_keys_key_hash_format check (key_hash ~ '^[0-9a-f]{64}$')
);
comment on table public.ai_agent_api_keys is 'Per-agent API keys for the receptionist edge function: rk_ + 32 random bytes (base64url), shown once by create_ai_agent_api_key(); only the SHA-256 is stored. Revoked keys stay for the record.';
comment on column public.ai_agent_api_keys.key_prefix is 'The first 11 characters of the key (rk_ + 8), to tell keys apart; not enough to use it.';
comment on column public.ai_agent_api_keys.key_hash is 'SHA-256 of the key, hex. Not selectable by API roles.';

create index ai_agent_api_keys_agent_id_idx on public.ai_agent_api_keys (agent_id);
create index ai_agent_api_keys_organization_id_idx on public.ai_agent_api_keys (organization_id);
create index ai_agent_api_keys_created_by_idx on public.ai_agent_api_keys (created_by);

create trigger ai_agent_api_keys_audit after insert or update or delete on public.ai_agent_api_keys
  for each row execute function private.audit_row_change();

alter table public.ai_agents enable row level security;
alter table public.ai_agent_api_keys enable row level security;

-- ai_agents_select: receptionist readers (staff, viewers, agents) see their organization's agents.
create policy ai_agents_select on public.ai_agents for select to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.read')));
-- ai_agents_update: ai_agents.manage holders configure agents (granted columns only; deleted_at soft-deletes).
create policy ai_agents_update on public.ai_agents for update to authenticated
  using (organization_id in (select private.organizations_with_permission('ai_agents.manage')))
  with check (organization_id in (select private.organizations_with_permission('ai_agents.manage')));
-- ai_agents_delete: ai_agents.manage holders delete agents (their conversations go with them).
create policy ai_agents_delete on public.ai_agents for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('ai_agents.manage')));
-- ai_agent_api_keys_select: ai_agents.manage holders see the keys (never their hashes).
create policy ai_agent_api_keys_select on public.ai_agent_api_keys for select to authenticated
  using (organization_id in (select private.organizations_with_permission('ai_agents.manage')));

grant select on public.ai_agents to authenticated, service_role;
grant update (name, voice_id, language, personality_traits, knowledge_base, capabilities, status, phone_number,
              sms_enabled, calendar_integration_id, deleted_at) on public.ai_agents to authenticated;
grant delete on public.ai_agents to authenticated, service_role;
grant select (id, organization_id, agent_id, name, key_prefix, created_by, created_at, last_used_at, revoked_at)
  on public.ai_agent_api_keys to authenticated, service_role;

create function private.require_agent_manager(organization uuid) returns void
language plpgsql stable security definer
set search_path = ''
as $$
begin
  if organization is null or not private.has_permission(organization, 'ai_agents.manage') then
    raise exception 'you may not manage AI agents here' using errcode = '42501',
      hint = 'Managing agents needs ai_agents.manage (owner or admin).';
  end if;
end;
$$;

-- Provisions the agent's identity: an auth.users row marked {"agent": true} in app_metadata (the sign-up trigger
-- gives it no profile and no personal organization), with no password and an address that cannot receive mail,
-- and a membership with the system role agent (no invitation: the organization creates its own agent).
create function public.create_ai_agent(organization_id uuid, name text, language text default 'pl',
                                       phone_number text default null, voice_id text default null,
                                       capabilities jsonb default null)
returns public.ai_agents
language plpgsql security definer
set search_path = ''
as $$
declare
  new_user uuid := gen_random_uuid();
  created public.ai_agents;
begin
  perform private.require_agent_manager(create_ai_agent.organization_id);
  perform private.require_active_organization(create_ai_agent.organization_id);
  insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
  values ('00000000-0000-0000-0000-000000000000', new_user, 'authenticated', 'authenticated',
          'agent-' || replace(new_user::text, '-', '') || '@agents.invalid',
          jsonb_build_object('provider', 'agent', 'providers', jsonb_build_array('agent'), 'agent', true,
                             'organization_id', create_ai_agent.organization_id),
          jsonb_build_object('name', left(create_ai_agent.name, 200)), pg_catalog.now(), pg_catalog.now());
  insert into public.organization_members (organization_id, user_id, role_id, invited_by)
  values (create_ai_agent.organization_id, new_user, private.system_role_id('agent'), (select auth.uid()));
  insert into public.ai_agents (organization_id, user_id, name, language, phone_number, voice_id, capabilities, created_by)
  values (create_ai_agent.organization_id, new_user, create_ai_agent.name, coalesce(create_ai_agent.language, 'pl'),
          create_ai_agent.phone_number, create_ai_agent.voice_id,
          coalesce(create_ai_agent.capabilities, '["phone_answering", "appointment_booking", "information_providing"]'::jsonb),
          (select auth.uid()))
  returning * into created;
  return created;
end;
$$;
comment on function public.create_ai_agent(uuid, text, text, text, text, jsonb) is 'Creates an AI agent with its own identity (auth.users, app_metadata.agent, no password, no personal organization) and agent membership; ai_agents.manage.';
grant execute on function public.create_ai_agent(uuid, text, text, text, text, jsonb) to authenticated;

create function public.create_ai_agent_api_key(agent_id uuid, name text default 'default')
returns table (key_id uuid, api_key text)
language plpgsql security definer
set search_path = ''
as $$
declare
  agent public.ai_agents;
  secret text := 'rk_' || translate(encode(extensions.gen_random_bytes(32), 'base64'), '+/=', '-_');
begin
  select a.* into agent from public.ai_agents a where a.id = create_ai_agent_api_key.agent_id;
  perform private.require_agent_manager(agent.organization_id);
  if agent.deleted_at is not null then
    raise exception 'agent % is deleted', agent_id using errcode = '55000';
  end if;
  insert into public.ai_agent_api_keys (organization_id, agent_id, name, key_prefix, key_hash, created_by)
  values (agent.organization_id, agent.id, coalesce(create_ai_agent_api_key.name, 'default'), left(secret, 11),
          encode(pg_catalog.sha256(convert_to(secret, 'UTF8')), 'hex'), (select auth.uid()))
  returning id into key_id;
  api_key := secret;
  return next;
end;
$$;
comment on function public.create_ai_agent_api_key(uuid, text) is 'Issues an API key for an agent and returns it once (only its hash is kept); ai_agents.manage.';
grant execute on function public.create_ai_agent_api_key(uuid, text) to authenticated;

create function public.revoke_ai_agent_api_key(key_id uuid) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  target public.ai_agent_api_keys;
begin
  select k.* into target from public.ai_agent_api_keys k where k.id = key_id;
  perform private.require_agent_manager(target.organization_id);
  update public.ai_agent_api_keys k set revoked_at = coalesce(k.revoked_at, pg_catalog.now()) where k.id = key_id;
end;
$$;
comment on function public.revoke_ai_agent_api_key(uuid) is 'Revokes an agent API key at once (idempotent); ai_agents.manage.';
grant execute on function public.revoke_ai_agent_api_key(uuid) to authenticated;

-- What the receptionist edge function asks first (as the service role): whose key is this? Null for an unknown,
-- revoked or deleted agent's key; stamps last_used_at (at most once a minute, so a busy agent does not rewrite it).
create function public.authenticate_ai_agent_key(api_key text)
returns table (agent_id uuid, user_id uuid, organization_id uuid, email text, app_metadata jsonb)
language plpgsql security definer
set search_path = ''
as $$
declare
  hashed text := encode(pg_catalog.sha256(convert_to(coalesce(api_key, ''), 'UTF8')), 'hex');
  found_key uuid;
begin
  select k.id, a.id, a.user_id, a.organization_id, u.email, u.raw_app_meta_data
    into found_key, agent_id, user_id, organization_id, email, app_metadata
  from public.ai_agent_api_keys k
  join public.ai_agents a on a.id = k.agent_id
  join auth.users u on u.id = a.user_id
  where k.key_hash = hashed and k.revoked_at is null and a.deleted_at is null and a.status = 'active';
  if found_key is null then
    return;
  end if;
  update public.ai_agent_api_keys k set last_used_at = pg_catalog.now()
  where k.id = found_key and (k.last_used_at is null or k.last_used_at < pg_catalog.now() - interval '1 minute');
  return next;
end;
$$;
comment on function public.authenticate_ai_agent_key(text) is 'Resolves a receptionist API key to its live agent and identity (nothing for unknown or revoked keys); stamps last_used_at. service_role only.';
grant execute on function public.authenticate_ai_agent_key(text) to service_role;


-- =====================================================================================================================
-- source: supabase/schemas/61-receptionist-services-staff.sql
-- =====================================================================================================================
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


-- =====================================================================================================================
-- source: supabase/schemas/62-receptionist-conversations-messages.sql
-- =====================================================================================================================
-- AI receptionist: conversations (redacted transcripts) and messages (SMS, e-mail, voice, chat), ai_agent_performance.
-- Written by receptionist.operate holders (agents, staff); they announce call.* and message.* events.

-- A transcript is an array of {speaker, text, at} turns: speaker agent | caller | staff | system, text a string of at
-- most 10,000 characters, at an ISO 8601 timestamp with a time zone.
create function private.is_valid_transcript(transcript jsonb) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select jsonb_typeof(transcript) = 'array'
     and not exists (
       select 1 from jsonb_array_elements(transcript) t
       where jsonb_typeof(t) <> 'object'
          or not (t ?& array['speaker', 'text', 'at'])
          or exists (select 1 from jsonb_object_keys(t) k where k not in ('speaker', 'text', 'at'))
          or jsonb_typeof(t -> 'text') <> 'string' or char_length(t ->> 'text') > 10000
          or coalesce(t ->> 'speaker', '') not in ('agent', 'caller', 'staff', 'system')
          or jsonb_typeof(t -> 'at') <> 'string'
          or (t ->> 'at') !~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)$')
$$;
comment on function private.is_valid_transcript(jsonb) is 'True when a transcript is an array of {speaker: agent|caller|staff|system, text, at: ISO 8601 with zone} turns.';
grant execute on function private.is_valid_transcript(jsonb) to authenticated, service_role;

create table public.conversations (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  agent_id uuid not null,
  direction text not null default 'inbound',
  status text not null default 'active',
  caller_phone text,
  caller_name text,
  caller_email text,
  duration_seconds integer,
  sentiment_score numeric(3, 2),
  topics jsonb not null default '[]'::jsonb,
  summary text,
  intent text,
  outcome text,
  recording_url public.http_url,
  transcript jsonb not null default '[]'::jsonb,
  metadata jsonb not null default '{}'::jsonb,
  started_at timestamptz not null default now(),
  ended_at timestamptz,
  caller_data_cleared_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint conversations_pkey primary key (id),
  constraint conversations_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint conversations_agent_id_fkey foreign key (agent_id) references public.ai_agents (id) on delete cascade,
  constraint conversations_direction_known check (direction in ('inbound', 'outbound')),
  constraint conversations_status_known check (status in ('active', 'completed', 'missed', 'failed')),
  constraint conversations_caller_lengths check (coalesce(char_length(caller_phone), 0) <= 50
    and coalesce(char_length(caller_name), 0) <= 200 and coalesce(char_length(caller_email), 0) <= 254),
  constraint conversations_sentiment_range check (sentiment_score is null or sentiment_score between -1 and 1),
  constraint conversations_topics_array check (jsonb_typeof(topics) = 'array'),
  constraint conversations_summary_length check (summary is null or char_length(summary) <= 10000),
  constraint conversations_intent_length check (coalesce(char_length(intent), 0) <= 100 and coalesce(char_length(outcome), 0) <= 100),
  constraint conversations_transcript_shape check (private.is_valid_transcript(transcript)),
  constraint conversations_metadata_object check (jsonb_typeof(metadata) = 'object'),
  constraint conversations_ended_after_start check (ended_at is null or ended_at >= started_at),
  constraint conversations_active_not_ended check ((status = 'active') = (ended_at is null))
);
comment on table public.conversations is 'Calls and chats an AI agent handled (seed 003). Transcript turns and the summary are redacted (card, secret, IBAN, SSN) on every write; caller fields, transcript and recording are cleared after the organization''s retention period.';
comment on column public.conversations.transcript is 'Array of {speaker, text, at} turns; each text redacted for card numbers, secrets, IBANs and SSNs on insert and update.';
comment on column public.conversations.caller_phone is 'Caller contact data (personal data; not redacted, cleared by retention and erase_caller_data).';
comment on column public.conversations.duration_seconds is 'Derived: seconds from started_at to ended_at, set when the conversation ends.';
comment on column public.conversations.caller_data_cleared_at is 'When retention or erase_caller_data() cleared the caller fields, transcript and recording.';

create index conversations_organization_id_idx on public.conversations (organization_id, started_at desc);
create index conversations_agent_id_idx on public.conversations (agent_id, started_at desc);
create index conversations_caller_phone_idx on public.conversations (organization_id, caller_phone) where caller_phone is not null;
create index conversations_retention_idx on public.conversations (organization_id, started_at) where caller_data_cleared_at is null;

-- Redaction (PCI: a caller reading out a card number must never be stored) and derived fields. Security definer
-- because the redactor is not granted to API roles.
create function private.prepare_conversation() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  select a.organization_id into new.organization_id from public.ai_agents a where a.id = new.agent_id;
  if tg_op = 'INSERT' or new.transcript is distinct from old.transcript then
    select coalesce(jsonb_agg(t.turn || jsonb_build_object('text',
             private.redact_text(t.turn ->> 'text', '{card,secret,iban,ssn}')) order by t.n), '[]'::jsonb)
      into new.transcript
    from jsonb_array_elements(case when jsonb_typeof(new.transcript) = 'array' then new.transcript else '[]'::jsonb end)
         with ordinality as t(turn, n);
  end if;
  if tg_op = 'INSERT' or new.summary is distinct from old.summary then
    new.summary := private.redact_text(new.summary, '{card,secret,iban,ssn}');
  end if;
  new.duration_seconds := case when new.ended_at is not null
                               then floor(extract(epoch from new.ended_at - new.started_at))::integer end;
  return new;
end;
$$;

create trigger conversations_prepare before insert or update on public.conversations
  for each row execute function private.prepare_conversation();
create trigger conversations_set_updated_at before update on public.conversations
  for each row execute function private.set_updated_at();
create trigger conversations_audit after insert or update or delete on public.conversations
  for each row execute function private.audit_row_change();

create function private.emit_conversation_event() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform private.emit_event(new.organization_id,
    case when tg_op = 'INSERT' then 'call.started' else 'call.ended' end,
    jsonb_build_object('conversation_id', new.id, 'agent_id', new.agent_id, 'direction', new.direction,
                       'status', new.status, 'started_at', new.started_at, 'ended_at', new.ended_at,
                       'duration_seconds', new.duration_seconds, 'intent', new.intent, 'outcome', new.outcome));
  return null;
end;
$$;

create trigger conversations_emit_started after insert on public.conversations
  for each row execute function private.emit_conversation_event();
create trigger conversations_emit_ended after update of ended_at on public.conversations
  for each row when (old.ended_at is null and new.ended_at is not null)
  execute function private.emit_conversation_event();

create table public.messages (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  conversation_id uuid,
  appointment_id uuid,
  direction text not null,
  channel text not null,
  from_number public.phone_number,
  to_number public.phone_number,
  from_email public.email_address,
  to_email public.email_address,
  subject text,
  body text not null,
  status text not null default 'pending',
  provider text,
  provider_message_id text,
  error_message text,
  sent_at timestamptz,
  delivered_at timestamptz,
  caller_data_cleared_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint messages_pkey primary key (id),
  constraint messages_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint messages_conversation_id_fkey foreign key (conversation_id) references public.conversations (id) on delete cascade,
  constraint messages_provider_message_id_key unique (provider, provider_message_id),
  constraint messages_direction_known check (direction in ('inbound', 'outbound')),
  constraint messages_channel_known check (channel in ('sms', 'email', 'voice', 'chat')),
  constraint messages_status_known check (status in ('pending', 'sent', 'delivered', 'failed')),
  constraint messages_phone_channel_addresses check (channel not in ('sms', 'voice') or caller_data_cleared_at is not null
    or (from_number is not null and to_number is not null and from_email is null and to_email is null)),
  constraint messages_email_channel_addresses check (channel <> 'email' or caller_data_cleared_at is not null
    or (from_email is not null and to_email is not null and from_number is null and to_number is null)),
  constraint messages_chat_channel_addresses check (channel <> 'chat'
    or (from_number is null and to_number is null and from_email is null and to_email is null)),
  constraint messages_subject_only_email check (subject is null or channel = 'email'),
  constraint messages_subject_length check (subject is null or char_length(subject) <= 500),
  constraint messages_body_length check (char_length(body) between 1 and 20000),
  constraint messages_provider_pair check ((provider is null) = (provider_message_id is null)),
  constraint messages_provider_lengths check (coalesce(char_length(provider), 0) <= 100 and coalesce(char_length(provider_message_id), 0) <= 255),
  constraint messages_error_only_failed check (error_message is null or status = 'failed'),
  constraint messages_error_length check (error_message is null or char_length(error_message) <= 1000),
  constraint messages_sent_at_matches_status check ((status = 'pending' and sent_at is null) or (status = 'sent' and sent_at is not null)
    or status in ('delivered', 'failed')),
  constraint messages_delivered_when_delivered check ((delivered_at is not null) = (status = 'delivered')),
  constraint messages_delivered_after_sent check (delivered_at is null or sent_at is null or delivered_at >= sent_at)
);
comment on table public.messages is 'Messages to and from callers (seed 003): channel sms/email/voice/chat with matching addresses; status pending -> sent -> delivered | failed (also pending -> failed), enforced; inbound messages are recorded as delivered.';
comment on column public.messages.provider is 'Who carried the message (twilio, sendgrid, ...); provider_message_id is unique per provider.';
comment on column public.messages.caller_data_cleared_at is 'When retention or erase_caller_data() cleared the addresses and body.';

create index messages_organization_id_idx on public.messages (organization_id, created_at desc);
create index messages_conversation_id_idx on public.messages (conversation_id);
create index messages_appointment_id_idx on public.messages (appointment_id);

-- The organization comes from the conversation (or is the caller's to give); the status moves forward only.
create function private.prepare_message() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.conversation_id is not null then
    select c.organization_id into new.organization_id from public.conversations c where c.id = new.conversation_id;
  end if;
  if tg_op = 'INSERT' then
    if new.direction = 'inbound' then
      new.status := 'delivered';
      new.delivered_at := coalesce(new.delivered_at, pg_catalog.now());
    elsif new.status <> 'pending' then
      raise exception 'an outbound message starts as pending (got %)', new.status
        using errcode = '23514', constraint = 'messages_status_lifecycle';
    end if;
  elsif new.status is distinct from old.status then
    if not (old.status, new.status) in (('pending', 'sent'), ('pending', 'failed'), ('sent', 'delivered'), ('sent', 'failed')) then
      raise exception 'a message cannot go from % to %', old.status, new.status
        using errcode = '23514', constraint = 'messages_status_lifecycle',
              hint = 'The lifecycle is pending -> sent -> delivered | failed.';
    end if;
    if new.status = 'sent' then new.sent_at := coalesce(new.sent_at, pg_catalog.now()); end if;
    if new.status = 'delivered' then new.delivered_at := coalesce(new.delivered_at, pg_catalog.now()); end if;
  end if;
  return new;
end;
$$;

create trigger messages_prepare before insert or update on public.messages
  for each row execute function private.prepare_message();
create trigger messages_set_updated_at before update on public.messages
  for each row execute function private.set_updated_at();
create trigger messages_audit after insert or update or delete on public.messages
  for each row execute function private.audit_row_change();

create function private.emit_message_event() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' and new.direction = 'outbound' then
    return null;
  end if;
  perform private.emit_event(new.organization_id,
    case when tg_op = 'INSERT' then 'message.received' else 'message.' || new.status end,
    jsonb_build_object('message_id', new.id, 'conversation_id', new.conversation_id, 'appointment_id', new.appointment_id,
                       'channel', new.channel, 'direction', new.direction, 'status', new.status));
  return null;
end;
$$;

create trigger messages_emit_received after insert on public.messages
  for each row execute function private.emit_message_event();
create trigger messages_emit_status after update of status on public.messages
  for each row when (old.status is distinct from new.status)
  execute function private.emit_message_event();

alter table public.conversations enable row level security;
alter table public.messages enable row level security;

-- conversations_select: receptionist readers see the organization's conversations.
create policy conversations_select on public.conversations for select to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.read')));
-- conversations_insert: receptionist.operate holders (agents, staff) record conversations.
create policy conversations_insert on public.conversations for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('receptionist.operate')));
-- conversations_update: receptionist.operate holders append turns and end them.
create policy conversations_update on public.conversations for update to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.operate')))
  with check (organization_id in (select private.organizations_with_permission('receptionist.operate')));
-- conversations_delete: receptionist.manage holders delete them.
create policy conversations_delete on public.conversations for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.manage')));

-- messages_select: receptionist readers.
create policy messages_select on public.messages for select to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.read')));
-- messages_insert: receptionist.operate holders.
create policy messages_insert on public.messages for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('receptionist.operate')));
-- messages_update: receptionist.operate holders move the status along.
create policy messages_update on public.messages for update to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.operate')))
  with check (organization_id in (select private.organizations_with_permission('receptionist.operate')));
-- messages_delete: receptionist.manage holders.
create policy messages_delete on public.messages for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('receptionist.manage')));

grant select, delete on public.conversations, public.messages to authenticated, service_role;
grant insert (agent_id, direction, status, caller_phone, caller_name, caller_email, sentiment_score, topics, summary,
              intent, outcome, recording_url, transcript, metadata, started_at, ended_at),
      update (status, caller_phone, caller_name, caller_email, sentiment_score, topics, summary, intent, outcome,
              recording_url, transcript, metadata, ended_at)
  on public.conversations to authenticated, service_role;
grant insert (organization_id, conversation_id, appointment_id, direction, channel, from_number, to_number, from_email,
              to_email, subject, body, status, provider, provider_message_id),
      update (status, provider, provider_message_id, error_message, sent_at, delivered_at)
  on public.messages to authenticated, service_role;

-- The seed's performance_metrics, derived from conversations (never written).
create view public.ai_agent_performance with (security_invoker = true) as
select a.id as agent_id, a.organization_id,
       count(c.id)::integer as conversations,
       count(c.id) filter (where c.status = 'completed')::integer as completed,
       count(c.id) filter (where c.status = 'missed')::integer as missed,
       round(avg(c.duration_seconds))::integer as average_duration_seconds,
       round(avg(c.sentiment_score), 2) as average_sentiment,
       max(c.started_at) as last_conversation_at
from public.ai_agents a
left join public.conversations c on c.agent_id = a.id
group by a.id, a.organization_id;
comment on view public.ai_agent_performance is 'Per-agent figures derived from conversations (the seed''s performance_metrics); what the caller may read of ai_agents and conversations.';
grant select on public.ai_agent_performance to authenticated, service_role;


-- =====================================================================================================================
-- source: supabase/schemas/63-receptionist-appointments.sql
-- =====================================================================================================================
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


-- =====================================================================================================================
-- source: supabase/schemas/64-receptionist-caller-data.sql
-- =====================================================================================================================
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


-- =====================================================================================================================
-- source: supabase/schemas/70-analytics-auditor.sql
-- =====================================================================================================================
-- Analytics, auditor (seed 000): usage_status_thresholds, usage_analytics, efficiency_metrics, quick_wins.
-- refresh_my_usage_analytics() derives a user's usage from their own telemetry, as that user; it expires with it.

-- The auditor's figures are the user's telemetry in another shape: computed by the user's own call over the
-- telemetry RLS lets them read (no administrator, no service role), owner-only, guarded by MFA like telemetry,
-- removed by erase_my_telemetry() and by retention together with the telemetry they came from, and exported.
--
-- How the figures are computed (all in SQL, from `app.focus` telemetry events, in the user's profile time zone):
--   active day       a day of the period with at least one app.focus event
--   usage_percentage per app: round(100 * days that app had focus / active days)
--   status           the usage_status_thresholds row whose [min_percentage, max_percentage] holds the percentage
--   active_tools     apps with at least one app.focus event in the period
--   efficiency_score round(sum(usage_percentage * focus_ms) / sum(focus_ms)) over the active tools: how regularly the
--                    tools that take the user's time are used, weighted by that time (0 without focus time)
--   time_saved_hours each quick win completed by the period's end saves its estimated_time_saved per week for the
--                    days of the period after its completion: sum(estimate * days / 7), capped at 999.99

create table public.usage_status_thresholds (
  status text not null,
  min_percentage integer not null,
  max_percentage integer not null,
  description text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint usage_status_thresholds_pkey primary key (status),
  constraint usage_status_thresholds_status_known check (status in ('optimal', 'needs_attention', 'underutilized', 'moderate')),
  constraint usage_status_thresholds_bounds check (min_percentage between 0 and 100 and max_percentage between 0 and 100),
  constraint usage_status_thresholds_ordered check (min_percentage <= max_percentage),
  constraint usage_status_thresholds_no_overlap exclude using gist (
    int4range(min_percentage, max_percentage, '[]') with &&) deferrable initially immediate
);
comment on table public.usage_status_thresholds is 'Reference data: which usage percentage (0-100, both bounds inclusive) earns which usage_analytics status. The four ranges cover 0-100 without gaps or overlaps (both checked at the end of each statement, so neighbouring bounds move together); operators (service_role) may move the bounds.';

create trigger usage_status_thresholds_set_updated_at before update on public.usage_status_thresholds
  for each row execute function private.set_updated_at();

create function private.check_usage_status_thresholds_cover() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- Ranges never overlap (exclusion constraint), so they cover 0-100 exactly when their sizes add up to 101.
  if (select coalesce(sum(t.max_percentage - t.min_percentage + 1), 0) from public.usage_status_thresholds t) <> 101 then
    raise exception 'usage status thresholds must cover every percentage from 0 to 100 exactly once'
      using errcode = '23514', hint = 'Move the neighbouring bounds in the same statement.';
  end if;
  return null;
end;
$$;
comment on function private.check_usage_status_thresholds_cover() is 'AFTER statement trigger on usage_status_thresholds: the ranges cover 0-100 (23514 otherwise).';

create trigger usage_status_thresholds_cover after insert or update or delete on public.usage_status_thresholds
  for each statement execute function private.check_usage_status_thresholds_cover();

insert into public.usage_status_thresholds (status, min_percentage, max_percentage, description) values
  ('underutilized', 0, 24, 'Used on fewer than a quarter of the active days'),
  ('needs_attention', 25, 49, 'Used on a quarter to half of the active days'),
  ('moderate', 50, 74, 'Used on half to three quarters of the active days'),
  ('optimal', 75, 100, 'Used on at least three quarters of the active days');

alter table public.usage_status_thresholds enable row level security;

-- usage_status_thresholds_select: every signed-in user may read the thresholds (they explain the statuses).
create policy usage_status_thresholds_select on public.usage_status_thresholds for select to authenticated
  using (true);

grant select on public.usage_status_thresholds to authenticated;
grant select, update (min_percentage, max_percentage, description) on public.usage_status_thresholds to service_role;

create table public.usage_analytics (
  id uuid not null default gen_random_uuid(),
  user_id uuid not null,
  platform text not null,
  usage_percentage integer not null,
  status text not null,
  active_days integer not null,
  focus_ms bigint not null,
  period_start date not null,
  period_end date not null,
  computed_at timestamptz not null default now(),
  created_at timestamptz not null default now(),
  constraint usage_analytics_pkey primary key (id),
  constraint usage_analytics_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint usage_analytics_platform_format check (char_length(platform) <= 128 and platform ~ '^[A-Za-z0-9][A-Za-z0-9._:-]*$'),
  constraint usage_analytics_usage_percentage_range check (usage_percentage between 0 and 100),
  constraint usage_analytics_status_known check (status in ('optimal', 'needs_attention', 'underutilized', 'moderate')),
  constraint usage_analytics_active_days_range check (active_days between 1 and 366),
  constraint usage_analytics_focus_ms_non_negative check (focus_ms >= 0),
  constraint usage_analytics_period_ordered check (period_start <= period_end),
  constraint usage_analytics_no_overlapping_periods exclude using gist (
    user_id with =, platform with =, daterange(period_start, period_end, '[]') with &&)
);
comment on table public.usage_analytics is 'Per user, app and period: how regularly the app had focus (seed 000). Derived from the user''s own telemetry by refresh_my_usage_analytics(); never written by clients; expires and is erased with the telemetry.';
comment on column public.usage_analytics.platform is 'The telemetry app_id the figures are about (the seed''s platform).';
comment on column public.usage_analytics.usage_percentage is 'round(100 * days the app had focus / days with any app focus in the period).';
comment on column public.usage_analytics.status is 'From usage_status_thresholds at the time of computing.';
comment on column public.usage_analytics.active_days is 'Days of the period (user''s time zone) on which this app had focus.';
comment on column public.usage_analytics.focus_ms is 'Sum of the app''s app.focus durations in the period.';

create table public.efficiency_metrics (
  id uuid not null default gen_random_uuid(),
  user_id uuid not null,
  efficiency_score integer not null,
  time_saved_hours numeric(5, 2) not null default 0,
  active_tools_count integer not null default 0,
  active_days integer not null default 0,
  period_start date not null,
  period_end date not null,
  computed_at timestamptz not null default now(),
  created_at timestamptz not null default now(),
  constraint efficiency_metrics_pkey primary key (id),
  constraint efficiency_metrics_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint efficiency_metrics_score_range check (efficiency_score between 0 and 100),
  constraint efficiency_metrics_time_saved_non_negative check (time_saved_hours >= 0),
  constraint efficiency_metrics_active_tools_non_negative check (active_tools_count >= 0),
  constraint efficiency_metrics_active_days_range check (active_days between 0 and 366),
  constraint efficiency_metrics_period_ordered check (period_start <= period_end),
  constraint efficiency_metrics_no_overlapping_periods exclude using gist (
    user_id with =, daterange(period_start, period_end, '[]') with &&)
);
comment on table public.efficiency_metrics is 'Per user and period: efficiency score, time saved and active tools (seed 000); one row per period, periods never overlap. Derived by refresh_my_usage_analytics() (see the file''s opening comment for the formulas); expires and is erased with the telemetry.';
comment on column public.efficiency_metrics.efficiency_score is 'Focus-time-weighted mean of the period''s usage percentages (0-100).';
comment on column public.efficiency_metrics.time_saved_hours is 'Hours saved by completed quick wins in the period (their weekly estimate for each day after completion).';
comment on column public.efficiency_metrics.active_days is 'Days of the period with any app focus (the denominator of the usage percentages).';

create table public.quick_wins (
  id uuid not null default gen_random_uuid(),
  user_id uuid not null default auth.uid(),
  title text not null,
  description text,
  category text not null,
  impact text not null default 'medium',
  effort text not null default 'medium',
  estimated_time_saved interval,
  completed_at timestamptz,
  is_completed boolean generated always as (completed_at is not null) stored,
  deleted_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint quick_wins_pkey primary key (id),
  constraint quick_wins_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint quick_wins_title_length check (char_length(btrim(title)) between 1 and 255),
  constraint quick_wins_description_length check (description is null or char_length(description) <= 5000),
  constraint quick_wins_category_format check (category ~ '^[a-z0-9][a-z0-9_-]{0,49}$'),
  constraint quick_wins_impact_known check (impact in ('low', 'medium', 'high')),
  constraint quick_wins_effort_known check (effort in ('low', 'medium', 'high')),
  constraint quick_wins_estimated_time_saved_range check (
    estimated_time_saved is null or (estimated_time_saved > interval '0' and estimated_time_saved <= interval '168 hours'))
);
comment on table public.quick_wins is 'Improvements suggested to one user (seed 000), owner-only: organization administrators do not see them. Created by the user or by the server (service_role); completed by setting completed_at; soft-deleted by deleted_at.';
comment on column public.quick_wins.estimated_time_saved is 'Time the win saves per week once completed (at most a week of time: 168 hours); the seed''s free text became an interval.';
comment on column public.quick_wins.is_completed is 'Derived: completed_at is set.';
comment on column public.quick_wins.category is 'Lower-case key such as automation, meetings, email (1-50 of a-z, 0-9, _ and -).';

create index quick_wins_user_idx on public.quick_wins (user_id, created_at desc) where deleted_at is null;
create index quick_wins_user_id_idx on public.quick_wins (user_id);

create trigger quick_wins_set_updated_at before update on public.quick_wins
  for each row execute function private.set_updated_at();

alter table public.usage_analytics enable row level security;
alter table public.efficiency_metrics enable row level security;
alter table public.quick_wins enable row level security;

-- usage_analytics_select: a user reads only their own usage (no administrator policy: it is telemetry).
create policy usage_analytics_select on public.usage_analytics for select to authenticated
  using (user_id = (select auth.uid()));
-- usage_analytics_select_mfa: derived from telemetry, so with mfa_required only an aal2 session reads it (restrictive).
create policy usage_analytics_select_mfa on public.usage_analytics as restrictive for select to authenticated
  using ((select private.mfa_satisfied()));
-- efficiency_metrics_select: a user reads only their own metrics.
create policy efficiency_metrics_select on public.efficiency_metrics for select to authenticated
  using (user_id = (select auth.uid()));
-- efficiency_metrics_select_mfa: derived from telemetry, guarded like it (restrictive).
create policy efficiency_metrics_select_mfa on public.efficiency_metrics as restrictive for select to authenticated
  using ((select private.mfa_satisfied()));
-- quick_wins_select: a user reads their own quick wins, soft-deleted ones included (to restore them).
create policy quick_wins_select on public.quick_wins for select to authenticated
  using (user_id = (select auth.uid()));
-- quick_wins_insert: a user adds quick wins for themselves only.
create policy quick_wins_insert on public.quick_wins for insert to authenticated
  with check (user_id = (select auth.uid()));
-- quick_wins_update: a user changes, completes or soft-deletes their own quick wins, and keeps them theirs.
create policy quick_wins_update on public.quick_wins for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));

-- Derived rows are written only by private.store_usage_analytics(); quick wins are never hard-deleted by clients.
grant select on public.usage_analytics, public.efficiency_metrics to authenticated;
grant select on public.quick_wins to authenticated;
grant insert (title, description, category, impact, effort, estimated_time_saved, completed_at)
  on public.quick_wins to authenticated;
grant update (title, description, category, impact, effort, estimated_time_saved, completed_at, deleted_at)
  on public.quick_wins to authenticated;
-- The server suggests quick wins to a user (service_role bypasses RLS); it has no privilege on the derived usage.
grant select, insert (user_id, title, description, category, impact, effort, estimated_time_saved),
  update (title, description, category, impact, effort, estimated_time_saved, deleted_at)
  on public.quick_wins to service_role;

-- The writing half of refresh_my_usage_analytics(): security definer because clients hold no write privilege on the
-- derived tables. It writes for the caller only (auth.uid(), never a parameter); the per-app figures it is given
-- come from the caller's own telemetry, read by the caller. Everything else (status, score, active tools, time saved)
-- is computed here. `private` is not exposed through the API.
create function private.store_usage_analytics(_period_start date, _period_end date, _active_days integer, _apps jsonb)
returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := (select auth.uid());
  zone text;
  replaced integer;
  score integer;
  tools integer;
  saved numeric;
  usage jsonb;
begin
  if uid is null then
    raise exception 'not authenticated' using errcode = '42501', hint = 'Call this with a user''s JWT.';
  end if;
  if jsonb_typeof(_apps) is distinct from 'array' then
    raise exception 'the per-app figures must be a JSON array' using errcode = '22023';
  end if;
  -- The wrapper derives these from the caller's telemetry; checked here too, so that no figure is stored that the
  -- telemetry could not have given (and a bad one is named, not reported as some table constraint).
  if _period_start is null or _period_end is null or _period_start > _period_end
     or _active_days is null or _active_days not between 0 and _period_end - _period_start + 1 then
    raise exception 'a period needs a start no later than its end and 0 to its length in active days'
      using errcode = '22023';
  end if;
  if exists (select 1 from jsonb_array_elements(_apps) x where jsonb_typeof(x) <> 'object')
     or exists (select 1 from jsonb_to_recordset(_apps) as a(platform text, days_used integer, focus_ms bigint)
                where a.platform is null or a.days_used is null or a.days_used not between 0 and _active_days
                   or a.focus_ms is null or a.focus_ms < 0)
     or (select count(*) <> count(distinct a.platform) from jsonb_to_recordset(_apps) as a(platform text)) then
    raise exception 'each app needs a distinct platform, 0 to active_days days used and a focus_ms of 0 or more'
      using errcode = '22023';
  end if;
  -- One refresh per user at a time: two refreshes of one period would otherwise both delete and then collide.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('auditor:' || uid::text, 0));

  if exists (select 1 from public.efficiency_metrics e
             where e.user_id = uid and daterange(e.period_start, e.period_end, '[]') && daterange(_period_start, _period_end, '[]')
               and (e.period_start, e.period_end) <> (_period_start, _period_end))
     or exists (select 1 from public.usage_analytics u
                where u.user_id = uid and daterange(u.period_start, u.period_end, '[]') && daterange(_period_start, _period_end, '[]')
                  and (u.period_start, u.period_end) <> (_period_start, _period_end)) then
    raise exception 'period % to % overlaps another period already computed', _period_start, _period_end
      using errcode = '23P01', hint = 'Refresh exactly that period again, or choose a period that does not overlap it.';
  end if;

  delete from public.usage_analytics u
  where u.user_id = uid and u.period_start = _period_start and u.period_end = _period_end;
  -- Every computed period has its efficiency_metrics row (a period without focus events has no usage rows).
  delete from public.efficiency_metrics e
  where e.user_id = uid and e.period_start = _period_start and e.period_end = _period_end;
  get diagnostics replaced = row_count;

  with apps as (
    select a.platform, a.days_used, a.focus_ms,
           round(100.0 * a.days_used / greatest(_active_days, 1))::integer as pct
    from jsonb_to_recordset(_apps) as a(platform text, days_used integer, focus_ms bigint)
  ),
  stored as (
    insert into public.usage_analytics (user_id, platform, usage_percentage, status, active_days, focus_ms,
                                        period_start, period_end)
    select uid, a.platform, a.pct,
           (select t.status from public.usage_status_thresholds t where a.pct between t.min_percentage and t.max_percentage),
           a.days_used, a.focus_ms, _period_start, _period_end
    from apps a
    returning platform, usage_percentage, status, active_days, focus_ms
  )
  select coalesce(round(sum(s.usage_percentage::numeric * s.focus_ms) / nullif(sum(s.focus_ms), 0))::integer, 0),
         count(*)::integer,
         coalesce(jsonb_agg(jsonb_build_object('platform', s.platform, 'usage_percentage', s.usage_percentage,
                                               'status', s.status, 'active_days', s.active_days, 'focus_ms', s.focus_ms)
                            order by s.platform), '[]')
  into score, tools, usage
  from stored s;

  zone := coalesce((select p.timezone from public.profiles p where p.id = uid), 'UTC');
  select coalesce(sum(extract(epoch from w.estimated_time_saved) / 3600.0
                      * ((_period_end - greatest(_period_start, (w.completed_at at time zone zone)::date)) + 1) / 7.0), 0)
  into saved
  from public.quick_wins w
  where w.user_id = uid and w.deleted_at is null and w.estimated_time_saved is not null
    and w.completed_at is not null and (w.completed_at at time zone zone)::date <= _period_end;
  saved := least(round(saved, 2), 999.99);

  insert into public.efficiency_metrics (user_id, efficiency_score, time_saved_hours, active_tools_count, active_days,
                                         period_start, period_end)
  values (uid, score, saved, tools, _active_days, _period_start, _period_end);

  return jsonb_build_object('period_start', _period_start, 'period_end', _period_end, 'active_days', _active_days,
                            'efficiency_score', score, 'time_saved_hours', saved, 'active_tools_count', tools,
                            'replaced', replaced > 0, 'usage', usage);
end;
$$;
comment on function private.store_usage_analytics(date, date, integer, jsonb) is 'Replaces the caller''s usage_analytics and efficiency_metrics of exactly this period (23P01 when it overlaps another computed period): statuses from usage_status_thresholds, score, active tools and time saved from quick wins. Called by refresh_my_usage_analytics().';

grant execute on function private.store_usage_analytics(date, date, integer, jsonb) to authenticated;

create function public.refresh_my_usage_analytics(period_start date, period_end date)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
  uid uuid := (select auth.uid());
  zone text;
  window_start timestamptz;
  window_end timestamptz;
  days integer;
  apps jsonb;
begin
  if uid is null then
    raise exception 'not authenticated' using errcode = '42501', hint = 'Call this with a user''s JWT.';
  end if;
  -- Telemetry RLS would silently hide the events from an aal1 session of a user who requires MFA, and the refresh
  -- would then overwrite the period with zeros: refuse instead.
  if not private.mfa_satisfied() then
    raise exception 'your privacy settings require a multi-factor (aal2) session for this' using errcode = '42501',
      hint = 'Verify a second factor and retry with the new session token.';
  end if;
  if refresh_my_usage_analytics.period_start is null or refresh_my_usage_analytics.period_end is null then
    raise exception 'period_start and period_end are required' using errcode = '22004';
  end if;
  if refresh_my_usage_analytics.period_start > refresh_my_usage_analytics.period_end then
    raise exception 'period_start % is after period_end %', refresh_my_usage_analytics.period_start,
      refresh_my_usage_analytics.period_end using errcode = '22023';
  end if;
  if refresh_my_usage_analytics.period_end - refresh_my_usage_analytics.period_start >= 366 then
    raise exception 'a period spans at most 366 days' using errcode = '22023',
      hint = 'Refresh a month or a quarter at a time.';
  end if;

  zone := coalesce((select p.timezone from public.profiles p where p.id = uid), 'UTC');
  window_start := refresh_my_usage_analytics.period_start::timestamp at time zone zone;
  window_end := (refresh_my_usage_analytics.period_end + 1)::timestamp at time zone zone;

  -- The caller's own focus events, read as the caller: telemetry RLS applies in full.
  with focus as (
    select t.app_id, (t.occurred_at at time zone zone)::date as day, coalesce(t.duration_ms, 0)::bigint as ms
    from public.telemetry_events t
    where t.user_id = uid and t.event_type = 'app.focus'
      and t.occurred_at >= window_start and t.occurred_at < window_end
  ),
  per_app as (
    select f.app_id, count(distinct f.day)::integer as days_used, sum(f.ms)::bigint as focus_ms
    from focus f group by f.app_id
  )
  select (select count(distinct f.day)::integer from focus f),
         coalesce((select jsonb_agg(jsonb_build_object('platform', a.app_id, 'days_used', a.days_used, 'focus_ms', a.focus_ms)
                                    order by a.app_id) from per_app a), '[]')
  into days, apps;

  return private.store_usage_analytics(refresh_my_usage_analytics.period_start, refresh_my_usage_analytics.period_end,
                                       days, apps);
end;
$$;
comment on function public.refresh_my_usage_analytics(date, date) is 'Computes the caller''s usage_analytics and efficiency_metrics for a period (dates in their profile time zone, at most 366 days) from their own app.focus telemetry, read as the caller, and replaces that period''s rows in one transaction (repeatable). 42501 without a user or without aal2 when MFA is required; 22023 for a bad period; 23P01 when it overlaps another computed period.';

grant execute on function public.refresh_my_usage_analytics(date, date) to authenticated;

-- Derived usage expires with the telemetry it came from: a row goes as soon as the first day it covers is past the
-- cutoff (it never outlives any of the events it summarizes). A null cutoff means each user's own data_retention_days.
create function private.purge_expired_usage_analytics(cutoff timestamptz, purge_reason text)
returns bigint
language plpgsql
set search_path = ''
set timezone = 'UTC'
as $$
declare
  affected record;
  removed bigint := 0;
begin
  for affected in
    with gone_usage as (
      delete from public.usage_analytics u
      where u.period_start <= (coalesce(cutoff, (select pg_catalog.now() - make_interval(days => p.data_retention_days)
                                                 from public.privacy_prefs p where p.user_id = u.user_id)))::date
      returning u.user_id
    ),
    gone_metrics as (
      delete from public.efficiency_metrics e
      where e.period_start <= (coalesce(cutoff, (select pg_catalog.now() - make_interval(days => p.data_retention_days)
                                                 from public.privacy_prefs p where p.user_id = e.user_id)))::date
      returning e.user_id
    ),
    per_user as (
      select g.user_id, 1 as usage_rows, 0 as metric_rows from gone_usage g
      union all
      select g.user_id, 0, 1 from gone_metrics g
    )
    select u.user_id, sum(u.usage_rows)::bigint as usage_rows, sum(u.metric_rows)::bigint as metric_rows
    from per_user u group by u.user_id
  loop
    perform private.append_transparency_entry(affected.user_id, 'retention_purge', 'usage_analytics', null, null, null,
      jsonb_build_object('usage_analytics', affected.usage_rows, 'efficiency_metrics', affected.metric_rows,
                         'reason', purge_reason));
    removed := removed + affected.usage_rows + affected.metric_rows;
  end loop;
  return removed;
end;
$$;
comment on function private.purge_expired_usage_analytics(timestamptz, text) is 'Deletes usage_analytics/efficiency_metrics whose first day is past the cutoff (null: each user''s own retention); logs counts per user in the transparency log. Called by both retention functions.';

-- A user's auditor data for export_my_data().
create function private.auditor_personal_data(uid uuid) returns jsonb
language sql stable
set search_path = ''
as $$
  select jsonb_build_object(
    'usage_analytics', (select coalesce(jsonb_agg(to_jsonb(u) order by u.period_start, u.platform), '[]')
                        from public.usage_analytics u where u.user_id = uid),
    'efficiency_metrics', (select coalesce(jsonb_agg(to_jsonb(e) order by e.period_start), '[]')
                           from public.efficiency_metrics e where e.user_id = uid),
    'quick_wins', (select coalesce(jsonb_agg(to_jsonb(w) order by w.created_at, w.id), '[]')
                   from public.quick_wins w where w.user_id = uid))
$$;
comment on function private.auditor_personal_data(uuid) is 'The user''s usage_analytics, efficiency_metrics and quick_wins (soft-deleted ones too) for export_my_data().';

-- Erasure half for erase_my_telemetry(): the derived usage goes with the telemetry (quick wins are not telemetry).
create function private.erase_auditor_usage(uid uuid) returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  usage_rows bigint;
  metric_rows bigint;
begin
  delete from public.usage_analytics u where u.user_id = uid;
  get diagnostics usage_rows = row_count;
  delete from public.efficiency_metrics e where e.user_id = uid;
  get diagnostics metric_rows = row_count;
  return jsonb_build_object('usage_analytics', usage_rows, 'efficiency_metrics', metric_rows);
end;
$$;
comment on function private.erase_auditor_usage(uuid) is 'Deletes the user''s usage_analytics and efficiency_metrics; returns the counts (erase_my_telemetry()).';


-- =====================================================================================================================
-- source: supabase/schemas/71-analytics-events.sql
-- =====================================================================================================================
-- Growth analytics: analytics_events (monthly partitions), the private exact-once key table, upsert_events().
-- Events are redacted and their IP truncated on the way in; the receptionist's calls and appointments land here too.

-- analytics_events is append-only and partitioned by month on occurred_at (partitions in `private`, upkeep by
-- private.ensure_monthly_partitions). A unique index on a partitioned table must include the partition key, so
-- exact-once per (organization_id, event_id) is decided by private.analytics_event_keys, one row per stored event,
-- kept as long as the event (retention_policies 'analytics_events' drops both).

create table private.analytics_event_keys (
  organization_id uuid not null,
  event_id uuid not null,
  occurred_at timestamptz not null,
  constraint analytics_event_keys_pkey primary key (organization_id, event_id)
);
comment on table private.analytics_event_keys is 'One row per stored analytics event: its primary key decides exact-once per (organization_id, event_id) across partitions and concurrent batches. Removed with the event by retention, and with the organization by trigger (no foreign key: it cost a lookup per event, a third of a batch''s time).';
comment on column private.analytics_event_keys.occurred_at is 'The event''s occurred_at (which partition holds it; retention removes keys older than the cutoff).';

create table public.analytics_events (
  organization_id uuid not null,
  event_id uuid not null,
  occurred_at timestamptz not null,
  event_name text not null,
  category text,
  agent_id uuid,
  user_id uuid,
  anonymous_id text,
  session_id text,
  props jsonb not null default '{}'::jsonb,
  ip_address inet,
  user_agent text,
  received_at timestamptz not null default now(),
  constraint analytics_events_pkey primary key (organization_id, event_id, occurred_at),
  constraint analytics_events_agent_id_fkey foreign key (agent_id) references public.ai_agents (id) on delete set null,
  constraint analytics_events_event_name_format check (char_length(event_name) <= 100 and event_name ~ '^[a-z0-9][a-z0-9._:-]*$'),
  constraint analytics_events_category_length check (category is null or char_length(category) between 1 and 100),
  constraint analytics_events_anonymous_id_length check (anonymous_id is null or char_length(anonymous_id) between 1 and 255),
  constraint analytics_events_session_id_length check (session_id is null or char_length(session_id) between 1 and 255),
  constraint analytics_events_user_agent_length check (user_agent is null or char_length(user_agent) <= 1024),
  constraint analytics_events_props_object check (jsonb_typeof(props) = 'object'),
  constraint analytics_events_ip_truncated check (ip_address is null or ip_address
    = pg_catalog.network(pg_catalog.set_masklen(ip_address, case when pg_catalog.family(ip_address) = 4 then 24 else 48 end))::inet)
) partition by range (occurred_at);
comment on table public.analytics_events is 'Product and business events per organization (seed 002 "events", seed 003 "analytics_events"), partitioned by month on occurred_at. Written only by upsert_events() and the receptionist''s triggers (no client or service-role table writes); exact-once per (organization_id, event_id) through private.analytics_event_keys. No foreign keys to organizations or auth.users (a lookup per event): events go with their organization and are anonymised with their user, by triggers.';
comment on column public.analytics_events.event_id is 'Client-supplied idempotency key: an event sent twice, in one batch or in two, is stored once.';
comment on column public.analytics_events.event_name is 'Seed 003''s event_type (session.started, page.viewed, cart.added, order.completed, call.started, ...).';
comment on column public.analytics_events.category is 'Seed 003''s event_category.';
comment on column public.analytics_events.props is 'Seed 003''s event_data, after public.redact_telemetry_metadata() (never stored unredacted).';
comment on column public.analytics_events.anonymous_id is 'The visitor''s id when they are not (yet) a user.';
comment on column public.analytics_events.ip_address is 'Truncated on insert to its /24 (IPv4) or /48 (IPv6) network (the CHECK holds it there).';
comment on column public.analytics_events.occurred_at is 'When it happened (seed 003''s created_at); received_at is when it was stored.';

create table private.analytics_events_default partition of public.analytics_events default;

create index analytics_events_org_name_occurred_idx on public.analytics_events (organization_id, event_name, occurred_at);
create index analytics_events_agent_id_idx on public.analytics_events (agent_id) where agent_id is not null;
create index analytics_events_user_id_idx on public.analytics_events (user_id) where user_id is not null;

-- No foreign key to organizations (a lookup per event): the events and their keys go with their organization by trigger.
create function private.delete_organization_analytics() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  delete from public.analytics_events e where e.organization_id = old.id;
  delete from private.analytics_event_keys k where k.organization_id = old.id;
  return old;
end;
$$;
comment on function private.delete_organization_analytics() is 'AFTER DELETE on organizations: removes the organization''s analytics events and their keys.';

create trigger organizations_delete_analytics after delete on public.organizations
  for each row execute function private.delete_organization_analytics();

alter table public.analytics_events enable row level security;

-- analytics_events_select: members holding analytics.read read their organization's events.
create policy analytics_events_select on public.analytics_events for select to authenticated
  using (organization_id in (select private.organizations_with_permission('analytics.read')));

grant select on public.analytics_events to authenticated, service_role;

-- Two years, then whole months go (cleanup_retention_data(), with their keys); upsert_events() refuses older events.
insert into public.retention_policies (table_name, retention_days) values ('analytics_events', 730);

-- Retention (cleanup_retention_data() in 35): whole expired months go, then the keys older than the cutoff. A key
-- may go while its event still sits in a month that stays: upsert_events() refuses events older than the cutoff, so
-- no second copy can arrive for it.
create function private.purge_expired_analytics_events(cutoff timestamptz) returns bigint
language plpgsql security definer
set search_path = ''
as $$
declare
  removed bigint;
begin
  removed := private.drop_expired_partitions('public.analytics_events'::regclass, cutoff, 'retention_policy');
  delete from private.analytics_event_keys k where k.occurred_at < cutoff;
  return removed;
end;
$$;
comment on function private.purge_expired_analytics_events(timestamptz) is 'Drops the analytics_events months that ended before the cutoff and the exact-once keys older than it; returns the rows dropped (from statistics).';

-- Stores one event the database derives itself (the receptionist's triggers, below), exact-once: the key insert
-- decides, the event follows its key. One row, two single-row INSERTs: a booking pays for its own event and nothing
-- else (no JSON batch to unpack). The caller passes props that are safe to store: redacted where they hold free text
-- (a conversation's intent and outcome), as they are where they hold only ids, statuses and times (an
-- appointment's). upsert_events() does the same inline for a client's whole batch, with validation and redaction.
create function private.record_analytics_event(organization_id uuid, event_id uuid, occurred_at timestamptz,
                                               event_name text, category text, agent_id uuid, props jsonb)
returns boolean
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into private.analytics_event_keys (organization_id, event_id, occurred_at)
  values (record_analytics_event.organization_id, record_analytics_event.event_id, record_analytics_event.occurred_at)
  on conflict do nothing;
  if not found then
    return false;
  end if;
  insert into public.analytics_events (organization_id, event_id, occurred_at, event_name, category, agent_id, props)
  values (record_analytics_event.organization_id, record_analytics_event.event_id, record_analytics_event.occurred_at,
          record_analytics_event.event_name, record_analytics_event.category, record_analytics_event.agent_id,
          coalesce(record_analytics_event.props, '{}'::jsonb));
  return true;
end;
$$;
comment on function private.record_analytics_event(uuid, uuid, timestamptz, text, text, uuid, jsonb) is 'Stores one trusted event the database derives (props already safe to store) exact-once; returns whether it was new. Not granted to API roles.';

create function private.try_uuid(value text) returns uuid
language plpgsql immutable
set search_path = ''
as $$
begin
  return value::uuid;
exception when others then
  return null;
end;
$$;
comment on function private.try_uuid(text) is 'The text as uuid, or null when it is not one.';

create function private.try_cast_timestamptz(value text) returns timestamptz
language plpgsql stable
set search_path = ''
as $$
begin
  return value::timestamptz;
exception when others then
  return null;
end;
$$;
comment on function private.try_cast_timestamptz(text) is 'The text as timestamptz, or null when it is not one.';

-- The server-side pipeline's batch RPC. One statement classifies every row, claims the keys of the first valid copy
-- of each (organization_id, event_id), and stores exactly the rows whose key it claimed: a concurrent batch with the
-- same key waits on the key's unique index entry and then finds it taken, so it reports a duplicate. The batch is
-- joined by hash (enable_nestloop off: the JSON rows have no statistics, and a nested loop over them is quadratic);
-- JIT is off because the penalised plan costs would make every batch pay seconds of compilation.
create function public.upsert_events(_rows jsonb) returns jsonb
language plpgsql security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
set enable_nestloop = off
set jit = off
as $$
declare
  retention_days integer := coalesce((select p.retention_days from public.retention_policies p
                                      where p.table_name = 'analytics_events' and p.enabled), 3650);
  earliest timestamptz := pg_catalog.now() - make_interval(days => retention_days);
  latest timestamptz := pg_catalog.now() + interval '5 minutes';
  report jsonb;
  fast boolean := true;
begin
  if _rows is null or jsonb_typeof(_rows) <> 'array' then
    raise exception '_rows must be a JSON array of events' using errcode = '22023';
  end if;
  if jsonb_array_length(_rows) > 10000 then
    raise exception 'at most 10000 events per call (got %)', jsonb_array_length(_rows) using errcode = '54000',
      hint = 'Split the batch; nothing was stored.';
  end if;

  <<attempt>>
  loop
  begin
  with fields as (
    select e.n::integer as n, e.value as v,
           case when jsonb_typeof(e.value) = 'object' then e.value end as o
    from jsonb_array_elements(_rows) with ordinality e(value, n)
  ),
  -- Fast: every value cast directly (one batch, no per-row exception handling). Careful (after a data exception in the
  -- fast attempt): the same casts, each one caught. Both read the same values the same way; only the cost differs.
  raw as materialized (
    select f.n, f.o,
      case when fast then (f.o ->> 'organization_id')::uuid else private.try_uuid(f.o ->> 'organization_id') end as organization_id,
      case when fast then (f.o ->> 'event_id')::uuid else private.try_uuid(f.o ->> 'event_id') end as event_id,
      case when fast then (f.o ->> 'agent_id')::uuid else private.try_uuid(f.o ->> 'agent_id') end as agent_id,
      case when fast then (f.o ->> 'user_id')::uuid else private.try_uuid(f.o ->> 'user_id') end as user_id,
      -- Only timestamps with an explicit offset (Z or +hh[:mm]): a bare local time would depend on the session.
      case when f.o ->> 'occurred_at' ~ '[0-9](Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$'
           then case when fast then (f.o ->> 'occurred_at')::timestamptz
                     else private.try_cast_timestamptz(f.o ->> 'occurred_at') end end as occurred_at,
      case when fast then (f.o ->> 'ip_address')::inet else private.try_inet(f.o ->> 'ip_address') end as ip_address,
      f.o ->> 'event_name' as event_name,
      f.o ->> 'category' as category,
      f.o ->> 'anonymous_id' as anonymous_id,
      f.o ->> 'session_id' as session_id,
      f.o ->> 'user_agent' as user_agent,
      coalesce(f.o -> 'props', '{}'::jsonb) as props
    from fields f
  ),
  -- Every field but the source object (only the checks read it): the later stages copy narrower rows.
  checked as materialized (
    select r.n, r.organization_id, r.event_id, r.agent_id, r.user_id, r.occurred_at, r.ip_address, r.event_name,
      r.category, r.anonymous_id, r.session_id, r.user_agent, r.props,
      case
        when r.o is null then 'not_an_object'
        when r.organization_id is null then 'invalid_organization_id'
        when r.event_id is null then 'invalid_event_id'
        when r.occurred_at is null then 'invalid_occurred_at'
        when r.event_name is null or char_length(r.event_name) > 100 or r.event_name !~ '^[a-z0-9][a-z0-9._:-]*$' then 'invalid_event_name'
        when jsonb_typeof(r.props) <> 'object' or pg_catalog.pg_column_size(r.props) > 32768 then 'invalid_props'
        when r.o ? 'agent_id' and jsonb_typeof(r.o -> 'agent_id') <> 'null' and r.agent_id is null then 'invalid_agent_id'
        when r.o ? 'user_id' and jsonb_typeof(r.o -> 'user_id') <> 'null' and r.user_id is null then 'invalid_user_id'
        when r.o ? 'ip_address' and jsonb_typeof(r.o -> 'ip_address') <> 'null' and r.ip_address is null then 'invalid_ip_address'
        when (r.category is not null and char_length(r.category) not between 1 and 100)
          or (r.anonymous_id is not null and char_length(r.anonymous_id) not between 1 and 255)
          or (r.session_id is not null and char_length(r.session_id) not between 1 and 255)
          or (r.user_agent is not null and char_length(r.user_agent) > 1024) then 'field_too_long'
        when r.occurred_at < earliest then 'outside_retention'
        when r.occurred_at > latest then 'in_the_future'
      end as invalid_reason
    from raw r
  ),
  -- Lookups by array (index scans), then hash joins: the batch is joined as a set, never row by row.
  orgs as (
    select o.id from public.organizations o
    where o.id = any (array(select distinct c.organization_id from checked c where c.invalid_reason is null))
      and o.deleted_at is null
  ),
  agents as (
    select a.id, a.organization_id from public.ai_agents a
    where a.id = any (array(select distinct c.agent_id from checked c where c.invalid_reason is null and c.agent_id is not null))
  ),
  users as (
    select u.id from auth.users u
    where u.id = any (array(select distinct c.user_id from checked c where c.invalid_reason is null and c.user_id is not null))
  ),
  gated as materialized (
    select c.*,
      case
        when c.invalid_reason is not null then c.invalid_reason
        when o.id is null then 'unknown_organization'
        when c.agent_id is not null and a.id is null then 'unknown_agent'
        when c.user_id is not null and u.id is null then 'unknown_user'
      end as reason
    from checked c
    left join orgs o on o.id = c.organization_id
    left join agents a on a.id = c.agent_id and a.organization_id = c.organization_id
    left join users u on u.id = c.user_id
  ),
  firsts as (
    select g.organization_id, g.event_id, min(g.n) as first_n
    from gated g where g.reason is null group by g.organization_id, g.event_id
  ),
  candidates as materialized (
    select g.* from gated g
    join firsts f on f.organization_id = g.organization_id and f.event_id = g.event_id and f.first_n = g.n
  ),
  keys as (
    insert into private.analytics_event_keys (organization_id, event_id, occurred_at)
    select c.organization_id, c.event_id, c.occurred_at from candidates c
    -- In key order, so that two batches sharing keys wait for each other instead of deadlocking.
    order by c.organization_id, c.event_id
    on conflict do nothing
    returning organization_id, event_id
  ),
  written as (
    insert into public.analytics_events (organization_id, event_id, occurred_at, event_name, category, agent_id, user_id,
                                         anonymous_id, session_id, props, ip_address, user_agent)
    select c.organization_id, c.event_id, c.occurred_at, c.event_name, c.category, c.agent_id, c.user_id,
           c.anonymous_id, c.session_id, public.redact_telemetry_metadata(c.props),
           pg_catalog.network(pg_catalog.set_masklen(c.ip_address, case when pg_catalog.family(c.ip_address) = 4 then 24 else 48 end))::inet,
           c.user_agent
    from candidates c
    join keys k on k.organization_id = c.organization_id and k.event_id = c.event_id
    returning organization_id, event_id
  ),
  decided as (
    select g.n, g.event_id, g.reason,
      case
        when g.reason is not null then 'rejected'
        when w.event_id is not null then 'inserted'
        else 'duplicate'
      end as status
    from gated g
    left join candidates c on c.n = g.n
    left join written w on c.n is not null and w.organization_id = c.organization_id and w.event_id = c.event_id
  )
  select jsonb_build_object(
           'inserted', count(*) filter (where d.status = 'inserted'),
           'duplicate', count(*) filter (where d.status = 'duplicate'),
           'rejected', count(*) filter (where d.status = 'rejected'),
           'results', coalesce(jsonb_agg(
             case when d.reason is null then jsonb_build_object('index', d.n - 1, 'event_id', d.event_id, 'status', d.status)
                  when d.event_id is null then jsonb_build_object('index', d.n - 1, 'status', d.status, 'reason', d.reason)
                  else jsonb_build_object('index', d.n - 1, 'event_id', d.event_id, 'status', d.status, 'reason', d.reason)
             end order by d.n), '[]'::jsonb))
  into report
  from decided d;
  exit attempt;
  exception when data_exception then
    -- A malformed value in the batch: nothing of the fast attempt stays; the careful attempt rejects just that row.
    if not fast then
      raise;
    end if;
    fast := false;
  end;
  end loop;
  return report;
end;
$$;
comment on function public.upsert_events(jsonb) is 'Stores up to 10,000 analytics events ({organization_id, event_id, occurred_at, event_name, category, agent_id, user_id, anonymous_id, session_id, props, ip_address, user_agent}) exact-once per (organization_id, event_id), in one statement; returns {inserted, duplicate, rejected, results: [{index, event_id, status, reason}]}. Service role only.';

grant execute on function public.upsert_events(jsonb) to service_role;

-- plpgsql, not sql: a SQL function with a pinned search_path is never inlined, and PostgreSQL plans its body again on
-- every call; plpgsql evaluates the expression with a plan it keeps for the session. It runs once per derived event.
create function private.derived_uuid(seed text) returns uuid
language plpgsql immutable parallel safe
set search_path = ''
as $$
begin
  return pg_catalog.md5(seed)::uuid;
end;
$$;
comment on function private.derived_uuid(text) is 'A stable uuid for an event the database derives from a row and a change (the same change gives the same id).';

-- The receptionist's conversations and appointments as analytics events (60-64 announce them to webhooks through
-- private.emit_event; these triggers are separate so that the two domains evolve apart). Event ids are derived from
-- the row and the change: a call's start and end once each; an appointment's change once per transaction (its id
-- includes the transaction's time, so the same status set again later is a new event).
create function private.analytics_from_conversation() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform private.record_analytics_event(new.organization_id,
    private.derived_uuid(new.id::text || case when tg_op = 'INSERT' then ':call.started' else ':call.ended' end),
    case when tg_op = 'INSERT' then new.started_at else new.ended_at end,
    case when tg_op = 'INSERT' then 'call.started' else 'call.ended' end,
    'receptionist', new.agent_id,
    -- intent and outcome are free text (an agent's words): redacted like a client's props.
    public.redact_telemetry_metadata(jsonb_strip_nulls(jsonb_build_object(
      'conversation_id', new.id, 'direction', new.direction, 'status', new.status,
      'duration_seconds', new.duration_seconds, 'intent', new.intent, 'outcome', new.outcome))));
  return null;
end;
$$;
comment on function private.analytics_from_conversation() is 'AFTER INSERT / ended_at set on conversations: records call.started / call.ended in analytics_events (with agent_id).';

create trigger conversations_analytics_started after insert on public.conversations
  for each row execute function private.analytics_from_conversation();
create trigger conversations_analytics_ended after update of ended_at on public.conversations
  for each row when (old.ended_at is null and new.ended_at is not null)
  execute function private.analytics_from_conversation();

create function private.analytics_from_appointment() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  event text;
  agent uuid;
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
  -- The agent is looked up in a statement of its own, and only for a booking made in a conversation: inside the call
  -- below, the subquery would make PostgreSQL plan the whole call again on every row (a custom plan for each value).
  if new.conversation_id is not null then
    select c.agent_id into agent from public.conversations c where c.id = new.conversation_id;
  end if;
  perform private.record_analytics_event(new.organization_id,
    private.derived_uuid(new.id::text || ':' || event || ':' || pg_catalog.now()::text), pg_catalog.now(), event,
    'receptionist', agent,
    -- Ids, a status and a time: nothing to redact.
    jsonb_strip_nulls(jsonb_build_object('appointment_id', new.id, 'service_id', new.service_id,
                                         'staff_id', new.staff_id, 'conversation_id', new.conversation_id,
                                         'status', new.status, 'scheduled_at', new.scheduled_at)));
  return null;
end;
$$;
comment on function private.analytics_from_appointment() is 'AFTER INSERT / status or time change on appointments: records appointment.booked, appointment.<status> or appointment.rescheduled in analytics_events (agent_id from the conversation that booked it).';

create trigger appointments_analytics after insert or update of status, scheduled_at, staff_id on public.appointments
  for each row execute function private.analytics_from_appointment();

-- A deleted user's events stay with their organization, without the user: anonymised, like an erased visitor.
create function private.anonymise_deleted_user_analytics() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  update public.analytics_events e
  set user_id = null, anonymous_id = null, session_id = null, ip_address = null, user_agent = null
  where e.user_id = old.id;
  return old;
end;
$$;
comment on function private.anonymise_deleted_user_analytics() is 'AFTER DELETE on auth.users: strips the user (and their visitor and session ids, IP and user agent) from analytics events (their cohort and attribution rows go by foreign key).';

create trigger on_auth_user_deleted_analytics after delete on auth.users
  for each row execute function private.anonymise_deleted_user_analytics();


-- =====================================================================================================================
-- source: supabase/schemas/72-analytics-spend.sql
-- =====================================================================================================================
-- Growth analytics: spend (ad spend per platform, campaign, ad set and day) and upsert_spend().
-- Written by the server-side pipeline only; read by members with analytics.read.

create table public.spend (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  platform text not null,
  campaign_id text not null,
  adset_id text,
  date date not null,
  spend_cents bigint not null default 0,
  clicks bigint not null default 0,
  impressions bigint not null default 0,
  conversions bigint not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint spend_pkey primary key (id),
  constraint spend_natural_key unique nulls not distinct (organization_id, platform, campaign_id, adset_id, date),
  constraint spend_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint spend_platform_format check (char_length(platform) <= 50 and platform ~ '^[a-z0-9][a-z0-9_.-]*$'),
  constraint spend_campaign_id_length check (char_length(campaign_id) between 1 and 255),
  constraint spend_adset_id_length check (adset_id is null or char_length(adset_id) between 1 and 255),
  constraint spend_amounts_non_negative check (spend_cents >= 0 and clicks >= 0 and impressions >= 0 and conversions >= 0),
  constraint spend_clicks_within_impressions check (impressions = 0 or clicks <= impressions)
);
comment on table public.spend is 'Advertising spend per organization, platform, campaign, ad set and day (seed 002 "spend"; conv -> conversions). Written by upsert_spend() only; feeds metrics_daily (CAC).';
comment on column public.spend.date is 'The day the platform reports the spend for (the organization''s calendar day, as metrics_daily).';
comment on column public.spend.adset_id is 'Ad set (or ad group); null when the platform reports per campaign. Part of the natural key (nulls not distinct).';
comment on column public.spend.spend_cents is 'Spend in cents of the organization''s reporting currency (see metrics_daily.currency).';

create index spend_organization_date_idx on public.spend (organization_id, date);

create trigger spend_set_updated_at before update on public.spend
  for each row execute function private.set_updated_at();
create trigger spend_audit after insert or update or delete on public.spend
  for each row execute function private.audit_row_change();

alter table public.spend enable row level security;

-- spend_select: members holding analytics.read read their organization's spend.
create policy spend_select on public.spend for select to authenticated
  using (organization_id in (select private.organizations_with_permission('analytics.read')));

grant select on public.spend to authenticated, service_role;

-- Inserts or updates spend rows by their natural key in one statement; a key given twice in a batch keeps its last
-- row (the earlier ones are reported superseded). Report per row: inserted, updated, unchanged, superseded, rejected.
create function public.upsert_spend(_rows jsonb) returns jsonb
language plpgsql security definer
set search_path = ''
as $$
declare
  report jsonb;
begin
  if _rows is null or jsonb_typeof(_rows) <> 'array' then
    raise exception '_rows must be a JSON array of spend rows' using errcode = '22023';
  end if;
  if jsonb_array_length(_rows) > 10000 then
    raise exception 'at most 10000 spend rows per call (got %)', jsonb_array_length(_rows) using errcode = '54000',
      hint = 'Split the batch; nothing was stored.';
  end if;

  with raw as materialized (
    select e.n::integer as n, case when jsonb_typeof(e.value) = 'object' then e.value end as o
    from jsonb_array_elements(_rows) with ordinality e(value, n)
  ),
  parsed as materialized (
    select r.n, r.o,
      case when r.o ->> 'organization_id' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
           then (r.o ->> 'organization_id')::uuid end as organization_id,
      r.o ->> 'platform' as platform,
      r.o ->> 'campaign_id' as campaign_id,
      r.o ->> 'adset_id' as adset_id,
      case when r.o ->> 'date' ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' then private.try_date(r.o ->> 'date') end as date,
      case when coalesce(r.o ->> 'spend_cents', '0') ~ '^[0-9]{1,15}$' then coalesce(r.o ->> 'spend_cents', '0')::bigint end as spend_cents,
      case when coalesce(r.o ->> 'clicks', '0') ~ '^[0-9]{1,15}$' then coalesce(r.o ->> 'clicks', '0')::bigint end as clicks,
      case when coalesce(r.o ->> 'impressions', '0') ~ '^[0-9]{1,15}$' then coalesce(r.o ->> 'impressions', '0')::bigint end as impressions,
      case when coalesce(r.o ->> 'conversions', '0') ~ '^[0-9]{1,15}$' then coalesce(r.o ->> 'conversions', '0')::bigint end as conversions
    from raw r
  ),
  checked as materialized (
    select p.*,
      case
        when p.o is null then 'not_an_object'
        when p.organization_id is null then 'invalid_organization_id'
        when p.platform is null or char_length(p.platform) > 50 or p.platform !~ '^[a-z0-9][a-z0-9_.-]*$' then 'invalid_platform'
        when p.campaign_id is null or char_length(p.campaign_id) not between 1 and 255 then 'invalid_campaign_id'
        when p.adset_id is not null and char_length(p.adset_id) not between 1 and 255 then 'invalid_adset_id'
        when p.date is null then 'invalid_date'
        when p.spend_cents is null or p.clicks is null or p.impressions is null or p.conversions is null then 'invalid_number'
        when p.impressions > 0 and p.clicks > p.impressions then 'clicks_exceed_impressions'
        when not exists (select 1 from public.organizations o where o.id = p.organization_id and o.deleted_at is null) then 'unknown_organization'
      end as reason
    from parsed p
  ),
  lasts as (
    select c.organization_id, c.platform, c.campaign_id, c.adset_id, c.date, max(c.n) as last_n
    from checked c where c.reason is null
    group by c.organization_id, c.platform, c.campaign_id, c.adset_id, c.date
  ),
  chosen as (
    select c.* from checked c join lasts l on l.last_n = c.n
  ),
  written as (
    insert into public.spend as s (organization_id, platform, campaign_id, adset_id, date, spend_cents, clicks,
                                   impressions, conversions)
    select c.organization_id, c.platform, c.campaign_id, c.adset_id, c.date, c.spend_cents, c.clicks, c.impressions,
           c.conversions
    from chosen c
    -- In key order, so that two batches sharing keys wait for each other instead of deadlocking (as upsert_events).
    order by c.organization_id, c.platform, c.campaign_id, c.adset_id, c.date
    on conflict on constraint spend_natural_key do update set
      spend_cents = excluded.spend_cents, clicks = excluded.clicks, impressions = excluded.impressions,
      conversions = excluded.conversions
    where (s.spend_cents, s.clicks, s.impressions, s.conversions)
          is distinct from (excluded.spend_cents, excluded.clicks, excluded.impressions, excluded.conversions)
    returning s.id, s.organization_id, s.platform, s.campaign_id, s.adset_id, s.date, (s.xmax = 0) as was_inserted
  ),
  decided as (
    select c.n, c.reason, w.id,
      case
        when c.reason is not null then 'rejected'
        when not exists (select 1 from lasts l where l.last_n = c.n) then 'superseded'
        when w.id is null then 'unchanged'
        when w.was_inserted then 'inserted'
        else 'updated'
      end as status
    from checked c
    left join written w on c.reason is null and w.organization_id = c.organization_id and w.platform = c.platform
      and w.campaign_id = c.campaign_id and w.adset_id is not distinct from c.adset_id and w.date = c.date
      and exists (select 1 from lasts l where l.last_n = c.n)
  )
  select jsonb_build_object(
           'inserted', count(*) filter (where d.status = 'inserted'),
           'updated', count(*) filter (where d.status = 'updated'),
           'unchanged', count(*) filter (where d.status = 'unchanged'),
           'superseded', count(*) filter (where d.status = 'superseded'),
           'rejected', count(*) filter (where d.status = 'rejected'),
           'results', coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
             'index', d.n - 1, 'id', d.id, 'status', d.status, 'reason', d.reason)) order by d.n), '[]'::jsonb))
  into report
  from decided d;
  return report;
end;
$$;
comment on function public.upsert_spend(jsonb) is 'Inserts or updates up to 10,000 spend rows ({organization_id, platform, campaign_id, adset_id, date, spend_cents, clicks, impressions, conversions}) by (organization, platform, campaign, ad set, date) in one statement; returns {inserted, updated, unchanged, superseded, rejected, results: [{index, id, status, reason}]}. Service role only.';

create function private.try_date(value text) returns date
language plpgsql immutable
set search_path = ''
as $$
begin
  return value::date;
exception when others then
  return null;
end;
$$;
comment on function private.try_date(text) is 'The date, or null when the text is not a valid one.';

grant execute on function public.upsert_spend(jsonb) to service_role;


-- =====================================================================================================================
-- source: supabase/schemas/73-analytics-rollups.sql
-- =====================================================================================================================
-- Growth analytics: analytics_metric_events (which events feed which metric), metrics_daily, recompute_metrics_daily().
-- Daily rollups per organization in its own time zone, derived only from analytics_events and spend, safe to recompute.

create table public.analytics_metric_events (
  event_name text not null,
  metric text not null,
  amount_path text[],
  currency_path text[],
  cost_path text[],
  customer_event boolean not null default false,
  description text not null,
  constraint analytics_metric_events_pkey primary key (event_name),
  constraint analytics_metric_events_metric_known check (metric in ('sessions', 'traffic', 'add_to_carts', 'orders', 'refunds')),
  constraint analytics_metric_events_amounts_for_money check (
    (metric in ('orders', 'refunds')) = (amount_path is not null)
    and (currency_path is null or amount_path is not null)
    and (cost_path is null or metric = 'orders')),
  constraint analytics_metric_events_customer_is_order check (not customer_event or metric = 'orders')
);
comment on table public.analytics_metric_events is 'Reference data: which event names count toward which metrics_daily metric, and where their amounts (cents), currency and cost of goods (cents) sit in props. The only way events reach the rollups.';
comment on column public.analytics_metric_events.amount_path is 'Path in props of the amount in cents (orders: revenue; refunds: refunded amount).';
comment on column public.analytics_metric_events.currency_path is 'Path in props of the ISO 4217 currency; amounts in another currency than the organization''s reporting currency are not summed (events without one count as that currency).';
comment on column public.analytics_metric_events.cost_path is 'Path in props of the cost of goods in cents (gross margin); absent means none known.';
comment on column public.analytics_metric_events.customer_event is 'A subject''s first such event makes them a new customer that day (CAC).';

alter table public.analytics_metric_events enable row level security;

-- analytics_metric_events_select: reference data, readable by every signed-in user.
create policy analytics_metric_events_select on public.analytics_metric_events for select to authenticated
  using (true);

grant select on public.analytics_metric_events to authenticated, service_role;

insert into public.analytics_metric_events (event_name, metric, amount_path, currency_path, cost_path, customer_event, description) values
  ('session.started', 'sessions', null, null, null, false, 'A visit began'),
  ('page.viewed', 'traffic', null, null, null, false, 'A page view'),
  ('cart.added', 'add_to_carts', null, null, null, false, 'A product was added to the cart'),
  ('order.completed', 'orders', '{amount_cents}', '{currency}', '{cost_cents}', true, 'An order was paid'),
  ('order.refunded', 'refunds', '{amount_cents}', '{currency}', null, false, 'An order was (partly) refunded');

create table public.metrics_daily (
  organization_id uuid not null,
  day date not null,
  currency text not null,
  sessions bigint not null default 0,
  traffic bigint not null default 0,
  add_to_carts bigint not null default 0,
  orders bigint not null default 0,
  new_customers bigint not null default 0,
  revenue_cents bigint not null default 0,
  refunds_cents bigint not null default 0,
  cost_cents bigint not null default 0,
  spend_cents bigint not null default 0,
  aov_cents bigint,
  cac_cents bigint,
  conversion_rate numeric(12, 6),
  gross_margin_cents bigint not null default 0,
  computed_at timestamptz not null default now(),
  constraint metrics_daily_pkey primary key (organization_id, day),
  constraint metrics_daily_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint metrics_daily_currency_iso4217 check (currency ~ '^[a-z]{3}$'),
  constraint metrics_daily_counts_non_negative check (sessions >= 0 and traffic >= 0 and add_to_carts >= 0 and orders >= 0
    and new_customers >= 0 and new_customers <= orders and revenue_cents >= 0 and refunds_cents >= 0 and cost_cents >= 0
    and spend_cents >= 0),
  constraint metrics_daily_aov_derived check (aov_cents is not distinct from
    case when orders > 0 then round(revenue_cents::numeric / orders)::bigint end),
  constraint metrics_daily_cac_derived check (cac_cents is not distinct from
    case when new_customers > 0 then round(spend_cents::numeric / new_customers)::bigint end),
  constraint metrics_daily_conversion_derived check (conversion_rate is not distinct from
    case when sessions > 0 then round(orders::numeric / sessions, 6) end),
  constraint metrics_daily_margin_derived check (gross_margin_cents = revenue_cents - refunds_cents - cost_cents)
);
comment on table public.metrics_daily is 'Daily rollup per organization (seed 002 "metrics_daily"), days in the organization''s time zone. Derived only, by recompute_metrics_daily(), from analytics_events (through analytics_metric_events) and spend; the ratios are checked against their parts.';
comment on column public.metrics_daily.currency is 'The organization''s reporting currency (organizations.settings ->> ''currency'', default usd) the amounts are in.';
comment on column public.metrics_daily.traffic is 'Page views.';
comment on column public.metrics_daily.new_customers is 'Subjects (user or anonymous id) whose first order ever was that day.';
comment on column public.metrics_daily.aov_cents is 'Average order value: revenue / orders (null without orders).';
comment on column public.metrics_daily.cac_cents is 'Customer acquisition cost: spend / new customers (null without new customers).';
comment on column public.metrics_daily.conversion_rate is 'Orders per session (null without sessions).';
comment on column public.metrics_daily.gross_margin_cents is 'Revenue less refunds less the cost of goods the order events carry.';

alter table public.metrics_daily enable row level security;

-- metrics_daily_select: members holding analytics.read read their organization's rollups.
create policy metrics_daily_select on public.metrics_daily for select to authenticated
  using (organization_id in (select private.organizations_with_permission('analytics.read')));

grant select on public.metrics_daily to authenticated, service_role;

create function private.reporting_currency(settings jsonb) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select case when lower(settings ->> 'currency') ~ '^[a-z]{3}$' then lower(settings ->> 'currency') else 'usd' end
$$;
comment on function private.reporting_currency(jsonb) is 'An organization''s reporting currency from its settings (settings.currency, ISO 4217), usd by default.';

-- Replaces the rollup rows of [_start, _end] (the organizations' own calendar days) in one transaction: deletes them
-- and inserts what the events and spend of those days add up to (only days with data get a row). Recomputes run one
-- at a time. Cohorts and utm_tracks are not rebuilt here: upsert_events() keeps them current as events are stored
-- (74-analytics-attribution.sql), and private.rebuild_attribution() repairs them on demand, to the same rows.
create function public.recompute_metrics_daily(_start date, _end date, _organization_id uuid default null)
returns int
language plpgsql security definer
set search_path = ''
set jit = off
set work_mem = '128MB'
as $$
declare
  written integer;
  scope uuid[];
  counted text[];
  priced text[];
  customer_events text[];
begin
  if _start is null or _end is null or _start > _end then
    raise exception 'need _start <= _end (got % and %)', _start, _end using errcode = '22023';
  end if;
  if _end - _start > 3660 then
    raise exception 'at most 10 years per recompute (got % days)', _end - _start + 1 using errcode = '54000';
  end if;
  if _organization_id is not null
     and not exists (select 1 from public.organizations o where o.id = _organization_id) then
    raise exception 'no organization %', _organization_id using errcode = 'P0002';
  end if;
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('recompute_metrics_daily', 0));

  select coalesce(array_agg(o.id), '{}') into scope
  from public.organizations o
  where (_organization_id is null or o.id = _organization_id);

  delete from public.metrics_daily m where m.organization_id = any (scope) and m.day between _start and _end;

  -- The metric event names as arrays, so that each scan below filters by them on the events' own
  -- (organization_id, event_name, occurred_at) index instead of joining every event with the reference table.
  select coalesce(array_agg(m.event_name), '{}'),
         coalesce(array_agg(m.event_name) filter (where m.amount_path is not null), '{}'),
         coalesce(array_agg(m.event_name) filter (where m.customer_event), '{}')
  into counted, priced, customer_events
  from public.analytics_metric_events m;

  with orgs as (
    select o.id, o.timezone, private.reporting_currency(o.settings) as currency,
           (_start::timestamp at time zone o.timezone) as from_at,
           ((_end + 1)::timestamp at time zone o.timezone) as to_at
    from public.organizations o where o.id = any (scope)
  ),
  -- Time zones are at most 26 hours apart: the constant bounds prune partitions, the per-organization ones decide.
  -- Events are first counted per organization, event name and quarter hour (UTC): every time zone's offset is a
  -- whole number of quarter hours, so a quarter hour lies within one local day, and the time zone is applied per
  -- bucket, not per event. Only the events with amounts (orders, refunds) are read a second time, for their props.
  counts as (
    select e.organization_id, e.event_name,
           date_bin('15 minutes', e.occurred_at, timestamptz '2000-01-01 00:00:00+00') as bucket,
           count(*) as events
    from public.analytics_events e
    join orgs o on o.id = e.organization_id
    where e.event_name = any (counted)
      and e.occurred_at >= (_start - 2)::timestamp at time zone 'UTC'
      and e.occurred_at < (_end + 3)::timestamp at time zone 'UTC'
      and e.occurred_at >= o.from_at and e.occurred_at < o.to_at
    group by 1, 2, 3
  ),
  amounts as (
    select e.organization_id, e.event_name,
           date_bin('15 minutes', e.occurred_at, timestamptz '2000-01-01 00:00:00+00') as bucket,
           sum(case when coalesce(lower(e.props #>> m.currency_path), o.currency) = o.currency
                     and (e.props #>> m.amount_path) ~ '^[0-9]{1,15}$'
                    then (e.props #>> m.amount_path)::bigint end) as amount,
           sum(case when m.cost_path is not null
                     and coalesce(lower(e.props #>> m.currency_path), o.currency) = o.currency
                     and (e.props #>> m.cost_path) ~ '^[0-9]{1,15}$'
                    then (e.props #>> m.cost_path)::bigint end) as cost
    from public.analytics_events e
    join orgs o on o.id = e.organization_id
    join public.analytics_metric_events m on m.event_name = e.event_name
    where e.event_name = any (priced)
      and e.occurred_at >= (_start - 2)::timestamp at time zone 'UTC'
      and e.occurred_at < (_end + 3)::timestamp at time zone 'UTC'
      and e.occurred_at >= o.from_at and e.occurred_at < o.to_at
    group by 1, 2, 3
  ),
  buckets as (
    select c.organization_id, m.metric, c.bucket, c.events, a.amount, a.cost
    from counts c
    join public.analytics_metric_events m on m.event_name = c.event_name
    left join amounts a on a.organization_id = c.organization_id and a.event_name = c.event_name and a.bucket = c.bucket
  ),
  event_days as (
    select b.organization_id, (b.bucket at time zone o.timezone)::date as day,
           coalesce(sum(b.events) filter (where b.metric = 'sessions'), 0) as sessions,
           coalesce(sum(b.events) filter (where b.metric = 'traffic'), 0) as traffic,
           coalesce(sum(b.events) filter (where b.metric = 'add_to_carts'), 0) as add_to_carts,
           coalesce(sum(b.events) filter (where b.metric = 'orders'), 0) as orders,
           coalesce(sum(b.amount) filter (where b.metric = 'orders'), 0) as revenue_cents,
           coalesce(sum(b.amount) filter (where b.metric = 'refunds'), 0) as refunds_cents,
           coalesce(sum(b.cost) filter (where b.metric = 'orders'), 0) as cost_cents
    from buckets b join orgs o on o.id = b.organization_id
    group by 1, 2
  ),
  -- A new customer's first order ever (earlier than the range too), by user or anonymous id.
  first_orders as (
    select e.organization_id, min(e.occurred_at) as first_at
    from public.analytics_events e
    where e.organization_id = any (scope) and e.event_name = any (customer_events)
      and (e.user_id is not null or e.anonymous_id is not null)
      and e.occurred_at < (_end + 3)::timestamp at time zone 'UTC'
    group by e.organization_id, coalesce(e.user_id::text, 'anonymous:' || e.anonymous_id)
  ),
  customer_days as (
    select f.organization_id, (f.first_at at time zone o.timezone)::date as day, count(*) as new_customers
    from first_orders f join orgs o on o.id = f.organization_id
    where f.first_at >= o.from_at and f.first_at < o.to_at
    group by 1, 2
  ),
  spend_days as (
    select s.organization_id, s.date as day, sum(s.spend_cents) as spend_cents
    from public.spend s
    where s.organization_id = any (scope) and s.date between _start and _end
    group by 1, 2
  ),
  days as (
    select d.organization_id, d.day from event_days d
    union select s.organization_id, s.day from spend_days s
  ),
  totals as (
    select d.organization_id, d.day, o.currency,
           coalesce(ev.sessions, 0) as sessions, coalesce(ev.traffic, 0) as traffic,
           coalesce(ev.add_to_carts, 0) as add_to_carts, coalesce(ev.orders, 0) as orders,
           coalesce(c.new_customers, 0) as new_customers,
           coalesce(ev.revenue_cents, 0) as revenue_cents, coalesce(ev.refunds_cents, 0) as refunds_cents,
           coalesce(ev.cost_cents, 0) as cost_cents, coalesce(s.spend_cents, 0) as spend_cents
    from days d
    join orgs o on o.id = d.organization_id
    left join event_days ev on ev.organization_id = d.organization_id and ev.day = d.day
    left join customer_days c on c.organization_id = d.organization_id and c.day = d.day
    left join spend_days s on s.organization_id = d.organization_id and s.day = d.day
  )
  insert into public.metrics_daily (organization_id, day, currency, sessions, traffic, add_to_carts, orders,
                                    new_customers, revenue_cents, refunds_cents, cost_cents, spend_cents, aov_cents,
                                    cac_cents, conversion_rate, gross_margin_cents)
  select t.organization_id, t.day, t.currency, t.sessions, t.traffic, t.add_to_carts, t.orders, t.new_customers,
         t.revenue_cents, t.refunds_cents, t.cost_cents, t.spend_cents,
         case when t.orders > 0 then round(t.revenue_cents::numeric / t.orders)::bigint end,
         case when t.new_customers > 0 then round(t.spend_cents::numeric / t.new_customers)::bigint end,
         case when t.sessions > 0 then round(t.orders::numeric / t.sessions, 6) end,
         t.revenue_cents - t.refunds_cents - t.cost_cents
  from totals t;
  get diagnostics written = row_count;
  return written;
end;
$$;
comment on function public.recompute_metrics_daily(date, date, uuid) is 'Replaces metrics_daily rows of the days _start.._end (organization-local) for one organization or all (null), from analytics_events through analytics_metric_events and spend, in one transaction (cohorts and utm_tracks are kept by upsert_events; private.rebuild_attribution repairs them). Repeatable; returns the rows written. Service role only (pg_cron recomputes the last 3 days nightly).';

grant execute on function public.recompute_metrics_daily(date, date, uuid) to service_role;


-- =====================================================================================================================
-- source: supabase/schemas/74-analytics-attribution.sql
-- =====================================================================================================================
-- Growth analytics: cohorts and utm_tracks (first, last and last non-direct touch), derived from analytics_events.
-- Maintained set-based as events are stored, repaired by rebuild_attribution(); cohort_retention() reads them.

-- A subject is a user (user_id) or, for a visitor who is not one, their anonymous_id; an event with both counts for
-- the user. A touch is an event that says where a visit came from: every session.started, and any event carrying
-- UTM parameters or an ad click id. Its source is utm_source, else the click id's platform, else the referrer's host;
-- a touch without any of them is direct. That rule is written out twice below (the incremental merge and the
-- rebuild), as SQL inside each statement: a function per event cost more than the rest of the statement.

create table public.cohorts (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  user_id uuid,
  anonymous_id text,
  subject_key text generated always as (coalesce('user:' || user_id::text, 'anonymous:' || anonymous_id)) stored,
  cohort_month date not null,
  acquired_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint cohorts_pkey primary key (id),
  constraint cohorts_subject_key unique (organization_id, subject_key),
  constraint cohorts_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint cohorts_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint cohorts_one_subject check (num_nonnulls(user_id, anonymous_id) = 1),
  constraint cohorts_anonymous_id_length check (anonymous_id is null or char_length(anonymous_id) between 1 and 255),
  constraint cohorts_month_first check (cohort_month = date_trunc('month', cohort_month)::date)
);
comment on table public.cohorts is 'When each user or visitor was first seen by an organization (seed 002 "cohorts"): acquired_at is their first event, cohort_month its month in the organization''s time zone. Derived from analytics_events only.';
comment on column public.cohorts.subject_key is 'user:<uuid> or anonymous:<id>: one row per subject and organization.';

create index cohorts_user_id_idx on public.cohorts (user_id) where user_id is not null;
create index cohorts_organization_month_idx on public.cohorts (organization_id, cohort_month);

create table public.utm_tracks (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  user_id uuid,
  anonymous_id text,
  subject_key text generated always as (coalesce('user:' || user_id::text, 'anonymous:' || anonymous_id)) stored,
  touches bigint not null,
  first_source text, first_medium text, first_campaign text, first_term text, first_content text, first_click_id text,
  first_touch_at timestamptz not null,
  last_source text, last_medium text, last_campaign text, last_term text, last_content text, last_click_id text,
  last_touch_at timestamptz not null,
  last_non_direct_source text, last_non_direct_medium text, last_non_direct_campaign text, last_non_direct_term text,
  last_non_direct_content text, last_non_direct_click_id text,
  last_non_direct_touch_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint utm_tracks_pkey primary key (id),
  constraint utm_tracks_subject_key unique (organization_id, subject_key),
  constraint utm_tracks_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint utm_tracks_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint utm_tracks_one_subject check (num_nonnulls(user_id, anonymous_id) = 1),
  constraint utm_tracks_anonymous_id_length check (anonymous_id is null or char_length(anonymous_id) between 1 and 255),
  constraint utm_tracks_touches_positive check (touches >= 1),
  constraint utm_tracks_touches_ordered check (first_touch_at <= last_touch_at
    and (last_non_direct_touch_at is null or last_non_direct_touch_at between first_touch_at and last_touch_at)),
  constraint utm_tracks_non_direct_has_source check ((last_non_direct_touch_at is null) = (last_non_direct_source is null))
);
comment on table public.utm_tracks is 'Attribution per user or visitor and organization (seed 002 "utm_tracks"): the first touch, the last touch and the last non-direct touch across all their sessions, each with source, medium, campaign, term, content, click id and time. Derived from analytics_events only.';
comment on column public.utm_tracks.first_source is 'Null means direct (no UTM source, click id or referrer).';
comment on column public.utm_tracks.last_non_direct_touch_at is 'The latest touch with a source; null when every touch was direct.';

create index utm_tracks_user_id_idx on public.utm_tracks (user_id) where user_id is not null;

-- The merge and the rebuild below set updated_at themselves (a PL/pgSQL trigger call per updated row was a third of
-- the merge's time); the shared trigger keeps it current for any other writer.
create trigger cohorts_set_updated_at before update on public.cohorts
  for each row when (new.updated_at is not distinct from old.updated_at) execute function private.set_updated_at();
create trigger utm_tracks_set_updated_at before update on public.utm_tracks
  for each row when (new.updated_at is not distinct from old.updated_at) execute function private.set_updated_at();

alter table public.cohorts enable row level security;
alter table public.utm_tracks enable row level security;

-- cohorts_select: members holding analytics.read read their organization's cohorts.
create policy cohorts_select on public.cohorts for select to authenticated
  using (organization_id in (select private.organizations_with_permission('analytics.read')));
-- utm_tracks_select: members holding analytics.read read their organization's attribution.
create policy utm_tracks_select on public.utm_tracks for select to authenticated
  using (organization_id in (select private.organizations_with_permission('analytics.read')));

grant select on public.cohorts, public.utm_tracks to authenticated, service_role;

-- Adds newly stored events to cohorts and utm_tracks (set-based, one statement each): an earlier first event or
-- touch replaces the stored one, a later last touch replaces the last, a later non-direct one the last non-direct.
create function private.derive_attribution() returns trigger
language plpgsql security definer
set search_path = ''
set enable_nestloop = on
as $$
begin
  -- Events without a subject (the receptionist's call and appointment events, one per booking) have nothing to merge:
  -- skip the two upserts rather than plan and run them for no rows.
  if not exists (select 1 from inserted i where i.user_id is not null or i.anonymous_id is not null) then
    return null;
  end if;
  insert into public.cohorts as c (organization_id, user_id, anonymous_id, cohort_month, acquired_at)
  select s.organization_id, s.user_id, s.anonymous_id,
         date_trunc('month', s.acquired_at at time zone o.timezone)::date, s.acquired_at
  from (select i.organization_id, i.user_id, case when i.user_id is null then i.anonymous_id end as anonymous_id,
               min(i.occurred_at) as acquired_at
        from inserted i
        where i.user_id is not null or i.anonymous_id is not null
        group by 1, 2, 3) s
  join public.organizations o on o.id = s.organization_id
  -- Only subjects that are new or seen earlier than stored (by index, before the upsert): a subject already acquired
  -- no later costs one lookup, not a speculative insert, a row lock and an update check. ON CONFLICT still decides
  -- when a concurrent batch adds the subject meanwhile.
  where not exists (select 1 from public.cohorts x
                    where x.organization_id = s.organization_id
                      and x.subject_key = coalesce('user:' || s.user_id::text, 'anonymous:' || s.anonymous_id)
                      and x.acquired_at <= s.acquired_at)
  on conflict (organization_id, subject_key) do update set
    acquired_at = excluded.acquired_at, cohort_month = excluded.cohort_month, updated_at = pg_catalog.now()
  where excluded.acquired_at < c.acquired_at;

  with t as materialized (
    select i.organization_id, i.user_id, case when i.user_id is null then i.anonymous_id end as anonymous_id,
           coalesce('user:' || i.user_id::text, 'anonymous:' || i.anonymous_id) collate "C" as sk, i.occurred_at, i.event_id, x.*
    from inserted i
    cross join lateral (
      -- The touch (keep in step with the other copy in this file): source = utm_source, else the click id's platform,
      -- else the referrer's host (null = direct); medium = utm_medium, else cpc for a click id, referral for a referrer.
      select coalesce(nullif(i.props ->> 'utm_source', ''),
                      case when i.props ? 'gclid' then 'google' when i.props ? 'fbclid' then 'facebook'
                           when i.props ? 'msclkid' then 'bing' when i.props ? 'ttclid' then 'tiktok' end,
                      r.host) as source,
             coalesce(nullif(i.props ->> 'utm_medium', ''),
                      case when i.props ?| array['gclid', 'fbclid', 'msclkid', 'ttclid'] then 'cpc'
                           when r.host is not null then 'referral' end) as medium,
             nullif(i.props ->> 'utm_campaign', '') as campaign, nullif(i.props ->> 'utm_term', '') as term,
             nullif(i.props ->> 'utm_content', '') as content,
             coalesce(i.props ->> 'gclid', i.props ->> 'fbclid', i.props ->> 'msclkid', i.props ->> 'ttclid') as click_id
      from (select nullif(lower(substring(i.props ->> 'referrer' from '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^/:?#]+)')), '') as host) r) x
    where (i.user_id is not null or i.anonymous_id is not null)
      and (i.event_name = 'session.started' or i.props ?| array['utm_source', 'utm_medium', 'utm_campaign', 'gclid', 'fbclid', 'msclkid', 'ttclid'])
  )
  insert into public.utm_tracks as u (organization_id, user_id, anonymous_id, touches,
    first_source, first_medium, first_campaign, first_term, first_content, first_click_id, first_touch_at,
    last_source, last_medium, last_campaign, last_term, last_content, last_click_id, last_touch_at,
    last_non_direct_source, last_non_direct_medium, last_non_direct_campaign, last_non_direct_term,
    last_non_direct_content, last_non_direct_click_id, last_non_direct_touch_at)
  select a.organization_id, a.user_id, a.anonymous_id, a.touches,
         f.source, f.medium, f.campaign, f.term, f.content, f.click_id, f.occurred_at,
         l.source, l.medium, l.campaign, l.term, l.content, l.click_id, l.occurred_at,
         n.source, n.medium, n.campaign, n.term, n.content, n.click_id, n.occurred_at
  from (select t.organization_id, t.sk, min(t.user_id::text)::uuid as user_id, min(t.anonymous_id) as anonymous_id,
               count(*) as touches
        from t group by 1, 2) a
  join (select distinct on (t.organization_id, t.sk) t.* from t
        order by t.organization_id, t.sk, t.occurred_at, t.event_id) f
    on f.organization_id = a.organization_id and f.sk = a.sk
  join (select distinct on (t.organization_id, t.sk) t.* from t
        order by t.organization_id, t.sk, t.occurred_at desc, t.event_id desc) l
    on l.organization_id = a.organization_id and l.sk = a.sk
  left join (select distinct on (t.organization_id, t.sk) t.* from t where t.source is not null
             order by t.organization_id, t.sk, t.occurred_at desc, t.event_id desc) n
    on n.organization_id = a.organization_id and n.sk = a.sk
  on conflict (organization_id, subject_key) do update set
    updated_at = pg_catalog.now(),
    touches = u.touches + excluded.touches,
    first_source = case when excluded.first_touch_at < u.first_touch_at then excluded.first_source else u.first_source end,
    first_medium = case when excluded.first_touch_at < u.first_touch_at then excluded.first_medium else u.first_medium end,
    first_campaign = case when excluded.first_touch_at < u.first_touch_at then excluded.first_campaign else u.first_campaign end,
    first_term = case when excluded.first_touch_at < u.first_touch_at then excluded.first_term else u.first_term end,
    first_content = case when excluded.first_touch_at < u.first_touch_at then excluded.first_content else u.first_content end,
    first_click_id = case when excluded.first_touch_at < u.first_touch_at then excluded.first_click_id else u.first_click_id end,
    first_touch_at = least(u.first_touch_at, excluded.first_touch_at),
    last_source = case when excluded.last_touch_at > u.last_touch_at then excluded.last_source else u.last_source end,
    last_medium = case when excluded.last_touch_at > u.last_touch_at then excluded.last_medium else u.last_medium end,
    last_campaign = case when excluded.last_touch_at > u.last_touch_at then excluded.last_campaign else u.last_campaign end,
    last_term = case when excluded.last_touch_at > u.last_touch_at then excluded.last_term else u.last_term end,
    last_content = case when excluded.last_touch_at > u.last_touch_at then excluded.last_content else u.last_content end,
    last_click_id = case when excluded.last_touch_at > u.last_touch_at then excluded.last_click_id else u.last_click_id end,
    last_touch_at = greatest(u.last_touch_at, excluded.last_touch_at),
    last_non_direct_source = case when excluded.last_non_direct_touch_at > coalesce(u.last_non_direct_touch_at, '-infinity')
      then excluded.last_non_direct_source else u.last_non_direct_source end,
    last_non_direct_medium = case when excluded.last_non_direct_touch_at > coalesce(u.last_non_direct_touch_at, '-infinity')
      then excluded.last_non_direct_medium else u.last_non_direct_medium end,
    last_non_direct_campaign = case when excluded.last_non_direct_touch_at > coalesce(u.last_non_direct_touch_at, '-infinity')
      then excluded.last_non_direct_campaign else u.last_non_direct_campaign end,
    last_non_direct_term = case when excluded.last_non_direct_touch_at > coalesce(u.last_non_direct_touch_at, '-infinity')
      then excluded.last_non_direct_term else u.last_non_direct_term end,
    last_non_direct_content = case when excluded.last_non_direct_touch_at > coalesce(u.last_non_direct_touch_at, '-infinity')
      then excluded.last_non_direct_content else u.last_non_direct_content end,
    last_non_direct_click_id = case when excluded.last_non_direct_touch_at > coalesce(u.last_non_direct_touch_at, '-infinity')
      then excluded.last_non_direct_click_id else u.last_non_direct_click_id end,
    last_non_direct_touch_at = greatest(u.last_non_direct_touch_at, excluded.last_non_direct_touch_at);
  return null;
end;
$$;
comment on function private.derive_attribution() is 'AFTER INSERT statement trigger on analytics_events: merges the inserted events into cohorts and utm_tracks, set-based.';

create trigger analytics_events_derive_attribution after insert on public.analytics_events
  referencing new table as inserted
  for each statement execute function private.derive_attribution();

-- Rebuilds cohorts and utm_tracks of every subject of these organizations seen since _start (widened by the time
-- zones), from all their events: the same result as if the events had arrived in order.
-- Subject keys compare in the C collation and join by hash (no JIT: its compilation costs more than it saves here;
-- work_mem for the sorts and hashes over every touch and subject, which spilled to disk at 2,000,000 events).
create function private.rebuild_attribution(organizations uuid[], _start date) returns void
language plpgsql security definer
set search_path = ''
set jit = off
set work_mem = '128MB'
set enable_mergejoin = off
as $$
declare
  active_from timestamptz := (_start - 2)::timestamp at time zone 'UTC';
begin
  -- One pass over the organizations' events: every subject seen since the range began (a superset of those active in
  -- it, which is harmless: a rebuild writes what is already right) gets its first event afresh.
  insert into public.cohorts as c (organization_id, user_id, anonymous_id, cohort_month, acquired_at)
  select s.organization_id, s.user_id, s.anonymous_id, date_trunc('month', s.acquired_at at time zone o.timezone)::date,
         s.acquired_at
  from (select e.organization_id, e.user_id, case when e.user_id is null then e.anonymous_id end as anonymous_id,
               min(e.occurred_at) as acquired_at
        from public.analytics_events e
        where e.organization_id = any (organizations) and (e.user_id is not null or e.anonymous_id is not null)
        group by 1, 2, 3
        having max(e.occurred_at) >= active_from) s
  join public.organizations o on o.id = s.organization_id
  on conflict (organization_id, subject_key) do update set
    acquired_at = excluded.acquired_at, cohort_month = excluded.cohort_month, updated_at = pg_catalog.now()
  where (c.acquired_at, c.cohort_month) is distinct from (excluded.acquired_at, excluded.cohort_month);

  -- Attribution depends on touches only: every subject with a touch since the range began is rebuilt from all of
  -- their touches (in the C collation, which sorts subject keys fastest).
  with all_touches as (
    select e.organization_id, e.user_id, case when e.user_id is null then e.anonymous_id end as anonymous_id,
           (e.organization_id::text || '/' || coalesce('user:' || e.user_id::text, 'anonymous:' || e.anonymous_id)) collate "C" as sk,
           e.occurred_at, e.event_id, x.*
    from public.analytics_events e
    cross join lateral (
      -- The touch (keep in step with the other copy in this file): source = utm_source, else the click id's platform,
      -- else the referrer's host (null = direct); medium = utm_medium, else cpc for a click id, referral for a referrer.
      select coalesce(nullif(e.props ->> 'utm_source', ''),
                      case when e.props ? 'gclid' then 'google' when e.props ? 'fbclid' then 'facebook'
                           when e.props ? 'msclkid' then 'bing' when e.props ? 'ttclid' then 'tiktok' end,
                      r.host) as source,
             coalesce(nullif(e.props ->> 'utm_medium', ''),
                      case when e.props ?| array['gclid', 'fbclid', 'msclkid', 'ttclid'] then 'cpc'
                           when r.host is not null then 'referral' end) as medium,
             nullif(e.props ->> 'utm_campaign', '') as campaign, nullif(e.props ->> 'utm_term', '') as term,
             nullif(e.props ->> 'utm_content', '') as content,
             coalesce(e.props ->> 'gclid', e.props ->> 'fbclid', e.props ->> 'msclkid', e.props ->> 'ttclid') as click_id
      from (select nullif(lower(substring(e.props ->> 'referrer' from '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^/:?#]+)')), '') as host) r) x
    where e.organization_id = any (organizations)
      and (e.event_name = 'session.started' or e.props ?| array['utm_source', 'utm_medium', 'utm_campaign', 'gclid', 'fbclid', 'msclkid', 'ttclid'])
      and (e.user_id is not null or e.anonymous_id is not null)
  ),
  t as materialized (
    select a.* from all_touches a
    where a.sk in (select b.sk from all_touches b group by b.sk having max(b.occurred_at) >= active_from)
  ),
  firsts as (
    select distinct on (t.sk) t.* from t order by t.sk, t.occurred_at, t.event_id
  ),
  lasts as (
    select distinct on (t.sk) t.* from t order by t.sk, t.occurred_at desc, t.event_id desc
  ),
  non_direct as (
    select distinct on (t.sk) t.* from t where t.source is not null order by t.sk, t.occurred_at desc, t.event_id desc
  ),
  counts as (
    select t.sk, count(*) as touches from t group by 1
  )
  insert into public.utm_tracks as u (organization_id, user_id, anonymous_id, touches,
    first_source, first_medium, first_campaign, first_term, first_content, first_click_id, first_touch_at,
    last_source, last_medium, last_campaign, last_term, last_content, last_click_id, last_touch_at,
    last_non_direct_source, last_non_direct_medium, last_non_direct_campaign, last_non_direct_term,
    last_non_direct_content, last_non_direct_click_id, last_non_direct_touch_at)
  select f.organization_id, f.user_id, f.anonymous_id, c.touches,
         f.source, f.medium, f.campaign, f.term, f.content, f.click_id, f.occurred_at,
         l.source, l.medium, l.campaign, l.term, l.content, l.click_id, l.occurred_at,
         n.source, n.medium, n.campaign, n.term, n.content, n.click_id, n.occurred_at
  from counts c
  join firsts f on f.sk = c.sk
  join lasts l on l.sk = c.sk
  left join non_direct n on n.sk = c.sk
  on conflict (organization_id, subject_key) do update set
    updated_at = pg_catalog.now(),
    touches = excluded.touches,
    first_source = excluded.first_source,
    first_medium = excluded.first_medium,
    first_campaign = excluded.first_campaign,
    first_term = excluded.first_term,
    first_content = excluded.first_content,
    first_click_id = excluded.first_click_id,
    first_touch_at = excluded.first_touch_at,
    last_source = excluded.last_source,
    last_medium = excluded.last_medium,
    last_campaign = excluded.last_campaign,
    last_term = excluded.last_term,
    last_content = excluded.last_content,
    last_click_id = excluded.last_click_id,
    last_touch_at = excluded.last_touch_at,
    last_non_direct_source = excluded.last_non_direct_source,
    last_non_direct_medium = excluded.last_non_direct_medium,
    last_non_direct_campaign = excluded.last_non_direct_campaign,
    last_non_direct_term = excluded.last_non_direct_term,
    last_non_direct_content = excluded.last_non_direct_content,
    last_non_direct_click_id = excluded.last_non_direct_click_id,
    last_non_direct_touch_at = excluded.last_non_direct_touch_at
  where (
      u.touches, u.first_source, u.first_medium, u.first_campaign, u.first_term, u.first_content, u.first_click_id,
      u.first_touch_at, u.last_source, u.last_medium, u.last_campaign, u.last_term, u.last_content, u.last_click_id,
      u.last_touch_at, u.last_non_direct_source, u.last_non_direct_medium, u.last_non_direct_campaign,
      u.last_non_direct_term, u.last_non_direct_content, u.last_non_direct_click_id, u.last_non_direct_touch_at)
    is distinct from (
      excluded.touches, excluded.first_source, excluded.first_medium, excluded.first_campaign, excluded.first_term,
      excluded.first_content, excluded.first_click_id, excluded.first_touch_at, excluded.last_source,
      excluded.last_medium, excluded.last_campaign, excluded.last_term, excluded.last_content,
      excluded.last_click_id, excluded.last_touch_at, excluded.last_non_direct_source,
      excluded.last_non_direct_medium, excluded.last_non_direct_campaign, excluded.last_non_direct_term,
      excluded.last_non_direct_content, excluded.last_non_direct_click_id, excluded.last_non_direct_touch_at);
end;
$$;
comment on function private.rebuild_attribution(uuid[], date) is 'Recomputes cohorts and utm_tracks of the subjects seen since _start from all their events: a repair, to the rows upsert_events keeps incrementally (not part of recompute_metrics_daily).';

-- Retention triangle: for each cohort month in [from_month, to_month], its size and how many of it were active
-- (any event) in each month since, through to_month (months in the organization's time zone).
create function public.cohort_retention(organization_id uuid, from_month date, to_month date)
returns table (cohort_month date, months_since int, users int, retained int)
language plpgsql stable
set search_path = ''
as $$
declare
  tz text;
  first_month date := date_trunc('month', from_month)::date;
  last_month date := date_trunc('month', to_month)::date;
begin
  if from_month is null or to_month is null or from_month > to_month then
    raise exception 'need from_month <= to_month' using errcode = '22023';
  end if;
  if cohort_retention.organization_id is null then
    raise exception 'organization_id is required' using errcode = '22004';
  end if;
  if current_user in ('anon', 'authenticated') and not private.has_permission(cohort_retention.organization_id, 'analytics.read') then
    raise exception 'analytics.read is required in this organization' using errcode = '42501';
  end if;
  select o.timezone into tz from public.organizations o where o.id = cohort_retention.organization_id;
  if not found then
    raise exception 'no organization %', cohort_retention.organization_id using errcode = 'P0002';
  end if;
  return query
    with members as (
      select c.subject_key, c.cohort_month from public.cohorts c
      where c.organization_id = cohort_retention.organization_id and c.cohort_month between first_month and last_month
    ),
    activity as (
      select distinct coalesce('user:' || e.user_id::text, 'anonymous:' || e.anonymous_id) as subject_key,
             date_trunc('month', e.occurred_at at time zone tz)::date as active_month
      from public.analytics_events e
      where e.organization_id = cohort_retention.organization_id
        and (e.user_id is not null or e.anonymous_id is not null)
        and e.occurred_at >= (first_month::timestamp at time zone tz)
        and e.occurred_at < ((last_month + interval '1 month')::timestamp at time zone tz)
    ),
    sizes as (
      select m.cohort_month, count(*)::int as users from members m group by 1
    ),
    grid as (
      select s.cohort_month, s.users, g.k::int as months_since
      from sizes s cross join lateral generate_series(0, ((extract(year from age(last_month, s.cohort_month)) * 12
                                                          + extract(month from age(last_month, s.cohort_month))))::int) g(k)
    )
    select g.cohort_month, g.months_since, g.users,
           (select count(distinct m.subject_key)::int from members m join activity a on a.subject_key = m.subject_key
            where m.cohort_month = g.cohort_month
              and a.active_month = (g.cohort_month + make_interval(months => g.months_since))::date)
    from grid g
    order by 1, 2;
end;
$$;
comment on function public.cohort_retention(uuid, date, date) is 'Per cohort month in the range: its size and how many were active in each month since (through to_month). Members with analytics.read and the service role; others get 42501.';

grant execute on function public.cohort_retention(uuid, date, date) to authenticated, service_role;


-- =====================================================================================================================
-- source: supabase/schemas/75-analytics-personal-data.sql
-- =====================================================================================================================
-- Growth analytics: a user's analytics data in export_my_data() (36); erasure is by account deletion (71, 74).
-- Events keep serving their organization without the user; cohorts and attribution go with the user.

-- What the analytics domain holds about a user, in every organization: the events that carry their user id (props
-- already redacted, IP truncated), their cohort rows and their attribution. A visitor's anonymous_id history is not
-- theirs to export: nothing ties it to an account but the events that carry both, which are included.
create function private.analytics_personal_data(uid uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'analytics_events', (select coalesce(jsonb_agg(to_jsonb(e) order by e.occurred_at, e.event_id), '[]')
                         from public.analytics_events e where e.user_id = uid),
    'analytics_cohorts', (select coalesce(jsonb_agg(to_jsonb(c) order by c.acquired_at), '[]')
                          from public.cohorts c where c.user_id = uid),
    'analytics_attribution', (select coalesce(jsonb_agg(to_jsonb(u) order by u.first_touch_at), '[]')
                              from public.utm_tracks u where u.user_id = uid))
$$;
comment on function private.analytics_personal_data(uuid) is 'The user''s analytics events, cohort rows and attribution, for export_my_data(). Not granted to API roles.';


-- =====================================================================================================================
-- source: supabase/schemas/90-scheduled-jobs.sql
-- =====================================================================================================================
-- Scheduled jobs (pg_cron) and what spans domains.
-- Partition upkeep, ledger cleanup and privacy retention; times are UTC.

-- pg_cron keeps partitions two (in fact three) months ahead and applies retention. Times are UTC.

select private.ensure_monthly_partitions(1, 3);

select cron.schedule('partition-upkeep', '15 0 * * *', $$select private.ensure_monthly_partitions(1, 3)$$);

-- Keep the Stripe event ledger for 90 days (Stripe stops retrying after 3 and resends from its Dashboard for 30);
-- a problem nobody replayed by then goes too, and with it the payload it kept (public.billing_sync_problems).
select cron.schedule('stripe-event-ledger-retention', '40 3 * * *',
  $$delete from private.stripe_events where received_at < now() - interval '90 days'$$);

-- Nightly privacy retention (after partition upkeep at 00:15): the global policies, then each user's own setting.
select cron.schedule('privacy-retention', '30 2 * * *', $$select public.cleanup_retention_data()$$);
select cron.schedule('privacy-user-retention', '45 2 * * *', $$select public.cleanup_telemetry_by_retention()$$);

-- Workflows (45-47): every minute, executions past their deadline time out (and runs whose last lease expired fail),
-- scheduled workflows start at their cron times (each occurrence once), approvals escalate and expire.
select cron.schedule('workflow-deadlines', '* * * * *', $$select private.expire_workflow_executions()$$);
select cron.schedule('workflow-schedules', '* * * * *', $$select private.start_scheduled_workflows()$$);
select cron.schedule('approval-escalation', '* * * * *', $$select private.escalate_approval_requests()$$);
select cron.schedule('approval-expiry', '* * * * *', $$select private.expire_approval_requests()$$);

-- Work management (53): every 15 minutes, open tasks due within 24 hours notify their assignee and watchers (once per
-- task and due date).
select cron.schedule('work-due-soon-notifications', '*/15 * * * *', $$select private.notify_tasks_due_soon()$$);
-- Growth analytics (73): every night the rollups of the last 3 days (and today, in every organization's time zone)
-- are recomputed, so late events are picked up; older days are recomputed on demand. Cohorts and attribution are kept
-- by upsert_events() as events arrive (74; private.rebuild_attribution() is the explicit repair).
select cron.schedule('analytics-recompute', '15 3 * * *',
  $$select public.recompute_metrics_daily(current_date - 3, current_date)$$);
