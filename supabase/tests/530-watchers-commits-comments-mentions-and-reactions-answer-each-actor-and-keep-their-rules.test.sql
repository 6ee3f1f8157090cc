-- Task watchers, task commits, comments, comment mentions and reactions: every rule by SQLSTATE and the actor matrix
-- (organization owner, project editor, commenter, viewer, organization member outside a private project, stranger,
-- anon, service_role).
begin;
select plan(58);

create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to anon, authenticated, service_role;
create function pg_temp.id(key text) returns uuid language sql stable as $$ select id from ids where name = key $$;
grant execute on function pg_temp.id(text) to anon, authenticated, service_role;

select tests.create_user(h) from unnest(array['wc_owner', 'wc_editor', 'wc_commenter', 'wc_viewer', 'wc_outsider', 'wc_stranger']) h;
select tests.create_organization('wc_owner', 'test-wc');
select tests.create_organization('wc_stranger', 'test-wc-other');
select tests.add_member(tests.org_id('test-wc'), h, 'member') from unnest(array['wc_editor', 'wc_commenter', 'wc_outsider']) h;
select tests.add_member(tests.org_id('test-wc'), 'wc_viewer', 'viewer');

select tests.authenticate_as('wc_owner');
with p as (insert into public.projects (organization_id, title, visibility) values (tests.org_id('test-wc'), 'Private', 'private') returning id)
insert into ids select 'private', id from p;
with p as (insert into public.projects (organization_id, title) values (tests.org_id('test-wc'), 'Open') returning id)
insert into ids select 'open', id from p;
insert into public.project_members (project_id, user_id, role) values
  (pg_temp.id('private'), tests.user_id('wc_editor'), 'editor'),
  (pg_temp.id('private'), tests.user_id('wc_commenter'), 'commenter'),
  (pg_temp.id('private'), tests.user_id('wc_viewer'), 'viewer');
with t as (insert into public.tasks (project_id, title) values (pg_temp.id('private'), 'Write the plan') returning id)
insert into ids select 'task', id from t;
with t as (insert into public.tasks (project_id, title) values (pg_temp.id('private'), 'Other task') returning id)
insert into ids select 'other_task', id from t;
with t as (insert into public.tasks (project_id, title) values (pg_temp.id('open'), 'Open task') returning id)
insert into ids select 'open_task', id from t;

-- Watchers.
select tests.authenticate_as('wc_viewer');
select lives_ok($$insert into public.task_watchers (task_id) values (pg_temp.id('task'))$$, 'a project viewer watches a task');
select throws_ok($$insert into public.task_watchers (task_id, user_id) values (pg_temp.id('task'), tests.user_id('wc_commenter'))$$,
                 '42501', null, 'a viewer cannot make someone else watch');
select tests.authenticate_as('wc_owner');
select lives_ok($$insert into public.task_watchers (task_id, user_id) values (pg_temp.id('task'), tests.user_id('wc_editor'))$$,
                'the organization owner adds the editor as a watcher');
select throws_ok($$insert into public.task_watchers (task_id, user_id) values (pg_temp.id('task'), tests.user_id('wc_outsider'))$$,
                 '23514', null, 'a watcher must be able to read the project (an organization member outside it cannot)');
select throws_ok($$insert into public.task_watchers (task_id, user_id) values (pg_temp.id('task'), tests.user_id('wc_stranger'))$$,
                 '23514', null, 'a stranger cannot watch');
select throws_ok($$insert into public.task_watchers (task_id, user_id) values (pg_temp.id('task'), tests.user_id('wc_viewer'))$$,
                 '23505', null, 'a user watches a task once');
select tests.authenticate_as('wc_viewer');
select is((select count(*)::int from public.task_watchers where task_id = pg_temp.id('task')), 2, 'a project viewer sees the task''s watchers');
select tests.authenticate_as('wc_outsider');
select is((select count(*)::int from public.task_watchers where task_id = pg_temp.id('task')), 0, 'an organization member outside the private project sees no watcher');
select throws_ok($$insert into public.task_watchers (task_id) values (pg_temp.id('task'))$$, '23514', null,
                 'nor can they watch its tasks');
select lives_ok($$insert into public.task_watchers (task_id) values (pg_temp.id('open_task'))$$,
                'but they watch a task of an organization-visible project');

-- Commits.
select tests.authenticate_as('wc_editor');
select lives_ok($$insert into public.task_commits (task_id, sha, message, author, url) values
                  (pg_temp.id('task'), '3F786850E387550FDAB836ED7E6DC881DE23001B', 'Draft the plan', 'Ed <ed@example.test>',
                   'https://git.example.test/c/3f78')$$, 'the project editor links a commit');
select is((select sha from public.task_commits where task_id = pg_temp.id('task')), '3f786850e387550fdab836ed7e6dc881de23001b',
          'the commit id is stored in lower case');
select throws_ok($$insert into public.task_commits (task_id, sha, message) values (pg_temp.id('task'), '3f786850e387550fdab836ed7e6dc881de23001b', 'again')$$,
                 '23505', null, 'a commit is linked to a task once (task_commits_task_sha_key), whatever its case');
select throws_ok($$insert into public.task_commits (task_id, sha, message) values (pg_temp.id('task'), '3f78685', 'short')$$,
                 '23514', null, 'an abbreviated commit id is refused (task_commits_sha_format)');
select throws_ok($$insert into public.task_commits (task_id, sha, message) values (pg_temp.id('task'), 'zz786850e387550fdab836ed7e6dc881de23001b', 'hex')$$,
                 '23514', null, 'a commit id is hexadecimal');
select throws_ok($$insert into public.task_commits (task_id, sha, message, url) values (pg_temp.id('task'), repeat('a', 64), 'x', 'ftp://x')$$,
                 '23514', null, 'a commit URL is http(s)');
select lives_ok($$insert into public.task_commits (task_id, sha, message) values (pg_temp.id('task'), repeat('a', 64), 'SHA-256 repository')$$,
                'a 64-digit SHA-256 commit id is accepted');
select tests.authenticate_as('wc_viewer');
select throws_ok($$insert into public.task_commits (task_id, sha, message) values (pg_temp.id('task'), repeat('b', 40), 'x')$$,
                 '42501', null, 'a project viewer cannot link a commit');
select is(tests.rows_affected($$delete from public.task_commits where task_id = pg_temp.id('task')$$), 0::bigint, 'nor unlink one');
select is((select count(*)::int from public.task_commits where task_id = pg_temp.id('task')), 2, 'but reads the task''s commits');

-- Comments and the mentions in their content.
select tests.authenticate_as('wc_commenter');
select lives_ok(format($f$with c as (insert into public.comments (task_id, content) values (pg_temp.id('task'),
                  'Plan ready. @wc_viewer@example.test and @[%s] please look; @[%s] and @nobody@example.test are not members; mail wc_editor@example.test')
                  returning id) insert into ids select 'comment', id from c$f$, tests.user_id('wc_editor'), tests.user_id('wc_outsider')),
                'a project commenter comments');
select results_eq($$select user_id from public.comment_mentions where comment_id = pg_temp.id('comment') order by user_id$$,
  format($f$select unnest(array['%s', '%s']::uuid[]) order by 1$f$, tests.user_id('wc_editor'), tests.user_id('wc_viewer')),
  'the content''s @[uuid] and @email mentions of project members become mentions; non-members and a bare address do not');
select throws_ok($$insert into public.comments (task_id, content) values (pg_temp.id('task'), '   ')$$,
                 '23514', null, 'a comment has content');
select throws_ok($$insert into public.comments (task_id, content, content_type) values (pg_temp.id('task'), 'x', 'html')$$,
                 '23514', null, 'a comment is markdown or text (comments_content_type_known)');
select throws_ok(format($f$insert into public.comment_mentions (comment_id, user_id) values (pg_temp.id('comment'), '%s')$f$, tests.user_id('wc_outsider')),
                 '23514', null, 'an explicit mention of a non-member is refused (comment_mentions_user_is_project_member)');
select lives_ok(format($f$insert into public.comment_mentions (comment_id, user_id) values (pg_temp.id('comment'), '%s')$f$, tests.user_id('wc_owner')),
                'the author mentions a project member explicitly');
select tests.authenticate_as('wc_viewer');
select throws_ok($$insert into public.comments (task_id, content) values (pg_temp.id('task'), 'me too')$$,
                 '42501', null, 'a project viewer may not comment');
select throws_ok(format($f$insert into public.comment_mentions (comment_id, user_id) values (pg_temp.id('comment'), '%s')$f$, tests.user_id('wc_commenter')),
                 '42501', null, 'only the comment''s author adds mentions');
select tests.authenticate_as('wc_outsider');
select throws_ok($$insert into public.comments (task_id, content) values (pg_temp.id('open_task'), 'drive-by')$$,
                 '42501', null, 'an organization member without a project role may not comment on an organization-visible project');
select is((select count(*)::int from public.comments where task_id = pg_temp.id('task')), 0, 'nor sees the private project''s comments');

select tests.authenticate_as('wc_editor');
select lives_ok($$with c as (insert into public.comments (task_id, parent_comment_id, content) values (pg_temp.id('task'), pg_temp.id('comment'), 'Looks good')
                  returning id) insert into ids select 'reply', id from c$$, 'the project editor replies');
select throws_ok($$insert into public.comments (task_id, parent_comment_id, content) values (pg_temp.id('other_task'), pg_temp.id('comment'), 'elsewhere')$$,
                 '23514', null, 'a reply stays in its parent''s task (comments_parent_same_task)');
select throws_ok($$update public.comments set content = 'edited by someone else' where id = pg_temp.id('comment')$$,
                 '42501', null, 'only the author edits a comment, even for a project editor');
select throws_ok($$update public.comments set content_type = 'text' where id = pg_temp.id('comment')$$,
                 '42501', null, 'nor changes its content type');
select tests.authenticate_as('wc_viewer');
select is(tests.rows_affected($$update public.comments set content = 'mine' where id = pg_temp.id('comment')$$), 0::bigint,
          'a project viewer changes no comment');
select tests.authenticate_as('wc_commenter');
select lives_ok($$update public.comments set content = 'Plan ready, @[' || tests.user_id('wc_editor') || '] please look.' where id = pg_temp.id('comment')$$,
                'the author edits the content');
select isnt((select edited_at from public.comments where id = pg_temp.id('comment')), null, 'editing stamps edited_at');
select results_eq($$select user_id, source from public.comment_mentions where comment_id = pg_temp.id('comment') order by source, user_id$$,
  format($f$values ('%s'::uuid, 'content'::text), ('%s'::uuid, 'explicit'::text)$f$, tests.user_id('wc_editor'), tests.user_id('wc_owner')),
  'editing re-resolves the content''s mentions and keeps the explicit ones');

-- Reactions.
select tests.authenticate_as('wc_viewer');
select lives_ok($$insert into public.comment_reactions (comment_id, emoji) values (pg_temp.id('comment'), '👍')$$, 'a project viewer reacts');
select throws_ok($$insert into public.comment_reactions (comment_id, emoji) values (pg_temp.id('comment'), '👍')$$,
                 '23505', null, 'one reaction per comment, user and emoji');
select throws_ok($$insert into public.comment_reactions (comment_id, emoji) values (pg_temp.id('comment'), 'thumbs up')$$,
                 '23514', null, 'an emoji has no spaces (comment_reactions_emoji_format)');
select throws_ok(format($f$insert into public.comment_reactions (comment_id, user_id, emoji) values (pg_temp.id('comment'), '%s', '🎉')$f$, tests.user_id('wc_editor')),
                 '42501', null, 'one reacts only as oneself');
select tests.authenticate_as('wc_editor');
select lives_ok($$insert into public.comment_reactions (comment_id, emoji) values (pg_temp.id('comment'), '👍')$$, 'another member reacts with the same emoji');
select is(tests.rows_affected($$delete from public.comment_reactions where comment_id = pg_temp.id('comment') and user_id <> auth.uid()$$), 0::bigint,
          'nobody removes someone else''s reaction');
select tests.authenticate_as('wc_stranger');
select is((select count(*)::int from public.comments) + (select count(*)::int from public.comment_reactions)
          + (select count(*)::int from public.comment_mentions) + (select count(*)::int from public.task_commits)
          + (select count(*)::int from public.task_watchers), 0, 'a stranger sees no comment, reaction, mention, commit or watcher');
select tests.authenticate_as_anon();
select throws_ok($$select count(*) from public.comments$$, '42501', null, 'anon cannot read comments');
select throws_ok($$select count(*) from public.task_watchers$$, '42501', null, 'anon cannot read watchers');

-- Soft delete of a comment: the author or an editor; hidden from the other readers; restorable.
select tests.authenticate_as('wc_commenter');
select is(tests.rows_affected($$update public.comments set deleted_at = now() where id = pg_temp.id('comment')$$), 1::bigint,
          'the author soft-deletes their comment');
select is((select count(*)::int from public.comments where id = pg_temp.id('comment')), 1, 'the author still sees it, to restore it');
select throws_ok($$update public.comments set content = 'while deleted' where id = pg_temp.id('comment')$$,
                 '55000', null, 'a deleted comment is not edited');
select tests.authenticate_as('wc_viewer');
select is((select count(*)::int from public.comments where task_id = pg_temp.id('task')), 1, 'a project viewer sees only the live reply');
select tests.authenticate_as('wc_editor');
select is(tests.rows_affected($$update public.comments set deleted_at = null where id = pg_temp.id('comment')$$), 1::bigint,
          'a project editor restores it');

-- A soft-deleted task hides its comments; restoring the task brings them back.
select tests.authenticate_as('wc_owner');
update public.tasks set deleted_at = now() where id = pg_temp.id('task');
select tests.authenticate_as('wc_viewer');
select is((select count(*)::int from public.comments where task_id = pg_temp.id('task')), 0, 'a soft-deleted task''s comments are hidden');
select tests.authenticate_as('wc_editor');
select is((select count(*)::int from public.comments where task_id = pg_temp.id('task')), 0, 'from its editors too');
select throws_ok($$insert into public.comments (task_id, content) values (pg_temp.id('task'), 'on a deleted task')$$,
                 '42501', null, 'nobody comments on a soft-deleted task');
select tests.authenticate_as('wc_owner');
update public.tasks set deleted_at = null where id = pg_temp.id('task');
select tests.authenticate_as('wc_viewer');
select is((select count(*)::int from public.comments where task_id = pg_temp.id('task')), 2, 'restoring the task brings its comments back');

-- service_role and the audit trail.
select tests.authenticate_as_service_role();
select is((select count(*)::int from public.comments where task_id = pg_temp.id('task')), 2, 'service_role reads every comment');
select tests.clear_authentication();
select ok((select count(*) from public.audit_logs where resource = 'comments' and organization_id = tests.org_id('test-wc')) >= 4,
          'the audit log records comment inserts and updates');

select * from finish();
rollback;
