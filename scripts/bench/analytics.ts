// Benchmark of growth analytics (issue 14, section 3). Run by `npm run bench -- analytics` (scripts/bench.sh), or
// alone against a migrated database:
//   SUPABASE_DB_URL=postgresql://... tsx scripts/bench/analytics.ts [--scale 1] [--batch 5000] [--rounds 1]
// bench.sh passes no arguments: BENCH_ANALYTICS_SCALE=0.05 npm run bench -- analytics gives a quick run.
//
// The event mix is fixed: 70% page views with {path, referrer}, 20% session starts with UTM properties, 10% orders
// with amount, currency and an e-mail address in a free-text note; visitors from a pool, times over the last 60 days.
//   (a) a plain multi-row INSERT of 200,000 events (x scale) into a copy of analytics_events without triggers or RLS
//       (same columns, constraints, indexes and monthly partitions), in batches;
//   (b) public.upsert_events() as the service role, batches of 5,000 (the same events, new ids): exact-once keys,
//       validation, redaction, IP truncation, cohorts and attribution; b/a is the throughput ratio (bar: >= 0.3).
//   (r) the redactor alone, side by side on the same props: public.redact_telemetry_metadata(props) against a no-op
//       (props itself) over every event of (b), timed in the database; the difference per event, and per kind.
//   (c) public.recompute_metrics_daily() over 90 days of 2,000,000 events (x scale) of one organization (loaded
//       directly, untimed, with triggers off): the rollups (bar: < 3 s at scale 1), as the first read after the load
//       and again once the table is vacuumed (as autovacuum leaves it); then, on its own, the explicit
//       repair rebuild of cohorts and attribution, private.rebuild_attribution() (writing every row: the load skipped
//       the triggers that keep them).
// Rounds (--rounds) repeat (a), (b) and (c); the median counts. It asserts nothing about speed; it exits 1 only when a
// phase does not do all its work.
import { randomUUID } from "node:crypto";
import { sql, type Kysely } from "kysely";
import { createDatabase, type UntypedDatabase } from "../../supabase/functions/_shared/db.ts";
import { runAsCaller, type RequestContext } from "../../supabase/functions/_shared/request-context.ts";
import { benchFail, parseNumberOptions } from "../bench-options.ts";

const HELP = `analytics benchmark

usage: tsx scripts/bench/analytics.ts [--scale X] [--batch N] [--rounds N]

  --scale X   fraction of the full sizes: 200,000 events for (a)/(b), 2,000,000 for (c) (default 1, or
              BENCH_ANALYTICS_SCALE from the environment)
  --batch N   events per upsert_events call and per plain INSERT (default 5000, at most 10000)
  --rounds N  rounds of (a), (b) and (c); the median is reported (default 1)

environment: SUPABASE_DB_URL (or DB_URL).`;

interface Options {
  scale: number;
  batch: number;
  rounds: number;
}

const fail = (message: string): never => benchFail("analytics", message);

function parseOptions(args: string[]): Options {
  const envScale = Number(process.env.BENCH_ANALYTICS_SCALE ?? "1");
  const options = parseNumberOptions("analytics", HELP, { scale: envScale, batch: 5000, rounds: 1 }, args,
    (value) => Number.isFinite(value) && value > 0);
  if (!(options.scale > 0 && options.scale <= 10) || !Number.isInteger(options.batch) || options.batch > 10_000
      || !Number.isInteger(options.rounds)) {
    fail("need 0 < --scale <= 10, a whole --batch of at most 10000 and whole --rounds");
  }
  return options;
}

const serviceRole: RequestContext = {
  role: "service_role",
  claims: { role: "service_role", iss: "supabase" },
  method: "POST",
  path: "/rest/v1/rpc/upsert_events",
  headers: {},
};

type Kind = "page_view" | "utm" | "order";
interface BenchEvent {
  organization_id: string;
  event_id: string;
  occurred_at: string;
  event_name: string;
  category: string;
  anonymous_id: string;
  session_id: string;
  ip_address: string;
  user_agent: string;
  props: Record<string, unknown>;
}

const SOURCES = [["google", "cpc"], ["facebook", "paid_social"], ["newsletter", "email"], ["partner", "referral"]] as const;

function kindOf(n: number): Kind {
  const slot = n % 10;
  return slot < 7 ? "page_view" : slot < 9 ? "utm" : "order";
}

function makeEvent(organizationId: string, n: number, visitors: number, now: number): BenchEvent {
  const visitor = (n * 7919) % visitors;
  const kind = kindOf(n);
  const [source, medium] = SOURCES[n % SOURCES.length] as readonly [string, string];
  const props: Record<string, unknown> = kind === "page_view"
    ? { path: `/products/${n % 500}`, referrer: n % 3 === 0 ? "https://www.google.com/search" : `https://shop.example/p/${n % 40}` }
    : kind === "utm"
    ? { utm_source: source, utm_medium: medium, utm_campaign: `campaign-${n % 12}`, utm_term: "boots", utm_content: `ad-${n % 5}` }
    : { amount_cents: 1500 + (n % 20000), currency: "usd", note: `gift wrap please, write to buyer${visitor}@example.com if late` };
  return {
    organization_id: organizationId,
    event_id: randomUUID(),
    occurred_at: new Date(now - ((n * 104_729) % (60 * 86_400)) * 1000).toISOString(),
    event_name: kind === "page_view" ? "page.viewed" : kind === "utm" ? "session.started" : "order.completed",
    category: "web",
    anonymous_id: `visitor-${visitor}`,
    session_id: `session-${visitor}-${Math.floor(n / 50)}`,
    ip_address: `198.51.${visitor % 250}.${n % 250}`,
    user_agent: "Mozilla/5.0 (X11; Linux x86_64) bench",
    props,
  };
}

function batches<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

async function timed(work: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await work();
  return (performance.now() - started) / 1000;
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

async function createOrganization(db: Kysely<UntypedDatabase>, name: string): Promise<string> {
  const { rows } = await sql<{ id: string }>`
    insert into public.organizations (name, slug, timezone) values (${name}, ${`bench-${randomUUID().slice(0, 8)}`}, 'Europe/Warsaw')
    returning id`.execute(db);
  return rows[0]!.id;
}

/** Microseconds per row of one expression over the props of the bench table (optionally one kind), in the database. */
async function perRow(db: Kysely<UntypedDatabase>, expression: string, kind: Kind | null): Promise<number> {
  const where = kind === null ? "" : `where kind = '${kind}'`;
  const { rows } = await sql<{ us: number; n: number }>`
    select bench.time_query(${`select count(*) from bench.analytics_props ${where} ${where ? "and" : "where"} (${expression}) is not null`}) as us,
           (select count(*)::int from bench.analytics_props where ${kind}::text is null or kind = ${kind}) as n
  `.execute(db);
  return Number(rows[0]!.us) / Number(rows[0]!.n);
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const dbUrl = process.env.SUPABASE_DB_URL || process.env.DB_URL || fail("SUPABASE_DB_URL is not set (see --help)");
  const db = createDatabase<UntypedDatabase>(dbUrl, { max: 2, applicationName: "bench-analytics" });
  const events = Math.max(options.batch, Math.round(200_000 * options.scale));
  const rollupEvents = Math.round(2_000_000 * options.scale);
  const visitors = Math.max(100, Math.round(20_000 * options.scale));
  const now = Date.now();

  try {
    await sql`create schema if not exists bench`.execute(db);
    await sql`create or replace function bench.time_query(query text) returns numeric language plpgsql as $$
      declare started timestamptz := clock_timestamp();
      begin execute query; return extract(epoch from clock_timestamp() - started) * 1e6; end $$`.execute(db);
    await sql`select private.ensure_monthly_partitions(4, 1)`.execute(db);

    const aRates: number[] = [];
    const bRates: number[] = [];
    const redactor: Array<{ all: number; page_view: number; utm: number; order: number }> = [];
    const recompute: number[] = [];
    const recomputeVacuumed: number[] = [];
    const rebuild: number[] = [];
    let recomputeRows = 0;

    for (let round = 0; round < options.rounds; round++) {
      // (a) the plain copy: same columns, constraints, indexes and months, no triggers, no RLS.
      await sql`drop table if exists bench.analytics_plain`.execute(db);
      await sql`create table bench.analytics_plain (like public.analytics_events including defaults including constraints including indexes)
                partition by range (occurred_at)`.execute(db);
      await sql`create table bench.analytics_plain_default partition of bench.analytics_plain default`.execute(db);
      for (let m = -3; m <= 0; m++) {
        await sql.raw(`create table bench.analytics_plain_m${m + 3} partition of bench.analytics_plain
          for values from (date_trunc('month', now()) + interval '${m} months') to (date_trunc('month', now()) + interval '${m + 1} months')`).execute(db);
      }
      // The copy stores the address as sent (no truncation step without the RPC), so its CHECK goes.
      await sql`alter table bench.analytics_plain drop constraint analytics_events_ip_truncated`.execute(db);
      const orgA = await createOrganization(db, "Bench plain");
      const plainBatches = batches(Array.from({ length: events }, (_, n) => makeEvent(orgA, n, visitors, now)), options.batch);
      const aSeconds = await timed(async () => {
        for (const batch of plainBatches) {
          await sql`
            insert into bench.analytics_plain (organization_id, event_id, occurred_at, event_name, category, anonymous_id,
                                               session_id, props, ip_address, user_agent)
            select e.organization_id, e.event_id, e.occurred_at, e.event_name, e.category, e.anonymous_id, e.session_id,
                   e.props, e.ip_address, e.user_agent
            from jsonb_to_recordset(${JSON.stringify(batch)}::text::jsonb)
              as e(organization_id uuid, event_id uuid, occurred_at timestamptz, event_name text, category text,
                   anonymous_id text, session_id text, props jsonb, ip_address inet, user_agent text)`.execute(db);
        }
      });
      aRates.push(events / aSeconds);

      // (b) upsert_events as the service role.
      const orgB = await createOrganization(db, "Bench upsert");
      const upsertEvents = Array.from({ length: events }, (_, n) => makeEvent(orgB, n, visitors, now));
      let inserted = 0;
      const bSeconds = await timed(async () => {
        for (const batch of batches(upsertEvents, options.batch)) {
          const report = await runAsCaller(db, serviceRole, async (trx) =>
            (await sql<{ r: { inserted: number } }>`select public.upsert_events(${JSON.stringify(batch)}::text::jsonb) as r`
              .execute(trx)).rows[0]!.r);
          inserted += report.inserted;
        }
      });
      if (inserted !== events) fail(`upsert_events inserted ${inserted} of ${events} events`);
      bRates.push(events / bSeconds);

      // (r) the redactor on the same props, against a no-op, in the database.
      await sql`drop table if exists bench.analytics_props`.execute(db);
      await sql`create table bench.analytics_props as
                select case e.event_name when 'page.viewed' then 'page_view' when 'session.started' then 'utm' else 'order' end as kind,
                       e.props
                from jsonb_to_recordset(${JSON.stringify(upsertEvents.map((e) => ({ event_name: e.event_name, props: e.props })))}::text::jsonb)
                  as e(event_name text, props jsonb)`.execute(db);
      const cost = async (kind: Kind | null) =>
        (await perRow(db, "public.redact_telemetry_metadata(props)", kind)) - (await perRow(db, "props", kind));
      redactor.push({ all: await cost(null), page_view: await cost("page_view"), utm: await cost("utm"), order: await cost("order") });

      // (c) 90 days of events for one organization, loaded directly (untimed; triggers off, keys written), then the recompute.
      const orgC = await createOrganization(db, "Bench rollups");
      await db.connection().execute(async (conn) => {
        await sql`set session_replication_role = replica`.execute(conn);
        await sql`
          insert into private.analytics_event_keys (organization_id, event_id, occurred_at)
          select ${orgC}::uuid, md5(${orgC}::text || n)::uuid, now() - make_interval(secs => (n::bigint * 104729) % (90 * 86400))
          from generate_series(1, ${rollupEvents}::int) n`.execute(conn);
        await sql`
          insert into public.analytics_events (organization_id, event_id, occurred_at, event_name, category, anonymous_id, session_id, props)
          select ${orgC}::uuid, md5(${orgC}::text || n)::uuid, now() - make_interval(secs => (n::bigint * 104729) % (90 * 86400)),
                 case when n % 10 < 7 then 'page.viewed' when n % 10 < 9 then 'session.started' else 'order.completed' end,
                 'web', 'visitor-' || ((n::bigint * 7919) % ${visitors * 5}::int), 'session-' || (n / 50),
                 case when n % 10 < 7 then jsonb_build_object('path', '/products/' || n % 500, 'referrer', 'https://www.google.com/search')
                      when n % 10 < 9 then jsonb_build_object('utm_source', 'google', 'utm_medium', 'cpc', 'utm_campaign', 'c' || n % 12)
                      else jsonb_build_object('amount_cents', 1500 + n % 20000, 'currency', 'usd', 'note', 'gift wrap, write to [EMAIL]') end
          from generate_series(1, ${rollupEvents}::int) n`.execute(conn);
        await sql`set session_replication_role = origin`.execute(conn);
        await sql`analyze public.analytics_events`.execute(conn);
      });
      await sql`insert into public.spend (organization_id, platform, campaign_id, date, spend_cents)
                select ${orgC}::uuid, 'google', 'c1', current_date - d, 10000 + d from generate_series(0, 89) d`.execute(db);
      let written = 0;
      const cSeconds = await timed(async () => {
        written = (await sql<{ n: number }>`select public.recompute_metrics_daily(current_date - 89, current_date, ${orgC}::uuid) as n`
          .execute(db)).rows[0]!.n;
      });
      if (written < 89) fail(`recompute_metrics_daily wrote ${written} rows for 90 days`);
      recompute.push(cSeconds);
      // The same recompute once the months are vacuumed (as autovacuum leaves events that are not brand new: hint
      // bits set, visibility map current, so the rollup's index-only scans need no heap visits). The first run
      // above is the first read after a bulk load.
      await sql`vacuum (analyze) public.analytics_events`.execute(db);
      recomputeVacuumed.push(await timed(async () => {
        await sql`select public.recompute_metrics_daily(current_date - 89, current_date, ${orgC}::uuid)`.execute(db);
      }));
      // The explicit repair rebuild of cohorts and attribution (no longer part of the recompute: upsert_events keeps
      // both current). The load above skipped the triggers, so this pass writes every cohort and attribution row.
      rebuild.push(await timed(async () => {
        await sql`select private.rebuild_attribution(array[${orgC}::uuid], current_date - 89)`.execute(db);
      }));
      recomputeRows = written;

      for (const org of [orgA, orgB, orgC]) await sql`delete from public.organizations where id = ${org}::uuid`.execute(db);
      await sql`drop table if exists bench.analytics_plain`.execute(db);
    }

    const a = median(aRates);
    const b = median(bRates);
    const r = (key: "all" | "page_view" | "utm" | "order") => median(redactor.map((x) => x[key]));
    console.log(`scale ${options.scale}: ${events} events for (a) and (b), batches of ${options.batch}; rounds ${options.rounds}`);
    console.log(`(a) plain multi-row INSERT into a copy without triggers or RLS: ${Math.round(a)} events/s`);
    console.log(`(b) upsert_events as the service role:                          ${Math.round(b)} events/s`);
    // The median of the rounds' own ratios: each round's (a) and (b) ran back to back, so a load change hits both.
    const ratio = median(aRates.map((x, i) => bRates[i]! / x));
    console.log(`b/a = ${ratio.toFixed(2)}, the median of the rounds' ratios (the ratio of the medians: ${(b / a).toFixed(2)}; bar: >= 0.3)`);
    console.log(`(r) redactor per event, side by side with a no-op on the same props: ${r("all").toFixed(1)} us`
      + ` (page views ${r("page_view").toFixed(1)} us, UTM sessions ${r("utm").toFixed(1)} us, orders with an e-mail ${r("order").toFixed(1)} us);`
      + ` ${((r("all") * events) / 1e6 / (events / b) * 100).toFixed(0)}% of (b)'s time`);
    console.log(`(c) recompute_metrics_daily over 90 days of ${rollupEvents} events:`
      + ` ${median(recompute).toFixed(2)} s as the first read after the bulk load,`
      + ` ${median(recomputeVacuumed).toFixed(2)} s once vacuumed; ${recomputeRows} rows (bar at 2,000,000 events: < 3 s,`
      + ` here scaled to ${((3 * rollupEvents) / 2e6).toFixed(2)} s: ${(median(recompute) / ((3 * rollupEvents) / 2e6)).toFixed(2)}x of it);`
      + ` the explicit repair rebuild of cohorts and attribution (not part of it), writing every row: ${median(rebuild).toFixed(2)} s,`
      + ` ${(median(rebuild) / median(recompute)).toFixed(2)}x the recompute`);
  } finally {
    await db.destroy();
  }
}

await main();
