/**
 * EAGLE sampling preserves the target's distribution (sample-and-match over the dynamic tree): on a
 * 12-token vocabulary, the empirical distributions of generated tokens 1 and 2 (both produced by
 * tree verification rounds: the prompt's features come from the prefill, so round 1 already
 * drafts) pass a chi-square goodness-of-fit test against the exact marginals computed from the
 * target's logits (p >= 1e-3, fixed seeds).
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createEagleProposer, eagleSettings, loadEagleHead } from "../../src/decoding/eagle.js";
import { generateTokens } from "../../src/decoding/generate.js";
import { CausalLM } from "../../src/engine/causal-lm.js";
import { toProbabilities } from "../../src/sampling/index.js";
import { chiSquareP } from "../helpers/chi-square.js";
import { fixture, tempDir } from "../helpers/fixtures.js";
import { writeRandomEagleHead } from "./helpers.js";

const V = 12;
const SAMPLING = { temperature: 1 };
const PROMPT = [1, 5, 9];
const RUNS = 1500;

describe("EAGLE sampling preserves the target distribution", () => {
  const root = tempDir("eagle-sampling");
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("tokens 1 and 2 follow the exact marginals", async () => {
    const dir = await fixture({ layers: 1, hidden: 32, heads: 2, kvHeads: 1, vocab: V, seed: 5 });
    const lm = await CausalLM.load(dir);
    const head = await loadEagleHead(writeRandomEagleHead(join(root, "h"), dir, 3), dir);
    const dist = async (seq: number[]) => Array.from(toProbabilities((await lm.forward(lm.newCache(), seq, { logits: "last" })).logits, SAMPLING));
    const m1 = await dist(PROMPT);
    const m2 = new Array<number>(V).fill(0);
    for (let a = 0; a < V; a++) {
      const p2 = await dist([...PROMPT, a]);
      for (let b = 0; b < V; b++) m2[b]! += m1[a]! * p2[b]!;
    }
    const c1 = new Array<number>(V).fill(0);
    const c2 = new Array<number>(V).fill(0);
    let accepted = 0;
    for (let s = 0; s < RUNS; s++) {
      const proposer = createEagleProposer(lm, head, eagleSettings({ treeTotal: 6, treeDepth: 3, treeTopK: 3 }));
      const r = await generateTokens({ target: lm, promptIds: PROMPT, maxNewTokens: 4, eosIds: [], sampling: { ...SAMPLING, seed: 500 + s }, proposer });
      c1[r.tokens[0]!]!++;
      c2[r.tokens[1]!]!++;
      accepted += r.stats.acceptedTokens;
    }
    expect(accepted).toBeGreaterThan(RUNS * 0.3); // the tree is really in play
    expect(chiSquareP(c1, m1, RUNS)).toBeGreaterThan(1e-3);
    expect(chiSquareP(c2, m2, RUNS)).toBeGreaterThan(1e-3);
    await head.dispose();
    await lm.dispose();
  }, 120_000);
});
