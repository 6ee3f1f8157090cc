// The webhook dispatcher against the real database and a local HTTP receiver that verifies every signature with the
// receiving side of the same library (standardwebhooks' Webhook.verify): retries and backoff on 500, timeouts,
// refused connections, redirects, the SSRF guard (both ways), disabling after repeated failure, concurrent
// dispatchers delivering each delivery once, and the edge function through the gateway.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { sql, type Kysely } from "kysely";
import { Webhook } from "standardwebhooks";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { createDatabase, type UntypedDatabase } from "../supabase/functions/_shared/db.ts";
import { isNonPublicAddress } from "../supabase/functions/_shared/ssrf.ts";
import { dispatchOnce, drain, type DispatcherOptions } from "../supabase/functions/webhook-dispatcher/dispatcher.ts";
import { testEnv } from "./helpers/env.ts";
import { anonKey, serviceRoleKey } from "./helpers/jwt.ts";

const gatewayUrl = inject("gatewayUrl");
const SECRET = "whsec_" + Buffer.from("vitest-webhook-secret-0123456789abcdef").toString("base64");

interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
  verified: boolean;
}

type Behaviour = (req: IncomingMessage, res: ServerResponse, count: number) => void;

/** A local receiver: per path a behaviour; every request is recorded with whether its signature verified. */
class Receiver {
  readonly received: Received[] = [];
  private readonly behaviours = new Map<string, Behaviour>();
  private readonly counts = new Map<string, number>();
  private readonly verifier = new Webhook(SECRET);
  private server: Server | null = null;
  port = 0;

  on(path: string, behaviour: Behaviour): string {
    this.behaviours.set(path, behaviour);
    return `http://127.0.0.1:${this.port}${path}`;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
        let verified = false;
        try {
          this.verifier.verify(body, headers);
          verified = true;
        } catch {
          verified = false;
        }
        const path = (req.url ?? "/").split("?")[0] ?? "/";
        this.received.push({ path, headers, body, verified });
        const count = (this.counts.get(path) ?? 0) + 1;
        this.counts.set(path, count);
        const behaviour = this.behaviours.get(path) ?? ((_q, s) => s.writeHead(404).end("no such path"));
        behaviour(req, res, count);
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve));
    this.port = (this.server?.address() as AddressInfo).port;
  }

  at(path: string): Received[] {
    return this.received.filter((r) => r.path === path);
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }
}

const ok: Behaviour = (_req, res) => res.writeHead(200, { "content-type": "application/json" }).end('{"received":true}');

let db: Kysely<UntypedDatabase>;
const receiver = new Receiver();
const otherHost = new Receiver();
let ownerId = "";
let organizationId = "";
const run = `w${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

function options(extra: Partial<DispatcherOptions> = {}): DispatcherOptions {
  return { db, allowPrivateTargets: true, timeoutMs: 5000, batchSize: 50, concurrency: 4, ...extra };
}

/** Creates a webhook as the organization's owner (through create_webhook) and returns its id. */
async function createWebhook(url: string, events: string[] = ["webhook.test", "integration.connected"]): Promise<string> {
  return await db.transaction().execute(async (trx) => {
    await sql`select set_config('role', 'authenticated', true),
                     set_config('request.jwt.claims', ${JSON.stringify({ sub: ownerId, role: "authenticated" })}, true)`.execute(trx);
    const result = await sql<{ id: string }>`
      select public.create_webhook(${organizationId}::uuid, ${"hook " + url}, ${url}, ${events}::text[], ${SECRET}) as id`.execute(trx);
    const id = result.rows[0]?.id;
    if (!id) throw new Error("create_webhook returned nothing");
    return id;
  });
}

/** Emits an event (as the database owner: emit_event is granted to no API role); returns its id. */
async function emit(payload: Record<string, unknown> = {}, type = "integration.connected"): Promise<string> {
  const result = await sql<{ id: string }>`
    select private.emit_event(${organizationId}::uuid, ${type}, cast(${JSON.stringify(payload)}::text as jsonb)) as id`.execute(db);
  return result.rows[0]?.id ?? "";
}

interface DeliveryRow {
  status: string;
  attempt: number;
  error: string | null;
  response_status: number | null;
  retry_in_ms: number | null;
}

async function delivery(webhookId: string, eventId: string): Promise<DeliveryRow> {
  const result = await sql<DeliveryRow>`
    select status, attempt, error, response_status,
           case when status = 'failed' then (extract(epoch from next_attempt_at - now()) * 1000)::integer end as retry_in_ms
    from public.webhook_deliveries where webhook_id = ${webhookId}::uuid and event_id = ${eventId}::uuid`.execute(db);
  const row = result.rows[0];
  if (!row) throw new Error(`no delivery of ${eventId} to ${webhookId}`);
  return row;
}

/** Makes a scheduled retry due now (instead of waiting for it). */
async function makeDue(webhookId: string): Promise<void> {
  await sql`update public.webhook_deliveries set next_attempt_at = now() where webhook_id = ${webhookId}::uuid
            and status in ('pending', 'failed')`.execute(db);
}

beforeAll(async () => {
  db = createDatabase(testEnv().dbUrl, { max: 4, applicationName: "webhook-dispatcher-test" });
  await receiver.start();
  await otherHost.start();
  otherHost.on("/ok", ok);
  const user = await sql<{ id: string }>`
    insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
    values ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated',
            ${run + "@example.test"}, '{}', '{}', now(), now())
    returning id`.execute(db);
  ownerId = user.rows[0]?.id ?? "";
  const org = await sql<{ id: string }>`
    insert into public.organizations (name, slug, created_by) values ('Webhook tests', ${run}, ${ownerId}::uuid) returning id`.execute(db);
  organizationId = org.rows[0]?.id ?? "";
  await sql`insert into public.organization_members (organization_id, user_id, role_id)
            select ${organizationId}::uuid, ${ownerId}::uuid, id from public.roles where organization_id is null and key = 'owner'`.execute(db);
  // Nothing queued by earlier suites (or the demo data) takes part in these runs.
  await sql`update public.webhook_deliveries set status = 'dead', error = 'test_isolation', lease_id = null, locked_until = null
            where status in ('pending', 'failed', 'delivering')`.execute(db);
});

// Each test has its own webhooks: those of earlier tests take no later events, and a retry one scheduled (5 s ahead)
// never becomes due during a later one.
afterEach(async () => {
  await sql`update public.webhooks set is_enabled = false where organization_id = ${organizationId}::uuid`.execute(db);
});

afterAll(async () => {
  await sql`delete from public.organizations where id = ${organizationId}::uuid`.execute(db);
  await sql`delete from auth.users where id = ${ownerId}::uuid`.execute(db);
  await db.destroy();
  await receiver.stop();
  await otherHost.stop();
});

describe("webhook dispatcher", () => {
  it("signs per Standard Webhooks so that the library's verifier accepts the delivery, and rejects a tampered body", async () => {
    const hook = await createWebhook(receiver.on("/signed", ok));
    const eventId = await emit({ integration_id: "abc", n: 1 });
    const summary = await dispatchOnce(options());
    expect(summary.claimed).toBe(1);
    const [got] = receiver.at("/signed");
    expect(got?.verified).toBe(true);
    expect(got?.headers["webhook-id"]).toBe(eventId);
    expect(got?.headers["webhook-timestamp"]).toMatch(/^\d{10}$/);
    expect(got?.headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(JSON.parse(got?.body ?? "{}")).toMatchObject({ type: "integration.connected", data: { integration_id: "abc", n: 1 } });
    expect(() => new Webhook(SECRET).verify((got?.body ?? "").replace('"n": 1', '"n": 2'), got?.headers ?? {})).toThrow();
    expect(await delivery(hook, eventId)).toMatchObject({ status: "delivered", attempt: 1, response_status: 200 });
  });

  it("retries a 500 after 5 s and then 5 min, and delivers once the receiver recovers", async () => {
    const url = receiver.on("/flaky", (_q, res, count) => (count <= 2 ? res.writeHead(500).end("boom") : ok(_q, res, count)));
    const hook = await createWebhook(url);
    const eventId = await emit({ flaky: true });
    await dispatchOnce(options());
    const first = await delivery(hook, eventId);
    expect(first).toMatchObject({ status: "failed", attempt: 1, error: "http_500", response_status: 500 });
    expect(first.retry_in_ms).toBeGreaterThan(4_000);
    expect(first.retry_in_ms).toBeLessThanOrEqual(5_500);
    await dispatchOnce(options());
    expect((await delivery(hook, eventId)).attempt).toBe(1);
    await makeDue(hook);
    await dispatchOnce(options());
    const second = await delivery(hook, eventId);
    expect(second).toMatchObject({ status: "failed", attempt: 2 });
    expect(second.retry_in_ms).toBeGreaterThan(290_000);
    expect(second.retry_in_ms).toBeLessThanOrEqual(330_000);
    await makeDue(hook);
    await dispatchOnce(options());
    expect(await delivery(hook, eventId)).toMatchObject({ status: "delivered", attempt: 3, error: null });
    expect(receiver.at("/flaky").map((r) => r.headers["webhook-id"])).toEqual([eventId, eventId, eventId]);
  });

  it("keeps the start of a receiver's answer, without the NUL bytes Postgres text cannot hold", async () => {
    const hook = await createWebhook(receiver.on("/nul", (_q, res) => res.writeHead(200).end("ok\u0000" + "y".repeat(5000))));
    const eventId = await emit({ nul: true });
    await dispatchOnce(options());
    expect(await delivery(hook, eventId)).toMatchObject({ status: "delivered" });
    const body = await sql<{ response_body: string }>`select response_body from public.webhook_deliveries
      where webhook_id = ${hook}::uuid and event_id = ${eventId}::uuid`.execute(db);
    expect(body.rows[0]?.response_body).toBe("ok" + "y".repeat(2046));
  });

  it("records a timeout when the receiver does not answer in time", async () => {
    const hook = await createWebhook(receiver.on("/hang", () => {}));
    const eventId = await emit({ hang: true });
    await dispatchOnce(options({ timeoutMs: 300 }));
    expect(await delivery(hook, eventId)).toMatchObject({ status: "failed", attempt: 1, error: "timeout" });
  });

  it("records a refused connection", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const hook = await createWebhook(`http://127.0.0.1:${port}/nobody`);
    const eventId = await emit({ refused: true });
    await dispatchOnce(options());
    expect(await delivery(hook, eventId)).toMatchObject({ status: "failed", error: "connection_failed", response_status: null });
  });

  it("never follows a redirect to another host, and follows a 307 on the same host", async () => {
    const away = await createWebhook(receiver.on("/away", (_q, res) =>
      res.writeHead(307, { location: `http://localhost:${otherHost.port}/ok` }).end()));
    const same = await createWebhook(receiver.on("/moved", (_q, res) => res.writeHead(307, { location: "/signed" }).end()));
    const eventId = await emit({ redirect: true });
    const before = receiver.at("/signed").length;
    await dispatchOnce(options());
    expect(await delivery(away, eventId)).toMatchObject({ status: "failed", error: "redirect_refused", response_status: 307 });
    expect(otherHost.received).toHaveLength(0);
    expect(await delivery(same, eventId)).toMatchObject({ status: "delivered" });
    expect(receiver.at("/signed").length).toBe(before + 1);
  });

  it("refuses loopback, private and link-local targets after resolving them unless private targets are allowed", async () => {
    expect(["127.0.0.1", "10.1.2.3", "172.20.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1",
            "fe80::1", "fd00::1", "::ffff:127.0.0.1", "::ffff:a9fe:a9fe"].filter((a) => !isNonPublicAddress(a))).toEqual([]);
    expect(["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"].filter(isNonPublicAddress)).toEqual([]);

    const byName = await createWebhook(receiver.on("/guarded", ok).replace("127.0.0.1", "localhost"));
    const byAddress = await createWebhook(receiver.on("/guarded", ok));
    const eventId = await emit({ guarded: true });
    await dispatchOnce(options({ allowPrivateTargets: false }));
    expect(await delivery(byName, eventId)).toMatchObject({ status: "failed", error: "address_refused" });
    expect(await delivery(byAddress, eventId)).toMatchObject({ status: "failed", error: "address_refused" });
    expect(receiver.at("/guarded")).toHaveLength(0);

    await makeDue(byName);
    await makeDue(byAddress);
    await dispatchOnce(options({ allowPrivateTargets: true }));
    expect(await delivery(byName, eventId)).toMatchObject({ status: "delivered", attempt: 2 });
    expect(await delivery(byAddress, eventId)).toMatchObject({ status: "delivered", attempt: 2 });
  });

  it("disables a webhook after five consecutive dead deliveries, with the reason", async () => {
    const hook = await createWebhook(receiver.on("/down", (_q, res) => res.writeHead(503).end("down")));
    for (let i = 0; i < 5; i++) await emit({ down: i });
    // Their first seven attempts are behind them: the next one is the last.
    await sql`update public.webhook_deliveries set attempt = 7, status = 'failed' where webhook_id = ${hook}::uuid`.execute(db);
    await dispatchOnce(options());
    const result = await sql<{ is_enabled: boolean; failure_count: number; disabled_reason: string | null }>`
      select is_enabled, failure_count, disabled_reason from public.webhooks where id = ${hook}::uuid`.execute(db);
    expect(result.rows[0]).toMatchObject({ is_enabled: false, failure_count: 5 });
    expect(result.rows[0]?.disabled_reason).toMatch(/^disabled after 5 consecutive deliveries failed.*http_503/);
    const statuses = await sql<{ status: string; n: number }>`
      select status, count(*)::integer as n from public.webhook_deliveries where webhook_id = ${hook}::uuid group by status`.execute(db);
    expect(statuses.rows).toEqual([{ status: "dead", n: 5 }]);
    await emit({ after: true });
    expect((await dispatchOnce(options())).claimed).toBe(0);
  });

  it("delivers each delivery exactly once with four dispatchers racing over the queue", async () => {
    // A short pause per response keeps any one dispatcher from draining the queue alone.
    const hook = await createWebhook(receiver.on("/race", (q, res, n) => setTimeout(() => ok(q, res, n), 20)));
    const ids: string[] = [];
    for (let i = 0; i < 120; i++) ids.push(await emit({ race: i }));
    const dispatchers = Array.from({ length: 4 }, () => createDatabase(testEnv().dbUrl, { max: 2, applicationName: "race" }));
    try {
      const totals = await Promise.all(dispatchers.map((d) => drain({ ...options({ batchSize: 10 }), db: d })));
      expect(totals.reduce((sum, t) => sum + t.delivered, 0)).toBe(120);
      expect(totals.filter((t) => t.delivered > 0).length).toBeGreaterThan(1);
    } finally {
      await Promise.all(dispatchers.map((d) => d.destroy()));
    }
    const seen = receiver.at("/race").map((r) => r.headers["webhook-id"]);
    expect(seen).toHaveLength(120);
    expect(new Set(seen).size).toBe(120);
    expect([...seen].sort()).toEqual([...ids].sort());
    expect(receiver.at("/race").every((r) => r.verified)).toBe(true);
    const rows = await sql<{ n: number }>`select count(*)::integer as n from public.webhook_deliveries
      where webhook_id = ${hook}::uuid and status = 'delivered' and attempt = 1`.execute(db);
    expect(rows.rows[0]?.n).toBe(120);
  });

  it("runs as an edge function for the service role only; without the local flag it refuses private targets", async () => {
    const endpoint = `${gatewayUrl}/functions/v1/webhook-dispatcher`;
    const anon = await fetch(endpoint, { method: "POST", headers: { authorization: `Bearer ${await anonKey()}` } });
    expect(anon.status).toBe(403);
    expect(((await anon.json()) as { error: { code: string } }).error.code).toBeTruthy();
    const hook = await createWebhook(receiver.on("/via-gateway", ok));
    const eventId = await emit({ gateway: true });
    const response = await fetch(endpoint, { method: "POST", headers: { authorization: `Bearer ${await serviceRoleKey()}` } });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ claimed: 1, delivered: 0, failed: 1, recorded: 1 });
    expect(await delivery(hook, eventId)).toMatchObject({ status: "failed", error: "address_refused" });
    expect(receiver.at("/via-gateway")).toHaveLength(0);
  });
});
