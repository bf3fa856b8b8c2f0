/**
 * The Streamable HTTP transport (`spec-decode serve --http [--host H] [--port N] [--token T]`).
 *
 * Security defaults:
 *  - binds to 127.0.0.1 unless told otherwise; binding anywhere else requires a bearer token
 *    (`--token` or `SPEC_DECODE_TOKEN`), checked on every request;
 *  - the Host header must name the server (loopback names, the bound host, or `--allowed-host`),
 *    which defeats DNS rebinding;
 *  - a request with an Origin header is refused (403) unless the origin is the server's own or
 *    listed with `--allow-origin` (MCP clients outside browsers send no Origin).
 * One MCP session = one McpServer instance; all sessions share one ModelStore.
 */
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { randomUUID, timingSafeEqual, createHash } from "node:crypto";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { ModelStore } from "../engine/model-store.js";
import { InvalidOptionError } from "../errors.js";
import { makeExclusive, stderrLogger } from "./context.js";
import { ModelRoots, configuredModelRoots } from "./roots.js";
import { createServer, type CreateServerOptions } from "./server.js";

export const TOKEN_ENV = "SPEC_DECODE_TOKEN";
export const DEFAULT_HTTP_PORT = 8765;

export interface HttpServerOptions extends CreateServerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default DEFAULT_HTTP_PORT; 0 = an ephemeral port. */
  port?: number;
  /** Bearer token; required when host is not a loopback address. */
  token?: string;
  /** Extra allowed Origin values (e.g. "https://my-app.example"). */
  allowedOrigins?: string[];
  /** Extra allowed Host header names (without port). */
  allowedHosts?: string[];
  /** Endpoint path (default "/mcp"). */
  path?: string;
  /** Open sessions at most (default 32); new sessions are refused beyond. */
  maxSessions?: number;
  /** Largest request body, bytes (default 4 MiB). */
  maxBodyBytes?: number;
  /** Sessions without a request for this long are closed (default 30 minutes). */
  sessionIdleMs?: number;
}

export interface RunningHttpServer {
  url: string;
  host: string;
  port: number;
  http: Server;
  sessions(): number;
  close(): Promise<void>;
}

const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1", "[::1]"];

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h);
}

/** Hostname of a Host header value (port and IPv6 brackets removed), lowercase. */
export function hostOf(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith("[")) return h.slice(1, h.indexOf("]"));
  const i = h.lastIndexOf(":");
  return i >= 0 && h.indexOf(":") === i ? h.slice(0, i) : h;
}

export function sameToken(given: string, expected: string): boolean {
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

/** A non-loopback bind needs a bearer token; the message names both fixes. */
export function assertTokenForHost(host: string, token: string | undefined): void {
  if (isLoopbackHost(host) || token) return;
  throw new InvalidOptionError(
    `Binding to ${host} exposes the server beyond this machine, so it needs a bearer token: pass --token <secret> ` +
      `or set ${TOKEN_ENV}, and give clients the header "Authorization: Bearer <secret>". Or bind to 127.0.0.1.`,
  );
}

export interface GuardOptions {
  host: string;
  token?: string;
  allowedOrigins?: string[];
  allowedHosts?: string[];
  /** The bound port (read per request: it is known only after listen). */
  port: () => number;
}

/** Why a request is refused (status, message, extra headers), or undefined when it may proceed. */
export type GuardVerdict = { status: number; message: string; headers?: Record<string, string> } | undefined;

/**
 * The checks every HTTP surface runs before anything else: Host header (DNS rebinding), Origin,
 * bearer token. Shared by the MCP transport and the OpenAI-compatible server.
 */
export function createRequestGuard(opts: GuardOptions): (req: IncomingMessage) => GuardVerdict {
  const { host, token } = opts;
  const loopback = isLoopbackHost(host);
  const wildcard = host === "0.0.0.0" || host === "::";
  const allowedHosts = new Set([...LOOPBACK_NAMES, ...(loopback || wildcard ? [] : [hostOf(host)]), ...(opts.allowedHosts ?? []).map((h) => hostOf(h))]);
  const hostAllowed = (h: string | undefined): boolean => {
    if (!h) return false;
    if (wildcard && !opts.allowedHosts?.length) return true; // token-protected; any interface name
    return allowedHosts.has(hostOf(h));
  };
  const originAllowed = (origin: string): boolean => {
    if ((opts.allowedOrigins ?? []).includes(origin)) return true;
    try {
      const u = new URL(origin);
      const own = u.port === String(opts.port()) && (u.protocol === "http:" || u.protocol === "https:");
      return own && allowedHosts.has(u.hostname.toLowerCase());
    } catch {
      return false;
    }
  };
  return (req) => {
    if (!hostAllowed(req.headers.host)) {
      return { status: 403, message: `Host ${JSON.stringify(req.headers.host ?? "")} is not allowed (DNS rebinding protection). Use --allowed-host to add a name.` };
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !originAllowed(origin)) {
      return { status: 403, message: `Origin ${origin} is not allowed. Start the server with --allow-origin ${origin} to permit it.` };
    }
    if (token) {
      const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? "");
      if (!m || !sameToken(m[1]!.trim(), token)) {
        return { status: 401, message: "Missing or wrong bearer token (Authorization: Bearer <token>).", headers: { "www-authenticate": 'Bearer realm="spec-decode"' } };
      }
    }
    return undefined;
  };
}

function reject(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message }, id: null }));
}

export async function readBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw Object.assign(new Error(`Request body over ${limit} bytes.`), { status: 413 });
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw Object.assign(new Error("Request body is not valid JSON."), { status: 400 });
  }
}

export async function startHttpServer(opts: HttpServerOptions = {}): Promise<RunningHttpServer> {
  const host = opts.host ?? "127.0.0.1";
  const token = opts.token ?? (process.env[TOKEN_ENV] || undefined);
  assertTokenForHost(host, token);
  const path = opts.path ?? "/mcp";
  const maxSessions = opts.maxSessions ?? 32;
  const maxBody = opts.maxBodyBytes ?? 4 * 1024 * 1024;
  const logger = opts.logger ?? stderrLogger();
  const ownStore = !opts.store;
  const store = opts.store ?? new ModelStore(opts.storeOptions);
  const roots = opts.roots instanceof ModelRoots ? opts.roots : new ModelRoots(opts.roots ?? configuredModelRoots());
  const exclusive = opts.exclusive ?? makeExclusive();
  type Session = { transport: StreamableHTTPServerTransport; server: McpServer; lastSeen: number; inflight: number };
  const sessions = new Map<string, Session>();
  /** Count a request against its session until its response ends (long calls and open streams keep it alive). */
  const track = (s: Session, res: ServerResponse) => {
    s.inflight++;
    s.lastSeen = Date.now();
    res.once("close", () => {
      s.inflight--;
      s.lastSeen = Date.now();
    });
  };
  const idleMs = opts.sessionIdleMs ?? 30 * 60 * 1000;
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [id, s] of sessions) {
      if (s.inflight > 0 || now - s.lastSeen < idleMs) continue;
      logger.log("info", `session ${id} idle for ${Math.round((now - s.lastSeen) / 1000)} s: closing it`);
      sessions.delete(id);
      void s.transport.close().catch(() => undefined);
      void s.server.close().catch(() => undefined);
    }
  }, Math.min(60_000, idleMs));
  sweep.unref();
  let port = 0;
  const guard = createRequestGuard({ host, token, allowedOrigins: opts.allowedOrigins, allowedHosts: opts.allowedHosts, port: () => port });

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://placeholder");
    const refused = guard(req);
    if (refused) {
      logger.log("warn", `refused request (${refused.status}): ${refused.message}`);
      return reject(res, refused.status, refused.message, refused.headers);
    }
    if (url.pathname !== path) return reject(res, 404, `Not found. The MCP endpoint is ${path}.`);
    if (!["POST", "GET", "DELETE"].includes(req.method ?? "")) return reject(res, 405, "Method not allowed.", { allow: "GET, POST, DELETE" });

    const sid = req.headers["mcp-session-id"];
    const sessionId = Array.isArray(sid) ? sid[0] : sid;
    if (req.method === "POST") {
      const body = await readBody(req, maxBody);
      if (sessionId) {
        const s = sessions.get(sessionId);
        if (!s) return reject(res, 404, "Unknown or expired session; initialize a new one.");
        track(s, res);
        return s.transport.handleRequest(req, res, body);
      }
      if (!isInitializeRequest(body)) return reject(res, 400, "No session: the first request must be initialize (without an mcp-session-id header).");
      if (sessions.size >= maxSessions) return reject(res, 503, `Too many open sessions (${maxSessions}); close one (DELETE) and retry.`);
      const server = createServer({ ...opts, store, roots, logger, exclusive });
      const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          sessions.set(id, { transport, server, lastSeen: Date.now(), inflight: 0 });
          logger.log("info", `session ${id} opened (${sessions.size} open)`);
        },
      });
      transport.onclose = () => {
        const id = transport.sessionId;
        if (id && sessions.delete(id)) logger.log("info", `session ${id} closed`);
      };
      await server.connect(transport);
      return transport.handleRequest(req, res, body);
    }
    const s = sessionId ? sessions.get(sessionId) : undefined;
    if (!s) return reject(res, sessionId ? 404 : 400, "Missing or unknown mcp-session-id header.");
    track(s, res);
    return s.transport.handleRequest(req, res);
  };

  const http = createHttpServer((req, res) => {
    handle(req, res).catch((err: Error & { status?: number }) => {
      logger.log(err.status ? "info" : "error", `HTTP ${req.method} ${req.url}: ${err.message}`);
      if (!res.headersSent) reject(res, err.status ?? 500, err.message);
      else res.end();
    });
  });
  await new Promise<void>((resolvePromise, rejectPromise) => {
    http.once("error", rejectPromise);
    http.listen(opts.port ?? DEFAULT_HTTP_PORT, host, () => {
      http.off("error", rejectPromise);
      resolvePromise();
    });
  });
  port = (http.address() as AddressInfo).port;
  const shownHost = host.includes(":") ? `[${host}]` : host;
  const url = `http://${shownHost}:${port}${path}`;
  logger.log("info", `MCP server listening on ${url}${token ? " (bearer token required)" : ""}; model roots: ${roots.roots.join(", ")}`);

  return {
    url,
    host,
    port,
    http,
    sessions: () => sessions.size,
    async close() {
      clearInterval(sweep);
      for (const { transport, server } of [...sessions.values()]) {
        await transport.close().catch(() => undefined);
        await server.close().catch(() => undefined);
      }
      sessions.clear();
      http.closeAllConnections?.();
      await new Promise<void>((r) => http.close(() => r()));
      if (ownStore) await store.dispose();
    },
  };
}
