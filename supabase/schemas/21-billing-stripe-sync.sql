-- Billing: the Stripe event ledger, the state transitions, and how each Stripe object is applied to the mirror.
-- Exactly-once application of verified Stripe events, in any order, onto the mirror (20-billing-stripe-mirror.sql).

-- The ledger of Stripe events: one row per event id, which is what makes a redelivery a no-op. Only what is needed
-- to reason about delivery is kept for events that were applied. The payload (it can hold personal data such as a
-- customer's name and e-mail, never card data here) is kept only while an event fails, so that a problem can be
-- inspected and replayed; it is cleared when the event is applied, and retention deletes the row after 90 days.
create table private.stripe_events (
  id text not null,
  type text not null,
  api_version text,
  created timestamptz not null,
  livemode boolean not null default false,
  object_type text,
  object_id text,
  received_at timestamptz not null default now(),
  processed_at timestamptz,
  outcome text,
  error text,
  sqlstate text,
  attempts integer not null default 0,
  payload jsonb,
  replayed_at timestamptz,
  constraint stripe_events_pkey primary key (id),
  constraint stripe_events_id_format check (id ~ '^[A-Za-z0-9_]{1,255}$'),
  constraint stripe_events_outcome_known check (outcome is null or outcome in ('applied', 'ignored', 'stale', 'failed', 'problem')),
  constraint stripe_events_processed_has_outcome check ((outcome is null) = (processed_at is null)),
  constraint stripe_events_failed_has_error check (outcome not in ('failed', 'problem') or (error is not null and sqlstate is not null)),
  constraint stripe_events_sqlstate_format check (sqlstate is null or sqlstate ~ '^[0-9A-Z]{5}$'),
  constraint stripe_events_payload_only_while_failing check (payload is null or outcome in ('failed', 'problem')),
  constraint stripe_events_problem_has_payload check (outcome is distinct from 'problem' or payload is not null),
  constraint stripe_events_attempts_not_negative check (attempts >= 0)
);
comment on table private.stripe_events is 'Stripe event ledger: id, type, timing and outcome of every delivered event with the last error and the attempt count. The payload only while the event fails (failed, problem).';
comment on column private.stripe_events.outcome is 'applied: changed state; ignored: type not used or nothing to link; stale: the stored state may not be replaced by it; failed: error, answered 500 so Stripe retries; problem: a permanent error after 5 attempts, answered 200 and kept for private.replay_stripe_event().';
comment on column private.stripe_events.sqlstate is 'SQLSTATE of the last failure; private.stripe_failure_is_permanent() tells a data error (kept as a problem) from a transient one (retried).';
comment on column private.stripe_events.attempts is 'Deliveries and replays that tried to apply the event.';
comment on column private.stripe_events.payload is 'The verified event exactly as Stripe sent it, kept only while the event fails (outcome failed or problem); null otherwise.';
comment on column private.stripe_events.replayed_at is 'When private.replay_stripe_event() last applied the event.';

create index stripe_events_object_idx on private.stripe_events (object_id, created);
create index stripe_events_failed_idx on private.stripe_events (received_at) where outcome in ('failed', 'problem');

-- Operators (service role) read the problems through public.billing_sync_problems (23-billing-stripe-events.sql).
grant select on private.stripe_events to service_role;

-- Serializes every event about one Stripe object (customers cover their subscriptions and invoices), so two events
-- for the same object never interleave their reads and writes.
create function private.lock_stripe_object(stripe_id text, shared boolean default false) returns void
language plpgsql
set search_path = ''
as $$
begin
  if shared then
    perform pg_catalog.pg_advisory_xact_lock_shared(pg_catalog.hashtextextended('stripe:' || stripe_id, 0));
  else
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('stripe:' || stripe_id, 0));
  end if;
end;
$$;
comment on function private.lock_stripe_object(text, boolean) is 'Transaction-level advisory lock on a Stripe object id (shared or exclusive).';

-- The state transitions Stripe documents per object, which decide (with the event time) whether an incoming state
-- may replace the stored one. Events can be delayed, redelivered or missed, so the table holds every state that can
-- follow another one, directly or through states whose events never arrived (draft -> paid: the finalization event
-- may come later or not at all). private.stripe_state_may_replace() reads it:
--   same state, or a transition listed both ways (a live subscription moving between active and past_due): the
--     newer event wins;
--   listed one way only: the later state wins whatever the event times say (paid stays paid when an older
--     finalized event arrives after it, and a paid event older than the stored open state still applies);
--   the other way only: the incoming event is stale;
--   not listed either way: an end state (one with no way out) wins over a state that is not (an expired
--     subscription is never active); between two end states that one object never both reaches (paid and void)
--     the newer event wins. End states thus rank above all others, so the result does not depend on the order.
create table private.stripe_status_transitions (
  object_type text not null,
  from_status text not null,
  to_status text not null,
  constraint stripe_status_transitions_pkey primary key (object_type, from_status, to_status),
  constraint stripe_status_transitions_object_type_known check (object_type in ('customer', 'product', 'price', 'subscription', 'invoice')),
  constraint stripe_status_transitions_changes_state check (from_status <> to_status)
);
comment on table private.stripe_status_transitions is 'Reference data: which state of a Stripe object may follow which (transitively closed: skipped states included). Read by private.stripe_state_may_replace().';
comment on column private.stripe_status_transitions.object_type is 'customer, product, price (states live and deleted), subscription or invoice (their Stripe status).';
comment on column private.stripe_status_transitions.from_status is 'The stored state.';
comment on column private.stripe_status_transitions.to_status is 'A state Stripe can move the object to from from_status, directly or through states whose events were missed.';

-- Customers, products and prices: a deleted object is never live again.
insert into private.stripe_status_transitions (object_type, from_status, to_status)
select object_type, 'live', 'deleted' from unnest(array['customer', 'product', 'price']) object_type;

-- Invoices (https://docs.stripe.com/invoicing/overview#invoice-statuses): draft -> open -> paid | void |
-- uncollectible, and an uncollectible invoice can still be paid or voided. Nothing returns to draft or open.
insert into private.stripe_status_transitions (object_type, from_status, to_status) values
  ('invoice', 'draft', 'open'), ('invoice', 'draft', 'paid'), ('invoice', 'draft', 'void'),
  ('invoice', 'draft', 'uncollectible'),
  ('invoice', 'open', 'paid'), ('invoice', 'open', 'void'), ('invoice', 'open', 'uncollectible'),
  ('invoice', 'uncollectible', 'paid'), ('invoice', 'uncollectible', 'void');

-- Subscriptions (https://docs.stripe.com/billing/subscriptions/overview#subscription-statuses): an incomplete
-- subscription becomes live once its first payment succeeds, or incomplete_expired after 23 hours, or canceled.
-- Live statuses move among each other in every direction (payments fail and recover, trials are extended, a paused
-- subscription resumes), so among them the newer event decides. canceled and incomplete_expired are final: a
-- canceled subscription never becomes active again, however the events are ordered.
insert into private.stripe_status_transitions (object_type, from_status, to_status)
select 'subscription', 'incomplete', s from unnest(array['trialing', 'active', 'past_due', 'unpaid', 'paused',
                                                         'canceled', 'incomplete_expired']) s
union all
select 'subscription', a, b
from unnest(array['trialing', 'active', 'past_due', 'unpaid', 'paused']) a
cross join unnest(array['trialing', 'active', 'past_due', 'unpaid', 'paused', 'canceled']) b
where a <> b;

-- Whether an incoming state (of an event at incoming_at) may replace the stored one (written by an event at
-- stored_at; null for a placeholder nothing has been applied to). Where the newer event decides, a same-second
-- event (Stripe timestamps have one-second resolution) replaces the stored state unless it is a *.created.
create function private.stripe_state_may_replace(object_type text, stored_status text, stored_at timestamptz,
                                                 incoming_status text, incoming_at timestamptz, event_type text)
returns boolean
-- PL/pgSQL, not SQL: its one query keeps a cached plan per connection, where a SQL function this size (it cannot
-- be inlined) is planned again on every call, which cost more than the rest of an invoice event.
language plpgsql stable parallel safe
set search_path = ''
as $$
declare
  newer boolean := incoming_at > stored_at or (incoming_at = stored_at and event_type not like '%.created');
  forward boolean;
  backward boolean;
  stored_has_way_out boolean;
  incoming_has_way_out boolean;
begin
  if stored_at is null then
    return true;
  end if;
  if stored_status is not distinct from incoming_status then
    return newer;
  end if;
  select coalesce(bool_or(t.from_status = stored_status and t.to_status = incoming_status), false),
         coalesce(bool_or(t.from_status = incoming_status and t.to_status = stored_status), false),
         coalesce(bool_or(t.from_status = stored_status), false),
         coalesce(bool_or(t.from_status = incoming_status), false)
  into forward, backward, stored_has_way_out, incoming_has_way_out
  from private.stripe_status_transitions t
  where t.object_type = stripe_state_may_replace.object_type and t.from_status in (stored_status, incoming_status);
  return case
    when forward and not backward then true
    when backward and not forward then false
    when not forward and not backward and stored_has_way_out <> incoming_has_way_out then not incoming_has_way_out
    else newer
  end;
end;
$$;
comment on function private.stripe_state_may_replace(text, text, timestamptz, text, timestamptz, text) is 'The ordering rule of the Stripe mirrors: may the incoming state replace the stored one? By private.stripe_status_transitions first, event time second.';

-- A legacy plan (API versions before prices, and plan.* events) is a price in today's model, with the same ids.
create function private.stripe_plan_as_price(plan jsonb) returns jsonb
language sql immutable parallel safe
set search_path = ''
as $$
  select plan || jsonb_build_object(
    'object', 'price',
    'type', 'recurring',
    'unit_amount', coalesce(plan -> 'unit_amount', plan -> 'amount'),
    'recurring', jsonb_build_object('interval', plan -> 'interval', 'interval_count', coalesce(plan -> 'interval_count', '1'::jsonb),
                                    'usage_type', plan -> 'usage_type'))
$$;
comment on function private.stripe_plan_as_price(jsonb) is 'A Stripe plan object in the shape of a price (amount -> unit_amount, interval -> recurring).';

-- The price a subscription item bills: items.data[].price, or the legacy items.data[].plan of older API shapes.
create function private.stripe_item_price(item jsonb) returns jsonb
language sql immutable parallel safe
set search_path = ''
as $$
  select case when jsonb_typeof(item -> 'price') in ('string', 'object') then item -> 'price'
              when jsonb_typeof(item -> 'plan') in ('string', 'object') then item -> 'plan' end
$$;
comment on function private.stripe_item_price(jsonb) is 'The price (id or object) of a subscription item: its price, else its legacy plan.';

-- The items of a subscription. A legacy single-plan subscription without an items list becomes one item with the
-- subscription's own id (Stripe item ids are never subscription ids), replaced once an event lists real items.
create function private.stripe_subscription_items(subscription jsonb) returns jsonb
language sql immutable parallel safe
set search_path = ''
as $$
  select case
    when jsonb_typeof(subscription -> 'items' -> 'data') = 'array' and jsonb_array_length(subscription -> 'items' -> 'data') > 0
      then subscription -> 'items' -> 'data'
    when jsonb_typeof(subscription -> 'plan') = 'object'
      then jsonb_build_array(jsonb_build_object('id', subscription ->> 'id', 'object', 'subscription_item',
                                                'plan', subscription -> 'plan', 'quantity', subscription -> 'quantity'))
    else '[]'::jsonb
  end
$$;
comment on function private.stripe_subscription_items(jsonb) is 'items.data of a subscription, or one item made of the legacy subscription.plan when there is no list.';

-- The organization a Stripe object claims, when it exists; anything else (no claim, not a uuid, unknown or deleted
-- organization) is no claim, so the event is still stored.
create function private.claimed_organization(claim text) returns uuid
language sql stable
set search_path = ''
as $$
  select o.id from public.organizations o
  where claim ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
    and o.id = claim::uuid and o.deleted_at is null
$$;
comment on function private.claimed_organization(text) is 'The live organization named by a Stripe client_reference_id or metadata.organization_id, or null.';

-- The plan an organization's Stripe subscriptions grant: the best plan among subscriptions that still give access.
create function private.organization_plan(organization uuid) returns text
language sql stable
set search_path = ''
as $$
  select coalesce((
    select p.plan
    from public.subscriptions s
    join public.subscription_items i on i.subscription_id = s.id
    join public.prices pr on pr.id = i.price_id
    join public.products p on p.id = pr.product_id
    where s.organization_id = organization and s.status in ('trialing', 'active', 'past_due') and p.plan is not null
    order by private.plan_rank(p.plan) desc
    limit 1), 'free')
$$;
comment on function private.organization_plan(uuid) is 'Plan granted by the organization''s trialing, active or past_due subscriptions (free when none).';

-- Keeps organizations.plan equal to what its subscriptions grant. The row lock comes first so the plan is computed
-- from what concurrent events have committed.
create function private.refresh_organization_plan(organization uuid) returns void
language plpgsql
set search_path = ''
as $$
declare
  granted text;
begin
  if organization is null then
    return;
  end if;
  perform 1 from public.organizations o where o.id = organization for update;
  granted := private.organization_plan(organization);
  update public.organizations o set plan = granted where o.id = organization and o.plan is distinct from granted;
end;
$$;
comment on function private.refresh_organization_plan(uuid) is 'Sets organizations.plan from the organization''s subscriptions.';

create function private.ensure_stripe_customer(stripe_customer_id text) returns public.billing_customers
language plpgsql
set search_path = ''
as $$
declare
  found public.billing_customers;
begin
  insert into public.billing_customers (stripe_customer_id) values (ensure_stripe_customer.stripe_customer_id)
  on conflict on constraint billing_customers_stripe_customer_id_key do nothing;
  select c.* into found from public.billing_customers c where c.stripe_customer_id = ensure_stripe_customer.stripe_customer_id;
  return found;
end;
$$;
comment on function private.ensure_stripe_customer(text) is 'The customer row for a Stripe customer id, created as a placeholder when no event about it has arrived yet.';

create function private.ensure_stripe_product(stripe_product_id text) returns uuid
language plpgsql
set search_path = ''
as $$
declare
  found uuid;
begin
  insert into public.products (stripe_product_id) values (ensure_stripe_product.stripe_product_id)
  on conflict on constraint products_stripe_product_id_key do nothing;
  select p.id into found from public.products p where p.stripe_product_id = ensure_stripe_product.stripe_product_id;
  return found;
end;
$$;
comment on function private.ensure_stripe_product(text) is 'The product row for a Stripe product id, created as an inactive placeholder when unseen.';

create function private.ensure_stripe_price(stripe_price_id text, stripe_product_id text) returns uuid
language plpgsql
set search_path = ''
as $$
declare
  found uuid;
begin
  select pr.id into found from public.prices pr where pr.stripe_price_id = ensure_stripe_price.stripe_price_id;
  if found is not null then
    return found;
  end if;
  if stripe_product_id is null then
    raise exception 'price % arrived without its product', stripe_price_id
      using errcode = '22023', hint = 'A Stripe price always names its product; check the event payload.';
  end if;
  insert into public.prices (stripe_price_id, product_id)
  values (ensure_stripe_price.stripe_price_id, private.ensure_stripe_product(stripe_product_id))
  on conflict on constraint prices_stripe_price_id_key do nothing;
  select pr.id into found from public.prices pr where pr.stripe_price_id = ensure_stripe_price.stripe_price_id;
  return found;
end;
$$;
comment on function private.ensure_stripe_price(text, text) is 'The price row for a Stripe price id, created as an inactive placeholder (under its product) when unseen.';

-- Links a customer to an organization, carrying its subscriptions and invoices along. An organization keeps the
-- first live customer that claimed it; a second claim leaves the new customer unlinked (stored, visible to no one).
-- A customer that is already linked is never moved by a later claim (a metadata edit in Stripe, a checkout naming
-- another organization): moving it would hand its invoices to that organization. Re-linking is an operator's job.
create function private.link_stripe_customer(customer uuid, organization uuid) returns boolean
language plpgsql
set search_path = ''
as $$
declare
  previous uuid;
  product text;
begin
  if organization is null then
    return false;
  end if;
  -- Shared locks on the products the customer's subscriptions bill (the caller holds the customer's lock): a
  -- concurrent product event that changes a plan then waits and sees the linked subscriptions, or this link waits
  -- and sees the new plan. Without them each could miss the other and leave the organization on the old plan.
  for product in
    select distinct p.stripe_product_id from public.subscriptions s
    join public.subscription_items i on i.subscription_id = s.id
    join public.prices pr on pr.id = i.price_id
    join public.products p on p.id = pr.product_id
    where s.customer_id = customer order by 1
  loop
    perform private.lock_stripe_object(product, true);
  end loop;
  select c.organization_id into previous from public.billing_customers c where c.id = customer;
  if previous is not null then
    return false;
  end if;
  if exists (select 1 from public.billing_customers c
             where c.organization_id = organization and c.deleted_at is null and c.id <> customer) then
    return false;
  end if;
  update public.billing_customers c set organization_id = organization where c.id = customer;
  update public.subscriptions s set organization_id = organization where s.customer_id = customer;
  update public.invoices i set organization_id = organization where i.customer_id = customer;
  perform private.refresh_organization_plan(organization);
  return true;
end;
$$;
comment on function private.link_stripe_customer(uuid, uuid) is 'Links an unlinked customer (and its subscriptions and invoices) to an organization unless that organization already has another live customer; never moves a linked one.';

create function private.apply_stripe_customer(customer jsonb, event_created timestamptz, event_type text) returns text
language plpgsql
set search_path = ''
as $$
declare
  customer_stripe_id text := customer ->> 'id';
  deleting boolean := event_type = 'customer.deleted' or coalesce((customer ->> 'deleted')::boolean, false);
  existing public.billing_customers;
begin
  if customer_stripe_id is null then
    raise exception 'customer event without a customer id' using errcode = '22023', hint = 'Check data.object.id of the event.';
  end if;
  perform private.lock_stripe_object(customer_stripe_id);
  existing := private.ensure_stripe_customer(customer_stripe_id);
  if not private.stripe_state_may_replace('customer', case when existing.deleted_at is null then 'live' else 'deleted' end,
                                          existing.stripe_updated_at, case when deleting then 'deleted' else 'live' end,
                                          event_created, event_type) then
    return 'stale';
  end if;
  update public.billing_customers c set
    email = left(customer ->> 'email', 512),
    name = left(customer ->> 'name', 512),
    metadata = case when jsonb_typeof(customer -> 'metadata') = 'object' then customer -> 'metadata' else '{}'::jsonb end,
    deleted_at = case when deleting then coalesce(existing.deleted_at, event_created) end,
    stripe_created_at = coalesce(private.stripe_time(customer -> 'created'), existing.stripe_created_at),
    stripe_updated_at = event_created
  where c.id = existing.id;
  if not deleting then
    perform private.link_stripe_customer(existing.id, private.claimed_organization(customer -> 'metadata' ->> 'organization_id'));
  end if;
  return 'applied';
end;
$$;
comment on function private.apply_stripe_customer(jsonb, timestamptz, text) is 'Applies customer.created/updated/deleted (newest event wins; a deleted customer stays deleted).';

create function private.apply_stripe_checkout_session(session jsonb) returns text
language plpgsql
set search_path = ''
as $$
declare
  customer_stripe_id text := private.stripe_id(session -> 'customer');
  -- The first claim that names a live organization: a stale or foreign client_reference_id does not hide a good
  -- metadata.organization_id.
  claimed uuid := coalesce(private.claimed_organization(session ->> 'client_reference_id'),
                           private.claimed_organization(session -> 'metadata' ->> 'organization_id'));
  customer public.billing_customers;
begin
  if customer_stripe_id is null then
    return 'ignored';
  end if;
  perform private.lock_stripe_object(customer_stripe_id);
  customer := private.ensure_stripe_customer(customer_stripe_id);
  if claimed is null then
    return 'ignored';
  end if;
  perform private.link_stripe_customer(customer.id, claimed);
  return 'applied';
end;
$$;
comment on function private.apply_stripe_checkout_session(jsonb) is 'Applies checkout.session.completed: links the session''s customer to the organization it names.';

create function private.apply_stripe_subscription(subscription jsonb, event_created timestamptz, event_type text) returns text
language plpgsql
set search_path = ''
as $$
declare
  subscription_stripe_id text := subscription ->> 'id';
  customer_stripe_id text := private.stripe_id(subscription -> 'customer');
  new_status text := subscription ->> 'status';
  items jsonb := private.stripe_subscription_items(subscription);
  customer public.billing_customers;
  existing public.subscriptions;
  saved uuid;
  product text;
  item jsonb;
begin
  if subscription_stripe_id is null or customer_stripe_id is null then
    raise exception 'subscription event without id or customer' using errcode = '22023',
      hint = 'Check data.object.id and data.object.customer of the event.';
  end if;
  perform private.lock_stripe_object(customer_stripe_id);
  -- Shared locks on the products it bills: a concurrent product event (exclusive) then sees this subscription.
  for product in
    select distinct private.stripe_id(private.stripe_item_price(i) -> 'product') from jsonb_array_elements(items) i
    where private.stripe_id(private.stripe_item_price(i) -> 'product') is not null order by 1
  loop
    perform private.lock_stripe_object(product, true);
  end loop;
  customer := private.ensure_stripe_customer(customer_stripe_id);

  select s.* into existing from public.subscriptions s where s.stripe_subscription_id = subscription_stripe_id;
  if found and not private.stripe_state_may_replace('subscription', existing.status, existing.stripe_updated_at,
                                                    new_status, event_created, event_type) then
    return 'stale';
  end if;

  insert into public.subscriptions as s (stripe_subscription_id, customer_id, organization_id, status, currency,
    cancel_at_period_end, cancel_at, canceled_at, ended_at, trial_start, trial_end, current_period_start,
    current_period_end, metadata, stripe_created_at, stripe_updated_at)
  values (
    subscription_stripe_id, customer.id, customer.organization_id, new_status, subscription ->> 'currency',
    coalesce((subscription ->> 'cancel_at_period_end')::boolean, false),
    private.stripe_time(subscription -> 'cancel_at'), private.stripe_time(subscription -> 'canceled_at'),
    private.stripe_time(subscription -> 'ended_at'), private.stripe_time(subscription -> 'trial_start'),
    private.stripe_time(subscription -> 'trial_end'),
    coalesce(private.stripe_time(subscription -> 'current_period_start'),
             (select min(private.stripe_time(i -> 'current_period_start')) from jsonb_array_elements(items) i)),
    coalesce(private.stripe_time(subscription -> 'current_period_end'),
             (select max(private.stripe_time(i -> 'current_period_end')) from jsonb_array_elements(items) i)),
    case when jsonb_typeof(subscription -> 'metadata') = 'object' then subscription -> 'metadata' else '{}'::jsonb end,
    private.stripe_time(subscription -> 'created'), event_created)
  on conflict on constraint subscriptions_stripe_subscription_id_key do update set
    customer_id = excluded.customer_id, organization_id = excluded.organization_id, status = excluded.status,
    currency = excluded.currency, cancel_at_period_end = excluded.cancel_at_period_end, cancel_at = excluded.cancel_at,
    canceled_at = excluded.canceled_at, ended_at = excluded.ended_at, trial_start = excluded.trial_start,
    trial_end = excluded.trial_end, current_period_start = excluded.current_period_start,
    current_period_end = excluded.current_period_end, metadata = excluded.metadata,
    stripe_created_at = coalesce(excluded.stripe_created_at, s.stripe_created_at),
    stripe_updated_at = excluded.stripe_updated_at
  returning s.id into saved;

  for item in select i from jsonb_array_elements(items) i loop
    insert into public.subscription_items as si (stripe_subscription_item_id, subscription_id, price_id, quantity,
      current_period_start, current_period_end, metadata)
    values (
      item ->> 'id', saved,
      private.ensure_stripe_price(private.stripe_id(private.stripe_item_price(item)),
                                  private.stripe_id(private.stripe_item_price(item) -> 'product')),
      (item ->> 'quantity')::integer,
      coalesce(private.stripe_time(item -> 'current_period_start'), private.stripe_time(subscription -> 'current_period_start')),
      coalesce(private.stripe_time(item -> 'current_period_end'), private.stripe_time(subscription -> 'current_period_end')),
      case when jsonb_typeof(item -> 'metadata') = 'object' then item -> 'metadata' else '{}'::jsonb end)
    on conflict on constraint subscription_items_stripe_subscription_item_id_key do update set
      subscription_id = excluded.subscription_id, price_id = excluded.price_id, quantity = excluded.quantity,
      current_period_start = excluded.current_period_start, current_period_end = excluded.current_period_end,
      metadata = excluded.metadata;
  end loop;
  delete from public.subscription_items si
  where si.subscription_id = saved
    and si.stripe_subscription_item_id not in (select i ->> 'id' from jsonb_array_elements(items) i);

  update public.invoices i set subscription_id = saved
  where i.stripe_subscription_id = subscription_stripe_id and i.subscription_id is null;

  perform private.refresh_organization_plan(customer.organization_id);
  return 'applied';
end;
$$;
comment on function private.apply_stripe_subscription(jsonb, timestamptz, text) is 'Applies customer.subscription.* (either API shape of the billing period; items with a price or a legacy plan); never revives a canceled subscription.';

create function private.apply_stripe_invoice(invoice jsonb, event_created timestamptz, event_type text) returns text
language plpgsql
set search_path = ''
as $$
declare
  invoice_stripe_id text := invoice ->> 'id';
  customer_stripe_id text := private.stripe_id(invoice -> 'customer');
  subscription_stripe_id text := coalesce(private.stripe_id(invoice -> 'subscription'),
                                          private.stripe_id(invoice -> 'parent' -> 'subscription_details' -> 'subscription'));
  -- API versions before 2018-11-08 had no status, only paid and forgiven (marked uncollectible).
  new_status text := coalesce(invoice ->> 'status', case when invoice ->> 'paid' = 'true' then 'paid'
                                                         when invoice ->> 'forgiven' = 'true' then 'uncollectible'
                                                         when invoice ->> 'paid' = 'false' then 'open'
                                                         else 'draft' end);
  transitions jsonb := coalesce(invoice -> 'status_transitions', '{}'::jsonb);
  customer public.billing_customers;
  existing public.invoices;
begin
  if invoice_stripe_id is null or customer_stripe_id is null then
    raise exception 'invoice event without id or customer' using errcode = '22023',
      hint = 'Check data.object.id and data.object.customer of the event.';
  end if;
  perform private.lock_stripe_object(customer_stripe_id);
  customer := private.ensure_stripe_customer(customer_stripe_id);

  select i.* into existing from public.invoices i where i.stripe_invoice_id = invoice_stripe_id;
  if found and not private.stripe_state_may_replace('invoice', existing.status, existing.stripe_updated_at,
                                                    new_status, event_created, event_type) then
    return 'stale';
  end if;

  insert into public.invoices as inv (stripe_invoice_id, customer_id, organization_id, subscription_id,
    stripe_subscription_id, status, number, currency, amount_due, amount_paid, amount_remaining, subtotal, total,
    attempt_count, billing_reason, hosted_invoice_url, invoice_pdf, period_start, period_end, due_date, finalized_at,
    paid_at, voided_at, marked_uncollectible_at, metadata, stripe_created_at, stripe_updated_at)
  values (
    invoice_stripe_id, customer.id, customer.organization_id,
    (select s.id from public.subscriptions s where s.stripe_subscription_id = subscription_stripe_id),
    subscription_stripe_id, new_status, invoice ->> 'number', invoice ->> 'currency',
    coalesce((invoice ->> 'amount_due')::bigint, 0), coalesce((invoice ->> 'amount_paid')::bigint, 0),
    coalesce((invoice ->> 'amount_remaining')::bigint, 0), (invoice ->> 'subtotal')::bigint, (invoice ->> 'total')::bigint,
    coalesce((invoice ->> 'attempt_count')::integer, 0), invoice ->> 'billing_reason',
    invoice ->> 'hosted_invoice_url', invoice ->> 'invoice_pdf',
    private.stripe_time(invoice -> 'period_start'), private.stripe_time(invoice -> 'period_end'),
    private.stripe_time(invoice -> 'due_date'), private.stripe_time(transitions -> 'finalized_at'),
    private.stripe_time(transitions -> 'paid_at'), private.stripe_time(transitions -> 'voided_at'),
    private.stripe_time(transitions -> 'marked_uncollectible_at'),
    case when jsonb_typeof(invoice -> 'metadata') = 'object' then invoice -> 'metadata' else '{}'::jsonb end,
    coalesce(private.stripe_time(invoice -> 'created'), private.stripe_time(invoice -> 'date')), event_created)
  on conflict on constraint invoices_stripe_invoice_id_key do update set
    customer_id = excluded.customer_id, organization_id = excluded.organization_id,
    subscription_id = coalesce(excluded.subscription_id, inv.subscription_id),
    stripe_subscription_id = excluded.stripe_subscription_id, status = excluded.status, number = excluded.number,
    currency = excluded.currency, amount_due = excluded.amount_due, amount_paid = excluded.amount_paid,
    amount_remaining = excluded.amount_remaining, subtotal = excluded.subtotal, total = excluded.total,
    attempt_count = excluded.attempt_count, billing_reason = excluded.billing_reason,
    hosted_invoice_url = excluded.hosted_invoice_url, invoice_pdf = excluded.invoice_pdf,
    period_start = excluded.period_start, period_end = excluded.period_end, due_date = excluded.due_date,
    finalized_at = excluded.finalized_at, paid_at = excluded.paid_at, voided_at = excluded.voided_at,
    marked_uncollectible_at = excluded.marked_uncollectible_at, metadata = excluded.metadata,
    stripe_created_at = coalesce(excluded.stripe_created_at, inv.stripe_created_at),
    stripe_updated_at = excluded.stripe_updated_at;
  return 'applied';
end;
$$;
comment on function private.apply_stripe_invoice(jsonb, timestamptz, text) is 'Applies invoice.* events (both API shapes of the invoice''s subscription); the status moves only forward (private.stripe_status_transitions).';

create function private.apply_stripe_product(product jsonb, event_created timestamptz, event_type text) returns text
language plpgsql
set search_path = ''
as $$
declare
  product_stripe_id text := product ->> 'id';
  deleting boolean := event_type = 'product.deleted' or coalesce((product ->> 'deleted')::boolean, false);
  new_plan text := case when product -> 'metadata' ->> 'plan' in ('free', 'pro', 'business', 'enterprise')
                        then product -> 'metadata' ->> 'plan' end;
  existing public.products;
  organization uuid;
begin
  if product_stripe_id is null then
    raise exception 'product event without a product id' using errcode = '22023', hint = 'Check data.object.id of the event.';
  end if;
  perform private.lock_stripe_object(product_stripe_id);
  perform private.ensure_stripe_product(product_stripe_id);
  select p.* into existing from public.products p where p.stripe_product_id = product_stripe_id;
  if not private.stripe_state_may_replace('product', case when existing.deleted_at is null then 'live' else 'deleted' end,
                                          existing.stripe_updated_at, case when deleting then 'deleted' else 'live' end,
                                          event_created, event_type) then
    return 'stale';
  end if;
  update public.products p set
    name = coalesce(product ->> 'name', existing.name, product_stripe_id),
    description = product ->> 'description',
    active = not deleting and coalesce((product ->> 'active')::boolean, false),
    plan = new_plan,
    metadata = case when jsonb_typeof(product -> 'metadata') = 'object' then product -> 'metadata' else '{}'::jsonb end,
    deleted_at = case when deleting then coalesce(existing.deleted_at, event_created) end,
    stripe_created_at = coalesce(private.stripe_time(product -> 'created'), existing.stripe_created_at),
    stripe_updated_at = event_created
  where p.id = existing.id;
  if new_plan is distinct from existing.plan then
    for organization in
      select distinct s.organization_id
      from public.subscriptions s
      join public.subscription_items i on i.subscription_id = s.id
      join public.prices pr on pr.id = i.price_id
      where pr.product_id = existing.id and s.organization_id is not null
      order by 1
    loop
      perform private.refresh_organization_plan(organization);
    end loop;
  end if;
  return 'applied';
end;
$$;
comment on function private.apply_stripe_product(jsonb, timestamptz, text) is 'Applies product.created/updated/deleted and re-derives the plan of organizations subscribed to it.';

create function private.apply_stripe_price(price jsonb, event_created timestamptz, event_type text) returns text
language plpgsql
set search_path = ''
as $$
declare
  price_stripe_id text := price ->> 'id';
  deleting boolean := event_type = 'price.deleted' or coalesce((price ->> 'deleted')::boolean, false);
  existing public.prices;
begin
  if price_stripe_id is null then
    raise exception 'price event without a price id' using errcode = '22023', hint = 'Check data.object.id of the event.';
  end if;
  perform private.lock_stripe_object(price_stripe_id);
  perform private.ensure_stripe_price(price_stripe_id, private.stripe_id(price -> 'product'));
  select pr.* into existing from public.prices pr where pr.stripe_price_id = price_stripe_id;
  if not private.stripe_state_may_replace('price', case when existing.deleted_at is null then 'live' else 'deleted' end,
                                          existing.stripe_updated_at, case when deleting then 'deleted' else 'live' end,
                                          event_created, event_type) then
    return 'stale';
  end if;
  update public.prices pr set
    product_id = coalesce(private.ensure_stripe_product(private.stripe_id(price -> 'product')), existing.product_id),
    active = not deleting and coalesce((price ->> 'active')::boolean, false),
    currency = coalesce(lower(price ->> 'currency'), existing.currency, 'usd'),
    unit_amount = (price ->> 'unit_amount')::bigint,
    type = coalesce(price ->> 'type', existing.type, case when price ? 'recurring' and jsonb_typeof(price -> 'recurring') = 'object'
                                                     then 'recurring' else 'one_time' end),
    recurring_interval = price -> 'recurring' ->> 'interval',
    recurring_interval_count = (price -> 'recurring' ->> 'interval_count')::integer,
    nickname = price ->> 'nickname',
    lookup_key = price ->> 'lookup_key',
    metadata = case when jsonb_typeof(price -> 'metadata') = 'object' then price -> 'metadata' else '{}'::jsonb end,
    deleted_at = case when deleting then coalesce(existing.deleted_at, event_created) end,
    stripe_created_at = coalesce(private.stripe_time(price -> 'created'), existing.stripe_created_at),
    stripe_updated_at = event_created
  where pr.id = existing.id;
  return 'applied';
end;
$$;
comment on function private.apply_stripe_price(jsonb, timestamptz, text) is 'Applies price.* and legacy plan.* events (as prices, see private.stripe_plan_as_price); a deleted price stays deleted.';
