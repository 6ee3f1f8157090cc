// health, end to end over HTTP through the gateway (a real Deno process), and its handler in Node.
import { sql, type Kysely } from "kysely";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createDatabase, type UntypedDatabase } from "../supabase/functions/_shared/db.ts";
import { createFunctionDeps } from "../supabase/functions/_shared/function.ts";
import { silentLogger } from "../supabase/functions/_shared/log.ts";
import { createHandler, type HealthReport } from "../supabase/functions/health/handler.ts";
import { testEnv } from "./helpers/env.ts";
import { startGateway, type RunningGateway } from "./helpers/gateway.ts";
import { anonKey } from "./helpers/jwt.ts";

const gatewayUrl = inject("gatewayUrl");

/** What the function should report: the newest version `supabase db push` recorded, or null. */
async function expectedMigrationVersion(): Promise<string | null> {
  const db: Kysely<UntypedDatabase> = createDatabase(testEnv().dbUrl, { max: 1 });
  try {
    const table = await sql<{ present: boolean }>`
      select to_regclass('supabase_migrations.schema_migrations') is not null as present
    `.execute(db);
    if (!table.rows[0]?.present) return null;
    const result = await sql<{ version: string | null }>`
      select max(version) as version from supabase_migrations.schema_migrations
    `.execute(db);
    return result.rows[0]?.version ?? null;
  } finally {
    await db.destroy();
  }
}

function expectHealthy(report: HealthReport, expectedVersion: string | null) {
  expect(report.status).toBe("ok");
  expect(report.database.reachable).toBe(true);
  expect(Number.isInteger(report.database.latency_ms)).toBe(true);
  expect(report.database.latency_ms).toBeGreaterThanOrEqual(0);
  expect(Number.isNaN(Date.parse(report.time))).toBe(false);
  expect(report.migration.version).toBe(expectedVersion);
  if (expectedVersion !== null) expect(report.migration.version).toMatch(/^\d{14}$/);
}

describe("GET /functions/v1/health through the gateway", () => {
  it("reports a reachable database and the latest migration version", async () => {
    const expectedVersion = await expectedMigrationVersion();
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
    expectHealthy((await response.json()) as HealthReport, await expectedMigrationVersion());
    await handler.close();
  });

  it("answers a CORS preflight itself (as deployed on Supabase, without our gateway)", async () => {
    const handler = createHandler({ ...deps(), db });
    const response = await handler(new Request("http://localhost/health", { method: "OPTIONS" }));
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-origin")).toBe("*");
  });
});
