// Prompt lookup and lookahead vs plain decoding on a repetitive "rewrite this text" workload and on
// repeat-free prompts, interleaved in one run. Needs `npm run build` first:
//   npm run build && node scripts/draft-free-bench.mjs [--threads 1] [--new 100]
// The target is a random fixture (the demo's config); the "given text" is the target's own greedy
// continuation G of a seed prompt S, and the prompt is S + G + S (see test/decoding/draft-free-helpers.ts).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { makeFixture } from "../dist/builder/index.js";
import { generateTokens } from "../dist/decoding/generate.js";
import { getMethod } from "../dist/decoding/methods.js";
import { CausalLM } from "../dist/engine/causal-lm.js";

const { values } = parseArgs({ options: { threads: { type: "string", default: "1" }, new: { type: "string", default: "100" } } });
const NEW = Number(values.new);
const dir = mkdtempSync(join(tmpdir(), "sd-draft-free-bench-"));
await makeFixture({ out: dir, layers: 4, hidden: 256, heads: 8, kvHeads: 4, vocab: 512, maxPositions: 1024, seed: 7 });
const lm = await CausalLM.load(dir, { threads: Number(values.threads) });
const gen = (method, options, promptIds) =>
  generateTokens({ target: lm, promptIds, maxNewTokens: NEW, eosIds: [], proposer: method === "baseline" ? undefined : getMethod(method).create({ target: lm }, options) });

const seeds = [[1, 17, 93, 200, 5, 64], [3, 44, 150, 22], [9, 300, 12, 480, 77]];
const workloads = { repetitive: [], "repeat-free": seeds };
for (const s of seeds) workloads.repetitive.push([...s, ...(await gen("baseline", {}, s)).tokens.slice(0, 150), ...s]);
const methods = [
  ["baseline", {}],
  ["prompt-lookup", { numPredict: 5 }],
  ["prompt-lookup", {}],
  ["prompt-lookup", { numPredict: 20 }],
  ["lookahead", {}],
];
for (const [name, prompts] of Object.entries(workloads)) {
  const acc = methods.map(() => ({ tokens: 0, forwards: 0, drafted: 0, accepted: 0, ms: 0, hits: 0 }));
  let reference;
  for (let rep = 0; rep < 3; rep++) {
    for (const p of prompts) {
      for (let m = 0; m < methods.length; m++) {
        const r = await gen(methods[m][0], methods[m][1], p);
        if (m === 0) reference = r.tokens;
        else if (r.tokens.join() !== reference.join()) throw new Error(`${methods[m][0]} differs from baseline`);
        const a = acc[m], s = r.stats;
        a.tokens += s.newTokens; a.forwards += s.targetForwards; a.drafted += s.draftedTokens; a.accepted += s.acceptedTokens; a.ms += s.decodeMs;
        a.hits += s.extra.poolHits ?? 0;
      }
    }
  }
  console.log(`\n${name} workload: ${prompts.length} prompts x 3 reps, ${NEW} new tokens each, greedy (outputs checked equal to baseline)`);
  const baseTps = (acc[0].tokens / acc[0].ms) * 1000;
  for (let m = 0; m < methods.length; m++) {
    const a = acc[m];
    const tps = (a.tokens / a.ms) * 1000;
    const label = `${methods[m][0]} ${JSON.stringify(methods[m][1])}`.padEnd(32);
    console.log(
      `${label} mean accepted length ${(a.tokens / a.forwards).toFixed(2)}  acceptance ${a.drafted ? ((a.accepted / a.drafted) * 100).toFixed(1) + "%" : "-"}  ` +
        `${tps.toFixed(0)} tok/s (x${(tps / baseTps).toFixed(2)})${methods[m][0] === "lookahead" ? `  pool hits ${a.hits}` : ""}`,
    );
  }
}
await lm.dispose();
rmSync(dir, { recursive: true, force: true });
