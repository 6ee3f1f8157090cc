-- Work management (seed 004): search over projects, tasks, comments, skills and templates (replacing the seed's
-- search_indexes): weighted tsvectors in the organization's text-search configuration, GIN/trigram indexes, search().

-- btree_gin lets one GIN index hold a project id and a tsvector (or a title's trigrams), so that a search scoped to
-- the caller's readable projects reads only those projects' entries.
create extension if not exists btree_gin with schema extensions;

-- The organization's text-search configuration lives in organizations.settings (key text_search_config, a name from
-- pg_ts_config such as 'english', 'german' or 'simple'): an organization setting like its other preferences, edited
-- with organizations.update. Unset means english; a name that is not (or no longer) a configuration means simple.
create function private.is_known_text_search_config(config text) returns boolean
language sql stable
set search_path = ''
as $$
  select exists (select 1 from pg_catalog.pg_ts_config c
                 where c.cfgname = config and c.cfgnamespace = 'pg_catalog'::regnamespace)
$$;
comment on function private.is_known_text_search_config(text) is 'Whether the name is a built-in text-search configuration (pg_ts_config in pg_catalog).';

create function private.search_config(organization uuid) returns regconfig
language plpgsql stable security definer
set search_path = ''
as $$
declare
  setting text := (select o.settings ->> 'text_search_config' from public.organizations o where o.id = search_config.organization);
begin
  if setting is null then
    return 'pg_catalog.english'::regconfig;
  elsif private.is_known_text_search_config(setting) then
    return ('pg_catalog.' || setting)::regconfig;
  end if;
  return 'pg_catalog.simple'::regconfig;
end;
$$;
comment on function private.search_config(uuid) is 'The organization''s text-search configuration: settings.text_search_config, english when unset, simple when it names no configuration.';

create function private.search_document(config regconfig, title text, body text) returns tsvector
language sql immutable parallel safe
set search_path = ''
as $$
  select pg_catalog.setweight(pg_catalog.to_tsvector(config, coalesce(title, '')), 'A')
      || pg_catalog.setweight(pg_catalog.to_tsvector(config, coalesce(body, '')), 'B')
$$;
comment on function private.search_document(regconfig, text, text) is 'A searchable document: the title''s words weighted A, the body''s weighted B.';

grant execute on function private.is_known_text_search_config(text), private.search_config(uuid) to authenticated, service_role;

-- The setting is checked when written: an unknown name is refused (22023) rather than silently searched as simple.
create function private.check_text_search_config() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.settings ? 'text_search_config'
     and (jsonb_typeof(new.settings -> 'text_search_config') <> 'string'
          or not private.is_known_text_search_config(new.settings ->> 'text_search_config')) then
    raise exception 'unknown text-search configuration %', new.settings -> 'text_search_config' using errcode = '22023',
      constraint = 'organizations_text_search_config_known',
      hint = 'Use a name from pg_ts_config, for example english, german, french or simple.';
  end if;
  return new;
end;
$$;

create trigger organizations_check_text_search_config before insert or update of settings on public.organizations
  for each row execute function private.check_text_search_config();

alter table public.projects add column search_vector tsvector;
comment on column public.projects.search_vector is 'Derived for search(): title (A) and description (B) in the organization''s text-search configuration, kept by trigger.';
alter table public.tasks add column search_vector tsvector;
comment on column public.tasks.search_vector is 'Derived for search(): title (A) and description (B) in the organization''s text-search configuration, kept by trigger.';
alter table public.comments add column search_vector tsvector;
comment on column public.comments.search_vector is 'Derived for search(): the content (B) in the organization''s text-search configuration, kept by trigger.';
alter table public.skills add column search_vector tsvector;
comment on column public.skills.search_vector is 'Derived for search(): name (A) and description (B) in the organization''s text-search configuration, kept by trigger.';
alter table public.templates add column search_vector tsvector;
comment on column public.templates.search_vector is 'Derived for search(): name (A) and description (B) in the organization''s text-search configuration, kept by trigger.';

create index projects_search_vector_idx on public.projects using gin (search_vector);
create index projects_title_trgm_idx on public.projects using gin (title extensions.gin_trgm_ops);
create index tasks_search_vector_idx on public.tasks using gin (project_id, search_vector) where deleted_at is null;
create index tasks_title_trgm_idx on public.tasks using gin (project_id, title extensions.gin_trgm_ops) where deleted_at is null;
create index comments_search_vector_idx on public.comments using gin (project_id, search_vector) where deleted_at is null;
create index skills_search_vector_idx on public.skills using gin (search_vector);
create index skills_name_trgm_idx on public.skills using gin (name extensions.gin_trgm_ops);
create index templates_search_vector_idx on public.templates using gin (search_vector);
create index templates_name_trgm_idx on public.templates using gin (name extensions.gin_trgm_ops);

-- One trigger function for every searchable table: the document's title and body per table.
create function private.set_search_vector() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  config regconfig := private.search_config(new.organization_id);
begin
  case tg_table_name
    when 'projects' then new.search_vector := private.search_document(config, new.title, new.description);
    when 'tasks' then new.search_vector := private.search_document(config, new.title, new.description);
    when 'comments' then new.search_vector := private.search_document(config, null, new.content);
    when 'skills', 'templates' then new.search_vector := private.search_document(config, new.name, new.description);
  end case;
  return new;
end;
$$;

create trigger projects_set_search_vector before insert or update of title, description on public.projects
  for each row execute function private.set_search_vector();
create trigger tasks_set_search_vector before insert or update of title, description on public.tasks
  for each row execute function private.set_search_vector();
create trigger comments_set_search_vector before insert or update of content on public.comments
  for each row execute function private.set_search_vector();
create trigger skills_set_search_vector before insert or update of name, description on public.skills
  for each row execute function private.set_search_vector();
create trigger templates_set_search_vector before insert or update of name, description on public.templates
  for each row execute function private.set_search_vector();

-- A changed configuration re-indexes the organization's documents in the new one.
create function private.reindex_organization_search() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  config regconfig := private.search_config(new.id);
begin
  update public.projects p set search_vector = private.search_document(config, p.title, p.description)
  where p.organization_id = new.id;
  update public.tasks t set search_vector = private.search_document(config, t.title, t.description)
  where t.organization_id = new.id;
  update public.comments c set search_vector = private.search_document(config, null, c.content)
  where c.organization_id = new.id;
  update public.skills k set search_vector = private.search_document(config, k.name, k.description)
  where k.organization_id = new.id;
  update public.templates m set search_vector = private.search_document(config, m.name, m.description)
  where m.organization_id = new.id;
  return null;
end;
$$;

create trigger organizations_reindex_search after update of settings on public.organizations
  for each row when (old.settings ->> 'text_search_config' is distinct from new.settings ->> 'text_search_config')
  execute function private.reindex_organization_search();

-- One search match before its row is read (search_candidates() collects them per text-search configuration).
create type private.search_hit as (
  entity_type text, entity_id uuid, project_id uuid, title text, body text, rank real, config text, tsq tsquery
);
comment on type private.search_hit is 'A search() match: what it is, its text, its rank, and the configuration and query it matched (null for trigram matches).';

-- The candidates of a search, best first, for the caller only: RLS keeps a non-leakproof condition such as @@ or
-- <% out of index scans (it must not run before the policies), so under RLS the GIN indexes could never be used
-- and every row of the caller's projects would pay for its policies. This security definer helper finds the
-- matches through the indexes within what the caller may read by the same rules (readable_project_ids(), the
-- organizations where they hold projects.read, public skills and templates), returning ids and ranks only; search()
-- then reads the rows under RLS, which has the last word. Full text in each text-search configuration of the
-- caller's organizations (the best max_results of each), then, while fewer than max_results were found, trigram
-- matches of titles and names (not comments). Public skills and templates of other organizations are matched with
-- the caller's configurations. Custom plans only (plan_cache_mode): a generic plan cannot see whether a word is rare
-- (read the GIN index) or common (read the caller's projects), and was four times slower on common words.
create function private.search_candidates(words text, wanted text[], within_project uuid, max_results integer)
returns table (entity_type text, entity_id uuid, rank real, config text, tsq tsquery)
language plpgsql stable security definer
set search_path = ''
set pg_trgm.word_similarity_threshold = '0.5'
set plan_cache_mode = 'force_custom_plan'
as $$
declare
  readable uuid[] := array(select r from private.readable_project_ids() r where within_project is null or r = within_project);
  mine uuid[] := array(select o from private.organizations_with_permission('projects.read') o);
  project_scoped boolean := within_project is not null;
  hits private.search_hit[] := array[]::private.search_hit[];
  scope record;
  query tsquery;
  phrase boolean;
begin
  for scope in
    select c.config, array_agg(c.organization_id) as organizations,
           coalesce(array_agg(p.id) filter (where p.id is not null), '{}') as projects
    from (select o as organization_id, private.search_config(o) as config
          from unnest(array(select o from private.user_organization_ids() o)) o) c
    left join public.projects p on p.organization_id = c.organization_id and p.id = any(readable)
    group by c.config
  loop
    query := pg_catalog.websearch_to_tsquery(scope.config, words);
    continue when pg_catalog.numnode(query) = 0;
    phrase := pg_catalog.strpos(query::text, '<') > 0;
    hits := hits || array(
      select row(m.*)::private.search_hit from (
        select 'project'::text, p.id, null::uuid, null::text, null::text,
               (1 + pg_catalog.ts_rank(p.search_vector, query, 32))::real, scope.config::text, query
        from public.projects p
        where 'project' = any(wanted) and p.id = any(scope.projects) and p.search_vector @@ query
        union all
        select 'task', t.id, null, null, null, (1 + pg_catalog.ts_rank(t.search_vector, query, 32))::real, scope.config::text, query
        from public.tasks t
        where 'task' = any(wanted) and t.project_id = any(scope.projects) and t.search_vector @@ query and t.deleted_at is null
        union all
        select 'comment', c.id, null, null, null, (1 + pg_catalog.ts_rank(c.search_vector, query, 32))::real, scope.config::text, query
        from public.comments c
        where 'comment' = any(wanted) and not phrase and c.project_id = any(scope.projects) and c.search_vector @@ query
          and c.deleted_at is null and exists (select 1 from public.tasks t where t.id = c.task_id and t.deleted_at is null)
        union all
        -- A phrase's words are each common enough that the GIN index hands back every comment holding both (tens of
        -- thousands) for the phrase check; reading the caller's projects' comments first is far cheaper.
        select 'comment', c.id, null, null, null, (1 + pg_catalog.ts_rank(c.search_vector, query, 32))::real, scope.config::text, query
        from (select * from public.comments c
              where 'comment' = any(wanted) and phrase and c.project_id = any(scope.projects) and c.deleted_at is null
              offset 0) c
        where c.search_vector @@ query and exists (select 1 from public.tasks t where t.id = c.task_id and t.deleted_at is null)
        union all
        select 'skill', k.id, null, null, null, (1 + pg_catalog.ts_rank(k.search_vector, query, 32))::real, scope.config::text, query
        from public.skills k
        where 'skill' = any(wanted) and not project_scoped and k.search_vector @@ query
          and ((k.organization_id = any(scope.organizations) and k.organization_id = any(mine))
               or (k.is_public and not k.organization_id = any(mine)))
        union all
        select 'template', m.id, null, null, null, (1 + pg_catalog.ts_rank(m.search_vector, query, 32))::real, scope.config::text, query
        from public.templates m
        where 'template' = any(wanted) and not project_scoped and m.search_vector @@ query
          and ((m.organization_id = any(scope.organizations) and m.organization_id = any(mine))
               or (m.is_public and not m.organization_id = any(mine)))
        order by 6 desc limit max_results) m);
  end loop;

  if cardinality(hits) < max_results then
    hits := hits || array(
      select row(m.*)::private.search_hit from (
        select 'project'::text, p.id, null::uuid, null::text, null::text,
               extensions.word_similarity(words, p.title), null::text, null::tsquery
        from public.projects p
        where 'project' = any(wanted) and p.id = any(readable) and words operator(extensions.<%) p.title
        union all
        select 'task', t.id, null, null, null, extensions.word_similarity(words, t.title), null, null
        from public.tasks t
        where 'task' = any(wanted) and t.project_id = any(readable) and words operator(extensions.<%) t.title
          and t.deleted_at is null
        union all
        select 'skill', k.id, null, null, null, extensions.word_similarity(words, k.name), null, null
        from public.skills k
        where 'skill' = any(wanted) and not project_scoped and words operator(extensions.<%) k.name
          and (k.organization_id = any(mine) or k.is_public)
        union all
        select 'template', m.id, null, null, null, extensions.word_similarity(words, m.name), null, null
        from public.templates m
        where 'template' = any(wanted) and not project_scoped and words operator(extensions.<%) m.name
          and (m.organization_id = any(mine) or m.is_public)
        order by 6 desc limit max_results) m (entity_type, entity_id)
      where not exists (select 1 from unnest(hits) h where h.entity_id = m.entity_id));
  end if;

  return query
  select distinct on (h.entity_id) h.entity_type, h.entity_id, h.rank, h.config, h.tsq
  from unnest(hits) h
  order by h.entity_id, h.rank desc;
end;
$$;
comment on function private.search_candidates(text, text[], uuid, integer) is 'For search(): ids and ranks of the rows matching the words that the caller may read (same rules as the policies), through the GIN and trigram indexes. Reveals nothing the caller cannot read.';
grant execute on function private.search_candidates(text, text[], uuid, integer) to authenticated;

-- search(): validates its arguments, takes the candidates, and reads each one under the caller's RLS (security
-- invoker: a row RLS hides is never returned). Deleted rows never come back: soft-deleted tasks, soft-deleted
-- comments (even to their author) and the comments of soft-deleted tasks. Full-text matches rank above trigram
-- ones: their rank is 1 + ts_rank(..., 32) (between 1 and 2), a trigram match's is its word similarity (between 0.5
-- and 1). Snippets come from ts_headline over the body when the body matches (else the title), the matches wrapped
-- in ** (markdown bold); trigram matches get the start of their body. A comment's title is its task's title; skills
-- and templates have no project, so within_project leaves them out.
create function public.search(query text, entity_types text[] default null, within_project uuid default null,
                              max_results integer default 20)
returns table (entity_type text, entity_id uuid, project_id uuid, title text, snippet text, rank real)
language plpgsql stable
set search_path = ''
as $$
declare
  known constant text[] := array['project', 'task', 'comment', 'skill', 'template'];
  words text := btrim(coalesce(query, ''));
  candidates private.search_hit[];
begin
  if words = '' then
    raise exception 'search needs a query' using errcode = '22023';
  elsif char_length(words) > 200 then
    raise exception 'a search query has at most 200 characters' using errcode = '22023';
  elsif entity_types is not null and (cardinality(entity_types) = 0 or not entity_types <@ known) then
    raise exception 'unknown entity type in %', entity_types using errcode = '22023',
      hint = 'Use null for every type, or some of: ' || array_to_string(known, ', ') || '.';
  elsif max_results is null or max_results not between 1 and 100 then
    raise exception 'max_results must be between 1 and 100' using errcode = '22023';
  end if;
  candidates := array(
    select row(c.entity_type, c.entity_id, null, null, null, c.rank, c.config, c.tsq)::private.search_hit
    from private.search_candidates(words, coalesce(entity_types, known), within_project, max_results) c);

  return query
  select h.entity_type, h.entity_id, h.project_id, h.title,
         case when h.tsq is null then left(coalesce(nullif(h.body, ''), h.title), 200)
              else pg_catalog.ts_headline(h.config::regconfig,
                     case when pg_catalog.to_tsvector(h.config::regconfig, coalesce(h.body, '')) @@ h.tsq then h.body else h.title end, h.tsq,
                     'StartSel=**, StopSel=**, MaxWords=30, MinWords=10, MaxFragments=2, FragmentDelimiter=" … "')
         end,
         h.rank
  from (
    select c.entity_type, c.entity_id, p.id as project_id, p.title, p.description as body, c.rank, c.config, c.tsq
    from unnest(candidates) c join public.projects p on p.id = c.entity_id
    where c.entity_type = 'project'
    union all
    select c.entity_type, c.entity_id, t.project_id, t.title, t.description, c.rank, c.config, c.tsq
    from unnest(candidates) c join public.tasks t on t.id = c.entity_id and t.deleted_at is null
    where c.entity_type = 'task'
    union all
    select c.entity_type, c.entity_id, k.project_id, t.title, k.content, c.rank, c.config, c.tsq
    from unnest(candidates) c join public.comments k on k.id = c.entity_id and k.deleted_at is null
    join public.tasks t on t.id = k.task_id and t.deleted_at is null
    where c.entity_type = 'comment'
    union all
    select c.entity_type, c.entity_id, null, s.name, s.description, c.rank, c.config, c.tsq
    from unnest(candidates) c join public.skills s on s.id = c.entity_id
    where c.entity_type = 'skill'
    union all
    select c.entity_type, c.entity_id, null, m.name, m.description, c.rank, c.config, c.tsq
    from unnest(candidates) c join public.templates m on m.id = c.entity_id
    where c.entity_type = 'template'
    order by 6 desc, 1, 2
    limit max_results) h
  order by h.rank desc, h.entity_type, h.entity_id;
end;
$$;
comment on function public.search(text, text[], uuid, integer) is 'Search what the caller may read (RLS decides), best first: projects, tasks, comments, skills and templates by full text in the organization''s configuration, then trigram matches of titles and names for short, partial or misspelt words. entity_types: null for all, or some of project, task, comment, skill, template; within_project limits to one project (skills and templates have none); max_results 1-100.';
grant execute on function public.search(text, text[], uuid, integer) to authenticated;
