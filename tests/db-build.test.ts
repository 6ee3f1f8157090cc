// The schema build: what `npm run db:build` accepts as a schema source and what it writes.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildMigration, readSchemaFiles, SchemaSourceError } from "../scripts/db-build.ts";

function sourceTree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "db-build-"));
  mkdirSync(join(root, "supabase/schemas"), { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(root, "supabase/schemas", name), text);
  return root;
}

const platform = "-- Platform: extensions.\n-- What the platform needs.\n\ncreate extension if not exists pgcrypto;\n";
const tenancy = "-- Tenancy: organizations.\n-- Tables of the tenants.\n\ncreate table public.organizations (id uuid);\n\n\n";

describe("db:build", () => {
  it("concatenates the files in file-name order, each under its source banner, with a table of contents", () => {
    const built = buildMigration(readSchemaFiles(sourceTree({ "11-tenancy.sql": tenancy, "00-extensions.sql": platform })));
    const toc = built.indexOf("Table of contents");
    const platformAt = built.indexOf("-- source: supabase/schemas/00-extensions.sql");
    const tenancyAt = built.indexOf("-- source: supabase/schemas/11-tenancy.sql");
    expect(toc).toBeGreaterThan(0);
    expect(platformAt).toBeGreaterThan(toc);
    expect(tenancyAt).toBeGreaterThan(platformAt);
    expect(built).toMatch(/--   00-extensions\.sql\s+Platform: extensions\.\n--\s+What the platform needs\./);
    expect(built).toContain("create table public.organizations (id uuid);\n");
    expect(built.endsWith("create table public.organizations (id uuid);\n")).toBe(true);
  });

  it("writes the same text for the same files", () => {
    const files = { "00-extensions.sql": platform, "11-tenancy.sql": tenancy };
    expect(buildMigration(readSchemaFiles(sourceTree(files)))).toBe(buildMigration(readSchemaFiles(sourceTree(files))));
  });

  it("refuses a file without its two-line opening comment", () => {
    const root = sourceTree({ "00-extensions.sql": "create extension pgcrypto;\n" });
    expect(() => readSchemaFiles(root)).toThrow(SchemaSourceError);
    expect(() => readSchemaFiles(root)).toThrow(/two-line comment/);
  });

  it("refuses names outside NN-words.sql and two files with one number", () => {
    expect(() => readSchemaFiles(sourceTree({ "tenancy.sql": tenancy }))).toThrow(/NN-words-with-hyphens/);
    expect(() => readSchemaFiles(sourceTree({ "11-tenancy.sql": tenancy, "11-roles.sql": tenancy }))).toThrow(/share the number 11/);
  });

  it("refuses TODO and FIXME in the schema", () => {
    expect(() => readSchemaFiles(sourceTree({ "11-tenancy.sql": tenancy + "-- TODO: later\n" }))).toThrow(/TODO/);
  });

  it("builds the committed migration from the committed schema files", () => {
    const files = readSchemaFiles();
    expect(files.length).toBeGreaterThan(10);
    for (const f of files) expect(f.lines, `${f.name} stays under about 700 lines`).toBeLessThanOrEqual(750);
  });
});
