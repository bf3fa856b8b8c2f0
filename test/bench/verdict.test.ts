import { describe, expect, it } from "vitest";
import { speedupVerdict } from "../../src/bench/verdict.js";
import { summarizeRatios } from "../../src/bench/statistics.js";

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
