import { describe, expect, it } from "vitest";
import { InvalidOptionError } from "../../src/errors.js";
import { isGreedy, validateSamplingOptions } from "../../src/sampling/options.js";

describe("validateSamplingOptions", () => {
  it("accepts valid options and returns them", () => {
    const o = { temperature: 0.7, topK: 40, topP: 0.9, minP: 0.05, repetitionPenalty: 1.1, seed: -3 };
    expect(validateSamplingOptions(o)).toBe(o);
    expect(validateSamplingOptions({})).toEqual({});
    expect(() => validateSamplingOptions({ temperature: 0, topK: 0, topP: 1, minP: 0 })).not.toThrow();
  });

  it.each([
    [{ temperature: -0.1 }, /temperature.*>= 0/],
    [{ temperature: Number.NaN }, /temperature/],
    [{ temperature: Infinity }, /temperature/],
    [{ topK: 1.5 }, /topK.*integer >= 0/],
    [{ topK: -1 }, /topK/],
    [{ topP: 0 }, /topP.*\(0, 1\]/],
    [{ topP: 1.01 }, /topP/],
    [{ minP: 1 }, /minP.*\[0, 1\)/],
    [{ minP: -0.1 }, /minP/],
    [{ repetitionPenalty: 0 }, /repetitionPenalty.*> 0/],
    [{ seed: 1.5 }, /seed.*integer/],
    [{ temperature: "1" as unknown as number }, /temperature/],
  ])("rejects %o with the allowed range", (o, msg) => {
    expect(() => validateSamplingOptions(o)).toThrow(InvalidOptionError);
    expect(() => validateSamplingOptions(o)).toThrow(msg);
  });
});

describe("isGreedy", () => {
  it("is greedy for temperature 0/unset or topK 1", () => {
    expect(isGreedy(undefined)).toBe(true);
    expect(isGreedy({})).toBe(true);
    expect(isGreedy({ temperature: 0, topP: 0.5 })).toBe(true);
    expect(isGreedy({ temperature: 0.8, topK: 1 })).toBe(true);
    expect(isGreedy({ temperature: 0.8 })).toBe(false);
    expect(isGreedy({ temperature: 0.8, topK: 2 })).toBe(false);
  });
});
