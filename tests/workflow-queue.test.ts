// The step queue under concurrency, against the real database: 8 workers (one connection each, as the service role)
// drain 5,000 single-node executions and every run is executed exactly once; a worker that dies mid-run loses its
// lease and the run is retried by another, whose completion counts while the dead worker's late one is refused;
// two branches finishing at the same moment enqueue their join once; two approvers deciding at the same moment are
// never both the deciding vote.
import { randomUUID } from "node:crypto";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testEnv } from "./helpers/env.ts";

type Sql = postgres.Sql;
interface ClaimedRun {
  id: string;
  lease_token: string;
  execution_id: string;
  attempt: number;
}

const organizationId = randomUUID();
const owner = randomUUID();
const approvers = [randomUUID(), randomUUID()];
let admin: Sql;
const opened: Sql[] = [];

function connect(): Sql {
  const sql = postgres(testEnv().dbUrl, { max: 1, prepare: false, onnotice: () => {}, connection: { application_name: "workflow-queue-test" } });
  opened.push(sql);
  return sql;
}

async function worker(role: "service_role"): Promise<Sql> {
  const sql = connect();
  await sql.unsafe(`set role ${role}`);
  return sql;
}

async function createWorkflow(definition: unknown): Promise<string> {
  const [row] = await admin<{ id: string }[]>`
    insert into public.workflows (organization_id, name, definition)
    values (${organizationId}, 'queue test', ${JSON.stringify(definition)}::text::jsonb) returning id`;
  return row!.id;
}

// Resolves once another session of this test is blocked on a row lock (polling: no fixed sleep).
async function someoneWaitsForALock(): Promise<void> {
  for (;;) {
    const [row] = await admin<{ waiting: boolean }[]>`
      select exists (select 1 from pg_stat_activity where application_name = 'workflow-queue-test' and wait_event_type = 'Lock') as waiting`;
    if (row!.waiting) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const singleTask = { nodes: [{ id: "work", type: "task", name: "Work", config: { action: "emit_event" } }], edges: [] };

beforeAll(async () => {
  admin = connect();
  for (const id of [owner, ...approvers]) {
    await admin`insert into auth.users (instance_id, id, aud, role, email) values ('00000000-0000-0000-0000-000000000000', ${id}, 'authenticated', 'authenticated', ${`${id}@example.test`})`;
  }
  await admin`insert into public.organizations (id, name, slug) values (${organizationId}, 'Queue test', ${`queue-${organizationId.slice(0, 8)}`})`;
  await admin`insert into public.organization_members (organization_id, user_id, role_id)
              select ${organizationId}, u, (select id from public.roles where organization_id is null and key = 'member')
              from unnest(${[owner, ...approvers]}::uuid[]) u`;
});

afterAll(async () => {
  await admin`delete from public.organizations where id = ${organizationId}`;
  await admin`delete from auth.users where id = any(${[owner, ...approvers]}::uuid[])`;
  await Promise.all(opened.map((sql) => sql.end({ timeout: 1 })));
});

describe("the workflow step queue", () => {
  it("8 concurrent workers execute each of 5,000 runs exactly once", async () => {
    const workflow = await createWorkflow(singleTask);
    const started = await admin<{ id: string }[]>`select public.start_workflow(${workflow}, jsonb_build_object('n', n)) as id from generate_series(1, 5000) n`;
    const ours = new Set(started.map((row) => row.id));
    // As autovacuum would after a bulk insert: the planner then knows the queue is 5,000 rows, not empty.
    await admin`analyze public.workflow_runs, public.workflow_executions`;
    const workers = await Promise.all(Array.from({ length: 8 }, () => worker("service_role")));
    const executed: string[][] = workers.map(() => []);
    await Promise.all(workers.map(async (sql, w) => {
      for (;;) {
        const runs = await sql<ClaimedRun[]>`select id, lease_token, execution_id, attempt from public.claim_workflow_runs(${`worker-${w}`}, 10)`;
        if (runs.length === 0) break;
        for (const run of runs) {
          const [result] = await sql<{ r: string }[]>`select public.complete_workflow_run(${run.id}, ${run.lease_token}, ${sql.json({ worker: w })}) as r`;
          expect(result!.r).toBe("completed");
          if (ours.has(run.execution_id)) executed[w]!.push(run.id);
        }
      }
    }));
    const all = executed.flat();
    expect(all).toHaveLength(5000);
    expect(new Set(all).size).toBe(5000);
    expect(executed.filter((runs) => runs.length > 0).length).toBeGreaterThan(1);
    const [counts] = await admin<{ runs: number; once: number; succeeded: number }[]>`
      select count(*)::int as runs, count(*) filter (where r.attempt = 1)::int as once,
             (select count(*)::int from public.workflow_executions e where e.workflow_id = ${workflow} and e.status = 'succeeded') as succeeded
      from public.workflow_runs r join public.workflow_executions e on e.id = r.execution_id
      where e.workflow_id = ${workflow} and r.status = 'succeeded'`;
    expect(counts).toEqual({ runs: 5000, once: 5000, succeeded: 5000 });
  }, 180_000);

  it("retries the run of a worker killed mid-run after its lease, and refuses the dead worker's late completion", async () => {
    const workflow = await createWorkflow(singleTask);
    const execution = (await admin<{ id: string }[]>`select public.start_workflow(${workflow}, '{}') as id`)[0]!.id;
    const dying = await worker("service_role");
    const [claimed] = await dying<ClaimedRun[]>`
      select id, lease_token, execution_id, attempt from public.claim_workflow_runs('dying', 100, '1 second') where execution_id = ${execution}`;
    expect(claimed).toBeDefined();
    await dying.end({ timeout: 0 }); // the worker is gone, its lease still stands

    const survivor = await worker("service_role");
    let retried: ClaimedRun | undefined;
    while (!retried) {
      const runs = await survivor<ClaimedRun[]>`select id, lease_token, execution_id, attempt from public.claim_workflow_runs('survivor', 10)`;
      retried = runs.find((r) => r.id === claimed!.id);
      for (const other of runs.filter((r) => r.id !== claimed!.id)) {
        await survivor`select public.complete_workflow_run(${other.id}, ${other.lease_token}, '{}')`;
      }
      if (!retried) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(retried.attempt).toBe(2);
    expect(retried.lease_token).not.toBe(claimed!.lease_token);

    const late = await worker("service_role");
    const [lateResult] = await late<{ r: string }[]>`select public.complete_workflow_run(${claimed!.id}, ${claimed!.lease_token}, '{"from": "dead"}') as r`;
    expect(lateResult!.r).toBe("lease_lost");
    const [lateFailure] = await late<{ r: string }[]>`select public.fail_workflow_run(${claimed!.id}, ${claimed!.lease_token}, '{}') as r`;
    expect(lateFailure!.r).toBe("lease_lost");
    const [result] = await survivor<{ r: string }[]>`select public.complete_workflow_run(${retried.id}, ${retried.lease_token}, '{"from": "survivor"}') as r`;
    expect(result!.r).toBe("completed");
    const [state] = await admin<{ status: string; output: unknown }[]>`select status, output from public.workflow_executions where id = ${execution}`;
    expect(state).toEqual({ status: "succeeded", output: { work: { from: "survivor" } } });
  }, 60_000);

  it("enqueues a join once when its two branches complete at the same moment", async () => {
    const task = (id: string) => ({ id, type: "task", name: id, config: { action: "emit_event" } });
    const workflow = await createWorkflow({
      nodes: [task("split"), task("left"), task("right"), task("join")],
      edges: [{ from: "split", to: "left" }, { from: "split", to: "right" }, { from: "left", to: "join" }, { from: "right", to: "join" }],
    });
    const execution = (await admin<{ id: string }[]>`select public.start_workflow(${workflow}, '{}') as id`)[0]!.id;
    const claim = async (node: string): Promise<ClaimedRun> => {
      await admin`update public.workflow_runs set run_at = now() - interval '1 hour' where execution_id = ${execution} and node_id = ${node}`;
      for (;;) {
        const runs = await admin<(ClaimedRun & { node_id: string })[]>`select id, lease_token, execution_id, attempt, node_id from public.claim_workflow_runs('join-test', 1)`;
        const mine = runs.find((r) => r.execution_id === execution && r.node_id === node);
        if (mine) return mine;
        for (const other of runs) await admin`select public.complete_workflow_run(${other.id}, ${other.lease_token}, '{}')`;
      }
    };
    const split = await claim("split");
    await admin`select public.complete_workflow_run(${split.id}, ${split.lease_token}, '{}')`;
    const left = await claim("left");
    const right = await claim("right");

    const a = await worker("service_role");
    const b = await worker("service_role");
    const results: string[] = [];
    let secondDone: Promise<void> = Promise.resolve();
    await a.begin(async (txA) => {
      const [r1] = await txA<{ r: string }[]>`select public.complete_workflow_run(${left.id}, ${left.lease_token}, '{"side": "left"}') as r`;
      results.push(r1!.r);
      // b completes the other branch while a's transaction is still open: it waits for the execution's lock.
      secondDone = b<{ r: string }[]>`select public.complete_workflow_run(${right.id}, ${right.lease_token}, '{"side": "right"}') as r`
        .then(([r2]) => { results.push(r2!.r); });
      await someoneWaitsForALock();
    });
    await secondDone;
    expect(results).toEqual(["completed", "completed"]);
    const joins = await admin<{ status: string; nodes: Record<string, unknown> }[]>`
      select status, input -> 'context' -> 'nodes' as nodes from public.workflow_runs where execution_id = ${execution} and node_id = 'join'`;
    expect(joins).toHaveLength(1);
    expect(joins[0]!.status).toBe("queued");
    expect(joins[0]!.nodes).toMatchObject({ left: { side: "left" }, right: { side: "right" } });
  }, 60_000);

  it("never lets two approvers deciding at the same moment both be the deciding vote", async () => {
    const workflow = await createWorkflow({
      nodes: [
        { id: "sign", type: "approval", name: "Sign", config: { approval_type: "single", approvers: { user_ids: approvers } } },
        { id: "after", type: "task", name: "After", config: { action: "emit_event" } },
      ],
      edges: [{ from: "sign", to: "after" }],
    });
    const execution = (await admin<{ id: string }[]>`select public.start_workflow(${workflow}, '{}') as id`)[0]!.id;
    const request = (await admin<{ id: string }[]>`select id from public.approval_requests where execution_id = ${execution}`)[0]!.id;
    const asUser = async (tx: postgres.TransactionSql, user: string) => {
      await tx`select set_config('role', 'authenticated', true), set_config('request.jwt.claims', ${JSON.stringify({ sub: user, role: "authenticated" })}, true)`;
    };
    const first = connect();
    const second = connect();
    const outcomes: Array<string> = [];
    let secondDone: Promise<void> = Promise.resolve();
    await first.begin(async (tx) => {
      await asUser(tx, approvers[0]!);
      const [decided] = await tx<{ status: string }[]>`select (public.decide_approval(${request}, 'approve')).status`;
      outcomes.push(`first:${decided!.status}`);
      secondDone = second.begin(async (tx2) => {
        await asUser(tx2, approvers[1]!);
        const [decided2] = await tx2<{ status: string }[]>`select (public.decide_approval(${request}, 'reject')).status`;
        outcomes.push(`second:${decided2!.status}`);
      }).catch((error: { code?: string }) => { outcomes.push(`second:${error.code}`); });
      await someoneWaitsForALock();
    });
    await secondDone;
    expect(outcomes).toEqual(["first:approved", "second:55000"]);
    const decisions = await admin<{ n: number }[]>`select count(*)::int as n from public.approval_decisions where approval_request_id = ${request}`;
    expect(decisions[0]!.n).toBe(1);
    const [state] = await admin<{ status: string }[]>`select status from public.workflow_executions where id = ${execution}`;
    expect(state!.status).toBe("running");
  }, 60_000);
});
