/**
 * Tree verification: a whole candidate tree (plus lookahead-style aux tokens) in ONE target forward
 * gives every node the logits it would get if its root-to-node path ran as a plain chain, and after
 * acceptance KVCache.gather leaves the cache exactly as plain decoding of the accepted path would.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateTokens } from "../../src/decoding/generate.js";
import type { DecodeContext, Proposal } from "../../src/decoding/proposer.js";
import { StatsCollector } from "../../src/decoding/stats.js";
import { buildTreeInputs, verifyRound } from "../../src/decoding/verify.js";
import { CausalLM } from "../../src/engine/causal-lm.js";
import type { KVCache } from "../../src/engine/kv-cache.js";
import { Rng } from "../../src/sampling/index.js";
import { fixture } from "../helpers/fixtures.js";
import { LLAMA, QWEN2 } from "./draft-free-helpers.js";

/** max |a - b| / max |b|. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
}

const PREFIX = [1, 40, 200, 7, 211, 95, 13, 160];
//              node:   0   1   2   3   4   5   6   7
const TREE: Proposal = {
  tokens: [55, 66, 77, 88, 99, 11, 12, 13],
  parents: [-1, 0, 1, 0, -1, 4, 4, 6],
};
// A lookahead-like window after the tree: a chain from cur and a second level on top of it.
const AUX = { tokens: [21, 22, 23, 24], positions: [1, 2, 2, 3], attends: [[0], [0, 9], [0, 9, 11], [0, 9, 10, 12]] };

function pathTo(p: Proposal, node: number): number[] {
  const path: number[] = [];
  for (let n = node; n !== -1; n = p.parents![n]!) path.unshift(n);
  return path;
}

describe.each([
  ["llama", LLAMA],
  ["qwen2", QWEN2],
])("tree verification on %s", (_name, opts) => {
  let lm: CausalLM;
  let past: KVCache; // the prefix without its last token, which is `cur`
  const cur = PREFIX[PREFIX.length - 1]!;
  beforeAll(async () => {
    lm = await CausalLM.load(await fixture(opts));
    past = lm.newCache();
    await lm.forward(past, PREFIX.slice(0, -1), { logits: "none" });
  });
  afterAll(() => lm?.dispose());

  async function treeForward(proposal: Proposal) {
    const cache = past.clone();
    const { mask, positions } = buildTreeInputs(cache.length, proposal);
    const inputs = [cur, ...proposal.tokens, ...(proposal.aux?.tokens ?? [])];
    const out = await lm.forward(cache, inputs, { positions, treeMask: mask });
    return { out, cache };
  }

  it("gives every node the logits of its root-to-node path run as a chain", async () => {
    const { out } = await treeForward(TREE);
    const V = out.vocab;
    const row = (r: number) => out.logits.subarray(r * V, (r + 1) * V);
    expect(out.rows).toBe(1 + TREE.tokens.length);
    const leaves = TREE.tokens.map((_, i) => i).filter((i) => !TREE.parents!.includes(i));
    expect(leaves).toEqual([2, 3, 5, 7]);
    const checked = new Set<number>();
    for (const leaf of leaves) {
      const path = pathTo(TREE, leaf);
      const chain = await lm.forward(past.clone(), [cur, ...path.map((i) => TREE.tokens[i]!)]);
      const chainRow = (r: number) => chain.logits.subarray(r * V, (r + 1) * V);
      expect(relErr(row(0), chainRow(0))).toBeLessThan(1e-4);
      path.forEach((node, k) => {
        expect(relErr(row(node + 1), chainRow(k + 1)), `node ${node}`).toBeLessThan(1e-4);
        checked.add(node);
      });
    }
    expect(checked.size).toBe(TREE.tokens.length);
  });

  it("aux tokens change none of the tree's logits, and get their own chain's logits", async () => {
    const plain = await treeForward(TREE);
    const withAux = await treeForward({ ...TREE, aux: AUX });
    const V = plain.out.vocab;
    const n = TREE.tokens.length;
    expect(withAux.out.rows).toBe(1 + n + AUX.tokens.length);
    expect(relErr(withAux.out.logits.subarray(0, (1 + n) * V), plain.out.logits)).toBeLessThan(1e-4);
    // aux 3 (24) sees cur, 21, 22, itself: the chain cur 21 22 24 at positions +0..+3.
    const chain = await lm.forward(past.clone(), [cur, 21, 22, 24]);
    const auxRow = (j: number) => withAux.out.logits.subarray((1 + n + j) * V, (2 + n + j) * V);
    expect(relErr(auxRow(3), chain.logits.subarray(3 * V, 4 * V))).toBeLessThan(1e-4);
    expect(relErr(auxRow(1), chain.logits.subarray(2 * V, 3 * V))).toBeLessThan(1e-4);
  });

  it("after gathering the accepted path the cache equals plain decoding of that path", async () => {
    const { cache } = await treeForward({ ...TREE, aux: AUX });
    const start = past.length;
    const path = pathTo(TREE, 7); // 99 12 13
    cache.gather(start, [0, ...path.map((i) => i + 1)]);
    const plain = past.clone();
    await lm.forward(plain, [cur, ...path.map((i) => TREE.tokens[i]!)], { logits: "none" });
    expect(cache.length).toBe(plain.length);
    for (let l = 0; l < lm.info.numLayers; l++) {
      expect(relErr(cache.key(l).data as Float32Array, plain.key(l).data as Float32Array)).toBeLessThan(1e-5);
      expect(relErr(cache.value(l).data as Float32Array, plain.value(l).data as Float32Array)).toBeLessThan(1e-5);
    }
    const next = await lm.forward(cache, [42, 43]);
    const ref = await lm.forward(plain, [42, 43]);
    expect(relErr(next.logits, ref.logits)).toBeLessThan(1e-4);
  });

  it("verifyRound accepts the target's own path from a tree and keeps only it in the cache", async () => {
    const greedy = (await generateTokens({ target: lm, promptIds: PREFIX, maxNewTokens: 5, eosIds: [] })).tokens;
    const [g0, g1, g2, g3] = greedy;
    const other = (t: number) => (t + 1) % 300;
    // Decoys first; the greedy path is 3 deep under a second root, with a wrong sibling at depth 2.
    const proposal: Proposal = {
      tokens: [other(g0!), g0!, g1!, other(g1!), g2!, other(g3!)],
      parents: [-1, -1, 1, 1, 2, 4],
      aux: { tokens: [5, 6], positions: [1, 2], attends: [[0], [0, 7]] },
    };
    const ctx: DecodeContext = {
      target: lm,
      cache: past.clone(),
      tokens: [...PREFIX],
      promptLength: PREFIX.length,
      sampling: {},
      greedy: true,
      rng: new Rng(0),
      stats: new StatsCollector("test"),
    };
    const res = await verifyRound(ctx, proposal);
    expect(res.path).toEqual([1, 2, 4]);
    expect(res.acceptedTokens).toEqual([g0, g1, g2]);
    expect(res.bonus).toBe(g3);
    expect(ctx.stats.verification).toBe("tree");
    expect(ctx.cache.length).toBe(past.length + 4);
    // The next round's logits equal plain decoding's.
    const plain = past.clone();
    await lm.forward(plain, [cur, g0!, g1!, g2!], { logits: "none" });
    const a = await lm.forward(ctx.cache, [g3!]);
    const b = await lm.forward(plain, [g3!]);
    expect(relErr(a.logits, b.logits)).toBeLessThan(1e-4);
  });
});
