import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { authenticate, createJwtVerifier, type JwtVerifier } from "../supabase/functions/_shared/auth.ts";
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
