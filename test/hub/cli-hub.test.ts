/** The CLI with repo ids: pull (plain progress lines off a TTY), generate --model/--draft org/name, suggest-draft. */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, ensureBuilt } from "../helpers/dist.js";
import { fixture, tempDir } from "../helpers/fixtures.js";
import { FakeHub } from "./fake-hub.js";

let hub: FakeHub;
let model: string;
let env: NodeJS.ProcessEnv;

/** Async (not spawnSync): the Hub look-alike runs in this process and must keep serving. */
function cli(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolveP) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...env, ...extraEnv }, timeout: 120_000 }, (err, stdout, stderr) => {
      resolveP({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  ensureBuilt();
  model = await fixture({ layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 12 });
  hub = new FakeHub();
  await hub.start();
  hub.addRepo("test-org/cli-tiny", model);
  const root = tempDir("cli-hub");
  const { HF_TOKEN: _t, HUGGING_FACE_HUB_TOKEN: _h, HF_HUB_OFFLINE: _o, ...rest } = process.env;
  env = { ...rest, HF_ENDPOINT: hub.url, HF_HOME: join(root, "hf"), HF_HUB_CACHE: join(root, "hf", "hub"), SPEC_DECODE_CACHE: join(root, "ours") };
}, 240_000);

afterAll(async () => {
  await hub?.stop();
});

describe("spec-decode with Hugging Face repo ids", () => {
  it("pull prints what it will write, plain progress lines off a TTY, and the snapshot dir", async () => {
    const r = await cli(["pull", "--revision", "main", "test-org/cli-tiny"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/files to download, .* to write under/);
    expect(r.stderr).toMatch(/^download: .*\d+%/m);
    expect(r.stderr).not.toMatch(/\x1b\[/);
    expect(r.stdout).toMatch(/models--test-org--cli-tiny\/snapshots\/[0-9a-f]{40}/);
  }, 120_000);

  it("generate --model org/name --draft org/name gives the same tokens as the local directory", async () => {
    const local = await cli(["generate", "--model", model, "--prompt", "the cat", "--max-new-tokens", "8", "--json"]);
    expect(local.code, local.stderr).toBe(0);
    const viaHub = await cli(["generate", "--model", "test-org/cli-tiny", "--draft", "test-org/cli-tiny", "--prompt", "the cat", "--max-new-tokens", "8", "--json"], { HF_HUB_OFFLINE: "1" });
    expect(viaHub.code, viaHub.stderr).toBe(0);
    expect(JSON.parse(viaHub.stdout).tokens).toEqual(JSON.parse(local.stdout).tokens);
    expect(JSON.parse(viaHub.stdout).method).toBe("draft");
  }, 120_000);

  it("offline with an uncached repo fails with the fix, not a missing-directory error", async () => {
    const r = await cli(["generate", "--model", "test-org/absent", "--prompt", "x"], { HF_HUB_OFFLINE: "1" });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/HUB_OFFLINE/);
    expect(r.stderr).toMatch(/spec-decode pull test-org\/absent/);
  });

  it("suggest-draft lists known drafts and checks a cached pair's tokenizers", async () => {
    const q = await cli(["suggest-draft", "--model", "Qwen/Qwen2.5-7B-Instruct", "--json"]);
    expect(q.code, q.stderr).toBe(0);
    const o = JSON.parse(q.stdout);
    expect(o.family).toBe("Qwen2.5");
    expect(o.drafts.map((d: { repo: string }) => d.repo)).toContain("Qwen/Qwen2.5-0.5B-Instruct");
    const pair = await cli(["suggest-draft", "--model", "test-org/cli-tiny", "--draft", model, "--json"]);
    expect(pair.code, pair.stderr).toBe(0);
    const p = JSON.parse(pair.stdout);
    expect(p.family).toBeNull();
    expect(p.checks[0].check.compatible).toBe(true);
    expect(p.checks[0].check.checks.map((c: { name: string }) => c.name)).toEqual(["vocabulary", "special tokens", "probe text"]);
  }, 60_000);
});
