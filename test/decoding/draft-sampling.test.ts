/**
 * Speculative sampling with a draft model preserves the target's distribution (Leviathan et al.,
 * Chen et al.): on a 12-token vocabulary, thousands of seeded generations of the first two tokens
 * are compared with the exact joint p(x1) p(x2 | x1) computed from the target's logits, by a
 * chi-square goodness-of-fit test at a significance fixed in advance (p-value >= 1e-3; the seed set
 * is fixed, so the test is deterministic). The draft is a different random model, so q != p and
 * both acceptance and the residual distribution matter.
 *
 * Negative controls prove the test has power: proposers that lie about q (a deliberately broken
 * sampler) must FAIL the same test. Note that reporting q as a one-hot on the drafted token is NOT
 * a broken sampler: accept with p(x), else sample norm(max(0, p - onehot)) is exactly "sample from p
 * and match", which is distribution-preserving, so it cannot serve as a control.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateTokens } from "../../src/decoding/generate.js";
import { getMethod } from "../../src/decoding/methods.js";
import type { Proposer } from "../../src/decoding/proposer.js";
import { CausalLM } from "../../src/engine/causal-lm.js";
import { toProbabilities, type SamplingOptions } from "../../src/sampling/index.js";
import { chiSquare, chiSquarePValue } from "../helpers/chi-square.js";
import { fixture } from "../helpers/fixtures.js";

const V = 12;
const SAMPLES = 4000;
const ALPHA = 1e-3;
const tiny = { layers: 1, hidden: 32, heads: 2, kvHeads: 1, vocab: V } as const;

// ---------------------------------------------------------------------------------------------

/** Exact joint distribution of the first two generated tokens under the processed target p. */
async function exactPairs(target: CausalLM, prompt: number[], sampling: SamplingOptions): Promise<Map<string, number>> {
  const row = async (ids: number[]) => (await target.forward(target.newCache(), ids, { logits: "last" })).logits;
  const p1 = toProbabilities(await row(prompt), sampling, prompt);
  const out = new Map<string, number>();
  for (let a = 0; a < V; a++) {
    if (!(p1[a]! > 0)) continue;
    const ctx = [...prompt, a];
    const p2 = toProbabilities(await row(ctx), sampling, ctx);
    for (let b = 0; b < V; b++) if (p2[b]! > 0) out.set(`${a},${b}`, p1[a]! * p2[b]!);
  }
  return out;
}

type Wrap = (inner: Proposer) => Proposer;

/** A proposer that reports `lie(q, x)` instead of the q its token was drawn from. */
function misreport(lie: (q: Float32Array, x: number) => Float32Array): Wrap {
  return (inner) => ({
    method: inner.method,
    models: inner.models,
    prepare: inner.prepare?.bind(inner),
    observe: inner.observe?.bind(inner),
    dispose: inner.dispose?.bind(inner),
    async propose(ctx, room) {
      const p = await inner.propose(ctx, room);
      if (!p.draftProbs) return p;
      return { ...p, draftProbs: p.draftProbs.map((q, i) => lie(q, p.tokens[i]!)) };
    },
  });
}

/** Broken: q scaled far down, so min(1, p/q) = 1: every drafted token is accepted. */
const ALWAYS_ACCEPT = misreport((q) => q.map((v) => v * 1e-6));
/** Broken: q sharpened (q² normalized, "temperature applied twice") while tokens come from q. */
const SHARPENED = misreport((q) => {
  const s = q.map((v) => v * v);
  const t = s.reduce((a, b) => a + b, 0);
  return s.map((v) => v / t);
});

describe("draft-model speculative sampling preserves the target distribution", () => {
  let target: CausalLM;
  let draft: CausalLM;
  beforeAll(async () => {
    // One intra-op thread: these graphs are tiny, and thread hand-offs would cost more than the math.
    target = await CausalLM.load(await fixture({ ...tiny, seed: 11 }), { threads: 1 });
    draft = await CausalLM.load(await fixture({ ...tiny, seed: 12 }), { threads: 1 });
  });
  afterAll(async () => {
    await target.dispose();
    await draft.dispose();
  });

  async function samplePairs(prompt: number[], sampling: SamplingOptions, k: number, wrap?: Wrap, seed0 = 0) {
    const counts = new Map<string, number>();
    let drafted = 0;
    let accepted = 0;
    for (let s = 0; s < SAMPLES; s++) {
      let proposer = getMethod("draft").create({ target, draft }, { k });
      if (wrap) proposer = wrap(proposer);
      // k + 1 new tokens, so that the first round really drafts k tokens.
      const res = await generateTokens({ target, promptIds: prompt, maxNewTokens: k + 1, eosIds: [], sampling: { ...sampling, seed: seed0 + s }, proposer });
      const key = `${res.tokens[0]},${res.tokens[1]}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      drafted += res.stats.draftedTokens;
      accepted += res.stats.acceptedTokens;
    }
    return { counts, acceptance: accepted / drafted };
  }

  it("the chi-square p-value helper matches known quantiles", () => {
    expect(chiSquarePValue(29.588, 10)).toBeCloseTo(0.001, 4);
    expect(chiSquarePValue(3.841, 1)).toBeCloseTo(0.05, 3);
    expect(chiSquarePValue(124.342, 100)).toBeCloseTo(0.05, 3);
  });

  const CASES = [
    { name: "temperature 2.5, K=2", prompt: [1, 7], sampling: { temperature: 2.5 }, k: 2 },
    { name: "temperature 3 + top-k 6 + top-p 0.95 + repetition penalty 1.3, K=3", prompt: [1, 4, 8, 9], sampling: { temperature: 3, topK: 6, topP: 0.95, repetitionPenalty: 1.3 }, k: 3 },
  ];

  for (const c of CASES) {
    it(`matches p(x1, x2) exactly: ${c.name}`, async () => {
      const exact = await exactPairs(target, c.prompt, c.sampling);
      const { counts, acceptance } = await samplePairs(c.prompt, c.sampling, c.k);
      const fit = chiSquare(counts, exact, SAMPLES);
      // Both branches of the rule are exercised.
      expect(acceptance).toBeGreaterThan(0.05);
      expect(acceptance).toBeLessThan(0.9);
      expect(fit.dof).toBeGreaterThan(10);
      expect(fit.pValue, `chi2 ${fit.stat.toFixed(1)} on ${fit.dof} dof`).toBeGreaterThanOrEqual(ALPHA);
    });
  }

  it("negative controls: broken samplers fail the same test", async () => {
    for (const [name, wrap] of [
      ["always accept", ALWAYS_ACCEPT],
      ["sharpened q", SHARPENED],
    ] as const) {
      for (const c of CASES) {
        const exact = await exactPairs(target, c.prompt, c.sampling);
        const { counts } = await samplePairs(c.prompt, c.sampling, c.k, wrap);
        const fit = chiSquare(counts, exact, SAMPLES);
        expect(fit.pValue, `${name}, ${c.name}: chi2 ${fit.stat.toFixed(1)} on ${fit.dof} dof`).toBeLessThan(ALPHA);
      }
    }
  });
});
