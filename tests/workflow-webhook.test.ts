// POST /functions/v1/workflow-webhook/<workflow_id> through the gateway against the real database: a message signed
// per Standard Webhooks with the workflow's secret (signed by the sending side of the same library) starts the
// workflow with the body as its input; the webhook-id is the idempotency key (a sender's retry gets the same
// execution); a bad signature, a replay outside the timestamp tolerance, an unknown workflow or a workflow without a
// secret start nothing and answer with the error shape. The secret is set through set_workflow_webhook_secret() and
// cannot be read back by API roles.
import { sql, type Kysely } from "kysely";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createDatabase, type UntypedDatabase } from "../supabase/functions/_shared/db.ts";
import { testEnv } from "./helpers/env.ts";

const gatewayUrl = inject("gatewayUrl");
const run = `wh${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const SECRET = "whsec_" + Buffer.from("vitest-workflow-webhook-secret-0123456789").toString("base64");
const OTHER_SECRET = "whsec_" + Buffer.from("another-sender-secret-with-enough-bytes!").toString("base64");

let db: Kysely<UntypedDatabase>;
let ownerId = "";
let organizationId = "";
let workflowId = "";

async function asOwner<T>(work: (trx: Kysely<UntypedDatabase>) => Promise<T>): Promise<T> {
  return await db.transaction().execute(async (trx) => {
    await sql`select set_config('role', 'authenticated', true),
                     set_config('request.jwt.claims', ${JSON.stringify({ sub: ownerId, role: "authenticated" })}, true)`.execute(trx);
    return await work(trx);
  });
}

function signed(body: string, options: { id?: string; secret?: string; at?: Date } = {}): Record<string, string> {
  const id = options.id ?? `msg_${crypto.randomUUID()}`;
  const at = options.at ?? new Date();
  return {
    "content-type": "application/json",
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": new Webhook(options.secret ?? SECRET).sign(id, at, body),
  };
}

const post = (target: string, body: string, headers: Record<string, string>) =>
  fetch(`${gatewayUrl}/functions/v1/workflow-webhook/${target}`, { method: "POST", headers, body });

async function executions(): Promise<Array<{ id: string; trigger_type: string; idempotency_key: string; input: unknown }>> {
  return (await sql<{ id: string; trigger_type: string; idempotency_key: string; input: unknown }>`
    select id, trigger_type, idempotency_key, input from public.workflow_executions where workflow_id = ${workflowId}::uuid
    order by created_at`.execute(db)).rows;
}

beforeAll(async () => {
  db = createDatabase(testEnv().dbUrl, { max: 2, applicationName: "workflow-webhook-test" });
  ownerId = (await sql<{ id: string }>`
    insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
    values ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated',
            ${run + "@example.test"}, '{}', '{}', now(), now())
    returning id`.execute(db)).rows[0]!.id;
  organizationId = (await sql<{ id: string }>`
    insert into public.organizations (name, slug, created_by) values ('Webhook trigger tests', ${run}, ${ownerId}::uuid) returning id`
    .execute(db)).rows[0]!.id;
  await sql`insert into public.organization_members (organization_id, user_id, role_id)
            select ${organizationId}::uuid, ${ownerId}::uuid, id from public.roles where organization_id is null and key = 'owner'`.execute(db);
  workflowId = await asOwner(async (trx) => {
    const id = (await sql<{ id: string }>`
      insert into public.workflows (organization_id, name, definition, trigger_type)
      values (${organizationId}::uuid, 'Order received',
              cast(${JSON.stringify({ nodes: [{ id: "ack", type: "task", name: "Ack", config: { action: "emit_event" } }], edges: [] })}::text as jsonb),
              'webhook')
      returning id`.execute(trx)).rows[0]!.id;
    await sql`select public.set_workflow_webhook_secret(${id}::uuid, ${SECRET})`.execute(trx);
    return id;
  });
});

afterAll(async () => {
  await sql`delete from public.organizations where id = ${organizationId}::uuid`.execute(db);
  await sql`delete from auth.users where id = ${ownerId}::uuid`.execute(db);
  await db.destroy();
});

describe("workflow-webhook", () => {
  it("starts the workflow for a good signature and answers 202 with the execution id; a retry of the same webhook-id gets the same execution", async () => {
    const body = JSON.stringify({ type: "order.created", timestamp: new Date().toISOString(), data: { order: "A-17", total: 99 } });
    const headers = signed(body, { id: `msg_${run}_1` });
    const response = await post(workflowId, body, headers);
    expect(response.status).toBe(202);
    const first = (await response.json()) as { execution_id: string; duplicate: boolean };
    expect(first.duplicate).toBe(false);
    const started = await executions();
    expect(started).toHaveLength(1);
    expect(started[0]).toMatchObject({ id: first.execution_id, trigger_type: "webhook", idempotency_key: `msg_${run}_1`,
                                       input: { type: "order.created", data: { order: "A-17", total: 99 } } });

    // The sender retries: same id and body, a new timestamp and signature.
    const retry = await post(workflowId, body, signed(body, { id: `msg_${run}_1`, at: new Date(Date.now() + 1000) }));
    expect(retry.status).toBe(202);
    expect(await retry.json()).toEqual({ execution_id: first.execution_id, duplicate: true });
    expect(await executions()).toHaveLength(1);
  });

  it("refuses a bad signature, a tampered body and another sender's secret with 400 and starts nothing", async () => {
    const before = (await executions()).length;
    const body = JSON.stringify({ data: { order: "B-1" } });
    const headers = signed(body);
    const tampered = await post(workflowId, body.replace("B-1", "B-2"), headers);
    expect(tampered.status).toBe(400);
    expect(await tampered.json()).toMatchObject({ error: { code: "invalid_signature", message: expect.stringMatching(/signature/i) } });
    const forged = await post(workflowId, body, signed(body, { secret: OTHER_SECRET }));
    expect(forged.status).toBe(400);
    expect(await forged.json()).toMatchObject({ error: { code: "invalid_signature" } });
    const unsigned = await post(workflowId, body, { "content-type": "application/json" });
    expect(unsigned.status).toBe(400);
    expect(await unsigned.json()).toMatchObject({ error: { code: "missing_signature" } });
    expect(await executions()).toHaveLength(before);
  });

  it("refuses a replay of a captured request once its timestamp is outside the tolerance", async () => {
    const before = (await executions()).length;
    const body = JSON.stringify({ data: { order: "C-3" } });
    const captured = signed(body, { id: `msg_${run}_old`, at: new Date(Date.now() - 10 * 60 * 1000) });
    const replay = await post(workflowId, body, captured);
    expect(replay.status).toBe(400);
    const answer = (await replay.json()) as { error: { code: string; message: string; details: unknown } };
    expect(answer.error.code).toBe("invalid_signature");
    expect(answer.error.message).toMatch(/timestamp/i);
    expect(await executions()).toHaveLength(before);
  });

  it("answers 404 for an unknown workflow, one without a secret and a path without an id; 409 for an inactive workflow", async () => {
    const body = JSON.stringify({ data: {} });
    const unknown = await post(crypto.randomUUID(), body, signed(body));
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { code: "workflow_not_found" } });
    const noId = await post("not-a-uuid", body, signed(body));
    expect(noId.status).toBe(404);
    const withoutSecret = (await sql<{ id: string }>`
      insert into public.workflows (organization_id, name, definition, trigger_type)
      values (${organizationId}::uuid, 'No secret', (select definition from public.workflows where id = ${workflowId}::uuid), 'webhook')
      returning id`.execute(db)).rows[0]!.id;
    expect((await post(withoutSecret, body, signed(body))).status).toBe(404);

    await sql`update public.workflows set is_active = false where id = ${workflowId}::uuid`.execute(db);
    const inactive = await post(workflowId, body, signed(body));
    expect(inactive.status).toBe(409);
    expect(await inactive.json()).toMatchObject({ error: { code: "workflow_inactive" } });
    await sql`update public.workflows set is_active = true where id = ${workflowId}::uuid`.execute(db);
  });

  it("keeps the secret out of reach of API roles: only the service role's audited function reads it", async () => {
    const denied = await asOwner(async (trx) => {
      try {
        await sql`select public.workflow_webhook_secret_for_verification(${workflowId}::uuid)`.execute(trx);
        return null;
      } catch (error) {
        return (error as { code?: string }).code;
      }
    });
    expect(denied).toBe("42501");
    const reads = await sql<{ n: number }>`
      select count(*)::int as n from public.audit_logs
      where action = 'credential_read' and resource = 'workflows' and resource_id = ${workflowId}`.execute(db);
    expect(reads.rows[0]!.n).toBeGreaterThanOrEqual(1);
  });
});
