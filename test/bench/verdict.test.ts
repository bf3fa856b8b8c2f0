import { describe, expect, it } from "vitest";
import { speedupVerdict } from "../../src/bench/verdict.js";
import { summarizeRatios } from "../../src/bench/statistics.js";
import { tuneRecommendation } from "../../src/bench/tune.js";

describe("speedupVerdict", () => {
  it("reads the 95% interval against 1", () => {
    expect(speedupVerdict({ mean: 1.5, low: 1.2, high: 1.9, n: 6 }).verdict).toBe("speculation helps here");
    expect(speedupVerdict({ mean: 0.8, low: 0.7, high: 0.9, n: 6 }).verdict).toBe("use plain decoding");
    expect(speedupVerdict({ mean: 1.3, low: 0.9, high: 1.8, n: 6 }).verdict).toBe("no clear gain");
    expect(speedupVerdict({ mean: 0.7, low: 0.4, high: 1.01, n: 6 }).verdict).toBe("no clear gain");
    // One paired run: no interval, so no claim either way.
    const one = speedupVerdict({ mean: 3, low: null, high: null, n: 1 });
    expect(one.verdict).toBe("no clear gain");
    expect(one.text).toMatch(/too few/);
  });
  it("agrees with summarizeRatios on real ratio lists", () => {
    expect(speedupVerdict(summarizeRatios([1.9, 2.1, 2.0, 2.05])).verdict).toBe("speculation helps here");
    expect(speedupVerdict(summarizeRatios([0.6, 0.62, 0.65, 0.61])).verdict).toBe("use plain decoding");
    expect(speedupVerdict(summarizeRatios([0.5, 2.0, 0.9, 1.4])).verdict).toBe("no clear gain");
  });
});

describe("tuneRecommendation", () => {
  const point = (mean: number, low: number | null, high: number | null, greedyIdentical: boolean | null = true) => ({
    label: "K=3",
    speedup: { mean, low, high, n: 4 },
    greedyIdentical,
  });
  it("recommends a clear win with generate_speculative's argument names (k top level, not in methodOptions)", () => {
    const r = tuneRecommendation("early-exit", point(1.8, 1.4, 2.3), { exitLayer: 2, k: 3, controller: "fixed" });
    expect(r.verdict.verdict).toBe("speculation helps here");
    expect(r.recommended).toEqual({ method: "early-exit", k: 3, methodOptions: { exitLayer: 2, controller: "fixed" } });
  });
  it("recommends a point-estimate win honestly as no clear gain; adaptive k stays \"auto\"", () => {
    const r = tuneRecommendation("draft", point(1.2, 0.8, 1.7), { k: "auto", controller: "confidence", confidenceThreshold: 0.4 });
    expect(r.verdict.verdict).toBe("no clear gain");
    expect(r.recommended).toEqual({ method: "draft", k: "auto", methodOptions: { controller: "confidence", confidenceThreshold: 0.4 } });
  });
  it("recommends nothing when no setting beats plain decoding, or when the output differed", () => {
    const slow = tuneRecommendation("draft", point(0.9, 0.5, 1.6), { k: 2, controller: "fixed" });
    expect(slow.verdict.verdict).toBe("use plain decoding");
    expect(slow.verdict.text).toMatch(/no setting beat plain decoding \(fastest: K=3 at 0\.90x, 95% CI 0\.50-1\.60\)/);
    expect(slow.recommended).toBeNull();
    const wrong = tuneRecommendation("draft", point(2, 1.5, 2.5, false), { k: 2, controller: "fixed" });
    expect(wrong.verdict.verdict).toBe("use plain decoding");
    expect(wrong.verdict.text).toMatch(/output differed/);
    expect(wrong.recommended).toBeNull();
  });
});
