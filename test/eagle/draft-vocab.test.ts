/**
 * EAGLE heads with a reduced draft vocabulary (train-eagle --draft-vocab, EAGLE-3's d2t): the
 * choice of tokens, the files, the ONNX graph (logits over the draft ids = the full head's logits
 * at those tokens; the tfjs training twin agrees), exact greedy decoding for every tree budget
 * (also under a vocabulary limit), distribution-preserving sampling, and a training run. Also the
 * int8 / int4 head graphs (headWeights): close to the float32 head, and exact decoding with them.
 */
import { cpSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { SeededRandom } from "../../src/builder/fixture.js";
import { eagleOnnxFileName, inspectEagleHead, readEagleHead, readEagleTargetParts } from "../../src/builder/eagle-head.js";
import { SpecEngine } from "../../src/api.js";
import { createEagleProposer, eagleSettings, loadEagleHead } from "../../src/decoding/eagle.js";
import { generateTokens } from "../../src/decoding/generate.js";
import { autoDraftVocab, chooseDraftVocab, resolveDraftVocab, trainEagle } from "../../src/eagle/train.js";
import { headForward, headLogits, makeFrozen, paramsFromWeights } from "../../src/eagle/model.js";
import { CausalLM } from "../../src/engine/causal-lm.js";
import { Rng } from "../../src/sampling/index.js";
import { tfReady } from "../../src/train-common/tf-layers.js";
import { fixture, tempDir } from "../helpers/fixtures.js";
import { exactMarginals, expectExactGreedyWithHead, expectSampledMarginals, withModelAndHead, writeRandomEagleHead } from "./helpers.js";

const FX = { layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 1 };

describe("EAGLE draft vocabulary", () => {
  const root = tempDir("eagle-d2t");
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("chooses the most frequent generated tokens (ties to the lower id), ascending, at most the distinct ones", () => {
    const seqs = [
      { tokens: [9, 9, 9, 5, 5, 7, 3, 3, 3], firstTarget: 3 }, // generated: 5 5 7 3 3 3
      { tokens: [1, 7, 8, 8, 2], firstTarget: 1 }, // generated: 7 8 8 2
    ];
    // counts: 3 x3; 5, 7, 8 x2; 2 x1 (the prompt part is not counted)
    expect(Array.from(chooseDraftVocab(seqs, 3, 100))).toEqual([3, 5, 7]);
    expect(Array.from(chooseDraftVocab(seqs, 2, 100))).toEqual([3, 5]);
    expect(Array.from(chooseDraftVocab(seqs, 50, 100))).toEqual([2, 3, 5, 7, 8]);
    expect(autoDraftVocab(16384)).toBe(4096);
    expect(autoDraftVocab(4096)).toBe(0);
  });

  it("auto keeps the whole vocabulary when the chosen tokens cover < 95% of the held-out next tokens; a count forces it", () => {
    const V = 16384;
    const seq = (ids: number[]) => ({ tokens: [1, ...ids], firstTarget: 1 });
    const train = [seq(Array.from({ length: 500 }, (_, i) => 100 + (i % 50)))]; // 50 distinct tokens
    const heldIn = [seq(Array.from({ length: 100 }, (_, i) => 100 + (i % 50)))];
    const heldOut = [seq(Array.from({ length: 100 }, (_, i) => (i < 90 ? 100 + (i % 50) : 9000 + i)))]; // 90% covered
    const lines: string[] = [];
    expect(resolveDraftVocab("auto", train, heldIn, V).ids?.length).toBe(50);
    expect(resolveDraftVocab("auto", train, heldOut, V, (l) => lines.push(l)).ids).toBeUndefined();
    expect(lines.some((l) => /auto keeps the whole vocabulary.*cover only 90\.0%/.test(l))).toBe(true);
    expect(resolveDraftVocab(40, train, heldOut, V).ids?.length).toBe(40);
    expect(resolveDraftVocab("off", train, heldIn, V).ids).toBeUndefined();
    expect(resolveDraftVocab("auto", train, heldIn, 4096).ids).toBeUndefined(); // small vocabulary: off
    expect(() => resolveDraftVocab(-3, train, heldIn, V)).toThrow(/draft-vocab must be auto, off, or an integer/);
  });

  it("the files carry the map; a bad map is refused by name", () => {
    const dir = join(root, "files");
    return fixture(FX).then((model) => {
      writeRandomEagleHead(dir, model, 1, 1, { draftVocab: [0, 3, 17, 250] });
      const info = inspectEagleHead(dir);
      expect(Array.from(info.draftVocab!)).toEqual([0, 3, 17, 250]);
      const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
      expect(cfg.draft_vocab_size).toBe(4);
      cfg.spec_decode.draft_vocab = [0, 17, 3];
      writeFileSync(join(dir, "config.json"), JSON.stringify(cfg));
      expect(() => inspectEagleHead(dir)).toThrow(/draft_vocab.*strictly ascending/);
      cfg.spec_decode.draft_vocab = [0, 3, 999];
      writeFileSync(join(dir, "config.json"), JSON.stringify(cfg));
      expect(() => inspectEagleHead(dir)).toThrow(/999.*below vocab_size 320/);
    });
  });

  it("the ONNX head's logits are the full head's at the draft tokens, and the tfjs head agrees", async () => {
    await tfReady();
    const dir = await fixture(FX);
    const ids = [1, 2, 40, 41, 99, 100, 250, 319];
    const full = await loadEagleHead(writeRandomEagleHead(join(root, "full"), dir, 9, 1.5), dir);
    const reducedDir = writeRandomEagleHead(join(root, "reduced"), dir, 9, 1.5, { draftVocab: ids });
    const reduced = await loadEagleHead(reducedDir, dir);
    const H = FX.hidden;
    const rng = new SeededRandom(4);
    const feats = Float32Array.from({ length: 5 * H }, () => rng.normal());
    const toks = [3, 17, 250, 4, 99];
    const pos = [0, 1, 2, 3, 4];
    const a = await full.run(full.newCache(), toks, pos, feats);
    const b = await reduced.run(reduced.newCache(), toks, pos, feats);
    const N = ids.length;
    expect(b.logits.length).toBe(5 * N);
    let max = 0;
    for (let r = 0; r < 5; r++) for (let i = 0; i < N; i++) max = Math.max(max, Math.abs(b.logits[r * N + i]! - a.logits[r * FX.vocab + ids[i]!]!));
    expect(max).toBeLessThan(1e-4);
    expect(b.features).toEqual(a.features);

    const { config, weights } = readEagleHead(reducedDir);
    const fz = makeFrozen(readEagleTargetParts(dir), config);
    const causal = tf.tensor2d(Array.from({ length: 25 }, (_, i) => (i % 5 <= Math.floor(i / 5) ? 1 : 0)), [5, 5], "bool");
    const r = headForward(config, paramsFromWeights(config, weights), fz, tf.tensor1d(toks, "int32"), tf.tensor2d(feats, [5, H]), tf.tensor1d(pos, "int32"), causal);
    const tl = headLogits(config, fz, r.out).dataSync();
    expect(tl.length).toBe(5 * N);
    let m2 = 0;
    for (let i = 0; i < tl.length; i++) m2 = Math.max(m2, Math.abs(tl[i]! - b.logits[i]!));
    expect(m2).toBeLessThan(2e-3);
    await full.dispose();
    await reduced.dispose();
  });

  it("greedy output equals plain greedy for every tree budget, also under a vocabulary limit", async () => {
    const dir = await fixture(FX);
    const lm = await CausalLM.load(dir);
    const rng = new Rng(7);
    // The 40 most likely next tokens after a few prompts (a useful subset) and a random one.
    const likely = new Set<number>();
    for (const p of [[1, 2, 3], [50, 60], [7]]) {
      const base = await generateTokens({ target: lm, promptIds: p, maxNewTokens: 20, eosIds: [] });
      base.tokens.forEach((t) => likely.add(t));
    }
    const subsets = [[...likely].sort((x, y) => x - y), Array.from({ length: 30 }, (_, i) => 3 + i * 10)];
    const budgets = [{ treeTotal: 1, treeDepth: 1, treeTopK: 1 }, { treeTotal: 4, treeDepth: 4, treeTopK: 1 }, { treeTotal: 8, treeDepth: 3, treeTopK: 4 }, {}, { treeTotal: 60, treeDepth: 6, treeTopK: 10 }];
    let accepted = 0;
    for (const [si, ids] of subsets.entries()) {
      const head = await loadEagleHead(writeRandomEagleHead(join(root, `g${si}`), dir, 40 + si, 0.5, { draftVocab: ids }), dir);
      for (let trial = 0; trial < 3; trial++) {
        const prompt = Array.from({ length: 1 + Math.floor(rng.next() * 8) }, () => Math.floor(rng.next() * FX.vocab));
        const maxNewTokens = 5 + Math.floor(rng.next() * 30);
        const vocabLimit = trial === 2 ? 200 : undefined;
        const base = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens, eosIds: [], vocabLimit });
        for (const bu of budgets) {
          const res = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens, eosIds: [], vocabLimit, proposer: createEagleProposer(lm, head, eagleSettings(bu)) });
          expect(res.tokens).toEqual(base.tokens);
          accepted += res.stats.acceptedTokens;
          if (vocabLimit !== undefined) expect(res.tokens.every((t) => t < vocabLimit)).toBe(true);
        }
      }
      await head.dispose();
    }
    expect(accepted).toBeGreaterThan(0);
    await lm.dispose();
  });

  it("sampling with a reduced head follows the exact marginals of tokens 1 and 2 (chi-square)", async () => {
    const V = 12;
    const SAMPLING = { temperature: 1 };
    const PROMPT = [1, 5, 9];
    const RUNS = 1500;
    const dir = await fixture({ layers: 1, hidden: 32, heads: 2, kvHeads: 1, vocab: V, seed: 5 });
    const lm = await CausalLM.load(dir);
    const { m1, m2 } = await exactMarginals(lm, PROMPT, V, SAMPLING);
    // The draft vocabulary leaves out the most likely first token: the draft distribution is zero there.
    const top = m1.indexOf(Math.max(...m1));
    const ids = Array.from({ length: V }, (_, i) => i).filter((i) => i !== top && i % 3 !== 1);
    const head = await loadEagleHead(writeRandomEagleHead(join(root, "s"), dir, 3, 1, { draftVocab: ids }), dir);
    await expectSampledMarginals(lm, head, { m1, m2 }, { prompt: PROMPT, vocab: V, runs: RUNS, sampling: SAMPLING, seedBase: 900 }, RUNS * 0.2);
    await head.dispose();
    await lm.dispose();
  }, 120_000);

  it("train-eagle --draft-vocab trains over the reduced vocabulary and the head decodes exactly", async () => {
    const src = await fixture({ layers: 2, hidden: 32, heads: 4, kvHeads: 2, vocab: 128, seed: 3 });
    const model = join(root, "model");
    for (const f of ["config.json", "generation_config.json", "model.safetensors", "onnx"]) cpSync(join(src, f), join(model, f), { recursive: true });
    const lines: string[] = [];
    const report = await trainEagle({ model, selfDistill: 8, maxNewTokens: 40, maxSteps: 30, window: 16, batchRows: 64, lr: 1e-2, evalDepth: 3, unroll: 2, draftVocab: 24, onLog: (l) => lines.push(l) });
    expect(report.draftVocabSize).toBeLessThanOrEqual(24);
    expect(report.draftVocabSize).toBeGreaterThan(1);
    expect(report.draftVocabCoverage).toBeGreaterThan(0);
    expect(report.draftVocabCoverage).toBeLessThanOrEqual(1);
    expect(lines.some((l) => /^draft vocabulary: \d+ of 128 tokens/.test(l))).toBe(true);
    expect(report.depthTop1[0]!).toBeGreaterThan(report.initialDepthTop1[0]!);
    const info = inspectEagleHead(report.out);
    expect(info.draftVocab!.length).toBe(report.draftVocabSize);
    await withModelAndHead(model, report.out, {}, async (lm, head) => {
      await expectExactGreedyWithHead(lm, head);
      // Continuing the head (--init) keeps its draft vocabulary.
      const again = await trainEagle({ model, init: report.out, out: join(root, "again"), selfDistill: 4, maxNewTokens: 20, maxSteps: 2, window: 16, batchRows: 64, evalDepth: 2 });
      expect(Array.from(inspectEagleHead(again.out).draftVocab!)).toEqual(Array.from(info.draftVocab!));
    });
  }, 240_000);
});

describe("EAGLE head graph with int8 / int4 weights", () => {
  const root = tempDir("eagle-q");
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("stays close to the float32 head, and greedy decoding with it equals plain greedy (also through SpecEngine)", async () => {
    const dir = await fixture(FX);
    const headDir = writeRandomEagleHead(join(root, "h"), dir, 11, 0.5, { draftVocab: Array.from({ length: 200 }, (_, i) => i + 60) });
    const f32 = await loadEagleHead(headDir, dir);
    const H = FX.hidden;
    const rng = new SeededRandom(6);
    const feats = Float32Array.from({ length: 4 * H }, () => rng.normal());
    const toks = [3, 17, 250, 4];
    const ref = await f32.run(f32.newCache(), toks, [0, 1, 2, 3], feats);
    const lm = await CausalLM.load(dir);
    const prompt = [5, 6, 7, 100];
    const base = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens: 30, eosIds: [] });
    for (const [weights, tol] of [["int8", 0.05], ["int4", 0.5]] as const) {
      const q = await loadEagleHead(headDir, dir, { weights });
      expect(q.onnxFile.endsWith(eagleOnnxFileName(weights))).toBe(true);
      const out = await q.run(q.newCache(), toks, [0, 1, 2, 3], feats);
      let max = 0;
      let scale = 0;
      for (let i = 0; i < ref.logits.length; i++) {
        max = Math.max(max, Math.abs(out.logits[i]! - ref.logits[i]!));
        scale = Math.max(scale, Math.abs(ref.logits[i]!));
      }
      expect(max).toBeGreaterThan(0); // really quantized
      expect(max / scale).toBeLessThan(tol);
      for (const b of [{}, { treeTotal: 6, treeDepth: 6, treeTopK: 1 }, { treeTotal: 20, treeDepth: 4, treeTopK: 5 }]) {
        const res = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens: 30, eosIds: [], proposer: createEagleProposer(lm, q, eagleSettings(b)) });
        expect(res.tokens).toEqual(base.tokens);
      }
      await q.dispose();
    }
    await f32.dispose();
    await lm.dispose();
    const engine = new SpecEngine();
    try {
      const plain = await engine.generate({ model: dir, promptIds: prompt, maxNewTokens: 20, method: "baseline" });
      const r = await engine.generate({ model: dir, heads: headDir, promptIds: prompt, maxNewTokens: 20, method: "eagle", methodOptions: { headWeights: "int8" } });
      expect(r.tokens).toEqual(plain.tokens);
      await expect(engine.generate({ model: dir, heads: headDir, promptIds: prompt, maxNewTokens: 5, method: "eagle", methodOptions: { headWeights: "int2" as never } })).rejects.toThrow(/headWeights/);
    } finally {
      await engine.dispose();
    }
  }, 120_000);
});
