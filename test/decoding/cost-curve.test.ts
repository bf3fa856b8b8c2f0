/** The cost controller prices K with the measured verify cost curve v(T)/v(1) of the target that runs. */
import { describe, expect, it } from "vitest";
import { CostController } from "../../src/decoding/controllers.js";

function feed(c: CostController, targetMs: (T: number) => number, accepted: (k: number) => number, rounds = 40): void {
  for (let i = 0; i < rounds; i++) {
    const k = 1 + (i % 8); // visit every K so every T is measured
    c.update({ drafted: k, accepted: Math.min(k, accepted(k)), draftForwards: k, draftMs: k * 0.5, targetMs: targetMs(k + 1) });
  }
  c.update({ drafted: 0, accepted: 0, draftForwards: 0, draftMs: 0, targetMs: targetMs(1) });
}

describe("cost controller with a measured verify cost curve", () => {
  it("fits v(T)/v(1) from the timings and keeps it flat for a flat target", () => {
    const steep = new CostController(8);
    feed(steep, (T) => 2 + 10 * T, () => 8);
    expect(steep.verifyCost(1)).toBeCloseTo(1, 5);
    expect(steep.verifyCost(9)).toBeCloseTo(92 / 12, 3);
    expect(steep.verifyCurve()).toHaveLength(9);
    const flat = new CostController(8);
    feed(flat, () => 12, () => 8);
    expect(flat.verifyCost(9)).toBeCloseTo(1, 5);
    expect(flat.summary().verifyCost).toEqual(Array(9).fill(1));
  });

  it("picks a smaller K when verifying more tokens costs more (int4-like), the largest when it is flat", () => {
    // Each drafted token is right with probability 0.8 (a seeded sequence): alpha ~ 0.8.
    let x = 12345;
    const acc = (k: number) => {
      let n = 0;
      while (n < k) {
        x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
        if (x / 2 ** 32 >= 0.8) break;
        n++;
      }
      return n;
    };
    const flat = new CostController(8);
    feed(flat, () => 12, acc, 80);
    const steep = new CostController(8);
    feed(steep, (T) => 4 + 8 * T, acc, 80);
    const kFlat = flat.nextK();
    const kSteep = steep.nextK();
    expect(kFlat).toBeGreaterThanOrEqual(5);
    expect(kSteep).toBeLessThanOrEqual(2);
    expect(kSteep).toBeLessThan(kFlat);
    // And the predicted speedup at large K is lower under the steep curve.
    expect(steep.predicted()[8]!).toBeLessThan(flat.predicted()[8]!);
  });
});
