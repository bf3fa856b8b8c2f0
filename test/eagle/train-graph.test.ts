/**
 * The EAGLE head's onnxruntime training step (train-graph.ts, hand-written backward) against the
 * tfjs trainer it replaces for the single-step phase: the same loss and the same gradient of every
 * trainable parameter as tf.variableGrads of train.ts's loss on identical windows, with and without
 * a draft vocabulary; plus a finite-difference check of the graph's own loss.
 */
import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import type { DecoderConfig } from "../../src/builder/config.js";
import type { EagleHeadConfig, EagleTargetParts } from "../../src/builder/eagle-head.js";
import { SeededRandom } from "../../src/builder/fixture.js";
import { makeFrozen, paramList, paramsFromWeights, disposeFrozen } from "../../src/eagle/model.js";
import { packLoss, tfPredict, windows, type Seq } from "../../src/eagle/train.js";
import { EagleOrtEvaluator, EagleOrtTrainer, singleStepFeeds, MAX_GRAPH_ROWS } from "../../src/eagle/train-ort.js";
import { tfReady } from "../../src/train-common/tf-layers.js";
import { randomEagleWeights } from "./helpers.js";

const H = 16;
const NH = 2;
const I = 24;
const V = 50;

function tinyTarget(seed: number): EagleTargetParts {
  const rng = new SeededRandom(seed);
  const cfg: DecoderConfig = {
    architecture: "llama",
    hiddenSize: H,
    intermediateSize: I,
    numLayers: 1,
    numHeads: NH,
    numKvHeads: NH,
    headDim: H / NH,
    vocabSize: V,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: { type: "none" },
    maxPositionEmbeddings: 64,
    tieWordEmbeddings: false,
    attentionBias: false,
    qkNorm: false,
    bosTokenId: 1,
    eosTokenIds: [2],
  };
  const fill = (n: number, s: number) => Float32Array.from({ length: n }, () => s * rng.normal());
  return { cfg, embed: fill(V * H, 1), finalNorm: Float32Array.from({ length: H }, () => 1 + 0.2 * rng.normal()), lmHead: fill(V * H, 0.7) };
}

/** Random sequences (features of scale ~2, so SmoothL1 sees both of its pieces). */
function tinySeqs(seed: number): Seq[] {
  const rng = new SeededRandom(seed);
  return [11, 7, 15].map((L) => ({
    tokens: Array.from({ length: L }, () => Math.floor(rng.next() * V)),
    features: Float32Array.from({ length: L * H }, () => 2 * rng.normal()),
  }));
}

/** Training windows of them. */
function tinyWindows(seed: number): Seq[] {
  return tinySeqs(seed).flatMap((s) => windows(s, 6, H));
}

async function compare(draftVocab: Int32Array | undefined, seed: number) {
  await tfReady();
  const target = tinyTarget(seed);
  const config: EagleHeadConfig = { hiddenSize: H, numHeads: NH, headDim: H / NH, intermediateSize: I, vocabSize: V, rmsNormEps: 1e-5, ...(draftVocab ? { draftVocab } : {}) };
  const ceWeight = 0.7;
  const params = paramsFromWeights(config, randomEagleWeights(H, I, seed + 1));
  const vars = paramList(params);
  const fz = makeFrozen(target, config);
  const wins = tinyWindows(seed + 2);
  const { value, grads } = tf.variableGrads(() => packLoss(config, params, fz, wins, 1, ceWeight), vars);
  const tfLoss = value.dataSync()[0]!;
  const tfGrads = vars.map((v) => Float32Array.from(grads[v.name]!.dataSync()));
  tf.dispose([value, ...Object.values(grads)]);
  const trainer = await EagleOrtTrainer.create(config, target, vars.map((v) => v.dataSync() as Float32Array), { ceWeight, threads: 1 });
  try {
    const { feeds, n } = singleStepFeeds(wins, H);
    expect(n).toBe(wins.reduce((a, w) => a + w.tokens.length - 1, 0));
    const ort = await trainer.lossAndGrads(feeds);
    return { tfLoss, tfGrads, ort, trainer: trainer, feeds, wins, target, config, ceWeight };
  } finally {
    disposeFrozen(fz);
    tf.dispose(vars);
  }
}

const NAMES = ["fcW", "fcB", "inNorm", "wq", "wk", "wv", "wo", "postNorm", "wg", "wu", "wd"];

/** max |a - b| / max |b|. */
function relErr(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / Math.max(m, 1e-12);
}

describe("EAGLE single-step training graph", () => {
  it.each([
    ["the whole vocabulary", undefined],
    ["a draft vocabulary", Int32Array.from([0, 3, 4, 9, 17, 21, 30, 33, 41, 49])],
  ])("loss and every gradient match tf.variableGrads of the tfjs loss (%s)", async (_, dv) => {
    const r = await compare(dv, 5);
    try {
      expect(Math.abs(r.ort.loss - r.tfLoss) / r.tfLoss).toBeLessThan(1e-4);
      expect(r.ort.grads).toHaveLength(NAMES.length);
      NAMES.forEach((name, i) => {
        const g = r.tfGrads[i]!;
        // Every gradient is non-trivial (the check could fail) and agrees.
        expect(Math.max(...g.map(Math.abs)), name).toBeGreaterThan(1e-6);
        expect(relErr(r.ort.grads[i]!, g), name).toBeLessThan(1e-3);
      });
      // A perturbed parameter changes the loss and the gradients: the comparison is not vacuous.
      const before = r.ort.grads.map((g) => g.slice());
      r.trainer.params[3]![0]! += 0.5; // wq
      const moved = await r.trainer.lossAndGrads(r.feeds);
      expect(Math.abs(moved.loss - r.ort.loss)).toBeGreaterThan(1e-6);
      expect(relErr(moved.grads[3]!, before[3]!)).toBeGreaterThan(1e-3);
    } finally {
      await r.trainer.dispose();
    }
  }, 60_000);

  it("agrees with finite differences of its own loss, and splits big minibatches into runs whose gradients add up", async () => {
    const r = await compare(undefined, 9);
    try {
      const { grads, loss } = await r.trainer.lossAndGrads(r.feeds);
      const h = 1e-2;
      for (const [pi, idx] of [[0, 5], [3, 17], [7, 2], [10, 40], [1, 3]] as const) {
        const p = r.trainer.params[pi]!;
        const x = p[idx]!;
        p[idx] = x + h;
        const up = (await r.trainer.lossAndGrads(r.feeds)).loss;
        p[idx] = x - h;
        const down = (await r.trainer.lossAndGrads(r.feeds)).loss;
        p[idx] = x;
        const fd = (up - down) / (2 * h);
        expect(Math.abs(fd - grads[pi]![idx]!), `${NAMES[pi]}[${idx}]`).toBeLessThan(2e-3 * Math.max(1, Math.abs(loss)));
      }
      // More rows than one graph run takes: several runs, the same loss and gradients as the whole.
      const many = Array.from({ length: Math.ceil((MAX_GRAPH_ROWS + 1) / 30) }, () => r.wins).flat();
      const split = singleStepFeeds(many, H);
      expect(split.feeds.length).toBeGreaterThan(1);
      const whole = await r.trainer.lossAndGrads(split.feeds);
      // The same windows repeated: the mean over windows equals the mean over one copy.
      expect(Math.abs(whole.loss - loss) / loss).toBeLessThan(1e-4);
      grads.forEach((g, i) => expect(relErr(whole.grads[i]!, g), NAMES[i]).toBeLessThan(1e-3));
    } finally {
      await r.trainer.dispose();
    }
  }, 60_000);

  it.each([
    ["the whole vocabulary", undefined],
    ["a draft vocabulary", Int32Array.from([0, 3, 4, 9, 17, 21, 30, 33, 41, 49])],
  ])("the onnxruntime evaluation drafts the same greedy chains as the tfjs one (%s)", async (_, dv) => {
    await tfReady();
    const target = tinyTarget(3);
    const config: EagleHeadConfig = { hiddenSize: H, numHeads: NH, headDim: H / NH, intermediateSize: I, vocabSize: V, rmsNormEps: 1e-5, ...(dv ? { draftVocab: dv } : {}) };
    const depth = 4;
    const params = paramsFromWeights(config, randomEagleWeights(H, I, 8));
    const fz = makeFrozen(target, config);
    const seqs = tinySeqs(12);
    const ev = await EagleOrtEvaluator.create(config, target, depth, { threads: 1 });
    try {
      const want = await tfPredict(config, params, fz, depth)(seqs);
      const got = await ev.predict(paramList(params).map((v) => v.dataSync() as Float32Array), seqs);
      expect(got.map((s) => s.map((u) => Array.from(u)))).toEqual(want.map((s) => s.map((u) => Array.from(u))));
      // Not a constant answer: the chains vary across rows and depths.
      expect(new Set(got.flat().flatMap((u) => Array.from(u))).size).toBeGreaterThan(3);
      if (dv) expect(got.flat().every((u) => Array.from(u).every((id) => dv.includes(id)))).toBe(true);
    } finally {
      await ev.dispose();
      disposeFrozen(fz);
      tf.dispose(paramList(params));
    }
  }, 60_000);
});
