// A PostgreSQL cluster of its own for tests that crash the database: created with scripts/db.sh (durable settings,
// platform shim, migrations, no seed) on the first free port of CRASH_DB_PORTS (default 54370-54374), so crashing it
// never disturbs the shared test cluster the other test files use.
import { execFile } from "node:child_process";
import { createConnection } from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import { repoRoot } from "./gateway.ts";

const run = promisify(execFile);

export interface CrashCluster {
  port: number;
  /** Superuser URL of its `postgres` database. */
  url: string;
  /** `pg_ctl stop -m immediate`: what a crash, an OOM kill or a failover looks like to clients. */
  crash(): Promise<void>;
  /** Starts it again (PostgreSQL recovers from the WAL first). */
  start(): Promise<void>;
  /** Stops it and deletes its directory. */
  destroy(): Promise<void>;
}

function portsToTry(): number[] {
  const spec = process.env.CRASH_DB_PORTS ?? "54370-54374";
  const match = /^(\d+)(?:-(\d+))?$/.exec(spec);
  if (!match) throw new Error(`CRASH_DB_PORTS must be PORT or FIRST-LAST, got "${spec}"`);
  const first = Number(match[1]);
  const last = Number(match[2] ?? match[1]);
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}

function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

export async function createCrashCluster(): Promise<CrashCluster> {
  let port: number | undefined;
  for (const candidate of portsToTry()) {
    if (!(await portInUse(candidate))) {
      port = candidate;
      break;
    }
  }
  if (port === undefined) throw new Error(`no free port in CRASH_DB_PORTS (${portsToTry().join(", ")})`);

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DB_PORT: String(port),
    DB_DIR: path.join(repoRoot, ".local", `crash-db-${port}`),
    // npm test runs its own cluster with DB_DURABILITY=fast; this one must keep what it acknowledged.
    DB_DURABILITY: "durable",
  };
  delete env.DB_URL; // scripts/lib.sh derives it from DB_PORT
  const db = async (...args: string[]) => {
    try {
      await run("bash", [path.join(repoRoot, "scripts", "db.sh"), ...args], { env, cwd: repoRoot });
    } catch (error) {
      const failure = error as Error & { stderr?: string };
      throw new Error(`scripts/db.sh ${args.join(" ")} failed: ${failure.stderr ?? failure.message}`);
    }
  };

  await db("destroy"); // whatever an interrupted earlier run left behind
  await db("reset", "--no-seed");
  return {
    port,
    url: `postgresql://postgres:${process.env.DB_PASSWORD ?? "postgres"}@127.0.0.1:${port}/postgres?sslmode=disable`,
    crash: () => db("crash"),
    start: () => db("start"),
    destroy: () => db("destroy"),
  };
}
