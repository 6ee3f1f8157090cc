// HTTP plumbing shared by every function: the one error shape, JSON responses, CORS, correlation ids,
// and a bounded, validated JSON body reader. Status codes follow DESIGN.md section 7.
import { z } from "zod";
import { isDatabaseUnavailable } from "./db-errors.ts";
import { describeError, type Logger } from "./log.ts";

/** `{ "error": { "code", "message", "details" } }`: the only error body any endpoint returns. */
export interface ErrorBody {
  error: { code: string; message: string; details: unknown };
}

/** An error meant for the client: its status, code, message and details are sent as they are. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    status: number,
    code: string,
    message: string,
    options: { details?: unknown; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "HttpError";
    this.status = status;
    this.code = code;
    this.details = options.details ?? null;
    this.headers = options.headers ?? {};
  }
}

// Helpers for the common statuses. All take (message, details?, code?) in that order; `details` is sent
// to the client as is, so it must never hold internals or personal data.

export const badRequest = (message: string, details: unknown = null, code = "bad_request") =>
  new HttpError(400, code, message, { details });

export const unauthorized = (message = "a valid JWT is required", details: unknown = null, code = "unauthorized") =>
  new HttpError(401, code, message, { details, headers: { "www-authenticate": 'Bearer realm="functions"' } });

export const forbidden = (message = "not allowed", details: unknown = null, code = "forbidden") =>
  new HttpError(403, code, message, { details });

export const notFound = (message = "not found", details: unknown = null, code = "not_found") =>
  new HttpError(404, code, message, { details });

export const methodNotAllowed = (method: string, allowed: readonly string[]) =>
  new HttpError(405, "method_not_allowed", `method ${method} is not allowed`, {
    details: { allowed },
    headers: { allow: allowed.join(", ") },
  });

export const conflict = (message: string, details: unknown = null, code = "conflict") =>
  new HttpError(409, code, message, { details });

export const payloadTooLarge = (maxBytes: number) =>
  new HttpError(413, "payload_too_large", `request body exceeds ${maxBytes} bytes`, { details: { max_bytes: maxBytes } });

export const unsupportedMediaType = (expected: string) =>
  new HttpError(415, "unsupported_media_type", `content-type must be ${expected}`, { details: { expected } });

/** 503; `cause` (the underlying failure) is logged under the correlation id, never sent. */
export const serviceUnavailable = (
  message: string,
  details: unknown = null,
  code = "service_unavailable",
  cause?: unknown,
) => new HttpError(503, code, message, { details, cause, headers: { "retry-after": "5" } });

/** Seconds a client is asked to wait (Retry-After) when the database is unreachable: a restart takes about that. */
export const DATABASE_RETRY_AFTER_SECONDS = 2;

/**
 * 503 `database_unavailable`: the database could not be reached (down, restarting, recovering, out of connection
 * slots), so nothing was done, or, when the connection died during COMMIT, it is unknown whether the work was stored:
 * retrying is safe because every write path is idempotent (ingest by event id, Stripe by event id).
 * `cause` is logged under the correlation id, never sent.
 */
export const databaseUnavailable = (cause?: unknown) =>
  new HttpError(503, "database_unavailable", "the database is unavailable; retry the request shortly", {
    details: { retry_after_seconds: DATABASE_RETRY_AFTER_SECONDS },
    cause,
    headers: { "retry-after": String(DATABASE_RETRY_AFTER_SECONDS) },
  });

/** Throws 405 unless the request's method is one of `allowed` (OPTIONS is answered before handlers run). */
export function assertMethod(request: Request, allowed: readonly string[]): void {
  if (!allowed.includes(request.method)) throw methodNotAllowed(request.method, [...allowed, "OPTIONS"]);
}

// ----- CORS -------------------------------------------------------------------------------------

export const corsHeaders: Readonly<Record<string, string>> = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
  "access-control-allow-headers":
    "authorization, apikey, content-type, x-client-info, x-correlation-id, x-request-id, idempotency-key",
  "access-control-expose-headers": "x-correlation-id, retry-after",
  "access-control-max-age": "86400",
};

/** The answer to a CORS preflight (any OPTIONS request). */
export function preflightResponse(): Response {
  return new Response(null, { status: 204, headers: corsHeaders });
}

/** A copy of `response` with CORS headers (unless already set) and any `extra` headers. */
export function withHeaders(response: Response, extra: Readonly<Record<string, string>> = {}): Response {
  const headers = new Headers(response.headers);
  for (const [name, value] of Object.entries(corsHeaders)) {
    if (!headers.has(name)) headers.set(name, value);
  }
  for (const [name, value] of Object.entries(extra)) headers.set(name, value);
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

// ----- correlation ids --------------------------------------------------------------------------

export const CORRELATION_HEADER = "x-correlation-id";
const SAFE_CORRELATION_ID = /^[A-Za-z0-9._:-]{8,128}$/;

/** Reuses a well-formed `x-correlation-id` / `x-request-id` from the caller, otherwise makes a new one. */
export function correlationIdFor(request: Request): string {
  for (const name of [CORRELATION_HEADER, "x-request-id"]) {
    const candidate = request.headers.get(name);
    if (candidate && SAFE_CORRELATION_ID.test(candidate)) return candidate;
  }
  return crypto.randomUUID();
}

// ----- responses --------------------------------------------------------------------------------

export function jsonResponse(body: unknown, init: ResponseInit = {}): Response {
  const headers = new Headers(init.headers);
  headers.set("content-type", "application/json; charset=utf-8");
  return new Response(JSON.stringify(body), { ...init, headers });
}

export function errorBody(code: string, message: string, details: unknown = null): ErrorBody {
  return { error: { code, message, details } };
}

/**
 * Postgres errors a client caused, by SQLSTATE: turned into 4xx instead of a 500. The message of these
 * errors names the violated constraint or our own `raise exception` text, which is meant to be read by
 * the caller; the `detail` (which quotes row values) is never sent.
 */
export function httpErrorFromDatabaseError(error: unknown): HttpError | null {
  if (!(error instanceof Error)) return null;
  const pg = error as Error & { code?: unknown; constraint_name?: unknown; hint?: unknown };
  if (typeof pg.code !== "string" || !/^[0-9A-Z]{5}$/.test(pg.code)) return null;
  const details = {
    sqlstate: pg.code,
    ...(typeof pg.constraint_name === "string" ? { constraint: pg.constraint_name } : {}),
    ...(typeof pg.hint === "string" ? { hint: pg.hint } : {}),
  };
  const code = pg.code;
  if (code === "42501") return forbidden(error.message, details, "insufficient_privilege");
  if (code === "23505" || code === "23P01") return conflict(error.message, details, "constraint_conflict");
  if (code === "23503") return conflict(error.message, details, "foreign_key_violation");
  if (code.startsWith("23")) return badRequest(error.message, details, "constraint_violation");
  if (code.startsWith("22")) return badRequest(error.message, details, "invalid_value");
  if (code === "P0001" || code === "P0002") return badRequest(error.message, details, "rejected");
  return null;
}

/** The response for an HttpError (no logging). */
export function httpErrorResponse(error: HttpError, correlationId?: string): Response {
  return jsonResponse(errorBody(error.code, error.message, error.details), {
    status: error.status,
    headers: correlationId ? { ...error.headers, [CORRELATION_HEADER]: correlationId } : error.headers,
  });
}

/**
 * Turns anything thrown into the error response. HttpError and client-caused database errors keep
 * their status; zod errors are 400; a lost database is 503 database_unavailable with Retry-After; everything
 * else is a 500 whose body carries only the correlation id (the real error goes to the log under that id).
 */
export function errorResponse(error: unknown, context: { correlationId: string; logger: Logger }): Response {
  const known = error instanceof HttpError
    ? error
    : error instanceof z.ZodError
    ? badRequest("request is invalid", zodIssues(error), "invalid_request")
    : isDatabaseUnavailable(error)
    ? databaseUnavailable(error)
    : httpErrorFromDatabaseError(error);
  if (known) {
    if (known.status >= 500) context.logger.error("request failed", { status: known.status, code: known.code, error: describeError(known.cause ?? known) });
    // A client's mistake is already visible in the per-request log line (status); details only at debug.
    else context.logger.debug("request rejected", { status: known.status, code: known.code });
    return httpErrorResponse(known, context.correlationId);
  }
  context.logger.error("unhandled error", { status: 500, error: describeError(error) });
  return jsonResponse(
    errorBody("internal_error", "internal error; quote the correlation id when reporting it", {
      correlation_id: context.correlationId,
    }),
    { status: 500, headers: { [CORRELATION_HEADER]: context.correlationId } },
  );
}

/** Zod issues as client-facing details: where and what, never the rejected input. */
export function zodIssues(error: z.ZodError): Array<{ path: string; code: string; message: string }> {
  return error.issues.map((issue) => ({
    path: issue.path.map(String).join("."),
    code: issue.code,
    message: issue.message,
  }));
}

// ----- request bodies ---------------------------------------------------------------------------

/**
 * Reads a JSON body of at most `maxBytes` and validates it with `schema`.
 * 415 unless the content type is JSON, 413 when too large (checked while streaming, so a lying or
 * missing content-length does not help), 400 for malformed JSON or a body the schema rejects.
 */
export async function readJsonBody<Schema extends z.ZodType>(
  request: Request,
  schema: Schema,
  options: { maxBytes: number },
): Promise<z.infer<Schema>> {
  const contentType = request.headers.get("content-type") ?? "";
  if (!/^application\/([\w.+-]*\+)?json\s*(;|$)/i.test(contentType)) throw unsupportedMediaType("application/json");
  const text = new TextDecoder().decode(await readBodyBytes(request, options.maxBytes));
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw badRequest("request body is not valid JSON", null, "invalid_json");
  }
  const result = schema.safeParse(parsed);
  if (!result.success) throw badRequest("request body is invalid", zodIssues(result.error), "invalid_request");
  return result.data;
}

/**
 * The body as bytes, exactly as sent, refusing (413) more than maxBytes: up front when Content-Length says so,
 * otherwise while streaming, so an oversized body is never buffered whole.
 */
export async function readBodyBytes(request: Request, maxBytes: number): Promise<Uint8Array> {
  const declared = Number(request.headers.get("content-length") ?? "NaN");
  if (Number.isFinite(declared) && declared > maxBytes) throw payloadTooLarge(maxBytes);
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw payloadTooLarge(maxBytes);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}
