/**
 * The ideal-speedup model of Leviathan et al. (2023), "Fast Inference from Transformers via
 * Speculative Decoding", used to predict a speedup curve over K from measured quantities:
 *
 *   alpha = probability that the target accepts a drafted token (assumed i.i.d. per position)
 *   c     = cost of one draft step / cost of one target forward
 *   E(K)  = (1 - alpha^(K+1)) / (1 - alpha)      expected tokens per target forward (bonus included)
 *   S(K)  = E(K) / (K*c + 1)                      expected wall-clock speedup over plain decoding
 *
 * The model ignores the extra cost of verifying K+1 tokens instead of 1 (small when the target is
 * memory-bound, not on a tiny CPU model) and all per-round overhead, so it is an upper bound that
 * measured speedups are compared against (efficiency = measured / predicted).
 */

/** E(K): expected new tokens per target forward with K drafted tokens, bonus included. */
export function expectedAcceptedLength(alpha: number, k: number): number {
  if (k <= 0) return 1;
  if (alpha >= 1) return k + 1;
  if (alpha <= 0) return 1;
  return (1 - alpha ** (k + 1)) / (1 - alpha);
}

/** S(K): predicted speedup over plain decoding. */
export function predictedSpeedup(alpha: number, k: number, costRatio: number): number {
  return expectedAcceptedLength(alpha, k) / (k * Math.max(0, costRatio) + 1);
}

/**
 * Invert E(K) = meanAcceptedLength for alpha (bisection; E is increasing in alpha). Returns a value
 * in [0, 0.9999].
 */
export function alphaFromAcceptedLength(meanAcceptedLength: number, k: number): number {
  if (!(k >= 1) || !(meanAcceptedLength > 1)) return 0;
  if (meanAcceptedLength >= k + 1) return 0.9999;
  let lo = 0;
  let hi = 0.9999;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (expectedAcceptedLength(mid, k) < meanAcceptedLength) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** The K that maximizes S(K) for 1 <= K <= maxK. */
export function bestPredictedK(alpha: number, costRatio: number, maxK = 16): number {
  let best = 1;
  for (let k = 2; k <= maxK; k++) if (predictedSpeedup(alpha, k, costRatio) > predictedSpeedup(alpha, best, costRatio)) best = k;
  return best;
}
