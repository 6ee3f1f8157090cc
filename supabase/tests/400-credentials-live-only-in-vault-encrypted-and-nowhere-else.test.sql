-- Vault (the platform's, or the shim's stand-in) holds ciphertext only and answers to no API role; every credential
-- written through the connector RPCs is in Vault and nowhere else: after planting known secrets through each RPC (and
-- reading them back through the audited service functions), no text or JSON column of any table outside `vault`
-- contains one, scanned as the superuser. Deleting a row (or clearing its credentials) deletes its secret at once.
begin;
select plan(26);

-- Vault's API, as Supabase documents it.
select has_table('vault', 'secrets', 'vault.secrets exists');
select columns_are('vault', 'secrets', array['id', 'name', 'description', 'secret', 'key_id', 'nonce', 'created_at', 'updated_at'],
  'vault.secrets has Vault''s columns');
select has_view('vault', 'decrypted_secrets', 'vault.decrypted_secrets exists');
select function_returns('vault', 'create_secret', array['text', 'text', 'text', 'uuid'], 'uuid',
  'vault.create_secret(new_secret, new_name, new_description, new_key_id) returns the secret id');
select function_returns('vault', 'update_secret', array['uuid', 'text', 'text', 'text', 'uuid'], 'void',
  'vault.update_secret(secret_id, new_secret, new_name, new_description, new_key_id) returns nothing');

select vault.create_secret('plain-vault-value-0123456789', 'test_vault_probe', 'a probe') as probe_id \gset
select ok((select secret not like '%plain-vault-value%' and secret <> 'plain-vault-value-0123456789'
           from vault.secrets where id = :'probe_id'), 'vault.secrets stores ciphertext, not the plaintext');
select is((select decrypted_secret from vault.decrypted_secrets where id = :'probe_id'), 'plain-vault-value-0123456789',
  'vault.decrypted_secrets decrypts it');
select vault.update_secret(:'probe_id', 'second-vault-value-9876543210', null, 'changed');
select results_eq($$select decrypted_secret, name, description from vault.decrypted_secrets where name = 'test_vault_probe'$$,
  $$values ('second-vault-value-9876543210', 'test_vault_probe', 'changed')$$,
  'update_secret replaces the value and keeps what it is not given');
select vault.create_secret('another-value-for-a-moved-ciphertext', 'test_vault_other') as other_id \gset
update vault.secrets set secret = (select secret from vault.secrets where id = :'other_id') where id = :'probe_id';
select throws_ok($$select decrypted_secret from vault.decrypted_secrets where name = 'test_vault_probe'$$, '39000', null,
  'a ciphertext moved to another secret fails authentication instead of decrypting');
delete from vault.secrets where name in ('test_vault_probe', 'test_vault_other');

select ok(not has_schema_privilege('anon', 'vault', 'usage') and not has_schema_privilege('authenticated', 'vault', 'usage')
          and not has_schema_privilege('service_role', 'vault', 'usage'),
  'no API role may use the vault schema');
select tests.authenticate_as_service_role();
select throws_ok($$select decrypted_secret from vault.decrypted_secrets$$, '42501', null,
  'the service role cannot read vault.decrypted_secrets');
select throws_ok($$select vault.create_secret('x')$$, '42501', null, 'the service role cannot call vault.create_secret');
select tests.clear_authentication();

-- Deliveries queued by anything else (demo data, earlier runs) wait until after this test, which rolls back.
update public.webhook_deliveries set next_attempt_at = now() + interval '1 day' where status in ('pending', 'failed');
-- Plant known secrets through every RPC that takes one.
select tests.create_user(h) from unnest(array['v_owner', 'v_leaver']) as h;
select tests.create_organization('v_owner', 'test-vault');
create temporary table planted (label text, needle text) on commit drop;
insert into planted values
  ('integration api key',      'plantedApiKeyZx81Q0rT5uYw3e'),
  ('oauth access token',       'plantedAccessTokQm27Lp9Vv4sN'),
  ('oauth refresh token',      'plantedRefreshTokR6d3Hk0Xa8j'),
  ('basic password',           'plantedPasswordW4n9Cz2Gf7bT'),
  ('ai provider key',          'plantedAiKeyP3s8Nw1Jq6Ly0Ukm'),
  ('ai provider replaced key', 'plantedAiKeyTwoF5g2Rb7Mx4Ze9'),
  ('webhook signing secret',   'cGxhbnRlZFdlYmhvb2tTZWNyZXQwMDE='),
  ('webhook rotated secret',   'cGxhbnRlZFJvdGF0ZWRTZWNyZXQwMDI='),
  ('vault root key',           encode(vault._root_key(), 'hex'));
grant select on planted to authenticated, service_role;

select tests.authenticate_as('v_owner');
insert into public.integrations (organization_id, provider, display_name)
values (tests.org_id('test-vault'), 'linear', 'Linear'), (tests.org_id('test-vault'), 'slack', 'Slack');
insert into public.integrations (organization_id, provider, display_name, settings)
values (tests.org_id('test-vault'), 'jira', 'Jira', '{"site_url": "https://acme.atlassian.test"}');
select lives_ok(format($$select public.set_integration_credentials((select id from public.integrations where provider = 'linear' and organization_id = tests.org_id('test-vault')),
  jsonb_build_object('api_key', 'lin_' || %L))$$, (select needle from planted where label = 'integration api key')),
  'the owner sets an api_key integration''s key');
select lives_ok(format($$select public.set_integration_credentials((select id from public.integrations where provider = 'slack' and organization_id = tests.org_id('test-vault')),
  jsonb_build_object('access_token', %L, 'refresh_token', %L), now() + interval '1 hour')$$,
  (select needle from planted where label = 'oauth access token'), (select needle from planted where label = 'oauth refresh token')),
  'the owner sets an oauth2 integration''s tokens');
select lives_ok(format($$select public.set_integration_credentials((select id from public.integrations where provider = 'jira' and organization_id = tests.org_id('test-vault')),
  jsonb_build_object('username', 'bot@acme.test', 'password', %L))$$, (select needle from planted where label = 'basic password')),
  'the owner sets a basic integration''s password');
insert into public.ai_provider_configs (organization_id, name, provider, default_model, is_default)
values (tests.org_id('test-vault'), 'OpenAI', 'openai', 'gpt-4o-mini', true);
select public.set_ai_provider_api_key((select id from public.ai_provider_configs where name = 'OpenAI' and organization_id = tests.org_id('test-vault')),
  'sk-' || (select needle from planted where label = 'ai provider key'));
select public.set_ai_provider_api_key((select id from public.ai_provider_configs where name = 'OpenAI' and organization_id = tests.org_id('test-vault')),
  'sk-' || (select needle from planted where label = 'ai provider replaced key'));
select public.create_webhook(tests.org_id('test-vault'), 'Audit hook', 'https://hooks.example.com/in',
  array['webhook.test', 'integration.credentials_updated'], 'whsec_' || (select needle from planted where label = 'webhook signing secret')) as hook_id \gset
select public.set_webhook_signing_secret(:'hook_id', 'whsec_' || (select needle from planted where label = 'webhook rotated secret'));
select public.send_test_webhook(:'hook_id');
select results_eq($$select has_credentials, credentials_hint from public.integrations order by provider$$,
  $$values (true, null::text), (true, right('lin_plantedApiKeyZx81Q0rT5uYw3e', 4)), (true, null::text)$$,
  'the API shows that credentials exist and an API key''s last four characters, nothing more');

-- The service side reads them through the audited functions (and the dispatcher's claim).
select tests.authenticate_as_service_role();
select is(public.integration_credentials_for_sync((select id from public.integrations where provider = 'slack' and organization_id = tests.org_id('test-vault')), 'secret scan test') ->> 'refresh_token',
  (select needle from planted where label = 'oauth refresh token'), 'the sync function returns the stored credentials');
select is(public.ai_provider_api_key_for_request((select id from public.ai_provider_configs where name = 'OpenAI' and organization_id = tests.org_id('test-vault')), 'secret scan test'),
  'sk-' || (select needle from planted where label = 'ai provider replaced key'), 'the AI key function returns the current key');
select is((select signing_secret from public.claim_webhook_deliveries(10, 30) where webhook_id = :'hook_id' limit 1),
  'whsec_' || (select needle from planted where label = 'webhook rotated secret'), 'the dispatcher''s claim returns the rotated signing secret');
select tests.clear_authentication();

-- Now scan every string, JSON and array column of every table outside vault (and outside this session's scratch).
create temporary table leaks (location text, label text) on commit drop;
create temporary table scanned (location text) on commit drop;
do $$
declare
  col record;
  hit text;
begin
  for col in
    select n.nspname, c.relname, a.attname
    from pg_attribute a
    join pg_class c on c.oid = a.attrelid
    join pg_namespace n on n.oid = c.relnamespace
    join pg_type t on t.oid = a.atttypid
    left join pg_type base on base.oid = t.typbasetype
    where c.relkind in ('r', 'p', 'm') and a.attnum > 0 and not a.attisdropped
      and n.nspname not in ('vault', 'pg_toast') and n.nspname !~ '^pg_(toast_)?temp_'
      and (coalesce(base.typcategory, t.typcategory) in ('S', 'A') or coalesce(base.oid, t.oid) in ('json'::regtype, 'jsonb'::regtype))
  loop
    insert into scanned values (format('%s.%s.%s', col.nspname, col.relname, col.attname));
    for hit in execute format('select p.label from %I.%I x cross join pg_temp.planted p where strpos(x.%I::text, p.needle) > 0',
                              col.nspname, col.relname, col.attname)
    loop
      insert into leaks values (format('%s.%s.%s', col.nspname, col.relname, col.attname), hit);
    end loop;
  end loop;
end $$;
select is((select count(*)::integer from scanned where location in ('public.integrations.settings', 'public.integrations.last_error',
  'public.webhooks.headers', 'public.webhooks.url', 'public.webhook_deliveries.payload', 'public.audit_logs.metadata',
  'private.audit_logs_default.metadata', 'public.ai_provider_configs.base_url', 'cron.job.command', 'auth.users.raw_user_meta_data',
  'public.workflow_executions.input')),
  11, 'the scan covers text, domain and JSON columns (JSON domains too) of the connector tables, the audit log, workflow inputs, cron and auth');
select is_empty($$select location || ': ' || label from leaks$$,
  'no column of any table outside vault holds a planted credential or the Vault root key');
select is((select count(*)::integer from public.audit_logs where action = 'credential_read' and organization_id = tests.org_id('test-vault')),
  3, 'each service-side read left a credential_read audit entry');
select results_eq($$select resource, metadata ->> 'purpose', metadata ->> 'reason' from public.audit_logs
                    where action = 'credential_read' and organization_id = tests.org_id('test-vault') order by resource$$,
  $$values ('ai_provider_configs', 'ai_request', 'secret scan test'), ('integrations', 'integration_sync', 'secret scan test'),
           ('webhooks', 'webhook_dispatch', 'sign claimed deliveries')$$,
  'the audit entries say which kind of row was read, for what and why');

-- Deleting goes with the secret, in the same transaction.
create temporary table secret_ids on commit drop as
select 'integration' as kind, credentials_secret_id as id from public.integrations where organization_id = tests.org_id('test-vault')
union all select 'ai', credentials_secret_id from public.ai_provider_configs where organization_id = tests.org_id('test-vault')
union all select 'webhook', credentials_secret_id from public.webhooks where organization_id = tests.org_id('test-vault');
select tests.authenticate_as('v_owner');
select public.clear_integration_credentials((select id from public.integrations where provider = 'jira' and organization_id = tests.org_id('test-vault')));
delete from public.integrations where provider = 'linear' and organization_id = tests.org_id('test-vault');
delete from public.ai_provider_configs where organization_id = tests.org_id('test-vault');
delete from public.webhooks where id = :'hook_id';
select tests.clear_authentication();
select is((select count(*)::integer from vault.secrets where id in (select id from secret_ids)), 1,
  'clearing credentials and deleting an integration, an AI provider configuration and a webhook deleted their secrets (the Slack one remains)');
delete from public.organizations where id = tests.org_id('test-vault');
select is((select count(*)::integer from vault.secrets where id in (select id from secret_ids)), 0,
  'deleting the organization deletes the secrets of what it still had');

-- A personal integration goes with its user's account (the personal organization cascades).
select tests.authenticate_as('v_leaver');
insert into public.integrations (organization_id, provider, display_name)
values ((select id from public.organizations where personal_user_id = tests.user_id('v_leaver')), 'asana', 'My Asana');
select public.set_integration_credentials((select id from public.integrations where provider = 'asana'), '{"api_key": "asana-personal-key-0001"}');
select tests.clear_authentication();
select (select credentials_secret_id from public.integrations where provider = 'asana' and created_by = tests.user_id('v_leaver')) as leaver_secret \gset
delete from auth.users where id = tests.user_id('v_leaver');
select is_empty(format('select 1 from vault.secrets where id = %L', :'leaver_secret'),
  'erasing an account deletes the credentials of its personal integrations');

select * from finish();
rollback;
