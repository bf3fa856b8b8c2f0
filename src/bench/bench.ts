/**
 * `spec-decode bench` as a library function: every requested method (and an optional K sweep of the
 * draft or early-exit method) measured against plain decoding in ONE interleaved `runArms` run
 * (measure.ts, the same code as the MCP tools `measure_speedup` / `tune_draft_k`), packaged as a
 * BenchReport (report.ts) for Markdown, JSON and the PNG chart.
 */
import { loadavg } from "node:os";
import { basename } from "node:path";
import { SpecEngine } from "../api.js";
import { registeredMethods, type MethodName, type MethodOptions } from "../decoding/methods.js";
import type { Device } from "../engine/session.js";
import { InvalidOptionError } from "../errors.js";
import { runArms, type ArmSpec, type BenchProgress, type SkippedArm } from "./measure.js";
import { summarizeTune, tuneArms } from "./tune.js";
import { CONVENTIONS, machineInfo, type BenchReport } from "./report.js";
import { quantArms, quantReport, quantVariantsIn } from "./quant.js";
import { readTwinInfo } from "./twin.js";
import type { BenchPrompt } from "./workload.js";

export interface BenchOptions {
  /** Reuse an engine (tests, MCP); otherwise one is made with `device` / `threads` and disposed. */
  engine?: SpecEngine;
  model: string;
  draft?: string;
  heads?: string;
  /** EAGLE head for the eagle arm when `heads` holds Medusa heads (both in one run). */
  eagleHeads?: string;
  /**
   * Extra eagle arms in the same run, each with its own options (a chain, a narrow tree, int8 head
   * weights, another head: `heads`), labelled `eagle <options>`; they run when the eagle method is requested.
   */
  eagleArms?: (MethodOptions & { heads?: string })[];
  /** Methods to compare with baseline (default: every registered method). */
  methods?: MethodName[];
  prompts: BenchPrompt[];
  /** Where the prompts came from, for the report ("builtin", a file path...). */
  workloadSource: string;
  maxNewTokens?: number;
  repeats?: number;
  temperature?: number;
  seed?: number;
  device?: Device;
  threads?: number;
  /** K for draft / early-exit (default: the method's own default controller). */
  k?: number | "auto";
  exitLayer?: number;
  /** early-exit arms (and an early-exit K sweep): true requires the trained exit adapter, false uses the untrained exit (default: the adapter when one exists). */
  adapter?: boolean;
  /** Also sweep these fixed K values (in the same interleaved run) for `sweepMethod`. */
  ks?: number[];
  /** Default: draft when a draft model is given, else early-exit. */
  sweepMethod?: "draft" | "early-exit";
  /**
   * Also measure the quantized builds found beside the model (model_int8.onnx, model_q4.onnx):
   * plain and speculative rows, the roofline, and agreement with float32. Default true.
   */
  quantized?: boolean;
  onProgress?: (p: BenchProgress) => void;
  /** Notes for the user (skipped prompts, skipped methods). */
  onNote?: (msg: string) => void;
  signal?: AbortSignal;
}

export const DEFAULT_BENCH_MAX_NEW_TOKENS = 128;
export const DEFAULT_BENCH_REPEATS = 3;

/** Why a method cannot be benchmarked with these inputs before trying it (undefined = try it). */
function precheck(method: MethodName, o: BenchOptions): string | undefined {
  if (!registeredMethods().some((m) => m.name === method)) return `method "${method}" is not available in this build`;
  if (method === "draft" && !o.draft) return "needs a draft model (--draft DIR)";
  return undefined;
}

export async function runBench(o: BenchOptions): Promise<BenchReport> {
  const machine = machineInfo();
  const engine = o.engine ?? new SpecEngine({ device: o.device, threads: o.threads });
  const note = o.onNote ?? (() => {});
  const maxNewTokens = o.maxNewTokens ?? DEFAULT_BENCH_MAX_NEW_TOKENS;
  const repeats = o.repeats ?? DEFAULT_BENCH_REPEATS;
  const temperature = o.temperature ?? 0;
  try {
    // Prompts that fit the context (prompt + new tokens).
    const target = await engine.store.load(o.model);
    const ctxLen = target.lm.info.maxContext;
    const dropped: string[] = [];
    const prompts = o.prompts.filter((p) => {
      const n = engine.encodePrompt(target, p).length;
      if (n + maxNewTokens > ctxLen) {
        dropped.push(`${p.id} (${n} tokens)`);
        return false;
      }
      return true;
    });
    if (dropped.length > 0) note(`Left out ${dropped.length} prompt(s) longer than the context allows (${ctxLen} - ${maxNewTokens} new tokens): ${dropped.join(", ")}`);
    if (prompts.length === 0) throw new InvalidOptionError(`No prompt fits the context of ${ctxLen} tokens with ${maxNewTokens} new tokens; lower --max-new-tokens.`);

    const requested = o.methods ?? registeredMethods().map((m) => m.name);
    const pre: SkippedArm[] = [];
    const arms: ArmSpec[] = [];
    for (const method of [...new Set(requested)]) {
      if (method === "baseline") continue;
      const why = precheck(method, o);
      if (why) {
        pre.push({ label: method, method, reason: why });
        continue;
      }
      const methodOptions: MethodOptions = {};
      if ((method === "draft" || method === "early-exit") && o.k !== undefined) methodOptions.k = o.k;
      if (method === "early-exit" && o.exitLayer !== undefined) methodOptions.exitLayer = o.exitLayer;
      if (method === "early-exit" && o.adapter !== undefined) methodOptions.adapter = o.adapter;
      arms.push({ method, methodOptions, ...(method === "eagle" && o.eagleHeads ? { heads: o.eagleHeads } : {}) });
      if (method === "eagle") {
        for (const { heads, ...extra } of o.eagleArms ?? []) {
          const label = `eagle ${[...(heads ? [`heads=${basename(heads)}`] : []), ...Object.entries(extra).map(([k, v]) => `${k}=${String(v)}`)].join(" ")}`;
          const armHeads = heads ?? o.eagleHeads;
          arms.push({ label, method, methodOptions: extra, ...(armHeads ? { heads: armHeads } : {}) });
        }
      }
    }
    const ks = [...new Set(o.ks ?? [])].sort((a, b) => a - b);
    for (const k of ks) if (!Number.isInteger(k) || k < 1 || k > 64) throw new InvalidOptionError(`Each K in --ks must be an integer from 1 to 64 (got ${k}).`);
    const sweepMethod = o.sweepMethod ?? (o.draft ? "draft" : "early-exit");
    if (ks.length > 0) {
      const why = precheck(sweepMethod, o);
      if (why) pre.push({ label: `${sweepMethod} K sweep`, method: sweepMethod, reason: why });
      else arms.push(...tuneArms({ method: sweepMethod, ks, exitLayer: o.exitLayer, adapter: o.adapter, labelPrefix: `${sweepMethod} ` }));
    }
    for (const s of pre) note(`Skipping ${s.label}: ${s.reason}.`);
    const quantized = o.quantized !== false && quantVariantsIn(o.model).length > 0;
    if (quantized) {
      const methods = arms.filter((a) => !a.label).map((a) => a.method);
      const headArms = arms.filter((a) => a.method === "medusa" || a.method === "eagle");
      arms.push(...quantArms({ model: o.model, draft: o.draft, methods, k: o.k, exitLayer: o.exitLayer, adapter: o.adapter, headArms }));
    }

    const result = await runArms({
      engine,
      model: o.model,
      draft: o.draft,
      heads: o.heads,
      prompts,
      maxNewTokens,
      repeats,
      sampling: temperature > 0 ? { temperature, seed: o.seed ?? 0 } : {},
      arms,
      warmup: true,
      skipUnavailable: true,
      onProgress: o.onProgress,
      signal: o.signal,
    });
    for (const s of result.skipped) note(`Skipping ${s.label}: ${s.reason}`);
    result.skipped = [...pre, ...result.skipped];
    let tune: BenchReport["tune"];
    if (ks.length > 0 && result.arms.some((a) => a.method === sweepMethod && a.methodOptions.controller === "fixed")) {
      const { measurement: _m, ...rest } = summarizeTune(result, { method: sweepMethod, exitLayer: o.exitLayer, ks });
      void _m;
      tune = rest;
    }
    const quant = quantized
      ? await quantReport({ engine, model: o.model, draft: o.draft, result, prompts, maxNewTokens: Math.min(maxNewTokens, 64), benchMaxNewTokens: maxNewTokens, threads: o.threads, agreement: temperature === 0, heads: o.heads, arms })
      : undefined;
    const categories: Record<string, number> = {};
    for (const p of prompts) categories[p.category] = (categories[p.category] ?? 0) + 1;
    return {
      kind: "spec-decode-bench",
      createdAt: new Date().toISOString(),
      machine: { ...machine, loadAverageEnd: Math.round(loadavg()[0]! * 100) / 100 },
      model: o.model,
      draft: o.draft,
      heads: o.heads,
      ...(o.eagleHeads ? { eagleHeads: o.eagleHeads } : {}),
      twin: readTwinInfo(o.model),
      workload: { source: o.workloadSource, prompts: prompts.length, categories },
      settings: {
        maxNewTokens,
        repeats,
        temperature,
        device: o.device ?? "cpu",
        threads: o.threads ?? null,
        methods: ["baseline", ...arms.filter((a) => !a.label).map((a) => a.method)],
        ks,
      },
      conventions: CONVENTIONS,
      result,
      tune,
      droppedPrompts: dropped,
      ...(quant ? { quant } : {}),
    };
  } finally {
    if (!o.engine) await engine.dispose();
  }
}
