import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, ensureBuilt } from "../helpers/dist.js";
import { fixture, tempDir } from "../helpers/fixtures.js";

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("spec-decode CLI", () => {
  let model: string;
  let work: string;
  beforeAll(async () => {
    ensureBuilt();
    model = await fixture({ layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 1 });
    work = tempDir("cli");
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("prints usage and rejects unknown commands", () => {
    const h = cli(["--help"]);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/generate/);
    const u = cli(["frobnicate"]);
    expect(u.code).not.toBe(0);
    expect(u.stderr).toMatch(/unknown command/);
  });

  it("generate --json prints one object with text, generated tokens and stats", () => {
    const r = cli(["generate", "--model", model, "--prompt-ids", "1,17,93", "--max-new-tokens", "6", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout) as { text: string; tokens: number[]; stats: Record<string, unknown> };
    expect(o.tokens).toHaveLength(6);
    expect(typeof o.text).toBe("string");
    for (const k of ["method", "newTokens", "targetForwards", "elapsedMs", "tokensPerSecond"]) expect(o.stats).toHaveProperty(k);
    expect(o.stats.method).toBe("baseline");
  });

  it("--prompt-ids feeds ids exactly (same tokens as the library), text prompts and messages stream", () => {
    const a = JSON.parse(cli(["generate", "--model", model, "--prompt-ids", "1,17,93", "--max-new-tokens", "6", "--json"]).stdout);
    const b = JSON.parse(cli(["generate", "--model", model, "--prompt-ids", "1,17,93", "--max-new-tokens", "6", "--json"]).stdout);
    expect(a.tokens).toEqual(b.tokens);
    const t = cli(["generate", "--model", model, "--prompt", "Hello there", "--max-new-tokens", "4"]);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stderr).toMatch(/\[baseline\] 4 tokens/);
    const m = cli(["generate", "--model", model, "--messages", '[{"role":"user","content":"Hi"}]', "--max-new-tokens", "3", "--json", "--temperature", "0.7", "--seed", "5"]);
    expect(m.code, m.stderr).toBe(0);
    expect(JSON.parse(m.stdout).tokens).toHaveLength(3);
  });

  it("errors go to stderr with a non-zero exit and say what to do", () => {
    const cases: [string[], RegExp][] = [
      [["generate", "--prompt", "x"], /--model is required/],
      [["generate", "--model", join(work, "missing"), "--prompt", "x"], /does not exist/],
      [["generate", "--model", model, "--prompt", "x", "--prompt-ids", "1"], /exactly one of/],
      [["generate", "--model", model, "--prompt-ids", "1,x"], /comma-separated list/],
      [["generate", "--model", model, "--prompt", "x", "--method", "warp"], /--method must be one of/],
      [["generate", "--model", model, "--prompt", "x", "--temperature", "-2"], /temperature/],
      [["generate", "--model", model, "--messages", "[{oops"], /--messages must be JSON/],
      [["generate", "--model", model, "--prompt-ids", "1", "--max-new-tokens", "60000"], /Lower maxNewTokens/],
    ];
    for (const [args, re] of cases) {
      const r = cli(args);
      expect(r.code, args.join(" ")).not.toBe(0);
      expect(r.stderr, args.join(" ")).toMatch(re);
      expect(r.stdout).toBe("");
    }
  });

  it("fixture and build write loadable models", () => {
    const out = join(work, "fx");
    const f = cli(["fixture", "--out", out, "--layers", "2", "--hidden", "32", "--heads", "2", "--kv-heads", "1", "--vocab", "300", "--early-exit", "1", "--json"]);
    expect(f.code, f.stderr).toBe(0);
    const info = cli(["info", "--model", out, "--json"]);
    expect(info.code, info.stderr).toBe(0);
    const d = JSON.parse(info.stdout);
    expect(d.numLayers).toBe(2);
    expect(d.earlyExitLayers).toEqual([1]);
    const b = cli(["build", "--model", out, "--early-exit", "1", "--json"]);
    expect(b.code, b.stderr).toBe(0);
    expect(JSON.parse(b.stdout).files.length).toBeGreaterThanOrEqual(2);
  });
});
