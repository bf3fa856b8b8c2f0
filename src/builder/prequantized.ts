/**
 * Linear weights that arrive already quantized (read out of an existing ONNX export, see
 * from-onnx.ts) and are written back as they are: com.microsoft MatMulNBits blocks, or the
 * dynamic-int8 form (DynamicQuantizeLinear + MatMulInteger, onnxruntime's quantize_dynamic). Codes
 * and zero points are kept byte for byte, scales converted to float32 (exact from float16; a
 * per-tensor scale or zero point is written once per output column, the same values). Nothing is
 * requantized; the only arithmetic is the optional per-row scale factor (1/sqrt(head_dim) folded
 * into the query rows' scales, exact when head_dim is a power of 4).
 */
import { BuildError } from "../errors.js";
import { dtypeCode, type GraphBuilder } from "./onnx-graph.js";

export type PreQuantized = NBitsWeight | IntegerWeight;

/** A MatMulInteger weight: y = (dynamic-uint8 x) B with B [K, N] int8/uint8, per-column scales and zero points. */
export interface IntegerWeight {
  kind: "integer";
  N: number;
  K: number;
  signed: boolean;
  /** [K, N] codes, row-major (MatMulInteger's B). */
  weight: Uint8Array;
  /** [N] zero points (same type as the codes). */
  zeroPoints: Uint8Array;
  /** [N] scales. */
  scales: Float32Array;
}

/** One MatMulNBits weight: y = x W^T for W [N, K] (rows = outputs), in onnxruntime's layout. */
export interface NBitsWeight {
  kind: "nbits";
  bits: number;
  blockSize: number;
  N: number;
  K: number;
  /** [N, nBlocks, blockSize * bits / 8] codes. */
  packed: Uint8Array;
  /** [N * nBlocks] per-block scales. */
  scales: Float32Array;
  /** [N * ceil(nBlocks * bits / 8)] packed zero points (absent: the symmetric default 2^(bits-1)). */
  zeroPoints?: Uint8Array;
  /** The export's accuracy_level attribute. */
  accuracyLevel: number;
}

const nBlocksOf = (m: NBitsWeight) => Math.ceil(m.K / m.blockSize);
const zpBytesPerRow = (m: NBitsWeight) => Math.ceil((nBlocksOf(m) * m.bits) / 8);

/** The default zero points of a row written out explicitly (2^(bits-1) in every slot). */
function defaultZeroPoints(m: NBitsWeight): Uint8Array {
  const out = new Uint8Array(m.N * zpBytesPerRow(m));
  if (m.bits === 4) out.fill(0x88);
  else if (m.bits === 8) out.fill(128);
  else throw new BuildError(`MatMulNBits with ${m.bits} bits and some zero points given is not supported (only 4 and 8 bits).`);
  return out;
}

/**
 * Stack row blocks [q; k; v] (or [gate; up]) into one weight: MatMulNBits stores each output row
 * on its own (codes, scales and zero points are row-major by N), so stacking is concatenation.
 * `rowScale` multiplies the scales of the first `scaledRows` rows.
 */
export function stackPreQuantized(parts: PreQuantized[], what: string, scaledRows = 0, rowScale = 1): PreQuantized {
  if (parts.every((p) => p.kind === "integer")) return stackInteger(parts as IntegerWeight[], what, scaledRows, rowScale);
  if (!parts.every((p) => p.kind === "nbits")) throw new BuildError(`${what}: the export quantizes these parts in different forms (MatMulNBits and MatMulInteger); the rebuild cannot fuse them.`);
  return stackNBits(parts as NBitsWeight[], what, scaledRows, rowScale);
}

function stackInteger(parts: IntegerWeight[], what: string, scaledRows: number, rowScale: number): IntegerWeight {
  const first = parts[0]!;
  if (parts.some((p) => p.signed !== first.signed || p.K !== first.K)) throw new BuildError(`${what}: the export's MatMulInteger parts mix int8 and uint8 weights; the rebuild cannot fuse them.`);
  const N = parts.reduce((s, p) => s + p.N, 0);
  const K = first.K;
  const weight = new Uint8Array(K * N);
  const zeroPoints = new Uint8Array(N);
  const scales = new Float32Array(N);
  let c0 = 0;
  for (const p of parts) {
    for (let k = 0; k < K; k++) weight.set(p.weight.subarray(k * p.N, (k + 1) * p.N), k * N + c0);
    zeroPoints.set(p.zeroPoints, c0);
    scales.set(p.scales, c0);
    c0 += p.N;
  }
  if (rowScale !== 1) for (let i = 0; i < scaledRows; i++) scales[i] = Math.fround(scales[i]! * rowScale);
  return { kind: "integer", N, K, signed: first.signed, weight, zeroPoints, scales };
}

function stackNBits(parts: NBitsWeight[], what: string, scaledRows: number, rowScale: number): NBitsWeight {
  const first = parts[0]!;
  for (const p of parts) {
    if (p.bits !== first.bits || p.blockSize !== first.blockSize || p.K !== first.K) {
      throw new BuildError(
        `${what}: the export quantizes its parts differently (bits ${p.bits}/${first.bits}, block ${p.blockSize}/${first.blockSize}, K ${p.K}/${first.K}); ` +
          `the rebuild keeps blocks as they are and cannot fuse these.`,
      );
    }
  }
  const N = parts.reduce((s, p) => s + p.N, 0);
  const cat = <T extends Uint8Array | Float32Array>(arrays: T[], make: (n: number) => T): T => {
    const out = make(arrays.reduce((s, a) => s + a.length, 0));
    let o = 0;
    for (const a of arrays) {
      out.set(a, o);
      o += a.length;
    }
    return out;
  };
  const scales = cat(
    parts.map((p) => p.scales),
    (n) => new Float32Array(n),
  );
  if (rowScale !== 1) for (let i = 0; i < scaledRows * nBlocksOf(first); i++) scales[i] = Math.fround(scales[i]! * rowScale);
  const anyZp = parts.some((p) => p.zeroPoints);
  return {
    kind: "nbits",
    bits: first.bits,
    blockSize: first.blockSize,
    N,
    K: first.K,
    packed: cat(
      parts.map((p) => p.packed),
      (n) => new Uint8Array(n),
    ),
    scales,
    zeroPoints: anyZp
      ? cat(
          parts.map((p) => p.zeroPoints ?? defaultZeroPoints(p)),
          (n) => new Uint8Array(n),
        )
      : undefined,
    accuracyLevel: first.accuracyLevel,
  };
}

/** Emit `x W^T` with the weight's own codes (MatMulNBits, or DynamicQuantizeLinear + MatMulInteger); returns the output name. */
export function preQuantizedLinear(g: GraphBuilder, x: string, name: string, m: PreQuantized): string {
  if (m.kind === "integer") {
    const t = m.signed ? "int8" : "uint8";
    const codes = m.signed ? new Int8Array(m.weight.buffer, m.weight.byteOffset, m.weight.byteLength) : m.weight;
    const zps = m.signed ? new Int8Array(m.zeroPoints.buffer, m.zeroPoints.byteOffset, m.zeroPoints.byteLength) : m.zeroPoints;
    g.initializer(`${name}.weight_quantized`, t, [m.K, m.N], codes);
    g.initializer(`${name}.weight_zero_point`, t, [m.N], zps);
    g.initializer(`${name}.weight_scale`, "float32", [m.N], m.scales);
    const [xq, xScale, xZp] = g.node("DynamicQuantizeLinear", [x], {}, 3) as [string, string, string];
    const acc = g.op("MatMulInteger", [xq, `${name}.weight_quantized`, xZp, `${name}.weight_zero_point`]);
    return g.op("Mul", [g.op("Cast", [acc], { to: dtypeCode("float32") }), g.op("Mul", [xScale, `${name}.weight_scale`])]);
  }
  const nBlocks = nBlocksOf(m);
  const blob = (m.blockSize * m.bits) / 8;
  g.initializer(`${name}.qweight`, "uint8", [m.N, nBlocks, blob], m.packed);
  g.initializer(`${name}.scales`, "float32", [m.N * nBlocks], m.scales);
  const inputs = [x, `${name}.qweight`, `${name}.scales`];
  if (m.zeroPoints) inputs.push(g.initializer(`${name}.zero_points`, "uint8", [m.N * zpBytesPerRow(m)], m.zeroPoints));
  return g.msOp("MatMulNBits", inputs, { K: m.K, N: m.N, bits: m.bits, block_size: m.blockSize, accuracy_level: m.accuracyLevel });
}

/** The pre-quantized weights of `names` when the source holds all of them that way; undefined when none. */
export function preQuantizedParts(
  source: { quantized?(name: string): PreQuantized | undefined },
  names: string[],
  what: string,
): PreQuantized[] | undefined {
  if (!source.quantized) return undefined;
  const parts = names.map((n) => source.quantized!(n));
  if (parts.every((p) => p === undefined)) return undefined;
  const missing = names.filter((_, i) => parts[i] === undefined);
  if (missing.length) {
    throw new BuildError(`${what}: ${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} float while the rest is MatMulNBits; the rebuild cannot fuse mixed weights.`);
  }
  return parts as PreQuantized[];
}

/** W [N, K] of a MatMulNBits weight as floats: (code - zero point) * scale. */
export function dequantizePreQuantized(m: PreQuantized): Float32Array {
  if (m.kind === "integer") {
    const out = new Float32Array(m.N * m.K);
    const code = (b: number) => (m.signed ? (b << 24) >> 24 : b);
    for (let k = 0; k < m.K; k++) {
      for (let n = 0; n < m.N; n++) out[n * m.K + k] = Math.fround((code(m.weight[k * m.N + n]!) - code(m.zeroPoints[n]!)) * m.scales[n]!);
    }
    return out;
  }
  const nBlocks = Math.ceil(m.K / m.blockSize);
  const blob = (m.blockSize * m.bits) / 8;
  const zpRow = Math.ceil((nBlocks * m.bits) / 8);
  const out = new Float32Array(m.N * m.K);
  for (let n = 0; n < m.N; n++) {
    for (let b = 0; b < nBlocks; b++) {
      let zp = m.bits === 4 ? 8 : 128;
      if (m.zeroPoints) {
        const byte = m.zeroPoints[n * zpRow + (m.bits === 4 ? b >> 1 : b)]!;
        zp = m.bits === 4 ? ((b & 1) === 0 ? byte & 15 : byte >> 4) : byte;
      }
      const s = m.scales[n * nBlocks + b]!;
      for (let j = 0; j < m.blockSize && b * m.blockSize + j < m.K; j++) {
        const byte = m.packed[(n * nBlocks + b) * blob + (m.bits === 4 ? j >> 1 : j)]!;
        const code = m.bits === 4 ? ((j & 1) === 0 ? byte & 15 : byte >> 4) : byte;
        out[n * m.K + b * m.blockSize + j] = Math.fround((code - zp) * s);
      }
    }
  }
  return out;
}
