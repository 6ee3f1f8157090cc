begin;
select plan(19);

select tests.create_user(h) from unnest(array['owner', 'admin', 'member', 'stranger']) as h;

select tests.authenticate_as('owner');
select public.create_organization('Audited', 'test-audited');
select tests.clear_authentication();
select tests.add_member(tests.org_id('test-audited'), 'admin', 'admin');
select tests.add_member(tests.org_id('test-audited'), 'member', 'viewer');
select tests.authenticate_as('admin');
select public.change_member_role(tests.org_id('test-audited'), tests.user_id('member'), 'member');
select tests.clear_authentication();

select results_eq(
  $$select actor_id, action, host(ip), user_agent from public.audit_logs
    where resource = 'organizations' and resource_id = tests.org_id('test-audited')::text$$,
  $$values (tests.user_id('owner'), 'insert'::text, '203.0.113.7'::text, 'pgtap'::text)$$,
  'creating an organization is audited with the actor and the request''s IP and user agent');
select results_eq(
  $$select actor_id, metadata from public.audit_logs
    where resource = 'organization_members' and action = 'update' and organization_id = tests.org_id('test-audited')$$,
  $$values (tests.user_id('admin'), '{"changed": ["role_id"]}'::jsonb)$$,
  'a role change is audited with the names of the changed columns, not their values');
select is_empty(
  $$select 1 from public.audit_logs where organization_id = tests.org_id('test-audited')
    and ((action in ('insert', 'update') and new_value_hash is null)
      or (action in ('update', 'delete') and old_value_hash is null))$$,
  'every entry carries a hash of the new row (insert, update) and of the old row (update, delete)');
select is((select count(distinct new_value_hash)::int from public.audit_logs
           where organization_id = tests.org_id('test-audited') and resource = 'organization_members'), 4,
  'different rows hash differently');

insert into public.roles (organization_id, key, name, rank) values (tests.org_id('test-audited'), 'auditor', 'Auditor', 20);
insert into public.role_permissions (role_id, permission_key) select id, 'audit.read' from public.roles where key = 'auditor';
select results_eq($$select metadata ->> 'permission' from public.audit_logs
                    where resource = 'role_permissions' and organization_id = tests.org_id('test-audited')$$,
  $$values ('audit.read')$$, 'a permission granted to a custom role is audited under its organization');
delete from public.role_permissions where role_id = (select id from public.roles where key = 'auditor');
delete from public.roles where key = 'auditor';

select tests.authenticate_as('admin');
select results_eq($$select action, resource from public.audit_logs where organization_id = tests.org_id('test-audited')
                    order by action, resource$$,
  $$values ('delete', 'role_permissions'), ('delete', 'roles'),
           ('insert', 'organization_members'), ('insert', 'organization_members'), ('insert', 'organization_members'),
           ('insert', 'organizations'), ('insert', 'role_permissions'), ('insert', 'roles'),
           ('update', 'organization_members')$$,
  'an admin reads every entry of the organization''s audit log');
select is_empty($$select 1 from public.audit_logs where organization_id is distinct from tests.org_id('test-audited')
                  and organization_id not in (select id from public.organizations)$$,
  'an admin sees no entries of organizations they do not belong to');
select throws_ok($$insert into public.audit_logs (action, resource) values ('insert', 'forged')$$, '42501', null,
  'nobody writes audit entries through the API');

select tests.authenticate_as('member');
select is_empty($$select 1 from public.audit_logs where organization_id = tests.org_id('test-audited')$$,
  'a member without audit.read sees no audit entries of the organization');
select tests.authenticate_as('stranger');
select is_empty($$select 1 from public.audit_logs where organization_id = tests.org_id('test-audited')$$,
  'a stranger sees no audit entries of another organization');
select tests.clear_authentication();

select throws_ok($$update public.audit_logs set action = 'delete'$$, '42501', null, 'audit entries cannot be updated, even by the owner of the table');
select throws_ok($$delete from public.audit_logs$$, '42501', null, 'audit entries cannot be deleted');
select throws_ok($$truncate public.audit_logs$$, '42501', null, 'the audit log cannot be truncated');

select tests.authenticate_as_service_role();
select isnt(public.audit_rls_violation('organizations', tests.user_id('stranger'), 'update'), null,
  'the service role records an RLS violation');
select throws_ok($$select public.audit_rls_violation('organizations', null, 'drop')$$, '22023', null,
  'an unknown operation is rejected');
select throws_ok($$select public.audit_rls_violation('no_such_table', null, 'select')$$, '42P01', null,
  'an unknown table is rejected');
select tests.authenticate_as('stranger');
select throws_ok($$select public.audit_rls_violation('organizations', null, 'select')$$, '42501', null,
  'a client cannot write RLS-violation entries');

-- The client IP comes from what the proxies set, never from the client's own X-Forwarded-For entries.
select tests.clear_authentication();
select set_config('request.headers', '{"x-forwarded-for": "6.6.6.6, 198.51.100.9"}', true);
select is(private.request_ip(), '198.51.100.9'::inet, 'the IP is the hop the proxy appended, not a forged first entry');
select set_config('request.headers', '{"x-forwarded-for": "6.6.6.6, 198.51.100.9", "cf-connecting-ip": "192.0.2.44"}', true);
select is(private.request_ip(), '192.0.2.44'::inet, 'the edge''s CF-Connecting-IP wins over X-Forwarded-For');
select set_config('request.headers', '', true);

select * from finish();
rollback;
