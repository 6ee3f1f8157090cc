-- Billing: one rule of private.stripe_status_transitions per assertion. Each rule is proven with the two events
-- delivered in both orders to two copies of an object: both copies must end in the same state, the one the rule
-- names. States are read back as "status@t", t being the time of the event whose content won.
begin;
select plan(34);

-- An event about object_type/object_id in the given state, created at `at` (its time is also written into the
-- object, so the winner can be told apart). Types follow the state, as Stripe sends them.
create function pg_temp.ev(object_type text, object_id text, state text, at integer, event_type text default null)
returns jsonb
language sql
as $$
  select jsonb_build_object(
    'id', 'evt_' || object_id || '_' || state || '_' || at || coalesce('_' || replace(event_type, '.', '_'), ''),
    'type', coalesce(event_type, case object_type
      when 'invoice' then case state when 'draft' then 'invoice.created' when 'open' then 'invoice.finalized'
                                     when 'paid' then 'invoice.paid' when 'void' then 'invoice.voided'
                                     else 'invoice.marked_uncollectible' end
      when 'subscription' then case state when 'incomplete' then 'customer.subscription.created'
                                          when 'canceled' then 'customer.subscription.deleted'
                                          else 'customer.subscription.updated' end
      else object_type || case state when 'deleted' then '.deleted' else '.updated' end end),
    'created', at,
    'data', jsonb_build_object('object', case object_type
      when 'invoice' then jsonb_build_object('id', object_id, 'object', 'invoice', 'customer', 'cus_lattice',
        'status', state, 'currency', 'usd', 'amount_due', at, 'amount_paid', 0, 'amount_remaining', at)
      when 'subscription' then jsonb_build_object('id', object_id, 'object', 'subscription', 'customer', 'cus_lattice',
        'status', state, 'metadata', jsonb_build_object('at', at), 'items', jsonb_build_object('data', '[]'::jsonb))
      when 'customer' then jsonb_build_object('id', object_id, 'object', 'customer', 'name', 'at ' || at)
      when 'product' then jsonb_build_object('id', object_id, 'object', 'product', 'name', 'at ' || at, 'active', true)
      when 'price' then jsonb_build_object('id', object_id, 'object', 'price', 'product', 'prod_lattice', 'active', true,
        'currency', 'usd', 'unit_amount', at, 'type', 'one_time')
      when 'plan' then jsonb_build_object('id', object_id, 'object', 'plan', 'product', 'prod_lattice', 'active', true,
        'currency', 'usd', 'amount', at, 'interval', 'month', 'interval_count', 1)
    end))
$$;

-- The stored state as status@t.
create function pg_temp.state(object_type text, object_id text) returns text
language sql
as $$
  select case object_type
    when 'invoice' then (select status || '@' || amount_due from public.invoices where stripe_invoice_id = object_id)
    when 'subscription' then (select status || '@' || (metadata ->> 'at') from public.subscriptions
                              where stripe_subscription_id = object_id)
    when 'customer' then (select case when deleted_at is null then 'live' else 'deleted' end || '@' || substr(name, 4)
                          from public.billing_customers where stripe_customer_id = object_id)
    when 'product' then (select case when deleted_at is null then 'live' else 'deleted' end || '@' || substr(name, 4)
                         from public.products where stripe_product_id = object_id)
    else (select case when deleted_at is null then 'live' else 'deleted' end || '@' || unit_amount
          from public.prices where stripe_price_id = object_id)
  end
$$;

-- Delivers a then b to one copy and b then a to another; the two final states.
create function pg_temp.both_orders(object_type text, tag text, a_state text, a_at integer, b_state text, b_at integer,
                                    a_type text default null, b_type text default null)
returns text[]
language plpgsql
as $$
declare
  first_id text := case object_type when 'invoice' then 'in' when 'subscription' then 'sub' when 'customer' then 'cus'
                                    when 'product' then 'prod' else 'price' end || '_lattice_' || tag;
begin
  perform private.handle_stripe_event(pg_temp.ev(object_type, first_id || '_ab', a_state, a_at, a_type));
  perform private.handle_stripe_event(pg_temp.ev(object_type, first_id || '_ab', b_state, b_at, b_type));
  perform private.handle_stripe_event(pg_temp.ev(object_type, first_id || '_ba', b_state, b_at, b_type));
  perform private.handle_stripe_event(pg_temp.ev(object_type, first_id || '_ba', a_state, a_at, a_type));
  return array[pg_temp.state(case when object_type = 'plan' then 'price' else object_type end, first_id || '_ab'),
               pg_temp.state(case when object_type = 'plan' then 'price' else object_type end, first_id || '_ba')];
end;
$$;

-- ----- the table itself ---------------------------------------------------------------------------------------------
select is_empty($$
  select a.object_type, a.from_status, b.to_status
  from private.stripe_status_transitions a
  join private.stripe_status_transitions b on b.object_type = a.object_type and b.from_status = a.to_status
  where a.from_status <> b.to_status
  except
  select object_type, from_status, to_status from private.stripe_status_transitions
$$, 'the transition table is transitively closed: a state reachable through skipped states is listed directly');
select is_empty($$
  select object_type, s from private.stripe_status_transitions, unnest(array[from_status, to_status]) s
  where s <> all (case object_type
    when 'invoice' then array['draft', 'open', 'paid', 'uncollectible', 'void']
    when 'subscription' then array['trialing', 'active', 'past_due', 'canceled', 'unpaid', 'incomplete', 'incomplete_expired', 'paused']
    else array['live', 'deleted'] end)
$$, 'every state in the transition table is one the mirror can store');
select is_empty($$
  select from_status from private.stripe_status_transitions
  where (object_type = 'invoice' and from_status in ('paid', 'void'))
     or (object_type = 'subscription' and from_status in ('canceled', 'incomplete_expired'))
     or (object_type in ('customer', 'product', 'price') and from_status = 'deleted')
$$, 'paid and void invoices, canceled and expired subscriptions and deleted objects have no way out');

-- ----- invoices -------------------------------------------------------------------------------------------------------
select is(pg_temp.both_orders('invoice', 'r1', 'draft', 100, 'open', 110), array['open@110', 'open@110'],
          'invoice draft -> open: open wins in both orders');
select is(pg_temp.both_orders('invoice', 'r2', 'open', 100, 'paid', 110), array['paid@110', 'paid@110'],
          'invoice open -> paid: paid wins in both orders');
select is(pg_temp.both_orders('invoice', 'r3', 'open', 100, 'void', 110), array['void@110', 'void@110'],
          'invoice open -> void: void wins in both orders');
select is(pg_temp.both_orders('invoice', 'r4', 'open', 100, 'uncollectible', 110), array['uncollectible@110', 'uncollectible@110'],
          'invoice open -> uncollectible: uncollectible wins in both orders');
select is(pg_temp.both_orders('invoice', 'r5', 'uncollectible', 100, 'paid', 110), array['paid@110', 'paid@110'],
          'invoice uncollectible -> paid: paid wins in both orders');
select is(pg_temp.both_orders('invoice', 'r6', 'uncollectible', 100, 'void', 110), array['void@110', 'void@110'],
          'invoice uncollectible -> void: void wins in both orders');
select is(pg_temp.both_orders('invoice', 'r7', 'draft', 100, 'paid', 110), array['paid@110', 'paid@110'],
          'invoice draft -> paid with the finalization missed: paid wins in both orders');
select is(pg_temp.both_orders('invoice', 'r8', 'paid', 100, 'open', 110, null, 'invoice.updated'), array['paid@100', 'paid@100'],
          'nothing goes back to open: a newer open event never replaces paid');
select is(pg_temp.both_orders('invoice', 'r9', 'open', 100, 'draft', 110, null, 'invoice.updated'), array['open@100', 'open@100'],
          'nothing goes back to draft: a newer draft event never replaces open');
select is(pg_temp.both_orders('invoice', 'r10', 'uncollectible', 100, 'open', 110, null, 'invoice.updated'),
          array['uncollectible@100', 'uncollectible@100'], 'an uncollectible invoice does not reopen through a newer open event');
select is(pg_temp.both_orders('invoice', 'r11', 'paid', 100, 'open', 90), array['paid@100', 'paid@100'],
          'the later state wins even when its event is the newer one of the two (finalized arriving after paid)');
select is(pg_temp.both_orders('invoice', 'r12', 'open', 100, 'paid', 90), array['paid@90', 'paid@90'],
          'the later state wins even when its event is older (a paid event stamped before the stored open one)');
select is(pg_temp.both_orders('invoice', 'r13', 'paid', 100, 'void', 110), array['void@110', 'void@110'],
          'two end states (paid, void) that no transition joins: the newer event wins in both orders');
select is(pg_temp.both_orders('invoice', 'r14', 'open', 100, 'open', 110, 'invoice.finalized', 'invoice.updated'),
          array['open@110', 'open@110'], 'the same state: the newer event wins in both orders');
select is(pg_temp.both_orders('invoice', 'r15', 'draft', 100, 'draft', 100, 'invoice.created', 'invoice.updated'),
          array['draft@100', 'draft@100'], 'the same state in the same second: a *.created never replaces what is stored');

-- ----- subscriptions ----------------------------------------------------------------------------------------------
select is(pg_temp.both_orders('subscription', 'r1', 'incomplete', 100, 'active', 110), array['active@110', 'active@110'],
          'subscription incomplete -> active: active wins in both orders');
select is(pg_temp.both_orders('subscription', 'r2', 'incomplete', 110, 'active', 100), array['active@100', 'active@100'],
          'a subscription never becomes incomplete again, even through a newer event');
select is(pg_temp.both_orders('subscription', 'r3', 'active', 100, 'past_due', 110), array['past_due@110', 'past_due@110'],
          'active then past_due: between live states the newer event wins in both orders');
select is(pg_temp.both_orders('subscription', 'r4', 'past_due', 100, 'active', 110), array['active@110', 'active@110'],
          'past_due then active (payment recovered): the newer event wins in both orders');
select is(pg_temp.both_orders('subscription', 'r5', 'trialing', 100, 'active', 110), array['active@110', 'active@110'],
          'trialing then active: the newer event wins in both orders');
select is(pg_temp.both_orders('subscription', 'r6', 'active', 100, 'canceled', 110), array['canceled@110', 'canceled@110'],
          'subscription active -> canceled: canceled wins in both orders');
select is(pg_temp.both_orders('subscription', 'r7', 'canceled', 100, 'active', 90), array['canceled@100', 'canceled@100'],
          'a canceled subscription never becomes active again through an older event');
select is(pg_temp.both_orders('subscription', 'r8', 'canceled', 100, 'active', 110), array['canceled@100', 'canceled@100'],
          'a canceled subscription never becomes active again, even through a newer event');
select is(pg_temp.both_orders('subscription', 'r9', 'incomplete', 100, 'incomplete_expired', 110),
          array['incomplete_expired@110', 'incomplete_expired@110'], 'subscription incomplete -> incomplete_expired wins in both orders');
select is(pg_temp.both_orders('subscription', 'r10', 'incomplete_expired', 100, 'active', 110),
          array['incomplete_expired@100', 'incomplete_expired@100'], 'an expired subscription never becomes active');

-- ----- customers, products, prices and legacy plans ---------------------------------------------------------------
select is(pg_temp.both_orders('customer', 'r1', 'deleted', 100, 'live', 110), array['deleted@100', 'deleted@100'],
          'a deleted customer stays deleted, even through a newer update');
select is(pg_temp.both_orders('customer', 'r2', 'live', 110, 'deleted', 100), array['deleted@100', 'deleted@100'],
          'customer live -> deleted: the deletion wins even when the update is newer');
select is(pg_temp.both_orders('product', 'r1', 'live', 110, 'deleted', 100), array['deleted@100', 'deleted@100'],
          'product live -> deleted: the deletion wins in both orders');
select is(pg_temp.both_orders('product', 'r2', 'live', 100, 'live', 110), array['live@110', 'live@110'],
          'two updates of a product: the newer wins in both orders');
select is(pg_temp.both_orders('price', 'r1', 'live', 110, 'deleted', 100), array['deleted@100', 'deleted@100'],
          'price live -> deleted: the deletion wins in both orders');
select is(pg_temp.both_orders('plan', 'r1', 'live', 100, 'deleted', 110), array['deleted@110', 'deleted@110'],
          'legacy plan.* events are price events: plan.deleted deletes the price in both orders');

select * from finish();
rollback;
