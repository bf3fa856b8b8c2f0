/**
 * Errors and capability reasons over MCP speak MCP: tool names and argument paths
 * (`build_model {earlyExit: [m]}`, `methodOptions.exitLayer`, `draft`), never CLI flags; the same
 * library messages render with flags on the CLI (test/decoding/draft-errors.test.ts,
 * test/reliability/cli-flags.test.ts). Also: tune_draft_k without draft refuses instead of
 * guessing early exit, model_info lists exactly the registered methods, and replies are lean by
 * default (detail "summary").
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { dirname } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { METHOD_NAMES } from "../../src/decoding/methods.js";
import { silentLogger } from "../../src/mcp/context.js";
import { fixture } from "../helpers/fixtures.js";
import { FIXTURE_OPTS, callErr, callOk, connectInMemory } from "./helpers.js";

let client: Client;
let bare: string;

/** Text that only the CLI should print. */
const CLI_WORDS = /spec-decode build|--exit-layer|--early-exit|--draft DIR|--heads|--k\b|--method/;

beforeAll(async () => {
  // A model without early-exit drafts, alone in its root.
  bare = await fixture({ ...FIXTURE_OPTS, earlyExit: [], seed: 77 });
  ({ client } = await connectInMemory({ roots: [dirname(bare)], logger: silentLogger }, "vocabulary"));
}, 120_000);

afterAll(async () => {
  await client?.close();
});

describe("MCP vocabulary", () => {
  it("model_info: every registered method, reasons naming tool arguments", async () => {
    const info = await callOk(client, "model_info", { model: bare });
    expect(info.methods.map((m: { method: string }) => m.method)).toEqual([...METHOD_NAMES]);
    const reason = (name: string) => info.methods.find((m: { method: string }) => m.method === name).reason as string;
    expect(reason("early-exit")).toMatch(/build_model \{model: ".*", earlyExit: \[M\]\}/);
    expect(reason("draft")).toMatch(/\(draft\)/);
    expect(reason("medusa")).toMatch(/heads/);
    for (const m of info.methods) expect(m.reason, m.method).not.toMatch(CLI_WORDS);
  });

  it("a missing early-exit draft names build_model and methodOptions.exitLayer", async () => {
    const text = await callErr(client, "generate_speculative", { model: bare, promptIds: [1, 2], method: "early-exit", maxNewTokens: 2 });
    expect(text).toMatch(/build_model \{model: ".*", earlyExit: \[\d+\]\}/);
    expect(text).toMatch(/methodOptions\.exitLayer/);
    expect(text).not.toMatch(CLI_WORDS);
    const explicit = await callErr(client, "generate_speculative", { model: bare, promptIds: [1, 2], method: "early-exit", methodOptions: { exitLayer: 1 }, maxNewTokens: 2 });
    expect(explicit).toMatch(/build_model \{model: ".*", earlyExit: \[1\]\}/);
    expect(explicit).not.toMatch(CLI_WORDS);
  });

  it("method draft without draft names the draft argument; a K past the context names k", async () => {
    const text = await callErr(client, "generate_speculative", { model: bare, promptIds: [1, 2], method: "draft", maxNewTokens: 2 });
    expect(text).toMatch(/pass draft,/);
    expect(text).toMatch(/method: "early-exit"/);
    expect(text).not.toMatch(CLI_WORDS);
  });

  it("tune_draft_k without draft or exitLayer refuses (no silent switch to early exit)", async () => {
    const text = await callErr(client, "tune_draft_k", { model: bare, prompts: ["x"], maxNewTokens: 2, repeats: 1 });
    expect(text).toMatch(/pass draft/);
    expect(text).toMatch(/exitLayer/);
    expect(text).not.toMatch(/needs an early-exit draft graph/);
    // Asking for early exit explicitly gets the early-exit error, in this tool's words (exitLayer is top-level here).
    const ee = await callErr(client, "tune_draft_k", { model: bare, method: "early-exit", prompts: ["x"], maxNewTokens: 2, repeats: 1, warmup: false });
    expect(ee).toMatch(/build_model \{model: ".*", earlyExit: \[\d+\]\}/);
    expect(ee).toMatch(/then pass exitLayer\./);
    expect(ee).not.toMatch(CLI_WORDS);
  });

  it("an option out of range names its argument path and range; a method option no method knows names the nearest", async () => {
    const range = await callErr(client, "generate_speculative", { model: bare, promptIds: [1], method: "lookahead", methodOptions: { window: 65 } });
    expect(range).toMatch(/methodOptions[.\s\S]*window|window[\s\S]*64/);
    const typo = await callErr(client, "measure_speedup", { model: bare, methods: [{ method: "lookahead", methodOptions: { windw: 3 } }], prompts: ["x"] });
    expect(typo).toMatch(/methods\[\]\.methodOptions\.windw — did you mean methods\[\]\.methodOptions\.window\?/);
  });

  it("replies are lean by default: no token ids or per-prompt rows unless detail is full", async () => {
    const lean = await callOk(client, "generate_speculative", { model: bare, promptIds: [1, 2, 3], method: "baseline", maxNewTokens: 3 });
    expect(lean.tokens).toBeUndefined();
    expect(lean.stats.perPositionAcceptance).toBeUndefined();
    expect(lean.stats.newTokens).toBeGreaterThan(0);
    const full = await callOk(client, "generate_speculative", { model: bare, promptIds: [1, 2, 3], method: "baseline", maxNewTokens: 3, detail: "full" });
    expect(full.tokens).toHaveLength(full.stats.newTokens);
    expect(Array.isArray(full.stats.perPositionAcceptance)).toBe(true);
    const m = await callOk(client, "measure_speedup", { model: bare, methods: ["prompt-lookup"], prompts: ["a b a b a b"], maxNewTokens: 4, repeats: 1, warmup: false });
    expect(m.arms[0].perPrompt).toBeUndefined();
    expect(m.arms[0].verdict.verdict).toMatch(/speculation helps here|no clear gain|use plain decoding/);
    const mf = await callOk(client, "measure_speedup", { model: bare, methods: ["prompt-lookup"], prompts: ["a b a b a b"], maxNewTokens: 4, repeats: 1, warmup: false, detail: "full" });
    expect(mf.arms[0].perPrompt).toHaveLength(1);
  }, 120_000);
});
