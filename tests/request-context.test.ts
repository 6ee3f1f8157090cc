// The request-context runner against the real database: it must make Postgres see the caller exactly as
// PostgREST would, only inside its transaction.
import { sql, type Kysely } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { VerifiedJwt } from "../supabase/functions/_shared/auth.ts";
import { createDatabase, type UntypedDatabase } from "../supabase/functions/_shared/db.ts";
import { HttpError } from "../supabase/functions/_shared/http.ts";
import {
  headersForDatabase,
  requestContextFor,
  runAsCaller,
  runForRequest,
  type RequestContext,
} from "../supabase/functions/_shared/request-context.ts";
import { testEnv } from "./helpers/env.ts";

const ALICE = "00000000-0000-4000-8000-00000000a11c";
const BOB = "00000000-0000-4000-8000-000000000b0b";

function userJwt(sub: string, email: string): VerifiedJwt {
  return { role: "authenticated", subject: sub, claims: { sub, email, role: "authenticated", aud: "authenticated" } };
}

function userContext(sub: string, email: string): RequestContext {
  const request = new Request("http://localhost/ingest/batch?dry=1", {
    method: "POST",
    headers: {
      Authorization: "Bearer secret-token",
      Cookie: "sb=1",
      apikey: "service-key",
      "X-Client-Info": "supabase-js/2",
      "Content-Type": "application/json",
    },
  });
  return requestContextFor(request, userJwt(sub, email));
}

// One connection, so "after the transaction" really is the same session the settings were made on,
// and the temp table below is visible to every query.
let db: Kysely<UntypedDatabase>;

beforeAll(async () => {
  db = createDatabase(testEnv().dbUrl, { max: 1, applicationName: "request-context-test" });
  await sql`create temp table rc_probe (id serial primary key, owner uuid not null, note text not null)`.execute(db);
  await sql`grant select, insert on rc_probe to authenticated`.execute(db);
  await sql`grant usage on sequence rc_probe_id_seq to authenticated`.execute(db);
  await sql`alter table rc_probe enable row level security`.execute(db);
  await sql`create policy rc_probe_select on rc_probe for select to authenticated using (owner = (select auth.uid()))`
    .execute(db);
  await sql`create policy rc_probe_insert on rc_probe for insert to authenticated with check (owner = (select auth.uid()))`
    .execute(db);
});

afterAll(async () => {
  await db?.destroy();
});

async function probeNotes(): Promise<string[]> {
  const result = await sql<{ note: string }>`select note from rc_probe order by id`.execute(db);
  return result.rows.map((row) => row.note);
}

describe("runAsCaller", () => {
  it("runs the callback as the caller: role, auth.uid(), auth.jwt() and request settings", async () => {
    const seen = await runAsCaller(db, userContext(ALICE, "alice@example.test"), async (trx) => {
      const result = await sql<{
        uid: string;
        role: string;
        current_user: string;
        email: string;
        auth_role: string;
        method: string;
        path: string;
        headers: Record<string, string>;
      }>`
        select auth.uid()::text as uid,
               current_setting('role') as role,
               current_user as current_user,
               auth.jwt() ->> 'email' as email,
               auth.role() as auth_role,
               current_setting('request.method') as method,
               current_setting('request.path') as path,
               current_setting('request.headers')::jsonb as headers
      `.execute(trx);
      return result.rows[0];
    });
    expect(seen).toBeDefined();
    expect(seen?.uid).toBe(ALICE);
    expect(seen?.role).toBe("authenticated");
    expect(seen?.current_user).toBe("authenticated");
    expect(seen?.email).toBe("alice@example.test");
    expect(seen?.auth_role).toBe("authenticated");
    expect(seen?.method).toBe("POST");
    expect(seen?.path).toBe("/ingest/batch");
    expect(seen?.headers["x-client-info"]).toBe("supabase-js/2");
    expect(seen?.headers["content-type"]).toBe("application/json");
    expect(Object.keys(seen?.headers ?? {})).not.toContain("authorization");
    expect(Object.keys(seen?.headers ?? {})).not.toContain("cookie");
    expect(Object.keys(seen?.headers ?? {})).not.toContain("apikey");
  });

  it("leaves nothing behind once the transaction is over", async () => {
    await runAsCaller(db, userContext(ALICE, "alice@example.test"), async (trx) => {
      await sql`select 1`.execute(trx);
    });
    const after = await sql<{ role: string; current_user: string; uid: string | null; jwt: unknown; method: string | null }>`
      select current_setting('role') as role,
             current_user as current_user,
             auth.uid()::text as uid,
             auth.jwt() as jwt,
             nullif(current_setting('request.method', true), '') as method
    `.execute(db);
    expect(after.rows[0]).toEqual({ role: "none", current_user: "postgres", uid: null, jwt: null, method: null });
  });

  it("applies row-level security as the caller", async () => {
    await sql`insert into rc_probe (owner, note) values (${ALICE}::uuid, 'alice row'), (${BOB}::uuid, 'bob row')`
      .execute(db);
    const visibleToBob = await runAsCaller(db, userContext(BOB, "bob@example.test"), async (trx) => {
      const result = await sql<{ note: string }>`select note from rc_probe order by id`.execute(trx);
      return result.rows.map((row) => row.note);
    });
    expect(visibleToBob).toEqual(["bob row"]);

    const insertForSomeoneElse = runAsCaller(db, userContext(BOB, "bob@example.test"), async (trx) => {
      await sql`insert into rc_probe (owner, note) values (${ALICE}::uuid, 'forged')`.execute(trx);
    });
    await expect(insertForSomeoneElse).rejects.toMatchObject({ code: "42501" });
    expect(await probeNotes()).not.toContain("forged");
  });

  it("commits when the callback resolves", async () => {
    await runAsCaller(db, userContext(ALICE, "alice@example.test"), async (trx) => {
      await sql`insert into rc_probe (owner, note) values (${ALICE}::uuid, 'committed')`.execute(trx);
    });
    expect(await probeNotes()).toContain("committed");
  });

  it("rolls back everything when the callback throws, and rethrows the error", async () => {
    const failure = new Error("callback failed after writing");
    let insertedInside = 0;
    const run = runAsCaller(db, userContext(ALICE, "alice@example.test"), async (trx) => {
      await sql`insert into rc_probe (owner, note) values (${ALICE}::uuid, 'rolled back')`.execute(trx);
      const count = await sql<{ n: number }>`select count(*)::int as n from rc_probe where note = 'rolled back'`
        .execute(trx);
      insertedInside = count.rows[0]?.n ?? 0;
      throw failure;
    });
    await expect(run).rejects.toBe(failure);
    expect(insertedInside).toBe(1);
    expect(await probeNotes()).not.toContain("rolled back");
  });

  it("runs a request without a token as anon with the claims PostgREST uses", async () => {
    const request = new Request("http://localhost/health", { method: "GET" });
    const seen = await runForRequest(db, request, null, async (trx) => {
      const result = await sql<{ role: string; uid: string | null; claims: unknown }>`
        select current_user as role, auth.uid()::text as uid, auth.jwt() as claims
      `.execute(trx);
      return result.rows[0];
    });
    expect(seen).toEqual({ role: "anon", uid: null, claims: { role: "anon" } });
  });

  it.each(["postgres", "supabase_admin", "authenticator", ""])("rejects the role %j before running anything", async (role) => {
    let called = false;
    const context: RequestContext = { ...userContext(ALICE, "alice@example.test"), role };
    const run = runAsCaller(db, context, () => {
      called = true;
      return Promise.resolve();
    });
    await expect(run).rejects.toBeInstanceOf(HttpError);
    await expect(run).rejects.toMatchObject({ status: 403, code: "role_not_allowed" });
    expect(called).toBe(false);
  });
});

describe("headersForDatabase", () => {
  it("lower-cases names and drops credentials", () => {
    const headers = new Headers({ Authorization: "Bearer x", COOKIE: "a=b", ApiKey: "k", "X-Trace": "t" });
    expect(headersForDatabase(headers)).toEqual({ "x-trace": "t" });
  });
});
