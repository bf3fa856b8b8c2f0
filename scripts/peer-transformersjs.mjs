#!/usr/bin/env node
/**
 * Peer comparison: transformers.js (@huggingface/transformers, a devDependency) runs plain greedy
 * decoding on the SAME onnx/model.onnx as our engine; the script checks that both produce the same
 * tokens and prints the decode tokens/s of both side by side. transformers.js has no speculative
 * decoding, so our speculative methods (--methods) are compared against its plain decoding too.
 *
 *   npm run build && node scripts/peer-transformersjs.mjs --model DIR [--draft DIR]
 *     [--methods baseline,draft,early-exit,prompt-lookup,lookahead] [--max-new-tokens 128] [--repeats 3]
 *     [--workload builtin[:category] | --prompts FILE.jsonl] [--threads N] [--k K] [--json] [--out FILE.json]
 *   node scripts/peer-transformersjs.mjs --twin     # the synthetic twin benchmark models (built once)
 *
 * Fairness:
 *  - Same prompt token ids (encoded once by our tokenizer and given to both as ids), same model file,
 *    same onnxruntime-node package (transformers.js 4.x depends on onnxruntime-node 1.30, which npm
 *    dedupes with ours; the script prints both versions), same intra-op threads (ORT's default, or
 *    --threads for both), CPU.
 *  - Tokens/s is decode tokens per decode second for both: ours from GenerationStats (prefill
 *    excluded); transformers.js from a streamer that timestamps every generated token, counting
 *    tokens 2..n over the time from token 1 to token n (token 1 comes out of its prefill forward).
 *  - Runs are interleaved (ours, theirs, ours, ... with the order alternating per repeat) after one
 *    warm-up each, and speedups are paired per (prompt, repeat).
 *  - Our graphs have one input transformers.js does not know, `tree_attention_mask` (uint8
 *    [1, T, past+T], 1 = may attend). The shim below hides it from transformers.js's input check and
 *    feeds the plain causal mask, which is what the graph computes without it; building that
 *    [1, T, past+T] array is a few microseconds per step. No offline download happens:
 *    env.allowRemoteModels = false, the model is read from its directory.
 */
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, loadavg } from "node:os";
import { basename, dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { fromDist } from "./lib/dist.mjs";

const { SpecEngine } = await fromDist("api.js");
const { parseWorkloadSpec, readPromptsFile } = await fromDist("bench/workload.js");
const { summarizeRatios, median } = await fromDist("bench/statistics.js");
const { ensureTwin, readTwinInfo } = await fromDist("bench/twin.js");

const { values: v } = parseArgs({
  options: {
    model: { type: "string" },
    draft: { type: "string" },
    twin: { type: "boolean", default: false },
    methods: { type: "string", default: "baseline" },
    "max-new-tokens": { type: "string", default: "128" },
    repeats: { type: "string", default: "3" },
    workload: { type: "string" },
    prompts: { type: "string" },
    threads: { type: "string" },
    k: { type: "string" },
    json: { type: "boolean", default: false },
    out: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (v.help || (!v.model && !v.twin)) {
  console.log("Usage: node scripts/peer-transformersjs.mjs (--model DIR [--draft DIR] | --twin) [--methods baseline,draft,...] [--max-new-tokens N] [--repeats R] [--workload builtin[:cat] | --prompts FILE.jsonl] [--threads N] [--k K (fixed K for draft/early-exit)] [--json] [--out FILE]");
  process.exit(v.help ? 0 : 1);
}
let model = v.model ? resolve(v.model) : undefined;
let draft = v.draft ? resolve(v.draft) : undefined;
const log = (s) => process.stderr.write(`${s}\n`);
if (v.twin) {
  const t = await ensureTwin({ log });
  model = t.target;
  draft = draft ?? t.draft;
}
const maxNewTokens = Number(v["max-new-tokens"]);
const repeats = Number(v.repeats);
const threads = v.threads ? Number(v.threads) : undefined;
const k = v.k ? Number(v.k) : undefined;
const methods = v.methods.split(",").map((s) => s.trim()).filter(Boolean);
const prompts = v.prompts ? await readPromptsFile(resolve(v.prompts)) : parseWorkloadSpec(v.workload ?? "builtin");

// ---- transformers.js, local files only
const hf = await import("@huggingface/transformers");
const ort = createRequire(import.meta.url)("onnxruntime-node");
hf.env.allowRemoteModels = false;
hf.env.allowLocalModels = true;
hf.env.localModelPath = dirname(model) + "/";
hf.env.useBrowserCache = false;
const peer = await hf.AutoModelForCausalLM.from_pretrained(basename(model), {
  dtype: "fp32",
  device: "cpu",
  session_options: threads ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {},
});
const session = peer.sessions.model;
if (session.inputNames.includes("tree_attention_mask")) {
  const names = session.inputNames.filter((n) => n !== "tree_attention_mask");
  Object.defineProperty(session, "inputNames", { value: names });
  const run = session.run.bind(session);
  session.run = (feeds, ...rest) => {
    const T = feeds.input_ids.dims[1];
    const total = feeds.attention_mask.dims[1];
    const past = total - T;
    const mask = new Uint8Array(T * total);
    for (let t = 0; t < T; t++) mask.fill(1, t * total, t * total + past + t + 1);
    return run({ ...feeds, tree_attention_mask: new ort.Tensor("uint8", mask, [1, T, total]) }, ...rest);
  };
}

async function peerGenerate(ids) {
  const times = [];
  const streamer = {
    first: true,
    put() {
      if (this.first) this.first = false; // the prompt
      else times.push(performance.now());
    },
    end() {},
  };
  const input_ids = new hf.Tensor("int64", BigInt64Array.from(ids.map(BigInt)), [1, ids.length]);
  const attention_mask = new hf.Tensor("int64", new BigInt64Array(ids.length).fill(1n), [1, ids.length]);
  const out = await peer.generate({ input_ids, attention_mask, max_new_tokens: maxNewTokens, do_sample: false, streamer });
  const all = Array.from(out.data ?? out.tolist()[0], (x) => Number(x));
  const tokens = all.slice(ids.length);
  const tps = times.length > 1 ? ((times.length - 1) * 1000) / (times[times.length - 1] - times[0]) : 0;
  return { tokens, tps };
}

// ---- ours
const engine = new SpecEngine({ threads });
const target = await engine.store.load(model);
const ids = prompts.map((p) => engine.encodePrompt(target, p));
const twin = readTwinInfo(model);
async function oursGenerate(method, promptIds) {
  const methodOptions = k !== undefined && (method === "draft" || method === "early-exit") ? { k, controller: "fixed" } : undefined;
  const res = await engine.generate({ model, draft, method, promptIds, maxNewTokens, methodOptions });
  return { tokens: res.tokens, tps: res.stats.tokensPerSecond, overheadShare: res.stats.decodeMs > 0 ? res.stats.overheadMs / res.stats.decodeMs : 0 };
}

// warm-up
log("warm-up...");
await peerGenerate(ids[0]);
for (const m of methods) await oursGenerate(m, ids[0]);

const rows = [];
const total = prompts.length * repeats;
let n = 0;
for (let p = 0; p < prompts.length; p++) {
  for (let r = 0; r < repeats; r++) {
    const row = { id: prompts[p].id, repeat: r, ours: {}, peer: null };
    const runPeer = async () => (row.peer = await peerGenerate(ids[p]));
    const runOurs = async () => {
      for (const m of methods) row.ours[m] = await oursGenerate(m, ids[p]);
    };
    if (r % 2 === 0) {
      await runOurs();
      await runPeer();
    } else {
      await runPeer();
      await runOurs();
    }
    rows.push(row);
    log(`[${++n}/${total}] ${row.id}#${r}: transformers.js ${row.peer.tps.toFixed(1)} tok/s, ${methods.map((m) => `${m} ${row.ours[m].tps.toFixed(1)}`).join(", ")}`);
  }
}
await engine.dispose();

const same = (a, b) => a.length === b.length && a.every((t, i) => t === b[i]);
const peerTps = median(rows.map((r) => r.peer.tps));
const summary = methods.map((m) => {
  const ratios = rows.map((r) => r.ours[m].tps / r.peer.tps);
  const mismatches = [...new Set(rows.filter((r) => !same(r.ours[m].tokens, r.peer.tokens)).map((r) => r.id))];
  return {
    method: m,
    medianTokensPerSecond: Math.round(median(rows.map((r) => r.ours[m].tps)) * 10) / 10,
    vsTransformersJs: summarizeRatios(ratios),
    tokensEqual: mismatches.length === 0,
    mismatches,
    overheadShare: Math.round(median(rows.map((r) => r.ours[m].overheadShare)) * 1000) / 1000,
  };
});
const versions = {
  transformersJs: hf.env.version,
  onnxruntimeNode: createRequire(import.meta.url)("onnxruntime-node/package.json").version,
  onnxruntimeUsedByTransformersJs: createRequire(createRequire(import.meta.url).resolve("@huggingface/transformers"))("onnxruntime-node/package.json").version,
};
const result = {
  model,
  draft,
  twin: twin ? { divergence: twin.divergence, synthetic: true } : undefined,
  prompts: prompts.length,
  repeats,
  maxNewTokens,
  k: k ?? null,
  threads: threads ?? null,
  machine: { cpu: cpus()[0]?.model, cores: cpus().length, loadAverage: loadavg()[0] },
  versions,
  transformersJs: { medianTokensPerSecond: Math.round(peerTps * 10) / 10 },
  ours: summary,
  runs: rows.map((r) => ({ id: r.id, repeat: r.repeat, transformersJs: r.peer.tps, ours: Object.fromEntries(methods.map((m) => [m, r.ours[m].tps])) })),
};
if (v.out) writeFileSync(resolve(v.out), JSON.stringify(result, null, 2) + "\n");
if (v.json) console.log(JSON.stringify(result, null, 2));
else {
  console.log(
    `Peer comparison on ${model}${twin ? ` (synthetic twin, divergence ${twin.divergence})` : ""}: ${prompts.length} prompts x ${repeats} repeats, ` +
      `${maxNewTokens} new tokens, greedy; transformers.js ${versions.transformersJs} on onnxruntime-node ${versions.onnxruntimeUsedByTransformersJs}, ` +
      `ours on onnxruntime-node ${versions.onnxruntimeNode}; ${result.machine.cores} cores (${result.machine.cpu}).\n`,
  );
  console.log("| decoder | tok/s (median) | vs transformers.js [95% CI] | same tokens as transformers.js | outside ORT share |");
  console.log("|---|---:|---:|:---:|---:|");
  console.log(`| transformers.js plain greedy | ${result.transformersJs.medianTokensPerSecond} | 1.00x | - | - |`);
  for (const s of summary) {
    const c = s.vsTransformersJs;
    console.log(
      `| ours: ${s.method} | ${s.medianTokensPerSecond} | ${c.mean.toFixed(2)}x${c.low !== null ? ` [${c.low.toFixed(2)}, ${c.high.toFixed(2)}]` : ""} | ` +
        `${s.tokensEqual ? "yes" : `NO (${s.mismatches.join(", ")})`} | ${(s.overheadShare * 100).toFixed(1)}% |`,
    );
  }
}
process.exitCode = summary.every((s) => s.tokensEqual) ? 0 : 3;
