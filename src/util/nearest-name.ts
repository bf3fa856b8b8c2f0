/** "Did you mean ...?": the valid name nearest to a misspelled one (arguments, options, flags). */

/** Edit distance (Levenshtein); small inputs only (argument names). */
function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** The valid name closest to `key` (case, `_` and `-` ignored), or undefined when none is close. */
export function nearestName(key: string, names: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_\s]/g, "");
  const k = norm(key.slice(0, 200));
  let best: string | undefined;
  let bestD = Infinity;
  for (const n of names) {
    const d = editDistance(k, norm(n));
    if (d < bestD) [best, bestD] = [n, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(k.length / 3)) ? best : undefined;
}
