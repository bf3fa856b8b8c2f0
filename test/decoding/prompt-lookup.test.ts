import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getMethod, registeredMethods } from "../../src/decoding/methods.js";
import { NgramIndex, continuation, createPromptLookupProposer } from "../../src/decoding/prompt-lookup.js";
import { CausalLM } from "../../src/engine/causal-lm.js";
import { InvalidOptionError } from "../../src/errors.js";
import { fixture } from "../helpers/fixtures.js";
import { LLAMA, NO_TREE, PLAIN_PROMPT, QWEN2, expectGreedyLikePlainOnRandomPrompts, expectSamplingLikePlain, repetitivePrompt, run, sum } from "./draft-free-helpers.js";

describe("n-gram matching", () => {
  it("tries the longest n-gram first and takes its latest occurrence", () => {
    const idx = new NgramIndex(1, 3);
    //            0  1  2  3  4  5  6  7  8  9 10
    const toks = [5, 6, 7, 1, 6, 7, 2, 9, 6, 7, 8];
    // suffix "8": no earlier 8 -> nothing at n=1..3
    expect(idx.lookup(toks)).toBeUndefined();
    toks.push(6, 7); // suffix "8 6 7" no; "6 7" latest earlier occurrence ends at 9
    expect(idx.lookup(toks)).toEqual({ end: 9, n: 2 });
    toks.push(8); // "7 8"? the 3-gram "6 7 8" occurred ending at 10
    expect(idx.lookup(toks)).toEqual({ end: 10, n: 3 });
  });

  it("respects minNgram and never matches the suffix with itself", () => {
    const idx = new NgramIndex(2, 2);
    expect(idx.lookup([4, 4])).toBeUndefined(); // "4 4" only occurs as the suffix
    expect(new NgramIndex(1, 1).lookup([4, 4])).toEqual({ end: 0, n: 1 });
    expect(idx.lookup([3, 9, 3])).toBeUndefined(); // a 1-gram match is below minNgram
  });

  it("indexes incrementally: results equal a fresh index at every length", () => {
    const toks: number[] = [];
    const inc = new NgramIndex(1, 3);
    let x = 7;
    for (let i = 0; i < 300; i++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      toks.push(x % 11);
      expect(inc.lookup(toks)).toEqual(new NgramIndex(1, 3).lookup(toks));
    }
  });

  it("continues a match that runs into the end periodically", () => {
    expect(continuation([1, 2, 3, 1, 2, 3], 2, 4)).toEqual([1, 2, 3, 1]);
    expect(continuation([9, 9, 9], 1, 3)).toEqual([9, 9, 9]);
    expect(continuation([1, 2, 3, 4, 5], 0, 3)).toEqual([2, 3, 4]);
  });

  it("validates its options", () => {
    expect(() => createPromptLookupProposer({ maxNgram: 0 })).toThrow(InvalidOptionError);
    expect(() => createPromptLookupProposer({ numPredict: 1.5 })).toThrow(/numPredict/);
    expect(() => createPromptLookupProposer({ minNgram: 3, maxNgram: 2 })).toThrow(/minNgram/);
    expect(createPromptLookupProposer({ maxNgram: 1 }).method).toBe("prompt-lookup");
    expect(registeredMethods().map((m) => m.name)).toContain("prompt-lookup");
    expect(getMethod("prompt-lookup").unavailableReason({ target: undefined as never })).toBeUndefined();
  });
});

describe.each([
  ["llama", LLAMA],
  ["qwen2", QWEN2],
  ["llama without tree mask", NO_TREE],
])("prompt lookup on %s", (_name, opts) => {
  let lm: CausalLM;
  let repetitive: number[];
  beforeAll(async () => {
    lm = await CausalLM.load(await fixture(opts));
    repetitive = await repetitivePrompt(lm, [3, 44, 150, 22], 120);
  });
  afterAll(() => lm?.dispose());

  it("greedy tokens equal plain greedy tokens, with and without repeats in the prompt", async () => {
    for (const [prompt, n] of [
      [PLAIN_PROMPT, 60],
      [[7], 30],
      [repetitive, 80],
    ] as const) {
      const base = await run(lm, "baseline", [...prompt], n);
      for (const options of [{}, { maxNgram: 1, numPredict: 3 }, { maxNgram: 4, minNgram: 2, numPredict: 16 }]) {
        const res = await run(lm, "prompt-lookup", [...prompt], n, { options });
        expect(res.tokens).toEqual(base.tokens);
        const s = res.stats;
        expect(s.method).toBe("prompt-lookup");
        expect(sum(s.acceptanceHistogram)).toBe(s.targetForwards);
        expect(s.newTokens).toBe(n);
        expect(s.acceptedTokens + s.targetForwards).toBeGreaterThanOrEqual(n);
        expect(s.acceptedTokens).toBeLessThanOrEqual(s.draftedTokens);
      }
    }
  });

  it("accepts long runs on the repetitive prompt (mean accepted length > 1.5)", async () => {
    const res = await run(lm, "prompt-lookup", repetitive, 80);
    expect(res.stats.meanAcceptedLength).toBeGreaterThan(1.5);
    expect(res.stats.targetForwards).toBeLessThan(80 / 1.5);
    expect(res.stats.extra.lookupHits).toBeGreaterThan(0);
    expect(res.stats.acceptanceHistogram.length).toBeGreaterThan(3);
    expect(res.stats.verification).toBe("chain");
  });

  it("sampling is reproducible for a seed and equals plain sampling (sample-and-match)", async () => {
    await expectSamplingLikePlain(lm, "prompt-lookup", repetitive);
  });

  it("greedy tokens equal plain greedy tokens on random prompts (default options)", async () => {
    await expectGreedyLikePlainOnRandomPrompts(lm, "prompt-lookup");
  });
});
