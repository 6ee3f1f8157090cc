// The local functions gateway, over HTTP, as a real Deno process: routing, verify_jwt, CORS, logging.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { repoRoot, startGateway, type RunningGateway } from "./helpers/gateway.ts";
import { anonKey, serviceRoleKey, userToken } from "./helpers/jwt.ts";

const gatewayUrl = inject("gatewayUrl");
const health = `${gatewayUrl}/functions/v1/health`;

interface ErrorShape {
  error: { code: string; message: string; details: unknown };
}

async function expectError(response: Response, status: number, code: string): Promise<ErrorShape> {
  expect(response.status).toBe(status);
  expect(response.headers.get("content-type")).toMatch(/^application\/json/);
  const body = (await response.json()) as ErrorShape;
  expect(Object.keys(body)).toEqual(["error"]);
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe("string");
  expect(body.error).toHaveProperty("details");
  return body;
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe("verify_jwt = true (health, as in supabase/config.toml)", () => {
  it("answers 401 missing_jwt without a token", async () => {
    await expectError(await fetch(health), 401, "missing_jwt");
  });

  it("answers 401 invalid_jwt for a token signed with another secret", async () => {
    const forged = await anonKey({ secret: "not-the-project-secret-but-long-enough-1234" });
    await expectError(await fetch(health, { headers: bearer(forged) }), 401, "invalid_jwt");
  });

  it("answers 401 jwt_expired for an expired token", async () => {
    const expired = await anonKey({ expiresIn: -3600 });
    await expectError(await fetch(health, { headers: bearer(expired) }), 401, "jwt_expired");
  });

  it("answers 401 for an Authorization header that is not a bearer token", async () => {
    const response = await fetch(health, { headers: { authorization: "Basic dXNlcjpwYXNz" } });
    await expectError(response, 401, "invalid_authorization_header");
  });

  it("passes the anon key through to the function", async () => {
    const response = await fetch(health, { headers: bearer(await anonKey()) });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { status: string }).status).toBe("ok");
  });

  it("passes service_role keys and user tokens through too", async () => {
    for (const token of [await serviceRoleKey(), await userToken("3b1f2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d")]) {
      const response = await fetch(health, { headers: bearer(token) });
      expect(response.status).toBe(200);
      await response.body?.cancel();
    }
  });

  it("puts CORS headers on rejections as well", async () => {
    const response = await fetch(health);
    expect(response.headers.get("access-control-allow-origin")).toBe("*");
    await response.body?.cancel();
  });
});

describe("routing", () => {
  it("answers 404 function_not_found for an unknown function", async () => {
    const response = await fetch(`${gatewayUrl}/functions/v1/no-such-function`, { headers: bearer(await anonKey()) });
    await expectError(response, 404, "function_not_found");
  });

  it("answers 404 outside /functions/v1/", async () => {
    await expectError(await fetch(`${gatewayUrl}/rest/v1/profiles`), 404, "function_not_found");
    await expectError(await fetch(`${gatewayUrl}/functions/v1/`), 404, "function_not_found");
  });

  it("does not serve folders starting with an underscore", async () => {
    const response = await fetch(`${gatewayUrl}/functions/v1/_shared`, { headers: bearer(await anonKey()) });
    await expectError(response, 404, "function_not_found");
  });

  it("forwards sub-paths and methods to the function (health answers 405 to POST)", async () => {
    const response = await fetch(`${health}/deeper/path`, {
      method: "POST",
      headers: { ...bearer(await anonKey()), "content-type": "application/json" },
      body: JSON.stringify({ ping: true }),
    });
    const body = await expectError(response, 405, "method_not_allowed");
    expect(body.error.details).toEqual({ allowed: ["GET", "OPTIONS"] });
    expect(response.headers.get("allow")).toBe("GET, OPTIONS");
  });
});

describe("CORS preflight", () => {
  it("answers OPTIONS with 204 and CORS headers, without a token", async () => {
    const response = await fetch(health, {
      method: "OPTIONS",
      headers: {
        origin: "http://localhost:3000",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
      },
    });
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-origin")).toBe("*");
    expect(response.headers.get("access-control-allow-methods")).toContain("POST");
    const allowed = response.headers.get("access-control-allow-headers") ?? "";
    expect(allowed).toContain("authorization");
    expect(allowed).toContain("content-type");
    expect(allowed).toContain("apikey");
  });
});

describe("correlation ids and logs", () => {
  let gateway: RunningGateway;
  beforeAll(async () => {
    gateway = await startGateway();
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  async function waitForLog(predicate: (line: Record<string, unknown>) => boolean) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const line = gateway.logLines().find(predicate);
      if (line) return line;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`log line not found; output:\n${gateway.output()}`);
  }

  it("echoes a caller's correlation id and logs one gateway line per request with it", async () => {
    const token = await anonKey();
    const correlationId = "test-correlation-0001";
    const response = await fetch(`${gateway.url}/functions/v1/health/sub/path`, {
      headers: { ...bearer(token), "x-correlation-id": correlationId },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-correlation-id")).toBe(correlationId);
    await response.body?.cancel();

    const gatewayLine = await waitForLog((line) => line.msg === "gateway request" && line.correlation_id === correlationId);
    expect(gatewayLine).toMatchObject({ level: "info", function: "health", status: 200, path: "/functions/v1/health/sub/path" });
    // The function saw the path rewritten the way Supabase's runtime rewrites it.
    const functionLine = await waitForLog((line) => line.msg === "request" && line.correlation_id === correlationId);
    expect(functionLine).toMatchObject({ function: "health", path: "/health/sub/path", status: 200 });

    expect(gateway.logLines().filter((line) => line.correlation_id === correlationId && line.msg === "gateway request"))
      .toHaveLength(1);
    expect(gateway.output()).not.toContain(token);
  });

  it("makes up a correlation id when the caller sends none", async () => {
    const response = await fetch(`${gateway.url}/functions/v1/health`);
    expect(response.headers.get("x-correlation-id")).toMatch(/^[0-9a-f-]{36}$/);
    await response.body?.cancel();
  });
});

describe("verify_jwt from the config file", () => {
  let dir: string;
  let withoutSection: RunningGateway;
  let disabled: RunningGateway;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "gateway-config-"));
    const base = (await readFile(path.join(repoRoot, "supabase/config.toml"), "utf8"))
      .replace(/\[functions\.health\][^[]*/, "");
    const withoutFile = path.join(dir, "without-section.toml");
    const disabledFile = path.join(dir, "verify-jwt-false.toml");
    await writeFile(withoutFile, base);
    await writeFile(disabledFile, `${base}\n[functions.health]\nverify_jwt = false\n`);
    [withoutSection, disabled] = await Promise.all([
      startGateway({ args: ["--config", withoutFile] }),
      startGateway({ args: ["--config", disabledFile] }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([withoutSection?.stop(), disabled?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  it("defaults to verify_jwt = true when the function has no section", async () => {
    await expectError(await fetch(`${withoutSection.url}/functions/v1/health`), 401, "missing_jwt");
  });

  it("lets requests without a token reach the function when verify_jwt = false", async () => {
    const response = await fetch(`${disabled.url}/functions/v1/health`);
    expect(response.status).toBe(200);
    await response.body?.cancel();
  });
});
