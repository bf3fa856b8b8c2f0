/**
 * Tiny random checkpoints for tests and demos: a valid HF config.json, generation_config.json,
 * seeded random safetensors, the fixture tokenizer, and the ONNX graphs built from them by the real
 * builder (so tests exercise the real conversion path).
 *
 * Weight scales (chosen so the next-token distributions are peaked and well separated; measured on
 * the defaults, the greedy top-1/top-2 logit gap is usually well above 0.1 and temperature-1
 * sampling puts most of the mass on a handful of tokens):
 *   - lm_head ~ N(0, (4/sqrt(hidden))^2): the final RMSNorm output has RMS ~1, so logits have a
 *     standard deviation of ~4 (median top-1/top-2 gap ~0.8 logit, ~90% of gaps > 0.1, mean top-1
 *     probability ~0.5, entropy ~2 nats on the default 320-token vocab).
 *   - tied: embed_tokens = lm_head ~ N(0, 0.25^2/hidden) (rows of norm ~0.25) and the final norm
 *     weight ~ 16 * (1 + N(0, 0.1^2)) gives the same logit scale. (The current token's own logit
 *     gets a boost of ~|row| / RMS(residual) standard deviations; with rows of norm ~1 or more it
 *     dominates and greedy decoding repeats one token forever.)
 *   - the lm_head rows of the special tokens (pad/bos/eos) are scaled by 0.25 so random fixtures
 *     rarely stop or emit padding (they still can, with small probability).
 *   - embed_tokens (untied) ~ N(0, 1).
 *   - q/k/v/gate/up ~ N(0, 1/hidden); o_proj ~ N(0, r_i^2/(heads*head_dim)); down ~ N(0, r_i^2/intermediate)
 *     with r_i = 0.5 * 0.5^i for layer i: each residual branch of layer i adds ~r_i RMS, so context
 *     matters, the stream stays well scaled, and deeper layers change less, like a trained model
 *     whose early exits are decent drafts. Measured on the demo config (4 layers, hidden 256):
 *     greedy early_exit_1 agrees with the full model on ~70% of tokens, early_exit_2 on ~85%, so
 *     draft methods get both acceptances and rejections.
 *   - other RMSNorm weights ~ 1 + N(0, 0.1^2); qwen2 q/k/v biases ~ N(0, 0.2^2).
 * Every tensor has its own PRNG stream seeded from (seed, tensor name), so fixtures that differ only
 * in depth share the weights of their common layers.
 */
import { mkdirSync } from "node:fs";
import { atomicWriteFileSync } from "../util/atomic-file.js";
import { join, resolve } from "node:path";
import { InvalidOptionError } from "../errors.js";
import { makeFixtureTokenizer } from "../text/fixture-tokenizer.js";
import { buildModelDir, type BuildLayout } from "./build-dir.js";
import type { QuantizeOptions } from "./quantize.js";
import { parseDecoderConfig, type Architecture, type DecoderConfig } from "./config.js";
import { writeSafetensors, type TensorToWrite } from "./safetensors.js";

export interface FixtureOptions {
  /** Output directory (created). */
  out: string;
  arch?: Architecture;
  /** Decoder layers (default 2). */
  layers?: number;
  /** Hidden size (default 64). */
  hidden?: number;
  /** Attention heads (default 4). */
  heads?: number;
  /** KV heads (default 2). */
  kvHeads?: number;
  /** MLP size (default 2 * hidden). */
  intermediate?: number;
  /** Vocabulary size (default 320; >= 259 gives a byte-level BPE tokenizer). */
  vocab?: number;
  /** max_position_embeddings (default 512). */
  maxPositions?: number;
  /** PRNG seed (default 0). */
  seed?: number;
  tieEmbeddings?: boolean;
  /** Also build early-exit drafts with these layer counts. */
  earlyExit?: number[];
  treeMask?: boolean;
  hiddenStates?: boolean;
  ioDtype?: "float32" | "float16";
  layout?: BuildLayout;
  /** Store the safetensors as F32 (default), F16 or BF16 (values are rounded accordingly). */
  weightDtype?: "F32" | "F16" | "BF16";
  /** Build quantized graphs (model_q4.onnx / model_int8.onnx ...) instead of model.onnx; see BuildModelDirOptions. */
  quantize?: QuantizeOptions;
}

/** A small deterministic PRNG (xorshift32 seeded through splitmix-style mixing) with normals. */
export class SeededRandom {
  private state: number;
  private spare: number | undefined;
  constructor(seed: number) {
    let s = (seed ^ 0x9e3779b9) >>> 0;
    s = Math.imul(s ^ (s >>> 16), 0x85ebca6b) >>> 0;
    s = Math.imul(s ^ (s >>> 13), 0xc2b2ae35) >>> 0;
    this.state = (s ^ (s >>> 16)) >>> 0 || 0x6d2b79f5;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.state = x;
    return x / 4294967296;
  }
  /** Standard normal (Box-Muller). */
  normal(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}

function nameSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Residual branches of layer i are scaled by 0.5 * LAYER_DECAY^i (see the module comment). */
const LAYER_DECAY = 0.5;

const ARCH_CLASS: Record<Architecture, string> = {
  llama: "LlamaForCausalLM",
  mistral: "MistralForCausalLM",
  qwen2: "Qwen2ForCausalLM",
  qwen3: "Qwen3ForCausalLM",
};

/** The HF config.json of a fixture. */
export function fixtureConfigJson(o: {
  arch: Architecture;
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
  vocab: number;
  maxPositions: number;
  tieEmbeddings: boolean;
  bosId: number;
  eosId: number;
  padId: number;
}): Record<string, unknown> {
  const headDim = o.hidden / o.heads;
  const common: Record<string, unknown> = {
    architectures: [ARCH_CLASS[o.arch]],
    model_type: o.arch,
    hidden_size: o.hidden,
    intermediate_size: o.intermediate,
    num_hidden_layers: o.layers,
    num_attention_heads: o.heads,
    num_key_value_heads: o.kvHeads,
    hidden_act: "silu",
    max_position_embeddings: o.maxPositions,
    initializer_range: 0.02,
    rms_norm_eps: o.arch === "llama" || o.arch === "mistral" ? 1e-5 : 1e-6,
    rope_theta: o.arch === "qwen2" || o.arch === "qwen3" ? 1000000.0 : 10000.0,
    rope_scaling: null,
    tie_word_embeddings: o.tieEmbeddings,
    vocab_size: o.vocab,
    bos_token_id: o.bosId,
    eos_token_id: o.eosId,
    pad_token_id: o.padId,
    attention_dropout: 0.0,
    torch_dtype: "float32",
    transformers_version: "4.51.0",
    use_cache: true,
  };
  switch (o.arch) {
    case "llama":
      return { ...common, head_dim: headDim, attention_bias: false, mlp_bias: false, pretraining_tp: 1 };
    case "mistral":
      return { ...common, head_dim: headDim, sliding_window: null };
    case "qwen2":
      return { ...common, use_sliding_window: false, sliding_window: null, max_window_layers: o.layers };
    case "qwen3":
      return { ...common, head_dim: headDim, attention_bias: false, use_sliding_window: false, sliding_window: null, max_window_layers: o.layers };
  }
}

/** The random tensors of a fixture, in HF names and layout. */
export function fixtureTensors(cfg: DecoderConfig, seed: number, specialIds: number[] = []): TensorToWrite[] {
  const { hiddenSize: H, intermediateSize: I, numHeads: NH, numKvHeads: KV, headDim: D, vocabSize: V } = cfg;
  const out: TensorToWrite[] = [];
  const normal = (name: string, dims: number[], std: number, mean = 0) => {
    const rng = new SeededRandom(nameSeed(seed, name));
    const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = mean + std * rng.normal();
    out.push({ name, dims, data });
    return data;
  };
  const tied = cfg.tieWordEmbeddings;
  const lmStd = 4 / Math.sqrt(H);
  const scaleSpecialRows = (m: Float32Array) => {
    for (const id of specialIds) if (id >= 0 && id < V) for (let j = 0; j < H; j++) m[id * H + j]! *= 0.25;
  };
  // Tied: small embedding rows (norm ~0.25), and the final norm weight (~16) sets the logit scale.
  if (tied) scaleSpecialRows(normal("model.embed_tokens.weight", [V, H], 0.25 / Math.sqrt(H)));
  else normal("model.embed_tokens.weight", [V, H], 1);
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    normal(`${p}.input_layernorm.weight`, [H], 0.1, 1);
    normal(`${p}.self_attn.q_proj.weight`, [NH * D, H], 1 / Math.sqrt(H));
    normal(`${p}.self_attn.k_proj.weight`, [KV * D, H], 1 / Math.sqrt(H));
    normal(`${p}.self_attn.v_proj.weight`, [KV * D, H], 1 / Math.sqrt(H));
    if (cfg.attentionBias) {
      normal(`${p}.self_attn.q_proj.bias`, [NH * D], 0.2);
      normal(`${p}.self_attn.k_proj.bias`, [KV * D], 0.2);
      normal(`${p}.self_attn.v_proj.bias`, [KV * D], 0.2);
    }
    if (cfg.qkNorm) {
      normal(`${p}.self_attn.q_norm.weight`, [D], 0.1, 1);
      normal(`${p}.self_attn.k_norm.weight`, [D], 0.1, 1);
    }
    normal(`${p}.self_attn.o_proj.weight`, [H, NH * D], (0.5 * LAYER_DECAY ** i) / Math.sqrt(NH * D));
    normal(`${p}.post_attention_layernorm.weight`, [H], 0.1, 1);
    normal(`${p}.mlp.gate_proj.weight`, [I, H], 1 / Math.sqrt(H));
    normal(`${p}.mlp.up_proj.weight`, [I, H], 1 / Math.sqrt(H));
    normal(`${p}.mlp.down_proj.weight`, [H, I], (0.5 * LAYER_DECAY ** i) / Math.sqrt(I));
  }
  if (tied) normal("model.norm.weight", [H], 1.6, 16);
  else normal("model.norm.weight", [H], 0.1, 1);
  if (!tied) scaleSpecialRows(normal("lm_head.weight", [V, H], lmStd));
  return out;
}

/**
 * Write a tiny random checkpoint + tokenizer into `opts.out` and build its ONNX files.
 */
export async function makeFixture(opts: FixtureOptions): Promise<{ dir: string; config: DecoderConfig }> {
  const dir = resolve(opts.out);
  const arch = opts.arch ?? "llama";
  const hidden = opts.hidden ?? 64;
  const heads = opts.heads ?? 4;
  const kvHeads = opts.kvHeads ?? Math.min(2, heads);
  const layers = opts.layers ?? 2;
  const vocab = opts.vocab ?? 320;
  const intermediate = opts.intermediate ?? 2 * hidden;
  const maxPositions = opts.maxPositions ?? 512;
  const seed = opts.seed ?? 0;
  if (!(arch in ARCH_CLASS)) throw new InvalidOptionError(`Fixture arch must be llama, mistral, qwen2 or qwen3 (got "${arch}").`);
  const positive = { layers, hidden, heads, kvHeads, vocab, intermediate, maxPositions };
  for (const [k, v] of Object.entries(positive)) {
    if (!Number.isInteger(v) || v < 1) throw new InvalidOptionError(`Fixture ${k} must be a positive integer (got ${v}).`);
  }
  if (hidden % heads !== 0 || (hidden / heads) % 2 !== 0) {
    throw new InvalidOptionError(`Fixture hidden (${hidden}) must be a multiple of heads (${heads}) with an even head size.`);
  }
  if (heads % kvHeads !== 0) throw new InvalidOptionError(`Fixture heads (${heads}) must be a multiple of kvHeads (${kvHeads}).`);
  if (!Number.isInteger(seed)) throw new InvalidOptionError(`Fixture seed must be an integer (got ${seed}).`);

  const tok = makeFixtureTokenizer(vocab);
  mkdirSync(dir, { recursive: true });
  const configJson = fixtureConfigJson({
    arch,
    layers,
    hidden,
    heads,
    kvHeads,
    intermediate,
    vocab,
    maxPositions,
    tieEmbeddings: opts.tieEmbeddings ?? false,
    bosId: tok.bosId,
    eosId: tok.eosId,
    padId: tok.padId,
  });
  const generationConfig = {
    _from_model_config: true,
    bos_token_id: tok.bosId,
    eos_token_id: tok.eosId,
    pad_token_id: tok.padId,
    transformers_version: "4.51.0",
  };
  const config = parseDecoderConfig(configJson, generationConfig);
  const json = (name: string, value: unknown) => atomicWriteFileSync(join(dir, name), JSON.stringify(value, null, 2) + "\n");
  json("config.json", configJson);
  json("generation_config.json", generationConfig);
  atomicWriteFileSync(join(dir, "tokenizer.json"), JSON.stringify(tok.tokenizerJson));
  json("tokenizer_config.json", tok.tokenizerConfig);

  {
    // Scoped so the random tensors can be collected before the build reads them back lazily.
    const tensors = fixtureTensors(config, seed, [tok.padId, tok.bosId, tok.eosId]);
    if (opts.weightDtype && opts.weightDtype !== "F32") for (const t of tensors) t.dtype = opts.weightDtype;
    writeSafetensors(join(dir, "model.safetensors"), tensors);
  }

  await buildModelDir(dir, {
    earlyExit: opts.earlyExit,
    treeMask: opts.treeMask,
    hiddenStates: opts.hiddenStates,
    ioDtype: opts.ioDtype,
    layout: opts.layout,
    padTokenId: tok.padId,
    quantize: opts.quantize,
  });
  return { dir, config };
}
