import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  authenticate,
  createJwtVerifier,
  jwtVerifierConfig,
  jwtVerifierFromEnv,
  type JwtVerifier,
} from "../supabase/functions/_shared/auth.ts";
import { EnvError, loadEnv, type EnvSource } from "../supabase/functions/_shared/env.ts";
import { HttpError } from "../supabase/functions/_shared/http.ts";
import { testEnv } from "./helpers/env.ts";
import { anonKey, mintJwt, serviceRoleKey, userToken } from "./helpers/jwt.ts";

const USER_ID = "6f0c8e7a-3d2b-4c1a-9e8f-0a1b2c3d4e5f";

/** Resolves to the HttpError a promise rejects with (fails the test if it resolves or throws something else). */
async function rejection(promise: Promise<unknown>): Promise<HttpError> {
  const error = await promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(HttpError);
  return error as HttpError;
}

describe("JWT verification with the project secret", () => {
  let verify: JwtVerifier;
  beforeAll(() => {
    verify = createJwtVerifier({ secret: testEnv().jwtSecret, clockToleranceSeconds: 0 });
  });

  it("accepts a valid user token and returns its role, subject and claims", async () => {
    const verified = await verify(await userToken(USER_ID, { email: "ada@example.test" }));
    expect(verified.role).toBe("authenticated");
    expect(verified.subject).toBe(USER_ID);
    expect(verified.claims.email).toBe("ada@example.test");
    expect(verified.claims.aud).toBe("authenticated");
  });

  it("accepts the anon and service_role API keys, which carry no audience", async () => {
    expect((await verify(await anonKey())).role).toBe("anon");
    expect((await verify(await serviceRoleKey())).role).toBe("service_role");
  });

  it("rejects an expired token with 401 jwt_expired", async () => {
    const error = await rejection(verify(await userToken(USER_ID, { expiresIn: -60 })));
    expect(error.status).toBe(401);
    expect(error.code).toBe("jwt_expired");
  });

  it("rejects a token signed with another secret with 401 invalid_jwt", async () => {
    const forged = await userToken(USER_ID, { secret: "another-secret-that-is-at-least-32-characters" });
    const error = await rejection(verify(forged));
    expect(error.status).toBe(401);
    expect(error.code).toBe("invalid_jwt");
  });

  it("rejects a user token whose audience is not authenticated", async () => {
    const error = await rejection(verify(await userToken(USER_ID, { aud: "some-other-service" })));
    expect(error.status).toBe(401);
    expect(error.code).toBe("invalid_jwt");
    expect(error.message).toMatch(/audience/);
  });

  it("rejects a user token without an audience", async () => {
    const error = await rejection(verify(await userToken(USER_ID, { aud: null })));
    expect(error.code).toBe("invalid_jwt");
  });

  it("accepts a custom user audience when the caller asks for it", async () => {
    const token = await userToken(USER_ID, { aud: ["partner", "authenticated-partner"] });
    const verified = await verify(token, { userAudience: "authenticated-partner" });
    expect(verified.subject).toBe(USER_ID);
  });

  it("rejects a token without exp, which would never expire", async () => {
    const error = await rejection(verify(await userToken(USER_ID, { omitExp: true })));
    expect(error.code).toBe("invalid_jwt");
  });

  it("rejects a token with alg none", async () => {
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const unsigned = `${encode({ alg: "none", typ: "JWT" })}.${encode({ role: "service_role", exp })}.`;
    const error = await rejection(verify(unsigned));
    expect(error.status).toBe(401);
  });

  it("rejects garbage with 401 invalid_jwt", async () => {
    const error = await rejection(verify("not-a-jwt"));
    expect(error.status).toBe(401);
    expect(error.code).toBe("invalid_jwt");
  });

  it("rejects a token without a role claim", async () => {
    const error = await rejection(verify(await mintJwt({ sub: USER_ID })));
    expect(error.code).toBe("invalid_jwt");
  });

  it("rejects roles other than the database roles unless the caller accepts any", async () => {
    const token = await mintJwt({ role: "supabase_admin" });
    const error = await rejection(verify(token));
    expect(error.status).toBe(403);
    expect(error.code).toBe("role_not_allowed");
    expect((await verify(token, { roles: "any" })).role).toBe("supabase_admin");
  });

  it("answers 401 for the anon key and 403 for service_role where only users are allowed", async () => {
    const anon = await rejection(verify(await anonKey(), { roles: ["authenticated"] }));
    expect(anon.status).toBe(401);
    expect(anon.code).toBe("authentication_required");
    const service = await rejection(verify(await serviceRoleKey(), { roles: ["authenticated"] }));
    expect(service.status).toBe(403);
    expect(service.code).toBe("role_not_allowed");
  });
});

describe("authenticate(request)", () => {
  const verify = () => createJwtVerifier({ secret: testEnv().jwtSecret });
  const request = (headers: Record<string, string> = {}) => new Request("http://localhost/fn", { headers });

  it("rejects a request without a token with 401 missing_jwt", async () => {
    const error = await rejection(authenticate(request(), verify()));
    expect(error.status).toBe(401);
    expect(error.code).toBe("missing_jwt");
  });

  it("returns null for a missing token when the token is optional", async () => {
    await expect(authenticate(request(), verify(), { optional: true })).resolves.toBeNull();
  });

  it("rejects an Authorization header that is not a bearer token", async () => {
    const error = await rejection(authenticate(request({ authorization: "Basic dXNlcjpwYXNz" }), verify()));
    expect(error.status).toBe(401);
    expect(error.code).toBe("invalid_authorization_header");
  });

  it("verifies the bearer token against the requirements", async () => {
    const token = await userToken(USER_ID);
    const verified = await authenticate(request({ authorization: `Bearer ${token}` }), verify(), {
      roles: ["authenticated"],
    });
    expect(verified?.subject).toBe(USER_ID);
  });
});

describe("JWT verification with a remote JWKS", () => {
  let server: Server;
  let jwksUrl: string;
  let privateKey: CryptoKey;

  beforeAll(async () => {
    const pair = await generateKeyPair("ES256");
    privateKey = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: "test-key", alg: "ES256", use: "sig" };
    server = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/auth/v1/.well-known/jwks.json`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const signEs256 = (key: CryptoKey, aud = "authenticated") =>
    new SignJWT({ role: "authenticated" })
      .setProtectedHeader({ alg: "ES256", kid: "test-key" })
      .setSubject(USER_ID)
      .setAudience(aud)
      .setExpirationTime("1h")
      .sign(key);

  it("accepts a user token signed by a key of the set", async () => {
    const verify = createJwtVerifier({ jwksUrl });
    const verified = await verify(await signEs256(privateKey));
    expect(verified.subject).toBe(USER_ID);
  });

  it("rejects a token signed by a key outside the set", async () => {
    const verify = createJwtVerifier({ jwksUrl });
    const stranger = await generateKeyPair("ES256");
    const error = await rejection(verify(await signEs256(stranger.privateKey)));
    expect(error.status).toBe(401);
  });

  it("rejects HS256 tokens when no secret is configured", async () => {
    const verify = createJwtVerifier({ jwksUrl });
    const error = await rejection(verify(await anonKey()));
    expect(error.status).toBe(401);
    expect(error.code).toBe("invalid_jwt");
  });

  it("accepts both kinds when both a secret and a JWKS are configured", async () => {
    const verify = createJwtVerifier({ jwksUrl, secret: testEnv().jwtSecret });
    expect((await verify(await anonKey())).role).toBe("anon");
    expect((await verify(await signEs256(privateKey))).role).toBe("authenticated");
  });
});

/** An ES256 key pair and its public key as a JWKS entry, like Supabase's signing keys. */
async function es256Key(kid: string) {
  const pair = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(pair.publicKey)), kid, alg: "ES256", use: "sig" };
  const sign = (claims: Record<string, unknown> = {}) =>
    new SignJWT({ role: "authenticated", ...claims })
      .setProtectedHeader({ alg: "ES256", kid, typ: "JWT" })
      .setSubject(USER_ID)
      .setAudience("authenticated")
      .setExpirationTime("1h")
      .sign(pair.privateKey);
  return { jwk, sign };
}

/** The variables Supabase always provides, without any JWT verification key. */
const PLATFORM: EnvSource = {
  SUPABASE_URL: "https://abcdefghijklmnop.supabase.co",
  SUPABASE_ANON_KEY: "anon-key",
  SUPABASE_SERVICE_ROLE_KEY: "service-role-key",
  SUPABASE_DB_URL: "postgresql://postgres:postgres@db.abcdefghijklmnop.supabase.co:5432/postgres",
};

/** The EnvError loadEnv throws for `source` (fails the test if it does not throw one). */
function envError(source: EnvSource): EnvError {
  try {
    loadEnv(source);
  } catch (error) {
    expect(error).toBeInstanceOf(EnvError);
    return error as EnvError;
  }
  throw new Error("expected loadEnv to throw");
}

describe("JWT verification with an inline JWKS (SUPABASE_JWKS, as Supabase provides it)", () => {
  it("accepts a token signed by a key of the inline set, and rejects one signed by another key", async () => {
    const project = await es256Key("project-key");
    const stranger = await es256Key("project-key");
    const env = loadEnv({ ...PLATFORM, SUPABASE_JWKS: JSON.stringify({ keys: [project.jwk] }) });
    expect(env.jwt).toEqual({ secret: null, jwks: { keys: [project.jwk] }, jwksUrl: null });
    const verify = jwtVerifierFromEnv(env);

    const verified = await verify(await project.sign({ email: "ada@example.test" }), { roles: ["authenticated"] });
    expect(verified.subject).toBe(USER_ID);
    expect(verified.claims.email).toBe("ada@example.test");

    const error = await rejection(verify(await stranger.sign()));
    expect(error.status).toBe(401);
    expect(error.code).toBe("invalid_jwt");
  });

  it("accepts the bare-array form of the key set", async () => {
    const project = await es256Key("array-key");
    const env = loadEnv({ ...PLATFORM, SUPABASE_JWKS: JSON.stringify([project.jwk]) });
    expect((await jwtVerifierFromEnv(env)(await project.sign())).role).toBe("authenticated");
  });

  it("rejects HS256 tokens when no secret is set, with 401 invalid_jwt", async () => {
    const project = await es256Key("project-key");
    const verify = jwtVerifierFromEnv(loadEnv({ ...PLATFORM, SUPABASE_JWKS: JSON.stringify({ keys: [project.jwk] }) }));
    const error = await rejection(verify(await anonKey()));
    expect(error.status).toBe(401);
    expect(error.code).toBe("invalid_jwt");
  });

  it("accepts HS256 tokens via JWT_SECRET and ES256 ones via the JWKS when both are set (key migration)", async () => {
    const project = await es256Key("project-key");
    const env = loadEnv({
      ...PLATFORM,
      JWT_SECRET: testEnv().jwtSecret,
      SUPABASE_JWKS: JSON.stringify({ keys: [project.jwk] }),
    });
    const verify = jwtVerifierFromEnv(env);
    expect((await verify(await serviceRoleKey())).role).toBe("service_role");
    expect((await verify(await userToken(USER_ID))).subject).toBe(USER_ID);
    expect((await verify(await project.sign())).subject).toBe(USER_ID);
    const forged = await rejection(verify(await anonKey({ secret: "another-secret-that-is-at-least-32-characters" })));
    expect(forged.code).toBe("invalid_jwt");
  });

  it("takes the inline set over SUPABASE_JWKS_URL, so nothing is fetched", () => {
    const env = loadEnv({
      ...PLATFORM,
      SUPABASE_JWKS: '{"keys":[]}',
      SUPABASE_JWKS_URL: "https://elsewhere.example/jwks.json",
      JWT_SECRET: testEnv().jwtSecret,
    });
    expect(jwtVerifierConfig(env)).toEqual({ secret: testEnv().jwtSecret, jwks: { keys: [] } });
  });
});

describe("the HS256 secret's names", () => {
  it("accepts JWT_SECRET (settable with `supabase secrets set`) and verifies HS256 tokens with it", async () => {
    const env = loadEnv({ ...PLATFORM, JWT_SECRET: testEnv().jwtSecret });
    expect(env.jwt).toEqual({ secret: testEnv().jwtSecret, jwks: null, jwksUrl: null });
    const verify = jwtVerifierFromEnv(env);
    expect((await verify(await anonKey())).role).toBe("anon");
    expect((await verify(await userToken(USER_ID))).subject).toBe(USER_ID);
  });

  it("still accepts SUPABASE_JWT_SECRET, the local platform's name", () => {
    const env = loadEnv({ ...PLATFORM, SUPABASE_JWT_SECRET: testEnv().jwtSecret });
    expect(env.jwt.secret).toBe(testEnv().jwtSecret);
  });

  it("accepts both names with the same secret, and fails fast when they differ", () => {
    const secret = testEnv().jwtSecret;
    expect(loadEnv({ ...PLATFORM, JWT_SECRET: secret, SUPABASE_JWT_SECRET: secret }).jwt.secret).toBe(secret);
    const error = envError({ ...PLATFORM, JWT_SECRET: secret, SUPABASE_JWT_SECRET: `${secret}-other` });
    expect(error.message).toContain("JWT_SECRET and SUPABASE_JWT_SECRET differ");
    expect(error.message).not.toContain(secret);
  });

  it("rejects a JWT_SECRET shorter than 32 characters without echoing it", () => {
    const error = envError({ ...PLATFORM, JWT_SECRET: "short-secret" });
    expect(error.message).toContain("JWT_SECRET must be at least 32 characters");
    expect(error.message).not.toContain("short-secret");
  });
});

describe("the remote JWKS URL", () => {
  it("is derived from SUPABASE_URL when neither a secret nor a JWKS is set", () => {
    const env = loadEnv(PLATFORM);
    expect(env.jwt).toEqual({
      secret: null,
      jwks: null,
      jwksUrl: "https://abcdefghijklmnop.supabase.co/auth/v1/.well-known/jwks.json",
    });
    expect(jwtVerifierConfig(env)).toEqual({
      jwksUrl: "https://abcdefghijklmnop.supabase.co/auth/v1/.well-known/jwks.json",
    });
  });

  it("ignores a trailing slash of SUPABASE_URL", () => {
    const env = loadEnv({ ...PLATFORM, SUPABASE_URL: "http://127.0.0.1:54321/" });
    expect(env.jwt.jwksUrl).toBe("http://127.0.0.1:54321/auth/v1/.well-known/jwks.json");
  });

  it("is SUPABASE_JWKS_URL when set", () => {
    const env = loadEnv({ ...PLATFORM, SUPABASE_JWKS_URL: "https://auth.example/keys.json" });
    expect(jwtVerifierConfig(env)).toEqual({ jwksUrl: "https://auth.example/keys.json" });
  });

  it("is not used when a secret is set and no JWKS is given (an HS256-only project fetches nothing)", () => {
    const env = loadEnv({ ...PLATFORM, JWT_SECRET: testEnv().jwtSecret });
    expect(jwtVerifierConfig(env)).toEqual({ secret: testEnv().jwtSecret });
  });
});

describe("loadEnv fails fast without a way to verify tokens", () => {
  it("when neither a secret, a JWKS, a JWKS URL nor a usable SUPABASE_URL is set", () => {
    const error = envError({ ...PLATFORM, SUPABASE_URL: undefined });
    expect(error.problems).toContain("SUPABASE_URL is missing");
    expect(error.message).toContain("JWT_SECRET or SUPABASE_JWT_SECRET is missing");
    expect(error.message).toMatch(/SUPABASE_JWKS, SUPABASE_JWKS_URL/);
  });

  it("when the variables are set but empty", () => {
    const error = envError({
      ...PLATFORM,
      SUPABASE_URL: "",
      JWT_SECRET: "",
      SUPABASE_JWT_SECRET: "",
      SUPABASE_JWKS: "",
      SUPABASE_JWKS_URL: "",
    });
    expect(error.message).toContain("JWT_SECRET or SUPABASE_JWT_SECRET is missing");
  });

  it("when the inline JWKS has no keys and no secret is set", () => {
    const error = envError({ ...PLATFORM, SUPABASE_JWKS: '{"keys":[]}' });
    expect(error.message).toContain("SUPABASE_JWKS has no keys and JWT_SECRET is not set");
  });

  it("when SUPABASE_JWKS is not a key set, without echoing it", () => {
    for (const value of ["not json at all", '{"keys":"nope"}', '{"keys":[{"x":"secretish"}]}']) {
      const error = envError({ ...PLATFORM, SUPABASE_JWKS: value });
      expect(error.message).toContain("SUPABASE_JWKS must be a JSON Web Key Set");
      expect(error.message).not.toContain(value);
    }
  });

  it("createJwtVerifier refuses a config without any key", () => {
    expect(() => createJwtVerifier({})).toThrow(/needs a secret, a JWKS or a JWKS URL/);
  });
});
