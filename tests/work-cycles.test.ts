// Cycles under concurrency, against the real database: two transactions that would each close half of a cycle
// (in task_dependencies, and in the parent tree) cannot both commit. The second waits for the first's advisory lock,
// then sees its committed edge and is refused with 23514.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lockRace, type Sql } from "./helpers/lock-race.ts";

const organizationId = randomUUID();
const owner = randomUUID();
const application = `work-cycles-${organizationId.slice(0, 8)}`;
const { connect, race, closeAll } = lockRace(application);
let admin: Sql;
let projectId: string;

async function newTask(title: string): Promise<string> {
  const [row] = await admin<{ id: string }[]>`insert into public.tasks (project_id, title) values (${projectId}, ${title}) returning id`;
  return row!.id;
}

beforeAll(async () => {
  admin = connect();
  await admin`insert into auth.users (instance_id, id, aud, role, email) values ('00000000-0000-0000-0000-000000000000', ${owner}, 'authenticated', 'authenticated', ${`${owner}@example.test`})`;
  await admin`insert into public.organizations (id, name, slug) values (${organizationId}, 'Cycle test', ${`cycles-${organizationId.slice(0, 8)}`})`;
  await admin`insert into public.organization_members (organization_id, user_id, role_id)
              values (${organizationId}, ${owner}, (select id from public.roles where organization_id is null and key = 'owner'))`;
  const [project] = await admin<{ id: string }[]>`
    insert into public.projects (organization_id, owner_id, title) values (${organizationId}, ${owner}, 'Cycles') returning id`;
  projectId = project!.id;
});

afterAll(async () => {
  await admin`delete from public.organizations where id = ${organizationId}`;
  await admin`delete from auth.users where id = ${owner}`;
  await closeAll();
});

describe("cycle checks under concurrent writes", () => {
  it("of two transactions each adding half of a dependency cycle, only the first commits", async () => {
    const a = await newTask("A");
    const b = await newTask("B");
    const [first, second] = await race(
      (sql) => sql`insert into public.task_dependencies (task_id, blocked_by_task_id) values (${a}, ${b})`,
      (sql) => sql`insert into public.task_dependencies (task_id, blocked_by_task_id) values (${b}, ${a})`,
    );
    expect(first!.status).toBe("fulfilled");
    expect(second!.status).toBe("rejected");
    expect((second as PromiseRejectedResult).reason.code).toBe("23514");
    const edges = await admin`select task_id, blocked_by_task_id from public.task_dependencies where task_id in (${a}, ${b})`;
    expect(edges).toEqual([{ task_id: a, blocked_by_task_id: b }]);
  });

  it("of two transactions each making the other's task its parent, only the first commits", async () => {
    const a = await newTask("A");
    const b = await newTask("B");
    const [first, second] = await race(
      (sql) => sql`update public.tasks set parent_task_id = ${b} where id = ${a}`,
      (sql) => sql`update public.tasks set parent_task_id = ${a} where id = ${b}`,
    );
    expect(first!.status).toBe("fulfilled");
    expect(second!.status).toBe("rejected");
    expect((second as PromiseRejectedResult).reason.code).toBe("23514");
    const rows = await admin`select id, parent_task_id from public.tasks where id in (${a}, ${b}) order by title`;
    expect(rows).toEqual([{ id: a, parent_task_id: b }, { id: b, parent_task_id: null }]);
  });
});
