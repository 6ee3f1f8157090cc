-- Sign-up: a profile and a personal organization for every new auth.users row.
-- Triggers on auth.users; e-mail changes reach the profile.

-- Every auth.users insert gets a profile and a personal organization it owns; e-mail changes reach the profile.

-- User metadata is client-controlled: a value that does not fit is dropped, never allowed to fail the sign-up.
create function private.try_http_url(value text) returns public.http_url
language plpgsql immutable
set search_path = ''
as $$
begin
  return value::public.http_url;
exception when check_violation then
  return null;
end;
$$;

create function private.handle_new_user() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  display_name text := nullif(btrim(coalesce(new.raw_user_meta_data ->> 'full_name', new.raw_user_meta_data ->> 'name', '')), '');
  personal_org uuid;
begin
  -- AI receptionist agents (public.create_ai_agent, 60-receptionist-agents.sql) are not people: no profile, no
  -- personal organization.
  if coalesce(new.raw_app_meta_data ->> 'agent', '') = 'true' then
    return new;
  end if;
  insert into public.profiles (id, email, full_name, avatar_url)
  values (
    new.id,
    new.email,
    left(display_name, 200),
    private.try_http_url(new.raw_user_meta_data ->> 'avatar_url')
  );
  insert into public.organizations (name, slug, is_personal, personal_user_id, created_by)
  values (
    left(coalesce(display_name, split_part(new.email, '@', 1), 'Personal'), 180) || ' (personal)',
    'personal-' || replace(new.id::text, '-', ''),
    true, new.id, new.id
  )
  returning id into personal_org;
  insert into public.organization_members (organization_id, user_id, role_id)
  values (personal_org, new.id, private.system_role_id('owner'));
  return new;
end;
$$;
comment on function private.handle_new_user() is 'AFTER INSERT on auth.users: creates the profile and the personal organization (owner); skips AI agents (app_metadata.agent).';

create trigger on_auth_user_created after insert on auth.users
  for each row execute function private.handle_new_user();

create function private.handle_user_email_change() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  update public.profiles p set email = new.email where p.id = new.id;
  return new;
end;
$$;

create trigger on_auth_user_email_changed after update of email on auth.users
  for each row when (old.email is distinct from new.email)
  execute function private.handle_user_email_change();
