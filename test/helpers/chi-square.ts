/** Chi-square goodness of fit for the sampling tests (draft, Medusa, EAGLE, early exit, lookahead): one implementation. */

/** ln Γ(x), Lanczos (g = 7, n = 9). */
export function lnGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
    -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  x -= 1;
  let a = c[0]!;
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Upper regularized incomplete gamma Q(a, x): series below a + 1, Lentz continued fraction above. */
export function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const lnPre = a * Math.log(x) - x - lnGamma(a);
  if (x < a + 1) {
    let sum = 1 / a;
    let term = sum;
    for (let n = 1; n < 10000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-15) break;
    }
    return 1 - sum * Math.exp(lnPre);
  }
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 10000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return Math.exp(lnPre) * h;
}

/** P(χ²_dof >= x). */
export function chiSquarePValue(x: number, dof: number): number {
  return gammaQ(dof / 2, x / 2);
}

/**
 * Pearson's chi-square of observed counts against probabilities; cells with an expected count
 * below 5 are pooled into one cell (and dropped if the pool is still below 5). Observations in
 * cells of probability 0 make the statistic infinite.
 */
export function chiSquare(counts: Map<string, number>, probs: Map<string, number>, n: number): { stat: number; dof: number; pValue: number } {
  for (const [key, c] of counts) if (c > 0 && !((probs.get(key) ?? 0) > 0)) return { stat: Infinity, dof: 1, pValue: 0 };
  let stat = 0;
  let cells = 0;
  let poolE = 0;
  let poolO = 0;
  for (const [key, p] of probs) {
    const e = p * n;
    const o = counts.get(key) ?? 0;
    if (e < 5) {
      poolE += e;
      poolO += o;
      continue;
    }
    stat += (o - e) ** 2 / e;
    cells++;
  }
  if (poolE >= 5) {
    stat += (poolO - poolE) ** 2 / poolE;
    cells++;
  }
  const dof = cells - 1;
  return { stat, dof, pValue: chiSquarePValue(stat, dof) };
}

/** Pearson chi-square p-value over parallel arrays; cells with expected count < 5 are pooled into one (kept when its expected count is above 0). */
export function chiSquareP(counts: number[], probs: number[], n: number): number {
  let stat = 0;
  let cells = 0;
  let poolO = 0;
  let poolE = 0;
  probs.forEach((p, i) => {
    const e = p * n;
    if (e < 5) {
      poolO += counts[i]!;
      poolE += e;
      return;
    }
    stat += (counts[i]! - e) ** 2 / e;
    cells++;
  });
  if (poolE > 0) {
    stat += (poolO - poolE) ** 2 / Math.max(poolE, 1e-9);
    cells++;
  }
  return chiSquarePValue(stat, cells - 1);
}
