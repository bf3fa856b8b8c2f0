#!/usr/bin/env node
/**
 * Teacher-forced depth-1 top-1 of EAGLE heads on the bench's built-in prompts, and how much of the
 * target's greedy output a head's draft vocabulary covers (train-eagle --draft-vocab).
 *
 *   node scripts/eagle-depth1.mjs --model DIR --heads H1,H2 [--per-category 1] [--max-new-tokens 64] [--chat]
 *
 * For each built-in prompt (first --per-category of each category, raw text unless --chat) the
 * target decodes greedily; one forward over prompt + output gives its features; each head then
 * reads every committed row (f_t, x_{t+1}) at once and its argmax (mapped through its draft
 * vocabulary) is compared with x_{t+2} over the generated positions. Prints per head: depth-1
 * top-1 and, for heads with a draft vocabulary, the fraction of the generated tokens inside it.
 * This is per position; a bench's "pos 1 acceptance" is per round and lower when misses cluster
 * (a missed position costs a whole round, a hit stretch is consumed several tokens per round).
 */
import { parseArgs } from "node:util";
import { TextTokenizer } from "../dist/text/tokenizer.js";
import { generateTokens } from "../dist/decoding/generate.js";
import { CausalLM } from "../dist/engine/causal-lm.js";
import { loadEagleHead } from "../dist/decoding/eagle.js";
import { builtinWorkload } from "../dist/bench/workload.js";

const { values: v } = parseArgs({
  options: { model: { type: "string" }, heads: { type: "string" }, "per-category": { type: "string" }, "max-new-tokens": { type: "string" }, chat: { type: "boolean", default: false } },
});
if (!v.model || !v.heads) {
  console.error("usage: node scripts/eagle-depth1.mjs --model DIR --heads H1,H2 [--per-category 1] [--max-new-tokens 64] [--chat]");
  process.exit(2);
}
const perCat = Number(v["per-category"] ?? 1);
const maxNew = Number(v["max-new-tokens"] ?? 64);
const tok = await TextTokenizer.load(v.model);
const lm = await CausalLM.load(v.model, { threads: 1 });
const heads = [];
for (const dir of v.heads.split(",")) heads.push({ dir, head: await loadEagleHead(dir, v.model), hits: 0, n: 0, inSet: 0 });
const seen = new Map();
const prompts = builtinWorkload().filter((p) => {
  const c = seen.get(p.category) ?? 0;
  seen.set(p.category, c + 1);
  return c < perCat;
});
const H = lm.info.hiddenSize;
for (const p of prompts) {
  const text = p.prompt ?? p.messages.at(-1).content;
  const promptIds = v.chat && tok.hasChatTemplate ? tok.encodeChat([{ role: "user", content: text }], { addGenerationPrompt: true }) : tok.encode(text);
  const r = await generateTokens({ target: lm, promptIds, maxNewTokens: maxNew, eosIds: [] });
  const all = [...promptIds, ...r.tokens];
  const L = all.length;
  const out = await lm.forward(lm.newCache(), all, { features: true, logits: "last" });
  for (const h of heads) {
    const d2t = h.head.config.draftVocab;
    const V = d2t ? d2t.length : h.head.config.vocabSize;
    const set = d2t ? new Set(d2t) : undefined;
    const o = await h.head.run(h.head.newCache(), all.slice(1), all.slice(1).map((_, i) => i), out.features.slice(0, (L - 1) * H));
    for (let t = promptIds.length - 2; t + 2 < L; t++) {
      let best = 0;
      for (let j = 1; j < V; j++) if (o.logits[t * V + j] > o.logits[t * V + best]) best = j;
      h.n++;
      if ((d2t ? d2t[best] : best) === all[t + 2]) h.hits++;
      if (!set || set.has(all[t + 2])) h.inSet++;
    }
  }
}
for (const h of heads) {
  const d2t = h.head.config.draftVocab;
  console.log(`${h.dir}: depth-1 top-1 ${(h.hits / h.n).toFixed(3)} over ${h.n} positions` + (d2t ? `; draft vocabulary of ${d2t.length} covers ${(h.inSet / h.n).toFixed(3)} of the generated tokens` : ""));
  await h.head.dispose();
}
await lm.dispose();
