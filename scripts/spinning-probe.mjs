#!/usr/bin/env node
/**
 * Intra-op spinning policies compared in one process, interleaved: for each policy
 * (SPEC_DECODE_INTRA_OP_SPINNING = 0 / run / 1) the twin target's float32, int8 and int4 files and the
 * int4 draft are loaded with that policy; each round times, per policy and model, 15 one-token and
 * 15 four-token forwards on a 64-token cache (median), and 15 draft-style rounds (two one-token
 * draft forwards, then a 3-token int4 target forward: the pattern that shows when one session's
 * spinning workers starve the other). Round order alternates; the table gives the median over rounds.
 *
 *   npm run build
 *   node scripts/spinning-probe.mjs --twin-dir DIR [--threads 2] [--rounds 5] [--json]
 *
 * DIR is a twin built with its quantized files (the bench's cache, e.g. $SPEC_DECODE_CACHE/twin-v1-d0.017).
 */
import { parseArgs } from "node:util";
import { fromDist } from "./lib/dist.mjs";

const { CausalLM } = await fromDist("engine/causal-lm.js");
const { values: v } = parseArgs({
  options: { "twin-dir": { type: "string" }, threads: { type: "string", default: "2" }, rounds: { type: "string", default: "5" }, json: { type: "boolean", default: false } },
});
if (!v["twin-dir"]) {
  console.error("Usage: node scripts/spinning-probe.mjs --twin-dir DIR [--threads 2] [--rounds 5] [--json]");
  process.exit(2);
}
const dir = v["twin-dir"];
const threads = Number(v.threads);
const R = Number(v.rounds);
const policies = { off: "0", run: "run", always: "1" };
const variants = ["fp32", "int8", "q4"];
const P = 64;
const N = 15;
const ids = (n, off) => Array.from({ length: n }, (_, i) => 3 + ((i * 37 + off) % 250));
const models = {};
for (const [pol, env] of Object.entries(policies)) {
  process.env.SPEC_DECODE_INTRA_OP_SPINNING = env; // read when each session is created
  for (const name of [...variants, "draft"]) {
    const lm = await CausalLM.load(name === "draft" ? `${dir}/draft` : `${dir}/target`, { variant: name === "draft" ? "q4" : name === "fp32" ? undefined : name, threads });
    const c = lm.newCache();
    await lm.forward(c, ids(P, 0), { logits: "last" });
    models[`${name}/${pol}`] = { lm, c };
  }
}
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
async function timeIt(fn, reset) {
  const ts = [];
  for (let i = 0; i <= N; i++) {
    const t0 = performance.now();
    await fn(i);
    ts.push(performance.now() - t0);
    reset();
  }
  return median(ts.slice(1)); // the first is a warm-up
}
const res = {};
const push = (k, x) => (res[k] ??= []).push(x);
const names = Object.keys(policies);
for (let r = 0; r < R; r++) {
  for (const pol of r % 2 ? [...names].reverse() : names) {
    for (const name of variants) {
      const { lm, c } = models[`${name}/${pol}`];
      for (const T of [1, 4]) push(`${name} T=${T}|${pol}`, await timeIt((i) => lm.forward(c, ids(T, i + 1), { logits: "all" }), () => c.crop(P)));
    }
    const t = models[`q4/${pol}`];
    const d = models[`draft/${pol}`];
    push(`draft round (2 draft + q4 T=3)|${pol}`, await timeIt(async (i) => {
      await d.lm.forward(d.c, ids(1, i), { logits: "last" });
      await d.lm.forward(d.c, ids(1, i + 1), { logits: "last" });
      await t.lm.forward(t.c, ids(3, i), { logits: "all" });
    }, () => { d.c.crop(P); t.c.crop(P); }));
  }
}
const rows = {};
for (const [k, a] of Object.entries(res)) {
  const [what, pol] = k.split("|");
  (rows[what] ??= {})[pol] = { medianMs: Math.round(median(a) * 100) / 100, rounds: a.map((x) => Math.round(x * 100) / 100) };
}
if (v.json) console.log(JSON.stringify({ kind: "spinning-probe", createdAt: new Date().toISOString(), threads, rounds: R, forwardsPerRound: N, past: P, rows }, null, 2));
else {
  console.log(`| forward (${threads} threads, ms, median of ${R} rounds) | ${names.join(" | ")} | run / off | always / off |`);
  console.log(`|---|${names.map(() => "---:").join("|")}|---:|---:|`);
  for (const [what, r] of Object.entries(rows)) {
    console.log(`| ${what} | ${names.map((p) => r[p].medianMs.toFixed(2)).join(" | ")} | ${(r.run.medianMs / r.off.medianMs).toFixed(2)} | ${(r.always.medianMs / r.off.medianMs).toFixed(2)} |`);
  }
}
