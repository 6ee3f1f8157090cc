// The pure shared modules: error shape, body reading, the function wrapper, env validation, log redaction.
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { EnvError, loadEnv } from "../supabase/functions/_shared/env.ts";
import { createFunctionHandler } from "../supabase/functions/_shared/function.ts";
import {
  badRequest,
  errorResponse,
  HttpError,
  readJsonBody,
} from "../supabase/functions/_shared/http.ts";
import { createLogger, type LogLevel } from "../supabase/functions/_shared/log.ts";

function capturingLogger() {
  const lines: Array<{ level: LogLevel; record: Record<string, unknown> }> = [];
  const logger = createLogger({
    minLevel: "debug",
    write: (line, level) => lines.push({ level, record: JSON.parse(line) as Record<string, unknown> }),
  });
  return { logger, lines };
}

describe("errorResponse", () => {
  it("sends an HttpError's status, code, message and details", async () => {
    const { logger } = capturingLogger();
    const response = errorResponse(badRequest("name is required", { field: "name" }), { correlationId: "cid-12345678", logger });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      error: { code: "bad_request", message: "name is required", details: { field: "name" } },
    });
  });

  it("hides an unexpected error behind a 500 that carries only the correlation id, and logs the error", async () => {
    const { logger, lines } = capturingLogger();
    const response = errorResponse(new Error("connection string postgres://admin:hunter2@db leaked"), {
      correlationId: "cid-87654321",
      logger,
    });
    expect(response.status).toBe(500);
    expect(response.headers.get("x-correlation-id")).toBe("cid-87654321");
    const text = await response.text();
    expect(text).not.toContain("hunter2");
    expect(JSON.parse(text)).toEqual({
      error: {
        code: "internal_error",
        message: expect.stringContaining("correlation id") as unknown as string,
        details: { correlation_id: "cid-87654321" },
      },
    });
    const logged = lines.find((line) => line.level === "error");
    expect(logged?.record.msg).toBe("unhandled error");
    expect(JSON.stringify(logged?.record)).toContain("leaked");
  });

  it("turns a zod error into 400 invalid_request listing the issues without the input", async () => {
    const { logger } = capturingLogger();
    const parsed = z.object({ email: z.email() }).safeParse({ email: "not-an-email-but-personal" });
    expect(parsed.success).toBe(false);
    const response = errorResponse(parsed.error, { correlationId: "cid-00000001", logger });
    expect(response.status).toBe(400);
    const text = await response.text();
    expect(text).not.toContain("not-an-email-but-personal");
    expect((JSON.parse(text) as { error: { code: string; details: Array<{ path: string }> } }).error).toMatchObject({
      code: "invalid_request",
      details: [{ path: "email" }],
    });
  });

  it.each([
    ["23505", 409, "constraint_conflict"],
    ["23P01", 409, "constraint_conflict"],
    ["23503", 409, "foreign_key_violation"],
    ["23514", 400, "constraint_violation"],
    ["22P02", 400, "invalid_value"],
    ["42501", 403, "insufficient_privilege"],
  ])("maps SQLSTATE %s to %i %s, without the row-quoting detail", async (sqlstate, status, code) => {
    const { logger } = capturingLogger();
    const pgError = Object.assign(new Error("violates something"), {
      code: sqlstate,
      detail: "Key (email)=(someone@example.test) already exists.",
      constraint_name: "profiles_email_key",
    });
    const response = errorResponse(pgError, { correlationId: "cid-00000002", logger });
    expect(response.status).toBe(status);
    const text = await response.text();
    expect(text).not.toContain("someone@example.test");
    expect((JSON.parse(text) as { error: { code: string; details: unknown } }).error).toMatchObject({
      code,
      details: { sqlstate, constraint: "profiles_email_key" },
    });
  });

  it("keeps other database errors (a server fault) as 500", () => {
    const { logger } = capturingLogger();
    const pgError = Object.assign(new Error("relation does not exist"), { code: "42P01" });
    expect(errorResponse(pgError, { correlationId: "cid-00000003", logger }).status).toBe(500);
  });
});

describe("readJsonBody", () => {
  const schema = z.object({ events: z.array(z.object({ name: z.string() })).min(1) });
  const post = (body: BodyInit, contentType = "application/json") =>
    new Request("http://localhost/ingest", { method: "POST", headers: { "content-type": contentType }, body });

  async function rejectionOf(promise: Promise<unknown>): Promise<HttpError> {
    const error = await promise.then(() => null, (caught: unknown) => caught);
    expect(error).toBeInstanceOf(HttpError);
    return error as HttpError;
  }

  it("returns the validated body", async () => {
    const body = await readJsonBody(post(JSON.stringify({ events: [{ name: "a" }] })), schema, { maxBytes: 1024 });
    expect(body.events[0]?.name).toBe("a");
  });

  it("answers 415 for a body that is not JSON by content type", async () => {
    const error = await rejectionOf(readJsonBody(post("name=a", "application/x-www-form-urlencoded"), schema, { maxBytes: 1024 }));
    expect(error.status).toBe(415);
  });

  it("answers 413 for a body over the limit, even when streamed without a length", async () => {
    const chunk = new TextEncoder().encode(" ".repeat(600));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(chunk);
        controller.enqueue(chunk);
        controller.close();
      },
    });
    const request = new Request("http://localhost/ingest", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: stream,
      duplex: "half",
    } as RequestInit & { duplex: "half" });
    const error = await rejectionOf(readJsonBody(request, schema, { maxBytes: 1000 }));
    expect(error.status).toBe(413);
  });

  it("answers 400 invalid_json for malformed JSON and 400 invalid_request for a wrong shape", async () => {
    expect((await rejectionOf(readJsonBody(post("{"), schema, { maxBytes: 1024 }))).code).toBe("invalid_json");
    const wrong = await rejectionOf(readJsonBody(post(JSON.stringify({ events: [] })), schema, { maxBytes: 1024 }));
    expect(wrong.status).toBe(400);
    expect(wrong.code).toBe("invalid_request");
  });
});

describe("createFunctionHandler", () => {
  it("answers OPTIONS itself, converts thrown errors and logs one line per request", async () => {
    const { logger, lines } = capturingLogger();
    const handler = createFunctionHandler({ name: "probe", logger }, (request) =>
      Promise.reject(
        request.method === "DELETE" ? new HttpError(409, "already_gone", "it is gone") : new Error("boom"),
      ));

    const preflight = await handler(new Request("http://localhost/probe", { method: "OPTIONS" }));
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-methods")).toContain("POST");

    const conflictResponse = await handler(
      new Request("http://localhost/probe", { method: "DELETE", headers: { "x-correlation-id": "caller-chosen-id" } }),
    );
    expect(conflictResponse.status).toBe(409);
    expect(conflictResponse.headers.get("x-correlation-id")).toBe("caller-chosen-id");
    expect(conflictResponse.headers.get("access-control-allow-origin")).toBe("*");

    const crash = await handler(new Request("http://localhost/probe", { method: "POST" }));
    expect(crash.status).toBe(500);
    const correlationId = crash.headers.get("x-correlation-id");
    expect(((await crash.json()) as { error: { details: unknown } }).error.details).toEqual({ correlation_id: correlationId });

    const requestLines = lines.filter((line) => line.record.msg === "request");
    expect(requestLines.map((line) => line.record.status)).toEqual([204, 409, 500]);
    expect(lines.find((line) => line.level === "error")?.record.correlation_id).toBe(correlationId);
  });

  it("ignores a correlation id that is not safe to log", async () => {
    const handler = createFunctionHandler({ name: "probe", logger: capturingLogger().logger }, () =>
      Promise.resolve(new Response("ok")));
    const response = await handler(new Request("http://localhost/probe", { headers: { "x-correlation-id": "bad id with spaces <script>" } }));
    expect(response.headers.get("x-correlation-id")).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("loadEnv", () => {
  const complete = {
    SUPABASE_URL: "http://127.0.0.1:54321",
    SUPABASE_ANON_KEY: "anon",
    SUPABASE_SERVICE_ROLE_KEY: "service",
    SUPABASE_DB_URL: "postgresql://postgres:postgres@127.0.0.1:54322/postgres",
    SUPABASE_JWT_SECRET: "super-secret-jwt-token-with-at-least-32-characters-long",
  };

  it("accepts a complete environment", () => {
    expect(loadEnv(complete).SUPABASE_DB_URL).toBe(complete.SUPABASE_DB_URL);
  });

  it("names every missing or malformed variable, never its value", () => {
    const attempt = () =>
      loadEnv({ ...complete, SUPABASE_DB_URL: undefined, SUPABASE_URL: "not a url", SUPABASE_JWT_SECRET: "" });
    expect(attempt).toThrow(EnvError);
    try {
      attempt();
    } catch (error) {
      const message = (error as EnvError).message;
      expect(message).toContain("SUPABASE_DB_URL is missing");
      expect(message).toContain("SUPABASE_URL must be");
      expect(message).toContain("SUPABASE_JWT_SECRET is missing");
      expect(message).not.toContain("not a url");
    }
  });

  it("accepts a JWKS URL instead of the secret", () => {
    const env = loadEnv({ ...complete, SUPABASE_JWT_SECRET: undefined, SUPABASE_JWKS_URL: "https://example.supabase.co/auth/v1/.well-known/jwks.json" });
    expect(env.SUPABASE_JWT_SECRET).toBeUndefined();
  });
});

describe("logging", () => {
  it("writes JSON lines and masks credentials and JWT-shaped strings", () => {
    const { logger, lines } = capturingLogger();
    const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJl";
    logger.child({ correlation_id: "cid-1" }).info("incoming", {
      authorization: `Bearer ${jwt}`,
      headers: { cookie: "session=abc", "x-trace": "t" },
      note: `token was ${jwt}`,
      verify_jwt: true,
    });
    const record = lines[0]?.record;
    expect(record).toMatchObject({ level: "info", msg: "incoming", correlation_id: "cid-1", verify_jwt: true });
    expect(JSON.stringify(record)).not.toContain(jwt);
    expect(JSON.stringify(record)).not.toContain("session=abc");
    expect(record?.headers).toEqual({ cookie: "[redacted]", "x-trace": "t" });
  });
});
