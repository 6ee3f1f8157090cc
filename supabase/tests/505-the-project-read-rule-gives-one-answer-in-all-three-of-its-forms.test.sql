-- The project read rule is written three times, for three callers: private.can_read_project(project) for the caller
-- (one row), private.readable_project_ids() for the caller (a set, for policies over many rows) and
-- private.user_can_read_project(project, user) for someone else (notifications, watchers). Over every pair of these
-- users and projects the three must agree: organization owner and admin, a member and a viewer of the organization
-- (both project members of the private project), a member outside it, a custom role without projects.read, a
-- stranger, a project member who has left the organization, and the owner of a deleted organization.
begin;
select plan(4);

create temporary table ids (name text primary key, id uuid) on commit drop;
grant all on ids to anon, authenticated, service_role;
create function pg_temp.id(key text) returns uuid language sql stable as $$ select id from ids where name = key $$;
grant execute on function pg_temp.id(text) to anon, authenticated, service_role;
create temporary table answers (handle text, project text, caller_form boolean, set_form boolean, user_form boolean) on commit drop;
grant all on answers to authenticated;

select tests.create_user(h) from unnest(array['pr_owner', 'pr_admin', 'pr_member', 'pr_viewer', 'pr_outsider', 'pr_custom',
                                              'pr_stranger', 'pr_left', 'pr_gone']) h;
select tests.create_organization('pr_owner', 'test-pr');
select tests.create_organization('pr_stranger', 'test-pr-other');
select tests.create_organization('pr_gone', 'test-pr-gone');
insert into public.roles (organization_id, key, name, rank) values (tests.org_id('test-pr'), 'pr_no_projects', 'No projects', 20);
select tests.add_member(tests.org_id('test-pr'), 'pr_admin', 'admin');
select tests.add_member(tests.org_id('test-pr'), 'pr_member', 'member');
select tests.add_member(tests.org_id('test-pr'), 'pr_viewer', 'viewer');
select tests.add_member(tests.org_id('test-pr'), 'pr_outsider', 'member');
select tests.add_member(tests.org_id('test-pr'), 'pr_custom', 'pr_no_projects');
select tests.add_member(tests.org_id('test-pr'), 'pr_left', 'member');
with p as (insert into public.projects (organization_id, owner_id, title) values
  (tests.org_id('test-pr'), tests.user_id('pr_owner'), 'Open') returning id)
insert into ids select 'open', id from p;
with p as (insert into public.projects (organization_id, owner_id, title, visibility) values
  (tests.org_id('test-pr'), tests.user_id('pr_owner'), 'Private', 'private') returning id)
insert into ids select 'private', id from p;
with p as (insert into public.projects (organization_id, owner_id, title) values
  (tests.org_id('test-pr-other'), tests.user_id('pr_stranger'), 'Other') returning id)
insert into ids select 'other', id from p;
with p as (insert into public.projects (organization_id, owner_id, title) values
  (tests.org_id('test-pr-gone'), tests.user_id('pr_gone'), 'Gone') returning id)
insert into ids select 'gone', id from p;
insert into public.project_members (project_id, user_id, role) values
  (pg_temp.id('private'), tests.user_id('pr_member'), 'editor'),
  (pg_temp.id('private'), tests.user_id('pr_viewer'), 'viewer'),
  (pg_temp.id('private'), tests.user_id('pr_custom'), 'commenter'),
  (pg_temp.id('private'), tests.user_id('pr_left'), 'editor');
delete from public.organization_members where organization_id = tests.org_id('test-pr') and user_id = tests.user_id('pr_left');
update public.organizations set deleted_at = now() where id = tests.org_id('test-pr-gone');

-- The caller's two forms, asked as each user in turn.
create function pg_temp.ask_as(handle text) returns void language plpgsql as $$
begin
  perform tests.authenticate_as(handle);
  insert into answers (handle, project, caller_form, set_form)
  select handle, i.name, private.can_read_project(i.id), i.id in (select private.readable_project_ids())
  from ids i;
  perform tests.clear_authentication();
end;
$$;
select pg_temp.ask_as(h) from unnest(array['pr_owner', 'pr_admin', 'pr_member', 'pr_viewer', 'pr_outsider', 'pr_custom',
                                           'pr_stranger', 'pr_left', 'pr_gone']) h;
update answers set user_form = private.user_can_read_project(pg_temp.id(project), tests.user_id(handle));

select is((select count(*)::integer from answers), 36, 'every user was asked about every project (9 x 4)');
select is_empty($$select handle || ' / ' || project || ': caller ' || caller_form || ', set ' || set_form || ', user ' || user_form
                  from answers where caller_form is distinct from set_form or caller_form is distinct from user_form$$,
  'can_read_project, readable_project_ids and user_can_read_project give the same answer for every pair');
select set_eq($$select handle, project from answers where caller_form$$,
  $$values ('pr_owner', 'open'), ('pr_owner', 'private'), ('pr_admin', 'open'), ('pr_admin', 'private'),
           ('pr_member', 'open'), ('pr_member', 'private'), ('pr_viewer', 'open'), ('pr_viewer', 'private'),
           ('pr_outsider', 'open'), ('pr_custom', 'private'), ('pr_stranger', 'other')$$,
  'the rule itself: organization-visible with projects.read, a project member, the owner or projects.admin; none after leaving or in a deleted organization');
select ok((select bool_and(not caller_form) from answers where handle in ('pr_left', 'pr_gone')),
  'a project member who left the organization and the owner of a deleted one read nothing');

select * from finish();
rollback;
