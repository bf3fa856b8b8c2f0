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
  /** Open sessions at most (default 32); beyond, the least recently used idle session is closed (503 only when all are busy). */
  maxSessions?: number;
  /** Open sessions per client address at most (default 8); beyond, that client's oldest idle session is closed. */
  maxSessionsPerClient?: number;
  /** Largest request body, bytes (default 4 MiB). */
  maxBodyBytes?: number;
  /** Sessions without a request for this long are closed, open GET streams or not (default 5 minutes). */
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

/** Bodies over the limit are drained (not stored) up to this many bytes so the client reads our 413. */
const DRAIN_MAX_BYTES = 64 * 1024 * 1024;

export async function readBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  const declared = Number(req.headers["content-length"] ?? NaN);
  let over = Number.isFinite(declared) && declared > limit;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) over = true;
    if (over) {
      chunks.length = 0;
      if (size > DRAIN_MAX_BYTES) break; // stop reading; the 413 still goes out
      continue;
    }
    chunks.push(chunk as Buffer);
  }
  if (over) {
    throw Object.assign(new Error(`Request body over ${limit} bytes (the server's limit). Send a smaller request.`), { status: 413 });
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw Object.assign(new Error("Request body is not valid JSON."), { status: 400 });
  }
}

/** JSON-RPC request ids in a body (one message or a batch). */
function requestIds(body: unknown): (string | number)[] {
  const msgs = Array.isArray(body) ? body : [body];
  const out: (string | number)[] = [];
  for (const m of msgs) {
    if (m && typeof m === "object" && "method" in m && "id" in m) {
      const id = (m as { id: unknown }).id;
      if (typeof id === "string" || typeof id === "number") out.push(id);
    }
  }
  return out;
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
  type Session = { transport: StreamableHTTPServerTransport; server: McpServer; lastSeen: number; inflight: number; client: string };
  const sessions = new Map<string, Session>();
  const maxPerClient = opts.maxSessionsPerClient ?? 8;
  /**
   * Count a POST against its session until its response ends (long calls keep it alive). GET
   * streams do not count: a session whose only activity is an open stream expires like an idle one.
   * A client that disconnects before its response is complete cancels the calls it sent
   * (as a notifications/cancelled would), so their work stops within one decoding step.
   */
  const track = (s: Session, req: IncomingMessage, res: ServerResponse, body?: unknown) => {
    s.lastSeen = Date.now();
    if (req.method !== "POST") return;
    s.inflight++;
    const ids = requestIds(body);
    res.once("close", () => {
      s.inflight--;
      s.lastSeen = Date.now();
      if (!res.writableFinished && ids.length > 0) {
        logger.log("info", `client disconnected before the response: cancelling request(s) ${ids.join(", ")}`);
        for (const requestId of ids) {
          s.transport.onmessage?.({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId, reason: "client disconnected" } });
        }
      }
    });
  };
  const closeSession = (id: string, why: string) => {
    const s = sessions.get(id);
    if (!s) return;
    logger.log("info", `session ${id} ${why}: closing it`);
    sessions.delete(id);
    void s.transport.close().catch(() => undefined);
    void s.server.close().catch(() => undefined);
  };
  /** The least recently used session without a running call (optionally of one client). */
  const oldestIdle = (client?: string): string | undefined => {
    let best: [string, number] | undefined;
    for (const [id, s] of sessions) {
      if (s.inflight > 0 || (client !== undefined && s.client !== client)) continue;
      if (!best || s.lastSeen < best[1]) best = [id, s.lastSeen];
    }
    return best?.[0];
  };
  const idleMs = opts.sessionIdleMs ?? 5 * 60 * 1000;
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [id, s] of sessions) {
      if (s.inflight > 0 || now - s.lastSeen < idleMs) continue;
      closeSession(id, `idle for ${Math.round((now - s.lastSeen) / 1000)} s`);
    }
  }, Math.max(250, Math.min(60_000, idleMs / 2)));
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
        track(s, req, res, body);
        return s.transport.handleRequest(req, res, body);
      }
      if (!isInitializeRequest(body)) return reject(res, 400, "No session: the first request must be initialize (without an mcp-session-id header).");
      const client = req.socket.remoteAddress ?? "unknown";
      if ([...sessions.values()].filter((x) => x.client === client).length >= maxPerClient) {
        const victim = oldestIdle(client);
        if (!victim) return reject(res, 429, `This client has ${maxPerClient} sessions with calls running; wait for one to finish or close one (DELETE).`);
        closeSession(victim, `evicted (client over ${maxPerClient} sessions)`);
      }
      if (sessions.size >= maxSessions) {
        const victim = oldestIdle();
        if (!victim) return reject(res, 503, `All ${maxSessions} sessions have calls running; retry shortly.`, { "retry-after": "1" });
        closeSession(victim, `evicted (server at ${maxSessions} sessions)`);
      }
      const server = createServer({ ...opts, store, roots, logger, exclusive });
      const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          sessions.set(id, { transport, server, lastSeen: Date.now(), inflight: 0, client });
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
    track(s, req, res);
    return s.transport.handleRequest(req, res);
  };

  const http = createHttpServer((req, res) => {
    handle(req, res).catch((err: Error & { status?: number }) => {
      logger.log(err.status ? "info" : "error", `HTTP ${req.method} ${req.url}: ${err.message}`);
      if (!res.headersSent) reject(res, err.status ?? 500, err.message, err.status === 413 ? { connection: "close" } : {});
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
