// Runs scripts/functions-gateway.ts as a real Deno process for HTTP tests.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const READY = /functions gateway listening on (http:\/\/127\.0\.0\.1:\d+)/;

export interface RunningGateway {
  /** Base URL, e.g. http://127.0.0.1:40123 (functions live under /functions/v1/<name>). */
  url: string;
  /** Process id of the gateway. */
  pid: number;
  /** Whether the process is still alive (has not exited). */
  running(): boolean;
  /** Everything the process printed so far (JSON log lines on stdout, errors on stderr). */
  output(): string;
  /** JSON log lines printed so far. */
  logLines(): Array<Record<string, unknown>>;
  /** SIGTERM, then SIGKILL if it has not exited within 5 s. */
  stop(): Promise<void>;
}

export interface StartGatewayOptions {
  /** Environment of the process (default: this process's). FUNCTIONS_PORT defaults to 0 (a free port). */
  env?: NodeJS.ProcessEnv;
  /** Extra command-line arguments (e.g. ["--config", file]). */
  args?: string[];
  /** How long to wait for the ready line. Default 30 s (the first start loads every npm module). */
  readyTimeoutMs?: number;
}

function denoBinary(): string {
  return process.env.DENO_BIN ?? path.join(repoRoot, "node_modules", ".bin", "deno");
}

export function startGateway(options: StartGatewayOptions = {}): Promise<RunningGateway> {
  const env = { ...(options.env ?? process.env) };
  env.FUNCTIONS_PORT ??= "0";
  const child: ChildProcess = spawn(
    denoBinary(),
    ["run", "--allow-net", "--allow-env", "--allow-read", "--allow-sys", "scripts/functions-gateway.ts", ...(options.args ?? [])],
    // Own process group, so stop() also reaches anything a wrapper script started.
    { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  let output = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    const group = -child.pid;
    try {
      process.kill(group, "SIGTERM");
    } catch {
      return;
    }
    const killer = setTimeout(() => {
      try {
        process.kill(group, "SIGKILL");
      } catch {
        // already gone
      }
    }, 5000);
    await exited;
    clearTimeout(killer);
  };

  return new Promise<RunningGateway>((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`functions gateway did not become ready in time; output:\n${output}`));
    }, options.readyTimeoutMs ?? 30_000);

    const onData = (chunk: Buffer) => {
      output += chunk.toString("utf8");
      const match = READY.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve({
          url: match[1],
          pid: child.pid ?? -1,
          running: () => child.exitCode === null && child.signalCode === null,
          output: () => output,
          logLines: () =>
            output.split("\n").flatMap((line) => {
              if (!line.startsWith("{")) return [];
              try {
                return [JSON.parse(line) as Record<string, unknown>];
              } catch {
                return [];
              }
            }),
          stop,
        });
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8");
    });
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${denoBinary()}: ${error.message}`));
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`functions gateway exited (${signal ?? code}) before it was ready; output:\n${output}`));
    });
  });
}
