import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLookaheadProposer, NgramPool } from "../../src/decoding/lookahead.js";
import { registeredMethods } from "../../src/decoding/methods.js";
import type { DecodeContext, Proposal, RoundResult } from "../../src/decoding/proposer.js";
import { StatsCollector } from "../../src/decoding/stats.js";
import { CausalLM } from "../../src/engine/causal-lm.js";
import { InvalidOptionError } from "../../src/errors.js";
import { Rng } from "../../src/sampling/index.js";
import { fixture } from "../helpers/fixtures.js";
import { LLAMA, NO_TREE, PLAIN_PROMPT, QWEN2, expectGreedyLikePlainOnRandomPrompts, expectSamplingLikePlain, repetitivePrompt, run, sum } from "./draft-free-helpers.js";

/** A context with a fake target, to drive the proposer by hand. */
function fakeContext(tokens: number[]): DecodeContext {
  const info = { hasTreeMask: true, multiTokenWithPast: true, maxContext: Number.POSITIVE_INFINITY, eosIds: [0] };
  return {
    target: { info, label: "fake" } as never,
    cache: { length: tokens.length - 1 } as never,
    tokens,
    promptLength: tokens.length,
    sampling: {},
    greedy: true,
    rng: new Rng(0),
    stats: new StatsCollector("lookahead"),
  };
}

/** A round result whose rows' argmaxes are `argmaxes`, as if the target had accepted `accepted`. */
function fakeResult(ctx: DecodeContext, proposal: Proposal, argmaxes: number[], accepted: number[], bonus: number): RoundResult {
  const V = 300;
  const logits = new Float32Array(argmaxes.length * V);
  argmaxes.forEach((t, r) => (logits[r * V + t] = 1));
  const start = ctx.cache.length;
  const path = accepted.map((t) => proposal.tokens.indexOf(t));
  ctx.tokens.push(...accepted, bonus);
  (ctx.cache as { length: number }).length = start + 1 + accepted.length;
  return { proposal, path, acceptedTokens: accepted, bonus, output: { logits, rows: argmaxes.length, vocab: V }, start };
}

describe("the Jacobi window and the pool", () => {
  it("lays out the window with Fu et al.'s mask and slides it (W=2, N=3)", async () => {
    const p = createLookaheadProposer({ window: 2, ngram: 3, guesses: 4 });
    const ctx = fakeContext([10, 11, 12, 13]);
    await p.prepare!(ctx);
    // Round 1 (warm-up): level 0 = cur + W+N-3 = 2 prompt tokens, a causal chain from cur.
    const r1 = await p.propose(ctx, 8);
    expect(r1.tokens).toEqual([]); // no n-gram starts with 13
    const [a, b] = r1.aux!.tokens;
    expect([10, 11, 12, 13]).toContain(a);
    expect(r1.aux!.positions).toEqual([1, 2]);
    expect(r1.aux!.attends).toEqual([[0, 1], [0, 1, 2]]);
    // The outputs of cur, a, b predict positions 1, 2, 3; those of a and b become level 1.
    await p.observe!(ctx, fakeResult(ctx, r1, [100, 101, 102], [], 100));

    // Round 2 (steady state): g[0] = [cur=100, b], g[1] = [101, 102] at positions 1, 2.
    const r2 = await p.propose(ctx, 8);
    expect(r2.tokens).toEqual([]);
    expect(r2.aux!.tokens).toEqual([b, 101, 102]);
    expect(r2.aux!.positions).toEqual([1, 1, 2]);
    // g[0][1] sees cur; g[1][0] sees cur (its column's level 0); g[1][1] sees cur, g[0][1] and itself.
    expect(r2.aux!.attends).toEqual([[0, 1], [0, 2], [0, 1, 3]]);
    // Top level (rows 2 and 3) -> 200, 201. Column trajectories: (100, 101, 200) and (b, 102, 201).
    await p.observe!(ctx, fakeResult(ctx, r2, [100, 0, 200, 201], [], 100));

    // Round 3: cur = 100 again, so the column-0 n-gram is a candidate; the window slid one level.
    const r3 = await p.propose(ctx, 8);
    expect(r3.tokens).toEqual([101, 200]);
    expect(r3.parents).toEqual([-1, 0]);
    expect(r3.aux!.tokens).toEqual([102, 200, 201]);
    expect(r3.aux!.positions).toEqual([1, 1, 2]);
    // Indices now start after cur and the 2 candidates: g[0][1] = 3, g[1][0] = 4, g[1][1] = 5.
    expect(r3.aux!.attends).toEqual([[0, 3], [0, 4], [0, 3, 5]]);
    await p.observe!(ctx, fakeResult(ctx, r3, [101, 200, 7, 0, 300 - 1, 0], [101, 200], 7));
    expect(ctx.stats.extra.poolHits).toBe(1);
    expect(ctx.stats.extra.poolHitsJacobi).toBe(1);
    expect(ctx.stats.extra.lookaheadRounds).toBe(3);
    // eos (0) in the new top level was replaced by a prompt token.
    const r4 = await p.propose(ctx, 8);
    expect(r4.aux!.tokens[2]).not.toBe(0);
    expect([10, 11, 12, 13]).toContain(r4.aux!.tokens[2]);
  });

  it("merges candidates with common prefixes into a tree and respects the budget", async () => {
    const p = createLookaheadProposer({ window: 1, ngram: 4, guesses: 3 });
    // n-grams after 5: (1 2 3), (1 2 4), (6 7 8), (1 9 9): G = 3 keeps the latest three.
    const ctx = fakeContext([5, 1, 2, 3, 5, 1, 2, 4, 5, 6, 7, 8, 5, 1, 9, 9, 5]);
    await p.prepare!(ctx);
    const all = await p.propose(ctx, 20);
    // Most recent first: 1 9 9, then 6 7 8, then 1 2 4 (shares the root "1").
    expect(all.tokens).toEqual([1, 9, 9, 6, 7, 8, 2, 4]);
    expect(all.parents).toEqual([-1, 0, 1, -1, 3, 4, 0, 6]);
    const few = await p.propose(ctx, 4);
    expect(few.tokens).toEqual([1, 9, 9, 6]);
    const pool = new NgramPool(2);
    pool.add(1, [2], 1);
    pool.add(1, [3], 1);
    pool.add(1, [2], 2); // refreshed, not duplicated
    pool.add(1, [4], 1); // evicts [3]
    expect(pool.get(1).map((e) => e.tokens)).toEqual([[4], [2]]);
    expect(pool.size).toBe(2);
  });

  it("validates its options", () => {
    expect(() => createLookaheadProposer({ window: 0 })).toThrow(InvalidOptionError);
    expect(() => createLookaheadProposer({ ngram: 1 })).toThrow(/ngram/);
    expect(() => createLookaheadProposer({ guesses: 2.5 })).toThrow(/guesses/);
    expect(registeredMethods().map((m) => m.name)).toContain("lookahead");
  });
});

describe.each([
  ["llama", LLAMA],
  ["qwen2", QWEN2],
  ["llama without tree mask", NO_TREE],
])("lookahead on %s", (name, opts) => {
  const tree = opts.treeMask !== false;
  let lm: CausalLM;
  let repetitive: number[];
  beforeAll(async () => {
    lm = await CausalLM.load(await fixture(opts));
    repetitive = await repetitivePrompt(lm, [3, 44, 150, 22], 120);
  });
  afterAll(() => lm?.dispose());

  it("greedy tokens equal plain greedy tokens, with and without repeats in the prompt", async () => {
    for (const [prompt, n] of [
      [PLAIN_PROMPT, 60],
      [[7], 30],
      [repetitive, 60],
    ] as const) {
      const base = await run(lm, "baseline", [...prompt], n);
      for (const options of [{}, { window: 5, ngram: 3, guesses: 5 }, { window: 3, ngram: 4, guesses: 3 }, { window: 4, ngram: 2, guesses: 2 }]) {
        const res = await run(lm, "lookahead", [...prompt], n, { options });
        expect(res.tokens, `${name} ${JSON.stringify(options)} prompt ${prompt.length}`).toEqual(base.tokens);
        const s = res.stats;
        expect(sum(s.acceptanceHistogram)).toBe(s.targetForwards);
        expect(s.newTokens).toBe(n);
        expect(s.acceptedTokens).toBeLessThanOrEqual(s.draftedTokens);
        expect(s.extra.poolHits).toBeTypeOf("number");
        expect(s.extra.poolSize).toBeGreaterThan(0);
        if (tree) {
          // Every round runs the window, except a last one with no room left for candidates.
          expect(s.extra.lookaheadRounds).toBeGreaterThanOrEqual(s.targetForwards - 1);
          expect(s.notes).toEqual([]);
        } else {
          expect(s.extra.lookaheadRounds).toBeUndefined();
          expect(s.notes.join(" ")).toMatch(/no tree_attention_mask.*chain/);
          expect(["none", "chain"]).toContain(s.verification);
        }
      }
    }
  });

  it("accepts pool n-grams (and, with a tree mask, n-grams found by the Jacobi window)", async () => {
    const res = await run(lm, "lookahead", PLAIN_PROMPT, 60);
    expect(res.stats.extra.poolHits).toBeGreaterThan(0);
    expect(res.stats.meanAcceptedLength).toBeGreaterThan(1);
    expect(res.stats.meanAcceptedLength).toBeCloseTo(60 / res.stats.targetForwards, 3);
    if (tree) {
      expect(res.stats.extra.poolHitsJacobi).toBeGreaterThan(0);
      expect(res.stats.verification).toBe("tree");
    }
  });

  it("sampling is reproducible for a seed and equals plain sampling (sample-and-match)", async () => {
    await expectSamplingLikePlain(lm, "lookahead", repetitive);
  });

  it("greedy tokens equal plain greedy tokens on random prompts (default options)", async () => {
    await expectGreedyLikePlainOnRandomPrompts(lm, "lookahead");
  });
});

it("runs up to the end of the context (the window is left out when it would not fit)", async () => {
  const lm = await CausalLM.load(await fixture({ ...LLAMA, maxPositions: 48 }));
  try {
    const prompt = [4, 8, 15, 16, 23, 42, 4, 8, 15, 16];
    const base = await run(lm, "baseline", prompt, 38);
    const res = await run(lm, "lookahead", prompt, 38, { options: { window: 6, ngram: 4 } });
    expect(res.tokens).toEqual(base.tokens);
    expect(res.stats.extra.lookaheadRounds).toBeLessThan(res.stats.targetForwards);
  } finally {
    await lm.dispose();
  }
});
