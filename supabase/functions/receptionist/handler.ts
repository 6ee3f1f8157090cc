// The AI receptionist's HTTP API, for agents on a call. Authenticated with the agent's API key
// (`Authorization: Bearer rk_...`, issued by public.create_ai_agent_api_key), never a JWT (verify_jwt = false). The key
// is resolved once per request as the service role (public.authenticate_ai_agent_key, which also stamps last_used_at);
// then the call's SQL runs in one transaction as that agent's auth.users identity under the request context, so RLS
// (the agent role: receptionist.read + receptionist.operate) is the only gate.
//   GET  /receptionist/slots?service_id&from&to[&staff_id][&step]          200 {slots: [{staff_id, starts_at, ends_at}]}
//   POST /receptionist/appointments {action: book | cancel | reschedule}   201 / 200 {appointment}
//   POST /receptionist/conversations {action: start | append | end}       201 / 200 {conversation}
//   POST /receptionist/messages {channel, direction, ...}                 201 {message}
// Errors: 400 invalid, 401 missing/unknown/revoked key, 403 not allowed, 404 unknown route or row, 405, 409 slot taken
// (details.hint "slot taken"), 415, 413.
import { sql, type Kysely, type Transaction } from "kysely";
import { z } from "zod";
import { createDatabase, type UntypedDatabase } from "../_shared/db.ts";
import { createFunctionHandler, type FunctionDeps, type FunctionHandler } from "../_shared/function.ts";
import {
  assertMethod,
  badRequest,
  HttpError,
  jsonResponse,
  notFound,
  readJsonBody,
  unauthorized,
  zodIssues,
} from "../_shared/http.ts";
import { headersForDatabase, runAsCaller, type RequestContext } from "../_shared/request-context.ts";

export const MAX_BODY_BYTES = 256 * 1024;
const API_KEY_PATTERN = /^rk_[A-Za-z0-9_-]{43}$/;

const uuid = z.string().regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, {
  error: "must be a UUID",
});
const instant = z.iso.datetime({ offset: true, error: "must be an ISO 8601 timestamp with a time zone" });
const phone = z.string().trim().min(6).max(50);
const email = z.email({ error: "must be an e-mail address" }).max(254);

export const slotsQuerySchema = z.object({
  service_id: uuid,
  from: instant,
  to: instant,
  staff_id: uuid.optional(),
  step: z.coerce.number().int().min(5).max(1440).optional(),
});

const turnSchema = z.object({
  speaker: z.enum(["agent", "caller", "staff", "system"]),
  text: z.string().max(10_000),
  at: instant,
}).strict();
const turns = z.array(turnSchema).max(500);

export const appointmentRequestSchema = z.discriminatedUnion("action", [
  z.object({
    action: z.literal("book"),
    service_id: uuid,
    starts_at: instant,
    client_name: z.string().trim().min(1).max(200),
    client_phone: phone,
    client_email: email.optional(),
    staff_id: uuid.optional(),
    conversation_id: uuid.optional(),
    idempotency_key: z.string().min(1).max(200).optional(),
  }).strict(),
  z.object({ action: z.literal("cancel"), appointment_id: uuid, reason: z.string().trim().min(1).max(500) }).strict(),
  z.object({ action: z.literal("reschedule"), appointment_id: uuid, new_starts_at: instant }).strict(),
]);

const conversationFields = {
  caller_phone: phone.optional(),
  caller_name: z.string().trim().min(1).max(200).optional(),
  caller_email: email.optional(),
};

export const conversationRequestSchema = z.discriminatedUnion("action", [
  z.object({
    action: z.literal("start"),
    direction: z.enum(["inbound", "outbound"]).default("inbound"),
    ...conversationFields,
    turns: turns.default([]),
    metadata: z.record(z.string(), z.unknown()).optional(),
  }).strict(),
  z.object({ action: z.literal("append"), conversation_id: uuid, turns: turns.min(1) }).strict(),
  z.object({
    action: z.literal("end"),
    conversation_id: uuid,
    status: z.enum(["completed", "missed", "failed"]).default("completed"),
    turns: turns.default([]),
    summary: z.string().max(10_000).optional(),
    intent: z.string().max(100).optional(),
    outcome: z.string().max(100).optional(),
    sentiment_score: z.number().min(-1).max(1).optional(),
    topics: z.array(z.string().max(100)).max(50).optional(),
    recording_url: z.url({ protocol: /^https?$/ }).max(2048).optional(),
    ...conversationFields,
  }).strict(),
]);

export const messageRequestSchema = z.object({
  channel: z.enum(["sms", "email", "voice", "chat"]),
  direction: z.enum(["inbound", "outbound"]),
  from_number: z.string().regex(/^\+[1-9][0-9]{6,14}$/, { error: "must be E.164" }).optional(),
  to_number: z.string().regex(/^\+[1-9][0-9]{6,14}$/, { error: "must be E.164" }).optional(),
  from_email: email.optional(),
  to_email: email.optional(),
  subject: z.string().max(500).optional(),
  body: z.string().min(1).max(20_000),
  conversation_id: uuid.optional(),
  appointment_id: uuid.optional(),
  provider: z.string().min(1).max(100).optional(),
  provider_message_id: z.string().min(1).max(255).optional(),
}).strict();

export interface Agent {
  agent_id: string;
  user_id: string;
  organization_id: string;
  email: string;
  app_metadata: Record<string, unknown>;
}

export interface ReceptionistDeps extends FunctionDeps {
  /** Database; by default a pool on SUPABASE_DB_URL owned (and closed) by the handler. */
  db?: Kysely<UntypedDatabase>;
}

/** The API key of `Authorization: Bearer rk_...`; 401 when it is missing or not shaped like one. */
export function apiKeyOf(request: Request): string {
  const header = request.headers.get("authorization");
  if (!header) throw unauthorized("missing Authorization: Bearer <agent API key>", null, "missing_api_key");
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  const key = match?.[1];
  if (!key || !API_KEY_PATTERN.test(key)) throw unauthorized("the API key is not valid", null, "invalid_api_key");
  return key;
}

function contextFor(request: Request, role: string, claims: Record<string, unknown>): RequestContext {
  return { role, claims, method: request.method, path: new URL(request.url).pathname, headers: headersForDatabase(request.headers) };
}

/** P0002 (a row the agent cannot see or that does not exist) is a 404 here. */
function notFoundOnNoData<T>(work: Promise<T>): Promise<T> {
  return work.catch((error: unknown) => {
    if (error instanceof Error && (error as Error & { code?: unknown }).code === "P0002") throw notFound(error.message);
    throw error;
  });
}

export function createHandler(deps: ReceptionistDeps): FunctionHandler {
  const ownsDb = deps.db === undefined;
  const db = deps.db ?? createDatabase(deps.env.SUPABASE_DB_URL, { max: 4, applicationName: "receptionist" });

  async function resolveAgent(request: Request): Promise<Agent> {
    const key = apiKeyOf(request);
    const agent = await runAsCaller(db, contextFor(request, "service_role", { role: "service_role" }), async (trx) => {
      const { rows } = await sql<Agent>`select * from public.authenticate_ai_agent_key(${key})`.execute(trx);
      return rows[0];
    });
    if (!agent) throw unauthorized("the API key is unknown or revoked", null, "invalid_api_key");
    return agent;
  }

  function asAgent<T>(request: Request, agent: Agent, work: (trx: Transaction<UntypedDatabase>) => Promise<T>): Promise<T> {
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      sub: agent.user_id, role: "authenticated", aud: "authenticated", email: agent.email, aal: "aal1",
      app_metadata: agent.app_metadata, user_metadata: {}, iat: now, exp: now + 300,
    };
    return notFoundOnNoData(runAsCaller(db, contextFor(request, "authenticated", claims), work));
  }

  return createFunctionHandler(
    { name: "receptionist", logger: deps.logger, close: () => (ownsDb ? db.destroy() : Promise.resolve()) },
    async (request, { logger }) => {
      const path = new URL(request.url).pathname.replace(/\/+$/, "");
      const route = path.replace(/^\/receptionist/, "");
      if (!["/slots", "/appointments", "/conversations", "/messages"].includes(route)) {
        throw notFound(`no route ${path}`, { routes: ["GET /receptionist/slots", "POST /receptionist/appointments", "POST /receptionist/conversations", "POST /receptionist/messages"] });
      }
      assertMethod(request, route === "/slots" ? ["GET"] : ["POST"]);
      const agent = await resolveAgent(request);

      if (route === "/slots") {
        const parsed = slotsQuerySchema.safeParse(Object.fromEntries(new URL(request.url).searchParams));
        if (!parsed.success) throw badRequest("query is invalid", zodIssues(parsed.error), "invalid_request");
        const q = parsed.data;
        const slots = await asAgent(request, agent, async (trx) => (await sql<{ staff_id: string; starts_at: Date; ends_at: Date }>`
          select staff_id, starts_at, ends_at
          from public.available_slots(${q.service_id}::uuid, ${q.from}::timestamptz, ${q.to}::timestamptz,
                                      ${q.staff_id ?? null}::uuid, ${q.step ?? null}::integer)
        `.execute(trx)).rows);
        return jsonResponse({ slots });
      }

      if (route === "/appointments") {
        const body = await readJsonBody(request, z.preprocess(withDefaultAction("book"), appointmentRequestSchema), { maxBytes: MAX_BODY_BYTES });
        if (body.action === "book") {
          const idempotencyKey = body.idempotency_key ?? request.headers.get("idempotency-key") ?? null;
          const appointment = await asAgent(request, agent, async (trx) => (await sql`
            select * from public.book_appointment(${body.service_id}::uuid, ${body.starts_at}::timestamptz, ${body.client_name},
              ${body.client_phone}, ${body.client_email ?? null}, ${body.staff_id ?? null}::uuid,
              ${body.conversation_id ?? null}::uuid, ${idempotencyKey})
          `.execute(trx)).rows[0]);
          logger.info("appointment booked", { agent_id: agent.agent_id });
          return jsonResponse({ appointment }, { status: 201 });
        }
        const appointment = await asAgent(request, agent, async (trx) => (body.action === "cancel"
          ? await sql`select * from public.cancel_appointment(${body.appointment_id}::uuid, ${body.reason})`.execute(trx)
          : await sql`select * from public.reschedule_appointment(${body.appointment_id}::uuid, ${body.new_starts_at}::timestamptz)`.execute(trx)
        ).rows[0]);
        return jsonResponse({ appointment });
      }

      if (route === "/conversations") {
        const body = await readJsonBody(request, conversationRequestSchema, { maxBytes: MAX_BODY_BYTES });
        if (body.action === "start") {
          const conversation = await asAgent(request, agent, async (trx) => (await sql`
            insert into public.conversations (agent_id, direction, caller_phone, caller_name, caller_email, transcript, metadata)
            values (${agent.agent_id}::uuid, ${body.direction}, ${body.caller_phone ?? null}, ${body.caller_name ?? null},
                    ${body.caller_email ?? null}, ${JSON.stringify(body.turns)}::text::jsonb, ${JSON.stringify(body.metadata ?? {})}::text::jsonb)
            returning *
          `.execute(trx)).rows[0]);
          return jsonResponse({ conversation }, { status: 201 });
        }
        const conversation = await asAgent(request, agent, async (trx) => {
          const { rows } = body.action === "append"
            ? await sql`
                update public.conversations set transcript = transcript || ${JSON.stringify(body.turns)}::text::jsonb
                where id = ${body.conversation_id}::uuid and agent_id = ${agent.agent_id}::uuid and status = 'active'
                returning *`.execute(trx)
            : await sql`
                update public.conversations set transcript = transcript || ${JSON.stringify(body.turns)}::text::jsonb,
                  status = ${body.status}, ended_at = now(), summary = coalesce(${body.summary ?? null}, summary),
                  intent = coalesce(${body.intent ?? null}, intent), outcome = coalesce(${body.outcome ?? null}, outcome),
                  sentiment_score = coalesce(${body.sentiment_score ?? null}::numeric, sentiment_score),
                  topics = coalesce(${body.topics ? JSON.stringify(body.topics) : null}::text::jsonb, topics),
                  recording_url = coalesce(${body.recording_url ?? null}, recording_url),
                  caller_phone = coalesce(${body.caller_phone ?? null}, caller_phone),
                  caller_name = coalesce(${body.caller_name ?? null}, caller_name),
                  caller_email = coalesce(${body.caller_email ?? null}, caller_email)
                where id = ${body.conversation_id}::uuid and agent_id = ${agent.agent_id}::uuid and status = 'active'
                returning *`.execute(trx);
          return rows[0];
        });
        if (!conversation) throw notFound("no active conversation of this agent with that id");
        return jsonResponse({ conversation });
      }

      const body = await readJsonBody(request, messageRequestSchema, { maxBytes: MAX_BODY_BYTES });
      const message = await asAgent(request, agent, async (trx) => (await sql`
        insert into public.messages (organization_id, conversation_id, appointment_id, direction, channel, from_number,
                                     to_number, from_email, to_email, subject, body, provider, provider_message_id)
        values (${agent.organization_id}::uuid, ${body.conversation_id ?? null}::uuid, ${body.appointment_id ?? null}::uuid,
                ${body.direction}, ${body.channel}, ${body.from_number ?? null}, ${body.to_number ?? null},
                ${body.from_email ?? null}, ${body.to_email ?? null}, ${body.subject ?? null}, ${body.body},
                ${body.provider ?? null}, ${body.provider_message_id ?? null})
        returning *
      `.execute(trx)).rows[0]);
      return jsonResponse({ message }, { status: 201 });
    },
  );
}

/** Lets a booking omit `action`. */
function withDefaultAction(action: string) {
  return (value: unknown) =>
    typeof value === "object" && value !== null && !Array.isArray(value) && !("action" in value)
      ? { ...value, action }
      : value;
}

export { HttpError };
