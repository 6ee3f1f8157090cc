// Environment of an edge function, validated once at start-up. Pure: the caller passes the source
// (`Deno.env.toObject()` in _shared/boot.ts, a plain object in tests), so this module runs in Node too.
//
// JWT verification keys (resolved into `env.jwt`, see resolveJwtVerification below):
//   JWT_SECRET              HS256 project secret (legacy JWT secret). A name `supabase secrets set` accepts.
//   SUPABASE_JWT_SECRET     the same, under the name the local platform (scripts/functions-gateway.ts) uses.
//   SUPABASE_JWKS           inline JSON Web Key Set, `{"keys":[...]}` or `[...]`; Supabase provides it by default.
//   SUPABASE_JWKS_URL       remote JSON Web Key Set, used when SUPABASE_JWKS is not set.
//   SUPABASE_URL            without a secret and without the two above, the JWKS is fetched from
//                           <SUPABASE_URL>/auth/v1/.well-known/jwks.json.
// With a secret, HS256 tokens are checked against it; asymmetric tokens (ES256/RS256) against the JWKS when
// one is set explicitly (SUPABASE_JWKS or SUPABASE_JWKS_URL), as during Supabase's signing-key migration.
import type { JSONWebKeySet, JWK } from "jose";
import { z } from "zod";

export type EnvSource = Readonly<Record<string, string | undefined>>;

/** Thrown when variables are missing or malformed; the message names them but never echoes a value. */
export class EnvError extends Error {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`invalid environment: ${problems.join("; ")}`);
    this.name = "EnvError";
    this.problems = problems;
  }
}

const required = (what: string) =>
  z.string({ error: (issue) => (issue.input === undefined ? "is missing" : `must be ${what}`) });

const url = () =>
  z.url({ error: (issue) => (issue.input === undefined ? "is missing" : "must be an http(s) URL"), protocol: /^https?$/ });

const postgresUrl = required("a postgres:// URL").regex(/^postgres(ql)?:\/\/\S+$/, {
  error: "must be a postgres:// URL",
});

const hs256Secret = () => required("a string").min(32, { error: "must be at least 32 characters" });

const JWKS_SHAPE = 'must be a JSON Web Key Set ({"keys":[...]} or [...])';

/** Inline JWKS: JSON text of `{"keys":[...]}` (or a bare array of keys), parsed into a key set. */
const inlineJwks = required("a JSON string").transform((text, ctx): JSONWebKeySet => {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    ctx.issues.push({ code: "custom", message: `${JWKS_SHAPE}: not valid JSON`, input: undefined });
    return z.NEVER;
  }
  const keys = Array.isArray(parsed) ? parsed : isObject(parsed) ? parsed.keys : undefined;
  if (!Array.isArray(keys) || !keys.every((key) => isObject(key) && typeof key.kty === "string")) {
    ctx.issues.push({ code: "custom", message: JWKS_SHAPE, input: undefined });
    return z.NEVER;
  }
  return { keys: keys as JWK[] };
});

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Variables every function reads from the platform (Supabase injects them; the local gateway too). */
export const baseEnvSchema = z.object({
  SUPABASE_URL: url(),
  SUPABASE_ANON_KEY: required("a non-empty string").min(1, { error: "must not be empty" }),
  SUPABASE_SERVICE_ROLE_KEY: required("a non-empty string").min(1, { error: "must not be empty" }),
  SUPABASE_DB_URL: postgresUrl,
  JWT_SECRET: hs256Secret().optional(),
  SUPABASE_JWT_SECRET: hs256Secret().optional(),
  SUPABASE_JWKS: inlineJwks.optional(),
  SUPABASE_JWKS_URL: url().optional(),
});

/** How tokens are verified, resolved from the variables above. At least one of the three is set. */
export interface JwtVerification {
  /** HS256 secret: JWT_SECRET, else SUPABASE_JWT_SECRET. */
  secret: string | null;
  /** Inline key set for asymmetric tokens (SUPABASE_JWKS). */
  jwks: JSONWebKeySet | null;
  /** Remote key set for asymmetric tokens, when there is no inline one: SUPABASE_JWKS_URL, or (without a
   *  secret) derived from SUPABASE_URL. */
  jwksUrl: string | null;
}

export type Env = z.infer<typeof baseEnvSchema> & { jwt: JwtVerification };

/** Where Supabase Auth publishes a project's signing keys. */
export function jwksUrlFor(supabaseUrl: string): string {
  return `${supabaseUrl.replace(/\/+$/, "")}/auth/v1/.well-known/jwks.json`;
}

function cleanSource(source: EnvSource): Record<string, string> {
  const cleaned: Record<string, string> = {};
  for (const [key, value] of Object.entries(source)) {
    if (value !== undefined && value !== "") cleaned[key] = value;
  }
  return cleaned;
}

function problemsOf(error: z.ZodError): string[] {
  return error.issues.map((issue) => `${issue.path.join(".") || "environment"} ${issue.message}`);
}

/**
 * Validates `source` against any object schema. Empty strings count as unset, so `FOO=` in a .env file
 * is reported as missing rather than silently accepted. Extra variables a function needs (Stripe keys, ...)
 * are read with their own schema: `parseEnv(z.object({ STRIPE_SECRET_KEY: ... }), deps.envSource)`.
 */
export function parseEnv<Schema extends z.ZodType>(schema: Schema, source: EnvSource): z.infer<Schema> {
  const result = schema.safeParse(cleanSource(source));
  if (result.success) return result.data;
  throw new EnvError(problemsOf(result.error));
}

/**
 * The problems with the JWT verification variables that no single variable's check sees: two different
 * secrets, or no way to verify any token at all. Works on the raw (cleaned) values, so it runs even when
 * other variables are malformed and one start-up reports everything.
 */
function jwtProblems(raw: Record<string, string>): string[] {
  const problems: string[] = [];
  const { JWT_SECRET, SUPABASE_JWT_SECRET } = raw;
  if (JWT_SECRET !== undefined && SUPABASE_JWT_SECRET !== undefined && JWT_SECRET !== SUPABASE_JWT_SECRET) {
    problems.push("JWT_SECRET and SUPABASE_JWT_SECRET differ (set one, or both to the same secret)");
  }
  const hasSecret = raw.JWT_SECRET !== undefined || raw.SUPABASE_JWT_SECRET !== undefined;
  if (hasSecret) return problems;
  if (raw.SUPABASE_JWKS !== undefined) {
    // A malformed value is reported by its own check; an empty set can verify nothing.
    const jwks = baseEnvSchema.shape.SUPABASE_JWKS.safeParse(raw.SUPABASE_JWKS);
    if (jwks.success && jwks.data?.keys.length === 0) {
      problems.push(
        "SUPABASE_JWKS has no keys and JWT_SECRET is not set: no token could be verified " +
          "(set JWT_SECRET to the project's JWT secret if it still signs with HS256)",
      );
    }
    return problems;
  }
  const supabaseUrl = baseEnvSchema.shape.SUPABASE_URL.safeParse(raw.SUPABASE_URL);
  if (raw.SUPABASE_JWKS_URL === undefined && !supabaseUrl.success) {
    problems.push(
      "JWT_SECRET or SUPABASE_JWT_SECRET is missing, and no JWKS is available (SUPABASE_JWKS, SUPABASE_JWKS_URL " +
        "or a valid SUPABASE_URL): no token could be verified",
    );
  }
  return problems;
}

/** The verification keys of a valid environment (see the header of this file for the order). */
function resolveJwtVerification(env: z.infer<typeof baseEnvSchema>): JwtVerification {
  const secret = env.JWT_SECRET ?? env.SUPABASE_JWT_SECRET ?? null;
  if (env.SUPABASE_JWKS) return { secret, jwks: env.SUPABASE_JWKS, jwksUrl: null };
  if (env.SUPABASE_JWKS_URL) return { secret, jwks: null, jwksUrl: env.SUPABASE_JWKS_URL };
  // With a secret and nothing explicit, the project signs with HS256 only: do not fetch anything.
  return { secret, jwks: null, jwksUrl: secret === null ? jwksUrlFor(env.SUPABASE_URL) : null };
}

/** The platform variables, validated, with the JWT verification keys resolved. Call once at start-up. */
export function loadEnv(source: EnvSource): Env {
  const raw = cleanSource(source);
  const result = baseEnvSchema.safeParse(raw);
  const problems = [
    ...(result.success ? [] : problemsOf(result.error)),
    ...jwtProblems(raw),
  ];
  if (!result.success || problems.length > 0) throw new EnvError(problems);
  return { ...result.data, jwt: resolveJwtVerification(result.data) };
}
