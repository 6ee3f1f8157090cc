begin;
select plan(13);

select tests.create_user('someone');

select tests.authenticate_as_service_role();
select isnt_empty($$select * from public.get_table_sizes() where table_name = 'organizations'$$,
  'the service role reads table sizes');
select isnt_empty($$select * from public.get_index_usage() where index_name = 'organizations_pkey'$$,
  'the service role reads index usage');
select is(public.system_healthcheck() ->> 'status', 'ok', 'the health check reports ok when every public table has RLS');
select ok((public.system_healthcheck() -> 'partitions_ahead' ->> 'audit_logs')::int >= 1,
  'the health check reports partitions created ahead for audit_logs');
select ok(jsonb_array_length(public.system_healthcheck() -> 'scheduled_jobs') >= 1, 'the health check lists the cron jobs');

select tests.authenticate_as('someone');
select throws_ok($$select public.get_table_sizes()$$, '42501', null, 'a user cannot read table sizes');
select throws_ok($$select public.get_index_usage()$$, '42501', null, 'a user cannot read index usage');
select throws_ok($$select public.system_healthcheck()$$, '42501', null, 'a user cannot run the health check');
select tests.authenticate_as_anon();
select throws_ok($$select public.system_healthcheck()$$, '42501', null, 'anon cannot run the health check');
select tests.clear_authentication();

-- Partition upkeep: a row that landed in the default partition moves into the month's partition when it is created.
insert into public.audit_logs (occurred_at, action, resource) values (date_trunc('month', now()) + interval '6 months', 'insert', 'probe');
select is((select tableoid::regclass::text from public.audit_logs where resource = 'probe'), 'private.audit_logs_default',
  'a row for a month without a partition lands in the default partition');
select private.create_monthly_partition('public.audit_logs', (date_trunc('month', now()) + interval '6 months')::date);
select is((select tableoid::regclass::text from public.audit_logs where resource = 'probe'),
  'private.audit_logs_p' || to_char(now() + interval '6 months', 'YYYYMM'),
  'creating the month''s partition moves the row out of the default partition');
select is(private.ensure_monthly_partitions(1, 2), 0, 'partition upkeep creates nothing when every month exists');
select is((select count(*)::int from pg_inherits where inhparent = 'public.audit_logs'::regclass
             and inhrelid::regclass::text = 'private.audit_logs_p' || to_char(now() + interval '2 months', 'YYYYMM')), 1,
  'the partition two months ahead exists');

select * from finish();
rollback;
