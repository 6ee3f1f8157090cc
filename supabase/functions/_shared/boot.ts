// The only shared module that touches Deno globals: builds a function's deps from `Deno.env` at start-up.
// A missing or malformed variable throws here, before the function serves anything (Supabase then answers
// with a boot error); the problems are logged first, as one JSON line naming every variable at fault.
// It also installs the last line of defence (_shared/guards.ts), so an error nobody awaited is logged instead of
// killing the function's worker.
import { EnvError } from "./env.ts";
import { createFunctionDeps, type FunctionDeps } from "./function.ts";
import { installProcessGuards } from "./guards.ts";
import { createLogger } from "./log.ts";

export function bootDeps(): FunctionDeps {
  const logger = createLogger();
  installProcessGuards(logger);
  try {
    return createFunctionDeps(Deno.env.toObject(), logger);
  } catch (error) {
    if (error instanceof EnvError) logger.error("function failed to start", { problems: error.problems });
    throw error;
  }
}
