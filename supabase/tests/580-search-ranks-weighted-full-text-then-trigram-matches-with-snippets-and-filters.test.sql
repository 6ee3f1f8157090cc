-- search(): weighted full text with the websearch syntax, ts_headline snippets, trigram matches for partial and misspelt
-- words ranked below every full-text match, the entity-type, project and size filters, and bad arguments (22023).
begin;
select plan(24);

select tests.create_search_fixture();

select tests.authenticate_as('se_owner');
-- Weights: a title match (A) ranks above a body match (B).
select is(pg_temp.found('deploy'), array[pg_temp.id('deploy_title'), pg_temp.id('deploy_body')],
          'a word finds the tasks that hold it, the one with it in the title first');
select ok((select bool_and(rank > 1 and rank < 2) from public.search('deploy') where entity_id in (select id from ids)), 'full-text matches rank between 1 and 2');
select is((select snippet from public.search('deploy') where entity_id = pg_temp.id('deploy_body')), 'Mention the **deploy** steps',
          'the snippet is the body with the match in bold');
select is((select snippet from public.search('deploy') where entity_id = pg_temp.id('deploy_title')), '**Deploy** the landing page',
          'when only the title matches, the snippet is the title');
select is((select array_agg(entity_type || ':' || title order by title) from public.search('countdown') where entity_id in (select id from ids)),
          array['project:Apollo launch'], 'projects are found by their description');
select is((select project_id from public.search('deploy') where entity_id = pg_temp.id('deploy_title')), pg_temp.id('apollo'),
          'a task comes with its project');
-- The websearch syntax.
select is((select array_agg(entity_id) from public.search('"login page"', array['task']) where rank > 1), array[pg_temp.id('login_page')],
          'a quoted phrase finds by full text the words in that order only');
select is(pg_temp.found('deploy -notes'), array[pg_temp.id('deploy_title')], 'a minus excludes a word');
select is((select array_agg(title order by title) from public.search('billing or countdown') where entity_id in (select id from ids)), array['Apollo launch', 'Refactor billing'],
          'or finds either word');
select is(pg_temp.found('deployed'), array[pg_temp.id('deploy_title'), pg_temp.id('deploy_body')],
          'words are stemmed (english by default): deployed finds deploy');
-- Trigram matches for what full text cannot find.
select is(pg_temp.found('deplo', array['task']), array[pg_temp.id('deploy_title')], 'a partial word finds the title it starts');
select is((select array_agg(entity_id order by entity_id) from public.search('kubernetse', array['task'])),
          (select array_agg(id order by id) from ids where name in ('kube', 'kube_sub')), 'a misspelt word finds the titles it resembles');
select ok((select bool_and(rank > 0 and rank < 1) from public.search('kubernetse') where entity_id in (select id from ids)), 'trigram matches rank below 1');
select is((select array_agg(case when s.rank > 1 then 'full text: ' else 'trigram: ' end || i.name order by s.rank desc, i.name)
           from public.search('page', array['task']) s join ids i on i.id = s.entity_id),
          array['full text: deploy_title', 'full text: login_page', 'full text: page_login', 'trigram: pager'],
          'full-text matches come first, then trigram matches (pager) fill the remaining places');
-- Filters.
select is((select array_agg(entity_type order by entity_type) from public.search('apollo') where entity_id in (select id from ids)), array['project', 'task'],
          'without entity_types every type is searched');
select is(pg_temp.found('apollo', array['project']), array[pg_temp.id('apollo')], 'entity_types limits the types');
select is(pg_temp.found('kubernetes', null, pg_temp.id('apollo')), '{}'::uuid[], 'within_project limits the search to one project');
select is(cardinality(pg_temp.found('kubernetes', null, pg_temp.id('zeus'))), 3, 'which finds that project''s rows');
select is(pg_temp.found('deploy', null, null, 1), array[pg_temp.id('deploy_title')], 'max_results keeps the best ones');
-- Bad arguments.
select throws_ok($$select * from public.search('   ')$$, '22023', null, 'a blank query is refused');
select throws_ok($$select * from public.search(null)$$, '22023', null, 'a null query is refused');
select throws_ok($$select * from public.search(repeat('a', 201))$$, '22023', null, 'a query over 200 characters is refused');
select throws_ok($$select * from public.search('deploy', array['invoice'])$$, '22023', null, 'an unknown entity type is refused');
select throws_ok($$select * from public.search('deploy', null, null, 101)$$, '22023', null, 'max_results over 100 is refused');

select * from finish();
rollback;
