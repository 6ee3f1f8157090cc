// The zod mirror of the workflow definition (supabase/functions/_shared/workflow-definition.ts) accepts and refuses
// the same definitions as the SQL validator, with the same SQLSTATE: each case of the corpus below (one or more per
// rule the issue lists) is saved into the database in a rolled-back transaction and parsed by zod.
import { randomUUID } from "node:crypto";
import { sql, type Kysely } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabase, type UntypedDatabase } from "../supabase/functions/_shared/db.ts";
import { workflowDefinition, workflowDefinitionProblem } from "../supabase/functions/_shared/workflow-definition.ts";
import { testEnv } from "./helpers/env.ts";

let db: Kysely<UntypedDatabase>;
const organizationId = randomUUID();

const task = (id: string, config: unknown = { action: "emit_event" }) => ({ id, type: "task", name: id, config });
const condition = (id: string, expression = "$.input.amount > 100") => ({ id, type: "condition", name: id, config: { expression } });
const approval = (id: string, config: Record<string, unknown> = {}) => ({
  id, type: "approval", name: id, config: { approval_type: "single", approvers: { role: "admin" }, ...config },
});
const agent = (id: string, config: Record<string, unknown> = {}) => ({ id, type: "ai_agent", name: id, config: { prompt: "Hi {{input.x}}", ...config } });
const line = (...nodes: Array<{ id: string } & Record<string, unknown>>) => ({
  nodes,
  edges: nodes.slice(1).map((n, i) => ({ from: nodes[i]!.id, to: n.id })),
});

// [description, definition, expected SQLSTATE or null when valid]
const corpus: Array<[string, unknown, string | null]> = [
  ["a single task", line(task("a")), null],
  ["a task, a condition with both branches and a join", {
    nodes: [task("a"), condition("c"), approval("yes"), agent("no"), task("join", { action: "http_request", params: { url: "https://example.com" } })],
    edges: [{ from: "a", to: "c" }, { from: "c", to: "yes", when: true }, { from: "c", to: "no", when: false },
            { from: "yes", to: "join" }, { from: "no", to: "join" }],
  }, null],
  ["an approval using every key", line(task("a"), approval("b", {
    approval_type: "multiple", required_approvals: 2, approvers: { user_ids: [randomUUID()], role: "admin", permission: "approvals.decide" },
    expires_in: "2 days", escalate_after: "12 hours", escalate_to: { role: "owner" }, on_timeout: "fail", allow_self_approval: true,
    title: "Pay?", description: "Big", form_schema: { type: "object", required: ["reason"], properties: { reason: { type: "string", minLength: 3 } } },
  })), null],
  ["an ai_agent using every key", line(agent("a", { provider_config_id: randomUUID(), model: "m", system: "s", max_tokens: 10, temperature: 1.5, max_retries: 0, timeout_ms: 1000 })), null],
  ["an array", [], "WF001"],
  ["no edges key", { nodes: [task("a")] }, "WF001"],
  ["no nodes", { nodes: [], edges: [] }, "WF001"],
  ["an extra top-level key", { ...line(task("a")), version: 2 }, "WF001"],
  ["a node without name", { nodes: [{ id: "a", type: "task", config: { action: "emit_event" } }], edges: [] }, "WF001"],
  ["a node without config", { nodes: [{ id: "a", type: "task", name: "a" }], edges: [] }, "WF001"],
  ["an unknown node type", { nodes: [{ id: "a", type: "email", name: "a", config: {} }], edges: [] }, "WF001"],
  ["an extra key on a node", { nodes: [{ ...task("a"), retries: 2 }], edges: [] }, "WF001"],
  ["a node id starting with a digit", line(task("1a")), "WF001"],
  ["an extra key on an edge", { nodes: [task("a"), task("b")], edges: [{ from: "a", to: "b", label: "x" }] }, "WF001"],
  ["a duplicate node id", { nodes: [task("a"), task("a")], edges: [] }, "WF002"],
  ["an edge to a missing node", { nodes: [task("a")], edges: [{ from: "a", to: "ghost" }] }, "WF003"],
  ["an edge from a missing node", { nodes: [task("a")], edges: [{ from: "ghost", to: "a" }] }, "WF003"],
  ["two entry nodes", { nodes: [task("a"), task("b")], edges: [] }, "WF004"],
  ["no entry node", { nodes: [task("a"), task("b")], edges: [{ from: "a", to: "b" }, { from: "b", to: "a" }] }, "WF004"],
  ["a cycle behind the entry", { nodes: [task("a"), task("b"), task("c")], edges: [{ from: "a", to: "b" }, { from: "b", to: "c" }, { from: "c", to: "b" }] }, "WF005"],
  ["a condition without expression", line(task("a"), { id: "c", type: "condition", name: "c", config: {} }), "WF006"],
  ["a condition with an extra key", line(task("a"), { id: "c", type: "condition", name: "c", config: { expression: "$.a > 1", negate: true } }), "WF006"],
  ["a config that is not an object", line({ id: "a", type: "task", name: "a", config: "emit_event" }), "WF006"],
  ["an unknown approval type", line(approval("a", { approval_type: "some" })), "WF006"],
  ["multiple without required_approvals", line(approval("a", { approval_type: "multiple" })), "WF006"],
  ["required_approvals on single", line(approval("a", { required_approvals: 2 })), "WF006"],
  ["empty approvers", line(approval("a", { approvers: {} })), "WF006"],
  ["an approver id that is no UUID", line(approval("a", { approvers: { user_ids: ["bob"] } })), "WF006"],
  ["escalate_to without escalate_after", line(approval("a", { escalate_to: { role: "owner" } })), "WF006"],
  ["an unknown on_timeout", line(approval("a", { on_timeout: "ignore" })), "WF006"],
  ["an unsupported form keyword", line(approval("a", { form_schema: { type: "string", pattern: "^x" } })), "WF006"],
  ["a misspelt approval key", line(approval("a", { titel: "x" })), "WF006"],
  ["an ai_agent without prompt", line({ id: "a", type: "ai_agent", name: "a", config: { model: "m" } }), "WF006"],
  ["a misspelt ai_agent key", line(agent("a", { temprature: 1 })), "WF006"],
  ["a temperature of 3", line(agent("a", { temperature: 3 })), "WF006"],
  ["fractional max_tokens", line(agent("a", { max_tokens: 1.5 })), "WF006"],
  ["an unknown task action", line(task("a", { action: "send_fax" })), "WF006"],
  ["task params that are an array", line(task("a", { action: "http_request", params: [] })), "WF006"],
  ["an extra key on a task", line(task("a", { action: "http_request", url: "https://example.com" })), "WF006"],
  ["a create_task with every documented param", line(task("a", { action: "create_task", params: { title: "Review {{input.x}}",
    description: "d", project_id: "{{input.p}}", parent_task_id: "{{input.t}}", assignee_id: "{{input.u}}", priority: "high",
    due_date: "2027-01-01", estimated_minutes: 30, tags: ["a"] } })), null],
  ["a create_task without params", line(task("a", { action: "create_task" })), "WF006"],
  ["a create_task with a blank title", line(task("a", { action: "create_task", params: { title: "  " } })), "WF006"],
  ["a misspelt create_task param", line(task("a", { action: "create_task", params: { title: "x", asignee_id: "u" } })), "WF006"],
  ["a create_task with an unknown priority", line(task("a", { action: "create_task", params: { title: "x", priority: "p0" } })), "WF006"],
  ["a create_task with numeric tags", line(task("a", { action: "create_task", params: { title: "x", tags: [1] } })), "WF006"],
  ["when on an edge out of a task", { nodes: [task("a"), task("b")], edges: [{ from: "a", to: "b", when: true }] }, "WF007"],
  ["when that is not a boolean", { nodes: [condition("c"), task("b")], edges: [{ from: "c", to: "b", when: "true" }] }, "WF007"],
  ["an edge out of a condition without when", { nodes: [condition("c"), task("b")], edges: [{ from: "c", to: "b" }] }, "WF007"],
];

async function sqlState(definition: unknown): Promise<string | null> {
  try {
    await db.transaction().execute(async (trx) => {
      await sql`insert into public.workflows (organization_id, name, definition)
                values (${organizationId}::uuid, 'mirror', ${JSON.stringify(definition)}::text::jsonb)`.execute(trx);
      throw new RolledBack();
    });
  } catch (error) {
    if (error instanceof RolledBack) return null;
    return (error as { code?: string }).code ?? "no code";
  }
  return null;
}
class RolledBack extends Error {}

beforeAll(async () => {
  db = createDatabase(testEnv().dbUrl, { max: 2 });
  await sql`insert into public.organizations (id, name, slug) values (${organizationId}::uuid, 'Mirror', ${`mirror-${organizationId.slice(0, 8)}`})`.execute(db);
});
afterAll(async () => {
  await sql`delete from public.organizations where id = ${organizationId}::uuid`.execute(db);
  await db.destroy();
});

describe("the zod workflow definition mirrors the SQL validator", () => {
  it.each(corpus)("%s", async (_description, definition, expected) => {
    expect(await sqlState(definition)).toBe(expected);
    expect(workflowDefinitionProblem(definition)?.sqlstate ?? null).toBe(expected);
    const parsed = workflowDefinition.safeParse(definition);
    expect(parsed.success).toBe(expected === null);
    if (!parsed.success) expect((parsed.error.issues[0] as { params?: { sqlstate?: string } } | undefined)?.params?.sqlstate).toBe(expected);
  });

  it("leaves whether an expression is an SQL/JSON path predicate to the database (WF008)", async () => {
    const definition = { nodes: [task("a"), condition("c", "$.input.amount"), task("b")], edges: [{ from: "a", to: "c" }, { from: "c", to: "b", when: true }] };
    expect(await sqlState(definition)).toBe("WF008");
    expect(workflowDefinitionProblem(definition)).toBeNull();
  });
});
