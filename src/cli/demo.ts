/**
 * `spec-decode demo` (what `npm start` runs): build the embedded demo model on first use (no
 * download), then run plain decoding and every speculative method that works without extra
 * downloads on the same prompt, and print the outputs' agreement and speedups side by side.
 */
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { SpecEngine } from "../api.js";
import { makeFixture } from "../builder/index.js";
import { registeredMethods, type MethodName } from "../decoding/methods.js";
import { intOpt, parse } from "./args.js";

const USAGE = `Usage: spec-decode demo [--dir DIR] [--max-new-tokens N] [--json]
Builds a small random demo model (once, into DIR, default $SPEC_DECODE_CACHE or ~/.cache/speculative-decoding/demo)
and compares decoding methods on it. The model is synthetic: its text is gibberish; the point is
that every method returns the same tokens as plain greedy decoding, and how many forwards it saves.`;

export const DEMO_PROMPT =
  "Repeat after me: the quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. The quick brown fox";

export function demoDir(): string {
  return join(process.env.SPEC_DECODE_CACHE ?? join(homedir(), ".cache", "speculative-decoding"), "demo-v1");
}

export async function ensureDemoModel(dir = demoDir(), log: (s: string) => void = () => undefined): Promise<string> {
  if (!existsSync(join(dir, "onnx", "model.onnx"))) {
    log(`Building the demo model in ${dir} (first run only)...`);
    await makeFixture({ out: dir, layers: 4, hidden: 256, heads: 8, kvHeads: 4, vocab: 512, maxPositions: 1024, seed: 7, earlyExit: [1] });
  }
  return dir;
}

export async function demoCommand(argv: string[]): Promise<number> {
  const { values: v } = parse(
    argv,
    { dir: { type: "string" }, "max-new-tokens": { type: "string" }, json: { type: "boolean", default: false }, help: { type: "boolean", short: "h", default: false } },
    USAGE,
  );
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const dir = await ensureDemoModel((v.dir as string | undefined) ?? demoDir(), log);
  const maxNewTokens = intOpt(v["max-new-tokens"], "max-new-tokens", 1) ?? 64;
  const engine = new SpecEngine();
  const methods = registeredMethods()
    .map((m) => m.name)
    .filter((m): m is MethodName => m !== "draft" && m !== "medusa");
  const rows: { method: string; tokensPerSecond: number; meanAcceptedLength: number; acceptanceRate: number; identical: boolean; speedup: number }[] = [];
  try {
    let baseline: { tokens: number[]; tps: number; text: string } | undefined;
    // Warm-up run so the first timed method does not pay for lazy initialisation.
    await engine.generate({ model: dir, prompt: DEMO_PROMPT, maxNewTokens: 8 });
    for (const method of methods) {
      const res = await engine.generate({
        model: dir,
        prompt: DEMO_PROMPT,
        maxNewTokens,
        method,
        methodOptions: method === "early-exit" ? { exitLayer: 1 } : {},
      });
      if (!baseline) baseline = { tokens: res.tokens, tps: res.stats.tokensPerSecond, text: res.text };
      rows.push({
        method,
        tokensPerSecond: res.stats.tokensPerSecond,
        meanAcceptedLength: res.stats.meanAcceptedLength,
        acceptanceRate: res.stats.acceptanceRate,
        identical: JSON.stringify(res.tokens) === JSON.stringify(baseline.tokens),
        speedup: baseline.tps > 0 ? res.stats.tokensPerSecond / baseline.tps : 0,
      });
    }
    if (v.json) {
      console.log(JSON.stringify({ model: dir, prompt: DEMO_PROMPT, text: baseline?.text, results: rows }, null, 2));
    } else {
      console.log(`Prompt: ${DEMO_PROMPT}`);
      console.log(`Output (synthetic random model, greedy): ${JSON.stringify(baseline?.text)}`);
      console.log("");
      console.log("| method | tokens/s | speedup | mean accepted length (bonus incl.) | acceptance | same tokens as baseline |");
      console.log("|---|---|---|---|---|---|");
      for (const r of rows) {
        console.log(`| ${r.method} | ${r.tokensPerSecond.toFixed(1)} | ${r.speedup.toFixed(2)}x | ${r.meanAcceptedLength.toFixed(2)} | ${(r.acceptanceRate * 100).toFixed(1)}% | ${r.identical ? "yes" : "NO"} |`);
      }
      console.log("\nOne run on a shared machine: treat speedups as indicative; use `spec-decode bench` for medians.");
    }
  } finally {
    await engine.dispose();
  }
  return 0;
}
