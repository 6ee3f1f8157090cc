// The only shared module that touches Deno globals: builds a function's deps from `Deno.env` at start-up.
// A missing or malformed variable throws here, before the function serves anything.
import { createFunctionDeps, type FunctionDeps } from "./function.ts";

export function bootDeps(): FunctionDeps {
  return createFunctionDeps(Deno.env.toObject());
}
