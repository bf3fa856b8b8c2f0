/** EAGLE's tree size from measured verification cost (treeTotal auto). */
import { describe, expect, it } from "vitest";
import { DepthSum, EagleBudget } from "../../src/decoding/eagle-budget.js";

/** Time `rounds` rounds of each size with verification costing `ms(T)` and the head predicting `scores`. */
function feed(b: EagleBudget, ms: (T: number) => number, sizes: number[]): void {
  for (const n of sizes) b.observe(n, ms(n + 1), 0, 0);
}

describe("EagleBudget", () => {
  it("probes a spread of sizes first, then needs two timed sizes", () => {
    const b = new EagleBudget(64);
    const scores = Array.from({ length: 100 }, () => Math.log(0.5));
    const probes = [0, 1, 2, 3].map(() => b.choose(scores, 1, 100));
    expect(probes).toEqual([64, 32, 16, 8]);
    // Nothing timed yet: it keeps probing.
    expect(b.choose(scores, 1, 100)).toBe(64);
    expect(b.verifyMs(1)).toBeUndefined();
  });

  it("verifies every useful node when verification cost is flat, fewer when it is steep", () => {
    // Path probabilities 0.9, 0.8, ... : each extra node adds less expected acceptance.
    const scores = Array.from({ length: 64 }, (_, i) => Math.log(Math.max(1e-4, 0.9 - i * 0.02)));
    const flat = new EagleBudget(64);
    for (let i = 0; i < 4; i++) flat.choose(scores, 1, 64);
    feed(flat, () => 10, [64, 32, 16, 8, 64, 32, 16, 8]);
    expect(flat.verifyMs(65)).toBeCloseTo(10, 6);
    expect(flat.choose(scores, 1, 64)).toBe(64);

    // Steep: 1 ms per verified token on top of 2 ms.
    const steep = new EagleBudget(64);
    for (let i = 0; i < 4; i++) steep.choose(scores, 1, 64);
    feed(steep, (T) => 2 + T, [64, 32, 16, 8]);
    const T = steep.choose(scores, 1, 64);
    // The chosen T maximises (1 + sum p) / (draft + 2 + (T + 1)) under the same model.
    const rate = (t: number) => (1 + scores.slice(0, t).reduce((s, x) => s + Math.exp(x), 0)) / (1 + 2 + t + 1);
    const best = Array.from({ length: 64 }, (_, i) => i + 1).reduce((a, t) => (rate(t) > rate(a) ? t : a), 1);
    expect(T).toBe(best);
    expect(T).toBeGreaterThan(1);
    expect(T).toBeLessThan(64);
    expect(steep.verifyCurve([1, 2, 4])).toEqual([1, 1.333, 2]);
  });

  it("verifies more nodes when a round's fixed head work (drafting + committing the last round) costs more", () => {
    // eagle.ts passes drafting ms + the last observe()'s head run: leaving the commit out makes
    // every verified node look dearer relative to the round and the tree smaller than it should be.
    const scores = Array.from({ length: 64 }, (_, i) => Math.log(Math.max(1e-4, 0.5 - i * 0.007)));
    const chosen = (roundMs: number) => {
      const b = new EagleBudget(64);
      for (let i = 0; i < 4; i++) b.choose(scores, roundMs, 64);
      feed(b, (T) => 0.3 + 0.02 * T, [64, 32, 16, 8]);
      return b.choose(scores, roundMs, 64);
    };
    const draftOnly = chosen(1.5);
    const withCommit = chosen(2.0);
    expect(withCommit).toBeGreaterThan(draftOnly);
    expect(chosen(1e6)).toBe(64); // verification negligible against the round: every node
  });

  it("calibrates the head's confidence against accepted tokens, within bounds, and respects the cap", () => {
    const b = new EagleBudget(16);
    expect(b.calibration()).toBe(1);
    for (let i = 0; i < 20; i++) b.observe(8, 5, 4, 1); // predicted 4 accepted, 1 accepted
    expect(b.calibration()).toBeCloseTo(0.25, 6);
    for (let i = 0; i < 200; i++) b.observe(8, 5, 0.1, 8);
    expect(b.calibration()).toBe(4);
    const scores = Array.from({ length: 40 }, () => 0);
    expect(b.choose(scores, 1, 5)).toBeLessThanOrEqual(5);
    expect(b.choose(scores.slice(0, 1), 1, 5)).toBe(1);
    expect(b.meanTotal()).toBeGreaterThan(0);
  });

  it("calibrates per draft depth: an under-confident head's deep nodes count for what they accept", () => {
    const b = new EagleBudget(16);
    // Head confidence 0.3 per step, but every round accepts 4 deep: depth d predicted 0.3^d, observed 1.
    const at = [0.3, 0.09, 0.027, 0.0081];
    for (let i = 0; i < 40; i++) b.observe(4, 5, at.reduce((a, x) => a + x, 0), 4, at);
    expect(b.calibrationAt(1)).toBeCloseTo(1 / 0.3, 6);
    expect(b.calibrationAt(3)).toBeCloseTo(1 / 0.027, 6);
    expect(b.calibrationAt(4)).toBeCloseTo(1 / 0.0081, 3);
    expect(b.calibrationAt(9)).toBe(b.calibrationAt(4)); // never verified: the deepest measured depth's factor
    expect(new EagleBudget(4).calibrationAt(3)).toBe(1); // nothing measured: the overall factor
    for (let i = 0; i < 4; i++) b.choose([0], 1, 16);
    b.observe(1, 4, 0, 0);
    b.observe(8, 4.5, 0, 0);
    // Flat-ish verification: with depth calibration all four chain nodes pay; with one factor not all.
    const scores = at.map(Math.log);
    expect(b.choose(scores, 1, 16, 0, [1, 2, 3, 4])).toBe(4);
  });

  it("the nodes of one depth add at most one expected token together", () => {
    const s = new DepthSum();
    expect(s.add(1, 0.7)).toBeCloseTo(0.7, 9);
    expect(s.add(1, 0.7)).toBeCloseTo(0.3, 9);
    expect(s.add(1, 0.7)).toBe(0);
    expect(s.add(2, 0.5)).toBeCloseTo(0.5, 9);
  });
});
