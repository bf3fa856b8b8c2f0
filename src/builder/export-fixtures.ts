/**
 * Writers of small ONNX exports in the formats OTHER tools produce, for the `--from-onnx` rebuild
 * tests (test/builder/from-onnx*.test.ts) and benchmark (scripts/from-onnx-bench.mjs); one place for all of them:
 *  - genai style (onnxruntime-genai model builder): SimplifiedLayerNormalization, then
 *    SkipSimplifiedLayerNormalization carrying the residual; GroupQueryAttention (rotary as
 *    separate RotaryEmbedding nodes, or inside GQA with do_rotary) or MultiHeadAttention; cos/sin
 *    caches [positions, head_size/2]; float32 / float16 weights or com.microsoft MatMulNBits 4-bit
 *    (symmetric, or asymmetric with zero points); fused or separate qkv and gate_up; node names
 *    like "/model/layers.0/attn/q_proj/MatMul"; genai_config.json beside the model.
 *  - Optimum style (torch.onnx trace of transformers' Llama): RMSNorm as Pow/ReduceMean/Add/Sqrt/
 *    Reciprocal/Mul, RoPE from an inv_freq constant (MatMul with positions, Cos, Sin,
 *    rotate_half with Slice/Neg/Concat), repeat_kv, MatMul/Softmax attention with an additive
 *    causal + padding mask, anonymous weight names ("onnx::MatMul_123"), config.json beside it.
 * The weights come from a fixture checkpoint (config.json + safetensors), so an export and the
 * builder's own graph of that checkpoint hold the same model.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { BuildError } from "../errors.js";
import { atomicWriteFileSync } from "../util/atomic-file.js";
import { genaiConfigFor } from "./build-dir.js";
import { readDecoderConfig, ropeInvFreq, type DecoderConfig } from "./config.js";
import { GraphBuilder, attr, dtypeCode } from "./onnx-graph.js";
import { quantizeMatrix } from "./quantize.js";
import { openSafetensorsDir, type WeightSource } from "./safetensors.js";

export interface GenaiExportOptions {
  attention?: "gqa" | "gqa-rotary" | "mha";
  dtype?: "float32" | "float16";
  /** float (the dtype), MatMulNBits 4-bit symmetric, or 4-bit with explicit zero points. */
  weights?: "float" | "int4" | "int4-zp";
  /** Also quantize lm_head (int4 weights only). */
  quantizeLmHead?: boolean;
  fuseQkv?: boolean;
  fuseGateUp?: boolean;
  /** Write config.json too (real genai folders often have it); default false: genai_config.json only. */
  withConfigJson?: boolean;
  externalData?: boolean;
  blockSize?: number;
}

const TOKENIZER_FILES = /^(tokenizer\.json|tokenizer_config\.json|generation_config\.json)$/;

function copyTokenizer(src: string, out: string, withConfig: boolean): void {
  mkdirSync(out, { recursive: true });
  for (const f of readdirSync(src)) {
    if (TOKENIZER_FILES.test(f) || (withConfig && f === "config.json")) copyFileSync(join(src, f), join(out, f));
  }
}

function transposed(w: Float32Array, N: number, K: number): Float32Array {
  const out = new Float32Array(N * K);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) out[k * N + n] = w[n * K + k]!;
  return out;
}

function stackRows(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Asymmetric 4-bit blocks (min/max, zero point per block), packed the MatMulNBits way. */
function quantizeAsym4(w: Float32Array, N: number, K: number, blockSize: number) {
  const nBlocks = Math.ceil(K / blockSize);
  const blob = blockSize / 2;
  const packed = new Uint8Array(N * nBlocks * blob);
  const scales = new Float32Array(N * nBlocks);
  const zpRow = Math.ceil(nBlocks / 2);
  const zeroPoints = new Uint8Array(N * zpRow);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < nBlocks; b++) {
      let lo = 0;
      let hi = 0;
      for (let k = b * blockSize; k < Math.min(K, (b + 1) * blockSize); k++) {
        lo = Math.min(lo, w[n * K + k]!);
        hi = Math.max(hi, w[n * K + k]!);
      }
      const s = Math.fround((hi - lo) / 15) || 1;
      const zp = Math.max(0, Math.min(15, Math.round(-lo / s)));
      scales[n * nBlocks + b] = s;
      zeroPoints[n * zpRow + (b >> 1)]! |= (b & 1) === 0 ? zp : zp << 4;
      for (let j = 0; j < blockSize; j++) {
        const k = b * blockSize + j;
        const code = k < K ? Math.max(0, Math.min(15, Math.round(w[n * K + k]! / s) + zp)) : zp;
        packed[(n * nBlocks + b) * blob + (j >> 1)]! |= (j & 1) === 0 ? code : code << 4;
      }
    }
  }
  return { packed, scales, zeroPoints, nBlocks, blob };
}

/** genai-style export of the checkpoint in `src` written to `out` (model.onnx + genai_config.json + tokenizer). */
export function writeGenaiExport(src: string, out: string, o: GenaiExportOptions = {}): string {
  const cfg = readDecoderConfig(src);
  const w = openSafetensorsDir(src);
  const attention = o.attention ?? "gqa";
  const dt = o.dtype ?? "float32";
  const wq = o.weights ?? "float";
  const blockSize = o.blockSize ?? 32;
  const { hiddenSize: H, intermediateSize: I, numHeads: NH, numKvHeads: KV, headDim: D, vocabSize: V, numLayers: L } = cfg;
  if (attention === "mha" && NH !== KV) throw new BuildError("MultiHeadAttention export fixtures need heads == kvHeads.");
  copyTokenizer(src, out, o.withConfigJson === true);
  const path = join(out, "model.onnx");
  const g = new GraphBuilder({ name: "genai_style", modelPath: path, externalData: o.externalData ? "always" : "never" });
  const get = (n: string) => w.get(n).data;
  const ids = g.input("input_ids", "int64", ["batch_size", "sequence_length"]);
  const mask = g.input("attention_mask", "int64", ["batch_size", "total_sequence_length"]);
  const pos = attention === "gqa-rotary" ? undefined : g.input("position_ids", "int64", ["batch_size", "sequence_length"]);
  const past = Array.from({ length: L }, (_, i) => ({
    k: g.input(`past_key_values.${i}.key`, dt, ["batch_size", KV, "past_sequence_length", D]),
    v: g.input(`past_key_values.${i}.value`, dt, ["batch_size", KV, "past_sequence_length", D]),
  }));

  const linear = (x: string, name: string, weight: Float32Array, N: number, K: number, quantize: boolean): string => {
    if (wq === "float" || !quantize) {
      g.initializer(`${name.slice(1).replaceAll("/", ".")}.weight`, dt, [K, N], transposed(weight, N, K));
      return g.node("MatMul", [x, `${name.slice(1).replaceAll("/", ".")}.weight`], {}, [`${name}/MatMul/output_0`])[0]!;
    }
    const base = `${name.slice(1).replaceAll("/", ".")}.MatMul.weight_Q4`;
    const inputs = [x, base, `${base}.scales`];
    if (wq === "int4") {
      const q = quantizeMatrix(weight, N, K, 4, blockSize);
      g.initializer(base, "uint8", [N, q.nBlocks, q.blobSize], q.packed);
      g.initializer(`${base}.scales`, dt, [N * q.nBlocks], q.scales);
    } else {
      const q = quantizeAsym4(weight, N, K, blockSize);
      g.initializer(base, "uint8", [N, q.nBlocks, q.blob], q.packed);
      g.initializer(`${base}.scales`, dt, [N * q.nBlocks], q.scales);
      inputs.push(g.initializer(`${base}.zero_points`, "uint8", [q.zeroPoints.length], q.zeroPoints));
    }
    return g.node("MatMulNBits", inputs, { K, N, bits: 4, block_size: blockSize, accuracy_level: 0 }, [`${name}/MatMulNBits/output_0`], "com.microsoft")[0]!;
  };

  // the attention-mask reformat the genai builder writes: seqlens_k = sum(mask) - 1, total = mask width
  const seqlens = g.op("Cast", [g.op("Sub", [g.op("ReduceSum", [mask, g.constInt64([1])], { keepdims: 0 }), g.constInt64([1], true)])], { to: dtypeCode("int32") });
  const total = g.op("Cast", [g.op("Squeeze", [g.op("Shape", [mask], { start: 1, end: 2 }), g.constInt64([0])])], { to: dtypeCode("int32") });
  // MHA: an additive causal mask [1, 1, S, S] broadcast to [1, 1, S, T], which, like the mask
  // reformat of real genai MHA exports, only holds for a prompt (S = T) or one new token (S = 1): a
  // multi-token forward on a filled cache fails with "invalid expand shape", so such an export can
  // only verify token by token.
  let attnBias = "";
  if (attention === "mha") {
    const S = g.op("Shape", [ids], { start: 1, end: 2 });
    const T = g.op("Shape", [mask], { start: 1, end: 2 });
    const ones = g.op("ConstantOfShape", [g.op("Concat", [S, S], { axis: 0 })], { value: attr.tensor("float32", [1], [1]) });
    const tri = g.op("Trilu", [ones], { upper: 0 });
    let bias = g.op("Mul", [g.op("Sub", [g.constFloat(1), tri]), g.constFloat(-10000)]);
    if (dt === "float16") bias = g.op("Cast", [bias], { to: dtypeCode("float16") });
    attnBias = g.op("Expand", [g.op("Unsqueeze", [bias, g.constInt64([0, 1])]), g.op("Concat", [g.constInt64([1, 1]), S, T], { axis: 0 })]);
  }

  // rotary caches (the genai builder stores cos/sin of [positions, head_size/2])
  const P = cfg.maxPositionEmbeddings;
  const inv = ropeInvFreq(cfg);
  const cosC = new Float32Array(P * (D / 2));
  const sinC = new Float32Array(P * (D / 2));
  for (let p = 0; p < P; p++) {
    for (let j = 0; j < D / 2; j++) {
      const a = Math.fround(p * inv[j]!);
      cosC[p * (D / 2) + j] = Math.cos(a);
      sinC[p * (D / 2) + j] = Math.sin(a);
    }
  }
  g.initializer("cos_cache", dt, [P, D / 2], cosC);
  g.initializer("sin_cache", dt, [P, D / 2], sinC);

  g.initializer("model.embed_tokens.weight", dt, [V, H], get("model.embed_tokens.weight"));
  let x = g.node("Gather", ["model.embed_tokens.weight", ids], { axis: 0 }, ["/model/embed_tokens/Gather/output_0"])[0]!;
  let residual = x;
  let xn = "";
  const eps = attr.float(cfg.rmsNormEps);
  const skipNorm = (name: string, a: string, b: string, weight: string): [string, string] => {
    const [y, , , sum] = g.node("SkipSimplifiedLayerNormalization", [a, b, weight], { epsilon: eps }, [`${name}/output_0`, `${name}/output_1`, `${name}/output_2`, `${name}/output_3`], "com.microsoft");
    return [y!, sum!];
  };
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}`;
    const n = `/model/layers.${i}`;
    g.initializer(`${p}.input_layernorm.weight`, dt, [H], get(`${p}.input_layernorm.weight`));
    if (i === 0) xn = g.node("SimplifiedLayerNormalization", [x, `${p}.input_layernorm.weight`], { axis: -1, epsilon: eps, stash_type: 1 }, [`${n}/input_layernorm/LayerNorm/output_0`])[0]!;
    else [xn, residual] = skipNorm(`${n}/input_layernorm/SkipLayerNorm`, x, residual, `${p}.input_layernorm.weight`);
    const wqm = get(`${p}.self_attn.q_proj.weight`);
    const wk = get(`${p}.self_attn.k_proj.weight`);
    const wv = get(`${p}.self_attn.v_proj.weight`);
    let q: string;
    let k: string;
    let v: string;
    if (o.fuseQkv) {
      const qkv = linear(xn, `${n}/attn/qkv_proj`, stackRows([wqm, wk, wv]), (NH + 2 * KV) * D, H, true);
      [q, k, v] = g.node("Split", [qkv, g.constInt64([NH * D, KV * D, KV * D])], { axis: -1 }, 3) as [string, string, string];
    } else {
      q = linear(xn, `${n}/attn/q_proj`, wqm, NH * D, H, true);
      k = linear(xn, `${n}/attn/k_proj`, wk, KV * D, H, true);
      v = linear(xn, `${n}/attn/v_proj`, wv, KV * D, H, true);
    }
    if (cfg.attentionBias) {
      for (const [t, name, len] of [[q, "q", NH * D], [k, "k", KV * D], [v, "v", KV * D]] as const) {
        g.initializer(`${p}.attn.${name}_proj.bias`, dt, [len], get(`${p}.self_attn.${name}_proj.bias`));
        const added = g.op("Add", [t, `${p}.attn.${name}_proj.bias`]);
        if (name === "q") q = added;
        else if (name === "k") k = added;
        else v = added;
      }
    }
    if (attention !== "gqa-rotary") {
      q = g.node("RotaryEmbedding", [q, pos!, "cos_cache", "sin_cache"], { interleaved: 0, num_heads: NH }, [`${n}/attn/q_rotary/RotaryEmbedding/output_0`], "com.microsoft")[0]!;
      k = g.node("RotaryEmbedding", [k, pos!, "cos_cache", "sin_cache"], { interleaved: 0, num_heads: KV }, [`${n}/attn/k_rotary/RotaryEmbedding/output_0`], "com.microsoft")[0]!;
    }
    let att: string;
    if (attention === "mha") {
      // inputs: query, key, value, bias, key_padding_mask, attention_bias, past_key, past_value
      [att] = g.node("MultiHeadAttention", [q, k, v, "", "", attnBias, past[i]!.k, past[i]!.v], { num_heads: NH }, [`${n}/attn/MultiHeadAttention/output_0`, `present.${i}.key`, `present.${i}.value`], "com.microsoft") as [string];
    } else {
      const inputs = [q, k, v, past[i]!.k, past[i]!.v, seqlens, total];
      const attrs: Record<string, number> = { num_heads: NH, kv_num_heads: KV };
      if (attention === "gqa-rotary") {
        inputs.push("cos_cache", "sin_cache");
        attrs.do_rotary = 1;
        attrs.rotary_interleaved = 0;
      }
      [att] = g.node("GroupQueryAttention", inputs, attrs, [`${n}/attn/GroupQueryAttention/output_0`, `present.${i}.key`, `present.${i}.value`], "com.microsoft") as [string];
    }
    g.output(`present.${i}.key`, dt, ["batch_size", KV, "total_sequence_length", D]);
    g.output(`present.${i}.value`, dt, ["batch_size", KV, "total_sequence_length", D]);
    const oOut = linear(att!, `${n}/attn/o_proj`, get(`${p}.self_attn.o_proj.weight`), H, NH * D, true);
    g.initializer(`${p}.post_attention_layernorm.weight`, dt, [H], get(`${p}.post_attention_layernorm.weight`));
    [xn, residual] = skipNorm(`${n}/post_attention_layernorm/SkipLayerNorm`, oOut, residual, `${p}.post_attention_layernorm.weight`);
    const wg = get(`${p}.mlp.gate_proj.weight`);
    const wu = get(`${p}.mlp.up_proj.weight`);
    let gate: string;
    let up: string;
    if (o.fuseGateUp) {
      const gu = linear(xn, `${n}/mlp/gate_up_proj`, stackRows([wg, wu]), 2 * I, H, true);
      [gate, up] = g.node("Split", [gu, g.constInt64([I, I])], { axis: -1 }, 2) as [string, string];
    } else {
      gate = linear(xn, `${n}/mlp/gate_proj`, wg, I, H, true);
      up = linear(xn, `${n}/mlp/up_proj`, wu, I, H, true);
    }
    const act = g.node("Mul", [gate, g.node("Sigmoid", [gate], {}, [`${n}/mlp/act_fn/Sigmoid/output_0`])[0]!], {}, [`${n}/mlp/act_fn/Mul/output_0`])[0]!;
    const prod = g.op("Mul", [act, up]);
    x = linear(prod, `${n}/mlp/down_proj`, get(`${p}.mlp.down_proj.weight`), H, I, true);
  }
  g.initializer("model.norm.weight", dt, [H], get("model.norm.weight"));
  [xn] = skipNorm("/model/norm/SkipLayerNorm", x, residual, "model.norm.weight");
  const head = cfg.tieWordEmbeddings || !w.has("lm_head.weight") ? get("model.embed_tokens.weight") : get("lm_head.weight");
  const logits = linear(xn, "/lm_head", head, V, H, o.quantizeLmHead === true);
  g.output("logits", dt, ["batch_size", "sequence_length", V], logits);
  g.setMetadata("fixture", "genai-style");
  g.save(path);
  g.dispose();
  atomicWriteFileSync(join(out, "genai_config.json"), JSON.stringify(genaiConfigFor(cfg, { filename: "model.onnx" }), null, 2) + "\n");
  return out;
}

export interface OptimumExportOptions {
  /** Put the weights in model.onnx_data (external data). */
  externalData?: boolean;
  /**
   * onnx-community dynamic-int8 form (onnxruntime quantize_dynamic): every projection and lm_head
   * as DynamicQuantizeLinear + MatMulInteger with per-tensor int8 (symmetric) or uint8 (min/max)
   * weights, Cast, Mul(x_scale * w_scale); the embedding table quantized per tensor with a
   * DequantizeLinear after its Gather (quantize_dynamic's GatherQuant).
   */
  int8?: "int8" | "uint8";
}

/** Optimum-style plain-op export (fp32) of the checkpoint in `src`, written to `out/model.onnx` + config.json + tokenizer. */
export function writeOptimumExport(src: string, out: string, o: OptimumExportOptions = {}): string {
  const cfg: DecoderConfig = readDecoderConfig(src);
  const w: WeightSource = openSafetensorsDir(src);
  const { hiddenSize: H, intermediateSize: I, numHeads: NH, numKvHeads: KV, headDim: D, vocabSize: V, numLayers: L } = cfg;
  const G = NH / KV;
  copyTokenizer(src, out, true);
  const path = join(out, "model.onnx");
  const g = new GraphBuilder({ name: "main_graph", modelPath: path, externalData: o.externalData ? "always" : "never" });
  const get = (n: string) => w.get(n).data;
  let anon = 100;
  const weightT = (weight: Float32Array, N: number, K: number) => g.initializer(`onnx::MatMul_${anon++}`, "float32", [K, N], transposed(weight, N, K));
  const dqlOf = new Map<string, [string, string, string]>();
  /** x W^T: a float MatMul, or quantize_dynamic's MatMulInteger chain (per-tensor scale and zero point). */
  const matmul = (x: string, weight: Float32Array, N: number, K: number, outName: string): string => {
    if (!o.int8) return g.node("MatMul", [x, weightT(weight, N, K)], {}, [outName])[0]!;
    const wt = transposed(weight, N, K);
    let lo = 0;
    let hi = 0;
    for (const v of wt) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    const signed = o.int8 === "int8";
    const scale = Math.fround(signed ? Math.max(-lo, hi) / 127 : (hi - lo) / 255);
    const zp = signed ? 0 : Math.max(0, Math.min(255, Math.round(-lo / scale)));
    const codes = signed ? Int8Array.from(wt, (v) => Math.max(-127, Math.min(127, Math.round(v / scale)))) : Uint8Array.from(wt, (v) => Math.max(0, Math.min(255, Math.round(v / scale) + zp)));
    const base = `onnx::MatMul_${anon++}`;
    g.initializer(`${base}_quantized`, o.int8, [K, N], codes);
    g.initializer(`${base}_scale`, "float32", [], [scale]);
    g.initializer(`${base}_zero_point`, o.int8, [], [zp]);
    let dql = dqlOf.get(x);
    if (!dql) {
      dql = g.node("DynamicQuantizeLinear", [x], {}, [`${x}_quantized`, `${x}_scale`, `${x}_zero_point`]) as [string, string, string];
      dqlOf.set(x, dql);
    }
    const acc = g.node("MatMulInteger", [dql[0], `${base}_quantized`, dql[2], `${base}_zero_point`], {}, [`${outName}_quantized`])[0]!;
    const scales = g.op("Mul", [dql[1], `${base}_scale`]);
    return g.node("Mul", [g.op("Cast", [acc], { to: dtypeCode("float32") }), scales], {}, [outName])[0]!;
  };
  const ids = g.input("input_ids", "int64", ["batch_size", "sequence_length"]);
  const mask = g.input("attention_mask", "int64", ["batch_size", "past_sequence_length + 1"]);
  const pos = g.input("position_ids", "int64", ["batch_size", "sequence_length"]);
  const past = Array.from({ length: L }, (_, i) => ({
    k: g.input(`past_key_values.${i}.key`, "float32", ["batch_size", KV, "past_sequence_length", D]),
    v: g.input(`past_key_values.${i}.value`, "float32", ["batch_size", KV, "past_sequence_length", D]),
  }));
  const c64 = (v: number[]) => g.constInt64(v);
  const named = (op: string, name: string, inputs: string[], attrs = {}) => g.node(op, inputs, attrs, [`${name}/${op}_output_0`])[0]!;
  const two = g.constFloat(2);
  const epsC = g.constFloat(cfg.rmsNormEps);
  const one = g.constFloat(1);
  const rms = (name: string, x: string, weightName: string, weight: Float32Array) => {
    g.initializer(weightName, "float32", [H], weight);
    const ms = named("ReduceMean", name, [named("Pow", name, [x, two])], { axes: [-1], keepdims: 1 });
    const r = named("Reciprocal", name, [named("Sqrt", name, [named("Add", name, [ms, epsC])])]);
    return g.node("Mul", [weightName, g.op("Mul", [x, r])], {}, [`${name}/Mul_1_output_0`])[0]!;
  };
  void one;

  // RoPE from inv_freq (a Constant node, as torch.onnx traces the buffer), [B, 1, S, D]
  const inv = Float32Array.from(ropeInvFreq(cfg));
  const [invName] = g.node("Constant", [], { value: attr.tensor("float32", [1, D / 2, 1], inv) }, ["/model/rotary_emb/Constant_output_0"]);
  const posF = g.op("Cast", [g.op("Unsqueeze", [pos, c64([1])])], { to: dtypeCode("float32") }); // [B, 1, S]
  const freqs = g.op("Transpose", [g.op("MatMul", [invName!, posF])], { perm: [0, 2, 1] }); // [B, S, D/2]
  const emb = g.op("Concat", [freqs, freqs], { axis: -1 });
  const cos = g.op("Unsqueeze", [g.op("Cos", [emb]), c64([1])]);
  const sin = g.op("Unsqueeze", [g.op("Sin", [emb]), c64([1])]);
  const rotateHalf = (t: string) => {
    const x1 = g.op("Slice", [t, c64([0]), c64([D / 2]), c64([3])]);
    const x2 = g.op("Slice", [t, c64([D / 2]), c64([D]), c64([3])]);
    return g.op("Concat", [g.op("Neg", [x2]), x1], { axis: -1 });
  };
  const rope = (t: string) => g.op("Add", [g.op("Mul", [t, cos]), g.op("Mul", [rotateHalf(t), sin])]);

  // additive causal + padding mask [B, 1, S, T]
  const seqLen = g.op("Shape", [ids], { start: 1, end: 2 });
  const totalLen = g.op("Shape", [mask], { start: 1, end: 2 });
  const pastLen = g.op("Sub", [totalLen, seqLen]);
  const zero = g.constInt64([0], true);
  const oneI = g.constInt64([1], true);
  const totalS = g.op("Squeeze", [totalLen, c64([0])]);
  const keyPos = g.op("Range", [zero, totalS, oneI]);
  const queryPos = g.op("Unsqueeze", [g.op("Range", [g.op("Squeeze", [pastLen, c64([0])]), totalS, oneI]), c64([1])]);
  const allowed = g.op("And", [g.op("LessOrEqual", [keyPos, queryPos]), g.op("Cast", [g.op("Unsqueeze", [mask, c64([1])])], { to: dtypeCode("bool") })]);
  const addMask = g.op("Unsqueeze", [g.op("Where", [allowed, g.constFloat(0), g.constFloat(-3.4028234663852886e38)]), c64([1])]);
  const scale = g.constFloat(1 / Math.sqrt(D));

  let x: string;
  if (o.int8) {
    // GatherQuant: the table per-tensor quantized, DequantizeLinear after the Gather
    const e = get("model.embed_tokens.weight");
    const amax = e.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const scale = Math.fround(amax / 127);
    const signed = o.int8 === "int8";
    const zp = signed ? 0 : 128;
    g.initializer("model.embed_tokens.weight_quantized", o.int8, [V, H], signed ? Int8Array.from(e, (v) => Math.round(v / scale)) : Uint8Array.from(e, (v) => Math.round(v / scale) + zp));
    g.initializer("model.embed_tokens.weight_scale", "float32", [], [scale]);
    g.initializer("model.embed_tokens.weight_zero_point", o.int8, [], [zp]);
    const gathered = g.op("Gather", ["model.embed_tokens.weight_quantized", ids], { axis: 0 });
    x = g.node("DequantizeLinear", [gathered, "model.embed_tokens.weight_scale", "model.embed_tokens.weight_zero_point"], {}, ["/model/embed_tokens/Gather_output_0"])[0]!;
  } else {
    g.initializer("model.embed_tokens.weight", "float32", [V, H], get("model.embed_tokens.weight"));
    x = g.node("Gather", ["model.embed_tokens.weight", ids], { axis: 0 }, ["/model/embed_tokens/Gather_output_0"])[0]!;
  }
  const repeat = (t: string) => (G === 1 ? t : g.op("Reshape", [g.op("Tile", [g.op("Unsqueeze", [t, c64([2])]), c64([1, 1, G, 1, 1])]), c64([0, NH, -1, D])]));
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}`;
    const n = `/model/layers.${i}`;
    const xn = rms(`${n}/input_layernorm`, x, `${p}.input_layernorm.weight`, get(`${p}.input_layernorm.weight`));
    const proj = (name: string, inp: string, N: number, K: number, wName: string) => matmul(inp, get(wName), N, K, `${n}/${name}/MatMul_output_0`);
    const heads = (t: string, h: number) => g.op("Transpose", [g.op("Reshape", [t, c64([0, 0, h, D])])], { perm: [0, 2, 1, 3] });
    const qb = (t: string, r: string) => (cfg.attentionBias ? g.op("Add", [g.initializer(`${p}.self_attn.${r}_proj.bias`, "float32", [r === "q" ? NH * D : KV * D], get(`${p}.self_attn.${r}_proj.bias`)), t]) : t);
    const q = rope(heads(qb(proj("self_attn/q_proj", xn, NH * D, H, `${p}.self_attn.q_proj.weight`), "q"), NH));
    const k = rope(heads(qb(proj("self_attn/k_proj", xn, KV * D, H, `${p}.self_attn.k_proj.weight`), "k"), KV));
    const v = heads(qb(proj("self_attn/v_proj", xn, KV * D, H, `${p}.self_attn.v_proj.weight`), "v"), KV);
    g.node("Concat", [past[i]!.k, k], { axis: 2 }, [`present.${i}.key`]);
    g.node("Concat", [past[i]!.v, v], { axis: 2 }, [`present.${i}.value`]);
    g.output(`present.${i}.key`, "float32", ["batch_size", KV, "past_sequence_length + 1", D]);
    g.output(`present.${i}.value`, "float32", ["batch_size", KV, "past_sequence_length + 1", D]);
    const scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, g.op("Transpose", [repeat(`present.${i}.key`)], { perm: [0, 1, 3, 2] })]), scale]), addMask]);
    const probs = named("Softmax", `${n}/self_attn`, [scores], { axis: -1 });
    const ctx = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [probs, repeat(`present.${i}.value`)])], { perm: [0, 2, 1, 3] }), c64([0, 0, NH * D])]);
    x = g.op("Add", [x, proj("self_attn/o_proj", ctx, H, NH * D, `${p}.self_attn.o_proj.weight`)]);
    const xn2 = rms(`${n}/post_attention_layernorm`, x, `${p}.post_attention_layernorm.weight`, get(`${p}.post_attention_layernorm.weight`));
    const gate = proj("mlp/gate_proj", xn2, I, H, `${p}.mlp.gate_proj.weight`);
    const up = proj("mlp/up_proj", xn2, I, H, `${p}.mlp.up_proj.weight`);
    const act = g.op("Mul", [g.op("Mul", [gate, named("Sigmoid", `${n}/mlp/act_fn`, [gate])]), up]);
    x = g.op("Add", [x, proj("mlp/down_proj", act, H, I, `${p}.mlp.down_proj.weight`)]);
  }
  const xf = rms("/model/norm", x, "model.norm.weight", get("model.norm.weight"));
  const head = cfg.tieWordEmbeddings || !w.has("lm_head.weight") ? get("model.embed_tokens.weight") : get("lm_head.weight");
  matmul(xf, head, V, H, "logits");
  g.output("logits", "float32", ["batch_size", "sequence_length", V]);
  g.save(path);
  g.dispose();
  if (!existsSync(join(out, "config.json"))) throw new BuildError(`${src} has no config.json.`);
  return out;
}
