// stripe-webhook, end to end over HTTP through the gateway (a real Deno process). Every event is signed with the
// real `stripe` library's test-header helper; state is checked in the database the gateway writes to.
import { sql, type Kysely } from "kysely";
import Stripe from "stripe";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createDatabase, type UntypedDatabase } from "../supabase/functions/_shared/db.ts";
import { testEnv } from "./helpers/env.ts";

const gatewayUrl = inject("gatewayUrl");
const endpoint = `${gatewayUrl}/functions/v1/stripe-webhook`;

function webhookSecret(): string {
  const secret = process.env.STRIPE_WEBHOOK_SECRET;
  if (!secret) throw new Error("STRIPE_WEBHOOK_SECRET not set: run the tests via `npm test`, which sets it");
  return secret;
}

// Ids unique to this run, so reruns against the same database never collide with earlier ledgers.
const run = `t${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
let sequence = 0;
const nextId = (prefix: string) => `${prefix}_${run}_${++sequence}`;
const now = Math.floor(Date.now() / 1000);

type StripeObject = Record<string, unknown>;
interface StripeEvent {
  id: string;
  object: "event";
  type: string;
  created: number;
  api_version: string;
  livemode: false;
  data: { object: StripeObject };
}

const RECENT_API = "2025-03-31.basil";
const OLD_API = "2024-06-20";

function event(type: string, object: StripeObject, created: number, apiVersion = RECENT_API): StripeEvent {
  return { id: nextId("evt"), object: "event", type, created, api_version: apiVersion, livemode: false, data: { object } };
}

function signedHeaders(payload: string, options: { timestamp?: number; secret?: string } = {}): Record<string, string> {
  const header = Stripe.webhooks.generateTestHeaderString({
    payload,
    secret: options.secret ?? webhookSecret(),
    ...(options.timestamp === undefined ? {} : { timestamp: options.timestamp }),
  });
  return { "content-type": "application/json; charset=utf-8", "stripe-signature": header };
}

interface DeliveryBody {
  received?: boolean;
  event_id?: string;
  outcome?: string;
  duplicate?: boolean;
  error?: { code: string; message: string; details: unknown };
}

async function deliverRaw(payload: string, headers: Record<string, string>): Promise<{ status: number; body: DeliveryBody }> {
  const response = await fetch(endpoint, { method: "POST", headers, body: payload });
  return { status: response.status, body: (await response.json()) as DeliveryBody };
}

async function deliver(stripeEvent: StripeEvent): Promise<{ status: number; body: DeliveryBody }> {
  const payload = JSON.stringify(stripeEvent);
  return deliverRaw(payload, signedHeaders(payload));
}

async function deliverApplied(stripeEvent: StripeEvent): Promise<void> {
  const { status, body } = await deliver(stripeEvent);
  expect({ type: stripeEvent.type, status, outcome: body.outcome }).toEqual({ type: stripeEvent.type, status: 200, outcome: "applied" });
}

// ----- Stripe objects, shaped like the API's (only the fields the endpoint reads, plus a few it must ignore) -----

const product = (id: string, plan: string | null, extra: StripeObject = {}): StripeObject => ({
  id, object: "product", name: `Product ${id}`, active: true, description: null, created: now - 1000,
  metadata: plan ? { plan } : {}, ...extra,
});

const price = (id: string, productId: string, extra: StripeObject = {}): StripeObject => ({
  id, object: "price", product: productId, active: true, currency: "usd", unit_amount: 2900, type: "recurring",
  recurring: { interval: "month", interval_count: 1 }, nickname: null, lookup_key: null, created: now - 1000, metadata: {},
  ...extra,
});

const customer = (id: string, organizationId: string | null, extra: StripeObject = {}): StripeObject => ({
  id, object: "customer", email: "billing@example.test", name: "Billing Contact", created: now - 900,
  metadata: organizationId ? { organization_id: organizationId } : {}, ...extra,
});

interface SubscriptionOptions {
  customerId: string;
  priceId: string;
  productId: string;
  status: string;
  apiShape?: "recent" | "old";
  periodStart?: number;
  periodEnd?: number;
  extra?: StripeObject;
}

function subscription(id: string, options: SubscriptionOptions): StripeObject {
  const start = options.periodStart ?? now - 100;
  const end = options.periodEnd ?? start + 30 * 86400;
  const item: StripeObject = {
    id: `si_${id.slice(4)}`, object: "subscription_item", quantity: 1,
    price: { id: options.priceId, object: "price", product: options.productId, currency: "usd", unit_amount: 2900 },
  };
  const object: StripeObject = {
    id, object: "subscription", customer: options.customerId, status: options.status, currency: "usd",
    created: now - 100, start_date: now - 100, cancel_at_period_end: false, cancel_at: null, canceled_at: null,
    ended_at: null, trial_start: null, trial_end: null, metadata: {},
    items: { object: "list", data: [item] },
    ...options.extra,
  };
  if (options.apiShape === "old") {
    object.current_period_start = start;
    object.current_period_end = end;
  } else {
    item.current_period_start = start;
    item.current_period_end = end;
  }
  return object;
}

function invoice(id: string, customerId: string, subscriptionId: string | null, status: string, shape: "recent" | "old" = "recent"): StripeObject {
  const paid = status === "paid";
  return {
    id, object: "invoice", customer: customerId, status, currency: "usd", number: `INV-${id.slice(-6)}`,
    amount_due: 2900, amount_paid: paid ? 2900 : 0, amount_remaining: paid ? 0 : 2900, subtotal: 2900, total: 2900,
    attempt_count: 1, billing_reason: "subscription_cycle", hosted_invoice_url: null, invoice_pdf: null,
    period_start: now - 100, period_end: now - 100, created: now - 100, metadata: {},
    status_transitions: { finalized_at: status === "draft" ? null : now - 90, paid_at: paid ? now - 80 : null, voided_at: null, marked_uncollectible_at: null },
    ...(shape === "old"
      ? { subscription: subscriptionId }
      : { parent: subscriptionId ? { type: "subscription_details", subscription_details: { subscription: subscriptionId, metadata: {} } } : null }),
  };
}

// ----- database ---------------------------------------------------------------------------------------------------

let db: Kysely<UntypedDatabase>;

async function one<T>(query: ReturnType<typeof sql<T>>): Promise<T | undefined> {
  return (await query.execute(db)).rows[0];
}

async function createOrganization(): Promise<string> {
  const slug = `billing-${run}-${++sequence}`.toLowerCase();
  const row = await one(sql<{ id: string }>`insert into public.organizations (name, slug) values (${slug}, ${slug}) returning id`);
  if (!row) throw new Error("organization not created");
  return row.id;
}

const ledger = (eventId: string) =>
  one(sql<{ outcome: string | null; attempts: number; error: string | null }>`
    select outcome, attempts, error from private.stripe_events where id = ${eventId}`);

const subscriptionRow = (stripeId: string) =>
  one(sql<{ status: string; organization_id: string | null; current_period_start: Date | null; current_period_end: Date | null; cancel_at_period_end: boolean }>`
    select status, organization_id, current_period_start, current_period_end, cancel_at_period_end
    from public.subscriptions where stripe_subscription_id = ${stripeId}`);

const invoiceRow = (stripeId: string) =>
  one(sql<{ status: string; subscription_id: string | null; organization_id: string | null; amount_paid: string }>`
    select status, subscription_id, organization_id, amount_paid from public.invoices where stripe_invoice_id = ${stripeId}`);

const organizationPlan = async (organizationId: string) =>
  (await one(sql<{ plan: string }>`select plan from public.organizations where id = ${organizationId}`))?.plan;

beforeAll(() => {
  db = createDatabase(testEnv().dbUrl, { max: 3 });
});

afterAll(async () => {
  await db?.destroy();
});

// ----- tests ------------------------------------------------------------------------------------------------------

describe("POST /functions/v1/stripe-webhook: the request", () => {
  it("answers 405 with the error shape for other methods", async () => {
    const response = await fetch(endpoint, { method: "GET" });
    expect(response.status).toBe(405);
    expect(((await response.json()) as DeliveryBody).error?.code).toBe("method_not_allowed");
  });

  it("needs no JWT: Stripe authenticates with its signature", async () => {
    const { status, body } = await deliver(event("charge.refunded", { id: nextId("ch"), object: "charge" }, now));
    expect(status).toBe(200);
    expect(body.outcome).toBe("ignored");
  });

  it("rejects a missing signature with 400 and writes nothing", async () => {
    const stripeEvent = event("customer.created", customer(nextId("cus"), null), now);
    const { status, body } = await deliverRaw(JSON.stringify(stripeEvent), { "content-type": "application/json" });
    expect(status).toBe(400);
    expect(body.error?.code).toBe("missing_signature");
    expect(await ledger(stripeEvent.id)).toBeUndefined();
  });

  it("rejects a signature made with another secret with 400 and writes nothing", async () => {
    const stripeEvent = event("customer.created", customer(nextId("cus"), null), now);
    const payload = JSON.stringify(stripeEvent);
    const { status, body } = await deliverRaw(payload, signedHeaders(payload, { secret: "whsec_not_the_right_secret" }));
    expect(status).toBe(400);
    expect(body.error?.code).toBe("invalid_signature");
    expect(await ledger(stripeEvent.id)).toBeUndefined();
    const stored = await one(sql<{ n: number }>`select count(*)::int as n from public.billing_customers
                                                where stripe_customer_id = ${(stripeEvent.data.object as { id: string }).id}`);
    expect(stored?.n).toBe(0);
  });

  it("rejects a body changed after signing", async () => {
    const stripeEvent = event("customer.created", customer(nextId("cus"), null), now);
    const headers = signedHeaders(JSON.stringify(stripeEvent));
    const { status } = await deliverRaw(JSON.stringify({ ...stripeEvent, type: "customer.deleted" }), headers);
    expect(status).toBe(400);
    expect(await ledger(stripeEvent.id)).toBeUndefined();
  });

  it("rejects an expired timestamp (outside the default 300 s tolerance)", async () => {
    const stripeEvent = event("customer.created", customer(nextId("cus"), null), now);
    const payload = JSON.stringify(stripeEvent);
    const { status, body } = await deliverRaw(payload, signedHeaders(payload, { timestamp: now - 600 }));
    expect(status).toBe(400);
    expect(body.error?.code).toBe("invalid_signature");
    expect(body.error?.message).toMatch(/tolerance/i);
    expect(await ledger(stripeEvent.id)).toBeUndefined();
  });

  it("rejects correctly signed malformed JSON with 400", async () => {
    const payload = '{"id": "evt_broken", "type": ';
    const { status, body } = await deliverRaw(payload, signedHeaders(payload));
    expect(status).toBe(400);
    expect(body.error?.code).toBe("invalid_json");
  });

  it("rejects correctly signed JSON that is not a Stripe event with 400", async () => {
    const payload = JSON.stringify({ id: nextId("evt"), type: "customer.created" });
    const { status, body } = await deliverRaw(payload, signedHeaders(payload));
    expect(status).toBe(400);
    expect(body.error?.code).toBe("invalid_event");
  });

  it("rejects a created time Postgres cannot store with 400 and writes nothing", async () => {
    const stripeEvent = event("customer.created", customer(nextId("cus"), null), 1e15);
    const { status, body } = await deliver(stripeEvent);
    expect([status, body.error?.code]).toEqual([400, "invalid_event"]);
    expect(await ledger(stripeEvent.id)).toBeUndefined();
  });

  it("stores an event whose livemode is not a boolean as a test-mode event instead of failing", async () => {
    const stripeEvent = { ...event("charge.captured", { id: nextId("ch"), object: "charge" }, now), livemode: "sometimes" } as unknown as StripeEvent;
    const { status, body } = await deliver(stripeEvent);
    expect([status, body.outcome]).toEqual([200, "ignored"]);
  });

  it("records an unknown event type as ignored and answers 200", async () => {
    const stripeEvent = event("payment_intent.created", { id: nextId("pi"), object: "payment_intent" }, now);
    const { status, body } = await deliver(stripeEvent);
    expect(status).toBe(200);
    expect(body).toMatchObject({ received: true, outcome: "ignored", duplicate: false });
    expect(await ledger(stripeEvent.id)).toMatchObject({ outcome: "ignored", attempts: 1 });
  });
});

describe("POST /functions/v1/stripe-webhook: every handled type, in order", () => {
  it("applies the whole lifecycle of a customer and keeps the organization's plan in step", async () => {
    const organization = await createOrganization();
    const [productId, priceId, customerId, subscriptionId] = [nextId("prod"), nextId("price"), nextId("cus"), nextId("sub")];
    const [paidInvoice, voidedInvoice, badInvoice] = [nextId("in"), nextId("in"), nextId("in")];
    let t = now - 500;
    const sub = (status: string, extra: StripeObject = {}) =>
      subscription(subscriptionId, { customerId, priceId, productId, status, extra });

    await deliverApplied(event("product.created", product(productId, "business"), ++t));
    await deliverApplied(event("product.updated", product(productId, "pro", { name: "Pro" }), ++t));
    await deliverApplied(event("price.created", price(priceId, productId), ++t));
    await deliverApplied(event("price.updated", price(priceId, productId, { nickname: "Pro monthly" }), ++t));
    await deliverApplied(event("checkout.session.completed", {
      id: nextId("cs"), object: "checkout.session", mode: "subscription", customer: customerId,
      subscription: subscriptionId, client_reference_id: organization, metadata: {},
    }, ++t));
    await deliverApplied(event("customer.created", customer(customerId, null), ++t));
    await deliverApplied(event("customer.updated", customer(customerId, null, { name: "Renamed" }), ++t));
    await deliverApplied(event("customer.subscription.created", sub("trialing", { trial_start: now - 100, trial_end: now + 86400 }), ++t));
    expect(await organizationPlan(organization)).toBe("pro");
    await deliverApplied(event("customer.subscription.trial_will_end", sub("trialing", { trial_start: now - 100, trial_end: now + 86400 }), ++t));
    await deliverApplied(event("customer.subscription.updated", sub("active"), ++t));
    await deliverApplied(event("customer.subscription.paused", sub("paused"), ++t));
    expect(await organizationPlan(organization)).toBe("free");
    await deliverApplied(event("customer.subscription.resumed", sub("active"), ++t));
    expect(await organizationPlan(organization)).toBe("pro");

    await deliverApplied(event("invoice.created", invoice(paidInvoice, customerId, subscriptionId, "draft"), ++t));
    await deliverApplied(event("invoice.finalized", invoice(paidInvoice, customerId, subscriptionId, "open"), ++t));
    await deliverApplied(event("invoice.payment_failed", invoice(paidInvoice, customerId, subscriptionId, "open"), ++t));
    await deliverApplied(event("invoice.payment_succeeded", invoice(paidInvoice, customerId, subscriptionId, "paid"), ++t));
    await deliverApplied(event("invoice.paid", invoice(paidInvoice, customerId, subscriptionId, "paid"), ++t));
    await deliverApplied(event("invoice.voided", invoice(voidedInvoice, customerId, subscriptionId, "void"), ++t));
    await deliverApplied(event("invoice.marked_uncollectible", invoice(badInvoice, customerId, subscriptionId, "uncollectible"), ++t));
    expect(await invoiceRow(paidInvoice)).toMatchObject({ status: "paid", organization_id: organization, amount_paid: "2900" });
    expect((await invoiceRow(paidInvoice))?.subscription_id).not.toBeNull();
    expect(await invoiceRow(voidedInvoice)).toMatchObject({ status: "void" });
    expect(await invoiceRow(badInvoice)).toMatchObject({ status: "uncollectible" });

    await deliverApplied(event("customer.subscription.deleted", sub("canceled", { canceled_at: t, ended_at: t }), ++t));
    expect(await subscriptionRow(subscriptionId)).toMatchObject({ status: "canceled", organization_id: organization });
    expect(await organizationPlan(organization)).toBe("free");
    await deliverApplied(event("price.deleted", price(priceId, productId, { active: false }), ++t));
    await deliverApplied(event("product.deleted", product(productId, "pro", { active: false }), ++t));
    await deliverApplied(event("customer.deleted", customer(customerId, null, { name: "Renamed" }), ++t));

    const state = await one(sql<{ customer_deleted: boolean; product_active: boolean; price_active: boolean; organization_id: string | null; name: string | null }>`
      select c.deleted_at is not null as customer_deleted, c.organization_id, c.name,
             (select active from public.products where stripe_product_id = ${productId}) as product_active,
             (select active from public.prices where stripe_price_id = ${priceId}) as price_active
      from public.billing_customers c where c.stripe_customer_id = ${customerId}`);
    expect(state).toEqual({ customer_deleted: true, product_active: false, price_active: false, organization_id: organization, name: "Renamed" });
  });
});

describe("POST /functions/v1/stripe-webhook: exactly once", () => {
  it("answers 200 to a redelivery and changes nothing", async () => {
    const customerId = nextId("cus");
    const stripeEvent = event("customer.created", customer(customerId, null), now);
    const first = await deliver(stripeEvent);
    const second = await deliver(stripeEvent);
    expect(first.body).toMatchObject({ outcome: "applied", duplicate: false });
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({ outcome: "applied", duplicate: true });
    expect(await ledger(stripeEvent.id)).toMatchObject({ outcome: "applied", attempts: 1 });
  });

  it("applies ten concurrent deliveries of one event once", async () => {
    const organization = await createOrganization();
    const [customerId, subscriptionId, productId, priceId] = [nextId("cus"), nextId("sub"), nextId("prod"), nextId("price")];
    await deliverApplied(event("customer.created", customer(customerId, organization), now - 10));
    const stripeEvent = event("customer.subscription.created",
      subscription(subscriptionId, { customerId, priceId, productId, status: "active" }), now);
    const payload = JSON.stringify(stripeEvent);
    const responses = await Promise.all(Array.from({ length: 10 }, () => deliverRaw(payload, signedHeaders(payload))));
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(responses.filter((r) => r.body.duplicate === false)).toHaveLength(1);
    expect(await ledger(stripeEvent.id)).toMatchObject({ outcome: "applied", attempts: 1 });
    const audited = await one(sql<{ n: number }>`
      select count(*)::int as n from public.audit_logs a
      join public.subscriptions s on s.id::text = a.resource_id
      where a.resource = 'subscriptions' and s.stripe_subscription_id = ${subscriptionId}`);
    expect(audited?.n).toBe(1);
  });
});

describe("POST /functions/v1/stripe-webhook: any order", () => {
  it("keeps the newer state when updated arrives before created", async () => {
    const [customerId, subscriptionId, productId, priceId] = [nextId("cus"), nextId("sub"), nextId("prod"), nextId("price")];
    const options = { customerId, priceId, productId };
    const updated = await deliver(event("customer.subscription.updated",
      subscription(subscriptionId, { ...options, status: "active", extra: { cancel_at_period_end: true } }), now + 10));
    const created = await deliver(event("customer.subscription.created",
      subscription(subscriptionId, { ...options, status: "incomplete" }), now));
    expect(updated.body.outcome).toBe("applied");
    expect([created.status, created.body.outcome]).toEqual([200, "stale"]);
    expect(await subscriptionRow(subscriptionId)).toMatchObject({ status: "active", cancel_at_period_end: true });
  });

  it("does not revive a canceled subscription with a stale update", async () => {
    const [customerId, subscriptionId, productId, priceId] = [nextId("cus"), nextId("sub"), nextId("prod"), nextId("price")];
    const options = { customerId, priceId, productId };
    await deliverApplied(event("customer.subscription.created", subscription(subscriptionId, { ...options, status: "active" }), now));
    await deliverApplied(event("customer.subscription.deleted", subscription(subscriptionId, { ...options, status: "canceled" }), now + 20));
    const late = await deliver(event("customer.subscription.updated",
      subscription(subscriptionId, { ...options, status: "past_due" }), now + 10));
    expect([late.status, late.body.outcome]).toEqual([200, "stale"]);
    expect((await subscriptionRow(subscriptionId))?.status).toBe("canceled");
  });

  it("keeps an invoice paid when finalized arrives after paid", async () => {
    const [customerId, invoiceId] = [nextId("cus"), nextId("in")];
    await deliverApplied(event("invoice.paid", invoice(invoiceId, customerId, null, "paid"), now + 5));
    const finalized = await deliver(event("invoice.finalized", invoice(invoiceId, customerId, null, "open"), now));
    expect(finalized.body.outcome).toBe("stale");
    expect((await invoiceRow(invoiceId))?.status).toBe("paid");
  });

  it("keeps the later status when two events share a second", async () => {
    const [customerId, invoiceId] = [nextId("cus"), nextId("in")];
    await deliverApplied(event("invoice.paid", invoice(invoiceId, customerId, null, "paid"), now));
    const finalized = await deliver(event("invoice.finalized", invoice(invoiceId, customerId, null, "open"), now));
    expect(finalized.body.outcome).toBe("stale");
    expect((await invoiceRow(invoiceId))?.status).toBe("paid");
  });

  it("stores events for an unknown customer, product and price, and links them when the parents arrive", async () => {
    const organization = await createOrganization();
    const [customerId, subscriptionId, productId, priceId, invoiceId] =
      [nextId("cus"), nextId("sub"), nextId("prod"), nextId("price"), nextId("in")];
    await deliverApplied(event("invoice.paid", invoice(invoiceId, customerId, subscriptionId, "paid"), now));
    await deliverApplied(event("customer.subscription.created",
      subscription(subscriptionId, { customerId, priceId, productId, status: "active" }), now + 1));
    expect(await subscriptionRow(subscriptionId)).toMatchObject({ status: "active", organization_id: null });
    expect((await invoiceRow(invoiceId))?.subscription_id).not.toBeNull();
    expect(await organizationPlan(organization)).toBe("free");

    await deliverApplied(event("customer.created", customer(customerId, organization), now + 2));
    expect((await subscriptionRow(subscriptionId))?.organization_id).toBe(organization);
    expect((await invoiceRow(invoiceId))?.organization_id).toBe(organization);
    expect(await organizationPlan(organization)).toBe("free"); // the product's plan is not known yet

    await deliverApplied(event("price.created", price(priceId, productId), now + 3));
    await deliverApplied(event("product.created", product(productId, "business"), now + 4));
    expect(await organizationPlan(organization)).toBe("business");
  });

  it("gives the organization the product's plan when the product's event races with the customer's link", async () => {
    const organization = await createOrganization();
    const [customerId, subscriptionId, productId, priceId] = [nextId("cus"), nextId("sub"), nextId("prod"), nextId("price")];
    // A subscription of a customer no organization has claimed yet, billing a product whose plan is not known yet.
    await deliverApplied(event("customer.subscription.created",
      subscription(subscriptionId, { customerId, priceId, productId, status: "active" }), now));
    let productAnswer: Promise<{ status: number; body: DeliveryBody }> | undefined;
    await db.connection().execute(async (link) => {
      // The link is applied but not committed while the product's event arrives.
      await sql`begin`.execute(link);
      await sql`select private.handle_stripe_event(cast(${JSON.stringify(event("customer.created", customer(customerId, organization), now + 1))}::text as jsonb))`.execute(link);
      let settled = false;
      productAnswer = deliver(event("product.created", product(productId, "pro"), now + 2));
      void productAnswer.then(() => { settled = true; });
      // Commit once the product's event is either done or waiting for the link's lock on the product.
      for (;;) {
        const waiting = await one(sql<{ waiting: boolean }>`
          select exists (select 1 from pg_locks l where l.locktype = 'advisory' and not l.granted
                         and ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(${`stripe:${productId}`}, 0)) as waiting`);
        if (settled || waiting?.waiting) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await sql`commit`.execute(link);
    });
    const answered = await productAnswer;
    expect([answered?.status, answered?.body.outcome]).toEqual([200, "applied"]);
    expect(await organizationPlan(organization)).toBe("pro");
  });

  it("does not undelete a customer with a stale update", async () => {
    const customerId = nextId("cus");
    await deliverApplied(event("customer.created", customer(customerId, null), now));
    await deliverApplied(event("customer.deleted", customer(customerId, null), now + 20));
    const late = await deliver(event("customer.updated", customer(customerId, null, { name: "Revived?" }), now + 10));
    expect([late.status, late.body.outcome]).toEqual([200, "stale"]);
    const row = await one(sql<{ deleted: boolean; name: string | null }>`
      select deleted_at is not null as deleted, name from public.billing_customers where stripe_customer_id = ${customerId}`);
    expect(row).toEqual({ deleted: true, name: "Billing Contact" });
  });

  it("does not undelete a product with a stale update", async () => {
    const productId = nextId("prod");
    await deliverApplied(event("product.created", product(productId, "pro"), now));
    await deliverApplied(event("product.deleted", product(productId, "pro", { active: false }), now + 20));
    const late = await deliver(event("product.updated", product(productId, "enterprise"), now + 10));
    expect([late.status, late.body.outcome]).toEqual([200, "stale"]);
    const row = await one(sql<{ deleted: boolean; plan: string | null }>`
      select deleted_at is not null as deleted, plan from public.products where stripe_product_id = ${productId}`);
    expect(row).toEqual({ deleted: true, plan: "pro" });
  });

  it("links a checkout's customer through metadata.organization_id when client_reference_id names no organization", async () => {
    const organization = await createOrganization();
    const customerId = nextId("cus");
    await deliverApplied(event("customer.created", customer(customerId, null), now));
    await deliverApplied(event("checkout.session.completed", {
      id: nextId("cs"), object: "checkout.session", customer: customerId, mode: "subscription",
      client_reference_id: "newsletter-signup", metadata: { organization_id: organization },
    }, now + 1));
    const row = await one(sql<{ organization_id: string | null }>`
      select organization_id from public.billing_customers where stripe_customer_id = ${customerId}`);
    expect(row).toEqual({ organization_id: organization });
  });

  it("never moves a linked customer (and its invoices) to another organization", async () => {
    const [owner, intruder] = [await createOrganization(), await createOrganization()];
    const [customerId, invoiceId] = [nextId("cus"), nextId("in")];
    await deliverApplied(event("customer.created", customer(customerId, owner), now));
    await deliverApplied(event("invoice.paid", invoice(invoiceId, customerId, null, "paid"), now + 1));
    const claim = await deliver(event("checkout.session.completed", {
      id: nextId("cs"), object: "checkout.session", customer: customerId, mode: "subscription",
      client_reference_id: intruder, metadata: {},
    }, now + 2));
    expect(claim.status).toBe(200);
    const row = await one(sql<{ organization_id: string | null }>`
      select organization_id from public.billing_customers where stripe_customer_id = ${customerId}`);
    expect(row).toEqual({ organization_id: owner });
    expect((await invoiceRow(invoiceId))?.organization_id).toBe(owner);
  });

  it("stores a customer no organization claims without linking it", async () => {
    const customerId = nextId("cus");
    await deliverApplied(event("customer.created", customer(customerId, "00000000-0000-4000-8000-000000000000"), now));
    const row = await one(sql<{ organization_id: string | null }>`
      select organization_id from public.billing_customers where stripe_customer_id = ${customerId}`);
    expect(row).toEqual({ organization_id: null });
  });
});

describe("POST /functions/v1/stripe-webhook: both API shapes", () => {
  it.each([
    ["recent (period on the items, invoice parent)", "recent" as const, RECENT_API],
    ["old (period on the subscription, invoice.subscription)", "old" as const, OLD_API],
  ])("reads the billing period and the invoice's subscription: %s", async (_name, shape, apiVersion) => {
    const organization = await createOrganization();
    const [customerId, subscriptionId, productId, priceId, invoiceId] =
      [nextId("cus"), nextId("sub"), nextId("prod"), nextId("price"), nextId("in")];
    const periodStart = now - 3600;
    const periodEnd = periodStart + 30 * 86400;
    await deliverApplied(event("customer.created", customer(customerId, organization), now - 10, apiVersion));
    await deliverApplied(event("customer.subscription.created",
      subscription(subscriptionId, { customerId, priceId, productId, status: "active", apiShape: shape, periodStart, periodEnd }),
      now, apiVersion));
    await deliverApplied(event("invoice.paid", invoice(invoiceId, customerId, subscriptionId, "paid", shape), now + 1, apiVersion));
    const row = await subscriptionRow(subscriptionId);
    expect(row?.current_period_start?.getTime()).toBe(periodStart * 1000);
    expect(row?.current_period_end?.getTime()).toBe(periodEnd * 1000);
    expect((await invoiceRow(invoiceId))?.subscription_id).not.toBeNull();
  });
});

describe("POST /functions/v1/stripe-webhook: failures", () => {
  it("answers 500 when an event cannot be applied, writes nothing of it, and counts the attempts", async () => {
    const [customerId, subscriptionId] = [nextId("cus"), nextId("sub")];
    const broken = event("customer.subscription.created", subscription(subscriptionId, {
      customerId, priceId: nextId("price"), productId: nextId("prod"), status: "not_a_stripe_status",
    }), now);
    const first = await deliver(broken);
    expect(first.status).toBe(500);
    expect(first.body.error?.code).toBe("event_not_applied");
    expect(await ledger(broken.id)).toMatchObject({ outcome: "failed", attempts: 1 });
    expect((await ledger(broken.id))?.error).toMatch(/^23514: /);
    const stored = await one(sql<{ n: number }>`
      select count(*)::int as n from public.billing_customers where stripe_customer_id = ${customerId}`);
    expect(stored?.n).toBe(0);

    const retry = await deliver(broken);
    expect(retry.status).toBe(500);
    expect(await ledger(broken.id)).toMatchObject({ outcome: "failed", attempts: 2 });
  });

  it("keeps a permanent failure as a problem at the fifth attempt, answers 200, and applies it on replay once fixed", async () => {
    const [customerId, subscriptionId, priceId] = [nextId("cus"), nextId("sub"), nextId("price")];
    // The item names its price by id only, and that price was never delivered: 22023 until it is.
    const orphan = event("customer.subscription.created", {
      id: subscriptionId, object: "subscription", customer: customerId, status: "active", created: now, metadata: {},
      items: { object: "list", data: [{ id: `si_${subscriptionId.slice(4)}`, object: "subscription_item", quantity: 1, price: priceId }] },
    }, now);
    const statuses: number[] = [];
    for (let attempt = 1; attempt <= 4; attempt++) statuses.push((await deliver(orphan)).status);
    expect(statuses).toEqual([500, 500, 500, 500]);
    const fifth = await deliver(orphan);
    expect([fifth.status, fifth.body.outcome]).toEqual([200, "problem"]);
    const sixth = await deliver(orphan);
    expect([sixth.status, sixth.body.outcome]).toEqual([200, "problem"]);

    const problem = await one(sql<{ state: string; permanent: boolean; sqlstate: string; attempts: number; payload: unknown }>`
      select state, permanent, sqlstate, attempts, payload from public.billing_sync_problems where event_id = ${orphan.id}`);
    expect(problem).toEqual({ state: "kept", permanent: true, sqlstate: "22023", attempts: 6, payload: orphan });

    await deliverApplied(event("price.created", price(priceId, nextId("prod")), now + 1));
    const replayed = await one(sql<{ result: { outcome: string; replayed: boolean } }>`
      select private.replay_stripe_event(${orphan.id}) as result`);
    expect(replayed?.result).toMatchObject({ outcome: "applied", replayed: true });
    expect((await subscriptionRow(subscriptionId))?.status).toBe("active");
    const kept = await one(sql<{ payload: unknown; n: number }>`
      select e.payload, (select count(*)::int from public.billing_sync_problems p where p.event_id = e.id) as n
      from private.stripe_events e where e.id = ${orphan.id}`);
    expect(kept).toEqual({ payload: null, n: 0 });
    const redelivered = await deliver(orphan);
    expect([redelivered.status, redelivered.body.duplicate]).toEqual([200, true]);
  });

  it("keeps answering 500 for a transient failure (a deadlock) however often it is delivered", async () => {
    const customerId = nextId("cus");
    const schema = `vitest_${run}`.toLowerCase();
    // A trigger that fails with 40P01 for this one customer only, so parallel tests are not affected.
    await sql.raw(`
      create schema ${schema};
      create function ${schema}.deadlock() returns trigger language plpgsql as $$
      begin raise exception 'deadlock detected (simulated)' using errcode = '40P01'; end $$;
      create trigger ${schema}_deadlock before insert on public.billing_customers for each row
        when (new.stripe_customer_id = '${customerId}') execute function ${schema}.deadlock();`).execute(db);
    try {
      const stuck = event("customer.created", customer(customerId, null), now);
      const statuses: number[] = [];
      for (let attempt = 1; attempt <= 7; attempt++) statuses.push((await deliver(stuck)).status);
      expect(statuses).toEqual([500, 500, 500, 500, 500, 500, 500]);
      expect(await ledger(stuck.id)).toMatchObject({ outcome: "failed", attempts: 7 });
      await sql.raw(`drop schema ${schema} cascade`).execute(db);
      const recovered = await deliver(stuck);
      expect([recovered.status, recovered.body.outcome]).toEqual([200, "applied"]);
    } finally {
      await sql.raw(`drop schema if exists ${schema} cascade`).execute(db);
    }
  });

  it("answers 200 for a legacy subscription whose items carry only a plan, for products never delivered", async () => {
    const [customerId, subscriptionId, planId, productId] = [nextId("cus"), nextId("sub"), nextId("plan"), nextId("prod")];
    const plan = { id: planId, object: "plan", amount: 2000, currency: "usd", interval: "month", interval_count: 1, product: productId };
    const trial = event("customer.subscription.trial_will_end", {
      id: subscriptionId, object: "subscription", customer: customerId, status: "trialing", plan, quantity: 1,
      current_period_start: now, current_period_end: now + 86400, trial_start: now, trial_end: now + 3 * 86400, metadata: {},
      items: { object: "list", data: [{ id: `si_${subscriptionId.slice(4)}`, object: "subscription_item", quantity: 1, plan }] },
    }, now, "2017-08-15");
    const { status, body } = await deliver(trial);
    expect([status, body.outcome]).toEqual([200, "applied"]);
    const item = await one(sql<{ price: string; product: string }>`
      select pr.stripe_price_id as price, p.stripe_product_id as product from public.subscription_items i
      join public.subscriptions s on s.id = i.subscription_id join public.prices pr on pr.id = i.price_id
      join public.products p on p.id = pr.product_id where s.stripe_subscription_id = ${subscriptionId}`);
    expect(item).toEqual({ price: planId, product: productId });
  });
});
