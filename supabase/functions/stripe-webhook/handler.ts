// POST /stripe-webhook: Stripe's signed events. Thin on purpose: verify the signature over the raw body, check the
// event's envelope, and hand the event to private.handle_stripe_event(), which applies it exactly once in one
// transaction (ledger, ordering, linking and the failure record all live in SQL). Answers:
//   200 applied, ignored (type not used), stale (the stored state may not be replaced by it), a duplicate delivery,
//       or problem: a permanent failure (data error) at its 5th attempt, kept with its payload in the ledger for
//       private.replay_stripe_event() and listed in public.billing_sync_problems, so Stripe stops retrying it
//   400 missing or invalid signature, expired timestamp, malformed JSON or not a Stripe event: nothing is written
//   405 any method but POST; 413 body too large
//   500 the event could not be applied yet (a transient failure, or a permanent one before its 5th attempt): the
//       ledger keeps the error, and Stripe retries
//   503 database_unavailable (with Retry-After) when the database cannot be reached at all (_shared/http.ts); Stripe
//       retries any non-2xx answer, and the ledger makes the retry safe
import { sql, type Kysely } from "kysely";
import Stripe from "stripe";
import { z } from "zod";
import { createDatabase, type UntypedDatabase } from "../_shared/db.ts";
import { parseEnv } from "../_shared/env.ts";
import { createFunctionHandler, type FunctionDeps, type FunctionHandler } from "../_shared/function.ts";
import { assertMethod, badRequest, HttpError, jsonResponse, readBodyBytes } from "../_shared/http.ts";

/** Stripe caps event payloads far below this; anything larger is not from Stripe. */
export const MAX_BODY_BYTES = 1024 * 1024;

export const stripeWebhookEnvSchema = z.object({
  STRIPE_WEBHOOK_SECRET: z
    .string({ error: (issue) => (issue.input === undefined ? "is missing" : "must be a string") })
    .regex(/^whsec_\S+$/, { error: "must be a Stripe signing secret (whsec_...)" }),
});

/** The envelope every Stripe event has; data.object is passed to SQL as it came. */
const eventEnvelope = z.object({
  id: z.string().regex(/^[A-Za-z0-9_]{1,255}$/),
  type: z.string().min(1).max(255),
  // Up to the last second of 9999: later times are not timestamps Postgres can store.
  created: z.number().int().nonnegative().max(253_402_300_799),
  api_version: z.string().nullable().optional(),
  data: z.object({ object: z.record(z.string(), z.unknown()) }),
});

export type StripeEventOutcome = "applied" | "ignored" | "stale" | "failed" | "problem";

/** What private.handle_stripe_event() returns. */
export interface HandledEvent {
  event_id: string;
  type: string;
  outcome: StripeEventOutcome;
  duplicate: boolean;
  attempts: number;
  error?: string | null;
  sqlstate?: string | null;
}

export interface StripeWebhookResponse {
  received: true;
  event_id: string;
  type: string;
  outcome: Exclude<StripeEventOutcome, "failed">;
  duplicate: boolean;
}

export interface StripeWebhookDeps extends FunctionDeps {
  /** Database to apply events to; by default a pool on SUPABASE_DB_URL owned (and closed) by the handler. */
  db?: Kysely<UntypedDatabase>;
}

export function createHandler(deps: StripeWebhookDeps): FunctionHandler {
  const { STRIPE_WEBHOOK_SECRET: secret } = parseEnv(stripeWebhookEnvSchema, deps.envSource);
  const cryptoProvider = Stripe.createSubtleCryptoProvider();
  const ownsDb = deps.db === undefined;
  // Stripe delivers concurrently; events of one object queue on a lock in SQL, not on this pool.
  const db = deps.db ?? createDatabase(deps.env.SUPABASE_DB_URL, { max: 10, applicationName: "stripe-webhook" });

  return createFunctionHandler(
    { name: "stripe-webhook", logger: deps.logger, close: () => (ownsDb ? db.destroy() : Promise.resolve()) },
    async (request, { logger }) => {
      assertMethod(request, ["POST"]);
      const signature = request.headers.get("stripe-signature");
      if (!signature) throw badRequest("missing Stripe-Signature header", null, "missing_signature");
      const payload = await readBodyBytes(request, MAX_BODY_BYTES);

      let parsed: unknown;
      try {
        parsed = await Stripe.webhooks.constructEventAsync(payload, signature, secret, undefined, cryptoProvider);
      } catch (error) {
        if (error instanceof SyntaxError) throw badRequest("request body is not valid JSON", null, "invalid_json");
        // The library's message says what is wrong (no matching signature, timestamp outside the tolerance, ...).
        throw badRequest(error instanceof Error ? error.message : "invalid signature", null, "invalid_signature");
      }
      const envelope = eventEnvelope.safeParse(parsed);
      if (!envelope.success) throw badRequest("not a Stripe event", null, "invalid_event");

      // Sent as text and cast in SQL: a parameter typed jsonb would be JSON-encoded a second time by the driver.
      const result = await sql<{ handled: HandledEvent }>`
        select private.handle_stripe_event(cast(${JSON.stringify(parsed)}::text as jsonb)) as handled
      `.execute(db);
      const handled = result.rows[0]?.handled;
      if (!handled) throw new Error("private.handle_stripe_event returned nothing");

      const fields = { event_id: handled.event_id, event_type: handled.type, attempts: handled.attempts };
      if (handled.outcome === "failed") {
        logger.error("stripe event failed", { ...fields, sqlstate: handled.sqlstate ?? null, error: handled.error ?? null });
        throw new HttpError(500, "event_not_applied", "the event could not be applied; Stripe will retry it", {
          details: { event_id: handled.event_id, attempts: handled.attempts, sqlstate: handled.sqlstate ?? null },
        });
      }
      if (handled.outcome === "problem") {
        // Answered 200: retrying cannot cure a data error. Operators find it in public.billing_sync_problems.
        logger.error("stripe event kept as a problem", { ...fields, sqlstate: handled.sqlstate ?? null, error: handled.error ?? null });
      } else {
        logger.info("stripe event", { ...fields, outcome: handled.outcome, duplicate: handled.duplicate });
      }
      const body: StripeWebhookResponse = {
        received: true,
        event_id: handled.event_id,
        type: handled.type,
        outcome: handled.outcome,
        duplicate: handled.duplicate,
      };
      return jsonResponse(body);
    },
  );
}

