/**
 * tune_draft_k's verdict and its round trip through the MCP SDK client: the recommended setting
 * spreads into generate_speculative as is; a pair where speculation loses gets "use plain decoding",
 * no recommended setting and no peer (vLLM / SGLang / llama.cpp) commands. measure_speedup carries
 * the same verdict per method. Runs are tiny (2 prompts, few tokens, 1 repeat).
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildTwin } from "../../src/bench/twin.js";
import { silentLogger } from "../../src/mcp/context.js";
import { fixture, tempDir } from "../helpers/fixtures.js";
import { callOk, connectInMemory, textOf } from "./helpers.js";

let client: Client;
let close: () => Promise<void>;
let root: string;
let winTarget: string;
let winDraft: string;
let loseTarget: string;
let loseDraft: string;

const PROMPTS = ["The quick brown fox jumps over", "Once upon a time there was"];
const tiny = { prompts: PROMPTS, maxNewTokens: 16, repeats: 1, warmup: true, controllers: [] };

beforeAll(async () => {
  root = tempDir("mcp-verdict");
  // Winner: a twin at divergence 0 (the target's greedy output equals its cheap 1-layer draft's) with
  // a target 8 layers deep, so drafting K tokens costs far less than the forwards it saves.
  const twin = await buildTwin({
    out: join(root, "twin"),
    hidden: 256,
    layers: 8,
    heads: 4,
    kvHeads: 2,
    intermediate: 768,
    vocab: 512,
    draftHidden: 64,
    draftIntermediate: 128,
    maxPositions: 512,
    divergence: 0,
    safetensors: false,
  });
  winTarget = twin.target;
  winDraft = twin.draft;
  // Loser: two random fixtures of the same size and depth, different seeds: the draft costs as much as
  // the target and disagrees with it.
  loseTarget = await fixture({ layers: 4, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 21 });
  loseDraft = await fixture({ layers: 4, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 22 });
  const c = await connectInMemory({ roots: [root, join(loseTarget, ".."), join(loseDraft, "..")], logger: silentLogger });
  client = c.client;
  const server = c.server;
  close = async () => {
    await client.close();
    await server.close();
  };
}, 300_000);

afterAll(async () => {
  await close?.();
});

describe("tune_draft_k verdicts", () => {
  it("recommends a setting that beats plain decoding, with generate_speculative's argument names", async () => {
    const t = await callOk(client, "tune_draft_k", { model: winTarget, draft: winDraft, ks: [3, 4], ...tiny });
    expect(t.best.speedup, JSON.stringify(t.points.map((p: { label: string; speedup: unknown }) => [p.label, p.speedup]))).toBeGreaterThan(1);
    expect(["speculation helps here", "no clear gain"]).toContain(t.verdict.verdict);
    expect(Object.keys(t.recommended).sort()).toEqual(["draft", "k", "method", "methodOptions"]);
    expect(t.recommended).toMatchObject({ method: "draft", draft: winDraft, methodOptions: { controller: "fixed" } });
    expect([3, 4]).toContain(t.recommended.k);
    expect(t.equivalents.vllm.num_speculative_tokens).toBe(t.recommended.k);
    // The round trip: spread into generate_speculative as is.
    const g = await callOk(client, "generate_speculative", { model: winTarget, prompt: PROMPTS[0], maxNewTokens: 8, detail: "full", ...t.recommended });
    expect(g.method).toBe("draft");
    expect(g.tokens.length).toBeGreaterThan(0);
    const plain = await callOk(client, "generate_speculative", { model: winTarget, prompt: PROMPTS[0], maxNewTokens: 8, method: "baseline", detail: "full" });
    expect(g.tokens).toEqual(plain.tokens);
  }, 300_000);

  it('says "use plain decoding" with no recommended setting and no peer commands when the draft loses', async () => {
    const r = await client.callTool({ name: "tune_draft_k", arguments: { model: loseTarget, draft: loseDraft, ks: [2, 4], ...tiny } });
    expect(r.isError, textOf(r)).toBeFalsy();
    const t = r.structuredContent as Record<string, any>;
    expect(t.best.speedup).toBeLessThan(1);
    expect(t.verdict.verdict).toBe("use plain decoding");
    expect(t.verdict.text).toMatch(/^use plain decoding: no setting beat plain decoding/);
    expect(t.recommended).toBeNull();
    expect(t.equivalents).toBeNull();
    const text = textOf(r);
    expect(text).toMatch(/use plain decoding/);
    expect(text).not.toMatch(/vllm|sglang|llama\.cpp|llama-server|num_speculative_tokens|--speculative/i);
  }, 300_000);

  it("measure_speedup gives each method the same verdict", async () => {
    const m = await callOk(client, "measure_speedup", {
      model: loseTarget,
      draft: loseDraft,
      methods: [{ method: "draft", k: 4 }],
      prompts: [...PROMPTS, "In a small village by the sea", "The answer to the question is"],
      maxNewTokens: 16,
      repeats: 1,
    });
    const arm = m.arms[0];
    expect(arm.verdict.verdict).toBe("use plain decoding");
    expect(arm.verdict.text).toMatch(/below 1/);
  }, 300_000);
});
