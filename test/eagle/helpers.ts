/** Random EAGLE heads for tests (our writer, the target fixture's shapes). */
import { SeededRandom } from "../../src/builder/fixture.js";
import { eagleConfigFor, writeEagleHead, type EagleHeadWeights } from "../../src/builder/eagle-head.js";
import { readDecoderConfig } from "../../src/builder/config.js";
import { createEagleProposer, eagleSettings, loadEagleHead, type EagleHeadModel } from "../../src/decoding/eagle.js";
import { generateTokens } from "../../src/decoding/generate.js";
import { CausalLM } from "../../src/engine/causal-lm.js";
import { toProbabilities } from "../../src/sampling/index.js";
import { expect } from "vitest";
import { chiSquareP } from "../helpers/chi-square.js";

export function randomEagleWeights(H: number, I: number, seed: number, scale = 1): EagleHeadWeights {
  const rng = new SeededRandom(seed);
  const fill = (n: number, fanIn: number) => Float32Array.from({ length: n }, () => (scale * rng.normal()) / Math.sqrt(fanIn));
  const ones = (n: number) => Float32Array.from({ length: n }, () => 1 + 0.1 * rng.normal());
  return {
    fcWeight: fill(H * 2 * H, 2 * H),
    fcBias: fill(H, 10),
    inputNorm: ones(H),
    q: fill(H * H, H),
    k: fill(H * H, H),
    v: fill(H * H, H),
    o: fill(H * H, H),
    postNorm: ones(H),
    gate: fill(I * H, H),
    up: fill(I * H, H),
    down: fill(H * I, I),
  };
}

/** Write a random head for the target checkpoint in `modelDir` into `dir` (a draft vocabulary, an MLP width other than the target's, when given). */
export function writeRandomEagleHead(
  dir: string,
  modelDir: string,
  seed: number,
  scale = 1,
  opts: { draftVocab?: number[]; intermediateSize?: number } = {},
): string {
  const cfg = readDecoderConfig(modelDir);
  const config = {
    ...eagleConfigFor(cfg, "test"),
    ...(opts.draftVocab ? { draftVocab: Int32Array.from(opts.draftVocab) } : {}),
    ...(opts.intermediateSize !== undefined ? { intermediateSize: opts.intermediateSize } : {}),
  };
  writeEagleHead(dir, config, randomEagleWeights(cfg.hiddenSize, config.intermediateSize, seed, scale));
  return dir;
}

/** The target's exact distributions of generated tokens 1 (m1) and 2 (m2, marginalised over token 1) after `prompt`. */
export async function exactMarginals(lm: CausalLM, prompt: number[], vocab: number, sampling: { temperature: number }): Promise<{ m1: number[]; m2: number[] }> {
  const dist = async (seq: number[]) => Array.from(toProbabilities((await lm.forward(lm.newCache(), seq, { logits: "last" })).logits, sampling));
  const m1 = await dist(prompt);
  const m2 = new Array<number>(vocab).fill(0);
  for (let a = 0; a < vocab; a++) {
    const p2 = await dist([...prompt, a]);
    for (let b = 0; b < vocab; b++) m2[b]! += m1[a]! * p2[b]!;
  }
  return { m1, m2 };
}

/** Counts of generated tokens 1 and 2 over `runs` seeded EAGLE generations (tree 6 nodes, depth 3, top-k 3), and drafts accepted. */
export async function sampleFirstTwo(
  lm: CausalLM,
  head: EagleHeadModel,
  o: { prompt: number[]; vocab: number; runs: number; sampling: { temperature: number }; seedBase: number },
): Promise<{ c1: number[]; c2: number[]; accepted: number }> {
  const c1 = new Array<number>(o.vocab).fill(0);
  const c2 = new Array<number>(o.vocab).fill(0);
  let accepted = 0;
  for (let s = 0; s < o.runs; s++) {
    const proposer = createEagleProposer(lm, head, eagleSettings({ treeTotal: 6, treeDepth: 3, treeTopK: 3 }));
    const r = await generateTokens({ target: lm, promptIds: o.prompt, maxNewTokens: 4, eosIds: [], sampling: { ...o.sampling, seed: o.seedBase + s }, proposer });
    c1[r.tokens[0]!]!++;
    c2[r.tokens[1]!]!++;
    accepted += r.stats.acceptedTokens;
  }
  return { c1, c2, accepted };
}

/** Greedy EAGLE decoding with `head` (default tree) returns plain greedy decoding's tokens and accepts some drafts. */
export async function expectExactGreedyWithHead(lm: CausalLM, head: EagleHeadModel, prompt = [1, 5, 9, 20], maxNewTokens = 40): Promise<void> {
  const base = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens, eosIds: [] });
  const res = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens, eosIds: [], proposer: createEagleProposer(lm, head, eagleSettings({})) });
  expect(res.tokens).toEqual(base.tokens);
  expect(res.stats.meanAcceptedLength).toBeGreaterThan(1);
}

/**
 * Sampled EAGLE generations with `head` put tokens 1 and 2 on the exact marginals `m` (chi-square,
 * p > 1e-3) while accepting more than `minAccepted` drafts (the tree is really in play).
 */
export async function expectSampledMarginals(
  lm: CausalLM,
  head: EagleHeadModel,
  m: { m1: number[]; m2: number[] },
  o: { prompt: number[]; vocab: number; runs: number; sampling: { temperature: number }; seedBase: number },
  minAccepted: number,
): Promise<void> {
  const { c1, c2, accepted } = await sampleFirstTwo(lm, head, o);
  expect(accepted).toBeGreaterThan(minAccepted);
  expect(chiSquareP(c1, m.m1, o.runs)).toBeGreaterThan(1e-3);
  expect(chiSquareP(c2, m.m2, o.runs)).toBeGreaterThan(1e-3);
}

/** Load `model` (its `variant` build, default the default one) and the EAGLE head in `headDir`, run `fn`, release both. */
export async function withModelAndHead(
  model: string,
  headDir: string,
  o: { variant?: string },
  fn: (lm: CausalLM, head: EagleHeadModel) => Promise<void>,
): Promise<void> {
  const lm = await CausalLM.load(model, o.variant !== undefined ? { variant: o.variant } : {});
  try {
    const head = await loadEagleHead(headDir, model);
    try {
      await fn(lm, head);
    } finally {
      await head.dispose();
    }
  } finally {
    await lm.dispose();
  }
}
