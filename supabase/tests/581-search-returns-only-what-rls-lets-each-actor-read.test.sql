-- search() runs as the caller: RLS decides what comes back. A private project's rows reach only its members and
-- projects.admin holders, through full text and trigram matches alike; strangers find nothing, anon cannot call it.
begin;
select plan(15);

select tests.create_search_fixture();

select tests.authenticate_as('se_owner');
select is(cardinality(pg_temp.found('kubernetes')), 3, 'the organization owner (projects.admin) finds the private project and its tasks');
select is(cardinality(pg_temp.found('deploy')), 2, 'and the organization-visible tasks, not another organization''s');
select tests.authenticate_as('se_editor');
select is(cardinality(pg_temp.found('kubernetes')), 3, 'a project editor finds the private project''s rows');
select tests.authenticate_as('se_viewer');
select is(cardinality(pg_temp.found('kubernetes')), 3, 'a project viewer finds them too');
select is(cardinality(pg_temp.found('deploy')), 2, 'and an organization viewer finds the organization-visible tasks');
select tests.authenticate_as('se_outsider');
select is(pg_temp.found('kubernetes'), '{}'::uuid[], 'an organization member outside the private project finds none of its rows');
select is(pg_temp.found('kubernetse'), '{}'::uuid[], 'not through trigram matches either');
select is(pg_temp.found('vault', array['project']), '{}'::uuid[], 'nor the private project itself');
select is(pg_temp.found('kubernetes', null, pg_temp.id('zeus')), '{}'::uuid[], 'nor by naming the project');
select is(cardinality(pg_temp.found('deploy')), 2, 'but finds the organization-visible tasks');
select tests.authenticate_as('se_stranger');
select is(pg_temp.found('deploy'), array[pg_temp.id('elsewhere'), pg_temp.id('foreign')],
          'a member of another organization finds only that organization''s rows');
select is(pg_temp.found('kubernetes'), '{}'::uuid[], 'and none of this one''s');
select tests.authenticate_as_anon();
select throws_ok($$select * from public.search('deploy')$$, '42501', null, 'anon cannot search');
select tests.authenticate_as_service_role();
select throws_ok($$select * from public.search('deploy')$$, '42501', null, 'the service role cannot search: search is for signed-in users');
select tests.clear_authentication();
select is((select prosecdef from pg_proc where oid = 'public.search(text, text[], uuid, integer)'::regprocedure), false,
          'search runs as its caller (security invoker)');

select * from finish();
rollback;
