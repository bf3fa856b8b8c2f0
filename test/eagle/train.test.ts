/**
 * train-eagle end to end on a fixture without a tokenizer: token-id self-distillation, a short
 * training run that must beat the untrained head on held-out depth-1 accuracy, and the written
 * head decoding exactly (greedy equals plain greedy) while accepting drafted tokens.
 */
import { cpSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createEagleProposer, eagleSettings, loadEagleHead } from "../../src/decoding/eagle.js";
import { generateTokens } from "../../src/decoding/generate.js";
import { trainEagle } from "../../src/eagle/train.js";
import { readEagleHead } from "../../src/builder/eagle-head.js";
import { trainMedusa } from "../../src/medusa/train.js";
import { CausalLM } from "../../src/engine/causal-lm.js";
import { InvalidOptionError } from "../../src/errors.js";
import { fixture, tempDir } from "../helpers/fixtures.js";
import { expectExactGreedyWithHead, withModelAndHead } from "./helpers.js";

describe("train-eagle", () => {
  const root = tempDir("eagle-train");
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("trains in token-id space on a model without tokenizer, improves held-out top-1, and decodes exactly", async () => {
    const src = await fixture({ layers: 2, hidden: 32, heads: 4, kvHeads: 2, vocab: 128, seed: 3 });
    const model = join(root, "model");
    for (const f of ["config.json", "generation_config.json", "model.safetensors", "onnx"]) cpSync(join(src, f), join(model, f), { recursive: true });
    const lines: string[] = [];
    const report = await trainEagle({
      model,
      selfDistill: 8,
      maxNewTokens: 40,
      maxSteps: 40,
      window: 16,
      batchRows: 64,
      lr: 1e-2,
      evalDepth: 3,
      unrollAfter: 0.5,
      onLog: (l) => lines.push(l),
    });
    expect(lines.some((l) => l.includes("token-id space"))).toBe(true);
    // Single-step for the first half of the 40 steps, then the default 3 unrolled steps.
    expect(lines.some((l) => /^step 20: single-step phase done, training 3 unrolled steps/.test(l))).toBe(true);
    expect(report.unrollAfter).toBe(0.5);
    expect(lines.some((l) => l.startsWith("held-out top-1 per draft depth"))).toBe(true);
    expect(report.depthTop1).toHaveLength(3);
    // The training-set report beside the held-out one (memorising vs capacity-bound).
    expect(report.trainDepthTop1).toHaveLength(3);
    expect(lines.some((l) => /^training-set top-1 per draft depth \(\d+ training sequences\)/.test(l))).toBe(true);
    expect(report.featureNoise).toBe(0);
    expect(report.depthTop1[0]!).toBeGreaterThan(report.initialDepthTop1[0]!);
    expect(report.files.some((f) => f.endsWith("eagle_head.safetensors"))).toBe(true);

    await withModelAndHead(model, report.out, {}, expectExactGreedyWithHead);
  }, 240_000);

  it("--feature-noise perturbs the training inputs (seeded), and is validated", async () => {
    const src = await fixture({ layers: 2, hidden: 32, heads: 4, kvHeads: 2, vocab: 128, seed: 3 });
    const model = join(root, "model-noise");
    for (const f of ["config.json", "model.safetensors", "onnx"]) cpSync(join(src, f), join(model, f), { recursive: true });
    const run = async (featureNoise: number, out: string) => {
      const lines: string[] = [];
      const r = await trainEagle({ model, selfDistill: 4, maxNewTokens: 16, maxSteps: 4, window: 8, batchRows: 32, evalDepth: 2, featureNoise, seed: 2, keepBest: false, out: join(root, out), onLog: (l) => lines.push(l) });
      return { r, lines, bytes: readFileSync(join(root, out, "eagle_head.safetensors")) };
    };
    const plain = await run(0, "n0");
    const again = await run(0, "n0b");
    const noisy = await run(0.5, "n5");
    const noisyAgain = await run(0.5, "n5b");
    expect(again.bytes.equals(plain.bytes)).toBe(true); // deterministic without noise
    expect(noisy.bytes.equals(plain.bytes)).toBe(false); // the noise reaches the gradients
    expect(noisyAgain.bytes.equals(noisy.bytes)).toBe(true); // and is seeded
    expect(noisy.r.featureNoise).toBe(0.5);
    expect(noisy.lines.some((l) => l.includes("feature noise U(-0.5, 0.5)"))).toBe(true);
    await expect(trainEagle({ model, selfDistill: 2, maxSteps: 1, featureNoise: -1 })).rejects.toThrow(/featureNoise must be in \[0, 100\)/);
  }, 120_000);

  it("single-step training runs on onnxruntime by default and follows the tfjs trainer (--trainer tfjs)", async () => {
    const src = await fixture({ layers: 2, hidden: 32, heads: 4, kvHeads: 2, vocab: 128, seed: 3 });
    const model = join(root, "model-ort");
    for (const f of ["config.json", "model.safetensors", "onnx"]) cpSync(join(src, f), join(model, f), { recursive: true });
    const run = async (trainer: "onnx" | "tfjs" | undefined, out: string, featureNoise = 0) => {
      const lines: string[] = [];
      const r = await trainEagle({ model, selfDistill: 6, maxNewTokens: 24, maxSteps: 12, window: 8, batchRows: 32, lr: 1e-2, unroll: 1, evalDepth: 2, seed: 4, featureNoise, trainer, threads: 1, keepBest: false, out: join(root, out), onLog: (l) => lines.push(l) });
      return { r, lines, head: readEagleHead(join(root, out)).weights };
    };
    const ort = await run(undefined, "ort");
    const tfjs = await run("tfjs", "tfjs");
    expect(ort.r.trainer).toBe("onnx");
    expect(tfjs.r.trainer).toBe("tfjs");
    expect(ort.lines.some((l) => l.startsWith("single-step phase on onnxruntime (1 threads)"))).toBe(true);
    expect(tfjs.lines.some((l) => l.includes("onnxruntime"))).toBe(false);
    // The same 12 Adam steps from the same start: the same weights up to float order.
    let diff = 0;
    let moved = 0;
    for (const k of Object.keys(ort.head) as (keyof typeof ort.head)[]) {
      const a = ort.head[k] as Float32Array;
      const b = tfjs.head[k] as Float32Array;
      for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    }
    const fresh = await run("tfjs", "tfjs-0", 0);
    for (let i = 0; i < fresh.head.q.length; i++) moved = Math.max(moved, Math.abs(fresh.head.q[i]! - tfjs.head.q[i]!));
    expect(moved).toBe(0); // tfjs repeats itself exactly
    expect(diff).toBeLessThan(1e-4); // measured 6e-7
    expect(ort.r.depthTop1[0]!).toBeGreaterThanOrEqual(ort.r.initialDepthTop1[0]!);
    // Feature noise on the onnxruntime path: seeded, and it reaches the weights.
    const n1 = await run(undefined, "ort-n1", 0.5);
    const n2 = await run(undefined, "ort-n2", 0.5);
    expect(Array.from(n1.head.q)).toEqual(Array.from(n2.head.q));
    expect(Array.from(n1.head.q)).not.toEqual(Array.from(ort.head.q));
    await expect(trainEagle({ model, selfDistill: 2, maxSteps: 1, unroll: 1, trainer: "jax" as "tfjs" })).rejects.toThrow(/trainer must be onnx or tfjs/);
  }, 120_000);

  it("keeps the best held-out weights: the starting head when training only makes it worse (--keep-last keeps the last)", async () => {
    const src = await fixture({ layers: 2, hidden: 32, heads: 4, kvHeads: 2, vocab: 128, seed: 3 });
    const model = join(root, "model-best");
    for (const f of ["config.json", "model.safetensors", "onnx"]) cpSync(join(src, f), join(model, f), { recursive: true });
    // A trained head, then continued at a learning rate far too high.
    const good = join(root, "good");
    await trainEagle({ model, selfDistill: 8, maxNewTokens: 40, maxSteps: 40, window: 16, batchRows: 64, lr: 1e-2, unroll: 1, evalDepth: 2, seed: 4, threads: 1, out: good });
    const run = async (keepBest: boolean, out: string) => {
      const lines: string[] = [];
      const r = await trainEagle({ model, selfDistill: 8, maxNewTokens: 40, epochs: 3, window: 16, batchRows: 64, lr: 0.5, unroll: 1, evalDepth: 2, seed: 4, init: good, keepBest, threads: 1, out: join(root, out), onLog: (l) => lines.push(l) });
      return { r, lines };
    };
    const kept = await run(true, "best");
    const last = await run(false, "last");
    expect(last.r.depthTop1[0]!).toBeLessThan(last.r.initialDepthTop1[0]!); // the run does make it worse
    expect(last.r.keptEpoch).toBe(last.r.epochs);
    expect(kept.r.keptEpoch).toBe(0);
    expect(kept.r.depthTop1).toEqual(kept.r.initialDepthTop1);
    expect(kept.r.epochChainAcceptedLength).toHaveLength(3); // epochs 1, 2 and the end
    expect(kept.lines.some((l) => /^keeping the weights of epoch 0, the starting head,/.test(l))).toBe(true);
    expect(kept.lines.some((l) => /^epoch 1: held-out greedy chain/.test(l))).toBe(true);
  }, 120_000);

  it("--intermediate-size trains a wider (or narrower) MLP that config.json records and the ONNX head runs exactly", async () => {
    const src = await fixture({ layers: 2, hidden: 32, heads: 4, kvHeads: 2, vocab: 128, seed: 3 });
    const model = join(root, "model-width");
    for (const f of ["config.json", "model.safetensors", "onnx"]) cpSync(join(src, f), join(model, f), { recursive: true });
    const out = join(root, "wide");
    const lines: string[] = [];
    await trainEagle({ model, selfDistill: 4, maxNewTokens: 16, maxSteps: 3, window: 8, batchRows: 32, evalDepth: 2, intermediateSize: 200, out, onLog: (l) => lines.push(l) });
    expect(lines.some((l) => l.includes("MLP 200"))).toBe(true);
    expect(JSON.parse(readFileSync(join(out, "config.json"), "utf8")).intermediate_size).toBe(200);
    // Continuing it keeps its width; a different width or --init-layer with a width is refused.
    const cont: string[] = [];
    await trainEagle({ model, selfDistill: 3, maxNewTokens: 16, maxSteps: 1, window: 8, evalDepth: 1, init: out, out: join(root, "wide2"), onLog: (l) => cont.push(l) });
    expect(cont.some((l) => l.includes("MLP 200"))).toBe(true);
    await expect(trainEagle({ model, selfDistill: 2, maxSteps: 1, init: out, intermediateSize: 64 })).rejects.toThrow(/MLP width is 200/);
    await expect(trainEagle({ model, selfDistill: 2, maxSteps: 1, initLayer: 0, intermediateSize: 200 })).rejects.toThrow(/--init-layer copies/);
    await expect(trainEagle({ model, selfDistill: 2, maxSteps: 1, intermediateSize: 0 })).rejects.toThrow(/from 1 to 65536/);

    const lm = await CausalLM.load(model);
    const head = await loadEagleHead(out, model);
    try {
      expect(head.config.intermediateSize).toBe(200);
      const prompt = [1, 5, 9, 20];
      const base = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens: 24, eosIds: [] });
      const res = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens: 24, eosIds: [], proposer: createEagleProposer(lm, head, eagleSettings({})) });
      expect(res.tokens).toEqual(base.tokens);
    } finally {
      await head.dispose();
      await lm.dispose();
    }
  }, 120_000);

  it("train-medusa also self-distills in token-id space when the model has no tokenizer (from --prompt-ids too)", async () => {
    const src = await fixture({ layers: 2, hidden: 32, heads: 4, kvHeads: 2, vocab: 128, seed: 3 });
    const model = join(root, "model3");
    for (const f of ["config.json", "model.safetensors", "onnx"]) cpSync(join(src, f), join(model, f), { recursive: true });
    const report = await trainMedusa({ model, selfDistill: 3, maxNewTokens: 20, maxSteps: 3 });
    expect(report.data.sequences).toBe(3);
    const ids = join(root, "ids.txt");
    writeFileSync(ids, "1 5 9\n1,7,7,3\n");
    const r2 = await trainMedusa({ model, selfDistill: 2, promptIds: ids, maxNewTokens: 20, maxSteps: 2, out: join(root, "m2") });
    expect(r2.data.tokens).toBe(3 + 4 + 2 * 20);
    writeFileSync(ids, "1 x 9\n");
    await expect(trainMedusa({ model, selfDistill: 2, promptIds: ids, maxSteps: 1 })).rejects.toThrow(/token ids/);
  }, 120_000);

  it("rejects missing data and --data text on a model without tokenizer, naming the fix", async () => {
    const src = await fixture({ layers: 2, hidden: 32, heads: 4, kvHeads: 2, vocab: 128, seed: 3 });
    await expect(trainEagle({ model: src })).rejects.toThrow(InvalidOptionError);
    const model = join(root, "model2");
    for (const f of ["config.json", "model.safetensors", "onnx"]) cpSync(join(src, f), join(model, f), { recursive: true });
    await expect(trainEagle({ model, selfDistill: 2, data: join(root, "nope.txt") })).rejects.toThrow(/--prompt-ids/);
  });
});
