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
    const extra = () => store.loadExtra(dir, "thing", async () => {
      loads++;
      return { dispose: async () => void disposed++ };
    });
    const x = await extra();
    expect(await extra()).toBe(x);
    expect(loads).toBe(1);
    expect(await store.unload(dir)).toBe(2);
    expect(disposed).toBe(1);
    expect(await store.loaded()).toHaveLength(0);
    await store.dispose();
  });

  it("never evicts a pinned model, even over the memory bound", async () => {
    const d1 = await fixture({ layers: 1, hidden: 32, heads: 2, kvHeads: 1, vocab: 300, seed: 12 });
    const d2 = await fixture({ layers: 1, hidden: 32, heads: 2, kvHeads: 1, vocab: 300, seed: 13 });
    const store = new ModelStore({ maxBytes: 1 });
    const a = await store.load(d1);
    store.pin(a);
    await store.load(d2);
    expect((await store.loaded()).map((m) => m.key)).toContain(a.key);
    store.unpin(a);
    const c = await store.load(d2);
    expect((await store.loaded()).map((m) => m.key)).toEqual([c.key]);
    await store.dispose();
  });
});
