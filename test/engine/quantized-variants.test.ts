/**
 * onnx-community's quantized variant names load and decode, `variant` picks them, and the model
 * description reports each one's weight format and weight bytes per token (read from the graph).
 * Each file is built by our builder in the representation that name stands for:
 *   model_q4.onnx    MatMulNBits 4-bit            model_q4f16.onnx  the same with float16 io
 *   model_int8.onnx  MatMulNBits 8-bit            model_uint8.onnx  DynamicQuantizeLinear + MatMulInteger
 *   model_bnb4.onnx  MatMulBnb4 (NF4)
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SpecEngine } from "../../src/api.js";
import { buildModelDir, type QuantizeOptions } from "../../src/builder/index.js";
import { describeModel } from "../../src/decoding/capabilities.js";
import { inspectModelDir } from "../../src/engine/model-dir.js";
import { readWeightFormat } from "../../src/engine/weight-format.js";
import { fixture } from "../helpers/fixtures.js";

const OPTS = { layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 4 } as const;
const VARIANTS: { variant: string; file: string; q: QuantizeOptions; io?: "float16"; format: RegExp }[] = [
  { variant: "q4", file: "model_q4.onnx", q: { kind: "int4", lmHead: true }, format: /^int4 \(MatMulNBits, block 32\)/ },
  { variant: "q4f16", file: "model_q4f16.onnx", q: { kind: "int4", lmHead: true }, io: "float16", format: /^int4 \(MatMulNBits, block 32\)/ },
  { variant: "int8", file: "model_int8.onnx", q: { kind: "int8", lmHead: true, blockSize: 64 }, format: /^int8 \(MatMulNBits, block 64\)/ },
  { variant: "uint8", file: "model_uint8.onnx", q: { kind: "uint8", lmHead: true }, format: /^uint8 \(MatMulInteger\)/ },
  { variant: "bnb4", file: "model_bnb4.onnx", q: { kind: "bnb4", lmHead: true, blockSize: 64 }, format: /^nf4 \(MatMulBnb4, block 64\)/ },
];

describe("onnx-community quantized variants", () => {
  const engine = new SpecEngine();
  let dir: string;
  let q4only: string;
  beforeAll(async () => {
    dir = await fixture({ ...OPTS });
    for (const v of VARIANTS) await buildModelDir(dir, { quantize: v.q, ioDtype: v.io });
    q4only = await fixture({ ...OPTS, quantize: { kind: "int4" } });
  });
  afterAll(() => engine.dispose());

  it("the float model stays the default; the variants are listed beside it", () => {
    const info = inspectModelDir(dir);
    expect(info.modelFile).toBe(join(dir, "onnx", "model.onnx"));
    for (const v of VARIANTS) expect(info.otherOnnxFiles).toContain(join(dir, "onnx", v.file));
    // A directory holding only a quantized build loads it without a variant.
    expect(inspectModelDir(q4only).modelFile).toBe(join(q4only, "onnx", "model_q4.onnx"));
  });

  const floatBytes = () => readWeightFormat(join(dir, "onnx", "model.onnx")).bytesPerToken;

  for (const v of VARIANTS) {
    for (const name of [v.variant, v.file]) {
      it(`variant "${name}" loads ${v.file}, decodes, and reports its weight format`, async () => {
        expect(inspectModelDir(dir, { variant: name }).modelFile).toBe(join(dir, "onnx", v.file));
        const res = await engine.generate({ model: dir, variant: name, promptIds: [1, 17, 93, 200], maxNewTokens: 12 });
        expect(res.tokens.length).toBe(12);
        const m = await engine.store.load(dir, { variant: name });
        expect(m.lm.info.file).toBe(join(dir, "onnx", v.file));
        const d = describeModel(m.lm);
        expect(d.weightFormat).toMatch(v.format);
        // 4-bit streams well under a quarter of the float bytes plus the float norms; 8-bit about a quarter + scales.
        expect(d.weightBytesPerToken).toBeGreaterThan(0);
        expect(d.weightBytesPerToken).toBeLessThan(floatBytes() * (v.q.kind === "int8" || v.q.kind === "uint8" ? 0.35 : 0.2));
        if (v.io) expect(m.lm.info.kvDtype).toBe("float16");
      });
    }
  }

  it("the float model reports float32 weights, all of them streamed but the embedding and RoPE rows", () => {
    const w = readWeightFormat(join(dir, "onnx", "model.onnx"));
    expect(w.format).toMatch(/^float32/);
    // Untied fixture: embedding 320x64 is gathered (one row), lm_head 320x64 streamed.
    const H = 64;
    const I = 128;
    const layer = H * (H + 2 * 32) + H * H + 3 * H * I + 2 * H; // qkv (2 kv heads x 16), o, mlp, norms
    const expected = 4 * (2 * layer + H + 320 * H + H); // layers + final norm + lm_head + one embedding row
    expect(Math.abs(w.bytesPerToken - expected) / expected).toBeLessThan(0.02); // + a RoPE row and small constants
  });

  it("an unknown variant names the files that exist", () => {
    expect(() => inspectModelDir(dir, { variant: "q3" })).toThrow(/model_q4\.onnx/);
  });
});
