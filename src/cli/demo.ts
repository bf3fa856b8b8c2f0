/**
 * `spec-decode demo` (what `npm start` runs): build the synthetic twin benchmark pair on first use
 * (no download, ~10 s, cached), then generate once with a draft model and compare every method that
 * works without downloads against plain decoding on the same prompts, interleaved — the same
 * measurement `spec-decode bench` and the MCP tool `measure_speedup` make, kept short.
 */
import { SpecEngine } from "../api.js";
import { measureSpeedup } from "../bench/measure.js";
import { quantArms } from "../bench/quant.js";
import { armsTable } from "../bench/report.js";
import { DEFAULT_TWIN_AGREEMENT, ensureTwin } from "../bench/twin.js";
import { builtinWorkload, selectPrompts } from "../bench/workload.js";
import type { MethodName } from "../decoding/methods.js";
import { intOpt, numOpt, parse, threadsOpt } from "./args.js";
import { displayText } from "../text/display.js";

const USAGE = `Usage: spec-decode demo [--max-new-tokens N] [--agreement X] [--threads N] [--json]
Builds the synthetic twin models once (a ~100M-parameter target and a 4.4M-parameter draft that
agrees with it about 80% of the time, each also as int8 and int4 builds; cached under
$SPEC_DECODE_CACHE or ~/.cache/speculative-decoding),
generates with the draft model, then measures every method against plain decoding on the same prompts.
The models have random weights: their text is gibberish. What the demo shows is that every method
returns exactly the tokens of plain greedy decoding, in fewer target forwards.`;

const DEMO_METHODS: { method: MethodName; label: string; methodOptions?: Record<string, unknown> }[] = [
  { method: "draft", label: "draft (k auto)" },
  { method: "early-exit", label: "early-exit (layer 1)", methodOptions: { exitLayer: 1 } },
  { method: "prompt-lookup", label: "prompt-lookup" },
  { method: "lookahead", label: "lookahead" },
];

export async function demoCommand(argv: string[]): Promise<number> {
  const { values: v } = parse(
    argv,
    {
      "max-new-tokens": { type: "string" },
      agreement: { type: "string" },
      threads: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    USAGE,
  );
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const maxNewTokens = intOpt(v["max-new-tokens"], "max-new-tokens", 1) ?? 48;
  const twin = await ensureTwin({ agreement: numOpt(v.agreement, "agreement") ?? DEFAULT_TWIN_AGREEMENT, log });
  const engine = new SpecEngine({ threads: threadsOpt(v.threads) });
  try {
    const prompts = selectPrompts(builtinWorkload(), { perCategory: 1 }).slice(0, 3);
    const first = prompts[0]!;
    const one = await engine.generate({ model: twin.target, draft: twin.draft, method: "draft", prompt: first.prompt, maxNewTokens });
    log(`Measuring ${DEMO_METHODS.length} methods against plain decoding on ${prompts.length} prompts...`);
    const result = await measureSpeedup({
      engine,
      model: twin.target,
      draft: twin.draft,
      prompts,
      maxNewTokens,
      repeats: 1,
      methods: [
        ...DEMO_METHODS.map((m) => ({ method: m.method, label: m.label, methodOptions: m.methodOptions })),
        // The twin's int8 / int4 builds: plain, and draft / early exit on them (vs their own plain decoding).
        ...quantArms({ model: twin.target, draft: twin.draft, methods: ["draft", "early-exit"] }),
      ],
      skipUnavailable: true,
    });
    if (v.json) {
      console.log(JSON.stringify({ target: twin.target, draft: twin.draft, synthetic: true, sample: { prompt: first.prompt, text: one.text, tokens: one.tokens, stats: one.stats }, result }, null, 2));
      return 0;
    }
    const s = one.stats;
    console.log("speculative-decoding demo — synthetic twin models (random weights: the text is gibberish)");
    console.log(`target ${twin.target}\ndraft  ${twin.draft}\n`);
    // JSON.stringify escapes C0 controls; on a terminal displayText shows the rest (C1, U+FFFD) escaped too.
    const shown = (t: string | undefined) => (process.stdout.isTTY ? displayText(String(JSON.stringify(t))) : JSON.stringify(t));
    console.log(`Prompt: ${shown(first.prompt)}`);
    console.log(`Draft-model output: ${shown(one.text.slice(0, 160))}${one.text.length > 160 ? "..." : ""}`);
    console.log(
      `  ${s.newTokens} tokens in ${s.targetForwards} target forwards (mean accepted length ${s.meanAcceptedLength.toFixed(2)}, bonus included), ` +
        `acceptance ${(s.acceptanceRate * 100).toFixed(1)}%, ${s.tokensPerSecond.toFixed(1)} tok/s\n`,
    );
    console.log(armsTable(result));
    for (const sk of result.skipped) console.log(`skipped ${sk.label}: ${sk.reason}`);
    const rel = result.arms.filter((a) => a.reference !== undefined && a.reference !== a.label);
    if (rel.length > 0) {
      console.log("\nOn the quantized builds (speedup over that build's own plain decoding; lossless means its tokens):");
      for (const a of rel) {
        console.log(`  ${a.label}: ${a.speedupVsReference.mean.toFixed(2)}x over ${a.reference}, greedy = ${a.reference}: ${a.greedyIdentical ? "yes" : `NO (${a.mismatches.join(", ")})`}`);
      }
    }
    console.log(
      `\nOne short run (${prompts.length} prompts x ${maxNewTokens} tokens) on this machine; for medians over more prompts run ` +
        "`spec-decode bench --twin`. Every row's \"greedy = baseline\" column checks the lossless claim.",
    );
  } finally {
    await engine.dispose();
  }
  return 0;
}
