/** Shared by the prompt-lookup, lookahead and tree-verification tests. */
import { generateTokens, type GenerateTokensResult } from "../../src/decoding/generate.js";
import { getMethod, type MethodName, type MethodOptions } from "../../src/decoding/methods.js";
import type { CausalLM } from "../../src/engine/causal-lm.js";
import type { SamplingOptions } from "../../src/sampling/index.js";
import { expect } from "vitest";
import type { FixtureOptions } from "../helpers/fixtures.js";

/** Llama fixture with a tree mask (the one the engine tests use). */
export const LLAMA: FixtureOptions = { layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 1 };
/** A qwen2 fixture (q/k/v biases), different sizes and weights. */
export const QWEN2: FixtureOptions = { arch: "qwen2", layers: 3, hidden: 96, heads: 4, kvHeads: 2, vocab: 300, seed: 5 };
/** Causal-mask-only graph, as other exporters make. */
export const NO_TREE: FixtureOptions = { ...LLAMA, treeMask: false, hiddenStates: false };

/** A prompt without repeated tokens. */
export const PLAIN_PROMPT = [1, 17, 93, 200, 5, 64];

export async function run(
  lm: CausalLM,
  method: MethodName,
  promptIds: number[],
  maxNewTokens: number,
  opts: { options?: MethodOptions; sampling?: SamplingOptions } = {},
): Promise<GenerateTokensResult> {
  const proposer = method === "baseline" ? undefined : getMethod(method).create({ target: lm }, opts.options ?? {});
  return generateTokens({ target: lm, promptIds, maxNewTokens, eosIds: [], proposer, sampling: opts.sampling });
}

/**
 * A repetitive workload for a random model, "rewrite this text": the target's own greedy
 * continuation G of a seed prompt S (n tokens) is given back in the prompt S + G + S. Small random
 * models do not copy like trained ones, but their text falls into recurring phrases and loops,
 * which the prompt then contains.
 */
export async function repetitivePrompt(lm: CausalLM, seed: number[], n: number): Promise<number[]> {
  const g = await run(lm, "baseline", seed, n);
  return [...seed, ...g.tokens, ...seed];
}

export function sum(a: number[]): number {
  return a.reduce((s, x) => s + x, 0);
}

/** `count` seeded pseudo-random prompts of 3..12 tokens over ids 3..250. */
export function randomPrompts(count: number, seed: number): number[][] {
  let x = seed >>> 0;
  const next = () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0);
  return Array.from({ length: count }, () => Array.from({ length: 3 + (next() % 10) }, () => 3 + (next() % 248)));
}

/**
 * Seeded sampling is reproducible, equals plain sampling with the same seed (sample-and-match makes
 * one target draw per emitted token, in the same order), and changes with the seed.
 */
export async function expectSamplingLikePlain(lm: CausalLM, method: MethodName, prompt: number[]): Promise<void> {
  const sampling = { temperature: 0.8, topK: 40, seed: 11 };
  const a = await run(lm, method, prompt, 40, { sampling });
  const b = await run(lm, method, prompt, 40, { sampling });
  const base = await run(lm, "baseline", prompt, 40, { sampling });
  expect(a.tokens).toEqual(b.tokens);
  expect(a.tokens).toEqual(base.tokens);
  const c = await run(lm, method, prompt, 40, { sampling: { ...sampling, seed: 12 } });
  expect(c.tokens).not.toEqual(a.tokens);
}

/** Greedy tokens equal plain greedy tokens on 6 seeded random prompts (default options). */
export async function expectGreedyLikePlainOnRandomPrompts(lm: CausalLM, method: MethodName): Promise<void> {
  for (const prompt of randomPrompts(6, 2024)) {
    const base = await run(lm, "baseline", prompt, 40);
    expect((await run(lm, method, prompt, 40)).tokens, prompt.join(",")).toEqual(base.tokens);
  }
}
