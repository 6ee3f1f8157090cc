// JWT verification with jose. HS256 tokens are checked against the project secret; asymmetric tokens
// (ES256/RS256, Supabase's signing keys) against the project's JWKS, inline (SUPABASE_JWKS) or remote,
// when one is configured. Every token must carry `exp` and not be expired. Callers state what they
// require per call (which roles, whether the token is optional) instead of re-implementing checks.
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  type JSONWebKeySet,
  jwtVerify,
  type JWTPayload,
} from "jose";
import type { Env } from "./env.ts";
import { HttpError, serviceUnavailable, unauthorized } from "./http.ts";

/** The database roles a request may run as (what PostgREST allows to be switched to). */
export const DATABASE_ROLES = ["anon", "authenticated", "service_role"] as const;
export type DatabaseRole = (typeof DATABASE_ROLES)[number];

export function isDatabaseRole(value: unknown): value is DatabaseRole {
  return typeof value === "string" && (DATABASE_ROLES as readonly string[]).includes(value);
}

/** Claims of a Supabase token; anything else the issuer adds is kept as is. */
export interface JwtClaims extends JWTPayload {
  role?: string;
  email?: string;
  aal?: string;
  session_id?: string;
  app_metadata?: Record<string, unknown>;
  user_metadata?: Record<string, unknown>;
  [claim: string]: unknown;
}

export interface VerifiedJwt {
  /** The `role` claim (validated against the requirements). */
  role: string;
  /** The `sub` claim: the auth.users id for user tokens, null for API keys. */
  subject: string | null;
  claims: JwtClaims;
}

export interface JwtRequirements {
  /**
   * Roles accepted. Default: the three database roles. "any" accepts any role claim (the gateway's
   * verify_jwt, which only proves the token was issued for this project).
   */
  roles?: readonly string[] | "any";
  /** Audience user tokens (role "authenticated") must carry. Default "authenticated". */
  userAudience?: string;
}

export type JwtVerifier = (token: string, requirements?: JwtRequirements) => Promise<VerifiedJwt>;

export interface JwtVerifierConfig {
  /** HS256 project secret (JWT_SECRET / SUPABASE_JWT_SECRET). */
  secret?: string;
  /** Inline JSON Web Key Set (SUPABASE_JWKS), for asymmetric signing keys. Excludes `jwksUrl`. */
  jwks?: JSONWebKeySet;
  /** Remote JSON Web Key Set (SUPABASE_JWKS_URL or derived from SUPABASE_URL). Excludes `jwks`. */
  jwksUrl?: string | URL;
  /** Allowed clock skew for exp/nbf/iat, in seconds. Default 5 (tests pass 0). */
  clockToleranceSeconds?: number;
  /** Clock, for tests. */
  now?: () => Date;
}

const ASYMMETRIC_ALGORITHMS = ["ES256", "RS256"];

export function createJwtVerifier(config: JwtVerifierConfig): JwtVerifier {
  if (!config.secret && !config.jwks && !config.jwksUrl) {
    throw new Error("createJwtVerifier needs a secret, a JWKS or a JWKS URL");
  }
  if (config.jwks && config.jwksUrl) throw new Error("createJwtVerifier takes a JWKS or a JWKS URL, not both");
  const secretKey = config.secret ? new TextEncoder().encode(config.secret) : null;
  const jwks = config.jwks
    ? createLocalJWKSet(config.jwks)
    : config.jwksUrl
    ? createRemoteJWKSet(new URL(config.jwksUrl), { timeoutDuration: 3000 })
    : null;
  const clockTolerance = config.clockToleranceSeconds ?? 5;

  return async (token, requirements = {}) => {
    let algorithm: string | undefined;
    try {
      algorithm = decodeProtectedHeader(token).alg;
    } catch {
      throw unauthorized("malformed JWT", null, "invalid_jwt");
    }

    let payload: JwtClaims;
    try {
      const options = {
        clockTolerance,
        requiredClaims: ["exp"],
        ...(config.now ? { currentDate: config.now() } : {}),
      };
      if (algorithm === "HS256") {
        if (!secretKey) throw unauthorized("HS256 tokens are not accepted here", null, "invalid_jwt");
        payload = (await jwtVerify<JwtClaims>(token, secretKey, { ...options, algorithms: ["HS256"] })).payload;
      } else if (jwks) {
        payload = (await jwtVerify<JwtClaims>(token, jwks, { ...options, algorithms: ASYMMETRIC_ALGORITHMS })).payload;
      } else {
        throw unauthorized("JWT algorithm is not accepted", null, "invalid_jwt");
      }
    } catch (error) {
      throw toHttpError(error);
    }

    return checkRequirements(payload, requirements);
  };
}

/** What `jwtVerifierFromEnv` builds its verifier from: the keys `loadEnv` resolved (see _shared/env.ts). */
export function jwtVerifierConfig(env: Pick<Env, "jwt">): JwtVerifierConfig {
  const { secret, jwks, jwksUrl } = env.jwt;
  return {
    ...(secret !== null ? { secret } : {}),
    ...(jwks !== null ? { jwks } : {}),
    ...(jwksUrl !== null ? { jwksUrl } : {}),
  };
}

/** The verifier for a function's environment (secret and/or JWKS). Create once, reuse per request. */
export function jwtVerifierFromEnv(env: Pick<Env, "jwt">): JwtVerifier {
  return createJwtVerifier(jwtVerifierConfig(env));
}

function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof errors.JWTExpired) return unauthorized("JWT has expired", null, "jwt_expired");
  if (error instanceof errors.JWKSTimeout) {
    return serviceUnavailable("signing keys could not be fetched", null, "jwks_unavailable");
  }
  if (error instanceof errors.JOSEError) return unauthorized("JWT is invalid", null, "invalid_jwt");
  // Anything else (the JWKS endpoint failing, ...) is our problem, not the caller's.
  return serviceUnavailable("the token could not be verified right now", null, "jwt_verification_unavailable");
}

function checkRequirements(claims: JwtClaims, requirements: JwtRequirements): VerifiedJwt {
  const role = claims.role;
  if (typeof role !== "string" || role === "") throw unauthorized("JWT has no role claim", null, "invalid_jwt");

  const accepted = requirements.roles ?? DATABASE_ROLES;
  if (accepted !== "any" && !accepted.includes(role)) {
    // An API key where a signed-in user is needed is an authentication problem, not a permission one.
    if (role === "anon") throw unauthorized("a signed-in user is required", null, "authentication_required");
    throw new HttpError(403, "role_not_allowed", `role ${role} may not call this endpoint`, {
      details: { allowed: accepted },
    });
  }

  if (role === "authenticated") {
    const expected = requirements.userAudience ?? "authenticated";
    const audiences = typeof claims.aud === "string" ? [claims.aud] : claims.aud ?? [];
    if (!audiences.includes(expected)) throw unauthorized("JWT audience is not accepted", null, "invalid_jwt");
    if (typeof claims.sub !== "string" || claims.sub === "") {
      throw unauthorized("user JWT has no subject", null, "invalid_jwt");
    }
  }

  return { role, subject: typeof claims.sub === "string" ? claims.sub : null, claims };
}

/** The token of an `Authorization: Bearer <token>` header, or null when there is none. */
export function bearerToken(headers: Headers): string | null {
  const value = headers.get("authorization");
  if (!value) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(value);
  if (!match?.[1]) throw unauthorized("Authorization header must be `Bearer <jwt>`", null, "invalid_authorization_header");
  return match[1];
}

/**
 * Verifies the request's bearer token against `requirements`.
 * Without a token: 401, or `null` when `optional` is set (the caller then acts as anon).
 */
export async function authenticate(
  request: Request,
  verify: JwtVerifier,
  requirements: JwtRequirements & { optional?: boolean } = {},
): Promise<VerifiedJwt | null> {
  const token = bearerToken(request.headers);
  if (token === null) {
    if (requirements.optional) return null;
    throw unauthorized("missing Authorization: Bearer <jwt>", null, "missing_jwt");
  }
  return await verify(token, requirements);
}
