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
import { fixture } from "../helpers/fixtures.js";

const V = 12;
const SAMPLES = 4000;
const ALPHA = 1e-3;
const tiny = { layers: 1, hidden: 32, heads: 2, kvHeads: 1, vocab: V } as const;

// ---------------------------------------------------------------------------------------------
// Chi-square goodness of fit.

/** ln Γ(x), Lanczos (g = 7, n = 9). */
function lnGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
    -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  x -= 1;
  let a = c[0]!;
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Upper regularized incomplete gamma Q(a, x): series below a + 1, Lentz continued fraction above. */
function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const lnPre = a * Math.log(x) - x - lnGamma(a);
  if (x < a + 1) {
    let sum = 1 / a;
    let term = sum;
    for (let n = 1; n < 10000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-15) break;
    }
    return 1 - sum * Math.exp(lnPre);
  }
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 10000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return Math.exp(lnPre) * h;
}

/** P(χ²_dof >= x). */
export function chiSquarePValue(x: number, dof: number): number {
  return gammaQ(dof / 2, x / 2);
}

/**
 * Pearson's chi-square of observed counts against probabilities; cells with an expected count
 * below 5 are pooled into one cell (and dropped if the pool is still below 5). Observations in
 * cells of probability 0 make the statistic infinite.
 */
function chiSquare(counts: Map<string, number>, probs: Map<string, number>, n: number): { stat: number; dof: number; pValue: number } {
  for (const [key, c] of counts) if (c > 0 && !((probs.get(key) ?? 0) > 0)) return { stat: Infinity, dof: 1, pValue: 0 };
  let stat = 0;
  let cells = 0;
  let poolE = 0;
  let poolO = 0;
  for (const [key, p] of probs) {
    const e = p * n;
    const o = counts.get(key) ?? 0;
    if (e < 5) {
      poolE += e;
      poolO += o;
      continue;
    }
    stat += (o - e) ** 2 / e;
    cells++;
  }
  if (poolE >= 5) {
    stat += (poolO - poolE) ** 2 / poolE;
    cells++;
  }
  const dof = cells - 1;
  return { stat, dof, pValue: chiSquarePValue(stat, dof) };
}

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
