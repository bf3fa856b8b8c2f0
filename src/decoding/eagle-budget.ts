/**
 * How many drafted nodes an EAGLE round verifies, chosen from what verification costs on this
 * machine (treeTotal "auto", the default).
 *
 * EAGLE-2 verifies a fixed number of the best-scored nodes (total_token 60 on GPUs). On a CPU the
 * cost of a target forward over T tokens grows with T at a rate that depends on the model and its
 * weight format (nearly flat for memory-bound float weights, steep for int4: see
 * CostController.verifyCost and scripts/verify-cost.mjs), so a fixed total is too many on one
 * machine and too few on another. Each round, after drafting, the nodes are ranked by cumulative
 * draft confidence; verifying the best T of them is expected to accept about
 *     E(T) = 1 + sum_d min(1, g_d · sum of exp(score_i) over the depth-d nodes among the best T)
 * tokens (bonus included; exp(score) is the head's probability of the whole path, as in EAGLE-2's
 * reranking; at most one node per depth is accepted). g_d calibrates it per draft depth d against
 * what rounds actually accepted: rounds that accepted d or more tokens / sum of exp(score) of the
 * verified depth-d nodes, decayed (a head is often under-confident deep in the tree in a way one
 * factor cannot fix); a depth not yet verified in two rounds borrows the deepest measured depth's
 * factor above it (else g, one factor over all nodes). The round costs
 *     draft ms + v(T + 1) ms,
 * (draft ms: the round's drafting plus the head's run over the previous round's committed rows),
 * v being the least-squares line through the median verification times measured per T
 * (fitCostLine, as the cost controller does for K). The round verifies the T that maximises
 * E(T) / cost(T). Until two different sizes have been timed, rounds probe a few sizes. eagle.ts
 * keeps one budget per (head, target, settings) across generations, so only the first probes.
 */
import { CostSamples } from "./controllers.js";

/** Largest tree verified in auto mode (EAGLE-2's GPU default is 60). */
export const EAGLE_AUTO_MAX_TOTAL = 64;

export class EagleBudget {
  /** Rounds used to time a spread of sizes before the fitted line decides. */
  static readonly PROBES = [1, 1 / 2, 1 / 4, 1 / 8] as const;
  /** Timings kept per verified size (the most recent). */
  static readonly WINDOW = 9;
  /** Weight of past calibration per new round. */
  static readonly DECAY = 0.9;
  /** Bound on a per-depth calibration factor (the nodes of one depth still count for at most one token together). */
  static readonly MAX_DEPTH_GAIN = 1e4;
  /** Verification ms by tokens verified (T = nodes + 1). */
  private readonly byT = new CostSamples(EagleBudget.WINDOW);
  /** Drafting ms per round, per draft shape (the tree's width: eagle-shape.ts). */
  private readonly draftMs = new CostSamples(EagleBudget.WINDOW);
  private predicted = 0;
  private observed = 0;
  /** Per depth d (index d - 1): predicted sum(exp(score)) of verified nodes at depth d, and rounds that accepted >= d. */
  private readonly predictedAt: number[] = [];
  private readonly observedAt: number[] = [];
  /** Per depth: rounds (decayed) that verified a node at that depth. */
  private readonly roundsAt: number[] = [];
  private round = 0;
  private chosenSum = 0;
  private chosenRounds = 0;

  constructor(readonly maxTotal: number) {}

  /** Calibration factor g: accepted tokens (bonus excluded) per unit of predicted path probability. */
  calibration(): number {
    if (this.predicted < 1) return 1;
    return Math.min(4, Math.max(0.1, this.observed / this.predicted));
  }

  /**
   * Calibration at draft depth d: accepted tokens at depth d per unit of predicted path probability
   * there (heads are often under-confident deep in the tree, which one factor cannot fix). A depth
   * that fewer than two rounds have verified borrows the factor of the deepest measured depth
   * above it (else the overall factor), so deeper nodes get verified and measured.
   */
  calibrationAt(d: number): number {
    for (let k = d; k >= 1; k--) {
      const p = this.predictedAt[k - 1] ?? 0;
      if ((this.roundsAt[k - 1] ?? 0) < 2 || !(p > 0)) continue;
      return Math.min(EagleBudget.MAX_DEPTH_GAIN, Math.max(0.1, (this.observedAt[k - 1] ?? 0) / p));
    }
    return this.calibration();
  }

  /** Verification ms for T tokens (cur included) from the fitted line; undefined before two sizes are timed. */
  verifyMs(T: number): number | undefined {
    const line = this.byT.line();
    return line && Math.max(1e-6, line.a + line.b * T);
  }

  /** The measured curve v(T)/v(1) at the given T (for reports); [] before two sizes are timed. */
  verifyCurve(Ts: number[]): number[] {
    const v1 = this.verifyMs(1);
    if (v1 === undefined) return [];
    return Ts.map((T) => Math.round((this.verifyMs(T)! / v1) * 1000) / 1000);
  }

  /**
   * How many of the ranked nodes to verify this round. `scores`: cumulative log-probabilities,
   * best first; `draftMs`: this round's drafting time; `cap`: at most this many (room left);
   * `shape`: the round's draft shape (drafting times are kept per shape); `depths`: the nodes'
   * depths (calibrated per depth), else the overall factor.
   */
  choose(scores: readonly number[], draftMs: number, cap: number, shape = 0, depths?: readonly number[]): number {
    const n = Math.min(scores.length, cap, this.maxTotal);
    if (n <= 1) return this.note(Math.max(0, n));
    this.draftMs.add(shape, draftMs);
    if (this.round < EagleBudget.PROBES.length || this.verifyMs(1) === undefined) {
      const f = EagleBudget.PROBES[this.round % EagleBudget.PROBES.length]!;
      this.round++;
      return this.note(Math.max(1, Math.min(n, Math.round(this.maxTotal * f))));
    }
    this.round++;
    const g = this.calibration();
    const nodes = scores.map((score, i) => ({ score, depth: depths?.[i] }));
    const gain = (d: number | undefined) => (d === undefined ? g : this.calibrationAt(d));
    return this.note(bestSize(nodes, n, gain, this.draftMs.medianAt(shape), (T) => this.verifyMs(T)!).total);
  }

  private note(T: number): number {
    this.chosenSum += T;
    this.chosenRounds++;
    return T;
  }

  /**
   * After the round: `verified` nodes took `ms` to verify (cur included: T = verified + 1), the
   * verified nodes' scores predicted sum(exp(score)) accepted tokens, `accepted` were;
   * `predictedAt[d - 1]`: the part of `predicted` at depth d.
   */
  observe(verified: number, ms: number, predicted: number, accepted: number, predictedAt?: readonly number[]): void {
    if (ms > 0 && Number.isFinite(ms)) {
      this.byT.add(verified + 1, ms);
    }
    if (verified > 0) {
      this.predicted = this.predicted * EagleBudget.DECAY + predicted;
      this.observed = this.observed * EagleBudget.DECAY + accepted;
    }
    predictedAt?.forEach((p, i) => {
      if (!(p > 0)) return;
      this.predictedAt[i] = (this.predictedAt[i] ?? 0) * EagleBudget.DECAY + p;
      this.observedAt[i] = (this.observedAt[i] ?? 0) * EagleBudget.DECAY + (accepted > i ? 1 : 0);
      this.roundsAt[i] = (this.roundsAt[i] ?? 0) * EagleBudget.DECAY + 1;
    });
  }

  /** Start counting meanTotal afresh (a new generation; the measurements stay). */
  resetReport(): void {
    this.chosenSum = 0;
    this.chosenRounds = 0;
  }

  /** Mean nodes verified per round since resetReport. */
  meanTotal(): number {
    return this.chosenRounds > 0 ? this.chosenSum / this.chosenRounds : 0;
  }
}

/**
 * How many of `nodes` (best first; at most `n`) to verify: the T that maximises
 *     E(T) / (fixedMs + verifyMs(T + 1)),  E(T) = 1 + sum over the best T of gain(depth) · exp(score)
 * (nodes with a depth add at most one token per depth together), and that rate. Used by the
 * budget (one round's nodes) and by eagle-shape.ts (each candidate width's subtree).
 */
export function bestSize(
  nodes: readonly { score: number; depth?: number }[],
  n: number,
  gain: (depth: number | undefined) => number,
  fixedMs: number,
  verifyMs: (T: number) => number,
): { total: number; rate: number } {
  let best = { total: 1, rate: -Infinity };
  let e = 1;
  const atDepth = new DepthSum();
  for (let T = 1; T <= n; T++) {
    const { score, depth } = nodes[T - 1]!;
    const x = gain(depth) * Math.exp(score);
    e += depth === undefined ? x : atDepth.add(depth, x);
    const rate = e / Math.max(1e-6, fixedMs + verifyMs(T + 1));
    if (rate > best.rate) best = { total: T, rate };
  }
  return best;
}

/** Expected tokens added per depth, each depth at most one token (one node per depth is accepted). */
export class DepthSum {
  private readonly sums: number[] = [];
  /** Add `x` expected tokens at depth d; returns what was added after the bound. */
  add(d: number, x: number): number {
    const had = this.sums[d] ?? 0;
    const now = Math.min(1, had + x);
    this.sums[d] = now;
    return now - had;
  }
}
