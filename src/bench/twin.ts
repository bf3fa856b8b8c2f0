/**
 * Twin benchmark models (synthetic, no download): a target large enough for a CPU forward to be
 * memory-bound (default ~101M parameters, fp32) and a draft that agrees with it as often as a knob
 * says. They are random models: their text is gibberish, and every report that uses them says so.
 *
 * Construction (all weights seeded; see fixture.ts for the base scales):
 *  - The target (hidden H, L layers) keeps its first `draftLayers` layers ("shared" layers) and its
 *    embedding inside a small subspace: the first h coordinates of the residual stream. Only h/headDim
 *    query heads and the first `draftIntermediate` MLP neurons of a shared layer write anything back
 *    (their o_proj / down_proj rows outside the subspace and columns of the other heads/neurons are
 *    zero), so after the shared layers the stream is [x, 0, ..., 0].
 *  - The separate draft is a small model of hidden h with those shared layers' weights copied
 *    (sliced), the embedding's first h columns and the lm_head's first h columns. RMSNorm over H
 *    coordinates of [x, 0] equals RMSNorm over h coordinates of x times sqrt(h/H); that factor is
 *    folded into the draft's norm weights (and its eps scaled by H/h), so the draft computes exactly
 *    the logits of the target's early exit at `draftLayers` layers.
 *  - The target's early exit (`onnx/early_exit_{draftLayers}.onnx`) is therefore the same draft,
 *    but it runs at full width (all of a layer's and the whole lm_head's weights): same agreement,
 *    higher cost. The bench shows what width costs.
 *  - The knob, `divergence`: the residual branches (o_proj, down_proj) of the target's upper layers
 *    are scaled by it. At 0 the target equals the draft (agreement 1); the larger it is, the more the
 *    upper layers move the argmax away from the draft's. `calibrateTwin` measures greedy agreement
 *    (teacher-forced on the target's own greedy output) for a list of knob values;
 *    `TWIN_CALIBRATION` holds the table measured for the default configuration, and
 *    `divergenceForAgreement` interpolates it.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { SpecEngine } from "../api.js";
import { buildDecoderOnnx } from "../builder/llama.js";
import { fixtureConfigJson, fixtureTensors } from "../builder/fixture.js";
import { parseDecoderConfig } from "../builder/config.js";
import { MemoryWeights, writeSafetensors, type TensorToWrite } from "../builder/safetensors.js";
import { earlyExitFileName, modelFileName, resolveQuantize, type QuantizeOptions } from "../builder/quantize.js";
import { InvalidOptionError } from "../errors.js";
import { makeFixtureTokenizer } from "../text/fixture-tokenizer.js";
import type { BenchPrompt } from "./workload.js";

export interface TwinOptions {
  /** Output directory; the target goes to `out/target`, the draft to `out/draft`. */
  out: string;
  /** Target hidden size (default 768). */
  hidden?: number;
  /** Target layers (default 12). */
  layers?: number;
  /** Target attention heads (default hidden / 64) and KV heads (default heads / 3 when that divides, else heads). */
  heads?: number;
  kvHeads?: number;
  /** Target MLP size (default 2048 for the default hidden, else 8/3 * hidden rounded to 64). */
  intermediate?: number;
  /** Vocabulary (default 16384; >= 259). */
  vocab?: number;
  /** Draft hidden size h (default 128; a multiple of the head size). */
  draftHidden?: number;
  /** Draft MLP size (default 4 * draftHidden). */
  draftIntermediate?: number;
  /** Layers shared by the draft and the target's early exit (default 1). */
  draftLayers?: number;
  /** The knob: residual scale of the target's upper layers (default: from `agreement`, itself default 0.8). */
  divergence?: number;
  /** Pick `divergence` from the calibration table for this greedy agreement (default config only). */
  agreement?: number;
  maxPositions?: number;
  seed?: number;
  /** Also write model.safetensors + config.json for both (default true): `spec-decode build` can rebuild them. */
  safetensors?: boolean;
  /**
   * Also build quantized variants of the target, its early exit and the draft (model_q4.onnx,
   * early_exit_1_q4.onnx, model_int8.onnx ...), beside the float32 files. Each entry's options
   * (block size, accuracy level, lm_head, embeddings) apply to all three.
   */
  quantize?: QuantizeOptions[];
  onProgress?: (msg: string) => void;
}

/** What `twin.json` (written into the target and draft directories) says. */
export interface TwinInfo {
  synthetic: true;
  note: string;
  divergence: number;
  /** The agreement asked for (when the knob was picked from the calibration table). */
  requestedAgreement?: number;
  /** The calibration table's agreement at this knob (default config only). */
  calibratedAgreement?: number;
  target: { dir: string; hidden: number; layers: number; heads: number; kvHeads: number; intermediate: number; vocab: number; parameters: number; bytes: number };
  draft: { dir: string; hidden: number; layers: number; heads: number; kvHeads: number; intermediate: number; parameters: number; bytes: number };
  earlyExitLayers: number;
  /** Quantized variants built beside the float32 files (kind, block size, accuracy level, lm_head, file names). */
  quantized?: { kind: string; blockSize: number; accuracyLevel: number; lmHead: boolean; variant: string; targetFile: string; earlyExitFile: string; draftFile: string }[];
  seed: number;
  buildSeconds: number;
}

export interface TwinResult {
  dir: string;
  target: string;
  draft: string;
  info: TwinInfo;
}

export const TWIN_DEFAULTS = {
  hidden: 768,
  layers: 12,
  heads: 12,
  kvHeads: 4,
  intermediate: 2048,
  vocab: 16384,
  draftHidden: 128,
  draftIntermediate: 512,
  draftLayers: 1,
  maxPositions: 2048,
  seed: 11,
} as const;

/**
 * Greedy agreement (teacher-forced on the target's greedy output, built-in workload, 64 tokens per
 * prompt: 1152 positions, or 768 on the earlier 12-prompt workload where marked) measured for the
 * DEFAULT twin configuration with `calibrateTwin` (spec-decode fixture --twin --calibrate ...).
 * Other sizes or seeds need their own calibration.
 */
export const TWIN_CALIBRATION: { divergence: number; agreement: number }[] = [
  { divergence: 0, agreement: 1 }, // by construction
  { divergence: 0.005, agreement: 0.946 },
  { divergence: 0.01, agreement: 0.875 }, // 768 positions
  { divergence: 0.015, agreement: 0.828 },
  { divergence: 0.0175, agreement: 0.786 },
  { divergence: 0.02, agreement: 0.775 },
  { divergence: 0.035, agreement: 0.674 }, // 768 positions
  { divergence: 0.05, agreement: 0.546 }, // 768 positions
  { divergence: 0.08, agreement: 0.335 }, // 768 positions
];

/** The agreement the bench's twin targets by default (the "acceptance about 0.8"). */
export const DEFAULT_TWIN_AGREEMENT = 0.8;

/** Interpolate the calibration table: the knob for a target greedy agreement. */
export function divergenceForAgreement(agreement: number, table = TWIN_CALIBRATION): number {
  if (!(agreement > 0 && agreement <= 1)) throw new InvalidOptionError(`--agreement must be in (0, 1] (got ${agreement}).`);
  const rows = [...table].sort((a, b) => a.divergence - b.divergence);
  if (agreement >= rows[0]!.agreement) return rows[0]!.divergence;
  for (let i = 1; i < rows.length; i++) {
    const a = rows[i - 1]!;
    const b = rows[i]!;
    if (agreement >= b.agreement) {
      const t = (a.agreement - agreement) / (a.agreement - b.agreement);
      return round3(a.divergence + t * (b.divergence - a.divergence));
    }
  }
  return rows[rows.length - 1]!.divergence;
}

/** Agreement the calibration table gives for a knob value (linear interpolation). */
export function agreementForDivergence(divergence: number, table = TWIN_CALIBRATION): number {
  const rows = [...table].sort((a, b) => a.divergence - b.divergence);
  if (divergence <= rows[0]!.divergence) return rows[0]!.agreement;
  for (let i = 1; i < rows.length; i++) {
    const a = rows[i - 1]!;
    const b = rows[i]!;
    if (divergence <= b.divergence) return round3(a.agreement + ((divergence - a.divergence) / (b.divergence - a.divergence)) * (b.agreement - a.agreement));
  }
  return rows[rows.length - 1]!.agreement;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

interface ResolvedTwin {
  H: number;
  L: number;
  NH: number;
  KV: number;
  I: number;
  V: number;
  D: number;
  h: number;
  hI: number;
  m: number;
  divergence: number;
  maxPositions: number;
  seed: number;
  isDefault: boolean;
}

function resolveOptions(o: TwinOptions): ResolvedTwin {
  const H = o.hidden ?? TWIN_DEFAULTS.hidden;
  const L = o.layers ?? TWIN_DEFAULTS.layers;
  const NH = o.heads ?? Math.max(1, Math.round(H / 64));
  const KV = o.kvHeads ?? (NH % 3 === 0 ? NH / 3 : NH);
  const I = o.intermediate ?? (H === TWIN_DEFAULTS.hidden ? TWIN_DEFAULTS.intermediate : Math.max(64, Math.round((8 / 3) * H / 64) * 64));
  const V = o.vocab ?? TWIN_DEFAULTS.vocab;
  const h = o.draftHidden ?? Math.min(H, TWIN_DEFAULTS.draftHidden);
  const hI = o.draftIntermediate ?? 4 * h;
  const m = o.draftLayers ?? TWIN_DEFAULTS.draftLayers;
  const maxPositions = o.maxPositions ?? TWIN_DEFAULTS.maxPositions;
  const seed = o.seed ?? TWIN_DEFAULTS.seed;
  for (const [k, v] of Object.entries({ hidden: H, layers: L, heads: NH, kvHeads: KV, intermediate: I, vocab: V, draftHidden: h, draftIntermediate: hI, draftLayers: m, maxPositions })) {
    if (!Number.isInteger(v) || v < 1) throw new InvalidOptionError(`Twin ${k} must be a positive integer (got ${v}).`);
  }
  if (!Number.isInteger(seed)) throw new InvalidOptionError(`Twin seed must be an integer (got ${seed}).`);
  if (H % NH !== 0 || (H / NH) % 2 !== 0) throw new InvalidOptionError(`Twin hidden (${H}) must be a multiple of heads (${NH}) with an even head size.`);
  if (NH % KV !== 0) throw new InvalidOptionError(`Twin heads (${NH}) must be a multiple of kvHeads (${KV}).`);
  const D = H / NH;
  if (h % D !== 0 || h > H) throw new InvalidOptionError(`Twin draftHidden (${h}) must be a multiple of the head size (${D}) and at most hidden (${H}).`);
  if ((h / D) > NH / KV) {
    throw new InvalidOptionError(
      `Twin draftHidden (${h}) gives ${h / D} draft heads, but they must share the target's first KV head, which serves ${NH / KV} heads. ` +
        `Lower draftHidden or raise heads/kvHeads.`,
    );
  }
  if (hI > I) throw new InvalidOptionError(`Twin draftIntermediate (${hI}) must be at most intermediate (${I}).`);
  if (m >= L) throw new InvalidOptionError(`Twin draftLayers (${m}) must be below layers (${L}).`);
  if (V < 259) throw new InvalidOptionError(`Twin vocab must be >= 259 (a byte-level tokenizer) (got ${V}).`);
  let divergence: number;
  const isDefault =
    H === TWIN_DEFAULTS.hidden && L === TWIN_DEFAULTS.layers && NH === TWIN_DEFAULTS.heads && KV === TWIN_DEFAULTS.kvHeads &&
    I === TWIN_DEFAULTS.intermediate && V === TWIN_DEFAULTS.vocab && h === TWIN_DEFAULTS.draftHidden &&
    hI === TWIN_DEFAULTS.draftIntermediate && m === TWIN_DEFAULTS.draftLayers && seed === TWIN_DEFAULTS.seed;
  if (o.divergence !== undefined) {
    if (!(o.divergence >= 0) || !Number.isFinite(o.divergence)) throw new InvalidOptionError(`Twin divergence must be a number >= 0 (got ${o.divergence}).`);
    divergence = o.divergence;
  } else divergence = divergenceForAgreement(o.agreement ?? DEFAULT_TWIN_AGREEMENT);
  return { H, L, NH, KV, I, V, D, h, hI, m, divergence, maxPositions, seed, isDefault };
}

/** Number of parameters of a config (embedding and lm_head counted, tied or not). */
export function parameterCount(c: { hidden: number; layers: number; heads: number; kvHeads: number; intermediate: number; vocab: number }): number {
  const D = c.hidden / c.heads;
  const attn = c.hidden * (c.heads * D) * 2 + c.hidden * (c.kvHeads * D) * 2;
  const mlp = 3 * c.hidden * c.intermediate;
  const norms = 2 * c.hidden;
  return c.layers * (attn + mlp + norms) + 2 * c.vocab * c.hidden + c.hidden;
}

/** Weights a decode forward reads (everything but the embedding table, of which it reads one row). */
export function forwardBytes(c: { hidden: number; layers: number; heads: number; kvHeads: number; intermediate: number; vocab: number }): number {
  return 4 * (parameterCount(c) - c.vocab * c.hidden);
}

function get(tensors: TensorToWrite[], name: string): TensorToWrite {
  const t = tensors.find((x) => x.name === name);
  if (!t) throw new Error(`twin: tensor ${name} missing`);
  return t;
}

/** Rows [r0, r1) x columns [c0, c1) of a row-major [rows, cols] matrix. */
function slice2d(a: Float32Array, cols: number, r0: number, r1: number, c0: number, c1: number, scale = 1): Float32Array {
  const out = new Float32Array((r1 - r0) * (c1 - c0));
  let k = 0;
  for (let r = r0; r < r1; r++) {
    const base = r * cols;
    for (let c = c0; c < c1; c++) out[k++] = a[base + c]! * scale;
  }
  return out;
}

/** Zero the entries of a row-major [rows, cols] matrix outside rows [0, keepRows) x columns [0, keepCols). */
function zeroOutside(a: Float32Array, rows: number, cols: number, keepRows: number, keepCols: number): void {
  for (let r = 0; r < rows; r++) {
    if (r >= keepRows) a.fill(0, r * cols, (r + 1) * cols);
    else a.fill(0, r * cols + keepCols, (r + 1) * cols);
  }
}

function scaleInPlace(a: Float32Array, s: number): void {
  for (let i = 0; i < a.length; i++) a[i]! *= s;
}

/**
 * Build the twin pair into `opts.out` (target/, draft/, twin.json). Takes ~1 minute for the
 * default size on 2 cores; tests use a tiny one.
 */
export async function buildTwin(opts: TwinOptions): Promise<TwinResult> {
  const t0 = performance.now();
  const r = resolveOptions(opts);
  const progress = opts.onProgress ?? (() => {});
  const dir = resolve(opts.out);
  const targetDir = join(dir, "target");
  const draftDir = join(dir, "draft");
  rmSync(targetDir, { recursive: true, force: true });
  rmSync(draftDir, { recursive: true, force: true });
  mkdirSync(join(targetDir, "onnx"), { recursive: true });
  mkdirSync(join(draftDir, "onnx"), { recursive: true });

  const tok = makeFixtureTokenizer(r.V);
  const specials = [tok.padId, tok.bosId, tok.eosId];
  const targetJson = fixtureConfigJson({
    arch: "llama",
    layers: r.L,
    hidden: r.H,
    heads: r.NH,
    kvHeads: r.KV,
    intermediate: r.I,
    vocab: r.V,
    maxPositions: r.maxPositions,
    tieEmbeddings: false,
    bosId: tok.bosId,
    eosId: tok.eosId,
    padId: tok.padId,
  });
  const draftHeads = r.h / r.D;
  const draftJson = fixtureConfigJson({
    arch: "llama",
    layers: r.m,
    hidden: r.h,
    heads: draftHeads,
    kvHeads: 1,
    intermediate: r.hI,
    vocab: r.V,
    maxPositions: r.maxPositions,
    tieEmbeddings: false,
    bosId: tok.bosId,
    eosId: tok.eosId,
    padId: tok.padId,
  });
  // RMSNorm over H coordinates of [x, 0] = RMSNorm over h coordinates of x (with eps * H/h) * sqrt(h/H).
  const ratio = r.H / r.h;
  draftJson.rms_norm_eps = (targetJson.rms_norm_eps as number) * ratio;
  draftJson.head_dim = r.D;
  const generationConfig = { _from_model_config: true, bos_token_id: tok.bosId, eos_token_id: tok.eosId, pad_token_id: tok.padId, transformers_version: "4.51.0" };
  const targetCfg = parseDecoderConfig(targetJson, generationConfig);
  const draftCfg = parseDecoderConfig(draftJson, generationConfig);

  progress(`generating ${(parameterCount({ hidden: r.H, layers: r.L, heads: r.NH, kvHeads: r.KV, intermediate: r.I, vocab: r.V }) / 1e6).toFixed(1)}M random target weights`);
  const tensors = fixtureTensors(targetCfg, r.seed, specials);
  const { H, NH, D, I, V, h, hI, m } = r;
  const qDim = NH * D;
  // Embedding: only the first h columns.
  zeroOutside(get(tensors, "model.embed_tokens.weight").data, V, H, V, h);
  for (let i = 0; i < r.L; i++) {
    const p = `model.layers.${i}`;
    const o = get(tensors, `${p}.self_attn.o_proj.weight`).data; // [H, qDim]
    const down = get(tensors, `${p}.mlp.down_proj.weight`).data; // [H, I]
    if (i < m) {
      // Shared layer: write only into the subspace, from the draft's heads and neurons.
      zeroOutside(o, H, qDim, h, draftHeads * D);
      zeroOutside(down, H, I, h, hI);
    } else {
      // Upper layer: residual scale = the knob (fixture.ts used 0.5 * 0.5^i).
      const s = r.divergence / (0.5 * 0.5 ** i);
      scaleInPlace(o, s);
      scaleInPlace(down, s);
    }
  }

  // Draft tensors: slices of the target's.
  const sq = Math.sqrt(ratio);
  const draftTensors: TensorToWrite[] = [];
  const put = (name: string, dims: number[], data: Float32Array) => draftTensors.push({ name, dims, data });
  put("model.embed_tokens.weight", [V, h], slice2d(get(tensors, "model.embed_tokens.weight").data, H, 0, V, 0, h));
  for (let i = 0; i < m; i++) {
    const p = `model.layers.${i}`;
    put(`${p}.input_layernorm.weight`, [h], slice2d(get(tensors, `${p}.input_layernorm.weight`).data, H, 0, 1, 0, h, sq));
    put(`${p}.self_attn.q_proj.weight`, [draftHeads * D, h], slice2d(get(tensors, `${p}.self_attn.q_proj.weight`).data, H, 0, draftHeads * D, 0, h));
    put(`${p}.self_attn.k_proj.weight`, [D, h], slice2d(get(tensors, `${p}.self_attn.k_proj.weight`).data, H, 0, D, 0, h));
    put(`${p}.self_attn.v_proj.weight`, [D, h], slice2d(get(tensors, `${p}.self_attn.v_proj.weight`).data, H, 0, D, 0, h));
    put(`${p}.self_attn.o_proj.weight`, [h, draftHeads * D], slice2d(get(tensors, `${p}.self_attn.o_proj.weight`).data, qDim, 0, h, 0, draftHeads * D));
    put(`${p}.post_attention_layernorm.weight`, [h], slice2d(get(tensors, `${p}.post_attention_layernorm.weight`).data, H, 0, 1, 0, h, sq));
    put(`${p}.mlp.gate_proj.weight`, [hI, h], slice2d(get(tensors, `${p}.mlp.gate_proj.weight`).data, H, 0, hI, 0, h));
    put(`${p}.mlp.up_proj.weight`, [hI, h], slice2d(get(tensors, `${p}.mlp.up_proj.weight`).data, H, 0, hI, 0, h));
    put(`${p}.mlp.down_proj.weight`, [h, hI], slice2d(get(tensors, `${p}.mlp.down_proj.weight`).data, I, 0, h, 0, hI));
  }
  put("model.norm.weight", [h], slice2d(get(tensors, "model.norm.weight").data, H, 0, 1, 0, h, sq));
  put("lm_head.weight", [V, h], slice2d(get(tensors, "lm_head.weight").data, H, 0, V, 0, h));

  const writeDir = (d: string, cfgJson: Record<string, unknown>, ts: TensorToWrite[]) => {
    const json = (name: string, value: unknown) => writeFileSync(join(d, name), JSON.stringify(value, null, 2) + "\n");
    json("config.json", cfgJson);
    json("generation_config.json", generationConfig);
    writeFileSync(join(d, "tokenizer.json"), JSON.stringify(tok.tokenizerJson));
    json("tokenizer_config.json", tok.tokenizerConfig);
    if (opts.safetensors !== false) writeSafetensors(join(d, "model.safetensors"), ts);
  };
  progress(`writing ${draftDir}`);
  writeDir(draftDir, draftJson, draftTensors);
  const quants = (opts.quantize ?? []).map((q) => resolveQuantize(q));
  for (const [i, q] of quants.entries()) {
    if (quants.findIndex((x) => x.kind === q.kind) !== i) throw new InvalidOptionError(`Twin quantize lists ${q.kind} twice; give each kind once.`);
  }
  const draftWeights = new MemoryWeights(draftTensors);
  await buildDecoderOnnx(draftCfg, draftWeights, join(draftDir, "onnx", "model.onnx"), {
    metadata: { "spec_decode.twin": "draft" },
  });
  for (const q of quants) {
    progress(`  draft ${modelFileName(q.kind)}`);
    await buildDecoderOnnx(draftCfg, draftWeights, join(draftDir, "onnx", modelFileName(q.kind)), { metadata: { "spec_decode.twin": "draft" }, quantize: q });
  }
  draftTensors.length = 0;
  progress(`writing ${targetDir}`);
  writeDir(targetDir, targetJson, tensors);
  const weights = new MemoryWeights(tensors);
  progress("building the target graph");
  await buildDecoderOnnx(targetCfg, weights, join(targetDir, "onnx", "model.onnx"), {
    metadata: { "spec_decode.twin": "target", "spec_decode.twin_divergence": String(r.divergence) },
    onProgress: (s) => progress(`  target: ${s}`),
  });
  progress(`building the early exit at ${m} layer(s)`);
  await buildDecoderOnnx(targetCfg, weights, join(targetDir, "onnx", `early_exit_${m}.onnx`), { numLayers: m });
  for (const q of quants) {
    progress(`building the ${q.kind} target and early exit`);
    await buildDecoderOnnx(targetCfg, weights, join(targetDir, "onnx", modelFileName(q.kind)), {
      metadata: { "spec_decode.twin": "target", "spec_decode.twin_divergence": String(r.divergence) },
      quantize: q,
    });
    await buildDecoderOnnx(targetCfg, weights, join(targetDir, "onnx", earlyExitFileName(m, q.kind)), { numLayers: m, quantize: q });
  }
  tensors.length = 0;

  const tParams = parameterCount({ hidden: H, layers: r.L, heads: NH, kvHeads: r.KV, intermediate: I, vocab: V });
  const dParams = parameterCount({ hidden: h, layers: m, heads: draftHeads, kvHeads: 1, intermediate: hI, vocab: V });
  const info: TwinInfo = {
    synthetic: true,
    note:
      "Synthetic random models built by `spec-decode fixture --twin`: the text is gibberish; only speed, acceptance and " +
      "token equality are meaningful. The draft is the target's first layer(s) in a small subspace; the knob (divergence) " +
      "scales the target's upper layers, which is what makes the target disagree with the draft.",
    divergence: r.divergence,
    ...(opts.divergence === undefined ? { requestedAgreement: opts.agreement ?? DEFAULT_TWIN_AGREEMENT } : {}),
    ...(r.isDefault ? { calibratedAgreement: agreementForDivergence(r.divergence) } : {}),
    target: { dir: targetDir, hidden: H, layers: r.L, heads: NH, kvHeads: r.KV, intermediate: I, vocab: V, parameters: tParams, bytes: forwardBytes({ hidden: H, layers: r.L, heads: NH, kvHeads: r.KV, intermediate: I, vocab: V }) },
    draft: { dir: draftDir, hidden: h, layers: m, heads: draftHeads, kvHeads: 1, intermediate: hI, parameters: dParams, bytes: forwardBytes({ hidden: h, layers: m, heads: draftHeads, kvHeads: 1, intermediate: hI, vocab: V }) },
    earlyExitLayers: m,
    ...(quants.length > 0
      ? {
          quantized: quants.map((q) => ({
            kind: q.kind,
            blockSize: q.blockSize,
            accuracyLevel: q.accuracyLevel,
            lmHead: q.lmHead,
            variant: modelFileName(q.kind).replace(/^model_|\.onnx$/g, ""),
            targetFile: modelFileName(q.kind),
            earlyExitFile: earlyExitFileName(m, q.kind),
            draftFile: modelFileName(q.kind),
          })),
        }
      : {}),
    seed: r.seed,
    buildSeconds: Math.round((performance.now() - t0) / 100) / 10,
  };
  const infoText = JSON.stringify(info, null, 2) + "\n";
  writeFileSync(join(dir, "twin.json"), infoText);
  writeFileSync(join(targetDir, "twin.json"), infoText);
  writeFileSync(join(draftDir, "twin.json"), infoText);
  return { dir, target: targetDir, draft: draftDir, info };
}

/** twin.json of a model directory (target or draft), if it is a twin. */
export function readTwinInfo(modelDir: string): TwinInfo | undefined {
  const f = join(resolve(modelDir), "twin.json");
  if (!existsSync(f)) return undefined;
  try {
    const info = JSON.parse(readFileSync(f, "utf8")) as TwinInfo;
    return info.synthetic === true ? info : undefined;
  } catch {
    return undefined;
  }
}

/** Where the bench caches twins: $SPEC_DECODE_CACHE or ~/.cache/speculative-decoding, one dir per knob. */
export function twinCacheDir(divergence: number): string {
  const root = process.env.SPEC_DECODE_CACHE ?? join(homedir(), ".cache", "speculative-decoding");
  return join(root, `twin-v1-d${divergence}`);
}

/**
 * The quantized builds the bench's twin carries beside the float32 files: int4 and int8
 * MatMulNBits, block 32, accuracy level 4, lm_head quantized too (like onnx-community's q4 files;
 * the lm_head is 1/8 of the target's weights).
 */
export const TWIN_QUANTIZE: QuantizeOptions[] = [
  { kind: "int4", lmHead: true },
  { kind: "int8", lmHead: true },
];

/** Build the default-size twin for this knob once, under the cache dir (with the TWIN_QUANTIZE builds). */
export async function ensureTwin(opts: { divergence?: number; agreement?: number; log?: (s: string) => void } = {}): Promise<TwinResult> {
  const divergence = opts.divergence ?? divergenceForAgreement(opts.agreement ?? DEFAULT_TWIN_AGREEMENT);
  const dir = twinCacheDir(divergence);
  const info = readTwinInfo(join(dir, "target"));
  const quantOk = (info?.quantized ?? []).length === TWIN_QUANTIZE.length && info!.quantized!.every((q) => existsSync(join(dir, "target", "onnx", q.targetFile)));
  if (info && quantOk && existsSync(join(dir, "draft", "onnx", "model.onnx")) && existsSync(join(dir, "target", "onnx", `early_exit_${info.earlyExitLayers}.onnx`))) {
    return { dir, target: join(dir, "target"), draft: join(dir, "draft"), info };
  }
  opts.log?.(`Building the twin benchmark models in ${dir} (first run only, about a minute)...`);
  return buildTwin({ out: dir, divergence, agreement: opts.agreement, safetensors: false, quantize: TWIN_QUANTIZE, onProgress: (s) => opts.log?.(`  ${s}`) });
}

export interface AgreementResult {
  /** Fraction of positions where the draft's argmax equals the target's greedy token. */
  agreement: number;
  positions: number;
}

/**
 * Greedy agreement between a draft and a target: the target decodes greedily, then the draft runs
 * once over prompt + output and its argmax at each generated position is compared with the target's
 * token (teacher forcing: the per-token acceptance probability of greedy draft speculation).
 */
export async function measureAgreement(req: {
  engine: SpecEngine;
  target: string;
  draft: string;
  /** Draft ONNX file inside `draft` (e.g. an early-exit graph); default its main model. */
  draftFile?: string;
  prompts: BenchPrompt[];
  maxNewTokens: number;
}): Promise<AgreementResult> {
  const draft = await req.engine.store.load(req.draft, req.draftFile ? { file: req.draftFile } : {});
  let match = 0;
  let total = 0;
  for (const p of req.prompts) {
    const res = await req.engine.generate({ model: req.target, prompt: p.prompt, messages: p.messages, promptIds: p.promptIds, maxNewTokens: req.maxNewTokens });
    const target = await req.engine.store.load(req.target);
    const promptIds = req.engine.encodePrompt(target, p);
    const seq = [...promptIds, ...res.tokens];
    const out = await draft.lm.forward(draft.lm.newCache(), seq.slice(0, -1), { logits: "all" });
    for (let j = 0; j < res.tokens.length; j++) {
      const row = promptIds.length - 1 + j;
      let best = 0;
      let bestV = -Infinity;
      const base = row * out.vocab;
      for (let t = 0; t < out.vocab; t++) {
        const v = out.logits[base + t]!;
        if (v > bestV) {
          bestV = v;
          best = t;
        }
      }
      if (best === res.tokens[j]) match++;
      total++;
    }
  }
  return { agreement: total > 0 ? round3(match / total) : 0, positions: total };
}

/**
 * Build twins for several knob values (into `out/d<knob>`) and measure their greedy agreement:
 * the calibration table. Slow for the default size (a build per value); used to fill
 * TWIN_CALIBRATION and by the tests on a tiny twin.
 */
export async function calibrateTwin(req: {
  out: string;
  divergences: number[];
  prompts: BenchPrompt[];
  maxNewTokens: number;
  twin?: Omit<TwinOptions, "out" | "divergence" | "agreement">;
  log?: (s: string) => void;
}): Promise<{ divergence: number; agreement: number; positions: number }[]> {
  const rows: { divergence: number; agreement: number; positions: number }[] = [];
  for (const d of req.divergences) {
    const t = await buildTwin({ ...(req.twin ?? {}), out: join(req.out, `d${d}`), divergence: d });
    const engine = new SpecEngine();
    try {
      const a = await measureAgreement({ engine, target: t.target, draft: t.draft, prompts: req.prompts, maxNewTokens: req.maxNewTokens });
      rows.push({ divergence: d, ...a });
      req.log?.(`divergence ${d}: agreement ${a.agreement} over ${a.positions} positions`);
    } finally {
      await engine.dispose();
    }
  }
  return rows;
}

