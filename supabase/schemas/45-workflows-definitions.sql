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
