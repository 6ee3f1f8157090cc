-- Billing: Stripe mirrors are read by members holding billing.read and written only through
-- private.handle_stripe_event(); offers and enabled flags are public; entitlements and the percentage rollout are
-- deterministic; seed 003's users.subscription_* fields are derived (public.organization_billing).
begin;
select plan(66);

-- ----- fixtures -------------------------------------------------------------------------------------------------
select tests.create_user('bill_owner');
select tests.create_user('bill_reader');
select tests.create_user('bill_member');
select tests.create_user('bill_stranger');
select tests.create_user('bill_auditor');

create temporary table fixture (key text primary key, id uuid not null) on commit drop;
grant select on fixture to anon, authenticated, service_role;
insert into fixture values
  ('org', tests.create_organization('bill_owner', 'billing-co')),
  ('other_org', tests.create_organization('bill_stranger', 'other-co'));

-- A custom role that holds billing.read and nothing else.
insert into public.roles (organization_id, key, name, rank)
values ((select id from fixture where key = 'org'), 'finance', 'Finance', 20);
insert into public.role_permissions (role_id, permission_key)
select r.id, 'billing.read' from public.roles r where r.key = 'finance';
select tests.add_member((select id from fixture where key = 'org'), 'bill_reader', 'finance');
select tests.add_member((select id from fixture where key = 'org'), 'bill_member', 'member');
-- A custom role that holds audit.read and nothing else.
insert into public.roles (organization_id, key, name, rank)
values ((select id from fixture where key = 'org'), 'auditor', 'Auditor', 20);
insert into public.role_permissions (role_id, permission_key)
select r.id, 'audit.read' from public.roles r where r.key = 'auditor';
select tests.add_member((select id from fixture where key = 'org'), 'bill_auditor', 'auditor');

-- Stripe events, in a realistic order, the way the webhook applies them.
create temporary table outcome (event_id text primary key, result jsonb not null) on commit drop;
create function pg_temp.deliver(event jsonb) returns jsonb
language sql
as $$
  insert into outcome values (event ->> 'id', private.handle_stripe_event(event))
  on conflict (event_id) do update set result = excluded.result
  returning result
$$;

select pg_temp.deliver(jsonb_build_object('id', 'evt_t_prod', 'type', 'product.created', 'created', 1700000000,
  'data', jsonb_build_object('object', jsonb_build_object('id', 'prod_t_pro', 'object', 'product', 'name', 'Pro',
    'active', true, 'metadata', jsonb_build_object('plan', 'pro')))));
select pg_temp.deliver(jsonb_build_object('id', 'evt_t_price', 'type', 'price.created', 'created', 1700000001,
  'data', jsonb_build_object('object', jsonb_build_object('id', 'price_t_pro', 'object', 'price', 'product', 'prod_t_pro',
    'active', true, 'currency', 'usd', 'unit_amount', 2900, 'type', 'recurring',
    'recurring', jsonb_build_object('interval', 'month', 'interval_count', 1)))));
select pg_temp.deliver(jsonb_build_object('id', 'evt_t_checkout', 'type', 'checkout.session.completed', 'created', 1700000010,
  'data', jsonb_build_object('object', jsonb_build_object('id', 'cs_t_1', 'object', 'checkout.session',
    'customer', 'cus_t_1', 'subscription', 'sub_t_1', 'client_reference_id', (select id from fixture where key = 'org')))));
select pg_temp.deliver(jsonb_build_object('id', 'evt_t_sub', 'type', 'customer.subscription.created', 'created', 1700000011,
  'api_version', '2025-03-31.basil',
  'data', jsonb_build_object('object', jsonb_build_object('id', 'sub_t_1', 'object', 'subscription', 'customer', 'cus_t_1',
    'status', 'active', 'currency', 'usd', 'created', 1700000011, 'cancel_at_period_end', false,
    'items', jsonb_build_object('data', jsonb_build_array(jsonb_build_object('id', 'si_t_1', 'quantity', 1,
      'current_period_start', 1700000011, 'current_period_end', 1702592011,
      'price', jsonb_build_object('id', 'price_t_pro', 'product', 'prod_t_pro'))))))));
select pg_temp.deliver(jsonb_build_object('id', 'evt_t_inv', 'type', 'invoice.paid', 'created', 1700000012,
  'data', jsonb_build_object('object', jsonb_build_object('id', 'in_t_1', 'object', 'invoice', 'customer', 'cus_t_1',
    'status', 'paid', 'currency', 'usd', 'amount_due', 2900, 'amount_paid', 2900, 'amount_remaining', 0,
    'parent', jsonb_build_object('subscription_details', jsonb_build_object('subscription', 'sub_t_1'))))));
-- The stranger's organization has its own customer, claimed through the customer's metadata.
select pg_temp.deliver(jsonb_build_object('id', 'evt_t_other', 'type', 'customer.created', 'created', 1700000020,
  'data', jsonb_build_object('object', jsonb_build_object('id', 'cus_t_other', 'object', 'customer',
    'metadata', jsonb_build_object('organization_id', (select id from fixture where key = 'other_org'))))));

insert into public.offers (key, name, plan, discount_percent, enabled, valid_from, valid_to) values
  ('t-live', 'Live offer', 'pro', 20, true, now() - interval '1 day', now() + interval '1 day'),
  ('t-disabled', 'Disabled offer', 'pro', 20, false, now() - interval '1 day', null),
  ('t-expired', 'Expired offer', 'pro', 20, true, now() - interval '10 days', now() - interval '1 day');
insert into public.feature_flags (key, enabled, plans, rollout_percentage) values
  ('t-everyone', true, '{}', 100),
  ('t-pro-only', true, '{pro,business,enterprise}', 100),
  ('t-nobody', true, '{}', 0),
  ('t-half', true, '{}', 50),
  ('t-off', false, '{}', 100);

-- ----- schema -----------------------------------------------------------------------------------------------------
select policies_are('public', 'subscriptions', array['subscriptions_select'], 'subscriptions has a select policy and no write policy');
select policies_are('public', 'invoices', array['invoices_select'], 'invoices has a select policy and no write policy');
select table_privs_are('public', 'subscriptions', 'service_role', array['SELECT'], 'service_role may only read subscriptions');
select table_privs_are('public', 'billing_customers', 'anon', array[]::text[], 'anon has no privilege on billing_customers');
select is((select count(*)::integer from pg_catalog.pg_trigger t where t.tgname in ('billing_customers_audit', 'products_audit',
            'prices_audit', 'subscriptions_audit', 'subscription_items_audit', 'invoices_audit', 'offers_audit',
            'feature_flags_audit')), 8, 'every Stripe mirror, offers and feature_flags carry the audit trigger');

-- ----- the events above, as applied -------------------------------------------------------------------------------
select is((select count(*)::integer from outcome where result ->> 'outcome' = 'applied'), 6, 'each fixture event is applied');
select is((select plan from public.organizations where id = (select id from fixture where key = 'org')), 'pro',
          'the organization''s plan follows its active subscription to a pro product');
select is((select current_period_end from public.subscriptions where stripe_subscription_id = 'sub_t_1'),
          to_timestamp(1702592011), 'the billing period is read from the subscription items (recent API shape)');
select is((select s.stripe_subscription_id from public.invoices i join public.subscriptions s on s.id = i.subscription_id
           where i.stripe_invoice_id = 'in_t_1'), 'sub_t_1', 'an invoice is linked through parent.subscription_details');
select ok((select count(*) > 0 from public.audit_logs where resource = 'subscriptions'
           and organization_id = (select id from fixture where key = 'org')), 'subscription changes are audited under the organization');

-- ----- usage metrics: ordered, non-overlapping periods per organization and metric ------------------------------
select tests.authenticate_as_service_role();
select lives_ok($$insert into public.usage_metrics (organization_id, metric_type, metric_value, period_start, period_end)
                  values ((select id from fixture where key = 'org'), 'ai.tokens', 1200, '2026-10-01', '2026-11-01'),
                         ((select id from fixture where key = 'org'), 'ai.tokens', 900, '2026-11-01', '2026-12-01')$$,
  'the server records usage for consecutive periods');
select throws_ok($$insert into public.usage_metrics (organization_id, metric_type, metric_value, period_start, period_end)
                   values ((select id from fixture where key = 'org'), 'ai.tokens', 5, '2026-10-15', '2026-10-16')$$,
  '23P01', null, 'a period overlapping a recorded one for the same metric is rejected');
select throws_ok($$insert into public.usage_metrics (organization_id, metric_type, metric_value, period_start, period_end)
                   values ((select id from fixture where key = 'org'), 'ai.tokens', 5, '2026-12-02', '2026-12-01')$$,
  '23514', null, 'a period that ends before it starts is rejected');
select tests.clear_authentication();

-- ----- audit log of billing objects --------------------------------------------------------------------------------
select tests.authenticate_as('bill_auditor');
select isnt_empty($$select 1 from public.audit_logs where resource = 'organization_members'$$,
  'an auditor without billing.read reads the organization''s audit log');
select is_empty($$select 1 from public.audit_logs where resource in ('billing_customers', 'subscriptions', 'subscription_items', 'invoices')$$,
  'but not its entries about customers, subscriptions and invoices');
select tests.authenticate_as('bill_owner');
select isnt_empty($$select 1 from public.audit_logs where resource = 'subscriptions'$$,
  'the owner (audit.read and billing.read) reads the billing entries of the audit log');

-- ----- owner ------------------------------------------------------------------------------------------------------
select tests.authenticate_as('bill_owner');
select results_eq($$select stripe_customer_id from public.billing_customers$$, array['cus_t_1'], 'the owner sees the organization''s customer');
select results_eq($$select stripe_subscription_id from public.subscriptions$$, array['sub_t_1'], 'the owner sees the subscription');
select results_eq($$select stripe_subscription_item_id from public.subscription_items$$, array['si_t_1'], 'the owner sees the subscription items');
select results_eq($$select stripe_invoice_id from public.invoices$$, array['in_t_1'], 'the owner sees the invoice');
select throws_ok($$insert into public.subscriptions (stripe_subscription_id, customer_id, status, stripe_updated_at)
                  select 'sub_forged', id, 'active', now() from public.billing_customers$$,
                 '42501', null, 'the owner cannot insert a subscription');
select throws_ok($$update public.invoices set status = 'void'$$, '42501', null, 'the owner cannot update an invoice');
select throws_ok($$delete from public.billing_customers$$, '42501', null, 'the owner cannot delete the customer');
select throws_ok($$update public.organizations set plan = 'enterprise'$$, '42501', null, 'the owner cannot set the plan');
select throws_ok($$select * from private.stripe_events$$, '42501', null, 'the owner cannot read the Stripe event ledger');
select throws_ok($$select private.handle_stripe_event('{}'::jsonb)$$, '42501', null, 'the owner cannot apply Stripe events');
select results_eq($$select subscription_tier, subscription_status, stripe_customer_id from public.organization_billing
                    where organization_id = (select id from fixture where key = 'org')$$,
                  $$values ('pro', 'active', 'cus_t_1')$$, 'the owner sees the derived tier, status and Stripe customer id');
-- Only this test's flags (t-*) count: other flags (demo data, say) may exist in the database.
select results_eq($$select plan, array(select f from unnest(features) f where f like 't-%' order by f)
                    from public.organization_entitlements((select id from fixture where key = 'org'))$$,
                  $$select 'pro'::text, (select array_agg(k order by k) from unnest(array['t-everyone', 't-pro-only']
                      || case when private.rollout_bucket('t-half', (select id from fixture where key = 'org')) < 50
                              then array['t-half'] else '{}' end) k)$$,
                  'entitlements list the plan and exactly the features that apply');
select ok(public.has_feature((select id from fixture where key = 'org'), 't-pro-only'), 'a pro organization has a pro-only feature');
select ok(not public.has_feature((select id from fixture where key = 'org'), 't-nobody'), 'a 0% rollout reaches no one');
select ok(not public.has_feature((select id from fixture where key = 'org'), 't-off'), 'a disabled flag is off');

-- ----- billing reader (custom role with billing.read) -------------------------------------------------------------
select tests.authenticate_as('bill_reader');
select results_eq($$select stripe_subscription_id from public.subscriptions$$, array['sub_t_1'], 'a billing reader sees the subscription');
select results_eq($$select stripe_invoice_id from public.invoices$$, array['in_t_1'], 'a billing reader sees the invoice');
select results_eq($$select stripe_customer_id from public.billing_customers$$, array['cus_t_1'], 'a billing reader sees the customer');
select throws_ok($$update public.subscriptions set status = 'canceled'$$, '42501', null, 'a billing reader cannot update a subscription');

-- ----- plain member ------------------------------------------------------------------------------------------------
select tests.authenticate_as('bill_member');
select is_empty($$select 1 from public.subscriptions$$, 'a plain member sees no subscription');
select is_empty($$select 1 from public.invoices$$, 'a plain member sees no invoice');
select is_empty($$select 1 from public.billing_customers$$, 'a plain member sees no customer');
select results_eq($$select subscription_tier, subscription_status, stripe_customer_id from public.organization_billing
                    where organization_id = (select id from fixture where key = 'org')$$,
                  $$values ('pro'::text, null::text, null::text)$$, 'a plain member sees the plan but not the Stripe fields');
select ok(public.has_feature((select id from fixture where key = 'org'), 't-everyone'), 'a plain member may ask about the organization''s features');

-- ----- stranger ----------------------------------------------------------------------------------------------------
select tests.authenticate_as('bill_stranger');
select results_eq($$select stripe_customer_id from public.billing_customers$$, array['cus_t_other'],
                  'a stranger sees only the customer of their own organization');
select is_empty($$select 1 from public.subscriptions where stripe_subscription_id = 'sub_t_1'$$, 'a stranger does not see another organization''s subscription');
select throws_ok($$select * from public.organization_entitlements((select id from fixture where key = 'org'))$$,
                 'P0002', null, 'a stranger cannot read another organization''s entitlements');
select ok(not public.has_feature((select id from fixture where key = 'other_org'), 't-pro-only'), 'a free organization lacks a pro-only feature');
select results_eq($$select stripe_product_id from public.products$$, array['prod_t_pro'], 'signed-in users see the active product catalogue');

-- ----- anon --------------------------------------------------------------------------------------------------------
select tests.authenticate_as_anon();
select throws_ok($$select * from public.subscriptions$$, '42501', null, 'anon cannot read subscriptions');
select throws_ok($$select * from public.products$$, '42501', null, 'anon cannot read products');
select results_eq($$select key from public.offers where key like 't-%' order by key$$, array['t-live'], 'anon sees only live offers');
select results_eq($$select key from public.feature_flags where key like 't-%' order by key$$,
                  array['t-everyone', 't-half', 't-nobody', 't-pro-only'], 'anon sees only enabled flags');
select throws_ok($$insert into public.offers (key, name, plan, discount_percent) values ('t-anon', 'Anon', 'pro', 10)$$,
                 '42501', null, 'anon cannot create an offer');

-- ----- rollout is deterministic per organization ------------------------------------------------------------------
select tests.clear_authentication();
select is(private.rollout_bucket('t-half', (select id from fixture where key = 'org')),
          private.rollout_bucket('t-half', (select id from fixture where key = 'org')), 'an organization''s bucket never changes');
select is((select count(*)::integer from generate_series(1, 2000) i
           where private.rollout_bucket('t-half', md5(i::text)::uuid) not between 0 and 99), 0, 'buckets lie in 0..99');
select ok((select count(*) from generate_series(1, 2000) i where private.rollout_bucket('t-half', md5(i::text)::uuid) < 50)
          between 900 and 1100, 'a 50% rollout reaches about half of the organizations');
select isnt((select array_agg(private.rollout_bucket('t-half', md5(i::text)::uuid)) from generate_series(1, 20) i),
            (select array_agg(private.rollout_bucket('t-everyone', md5(i::text)::uuid)) from generate_series(1, 20) i),
            'each flag buckets organizations independently');

-- ----- exactly once, ordering, failures (as the webhook's database user) --------------------------------------------
select is(private.handle_stripe_event((select jsonb_build_object('id', 'evt_t_sub', 'type', 'customer.subscription.created',
            'created', 1700000011, 'data', jsonb_build_object('object', jsonb_build_object('id', 'sub_t_1'))))) ->> 'duplicate',
          'true', 'a redelivered event is recognised and changes nothing');
select is(pg_temp.deliver(jsonb_build_object('id', 'evt_t_cancel', 'type', 'customer.subscription.deleted', 'created', 1700000100,
            'data', jsonb_build_object('object', jsonb_build_object('id', 'sub_t_1', 'customer', 'cus_t_1', 'status', 'canceled',
              'canceled_at', 1700000100, 'ended_at', 1700000100, 'items', jsonb_build_object('data', '[]'::jsonb))))) ->> 'outcome',
          'applied', 'a cancellation is applied');
select is(pg_temp.deliver(jsonb_build_object('id', 'evt_t_late', 'type', 'customer.subscription.updated', 'created', 1700000050,
            'data', jsonb_build_object('object', jsonb_build_object('id', 'sub_t_1', 'customer', 'cus_t_1', 'status', 'active',
              'items', jsonb_build_object('data', '[]'::jsonb))))) ->> 'outcome',
          'stale', 'an older update arriving after the cancellation is stale');
select results_eq($$select status from public.subscriptions where stripe_subscription_id = 'sub_t_1'$$, array['canceled'],
                  'a canceled subscription is not revived by a stale update');
select results_eq($$select subscription_tier, subscription_status from public.organization_billing
                    where organization_id = (select id from fixture where key = 'org')$$,
                  $$values ('free'::text, 'canceled'::text)$$, 'after cancellation the derived tier is free and the status canceled');
select is(pg_temp.deliver(jsonb_build_object('id', 'evt_t_bad', 'type', 'customer.subscription.created', 'created', 1700000200,
            'data', jsonb_build_object('object', jsonb_build_object('id', 'sub_t_bad', 'customer', 'cus_t_new', 'status', 'bogus',
              'items', jsonb_build_object('data', '[]'::jsonb))))) ->> 'outcome',
          'failed', 'an event that cannot be applied is reported as failed');
select is_empty($$select 1 from public.billing_customers where stripe_customer_id = 'cus_t_new'$$,
                'a failed event leaves no partial writes');
select results_eq($$select attempts, error like '23514:%' from private.stripe_events where id = 'evt_t_bad'$$,
                  $$values (1, true)$$, 'the ledger records the failure with its SQLSTATE and the attempt');
select is(pg_temp.deliver(jsonb_build_object('id', 'evt_t_bad', 'type', 'customer.subscription.created', 'created', 1700000200,
            'data', jsonb_build_object('object', jsonb_build_object('id', 'sub_t_bad', 'customer', 'cus_t_new', 'status', 'bogus',
              'items', jsonb_build_object('data', '[]'::jsonb))))) ->> 'attempts',
          '2', 'a retried failure is attempted again and counted');
select is(pg_temp.deliver(jsonb_build_object('id', 'evt_t_unknown', 'type', 'charge.refunded', 'created', 1700000300,
            'data', jsonb_build_object('object', jsonb_build_object('id', 'ch_t_1')))) ->> 'outcome',
          'ignored', 'an unhandled event type is recorded as ignored');
select throws_ok($$select private.handle_stripe_event('{"id": "evt_t_shape"}'::jsonb)$$, '22023', null,
                 'something that is not a Stripe event is rejected');
select throws_ok($$insert into public.usage_metrics (organization_id, metric_type, metric_value, period_start, period_end)
                  values ((select id from fixture where key = 'org'), 'calls', 1, now(), now() - interval '1 hour')$$,
                 '23514', null, 'a usage period must end after it starts');

select * from finish();
rollback;
