// Generates the ER diagrams of the schema (`npm run docs:schema`): docs/schema/<band>.md for every band that holds
// tables, each a Mermaid erDiagram (tables, key columns, foreign keys) followed by every table's `comment on` text
// and columns, and docs/schema/README.md linking them. Read from the live catalog of DB_URL; a table belongs to the
// band of the supabase/schemas/ file that creates it.
// Usage: npx tsx scripts/docs-schema.ts [--out DIR]   (default DIR: docs/schema). Needs DB_URL migrated.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

interface Band {
  first: number;
  last: number;
  slug: string;
  title: string;
}
// DESIGN.md section 2.
const BANDS: Band[] = [
  { first: 0, last: 9, slug: "00-platform", title: "Platform" },
  { first: 10, last: 19, slug: "10-identity-tenancy-audit", title: "Identity, tenancy, access, audit, operations" },
  { first: 20, last: 29, slug: "20-billing", title: "Billing" },
  { first: 30, last: 39, slug: "30-privacy-telemetry", title: "Privacy and telemetry" },
  { first: 40, last: 44, slug: "40-connectors", title: "Connectors" },
  { first: 45, last: 49, slug: "45-workflows", title: "Workflows" },
  { first: 50, last: 59, slug: "50-work-management", title: "Work management" },
  { first: 60, last: 69, slug: "60-receptionist", title: "AI receptionist" },
  { first: 70, last: 79, slug: "70-analytics", title: "Auditor and growth analytics" },
  { first: 90, last: 99, slug: "90-jobs", title: "Scheduled jobs and what spans domains" },
];

interface Column {
  name: string;
  type: string;
  notNull: boolean;
  comment: string | null;
}
interface Table {
  qualified: string;
  schema: string;
  name: string;
  comment: string | null;
  partitioned: boolean;
  columns: Column[];
  primary: Set<string>;
  unique: Set<string>;
  foreign: Set<string>;
}
interface ForeignKey {
  from: string;
  to: string;
  columns: string[];
  nullable: boolean;
  oneToOne: boolean;
}

function fail(message: string): never {
  console.error(`error: ${message}`);
  process.exit(1);
}

const args = process.argv.slice(2);
if (args.includes("--help") || args.includes("-h")) {
  console.log("usage: npm run docs:schema [-- --out DIR]   # ER diagrams per band from the live catalog (DB_URL)");
  process.exit(0);
}
let outDir = join(ROOT, "docs/schema");
if (args[0] === "--out" && args[1]) outDir = args[1];
else if (args.length > 0) fail(`unknown argument ${args[0]} (see --help)`);
const dbUrl = process.env.DB_URL ?? fail("DB_URL is not set (run through npm run docs:schema)");

// Which file creates each table: `create table <schema>.<name>` in supabase/schemas/.
const fileOf = new Map<string, string>();
const schemaDir = join(ROOT, "supabase/schemas");
const schemaFiles = readdirSync(schemaDir).filter((n) => n.endsWith(".sql")).sort();
for (const file of schemaFiles) {
  const text = readFileSync(join(schemaDir, file), "utf8");
  for (const m of text.matchAll(/^create table (?:if not exists )?(public|private)\.([a-z_][a-z0-9_]*)\s*(?:\(|partition of)/gm)) {
    fileOf.set(`${m[1]}.${m[2]}`, file);
  }
}
const bandOf = (file: string): Band => {
  const n = Number(file.slice(0, 2));
  return BANDS.find((b) => n >= b.first && n <= b.last) ?? fail(`${file} is in no band`);
};

const sql = postgres(dbUrl, { max: 1, onnotice: () => {} });
const tables = new Map<string, Table>();
const foreignKeys: ForeignKey[] = [];
try {
  const rel = await sql.unsafe<{ schema: string; name: string; comment: string | null; partitioned: boolean }[]>(`
    select n.nspname as schema, c.relname as name, obj_description(c.oid, 'pg_class') as comment,
           c.relkind = 'p' as partitioned
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p') and not c.relispartition and n.nspname in ('public', 'private')
    order by 1, 2`);
  for (const r of rel) {
    tables.set(`${r.schema}.${r.name}`, {
      qualified: `${r.schema}.${r.name}`,
      schema: r.schema,
      name: r.name,
      comment: r.comment,
      partitioned: r.partitioned,
      columns: [],
      primary: new Set(),
      unique: new Set(),
      foreign: new Set(),
    });
  }
  const cols = await sql.unsafe<{ rel: string; name: string; type: string; not_null: boolean; comment: string | null }[]>(`
    select n.nspname || '.' || c.relname as rel, a.attname as name,
           case when t.typcategory = 'A' then et.typname || '[]' else t.typname end as type,
           a.attnotnull as not_null, col_description(c.oid, a.attnum) as comment
    from pg_attribute a
    join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
    join pg_type t on t.oid = a.atttypid left join pg_type et on et.oid = t.typelem
    where a.attnum > 0 and not a.attisdropped and c.relkind in ('r', 'p') and not c.relispartition
      and n.nspname in ('public', 'private')
    order by 1, a.attnum`);
  for (const c of cols) {
    tables.get(c.rel)?.columns.push({ name: c.name, type: c.type, notNull: c.not_null, comment: c.comment });
  }
  const cons = await sql.unsafe<{
    rel: string; kind: string; columns: string[]; target: string | null; nullable: boolean; one_to_one: boolean;
  }[]>(`
    select n.nspname || '.' || c.relname as rel, k.contype as kind,
           array(select a.attname from unnest(k.conkey) with ordinality u(attnum, ord)
                 join pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.attnum order by u.ord)::text[] as columns,
           case when k.contype = 'f' then tn.nspname || '.' || tc.relname end as target,
           exists (select 1 from pg_attribute a where a.attrelid = k.conrelid and a.attnum = any (k.conkey)
                   and not a.attnotnull) as nullable,
           k.contype = 'f' and exists (select 1 from pg_constraint u where u.conrelid = k.conrelid
                   and u.contype in ('p', 'u') and u.conkey::int[] <@ k.conkey::int[]) as one_to_one
    from pg_constraint k
    join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
    left join pg_class tc on tc.oid = k.confrelid left join pg_namespace tn on tn.oid = tc.relnamespace
    where k.contype in ('p', 'u', 'f') and not c.relispartition and n.nspname in ('public', 'private')
      and k.conparentid = 0
    order by 1, k.conname`);
  for (const k of cons) {
    const t = tables.get(k.rel);
    if (!t) continue;
    const target = k.kind === "p" ? t.primary : k.kind === "u" ? t.unique : t.foreign;
    for (const c of k.columns) target.add(c);
    if (k.kind === "f" && k.target) {
      foreignKeys.push({ from: k.rel, to: k.target, columns: k.columns, nullable: k.nullable, oneToOne: k.one_to_one });
    }
  }
  // Unique indexes (partial ones included: "one active row per ...") mark key columns too.
  const idx = await sql.unsafe<{ rel: string; columns: string[] }[]>(`
    select n.nspname || '.' || c.relname as rel,
           array(select a.attname from unnest(i.indkey::int2[]) u(attnum)
                 join pg_attribute a on a.attrelid = i.indrelid and a.attnum = u.attnum)::text[] as columns
    from pg_index i join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace
    where i.indisunique and not i.indisprimary and not c.relispartition and n.nspname in ('public', 'private')`);
  for (const i of idx) for (const c of i.columns) tables.get(i.rel)?.unique.add(c);
} finally {
  await sql.end();
}

const entity = (qualified: string) => (qualified.startsWith("public.") ? qualified.slice(7) : qualified.replace(".", "_"));
const mermaidType = (type: string) => type.replace(/\[\]$/, "_array").replace(/[^A-Za-z0-9_]/g, "_");
const oneLine = (text: string | null) => (text ?? "").replace(/\s+/g, " ").trim();
const mdCell = (text: string) => text.replace(/\|/g, "\\|");

const byBand = new Map<Band, Table[]>();
for (const t of tables.values()) {
  const file = fileOf.get(t.qualified);
  if (!file) fail(`${t.qualified} is in the catalog but no supabase/schemas file creates it`);
  const band = bandOf(file);
  byBand.set(band, [...(byBand.get(band) ?? []), t]);
}

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
const index: string[] = [
  "# Schema diagrams",
  "",
  "Generated by `npm run docs:schema` from the live catalog; `npm test` fails when they drift. Do not edit.",
  "One page per band of `supabase/schemas/` (DESIGN.md section 2): a Mermaid ER diagram of the band's tables with",
  "their key columns and foreign keys (tables of other bands appear by name only), then each table's comment and",
  "columns.",
  "",
  "| band | files | tables |",
  "|---|---|---|",
];
for (const band of BANDS) {
  const bandTables = (byBand.get(band) ?? []).sort((a, b) => a.qualified.localeCompare(b.qualified));
  const files = schemaFiles.filter((f) => bandOf(f) === band);
  if (bandTables.length === 0) {
    if (files.length > 0) index.push(`| ${band.title} (${band.first}-${band.last}) | ${files.join(", ")} | no tables |`);
    continue;
  }
  index.push(`| [${band.title}](${band.slug}.md) (${band.first}-${band.last}) | ${files.join(", ")} | ${bandTables.map((t) => t.qualified).join(", ")} |`);
  const own = new Set(bandTables.map((t) => t.qualified));
  const fks = foreignKeys
    .filter((f) => own.has(f.from))
    .sort((a, b) => `${a.from}${a.columns}`.localeCompare(`${b.from}${b.columns}`));
  const lines: string[] = [
    `# ${band.title} (bands ${band.first}-${band.last})`,
    "",
    "Generated by `npm run docs:schema` from the live catalog. Do not edit.",
    `Sources: ${files.map((f) => `\`supabase/schemas/${f}\``).join(", ")}.`,
    "",
    "```mermaid",
    "erDiagram",
  ];
  for (const t of bandTables) {
    lines.push(`  ${entity(t.qualified)} {`);
    for (const c of t.columns) {
      const keys = [t.primary.has(c.name) && "PK", t.foreign.has(c.name) && "FK", t.unique.has(c.name) && !t.primary.has(c.name) && "UK"]
        .filter(Boolean)
        .join(", ");
      if (keys) lines.push(`    ${mermaidType(c.type)} ${c.name} ${keys}`);
    }
    lines.push("  }");
  }
  for (const f of fks) {
    const left = f.nullable ? "|o" : "||";
    const right = f.oneToOne ? "o|" : "o{";
    lines.push(`  ${entity(f.to)} ${left}--${right} ${entity(f.from)} : "${f.columns.join(", ")}"`);
  }
  lines.push("```", "");
  for (const t of bandTables) {
    lines.push(`## ${t.qualified}${t.partitioned ? " (partitioned)" : ""}`, "", oneLine(t.comment) || "(no comment)", "");
    lines.push("| column | type | null | key | comment |", "|---|---|---|---|---|");
    for (const c of t.columns) {
      const keys = [t.primary.has(c.name) && "PK", t.foreign.has(c.name) && "FK", t.unique.has(c.name) && !t.primary.has(c.name) && "UK"]
        .filter(Boolean)
        .join(", ");
      lines.push(`| ${c.name} | ${c.type} | ${c.notNull ? "" : "yes"} | ${keys} | ${mdCell(oneLine(c.comment))} |`);
    }
    lines.push("");
  }
  writeFileSync(join(outDir, `${band.slug}.md`), lines.join("\n").replace(/\n+$/, "\n"));
}
writeFileSync(join(outDir, "README.md"), index.join("\n") + "\n");
console.log(`wrote ${outDir}: ${byBand.size} bands, ${tables.size} tables`);
