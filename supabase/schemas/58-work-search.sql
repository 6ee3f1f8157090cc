-- Work management (seed 004): search over projects and tasks (replacing the seed's search_indexes): weighted
-- tsvector columns in the organization's text-search configuration, GIN and trigram indexes, and public.search().

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

create index projects_search_vector_idx on public.projects using gin (search_vector);
create index projects_title_trgm_idx on public.projects using gin (title extensions.gin_trgm_ops);
create index tasks_search_vector_idx on public.tasks using gin (project_id, search_vector) where deleted_at is null;
create index tasks_title_trgm_idx on public.tasks using gin (project_id, title extensions.gin_trgm_ops) where deleted_at is null;

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
  end case;
  return new;
end;
$$;

create trigger projects_set_search_vector before insert or update of title, description on public.projects
  for each row execute function private.set_search_vector();
create trigger tasks_set_search_vector before insert or update of title, description on public.tasks
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
  return null;
end;
$$;

create trigger organizations_reindex_search after update of settings on public.organizations
  for each row when (old.settings ->> 'text_search_config' is distinct from new.settings ->> 'text_search_config')
  execute function private.reindex_organization_search();

-- One search result before its snippet is made (search() collects them per text-search configuration).
create type private.search_hit as (
  entity_type text, entity_id uuid, project_id uuid, title text, body text, rank real, config text, tsq tsquery
);
comment on type private.search_hit is 'A search() match: what it is, its text, its rank, and the configuration and query it matched (null for trigram matches).';

-- search(): full-text first (websearch_to_tsquery in each configuration of the caller's organizations, the best
-- max_results of each), then, while fewer than max_results came back, trigram matches of titles for short, partial
-- or misspelt words. Security invoker: every table is read under its own RLS; the explicit filter on the caller's
-- readable projects only lets the planner use the (project_id, ...) GIN indexes, it grants nothing. Deleted rows are
-- never returned. Full-text matches rank above trigram ones: their rank is 1 + ts_rank(..., 32) (between 1 and 2), a
-- trigram match's is its word similarity (between 0.5 and 1). Snippets come from ts_headline over the body when the
-- body matches (else the title), matches wrapped in ** (markdown bold).
create function public.search(query text, entity_types text[] default null, within_project uuid default null,
                              max_results integer default 20)
returns table (entity_type text, entity_id uuid, project_id uuid, title text, snippet text, rank real)
language plpgsql stable
set search_path = ''
set pg_trgm.word_similarity_threshold = '0.5'
as $$
declare
  known constant text[] := array['project', 'task'];
  words text := btrim(coalesce(query, ''));
  readable uuid[];
  hits private.search_hit[] := array[]::private.search_hit[];
  scope record;
  tsq tsquery;
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
  readable := array(select r from private.readable_project_ids() r where within_project is null or r = within_project);

  for scope in
    select c.config, array_agg(c.organization_id) as organizations
    from (select o.organization_id, private.search_config(o.organization_id) as config
          from (select distinct p.organization_id from public.projects p where p.id = any(readable)) o) c
    group by c.config
  loop
    tsq := pg_catalog.websearch_to_tsquery(scope.config, words);
    continue when pg_catalog.numnode(tsq) = 0;
    hits := hits || array(
      select row(m.*)::private.search_hit from (
        select 'project'::text, p.id, p.id, p.title, p.description,
               (1 + pg_catalog.ts_rank(p.search_vector, tsq, 32))::real, scope.config::text, tsq
        from public.projects p
        where p.id = any(readable) and p.organization_id = any(scope.organizations) and p.search_vector @@ tsq
          and (entity_types is null or 'project' = any(entity_types))
        union all
        select 'task', t.id, t.project_id, t.title, t.description,
               (1 + pg_catalog.ts_rank(t.search_vector, tsq, 32))::real, scope.config::text, tsq
        from public.tasks t
        where t.project_id = any(readable) and t.organization_id = any(scope.organizations) and t.search_vector @@ tsq
          and t.deleted_at is null and (entity_types is null or 'task' = any(entity_types))
        order by 6 desc limit max_results) m);
  end loop;

  if cardinality(hits) < max_results then
    hits := hits || array(
      select row(m.*)::private.search_hit from (
        select 'project'::text, p.id, p.id, p.title, p.description,
               extensions.word_similarity(words, p.title), null::text, null::tsquery
        from public.projects p
        where p.id = any(readable) and words operator(extensions.<%) p.title
          and (entity_types is null or 'project' = any(entity_types))
        union all
        select 'task', t.id, t.project_id, t.title, t.description, extensions.word_similarity(words, t.title), null, null
        from public.tasks t
        where t.project_id = any(readable) and words operator(extensions.<%) t.title and t.deleted_at is null
          and (entity_types is null or 'task' = any(entity_types))
        order by 6 desc limit max_results) m (entity_type, entity_id)
      where not exists (select 1 from unnest(hits) h where h.entity_id = m.entity_id));
  end if;

  return query
  select h.entity_type, h.entity_id, h.project_id, h.title,
         case when h.tsq is null then left(coalesce(nullif(h.body, ''), h.title), 200)
              else pg_catalog.ts_headline(h.config::regconfig,
                     case when pg_catalog.to_tsvector(h.config::regconfig, coalesce(h.body, '')) @@ h.tsq then h.body else h.title end, h.tsq,
                     'StartSel=**, StopSel=**, MaxWords=30, MinWords=10, MaxFragments=2, FragmentDelimiter=" … "')
         end,
         h.rank
  from (select * from unnest(hits) u order by u.rank desc, u.entity_type, u.entity_id limit max_results) h
  order by h.rank desc, h.entity_type, h.entity_id;
end;
$$;
comment on function public.search(text, text[], uuid, integer) is 'Search the projects and tasks the caller may read (RLS decides), best first: full-text in the organization''s configuration, then trigram matches of titles for short, partial or misspelt words. entity_types: null for all, or some of project, task; within_project limits to one project; max_results 1-100.';
grant execute on function public.search(text, text[], uuid, integer) to authenticated;
