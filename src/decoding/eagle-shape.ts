/**
 * How wide an EAGLE round drafts (the tree's top-k), chosen from measured costs when the caller
 * gives neither treeTopK nor treeTotal (eagle-budget.ts chooses how many drafted nodes are verified).
 *
 * A round of width w and depth D expands w rows per layer through the head (its layer, its LM head
 * over the whole draft vocabulary, a top-k over each row), R(w) = w · (D - 1) rows. On a CPU with a
 * wide vocabulary those rows can cost more than the verification they feed: the wide tree (w = K,
 * the default top-k) accepts a little more than a chain (w = 1) but drafts K times the rows.
 *
 * Estimating a narrower shape from a wide round: a width-w tree is, node for node, what the wide
 * round drafted when every layer keeps only the w best-scored nodes for expansion and each
 * expanded node only its w best children (children are created best first; a node the wide round
 * did not expand ends its branch, so the estimate is a lower bound). For each candidate width w
 * (K, then 4, 2, 1 below it) and each verified size T the round would then expect
 *     E(w, T) = 1 + sum over depths d of min(1, g_d · sum of exp(score) of its depth-d nodes among
 *               the best T nodes of the width-w tree)
 * tokens (g_d: EagleBudget's calibration at depth d; at most one node per depth is accepted) at a cost of
 *     c(w, T) = d(R(w)) + commit ms + v(T + 1),
 * d being the least-squares line through the median drafting ms measured per expanded-row count
 * (fitCostLine) and v the budget's verification line. The width with the best max_T E/c drafts the
 * following rounds (their T is still the budget's choice over what they drafted). A narrower round
 * re-decides among the widths up to its own (it contains those trees too).
 *
 * Probes: the first round drafts wide, the second a chain, so that two row counts are timed; until
 * then, and until the budget has timed two verified sizes, rounds draft wide. A narrower choice
 * holds for `interval` rounds, then one wide round re-estimates; the interval doubles (4 .. 32)
 * while wide probes keep choosing narrower and falls back to 4 when one chooses wide. Every shape is verified the same
 * way, so the output does not depend on the choice (greedy = plain).
 */
import { CostSamples } from "./controllers.js";
import { bestSize } from "./eagle-budget.js";

/** A drafted node as the chooser sees it: its parent (index, -1 = root) and cumulative log-probability. */
export interface ShapeNode {
  parent: number;
  score: number;
}

export interface ShapeCosts {
  /** Drafting ms of a round expanding `rows` rows. */
  draftMs: (rows: number) => number;
  /** Verification ms of T tokens (cur included). */
  verifyMs: (T: number) => number;
  /** Per-round head work outside drafting (the commit run), ms. */
  fixedMs: number;
  /** Calibration factor of path probabilities at a draft depth (EagleBudget.calibrationAt). */
  g: (depth: number) => number;
}

/** Candidate widths for top-k K: K, then the powers of two below it (6 -> 6, 4, 2, 1). */
export function candidateWidths(K: number): number[] {
  const ws = [K];
  for (let w = 1 << Math.floor(Math.log2(Math.max(1, K))); w >= 1; w >>= 1) if (w < K) ws.push(w);
  return ws;
}

/** Scores of the width-w subtree of a drafted tree (`nodes` in creation order, children best first). */
export function subtreeScores(nodes: readonly ShapeNode[], w: number, depth: number): number[] {
  return subtree(nodes, w, depth).map((n) => n.score);
}

/** The width-w subtree's nodes, as scores and depths. */
function subtree(nodes: readonly ShapeNode[], w: number, depth: number): { score: number; depth: number }[] {
  const children = new Map<number, number[]>();
  nodes.forEach((n, i) => {
    const c = children.get(n.parent);
    if (c) c.push(i);
    else children.set(n.parent, [i]);
  });
  let layer = (children.get(-1) ?? []).slice(0, w);
  const out = layer.map((i) => ({ score: nodes[i]!.score, depth: 1 }));
  for (let d = 1; d < depth && layer.length > 0; d++) {
    const expand = [...layer].sort((a, b) => nodes[b]!.score - nodes[a]!.score || a - b).slice(0, w);
    layer = expand.flatMap((i) => (children.get(i) ?? []).slice(0, w));
    for (const i of layer) out.push({ score: nodes[i]!.score, depth: d + 1 });
  }
  return out;
}

/**
 * The width (among `widths`) with the best expected tokens per ms, and its verified size and rate,
 * from a round drafted at the widest of them. `cap`: at most this many nodes verified.
 */
export function bestShape(
  nodes: readonly ShapeNode[],
  widths: readonly number[],
  depth: number,
  cap: number,
  costs: ShapeCosts,
): { width: number; total: number; rate: number } {
  let best = { width: widths[0]!, total: 1, rate: -Infinity };
  for (const w of widths) {
    const sub = subtree(nodes, w, depth).sort((a, b) => b.score - a.score);
    const base = costs.draftMs(w * Math.max(0, depth - 1)) + costs.fixedMs;
    const got = bestSize(sub, Math.min(sub.length, cap), (d) => costs.g(d!), base, costs.verifyMs);
    if (got.rate > best.rate) best = { width: w, ...got };
  }
  return best;
}

export class EagleShape {
  static readonly WINDOW = 9;
  static readonly MIN_INTERVAL = 4;
  static readonly MAX_INTERVAL = 32;
  readonly widths: number[];
  /** Drafting ms by rows expanded per round. */
  private readonly byRows = new CostSamples(EagleShape.WINDOW);
  private width: number;
  private round = 0;
  private nextProbe = 0;
  private interval = EagleShape.MIN_INTERVAL;
  /** Rounds drafted per width (for reports). */
  readonly used = new Map<number, number>();

  constructor(readonly maxWidth: number) {
    this.widths = candidateWidths(maxWidth);
    this.width = maxWidth;
  }

  /** Width to draft this round. */
  next(): number {
    const r = this.round++;
    let w: number;
    if (r === 1 && this.byRows.sizes < 2) w = 1; // time a second row count
    else if (this.draftLine() === undefined || r >= this.nextProbe) w = this.maxWidth;
    else w = this.width;
    this.used.set(w, (this.used.get(w) ?? 0) + 1);
    return w;
  }

  /** The round expanded `rows` rows in `ms` of drafting. */
  timeDraft(rows: number, ms: number): void {
    if (!(ms > 0) || !Number.isFinite(ms)) return;
    this.byRows.add(rows, ms);
  }

  /** Drafting ms per expanded-row count from the fitted line; undefined before two row counts are timed. */
  draftLine(): ((rows: number) => number) | undefined {
    const line = this.byRows.line();
    if (!line) return undefined;
    const { a, b } = line;
    return (rows) => Math.max(0, a + b * rows);
  }

  /**
   * After drafting `nodes` at width `drafted`: choose the width of the following rounds among the
   * widths up to `drafted` (a narrower round can only narrow further; wide probes can widen).
   * `verifyMs`/`g` from the budget (verifyMs undefined before it has timed two sizes: nothing is decided).
   */
  decide(
    nodes: readonly ShapeNode[],
    drafted: number,
    depth: number,
    cap: number,
    fixedMs: number,
    g: (depth: number) => number,
    verifyMs: (T: number) => number | undefined,
  ): number {
    const draftMs = this.draftLine();
    if (!draftMs || verifyMs(1) === undefined) return this.width;
    const widths = this.widths.filter((w) => w <= drafted);
    const { width } = bestShape(nodes, widths, depth, cap, { draftMs, verifyMs: (T) => verifyMs(T)!, fixedMs, g });
    if (width === this.maxWidth) {
      this.width = width;
      this.interval = EagleShape.MIN_INTERVAL;
      return width;
    }
    if (drafted === this.maxWidth) {
      // A wide probe: the next one after `interval` narrower rounds (longer while narrower wins).
      this.interval = this.width < this.maxWidth ? Math.min(EagleShape.MAX_INTERVAL, this.interval * 2) : EagleShape.MIN_INTERVAL;
      this.nextProbe = this.round + this.interval;
    }
    this.width = width;
    return width;
  }

  /** Start counting rounds per width afresh (a new generation; the measurements stay). */
  resetReport(): void {
    this.used.clear();
  }

  /** Rounds per width, widest first, as "6:3 1:40". */
  summary(): string {
    return [...this.used].sort((a, b) => b[0] - a[0]).map(([w, n]) => `${w}:${n}`).join(" ");
  }

  /** Mean drafted width per round. */
  meanWidth(): number {
    let n = 0;
    let s = 0;
    for (const [w, k] of this.used) {
      n += k;
      s += w * k;
    }
    return n > 0 ? s / n : 0;
  }
}
