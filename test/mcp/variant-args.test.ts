/**
 * `variant` on model_info, measure_speedup and tune_draft_k, `draftVariant` on measure_speedup and
 * tune_draft_k (issue 10): the
 * same onnx-community variant names as generate_speculative. A model directory in the root holds
 * the float model and an int4 (MatMulNBits) model_q4.onnx made by our builder.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildModelDir } from "../../src/builder/index.js";
import { silentLogger } from "../../src/mcp/context.js";
import { ModelStore } from "../../src/engine/model-store.js";
import { callOk, connectInMemory, makeMcpFixtures, textOf, type McpFixtures } from "./helpers.js";

let fx: McpFixtures;
let client: Client;
let store: ModelStore;

beforeAll(async () => {
  fx = await makeMcpFixtures("variant");
  await buildModelDir(fx.model, { quantize: { kind: "int4", lmHead: true } }); // adds onnx/model_q4.onnx beside model.onnx
  store = new ModelStore({ maxBytes: 256 * 2 ** 20 });
  ({ client } = await connectInMemory({ store, roots: [fx.root], logger: silentLogger }, "variant-test"));
}, 180_000);

afterAll(async () => {
  await client?.close();
  await store?.dispose();
  fx?.cleanup();
});

describe("variant arguments", () => {
  it("model_info: the float model by default, the int4 build with variant q4 (and by file name)", async () => {
    const plain = await callOk(client, "model_info", { model: fx.model });
    expect(plain.file).toMatch(/onnx[\\/]model\.onnx$/);
    expect(plain.weightFormat).toMatch(/^float32/);
    for (const variant of ["q4", "model_q4.onnx"]) {
      const q = await callOk(client, "model_info", { model: fx.model, variant });
      expect(q.file).toMatch(/model_q4\.onnx$/);
      expect(q.weightFormat).toMatch(/^int4 \(MatMulNBits, block 32\)/);
      expect(q.weightBytesPerToken).toBeLessThan(plain.weightBytesPerToken);
    }
  }, 60_000);

  it("model_info: an absent variant or a path is refused", async () => {
    const r = await client.callTool({ name: "model_info", arguments: { model: fx.model, variant: "q8" } });
    expect(r.isError).toBe(true);
    expect(textOf(r)).toMatch(/q8|model_q8/);
    const r2 = await client.callTool({ name: "model_info", arguments: { model: fx.model, variant: "../model.onnx" } });
    expect(r2.isError).toBe(true);
    expect(textOf(r2)).toMatch(/no paths/);
  });

  it("measure_speedup: variant q4 measures the int4 build (greedy identical across methods); draftVariant reaches the draft", async () => {
    const r = await callOk(client, "measure_speedup", { model: fx.model, variant: "q4", methods: ["prompt-lookup"], prompts: ["one two three one two three one two"], maxNewTokens: 6, repeats: 1, warmup: false });
    expect(r.mode).toBe("local");
    expect(r.arms[0].greedyIdentical).toBe(true);
    const bad = await client.callTool({ name: "measure_speedup", arguments: { model: fx.model, variant: "q8", methods: ["baseline"], prompts: ["x"], maxNewTokens: 2, repeats: 1 } });
    expect(bad.isError).toBe(true);
    expect(textOf(bad)).toMatch(/q8/);
    const badDraft = await client.callTool({
      name: "measure_speedup",
      arguments: { model: fx.model, draft: fx.model, draftVariant: "q8", methods: ["draft"], prompts: ["x"], maxNewTokens: 2, repeats: 1 },
    });
    expect(badDraft.isError).toBe(true);
    expect(textOf(badDraft)).toMatch(/q8/);
    const q4Draft = await callOk(client, "measure_speedup", { model: fx.model, draft: fx.model, draftVariant: "q4", methods: ["draft"], prompts: ["one two three"], maxNewTokens: 6, repeats: 1, warmup: false });
    expect(q4Draft.arms[0].greedyIdentical).toBe(true);
  }, 120_000);

  it("tune_draft_k: variant and draftVariant reach the target and the draft (q4 sweep lossless, q8 refused by name)", async () => {
    const common = { model: fx.model, draft: fx.model, ks: [2], controllers: [], prompts: ["one two three one two three"], maxNewTokens: 6, repeats: 1, warmup: false };
    const q4 = await callOk(client, "tune_draft_k", { ...common, variant: "q4", draftVariant: "q4" });
    expect(q4.method).toBe("draft");
    expect(q4.points).toHaveLength(1);
    expect(q4.points[0].greedyIdentical).toBe(true);
    for (const bad of [{ variant: "q8" }, { draftVariant: "q8" }]) {
      const r = await client.callTool({ name: "tune_draft_k", arguments: { ...common, ...bad } });
      expect(r.isError, JSON.stringify(bad)).toBe(true);
      expect(textOf(r)).toMatch(/model_q8|q8\b/);
      expect(textOf(r)).not.toMatch(/unrecognized/i);
    }
    const ee = await client.callTool({ name: "tune_draft_k", arguments: { model: fx.model, method: "early-exit", draftVariant: "q4", ks: [2], controllers: [], prompts: ["x"], maxNewTokens: 2, repeats: 1 } });
    expect(ee.isError).toBe(true);
    expect(textOf(ee)).toMatch(/draftVariant applies to method draft/);
    // The library refuses early-exit options with a draft model (it used to ignore them): MCP shows its words.
    for (const [bad, words] of [[{ adapter: true }, /adapter chooses the early-exit draft/], [{ exitLayer: 1 }, /exitLayer picks the early-exit draft/]] as const) {
      const r = await client.callTool({ name: "tune_draft_k", arguments: { ...common, ...bad } });
      expect(r.isError, JSON.stringify(bad)).toBe(true);
      expect(textOf(r)).toMatch(words);
    }
  }, 120_000);
});
