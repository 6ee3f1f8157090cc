import { bootDeps } from "../_shared/boot.ts";
import { createHandler } from "./handler.ts";

Deno.serve(createHandler(bootDeps()));
