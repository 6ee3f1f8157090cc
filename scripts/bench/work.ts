// Benchmark of work management (issue 12, section 3). Run by `npm run bench -- work` (scripts/bench.sh), or alone
// against a migrated database:
//   SUPABASE_DB_URL=postgresql://... tsx scripts/bench/work.ts [--scale 1] [--queries 300] [--searches 200]
//
// Data, generated here with set-based SQL (untimed): 1,000 organizations of 10 members (owner, admin, 6 members,
// 2 viewers), 20 projects each (2 of them private) with 4 project members, 50 tasks per project (1,000,000; a fifth
// of them subtasks, 2% soft-deleted) assigned to the project's members, 2 comments per task (2,000,000; 1% soft-deleted),
// 10 skills and 2 templates per organization (5% and 10% public). The load runs like pg_restore: triggers and
// foreign-key checks off (session_replication_role = replica; the rows are consistent by construction), secondary
// indexes dropped and built again afterwards, then ANALYZE. --scale 0.1 makes a tenth of the organizations (every
// organization keeps its shape), for quick runs.
//
// Listings, each as a project member under RLS (a transaction per request that switches to role authenticated and
// the member's request.jwt.claims, as PostgREST does) and as the table owner without RLS with the equivalent explicit
// filter (the same access rule written into the query), interleaved call by call on two connections so drift in the
// shared machine's load favours neither side:
//   (i)  a project's open top-level tasks ordered by position, first 50;
//   (ii) a user's open assigned tasks across projects, by due date, first 50.
// Both measuring connections use prepared statements, as PostgREST does.
// Then search() as members (under RLS, one transaction per call) over a fixed query set: a term in about 10% of
// tasks and comments, one in about 0.01%, a two-word phrase, a misspelt word; p50 / p95 (bar: p95 < 50 ms), and the
// indexes read by search()'s own statements (auto_explain, nested statements).
// Printed: p50 / p95 of the query's round trip (the set_config statement is not timed), the ratio RLS / no-RLS of
// each percentile (bar: at most 1.5), and the indexes each plan uses. It asserts nothing about speed; it exits 1
// only when the data or a listing is not what it should be.
import { loadavg } from "node:os";
import postgres from "postgres";
import { benchFail, parseNumberOptions } from "../bench-options.ts";

const HELP = `work benchmark

usage: tsx scripts/bench/work.ts [--scale F] [--queries N] [--searches N]

  --scale F    fraction of the issue's sizes (default 1: 1,000 organizations, 20,000 projects, 1,000,000 tasks,
               2,000,000 comments); every organization keeps its shape, only their number changes
  --queries N  calls per listing and side (default 300)
  --searches N search() calls per query of the fixed set (default 200)

environment: SUPABASE_DB_URL (or DB_URL).`;

const MEMBERS_PER_ORGANIZATION = 10;
const PROJECTS_PER_ORGANIZATION = 20;
const TASKS_PER_PROJECT = 50;
const RATIO_BAR = 1.5;

interface Options {
  scale: number;
  queries: number;
  searches: number;
}

const fail = (message: string): never => benchFail("work", message);

function parseOptions(args: string[]): Options {
  const options = parseNumberOptions("work", HELP, { scale: 1, queries: 300, searches: 200 }, args, (value) => value > 0);
  if (options.scale > 1) fail("--scale is a fraction of the issue's sizes: at most 1");
  if (!Number.isInteger(options.queries) || !Number.isInteger(options.searches)) fail("--queries and --searches must be whole numbers");
  return options;
}

const dbUrl = process.env.SUPABASE_DB_URL || process.env.DB_URL || fail("SUPABASE_DB_URL is not set (see --help)");
const connections: postgres.Sql[] = [];
// The measuring connections prepare their statements (prepare: true), as PostgREST does, so neither side pays for
// planning on every call; the RLS helper's own queries are kept planned by PL/pgSQL either way.
function connect(prepare = false): postgres.Sql {
  const sql = postgres(dbUrl, { max: 1, prepare, onnotice: () => {}, connection: { application_name: "bench-work" } });
  connections.push(sql);
  return sql;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
const load = () => loadavg().map((l) => l.toFixed(1)).join(" ");
const ms = (value: number) => `${value.toFixed(2)} ms`;

async function step(label: string, work: () => Promise<unknown>): Promise<void> {
  const started = performance.now();
  await work();
  console.log(`    ${label} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
}

// The tables loaded here, whose secondary indexes are dropped for the load and built again after it.
const LOADED_TABLES = ["organizations", "organization_members", "profiles", "projects", "project_members", "tasks", "comments",
                       "skills", "templates"];
const COMMENTS_PER_TASK = 2;
const SKILLS_PER_ORGANIZATION = 10;
const TEMPLATES_PER_ORGANIZATION = 2;

async function generate(admin: postgres.Sql, organizations: number): Promise<void> {
  const users = organizations * MEMBERS_PER_ORGANIZATION;
  const projects = organizations * PROJECTS_PER_ORGANIZATION;
  const tasks = projects * TASKS_PER_PROJECT;
  console.log(`set-up: ${organizations} organizations, ${users} users, ${projects} projects, ${tasks} tasks, ` +
    `${tasks * COMMENTS_PER_TASK} comments, ${organizations * SKILLS_PER_ORGANIZATION} skills, ` +
    `${organizations * TEMPLATES_PER_ORGANIZATION} templates (load ${load()})`);
  const indexes = await admin<{ name: string; definition: string }[]>`
    select i.indexrelid::regclass::text as name, pg_get_indexdef(i.indexrelid) as definition
    from pg_index i join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relname = any(${LOADED_TABLES}) and not i.indisprimary
      and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid)`;
  await admin.begin(async (tx) => {
    await tx`set local session_replication_role = replica`;
    await tx`set local synchronous_commit = off`;
    for (const index of indexes) await tx.unsafe(`drop index ${index.name}`);
    await step("users and profiles", async () => {
      await tx`
        insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
        select '00000000-0000-0000-0000-000000000000', md5('bench-user-' || u)::uuid, 'authenticated', 'authenticated',
               'bench-' || u || '@bench.test', '{"provider": "email"}', '{}', now(), now()
        from generate_series(0, ${users - 1}) u`;
      await tx`
        insert into public.profiles (id, email, full_name)
        select md5('bench-user-' || u)::uuid, 'bench-' || u || '@bench.test', 'Bench user ' || u
        from generate_series(0, ${users - 1}) u`;
    });
    await step("organizations and members", async () => {
      await tx`
        insert into public.organizations (id, name, slug, created_by)
        select md5('bench-org-' || o)::uuid, 'Bench organization ' || o, 'bench-org-' || o, md5('bench-user-' || o * 10)::uuid
        from generate_series(0, ${organizations - 1}) o`;
      // Member k of organization o is user o * 10 + k: 0 owner, 1 admin, 2-7 member, 8-9 viewer.
      await tx`
        insert into public.organization_members (organization_id, user_id, role_id)
        select md5('bench-org-' || o)::uuid, md5('bench-user-' || (o * 10 + k))::uuid, r.id
        from generate_series(0, ${organizations - 1}) o cross join generate_series(0, 9) k
        join public.roles r on r.organization_id is null
         and r.key = case when k = 0 then 'owner' when k = 1 then 'admin' when k <= 7 then 'member' else 'viewer' end`;
    });
    await step("projects and project members", async () => {
      // Project j of organization o is project o * 20 + j, owned by member 2 + j % 6; j = 9 and 19 are private.
      await tx`
        insert into public.projects (id, organization_id, owner_id, title, description, visibility, created_at, updated_at,
                                     search_vector)
        select id, organization_id, owner_id, title, description, visibility, now(), now(),
               private.search_document('english', title, description)
        from (select md5('bench-project-' || p)::uuid as id, md5('bench-org-' || (p / 20))::uuid as organization_id,
                     md5('bench-user-' || ((p / 20) * 10 + 2 + (p % 20) % 6))::uuid as owner_id,
                     'Project ' || p || ' ' || (array['billing', 'onboarding', 'mobile app', 'data platform', 'website'])[1 + p % 5] as title,
                     'Work on the ' || (array['billing', 'onboarding', 'mobile app', 'data platform', 'website'])[1 + p % 5] || ' of team ' || (p / 20) as description,
                     case when p % 10 = 9 then 'private' else 'organization' end as visibility
              from generate_series(0, ${projects - 1}) p) generated`;
      // Slot m (0-3) of project j is member 2 + (j % 6 + m) % 8: slot 0 is the owner, then editor, commenter, viewer.
      await tx`
        insert into public.project_members (project_id, user_id, organization_id, role)
        select md5('bench-project-' || p)::uuid, md5('bench-user-' || ((p / 20) * 10 + 2 + ((p % 20) % 6 + m) % 8))::uuid,
               md5('bench-org-' || (p / 20))::uuid, (array['owner', 'editor', 'commenter', 'viewer'])[1 + m]
        from generate_series(0, ${projects - 1}) p cross join generate_series(0, 3) m`;
    });
  });
  // Tasks on this connection while a second one loads comments, skills and templates (two cores).
  const second = connect();
  await Promise.all([admin.begin(async (tx) => {
    await tx`set local session_replication_role = replica`;
    await tx`set local synchronous_commit = off`;
    await step("tasks", async () => {
      // Task i of project p is task p * 50 + i; i % 5 = 4 is a subtask of task i - 4; assigned to slot i % 4.
      await tx`
        with words as (select array['api', 'button', 'cache', 'report', 'invoice', 'customer', 'dashboard', 'export',
                                    'import', 'email', 'search', 'filter', 'sync', 'upload', 'download', 'profile',
                                    'settings', 'chart', 'table', 'form', 'webhook', 'queue', 'worker', 'token',
                                    'session', 'layout', 'theme', 'color', 'font', 'icon', 'modal', 'menu', 'header',
                                    'footer', 'sidebar', 'review', 'audit', 'backup', 'restore', 'metric'] as w)
        insert into public.tasks (id, organization_id, project_id, parent_task_id, title, description, status, priority,
                                  position, assignee_id, due_date, started_at, completed_at, created_by, created_at,
                                  updated_at, deleted_at, search_vector)
        select id, organization_id, project_id, parent_task_id, title, description, status, priority, position, assignee_id,
               due_date, started_at, completed_at, created_by, now(), now(), deleted_at,
               private.search_document('english', title, description)
        from (
        select md5('bench-task-' || t)::uuid as id, md5('bench-org-' || (t / 1000))::uuid, md5('bench-project-' || (t / 50))::uuid,
               case when t % 5 = 4 then md5('bench-task-' || (t - 4))::uuid end,
               concat_ws(' ', initcap(w[1 + (t * 7) % 40]), w[1 + (t * 13 + 3) % 40],
                         case when t % 10 = 3 then 'deploy' end, case when t % 10000 = 1234 then 'kubernetes' end,
                         case when t % 50 = 7 then 'login page' when t % 20 = 1 then 'login' when t % 25 = 2 then 'page' end,
                         case when t % 100 = 11 then 'migration' end, w[1 + (t * 31 + 5) % 40]),
               concat_ws(' ', 'Make the', w[1 + (t * 17) % 40], 'work with the', w[1 + (t * 19 + 7) % 40],
                         'and check the', w[1 + (t * 23 + 11) % 40], 'before the release of the', w[1 + (t * 29 + 1) % 40]),
               (array['todo', 'in_progress', 'in_review', 'done', 'todo'])[1 + (t / 5) % 5],
               (array['low', 'medium', 'high', 'urgent'])[1 + t % 4],
               ((t % 50) + 1) * 1024,
               md5('bench-user-' || ((t / 1000) * 10 + 2 + (((t / 50) % 20) % 6 + t % 4) % 8))::uuid,
               now() + make_interval(days => t % 30),
               case when (t / 5) % 5 in (1, 2, 3) then now() - interval '3 days' end,
               case when (t / 5) % 5 = 3 then now() - interval '1 day' end,
               md5('bench-user-' || ((t / 1000) * 10 + 2 + ((t / 50) % 20) % 6))::uuid,
               case when t % 50 = 49 then now() end
        from generate_series(0, ${tasks - 1}) t, words) generated (id, organization_id, project_id, parent_task_id, title,
          description, status, priority, position, assignee_id, due_date, started_at, completed_at, created_by, deleted_at)`;
    });
  }), second.begin(async (tx) => {
    await tx`set local session_replication_role = replica`;
    await tx`set local synchronous_commit = off`;
    await step("comments", async () => {
      // Comment c is on task c / 2, by the project member in slot c % 4; 1% are soft-deleted.
      await tx`
        with words as (select array['looks', 'good', 'needs', 'tests', 'see', 'the', 'ticket', 'blocked', 'by', 'design',
                                    'merged', 'thanks', 'retry', 'later', 'flaky', 'green', 'again', 'logs', 'show', 'timeout',
                                    'question', 'about', 'scope', 'estimate', 'updated', 'screenshot', 'attached', 'ready',
                                    'for', 'review', 'ship', 'it', 'waiting', 'on', 'customer', 'feedback', 'call', 'notes',
                                    'pairing', 'tomorrow'] as w)
        insert into public.comments (id, task_id, organization_id, project_id, user_id, content, created_at, updated_at,
                                     deleted_at, search_vector)
        select id, task_id, organization_id, project_id, user_id, content, now(), now(), deleted_at,
               private.search_document('english', null, content)
        from (
          select md5('bench-comment-' || c)::uuid, md5('bench-task-' || (c / 2))::uuid, md5('bench-org-' || (c / 2000))::uuid,
                 md5('bench-project-' || (c / 100))::uuid,
                 md5('bench-user-' || ((c / 2000) * 10 + 2 + (((c / 100) % 20) % 6 + c % 4) % 8))::uuid,
                 concat_ws(' ', initcap(w[1 + (c * 7) % 40]), w[1 + (c * 11 + 3) % 40], w[1 + (c * 13 + 5) % 40],
                           case when c % 10 = 5 then 'deploy' end, case when c % 10000 = 77 then 'kubernetes' end,
                           case when c % 50 = 13 then 'login page' end, case when c % 100 = 31 then 'migration' end,
                           w[1 + (c * 17 + 7) % 40], w[1 + (c * 19 + 11) % 40], w[1 + (c * 23 + 13) % 40]),
                 case when c % 100 = 99 then now() end
          from generate_series(0, ${tasks * COMMENTS_PER_TASK - 1}) c, words
        ) generated (id, task_id, organization_id, project_id, user_id, content, deleted_at)`;
    });
    await step("skills and templates", async () => {
      // Skill k of organization o; every 20th is public. Template m of organization o; every 10th is public.
      await tx`
        insert into public.skills (id, organization_id, author_id, name, description, prompt, category, is_public, search_vector)
        select md5('bench-skill-' || k)::uuid, md5('bench-org-' || (k / 10))::uuid, md5('bench-user-' || ((k / 10) * 10 + 2))::uuid,
               name, description, 'Do it: {{input}}', 'development', k % 20 = 0, private.search_document('english', name, description)
        from (select k, (array['Code review', 'Deploy checklist', 'Release notes', 'Bug triage', 'Test plan'])[1 + k % 5] || ' ' || k as name,
                     'A skill that helps with ' || (array['reviews', 'deploy steps', 'release notes', 'triage', 'testing'])[1 + k % 5] as description
              from generate_series(0, ${organizations * SKILLS_PER_ORGANIZATION - 1}) k) generated`;
      await tx`
        insert into public.templates (id, organization_id, author_id, name, description, category, project_structure, is_public, search_vector)
        select md5('bench-template-' || m)::uuid, md5('bench-org-' || (m / 2))::uuid, md5('bench-user-' || ((m / 2) * 10 + 2))::uuid,
               name, description, 'agile', '{"tasks": [{"title": "Plan", "subtasks": [{"title": "Deploy"}]}]}', m % 10 = 0,
               private.search_document('english', name, description)
        from (select m, (array['Sprint board', 'Launch plan'])[1 + m % 2] || ' ' || m as name,
                     'A template for a ' || (array['sprint', 'launch and deploy'])[1 + m % 2] as description
              from generate_series(0, ${organizations * TEMPLATES_PER_ORGANIZATION - 1}) m) generated`;
    });
  })]);
  await second.end();
  await step(`${indexes.length} indexes built again`, async () => {
    await admin`set maintenance_work_mem = '256MB'`;
    for (const index of indexes) await admin.unsafe(index.definition);
  });
  await step("analyze", () => admin`analyze auth.users, public.profiles, public.organizations, public.organization_members,
                                           public.projects, public.project_members, public.tasks, public.comments,
                                           public.skills, public.templates`);
}

interface Listing {
  name: string;
  // The member and the argument of call number n.
  caller: (n: number) => { user: number; argument: string };
  rls: (tx: postgres.TransactionSql, argument: string) => Promise<postgres.RowList<postgres.Row[]>>;
  owner: (tx: postgres.TransactionSql, user: string, argument: string) => Promise<postgres.RowList<postgres.Row[]>>;
  rlsSql: (argument: string) => string;
  ownerSql: (user: string, argument: string) => string;
}

// The access rule of the tasks_select policy (private.readable_project_ids()) written out for the owner's queries, in
// the same shape: the caller's memberships of live organizations with their projects.admin / projects.read, then the
// organization-visible projects they read, every project where they hold projects.admin, the projects they own, and
// the projects they are a member of.
const readableProjects = (user: string) => `
  with memberships as (
    select m.organization_id,
           exists (select 1 from public.role_permissions rp where rp.role_id = m.role_id and rp.permission_key = 'projects.admin') as admin,
           exists (select 1 from public.role_permissions rp where rp.role_id = m.role_id and rp.permission_key = 'projects.read') as reader
    from public.organization_members m
    join public.organizations o on o.id = m.organization_id and o.deleted_at is null
    where m.user_id = ${user})
  select p.id from memberships m join public.projects p on p.organization_id = m.organization_id
  where m.admin or (m.reader and p.visibility = 'organization') or p.owner_id = ${user}
  union
  select pm.project_id from memberships m
  join public.project_members pm on pm.organization_id = m.organization_id and pm.user_id = ${user}`;

const openTasksOfProject = `
  select t.id, t.title, t.status, t.position, t.assignee_id, t.due_date from public.tasks t
  where t.project_id = $1::uuid and t.parent_task_id is null and t.deleted_at is null and t.status <> 'done'`;
const assignedTasks = `
  select t.id, t.project_id, t.title, t.status, t.due_date from public.tasks t
  where t.assignee_id = $1::uuid and t.deleted_at is null and t.status <> 'done'`;

function listings(organizations: number): Listing[] {
  // A pseudo-random but repeatable spread of organizations and projects over the calls.
  const organizationOf = (n: number) => (n * 7919) % organizations;
  return [
    {
      name: "(i) a project's open tasks by position, first 50",
      // Project j of the organization, read by its slot-2 member (a commenter, organization role member or viewer).
      caller: (n) => {
        const o = organizationOf(n);
        const j = (n * 13) % PROJECTS_PER_ORGANIZATION;
        return { user: o * 10 + 2 + ((j % 6) + 2) % 8, argument: String(o * PROJECTS_PER_ORGANIZATION + j) };
      },
      rls: (tx, p) => tx.unsafe(`${openTasksOfProject.replace("$1::uuid", "md5('bench-project-' || $1)::uuid")} order by t.position limit 50`, [p]),
      owner: (tx, user, p) => tx.unsafe(`${openTasksOfProject.replace("$1::uuid", "md5('bench-project-' || $1)::uuid")}
          and t.project_id in (${readableProjects("$2::uuid")}) order by t.position limit 50`, [p, user]),
      rlsSql: (p) => `${openTasksOfProject.replace("$1::uuid", `md5('bench-project-${p}')::uuid`)} order by t.position limit 50`,
      ownerSql: (user, p) => `${openTasksOfProject.replace("$1::uuid", `md5('bench-project-${p}')::uuid`)}
          and t.project_id in (${readableProjects(`'${user}'::uuid`)}) order by t.position limit 50`,
    },
    {
      name: "(ii) a user's open assigned tasks across projects, by due date, first 50",
      caller: (n) => {
        const user = organizationOf(n) * 10 + 2 + (n % 8);
        return { user, argument: String(user) };
      },
      rls: (tx, u) => tx.unsafe(`${assignedTasks.replace("$1::uuid", "md5('bench-user-' || $1)::uuid")} order by t.due_date, t.id limit 50`, [u]),
      owner: (tx, user, u) => tx.unsafe(`${assignedTasks.replace("$1::uuid", "md5('bench-user-' || $1)::uuid")}
          and t.project_id in (${readableProjects("$2::uuid")}) order by t.due_date, t.id limit 50`, [u, user]),
      rlsSql: (u) => `${assignedTasks.replace("$1::uuid", `md5('bench-user-${u}')::uuid`)} order by t.due_date, t.id limit 50`,
      ownerSql: (user, u) => `${assignedTasks.replace("$1::uuid", `md5('bench-user-${u}')::uuid`)}
          and t.project_id in (${readableProjects(`'${user}'::uuid`)}) order by t.due_date, t.id limit 50`,
    },
  ];
}

const claimsOf = (user: string) => JSON.stringify({ sub: user, role: "authenticated", aud: "authenticated", aal: "aal1" });

async function idOf(admin: postgres.Sql, user: number): Promise<string> {
  const [row] = await admin<{ id: string }[]>`select md5('bench-user-' || ${user})::uuid::text as id`;
  return row!.id;
}

// The plan's node types and the indexes it reads, one line: "Limit > Index Scan tasks_project_position_idx ...".
interface PlanNode {
  "Node Type": string;
  "Index Name"?: string;
  "Relation Name"?: string;
  "Function Name"?: string;
  "Subplan Name"?: string;
  Plans?: PlanNode[];
}
function describePlan(node: PlanNode): string {
  const parts: string[] = [];
  const walk = (n: PlanNode) => {
    const target = n["Index Name"] ?? n["Relation Name"] ?? n["Function Name"];
    const subplan = n["Subplan Name"] ? `[${n["Subplan Name"]}] ` : "";
    if (n["Index Name"] || n["Relation Name"] || n["Function Name"]) parts.push(`${subplan}${n["Node Type"]} ${target}`);
    else if (subplan) parts.push(`${subplan}${n["Node Type"]}`);
    for (const child of n.Plans ?? []) walk(child);
  };
  walk(node);
  return parts.join("; ");
}

async function explain(tx: postgres.TransactionSql, query: string): Promise<string> {
  const [row] = await tx.unsafe(`explain (format json) ${query}`);
  const plan = (row as { "QUERY PLAN": Array<{ Plan: PlanNode }> })["QUERY PLAN"][0]!.Plan;
  return describePlan(plan);
}

async function measureListing(rlsSide: postgres.Sql, ownerSide: postgres.Sql, admin: postgres.Sql, listing: Listing,
                              queries: number): Promise<void> {
  const rlsTimes: number[] = [];
  const ownerTimes: number[] = [];
  for (let n = 0; n < queries; n++) {
    const { user, argument } = listing.caller(n);
    const id = await idOf(admin, user);
    let rlsRows = 0;
    let ownerRows = 0;
    const runRls = () => rlsSide.begin(async (tx) => {
      await tx`select set_config('role', 'authenticated', true), set_config('request.jwt.claims', ${claimsOf(id)}, true)`;
      const t0 = performance.now();
      const rows = await listing.rls(tx, argument);
      rlsTimes.push(performance.now() - t0);
      rlsRows = rows.length;
    });
    const runOwner = () => ownerSide.begin(async (tx) => {
      const t0 = performance.now();
      const rows = await listing.owner(tx, id, argument);
      ownerTimes.push(performance.now() - t0);
      ownerRows = rows.length;
    });
    // Alternate which side goes first, so neither always runs on a warmer cache.
    if (n % 2 === 0) { await runRls(); await runOwner(); } else { await runOwner(); await runRls(); }
    if (rlsRows !== ownerRows) fail(`${listing.name}: call ${n} returned ${rlsRows} rows under RLS and ${ownerRows} without`);
    if (rlsRows === 0) fail(`${listing.name}: call ${n} returned no rows`);
  }
  rlsTimes.sort((a, b) => a - b);
  ownerTimes.sort((a, b) => a - b);
  const [r50, r95, o50, o95] = [percentile(rlsTimes, 50), percentile(rlsTimes, 95), percentile(ownerTimes, 50), percentile(ownerTimes, 95)];
  const ratio50 = r50 / o50;
  const ratio95 = r95 / o95;
  const verdict = ratio50 <= RATIO_BAR && ratio95 <= RATIO_BAR ? "met" : "NOT met";
  console.log(`${listing.name}: ${queries} calls a side`);
  console.log(`    RLS (member)          p50 ${ms(r50)}, p95 ${ms(r95)}`);
  console.log(`    owner, explicit filter p50 ${ms(o50)}, p95 ${ms(o95)}`);
  console.log(`    ratio RLS/no-RLS: p50 ${ratio50.toFixed(2)}, p95 ${ratio95.toFixed(2)} (bar <= ${RATIO_BAR}: ${verdict}; load ${load()})`);
  const { user, argument } = listing.caller(0);
  const id = await idOf(admin, user);
  await rlsSide.begin(async (tx) => {
    await tx`select set_config('role', 'authenticated', true), set_config('request.jwt.claims', ${claimsOf(id)}, true)`;
    console.log(`    plan under RLS: ${await explain(tx, listing.rlsSql(argument))}`);
  });
  await ownerSide.begin(async (tx) => {
    console.log(`    plan as owner:  ${await explain(tx, listing.ownerSql(id, argument))}`);
  });
}

// search(): a fixed query set over the generated titles and descriptions (see the task generator).
const SEARCHES = [
  { label: "a term in about 10% of tasks", query: "deploy" },
  { label: "a term in about 0.01% of tasks", query: "kubernetes" },
  { label: "a two-word phrase", query: '"login page"' },
  { label: "a misspelt word (migration)", query: "migraton" },
];
const SEARCH_BAR_MS = 50;

async function measureSearch(searcher: postgres.Sql, admin: postgres.Sql, organizations: number, queries: number): Promise<void> {
  for (const search of SEARCHES) {
    const times: number[] = [];
    let results = 0;
    for (let n = 0; n < queries; n++) {
      const id = await idOf(admin, ((n * 7919) % organizations) * 10 + 2 + (n % 6));
      await searcher.begin(async (tx) => {
        await tx`select set_config('role', 'authenticated', true), set_config('request.jwt.claims', ${claimsOf(id)}, true)`;
        const t0 = performance.now();
        const rows = await tx`select entity_type, entity_id, snippet, rank from public.search(${search.query})`;
        times.push(performance.now() - t0);
        results += rows.length;
      });
    }
    if (results === 0) fail(`search ${search.query} found nothing in ${queries} calls`);
    times.sort((a, b) => a - b);
    const p95 = percentile(times, 95);
    console.log(`search ${JSON.stringify(search.query)} (${search.label}): ${queries} calls by members, ` +
      `${(results / queries).toFixed(1)} results a call; p50 ${ms(percentile(times, 50))}, p95 ${ms(p95)} ` +
      `(bar p95 < ${SEARCH_BAR_MS} ms: ${p95 < SEARCH_BAR_MS ? "met" : "NOT met"}; load ${load()})`);
  }
}

// The plans of the statements inside search(), through auto_explain (nested statements, sent to this client as
// notices): one line per statement with the indexes it reads.
async function explainSearch(admin: postgres.Sql): Promise<void> {
  const plans: string[] = [];
  const explainer = postgres(dbUrl, {
    max: 1, prepare: false, connection: { application_name: "bench-work-explain" },
    onnotice: (notice) => {
      const text = String(notice.message ?? "");
      const start = text.indexOf("{");
      if (!text.includes("plan:") || start < 0) return;
      const plan = JSON.parse(text.slice(start)) as { "Query Text": string; Plan: PlanNode };
      const text2 = plan["Query Text"];
      // Only search()'s own statements that read documents: the full-text and the trigram queries.
      if (text2.includes("public.search(") || !(text2.includes("search_vector @@") || text2.includes("<%"))) return;
      const kind = text2.includes("<%") ? "trigram" : "full text";
      const scans = [...new Set(describePlan(plan.Plan).split("; ").map((part) => part.replace(/^\[[^\]]*\] /, ""))
        .filter((part) => /Scan (tasks|projects|comments|skills|templates)|Index/.test(part)))];
      plans.push(`${kind}: ${scans.join(", ")}`);
    },
  });
  connections.push(explainer);
  const id = await idOf(admin, 2);
  await explainer`load 'auto_explain'`;
  await explainer`select set_config('auto_explain.log_min_duration', '0', false), set_config('auto_explain.log_nested_statements', 'on', false),
                         set_config('auto_explain.log_format', 'json', false), set_config('auto_explain.log_level', 'notice', false)`;
  for (const search of SEARCHES) {
    plans.length = 0;
    await explainer.begin(async (tx) => {
      await tx`select set_config('role', 'authenticated', true), set_config('request.jwt.claims', ${claimsOf(id)}, true)`;
      await tx`select count(*) from public.search(${search.query})`;
    });
    console.log(`    plan of search ${JSON.stringify(search.query)}: ${plans.join(" | ") || "no document read"}`);
  }
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const organizations = Math.max(1, Math.round(1000 * options.scale));
  const admin = connect();
  const [{ existing }] = await admin<{ existing: number }[]>`select count(*)::int as existing from public.tasks`;
  if (existing > 0) fail(`public.tasks already holds ${existing} rows: run against a fresh database (npm run bench -- work)`);
  const started = performance.now();
  await generate(admin, organizations);
  console.log(`    set-up done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const [{ tasks, open }] = await admin<{ tasks: number; open: number }[]>`
    select count(*)::int as tasks, (count(*) filter (where deleted_at is null and status <> 'done'))::int as open from public.tasks`;
  if (tasks !== organizations * PROJECTS_PER_ORGANIZATION * TASKS_PER_PROJECT) fail(`set-up made ${tasks} tasks`);
  console.log(`    ${tasks} tasks, ${open} open`);

  const rlsSide = connect(true);
  const ownerSide = connect(true);
  for (const listing of listings(organizations)) {
    await measureListing(rlsSide, ownerSide, admin, listing, options.queries);
  }
  await measureSearch(rlsSide, admin, organizations, options.searches);
  await explainSearch(admin);
}

main()
  .catch((error) => {
    console.error(`work bench: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  })
  .finally(() => Promise.all(connections.map((c) => c.end({ timeout: 1 }))));
