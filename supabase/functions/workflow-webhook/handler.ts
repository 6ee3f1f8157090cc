// POST /workflow-webhook/<workflow_id>: starts a webhook-triggered workflow. The request is a Standard Webhooks
// message signed with that workflow's secret (set_workflow_webhook_secret(); kept in Vault, read here through the
// audited workflow_webhook_secret_for_verification()). The `webhook-id` header is the idempotency key: a sender's
// retry (same id, fresh timestamp and signature) answers with the execution the first delivery started.
//   202 {execution_id, duplicate}   400 missing/invalid signature, timestamp outside 5 minutes (a replay), body not a
//   JSON object   404 no such webhook-triggered workflow with a secret   409 the workflow is inactive or deleted
//   405 not POST   413 body over 256 KiB
// The workflow's input is the JSON body (for Standard Webhooks senders: {"type", "timestamp", "data"}).
import { sql, type Kysely } from "kysely";
import { Webhook, WebhookVerificationError } from "standardwebhooks";
import { createDatabase, type UntypedDatabase } from "../_shared/db.ts";
import { createFunctionHandler, type FunctionDeps, type FunctionHandler } from "../_shared/function.ts";
import { assertMethod, badRequest, conflict, jsonResponse, notFound, readBodyBytes } from "../_shared/http.ts";

const MAX_BODY_BYTES = 256 * 1024;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface WorkflowWebhookDeps extends FunctionDeps {
  /** Database; by default a pool on SUPABASE_DB_URL owned (and closed) by the handler. */
  db?: Kysely<UntypedDatabase>;
}

async function asServiceRole<T>(db: Kysely<UntypedDatabase>, run: (trx: Kysely<UntypedDatabase>) => Promise<T>): Promise<T> {
  return await db.transaction().execute(async (trx) => {
    await sql`select set_config('role', 'service_role', true), set_config('request.jwt.claims', '{"role":"service_role"}', true)`
      .execute(trx);
    return await run(trx);
  });
}

const hasSqlState = (error: unknown, state: string) =>
  error instanceof Error && (error as Error & { code?: unknown }).code === state;

export function createHandler(deps: WorkflowWebhookDeps): FunctionHandler {
  const ownsDb = deps.db === undefined;
  const db = deps.db ?? createDatabase(deps.env.SUPABASE_DB_URL, { max: 4, applicationName: "workflow-webhook" });

  return createFunctionHandler(
    { name: "workflow-webhook", logger: deps.logger, close: () => (ownsDb ? db.destroy() : Promise.resolve()) },
    async (request, { logger }) => {
      assertMethod(request, ["POST"]);
      const workflowId = new URL(request.url).pathname.split("/").filter(Boolean)[1] ?? "";
      if (!UUID.test(workflowId)) throw notFound("POST /workflow-webhook/<workflow id>", null, "workflow_not_found");
      const webhookId = request.headers.get("webhook-id");
      if (!webhookId || !request.headers.get("webhook-timestamp") || !request.headers.get("webhook-signature")) {
        throw badRequest("missing webhook-id, webhook-timestamp or webhook-signature header", null, "missing_signature");
      }
      if (webhookId.length > 255) throw badRequest("webhook-id is longer than 255 characters", null, "invalid_signature");
      const body = new TextDecoder().decode(await readBodyBytes(request, MAX_BODY_BYTES));

      let secret: string;
      try {
        secret = await asServiceRole(db, async (trx) =>
          (await sql<{ secret: string }>`select public.workflow_webhook_secret_for_verification(${workflowId}::uuid) as secret`
            .execute(trx)).rows[0]?.secret ?? "");
      } catch (error) {
        // Unknown workflow, not webhook-triggered, or no secret yet: one answer for all, so nothing is revealed.
        if (hasSqlState(error, "P0002")) throw notFound("no webhook-triggered workflow with a signing secret here", null, "workflow_not_found");
        throw error;
      }

      let payload: unknown;
      try {
        payload = new Webhook(secret).verify(body, {
          "webhook-id": webhookId,
          "webhook-timestamp": request.headers.get("webhook-timestamp") ?? "",
          "webhook-signature": request.headers.get("webhook-signature") ?? "",
        });
      } catch (error) {
        if (error instanceof WebhookVerificationError) {
          // The library says what is wrong: no matching signature, or a timestamp too old or too new (a replay).
          throw badRequest(`signature refused: ${error.message}`, null, "invalid_signature");
        }
        throw badRequest("request body is not valid JSON", null, "invalid_json");
      }
      if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
        throw badRequest("the body must be a JSON object (the workflow's input)", null, "invalid_request");
      }

      try {
        const started = await asServiceRole(db, async (trx) => {
          const existing = await sql<{ id: string }>`
            select id from public.workflow_executions where workflow_id = ${workflowId}::uuid and idempotency_key = ${webhookId}`
            .execute(trx);
          const result = await sql<{ id: string }>`
            select public.start_workflow(${workflowId}::uuid, cast(${body}::text as jsonb), ${webhookId}) as id`.execute(trx);
          return { id: result.rows[0]?.id ?? "", duplicate: existing.rows.length > 0 };
        });
        logger.info("workflow started by webhook", { workflow_id: workflowId, execution_id: started.id, duplicate: started.duplicate });
        return jsonResponse({ execution_id: started.id, duplicate: started.duplicate }, { status: 202 });
      } catch (error) {
        if (hasSqlState(error, "55000")) throw conflict("the workflow is inactive or deleted", null, "workflow_inactive");
        throw error;
      }
    },
  );
}
