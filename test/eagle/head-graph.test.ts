/** The EAGLE head's ONNX graph (decoding) and its TensorFlow.js twin (training) compute the same thing. */
import { rmSync } from "node:fs";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { SeededRandom } from "../../src/builder/fixture.js";
import { eagleConfigFor, eagleWeightsFromTargetLayer, readEagleHead, readEagleTargetParts, writeEagleHead } from "../../src/builder/eagle-head.js";
import { readDecoderConfig } from "../../src/builder/config.js";
import { loadEagleHead } from "../../src/decoding/eagle.js";
import { CausalLM } from "../../src/engine/causal-lm.js";
import { headForward, headLogits, makeFrozen, paramsFromWeights } from "../../src/eagle/model.js";
import { tfReady } from "../../src/train-common/tf-layers.js";
import { fixture, tempDir } from "../helpers/fixtures.js";
import { writeRandomEagleHead } from "./helpers.js";

describe("EAGLE head graph", () => {
  const root = tempDir("eagle-graph");
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("the target's features output is the last layer before the final norm (final norm of it = hidden_states)", async () => {
    const dir = await fixture({ layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 1 });
    const lm = await CausalLM.load(dir);
    expect(lm.info.hasFeatures).toBe(true);
    const out = await lm.forward(lm.newCache(), [1, 7, 9, 200], { hidden: true, features: true });
    const { finalNorm } = readEagleTargetParts(dir);
    const H = 64;
    const eps = readDecoderConfig(dir).rmsNormEps;
    let max = 0;
    for (let r = 0; r < 4; r++) {
      const f = out.features!.subarray(r * H, (r + 1) * H);
      const rms = Math.sqrt(f.reduce((a, x) => a + x * x, 0) / H + eps);
      for (let j = 0; j < H; j++) max = Math.max(max, Math.abs((f[j]! / rms) * finalNorm[j]! - out.hidden![r * H + j]!));
    }
    expect(max).toBeLessThan(1e-4);
    await lm.dispose();
  });

  // The target's MLP width (a fresh head's default) and a wider one (train-eagle --intermediate-size).
  it.each([undefined, 300])("ONNX head (with KV cache and a tree mask) matches the tfjs head used for training (MLP width %s)", async (width) => {
    await tfReady();
    const dir = await fixture({ layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 1 });
    const headDir = writeRandomEagleHead(join(root, `h${width ?? ""}`), dir, 9, 1.5, { intermediateSize: width });
    const head = await loadEagleHead(headDir, dir);
    const { config, weights } = readEagleHead(headDir);
    if (width !== undefined) expect(config.intermediateSize).toBe(width);
    const H = config.hiddenSize;
    const V = config.vocabSize;
    const rng = new SeededRandom(4);
    const feats = (n: number) => Float32Array.from({ length: n * H }, () => rng.normal());
    // 5 committed rows (causal), then 3 tree rows: two children of the last row and one grandchild.
    const t1 = [3, 17, 250, 4, 99];
    const f1 = feats(5);
    const t2 = [7, 8, 9];
    const f2 = feats(3);
    const pos2 = [5, 5, 6];
    const mask2 = new Uint8Array(3 * 8);
    for (let r = 0; r < 3; r++) mask2.fill(1, r * 8, r * 8 + 5);
    mask2[0 * 8 + 5] = 1;
    mask2[1 * 8 + 6] = 1;
    mask2[2 * 8 + 5] = 1;
    mask2[2 * 8 + 7] = 1;
    const cache = head.newCache();
    const o1 = await head.run(cache, t1, [0, 1, 2, 3, 4], f1);
    const o2 = await head.run(cache, t2, pos2, f2, mask2);
    expect(cache.length).toBe(8);

    const p = paramsFromWeights(config, weights);
    const fz = makeFrozen(readEagleTargetParts(dir), config);
    const causal = tf.tensor2d(Array.from({ length: 25 }, (_, i) => (i % 5 <= Math.floor(i / 5) ? 1 : 0)), [5, 5], "bool");
    const r1 = headForward(config, p, fz, tf.tensor1d(t1, "int32"), tf.tensor2d(f1, [5, H]), tf.tensor1d([0, 1, 2, 3, 4], "int32"), causal);
    const r2 = headForward(config, p, fz, tf.tensor1d(t2, "int32"), tf.tensor2d(f2, [3, H]), tf.tensor1d(pos2, "int32"), tf.tensor2d(Array.from(mask2), [3, 8], "bool"), [{ k: r1.k, v: r1.v }]);
    const close = (a: Float32Array, b: ArrayLike<number>) => {
      expect(a.length).toBe(b.length);
      let max = 0;
      for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
      expect(max).toBeLessThan(2e-3);
    };
    close(o1.features, r1.out.dataSync());
    close(o2.features, r2.out.dataSync());
    close(o1.logits, headLogits(config, fz, r1.out).dataSync());
    close(o2.logits, headLogits(config, fz, r2.out).dataSync());
    expect(o2.logits.length).toBe(3 * V);
    await head.dispose();
  });
});

describe("EAGLE head initialised from a target layer (--init-layer)", () => {
  const root = tempDir("eagle-init-layer");
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("on a one-layer target, the head started from layer 0 computes exactly the target (GQA expanded to full heads)", async () => {
    const dir = await fixture({ layers: 1, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 5 });
    const cfg = readDecoderConfig(dir);
    const headDir = join(root, "h");
    writeEagleHead(headDir, eagleConfigFor(cfg, dir), eagleWeightsFromTargetLayer(dir, 0));
    const head = await loadEagleHead(headDir, dir);
    const lm = await CausalLM.load(dir);
    const tokens = [1, 40, 7, 300, 12, 12, 99];
    // Head row j reads (any feature, token x_{j+1}) at position j. EAGLE's rows start at x_1 (row 0
    // pairs f_0 with x_1), so the head sees the sequence without x_0: it must give the target's
    // logits for x_1.. at the same positions.
    const target = await lm.forward(lm.newCache(), tokens.slice(1), { logits: "all" });
    const rng = new SeededRandom(2);
    const feats = Float32Array.from({ length: (tokens.length - 1) * 64 }, () => rng.normal());
    const out = await head.run(head.newCache(), tokens.slice(1), tokens.slice(1).map((_, j) => j), feats);
    const V = cfg.vocabSize;
    let max = 0;
    for (let j = 0; j + 1 < tokens.length; j++) {
      for (let k = 0; k < V; k++) max = Math.max(max, Math.abs(out.logits[j * V + k]! - target.logits[j * V + k]!));
    }
    expect(max).toBeLessThan(1e-3);
    expect(() => eagleWeightsFromTargetLayer(dir, 1)).toThrow(/--init-layer must be a layer from 0 to 0/);
    await head.dispose();
    await lm.dispose();
  });
});
