/**
 * Models from the Hub, end to end against a Hub look-alike on 127.0.0.1 (test/hub/fake-hub.ts)
 * serving models our builder made. Never touches the real network: HF_ENDPOINT points at the
 * local server and every cache lives in a temp dir.
 */
import { createHash } from "node:crypto";
import { copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SpecEngine } from "../../src/api.js";
import { HubError, pullModel, resolveModel } from "../../src/hub/index.js";
import { fixture, tempDir } from "../helpers/fixtures.js";
import { FakeHub } from "./fake-hub.js";

const FIXTURE = { layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 11 };
let hub: FakeHub;
let src: string;
let expected: number[];

/** A fresh environment: its own HF cache, our own cache, no token, the local Hub. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const root = tempDir("hub");
  return {
    HF_ENDPOINT: hub.url,
    HF_HOME: join(root, "hf"),
    HF_HUB_CACHE: join(root, "hf", "hub"),
    SPEC_DECODE_CACHE: join(root, "ours"),
    ...extra,
  };
}

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

async function failure(p: Promise<unknown>): Promise<HubError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(HubError);
    return err as HubError;
  }
  throw new Error("expected a HubError");
}

beforeAll(async () => {
  const built = await fixture(FIXTURE);
  // The published repo: the fixture plus a second (q4-named) variant and a decoy fp16 variant
  // that a pull of the default variant must never fetch.
  src = tempDir("hub-src");
  cpSync(built, src, { recursive: true });
  copyFileSync(join(src, "onnx", "model.onnx"), join(src, "onnx", "model_q4.onnx"));
  writeFileSync(join(src, "onnx", "model_fp16.onnx"), Buffer.alloc(4096, 7));
  writeFileSync(join(src, "onnx", "model_fp16.onnx_data"), Buffer.alloc(4096, 8));
  hub = new FakeHub();
  await hub.start();
  hub.addRepo("test-org/tiny", src);
  hub.addRepo("test-org/tiny-st", src, { include: (p) => !p.startsWith("onnx/") });
  hub.addRepo("test-org/gated", src, { gatedToken: "hf_goodtoken" });
  const engine = new SpecEngine();
  expected = (await engine.generate({ model: built, prompt: "the cat", maxNewTokens: 10 })).tokens;
  await engine.dispose();
}, 240_000);

afterAll(async () => {
  await hub?.stop();
});

describe("pull by repo id", () => {
  it("downloads only the chosen variant into the HF cache layout and generates the same tokens", async () => {
    const e = env();
    const engine = new SpecEngine({ hub: { env: e } });
    const res = await engine.generate({ model: "test-org/tiny", prompt: "the cat", maxNewTokens: 10 });
    expect(res.tokens).toEqual(expected);
    await engine.dispose();

    const repoDir = join(e.HF_HUB_CACHE!, "models--test-org--tiny");
    const commit = readFileSync(join(repoDir, "refs", "main"), "utf8");
    expect(commit).toBe(hub.repos.get("test-org/tiny")!.commit);
    const snap = join(repoDir, "snapshots", commit);
    // Snapshot entries are relative symlinks into blobs/<sha256> (LFS) or blobs/<git sha1>.
    const link = join(snap, "onnx", "model.onnx");
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe(join("..", "..", "..", "blobs", sha256(link)));
    expect(sha256(link)).toBe(sha256(join(src, "onnx", "model.onnx")));
    // Only what the default variant needs: no fp16 decoy, no q4, no safetensors.
    const onnx = readdirSync(join(snap, "onnx"));
    expect(onnx.filter((f) => f.endsWith(".onnx"))).toEqual(["model.onnx"]);
    expect(existsSync(join(snap, "model.safetensors"))).toBe(false);
    expect(hub.requests(/model_fp16|model_q4|safetensors/).filter((r) => !r.url.startsWith("/api/"))).toEqual([]);

    // A second use resolves from the cache without any request.
    const before = hub.log.length;
    const again = await resolveModel("test-org/tiny", { env: e });
    expect(again).toMatchObject({ source: "cache", dir: snap, commit });
    expect(hub.log.length).toBe(before);

    // A named variant adds just that file.
    const q4 = await pullModel("test-org/tiny:q4", { env: e });
    expect(q4.plan.modelFile).toBe("onnx/model_q4.onnx");
    expect(readdirSync(join(snap, "onnx")).filter((f) => f.endsWith(".onnx")).sort()).toEqual(["model.onnx", "model_q4.onnx"]);
    const viaVariant = new SpecEngine({ hub: { env: e } });
    const r2 = await viaVariant.generate({ model: "test-org/tiny:q4", prompt: "the cat", maxNewTokens: 10 });
    expect(r2.tokens).toEqual(expected);
    await viaVariant.dispose();
  }, 120_000);

  it("an unknown variant names the available ones", async () => {
    const err = await failure(pullModel("test-org/tiny:int3", { env: env() }));
    expect(err.code).toBe("HUB_NOT_FOUND");
    expect(err.message).toMatch(/Available variants: .*fp16.*q4|Available variants: .*fp32/);
  });

  it("a safetensors-only repo is built into our cache (not the HF snapshot) and generates the same tokens", async () => {
    const e = env();
    const r = await resolveModel("test-org/tiny-st", { env: e });
    expect(r.source).toBe("download");
    expect(r.built).toBe(true);
    expect(r.dir.startsWith(join(e.SPEC_DECODE_CACHE!, "hub-builds"))).toBe(true);
    expect(existsSync(join(r.snapshot!, "onnx"))).toBe(false);
    const engine = new SpecEngine({ hub: { env: e } });
    const res = await engine.generate({ model: "test-org/tiny-st", prompt: "the cat", maxNewTokens: 10 });
    expect(res.tokens).toEqual(expected);
    await engine.dispose();
  }, 120_000);

  it("org/name:q4 on a safetensors-only repo builds int4 into its own folder and matches a local int4 build", async () => {
    const e = env();
    const r = await resolveModel("test-org/tiny-st:q4", { env: e });
    expect(r.built).toBe(true);
    expect(r.dir).toMatch(/hub-builds\/models--test-org--tiny-st\/[0-9a-f]{40}-q4$/);
    expect(existsSync(join(r.dir, "onnx", "model_q4.onnx"))).toBe(true);
    expect(existsSync(join(r.snapshot!, "onnx"))).toBe(false);
    const local = await fixture({ ...FIXTURE, quantize: { kind: "int4" } });
    const engine = new SpecEngine({ hub: { env: e } });
    try {
      const want = await engine.generate({ model: local, variant: "q4", prompt: "the cat", maxNewTokens: 10 });
      const got = await engine.generate({ model: "test-org/tiny-st:q4", prompt: "the cat", maxNewTokens: 10 });
      expect(got.tokens).toEqual(want.tokens);
      // Cached now: the float32 build and the q4 build live side by side; an unbuildable variant says which are.
      expect((await resolveModel("test-org/tiny-st:q4", { env: { ...e, HF_HUB_OFFLINE: "1" } })).dir).toBe(r.dir);
      const err = await failure(resolveModel("test-org/tiny-st:q3", { env: e }));
      expect(err.message).toMatch(/buildable variants: fp32, q4, q4f16, int8, uint8, bnb4/);
    } finally {
      await engine.dispose();
    }
  }, 120_000);
});

describe("resume, integrity, concurrency", () => {
  it("resumes with a Range request after the server drops the connection mid-file", async () => {
    const e = env();
    const size = readFileSync(join(src, "onnx", "model.onnx")).length;
    hub.drop = { path: "onnx/model.onnx", afterBytes: 5000, times: 1 };
    const mark = hub.log.length;
    const r = await pullModel("test-org/tiny", { env: e });
    expect(hub.drop.times).toBe(0);
    const cdn = hub.log.slice(mark).filter((q) => q.url.startsWith("/cdn/") && q.range !== "bytes=0-0");
    expect(cdn.map((q) => q.range)).toContain("bytes=5000-");
    expect(sha256(join(r.snapshot, "onnx", "model.onnx"))).toBe(sha256(join(src, "onnx", "model.onnx")));
    expect(size).toBeGreaterThan(5000);
  }, 60_000);

  it("a pull that gave up keeps its partial file and the next pull resumes from it", async () => {
    const e = env();
    hub.drop = { path: "onnx/model.onnx", afterBytes: 7000, times: 1 };
    const err = await failure(pullModel("test-org/tiny", { env: e, retries: 0 }));
    expect(err.code).toBe("HUB_NETWORK");
    expect(err.message).toMatch(/next pull resumes/);
    const blobs = join(e.HF_HUB_CACHE!, "models--test-org--tiny", "blobs");
    const partial = readdirSync(blobs).filter((f) => f.endsWith(".incomplete"));
    expect(partial).toHaveLength(1);
    const snap = join(e.HF_HUB_CACHE!, "models--test-org--tiny", "snapshots", hub.repos.get("test-org/tiny")!.commit);
    expect(existsSync(join(snap, "onnx", "model.onnx"))).toBe(false);
    const mark = hub.log.length;
    const r = await pullModel("test-org/tiny", { env: e });
    expect(hub.log.slice(mark).some((q) => q.url.startsWith("/cdn/") && q.range === "bytes=7000-")).toBe(true);
    expect(sha256(join(r.snapshot, "onnx", "model.onnx"))).toBe(sha256(join(src, "onnx", "model.onnx")));
    expect(readdirSync(blobs).filter((f) => f.endsWith(".incomplete"))).toEqual([]);
  }, 60_000);

  it("a corrupted file fails the sha256 check and leaves nothing in the snapshot or blobs", async () => {
    const e = env();
    const real = readFileSync(join(src, "onnx", "model.onnx"));
    const bad = Buffer.from(real);
    bad[bad.length - 10] = (bad[bad.length - 10] ?? 0) ^ 0xff;
    hub.corrupt = { path: "onnx/model.onnx", bytes: bad };
    try {
      const err = await failure(pullModel("test-org/tiny", { env: e }));
      expect(err.code).toBe("HUB_INTEGRITY");
      expect(err.message).toContain(sha256(join(src, "onnx", "model.onnx")));
    } finally {
      hub.corrupt = undefined;
    }
    const repoDir = join(e.HF_HUB_CACHE!, "models--test-org--tiny");
    const snap = join(repoDir, "snapshots", hub.repos.get("test-org/tiny")!.commit);
    expect(existsSync(join(snap, "onnx", "model.onnx"))).toBe(false);
    const blobs = readdirSync(join(repoDir, "blobs"));
    expect(blobs.filter((b) => b.includes(createHash("sha256").update(real).digest("hex")))).toEqual([]);
    expect(blobs.filter((b) => b.endsWith(".incomplete") || b.endsWith(".lock"))).toEqual([]);
    // No ref is written for an incomplete pull, so the cache does not claim the model.
    expect(existsSync(join(repoDir, "refs", "main"))).toBe(false);
  }, 60_000);

  it("two concurrent pulls of the same repo fetch each file once and both get verified files", async () => {
    const e = env();
    hub.chunkDelayMs = 5;
    const mark = hub.log.length;
    try {
      const [a, b] = await Promise.all([pullModel("test-org/tiny", { env: e }), pullModel("test-org/tiny", { env: e })]);
      expect(a.snapshot).toBe(b.snapshot);
      for (const f of a.plan.files) expect(sha256(join(a.snapshot, f.path))).toBe(sha256(join(src, f.path)));
    } finally {
      hub.chunkDelayMs = 0;
    }
    const fullGets = hub.log.slice(mark).filter((q) => q.url.startsWith("/cdn/") && q.range === undefined);
    expect(new Set(fullGets.map((q) => q.url)).size).toBe(fullGets.length);
    const blobs = readdirSync(join(e.HF_HUB_CACHE!, "models--test-org--tiny", "blobs"));
    expect(blobs.filter((b) => b.includes("."))).toEqual([]);
  }, 60_000);
});

describe("access, offline, disk, MCP-style no-download", () => {
  it("401 on a gated repo says how to get access with HF_TOKEN; the right token works", async () => {
    const err = await failure(pullModel("test-org/gated", { env: env() }));
    expect(err.code).toBe("HUB_AUTH");
    expect(err.message).toMatch(/HTTP 401/);
    expect(err.message).toMatch(/export HF_TOKEN=hf_/);
    expect(err.message).toContain(`${hub.url}/test-org/gated`);
    const wrong = await failure(pullModel("test-org/gated", { env: env({ HF_TOKEN: "hf_wrong" }) }));
    expect(wrong.message).toMatch(/has no access/);
    const ok = await pullModel("test-org/gated", { env: env({ HF_TOKEN: "hf_goodtoken" }) });
    expect(existsSync(join(ok.snapshot, "onnx", "model.onnx"))).toBe(true);
    expect(hub.requests(/\/cdn\//).some((q) => q.auth === "Bearer hf_goodtoken")).toBe(true);
  }, 60_000);

  it("HF_HUB_OFFLINE=1 uses the cache without a request and errors clearly when a file is missing", async () => {
    const e = env();
    await pullModel("test-org/tiny", { env: e });
    const off = { ...e, HF_HUB_OFFLINE: "1" };
    const mark = hub.log.length;
    const r = await resolveModel("test-org/tiny", { env: off });
    expect(r.source).toBe("cache");
    const missing = await failure(resolveModel("test-org/tiny:q4", { env: off }));
    expect(missing.code).toBe("HUB_OFFLINE");
    expect(missing.message).toMatch(/variant "q4"/);
    expect(missing.message).toMatch(/Unset HF_HUB_OFFLINE/);
    const never = await failure(resolveModel("test-org/never-pulled", { env: off }));
    expect(never.code).toBe("HUB_OFFLINE");
    // An explicit pull offline answers from a complete cache, and names what is missing otherwise.
    const cachedPull = await pullModel("test-org/tiny", { env: off });
    expect(cachedPull).toMatchObject({ dir: r.dir, downloadedBytes: 0 });
    expect((await failure(pullModel("test-org/tiny:q4", { env: off }))).message).toMatch(/missing: variant "q4"/);
    expect(hub.log.length).toBe(mark);
  }, 60_000);

  it("refuses before writing when the disk lacks room, saying how much it needs", async () => {
    const e = env({ SPEC_DECODE_FREE_BYTES: "1000" });
    const err = await failure(pullModel("test-org/tiny", { env: e }));
    expect(err.code).toBe("DISK_SPACE");
    expect(err.message).toMatch(/will write .*(KiB|MiB)/);
    expect(existsSync(join(e.HF_HUB_CACHE!, "models--test-org--tiny", "blobs"))).toBe(false);
  });

  it("with download: false (the MCP server) a repo that is not cached is an error naming the pull tool", async () => {
    const mark = hub.log.length;
    const err = await failure(resolveModel("test-org/tiny", { env: env(), download: false, pullHint: "Call pull_model first." }));
    expect(err.code).toBe("HUB_NOT_CACHED");
    expect(err.message).toMatch(/pull_model/);
    expect(hub.log.length).toBe(mark);
  });

  it("a missing repo is a 404 that names the repo id", async () => {
    const err = await failure(pullModel("test-org/nope", { env: env() }));
    expect(err.code).toBe("HUB_NOT_FOUND");
    expect(err.message).toMatch(/test-org\/nope/);
  });
});

void mkdirSync;
