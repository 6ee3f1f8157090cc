// stripe-webhook replayed in every order: small sets of events in both API shapes (legacy `plan` objects with the
// billing period on the subscription; current `price` objects with the period on the items) are delivered, signed,
// over HTTP, in every permutation and in random shuffles with duplicates. Every delivery must answer 200 and every
// order must end in one final state, the one written down here from what the events say.
import { sql, type Kysely } from "kysely";
import Stripe from "stripe";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createDatabase, type UntypedDatabase } from "../supabase/functions/_shared/db.ts";
import { testEnv } from "./helpers/env.ts";

const endpoint = `${inject("gatewayUrl")}/functions/v1/stripe-webhook`;
const run = `r${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const T0 = 1_760_000_000;
const DAY = 86_400;

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

function secret(): string {
  const value = process.env.STRIPE_WEBHOOK_SECRET;
  if (!value) throw new Error("STRIPE_WEBHOOK_SECRET not set: run the tests via `npm test`, which sets it");
  return value;
}

async function deliver(event: StripeEvent): Promise<{ status: number; outcome?: string }> {
  const payload = JSON.stringify(event);
  const signature = Stripe.webhooks.generateTestHeaderString({ payload, secret: secret() });
  const response = await fetch(endpoint, {
    method: "POST",
    headers: { "content-type": "application/json; charset=utf-8", "stripe-signature": signature },
    body: payload,
  });
  const body = (await response.json()) as { outcome?: string };
  return { status: response.status, outcome: body.outcome };
}

// ----- the two API shapes ----------------------------------------------------------------------------------------

/** The ids of one replay: every object carries the replay's suffix, so replays never share a row. */
interface Ids {
  suffix: string;
  organization: string;
  customer: string;
  subscription: string;
  item: string;
  product: string;
  price: string;
  invoice: string;
  secondInvoice: string;
}

type Shape = "legacy" | "current";
const API_VERSION: Record<Shape, string> = { legacy: "2018-02-28", current: "2025-03-31.basil" };

/** Builds the events of one replay; `n` numbers the events so each has an id of its own. */
function eventsFor(shape: Shape, ids: Ids) {
  let n = 0;
  const event = (type: string, created: number, object: StripeObject): StripeEvent => ({
    id: `evt_${ids.suffix}_${++n}`, object: "event", type, created, api_version: API_VERSION[shape], livemode: false,
    data: { object },
  });

  // A legacy plan and a current price are the same thing under the same id.
  const plan = { id: ids.price, object: "plan", active: true, amount: 2000, currency: "usd", interval: "month",
    interval_count: 1, nickname: "Gold", product: ids.product, metadata: {}, created: T0 - DAY };
  const price = { id: ids.price, object: "price", active: true, currency: "usd", unit_amount: 2000, type: "recurring",
    recurring: { interval: "month", interval_count: 1 }, product: ids.product, metadata: {}, created: T0 - DAY };

  const subscription = (status: string, periodStart: number, extra: StripeObject = {}): StripeObject => {
    const periodEnd = periodStart + 30 * DAY;
    const base = { id: ids.subscription, object: "subscription", customer: ids.customer, status, created: T0,
      start_date: T0, cancel_at_period_end: false, cancel_at: null, canceled_at: null, ended_at: null,
      trial_start: T0, trial_end: T0 + 14 * DAY, metadata: {}, ...extra };
    if (shape === "legacy") {
      return { ...base, plan, quantity: 1, current_period_start: periodStart, current_period_end: periodEnd,
        items: { object: "list", data: [{ id: ids.item, object: "subscription_item", created: T0, quantity: 1, plan }] } };
    }
    return { ...base, items: { object: "list", data: [{ id: ids.item, object: "subscription_item", created: T0, quantity: 1,
      price, current_period_start: periodStart, current_period_end: periodEnd }] } };
  };

  const invoice = (id: string, status: string, amountPaid: number, extra: StripeObject = {}): StripeObject => {
    const line = shape === "legacy"
      ? { id: `sli_${ids.suffix}`, object: "line_item", type: "subscription", amount: 2000, currency: "usd", plan,
          subscription: ids.subscription, period: { start: T0, end: T0 + 30 * DAY } }
      : { id: `il_${ids.suffix}`, object: "line_item", amount: 2000, currency: "usd",
          pricing: { type: "price_details", price_details: { price: ids.price, product: ids.product } },
          parent: { type: "subscription_item_details", subscription_item_details: { subscription: ids.subscription, subscription_item: ids.item } },
          period: { start: T0, end: T0 + 30 * DAY } };
    const base = { id, object: "invoice", customer: ids.customer, currency: "usd", amount_due: 2000,
      amount_paid: amountPaid, amount_remaining: 2000 - amountPaid, subtotal: 2000, total: 2000, attempt_count: 1,
      billing_reason: "subscription_cycle", created: T0, period_start: T0, period_end: T0, metadata: {},
      lines: { object: "list", data: [line] }, ...extra };
    // Before 2018-11-08 an invoice had no status: paid, forgiven (uncollectible) and closed said it.
    return shape === "legacy"
      ? { ...base, subscription: ids.subscription, paid: status === "paid", forgiven: status === "uncollectible",
          closed: status === "paid" || status === "uncollectible" }
      : { ...base, status,
          parent: { type: "subscription_details", subscription_details: { subscription: ids.subscription, metadata: {} } } };
  };

  const customer = { id: ids.customer, object: "customer", email: "replay@example.test", name: "Replay",
    created: T0 - DAY, metadata: { organization_id: ids.organization } };
  const product = { id: ids.product, object: "product", name: "Gold", active: true, created: T0 - DAY,
    metadata: { plan: "business" } };

  return {
    customerCreated: event("customer.created", T0, customer),
    subscriptionCreated: event("customer.subscription.created", T0 + 1, subscription(shape === "legacy" ? "trialing" : "incomplete", T0)),
    trialWillEnd: event("customer.subscription.trial_will_end", T0 + 2, subscription("trialing", T0)),
    subscriptionActive: event("customer.subscription.updated", T0 + 3, subscription("active", T0 + 30 * DAY)),
    pastDue: event("customer.subscription.updated", T0 + 2, subscription("past_due", T0)),
    invoiceDraft: event("invoice.created", T0 + 1, invoice(ids.invoice, "draft", 0)),
    invoiceOpen: event("invoice.finalized", T0 + 2, invoice(ids.invoice, "open", 0)),
    invoicePaid: event(shape === "legacy" ? "invoice.payment_succeeded" : "invoice.paid", T0 + 4, invoice(ids.invoice, "paid", 2000)),
    // Stamped after the payment, yet older in state: Stripe's fixture libraries send such events.
    invoiceLateOpen: event("invoice.updated", T0 + 5, invoice(ids.invoice, "open", 0)),
    secondInvoiceUncollectible: event("invoice.marked_uncollectible", T0 + 6, invoice(ids.secondInvoice, "uncollectible", 0)),
    // The legacy API had no void: there the forgiven invoice is paid after all (an older event, a later state).
    secondInvoiceEnded: shape === "legacy"
      ? event("invoice.payment_succeeded", T0 + 5, invoice(ids.secondInvoice, "paid", 2000))
      : event("invoice.voided", T0 + 5, invoice(ids.secondInvoice, "void", 0)),
    productCreated: event("product.created", T0 - 10, product),
    priceCreated: shape === "legacy" ? event("plan.created", T0 - 9, plan) : event("price.created", T0 - 9, price),
    ignored: event("charge.succeeded", T0 + 4, { id: `ch_${ids.suffix}`, object: "charge", customer: ids.customer }),
  };
}

// ----- orders ------------------------------------------------------------------------------------------------------

function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

/** A small deterministic generator (mulberry32), so a failing shuffle can be reproduced from its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffledWithDuplicates<T>(items: T[], duplicates: number, rand: () => number): T[] {
  const out = [...items];
  for (let i = 0; i < duplicates; i++) out.push(items[Math.floor(rand() * items.length)] as T);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

// ----- state -------------------------------------------------------------------------------------------------------

let db: Kysely<UntypedDatabase>;
let replayCount = 0;

beforeAll(() => {
  db = createDatabase(testEnv().dbUrl, { max: 4 });
});

afterAll(async () => {
  await db?.destroy();
});

async function newIds(): Promise<Ids> {
  const suffix = `${run}_${++replayCount}`;
  const row = await sql<{ id: string }>`
    insert into public.organizations (name, slug) values (${suffix}, ${`replay-${suffix}`.toLowerCase().replaceAll("_", "-")})
    returning id`.execute(db);
  const organization = row.rows[0]?.id;
  if (!organization) throw new Error("organization not created");
  return {
    suffix, organization, customer: `cus_${suffix}`, subscription: `sub_${suffix}`, item: `si_${suffix}`,
    product: `prod_${suffix}`, price: `price_${suffix}`, invoice: `in_${suffix}_1`, secondInvoice: `in_${suffix}_2`,
  };
}

/** What the mirror holds about one replay, with its ids made neutral so replays compare equal. */
async function finalState(ids: Ids): Promise<Record<string, unknown>> {
  const result = await sql<{ state: Record<string, unknown> }>`
    select jsonb_build_object(
      'customer', (select jsonb_build_object('linked', c.organization_id = ${ids.organization}::uuid, 'name', c.name)
                   from public.billing_customers c where c.stripe_customer_id = ${ids.customer}),
      'subscription', (select jsonb_build_object('status', s.status, 'linked', s.organization_id = ${ids.organization}::uuid,
                                                 'period_start', extract(epoch from s.current_period_start)::bigint,
                                                 'period_end', extract(epoch from s.current_period_end)::bigint)
                       from public.subscriptions s where s.stripe_subscription_id = ${ids.subscription}),
      'items', (select jsonb_agg(jsonb_build_object('item', i.stripe_subscription_item_id = ${ids.item},
                                                    'price', pr.stripe_price_id = ${ids.price}, 'quantity', i.quantity,
                                                    'period_end', extract(epoch from i.current_period_end)::bigint))
                from public.subscription_items i join public.subscriptions s on s.id = i.subscription_id
                join public.prices pr on pr.id = i.price_id where s.stripe_subscription_id = ${ids.subscription}),
      'price', (select jsonb_build_object('delivered', pr.stripe_updated_at is not null, 'unit_amount', pr.unit_amount,
                                          'interval', pr.recurring_interval, 'product', p.stripe_product_id = ${ids.product})
                from public.prices pr join public.products p on p.id = pr.product_id where pr.stripe_price_id = ${ids.price}),
      'product', (select jsonb_build_object('delivered', p.stripe_updated_at is not null, 'plan', p.plan)
                  from public.products p where p.stripe_product_id = ${ids.product}),
      'invoices', (select jsonb_object_agg(case i.stripe_invoice_id when ${ids.invoice} then 'first' else 'second' end,
                                           jsonb_build_object('status', i.status, 'amount_paid', i.amount_paid,
                                                              'subscription_linked', i.subscription_id is not null))
                   from public.invoices i where i.stripe_invoice_id in (${ids.invoice}, ${ids.secondInvoice})),
      'plan', (select o.plan from public.organizations o where o.id = ${ids.organization}::uuid),
      'ledger', (select jsonb_object_agg(outcome, n) from (
                   select e.outcome, count(*) as n from private.stripe_events e where e.id like ${`evt\\_${ids.suffix}\\_%`}
                   group by e.outcome) o where outcome not in ('applied', 'stale', 'ignored'))
    ) as state`.execute(db);
  return result.rows[0]?.state ?? {};
}

type Events = ReturnType<typeof eventsFor>;
type Pick = (events: Events) => StripeEvent[];

/** Replays the events `pick` chooses, reordered by `order`, for fresh ids; every delivery must answer 200. */
async function replay(shape: Shape, pick: Pick, order: (events: StripeEvent[]) => StripeEvent[]) {
  const ids = await newIds();
  const events = order(pick(eventsFor(shape, ids)));
  const answers: string[] = [];
  for (const event of events) {
    const { status, outcome } = await deliver(event);
    if (status !== 200) answers.push(`${event.type} answered ${status} (${outcome ?? "no outcome"})`);
  }
  return { answers, state: await finalState(ids) };
}

/** Runs `tasks` with a few at a time, so a permutation's deliveries stay in order while replays overlap. */
async function pool<T>(tasks: (() => Promise<T>)[], width = 6): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    for (let i = next++; i < tasks.length; i = next++) results[i] = await (tasks[i] as () => Promise<T>)();
  }));
  return results;
}

// ----- what the events say the final state is ----------------------------------------------------------------------

function expectedSmall(): Record<string, unknown> {
  const periodStart = T0 + 30 * DAY;
  return {
    customer: { linked: true, name: "Replay" },
    subscription: { status: "active", linked: true, period_start: periodStart, period_end: periodStart + 30 * DAY },
    items: [{ item: true, price: true, quantity: 1, period_end: periodStart + 30 * DAY }],
    // Never delivered: the price (a plan in the legacy shape) and its product are placeholders.
    price: { delivered: false, unit_amount: null, interval: null, product: true },
    product: { delivered: false, plan: null },
    invoices: { first: { status: "paid", amount_paid: 2000, subscription_linked: true } },
    plan: "free",
    ledger: null,
  };
}

function expectedLarge(shape: Shape): Record<string, unknown> {
  const periodStart = T0 + 30 * DAY;
  return {
    ...expectedSmall(),
    price: { delivered: true, unit_amount: 2000, interval: "month", product: true },
    product: { delivered: true, plan: "business" },
    invoices: {
      first: { status: "paid", amount_paid: 2000, subscription_linked: true },
      // uncollectible -> void (or paid) is a transition: the end state wins although its event is the older one.
      second: shape === "legacy"
        ? { status: "paid", amount_paid: 2000, subscription_linked: true }
        : { status: "void", amount_paid: 0, subscription_linked: true },
    },
    items: [{ item: true, price: true, quantity: 1, period_end: periodStart + 30 * DAY }],
    plan: "business",
  };
}

const small: Pick = (e) => [e.customerCreated, e.subscriptionCreated, e.trialWillEnd, e.subscriptionActive, e.invoicePaid];
const large: Pick = (e) => [e.productCreated, e.priceCreated, e.customerCreated, e.subscriptionCreated, e.trialWillEnd,
  e.pastDue, e.subscriptionActive, e.invoiceDraft, e.invoiceOpen, e.invoicePaid, e.invoiceLateOpen,
  e.secondInvoiceUncollectible, e.secondInvoiceEnded, e.ignored];

describe.each(["legacy", "current"] as const)("stripe-webhook replay, %s API shape", (shape) => {
  it("ends in one final state for every order of five events (120 permutations)", async () => {
    const orders = permutations([0, 1, 2, 3, 4]);
    const results = await pool(orders.map((order) => () => replay(shape, small, (events) => order.map((i) => events[i] as StripeEvent))));
    expect(results.flatMap((r) => r.answers)).toEqual([]);
    const distinct = new Set(results.map((r) => JSON.stringify(r.state)));
    expect(distinct.size).toBe(1);
    expect(results[0]?.state).toEqual(expectedSmall());
  }, 120_000);

  it("ends in the in-order state for random shuffles of fourteen events with duplicates", async () => {
    const seed = 8_000 + (shape === "legacy" ? 1 : 2);
    const rand = random(seed);
    const inOrder = await replay(shape, large, (events) => [...events].sort((a, b) => a.created - b.created));
    expect(inOrder.answers).toEqual([]);
    expect(inOrder.state).toEqual(expectedLarge(shape));
    const shuffles = await pool(Array.from({ length: 24 }, () => {
      const order = shuffledWithDuplicates([...Array(14).keys()], 7, rand);
      return () => replay(shape, large, (events) => order.map((i) => events[i] as StripeEvent));
    }));
    expect(shuffles.flatMap((r) => r.answers)).toEqual([]);
    for (const shuffle of shuffles) expect(shuffle.state, `seed ${seed}`).toEqual(inOrder.state);
  }, 120_000);
});
