import type { Rng } from "./rng.js";

/**
 * Draws an index from `probs` by inverse CDF. The weights need not sum to exactly 1 (the draw is
 * scaled by their actual sum); zero-weight entries are never returned. Throws if there is no mass.
 */
export function sampleFrom(probs: Float32Array, rng: Rng): number {
  const n = probs.length;
  let total = 0;
  for (let i = 0; i < n; i++) total += probs[i]!;
  if (!(total > 0) || !Number.isFinite(total)) {
    throw new RangeError(`sampleFrom: the distribution has no usable mass (sum = ${total}).`);
  }
  const u = rng.next() * total;
  let acc = 0;
  let last = -1;
  for (let i = 0; i < n; i++) {
    const w = probs[i]!;
    if (w > 0) {
      acc += w;
      if (u < acc) return i;
      last = i;
    }
  }
  return last; // rounding put u at the very end: the last token with mass
}

/**
 * The speculative-sampling residual `normalize(max(0, p - q))`, into `out` (default: a new array;
 * may be `p` or `q` itself). If p <= q everywhere (the residual is all zero), returns `p`
 * normalized instead, so that a sample can still be drawn.
 */
export function residualDistribution(p: Float32Array, q: Float32Array, out?: Float32Array): Float32Array {
  const n = p.length;
  if (q.length !== n) throw new RangeError(`residualDistribution: p has length ${n}, q has ${q.length}.`);
  if (out && out.length !== n) throw new RangeError(`residualDistribution: out has length ${out.length}, expected ${n}.`);
  const r = out ?? new Float32Array(n);
  // Measure first, write second, so that `out` may alias p or q.
  let total = 0;
  for (let i = 0; i < n; i++) {
    const d = p[i]! - q[i]!;
    if (d > 0) total += d;
  }
  if (!(total > 0)) {
    // Only reachable when q dominates p (p === q up to rounding): fall back to p itself.
    let pTotal = 0;
    for (let i = 0; i < n; i++) pTotal += p[i]!;
    if (!(pTotal > 0)) throw new RangeError("residualDistribution: p has no mass.");
    const inv = 1 / pTotal;
    for (let i = 0; i < n; i++) r[i] = p[i]! * inv;
    return r;
  }
  const inv = 1 / total;
  for (let i = 0; i < n; i++) {
    const d = p[i]! - q[i]!;
    r[i] = d > 0 ? d * inv : 0;
  }
  return r;
}
