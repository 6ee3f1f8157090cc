// Local stand-in for Supabase's edge gateway: serves every function under /functions/v1/<name>.
// Run from the repository root:
//   npx deno run --allow-net --allow-env --allow-read --allow-sys scripts/functions-gateway.ts [--config FILE]
// See `--help` for the environment it reads.
import { parse as parseToml } from "smol-toml";
import { SignJWT } from "jose";
import { bearerToken, jwtVerifierFromEnv, type JwtVerifier } from "../supabase/functions/_shared/auth.ts";
import { EnvError, type EnvSource } from "../supabase/functions/_shared/env.ts";
import { createFunctionDeps, type CreateHandler, type FunctionHandler } from "../supabase/functions/_shared/function.ts";
import { installProcessGuards } from "../supabase/functions/_shared/guards.ts";
import {
  CORRELATION_HEADER,
  correlationIdFor,
  errorResponse,
  HttpError,
  httpErrorResponse,
  notFound,
  preflightResponse,
  serviceUnavailable,
  unauthorized,
  withHeaders,
} from "../supabase/functions/_shared/http.ts";
import { createLogger, describeError, type Logger } from "../supabase/functions/_shared/log.ts";

const HELP = `functions-gateway: serve supabase/functions/* like Supabase's edge gateway

usage: deno run --allow-net --allow-env --allow-read --allow-sys scripts/functions-gateway.ts [--config FILE]

  --config FILE   Supabase config to read verify_jwt from (default supabase/config.toml)
  --help          show this help

Every folder of supabase/functions not starting with "_" that has index.ts and handler.ts is served at
http://127.0.0.1:$FUNCTIONS_PORT/functions/v1/<name>[/...]; the handler sees the path /<name>[/...].
[functions.<name>] verify_jwt (default true) requires a valid project JWT (anon key included).

environment:
  FUNCTIONS_PORT              port to listen on (default 54321; 0 picks a free one)
  SUPABASE_DB_URL             database the functions use (required)
  SUPABASE_JWT_SECRET         HS256 project secret (JWT_SECRET is accepted too; the same value if both)
  SUPABASE_JWKS               inline JWKS ({"keys":[...]}) for asymmetric project keys (optional)
  SUPABASE_JWKS_URL           remote JWKS for asymmetric project keys (optional; SUPABASE_JWKS wins)
                              Without a secret, SUPABASE_JWKS or SUPABASE_JWKS_URL, tokens are checked
                              against $SUPABASE_URL/auth/v1/.well-known/jwks.json.
  SUPABASE_URL                default http://127.0.0.1:<[api] port of the config>
  SUPABASE_ANON_KEY           default: minted from the HS256 secret (role anon)
  SUPABASE_SERVICE_ROLE_KEY   default: minted from the HS256 secret (role service_role)

Prints "functions gateway listening on http://127.0.0.1:PORT" when ready; logs JSON lines.`;

const ROUTE_PREFIX = "/functions/v1/";

interface ServedFunction {
  name: string;
  verifyJwt: boolean;
  /** Null when createHandler threw (e.g. the function's own secret is missing): answered with 503. */
  handler: FunctionHandler | null;
}

function fail(message: string): never {
  console.error(`functions-gateway: ${message}`);
  Deno.exit(1);
}

function parseArgs(args: string[], root: URL): { configPath: string } {
  let configPath = new URL("supabase/config.toml", root).pathname;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--help" || arg === "-h") {
      console.log(HELP);
      Deno.exit(0);
    } else if (arg === "--config") {
      const value = args[++i];
      if (!value) fail("--config needs a file");
      configPath = value;
    } else if (arg?.startsWith("--config=")) {
      configPath = arg.slice("--config=".length);
    } else {
      fail(`unknown argument ${arg} (see --help)`);
    }
  }
  return { configPath };
}

type TomlTable = Record<string, unknown>;

function isTable(value: unknown): value is TomlTable {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

async function readConfig(path: string): Promise<TomlTable> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    fail(`cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  try {
    return parseToml(text) as TomlTable;
  } catch (error) {
    fail(`${path} is not valid TOML: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function verifyJwtSetting(config: TomlTable, name: string, configPath: string): boolean {
  const functions = config.functions;
  const entry = isTable(functions) ? functions[name] : undefined;
  const value = isTable(entry) ? entry.verify_jwt : undefined;
  if (value === undefined) return true;
  if (typeof value !== "boolean") fail(`${configPath}: [functions.${name}] verify_jwt must be true or false`);
  return value;
}

function apiPort(config: TomlTable): number {
  const api = config.api;
  const port = isTable(api) ? api.port : undefined;
  return typeof port === "number" ? port : 54321;
}

async function isFile(path: URL): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

async function discoverFunctions(functionsDir: URL): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(functionsDir)) {
    if (!entry.isDirectory || entry.name.startsWith("_") || entry.name.startsWith(".")) continue;
    const dir = new URL(`${entry.name}/`, functionsDir);
    if ((await isFile(new URL("index.ts", dir))) && (await isFile(new URL("handler.ts", dir)))) {
      names.push(entry.name);
    }
  }
  return names.sort();
}

/** Fills the variables Supabase's runtime injects, when the local environment does not set them. */
async function platformEnv(source: EnvSource, config: TomlTable): Promise<Record<string, string | undefined>> {
  const env: Record<string, string | undefined> = { ...source };
  env.SUPABASE_URL ||= `http://127.0.0.1:${apiPort(config)}`;
  // Same precedence as _shared/env.ts; a mismatch between the two names is reported by loadEnv.
  const secret = env.JWT_SECRET || env.SUPABASE_JWT_SECRET;
  if (secret && secret.length >= 32) {
    const key = new TextEncoder().encode(secret);
    const mint = (role: string) =>
      new SignJWT({ role })
        .setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .setIssuer("supabase-demo")
        .setIssuedAt()
        .setExpirationTime("10y")
        .sign(key);
    env.SUPABASE_ANON_KEY ||= await mint("anon");
    env.SUPABASE_SERVICE_ROLE_KEY ||= await mint("service_role");
  }
  return env;
}

function routeOf(pathname: string): { name: string; rest: string } | null {
  if (!pathname.startsWith(ROUTE_PREFIX)) return null;
  const remainder = pathname.slice(ROUTE_PREFIX.length);
  const slash = remainder.indexOf("/");
  const name = slash === -1 ? remainder : remainder.slice(0, slash);
  if (!name) return null;
  return { name, rest: slash === -1 ? "" : remainder.slice(slash) };
}

function forwardedRequest(request: Request, name: string, rest: string, correlationId: string): Request {
  const url = new URL(request.url);
  url.pathname = `/${name}${rest}`;
  const headers = new Headers(request.headers);
  headers.set(CORRELATION_HEADER, correlationId);
  const hasBody = request.method !== "GET" && request.method !== "HEAD";
  return new Request(url, {
    method: request.method,
    headers,
    body: hasBody ? request.body : null,
    redirect: "manual",
  });
}

function createGateway(functions: Map<string, ServedFunction>, verifyJwt: JwtVerifier, logger: Logger) {
  return async (request: Request): Promise<Response> => {
    const started = performance.now();
    const correlationId = correlationIdFor(request);
    const url = new URL(request.url);
    const route = routeOf(url.pathname);
    const served = route ? functions.get(route.name) : undefined;
    const log = logger.child({ correlation_id: correlationId });

    let response: Response;
    let rejection: string | null = null;
    try {
      if (!route || !served) {
        throw notFound(route ? `function ${route.name} does not exist` : "no such route", null, "function_not_found");
      }
      if (request.method === "OPTIONS") {
        response = preflightResponse();
      } else {
        if (served.verifyJwt) {
          const token = bearerToken(request.headers);
          if (token === null) throw unauthorized("missing Authorization: Bearer <jwt>", null, "missing_jwt");
          // Like Supabase's gateway: proves the token was issued for this project, whatever its role.
          await verifyJwt(token, { roles: "any" });
        }
        if (!served.handler) {
          throw serviceUnavailable(`function ${served.name} failed to start; see the gateway log`, null, "boot_error");
        }
        response = await served.handler(forwardedRequest(request, served.name, route.rest, correlationId));
      }
    } catch (error) {
      // Rejections are reported by the one log line below; only unexpected errors log on their own.
      rejection = error instanceof HttpError ? error.code : "internal_error";
      response = error instanceof HttpError
        ? httpErrorResponse(error)
        : errorResponse(error, { correlationId, logger: log.child({ function: served?.name ?? null }) });
    }

    log.info("gateway request", {
      method: request.method,
      path: url.pathname,
      function: served?.name ?? null,
      status: response.status,
      ...(rejection ? { error_code: rejection } : {}),
      duration_ms: Math.round(performance.now() - started),
    });
    return withHeaders(response, { [CORRELATION_HEADER]: correlationId });
  };
}

async function main(): Promise<void> {
  const root = new URL("../", import.meta.url);
  const { configPath } = parseArgs(Deno.args, root);
  const functionsDir = new URL("supabase/functions/", root);
  const config = await readConfig(configPath);
  const logger = createLogger({ fields: { service: "functions-gateway" } });
  // One function's stray error (or the database driver's) must not end the process that serves all of them.
  installProcessGuards(logger);

  const portText = Deno.env.get("FUNCTIONS_PORT") ?? "54321";
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) fail(`FUNCTIONS_PORT must be a port number, got "${portText}"`);

  const envSource = await platformEnv(Deno.env.toObject(), config);
  let deps;
  try {
    deps = createFunctionDeps(envSource, logger);
  } catch (error) {
    if (error instanceof EnvError) fail(error.message);
    throw error;
  }
  const verifier = jwtVerifierFromEnv(deps.env);

  // Like Supabase, a function that fails to start (typically a missing secret of its own) answers 503
  // while the others keep working; problems shared by all (the platform variables) stop the gateway above.
  const functions = new Map<string, ServedFunction>();
  for (const name of await discoverFunctions(functionsDir)) {
    const module = await import(new URL(`${name}/handler.ts`, functionsDir).href) as { createHandler?: CreateHandler };
    if (typeof module.createHandler !== "function") fail(`supabase/functions/${name}/handler.ts does not export createHandler`);
    let handler: FunctionHandler | null = null;
    try {
      handler = module.createHandler(deps);
    } catch (error) {
      logger.error("function failed to start", { function: name, error: describeError(error) });
    }
    functions.set(name, { name, verifyJwt: verifyJwtSetting(config, name, configPath), handler });
  }
  logger.info("functions loaded", {
    functions: [...functions.values()].map((fn) => ({ name: fn.name, verify_jwt: fn.verifyJwt, started: fn.handler !== null })),
  });

  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: "127.0.0.1",
      port,
      onListen: (address) => console.log(`functions gateway listening on http://127.0.0.1:${address.port}`),
    }, createGateway(functions, verifier, logger));
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) fail(`port ${port} is already in use (set FUNCTIONS_PORT)`);
    throw error;
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info("shutting down", { signal });
    // Do not let a stuck connection keep the process alive.
    const forced = setTimeout(() => Deno.exit(0), 5000);
    await server.shutdown();
    await Promise.allSettled([...functions.values()].map((fn) => fn.handler?.close()));
    clearTimeout(forced);
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => void stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => void stop("SIGTERM"));
}

if (import.meta.main) {
  await main();
}
