/**
 * The Streamable HTTP transport on loopback: the same tool suite through the SDK's real Client
 * against the spawned CLI (`serve --http --port 0`), plus the transport's security checks
 * (foreign Origin, foreign Host, bearer token, non-loopback bind without a token).
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { spawn, type ChildProcess } from "node:child_process";
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/mcp/context.js";
import { startHttpServer, type RunningHttpServer } from "../../src/mcp/http.js";
import { TOOLS } from "../../src/mcp/tools/index.js";
import { CLI, REPO, checkCancellation, ensureBuilt, exerciseAllTools, makeMcpFixtures, type McpFixtures } from "./helpers.js";

const INIT = {
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
};

function rawPost(url: string, headers: Record<string, string>, body: unknown = INIT): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname, port: u.port, path: u.pathname, method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers } },
      (res) => {
        let data = "";
        res.on("data", (d) => (data += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: data }));
        // An accepted initialize opens an SSE stream or returns JSON; either way we have the status.
        if (res.statusCode === 200) {
          res.destroy();
          resolve({ status: 200, body: "" });
        }
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

describe("MCP server over Streamable HTTP (spawned dist/cli/main.js serve --http)", () => {
  let fx: McpFixtures;
  let proc: ChildProcess;
  let url: string;
  let client: Client;
  let serverLog = "";

  beforeAll(async () => {
    ensureBuilt();
    fx = await makeMcpFixtures("http");
    proc = spawn(process.execPath, [CLI, "serve", "--http", "--port", "0", "--model-root", fx.root, "--threads", "1", "--log-level", "debug"], {
      cwd: REPO,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    proc.stdout!.on("data", (d) => (stdout += d));
    url = await new Promise<string>((resolve, reject) => {
      let err = "";
      const timer = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 30_000);
      proc.stderr!.on("data", (d: Buffer) => {
        err += d.toString();
        serverLog += d.toString();
        const m = /spec-decode serve: listening on (http:\/\/\S+)/.exec(err);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      proc.once("exit", (code) => reject(new Error(`server exited with ${code}: ${err}`)));
    });
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
    client = new Client({ name: "spec-decode-test", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(url)));
    expect(stdout).toBe("");
  });

  afterAll(async () => {
    await client?.close().catch(() => undefined);
    if (proc && proc.exitCode === null) {
      proc.kill("SIGTERM");
      await new Promise((r) => proc.once("exit", r));
    }
    fx?.cleanup();
  });

  it("calls every tool, rejects bad input with isError, and keeps answering", async () => {
    const called = await exerciseAllTools(client, fx);
    expect([...called].sort()).toEqual(TOOLS.map((t) => t.name).sort());
  });

  it("stops a cancelled generation promptly", async () => {
    await checkCancellation(client, fx, () => serverLog);
  });

  it("rejects a foreign Origin and a foreign Host, accepts its own origin", async () => {
    const evil = await rawPost(url, { origin: "http://evil.example" });
    expect(evil.status).toBe(403);
    expect(evil.body).toMatch(/Origin http:\/\/evil\.example is not allowed/);
    const port = new URL(url).port;
    expect((await rawPost(url, { host: `attacker.example:${port}` })).status).toBe(403);
    expect((await rawPost(url, { origin: `http://127.0.0.1:${port}` })).status).toBe(200);
    expect((await rawPost(url, { origin: `http://localhost:${port}` })).status).toBe(200);
    // A request without a session that is not initialize is refused; the server keeps running.
    expect((await rawPost(url, {}, { jsonrpc: "2.0", id: 2, method: "tools/list" })).status).toBe(400);
    expect((await client.listTools()).tools.length).toBe(TOOLS.length);
  });

  it("closes idle sessions", async () => {
    const srv = await startHttpServer({ host: "127.0.0.1", port: 0, roots: [fx.root], logger: silentLogger, sessionIdleMs: 600 });
    try {
      const c = new Client({ name: "t", version: "1" });
      await c.connect(new StreamableHTTPClientTransport(new URL(srv.url)));
      expect(srv.sessions()).toBe(1);
      // A client that keeps calling keeps its session: 8 calls 150 ms apart span twice the idle time
      // (the gaps leave 450 ms of slack for a slow call on a loaded machine).
      for (let i = 0; i < 8; i++) {
        await new Promise((r) => setTimeout(r, 150));
        expect((await c.listTools()).tools.length).toBe(TOOLS.length);
      }
      expect(srv.sessions()).toBe(1);
      // One that only holds its event stream open (or went away without DELETE) is closed after the idle time.
      const deadline = Date.now() + 5000;
      while (srv.sessions() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(srv.sessions()).toBe(0);
      await c.close();
    } finally {
      await srv.close();
    }
  });

  it("requires a bearer token when configured, and refuses a non-loopback bind without one", async () => {
    await expect(startHttpServer({ host: "0.0.0.0", port: 0, roots: [fx.root], logger: silentLogger, token: "" })).rejects.toThrow(/bearer token/);
    let srv: RunningHttpServer | undefined;
    try {
      srv = await startHttpServer({ host: "127.0.0.1", port: 0, roots: [fx.root], logger: silentLogger, token: "s3cret" });
      expect((await rawPost(srv.url, {})).status).toBe(401);
      expect((await rawPost(srv.url, { authorization: "Bearer wrong" })).status).toBe(401);
      const c = new Client({ name: "t", version: "1" });
      await c.connect(new StreamableHTTPClientTransport(new URL(srv.url), { requestInit: { headers: { authorization: "Bearer s3cret" } } }));
      const r = await c.callTool({ name: "list_models", arguments: {} });
      expect(r.isError).toBeFalsy();
      expect((r.structuredContent as { models: { dir: string }[] }).models.some((m) => m.dir === fx.model)).toBe(true);
      await c.close();
    } finally {
      await srv?.close();
    }
  });
});
