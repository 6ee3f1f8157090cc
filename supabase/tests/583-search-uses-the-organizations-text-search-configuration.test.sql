-- The organization's text-search configuration (organizations.settings.text_search_config): english by default, a
-- known name only (22023 otherwise), simple when the stored name is unknown; changing it re-indexes the organization.
-- The search vectors are derived and not writable by clients.
begin;
select plan(14);

select tests.create_search_fixture();
select pg_temp.new_task('running', 'apollo', 'Running the smoke tests', null);

select is(private.search_config(tests.org_id('test-se')), 'english'::regconfig, 'an organization without the setting searches in english');
select is((select search_vector from public.tasks where id = pg_temp.id('running')),
          private.search_document('english', 'Running the smoke tests', null), 'a task''s vector is its title (A) and description (B) in that configuration');
select tests.authenticate_as('se_owner');
select is(pg_temp.found('runs', array['task']), array[pg_temp.id('running')], 'english stems: runs finds running');
select throws_ok($$update public.organizations set settings = settings || '{"text_search_config": "klingon"}' where id = tests.org_id('test-se')$$,
                 '22023', null, 'an unknown configuration is refused');
select throws_ok($$update public.organizations set settings = settings || '{"text_search_config": 7}' where id = tests.org_id('test-se')$$,
                 '22023', null, 'a configuration that is not a name is refused');
select lives_ok($$update public.organizations set settings = settings || '{"text_search_config": "simple"}' where id = tests.org_id('test-se')$$,
                'the owner switches the organization to simple');
select is((select search_vector from public.tasks where id = pg_temp.id('running')),
          setweight(to_tsvector('simple', 'Running the smoke tests'), 'A'), 'which re-indexes its tasks');
select is((select count(*)::int from public.search('runs', array['task']) where rank > 1), 0, 'simple does not stem: runs no longer finds running by full text');
select is((select array_agg(entity_id) from public.search('running', array['task']) where rank > 1), array[pg_temp.id('running')],
          'running still does');
select lives_ok($$update public.organizations set settings = settings || '{"text_search_config": "german"}' where id = tests.org_id('test-se')$$,
                'the owner switches to german');
select lives_ok($$select pg_temp.new_task('haeuser', 'apollo', 'Häuser bauen', null)$$, 'the owner adds a German task');
select is((select array_agg(entity_id) from public.search('haus', array['task']) where rank > 1), array[pg_temp.id('haeuser')],
          'german stems: haus finds Häuser');
select throws_ok($$update public.tasks set search_vector = null where id = pg_temp.id('running')$$, '42501', null,
                 'clients cannot write a search vector');

select tests.clear_authentication();
alter table public.organizations disable trigger organizations_check_text_search_config;
update public.organizations set settings = settings || '{"text_search_config": "klingon"}' where id = tests.org_id('test-se');
select is(private.search_config(tests.org_id('test-se')), 'simple'::regconfig, 'a stored name that is no configuration searches as simple');

select * from finish();
rollback;
