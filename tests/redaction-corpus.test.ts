// The labelled redaction corpus has one source of truth (supabase/tests/fixtures/redaction-corpus.json). This checks
// that the pgTAP test embeds exactly that corpus, and measures the same rates here against the database.
import { readFileSync } from "node:fs";
import { sql, type Kysely } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabase, type UntypedDatabase } from "../supabase/functions/_shared/db.ts";
import {
  EXTENDED_PATH, loadCorpus, MIN_CASES, MIN_NEGATIVE_SHARE, MIN_POSITIVES_PER_CLASS, PLACEHOLDER_RE, renderExtended, renderTest,
  TEST_PATH,
} from "../scripts/redaction-corpus.ts";
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
  it("is embedded unchanged in the pgTAP corpus test, and the extended fixture is what the generator writes", () => {
    expect(readFileSync(TEST_PATH, "utf8")).toBe(renderTest(corpus));
    expect(readFileSync(EXTENDED_PATH, "utf8")).toBe(renderExtended());
  });

  it(`has at least ${MIN_CASES} cases, a third of them hard negatives, ${MIN_POSITIVES_PER_CLASS} positives per class`, () => {
    expect(corpus.cases.length).toBeGreaterThanOrEqual(MIN_CASES);
    expect(corpus.cases.filter((c) => c.pii.length === 0).length / corpus.cases.length).toBeGreaterThanOrEqual(MIN_NEGATIVE_SHARE);
    expect(new Set(corpus.cases.map((c) => c.id)).size, "ids are unique").toBe(corpus.cases.length);
    for (const type of Object.keys(corpus.targets.recall)) {
      const positives = corpus.cases.filter((c) => c.pii.some((p) => p.type === type)).length;
      expect(positives, `${type} positives`).toBeGreaterThanOrEqual(MIN_POSITIVES_PER_CLASS);
    }
    for (const c of corpus.cases) {
      for (const p of c.pii) expect(c.text.includes(p.value), `case ${c.id} holds its labelled value`).toBe(true);
    }
  });

  it("meets the recall and false-positive targets", async () => {
    const { rows } = await sql<{ redacted: string[] }>`
      select array_agg(public.redact_telemetry_metadata(jsonb_build_object('note', t)) ->> 'note' order by n) as redacted
      from unnest(${corpus.cases.map((c) => c.text)}::text[]) with ordinality u(t, n)
    `.execute(db);
    const redacted = rows[0]?.redacted ?? [];
    const placeholder = new RegExp(PLACEHOLDER_RE);
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

  it("redacts only the classes asked for through private.redact_text()", async () => {
    const text = "card 4111 1111 1111 1111, mail ann@example.com, X-API-Key: 9f8e7d6c5b4a39281706f5e4d3c2b1a0";
    const { rows } = await sql<{ card: string; secret: string; none: string }>`
      select private.redact_text(${text}, array['card', 'secret']) as card, private.redact_text(${text}, array['email']) as secret,
             private.redact_text(${text}, array[]::text[]) as none`.execute(db);
    expect(rows[0]?.card).toBe("card [CARD], mail ann@example.com, X-API-Key: [SECRET]");
    expect(rows[0]?.secret).toBe("card 4111 1111 1111 1111, mail [EMAIL], X-API-Key: 9f8e7d6c5b4a39281706f5e4d3c2b1a0");
    expect(rows[0]?.none).toBe(text);
  });
});
