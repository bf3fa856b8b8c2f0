/**
 * Helpers for the MCP tests: make sure dist/ is built, make fixtures inside a model root, and a
 * suite that exercises every tool through a connected SDK Client (used for stdio and HTTP alike).
 */
import { copyFileSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { createServer, type CreateServerOptions } from "../../src/mcp/server.js";
import { z } from "zod";
import { expect } from "vitest";
import { fixture } from "../helpers/fixtures.js";
import { builtinWorkload } from "../../src/bench/workload.js";
import { TOOLS } from "../../src/mcp/tools/index.js";
import * as buildModel from "../../src/mcp/tools/build-model.js";
import * as generate from "../../src/mcp/tools/generate-speculative.js";
import * as listModels from "../../src/mcp/tools/list-models.js";
import * as loadModel from "../../src/mcp/tools/load-model.js";
import * as measure from "../../src/mcp/tools/measure-speedup.js";
import * as modelInfo from "../../src/mcp/tools/model-info.js";
import * as tune from "../../src/mcp/tools/tune-draft-k.js";
import * as unloadModel from "../../src/mcp/tools/unload-model.js";
import * as pullModel from "../../src/mcp/tools/pull-model.js";
import * as suggestDraft from "../../src/mcp/tools/suggest-draft.js";

export { REPO, CLI, ensureBuilt } from "../helpers/dist.js";

/** A server made by createServer(opts) and an SDK Client connected to it in memory. */
export async function connectInMemory(opts: CreateServerOptions, name = "test"): Promise<{ client: Client; server: McpServer }> {
  const server = createServer(opts);
  const [a, b] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name, version: "1" });
  await Promise.all([server.connect(a), client.connect(b)]);
  return { client, server };
}

export interface McpFixtures {
  /** Model root holding the target fixture (and the build dir). */
  root: string;
  /** A fixture with an early-exit draft at layer 1, built by the real builder. */
  model: string;
  /** Its name relative to the root. */
  modelName: string;
  /** A directory with only a checkpoint (config + safetensors + tokenizer) for build_model. */
  buildDir: string;
  /** A second root outside of which everything is refused. */
  cleanup(): void;
}

export const FIXTURE_OPTS = { layers: 2, hidden: 32, heads: 2, kvHeads: 1, seed: 7, earlyExit: [1], maxPositions: 2048 };

export async function makeMcpFixtures(tag: string): Promise<McpFixtures> {
  const src = await fixture(FIXTURE_OPTS);
  const root = join(tmpdir(), `spec-decode-mcp-${tag}-${process.pid}`);
  rmSync(root, { recursive: true, force: true });
  const model = join(root, "tiny");
  const buildDir = join(root, "to-build");
  for (const d of [model, join(model, "onnx"), buildDir]) mkdirSync(d, { recursive: true });
  for (const f of readdirSync(src)) if (statSync(join(src, f)).isFile() && !f.startsWith(".")) {
    copyFileSync(join(src, f), join(model, f));
    if (!f.endsWith(".onnx")) copyFileSync(join(src, f), join(buildDir, f));
  }
  for (const f of readdirSync(join(src, "onnx"))) copyFileSync(join(src, "onnx", f), join(model, "onnx", f));
  return { root, model, modelName: "tiny", buildDir, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

/**
 * The shape of each tool's structuredContent (the module's `outputSchema`; tools/list does not carry
 * it, to stay small): raw shapes are closed objects (every top-level field listed), zod objects as given.
 */
const OUTPUT_SCHEMAS: Record<string, z.ZodType> = Object.fromEntries(
  [generate, tune, measure, listModels, loadModel, unloadModel, modelInfo, buildModel, pullModel, suggestDraft].map((t) => {
    const s = t.outputSchema as z.ZodRawShape | z.ZodType;
    return [t.name, s instanceof z.ZodType ? s : z.object(s).strict()];
  }),
);

type CallResult = Awaited<ReturnType<Client["callTool"]>>;

export function textOf(r: CallResult): string {
  return (r.content as { type: string; text?: string }[]).map((c) => c.text ?? "").join("\n");
}

/** Call a tool that must succeed; check structuredContent against the tool's zod output schema. */
export async function callOk(client: Client, name: string, args: Record<string, unknown>, opts: Parameters<Client["callTool"]>[2] = {}) {
  const r = await client.callTool({ name, arguments: args }, undefined, opts);
  if (r.isError) throw new Error(`${name} failed: ${textOf(r)}`);
  expect(r.structuredContent).toBeDefined();
  const schema = OUTPUT_SCHEMAS[name];
  expect(schema, `no output schema known for ${name}`).toBeDefined();
  const parsed = schema!.safeParse(r.structuredContent);
  if (!parsed.success) throw new Error(`${name}: structuredContent does not match its output schema: ${parsed.error.message}`);
  expect(textOf(r).length).toBeGreaterThan(0);
  return r.structuredContent as Record<string, any>;
}

export async function callErr(client: Client, name: string, args: Record<string, unknown>): Promise<string> {
  const r = await client.callTool({ name, arguments: args });
  expect(r.isError, `${name} should have failed; got ${JSON.stringify(r.structuredContent)?.slice(0, 300)}`).toBe(true);
  return textOf(r);
}

/**
 * Exercise every tool on the fixtures, then bad inputs, then check that the server still answers.
 * Returns the names of the tools that were called successfully.
 */
export async function exerciseAllTools(client: Client, fx: McpFixtures): Promise<Set<string>> {
  const called = new Set<string>();
  const ok = async (name: string, args: Record<string, unknown>, opts?: Parameters<Client["callTool"]>[2]) => {
    const r = await callOk(client, name, args, opts);
    called.add(name);
    return r;
  };

  // Tools listed, with schemas and annotations.
  const { tools } = await client.listTools();
  expect(tools.map((t) => t.name).sort()).toEqual(TOOLS.map((t) => t.name).sort());
  for (const t of tools) {
    expect(t.inputSchema.type).toBe("object");
    expect(t.annotations?.readOnlyHint, t.name).toBeTypeOf("boolean");
    expect(t.description?.length ?? 0).toBeGreaterThan(20);
  }

  // Model tools.
  const listed = await ok("list_models", {});
  const found = listed.models.find((m: { dir: string }) => m.dir === fx.model);
  expect(found, JSON.stringify(listed.models.map((m: { dir: string }) => m.dir))).toBeDefined();
  expect(found.status).toBe("ready");
  expect(found.earlyExitLayers).toEqual([1]);
  expect(listed.models.find((m: { dir: string }) => m.dir === fx.buildDir)?.status).toBe("needs-build");

  const info = await ok("model_info", { model: fx.modelName });
  expect(info.numLayers).toBe(2);
  expect(info.earlyExitLayers).toEqual([1]);
  expect(info.methods.map((m: { method: string }) => m.method)).toEqual(expect.arrayContaining(["baseline", "draft", "early-exit", "prompt-lookup", "lookahead", "medusa"]));
  const available = new Set<string>(info.methods.filter((m: { available: boolean }) => m.available).map((m: { method: string }) => m.method));
  expect(available.has("baseline")).toBe(true);
  const registered = new Set<string>(
    info.methods.filter((m: { reason: string }) => !/not implemented in this build/.test(m.reason)).map((m: { method: string }) => m.method),
  );

  const l1 = await ok("load_model", { model: fx.model, threads: 1 });
  expect(l1.threads).toBe(1);
  const l2 = await ok("load_model", { model: fx.model, threads: 1 });
  expect(l2.alreadyLoaded).toBe(true);
  expect(l2.memory.models).toBeGreaterThanOrEqual(1);

  // generate_speculative: baseline, auto, with progress notifications.
  const progress: number[] = [];
  const g = await ok(
    "generate_speculative",
    { model: fx.modelName, prompt: "The quick brown fox", method: "baseline", maxNewTokens: 12, detail: "full" },
    { onprogress: (p) => progress.push(p.progress) },
  );
  expect(g.tokens.length).toBeGreaterThan(0);
  expect(g.tokens.length).toBeLessThanOrEqual(12);
  expect(g.method).toBe("baseline");
  expect(g.stats.newTokens).toBe(g.tokens.length);
  expect(progress.length).toBeGreaterThan(0);
  for (let i = 1; i < progress.length; i++) expect(progress[i]!).toBeGreaterThan(progress[i - 1]!);

  const auto = await ok("generate_speculative", {
    model: fx.model,
    messages: [{ role: "user", content: "Say hello" }],
    maxNewTokens: 6,
    sampling: { temperature: 0.8, topP: 0.9 },
    seed: 3,
    stop: ["zzzz"],
  });
  expect(auto.methodReason.length).toBeGreaterThan(3);
  // detail "summary" (the default): the numbers to act on, no token ids or per-position rows.
  expect(auto.tokens).toBeUndefined();
  expect(Object.keys(auto.stats)).not.toContain("perPositionAcceptance");
  expect(auto.stats.tokensPerSecond).toBeTypeOf("number");
  expect(available.has(auto.method)).toBe(true);

  // Same greedy text from every available method (speculation must not change a token).
  for (const method of available) {
    if (method === "baseline" || method === "draft" || method === "medusa") continue;
    const r = await ok("generate_speculative", {
      model: fx.model,
      prompt: "The quick brown fox",
      method,
      maxNewTokens: 12,
      detail: "full",
      ...(method === "early-exit" ? { methodOptions: { exitLayer: 1 }, k: 2 } : {}),
    });
    expect(r.tokens, method).toEqual(g.tokens);
  }

  let msProgress = 0;
  // measure_speedup: an A/A baseline check plus every available draft-free / early-exit method.
  const extra = [...available].filter((m) => m === "prompt-lookup" || m === "lookahead" || m === "early-exit");
  const ms = await ok(
    "measure_speedup",
    {
      model: fx.model,
      methods: [{ method: "baseline", label: "baseline-again" }, ...extra.map((m) => (m === "early-exit" ? { method: m, methodOptions: { exitLayer: 1 }, k: 2 } : m))],
      prompts: ["one two three one two three one two", { promptIds: [1, 5, 9, 5, 9, 5] }],
      maxNewTokens: 8,
      repeats: 2,
    },
    { onprogress: () => void msProgress++ },
  );
  expect(msProgress).toBeGreaterThan(0);
  expect(ms.baseline.speedup.mean).toBe(1);
  expect(ms.arms.length).toBe(1 + extra.length);
  for (const a of ms.arms) {
    expect(a.greedyIdentical, a.label).toBe(true);
    expect(a.speedup.n).toBe(4);
    expect(a.speedup.low).not.toBeNull();
  }

  // The built-in workload, one category.
  const wl = await ok("measure_speedup", { model: fx.model, methods: ["prompt-lookup"].filter((m) => available.has(m)).concat(available.has("prompt-lookup") ? [] : ["baseline"]), workload: "builtin:qa", maxNewTokens: 4, repeats: 1, warmup: false });
  expect(wl.prompts).toBe(builtinWorkload("qa").length);

  // tune_draft_k: needs early-exit (or draft) to be registered.
  if (available.has("early-exit")) {
    const t = await ok("tune_draft_k", {
      model: fx.model,
      exitLayer: 1,
      ks: [1, 2],
      controllers: [],
      prompts: ["The quick brown fox"],
      maxNewTokens: 8,
      repeats: 1,
      warmup: false,
      detail: "full",
    });
    expect(t.method).toBe("early-exit");
    expect(t.points.map((p: { k: number }) => p.k)).toEqual([1, 2]);
    expect(t.predictedCurve.length).toBeGreaterThanOrEqual(8);
    // Peer commands only for a recommended setting (test/mcp/tune-verdict.test.ts covers both cases).
    expect(t.verdict.verdict).toMatch(/^(speculation helps here|no clear gain|use plain decoding)$/);
    if (t.recommended) expect(t.equivalents.vllm.num_speculative_tokens).toBe(t.recommended.k);
    else expect(t.equivalents).toBeNull();
  } else {
    const text = await callErr(client, "tune_draft_k", { model: fx.model, exitLayer: 1, ks: [1, 2], controllers: [], prompts: ["x"], maxNewTokens: 4, repeats: 1 });
    expect(text).toMatch(/not available/);
    called.add("tune_draft_k");
  }

  // build_model on a bare checkpoint.
  const b = await ok("build_model", { model: fx.buildDir, earlyExit: [1] }, { onprogress: () => undefined });
  expect(b.files.some((f: string) => f.endsWith("model.onnx"))).toBe(true);
  expect(b.files.some((f: string) => f.endsWith("early_exit_1.onnx"))).toBe(true);
  const built = await ok("generate_speculative", { model: fx.buildDir, promptIds: [1, 5, 9], method: "baseline", maxNewTokens: 4, detail: "full" });
  expect(built.tokens.length).toBeGreaterThan(0);

  // Hub tools: suggest_draft checks a local pair; pull_model, whose roots here exclude the Hugging Face
  // cache, refuses to write outside them (its download path runs against a local Hub in test/hub/mcp-hub.test.ts).
  const pair = await ok("suggest_draft", { model: fx.model, draft: fx.model });
  expect(pair.checks[0].compatible).toBe(true);
  expect(await callErr(client, "pull_model", { model: "org/name" })).toMatch(/not a model root[\s\S]*--model-root/);
  called.add("pull_model");

  const u = await ok("unload_model", { model: fx.model });
  expect(u.unloaded).toBeGreaterThanOrEqual(1);

  // Bad input: each one an isError result whose text says what to do.
  expect(await callErr(client, "generate_speculative", { model: "no-such-model", prompt: "x" })).toMatch(/list_models/);
  expect(await callErr(client, "model_info", { model: "/etc" })).toMatch(/outside the model roots[\s\S]*--model-root/);
  expect(await callErr(client, "model_info", { model: "../../../../../../etc" })).toMatch(/outside the model roots|not found/);
  expect(await callErr(client, "generate_speculative", { model: fx.model, prompt: "x", maxNewTokens: 0 })).toMatch(/maxNewTokens/);
  expect(await callErr(client, "generate_speculative", { model: fx.model, prompt: "x", messages: [{ role: "user", content: "y" }] })).toMatch(/exactly one/);
  expect(await callErr(client, "generate_speculative", { model: fx.model, prompt: "x", method: "warp-drive" })).toMatch(/method/i);
  expect(await callErr(client, "generate_speculative", { model: fx.model, prompt: "x", sampling: { temperature: -1 } })).toMatch(/temperature/);
  expect(await callErr(client, "generate_speculative", { model: fx.model, prompt: "x", method: "draft" })).toMatch(/draft/);
  // Medusa with a directory that holds no heads: "not available" before the method exists, then a heads error.
  expect(await callErr(client, "generate_speculative", { model: fx.model, prompt: "x", method: "medusa", heads: fx.model })).toMatch(
    registered.has("medusa") ? /medusa|heads/i : /not available/,
  );
  expect(await callErr(client, "build_model", { model: fx.model, earlyExit: [5] })).toMatch(/out of range|1 to 1/);
  expect(await callErr(client, "measure_speedup", { model: fx.model, methods: ["draft"], prompts: ["x"] })).toMatch(/draft/);
  expect(await callErr(client, "generate_speculative", { model: fx.model, prompt: "x", method: "early-exit", methodOptions: { exitLayer: 5 } })).toMatch(/exitLayer|early-exit/);
  expect(await callErr(client, "generate_speculative", { model: fx.model, prompt: "x", draft: "/etc", method: "draft" })).toMatch(/outside the model roots/);
  const unknown = await client.callTool({ name: "no_such_tool", arguments: {} }).catch((e: Error) => ({ isError: true, content: [{ type: "text", text: e.message }] }));
  expect(unknown.isError).toBe(true);

  // Still answering.
  const again = await ok("generate_speculative", { model: fx.model, promptIds: [1, 5, 9], method: "baseline", maxNewTokens: 4, detail: "full" });
  expect(again.tokens.length).toBeGreaterThan(0);
  expect((await client.listTools()).tools.length).toBe(TOOLS.length);
  return called;
}

/**
 * Cancel a long generation and check that the server stopped it (its debug log reports the run
 * finished as "cancelled" with fewer tokens than asked) and stays usable.
 */
export async function checkCancellation(client: Client, fx: McpFixtures, serverLog: () => string): Promise<void> {
  const ac = new AbortController();
  let seen = 0;
  const max = 2000;
  const p = client.callTool(
    { name: "generate_speculative", arguments: { model: fx.model, promptIds: [1, 5, 9], method: "baseline", maxNewTokens: max } },
    undefined,
    {
      signal: ac.signal,
      timeout: 60_000,
      onprogress: (pr) => {
        seen = pr.progress;
        ac.abort("test cancels");
      },
    },
  );
  await expect(p).rejects.toThrow();
  expect(seen).toBeGreaterThanOrEqual(1);
  const re = /generate_speculative: baseline, (\d+) of 2000 tokens, finish (\w+)/;
  const deadline = performance.now() + 20_000;
  let m: RegExpExecArray | null = null;
  while (!(m = re.exec(serverLog())) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  expect(m, "the server never logged the end of the cancelled generation").not.toBeNull();
  expect(m![2]).toBe("cancelled");
  expect(Number(m![1])).toBeLessThan(max);
  // The model lock was released: the next call on the same model runs.
  const r = await callOk(client, "generate_speculative", { model: fx.model, promptIds: [1, 5, 9], method: "baseline", maxNewTokens: 2, detail: "full" });
  expect(r.tokens.length).toBeGreaterThan(0);
}
