// The last line of defence: an error nobody awaited (an uncaught exception in a timer or socket callback, or a
// rejected promise nobody handled) would end the process (Deno's default), taking every function of the gateway, or
// an edge function's worker, down with it. These listeners log it as one structured JSON line and keep serving.
// When it is a database failure (postgres.js throwing from a socket or timer callback, see _shared/db.ts), every
// database handle gets a fresh client, so a request waiting on the broken connection fails (503) instead of hanging.
// _shared/db.ts is built so that this should never fire; the log line says so when it does.
import { isDatabaseUnavailable, recycleAllDatabases } from "./db.ts";
import { describeError, type Logger } from "./log.ts";

interface EventTargetLike {
  addEventListener(type: string, listener: (event: Event) => void): void;
  removeEventListener(type: string, listener: (event: Event) => void): void;
}

/**
 * Installs the listeners on `globalThis` (Deno and browsers have them; Node does not, and then nothing happens).
 * Returns a function that removes them.
 */
export function installProcessGuards(logger: Logger, target: unknown = globalThis): () => void {
  const events = target as Partial<EventTargetLike>;
  if (typeof events.addEventListener !== "function" || typeof events.removeEventListener !== "function") {
    return () => {};
  }
  const report = (kind: "uncaught_exception" | "unhandled_rejection", error: unknown) => {
    const database = isDatabaseUnavailable(error);
    if (database) recycleAllDatabases();
    logger.error(kind === "uncaught_exception" ? "uncaught exception" : "unhandled promise rejection", {
      kind,
      database_failure: database,
      action: database ? "database clients recycled; still serving" : "still serving",
      error: describeError(error),
    });
  };
  const onError = (event: Event) => {
    event.preventDefault();
    report("uncaught_exception", (event as ErrorEvent).error ?? (event as ErrorEvent).message);
  };
  const onRejection = (event: Event) => {
    event.preventDefault();
    report("unhandled_rejection", (event as PromiseRejectionEvent).reason);
  };
  events.addEventListener("error", onError);
  events.addEventListener("unhandledrejection", onRejection);
  return () => {
    events.removeEventListener?.("error", onError);
    events.removeEventListener?.("unhandledrejection", onRejection);
  };
}
