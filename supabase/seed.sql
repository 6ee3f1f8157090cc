-- Demo data for local development (applied by `supabase db push --include-seed` / `supabase db reset`).
-- Idempotent. Tests never depend on it. Every demo user's password is `password123`.
--
--   Acme Inc (acme)      alice owner, bob admin, carol member, dave viewer
--   Globex (globex)      erin owner, frank admin, grace member, heidi viewer; carol is also a Globex viewer
-- Every user also has a personal organization (created by the sign-up trigger).

insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                        raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
select '00000000-0000-0000-0000-000000000000', u.id::uuid, 'authenticated', 'authenticated', u.email,
       extensions.crypt('password123', extensions.gen_salt('bf', 6)), now(),
       '{"provider": "email", "providers": ["email"]}'::jsonb, jsonb_build_object('full_name', u.full_name), now(), now()
from (values
  ('a11ce000-0000-4000-8000-000000000001', 'alice@acme.test',   'Alice Anders'),
  ('b0b00000-0000-4000-8000-000000000002', 'bob@acme.test',     'Bob Brown'),
  ('ca201000-0000-4000-8000-000000000003', 'carol@acme.test',   'Carol Chen'),
  ('da7e0000-0000-4000-8000-000000000004', 'dave@acme.test',    'Dave Diaz'),
  ('e2140000-0000-4000-8000-000000000005', 'erin@globex.test',  'Erin Evans'),
  ('f2a40000-0000-4000-8000-000000000006', 'frank@globex.test', 'Frank Fischer'),
  ('92ace000-0000-4000-8000-000000000007', 'grace@globex.test', 'Grace Gupta'),
  ('4e1d1000-0000-4000-8000-000000000008', 'heidi@globex.test', 'Heidi Horvath')
) as u (id, email, full_name)
on conflict (id) do nothing;

insert into public.organizations (id, name, slug, description, created_by, industry, business_type, phone, email,
                                  website, address, city, country, timezone, business_hours)
values
  ('0a000000-0000-4000-8000-00000000ac3e', 'Acme Inc', 'acme', 'Workflow automation for the whole company',
   'a11ce000-0000-4000-8000-000000000001', 'Software', 'B2B SaaS', '+48221234567', 'hello@acme.test',
   'https://acme.test', 'ul. Prosta 1', 'Warszawa', 'PL', 'Europe/Warsaw',
   '{"monday": {"open": "09:00", "close": "17:00"}, "tuesday": {"open": "09:00", "close": "17:00"},
     "wednesday": {"open": "09:00", "close": "17:00"}, "thursday": {"open": "09:00", "close": "17:00"},
     "friday": {"open": "09:00", "close": "15:00"}, "saturday": null, "sunday": null}'),
  ('0a000000-0000-4000-8000-0000000910be', 'Globex', 'globex', 'AI receptionist for clinics',
   'e2140000-0000-4000-8000-000000000005', 'Healthcare', 'Clinic network', '+14155550100', 'team@globex.test',
   'https://globex.test', '1 Market St', 'San Francisco', 'US', 'America/Los_Angeles',
   '{"monday": {"open": "08:00", "close": "18:00"}, "friday": {"open": "08:00", "close": "16:00"}}')
on conflict (id) do nothing;

insert into public.organization_members (organization_id, user_id, role_id)
select m.organization_id::uuid, m.user_id::uuid, r.id
from (values
  ('0a000000-0000-4000-8000-00000000ac3e', 'a11ce000-0000-4000-8000-000000000001', 'owner'),
  ('0a000000-0000-4000-8000-00000000ac3e', 'b0b00000-0000-4000-8000-000000000002', 'admin'),
  ('0a000000-0000-4000-8000-00000000ac3e', 'ca201000-0000-4000-8000-000000000003', 'member'),
  ('0a000000-0000-4000-8000-00000000ac3e', 'da7e0000-0000-4000-8000-000000000004', 'viewer'),
  ('0a000000-0000-4000-8000-0000000910be', 'e2140000-0000-4000-8000-000000000005', 'owner'),
  ('0a000000-0000-4000-8000-0000000910be', 'f2a40000-0000-4000-8000-000000000006', 'admin'),
  ('0a000000-0000-4000-8000-0000000910be', '92ace000-0000-4000-8000-000000000007', 'member'),
  ('0a000000-0000-4000-8000-0000000910be', '4e1d1000-0000-4000-8000-000000000008', 'viewer'),
  ('0a000000-0000-4000-8000-0000000910be', 'ca201000-0000-4000-8000-000000000003', 'viewer')
) as m (organization_id, user_id, role_key)
join public.roles r on r.organization_id is null and r.key = m.role_key
on conflict (organization_id, user_id) do nothing;

-- A custom role in Acme: support agents read everything a viewer can, plus the receptionist module.
insert into public.roles (id, organization_id, key, name, description, rank)
values ('0a000000-0000-4000-8000-0000005a9907', '0a000000-0000-4000-8000-00000000ac3e', 'support', 'Support agent',
        'Handles customer conversations', 30)
on conflict (id) do nothing;

insert into public.role_permissions (role_id, permission_key)
select '0a000000-0000-4000-8000-0000005a9907', p
from unnest(array['members.read', 'receptionist.read', 'receptionist.manage']) as p
on conflict do nothing;

-- Privacy demo: Alice has consented to monitoring of VS Code, with two signals on (app.focus sampled at 100%,
-- editor.keystroke at 10%); everyone else keeps the safe defaults (no consent, nothing stored).
update public.privacy_prefs
set consent_given = true, consent_given_at = now(), monitoring_enabled = true, data_retention_days = 30
where user_id = 'a11ce000-0000-4000-8000-000000000001' and not consent_given;

insert into public.app_allowlist (user_id, app_id, app_name, scope)
values ('a11ce000-0000-4000-8000-000000000001', 'vscode', 'Visual Studio Code', 'all')
on conflict (user_id, app_id) do nothing;

insert into public.signal_toggles (user_id, signal_key, enabled, sampling_rate)
values ('a11ce000-0000-4000-8000-000000000001', 'app.focus', true, 1),
       ('a11ce000-0000-4000-8000-000000000001', 'editor.keystroke', true, 0.1),
       ('a11ce000-0000-4000-8000-000000000001', 'file.modified', true, 1)
on conflict (user_id, signal_key) do nothing;

-- Billing demo: what anyone sees before signing in (live offers, enabled flags).
insert into public.offers (key, name, description, plan, discount_percent, valid_from, valid_to, enabled)
values ('launch-2026', 'Launch offer', '20% off the first year of Pro', 'pro', 20, now() - interval '1 day', now() + interval '90 days', true)
on conflict (key) do nothing;

insert into public.feature_flags (key, description, enabled, plans, rollout_percentage)
values ('ai-suggestions', 'AI task suggestions (half of Pro organizations)', true, '{pro,business,enterprise}', 50),
       ('dark-mode', 'Dark mode for everyone', true, '{}', 100)
on conflict (key) do nothing;

-- Connectors demo: Acme's integrations (one per auth kind), its AI providers and an outgoing webhook, written the way
-- clients write them (as Alice, through the RPCs), so every credential goes to Vault. The values are placeholders.
-- The webhook points at a local receiver (http://127.0.0.1:8787/webhooks); `npm start` runs the dispatcher every minute.
do $$
declare
  acme constant uuid := '0a000000-0000-4000-8000-00000000ac3e';
  hook uuid;
begin
  perform set_config('role', 'authenticated', true);
  perform set_config('request.jwt.claims', '{"sub": "a11ce000-0000-4000-8000-000000000001", "role": "authenticated"}', true);

  insert into public.integrations (organization_id, provider, display_name, settings, scopes)
  select acme, v.provider, v.display_name, v.settings::jsonb, v.scopes::text[]
  from (values ('slack', 'Acme Slack', '{"workspace": "acme", "default_channel": "#ops"}', '{chat:write,channels:read}'),
               ('jira', 'Acme Jira', '{"site_url": "https://acme.atlassian.test", "project_keys": ["OPS", "WEB"]}', '{}'),
               ('linear', 'Acme Linear', '{"team_id": "ENG"}', '{}')) as v (provider, display_name, settings, scopes)
  where not exists (select 1 from public.integrations i where i.organization_id = acme and i.provider = v.provider);
  perform public.set_integration_credentials(i.id, case i.provider
      when 'slack' then '{"access_token": "xoxb-demo-not-a-real-token-0001", "refresh_token": "xoxe-demo-refresh-0001"}'::jsonb
      when 'jira' then '{"username": "automation@acme.test", "password": "demo-not-a-real-password"}'::jsonb
      else '{"api_key": "lin_api_demo_not_a_real_key_0001"}'::jsonb end,
    case when i.provider = 'slack' then now() + interval '12 hours' end)
  from public.integrations i where i.organization_id = acme and not i.has_credentials;

  insert into public.ai_provider_configs (organization_id, name, provider, base_url, default_model, monthly_budget_usd, is_default)
  select acme, v.name, v.provider, v.base_url, v.default_model, v.budget::numeric, v.is_default
  from (values ('OpenAI', 'openai', null, 'gpt-4o-mini', '200.00', true),
               ('Local Ollama', 'local', 'http://127.0.0.1:11434', 'llama3.1', null, false)) as v (name, provider, base_url, default_model, budget, is_default)
  on conflict (organization_id, name) do nothing;
  perform public.set_ai_provider_api_key(c.id, 'sk-demo-not-a-real-openai-key-0001')
  from public.ai_provider_configs c where c.organization_id = acme and c.provider = 'openai' and not c.has_credentials;

  select w.id into hook from public.webhooks w where w.organization_id = acme and w.name = 'Acme CRM';
  if hook is null then
    hook := public.create_webhook(acme, 'Acme CRM', 'http://127.0.0.1:8787/webhooks',
      array['integration.connected', 'integration.disconnected', 'integration.credentials_updated'],
      'whsec_ZGVtby1zaWduaW5nLXNlY3JldC1ub3QtZm9yLXByb2R1Y3Rpb24=', '{"X-Source": "acme-demo"}');
  end if;
  perform set_config('role', 'postgres', true);
  -- One finished delivery for the log, beside whatever the inserts above queued.
  insert into public.webhook_deliveries (organization_id, webhook_id, event_id, event_type, payload, status, attempt,
                                         response_status, response_body, duration_ms, delivered_at, last_attempt_at)
  values (acme, hook, '0a000000-0000-4000-8000-00000000d001', 'webhook.test', '{"demo": true}', 'delivered', 1, 200,
          '{"received": true}', 42, now(), now())
  on conflict on constraint webhook_deliveries_webhook_event_key do nothing;
end $$;

-- ---------------------------------------------------------------------------------------------------------------
-- Workflows demo (issue 11). Acme's invoice approval: fetch the invoice, large amounts need an admin's sign-off
-- (with a cost centre on the form) before an AI summary and filing; small ones are paid at once. Carol (member)
-- started three: INV-1042 (approved by Bob; its AI summary is queued for a worker), INV-1043 (small: paid,
-- succeeded) and INV-1044 (waiting for an admin's decision). Also an inactive scheduled digest. Runs once: the
-- executions are keyed by idempotency keys and the block returns when they exist.
insert into public.workflows (id, organization_id, created_by, name, description, definition, trigger_type, trigger_config, is_active)
values
  ('0a000000-0000-4000-8000-00000000f101', '0a000000-0000-4000-8000-00000000ac3e', 'a11ce000-0000-4000-8000-000000000001',
   'Invoice approval', 'Large invoices need an admin''s sign-off before they are filed',
   '{"nodes": [
      {"id": "fetch", "type": "task", "name": "Fetch the invoice", "config": {"action": "http_request", "params": {"url": "https://erp.acme.test/invoices/{{input.invoice}}"}}},
      {"id": "large", "type": "condition", "name": "Over 1,000?", "config": {"expression": "$.nodes.fetch.amount > 1000"}},
      {"id": "sign_off", "type": "approval", "name": "Admin sign-off", "config": {"approval_type": "single", "approvers": {"role": "admin"}, "expires_in": "3 days", "escalate_after": "1 day", "escalate_to": {"role": "owner"}, "on_timeout": "reject", "title": "Approve a large invoice", "form_schema": {"type": "object", "required": ["cost_center"], "properties": {"cost_center": {"type": "string", "minLength": 3, "maxLength": 20}}}}},
      {"id": "summary", "type": "ai_agent", "name": "Summarise for the ledger", "config": {"model": "gpt-4o-mini", "system": "You write one-line ledger notes.", "prompt": "Invoice {{input.invoice}} over {{nodes.fetch.amount}}: summarise.", "max_tokens": 120, "temperature": 0.2, "max_retries": 2}},
      {"id": "pay", "type": "task", "name": "Pay at once", "config": {"action": "emit_event", "params": {"event_type": "invoice.paid"}}}],
    "edges": [{"from": "fetch", "to": "large"}, {"from": "large", "to": "sign_off", "when": true}, {"from": "large", "to": "pay", "when": false},
              {"from": "sign_off", "to": "summary"}]}',
   'manual', '{}', true),
  ('0a000000-0000-4000-8000-00000000f102', '0a000000-0000-4000-8000-00000000ac3e', 'b0b00000-0000-4000-8000-000000000002',
   'Weekday digest', 'Every weekday at 06:00 UTC (inactive in the demo)',
   '{"nodes": [{"id": "digest", "type": "task", "name": "Send the digest", "config": {"action": "emit_event", "params": {"event_type": "digest.requested"}}}], "edges": []}',
   'scheduled', '{"cron": "0 6 * * 1-5"}', false)
on conflict (id) do nothing;

do $$
declare
  invoice_approval constant uuid := '0a000000-0000-4000-8000-00000000f101';
  run record;
  request uuid;
begin
  if exists (select 1 from public.workflow_executions where workflow_id = invoice_approval) then
    return;
  end if;
  -- A second version: the approval gets a description.
  update public.workflows set definition = jsonb_set(definition, '{nodes,2,config,description}', '"Invoices over 1,000 need an admin"')
  where id = invoice_approval;

  perform set_config('request.jwt.claims', '{"sub": "ca201000-0000-4000-8000-000000000003", "role": "authenticated"}', true);
  perform public.start_workflow(invoice_approval, '{"invoice": "INV-1042"}', 'seed-INV-1042');
  perform public.start_workflow(invoice_approval, '{"invoice": "INV-1043"}', 'seed-INV-1043');
  perform public.start_workflow(invoice_approval, '{"invoice": "INV-1044"}', 'seed-INV-1044');
  perform set_config('request.jwt.claims', '', true);

  -- A worker's pass: fetch the three invoices, then pay the small one.
  for run in select r.id, r.lease_token, r.node_id, e.input ->> 'invoice' as invoice
             from public.claim_workflow_runs('seed-worker', 10) r join public.workflow_executions e on e.id = r.execution_id loop
    perform public.complete_workflow_run(run.id, run.lease_token,
      jsonb_build_object('invoice', run.invoice, 'amount', case run.invoice when 'INV-1043' then 320 when 'INV-1042' then 4200 else 9800 end));
  end loop;
  for run in select r.id, r.lease_token from public.claim_workflow_runs('seed-worker', 10) r where r.node_id = 'pay' loop
    perform public.complete_workflow_run(run.id, run.lease_token, '{"paid": true}');
  end loop;

  -- Bob approves INV-1042.
  select a.id into request from public.approval_requests a join public.workflow_executions e on e.id = a.execution_id
  where e.idempotency_key = 'seed-INV-1042';
  perform set_config('request.jwt.claims', '{"sub": "b0b00000-0000-4000-8000-000000000002", "role": "authenticated"}', true);
  perform public.decide_approval(request, 'approve', 'Matches the purchase order', '{"cost_center": "OPS-7"}');
  perform set_config('request.jwt.claims', '', true);
end;
$$;

-- ---------------------------------------------------------------------------------------------------------------
-- Workflows demo, AI tasks and triggers (issue 11, second part). A worker's pass over INV-1042's queued AI summary
-- (Acme's default provider, OpenAI gpt-4o-mini: its tokens and cost at list price); an event-triggered workflow that
-- announces every new GitHub connection, with one refusal in its log (an event 8 workflow-caused levels deep); a
-- webhook-triggered workflow whose signing secret (a placeholder) is set as Alice and kept in Vault. Runs once.
insert into public.workflows (id, organization_id, created_by, name, description, definition, trigger_type, trigger_config, is_active)
values
  ('0a000000-0000-4000-8000-00000000f103', '0a000000-0000-4000-8000-00000000ac3e', 'a11ce000-0000-4000-8000-000000000001',
   'Announce GitHub connections', 'Started by integration.connected events for GitHub',
   '{"nodes": [{"id": "announce", "type": "task", "name": "Announce", "config": {"action": "emit_event", "params": {"event_type": "workflow.event", "payload": {"announcement": "github connected"}}}}], "edges": []}',
   'event', '{"event_type": "integration.connected", "filter": {"provider": "github"}}', true),
  ('0a000000-0000-4000-8000-00000000f104', '0a000000-0000-4000-8000-00000000ac3e', 'a11ce000-0000-4000-8000-000000000001',
   'Order received', 'Started by the shop''s signed webhook: POST /functions/v1/workflow-webhook/0a000000-0000-4000-8000-00000000f104',
   '{"nodes": [{"id": "ack", "type": "task", "name": "Acknowledge", "config": {"action": "emit_event", "params": {"event_type": "workflow.event", "payload": {"order": "received"}}}}], "edges": []}',
   'webhook', '{}', true)
on conflict (id) do nothing;

do $$
declare
  acme constant uuid := '0a000000-0000-4000-8000-00000000ac3e';
  run record;
  task jsonb;
begin
  if exists (select 1 from public.ai_agent_tasks t where t.organization_id = acme) then
    return;
  end if;
  perform set_config('role', 'service_role', true);
  perform set_config('request.jwt.claims', '{"role": "service_role"}', true);
  for run in select r.id, r.lease_token from public.claim_workflow_runs('seed-worker', 10) r where r.node_type = 'ai_agent' loop
    task := public.begin_ai_agent_task(run.id, run.lease_token);
    if task ->> 'status' = 'ready' then
      perform public.complete_ai_agent_task((task ->> 'task_id')::uuid, run.lease_token,
        'INV-1042: 4,200 EUR for OPS-7, approved by Bob against the purchase order.', 'gpt-4o-mini-2024-07-18', 118, 21, 840);
    end if;
  end loop;
  perform set_config('role', 'postgres', true);
  perform set_config('request.jwt.claims', '', true);

  perform set_config('workflows.causation_depth', '8', true);
  perform private.emit_event(acme, 'integration.connected', '{"provider": "github", "display_name": "Acme GitHub (looped)"}',
                             '0a000000-0000-4000-8000-00000000e008');
  perform set_config('workflows.causation_depth', '', true);

  perform set_config('role', 'authenticated', true);
  perform set_config('request.jwt.claims', '{"sub": "a11ce000-0000-4000-8000-000000000001", "role": "authenticated"}', true);
  perform public.set_workflow_webhook_secret('0a000000-0000-4000-8000-00000000f104',
                                             'whsec_ZGVtby13b3JrZmxvdy13ZWJob29rLXNlY3JldC1ub3QtcmVhbA==');
  perform set_config('role', 'postgres', true);
  perform set_config('request.jwt.claims', '', true);
end;
$$;

-- ---- AI receptionist (issue 13): Globex's clinic receptionist "Ava" with an API key, two services, two doctors (Grace
-- is also a Globex member), their hours and a day off, a call whose transcript held a card number (stored redacted),
-- an SMS confirmation and two appointments next Monday. Times are local to Globex (America/Los_Angeles).
do $$
declare
  globex constant uuid := '0a000000-0000-4000-8000-0000000910be';
  agent uuid;
  checkup constant uuid := '0a000000-0000-4000-8000-0000c4ec0001';
  cleaning constant uuid := '0a000000-0000-4000-8000-0000c4ec0002';
  grace_staff constant uuid := '0a000000-0000-4000-8000-00005aff0001';
  ivan_staff constant uuid := '0a000000-0000-4000-8000-00005aff0002';
  call uuid;
  monday date := current_date + 7 + ((8 - extract(dow from current_date + 7)::integer) % 7);
begin
  if exists (select 1 from public.ai_agents a where a.organization_id = globex) then
    return;
  end if;
  perform set_config('request.jwt.claims', '{"sub": "e2140000-0000-4000-8000-000000000005", "role": "authenticated"}', true);
  select a.id into agent from public.create_ai_agent(globex, 'Ava', 'en-US', '+14155550123') a;
  perform public.create_ai_agent_api_key(agent, 'phone line');
  perform set_config('request.jwt.claims', '', true);
  update public.organizations set business_hours = business_hours || '{"tuesday": {"open": "08:00", "close": "18:00"},
    "wednesday": {"open": "08:00", "close": "18:00"}, "thursday": {"open": "08:00", "close": "18:00"}}' where id = globex;

  insert into public.services (id, organization_id, name, description, duration, price, currency, category, booking_buffer, min_notice_minutes, max_advance_booking_days)
  values (checkup, globex, 'Check-up', 'General check-up with a doctor', 30, 120, 'USD', 'consultation', 10, 120, 60),
         (cleaning, globex, 'Dental cleaning', 'Cleaning and polishing', 45, 90, 'USD', 'dental', 15, 240, 30)
  on conflict (id) do nothing;
  insert into public.staff (id, organization_id, user_id, name, email, phone, role)
  values (grace_staff, globex, '92ace000-0000-4000-8000-000000000007', 'Dr. Grace Gupta', 'grace@globex.test', '+14155550111', 'Physician'),
         (ivan_staff, globex, null, 'Ivan Ivanov', 'ivan@globex.test', '+14155550112', 'Hygienist')
  on conflict (id) do nothing;
  insert into public.staff_services (staff_id, service_id)
  values (grace_staff, checkup), (ivan_staff, cleaning), (ivan_staff, checkup) on conflict do nothing;
  insert into public.staff_working_hours (staff_id, weekday, start_time, end_time)
  select grace_staff, d, t.s, t.e from generate_series(1, 5) d, (values (time '08:00', time '12:00'), (time '13:00', time '18:00')) t(s, e)
  union all
  select ivan_staff, d, '10:00', '16:00' from generate_series(1, 4) d;
  insert into public.staff_time_off (staff_id, period, reason)
  values (ivan_staff, tstzrange(((monday + 2)::timestamp) at time zone 'America/Los_Angeles',
                                ((monday + 3)::timestamp) at time zone 'America/Los_Angeles'), 'Training day');
  insert into public.receptionist_settings (organization_id, caller_data_retention_days) values (globex, 60)
  on conflict (organization_id) do nothing;

  insert into public.conversations (agent_id, direction, status, caller_phone, caller_name, caller_email, sentiment_score,
                                    topics, summary, intent, outcome, transcript, started_at, ended_at)
  values (agent, 'inbound', 'completed', '+14155550199', 'Sam Patel', 'sam@example.com', 0.6, '["booking", "payment"]',
          'Booked a check-up; tried to pay by card 4242 4242 4242 4242 on the phone', 'book_appointment', 'booked',
          jsonb_build_array(
            jsonb_build_object('speaker', 'agent', 'text', 'Globex clinic, this is Ava. How can I help?', 'at', now() - interval '1 hour'),
            jsonb_build_object('speaker', 'caller', 'text', 'I need a check-up next Monday morning.', 'at', now() - interval '59 minutes'),
            jsonb_build_object('speaker', 'caller', 'text', 'Can I pay now? My card is 4242 4242 4242 4242.', 'at', now() - interval '58 minutes'),
            jsonb_build_object('speaker', 'agent', 'text', 'Payment is taken at the clinic. You are booked for 9:00.', 'at', now() - interval '57 minutes')),
          now() - interval '1 hour', now() - interval '55 minutes')
  returning id into call;
  insert into public.appointments (service_id, staff_id, conversation_id, client_name, client_phone, client_email, scheduled_at, idempotency_key, status)
  values (checkup, grace_staff, call, 'Sam Patel', '+14155550199', 'sam@example.com',
          (monday + time '09:00') at time zone 'America/Los_Angeles', 'seed-call-1', 'confirmed'),
         (cleaning, ivan_staff, null, 'Lee Wong', '+14155550177', null,
          (monday + time '11:00') at time zone 'America/Los_Angeles', 'seed-walk-in-1', 'scheduled');
  insert into public.messages (organization_id, conversation_id, appointment_id, direction, channel, from_number, to_number, body, provider, provider_message_id)
  select globex, call, a.id, 'outbound', 'sms', '+14155550123', '+14155550199',
         'Globex: your check-up is confirmed for Monday 9:00. Reply C to cancel.', 'twilio', 'SM-seed-0001'
  from public.appointments a where a.idempotency_key = 'seed-call-1';
  update public.messages set status = 'sent' where provider_message_id = 'SM-seed-0001';
  update public.messages set status = 'delivered' where provider_message_id = 'SM-seed-0001';
  insert into public.messages (organization_id, conversation_id, direction, channel, from_number, to_number, body)
  values (globex, call, 'inbound', 'sms', '+14155550199', '+14155550123', 'Thanks, see you Monday!');
end;
$$;
-- ---- end AI receptionist

-- ---- Work management (issue 12): Acme's organization-visible "Website relaunch" and private "Series A" projects,
-- their members (carol edits, dave views the private one), a task tree with a blocked-by chain, one blocked task,
-- and favourites.
insert into public.projects (id, organization_id, owner_id, title, description, visibility, color, emoji, estimated_hours, git_repository)
values
  ('0a000000-0000-4000-8000-0000970a0001', '0a000000-0000-4000-8000-00000000ac3e', 'a11ce000-0000-4000-8000-000000000001',
   'Website relaunch', 'New marketing site with the product tour', 'organization', '#3b82f6', '🚀', 120,
   'https://github.com/acme/website'),
  ('0a000000-0000-4000-8000-0000970a0002', '0a000000-0000-4000-8000-00000000ac3e', 'a11ce000-0000-4000-8000-000000000001',
   'Series A', 'Data room and investor updates', 'private', '#9333ea', '📈', 40, null)
on conflict (id) do nothing;
insert into public.project_members (project_id, user_id, role)
values
  ('0a000000-0000-4000-8000-0000970a0001', 'ca201000-0000-4000-8000-000000000003', 'editor'),
  ('0a000000-0000-4000-8000-0000970a0001', 'da7e0000-0000-4000-8000-000000000004', 'commenter'),
  ('0a000000-0000-4000-8000-0000970a0002', 'ca201000-0000-4000-8000-000000000003', 'editor'),
  ('0a000000-0000-4000-8000-0000970a0002', 'da7e0000-0000-4000-8000-000000000004', 'viewer')
on conflict do nothing;
insert into public.tasks (id, project_id, parent_task_id, title, description, status, priority, position, assignee_id,
                          estimated_minutes, tags, due_date, blocked_reason)
values
  ('0a000000-0000-4000-8000-00007a5c0001', '0a000000-0000-4000-8000-0000970a0001', null, 'Design the landing page',
   'Hero, product tour, pricing teaser', 'done', 'high', 1024, 'ca201000-0000-4000-8000-000000000003', 480, '{design}', null, null),
  ('0a000000-0000-4000-8000-00007a5c0002', '0a000000-0000-4000-8000-0000970a0001', null, 'Build the landing page',
   null, 'in_progress', 'high', 2048, 'ca201000-0000-4000-8000-000000000003', 960, '{frontend}', now() + interval '5 days', null),
  ('0a000000-0000-4000-8000-00007a5c0003', '0a000000-0000-4000-8000-0000970a0001', '0a000000-0000-4000-8000-00007a5c0002',
   'Hero section', null, 'todo', 'medium', 1024, null, 120, '{frontend}', null, null),
  ('0a000000-0000-4000-8000-00007a5c0004', '0a000000-0000-4000-8000-0000970a0001', null, 'Launch',
   null, 'todo', 'urgent', 3072, 'a11ce000-0000-4000-8000-000000000001', 60, '{release}', now() + interval '14 days', null),
  ('0a000000-0000-4000-8000-00007a5c0005', '0a000000-0000-4000-8000-0000970a0002', null, 'Prepare the data room',
   null, 'blocked', 'high', 1024, 'ca201000-0000-4000-8000-000000000003', 240, '{finance,legal}', null, 'Waiting for the audited accounts')
on conflict (id) do nothing;
insert into public.task_dependencies (task_id, blocked_by_task_id)
values
  ('0a000000-0000-4000-8000-00007a5c0002', '0a000000-0000-4000-8000-00007a5c0001'),
  ('0a000000-0000-4000-8000-00007a5c0004', '0a000000-0000-4000-8000-00007a5c0002')
on conflict do nothing;
insert into public.project_favorites (user_id, project_id)
values
  ('a11ce000-0000-4000-8000-000000000001', '0a000000-0000-4000-8000-0000970a0002'),
  ('ca201000-0000-4000-8000-000000000003', '0a000000-0000-4000-8000-0000970a0001')
on conflict do nothing;
-- ---- end work management

-- ---- Auditor (issue 14): Alice's usage of the last two weeks (VS Code on all 9 working days with focus, Slack on 4,
-- Notion on 1), her efficiency row and three quick wins (one completed a week ago). The usage rows are what
-- refresh_my_usage_analytics() computes from such focus events; the events themselves are not seeded, because the
-- privacy tests count every stored telemetry event. Run again, it adds nothing.
insert into public.app_allowlist (user_id, app_id, app_name, scope)
values ('a11ce000-0000-4000-8000-000000000001', 'slack', 'Slack', 'all'),
       ('a11ce000-0000-4000-8000-000000000001', 'notion', 'Notion', 'all')
on conflict (user_id, app_id) do nothing;

insert into public.quick_wins (id, user_id, title, description, category, impact, effort, estimated_time_saved, completed_at)
values
  ('0a000000-0000-4000-8000-0000a0d10001', 'a11ce000-0000-4000-8000-000000000001', 'Batch Slack notifications',
   'Check Slack at set times instead of on every ping', 'messaging', 'high', 'low', '2 hours', now() - interval '7 days'),
  ('0a000000-0000-4000-8000-0000a0d10002', 'a11ce000-0000-4000-8000-000000000001', 'Snippets for code review replies',
   'Save the five review comments you type most', 'automation', 'medium', 'low', '45 minutes', null),
  ('0a000000-0000-4000-8000-0000a0d10003', 'a11ce000-0000-4000-8000-000000000001', 'One Notion page per project',
   'Move scattered notes into the project page', 'documentation', 'medium', 'medium', '1 hour', null)
on conflict (id) do nothing;

insert into public.usage_analytics (user_id, platform, usage_percentage, status, active_days, focus_ms, period_start, period_end)
select 'a11ce000-0000-4000-8000-000000000001', v.platform, v.pct, v.status, v.days, v.ms, current_date - 13, current_date
from (values ('vscode', 100, 'optimal', 9, 64800000::bigint),
             ('slack', 44, 'needs_attention', 4, 4800000::bigint),
             ('notion', 11, 'underutilized', 1, 1800000::bigint)) as v (platform, pct, status, days, ms)
where not exists (select 1 from public.usage_analytics u where u.user_id = 'a11ce000-0000-4000-8000-000000000001');

-- Score: (100 * 18 h + 44 * 1.33 h + 11 * 0.5 h) / 19.83 h = 94; time saved: 2 h a week for the 8 days since the
-- Slack win was completed = 2.29 h.
insert into public.efficiency_metrics (user_id, efficiency_score, time_saved_hours, active_tools_count, active_days,
                                       period_start, period_end)
select 'a11ce000-0000-4000-8000-000000000001', 94, 2.29, 3, 9, current_date - 13, current_date
where not exists (select 1 from public.efficiency_metrics e where e.user_id = 'a11ce000-0000-4000-8000-000000000001');
-- ---- end Auditor
-- ---- Work management, time (issue 12, 54-work-time.sql): carol's and dave's time on the website tasks (one billable,
-- one manual), two AI runs of the hero section (the first failed), which roll up into the tasks and the project.
insert into public.time_entries (id, task_id, user_id, start_time, end_time, description, is_manual, is_billable, hourly_rate)
values
  ('0a000000-0000-4000-8000-0000713e0001', '0a000000-0000-4000-8000-00007a5c0001', 'ca201000-0000-4000-8000-000000000003',
   '2026-11-20 09:00Z', '2026-11-20 12:30Z', 'Wireframes and review', false, true, 95),
  ('0a000000-0000-4000-8000-0000713e0002', '0a000000-0000-4000-8000-00007a5c0003', 'ca201000-0000-4000-8000-000000000003',
   '2026-11-23 13:00Z', '2026-11-23 15:15Z', 'Hero markup', false, false, null),
  ('0a000000-0000-4000-8000-0000713e0003', '0a000000-0000-4000-8000-00007a5c0002', 'da7e0000-0000-4000-8000-000000000004',
   '2026-11-24 10:00Z', '2026-11-24 10:45Z', 'Copy review call', true, false, null)
on conflict (id) do nothing;
insert into public.task_executions (id, task_id, started_by, prompt, response, ai_provider, model, temperature, max_tokens,
                                    tokens_used, duration, cost, status, error_message, retry_count, rating, user_feedback)
values
  ('0a000000-0000-4000-8000-0000e8ec0001', '0a000000-0000-4000-8000-00007a5c0003', 'ca201000-0000-4000-8000-000000000003',
   'Write the hero section copy for the product tour', null, 'openai', 'gpt-4o-mini', 0.7, 800,
   '{"prompt_tokens": 220, "completion_tokens": 0, "total_tokens": 220}', 30000, 0.000033, 'failed', 'request timed out', 0, null, null),
  ('0a000000-0000-4000-8000-0000e8ec0002', '0a000000-0000-4000-8000-00007a5c0003', 'ca201000-0000-4000-8000-000000000003',
   'Write the hero section copy for the product tour', 'Ship AI workflows your whole team trusts.', 'openai', 'gpt-4o-mini',
   0.7, 800, '{"prompt_tokens": 220, "completion_tokens": 180, "total_tokens": 400}', 4200, 0.000141, 'success', null, 1, 4,
   'Good, shorten the subtitle')
on conflict (id) do nothing;
-- ---- end work management, time

-- ---- Work management, skills (issue 12, 55-work-skills.sql): Acme's private "Landing page copy" skill and public,
-- official "Code review" skill (marked by the platform), their tags, a review from Globex's Grace, a suggestion on
-- the hero section, and Frank's fork of the public skill into Globex.
insert into public.skills (id, organization_id, author_id, name, description, prompt, category, ai_provider, input_schema,
                           output_schema, is_public, is_official, changelog)
values
  ('0a000000-0000-4000-8000-00005c110001', '0a000000-0000-4000-8000-00000000ac3e', 'ca201000-0000-4000-8000-000000000003',
   'Landing page copy', 'Writes a hero headline and subtitle in Acme''s voice',
   'Write a headline and a subtitle for {{product}} aimed at {{audience}}.', 'writing', 'openai',
   '{"type": "object", "required": ["product"], "properties": {"product": {"type": "string"}, "audience": {"type": "string"}}}',
   '{"type": "object", "properties": {"headline": {"type": "string"}, "subtitle": {"type": "string"}}}', false, false, null),
  ('0a000000-0000-4000-8000-00005c110002', '0a000000-0000-4000-8000-00000000ac3e', 'a11ce000-0000-4000-8000-000000000001',
   'Code review', 'Reviews a diff for bugs, security issues and style', 'Review this diff and list problems by severity: {{diff}}',
   'development', 'anthropic', '{"type": "object", "properties": {"diff": {"type": "string"}}}', '{"type": "array"}',
   true, true, 'First public version')
on conflict (id) do nothing;
insert into public.skill_tags (skill_id, tag)
values
  ('0a000000-0000-4000-8000-00005c110001', 'copywriting'),
  ('0a000000-0000-4000-8000-00005c110002', 'review'),
  ('0a000000-0000-4000-8000-00005c110002', 'git')
on conflict do nothing;
insert into public.skill_reviews (id, skill_id, user_id, rating, comment)
values ('0a000000-0000-4000-8000-00005c1e0001', '0a000000-0000-4000-8000-00005c110002', '92ace000-0000-4000-8000-000000000007',
        5, 'Caught a SQL injection on day one')
on conflict do nothing;
insert into public.task_suggested_skills (task_id, skill_id)
values ('0a000000-0000-4000-8000-00007a5c0003', '0a000000-0000-4000-8000-00005c110001')
on conflict do nothing;
insert into public.skills (id, organization_id, author_id, forked_from_id, name, description, prompt, category, changelog)
values ('0a000000-0000-4000-8000-00005c110003', '0a000000-0000-4000-8000-0000000910be', 'f2a40000-0000-4000-8000-000000000006',
        '0a000000-0000-4000-8000-00005c110002', 'Code review', 'Reviews a diff for bugs, security issues and style',
        'Review this diff and list problems by severity: {{diff}}', 'development', 'Forked from Code review (version 1)')
on conflict (id) do nothing;
-- ---- end work management, skills

-- ---- Work management, templates (issue 12, 56-work-templates.sql): Acme's public, official "Marketing site" template
-- (tasks with subtasks and suggested skills) and one project made from it with create_project_from_template() as
-- alice (the function reads the caller from the JWT claims, set for this statement only). Runs once.
insert into public.templates (id, organization_id, author_id, name, description, category, tags, project_structure, is_public, is_official)
values
  ('0a000000-0000-4000-8000-00007e3b0001', '0a000000-0000-4000-8000-00000000ac3e', 'a11ce000-0000-4000-8000-000000000001',
   'Marketing site', 'Plan, write and ship a marketing site', 'marketing', '{website,launch}',
   '{"tasks": [{"title": "Write the copy", "priority": "high", "estimatedMinutes": 240, "skills": ["Landing page copy"],
                "subtasks": [{"title": "Hero"}, {"title": "Pricing"}]},
               {"title": "Build the pages", "estimatedMinutes": 960, "skills": ["Code review"]},
               {"title": "Launch", "priority": "urgent", "estimatedMinutes": 60}],
     "skills": [],
     "automations": [{"name": "Tell the team", "trigger": {"type": "status_change", "to": "done"}, "actions": [{"type": "notify"}]}]}',
   true, true)
on conflict (id) do nothing;
do $$
begin
  if not exists (select 1 from public.projects where template_id = '0a000000-0000-4000-8000-00007e3b0001') then
    perform set_config('request.jwt.claims', '{"sub": "a11ce000-0000-4000-8000-000000000001", "role": "authenticated"}', true);
    perform public.create_project_from_template('0a000000-0000-4000-8000-00007e3b0001', '0a000000-0000-4000-8000-00000000ac3e', 'Docs site');
    perform set_config('request.jwt.claims', '', true);
  end if;
end;
$$;
-- ---- end work management, templates
-- ---- Work collaboration (issue 12): Dave and Alice watch the landing-page build, its commit, Carol's comment that
-- mentions Alice, Dave's reply with a reaction; the triggers write the notifications (Alice's mention, Dave's
-- comment) and the activities; Alice has read hers.
insert into public.task_watchers (task_id, user_id)
values
  ('0a000000-0000-4000-8000-00007a5c0002', 'da7e0000-0000-4000-8000-000000000004'),
  ('0a000000-0000-4000-8000-00007a5c0002', 'a11ce000-0000-4000-8000-000000000001'),
  ('0a000000-0000-4000-8000-00007a5c0005', 'a11ce000-0000-4000-8000-000000000001')
on conflict do nothing;
insert into public.task_commits (task_id, sha, message, author, committed_at, url)
values ('0a000000-0000-4000-8000-00007a5c0002', '3f786850e387550fdab836ed7e6dc881de23001b', 'Add the hero section skeleton',
        'Carol Chen <carol@acme.test>', now() - interval '1 day',
        'https://github.com/acme/website/commit/3f786850e387550fdab836ed7e6dc881de23001b')
on conflict do nothing;
insert into public.comments (id, task_id, user_id, parent_comment_id, content)
values
  ('0a000000-0000-4000-8000-0000c0e70001', '0a000000-0000-4000-8000-00007a5c0002', 'ca201000-0000-4000-8000-000000000003', null,
   'The hero is in. @alice@acme.test can you review the copy?'),
  ('0a000000-0000-4000-8000-0000c0e70002', '0a000000-0000-4000-8000-00007a5c0002', 'da7e0000-0000-4000-8000-000000000004',
   '0a000000-0000-4000-8000-0000c0e70001', 'Looks **great** on mobile too.')
on conflict (id) do nothing;
insert into public.comment_reactions (comment_id, user_id, emoji)
values ('0a000000-0000-4000-8000-0000c0e70001', 'da7e0000-0000-4000-8000-000000000004', '🎉')
on conflict do nothing;
update public.notifications set read_at = now()
where user_id = 'a11ce000-0000-4000-8000-000000000001' and type = 'mention' and read_at is null;
-- ---- end work collaboration
-- ---- Work management automations (issue 12): the private "Series A" project's automation (a new task there gets a
-- "Review: ..." subtask assigned to Alice, through a create_task node) and a "Website relaunch" webhook on its task
-- events. One new data-room task starts the automation (a worker under `npm start` creates the review subtask), and
-- a status change in the Website project queues a delivery.
insert into public.workflows (id, organization_id, created_by, project_id, name, description, definition, trigger_type, trigger_config)
values
  ('0a000000-0000-4000-8000-00000000f201', '0a000000-0000-4000-8000-00000000ac3e', 'a11ce000-0000-4000-8000-000000000001',
   '0a000000-0000-4000-8000-0000970a0002', 'Series A: review new tasks', 'Every task someone adds gets a review subtask for Alice',
   '{"nodes": [{"id": "review", "type": "task", "name": "Add a review subtask", "config": {"action": "create_task", "params": {
       "title": "Review: {{input.data.title}}", "parent_task_id": "{{input.data.task_id}}",
       "assignee_id": "a11ce000-0000-4000-8000-000000000001", "priority": "high", "tags": ["review"]}}}], "edges": []}',
   'event', '{"event_type": "task.created", "filter": {"workflow_run_id": null}}')
on conflict (id) do nothing;
do $$
begin
  perform set_config('role', 'authenticated', true);
  perform set_config('request.jwt.claims', '{"sub": "a11ce000-0000-4000-8000-000000000001", "role": "authenticated"}', true);
  if not exists (select 1 from public.webhooks w where w.project_id = '0a000000-0000-4000-8000-0000970a0001' and w.name = 'Website tasks') then
    perform public.create_webhook('0a000000-0000-4000-8000-00000000ac3e', 'Website tasks', 'http://127.0.0.1:8787/webhooks',
      array['task.created', 'task.status_changed', 'task.assigned'],
      'whsec_ZGVtby13ZWJzaXRlLXRhc2tzLXNlY3JldC1ub3QtcmVhbA==', '{}', '0a000000-0000-4000-8000-0000970a0001');
  end if;
  perform set_config('role', 'postgres', true);
end $$;
insert into public.tasks (id, project_id, title, priority, assignee_id, tags)
values ('0a000000-0000-4000-8000-00007a5c0006', '0a000000-0000-4000-8000-0000970a0002', 'Draft the investor update', 'medium',
        'ca201000-0000-4000-8000-000000000003', '{finance}')
on conflict (id) do nothing;
-- Carol starts the hero section: a task.status_changed delivery for the Website webhook.
update public.tasks set status = 'in_progress' where id = '0a000000-0000-4000-8000-00007a5c0003' and status = 'todo';
-- ---- end work management automations
-- ---- Growth analytics (issue 14): two weeks of Acme's web shop as the analytics pipeline sends them (through
-- upsert_events and upsert_spend as the service role would, so keys, redaction, cohorts and attribution are real):
-- 40 visitors, sessions from Google ads, a newsletter and direct visits, page views, carts, orders (one note with an
-- e-mail address, stored redacted) and a refund; Carol signs in and buys too. Then the rollups of those days. Event
-- ids are fixed, so running it again stores nothing new.
select public.upsert_events((
  select jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
    'organization_id', '0a000000-0000-4000-8000-00000000ac3e',
    'event_id', '0a000000-0000-4000-8000-' || lpad(to_hex(v * 16 + k), 12, '0'),
    -- From yesterday back: a time later today would be in the future before the afternoon, and upsert_events refuses it.
    'occurred_at', date_trunc('day', now()) - make_interval(days => 1 + v % 14) + make_interval(hours => 8 + v % 10, mins => k * 3),
    'event_name', (array['session.started', 'page.viewed', 'page.viewed', 'cart.added', 'order.completed', 'order.refunded'])[k + 1],
    'category', 'web',
    'user_id', case when v = 7 then 'ca201000-0000-4000-8000-000000000003' end,
    'anonymous_id', 'visitor-' || v,
    'session_id', 'session-' || v,
    'ip_address', '203.0.113.' || (10 + v),
    'user_agent', 'Mozilla/5.0 (demo)',
    'props', case
      when k = 0 and v % 3 = 0 then jsonb_build_object('utm_source', 'google', 'utm_medium', 'cpc', 'utm_campaign', 'winter-sale', 'gclid', 'demo-' || v)
      when k = 0 and v % 3 = 1 then jsonb_build_object('utm_source', 'newsletter', 'utm_medium', 'email', 'utm_campaign', 'december')
      when k = 0 then '{}'::jsonb
      when k in (1, 2) then jsonb_build_object('path', (array['/', '/shoes', '/checkout'])[k + 1], 'referrer', 'https://www.google.com/')
      when k = 3 then jsonb_build_object('sku', 'BOOT-' || (v % 5))
      when k = 4 then jsonb_build_object('amount_cents', 4900 + v * 100, 'currency', 'usd', 'cost_cents', 2000,
                                         'note', case when v = 4 then 'gift wrap, call me at jan.kowalski@example.com' end)
      else jsonb_build_object('amount_cents', 4900, 'currency', 'usd')
    end)))
  from generate_series(0, 39) v, generate_series(0, 5) k
  where k <= 3 or (k = 4 and v % 4 = 0) or (k = 5 and v = 8)));
select public.upsert_spend((
  select jsonb_agg(jsonb_build_object('organization_id', '0a000000-0000-4000-8000-00000000ac3e', 'platform', 'google',
                                      'campaign_id', 'winter-sale', 'adset_id', 'boots', 'date', (current_date - d)::text,
                                      'spend_cents', 2500 + d * 50, 'clicks', 40 + d, 'impressions', 2000, 'conversions', 1))
  from generate_series(0, 13) d));
select public.recompute_metrics_daily(current_date - 14, current_date, '0a000000-0000-4000-8000-00000000ac3e');
-- ---- end Growth analytics

-- ---- Work management, search (issue 12, 58-work-search.sql): Acme names its text-search configuration explicitly
-- (english is also the default); every project, task, comment, skill and template above is already indexed by trigger.
update public.organizations set settings = settings || '{"text_search_config": "english"}'
where id = '0a000000-0000-4000-8000-00000000ac3e';
-- ---- end work management, search
