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
    'file_events', 'file_patterns', 'file_relationships', 'privacy_transparency_log', 'retention_policies', 'metrics_log'];
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
  -- ---- Work collaboration (issue 12): comments, reactions, watched tasks, notifications, activities as actor
  -- (53-work-notifications-activities.sql).
  result := result || private.work_collab_personal_data(uid);
  -- ---- end Work collaboration
  -- ---- Work management, time and skills (issue 12): time entries, executions started, skills, reviews, templates (54-56).
  result := result || private.work_time_personal_data(uid);
  result := result || private.work_skills_personal_data(uid);
  result := result || private.work_templates_personal_data(uid);
  -- ---- end Work management, time and skills
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
  perform private.append_transparency_entry(uid, 'erasure', 'erase_my_telemetry', null, null, null,
    jsonb_build_object('telemetry_events', telemetry, 'file_events', files, 'file_patterns', patterns,
                       'file_relationships', relationships));
  return jsonb_build_object('telemetry_events', telemetry, 'file_events', files, 'file_patterns', patterns,
                            'file_relationships', relationships);
end;
$$;
comment on function public.erase_my_telemetry() is 'Erases the caller''s telemetry and file events (and what was derived from them); returns counts; logged in the transparency log.';

grant execute on function public.export_my_data(), public.erase_my_telemetry() to authenticated;
