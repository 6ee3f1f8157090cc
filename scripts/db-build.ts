// Builds the one deployable migration from the schema sources (`npm run db:build`).
// Usage: npx tsx scripts/db-build.ts [--check]
//   (no flag)  write supabase/migrations/20261123000000_master_consolidated_schema.sql
//   --check    write nothing; exit 1 when the committed migration differs from what the build would write
// The sources are supabase/schemas/NN-name.sql, read in file-name order. Each opens with a two-line comment (what the
// file owns) that becomes its entry in the table of contents. The output depends only on the files: deterministic.
import { readdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const SCHEMAS_DIR = "supabase/schemas";
export const MIGRATION = "supabase/migrations/20261123000000_master_consolidated_schema.sql";
const FILE_NAME = /^(\d{2})-[a-z0-9]+(?:-[a-z0-9]+)*\.sql$/;
// A file stays readable at a few hundred lines; past this the build says so (it does not fail: the limit is "about").
const SOFT_LINE_LIMIT = 700;
const RULE = "-- " + "=".repeat(117);

export interface SchemaFile {
  name: string;
  summary: [string, string];
  text: string;
  lines: number;
}

export class SchemaSourceError extends Error {}

function fail(message: string): never {
  throw new SchemaSourceError(message);
}

export function readSchemaFiles(root = ROOT): SchemaFile[] {
  const dir = join(root, SCHEMAS_DIR);
  if (!existsSync(dir)) fail(`${SCHEMAS_DIR} does not exist`);
  const names = readdirSync(dir).filter((n) => n.endsWith(".sql")).sort();
  if (names.length === 0) fail(`${SCHEMAS_DIR} holds no .sql files`);
  const seen = new Map<string, string>();
  return names.map((name) => {
    const match = FILE_NAME.exec(name);
    if (!match) fail(`${SCHEMAS_DIR}/${name}: name it NN-words-with-hyphens.sql (two digits, lower case)`);
    const number = match[1]!;
    if (seen.has(number)) fail(`${SCHEMAS_DIR}/${name} and ${seen.get(number)} share the number ${number}`);
    seen.set(number, name);
    const text = readFileSync(join(dir, name), "utf8").replace(/\r\n/g, "\n");
    const lines = text.split("\n");
    const [first, second, third] = lines;
    const isComment = (l: string | undefined) => l !== undefined && /^-- \S/.test(l);
    if (!isComment(first) || !isComment(second) || (third !== undefined && third.trim() !== "")) {
      fail(`${SCHEMAS_DIR}/${name}: open with a two-line comment saying what the file owns, then a blank line`);
    }
    if (/\bTODO\b|\bFIXME\b/.test(text)) fail(`${SCHEMAS_DIR}/${name}: no TODO or FIXME in the schema`);
    const body = text.replace(/\n+$/, "");
    return {
      name,
      summary: [first!.slice(3), second!.slice(3)],
      text: body,
      lines: body.split("\n").length,
    };
  });
}

export function buildMigration(files: SchemaFile[]): string {
  const out: string[] = [
    RULE,
    "-- Master consolidated schema",
    "-- One backend for a family of AI workflow products (see shared/DESIGN.md). BUILT by `npm run db:build` from the",
    "-- files in supabase/schemas/, concatenated in file-name order: edit those, never this file. Every file depends only",
    "-- on the ones above it. It runs unchanged on Supabase Cloud, `supabase start`, and the project's own local platform",
    "-- (scripts/), which provides the same roles, `auth` schema and grants Supabase does.",
    "--",
    "-- Table of contents (the opening comment of each file)",
  ];
  const width = Math.max(...files.map((f) => f.name.length));
  for (const f of files) {
    out.push(`--   ${f.name.padEnd(width)}  ${f.summary[0]}`);
    out.push(`--   ${" ".repeat(width)}  ${f.summary[1]}`);
  }
  out.push(RULE);
  for (const f of files) {
    out.push("", "", RULE, `-- source: ${SCHEMAS_DIR}/${f.name}`, RULE, f.text);
  }
  return out.join("\n") + "\n";
}

function main(): void {
  const args = process.argv.slice(2);
  if (args.includes("--help") || args.includes("-h")) {
    console.log("usage: npm run db:build [-- --check]   # build (or check) the consolidated migration from supabase/schemas/");
    return;
  }
  const unknown = args.filter((a) => a !== "--check");
  if (unknown.length > 0) fail(`unknown argument ${unknown[0]} (see --help)`);
  const files = readSchemaFiles();
  for (const f of files) {
    if (f.lines > SOFT_LINE_LIMIT) {
      console.error(`warning: ${SCHEMAS_DIR}/${f.name} has ${f.lines} lines (about ${SOFT_LINE_LIMIT} at most: split the slice)`);
    }
  }
  const built = buildMigration(files);
  const target = join(ROOT, MIGRATION);
  if (args.includes("--check")) {
    const committed = existsSync(target) ? readFileSync(target, "utf8") : "";
    if (committed !== built) {
      fail(`${MIGRATION} differs from supabase/schemas/: run npm run db:build and commit the result`);
    }
    console.log(`${MIGRATION} is up to date with ${files.length} schema files`);
    return;
  }
  writeFileSync(target, built);
  console.log(`wrote ${MIGRATION} from ${files.length} schema files`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    main();
  } catch (error) {
    if (!(error instanceof SchemaSourceError)) throw error;
    console.error(`error: ${error.message}`);
    process.exit(1);
  }
}
