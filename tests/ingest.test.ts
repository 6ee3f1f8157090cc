// POST /functions/v1/ingest end to end: real JWTs, through the functions gateway (a real Deno process), against the
// migrated database. Users and their privacy settings are arranged directly in SQL as the database owner.
import { randomUUID } from "node:crypto";
import { sql, type Kysely } from "kysely";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createDatabase, type UntypedDatabase } from "../supabase/functions/_shared/db.ts";
import { runAsCaller } from "../supabase/functions/_shared/request-context.ts";
import type { IngestReport } from "../supabase/functions/ingest/handler.ts";
import { testEnv } from "./helpers/env.ts";
import { anonKey, userToken } from "./helpers/jwt.ts";

const gatewayUrl = inject("gatewayUrl");
const endpoint = `${gatewayUrl}/functions/v1/ingest`;
let db: Kysely<UntypedDatabase>;

interface Settings {
  consent?: boolean;
  apps?: string[];
  signals?: Array<string | { key: string; rate: number }>;
}

async function createUser(settings: Settings = {}): Promise<string> {
  const id = randomUUID();
  await sql`
    insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
    values ('00000000-0000-0000-0000-000000000000', ${id}::uuid, 'authenticated', 'authenticated', ${`${id}@example.test`},
            '{"provider": "email"}'::jsonb, '{}'::jsonb, now(), now())
  `.execute(db);
  const consent = settings.consent ?? true;
  await sql`update public.privacy_prefs set consent_given = ${consent}, monitoring_enabled = ${consent} where user_id = ${id}::uuid`.execute(db);
  for (const app of settings.apps ?? ["desktop"]) {
    await sql`insert into public.app_allowlist (user_id, app_id) values (${id}::uuid, ${app})`.execute(db);
  }
  for (const signal of settings.signals ?? ["screen.view", "file.modified"]) {
    const key = typeof signal === "string" ? signal : signal.key;
    const rate = typeof signal === "string" ? 1 : signal.rate;
    await sql`insert into public.signal_toggles (user_id, signal_key, sampling_rate) values (${id}::uuid, ${key}, ${rate})`.execute(db);
  }
  return id;
}

function telemetry(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    kind: "telemetry",
    id: randomUUID(),
    occurred_at: new Date().toISOString(),
    app_id: "desktop",
    event_type: "screen.view",
    duration_ms: 120,
    metadata: { screen: "settings" },
    ...overrides,
  };
}

async function post(token: string | null, body: unknown, init: { contentType?: string; raw?: string } = {}) {
  const headers: Record<string, string> = { "content-type": init.contentType ?? "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  return fetch(endpoint, { method: "POST", headers, body: init.raw ?? JSON.stringify(body) });
}

async function ingest(userId: string, events: unknown[]): Promise<IngestReport> {
  const response = await post(await userToken(userId), { events });
  expect(response.status).toBe(200);
  return (await response.json()) as IngestReport;
}

async function storedCount(userId: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    select (select count(*) from public.telemetry_events where user_id = ${userId}::uuid)::int
         + (select count(*) from public.file_events where user_id = ${userId}::uuid)::int as n
  `.execute(db);
  return rows[0]?.n ?? -1;
}

beforeAll(() => {
  db = createDatabase(testEnv().dbUrl, { max: 2 });
});
afterAll(async () => {
  await db.destroy();
});

describe("POST /functions/v1/ingest", () => {
  it("stores nothing without consent and says so per event", async () => {
    const user = await createUser({ consent: false });
    const report = await ingest(user, [telemetry(), telemetry()]);
    expect(report.rejected).toBe(2);
    expect(report.results.map((r) => r.reason)).toEqual(["no_consent", "no_consent"]);
    expect(await storedCount(user)).toBe(0);
  });

  it("applies the allowlist and the signal toggles", async () => {
    const user = await createUser();
    const report = await ingest(user, [
      telemetry(),
      telemetry({ app_id: "slack" }),
      telemetry({ event_type: "keypress" }),
      { kind: "file", id: randomUUID(), occurred_at: new Date().toISOString(), tool: "desktop", event_type: "modified", file_path: "/home/ann/x.md" },
      { kind: "file", id: randomUUID(), occurred_at: new Date().toISOString(), tool: "desktop", event_type: "deleted", file_path: "/tmp/x.md" },
    ]);
    expect(report.results.map((r) => r.reason ?? r.status)).toEqual([
      "accepted", "app_not_allowed", "signal_disabled", "accepted", "signal_disabled",
    ]);
    expect(await storedCount(user)).toBe(2);
    const { rows } = await sql<{ file_path: string }>`select file_path from public.file_events where user_id = ${user}::uuid`.execute(db);
    expect(rows[0]?.file_path).toBe("/home/[USER]/x.md");
  });

  it("samples deterministically on the event id", async () => {
    const user = await createUser({ signals: [{ key: "screen.view", rate: 0.5 }] });
    const events = Array.from({ length: 200 }, () => telemetry());
    const first = await ingest(user, events);
    expect(first.accepted + first.sampled_out).toBe(200);
    expect(first.accepted).toBeGreaterThan(60);
    expect(first.sampled_out).toBeGreaterThan(60);
    const second = await ingest(user, events);
    first.results.forEach((result, i) => {
      expect(second.results[i]?.status).toBe(result.status === "accepted" ? "duplicate" : "sampled_out");
    });
    expect(await storedCount(user)).toBe(first.accepted);
  });

  it("stores a retried batch once and reports duplicates", async () => {
    const user = await createUser();
    const events = [telemetry(), telemetry(), telemetry()];
    const withRepeat = [...events, events[0]];
    const first = await ingest(user, withRepeat);
    expect(first.results.map((r) => r.status)).toEqual(["accepted", "accepted", "accepted", "duplicate"]);
    const retry = await ingest(user, withRepeat);
    expect(retry.duplicate).toBe(4);
    expect(await storedCount(user)).toBe(3);
  });

  it("rejects malformed events and accepts the good ones beside them", async () => {
    const user = await createUser();
    const report = await ingest(user, [
      telemetry(),
      telemetry({ id: "not-a-uuid" }),
      telemetry({ duration_ms: -5 }),
      telemetry({ occurred_at: "yesterday" }),
      { kind: "video", id: randomUUID() },
      "not an object",
      telemetry({ occurred_at: new Date(Date.now() - 90 * 86_400_000).toISOString() }),
      telemetry(),
    ]);
    expect(report.results.map((r) => r.reason ?? r.status)).toEqual([
      "accepted", "invalid", "invalid", "invalid", "invalid", "invalid", "outside_time_range", "accepted",
    ]);
    expect(report.results[2]?.details).toEqual(expect.arrayContaining([expect.objectContaining({ path: "duration_ms" })]));
    expect(report.results.map((r) => r.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(await storedCount(user)).toBe(2);
  });

  it("takes the owner from the JWT, never from the payload, and redacts metadata", async () => {
    const user = await createUser();
    const victim = await createUser();
    const event = telemetry({ user_id: victim, metadata: { email: "ann@example.com", password: "hunter2" } });
    const report = await ingest(user, [event]);
    expect(report.accepted).toBe(1);
    const { rows } = await sql<{ user_id: string; metadata_redacted: unknown }>`
      select user_id, metadata_redacted from public.telemetry_events where id = ${event.id as string}::uuid
    `.execute(db);
    expect(rows).toEqual([{ user_id: user, metadata_redacted: { email: "[EMAIL]", password: "[REDACTED]" } }]);
    expect(await storedCount(victim)).toBe(0);
  });

  it("answers envelope problems with 400, 413 and 415", async () => {
    const token = await userToken(await createUser());
    expect((await post(token, null, { raw: "{not json" })).status).toBe(400);
    expect((await post(token, { batch: [] })).status).toBe(400);
    expect((await post(token, { events: "nope" })).status).toBe(400);
    const tooMany = await post(token, { events: Array.from({ length: 1001 }, () => telemetry()) });
    expect(tooMany.status).toBe(413);
    expect(((await tooMany.json()) as { error: { code: string } }).error.code).toBe("too_many_events");
    const huge = await post(token, { events: [telemetry({ metadata: { blob: "x".repeat(1_100_000) } })] });
    expect(huge.status).toBe(413);
    expect((await post(token, { events: [] }, { contentType: "text/plain" })).status).toBe(415);
  });

  it("stores a batch whose metadata holds escapes and marker characters, redacted", async () => {
    const user = await createUser();
    const escapes = telemetry({
      metadata: { note: "\u0001ann@example.com \u001f 4111 1111 1111 1111", raw: "C:\\Users\\bob\\x \\u0041 \"quoted\"" },
    });
    const markers = telemetry({ metadata: { marker: "\uE001\uE007\uE008 +1 415 555 2671", "\uE000key": "\\" } });
    const plain = telemetry();
    const report = await ingest(user, [escapes, markers, plain]);
    expect(report.results.map((r) => r.status)).toEqual(["accepted", "accepted", "accepted"]);
    const { rows } = await sql<{ metadata_redacted: Record<string, string> }>`
      select metadata_redacted from public.telemetry_events
      where user_id = ${user}::uuid and id in (${escapes.id as string}::uuid, ${markers.id as string}::uuid)
      order by metadata_redacted ? 'note' desc
    `.execute(db);
    expect(rows.map((r) => r.metadata_redacted)).toEqual([
      { note: "\u0001[EMAIL] \u001f [CARD]", raw: "C:\\Users\\[USER]\\x \\u0041 \"quoted\"" },
      { marker: "\uE001\uE007\uE008 [PHONE]", "\uE000key": "\\" },
    ]);
  });

  it("rejects a timestamp of a well-formed shape that cannot be cast, and stores the rest of the batch", async () => {
    const user = await createUser();
    const context = {
      role: "authenticated", method: "POST", path: "/rest/v1/rpc/ingest_events", headers: {},
      claims: { sub: user, role: "authenticated", aud: "authenticated", aal: "aal1" },
    };
    const events = [
      telemetry({ occurred_at: "2026-01-01T00:00:00+99:00" }),
      telemetry({ occurred_at: "0000-01-01T00:00:00Z" }),
      telemetry(),
    ];
    const report = await runAsCaller(db, context, async (trx) =>
      (await sql<{ r: IngestReport }>`select public.ingest_events(${JSON.stringify(events)}::text::jsonb) as r`.execute(trx)).rows[0]?.r);
    expect(report?.results.map((r) => r.reason ?? r.status)).toEqual(["invalid", "invalid", "accepted"]);
    expect(await storedCount(user)).toBe(1);
  });

  it("gives each user their own id space: another user's id is stored for them and tells them nothing", async () => {
    const owner = await createUser();
    const other = await createUser();
    const event = telemetry({ metadata: { screen: "owner" } });
    expect((await ingest(owner, [event])).accepted).toBe(1);
    const reused = { ...event, metadata: { screen: "other" } };
    const report = await ingest(other, [reused]);
    expect(report.results).toEqual([{ index: 0, id: event.id, status: "accepted" }]);
    expect((await ingest(other, [reused])).results[0]?.status).toBe("duplicate");
    const { rows } = await sql<{ user_id: string; metadata_redacted: unknown }>`
      select user_id, metadata_redacted from public.telemetry_events where id = ${event.id as string}::uuid order by metadata_redacted ->> 'screen'
    `.execute(db);
    expect(rows).toEqual([
      { user_id: other, metadata_redacted: { screen: "other" } },
      { user_id: owner, metadata_redacted: { screen: "owner" } },
    ]);
  });

  it("counts duplicates in a batch only among copies that passed the gate", async () => {
    const user = await createUser();
    const id = randomUUID();
    const report = await ingest(user, [
      telemetry({ id, app_id: "slack" }),
      telemetry({ id, occurred_at: new Date(Date.now() - 90 * 86_400_000).toISOString() }),
      telemetry({ id }),
      telemetry({ id }),
    ]);
    expect(report.results.map((r) => r.reason ?? r.status)).toEqual(["app_not_allowed", "outside_time_range", "accepted", "duplicate"]);
    expect(report.accepted).toBe(1);
    expect(await storedCount(user)).toBe(1);
  });

  it("lets a direct insert store an id again only under another occurred_at, and ingest calls that a duplicate", async () => {
    const user = await createUser();
    const id = randomUUID();
    const first = new Date(Date.now() - 3_600_000).toISOString();
    const context = {
      role: "authenticated", method: "POST", path: "/rest/v1/telemetry_events", headers: {},
      claims: { sub: user, role: "authenticated", aud: "authenticated", aal: "aal1" },
    };
    const insertAt = (at: string) =>
      runAsCaller(db, context, (trx) =>
        sql`insert into public.telemetry_events (id, occurred_at, app_id, event_type, metadata_redacted)
            values (${id}::uuid, ${at}::timestamptz, 'desktop', 'screen.view', '{"by": "ann@example.com"}')`.execute(trx));
    await insertAt(first);
    await expect(insertAt(first)).rejects.toMatchObject({ code: "23505" });
    await insertAt(new Date(Date.now() - 7_200_000).toISOString());
    expect(await storedCount(user)).toBe(2);
    const report = await ingest(user, [telemetry({ id })]);
    expect(report.results[0]?.status).toBe("duplicate");
    expect(await storedCount(user)).toBe(2);
    const { rows } = await sql<{ by: string }>`
      select distinct metadata_redacted ->> 'by' as by from public.telemetry_events where user_id = ${user}::uuid
    `.execute(db);
    expect(rows).toEqual([{ by: "[EMAIL]" }]);
  });

  it("writes nothing for a rejected envelope", async () => {
    const user = await createUser();
    const token = await userToken(user);
    const good = () => ({ events: [telemetry()] });
    expect((await post(token, null, { raw: `${JSON.stringify(good()).slice(0, -1)},` })).status).toBe(400);
    expect((await post(token, { events: Array.from({ length: 1001 }, () => telemetry()) })).status).toBe(413);
    expect((await post(token, { events: [telemetry({ metadata: { blob: "x".repeat(1_100_000) } })] })).status).toBe(413);
    expect((await post(token, good(), { contentType: "text/plain" })).status).toBe(415);
    expect((await post(null, good())).status).toBe(401);
    expect((await post(await userToken(user, { expiresIn: -60 }), good())).status).toBe(401);
    const put = await fetch(endpoint, {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(good()),
    });
    expect(put.status).toBe(405);
    expect(await storedCount(user)).toBe(0);
    expect((await ingest(user, good().events)).accepted).toBe(1);
    expect(await storedCount(user)).toBe(1);
  });

  it("answers 401 without a user's valid token and 405 for other methods", async () => {
    const user = await createUser();
    expect((await post(null, { events: [telemetry()] })).status).toBe(401);
    expect((await post(await userToken(user, { expiresIn: -60 }), { events: [telemetry()] })).status).toBe(401);
    expect((await post(await anonKey(), { events: [telemetry()] })).status).toBe(401);
    const get = await fetch(endpoint, { headers: { authorization: `Bearer ${await userToken(user)}` } });
    expect(get.status).toBe(405);
    expect(await storedCount(user)).toBe(0);
  });
});
