-- search() over comments: found by full text with their task's title and project, under the comments' RLS; never a
-- soft-deleted comment (not even for its author) nor a comment of a soft-deleted task; no trigram matches.
begin;
select plan(14);

select tests.create_search_fixture();
create function pg_temp.new_comment(key text, task text, content text) returns void
language sql as $$
  with c as (insert into public.comments (task_id, content) values (pg_temp.id(task), content) returning id)
  insert into ids select key, id from c
$$;
grant execute on function pg_temp.new_comment(text, text, text) to authenticated;

select tests.authenticate_as('se_owner');
select pg_temp.new_comment('live', 'deploy_title', 'The rollout needs a feature flag');
select pg_temp.new_comment('private', 'kube', 'Rollout of the cluster needs downtime');
select pg_temp.new_comment('deleted', 'deploy_title', 'Rollout notes, withdrawn');
select pg_temp.new_comment('on_deleted_task', 'billing', 'Rollout billing later');
update public.comments set deleted_at = now() where id = pg_temp.id('deleted');
update public.tasks set deleted_at = now() where id = pg_temp.id('billing');

select is((select array_agg(entity_id order by entity_id) from public.search('rollout', array['comment'])),
          (select array_agg(id order by id) from ids where name in ('live', 'private')),
          'the owner finds the live comments, not the deleted one they wrote nor the one on a deleted task');
select ok(exists (select 1 from public.comments where id = pg_temp.id('deleted')), 'although RLS still shows its author the deleted comment');
select is((select title || ' / ' || snippet from public.search('rollout', array['comment']) where entity_id = pg_temp.id('live')),
          'Deploy the landing page / **rollout** needs a feature flag', 'a comment comes with its task''s title and a snippet of its content');
select is((select project_id from public.search('rollout', array['comment']) where entity_id = pg_temp.id('live')), pg_temp.id('apollo'),
          'and with its project');
select is(pg_temp.found('rollout', array['comment'], pg_temp.id('zeus')), array[pg_temp.id('private')], 'within_project finds that project''s comments');
select is(pg_temp.found('rolout', array['comment']), '{}'::uuid[], 'comments are found by full text only, not by trigram');
select is(pg_temp.found('"feature flag"', array['comment']), array[pg_temp.id('live')], 'a quoted phrase finds the comment holding it');
select is(pg_temp.found('"flag feature"', array['comment']), '{}'::uuid[], 'but not the words in another order');
update public.tasks set deleted_at = null where id = pg_temp.id('billing');
select ok(pg_temp.id('on_deleted_task') = any(pg_temp.found('rollout', array['comment'])), 'restoring the task brings its comment back');

select tests.authenticate_as('se_viewer');
select is(cardinality(pg_temp.found('rollout', array['comment'])), 3, 'a project viewer of the private project finds its comments too');
select tests.authenticate_as('se_outsider');
select is((select array_agg(entity_id order by entity_id) from public.search('rollout', array['comment'])),
          (select array_agg(id order by id) from ids where name in ('live', 'on_deleted_task')),
          'an organization member outside the private project finds only the organization-visible comments');
select tests.authenticate_as('se_stranger');
select is(pg_temp.found('rollout'), '{}'::uuid[], 'a stranger finds no comment');

select tests.clear_authentication();
update public.organizations set settings = settings || '{"text_search_config": "simple"}' where id = tests.org_id('test-se');
select is((select search_vector from public.comments where id = pg_temp.id('live')),
          setweight(to_tsvector('simple', 'The rollout needs a feature flag'), 'B'), 'a configuration change re-indexes the comments');
select tests.authenticate_as('se_owner');
select throws_ok($$update public.comments set search_vector = null where id = pg_temp.id('live')$$,
                 '42501', null, 'clients cannot write a comment''s search vector');

select * from finish();
rollback;
