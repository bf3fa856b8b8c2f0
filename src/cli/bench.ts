/**
 * `spec-decode bench`: plain decoding vs speculative methods on the same prompts, interleaved after a
 * warm-up, through the same library functions as the MCP tools (src/bench). Markdown table on
 * stdout, JSON with --json, a PNG chart with --chart, a progress bar on stderr.
 */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { runBench } from "../bench/bench.js";
import { renderBenchChart } from "../bench/chart.js";
import { benchChartInput, benchMarkdown } from "../bench/report.js";
import { ensureTwin } from "../bench/twin.js";
import { METHOD_NAMES, isMethodName, type MethodName, type MethodOptions } from "../decoding/methods.js";
import { EAGLE_OPTIONS, eagleSettings } from "../decoding/eagle.js";
import type { OptionsOf } from "../decoding/options.js";
import { nearestName } from "../util/nearest-name.js";
import { DEVICES, type Device } from "../engine/session.js";
import { resolveModel } from "../hub/index.js";
import { InvalidOptionError } from "../errors.js";
import { intList, intOpt, numOpt, parse, type Options, threadsOpt } from "./args.js";
import { methodFlagOptions, methodFlagUsage, methodOptionsFromFlags } from "./method-flags.js";
import { progressBar } from "./progress.js";
import { loadPrompts } from "./prompts.js";
import { BENCH_ENDPOINT_OPTIONS, BENCH_ENDPOINT_USAGE, benchEndpointCommand } from "./bench-endpoint.js";

const USAGE = `Usage: spec-decode bench (--model DIR [--draft DIR] [--heads PATH] [--eagle-heads DIR] | --twin [--agreement X | --divergence S])
  [--methods ${METHOD_NAMES.join(",")}]
  [--workload builtin[:category] | --prompts FILE.jsonl|spec-bench [--category C] [--per-category N] [--chat]]
  [--max-new-tokens N] [--repeats R] [--temperature T] [--seed S] [--device cpu|webgpu|cuda] [--threads N]
  ${methodFlagUsage(["k", "exitLayer", "adapter"])} [--ks 1,2,4,8 [--sweep draft|early-exit]]
  [--json] [--out FILE.json] [--chart FILE.png] [--quiet]

Measures every method against plain decoding on the same prompts in the same run (one warm-up run per
method, then prompts x repeats with the method order rotating), and reports per method: median tokens/s,
speedup with a 95% confidence interval, acceptance, mean accepted length (bonus included), per-position
acceptance, the ideal speedup (Leviathan et al.) from measured acceptance and draft cost, efficiency =
measured / ideal, time outside onnxruntime per token, peak memory, and whether greedy output equals
plain decoding's. Methods that cannot run (not in this build, no --draft, no early-exit graph, no Medusa
heads) are skipped with the reason.

  --heads         Medusa heads, or an EAGLE head; --eagle-heads DIR gives the eagle arm its own head
                  so that Medusa and EAGLE run in the same interleaved run
  --eagle-arms    more eagle arms in the same run, ";"-separated, each "option=value,..." with the
                  eagle method options, e.g. "treeTotal=6,treeDepth=6,treeTopK=1;headWeights=int8", and
                  heads=DIR for an arm with another EAGLE head
  --twin          use the synthetic twin benchmark models (built once under the cache dir, ~1 minute)
  --prompts       Spec-Bench's question.jsonl format ({question_id, category, turns}: first turn used) or
                  ours ({id, category, prompt|messages|promptIds}); "spec-bench" finds ../shared/workloads/
                  spec-bench-questions.jsonl (or $SPEC_BENCH_QUESTIONS)
  --ks            also sweep these fixed K values of the draft (or early-exit) method, in the same run
  --adapter       early-exit arms: true requires the trained exit adapter (spec-decode train-early-exit),
                  false drafts with the untrained exit; default: the adapter when one exists
  Defaults: all methods, --workload builtin, 128 new tokens, 3 repeats, greedy.
  Exit code 3 when a method's greedy output differs from plain decoding's (a bug: speculation is lossless),
  except a mismatch on an int4 build, or a tree-verifying arm on an int8 build (accuracy level 4), that the
  report locates at a near tie (top-2 logit gap < 0.05: references/quantization.md).`;

/** Options bench and tune share: the models (or the twin), the workload, sampling, device, output. */
export const BENCH_COMMON_OPTIONS: Options = {
  model: { type: "string" },
  draft: { type: "string" },
  twin: { type: "boolean", default: false },
  agreement: { type: "string" },
  divergence: { type: "string" },
  workload: { type: "string" },
  prompts: { type: "string" },
  category: { type: "string" },
  "per-category": { type: "string" },
  chat: { type: "boolean", default: false },
  "max-new-tokens": { type: "string" },
  repeats: { type: "string" },
  temperature: { type: "string" },
  seed: { type: "string" },
  device: { type: "string" },
  threads: { type: "string" },
  json: { type: "boolean", default: false },
  chart: { type: "string" },
  quiet: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
};

/** --device, checked. */
export function deviceOpt(v: Record<string, unknown>): Device | undefined {
  const device = v.device as string | undefined;
  if (device !== undefined && !(DEVICES as readonly string[]).includes(device)) throw new InvalidOptionError(`--device must be one of ${DEVICES.join(", ")} (got "${device}").`);
  return device as Device | undefined;
}

/** --model/--draft, or --twin (built once) with its --agreement/--divergence knob. */
export async function resolveModels(
  v: Record<string, unknown>,
  log: (s: string) => void,
): Promise<{ model?: string; draft?: string; twin?: Awaited<ReturnType<typeof ensureTwin>> }> {
  const model = v.model as string | undefined;
  const draft = v.draft as string | undefined;
  if (v.twin) {
    if (model) throw new InvalidOptionError("Give --model or --twin, not both.");
    const twin = await ensureTwin({ divergence: numOpt(v.divergence, "divergence"), agreement: numOpt(v.agreement, "agreement"), log });
    return { model: twin.target, draft, twin };
  }
  if (v.agreement !== undefined || v.divergence !== undefined) {
    throw new InvalidOptionError("--agreement / --divergence choose the twin models; use them with --twin.");
  }
  // Repo ids (org/name[@rev][:variant]) resolve to the HF cache or are pulled (see hub/resolve.ts).
  const hub = { log };
  return {
    model: model === undefined ? undefined : (await resolveModel(model, hub)).dir,
    draft: draft === undefined ? undefined : (await resolveModel(draft, hub)).dir,
  };
}

export async function benchCommand(argv: string[]): Promise<number> {
  const { values: v } = parse(
    argv,
    {
      ...BENCH_COMMON_OPTIONS,
      heads: { type: "string" },
      "eagle-heads": { type: "string" },
      "eagle-arms": { type: "string" },
      methods: { type: "string" },
      ...methodFlagOptions(["k", "exitLayer", "adapter"]),
      ks: { type: "string" },
      sweep: { type: "string" },
      out: { type: "string" },
      ...BENCH_ENDPOINT_OPTIONS,
    },
    USAGE,
  );
  if (v.help) {
    console.log(`${USAGE}\n\n${BENCH_ENDPOINT_USAGE}`);
    return 0;
  }
  if (v.endpoint !== undefined || v["endpoint-baseline"] !== undefined) return benchEndpointCommand(v);
  for (const k of Object.keys(BENCH_ENDPOINT_OPTIONS)) if (v[k] !== undefined) throw new InvalidOptionError(`--${k} applies with --endpoint only.`);
  const bar = progressBar("bench", process.stderr, { quiet: Boolean(v.quiet) });
  const note = (s: string) => bar.log(s);

  const resolved = await resolveModels(v, note);
  const model = resolved.model;
  const draft = resolved.draft ?? resolved.twin?.draft;
  if (!model) throw new InvalidOptionError(`--model is required (or --twin for the synthetic benchmark models).\n\n${USAGE}`);

  const methods = v.methods === undefined ? undefined : parseMethods(String(v.methods));
  const device = deviceOpt(v);
  const { k, exitLayer, adapter } = methodOptionsFromFlags(v, ["k", "exitLayer", "adapter"]);
  const sweep = v.sweep as string | undefined;
  if (sweep !== undefined && sweep !== "draft" && sweep !== "early-exit") throw new InvalidOptionError(`--sweep must be draft or early-exit (got "${sweep}").`);

  const { prompts, source } = await loadPrompts(v);
  const report = await runBench({
    model: resolve(model),
    draft: draft ? resolve(draft) : undefined,
    heads: v.heads ? resolve(v.heads as string) : undefined,
    eagleHeads: v["eagle-heads"] ? resolve(v["eagle-heads"] as string) : undefined,
    eagleArms: eagleArmsArg(v["eagle-arms"] as string | undefined),
    methods,
    prompts,
    workloadSource: source,
    maxNewTokens: intOpt(v["max-new-tokens"], "max-new-tokens", 1),
    repeats: intOpt(v.repeats, "repeats", 1, 100),
    temperature: numOpt(v.temperature, "temperature"),
    seed: intOpt(v.seed, "seed"),
    device,
    threads: threadsOpt(v.threads),
    k,
    exitLayer,
    adapter,
    ks: intList(v.ks, "ks"),
    sweepMethod: sweep as "draft" | "early-exit" | undefined,
    onProgress: (p) => bar.update(p.done, p.total, p.message),
    onNote: note,
  });
  bar.done();
  const json = JSON.stringify(report, null, 2);
  if (v.out) writeFileSync(resolve(v.out as string), json + "\n");
  if (v.chart) {
    const file = resolve(v.chart as string);
    writeFileSync(file, renderBenchChart(benchChartInput(report)));
    process.stderr.write(`Chart written to ${file}\n`);
  }
  if (v.json) console.log(json);
  else process.stdout.write(benchMarkdown(report));
  // Exit 3 on a greedy mismatch, except the documented level-4 near ties (located and shown in the report).
  const explained = (label: string, id: string) => report.quant?.mismatches.some((m) => m.arm === label && m.prompt === id && m.nearTie) ?? false;
  return report.result.arms.some((a) => a.greedyIdentical === false && a.mismatches.some((id) => !explained(a.label, id))) ? 3 : 0;
}

export function parseMethods(s: string): MethodName[] {
  const names = s.split(",").map((x) => x.trim()).filter(Boolean);
  if (names.length === 0) throw new InvalidOptionError(`--methods needs at least one method (${METHOD_NAMES.join(", ")}).`);
  for (const n of names) {
    if (!isMethodName(n)) {
      const near = nearestName(n, METHOD_NAMES);
      throw new InvalidOptionError(`Unknown method "${n}" in --methods${near ? ` — did you mean ${near}?` : ""}. Use any of: ${METHOD_NAMES.join(", ")}.`);
    }
  }
  return names as MethodName[];
}

/** --eagle-arms "treeTotal=6,treeDepth=6,treeTopK=1;headWeights=int8": the eagle options of each extra arm, checked. */
function eagleArmsArg(raw: string | undefined): (MethodOptions & { heads?: string })[] | undefined {
  if (raw === undefined) return undefined;
  return raw
    .split(";")
    .map((arm) => arm.trim())
    .filter((arm) => arm.length > 0)
    .map((arm) => {
      const opts: Record<string, unknown> = {};
      for (const kv of arm.split(",")) {
        const [k, v, ...rest] = kv.split("=").map((x) => x.trim());
        if (!k || v === undefined || rest.length > 0) throw new InvalidOptionError(`--eagle-arms: "${kv}" is not option=value (e.g. "treeTotal=6,treeDepth=6,treeTopK=1;headWeights=int8").`);
        if (k === "heads") {
          opts.heads = resolve(v);
          continue;
        }
        if (!(k in EAGLE_OPTIONS)) throw new InvalidOptionError(`--eagle-arms: "${k}" is not an eagle option (${Object.keys(EAGLE_OPTIONS).join(", ")}, or heads=DIR).`);
        opts[k] = v !== "" && Number.isFinite(Number(v)) ? Number(v) : v;
      }
      eagleSettings(opts as OptionsOf<typeof EAGLE_OPTIONS>); // bad values are clear errors here
      return opts as MethodOptions & { heads?: string };
    });
}
