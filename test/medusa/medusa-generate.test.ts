/** Medusa decoding: greedy equals plain greedy, sampling modes run, mismatched heads give clear errors. */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SpecEngine } from "../../src/api.js";
import { describeModel } from "../../src/decoding/capabilities.js";
import { generateTokens } from "../../src/decoding/generate.js";
import { createMedusaProposer, medusaSettings } from "../../src/decoding/medusa.js";
import { disposeOpenedHeads, loadMedusaHeads } from "./heads-helpers.js";
import { CausalLM } from "../../src/engine/causal-lm.js";
import { InvalidOptionError, VocabMismatchError } from "../../src/errors.js";
import { fixture, tempDir } from "../helpers/fixtures.js";
import { writeRandomHeads } from "./helpers.js";


const FIXTURES = [
  { layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 1 },
  { arch: "qwen2" as const, layers: 2, hidden: 48, heads: 4, kvHeads: 1, vocab: 300, seed: 7, tieEmbeddings: true },
];
const PROMPTS = [
  [1, 17, 93, 200, 5, 64],
  [7],
  [1, 250, 33, 33, 33, 12, 90],
];

describe("Medusa generation", () => {
  const root = tempDir("medusa-gen");
  let engine: SpecEngine;
  beforeAll(() => {
    engine = new SpecEngine();
  });
  afterAll(async () => {
    await engine.dispose();
    await disposeOpenedHeads();
    rmSync(root, { recursive: true, force: true });
  });

  for (const [fi, fx] of FIXTURES.entries()) {
    it(`greedy Medusa output equals plain greedy output (fixture ${fi}, random heads, several trees)`, async () => {
      const dir = await fixture(fx);
      const headsDir = writeRandomHeads(join(root, `heads-${fi}`), { heads: 3, layers: 1, hidden: fx.hidden, vocab: fx.vocab, seed: 11 + fi });
      const lm = await CausalLM.load(dir);
      const heads = await loadMedusaHeads(headsDir);
      for (const p of PROMPTS) {
        const base = await generateTokens({ target: lm, promptIds: p, maxNewTokens: 40, eosIds: [] });
        for (const tree of [undefined, "chain", "sparse-40", [[0], [1], [2], [0, 0], [1, 0], [0, 0, 0]]]) {
          const proposer = createMedusaProposer(lm, heads, medusaSettings(heads.config, { tree }));
          const res = await generateTokens({ target: lm, promptIds: p, maxNewTokens: 40, eosIds: [], proposer });
          expect(res.tokens).toEqual(base.tokens);
          expect(["tree", "chain"]).toContain(res.stats.verification); // the last rounds may have room for one node only
          expect(res.stats.extra.medusaHeadRuns).toBeGreaterThan(0);
          // The first round is plain (it fetches the first hidden state), then every round verifies a tree.
          expect(res.stats.targetForwards).toBeLessThanOrEqual(base.stats.targetForwards);
        }
      }
      await lm.dispose();
    });
  }

  it("runs through SpecEngine with --heads, and maxNewTokens of 1 and 2 work", async () => {
    const dir = await fixture(FIXTURES[0]!);
    const headsDir = join(root, "heads-0");
    const base = await engine.generate({ model: dir, promptIds: [1, 2, 3], maxNewTokens: 20 });
    const med = await engine.generate({ model: dir, method: "medusa", heads: headsDir, promptIds: [1, 2, 3], maxNewTokens: 20 });
    expect(med.tokens).toEqual(base.tokens);
    expect(med.method).toBe("medusa");
    for (const n of [1, 2]) {
      const r = await engine.generate({ model: dir, method: "medusa", heads: headsDir, promptIds: [1, 2, 3], maxNewTokens: n });
      expect(r.tokens).toEqual(base.tokens.slice(0, n));
    }
    const auto = await engine.generate({ model: dir, method: "auto", heads: headsDir, promptIds: [1, 2, 3], maxNewTokens: 5 });
    expect(auto.method).toBe("medusa");
  });

  it("sampling: exact mode is reproducible per seed; typical mode runs and says it is not distribution-preserving", async () => {
    const dir = await fixture(FIXTURES[0]!);
    const headsDir = join(root, "heads-0");
    const run = (seed: number, acceptance?: "typical") =>
      engine.generate({
        model: dir,
        method: "medusa",
        heads: headsDir,
        promptIds: [1, 17, 93],
        maxNewTokens: 24,
        sampling: { temperature: 0.8, seed },
        methodOptions: acceptance ? { acceptance } : {},
      });
    const a = await run(3);
    const b = await run(3);
    expect(a.tokens).toEqual(b.tokens);
    expect(a.stats.notes.join(" ")).not.toMatch(/NOT distribution-preserving/);
    const t = await run(3, "typical");
    expect(t.tokens.length).toBe(24);
    expect(t.stats.notes.join(" ")).toMatch(/NOT distribution-preserving/);
  });

  it("heads whose hidden size or vocabulary does not match the base give a VocabMismatchError with both numbers", async () => {
    const dir = await fixture(FIXTURES[0]!);
    const wrongHidden = writeRandomHeads(join(root, "wrong-hidden"), { heads: 2, layers: 1, hidden: 32, vocab: 320, seed: 1 });
    const wrongVocab = writeRandomHeads(join(root, "wrong-vocab"), { heads: 2, layers: 1, hidden: 64, vocab: 300, seed: 1 });
    const gen = (heads?: string) => engine.generate({ model: dir, method: "medusa", heads, promptIds: [1, 2], maxNewTokens: 4 });
    let err = await gen(wrongHidden).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VocabMismatchError);
    expect((err as Error).message).toMatch(/hidden states of size 32, but .* has hidden size 64/);
    err = await gen(wrongVocab).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VocabMismatchError);
    expect((err as Error).message).toMatch(/predict 300 tokens, but .* has a vocabulary of 320/);
    expect((err as Error).message).toMatch(/train-medusa/);
    err = await gen(undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect((err as Error).message).toMatch(/--heads DIR/);
  });

  it("model_info lists medusa as needing heads", async () => {
    const lm = await CausalLM.load(await fixture(FIXTURES[0]!));
    const m = describeModel(lm).methods.find((x) => x.method === "medusa")!;
    expect(m.available).toBe(false);
    expect(m.reason).toMatch(/--heads/);
    await lm.dispose();
  });
});
