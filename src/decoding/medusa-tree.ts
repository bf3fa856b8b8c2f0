/**
 * Medusa candidate trees.
 *
 * A tree is a list of paths of per-head ranks, as in the Medusa project's `medusa_choices`:
 * the path [a] is the rank-a token of head 0 (a child of `cur`), [a, b] is the rank-b token of
 * head 1 placed under [a], and so on; depth d uses head d-1. Every prefix of a path must be in the
 * tree. Siblings are distinct ranks of one head, so they carry distinct tokens.
 *
 * Sparse trees are built the way the Medusa paper describes: give each path the probability that
 * all its tokens are right, assuming the heads are independent (product over depths of
 * P(the target token is head d's rank-r token)), and keep the N most probable paths. The
 * per-rank accuracies come from the heads' config.json when `spec-decode train-medusa` measured
 * them, and otherwise from a prior shaped like published Medusa heads.
 */
import { InvalidOptionError } from "../errors.js";
import { OPTION_MAX } from "./limits.js";

/**
 * Nodes in the default tree. Chosen for CPU, where verifying n rows costs roughly 1 + n/25 single-
 * token forwards on a memory-bound model (shared notes: 1, 8, 32 rows ~ 7-12, 10, 19-26 ms), unlike
 * the GPU trees of the Medusa project (63 nodes). Measured with trained heads on the 4-layer
 * 256-hidden demo fixture (16 unseen prompts x 96 tokens, greedy): mean accepted length 2.67 / 2.86
 * / 3.07 / 3.11 / 3.15 for 4 / 8 / 16 / 24 / 40 nodes: past 16 nodes the gain is under 2% while the
 * verification rows keep growing.
 */
export const DEFAULT_TREE_NODES = 16;
/** Ranks considered per head when building sparse trees. */
export const SPARSE_TREE_RANKS = 8;

/**
 * Prior P(target = rank-r token of head d), used when the heads carry no measurement: top-1
 * accuracy falling with depth, and each further rank holding ~40% of the previous one's mass.
 */
export function priorRankAccuracy(numHeads: number, ranks = SPARSE_TREE_RANKS): number[][] {
  const top1 = [0.6, 0.4, 0.3, 0.25, 0.2];
  return Array.from({ length: numHeads }, (_, d) => {
    const a = top1[Math.min(d, top1.length - 1)]! * Math.pow(0.85, Math.max(0, d - top1.length + 1));
    return Array.from({ length: ranks }, (_, r) => a * Math.pow(0.4, r));
  });
}

/** The `nodes` most probable paths under `rankAccuracy` ([head][rank]), prefix-closed. */
export function sparseTree(nodes: number, rankAccuracy: number[][], maxDepth = rankAccuracy.length): number[][] {
  if (!Number.isInteger(nodes) || nodes < 1) throw new InvalidOptionError(`A Medusa tree needs at least 1 node (got ${nodes}).`);
  const depth = Math.min(maxDepth, rankAccuracy.length);
  // Best-first: a path is never more probable than its prefix, so repeatedly taking the most
  // probable path whose parent is already in the tree yields the N most probable paths, prefix-closed.
  const chosen: number[][] = [];
  let frontier: { path: number[]; value: number }[] = [];
  const expand = (path: number[], value: number) => {
    if (path.length >= depth) return;
    const acc = rankAccuracy[path.length]!;
    for (let r = 0; r < acc.length; r++) frontier.push({ path: [...path, r], value: value * Math.min(1, Math.max(0, acc[r]!)) });
  };
  expand([], 1);
  while (chosen.length < nodes && frontier.length > 0) {
    let best = 0;
    for (let i = 1; i < frontier.length; i++) {
      const a = frontier[i]!;
      const b = frontier[best]!;
      if (a.value > b.value || (a.value === b.value && (a.path.length < b.path.length || (a.path.length === b.path.length && comparePaths(a.path, b.path) < 0)))) best = i;
    }
    const next = frontier[best]!;
    frontier[best] = frontier[frontier.length - 1]!;
    frontier.pop();
    chosen.push(next.path);
    expand(next.path, next.value);
  }
  frontier = [];
  return sortPaths(chosen);
}

function comparePaths(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** Sort by depth, then lexicographically (parents before children, Medusa's order). */
export function sortPaths(paths: number[][]): number[][] {
  return [...paths].map((p) => [...p]).sort((a, b) => a.length - b.length || comparePaths(a, b));
}

export interface FlatTree {
  paths: number[][];
  /** parents[i] = index of node i's parent, -1 for children of cur. */
  parents: number[];
  /** Head used by node i (= depth - 1) and the rank it takes from that head. */
  head: number[];
  rank: number[];
  /** Top-k needed per head: max rank used at that depth + 1. */
  topk: number[];
}

/** Validate and flatten a list of paths. */
export function flattenTree(pathsIn: number[][], numHeads: number): FlatTree {
  if (!Array.isArray(pathsIn) || pathsIn.length === 0) {
    throw new InvalidOptionError("A Medusa tree must be a non-empty list of paths like [[0],[1],[0,0]].");
  }
  if (pathsIn.length > OPTION_MAX.medusaTreeNodes) {
    throw new InvalidOptionError(`A Medusa tree may have at most ${OPTION_MAX.medusaTreeNodes} paths (nodes); got ${pathsIn.length}.`);
  }
  const seen = new Set<string>();
  for (const p of pathsIn) {
    if (!Array.isArray(p) || p.length === 0 || p.some((r) => !Number.isInteger(r) || r < 0 || r > 1023)) {
      throw new InvalidOptionError(`Medusa tree path ${JSON.stringify(p)} is invalid: each path is a non-empty list of ranks (integers 0..1023).`);
    }
    if (p.length > numHeads) {
      throw new InvalidOptionError(
        `Medusa tree path ${JSON.stringify(p)} is ${p.length} deep but the heads have only ${numHeads} heads; ` +
          `use paths of at most ${numHeads} ranks.`,
      );
    }
    const key = p.join(",");
    if (seen.has(key)) throw new InvalidOptionError(`Medusa tree path ${JSON.stringify(p)} appears twice.`);
    seen.add(key);
  }
  for (const p of pathsIn) {
    for (let l = 1; l < p.length; l++) {
      if (!seen.has(p.slice(0, l).join(","))) {
        throw new InvalidOptionError(
          `Medusa tree path ${JSON.stringify(p)} needs its prefix ${JSON.stringify(p.slice(0, l))} in the tree too.`,
        );
      }
    }
  }
  const paths = sortPaths(pathsIn);
  const index = new Map(paths.map((p, i) => [p.join(","), i]));
  const topk = new Array<number>(numHeads).fill(0);
  const parents: number[] = [];
  const head: number[] = [];
  const rank: number[] = [];
  for (const p of paths) {
    parents.push(p.length === 1 ? -1 : index.get(p.slice(0, -1).join(","))!);
    head.push(p.length - 1);
    rank.push(p[p.length - 1]!);
    topk[p.length - 1] = Math.max(topk[p.length - 1]!, p[p.length - 1]! + 1);
  }
  return { paths, parents, head, rank, topk };
}

/**
 * Resolve MethodOptions.tree: undefined / "default" (the heads' own `medusa_choices`, else a
 * sparse tree of DEFAULT_TREE_NODES nodes), "chain" (top-1 of every head), "sparse-N" or "N"
 * (a sparse tree of N nodes), or an explicit list of paths.
 */
export function resolveTree(
  spec: string | number[][] | undefined,
  heads: { numHeads: number; choices?: number[][]; rankAccuracy?: number[][] },
): FlatTree {
  const H = heads.numHeads;
  const accuracy = usableAccuracy(heads.rankAccuracy, H) ?? priorRankAccuracy(H);
  if (Array.isArray(spec)) return flattenTree(spec, H);
  const s = (spec ?? "default").trim();
  if (s === "default") {
    if (heads.choices) {
      const usable = heads.choices.filter((p) => p.length <= H);
      if (usable.length > 0) return flattenTree(usable, H);
    }
    return flattenTree(sparseTree(DEFAULT_TREE_NODES, accuracy, H), H);
  }
  if (s === "chain") return flattenTree(Array.from({ length: H }, (_, d) => new Array<number>(d + 1).fill(0)), H);
  const m = /^(?:sparse-)?(\d+)$/.exec(s);
  if (m) {
    const n = Number(m[1]);
    if (n < 1 || n > OPTION_MAX.medusaTreeNodes) throw new InvalidOptionError(`Medusa tree size must be 1..${OPTION_MAX.medusaTreeNodes} nodes (got ${n}).`);
    return flattenTree(sparseTree(n, accuracy, H), H);
  }
  if (s.startsWith("[")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(s);
    } catch (err) {
      throw new InvalidOptionError(`Medusa tree must be a preset or JSON like [[0],[1],[0,0]]: ${(err as Error).message}`);
    }
    return flattenTree(parsed as number[][], H);
  }
  throw new InvalidOptionError(
    `Unknown Medusa tree "${s}". Use "default", "chain", "sparse-N" (N nodes, e.g. sparse-16), or a JSON list of ` +
      `paths like [[0],[1],[0,0]].`,
  );
}

function usableAccuracy(a: number[][] | undefined, H: number): number[][] | undefined {
  if (!a || a.length < H) return undefined;
  const rows = a.slice(0, H);
  const ok = rows.every((r) => Array.isArray(r) && r.length > 0 && r.every((x) => typeof x === "number" && x >= 0 && x <= 1));
  return ok ? rows : undefined;
}
