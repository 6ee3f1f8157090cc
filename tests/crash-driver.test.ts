// The pieces behind surviving a lost database, without crashing anything shared: which errors mean "database
// unavailable", the 503 they become, the last line of defence, and _shared/db.ts against a connection that dies
// under a transaction (its own backend terminated on the shared test cluster, which is how postgres.js 3.4.9 was
// made to throw outside any promise: the ROLLBACK Kysely sends on the dead connection).
import { spawnSync } from "node:child_process";
import path from "node:path";
import { sql, type Kysely } from "kysely";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabase, DatabaseUnavailableError, type UntypedDatabase } from "../supabase/functions/_shared/db.ts";
import { isConnectionFailure, isDatabaseUnavailable } from "../supabase/functions/_shared/db-errors.ts";
import { createFunctionHandler } from "../supabase/functions/_shared/function.ts";
import { installProcessGuards } from "../supabase/functions/_shared/guards.ts";
import { errorResponse } from "../supabase/functions/_shared/http.ts";
import { createLogger, type LogLevel } from "../supabase/functions/_shared/log.ts";
import { testEnv } from "./helpers/env.ts";
import { repoRoot } from "./helpers/gateway.ts";

function capturingLogger() {
  const lines: Array<{ level: LogLevel; record: Record<string, unknown> }> = [];
  const logger = createLogger({
    minLevel: "debug",
    write: (line, level) => lines.push({ level, record: JSON.parse(line) as Record<string, unknown> }),
  });
  return { logger, lines };
}

const withCode = (code: string, message = `failure ${code}`) => Object.assign(new Error(message), { code });

describe("isConnectionFailure", () => {
  it("recognises socket, driver and server errors that mean the connection is gone", () => {
    for (const code of ["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "CONNECTION_CLOSED", "CONNECTION_ENDED",
      "CONNECTION_DESTROYED", "CONNECT_TIMEOUT", "57P01", "57P02", "57P03", "53300", "08006", "08001", "08P01"]) {
      expect({ code, failure: isConnectionFailure(withCode(code)) }).toEqual({ code, failure: true });
    }
    expect(isConnectionFailure(new TypeError("Cannot read properties of null (reading 'write')"))).toBe(true);
    expect(isConnectionFailure(Object.assign(new Error("refused"), { name: "ConnectionRefused" }))).toBe(true);
  });

  it("leaves statement errors and everything else alone", () => {
    for (const code of ["23505", "42501", "P0001", "22P02", "40001", "57014", "XX000"]) {
      expect({ code, failure: isConnectionFailure(withCode(code)) }).toEqual({ code, failure: false });
    }
    expect(isConnectionFailure(new TypeError("Cannot read properties of undefined (reading 'id')"))).toBe(false);
    expect(isConnectionFailure("ECONNREFUSED")).toBe(false);
    expect(isConnectionFailure(null)).toBe(false);
  });

  it("looks through the cause chain", () => {
    expect(isDatabaseUnavailable(new Error("wrapped", { cause: withCode("ECONNRESET") }))).toBe(true);
    expect(isDatabaseUnavailable(new Error("wrapped", { cause: withCode("23505") }))).toBe(false);
  });
});

describe("a lost database in a function's answer", () => {
  it("is 503 database_unavailable with Retry-After, in the error shape, and never shows the driver's error", async () => {
    const { logger, lines } = capturingLogger();
    const cause = withCode("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:54322");
    const response = errorResponse(new DatabaseUnavailableError("the database is unreachable", { cause }), {
      correlationId: "cid-unavailable", logger,
    });
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
    const body = (await response.json()) as { error: { code: string; message: string; details: unknown } };
    expect(body.error.code).toBe("database_unavailable");
    expect(body.error.details).toEqual({ retry_after_seconds: Number(response.headers.get("retry-after")) });
    expect(JSON.stringify(body)).not.toMatch(/ECONNREFUSED|127\.0\.0\.1/);
    // The cause is logged under the correlation id.
    expect(lines.some((l) => l.level === "error" && JSON.stringify(l.record).includes("ECONNREFUSED"))).toBe(true);
  });

  it("is 503 also when the driver's error escapes unwrapped (e.g. from a statement the server cut off)", async () => {
    const { logger } = capturingLogger();
    const handler = createFunctionHandler({ name: "probe", logger }, () => Promise.reject(withCode("57P01", "terminating connection due to administrator command")));
    const response = await handler(new Request("http://localhost/probe", { method: "POST" }));
    expect(response.status).toBe(503);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("database_unavailable");
  });

  it("keeps statement errors as they were (a unique violation stays 409)", () => {
    const { logger } = capturingLogger();
    const response = errorResponse(withCode("23505", "duplicate key value violates unique constraint"), { correlationId: "cid-conflict", logger });
    expect(response.status).toBe(409);
  });
});

describe("installProcessGuards", () => {
  it("logs an uncaught error and an unhandled rejection as JSON lines and stops them from ending the process", () => {
    const { logger, lines } = capturingLogger();
    const target = new EventTarget();
    const remove = installProcessGuards(logger, target);

    const uncaught = Object.assign(new Event("error", { cancelable: true }), { error: new Error("boom in a timer") });
    target.dispatchEvent(uncaught);
    const rejection = Object.assign(new Event("unhandledrejection", { cancelable: true }), { reason: withCode("CONNECTION_CLOSED") });
    target.dispatchEvent(rejection);

    expect(uncaught.defaultPrevented).toBe(true);
    expect(rejection.defaultPrevented).toBe(true);
    expect(lines.map((l) => [l.level, l.record.kind, l.record.database_failure])).toEqual([
      ["error", "uncaught_exception", false],
      ["error", "unhandled_rejection", true],
    ]);
    expect(lines[0]?.record.error).toMatchObject({ message: "boom in a timer" });

    remove();
    const after = new Event("error", { cancelable: true });
    target.dispatchEvent(after);
    expect(after.defaultPrevented).toBe(false);
  });

  it("keeps a Deno process alive through a TypeError thrown from a setImmediate callback and an unhandled rejection", () => {
    const deno = process.env.DENO_BIN ?? path.join(repoRoot, "node_modules", ".bin", "deno");
    const probe = spawnSync(deno, ["run", "--allow-env", "--allow-read", "tests/helpers/guard-probe.ts"], {
      cwd: repoRoot, encoding: "utf8",
    });
    expect({ status: probe.status, stderr: probe.stderr.replace(/\x1b\[[0-9;]*m/g, "").split("\n").filter((l) => /error/i.test(l)) })
      .toEqual({ status: 0, stderr: [] });
    const lines = probe.stdout.split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.map((l) => [l.level, l.kind, l.database_failure]).sort()).toEqual([
      ["error", "uncaught_exception", true],
      ["error", "unhandled_rejection", true],
    ]);
    expect(probe.stdout).toContain("still running");
  }, 60_000);

  it("gives every database handle a fresh client when the fault is a database one", async () => {
    const db = createDatabase(testEnv().dbUrl, { max: 1 });
    try {
      const pid = async () => (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(db)).rows[0]?.pid;
      const before = await pid();
      const target = new EventTarget();
      installProcessGuards(createLogger({ write: () => {} }), target);
      target.dispatchEvent(Object.assign(new Event("error", { cancelable: true }), {
        error: new TypeError("Cannot read properties of null (reading 'write')"),
      }));
      const after = await pid();
      expect(before).toEqual(expect.any(Number));
      expect(after).toEqual(expect.any(Number));
      expect(after).not.toBe(before);
    } finally {
      await db.destroy();
    }
  });
});

describe("createDatabase when its connection dies under a transaction", () => {
  let db: Kysely<UntypedDatabase>;
  let admin: postgres.Sql;
  beforeAll(() => {
    db = createDatabase(testEnv().dbUrl, { max: 2, applicationName: "crash-driver-test" });
    admin = postgres(testEnv().dbUrl, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await db?.destroy();
    await admin?.end({ timeout: 1 });
  });

  /** Runs a transaction whose second statement is in flight when its backend is terminated; returns what it threw. */
  async function transactionKilledMidway(): Promise<unknown> {
    return db.transaction().execute(async (trx) => {
      const pid = (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx)).rows[0]?.pid ?? 0;
      const sleeping = sql`select pg_sleep(30)`.execute(trx).then(() => null, (error: unknown) => error);
      // Ask the server until the statement is running, then terminate that backend (no clock involved).
      for (;;) {
        const killed = await admin`select pg_terminate_backend(pid) from pg_stat_activity where pid = ${pid} and wait_event = 'PgSleep'`;
        if (killed.length === 1) break;
      }
      const failure = await sleeping;
      // Thrown, so Kysely rolls back: the ROLLBACK on the dead connection is what used to kill the process.
      if (failure) throw failure;
    }).then(() => null, (error: unknown) => error);
  }

  it("rejects with DatabaseUnavailableError (nothing thrown outside the promise) and the next request succeeds", async () => {
    for (let round = 1; round <= 3; round++) {
      const error = await transactionKilledMidway();
      expect(error).toBeInstanceOf(DatabaseUnavailableError);
      expect(isDatabaseUnavailable(error)).toBe(true);
      const response = errorResponse(error, { correlationId: "cid-killed", logger: createLogger({ write: () => {} }) });
      expect(response.status).toBe(503);
      const { rows } = await sql<{ ok: number }>`select 1 as ok`.execute(db);
      expect(rows).toEqual([{ ok: 1 }]);
    }
  });

  it("fails a statement sent on a connection that died while its transaction sat idle, and recovers (Deno)", () => {
    const deno = process.env.DENO_BIN ?? path.join(repoRoot, "node_modules", ".bin", "deno");
    const probe = spawnSync(deno, ["run", "--allow-env", "--allow-read", "--allow-net", "--allow-sys", "tests/helpers/idle-close-probe.ts"], {
      cwd: repoRoot, encoding: "utf8", env: { ...process.env, SUPABASE_DB_URL: testEnv().dbUrl },
    });
    expect({ status: probe.status, stderr: probe.stderr }).toEqual({ status: 0, stderr: "" });
    const result = JSON.parse(probe.stdout.trim().split("\n").at(-1) ?? "null") as Record<string, unknown>;
    // Whether the guard had to step in depends on when the client saw the close; the outcome may not.
    expect(result).toMatchObject({ rejected: true, unavailable: true, after: 1 });
  }, 60_000);

  it("does not mistake a statement error for a lost connection", async () => {
    const error = await db.transaction().execute(async (trx) => {
      await sql`select 1 / 0`.execute(trx);
    }).then(() => null, (e: unknown) => e);
    expect(error).not.toBeInstanceOf(DatabaseUnavailableError);
    expect((error as { code?: string }).code).toBe("22012");
    expect(errorResponse(error, { correlationId: "cid-zero", logger: createLogger({ write: () => {} }) }).status).toBe(400);
    // The pool is fine afterwards.
    expect((await sql<{ ok: number }>`select 1 as ok`.execute(db)).rows).toEqual([{ ok: 1 }]);
  });
});
