// The webhook dispatcher's work, without Deno globals (the edge function, `npm start`'s loop, vitest and the benchmark
// run this same code): claim due deliveries in SQL (public.claim_webhook_deliveries: for update skip locked + lease),
// sign each per Standard Webhooks with the `standardwebhooks` library, post it with a timeout, and record the
// outcomes in one call per batch (public.record_webhook_deliveries, which applies the retry schedule and disables a
// webhook after five consecutive dead deliveries). Both calls run as service_role, the role they are granted to.
//
// Outbound requests never follow a redirect to another host (a same-origin redirect is followed, at most 3 times),
// and every target host is resolved and refused when any address is not public, unless allowPrivateTargets is set
// (local development and tests only).
import { lookup as dnsLookup } from "node:dns/promises";
import { sql, type Kysely } from "kysely";
import { Webhook } from "standardwebhooks";
import type { UntypedDatabase } from "../_shared/db.ts";
import { assertPublicHost, RefusedAddressError, type AddressLookup } from "../_shared/ssrf.ts";
import { readResponseText } from "../_shared/response-text.ts";

export interface DispatcherOptions {
  db: Kysely<UntypedDatabase>;
  /** Allow loopback/private/link-local targets. Only local development and tests set this. */
  allowPrivateTargets: boolean;
  /** Per-request timeout, ms (headers and body). Default 10 000. */
  timeoutMs?: number;
  /** Deliveries claimed per batch. Default 50. */
  batchSize?: number;
  /** Lease of a claim, seconds; must exceed the time two batches take (drain() claims one ahead). Default 300. */
  leaseSeconds?: number;
  /** Deliveries of one batch posted at the same time. Default 8. */
  concurrency?: number;
  /** Resolver for the SSRF guard. Default: the system resolver (getaddrinfo). */
  lookup?: AddressLookup;
  fetch?: typeof fetch;
  now?: () => Date;
}

/** One claimed delivery, as public.claim_webhook_deliveries returns it. */
export interface ClaimedDelivery {
  delivery_id: string;
  lease_id: string;
  webhook_id: string;
  event_id: string;
  event_type: string;
  attempt: number;
  url: string;
  headers: Record<string, string>;
  signing_secret: string;
  body: string;
}

export interface DeliveryOutcome {
  delivery_id: string;
  lease_id: string;
  status_code: number | null;
  response_body: string | null;
  error: string | null;
  duration_ms: number;
}

export interface DispatchSummary {
  claimed: number;
  delivered: number;
  failed: number;
  recorded: number;
}

const MAX_REDIRECTS = 3;
const RESPONSE_BODY_LIMIT = 2048;

export const systemLookup: AddressLookup = async (hostname) =>
  (await dnsLookup(hostname, { all: true, verbatim: true })).map((entry) => entry.address);

/** Headers of one delivery: the webhook's extra headers, then the Standard Webhooks ones (which always win). */
export function signedHeaders(delivery: ClaimedDelivery, timestamp: Date): Record<string, string> {
  const signature = new Webhook(delivery.signing_secret).sign(delivery.event_id, timestamp, delivery.body);
  return {
    ...delivery.headers,
    "content-type": "application/json",
    "user-agent": "webhook-dispatcher/1 (Standard Webhooks)",
    "webhook-id": delivery.event_id,
    "webhook-timestamp": String(Math.floor(timestamp.getTime() / 1000)),
    "webhook-signature": signature,
  };
}


function errorCode(error: unknown): string {
  if (error instanceof RefusedAddressError) return "address_refused";
  if (error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError")) return "timeout";
  return "connection_failed";
}

/** Posts one delivery (SSRF check, signing, same-host redirects only, timeout) and says how it went. */
export async function deliver(delivery: ClaimedDelivery, options: DispatcherOptions): Promise<DeliveryOutcome> {
  const fetcher = options.fetch ?? fetch;
  const started = performance.now();
  const outcome = (fields: Partial<DeliveryOutcome>): DeliveryOutcome => ({
    delivery_id: delivery.delivery_id,
    lease_id: delivery.lease_id,
    status_code: null,
    response_body: null,
    error: null,
    duration_ms: Math.round(performance.now() - started),
    ...fields,
  });
  const signal = AbortSignal.timeout(options.timeoutMs ?? 10_000);
  const headers = signedHeaders(delivery, (options.now ?? (() => new Date()))());
  let target = new URL(delivery.url);
  try {
    for (let hop = 0; ; hop++) {
      await assertPublicHost(target.hostname, {
        allowPrivate: options.allowPrivateTargets,
        lookup: options.lookup ?? systemLookup,
      });
      const response = await fetcher(target, { method: "POST", headers, body: delivery.body, redirect: "manual", signal });
      const location = response.headers.get("location");
      if (response.status >= 300 && response.status < 400 && location) {
        await response.body?.cancel().catch(() => {});
        const next = new URL(location, target);
        if (next.origin !== target.origin) {
          return outcome({ status_code: response.status, error: "redirect_refused",
                           response_body: `redirect to another host refused: ${next.origin}` });
        }
        if (hop >= MAX_REDIRECTS) return outcome({ status_code: response.status, error: "too_many_redirects" });
        // Only 307 and 308 keep the method and body; a 301/302/303 would turn the delivery into a GET.
        if (response.status !== 307 && response.status !== 308) {
          return outcome({ status_code: response.status, error: "redirect_refused",
                           response_body: "only 307 and 308 redirects keep a POST" });
        }
        target = next;
        continue;
      }
      const text = await readResponseText(response, RESPONSE_BODY_LIMIT, RESPONSE_BODY_LIMIT * 4);
      const ok = response.status >= 200 && response.status < 300;
      return outcome({ status_code: response.status, response_body: text, error: ok ? null : `http_${response.status}` });
    }
  } catch (error) {
    return outcome({ error: errorCode(error) });
  }
}

async function asServiceRole<T>(db: Kysely<UntypedDatabase>, run: (trx: Kysely<UntypedDatabase>) => Promise<T>): Promise<T> {
  return await db.transaction().execute(async (trx) => {
    await sql`select set_config('role', 'service_role', true), set_config('request.jwt.claims', '{"role":"service_role"}', true)`
      .execute(trx);
    return await run(trx);
  });
}

export async function claim(db: Kysely<UntypedDatabase>, batchSize: number, leaseSeconds: number): Promise<ClaimedDelivery[]> {
  return await asServiceRole(db, async (trx) =>
    (await sql<ClaimedDelivery>`select * from public.claim_webhook_deliveries(${batchSize}::integer, ${leaseSeconds}::integer)`
      .execute(trx)).rows);
}

export async function record(db: Kysely<UntypedDatabase>, outcomes: readonly DeliveryOutcome[]): Promise<number> {
  if (outcomes.length === 0) return 0;
  return await asServiceRole(db, async (trx) => {
    const result = await sql<{ recorded: number }>`
      select public.record_webhook_deliveries(cast(${JSON.stringify(outcomes)}::text as jsonb)) as recorded
    `.execute(trx);
    return result.rows[0]?.recorded ?? 0;
  });
}

async function mapConcurrent<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T);
    }
  });
  await Promise.all(workers);
  return results;
}

/** Claims one batch, delivers it and records the outcomes. */
export async function dispatchOnce(options: DispatcherOptions): Promise<DispatchSummary> {
  const claimed = await claim(options.db, options.batchSize ?? 50, options.leaseSeconds ?? 300);
  const outcomes = await mapConcurrent(claimed, options.concurrency ?? 8, (delivery) => deliver(delivery, options));
  const recorded = await record(options.db, outcomes);
  const delivered = outcomes.filter((o) => o.error === null).length;
  return { claimed: claimed.length, delivered, failed: claimed.length - delivered, recorded };
}

/**
 * Runs batches until none is due or the time budget is spent; returns the totals. Pipelined: the next batch is
 * claimed, and the previous outcomes recorded, while the current batch is being posted, so the database's round
 * trips overlap the HTTP work (the pool needs two connections for that).
 */
export async function drain(options: DispatcherOptions & { budgetMs?: number }): Promise<DispatchSummary> {
  const deadline = performance.now() + (options.budgetMs ?? 50_000);
  const batchSize = options.batchSize ?? 50;
  const leaseSeconds = options.leaseSeconds ?? 300;
  const total: DispatchSummary = { claimed: 0, delivered: 0, failed: 0, recorded: 0 };
  let recording: Promise<void> = Promise.resolve();
  let next: Promise<ClaimedDelivery[]> = claim(options.db, batchSize, leaseSeconds);
  try {
    for (;;) {
      const batch = await next;
      if (batch.length === 0) break;
      next = performance.now() < deadline ? claim(options.db, batchSize, leaseSeconds) : Promise.resolve([]);
      const outcomes = await mapConcurrent(batch, options.concurrency ?? 8, (delivery) => deliver(delivery, options));
      await recording;
      recording = record(options.db, outcomes).then((recorded) => {
        total.recorded += recorded;
      });
      const delivered = outcomes.filter((o) => o.error === null).length;
      total.claimed += batch.length;
      total.delivered += delivered;
      total.failed += batch.length - delivered;
    }
  } finally {
    // A claim in flight when the loop ends (an error) keeps its lease and is picked up again once it runs out.
    await Promise.allSettled([next]);
    await recording;
  }
  return total;
}
