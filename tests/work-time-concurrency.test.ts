// The time roll-up under concurrency, against the real database: two transactions logging time on sibling subtasks
// at once both reach the shared parent and the project; the second waits for the first's row lock and then adds its
// minutes to the committed total, so no update is lost. Two timers started at once for one user: one wins.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lockRace, type Sql } from "./helpers/lock-race.ts";

const organizationId = randomUUID();
const users = [randomUUID(), randomUUID()];
const application = `work-time-${organizationId.slice(0, 8)}`;
const { connect, race, closeAll } = lockRace(application);
let admin: Sql;
let projectId: string;

async function newTask(title: string, parent: string | null = null): Promise<string> {
  const [row] = await admin<{ id: string }[]>`
    insert into public.tasks (project_id, title, parent_task_id) values (${projectId}, ${title}, ${parent}) returning id`;
  return row!.id;
}

beforeAll(async () => {
  admin = connect();
  for (const id of users) {
    await admin`insert into auth.users (instance_id, id, aud, role, email) values ('00000000-0000-0000-0000-000000000000', ${id}, 'authenticated', 'authenticated', ${`${id}@example.test`})`;
  }
  await admin`insert into public.organizations (id, name, slug) values (${organizationId}, 'Time test', ${`time-${organizationId.slice(0, 8)}`})`;
  await admin`insert into public.organization_members (organization_id, user_id, role_id)
              select ${organizationId}, u, (select id from public.roles where organization_id is null and key = 'owner')
              from unnest(${users}::uuid[]) u`;
  const [project] = await admin<{ id: string }[]>`
    insert into public.projects (organization_id, owner_id, title) values (${organizationId}, ${users[0]!}, 'Time') returning id`;
  projectId = project!.id;
});

afterAll(async () => {
  await admin`delete from public.organizations where id = ${organizationId}`;
  await admin`delete from auth.users where id = any(${users}::uuid[])`;
  await closeAll();
});

describe("the time roll-up under concurrent writes", () => {
  it("two entries on sibling subtasks at once both reach the parent and the project", async () => {
    const root = await newTask("Release");
    const left = await newTask("Backend", root);
    const right = await newTask("Frontend", root);
    const results = await race(
      (sql) => sql`insert into public.time_entries (task_id, user_id, start_time, end_time)
                   values (${left}, ${users[0]!}, '2026-11-02 09:00Z', '2026-11-02 10:00Z')`,
      (sql) => sql`insert into public.time_entries (task_id, user_id, start_time, end_time)
                   values (${right}, ${users[1]!}, '2026-11-02 09:00Z', '2026-11-02 09:30Z')`,
    );
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled"]);
    const tasks = await admin`select title, actual_minutes from public.tasks where id in (${root}, ${left}, ${right}) order by title`;
    expect(tasks).toEqual([
      { title: "Backend", actual_minutes: 60 },
      { title: "Frontend", actual_minutes: 30 },
      { title: "Release", actual_minutes: 90 },
    ]);
    const [project] = await admin`select actual_minutes, actual_hours from public.projects where id = ${projectId}`;
    expect(project).toEqual({ actual_minutes: 90, actual_hours: "1.50" });
  });

  it("of two timers started at once for one user, only the first commits", async () => {
    const task = await newTask("Support");
    const [first, second] = await race(
      (sql) => sql`insert into public.time_entries (task_id, user_id, start_time) values (${task}, ${users[0]!}, '2026-11-03 09:00Z')`,
      (sql) => sql`insert into public.time_entries (task_id, user_id, start_time) values (${task}, ${users[0]!}, '2026-11-03 09:05Z')`,
    );
    expect(first!.status).toBe("fulfilled");
    expect(second!.status).toBe("rejected");
    expect((second as PromiseRejectedResult).reason.code).toBe("23P01");
    const running = await admin`select start_time from public.time_entries where user_id = ${users[0]!} and end_time is null`;
    expect(running).toHaveLength(1);
  });
});
