import { statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ModelStore } from "../../src/engine/model-store.js";
import { fixture } from "../helpers/fixtures.js";

describe("ModelStore", () => {
  it("reuses loaded models and extras, and frees both on unload", async () => {
    const dir = await fixture({ layers: 1, hidden: 32, heads: 2, kvHeads: 1, vocab: 300, seed: 11 });
    const store = new ModelStore();
    const a = await store.load(dir);
    const b = await store.load(dir);
    expect(b).toBe(a);
    let loads = 0;
    let disposed = 0;
    const extra = (version = "v1") => store.loadExtra(dir, "thing", version, async () => {
      loads++;
      return { dispose: async () => void disposed++ };
    });
    const x = await extra();
    expect(await extra()).toBe(x);
    expect(loads).toBe(1);
    // Rebuilt files: the old one is freed, the new one loaded.
    const y = await extra("v2");
    expect(y).not.toBe(x);
    expect(loads).toBe(2);
    expect(disposed).toBe(1);
    expect(await store.unload(dir)).toBe(2);
    expect(disposed).toBe(2);
    expect(await store.loaded()).toHaveLength(0);
    await store.dispose();
  });

  it("never evicts a pinned model; a load that would pass the bound while it is in use is refused", async () => {
    const d1 = await fixture({ layers: 1, hidden: 32, heads: 2, kvHeads: 1, vocab: 300, seed: 12 });
    const d2 = await fixture({ layers: 1, hidden: 32, heads: 2, kvHeads: 1, vocab: 300, seed: 13 });
    const store = new ModelStore({ maxBytes: 1 });
    const a = await store.load(d1);
    store.pin(a);
    await expect(store.load(d2)).rejects.toThrow(/memory bound .*--max-memory/);
    expect((await store.loaded()).map((m) => m.key)).toEqual([a.key]);
    store.unpin(a);
    const c = await store.load(d2);
    expect((await store.loaded()).map((m) => m.key)).toEqual([c.key]);
    await store.dispose();
  });

  it("counts extras (heads) against the memory bound and refuses one that does not fit beside a model in use", async () => {
    const d1 = await fixture({ layers: 1, hidden: 32, heads: 2, kvHeads: 1, vocab: 300, seed: 12 });
    const file = join(d1, "onnx", "model.onnx");
    const size = statSync(file).size;
    const store = new ModelStore({ maxBytes: Math.floor(size * 1.5) });
    const a = await store.load(d1);
    store.pin(a);
    const heads = () => store.loadExtra(d1, "heads", "v1", async () => ({ dispose: async () => undefined }), file);
    await expect(heads()).rejects.toThrow(/memory bound .*--max-memory/);
    store.unpin(a);
    await heads(); // the idle model is evicted to make room
    const u = await store.usage();
    expect(u.usedBytes).toBeGreaterThanOrEqual(size);
    expect(u.usedBytes).toBeLessThanOrEqual(u.maxBytes);
    await store.dispose();
  });
});

describe("ModelStore: loads that wait for room", () => {
  const dirs = async () => [
    await fixture({ layers: 1, hidden: 32, heads: 2, kvHeads: 1, vocab: 300, seed: 12 }),
    await fixture({ layers: 1, hidden: 32, heads: 2, kvHeads: 1, vocab: 300, seed: 13 }),
  ];
  /** Whether `p` has settled after the pending callbacks have run. */
  const settledYet = async (p: Promise<unknown>) => {
    let done = false;
    p.then(() => (done = true), () => (done = true));
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    return done;
  };

  it("waitForRoom waits for a running request to unpin its model, then loads in its place", async () => {
    const [d1, d2] = await dirs();
    const store = new ModelStore({ maxBytes: 1, roomWaitMs: 10 * 60_000 });
    const a = await store.load(d1!, { pin: true });
    const waiting = store.load(d2!, { waitForRoom: true, pin: true });
    expect(await settledYet(waiting)).toBe(false);
    expect((await store.loaded()).map((m) => m.key)).toEqual([a.key]); // the pinned model stays
    store.unpin(a);
    const b = await waiting;
    expect((await store.loaded()).map((m) => m.key)).toEqual([b.key]);
    store.unpin(b);
    await store.dispose();
  });

  it("gives up after roomWaitMs with an error naming the bound and the wait; a load without waitForRoom is refused at once", async () => {
    const [d1, d2] = await dirs();
    const store = new ModelStore({ maxBytes: 1, roomWaitMs: 50 });
    const a = await store.load(d1!, { pin: true });
    await expect(store.load(d2!, { waitForRoom: true })).rejects.toThrow(/memory bound .*still after waiting 50 ms.*--max-memory/);
    const once = store.load(d2!);
    await expect(once).rejects.toThrow(/memory bound/);
    await expect(once).rejects.not.toThrow(/waiting/);
    store.unpin(a);
    await store.dispose();
  });

  it("stops waiting when the request is cancelled", async () => {
    const [d1, d2] = await dirs();
    const store = new ModelStore({ maxBytes: 1, roomWaitMs: 10 * 60_000 });
    const a = await store.load(d1!, { pin: true });
    const ac = new AbortController();
    const waiting = store.load(d2!, { waitForRoom: true, signal: ac.signal });
    expect(await settledYet(waiting)).toBe(false);
    ac.abort(new Error("cancelled by the client"));
    await expect(waiting).rejects.toThrow(/cancelled by the client/);
    store.unpin(a);
    await store.dispose();
  });

  it("does not wait for room that finished requests cannot give (loaded heads stay until unload)", async () => {
    const [d1, d2] = await dirs();
    const file = join(d1!, "onnx", "model.onnx");
    const size = statSync(file).size;
    const store = new ModelStore({ maxBytes: Math.floor(size * 1.5), roomWaitMs: 10 * 60_000 });
    await store.loadExtra(d1!, "heads", "v1", async () => ({ dispose: async () => undefined }), file);
    // Heads of `size` + a model of about `size` exceed 1.5 x size whatever finishes: refused now, not in ten minutes.
    const r = store.load(d2!, { waitForRoom: true });
    await expect(r).rejects.toThrow(/memory bound .*loaded heads/);
    await expect(r).rejects.not.toThrow(/waiting/);
    await store.dispose();
  }, 30_000);
});

describe("ModelStore under concurrency and variants", () => {
  it("concurrent requests under a tight memory bound never unload each other's models nor pass the bound", async () => {
    const { SpecEngine } = await import("../../src/api.js");
    const t = await fixture({ layers: 1, hidden: 32, heads: 2, kvHeads: 1, vocab: 300, seed: 21, earlyExit: [] });
    const d = await fixture({ layers: 1, hidden: 32, heads: 2, kvHeads: 1, vocab: 300, seed: 22 });
    const o = await fixture({ layers: 1, hidden: 32, heads: 2, kvHeads: 1, vocab: 300, seed: 23 });
    const probe = new ModelStore();
    const one = (await probe.load(t)).bytes;
    await probe.dispose();
    const maxBytes = Math.floor(one * 2.5); // room for two of the three models
    const engine = new SpecEngine({ maxBytes });
    let peak = 0;
    const watch = setInterval(() => void engine.store.usage().then((u) => (peak = Math.max(peak, u.usedBytes))), 1);
    const reqs = [
      { model: t, draft: d, method: "draft" as const, promptIds: [1, 2, 3], maxNewTokens: 8 },
      { model: o, promptIds: [1, 2, 3], maxNewTokens: 8 },
      { model: d, promptIds: [4, 5], maxNewTokens: 8 },
    ];
    const runs = await Promise.allSettled(reqs.map((r) => engine.generate(r)));
    clearInterval(watch);
    expect(runs.some((r) => r.status === "fulfilled")).toBe(true);
    for (const [i, r] of runs.entries()) {
      if (r.status === "fulfilled") expect(r.value.tokens).toHaveLength(8);
      // A refused request says why; retried alone, it runs.
      else {
        expect(String(r.reason)).toMatch(/memory bound/);
        expect((await engine.generate(reqs[i]!)).tokens).toHaveLength(8);
      }
    }
    expect(peak).toBeLessThanOrEqual(maxBytes);
    await engine.dispose();
  });

  it("a bare load reuses the directory's model loaded with a variant, device or threads", async () => {
    const dir = await fixture({ layers: 1, hidden: 32, heads: 2, kvHeads: 1, vocab: 300, seed: 24 });
    const store = new ModelStore();
    const a = await store.load(dir, { variant: "model.onnx", threads: 1 });
    const b = await store.load(dir);
    expect(b).toBe(a);
    // An explicit file (early-exit draft) is never taken for the directory's model, and vice versa.
    expect((await store.loaded()).length).toBe(1);
    await store.dispose();
  });
});
