/** Prometheus text: our renderer round-trips through the scraper; vLLM and SGLang pages are read. */
import { describe, expect, it } from "vitest";
import { Metrics, parsePrometheus, scrapeSpecMetrics } from "../../src/openai/metrics.js";
import { editDistance, nearest } from "../../src/openai/schemas.js";

describe("metrics", () => {
  it("records a generation the way vLLM counts it (per position = rounds accepted through it)", () => {
    const m = new Metrics('m"1');
    // 5 rounds: 4 drafted (K=3), accepted 0, 1, 3, 3; one round with no proposal.
    m.record(
      {
        draftRounds: 4,
        draftedTokens: 12,
        acceptedTokens: 7,
        acceptanceHistogram: [2, 1, 0, 2],
        promptTokens: 9,
        newTokens: 12,
        targetForwards: 5,
      } as never,
      "length",
    );
    const s = scrapeSpecMetrics(m.render());
    expect(s).toMatchObject({ source: "vllm", drafts: 4, draftTokens: 12, acceptedTokens: 7, generationTokens: 12 });
    expect(s.acceptedPerPos).toEqual([3, 2, 2]);
    expect(s.acceptedPerPos!.reduce((a, b) => a + b, 0)).toBe(7);
    const page = parsePrometheus(m.render());
    expect(page.get("vllm:request_success_total")![0]!.labels).toEqual({ model_name: 'm"1', engine: "0", finished_reason: "length" });
  });

  it("reads vLLM pages with several engines and SGLang's accept length", () => {
    const vllm = [
      "# TYPE vllm:spec_decode_num_drafts counter",
      'vllm:spec_decode_num_drafts_total{engine="0",model_name="x"} 10.0',
      'vllm:spec_decode_num_drafts_total{engine="1",model_name="x"} 5.0',
      'vllm:spec_decode_num_draft_tokens_total{engine="0",model_name="x"} 45.0',
      'vllm:spec_decode_num_accepted_tokens_total{engine="0",model_name="x"} 20.0',
      'vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="x",position="1"} 8.0',
      'vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="x",position="0"} 12.0',
    ].join("\n");
    expect(scrapeSpecMetrics(vllm)).toMatchObject({ source: "vllm", drafts: 15, draftTokens: 45, acceptedTokens: 20, acceptedPerPos: [12, 8] });
    expect(scrapeSpecMetrics('sglang:spec_accept_length{model_name="x"} 2.5\n')).toMatchObject({ source: "sglang", acceptLength: 2.5 });
    expect(scrapeSpecMetrics("llamacpp:tokens_predicted_total 3\n")).toEqual({});
  });

  it("names the nearest field", () => {
    expect(editDistance("max_token", "max_tokens")).toBe(1);
    expect(nearest("temprature", ["temperature", "top_p"])).toBe("temperature");
    expect(nearest("zzzzzz", ["temperature", "top_p"])).toBeUndefined();
  });
});
