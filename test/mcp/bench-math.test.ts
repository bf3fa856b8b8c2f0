/** The pure parts of measure_speedup / tune_draft_k: the ideal-speedup model, CIs, peer mapping, workload. */
import { describe, expect, it } from "vitest";
import { alphaFromAcceptedLength, bestPredictedK, expectedAcceptedLength, predictedSpeedup } from "../../src/bench/ideal.js";
import { peerSettings } from "../../src/bench/peers.js";
import { median, summarizeRatios } from "../../src/bench/statistics.js";
import { WORKLOAD_CATEGORIES, builtinWorkload, parseWorkloadSpec } from "../../src/bench/workload.js";

describe("ideal speedup (Leviathan et al.)", () => {
  it("E(K) = (1 - a^(K+1)) / (1 - a), bounded by 1 and K+1", () => {
    expect(expectedAcceptedLength(0.8, 4)).toBeCloseTo((1 - 0.8 ** 5) / 0.2, 10);
    expect(expectedAcceptedLength(0, 4)).toBe(1);
    expect(expectedAcceptedLength(1, 4)).toBe(5);
    expect(predictedSpeedup(0.8, 4, 0.05)).toBeCloseTo(expectedAcceptedLength(0.8, 4) / 1.2, 10);
  });
  it("inverts E(K) for alpha", () => {
    for (const a of [0.1, 0.5, 0.8, 0.95]) for (const k of [1, 3, 8]) expect(alphaFromAcceptedLength(expectedAcceptedLength(a, k), k)).toBeCloseTo(a, 6);
    expect(alphaFromAcceptedLength(1, 4)).toBe(0);
  });
  it("picks a larger K when drafts are cheap and accurate", () => {
    expect(bestPredictedK(0.9, 0.02)).toBeGreaterThan(bestPredictedK(0.5, 0.2));
    expect(bestPredictedK(0.1, 0.5)).toBe(1);
  });
});

describe("statistics", () => {
  it("median and a geometric-mean CI that contains the mean", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    const s = summarizeRatios([1.9, 2.1, 2.0, 2.05]);
    expect(s.mean).toBeCloseTo(2.01, 1);
    expect(s.low!).toBeLessThan(s.mean);
    expect(s.high!).toBeGreaterThan(s.mean);
    expect(summarizeRatios([2]).low).toBeNull();
    expect(summarizeRatios([]).n).toBe(0);
  });
});

describe("peer settings", () => {
  it("maps a fixed K to vLLM, llama.cpp and transformers", () => {
    const p = peerSettings({ method: "draft", controller: "fixed", k: 5 });
    expect(p.vllm.num_speculative_tokens).toBe(5);
    expect(p.vllm.commandLine).toContain('"num_speculative_tokens":5');
    expect(p.llamaCpp.commandLine).toContain("--draft-max 5");
    expect(p.llamaCpp.draftPMin).toBe(0);
    expect(p.transformers.num_assistant_tokens_schedule).toBe("constant");
    expect(p.transformers.code).toContain("num_assistant_tokens=5");
    expect(p.sglang.commandLine).toContain("--speculative-algorithm STANDALONE");
    expect(p.sglang.flags).toContain("--speculative-num-steps 5");
    expect(p.sglang.flags).toContain("--speculative-num-draft-tokens 6");
    expect(p.sglang.eagle_topk).toBe(1);
  });
  it("maps adaptive controllers to their closest equivalents", () => {
    const h = peerSettings({ method: "draft", controller: "heuristic", k: 4, meanK: 6.2 });
    expect(h.transformers.num_assistant_tokens_schedule).toBe("heuristic");
    expect(h.transformers.num_assistant_tokens).toBe(4);
    expect(h.vllm.num_speculative_tokens).toBe(6);
    const c = peerSettings({ method: "draft", controller: "confidence", k: 8, meanK: 3, confidenceThreshold: 0.4 });
    expect(c.llamaCpp.draftPMin).toBe(0.4);
    expect(c.llamaCpp.draftMax).toBe(8);
    expect(c.transformers.assistant_confidence_threshold).toBe(0.4);
    expect(c.vllm.num_speculative_tokens).toBe(3);
    expect(c.sglang.num_steps).toBe(3);
    const cost = peerSettings({ method: "early-exit", controller: "cost", k: 8, meanK: 2.6 });
    expect(cost.transformers.num_assistant_tokens).toBe(3);
    expect(cost.vllm.note).toMatch(/early-exit/);
  });
});

describe("built-in workload", () => {
  it("has every category, unique ids, and short prompts", () => {
    const all = builtinWorkload();
    expect(new Set(all.map((p) => p.category))).toEqual(new Set(WORKLOAD_CATEGORIES));
    expect(new Set(all.map((p) => p.id)).size).toBe(all.length);
    for (const p of all) expect(p.prompt!.length).toBeLessThan(600);
    expect(parseWorkloadSpec("builtin:math").every((p) => p.category === "math")).toBe(true);
    expect(builtinWorkload("qa", { chat: true })[0]!.messages![0]!.role).toBe("user");
    expect(() => parseWorkloadSpec("builtin:poetry")).toThrow(/categories|Use one of/);
  });
});
