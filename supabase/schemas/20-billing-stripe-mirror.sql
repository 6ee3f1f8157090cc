-- Billing: the Stripe mirror (billing_customers, products, prices, subscriptions, subscription_items, invoices).
-- Tables, policies and grants; written only by private.handle_stripe_event() (23-billing-stripe-events.sql).

-- Stripe mirrors (billing_customers, products, prices, subscriptions, subscription_items, invoices) written only by
-- the stripe-webhook function through private.handle_stripe_event(); offers, feature flags, usage and entitlements.

-- Stripe sends Unix seconds and ids that may arrive expanded into objects; these read both shapes.
create function private.stripe_time(value jsonb) returns timestamptz
language sql immutable parallel safe
set search_path = ''
as $$
  select case when jsonb_typeof(value) = 'number' then pg_catalog.to_timestamp((value #>> '{}')::double precision) end
$$;
comment on function private.stripe_time(jsonb) is 'A Stripe timestamp (Unix seconds) as timestamptz; null for null or a non-number.';

create function private.stripe_id(value jsonb) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select case jsonb_typeof(value) when 'string' then value #>> '{}' when 'object' then value ->> 'id' end
$$;
comment on function private.stripe_id(jsonb) is 'The id of a Stripe reference, whether sent as an id string or as an expanded object.';

create function private.plan_rank(plan text) returns integer
language sql immutable parallel safe
set search_path = ''
as $$
  select coalesce(array_position(array['free', 'pro', 'business', 'enterprise'], plan), 0)
$$;
comment on function private.plan_rank(text) is 'Order of the plans (free 1 < pro 2 < business 3 < enterprise 4; unknown 0).';

create table public.billing_customers (
  id uuid not null default gen_random_uuid(),
  organization_id uuid,
  stripe_customer_id text not null,
  email text,
  name text,
  metadata jsonb not null default '{}'::jsonb,
  deleted_at timestamptz,
  stripe_created_at timestamptz,
  stripe_updated_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint billing_customers_pkey primary key (id),
  constraint billing_customers_stripe_customer_id_key unique (stripe_customer_id),
  constraint billing_customers_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete set null,
  constraint billing_customers_stripe_id_format check (stripe_customer_id ~ '^[A-Za-z0-9_]{1,255}$'),
  constraint billing_customers_text_lengths check (coalesce(char_length(email), 0) <= 512 and coalesce(char_length(name), 0) <= 512),
  constraint billing_customers_metadata_object check (jsonb_typeof(metadata) = 'object')
);
comment on table public.billing_customers is 'Stripe customers, each linked to at most one organization and each live organization to at most one customer. Written by the Stripe webhook only.';
comment on column public.billing_customers.organization_id is 'Set from checkout.session client_reference_id / metadata.organization_id or the customer''s metadata.organization_id; null while no organization claims the customer.';
comment on column public.billing_customers.stripe_updated_at is 'created time of the last Stripe event applied to this row; null for a placeholder created by an event that referenced the customer first.';
comment on column public.billing_customers.deleted_at is 'When the customer was deleted in Stripe (customer.deleted). The row stays for the invoice history.';

create unique index billing_customers_organization_id_key on public.billing_customers (organization_id) where deleted_at is null;
create index billing_customers_organization_id_idx on public.billing_customers (organization_id);

create trigger billing_customers_set_updated_at before update on public.billing_customers
  for each row execute function private.set_updated_at();
create trigger billing_customers_audit after insert or update or delete on public.billing_customers
  for each row execute function private.audit_row_change();

alter table public.billing_customers enable row level security;

-- billing_customers_select: members holding billing.read see their organization's customer.
create policy billing_customers_select on public.billing_customers for select to authenticated
  using (organization_id in (select private.organizations_with_permission('billing.read')));

grant select on public.billing_customers to authenticated, service_role;

create table public.products (
  id uuid not null default gen_random_uuid(),
  stripe_product_id text not null,
  name text,
  description text,
  active boolean not null default false,
  plan text,
  metadata jsonb not null default '{}'::jsonb,
  deleted_at timestamptz,
  stripe_created_at timestamptz,
  stripe_updated_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint products_pkey primary key (id),
  constraint products_stripe_product_id_key unique (stripe_product_id),
  constraint products_stripe_id_format check (stripe_product_id ~ '^[A-Za-z0-9_-]{1,255}$'),
  constraint products_plan_known check (plan is null or plan in ('free', 'pro', 'business', 'enterprise')),
  constraint products_name_required check (stripe_updated_at is null or name is not null),
  constraint products_metadata_object check (jsonb_typeof(metadata) = 'object')
);
comment on table public.products is 'Stripe products. A row with stripe_updated_at null is a placeholder for a product referenced before its own event arrived (inactive until then).';
comment on column public.products.plan is 'The plan the product grants (Stripe product metadata.plan: free, pro, business or enterprise); null grants none.';

create trigger products_set_updated_at before update on public.products
  for each row execute function private.set_updated_at();
create trigger products_audit after insert or update or delete on public.products
  for each row execute function private.audit_row_change();

alter table public.products enable row level security;

-- products_select: signed-in users see the active catalogue (for plan pickers).
create policy products_select on public.products for select to authenticated
  using (active and deleted_at is null);

grant select on public.products to authenticated, service_role;

create table public.prices (
  id uuid not null default gen_random_uuid(),
  stripe_price_id text not null,
  product_id uuid not null,
  active boolean not null default false,
  currency text,
  unit_amount bigint,
  type text,
  recurring_interval text,
  recurring_interval_count integer,
  nickname text,
  lookup_key text,
  metadata jsonb not null default '{}'::jsonb,
  deleted_at timestamptz,
  stripe_created_at timestamptz,
  stripe_updated_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint prices_pkey primary key (id),
  constraint prices_stripe_price_id_key unique (stripe_price_id),
  constraint prices_product_id_fkey foreign key (product_id) references public.products (id) on delete restrict,
  constraint prices_stripe_id_format check (stripe_price_id ~ '^[A-Za-z0-9_-]{1,255}$'),
  constraint prices_currency_iso4217 check (currency is null or currency ~ '^[a-z]{3}$'),
  constraint prices_unit_amount_not_negative check (unit_amount is null or unit_amount >= 0),
  constraint prices_type_known check (type is null or type in ('one_time', 'recurring')),
  constraint prices_interval_known check (recurring_interval is null or recurring_interval in ('day', 'week', 'month', 'year')),
  constraint prices_interval_count_positive check (recurring_interval_count is null or recurring_interval_count > 0),
  constraint prices_recurring_has_interval check (type is distinct from 'recurring' or recurring_interval is not null),
  constraint prices_complete check (stripe_updated_at is null or (currency is not null and type is not null)),
  constraint prices_metadata_object check (jsonb_typeof(metadata) = 'object')
);
comment on table public.prices is 'Stripe prices (amounts in minor units of currency). A row with stripe_updated_at null is a placeholder for a price referenced before its own event arrived.';
comment on column public.prices.unit_amount is 'Amount in the currency''s minor unit (cents); null for tiered or custom-amount prices.';

create index prices_product_id_idx on public.prices (product_id);

create trigger prices_set_updated_at before update on public.prices
  for each row execute function private.set_updated_at();
create trigger prices_audit after insert or update or delete on public.prices
  for each row execute function private.audit_row_change();

alter table public.prices enable row level security;

-- prices_select: signed-in users see active prices of the catalogue.
create policy prices_select on public.prices for select to authenticated
  using (active and deleted_at is null);

grant select on public.prices to authenticated, service_role;

create table public.subscriptions (
  id uuid not null default gen_random_uuid(),
  stripe_subscription_id text not null,
  customer_id uuid not null,
  organization_id uuid,
  status text not null,
  currency text,
  cancel_at_period_end boolean not null default false,
  cancel_at timestamptz,
  canceled_at timestamptz,
  ended_at timestamptz,
  trial_start timestamptz,
  trial_end timestamptz,
  current_period_start timestamptz,
  current_period_end timestamptz,
  metadata jsonb not null default '{}'::jsonb,
  stripe_created_at timestamptz,
  stripe_updated_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint subscriptions_pkey primary key (id),
  constraint subscriptions_stripe_subscription_id_key unique (stripe_subscription_id),
  constraint subscriptions_customer_id_fkey foreign key (customer_id) references public.billing_customers (id) on delete restrict,
  constraint subscriptions_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete set null,
  constraint subscriptions_stripe_id_format check (stripe_subscription_id ~ '^[A-Za-z0-9_]{1,255}$'),
  constraint subscriptions_status_known check (status in ('trialing', 'active', 'past_due', 'canceled', 'unpaid',
                                                          'incomplete', 'incomplete_expired', 'paused')),
  constraint subscriptions_currency_iso4217 check (currency is null or currency ~ '^[a-z]{3}$'),
  constraint subscriptions_period_ordered check (current_period_end is null or current_period_start is null
                                                 or current_period_end >= current_period_start),
  constraint subscriptions_trial_ordered check (trial_end is null or trial_start is null or trial_end >= trial_start),
  constraint subscriptions_metadata_object check (jsonb_typeof(metadata) = 'object')
);
comment on table public.subscriptions is 'Stripe subscriptions of an organization (seeds 002, 003). Written by the Stripe webhook only; ordered by private.stripe_status_transitions, then by event time: a canceled subscription is never revived.';
comment on column public.subscriptions.organization_id is 'The organization of the customer (copied from billing_customers, kept in sync when the customer is linked).';
comment on column public.subscriptions.current_period_start is 'Start of the current billing period: the subscription''s own field on API versions before 2025-03-31, else the earliest of its items.';
comment on column public.subscriptions.current_period_end is 'End of the current billing period: the subscription''s own field on API versions before 2025-03-31, else the latest of its items.';
comment on column public.subscriptions.stripe_updated_at is 'created time of the last Stripe event applied to this row.';

create index subscriptions_customer_id_idx on public.subscriptions (customer_id);
create index subscriptions_organization_id_idx on public.subscriptions (organization_id, status);

create trigger subscriptions_set_updated_at before update on public.subscriptions
  for each row execute function private.set_updated_at();
create trigger subscriptions_audit after insert or update or delete on public.subscriptions
  for each row execute function private.audit_row_change();

alter table public.subscriptions enable row level security;

-- subscriptions_select: members holding billing.read see their organization's subscriptions.
create policy subscriptions_select on public.subscriptions for select to authenticated
  using (organization_id in (select private.organizations_with_permission('billing.read')));

grant select on public.subscriptions to authenticated, service_role;

create table public.subscription_items (
  id uuid not null default gen_random_uuid(),
  stripe_subscription_item_id text not null,
  subscription_id uuid not null,
  price_id uuid not null,
  quantity integer,
  current_period_start timestamptz,
  current_period_end timestamptz,
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint subscription_items_pkey primary key (id),
  constraint subscription_items_stripe_subscription_item_id_key unique (stripe_subscription_item_id),
  constraint subscription_items_subscription_id_fkey foreign key (subscription_id) references public.subscriptions (id) on delete cascade,
  constraint subscription_items_price_id_fkey foreign key (price_id) references public.prices (id) on delete restrict,
  constraint subscription_items_stripe_id_format check (stripe_subscription_item_id ~ '^[A-Za-z0-9_]{1,255}$'),
  constraint subscription_items_quantity_not_negative check (quantity is null or quantity >= 0),
  constraint subscription_items_period_ordered check (current_period_end is null or current_period_start is null
                                                      or current_period_end >= current_period_start),
  constraint subscription_items_metadata_object check (jsonb_typeof(metadata) = 'object')
);
comment on table public.subscription_items is 'The prices a subscription bills, with their billing period (where API versions from 2025-03-31 put it). Replaced with each applied subscription event.';

create index subscription_items_subscription_id_idx on public.subscription_items (subscription_id);
create index subscription_items_price_id_idx on public.subscription_items (price_id);

create trigger subscription_items_set_updated_at before update on public.subscription_items
  for each row execute function private.set_updated_at();
create trigger subscription_items_audit after insert or update or delete on public.subscription_items
  for each row execute function private.audit_row_change();

alter table public.subscription_items enable row level security;

-- subscription_items_select: members holding billing.read see the items of their organization's subscriptions.
create policy subscription_items_select on public.subscription_items for select to authenticated
  using (subscription_id in (select s.id from public.subscriptions s
                             where s.organization_id in (select private.organizations_with_permission('billing.read'))));

grant select on public.subscription_items to authenticated, service_role;

create table public.invoices (
  id uuid not null default gen_random_uuid(),
  stripe_invoice_id text not null,
  customer_id uuid not null,
  organization_id uuid,
  subscription_id uuid,
  stripe_subscription_id text,
  status text not null,
  number text,
  currency text not null,
  amount_due bigint not null default 0,
  amount_paid bigint not null default 0,
  amount_remaining bigint not null default 0,
  subtotal bigint,
  total bigint,
  attempt_count integer not null default 0,
  billing_reason text,
  hosted_invoice_url text,
  invoice_pdf text,
  period_start timestamptz,
  period_end timestamptz,
  due_date timestamptz,
  finalized_at timestamptz,
  paid_at timestamptz,
  voided_at timestamptz,
  marked_uncollectible_at timestamptz,
  metadata jsonb not null default '{}'::jsonb,
  stripe_created_at timestamptz,
  stripe_updated_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint invoices_pkey primary key (id),
  constraint invoices_stripe_invoice_id_key unique (stripe_invoice_id),
  constraint invoices_customer_id_fkey foreign key (customer_id) references public.billing_customers (id) on delete restrict,
  constraint invoices_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete set null,
  constraint invoices_subscription_id_fkey foreign key (subscription_id) references public.subscriptions (id) on delete set null,
  constraint invoices_stripe_id_format check (stripe_invoice_id ~ '^[A-Za-z0-9_]{1,255}$'),
  constraint invoices_status_known check (status in ('draft', 'open', 'paid', 'uncollectible', 'void')),
  constraint invoices_currency_iso4217 check (currency ~ '^[a-z]{3}$'),
  constraint invoices_amounts_not_negative check (amount_due >= 0 and amount_paid >= 0 and amount_remaining >= 0),
  constraint invoices_attempt_count_not_negative check (attempt_count >= 0),
  constraint invoices_period_ordered check (period_end is null or period_start is null or period_end >= period_start),
  constraint invoices_metadata_object check (jsonb_typeof(metadata) = 'object')
);
comment on table public.invoices is 'Stripe invoices (amounts in minor units of currency). Written by the Stripe webhook only; the status moves only along private.stripe_status_transitions (paid before finalized stays paid).';
comment on column public.invoices.stripe_subscription_id is 'The subscription that generated the invoice (invoice.subscription, or parent.subscription_details.subscription from API 2025-03-31); subscription_id is linked when that subscription is known.';

create index invoices_customer_id_idx on public.invoices (customer_id);
create index invoices_organization_id_idx on public.invoices (organization_id, stripe_created_at desc);
create index invoices_subscription_id_idx on public.invoices (subscription_id);
create index invoices_unlinked_subscription_idx on public.invoices (stripe_subscription_id) where subscription_id is null;

create trigger invoices_set_updated_at before update on public.invoices
  for each row execute function private.set_updated_at();
create trigger invoices_audit after insert or update or delete on public.invoices
  for each row execute function private.audit_row_change();

alter table public.invoices enable row level security;

-- invoices_select: members holding billing.read see their organization's invoices.
create policy invoices_select on public.invoices for select to authenticated
  using (organization_id in (select private.organizations_with_permission('billing.read')));

grant select on public.invoices to authenticated, service_role;
