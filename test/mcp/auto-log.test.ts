/**
 * generate_speculative's debug log of method "auto": the engine's own choice with the target facts it
 * chose from (weight format and size, early-exit drafts, exit adapters, heads, draft, exit layer),
 * not a second guess made without the target.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ModelStore } from "../../src/engine/model-store.js";
import type { Logger } from "../../src/mcp/context.js";
import { callOk, connectInMemory, makeMcpFixtures, type McpFixtures } from "./helpers.js";

let fx: McpFixtures;
let client: Client;
let store: ModelStore;
const lines: string[] = [];
const logger: Logger = { log: (level, message) => void (level === "debug" && lines.push(message)) };

beforeAll(async () => {
  fx = await makeMcpFixtures("autolog");
  store = new ModelStore({ maxBytes: 256 * 2 ** 20 });
  ({ client } = await connectInMemory({ store, roots: [fx.root], logger }, "auto-log-test"));
}, 120_000);

afterAll(async () => {
  await client?.close();
  await store?.dispose();
  fx?.cleanup();
});

const autoLines = () => lines.filter((l) => l.startsWith("auto -> "));

describe("generate_speculative auto log", () => {
  it("logs the method the engine ran, with the target's weights, size, early exits and adapters", async () => {
    lines.length = 0;
    const r = await callOk(client, "generate_speculative", { model: fx.model, prompt: "one two three one two", maxNewTokens: 4 });
    expect(r.method).toBe("prompt-lookup");
    const [line, ...more] = autoLines();
    expect(more).toEqual([]);
    expect(line).toMatch(/^auto -> prompt-lookup \(no draft model or heads/);
    expect(line).toMatch(/target \S+model\.onnx: weights float32[^,;]*, \d+\.\d MiB/);
    expect(line).toMatch(/multi-token verify true/);
    expect(line).toMatch(/early-exit drafts 1, exit adapters none/);
    expect(line).toMatch(/draft none, heads none, exitLayer none$/);
  }, 60_000);

  it("names what the request brought (an exit layer) and the method it led to", async () => {
    lines.length = 0;
    const r = await callOk(client, "generate_speculative", { model: fx.model, prompt: "one two three", maxNewTokens: 3, methodOptions: { exitLayer: 1 } });
    expect(r.method).toBe("early-exit");
    const [line] = autoLines();
    expect(line).toMatch(/^auto -> early-exit \(an exit layer was given/);
    expect(line).toMatch(/exitLayer 1$/);
  }, 60_000);

  it("logs nothing about auto for a requested method", async () => {
    lines.length = 0;
    await callOk(client, "generate_speculative", { model: fx.model, prompt: "one two", method: "baseline", maxNewTokens: 2 });
    expect(autoLines()).toEqual([]);
  }, 60_000);
});
