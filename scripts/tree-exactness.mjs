#!/usr/bin/env node
/**
 * Does a tree-verification forward give a node the same logits as plain one-token decoding?
 *
 *   node scripts/tree-exactness.mjs --model DIR [--variant int8|q4] [--prompt-id summarization-2] [--threads 1]
 *
 * The target decodes a built-in prompt greedily one token at a time (the reference rows). Then, at
 * a few prefix lengths s, one forward verifies a 6-node tree over the next greedy tokens g1..g3
 * (w = a wrong sibling) in two row orders:
 *   scattered:  root, w, g1, w, g2, g3   (g1's ancestors are rows 0 and 2: not contiguous)
 *   contiguous: root, g1, g2, g3, w, w   (the greedy path first, siblings after it)
 * and prints, per greedy-path row, the largest |logit - reference logit| ("!" when the argmax moved).
 * Measured on the twin (references/quantization.md, "Exactness"): contiguous rows are bitwise
 * equal on float32, int8 and int4; scattered rows differ by ~4e-6 on float32 and up to ~3e-2 on
 * int8 / int4 at accuracy level 4.
 */
import { parseArgs } from "node:util";
import { SpecEngine } from "../dist/api.js";
import { builtinWorkload } from "../dist/bench/workload.js";

const { values: v } = parseArgs({ options: { model: { type: "string" }, variant: { type: "string" }, "prompt-id": { type: "string" }, threads: { type: "string" } } });
if (!v.model) {
  console.error("usage: node scripts/tree-exactness.mjs --model DIR [--variant int8|q4] [--prompt-id summarization-2] [--threads 1]");
  process.exit(2);
}
const engine = new SpecEngine({ threads: Number(v.threads ?? 1) });
try {
  const target = await engine.store.load(v.model, v.variant ? { variant: v.variant } : {});
  const lm = target.lm;
  const prompt = builtinWorkload().find((p) => p.id === (v["prompt-id"] ?? "summarization-2"));
  if (!prompt) throw new Error(`no built-in prompt ${v["prompt-id"]}`);
  const ids = engine.encodePrompt(target, prompt);
  const argmax = (r) => {
    let b = 0;
    for (let j = 1; j < r.length; j++) if (r[j] > r[b]) b = j;
    return b;
  };
  const cache = lm.newCache();
  let out = await lm.forward(cache, ids, { logits: "last" });
  const V = out.vocab;
  const toks = [];
  const rows = [];
  let row = out.logits.slice(out.logits.length - V);
  for (let i = 0; i < 30; i++) {
    const b = argmax(row);
    toks.push(b);
    rows.push(row);
    out = await lm.forward(cache, [b], { logits: "all" });
    row = out.logits.slice(0, V);
  }
  // Nodes: 0 root, 1..3 the greedy path, 4 / 5 wrong siblings at depths 1 / 2; order = row -> node.
  const layouts = { scattered: [0, 4, 1, 5, 2, 3], contiguous: [0, 1, 2, 3, 4, 5] };
  const parentOf = [-1, 0, 1, 2, 0, 1];
  const depthOf = [0, 1, 2, 3, 1, 2];
  for (const s of [0, 5, 10, 20]) {
    const line = [];
    for (const [name, order] of Object.entries(layouts)) {
      const c = lm.newCache();
      await lm.forward(c, [...ids, ...toks.slice(0, s)], { logits: "none" });
      const P = c.length;
      const rowOf = new Map(order.map((node, r) => [node, r]));
      const tokenOf = (n) => (n <= 3 ? toks[s + n] : (toks[s + depthOf[n]] + 7) % V);
      const T = order.length;
      const total = P + T;
      const mask = new Uint8Array(T * total);
      order.forEach((node, r) => {
        mask.fill(1, r * total, r * total + P);
        for (let a = node; a >= 0; a = parentOf[a]) mask[r * total + P + rowOf.get(a)] = 1;
      });
      const o = await lm.forward(c, order.map(tokenOf), { logits: "all", treeMask: mask, positions: order.map((n) => P + depthOf[n]) });
      const cells = [0, 1, 2, 3].map((node) => {
        const r = rowOf.get(node);
        const a = o.logits.subarray(r * V, (r + 1) * V);
        const ref = rows[s + node + 1];
        let d = 0;
        for (let j = 0; j < V; j++) d = Math.max(d, Math.abs(a[j] - ref[j]));
        return `${d.toExponential(1)}${argmax(a) !== argmax(ref) ? "!" : ""}`;
      });
      line.push(`${name}: ${cells.join(" ")}`);
    }
    console.log(`${v.variant ?? "default"} s=${s}  ${line.join("   ")}`);
  }
} finally {
  await engine.dispose();
}
