/**
 * Draft-model and early-exit speculation, greedy: the tokens must equal plain greedy decoding
 * token for token, for every K in 1..8 and every K controller, on several target/draft pairs and
 * prompts; and the statistics must be consistent.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SpecEngine } from "../../src/api.js";
import { CostController } from "../../src/decoding/controllers.js";
import { generateTokens } from "../../src/decoding/generate.js";
import { getMethod, type MethodOptions } from "../../src/decoding/methods.js";
import type { GenerationStats } from "../../src/decoding/stats.js";
import { CausalLM } from "../../src/engine/causal-lm.js";
import { ModelStore } from "../../src/engine/model-store.js";
import { fixture } from "../helpers/fixtures.js";

const N = 20;
const PROMPTS = [[7], [1, 17, 93, 200, 5, 64], [1, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58]];
const ARMS: { label: string; options: MethodOptions }[] = [
  ...[1, 2, 3, 4, 5, 6, 7, 8].map((k) => ({ label: `K=${k}`, options: { k } })),
  { label: "heuristic", options: { k: 1, controller: "heuristic" } },
  { label: "confidence", options: { k: 6, controller: "confidence", confidenceThreshold: 0.5 } },
  { label: "cost", options: { k: "auto", controller: "cost" } },
  { label: "auto", options: { k: "auto" } },
];

function checkStats(s: GenerationStats, n: number): void {
  expect(s.newTokens).toBe(n);
  expect(s.acceptedTokens).toBeLessThanOrEqual(s.draftedTokens);
  expect(s.acceptanceHistogram.reduce((a, b) => a + b, 0)).toBe(s.targetForwards);
  expect(s.meanAcceptedLength).toBeCloseTo(s.newTokens / s.targetForwards, 3);
  expect(s.acceptanceRate).toBeCloseTo(s.draftedTokens > 0 ? s.acceptedTokens / s.draftedTokens : 0, 3);
  for (const a of s.perPositionAcceptance) expect(a).toBeGreaterThanOrEqual(0);
  for (const a of s.perPositionAcceptance) expect(a).toBeLessThanOrEqual(1);
  const kh = s.extra.kHistogram as number[];
  expect(kh.reduce((a, b) => a + b, 0)).toBe(s.targetForwards);
  expect(kh.reduce((a, b, k) => a + b * k, 0)).toBe(s.draftedTokens);
  expect(typeof s.extra.kController).toBe("string");
  expect(s.extra.finalK).toBeTypeOf("number");
}

interface Pair {
  name: string;
  target: () => CausalLM;
  draft: () => CausalLM;
}

describe("greedy draft-model / early-exit speculation equals plain greedy", () => {
  const store = new ModelStore();
  const pairs: Pair[] = [];
  let targetA: CausalLM, targetB: CausalLM, sharedDraft: CausalLM, otherDraft: CausalLM, exitA: CausalLM, exitB: CausalLM;

  beforeAll(async () => {
    // A: llama, GQA (4 heads / 2 kv heads), 4 layers with early exits. Its 2-layer twin (same seed)
    // shares its first two layers' weights: a good draft. A different seed gives a poor one.
    const base = { hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 21 } as const;
    const dirA = await fixture({ ...base, layers: 4, earlyExit: [1, 2] });
    const dirTwin = await fixture({ ...base, layers: 2 });
    const dirOther = await fixture({ ...base, layers: 1, hidden: 32, heads: 2, kvHeads: 1, seed: 99 });
    // B: qwen2 (q/k/v biases), multi-query attention, 3 layers, early exit at 1.
    const dirB = await fixture({ arch: "qwen2", layers: 3, hidden: 48, heads: 4, kvHeads: 1, vocab: 300, seed: 5, earlyExit: [1] });
    const A = await store.load(dirA);
    targetA = A.lm;
    sharedDraft = (await store.load(dirTwin)).lm;
    otherDraft = (await store.load(dirOther)).lm;
    exitA = (await getMethod("early-exit").loadResources!({ store, target: A, options: { exitLayer: 1 } })).draft!;
    const B = await store.load(dirB);
    targetB = B.lm;
    exitB = (await getMethod("early-exit").loadResources!({ store, target: B, options: {} })).draft!;
    pairs.push(
      { name: "A + 2-layer twin draft", target: () => targetA, draft: () => sharedDraft },
      { name: "A + unrelated draft", target: () => targetA, draft: () => otherDraft },
      { name: "A early-exit 1", target: () => targetA, draft: () => exitA },
      { name: "B (qwen2, MQA) early-exit 1", target: () => targetB, draft: () => exitB },
    );
  });
  afterAll(() => store.dispose());

  it("matches token for token for K = 1..8 and every controller", async () => {
    let accepted = 0;
    let rejected = 0;
    for (const pair of pairs) {
      const target = pair.target();
      for (const prompt of PROMPTS) {
        const base = await generateTokens({ target, promptIds: prompt, maxNewTokens: N, eosIds: [] });
        for (const arm of ARMS) {
          const method = pair.draft() === exitA || pair.draft() === exitB ? "early-exit" : "draft";
          const proposer = getMethod(method).create({ target, draft: pair.draft() }, arm.options);
          const res = await generateTokens({ target, promptIds: prompt, maxNewTokens: N, eosIds: [], proposer });
          expect(res.tokens, `${pair.name}, prompt of ${prompt.length}, ${arm.label}`).toEqual(base.tokens);
          checkStats(res.stats, N);
          expect(res.stats.method).toBe(method);
          accepted += res.stats.acceptedTokens;
          rejected += res.stats.draftedTokens - res.stats.acceptedTokens;
        }
      }
    }
    // The fixtures exercise both outcomes.
    expect(accepted).toBeGreaterThan(100);
    expect(rejected).toBeGreaterThan(100);
  });

  it("greedy with a repetition penalty still equals plain greedy", async () => {
    const sampling = { repetitionPenalty: 1.5 };
    for (const prompt of PROMPTS) {
      const base = await generateTokens({ target: targetA, promptIds: prompt, maxNewTokens: N, eosIds: [], sampling });
      for (const options of [{ k: 3 }, { k: "auto" as const }]) {
        const proposer = getMethod("draft").create({ target: targetA, draft: sharedDraft }, options);
        const res = await generateTokens({ target: targetA, promptIds: prompt, maxNewTokens: N, eosIds: [], sampling, proposer });
        expect(res.tokens).toEqual(base.tokens);
        expect(res.stats.acceptedTokens).toBeGreaterThan(0);
      }
    }
  });

  it("stops on eos inside an accepted run and respects maxNewTokens", async () => {
    const base = await generateTokens({ target: targetA, promptIds: [1, 2, 3], maxNewTokens: 16, eosIds: [] });
    const eos = base.tokens[9]!;
    const want = base.tokens.slice(0, base.tokens.indexOf(eos) + 1);
    for (const k of [1, 3, 8]) {
      const proposer = getMethod("draft").create({ target: targetA, draft: sharedDraft }, { k });
      const res = await generateTokens({ target: targetA, promptIds: [1, 2, 3], maxNewTokens: 16, eosIds: [eos], proposer });
      expect(res.tokens).toEqual(want);
      expect(res.finishReason).toBe("eos");
      expect((res.stats.extra.kHistogram as number[]).reduce((a, b) => a + b, 0)).toBe(res.stats.targetForwards);
    }
    for (const n of [1, 2, 5]) {
      const proposer = getMethod("draft").create({ target: targetA, draft: sharedDraft }, { k: 8 });
      const res = await generateTokens({ target: targetA, promptIds: [1, 2, 3], maxNewTokens: n, eosIds: [], proposer });
      expect(res.tokens).toEqual(base.tokens.slice(0, n));
    }
  });

  it("reports the controller in stats.extra and per-position acceptance", async () => {
    const run = (options: MethodOptions) =>
      generateTokens({
        target: targetA,
        promptIds: PROMPTS[1]!,
        maxNewTokens: 40,
        eosIds: [],
        proposer: getMethod("early-exit").create({ target: targetA, draft: exitA }, options),
      });
    const fixed = await run({ k: 5 });
    expect(fixed.stats.extra.kController).toBe("fixed");
    expect(fixed.stats.extra.exitLayer).toBe(1);
    expect(fixed.stats.perPositionAcceptance.length).toBeGreaterThan(0);
    expect(fixed.stats.perPositionAcceptance.length).toBeLessThanOrEqual(5);
    expect(fixed.stats.acceptanceHistogram.length).toBeLessThanOrEqual(6);
    expect(fixed.stats.draftMs).toBeGreaterThan(0);
    expect(fixed.stats.targetMs).toBeGreaterThan(0);
    const heur = await run({ k: 2, controller: "heuristic" });
    expect(heur.stats.extra).toMatchObject({ kController: "heuristic", initialK: 2 });
    const conf = await run({ k: 8, confidenceThreshold: 0.99 });
    expect(conf.stats.extra.kController).toBe("confidence");
    expect(conf.stats.extra.confidenceStops as number).toBeGreaterThan(0);
    const auto = await run({ k: "auto" });
    expect(auto.stats.extra).toMatchObject({ kController: "cost", maxK: 8 });
    const none = await run({});
    expect(none.stats.extra.kController).toBe("cost");
    const cost = await run({ k: "auto", controller: "cost" });
    expect(cost.stats.extra.kController).toBe("cost");
    expect(cost.stats.extra.costRatio as number).toBeGreaterThan(0);
  });

  it("the cost controller falls back to plain rounds when drafting cannot pay, and re-probes", () => {
    const c = new CostController(8);
    expect(c.nextK()).toBe(2); // nothing measured yet
    // A draft as slow as the target that is never right.
    for (let i = 0; i < 20; i++) c.update({ drafted: 2, accepted: 0, draftForwards: 2, draftMs: 10, targetMs: 10 });
    const ks = Array.from({ length: 40 }, () => c.nextK());
    expect(ks.filter((k) => k === 0).length).toBeGreaterThan(30);
    expect(ks.some((k) => k > 0)).toBe(true); // a probe
    // A cheap draft that is always right: the largest K wins.
    const good = new CostController(8);
    for (let i = 0; i < 30; i++) good.update({ drafted: 8, accepted: 8, draftForwards: 8, draftMs: 8, targetMs: 20 });
    expect(good.nextK()).toBe(8);
    // Acceptance that collapses after position 2: K = 2 or 3.
    const mid = new CostController(8);
    for (let i = 0; i < 60; i++) mid.update({ drafted: 8, accepted: 2, draftForwards: 8, draftMs: 8, targetMs: 10 });
    expect(mid.nextK()).toBeLessThanOrEqual(3);
    expect(mid.nextK()).toBeGreaterThanOrEqual(2);
  });

  it("runs end to end through SpecEngine (draft dir and early-exit with the default exit layer)", async () => {
    const base = { hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 21 } as const;
    const engine = new SpecEngine();
    const model = await fixture({ ...base, layers: 4, earlyExit: [1, 2] });
    const draft = await fixture({ ...base, layers: 2 });
    const plain = await engine.generate({ model, prompt: "The little model", maxNewTokens: 24 });
    const viaDraft = await engine.generate({ model, draft, method: "draft", prompt: "The little model", maxNewTokens: 24, methodOptions: { k: 4 } });
    expect(viaDraft.tokens).toEqual(plain.tokens);
    expect(viaDraft.text).toBe(plain.text);
    expect(viaDraft.stats.draftedTokens).toBeGreaterThan(0);
    const auto = await engine.generate({ model, draft, method: "auto", prompt: "The little model", maxNewTokens: 24 });
    expect(auto.method).toBe("draft");
    expect(auto.tokens).toEqual(plain.tokens);
    const ee = await engine.generate({ model, method: "early-exit", prompt: "The little model", maxNewTokens: 24 });
    expect(ee.tokens).toEqual(plain.tokens);
    expect(ee.stats.extra.exitLayer).toBe(1); // the smallest built
    const ee2 = await engine.generate({ model, method: "early-exit", prompt: "The little model", maxNewTokens: 24, methodOptions: { exitLayer: 2, k: 3 } });
    expect(ee2.tokens).toEqual(plain.tokens);
    expect(ee2.stats.extra.exitLayer).toBe(2);
    await engine.dispose();
  });
});
