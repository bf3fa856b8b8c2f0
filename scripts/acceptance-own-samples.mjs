#!/usr/bin/env node
/**
 * Mean accepted length of every method on a model's own samples as prompts (token-id space, so it
 * works for models without a tokenizer, like the stories260K checkpoint).
 *
 *   node scripts/acceptance-own-samples.mjs --model DIR [--eagle DIR [--eagle-totals 8,60] [--eagle-trees 64:8:8]] [--medusa DIR] [--exit-layers 1,2,3]
 *     [--adapter-layers 2] [--exit-k 4[,6,8]]
 *     [--prompts 20] [--sampled 16] [--max-new-tokens 128] [--seed 7] [--json]
 *
 * --eagle-totals: extra EAGLE arms with a fixed treeTotal (default depth and top-k); --eagle-trees:
 * extra arms given as total:depth:topk (total "auto" keeps the auto budget). EAGLE arms also report
 * the mean nodes verified per round (eagleMeanTreeTotal, auto arms only) and, for the auto width, the
 * mean drafted top-k and rounds per width (eagleMeanTreeTopK, eagleTreeWidths) in the JSON.
 * --exit-layers: untrained early exits (early_exit_{m}.onnx, adapter off); --adapter-layers: trained
 * exits (exit_adapter_{m}.onnx from `spec-decode train-early-exit`). Early exits run with the default
 * K controller (k "auto": the cost controller stops drafting when acceptance does not pay for the
 * draft's cost) and, with --exit-k K[,K2...], also with each fixed K (what the draft's quality gives
 * when it always drafts).
 * Prompts: BOS + `sampled` tokens the model samples itself (temperature 1, seeded; a different seed
 * from train-eagle/train-medusa's default prompts). Each method then decodes greedily from every
 * prompt, the methods' order rotating per prompt; the script checks each method's tokens equal
 * plain greedy decoding's, and prints per method: mean accepted length = new tokens / target
 * forwards (bonus included; 1.0 = plain decoding), acceptance of drafted tokens, and decode tok/s
 * (the model's size makes timings dominated by fixed overheads: read acceptance, not speed, here).
 * Needs `npm run build` first.
 */
import { parseArgs } from "node:util";
import { SpecEngine, CausalLM } from "../dist/index.js";
import { sampledIdPrompts } from "../dist/medusa/data.js";

const { values: v } = parseArgs({
  options: {
    model: { type: "string" },
    eagle: { type: "string" },
    medusa: { type: "string" },
    "exit-layers": { type: "string", default: "" },
    "adapter-layers": { type: "string", default: "" },
    "exit-k": { type: "string", default: "" },
    "eagle-totals": { type: "string", default: "" },
    "eagle-trees": { type: "string", default: "" },
    prompts: { type: "string", default: "20" },
    sampled: { type: "string", default: "16" },
    "max-new-tokens": { type: "string", default: "128" },
    seed: { type: "string", default: "7" },
    json: { type: "boolean", default: false },
  },
});
if (!v.model) {
  console.error("usage: node scripts/acceptance-own-samples.mjs --model DIR [--eagle DIR] [--medusa DIR] [--exit-layers 1,2,3] ...");
  process.exit(2);
}
const maxNewTokens = Number(v["max-new-tokens"]);
const lm = await CausalLM.load(v.model);
const prompts = await sampledIdPrompts(lm, Number(v.prompts), { sampled: Number(v.sampled), seed: Number(v.seed) });
await lm.dispose();

const methods = [{ label: "baseline", method: "baseline" }];
if (v.eagle) methods.push({ label: "eagle (trained), auto tree", method: "eagle", heads: v.eagle });
for (const t of (v["eagle-totals"] || "").split(",").filter(Boolean)) {
  methods.push({ label: `eagle (trained), treeTotal ${t}`, method: "eagle", heads: v.eagle, methodOptions: { treeTotal: Number(t) } });
}
for (const spec of (v["eagle-trees"] || "").split(",").filter(Boolean)) {
  const [t, d, k] = spec.split(":");
  if (!t || !d || !k || [d, k, ...(t === "auto" ? [] : [t])].some((x) => !(Number(x) >= 1))) {
    console.error(`--eagle-trees: expected total:depth:topk (total a number or auto), got ${spec}`);
    process.exit(2);
  }
  const methodOptions = { treeDepth: Number(d), treeTopK: Number(k), ...(t === "auto" ? {} : { treeTotal: Number(t) }) };
  methods.push({ label: `eagle (trained), treeTotal ${t}, depth ${d}, top-k ${k}`, method: "eagle", heads: v.eagle, methodOptions });
}
if (v.medusa) methods.push({ label: "medusa (trained)", method: "medusa", heads: v.medusa });
const exitKs = ["auto", ...(v["exit-k"] || "").split(",").filter(Boolean).map(Number)];
for (const [layers, adapter] of [[v["exit-layers"], false], [v["adapter-layers"], true]]) {
  for (const m of (layers || "").split(",").filter(Boolean)) {
    for (const k of exitKs) {
      const label = `early exit, layer ${m}${adapter ? " + trained adapter" : " (untrained)"}, K ${k === "auto" ? "auto" : k}`;
      methods.push({ label, method: "early-exit", methodOptions: { exitLayer: Number(m), adapter, k } });
    }
  }
}
methods.push({ label: "prompt lookup", method: "prompt-lookup" }, { label: "lookahead", method: "lookahead" });

const engine = new SpecEngine();
const acc = methods.map(() => ({ tokens: 0, forwards: 0, drafted: 0, accepted: 0, decodeMs: 0, mismatches: 0, tps: [], treeTotals: [], topKs: [], widths: new Map() }));
try {
  for (const [pi, promptIds] of prompts.entries()) {
    const outs = new Map();
    const order = methods.map((_, i) => (i + pi) % methods.length);
    for (const i of order) {
      const m = methods[i];
      const res = await engine.generate({ model: v.model, promptIds, maxNewTokens, method: m.method, heads: m.heads, methodOptions: m.methodOptions });
      outs.set(i, res.tokens);
      const a = acc[i];
      a.tokens += res.stats.newTokens;
      a.forwards += res.stats.targetForwards;
      a.drafted += res.stats.draftedTokens;
      a.accepted += res.stats.acceptedTokens;
      a.decodeMs += res.stats.decodeMs;
      a.tps.push(res.stats.tokensPerSecond);
      if (typeof res.stats.extra?.eagleMeanTreeTotal === "number") a.treeTotals.push([res.stats.extra.eagleMeanTreeTotal, res.stats.targetForwards]);
      if (typeof res.stats.extra?.eagleMeanTreeTopK === "number") a.topKs.push([res.stats.extra.eagleMeanTreeTopK, res.stats.targetForwards]);
      // "w:rounds w:rounds ..." per generation (auto width): summed over the prompts.
      if (typeof res.stats.extra?.eagleTreeWidths === "string") {
        for (const part of res.stats.extra.eagleTreeWidths.split(" ").filter(Boolean)) {
          const [w, n] = part.split(":").map(Number);
          a.widths.set(w, (a.widths.get(w) ?? 0) + n);
        }
      }
    }
    const base = JSON.stringify(outs.get(0));
    methods.forEach((_, i) => {
      if (JSON.stringify(outs.get(i)) !== base) acc[i].mismatches++;
    });
    process.stderr.write(`prompt ${pi + 1}/${prompts.length}\r`);
  }
} finally {
  await engine.dispose();
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : 0;
};
const rows = methods.map((m, i) => {
  const a = acc[i];
  return {
    method: m.label,
    meanAcceptedLength: +(a.tokens / Math.max(1, a.forwards)).toFixed(3),
    acceptance: a.drafted ? +(a.accepted / a.drafted).toFixed(3) : null,
    medianTokensPerSecond: Math.round(median(a.tps)),
    greedyEqualsPlain: a.mismatches === 0,
    // auto EAGLE budget: nodes verified per round, averaged over rounds (forward-weighted).
    ...(a.treeTotals.length
      ? { eagleMeanTreeTotal: +(a.treeTotals.reduce((s, [t, f]) => s + t * f, 0) / Math.max(1, a.treeTotals.reduce((s, [, f]) => s + f, 0))).toFixed(2) }
      : {}),
    // auto EAGLE width: drafted top-k per round (forward-weighted mean) and rounds per width, all prompts.
    ...(a.topKs.length
      ? {
          eagleMeanTreeTopK: +(a.topKs.reduce((s, [t, f]) => s + t * f, 0) / Math.max(1, a.topKs.reduce((s, [, f]) => s + f, 0))).toFixed(2),
          eagleTreeWidths: [...a.widths].sort((x, y) => y[0] - x[0]).map(([w, n]) => `${w}:${n}`).join(" "),
        }
      : {}),
  };
});
if (v.json) console.log(JSON.stringify({ model: v.model, prompts: prompts.length, maxNewTokens, rows }, null, 2));
else {
  console.log(`| method | mean accepted length | acceptance | median tok/s | greedy = plain |`);
  console.log(`|---|---|---|---|---|`);
  for (const r of rows) console.log(`| ${r.method} | ${r.meanAcceptedLength.toFixed(2)} | ${r.acceptance === null ? "-" : (100 * r.acceptance).toFixed(1) + "%"} | ${r.medianTokensPerSecond} | ${r.greedyEqualsPlain ? "yes" : "NO"} |`);
  console.log(`\n${prompts.length} prompts (BOS + ${v.sampled} sampled tokens, seed ${v.seed}), ${maxNewTokens} new tokens, greedy.`);
}
process.exit(rows.some((r) => !r.greedyEqualsPlain) ? 3 : 0);
