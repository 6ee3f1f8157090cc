// Mints project JWTs for tests, signed like Supabase Auth signs them (HS256 with the project secret).
import { SignJWT } from "jose";
import { testEnv } from "./env.ts";

export interface MintOptions {
  role?: string;
  sub?: string;
  email?: string;
  /** Audience; null leaves the claim out (API keys have none). */
  aud?: string | string[] | null;
  /** Seconds from now until expiry; negative for an already expired token. Default 3600. */
  expiresIn?: number;
  /** Leave out `exp` altogether. */
  omitExp?: boolean;
  /** Signing secret; default the project's. */
  secret?: string;
  /** Extra claims. */
  claims?: Record<string, unknown>;
}

export function mintJwt(options: MintOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload: Record<string, unknown> = { ...options.claims };
  if (options.role !== undefined) payload.role = options.role;
  if (options.email !== undefined) payload.email = options.email;
  let jwt = new SignJWT(payload).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setIssuedAt(now).setIssuer("supabase-demo");
  if (options.sub !== undefined) jwt = jwt.setSubject(options.sub);
  if (options.aud !== undefined && options.aud !== null) jwt = jwt.setAudience(options.aud);
  if (!options.omitExp) jwt = jwt.setExpirationTime(now + (options.expiresIn ?? 3600));
  return jwt.sign(new TextEncoder().encode(options.secret ?? testEnv().jwtSecret));
}

/** The anon API key (role anon, no audience, like `supabase status` prints). */
export const anonKey = (options: Omit<MintOptions, "role"> = {}) => mintJwt({ ...options, role: "anon" });

/** The service_role API key. */
export const serviceRoleKey = (options: Omit<MintOptions, "role"> = {}) =>
  mintJwt({ ...options, role: "service_role" });

/** A signed-in user's access token (role authenticated, aud authenticated, sub = user id). */
export const userToken = (userId: string, options: Omit<MintOptions, "role" | "sub"> = {}) =>
  mintJwt({ aud: "authenticated", email: `${userId.slice(0, 8)}@example.test`, ...options, role: "authenticated", sub: userId });
