// POST /ingest: a batch of telemetry and file events from a client SDK, written as the signed-in user.
// Validate the envelope (400/401/405/413/415), validate each event with zod, then hand every valid event to
// `public.ingest_events(jsonb)` in one transaction as the caller: RLS, the consent/allowlist/toggle gate and the
// redaction triggers decide what is stored, and the SQL reports each event's outcome. The response is sent after the
// transaction committed, so whatever is reported accepted is stored.
import { sql, type Kysely } from "kysely";
import { z } from "zod";
import { authenticate, jwtVerifierFromEnv } from "../_shared/auth.ts";
import { createDatabase, type UntypedDatabase } from "../_shared/db.ts";
import { createFunctionHandler, type FunctionDeps, type FunctionHandler } from "../_shared/function.ts";
import { assertMethod, HttpError, jsonResponse, readJsonBody, zodIssues } from "../_shared/http.ts";
import { runForRequest } from "../_shared/request-context.ts";

export const MAX_EVENTS = 1000;
export const MAX_BODY_BYTES = 1024 * 1024;

const uuid = z.string().regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, {
  error: "must be a UUID",
});
const occurredAt = z.iso.datetime({ offset: true, error: "must be an ISO 8601 timestamp with a time zone" });
const appId = z.string().max(128).regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, { error: "must be 1-128 of A-Z a-z 0-9 . _ : -" });
const metadata = z.record(z.string(), z.unknown()).optional();

/** A telemetry event. Unknown fields (a user_id, say) are dropped: the owner always comes from the JWT. */
export const telemetryEventSchema = z.object({
  kind: z.literal("telemetry"),
  id: uuid,
  occurred_at: occurredAt,
  app_id: appId,
  event_type: z.string().max(128).regex(/^[a-z0-9][a-z0-9._:-]*$/, { error: "must be 1-128 of a-z 0-9 . _ : -" }),
  duration_ms: z.number().int().min(0).max(999_999_999).nullish(),
  metadata,
});

export const fileEventSchema = z.object({
  kind: z.literal("file"),
  id: uuid,
  occurred_at: occurredAt,
  file_path: z.string().min(1).max(4096),
  related_path: z.string().min(1).max(4096).nullish(),
  event_type: z.enum(["created", "modified", "deleted", "renamed", "moved", "copied", "opened", "closed"]),
  tool: appId,
  metadata,
});

export const ingestEventSchema = z.discriminatedUnion("kind", [telemetryEventSchema, fileEventSchema]);
export type IngestEvent = z.infer<typeof ingestEventSchema>;

const envelopeSchema = z.object({ events: z.array(z.unknown()) });

export type EventStatus = "accepted" | "duplicate" | "sampled_out" | "rejected";

export interface EventResult {
  index: number;
  id?: string;
  status: EventStatus;
  reason?: string;
  details?: unknown;
}

export interface IngestReport {
  accepted: number;
  duplicate: number;
  sampled_out: number;
  rejected: number;
  results: EventResult[];
}

interface SqlReport {
  results: Array<{ index: number; id?: string; status: EventStatus; reason?: string }>;
}

export interface IngestDeps extends FunctionDeps {
  /** Database to write to; by default a pool on SUPABASE_DB_URL owned (and closed) by the handler. */
  db?: Kysely<UntypedDatabase>;
}

function idOf(event: unknown): string | undefined {
  if (typeof event !== "object" || event === null) return undefined;
  const id = (event as Record<string, unknown>).id;
  return typeof id === "string" && uuid.safeParse(id).success ? id : undefined;
}

export function createHandler(deps: IngestDeps): FunctionHandler {
  const ownsDb = deps.db === undefined;
  const db = deps.db ?? createDatabase(deps.env.SUPABASE_DB_URL, { max: 4, applicationName: "ingest" });
  const verify = jwtVerifierFromEnv(deps.env);

  return createFunctionHandler(
    { name: "ingest", logger: deps.logger, close: () => (ownsDb ? db.destroy() : Promise.resolve()) },
    async (request, { logger }) => {
      assertMethod(request, ["POST"]);
      const jwt = await authenticate(request, verify, { roles: ["authenticated"] });
      const envelope = await readJsonBody(request, envelopeSchema, { maxBytes: MAX_BODY_BYTES });
      if (envelope.events.length > MAX_EVENTS) {
        throw new HttpError(413, "too_many_events", `at most ${MAX_EVENTS} events per request`, {
          details: { max_events: MAX_EVENTS, received: envelope.events.length },
        });
      }

      const results: EventResult[] = new Array(envelope.events.length);
      const valid: IngestEvent[] = [];
      const validIndex: number[] = [];
      envelope.events.forEach((raw, index) => {
        const parsed = ingestEventSchema.safeParse(raw);
        if (parsed.success) {
          valid.push(parsed.data);
          validIndex.push(index);
        } else {
          results[index] = { index, id: idOf(raw), status: "rejected", reason: "invalid", details: zodIssues(parsed.error) };
        }
      });

      if (valid.length > 0) {
        const report = await runForRequest(db, request, jwt, async (trx) => {
          const { rows } = await sql<{ report: SqlReport }>`
            select public.ingest_events(${JSON.stringify(valid)}::text::jsonb) as report
          `.execute(trx);
          return rows[0]?.report;
        });
        if (!report || report.results.length !== valid.length) {
          throw new Error("ingest_events returned an unexpected report");
        }
        report.results.forEach((result, position) => {
          const index = validIndex[position] ?? position;
          results[index] = { ...result, index };
        });
      }

      const body: IngestReport = {
        accepted: results.filter((r) => r.status === "accepted").length,
        duplicate: results.filter((r) => r.status === "duplicate").length,
        sampled_out: results.filter((r) => r.status === "sampled_out").length,
        rejected: results.filter((r) => r.status === "rejected").length,
        results,
      };
      logger.info("batch ingested", {
        events: results.length,
        accepted: body.accepted,
        duplicate: body.duplicate,
        sampled_out: body.sampled_out,
        rejected: body.rejected,
      });
      return jsonResponse(body, { headers: { "cache-control": "no-store" } });
    },
  );
}
