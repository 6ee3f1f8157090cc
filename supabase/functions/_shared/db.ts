// The Kysely client over postgres.js. `prepare: false` because on Supabase the functions reach the
// database through Supavisor in transaction mode, where named prepared statements break.
//
// Surviving a lost database. postgres.js 3.4.9 batches small writes behind a setImmediate and, once a socket is
// gone, still accepts queries on the connection object. Two things then go wrong when the server dies under a
// transaction (a crash, a restart, a failover):
//   - Kysely answers the failed statement with ROLLBACK on the same reserved connection, and releasing that
//     connection hands it back to the pool's queue; either write lands on a connection whose socket is null, and the
//     deferred `socket.write` throws from the setImmediate callback: an uncaught TypeError, outside any promise,
//     that kills the process (Deno exits on it, and so does an edge function's worker).
//   - `closed()` cancels the pending write timer without forgetting it, so a connection object that lost its socket
//     with a write queued never flushes again when the pool reconnects it: the next request on it hangs.
// So every reservation is wrapped: after a connection failure it sends nothing more (ROLLBACK included) and is not
// released (the pool already took the connection back when its socket closed), and the postgres.js client that saw
// the failure is retired (ended as soon as none of its reservations is in use, at most 10 s later) and replaced by a
// fresh one on the next request; a request still waiting for one of its connections moves to the fresh one. While the server is down each request fails fast (refused, or 57P03 while it recovers) with a
// DatabaseUnavailableError, which _shared/http.ts answers with 503 database_unavailable; the first request after the
// server is back gets a new client and succeeds. What the wrapper cannot see: a connection whose socket closes while
// its transaction sits idle between two statements (no statement failed yet); the next statement makes postgres.js
// throw from a setImmediate callback. The last line of defence, _shared/guards.ts, catches that and recycles every
// client, which rejects the stuck statement (503) within a second.
import { Kysely } from "kysely";
import { PostgresJSDialect } from "kysely-postgres-js";
import postgres from "postgres";
import { DatabaseUnavailableError, isConnectionFailure } from "./db-errors.ts";

export { DatabaseUnavailableError, isConnectionFailure, isDatabaseUnavailable } from "./db-errors.ts";

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

/**
 * Seconds a retired client's other connections get to finish their work before they are terminated: when one
 * connection was cut off (its backend terminated, say) the others are usually fine; after a crash they are gone anyway.
 */
const RETIRE_GRACE_SECONDS = 10;

type Sql = postgres.Sql;
type ReservedSql = postgres.ReservedSql;

/** What kysely-postgres-js needs of a reserved connection. */
interface Reservation {
  unsafe(text: string, parameters: unknown[]): Promise<postgres.RowList<postgres.Row[]>>;
  release(): void;
}

/** Every live pool, so a fault caught by the last line of defence can retire them all (recycleAllDatabases). */
const livePools = new Set<ClientPool>();

/** A promise and the function that resolves it. */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

/**
 * One postgres.js client. `retired` resolves when the pool stops handing it out; `idle` when it is retired and none of
 * its reservations is still in use (or the pool is shutting down), which is when it can be ended at once: postgres.js's
 * own end() waits for a connection that lost its socket mid-query until its timeout.
 */
interface Generation {
  sql: Sql;
  inUse: number;
  retired: ReturnType<typeof signal>;
  idle: ReturnType<typeof signal>;
}

/** The current postgres.js client of one database handle, replaced after a connection failure. */
class ClientPool {
  #current: Generation | null = null;
  #retiring = new Map<Generation, Promise<void>>();
  #closed = false;
  readonly #create: () => Sql;
  readonly #closeTimeout: number;

  constructor(create: () => Sql, closeTimeout: number) {
    this.#create = create;
    this.#closeTimeout = closeTimeout;
    livePools.add(this);
  }

  #generation(): Generation {
    if (this.#closed) throw new DatabaseUnavailableError("the database handle was destroyed");
    return (this.#current ??= { sql: this.#create(), inUse: 0, retired: signal(), idle: signal() });
  }

  /** Stops handing out `generation` (a no-op when it was already replaced) and ends it in the background. */
  retire(generation: Generation, graceSeconds = RETIRE_GRACE_SECONDS): void {
    if (this.#current !== generation) return;
    this.#current = null;
    generation.retired.resolve();
    if (generation.inUse === 0) generation.idle.resolve();
    const ending = (async () => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceSeconds * 1000)));
      await Promise.race([generation.idle.promise, grace]);
      clearTimeout(timer);
      await generation.sql.end({ timeout: 0 });
    })().catch(() => {}).finally(() => this.#retiring.delete(generation));
    this.#retiring.set(generation, ending);
  }

  /** Retires the current client (after a fault the driver could not report through a promise). */
  recycle(graceSeconds: number): void {
    if (this.#current) this.retire(this.#current, graceSeconds);
  }

  /** Bookkeeping of reservations in use, so a retired client is ended as soon as nothing uses it any more. */
  #settle(generation: Generation): void {
    if (--generation.inUse === 0 && this.#current !== generation) generation.idle.resolve();
  }

  async reserve(): Promise<Reservation> {
    // A request waiting for a connection of a client that gets retired meanwhile would wait forever: postgres.js's
    // end() does not reject waiting reservations. It moves to the new client instead (once).
    for (let attempt = 1; ; attempt++) {
      const generation = this.#generation();
      const reserving = generation.sql.reserve();
      const outcome = await Promise.race([
        reserving.then((reserved) => ({ reserved }), (error: unknown) => ({ error })),
        generation.retired.promise.then(() => ({ retired: true as const })),
      ]);
      if ("reserved" in outcome) return this.#wrap(generation, outcome.reserved);
      // Whatever the abandoned reservation brings later goes back to its (ending) client.
      reserving.then((reserved) => reserved.release(), () => {});
      if ("error" in outcome) throw this.#unavailable(generation, outcome.error);
      if (attempt >= 2) throw new DatabaseUnavailableError("the database connection pool was reset twice while waiting");
    }
  }

  #wrap(generation: Generation, reserved: ReservedSql): Reservation {
    let lost: unknown = null;
    let settled = false;
    generation.inUse++;
    const settle = () => {
      if (!settled) {
        settled = true;
        this.#settle(generation);
      }
    };
    return {
      unsafe: async (text, parameters) => {
        if (lost !== null) throw new DatabaseUnavailableError("the connection to the database was lost", { cause: lost });
        try {
          return await reserved.unsafe(text, parameters as postgres.ParameterOrJSON<never>[]);
        } catch (error) {
          if (isConnectionFailure(error)) {
            lost = error;
            settle();
          }
          throw this.#unavailable(generation, error);
        }
      },
      release: () => {
        if (lost === null) reserved.release();
        settle();
      },
    };
  }

  /** A connection failure becomes DatabaseUnavailableError (and retires the client); anything else is rethrown. */
  #unavailable(generation: Generation, error: unknown): unknown {
    if (!isConnectionFailure(error)) return error;
    this.retire(generation);
    return error instanceof DatabaseUnavailableError
      ? error
      : new DatabaseUnavailableError("the database is unreachable", { cause: error });
  }

  async end(): Promise<void> {
    this.#closed = true;
    livePools.delete(this);
    const current = this.#current;
    this.#current = null;
    current?.retired.resolve();
    // Shutting down: retired clients stop waiting for their last reservations.
    for (const generation of this.#retiring.keys()) generation.idle.resolve();
    await Promise.allSettled([current?.sql.end({ timeout: this.#closeTimeout }), ...this.#retiring.values()]);
  }
}

/**
 * Retires the postgres.js client of every database handle in this process; the next request on each gets a fresh
 * one. Called by the last line of defence (_shared/guards.ts) when the driver threw outside any promise: whatever
 * query was waiting on the broken connection is then rejected (CONNECTION_DESTROYED) instead of hanging.
 */
export function recycleAllDatabases(graceSeconds = 1): void {
  for (const pool of livePools) pool.recycle(graceSeconds);
}

export function createDatabase<DB = UntypedDatabase>(url: string, options: DatabaseOptions = {}): Kysely<DB> {
  const pool = new ClientPool(
    () =>
      postgres(url, {
        prepare: false,
        max: options.max ?? 3,
        connect_timeout: options.connectTimeoutSeconds ?? 5,
        idle_timeout: options.idleTimeoutSeconds ?? 20,
        // Notices (e.g. "relation already exists, skipping") are not errors; keep them out of the logs.
        onnotice: () => {},
        connection: { application_name: options.applicationName ?? "edge-functions" },
      }),
    options.closeTimeoutSeconds ?? 1,
  );
  return new Kysely<DB>({
    dialect: new PostgresJSDialect({
      // The factory form lets us hand over a wrapper (see the top of this file). Ending also uses a timeout: a
      // plain `end()` never settles once a reserved connection failed to connect (seen with a refused connection
      // under Deno), which would hang shutdown; ending with a timeout terminates whatever is left.
      postgres: () => ({ reserve: () => pool.reserve(), end: () => pool.end() }),
    }),
  });
}
