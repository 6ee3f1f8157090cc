// Run by tests/crash-driver.test.ts under Deno: installs the process guards, then throws the way postgres.js 3.4.9
// did (a TypeError from a setImmediate callback, outside any promise) and leaves a rejected promise unhandled.
// Without the guards Deno exits with an error on the first; with them it logs both and exits 0.
import process from "node:process";
import { setImmediate } from "node:timers";
import { installProcessGuards } from "../../supabase/functions/_shared/guards.ts";
import { createLogger } from "../../supabase/functions/_shared/log.ts";

let logged = 0;
const logger = createLogger({
  write: (line) => {
    console.log(line);
    if (++logged === 2) {
      console.log("still running");
      process.exit(0);
    }
  },
});
installProcessGuards(logger);

setImmediate(() => {
  const socket = null as unknown as { write(chunk: string): void };
  socket.write("S");
});
void Promise.reject(Object.assign(new Error("write CONNECTION_CLOSED 127.0.0.1:5432"), { code: "CONNECTION_CLOSED" }));
