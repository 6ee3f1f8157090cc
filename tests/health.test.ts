// health, end to end over HTTP through the gateway (a real Deno process), and its handler in Node.
import { readdirSync } from "node:fs";
import type { Kysely } from "kysely";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createDatabase, type UntypedDatabase } from "../supabase/functions/_shared/db.ts";
import { createFunctionDeps } from "../supabase/functions/_shared/function.ts";
import { silentLogger } from "../supabase/functions/_shared/log.ts";
import { createHandler, type HealthReport } from "../supabase/functions/health/handler.ts";
import { testEnv } from "./helpers/env.ts";
import { repoRoot, startGateway, type RunningGateway } from "./helpers/gateway.ts";
import { anonKey } from "./helpers/jwt.ts";

const gatewayUrl = inject("gatewayUrl");

/**
 * What the function should report: the newest migration in the repository, i.e. the largest timestamp
 * prefix among supabase/migrations/<timestamp>_<name>.sql (the version `supabase db push` records).
 * Read from the files, not the database, so a push that recorded nothing (or the wrong thing) fails.
 */
function expectedMigrationVersion(): string {
  const versions = readdirSync(`${repoRoot}supabase/migrations`)
    .map((file) => /^(\d+)_.*\.sql$/.exec(file)?.[1])
    .filter((version): version is string => version !== undefined)
    .sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0));
  const newest = versions.at(-1);
  if (newest === undefined) throw new Error("supabase/migrations has no <timestamp>_<name>.sql file");
  return newest;
}

function expectHealthy(report: HealthReport, expectedVersion: string) {
  expect(report.status).toBe("ok");
  expect(report.database.reachable).toBe(true);
  expect(Number.isInteger(report.database.latency_ms)).toBe(true);
  expect(report.database.latency_ms).toBeGreaterThanOrEqual(0);
  expect(Number.isNaN(Date.parse(report.time))).toBe(false);
  expect(report.migration.version).not.toBeNull();
  expect(report.migration.version).toMatch(/^\d+$/);
  expect(report.migration.version).toBe(expectedVersion);
}

describe("GET /functions/v1/health through the gateway", () => {
  it("reports a reachable database and the latest migration version", async () => {
    const expectedVersion = expectedMigrationVersion();
    const response = await fetch(`${gatewayUrl}/functions/v1/health`, {
      headers: { authorization: `Bearer ${await anonKey()}` },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    expectHealthy((await response.json()) as HealthReport, expectedVersion);
  });

  it("answers 405 with the error shape for other methods", async () => {
    for (const method of ["POST", "PUT", "DELETE"]) {
      const response = await fetch(`${gatewayUrl}/functions/v1/health`, {
        method,
        headers: { authorization: `Bearer ${await anonKey()}` },
      });
      expect(response.status).toBe(405);
      const body = (await response.json()) as { error: { code: string } };
      expect(body.error.code).toBe("method_not_allowed");
    }
  });
});

describe("health when the database is down", () => {
  let gateway: RunningGateway;
  beforeAll(async () => {
    // Port 1: nothing listens there, so every connection attempt is refused.
    gateway = await startGateway({
      env: { ...process.env, SUPABASE_DB_URL: "postgresql://postgres:postgres@127.0.0.1:1/postgres" },
    });
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  it("answers 503 database_unreachable without leaking the driver's error", async () => {
    const response = await fetch(`${gateway.url}/functions/v1/health`, {
      headers: { authorization: `Bearer ${await anonKey()}` },
    });
    expect(response.status).toBe(503);
    const text = await response.text();
    const body = JSON.parse(text) as { error: { code: string; message: string; details: unknown } };
    expect(body.error.code).toBe("database_unreachable");
    expect(body.error.details).toEqual({ database: { reachable: false } });
    expect(text).not.toMatch(/ECONNREFUSED|127\.0\.0\.1:1\b|postgres:postgres/);
  });
});

describe("the health handler in Node, with injected dependencies", () => {
  let db: Kysely<UntypedDatabase>;
  beforeAll(() => {
    db = createDatabase(testEnv().dbUrl, { max: 1 });
  });
  afterAll(async () => {
    await db?.destroy();
  });

  function deps() {
    const { dbUrl, jwtSecret } = testEnv();
    return createFunctionDeps(
      {
        SUPABASE_URL: "http://127.0.0.1:54321",
        SUPABASE_ANON_KEY: "anon-key",
        SUPABASE_SERVICE_ROLE_KEY: "service-role-key",
        SUPABASE_DB_URL: dbUrl,
        SUPABASE_JWT_SECRET: jwtSecret,
      },
      silentLogger,
    );
  }

  it("reports the same as over HTTP", async () => {
    const handler = createHandler({ ...deps(), db });
    const response = await handler(new Request("http://localhost/health"));
    expect(response.status).toBe(200);
    expectHealthy((await response.json()) as HealthReport, expectedMigrationVersion());
    await handler.close();
  });

  it("answers a CORS preflight itself (as deployed on Supabase, without our gateway)", async () => {
    const handler = createHandler({ ...deps(), db });
    const response = await handler(new Request("http://localhost/health", { method: "OPTIONS" }));
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-origin")).toBe("*");
  });
});
