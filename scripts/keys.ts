// Prints the local API keys (like `supabase status`) and a ready-made JWT for every user in the database.
// Usage: npx tsx scripts/keys.ts [--env] [--no-users]
//   --env       print KEY=value lines for scripts (SUPABASE_ANON_KEY, SUPABASE_SERVICE_ROLE_KEY, ...)
//   --no-users  skip the per-user tokens (no database needed)
// Reads JWT_SECRET, DB_URL, FUNCTIONS_PORT, STRIPE_WEBHOOK_SECRET from the environment (scripts/lib.sh sets them).
import { SignJWT } from "jose";
import postgres from "postgres";

const args = new Set(process.argv.slice(2));
if (args.has("--help") || args.has("-h")) {
  console.log("usage: npx tsx scripts/keys.ts [--env] [--no-users]");
  process.exit(0);
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    console.error(`error: ${name} is not set (run through npm start / scripts/lib.sh)`);
    process.exit(1);
  }
  return value;
}

const secret = new TextEncoder().encode(required("JWT_SECRET"));
const functionsPort = process.env.FUNCTIONS_PORT ?? "54321";
const dbUrl = required("DB_URL");
// Supabase's local keys are issued once and valid for years; so are these (they only work against this secret).
const KEY_LIFETIME_SECONDS = 10 * 365 * 24 * 3600;
const USER_TOKEN_LIFETIME_SECONDS = 24 * 3600;

async function sign(claims: Record<string, unknown>, lifetimeSeconds: number): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return await new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuer("supabase-demo")
    .setIssuedAt(now)
    .setExpirationTime(now + lifetimeSeconds)
    .sign(secret);
}

const anonKey = await sign({ role: "anon" }, KEY_LIFETIME_SECONDS);
const serviceKey = await sign({ role: "service_role" }, KEY_LIFETIME_SECONDS);
const apiUrl = `http://127.0.0.1:${functionsPort}`;

type DemoUser = { id: string; email: string; app_metadata: Record<string, unknown>; user_metadata: Record<string, unknown> };
let users: DemoUser[] = [];
if (!args.has("--no-users")) {
  const sql = postgres(dbUrl, { max: 1, onnotice: () => {} });
  try {
    users = await sql<DemoUser[]>`
      select id::text, email, coalesce(raw_app_meta_data, '{}') as app_metadata,
             coalesce(raw_user_meta_data, '{}') as user_metadata
      from auth.users where deleted_at is null order by email limit 50`;
  } finally {
    await sql.end();
  }
}

const userTokens = await Promise.all(users.map(async (u) => ({
  email: u.email,
  token: await sign({
    sub: u.id, role: "authenticated", aud: "authenticated", email: u.email, aal: "aal1",
    app_metadata: u.app_metadata, user_metadata: u.user_metadata, session_id: crypto.randomUUID(),
  }, USER_TOKEN_LIFETIME_SECONDS),
})));

if (args.has("--env")) {
  console.log(`SUPABASE_URL=${apiUrl}`);
  console.log(`SUPABASE_ANON_KEY=${anonKey}`);
  console.log(`SUPABASE_SERVICE_ROLE_KEY=${serviceKey}`);
  console.log(`SUPABASE_JWT_SECRET=${process.env.JWT_SECRET}`);
  console.log(`SUPABASE_DB_URL=${dbUrl}`);
} else {
  const rows: [string, string][] = [
    ["API URL", apiUrl],
    ["Functions URL", `${apiUrl}/functions/v1`],
    ["DB URL", dbUrl],
    ["JWT secret", process.env.JWT_SECRET ?? ""],
    ["anon key", anonKey],
    ["service_role key", serviceKey],
    ["Stripe webhook secret", process.env.STRIPE_WEBHOOK_SECRET ?? ""],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) console.log(`${k.padStart(width)}: ${v}`);
  if (userTokens.length > 0) {
    console.log(`\nUser JWTs (valid ${USER_TOKEN_LIFETIME_SECONDS / 3600} h; mint fresh ones with: npm run keys):`);
    for (const { email, token } of userTokens) console.log(`  ${email}\n    ${token}`);
  }
}
