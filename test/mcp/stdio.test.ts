/**
 * The built server over stdio, driven by the SDK's real Client: list tools, call each on fixtures,
 * check structuredContent against the output schemas, bad input -> isError, still answering,
 * progress notifications and cancellation.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TOOLS } from "../../src/mcp/tools/index.js";
import { CLI, REPO, checkCancellation, ensureBuilt, exerciseAllTools, makeMcpFixtures, textOf, type McpFixtures } from "./helpers.js";

describe("MCP server over stdio (spawned dist/cli/main.js serve)", () => {
  let fx: McpFixtures;
  let client: Client;
  let transport: StdioClientTransport;
  let stderr = "";

  beforeAll(async () => {
    ensureBuilt();
    fx = await makeMcpFixtures("stdio");
    transport = new StdioClientTransport({
      command: process.execPath,
      args: [CLI, "serve", "--model-root", fx.root, "--threads", "1", "--log-level", "debug", "--allow-endpoint", "http://allowed.invalid:9"],
      cwd: REPO,
      env: { ...(process.env as Record<string, string>), SPEC_DECODE_MODEL_ROOTS: "" },
      stderr: "pipe",
    });
    transport.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    client = new Client({ name: "spec-decode-test", version: "1.0.0" });
    await client.connect(transport);
  });

  afterAll(async () => {
    await client?.close();
    fx?.cleanup();
  });

  it("identifies itself and logs to stderr only", async () => {
    expect(client.getServerVersion()?.name).toBe("speculative-decoding");
    expect(client.getInstructions()).toMatch(/list_models/);
    // The server logged its start to stderr; stdout carried only JSON-RPC (or the client would have failed).
    await new Promise((r) => setTimeout(r, 50));
    expect(stderr).toMatch(/MCP server ready on stdio/);
  });

  it("calls every tool, rejects bad input with isError, and keeps answering", async () => {
    const called = await exerciseAllTools(client, fx);
    expect([...called].sort()).toEqual(TOOLS.map((t) => t.name).sort());
  });

  it("stops a cancelled generation promptly", async () => {
    await checkCancellation(client, fx, () => stderr);
  });

  it("serve --allow-endpoint lets measure_speedup reach that prefix only (others refused, naming the flag)", async () => {
    const allowed = await client.callTool({ name: "measure_speedup", arguments: { endpoint: "http://allowed.invalid:9/v1", prompts: ["x"], maxNewTokens: 2, repeats: 1 } });
    expect(allowed.isError).toBe(true); // past the policy; the host does not resolve
    expect(textOf(allowed)).toMatch(/Error \(ENDPOINT\)/);
    const other = await client.callTool({ name: "measure_speedup", arguments: { endpoint: "http://other.invalid:9/v1", prompts: ["x"] } });
    expect(other.isError).toBe(true);
    expect(textOf(other)).toMatch(/not a loopback address.*--allow-endpoint/);
  });

  it("serve refuses a malformed --allow-endpoint at startup, and with --openai", async () => {
    const run = promisify(execFile);
    const bad = await run(process.execPath, [CLI, "serve", "--allow-endpoint", "gpu-box:8000"], { cwd: REPO }).catch((e) => e);
    expect(bad.code).not.toBe(0);
    expect(String(bad.stderr)).toMatch(/--allow-endpoint must be an http\(s\) URL/);
    const openai = await run(process.execPath, [CLI, "serve", "--openai", "--model", fx.model, "--allow-endpoint", "http://h:1"], { cwd: REPO }).catch((e) => e);
    expect(openai.code).not.toBe(0);
    expect(String(openai.stderr)).toMatch(/--allow-endpoint applies to the MCP server/);
  });
});
