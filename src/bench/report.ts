/**
 * The benchmark report: what `spec-decode bench` prints (Markdown), saves (--json) and draws
 * (--chart), built from one `runArms` measurement (methods and an optional K sweep, interleaved in
 * the same run) plus the facts needed to read it (machine, load, model, twin knob, workload).
 */
import { createRequire } from "node:module";
import { cpus, loadavg, platform, release, totalmem } from "node:os";
import type { BenchChartInput } from "./chart.js";
import type { ArmSummary, MeasureSpeedupResult } from "./measure.js";
import type { TuneDraftKResult } from "./tune.js";
import { quantMarkdown, type QuantReport } from "./quant.js";
import type { TwinInfo } from "./twin.js";

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  platform: string;
  node: string;
  onnxruntime: string;
  /** 1-minute load average when the run started and ended: other work on the machine adds noise. */
  loadAverageStart: number;
  loadAverageEnd?: number;
}

export function machineInfo(): MachineInfo {
  let ortVersion = "unknown";
  try {
    const req = createRequire(import.meta.url);
    ortVersion = (req("onnxruntime-node/package.json") as { version: string }).version;
  } catch {
    /* advisory */
  }
  const c = cpus();
  return {
    cpu: c[0]?.model.trim() ?? "unknown",
    cores: c.length,
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    platform: `${platform()} ${release()}`,
    node: process.version,
    onnxruntime: ortVersion,
    loadAverageStart: Math.round(loadavg()[0]! * 100) / 100,
  };
}

export interface BenchReport {
  kind: "spec-decode-bench";
  createdAt: string;
  machine: MachineInfo;
  model: string;
  draft?: string;
  heads?: string;
  eagleHeads?: string;
  /** Set when the models are the synthetic twins (`spec-decode fixture --twin`). */
  twin?: TwinInfo;
  workload: { source: string; prompts: number; categories: Record<string, number> };
  settings: { maxNewTokens: number; repeats: number; temperature: number; device: string; threads: number | null; methods: string[]; ks: number[] };
  /** How speedups and intervals are computed (stated once, for readers of the JSON). */
  conventions: string[];
  result: MeasureSpeedupResult;
  /** K sweep (bench --ks, or spec-decode tune), measured in the same run as the methods. */
  tune?: Omit<TuneDraftKResult, "measurement">;
  /** Prompts left out because prompt + max new tokens exceed the model's context. */
  droppedPrompts: string[];
  /** Quantized rows: roofline per model and agreement with float32 (when quantized builds were measured). */
  quant?: QuantReport;
}

export const CONVENTIONS = [
  "tokens/s = new tokens / decode seconds (prefill excluded); median over runs",
  "speedup = geometric mean over (prompt, repeat) pairs of method tok/s / baseline tok/s of the same repeat; 95% CI: t-interval on the log ratios",
  "acceptance = accepted drafted tokens / drafted tokens (bonus not counted)",
  "mean accepted length = new tokens / target forwards, bonus token included",
  "per-position acceptance[i] = P(drafted token i accepted | tokens before it accepted)",
  "ideal = E / (1 + draft ms per round / baseline target ms per forward), E = measured mean accepted length (Leviathan et al. 2023 with measured acceptance and cost); efficiency = speedup / ideal",
  "ideal incl. verify cost = E / (verify forward ms / baseline forward ms + draft ms per round / baseline forward ms)",
  "outside ORT = decode time not spent inside onnxruntime session.run, per token and as a share of decode time",
  "peak RSS = highest resident set size sampled (20 ms) during the method's runs; includes every model loaded in the process",
];

function pct(x: number, digits = 1): string {
  return `${(x * 100).toFixed(digits)}%`;
}

function num(x: number | null | undefined, digits = 2): string {
  return x === null || x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(digits);
}

function ci(a: ArmSummary): string {
  const s = a.speedup;
  if (a.method === "baseline" && a.label === "baseline") return "1.00x";
  return `${num(s.mean)}x` + (s.low !== null && s.high !== null ? ` [${num(s.low)}, ${num(s.high)}]` : "");
}

function methodCell(a: ArmSummary): string {
  const opts = Object.entries(a.methodOptions)
    .filter(([k]) => k !== "controller" || a.methodOptions.controller !== "fixed")
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : String(v)}`);
  return a.label === a.method && opts.length > 0 ? `${a.label} (${opts.join(", ")})` : a.label;
}

/** The main table: one row per arm, baseline first. */
export function armsTable(result: MeasureSpeedupResult): string {
  const rows = [result.baseline, ...result.arms];
  const head =
    "| method | tok/s (median) | speedup [95% CI] | acceptance | mean accepted length | ideal | efficiency | outside ORT ms/token (share) | peak RSS MB | greedy = baseline |";
  const sep = "|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|";
  const lines = rows.map((a) => {
    const isBase = a === result.baseline;
    return (
      `| ${methodCell(a)} | ${num(a.medianTokensPerSecond, 1)} | ${ci(a)} | ${isBase ? "-" : pct(a.acceptanceRate)} | ${num(a.meanAcceptedLength)} | ` +
      `${isBase ? "1.00x" : `${num(a.idealSpeedup)}x`} | ${isBase ? "-" : num(a.efficiency)} | ${num(a.overheadMsPerToken, 3)} (${pct(a.overheadShare)}) | ` +
      `${(a.peakRssBytes / 1024 ** 2).toFixed(0)} | ${a.greedyIdentical === null ? (result.greedy ? "n/a (another model)" : "n/a (sampling)") : a.greedyIdentical ? (a.reference ? `yes (= ${a.reference})` : "yes") : `NO (${a.mismatches.join(", ")})`} |`
    );
  });
  return [head, sep, ...lines].join("\n");
}

/** Per-position acceptance of every speculative arm (first `maxPositions` positions). */
export function perPositionTable(result: MeasureSpeedupResult, maxPositions = 8): string {
  const arms = result.arms.filter((a) => a.perPositionAcceptance.length > 0);
  if (arms.length === 0) return "";
  const n = Math.min(maxPositions, Math.max(...arms.map((a) => a.perPositionAcceptance.length)));
  const head =
    `| method | ${Array.from({ length: n }, (_, i) => `pos ${i + 1}`).join(" | ")} | mean drafted/round | draft ms/token | ` +
    `target ms/forward (x baseline) | ideal incl. verify cost | speedup / that |`;
  const sep = `|---|${"---:|".repeat(n)}---:|---:|---:|---:|---:|`;
  const lines = arms.map(
    (a) =>
      `| ${a.label} | ${Array.from({ length: n }, (_, i) => (i < a.perPositionAcceptance.length ? num(a.perPositionAcceptance[i]) : "-")).join(" | ")} | ` +
      `${num(a.meanDrafted)} | ${num(a.draftMsPerToken, 3)} | ${num(a.targetMsPerForward, 2)} (${num(a.verifyCostRatio)}x) | ` +
      `${num(a.idealWithVerifyCost)}x | ${a.idealWithVerifyCost > 0 ? num(a.speedup.mean / a.idealWithVerifyCost) : "-"} |`,
  );
  return [head, sep, ...lines].join("\n");
}

/** Speedup per workload category (geometric mean of the per-prompt speedups). */
export function categoryTable(result: MeasureSpeedupResult): string {
  const cats = [...new Set(result.baseline.perPrompt.map((p) => p.category))];
  if (cats.length < 2 || result.arms.length === 0) return "";
  const gm = (xs: number[]) => (xs.length ? Math.exp(xs.reduce((s, x) => s + Math.log(Math.max(x, 1e-9)), 0) / xs.length) : NaN);
  const head = `| method | ${cats.join(" | ")} |`;
  const sep = `|---|${"---:|".repeat(cats.length)}`;
  const lines = result.arms.map((a) => `| ${a.label} | ${cats.map((c) => `${num(gm(a.perPrompt.filter((p) => p.category === c).map((p) => p.speedup)))}x`).join(" | ")} |`);
  return [head, sep, ...lines].join("\n");
}

export function tuneTable(t: Omit<TuneDraftKResult, "measurement">): string {
  const head = "| K | tok/s (median) | speedup [95% CI] | acceptance | mean accepted length | verify cost v(K+1)/v(1) | predicted S(K) | efficiency | greedy = baseline |";
  const sep = "|---|---:|---:|---:|---:|---:|---:|---:|:---:|";
  const lines = t.points.map(
    (p) =>
      `| ${p.label} | ${num(p.medianTokensPerSecond, 1)} | ${num(p.speedup.mean)}x${p.speedup.low !== null ? ` [${num(p.speedup.low)}, ${num(p.speedup.high)}]` : ""} | ` +
      `${pct(p.acceptanceRate)} | ${num(p.meanAcceptedLength)} | ${num(p.verifyCost)}x | ${p.predictedSpeedup !== null ? `${num(p.predictedSpeedup)}x` : "-"} | ${num(p.efficiency)} | ` +
      `${p.greedyIdentical === null ? "n/a" : p.greedyIdentical ? "yes" : "NO"} |`,
  );
  return [
    `K sweep (${t.method}${t.exitLayer !== undefined ? `, exit layer ${t.exitLayer}` : ""}): fitted alpha ${num(t.alpha, 3)}, draft/target cost c ${num(t.costRatio, 3)}, ` +
      `predicted best K ${t.predictedBestK}; fastest measured: ${t.best.label} (${t.best.reason})`,
    `Verdict: ${t.verdict.text}`,
    "",
    head,
    sep,
    ...lines,
  ].join("\n");
}

function mb(bytes: number): string {
  return `${(bytes / 1024 ** 2).toFixed(0)} MB`;
}

/** The whole report as Markdown. */
export function benchMarkdown(r: BenchReport): string {
  const res = r.result;
  const out: string[] = [];
  out.push(`## spec-decode bench`);
  out.push("");
  if (r.twin) {
    out.push(
      `**Synthetic models**: the twin pair from \`spec-decode fixture --twin\` (random weights, gibberish text; speed, acceptance ` +
        `and token equality are what is measured). Knob: divergence ${r.twin.divergence}` +
        (r.twin.calibratedAgreement !== undefined ? ` (calibrated greedy agreement ~${r.twin.calibratedAgreement})` : "") +
        `. Target ${(r.twin.target.parameters / 1e6).toFixed(1)}M parameters fp32 (hidden ${r.twin.target.hidden}, ${r.twin.target.layers} layers, vocab ${r.twin.target.vocab}; ` +
        `${mb(r.twin.target.bytes)} read per decode forward); draft ${(r.twin.draft.parameters / 1e6).toFixed(1)}M (hidden ${r.twin.draft.hidden}, ${r.twin.draft.layers} layer(s)); ` +
        `early exit at ${r.twin.earlyExitLayers} layer(s).`,
    );
    out.push("");
  }
  out.push(`- model: ${r.model}${r.draft ? `; draft: ${r.draft}` : ""}${r.heads ? `; heads: ${r.heads}` : ""}${r.eagleHeads ? `; EAGLE head: ${r.eagleHeads}` : ""}`);
  out.push(
    `- workload: ${r.workload.source}, ${r.workload.prompts} prompts (${Object.entries(r.workload.categories)
      .map(([c, n]) => `${c} ${n}`)
      .join(", ")}); ${r.settings.maxNewTokens} new tokens, ${r.settings.repeats} repeats, ` +
      `${r.settings.temperature === 0 ? "greedy" : `temperature ${r.settings.temperature}`}; methods interleaved after one warm-up run each`,
  );
  if (r.droppedPrompts.length > 0) out.push(`- left out (prompt + new tokens exceed the context): ${r.droppedPrompts.join(", ")}`);
  const m = r.machine;
  out.push(
    `- machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.platform}, Node ${m.node}, onnxruntime-node ${m.onnxruntime}, device ${r.settings.device}` +
      `${r.settings.threads ? `, ${r.settings.threads} threads` : ""}; load average ${m.loadAverageStart} at start, ${m.loadAverageEnd ?? "?"} at end ` +
      `(other work on the machine adds noise; ratios are paired per repeat to cancel slow drift)`,
  );
  out.push(`- elapsed ${(res.elapsedMs / 1000).toFixed(0)} s; process peak RSS ${mb(res.maxRssBytes)}`);
  out.push("");
  out.push(armsTable(res));
  out.push("");
  for (const s of res.skipped) out.push(`- skipped ${s.label}: ${s.reason}`);
  if (res.skipped.length > 0) out.push("");
  const pp = perPositionTable(res);
  if (pp) {
    out.push(
      "Per-position acceptance (P(token i accepted | tokens before it accepted)), and where the time goes: the target forward that " +
        "verifies K+1 tokens costs more than a plain one (x baseline); the ideal with that measured cost leaves only what the loop loses between forwards:",
    );
    out.push("");
    out.push(pp);
    out.push("");
  }
  const ct = categoryTable(res);
  if (ct) {
    out.push("Speedup by category:");
    out.push("");
    out.push(ct);
    out.push("");
  }
  if (r.tune) {
    out.push(tuneTable(r.tune));
    out.push("");
  }
  if (r.quant) {
    out.push("Quantized builds (weight bytes per token and the memory-bandwidth roofline; speculative arms on a quantized model vs its own plain decoding):");
    out.push("");
    out.push(quantMarkdown(r.quant, res));
  }
  out.push("Conventions: " + r.conventions.join("; ") + ".");
  return out.join("\n") + "\n";
}

/** Chart input from a report: speedup per method, and speedup vs K when a sweep was run. */
export function benchChartInput(r: BenchReport): BenchChartInput {
  const res = r.result;
  const sweepLabels = new Set(r.tune?.points.map((p) => p.label) ?? []);
  const methodArms = res.arms.filter((a) => !sweepLabels.has(a.label));
  return {
    title: "Speedup over plain decoding",
    subtitle:
      `${r.twin ? `twin target ${(r.twin.target.parameters / 1e6).toFixed(0)}M fp32, divergence ${r.twin.divergence}` : r.model}; ` +
      `${r.workload.prompts} prompts x ${r.settings.repeats} repeats, ${r.settings.maxNewTokens} tokens, ` +
      `${r.settings.temperature === 0 ? "greedy" : `T=${r.settings.temperature}`}; baseline ${num(res.baseline.medianTokensPerSecond, 1)} tok/s; ` +
      `${r.machine.cores} cores${r.settings.threads ? `, ${r.settings.threads} thread(s)` : ""}`,
    bars: [res.baseline, ...methodArms].map((a) => ({
      label: a.label,
      speedup: a.speedup.mean,
      low: a === res.baseline ? null : a.speedup.low,
      high: a === res.baseline ? null : a.speedup.high,
      ideal: a === res.baseline ? null : a.idealSpeedup,
    })),
    sweep:
      r.tune && r.tune.points.some((p) => p.k !== null)
        ? {
            title: `${r.tune.method}: speedup vs K (alpha ${num(r.tune.alpha, 2)}, c ${num(r.tune.costRatio, 3)})`,
            measured: r.tune.points.filter((p) => p.k !== null).map((p) => ({ k: p.k!, speedup: p.speedup.mean, low: p.speedup.low, high: p.speedup.high })),
            predicted: r.tune.predictedCurve.map((p) => ({ k: p.k, speedup: p.predictedSpeedup })),
          }
        : undefined,
    footnote: r.twin ? `Synthetic random models (spec-decode fixture --twin): speed and acceptance only, the text is gibberish.` : undefined,
  };
}
