// Runs database work as the caller, the way PostgREST does for every request: one transaction whose
// first statement switches to the caller's role and publishes the JWT claims and request metadata with
// transaction-local `set_config(..., true)`. RLS policies (`auth.uid()`, `auth.jwt()`) then see the
// caller, and everything is reset when the transaction ends, so a pooled connection never carries one
// caller's identity into the next request.
import { sql, type Kysely, type Transaction } from "kysely";
import type { AccessMode, IsolationLevel } from "kysely";
import { DATABASE_ROLES, isDatabaseRole, type VerifiedJwt } from "./auth.ts";
import { HttpError } from "./http.ts";

export interface RequestContext {
  /** Database role the transaction runs as. */
  role: string;
  /** JWT claims as `request.jwt.claims` (what `auth.jwt()` returns). */
  claims: Readonly<Record<string, unknown>>;
  method: string;
  path: string;
  /** Lower-cased request headers, credentials removed (see `headersForDatabase`). */
  headers: Readonly<Record<string, string>>;
}

/**
 * Headers never copied into `request.headers`: credentials that SQL has no business reading (and that
 * would leak into anything that logs or audits the setting). `apikey` may hold the service-role key.
 */
const WITHHELD_HEADERS = new Set(["authorization", "cookie", "apikey", "proxy-authorization"]);

export function headersForDatabase(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  headers.forEach((value, name) => {
    const key = name.toLowerCase();
    if (!WITHHELD_HEADERS.has(key)) out[key] = value;
  });
  return out;
}

/**
 * The context of a request: the verified JWT's role and claims, or anon (claims `{ "role": "anon" }`,
 * as PostgREST uses) when the request carried no token.
 */
export function requestContextFor(request: Request, jwt: VerifiedJwt | null): RequestContext {
  return {
    role: jwt ? jwt.role : "anon",
    claims: jwt ? jwt.claims : { role: "anon" },
    method: request.method,
    path: new URL(request.url).pathname,
    headers: headersForDatabase(request.headers),
  };
}

export interface RunAsCallerOptions {
  isolationLevel?: IsolationLevel;
  accessMode?: AccessMode;
}

/**
 * Runs `callback` in one transaction as the caller described by `context`, under RLS.
 * Commits when the callback resolves, rolls back when it throws (the error is rethrown).
 * Rejects (403 `role_not_allowed`) before touching the database when the role is not one of
 * anon / authenticated / service_role.
 */
export async function runAsCaller<DB, T>(
  db: Kysely<DB>,
  context: RequestContext,
  callback: (trx: Transaction<DB>) => Promise<T>,
  options: RunAsCallerOptions = {},
): Promise<T> {
  if (!isDatabaseRole(context.role)) {
    throw new HttpError(403, "role_not_allowed", `role ${JSON.stringify(context.role)} may not run queries`, {
      details: { allowed: DATABASE_ROLES },
    });
  }
  const claims = JSON.stringify(context.claims);
  const headers = JSON.stringify(context.headers);

  let builder = db.transaction();
  if (options.isolationLevel) builder = builder.setIsolationLevel(options.isolationLevel);
  if (options.accessMode) builder = builder.setAccessMode(options.accessMode);

  return await builder.execute(async (trx) => {
    await sql`
      select
        set_config('role', ${context.role}, true),
        set_config('request.jwt.claims', ${claims}, true),
        set_config('request.method', ${context.method}, true),
        set_config('request.path', ${context.path}, true),
        set_config('request.headers', ${headers}, true)
    `.execute(trx);
    return callback(trx);
  });
}

/** `runAsCaller` for a request: builds the context from the request and its verified JWT. */
export function runForRequest<DB, T>(
  db: Kysely<DB>,
  request: Request,
  jwt: VerifiedJwt | null,
  callback: (trx: Transaction<DB>) => Promise<T>,
  options: RunAsCallerOptions = {},
): Promise<T> {
  return runAsCaller(db, requestContextFor(request, jwt), callback, options);
}
