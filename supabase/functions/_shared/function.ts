// How a function is built, so the same code runs on Supabase, under the local gateway and in vitest:
//
//   supabase/functions/<name>/handler.ts   export function createHandler(deps: FunctionDeps): FunctionHandler
//                                          No Deno globals: everything it needs arrives in `deps`.
//                                          Build it with `createFunctionHandler(...)` below, which answers
//                                          CORS preflight, assigns the correlation id, turns thrown errors
//                                          into the error shape and logs one line per request.
//   supabase/functions/<name>/index.ts     Deno.serve(createHandler(bootDeps()))   (_shared/boot.ts)
//
// The gateway (scripts/functions-gateway.ts) imports every handler.ts and calls `createHandler` with deps
// it builds from its own environment; tests call it with whatever deps they need.
import { loadEnv, type Env, type EnvSource } from "./env.ts";
import {
  CORRELATION_HEADER,
  correlationIdFor,
  errorResponse,
  preflightResponse,
  withHeaders,
} from "./http.ts";
import { createLogger, type Logger } from "./log.ts";

export interface FunctionDeps {
  /** Platform variables, already validated. */
  env: Env;
  /** The raw environment, for variables only one function needs (validate them with `parseEnv`). */
  envSource: EnvSource;
  logger: Logger;
}

/** A request handler plus `close()`, which releases what it holds (database pools). */
export interface FunctionHandler {
  (request: Request): Promise<Response>;
  close(): Promise<void>;
}

/** Validates the platform environment (throws EnvError naming every problem) and builds the deps. */
export function createFunctionDeps(envSource: EnvSource, logger: Logger = createLogger()): FunctionDeps {
  return { env: loadEnv(envSource), envSource, logger };
}

export type CreateHandler = (deps: FunctionDeps) => FunctionHandler;

export interface RouteContext {
  correlationId: string;
  /** Logger whose lines carry the function name and correlation id. */
  logger: Logger;
}

export type Route = (request: Request, context: RouteContext) => Promise<Response>;

export function createFunctionHandler(
  options: { name: string; logger: Logger; close?: () => Promise<void> },
  route: Route,
): FunctionHandler {
  const handler = async (request: Request): Promise<Response> => {
    const started = performance.now();
    const correlationId = correlationIdFor(request);
    const logger = options.logger.child({ function: options.name, correlation_id: correlationId });

    let response: Response;
    if (request.method === "OPTIONS") {
      response = preflightResponse();
    } else {
      try {
        response = await route(request, { correlationId, logger });
      } catch (error) {
        response = errorResponse(error, { correlationId, logger });
      }
    }

    logger.info("request", {
      method: request.method,
      path: new URL(request.url).pathname,
      status: response.status,
      duration_ms: Math.round(performance.now() - started),
    });
    return withHeaders(response, { [CORRELATION_HEADER]: correlationId });
  };
  return Object.assign(handler, { close: options.close ?? (() => Promise.resolve()) });
}
