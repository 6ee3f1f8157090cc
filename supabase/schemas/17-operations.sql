-- Operations: get_table_sizes(), get_index_usage(), system_healthcheck().
-- Read-only statistics for operators; service_role only.

-- Read-only views of the database's health for operators; service_role only. They return statistics, never rows.

create function public.get_table_sizes()
returns table (schema_name text, table_name text, row_estimate bigint, total_bytes bigint, table_bytes bigint,
               index_bytes bigint, total_size text)
language sql stable
set search_path = ''
as $$
  select n.nspname::text, c.relname::text, c.reltuples::bigint,
         pg_catalog.pg_total_relation_size(c.oid), pg_catalog.pg_relation_size(c.oid),
         pg_catalog.pg_indexes_size(c.oid), pg_catalog.pg_size_pretty(pg_catalog.pg_total_relation_size(c.oid))
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p') and n.nspname in ('public', 'private')
  order by pg_catalog.pg_total_relation_size(c.oid) desc
$$;
comment on function public.get_table_sizes() is 'Size of every table in public and private (service_role).';

create function public.get_index_usage()
returns table (schema_name text, table_name text, index_name text, index_scans bigint, index_bytes bigint,
               is_unique boolean)
language sql stable
set search_path = ''
as $$
  select s.schemaname::text, s.relname::text, s.indexrelname::text, s.idx_scan,
         pg_catalog.pg_relation_size(s.indexrelid), i.indisunique
  from pg_catalog.pg_stat_user_indexes s
  join pg_catalog.pg_index i on i.indexrelid = s.indexrelid
  where s.schemaname in ('public', 'private')
  order by s.idx_scan, pg_catalog.pg_relation_size(s.indexrelid) desc
$$;
comment on function public.get_index_usage() is 'Scans and size of every index in public and private, least used first (service_role).';

-- security definer: reads cron.job, which only the database owner may read on Supabase.
create function public.system_healthcheck()
returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'status', case when exists (
                select 1 from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
                where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relrowsecurity and not c.relispartition)
              then 'degraded' else 'ok' end,
    'checked_at', pg_catalog.now(),
    'server_version', pg_catalog.current_setting('server_version'),
    'database_bytes', pg_catalog.pg_database_size(pg_catalog.current_database()),
    'connections', jsonb_build_object(
      'used', (select count(*) from pg_catalog.pg_stat_activity where datname = pg_catalog.current_database()),
      'max', pg_catalog.current_setting('max_connections')::integer),
    'long_running_queries', (select count(*) from pg_catalog.pg_stat_activity
                             where state = 'active' and query_start < pg_catalog.now() - interval '5 minutes'),
    'tables_without_rls', (select coalesce(jsonb_agg(c.relname order by c.relname), '[]'::jsonb)
                           from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
                           where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relrowsecurity
                             and not c.relispartition),
    'partitions_ahead', (select coalesce(jsonb_object_agg(c.relname, (
                            select count(*) from pg_catalog.pg_inherits i
                            join pg_catalog.pg_class pc on pc.oid = i.inhrelid
                            where i.inhparent = p.partrelid
                              and pc.relname >= c.relname || '_p' || to_char(pg_catalog.now() + interval '1 month', 'YYYYMM')
                              and pc.relname <> c.relname || '_default')), '{}'::jsonb)
                         from pg_catalog.pg_partitioned_table p
                         join pg_catalog.pg_class c on c.oid = p.partrelid
                         join pg_catalog.pg_namespace n on n.oid = c.relnamespace
                         where n.nspname = 'public'),
    'scheduled_jobs', (select coalesce(jsonb_agg(jsonb_build_object('name', j.jobname, 'schedule', j.schedule,
                                                                     'active', j.active) order by j.jobname), '[]'::jsonb)
                       from cron.job j)
  )
$$;
comment on function public.system_healthcheck() is 'JSON summary: RLS coverage, connections, long queries, partitions ahead, cron jobs (service_role).';

grant execute on function public.get_table_sizes(), public.get_index_usage(), public.system_healthcheck() to service_role;
