-- The integrations matrix: what an owner, admin, member, viewer, stranger, anonymous client and the service role read
-- and do with integration_providers, integrations and their credential RPCs; settings validated per provider,
-- credentials per auth kind; audit entries; a user's integrations in their export.
begin;
select plan(41);

select tests.create_user(h) from unnest(array['i_owner', 'i_admin', 'i_member', 'i_viewer', 'i_stranger']) as h;
select tests.create_organization('i_owner', 'test-integrations');
select tests.add_member(tests.org_id('test-integrations'), 'i_admin', 'admin');
select tests.add_member(tests.org_id('test-integrations'), 'i_member', 'member');
select tests.add_member(tests.org_id('test-integrations'), 'i_viewer', 'viewer');
select tests.authenticate_as('i_owner');
insert into public.integrations (organization_id, provider, display_name, settings, scopes)
values (tests.org_id('test-integrations'), 'github', 'GitHub', '{"organization": "acme"}', '{repo,read:org}');
select public.set_integration_credentials((select id from public.integrations where provider = 'github'),
  '{"access_token": "gho_matrixaccesstoken0001", "refresh_token": "ghr_matrixrefresh0001"}', now() + interval '8 hours');
select tests.clear_authentication();

create temporary table probe (sql text) on commit drop;
insert into probe values ($$
  select (select count(*) from public.integrations where organization_id = tests.org_id('test-integrations'))::integer,
         (select count(*) from public.integration_providers)::integer > 0$$);
grant select on probe to authenticated, service_role;

select tests.authenticate_as('i_owner');
select results_eq((select sql from probe), $$values (1, true)$$, 'the owner sees the integration and the provider catalogue');
select tests.authenticate_as('i_admin');
select results_eq((select sql from probe), $$values (1, true)$$, 'an admin sees the integration');
select tests.authenticate_as('i_member');
select results_eq((select sql from probe), $$values (1, true)$$, 'a member (integrations.read) sees the integration');
select tests.authenticate_as('i_viewer');
select results_eq((select sql from probe), $$values (1, true)$$, 'a viewer (integrations.read) sees the integration');
select results_eq($$select has_credentials, credentials_hint, credentials_updated_at is not null, token_expires_at is not null
                    from public.integrations where provider = 'github'$$, $$values (true, null::text, true, true)$$,
  'readers see that credentials are set and when, never the credentials (OAuth tokens get no hint)');
select throws_ok($$select credentials_secret_id from public.integrations$$, '42501', null,
  'no client may select the Vault secret id');
select tests.authenticate_as('i_stranger');
select results_eq((select sql from probe), $$values (0, true)$$, 'a stranger sees no integration of the organization');

select tests.authenticate_as_anon();
select throws_ok($$select 1 from public.integrations$$, '42501', null, 'anon cannot read integrations');
select throws_ok($$select 1 from public.integration_providers$$, '42501', null, 'anon cannot read the provider catalogue');
select throws_ok($$select public.set_integration_credentials(gen_random_uuid(), '{}')$$, '42501', null,
  'anon cannot call set_integration_credentials');
select throws_ok($$select public.clear_integration_credentials(gen_random_uuid())$$, '42501', null,
  'anon cannot call clear_integration_credentials');
select throws_ok($$select public.integration_credentials_for_sync(gen_random_uuid(), 'x')$$, '42501', null,
  'anon cannot call integration_credentials_for_sync');

-- Writes by those who may not: nothing changes.
select tests.authenticate_as('i_stranger');
select throws_ok($$insert into public.integrations (organization_id, provider, display_name)
                   values (tests.org_id('test-integrations'), 'slack', 'Spy')$$, '42501', null,
  'a stranger cannot add an integration');
select throws_ok(format($$select public.set_integration_credentials(%L, '{"access_token": "x"}')$$,
                        (select id from public.integrations where provider = 'github')), 'P0002', null,
  'a stranger cannot set credentials: the integration does not exist for them');
select tests.authenticate_as('i_viewer');
select throws_ok($$insert into public.integrations (organization_id, provider, display_name)
                   values (tests.org_id('test-integrations'), 'slack', 'Viewer')$$, '42501', null,
  'a viewer cannot add an integration');
select is(tests.rows_affected($$update public.integrations set display_name = 'x' where provider = 'github'$$), 0::bigint,
  'a viewer cannot edit an integration');
select tests.authenticate_as('i_member');
select throws_ok($$insert into public.integrations (organization_id, provider, display_name)
                   values (tests.org_id('test-integrations'), 'slack', 'Member')$$, '42501', null,
  'a member cannot add an integration');
select is(tests.rows_affected($$delete from public.integrations where provider = 'github'$$), 0::bigint,
  'a member cannot remove an integration');
select throws_ok(format($$select public.set_integration_credentials(%L, '{"access_token": "member-token-0001"}')$$,
                        (select id from public.integrations where provider = 'github')), '42501', null,
  'a member cannot set credentials');
select throws_ok(format($$select public.clear_integration_credentials(%L)$$,
                        (select id from public.integrations where provider = 'github')), '42501', null,
  'a member cannot clear credentials');
select throws_ok(format($$select public.integration_credentials_for_sync(%L, 'curious')$$,
                        (select id from public.integrations where provider = 'github')), '42501', null,
  'a member cannot read credentials');

-- Managers.
select tests.authenticate_as('i_admin');
select lives_ok($$insert into public.integrations (organization_id, provider, display_name, settings)
                  values (tests.org_id('test-integrations'), 'jira', 'Jira', '{"site_url": "https://acme.atlassian.test", "project_keys": ["OPS"]}')$$,
  'an admin adds an integration');
select is((select created_by from public.integrations where provider = 'jira'), tests.user_id('i_admin'),
  'created_by is the caller');
select throws_ok($$insert into public.integrations (organization_id, provider, display_name, created_by)
                   values (tests.org_id('test-integrations'), 'slack', 'Forged', tests.user_id('i_owner'))$$, '42501', null,
  'a client cannot set created_by');
select lives_ok(format($$select public.set_integration_credentials(%L, '{"username": "bot", "password": "jira-password-0001"}')$$,
                       (select id from public.integrations where provider = 'jira')), 'an admin sets basic credentials');
select throws_ok(format($$select public.set_integration_credentials(%L, '{"username": "bot"}')$$,
                        (select id from public.integrations where provider = 'jira')), '22023', null,
  'basic credentials need a password');
select throws_ok(format($$select public.set_integration_credentials(%L, '{"api_key": "k", "username": "bot", "password": "p"}')$$,
                        (select id from public.integrations where provider = 'jira')), '22023', null,
  'fields of another auth kind are refused');
select is(tests.rows_affected($$update public.integrations set display_name = 'GitHub (acme)' where provider = 'github'$$), 1::bigint,
  'an admin edits an integration');
select throws_ok($$update public.integrations set last_sync_at = now() where provider = 'github'$$, '42501', null,
  'clients cannot write sync state');

-- Settings follow the provider's schema.
select throws_ok($$update public.integrations set settings = '{"colour": "red"}' where provider = 'github'$$, '23514',
  'unknown setting "colour" for provider github', 'an unknown setting is refused');
select throws_ok($$update public.integrations set settings = '{"repositories": "api"}' where provider = 'github'$$, '23514',
  'setting "repositories" must be of type array', 'a setting of the wrong type is refused');
select throws_ok($$update public.integrations set settings = '{}' where provider = 'jira'$$, '23514',
  'setting "site_url" is required for provider jira', 'a missing required setting is refused');
select throws_ok($$insert into public.integrations (organization_id, provider, display_name)
                   values (tests.org_id('test-integrations'), 'myspace', 'Nope')$$, '23503', null,
  'an unknown provider is refused');

-- The service role: reads the public columns, records sync state, reads credentials only through the audited function.
select tests.authenticate_as_service_role();
select is((select count(*)::integer from public.integrations where organization_id = tests.org_id('test-integrations')), 2,
  'the service role sees integrations');
select throws_ok($$select credentials_secret_id from public.integrations$$, '42501', null,
  'the service role cannot select the Vault secret id either');
select is(tests.rows_affected($$update public.integrations set last_sync_at = now(), last_error = null where provider = 'github'$$),
  1::bigint, 'the service role records a sync');
select is(public.integration_credentials_for_sync((select id from public.integrations where provider = 'github'), 'nightly sync') ->> 'access_token',
  'gho_matrixaccesstoken0001', 'the service role reads credentials for a sync');
select throws_ok($$select public.set_integration_credentials((select id from public.integrations where provider = 'github'), '{"access_token": "x"}')$$,
  '42501', null, 'the service role cannot write credentials as if it were a user');

select tests.clear_authentication();
select ok((select count(*) >= 4 from public.audit_logs where resource = 'integrations' and organization_id = tests.org_id('test-integrations')),
  'inserts, updates and the credential read of integrations are in the audit log');

select tests.authenticate_as('i_admin');
select results_eq($$select jsonb_array_length(public.export_my_data() -> 'integrations'),
                           (public.export_my_data() -> 'integrations' -> 0) ? 'credentials_secret_id'$$,
  $$values (1, false)$$, 'an export lists the integrations the user connected, without the secret id');

select tests.authenticate_as('i_owner');
select is(tests.rows_affected($$delete from public.integrations where provider = 'github'$$), 1::bigint,
  'the owner removes an integration');

select * from finish();
rollback;
