-- Billing: the Stripe event ledger and private.handle_stripe_event().
-- Exactly-once application of verified Stripe events, in any order, onto the mirror (20-billing-stripe-mirror.sql).

-- The ledger of Stripe events: one row per event id, which is what makes a redelivery a no-op. Only what is needed
-- to reason about delivery is kept; the payload is not (it can hold personal data, never card data here).
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
  attempts integer not null default 0,
  constraint stripe_events_pkey primary key (id),
  constraint stripe_events_id_format check (id ~ '^[A-Za-z0-9_]{1,255}$'),
  constraint stripe_events_outcome_known check (outcome is null or outcome in ('applied', 'ignored', 'stale', 'failed')),
  constraint stripe_events_processed_has_outcome check ((outcome is null) = (processed_at is null)),
  constraint stripe_events_failed_has_error check (outcome is distinct from 'failed' or error is not null),
  constraint stripe_events_attempts_not_negative check (attempts >= 0)
);
comment on table private.stripe_events is 'Stripe event ledger: id, type, timing and outcome of every delivered event (applied, ignored, stale, failed) with the last error and the attempt count. No payload.';
comment on column private.stripe_events.outcome is 'applied: changed state; ignored: type not handled or nothing to link; stale: older than the state it would overwrite; failed: error (Stripe retries).';

create index stripe_events_object_idx on private.stripe_events (object_id, created);
create index stripe_events_failed_idx on private.stripe_events (received_at) where outcome = 'failed';

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

-- Whether an event may overwrite a row last written by an event at last_applied: newer always; same second only
-- when it does not move the status backwards (Stripe timestamps have one-second resolution) and is not a *.created.
create function private.stripe_event_is_current(event_created timestamptz, last_applied timestamptz, event_type text,
                                                new_rank integer, old_rank integer) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select last_applied is null
      or event_created > last_applied
      or (event_created = last_applied and new_rank >= old_rank and event_type not like '%.created')
$$;
comment on function private.stripe_event_is_current(timestamptz, timestamptz, text, integer, integer) is 'Ordering rule of the Stripe mirrors: is an event at event_created newer than the state written at last_applied?';

create function private.subscription_status_rank(status text) returns integer
language sql immutable parallel safe
set search_path = ''
as $$
  select case when status = 'incomplete' then 0
              when status in ('canceled', 'incomplete_expired') then 2
              else 1 end
$$;
comment on function private.subscription_status_rank(text) is 'Lifecycle stage of a subscription status: incomplete 0, live 1, ended 2 (canceled, incomplete_expired are final).';

create function private.invoice_status_rank(status text) returns integer
language sql immutable parallel safe
set search_path = ''
as $$
  select case status when 'draft' then 0 when 'open' then 1 when 'uncollectible' then 2 else 3 end
$$;
comment on function private.invoice_status_rank(text) is 'Lifecycle stage of an invoice status: draft 0, open 1, uncollectible 2, paid/void 3 (final).';

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
begin
  if organization is null then
    return false;
  end if;
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
  if (existing.deleted_at is not null and not deleting)
     or not private.stripe_event_is_current(event_created, existing.stripe_updated_at, event_type,
                                            case when deleting then 1 else 0 end,
                                            case when existing.deleted_at is not null then 1 else 0 end) then
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
  items jsonb := case when jsonb_typeof(subscription -> 'items' -> 'data') = 'array'
                      then subscription -> 'items' -> 'data' else '[]'::jsonb end;
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
    select distinct private.stripe_id(i -> 'price' -> 'product') from jsonb_array_elements(items) i
    where private.stripe_id(i -> 'price' -> 'product') is not null order by 1
  loop
    perform private.lock_stripe_object(product, true);
  end loop;
  customer := private.ensure_stripe_customer(customer_stripe_id);

  select s.* into existing from public.subscriptions s where s.stripe_subscription_id = subscription_stripe_id;
  if found and ((private.subscription_status_rank(existing.status) = 2 and private.subscription_status_rank(new_status) < 2)
                or not private.stripe_event_is_current(event_created, existing.stripe_updated_at, event_type,
                                                       private.subscription_status_rank(new_status),
                                                       private.subscription_status_rank(existing.status))) then
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
      private.ensure_stripe_price(private.stripe_id(item -> 'price'), private.stripe_id(item -> 'price' -> 'product')),
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
comment on function private.apply_stripe_subscription(jsonb, timestamptz, text) is 'Applies customer.subscription.* (either API shape of the billing period); never revives a canceled subscription.';

create function private.apply_stripe_invoice(invoice jsonb, event_created timestamptz, event_type text) returns text
language plpgsql
set search_path = ''
as $$
declare
  invoice_stripe_id text := invoice ->> 'id';
  customer_stripe_id text := private.stripe_id(invoice -> 'customer');
  subscription_stripe_id text := coalesce(private.stripe_id(invoice -> 'subscription'),
                                          private.stripe_id(invoice -> 'parent' -> 'subscription_details' -> 'subscription'));
  new_status text := coalesce(invoice ->> 'status', 'draft');
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
  if found and ((private.invoice_status_rank(existing.status) = 3 and private.invoice_status_rank(new_status) < 3)
                or not private.stripe_event_is_current(event_created, existing.stripe_updated_at, event_type,
                                                       private.invoice_status_rank(new_status),
                                                       private.invoice_status_rank(existing.status))) then
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
    private.stripe_time(invoice -> 'created'), event_created)
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
comment on function private.apply_stripe_invoice(jsonb, timestamptz, text) is 'Applies invoice.* events (both API shapes of the invoice''s subscription); a paid or void invoice never moves back.';

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
  if (existing.deleted_at is not null and not deleting)
     or not private.stripe_event_is_current(event_created, existing.stripe_updated_at, event_type,
                                            case when deleting then 1 else 0 end,
                                            case when existing.deleted_at is not null then 1 else 0 end) then
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
  if (existing.deleted_at is not null and not deleting)
     or not private.stripe_event_is_current(event_created, existing.stripe_updated_at, event_type,
                                            case when deleting then 1 else 0 end,
                                            case when existing.deleted_at is not null then 1 else 0 end) then
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
comment on function private.apply_stripe_price(jsonb, timestamptz, text) is 'Applies price.created/updated/deleted (newest event wins; a deleted price stays deleted).';

-- The one entry point of the stripe-webhook function, called with the verified event in its own transaction.
-- Exactly once: the ledger row is inserted (or found) and locked first, so concurrent deliveries of one event
-- queue here and all but the first find it processed. A failure is caught in a subtransaction: its partial writes
-- are rolled back, the ledger keeps the error and the attempt count, and the caller answers 500 so Stripe retries.
create function private.handle_stripe_event(event jsonb) returns jsonb
language plpgsql
set search_path = ''
-- A wait for a lock ends as an error the handler records (failed, attempts) rather than running into the caller's
-- statement timeout, which would roll the ledger row back with everything else.
set lock_timeout = '10s'
as $$
declare
  event_id text := event ->> 'id';
  event_type text := event ->> 'type';
  event_created timestamptz := private.stripe_time(event -> 'created');
  object jsonb := event -> 'data' -> 'object';
  ledger private.stripe_events;
  result_outcome text;
  failure text;
begin
  if event_id is null or event_type is null or event_created is null or jsonb_typeof(object) is distinct from 'object' then
    raise exception 'not a Stripe event: id, type, created and data.object are required'
      using errcode = '22023', hint = 'Pass the verified event JSON exactly as Stripe sent it.';
  end if;

  insert into private.stripe_events (id, type, api_version, created, livemode, object_type, object_id)
  values (event_id, event_type, event ->> 'api_version', event_created, coalesce((event ->> 'livemode')::boolean, false),
          object ->> 'object', object ->> 'id')
  on conflict on constraint stripe_events_pkey do nothing;
  select e.* into ledger from private.stripe_events e where e.id = event_id for update;
  if ledger.outcome in ('applied', 'ignored', 'stale') then
    return jsonb_build_object('event_id', event_id, 'type', event_type, 'outcome', ledger.outcome,
                              'duplicate', true, 'attempts', ledger.attempts);
  end if;

  begin
    result_outcome := case
      when event_type = 'checkout.session.completed' then private.apply_stripe_checkout_session(object)
      when event_type in ('customer.created', 'customer.updated', 'customer.deleted')
        then private.apply_stripe_customer(object, event_created, event_type)
      when event_type in ('customer.subscription.created', 'customer.subscription.updated',
                          'customer.subscription.deleted', 'customer.subscription.paused',
                          'customer.subscription.resumed', 'customer.subscription.trial_will_end')
        then private.apply_stripe_subscription(object, event_created, event_type)
      when event_type in ('invoice.created', 'invoice.finalized', 'invoice.paid', 'invoice.payment_succeeded',
                          'invoice.payment_failed', 'invoice.voided', 'invoice.marked_uncollectible', 'invoice.updated')
        then private.apply_stripe_invoice(object, event_created, event_type)
      when event_type in ('product.created', 'product.updated', 'product.deleted')
        then private.apply_stripe_product(object, event_created, event_type)
      when event_type in ('price.created', 'price.updated', 'price.deleted')
        then private.apply_stripe_price(object, event_created, event_type)
      else 'ignored'
    end;
  exception when others then
    result_outcome := 'failed';
    failure := left(sqlstate || ': ' || sqlerrm, 1000);
  end;

  update private.stripe_events e
  set outcome = result_outcome, error = failure, attempts = e.attempts + 1, processed_at = pg_catalog.now()
  where e.id = event_id
  returning e.* into ledger;
  return jsonb_build_object('event_id', event_id, 'type', event_type, 'outcome', ledger.outcome, 'duplicate', false,
                            'attempts', ledger.attempts, 'error', ledger.error);
end;
$$;
comment on function private.handle_stripe_event(jsonb) is 'Applies one verified Stripe event exactly once: {event_id, type, outcome, duplicate, attempts, error}. outcome failed means answer 500.';
