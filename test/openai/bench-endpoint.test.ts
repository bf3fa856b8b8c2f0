/**
 * `bench --endpoint`: measuring OpenAI-compatible servers. Our own server plain vs speculative
 * (same weights) must give identical greedy outputs, acceptance read back from the speculative
 * server's /metrics and none from the plain one; a baseline serving different weights must be
 * reported as NOT identical (the comparison can fail). The CLI path spawns two real
 * `serve --openai` processes and runs `bench --endpoint ... --json` against them.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SpecEngine } from "../../src/api.js";
import { benchEndpoints, remoteBenchMarkdown, verdictOf, apiBase } from "../../src/bench/remote.js";
import { builtinWorkload } from "../../src/bench/workload.js";
import { scrapeSpecMetrics } from "../../src/openai/metrics.js";
import { startOpenAIServer, type RunningOpenAIServer } from "../../src/openai/server.js";
import { CLI, REPO, ensureBuilt } from "../helpers/dist.js";
import { fixture } from "../helpers/fixtures.js";

const TARGET_OPTS = { layers: 2, hidden: 32, heads: 2, kvHeads: 1, seed: 7, earlyExit: [1], maxPositions: 4096 };
const OTHER_OPTS = { layers: 1, hidden: 32, heads: 2, kvHeads: 1, seed: 7, maxPositions: 4096 };
const run = promisify(execFile);

function spawnServer(args: string[]): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, [CLI, "serve", "--openai", "--port", "0", "--threads", "1", ...args], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
  return new Promise((resolve, reject) => {
    let err = "";
    const timer = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 60_000);
    proc.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      const m = /spec-decode serve: listening on (http:\/\/\S+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, url: m[1]! });
      }
    });
    proc.once("exit", (code) => reject(new Error(`server exited with ${code}: ${err}`)));
  });
}

describe("bench --endpoint against our own server", () => {
  let model: string;
  let other: string;
  const engine = new SpecEngine({ threads: 1 });
  let plain: RunningOpenAIServer;
  let spec: RunningOpenAIServer;
  let wrong: RunningOpenAIServer;
  const prompts = builtinWorkload("qa").slice(0, 2);

  beforeAll(async () => {
    model = await fixture(TARGET_OPTS);
    other = await fixture(OTHER_OPTS);
    plain = await startOpenAIServer({ model, method: "baseline", servedModelName: "tiny", port: 0, engine });
    spec = await startOpenAIServer({ model, method: "early-exit", methodOptions: { k: 3 }, servedModelName: "tiny", port: 0, engine });
    wrong = await startOpenAIServer({ model: other, method: "baseline", servedModelName: "tiny", port: 0, engine });
  }, 120_000);

  afterAll(async () => {
    for (const s of [plain, spec, wrong]) await s?.close();
    await engine.dispose();
  });

  it("plain vs speculative: identical greedy outputs, paired speedup with a CI, acceptance from /metrics", async () => {
    const r = await benchEndpoints({ endpoint: { url: spec.url }, baseline: { url: `http://127.0.0.1:${plain.port}` }, prompts, maxNewTokens: 24, repeats: 2 });
    expect(r.greedyIdentical).toBe(true);
    expect(r.endpoint.model).toBe("tiny");
    expect(r.endpoint.runs).toHaveLength(4);
    expect(r.baseline!.runs).toHaveLength(4);
    for (const x of [...r.endpoint.runs, ...r.baseline!.runs]) {
      expect(x.completionTokens).toBeGreaterThan(0);
      expect(x.ttftMs).toBeGreaterThan(0);
      expect(x.totalMs).toBeGreaterThanOrEqual(x.ttftMs);
    }
    expect(r.speedup!.n).toBe(4);
    expect(r.verdict).toMatch(/^(speculation helps here|no clear gain|use plain decoding):/);
    // The speculative server drafted; the plain one exposes the counters but never drafts.
    const acc = r.endpoint.acceptance!;
    expect(acc.source).toBe("vllm");
    expect(acc.draftTokens).toBeGreaterThan(0);
    expect(acc.acceptedTokens).toBeLessThanOrEqual(acc.draftTokens!);
    expect(acc.meanAcceptedLength).toBeCloseTo(1 + acc.acceptedTokens! / acc.drafts!, 3);
    expect(r.baseline!.acceptance!.drafts).toBe(0);
    // The deltas the bench read are exactly what the server counted, minus the warm-up request.
    const total = scrapeSpecMetrics(spec.metrics.render());
    expect(acc.draftTokens).toBeLessThanOrEqual(total.draftTokens!);
    expect(r.endpoint.completionTokens).toBe(r.baseline!.completionTokens);
    const md = remoteBenchMarkdown(r);
    expect(md).toMatch(/decode speedup \(endpoint \/ baseline, paired\)/);
    expect(md).toMatch(/greedy outputs identical: yes/);
  });

  it("reports different weights as not identical", async () => {
    const r = await benchEndpoints({ endpoint: { url: spec.url }, baseline: { url: wrong.url }, prompts, maxNewTokens: 16, repeats: 1 });
    expect(r.greedyIdentical).toBe(false);
    expect(r.mismatches.length).toBeGreaterThan(0);
  });

  it("verdicts, URLs and errors", async () => {
    expect(verdictOf({ mean: 1.5, low: 1.2, high: 1.9, n: 6 })).toMatch(/^speculation helps here:/);
    expect(verdictOf({ mean: 0.8, low: 0.7, high: 0.9, n: 6 })).toMatch(/^use plain decoding:/);
    expect(verdictOf({ mean: 1.0, low: 0.9, high: 1.1, n: 6 })).toMatch(/^no clear gain:.*includes 1/);
    expect(verdictOf({ mean: 1.0, low: null, high: null, n: 1 })).toMatch(/^no clear gain:.*too few/);
    expect(apiBase("http://h:1")).toBe("http://h:1/v1");
    expect(apiBase("http://h:1/v1/")).toBe("http://h:1/v1");
    expect(() => apiBase("nope")).toThrow(/not a URL/);
    await expect(benchEndpoints({ endpoint: { url: spec.url, model: "absent" }, prompts, maxNewTokens: 4, repeats: 1 })).rejects.toThrow(/404/);
  });
});

describe("spec-decode serve --openai and bench --endpoint (spawned CLI)", () => {
  const procs: ChildProcess[] = [];
  afterAll(async () => {
    for (const p of procs) {
      if (p.exitCode === null) {
        p.kill("SIGTERM");
        await new Promise((r) => p.once("exit", r));
      }
    }
  });

  it("measures a plain and a speculative server, and refuses a public bind without a token", async () => {
    ensureBuilt();
    const model = await fixture(TARGET_OPTS);
    const a = await spawnServer(["--model", model, "--method", "baseline"]);
    procs.push(a.proc);
    const b = await spawnServer(["--model", model, "--method", "early-exit", "--k", "2"]);
    procs.push(b.proc);
    const { stdout } = await run(process.execPath, [CLI, "bench", "--endpoint", b.url, "--endpoint-baseline", a.url, "--workload", "builtin:qa", "--max-new-tokens", "12", "--repeats", "1", "--json", "--quiet"], { cwd: REPO });
    const r = JSON.parse(stdout);
    expect(r.kind).toBe("spec-decode-bench-endpoint");
    expect(r.greedyIdentical).toBe(true);
    expect(r.endpoint.acceptance.draftTokens).toBeGreaterThan(0);
    const bad = await run(process.execPath, [CLI, "serve", "--openai", "--model", model, "--host", "0.0.0.0", "--port", "0"], { cwd: REPO }).catch((e) => e);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--token/);
    const mixed = await run(process.execPath, [CLI, "bench", "--endpoint", b.url, "--twin"], { cwd: REPO }).catch((e) => e);
    expect(mixed.code).toBe(1);
    expect(mixed.stderr).toMatch(/--twin applies to local benchmarks/);
  }, 120_000);
});
