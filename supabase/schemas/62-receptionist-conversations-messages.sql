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
