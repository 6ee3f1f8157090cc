// Which failures mean "the database cannot be reached right now" rather than "this statement is wrong". Pure (no
// driver, no Deno globals), so _shared/http.ts can map them to 503 and Node tests can import it.
//
// A lost database surfaces in three shapes: a socket error from the runtime (ECONNREFUSED while the server is down,
// ECONNRESET when it dies under a query), an error postgres.js makes itself (CONNECTION_CLOSED, CONNECT_TIMEOUT, ...),
// or an error the server sends before it goes (57P01 on shutdown, 57P02 when another backend crashed, 57P03 while it
// is starting up or recovering, class 08 for connection exceptions, 53300 when it has no connection slot left).

/** Socket error codes (Node and Deno's node:net both use these). */
const SOCKET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTCONN",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/** Codes postgres.js gives its own connection errors. */
const DRIVER_CODES = new Set(["CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED", "CONNECT_TIMEOUT"]);

/** SQLSTATEs the server sends when it cannot serve the connection (besides class 08). */
const SERVER_SQLSTATES = new Set(["57P01", "57P02", "57P03", "53300"]);

/** Deno's own error classes for the same socket failures, should one surface without a code. */
const DENO_ERROR_NAMES = new Set(["ConnectionRefused", "ConnectionReset", "ConnectionAborted", "BrokenPipe", "NotConnected", "TimedOut"]);

/** True when `error` says the connection to the database failed or was lost (not that a statement failed). */
export function isConnectionFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error instanceof DatabaseUnavailableError) return true;
  const code = (error as Error & { code?: unknown }).code;
  if (typeof code === "string") {
    if (SOCKET_CODES.has(code) || DRIVER_CODES.has(code) || SERVER_SQLSTATES.has(code)) return true;
    if (/^08[0-9A-Z]{3}$/.test(code)) return true;
  }
  if (DENO_ERROR_NAMES.has(error.name)) return true;
  // postgres.js 3.4.9 writing to a connection whose socket is already gone (see _shared/db.ts).
  return error instanceof TypeError && /null \(reading 'write'\)|evaluating 'socket\.write'/.test(error.message);
}

/** The database could not be reached; `cause` is the driver's error (logged, never sent to a client). */
export class DatabaseUnavailableError extends Error {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "DatabaseUnavailableError";
  }
}

/** Whether `error`, or anything in its `cause` chain, is a lost database. */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let current = error, depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    if (isConnectionFailure(current)) return true;
    current = current instanceof Error ? current.cause : undefined;
  }
  return false;
}
