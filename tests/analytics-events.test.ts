// upsert_events under concurrency: batches racing with the same event ids over separate connections store each
// (organization, event_id) exactly once, because the private key table's unique index decides; the reports agree.
import { randomUUID } from "node:crypto";
import { sql, type Kysely } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabase, type UntypedDatabase } from "../supabase/functions/_shared/db.ts";
import { runAsCaller, type RequestContext } from "../supabase/functions/_shared/request-context.ts";
import { testEnv } from "./helpers/env.ts";

let db: Kysely<UntypedDatabase>;
let organizationId: string;

const serviceRole: RequestContext = {
  role: "service_role",
  claims: { role: "service_role", iss: "supabase" },
  method: "POST",
  path: "/rest/v1/rpc/upsert_events",
  headers: {},
};

interface Report {
  inserted: number;
  duplicate: number;
  rejected: number;
  results: { index: number; event_id?: string; status: string; reason?: string }[];
}

function upsert(rows: unknown[]): Promise<Report> {
  return runAsCaller(db, serviceRole, async (trx) => {
    // A short pause inside the transaction so that the racing batches overlap before any of them commits.
    await sql`select pg_sleep(0.05)`.execute(trx);
    const { rows: out } = await sql<{ r: Report }>`select public.upsert_events(${JSON.stringify(rows)}::text::jsonb) as r`.execute(trx);
    return out[0]!.r;
  });
}

beforeAll(async () => {
  db = createDatabase(testEnv().dbUrl, { max: 12 });
  organizationId = (await sql<{ id: string }>`
    insert into public.organizations (name, slug) values ('Analytics race', ${`an-race-${randomUUID().slice(0, 8)}`}) returning id
  `.execute(db)).rows[0]!.id;
});

afterAll(async () => {
  await sql`delete from public.organizations where id = ${organizationId}::uuid`.execute(db);
  await db.destroy();
});

describe("upsert_events under concurrency", () => {
  it("stores each event once when 8 batches with overlapping event ids race", async () => {
    const ids = Array.from({ length: 200 }, () => randomUUID());
    const now = Date.now();
    // Each batch carries all 200 ids, half of them in reverse order (key locks taken in opposite orders would deadlock) and each with its own occurred_at (another partition for some).
    const batches = Array.from({ length: 8 }, (_, lane) =>
      ids.map((id, i) => ({
        organization_id: organizationId,
        event_id: id,
        occurred_at: new Date(now - ((i * 7 + lane * 13) % 60) * 86_400_000).toISOString(),
        event_name: "page.viewed",
        anonymous_id: `visitor-${i % 20}`,
        props: { path: `/p/${i}`, lane },
      })))
      .map((rows, lane) => (lane % 2 === 0 ? rows : rows.reverse()));
    const reports = await Promise.all(batches.map((rows) => upsert(rows)));
    const inserted = reports.reduce((sum, r) => sum + r.inserted, 0);
    const duplicate = reports.reduce((sum, r) => sum + r.duplicate, 0);
    expect(inserted).toBe(200);
    expect(duplicate).toBe(200 * 7);
    expect(reports.every((r) => r.rejected === 0)).toBe(true);
    const insertedIds = reports.flatMap((r) => r.results.filter((x) => x.status === "inserted").map((x) => x.event_id));
    expect(new Set(insertedIds).size).toBe(200);
    const { rows } = await sql<{ events: number; distinct_ids: number; keys: number }>`
      select (select count(*)::int from public.analytics_events where organization_id = ${organizationId}::uuid) as events,
             (select count(distinct event_id)::int from public.analytics_events where organization_id = ${organizationId}::uuid) as distinct_ids,
             (select count(*)::int from private.analytics_event_keys where organization_id = ${organizationId}::uuid) as keys
    `.execute(db);
    expect(rows[0]).toEqual({ events: 200, distinct_ids: 200, keys: 200 });
  });

  it("refuses the call for an authenticated user (the pipeline writes as the service role only)", async () => {
    const userContext: RequestContext = {
      role: "authenticated",
      claims: { sub: randomUUID(), role: "authenticated", aud: "authenticated", aal: "aal1" },
      method: "POST",
      path: "/rest/v1/rpc/upsert_events",
      headers: {},
    };
    await expect(runAsCaller(db, userContext, (trx) => sql`select public.upsert_events('[]'::jsonb)`.execute(trx)))
      .rejects.toMatchObject({ code: "42501" });
  });
});
