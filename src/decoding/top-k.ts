/** Top-k selection over a logits row (Medusa heads, EAGLE draft trees). */

/**
 * Indices of the k largest values of `row[0, n)`, best first (ties: lower id first).
 * One pass with a small sorted buffer: O(n) compares for small k.
 */
export function topK(row: Float32Array, k: number, n = row.length): number[] {
  const kk = Math.min(k, n);
  const ids: number[] = [];
  const vals: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = row[i]!;
    if (!(v === v)) continue; // NaN
    if (ids.length === kk && !(v > vals[kk - 1]!)) continue;
    let j = ids.length === kk ? kk - 1 : ids.length;
    while (j > 0 && v > vals[j - 1]!) {
      if (j < kk) {
        vals[j] = vals[j - 1]!;
        ids[j] = ids[j - 1]!;
      }
      j--;
    }
    vals[j] = v;
    ids[j] = i;
    if (ids.length > kk) {
      ids.length = kk;
      vals.length = kk;
    }
  }
  return ids;
}
