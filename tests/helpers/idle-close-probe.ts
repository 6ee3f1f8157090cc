// Run by tests/crash-driver.test.ts under Deno, against SUPABASE_DB_URL: the connection of a transaction is cut off
// while the transaction sits idle between two statements, so the wrapper in _shared/db.ts has seen no error when the
// next statement goes out, and postgres.js 3.4.9 throws from a setImmediate callback. The guards catch that and
// recycle the clients: the statement must fail as "database unavailable", and the next request must succeed.
// Prints one JSON line with what happened.
import process from "node:process";
import { sql } from "kysely";
import postgres from "postgres";
import { createDatabase, isDatabaseUnavailable } from "../../supabase/functions/_shared/db.ts";
import { installProcessGuards } from "../../supabase/functions/_shared/guards.ts";
import { createLogger } from "../../supabase/functions/_shared/log.ts";

const url = process.env.SUPABASE_DB_URL;
if (!url) throw new Error("SUPABASE_DB_URL is not set");
const guardLines: string[] = [];
installProcessGuards(createLogger({ write: (line) => guardLines.push(line) }));

const db = createDatabase(url, { max: 2, applicationName: "idle-close-probe" });
const admin = postgres(url, { max: 1, onnotice: () => {} });
const outcome = await db.transaction().execute(async (trx) => {
  const pid = (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx)).rows[0]?.pid ?? 0;
  await admin`select pg_terminate_backend(${pid})`;
  // Until the server no longer lists the backend; the client learns of the close meanwhile.
  while ((await admin`select 1 from pg_stat_activity where pid = ${pid}`).length > 0);
  await sql`select 2`.execute(trx);
}).then(() => ({ rejected: false, unavailable: false }), (error: unknown) => ({ rejected: true, unavailable: isDatabaseUnavailable(error) }));
const after = (await sql<{ ok: number }>`select 1 as ok`.execute(db)).rows[0]?.ok ?? null;
await db.destroy();
await admin.end({ timeout: 1 });
console.log(JSON.stringify({ ...outcome, after, guard_lines: guardLines.map((line) => JSON.parse(line).kind) }));
process.exit(0);
