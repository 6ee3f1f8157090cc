// The Kysely client over postgres.js. `prepare: false` because on Supabase the functions reach the
// database through Supavisor in transaction mode, where named prepared statements break.
import { Kysely } from "kysely";
import { PostgresJSDialect } from "kysely-postgres-js";
import postgres from "postgres";

/**
 * Schema type for code that only runs raw `sql` and has no generated types yet.
 * Functions that query tables use the generated `DB` from types/kysely.ts instead.
 */
export type UntypedDatabase = Record<string, never>;

export interface DatabaseOptions {
  /** Pool size. Default 3: an edge function instance serves few concurrent requests. */
  max?: number;
  /** Seconds to wait for a connection before failing. Default 5. */
  connectTimeoutSeconds?: number;
  /** Seconds an idle connection is kept. Default 20. */
  idleTimeoutSeconds?: number;
  /** Name shown in pg_stat_activity. */
  applicationName?: string;
  /** Seconds `destroy()` waits for connections to close before terminating them. Default 1. */
  closeTimeoutSeconds?: number;
}

export function createDatabase<DB = UntypedDatabase>(url: string, options: DatabaseOptions = {}): Kysely<DB> {
  const client = postgres(url, {
    prepare: false,
    max: options.max ?? 3,
    connect_timeout: options.connectTimeoutSeconds ?? 5,
    idle_timeout: options.idleTimeoutSeconds ?? 20,
    // Notices (e.g. "relation already exists, skipping") are not errors; keep them out of the logs.
    onnotice: () => {},
    connection: { application_name: options.applicationName ?? "edge-functions" },
  });
  const closeTimeout = options.closeTimeoutSeconds ?? 1;
  return new Kysely<DB>({
    dialect: new PostgresJSDialect({
      // The factory form lets us hand over a wrapper: a plain `end()` never settles once a reserved
      // connection failed to connect (seen with a refused connection under Deno), which would hang
      // shutdown; ending with a timeout terminates whatever is left.
      postgres: () => ({
        reserve: () => client.reserve(),
        end: () => client.end({ timeout: closeTimeout }),
      }),
    }),
  });
}
