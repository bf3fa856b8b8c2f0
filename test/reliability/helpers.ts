/**
 * Helpers for the reliability suite: an in-process MCP server over HTTP (the real transport) with
 * a tight memory bound, raw HTTP calls for what the SDK client would not send, and model
 * directories copied from the test fixtures so each case can damage its own copy.
 */
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { startHttpServer, type HttpServerOptions, type RunningHttpServer } from "../../src/mcp/http.js";
import type { Logger } from "../../src/mcp/context.js";
import { makeMcpFixtures, type McpFixtures } from "../mcp/helpers.js";

export { callOk, textOf } from "../mcp/helpers.js";

export interface Harness {
  fx: McpFixtures;
  /** A directory outside every root (writes must never land here). */
  outside: string;
  srv: RunningHttpServer;
  client: Client;
  logs: string[];
  /** Copy the fixture model to a new directory inside the root (returns its absolute path). */
  copyModel(name: string): string;
  close(): Promise<void>;
}

export async function startHarness(tag: string, opts: Partial<HttpServerOptions> = {}): Promise<Harness> {
  const fx = await makeMcpFixtures(`rel-${tag}`);
  const outside = join(tmpdir(), `spec-decode-outside-${tag}-${process.pid}`);
  rmSync(outside, { recursive: true, force: true });
  mkdirSync(outside, { recursive: true });
  const logs: string[] = [];
  const logger: Logger = { log: (level, message) => void logs.push(`${level} ${message}`) };
  const srv = await startHttpServer({ host: "127.0.0.1", port: 0, roots: [fx.root], logger, ...opts });
  const client = new Client({ name: "reliability", version: "1" });
  await client.connect(new StreamableHTTPClientTransport(new URL(srv.url)));
  return {
    fx,
    outside,
    srv,
    client,
    logs,
    copyModel(name) {
      const dir = join(fx.root, name);
      rmSync(dir, { recursive: true, force: true });
      cpSync(fx.model, dir, { recursive: true });
      return dir;
    },
    async close() {
      await client.close().catch(() => undefined);
      await srv.close();
      fx.cleanup();
      rmSync(outside, { recursive: true, force: true });
    },
  };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  error?: string;
}

/** One raw HTTP POST (JSON-RPC over the MCP endpoint); `abortAfterMs` disconnects mid-response. */
export function rawPost(url: string, body: string | Buffer, headers: Record<string, string> = {}, abortAfterMs?: number): Promise<RawResponse> {
  return new Promise((resolve) => {
    const u = new URL(url);
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        let ended = false;
        res.on("end", () => {
          ended = true;
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text });
        });
        res.on("error", (e) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, error: e.message }));
        res.on("close", () => {
          if (!ended) resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, error: "closed before the end" });
        });
      },
    );
    req.on("error", (e) => resolve({ status: 0, headers: {}, body: "", error: (e as NodeJS.ErrnoException).code ?? e.message }));
    if (abortAfterMs !== undefined) setTimeout(() => req.destroy(), abortAfterMs);
    req.end(body);
  });
}

export const INIT = JSON.stringify({
  jsonrpc: "2.0",
  id: 0,
  method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
});

/** Open a session with raw HTTP (initialize + initialized); returns its id. */
export async function rawSession(url: string): Promise<string> {
  const r = await rawPost(url, INIT);
  const id = r.headers["mcp-session-id"];
  if (r.status !== 200 || typeof id !== "string") throw new Error(`initialize failed: ${r.status} ${r.body}`);
  await rawPost(url, JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }), { "mcp-session-id": id, "mcp-protocol-version": "2025-06-18" });
  return id;
}

export function rssMiB(): number {
  return process.memoryUsage().rss / 2 ** 20;
}
