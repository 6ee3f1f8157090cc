// The workflow definition format at the edges (zod), mirroring the SQL validator in
// supabase/schemas/45-workflows-definitions.sql rule for rule and in the same order, so that a client or edge
// function learns the same SQLSTATE (WF001-WF007) before it writes. Two checks stay with SQL alone: whether a condition
// expression is an SQL/JSON path predicate (WF008; here: a non-empty string) and PostgreSQL's full interval grammar
// (here: "<n> <unit>" terms and HH:MM[:SS]).
import { z } from "zod";

export type WorkflowRule = "WF001" | "WF002" | "WF003" | "WF004" | "WF005" | "WF006" | "WF007";

export interface WorkflowProblem {
  sqlstate: WorkflowRule;
  message: string;
}

const uuid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
const wholeNumber = z.number().int();
const intervalText = z.string().regex(
  /^\s*(\d+(\.\d+)?\s*(microseconds?|milliseconds?|seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w|months?|mons?|years?|y)\s*)+$|^\s*\d{1,3}:\d{2}(:\d{2})?\s*$/i,
  "a positive interval such as \"2 days\"",
).refine((text) => /[1-9]/.test(text), "a positive interval");

const approverSpec = z.strictObject({
  user_ids: z.array(uuid).optional(),
  role: z.string().regex(/^[a-z][a-z0-9_]{0,39}$/).optional(),
  permission: z.string().regex(/^[a-z_]+\.[a-z_]+$/).optional(),
}).refine((spec) => Object.keys(spec).length > 0, "at least one of user_ids, role, permission");

type FormSchema = {
  type?: "string" | "number" | "integer" | "boolean" | "object" | "array" | "null";
  required?: string[];
  properties?: Record<string, FormSchema>;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  title?: string;
  description?: string;
};
/** The JSON Schema subset approval forms may use (the SQL validator private.json_schema_errors() knows only these). */
export const formSchema: z.ZodType<FormSchema> = z.lazy(() =>
  z.strictObject({
    type: z.enum(["string", "number", "integer", "boolean", "object", "array", "null"]).optional(),
    required: z.array(z.string()).optional(),
    properties: z.record(z.string(), formSchema).optional(),
    enum: z.array(z.unknown()).min(1).optional(),
    minimum: z.number().optional(),
    maximum: z.number().optional(),
    minLength: wholeNumber.min(0).optional(),
    maxLength: wholeNumber.min(0).optional(),
    title: z.string().optional(),
    description: z.string().optional(),
  })
);

export const conditionConfig = z.strictObject({ expression: z.string().min(1) });
export const approvalConfig = z.strictObject({
  approval_type: z.enum(["single", "multiple", "unanimous", "majority"]),
  required_approvals: wholeNumber.min(1).optional(),
  approvers: approverSpec,
  expires_in: intervalText.optional(),
  escalate_after: intervalText.optional(),
  escalate_to: approverSpec.optional(),
  on_timeout: z.enum(["reject", "approve", "fail"]).optional(),
  allow_self_approval: z.boolean().optional(),
  title: z.string().optional(),
  description: z.string().optional(),
  form_schema: formSchema.optional(),
}).refine((c) => (c.approval_type === "multiple") === (c.required_approvals !== undefined), {
  message: "required_approvals is required for multiple approvals and allowed for no other type",
}).refine((c) => (c.escalate_to === undefined) === (c.escalate_after === undefined), {
  message: "escalate_after and escalate_to go together",
});
export const aiAgentConfig = z.strictObject({
  provider_config_id: uuid.optional(),
  model: z.string().optional(),
  system: z.string().optional(),
  prompt: z.string().min(1),
  max_tokens: wholeNumber.min(1).optional(),
  temperature: z.number().min(0).max(2).optional(),
  max_retries: wholeNumber.min(0).max(10).optional(),
  timeout_ms: wholeNumber.min(1).max(600_000).optional(),
});
// create_task params (private.create_task_params_problem, 57-work-automations.sql); strings may hold templates.
export const createTaskParams = z.strictObject({
  title: z.string().refine((title) => title.replace(/^ +| +$/g, "") !== "", "params.title must not be empty"),
  description: z.string().optional(),
  project_id: z.string().optional(),
  parent_task_id: z.string().optional(),
  assignee_id: z.string().optional(),
  priority: z.enum(["low", "medium", "high", "urgent"]).optional(),
  due_date: z.string().optional(),
  estimated_minutes: wholeNumber.min(0).max(1_000_000).optional(),
  tags: z.array(z.string()).optional(),
});
export const taskConfig = z.strictObject({
  action: z.enum(["http_request", "emit_event", "create_task"]),
  params: z.record(z.string(), z.unknown()).optional(),
}).superRefine((config, ctx) => {
  if (config.action !== "create_task") return;
  const params = createTaskParams.safeParse(config.params ?? {});
  if (!params.success) ctx.addIssue({ code: "custom", message: `create_task: ${params.error.issues[0]?.message ?? "bad params"}` });
});

const nodeConfigs = { condition: conditionConfig, approval: approvalConfig, ai_agent: aiAgentConfig, task: taskConfig };

const nodeShape = z.strictObject({
  id: z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,63}$/),
  type: z.enum(["task", "approval", "ai_agent", "condition"]),
  name: z.string(),
  config: z.unknown().refine((value) => value !== undefined, "config is required"),
});
const edgeShape = z.strictObject({ from: z.string(), to: z.string(), when: z.unknown().optional() });
const definitionShape = z.strictObject({ nodes: z.array(nodeShape).min(1).max(200), edges: z.array(edgeShape) });

export type WorkflowNode =
  | { id: string; type: "condition"; name: string; config: z.infer<typeof conditionConfig> }
  | { id: string; type: "approval"; name: string; config: z.infer<typeof approvalConfig> }
  | { id: string; type: "ai_agent"; name: string; config: z.infer<typeof aiAgentConfig> }
  | { id: string; type: "task"; name: string; config: z.infer<typeof taskConfig> };
export interface WorkflowEdge {
  from: string;
  to: string;
  when?: boolean;
}
export interface WorkflowDefinition {
  nodes: WorkflowNode[];
  edges: WorkflowEdge[];
}

/** The first rule a definition breaks, in the SQL validator's order, or null when it is valid. */
export function workflowDefinitionProblem(definition: unknown): WorkflowProblem | null {
  const shape = definitionShape.safeParse(definition);
  if (!shape.success) {
    return { sqlstate: "WF001", message: shape.error.issues[0]?.message ?? "not a workflow definition" };
  }
  const { nodes, edges } = shape.data;
  const ids = nodes.map((n) => n.id);
  const duplicate = ids.find((id, i) => ids.indexOf(id) !== i);
  if (duplicate !== undefined) return { sqlstate: "WF002", message: `node id "${duplicate}" is used more than once` };
  const dangling = edges.find((e) => !ids.includes(e.from) || !ids.includes(e.to));
  if (dangling) return { sqlstate: "WF003", message: `edge from "${dangling.from}" to "${dangling.to}" names a node that does not exist` };
  const entries = ids.filter((id) => !edges.some((e) => e.to === id));
  if (entries.length !== 1) return { sqlstate: "WF004", message: `a workflow has exactly one entry node, this one has ${entries.length}` };
  let remaining = [...new Set(ids)];
  for (;;) {
    const ready = remaining.filter((id) => !edges.some((e) => e.to === id && remaining.includes(e.from)));
    if (ready.length === 0) break;
    remaining = remaining.filter((id) => !ready.includes(id));
  }
  if (remaining.length > 0) return { sqlstate: "WF005", message: `the workflow has a cycle through ${remaining.join(", ")}` };
  for (const node of nodes) {
    const config = nodeConfigs[node.type].safeParse(node.config);
    if (!config.success) {
      return { sqlstate: "WF006", message: `node "${node.id}": ${config.error.issues[0]?.message ?? "bad config"}` };
    }
  }
  const typeOf = new Map(nodes.map((n) => [n.id, n.type]));
  for (const edge of edges) {
    const fromCondition = typeOf.get(edge.from) === "condition";
    if (fromCondition ? typeof edge.when !== "boolean" : edge.when !== undefined) {
      return {
        sqlstate: "WF007",
        message: fromCondition
          ? `the edge from condition "${edge.from}" to "${edge.to}" needs "when": true or false`
          : `the edge from "${edge.from}" to "${edge.to}" has "when", but only edges out of a condition may`,
      };
    }
  }
  return null;
}

/** zod schema of a workflow definition; each issue carries the SQLSTATE the database would raise in params.sqlstate. */
export const workflowDefinition = z.unknown().transform((value, ctx): WorkflowDefinition => {
  const problem = workflowDefinitionProblem(value);
  if (problem) {
    ctx.addIssue({ code: "custom", message: problem.message, params: { sqlstate: problem.sqlstate } });
    return z.NEVER;
  }
  return value as WorkflowDefinition;
});
