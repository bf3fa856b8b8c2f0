/** EAGLE decoding: greedy equals plain greedy for every tree budget, even with random heads. */
import { cpSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { EagleBudget } from "../../src/decoding/eagle-budget.js";
import { SpecEngine } from "../../src/api.js";
import { createEagleProposer, eagleSettings, loadEagleHead } from "../../src/decoding/eagle.js";
import { generateTokens } from "../../src/decoding/generate.js";
import { CausalLM } from "../../src/engine/causal-lm.js";
import { InvalidOptionError } from "../../src/errors.js";
import { Rng } from "../../src/sampling/index.js";
import { fixture, tempDir } from "../helpers/fixtures.js";
import { writeRandomEagleHead } from "./helpers.js";

const FIXTURES = [
  { layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 1 },
  { arch: "qwen2" as const, layers: 2, hidden: 48, heads: 4, kvHeads: 1, vocab: 300, seed: 7, tieEmbeddings: true },
];

describe("EAGLE generation", () => {
  const root = tempDir("eagle-gen");
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  for (const [fi, fx] of FIXTURES.entries()) {
    it(`greedy EAGLE output equals plain greedy output for every tree budget (fixture ${fi}, random heads and prompts)`, async () => {
      const dir = await fixture(fx);
      const lm = await CausalLM.load(dir);
      const rng = new Rng(100 + fi);
      const budgets = [
        { treeTotal: 1, treeDepth: 1, treeTopK: 1 },
        { treeTotal: 4, treeDepth: 4, treeTopK: 1 },
        { treeTotal: 8, treeDepth: 3, treeTopK: 4 },
        {},
        { treeTotal: 60, treeDepth: 6, treeTopK: 10 },
      ];
      for (const [hi, scale] of [0.5, 3].entries()) {
        const head = await loadEagleHead(writeRandomEagleHead(join(root, `h${fi}-${hi}`), dir, 31 + hi + fi, scale), dir);
        for (let trial = 0; trial < 3; trial++) {
          const len = 1 + Math.floor(rng.next() * 12);
          const prompt = Array.from({ length: len }, () => Math.floor(rng.next() * fx.vocab));
          const maxNewTokens = 1 + Math.floor(rng.next() * 40);
          const base = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens, eosIds: [] });
          for (const b of budgets) {
            const proposer = createEagleProposer(lm, head, eagleSettings(b));
            const res = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens, eosIds: [], proposer });
            expect(res.tokens).toEqual(base.tokens);
            if (maxNewTokens > 2) expect(res.stats.extra.eagleHeadRuns).toBeGreaterThan(0);
          }
        }
        await head.dispose();
      }
      await lm.dispose();
    });
  }

  it("the auto budget's round cost includes the head's commit run of the previous round (observe)", async () => {
    const dir = await fixture(FIXTURES[0]!);
    const lm = await CausalLM.load(dir);
    const head = await loadEagleHead(writeRandomEagleHead(join(root, "h-commit"), dir, 5, 0.5), dir);
    const run = head.run.bind(head);
    // Committed rows run without a tree mask; slow only those runs by 30 ms.
    head.run = async (cache, tokens, positions, features, mask) => {
      if (!mask) await new Promise((r) => setTimeout(r, 30));
      return run(cache, tokens, positions, features, mask);
    };
    const spy = vi.spyOn(EagleBudget.prototype, "choose");
    try {
      const prompt = [1, 5, 9, 20, 7];
      const base = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens: 8, eosIds: [] });
      const res = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens: 8, eosIds: [], proposer: createEagleProposer(lm, head, eagleSettings({})) });
      expect(res.tokens).toEqual(base.tokens);
      const roundMs = spy.mock.calls.map((c) => c[1]);
      expect(roundMs.length).toBeGreaterThan(1);
      // Every round after the first follows an observe() whose commit took >= 30 ms.
      for (const ms of roundMs.slice(1)) expect(ms).toBeGreaterThanOrEqual(29);
    } finally {
      spy.mockRestore();
      await head.dispose();
      await lm.dispose();
    }
  });

  it("auto width (no treeTopK, no treeTotal): dear head rows turn the tree into a chain, output equals plain greedy, stats report the widths", async () => {
    const dir = await fixture(FIXTURES[0]!);
    const lm = await CausalLM.load(dir);
    const head = await loadEagleHead(writeRandomEagleHead(join(root, "h-width"), dir, 5, 0.5), dir);
    const run = head.run.bind(head);
    // Drafting rows (tree-masked runs) cost 3 ms each, as a wide vocabulary's LM head on a CPU.
    head.run = async (cache, tokens, positions, features, mask) => {
      if (mask) await new Promise((r) => setTimeout(r, 3 * tokens.length));
      return run(cache, tokens, positions, features, mask);
    };
    try {
      const prompt = [1, 5, 9, 20, 7];
      const base = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens: 40, eosIds: [] });
      const settings = eagleSettings({});
      expect(settings.autoWidth).toBe(true);
      expect(eagleSettings({ treeTopK: 6 }).autoWidth).toBe(false);
      expect(eagleSettings({ treeTotal: 8 }).autoWidth).toBe(false);
      const res = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens: 40, eosIds: [], proposer: createEagleProposer(lm, head, settings) });
      expect(res.tokens).toEqual(base.tokens);
      expect(res.stats.extra.eagleTreeTopK).toBe("auto (at most 6)");
      const widths = String(res.stats.extra.eagleTreeWidths);
      // Wide probes ("6:n") and chain rounds ("1:n"), the chain the most used.
      expect(widths).toMatch(/^6:\d+ .*1:\d+$/);
      const counts = Object.fromEntries(widths.split(" ").map((p) => p.split(":").map(Number)));
      expect(counts[1]).toBeGreaterThan(counts[6]);
      expect(res.stats.extra.eagleMeanTreeTopK).toBeLessThan(6);
      // A second generation with the same head and target starts from the measured costs: fewer wide probes.
      const again = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens: 40, eosIds: [], proposer: createEagleProposer(lm, head, eagleSettings({})) });
      expect(again.tokens).toEqual(base.tokens);
      const counts2 = Object.fromEntries(String(again.stats.extra.eagleTreeWidths).split(" ").map((p) => p.split(":").map(Number)));
      expect(counts2[6] ?? 0).toBeLessThan(counts[6]);
    } finally {
      await head.dispose();
      await lm.dispose();
    }
  });

  it("drafts stay inside the context: generation up to the last position equals plain greedy", async () => {
    const dir = await fixture({ layers: 2, hidden: 32, heads: 4, kvHeads: 2, vocab: 64, seed: 2, maxPositions: 40 });
    const lm = await CausalLM.load(dir);
    const head = await loadEagleHead(writeRandomEagleHead(join(root, "ctx"), dir, 8), dir);
    const prompt = [1, 9, 4, 33, 2, 7, 7, 12, 5, 3];
    const base = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens: 30, eosIds: [] });
    for (const b of [{}, { treeTotal: 40, treeDepth: 16, treeTopK: 4 }]) {
      const res = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens: 30, eosIds: [], proposer: createEagleProposer(lm, head, eagleSettings(b)) });
      expect(res.tokens).toEqual(base.tokens);
    }
    await head.dispose();
    await lm.dispose();
  });

  it("auto uses the head train-eagle wrote beside the model (<model>/eagle) when no draft or heads are given", async () => {
    const src = await fixture(FIXTURES[0]!);
    const dir = join(root, "model-with-head");
    cpSync(src, dir, { recursive: true });
    const engine = new SpecEngine();
    try {
      const before = await engine.generate({ model: dir, promptIds: [1, 5, 9], maxNewTokens: 12, method: "auto" });
      expect(before.method).not.toBe("eagle");
      writeRandomEagleHead(join(dir, "eagle"), dir, 6);
      const res = await engine.generate({ model: dir, promptIds: [1, 5, 9], maxNewTokens: 12, method: "auto" });
      expect(res.method).toBe("eagle");
      expect(res.methodReason).toContain(join(dir, "eagle"));
      expect(res.tokens).toEqual(before.tokens);
    } finally {
      await engine.dispose();
    }
  });

  it("runs through SpecEngine (explicit and auto), sampling runs, bad tree sizes are clear errors", async () => {
    const dir = await fixture(FIXTURES[0]!);
    const headDir = writeRandomEagleHead(join(root, "engine"), dir, 5);
    const engine = new SpecEngine();
    try {
      const base = await engine.generate({ model: dir, promptIds: [1, 5, 9], maxNewTokens: 20, method: "baseline" });
      const res = await engine.generate({ model: dir, promptIds: [1, 5, 9], maxNewTokens: 20, method: "eagle", heads: headDir, methodOptions: { treeTotal: 10 } });
      expect(res.tokens).toEqual(base.tokens);
      const auto = await engine.generate({ model: dir, promptIds: [1, 5, 9], maxNewTokens: 20, method: "auto", heads: headDir });
      expect(auto.method).toBe("eagle");
      expect(auto.tokens).toEqual(base.tokens);
      // No treeTotal: each round's size comes from the measured verification cost.
      expect(auto.stats.extra.eagleTreeTotal).toMatch(/^auto/);
      expect(auto.stats.extra.eagleMeanTreeTotal).toBeGreaterThan(0);
      const sampled = await engine.generate({ model: dir, promptIds: [1, 5, 9], maxNewTokens: 20, method: "eagle", heads: headDir, sampling: { temperature: 0.8, seed: 3 } });
      expect(sampled.tokens.length).toBe(20);
      await expect(engine.generate({ model: dir, promptIds: [1], maxNewTokens: 5, method: "eagle", heads: headDir, methodOptions: { treeTotal: 0 } })).rejects.toThrow(InvalidOptionError);
      await expect(engine.generate({ model: dir, promptIds: [1], maxNewTokens: 5, method: "eagle" })).rejects.toThrow(/--heads DIR/);
    } finally {
      await engine.dispose();
    }
  });
});
