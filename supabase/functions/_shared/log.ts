// Structured logging: one JSON object per line, carrying the request's correlation id.
// Field names that can hold credentials are masked, and strings shaped like JWTs are masked wherever
// they appear, so a careless `logger.info("...", { headers })` cannot leak a token. Raw PII (emails,
// IP addresses, request bodies) is simply never passed to the logger by our code.

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line (e.g. `{ correlation_id, function }`). */
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  /** Fields on every line. */
  fields?: LogFields;
  /** Lines below this level are dropped. Default "info". */
  minLevel?: LogLevel;
  /** Where a finished line goes. Default: stdout, and stderr for "error". */
  write?: (line: string, level: LogLevel) => void;
  /** Clock, for tests. */
  now?: () => Date;
}

const levelRank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

const SENSITIVE_KEY = /authorization|cookie|password|passwd|secret|token|jwt|api[-_]?key|service[-_]?role|credential|signature/i;
const JWT_SHAPE = /\beyJ[\w-]+\.[\w-]+\.[\w-]*/g;
const REDACTED = "[redacted]";

function defaultWrite(line: string, level: LogLevel): void {
  if (level === "error") console.error(line);
  else console.log(line);
}

/** Makes a value safe and serialisable for a log line. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6) return "[truncated]";
  if (typeof value === "string") return value.replace(JWT_SHAPE, REDACTED);
  if (typeof value === "bigint") return value.toString();
  if (value === null || typeof value !== "object") {
    return typeof value === "function" || typeof value === "symbol" ? String(value) : value;
  }
  if (value instanceof Error) return describeError(value);
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.slice(0, 50).map((item) => redact(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    // Booleans and numbers cannot hold a credential (`verify_jwt: true` stays readable).
    const harmless = item === null || typeof item === "boolean" || typeof item === "number";
    out[key] = SENSITIVE_KEY.test(key) && !harmless ? REDACTED : redact(item, depth + 1);
  }
  return out;
}

/**
 * The parts of an error worth logging. A Postgres error's `detail` is left out on purpose: it quotes
 * the offending row values, which may be personal data.
 */
export function describeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: redact(String(error)) };
  const described: Record<string, unknown> = { name: error.name, message: redact(error.message) };
  const extra = error as Error & { code?: unknown; constraint_name?: unknown };
  if (typeof extra.code === "string") described.code = extra.code;
  if (typeof extra.constraint_name === "string") described.constraint = extra.constraint_name;
  if (error.stack) described.stack = redact(error.stack.split("\n").slice(0, 8).join("\n"));
  if (error.cause !== undefined) described.cause = describeError(error.cause);
  return described;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const base = options.fields ?? {};
  const minRank = levelRank[options.minLevel ?? "info"];
  const write = options.write ?? defaultWrite;
  const now = options.now ?? (() => new Date());

  const emit = (level: LogLevel, message: string, fields?: LogFields) => {
    if (levelRank[level] < minRank) return;
    const record = redact({ ...base, ...fields }) as Record<string, unknown>;
    let line: string;
    try {
      line = JSON.stringify({ time: now().toISOString(), level, msg: redact(message), ...record });
    } catch {
      line = JSON.stringify({ time: now().toISOString(), level, msg: redact(message), log_error: "unserialisable fields" });
    }
    write(line, level);
  };

  return {
    debug: (message, fields) => emit("debug", message, fields),
    info: (message, fields) => emit("info", message, fields),
    warn: (message, fields) => emit("warn", message, fields),
    error: (message, fields) => emit("error", message, fields),
    child: (fields) => createLogger({ ...options, fields: { ...base, ...fields } }),
  };
}

/** A logger that drops everything (tests that do not inspect logs). */
export const silentLogger: Logger = createLogger({ write: () => {} });
