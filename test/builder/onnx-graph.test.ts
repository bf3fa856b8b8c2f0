import { readdirSync, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { GraphBuilder, attr } from "../../src/builder/onnx-graph.js";
import { f16BitsToF32, f32ToF16Bits, f32ToBf16Bits } from "../../src/util/half.js";

const dir = mkdtempSync(join(tmpdir(), "sd-graph-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tinyGraph(externalData: "never" | "always", path: string): void {
  const g = new GraphBuilder({ externalData, modelPath: path });
  const x = g.input("x", "float32", ["batch", 512]);
  const w = g.initializer("w", "float32", [512], Float32Array.from({ length: 512 }, (_, i) => i / 10));
  const y = g.op("Mul", [g.op("Add", [x, w]), g.constFloat(2)]);
  // Bool Tile + Where, as the decoder's mask uses them.
  const m = g.op("Cast", [g.input("m", "uint8", ["batch", 2])], { to: 9 });
  const mt = g.op("Tile", [m, g.constInt64([1, 256])]);
  const z = g.op("Where", [mt, y, g.constFloat(-1e9)]);
  g.output("y", "float32", ["batch", 512], z);
  g.output("s", "float32", [], g.op("ReduceSum", [z], { keepdims: 0 }));
  g.node("Constant", [], { value: attr.tensor("float32", [1], [1.5]) }, ["c"]);
  g.output("c", "float32", [1]);
  g.setMetadata("k", "v");
  g.save(path);
}

describe("GraphBuilder", () => {
  for (const mode of ["never", "always"] as const) {
    it(`writes a model onnxruntime loads (external data: ${mode})`, async () => {
      const path = join(dir, `m_${mode}.onnx`);
      tinyGraph(mode, path);
      expect(existsSync(`${path}_data`)).toBe(mode === "always");
      if (mode === "always") expect(statSync(path).size).toBeLessThan(2048);
      const s = await ort.InferenceSession.create(path);
      const x = new ort.Tensor("float32", new Float32Array(512).fill(1), [1, 512]);
      const m = new ort.Tensor("uint8", Uint8Array.from([1, 0]), [1, 2]);
      const out = await s.run({ x, m });
      const y = out.y!.data as Float32Array;
      expect(y[0]).toBeCloseTo(2, 5);
      expect(y[2]).toBeCloseTo(2.4, 5); // Tile repeats [m0, m1] -> even positions kept
      expect(y[1]).toBe(-1e9);
      expect((out.s!.data as Float32Array)[0]).toBeLessThan(-1e11);
      expect((out.c!.data as Float32Array)[0]).toBe(1.5);
      await s.release();
    });
  }
});

describe("GraphBuilder external data threshold", () => {
  it("moves tensors out once the inline total passes the threshold, and loads", async () => {
    const path = join(dir, "spill", "m.onnx");
    const g = new GraphBuilder({ modelPath: path, externalDataThreshold: 10_000 });
    let x = g.input("x", "float32", [1, 1000]);
    for (let i = 0; i < 5; i++) {
      const w = g.initializer(`w${i}`, "float32", [1000], new Float32Array(1000).fill(i + 1)); // 4000 bytes each
      x = g.op("Add", [x, w]);
    }
    const small = g.initializer("small", "float32", [2], Float32Array.of(0.5, 0.25));
    g.output("y", "float32", [1, 1000], g.op("Add", [x, g.op("ReduceSum", [small], { keepdims: 1 })]));
    g.save(path);
    expect(existsSync(`${path}_data`)).toBe(true);
    expect(statSync(`${path}_data`).size).toBeGreaterThanOrEqual(5 * 4000);
    const s = await ort.InferenceSession.create(path);
    const out = await s.run({ x: new ort.Tensor("float32", new Float32Array(1000), [1, 1000]) });
    expect((out.y!.data as Float32Array)[999]).toBeCloseTo(15.75, 5);
    await s.release();
  });

  it("dispose() removes an unsaved spill file", () => {
    const path = join(dir, "abandoned.onnx");
    const g = new GraphBuilder({ modelPath: path, externalData: "always" });
    g.initializer("w", "float32", [1000], new Float32Array(1000));
    // Spilled to a temporary file beside the model, never over a live abandoned.onnx_data.
    const spills = () => readdirSync(dir).filter((f) => f.startsWith(".abandoned.onnx_data.tmp-"));
    expect(spills()).toHaveLength(1);
    expect(existsSync(`${path}_data`)).toBe(false);
    g.dispose();
    expect(spills()).toHaveLength(0);
  });
});

describe("half conversions", () => {
  it("round-trips and rounds to nearest even", () => {
    for (const v of [0, 1, -2.5, 65504, 6.1035156e-5, 5.96e-8, 0.1, 1000.3]) {
      expect(Math.abs(f16BitsToF32(f32ToF16Bits(v)) - v)).toBeLessThanOrEqual(Math.max(Math.abs(v) * 2 ** -11, 2 ** -25));
    }
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie -> even
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f32ToF16Bits(1e6)).toBe(0x7c00);
    expect(f32ToF16Bits(2 ** -25)).toBe(0); // tie -> even (0)
    expect(f32ToF16Bits(2 ** -24)).toBe(1);
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    expect(f32ToBf16Bits(-2)).toBe(0xc000);
  });
});
