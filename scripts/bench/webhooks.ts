// Benchmark of outbound webhooks (issue 10, section 4). Run by `npm run bench -- webhooks` (scripts/bench.sh), or
// alone against a migrated database: SUPABASE_DB_URL=postgresql://... tsx scripts/bench/webhooks.ts [options]
//
// One run, two phases over the same deliveries, to a local HTTP receiver in this process:
//   queue  private.emit_event() enqueues them; `dispatchers` dispatcher loops (the webhook-dispatcher function's own
//          code, each with its own database pool) claim, sign, post and record until the queue is empty
//   bare   `dispatchers` posters sign (standardwebhooks) and post the same bodies with the same secrets, no database
// Both phases keep the same number of requests in flight (dispatchers x concurrency). The phases alternate over
// `rounds` rounds, so a change in the machine's load hits both alike; it prints deliveries per second of each (over
// all rounds), the ratio queue/bare of every round and their median (bar: >= 0.5). Speed is reported, never asserted; exit 1 only when a
// delivery is lost, duplicated or arrives with a signature the receiver's verifier rejects.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { sql, type Kysely } from "kysely";
import { Webhook } from "standardwebhooks";
import { createDatabase, type UntypedDatabase } from "../../supabase/functions/_shared/db.ts";
import { drain, signedHeaders, type ClaimedDelivery } from "../../supabase/functions/webhook-dispatcher/dispatcher.ts";
import { benchFail, parseNumberOptions, positiveInteger } from "../bench-options.ts";

const HELP = `webhooks benchmark

usage: tsx scripts/bench/webhooks.ts [--deliveries N] [--rounds N] [--webhooks N] [--dispatchers N] [--concurrency N] [--batch N]

  --deliveries N    deliveries per phase and round (default 2000)
  --rounds N        rounds of queue then bare (default 3)
  --webhooks N      webhooks subscribed to the events (default 4; deliveries are spread over them)
  --dispatchers N   dispatcher loops, and bare posters (default 4)
  --concurrency N   requests in flight per dispatcher and per poster (default 1)
  --batch N         deliveries claimed per batch (default 50)

environment: SUPABASE_DB_URL (or DB_URL). Exit 1 when a delivery is lost, duplicated or badly signed.`;

interface Options {
  deliveries: number;
  rounds: number;
  webhooks: number;
  dispatchers: number;
  concurrency: number;
  batch: number;
}

const fail = (message: string): never => benchFail("webhooks", message);

function parseOptions(args: string[]): Options {
  const defaults: Options = { deliveries: 2000, rounds: 3, webhooks: 4, dispatchers: 4, concurrency: 1, batch: 50 };
  return parseNumberOptions("webhooks", HELP, defaults, args, positiveInteger);
}

const SECRET = "whsec_" + Buffer.from("benchmark-signing-secret-0123456789abcdef").toString("base64");

/** The receiver: counts deliveries per webhook-id and verifies every signature with the library's verifier. */
function startReceiver() {
  const verifier = new Webhook(SECRET);
  const seen = new Map<string, number>();
  let badSignatures = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
      try {
        verifier.verify(Buffer.concat(chunks).toString("utf8"), headers);
      } catch {
        badSignatures++;
      }
      const key = `${req.url} ${headers["webhook-id"]}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
      res.writeHead(204).end();
    });
  });
  return {
    server,
    seen,
    badSignatures: () => badSignatures,
    reset: () => {
      seen.clear();
      badSignatures = 0;
    },
  };
}

async function setUp(db: Kysely<UntypedDatabase>, port: number, webhooks: number) {
  const tag = `bench${Date.now().toString(36)}`;
  const user = await sql<{ id: string }>`
    insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
    values ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated',
            ${tag + "@bench.test"}, '{}', '{}', now(), now()) returning id`.execute(db);
  const userId = user.rows[0]?.id ?? fail("could not create the benchmark user");
  const org = await sql<{ id: string }>`
    insert into public.organizations (name, slug, created_by) values ('Webhook bench', ${tag}, ${userId}::uuid) returning id`.execute(db);
  const orgId = org.rows[0]?.id ?? fail("could not create the benchmark organization");
  await sql`insert into public.organization_members (organization_id, user_id, role_id)
            select ${orgId}::uuid, ${userId}::uuid, id from public.roles where organization_id is null and key = 'owner'`.execute(db);
  for (let i = 0; i < webhooks; i++) {
    await db.transaction().execute(async (trx) => {
      await sql`select set_config('role', 'authenticated', true),
                       set_config('request.jwt.claims', ${JSON.stringify({ sub: userId, role: "authenticated" })}, true)`.execute(trx);
      // Half the webhooks take integration.connected, half integration.disconnected.
      await sql`select public.create_webhook(${orgId}::uuid, ${"bench " + i}, ${`http://127.0.0.1:${port}/hook/${i}`},
                       array[${i % 2 === 0 ? "integration.connected" : "integration.disconnected"}, ${"webhook.test"}]::text[],
                       ${SECRET})`.execute(trx);
    });
  }
  return { userId, orgId };
}

/** Enqueues about `count` deliveries spread over the webhooks (an event reaches every webhook of its type). */
async function enqueue(db: Kysely<UntypedDatabase>, orgId: string, count: number): Promise<void> {
  const types = ["integration.connected", "integration.disconnected"];
  const subscribers = await sql<{ event_type: string; n: number }>`
    select e as event_type, count(*)::integer as n from public.webhooks w, unnest(w.events) e
    where w.organization_id = ${orgId}::uuid and e = any (${types}::text[]) group by e`.execute(db);
  const perType = new Map(subscribers.rows.map((r) => [r.event_type, r.n]));
  let queued = 0;
  let i = 0;
  while (queued < count) {
    const type = types[i++ % 2] as string;
    const fanOut = perType.get(type) ?? 0;
    if (fanOut === 0) continue;
    const events = Math.min(200, Math.ceil((count - queued) / fanOut));
    await sql`select private.emit_event(${orgId}::uuid, ${type},
                jsonb_build_object('integration_id', gen_random_uuid(), 'provider', 'slack', 'n', g, 'note', repeat('x', 200)))
              from generate_series(1, ${events}::integer) g`.execute(db);
    queued += events * fanOut;
  }
}

async function queuedCount(db: Kysely<UntypedDatabase>, orgId: string): Promise<number> {
  const r = await sql<{ n: number }>`select count(*)::integer as n from public.webhook_deliveries
    where organization_id = ${orgId}::uuid and status = 'pending'`.execute(db);
  return r.rows[0]?.n ?? 0;
}

/** The same deliveries as the queue phase sent, shaped like a claim (body, secret, URL), for the bare posters. */
async function deliveredItems(db: Kysely<UntypedDatabase>, orgId: string): Promise<ClaimedDelivery[]> {
  const r = await sql<ClaimedDelivery>`
    select d.id as delivery_id, d.id as lease_id, d.webhook_id, d.event_id, d.event_type, d.attempt, w.url::text as url,
           w.headers, s.decrypted_secret as signing_secret,
           jsonb_build_object('type', d.event_type,
                              'timestamp', to_char(d.occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                              'data', d.payload)::text as body
    from public.webhook_deliveries d
    join public.webhooks w on w.id = d.webhook_id
    join vault.decrypted_secrets s on s.id = w.credentials_secret_id
    where d.organization_id = ${orgId}::uuid and d.status = 'delivered'`.execute(db);
  return r.rows;
}

async function barePost(items: readonly ClaimedDelivery[], posters: number, concurrency: number): Promise<number> {
  let next = 0;
  let failures = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as ClaimedDelivery;
      const response = await fetch(item.url, { method: "POST", headers: signedHeaders(item, new Date()), body: item.body,
                                               redirect: "manual", signal: AbortSignal.timeout(10_000) });
      await response.arrayBuffer();
      if (response.status < 200 || response.status >= 300) failures++;
    }
  };
  await Promise.all(Array.from({ length: posters * concurrency }, worker));
  return failures;
}

async function queuePhase(dbUrl: string, options: Options): Promise<number> {
  const pools = Array.from({ length: options.dispatchers }, (_, i) =>
    createDatabase(dbUrl, { max: 2, applicationName: `bench-dispatcher-${i}` }));
  try {
    const totals = await Promise.all(pools.map((db) => drain({
      db, allowPrivateTargets: true, timeoutMs: 10_000, batchSize: options.batch, concurrency: options.concurrency,
      budgetMs: 600_000,
    })));
    return totals.reduce((sum, t) => sum + t.delivered, 0);
  } finally {
    await Promise.all(pools.map((db) => db.destroy()));
  }
}

function check(receiver: ReturnType<typeof startReceiver>, expected: number, phase: string): void {
  const duplicates = [...receiver.seen.values()].filter((n) => n > 1).length;
  if (receiver.seen.size !== expected || duplicates > 0 || receiver.badSignatures() > 0) {
    fail(`${phase}: received ${receiver.seen.size} distinct of ${expected}, ${duplicates} duplicated, ` +
         `${receiver.badSignatures()} with a bad signature`);
  }
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const dbUrl = process.env.SUPABASE_DB_URL || process.env.DB_URL || fail("SUPABASE_DB_URL is not set (see --help)");
  const db = createDatabase(dbUrl, { max: 2, applicationName: "bench-webhooks" });
  const receiver = startReceiver();
  await new Promise<void>((resolve) => receiver.server.listen(0, "127.0.0.1", resolve));
  const port = (receiver.server.address() as AddressInfo).port;
  const { userId, orgId } = await setUp(db, port, options.webhooks);
  try {
    // Warm-up (connections, JIT, plans), not measured.
    await enqueue(db, orgId, 200);
    await queuePhase(dbUrl, options);
    await barePost(await deliveredItems(db, orgId), options.dispatchers, options.concurrency);
    await sql`delete from public.webhook_deliveries where organization_id = ${orgId}::uuid`.execute(db);
    receiver.reset();

    let queueTotal = 0;
    let queueSeconds = 0;
    let bareTotal = 0;
    let bareSeconds = 0;
    const ratios: number[] = [];
    for (let round = 1; round <= options.rounds; round++) {
      await sql`delete from public.webhook_deliveries where organization_id = ${orgId}::uuid`.execute(db);
      await enqueue(db, orgId, options.deliveries);
      const expected = await queuedCount(db, orgId);
      const queueStarted = performance.now();
      const delivered = await queuePhase(dbUrl, options);
      const queueTime = (performance.now() - queueStarted) / 1000;
      if (delivered !== expected) fail(`queue: ${delivered} of ${expected} delivered`);
      check(receiver, expected, "queue");
      receiver.reset();

      const items = await deliveredItems(db, orgId);
      const bareStarted = performance.now();
      const failures = await barePost(items, options.dispatchers, options.concurrency);
      const bareTime = (performance.now() - bareStarted) / 1000;
      if (failures > 0) fail(`bare: ${failures} posts failed`);
      check(receiver, items.length, "bare");
      receiver.reset();

      const ratio = (expected / queueTime) / (items.length / bareTime);
      ratios.push(ratio);
      console.log(`round ${round}: queue ${(expected / queueTime).toFixed(0)}/s, bare ${(items.length / bareTime).toFixed(0)}/s, ` +
                  `ratio ${ratio.toFixed(3)}`);
      queueTotal += expected;
      queueSeconds += queueTime;
      bareTotal += items.length;
      bareSeconds += bareTime;
    }
    const median = [...ratios].sort((a, b) => a - b)[Math.floor(ratios.length / 2)] ?? 0;
    console.log(`deliveries: ${queueTotal} per phase to ${options.webhooks} webhooks over ${options.rounds} rounds; ` +
                `${options.dispatchers} dispatchers/posters x ${options.concurrency} in flight; batch ${options.batch}`);
    console.log(`queue (emit_event -> claim -> sign -> post -> record): ${(queueTotal / queueSeconds).toFixed(0)} deliveries/s (${queueSeconds.toFixed(2)} s)`);
    console.log(`bare  (sign -> post, no database):                    ${(bareTotal / bareSeconds).toFixed(0)} deliveries/s (${bareSeconds.toFixed(2)} s)`);
    console.log(`ratio queue/bare: ${((queueTotal / queueSeconds) / (bareTotal / bareSeconds)).toFixed(3)} overall, ` +
                `${median.toFixed(3)} median of rounds (bar >= 0.5: ${median >= 0.5 ? "met" : "NOT met"})`);
  } finally {
    await sql`delete from public.organizations where id = ${orgId}::uuid`.execute(db);
    await sql`delete from auth.users where id = ${userId}::uuid`.execute(db);
    await db.destroy();
    receiver.server.closeAllConnections();
    receiver.server.close();
  }
}

await main();
