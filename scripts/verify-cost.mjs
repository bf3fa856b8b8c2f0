#!/usr/bin/env node
/**
 * The verify cost curve of one model file: milliseconds of one target forward over T tokens on a
 * cache of P tokens, through the engine (CausalLM.forward, the same session options as decoding),
 * median of R runs after a warm-up. Flat in T means verification is nearly free (memory-bound
 * float weights); steep means each drafted token costs (int4 at accuracy level 4).
 *
 *   npm run build
 *   node scripts/verify-cost.mjs --model DIR [--variant q4] [--file F.onnx] [--threads 1] [--past 64]
 *     [--tokens 1,2,4,8,16] [--repeats 7] [--json]
 */
import { parseArgs } from "node:util";
import { fromDist } from "./lib/dist.mjs";

const { CausalLM } = await fromDist("engine/causal-lm.js");

const { values: v } = parseArgs({
  options: {
    model: { type: "string" },
    variant: { type: "string" },
    file: { type: "string" },
    threads: { type: "string" },
    past: { type: "string", default: "64" },
    tokens: { type: "string", default: "1,2,4,8,16" },
    repeats: { type: "string", default: "7" },
    json: { type: "boolean", default: false },
  },
});
if (!v.model) {
  console.error("Usage: node scripts/verify-cost.mjs --model DIR [--variant q4] [--file F.onnx] [--threads N] [--past P] [--tokens 1,2,4,8] [--repeats R] [--json]");
  process.exit(2);
}
const lm = await CausalLM.load(v.model, { variant: v.variant, file: v.file, threads: v.threads ? Number(v.threads) : undefined });
const P = Number(v.past);
const R = Number(v.repeats);
const Ts = v.tokens.split(",").map(Number);
const V = lm.info.vocabSize ?? 256;
const ids = (n, off) => Array.from({ length: n }, (_, i) => 3 + ((i * 37 + off) % (V - 3)));
const cache = lm.newCache();
await lm.forward(cache, ids(P, 0), { logits: "last" });
const rows = [];
for (const T of Ts) {
  const times = [];
  for (let r = 0; r <= R; r++) {
    const t0 = performance.now();
    await lm.forward(cache, ids(T, r + 1), { logits: "all" });
    const ms = performance.now() - t0;
    cache.crop(P);
    if (r > 0) times.push(ms); // the first run is a warm-up
  }
  times.sort((a, b) => a - b);
  rows.push({ tokens: T, medianMs: Math.round(times[times.length >> 1] * 100) / 100 });
}
const base = rows.find((r) => r.tokens === 1)?.medianMs ?? rows[0].medianMs;
for (const r of rows) r.vsOne = Math.round((r.medianMs / base) * 100) / 100;
if (v.json) console.log(JSON.stringify({ file: lm.info.file, threads: v.threads ?? null, past: P, rows }, null, 2));
else {
  console.log(`${lm.info.file}, past ${P}, threads ${v.threads ?? "default"}, median of ${R}`);
  console.log(`| T | ${rows.map((r) => r.tokens).join(" | ")} |\n|---|${rows.map(() => "---:").join("|")}|`);
  console.log(`| ms | ${rows.map((r) => r.medianMs).join(" | ")} |`);
  console.log(`| x T=1 | ${rows.map((r) => r.vsOne).join(" | ")} |`);
}
await lm.dispose();
