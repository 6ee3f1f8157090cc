-- Billing: a permanent failure (data error) is retried a bounded number of times, then kept with its payload as a
-- problem (answered 200), listed in public.billing_sync_problems and applied again by private.replay_stripe_event();
-- a transient failure (deadlock, lock timeout) stays failed (answered 500) however often it happens. Legacy plan
-- shapes are read as prices.
begin;
select plan(37);

create function pg_temp.deliver(event jsonb) returns jsonb
language sql
as $$
  select private.handle_stripe_event(event)
$$;

-- A subscription whose item names its price by id only, a price nothing has delivered: 22023 until the price exists.
create temporary table fixture (key text primary key, event jsonb not null) on commit drop;
grant select on fixture to service_role;
insert into fixture values ('orphan', jsonb_build_object('id', 'evt_p_orphan', 'type', 'customer.subscription.created',
  'created', 1700000100, 'data', jsonb_build_object('object', jsonb_build_object('id', 'sub_p_1', 'object', 'subscription',
    'customer', 'cus_p_1', 'status', 'active',
    'items', jsonb_build_object('data', jsonb_build_array(jsonb_build_object('id', 'si_p_1', 'price', 'price_p_late'))))))),
  ('transient', jsonb_build_object('id', 'evt_p_transient', 'type', 'customer.created', 'created', 1700000200,
    'data', jsonb_build_object('object', jsonb_build_object('id', 'cus_p_locked', 'object', 'customer', 'name', 'Locked')))),
  ('ok', jsonb_build_object('id', 'evt_p_ok', 'type', 'customer.created', 'created', 1700000300,
    'data', jsonb_build_object('object', jsonb_build_object('id', 'cus_p_ok', 'object', 'customer', 'name', 'Fine'))));

-- ----- which failures are permanent -------------------------------------------------------------------------------
select is((select array_agg(s order by s) from unnest(array['22023', '22P02', '23502', '23514', '42883', 'P0001']) s
           where private.stripe_failure_is_permanent(s)),
          array['22023', '22P02', '23502', '23514', '42883', 'P0001'],
          'data errors (classes 22 and 23, the handler''s own 22023) and other errors no retry cures are permanent');
select is((select array_agg(s order by s) from unnest(array['08006', '40001', '40P01', '53300', '55P03', '57P01']) s
           where not private.stripe_failure_is_permanent(s)),
          array['08006', '40001', '40P01', '53300', '55P03', '57P01'],
          'lost connections, serialization failures, deadlocks, lock timeouts and shutdowns are transient');

-- ----- a permanent failure: bounded retries, then kept ------------------------------------------------------------
select is((select array_agg(pg_temp.deliver((select event from fixture where key = 'orphan')) ->> 'outcome')
           from generate_series(1, 4)),
          array['failed', 'failed', 'failed', 'failed'], 'a permanent failure is answered failed (500) for its first four attempts');
select results_eq($$select outcome, sqlstate, error like '22023: price price_p_late arrived without its product%', payload is not null
                    from private.stripe_events where id = 'evt_p_orphan'$$,
                  $$values ('failed'::text, '22023'::text, true, true)$$,
                  'while it fails, the ledger keeps the error, its SQLSTATE and the payload');
select is(pg_temp.deliver((select event from fixture where key = 'orphan')) ->> 'outcome', 'problem',
          'at the fifth attempt a permanent failure becomes a problem (answered 200, so Stripe stops)');
select is(pg_temp.deliver((select event from fixture where key = 'orphan')) - 'error',
          jsonb_build_object('event_id', 'evt_p_orphan', 'type', 'customer.subscription.created', 'outcome', 'problem',
                             'duplicate', false, 'attempts', 6, 'sqlstate', '22023'),
          'a problem delivered again (a resend) is attempted again and still answered as a problem');
select results_eq($$select payload = (select event from fixture where key = 'orphan'), attempts from private.stripe_events
                    where id = 'evt_p_orphan'$$,
                  $$values (true, 6)$$, 'the problem keeps the full payload exactly as delivered, and every attempt is counted');
select is_empty($$select 1 from public.subscriptions where stripe_subscription_id = 'sub_p_1'$$,
                'a problem leaves no partial writes');
select results_eq($$select event_id, state, permanent, sqlstate, attempts from public.billing_sync_problems
                    where event_id = 'evt_p_orphan'$$,
                  $$values ('evt_p_orphan'::text, 'kept'::text, true, '22023'::text, 6)$$,
                  'billing_sync_problems lists the problem as kept, permanent, with its SQLSTATE and attempts');

-- ----- a transient failure: retried as long as it lasts -----------------------------------------------------------
create function pg_temp.deadlock() returns trigger
language plpgsql
as $$
begin
  raise exception 'deadlock detected (simulated)' using errcode = '40P01';
end;
$$;
create trigger simulated_deadlock before insert on public.billing_customers
  for each row when (new.stripe_customer_id = 'cus_p_locked') execute function pg_temp.deadlock();
select is((select array_agg(pg_temp.deliver((select event from fixture where key = 'transient')) ->> 'outcome')
           from generate_series(1, 7)),
          array['failed', 'failed', 'failed', 'failed', 'failed', 'failed', 'failed'],
          'a transient failure stays failed (answered 500, Stripe retries) past the bound, however often it happens');
select results_eq($$select state, permanent, sqlstate, attempts from public.billing_sync_problems where event_id = 'evt_p_transient'$$,
                  $$values ('retrying'::text, false, '40P01'::text, 7)$$,
                  'billing_sync_problems lists a transient failure as retrying');
update private.stripe_events set received_at = now() - interval '4 days' where id = 'evt_p_transient';
select is((select state from public.billing_sync_problems where event_id = 'evt_p_transient'), 'stalled',
          'a failure older than Stripe''s three days of retries is listed as stalled');
drop trigger simulated_deadlock on public.billing_customers;
select is(pg_temp.deliver((select event from fixture where key = 'transient')) ->> 'outcome', 'applied',
          'once the cause is gone, Stripe''s next retry applies the event');
select results_eq($$select outcome, payload is null, error is null, sqlstate is null from private.stripe_events where id = 'evt_p_transient'$$,
                  $$values ('applied'::text, true, true, true)$$, 'an applied event keeps neither payload nor error');
select is_empty($$select 1 from public.billing_sync_problems where event_id = 'evt_p_transient'$$,
                'an applied event leaves billing_sync_problems');

-- A lock held elsewhere that outlasts lock_timeout is just as transient (55P03).
create function pg_temp.lock_timeout() returns trigger
language plpgsql
as $$
begin
  raise exception 'canceling statement due to lock timeout (simulated)' using errcode = '55P03';
end;
$$;
create trigger simulated_lock_timeout before insert on public.billing_customers
  for each row when (new.stripe_customer_id = 'cus_p_ok') execute function pg_temp.lock_timeout();
select is((select array_agg(pg_temp.deliver((select event from fixture where key = 'ok')) ->> 'outcome') from generate_series(1, 6)),
          array['failed', 'failed', 'failed', 'failed', 'failed', 'failed'], 'a lock timeout stays failed past the bound');
drop trigger simulated_lock_timeout on public.billing_customers;
select is(pg_temp.deliver((select event from fixture where key = 'ok')) ->> 'outcome', 'applied',
          'and is applied by the retry after the lock is gone');

-- ----- replay -----------------------------------------------------------------------------------------------------
select tests.create_user('p_member');
select tests.authenticate_as('p_member');
select throws_ok($$select * from public.billing_sync_problems$$, '42501', null, 'a signed-in user cannot read billing_sync_problems');
select throws_ok($$select private.replay_stripe_event('evt_p_orphan')$$, '42501', null, 'a signed-in user cannot replay events');
select tests.authenticate_as_anon();
select throws_ok($$select * from public.billing_sync_problems$$, '42501', null, 'an anonymous client cannot read billing_sync_problems');
select throws_ok($$select private.replay_stripe_event('evt_p_orphan')$$, '42501', null, 'an anonymous client cannot replay events');

select tests.authenticate_as_service_role();
select throws_ok($$select private.replay_stripe_event('evt_p_nothing')$$, 'P0002', null, 'replaying an unknown event id is an error');
select throws_ok($$select private.replay_stripe_event('evt_p_ok')$$, '55000', null, 'an applied event is not kept for replay');
select is(private.replay_stripe_event('evt_p_orphan') ->> 'outcome', 'problem',
          'the service role replays a problem whose cause is not fixed yet: it stays a problem');
select results_eq($$select attempts, payload is not null from private.stripe_events where id = 'evt_p_orphan'$$,
                  $$values (7, true)$$, 'a failed replay is counted and the payload is still kept');

-- The cause is fixed: the price arrives (under a product never delivered, which becomes a placeholder).
select tests.clear_authentication();
select is(pg_temp.deliver(jsonb_build_object('id', 'evt_p_price', 'type', 'price.created', 'created', 1700000150,
            'data', jsonb_build_object('object', jsonb_build_object('id', 'price_p_late', 'object', 'price',
              'product', 'prod_p_never', 'active', true, 'currency', 'usd', 'unit_amount', 900, 'type', 'recurring',
              'recurring', jsonb_build_object('interval', 'month'))))) ->> 'outcome',
          'applied', 'the missing price arrives');
select tests.authenticate_as_service_role();
select is(private.replay_stripe_event('evt_p_orphan') - 'attempts',
          jsonb_build_object('event_id', 'evt_p_orphan', 'type', 'customer.subscription.created', 'outcome', 'applied',
                             'replayed', true, 'error', null, 'sqlstate', null),
          'the replay applies the kept event');
select results_eq($$select outcome, payload is null, error is null, replayed_at is not null from private.stripe_events
                    where id = 'evt_p_orphan'$$,
                  $$values ('applied'::text, true, true, true)$$, 'a successful replay clears the payload and the error');
select is_empty($$select 1 from public.billing_sync_problems where event_id = 'evt_p_orphan'$$,
                'a replayed problem leaves billing_sync_problems');
select tests.clear_authentication();
select results_eq($$select s.status, pr.stripe_price_id from public.subscriptions s
                    join public.subscription_items i on i.subscription_id = s.id join public.prices pr on pr.id = i.price_id
                    where s.stripe_subscription_id = 'sub_p_1'$$,
                  $$values ('active'::text, 'price_p_late'::text)$$, 'the replayed subscription is stored with its item');
select is(pg_temp.deliver((select event from fixture where key = 'orphan')) ->> 'duplicate', 'true',
          'a later redelivery of the replayed event is a duplicate');

-- ----- legacy plan shapes -----------------------------------------------------------------------------------------
select is(pg_temp.deliver(jsonb_build_object('id', 'evt_p_trial', 'type', 'customer.subscription.trial_will_end',
            'created', 1700000400, 'api_version', '2017-08-15',
            'data', jsonb_build_object('object', jsonb_build_object('id', 'sub_p_legacy', 'object', 'subscription',
              'customer', 'cus_p_legacy', 'status', 'trialing', 'current_period_start', 1700000000,
              'current_period_end', 1702592000,
              'plan', jsonb_build_object('id', 'gold_p', 'object', 'plan', 'product', 'prod_p_gold', 'amount', 2000,
                                         'currency', 'usd', 'interval', 'month'),
              'items', jsonb_build_object('object', 'list', 'data', jsonb_build_array(jsonb_build_object('id', 'si_p_legacy',
                'object', 'subscription_item', 'quantity', 1,
                'plan', jsonb_build_object('id', 'gold_p', 'object', 'plan', 'product', 'prod_p_gold', 'amount', 2000,
                                           'currency', 'usd', 'interval', 'month')))))))) ->> 'outcome',
          'applied', 'a trial_will_end whose items carry only a legacy plan, for a product never delivered, is applied');
select results_eq($$select pr.stripe_price_id, pr.stripe_updated_at is null, p.stripe_product_id, p.stripe_updated_at is null
                    from public.subscription_items i join public.prices pr on pr.id = i.price_id
                    join public.products p on p.id = pr.product_id
                    where i.stripe_subscription_item_id = 'si_p_legacy'$$,
                  $$values ('gold_p'::text, true, 'prod_p_gold'::text, true)$$,
                  'the item bills the plan as a price; price and product are placeholders until their events arrive');
select is(pg_temp.deliver(jsonb_build_object('id', 'evt_p_single', 'type', 'customer.subscription.updated', 'created', 1700000500,
            'data', jsonb_build_object('object', jsonb_build_object('id', 'sub_p_single', 'object', 'subscription',
              'customer', 'cus_p_legacy', 'status', 'active', 'quantity', 3,
              'plan', jsonb_build_object('id', 'gold_p', 'object', 'plan', 'product', 'prod_p_gold'))))) ->> 'outcome',
          'applied', 'a legacy single-plan subscription without an items list is applied');
select results_eq($$select i.stripe_subscription_item_id, i.quantity, pr.stripe_price_id from public.subscription_items i
                    join public.subscriptions s on s.id = i.subscription_id join public.prices pr on pr.id = i.price_id
                    where s.stripe_subscription_id = 'sub_p_single'$$,
                  $$values ('sub_p_single'::text, 3, 'gold_p'::text)$$,
                  'its subscription.plan becomes one item, keyed by the subscription''s id');
select is(pg_temp.deliver(jsonb_build_object('id', 'evt_p_plan', 'type', 'plan.created', 'created', 1700000600,
            'data', jsonb_build_object('object', jsonb_build_object('id', 'gold_p', 'object', 'plan', 'product', 'prod_p_gold',
              'active', true, 'amount', 2000, 'currency', 'usd', 'interval', 'year', 'interval_count', 1,
              'nickname', 'Gold')))) ->> 'outcome',
          'applied', 'a legacy plan.created event is applied as a price event');
select results_eq($$select active, unit_amount, type, recurring_interval, recurring_interval_count, nickname
                    from public.prices where stripe_price_id = 'gold_p'$$,
                  $$values (true, 2000::bigint, 'recurring'::text, 'year'::text, 1, 'Gold'::text)$$,
                  'the plan''s amount and interval fill the price');

select * from finish();
rollback;
