/**
 * EAGLE draft heads (Li et al. 2024, "EAGLE: Speculative Sampling Requires Rethinking Feature
 * Uncertainty"): files, and the head as an ONNX graph with the engine's KV conventions.
 *
 * The head drafts from the target's own features f_t (the last decoder layer's output before the
 * final norm; the builder's `features` output). At position t it reads the embedding of the NEXT
 * token x_{t+1} and f_t:
 *     x  = fc(concat(embed(x_{t+1}), f_t))             fc: Linear(2H -> H) with bias
 *     x' = one Llama decoder layer (own RMSNorms, MHA self-attention with RoPE at position t over
 *          the head's own KV cache, SwiGLU MLP)
 *     next_features = x'                                (predicts f_{t+1})
 *     logits = lm_head(final_norm(x'))                  (predicts x_{t+2}; the target's own final
 *                                                        norm and LM head, frozen and shared)
 * Drafting deeper feeds the head its own predicted features.
 *
 * Files (`spec-decode train-eagle` writes them; names follow the EAGLE project's state dict):
 *   eagle_head.safetensors   fc.weight [H, 2H], fc.bias [H],
 *                            layers.0.input_layernorm.weight [H] (optional: EAGLE-1 skips it),
 *                            layers.0.self_attn.{q,k,v,o}_proj.weight, layers.0.post_attention_layernorm.weight,
 *                            layers.0.mlp.{gate,up,down}_proj.weight  (nn.Linear layout: out x in)
 *   config.json              hidden_size, num_attention_heads, num_key_value_heads (= heads),
 *                            intermediate_size, vocab_size, base_model_name_or_path, spec_decode {...};
 *                            a head with a reduced draft vocabulary (`train-eagle --draft-vocab N`, as
 *                            EAGLE-3's d2t) adds draft_vocab_size and spec_decode.draft_vocab: the N
 *                            target token ids it drafts, ascending (draft id i = target id draft_vocab[i])
 * The embedding, final norm, LM head and RoPE settings come from the target's checkpoint. With a
 * draft vocabulary the head's LM head is the target's LM head rows of those N tokens (still frozen),
 * so drafting one node costs H x N multiply-adds for its logits instead of H x V.
 *
 * Published EAGLE-1/2 heads (the EAGLE project's config.json + model.safetensors, see
 * publishedHeadProblems) use the same tensor names with one difference in semantics: they read
 * the target's final hidden states AFTER its final norm (what Hugging Face's LlamaModel returns,
 * our `hidden_states` output) and feed their output to the LM head without a norm. Their config
 * says so as featureSource "hidden_states". EAGLE-3 heads (a `midlayer` whose attention reads
 * 2H-wide inputs, fc over three target layers, their own norm / LM head over a reduced draft
 * vocabulary with d2t/t2d maps) do not map onto this graph and are refused by name.
 *
 * ONNX graph (`eagle_head.onnx`, built beside the head from head + target checkpoint):
 *   inputs  input_ids int64 [1, S], position_ids int64 [1, S], features float32 [1, S, H],
 *           past_key_values.0.key/value float32 [1, heads, past, head_dim],
 *           tree_attention_mask uint8 [1, S, past + S] (1 = may attend)
 *   outputs logits float32 [1, S, V] (or [1, S, N] over the draft vocabulary: draft ids, which the
 *           decoder maps back to target ids), next_features float32 [1, S, H], present.0.key/value.
 * Its linear layers (fc, q/k/v/o, MLP) and its LM head rows can be int8/int4 MatMulNBits blocks
 * (headWeights, EAGLE_HEAD_WEIGHTS): the ONNX file is a cache beside the head, the safetensors stay float32.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { BuildError } from "../errors.js";
import { getWeight, openCheckpoint } from "./checkpoint.js";
import { ropeTables, type DecoderConfig } from "./config.js";
import { transposeInto } from "./llama.js";
import { readRebuiltTargetParts } from "./from-onnx.js";
import { ensureDerivedOnnx } from "./derived-onnx.js";
import { GraphBuilder, attr, dtypeCode } from "./onnx-graph.js";
import { matMulNBits, quantizeMatrix } from "./quantize.js";
import { SafetensorsSource, writeSafetensors, type TensorToWrite } from "./safetensors.js";

export const EAGLE_HEAD_FILE = "eagle_head.safetensors";
export const EAGLE_ONNX_FILE = "eagle_head.onnx";
/** Bump when the graph changes, so cached ONNX files are rebuilt. */
export const EAGLE_GRAPH_VERSION = "3";
/** A published EAGLE head's weights file (the EAGLE project's layout), read when eagle_head.safetensors is absent. */
export const PUBLISHED_EAGLE_FILE = "model.safetensors";
/** Weight forms of the head graph: float32 (default), or int8 / int4 MatMulNBits blocks (block 32, accuracy level 4) for every linear layer and the LM head. */
export const EAGLE_HEAD_WEIGHTS = ["float32", "int8", "int4"] as const;
export type EagleHeadWeightForm = (typeof EAGLE_HEAD_WEIGHTS)[number];
const HEAD_BLOCK = 32;

/** The head graph's file name for a weight form. */
export function eagleOnnxFileName(form: EagleHeadWeightForm = "float32"): string {
  return form === "float32" ? EAGLE_ONNX_FILE : `eagle_head_${form === "int8" ? "q8" : "q4"}.onnx`;
}

export interface EagleHeadConfig {
  hiddenSize: number;
  numHeads: number;
  headDim: number;
  intermediateSize: number;
  vocabSize: number;
  rmsNormEps: number;
  baseModel?: string;
  /** Held-out top-1 accuracy per draft depth, when measured (our trained heads). */
  depthAccuracy?: number[];
  /**
   * What the head reads and predicts: "features" (ours: pre-final-norm features, logits through the
   * target's final norm + LM head) or "hidden_states" (published EAGLE-1/2 heads: the target's
   * normed final hidden states, logits = LM head of the output, no norm). Default "features".
   */
  featureSource?: "features" | "hidden_states";
  /** The weights came in the EAGLE project's layout (config.json + model.safetensors). */
  published?: boolean;
  /** rope_theta from a published head's config (checked against the target's when building). */
  ropeTheta?: number;
  /**
   * Reduced draft vocabulary (EAGLE-3's d2t): the target token ids the head drafts, strictly
   * ascending; draft id i is target id draftVocab[i]. Absent: the head drafts over the whole vocabulary.
   */
  draftVocab?: Int32Array;
}

/** How many ids the head's logits cover: its draft vocabulary, else the whole vocabulary. */
export function draftVocabSize(config: EagleHeadConfig): number {
  return config.draftVocab ? config.draftVocab.length : config.vocabSize;
}

/** Problems with a draft vocabulary for a target vocabulary of `vocab` ids ([] when fine). */
export function draftVocabProblem(ids: ArrayLike<number>, vocab: number): string | undefined {
  if (ids.length < 1) return "it is empty";
  for (let i = 0; i < ids.length; i++) {
    const t = ids[i]!;
    if (!Number.isInteger(t) || t < 0 || t >= vocab) return `id ${t} at ${i} is not a token id below vocab_size ${vocab}`;
    if (i > 0 && t <= ids[i - 1]!) return `ids must be strictly ascending (${ids[i - 1]} then ${t} at ${i})`;
  }
  return undefined;
}

/** Head weights, nn.Linear layout (out x in), row-major. */
export interface EagleHeadWeights {
  fcWeight: Float32Array; // [H, 2H]
  fcBias: Float32Array; // [H]
  inputNorm?: Float32Array; // [H]
  q: Float32Array; // [H, H]
  k: Float32Array;
  v: Float32Array;
  o: Float32Array;
  postNorm: Float32Array; // [H]
  gate: Float32Array; // [I, H]
  up: Float32Array; // [I, H]
  down: Float32Array; // [H, I]
}

/** The target's frozen pieces the head shares. */
export interface EagleTargetParts {
  cfg: DecoderConfig;
  embed: Float32Array; // [V, H]
  finalNorm: Float32Array; // [H]
  lmHead: Float32Array; // [V, H]
}

const P = "layers.0.";

export function locateEagleHead(pathIn: string): { file: string; dir: string; configFile: string } {
  const path = resolve(pathIn);
  if (!existsSync(path)) {
    throw new BuildError(
      `EAGLE head not found at ${path}. Pass a directory holding ${EAGLE_HEAD_FILE} and config.json; ` +
        `train one with \`spec-decode train-eagle --model DIR --self-distill N\`.`,
    );
  }
  const dir = statSync(path).isDirectory() ? path : dirname(path);
  let file = join(dir, EAGLE_HEAD_FILE);
  if (!existsSync(file) && existsSync(join(dir, PUBLISHED_EAGLE_FILE))) file = join(dir, PUBLISHED_EAGLE_FILE);
  if (!existsSync(file)) {
    const hint = existsSync(join(dir, "pytorch_model.bin"))
      ? " It holds pytorch_model.bin: published EAGLE heads often ship as PyTorch pickles, which this engine does not read; " +
        "convert the state dict to safetensors (e.g. safetensors.torch.save_file(torch.load(...), \"model.safetensors\")) beside its config.json."
      : "";
    throw new BuildError(`${dir} has no ${EAGLE_HEAD_FILE} (written by \`spec-decode train-eagle\`) nor a published head's ${PUBLISHED_EAGLE_FILE}.${hint}`);
  }
  const configFile = join(dir, "config.json");
  if (!existsSync(configFile)) throw new BuildError(`${dir} has no config.json beside ${EAGLE_HEAD_FILE}; the head directory is incomplete.`);
  return { file, dir, configFile };
}

export function inspectEagleHead(pathIn: string): EagleHeadConfig & { file: string; dir: string } {
  const { file, dir, configFile } = locateEagleHead(pathIn);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(configFile, "utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new BuildError(`Could not parse ${configFile}: ${(err as Error).message}.`, { cause: err });
  }
  const int = (k: string): number => {
    const v = raw[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw new BuildError(`${configFile}: "${k}" must be a positive integer.`);
    return v;
  };
  const published = file.endsWith(PUBLISHED_EAGLE_FILE);
  if (published) {
    const problems = publishedHeadProblems(raw, new SafetensorsSource([file]).names());
    if (problems.length > 0) {
      throw new BuildError(`${dir} is not an EAGLE-1/2 head this engine can run: ${problems.join("; ")}.`);
    }
  }
  const H = int("hidden_size");
  const NH = int("num_attention_heads");
  const KV = typeof raw.num_key_value_heads === "number" ? raw.num_key_value_heads : NH;
  if (KV !== NH) {
    throw new BuildError(`${configFile}: num_key_value_heads ${KV} != num_attention_heads ${NH}; EAGLE heads here use full multi-head attention.`);
  }
  if (H % NH !== 0) throw new BuildError(`${configFile}: hidden_size ${H} is not a multiple of num_attention_heads ${NH}.`);
  const sd = (raw.spec_decode ?? {}) as Record<string, unknown>;
  let draftVocab: Int32Array | undefined;
  if (sd.draft_vocab !== undefined) {
    const ids = sd.draft_vocab;
    const problem = Array.isArray(ids) ? draftVocabProblem(ids as number[], int("vocab_size")) : "it is not a list of token ids";
    if (problem) throw new BuildError(`${configFile}: spec_decode.draft_vocab (the head's draft vocabulary) is invalid: ${problem}. Retrain the head with \`spec-decode train-eagle\`.`);
    draftVocab = Int32Array.from(ids as number[]);
    if (typeof raw.draft_vocab_size === "number" && raw.draft_vocab_size !== draftVocab.length) {
      throw new BuildError(`${configFile}: draft_vocab_size ${raw.draft_vocab_size} but spec_decode.draft_vocab lists ${draftVocab.length} ids.`);
    }
  }
  return {
    file,
    dir,
    hiddenSize: H,
    numHeads: NH,
    headDim: H / NH,
    intermediateSize: int("intermediate_size"),
    vocabSize: int("vocab_size"),
    rmsNormEps: typeof raw.rms_norm_eps === "number" ? raw.rms_norm_eps : 1e-5,
    baseModel: typeof raw.base_model_name_or_path === "string" ? raw.base_model_name_or_path : undefined,
    depthAccuracy: Array.isArray(sd.depth_accuracy) ? (sd.depth_accuracy as number[]) : undefined,
    featureSource: published || sd.feature_source === "hidden_states" ? "hidden_states" : "features",
    published,
    ropeTheta: published && typeof raw.rope_theta === "number" ? raw.rope_theta : undefined,
    ...(draftVocab ? { draftVocab } : {}),
  };
}

/**
 * What keeps a published head (its config.json and tensor names) from mapping onto our head graph;
 * [] when it maps. EAGLE-1/2 heads map: fc [H, 2H] (+ bias), one Llama decoder layer `layers.0.*`
 * (the first layer has no input_layernorm), optionally a copy of the target's embed_tokens (the
 * target's own is used). See SafeAILab/EAGLE's cnets1.py (EAGLE-1/2) and cnets.py (EAGLE-3).
 */
export function publishedHeadProblems(raw: Record<string, unknown>, names: string[]): string[] {
  const has = (n: string) => names.includes(n);
  const some = (prefix: string) => names.some((n) => n.startsWith(prefix));
  const out: string[] = [];
  if (some("midlayer.") || has("d2t") || has("t2d")) {
    const parts = [
      some("midlayer.") ? "a `midlayer` decoder layer whose attention reads [embedding ++ hidden] (2H wide)" : undefined,
      "`fc` over the concatenation of three target layers (low/mid/high), which the builder does not output",
      has("d2t") || has("t2d") ? "a reduced draft vocabulary with `d2t`/`t2d` maps and its own `norm` and `lm_head`" : undefined,
    ].filter(Boolean);
    out.push(`it is an EAGLE-3 head (${parts.join(", ")}), which is not supported; use an EAGLE-1/2 head or train one with \`spec-decode train-eagle\``);
    return out;
  }
  if (!has("fc.weight")) out.push("it has no `fc.weight` (an EAGLE head's input projection)");
  const layers = typeof raw.num_hidden_layers === "number" ? raw.num_hidden_layers : 1;
  if (layers !== 1 || some("layers.1.")) out.push(`it has ${layers} decoder layers; only one-layer heads are supported`);
  if (["q_proj", "k_proj", "v_proj"].some((p) => has(`${P}self_attn.${p}.bias`))) out.push("its attention has q/k/v biases (qkv_bias, Qwen-style heads), which the head graph does not carry");
  const nh = raw.num_attention_heads;
  const kv = raw.num_key_value_heads;
  if (typeof kv === "number" && typeof nh === "number" && kv !== nh) {
    out.push(`its attention is grouped-query (num_key_value_heads ${kv} < num_attention_heads ${nh}); the head graph needs num_key_value_heads = num_attention_heads`);
  }
  const act = raw.hidden_act;
  if (act !== undefined && act !== "silu") out.push(`hidden_act "${String(act)}" (only silu)`);
  const scaling = raw.rope_scaling as Record<string, unknown> | null | undefined;
  if (scaling && typeof scaling === "object") out.push(`rope_scaling ${JSON.stringify(scaling)} (the head uses the target's plain RoPE tables)`);
  return out;
}

export function readEagleHead(pathIn: string): { config: EagleHeadConfig; weights: EagleHeadWeights } {
  const config = inspectEagleHead(pathIn);
  const st = new SafetensorsSource([config.file]);
  const { hiddenSize: H, intermediateSize: I } = config;
  const get = (n: string, dims: number[]) => getWeight(st, n, dims);
  const weights: EagleHeadWeights = {
    fcWeight: get("fc.weight", [H, 2 * H]),
    fcBias: st.has("fc.bias") ? get("fc.bias", [H]) : new Float32Array(H),
    inputNorm: st.has(`${P}input_layernorm.weight`) ? get(`${P}input_layernorm.weight`, [H]) : undefined,
    q: get(`${P}self_attn.q_proj.weight`, [H, H]),
    k: get(`${P}self_attn.k_proj.weight`, [H, H]),
    v: get(`${P}self_attn.v_proj.weight`, [H, H]),
    o: get(`${P}self_attn.o_proj.weight`, [H, H]),
    postNorm: get(`${P}post_attention_layernorm.weight`, [H]),
    gate: get(`${P}mlp.gate_proj.weight`, [I, H]),
    up: get(`${P}mlp.up_proj.weight`, [I, H]),
    down: get(`${P}mlp.down_proj.weight`, [H, I]),
  };
  return { config, weights };
}

export function writeEagleHead(dirIn: string, config: EagleHeadConfig, w: EagleHeadWeights, extra: Record<string, unknown> = {}): string[] {
  const dir = resolve(dirIn);
  const { hiddenSize: H, intermediateSize: I } = config;
  const t = (name: string, dims: number[], data: Float32Array): TensorToWrite => ({ name, dims, data });
  const tensors: TensorToWrite[] = [
    t("fc.weight", [H, 2 * H], w.fcWeight),
    t("fc.bias", [H], w.fcBias),
    ...(w.inputNorm ? [t(`${P}input_layernorm.weight`, [H], w.inputNorm)] : []),
    t(`${P}self_attn.q_proj.weight`, [H, H], w.q),
    t(`${P}self_attn.k_proj.weight`, [H, H], w.k),
    t(`${P}self_attn.v_proj.weight`, [H, H], w.v),
    t(`${P}self_attn.o_proj.weight`, [H, H], w.o),
    t(`${P}post_attention_layernorm.weight`, [H], w.postNorm),
    t(`${P}mlp.gate_proj.weight`, [I, H], w.gate),
    t(`${P}mlp.up_proj.weight`, [I, H], w.up),
    t(`${P}mlp.down_proj.weight`, [H, I], w.down),
  ];
  if (config.published) throw new BuildError("writeEagleHead writes our own head format; a published head is read in place.");
  if (config.draftVocab) {
    const problem = draftVocabProblem(config.draftVocab, config.vocabSize);
    if (problem) throw new BuildError(`The head's draft vocabulary is invalid: ${problem}.`);
  }
  mkdirSync(dir, { recursive: true });
  const file = join(dir, EAGLE_HEAD_FILE);
  writeSafetensors(file, tensors, { format: "pt" });
  const cfg = {
    architectures: ["EagleHead"],
    hidden_size: H,
    num_attention_heads: config.numHeads,
    num_key_value_heads: config.numHeads,
    intermediate_size: I,
    vocab_size: config.vocabSize,
    ...(config.draftVocab ? { draft_vocab_size: config.draftVocab.length } : {}),
    rms_norm_eps: config.rmsNormEps,
    base_model_name_or_path: config.baseModel ?? "",
    spec_decode: {
      ...(config.depthAccuracy ? { depth_accuracy: config.depthAccuracy } : {}),
      ...(config.featureSource === "hidden_states" ? { feature_source: "hidden_states" } : {}),
      ...extra,
      ...(config.draftVocab ? { draft_vocab: Array.from(config.draftVocab) } : {}),
    },
  };
  const configFile = join(dir, "config.json");
  writeFileSync(configFile, JSON.stringify(cfg, null, 2) + "\n");
  return [file, configFile];
}

/** The target's embedding, final norm and LM head from its safetensors checkpoint. */
export function readEagleTargetParts(modelDir: string): EagleTargetParts {
  const rebuilt = readRebuiltTargetParts(modelDir); // a `build --from-onnx` rebuild has no safetensors
  if (rebuilt) return rebuilt;
  const { cfg, weights, names } = openCheckpoint(
    modelDir,
    "EAGLE heads need the target's safetensors checkpoint and config.json (for its embedding, final norm and LM head)",
  );
  const { vocabSize: V, hiddenSize: H } = cfg;
  return {
    cfg,
    embed: getWeight(weights, names.embed, [V, H]),
    finalNorm: getWeight(weights, names.norm, [H]),
    lmHead: getWeight(weights, names.lmHead, [V, H]),
  };
}

/**
 * Head weights that start as the target's decoder layer `layer` (0-based) reading the next token's
 * embedding: fc = [I | 0] (x = embed(x_{t+1}); the feature half starts at zero), the layer's norms,
 * attention (grouped K/V heads repeated to full multi-head) and MLP copied. With layer 0 the fresh
 * head computes the target's first layer at the next position (its own KV cache holds that
 * layer's keys; RoPE sees the same relative positions), so its drafts start as the early exit
 * after one layer, and training adds what the features tell. Needs head_dim * heads = hidden and
 * no attention/MLP biases or q/k norms.
 */
export function eagleWeightsFromTargetLayer(modelDir: string, layer: number): EagleHeadWeights {
  const { cfg, weights, names } = openCheckpoint(modelDir, "--init-layer copies a decoder layer of the target's checkpoint");
  const { hiddenSize: H, numHeads: NH, numKvHeads: KV, headDim: D, intermediateSize: I } = cfg;
  if (!Number.isInteger(layer) || layer < 0 || layer >= cfg.numLayers) throw new BuildError(`--init-layer must be a layer from 0 to ${cfg.numLayers - 1} (got ${layer}).`);
  if (NH * D !== H) throw new BuildError(`--init-layer needs heads x head_dim = hidden (${NH} x ${D} != ${H}).`);
  const l = names.layer(layer);
  for (const extra of [l.qBias, l.kBias, l.vBias, l.oBias, l.qNorm, l.kNorm, l.gateBias, l.upBias, l.downBias]) {
    if (weights.has(extra)) throw new BuildError(`--init-layer: layer ${layer} has ${extra}, which the EAGLE head does not carry.`);
  }
  /** [KV*D, H] -> [NH*D, H]: each query head gets its group's key/value rows. */
  const expand = (w: Float32Array): Float32Array => {
    if (KV === NH) return w;
    const out = new Float32Array(NH * D * H);
    const group = NH / KV;
    for (let h = 0; h < NH; h++) out.set(w.subarray(Math.floor(h / group) * D * H, (Math.floor(h / group) + 1) * D * H), h * D * H);
    return out;
  };
  const fc = new Float32Array(H * 2 * H);
  for (let i = 0; i < H; i++) fc[i * 2 * H + i] = 1;
  return {
    fcWeight: fc,
    fcBias: new Float32Array(H),
    inputNorm: getWeight(weights, l.inputNorm, [H]),
    q: getWeight(weights, l.q, [NH * D, H]),
    k: expand(getWeight(weights, l.k, [KV * D, H])),
    v: expand(getWeight(weights, l.v, [KV * D, H])),
    o: getWeight(weights, l.o, [H, NH * D]),
    postNorm: getWeight(weights, l.postNorm, [H]),
    gate: getWeight(weights, l.gate, [I, H]),
    up: getWeight(weights, l.up, [I, H]),
    down: getWeight(weights, l.down, [H, I]),
  };
}

/** A fresh head config for a target (same hidden size, heads and MLP width as one target layer). */
export function eagleConfigFor(cfg: DecoderConfig, baseModel?: string): EagleHeadConfig {
  return {
    hiddenSize: cfg.hiddenSize,
    numHeads: cfg.numHeads,
    headDim: cfg.hiddenSize / cfg.numHeads,
    intermediateSize: cfg.intermediateSize,
    vocabSize: cfg.vocabSize,
    rmsNormEps: cfg.rmsNormEps,
    baseModel,
  };
}

export function checkHeadAgainstTarget(head: EagleHeadConfig, cfg: DecoderConfig, where = "The EAGLE head"): void {
  if (head.hiddenSize !== cfg.hiddenSize || head.vocabSize !== cfg.vocabSize) {
    throw new BuildError(
      `${where} has hidden size ${head.hiddenSize} and vocabulary ${head.vocabSize}, but the target has ${cfg.hiddenSize} and ` +
        `${cfg.vocabSize}. A head only works with the model it was trained for; train one with \`spec-decode train-eagle\`.`,
    );
  }
}

const BOOL = dtypeCode("bool");

/** Rows `ids` of a row-major [V, H] matrix (the LM head rows of a draft vocabulary). */
export function draftRows(m: Float32Array, H: number, ids: ArrayLike<number>): Float32Array {
  const out = new Float32Array(ids.length * H);
  for (let i = 0; i < ids.length; i++) out.set(m.subarray(ids[i]! * H, (ids[i]! + 1) * H), i * H);
  return out;
}

/** Write the head's ONNX graph (see the module comment). */
export function buildEagleHeadOnnx(
  config: EagleHeadConfig,
  w: EagleHeadWeights,
  target: EagleTargetParts,
  outPath: string,
  metadata: Record<string, string> = {},
  form: EagleHeadWeightForm = "float32",
): void {
  const { hiddenSize: H, numHeads: NH, headDim: D, intermediateSize: I, vocabSize: V } = config;
  checkHeadAgainstTarget(config, target.cfg);
  if (config.ropeTheta !== undefined && Math.abs(config.ropeTheta - target.cfg.ropeTheta) > 1e-6 * target.cfg.ropeTheta) {
    throw new BuildError(`The EAGLE head's rope_theta ${config.ropeTheta} differs from the target's ${target.cfg.ropeTheta}; it was trained for another model.`);
  }
  const maxPositions = target.cfg.maxPositionEmbeddings;
  const g = new GraphBuilder({ name: "eagle_head", modelPath: outPath, producerVersion: EAGLE_GRAPH_VERSION });
  try {
    const ids = g.input("input_ids", "int64", [1, "sequence_length"]);
    const pos = g.input("position_ids", "int64", [1, "sequence_length"]);
    const feats = g.input("features", "float32", [1, "sequence_length", H]);
    const pastK = g.input("past_key_values.0.key", "float32", [1, NH, "past_sequence_length", D]);
    const pastV = g.input("past_key_values.0.value", "float32", [1, NH, "past_sequence_length", D]);
    const tree = g.input("tree_attention_mask", "uint8", [1, "sequence_length", "total_sequence_length"]);
    const c64 = (v: number[]) => g.constInt64(v);
    const reshape = (x: string, shape: number[]) => g.op("Reshape", [x, c64(shape)]);
    const transpose = (x: string, perm: number[]) => g.op("Transpose", [x], { perm });
    const eps = g.constFloat(config.rmsNormEps);
    const two = g.constFloat(2);
    const rmsNorm = (x: string, weightName: string): string => {
      const ms = g.op("ReduceMean", [g.op("Pow", [x, two])], { axes: [-1], keepdims: 1 });
      return g.op("Mul", [g.op("Div", [x, g.op("Sqrt", [g.op("Add", [ms, eps])])]), weightName]);
    };
    const bits = form === "int8" ? 8 : form === "int4" ? 4 : undefined;
    /** x W^T for W [out, inn] (nn.Linear layout): MatMul, or MatMulNBits blocks (quantize.ts numerics). */
    const linear = (x: string, name: string, wt: Float32Array, out: number, inn: number): string => {
      if (bits) {
        return matMulNBits(g, x, name, quantizeMatrix(wt, out, inn, bits, HEAD_BLOCK), 4);
      }
      const t = new Float32Array(inn * out);
      transposeInto(wt, out, inn, t, out, 0);
      return g.op("MatMul", [x, g.initializer(name, "float32", [inn, out], t)]);
    };

    g.initializer("embed_tokens.weight", "float32", [V, H], target.embed);
    const e = g.op("Gather", ["embed_tokens.weight", ids], { axis: 0 });
    let x = g.op("Add", [linear(g.op("Concat", [e, feats], { axis: -1 }), "fc.weight_t", w.fcWeight, H, 2 * H), g.initializer("fc.bias", "float32", [H], w.fcBias)]);

    // RoPE (the target's tables; sign of rotate_half folded into sin as in the target graph).
    const { cos, sin } = ropeTables({ ...target.cfg, headDim: D }, maxPositions);
    const half = D / 2;
    for (let p = 0; p < maxPositions; p++) for (let j = 0; j < half; j++) sin[p * D + j] = -sin[p * D + j]!;
    const cosP = g.op("Unsqueeze", [g.op("Gather", [g.initializer("rope.cos", "float32", [maxPositions, D], cos), pos], { axis: 0 }), c64([2])]);
    const sinP = g.op("Unsqueeze", [g.op("Gather", [g.initializer("rope.sin_signed", "float32", [maxPositions, D], sin), pos], { axis: 0 }), c64([2])]);
    const rope = (t: string): string => {
      const [a, b] = g.node("Split", [t, c64([half, half])], { axis: -1 }, 2) as [string, string];
      return g.op("Add", [g.op("Mul", [t, cosP]), g.op("Mul", [g.op("Concat", [b, a], { axis: -1 }), sinP])]);
    };

    let xn = x;
    if (w.inputNorm) xn = rmsNorm(x, g.initializer("input_layernorm.weight", "float32", [H], w.inputNorm));
    const scale = 1 / Math.sqrt(D);
    const qw = w.q.map((v) => v * scale);
    const q = transpose(rope(reshape(linear(xn, "q_proj.weight_t", qw, H, H), [0, 0, NH, D])), [0, 2, 1, 3]);
    const kNew = transpose(rope(reshape(linear(xn, "k_proj.weight_t", w.k, H, H), [0, 0, NH, D])), [0, 2, 1, 3]);
    const vNew = transpose(reshape(linear(xn, "v_proj.weight_t", w.v, H, H), [0, 0, NH, D]), [0, 2, 1, 3]);
    g.node("Concat", [pastK, kNew], { axis: 2 }, ["present.0.key"]);
    g.node("Concat", [pastV, vNew], { axis: 2 }, ["present.0.value"]);
    g.output("present.0.key", "float32", [1, NH, "total_sequence_length", D]);
    g.output("present.0.value", "float32", [1, NH, "total_sequence_length", D]);
    const scores = g.op("MatMul", [q, transpose("present.0.key", [0, 1, 3, 2])]); // [1, NH, S, T]
    const mask = g.op("Unsqueeze", [g.op("Cast", [tree], { to: BOOL }), c64([1])]); // [1, 1, S, T]
    const probs = g.op("Softmax", [g.op("Where", [mask, scores, g.constFloat(-1e9)])], { axis: -1 });
    const ctx = reshape(transpose(g.op("MatMul", [probs, "present.0.value"]), [0, 2, 1, 3]), [0, 0, H]);
    x = g.op("Add", [x, linear(ctx, "o_proj.weight_t", w.o, H, H)]);
    const xn2 = rmsNorm(x, g.initializer("post_attention_layernorm.weight", "float32", [H], w.postNorm));
    const gate = linear(xn2, "gate_proj.weight_t", w.gate, I, H);
    const up = linear(xn2, "up_proj.weight_t", w.up, I, H);
    const act = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate])]), up]);
    x = g.op("Add", [x, linear(act, "down_proj.weight_t", w.down, H, I)]);
    g.output("next_features", "float32", [1, "sequence_length", H], x);

    // Our heads predict pre-norm features (the target's final norm applies); published EAGLE-1/2
    // heads predict normed hidden states (the LM head applies directly).
    const hn = config.featureSource === "hidden_states" ? x : rmsNorm(x, g.initializer("norm.weight", "float32", [H], target.finalNorm));
    // A draft vocabulary keeps only its tokens' LM-head rows: logits over draft ids.
    const N = draftVocabSize(config);
    const lmRows = config.draftVocab ? draftRows(target.lmHead, H, config.draftVocab) : target.lmHead;
    let logits2d: string;
    if (bits) logits2d = linear(reshape(hn, [-1, H]), "lm_head", lmRows, N, H);
    else {
      g.initializer("lm_head.weight", "float32", [N, H], lmRows);
      logits2d = g.op("Gemm", [reshape(hn, [-1, H]), "lm_head.weight"], { transB: 1, alpha: attr.float(1), beta: attr.float(1) });
    }
    g.output("logits", "float32", [1, "sequence_length", N], reshape(logits2d, [1, -1, N]));
    g.setMetadata("spec_decode.eagle_graph", EAGLE_GRAPH_VERSION);
    g.setMetadata("spec_decode.hidden_size", String(H));
    g.setMetadata("spec_decode.vocab_size", String(V));
    g.setMetadata("spec_decode.draft_vocab_size", String(N));
    g.setMetadata("spec_decode.head_weights", form);
    g.setMetadata("spec_decode.max_positions", String(maxPositions));
    for (const [k, v] of Object.entries(metadata)) g.setMetadata(k, v);
    g.save(outPath);
  } finally {
    g.dispose();
  }
}

/**
 * The ONNX file of the head at `headPath` for the target checkpoint in `modelDir`, built on first
 * use beside the head (or under the OS temp dir when that directory is read-only); rebuilt when
 * the head's or target's weights changed (size/mtime stamp in the graph's metadata).
 */
export function ensureEagleHeadOnnx(headPath: string, modelDir: string, onProgress?: (m: string) => void, form: EagleHeadWeightForm = "float32"): { onnxFile: string; stamp: string } {
  const { file, dir } = locateEagleHead(headPath);
  const st = statSync(file);
  const mdir = resolve(modelDir);
  const targetFiles = readdirSync(mdir).filter((f) => f.endsWith(".safetensors") || f === "config.json").sort();
  const tstamp = targetFiles.map((f) => {
    const s = statSync(join(mdir, f));
    return `${s.size}:${Math.round(s.mtimeMs)}`;
  });
  const stamp = `${EAGLE_GRAPH_VERSION}:${form}:${st.size}:${Math.round(st.mtimeMs)}:${tstamp.join(",")}`;
  const { onnxFile } = ensureDerivedOnnx({
    source: file,
    dir,
    name: eagleOnnxFileName(form),
    namespace: "spec-decode-eagle",
    stampKey: "spec_decode.eagle_source",
    stamp,
    build: (out) => {
      const { config, weights } = readEagleHead(headPath);
      buildEagleHeadOnnx(config, weights, readEagleTargetParts(modelDir), out, { "spec_decode.eagle_source": stamp }, form);
    },
    onProgress,
  });
  return { onnxFile, stamp };
}
