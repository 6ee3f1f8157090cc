// Starts one functions gateway (Deno) for the whole run and hands its URL to the tests.
import type {} from "vitest";
import type { TestProject } from "vitest/node";
import { startGateway } from "./helpers/gateway.ts";
import { testEnv } from "./helpers/env.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** Base URL of the running functions gateway. */
    gatewayUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  testEnv(); // fail early, with the "run via npm test" message, when the environment is missing
  const gateway = await startGateway({
    env: { ...process.env, FUNCTIONS_PORT: process.env.FUNCTIONS_PORT ?? "0" },
  });
  project.provide("gatewayUrl", gateway.url);
  return () => gateway.stop();
}
