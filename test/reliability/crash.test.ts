/**
 * Crash consistency: `spec-decode build` and `spec-decode train-medusa` run as child processes and
 * are killed with SIGKILL at seeded random points (after their first progress line, so most kills
 * land while files are being written). After each kill the previous good model still passes the
 * integrity check, is reported ready, loads, and generates exactly the tokens it generated before;
 * the heads still parse and Medusa decoding still returns the baseline's greedy tokens.
 */
import { spawn } from "node:child_process";
import { cpSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SpecEngine } from "../../src/api.js";
import { inspectMedusaHeads } from "../../src/builder/medusa-heads.js";
import { checkOnnxFile } from "../../src/engine/onnx-file.js";
import { describeDir } from "../../src/mcp/models.js";
import { Rng } from "../../src/sampling/index.js";
import { CLI, ensureBuilt } from "../helpers/dist.js";
import { fixture, tempDir } from "../helpers/fixtures.js";

// Large enough (~40 MB of float32 weights) that writing the graph takes a visible share of a build.
const OPTS = { layers: 4, hidden: 384, heads: 6, kvHeads: 2, vocab: 4000, seed: 31, maxPositions: 512 };
const PROMPT = [1, 17, 42, 99, 7];
let work: string;
let model: string;

/** Run the CLI; `ms` = time from its first output line to its exit (the window where files are written). */
function run(args: string[], killAfterFirstOutputMs?: number): Promise<{ code: number | null; signal: string | null; ms: number }> {
  return new Promise((resolve) => {
    let t0 = 0;
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, SPEC_DECODE_ORT_LOG_LEVEL: "4" } });
    let armed = false;
    const arm = () => {
      if (t0 === 0) t0 = performance.now();
      if (armed || killAfterFirstOutputMs === undefined) return;
      armed = true;
      setTimeout(() => child.kill("SIGKILL"), killAfterFirstOutputMs);
    };
    child.stdout.on("data", arm);
    child.stderr.on("data", arm);
    child.on("exit", (code, signal) => resolve({ code, signal, ms: t0 === 0 ? 0 : performance.now() - t0 }));
  });
}

async function greedy(dir: string, extra: Partial<Parameters<SpecEngine["generate"]>[0]> = {}): Promise<number[]> {
  const engine = new SpecEngine();
  try {
    return (await engine.generate({ model: dir, promptIds: PROMPT, maxNewTokens: 16, method: "baseline", ...extra })).tokens;
  } finally {
    await engine.dispose();
  }
}

/** Temporary files left by a kill (proof that the kill landed while a file was being written). */
function leftovers(dir: string): string[] {
  const out: string[] = [];
  for (const sub of [dir, join(dir, "onnx")]) {
    try {
      for (const f of readdirSync(sub)) if (f.includes(".tmp-")) out.push(join(sub, f));
    } catch {
      /* no such folder */
    }
  }
  return out;
}

function assertIntact(dir: string): void {
  for (const sub of [dir, join(dir, "onnx")]) {
    for (const f of readdirSync(sub)) if (f.endsWith(".onnx")) checkOnnxFile(join(sub, f), dir);
  }
  const d = describeDir(dir, dir, "m", new Set());
  expect(d.status, d.error ?? "").toBe("ready");
}

beforeAll(async () => {
  ensureBuilt();
  const src = await fixture(OPTS);
  work = tempDir("crash");
  model = join(work, "model");
  cpSync(src, model, { recursive: true });
}, 120_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("kill -9 during writes leaves the previous good files", () => {
  it("spec-decode build: killed at random points, the model stays intact and generates the same tokens", async () => {
    const ref = await greedy(model);
    const full = await run(["build", "--model", model]);
    expect(full.code).toBe(0);
    expect(await greedy(model)).toEqual(ref); // same checkpoint, same graph
    const rng = new Rng(99);
    let killed = 0;
    let midWrite = 0;
    // Kill times lean to the end of the run, where the files are written; stop once two kills have
    // landed mid-write (a temporary file was left behind), at most 12 tries.
    for (let i = 0; i < 12 && midWrite < 2; i++) {
      const r = await run(["build", "--model", model], Math.floor(full.ms * (0.5 + 0.5 * rng.next())));
      if (r.signal === "SIGKILL") killed++;
      const left = leftovers(model);
      if (left.length > 0) midWrite++;
      assertIntact(model);
      expect(await greedy(model)).toEqual(ref);
      for (const f of left) rmSync(f, { force: true });
    }
    expect(killed).toBeGreaterThan(0);
    expect(midWrite, "no kill landed while the model was being written").toBeGreaterThan(0);
  }, 120_000);

  it("spec-decode train-medusa: killed at random points, the heads stay loadable and Medusa stays exact", async () => {
    const heads = join(work, "heads");
    const args = ["train-medusa", "--model", model, "--out", heads, "--heads", "2", "--self-distill", "4", "--max-new-tokens", "12", "--max-steps", "4", "--threads", "1"];
    const full = await run(args);
    expect(full.code).toBe(0);
    const ref = await greedy(model);
    expect(await greedy(model, { method: "medusa", heads })).toEqual(ref);
    const rng = new Rng(7);
    let killed = 0;
    for (let i = 0; i < 4; i++) {
      const r = await run(args, Math.floor(full.ms * (0.5 + 0.5 * rng.next())));
      if (r.signal === "SIGKILL") killed++;
      const cfg = inspectMedusaHeads(heads);
      expect(cfg.numHeads).toBe(2);
      expect(await greedy(model, { method: "medusa", heads })).toEqual(ref);
    }
    expect(killed).toBeGreaterThan(0);
  }, 120_000);
});
