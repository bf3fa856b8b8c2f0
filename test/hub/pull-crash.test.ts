/**
 * Crash consistency of `spec-decode pull`: the CLI runs as a child process against the Hub
 * look-alike (slowed so a pull takes about a second) and is killed with SIGKILL at seeded random
 * points. After each kill, every file the snapshot shows is whole (its bytes hash to what the Hub
 * lists) and no link dangles; the next pull resumes and completes, and the pulled model generates
 * exactly the tokens of the local directory it was published from.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SpecEngine } from "../../src/api.js";
import { Rng } from "../../src/sampling/index.js";
import { CLI, ensureBuilt } from "../helpers/dist.js";
import { fixture, tempDir } from "../helpers/fixtures.js";
import { FakeHub } from "./fake-hub.js";

const REPO = "test-org/crash-pull";
const PROMPT = [1, 17, 42, 99, 7];
let hub: FakeHub;
let model: string;
let env: NodeJS.ProcessEnv;
let hubCache: string;

/** Run `spec-decode pull`; kill it `killAfterMs` after its first output line. */
function pull(killAfterMs?: number): Promise<{ code: number | null; signal: string | null; ms: number }> {
  return new Promise((resolve) => {
    let t0 = 0;
    const child = spawn(process.execPath, [CLI, "pull", REPO], { stdio: ["ignore", "pipe", "pipe"], env });
    const arm = () => {
      if (t0 !== 0) return;
      t0 = performance.now();
      if (killAfterMs !== undefined) setTimeout(() => child.kill("SIGKILL"), killAfterMs);
    };
    child.stdout.on("data", arm);
    child.stderr.on("data", arm);
    child.on("exit", (code, signal) => resolve({ code, signal, ms: t0 === 0 ? 0 : performance.now() - t0 }));
  });
}

/** Every file under the repo's snapshots: [path inside the snapshot, sha256 of what it resolves to]. */
function snapshotFiles(): { path: string; sha256: string }[] {
  const snaps = join(hubCache, `models--${REPO.replace("/", "--")}`, "snapshots");
  if (!existsSync(snaps)) return [];
  const out: { path: string; sha256: string }[] = [];
  const walk = (root: string, d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(root, p);
      else {
        // A link that dangles throws here, failing the test: the snapshot must never show one.
        const real = st.isSymbolicLink() ? realpathSync(p) : p;
        out.push({ path: relative(root, p), sha256: createHash("sha256").update(readFileSync(real)).digest("hex") });
      }
    }
  };
  for (const commit of readdirSync(snaps)) walk(join(snaps, commit), join(snaps, commit));
  return out;
}

beforeAll(async () => {
  ensureBuilt();
  // ~5 MB of weights: 64 KiB chunks every 15 ms make a pull last about a second.
  model = await fixture({ layers: 2, hidden: 256, heads: 4, kvHeads: 2, vocab: 2000, seed: 41 });
  hub = new FakeHub();
  hub.chunkDelayMs = 15;
  await hub.start();
  hub.addRepo(REPO, model);
  const root = tempDir("pull-crash");
  hubCache = join(root, "hf", "hub");
  const { HF_TOKEN: _t, HUGGING_FACE_HUB_TOKEN: _h, HF_HUB_OFFLINE: _o, ...rest } = process.env;
  env = { ...rest, HF_ENDPOINT: hub.url, HF_HOME: join(root, "hf"), HF_HUB_CACHE: hubCache, SPEC_DECODE_CACHE: join(root, "ours") };
}, 240_000);

afterAll(async () => {
  await hub?.stop();
});

describe("spec-decode pull killed with SIGKILL", () => {
  it("never leaves a partial file in the snapshot; the next pull completes and generates the same tokens", async () => {
    const listed = hub.repos.get(REPO)!.files;
    const rng = new Rng(11);
    let killedMidway = 0;
    for (let i = 0; i < 5; i++) {
      const r = await pull(Math.floor(100 + 900 * rng.next()));
      if (r.signal === "SIGKILL") killedMidway++;
      else expect(r.code).toBe(0);
      for (const f of snapshotFiles()) {
        expect(listed.has(f.path), `${f.path} is not a file of the repo`).toBe(true);
        expect(f.sha256, `${f.path} in the snapshot is not whole after a kill`).toBe(listed.get(f.path)!.sha256);
      }
    }
    // The kills must have landed while downloading, or the test would prove nothing.
    expect(killedMidway).toBeGreaterThanOrEqual(3);

    const done = await pull();
    expect(done.code).toBe(0);
    const files = snapshotFiles();
    expect(files.some((f) => f.path.endsWith(".onnx"))).toBe(true);
    for (const f of files) expect(f.sha256).toBe(listed.get(f.path)!.sha256);

    const engine = new SpecEngine();
    try {
      const local = await engine.generate({ model, promptIds: PROMPT, maxNewTokens: 8 });
      const saved = { ...process.env };
      Object.assign(process.env, { HF_HUB_CACHE: hubCache, HF_HUB_OFFLINE: "1" });
      try {
        const viaHub = await engine.generate({ model: REPO, promptIds: PROMPT, maxNewTokens: 8 });
        expect(viaHub.tokens).toEqual(local.tokens);
      } finally {
        process.env = saved;
      }
    } finally {
      await engine.dispose();
    }
  }, 240_000);
});
