-- Catalog-wide checks: what a per-table test forgets. They cover every table and function, including the ones
-- later modules add, so a new table without RLS, policy, comment or FK index fails here.
begin;
select plan(14);

select is_empty($$
  select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relispartition and not c.relrowsecurity
$$, 'every table in public has row-level security enabled');

select is_empty($$
  select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relispartition
    and not exists (select 1 from pg_policies p where p.schemaname = 'public' and p.tablename = c.relname)
$$, 'every table in public has at least one policy');

select is_empty($$
  select schemaname || '.' || tablename || ' ' || policyname from pg_policies
  where schemaname = 'public' and 'public' = any (roles)
$$, 'no policy applies to the PUBLIC pseudo-role: each names anon, authenticated or service_role');

select is_empty($$
  select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relispartition
    and obj_description(c.oid, 'pg_class') is null
$$, 'every table in public has a comment');

select is_empty($$
  select con.conrelid::regclass::text || ' ' || con.conname
  from pg_constraint con
  join pg_namespace n on n.oid = (select relnamespace from pg_class where oid = con.conrelid)
  where con.contype = 'f' and n.nspname in ('public', 'private')
    and not exists (
      select 1 from pg_index i
      where i.indrelid = con.conrelid and i.indkey[0] = con.conkey[1])
$$, 'every foreign key has an index whose leading column is the foreign-key column');

select is_empty($$
  select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
  where n.nspname in ('public', 'private') and p.prosecdef
    and not ('search_path=""' = any (coalesce(p.proconfig, '{}')) or 'search_path=' = any (coalesce(p.proconfig, '{}')))
$$, 'every security definer function pins search_path to the empty string');

select is_empty($$
  select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
  where n.nspname in ('public', 'private') and p.prokind = 'f'
    and not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) c where c like 'search_path=%')
    and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
$$, 'every function in public and private sets its search_path');

select is_empty($$
  select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
  where n.nspname in ('public', 'private') and has_function_privilege('public', p.oid, 'execute')
    and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
$$, 'no function in public or private is executable by PUBLIC: execute is granted function by function');

-- What anon may touch is a short, deliberate list (public read of live offers and enabled flags); anything else is a
-- mistake. Column grants count too: has_any_column_privilege sees them where has_table_privilege does not.
select is_empty($$
  select c.relname || ' ' || priv from pg_class c join pg_namespace n on n.oid = c.relnamespace
  cross join unnest(array['select', 'insert', 'update', 'references']) as priv
  where n.nspname in ('public', 'private') and c.relkind in ('r', 'p', 'v', 'm')
    and has_any_column_privilege('anon', c.oid, priv)
    and not (priv = 'select' and n.nspname = 'public' and c.relname in ('offers', 'feature_flags'))
$$, 'anon holds no table or column privilege beyond the deliberate public-read list');

select is_empty($$
  select c.relname || ' ' || priv from pg_class c join pg_namespace n on n.oid = c.relnamespace
  cross join unnest(array['delete', 'truncate', 'trigger']) as priv
  where n.nspname in ('public', 'private') and c.relkind in ('r', 'p', 'v', 'm')
    and has_table_privilege('anon', c.oid, priv)
$$, 'anon can delete, truncate or add triggers to no table');

select is_empty($$
  select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname in ('public', 'private') and c.relkind = 'S'
    and (has_sequence_privilege('anon', c.oid, 'usage') or has_sequence_privilege('anon', c.oid, 'select')
         or has_sequence_privilege('anon', c.oid, 'update'))
$$, 'anon holds no sequence privilege');

select is_empty($$
  select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
  where n.nspname in ('public', 'private') and has_function_privilege('anon', p.oid, 'execute')
    and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
$$, 'anon can execute no function in public or private');

select is_empty($$
  select c.relname || ' ' || r from pg_class c join pg_namespace n on n.oid = c.relnamespace
  cross join unnest(array['anon', 'authenticated']) as r
  where n.nspname = 'private' and c.relkind in ('r', 'p', 'v', 'm')
    and (has_table_privilege(r, c.oid, 'select') or has_table_privilege(r, c.oid, 'insert')
         or has_table_privilege(r, c.oid, 'update') or has_table_privilege(r, c.oid, 'delete'))
$$, 'no table in private is readable or writable by anon or authenticated');

select is_empty($$
  select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
  join pg_attribute a on a.attrelid = c.oid and a.attname = 'updated_at' and not a.attisdropped
  where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relispartition
    and not exists (
      select 1 from pg_trigger t join pg_proc f on f.oid = t.tgfoid
      where t.tgrelid = c.oid and f.proname = 'set_updated_at' and not t.tgisinternal)
$$, 'every table with updated_at keeps it current with the shared trigger');

select * from finish();
rollback;
