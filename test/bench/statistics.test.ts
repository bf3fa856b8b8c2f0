import { describe, expect, it } from "vitest";
import { alphaFromAcceptedLength, expectedAcceptedLength, predictedSpeedup } from "../../src/bench/ideal.js";
import { idealSpeedup } from "../../src/bench/measure.js";
import { median, mean, summarizeRatios, tQuantile975 } from "../../src/bench/statistics.js";
import { agreementForDivergence, divergenceForAgreement, parameterCount, TWIN_CALIBRATION } from "../../src/bench/twin.js";

describe("statistics", () => {
  it("median of odd, even and unsorted lists", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
    expect(Number.isNaN(median([]))).toBe(true);
    expect(mean([1, 2, 3, 4])).toBe(2.5);
  });

  it("t quantiles", () => {
    expect(tQuantile975(1)).toBe(12.706);
    expect(tQuantile975(4)).toBe(2.776);
    expect(tQuantile975(30)).toBe(2.042);
    expect(tQuantile975(1000)).toBe(1.96);
  });

  it("geometric mean of ratios with a t-interval on log ratios (golden values)", () => {
    // logs of [2, 2, 2, 2] have sd 0: the interval collapses onto the mean.
    expect(summarizeRatios([2, 2, 2, 2])).toEqual({ mean: 2, low: 2, high: 2, n: 4 });
    // ratios e^-0.1, e^0, e^0.1, e^0.2: mean log 0.05, sd 0.129099, n 4, t(3) = 3.182
    // half = 3.182 * 0.129099 / 2 = 0.205397 -> [e^-0.155397, e^0.255397]
    const s = summarizeRatios([Math.exp(-0.1), 1, Math.exp(0.1), Math.exp(0.2)]);
    expect(s.n).toBe(4);
    expect(s.mean).toBeCloseTo(Math.exp(0.05), 4);
    expect(s.low).toBeCloseTo(0.8561, 4);
    expect(s.high).toBeCloseTo(1.291, 3);
    // invalid ratios are ignored; one valid ratio has no interval
    expect(summarizeRatios([1.5, Number.NaN, 0, -1])).toEqual({ mean: 1.5, low: null, high: null, n: 1 });
    expect(summarizeRatios([])).toEqual({ mean: 0, low: null, high: null, n: 0 });
  });
});

describe("ideal speedup (Leviathan et al.)", () => {
  it("E(K) and S(K) golden values", () => {
    expect(expectedAcceptedLength(0.8, 4)).toBeCloseTo(3.36160, 5); // (1 - 0.8^5) / 0.2
    expect(predictedSpeedup(0.8, 4, 0.05)).toBeCloseTo(3.3616 / 1.2, 5);
    expect(expectedAcceptedLength(1, 4)).toBe(5);
    expect(expectedAcceptedLength(0, 4)).toBe(1);
    expect(alphaFromAcceptedLength(3.3616, 4)).toBeCloseTo(0.8, 4);
  });

  it("per-arm ideal: E / (1 + draft ms per round / target ms per forward)", () => {
    // E = 3, draft 0.5 ms per token -> 1.5 ms per round; target 10 ms -> 3 / 1.15
    expect(idealSpeedup({ meanAcceptedLength: 3, draftMsPerToken: 0.5 }, 10)).toBeCloseTo(3 / 1.15, 10);
    expect(idealSpeedup({ meanAcceptedLength: 1, draftMsPerToken: 0 }, 10)).toBe(1);
    expect(idealSpeedup({ meanAcceptedLength: 2, draftMsPerToken: 0 }, 0)).toBe(0);
  });
});

describe("twin knob calibration table", () => {
  it("interpolates both ways and is monotone", () => {
    for (let i = 1; i < TWIN_CALIBRATION.length; i++) {
      expect(TWIN_CALIBRATION[i]!.divergence).toBeGreaterThan(TWIN_CALIBRATION[i - 1]!.divergence);
      expect(TWIN_CALIBRATION[i]!.agreement).toBeLessThan(TWIN_CALIBRATION[i - 1]!.agreement);
    }
    const mid = TWIN_CALIBRATION[2]!;
    expect(divergenceForAgreement(mid.agreement)).toBeCloseTo(mid.divergence, 3);
    expect(agreementForDivergence(mid.divergence)).toBeCloseTo(mid.agreement, 3);
    expect(divergenceForAgreement(1)).toBe(0);
    expect(() => divergenceForAgreement(1.5)).toThrow(/agreement/);
  });

  it("the default twin target is about 100M parameters", () => {
    const p = parameterCount({ hidden: 768, layers: 12, heads: 12, kvHeads: 4, intermediate: 2048, vocab: 16384 });
    expect(p).toBeGreaterThan(95e6);
    expect(p).toBeLessThan(110e6);
  });
});
