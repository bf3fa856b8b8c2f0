/**
 * Llama-family decoder (Llama, Mistral, Qwen2, Qwen3) -> ONNX graph with the engine's interface.
 *
 * Inputs:  input_ids int64 [batch_size, sequence_length]
 *          attention_mask int64 [batch_size, total_sequence_length]       (1 = real token)
 *          position_ids int64 [batch_size, sequence_length]
 *          past_key_values.{i}.key / .value  io [batch_size, kv_heads, past_sequence_length, head_dim]
 *          tree_attention_mask uint8 [batch_size, sequence_length, total_sequence_length]  (opts.treeMask)
 * Outputs: logits io [batch_size, sequence_length, vocab_size]
 *          present.{i}.key / .value io [batch_size, kv_heads, total_sequence_length, head_dim]
 *          hidden_states float32 [batch_size, sequence_length, hidden_size]  (opts.hiddenStates; final-norm output)
 *          features float32 [batch_size, sequence_length, hidden_size]  (opts.features; the last decoder
 *                   layer's output BEFORE the final norm: what EAGLE heads draft from)
 *
 * The math follows transformers: RMSNorm in float32, fused q/k/v and gate/up MatMuls (weights
 * transposed at build time), HF half-rotation RoPE from cos/sin tables gathered by position_ids,
 * GQA without repeating K/V (queries are grouped per kv head instead), masked scores set to -1e9
 * (a fully masked padding row gives a uniform softmax, never NaN), SwiGLU MLP, lm_head as a Gemm
 * with transB over the [vocab, hidden] matrix so a tied embedding is stored once.
 *
 * Two exact rewrites: 1/sqrt(head_dim) is folded into W_q and b_q (into q_norm's weight for qwen3,
 * where the norm follows the projection), and the sign of rotate_half is folded into the sin table.
 *
 * Two graph forms with the same interface (`attention`): "ops" (the default) spells attention
 * out in standard ONNX ops (~40 nodes per layer); "fused" runs RoPE, masking, the KV append and
 * attention in one com.microsoft GroupQueryAttention node per layer and each residual add + RMSNorm
 * in one SkipSimplifiedLayerNormalization (contrib-ops.ts), ~10 nodes per layer. "ops" is the
 * default because it is bitwise row-consistent: a token's logits are the same bits whether its
 * forward carries 1 token or several (measured on the twin: 0 difference, float32 and int8), which
 * is what makes greedy speculation return exactly plain decoding's tokens. onnxruntime's
 * GroupQueryAttention takes another kernel path for one query row than for several (measured:
 * 7e-6 on float32 logits, 4e-2 on int8 level-4 logits), so speculation over a fused graph can take
 * the other branch of a near tie. Fused also needs float32 I/O and head_dim % 16 == 0 (else "ops"
 * is used), and on an EMPTY cache (prefill) it rotates its tokens at positions position_ids[0] +
 * 0..S-1 (onnxruntime's first-prompt path); later forwards honour position_ids per token (trees).
 */
import { BuildError } from "../errors.js";
import { checkCheckpoint, getOptional, getWeight } from "./checkpoint.js";
import { ropeTables, type DecoderConfig } from "./config.js";
import { attentionBias, gqaLengths, groupQueryAttention, skipRmsNorm } from "./contrib-ops.js";
import { GraphBuilder, attr, dtypeCode } from "./onnx-graph.js";
import { matMulNBits, quantizeBnb4, quantizeMatrix, quantizeUint8, resolveQuantize, type QuantizeOptions } from "./quantize.js";
import { preQuantizedLinear, preQuantizedParts, stackPreQuantized } from "./prequantized.js";
import type { WeightSource } from "./safetensors.js";

/** Written to `spec_decode.builder`; bump when the graph interface or math changes. */
export const BUILDER_VERSION = "1";

export interface BuildDecoderOptions {
  /** Early exit: keep only the first m layers (+ final norm + lm_head). Default: all layers. */
  numLayers?: number;
  /** Add the `tree_attention_mask` input (replaces the causal mask). Default true. */
  treeMask?: boolean;
  /** Add the `hidden_states` output (final RMSNorm output). Default true. */
  hiddenStates?: boolean;
  /** Add the `features` output (last decoder layer output, before the final norm; EAGLE). Default true. */
  features?: boolean;
  /** dtype of logits and the KV inputs/outputs; the graph computes in float32 either way. */
  ioDtype?: "float32" | "float16";
  /** Extra metadata props. */
  metadata?: Record<string, string>;
  /** Rows of the RoPE cos/sin tables (positions supported). Default config.max_position_embeddings. */
  maxPositions?: number;
  /**
   * Quantize the linear layers (q/k/v/o, gate/up/down; lm_head and the embedding on request) to
   * com.microsoft MatMulNBits (int4 or int8, symmetric blocks: see quantize.ts). Default: float32.
   */
  quantize?: QuantizeOptions;
  /**
   * Graph form: "ops" (standard ONNX ops; the default: bitwise row-consistent, see the file
   * comment) or "fused" (GroupQueryAttention + SkipSimplifiedLayerNormalization, onnxruntime
   * contrib ops: ~3x fewer nodes, not row-consistent). float16 I/O and head_dim not a multiple of
   * 16 always use "ops".
   */
  attention?: "fused" | "ops";
  /** External data policy (see GraphBuilder); default "auto" (beyond ~1.5 GB of weights). */
  externalData?: "auto" | "always" | "never";
  onProgress?: (msg: string) => void;
}

const BOOL = dtypeCode("bool");
const FLOAT = dtypeCode("float32");
const FLOAT16 = dtypeCode("float16");
const NEG_INF = -1e9;

/**
 * dst[i, colOffset + o] = src[o, i] for src [rows=out, cols=in] and dst [in, dstCols].
 * Blocked for cache locality.
 */
export function transposeInto(src: Float32Array, out: number, inn: number, dst: Float32Array, dstCols: number, colOffset: number, scale = 1): void {
  const B = 64;
  for (let o0 = 0; o0 < out; o0 += B) {
    const o1 = Math.min(out, o0 + B);
    for (let i0 = 0; i0 < inn; i0 += B) {
      const i1 = Math.min(inn, i0 + B);
      for (let o = o0; o < o1; o++) {
        const srcRow = o * inn;
        const dstCol = colOffset + o;
        for (let i = i0; i < i1; i++) dst[i * dstCols + dstCol] = src[srcRow + i]! * scale;
      }
    }
  }
}

function scaled(a: Float32Array, s: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! * s;
  return out;
}

const yieldToEventLoop = () => new Promise<void>((r) => setImmediate(r));

/** Build the decoder graph and write it to `outPath` (plus `<outPath>_data` for large models). */
export async function buildDecoderOnnx(
  cfg: DecoderConfig,
  weights: WeightSource,
  outPath: string,
  opts: BuildDecoderOptions = {},
): Promise<void> {
  const numLayers = opts.numLayers ?? cfg.numLayers;
  if (!Number.isInteger(numLayers) || numLayers < 1 || numLayers > cfg.numLayers) {
    throw new BuildError(
      `numLayers must be an integer from 1 to ${cfg.numLayers} (the model's layer count), got ${numLayers}. ` +
        `Pick an early-exit depth inside the model.`,
    );
  }
  const treeMask = opts.treeMask ?? true;
  const hiddenStates = opts.hiddenStates ?? true;
  const features = opts.features ?? true;
  const io = opts.ioDtype ?? "float32";
  if (opts.attention !== undefined && opts.attention !== "fused" && opts.attention !== "ops") {
    throw new BuildError(`attention must be "fused" or "ops", got ${JSON.stringify(opts.attention)}.`);
  }
  // onnxruntime's GroupQueryAttention needs head_dim % 16 == 0 (and computes in the I/O dtype).
  const fused = opts.attention === "fused" && io === "float32" && cfg.headDim % 16 === 0;
  const maxPositions = opts.maxPositions ?? cfg.maxPositionEmbeddings;
  const progress = opts.onProgress ?? (() => {});
  const quant = opts.quantize ? resolveQuantize(opts.quantize) : undefined;
  const names = checkCheckpoint(cfg, weights, numLayers);
  if (quant?.embeddings && cfg.hiddenSize % quant.blockSize !== 0) {
    throw new BuildError(
      `Quantizing the embedding needs hidden_size (${cfg.hiddenSize}) to be a multiple of the block size (${quant.blockSize}). ` +
        `Pick a smaller block size or leave the embedding in float (drop quantizeEmbeddings / --quantize-embeddings).`,
    );
  }

  const { hiddenSize: H, intermediateSize: I, numHeads: NH, numKvHeads: KV, headDim: D, vocabSize: V } = cfg;
  const G = NH / KV;
  const qDim = NH * D;
  const kvDim = KV * D;
  const attnScale = 1 / Math.sqrt(D);

  const g = new GraphBuilder({
    name: `${cfg.architecture}_decoder`,
    modelPath: outPath,
    externalData: opts.externalData,
    producerVersion: BUILDER_VERSION,
  });
  try {
    // ---- inputs
    const inputIds = g.input("input_ids", "int64", ["batch_size", "sequence_length"]);
    const attentionMask = g.input("attention_mask", "int64", ["batch_size", "total_sequence_length"]);
    const positionIds = g.input("position_ids", "int64", ["batch_size", "sequence_length"]);
    const past: { key: string; value: string }[] = [];
    for (let i = 0; i < numLayers; i++) {
      const dims = ["batch_size", KV, "past_sequence_length", D];
      past.push({
        key: g.input(`past_key_values.${i}.key`, io, dims),
        value: g.input(`past_key_values.${i}.value`, io, dims),
      });
    }
    const treeInput = treeMask
      ? g.input("tree_attention_mask", "uint8", ["batch_size", "sequence_length", "total_sequence_length"])
      : undefined;

    const c64 = (v: number[]) => g.constInt64(v);
    /**
     * y = x W^T as MatMulNBits for W [N, K] in HF layout (rows = outputs). The scales of the first
     * `scaledRows` rows are multiplied by `rowScale` (1/sqrt(head_dim) folded into W_q: same codes).
     */
    const qLinear = (x: string, name: string, w: Float32Array, N: number, K: number, scaledRows = 0, rowScale = 1): string => {
      if (quant!.kind === "uint8") {
        const q = quantizeUint8(w, N, K);
        if (rowScale !== 1) for (let i = 0; i < scaledRows; i++) q.scales[i] = Math.fround(q.scales[i]! * rowScale);
        g.initializer(`${name}.qweight`, "uint8", [K, N], q.q);
        g.initializer(`${name}.zero_point`, "uint8", [N], q.zeroPoints);
        g.initializer(`${name}.scales`, "float32", [N], q.scales);
        const [xq, xScale, xZp] = g.node("DynamicQuantizeLinear", [x], {}, 3) as [string, string, string];
        const acc = g.op("MatMulInteger", [xq, `${name}.qweight`, xZp, `${name}.zero_point`]);
        return g.op("Mul", [g.op("Cast", [acc], { to: FLOAT }), g.op("Mul", [xScale, `${name}.scales`])]);
      }
      if (quant!.kind === "bnb4") {
        const q = quantizeBnb4(w, N, K, quant!.blockSize);
        if (rowScale !== 1) {
          // absmax blocks run over W flattened; the scaled rows are whole blocks when K is a multiple of the block.
          if ((scaledRows * K) % quant!.blockSize !== 0) throw new BuildError(`bnb4 needs hidden_size to be a multiple of the block size (${quant!.blockSize}).`);
          for (let i = 0; i < (scaledRows * K) / quant!.blockSize; i++) q.absmax[i] = Math.fround(q.absmax[i]! * rowScale);
        }
        g.initializer(`${name}.qweight`, "uint8", [q.packed.length], q.packed);
        g.initializer(`${name}.absmax`, "float32", [q.absmax.length], q.absmax);
        return g.msOp("MatMulBnb4", [x, `${name}.qweight`, `${name}.absmax`], { K, N, block_size: quant!.blockSize, quant_type: 1 });
      }
      const q = quantizeMatrix(w, N, K, quant!.bits, quant!.blockSize);
      if (rowScale !== 1) for (let i = 0; i < scaledRows * q.nBlocks; i++) q.scales[i] = Math.fround(q.scales[i]! * rowScale);
      return matMulNBits(g, x, name, q, quant!.accuracyLevel);
    };
    const concatRows = (parts: Float32Array[]): Float32Array => {
      const out = new Float32Array(parts.reduce((s, a) => s + a.length, 0));
      let o = 0;
      for (const a of parts) {
        out.set(a, o);
        o += a.length;
      }
      return out;
    };
    const unsqueeze = (x: string, axes: number[]) => g.op("Unsqueeze", [x, c64(axes)]);
    const reshape = (x: string, shape: number[]) => g.op("Reshape", [x, c64(shape)]);
    const transpose = (x: string, perm: number[]) => g.op("Transpose", [x], { perm });
    const eps = g.constFloat(cfg.rmsNormEps);
    const two = g.constFloat(2);
    // x / sqrt(mean(x^2) + eps) * w over the last axis (Pow form so onnxruntime can fuse it).
    const rmsNorm = (x: string, weightName: string): string => {
      const ms = g.op("ReduceMean", [g.op("Pow", [x, two])], { axes: [-1], keepdims: 1 });
      const y = g.op("Div", [x, g.op("Sqrt", [g.op("Add", [ms, eps])])]);
      return g.op("Mul", [y, weightName]);
    };

    // ---- attention mask [B, 1, G*S, T] (bool), built once for all layers
    let allowed: string; // [B, S, T] or [S, T]
    if (treeInput) {
      allowed = g.op("Cast", [treeInput], { to: BOOL });
    } else {
      const seqLen = g.op("Shape", [inputIds], { start: 1, end: 2 });
      const totalLen = g.op("Shape", [attentionMask], { start: 1, end: 2 });
      const pastLen = g.op("Sub", [totalLen, seqLen]);
      const zero = g.constInt64([0], true);
      const one = g.constInt64([1], true);
      const totalScalar = g.op("Squeeze", [totalLen, c64([0])]);
      const pastScalar = g.op("Squeeze", [pastLen, c64([0])]);
      const keyPos = g.op("Range", [zero, totalScalar, one]); // [T]
      const queryPos = unsqueeze(g.op("Range", [pastScalar, totalScalar, one]), [1]); // [S, 1]
      allowed = g.op("LessOrEqual", [keyPos, queryPos]); // [S, T]
    }
    const keyValid = g.op("Cast", [unsqueeze(attentionMask, [1])], { to: BOOL }); // [B, 1, T]
    let mask = unsqueeze(g.op("And", [allowed, keyValid]), [1]); // [B, 1, S, T]
    // fused: one additive bias [B, 1, S, T] for every layer and head (GroupQueryAttention adds it
    // to the scores after its own causal mask, which every tree mask lies within).
    const bias = fused ? attentionBias(g, mask, NEG_INF) : "";
    const lengths = fused ? gqaLengths(g, attentionMask, inputIds) : undefined;
    if (!fused && G > 1) mask = g.op("Tile", [mask, c64([1, 1, G, 1])]); // [B, 1, G*S, T], row g*S+s -> s
    const negInf = g.constFloat(NEG_INF);

    // ---- RoPE tables: fused, [maxPositions, D/2] caches for GroupQueryAttention; ops, gathered by
    // position_ids -> [B, S, 1, D]
    const { cos, sin } = weights.ropeTables?.(maxPositions) ?? ropeTables(cfg, maxPositions);
    const half = D / 2;
    let cosCache = "";
    let sinCache = "";
    if (fused) {
      const c = new Float32Array(maxPositions * half);
      const sn = new Float32Array(maxPositions * half);
      for (let p = 0; p < maxPositions; p++) {
        c.set(cos.subarray(p * D, p * D + half), p * half);
        sn.set(sin.subarray(p * D, p * D + half), p * half);
      }
      cosCache = g.initializer("rope.cos_cache", "float32", [maxPositions, half], c);
      sinCache = g.initializer("rope.sin_cache", "float32", [maxPositions, half], sn);
    }
    for (let p = 0; p < maxPositions; p++) for (let j = 0; j < half; j++) sin[p * D + j] = -sin[p * D + j]!;
    const cosT = fused ? "" : g.initializer("rope.cos", "float32", [maxPositions, D], cos);
    const sinT = fused ? "" : g.initializer("rope.sin_signed", "float32", [maxPositions, D], sin);
    const cosP = fused ? "" : unsqueeze(g.op("Gather", [cosT, positionIds], { axis: 0 }), [2]);
    const sinP = fused ? "" : unsqueeze(g.op("Gather", [sinT, positionIds], { axis: 0 }), [2]);
    const halves = fused ? "" : c64([half, half]);
    const rope = (x: string): string => {
      const [x1, x2] = g.node("Split", [x, halves], { axis: -1 }, 2) as [string, string];
      const rotated = g.op("Concat", [x2, x1], { axis: -1 });
      return g.op("Add", [g.op("Mul", [x, cosP]), g.op("Mul", [rotated, sinP])]);
    };

    // ---- embeddings
    const floatEmbedNeeded = !quant?.embeddings || (names.tied && !quant.lmHead);
    if (floatEmbedNeeded) g.initializer(names.embed, "float32", [V, H], getWeight(weights, names.embed, [V, H]));
    let x: string; // [B, S, H]
    if (quant?.embeddings) {
      // GatherBlockQuantized: the same symmetric blocks along hidden, default zero point 2^(bits-1).
      const q = quantizeMatrix(getWeight(weights, names.embed, [V, H]), V, H, quant.bits, quant.blockSize);
      g.initializer("model.embed_tokens.qweight", "uint8", [V, (H * quant.bits) / 8], q.packed);
      g.initializer("model.embed_tokens.scales", "float32", [V, H / quant.blockSize], q.scales);
      x = g.msOp("GatherBlockQuantized", ["model.embed_tokens.qweight", inputIds, "model.embed_tokens.scales"], {
        gather_axis: 0,
        quantize_axis: 1,
        block_size: quant.blockSize,
        bits: quant.bits,
      });
    } else x = g.op("Gather", [names.embed, inputIds], { axis: 0 });

    const qkvSplit = (): string => c64([qDim, kvDim, kvDim]);
    const guSplit = c64([I, I]);
    // fused: a sublayer's output waits in `pending` and is added to the residual `x` by the next
    // norm (SkipSimplifiedLayerNormalization); ops: added at once.
    let pending: string | undefined;
    const addResidual = (out: string) => {
      if (fused) pending = out;
      else x = g.op("Add", [x, out]);
    };
    const normResidual = (weightName: string): string => {
      if (!pending) return rmsNorm(x, weightName);
      const [y, sum] = skipRmsNorm(g, x, pending, weightName, cfg.rmsNormEps);
      x = sum;
      pending = undefined;
      return y;
    };
    for (let i = 0; i < numLayers; i++) {
      progress(`layer ${i + 1}/${numLayers}`);
      const l = names.layer(i);
      const p = `model.layers.${i}`;

      // attention block
      g.initializer(`${p}.input_layernorm.weight`, "float32", [H], getWeight(weights, l.inputNorm, [H]));
      const xn = normResidual(`${p}.input_layernorm.weight`);

      const qkvCols = qDim + 2 * kvDim;
      const qScale = cfg.qkNorm ? 1 : attnScale;
      let qkv: string;
      const preQkv = preQuantizedParts(weights, [l.q, l.k, l.v], `layer ${i} q/k/v`);
      if (preQkv) qkv = preQuantizedLinear(g, xn, `${p}.self_attn.qkv_proj`, stackPreQuantized(preQkv, `layer ${i} q/k/v`, qDim, qScale));
      else if (quant) {
        const w = concatRows([getWeight(weights, l.q, [qDim, H]), getWeight(weights, l.k, [kvDim, H]), getWeight(weights, l.v, [kvDim, H])]);
        qkv = qLinear(xn, `${p}.self_attn.qkv_proj`, w, qkvCols, H, qDim, qScale);
      } else {
        const wqkv = new Float32Array(H * qkvCols);
        transposeInto(getWeight(weights, l.q, [qDim, H]), qDim, H, wqkv, qkvCols, 0, qScale);
        transposeInto(getWeight(weights, l.k, [kvDim, H]), kvDim, H, wqkv, qkvCols, qDim);
        transposeInto(getWeight(weights, l.v, [kvDim, H]), kvDim, H, wqkv, qkvCols, qDim + kvDim);
        g.initializer(`${p}.self_attn.qkv_proj.weight_t`, "float32", [H, qkvCols], wqkv);
        qkv = g.op("MatMul", [xn, `${p}.self_attn.qkv_proj.weight_t`]);
      }
      if (cfg.attentionBias) {
        const b = new Float32Array(qkvCols);
        b.set(scaled(getWeight(weights, l.qBias, [qDim]), qScale), 0);
        b.set(getWeight(weights, l.kBias, [kvDim]), qDim);
        b.set(getWeight(weights, l.vBias, [kvDim]), qDim + kvDim);
        g.initializer(`${p}.self_attn.qkv_proj.bias`, "float32", [qkvCols], b);
        qkv = g.op("Add", [qkv, `${p}.self_attn.qkv_proj.bias`]);
      }
      const presentKey = `present.${i}.key`;
      const presentValue = `present.${i}.value`;
      const kvDims = ["batch_size", KV, "total_sequence_length", D];
      let ctxFlat: string; // [B, S, NH * D]
      if (fused) {
        const gqa = { pastKey: past[i]!.key, pastValue: past[i]!.value, ...lengths!, cosCache, sinCache, positionIds, bias, numHeads: NH, kvHeads: KV, scale: 1, presentKey, presentValue };
        if (cfg.qkNorm) {
          const [q0, k0, v0] = g.node("Split", [qkv, qkvSplit()], { axis: -1 }, 3) as [string, string, string];
          g.initializer(`${p}.self_attn.q_norm.weight_scaled`, "float32", [D], scaled(getWeight(weights, l.qNorm, [D]), attnScale));
          g.initializer(`${p}.self_attn.k_norm.weight`, "float32", [D], getWeight(weights, l.kNorm, [D]));
          const qn = reshape(rmsNorm(reshape(q0, [0, 0, NH, D]), `${p}.self_attn.q_norm.weight_scaled`), [0, 0, qDim]);
          const kn = reshape(rmsNorm(reshape(k0, [0, 0, KV, D]), `${p}.self_attn.k_norm.weight`), [0, 0, kvDim]);
          ctxFlat = groupQueryAttention(g, { query: qn, key: kn, value: v0, ...gqa });
        } else ctxFlat = groupQueryAttention(g, { query: qkv, ...gqa });
        g.output(presentKey, io, kvDims);
        g.output(presentValue, io, kvDims);
      } else {
        const [q0, k0, v0] = g.node("Split", [qkv, qkvSplit()], { axis: -1 }, 3) as [string, string, string];
        let q = reshape(q0, [0, 0, NH, D]); // [B, S, NH, D]
        let k = reshape(k0, [0, 0, KV, D]);
        const v = reshape(v0, [0, 0, KV, D]);
        if (cfg.qkNorm) {
          g.initializer(`${p}.self_attn.q_norm.weight_scaled`, "float32", [D], scaled(getWeight(weights, l.qNorm, [D]), attnScale));
          g.initializer(`${p}.self_attn.k_norm.weight`, "float32", [D], getWeight(weights, l.kNorm, [D]));
          q = rmsNorm(q, `${p}.self_attn.q_norm.weight_scaled`);
          k = rmsNorm(k, `${p}.self_attn.k_norm.weight`);
        }
        q = transpose(rope(q), [0, 2, 1, 3]); // [B, NH, S, D], already scaled by 1/sqrt(D)
        const kNew = transpose(rope(k), [0, 2, 1, 3]); // [B, KV, S, D]
        const vNew = transpose(v, [0, 2, 1, 3]);

        let kAll: string;
        let vAll: string;
        if (io === "float32") {
          g.node("Concat", [past[i]!.key, kNew], { axis: 2 }, [presentKey]);
          g.node("Concat", [past[i]!.value, vNew], { axis: 2 }, [presentValue]);
          kAll = presentKey;
          vAll = presentValue;
        } else {
          // Round the new K/V to float16 before attending, so a token sees exactly the cache values
          // later steps will see (a K-token forward then matches K one-token forwards).
          g.node("Concat", [past[i]!.key, g.op("Cast", [kNew], { to: FLOAT16 })], { axis: 2 }, [presentKey]);
          g.node("Concat", [past[i]!.value, g.op("Cast", [vNew], { to: FLOAT16 })], { axis: 2 }, [presentValue]);
          kAll = g.op("Cast", [presentKey], { to: FLOAT });
          vAll = g.op("Cast", [presentValue], { to: FLOAT });
        }
        g.output(presentKey, io, kvDims);
        g.output(presentValue, io, kvDims);

        // GQA: view the NH query heads as KV groups of G*S rows; each group attends its kv head.
        const qGrouped = reshape(q, [0, KV, -1, D]); // [B, KV, G*S, D]
        const scores = g.op("MatMul", [qGrouped, transpose(kAll, [0, 1, 3, 2])]); // [B, KV, G*S, T]
        const probs = g.op("Softmax", [g.op("Where", [mask, scores, negInf])], { axis: -1 });
        const ctx = g.op("MatMul", [probs, vAll]); // [B, KV, G*S, D]
        ctxFlat = reshape(transpose(reshape(ctx, [0, NH, -1, D]), [0, 2, 1, 3]), [0, 0, qDim]);
      }

      let attnOut: string;
      const preO = preQuantizedParts(weights, [l.o], `layer ${i} o_proj`);
      if (preO) attnOut = preQuantizedLinear(g, ctxFlat, `${p}.self_attn.o_proj`, preO[0]!);
      else if (quant) attnOut = qLinear(ctxFlat, `${p}.self_attn.o_proj`, getWeight(weights, l.o, [H, qDim]), H, qDim);
      else {
        const wo = new Float32Array(qDim * H);
        transposeInto(getWeight(weights, l.o, [H, qDim]), H, qDim, wo, H, 0);
        g.initializer(`${p}.self_attn.o_proj.weight_t`, "float32", [qDim, H], wo);
        attnOut = g.op("MatMul", [ctxFlat, `${p}.self_attn.o_proj.weight_t`]);
      }
      const oBias = getOptional(weights, l.oBias, [H]);
      if (oBias) attnOut = g.op("Add", [attnOut, g.initializer(`${p}.self_attn.o_proj.bias`, "float32", [H], oBias)]);
      addResidual(attnOut);

      // MLP block
      g.initializer(`${p}.post_attention_layernorm.weight`, "float32", [H], getWeight(weights, l.postNorm, [H]));
      const xn2 = normResidual(`${p}.post_attention_layernorm.weight`);
      let gu: string;
      const preGu = preQuantizedParts(weights, [l.gate, l.up], `layer ${i} gate/up`);
      if (preGu) gu = preQuantizedLinear(g, xn2, `${p}.mlp.gate_up_proj`, stackPreQuantized(preGu, `layer ${i} gate/up`));
      else if (quant) {
        gu = qLinear(xn2, `${p}.mlp.gate_up_proj`, concatRows([getWeight(weights, l.gate, [I, H]), getWeight(weights, l.up, [I, H])]), 2 * I, H);
      } else {
        const wgu = new Float32Array(H * 2 * I);
        transposeInto(getWeight(weights, l.gate, [I, H]), I, H, wgu, 2 * I, 0);
        transposeInto(getWeight(weights, l.up, [I, H]), I, H, wgu, 2 * I, I);
        g.initializer(`${p}.mlp.gate_up_proj.weight_t`, "float32", [H, 2 * I], wgu);
        gu = g.op("MatMul", [xn2, `${p}.mlp.gate_up_proj.weight_t`]);
      }
      const gBias = getOptional(weights, l.gateBias, [I]);
      const uBias = getOptional(weights, l.upBias, [I]);
      if (gBias || uBias) {
        const b = new Float32Array(2 * I);
        if (gBias) b.set(gBias, 0);
        if (uBias) b.set(uBias, I);
        gu = g.op("Add", [gu, g.initializer(`${p}.mlp.gate_up_proj.bias`, "float32", [2 * I], b)]);
      }
      const [gate, up] = g.node("Split", [gu, guSplit], { axis: -1 }, 2) as [string, string];
      const act = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate])]), up]);
      let mlpOut: string;
      const preDown = preQuantizedParts(weights, [l.down], `layer ${i} down_proj`);
      if (preDown) mlpOut = preQuantizedLinear(g, act, `${p}.mlp.down_proj`, preDown[0]!);
      else if (quant) mlpOut = qLinear(act, `${p}.mlp.down_proj`, getWeight(weights, l.down, [H, I]), H, I);
      else {
        const wd = new Float32Array(I * H);
        transposeInto(getWeight(weights, l.down, [H, I]), H, I, wd, H, 0);
        g.initializer(`${p}.mlp.down_proj.weight_t`, "float32", [I, H], wd);
        mlpOut = g.op("MatMul", [act, `${p}.mlp.down_proj.weight_t`]);
      }
      const dBias = getOptional(weights, l.downBias, [H]);
      if (dBias) mlpOut = g.op("Add", [mlpOut, g.initializer(`${p}.mlp.down_proj.bias`, "float32", [H], dBias)]);
      addResidual(mlpOut);
      await yieldToEventLoop();
    }

    // ---- final norm, lm_head
    g.initializer("model.norm.weight", "float32", [H], getWeight(weights, names.norm, [H]));
    let hidden: string;
    if (pending) {
      [hidden, x] = skipRmsNorm(g, x, pending, "model.norm.weight", cfg.rmsNormEps);
      pending = undefined;
    } else hidden = rmsNorm(x, "model.norm.weight");
    if (features) g.output("features", "float32", ["batch_size", "sequence_length", H], x);
    if (hiddenStates) g.output("hidden_states", "float32", ["batch_size", "sequence_length", H], hidden);
    const flat = reshape(hidden, [-1, H]);
    let logits2d: string;
    const preHead = names.tied ? undefined : preQuantizedParts(weights, [names.lmHead], "lm_head");
    if (preHead) logits2d = preQuantizedLinear(g, flat, "lm_head", preHead[0]!);
    else if (quant?.lmHead) logits2d = qLinear(flat, "lm_head", getWeight(weights, names.lmHead, [V, H]), V, H);
    else {
      if (!names.tied) g.initializer(names.lmHead, "float32", [V, H], getWeight(weights, names.lmHead, [V, H]));
      logits2d = g.op("Gemm", [flat, names.lmHead], { transB: 1, alpha: attr.float(1), beta: attr.float(1) });
    }
    const logitsShape = g.op("Concat", [g.op("Shape", [inputIds]), c64([V])], { axis: 0 });
    const logits = g.op("Reshape", [logits2d, logitsShape]);
    g.output("logits", io, ["batch_size", "sequence_length", V], io === "float32" ? logits : g.op("Cast", [logits], { to: FLOAT16 }));

    // ---- metadata
    g.setMetadata("spec_decode.builder", BUILDER_VERSION);
    g.setMetadata("spec_decode.architecture", cfg.architecture);
    g.setMetadata("spec_decode.num_layers", String(numLayers));
    g.setMetadata("spec_decode.source_num_layers", String(cfg.numLayers));
    g.setMetadata("spec_decode.early_exit", numLayers < cfg.numLayers ? "true" : "false");
    g.setMetadata("spec_decode.tree_mask", treeMask ? "true" : "false");
    g.setMetadata("spec_decode.hidden_states", hiddenStates ? "true" : "false");
    g.setMetadata("spec_decode.features", features ? "true" : "false");
    g.setMetadata("spec_decode.io_dtype", io);
    g.setMetadata("spec_decode.graph_form", fused ? "fused" : "ops");
    g.setMetadata("spec_decode.max_positions", String(maxPositions));
    if (quant) {
      g.setMetadata("spec_decode.quantize", quant.kind);
      g.setMetadata("spec_decode.quantize_block_size", String(quant.blockSize));
      g.setMetadata("spec_decode.quantize_accuracy_level", String(quant.accuracyLevel));
      g.setMetadata("spec_decode.quantize_lm_head", String(quant.lmHead));
      g.setMetadata("spec_decode.quantize_embeddings", String(quant.embeddings));
    }
    for (const [k, val] of Object.entries(opts.metadata ?? {})) g.setMetadata(k, val);

    progress(`writing ${outPath}`);
    g.save(outPath);
  } finally {
    g.dispose();
  }
}
