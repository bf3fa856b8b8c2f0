// Speculation on an export rebuilt with `build --from-onnx` vs the ORIGINAL export, which can only
// verify token by token. Needs `npm run build` first:
//   npm run build && node scripts/from-onnx-bench.mjs [--threads 1] [--new 64] [--repeats 3] [--hidden 768] [--layers 8] [--out FILE]
// The original is an onnxruntime-genai-style export (MultiHeadAttention + RotaryEmbedding +
// SimplifiedLayerNormalization, float32; src/builder/export-fixtures.ts) of a random fixture
// checkpoint whose attention mask, like real genai MHA exports, only holds for a prompt or one new
// token: a multi-token forward on a filled cache fails, so the engine verifies one token per forward.
// The rebuild is the same weights with our interface. Arms (interleaved, one run): baseline,
// prompt lookup and a draft model on each; the draft is a 1-layer checkpoint of the same seed
// (shares layer 0, the embedding and the head), exported in Optimum style and rebuilt.
// Workload: "rewrite this text" prompts S + G + S (G = the target's own greedy continuation of S).
// Prints a table and writes JSON (medians of decode tokens/s, ratios, verification modes, and
// whether every arm produced the baseline's tokens).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SpecEngine } from "../dist/api.js";
import { makeFixture } from "../dist/builder/index.js";
import { writeGenaiExport, writeOptimumExport } from "../dist/builder/export-fixtures.js";
import { buildFromOnnx } from "../dist/builder/from-onnx.js";

const { values } = parseArgs({
  options: {
    threads: { type: "string", default: "1" },
    new: { type: "string", default: "64" },
    repeats: { type: "string", default: "3" },
    out: { type: "string" },
    hidden: { type: "string", default: "768" },
    layers: { type: "string", default: "8" },
  },
});
const NEW = Number(values.new);
const REPEATS = Number(values.repeats);
const work = mkdtempSync(join(tmpdir(), "sd-from-onnx-bench-"));
const shape = { layers: Number(values.layers), hidden: Number(values.hidden), heads: 12, kvHeads: 12, vocab: 512, maxPositions: 1024, seed: 7 };
try {
  const t0 = performance.now();
  await makeFixture({ out: join(work, "ckpt"), ...shape });
  await makeFixture({ out: join(work, "ckpt-draft"), ...shape, layers: 1 });
  const original = writeGenaiExport(join(work, "ckpt"), join(work, "genai-export"), { attention: "mha" });
  const tBuild = performance.now();
  const rebuilt = (await buildFromOnnx(original, { out: join(work, "rebuilt") })).dir;
  const rebuildMs = performance.now() - tBuild;
  const draft = (await buildFromOnnx(writeOptimumExport(join(work, "ckpt-draft"), join(work, "draft-export")), { out: join(work, "draft") })).dir;
  console.error(`setup ${((performance.now() - t0) / 1000).toFixed(1)} s (rebuild of the target ${(rebuildMs / 1000).toFixed(1)} s)`);

  const engine = new SpecEngine({ threads: Number(values.threads) });
  const seeds = [[1, 17, 93, 200, 5, 64], [3, 44, 150, 22], [9, 300, 12, 480, 77]];
  const prompts = [];
  for (const s of seeds) {
    const g = await engine.generate({ model: rebuilt, promptIds: s, maxNewTokens: 100, method: "baseline" });
    prompts.push([...s, ...g.tokens, ...s]);
  }
  const arms = [];
  for (const [model, label] of [[original, "original (genai MHA export)"], [rebuilt, "rebuilt (--from-onnx)"]]) {
    arms.push({ model, label, method: "baseline" });
    arms.push({ model, label, method: "prompt-lookup" });
    arms.push({ model, label, method: "draft", draft, methodOptions: { k: 4 } });
  }
  const runs = arms.map(() => []);
  const reference = new Map();
  let lossless = true;
  // warm-up: one run of every arm
  for (const a of arms) await engine.generate({ model: a.model, promptIds: prompts[0], maxNewTokens: 8, method: a.method, draft: a.draft, methodOptions: a.methodOptions });
  for (let r = 0; r < REPEATS; r++) {
    for (let p = 0; p < prompts.length; p++) {
      for (let i = 0; i < arms.length; i++) {
        const a = arms[i];
        const res = await engine.generate({ model: a.model, promptIds: prompts[p], maxNewTokens: NEW, method: a.method, draft: a.draft, methodOptions: a.methodOptions });
        const key = String(p);
        if (!reference.has(key)) reference.set(key, res.tokens.join(","));
        else if (reference.get(key) !== res.tokens.join(",")) lossless = false;
        runs[i].push({ tps: res.stats.tokensPerSecond, mal: res.stats.meanAcceptedLength, verification: res.stats.verification, forwards: res.stats.targetForwards });
      }
    }
  }
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const rows = arms.map((a, i) => ({
    model: a.label,
    method: a.method,
    verification: [...new Set(runs[i].map((x) => x.verification))].join("/"),
    tokensPerSecond: Number(median(runs[i].map((x) => x.tps)).toFixed(1)),
    meanAcceptedLength: Number(median(runs[i].map((x) => x.mal)).toFixed(2)),
    targetForwards: median(runs[i].map((x) => x.forwards)),
  }));
  const base = rows[0].tokensPerSecond;
  const find = (model, method) => rows.find((r) => r.model.startsWith(model) && r.method === method);
  for (const r of rows) r.vsOriginalBaseline = Number((r.tokensPerSecond / base).toFixed(2));
  const ratios = {
    promptLookupRebuiltVsOriginal: Number((find("rebuilt", "prompt-lookup").tokensPerSecond / find("original", "prompt-lookup").tokensPerSecond).toFixed(2)),
    draftRebuiltVsOriginal: Number((find("rebuilt", "draft").tokensPerSecond / find("original", "draft").tokensPerSecond).toFixed(2)),
    baselineRebuiltVsOriginal: Number((find("rebuilt", "baseline").tokensPerSecond / base).toFixed(2)),
  };
  console.log(`| model | method | verification | decode tok/s (median) | mean accepted length | x original baseline |`);
  console.log(`|---|---|---|---|---|---|`);
  for (const r of rows) console.log(`| ${r.model} | ${r.method} | ${r.verification} | ${r.tokensPerSecond} | ${r.meanAcceptedLength} | ${r.vsOriginalBaseline} |`);
  console.log(`\nrebuilt vs original, same method: prompt lookup ${ratios.promptLookupRebuiltVsOriginal}x, draft ${ratios.draftRebuiltVsOriginal}x (baseline ${ratios.baselineRebuiltVsOriginal}x); every arm returned the baseline tokens: ${lossless}`);
  const json = {
    script: "scripts/from-onnx-bench.mjs",
    shape,
    threads: Number(values.threads),
    newTokens: NEW,
    repeats: REPEATS,
    prompts: prompts.length,
    rebuildSeconds: Number((rebuildMs / 1000).toFixed(2)),
    lossless,
    rows,
    ratios,
    note: "one interleaved run on a shared 2-core machine; medians over repeats x prompts",
  };
  if (values.out) writeFileSync(values.out, JSON.stringify(json, null, 2) + "\n");
  await engine.dispose();
} finally {
  rmSync(work, { recursive: true, force: true });
}
