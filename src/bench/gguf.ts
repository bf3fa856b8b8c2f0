/**
 * A GGUF (v3) writer for Llama-family checkpoints in Q4_0 / Q8_0, from the same safetensors our
 * builder reads, for the llama.cpp side-by-side (scripts/peer-llama-cpp.mjs). Written here, not
 * by llama.cpp's converter (Python, not on this machine), from the format in llama.cpp's
 * docs/gguf.md and ggml's block layouts:
 *  - header: "GGUF", version 3, tensor count (u64), metadata count (u64); metadata key/values;
 *    tensor infos (name, n_dims, ne[] innermost first, ggml type, offset); data aligned to 32.
 *  - Q4_0 block (18 bytes / 32 values): float16 d, then 16 bytes where byte j holds value j in its
 *    low nibble and value j+16 in its high nibble (code = q + 8). Q8_0 block (34 bytes): float16 d,
 *    32 int8 codes.
 * The codes and d come from quantize.ts (the same function as our MatMulNBits weights, which uses
 * llama.cpp's rounding), so both engines run bit-identical weights. Like llama.cpp's converter,
 * the q/k projection rows are permuted from Hugging Face's rotate-half RoPE layout to ggml's
 * interleaved one (a row permutation: blocks run along rows, so the codes do not change).
 * Norms stay float32; the embedding (token_embd) stays float32 like our builds; output (lm_head)
 * is quantized like our twin's.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { checkCheckpoint, getWeight } from "../builder/checkpoint.js";
import type { DecoderConfig } from "../builder/config.js";
import { quantizeMatrix } from "../builder/quantize.js";
import type { WeightSource } from "../builder/safetensors.js";
import { InvalidOptionError } from "../errors.js";
import { f32ToF16Bits } from "../util/half.js";

export type GgufQuant = "Q4_0" | "Q8_0";

const GGML_TYPE = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8 } as const;
/** general.file_type: LLAMA_FTYPE_MOSTLY_Q4_0 = 2, MOSTLY_Q8_0 = 7. */
const FILE_TYPE: Record<GgufQuant, number> = { Q4_0: 2, Q8_0: 7 };
const ALIGN = 32;

type MetaValue =
  | { t: "u32"; v: number }
  | { t: "f32"; v: number }
  | { t: "str"; v: string }
  | { t: "bool"; v: boolean }
  | { t: "i32"; v: number }
  | { t: "strs"; v: string[] }
  | { t: "i32s"; v: number[] };

/** A byte-level BPE vocabulary for the GGUF (llama.cpp's "gpt2" tokenizer model). */
export interface GgufVocab {
  /** Token strings by id. */
  tokens: string[];
  /** llama.cpp token types by id: 1 normal, 3 control. */
  types: number[];
  /** "a b" merge rules, by rank. */
  merges: string[];
  bos?: number;
  eos?: number;
  pad?: number;
}

/** The vocabulary of a Hugging Face byte-level BPE tokenizer.json (model.vocab + added_tokens). */
export function ggufVocabFromTokenizerJson(json: {
  model: { vocab: Record<string, number>; merges?: (string | [string, string])[] };
  added_tokens?: { id: number; content: string; special?: boolean }[];
}, ids: { bos?: number; eos?: number; pad?: number; vocabSize: number }): GgufVocab {
  const tokens: string[] = Array.from({ length: ids.vocabSize }, (_, i) => `[UNUSED_${i}]`);
  const types: number[] = new Array<number>(ids.vocabSize).fill(1);
  for (const [s, id] of Object.entries(json.model.vocab)) if (id < ids.vocabSize) tokens[id] = s;
  for (const t of json.added_tokens ?? []) {
    if (t.id < ids.vocabSize) {
      tokens[t.id] = t.content;
      if (t.special) types[t.id] = 3;
    }
  }
  const merges = (json.model.merges ?? []).map((m) => (Array.isArray(m) ? m.join(" ") : m));
  return { tokens, types, merges, bos: ids.bos, eos: ids.eos, pad: ids.pad };
}

class Buf {
  private parts: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    this.parts.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  i32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }
  u64(v: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  f32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }
  str(s: string): void {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.push(b);
  }
  concat(): Buffer {
    return Buffer.concat(this.parts);
  }
}

interface TensorOut {
  name: string;
  /** ne[]: innermost first (columns, then rows). */
  ne: number[];
  type: number;
  data: Buffer;
}

/** Q4_0 / Q8_0 blocks of W [N, K] (row-major), K a multiple of 32. */
export function ggufQuantize(w: Float32Array, N: number, K: number, q: GgufQuant): Buffer {
  if (K % 32 !== 0) throw new InvalidOptionError(`GGUF ${q} needs rows of a multiple of 32 values (got ${K}).`);
  const bits = q === "Q4_0" ? 4 : 8;
  const m = quantizeMatrix(w, N, K, bits, 32);
  const blockBytes = q === "Q4_0" ? 18 : 34;
  const out = Buffer.alloc(N * m.nBlocks * blockBytes);
  for (let b = 0; b < N * m.nBlocks; b++) {
    const o = b * blockBytes;
    out.writeUInt16LE(f32ToF16Bits(m.scales[b]!), o);
    const src = b * m.blobSize;
    if (bits === 4) {
      // MatMulNBits packs values (2j, 2j+1) per byte; ggml packs (j, j+16).
      const code = (i: number) => (m.packed[src + (i >> 1)]! >> ((i & 1) * 4)) & 15;
      for (let j = 0; j < 16; j++) out[o + 2 + j] = code(j) | (code(j + 16) << 4);
    } else {
      for (let j = 0; j < 32; j++) out.writeInt8(m.packed[src + j]! - 128, o + 2 + j);
    }
  }
  return out;
}

/** llama.cpp's convert_hf_to_gguf permutation of q/k rows (HF rotate-half -> ggml interleaved RoPE). */
function permuteRows(w: Float32Array, heads: number, rows: number, cols: number): Float32Array {
  const D = rows / heads;
  const half = D / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let s = 0; s < 2; s++) {
        const src = h * D + s * half + i; // row in HF layout: [head][half s][i]
        const dst = h * D + i * 2 + s; // ggml layout: [head][i][s]
        out.set(w.subarray(src * cols, (src + 1) * cols), dst * cols);
      }
    }
  }
  return out;
}

/** Write `cfg` + `weights` (a llama checkpoint) as a GGUF file with `quant` linear weights. */
export function writeLlamaGguf(
  path: string,
  cfg: DecoderConfig,
  weights: WeightSource,
  quant: GgufQuant,
  vocab: GgufVocab,
  name = "spec-decode twin",
): { bytes: number; tensors: number } {
  if (cfg.architecture !== "llama") throw new InvalidOptionError(`The GGUF writer handles llama checkpoints (got ${cfg.architecture}).`);
  if (cfg.attentionBias || cfg.qkNorm) throw new InvalidOptionError("The GGUF writer does not handle attention biases or q/k norms.");
  const names = checkCheckpoint(cfg, weights);
  const { hiddenSize: H, intermediateSize: I, numHeads: NH, numKvHeads: KV, headDim: D, vocabSize: V } = cfg;
  const tensors: TensorOut[] = [];
  const f32 = (name: string, data: Float32Array, ne: number[]) =>
    tensors.push({ name, ne, type: GGML_TYPE.F32, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength) });
  const qt = (name: string, data: Float32Array, N: number, K: number) => tensors.push({ name, ne: [K, N], type: GGML_TYPE[quant], data: ggufQuantize(data, N, K, quant) });

  f32("token_embd.weight", getWeight(weights, names.embed, [V, H]), [H, V]);
  for (let i = 0; i < cfg.numLayers; i++) {
    const l = names.layer(i);
    f32(`blk.${i}.attn_norm.weight`, getWeight(weights, l.inputNorm, [H]), [H]);
    qt(`blk.${i}.attn_q.weight`, permuteRows(getWeight(weights, l.q, [NH * D, H]), NH, NH * D, H), NH * D, H);
    qt(`blk.${i}.attn_k.weight`, permuteRows(getWeight(weights, l.k, [KV * D, H]), KV, KV * D, H), KV * D, H);
    qt(`blk.${i}.attn_v.weight`, getWeight(weights, l.v, [KV * D, H]), KV * D, H);
    qt(`blk.${i}.attn_output.weight`, getWeight(weights, l.o, [H, NH * D]), H, NH * D);
    f32(`blk.${i}.ffn_norm.weight`, getWeight(weights, l.postNorm, [H]), [H]);
    qt(`blk.${i}.ffn_gate.weight`, getWeight(weights, l.gate, [I, H]), I, H);
    qt(`blk.${i}.ffn_up.weight`, getWeight(weights, l.up, [I, H]), I, H);
    qt(`blk.${i}.ffn_down.weight`, getWeight(weights, l.down, [H, I]), H, I);
  }
  f32("output_norm.weight", getWeight(weights, names.norm, [H]), [H]);
  qt("output.weight", getWeight(weights, names.lmHead, [V, H]), V, H);

  const meta: [string, MetaValue][] = [
    ["general.architecture", { t: "str", v: "llama" }],
    ["general.name", { t: "str", v: name }],
    ["general.file_type", { t: "u32", v: FILE_TYPE[quant] }],
    ["general.alignment", { t: "u32", v: ALIGN }],
    ["llama.context_length", { t: "u32", v: cfg.maxPositionEmbeddings }],
    ["llama.embedding_length", { t: "u32", v: H }],
    ["llama.block_count", { t: "u32", v: cfg.numLayers }],
    ["llama.feed_forward_length", { t: "u32", v: I }],
    ["llama.rope.dimension_count", { t: "u32", v: D }],
    ["llama.attention.head_count", { t: "u32", v: NH }],
    ["llama.attention.head_count_kv", { t: "u32", v: KV }],
    ["llama.attention.key_length", { t: "u32", v: D }],
    ["llama.attention.value_length", { t: "u32", v: D }],
    ["llama.attention.layer_norm_rms_epsilon", { t: "f32", v: cfg.rmsNormEps }],
    ["llama.rope.freq_base", { t: "f32", v: cfg.ropeTheta }],
    ["llama.vocab_size", { t: "u32", v: V }],
    // Both engines are fed the same token ids; llama.cpp still needs a vocabulary to load.
    ["tokenizer.ggml.model", { t: "str", v: "gpt2" }],
    ["tokenizer.ggml.pre", { t: "str", v: "default" }],
    ["tokenizer.ggml.tokens", { t: "strs", v: vocab.tokens }],
    ["tokenizer.ggml.token_type", { t: "i32s", v: vocab.types }],
    ["tokenizer.ggml.merges", { t: "strs", v: vocab.merges }],
    ...(vocab.bos !== undefined ? ([["tokenizer.ggml.bos_token_id", { t: "u32", v: vocab.bos }]] as [string, MetaValue][]) : []),
    ...(vocab.eos !== undefined ? ([["tokenizer.ggml.eos_token_id", { t: "u32", v: vocab.eos }]] as [string, MetaValue][]) : []),
    ...(vocab.pad !== undefined ? ([["tokenizer.ggml.padding_token_id", { t: "u32", v: vocab.pad }]] as [string, MetaValue][]) : []),
    ["tokenizer.ggml.add_bos_token", { t: "bool", v: false }],
  ];
  if (vocab.tokens.length !== V) throw new InvalidOptionError(`The GGUF vocabulary has ${vocab.tokens.length} tokens but the model ${V}.`);

  const head = new Buf();
  head.push(Buffer.from("GGUF", "ascii"));
  head.u32(3);
  head.u64(tensors.length);
  head.u64(meta.length);
  for (const [k, val] of meta) {
    head.str(k);
    switch (val.t) {
      case "u32":
        head.u32(4);
        head.u32(val.v);
        break;
      case "i32":
        head.u32(5);
        head.i32(val.v);
        break;
      case "f32":
        head.u32(6);
        head.f32(val.v);
        break;
      case "bool":
        head.u32(7);
        head.push(Buffer.from([val.v ? 1 : 0]));
        break;
      case "str":
        head.u32(8);
        head.str(val.v);
        break;
      case "strs":
        head.u32(9);
        head.u32(8);
        head.u64(val.v.length);
        for (const s of val.v) head.str(s);
        break;
      case "i32s":
        head.u32(9);
        head.u32(5);
        head.u64(val.v.length);
        for (const x of val.v) head.i32(x);
        break;
    }
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    offsets.push(offset);
    head.str(t.name);
    head.u32(t.ne.length);
    for (const d of t.ne) head.u64(d);
    head.u32(t.type);
    head.u64(offset);
    offset += Math.ceil(t.data.length / ALIGN) * ALIGN;
  }
  const headBuf = head.concat();
  const dataStart = Math.ceil(headBuf.length / ALIGN) * ALIGN;
  const fd = openSync(path, "w");
  try {
    writeSync(fd, headBuf, 0, headBuf.length, 0);
    tensors.forEach((t, i) => writeSync(fd, t.data, 0, t.data.length, dataStart + offsets[i]!));
    const end = dataStart + offset;
    // Pad the last tensor to the alignment (ggml checks the file covers every tensor's span).
    const last = tensors.length > 0 ? dataStart + offsets[tensors.length - 1]! + tensors[tensors.length - 1]!.data.length : dataStart;
    if (end > last) writeSync(fd, Buffer.alloc(end - last), 0, end - last, last);
    return { bytes: end, tensors: tensors.length };
  } finally {
    closeSync(fd);
  }
}
