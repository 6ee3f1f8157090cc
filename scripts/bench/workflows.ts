// Benchmark of the workflow step queue (issue 11, section 5). Run by `npm run bench -- workflows` (scripts/bench.sh),
// or alone against a migrated database:
//   SUPABASE_DB_URL=postgresql://... tsx scripts/bench/workflows.ts [--runs 5000] [--workers 4] [--batch 10]
//
// In one run, 4 workers (one connection each, as the service role) claiming 10 at a time with no sleep while work is
// available: (a) a bare `for update skip locked` claim-and-delete loop on a minimal table, (b) claim_workflow_runs()
// + complete_workflow_run() on single-node executions (started beforehand, not timed), the batch's completions in one
// round trip, and (b1) the same with one call per run; runs per second and b/a, over interleaved rounds: odd rounds
// run (a), (b), (b1), even rounds (b1), (b), (a), so that drift in the machine's load favours neither; each phase
// starts from the same state (the previous phase's executions deleted, tables vacuumed). Each round's b/a and the
// median of the rounds' ratios are printed, with the load average before and after each round (the machine is shared).
// Then (c) the latency from start_workflow to the first claim (p50/p95, database clocks) with executions started one
// by one while the workers poll, and (d) executions per second of a 10-node graph with a condition (starts included),
// its node runs per second also as a ratio to (a)'s median.
// It asserts nothing about speed; it exits 1 only when a phase does not do all its work.
import { loadavg } from "node:os";
import postgres from "postgres";
import { benchFail, parseNumberOptions, positiveInteger } from "../bench-options.ts";

const HELP = `workflows benchmark

usage: tsx scripts/bench/workflows.ts [--rounds N] [--runs N] [--workers N] [--batch N] [--latency N] [--graphs N]

  --rounds N   interleaved rounds of (a), (b), (b1); the median of the rounds' ratios is reported (default 7)
  --runs N     jobs in (a), single-node executions in (b) and (b1), per round (default 5000)
  --workers N  concurrent workers (default 4)
  --batch N    runs claimed per call (default 10)
  --latency N  executions started one by one in (c) (default 1000)
  --graphs N   executions of the 10-node graph in (d) (default 300)

environment: SUPABASE_DB_URL (or DB_URL).`;

interface Options {
  rounds: number;
  runs: number;
  workers: number;
  batch: number;
  latency: number;
  graphs: number;
}
interface Claimed {
  id: string;
  lease_token: string;
  execution_id: string;
}
// A batch's completions in execution order (unnest keeps the array's order), so that two workers' batches lock
// executions in the same order.
const sorted = (runs: Claimed[]) => [...runs].sort((x, y) => (x.execution_id < y.execution_id ? -1 : x.execution_id > y.execution_id ? 1 : 0));

const fail = (message: string): never => benchFail("workflows", message);

function parseOptions(args: string[]): Options {
  const defaults: Options = { rounds: 7, runs: 5000, workers: 4, batch: 10, latency: 1000, graphs: 300 };
  return parseNumberOptions("workflows", HELP, defaults, args, positiveInteger);
}

const dbUrl = process.env.SUPABASE_DB_URL || process.env.DB_URL || fail("SUPABASE_DB_URL is not set (see --help)");
const connections: postgres.Sql[] = [];
function connect(): postgres.Sql {
  const sql = postgres(dbUrl, { max: 1, prepare: false, onnotice: () => {}, connection: { application_name: "bench-workflows" } });
  connections.push(sql);
  return sql;
}

async function timed(work: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await work();
  return (performance.now() - started) / 1000;
}

function definitionOf(nodes: Array<[string, string, unknown]>, edges: Array<[string, string, boolean?]>): string {
  return JSON.stringify({
    nodes: nodes.map(([id, type, config]) => ({ id, type, name: id, config })),
    edges: edges.map(([from, to, when]) => (when === undefined ? { from, to } : { from, to, when })),
  });
}

// Claims batches and completes each claimed run (concurrently on the worker's one connection) until `done()`.
async function drain(workers: postgres.Sql[], batch: number, done: () => Promise<boolean>, idleMs = 0, batched = true): Promise<number> {
  let completed = 0;
  await Promise.all(workers.map(async (sql, w) => {
    for (;;) {
      const runs = await sql<Claimed[]>`select id, lease_token, execution_id from public.claim_workflow_runs(${`bench-${w}`}, ${batch})`;
      if (runs.length === 0) {
        if (await done()) return;
        if (idleMs > 0) await new Promise((resolve) => setTimeout(resolve, idleMs));
        continue;
      }
      const answers = batched
        // One round trip for the batch: each run still through its own complete_workflow_run() call.
        ? (await sql<{ r: string }[]>`
            select public.complete_workflow_run(c.id, c.token, '{"ok": true}') as r
            from unnest(${sorted(runs).map((run) => run.id)}::uuid[], ${sorted(runs).map((run) => run.lease_token)}::uuid[]) as c(id, token)`)
          .map((row) => row.r)
        : (await Promise.all(runs.map((run) =>
          sql<{ r: string }[]>`select public.complete_workflow_run(${run.id}, ${run.lease_token}, '{"ok": true}') as r`
        ))).map(([row]) => row?.r);
      for (const answer of answers) if (answer !== "completed") fail(`a completion answered ${answer}`);
      completed += runs.length;
    }
  }));
  return completed;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const admin = connect();
  const workers = Array.from({ length: options.workers }, connect);
  try {
    await Promise.all(workers.map((sql) => sql`set role service_role`));
    const [org] = await admin<{ id: string }[]>`
      insert into public.organizations (name, slug) values ('Bench workflows', 'bench-workflows-' || substr(md5(random()::text), 1, 8)) returning id`;
    const organizationId = org!.id;
    const workflow = async (definition: string) =>
      (await admin<{ id: string }[]>`insert into public.workflows (organization_id, name, definition, timeout)
        values (${organizationId}, 'bench', ${definition}::text::jsonb, null) returning id`)[0]!.id;

    // (a) the bare loop.
    await admin`create schema if not exists bench`;
    await admin`drop table if exists bench.jobs`;
    await admin`create table bench.jobs (id bigint generated always as identity primary key, payload jsonb not null, run_at timestamptz not null default now())`;
    await admin`grant usage on schema bench to service_role`;
    await admin`grant select, update, delete on bench.jobs to service_role`;
    const barePhase = async (): Promise<number> => {
      await admin`insert into bench.jobs (payload) select jsonb_build_object('n', n) from generate_series(1, ${options.runs}) n`;
      await admin`vacuum analyze bench.jobs`;
      let bareDone = 0;
      const seconds = await timed(async () => {
        await Promise.all(workers.map(async (sql) => {
          for (;;) {
            const rows = await sql`
              delete from bench.jobs j where j.id in (
                select id from bench.jobs where run_at <= now() order by run_at limit ${options.batch} for update skip locked)
              returning j.id`;
            if (rows.length === 0) return;
            bareDone += rows.length;
          }
        }));
      });
      if (bareDone !== options.runs) fail(`the bare loop did ${bareDone} of ${options.runs} jobs`);
      return seconds;
    };

    // (b) the queue, on single-node executions started beforehand: the batch's completions reported in one round
    // trip (b), and one call per run, pipelined on the worker's connection (b1).
    const queuePhase = async (batched: boolean): Promise<number> => {
      const single = await workflow(definitionOf([["work", "task", { action: "emit_event" }]], []));
      await admin`select public.start_workflow(${single}, jsonb_build_object('n', n)) from generate_series(1, ${options.runs}) n`;
      await admin`vacuum analyze public.workflow_runs`;
      await admin`vacuum analyze public.workflow_executions`;
      let queueDone = 0;
      const seconds = await timed(async () => {
        queueDone = await drain(workers, options.batch, async () => true, 0, batched);
      });
      const [succeeded] = await admin<{ n: number }[]>`
        select count(*)::int as n from public.workflow_executions where workflow_id = ${single} and status = 'succeeded'`;
      if (queueDone !== options.runs || succeeded!.n !== options.runs) {
        fail(`the queue completed ${queueDone} runs and ${succeeded!.n} executions of ${options.runs}`);
      }
      // Not timed: the next phase starts from the same state as this one did.
      await admin`delete from public.workflows where id = ${single}`;
      return seconds;
    };
    // The machine is shared: (a), (b) and (b1) run within seconds of each other in each of --rounds rounds, in
    // alternating order, and each round's ratio compares its own phases.
    const load = () => loadavg().map((x) => x.toFixed(2)).join(" ");
    const rounds: Array<{ a: number; b: number; b1: number; order: string; load: string }> = [];
    for (let round = 0; round < options.rounds; round++) {
      const before = load();
      const seconds = { a: 0, b: 0, b1: 0 };
      const order = round % 2 === 0 ? (["a", "b", "b1"] as const) : (["b1", "b", "a"] as const);
      for (const phase of order) seconds[phase] = phase === "a" ? await barePhase() : await queuePhase(phase === "b");
      rounds.push({ a: options.runs / seconds.a, b: options.runs / seconds.b, b1: options.runs / seconds.b1,
                    order: order.join(", "), load: `${before} -> ${load()}` });
    }

    // (c) start_workflow -> first claim, with executions started one by one while the workers poll (1 ms when idle).
    const latency = await workflow(definitionOf([["work", "task", { action: "emit_event" }]], []));
    let producing = true;
    const producer = (async () => {
      for (let n = 0; n < options.latency; n++) await admin`select public.start_workflow(${latency}, '{}')`;
      producing = false;
    })();
    await Promise.all([producer, drain(workers, options.batch, async () => !producing, 1)]);
    const delays = (await admin<{ ms: number }[]>`
      select extract(epoch from (r.started_at - e.created_at)) * 1000 as ms
      from public.workflow_runs r join public.workflow_executions e on e.id = r.execution_id
      where e.workflow_id = ${latency} order by 1`).map((row) => Number(row.ms));
    if (delays.length !== options.latency) fail(`(c) measured ${delays.length} of ${options.latency} executions`);

    // (d) a 10-node graph with a condition: t1 -> even? -> (t2 -> t3 -> t4 | t5 -> t6 -> t7) -> t8 -> t9.
    const task = { action: "emit_event" };
    const graph = await workflow(definitionOf(
      [["t1", "task", task], ["even", "condition", { expression: "$.input.n % 2 == 0" }], ["t2", "task", task], ["t3", "task", task],
       ["t4", "task", task], ["t5", "task", task], ["t6", "task", task], ["t7", "task", task], ["t8", "task", task], ["t9", "task", task]],
      [["t1", "even"], ["even", "t2", true], ["even", "t5", false], ["t2", "t3"], ["t3", "t4"], ["t5", "t6"], ["t6", "t7"],
       ["t4", "t8"], ["t7", "t8"], ["t8", "t9"]],
    ));
    const unfinished = async () => (await admin<{ n: number }[]>`
      select count(*)::int as n from public.workflow_executions where workflow_id = ${graph} and status not in ('succeeded', 'failed')`)[0]!.n;
    const dSeconds = await timed(async () => {
      await admin`select public.start_workflow(${graph}, jsonb_build_object('n', n)) from generate_series(1, ${options.graphs}) n`;
      await drain(workers, options.batch, async () => (await unfinished()) === 0);
    });
    const [graphs] = await admin<{ ok: number; runs: number }[]>`
      select count(*) filter (where e.status = 'succeeded')::int as ok,
             (select count(*)::int from public.workflow_runs r join public.workflow_executions x on x.id = r.execution_id
              where x.workflow_id = ${graph} and r.status = 'succeeded') as runs
      from public.workflow_executions e where e.workflow_id = ${graph}`;
    if (graphs!.ok !== options.graphs) fail(`(d) ${graphs!.ok} of ${options.graphs} graphs succeeded`);

    console.log(`workers ${options.workers}, claiming ${options.batch} at a time; ${options.runs} jobs/runs per phase, ${options.rounds} rounds`);
    for (const [i, r] of rounds.entries()) {
      console.log(`round ${i + 1} (${r.order}; load ${r.load}): (a) ${r.a.toFixed(0)} jobs/s, (b) ${r.b.toFixed(0)} runs/s, (b1) ${r.b1.toFixed(0)} runs/s; b/a ${(r.b / r.a).toFixed(3)}, b1/a ${(r.b1 / r.a).toFixed(3)}`);
    }
    const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!;
    console.log(`(a) bare skip-locked claim-and-delete:     ${median(rounds.map((r) => r.a)).toFixed(0).padStart(7)} jobs/s   (median of rounds)`);
    console.log(`(b) claim_workflow_runs + complete, batch:  ${median(rounds.map((r) => r.b)).toFixed(0).padStart(7)} runs/s   median b/a ${median(rounds.map((r) => r.b / r.a)).toFixed(3)} (bar 0.3)`);
    console.log(`(b1) ... one complete call per run:         ${median(rounds.map((r) => r.b1)).toFixed(0).padStart(7)} runs/s   median b1/a ${median(rounds.map((r) => r.b1 / r.a)).toFixed(3)}`);
    console.log(`(c) start_workflow -> first claim (${options.latency} starts): p50 ${percentile(delays, 50).toFixed(1)} ms, p95 ${percentile(delays, 95).toFixed(1)} ms`);
    // Its node runs per second against (a)'s jobs per second in this run: the graph's cost per node relative to the bare loop.
    console.log(`(d) 10-node graph with a condition:         ${(options.graphs / dSeconds).toFixed(1).padStart(7)} executions/s (${graphs!.runs} node runs incl. conditions, ${(graphs!.runs / dSeconds).toFixed(0)} runs/s, ${(graphs!.runs / dSeconds / median(rounds.map((r) => r.a))).toFixed(3)} of (a))`);
    await admin`delete from public.organizations where id = ${organizationId}`;
    await admin`drop table bench.jobs`;
  } finally {
    await Promise.all(connections.map((sql) => sql.end({ timeout: 1 })));
  }
}

await main();
