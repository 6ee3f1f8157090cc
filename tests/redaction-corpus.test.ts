// The labelled redaction corpus has one source of truth (supabase/tests/fixtures/redaction-corpus.json). This checks
// that the pgTAP test embeds exactly that corpus, and measures the same rates here against the database.
import { readFileSync } from "node:fs";
import { sql, type Kysely } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabase, type UntypedDatabase } from "../supabase/functions/_shared/db.ts";
import { loadCorpus, renderTest, TEST_PATH } from "../scripts/redaction-corpus.ts";
import { testEnv } from "./helpers/env.ts";

const corpus = loadCorpus();
let db: Kysely<UntypedDatabase>;

beforeAll(() => {
  db = createDatabase(testEnv().dbUrl, { max: 1 });
});
afterAll(async () => {
  await db.destroy();
});

describe("redaction corpus", () => {
  it("is embedded unchanged in the pgTAP corpus test", () => {
    expect(readFileSync(TEST_PATH, "utf8")).toBe(renderTest(corpus));
  });

  it("has at least 300 cases, 100 of them hard negatives", () => {
    expect(corpus.cases.length).toBeGreaterThanOrEqual(300);
    expect(corpus.cases.filter((c) => c.pii.length === 0).length).toBeGreaterThanOrEqual(100);
  });

  it("meets the recall and false-positive targets", async () => {
    const { rows } = await sql<{ redacted: string[] }>`
      select array_agg(public.redact_telemetry_metadata(jsonb_build_object('note', t)) ->> 'note' order by n) as redacted
      from unnest(${corpus.cases.map((c) => c.text)}::text[]) with ordinality u(t, n)
    `.execute(db);
    const redacted = rows[0]?.redacted ?? [];
    const placeholder = /\[(EMAIL|PHONE|CARD|IP|JWT|TOKEN|API_KEY|IBAN|SSN|REDACTED)\]/;
    const caught: Record<string, { hit: number; total: number }> = {};
    let negatives = 0;
    let falsePositives = 0;
    corpus.cases.forEach((c, i) => {
      const out = redacted[i] ?? "";
      if (c.pii.length === 0) {
        negatives++;
        if (out !== c.text) falsePositives++;
      }
      for (const p of c.pii) {
        const entry = (caught[p.type] ??= { hit: 0, total: 0 });
        entry.total++;
        if (!out.includes(p.value) && placeholder.test(out)) entry.hit++;
      }
    });
    for (const [type, target] of Object.entries(corpus.targets.recall)) {
      const entry = caught[type];
      expect(entry, `corpus has ${type} cases`).toBeDefined();
      expect(entry!.hit / entry!.total, `${type} recall`).toBeGreaterThanOrEqual(target);
    }
    expect(falsePositives / negatives).toBeLessThanOrEqual(corpus.targets.max_false_positive_rate);
  });
});
