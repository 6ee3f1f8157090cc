-- Projects, project members and favourites: the actor matrix (organization owner, project editor, project viewer,
-- organization member outside a private project, stranger, anon) and every rule by SQLSTATE.
begin;
select plan(50);

create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to anon, authenticated, service_role;
create function pg_temp.id(key text) returns uuid language sql stable as $$ select id from ids where name = key $$;
grant execute on function pg_temp.id(text) to anon, authenticated, service_role;

select tests.create_user(h) from unnest(array['wm_owner', 'wm_editor', 'wm_viewer', 'wm_outsider', 'wm_stranger', 'wm_admin']) h;
select tests.create_organization('wm_owner', 'test-wm');
select tests.create_organization('wm_stranger', 'test-wm-other');
select tests.add_member(tests.org_id('test-wm'), 'wm_editor', 'member');
select tests.add_member(tests.org_id('test-wm'), 'wm_viewer', 'viewer');
select tests.add_member(tests.org_id('test-wm'), 'wm_outsider', 'member');
select tests.add_member(tests.org_id('test-wm'), 'wm_admin', 'admin');

-- projects.admin: owner and admin system roles only.
select is((select array_agg(r.key order by r.key) from public.role_permissions rp join public.roles r on r.id = rp.role_id
           where rp.permission_key = 'projects.admin' and r.organization_id is null),
          array['admin', 'owner'], 'projects.admin is granted to the owner and admin system roles');

-- Creating: projects.manage holders, as owner of what they create.
select tests.authenticate_as('wm_owner');
select lives_ok($$with p as (insert into public.projects (organization_id, title, visibility, color)
                  values (tests.org_id('test-wm'), 'Secret launch', 'private', '#12ab9f') returning id) insert into ids select 'private', id from p$$,
                'the organization owner creates a private project');
select lives_ok($$with p as (insert into public.projects (organization_id, title)
                  values (tests.org_id('test-wm'), 'Website') returning id) insert into ids select 'open', id from p$$,
                'the organization owner creates an organization-visible project');
select is((select role from public.project_members where project_id = pg_temp.id('private') and user_id = tests.user_id('wm_owner')),
          'owner', 'the creator becomes the project''s owner member');
select lives_ok($$insert into public.project_members (project_id, user_id, role) values
                  (pg_temp.id('private'), tests.user_id('wm_editor'), 'editor'),
                  (pg_temp.id('private'), tests.user_id('wm_viewer'), 'viewer')$$, 'the project owner adds an editor and a viewer');
select throws_ok($$insert into public.project_members (project_id, user_id, role) values (pg_temp.id('private'), tests.user_id('wm_stranger'), 'viewer')$$,
                 '23514', null, 'a project member must belong to the organization');
select throws_ok($$insert into public.project_members (project_id, user_id, role) values (pg_temp.id('private'), tests.user_id('wm_outsider'), 'boss')$$,
                 '23514', null, 'project roles are owner, editor, commenter, viewer');

-- Rules, by SQLSTATE.
select throws_ok($$insert into public.projects (organization_id, title, color) values (tests.org_id('test-wm'), 'Bad colour', '#12AB9')$$,
                 '23514', null, 'a colour must be #rrggbb');
select throws_ok($$insert into public.projects (organization_id, title, visibility) values (tests.org_id('test-wm'), 'x', 'secret')$$,
                 '23514', null, 'visibility is organization or private');
select throws_ok($$insert into public.projects (organization_id, title, status) values (tests.org_id('test-wm'), 'x', 'deleted')$$,
                 '23514', null, 'status is active, completed, archived or on_hold');
select throws_ok($$insert into public.projects (organization_id, title, archived_at) values (tests.org_id('test-wm'), 'x', now())$$,
                 '23514', null, 'an active project has no archived_at (projects_archived_at_matches_status)');
select throws_ok($$insert into public.projects (organization_id, title) values (tests.org_id('test-wm'), '  ')$$,
                 '23514', null, 'a project needs a title');
select throws_ok($$insert into public.projects (organization_id, title, git_repository) values (tests.org_id('test-wm'), 'x', 'git@x:y')$$,
                 '23514', null, 'git_repository is an http(s) URL');
select lives_ok($$update public.projects set status = 'archived' where id = pg_temp.id('open')$$, 'the owner archives a project');
select isnt((select archived_at from public.projects where id = pg_temp.id('open')), null, 'archiving stamps archived_at');
select lives_ok($$update public.projects set status = 'active' where id = pg_temp.id('open')$$, 'the owner restores it');
select is((select archived_at from public.projects where id = pg_temp.id('open')), null, 'restoring clears archived_at');
select throws_ok($$update public.projects set actual_hours = 10 where id = pg_temp.id('open')$$,
                 '42501', null, 'actual_hours is derived, never written by clients');
select throws_ok($$update public.projects set total_cost = 1 where id = pg_temp.id('open')$$,
                 '42501', null, 'total_cost is derived, never written by clients');
select is((select (actual_hours, total_cost)::text from public.projects where id = pg_temp.id('open')), '(0.00,0.000000)',
          'derived totals start at zero');
select throws_ok($$insert into public.projects (organization_id, title, owner_id) values (tests.org_id('test-wm'), 'x', tests.user_id('wm_editor'))$$,
                 '42501', null, 'a project is created by its owner');
select tests.clear_authentication();
select throws_ok($$update public.projects set owner_id = tests.user_id('wm_stranger') where id = pg_temp.id('open')$$,
                 '23514', null, 'the owner must be a member of the organization');
select throws_ok($$update public.projects set organization_id = tests.org_id('test-wm-other') where id = pg_temp.id('open')$$,
                 '23514', null, 'a project stays in its organization');

-- Reading: the private project.
select tests.authenticate_as('wm_owner');
select is((select count(*)::int from public.projects where id = pg_temp.id('private')), 1, 'organization owner reads the private project');
select tests.authenticate_as('wm_admin');
select is((select count(*)::int from public.projects where id = pg_temp.id('private')), 1, 'a projects.admin holder outside the project reads it');
select tests.authenticate_as('wm_editor');
select is((select count(*)::int from public.projects where id = pg_temp.id('private')), 1, 'project editor reads the private project');
select tests.authenticate_as('wm_viewer');
select is((select count(*)::int from public.projects where id = pg_temp.id('private')), 1, 'project viewer reads the private project');
select is((select count(*)::int from public.project_members where project_id = pg_temp.id('private')), 3, 'project viewer sees who works on it');
select tests.authenticate_as('wm_outsider');
select is((select count(*)::int from public.projects where id = pg_temp.id('private')), 0, 'an organization member outside the private project does not see it');
select is((select count(*)::int from public.project_members where project_id = pg_temp.id('private')), 0, 'nor its members');
select is((select count(*)::int from public.projects where id = pg_temp.id('open')), 1, 'but reads the organization-visible project');
select tests.authenticate_as('wm_stranger');
select is((select count(*)::int from public.projects where organization_id = tests.org_id('test-wm')), 0, 'a stranger sees no project of the organization');
select tests.authenticate_as_anon();
select throws_ok($$select count(*) from public.projects$$, '42501', null, 'anon cannot read projects');

-- Changing.
select tests.authenticate_as('wm_editor');
select is(tests.rows_affected($$update public.projects set title = 'Secret launch v2' where id = pg_temp.id('private')$$), 1::bigint, 'project editor changes the project');
select throws_ok($$insert into public.project_members (project_id, user_id, role) values (pg_temp.id('private'), tests.user_id('wm_outsider'), 'viewer')$$,
                 '42501', null, 'a project editor does not manage members');
select is(tests.rows_affected($$delete from public.projects where id = pg_temp.id('private')$$), 0::bigint, 'project editor cannot delete the project');
select tests.authenticate_as('wm_viewer');
select is(tests.rows_affected($$update public.projects set title = 'mine' where id = pg_temp.id('private')$$), 0::bigint, 'project viewer cannot change the project');
select throws_ok($$insert into public.projects (organization_id, title) values (tests.org_id('test-wm'), 'x')$$,
                 '42501', null, 'an organization viewer (no projects.manage) cannot create a project');
select tests.authenticate_as('wm_outsider');
select is(tests.rows_affected($$update public.projects set title = 'mine' where id = pg_temp.id('open')$$), 0::bigint, 'an organization member who is not a project editor cannot change it');
select tests.authenticate_as('wm_stranger');
select is(tests.rows_affected($$update public.projects set title = 'mine' where organization_id = tests.org_id('test-wm')$$), 0::bigint, 'a stranger changes nothing');

-- Favourites: one's own, on readable projects.
select tests.authenticate_as('wm_viewer');
select lives_ok($$insert into public.project_favorites (project_id) values (pg_temp.id('private'))$$, 'project viewer favourites the project');
select tests.authenticate_as('wm_outsider');
select throws_ok($$insert into public.project_favorites (project_id) values (pg_temp.id('private'))$$, '42501', null, 'no favourite on a project one cannot read');
select lives_ok($$insert into public.project_favorites (project_id) values (pg_temp.id('open'))$$, 'an organization member favourites the organization-visible project');
select is((select count(*)::int from public.project_favorites), 1, 'each user sees only their own favourites');

-- Deleting, and the audit trail.
select tests.authenticate_as('wm_owner');
select is(tests.rows_affected($$delete from public.projects where id = pg_temp.id('private')$$), 1::bigint, 'the organization owner deletes the private project');
select tests.clear_authentication();
select ok((select count(*) from public.audit_logs where resource = 'projects' and resource_id = pg_temp.id('private')::text) >= 3,
          'the audit log records the project''s insert, update and delete');

-- Erasure: deleting the owner's account keeps the project with the organization, without an owner.
insert into public.projects (organization_id, owner_id, title) values (tests.org_id('test-wm'), tests.user_id('wm_editor'), 'Editor''s own');
select throws_ok($$insert into public.projects (organization_id, owner_id, title) values (tests.org_id('test-wm'), null, 'Nobody''s')$$,
                 '23502', null, 'a new project needs an owner');
select throws_ok($$update public.projects set owner_id = null where title = 'Editor''s own'$$, '23502', null, 'an owner is not removed by hand');
select lives_ok($$delete from auth.users where id = tests.user_id('wm_editor')$$, 'the owner''s account can be deleted');
select is((select owner_id from public.projects where title = 'Editor''s own'), null, 'the project stays, without an owner');

select * from finish();
rollback;
