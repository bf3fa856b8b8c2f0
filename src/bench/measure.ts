/**
 * Measuring speedups: `runArms`, the one measuring loop, and `measureSpeedup` (the MCP tool
 * `measure_speedup`) over it. K sweeps (`tune_draft_k`, `spec-decode tune`) and `spec-decode bench`
 * run the same loop (tune.ts, bench.ts), so the CLI and the MCP server report the same numbers;
 * extend this rather than writing new loops.
 *
 * Protocol (`runArms`):
 *  - An "arm" is one configuration: a method plus its options (e.g. draft with K=4). Baseline is
 *    always an arm: every speedup is relative to plain decoding measured in the same run.
 *  - Warm-up: each arm runs once on the first prompt before anything is measured (session
 *    allocation, lazy probes, caches), unless `warmup: false`.
 *  - Interleaved: for each prompt, for each repeat, every arm runs in turn (the order rotates from
 *    one repeat to the next), so slow drifts of a noisy machine hit all arms alike.
 *  - Tokens/s is decode tokens per decode second (prefill excluded); per arm we report the median.
 *  - Speedup: for each (prompt, repeat) the ratio arm tokens/s / baseline tokens/s of that same
 *    repeat; the speedup is the geometric mean of these ratios with a t-based 95% confidence
 *    interval on their logarithms (statistics.ts).
 *  - Acceptance: pooled over all runs (accepted / drafted); mean accepted length = new tokens /
 *    target forwards (bonus token included); per-position acceptance pooled with weights that
 *    approximate how often each position was reached.
 *  - Greedy check: with greedy sampling, every run's tokens are compared with the baseline's on
 *    the same prompt; speculative decoding must not change a single token.
 *  - Ideal speedup (Leviathan et al.) per arm: E / (1 + draft ms per round / T), where E is the
 *    measured mean accepted length (= 1 + a1 + a1*a2 + ... from the measured per-position
 *    acceptance, bonus included) and T the baseline's target ms per forward in the same run.
 *    It charges drafting but assumes verifying K+1 tokens costs one plain forward and that nothing
 *    happens between forwards; efficiency = measured speedup / ideal shows what those cost.
 *  - Time outside onnxruntime: decode time minus the time inside session.run (target and draft),
 *    per token and as a share of decode time.
 *  - Peak memory: the process's resident set size, sampled every 20 ms during each run. onnxruntime-node
 *    runs a session synchronously on the main thread, so samples land between forwards (its arena
 *    keeps what a forward allocated); it includes every model loaded so far, so it differs between
 *    arms only by what an arm loads first.
 *  - `skipUnavailable`: an arm whose warm-up fails (method not in this build, no draft, no early
 *    exit graph...) is dropped and reported in `skipped` with the reason, instead of failing the run.
 */
import { SpecEngine, type ChatMessage } from "../api.js";
import { registeredMethods, type MethodName, type MethodOptions } from "../decoding/methods.js";
import type { GenerationStats } from "../decoding/stats.js";
import { CancelledError, InvalidOptionError } from "../errors.js";
import { isGreedy, type SamplingOptions } from "../sampling/index.js";
import { median, round4, summarizeRatios, type RatioSummary } from "./statistics.js";
import type { BenchPrompt } from "./workload.js";

/** One configuration to measure. */
export interface ArmSpec {
  /** Unique name in reports (default: the method name). */
  label?: string;
  method: MethodName;
  methodOptions?: MethodOptions;
  /** Target variant for this arm (e.g. "q4": the int4 build beside model.onnx). Default: the model's default file. */
  variant?: string;
  /** Draft variant (method draft). */
  draftVariant?: string;
  /** Heads for this arm (e.g. EAGLE's beside Medusa's in one run); default the request's `heads`. */
  heads?: string;
  /**
   * Label of the arm this one is checked against (greedy identity) and also divided by
   * (`speedupVsReference`); default the baseline. A speculative arm on the int4 model refers to
   * "int4 plain": it must reproduce the int4 model's tokens, not the float model's.
   */
  reference?: string;
}

export interface BenchProgress {
  /** Runs finished (warm-ups included). */
  done: number;
  total: number;
  message: string;
}

export interface BenchCommon {
  engine: SpecEngine;
  /** Target model directory. */
  model: string;
  /** Default target / draft variant of every arm (e.g. "q4"); an arm's own variant wins. */
  variant?: string;
  draftVariant?: string;
  draft?: string;
  heads?: string;
  /** Prompts: strings, or {prompt | messages | promptIds}. */
  prompts: (string | Partial<BenchPrompt>)[];
  maxNewTokens: number;
  /** Measured runs per prompt and arm (default 3). */
  repeats?: number;
  sampling?: SamplingOptions;
  /** One warm-up run per arm before measuring (default true). */
  warmup?: boolean;
  /** Drop arms whose warm-up run fails and report why in `skipped` (needs warm-up; default false). */
  skipUnavailable?: boolean;
  onProgress?: (p: BenchProgress) => void;
  signal?: AbortSignal;
}

export interface MeasureSpeedupRequest extends BenchCommon {
  /** Methods (or arms) to compare with baseline; baseline is added when missing. */
  methods: (MethodName | ArmSpec)[];
}

export interface ArmSummary {
  label: string;
  method: MethodName;
  methodOptions: MethodOptions;
  runs: number;
  medianTokensPerSecond: number;
  /** Over baseline, same prompts and repeats (baseline: 1). */
  speedup: RatioSummary;
  acceptanceRate: number;
  meanAcceptedLength: number;
  perPositionAcceptance: number[];
  /** Mean proposed tokens per target forward. */
  meanDrafted: number;
  /** Drafting time per generated token, ms. */
  draftMsPerToken: number;
  /** Target (verification) time per target forward, ms. */
  targetMsPerForward: number;
  newTokens: number;
  targetForwards: number;
  /** Target variant, draft variant and reference arm (see ArmSpec). */
  variant?: string;
  draftVariant?: string;
  reference?: string;
  /** Over the reference arm (same prompts and repeats); equals `speedup` when the reference is the baseline. */
  speedupVsReference: RatioSummary;
  /** Greedy runs only: every run's tokens equal the reference arm's (default the baseline's); null when sampling. */
  greedyIdentical: boolean | null;
  /** Prompt ids whose outputs differed from the baseline (greedy). */
  mismatches: string[];
  perPrompt: { id: string; category: string; medianTokensPerSecond: number; speedup: number }[];
  /** early-exit: which draft ran (the trained exit adapter or the bare exit), from the runs' stats. */
  exitAdapter?: "trained" | "untrained" | "mixed";
  /** Verification modes seen, and the methods' notes. */
  verification: string[];
  notes: string[];
  /** Decode ms per generated token, pooled (decode time / new tokens). */
  decodeMsPerToken: number;
  /** Of which inside onnxruntime's session.run (target and draft models). */
  onnxRuntimeMsPerToken: number;
  /** Of which outside onnxruntime (sampling, KV crops, tensor marshalling, JS glue). */
  overheadMsPerToken: number;
  /** overheadMs / decodeMs. */
  overheadShare: number;
  /** Draft ms per drafted token / baseline target ms per forward (Leviathan's c); 0 when nothing was drafted. */
  draftCostRatio: number;
  /** E / (1 + draft ms per round / baseline target ms per forward); 1 for baseline. See the file comment. */
  idealSpeedup: number;
  /** speedup.mean / idealSpeedup. */
  efficiency: number;
  /** This arm's target ms per forward / baseline's: what verifying K+1 (or tree/aux) tokens costs vs one. */
  verifyCostRatio: number;
  /**
   * The ideal with the measured verification cost instead of one plain forward:
   * E / (verifyCostRatio + draft ms per round / baseline target ms per forward). speedup / this =
   * what the loop itself loses between forwards (JS glue, KV crops, sampling).
   */
  idealWithVerifyCost: number;
  /** Highest resident set size sampled during this arm's runs, bytes. */
  peakRssBytes: number;
}

export interface SkippedArm {
  label: string;
  method: MethodName;
  reason: string;
}

export interface MeasureSpeedupResult {
  model: string;
  prompts: number;
  repeats: number;
  maxNewTokens: number;
  greedy: boolean;
  baseline: ArmSummary;
  /** The other arms, in the order asked. */
  arms: ArmSummary[];
  /** Arms dropped because their warm-up failed (skipUnavailable). */
  skipped: SkippedArm[];
  /** Process-wide peak resident set size (getrusage maxRSS), bytes. */
  maxRssBytes: number;
  elapsedMs: number;
}

interface Run {
  arm: number;
  prompt: number;
  repeat: number;
  tokens: number[];
  stats: GenerationStats;
  peakRss: number;
}

export function normalizePrompts(prompts: (string | Partial<BenchPrompt>)[]): BenchPrompt[] {
  if (!Array.isArray(prompts) || prompts.length === 0) throw new InvalidOptionError("Give at least one prompt (or use the built-in workload).");
  return prompts.map((p, i) => {
    const id = `prompt-${i + 1}`;
    if (typeof p === "string") return { id, category: "custom", prompt: p };
    const given = [p.prompt, p.messages, p.promptIds].filter((x) => x !== undefined).length;
    if (given !== 1) throw new InvalidOptionError(`Prompt ${i + 1}: give exactly one of prompt, messages or promptIds.`);
    return { id: p.id ?? id, category: p.category ?? "custom", prompt: p.prompt, messages: p.messages as ChatMessage[] | undefined, promptIds: p.promptIds };
  });
}

function armLabel(a: ArmSpec): string {
  return a.label ?? a.method;
}

/** Throws a clear error when a method is not registered in this build. */
export function assertMethodsAvailable(methods: MethodName[]): void {
  const available = registeredMethods().map((m) => m.name);
  for (const m of methods) {
    if (!available.includes(m)) {
      throw new InvalidOptionError(`Method "${m}" is not available in this build (available: ${available.join(", ")}). Pick one of those.`);
    }
  }
}

/** Run every arm on every prompt (interleaved, after warm-up) and summarize. See the file comment. */
export async function runArms(req: BenchCommon & { arms: ArmSpec[] }): Promise<MeasureSpeedupResult> {
  const t0 = performance.now();
  const prompts = normalizePrompts(req.prompts);
  const repeats = req.repeats ?? 3;
  if (!Number.isInteger(repeats) || repeats < 1) throw new InvalidOptionError(`repeats must be an integer >= 1 (got ${repeats}).`);
  if (!Number.isInteger(req.maxNewTokens) || req.maxNewTokens < 1) {
    throw new InvalidOptionError(`maxNewTokens must be an integer >= 1 (got ${req.maxNewTokens}).`);
  }
  // The reference arm: plain baseline labelled "baseline" (added when missing). Other baseline arms
  // (with another label) are measured like any method, which gives an A/A noise check.
  const isRef = (a: ArmSpec) => a.method === "baseline" && armLabel(a) === "baseline";
  let arms: ArmSpec[] = req.arms.some(isRef) ? [...req.arms] : [{ method: "baseline" }, ...req.arms];
  let labels = arms.map(armLabel);
  const dup = labels.find((l, i) => labels.indexOf(l) !== i);
  if (dup) throw new InvalidOptionError(`Two configurations are both named "${dup}"; give each a distinct label.`);
  const skipped: SkippedArm[] = [];
  const skipping = req.skipUnavailable === true && req.warmup !== false;
  if (skipping) {
    const available = new Set(registeredMethods().map((m) => m.name));
    for (const a of arms) {
      if (!available.has(a.method)) skipped.push({ label: armLabel(a), method: a.method, reason: `method "${a.method}" is not available in this build` });
    }
    arms = arms.filter((a) => available.has(a.method));
    labels = arms.map(armLabel);
  } else assertMethodsAvailable(arms.map((a) => a.method));
  let baseIdx = arms.findIndex(isRef);
  const sampling = req.sampling ?? {};
  const greedy = isGreedy(sampling);

  let total = (req.warmup === false ? 0 : arms.length) + prompts.length * repeats * arms.length;
  let done = 0;
  const checkCancel = () => {
    if (req.signal?.aborted) throw new CancelledError("The measurement was cancelled.");
  };
  const runOne = async (a: number, p: number) => {
    checkCancel();
    const arm = arms[a]!;
    const pr = prompts[p]!;
    const rss = startRssSampler();
    const res = await req.engine.generate({
      model: req.model,
      variant: arm.variant ?? req.variant,
      draft: req.draft,
      draftVariant: arm.draftVariant ?? req.draftVariant,
      heads: arm.heads ?? req.heads,
      method: arm.method,
      prompt: pr.prompt,
      messages: pr.messages,
      promptIds: pr.promptIds,
      maxNewTokens: req.maxNewTokens,
      sampling,
      methodOptions: arm.methodOptions,
      signal: req.signal,
    }).finally(() => rss.stop());
    checkCancel();
    done++;
    req.onProgress?.({ done, total, message: `${labels[a]} on ${pr.id}: ${res.stats.tokensPerSecond.toFixed(1)} tok/s` });
    return { ...res, peakRss: rss.peak() };
  };

  if (req.warmup !== false) {
    const ok: boolean[] = [];
    for (let a = 0; a < arms.length; a++) {
      if (!skipping || a === baseIdx) {
        await runOne(a, 0);
        ok.push(true);
        continue;
      }
      try {
        await runOne(a, 0);
        ok.push(true);
      } catch (err) {
        if (err instanceof CancelledError) throw err;
        skipped.push({ label: labels[a]!, method: arms[a]!.method, reason: (err as Error).message ?? String(err) });
        ok.push(false);
        total -= 1 + prompts.length * repeats;
      }
    }
    if (ok.some((x) => !x)) {
      arms = arms.filter((_, i) => ok[i]);
      labels = arms.map(armLabel);
      baseIdx = arms.findIndex(isRef);
    }
  }
  const runs: Run[] = [];
  for (let p = 0; p < prompts.length; p++) {
    for (let r = 0; r < repeats; r++) {
      for (let j = 0; j < arms.length; j++) {
        const a = (j + r) % arms.length;
        const res = await runOne(a, p);
        runs.push({ arm: a, prompt: p, repeat: r, tokens: res.tokens, stats: res.stats, peakRss: res.peakRss });
      }
    }
  }

  const find = (a: number, p: number, r: number) => runs.find((x) => x.arm === a && x.prompt === p && x.repeat === r)!;
  const baselineForwardMs = pooled(runs.filter((x) => x.arm === baseIdx).map((x) => x.stats)).targetMsPerForward;
  const summaries = arms.map((arm, a): ArmSummary => {
    const mine = runs.filter((x) => x.arm === a);
    const ratios: number[] = [];
    const refRatios: number[] = [];
    const refIdx = arm.reference === undefined ? baseIdx : labels.indexOf(arm.reference);
    if (refIdx < 0) throw new InvalidOptionError(`Arm "${labels[a]}" refers to "${arm.reference}", which is not measured; name another arm's label.`);
    const mismatches = new Set<string>();
    const perPrompt = prompts.map((pr, p) => {
      const rs: number[] = [];
      for (let r = 0; r < repeats; r++) {
        const x = find(a, p, r);
        const b = find(baseIdx, p, r);
        const ratio = b.stats.tokensPerSecond > 0 ? x.stats.tokensPerSecond / b.stats.tokensPerSecond : Number.NaN;
        rs.push(ratio);
        ratios.push(ratio);
        const ref = find(refIdx, p, r);
        refRatios.push(ref.stats.tokensPerSecond > 0 ? x.stats.tokensPerSecond / ref.stats.tokensPerSecond : Number.NaN);
        if (greedy && !sameTokens(x.tokens, ref.tokens)) mismatches.add(pr.id);
      }
      return {
        id: pr.id,
        category: pr.category,
        medianTokensPerSecond: round4(median(mine.filter((x) => x.prompt === p).map((x) => x.stats.tokensPerSecond))),
        speedup: a === baseIdx ? 1 : summarizeRatios(rs).mean,
      };
    });
    const pool = pooled(mine.map((x) => x.stats));
    const speedup = a === baseIdx ? { mean: 1, low: 1, high: 1, n: ratios.length } : summarizeRatios(ratios);
    const ideal = a === baseIdx ? 1 : idealSpeedup(pool, baselineForwardMs);
    return {
      label: labels[a]!,
      method: arm.method,
      methodOptions: arm.methodOptions ?? {},
      runs: mine.length,
      medianTokensPerSecond: round4(median(mine.map((x) => x.stats.tokensPerSecond))),
      speedup,
      ...(arm.variant !== undefined ? { variant: arm.variant } : {}),
      ...(arm.draftVariant !== undefined ? { draftVariant: arm.draftVariant } : {}),
      ...(arm.reference !== undefined ? { reference: arm.reference } : {}),
      speedupVsReference: a === refIdx ? { mean: 1, low: 1, high: 1, n: refRatios.length } : summarizeRatios(refRatios),
      ...pool,
      // An arm that is its own reference (a quantized plain arm: a different model) has nothing to equal.
      greedyIdentical: greedy && (refIdx !== a || a === baseIdx) ? mismatches.size === 0 : null,
      mismatches: [...mismatches],
      perPrompt,
      ...exitAdapterOf(mine.map((x) => x.stats)),
      verification: [...new Set(mine.map((x) => x.stats.verification))],
      notes: [...new Set(mine.flatMap((x) => x.stats.notes))],
      ...overhead(mine.map((x) => x.stats)),
      draftCostRatio:
        pool.meanDrafted > 0 && baselineForwardMs > 0 ? round4((pool.draftMsPerToken * pool.meanAcceptedLength) / pool.meanDrafted / baselineForwardMs) : 0,
      idealSpeedup: round4(ideal),
      efficiency: ideal > 0 && speedup.mean > 0 ? round4(speedup.mean / ideal) : 0,
      verifyCostRatio: baselineForwardMs > 0 ? round4(pool.targetMsPerForward / baselineForwardMs) : 0,
      idealWithVerifyCost:
        a === baseIdx ? 1 : baselineForwardMs > 0 && pool.targetMsPerForward > 0 ? round4(idealSpeedup(pool, pool.targetMsPerForward) * (baselineForwardMs / pool.targetMsPerForward)) : 0,
      peakRssBytes: Math.max(0, ...mine.map((x) => x.peakRss)),
    };
  });
  return {
    model: req.model,
    prompts: prompts.length,
    repeats,
    maxNewTokens: req.maxNewTokens,
    greedy,
    baseline: summaries[baseIdx]!,
    arms: summaries.filter((_, i) => i !== baseIdx),
    skipped,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    elapsedMs: Math.round(performance.now() - t0),
  };
}

/** Sample the process RSS every 20 ms until stopped (between forwards: onnxruntime-node runs on the main thread). */
function startRssSampler(): { stop: () => void; peak: () => number } {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    const r = process.memoryUsage.rss();
    if (r > peak) peak = r;
  }, 20);
  timer.unref?.();
  return {
    stop: () => {
      clearInterval(timer);
      const r = process.memoryUsage.rss();
      if (r > peak) peak = r;
    },
    peak: () => peak,
  };
}

/** Ideal speedup of an arm: E / (1 + draft ms per round / baseline target ms per forward). */
export function idealSpeedup(p: { meanAcceptedLength: number; draftMsPerToken: number }, baselineForwardMs: number): number {
  const e = p.meanAcceptedLength;
  if (!(e > 0) || !(baselineForwardMs > 0)) return 0;
  const draftPerRound = p.draftMsPerToken * e;
  return e / (1 + draftPerRound / baselineForwardMs);
}

/** Time inside vs outside onnxruntime, pooled over runs. */
function overhead(stats: GenerationStats[]) {
  const sum = (f: (s: GenerationStats) => number) => stats.reduce((acc, s) => acc + f(s), 0);
  const tokens = sum((s) => s.newTokens);
  const decode = sum((s) => s.decodeMs);
  const ort = sum((s) => s.onnxRuntimeMs);
  const outside = sum((s) => s.overheadMs);
  return {
    decodeMsPerToken: tokens > 0 ? round4(decode / tokens) : 0,
    onnxRuntimeMsPerToken: tokens > 0 ? round4(ort / tokens) : 0,
    overheadMsPerToken: tokens > 0 ? round4(outside / tokens) : 0,
    overheadShare: decode > 0 ? round4(outside / decode) : 0,
  };
}

function sameTokens(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((t, i) => t === b[i]);
}

/** Pool acceptance statistics over runs. */
function pooled(stats: GenerationStats[]) {
  const sum = (f: (s: GenerationStats) => number) => stats.reduce((acc, s) => acc + f(s), 0);
  const drafted = sum((s) => s.draftedTokens);
  const accepted = sum((s) => s.acceptedTokens);
  const newTokens = sum((s) => s.newTokens);
  const forwards = sum((s) => s.targetForwards);
  // Per position i: weight each run by (rounds x probability of reaching position i).
  const maxLen = Math.max(0, ...stats.map((s) => s.perPositionAcceptance.length));
  const perPosition: number[] = [];
  for (let i = 0; i < maxLen; i++) {
    let w = 0;
    let acc = 0;
    for (const s of stats) {
      if (i >= s.perPositionAcceptance.length) continue;
      const reach = s.perPositionAcceptance.slice(0, i).reduce((p, x) => p * x, 1);
      const wi = s.targetForwards * reach;
      w += wi;
      acc += wi * s.perPositionAcceptance[i]!;
    }
    perPosition.push(w > 0 ? round4(acc / w) : 0);
  }
  return {
    acceptanceRate: drafted > 0 ? round4(accepted / drafted) : 0,
    meanAcceptedLength: forwards > 0 ? round4(newTokens / forwards) : 0,
    perPositionAcceptance: perPosition,
    meanDrafted: forwards > 0 ? round4(drafted / forwards) : 0,
    draftMsPerToken: newTokens > 0 ? round4(sum((s) => s.draftMs) / newTokens) : 0,
    targetMsPerForward: forwards > 0 ? round4(sum((s) => s.targetMs) / forwards) : 0,
    newTokens,
    targetForwards: forwards,
  };
}

/**
 * Baseline vs one or more methods on the same prompts in the same run: speedup with a 95% CI,
 * acceptance, mean accepted length, and whether greedy outputs were identical.
 */
export async function measureSpeedup(req: MeasureSpeedupRequest): Promise<MeasureSpeedupResult> {
  if (!Array.isArray(req.methods) || req.methods.length === 0) throw new InvalidOptionError("Give at least one method to compare with baseline.");
  const arms = req.methods.map((m): ArmSpec => (typeof m === "string" ? { method: m } : m));
  return runArms({ ...req, arms });
}

/** { exitAdapter } when the runs report which early-exit draft ran ("mixed" if they disagree), else {}. */
function exitAdapterOf(stats: GenerationStats[]): { exitAdapter?: "trained" | "untrained" | "mixed" } {
  const seen = new Set(stats.map((s) => s.extra.exitAdapter).filter((x): x is "trained" | "untrained" => x === "trained" || x === "untrained"));
  if (seen.size === 0) return {};
  return { exitAdapter: seen.size === 1 ? [...seen][0]! : "mixed" };
}
