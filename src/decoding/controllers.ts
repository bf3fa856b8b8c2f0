/**
 * How many tokens a draft proposes per round (K). One controller per generation; the draft
 * proposer (draft-model.ts) asks it for K before each round and tells it what happened after.
 *
 *  - fixed:      always K.
 *  - heuristic:  Hugging Face's schedule: K += 2 after a round that accepted every drafted token,
 *                K -= 1 (min 1) otherwise.
 *  - confidence: draft up to K tokens, but stop as soon as the draft's top-1 probability for the
 *                token it just drafted falls below a threshold (that token is still proposed: it
 *                costs no extra draft forward).
 *  - cost:       pick K maximising the expected speedup E(K) / (K·c + 1) (Leviathan et al.) from
 *                the running per-position acceptance a_i (E(K) = 1 + a_1 + a_1·a_2 + … + a_1⋯a_K)
 *                and the measured cost ratio c = draft forward time / target forward time. When no
 *                K ≥ 1 beats plain decoding it proposes nothing (K = 0) and re-probes now and then.
 *
 * See references/draft-model.md ("Parameters": the controllers) and references/tuning-k.md (expected gain).
 */
import { z } from "zod";
import { parseOptions } from "./options.js";

/** Every controller; the adaptive ones are all but "fixed" (what tune sweeps besides fixed K). */
export const CONTROLLER_NAMES = ["fixed", "heuristic", "confidence", "cost"] as const;
export type ControllerName = (typeof CONTROLLER_NAMES)[number];
export const ADAPTIVE_CONTROLLERS = ["heuristic", "confidence", "cost"] as const satisfies readonly ControllerName[];
export type AdaptiveController = (typeof ADAPTIVE_CONTROLLERS)[number];

/** Valid range of K (tokens drafted per round). */
export const K_MIN = 1;
export const K_MAX = 32;

/**
 * What `--k auto` (or no k at all) means: the cost controller (at most 8 tokens).
 * Two measurements (references/draft-model.md):
 *  - Twin benchmark pair (100.7M target, 4.4M draft, c = 0.041, alpha 0.81), `spec-decode tune`,
 *    1 thread, quiet machine, 6 prompts x 96 tokens: fixed K=4 2.63x, heuristic 2.49x,
 *    confidence 0.6 1.74x, cost 2.75x (mean K 5.7). The confidence stop drafted ~1 token per
 *    round: a draft that is right but not confident (random-weight drafts are flat) is cut short.
 *  - Early-exit drafts of an 8-layer fixture (c = 0.30-0.44), modelled from run counts on a busy
 *    machine: confidence 0.6 1.33-1.36x, cost 1.12-1.37x, best fixed K 1.35-1.47x.
 * The cost controller is the only one that adapts to the draft's cost as well as its acceptance,
 * and where a cheap draft makes long chains pay it wins by a wide margin; where it loses, it loses
 * by little. Its weakness is noisy timing on a loaded machine (it then misjudges c); choose
 * `controller: "confidence"` there, or a fixed K from `tune_draft_k`.
 */
export const DEFAULT_CONTROLLER: ControllerName = "cost";
/** K for `controller: "fixed"` without a k, and the starting K of the heuristic schedule. */
export const DEFAULT_K = 3;
/** The largest K the confidence and cost controllers consider when k is not given. */
export const DEFAULT_MAX_K = 8;
/**
 * Default confidence threshold: 0.6 (node-llama-cpp's; Hugging Face uses 0.4). In the measurements
 * above 0.6 had the better mean (1.345x vs 1.30x) and worst case (1.33x vs 1.19x).
 */
export const DEFAULT_CONFIDENCE_THRESHOLD = 0.6;

/** What one round did, from the proposer's point of view. */
export interface RoundOutcome {
  /** Tokens proposed this round (0 for a plain round). */
  drafted: number;
  /** How many of them the target accepted. */
  accepted: number;
  /**
   * Representative draft forwards of this round and their wall time in ms (sampling and cache
   * crops included). A long catch-up after plain rounds is left out; 0 when none is representative.
   */
  draftForwards: number;
  draftMs: number;
  /** Wall time of the round's target forward, ms. */
  targetMs: number;
}

export interface KController {
  readonly name: ControllerName;
  /** Tokens to draft this round, before clamping to the room left (0 = a plain decode round). */
  nextK(): number;
  /** True when the controller wants the draft's top-1 probability of every drafted token. */
  readonly needsConfidence: boolean;
  /** After drafting token `index` (0-based) whose draft probability was `topProb`: stop drafting? */
  shouldStop(index: number, topProb: number): boolean;
  update(o: RoundOutcome): void;
  /** Controller state for stats.extra. */
  summary(): Record<string, number | string | number[]>;
}

export interface ControllerOptions {
  k?: number | "auto";
  controller?: string;
  confidenceThreshold?: number;
}

export interface ResolvedControllerOptions {
  controller: ControllerName;
  /** fixed: K; heuristic: starting K; confidence / cost: largest K. */
  k: number;
  /** True when the user gave k as a number (then it must fit the context, else it is clamped). */
  explicitK: boolean;
  confidenceThreshold: number;
}

/**
 * The options of every method that drafts K tokens a round (draft, early-exit): the schema their
 * MCP arguments, CLI flags and validation come from (see options.ts).
 */
export const CONTROLLER_OPTIONS = {
  k: z
    .union([z.number().int().min(K_MIN).max(K_MAX), z.literal("auto")])
    .optional()
    .describe('Tokens drafted per round, or "auto" (default): the adaptive controller.'),
  controller: z.enum(CONTROLLER_NAMES).optional().describe(`How K is chosen (default ${DEFAULT_CONTROLLER}; fixed with a number k).`),
  confidenceThreshold: z
    .number()
    .min(0)
    .max(1)
    .optional()
    .describe(`confidence controller: stop below this draft prob. (default ${DEFAULT_CONFIDENCE_THRESHOLD}).`),
};

/** Validate k / controller / confidenceThreshold (InvalidOptionError naming the allowed range). */
export function resolveControllerOptions(o: ControllerOptions): ResolvedControllerOptions {
  const { k, controller: c, confidenceThreshold: t } = parseOptions(CONTROLLER_OPTIONS, o);
  const explicitK = typeof k === "number";
  let controller: ControllerName | undefined = c;
  if (controller === undefined) {
    // A threshold alone asks for the confidence stop; a number alone for a fixed K.
    controller = t !== undefined ? "confidence" : explicitK ? "fixed" : DEFAULT_CONTROLLER;
  }
  const fallbackK = controller === "fixed" || controller === "heuristic" ? DEFAULT_K : DEFAULT_MAX_K;
  return {
    controller,
    k: explicitK ? (k as number) : fallbackK,
    explicitK,
    confidenceThreshold: t ?? DEFAULT_CONFIDENCE_THRESHOLD,
  };
}

/** Make a controller; `maxK` (>= 1) caps K whatever the schedule (e.g. by the context left). */
export function createController(o: ResolvedControllerOptions, maxK: number = K_MAX): KController {
  const cap = Math.max(1, Math.min(K_MAX, maxK));
  const k = Math.min(o.k, cap);
  switch (o.controller) {
    case "fixed":
      return new FixedController(k);
    case "heuristic":
      return new HeuristicController(k, cap);
    case "confidence":
      return new ConfidenceController(k, o.confidenceThreshold);
    case "cost":
      return new CostController(k);
  }
}

class FixedController implements KController {
  readonly name = "fixed" as const;
  readonly needsConfidence = false;
  constructor(private readonly k: number) {}
  nextK(): number {
    return this.k;
  }
  shouldStop(): boolean {
    return false;
  }
  update(): void {}
  summary() {
    return { finalK: this.k };
  }
}

/** HF `num_assistant_tokens_schedule="heuristic"`. */
class HeuristicController implements KController {
  readonly name = "heuristic" as const;
  readonly needsConfidence = false;
  private k: number;
  constructor(
    private readonly initial: number,
    private readonly cap: number,
  ) {
    this.k = initial;
  }
  nextK(): number {
    return this.k;
  }
  shouldStop(): boolean {
    return false;
  }
  update(o: RoundOutcome): void {
    if (o.drafted === 0) return;
    this.k = o.accepted === o.drafted ? Math.min(this.cap, this.k + 2) : Math.max(1, this.k - 1);
  }
  summary() {
    return { initialK: this.initial, finalK: this.k };
  }
}

/** Draft up to K; stop when the draft is unsure (HF assistant_confidence_threshold, llama.cpp --draft-p-min). */
class ConfidenceController implements KController {
  readonly name = "confidence" as const;
  readonly needsConfidence = true;
  private stops = 0;
  constructor(
    private readonly maxK: number,
    private readonly threshold: number,
  ) {}
  nextK(): number {
    return this.maxK;
  }
  shouldStop(_index: number, topProb: number): boolean {
    if (topProb < this.threshold) {
      this.stops++;
      return true;
    }
    return false;
  }
  update(): void {}
  summary() {
    return { maxK: this.maxK, confidenceThreshold: this.threshold, confidenceStops: this.stops, finalK: this.maxK };
  }
}

/**
 * Expected-speedup controller. Per-position acceptance is kept as exponentially decayed counts
 * (recent rounds weigh more), each position's estimate shrunk towards the previous position's
 * (so positions never tried inherit the deepest estimate we have). c is the ratio of the medians
 * of the recent draft forward times and target verification times (medians, because a busy
 * machine produces 10x spikes that would mislead a mean). The first WARMUP rounds draft startK
 * tokens whatever the estimates, so that one slow first forward cannot switch drafting off.
 */
export class CostController implements KController {
  readonly name = "cost" as const;
  readonly needsConfidence = false;
  /** Weight of past observations per new one. */
  static readonly DECAY = 0.95;
  /** Pseudo-observations pulling a_i towards a_{i-1} (a_0 towards PRIOR). */
  static readonly PRIOR_WEIGHT = 1;
  static readonly PRIOR = 0.5;
  /** Timings kept (the most recent ones); c uses their medians, robust to scheduling spikes. */
  static readonly TIME_WINDOW = 15;
  /** Rounds timed before the controller may decide that drafting does not pay. */
  static readonly WARMUP = 3;
  /** Plain rounds between two probes once speculation stopped paying. */
  static readonly PROBE_EVERY = 16;
  /** Probe K, also the K of the first rounds (before enough is measured). */
  private readonly startK: number;
  private readonly attempts: number[];
  private readonly accepts: number[];
  private readonly draftTimes: number[] = [];
  private readonly targetTimes: number[] = [];
  /** Target forward times by the number of tokens verified (T = drafted + 1): the verify cost curve. */
  private readonly targetByT = new CostSamples(CostController.TIME_WINDOW);
  private timed = 0;
  private plainStreak = 0;
  private plainRounds = 0;
  private probes = 0;
  private lastK: number;

  constructor(private readonly maxK: number) {
    this.attempts = new Array<number>(maxK).fill(0);
    this.accepts = new Array<number>(maxK).fill(0);
    this.startK = Math.min(maxK, 2);
    this.lastK = this.startK;
  }

  /** Running conditional acceptance per position (a_1..a_maxK). */
  acceptance(): number[] {
    const out: number[] = [];
    let prev = CostController.PRIOR;
    for (let i = 0; i < this.maxK; i++) {
      const w = CostController.PRIOR_WEIGHT;
      const a = (this.accepts[i]! + w * prev) / (this.attempts[i]! + w);
      out.push(a);
      prev = a;
    }
    return out;
  }

  /** Measured draft/target cost ratio: median draft forward / median target forward (NaN before any). */
  costRatio(): number {
    if (this.draftTimes.length === 0 || this.targetTimes.length === 0) return Number.NaN;
    const t = median(this.targetTimes);
    return t > 0 ? median(this.draftTimes) / t : Number.NaN;
  }

  /**
   * Measured cost of a target forward over T tokens relative to one token, v(T) / v(1), from a
   * least-squares line v(T) = a + b·T through the medians of each T seen (b >= 0). Verification
   * is nearly flat in T for a memory-bound float model but not for int4 weights (compute-bound
   * sooner: verifying 8 tokens can cost 3x one), so K must be priced with the curve of the model
   * that runs. With fewer than two distinct T measured, the curve is flat (1), as before.
   */
  verifyCost(T: number): number {
    const line = this.targetByT.line();
    if (!line) return 1;
    const { a, b } = line;
    const v1 = a + b;
    if (!(v1 > 0)) return 1;
    return Math.max(1, (a + b * T) / v1);
  }

  /** The measured verify cost curve v(T)/v(1) for T = 1..maxK+1 (for reports). */
  verifyCurve(): number[] {
    return Array.from({ length: this.maxK + 1 }, (_, i) => Math.round(this.verifyCost(i + 1) * 1000) / 1000);
  }

  /** Predicted speedup E(K) / (K·c + v(K+1)/v(1)) for K = 0..maxK (c relative to a one-token target forward). */
  predicted(): number[] {
    const a = this.acceptance();
    const c = this.costRatio();
    const flat = this.targetByT.sizes < 2;
    // c was measured against the average verify forward; rescale it to a one-token forward.
    const c1 = flat ? c : c * this.verifyCost(this.targetByT.meanSize());
    const out = [1];
    let e = 1;
    let prod = 1;
    for (let k = 1; k <= this.maxK; k++) {
      prod *= a[k - 1]!;
      e += prod;
      out.push(e / (k * c1 + this.verifyCost(k + 1)));
    }
    return out;
  }

  nextK(): number {
    if (this.timed < CostController.WARMUP) return (this.lastK = this.startK);
    const s = this.predicted();
    let best = 1;
    for (let k = 2; k <= this.maxK; k++) if (s[k]! > s[best]!) best = k;
    if (s[best]! > 1) {
      this.plainStreak = 0;
      return (this.lastK = best);
    }
    // Speculation does not pay at the current estimates: decode plainly, but probe now and then
    // (the text may get easier, or the timings may have been disturbed).
    if (this.plainStreak >= CostController.PROBE_EVERY) {
      this.plainStreak = 0;
      this.probes++;
      return (this.lastK = Math.max(best, this.startK));
    }
    this.plainStreak++;
    this.plainRounds++;
    return (this.lastK = 0);
  }

  shouldStop(): boolean {
    return false;
  }

  update(o: RoundOutcome): void {
    if (o.targetMs > 0) this.targetByT.add(o.drafted + 1, o.targetMs);
    if (o.drafted === 0) return;
    const d = CostController.DECAY;
    for (let i = 0; i < o.drafted && i < this.maxK; i++) {
      this.attempts[i] = this.attempts[i]! * d + 1;
      this.accepts[i] = this.accepts[i]! * d + (i < o.accepted ? 1 : 0);
      if (i >= o.accepted) break;
    }
    if (o.targetMs > 0) push(this.targetTimes, o.targetMs);
    if (o.draftForwards > 0) push(this.draftTimes, o.draftMs / o.draftForwards);
    if (this.draftTimes.length > 0 && this.targetTimes.length > 0) this.timed++;
  }

  summary() {
    const c = this.costRatio();
    return {
      maxK: this.maxK,
      finalK: this.lastK,
      costRatio: Number.isFinite(c) ? Math.round(c * 10000) / 10000 : 0,
      verifyCost: this.verifyCurve(),
      plainRounds: this.plainRounds,
      probes: this.probes,
    };
  }
}

function push(window: number[], x: number): void {
  window.push(x);
  if (window.length > CostController.TIME_WINDOW) window.shift();
}

/** Median of a non-empty list (NaN for an empty one). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Timings kept per size (tokens verified, head rows drafted, a draft shape): the most recent
 * `window` of each, their medians (robust to scheduling spikes), and the least-squares line through
 * those medians (fitCostLine). The cost controller, the EAGLE budget and the EAGLE width chooser
 * each keep theirs in one.
 */
export class CostSamples {
  private readonly bySize = new Map<number, number[]>();
  constructor(readonly window: number) {}

  add(size: number, ms: number): void {
    const w = this.bySize.get(size) ?? [];
    w.push(ms);
    if (w.length > this.window) w.shift();
    this.bySize.set(size, w);
  }

  /** How many different sizes have been timed. */
  get sizes(): number {
    return this.bySize.size;
  }

  /** Median of the timings kept for `size` (NaN before any). */
  medianAt(size: number): number {
    return median(this.bySize.get(size) ?? []);
  }

  /** Mean size over the timings kept (1 before any). */
  meanSize(): number {
    let n = 0;
    let s = 0;
    for (const [size, xs] of this.bySize) {
      n += xs.length;
      s += size * xs.length;
    }
    return n > 0 ? s / n : 1;
  }

  /** The line ms = a + b · size through the medians of each size (b >= 0); undefined before two sizes are timed. */
  line(): { a: number; b: number } | undefined {
    const pts = [...this.bySize].map(([size, xs]) => [size, median(xs)] as const);
    return pts.length < 2 ? undefined : fitCostLine(pts);
  }
}

/**
 * Least-squares line v = a + b * T through cost points [T, v], the slope clamped at >= 0 (verifying
 * more tokens never costs less). Used by the cost controller and by tune's prediction.
 */
export function fitCostLine(pts: readonly (readonly [number, number])[]): { a: number; b: number } {
  const n = pts.length;
  const mt = pts.reduce((s, [t]) => s + t, 0) / n;
  const mv = pts.reduce((s, [, v]) => s + v, 0) / n;
  let num = 0;
  let den = 0;
  for (const [t, v] of pts) {
    num += (t - mt) * (v - mv);
    den += (t - mt) ** 2;
  }
  const b = den > 0 ? Math.max(0, num / den) : 0;
  return { a: mv - b * mt, b };
}
