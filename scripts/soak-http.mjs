#!/usr/bin/env node
/**
 * Soak / load test of the MCP server over Streamable HTTP (not run in CI).
 *
 *   node scripts/soak-http.mjs [--clients 4] [--minutes 2] [--model DIR] [--max-new-tokens 64]
 *                              [--cancel-rate 0.1] [--disconnect-rate 0.1] [--json out.json]
 *
 * Starts `spec-decode serve --http` on 127.0.0.1 (an ephemeral port; loopback only) with a model
 * root holding the model (default: a fixture made by our builder in a temp dir), then runs N
 * clients for M minutes. Each client loops over generate_speculative calls with random methods
 * and prompts; a share of calls is cancelled by the client (notifications/cancelled through an
 * AbortSignal) and a share is abandoned by dropping the connection mid-call (the client then
 * reconnects with a new session). Reports requests served, failed, cancelled and disconnected,
 * p50/p99 latency of served calls, and the server's RSS sampled every 5 s. Bounded in count and
 * time: at most --clients 32, --minutes 30.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, cpSync } from "node:fs";
import { request } from "node:http";
import { tmpdir, cpus } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(REPO, "dist", "cli", "main.js");

const { values: v } = parseArgs({
  options: {
    clients: { type: "string", default: "4" },
    minutes: { type: "string", default: "2" },
    model: { type: "string" },
    "max-new-tokens": { type: "string", default: "64" },
    "cancel-rate": { type: "string", default: "0.1" },
    "disconnect-rate": { type: "string", default: "0.1" },
    json: { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (v.help) {
  console.log(readFileSync(fileURLToPath(import.meta.url), "utf8").split("*/")[0]);
  process.exit(0);
}
const nClients = Math.min(32, Math.max(1, Number(v.clients)));
const minutes = Math.min(30, Math.max(0.1, Number(v.minutes)));
const maxNew = Math.min(512, Math.max(1, Number(v["max-new-tokens"])));
const cancelRate = Number(v["cancel-rate"]);
const disconnectRate = Number(v["disconnect-rate"]);

// --- model root ---------------------------------------------------------------------------------
const root = mkdtempSync(join(tmpdir(), "spec-decode-soak-"));
let modelName;
if (v.model) {
  modelName = basename(resolve(v.model));
  cpSync(resolve(v.model), join(root, modelName), { recursive: true });
} else {
  const { makeFixture } = await import(join(REPO, "dist", "builder", "index.js"));
  modelName = "fixture";
  mkdirSync(join(root, modelName), { recursive: true });
  await makeFixture({ out: join(root, modelName), layers: 4, hidden: 128, heads: 4, kvHeads: 2, vocab: 512, seed: 5, maxPositions: 4096, earlyExit: [1] });
}
const model = join(root, modelName);

// --- server -------------------------------------------------------------------------------------
const server = spawn(process.execPath, [CLI, "serve", "--http", "--host", "127.0.0.1", "--port", "0", "--model-root", root, "--log-level", "warn"], {
  stdio: ["ignore", "ignore", "pipe"],
});
const url = await new Promise((res, rej) => {
  let buf = "";
  server.stderr.on("data", (c) => {
    buf += c;
    const m = /listening on (\S+)/.exec(buf);
    if (m) res(m[1]);
  });
  server.on("exit", (code) => rej(new Error(`server exited (${code}): ${buf}`)));
});
const serverRss = () => {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
};

// --- clients ------------------------------------------------------------------------------------
const METHODS = ["baseline", "prompt-lookup", "lookahead", "early-exit", "auto"];
const PROMPTS = [
  "Once upon a time there was a little",
  "The quick brown fox jumps over the lazy dog. The quick brown fox",
  "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
  "A B C D E F G A B C D E F G A B C",
];
const stats = { served: 0, failed: 0, cancelled: 0, disconnected: 0, errors: {} };
const latencies = [];
const rssSamples = [{ t: 0, rssMiB: serverRss() }];
const t0 = Date.now();
const deadline = t0 + minutes * 60_000;
let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const pick = (xs) => xs[Math.floor(rand() * xs.length)];

function argsFor() {
  const method = pick(METHODS);
  return {
    model,
    prompt: pick(PROMPTS),
    maxNewTokens: 1 + Math.floor(rand() * maxNew),
    method,
    ...(method === "early-exit" ? { methodOptions: { exitLayer: 1 } } : {}),
  };
}

/** A raw POST that drops its connection after `ms` (a client that goes away mid-call). */
async function disconnectingCall(sessionId, args, ms) {
  const body = JSON.stringify({ jsonrpc: "2.0", id: 99, method: "tools/call", params: { name: "generate_speculative", arguments: args } });
  const u = new URL(url);
  await new Promise((res) => {
    const req = request(
      { host: u.hostname, port: u.port, path: u.pathname, method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-session-id": sessionId, "mcp-protocol-version": "2025-06-18" } },
      (r) => {
        r.on("data", () => {});
        r.on("close", res);
      },
    );
    req.on("error", res);
    setTimeout(() => req.destroy(), ms);
    req.end(body);
  });
}

async function connect() {
  const transport = new StreamableHTTPClientTransport(new URL(url));
  const c = new Client({ name: "soak", version: "1" });
  await c.connect(transport);
  return { c, transport };
}

async function clientLoop() {
  let { c, transport } = await connect();
  while (Date.now() < deadline) {
    const args = argsFor();
    const r = rand();
    const start = performance.now();
    try {
      if (r < disconnectRate) {
        await disconnectingCall(transport.sessionId, args, 20 + Math.floor(rand() * 200));
        stats.disconnected++;
        continue;
      }
      const ac = new AbortController();
      const cancel = r < disconnectRate + cancelRate;
      if (cancel) setTimeout(() => ac.abort(), 10 + Math.floor(rand() * 150));
      const res = await c.callTool({ name: "generate_speculative", arguments: args }, undefined, { signal: ac.signal, timeout: 120_000 });
      if (res.isError) {
        stats.failed++;
        const key = String(res.content?.[0]?.text ?? "").slice(0, 80);
        stats.errors[key] = (stats.errors[key] ?? 0) + 1;
      } else {
        stats.served++;
        latencies.push(performance.now() - start);
      }
    } catch (err) {
      if (String(err?.message ?? err).match(/abort|cancel/i)) stats.cancelled++;
      else {
        stats.failed++;
        const key = String(err?.message ?? err).slice(0, 80);
        stats.errors[key] = (stats.errors[key] ?? 0) + 1;
        await c.close().catch(() => {});
        ({ c, transport } = await connect());
      }
    }
  }
  await c.close().catch(() => {});
}

const sampler = setInterval(() => rssSamples.push({ t: Math.round((Date.now() - t0) / 1000), rssMiB: serverRss() }), 5000);
await Promise.all(Array.from({ length: nClients }, () => clientLoop()));
clearInterval(sampler);
rssSamples.push({ t: Math.round((Date.now() - t0) / 1000), rssMiB: serverRss() });

// A good call after the storm must succeed.
const { c: last } = await connect();
const check = await last.callTool({ name: "generate_speculative", arguments: { model, prompt: "Once upon a time", maxNewTokens: 8, method: "baseline" } });
await last.close();
server.kill("SIGTERM");
rmSync(root, { recursive: true, force: true });

latencies.sort((a, b) => a - b);
const q = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : NaN);
const report = {
  machine: `${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, node ${process.version}`,
  command: `node scripts/soak-http.mjs --clients ${nClients} --minutes ${minutes} --max-new-tokens ${maxNew} --cancel-rate ${cancelRate} --disconnect-rate ${disconnectRate}`,
  seconds: Math.round((Date.now() - t0) / 1000),
  ...stats,
  p50Ms: Math.round(q(0.5)),
  p99Ms: Math.round(q(0.99)),
  finalGoodCall: check.isError ? "FAILED" : "ok",
  rss: rssSamples.map((s) => ({ t: s.t, rssMiB: Math.round(s.rssMiB) })),
};
if (v.json) writeFileSync(v.json, JSON.stringify(report, null, 2) + "\n");
console.log(`| clients | seconds | served | failed | cancelled | disconnected | p50 ms | p99 ms | RSS start -> max -> end (MiB) | good call after |`);
console.log(`|---|---|---|---|---|---|---|---|---|---|`);
const rs = report.rss.map((r) => r.rssMiB);
console.log(
  `| ${nClients} | ${report.seconds} | ${report.served} | ${report.failed} | ${report.cancelled} | ${report.disconnected} | ${report.p50Ms} | ${report.p99Ms} | ${rs[0]} -> ${Math.max(...rs)} -> ${rs[rs.length - 1]} | ${report.finalGoodCall} |`,
);
console.log(`RSS over time (s: MiB): ${report.rss.map((r) => `${r.t}: ${r.rssMiB}`).join(", ")}`);
if (Object.keys(stats.errors).length) console.log("errors:", JSON.stringify(stats.errors, null, 1));
process.exit(check.isError ? 1 : 0);
