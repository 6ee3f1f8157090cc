// Two-session races against the real database, shared by the concurrency tests: sessions tagged with one
// application_name, a poll for "another session of this test waits for a lock" (no fixed sleep), and a race in which
// the first transaction stays open until the second is seen waiting on it.
import postgres from "postgres";
import { testEnv } from "./env.ts";

export type Sql = postgres.Sql;
export type Step = (sql: postgres.TransactionSql) => Promise<unknown>;

export interface LockRace {
  /** A new single-connection session tagged with this test's application name; closed by closeAll(). */
  connect(): Sql;
  /** Resolves once a session of this test waits for a lock. */
  someoneWaitsForALock(): Promise<void>;
  /** Runs `first` and `second` in two transactions (the first held open until the second waits); their results or errors. */
  race(first: Step, second: Step): Promise<PromiseSettledResult<unknown>[]>;
  closeAll(): Promise<void>;
}

export function lockRace(application: string): LockRace {
  const opened: Sql[] = [];
  let watcher: Sql | undefined;
  const connect = (): Sql => {
    const sql = postgres(testEnv().dbUrl, { max: 1, prepare: false, onnotice: () => {}, connection: { application_name: application } });
    opened.push(sql);
    return sql;
  };
  const someoneWaitsForALock = async (): Promise<void> => {
    watcher ??= connect();
    for (;;) {
      const [row] = await watcher<{ waiting: boolean }[]>`
        select exists (select 1 from pg_stat_activity where application_name = ${application} and wait_event_type = 'Lock') as waiting`;
      if (row!.waiting) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  const race = async (first: Step, second: Step): Promise<PromiseSettledResult<unknown>[]> => {
    const one = connect();
    const two = connect();
    let release!: () => void;
    const released = new Promise<void>((resolve) => { release = resolve; });
    let firstDone!: () => void;
    const firstApplied = new Promise<void>((resolve) => { firstDone = resolve; });
    const a = one.begin(async (sql) => { const value = await first(sql); firstDone(); await released; return value; });
    await firstApplied;
    const b = two.begin(async (sql) => second(sql));
    await someoneWaitsForALock();
    release();
    return Promise.allSettled([a, b]);
  };
  const closeAll = async (): Promise<void> => {
    await Promise.all(opened.map((sql) => sql.end({ timeout: 1 })));
  };
  return { connect, someoneWaitsForALock, race, closeAll };
}
