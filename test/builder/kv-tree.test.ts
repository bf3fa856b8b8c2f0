import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildDecoderOnnx, makeFixture, openSafetensorsDir, type DecoderConfig } from "../../src/builder/index.js";
import { f16ArrayToF32 } from "../../src/util/half.js";
import { argmax, relErr, run } from "./helpers.js";

const root = mkdtempSync(join(tmpdir(), "sd-kvtree-"));
let cfg: DecoderConfig;
let L: number;
let tree: ort.InferenceSession; // tree_attention_mask input
let plain: ort.InferenceSession; // causal mask built by the graph
let half: ort.InferenceSession; // float16 io, no tree mask

const SEQ = [1, 40, 200, 7, 311, 95, 13, 160, 260, 21];
const rows = (a: ArrayLike<number>, from: number, to: number, V: number) => Array.from(a).slice(from * V, to * V);

beforeAll(async () => {
  const fx = await makeFixture({ out: join(root, "m"), arch: "qwen3", layers: 2, heads: 4, kvHeads: 2 });
  cfg = fx.config;
  L = cfg.numLayers;
  const w = openSafetensorsDir(fx.dir);
  await buildDecoderOnnx(cfg, w, join(fx.dir, "plain.onnx"), { treeMask: false, hiddenStates: false });
  await buildDecoderOnnx(cfg, w, join(fx.dir, "half.onnx"), { treeMask: false, ioDtype: "float16" });
  tree = await ort.InferenceSession.create(join(fx.dir, "onnx", "model.onnx"));
  plain = await ort.InferenceSession.create(join(fx.dir, "plain.onnx"));
  half = await ort.InferenceSession.create(join(fx.dir, "half.onnx"));
});
afterAll(async () => {
  await Promise.all([tree?.release(), plain?.release(), half?.release()]);
  rmSync(root, { recursive: true, force: true });
});

describe("KV cache", () => {
  for (const which of ["tree", "plain"] as const) {
    it(`prefill, then 1 token, then 3 tokens equals the full forward (${which} graph)`, async () => {
      const s = which === "tree" ? tree : plain;
      const V = cfg.vocabSize;
      const full = await run(s, cfg, L, SEQ);
      const a = await run(s, cfg, L, SEQ.slice(0, 6));
      const b = await run(s, cfg, L, SEQ.slice(6, 7), { kv: a.kv });
      const c = await run(s, cfg, L, SEQ.slice(7, 10), { kv: b.kv });
      expect(c.kv.keys[0]!.dims).toEqual([1, cfg.numKvHeads, 10, cfg.headDim]);
      expect(relErr(a.logits, rows(full.logits, 0, 6, V))).toBeLessThan(1e-4);
      expect(relErr(b.logits, rows(full.logits, 6, 7, V))).toBeLessThan(1e-4);
      expect(relErr(c.logits, rows(full.logits, 7, 10, V))).toBeLessThan(1e-4);
      // present = concat(past, new): the cache after the steps equals the full forward's cache.
      expect(relErr(c.kv.keys[1]!.data as Float32Array, full.kv.keys[1]!.data as Float32Array)).toBeLessThan(1e-5);
      expect(relErr(c.kv.values[1]!.data as Float32Array, full.kv.values[1]!.data as Float32Array)).toBeLessThan(1e-5);
    });
  }
});

describe("tree_attention_mask", () => {
  it("an explicit causal mask equals the graph's own causal mask (with a past)", async () => {
    const pre = await run(tree, cfg, L, SEQ.slice(0, 4));
    const prePlain = await run(plain, cfg, L, SEQ.slice(0, 4));
    expect(relErr(pre.logits, prePlain.logits)).toBeLessThan(1e-6);
    const t = await run(tree, cfg, L, SEQ.slice(4, 9), { kv: pre.kv }); // helper builds a causal mask
    const p = await run(plain, cfg, L, SEQ.slice(4, 9), { kv: prePlain.kv });
    expect(relErr(t.logits, p.logits)).toBeLessThan(1e-6);
  });

  it("two sibling branches in one forward equal each branch run as a chain", async () => {
    const V = cfg.vocabSize;
    const prefix = SEQ.slice(0, 4);
    const A = [55, 66, 77];
    const B = [88, 99];
    const pre = await run(tree, cfg, L, prefix);
    // Packed: [a0 a1 a2 b0 b1] at positions [4 5 6 4 5]; each sees the prefix and its own ancestors.
    const P = prefix.length;
    const S = A.length + B.length;
    const T = P + S;
    const mask = new Uint8Array(S * T);
    const parents = [-1, 0, 1, -1, 3];
    for (let t = 0; t < S; t++) {
      for (let j = 0; j < P; j++) mask[t * T + j] = 1;
      for (let q = t; q >= 0; q = parents[q]!) mask[t * T + P + q] = 1;
    }
    const packed = await run(tree, cfg, L, [...A, ...B], { kv: pre.kv, treeMask: mask, positions: [4, 5, 6, 4, 5] });
    const chainA = await run(tree, cfg, L, A, { kv: pre.kv });
    const chainB = await run(tree, cfg, L, B, { kv: pre.kv });
    expect(relErr(rows(packed.logits, 0, 3, V), chainA.logits)).toBeLessThan(1e-4);
    expect(relErr(rows(packed.logits, 3, 5, V), chainB.logits)).toBeLessThan(1e-4);
    // The present cache holds the packed tokens' K/V in order after the prefix.
    expect(packed.kv.keys[0]!.dims[2]).toBe(T);
  });

  it("padding (attention_mask 0) never produces NaN, even for fully masked rows", async () => {
    // Left padding: the first two positions are padding; their query rows see nothing.
    const toks = [0, 0, 1, 40, 200];
    for (const s of [tree, plain]) {
      const { logits, kv } = await run(s, cfg, L, toks, { attention: [0, 0, 1, 1, 1], positions: [0, 0, 0, 1, 2] });
      expect(Array.from(logits).every(Number.isFinite)).toBe(true);
      // Real tokens are unaffected by the padding.
      const clean = await run(s, cfg, L, [1, 40, 200]);
      expect(relErr(rows(logits, 2, 5, cfg.vocabSize), clean.logits)).toBeLessThan(1e-4);
      expect(Array.from(kv.keys[0]!.data as Float32Array).every(Number.isFinite)).toBe(true);
    }
  });
});

describe("batch > 1", () => {
  it("two left-padded sequences in one batch match their batch-1 runs", async () => {
    const V = cfg.vocabSize;
    const a = [1, 40, 200, 7];
    const b = [0, 0, 1, 95]; // two padding tokens
    const am = [1, 1, 1, 1, 0, 0, 1, 1];
    const pos = [0, 1, 2, 3, 0, 0, 0, 1];
    for (const s of [tree, plain]) {
      const feeds: Record<string, ort.Tensor> = {
        input_ids: new ort.Tensor("int64", BigInt64Array.from([...a, ...b].map(BigInt)), [2, 4]),
        attention_mask: new ort.Tensor("int64", BigInt64Array.from(am.map(BigInt)), [2, 4]),
        position_ids: new ort.Tensor("int64", BigInt64Array.from(pos.map(BigInt)), [2, 4]),
      };
      for (let i = 0; i < L; i++) {
        for (const kind of ["key", "value"]) {
          feeds[`past_key_values.${i}.${kind}`] = new ort.Tensor("float32", new Float32Array(0), [2, cfg.numKvHeads, 0, cfg.headDim]);
        }
      }
      if (s === tree) {
        const m = new Uint8Array(2 * 4 * 4);
        for (let bb = 0; bb < 2; bb++) for (let t = 0; t < 4; t++) for (let j = 0; j <= t; j++) m[bb * 16 + t * 4 + j] = 1;
        feeds.tree_attention_mask = new ort.Tensor("uint8", m, [2, 4, 4]);
      }
      const out = await s.run(feeds);
      const logits = out.logits!.data as Float32Array;
      expect(out.logits!.dims).toEqual([2, 4, V]);
      const ra = await run(s, cfg, L, a);
      const rb = await run(s, cfg, L, [1, 95]);
      expect(relErr(rows(logits, 0, 4, V), ra.logits)).toBeLessThan(1e-4);
      expect(relErr(rows(logits, 6, 8, V), rb.logits)).toBeLessThan(1e-4);
    }
  });
});

describe("float16 io", () => {
  it("logits and present are float16 and close to the float32 graph's", async () => {
    const V = cfg.vocabSize;
    const full = await run(plain, cfg, L, SEQ);
    const a = await run(half, cfg, L, SEQ.slice(0, 7), { dtype: "float16" });
    expect(half.outputNames).toContain("hidden_states");
    expect(a.kv.keys[0]!.type).toBe("float16");
    const b = await run(half, cfg, L, SEQ.slice(7), { kv: a.kv, dtype: "float16" });
    const got = [...f16ArrayToF32(a.logits as Uint16Array), ...f16ArrayToF32(b.logits as Uint16Array)];
    expect(relErr(got, full.logits)).toBeLessThan(5e-3);
    for (let t = 0; t < SEQ.length; t++) expect(argmax(got, t, V)).toBe(argmax(full.logits, t, V));
    expect(a.hidden!.constructor).toBe(Float32Array);
  });
});
