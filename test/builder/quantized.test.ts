import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import onnxProto from "onnx-proto";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import {
  dequantizeMatrix,
  makeFixture,
  openSafetensorsDir,
  quantizeMatrix,
  referenceLogits,
  type QuantizeOptions,
} from "../../src/builder/index.js";
import { readOnnxMetadataProps } from "../../src/engine/onnx-file.js";
import { InvalidOptionError } from "../../src/errors.js";
import { quantizeFromArgs, resolveQuantize } from "../../src/builder/quantize.js";
import { argmax, expectRowConsistent, relErr, run } from "./helpers.js";

const root = mkdtempSync(join(tmpdir(), "sd-quant-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const TOKENS = [1, 17, 250, 3, 99, 42, 7, 300, 150, 64, 12];

describe("block quantization (Q4_0 / Q8_0 numerics)", () => {
  it("int4: codes use d = m / -8 with the largest-magnitude value m, scales are float16 values", () => {
    // One block of 32: the largest magnitude is -2 (so d = 0.25) and x = 0.3 -> trunc(0.3/0.25 + 8.5) = 9.
    const w = new Float32Array(32);
    w[0] = -2;
    w[1] = 0.3;
    w[2] = 1.75;
    const q = quantizeMatrix(w, 1, 32, 4, 32);
    expect(q.packed.length).toBe(16);
    expect(q.scales[0]).toBe(0.25);
    expect(q.packed[0]! & 15).toBe(0); // -2 / 0.25 + 8.5 = 0.5 -> 0
    expect(q.packed[0]! >> 4).toBe(9);
    expect(q.packed[1]! & 15).toBe(15); // 1.75 / 0.25 + 8.5 = 15.5 -> 15 (clamped)
    const dq = dequantizeMatrix(q);
    expect([dq[0], dq[1], dq[2], dq[3]]).toEqual([-2, 0.25, 1.75, 0]);
  });

  it("int8 and int4, any block size: dequantized values within a step (+ float16 rounding of d)", () => {
    const N = 5;
    const K = 80; // not a multiple of the block: the last block is padded with zero codes
    const w = new Float32Array(N * K).map((_, i) => Math.sin(i * 1.3) * (1 + (i % 7)));
    for (const [bits, bs] of [[8, 32], [4, 64], [8, 128]] as const) {
      const q = quantizeMatrix(w, N, K, bits, bs);
      expect(q.nBlocks).toBe(Math.ceil(K / bs));
      const dq = dequantizeMatrix(q);
      for (let n = 0; n < N; n++) {
        for (let k = 0; k < K; k++) {
          const s = q.scales[n * q.nBlocks + Math.floor(k / bs)]!;
          // Half a step (int8; int4: a full step at the clamped end, code 15 = 7 steps while the
          // opposite extreme is 8 steps), plus the float16 rounding of d (codes use the exact d, like
          // llama.cpp): at most 2^-11 * 128 steps.
          const steps = bits === 4 ? 1 : 0.5;
          expect(Math.abs(dq[n * K + k]! - w[n * K + k]!)).toBeLessThanOrEqual(Math.abs(s) * (steps + 128 / 2048) * 1.001);
        }
      }
    }
  });

  it("reads surface arguments in the surface's words (CLI flags, MCP fields)", () => {
    expect(quantizeFromArgs({}, "cli")).toBeUndefined();
    expect(() => quantizeFromArgs({ blockSize: "64" }, "cli")).toThrow(/--block-size only applies with --quantize/);
    expect(() => quantizeFromArgs({ lmHead: true }, "api")).toThrow(/quantizeLmHead only applies with quantize/);
    expect(() => quantizeFromArgs({ quantize: "int4", blockSize: "48" }, "cli")).toThrow(/--block-size must be 32, 64 or 128/);
    expect(() => quantizeFromArgs({ quantize: "int4", accuracyLevel: 3 }, "api")).toThrow(/accuracyLevel must be 0, 1, 2 or 4/);
    expect(() => quantizeFromArgs({ quantize: "uint8", embeddings: true }, "api")).toThrow(/Quantized embeddings need quantize int4 or int8/);
    expect(quantizeFromArgs({ quantize: "int8", blockSize: "64", accuracyLevel: "0", lmHead: true }, "cli")).toEqual({
      kind: "int8",
      blockSize: 64,
      accuracyLevel: 0,
      lmHead: true,
      embeddings: false,
    });
  });

  it("rejects bad options with the option's name", () => {
    expect(() => resolveQuantize({ kind: "int3" as "int4" })).toThrow(InvalidOptionError);
    expect(() => resolveQuantize({ kind: "int4", blockSize: 48 as 32 })).toThrow(/blockSize must be 32, 64 or 128/);
    expect(() => resolveQuantize({ kind: "int4", accuracyLevel: 3 as 4 })).toThrow(/accuracyLevel must be 0, 1, 2 or 4/);
  });
});

describe("quantized decoder graphs vs the dequantize-then-compute float64 reference", () => {
  const cases: { name: string; opts: Parameters<typeof makeFixture>[0] extends infer O ? Omit<O & object, "out"> : never; q: QuantizeOptions; file: string }[] = [
    { name: "llama int4 acc0", opts: { arch: "llama" }, q: { kind: "int4", accuracyLevel: 0 }, file: "model_q4.onnx" },
    { name: "llama int8 acc0 block64 lm_head", opts: { arch: "llama" }, q: { kind: "int8", accuracyLevel: 0, blockSize: 64, lmHead: true }, file: "model_int8.onnx" },
    { name: "llama tied int4 acc0 lm_head embeddings", opts: { arch: "llama", tieEmbeddings: true, kvHeads: 4 }, q: { kind: "int4", accuracyLevel: 0, lmHead: true, embeddings: true }, file: "model_q4.onnx" },
    { name: "qwen2 int4 acc0 block128", opts: { arch: "qwen2" }, q: { kind: "int4", accuracyLevel: 0, blockSize: 128 }, file: "model_q4.onnx" },
    { name: "qwen3 int8 acc0 embeddings", opts: { arch: "qwen3", tieEmbeddings: true, kvHeads: 1 }, q: { kind: "int8", accuracyLevel: 0, embeddings: true }, file: "model_int8.onnx" },
    { name: "llama int4 acc4 (int8 activations)", opts: { arch: "llama" }, q: { kind: "int4", lmHead: true }, file: "model_q4.onnx" },
    { name: "llama int8 acc4 (int8 activations)", opts: { arch: "llama" }, q: { kind: "int8", lmHead: true }, file: "model_int8.onnx" },
    // MatMulBnb4 computes the dequantized NF4 weights in float: exact like level 0.
    { name: "qwen2 bnb4 (MatMulBnb4 nf4)", opts: { arch: "qwen2" }, q: { kind: "bnb4", blockSize: 64, accuracyLevel: 0, lmHead: true }, file: "model_bnb4.onnx" },
    // MatMulInteger quantizes the activations per tensor (DynamicQuantizeLinear): loose like level 4.
    { name: "llama uint8 (MatMulInteger, dynamic activations)", opts: { arch: "llama" }, q: { kind: "uint8", lmHead: true }, file: "model_uint8.onnx" },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const { dir, config } = await makeFixture({ out: join(root, c.name.replace(/\W+/g, "_")), ...c.opts, quantize: c.q });
      const file = join(dir, "onnx", c.file);
      const s = await ort.InferenceSession.create(file);
      const { logits } = await run(s, config, config.numLayers, TOKENS);
      await s.release();
      const weights = openSafetensorsDir(dir);
      const ref = referenceLogits(config, weights, TOKENS, { quantize: c.q });
      const float = referenceLogits(config, weights, TOKENS);
      const acc = c.q.accuracyLevel ?? 4;
      const err = relErr(logits as Float32Array, ref);
      const op = { int4: "MatMulNBits", int8: "MatMulNBits", bnb4: "MatMulBnb4", uint8: "MatMulInteger" }[c.q.kind];
      // Level 0: the graph computes the dequantized weights in float32, like the fp32 graphs (1e-4).
      // Level 4 also quantizes the activations to int8 per block, which the reference does not model.
      expect(err).toBeLessThan(acc === 0 ? 1e-4 : 3e-2);
      // The quantized model is a different model: it is measurably away from the float one ...
      expect(relErr(ref, float)).toBeGreaterThan(acc === 0 ? 1e-3 : 0);
      // ... and the graph's greedy tokens are the reference's: every row at level 0; at level 4 every
      // row whose reference top-1/top-2 gap is above twice the largest logit error (int8 activations
      // move logits by up to that much), and that must be most rows.
      const V = config.vocabSize;
      let maxAbs = 0;
      for (let i = 0; i < ref.length; i++) maxAbs = Math.max(maxAbs, Math.abs((logits as Float32Array)[i]! - ref[i]!));
      let checked = 0;
      for (let t = 0; t < TOKENS.length; t++) {
        const row = Array.from(ref.subarray(t * V, (t + 1) * V)).sort((a, b) => b - a);
        if (acc !== 0 && row[0]! - row[1]! <= 2 * maxAbs) continue;
        expect(argmax(logits as Float32Array, t, V)).toBe(argmax(ref, t, V));
        checked++;
      }
      expect(checked).toBeGreaterThanOrEqual(acc === 0 ? TOKENS.length : Math.ceil(TOKENS.length / 2));
      // The contrib ops are imported properly: an opset_import entry for com.microsoft and node domains.
      const model = onnxProto.onnx.ModelProto.decode(readFileSync(file));
      const domains = model.opsetImport.map((o) => [o.domain, Number(o.version)]);
      // (The uint8 graph is standard ONNX only in the "ops" form; the fused form's attention is a contrib op.)
      const fusedForm = readOnnxMetadataProps(file)["spec_decode.graph_form"] === "fused";
      expect(domains).toEqual(op === "MatMulInteger" && !fusedForm ? [["", 17]] : [["", 17], ["com.microsoft", 1]]);
      const nodes = model.graph?.node ?? [];
      const ms = nodes.filter((n) => n.domain === "com.microsoft");
      const linear = op === "MatMulInteger" ? nodes.filter((n) => n.opType === op) : ms.filter((n) => n.opType === op);
      expect(linear.length).toBe(4 * config.numLayers + (c.q.lmHead ? 1 : 0));
      expect(ms.filter((n) => n.opType === "GatherBlockQuantized").length).toBe(c.q.embeddings ? 1 : 0);
      expect(nodes.filter((n) => n.opType === "MatMulNBits" && n.domain !== "com.microsoft")).toEqual([]);
      expect(readOnnxMetadataProps(file)).toMatchObject({ "spec_decode.quantize": c.q.kind, "spec_decode.quantize_accuracy_level": String(acc) });
    });
  }

  // q/k/v are one MatMulNBits (N = q + 2 kv rows, then Split) and gate/up another (the node count
  // above); what speculation needs is that a token's logits do not depend on how many tokens the
  // forward carries. int8 at level 4 (the default) is bitwise row-consistent; int4 at level 4 and
  // both kinds at level 0 (dequantize, then a float GEMV for one row and a GEMM for several) differ
  // in the last bits (quantization.md, "Exactness"), so they are not in this list.
  for (const q of [
    { kind: "int8", lmHead: true },
    { kind: "int8", lmHead: true, blockSize: 64 },
  ] as QuantizeOptions[]) {
    it(`${q.kind} level ${q.accuracyLevel ?? 4} block ${q.blockSize ?? 32}: a token's logits are bitwise the same in a one-token and a multi-token forward`, async () => {
      const { dir, config } = await makeFixture({ out: join(root, `rows-${q.kind}-${q.blockSize ?? 32}`), arch: "llama", quantize: q });
      const s = await ort.InferenceSession.create(join(dir, "onnx", q.kind === "int8" ? "model_int8.onnx" : "model_q4.onnx"));
      await expectRowConsistent(s, config, TOKENS);
      await s.release();
    });
  }

  it("quantized early-exit graphs match the reference with numLayers m", async () => {
    const q: QuantizeOptions = { kind: "int4", accuracyLevel: 0, lmHead: true };
    const { dir, config } = await makeFixture({ out: join(root, "ee"), layers: 3, earlyExit: [1], quantize: q });
    const s = await ort.InferenceSession.create(join(dir, "onnx", "early_exit_1_q4.onnx"));
    const { logits } = await run(s, config, 1, TOKENS);
    await s.release();
    const ref = referenceLogits(config, openSafetensorsDir(dir), TOKENS, { numLayers: 1, quantize: q });
    expect(relErr(logits as Float32Array, ref)).toBeLessThan(1e-4);
  });

  it("float16 io with int4 weights writes model_q4f16.onnx", async () => {
    const q: QuantizeOptions = { kind: "int4", accuracyLevel: 0 };
    const { dir, config } = await makeFixture({ out: join(root, "q4f16"), ioDtype: "float16", quantize: q });
    const s = await ort.InferenceSession.create(join(dir, "onnx", "model_q4f16.onnx"));
    expect(s.inputNames).toContain("past_key_values.0.key");
    await s.release();
    expect(config.numLayers).toBe(2);
  });

  it("the embedding needs hidden to be a multiple of the block size", async () => {
    await expect(makeFixture({ out: join(root, "bad"), hidden: 48, heads: 4, quantize: { kind: "int4", embeddings: true } })).rejects.toThrow(/multiple of the block size/);
  });
});
