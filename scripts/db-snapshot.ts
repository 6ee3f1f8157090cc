// Prints the rows a schema creates by itself (reference data: permissions, roles, role_permissions, retention
// policies, ...) and the pg_cron jobs, as normalized JSON, for scripts/db-compare.sh.
// Usage: npx tsx scripts/db-snapshot.ts <database url>
// Normalized so that two databases built from the same schema print the same text: columns whose default is the
// clock are left out, and every uuid is replaced by a label derived from the content of the row it identifies (so
// role_permissions.role_id reads `public.roles#<hash of the role's content>` in both, whatever ids were drawn).
import { createHash } from "node:crypto";
import postgres from "postgres";

type Row = Record<string, unknown>;

const url = process.argv[2];
if (!url || url === "--help" || url === "-h") {
  console.log("usage: npx tsx scripts/db-snapshot.ts <database url>");
  process.exit(url ? 0 : 2);
}

const sql = postgres(url, { max: 1, onnotice: () => {} });
try {
  const tables = await sql.unsafe<{ schema: string; name: string }[]>(`
    select n.nspname as schema, c.relname as name
    from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where c.relkind = 'r' and n.nspname in ('public', 'private')
    order by 1, 2`);
  const columns = await sql.unsafe<{ schema: string; table: string; column: string; type: string; clock: boolean }[]>(`
    select n.nspname as schema, c.relname as table, a.attname as column, format_type(a.atttypid, a.atttypmod) as type,
           coalesce(pg_get_expr(d.adbin, d.adrelid) ~ '(now|clock_timestamp|statement_timestamp|transaction_timestamp)\\(', false) as clock
    from pg_catalog.pg_attribute a
    join pg_catalog.pg_class c on c.oid = a.attrelid
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    left join pg_catalog.pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
    where a.attnum > 0 and not a.attisdropped and n.nspname in ('public', 'private')`);
  const columnsOf = new Map<string, { column: string; type: string; clock: boolean }[]>();
  for (const c of columns) {
    const key = `${c.schema}.${c.table}`;
    columnsOf.set(key, [...(columnsOf.get(key) ?? []), c]);
  }

  const collected = new Map<string, Row[]>();
  for (const t of tables) {
    const key = `${t.schema}.${t.name}`;
    const result = await sql.unsafe<{ row: Row }[]>(`select to_jsonb(t) as row from "${t.schema}"."${t.name}" t`);
    if (result.length === 0) continue;
    const cols = columnsOf.get(key) ?? [];
    const dropped = new Set(cols.filter((c) => c.clock).map((c) => c.column));
    const uuids = new Set(cols.filter((c) => c.type === "uuid" || c.type === "uuid[]").map((c) => c.column));
    collected.set(key, result.map((r) => Object.fromEntries(Object.entries(r.row).filter(([k]) => !dropped.has(k)))));
    columnsOf.set(key, cols.filter((c) => !dropped.has(c.column)));
    for (const r of collected.get(key)!) for (const k of Object.keys(r)) if (uuids.has(k)) r[`\u0000uuid:${k}`] = true;
  }

  const canonical = (value: unknown): string =>
    JSON.stringify(value, (_k, v: unknown) =>
      v && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v as Row).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : v,
    );
  const isUuidMarker = (k: string) => k.startsWith("\u0000uuid:");
  const uuidColumns = (r: Row) => new Set(Object.keys(r).filter(isUuidMarker).map((k) => k.slice(6)));

  // Label of every row's own uuid id: its table and a hash of its content without uuids.
  const labels = new Map<string, string>();
  for (const [table, rows] of collected) {
    for (const r of rows) {
      const ids = uuidColumns(r);
      const content = Object.fromEntries(Object.entries(r).filter(([k]) => !ids.has(k) && !isUuidMarker(k)));
      const label = `${table}#${createHash("sha1").update(canonical(content)).digest("hex").slice(0, 12)}`;
      if (typeof r.id === "string" && ids.has("id")) labels.set(r.id, label);
    }
  }
  const relabel = (v: unknown): unknown =>
    typeof v === "string" ? (labels.get(v) ?? "<uuid not created by the schema>") : Array.isArray(v) ? v.map(relabel) : v;

  const out: Record<string, unknown> = {};
  for (const [table, rows] of collected) {
    out[table] = rows
      .map((r) => {
        const ids = uuidColumns(r);
        return Object.fromEntries(
          Object.entries(r)
            .filter(([k]) => !isUuidMarker(k))
            .map(([k, v]) => [k, ids.has(k) ? relabel(v) : v]),
        );
      })
      .map(canonical)
      .sort();
  }
  const cron = await sql.unsafe(`
    select jobname, schedule, command, database, username, active from cron.job order by jobname, command`).catch(() => []);
  out["cron.job"] = cron.map(canonical);
  console.log(JSON.stringify(out, null, 1));
} finally {
  await sql.end();
}
