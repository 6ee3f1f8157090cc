// Connection details of the test database and the project's JWT secret, from the environment `npm test` sets.

export interface TestEnv {
  /** Superuser URL of a database with the platform shim and migrations applied. */
  dbUrl: string;
  /** HS256 project secret (SUPABASE_JWT_SECRET). */
  jwtSecret: string;
}

export function testEnv(): TestEnv {
  const dbUrl = process.env.SUPABASE_DB_URL;
  const jwtSecret = process.env.SUPABASE_JWT_SECRET;
  const missing = [!dbUrl && "SUPABASE_DB_URL", !jwtSecret && "SUPABASE_JWT_SECRET"].filter(Boolean);
  if (!dbUrl || !jwtSecret) {
    throw new Error(
      `${missing.join(" and ")} not set: run the tests via \`npm test\`, which starts the database and sets them`,
    );
  }
  return { dbUrl, jwtSecret };
}
