/**
 * Replays, over HTTP with the SDK's real Client, each way a hostile or careless client brought the
 * server down, blocked it or escaped its roots (issue 13), each followed by a good call that must
 * succeed. The server's RSS is checked at the end.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import onnxProto from "onnx-proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { callOk, rawPost, rawSession, rssMiB, startHarness, textOf, type Harness } from "./helpers.js";

const { onnx } = onnxProto as unknown as { onnx: typeof import("onnx-proto").onnx };

let h: Harness;
let rss0 = 0;
const good = () => ({ model: h.fx.model, promptIds: [1, 2, 3], maxNewTokens: 4, method: "baseline", detail: "full" });

async function expectError(name: string, args: Record<string, unknown>, re: RegExp) {
  const r = await h.client.callTool({ name, arguments: args });
  expect(r.isError, `${name} ${JSON.stringify(args).slice(0, 200)} should fail: ${textOf(r).slice(0, 300)}`).toBe(true);
  expect(textOf(r)).toMatch(re);
  expect(textOf(r)).not.toMatch(/looks like a bug/);
  // ... and the server still serves a good call.
  const ok = await callOk(h.client, "generate_speculative", good());
  expect(ok.tokens).toHaveLength(4);
  return textOf(r);
}

beforeAll(async () => {
  h = await startHarness("hostile", { storeOptions: { maxBytes: 64 * 2 ** 20 }, maxSessions: 4, maxSessionsPerClient: 3, maxBodyBytes: 2 * 2 ** 20 });
  await callOk(h.client, "generate_speculative", good());
  rss0 = rssMiB();
}, 120_000);

afterAll(async () => {
  await h?.close();
});

describe("no option can blow up memory", () => {
  it("lookahead window / ngram / guesses and prompt-lookup sizes are bounded by documented maxima", async () => {
    for (const methodOptions of [{ window: 1000000 }, { ngram: 1000000 }, { window: 50000 }, { guesses: 1e9 }, { numPredict: 1e7 }, { maxNgram: 1e6 }]) {
      const key = Object.keys(methodOptions)[0]!;
      await expectError("generate_speculative", { ...good(), method: "lookahead", methodOptions }, new RegExp(key));
    }
    const rss = rssMiB();
    expect(rss - rss0).toBeLessThan(400);
  });

  it("options within the maxima are still checked against the model before anything is built", async () => {
    const text = await expectError(
      "generate_speculative",
      { ...good(), method: "lookahead", methodOptions: { window: 64, ngram: 16, guesses: 64 } },
      /verification forward of \d+ tokens.*at most \d+/,
    );
    expect(text).toMatch(/window \(W\), ngram \(N\) and guesses \(G\)/);
    // A sized round inside the limits runs and stays exact.
    const base = await callOk(h.client, "generate_speculative", { ...good(), maxNewTokens: 12 });
    const la = await callOk(h.client, "generate_speculative", { ...good(), maxNewTokens: 12, method: "lookahead", methodOptions: { window: 8, ngram: 4, guesses: 8 } });
    expect(la.tokens).toEqual(base.tokens);
  });

  it("medusa trees, stop strings, prompt ids and threads are bounded", async () => {
    await expectError("generate_speculative", { ...good(), methodOptions: { tree: Array.from({ length: 600 }, (_, i) => [i % 1000]) } }, /tree/);
    await expectError("generate_speculative", { ...good(), stop: Array.from({ length: 17 }, () => "x") }, /stop/);
    await expectError("generate_speculative", { ...good(), stop: ["y".repeat(300)] }, /stop/);
    await expectError("load_model", { model: h.fx.model, threads: 1024 }, /threads/);
    await expectError("load_model", { model: h.fx.model, threads: availableParallelism() + 1 }, /threads/);
    await callOk(h.client, "load_model", { model: h.fx.model, threads: 1 });
  });

  it("a prompt is capped in bytes before it is tokenized", async () => {
    // Over the schema's cap (1 MiB) ...
    await expectError("generate_speculative", { model: h.fx.model, prompt: "a".repeat(1.5 * 2 ** 20), maxNewTokens: 2 }, /prompt/);
    // ... and over the model's (64 bytes per context position: 2048 x 64 = 128 KiB), checked before tokenizing.
    const t0 = performance.now();
    const text = await expectError("generate_speculative", { model: h.fx.model, prompt: "hello world ".repeat(20000), maxNewTokens: 2 }, /bytes.*before tokenizing/);
    expect(text).toMatch(/limit for this model is 131072 bytes/);
    expect(performance.now() - t0).toBeGreaterThan(0);
  });
});

describe("nothing escapes the model roots", () => {
  it("build_model refuses to write through a dangling symlink (nothing is created outside)", async () => {
    const dir = join(h.fx.root, "dangling");
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, "onnx"), { recursive: true });
    for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]) {
      if (existsSync(join(h.fx.buildDir, f))) writeFileSync(join(dir, f), readFileSync(join(h.fx.buildDir, f)));
    }
    const target = join(h.outside, "planted", "model.onnx");
    symlinkSync(target, join(dir, "onnx", "model.onnx"));
    await expectError("build_model", { model: dir }, /symbolic link|does not exist/);
    expect(existsSync(target)).toBe(false);
    // A link for the whole onnx/ folder is refused too.
    rmSync(join(dir, "onnx"), { recursive: true, force: true });
    symlinkSync(join(h.outside, "planted-dir"), join(dir, "onnx"));
    await expectError("build_model", { model: dir }, /symbolic link|does not exist/);
    expect(existsSync(join(h.outside, "planted-dir"))).toBe(false);
  });

  it("genai_config.json cannot name a model file outside the directory", async () => {
    const dir = h.copyModel("genai-escape");
    writeFileSync(join(h.outside, "model.onnx"), readFileSync(join(h.fx.model, "onnx", "model.onnx")));
    const cfg = { model: { type: "llama", context_length: 2048, decoder: { filename: "../../" + h.outside.split("/").slice(-1)[0] + "/model.onnx" } } };
    writeFileSync(join(dir, "genai_config.json"), JSON.stringify(cfg));
    await expectError("load_model", { model: dir }, /outside the model directory/);
    cfg.model.decoder.filename = h.outside + "/model.onnx";
    writeFileSync(join(dir, "genai_config.json"), JSON.stringify(cfg));
    await expectError("generate_speculative", { ...good(), model: dir }, /outside the model directory/);
  });

  it("ONNX external-data locations cannot point outside the directory", async () => {
    const dir = h.copyModel("external-escape");
    writeFileSync(join(h.outside, "w.bin"), Buffer.alloc(64));
    const bytes = onnx.ModelProto.encode({
      irVersion: 8,
      opsetImport: [{ domain: "", version: 17 }],
      graph: {
        name: "g",
        initializer: [
          {
            name: "w",
            dims: [16],
            dataType: 1,
            dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
            externalData: [
              { key: "location", value: `../../${h.outside.split("/").slice(-1)[0]}/w.bin` },
              { key: "offset", value: "0" },
              { key: "length", value: "64" },
            ],
          },
        ],
      },
    }).finish();
    writeFileSync(join(dir, "onnx", "model.onnx"), bytes);
    await expectError("load_model", { model: dir }, /external data of tensor "w".*outside the model directory/);
  });

  it("a link inside the directory that leaves the roots is refused", async () => {
    const dir = h.copyModel("tokenizer-link");
    writeFileSync(join(h.outside, "tokenizer.json"), readFileSync(join(dir, "tokenizer.json")));
    rmSync(join(dir, "tokenizer.json"));
    symlinkSync(join(h.outside, "tokenizer.json"), join(dir, "tokenizer.json"));
    await expectError("generate_speculative", { ...good(), model: dir }, /outside the model roots/);
  });
});

describe("in-flight work survives", () => {
  it("unload_model during generations waits for them: running and queued calls complete with every token", async () => {
    const dir = h.copyModel("unload-busy");
    const calls = [0, 1, 2].map((i) =>
      h.client.callTool({ name: "generate_speculative", arguments: { model: dir, promptIds: [1, 2, 3 + i], maxNewTokens: 400, method: "baseline", detail: "full" } }),
    );
    await new Promise((r) => setTimeout(r, 100));
    const un = await callOk(h.client, "unload_model", { model: dir });
    for (const r of await Promise.all(calls)) {
      expect(r.isError, textOf(r)).toBeFalsy();
      const s = r.structuredContent as { tokens: number[]; finishReason: string };
      expect(s.finishReason === "eos" || s.tokens.length === 400).toBe(true);
    }
    expect(un.unloaded).toBe(1);
    // Loads again on the next call.
    await callOk(h.client, "generate_speculative", { ...good(), model: dir });
  });

  it("build_model during generations on the same model waits for them; the rebuilt model then serves identical tokens", async () => {
    const dir = h.fx.buildDir;
    await callOk(h.client, "build_model", { model: dir });
    const before = await callOk(h.client, "generate_speculative", { model: dir, promptIds: [1, 2, 3], maxNewTokens: 8, method: "baseline", detail: "full" });
    await callOk(h.client, "unload_model", { model: dir }); // the calls below all start with a load, then queue
    const calls = [0, 1, 2, 3].map((i) =>
      h.client.callTool({ name: "generate_speculative", arguments: { model: dir, promptIds: [1, 2, 3 + i], maxNewTokens: 300, method: "baseline" } }),
    );
    await new Promise((r) => setTimeout(r, 100));
    await callOk(h.client, "build_model", { model: dir });
    for (const r of await Promise.all(calls)) expect(r.isError, textOf(r)).toBeFalsy();
    const after = await callOk(h.client, "generate_speculative", { model: dir, promptIds: [1, 2, 3], maxNewTokens: 8, method: "baseline", detail: "full" });
    expect(after.tokens).toEqual(before.tokens);
  }, 60_000);

  it("a client that disconnects over HTTP cancels its generation", async () => {
    const dir = h.copyModel("disconnect");
    const sid = await rawSession(h.srv.url);
    const call = JSON.stringify({
      jsonrpc: "2.0",
      id: 7,
      method: "tools/call",
      params: { name: "generate_speculative", arguments: { model: dir, promptIds: [1, 2, 3], maxNewTokens: 2000, method: "baseline" } },
    });
    const before = h.logs.length;
    const r = await rawPost(h.srv.url, call, { "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18" }, 300);
    // Fails only if the call answered within 300 ms: show what it answered.
    expect(r.error, `answered ${r.status}: ${r.body.slice(0, 500)}`).toBeDefined();
    const deadline = Date.now() + 10_000;
    while (!h.logs.slice(before).some((l) => /cancelling request\(s\) 7/.test(l)) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
    expect(h.logs.slice(before).some((l) => /cancelling request\(s\) 7/.test(l))).toBe(true);
    // ... and the generation itself stopped early (not after its 2000 tokens).
    while (!h.logs.slice(before).some((l) => /of 2000 tokens, finish cancelled/.test(l)) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
    const done = h.logs.slice(before).find((l) => /of 2000 tokens, finish/.test(l));
    expect(done).toMatch(/generate_speculative: baseline, \d+ of 2000 tokens, finish cancelled/);
    expect(Number(/, (\d+) of 2000/.exec(done!)![1])).toBeLessThan(2000);
    // The model is free again: a call on it is served.
    const ok = await callOk(h.client, "generate_speculative", { ...good(), model: dir });
    expect(ok.tokens).toHaveLength(4);
  });
});

describe("sessions, bodies and damaged models", () => {
  it("sessions never closed do not lock others out: the oldest idle one is evicted", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await rawSession(h.srv.url));
    expect(h.srv.sessions()).toBeLessThanOrEqual(4);
    // The SDK client's own session may have been evicted as the oldest idle: a new one is served.
    await h.client.close().catch(() => undefined);
    h.client = await startHarnessClient();
    await callOk(h.client, "list_models", {});
  });

  it("a 10 MB body gets 413, not a connection reset", async () => {
    const sid = await rawSession(h.srv.url);
    const big = Buffer.alloc(10 * 2 ** 20, 0x61);
    for (let i = 0; i < 3; i++) {
      const r = await rawPost(h.srv.url, big, { "mcp-session-id": sid });
      expect(r.error, r.error).toBeUndefined();
      expect(r.status).toBe(413);
    }
  });

  it("a truncated model is not reported ready and does not load; an overstated context is capped", async () => {
    const dir = h.copyModel("truncated");
    const file = join(dir, "onnx", "model.onnx");
    truncateSync(file, Math.floor(statSync(file).size / 2));
    const list = await callOk(h.client, "list_models", {});
    const entry = (list.models as { name: string; status: string; error: string | null }[]).find((m) => m.name === "truncated")!;
    expect(entry.status).not.toBe("ready");
    expect(entry.error).toMatch(/truncated/);
    await expectError("load_model", { model: dir }, /truncated/);

    const over = h.copyModel("overstated");
    const cfg = JSON.parse(readFileSync(join(over, "config.json"), "utf8")) as Record<string, unknown>;
    cfg.max_position_embeddings = 100000;
    writeFileSync(join(over, "config.json"), JSON.stringify(cfg));
    // The graph supports 2048 positions: the request is refused up front, no onnxruntime Gather error.
    await expectError("generate_speculative", { model: over, promptIds: [1, 2, 3], maxNewTokens: 3000, method: "baseline" }, /context of 2048/);
  });

  it("RSS stays bounded across the suite", () => {
    expect(rssMiB() - rss0).toBeLessThan(400);
  });
});

async function startHarnessClient() {
  const { Client } = await import("@modelcontextprotocol/sdk/client/index.js");
  const { StreamableHTTPClientTransport } = await import("@modelcontextprotocol/sdk/client/streamableHttp.js");
  const c = new Client({ name: "fresh", version: "1" });
  await c.connect(new StreamableHTTPClientTransport(new URL(h.srv.url)));
  return c;
}
