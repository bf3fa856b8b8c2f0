/**
 * Tuning K: the K sweep behind the MCP tool `tune_draft_k` and `spec-decode tune`. The sweep's arms
 * (fixed K, then the adaptive controllers) run in measure.ts's `runArms`, interleaved with plain
 * decoding; this file fits the per-token acceptance alpha and the cost ratio c, predicts the curve
 * (ideal.ts), and gives the verdict (verdict.ts), the recommended setting as generate_speculative
 * arguments, and its peer equivalents (peers.ts).
 */
import { fitCostLine, K_MAX, K_MIN, resolveControllerOptions, type AdaptiveController } from "../decoding/controllers.js";
import type { MethodOptions } from "../decoding/methods.js";
import { InvalidOptionError } from "../errors.js";
import { alphaFromAcceptedLength, bestPredictedK, expectedAcceptedLength, predictedSpeedup } from "./ideal.js";
import { runArms, type ArmSpec, type ArmSummary, type BenchCommon, type MeasureSpeedupResult } from "./measure.js";
import { peerSettings, type Controller, type PeerSettings } from "./peers.js";
import { median, round4, type RatioSummary } from "./statistics.js";
import { speedupVerdict, type Verdict } from "./verdict.js";

export const DEFAULT_TUNE_KS = [1, 2, 3, 4, 6, 8];
export { ADAPTIVE_CONTROLLERS, type AdaptiveController } from "../decoding/controllers.js";

export interface TuneDraftKRequest extends BenchCommon {
  /** "draft" (needs `draft`) or "early-exit" (`exitLayer`, default the smallest built). Default: draft if given, else early-exit. */
  method?: "draft" | "early-exit";
  exitLayer?: number;
  /** early-exit: true requires the trained exit adapter, false uses the untrained exit (default: the adapter when one exists). */
  adapter?: boolean;
  /** Fixed K values to sweep (default DEFAULT_TUNE_KS). */
  ks?: number[];
  /** Adaptive controllers to try with k = "auto" (default: none). */
  controllers?: AdaptiveController[];
  confidenceThreshold?: number;
}

/** One arm of the sweep: its measured figures (as measure reports them; meanDrafted is the mean K per round) and the fit's. */
export interface TunePoint
  extends Pick<ArmSummary, "label" | "medianTokensPerSecond" | "speedup" | "acceptanceRate" | "meanAcceptedLength" | "perPositionAcceptance" | "meanDrafted" | "greedyIdentical"> {
  /** Fixed K, or null for adaptive controllers. */
  k: number | null;
  controller: Controller;
  /** Measured cost of this arm's verify forward (K+1 tokens) / a plain one-token forward: the verify cost curve. */
  verifyCost: number;
  /** Leviathan et al.'s S(K) = E(K) / (K·c + verify cost) from the fitted alpha, c and the measured verify cost (fixed K only). */
  predictedSpeedup: number | null;
  /** measured / predicted (fixed K only). */
  efficiency: number | null;
}

export interface TuneDraftKResult {
  method: "draft" | "early-exit";
  exitLayer?: number;
  baselineTokensPerSecond: number;
  points: TunePoint[];
  /** Fitted acceptance probability per drafted token (inverted from E(K) on the fixed-K runs). */
  alpha: number;
  /** Draft step cost / target forward cost, measured. */
  costRatio: number;
  /** S(K), E(K) and the verify cost v(K+1)/v(1) (measured, or the fitted line) for K = 1..max(8, largest K swept). */
  predictedCurve: { k: number; expectedAcceptedLength: number; predictedSpeedup: number; verifyCost: number }[];
  /** K that maximizes the predicted curve. */
  predictedBestK: number;
  /** The fastest measured setting (by point estimate), whether or not it beats plain decoding. */
  best: { label: string; k: number | null; controller: Controller; speedup: number; reason: string };
  /**
   * Whether to speculate here (verdict.ts). Policy: the fastest setting is recommended when its
   * point estimate beats plain decoding (> 1x) and its greedy output matched; the verdict on it is
   * "speculation helps here" when its 95% interval is above 1, else an honest "no clear gain". When
   * no setting's point estimate beats plain decoding: "use plain decoding", no recommendation.
   */
  verdict: Verdict;
  /** The recommended setting with generate_speculative's argument names (method, k, methodOptions), or null. */
  recommended: RecommendedSetting | null;
  /** Peer-stack settings for the recommended setting only (null when nothing is recommended). */
  equivalents: PeerSettings | null;
  measurement: MeasureSpeedupResult;
}

/** A tuned setting as generate_speculative arguments: spread it into a call as is. */
export interface RecommendedSetting {
  method: "draft" | "early-exit";
  k: number | "auto";
  methodOptions: MethodOptions;
}

/**
 * Sweep fixed K (and optionally the adaptive controllers) for the draft or early-exit method;
 * report measured and predicted speedups, the best setting, and the same setting for vLLM,
 * llama.cpp and HF transformers.
 */
export async function tuneDraftK(req: TuneDraftKRequest): Promise<TuneDraftKResult> {
  const method = req.method ?? (req.draft ? "draft" : "early-exit");
  if (method === "draft" && !req.draft) throw new InvalidOptionError('method "draft" needs a draft model directory (draft).');
  if (method === "draft" && req.adapter !== undefined) throw new InvalidOptionError('adapter chooses the early-exit draft; give it with method "early-exit" / exitLayer, not with a draft model.');
  if (method === "draft" && req.exitLayer !== undefined) throw new InvalidOptionError('exitLayer picks the early-exit draft; give it with method "early-exit", not with a draft model.');
  const ks = [...new Set(req.ks ?? DEFAULT_TUNE_KS)].sort((a, b) => a - b);
  if (ks.length === 0 && (req.controllers ?? []).length === 0) throw new InvalidOptionError("Give at least one K (ks) or one controller.");
  for (const k of ks) {
    if (!Number.isInteger(k) || k < K_MIN || k > K_MAX) throw new InvalidOptionError(`Each K must be an integer from ${K_MIN} to ${K_MAX} (got ${k}).`);
  }
  const arms = tuneArms({ method, ks, exitLayer: req.exitLayer, adapter: req.adapter, controllers: req.controllers, confidenceThreshold: req.confidenceThreshold });
  const m = await runArms({ ...req, draft: method === "draft" ? req.draft : undefined, arms });
  return summarizeTune(m, { method, exitLayer: req.exitLayer, ks });
}

/** The arms of a K sweep: fixed K labelled "K=<k>" (or `labelPrefix`K=<k>), then the controllers. */
export function tuneArms(opts: {
  method: "draft" | "early-exit";
  ks: number[];
  exitLayer?: number;
  /** early-exit only: the methodOptions.adapter of every arm. */
  adapter?: boolean;
  controllers?: AdaptiveController[];
  confidenceThreshold?: number;
  labelPrefix?: string;
}): ArmSpec[] {
  const base: MethodOptions =
    opts.method === "early-exit"
      ? { ...(opts.exitLayer !== undefined ? { exitLayer: opts.exitLayer } : {}), ...(opts.adapter !== undefined ? { adapter: opts.adapter } : {}) }
      : {};
  const pre = opts.labelPrefix ?? "";
  return [
    ...opts.ks.map((k): ArmSpec => ({ label: `${pre}K=${k}`, method: opts.method, methodOptions: { ...base, k, controller: "fixed" } })),
    ...(opts.controllers ?? []).map(
      (c): ArmSpec => ({
        label: `${pre}${c}`,
        method: opts.method,
        methodOptions: { ...base, k: "auto", controller: c, ...(c === "confidence" && opts.confidenceThreshold !== undefined ? { confidenceThreshold: opts.confidenceThreshold } : {}) },
      }),
    ),
  ];
}

/**
 * The tune summary (fitted alpha and c, predicted curve, best setting, peer equivalents) of a
 * measurement whose arms are a K sweep of one method (other arms, e.g. other methods measured in
 * the same interleaved run, are ignored).
 */
export function summarizeTune(
  measured: MeasureSpeedupResult,
  opts: { method: "draft" | "early-exit"; exitLayer?: number; ks: number[] },
): TuneDraftKResult {
  const { method } = opts;
  const ks = opts.ks;
  const m: MeasureSpeedupResult = { ...measured, arms: measured.arms.filter((a) => a.method === method && a.methodOptions.controller !== undefined) };
  if (m.arms.length === 0) throw new InvalidOptionError(`No ${method} K-sweep arm was measured (all skipped?).`);
  const req = { exitLayer: opts.exitLayer };

  const fixed = m.arms.filter((a) => a.methodOptions.controller === "fixed");
  const alphas = fixed.map((a) => alphaFromAcceptedLength(a.meanAcceptedLength, a.methodOptions.k as number)).filter((x) => x > 0);
  const alpha = alphas.length > 0 ? round4(median(alphas)) : 0;
  // c: draft time per drafted token over the target's time per plain-decoding forward.
  const targetCost = m.baseline.targetMsPerForward;
  const costs = fixed
    .filter((a) => a.meanDrafted > 0 && targetCost > 0)
    .map((a) => (a.draftMsPerToken * a.meanAcceptedLength) / a.meanDrafted / targetCost);
  const costRatio = costs.length > 0 ? round4(median(costs)) : 0;
  const maxK = Math.max(8, ...ks);
  // The verify cost curve v(K+1)/v(1), measured on the fixed-K arms; a least-squares line (slope >= 0)
  // prices the K values not swept. Flat (1) for a memory-bound float target, steep for int4 weights.
  const vPts = fixed.filter((a) => a.verifyCostRatio > 0).map((a) => [(a.methodOptions.k as number) + 1, a.verifyCostRatio] as const);
  const vLine = (T: number): number => {
    if (vPts.length === 0) return 1;
    if (vPts.length === 1) return Math.max(1, vPts[0]![1]);
    const { a, b } = fitCostLine([[1, 1], ...vPts]);
    return Math.max(1, a + b * T);
  };
  const verifyAt = (k: number): number => vPts.find(([t]) => t === k + 1)?.[1] ?? vLine(k + 1);
  const predictedCurve = Array.from({ length: maxK }, (_, i) => ({
    k: i + 1,
    expectedAcceptedLength: round4(expectedAcceptedLength(alpha, i + 1)),
    predictedSpeedup: round4(predictedSpeedup(alpha, i + 1, costRatio) * ((1 + (i + 1) * costRatio) / ((i + 1) * costRatio + verifyAt(i + 1)))),
    verifyCost: round4(verifyAt(i + 1)),
  }));
  const points: TunePoint[] = m.arms.map((a) => {
    const k = a.methodOptions.controller === "fixed" ? (a.methodOptions.k as number) : null;
    const pred = k !== null ? predictedCurve.find((p) => p.k === k)?.predictedSpeedup ?? null : null;
    return {
      label: a.label,
      k,
      controller: (a.methodOptions.controller ?? "fixed") as Controller,
      medianTokensPerSecond: a.medianTokensPerSecond,
      speedup: a.speedup,
      acceptanceRate: a.acceptanceRate,
      meanAcceptedLength: a.meanAcceptedLength,
      perPositionAcceptance: a.perPositionAcceptance,
      meanDrafted: a.meanDrafted,
      verifyCost: a.verifyCostRatio,
      predictedSpeedup: pred,
      efficiency: pred && Number.isFinite(a.speedup.mean) ? round4(a.speedup.mean / pred) : null,
      greedyIdentical: a.greedyIdentical,
    };
  });
  const ranked = [...points].sort((x, y) => (y.speedup.mean || 0) - (x.speedup.mean || 0));
  const top = ranked[0]!;
  const topArm = m.arms.find((a) => a.label === top.label)!;
  const bestFixed = ranked.find((p) => p.k !== null);
  const x = (v: number) => `${v.toFixed(2)}x`;
  const reason =
    (top.k !== null
      ? `K=${top.k} had the highest measured speedup (${x(top.speedup.mean)}${ciText(top.speedup)})`
      : `the ${top.controller} controller (mean K ${top.meanDrafted.toFixed(1)}) beat the best fixed K${bestFixed ? ` (K=${bestFixed.k}, ${x(bestFixed.speedup.mean)})` : ""} with ${x(top.speedup.mean)}${ciText(top.speedup)}`) +
    ` over ${m.prompts} prompt(s) x ${m.repeats} repeat(s).`;
  const { verdict, recommended } = tuneRecommendation(method, top, topArm.methodOptions);
  const recommend = recommended !== null;
  const resolved = resolveControllerOptions(topArm.methodOptions);
  const equivalents = !recommend ? null : peerSettings({
    method,
    controller: top.controller,
    k: resolved.k,
    meanK: top.meanDrafted,
    confidenceThreshold: resolved.confidenceThreshold,
    exitLayer: req.exitLayer,
  });
  return {
    method,
    exitLayer: method === "early-exit" ? req.exitLayer : undefined,
    baselineTokensPerSecond: m.baseline.medianTokensPerSecond,
    points,
    alpha,
    costRatio,
    predictedCurve,
    predictedBestK: vPts.length > 0 ? predictedCurve.reduce((b, p) => (p.predictedSpeedup > b.predictedSpeedup ? p : b)).k : bestPredictedK(alpha, costRatio, maxK),
    best: { label: top.label, k: top.k, controller: top.controller, speedup: top.speedup.mean, reason },
    verdict,
    recommended,
    equivalents,
    measurement: m,
  };
}

/**
 * The verdict and recommended setting of a K sweep from its fastest point (see TuneDraftKResult.verdict):
 * recommended when its speedup's point estimate beats plain decoding and its greedy output matched.
 */
export function tuneRecommendation(
  method: "draft" | "early-exit",
  top: Pick<TunePoint, "label" | "speedup" | "greedyIdentical">,
  options: MethodOptions,
): { verdict: Verdict; recommended: RecommendedSetting | null } {
  if (top.speedup.mean > 1 && top.greedyIdentical !== false) {
    const { k, ...methodOptions } = options;
    return { verdict: speedupVerdict(top.speedup), recommended: { method, k: (k ?? "auto") as number | "auto", methodOptions } };
  }
  const text =
    `use plain decoding: no setting beat plain decoding (fastest: ${top.label} at ${top.speedup.mean.toFixed(2)}x${ciText(top.speedup)}` +
    `${top.greedyIdentical === false ? ", and its output differed from plain decoding" : ""})`;
  return { verdict: { verdict: "use plain decoding", text }, recommended: null };
}

function ciText(s: RatioSummary): string {
  return s.low !== null && s.high !== null ? `, 95% CI ${s.low.toFixed(2)}-${s.high.toFixed(2)}` : "";
}
