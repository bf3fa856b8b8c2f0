#!/usr/bin/env node
/**
 * A runnable benchmark: plain decoding vs speculative methods on the same prompts, through the same
 * `measureSpeedup` function as the MCP tool `measure_speedup`. Prints a Markdown table (or JSON).
 *
 * Without --model it builds a small random demo model (with an early-exit draft) under
 * $SPEC_DECODE_CACHE or ~/.cache/speculative-decoding (no download). Random models only show that
 * the pipeline works; real speedups need real models.
 *
 * Usage: node scripts/benchmark.mjs [--model DIR] [--draft DIR] [--methods a,b,...] [--exit-layer M]
 *   [--k N|auto] [--workload builtin[:category] | --prompts FILE.jsonl] [--max-new-tokens N]
 *   [--repeats R] [--temperature T] [--threads N] [--json]
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { fromDist } from "./lib/dist.mjs";

const { SpecEngine } = await fromDist("api.js");
const { measureSpeedup } = await fromDist("bench/measure.js");
const { parseWorkloadSpec } = await fromDist("bench/workload.js");
const { registeredMethods } = await fromDist("decoding/methods.js");

const USAGE = `Usage: node scripts/benchmark.mjs [--model DIR] [--draft DIR] [--methods a,b,...] [--exit-layer M]
  [--k N|auto] [--workload builtin[:category] | --prompts FILE.jsonl] [--max-new-tokens N] [--repeats R]
  [--temperature T] [--threads N] [--json]
--prompts reads JSON lines with "prompt", "messages" or Spec-Bench's "turns" (first turn used).`;

let v;
try {
  v = parseArgs({
    options: {
      model: { type: "string" },
      draft: { type: "string" },
      methods: { type: "string" },
      "exit-layer": { type: "string" },
      k: { type: "string" },
      workload: { type: "string" },
      prompts: { type: "string" },
      "max-new-tokens": { type: "string", default: "32" },
      repeats: { type: "string", default: "3" },
      temperature: { type: "string" },
      threads: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  }).values;
} catch (err) {
  console.error(`${err.message}\n\n${USAGE}`);
  process.exit(2);
}
if (v.help) {
  console.log(USAGE);
  process.exit(0);
}

let model = v.model && resolve(v.model);
let exitLayer = v["exit-layer"] !== undefined ? Number(v["exit-layer"]) : undefined;
if (!model) {
  model = join(process.env.SPEC_DECODE_CACHE ?? join(homedir(), ".cache", "speculative-decoding"), "bench-demo-v1");
  if (!existsSync(join(model, "onnx", "model.onnx"))) {
    console.error(`Building a random demo model in ${model} ...`);
    const { makeFixture } = await fromDist("builder/index.js");
    await makeFixture({ out: model, layers: 4, hidden: 256, heads: 4, kvHeads: 2, vocab: 512, maxPositions: 1024, earlyExit: [1, 2] });
  }
  exitLayer ??= 2;
}

const available = registeredMethods().map((m) => m.name);
let methods = v.methods ? v.methods.split(",").map((s) => s.trim()).filter(Boolean) : available.filter((m) => m !== "baseline");
if (!v.methods) {
  methods = methods.filter((m) => (m === "draft" ? !!v.draft : m === "medusa" ? false : m === "early-exit" ? exitLayer !== undefined : true));
}
const unknown = methods.filter((m) => !available.includes(m));
if (unknown.length) {
  console.error(`Not available in this build: ${unknown.join(", ")} (available: ${available.join(", ")}).`);
  process.exit(2);
}
const k = v.k === undefined ? undefined : v.k === "auto" ? "auto" : Number(v.k);
const arms = methods.map((m) => ({
  method: m,
  methodOptions: {
    ...(k !== undefined ? { k } : {}),
    ...(m === "early-exit" ? { exitLayer } : {}),
  },
}));
if (arms.length === 0) arms.push({ method: "baseline", label: "baseline-again" });

let prompts;
if (v.prompts) {
  prompts = readFileSync(v.prompts, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l, i) => {
      const o = JSON.parse(l);
      const id = String(o.question_id ?? o.id ?? `prompt-${i + 1}`);
      if (Array.isArray(o.turns)) return { id, category: o.category ?? "custom", prompt: String(o.turns[0]) };
      return { id, category: o.category ?? "custom", prompt: o.prompt, messages: o.messages };
    });
} else prompts = parseWorkloadSpec(v.workload ?? "builtin");

const engine = new SpecEngine({ threads: v.threads ? Number(v.threads) : undefined });
const res = await measureSpeedup({
  engine,
  model,
  draft: v.draft && resolve(v.draft),
  methods: arms,
  prompts,
  maxNewTokens: Number(v["max-new-tokens"]),
  repeats: Number(v.repeats),
  sampling: v.temperature ? { temperature: Number(v.temperature), seed: 0 } : {},
  onProgress: v.json ? undefined : (p) => process.stderr.write(`\r${p.done}/${p.total} ${p.message.padEnd(60).slice(0, 60)}`),
});
await engine.dispose();
if (!v.json) process.stderr.write("\n");

if (v.json) console.log(JSON.stringify(res, null, 2));
else {
  const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");
  console.log(`\n${model}: ${res.prompts} prompts x ${res.repeats} repeats, ${res.maxNewTokens} new tokens, ${res.greedy ? "greedy" : "sampling"}\n`);
  console.log("| method | tok/s (median) | speedup | 95% CI | acceptance | mean accepted length | greedy identical |");
  console.log("|---|---|---|---|---|---|---|");
  for (const a of [res.baseline, ...res.arms]) {
    const ci = a.speedup.low !== null ? `${f(a.speedup.low)}–${f(a.speedup.high)}` : "–";
    const acc = a.method === "baseline" ? "–" : `${f(a.acceptanceRate * 100, 1)}%`;
    const same = a.greedyIdentical === null ? "n/a" : a.greedyIdentical ? "yes" : `NO (${a.mismatches.join(", ")})`;
    console.log(`| ${a.label} | ${f(a.medianTokensPerSecond, 1)} | ${f(a.speedup.mean)}x | ${ci} | ${acc} | ${f(a.meanAcceptedLength)} | ${same} |`);
  }
}
