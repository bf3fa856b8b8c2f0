/**
 * Small statistics helpers for benchmarks: median, geometric mean of ratios with a t-based 95%
 * confidence interval (computed on log ratios, so the interval is multiplicative and never
 * negative).
 */

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function mean(xs: readonly number[]): number {
  return xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Two-sided 97.5% quantiles of Student's t for df = 1..30 (beyond: the normal 1.96). */
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11,
  2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

export function tQuantile975(df: number): number {
  if (df < 1) return Number.NaN;
  if (df <= 30) return T975[df - 1]!;
  if (df <= 60) return 2.0;
  if (df <= 120) return 1.98;
  return 1.96;
}

export interface RatioSummary {
  /** Geometric mean of the ratios (0 when there is no valid ratio, n = 0). */
  mean: number;
  /** 95% confidence interval of the geometric mean (t-based on log ratios); null when n < 2. */
  low: number | null;
  high: number | null;
  /** Number of paired runs the ratios come from. */
  n: number;
}

/** Geometric mean of positive ratios with a t-based 95% CI computed on their logarithms. */
export function summarizeRatios(ratios: readonly number[]): RatioSummary {
  const logs = ratios.filter((r) => Number.isFinite(r) && r > 0).map(Math.log);
  const n = logs.length;
  if (n === 0) return { mean: 0, low: null, high: null, n: 0 };
  const m = mean(logs);
  if (n < 2) return { mean: round4(Math.exp(m)), low: null, high: null, n };
  const sd = Math.sqrt(logs.reduce((s, x) => s + (x - m) ** 2, 0) / (n - 1));
  const half = tQuantile975(n - 1) * (sd / Math.sqrt(n));
  return { mean: round4(Math.exp(m)), low: round4(Math.exp(m - half)), high: round4(Math.exp(m + half)), n };
}

export function round4(x: number): number {
  return Math.round(x * 10000) / 10000;
}
