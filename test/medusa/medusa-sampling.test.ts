/**
 * Medusa sampling in exact mode preserves the target's distribution (sample-and-match over the
 * tree): on a 12-token vocabulary, the empirical distributions of generated tokens 2 and 3 (both
 * produced by tree verification rounds) pass a chi-square goodness-of-fit test against the exact
 * marginals computed from the target's own logits, at a significance fixed in advance
 * (p >= 1e-3, fixed seeds). Typical acceptance, which is not distribution-preserving, is the
 * negative control: the same test rejects it, so the test has power.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { generateTokens } from "../../src/decoding/generate.js";
import { createMedusaProposer, medusaSettings } from "../../src/decoding/medusa.js";
import { disposeOpenedHeads, loadMedusaHeads } from "./heads-helpers.js";
import { CausalLM } from "../../src/engine/causal-lm.js";
import { toProbabilities } from "../../src/sampling/index.js";
import { chiSquareP } from "../helpers/chi-square.js";
import { fixture, tempDir } from "../helpers/fixtures.js";
import { randomHeads } from "./helpers.js";
import { writeMedusaHeads } from "../../src/builder/medusa-heads.js";


const V = 12;
const SAMPLING = { temperature: 1 };
const PROMPT = [1, 5, 9];
const RUNS = 2000;
const TREE = [[0], [1], [2], [0, 0]];

describe("Medusa exact sampling preserves the target distribution", () => {
  const root = tempDir("medusa-sampling");
  afterAll(async () => {
    await disposeOpenedHeads();
    rmSync(root, { recursive: true, force: true });
  });

  it("tokens 2 and 3 follow the exact marginals; typical acceptance fails the same test", async () => {
    const dir = await fixture({ layers: 1, hidden: 32, heads: 2, kvHeads: 1, vocab: V, seed: 5 });
    const lm = await CausalLM.load(dir);
    const headsDir = join(root, "heads");
    writeMedusaHeads(headsDir, randomHeads({ heads: 2, layers: 1, hidden: 32, vocab: V, seed: 3, lmScale: 2 }));
    const heads = await loadMedusaHeads(headsDir);

    // Exact marginals of tokens 2 and 3 from the target's processed distributions.
    const dist = async (seq: number[]) => {
      const out = await lm.forward(lm.newCache(), seq, { logits: "last" });
      return Array.from(toProbabilities(out.logits, SAMPLING));
    };
    const p1 = await dist(PROMPT);
    const m2 = new Array<number>(V).fill(0);
    const m3 = new Array<number>(V).fill(0);
    for (let a = 0; a < V; a++) {
      if (p1[a]! < 1e-7) continue;
      const p2 = await dist([...PROMPT, a]);
      for (let b = 0; b < V; b++) {
        const pab = p1[a]! * p2[b]!;
        m2[b]! += pab;
        if (pab < 1e-7) continue;
        const p3 = await dist([...PROMPT, a, b]);
        for (let c = 0; c < V; c++) m3[c]! += pab * p3[c]!;
      }
    }

    const sample = async (acceptance?: "typical") => {
      const c2 = new Array<number>(V).fill(0);
      const c3 = new Array<number>(V).fill(0);
      let accepted = 0;
      for (let s = 0; s < RUNS; s++) {
        const proposer = createMedusaProposer(lm, heads, medusaSettings(heads.config, { tree: TREE, ...(acceptance ? { acceptance } : {}) }));
        // Round 1 is plain (t1); round 2 has room for the 4-node tree, so t2 and t3 come from it.
        const r = await generateTokens({ target: lm, promptIds: PROMPT, maxNewTokens: 6, eosIds: [], sampling: { ...SAMPLING, seed: 1000 + s }, proposer });
        c2[r.tokens[1]!]!++;
        c3[r.tokens[2]!]!++;
        accepted += r.stats.acceptedTokens;
      }
      return { p2: chiSquareP(c2, m2, RUNS), p3: chiSquareP(c3, m3, RUNS), accepted };
    };
    const exact = await sample();
    expect(exact.accepted).toBeGreaterThan(RUNS * 0.3); // the tree is really in play
    expect(exact.p2).toBeGreaterThan(1e-3);
    expect(exact.p3).toBeGreaterThan(1e-3);
    const typical = await sample("typical");
    expect(Math.min(typical.p2, typical.p3)).toBeLessThan(1e-3);
    await lm.dispose();
  });
});
