-- The AI provider matrix: members see their organization's provider settings (never a key), ai_agents.manage holders
-- (owner, admin) change them and set keys, at most one default per organization, and the service role reads a key only
-- through the audited function.
begin;
select plan(33);

select tests.create_user(h) from unnest(array['a_owner', 'a_admin', 'a_member', 'a_viewer', 'a_stranger']) as h;
select tests.create_organization('a_owner', 'test-ai');
select tests.add_member(tests.org_id('test-ai'), 'a_admin', 'admin');
select tests.add_member(tests.org_id('test-ai'), 'a_member', 'member');
select tests.add_member(tests.org_id('test-ai'), 'a_viewer', 'viewer');
select tests.authenticate_as('a_owner');
insert into public.ai_provider_configs (organization_id, name, provider, default_model, monthly_budget_usd, is_default)
values (tests.org_id('test-ai'), 'Anthropic', 'anthropic', 'claude-sonnet-4', 250.00, true);
select public.set_ai_provider_api_key((select id from public.ai_provider_configs where name = 'Anthropic'), 'sk-ant-matrix-key-000000WXYZ');
select tests.clear_authentication();

create temporary table probe (sql text) on commit drop;
insert into probe values ($$select count(*)::integer from public.ai_provider_configs where organization_id = tests.org_id('test-ai')$$);
grant select on probe to authenticated;

select tests.authenticate_as('a_owner');
select results_eq((select sql from probe), $$values (1)$$, 'the owner sees the configuration');
select results_eq($$select has_credentials, credentials_hint from public.ai_provider_configs$$, $$values (true, 'WXYZ')$$,
  'the API shows that a key is set and its last four characters');
select tests.authenticate_as('a_admin');
select results_eq((select sql from probe), $$values (1)$$, 'an admin sees it');
select tests.authenticate_as('a_member');
select results_eq((select sql from probe), $$values (1)$$, 'a member sees it');
select tests.authenticate_as('a_viewer');
select results_eq((select sql from probe), $$values (1)$$, 'a viewer sees it');
select throws_ok($$select credentials_secret_id from public.ai_provider_configs$$, '42501', null,
  'no client may select the Vault secret id');
select tests.authenticate_as('a_stranger');
select results_eq((select sql from probe), $$values (0)$$, 'a stranger sees nothing');
select throws_ok(format($$select public.set_ai_provider_api_key(%L, 'sk-stranger-key-0001')$$,
                        (select id from public.ai_provider_configs where name = 'Anthropic')), 'P0002', null,
  'a stranger cannot set a key: the configuration does not exist for them');
select throws_ok($$insert into public.ai_provider_configs (organization_id, name, provider, default_model)
                   values (tests.org_id('test-ai'), 'Spy', 'openai', 'gpt-4o')$$, '42501', null, 'a stranger cannot add one');

select tests.authenticate_as_anon();
select throws_ok($$select 1 from public.ai_provider_configs$$, '42501', null, 'anon cannot read AI provider settings');
select throws_ok($$select public.set_ai_provider_api_key(gen_random_uuid(), 'sk-anon-key-0001')$$, '42501', null,
  'anon cannot call set_ai_provider_api_key');
select throws_ok($$select public.ai_provider_api_key_for_request(gen_random_uuid(), 'x')$$, '42501', null,
  'anon cannot call ai_provider_api_key_for_request');
select throws_ok($$select public.clear_ai_provider_api_key(gen_random_uuid())$$, '42501', null,
  'anon cannot call clear_ai_provider_api_key');

select tests.authenticate_as('a_viewer');
select is(tests.rows_affected($$update public.ai_provider_configs set default_model = 'x'$$), 0::bigint, 'a viewer cannot edit');
select tests.authenticate_as('a_member');
select is(tests.rows_affected($$update public.ai_provider_configs set monthly_budget_usd = 1$$), 0::bigint, 'a member cannot edit');
select throws_ok($$insert into public.ai_provider_configs (organization_id, name, provider, default_model)
                   values (tests.org_id('test-ai'), 'Member', 'openai', 'gpt-4o')$$, '42501', null, 'a member cannot add one');
select throws_ok(format($$select public.set_ai_provider_api_key(%L, 'sk-member-key-0001')$$,
                        (select id from public.ai_provider_configs where name = 'Anthropic')), '42501', null,
  'a member cannot set a key');
select throws_ok(format($$select public.clear_ai_provider_api_key(%L)$$,
                        (select id from public.ai_provider_configs where name = 'Anthropic')), '42501', null,
  'a member cannot clear a key');
select throws_ok(format($$select public.ai_provider_api_key_for_request(%L, 'curious')$$,
                        (select id from public.ai_provider_configs where name = 'Anthropic')), '42501', null,
  'a member cannot read a key');

select tests.authenticate_as('a_admin');
select lives_ok($$insert into public.ai_provider_configs (organization_id, name, provider, base_url, default_model)
                  values (tests.org_id('test-ai'), 'Local', 'local', 'http://ollama.internal:11434', 'llama3')$$,
  'an admin adds a local provider');
select throws_ok($$update public.ai_provider_configs set is_default = true where name = 'Local'$$, '23505', null,
  'a second default in one organization is refused');
update public.ai_provider_configs set is_default = false where name = 'Anthropic';
select lives_ok($$update public.ai_provider_configs set is_default = true where name = 'Local'$$,
  'once the old default is cleared, another configuration becomes the default');
select throws_ok($$insert into public.ai_provider_configs (organization_id, name, provider, default_model)
                   values (tests.org_id('test-ai'), 'Nameless local', 'local', 'llama3')$$, '23514', null,
  'a local provider needs a base_url');
select throws_ok($$insert into public.ai_provider_configs (organization_id, name, provider, default_model)
                   values (tests.org_id('test-ai'), 'Mistral', 'mistral', 'large')$$, '23514', null,
  'an unknown provider is refused');
select throws_ok($$update public.ai_provider_configs set monthly_budget_usd = -5 where name = 'Local'$$, '23514', null,
  'a negative budget is refused');
select throws_ok(format($$select public.set_ai_provider_api_key(%L, 'short')$$,
                        (select id from public.ai_provider_configs where name = 'Local')), '22023', null,
  'a malformed key is refused');

select lives_ok(format($$select public.set_ai_provider_api_key(%L, 'sk-local-key-000000QRST')$$,
                       (select id from public.ai_provider_configs where name = 'Local')), 'an admin sets a key');
select lives_ok(format($$select public.clear_ai_provider_api_key(%L)$$,
                       (select id from public.ai_provider_configs where name = 'Local')), 'an admin clears a key');

select tests.authenticate_as_service_role();
select is((select count(*)::integer from public.ai_provider_configs where organization_id = tests.org_id('test-ai')), 2,
  'the service role sees the configurations');
select is(public.ai_provider_api_key_for_request((select id from public.ai_provider_configs where name = 'Anthropic'), 'workflow step'),
  'sk-ant-matrix-key-000000WXYZ', 'the service role reads a key for a request');
select throws_ok(format($$select public.ai_provider_api_key_for_request(%L, 'workflow step')$$,
                        (select id from public.ai_provider_configs where name = 'Local')), 'P0002', null,
  'a configuration without a key says so');
select tests.clear_authentication();
select is((select count(*)::integer from public.audit_logs where resource = 'ai_provider_configs' and action = 'credential_read'
           and organization_id = tests.org_id('test-ai')), 1, 'the read is in the audit log');

select tests.authenticate_as('a_owner');
select is(tests.rows_affected($$delete from public.ai_provider_configs where name = 'Anthropic'$$), 1::bigint,
  'the owner removes a configuration');

select * from finish();
rollback;
