// Benchmark of the ingest path (issue 3, section 6). Run by `npm run bench -- ingest` (scripts/bench.sh), or alone
// against a running stack:
//   FUNCTIONS_URL=http://127.0.0.1:54321/functions/v1 SUPABASE_DB_URL=postgresql://... SUPABASE_JWT_SECRET=... \
//     tsx scripts/bench/ingest.ts [--events 10000] [--batch 500] [--concurrency 4] [--retention-rows 5000000]
//
// In one run, on PII-heavy and on clean events: (a) a plain multi-row INSERT into a copy of telemetry_events without
// triggers or RLS, (b) public.ingest_events() as the user (RLS, gate, redaction), (c) POST /functions/v1/ingest in
// batches. It prints events per second and the ratios b/a and c/a. Then (a) and (b) again in interleaved rounds, with
// today's redactor (scripts/bench/redactor-before.sql, the redactor before issue 9, loaded into the schema
// bench_before for this run only) and with the new one as public.redact_telemetry_metadata(): b/a of both, side by
// side. Then the redactor phase times the redactor alone, today's and the new one side by side on the same clean and
// PII-heavy metadata objects, rounds interleaved, and what each redaction class costs per object among the others
// (all classes, less all but that one). Last it times retention dropping --retention-rows rows spread over 12 expired
// months. It asserts nothing about speed; it exits 1 only when a phase fails.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { sql, type Kysely } from "kysely";
import { SignJWT } from "jose";
import { createDatabase, type UntypedDatabase } from "../../supabase/functions/_shared/db.ts";
import { runAsCaller } from "../../supabase/functions/_shared/request-context.ts";
import { benchFail, parseNumberOptions } from "../bench-options.ts";

const HELP = `ingest benchmark

usage: tsx scripts/bench/ingest.ts [--events N] [--batch N] [--concurrency N] [--ingest-rounds N]
                                   [--redactor-objects N] [--redactor-rounds N] [--retention-rows N]

  --events N            events per phase and kind (default 10000)
  --batch N             events per batch/request (default 500)
  --concurrency N       HTTP requests in flight (default 4; one user per lane)
  --ingest-rounds N     rounds of (a) and (b) with today's redactor and the new one, interleaved, 0 to skip (default 5)
  --redactor-objects N  metadata objects per kind for the redactor phase, 0 to skip (default 2000)
  --redactor-rounds N   interleaved rounds of the redactor phase; the median counts (default 21; at most 7 per class)
  --retention-rows N    rows for the retention timing, 0 to skip (default 5000000)

environment: FUNCTIONS_URL, SUPABASE_DB_URL (or DB_URL), SUPABASE_JWT_SECRET (or JWT_SECRET).`;

interface Options {
  events: number;
  batch: number;
  concurrency: number;
  "ingest-rounds": number;
  "redactor-objects": number;
  "redactor-rounds": number;
  "retention-rows": number;
}

const fail = (message: string): never => benchFail("ingest", message);

function parseOptions(args: string[]): Options {
  const defaults: Options = {
    events: 10_000, batch: 500, concurrency: 4, "ingest-rounds": 5, "redactor-objects": 2_000, "redactor-rounds": 21, "retention-rows": 5_000_000,
  };
  const options = parseNumberOptions("ingest", HELP, defaults, args, (value) => Number.isFinite(value) && value >= 0);
  if (options.events < options.batch || options.batch < 1 || options.batch > 1000 || options.concurrency < 1
      || options["redactor-rounds"] < 1) {
    fail("need 1 <= --batch <= 1000, --events >= --batch, --concurrency >= 1 and --redactor-rounds >= 1");
  }
  return options;
}

function requireEnv(name: string, fallback: string): string {
  const value = process.env[name] || process.env[fallback];
  if (!value) fail(`${name} is not set (see --help)`);
  return value;
}

type Kind = "pii" | "clean";
type BenchEvent = Record<string, unknown>;

function makeEvent(kind: Kind, n: number): BenchEvent {
  const base = {
    kind: "telemetry",
    id: randomUUID(),
    occurred_at: new Date(Date.now() - (n % 3600) * 1000).toISOString(),
    app_id: "desktop",
    event_type: "screen.view",
    duration_ms: n % 5000,
  };
  const metadata = kind === "clean"
    ? {
      screen: "settings", action: "toggle", version: `2.${n % 20}.3`, request_id: randomUUID(),
      started_at: new Date().toISOString(), path: "/var/log/app.log", count: n, ok: true, tokens_used: 1200 + (n % 300),
      label: "opened the preferences pane and changed the theme",
    }
    : {
      screen: "checkout", user_email: `user${n}@example.com`, note: `call me at +1 (415) 555-${String(n % 10000).padStart(4, "0")}`,
      card: "paid with 4111 1111 1111 1111", client_ip: `192.168.${n % 250}.${(n * 7) % 250}`,
      api_key: "sk_live_4eC39HqLyjWDarjtT1zdp7dc", password: "hunter2", path: `/Users/user${n}/Documents/report.pdf`,
      started_at: new Date().toISOString(), request_id: randomUUID(),
    };
  return { ...base, metadata };
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

const REDACTOR_BEFORE = fileURLToPath(new URL("./redactor-before.sql", import.meta.url));
const CLASSES = ["email", "phone", "card", "iban", "ssn", "ip", "jwt", "secret", "home_path"] as const;

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Loads today's redactor (the one before issue 9) into the schema bench_before, afresh. */
async function loadRedactorBefore(db: Kysely<UntypedDatabase>): Promise<void> {
  await sql`drop schema if exists bench_before cascade`.execute(db);
  await sql.raw(readFileSync(REDACTOR_BEFORE, "utf8")).execute(db);
  // The ingest path redacts in a trigger that runs as the user.
  await sql`grant usage on schema bench_before to authenticated, service_role`.execute(db);
  await sql`grant execute on all functions in schema bench_before to authenticated, service_role`.execute(db);
}

/** Microseconds per object of one redactor expression over the objects of one kind, timed in the database. */
async function perObject(db: Kysely<UntypedDatabase>, kind: Kind, expression: string, objects: number): Promise<number> {
  const { rows } = await sql<{ us: number }>`
    select bench.time_query(${`select count(*) from bench.redactor_objects where kind = '${kind}' and (${expression}) is not null`}) as us
  `.execute(db);
  return Number(rows[0]?.us) / objects;
}

/** Today's redactor and the new one on the same objects, rounds interleaved (ABBA), and each class alone. */
async function redactorPhase(db: Kysely<UntypedDatabase>, objects: number, rounds: number): Promise<void> {
  await loadRedactorBefore(db);
  // A timer in the database, so that the figures hold no round trips.
  await sql`create or replace function bench.time_query(query text) returns numeric language plpgsql as $$
    declare started timestamptz := clock_timestamp();
    begin execute query; return extract(epoch from clock_timestamp() - started) * 1e6; end $$`.execute(db);
  await sql`create table bench.redactor_objects (kind text not null, metadata jsonb not null)`.execute(db);
  for (const kind of ["clean", "pii"] as Kind[]) {
    const metadata = Array.from({ length: objects }, (_, n) => makeEvent(kind, n).metadata);
    await sql`insert into bench.redactor_objects (kind, metadata)
              select ${kind}, m from jsonb_array_elements(${JSON.stringify(metadata)}::text::jsonb) m`.execute(db);
  }
  const before = "bench_before.redact_telemetry_metadata(metadata)";
  const after = "public.redact_telemetry_metadata(metadata)";
  console.log(`redactor alone: ${objects} objects per kind, ${rounds} interleaved rounds, median per object; new/today is ` +
    "the median of the rounds' ratios");
  console.log("kind    today µs/object   new µs/object   new/today   (range)       objects redacted differently");
  for (const kind of ["clean", "pii"] as Kind[]) {
    const a: number[] = [];
    const b: number[] = [];
    for (let r = 0; r < rounds; r++) {
      if (r % 2 === 0) {
        a.push(await perObject(db, kind, before, objects));
        b.push(await perObject(db, kind, after, objects));
      } else {
        b.push(await perObject(db, kind, after, objects));
        a.push(await perObject(db, kind, before, objects));
      }
    }
    const { rows } = await sql<{ n: number }>`
      select count(*)::integer as n from bench.redactor_objects
      where kind = ${kind} and bench_before.redact_telemetry_metadata(metadata) <> public.redact_telemetry_metadata(metadata)`.execute(db);
    const today = median(a);
    const now = median(b);
    // The ratio of each round's pair, timed back to back, then their median: a load spike hits both of a pair.
    const ratios = a.map((x, i) => (b[i] as number) / x).sort((x, y) => x - y);
    console.log(`${kind.padEnd(6)}  ${today.toFixed(1).padStart(15)}  ${now.toFixed(1).padStart(14)}  ${median(ratios).toFixed(3).padStart(10)}  ` +
      `${`${(ratios[0] as number).toFixed(2)}-${(ratios[ratios.length - 1] as number).toFixed(2)}`.padStart(12)}  ${String(rows[0]?.n ?? 0).padStart(29)}`);
  }
  // What each class costs per object where it runs among the others: all classes, less all classes but that one,
  // measured in interleaved pairs; the median difference counts.
  console.log("cost of each class per object (µs; all classes less all classes but that one, median of interleaved pairs)");
  console.log(`kind    ${"all".padStart(7)}${CLASSES.map((c) => c.padStart(10)).join("")}`);
  const all = `array[${CLASSES.map((c) => `'${c}'`).join(", ")}]`;
  for (const kind of ["clean", "pii"] as Kind[]) {
    const totals: number[] = [];
    const perClass: number[] = [];
    for (const c of CLASSES) {
      const without = `array[${CLASSES.filter((x) => x !== c).map((x) => `'${x}'`).join(", ")}]::text[]`;
      const differences: number[] = [];
      for (let r = 0; r < Math.min(rounds, 7); r++) {
        const first = await perObject(db, kind, `private.redact_jsonb(metadata, ${all})`, objects);
        const second = await perObject(db, kind, `private.redact_jsonb(metadata, ${without})`, objects);
        totals.push(first);
        differences.push(first - second);
      }
      perClass.push(median(differences));
    }
    console.log(`${kind.padEnd(6)}  ${median(totals).toFixed(1).padStart(7)}${perClass.map((v) => v.toFixed(1).padStart(10)).join("")}`);
  }
  await sql`drop schema bench_before cascade`.execute(db);
}

async function createUser(db: Kysely<UntypedDatabase>): Promise<string> {
  const id = randomUUID();
  await sql`
    insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
    values ('00000000-0000-0000-0000-000000000000', ${id}::uuid, 'authenticated', 'authenticated',
            ${`bench-${id}@example.test`}, '{"provider": "email"}'::jsonb, '{}'::jsonb, now(), now())`.execute(db);
  await sql`update public.privacy_prefs set consent_given = true, monitoring_enabled = true where user_id = ${id}::uuid`.execute(db);
  await sql`insert into public.app_allowlist (user_id, app_id) values (${id}::uuid, 'desktop')`.execute(db);
  await sql`insert into public.signal_toggles (user_id, signal_key) values (${id}::uuid, 'screen.view')`.execute(db);
  return id;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const dbUrl = requireEnv("SUPABASE_DB_URL", "DB_URL");
  const functionsUrl = requireEnv("FUNCTIONS_URL", "FUNCTIONS_URL");
  const secret = new TextEncoder().encode(requireEnv("SUPABASE_JWT_SECRET", "JWT_SECRET"));
  const db = createDatabase<UntypedDatabase>(dbUrl, { max: options.concurrency + 1, applicationName: "bench-ingest" });

  try {
    await sql`create schema if not exists bench`.execute(db);
    await sql`drop table if exists bench.telemetry_plain`.execute(db);
    await sql`create table bench.telemetry_plain (like public.telemetry_events including defaults including constraints including indexes)
              partition by range (occurred_at)`.execute(db);
    await sql`create table bench.telemetry_plain_default partition of bench.telemetry_plain default`.execute(db);
    await sql`create table bench.telemetry_plain_now partition of bench.telemetry_plain
              for values from (date_trunc('month', now() - interval '1 day')) to (date_trunc('month', now()) + interval '1 month')`.execute(db);

    const users = await Promise.all(Array.from({ length: options.concurrency + 1 }, () => createUser(db)));
    const sqlUser = users[0] as string;
    const httpUsers = users.slice(1);
    const tokens = await Promise.all(httpUsers.map((sub) =>
      new SignJWT({ role: "authenticated", email: `bench-${sub}@example.test` }).setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .setSubject(sub).setAudience("authenticated").setIssuedAt().setExpirationTime("2h").sign(secret)
    ));

    const make = (kind: Kind) => Array.from({ length: options.events }, (_, n) => makeEvent(kind, n));
    // (a): a plain multi-row INSERT; events per second.
    const plain = async (kind: Kind): Promise<number> => {
      const plainEvents = batches(make(kind), options.batch);
      const aSeconds = await timed(async () => {
        for (const batch of plainEvents) {
          await sql`
            insert into bench.telemetry_plain (id, user_id, occurred_at, app_id, event_type, duration_ms, metadata_redacted)
            select e.id, ${sqlUser}::uuid, e.occurred_at, e.app_id, e.event_type, e.duration_ms, coalesce(e.metadata, '{}')
            from jsonb_to_recordset(${JSON.stringify(batch)}::text::jsonb)
              as e(id uuid, occurred_at timestamptz, app_id text, event_type text, duration_ms integer, metadata jsonb)
          `.execute(db);
        }
      });
      return options.events / aSeconds;
    };
    // (b): public.ingest_events() as the user; events per second.
    const context = {
      role: "authenticated", method: "POST", path: "/bench", headers: {},
      claims: { sub: sqlUser, role: "authenticated", aud: "authenticated", aal: "aal1" },
    };
    const viaSql = async (kind: Kind): Promise<number> => {
      const sqlEvents = batches(make(kind), options.batch);
      let accepted = 0;
      const bSeconds = await timed(async () => {
        for (const batch of sqlEvents) {
          const report = await runAsCaller(db, context, async (trx) =>
            (await sql<{ r: { accepted: number } }>`select public.ingest_events(${JSON.stringify(batch)}::text::jsonb) as r`
              .execute(trx)).rows[0]?.r);
          accepted += report?.accepted ?? 0;
        }
      });
      if (accepted !== options.events) fail(`SQL ingest accepted ${accepted} of ${options.events} ${kind} events`);
      return options.events / bSeconds;
    };

    const rows: Array<{ kind: Kind; a: number; b: number; c: number }> = [];
    for (const kind of ["pii", "clean"] as Kind[]) {
      const a = await plain(kind);
      const b = await viaSql(kind);

      const httpEvents = batches(make(kind), options.batch);
      let httpAccepted = 0;
      const cSeconds = await timed(async () => {
        let next = 0;
        await Promise.all(tokens.map(async (token) => {
          while (next < httpEvents.length) {
            const batch = httpEvents[next++];
            const response = await fetch(`${functionsUrl}/ingest`, {
              method: "POST",
              headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
              body: JSON.stringify({ events: batch }),
            });
            if (response.status !== 200) fail(`HTTP ingest answered ${response.status}: ${await response.text()}`);
            httpAccepted += ((await response.json()) as { accepted: number }).accepted;
          }
        }));
      });
      if (httpAccepted !== options.events) fail(`HTTP ingest accepted ${httpAccepted} of ${options.events} ${kind} events`);

      rows.push({ kind, a, b, c: options.events / cSeconds });
    }

    console.log(`events per phase and kind: ${options.events}, batch ${options.batch}, HTTP concurrency ${options.concurrency}`);
    console.log("kind    (a) plain INSERT/s  (b) SQL ingest/s  (c) HTTP ingest/s    b/a     c/a");
    for (const r of rows) {
      console.log(
        `${r.kind.padEnd(6)}  ${r.a.toFixed(0).padStart(18)}  ${r.b.toFixed(0).padStart(16)}  ${r.c.toFixed(0).padStart(17)}  ` +
          `${(r.b / r.a).toFixed(3).padStart(6)}  ${(r.c / r.a).toFixed(3).padStart(6)}`,
      );
    }

    if (options["ingest-rounds"] > 0) {
      // (a) and (b) again, with today's redactor (the one before issue 9) in public.redact_telemetry_metadata() and
      // with the new one, rounds interleaved: what the new redactor does to b/a, measured side by side.
      await loadRedactorBefore(db);
      const { rows: definitions } = await sql<{ now: string; before: string }>`
        select pg_get_functiondef('public.redact_telemetry_metadata(jsonb)'::regprocedure) as now,
               pg_get_functiondef('bench_before.redact_telemetry_metadata(jsonb)'::regprocedure) as before`.execute(db);
      const newDefinition = definitions[0]?.now ?? fail("no definition of public.redact_telemetry_metadata");
      const todayDefinition = (definitions[0]?.before ?? fail("no definition of today's redactor"))
        .replace("FUNCTION bench_before.redact_telemetry_metadata(", "FUNCTION public.redact_telemetry_metadata(");
      const use = async (definition: string) => { await sql.raw(definition).execute(db); };
      const rounds = options["ingest-rounds"];
      console.log(`ingest with today's redactor and the new one: ${rounds} interleaved rounds, median`);
      console.log("kind    (a) plain/s  (b) today/s  (b) new/s  b/a today  b/a new  new/today");
      try {
        for (const kind of ["pii", "clean"] as Kind[]) {
          const a: number[] = [];
          const today: number[] = [];
          const now: number[] = [];
          for (let r = 0; r < rounds; r++) {
            a.push(await plain(kind));
            if (r % 2 === 0) {
              await use(todayDefinition);
              today.push(await viaSql(kind));
              await use(newDefinition);
              now.push(await viaSql(kind));
            } else {
              await use(newDefinition);
              now.push(await viaSql(kind));
              await use(todayDefinition);
              today.push(await viaSql(kind));
            }
          }
          await use(newDefinition);
          const [ma, mt, mn] = [median(a), median(today), median(now)];
          const ratios = today.map((t, i) => (now[i] as number) / t);
          console.log(`${kind.padEnd(6)}  ${ma.toFixed(0).padStart(11)}  ${mt.toFixed(0).padStart(11)}  ${mn.toFixed(0).padStart(9)}  ` +
            `${(mt / ma).toFixed(3).padStart(9)}  ${(mn / ma).toFixed(3).padStart(7)}  ${median(ratios).toFixed(3).padStart(9)}`);
        }
      } finally {
        await use(newDefinition);
        await sql`drop schema if exists bench_before cascade`.execute(db);
      }
    }

    if (options["redactor-objects"] > 0) await redactorPhase(db, options["redactor-objects"], options["redactor-rounds"]);

    const retentionRows = options["retention-rows"];
    if (retentionRows > 0) {
      const owners = users.slice(0, 5);
      await sql`select private.create_monthly_partition('public.telemetry_events', (date_trunc('month', now()) - make_interval(months => m))::date)
                from generate_series(14, 25) m`.execute(db);
      const loadSeconds = await timed(async () => {
        await db.connection().execute(async (conn) => {
          // Loading bypasses the triggers (a bulk restore, not the ingest path), then fills the per-month counters.
          await sql`set session_replication_role = replica`.execute(conn);
          await sql`
            insert into public.telemetry_events (id, user_id, occurred_at, app_id, event_type, duration_ms, metadata_redacted)
            select gen_random_uuid(), (${owners}::uuid[])[1 + g % ${owners.length}],
                   date_trunc('month', now()) - make_interval(months => 14 + g % 12) + make_interval(secs => g % 2000000),
                   'desktop', 'screen.view', g % 5000, '{"screen": "settings"}'::jsonb
            from generate_series(1, ${retentionRows}::integer) g`.execute(conn);
          await sql`set session_replication_role = origin`.execute(conn);
        });
        await sql`
          insert into private.event_month_counts (table_name, user_id, month, events)
          select 'telemetry_events', t.user_id, date_trunc('month', t.occurred_at at time zone 'UTC')::date, count(*)
          from public.telemetry_events t where t.occurred_at < date_trunc('month', now()) - interval '13 months'
          group by 2, 3
          on conflict (table_name, user_id, month) do update set events = excluded.events`.execute(db);
      });
      await sql`update public.retention_policies set retention_days = 365 where table_name = 'telemetry_events'`.execute(db);
      let removed = 0;
      const purgeSeconds = await timed(async () => {
        const { rows: result } = await sql<{ r: { removed: { telemetry_events: number } } }>`
          select public.cleanup_retention_data() as r`.execute(db);
        removed = result[0]?.r.removed.telemetry_events ?? 0;
      });
      if (removed !== retentionRows) fail(`retention removed ${removed} of ${retentionRows} rows`);
      console.log(`retention: loaded ${retentionRows} rows over 12 months in ${loadSeconds.toFixed(1)} s; ` +
        `cleanup_retention_data() removed them (12 partitions dropped, ${owners.length} users told) in ${purgeSeconds.toFixed(2)} s`);
    }
  } finally {
    await sql`drop schema if exists bench cascade`.execute(db).catch(() => undefined);
    await sql`drop schema if exists bench_before cascade`.execute(db).catch(() => undefined);
    await db.destroy();
  }
}

main().catch((error: unknown) => fail(error instanceof Error ? error.message : String(error)));
