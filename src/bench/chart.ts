/**
 * Benchmark charts as PNG (see png.ts for why there is no plotting dependency):
 *  - speedup per method: horizontal bars with the 95% CI as a whisker, the ideal (Leviathan)
 *    speedup as a hollow marker, and a dashed line at 1x (plain decoding);
 *  - speedup vs K (from a K sweep): measured points with CI whiskers and the predicted S(K) curve.
 */
import { Canvas, type Rgba } from "./png.js";

export interface ChartBar {
  label: string;
  speedup: number;
  low?: number | null;
  high?: number | null;
  ideal?: number | null;
}

export interface ChartSweepPoint {
  k: number;
  speedup: number;
  low?: number | null;
  high?: number | null;
}

export interface BenchChartInput {
  title: string;
  /** Second title line (model, machine, knob...). */
  subtitle?: string;
  bars?: ChartBar[];
  sweep?: { title: string; measured: ChartSweepPoint[]; predicted?: { k: number; speedup: number }[] };
  /** A last line under the panels (e.g. "synthetic twin models"). */
  footnote?: string;
}

const INK: Rgba = [33, 37, 41];
const GREY: Rgba = [134, 142, 150];
const GRID: Rgba = [222, 226, 230];
const BLUE: Rgba = [34, 139, 230];
const BLUE_DARK: Rgba = [24, 100, 171];
const ORANGE: Rgba = [247, 103, 7];
const GREEN: Rgba = [55, 178, 77];

const WIDTH = 960;
const S = 2; // font scale: 10x14 pixel glyphs

function niceStep(range: number, ticks: number): number {
  const raw = range / Math.max(1, ticks);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const n = raw / mag;
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 2.5 ? 2.5 : n <= 5 ? 5 : 10) * mag;
}

function fmtX(x: number): string {
  return `${x >= 10 ? x.toFixed(0) : x.toFixed(x >= 1 ? 2 : 2)}x`;
}

function drawBars(c: Canvas, top: number, bars: ChartBar[]): number {
  const rowH = 34;
  const labelW = Math.max(...bars.map((b) => Canvas.textWidth(b.label, S))) + 16;
  const left = 24 + labelW;
  const right = WIDTH - 110;
  const axisTop = top + 8;
  const maxV = Math.max(1.2, ...bars.flatMap((b) => [b.speedup, b.high ?? 0, b.ideal ?? 0].filter((v) => Number.isFinite(v)))) * 1.08;
  const x = (v: number) => left + (Math.max(0, v) / maxV) * (right - left);
  const bottom = axisTop + bars.length * rowH + 6;
  // grid + ticks
  const step = niceStep(maxV, 6);
  for (let v = 0; v <= maxV + 1e-9; v += step) {
    c.line(x(v), axisTop, x(v), bottom, GRID);
    c.text(x(v), bottom + 6, `${Number(v.toFixed(2))}x`, GREY, S, "center");
  }
  bars.forEach((b, i) => {
    const y = axisTop + i * rowH + 6;
    c.text(left - 10, y + 7, b.label, INK, S, "right");
    const v = Number.isFinite(b.speedup) ? b.speedup : 0;
    c.fillRect(left, y + 2, x(v) - left, rowH - 14, b.label === "baseline" ? GREY : BLUE);
    if (b.low != null && b.high != null && b.high > b.low) {
      const ym = y + 2 + (rowH - 14) / 2;
      c.line(x(b.low), ym, x(b.high), ym, INK, 2);
      c.line(x(b.low), ym - 6, x(b.low), ym + 6, INK, 2);
      c.line(x(b.high), ym - 6, x(b.high), ym + 6, INK, 2);
    }
    if (b.ideal != null && b.ideal > 0 && b.label !== "baseline") {
      const xi = x(b.ideal);
      const ym = y + 2 + (rowH - 14) / 2;
      for (let t = 0; t < 2; t++) {
        c.line(xi - 7 + t, ym, xi, ym - 7 + t, ORANGE);
        c.line(xi, ym - 7 + t, xi + 7 - t, ym, ORANGE);
        c.line(xi + 7 - t, ym, xi, ym + 7 - t, ORANGE);
        c.line(xi, ym + 7 - t, xi - 7 + t, ym, ORANGE);
      }
    }
    const after = Math.max(x(v), b.high != null ? x(b.high) : 0, b.ideal != null && b.label !== "baseline" ? x(b.ideal) + 8 : 0);
    c.text(after + 10, y + 7, fmtX(v), INK, S);
  });
  c.line(x(1), axisTop - 4, x(1), bottom, INK, 1, [6, 4]);
  c.line(left, bottom, right, bottom, INK);
  // legend
  const ly = bottom + 30;
  c.fillRect(left, ly, 18, 12, BLUE);
  c.text(left + 26, ly, "measured speedup (geo. mean)", INK, S);
  const lx2 = left + 26 + Canvas.textWidth("measured speedup (geo. mean)", S) + 24;
  c.line(lx2, ly + 6, lx2 + 18, ly + 6, INK, 2);
  c.text(lx2 + 26, ly, "95% CI", INK, S);
  const lx3 = lx2 + 26 + Canvas.textWidth("95% CI", S) + 24;
  c.line(lx3 + 2, ly + 6, lx3 + 9, ly - 1, ORANGE, 2);
  c.line(lx3 + 9, ly - 1, lx3 + 16, ly + 6, ORANGE, 2);
  c.line(lx3 + 16, ly + 6, lx3 + 9, ly + 13, ORANGE, 2);
  c.line(lx3 + 9, ly + 13, lx3 + 2, ly + 6, ORANGE, 2);
  c.text(lx3 + 26, ly, "ideal (Leviathan)", INK, S);
  return ly + 24;
}

function drawSweep(c: Canvas, top: number, sweep: NonNullable<BenchChartInput["sweep"]>): number {
  c.text(24, top, sweep.title, INK, S);
  const plotTop = top + 30;
  const plotH = 300;
  const left = 90;
  const right = WIDTH - 40;
  const bottom = plotTop + plotH;
  const ks = [...new Set([...sweep.measured.map((p) => p.k), ...(sweep.predicted ?? []).map((p) => p.k)])].sort((a, b) => a - b);
  const kMin = Math.min(...ks) - 0.5;
  const kMax = Math.max(...ks) + 0.5;
  const values = [1, ...sweep.measured.flatMap((p) => [p.speedup, p.high ?? p.speedup]), ...(sweep.predicted ?? []).map((p) => p.speedup)].filter(Number.isFinite);
  const vMax = Math.max(...values) * 1.1;
  const x = (k: number) => left + ((k - kMin) / (kMax - kMin || 1)) * (right - left);
  const y = (v: number) => bottom - (Math.max(0, v) / vMax) * plotH;
  const step = niceStep(vMax, 6);
  for (let v = 0; v <= vMax + 1e-9; v += step) {
    c.line(left, y(v), right, y(v), GRID);
    c.text(left - 8, y(v) - 7, `${Number(v.toFixed(2))}x`, GREY, S, "right");
  }
  for (const k of ks) c.text(x(k), bottom + 8, String(k), GREY, S, "center");
  c.text((left + right) / 2, bottom + 30, "K (tokens drafted per round)", INK, S, "center");
  c.textVertical(16, bottom - plotH / 2 + Canvas.textWidth("speedup", S) / 2, "speedup", INK, S);
  c.line(left, y(1), right, y(1), INK, 1, [6, 4]);
  c.line(left, bottom, right, bottom, INK);
  c.line(left, plotTop, left, bottom, INK);
  const pred = (sweep.predicted ?? []).filter((p) => p.k >= kMin && p.k <= kMax).sort((a, b) => a.k - b.k);
  for (let i = 1; i < pred.length; i++) c.line(x(pred[i - 1]!.k), y(pred[i - 1]!.speedup), x(pred[i]!.k), y(pred[i]!.speedup), ORANGE, 3);
  const meas = [...sweep.measured].sort((a, b) => a.k - b.k);
  for (let i = 1; i < meas.length; i++) c.line(x(meas[i - 1]!.k), y(meas[i - 1]!.speedup), x(meas[i]!.k), y(meas[i]!.speedup), BLUE, 2);
  for (const p of meas) {
    if (p.low != null && p.high != null) {
      c.line(x(p.k), y(p.low), x(p.k), y(p.high), BLUE_DARK, 2);
      c.line(x(p.k) - 5, y(p.low), x(p.k) + 5, y(p.low), BLUE_DARK, 2);
      c.line(x(p.k) - 5, y(p.high), x(p.k) + 5, y(p.high), BLUE_DARK, 2);
    }
    c.fillRect(x(p.k) - 5, y(p.speedup) - 5, 11, 11, BLUE_DARK);
    c.text(x(p.k) + 9, y(p.speedup) - 18, p.speedup.toFixed(2), INK, S);
  }
  const ly = bottom + 56;
  c.fillRect(left, ly, 11, 11, BLUE_DARK);
  c.text(left + 20, ly, "measured (95% CI)", INK, S);
  const lx = left + 20 + Canvas.textWidth("measured (95% CI)", S) + 30;
  c.line(lx, ly + 5, lx + 24, ly + 5, ORANGE, 3);
  c.text(lx + 32, ly, "predicted S(K) = E(K)/(Kc+1)", INK, S);
  return ly + 24;
}

/** Render the chart(s) to PNG bytes. */
export function renderBenchChart(input: BenchChartInput): Buffer {
  const sub = input.subtitle ? Canvas.wrap(input.subtitle, WIDTH - 48, S) : [];
  const foot = input.footnote ? Canvas.wrap(input.footnote, WIDTH - 48, S) : [];
  const barsH = input.bars && input.bars.length > 0 ? input.bars.length * 34 + 110 : 0;
  const sweepH = input.sweep && input.sweep.measured.length > 0 ? 420 : 0;
  const height = 64 + sub.length * 22 + barsH + sweepH + foot.length * 22 + 16;
  const c = new Canvas(WIDTH, height);
  let y = 16;
  c.text(24, y, input.title, INK, 3);
  y += 34;
  for (const line of sub) {
    c.text(24, y, line, GREY, S);
    y += 22;
  }
  y += 8;
  if (input.bars && input.bars.length > 0) y = drawBars(c, y, input.bars) + 20;
  if (input.sweep && input.sweep.measured.length > 0) y = drawSweep(c, y, input.sweep) + 12;
  for (const line of foot) {
    c.text(24, y, line, GREEN, S);
    y += 22;
  }
  return c.toPng();
}
