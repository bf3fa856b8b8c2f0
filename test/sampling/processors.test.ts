import { describe, expect, it } from "vitest";
import {
  applyRepetitionPenalty,
  argmax,
  greedyToken,
  toProbabilities,
} from "../../src/sampling/processors.js";
import type { SamplingOptions } from "../../src/sampling/options.js";
import { Rng } from "../../src/sampling/rng.js";

const f32 = (xs: number[]): Float32Array => Float32Array.from(xs);
const logitsOf = (probs: number[]): Float32Array => f32(probs.map(Math.log));
const support = (p: Float32Array): number[] => [...p.keys()].filter((i) => p[i]! > 0);
const sum = (p: Float32Array): number => p.reduce((a, b) => a + b, 0);

/** Straightforward reference: full sorts, float64, HF order. */
function reference(logits: Float32Array, o: SamplingOptions, limit = logits.length): number[] {
  const n = limit;
  const z = Array.from(logits.subarray(0, n), (v) => v / o.temperature!);
  const order = [...z.keys()].sort((a, b) => z[b]! - z[a]! || a - b);
  let keep = new Set(order);
  if (o.topK && o.topK < n) {
    const kth = z[order[o.topK - 1]!]!;
    keep = new Set(order.filter((i) => z[i]! >= kth));
  }
  const zmax = z[order[0]!]!;
  const w = z.map((v, i) => (keep.has(i) ? Math.exp(v - zmax) : 0));
  if (o.topP !== undefined && o.topP < 1) {
    const total = w.reduce((a, b) => a + b, 0);
    let cum = 0;
    for (const i of order) {
      if (!keep.has(i)) continue;
      if (cum < o.topP * total) cum += w[i]!;
      else w[i] = 0;
    }
  }
  if (o.minP) for (let i = 0; i < n; i++) if (w[i]! < o.minP) w[i] = 0;
  const total = w.reduce((a, b) => a + b, 0);
  const out = w.map((v) => v / total);
  while (out.length < logits.length) out.push(0);
  return out;
}

describe("applyRepetitionPenalty", () => {
  it("divides positive and multiplies negative logits, once per distinct token (HF)", () => {
    const l = f32([2, -2, 1, 0.5, 0]);
    applyRepetitionPenalty(l, [0, 1, 1, 3, 3, 3, 4, 99, -1], 2);
    expect(Array.from(l)).toEqual([1, -4, 1, 0.25, 0]);
    const m = f32([3, -1.5]);
    applyRepetitionPenalty(m, [0, 1], 1.5);
    expect(Array.from(m)).toEqual([2, -2.25]);
  });

  it("is a no-op for penalty 1 or no history", () => {
    const l = f32([1, -1]);
    applyRepetitionPenalty(l, [0, 1], 1);
    applyRepetitionPenalty(l, [], 2);
    expect(Array.from(l)).toEqual([1, -1]);
  });
});

describe("argmax / greedyToken", () => {
  it("breaks ties towards the lowest id and ignores NaN", () => {
    expect(argmax(f32([1, 3, 3, 2]))).toBe(1);
    expect(argmax(f32([Number.NaN, 1, Number.NaN, 1]))).toBe(1);
    expect(argmax(f32([-Infinity, -Infinity]))).toBe(0);
  });

  it("works on a row of a [T, V] buffer without copying, and honours vocabLimit", () => {
    const V = 5;
    const buf = f32([0, 9, 0, 0, 0, /* row 1 */ 1, 2, 3, 4, 100, /* row 2 */ 7, 0, 0, 0, 0]);
    expect(argmax(buf, undefined, V, V)).toBe(4);
    expect(argmax(buf, 4, V, V)).toBe(3);
    expect(argmax(buf.subarray(V, 2 * V), 4)).toBe(3);
    expect(argmax(buf, undefined, 2 * V, V)).toBe(0);
    expect(argmax(buf, undefined, 0, V)).toBe(1);
  });

  it("greedyToken applies the repetition penalty like toProbabilities, without copying", () => {
    const l = f32([5, 4, -1, 3]);
    const o = { repetitionPenalty: 2 };
    expect(greedyToken(l, o, [0])).toBe(1); // 5/2 = 2.5 < 4
    expect(greedyToken(l, o, [0, 1])).toBe(3);
    expect(greedyToken(l, {}, [0, 1])).toBe(0);
    expect(Array.from(l)).toEqual([5, 4, -1, 3]);
    const buf = f32([0, 0, 0, 0, 5, 4, -1, 3]);
    expect(greedyToken(buf, o, [0], undefined, 4, 4)).toBe(1);
    expect(greedyToken(buf, o, [0, 1], 3, 4, 4)).toBe(0); // 2.5 vs 2 vs -2
    expect(support(toProbabilities(l, { ...o, temperature: 0 }, [0]))).toEqual([1]);
  });
});

describe("toProbabilities", () => {
  const P = [0.5, 0.3, 0.15, 0.05];

  it("is a one-hot at the (penalized) argmax when greedy", () => {
    expect(Array.from(toProbabilities(f32([1, 3, 3, 2]), {}))).toEqual([0, 1, 0, 0]);
    expect(Array.from(toProbabilities(f32([1, 3, 2]), { temperature: 0, repetitionPenalty: 2 }, [1]))).toEqual([0, 0, 1]);
    expect(Array.from(toProbabilities(f32([1, 3, 2]), { temperature: 1, topK: 1 }))).toEqual([0, 1, 0]);
  });

  it("is the softmax at temperature 1 and sharpens/flattens with temperature", () => {
    const p = toProbabilities(logitsOf(P), { temperature: 1 });
    P.forEach((v, i) => expect(p[i]).toBeCloseTo(v, 6));
    const hot = toProbabilities(logitsOf(P), { temperature: 2 });
    const s = P.map(Math.sqrt).reduce((a, b) => a + b);
    P.forEach((v, i) => expect(hot[i]).toBeCloseTo(Math.sqrt(v) / s, 6));
    const big = toProbabilities(f32([1000, 999, -1000]), { temperature: 1 }); // stable softmax
    expect(big[0]).toBeCloseTo(1 / (1 + Math.exp(-1)), 6);
    expect(big[2]).toBe(0);
  });

  it("top-p keeps exactly the expected nucleus (golden)", () => {
    const l = logitsOf(P);
    expect(support(toProbabilities(l, { temperature: 1, topP: 0.3 }))).toEqual([0]);
    expect(support(toProbabilities(l, { temperature: 1, topP: 0.75 }))).toEqual([0, 1]);
    expect(support(toProbabilities(l, { temperature: 1, topP: 0.85 }))).toEqual([0, 1, 2]);
    expect(support(toProbabilities(l, { temperature: 1, topP: 0.96 }))).toEqual([0, 1, 2, 3]);
    expect(support(toProbabilities(l, { temperature: 1, topP: 1 }))).toEqual([0, 1, 2, 3]);
    const p = toProbabilities(l, { temperature: 1, topP: 0.75 });
    expect(p[0]).toBeCloseTo(0.625, 6);
    expect(p[1]).toBeCloseTo(0.375, 6);
    // Order in the vocabulary does not matter.
    expect(support(toProbabilities(logitsOf([0.05, 0.15, 0.3, 0.5]), { temperature: 1, topP: 0.75 }))).toEqual([2, 3]);
    // A tiny topP still keeps one token.
    expect(support(toProbabilities(l, { temperature: 1, topP: 1e-9 }))).toEqual([0]);
  });

  it("top-k keeps the k best, plus ties with the k-th (HF semantics)", () => {
    expect(support(toProbabilities(logitsOf(P), { temperature: 1, topK: 2 }))).toEqual([0, 1]);
    expect(support(toProbabilities(f32([1, 0, 1, 1]), { temperature: 1, topK: 2 }))).toEqual([0, 2, 3]);
    expect(support(toProbabilities(logitsOf(P), { temperature: 1, topK: 10 }))).toEqual([0, 1, 2, 3]);
    const p = toProbabilities(logitsOf(P), { temperature: 1, topK: 2 });
    expect(p[0]).toBeCloseTo(0.625, 6);
  });

  it("applies top-p after top-k, on the renormalized top-k distribution", () => {
    // After top-3: [0.526, 0.316, 0.158]; mass before the third is 0.842 >= 0.8.
    expect(support(toProbabilities(logitsOf(P), { temperature: 1, topK: 3, topP: 0.8 }))).toEqual([0, 1]);
    // Without top-k the mass before the third is 0.8 ... use 0.81 to stay off the boundary.
    expect(support(toProbabilities(logitsOf(P), { temperature: 1, topP: 0.81 }))).toEqual([0, 1, 2]);
  });

  it("breaks ties towards lower ids in top-p, also with many ties after top-k", () => {
    expect(support(toProbabilities(new Float32Array(10), { temperature: 1, topP: 0.35 }))).toEqual([0, 1, 2, 3]);
    const flat = new Float32Array(1000);
    const p = toProbabilities(flat, { temperature: 1, topK: 5, topP: 0.5 });
    expect(support(p)).toEqual(Array.from({ length: 500 }, (_, i) => i));
    expect(p[0]).toBeCloseTo(1 / 500, 6);
  });

  it("min-p drops tokens below minP x the top probability", () => {
    expect(support(toProbabilities(logitsOf(P), { temperature: 1, minP: 0.35 }))).toEqual([0, 1]);
    expect(support(toProbabilities(logitsOf(P), { temperature: 1, minP: 0.2 }))).toEqual([0, 1, 2]);
    const p = toProbabilities(logitsOf(P), { temperature: 1, minP: 0.35 });
    expect(p[1]).toBeCloseTo(0.375, 6);
  });

  it("gives zero probability at and beyond vocabLimit", () => {
    const l = f32([1, 2, 3, 50, 60]);
    const p = toProbabilities(l, { temperature: 1 }, undefined, 3);
    expect(p[3]).toBe(0);
    expect(p[4]).toBe(0);
    expect(sum(p)).toBeCloseTo(1, 6);
    expect(Array.from(toProbabilities(l, {}, undefined, 3))).toEqual([0, 0, 1, 0, 0]);
  });

  it("leaves the input alone, reuses `out`, and can work in place on a row view", () => {
    const buf = f32([0, 0, 0, 1, 2, 3]);
    const row = buf.subarray(3, 6);
    const out = new Float32Array(3);
    const r = toProbabilities(row, { temperature: 1 }, undefined, undefined, out);
    expect(r).toBe(out);
    expect(Array.from(buf)).toEqual([0, 0, 0, 1, 2, 3]);
    const inPlace = toProbabilities(row, { temperature: 1 }, undefined, undefined, row);
    expect(inPlace).toBe(row);
    expect(Array.from(buf.subarray(0, 3))).toEqual([0, 0, 0]);
    expect(Array.from(inPlace)).toEqual(Array.from(out));
    expect(() => toProbabilities(row, { temperature: 1 }, undefined, undefined, new Float32Array(2))).toThrow(RangeError);
  });

  it("applies the repetition penalty before temperature", () => {
    const p = toProbabilities(f32([2, 1]), { temperature: 0.5, repetitionPenalty: 2 }, [0, 0]);
    // penalized [1, 1] -> /0.5 -> equal
    expect(p[0]).toBeCloseTo(0.5, 6);
  });

  it("treats a temperature too small to divide by as greedy", () => {
    expect(Array.from(toProbabilities(f32([1, 3, 2]), { temperature: 1e-320 }))).toEqual([0, 1, 0]);
    const cold = toProbabilities(f32([1, 3, 2]), { temperature: 1e-3 });
    expect(cold[1]).toBe(1);
  });

  it("never picks NaN logits and survives all-masked rows", () => {
    const p = toProbabilities(f32([Number.NaN, 1, 2]), { temperature: 1 });
    expect(p[0]).toBe(0);
    expect(sum(p)).toBeCloseTo(1, 6);
    expect(Array.from(toProbabilities(f32([-Infinity, -Infinity]), { temperature: 1 }))).toEqual([1, 0]);
  });

  it("matches a full-sort reference on large random rows", () => {
    const rng = new Rng(2024);
    const V = 50_000;
    const cases: SamplingOptions[] = [
      { temperature: 1 },
      { temperature: 0.7, topP: 0.9 },
      { temperature: 1.3, topP: 0.5 },
      { temperature: 1, topK: 40 },
      { temperature: 0.8, topK: 50, topP: 0.9 },
      { temperature: 1, topK: 1000, topP: 0.95, minP: 0.01 },
      { temperature: 1.5, minP: 0.05 },
      { temperature: 1, topP: 0.99 },
    ];
    for (let trial = 0; trial < 3; trial++) {
      const l = new Float32Array(V);
      // Peaked like an LLM: a few big logits on a noisy floor, plus exact ties.
      for (let i = 0; i < V; i++) l[i] = (rng.next() - 0.5) * 8;
      for (let j = 0; j < 30; j++) l[Math.floor(rng.next() * V)] = 8 + rng.next() * 6;
      l[10] = l[20] = 11;
      for (const o of cases) {
        const got = toProbabilities(l, o, undefined, V - 7);
        const want = reference(l, o, V - 7);
        const gs = support(got);
        const ws = want.flatMap((v, i) => (v > 0 ? [i] : []));
        expect(gs.length).toBe(ws.length);
        expect(gs).toEqual(ws);
        for (const i of ws.slice(0, 50)) expect(got[i]).toBeCloseTo(want[i]!, 5);
        expect(sum(got)).toBeCloseTo(1, 4);
      }
    }
  });
});
