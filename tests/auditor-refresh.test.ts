// refresh_my_usage_analytics() under concurrency, against the real database: two sessions of one user refreshing
// the same period at once both succeed, one after the other (the second waits for the first's per-user advisory
// lock, then replaces its rows), and the period holds one set of rows, never two and never an exclusion error.
import { randomUUID } from "node:crypto";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lockRace, type Sql } from "./helpers/lock-race.ts";

const user = randomUUID();
const application = `auditor-refresh-${user.slice(0, 8)}`;
const { connect, race, closeAll } = lockRace(application);
let admin: Sql;

// As the user, the way PostgREST runs a request: role and claims local to the transaction.
async function refreshAsUser(sql: postgres.TransactionSql): Promise<{ replaced: boolean; active_tools_count: number }> {
  const claims = JSON.stringify({ sub: user, role: "authenticated", aud: "authenticated", aal: "aal1" });
  await sql`select set_config('role', 'authenticated', true), set_config('request.jwt.claims', ${claims}, true)`;
  const [row] = await sql<{ report: { replaced: boolean; active_tools_count: number } }[]>`
    select public.refresh_my_usage_analytics('2026-11-02', '2026-11-05') as report`;
  return row!.report;
}

beforeAll(async () => {
  admin = connect();
  await admin`insert into auth.users (instance_id, id, aud, role, email) values ('00000000-0000-0000-0000-000000000000', ${user}, 'authenticated', 'authenticated', ${`${user}@example.test`})`;
  await admin`insert into public.telemetry_events (id, user_id, occurred_at, app_id, event_type, duration_ms)
              values (${randomUUID()}, ${user}, '2026-11-02 09:00Z', 'vscode', 'app.focus', 3600000),
                     (${randomUUID()}, ${user}, '2026-11-03 09:00Z', 'slack', 'app.focus', 600000)`;
});

afterAll(async () => {
  await admin`delete from auth.users where id = ${user}`;
  await closeAll();
});

describe("refresh_my_usage_analytics under concurrent calls", () => {
  it("lets two simultaneous refreshes of one period both succeed, the second replacing the first", async () => {
    const [a, b] = await race(refreshAsUser, refreshAsUser);
    expect(a!.status).toBe("fulfilled");
    expect(b!.status).toBe("fulfilled");
    const first = (a as PromiseFulfilledResult<unknown>).value;
    const second = (b as PromiseFulfilledResult<unknown>).value;
    expect(first).toMatchObject({ replaced: false, active_tools_count: 2 });
    expect(second).toMatchObject({ replaced: true, active_tools_count: 2 });
    const [counts] = await admin<{ usage: number; metrics: number }[]>`
      select (select count(*)::int from public.usage_analytics where user_id = ${user}) as usage,
             (select count(*)::int from public.efficiency_metrics where user_id = ${user}) as metrics`;
    expect(counts).toEqual({ usage: 2, metrics: 1 });
  });
});
