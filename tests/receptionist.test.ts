// The AI receptionist end to end: book_appointment racing on one slot over 16 connections (the exclusion constraint
// lets exactly one win), retries with one idempotency key, and the receptionist edge function through the gateway (a
// real Deno process) with good, revoked and missing agent API keys, including a transcript with a card number.
import { randomUUID } from "node:crypto";
import { sql, type Kysely } from "kysely";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createDatabase, type UntypedDatabase } from "../supabase/functions/_shared/db.ts";
import { runAsCaller, type RequestContext } from "../supabase/functions/_shared/request-context.ts";
import { testEnv } from "./helpers/env.ts";

const gatewayUrl = inject("gatewayUrl");
const endpoint = `${gatewayUrl}/functions/v1/receptionist`;
let db: Kysely<UntypedDatabase>;

interface Fixture {
  ownerId: string;
  organizationId: string;
  serviceId: string;
  staffId: string;
  agentId: string;
  agentUserId: string;
  apiKey: string;
  keyId: string;
  /** A Monday 1-2 weeks ahead, as YYYY-MM-DD. */
  monday: string;
}
let fx: Fixture;

const asUser = (id: string): RequestContext => ({
  role: "authenticated",
  claims: { sub: id, role: "authenticated", aud: "authenticated", aal: "aal1" },
  method: "POST",
  path: "/rest/v1/rpc",
  headers: {},
});

/** An instant on the fixture's Monday, local time in Warsaw. */
async function at(localTime: string): Promise<string> {
  const { rows } = await sql<{ t: Date }>`select (${fx.monday}::date + ${localTime}::time) at time zone 'Europe/Warsaw' as t`.execute(db);
  return rows[0]!.t.toISOString();
}

function book(context: RequestContext, startsAt: string, idempotencyKey: string | null = null) {
  return runAsCaller(db, context, async (trx) => {
    const { rows } = await sql<{ id: string }>`
      select id from public.book_appointment(${fx.serviceId}::uuid, ${startsAt}::timestamptz, 'Race Client', '+48601234567',
                                             null, ${fx.staffId}::uuid, null, ${idempotencyKey})
    `.execute(trx);
    return rows[0]!.id;
  });
}

async function call(method: string, path: string, key: string | null, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = {};
  if (key !== null) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  return fetch(`${endpoint}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
}

beforeAll(async () => {
  db = createDatabase(testEnv().dbUrl, { max: 20 });
  const ownerId = randomUUID();
  const slug = `rx-${ownerId.slice(0, 8)}`;
  await sql`
    insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
    values ('00000000-0000-0000-0000-000000000000', ${ownerId}::uuid, 'authenticated', 'authenticated', ${`${ownerId}@example.test`},
            '{"provider": "email"}'::jsonb, '{}'::jsonb, now(), now())
  `.execute(db);
  const organizationId = await runAsCaller(db, asUser(ownerId), async (trx) =>
    (await sql<{ id: string }>`select (public.create_organization('Receptionist test', ${slug})).id as id`.execute(trx)).rows[0]!.id);
  await sql`
    update public.organizations set timezone = 'Europe/Warsaw', business_hours =
      '{"monday": {"open": "09:00", "close": "17:00"}, "tuesday": {"open": "09:00", "close": "17:00"}}'
    where id = ${organizationId}::uuid
  `.execute(db);
  const serviceId = (await sql<{ id: string }>`
    insert into public.services (organization_id, name, duration, price, booking_buffer, min_notice_minutes, max_advance_booking_days)
    values (${organizationId}::uuid, 'Consultation', 30, 100, 10, 60, 60) returning id
  `.execute(db)).rows[0]!.id;
  const staffId = (await sql<{ id: string }>`
    insert into public.staff (organization_id, name) values (${organizationId}::uuid, 'Dr. Nowak') returning id
  `.execute(db)).rows[0]!.id;
  await sql`insert into public.staff_services (staff_id, service_id) values (${staffId}::uuid, ${serviceId}::uuid)`.execute(db);
  await sql`
    insert into public.staff_working_hours (staff_id, weekday, start_time, end_time)
    values (${staffId}::uuid, 1, '09:00', '17:00'), (${staffId}::uuid, 2, '09:00', '17:00')
  `.execute(db);
  const agent = await runAsCaller(db, asUser(ownerId), async (trx) => {
    const a = (await sql<{ id: string; user_id: string }>`
      select id, user_id from public.create_ai_agent(${organizationId}::uuid, 'Ola', 'pl-PL')
    `.execute(trx)).rows[0]!;
    const k = (await sql<{ key_id: string; api_key: string }>`select * from public.create_ai_agent_api_key(${a.id}::uuid)`.execute(trx)).rows[0]!;
    return { ...a, ...k };
  });
  const monday = (await sql<{ d: string }>`
    select to_char(current_date + 7 + ((8 - extract(dow from current_date + 7)::integer) % 7), 'YYYY-MM-DD') as d
  `.execute(db)).rows[0]!.d;
  fx = {
    ownerId, organizationId, serviceId, staffId, monday,
    agentId: agent.id, agentUserId: agent.user_id, apiKey: agent.api_key, keyId: agent.key_id,
  };
});

afterAll(async () => {
  await db.destroy();
});

describe("book_appointment under concurrency", () => {
  it("lets exactly one of 16 concurrent bookings of one slot succeed; the others get 'slot taken'", async () => {
    const startsAt = await at("10:00");
    const results = await Promise.allSettled(Array.from({ length: 16 }, () => book(asUser(fx.agentUserId), startsAt)));
    const won = results.filter((r) => r.status === "fulfilled");
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(15);
    for (const failure of lost) {
      expect(failure.reason).toMatchObject({ code: "23P01", hint: "slot taken" });
    }
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from public.appointments where staff_id = ${fx.staffId}::uuid and scheduled_at = ${startsAt}::timestamptz
    `.execute(db);
    expect(rows[0]!.n).toBe(1);
  });

  it("makes one appointment from concurrent retries with one idempotency key, and returns it to each", async () => {
    const startsAt = await at("13:00");
    const key = `call-${randomUUID()}`;
    const ids = await Promise.all(Array.from({ length: 8 }, () => book(asUser(fx.agentUserId), startsAt, key)));
    expect(new Set(ids).size).toBe(1);
    const again = await book(asUser(fx.agentUserId), startsAt, key);
    expect(again).toBe(ids[0]);
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from public.appointments where organization_id = ${fx.organizationId}::uuid and idempotency_key = ${key}
    `.execute(db);
    expect(rows[0]!.n).toBe(1);
  });
});

describe("the receptionist edge function", () => {
  it("refuses a request without a key, with a malformed key and with an unknown key", async () => {
    const missing = await call("GET", `/slots?service_id=${fx.serviceId}`, null);
    expect(missing.status).toBe(401);
    expect((await missing.json()).error.code).toBe("missing_api_key");
    const malformed = await call("GET", `/slots?service_id=${fx.serviceId}`, "not-a-key");
    expect(malformed.status).toBe(401);
    expect((await malformed.json()).error.code).toBe("invalid_api_key");
    const unknown = await call("GET", `/slots?service_id=${fx.serviceId}`, `rk_${"A".repeat(43)}`);
    expect(unknown.status).toBe(401);
    expect((await unknown.json()).error.code).toBe("invalid_api_key");
  });

  it("offers slots and books one in two calls with a good key, then answers 409 'slot taken' for it", async () => {
    const from = await at("00:00");
    const to = await at("23:59");
    const slotsResponse = await call("GET", `/slots?service_id=${fx.serviceId}&from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}&step=30`, fx.apiKey);
    expect(slotsResponse.status).toBe(200);
    const { slots } = (await slotsResponse.json()) as { slots: Array<{ staff_id: string; starts_at: string }> };
    expect(slots.length).toBeGreaterThan(0);
    const first = slots[0]!;
    expect(new Date(first.starts_at).toISOString()).toBe(await at("09:00"));

    const booking = await call("POST", "/appointments", fx.apiKey, {
      service_id: fx.serviceId, starts_at: first.starts_at, client_name: "Jan Kowalski", client_phone: "+48601234567",
    });
    expect(booking.status).toBe(201);
    const { appointment } = (await booking.json()) as { appointment: { id: string; staff_id: string; created_by: string; status: string } };
    expect(appointment).toMatchObject({ staff_id: first.staff_id, created_by: fx.agentUserId, status: "scheduled" });

    const taken = await call("POST", "/appointments", fx.apiKey, {
      service_id: fx.serviceId, starts_at: first.starts_at, client_name: "Ewa", client_phone: "+48601234568",
    });
    expect(taken.status).toBe(409);
    expect((await taken.json()).error.details).toMatchObject({ sqlstate: "23P01", hint: "slot taken" });

    const bad = await call("POST", "/appointments", fx.apiKey, { service_id: "nope", starts_at: "tomorrow" });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.code).toBe("invalid_request");
  });

  it("stores a transcript with a card number redacted, across start, append and end", async () => {
    const started = await call("POST", "/conversations", fx.apiKey, {
      action: "start", caller_phone: "+48601234567",
      turns: [{ speaker: "agent", text: "Dzień dobry, w czym mogę pomóc?", at: new Date().toISOString() }],
    });
    expect(started.status).toBe(201);
    const { conversation } = (await started.json()) as { conversation: { id: string } };
    const appended = await call("POST", "/conversations", fx.apiKey, {
      action: "append", conversation_id: conversation.id,
      turns: [{ speaker: "caller", text: "Moja karta to 4111 1111 1111 1111, ważna do 12/29", at: new Date().toISOString() }],
    });
    expect(appended.status).toBe(200);
    const ended = await call("POST", "/conversations", fx.apiKey, {
      action: "end", conversation_id: conversation.id, summary: "Caller read out card 5555 5555 5555 4444", outcome: "booked",
    });
    expect(ended.status).toBe(200);
    const { rows } = await sql<{ transcript: Array<{ text: string }>; summary: string; status: string; caller_phone: string }>`
      select transcript, summary, status, caller_phone from public.conversations where id = ${conversation.id}::uuid
    `.execute(db);
    const stored = rows[0]!;
    expect(JSON.stringify(stored.transcript)).not.toMatch(/4111/);
    expect(stored.transcript[1]!.text).toBe("Moja karta to [CARD], ważna do 12/29");
    expect(stored.summary).toBe("Caller read out card [CARD]");
    expect(stored).toMatchObject({ status: "completed", caller_phone: "+48601234567" });
  });

  it("records a message as the agent and validates its shape", async () => {
    const sent = await call("POST", "/messages", fx.apiKey, {
      channel: "sms", direction: "outbound", from_number: "+48221234567", to_number: "+48601234567", body: "Do zobaczenia!",
    });
    expect(sent.status).toBe(201);
    expect((await sent.json()).message).toMatchObject({ organization_id: fx.organizationId, status: "pending" });
    const inconsistent = await call("POST", "/messages", fx.apiKey, { channel: "sms", direction: "outbound", body: "no numbers" });
    expect(inconsistent.status).toBe(400);
    expect((await inconsistent.json()).error.details).toMatchObject({ sqlstate: "23514", constraint: "messages_phone_channel_addresses" });
  });

  it("refuses a revoked key at once and stamps last_used_at while the key was live", async () => {
    const { rows } = await sql<{ last_used_at: Date | null }>`
      select last_used_at from public.ai_agent_api_keys where id = ${fx.keyId}::uuid
    `.execute(db);
    expect(rows[0]!.last_used_at).not.toBeNull();
    await runAsCaller(db, asUser(fx.ownerId), (trx) => sql`select public.revoke_ai_agent_api_key(${fx.keyId}::uuid)`.execute(trx));
    const revoked = await call("GET", `/slots?service_id=${fx.serviceId}`, fx.apiKey);
    expect(revoked.status).toBe(401);
    expect((await revoked.json()).error.code).toBe("invalid_api_key");
  });
});
