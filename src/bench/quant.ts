/**
 * Quantized rows for `spec-decode bench` (and the demo): when the model directory holds
 * quantized builds beside model.onnx (model_int8.onnx, model_q4.onnx: `spec-decode build
 * --quantize`, or `fixture --twin --quantize int4,int8`), each gets a plain arm and speculative
 * arms on it, measured in the same interleaved run as the float rows. Speculative arms on a
 * quantized model are checked against (and divided by) that model's own plain arm.
 *
 * The roofline: a decode step must stream the weights once, so tokens/s <= read bandwidth /
 * weight bytes per token. The bandwidth is measured here with a one-node onnxruntime graph
 * (ReduceSum over a 256 MiB float32 input, fed from a JS buffer, so onnxruntime's own vectorized
 * loop reads it: a JS loop would measure the JIT, not the memory), at the bench's thread count,
 * best of 5 after a warm-up. Weight bytes per token come from the graph (engine/weight-format.ts).
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import type { SpecEngine } from "../api.js";
import { GraphBuilder } from "../builder/onnx-graph.js";
import type { MethodName, MethodOptions } from "../decoding/methods.js";
import { inspectModelDir } from "../engine/model-dir.js";
import { readWeightFormat } from "../engine/weight-format.js";
import type { ArmSpec, ArmSummary, MeasureSpeedupResult } from "./measure.js";
import { measureAgreement } from "./twin.js";
import type { BenchPrompt } from "./workload.js";

/** Quantized variants the bench looks for, smallest bytes last. */
export const BENCH_VARIANTS = [
  { variant: "int8", label: "int8" },
  { variant: "q4", label: "int4" },
] as const;

export interface QuantRow {
  label: string;
  file: string;
  weightFormat: string;
  weightBytesPerToken: number;
  medianTokensPerSecond: number;
  /** Bandwidth / weight bytes per token: the most a plain decode step could do. */
  rooflineTokensPerSecond: number;
  /** Weight bytes per second this arm streamed (target forwards only) / measured bandwidth. */
  bandwidthShare: number;
}

export interface QuantReport {
  bandwidthGBs: number;
  bandwidthMethod: string;
  threads: number | null;
  rows: QuantRow[];
  /** Greedy top-1 agreement of each quantized target with the float32 one (teacher-forced on float32's greedy output). */
  agreement: { variant: string; agreement: number; positions: number }[];
  /**
   * Each greedy mismatch of a speculative arm on a quantized build, re-run and located: the first
   * differing position and the reference's top-1 minus top-2 logit there. On int4 at accuracy level
   * 4 a mismatch at a gap below NEAR_TIE is the documented batch-shape effect, on int8 the same
   * amplification of tree verification's last-bit differences (arms that verified trees: Medusa,
   * EAGLE with treeTopK > 1); quantization.md, "Exactness".
   */
  mismatches: { arm: string; prompt: string; position: number; gap: number; nearTie: boolean }[];
}

/** Top-2 logit gap below which an int4 (or int8 tree-verified) accuracy-level-4 mismatch is the documented near-tie effect. */
export const NEAR_TIE = 0.05;

/** Variants present in a model directory (by the onnx-community file names). */
export function quantVariantsIn(dir: string): { variant: string; label: string; file: string }[] {
  const out: { variant: string; label: string; file: string }[] = [];
  for (const v of BENCH_VARIANTS) {
    try {
      const file = inspectModelDir(dir, { variant: v.variant }).modelFile;
      out.push({ ...v, file });
    } catch {
      /* not built */
    }
  }
  return out;
}

/**
 * The quantized arms for a target (and draft) directory: "<kind> plain", "<kind> draft" (the draft's
 * own build of the same kind when it has one), "<kind> early-exit" (the target variant's early exit),
 * and "<kind> <label>" for each float medusa / eagle arm in `headArms` (same heads and options, on
 * the quantized target: its builds carry the same hidden_states / features outputs and
 * tree_attention_mask input as model.onnx; the heads themselves stay as they are).
 */
export function quantArms(o: {
  model: string;
  draft?: string;
  methods: MethodName[];
  k?: number | "auto";
  exitLayer?: number;
  adapter?: boolean;
  /** The float run's medusa / eagle arms, mirrored on each quantized target (other methods are ignored here). */
  headArms?: ArmSpec[];
}): ArmSpec[] {
  const arms: ArmSpec[] = [];
  const draftVariants = o.draft ? new Set(quantVariantsIn(o.draft).map((v) => v.variant)) : new Set<string>();
  for (const v of quantVariantsIn(o.model)) {
    const plain = `${v.label} plain`;
    // Its own reference: a different model from the float baseline, so no token equality to check.
    arms.push({ label: plain, method: "baseline", variant: v.variant, reference: plain });
    const opts: MethodOptions = o.k !== undefined ? { k: o.k } : {};
    if (o.methods.includes("draft") && o.draft) {
      const dv = draftVariants.has(v.variant) ? v.variant : undefined;
      arms.push({ label: `${v.label} draft (${dv ? v.label : "float"} draft)`, method: "draft", variant: v.variant, draftVariant: dv, reference: plain, methodOptions: opts });
    }
    if (o.methods.includes("early-exit")) {
      arms.push({
        label: `${v.label} early-exit`,
        method: "early-exit",
        variant: v.variant,
        reference: plain,
        methodOptions: { ...opts, ...(o.exitLayer !== undefined ? { exitLayer: o.exitLayer } : {}), ...(o.adapter !== undefined ? { adapter: o.adapter } : {}) },
      });
    }
    for (const h of o.headArms ?? []) {
      if (h.method !== "medusa" && h.method !== "eagle") continue;
      arms.push({
        label: `${v.label} ${h.label ?? h.method}`,
        method: h.method,
        variant: v.variant,
        reference: plain,
        methodOptions: { ...(h.methodOptions ?? {}) },
        ...(h.heads ? { heads: h.heads } : {}),
      });
    }
  }
  return arms;
}

/** Read bandwidth of this machine in GB/s (see the module comment). */
export async function measureReadBandwidth(threads?: number): Promise<{ gbs: number; method: string }> {
  const dir = mkdtempSync(join(tmpdir(), "spec-decode-bw-"));
  const path = join(dir, "reduce.onnx");
  try {
    const g = new GraphBuilder({ name: "bandwidth" });
    const x = g.input("x", "float32", ["n"]);
    g.output("y", "float32", [], g.op("ReduceSum", [x], { keepdims: 0 }));
    g.save(path);
    const session = await ort.InferenceSession.create(path, {
      intraOpNumThreads: threads ?? 0,
      interOpNumThreads: 1,
      extra: { session: { intra_op: { allow_spinning: "0" } } },
    } as ort.InferenceSession.SessionOptions);
    try {
      const n = 64 * 1024 * 1024; // 256 MiB: far beyond any cache
      const data = new Float32Array(n).fill(1);
      const feeds = { x: new ort.Tensor("float32", data, [n]) };
      await session.run(feeds);
      let best = Infinity;
      for (let i = 0; i < 5; i++) {
        const t0 = performance.now();
        await session.run(feeds);
        best = Math.min(best, performance.now() - t0);
      }
      return {
        gbs: Math.round(((n * 4) / (best / 1000) / 1e9) * 100) / 100,
        method: `onnxruntime ReduceSum over a 256 MiB float32 input, ${threads ?? "default"} thread(s), best of 5`,
      };
    } finally {
      await session.release();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Roofline rows for the float baseline and the quantized plain arms, plus agreement with float32. */
export async function quantReport(o: {
  engine: SpecEngine;
  model: string;
  draft?: string;
  result: MeasureSpeedupResult;
  prompts: BenchPrompt[];
  maxNewTokens: number;
  /** The bench's new tokens (the mismatch re-runs use it). */
  benchMaxNewTokens?: number;
  threads?: number;
  agreement: boolean;
  /** The request's heads and the measured arms (their own heads), so a medusa / eagle mismatch re-runs with the same heads. */
  heads?: string;
  arms?: ArmSpec[];
}): Promise<QuantReport> {
  const bw = await measureReadBandwidth(o.threads);
  const plainArms: { label: string; file: string; arm: ArmSummary }[] = [{ label: "float32 plain", file: inspectModelDir(o.model).modelFile, arm: o.result.baseline }];
  for (const a of o.result.arms) if (a.method === "baseline" && a.variant) plainArms.push({ label: a.label, file: inspectModelDir(o.model, { variant: a.variant }).modelFile, arm: a });
  const rows = plainArms.map(({ label, file, arm }): QuantRow => {
    const w = readWeightFormat(file);
    const roof = w.bytesPerToken > 0 ? (bw.gbs * 1e9) / w.bytesPerToken : 0;
    // Bytes streamed per second while inside target forwards: bytes per forward / ms per forward.
    const share = arm.targetMsPerForward > 0 ? w.bytesPerToken / (arm.targetMsPerForward / 1000) / (bw.gbs * 1e9) : 0;
    return {
      label,
      file,
      weightFormat: w.format,
      weightBytesPerToken: w.bytesPerToken,
      medianTokensPerSecond: arm.medianTokensPerSecond,
      rooflineTokensPerSecond: Math.round(roof * 10) / 10,
      bandwidthShare: Math.round(share * 1000) / 1000,
    };
  });
  const agreement: QuantReport["agreement"] = [];
  if (o.agreement) {
    for (const v of quantVariantsIn(o.model)) {
      if (!existsSync(v.file)) continue;
      const a = await measureAgreement({ engine: o.engine, target: o.model, draft: o.model, draftFile: v.file, prompts: o.prompts, maxNewTokens: o.maxNewTokens });
      agreement.push({ variant: v.label, ...a });
    }
  }
  const mismatches: QuantReport["mismatches"] = [];
  for (const a of o.result.arms) {
    if (a.reference === undefined || a.greedyIdentical !== false || !a.variant) continue;
    const format = readWeightFormat(inspectModelDir(o.model, { variant: a.variant }).modelFile).format;
    // int4: one-row and several-row products differ in the last bits; any arm. int8 is row-consistent,
    // but a tree node's ancestors are not contiguous in the verify forward, so its attention sums
    // round differently (~4e-6 on float32 logits too) and level-4 activation rounding amplifies that.
    const nearTieKind = /^int4 \(MatMulNBits/.test(format) || (/^int8 \(MatMulNBits/.test(format) && a.verification.includes("tree"));
    for (const id of a.mismatches) {
      const p = o.prompts.find((x) => x.id === id);
      if (!p) continue;
      const common = { model: o.model, variant: a.variant, prompt: p.prompt, messages: p.messages, promptIds: p.promptIds, maxNewTokens: o.benchMaxNewTokens ?? o.maxNewTokens };
      const ref = await o.engine.generate({ ...common, method: "baseline" });
      const heads = o.arms?.find((s) => (s.label ?? s.method) === a.label)?.heads ?? o.heads;
      const res = await o.engine.generate({ ...common, method: a.method, draft: o.draft, draftVariant: a.draftVariant, heads, methodOptions: a.methodOptions });
      const at = ref.tokens.findIndex((t, i) => t !== res.tokens[i]);
      if (at < 0) continue; // not reproduced (timing-dependent K choices); the bench's own "NO" stands
      const target = await o.engine.store.load(o.model, { variant: a.variant });
      const ids = [...o.engine.encodePrompt(target, p), ...ref.tokens.slice(0, at)];
      const out = await target.lm.forward(target.lm.newCache(), ids, { logits: "last" });
      const row = Array.from(out.logits.subarray(out.logits.length - out.vocab)).sort((x, y) => y - x);
      const gap = Math.round((row[0]! - row[1]!) * 1e5) / 1e5;
      mismatches.push({ arm: a.label, prompt: id, position: at, gap, nearTie: nearTieKind && gap < NEAR_TIE });
    }
  }
  return { bandwidthGBs: bw.gbs, bandwidthMethod: bw.method, threads: o.threads ?? null, rows, agreement, mismatches };
}

/** Markdown for the quantized section of the bench report. */
export function quantMarkdown(q: QuantReport, result: MeasureSpeedupResult): string {
  const lines: string[] = [];
  lines.push(`Measured read bandwidth: ${q.bandwidthGBs} GB/s (${q.bandwidthMethod}).`, "");
  lines.push("| model | weight format | weight MB/token | tok/s (median) | roofline tok/s (bandwidth / bytes) | share of bandwidth in target forwards |");
  lines.push("|---|---|---:|---:|---:|---:|");
  for (const r of q.rows) {
    lines.push(
      `| ${r.label} | ${r.weightFormat} | ${(r.weightBytesPerToken / 1e6).toFixed(1)} | ${r.medianTokensPerSecond.toFixed(1)} | ${r.rooflineTokensPerSecond.toFixed(1)} | ${(r.bandwidthShare * 100).toFixed(0)}% |`,
    );
  }
  const rel = result.arms.filter((a) => a.reference !== undefined);
  if (rel.length > 0) {
    lines.push("", "| arm | vs its reference | speedup [95% CI] | greedy = reference |", "|---|---|---:|:---:|");
    for (const a of rel) {
      const s = a.speedupVsReference;
      lines.push(
        `| ${a.label} | ${a.reference} | ${s.mean.toFixed(2)}x${s.low !== null && s.high !== null ? ` [${s.low.toFixed(2)}, ${s.high.toFixed(2)}]` : ""} | ${a.greedyIdentical === null ? "n/a" : a.greedyIdentical ? "yes" : `NO (${a.mismatches.join(", ")})`} |`,
      );
    }
  }
  for (const m of q.mismatches) {
    lines.push(
      "",
      `${m.arm} on ${m.prompt}: first differs from its plain decoding at token ${m.position}, where the top-2 logit gap is ${m.gap}` +
        (m.nearTie
          ? ` (< ${NEAR_TIE}: the accuracy-level-4 near tie${/^int4 /.test(m.arm) ? "" : " of tree verification"}, references/quantization.md)`
          : " (NOT a near tie: report this)") +
        ".",
    );
  }
  if (q.agreement.length > 0) {
    lines.push("", `Greedy top-1 agreement with float32 (teacher-forced on float32's greedy output): ${q.agreement.map((a) => `${a.variant} ${a.agreement} (${a.positions} positions)`).join(", ")}.`);
  }
  return lines.join("\n") + "\n";
}
