// POST /workflow-worker: executes the due workflow runs (worker.ts) in batches of WORKFLOW_BATCH_SIZE until none is
// due or the time budget is spent, and answers with the counts. Called every minute by pg_cron through pg_net on
// Supabase (private.schedule_edge_functions()), locally by `npm start`'s loop (scripts/start.sh). Only the service
// role may call it: the gateway checks the JWT (verify_jwt), this handler checks that its role is service_role.
//   200 {claimed, completed, retrying, failed, lease_lost}   401 no or invalid JWT   403 not the service role   405 not POST
// Environment: WORKFLOW_ALLOW_PRIVATE_TARGETS (true only in local development and tests: AI base URLs and
// http_request targets on this machine), WORKFLOW_BATCH_SIZE (10), WORKFLOW_LEASE_SECONDS (300),
// WORKFLOW_HTTP_TIMEOUT_MS (30000), WORKFLOW_BUDGET_MS (50000: below pg_net's 55 s timeout).
import { type Kysely } from "kysely";
import { z } from "zod";
import { authenticate, jwtVerifierFromEnv } from "../_shared/auth.ts";
import { createDatabase, type UntypedDatabase } from "../_shared/db.ts";
import { parseEnv } from "../_shared/env.ts";
import { createFunctionHandler, type FunctionDeps, type FunctionHandler } from "../_shared/function.ts";
import { assertMethod, forbidden, jsonResponse } from "../_shared/http.ts";
import type { AddressLookup } from "../_shared/ssrf.ts";
import { drain } from "./worker.ts";

const positiveInt = (fallback: number, max: number) =>
  z.coerce.number({ error: "must be a whole number" }).int({ error: "must be a whole number" }).min(1).max(max)
    .default(fallback);

export const workerEnvSchema = z.object({
  WORKFLOW_ALLOW_PRIVATE_TARGETS: z.enum(["true", "false"], { error: "must be true or false" }).default("false"),
  WORKFLOW_BATCH_SIZE: positiveInt(10, 1000),
  WORKFLOW_LEASE_SECONDS: positiveInt(300, 86_400),
  WORKFLOW_HTTP_TIMEOUT_MS: positiveInt(30_000, 300_000),
  WORKFLOW_BUDGET_MS: positiveInt(50_000, 300_000),
});

export interface WorkflowWorkerDeps extends FunctionDeps {
  /** Database; by default a pool on SUPABASE_DB_URL owned (and closed) by the handler. */
  db?: Kysely<UntypedDatabase>;
  lookup?: AddressLookup;
}

export function createHandler(deps: WorkflowWorkerDeps): FunctionHandler {
  const config = parseEnv(workerEnvSchema, deps.envSource);
  const verify = jwtVerifierFromEnv(deps.env);
  const ownsDb = deps.db === undefined;
  // One connection per run of a batch: the batch's runs end at the same time.
  const db = deps.db ?? createDatabase(deps.env.SUPABASE_DB_URL, { max: Math.min(config.WORKFLOW_BATCH_SIZE, 10), applicationName: "workflow-worker" });
  const workerId = `workflow-worker:${crypto.randomUUID().slice(0, 8)}`;

  return createFunctionHandler(
    { name: "workflow-worker", logger: deps.logger, close: () => (ownsDb ? db.destroy() : Promise.resolve()) },
    async (request, { logger }) => {
      assertMethod(request, ["POST"]);
      const caller = await authenticate(request, verify, { roles: "any" });
      if (caller?.role !== "service_role") throw forbidden("only the service role may run the workflow worker", null, "service_role_required");
      const summary = await drain({
        db,
        workerId,
        allowPrivateTargets: config.WORKFLOW_ALLOW_PRIVATE_TARGETS === "true",
        batchSize: config.WORKFLOW_BATCH_SIZE,
        leaseSeconds: config.WORKFLOW_LEASE_SECONDS,
        httpTimeoutMs: config.WORKFLOW_HTTP_TIMEOUT_MS,
        budgetMs: config.WORKFLOW_BUDGET_MS,
        ...(deps.lookup ? { lookup: deps.lookup } : {}),
      });
      logger.info("workflow runs", { worker_id: workerId, ...summary });
      return jsonResponse(summary);
    },
  );
}
