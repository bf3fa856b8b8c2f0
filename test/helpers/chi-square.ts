/** Chi-square goodness of fit for sampling tests (same as the Medusa sampling test's). */
/** Regularized upper incomplete gamma Q(a, x) (Numerical Recipes' series / continued fraction). */
export function gammaQ(a: number, x: number): number {
  const lnGamma = (z: number) => {
    const c = [76.18009172947146, -86.50532032941677, 24.01409824083091, -1.231739572450155, 0.1208650973866179e-2, -0.5395239384953e-5];
    let y = z;
    const t = z + 5.5 - (z + 0.5) * Math.log(z + 5.5);
    let s = 1.000000000190015;
    for (const ci of c) s += ci / ++y;
    return -t + Math.log((2.5066282746310005 * s) / z);
  };
  if (x <= 0) return 1;
  if (x < a + 1) {
    let sum = 1 / a;
    let del = sum;
    for (let n = 1; n < 500; n++) {
      del *= x / (a + n);
      sum += del;
      if (Math.abs(del) < Math.abs(sum) * 1e-14) break;
    }
    return 1 - sum * Math.exp(-x + a * Math.log(x) - lnGamma(a));
  }
  let b = x + 1 - a;
  let c = 1e300;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 500; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-14) break;
  }
  return Math.exp(-x + a * Math.log(x) - lnGamma(a)) * h;
}

/** Pearson chi-square p-value; cells with expected count < 5 are pooled. */
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
  return gammaQ((cells - 1) / 2, stat / 2);
}

