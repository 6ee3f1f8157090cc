// Benchmark of the stripe-webhook endpoint (issue 4, section 4). Run by `npm run bench` (scripts/bench.sh), or alone
// against a running stack:
//   FUNCTIONS_URL=http://127.0.0.1:54321/functions/v1 SUPABASE_DB_URL=postgresql://... STRIPE_WEBHOOK_SECRET=whsec_... \
//     tsx scripts/bench/stripe-webhook.ts [--events 2000] [--duplicates 0.2] [--concurrency 8] [--seed 42]
//
// It builds a realistic stream (products, prices, customers, checkouts, subscription and invoice lifecycles, some
// cancellations, a few event types the endpoint ignores), adds duplicate deliveries, shuffles everything and sends
// it signed, `concurrency` requests at a time. It prints throughput and latency, then replays the same unique events
// one by one in `created` order under other ids and checks that both runs left the same state. Last, as a floor
// measured in the same run, it sends as many signed events of a type the endpoint ignores (signature, envelope,
// ledger row, answer: everything but applying) and prints the ratio of the two throughputs. Speed is reported,
// never asserted; a state mismatch or a non-2xx answer exits 1.
import { sql, type Kysely } from "kysely";
import Stripe from "stripe";
import { createDatabase, type UntypedDatabase } from "../../supabase/functions/_shared/db.ts";
import { benchFail, parseNumberOptions } from "../bench-options.ts";

const HELP = `stripe-webhook benchmark

usage: tsx scripts/bench/stripe-webhook.ts [--events N] [--duplicates F] [--concurrency N] [--seed N]

  --events N        deliveries in the shuffled run, duplicates included (default 2000)
  --duplicates F    share of deliveries that repeat an earlier event (default 0.2)
  --concurrency N   requests in flight at once (default 8)
  --seed N          seed of the stream and the shuffle (default 42)

environment: FUNCTIONS_URL (e.g. http://127.0.0.1:54321/functions/v1), SUPABASE_DB_URL (or DB_URL),
STRIPE_WEBHOOK_SECRET. Exit 1 when a delivery fails or the final states differ.`;

interface Options {
  events: number;
  duplicates: number;
  concurrency: number;
  seed: number;
}

const fail = (message: string): never => benchFail("stripe-webhook", message);

function parseOptions(args: string[]): Options {
  const defaults: Options = { events: 2000, duplicates: 0.2, concurrency: 8, seed: 42 };
  const options = parseNumberOptions("stripe-webhook", HELP, defaults, args, (value) => Number.isFinite(value));
  if (options.events < 100 || options.duplicates < 0 || options.duplicates >= 1 || options.concurrency < 1) {
    fail("need --events >= 100, 0 <= --duplicates < 1 and --concurrency >= 1");
  }
  return options;
}

function requireEnv(name: string, fallback?: string): string {
  const value = process.env[name] || (fallback ? process.env[fallback] : undefined);
  if (!value) fail(`${name} is not set (see --help)`);
  return value;
}

/** mulberry32: a small seeded generator, so a stream can be replayed exactly. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ----- the stream ---------------------------------------------------------------------------------------------------

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

/**
 * Unique events in `created` order (strictly increasing, so in-order application is well defined). Ids contain
 * `tag`, so the same stream can be generated twice under different ids. `organizations[i]` is customer i's.
 */
function buildStream(unique: number, tag: string, organizations: string[], seed: number): StripeEvent[] {
  const rand = random(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T;
  const events: StripeEvent[] = [];
  let clock = 1_760_000_000;
  let n = 0;
  const emit = (type: string, object: StripeObject, apiVersion = "2025-03-31.basil") => {
    events.push({ id: `evt_${tag}_${++n}`, object: "event", type, created: ++clock, api_version: apiVersion, livemode: false, data: { object } });
  };

  const plans = ["pro", "business", "enterprise"] as const;
  const products = plans.map((plan) => ({ id: `prod_${tag}_${plan}`, plan }));
  const prices = products.flatMap((p) => [`month`, `year`].map((interval) => ({ id: `price_${tag}_${p.plan}_${interval}`, product: p.id, interval })));
  for (const p of products) emit("product.created", { id: p.id, object: "product", name: p.plan, active: true, metadata: { plan: p.plan } });
  for (const pr of prices) {
    emit("price.created", { id: pr.id, object: "price", product: pr.product, active: true, currency: "usd", unit_amount: 1900,
                            type: "recurring", recurring: { interval: pr.interval, interval_count: 1 }, metadata: {} });
  }
  for (const p of products) emit("product.updated", { id: p.id, object: "product", name: `${p.plan} plan`, active: true, metadata: { plan: p.plan } });

  for (let c = 0; events.length < unique && c < organizations.length; c++) {
    const customer = `cus_${tag}_${c}`;
    const sub = `sub_${tag}_${c}`;
    const oldApi = c % 2 === 1; // half the customers on the pre-2025-03-31 shape
    const apiVersion = oldApi ? "2024-06-20" : "2025-03-31.basil";
    let price = pick(prices);
    const periodStart = clock;
    const subscription = (status: string, extra: StripeObject = {}): StripeObject => {
      const item: StripeObject = { id: `si_${tag}_${c}`, object: "subscription_item", quantity: 1, price: { id: price.id, product: price.product } };
      const object: StripeObject = { id: sub, object: "subscription", customer, status, currency: "usd", created: periodStart,
                                     cancel_at_period_end: false, metadata: {}, items: { object: "list", data: [item] }, ...extra };
      if (oldApi) Object.assign(object, { current_period_start: periodStart, current_period_end: periodStart + 2_592_000 });
      else Object.assign(item, { current_period_start: periodStart, current_period_end: periodStart + 2_592_000 });
      return object;
    };
    const invoice = (id: string, status: string): StripeObject => ({
      id, object: "invoice", customer, status, currency: "usd", amount_due: 1900, amount_paid: status === "paid" ? 1900 : 0,
      amount_remaining: status === "paid" ? 0 : 1900, total: 1900, subtotal: 1900, created: periodStart, metadata: {},
      ...(oldApi ? { subscription: sub } : { parent: { type: "subscription_details", subscription_details: { subscription: sub } } }),
    });

    emit("customer.created", { id: customer, object: "customer", email: `c${c}@example.test`, name: `Customer ${c}`, metadata: {} }, apiVersion);
    emit("checkout.session.completed", { id: `cs_${tag}_${c}`, object: "checkout.session", customer, subscription: sub,
                                         client_reference_id: organizations[c], mode: "subscription" }, apiVersion);
    emit("customer.subscription.created", subscription("incomplete"), apiVersion);
    emit("invoice.created", invoice(`in_${tag}_${c}_1`, "draft"), apiVersion);
    emit("invoice.finalized", invoice(`in_${tag}_${c}_1`, "open"), apiVersion);
    if (rand() < 0.2) emit("invoice.payment_failed", invoice(`in_${tag}_${c}_1`, "open"), apiVersion);
    emit("invoice.payment_succeeded", invoice(`in_${tag}_${c}_1`, "paid"), apiVersion);
    emit("invoice.paid", invoice(`in_${tag}_${c}_1`, "paid"), apiVersion);
    emit("customer.subscription.updated", subscription("active"), apiVersion);
    emit("customer.updated", { id: customer, object: "customer", email: `c${c}@example.test`, name: `Customer ${c} Ltd`, metadata: { vat: "yes" } }, apiVersion);
    emit("charge.succeeded", { id: `ch_${tag}_${c}`, object: "charge" }, apiVersion);
    if (rand() < 0.5) {
      price = pick(prices);
      emit("customer.subscription.updated", subscription("active"), apiVersion);
    }
    emit("invoice.created", invoice(`in_${tag}_${c}_2`, "draft"), apiVersion);
    emit("invoice.finalized", invoice(`in_${tag}_${c}_2`, "open"), apiVersion);
    const ending = rand();
    if (ending < 0.3) {
      emit("invoice.voided", invoice(`in_${tag}_${c}_2`, "void"), apiVersion);
      emit("customer.subscription.updated", subscription("active", { cancel_at_period_end: true }), apiVersion);
      emit("customer.subscription.deleted", subscription("canceled", { canceled_at: clock, ended_at: clock }), apiVersion);
    } else if (ending < 0.45) {
      emit("invoice.marked_uncollectible", invoice(`in_${tag}_${c}_2`, "uncollectible"), apiVersion);
      emit("customer.subscription.updated", subscription("past_due"), apiVersion);
    } else {
      emit("invoice.paid", invoice(`in_${tag}_${c}_2`, "paid"), apiVersion);
    }
  }
  if (events.length < unique) fail(`the stream needs more customers (built ${events.length} of ${unique} events)`);
  return events.slice(0, unique);
}

// ----- delivery ------------------------------------------------------------------------------------------------------

interface Delivery {
  status: number;
  ms: number;
  outcome: string;
}

async function deliver(endpoint: string, secret: string, event: StripeEvent): Promise<Delivery> {
  const payload = JSON.stringify(event);
  const signature = Stripe.webhooks.generateTestHeaderString({ payload, secret });
  const started = performance.now();
  const response = await fetch(endpoint, {
    method: "POST",
    headers: { "content-type": "application/json; charset=utf-8", "stripe-signature": signature },
    body: payload,
  });
  const body = (await response.json()) as { outcome?: string; duplicate?: boolean; error?: { code: string } };
  const ms = performance.now() - started;
  const outcome = body.duplicate ? "duplicate" : body.outcome ?? body.error?.code ?? "unknown";
  return { status: response.status, ms, outcome };
}

async function deliverAll(endpoint: string, secret: string, events: StripeEvent[], concurrency: number): Promise<Delivery[]> {
  const results: Delivery[] = new Array(events.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const index = next++;
      if (index >= events.length) return;
      results[index] = await deliver(endpoint, secret, events[index] as StripeEvent);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return results;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

function count(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const value of values) out[value] = (out[value] ?? 0) + 1;
  return out;
}

// ----- state ---------------------------------------------------------------------------------------------------------

async function createOrganizations(db: Kysely<UntypedDatabase>, tag: string, howMany: number): Promise<string[]> {
  const result = await sql<{ id: string }>`
    insert into public.organizations (name, slug)
    select 'Bench ' || i, ${`bench-${tag}-`} || i from generate_series(1, ${howMany}::int) i
    returning id`.execute(db);
  return result.rows.map((row) => row.id);
}

/** Everything the stream touched, with this run's ids replaced by neutral ones, in a stable order. */
async function snapshot(db: Kysely<UntypedDatabase>, tag: string, organizations: string[]): Promise<string[]> {
  const like = `%\\_${tag}\\_%`;
  const rows = await sql<{ line: string }>`
    select 'customer ' || concat_ws(' | ', stripe_customer_id, email, name, metadata::text, organization_id::text, deleted_at is not null, stripe_updated_at) as line
    from public.billing_customers where stripe_customer_id like ${like}
    union all
    select 'product ' || concat_ws(' | ', stripe_product_id, name, active, plan, stripe_updated_at)
    from public.products where stripe_product_id like ${like}
    union all
    select 'price ' || concat_ws(' | ', pr.stripe_price_id, p.stripe_product_id, pr.active, pr.currency, pr.unit_amount, pr.recurring_interval, pr.stripe_updated_at)
    from public.prices pr join public.products p on p.id = pr.product_id where pr.stripe_price_id like ${like}
    union all
    select 'subscription ' || concat_ws(' | ', s.stripe_subscription_id, c.stripe_customer_id, s.organization_id::text, s.status, s.cancel_at_period_end,
                                        s.canceled_at, s.current_period_start, s.current_period_end, s.stripe_updated_at)
    from public.subscriptions s join public.billing_customers c on c.id = s.customer_id where s.stripe_subscription_id like ${like}
    union all
    select 'item ' || concat_ws(' | ', i.stripe_subscription_item_id, s.stripe_subscription_id, pr.stripe_price_id, i.quantity, i.current_period_start, i.current_period_end)
    from public.subscription_items i join public.subscriptions s on s.id = i.subscription_id join public.prices pr on pr.id = i.price_id
    where i.stripe_subscription_item_id like ${like}
    union all
    select 'invoice ' || concat_ws(' | ', i.stripe_invoice_id, i.status, i.amount_due, i.amount_paid, i.organization_id::text,
                                   (select s.stripe_subscription_id from public.subscriptions s where s.id = i.subscription_id), i.stripe_updated_at)
    from public.invoices i where i.stripe_invoice_id like ${like}
    union all
    select 'organization ' || concat_ws(' | ', o.id::text, o.plan) from public.organizations o where o.id = any(${organizations}::uuid[])
  `.execute(db);
  const orgIndex = new Map(organizations.map((id, i) => [id, `org#${i}`]));
  const uuid = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;
  return rows.rows
    .map((row) => row.line.replaceAll(`_${tag}_`, "_X_").replace(uuid, (id) => orgIndex.get(id) ?? id))
    .sort();
}

// ----- main ----------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const functionsUrl = requireEnv("FUNCTIONS_URL").replace(/\/$/, "");
  const endpoint = `${functionsUrl}/stripe-webhook`;
  const secret = requireEnv("STRIPE_WEBHOOK_SECRET");
  const db = createDatabase<UntypedDatabase>(requireEnv("SUPABASE_DB_URL", "DB_URL"), { max: 2, applicationName: "bench" });
  const run = Date.now().toString(36);
  const shuffledTag = `${run}s`;
  const orderedTag = `${run}o`;

  try {
    const duplicates = Math.round(options.events * options.duplicates);
    const unique = options.events - duplicates;
    const customers = Math.ceil(unique / 12) + 5;
    const shuffledOrgs = await createOrganizations(db, shuffledTag, customers);
    const orderedOrgs = await createOrganizations(db, orderedTag, customers);
    const stream = buildStream(unique, shuffledTag, shuffledOrgs, options.seed);
    const reference = buildStream(unique, orderedTag, orderedOrgs, options.seed);

    const rand = random(options.seed + 1);
    const deliveries = [...stream];
    for (let i = 0; i < duplicates; i++) deliveries.push(stream[Math.floor(rand() * stream.length)] as StripeEvent);
    for (let i = deliveries.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [deliveries[i], deliveries[j]] = [deliveries[j] as StripeEvent, deliveries[i] as StripeEvent];
    }

    // Warm the gateway and the connection pool outside the measurement.
    await deliver(endpoint, secret, { id: `evt_${run}_warmup`, object: "event", type: "bench.warmup", created: 1, api_version: "2025-03-31.basil", livemode: false, data: { object: { id: "warmup" } } });

    const started = performance.now();
    const results = await deliverAll(endpoint, secret, deliveries, options.concurrency);
    const seconds = (performance.now() - started) / 1000;
    const latencies = results.map((r) => r.ms).sort((a, b) => a - b);
    const failed = results.filter((r) => r.status !== 200);

    console.log(`deliveries        ${deliveries.length} (${unique} unique events, ${duplicates} duplicates, shuffled)`);
    console.log(`concurrency       ${options.concurrency}`);
    console.log(`throughput        ${(deliveries.length / seconds).toFixed(0)} events/s (${seconds.toFixed(2)} s)`);
    console.log(`latency p50       ${percentile(latencies, 50).toFixed(1)} ms`);
    console.log(`latency p95       ${percentile(latencies, 95).toFixed(1)} ms`);
    console.log(`latency p99       ${percentile(latencies, 99).toFixed(1)} ms`);
    console.log(`latency max       ${percentile(latencies, 100).toFixed(1)} ms`);
    console.log(`outcomes          ${JSON.stringify(count(results.map((r) => r.outcome)))}`);

    const orderedStarted = performance.now();
    for (const event of reference) {
      const result = await deliver(endpoint, secret, event);
      if (result.status !== 200) fail(`in-order replay: ${event.type} ${event.id} answered ${result.status} (${result.outcome})`);
    }
    const orderedLatencyNote = `${((performance.now() - orderedStarted) / reference.length).toFixed(1)} ms/event sequential`;

    const [actual, expected] = await Promise.all([snapshot(db, shuffledTag, shuffledOrgs), snapshot(db, orderedTag, orderedOrgs)]);
    const differing = expected.filter((line, i) => actual[i] !== line);
    const equal = actual.length === expected.length && differing.length === 0;
    console.log(`in-order replay   ${reference.length} events, ${orderedLatencyNote}`);
    console.log(`final state       ${equal ? "equal" : "DIFFERENT"} to in-order application (${expected.length} rows compared)`);

    // The floor: the same number of deliveries, same concurrency, of an event type the endpoint ignores.
    const floorEvents: StripeEvent[] = Array.from({ length: deliveries.length }, (_, i) => ({
      id: `evt_${run}_floor_${i}`, object: "event", type: "bench.ignored", created: 1_700_000_000 + i,
      api_version: "2025-03-31.basil", livemode: false, data: { object: { id: `obj_${run}_${i}`, object: "bench" } },
    }));
    const floorStarted = performance.now();
    const floorResults = await deliverAll(endpoint, secret, floorEvents, options.concurrency);
    const floorSeconds = (performance.now() - floorStarted) / 1000;
    const floorLatencies = floorResults.map((r) => r.ms).sort((a, b) => a - b);
    const throughput = deliveries.length / seconds;
    const floorThroughput = floorEvents.length / floorSeconds;
    console.log(`ignored-type floor ${floorThroughput.toFixed(0)} events/s, p95 ${percentile(floorLatencies, 95).toFixed(1)} ms`);
    console.log(`ratio             ${(throughput / floorThroughput).toFixed(2)} of the floor's throughput, p95 ${(percentile(latencies, 95) / percentile(floorLatencies, 95)).toFixed(2)}x the floor's`);
    failed.push(...floorResults.filter((r) => r.status !== 200));

    if (failed.length > 0) fail(`${failed.length} deliveries did not answer 200: ${JSON.stringify(count(failed.map((r) => `${r.status} ${r.outcome}`)))}`);
    if (!equal) {
      const missing = expected.filter((line) => !actual.includes(line)).slice(0, 5);
      const extra = actual.filter((line) => !expected.includes(line)).slice(0, 5);
      fail(`final state differs from in-order application\n  expected, missing: ${missing.join("\n    ")}\n  found instead: ${extra.join("\n    ")}`);
    }
  } finally {
    await db.destroy();
  }
}

await main();
