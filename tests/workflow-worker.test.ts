// The workflow worker against the real database and a local HTTP server that speaks the providers' protocols
// (OpenAI chat completions, Anthropic messages) and an ERP-like JSON API; nothing reaches the internet (a resolver
// that knows only this machine, and the SSRF flag for private targets). Proves: an ai_agent node end to end (prompt
// rendered from the input and an earlier http_request node, the key read through the audited connector function,
// tokens and cost from the response and ai_model_prices), the monthly budget stop, retry classification, the SSRF
// guard on a provider's base URL, an http_request through an integration's credentials, event-triggered
// workflows stopping 8 levels deep (through the edge function and the gateway), and a project automation whose
// create_task node adds one task even when a stale worker retries the run.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { sql, type Kysely } from "kysely";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createDatabase, type UntypedDatabase } from "../supabase/functions/_shared/db.ts";
import { drain, executeRun, retryOnSerializationFailure, type ClaimedRun, type WorkerOptions } from "../supabase/functions/workflow-worker/worker.ts";
import { testEnv } from "./helpers/env.ts";
import { anonKey, serviceRoleKey } from "./helpers/jwt.ts";

const gatewayUrl = inject("gatewayUrl");
const run = `ww${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const API_KEY = "sk-vitest-local-provider-key-0001";
const INTEGRATION_KEY = "lin_api_vitest_integration_key_42";

interface Seen {
  path: string;
  authorization: string | undefined;
  body: Record<string, unknown>;
}

type Behaviour = (req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>, count: number) => void;

class ProviderServer {
  readonly seen: Seen[] = [];
  private readonly behaviours = new Map<string, Behaviour>();
  private readonly counts = new Map<string, number>();
  private server: Server | null = null;
  port = 0;

  on(path: string, behaviour: Behaviour): void {
    this.behaviours.set(path, behaviour);
  }

  url(path = ""): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let body: Record<string, unknown> = {};
        try {
          body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
        } catch {
          body = { raw: text };
        }
        const path = (req.url ?? "/").split("?")[0] ?? "/";
        this.seen.push({ path, authorization: req.headers.authorization, body });
        const count = (this.counts.get(path) ?? 0) + 1;
        this.counts.set(path, count);
        const behaviour = this.behaviours.get(path) ?? ((_q, s) => s.writeHead(404).end("{}"));
        behaviour(req, res, body, count);
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve));
    this.port = (this.server?.address() as AddressInfo).port;
  }

  at(path: string): Seen[] {
    return this.seen.filter((s) => s.path === path);
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }
}

const sendJson = (res: ServerResponse, status: number, body: unknown) =>
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));

/** An OpenAI chat completion answering with the last user message echoed and fixed usage. */
const chatCompletion: Behaviour = (_req, res, body) => {
  const messages = (body.messages ?? []) as Array<{ role: string; content: string }>;
  sendJson(res, 200, {
    id: "chatcmpl-vitest", object: "chat.completion", created: Math.floor(Date.now() / 1000),
    model: "vitest-model-2026-01-01",
    choices: [{ index: 0, finish_reason: "stop", message: { role: "assistant", content: `Noted: ${messages.at(-1)?.content ?? ""}` } }],
    usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 },
  });
};

const provider = new ProviderServer();
let db: Kysely<UntypedDatabase>;
let ownerId = "";
let organizationId = "";

// Only this machine resolves: a lookup of any other host fails at once instead of waiting for a DNS timeout.
const lookup = async (hostname: string) => {
  if (hostname === "localhost") return ["127.0.0.1"];
  throw Object.assign(new Error(`${hostname} does not resolve in tests`), { code: "ENOTFOUND" });
};

function options(extra: Partial<WorkerOptions> = {}): WorkerOptions {
  return { db, workerId: `test-${run}`, allowPrivateTargets: true, lookup, batchSize: 10, ...extra };
}

async function asOwner<T>(work: (trx: Kysely<UntypedDatabase>) => Promise<T>): Promise<T> {
  return await db.transaction().execute(async (trx) => {
    await sql`select set_config('role', 'authenticated', true),
                     set_config('request.jwt.claims', ${JSON.stringify({ sub: ownerId, role: "authenticated" })}, true)`.execute(trx);
    return await work(trx);
  });
}

async function one<T>(query: ReturnType<typeof sql<T>>): Promise<T> {
  const row = (await query.execute(db)).rows[0];
  if (!row) throw new Error("no row");
  return row;
}

async function createProviderConfig(fields: { name: string; provider: string; baseUrl: string; model: string; budget?: number }): Promise<string> {
  return await asOwner(async (trx) => {
    const row = (await sql<{ id: string }>`
      insert into public.ai_provider_configs (organization_id, name, provider, base_url, default_model, monthly_budget_usd)
      values (${organizationId}::uuid, ${fields.name}, ${fields.provider}, ${fields.baseUrl}, ${fields.model}, ${fields.budget ?? null})
      returning id`.execute(trx)).rows[0];
    await sql`select public.set_ai_provider_api_key(${row!.id}::uuid, ${API_KEY})`.execute(trx);
    return row!.id;
  });
}

async function createWorkflow(definition: unknown, trigger: { type?: string; config?: unknown } = {}): Promise<string> {
  return (await one(sql<{ id: string }>`
    insert into public.workflows (organization_id, name, definition, trigger_type, trigger_config, retry_delay)
    values (${organizationId}::uuid, ${"wf " + run}, cast(${JSON.stringify(definition)}::text as jsonb), ${trigger.type ?? "manual"},
            cast(${JSON.stringify(trigger.config ?? {})}::text as jsonb), interval '1 second')
    returning id`)).id;
}

async function start(workflowId: string, input: unknown): Promise<string> {
  return await asOwner(async (trx) =>
    (await sql<{ id: string }>`select public.start_workflow(${workflowId}::uuid, cast(${JSON.stringify(input)}::text as jsonb)) as id`
      .execute(trx)).rows[0]!.id);
}

interface ExecutionRow {
  status: string;
  output: Record<string, Record<string, unknown>> | null;
  error: Record<string, unknown> | null;
}

const execution = (id: string) =>
  one(sql<ExecutionRow>`select status, output, error from public.workflow_executions where id = ${id}::uuid`);

interface TaskRow {
  status: string;
  attempt: number;
  model: string;
  prompt: string;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  total_tokens: number | null;
  cost_usd: string | null;
  latency_ms: number | null;
  error: Record<string, unknown> | null;
}

const task = (executionId: string) =>
  one(sql<TaskRow>`select status, attempt, model, prompt, prompt_tokens, completion_tokens, total_tokens, cost_usd::text,
                          latency_ms, error
                   from public.ai_agent_tasks where execution_id = ${executionId}::uuid`);

/** Makes retries of this organization's runs due now instead of after their backoff. */
const makeDue = () => sql`update public.workflow_runs set run_at = now() where organization_id = ${organizationId}::uuid and status = 'queued'`.execute(db);

beforeAll(async () => {
  db = createDatabase(testEnv().dbUrl, { max: 10, applicationName: "workflow-worker-test" });
  // The queue's concurrency test completes every run it claims; these tests run after it, not beside it.
  for (;;) {
    const busy = await one(sql<{ n: number }>`select count(*)::int as n from pg_stat_activity where application_name = 'workflow-queue-test'`);
    if (busy.n === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  await provider.start();
  provider.on("/v1/chat/completions", chatCompletion);
  provider.on("/erp/invoices/INV-7", (_q, res) => sendJson(res, 200, { invoice: "INV-7", amount: 4200 }));
  const user = await one(sql<{ id: string }>`
    insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
    values ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated', 'authenticated',
            ${run + "@example.test"}, '{}', '{}', now(), now())
    returning id`);
  ownerId = user.id;
  organizationId = (await one(sql<{ id: string }>`
    insert into public.organizations (name, slug, created_by) values ('Worker tests', ${run}, ${ownerId}::uuid) returning id`)).id;
  await sql`insert into public.organization_members (organization_id, user_id, role_id)
            select ${organizationId}::uuid, ${ownerId}::uuid, id from public.roles where organization_id is null and key = 'owner'`.execute(db);
  // A price for the local test model: 1,000 USD per million prompt tokens and 2,000 per million completion tokens.
  await sql`insert into public.ai_model_prices (provider, model, input_usd_per_million, output_usd_per_million, source)
            values ('local', 'vitest-model', 1000, 2000, 'test') on conflict do nothing`.execute(db);
  // Nothing queued by earlier suites (or the demo data) takes part in these runs.
  await sql`update public.workflow_runs set run_at = now() + interval '1 year'
            where status = 'queued' and organization_id <> ${organizationId}::uuid`.execute(db);
});

afterAll(async () => {
  await sql`delete from public.organizations where id = ${organizationId}::uuid`.execute(db);
  await sql`delete from auth.users where id = ${ownerId}::uuid`.execute(db);
  await sql`delete from public.ai_model_prices where provider = 'local' and model = 'vitest-model'`.execute(db);
  await db.destroy();
  await provider.stop();
});

describe("the workflow worker", () => {
  it("runs an http_request through an integration and then an AI node against a local OpenAI-compatible server, with tokens and cost", async () => {
    const config = await createProviderConfig({ name: `local ${run}`, provider: "local", baseUrl: provider.url("/v1"), model: "vitest-model" });
    const integration = await asOwner(async (trx) => {
      const row = (await sql<{ id: string }>`
        insert into public.integrations (organization_id, provider, display_name) values (${organizationId}::uuid, 'linear', 'ERP')
        returning id`.execute(trx)).rows[0]!;
      await sql`select public.set_integration_credentials(${row.id}::uuid, cast(${JSON.stringify({ api_key: INTEGRATION_KEY })}::text as jsonb))`.execute(trx);
      return row.id;
    });
    const workflow = await createWorkflow({
      nodes: [
        { id: "fetch", type: "task", name: "Fetch", config: { action: "http_request",
          params: { url: provider.url("/erp/invoices/{{input.invoice}}"), integration_id: integration } } },
        { id: "note", type: "ai_agent", name: "Note", config: { provider_config_id: config, system: "You write ledger notes.",
          prompt: "Summarise invoice {{input.invoice}} of {{nodes.fetch.body.amount}} EUR", max_tokens: 50, temperature: 0.2 } },
      ],
      edges: [{ from: "fetch", to: "note" }],
    });
    const id = await start(workflow, { invoice: "INV-7" });
    const summary = await drain(options());
    expect(summary).toMatchObject({ completed: 2, failed: 0, retrying: 0 });

    const [erp] = provider.at("/erp/invoices/INV-7");
    expect(erp?.authorization).toBe(`Bearer ${INTEGRATION_KEY}`);
    const [call] = provider.at("/v1/chat/completions");
    expect(call?.authorization).toBe(`Bearer ${API_KEY}`);
    expect(call?.body).toMatchObject({
      model: "vitest-model", max_tokens: 50, temperature: 0.2,
      messages: [{ role: "system", content: "You write ledger notes." }, { role: "user", content: "Summarise invoice INV-7 of 4200 EUR" }],
    });

    const done = await execution(id);
    expect(done.status).toBe("succeeded");
    expect(done.output?.note).toMatchObject({
      text: "Noted: Summarise invoice INV-7 of 4200 EUR", model: "vitest-model-2026-01-01",
      usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 },
    });
    // 12 * 1000 / 1e6 + 5 * 2000 / 1e6, priced by the listed prefix of the dated model name.
    expect(await task(id)).toMatchObject({ status: "succeeded", attempt: 1, prompt_tokens: 12, completion_tokens: 5,
                                            total_tokens: 17, cost_usd: "0.02200000" });
    const reads = await one(sql<{ n: number }>`
      select count(*)::int as n from public.audit_logs where action = 'credential_read' and resource_id in (${config}, ${integration})
        and organization_id = ${organizationId}::uuid`);
    expect(reads.n).toBe(2);
  });

  it("stops new AI tasks on a provider configuration once its monthly budget is spent, without calling the provider", async () => {
    const config = await createProviderConfig({ name: `budget ${run}`, provider: "local", baseUrl: provider.url("/v1"),
                                                model: "vitest-model", budget: 0.03 });
    const workflow = await createWorkflow({
      nodes: [{ id: "ask", type: "ai_agent", name: "Ask", config: { provider_config_id: config, prompt: "Say {{input.n}}" } }], edges: [],
    });
    const first = await start(workflow, { n: 1 });
    await drain(options());
    const second = await start(workflow, { n: 2 });
    await drain(options());
    expect((await execution(first)).status).toBe("succeeded");
    expect((await execution(second)).status).toBe("succeeded"); // 0.022 spent before it: under 0.03
    const callsBefore = provider.at("/v1/chat/completions").length;
    const third = await start(workflow, { n: 3 });
    expect(await drain(options())).toMatchObject({ claimed: 1, failed: 1 });
    expect(provider.at("/v1/chat/completions").length).toBe(callsBefore);
    const refused = await execution(third);
    expect(refused.status).toBe("failed");
    expect(refused.error).toMatchObject({ code: "node_failed", node_id: "ask", error: { code: "budget_exceeded" } });
    const refusedTask = await task(third);
    expect(refusedTask.status).toBe("failed");
    expect(String(refusedTask.error?.message)).toMatch(/has spent its monthly budget of 0\.03 USD/);
  });

  it("retries a provider's 500 with backoff and fails a 400 at once", async () => {
    provider.on("/flaky/v1/chat/completions", (req, res, body, count) =>
      count === 1 ? sendJson(res, 500, { error: { message: "overloaded", type: "server_error" } }) : chatCompletion(req, res, body, count));
    provider.on("/broken/v1/chat/completions", (_q, res) => sendJson(res, 400, { error: { message: "bad model", type: "invalid_request_error" } }));
    const flaky = await createProviderConfig({ name: `flaky ${run}`, provider: "local", baseUrl: provider.url("/flaky/v1"), model: "vitest-model" });
    const broken = await createProviderConfig({ name: `broken ${run}`, provider: "local", baseUrl: provider.url("/broken/v1"), model: "vitest-model" });
    const node = (config: string) => ({ nodes: [{ id: "ask", type: "ai_agent", name: "Ask", config: { provider_config_id: config, prompt: "Hi", max_retries: 2 } }], edges: [] });
    const flakyRun = await start(await createWorkflow(node(flaky)), {});
    const brokenRun = await start(await createWorkflow(node(broken)), {});
    expect(await drain(options())).toMatchObject({ claimed: 2, retrying: 1, failed: 1 });
    expect(await task(flakyRun)).toMatchObject({ status: "queued", attempt: 1, error: { code: "http_500", status: 500 } });
    const failed = await execution(brokenRun);
    expect(failed.status).toBe("failed");
    expect(failed.error).toMatchObject({ attempts: 1, error: { code: "http_400", status: 400 } });
    await makeDue();
    expect(await drain(options())).toMatchObject({ completed: 1 });
    expect((await execution(flakyRun)).status).toBe("succeeded");
    expect(await task(flakyRun)).toMatchObject({ status: "succeeded", attempt: 2 });
  });

  it("calls Anthropic's messages API through @anthropic-ai/sdk and prices the answer from the list", async () => {
    provider.on("/anthropic/v1/messages", (_q, res, body) => sendJson(res, 200, {
      id: "msg_vitest", type: "message", role: "assistant", model: body.model, stop_reason: "end_turn", stop_sequence: null,
      content: [{ type: "text", text: "Bonjour" }], usage: { input_tokens: 10, output_tokens: 20 },
    }));
    const config = await createProviderConfig({ name: `anthropic ${run}`, provider: "anthropic", baseUrl: provider.url("/anthropic"),
                                                model: "claude-3-5-haiku-20241022" });
    const id = await start(await createWorkflow({
      nodes: [{ id: "hello", type: "ai_agent", name: "Hello", config: { provider_config_id: config, system: "Be brief", prompt: "Say hello in {{input.lang}}" } }],
      edges: [],
    }), { lang: "French" });
    expect(await drain(options())).toMatchObject({ completed: 1 });
    const [call] = provider.at("/anthropic/v1/messages");
    expect(call?.body).toMatchObject({ model: "claude-3-5-haiku-20241022", max_tokens: 1024, system: "Be brief",
                                       messages: [{ role: "user", content: "Say hello in French" }] });
    // 10 * 0.80 / 1e6 + 20 * 4.00 / 1e6
    expect(await task(id)).toMatchObject({ status: "succeeded", prompt_tokens: 10, completion_tokens: 20, cost_usd: "0.00008800" });
    expect((await execution(id)).output?.hello).toMatchObject({ text: "Bonjour" });
  });

  it("refuses a provider base URL on a private address unless private targets are allowed, without retrying", async () => {
    const config = await createProviderConfig({ name: `private ${run}`, provider: "local", baseUrl: provider.url("/v1"), model: "vitest-model" });
    const calls = provider.at("/v1/chat/completions").length;
    const id = await start(await createWorkflow({
      nodes: [{ id: "ask", type: "ai_agent", name: "Ask", config: { provider_config_id: config, prompt: "Hi", max_retries: 3 } }], edges: [],
    }), {});
    expect(await drain(options({ allowPrivateTargets: false }))).toMatchObject({ failed: 1 });
    expect((await execution(id)).error).toMatchObject({ attempts: 1, error: { code: "address_refused" } });
    expect(provider.at("/v1/chat/completions").length).toBe(calls);
  });

  it("starts event-triggered workflows whose filter the payload contains, and stops a workflow that triggers itself 8 levels deep", async () => {
    const looping = await createWorkflow(
      { nodes: [{ id: "again", type: "task", name: "Again", config: { action: "emit_event",
        params: { event_type: "workflow.event", payload: { loop: run } } } }], edges: [] },
      { type: "event", config: { event_type: "workflow.event", filter: { loop: run } } });
    const ignored = await one(sql<{ id: string }>`
      select private.emit_event(${organizationId}::uuid, 'workflow.event', cast(${JSON.stringify({ loop: "someone else" })}::text as jsonb)) as id`);
    expect((await one(sql<{ n: number }>`select count(*)::int as n from public.workflow_executions where workflow_id = ${looping}::uuid`)).n).toBe(0);
    expect(ignored.id).toBeTruthy();
    const first = await one(sql<{ id: string }>`
      select private.emit_event(${organizationId}::uuid, 'workflow.event', cast(${JSON.stringify({ loop: run, n: 1 })}::text as jsonb)) as id`);

    // The deployed function does the work: the gateway's workflow-worker, as the service role, until nothing is due.
    const endpoint = `${gatewayUrl}/functions/v1/workflow-worker`;
    const anon = await fetch(endpoint, { method: "POST", headers: { authorization: `Bearer ${await anonKey()}` } });
    expect(anon.status).toBe(403);
    expect(await anon.json()).toMatchObject({ error: { code: "service_role_required" } });
    for (;;) {
      const response = await fetch(endpoint, { method: "POST", headers: { authorization: `Bearer ${await serviceRoleKey()}` } });
      expect(response.status).toBe(200);
      const body = (await response.json()) as { claimed: number };
      if (body.claimed === 0) break;
    }

    const chain = (await sql<{ causation_depth: number; status: string; trigger_type: string; event_id: string }>`
      select causation_depth, status, trigger_type, input ->> 'event_id' as event_id from public.workflow_executions
      where workflow_id = ${looping}::uuid order by causation_depth`.execute(db)).rows;
    expect(chain.map((e) => e.causation_depth)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(chain.every((e) => e.status === "succeeded" && e.trigger_type === "event")).toBe(true);
    expect(chain[0]?.event_id).toBe(first.id);
    const refusals = (await sql<{ causation_depth: number; reason: string }>`
      select causation_depth, reason from public.workflow_event_refusals where workflow_id = ${looping}::uuid`.execute(db)).rows;
    expect(refusals).toEqual([{ causation_depth: 8, reason: "causation_depth_exceeded" }]);
  }, 60_000);
  it("runs a project automation: a new task starts the project's event workflow, whose create_task node adds one review subtask although a stale worker tries the run too", async () => {
    const project = (await one(sql<{ id: string }>`
      insert into public.projects (organization_id, owner_id, title, visibility)
      values (${organizationId}::uuid, ${ownerId}::uuid, ${"Launch " + run}, 'private') returning id`)).id;
    const definition = { nodes: [{ id: "review", type: "task", name: "Review", config: { action: "create_task",
      params: { title: "Review: {{input.data.title}}", parent_task_id: "{{input.data.task_id}}", priority: "high", tags: ["review"] } } }], edges: [] };
    // Only tasks people create (workflow_run_id null): the review task the workflow adds does not start it again.
    const trigger = { event_type: "task.created", filter: { workflow_run_id: null } };
    const workflow = (await one(sql<{ id: string }>`
      insert into public.workflows (organization_id, project_id, name, definition, trigger_type, trigger_config, retry_delay)
      values (${organizationId}::uuid, ${project}::uuid, ${"review " + run}, cast(${JSON.stringify(definition)}::text as jsonb),
              'event', cast(${JSON.stringify(trigger)}::text as jsonb), interval '1 second')
      returning id`)).id;
    const taskId = await asOwner(async (trx) => (await sql<{ id: string }>`
      insert into public.tasks (project_id, title) values (${project}::uuid, 'Write the launch post') returning id`.execute(trx)).rows[0]!.id);
    const started = await one(sql<{ id: string }>`select id from public.workflow_executions where workflow_id = ${workflow}::uuid`);

    // A first worker claims the run and stops answering; its lease runs out (moved into the past here).
    const claimed = (await sql<ClaimedRun>`select * from public.claim_workflow_runs(${"stale-" + run}, 10, interval '5 minutes')`.execute(db)).rows;
    const stale = claimed.find((r) => r.execution_id === started.id);
    expect(stale).toBeDefined();
    await sql`update public.workflow_runs set run_at = now() - interval '1 second', locked_until = now() - interval '1 second'
              where id = ${stale!.id}::uuid`.execute(db);
    expect(await drain(options())).toMatchObject({ claimed: 1, completed: 1, failed: 0 });
    // The stale worker comes back with its old lease: refused, and nothing is created twice.
    expect(await executeRun(stale!, options())).toBe("lease_lost");

    const created = (await sql<{ id: string; title: string; parent_task_id: string; priority: string; tags: string[]; created_by: string | null; workflow_run_id: string }>`
      select id, title, parent_task_id, priority, tags, created_by, workflow_run_id from public.tasks
      where project_id = ${project}::uuid and id <> ${taskId}::uuid`.execute(db)).rows;
    expect(created).toHaveLength(1);
    expect(created[0]).toMatchObject({ title: "Review: Write the launch post", parent_task_id: taskId, priority: "high", tags: ["review"],
      created_by: null, workflow_run_id: stale!.id });
    expect(await execution(started.id)).toMatchObject({ status: "succeeded", output: { review: { task_id: created[0]!.id, created: true } } });
    expect((await one(sql<{ n: number }>`select count(*)::int as n from public.workflow_executions where workflow_id = ${workflow}::uuid`)).n).toBe(1);
  });
});

describe("the worker's database calls", () => {
  const failure = (code: string) => Object.assign(new Error(`failed with ${code}`), { code });

  it("run once more after a 40001 (the rolled-back call is safe to repeat) and answer what the second run answers", async () => {
    const answers: Array<() => string> = [() => { throw failure("40001"); }, () => "lease_lost"];
    let calls = 0;
    await expect(retryOnSerializationFailure(async () => answers[calls++]!())).resolves.toBe("lease_lost");
    expect(calls).toBe(2);
  });

  it("do not repeat a call that failed otherwise, nor a second 40001", async () => {
    let calls = 0;
    await expect(retryOnSerializationFailure(async () => { calls++; throw failure("23514"); })).rejects.toMatchObject({ code: "23514" });
    expect(calls).toBe(1);
    calls = 0;
    await expect(retryOnSerializationFailure(async () => { calls++; throw failure("40001"); })).rejects.toMatchObject({ code: "40001" });
    expect(calls).toBe(2);
  });
});
