-- The analytics actor matrix: owner, admin, member and viewer (all hold analytics.read) read their organization's
-- events, spend, rollups, cohorts and attribution and nothing of another's; a custom role without analytics.read, the
-- AI agent, a stranger and anon read nothing; only the service role writes, and only through the RPCs.
begin;
select plan(42);

select tests.create_user(h) from unnest(array['aa_owner', 'aa_admin', 'aa_member', 'aa_viewer', 'aa_support', 'aa_stranger', 'aa_rival']) h;
select tests.create_organization('aa_owner', 'test-aa-shop');
select tests.create_organization('aa_rival', 'test-aa-rival');
select tests.add_member(tests.org_id('test-aa-shop'), 'aa_admin', 'admin');
select tests.add_member(tests.org_id('test-aa-shop'), 'aa_member', 'member');
select tests.add_member(tests.org_id('test-aa-shop'), 'aa_viewer', 'viewer');
insert into public.roles (organization_id, key, name, rank) values (tests.org_id('test-aa-shop'), 'support', 'Support', 20);
insert into public.role_permissions (role_id, permission_key)
select id, 'members.read' from public.roles where organization_id = tests.org_id('test-aa-shop') and key = 'support';
select tests.add_member(tests.org_id('test-aa-shop'), 'aa_support', 'support');
select tests.authenticate_as('aa_owner');
create temporary table agent_ids on commit drop as select id, user_id from public.create_ai_agent(tests.org_id('test-aa-shop'), 'Ola');
select tests.clear_authentication();
insert into tests.users select 'aa_agent', user_id from agent_ids;

-- Data in both organizations, written by the pipeline.
select tests.authenticate_as_service_role();
select is((public.upsert_events((select jsonb_agg(jsonb_build_object('organization_id', o, 'event_id', gen_random_uuid(), 'occurred_at', now() - interval '1 day',
           'event_name', 'session.started', 'anonymous_id', 'v1', 'props', '{"utm_source": "google"}'::jsonb))
           from unnest(array[tests.org_id('test-aa-shop'), tests.org_id('test-aa-rival')]) o)) ->> 'inserted'), '2', 'the service role stores events for both organizations');
select is((public.upsert_spend((select jsonb_agg(jsonb_build_object('organization_id', o, 'platform', 'google', 'campaign_id', 'c', 'date', current_date - 1, 'spend_cents', 100))
           from unnest(array[tests.org_id('test-aa-shop'), tests.org_id('test-aa-rival')]) o)) ->> 'inserted'), '2', 'the service role stores spend for both');
select cmp_ok(public.recompute_metrics_daily(current_date - 3, current_date), '>=', 2, 'the service role recomputes the rollups');
select tests.clear_authentication();

create temporary table probe (sql text) on commit drop;
insert into probe values ($$
  select (select count(*) from public.analytics_events where organization_id in (tests.org_id('test-aa-shop'), tests.org_id('test-aa-rival')))::int,
         (select count(*) from public.spend where organization_id in (tests.org_id('test-aa-shop'), tests.org_id('test-aa-rival')))::int,
         (select count(*) from public.metrics_daily where organization_id in (tests.org_id('test-aa-shop'), tests.org_id('test-aa-rival')))::int,
         (select count(*) from public.cohorts where organization_id in (tests.org_id('test-aa-shop'), tests.org_id('test-aa-rival')))::int,
         (select count(*) from public.utm_tracks where organization_id in (tests.org_id('test-aa-shop'), tests.org_id('test-aa-rival')))::int$$);
grant select on probe to anon, authenticated, service_role;

select tests.authenticate_as('aa_owner');
select results_eq((select sql from probe), $$values (1, 1, 1, 1, 1)$$, 'the owner reads their organization''s analytics only');
select tests.authenticate_as('aa_admin');
select results_eq((select sql from probe), $$values (1, 1, 1, 1, 1)$$, 'an admin reads their organization''s analytics only');
select tests.authenticate_as('aa_member');
select results_eq((select sql from probe), $$values (1, 1, 1, 1, 1)$$, 'a member reads their organization''s analytics only');
select tests.authenticate_as('aa_viewer');
select results_eq((select sql from probe), $$values (1, 1, 1, 1, 1)$$, 'a viewer reads their organization''s analytics only');
select tests.authenticate_as('aa_support');
select results_eq((select sql from probe), $$values (0, 0, 0, 0, 0)$$, 'a member whose role lacks analytics.read reads nothing');
select tests.authenticate_as('aa_agent');
select results_eq((select sql from probe), $$values (0, 0, 0, 0, 0)$$, 'the AI agent reads nothing');
select tests.authenticate_as('aa_stranger');
select results_eq((select sql from probe), $$values (0, 0, 0, 0, 0)$$, 'a stranger reads nothing');
select tests.authenticate_as('aa_rival');
select is((select organization_id from public.analytics_events), tests.org_id('test-aa-rival'), 'another organization''s owner reads only their own events');
select tests.authenticate_as_service_role();
select results_eq((select sql from probe), $$values (2, 2, 2, 2, 2)$$, 'the service role reads everything');
select tests.authenticate_as_anon();
select throws_ok($$select 1 from public.analytics_events$$, '42501', null, 'anon cannot read analytics_events');
select throws_ok($$select 1 from public.spend$$, '42501', null, 'anon cannot read spend');
select throws_ok($$select 1 from public.metrics_daily$$, '42501', null, 'anon cannot read metrics_daily');
select throws_ok($$select 1 from public.cohorts$$, '42501', null, 'anon cannot read cohorts');
select throws_ok($$select 1 from public.utm_tracks$$, '42501', null, 'anon cannot read utm_tracks');
select throws_ok($$select 1 from public.analytics_metric_events$$, '42501', null, 'anon cannot read analytics_metric_events');
select throws_ok($$select public.upsert_events('[]')$$, '42501', null, 'anon cannot call upsert_events');
select throws_ok($$select * from public.cohort_retention(tests.org_id('test-aa-shop'), current_date - 60, current_date)$$, '42501', null, 'anon cannot call cohort_retention');

-- Writes: nobody but the service role, and it only through the RPCs.
select tests.authenticate_as('aa_owner');
select throws_ok($$insert into public.analytics_events (organization_id, event_id, occurred_at, event_name) values (tests.org_id('test-aa-shop'), gen_random_uuid(), now(), 'x')$$,
  '42501', null, 'the owner cannot insert events directly');
select throws_ok($$update public.analytics_events set props = '{}'$$, '42501', null, 'the owner cannot change events');
select throws_ok($$delete from public.analytics_events$$, '42501', null, 'the owner cannot delete events');
select throws_ok($$insert into public.spend (organization_id, platform, campaign_id, date) values (tests.org_id('test-aa-shop'), 'google', 'x', current_date)$$,
  '42501', null, 'the owner cannot write spend directly');
select throws_ok($$update public.metrics_daily set orders = 100$$, '42501', null, 'the owner cannot change rollups');
select throws_ok($$delete from public.cohorts$$, '42501', null, 'the owner cannot delete cohorts');
select throws_ok($$update public.utm_tracks set first_source = 'x'$$, '42501', null, 'the owner cannot change attribution');
select throws_ok($$insert into public.analytics_metric_events (event_name, metric, description) values ('x', 'traffic', 'x')$$, '42501', null, 'the owner cannot change the metric reference');
select throws_ok($$select public.upsert_events('[]')$$, '42501', null, 'the owner cannot call upsert_events');
select throws_ok($$select public.upsert_spend('[]')$$, '42501', null, 'the owner cannot call upsert_spend');
select throws_ok($$select public.recompute_metrics_daily(current_date, current_date)$$, '42501', null, 'the owner cannot call recompute_metrics_daily');
select lives_ok($$select * from public.cohort_retention(tests.org_id('test-aa-shop'), current_date - 60, current_date)$$, 'the owner reads cohort retention of their organization');
select throws_ok($$select * from public.cohort_retention(tests.org_id('test-aa-rival'), current_date - 60, current_date)$$, '42501', null, 'but not of another organization');
select tests.authenticate_as('aa_viewer');
select is((select sum(users)::int from public.cohort_retention(tests.org_id('test-aa-shop'), ((current_date - 1) - interval '1 month')::date, current_date) where months_since = 0), 1, 'a viewer reads the cohort sizes');
select tests.authenticate_as('aa_support');
select throws_ok($$select * from public.cohort_retention(tests.org_id('test-aa-shop'), current_date - 60, current_date)$$, '42501', null, 'a member without analytics.read cannot read cohort retention');
select tests.authenticate_as('aa_stranger');
select throws_ok($$select * from public.cohort_retention(tests.org_id('test-aa-shop'), current_date - 60, current_date)$$, '42501', null, 'a stranger cannot read cohort retention');
select tests.authenticate_as_service_role();
select throws_ok($$insert into public.analytics_events (organization_id, event_id, occurred_at, event_name) values (tests.org_id('test-aa-shop'), gen_random_uuid(), now(), 'x')$$,
  '42501', null, 'the service role cannot bypass upsert_events with a direct insert');
select throws_ok($$insert into public.spend (organization_id, platform, campaign_id, date) values (tests.org_id('test-aa-shop'), 'google', 'x', current_date)$$,
  '42501', null, 'the service role cannot bypass upsert_spend');
select throws_ok($$delete from public.metrics_daily$$, '42501', null, 'the service role cannot delete rollups directly');
select throws_ok($$insert into public.cohorts (organization_id, anonymous_id, cohort_month, acquired_at) values (tests.org_id('test-aa-shop'), 'x', '2026-01-01', now())$$,
  '42501', null, 'the service role cannot write cohorts directly');
select throws_ok($$select 1 from private.analytics_event_keys$$, '42501', null, 'the key table is not reachable through the API');
select tests.clear_authentication();

-- Audit: spend is organization data that changes, so every change is audited.
select ok(exists (select 1 from public.audit_logs where resource = 'spend' and organization_id = tests.org_id('test-aa-shop')), 'spend changes are audited');

select * from finish();
rollback;
