import { describe, expect, it } from "vitest";
import * as ort from "onnxruntime-node";
import { KVCache } from "../../src/engine/kv-cache.js";

/** A cache whose entry at (head h, position p, dim d) is h*1000 + p*10 + d. */
function filled(kvHeads: number, len: number, headDim: number, dtype: "float32" | "float16" = "float32"): KVCache {
  const c = new KVCache({ numLayers: 2, kvHeads, headDim, dtype });
  const make = (bias: number) => {
    const data = dtype === "float32" ? new Float32Array(kvHeads * len * headDim) : new Uint16Array(kvHeads * len * headDim);
    for (let h = 0; h < kvHeads; h++)
      for (let p = 0; p < len; p++) for (let d = 0; d < headDim; d++) data[(h * len + p) * headDim + d] = bias + h * 1000 + p * 10 + d;
    return new ort.Tensor(dtype, data, [1, kvHeads, len, headDim]);
  };
  c.update([make(0), make(0)], [make(5), make(5)]);
  return c;
}

function positionsOf(t: ort.Tensor, kvHeads: number, headDim: number, bias = 0): number[][] {
  const len = t.dims[2]!;
  const data = t.data as Float32Array;
  return Array.from({ length: kvHeads }, (_, h) =>
    Array.from({ length: len }, (_, p) => (data[(h * len + p) * headDim]! - bias - h * 1000) / 10),
  );
}

describe("KVCache", () => {
  it("starts empty with zero-length tensors of the right shape", () => {
    const c = new KVCache({ numLayers: 3, kvHeads: 2, headDim: 4, dtype: "float32" });
    expect(c.length).toBe(0);
    expect(c.key(2).dims).toEqual([1, 2, 0, 4]);
    expect(c.value(0).type).toBe("float32");
  });

  it("crops every layer's keys and values to an earlier length", () => {
    const c = filled(2, 6, 3);
    c.crop(4);
    expect(c.length).toBe(4);
    expect(c.key(1).dims).toEqual([1, 2, 4, 3]);
    expect(positionsOf(c.key(0), 2, 3)).toEqual([[0, 1, 2, 3], [0, 1, 2, 3]]);
    expect(positionsOf(c.value(1), 2, 3, 5)).toEqual([[0, 1, 2, 3], [0, 1, 2, 3]]);
  });

  it("gathers an accepted tree path after the prefix", () => {
    const c = filled(2, 8, 2);
    // prefix of 3, new tokens at 3..7; keep new offsets 0, 2, 4 -> positions 3, 5, 7
    c.gather(3, [0, 2, 4]);
    expect(c.length).toBe(6);
    expect(positionsOf(c.key(0), 2, 2)).toEqual([[0, 1, 2, 3, 5, 7], [0, 1, 2, 3, 5, 7]]);
    // dims inside a position are preserved
    const d = c.key(0).data as Float32Array;
    expect(Array.from(d.subarray(8, 10))).toEqual([50, 51]);
  });

  it("gathering a contiguous prefix is a crop", () => {
    const c = filled(1, 5, 2);
    c.gather(2, [0, 1]);
    expect(positionsOf(c.key(0), 1, 2)).toEqual([[0, 1, 2, 3]]);
  });

  it("works on float16 (Uint16Array) storage", () => {
    const c = filled(2, 4, 2, "float16");
    c.gather(1, [1, 2]);
    const d = c.key(0).data as Uint16Array;
    expect(d).toBeInstanceOf(Uint16Array);
    expect(c.length).toBe(3);
    expect(Array.from(d.subarray(0, 6))).toEqual([0, 1, 20, 21, 30, 31]);
  });

  it("rejects crops beyond its length and clones independently", () => {
    const c = filled(1, 3, 1);
    expect(() => c.crop(4)).toThrow(RangeError);
    const k = c.clone();
    c.crop(1);
    expect(k.length).toBe(3);
  });
});
