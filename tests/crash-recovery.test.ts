// The functions runtime survives a database crash and loses nothing it acknowledged. On a cluster of this file's own
// with PostgreSQL's durable settings (tests/helpers/cluster.ts), a stream of requests goes through a real gateway
// while the server is killed with `pg_ctl stop -m immediate` and started again: `pg_ctl restart -m immediate` in two
// halves, so the test can look at the gateway in between (tests/helpers/outage.ts decides when, from what the stream
// sees). Then: the gateway is the same process and answers; every failure was 503 database_unavailable with
// Retry-After; nothing is stored in part; everything answered 200 is stored; retrying everything stores each thing
// once.
import { randomUUID } from "node:crypto";
import { sql, type Kysely } from "kysely";
import Stripe from "stripe";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabase, type UntypedDatabase } from "../supabase/functions/_shared/db.ts";
import type { IngestReport } from "../supabase/functions/ingest/handler.ts";
import { createCrashCluster, type CrashCluster } from "./helpers/cluster.ts";
import { startGateway, type RunningGateway } from "./helpers/gateway.ts";
import { anonKey, userToken } from "./helpers/jwt.ts";
import { Outage, type OutagePhase } from "./helpers/outage.ts";

let cluster: CrashCluster;
let gateway: RunningGateway;
let gatewayPid: number;
let db: Kysely<UntypedDatabase>;

beforeAll(async () => {
  cluster = await createCrashCluster();
  gateway = await startGateway({ env: { ...process.env, SUPABASE_DB_URL: cluster.url } });
  gatewayPid = gateway.pid;
  db = createDatabase(cluster.url, { max: 2 });
}, 180_000);

afterAll(async () => {
  await db?.destroy();
  await gateway?.stop();
  await cluster?.destroy();
}, 60_000);

interface Answer {
  status: number;
  retryAfter: string | null;
  body: Record<string, unknown> & { error?: { code: string; message: string; details: unknown } };
  phase: OutagePhase;
}

async function send(outage: Outage, url: string, init: RequestInit): Promise<Answer> {
  const phase = await outage.beforeSend();
  // A refused or reset connection to the gateway throws here and fails the test: the gateway must not go away.
  const response = await fetch(url, init);
  const answer: Answer = {
    status: response.status,
    retryAfter: response.headers.get("retry-after"),
    body: (await response.json()) as Answer["body"],
    phase,
  };
  outage.afterAnswer(phase, answer.status);
  return answer;
}

async function health(): Promise<Answer & { phase: "up" }> {
  const response = await fetch(`${gateway.url}/functions/v1/health`, { headers: { authorization: `Bearer ${await anonKey()}` } });
  return { status: response.status, retryAfter: response.headers.get("retry-after"), body: (await response.json()) as Answer["body"], phase: "up" };
}

/** What every answer of a stream through a crash must look like. */
function expectStreamAnswers(answers: Answer[]): void {
  for (const answer of answers) {
    if (answer.status === 200) continue;
    expect({ phase: answer.phase, status: answer.status, code: answer.body.error?.code }).toEqual({
      phase: answer.phase, status: 503, code: "database_unavailable",
    });
    expect(answer.retryAfter).toMatch(/^[1-9]\d*$/);
    expect(answer.body.error?.message).toEqual(expect.any(String));
    expect(answer.body.error?.message).not.toMatch(/127\.0\.0\.1|ECONN|CONNECTION_/);
  }
  const byPhase = (phase: OutagePhase) => answers.filter((a) => a.phase === phase);
  // The outage was seen by the stream, and everything sent once the database was back succeeded.
  expect(byPhase("down").filter((a) => a.status === 503).length).toBeGreaterThanOrEqual(2);
  expect(byPhase("up").length).toBeGreaterThan(0);
  expect(byPhase("up").map((a) => a.status)).toEqual(byPhase("up").map(() => 200));
}

/** The gateway lived through it: same process, answering, and nothing escaped as an uncaught error. */
async function expectGatewaySurvived(): Promise<void> {
  expect(gateway.running()).toBe(true);
  expect(gateway.pid).toBe(gatewayPid);
  const after = await health();
  expect(after.status).toBe(200);
  expect(after.body).toMatchObject({ status: "ok", database: { reachable: true } });
  expect(gateway.output()).not.toMatch(/Uncaught|uncaught exception|unhandled promise rejection/i);
}

describe("the cluster of this file", () => {
  it("runs with PostgreSQL's durable settings", async () => {
    const { rows } = await sql<{ name: string; setting: string }>`
      select name, setting from pg_settings where name in ('fsync', 'synchronous_commit', 'full_page_writes') order by name
    `.execute(db);
    expect(rows).toEqual([
      { name: "fsync", setting: "on" },
      { name: "full_page_writes", setting: "on" },
      { name: "synchronous_commit", setting: "on" },
    ]);
  });
});

describe("ingest through a database crash", () => {
  const EVENTS_PER_BATCH = 250;
  const SENDERS = 3;
  const CRASH_AFTER_OK = 6;
  const OK_AFTER_RECOVERY = 4;
  const MAX_BATCHES = 200; // a stream that never reaches the end conditions fails instead of running forever

  let userId: string;

  beforeAll(async () => {
    userId = randomUUID();
    await sql`
      insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
      values ('00000000-0000-0000-0000-000000000000', ${userId}::uuid, 'authenticated', 'authenticated',
              ${`${userId}@example.test`}, '{"provider": "email"}'::jsonb, '{}'::jsonb, now(), now())
    `.execute(db);
    await sql`update public.privacy_prefs set consent_given = true, monitoring_enabled = true where user_id = ${userId}::uuid`.execute(db);
    await sql`insert into public.app_allowlist (user_id, app_id) values (${userId}::uuid, 'desktop')`.execute(db);
    await sql`insert into public.signal_toggles (user_id, signal_key, sampling_rate) values (${userId}::uuid, 'screen.view', 1)`.execute(db);
  });

  const batchOf = () =>
    Array.from({ length: EVENTS_PER_BATCH }, (_, i) => ({
      kind: "telemetry",
      id: randomUUID(),
      occurred_at: new Date(Date.now() - i * 1000).toISOString(),
      app_id: "desktop",
      event_type: "screen.view",
      duration_ms: i,
      metadata: { screen: "settings" },
    }));

  async function post(outage: Outage, events: unknown[]): Promise<Answer> {
    return send(outage, `${gateway.url}/functions/v1/ingest`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${await userToken(userId)}` },
      body: JSON.stringify({ events }),
    });
  }

  /** How many of `ids` are stored, and how many distinct ones. */
  async function stored(ids: string[]): Promise<{ rows: number; distinct: number }> {
    const { rows } = await sql<{ rows: number; distinct: number }>`
      select count(*)::int as rows, count(distinct id)::int as distinct from public.telemetry_events
      where user_id = ${userId}::uuid and id = any(${ids}::uuid[])
    `.execute(db);
    return rows[0] ?? { rows: -1, distinct: -1 };
  }

  it("answers 503 while the database is down, stores no batch in part and loses none it acknowledged", async () => {
    let healthWhileDown: Answer | null = null;
    const outage = new Outage({ cluster, whileDown: async () => void (healthWhileDown = await health()) });
    const batches: Array<{ events: Array<{ id: string }>; ids: string[]; answer: Answer }> = [];
    let ok = 0;
    let okAfterRecovery = 0;

    const sender = async () => {
      while (batches.length < MAX_BATCHES && okAfterRecovery < OK_AFTER_RECOVERY && !outage.failure) {
        const events = batchOf();
        const entry = { events, ids: events.map((e) => e.id), answer: null as unknown as Answer };
        batches.push(entry);
        entry.answer = await post(outage, events);
        if (entry.answer.status !== 200) continue;
        expect(entry.answer.body).toMatchObject({ accepted: EVENTS_PER_BATCH, duplicate: 0, rejected: 0 });
        if (++ok === CRASH_AFTER_OK) outage.trigger();
        if (entry.answer.phase === "up") okAfterRecovery++;
      }
    };
    await Promise.all(Array.from({ length: SENDERS }, sender));
    await outage.finished();

    const answers = batches.map((b) => b.answer);
    expectStreamAnswers(answers);
    // Health said the database was unreachable during the outage (and answered: it did not hang).
    expect(healthWhileDown).toMatchObject({ status: 503, body: { error: { code: "database_unreachable" } } });
    await expectGatewaySurvived();

    // No batch stored in part; every batch answered 200 stored whole (a durable commit survives the crash).
    const before = await Promise.all(batches.map((b) => stored(b.ids)));
    before.forEach((count, i) => {
      expect([0, EVENTS_PER_BATCH]).toContain(count.rows);
      if (answers[i]?.status === 200) expect(count.rows).toBe(EVENTS_PER_BATCH);
    });
    expect(answers.filter((a) => a.status === 503).length).toBeGreaterThanOrEqual(2);

    // Retry every batch unchanged (same ids and occurred_at), as a client does after a 503 or when it never saw the
    // answer: each event is stored once, and the report calls duplicate exactly what was already there.
    const retry = new Outage({ cluster });
    for (const [i, batch] of batches.entries()) {
      const answer = await post(retry, batch.events);
      expect(answer.status).toBe(200);
      const report = answer.body as unknown as IngestReport;
      const wasStored = before[i]?.rows === EVENTS_PER_BATCH;
      expect({ batch: i, accepted: report.accepted, duplicate: report.duplicate, rejected: report.rejected }).toEqual({
        batch: i,
        accepted: wasStored ? 0 : EVENTS_PER_BATCH,
        duplicate: wasStored ? EVENTS_PER_BATCH : 0,
        rejected: 0,
      });
    }
    const all = batches.flatMap((b) => b.ids);
    expect(await stored(all)).toEqual({ rows: all.length, distinct: all.length });
  }, 240_000);
});

describe("stripe-webhook through a database crash", () => {
  const LIFECYCLES = 4;
  const CRASH_AFTER_OK = 8;
  const now = Math.floor(Date.now() / 1000);
  const run = `crash${Date.now().toString(36)}`;

  function webhookSecret(): string {
    const secret = process.env.STRIPE_WEBHOOK_SECRET;
    if (!secret) throw new Error("STRIPE_WEBHOOK_SECRET not set: run the tests via `npm test`, which sets it");
    return secret;
  }

  interface StripeEvent {
    id: string;
    object: "event";
    type: string;
    created: number;
    api_version: string;
    livemode: false;
    data: { object: Record<string, unknown> };
  }

  interface Lifecycle {
    organizationId: string;
    productId: string;
    priceId: string;
    customerId: string;
    subscriptionId: string;
    invoiceId: string;
  }

  async function createLifecycle(set: string, k: number): Promise<Lifecycle> {
    const slug = `${run}-${set}-${k}`;
    const { rows } = await sql<{ id: string }>`insert into public.organizations (name, slug) values (${slug}, ${slug}) returning id`.execute(db);
    const organizationId = rows[0]?.id;
    if (!organizationId) throw new Error("organization not created");
    const id = (prefix: string) => `${prefix}_${run}_${set}_${k}`;
    return {
      organizationId, productId: id("prod"), priceId: id("price"), customerId: id("cus"), subscriptionId: id("sub"), invoiceId: id("in"),
    };
  }

  /** The events of one customer's life, in the order Stripe creates them; the last one differs between lifecycles. */
  function lifecycleObjects(l: Lifecycle, k: number): Array<[string, Record<string, unknown>]> {
    const periodStart = now - 100;
    const periodEnd = periodStart + 30 * 86400;
    const subscription = (status: string, extra: Record<string, unknown> = {}) => ({
      id: l.subscriptionId, object: "subscription", customer: l.customerId, status, currency: "usd", created: now - 100,
      start_date: now - 100, cancel_at_period_end: false, cancel_at: null, canceled_at: null, ended_at: null,
      trial_start: null, trial_end: null, metadata: {},
      items: { object: "list", data: [{
        id: `si_${l.subscriptionId}`, object: "subscription_item", quantity: 1,
        current_period_start: periodStart, current_period_end: periodEnd,
        price: { id: l.priceId, object: "price", product: l.productId, currency: "usd", unit_amount: 2900 },
      }] },
      ...extra,
    });
    const invoice = (status: string) => ({
      id: l.invoiceId, object: "invoice", customer: l.customerId, status, currency: "usd", number: `INV-${k}`,
      amount_due: 2900, amount_paid: status === "paid" ? 2900 : 0, amount_remaining: status === "paid" ? 0 : 2900,
      subtotal: 2900, total: 2900, attempt_count: 1, billing_reason: "subscription_cycle", hosted_invoice_url: null,
      invoice_pdf: null, period_start: periodStart, period_end: periodStart, created: now - 100, metadata: {},
      status_transitions: { finalized_at: status === "draft" ? null : now - 90, paid_at: status === "paid" ? now - 80 : null, voided_at: null, marked_uncollectible_at: null },
      parent: { type: "subscription_details", subscription_details: { subscription: l.subscriptionId, metadata: {} } },
    });
    const customer = (name: string) => ({
      id: l.customerId, object: "customer", email: "billing@example.test", name, created: now - 900,
      metadata: { organization_id: l.organizationId },
    });
    return [
      ["product.created", { id: l.productId, object: "product", name: `Pro ${k}`, active: true, description: null, created: now - 1000, metadata: { plan: "pro" } }],
      ["price.created", { id: l.priceId, object: "price", product: l.productId, active: true, currency: "usd", unit_amount: 2900, type: "recurring", recurring: { interval: "month", interval_count: 1 }, nickname: null, lookup_key: null, created: now - 1000, metadata: {} }],
      ["customer.created", customer("Billing Contact")],
      ["customer.subscription.created", subscription("trialing", { trial_start: now - 100, trial_end: now + 86400 })],
      ["invoice.created", invoice("draft")],
      ["customer.subscription.updated", subscription("active")],
      ["invoice.finalized", invoice("open")],
      ["invoice.paid", invoice("paid")],
      ["customer.updated", customer(`Renamed ${k}`)],
      k % 2 === 1
        ? ["customer.subscription.deleted", subscription("canceled", { canceled_at: now, ended_at: now })]
        : ["customer.subscription.updated", subscription("active", { cancel_at_period_end: true, cancel_at: periodEnd })],
    ];
  }

  /** Every lifecycle's events, interleaved step by step, each `created` one second after the one before. */
  function stream(set: string, lifecycles: Lifecycle[]): StripeEvent[] {
    const perLifecycle = lifecycles.map((l, k) => lifecycleObjects(l, k));
    const events: StripeEvent[] = [];
    let created = now - 500;
    for (let step = 0; step < (perLifecycle[0]?.length ?? 0); step++) {
      perLifecycle.forEach((objects, k) => {
        const [type, object] = objects[step] ?? ["", {}];
        events.push({
          id: `evt_${run}_${set}_${k}_${step}`, object: "event", type, created: ++created, api_version: "2025-03-31.basil",
          livemode: false, data: { object },
        });
      });
    }
    return events;
  }

  function deliver(outage: Outage, stripeEvent: StripeEvent): Promise<Answer> {
    const payload = JSON.stringify(stripeEvent);
    // Signed at each delivery, as Stripe does for every retry.
    const signature = Stripe.webhooks.generateTestHeaderString({ payload, secret: webhookSecret() });
    return send(outage, `${gateway.url}/functions/v1/stripe-webhook`, {
      method: "POST",
      headers: { "content-type": "application/json; charset=utf-8", "stripe-signature": signature },
      body: payload,
    });
  }

  /** What the billing tables say about one lifecycle, with its ids left out so two lifecycles can be compared. */
  async function stateOf(l: Lifecycle): Promise<unknown> {
    const { rows } = await sql<{ state: unknown }>`
      select jsonb_build_object(
        'plan', (select plan from public.organizations where id = ${l.organizationId}::uuid),
        'customer', (select jsonb_build_object('name', name, 'deleted', deleted_at is not null,
                                               'linked', organization_id = ${l.organizationId}::uuid)
                     from public.billing_customers where stripe_customer_id = ${l.customerId}),
        'product_active', (select active from public.products where stripe_product_id = ${l.productId}),
        'price_active', (select active from public.prices where stripe_price_id = ${l.priceId}),
        'subscription', (select jsonb_build_object('status', status, 'cancel_at_period_end', cancel_at_period_end,
                                                   'linked', organization_id = ${l.organizationId}::uuid,
                                                   'period', extract(epoch from current_period_end - current_period_start))
                         from public.subscriptions where stripe_subscription_id = ${l.subscriptionId}),
        'invoice', (select jsonb_build_object('status', status, 'amount_paid', amount_paid::text,
                                              'subscription_linked', subscription_id is not null,
                                              'organization_linked', organization_id = ${l.organizationId}::uuid)
                    from public.invoices where stripe_invoice_id = ${l.invoiceId})
      ) as state
    `.execute(db);
    return rows[0]?.state;
  }

  it("after Stripe's retries, the state is what in-order delivery gives, and every event is applied once", async () => {
    // The reference: the same lifecycles (other ids) delivered in order while the database is up.
    const reference = await Promise.all(Array.from({ length: LIFECYCLES }, (_, k) => createLifecycle("ref", k)));
    const calm = new Outage({ cluster });
    for (const stripeEvent of stream("ref", reference)) {
      const answer = await deliver(calm, stripeEvent);
      expect({ type: stripeEvent.type, status: answer.status, outcome: answer.body.outcome }).toEqual({
        type: stripeEvent.type, status: 200, outcome: "applied",
      });
    }

    // The same stream, with the crash in the middle of it.
    const crashed = await Promise.all(Array.from({ length: LIFECYCLES }, (_, k) => createLifecycle("crash", k)));
    const events = stream("crash", crashed);
    const outage = new Outage({ cluster });
    const answers: Answer[] = [];
    let ok = 0;
    for (const stripeEvent of events) {
      if (outage.failure) break;
      const answer = await deliver(outage, stripeEvent);
      answers.push(answer);
      if (answer.status === 200 && ++ok === CRASH_AFTER_OK) outage.trigger();
    }
    await outage.finished();
    expectStreamAnswers(answers);
    await expectGatewaySurvived();

    // Stripe retries every delivery that was not answered 2xx, later and in its own order; it may also redeliver
    // what was answered 200. Both together: the failed ones first (newest first), then all of them again.
    const failed = events.filter((_, i) => answers[i]?.status !== 200).reverse();
    expect(failed.length).toBeGreaterThanOrEqual(2);
    const retries = new Outage({ cluster });
    for (const stripeEvent of failed) {
      const answer = await deliver(retries, stripeEvent);
      expect({ event: stripeEvent.id, status: answer.status }).toEqual({ event: stripeEvent.id, status: 200 });
      expect(["applied", "stale", "ignored"]).toContain(answer.body.outcome);
    }
    // Now every event has been applied (or judged stale) once: delivering any of them again is a duplicate.
    for (const stripeEvent of events) {
      const answer = await deliver(retries, stripeEvent);
      expect({ event: stripeEvent.id, status: answer.status, duplicate: answer.body.duplicate }).toEqual({
        event: stripeEvent.id, status: 200, duplicate: true,
      });
    }
    const { rows: ledger } = await sql<{ id: string; outcome: string | null }>`
      select id, outcome from private.stripe_events where id = any(${events.map((e) => e.id)}::text[])
    `.execute(db);
    expect(ledger).toHaveLength(events.length);
    for (const row of ledger) expect(["applied", "stale", "ignored"]).toContain(row.outcome);

    const expected = await Promise.all(reference.map(stateOf));
    const actual = await Promise.all(crashed.map(stateOf));
    expect(actual).toEqual(expected);
    // What in-order delivery gives, so the comparison has teeth: one lifecycle ends canceled, the next one active
    // with cancel at period end, both with their invoice paid and the customer renamed.
    expect(expected[0]).toMatchObject({
      plan: "pro", customer: { name: "Renamed 0", deleted: false, linked: true },
      subscription: { status: "active", cancel_at_period_end: true, linked: true }, invoice: { status: "paid", amount_paid: "2900" },
    });
    expect(expected[1]).toMatchObject({
      plan: "free", customer: { name: "Renamed 1", linked: true },
      subscription: { status: "canceled", linked: true }, invoice: { status: "paid", subscription_linked: true },
    });
  }, 240_000);
});
