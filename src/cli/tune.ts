/**
 * `spec-decode tune`: sweep K (and optionally the adaptive controllers) for draft-model or early-exit
 * speculation, through `tuneDraftK` (src/bench/tune.ts), the function behind the MCP tool
 * `tune_draft_k`. Table on stdout (or --json), --chart FILE.png draws speedup vs K with the
 * predicted curve.
 */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { SpecEngine } from "../api.js";
import { renderBenchChart } from "../bench/chart.js";
import { DEFAULT_TUNE_KS, tuneDraftK } from "../bench/tune.js";
import { runArms, type ArmSpec } from "../bench/measure.js";
import { ADAPTIVE_CONTROLLERS, type AdaptiveController } from "../decoding/controllers.js";
import { OPTION_MAX } from "../decoding/limits.js";
import { machineInfo, tuneTable } from "../bench/report.js";
import { readTwinInfo } from "../bench/twin.js";
import { peerCommandText } from "../bench/peers.js";
import { InvalidOptionError } from "../errors.js";
import { intList, intOpt, numOpt, parse, threadsOpt } from "./args.js";
import { BENCH_COMMON_OPTIONS, deviceOpt, resolveModels } from "./bench.js";
import { loadPrompts } from "./prompts.js";
import { methodFlagOptions, methodOptionsFromFlags } from "./method-flags.js";
import { flagOf } from "../vocabulary.js";
import { progressBar } from "./progress.js";

const USAGE = `Usage: spec-decode tune (--model DIR [--draft DIR | --exit-layer M [--adapter true|false] | --heads EAGLE_DIR [--totals 8,16,32,64] [--tree-depth D] [--tree-topk K]] | --twin [--agreement X | --divergence S] [--early-exit])
  [--variant NAME] [--draft-variant NAME]
  [--ks 1,2,3,4,6,8] [--controllers heuristic,confidence,cost] [--confidence-threshold P]
  [--workload builtin[:category] | --prompts FILE.jsonl|spec-bench [--category C] [--per-category N] [--chat]]
  [--max-new-tokens N] [--repeats R] [--temperature T] [--seed S] [--device D] [--threads N]
  [--json] [--chart FILE.png] [--quiet]

Sweeps K for the draft model (--draft) or the target's early exit (--exit-layer), interleaved with plain
decoding on the same prompts, and reports measured vs predicted speedup per K, a verdict (does speculation
help here?), and only when a setting beats plain decoding: that setting as generate flags and the
equivalent vLLM / SGLang / llama.cpp / transformers settings. The "verify cost" column is the measured cost curve:
a target forward over K+1 tokens / a plain one (flat for float weights, steep for int4); the prediction
uses it. --adapter true|false picks the early-exit draft: the trained exit adapter (spec-decode
train-early-exit) or the untrained exit; default: the adapter when one exists. --variant q4 /
--draft-variant q4 tune the quantized builds (spec-decode build --quantize).
With --heads EAGLE_DIR it sweeps the EAGLE tree size instead: fixed treeTotal values (--totals) and
the default "auto" (each round's size chosen from the measured verification cost), interleaved with
plain decoding, with speedup, mean accepted length, nodes verified per round and verify cost.`;

export async function tuneCommand(argv: string[]): Promise<number> {
  const { values: v } = parse(
    argv,
    {
      ...BENCH_COMMON_OPTIONS,
      ...methodFlagOptions(["exitLayer", "confidenceThreshold", "adapter"]),
      "early-exit": { type: "boolean", default: false },
      ks: { type: "string" },
      controllers: { type: "string" },
      variant: { type: "string" },
      "draft-variant": { type: "string" },
      heads: { type: "string" },
      totals: { type: "string" },
      "tree-depth": { type: "string" },
      "tree-topk": { type: "string" },
    },
    USAGE,
  );
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  const bar = progressBar("tune", process.stderr, { quiet: Boolean(v.quiet) });
  const resolved = await resolveModels(v, (s) => bar.log(s));
  const model = resolved.model;
  let draft = resolved.draft;
  const flags = methodOptionsFromFlags(v, ["exitLayer", "confidenceThreshold", "adapter"]);
  let exitLayer = flags.exitLayer;
  if (resolved.twin) {
    if (v["early-exit"]) exitLayer = exitLayer ?? resolved.twin.info.earlyExitLayers;
    else draft = draft ?? resolved.twin.draft;
  }
  if (!model) throw new InvalidOptionError(`--model is required (or --twin).\n\n${USAGE}`);
  if (v.heads !== undefined) {
    if (v.draft !== undefined || exitLayer !== undefined || flags.adapter !== undefined) {
      throw new InvalidOptionError(`--heads tunes the EAGLE tree; give it without --draft / --exit-layer / --adapter.\n\n${USAGE}`);
    }
    return tuneEagle(v, resolve(model), String(v.heads), bar);
  }
  for (const k of ["totals", "tree-depth", "tree-topk"]) if (v[k] !== undefined) throw new InvalidOptionError(`--${k} applies with --heads (an EAGLE head).`);
  if (!draft && exitLayer === undefined) throw new InvalidOptionError(`Give --draft DIR or --exit-layer M: tune sweeps K of a draft.\n\n${USAGE}`);
  if (draft && flags.adapter !== undefined) throw new InvalidOptionError("--adapter chooses the early-exit draft (trained exit adapter or not); give it with --exit-layer M, not --draft.");
  if (draft && exitLayer !== undefined) throw new InvalidOptionError("--exit-layer tunes the early-exit draft; give either --draft DIR or --exit-layer M, not both.");
  const controllers = v.controllers === undefined ? [] : String(v.controllers).split(",").map((s) => s.trim()).filter(Boolean);
  for (const c of controllers) {
    if (!(ADAPTIVE_CONTROLLERS as readonly string[]).includes(c)) throw new InvalidOptionError(`Unknown controller "${c}" (use ${ADAPTIVE_CONTROLLERS.join(", ")}).`);
  }
  const device = deviceOpt(v);
  const { prompts } = await loadPrompts(v);
  const temperature = numOpt(v.temperature, "temperature") ?? 0;
  const engine = new SpecEngine({ device, threads: threadsOpt(v.threads) });
  const machine = machineInfo();
  try {
    const res = await tuneDraftK({
      engine,
      model: resolve(model),
      variant: v.variant as string | undefined,
      draft: draft ? resolve(draft) : undefined,
      draftVariant: v["draft-variant"] as string | undefined,
      method: draft ? "draft" : "early-exit",
      exitLayer,
      adapter: flags.adapter,
      ks: intList(v.ks, "ks") ?? DEFAULT_TUNE_KS,
      controllers: controllers as AdaptiveController[],
      confidenceThreshold: flags.confidenceThreshold,
      prompts,
      maxNewTokens: intOpt(v["max-new-tokens"], "max-new-tokens", 1) ?? 128,
      repeats: intOpt(v.repeats, "repeats", 1, 100) ?? 2,
      sampling: temperature > 0 ? { temperature, seed: intOpt(v.seed, "seed") ?? 0 } : {},
      onProgress: (p) => bar.update(p.done, p.total, p.message),
    });
    bar.done();
    const twin = readTwinInfo(resolve(model));
    const { measurement, ...rest } = res;
    if (v.chart) {
      const file = resolve(v.chart as string);
      writeFileSync(
        file,
        renderBenchChart({
          title: `Speedup vs K (${res.method})`,
          subtitle: `${twin ? `twin target, divergence ${twin.divergence}` : model}; ${measurement.prompts} prompts x ${measurement.repeats} repeats, ${measurement.maxNewTokens} tokens; baseline ${res.baselineTokensPerSecond.toFixed(1)} tok/s; ${machine.cores} cores`,
          sweep: {
            title: `${res.method}: alpha ${res.alpha.toFixed(2)}, c ${res.costRatio.toFixed(3)}`,
            measured: res.points.filter((p) => p.k !== null).map((p) => ({ k: p.k!, speedup: p.speedup.mean, low: p.speedup.low, high: p.speedup.high })),
            predicted: res.predictedCurve.map((p) => ({ k: p.k, speedup: p.predictedSpeedup })),
          },
          footnote: twin ? "Synthetic random models (spec-decode fixture --twin): speed and acceptance only." : undefined,
        }),
      );
      process.stderr.write(`Chart written to ${file}\n`);
    }
    if (v.json) console.log(JSON.stringify({ ...rest, machine, twin, measurement }, null, 2));
    else {
      if (twin) console.log(`Synthetic twin models (divergence ${twin.divergence}); text is gibberish, speed and acceptance are what is measured.\n`);
      console.log(`Baseline ${res.baselineTokensPerSecond.toFixed(1)} tok/s; ${measurement.prompts} prompts x ${measurement.repeats} repeats, ${measurement.maxNewTokens} new tokens.\n`);
      console.log(tuneTable(rest));
      if (res.recommended) {
        const o = res.recommended;
        const flags = [`--method ${o.method}`, `--k ${o.k}`, ...Object.entries(o.methodOptions).map(([key, val]) => `--${flagOf(key)} ${val}`)];
        console.log(`\nRecommended: spec-decode generate --model ${model}${draft ? ` --draft ${draft}` : ""} ${flags.join(" ")}\n\n${peerCommandText(res.equivalents)}`);
      } else console.log(`\nNo recommended setting and no peer settings: generate with --method baseline.`);
    }
  } finally {
    await engine.dispose();
  }
  return 0;
}

/** `tune --heads`: EAGLE's tree size, fixed totals against auto, in one interleaved run. */
async function tuneEagle(v: Record<string, unknown>, model: string, heads: string, bar: ReturnType<typeof progressBar>): Promise<number> {
  const totals = intList(v.totals, "totals") ?? [8, 16, 32, 64];
  for (const t of totals) if (!Number.isInteger(t) || t < 1 || t > OPTION_MAX.treeTotal) throw new InvalidOptionError(`Each of --totals must be an integer from 1 to ${OPTION_MAX.treeTotal} (got ${t}).`);
  const shape = {
    treeDepth: intOpt(v["tree-depth"], "tree-depth", 1, OPTION_MAX.treeDepth),
    treeTopK: intOpt(v["tree-topk"], "tree-topk", 1, OPTION_MAX.treeTopK),
  };
  const { prompts } = await loadPrompts(v);
  const temperature = numOpt(v.temperature, "temperature") ?? 0;
  const engine = new SpecEngine({ device: deviceOpt(v), threads: threadsOpt(v.threads) });
  try {
    const arms: ArmSpec[] = [
      { method: "baseline" },
      { label: "eagle auto", method: "eagle", methodOptions: { ...shape } },
      ...[...new Set(totals)].map((t): ArmSpec => ({ label: `eagle treeTotal ${t}`, method: "eagle", methodOptions: { ...shape, treeTotal: t } })),
    ];
    const res = await runArms({
      engine,
      model,
      variant: v.variant as string | undefined,
      heads: resolve(heads),
      prompts,
      maxNewTokens: intOpt(v["max-new-tokens"], "max-new-tokens", 1) ?? 128,
      repeats: intOpt(v.repeats, "repeats", 1, 100) ?? 2,
      sampling: temperature > 0 ? { temperature, seed: intOpt(v.seed, "seed") ?? 0 } : {},
      arms,
      onProgress: (p) => bar.update(p.done, p.total, p.message),
    });
    bar.done();
    if (v.json) {
      console.log(JSON.stringify({ kind: "spec-decode-tune-eagle", machine: machineInfo(), heads: resolve(heads), result: res }, null, 2));
      return 0;
    }
    console.log(`Baseline ${res.baseline.medianTokensPerSecond.toFixed(1)} tok/s; ${res.prompts} prompts x ${res.repeats} repeats, ${res.maxNewTokens} new tokens.\n`);
    console.log("| tree | speedup (95% CI) | mean accepted length | nodes verified per round | verify cost (vs 1 token) | greedy = plain |");
    console.log("|---|---|---|---|---|---|");
    for (const a of res.arms) {
      const s = a.speedup;
      console.log(`| ${a.label} | ${s.mean.toFixed(2)}x (${s.low?.toFixed(2) ?? "-"}-${s.high?.toFixed(2) ?? "-"}) | ${a.meanAcceptedLength.toFixed(2)} | ${a.meanDrafted.toFixed(1)} | ${a.verifyCostRatio.toFixed(2)} | ${a.greedyIdentical === null ? "-" : a.greedyIdentical ? "yes" : "NO"} |`);
    }
    const best = [...res.arms].sort((a, b) => b.speedup.mean - a.speedup.mean)[0];
    if (best) console.log(`\nFastest here: ${best.label} (${best.speedup.mean.toFixed(2)}x).${best.label === "eagle auto" ? " That is the default." : ` Pass --tree-total ${best.methodOptions.treeTotal} to fix it.`}`);
  } finally {
    await engine.dispose();
  }
  return 0;
}
