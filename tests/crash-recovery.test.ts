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
