-- Billing: offers, feature flags, usage metrics, entitlements and the organization_billing view.
-- Public read of what is live; organization_entitlements(), has_feature().

create table public.offers (
  id uuid not null default gen_random_uuid(),
  key text not null,
  name text not null,
  description text,
  plan text not null,
  discount_percent numeric(5, 2),
  discount_amount bigint,
  currency text,
  stripe_coupon_id text,
  valid_from timestamptz not null default now(),
  valid_to timestamptz,
  enabled boolean not null default false,
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint offers_pkey primary key (id),
  constraint offers_key_key unique (key),
  constraint offers_key_format check (key ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  constraint offers_name_length check (char_length(btrim(name)) between 1 and 200),
  constraint offers_plan_known check (plan in ('free', 'pro', 'business', 'enterprise')),
  constraint offers_one_discount check (num_nonnulls(discount_percent, discount_amount) = 1),
  constraint offers_discount_percent_range check (discount_percent is null or (discount_percent > 0 and discount_percent <= 100)),
  constraint offers_discount_amount_positive check (discount_amount is null or discount_amount > 0),
  constraint offers_amount_has_currency check ((discount_amount is null) = (currency is null)),
  constraint offers_currency_iso4217 check (currency is null or currency ~ '^[a-z]{3}$'),
  constraint offers_validity_ordered check (valid_to is null or valid_to > valid_from),
  constraint offers_metadata_object check (jsonb_typeof(metadata) = 'object')
);
comment on table public.offers is 'Pricing offers (seed 002): a percent or fixed discount on a plan, live while enabled and within valid_from..valid_to. Managed by the server (service_role).';
comment on column public.offers.discount_amount is 'Fixed discount in minor units of currency (cents); exclusive with discount_percent.';

create trigger offers_set_updated_at before update on public.offers
  for each row execute function private.set_updated_at();
create trigger offers_audit after insert or update or delete on public.offers
  for each row execute function private.audit_row_change();

alter table public.offers enable row level security;

-- offers_select: anyone, signed in or not, sees offers that are enabled and currently valid.
create policy offers_select on public.offers for select to anon, authenticated
  using (enabled and valid_from <= (select pg_catalog.now()) and (valid_to is null or valid_to > (select pg_catalog.now())));

grant select on public.offers to anon, authenticated;
grant select, insert, update, delete on public.offers to service_role;

create table public.feature_flags (
  id uuid not null default gen_random_uuid(),
  key text not null,
  description text,
  enabled boolean not null default false,
  plans text[] not null default '{}',
  rollout_percentage integer not null default 100,
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint feature_flags_pkey primary key (id),
  constraint feature_flags_key_key unique (key),
  constraint feature_flags_key_format check (key ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
  constraint feature_flags_plans_known check (plans <@ array['free', 'pro', 'business', 'enterprise']),
  constraint feature_flags_rollout_range check (rollout_percentage between 0 and 100),
  constraint feature_flags_metadata_object check (jsonb_typeof(metadata) = 'object')
);
comment on table public.feature_flags is 'Feature flags (seed 002): on for everyone when enabled, optionally only for some plans, and optionally for a deterministic percentage of organizations. Managed by the server (service_role).';
comment on column public.feature_flags.plans is 'Plans that get the feature; empty means every plan.';
comment on column public.feature_flags.rollout_percentage is 'Share of organizations (0-100) that get the feature; an organization''s bucket is fixed per flag (private.rollout_bucket).';

create trigger feature_flags_set_updated_at before update on public.feature_flags
  for each row execute function private.set_updated_at();
create trigger feature_flags_audit after insert or update or delete on public.feature_flags
  for each row execute function private.audit_row_change();

alter table public.feature_flags enable row level security;

-- feature_flags_select: anyone, signed in or not, sees enabled flags.
create policy feature_flags_select on public.feature_flags for select to anon, authenticated
  using (enabled);

grant select on public.feature_flags to anon, authenticated;
grant select, insert, update, delete on public.feature_flags to service_role;

create table public.usage_metrics (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  metric_type text not null,
  metric_value numeric(14, 2) not null,
  metric_unit text,
  period_start timestamptz not null,
  period_end timestamptz not null,
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint usage_metrics_pkey primary key (id),
  constraint usage_metrics_organization_id_fkey foreign key (organization_id) references public.organizations (id) on delete cascade,
  constraint usage_metrics_unique_period unique (organization_id, metric_type, period_start, period_end),
  constraint usage_metrics_metric_type_format check (metric_type ~ '^[a-z][a-z0-9_.]{0,62}$'),
  constraint usage_metrics_value_not_negative check (metric_value >= 0),
  constraint usage_metrics_period_ordered check (period_end > period_start),
  constraint usage_metrics_periods_disjoint exclude using gist (
    organization_id with =, metric_type with =, tstzrange(period_start, period_end) with &&),
  constraint usage_metrics_metadata_object check (jsonb_typeof(metadata) = 'object')
);
comment on table public.usage_metrics is 'Metered usage per organization and period (seed 003), written by the server (service_role). Not audited row by row: it is itself a record of counts.';

create index usage_metrics_period_idx on public.usage_metrics (organization_id, period_start desc);

create trigger usage_metrics_set_updated_at before update on public.usage_metrics
  for each row execute function private.set_updated_at();

alter table public.usage_metrics enable row level security;

-- usage_metrics_select: members holding billing.read or analytics.read see their organization's usage.
create policy usage_metrics_select on public.usage_metrics for select to authenticated
  using (organization_id in (select private.organizations_with_permission('billing.read'))
         or organization_id in (select private.organizations_with_permission('analytics.read')));

grant select on public.usage_metrics to authenticated;
grant select, insert, update, delete on public.usage_metrics to service_role;

-- Entitlements. The plan is organizations.plan (kept equal to what Stripe subscriptions grant); a flag is on for
-- an organization when it is enabled, its plan is listed (or none are) and the organization's bucket is below the
-- rollout percentage. The bucket hashes flag key and organization id, so it is stable and independent per flag.
create function private.rollout_bucket(feature_key text, organization uuid) returns integer
language sql immutable parallel safe
set search_path = ''
as $$
  select (('x' || substr(md5(feature_key || ':' || organization::text), 1, 8))::bit(32)::bigint % 100)::integer
$$;
comment on function private.rollout_bucket(text, uuid) is 'Deterministic bucket 0-99 of an organization for a flag (md5 of key and id).';

create function private.flag_enabled_for(flag public.feature_flags, organization uuid, plan text) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select flag.enabled
     and (cardinality(flag.plans) = 0 or plan = any (flag.plans))
     and private.rollout_bucket(flag.key, organization) < flag.rollout_percentage
$$;
comment on function private.flag_enabled_for(public.feature_flags, uuid, text) is 'Whether a flag is on for an organization on a plan (global switch, plan list, rollout).';

create function public.organization_entitlements(organization_id uuid)
returns table (plan text, features text[])
language plpgsql stable
set search_path = ''
as $$
declare
  org_plan text;
begin
  select o.plan into org_plan from public.organizations o
  where o.id = organization_entitlements.organization_id and o.deleted_at is null;
  if org_plan is null then
    raise exception 'organization % not found', organization_id using errcode = 'P0002',
      hint = 'Entitlements are visible to the organization''s members only.';
  end if;
  return query
    select org_plan, coalesce(array_agg(f.key order by f.key) filter (where private.flag_enabled_for(f, organization_entitlements.organization_id, org_plan)), '{}')
    from public.feature_flags f;
end;
$$;
comment on function public.organization_entitlements(uuid) is 'The organization''s plan and the keys of the features it has. Members only (P0002 otherwise).';

create function public.has_feature(organization_id uuid, feature_key text) returns boolean
language sql stable
set search_path = ''
as $$
  select feature_key = any (e.features) from public.organization_entitlements(has_feature.organization_id) e
$$;
comment on function public.has_feature(uuid, text) is 'Whether the organization has the feature (see organization_entitlements). Members only.';

grant execute on function private.rollout_bucket(text, uuid), private.flag_enabled_for(public.feature_flags, uuid, text)
  to authenticated, service_role;
grant execute on function public.organization_entitlements(uuid), public.has_feature(uuid, text) to authenticated, service_role;

-- Seed 003 kept subscription_status, subscription_tier and stripe_customer_id on users. Here they are derived: one
-- row per organization (a user's own are on their personal organization), computed under the caller's RLS, so
-- members without billing.read see the plan but not the Stripe fields.
create view public.organization_billing with (security_invoker = true) as
select
  o.id as organization_id,
  o.is_personal,
  o.personal_user_id,
  o.plan as subscription_tier,
  s.status as subscription_status,
  c.stripe_customer_id,
  s.stripe_subscription_id,
  s.trial_end as trial_ends_at,
  s.current_period_end,
  s.cancel_at_period_end
from public.organizations o
left join public.billing_customers c on c.organization_id = o.id and c.deleted_at is null
left join lateral (
  select s.status, s.stripe_subscription_id, s.trial_end, s.current_period_end, s.cancel_at_period_end
  from public.subscriptions s
  where s.organization_id = o.id
  order by s.status in ('trialing', 'active', 'past_due') desc, s.stripe_created_at desc nulls last, s.id
  limit 1
) s on true;
comment on view public.organization_billing is 'Per organization: plan (seed 003 subscription_tier), status of the current subscription (subscription_status) and stripe_customer_id. Invoker rights: Stripe fields need billing.read.';

grant select on public.organization_billing to authenticated, service_role;
