// The workflow worker's work, without Deno globals (the edge function, `npm start`'s loop and vitest run this same
// code): claim due runs in batches (public.claim_workflow_runs: for update skip locked + a lease token), execute each,
// and end it with complete_workflow_run / fail_workflow_run (or their AI task wrappers), which advance the graph in
// the database. Conditions, approvals and skipped branches never reach a worker.
//
//   ai_agent  begin_ai_agent_task (provider, budget, prompt), the key through ai_provider_api_key_for_request, the
//             provider's official SDK (openai for openai, google and local OpenAI-compatible endpoints,
//             @anthropic-ai/sdk for anthropic), then complete_ai_agent_task with the response's token counts.
//   task      a small registry of actions: emit_event (in SQL: emit_workflow_event), create_task (in SQL:
//             create_workflow_task, 57-work-automations.sql) and http_request (rendered and
//             authorised in SQL by prepare_workflow_http_request, sent here through the SSRF guard).
//
// Failures are classified: timeouts, lost connections, 408, 409, 429 and 5xx answers are retried (the run's
// exponential backoff); anything else (4xx, refused addresses, bad params, a missing key) fails the run at once.
import Anthropic from "@anthropic-ai/sdk";
import { lookup as dnsLookup } from "node:dns/promises";
import { sql, type Kysely } from "kysely";
import OpenAI from "openai";
import type { UntypedDatabase } from "../_shared/db.ts";
import { assertPublicHost, RefusedAddressError, type AddressLookup } from "../_shared/ssrf.ts";
import { readResponseText } from "../_shared/response-text.ts";

export interface WorkerOptions {
  db: Kysely<UntypedDatabase>;
  /** Identifies this worker in workflow_runs.locked_by. */
  workerId: string;
  /** Allow loopback/private/link-local targets (AI base URLs, http_request URLs). Local development and tests only. */
  allowPrivateTargets: boolean;
  /** Runs claimed per batch (default 10) and executed at the same time. */
  batchSize?: number;
  /** Lease of a claim, seconds (default 300): longer than the slowest run of a batch may take. */
  leaseSeconds?: number;
  /** Timeout of an http_request action, ms (default 30 000). AI calls use the node's timeout_ms. */
  httpTimeoutMs?: number;
  lookup?: AddressLookup;
  fetch?: typeof fetch;
}

/** A claimed run, as public.claim_workflow_runs returns it (the columns the worker uses). */
export interface ClaimedRun {
  id: string;
  execution_id: string;
  node_id: string;
  node_type: string;
  attempt: number;
  max_attempts: number;
  lease_token: string;
  input: { node?: { type?: string; name?: string; config?: Record<string, unknown> }; context?: unknown };
}

export type RunOutcome = "completed" | "retrying" | "failed" | "lease_lost";

export interface WorkSummary {
  claimed: number;
  completed: number;
  retrying: number;
  failed: number;
  lease_lost: number;
}

interface RunError {
  code: string;
  message: string;
  status?: number;
}

const RESPONSE_BODY_LIMIT = 64 * 1024;
const ANTHROPIC_DEFAULT_MAX_TOKENS = 1024;
const GOOGLE_OPENAI_BASE_URL = "https://generativelanguage.googleapis.com/v1beta/openai/";

export const systemLookup: AddressLookup = async (hostname) =>
  (await dnsLookup(hostname, { all: true, verbatim: true })).map((entry) => entry.address);

async function asServiceRole<T>(db: Kysely<UntypedDatabase>, run: (trx: Kysely<UntypedDatabase>) => Promise<T>): Promise<T> {
  return await db.transaction().execute(async (trx) => {
    await sql`select set_config('role', 'service_role', true), set_config('request.jwt.claims', '{"role":"service_role"}', true)`
      .execute(trx);
    return await run(trx);
  });
}

/**
 * Runs `call` again once when it fails with SQLSTATE 40001: its transaction was rolled back, so running it again is
 * safe. complete_workflow_run raises it when a run's lease ends during the very call (the retry answers lease_lost).
 */
export async function retryOnSerializationFailure<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if ((error as { code?: unknown } | null)?.code !== "40001") throw error;
    return await call();
  }
}

async function scalar<T>(db: Kysely<UntypedDatabase>, query: ReturnType<typeof sql<{ value: T }>>): Promise<T> {
  return await retryOnSerializationFailure(() => asServiceRole(db, async (trx) => {
    const row = (await query.execute(trx)).rows[0];
    if (!row) throw new Error("the database returned no row");
    return row.value;
  }));
}

const json = (value: unknown) => sql`cast(${JSON.stringify(value)}::text as jsonb)`;

export async function claim(db: Kysely<UntypedDatabase>, workerId: string, batchSize: number, leaseSeconds: number): Promise<ClaimedRun[]> {
  return await asServiceRole(db, async (trx) =>
    (await sql<ClaimedRun>`
      select id, execution_id, node_id, node_type, attempt, max_attempts, lease_token, input
      from public.claim_workflow_runs(${workerId}, ${batchSize}::integer, make_interval(secs => ${leaseSeconds}::integer))`
      .execute(trx)).rows);
}

async function completeRun(db: Kysely<UntypedDatabase>, run: ClaimedRun, output: unknown): Promise<RunOutcome> {
  return await scalar<RunOutcome>(db, sql<{ value: RunOutcome }>`
    select public.complete_workflow_run(${run.id}::uuid, ${run.lease_token}::uuid, ${json(output)}) as value`);
}

async function failRun(db: Kysely<UntypedDatabase>, run: ClaimedRun, error: RunError, retryable: boolean): Promise<RunOutcome> {
  return await scalar<RunOutcome>(db, sql<{ value: RunOutcome }>`
    select public.fail_workflow_run(${run.id}::uuid, ${run.lease_token}::uuid, ${json(error)}, ${retryable}) as value`);
}

/** Whether a failed call may succeed when tried again, by HTTP status (null: no answer at all). */
export function isRetryableStatus(status: number | null): boolean {
  return status === null || status === 408 || status === 409 || status === 429 || status >= 500;
}

function message(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, 1000);
}

/** A provider SDK's error as a run error: APIError subclasses carry the HTTP status; connection errors none. */
export function classifyProviderError(error: unknown): { error: RunError; retryable: boolean } {
  if (error instanceof RefusedAddressError) return { error: { code: "address_refused", message: error.message }, retryable: false };
  if (error instanceof OpenAI.APIConnectionTimeoutError || error instanceof Anthropic.APIConnectionTimeoutError) {
    return { error: { code: "timeout", message: message(error) }, retryable: true };
  }
  if (error instanceof OpenAI.APIConnectionError || error instanceof Anthropic.APIConnectionError) {
    return { error: { code: "connection_failed", message: message(error) }, retryable: true };
  }
  if (error instanceof OpenAI.APIError || error instanceof Anthropic.APIError) {
    const status = typeof error.status === "number" ? error.status : null;
    return { error: { code: status === null ? "provider_error" : `http_${status}`, message: message(error), ...(status === null ? {} : { status }) },
             retryable: isRetryableStatus(status) };
  }
  return { error: { code: "provider_error", message: message(error) }, retryable: true };
}

interface ReadyAiTask {
  status: "ready";
  task_id: string;
  provider_config_id: string;
  provider: "openai" | "anthropic" | "google" | "local";
  base_url: string | null;
  has_credentials: boolean;
  model: string;
  system: string | null;
  messages: Array<{ role: "user" | "assistant"; content: string }>;
  max_tokens: number | null;
  temperature: number | null;
  timeout_ms: number;
}

type BeginResult = ReadyAiTask | { status: "refused" | "lease_lost"; error?: RunError };

export interface ProviderAnswer {
  text: string;
  model: string;
  promptTokens: number | null;
  completionTokens: number | null;
}

/** One chat call through the provider's official SDK; throws the SDK's errors. */
export async function callProvider(task: ReadyAiTask, apiKey: string, options: Pick<WorkerOptions, "fetch">): Promise<ProviderAnswer> {
  const common = {
    apiKey,
    timeout: task.timeout_ms,
    maxRetries: 0, // the run owns retries (backoff in the database)
    fetchOptions: { redirect: "error" as const },
    ...(options.fetch ? { fetch: options.fetch } : {}),
  };
  if (task.provider === "anthropic") {
    const client = new Anthropic({ ...common, ...(task.base_url ? { baseURL: task.base_url } : {}) });
    const response = await client.messages.create({
      model: task.model,
      max_tokens: task.max_tokens ?? ANTHROPIC_DEFAULT_MAX_TOKENS,
      messages: task.messages,
      ...(task.system ? { system: task.system } : {}),
      ...(task.temperature === null ? {} : { temperature: Number(task.temperature) }),
    });
    const text = response.content.map((block) => (block.type === "text" ? block.text : "")).join("");
    return { text, model: response.model, promptTokens: response.usage.input_tokens, completionTokens: response.usage.output_tokens };
  }
  const baseURL = task.base_url ?? (task.provider === "google" ? GOOGLE_OPENAI_BASE_URL : null);
  const client = new OpenAI({ ...common, ...(baseURL ? { baseURL } : {}) });
  const response = await client.chat.completions.create({
    model: task.model,
    messages: [...(task.system ? [{ role: "system" as const, content: task.system }] : []), ...task.messages],
    ...(task.max_tokens === null ? {} : task.provider === "openai" ? { max_completion_tokens: task.max_tokens } : { max_tokens: task.max_tokens }),
    ...(task.temperature === null ? {} : { temperature: Number(task.temperature) }),
  });
  return {
    text: response.choices[0]?.message?.content ?? "",
    model: response.model,
    promptTokens: response.usage?.prompt_tokens ?? null,
    completionTokens: response.usage?.completion_tokens ?? null,
  };
}

function providerHost(task: ReadyAiTask): string {
  const url = task.base_url ?? (task.provider === "anthropic" ? "https://api.anthropic.com"
    : task.provider === "google" ? GOOGLE_OPENAI_BASE_URL : "https://api.openai.com/v1");
  return new URL(url).hostname;
}

async function runAiAgent(run: ClaimedRun, options: WorkerOptions): Promise<RunOutcome> {
  const { db } = options;
  const begun = await scalar<BeginResult>(db, sql<{ value: BeginResult }>`
    select public.begin_ai_agent_task(${run.id}::uuid, ${run.lease_token}::uuid) as value`);
  if (begun.status === "lease_lost") return "lease_lost";
  if (begun.status !== "ready") return "failed";
  const fail = async (error: RunError, retryable: boolean, latencyMs: number | null = null) =>
    await scalar<RunOutcome>(db, sql<{ value: RunOutcome }>`
      select public.fail_ai_agent_task(${begun.task_id}::uuid, ${run.lease_token}::uuid, ${json(error)}, ${retryable},
                                       ${latencyMs}::integer) as value`);
  if (!begun.has_credentials && begun.provider !== "local") {
    return await fail({ code: "no_api_key", message: `AI provider configuration ${begun.provider_config_id} has no API key (set_ai_provider_api_key)` }, false);
  }
  const started = performance.now();
  try {
    await assertPublicHost(providerHost(begun), { allowPrivate: options.allowPrivateTargets, lookup: options.lookup ?? systemLookup });
    // A local endpoint without a key still gets a placeholder: the SDKs refuse to start without one.
    const apiKey = begun.has_credentials
      ? await scalar<string>(db, sql<{ value: string }>`
          select public.ai_provider_api_key_for_request(${begun.provider_config_id}::uuid,
                                                        ${`workflow ai_agent run ${run.id}`}) as value`)
      : "no-key";
    const answer = await callProvider(begun, apiKey, options);
    return await scalar<RunOutcome>(db, sql<{ value: RunOutcome }>`
      select public.complete_ai_agent_task(${begun.task_id}::uuid, ${run.lease_token}::uuid, ${answer.text}, ${answer.model},
                                           ${answer.promptTokens}::integer, ${answer.completionTokens}::integer,
                                           ${Math.round(performance.now() - started)}::integer) as value`);
  } catch (error) {
    const classified = classifyProviderError(error);
    return await fail(classified.error, classified.retryable, Math.round(performance.now() - started));
  }
}

interface PreparedRequest {
  status: "ready";
  method: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
}


async function runHttpRequest(run: ClaimedRun, options: WorkerOptions): Promise<RunOutcome> {
  const prepared = await scalar<PreparedRequest | { status: "refused" | "lease_lost" }>(options.db,
    sql<{ value: PreparedRequest | { status: "refused" | "lease_lost" } }>`
      select public.prepare_workflow_http_request(${run.id}::uuid, ${run.lease_token}::uuid) as value`);
  if (prepared.status === "lease_lost") return "lease_lost";
  if (prepared.status !== "ready") return "failed";
  let target: URL;
  try {
    target = new URL(prepared.url);
    if (target.protocol !== "https:" && target.protocol !== "http:") throw new Error("only http and https URLs");
  } catch (error) {
    return await failRun(options.db, run, { code: "invalid_params", message: `params.url is not an http(s) URL: ${message(error)}` }, false);
  }
  const started = performance.now();
  try {
    await assertPublicHost(target.hostname, { allowPrivate: options.allowPrivateTargets, lookup: options.lookup ?? systemLookup });
    const hasBody = prepared.body !== null && prepared.body !== undefined && prepared.method !== "GET";
    const headers: Record<string, string> = { "user-agent": "workflow-worker/1", ...prepared.headers };
    if (hasBody && typeof prepared.body !== "string") headers["content-type"] = "application/json";
    const response = await (options.fetch ?? fetch)(target, {
      method: prepared.method,
      headers,
      ...(hasBody ? { body: typeof prepared.body === "string" ? prepared.body : JSON.stringify(prepared.body) } : {}),
      redirect: "manual",
      signal: AbortSignal.timeout(options.httpTimeoutMs ?? 30_000),
    });
    const text = await readResponseText(response, RESPONSE_BODY_LIMIT);
    let body: unknown = text;
    if ((response.headers.get("content-type") ?? "").includes("json")) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    const durationMs = Math.round(performance.now() - started);
    if (response.status >= 200 && response.status < 300) {
      return await completeRun(options.db, run, { status: response.status, body, duration_ms: durationMs });
    }
    const redirect = response.status >= 300 && response.status < 400;
    return await failRun(options.db, run, {
      code: redirect ? "redirect_refused" : `http_${response.status}`,
      message: redirect ? "http_request does not follow redirects" : text.slice(0, 500),
      status: response.status,
    }, !redirect && isRetryableStatus(response.status));
  } catch (error) {
    if (error instanceof RefusedAddressError) return await failRun(options.db, run, { code: "address_refused", message: error.message }, false);
    const timeout = error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
    return await failRun(options.db, run, { code: timeout ? "timeout" : "connection_failed", message: message(error) }, true);
  }
}

/** Executes one claimed run and ends it; never throws for the run's own failures. */
export async function executeRun(run: ClaimedRun, options: WorkerOptions): Promise<RunOutcome> {
  if (run.node_type === "ai_agent") return await runAiAgent(run, options);
  const action = run.input.node?.config?.action;
  switch (action) {
    case "emit_event":
      return await scalar<RunOutcome>(options.db, sql<{ value: RunOutcome }>`
        select public.emit_workflow_event(${run.id}::uuid, ${run.lease_token}::uuid) as value`);
    case "create_task":
      return await scalar<RunOutcome>(options.db, sql<{ value: RunOutcome }>`
        select public.create_workflow_task(${run.id}::uuid, ${run.lease_token}::uuid) as value`);
    case "http_request":
      return await runHttpRequest(run, options);
    default:
      return await failRun(options.db, run, {
        code: "unsupported_action",
        message: `this worker has no action "${String(action)}" (it runs emit_event, create_task and http_request)`,
      }, false);
  }
}

/** Claims one batch and executes it, all runs of the batch at the same time. */
export async function workOnce(options: WorkerOptions): Promise<WorkSummary> {
  const runs = await claim(options.db, options.workerId, options.batchSize ?? 10, options.leaseSeconds ?? 300);
  const summary: WorkSummary = { claimed: runs.length, completed: 0, retrying: 0, failed: 0, lease_lost: 0 };
  const outcomes = await Promise.allSettled(runs.map((run) => executeRun(run, options)));
  for (const outcome of outcomes) {
    // A database error while ending a run leaves it leased: it is claimed again once the lease runs out.
    if (outcome.status === "fulfilled") summary[outcome.value] += 1;
    else summary.lease_lost += 1;
  }
  const rejected = outcomes.find((o): o is PromiseRejectedResult => o.status === "rejected");
  if (rejected) throw rejected.reason;
  return summary;
}

/** Batches until none is due or the time budget is spent; returns the totals. */
export async function drain(options: WorkerOptions & { budgetMs?: number }): Promise<WorkSummary> {
  const deadline = performance.now() + (options.budgetMs ?? 50_000);
  const total: WorkSummary = { claimed: 0, completed: 0, retrying: 0, failed: 0, lease_lost: 0 };
  while (performance.now() < deadline) {
    const batch = await workOnce(options);
    if (batch.claimed === 0) break;
    for (const key of Object.keys(total) as Array<keyof WorkSummary>) total[key] += batch[key];
  }
  return total;
}
