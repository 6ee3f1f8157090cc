// Benchmark of the AI receptionist (issue 13, section 4). Run by `npm run bench -- receptionist` (scripts/bench.sh),
// or alone against a migrated database:
//   SUPABASE_DB_URL=postgresql://... tsx scripts/bench/receptionist.ts [--queries 200] [--bookings 800] [--rounds 9]
//
// Calendar: one organization in Europe/Warsaw open Monday-Saturday 08:00-20:00, 50 staff members working those hours
// and all performing one 30-minute service with a 5-minute buffer, and 5,000 appointments spread over the four weeks
// that start next Monday (set up untimed, through the same triggers).
//   (a) available_slots() for that service over 7 days (every staff member, the default step: the service's 30
//       minutes), as a signed-in member under RLS, one call after another on one connection (after 5 untimed warm-up
//       calls; the set-up's tables vacuumed and analyzed first, as in a database in use): p50 / p95 / max in ms,
//       client-side with the round trip and every row shipped, through libpq (pgbench: the target's figure) and
//       through the Node client postgres.js (which also builds an object per row), then the same calls wrapped in
//       count(*) (the database's share); then all again with an explicit 15-minute step (twice the rows).
//   (b) book_appointment() throughput with 8 clients on distinct free slots (one transaction per booking, each
//       switching to the member's role and claims like PostgREST), against (p) a plain INSERT of the same rows into a
//       copy of appointments without triggers or RLS (the issue's baseline: CREATE TABLE ... (LIKE appointments
//       INCLUDING ALL) keeps the columns, defaults, check and exclusion constraints and indexes, and copies no
//       trigger, policy or foreign key), same 8 clients, one transaction per row; and, for information, (p0) the same
//       rows into a bare heap (LIKE ... INCLUDING DEFAULTS: no constraint or index at all). Rounds of (p), (p0) and
//       (b) back to back (alternating the order), the median of the rounds' ratios b/p reported, and b/p0 beside it.
// It asserts nothing about speed; it exits 1 only when a phase does not do all its work.
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { benchFail, parseNumberOptions, positiveInteger } from "../bench-options.ts";

const HELP = `receptionist benchmark

usage: tsx scripts/bench/receptionist.ts [--queries N] [--bookings N] [--rounds N]

  --queries N   available_slots calls in (a) (default 200)
  --bookings N  bookings per round in (b) and rows in (p) and (p0), split over 8 clients (default 800)
  --rounds N    rounds of (p), (p0) and (b); the median of the rounds' ratios is reported (default 9)

environment: SUPABASE_DB_URL (or DB_URL).`;

const CLIENTS = 8;
const STAFF = 50;
const APPOINTMENTS = 5000;

interface Options {
  queries: number;
  bookings: number;
  rounds: number;
}

const fail = (message: string): never => benchFail("receptionist", message);

function parseOptions(args: string[]): Options {
  const defaults: Options = { queries: 200, bookings: 800, rounds: 9 };
  return parseNumberOptions("receptionist", HELP, defaults, args, positiveInteger);
}

const dbUrl = process.env.SUPABASE_DB_URL || process.env.DB_URL || fail("SUPABASE_DB_URL is not set (see --help)");
const connections: postgres.Sql[] = [];
function connect(): postgres.Sql {
  const sql = postgres(dbUrl, { max: 1, prepare: false, onnotice: () => {}, connection: { application_name: "bench-receptionist" } });
  connections.push(sql);
  return sql;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

interface Slot {
  staff_id: string;
  starts_at: string;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const admin = connect();
  const owner = randomUUID();
  const slug = `bench-rx-${owner.slice(0, 8)}`;
  const claims = JSON.stringify({ sub: owner, role: "authenticated", aud: "authenticated", aal: "aal1" });

  // ---- set-up (untimed)
  await admin`
    insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
    values ('00000000-0000-0000-0000-000000000000', ${owner}, 'authenticated', 'authenticated', ${`${owner}@bench.test`},
            '{"provider": "email"}', '{}', now(), now())`;
  const [org] = await admin.begin(async (tx) => {
    await tx`select set_config('role', 'authenticated', true), set_config('request.jwt.claims', ${claims}, true)`;
    return tx<{ id: string }[]>`select (public.create_organization('Receptionist bench', ${slug})).id as id`;
  });
  const organization = org!.id;
  const day = { open: "08:00", close: "20:00" };
  await admin`update public.organizations set timezone = 'Europe/Warsaw', business_hours = ${admin.json({
    monday: day, tuesday: day, wednesday: day, thursday: day, friday: day, saturday: day, sunday: null,
  })} where id = ${organization}`;
  const [service] = await admin<{ id: string }[]>`
    insert into public.services (organization_id, name, duration, price, booking_buffer, min_notice_minutes, max_advance_booking_days)
    values (${organization}, 'Consultation', 30, 100, 5, 0, 365) returning id`;
  const serviceId = service!.id;
  await admin`
    with s as (insert into public.staff (organization_id, name) select ${organization}, 'Staff ' || g from generate_series(1, ${STAFF}) g returning id)
    , w as (insert into public.staff_working_hours (staff_id, weekday, start_time, end_time) select s.id, d, '08:00', '20:00' from s, generate_series(1, 6) d)
    insert into public.staff_services (staff_id, service_id) select id, ${serviceId} from s`;
  const [{ monday }] = await admin<{ monday: string }[]>`
    select to_char(current_date + 2 + ((8 - extract(dow from current_date + 2)::integer) % 7), 'YYYY-MM-DD') as monday`;
  const started = performance.now();
  // 5,000 appointments over the 24 working days of four weeks: per staff member and day a few of the 12 hourly slots.
  await admin`
    insert into public.appointments (service_id, staff_id, client_name, client_phone, scheduled_at)
    select ${serviceId}, s.id, 'Client', '+48601234567',
           ((${monday}::date + d) + make_interval(hours => 8 + h)) at time zone 'Europe/Warsaw'
    from (select id, row_number() over (order by id) as n from public.staff where organization_id = ${organization}) s
    cross join generate_series(0, 27) d
    cross join generate_series(0, 11) h
    where extract(dow from ${monday}::date + d) <> 0 and (s.n * 7 + d * 5 + h * 3) % 12 < 5
    order by (s.n * 31 + d * 17 + h * 13) % 97
    limit ${APPOINTMENTS}`;
  const [{ n }] = await admin<{ n: number }[]>`select count(*)::int as n from public.appointments where organization_id = ${organization}`;
  if (n !== APPOINTMENTS) fail(`set-up made ${n} appointments, not ${APPOINTMENTS}`);
  // Statistics and a visibility map, as a database in use has them: without statistics the first calls plan for empty
  // tables, and without the vacuum autovacuum would do it (5,000 new rows in each of these tables) during (a).
  await admin`analyze public.services, public.staff, public.staff_services, public.staff_working_hours, public.staff_time_off`;
  await admin`vacuum (analyze) public.appointments, public.audit_logs, public.analytics_events, private.analytics_event_keys`;
  console.log(`set-up: ${STAFF} staff, ${n} appointments from ${monday} over 4 weeks, analyzed (${Math.round(performance.now() - started)} ms)`);

  // ---- (a) available_slots over 7 days: the default step (null: the service's duration), then 15-minute steps
  const weekStart = `${monday}T00:00:00+01:00`;
  const slotCalls = async (step: number | null, counted: boolean): Promise<{ sorted: number[]; rows: number }> => {
    const latencies: number[] = [];
    let rows = 0;
    await admin.begin(async (tx) => {
      await tx`select set_config('role', 'authenticated', true), set_config('request.jwt.claims', ${claims}, true)`;
      // Untimed warm-up: the session's first calls plan the functions' statements and fill its caches.
      for (let i = 0; i < 5; i++) {
        await tx`select count(*) from public.available_slots(${serviceId}::uuid, ${weekStart}::timestamptz, ${weekStart}::timestamptz + interval '7 days', null, ${step}::integer)`;
      }
      for (let i = 0; i < options.queries; i++) {
        const [from, to] = [i % 14, (i % 14) + 7];
        const t0 = performance.now();
        const result = counted
          ? await tx`select count(*)::int as n from public.available_slots(${serviceId}::uuid,
              ${weekStart}::timestamptz + make_interval(days => ${from}), ${weekStart}::timestamptz + make_interval(days => ${to}), null, ${step}::integer)`
          : await tx`select staff_id, starts_at from public.available_slots(${serviceId}::uuid,
              ${weekStart}::timestamptz + make_interval(days => ${from}), ${weekStart}::timestamptz + make_interval(days => ${to}), null, ${step}::integer)`;
        latencies.push(performance.now() - t0);
        rows = counted ? (result[0]!.n as number) : result.length;
      }
    });
    return { sorted: latencies.sort((x, y) => x - y), rows };
  };
  // The same calls through libpq, PostgreSQL's own C client (pgbench, one connection, every row received into its
  // result): the function's latency with the rows on the wire, without a JavaScript client turning ~4,000 rows into
  // objects. Null when pgbench is not installed.
  const pgbench = join("/usr/lib/postgresql", process.env.PG_MAJOR ?? "15", "bin", "pgbench");
  const libpqCalls = (step: number | null, counted: boolean): number[] | null => {
    if (!existsSync(pgbench)) return null;
    const dir = mkdtempSync(join(tmpdir(), "bench-slots-"));
    try {
      writeFileSync(join(dir, "slots.sql"), `\\set from random(0, 13)
select ${counted ? "count(*)" : "staff_id, starts_at"} from public.available_slots('${serviceId}'::uuid,
  '${weekStart}'::timestamptz + make_interval(days => :from), '${weekStart}'::timestamptz + make_interval(days => :from + 7),
  null, ${step === null ? "null" : `${step}`}::integer);
`);
      const run = spawnSync(pgbench, ["-n", "-c", "1", "-t", String(options.queries + 5), "-f", join(dir, "slots.sql"), "-l",
                                      "--log-prefix", join(dir, "log"), dbUrl], {
        cwd: dir, encoding: "utf8",
        env: { ...process.env, PGOPTIONS: `-c role=authenticated -c request.jwt.claims=${claims.replace(/[ \\]/g, "\\$&")}` },
      });
      if (run.status !== 0) fail(`pgbench failed: ${run.stderr || run.stdout}`);
      const log = readdirSync(dir).find((name) => name.startsWith("log"));
      const latencies = readFileSync(join(dir, log!), "utf8").trim().split("\n").map((line) => Number(line.split(" ")[2]) / 1000);
      // The first 5 are the connection's warm-up, as above.
      return latencies.slice(5).sort((x, y) => x - y);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  for (const step of [null, 15]) {
    const shipped = await slotCalls(step, false);
    // The same calls counted in the database: what available_slots costs without shipping the rows to the client.
    const counted = await slotCalls(step, true);
    const libpq = libpqCalls(step, false);
    // The same client with the calls wrapped in count(*): the database's time as libpq sees it, for the ratio below.
    const libpqCounted = libpqCalls(step, true);
    const label = step === null ? "default step (the service's 30 minutes)" : `${step}-minute step`;
    console.log(`(a) available_slots, 1 service, ${STAFF} staff, 7 days, ${label}: ${options.queries} calls, ~${shipped.rows} slots each`);
    if (libpq !== null) {
      const p95 = percentile(libpq, 95);
      console.log(`    libpq client (pgbench), every row received: p50 ${percentile(libpq, 50).toFixed(1)} ms, p95 ${p95.toFixed(1)} ms, ` +
        `max ${libpq.at(-1)!.toFixed(1)} ms${step === null ? ` (target p95 < 20 ms: ${p95 < 20 ? "met" : "NOT met"})` : ""}`);
    } else {
      console.log(`    libpq client: not measured (no ${pgbench})`);
    }
    console.log(`    Node client (postgres.js), every row received and parsed into objects: p50 ${percentile(shipped.sorted, 50).toFixed(1)} ms, ` +
      `p95 ${percentile(shipped.sorted, 95).toFixed(1)} ms, max ${shipped.sorted.at(-1)!.toFixed(1)} ms`);
    const dbP50 = percentile(counted.sorted, 50);
    console.log(`    in the database only (the same calls wrapped in count(*), no rows shipped): p50 ${dbP50.toFixed(1)} ms, ` +
      `p95 ${percentile(counted.sorted, 95).toFixed(1)} ms`);
    console.log(`    with the rows shipped, at p50: ${libpq === null || libpqCounted === null ? "" : `${(percentile(libpq, 50) / percentile(libpqCounted, 50)).toFixed(2)}x the counted calls' time through libpq, `}` +
      `${(percentile(shipped.sorted, 50) / dbP50).toFixed(2)}x through the Node client`);
  }

  // ---- (b) vs (p): free, distinct slots in weeks 6-9 (no appointments there), one per booking
  await admin`drop table if exists public.bench_appointments_plain`;
  await admin`drop table if exists public.bench_appointments_bare`;
  await admin`create table public.bench_appointments_plain (like public.appointments including all)`;
  await admin`create table public.bench_appointments_bare (like public.appointments including defaults)`;
  const clients = Array.from({ length: CLIENTS }, () => connect());
  const plainRates: number[] = [];
  const bareRates: number[] = [];
  const bareRatios: number[] = [];
  const rpcRates: number[] = [];
  const ratios: number[] = [];
  for (let round = 0; round < options.rounds; round++) {
    const slots = await admin<Slot[]>`
      select s.id as staff_id, (((${monday}::date + 35 + 7 * ${round} + d) + make_interval(hours => 8 + h)) at time zone 'Europe/Warsaw')::text as starts_at
      from public.staff s cross join generate_series(0, 5) d cross join generate_series(0, 11) h
      where s.organization_id = ${organization}
      order by d, h, s.id limit ${options.bookings}`;
    if (slots.length < options.bookings) fail(`only ${slots.length} free slots for round ${round + 1}`);
    const shares = clients.map((_, c) => slots.filter((_, i) => i % CLIENTS === c));

    const plainPhase = async (table: "bench_appointments_plain" | "bench_appointments_bare"): Promise<number> => {
      const started = performance.now();
      await Promise.all(clients.map(async (sql, c) => {
        for (const slot of shares[c]!) {
          await sql.begin(async (tx) => {
            await tx`
              insert into ${tx(`public.${table}`)} (organization_id, service_id, staff_id, client_name, client_phone, scheduled_at,
                service_duration, service_type, service_price, service_currency, booking_buffer, ends_at, blocked_range, idempotency_key)
              values (${organization}, ${serviceId}, ${slot.staff_id}, 'Client', '+48601234567', ${slot.starts_at}::timestamptz,
                30, 'Consultation', 100, 'PLN', 5, ${slot.starts_at}::timestamptz + interval '30 minutes',
                tstzrange(${slot.starts_at}::timestamptz - interval '5 minutes', ${slot.starts_at}::timestamptz + interval '35 minutes'),
                ${randomUUID()})`;
          });
        }
      }));
      return options.bookings / ((performance.now() - started) / 1000);
    };
    const rpcPhase = async (): Promise<number> => {
      let booked = 0;
      const started = performance.now();
      await Promise.all(clients.map(async (sql, c) => {
        for (const slot of shares[c]!) {
          await sql.begin(async (tx) => {
            await tx`select set_config('role', 'authenticated', true), set_config('request.jwt.claims', ${claims}, true)`;
            await tx`select id from public.book_appointment(${serviceId}::uuid, ${slot.starts_at}::timestamptz, 'Client', '+48601234567',
                                                           null, ${slot.staff_id}::uuid, null, ${randomUUID()})`;
          });
          booked++;
        }
      }));
      if (booked !== options.bookings) fail(`round ${round + 1} booked ${booked} of ${options.bookings}`);
      return options.bookings / ((performance.now() - started) / 1000);
    };
    // Back to back, alternating the order, so a change of load between rounds hits every side of a ratio.
    let plainRate = 0;
    let bareRate = 0;
    let rpcRate = 0;
    const phases = round % 2 === 0 ? (["p", "p0", "b"] as const) : (["b", "p0", "p"] as const);
    for (const phase of phases) {
      if (phase === "p") plainRate = await plainPhase("bench_appointments_plain");
      else if (phase === "p0") bareRate = await plainPhase("bench_appointments_bare");
      else rpcRate = await rpcPhase();
    }
    plainRates.push(plainRate);
    bareRates.push(bareRate);
    rpcRates.push(rpcRate);
    ratios.push(rpcRate / plainRate);
    bareRatios.push(rpcRate / bareRate);
    console.log(`    round ${round + 1} (${phases.join(", ")}): copy ${plainRate.toFixed(0)}/s, bare heap ${bareRate.toFixed(0)}/s, ` +
      `book_appointment ${rpcRate.toFixed(0)}/s; b/p ${ratios.at(-1)!.toFixed(2)}, b/p0 ${bareRatios.at(-1)!.toFixed(2)}`);
  }
  await admin`drop table public.bench_appointments_plain`;
  await admin`drop table public.bench_appointments_bare`;
  const ratio = median(ratios);
  const sortedRatios = [...ratios].sort((x, y) => x - y);
  console.log(`(b) book_appointment, ${CLIENTS} clients, distinct slots: ${median(rpcRates).toFixed(0)} bookings/s (median of ${options.rounds} rounds of ${options.bookings})`);
  console.log(`(p) plain INSERT into a copy of the table without triggers or RLS (its constraints and indexes kept): ${median(plainRates).toFixed(0)} rows/s`);
  console.log(`(p0) plain INSERT into a bare heap (no constraint, index, trigger or RLS): ${median(bareRates).toFixed(0)} rows/s`);
  console.log(`    ratio b/p = ${ratio.toFixed(2)}, the median of the rounds' ratios (range ${sortedRatios[0]!.toFixed(2)}-${sortedRatios.at(-1)!.toFixed(2)}; ` +
    `bar >= 0.3: ${ratio >= 0.3 ? "met" : "NOT met"}); b/p0 = ${median(bareRatios).toFixed(2)} (for information)`);
}

main()
  .catch((error) => {
    console.error(`receptionist bench: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  })
  .finally(() => Promise.all(connections.map((c) => c.end({ timeout: 1 }))));
