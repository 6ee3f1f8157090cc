// POST /webhook-dispatcher: delivers the due webhook deliveries (dispatcher.ts) until none is due or the time budget
// is spent, and answers with the counts. Called every minute by pg_cron through pg_net on Supabase
// (private.schedule_edge_functions()), locally by `npm start`'s loop (scripts/start.sh). Only the service role may
// call it: the gateway checks the JWT (verify_jwt), this handler checks that its role is service_role.
//   200 {claimed, delivered, failed, recorded}   401 no or invalid JWT   403 not the service role   405 not POST
// Environment: WEBHOOK_ALLOW_PRIVATE_TARGETS (true only in local development and tests), WEBHOOK_TIMEOUT_MS (10000),
// WEBHOOK_BATCH_SIZE (50), WEBHOOK_CONCURRENCY (8), WEBHOOK_BUDGET_MS (50000: below pg_net's 55 s timeout).
import { type Kysely } from "kysely";
import { z } from "zod";
import { authenticate, jwtVerifierFromEnv } from "../_shared/auth.ts";
import { createDatabase, type UntypedDatabase } from "../_shared/db.ts";
import { parseEnv } from "../_shared/env.ts";
import { createFunctionHandler, type FunctionDeps, type FunctionHandler } from "../_shared/function.ts";
import { assertMethod, forbidden, jsonResponse } from "../_shared/http.ts";
import type { AddressLookup } from "../_shared/ssrf.ts";
import { drain } from "./dispatcher.ts";

const positiveInt = (fallback: number, max: number) =>
  z.coerce.number({ error: "must be a whole number" }).int({ error: "must be a whole number" }).min(1).max(max)
    .default(fallback);

export const dispatcherEnvSchema = z.object({
  WEBHOOK_ALLOW_PRIVATE_TARGETS: z.enum(["true", "false"], { error: "must be true or false" }).default("false"),
  WEBHOOK_TIMEOUT_MS: positiveInt(10_000, 60_000),
  WEBHOOK_BATCH_SIZE: positiveInt(50, 1000),
  WEBHOOK_CONCURRENCY: positiveInt(8, 100),
  WEBHOOK_BUDGET_MS: positiveInt(50_000, 300_000),
});

export interface WebhookDispatcherDeps extends FunctionDeps {
  /** Database; by default a pool on SUPABASE_DB_URL owned (and closed) by the handler. */
  db?: Kysely<UntypedDatabase>;
  lookup?: AddressLookup;
}

export function createHandler(deps: WebhookDispatcherDeps): FunctionHandler {
  const config = parseEnv(dispatcherEnvSchema, deps.envSource);
  const verify = jwtVerifierFromEnv(deps.env);
  const ownsDb = deps.db === undefined;
  const db = deps.db ?? createDatabase(deps.env.SUPABASE_DB_URL, { max: 2, applicationName: "webhook-dispatcher" });

  return createFunctionHandler(
    { name: "webhook-dispatcher", logger: deps.logger, close: () => (ownsDb ? db.destroy() : Promise.resolve()) },
    async (request, { logger }) => {
      assertMethod(request, ["POST"]);
      const caller = await authenticate(request, verify, { roles: "any" });
      if (caller?.role !== "service_role") throw forbidden("only the service role may run the dispatcher", null, "service_role_required");
      const summary = await drain({
        db,
        allowPrivateTargets: config.WEBHOOK_ALLOW_PRIVATE_TARGETS === "true",
        timeoutMs: config.WEBHOOK_TIMEOUT_MS,
        batchSize: config.WEBHOOK_BATCH_SIZE,
        concurrency: config.WEBHOOK_CONCURRENCY,
        budgetMs: config.WEBHOOK_BUDGET_MS,
        ...(deps.lookup ? { lookup: deps.lookup } : {}),
      });
      logger.info("webhook dispatch", { ...summary });
      return jsonResponse(summary);
    },
  );
}
