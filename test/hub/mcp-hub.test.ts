/**
 * The MCP surface with the Hub: pull_model (progress notifications, confined to the cache), repo ids
 * in the other tools (cache only, never a download), list_models' hub fields, suggest_draft.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/mcp/context.js";
import { fixture, tempDir } from "../helpers/fixtures.js";
import { connectInMemory } from "../mcp/helpers.js";
import { FakeHub } from "./fake-hub.js";

let hub: FakeHub;
let client: Client;
let close: () => Promise<void>;
let model: string;

type CallResult = Awaited<ReturnType<Client["callTool"]>>;
const text = (r: CallResult) => (r.content as { text?: string }[]).map((c) => c.text ?? "").join("\n");

beforeAll(async () => {
  model = await fixture({ layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 13 });
  hub = new FakeHub();
  await hub.start();
  hub.addRepo("test-org/mcp-tiny", model);
  hub.addRepo("test-org/mcp-st", model, { include: (p) => !p.startsWith("onnx/") });
  const root = tempDir("mcp-hub");
  // This file runs in its own process (pool: forks), so the server reads these like a user's environment.
  Object.assign(process.env, { HF_ENDPOINT: hub.url, HF_HOME: join(root, "hf"), HF_HUB_CACHE: join(root, "hf", "hub"), SPEC_DECODE_CACHE: join(root, "ours") });
  for (const k of ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"]) delete process.env[k];
  const c = await connectInMemory({ roots: [join(root, "ours"), join(root, "hf", "hub")], logger: silentLogger });
  client = c.client;
  const server = c.server;
  close = async () => {
    await client.close();
    await server.close();
  };
}, 240_000);

afterAll(async () => {
  await close?.();
  await hub?.stop();
});

describe("MCP tools with Hugging Face repo ids", () => {
  it("a repo id that is not cached is refused without a download, naming pull_model", async () => {
    const mark = hub.log.length;
    const r = await client.callTool({ name: "generate_speculative", arguments: { model: "test-org/mcp-tiny", prompt: "the cat", maxNewTokens: 4 } });
    expect(r.isError).toBe(true);
    expect(text(r)).toMatch(/HUB_NOT_CACHED/);
    expect(text(r)).toMatch(/pull_model/);
    expect(hub.log.length).toBe(mark);
  });

  it("pull_model downloads with byte progress notifications; then every tool takes the repo id", async () => {
    const progress: { progress: number; total?: number }[] = [];
    const r = await client.callTool({ name: "pull_model", arguments: { model: "test-org/mcp-tiny" } }, undefined, {
      onprogress: (p) => progress.push({ progress: p.progress, total: p.total }),
    });
    expect(r.isError, text(r)).toBeFalsy();
    const out = r.structuredContent as { dir: string; files: string[]; totalBytes: number; modelFile: string };
    expect(out.modelFile).toBe("onnx/model.onnx");
    expect(out.dir).toMatch(/models--test-org--mcp-tiny\/snapshots\/[0-9a-f]{40}$/);
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.at(-1)).toEqual({ progress: out.totalBytes, total: out.totalBytes });

    const gen = await client.callTool({ name: "generate_speculative", arguments: { model: "test-org/mcp-tiny", draft: "test-org/mcp-tiny:fp32", prompt: "the cat", maxNewTokens: 6 } });
    expect(gen.isError, text(gen)).toBeFalsy();
    const local = await client.callTool({ name: "model_info", arguments: { model: "test-org/mcp-tiny" } });
    expect(local.isError, text(local)).toBeFalsy();

    const list = await client.callTool({ name: "list_models", arguments: {} });
    const models = (list.structuredContent as { models: { name: string; hub: { repo: string; refs: string[]; variants: string[]; bytes: number; needsBuild: boolean } | null }[] }).models;
    const entry = models.find((m) => m.name === "test-org/mcp-tiny");
    expect(entry?.hub).toMatchObject({ repo: "test-org/mcp-tiny", refs: ["main"], variants: ["fp32"], needsBuild: false });
    expect(entry!.hub!.bytes).toBeGreaterThan(out.totalBytes - 1);
  }, 120_000);

  it("a safetensors-only repo shows as needing a build until pull_model builds it into our cache", async () => {
    // Put the snapshot in the cache without building (the library with download: false cannot build).
    const { pullSnapshot } = await import("../../src/hub/pull.js");
    await pullSnapshot({ repo: "test-org/mcp-st" });
    let list = await client.callTool({ name: "list_models", arguments: {} });
    let st = (list.structuredContent as { models: { name: string; hub: { needsBuild: boolean } | null }[] }).models.find((m) => m.name === "test-org/mcp-st");
    expect(st?.hub?.needsBuild).toBe(true);
    const refused = await client.callTool({ name: "load_model", arguments: { model: "test-org/mcp-st" } });
    expect(text(refused)).toMatch(/pull_model.*builds ONNX/);
    // build_model never writes into the HF snapshot (shared with Python tools): it names pull_model.
    const snapshotBuild = await client.callTool({ name: "build_model", arguments: { model: "test-org/mcp-st" } });
    expect(snapshotBuild.isError).toBe(true);
    expect(text(snapshotBuild)).toMatch(/never writes into the HF cache.*pull_model/);
    const pulled = await client.callTool({ name: "pull_model", arguments: { model: "test-org/mcp-st" } });
    expect(pulled.isError, text(pulled)).toBeFalsy();
    expect((pulled.structuredContent as { built: boolean; dir: string }).built).toBe(true);
    expect((pulled.structuredContent as { dir: string }).dir).toContain(join("ours", "hub-builds"));
    list = await client.callTool({ name: "list_models", arguments: {} });
    st = (list.structuredContent as { models: { name: string; hub: { needsBuild: boolean } | null }[] }).models.find((m) => m.name === "test-org/mcp-st");
    expect(st?.hub?.needsBuild).toBe(false);
    const loaded = await client.callTool({ name: "load_model", arguments: { model: "test-org/mcp-st" } });
    expect(loaded.isError, text(loaded)).toBeFalsy();
  }, 120_000);

  it("pull_model rejects what is not a repo id, and suggest_draft answers from the table", async () => {
    const bad = await client.callTool({ name: "pull_model", arguments: { model: "../etc/passwd" } });
    expect(bad.isError).toBe(true);
    expect(text(bad)).toMatch(/not a Hugging Face repo id/);
    const s = await client.callTool({ name: "suggest_draft", arguments: { model: "meta-llama/Llama-3.1-8B-Instruct" } });
    expect(s.isError, text(s)).toBeFalsy();
    const o = s.structuredContent as { family: string; drafts: { repo: string }[]; checks: { compatible: boolean | null }[] };
    expect(o.family).toBe("Llama 3.x");
    expect(o.drafts[0]!.repo).toBe("meta-llama/Llama-3.2-1B-Instruct");
    expect(o.checks[0]!.compatible).toBeNull();
    const pair = await client.callTool({ name: "suggest_draft", arguments: { model: "test-org/mcp-tiny", draft: "test-org/mcp-st" } });
    expect((pair.structuredContent as { checks: { compatible: boolean | null }[] }).checks[0]!.compatible).toBe(true);
  }, 60_000);
});
