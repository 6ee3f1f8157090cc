// GET /health: is the database reachable, and which migration is it on.
// Uses SUPABASE_DB_URL directly (a privileged connection): supabase_migrations is not readable by API
// roles, and there is no caller data involved. Answers within ~3 s even when the database hangs.
import { sql, type Kysely } from "kysely";
import { createDatabase, type UntypedDatabase } from "../_shared/db.ts";
import { createFunctionHandler, type FunctionDeps, type FunctionHandler } from "../_shared/function.ts";
import { assertMethod, jsonResponse, serviceUnavailable } from "../_shared/http.ts";

/** Upper bound for the whole database check; the connect timeout (2 s) sits below it. */
const CHECK_TIMEOUT_MS = 2500;

export interface HealthReport {
  status: "ok";
  database: { reachable: true; latency_ms: number };
  migration: { version: string | null };
  time: string;
}

export interface HealthDeps extends FunctionDeps {
  /** Database to check; by default a small pool on SUPABASE_DB_URL owned (and closed) by the handler. */
  db?: Kysely<UntypedDatabase>;
}

export function createHandler(deps: HealthDeps): FunctionHandler {
  const ownsDb = deps.db === undefined;
  const db = deps.db ??
    createDatabase(deps.env.SUPABASE_DB_URL, { max: 2, connectTimeoutSeconds: 2, applicationName: "health" });

  return createFunctionHandler(
    { name: "health", logger: deps.logger, close: () => (ownsDb ? db.destroy() : Promise.resolve()) },
    async (request) => {
      assertMethod(request, ["GET"]);
      const started = performance.now();
      let version: string | null;
      try {
        version = await withTimeout(latestMigrationVersion(db), CHECK_TIMEOUT_MS);
      } catch (error) {
        throw serviceUnavailable(
          "database is unreachable",
          { database: { reachable: false } },
          "database_unreachable",
          error,
        );
      }
      const report: HealthReport = {
        status: "ok",
        database: { reachable: true, latency_ms: Math.round(performance.now() - started) },
        migration: { version },
        time: new Date().toISOString(),
      };
      return jsonResponse(report, { headers: { "cache-control": "no-store" } });
    },
  );
}

/** Latest version recorded by `supabase db push`; null when none is (or the table does not exist yet). */
async function latestMigrationVersion(db: Kysely<UntypedDatabase>): Promise<string | null> {
  const table = await sql<{ present: boolean }>`
    select to_regclass('supabase_migrations.schema_migrations') is not null as present
  `.execute(db);
  if (!table.rows[0]?.present) return null;
  const latest = await sql<{ version: string | null }>`
    select max(version) as version from supabase_migrations.schema_migrations
  `.execute(db);
  return latest.rows[0]?.version ?? null;
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`database check timed out after ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
