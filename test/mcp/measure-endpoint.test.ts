/**
 * measure_speedup's endpoint mode over MCP (SDK Client over InMemoryTransport): our own OpenAI
 * server on 127.0.0.1, plain and speculative (same weights), measured through the tool with the
 * CLI's statistics (src/bench/remote.ts); the endpoint policy (loopback only unless
 * --allow-endpoint, no redirects, bad URLs named) and the local/remote argument exclusions.
 */
import { createServer as createHttpServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SpecEngine } from "../../src/api.js";
import { silentLogger } from "../../src/mcp/context.js";
import { checkEndpointUrl, isLoopbackHost, parseAllowedEndpoints } from "../../src/mcp/endpoints.js";
import { inToolVocabulary } from "../../src/mcp/tools/measure-speedup.js";
import { startOpenAIServer, type RunningOpenAIServer } from "../../src/openai/server.js";
import { ModelStore } from "../../src/engine/model-store.js";
import { callOk, connectInMemory, makeMcpFixtures, textOf, type McpFixtures } from "./helpers.js";

let fx: McpFixtures;
let client: Client;
let store: ModelStore;
const engine = new SpecEngine({ threads: 1 });
let plain: RunningOpenAIServer;
let spec: RunningOpenAIServer;
let redirector: Server;
let redirectUrl: string;
const PROMPTS = ["Once upon a time", "The little dog"];

async function callErr(args: Record<string, unknown>): Promise<string> {
  const r = await client.callTool({ name: "measure_speedup", arguments: args });
  const text = textOf(r);
  expect(r.isError, `expected an error, got: ${text.slice(0, 300)}`).toBe(true);
  expect(text).not.toMatch(/looks like a bug/);
  return text;
}

beforeAll(async () => {
  fx = await makeMcpFixtures("endpoint");
  plain = await startOpenAIServer({ model: fx.model, method: "baseline", servedModelName: "tiny", port: 0, engine });
  spec = await startOpenAIServer({ model: fx.model, method: "early-exit", methodOptions: { k: 3 }, servedModelName: "tiny", port: 0, engine });
  // A loopback server that redirects everything to a non-loopback host: must not be followed.
  redirector = createHttpServer((_req, res) => {
    res.writeHead(307, { location: "http://10.255.255.1:9/v1/models" });
    res.end();
  });
  await new Promise<void>((r) => redirector.listen(0, "127.0.0.1", r));
  redirectUrl = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}/v1`;
  store = new ModelStore({ maxBytes: 256 * 2 ** 20 });
  ({ client } = await connectInMemory({ store, roots: [fx.root], logger: silentLogger }, "endpoint-test"));
}, 120_000);

afterAll(async () => {
  await client?.close();
  for (const s of [plain, spec]) await s?.close();
  await new Promise((r) => redirector?.close(r));
  await engine.dispose();
  await store?.dispose();
  fx?.cleanup();
});

describe("measure_speedup with endpoint (MCP)", () => {
  it("measures a loopback server against a loopback baseline: paired speedup, verdict, identical greedy outputs, acceptance from /metrics", async () => {
    const port = new URL(plain.url).port;
    const r = await callOk(client, "measure_speedup", {
      endpoint: spec.url,
      endpointBaseline: `http://localhost:${port}`,
      prompts: PROMPTS,
      maxNewTokens: 16,
      repeats: 2,
      detail: "full",
    });
    expect(r.mode).toBe("endpoint");
    expect(r.model).toBeUndefined();
    expect(r.baseline).toBeUndefined();
    expect(r.prompts).toBe(2);
    expect(r.greedy).toBe(true);
    expect(r.greedyIdentical).toBe(true);
    expect(r.mismatches).toEqual([]);
    expect(r.speedup.n).toBe(4);
    expect(r.ttftRatio.n).toBe(4);
    expect(r.verdict).toMatch(/^(speculation helps here|no clear gain|use plain decoding): /);
    expect(r.endpoint.url).toBe(spec.url);
    expect(r.endpoint.model).toBe("tiny");
    expect(r.endpointBaseline.url).toBe(`http://localhost:${port}/v1`);
    expect(r.endpoint.runs).toHaveLength(4);
    for (const run of [...r.endpoint.runs, ...r.endpointBaseline.runs]) {
      expect(run.text).toBeUndefined(); // texts stay out of the MCP result
      expect(run.completionTokens).toBeGreaterThan(0);
    }
    expect(r.endpoint.acceptance.source).toBe("vllm");
    expect(r.endpoint.acceptance.draftTokens).toBeGreaterThan(0);
    expect(r.endpointBaseline.acceptance.drafts).toBe(0);
    expect(r.endpoint.completionTokens).toBe(r.endpointBaseline.completionTokens);
  }, 120_000);

  it("one endpoint alone: its numbers, no speedup or greedy comparison", async () => {
    const r = await callOk(client, "measure_speedup", { endpoint: spec.url, endpointModel: "tiny", prompts: [PROMPTS[0]], maxNewTokens: 8, repeats: 1, seed: 3, detail: "full" });
    expect(r.mode).toBe("endpoint");
    expect(r.endpointBaseline).toBeUndefined();
    expect(r.speedup).toBeUndefined();
    expect(r.greedyIdentical).toBeNull();
    expect(r.endpoint.runs).toHaveLength(1);
    expect(r.endpoint.medianDecodeTokensPerSecond).toBeGreaterThan(0);
  }, 60_000);

  it("speaks in argument names, not CLI flags: an absent model id, an inconclusive verdict", async () => {
    const t = await callErr({ endpoint: spec.url, endpointModel: "absent", prompts: [PROMPTS[0]], maxNewTokens: 2, repeats: 1 });
    expect(t).toMatch(/404/);
    const noModels = await callErr({ endpoint: redirectUrl.replace(/\d+\/v1$/, "9/v1"), prompts: [PROMPTS[0]] });
    expect(noModels).toMatch(/Error \(ENDPOINT\)/);
    const r = await callOk(client, "measure_speedup", { endpoint: spec.url, endpointBaseline: plain.url, prompts: [PROMPTS[0]], maxNewTokens: 4, repeats: 1 });
    expect(r.verdict).toMatch(/^no clear gain: .*too few for an interval; use more prompts or repeats$/);
    expect(r.verdict).not.toMatch(/--/);
  }, 60_000);

  it("refuses non-loopback hosts and names --allow-endpoint", async () => {
    for (const url of ["http://10.0.0.1:8000/v1", "http://169.254.169.254/latest", "http://127.0.0.1.nip.io:8080/v1", "http://[::ffff:a00:1]:80/v1"]) {
      const t = await callErr({ endpoint: url, prompts: PROMPTS });
      expect(t).toMatch(/not a loopback address/);
      expect(t).toMatch(/--allow-endpoint/);
    }
    // The baseline goes through the same check.
    expect(await callErr({ endpoint: spec.url, endpointBaseline: "https://example.com/v1", prompts: PROMPTS })).toMatch(/endpointBaseline .*--allow-endpoint/);
  });

  it("refuses bad URLs with the fix named", async () => {
    expect(await callErr({ endpoint: "not a url" })).toMatch(/endpoint "not a url" is not a URL/);
    expect(await callErr({ endpoint: "ftp://127.0.0.1/v1" })).toMatch(/http\(s\)/);
    expect(await callErr({ endpoint: "file:///etc/passwd" })).toMatch(/http\(s\)/);
    expect(await callErr({ endpoint: "http://user:pw@127.0.0.1:1/v1" })).toMatch(/credentials.*apiKey/);
    expect(await callErr({ endpoint: "http://127.0.0.1:1/v1?x=1" })).toMatch(/query/);
    expect(await callErr({ endpoint: "x".repeat(3000) })).toMatch(/2048/);
  });

  it("does not follow redirects (an allowed host cannot bounce the request elsewhere)", async () => {
    const t = await callErr({ endpoint: redirectUrl, prompts: PROMPTS, maxNewTokens: 4, repeats: 1 });
    expect(t).toMatch(/unexpected redirect/);
  });

  it("a loopback port nothing listens on fails fast", async () => {
    const t0 = performance.now();
    await callErr({ endpoint: "http://127.0.0.1:9/v1", prompts: PROMPTS, maxNewTokens: 4, repeats: 1 });
    expect(performance.now() - t0).toBeLessThan(30_000);
  });

  it("local and remote arguments do not mix", async () => {
    expect(await callErr({ endpoint: spec.url, model: fx.model })).toMatch(/model applies to local models/);
    expect(await callErr({ endpoint: spec.url, methods: ["prompt-lookup"], draftVariant: "q4" })).toMatch(/draftVariant, methods apply to local models|methods, draftVariant apply/);
    expect(await callErr({ model: fx.model, methods: ["baseline"], endpointBaseline: spec.url })).toMatch(/endpointBaseline applies to remote mode: pass endpoint/);
    expect(await callErr({ model: fx.model, methods: ["baseline"], apiKey: "k" })).toMatch(/apiKey applies to remote mode/);
    expect(await callErr({ methods: ["baseline"] })).toMatch(/Pass model .* or endpoint/);
    expect(await callErr({ model: fx.model })).toMatch(/Pass methods/);
    expect(await callErr({ endpoint: spec.url, sampling: { topP: 0.5 } })).toMatch(/topP/);
    expect(await callErr({ endpoint: spec.url, warmup: false })).toMatch(/warm-up/);
    expect(await callErr({ endpoint: spec.url, repeats: 21 })).toMatch(/repeats/);
    expect(await callErr({ endpoint: spec.url, maxNewTokens: 5000 })).toMatch(/maxNewTokens/);
  });
});

describe("endpoint policy", () => {
  it("CLI flags in remote.ts messages become argument names", () => {
    expect(inToolVocabulary("Check the URL and --api-key, or pass --endpoint-model.")).toBe("Check the URL and apiKey, or pass endpointModel (baselineModel for endpointBaseline).");
    expect(inToolVocabulary("lists no model; pass --endpoint-model NAME.")).toBe("lists no model; pass endpointModel (baselineModel for endpointBaseline).");
  });

  it("loopback hosts after URL normalization", () => {
    for (const h of ["localhost", "127.0.0.1", "127.255.0.9", "[::1]"]) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ["10.0.0.1", "localhost.evil", "127.0.0.1.evil", "[::ffff:7f00:1]", "0.0.0.0"]) expect(isLoopbackHost(h), h).toBe(false);
    // The WHATWG parser folds these spellings into 127.0.0.1.
    expect(checkEndpointUrl("http://127.1:8080", "endpoint", [])).toBe("http://127.0.0.1:8080/v1");
    expect(checkEndpointUrl("http://0x7f.0.0.1:8080/v1/", "endpoint", [])).toBe("http://127.0.0.1:8080/v1");
  });

  it("--allow-endpoint prefixes: same scheme, host and port, path under the prefix", () => {
    const allowed = parseAllowedEndpoints(["http://gpu-box:8000", "https://api.example.com/team/"]);
    expect(checkEndpointUrl("http://gpu-box:8000/v1", "endpoint", allowed)).toBe("http://gpu-box:8000/v1");
    expect(checkEndpointUrl("https://api.example.com/team/v1", "endpoint", allowed)).toBe("https://api.example.com/team/v1");
    for (const url of ["http://gpu-box:8001/v1", "https://gpu-box:8000/v1", "http://gpu-box.evil:8000/v1", "https://api.example.com/teamX/v1", "https://api.example.com/v1"]) {
      expect(() => checkEndpointUrl(url, "endpoint", allowed), url).toThrow(/--allow-endpoint/);
    }
    expect(() => parseAllowedEndpoints(["gpu-box:8000"])).toThrow(/http\(s\)/);
    expect(() => parseAllowedEndpoints(["not a url"])).toThrow(/--allow-endpoint "not a url" is not a URL/);
  });

  it("a server started with allowEndpoints lets that host past the policy (then fails to connect, quickly)", async () => {
    const s2 = new ModelStore({ maxBytes: 2 ** 20 });
    const { client: c } = await connectInMemory({ store: s2, roots: [fx.root], logger: silentLogger, allowEndpoints: ["http://localhost.invalid:9"] }, "allow-test");
    const r = await c.callTool({ name: "measure_speedup", arguments: { endpoint: "http://localhost.invalid:9/v1", prompts: PROMPTS, maxNewTokens: 2, repeats: 1 } });
    expect(r.isError).toBe(true);
    expect(textOf(r)).not.toMatch(/not a loopback address/);
    const r2 = await c.callTool({ name: "measure_speedup", arguments: { endpoint: "http://other.invalid:9/v1", prompts: PROMPTS } });
    expect(textOf(r2)).toMatch(/--allow-endpoint/);
    await c.close();
    await s2.dispose();
  }, 30_000);
});
