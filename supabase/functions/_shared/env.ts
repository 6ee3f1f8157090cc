// Environment of an edge function, validated once at start-up. Pure: the caller passes the source
// (`Deno.env.toObject()` in _shared/boot.ts, a plain object in tests), so this module runs in Node too.
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

/** Variables every function gets from the platform (Supabase Cloud injects them; the local gateway too). */
export const baseEnvSchema = z
  .object({
    SUPABASE_URL: url(),
    SUPABASE_ANON_KEY: required("a non-empty string").min(1, { error: "must not be empty" }),
    SUPABASE_SERVICE_ROLE_KEY: required("a non-empty string").min(1, { error: "must not be empty" }),
    SUPABASE_DB_URL: postgresUrl,
    // HS256 secret of the project. Optional when tokens are verified against a remote JWKS instead.
    SUPABASE_JWT_SECRET: required("a string").min(32, { error: "must be at least 32 characters" }).optional(),
    SUPABASE_JWKS_URL: url().optional(),
  })
  .refine((env) => env.SUPABASE_JWT_SECRET !== undefined || env.SUPABASE_JWKS_URL !== undefined, {
    path: ["SUPABASE_JWT_SECRET"],
    error: "is missing (required unless SUPABASE_JWKS_URL is set)",
    // Run even when other variables failed, so one start-up reports every problem at once.
    when: (payload) => typeof payload.value === "object" && payload.value !== null,
  });

export type Env = z.infer<typeof baseEnvSchema>;

/**
 * Validates `source` against any object schema. Empty strings count as unset, so `FOO=` in a .env file
 * is reported as missing rather than silently accepted. Extra variables a function needs (Stripe keys, ...)
 * are read with their own schema: `parseEnv(z.object({ STRIPE_SECRET_KEY: ... }), deps.envSource)`.
 */
export function parseEnv<Schema extends z.ZodType>(schema: Schema, source: EnvSource): z.infer<Schema> {
  const cleaned: Record<string, string> = {};
  for (const [key, value] of Object.entries(source)) {
    if (value !== undefined && value !== "") cleaned[key] = value;
  }
  const result = schema.safeParse(cleaned);
  if (result.success) return result.data;
  throw new EnvError(result.error.issues.map((issue) => `${issue.path.join(".") || "environment"} ${issue.message}`));
}

/** The platform variables, validated. Call once at start-up. */
export function loadEnv(source: EnvSource): Env {
  return parseEnv(baseEnvSchema, source);
}
