/**
 * Recognise the decoder of an existing ONNX export from its graph (for `build --from-onnx`, see
 * from-onnx.ts): the RMSNorms (SimplifiedLayerNormalization, SkipSimplifiedLayerNormalization, or the
 * plain Pow/ReduceMean/Sqrt chain), in node order, cut the graph into 2L+1 segments; the linear
 * layers (MatMul over a weight, Gemm, com.microsoft MatMulNBits, quantize_dynamic's MatMulInteger
 * chain) of each segment are q/k/v (one fused or three) + o, gate/up (one fused or two) + down, and
 * lm_head after the final norm. Which projection is which comes from where it flows
 * (GroupQueryAttention / MultiHeadAttention input slot, the Sigmoid of SiLU), or from the node
 * names both exporters write (q_proj, gate_proj...). The rotary tables are the export's own cos/sin
 * caches (RotaryEmbedding / GroupQueryAttention inputs) or, for plain-op graphs, computed from the
 * export's inv_freq constant. The result is the builder's config and a WeightSource in Hugging
 * Face names (quantized weights handed over as they are). Anything not understood is a BuildError
 * naming the op or tensor.
 */
import { BuildError } from "../errors.js";
import type { DecoderConfig } from "./config.js";
import { tensorFloats, tensorInts, type OnnxModel, type OnnxNode, type OnnxTensor } from "./onnx-reader.js";
import type { PreQuantized } from "./prequantized.js";
import type { WeightSource, WeightTensor } from "./safetensors.js";

/** A linear layer found in the export: y = x W^T (+ b) for W [N, K]. */
interface Linear {
  node: OnnxNode;
  index: number;
  /** The activation input. */
  input: string;
  /** The value after the bias add, if any. */
  output: string;
  N: number;
  K: number;
  /** Float weight in HF layout [N, K]. */
  float?: () => Float32Array;
  quant?: () => PreQuantized;
  bias?: () => Float32Array;
  kind: string;
}

interface Norm {
  index: number;
  node: OnnxNode;
  /** The normalised output. */
  output: string;
  weight: OnnxTensor;
  eps: number;
}

/** What the recognition found: the builder's config, the weights in HF names, and a description. */
export interface RecognisedExport {
  cfg: DecoderConfig;
  weights: WeightSource;
  /** e.g. "GroupQueryAttention + RotaryEmbedding, SimplifiedLayerNormalization, MatMulNBits 4-bit, float16". */
  family: string;
  ioDtype: "float32" | "float16";
}

const PASS = new Set(["Cast", "Identity", "Reshape", "Squeeze", "Unsqueeze"]);
const ATTENTION_OPS = new Set(["GroupQueryAttention", "MultiHeadAttention"]);
/** Ops a Llama-family decoder export may hold besides the ones recognised by name below. */
const PLAIN_OPS = new Set([
  "Add", "And", "Cast", "Concat", "Constant", "ConstantOfShape", "Cos", "Div", "Equal", "Expand", "Flatten", "Gather", "GatherElements",
  "GatherND", "Gemm", "Greater", "GreaterOrEqual", "Identity", "IsInf", "IsNaN", "Less", "LessOrEqual", "MatMul", "Max", "Min", "Mul", "Neg",
  "Not", "Or", "Pow", "Range", "Reciprocal", "ReduceMax", "ReduceMean", "ReduceSum", "Reshape", "ScatterND", "Shape", "Sigmoid", "Sin",
  "Size", "Slice", "Softmax", "Split", "Sqrt", "Squeeze", "Sub", "Tile", "Transpose", "Trilu", "Unsqueeze", "Where", "Xor", "Mod", "Abs",
  "SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization", "RotaryEmbedding", "GroupQueryAttention", "MultiHeadAttention",
  "MatMulNBits", "MatMulInteger", "DynamicQuantizeLinear", "DequantizeLinear",
]);
/** Ops that mean "not the decoder the builder writes", with what they are. */
const KNOWN_UNSUPPORTED: Record<string, string> = {
  LayerNormalization: "a mean-subtracting LayerNorm (GPT-2/Phi-2 style), not RMSNorm",
  SkipLayerNormalization: "a mean-subtracting LayerNorm (GPT-2/Phi-2 style), not RMSNorm",
  Gelu: "a GELU MLP, not SwiGLU",
  FastGelu: "a GELU MLP, not SwiGLU",
  BiasGelu: "a GELU MLP, not SwiGLU",
  QuickGelu: "a QuickGELU MLP, not SwiGLU",
  Erf: "a GELU MLP (erf), not SwiGLU",
  Tanh: "a tanh-GELU MLP or logit soft-capping, not SwiGLU",
  Attention: "the fused BERT/GPT-2 Attention op",
  PackedAttention: "packed attention",
  SparseAttention: "sparse attention (Phi-3-small style)",
  GatherBlockQuantized: "a quantized embedding table (GatherBlockQuantized)",
  MatMulBnb4: "bitsandbytes 4-bit weights (MatMulBnb4)",
  If: "control flow (If: an Optimum merged decoder with and without past)",
  Loop: "control flow (Loop)",
};

const fmtDims = (d: readonly unknown[]) => `[${d.join(", ")}]`;

class GraphIndex {
  readonly producer = new Map<string, { node: OnnxNode; index: number }>();
  readonly consumers = new Map<string, { node: OnnxNode; index: number; slot: number }[]>();
  constructor(readonly model: OnnxModel) {
    model.nodes.forEach((node, index) => {
      for (const o of node.outputs) if (o) this.producer.set(o, { node, index });
      node.inputs.forEach((v, slot) => {
        if (!v) return;
        let list = this.consumers.get(v);
        if (!list) this.consumers.set(v, (list = []));
        list.push({ node, index, slot });
      });
    });
  }
  tensor(name: string | undefined): OnnxTensor | undefined {
    return name ? this.model.tensors.get(name) : undefined;
  }
  /** Follow `value` back through Cast/Identity/Reshape-like nodes. */
  source(value: string): string {
    let v = value;
    for (let i = 0; i < 8; i++) {
      const p = this.producer.get(v);
      if (!p || !PASS.has(p.node.opType)) return v;
      v = p.node.inputs[0]!;
    }
    return v;
  }
  /** The first node consuming `value` (through pass-through ops and `also`) with an op in `ops`, with the slot it reads. */
  findForward(value: string, ops: Set<string>, also: Set<string>, depth = 6): { node: OnnxNode; slot: number } | undefined {
    let frontier = [value];
    for (let d = 0; d < depth; d++) {
      const next: string[] = [];
      for (const v of frontier) {
        for (const c of this.consumers.get(v) ?? []) {
          if (ops.has(c.node.opType)) return { node: c.node, slot: c.slot };
          if (PASS.has(c.node.opType) || also.has(c.node.opType)) next.push(c.node.outputs[0]!);
        }
      }
      frontier = next;
    }
    return undefined;
  }
  /** Ops among the ancestors of `value` up to `depth` steps back. */
  ancestors(value: string, depth: number): OnnxNode[] {
    const out: OnnxNode[] = [];
    const seen = new Set<string>();
    let frontier = [value];
    for (let d = 0; d < depth; d++) {
      const next: string[] = [];
      for (const v of frontier) {
        const p = this.producer.get(v);
        if (!p || seen.has(p.node.name + p.index)) continue;
        seen.add(p.node.name + p.index);
        out.push(p.node);
        next.push(...p.node.inputs.filter((x) => x && !this.model.tensors.has(x)));
      }
      frontier = next;
    }
    return out;
  }
}

function scalarOf(g: GraphIndex, name: string | undefined): number | undefined {
  const t = g.tensor(name);
  if (!t || t.dims.reduce((a, b) => a * b, 1) !== 1) return undefined;
  if (t.elemType === "float32" || t.elemType === "float16" || t.elemType === "float64" || t.elemType === "bfloat16") return tensorFloats(t)[0];
  if (t.elemType === "int64" || t.elemType === "int32") return tensorInts(t)[0];
  return undefined;
}

function attrNum(node: OnnxNode, name: string, dflt: number): number {
  const v = node.attrs.get(name);
  return typeof v === "number" ? v : dflt;
}

/** Transpose W^T [K, N] (MatMul's B) into HF layout [N, K]. */
function transposeKN(b: Float32Array, K: number, N: number): Float32Array {
  const out = new Float32Array(N * K);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) out[n * K + k] = b[k * N + n]!;
  return out;
}

function rowSlice(w: () => Float32Array, K: number, start: number, rows: number): () => Float32Array {
  return () => w().slice(start * K, (start + rows) * K);
}

function quantRowSlice(q: () => PreQuantized, start: number, rows: number): () => PreQuantized {
  return () => {
    const m = q();
    if (m.kind === "integer") {
      // output rows are columns of B [K, N]
      const weight = new Uint8Array(m.K * rows);
      for (let k = 0; k < m.K; k++) weight.set(m.weight.subarray(k * m.N + start, k * m.N + start + rows), k * rows);
      return { ...m, N: rows, weight, zeroPoints: m.zeroPoints.slice(start, start + rows), scales: m.scales.slice(start, start + rows) };
    }
    const nBlocks = Math.ceil(m.K / m.blockSize);
    const blob = (m.blockSize * m.bits) / 8;
    const zpRow = Math.ceil((nBlocks * m.bits) / 8);
    return {
      ...m,
      N: rows,
      packed: m.packed.slice(start * nBlocks * blob, (start + rows) * nBlocks * blob),
      scales: m.scales.slice(start * nBlocks, (start + rows) * nBlocks),
      zeroPoints: m.zeroPoints?.slice(start * zpRow, (start + rows) * zpRow),
    };
  };
}

/** The linear layer a node is, if it is one. */
function asLinear(g: GraphIndex, node: OnnxNode, index: number): Linear | undefined {
  const withBias = (l: Omit<Linear, "output" | "bias"> & { bias?: () => Float32Array }): Linear => {
    let output = l.node.outputs[0]!;
    let bias = l.bias;
    const cons = g.consumers.get(output) ?? [];
    if (!bias && cons.length === 1 && cons[0]!.node.opType === "Add") {
      const other = cons[0]!.node.inputs[1 - cons[0]!.slot];
      const t = g.tensor(other);
      if (t && t.dims.length === 1 && t.dims[0] === l.N) {
        bias = () => tensorFloats(t);
        output = cons[0]!.node.outputs[0]!;
      }
    }
    return { ...l, output, bias };
  };
  if (node.opType === "MatMul" && node.domain === "") {
    let b = g.tensor(node.inputs[1]);
    let transposed = false;
    if (!b) {
      const p = g.producer.get(node.inputs[1]!);
      if (p?.node.opType === "Transpose") {
        const perm = p.node.attrs.get("perm");
        const t = g.tensor(p.node.inputs[0]);
        if (t && t.dims.length === 2 && (perm === undefined || (Array.isArray(perm) && perm[0] === 1 && perm[1] === 0))) {
          b = t;
          transposed = true;
        }
      }
    }
    if (!b || b.dims.length !== 2) return undefined;
    const bt = b;
    const [K, N] = transposed ? [bt.dims[1]!, bt.dims[0]!] : [bt.dims[0]!, bt.dims[1]!];
    return withBias({ node, index, input: node.inputs[0]!, N, K, kind: `MatMul (${bt.elemType})`, float: () => (transposed ? tensorFloats(bt) : transposeKN(tensorFloats(bt), K, N)) });
  }
  if (node.opType === "Gemm" && node.domain === "") {
    const b = g.tensor(node.inputs[1]);
    if (!b || b.dims.length !== 2) return undefined;
    if (attrNum(node, "transA", 0) !== 0 || Math.abs((node.attrs.get("alpha") as number | undefined) ?? 1) !== 1) {
      throw new BuildError(`Gemm node "${node.name}" uses transA or alpha != 1, which the rebuild does not understand.`);
    }
    const transB = attrNum(node, "transB", 0) === 1;
    const [K, N] = transB ? [b.dims[1]!, b.dims[0]!] : [b.dims[0]!, b.dims[1]!];
    const c = g.tensor(node.inputs[2]);
    return withBias({
      node,
      index,
      input: node.inputs[0]!,
      N,
      K,
      kind: `Gemm (${b.elemType})`,
      float: () => (transB ? tensorFloats(b) : transposeKN(tensorFloats(b), K, N)),
      bias: c ? () => tensorFloats(c) : undefined,
    });
  }
  if (node.opType === "MatMulInteger" && node.domain === "") {
    // quantize_dynamic: DynamicQuantizeLinear(x) -> MatMulInteger(xq, B, xzp, Bzp) -> Cast -> Mul(., Mul(x_scale, B_scale))
    const what = `MatMulInteger node "${node.name}"`;
    const dql = g.producer.get(node.inputs[0]!)?.node;
    const b = g.tensor(node.inputs[1]);
    const bzp = node.inputs[3] ? g.tensor(node.inputs[3]) : undefined;
    if (!dql || dql.opType !== "DynamicQuantizeLinear" || dql.outputs[2] !== node.inputs[2]) {
      throw new BuildError(`${what} does not read a DynamicQuantizeLinear of its activation; the rebuild understands onnxruntime's dynamic int8 form only.`);
    }
    if (!b || b.dims.length !== 2 || (b.elemType !== "int8" && b.elemType !== "uint8")) throw new BuildError(`${what}: its weight is not a constant 2-D int8/uint8 tensor.`);
    const [K, N] = b.dims as [number, number];
    const cast = (g.consumers.get(node.outputs[0]!) ?? [])[0]?.node;
    const mul = cast?.opType === "Cast" ? (g.consumers.get(cast.outputs[0]!) ?? [])[0]?.node : undefined;
    const scaleMul = mul?.opType === "Mul" ? g.producer.get(mul.inputs.find((i) => i !== cast!.outputs[0])!)?.node : undefined;
    const wScaleName = scaleMul?.opType === "Mul" ? scaleMul.inputs.find((i) => i !== dql.outputs[1]) : undefined;
    const wScale = g.tensor(wScaleName);
    if (!mul || !wScale || !scaleMul!.inputs.includes(dql.outputs[1]!)) {
      throw new BuildError(`${what}: its output is not rescaled as Cast -> Mul(x_scale * weight_scale); the rebuild cannot read the weight scale.`);
    }
    const perColumn = (t: OnnxTensor | undefined, fill: number): Uint8Array => {
      const raw = t ? t.bytes() : new Uint8Array([fill]);
      if (raw.length === N) return raw.slice();
      if (raw.length === 1) return new Uint8Array(N).fill(raw[0]!);
      throw new BuildError(`${what}: weight zero point has ${raw.length} values, expected 1 or ${N}.`);
    };
    return {
      ...withBias({
        node: mul,
        index,
        input: dql.inputs[0]!,
        N,
        K,
        kind: `MatMulInteger ${b.elemType}`,
        quant: () => {
          const sc = tensorFloats(wScale);
          if (sc.length !== 1 && sc.length !== N) throw new BuildError(`${what}: weight scale has ${sc.length} values, expected 1 or ${N}.`);
          return {
            kind: "integer",
            N,
            K,
            signed: b.elemType === "int8",
            weight: b.bytes(),
            zeroPoints: perColumn(bzp, b.elemType === "int8" ? 0 : 0),
            scales: sc.length === N ? sc : new Float32Array(N).fill(sc[0]!),
          };
        },
      }),
      index,
    };
  }
  if (node.opType === "MatMulNBits" && node.domain === "com.microsoft") {
    const K = attrNum(node, "K", 0);
    const N = attrNum(node, "N", 0);
    const bits = attrNum(node, "bits", 4);
    const blockSize = attrNum(node, "block_size", 0);
    const blob = g.tensor(node.inputs[1]);
    const scales = g.tensor(node.inputs[2]);
    const zp = node.inputs[3] ? g.tensor(node.inputs[3]) : undefined;
    const what = `MatMulNBits node "${node.name}"`;
    if (!blob || !scales) throw new BuildError(`${what}: its weight blob or scales are not constant tensors of the graph; the rebuild cannot read them.`);
    if (node.inputs[3] && !zp) throw new BuildError(`${what}: its zero points are not a constant tensor.`);
    if (zp && zp.elemType !== "uint8") throw new BuildError(`${what}: zero points of type ${zp.elemType} are not supported (only packed uint8).`);
    if (node.inputs[4]) throw new BuildError(`${what}: g_idx (act-order GPTQ) is not supported.`);
    if (bits !== 4 && bits !== 8) throw new BuildError(`${what}: ${bits}-bit weights are not supported (4 or 8).`);
    const biasT = node.inputs[5] ? g.tensor(node.inputs[5]) : undefined;
    if (node.inputs[5] && !biasT) throw new BuildError(`${what}: its bias is not a constant tensor.`);
    const accuracyLevel = attrNum(node, "accuracy_level", 0);
    return withBias({
      node,
      index,
      input: node.inputs[0]!,
      N,
      K,
      kind: `MatMulNBits ${bits}-bit block ${blockSize}`,
      quant: () => ({ kind: "nbits", bits, blockSize, N, K, packed: blob.bytes(), scales: tensorFloats(scales), zeroPoints: zp?.bytes(), accuracyLevel }),
      bias: biasT ? () => tensorFloats(biasT) : undefined,
    });
  }
  return undefined;
}

/** The RMSNorm a node is, if it is one. */
function asNorm(g: GraphIndex, node: OnnxNode, index: number, H: number): Norm | undefined {
  if (node.opType === "SimplifiedLayerNormalization" || node.opType === "SkipSimplifiedLayerNormalization") {
    const wSlot = node.opType === "SimplifiedLayerNormalization" ? 1 : 2;
    const weight = g.tensor(node.inputs[wSlot]);
    if (!weight) throw new BuildError(`${node.opType} node "${node.name}": its weight "${node.inputs[wSlot]}" is not a constant tensor.`);
    if (node.opType === "SkipSimplifiedLayerNormalization" && node.inputs[3]) {
      throw new BuildError(`SkipSimplifiedLayerNormalization node "${node.name}" has a bias input, which the rebuild does not understand.`);
    }
    return { index, node, output: node.outputs[0]!, weight, eps: (node.attrs.get("epsilon") as number | undefined) ?? 1e-5 };
  }
  if (node.opType !== "Mul") return undefined;
  for (let s = 0; s < 2; s++) {
    const weight = g.tensor(node.inputs[s]);
    if (!weight || weight.dims.length !== 1 || (weight.dims[0] !== H && H > 0)) continue;
    const other = node.inputs[1 - s]!;
    if (g.producer.get(other)?.node.opType === "DynamicQuantizeLinear") continue; // a dynamic-int8 scale product
    const anc = g.ancestors(other, 9);
    const ops = anc.map((n) => n.opType);
    if (!ops.includes("ReduceMean") || !ops.includes("Sqrt")) continue;
    const rm = anc.find((n) => n.opType === "ReduceMean")!;
    // x - mean(x) before the variance: a LayerNorm, not an RMSNorm.
    if (g.ancestors(rm.inputs[0]!, 3).some((n) => n.opType === "Sub")) {
      throw new BuildError(`Node "${node.name}" is a mean-subtracting LayerNorm (GPT-2/Phi-2 style), not an RMSNorm; the rebuild handles Llama-family decoders only.`);
    }
    const add = anc.find((n) => n.opType === "Add" && n.inputs.some((i) => scalarOf(g, i) !== undefined));
    const eps = add ? scalarOf(g, add.inputs.find((i) => scalarOf(g, i) !== undefined)) : undefined;
    if (eps === undefined) throw new BuildError(`The RMSNorm ending at node "${node.name}" has no Add of a constant epsilon the rebuild can read.`);
    return { index, node, output: node.outputs[0]!, weight, eps };
  }
  return undefined;
}

const NAME_RULES: [string, RegExp][] = [
  ["qkv", /qkv|query_key_value|c_attn/i],
  ["q", /(^|[^a-z])(q_proj|query|q)([^a-z]|$)/i],
  ["k", /(^|[^a-z])(k_proj|key|k)([^a-z]|$)/i],
  ["v", /(^|[^a-z])(v_proj|value|v)([^a-z]|$)/i],
  ["gate_up", /gate_up/i],
  ["gate", /gate_proj|(^|[^a-z])(gate|w1)([^a-z]|$)/i],
  ["up", /up_proj|(^|[^a-z])(up|w3)([^a-z]|$)/i],
];

function nameRole(l: Linear, roles: string[]): string | undefined {
  const text = `${l.node.name} ${l.node.outputs[0] ?? ""} ${l.node.inputs[1] ?? ""}`;
  const hits = NAME_RULES.filter(([r, re]) => roles.includes(r) && re.test(text)).map(([r]) => r);
  return hits.length === 1 ? hits[0] : undefined;
}

/** Recognise the decoder of an export. Throws a BuildError naming what was not understood. */
export function recogniseExport(model: OnnxModel, extra: { config?: Record<string, unknown> } = {}): RecognisedExport {
  const g = new GraphIndex(model);
  const file = model.path;
  if (model.metadata["spec_decode.builder"] !== undefined) {
    throw new BuildError(`${file} was written by spec-decode's own builder; it already has our interface, nothing to rebuild.`);
  }
  // 1. every op must be one a Llama-family decoder export uses
  for (const n of model.nodes) {
    const why = KNOWN_UNSUPPORTED[n.opType];
    if (why) throw new BuildError(`${file}: node "${n.name}" is ${n.opType} (${why}); the rebuild handles Llama-family decoders (RMSNorm, RoPE, SwiGLU) only.`);
    if (!PLAIN_OPS.has(n.opType)) throw new BuildError(`${file}: op ${n.domain ? `${n.domain}.` : ""}${n.opType} (node "${n.name}") is not understood by the rebuild.`);
  }

  // 2. KV interface: layer count, kv heads, head size, io dtype
  const pastKeys = model.inputs
    .map((i) => ({ i, m: /^past(?:_key_values)?[._](\d+)[._]key$/.exec(i.name) }))
    .filter((x) => x.m)
    .sort((a, b) => Number(a.m![1]) - Number(b.m![1]));
  if (pastKeys.length === 0) {
    throw new BuildError(`${file} has no past_key_values.N.key inputs: it is not a decoder with a KV cache (an Optimum "decoder_model.onnx" without past?). Use the with-past / merged export.`);
  }
  const L = pastKeys.length;
  const kd = pastKeys[0]!.i.dims;
  if (kd.length !== 4 || typeof kd[1] !== "number" || typeof kd[3] !== "number") {
    throw new BuildError(`${file}: input ${pastKeys[0]!.i.name} has shape ${fmtDims(kd)}; expected [batch, kv_heads, past, head_size] with fixed kv_heads and head_size.`);
  }
  const KV = kd[1];
  const D = kd[3];
  const ioDtype = pastKeys[0]!.i.elemType === "float16" ? "float16" : "float32";

  // 3. embedding
  const inputIds = model.inputs.find((i) => i.name === "input_ids");
  if (!inputIds) throw new BuildError(`${file} has no input_ids input.`);
  const gather = (g.consumers.get("input_ids") ?? []).find((c) => c.node.opType === "Gather" && c.slot === 1);
  const embedT = gather ? g.tensor(gather.node.inputs[0]) : undefined;
  if (!embedT || embedT.dims.length !== 2) {
    const what = (g.consumers.get("input_ids") ?? []).map((c) => c.node.opType).join(", ") || "nothing";
    throw new BuildError(`${file}: input_ids does not feed a Gather from an embedding table (it feeds ${what}); the rebuild cannot find the embedding.`);
  }
  const [V, H] = embedT.dims as [number, number];
  let readEmbed = () => tensorFloats(embedT);
  let embedKind = "";
  if (embedT.elemType === "int8" || embedT.elemType === "uint8") {
    // quantize_dynamic's GatherQuant: Gather over the int8 table, then DequantizeLinear (per-tensor): the table dequantized is exact.
    const dq = (g.consumers.get(gather!.node.outputs[0]!) ?? [])[0]?.node;
    const sc = dq?.opType === "DequantizeLinear" ? g.tensor(dq.inputs[1]) : undefined;
    const zpT = dq?.opType === "DequantizeLinear" && dq.inputs[2] ? g.tensor(dq.inputs[2]) : undefined;
    if (!dq || !sc || sc.dims.reduce((a, b) => a * b, 1) !== 1 || (dq.inputs[2] && (!zpT || zpT.dims.reduce((a, b) => a * b, 1) !== 1))) {
      throw new BuildError(`${file}: the embedding "${embedT.name}" is ${embedT.elemType} but not followed by a per-tensor DequantizeLinear; the rebuild cannot read it.`);
    }
    embedKind = `, ${embedT.elemType} embedding`;
    readEmbed = () => {
      const s0 = tensorFloats(sc)[0]!;
      const z = zpT ? tensorInts(zpT)[0]! : 0;
      const q = embedT.elemType === "int8" ? new Int8Array(embedT.bytes().slice().buffer) : embedT.bytes();
      return Float32Array.from(q, (c) => Math.fround((c - z) * s0));
    };
  }

  // 4. norms and linears in node order
  const norms: Norm[] = [];
  const linears: Linear[] = [];
  model.nodes.forEach((n, i) => {
    const norm = asNorm(g, n, i, H);
    if (norm) {
      if (norm.weight.dims.length !== 1 || norm.weight.dims[0] !== H) {
        throw new BuildError(
          `${file}: norm node "${n.name}" has weight "${norm.weight.name}" of shape ${fmtDims(norm.weight.dims)}, not [${H}]` +
            (norm.weight.dims[0] === D ? " (a per-head q/k norm, Qwen3 style, which the rebuild does not map yet)." : "."),
        );
      }
      norms.push(norm);
      return;
    }
    const lin = asLinear(g, n, i);
    if (lin) linears.push(lin);
    else if (n.opType === "MatMul" && g.tensor(n.inputs[1]) && g.tensor(n.inputs[1])!.dims.length !== 2) {
      throw new BuildError(`${file}: MatMul node "${n.name}" multiplies by a ${g.tensor(n.inputs[1])!.dims.length}-D constant, which the rebuild does not understand.`);
    }
  });
  if (norms.length !== 2 * L + 1) {
    throw new BuildError(
      `${file}: found ${norms.length} RMSNorms for ${L} layers (expected ${2 * L + 1}: two per layer and a final norm). ` +
        `The rebuild recognises SimplifiedLayerNormalization, SkipSimplifiedLayerNormalization and the Pow/ReduceMean/Sqrt RMSNorm.`,
    );
  }
  const eps = norms[0]!.eps;
  for (const n of norms) {
    if (Math.abs(n.eps - eps) > 1e-12) throw new BuildError(`${file}: norm "${n.node.name}" has epsilon ${n.eps}, others ${eps}; the rebuild needs one epsilon.`);
  }
  const segment = (j: number) => linears.filter((l) => l.index > norms[j]!.index && (j + 1 >= norms.length || l.index < norms[j + 1]!.index));
  const isDirect = (l: Linear, norm: Norm) => g.source(l.input) === norm.output;
  const nodesIn = (j: number) => model.nodes.filter((_, i) => i > norms[j]!.index && (j + 1 >= norms.length || i < norms[j + 1]!.index));

  type Role = { float?: () => Float32Array; quant?: () => PreQuantized; bias?: () => Float32Array; rows: number; K: number };
  const roles = new Map<string, Role>();
  const kinds = new Set<string>();
  const put = (name: string, r: Role) => roles.set(name, r);
  const splitRows = (l: Linear, parts: [string, number][]) => {
    let start = 0;
    parts.forEach(([name, rows]) => {
      put(name, {
        rows,
        K: l.K,
        float: l.float ? rowSlice(l.float, l.K, start, rows) : undefined,
        quant: l.quant ? quantRowSlice(l.quant, start, rows) : undefined,
        bias: l.bias ? ((s) => () => l.bias!().slice(s, s + rows))(start) : undefined,
      });
      start += rows;
    });
  };
  const whole = (l: Linear): Role => ({ rows: l.N, K: l.K, float: l.float, quant: l.quant, bias: l.bias });

  let NH = 0;
  let I = 0;
  let attentionKind = "";
  const cosSin = new Set<string>();
  let invFreq: OnnxTensor | undefined;
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}`;
    const where = `layer ${i}`;
    // attention
    const att = segment(2 * i);
    const direct = att.filter((l) => isDirect(l, norms[2 * i]!));
    const rest = att.filter((l) => !isDirect(l, norms[2 * i]!));
    if (rest.length !== 1) {
      throw new BuildError(
        `${file}: ${where}'s attention has ${rest.length} linear layers besides q/k/v (${rest.map((l) => `"${l.node.name}"`).join(", ") || "none"}); expected one output projection.`,
      );
    }
    const o = rest[0]!;
    const attNodes = nodesIn(2 * i);
    const attOp = attNodes.find((n) => ATTENTION_OPS.has(n.opType));
    if (direct.length === 1) {
      const qkv = direct[0]!;
      const nh = (qkv.N - 2 * KV * D) / D;
      if (!Number.isInteger(nh) || nh < KV) throw new BuildError(`${file}: ${where}'s fused q/k/v node "${qkv.node.name}" has ${qkv.N} outputs, which does not split into q + 2 x ${KV}x${D}.`);
      NH = nh;
      splitRows(qkv, [[`${p}.self_attn.q_proj`, NH * D], [`${p}.self_attn.k_proj`, KV * D], [`${p}.self_attn.v_proj`, KV * D]]);
      kinds.add(qkv.kind);
    } else if (direct.length === 3) {
      const assigned = new Map<string, Linear>();
      for (const l of direct) {
        const hit = attOp ? g.findForward(l.output, ATTENTION_OPS, new Set(["RotaryEmbedding", "Add", "Transpose"])) : undefined;
        const role = hit ? (["q", "k", "v"][hit.slot] ?? nameRole(l, ["q", "k", "v"])) : nameRole(l, ["q", "k", "v"]);
        if (!role || assigned.has(role)) {
          throw new BuildError(`${file}: cannot tell which of q/k/v the linear node "${l.node.name}" of ${where} is (neither its attention input slot nor its name says).`);
        }
        assigned.set(role, l);
      }
      const q = assigned.get("q")!;
      NH = q.N / D;
      if (!Number.isInteger(NH) || assigned.get("k")!.N !== KV * D || assigned.get("v")!.N !== KV * D) {
        throw new BuildError(`${file}: ${where}'s q/k/v have ${q.N}/${assigned.get("k")!.N}/${assigned.get("v")!.N} outputs; with ${KV} kv heads of size ${D} that is not a GQA layout.`);
      }
      for (const r of ["q", "k", "v"]) put(`${p}.self_attn.${r}_proj`, whole(assigned.get(r)!));
      for (const l of direct) kinds.add(l.kind);
    } else {
      throw new BuildError(`${file}: ${where}'s input norm feeds ${direct.length} linear layers (${direct.map((l) => `"${l.node.name}"`).join(", ")}); expected q, k, v or one fused qkv.`);
    }
    put(`${p}.self_attn.o_proj`, whole(o));
    kinds.add(o.kind);
    // attention op checks and the rotary tables
    const ropes = attNodes.filter((n) => n.opType === "RotaryEmbedding");
    if (attOp) {
      const heads = attrNum(attOp, "num_heads", 0);
      const kvHeads = attOp.opType === "GroupQueryAttention" ? attrNum(attOp, "kv_num_heads", 0) : heads;
      const scale = (attOp.attrs.get("scale") as number | undefined) ?? 0;
      if (heads !== NH || kvHeads !== KV) throw new BuildError(`${file}: ${attOp.opType} node "${attOp.name}" has ${heads}/${kvHeads} heads, but the weights say ${NH}/${KV}.`);
      if (scale !== 0 && Math.abs(scale * Math.sqrt(D) - 1) > 1e-6) throw new BuildError(`${file}: ${attOp.opType} node "${attOp.name}" scales by ${scale}, not 1/sqrt(${D}); not supported.`);
      if (attrNum(attOp, "local_window_size", -1) !== -1) throw new BuildError(`${file}: ${attOp.opType} node "${attOp.name}" uses a sliding window (local_window_size), not supported.`);
      if (((attOp.attrs.get("softcap") as number | undefined) ?? 0) !== 0) throw new BuildError(`${file}: ${attOp.opType} node "${attOp.name}" soft-caps scores, not supported.`);
      if (attOp.opType === "GroupQueryAttention" && attrNum(attOp, "do_rotary", 0) === 1) {
        if (attrNum(attOp, "rotary_interleaved", 0) !== 0) throw new BuildError(`${file}: GroupQueryAttention node "${attOp.name}" uses interleaved rotary, not supported.`);
        cosSin.add(`${attOp.inputs[7]}|${attOp.inputs[8]}`);
      }
      attentionKind = attOp.opType;
    } else {
      if (!attNodes.some((n) => n.opType === "Softmax")) throw new BuildError(`${file}: ${where} has no attention (no GroupQueryAttention, MultiHeadAttention or Softmax).`);
      attentionKind = "plain ops (MatMul/Softmax)";
    }
    for (const r of ropes) {
      if (attrNum(r, "interleaved", 0) !== 0) throw new BuildError(`${file}: RotaryEmbedding node "${r.name}" is interleaved (GPT-J style); the rebuild writes half-rotation RoPE only.`);
      const rd = attrNum(r, "rotary_embedding_dim", 0);
      if (rd !== 0 && rd !== D) throw new BuildError(`${file}: RotaryEmbedding node "${r.name}" rotates ${rd} of ${D} dims (partial rotary), not supported.`);
      if (((r.attrs.get("scale") as number | undefined) ?? 1) !== 1) throw new BuildError(`${file}: RotaryEmbedding node "${r.name}" has scale != 1, not supported.`);
      cosSin.add(`${r.inputs[2]}|${r.inputs[3]}`);
    }
    const rotaryInAttention = attOp?.opType === "GroupQueryAttention" && attrNum(attOp, "do_rotary", 0) === 1;
    if (attOp && ropes.length === 0 && !rotaryInAttention) {
      throw new BuildError(`${file}: ${where} has ${attOp.opType} but no RotaryEmbedding: the rebuild cannot find its rotary tables.`);
    }
    if (!attOp) {
      // plain ops: the scores must be scaled by 1/sqrt(head_dim) (Mul), sqrt(head_dim) (Div), or head_dim^-1/4 on q and k each
      const scalars = attNodes
        .filter((n) => n.opType === "Mul" || n.opType === "Div")
        .flatMap((n) => n.inputs.map((x) => ({ op: n.opType, v: scalarOf(g, x) })))
        .filter((x): x is { op: string; v: number } => x.v !== undefined);
      const near = (a: number, b: number) => Math.abs(a / b - 1) < 1e-5;
      const ok = scalars.some((x) => (x.op === "Mul" && (near(x.v, 1 / Math.sqrt(D)) || near(x.v, D ** -0.25))) || (x.op === "Div" && near(x.v, Math.sqrt(D))));
      if (!ok) throw new BuildError(`${file}: ${where}'s attention has no 1/sqrt(${D}) score scaling the rebuild can find (a Mul or Div by a constant); other scalings are not supported.`);
    }
    if (!attOp && !invFreq) {
      // plain ops: the inv_freq constant the exporter traced ([D/2], [1, D/2, 1]...) anywhere in the graph
      for (const t of model.tensors.values()) {
        if (t.dims.reduce((a, b) => a * b, 1) !== D / 2 || !(t.elemType === "float32" || t.elemType === "float16")) continue;
        if (t.dims.filter((d) => d !== 1).length !== 1) continue;
        const v = tensorFloats(t);
        if (v[0] === 1 && Array.from(v).every((x, j) => j === 0 || (x < v[j - 1]! && x > 0))) {
          invFreq = t;
          break;
        }
      }
      if (!invFreq) throw new BuildError(`${file}: no rotary tables found (no RotaryEmbedding, and no inv_freq constant of ${D / 2} decreasing values from 1).`);
    }

    // MLP
    const mlp = segment(2 * i + 1);
    const mDirect = mlp.filter((l) => isDirect(l, norms[2 * i + 1]!));
    const mRest = mlp.filter((l) => !isDirect(l, norms[2 * i + 1]!));
    if (mRest.length !== 1) {
      throw new BuildError(`${file}: ${where}'s MLP has ${mRest.length} linear layers besides gate/up (${mRest.map((l) => `"${l.node.name}"`).join(", ") || "none"}); expected one down projection.`);
    }
    const down = mRest[0]!;
    I = down.K;
    const mlpNodes = nodesIn(2 * i + 1);
    if (!mlpNodes.some((n) => n.opType === "Sigmoid")) throw new BuildError(`${file}: ${where}'s MLP has no Sigmoid (SiLU); the rebuild writes SwiGLU MLPs only.`);
    if (mDirect.length === 1) {
      const gu = mDirect[0]!;
      if (gu.N !== 2 * I) throw new BuildError(`${file}: ${where}'s fused gate/up node "${gu.node.name}" has ${gu.N} outputs, not 2 x ${I}.`);
      splitRows(gu, [[`${p}.mlp.gate_proj`, I], [`${p}.mlp.up_proj`, I]]);
      kinds.add(gu.kind);
    } else if (mDirect.length === 2) {
      const gated = mDirect.map((l) => (g.consumers.get(l.output) ?? []).some((c) => c.node.opType === "Sigmoid" || (PASS.has(c.node.opType) && (g.consumers.get(c.node.outputs[0]!) ?? []).some((d) => d.node.opType === "Sigmoid"))));
      let gateIdx = gated[0] !== gated[1] ? (gated[0] ? 0 : 1) : -1;
      if (gateIdx < 0) {
        const r0 = nameRole(mDirect[0]!, ["gate", "up"]);
        const r1 = nameRole(mDirect[1]!, ["gate", "up"]);
        if (r0 && r1 && r0 !== r1) gateIdx = r0 === "gate" ? 0 : 1;
      }
      if (gateIdx < 0) throw new BuildError(`${file}: cannot tell gate from up among "${mDirect[0]!.node.name}" and "${mDirect[1]!.node.name}" (${where}).`);
      const gate = mDirect[gateIdx]!;
      const up = mDirect[1 - gateIdx]!;
      if (gate.N !== I || up.N !== I) throw new BuildError(`${file}: ${where}'s gate/up have ${gate.N}/${up.N} outputs, down reads ${I}.`);
      put(`${p}.mlp.gate_proj`, whole(gate));
      put(`${p}.mlp.up_proj`, whole(up));
      kinds.add(gate.kind);
    } else {
      throw new BuildError(`${file}: ${where}'s post-attention norm feeds ${mDirect.length} linear layers; expected gate and up, or one fused gate_up.`);
    }
    put(`${p}.mlp.down_proj`, whole(down));
    kinds.add(down.kind);
    if (down.N !== H || o.N !== H) throw new BuildError(`${file}: ${where}'s o/down projections write ${o.N}/${down.N} values, hidden size is ${H}.`);
  }

  // lm_head
  const head = segment(2 * L);
  if (head.length !== 1 || head[0]!.N !== V) {
    throw new BuildError(`${file}: expected one lm_head projection to ${V} logits after the final norm, found ${head.map((l) => `"${l.node.name}" (${l.N})`).join(", ") || "none"}.`);
  }
  const lmHead = head[0]!;
  const tied = !!lmHead.float && (g.tensor(lmHead.node.inputs[1]) === embedT || g.producer.get(lmHead.node.inputs[1]!)?.node.inputs[0] === embedT.name);
  kinds.add(lmHead.kind);

  // rotary tables
  if (cosSin.size > 1) throw new BuildError(`${file}: layers use different rotary caches (${[...cosSin].join("; ")}); not supported.`);
  let tables: { rows: number; make: (positions: number) => { cos: Float32Array; sin: Float32Array } };
  if (cosSin.size === 1) {
    const [cn, sn] = [...cosSin][0]!.split("|") as [string, string];
    const cosT = g.tensor(cn);
    const sinT = g.tensor(sn);
    if (!cosT || !sinT) throw new BuildError(`${file}: rotary caches "${cn}" / "${sn}" are not constant tensors of the graph.`);
    if (cosT.dims.length !== 2 || cosT.dims[1] !== D / 2 || sinT.dims.join() !== cosT.dims.join()) {
      throw new BuildError(`${file}: rotary cache "${cn}" has shape ${fmtDims(cosT.dims)}; expected [positions, ${D / 2}].`);
    }
    const rows = cosT.dims[0]!;
    tables = {
      rows,
      make: (positions) => {
        if (positions > rows) throw new BuildError(`The export's rotary caches cover ${rows} positions; cannot build for ${positions}.`);
        const c = tensorFloats(cosT);
        const s = tensorFloats(sinT);
        const half = D / 2;
        const cos = new Float32Array(positions * D);
        const sin = new Float32Array(positions * D);
        for (let q = 0; q < positions; q++) {
          for (let j = 0; j < half; j++) {
            cos[q * D + j] = cos[q * D + half + j] = c[q * half + j]!;
            sin[q * D + j] = sin[q * D + half + j] = s[q * half + j]!;
          }
        }
        return { cos, sin };
      },
    };
  } else {
    const inv = tensorFloats(invFreq!);
    const cfgMax = extra.config?.max_position_embeddings;
    const rows = typeof cfgMax === "number" && Number.isInteger(cfgMax) && cfgMax > 0 ? cfgMax : 2048;
    tables = {
      rows,
      make: (positions) => {
        const cos = new Float32Array(positions * D);
        const sin = new Float32Array(positions * D);
        const half = D / 2;
        for (let q = 0; q < positions; q++) {
          for (let j = 0; j < half; j++) {
            const a = Math.fround(q * inv[j]!);
            cos[q * D + j] = cos[q * D + half + j] = Math.cos(a);
            sin[q * D + j] = sin[q * D + half + j] = Math.sin(a);
          }
        }
        return { cos, sin };
      },
    };
  }

  // biases: q/k/v all or none for the builder (a missing one is zeros)
  const anyQkvBias = [...roles.entries()].some(([n, r]) => /\.(q|k|v)_proj$/.test(n) && r.bias);

  // 5. the weight source in HF names
  const entries = new Map<string, { dims: number[]; read?: () => Float32Array; quant?: () => PreQuantized }>();
  entries.set("model.embed_tokens.weight", { dims: [V, H], read: readEmbed });
  for (let i = 0; i < L; i++) {
    entries.set(`model.layers.${i}.input_layernorm.weight`, { dims: [H], read: () => tensorFloats(norms[2 * i]!.weight) });
    entries.set(`model.layers.${i}.post_attention_layernorm.weight`, { dims: [H], read: () => tensorFloats(norms[2 * i + 1]!.weight) });
  }
  entries.set("model.norm.weight", { dims: [H], read: () => tensorFloats(norms[2 * L]!.weight) });
  for (const [name, r] of roles) {
    entries.set(`${name}.weight`, { dims: [r.rows, r.K], read: r.float, quant: r.quant });
    if (r.bias) entries.set(`${name}.bias`, { dims: [r.rows], read: r.bias });
    else if (anyQkvBias && /\.(q|k|v)_proj$/.test(name)) entries.set(`${name}.bias`, { dims: [r.rows], read: () => new Float32Array(r.rows) });
  }
  if (!tied) entries.set("lm_head.weight", { dims: [V, H], read: lmHead.float, quant: lmHead.quant });
  if (lmHead.bias) throw new BuildError(`${file}: lm_head "${lmHead.node.name}" has a bias, which the builder does not write.`);

  const weights: WeightSource = {
    names: () => [...entries.keys()],
    has: (n) => entries.has(n),
    shape: (n) => {
      const e = entries.get(n);
      if (!e) throw new BuildError(`Tensor "${n}" is not in the export.`);
      return e.dims;
    },
    get: (n): WeightTensor => {
      const e = entries.get(n);
      if (!e) throw new BuildError(`Tensor "${n}" is not in the export.`);
      if (!e.read) throw new BuildError(`Tensor "${n}" is MatMulNBits-quantized in the export; it is written as it is, not read as floats.`);
      return { dims: e.dims, data: e.read() };
    },
    quantized: (n) => entries.get(n)?.quant?.(),
    ropeTables: (positions) => tables.make(positions),
  };

  const cfgEos = extra.config?.eos_token_id;
  const cfg: DecoderConfig = {
    architecture: "llama",
    hiddenSize: H,
    intermediateSize: I,
    numLayers: L,
    numHeads: NH,
    numKvHeads: KV,
    headDim: D,
    vocabSize: V,
    rmsNormEps: eps,
    ropeTheta: 10000,
    ropeScaling: { type: "none" },
    maxPositionEmbeddings: tables.rows,
    tieWordEmbeddings: tied,
    attentionBias: anyQkvBias,
    qkNorm: false,
    bosTokenId: typeof extra.config?.bos_token_id === "number" ? extra.config.bos_token_id : undefined,
    eosTokenIds: Array.isArray(cfgEos) ? cfgEos.filter((x): x is number => typeof x === "number") : typeof cfgEos === "number" ? [cfgEos] : [],
  };
  const normKind = norms.some((n) => n.node.opType.includes("Simplified")) ? [...new Set(norms.map((n) => n.node.opType))].join("/") : "RMSNorm as plain ops";
  const ropeKind = cosSin.size ? (attentionKind === "GroupQueryAttention" && !model.nodes.some((n) => n.opType === "RotaryEmbedding") ? "rotary inside GQA" : "RotaryEmbedding") : "rotary from inv_freq";
  const family = `${attentionKind} + ${ropeKind}, ${normKind}, weights ${[...kinds].join(" / ")}${embedKind}${tied ? ", tied lm_head" : ""}, ${ioDtype} KV`;
  return { cfg, weights, family, ioDtype };
}
