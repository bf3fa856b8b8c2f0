/**
 * Block quantization of linear weights for onnxruntime's `com.microsoft.MatMulNBits` (and the
 * dequantized copies the float64 reference forward computes with).
 *
 * Layout (onnxruntime's contrib-op spec): a weight used as y = x W^T with W [N = out, K = in] (the
 * Hugging Face layout, so no transpose) is cut into blocks of `blockSize` consecutive K values per
 * output row. B is uint8 [N, nBlocks, blockSize * bits / 8] with codes packed low bits first,
 * scales is float32 [N * nBlocks], and the value of a code c is (c - zeroPoint) * scale.
 *
 * Choice: SYMMETRIC, no zero_points input, so the zero point is the op's default 2^(bits-1) (8 for
 * 4-bit, 128 for 8-bit). Why:
 *  - It is exactly llama.cpp's Q4_0 / Q8_0 numerics (block 32): Q4_0 takes d = m / -8 where m is
 *    the block's value of largest magnitude (sign kept) and codes min(15, trunc(x / d + 8.5));
 *    Q8_0 takes d = max|x| / 127 and codes round(x / d); both store d as float16. We compute the
 *    same codes and keep the float16-rounded d as the float32 scale, so a GGUF written from the same
 *    safetensors (scripts/) holds bit-identical weights and a side-by-side compares engines, not
 *    quantizers.
 *  - No zero-point tensor to stream (fewer bytes per token) and onnxruntime's symmetric kernels.
 *  - The weights of these models are centred on zero; an asymmetric min/max grid buys little for
 *    the extra bytes. (Q4_0's -8 trick already uses all 16 codes.)
 */
import { InvalidOptionError } from "../errors.js";
import { f16BitsToF32, f32ToF16Bits } from "../util/half.js";
import type { GraphBuilder } from "./onnx-graph.js";

/**
 * int4 / int8: MatMulNBits (symmetric blocks, above). The two others exist to reproduce the other
 * onnx-community variants honestly:
 *  - uint8: what onnxruntime's quantize_dynamic writes for model_uint8.onnx: DynamicQuantizeLinear
 *    on the activation (per tensor, uint8), MatMulInteger with uint8 weights (asymmetric, one
 *    scale and zero point per output channel), Cast, and a Mul by the two scales.
 *  - bnb4: MatMulBnb4 (bitsandbytes NF4: 16 fixed levels times a per-block absmax), model_bnb4.onnx.
 */
export type QuantizeKind = "int4" | "int8" | "uint8" | "bnb4";
export const QUANTIZE_KINDS: readonly QuantizeKind[] = ["int4", "int8", "uint8", "bnb4"];
export const BLOCK_SIZES = [32, 64, 128] as const;
export const ACCURACY_LEVELS = [0, 1, 2, 4] as const;
export type BlockSize = (typeof BLOCK_SIZES)[number];
export type AccuracyLevel = (typeof ACCURACY_LEVELS)[number];

/** What to quantize and how (the builder's `quantize` option). */
export interface QuantizeOptions {
  kind: QuantizeKind;
  /** K values per block (default 32, like Q4_0 / Q8_0). */
  blockSize?: BlockSize;
  /**
   * MatMulNBits accuracy_level: the precision onnxruntime computes in. 0/1 = float32 (the
   * dequantized weights times float activations), 2 = float16, 4 = int8 activations (quantized
   * on the fly per block; the fastest on CPU). Default 4.
   */
  accuracyLevel?: AccuracyLevel;
  /** Also quantize lm_head (default false). */
  lmHead?: boolean;
  /** Also quantize the embedding table (GatherBlockQuantized; default false: one row is read per token). */
  embeddings?: boolean;
}

export interface ResolvedQuantize {
  kind: QuantizeKind;
  /** Weight bits (uint8: 8, bnb4: 4). */
  bits: 4 | 8;
  blockSize: BlockSize;
  accuracyLevel: AccuracyLevel;
  lmHead: boolean;
  embeddings: boolean;
}

/** Validate quantize options (errors name the option in `flag` vocabulary: "--block-size" or "blockSize"). */
export function resolveQuantize(q: QuantizeOptions, names: { kind: string; blockSize: string; accuracyLevel: string } = { kind: "quantize", blockSize: "blockSize", accuracyLevel: "accuracyLevel" }): ResolvedQuantize {
  if (!QUANTIZE_KINDS.includes(q.kind)) throw new InvalidOptionError(`${names.kind} must be int4, int8, uint8 or bnb4 (got ${JSON.stringify(q.kind)}).`);
  const blockSize = q.blockSize ?? 32;
  if (!BLOCK_SIZES.includes(blockSize)) throw new InvalidOptionError(`${names.blockSize} must be 32, 64 or 128 (got ${JSON.stringify(q.blockSize)}).`);
  const accuracyLevel = q.accuracyLevel ?? 4;
  if (!ACCURACY_LEVELS.includes(accuracyLevel)) throw new InvalidOptionError(`${names.accuracyLevel} must be 0, 1, 2 or 4 (got ${JSON.stringify(q.accuracyLevel)}).`);
  if (q.embeddings && (q.kind === "uint8" || q.kind === "bnb4")) {
    throw new InvalidOptionError(`Quantized embeddings need ${names.kind} int4 or int8 (GatherBlockQuantized); ${q.kind} keeps the embedding in float.`);
  }
  return { kind: q.kind, bits: q.kind === "int4" || q.kind === "bnb4" ? 4 : 8, blockSize, accuracyLevel, lmHead: q.lmHead ?? false, embeddings: q.embeddings ?? false };
}

/**
 * The onnx-community file-name suffix of a build: q4 (int4, float32 io), q4f16 (int4, float16
 * io), int8 (8-bit, float32 io), int8f16. Unquantized builds keep model.onnx.
 */
export function variantSuffix(kind: QuantizeKind, ioDtype: "float32" | "float16" = "float32"): string {
  const base = kind === "int4" ? "q4" : kind;
  return ioDtype === "float16" ? `${base}f16` : base;
}

/** The model file name for a build: model.onnx, model_q4.onnx, model_q4f16.onnx, model_int8.onnx ... */
export function modelFileName(kind: QuantizeKind | undefined, ioDtype: "float32" | "float16" = "float32"): string {
  return kind ? `model_${variantSuffix(kind, ioDtype)}.onnx` : "model.onnx";
}

/** Early-exit graphs of a quantized build: early_exit_{m}_q4.onnx (beside model_q4.onnx). */
export function earlyExitFileName(m: number, kind: QuantizeKind | undefined, ioDtype: "float32" | "float16" = "float32"): string {
  return kind ? `early_exit_${m}_${variantSuffix(kind, ioDtype)}.onnx` : `early_exit_${m}.onnx`;
}

export interface QuantizedMatrix {
  /** [N, nBlocks, blobSize] packed codes. */
  packed: Uint8Array;
  /** [N * nBlocks] float32 (float16-representable before `scaleBy`). */
  scales: Float32Array;
  N: number;
  K: number;
  nBlocks: number;
  blobSize: number;
  bits: 4 | 8;
  blockSize: number;
}

const f16round = (x: number): number => f16BitsToF32(f32ToF16Bits(x));

/**
 * Quantize W [N, K] (row-major, HF layout) block-wise along K. `scaleBy` multiplies every scale
 * afterwards (the codes do not change): the builder folds 1/sqrt(head_dim) into W_q this way.
 */
export function quantizeMatrix(w: Float32Array, N: number, K: number, bits: 4 | 8, blockSize: number, scaleBy = 1): QuantizedMatrix {
  if (w.length !== N * K) throw new InvalidOptionError(`Internal quantizer error: ${w.length} values for a ${N}x${K} matrix. Please report this.`);
  const nBlocks = Math.ceil(K / blockSize);
  const blobSize = (blockSize * bits) / 8;
  const packed = new Uint8Array(N * nBlocks * blobSize);
  const scales = new Float32Array(N * nBlocks);
  const zp = bits === 4 ? 8 : 128;
  const codes = new Uint8Array(blockSize);
  for (let n = 0; n < N; n++) {
    const row = n * K;
    for (let b = 0; b < nBlocks; b++) {
      const k0 = b * blockSize;
      const k1 = Math.min(K, k0 + blockSize);
      codes.fill(zp);
      let d: number;
      if (bits === 4) {
        // Q4_0: d = (value of largest magnitude) / -8; code = min(15, trunc(x / d + 8.5)).
        let m = 0;
        let amax = 0;
        for (let k = k0; k < k1; k++) {
          const x = w[row + k]!;
          if (Math.abs(x) > amax) {
            amax = Math.abs(x);
            m = x;
          }
        }
        d = Math.fround(m / -8);
        const id = d !== 0 ? Math.fround(1 / d) : 0;
        for (let k = k0; k < k1; k++) codes[k - k0] = Math.min(15, Math.trunc(Math.fround(Math.fround(w[row + k]! * id) + 8.5)));
      } else {
        // Q8_0: d = max|x| / 127; code = round(x / d) (half away from zero), stored + 128.
        let amax = 0;
        for (let k = k0; k < k1; k++) amax = Math.max(amax, Math.abs(w[row + k]!));
        d = Math.fround(amax / 127);
        const id = d !== 0 ? Math.fround(1 / d) : 0;
        for (let k = k0; k < k1; k++) {
          const v = Math.fround(w[row + k]! * id);
          codes[k - k0] = Math.sign(v) * Math.round(Math.abs(v)) + 128;
        }
      }
      scales[n * nBlocks + b] = Math.fround(f16round(d) * scaleBy);
      const out = (n * nBlocks + b) * blobSize;
      if (bits === 4) for (let j = 0; j < blobSize; j++) packed[out + j] = codes[2 * j]! | (codes[2 * j + 1]! << 4);
      else packed.set(codes, out);
    }
  }
  return { packed, scales, N, K, nBlocks, blobSize, bits, blockSize };
}

/**
 * x W^T as one com.microsoft MatMulNBits node over the quantized W [N, K]: initializers
 * `${name}.qweight` [N, nBlocks, blobSize] and `${name}.scales` [N * nBlocks], no zero points
 * (symmetric codes). Returns the output name. The decoder builder (llama.ts) and the EAGLE head
 * (eagle-head.ts) both write their 4/8-bit linear layers with it.
 */
export function matMulNBits(g: GraphBuilder, x: string, name: string, q: QuantizedMatrix, accuracyLevel: number): string {
  g.initializer(`${name}.qweight`, "uint8", [q.N, q.nBlocks, q.blobSize], q.packed);
  g.initializer(`${name}.scales`, "float32", [q.N * q.nBlocks], q.scales);
  return g.msOp("MatMulNBits", [x, `${name}.qweight`, `${name}.scales`], { K: q.K, N: q.N, bits: q.bits, block_size: q.blockSize, accuracy_level: accuracyLevel });
}

/** The float32 weights W [N, K] a quantized matrix stands for: (code - zeroPoint) * scale. */
export function dequantizeMatrix(q: QuantizedMatrix): Float32Array {
  const { N, K, nBlocks, blobSize, bits, blockSize } = q;
  const out = new Float32Array(N * K);
  const zp = bits === 4 ? 8 : 128;
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < nBlocks; b++) {
      const s = q.scales[n * nBlocks + b]!;
      const base = (n * nBlocks + b) * blobSize;
      for (let j = 0; j < blockSize; j++) {
        const k = b * blockSize + j;
        if (k >= K) break;
        const code = bits === 4 ? (q.packed[base + (j >> 1)]! >> ((j & 1) * 4)) & 15 : q.packed[base + j]!;
        out[n * K + k] = Math.fround((code - zp) * s);
      }
    }
  }
  return out;
}

/** Quantize then dequantize (what the reference forward computes with in its quantized mode). */
export function fakeQuantize(w: Float32Array, N: number, K: number, kind: QuantizeKind, blockSize: number): Float32Array {
  if (kind === "uint8") return dequantizeUint8(quantizeUint8(w, N, K));
  if (kind === "bnb4") return dequantizeBnb4(quantizeBnb4(w, N, K, blockSize));
  return dequantizeMatrix(quantizeMatrix(w, N, K, kind === "int4" ? 4 : 8, blockSize));
}

export interface Uint8Matrix {
  /** [K, N] (MatMulInteger's B layout: y = a @ B). */
  q: Uint8Array;
  /** [N] per output channel. */
  scales: Float32Array;
  zeroPoints: Uint8Array;
  N: number;
  K: number;
}

/** Asymmetric uint8 per output channel (quantize_dynamic's per-channel weights): range [min(0, w), max(0, w)] / 255. */
export function quantizeUint8(w: Float32Array, N: number, K: number): Uint8Matrix {
  const q = new Uint8Array(K * N);
  const scales = new Float32Array(N);
  const zeroPoints = new Uint8Array(N);
  for (let n = 0; n < N; n++) {
    let lo = 0;
    let hi = 0;
    for (let k = 0; k < K; k++) {
      const x = w[n * K + k]!;
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
    const scale = Math.fround(hi > lo ? (hi - lo) / 255 : 1);
    const zp = Math.min(255, Math.max(0, Math.round(-lo / scale)));
    scales[n] = scale;
    zeroPoints[n] = zp;
    for (let k = 0; k < K; k++) q[k * N + n] = Math.min(255, Math.max(0, Math.round(w[n * K + k]! / scale) + zp));
  }
  return { q, scales, zeroPoints, N, K };
}

export function dequantizeUint8(m: Uint8Matrix): Float32Array {
  const out = new Float32Array(m.N * m.K);
  for (let n = 0; n < m.N; n++) for (let k = 0; k < m.K; k++) out[n * m.K + k] = Math.fround((m.q[k * m.N + n]! - m.zeroPoints[n]!) * m.scales[n]!);
  return out;
}

/** bitsandbytes' NF4 levels (normal-float 4-bit). */
export const NF4_LEVELS = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236328, 1.0,
]);

export interface Bnb4Matrix {
  /** [ceil(N * K / 2)]: W [N, K] flattened, two codes a byte, the first in the high nibble. */
  packed: Uint8Array;
  /** [ceil(N * K / blockSize)] per-block absmax. */
  absmax: Float32Array;
  N: number;
  K: number;
  blockSize: number;
}

/** NF4 blockwise over W [N, K] flattened: code = nearest level of x / absmax(block). */
export function quantizeBnb4(w: Float32Array, N: number, K: number, blockSize: number): Bnb4Matrix {
  const total = N * K;
  const nBlocks = Math.ceil(total / blockSize);
  const absmax = new Float32Array(nBlocks);
  const packed = new Uint8Array(Math.ceil(total / 2));
  for (let b = 0; b < nBlocks; b++) {
    let m = 0;
    for (let i = b * blockSize; i < Math.min(total, (b + 1) * blockSize); i++) m = Math.max(m, Math.abs(w[i]!));
    absmax[b] = m;
    for (let i = b * blockSize; i < Math.min(total, (b + 1) * blockSize); i++) {
      const x = m > 0 ? w[i]! / m : 0;
      let best = 0;
      for (let c = 1; c < 16; c++) if (Math.abs(NF4_LEVELS[c]! - x) < Math.abs(NF4_LEVELS[best]! - x)) best = c;
      packed[i >> 1]! |= (i & 1) === 0 ? best << 4 : best;
    }
  }
  return { packed, absmax, N, K, blockSize };
}

export function dequantizeBnb4(m: Bnb4Matrix): Float32Array {
  const total = m.N * m.K;
  const out = new Float32Array(total);
  for (let i = 0; i < total; i++) {
    const code = (i & 1) === 0 ? m.packed[i >> 1]! >> 4 : m.packed[i >> 1]! & 15;
    out[i] = Math.fround(NF4_LEVELS[code]! * m.absmax[Math.floor(i / m.blockSize)]!);
  }
  return out;
}

/**
 * Quantize options from a surface's arguments (CLI flags or MCP/library fields), with errors in
 * that surface's vocabulary: block size / accuracy level / lm_head / embeddings without a
 * quantize kind are errors, not silently ignored.
 */
export function quantizeFromArgs(
  a: { quantize?: unknown; blockSize?: unknown; accuracyLevel?: unknown; lmHead?: unknown; embeddings?: unknown },
  surface: "cli" | "api",
): QuantizeOptions | undefined {
  const n =
    surface === "cli"
      ? { kind: "--quantize", blockSize: "--block-size", accuracyLevel: "--accuracy-level", lmHead: "--quantize-lm-head", embeddings: "--quantize-embeddings" }
      : { kind: "quantize", blockSize: "blockSize", accuracyLevel: "accuracyLevel", lmHead: "quantizeLmHead", embeddings: "quantizeEmbeddings" };
  if (a.quantize === undefined) {
    for (const k of ["blockSize", "accuracyLevel", "lmHead", "embeddings"] as const) {
      if (a[k] !== undefined && a[k] !== false) throw new InvalidOptionError(`${n[k]} only applies with ${n.kind} int4|int8|uint8|bnb4.`);
    }
    return undefined;
  }
  const num = (v: unknown, name: string): number | undefined => {
    if (v === undefined) return undefined;
    const x = Number(v);
    if (!Number.isInteger(x)) throw new InvalidOptionError(`${name} must be an integer (got ${JSON.stringify(v)}).`);
    return x;
  };
  const q: QuantizeOptions = {
    kind: a.quantize as QuantizeKind,
    blockSize: num(a.blockSize, n.blockSize) as BlockSize | undefined,
    accuracyLevel: num(a.accuracyLevel, n.accuracyLevel) as AccuracyLevel | undefined,
    lmHead: a.lmHead === true,
    embeddings: a.embeddings === true,
  };
  resolveQuantize(q, n); // validate now, in this surface's words
  return q;
}
