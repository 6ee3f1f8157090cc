-- Work management (seed 004): skills (reusable AI prompts, public or official), skill_tags, skill_reviews (the seed's
-- reviews JSON), task_suggested_skills, and fork_skill(); fork_count, usage_count and rating are derived.

-- A JSON Schema as the skills store it: null, or an object whose "type" is a JSON Schema type or a non-empty array of them.
create function private.is_json_schema_object(schema jsonb) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select schema is null
      or (jsonb_typeof(schema) = 'object'
          and case jsonb_typeof(schema -> 'type')
                when 'string' then schema ->> 'type' in ('object', 'array', 'string', 'number', 'integer', 'boolean', 'null')
                when 'array' then jsonb_array_length(schema -> 'type') > 0
                                  and not exists (select 1 from jsonb_array_elements(schema -> 'type') t
                                                  where jsonb_typeof(t) <> 'string'
                                                     or t #>> '{}' not in ('object', 'array', 'string', 'number', 'integer', 'boolean', 'null'))
                else false
              end)
$$;
comment on function private.is_json_schema_object(jsonb) is 'True when the value is null or a JSON Schema object with a type (a JSON Schema type name, or a non-empty array of them).';
grant execute on function private.is_json_schema_object(jsonb) to authenticated, service_role;

create table public.skills (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  author_id uuid default auth.uid(),
  forked_from_id uuid,
  name text not null,
  description text not null,
  prompt text not null,
  category text not null,
  ai_provider text,
  mcp_requirements jsonb not null default '[]'::jsonb,
  input_schema jsonb,
  output_schema jsonb,
  is_public boolean not null default false,
  is_official boolean not null default false,
  fork_count integer not null default 0,
  usage_count integer not null default 0,
  rating numeric(3, 2),
  review_count integer not null default 0,
  version integer not null default 1,
  changelog text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint skills_pkey primary key (id),
  constraint skills_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint skills_author_id_fkey foreign key (author_id) references auth.users (id) on delete set null,
  constraint skills_forked_from_id_fkey foreign key (forked_from_id) references public.skills (id) on delete set null,
  constraint skills_name_length check (char_length(btrim(name)) between 1 and 200),
  constraint skills_description_length check (char_length(btrim(description)) between 1 and 5000),
  constraint skills_prompt_length check (char_length(btrim(prompt)) between 1 and 50000),
  constraint skills_category_format check (category ~ '^[a-z0-9][a-z0-9_-]{0,49}$'),
  constraint skills_ai_provider_known check (ai_provider is null or ai_provider in ('openai', 'anthropic', 'google', 'local')),
  constraint skills_mcp_requirements_strings check (jsonb_typeof(mcp_requirements) = 'array'
    and jsonb_array_length(mcp_requirements) <= 50
    and not jsonb_path_exists(mcp_requirements, '$[*] ? (@.type() != "string")')),
  constraint skills_input_schema_valid check (private.is_json_schema_object(input_schema)),
  constraint skills_output_schema_valid check (private.is_json_schema_object(output_schema)),
  constraint skills_official_is_public check (not is_official or is_public),
  constraint skills_counts_non_negative check (fork_count >= 0 and usage_count >= 0 and review_count >= 0),
  constraint skills_rating_range check (rating is null or rating between 1 and 5),
  constraint skills_version_positive check (version >= 1),
  constraint skills_changelog_length check (changelog is null or char_length(changelog) <= 20000),
  constraint skills_not_own_fork check (forked_from_id is distinct from id)
);
comment on table public.skills is 'Reusable AI prompts (seed 004) of an organization. Readable by its projects.read holders and, when is_public, by every signed-in user; written by projects.manage holders. is_official is set only by platform administrators.';
comment on column public.skills.author_id is 'Who wrote the skill (the caller by default); null once their account is deleted (the skill stays with the organization).';
comment on column public.skills.forked_from_id is 'The skill this one was copied from by fork_skill(); null for originals or when the original is deleted.';
comment on column public.skills.prompt is 'The prompt template (the seed''s prompt).';
comment on column public.skills.mcp_requirements is 'Names of the MCP servers the skill needs (a JSON array of strings).';
comment on column public.skills.input_schema is 'JSON Schema of the skill''s inputs: an object with a type (skills_input_schema_valid).';
comment on column public.skills.output_schema is 'JSON Schema of the skill''s outputs: an object with a type (skills_output_schema_valid).';
comment on column public.skills.is_official is 'Marked by a platform administrator (app_metadata.platform_admin); an official skill is public.';
comment on column public.skills.fork_count is 'Derived: skills forked from this one, kept by the database.';
comment on column public.skills.usage_count is 'Derived: tasks suggesting this skill (task_suggested_skills), kept by the database.';
comment on column public.skills.rating is 'Derived: average of the skill''s reviews, null without reviews.';
comment on column public.skills.review_count is 'Derived: number of reviews (a column the seed''s reviews JSON implied).';
comment on column public.skills.version is 'Starts at 1 and goes up by one, by trigger, whenever prompt, input_schema or output_schema change.';

create index skills_organization_id_idx on public.skills (organization_id, category);
create index skills_public_idx on public.skills (category, rating desc nulls last) where is_public;
create index skills_author_id_idx on public.skills (author_id);
create index skills_forked_from_id_idx on public.skills (forked_from_id);

create table public.skill_tags (
  skill_id uuid not null,
  tag text not null,
  organization_id uuid not null,
  constraint skill_tags_pkey primary key (skill_id, tag),
  constraint skill_tags_skill_id_fkey foreign key (skill_id) references public.skills (id) on delete cascade,
  constraint skill_tags_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint skill_tags_tag_format check (tag ~ '^[a-z0-9][a-z0-9 _.+#-]{0,49}$')
);
comment on table public.skill_tags is 'Tags of a skill (seed 004''s SkillTags): lower-case, up to 50 characters. Follow the skill.';
comment on column public.skill_tags.organization_id is 'The skill''s organization (copied by trigger).';

create index skill_tags_tag_idx on public.skill_tags (tag);
create index skill_tags_organization_id_idx on public.skill_tags (organization_id);

create table public.skill_reviews (
  id uuid not null default gen_random_uuid(),
  skill_id uuid not null,
  user_id uuid not null default auth.uid(),
  organization_id uuid not null,
  rating integer not null,
  comment text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint skill_reviews_pkey primary key (id),
  constraint skill_reviews_one_per_user unique (skill_id, user_id),
  constraint skill_reviews_skill_id_fkey foreign key (skill_id) references public.skills (id) on delete cascade,
  constraint skill_reviews_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade,
  constraint skill_reviews_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint skill_reviews_rating_range check (rating between 1 and 5),
  constraint skill_reviews_comment_length check (comment is null or char_length(comment) <= 5000)
);
comment on table public.skill_reviews is 'Reviews of a skill (the seed''s reviews JSON, one row per review): one per user and skill, not by the skill''s author. Readable by whoever reads the skill; each user writes only their own.';
comment on column public.skill_reviews.organization_id is 'The skill''s organization (copied by trigger, for the audit log); the reviewer may belong to another one.';

create index skill_reviews_user_id_idx on public.skill_reviews (user_id);
create index skill_reviews_organization_id_idx on public.skill_reviews (organization_id);

create table public.task_suggested_skills (
  task_id uuid not null,
  skill_id uuid not null,
  organization_id uuid not null,
  added_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  constraint task_suggested_skills_pkey primary key (task_id, skill_id),
  constraint task_suggested_skills_task_id_fkey foreign key (task_id) references public.tasks (id) on delete cascade,
  constraint task_suggested_skills_skill_id_fkey foreign key (skill_id) references public.skills (id) on delete cascade,
  constraint task_suggested_skills_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint task_suggested_skills_added_by_fkey foreign key (added_by) references auth.users (id) on delete set null
);
comment on table public.task_suggested_skills is 'Skills suggested for a task (seed 004''s TaskSuggestedSkills): a skill of the task''s organization or a public one. Follow the task''s project.';
comment on column public.task_suggested_skills.organization_id is 'The task''s organization (copied by trigger).';

create index task_suggested_skills_skill_id_idx on public.task_suggested_skills (skill_id);
create index task_suggested_skills_organization_id_idx on public.task_suggested_skills (organization_id);
create index task_suggested_skills_added_by_idx on public.task_suggested_skills (added_by);

-- skills: official only by platform administrators (security invoker, so current_user is the caller's role; the
-- service role and the database owner may too); the organization never changes; version counts content changes.
create function private.check_skill() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.is_official and (tg_op = 'INSERT' or not old.is_official)
     and current_user in ('authenticated', 'anon') and not private.is_platform_admin() then
    raise exception 'only platform administrators mark a skill official' using errcode = '42501';
  end if;
  if tg_op = 'UPDATE' then
    if new.organization_id <> old.organization_id then
      raise exception 'a skill cannot move to another organization' using errcode = '23514',
        constraint = 'skills_organization_id_immutable';
    end if;
    if old.is_official and not new.is_official and current_user in ('authenticated', 'anon') and not private.is_platform_admin() then
      raise exception 'only platform administrators withdraw a skill''s official mark' using errcode = '42501';
    end if;
    if (new.prompt, new.input_schema, new.output_schema) is distinct from (old.prompt, old.input_schema, old.output_schema) then
      new.version := old.version + 1;
    end if;
  end if;
  return new;
end;
$$;

-- fork_count: one more (or fewer) on the original, `x = x + 1`, safe under concurrent forks.
create function private.count_skill_fork() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' and new.forked_from_id is not null then
    update public.skills set fork_count = fork_count + 1 where id = new.forked_from_id;
  elsif tg_op = 'DELETE' and old.forked_from_id is not null then
    update public.skills set fork_count = fork_count - 1 where id = old.forked_from_id;
  end if;
  return null;
end;
$$;

create trigger skills_check before insert or update on public.skills
  for each row execute function private.check_skill();
create trigger skills_set_updated_at before update on public.skills
  for each row execute function private.set_updated_at();
create trigger skills_count_fork after insert or delete on public.skills
  for each row execute function private.count_skill_fork();
create trigger skills_audit after insert or update or delete on public.skills
  for each row execute function private.audit_row_change();

-- skill_tags and skill_reviews: the skill's organization; no review of one's own skill.
create function private.fill_skill_organization() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  author uuid;
begin
  select s.organization_id, s.author_id into new.organization_id, author from public.skills s where s.id = new.skill_id;
  if new.organization_id is null then
    raise exception 'skill % does not exist', new.skill_id using errcode = '23503';
  end if;
  if tg_table_name = 'skill_reviews' then
    if (to_jsonb(new) ->> 'user_id')::uuid = author then
      raise exception 'authors do not review their own skills' using errcode = '23514', constraint = 'skill_reviews_not_by_author';
    end if;
  end if;
  return new;
end;
$$;

-- rating and review_count: the skill row is locked first, then the average is read by a new statement (READ
-- COMMITTED: it sees every review committed before the lock was granted), so concurrent reviews cannot lose one.
create function private.rate_skill() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  skill uuid := coalesce(new.skill_id, old.skill_id);
begin
  perform 1 from public.skills s where s.id = skill for update;
  update public.skills s
  set rating = (select round(avg(r.rating), 2) from public.skill_reviews r where r.skill_id = skill),
      review_count = (select count(*) from public.skill_reviews r where r.skill_id = skill)
  where s.id = skill;
  return null;
end;
$$;

create trigger skill_tags_fill_organization before insert or update on public.skill_tags
  for each row execute function private.fill_skill_organization();
create trigger skill_tags_audit after insert or update or delete on public.skill_tags
  for each row execute function private.audit_row_change();
create trigger skill_reviews_fill_organization before insert or update of skill_id, user_id on public.skill_reviews
  for each row execute function private.fill_skill_organization();
create trigger skill_reviews_set_updated_at before update on public.skill_reviews
  for each row execute function private.set_updated_at();
create trigger skill_reviews_rate after insert or delete or update of rating on public.skill_reviews
  for each row execute function private.rate_skill();
create trigger skill_reviews_audit after insert or update or delete on public.skill_reviews
  for each row execute function private.audit_row_change();

-- task_suggested_skills: the task's organization; the skill is the organization's own or public; usage_count follows.
create function private.check_task_suggested_skill() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    select t.organization_id into new.organization_id from public.tasks t where t.id = new.task_id;
    if new.organization_id is null then
      raise exception 'task % does not exist', new.task_id using errcode = '23503';
    end if;
    if not exists (select 1 from public.skills s where s.id = new.skill_id and (s.organization_id = new.organization_id or s.is_public)) then
      raise exception 'a task can suggest only its organization''s skills and public ones' using errcode = '23514',
        constraint = 'task_suggested_skills_skill_available';
    end if;
  end if;
  return new;
end;
$$;

create function private.count_skill_usage() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    update public.skills set usage_count = usage_count + 1 where id = new.skill_id;
  else
    update public.skills set usage_count = usage_count - 1 where id = old.skill_id;
  end if;
  return null;
end;
$$;

create trigger task_suggested_skills_check before insert on public.task_suggested_skills
  for each row execute function private.check_task_suggested_skill();
create trigger task_suggested_skills_count_usage after insert or delete on public.task_suggested_skills
  for each row execute function private.count_skill_usage();
create trigger task_suggested_skills_audit after insert or update or delete on public.task_suggested_skills
  for each row execute function private.audit_row_change();

alter table public.skills enable row level security;
alter table public.skill_tags enable row level security;
alter table public.skill_reviews enable row level security;
alter table public.task_suggested_skills enable row level security;

-- skills_select: public skills for every signed-in user; the organization's own for its projects.read holders.
create policy skills_select on public.skills for select to authenticated
  using (is_public or organization_id in (select private.organizations_with_permission('projects.read')));
-- skills_insert: projects.manage holders write their organization's skills.
create policy skills_insert on public.skills for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('projects.manage')));
-- skills_update: projects.manage holders; platform administrators too on public skills (to mark them official).
create policy skills_update on public.skills for update to authenticated
  using (organization_id in (select private.organizations_with_permission('projects.manage'))
         or (is_public and (select private.is_platform_admin())))
  with check (organization_id in (select private.organizations_with_permission('projects.manage'))
              or (is_public and (select private.is_platform_admin())));
-- skills_delete: projects.manage holders.
create policy skills_delete on public.skills for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('projects.manage')));

-- skill_tags follow the skill: read with it, written by its editors.
create policy skill_tags_select on public.skill_tags for select to authenticated
  using (exists (select 1 from public.skills s where s.id = skill_id));
create policy skill_tags_insert on public.skill_tags for insert to authenticated
  with check (organization_id in (select private.organizations_with_permission('projects.manage')));
create policy skill_tags_delete on public.skill_tags for delete to authenticated
  using (organization_id in (select private.organizations_with_permission('projects.manage')));

-- skill_reviews: read with the skill; each user writes their own review of a skill they can read.
create policy skill_reviews_select on public.skill_reviews for select to authenticated
  using (exists (select 1 from public.skills s where s.id = skill_id));
create policy skill_reviews_insert on public.skill_reviews for insert to authenticated
  with check (user_id = (select auth.uid()) and exists (select 1 from public.skills s where s.id = skill_id));
create policy skill_reviews_update on public.skill_reviews for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));
create policy skill_reviews_delete on public.skill_reviews for delete to authenticated
  using (user_id = (select auth.uid()));

-- task_suggested_skills follow the task: read by its readers, changed by its project's editors.
create policy task_suggested_skills_select on public.task_suggested_skills for select to authenticated
  using (exists (select 1 from public.tasks t where t.id = task_id));
create policy task_suggested_skills_insert on public.task_suggested_skills for insert to authenticated
  with check (exists (select 1 from public.tasks t where t.id = task_id and private.can_edit_project(t.project_id))
              and exists (select 1 from public.skills s where s.id = skill_id));
create policy task_suggested_skills_delete on public.task_suggested_skills for delete to authenticated
  using (exists (select 1 from public.tasks t where t.id = task_id and private.can_edit_project(t.project_id)));

grant select, delete on public.skills to authenticated, service_role;
-- author_id is not granted: a skill is the caller's (the column's default), never someone else's by assertion.
grant insert (organization_id, name, description, prompt, category, ai_provider, mcp_requirements,
              input_schema, output_schema, is_public, is_official, changelog)
  on public.skills to authenticated, service_role;
grant update (name, description, prompt, category, ai_provider, mcp_requirements, input_schema, output_schema,
              is_public, is_official, changelog)
  on public.skills to authenticated, service_role;
grant select, delete on public.skill_tags to authenticated, service_role;
grant insert (skill_id, tag) on public.skill_tags to authenticated, service_role;
grant select, delete on public.skill_reviews to authenticated, service_role;
grant insert (skill_id, user_id, rating, comment) on public.skill_reviews to authenticated, service_role;
grant update (rating, comment) on public.skill_reviews to authenticated, service_role;
grant select, delete on public.task_suggested_skills to authenticated, service_role;
grant insert (task_id, skill_id) on public.task_suggested_skills to authenticated, service_role;

-- fork_skill: copies a skill the caller can read (public, or their organization's) into an organization where they
-- hold projects.manage, with its tags; the copy is private, not official, version 1, authored by the caller.
create function public.fork_skill(skill_id uuid, organization_id uuid) returns uuid
language plpgsql security definer
set search_path = ''
as $$
declare
  uid uuid := private.require_user();
  source public.skills;
  copy_id uuid;
begin
  if fork_skill.skill_id is null or fork_skill.organization_id is null then
    raise exception '% is required', case when fork_skill.skill_id is null then 'skill_id' else 'organization_id' end
      using errcode = '22004';
  end if;
  select s.* into source from public.skills s where s.id = fork_skill.skill_id
    and (s.is_public or s.organization_id in (select private.organizations_with_permission('projects.read')));
  if not found then
    raise exception 'skill % not found', fork_skill.skill_id using errcode = 'P0002';
  end if;
  if not private.has_permission(fork_skill.organization_id, 'projects.manage') then
    raise exception 'forking into this organization needs projects.manage there' using errcode = '42501';
  end if;
  insert into public.skills (organization_id, author_id, forked_from_id, name, description, prompt, category, ai_provider,
                             mcp_requirements, input_schema, output_schema, changelog)
  values (fork_skill.organization_id, uid, source.id, source.name, source.description, source.prompt, source.category,
          source.ai_provider, source.mcp_requirements, source.input_schema, source.output_schema,
          format('Forked from %s (version %s)', source.name, source.version))
  returning id into copy_id;
  insert into public.skill_tags (skill_id, tag) select copy_id, t.tag from public.skill_tags t where t.skill_id = source.id;
  return copy_id;
end;
$$;
comment on function public.fork_skill(uuid, uuid) is 'Copies a skill the caller can read (public or their organization''s) into an organization where they hold projects.manage, with its tags; returns the copy''s id. P0002 when the skill is not readable, 42501 without projects.manage.';
grant execute on function public.fork_skill(uuid, uuid) to authenticated;

-- A user's skills and reviews for export_my_data(). Erasure (deleting the account): their skills stay with the
-- organization without the author; their reviews go with them and each skill's rating is recomputed.
create function private.work_skills_personal_data(uid uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'skills_authored', coalesce((select jsonb_agg(jsonb_build_object('id', s.id, 'organization_id', s.organization_id,
        'name', s.name, 'category', s.category, 'is_public', s.is_public, 'version', s.version, 'created_at', s.created_at)
        order by s.created_at, s.id)
      from public.skills s where s.author_id = uid), '[]'::jsonb),
    'skill_reviews', coalesce((select jsonb_agg(jsonb_build_object('id', r.id, 'skill_id', r.skill_id, 'rating', r.rating,
        'comment', r.comment, 'created_at', r.created_at) order by r.created_at, r.id)
      from public.skill_reviews r where r.user_id = uid), '[]'::jsonb))
$$;
comment on function private.work_skills_personal_data(uuid) is 'A user''s authored skills and skill reviews, for their export.';
