#!/usr/bin/env node
/**
 * Side by side with llama.cpp (node-llama-cpp 3.21.1, a devDependency, its prebuilt CPU binary) on
 * the SAME weights: the twin's safetensors are written as GGUF Q4_0 and Q8_0 by our own writer
 * (src/bench/gguf.ts, the same quantizer as our MatMulNBits builds, so the weights are
 * bit-identical), and our int4 / int8 builds of the same safetensors decode the same prompt ids.
 *
 *   npm run build
 *   node dist/cli/main.js fixture --twin --out DIR --quantize int4,int8 --quantize-lm-head   # writes safetensors too
 *   node scripts/peer-llama-cpp.mjs --twin-dir DIR [--threads 1] [--max-new-tokens 64] [--repeats 1]
 *     [--workload builtin] [--methods baseline,draft,early-exit] [--json] [--out FILE.json]
 *
 * Fairness:
 *  - Same prompt token ids (encoded once by our tokenizer; the GGUF has no vocabulary, so
 *    llama.cpp is fed ids), same threads (--threads for both: node-llama-cpp's context threads and
 *    onnxruntime's intra-op threads), CPU only (gpu: false), greedy decoding.
 *  - Tokens/s is decode tokens / decode seconds for both: ours from GenerationStats (prefill
 *    excluded); llama.cpp from timestamps of its evaluate() generator, counting tokens 2..n over the
 *    time from token 1 to token n (token 1 comes out of the prefill).
 *  - Runs are interleaved (the order rotating per repeat) after one warm-up each; ratios are paired
 *    per (prompt, repeat). llama.cpp's own draft predictor (DraftSequenceTokenPredictor) runs with
 *    a Q4_0 / Q8_0 GGUF of the twin draft when --methods includes draft.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { fromDist } from "./lib/dist.mjs";

const { SpecEngine } = await fromDist("api.js");
const { parseWorkloadSpec } = await fromDist("bench/workload.js");
const { summarizeRatios, median } = await fromDist("bench/statistics.js");
const { writeLlamaGguf, ggufVocabFromTokenizerJson } = await fromDist("bench/gguf.js");
const { readDecoderConfig } = await fromDist("builder/config.js");
const { openSafetensorsDir } = await fromDist("builder/safetensors.js");
const { getLlama, DraftSequenceTokenPredictor } = await import("node-llama-cpp");

const { values: v } = parseArgs({
  options: {
    "twin-dir": { type: "string" },
    threads: { type: "string", default: "1" },
    "max-new-tokens": { type: "string", default: "64" },
    repeats: { type: "string", default: "1" },
    workload: { type: "string", default: "builtin" },
    methods: { type: "string", default: "baseline,draft" },
    k: { type: "string" },
    json: { type: "boolean", default: false },
    out: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (v.help || !v["twin-dir"]) {
  console.log("Usage: node scripts/peer-llama-cpp.mjs --twin-dir DIR [--threads N] [--max-new-tokens N] [--repeats R] [--workload builtin] [--methods baseline,draft] [--json] [--out FILE]");
  process.exit(v.help ? 0 : 2);
}
const dir = resolve(v["twin-dir"]);
const targetDir = join(dir, "target");
const draftDir = join(dir, "draft");
for (const f of [join(targetDir, "model.safetensors"), join(targetDir, "onnx", "model_q4.onnx"), join(targetDir, "onnx", "model_int8.onnx")]) {
  if (!existsSync(f)) {
    console.error(`${f} is missing: build the twin with \`spec-decode fixture --twin --out ${dir} --quantize int4,int8 --quantize-lm-head\`.`);
    process.exit(2);
  }
}
const threads = Number(v.threads);
const maxNewTokens = Number(v["max-new-tokens"]);
const repeats = Number(v.repeats);
const methods = v.methods.split(",").map((s) => s.trim());
const withDraft = methods.includes("draft") && existsSync(join(draftDir, "model.safetensors"));
const k = v.k ? Number(v.k) : undefined;

// ---- GGUF files (written once per twin directory)
const ggufDir = join(dir, "gguf");
mkdirSync(ggufDir, { recursive: true });
const gguf = {};
for (const [role, d] of [["target", targetDir], ...(withDraft ? [["draft", draftDir]] : [])]) {
  for (const q of ["Q4_0", "Q8_0"]) {
    const file = join(ggufDir, `${role}.${q}.gguf`);
    if (!existsSync(file)) {
      const t0 = performance.now();
      const cfg = readDecoderConfig(d);
      const tok = JSON.parse(readFileSync(join(d, "tokenizer.json"), "utf8"));
      const gen = JSON.parse(readFileSync(join(d, "generation_config.json"), "utf8"));
      const vocab = ggufVocabFromTokenizerJson(tok, { vocabSize: cfg.vocabSize, bos: gen.bos_token_id, eos: gen.eos_token_id, pad: gen.pad_token_id });
      const r = writeLlamaGguf(file, cfg, openSafetensorsDir(d), q, vocab, `twin ${role}`);
      process.stderr.write(`wrote ${file} (${(r.bytes / 1e6).toFixed(1)} MB, ${r.tensors} tensors) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    }
    gguf[`${role}.${q}`] = file;
  }
}

// ---- llama.cpp
const llama = await getLlama({ gpu: false, build: "never", usePrebuiltBinaries: true, progressLogs: false, logLevel: "error" });
const contextSize = 1024;
const models = {};
async function llamaModel(key) {
  if (!models[key]) {
    const model = await llama.loadModel({ modelPath: gguf[key], gpuLayers: 0 });
    const context = await model.createContext({ contextSize, threads, batchSize: 512, sequences: 1 });
    models[key] = { model, context };
  }
  return models[key];
}
async function llamaGenerate(key, promptIds, draftKey) {
  const { context } = await llamaModel(key);
  let predictor;
  let draftSeq;
  if (draftKey) {
    const d = await llamaModel(draftKey);
    draftSeq = d.context.getSequence();
    predictor = new DraftSequenceTokenPredictor(draftSeq, { minTokens: 0, maxTokens: k ?? 4 });
  }
  const seq = context.getSequence(predictor ? { tokenPredictor: predictor } : undefined);
  try {
    const out = [];
    let tFirst = 0;
    let tLast = 0;
    for await (const token of seq.evaluate(promptIds, { temperature: 0 })) {
      const now = performance.now();
      if (out.length === 0) tFirst = now;
      tLast = now;
      out.push(token);
      if (out.length >= maxNewTokens) break;
    }
    const tps = out.length > 1 ? (out.length - 1) / ((tLast - tFirst) / 1000) : 0;
    return { tokens: out, tps };
  } finally {
    seq.dispose();
    draftSeq?.dispose();
  }
}

// ---- ours
const engine = new SpecEngine({ threads });
async function oursGenerate(variant, promptIds, method) {
  const res = await engine.generate({
    model: targetDir,
    variant,
    promptIds,
    maxNewTokens,
    method,
    ...(method === "draft" ? { draft: draftDir, draftVariant: variant } : {}),
    methodOptions: k && method !== "baseline" ? { k } : {},
  });
  return { tokens: res.tokens, tps: res.stats.tokensPerSecond };
}

// ---- prompts: our tokenizer's ids, fed to both
const target = await engine.store.load(targetDir);
const prompts = parseWorkloadSpec(v.workload, {}).map((p) => ({ id: p.id, ids: engine.encodePrompt(target, p) }));

const arms = [
  { label: "ours int4 plain", run: (ids) => oursGenerate("q4", ids, "baseline") },
  { label: "llama.cpp Q4_0 plain", run: (ids) => llamaGenerate("target.Q4_0", ids) },
  { label: "ours int8 plain", run: (ids) => oursGenerate("int8", ids, "baseline") },
  { label: "llama.cpp Q8_0 plain", run: (ids) => llamaGenerate("target.Q8_0", ids) },
];
if (withDraft) {
  arms.push(
    { label: "ours int4 draft", run: (ids) => oursGenerate("q4", ids, "draft") },
    { label: "llama.cpp Q4_0 draft", run: (ids) => llamaGenerate("target.Q4_0", ids, "draft.Q4_0") },
  );
}
if (methods.includes("early-exit")) arms.push({ label: "ours int4 early-exit", run: (ids) => oursGenerate("q4", ids, "early-exit") });

const load0 = loadavg()[0];
for (const a of arms) await a.run(prompts[0].ids); // warm-up
const runs = arms.map(() => []);
for (let p = 0; p < prompts.length; p++) {
  for (let r = 0; r < repeats; r++) {
    for (let j = 0; j < arms.length; j++) {
      const a = (j + r + p) % arms.length;
      const res = await arms[a].run(prompts[p].ids);
      runs[a].push({ p, r, ...res });
      process.stderr.write(`\r${prompts[p].id} ${arms[a].label}: ${res.tps.toFixed(1)} tok/s        `);
    }
  }
}
process.stderr.write("\n");
const ratio = (a, b) => summarizeRatios(runs[a].map((x, i) => x.tps / runs[b][i].tps));
const agree = (a, b) => {
  let same = 0;
  let total = 0;
  runs[a].forEach((x, i) => {
    const y = runs[b][i].tokens;
    const n = Math.min(x.tokens.length, y.length);
    let j = 0;
    while (j < n && x.tokens[j] === y[j]) j++;
    same += j;
    total += n;
  });
  return total ? same / total : 0;
};
const idx = (label) => arms.findIndex((a) => a.label === label);
const rows = arms.map((a, i) => ({ label: a.label, medianTokensPerSecond: Math.round(median(runs[i].map((x) => x.tps)) * 10) / 10 }));
const comparisons = [
  ["ours int4 plain", "llama.cpp Q4_0 plain"],
  ["ours int8 plain", "llama.cpp Q8_0 plain"],
  ...(withDraft ? [["ours int4 draft", "llama.cpp Q4_0 draft"], ["ours int4 draft", "llama.cpp Q4_0 plain"], ["ours int4 draft", "ours int4 plain"]] : []),
  ...(methods.includes("early-exit") ? [["ours int4 early-exit", "ours int4 plain"]] : []),
].map(([a, b]) => ({ a, b, ratio: ratio(idx(a), idx(b)) }));
const report = {
  machine: { cpu: cpus()[0]?.model, cores: cpus().length, loadAverageStart: load0, loadAverageEnd: loadavg()[0] },
  threads,
  maxNewTokens,
  repeats,
  prompts: prompts.length,
  rows,
  comparisons,
  tokenPrefixAgreement: {
    "int4 vs Q4_0": agree(idx("ours int4 plain"), idx("llama.cpp Q4_0 plain")),
    "int8 vs Q8_0": agree(idx("ours int8 plain"), idx("llama.cpp Q8_0 plain")),
  },
};
if (v.out) writeFileSync(resolve(v.out), JSON.stringify(report, null, 2) + "\n");
if (v.json) console.log(JSON.stringify(report, null, 2));
else {
  console.log(`threads ${threads}, ${prompts.length} prompts x ${repeats} repeat(s), ${maxNewTokens} new tokens, greedy; load ${load0.toFixed(2)} -> ${loadavg()[0].toFixed(2)}\n`);
  console.log("| arm | tok/s (median) |\n|---|---:|");
  for (const r of rows) console.log(`| ${r.label} | ${r.medianTokensPerSecond} |`);
  console.log("\n| ratio | geometric mean [95% CI] |\n|---|---:|");
  for (const c of comparisons) console.log(`| ${c.a} / ${c.b} | ${c.ratio.mean.toFixed(2)}x [${c.ratio.low?.toFixed(2)}, ${c.ratio.high?.toFixed(2)}] |`);
  console.log(`\nShared greedy prefix (fraction of tokens before the first difference): int4 vs Q4_0 ${report.tokenPrefixAgreement["int4 vs Q4_0"].toFixed(3)}, int8 vs Q8_0 ${report.tokenPrefixAgreement["int8 vs Q8_0"].toFixed(3)}`);
}
await engine.dispose();
for (const m of Object.values(models)) {
  await m.context.dispose();
  await m.model.dispose();
}
process.exit(0);
