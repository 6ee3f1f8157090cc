-- search() never returns deleted rows: a soft-deleted task and the subtasks deleted with it stay out of full-text and
-- trigram results alike, and come back when restored.
begin;
select plan(6);

select tests.create_search_fixture();

select tests.authenticate_as('se_editor');
select lives_ok($$update public.tasks set deleted_at = now() where id = pg_temp.id('kube')$$, 'the editor soft-deletes a task with a subtask');
select is(pg_temp.found('kubernetes', array['task']), '{}'::uuid[], 'neither the task nor its subtask is found by full text');
select is(pg_temp.found('kubernetse', array['task']), '{}'::uuid[], 'nor by trigram');
select is(pg_temp.found('kubernetes', array['project']), array[pg_temp.id('zeus')], 'the project is still found');
select lives_ok($$update public.tasks set deleted_at = null where id = pg_temp.id('kube')$$, 'the editor restores the task');
select is(cardinality(pg_temp.found('kubernetes', array['task'])), 2, 'and both are found again');

select * from finish();
rollback;
