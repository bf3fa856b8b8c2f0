/**
 * EAGLE sampling preserves the target's distribution (sample-and-match over the dynamic tree): on a
 * 12-token vocabulary, the empirical distributions of generated tokens 1 and 2 (both produced by
 * tree verification rounds: the prompt's features come from the prefill, so round 1 already
 * drafts) pass a chi-square goodness-of-fit test against the exact marginals computed from the
 * target's logits (p >= 1e-3, fixed seeds).
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, it } from "vitest";
import { loadEagleHead } from "../../src/decoding/eagle.js";
import { CausalLM } from "../../src/engine/causal-lm.js";
import { fixture, tempDir } from "../helpers/fixtures.js";
import { exactMarginals, expectSampledMarginals, writeRandomEagleHead } from "./helpers.js";

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
    const marginals = await exactMarginals(lm, PROMPT, V, SAMPLING);
    await expectSampledMarginals(lm, head, marginals, { prompt: PROMPT, vocab: V, runs: RUNS, sampling: SAMPLING, seedBase: 500 }, RUNS * 0.3);
    await head.dispose();
    await lm.dispose();
  }, 120_000);
});
