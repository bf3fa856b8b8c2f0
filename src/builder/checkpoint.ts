/**
 * Tensor names and shapes of a Llama-family Hugging Face checkpoint, with shape checks whose
 * errors name the tensor, the expected and the actual shape.
 */
import { BuildError } from "../errors.js";
import { readDecoderConfig, type DecoderConfig } from "./config.js";
import { openSafetensorsDir, type SafetensorsSource, type WeightSource } from "./safetensors.js";

export interface LayerTensorNames {
  inputNorm: string;
  postNorm: string;
  q: string;
  k: string;
  v: string;
  o: string;
  qBias: string;
  kBias: string;
  vBias: string;
  oBias: string;
  qNorm: string;
  kNorm: string;
  gate: string;
  up: string;
  down: string;
  gateBias: string;
  upBias: string;
  downBias: string;
}

export interface CheckpointNames {
  embed: string;
  norm: string;
  /** lm_head.weight, or the embedding when tied / absent. */
  lmHead: string;
  tied: boolean;
  layer(i: number): LayerTensorNames;
}

/** Resolve tensor names ("model." prefix or none; tied or separate lm_head). */
export function checkpointNames(cfg: DecoderConfig, weights: WeightSource): CheckpointNames {
  const prefix = weights.has("model.embed_tokens.weight") ? "model." : weights.has("embed_tokens.weight") ? "" : "model.";
  const embed = `${prefix}embed_tokens.weight`;
  if (!weights.has(embed)) {
    const sample = weights.names().slice(0, 5).join(", ");
    throw new BuildError(
      `The checkpoint has no "${embed}" tensor (first tensors: ${sample || "none"}). ` +
        `It is not a ${cfg.architecture} causal-LM checkpoint in Hugging Face layout; check that the directory holds the model's own safetensors.`,
    );
  }
  const tied = cfg.tieWordEmbeddings || !weights.has("lm_head.weight");
  return {
    embed,
    norm: `${prefix}norm.weight`,
    lmHead: tied ? embed : "lm_head.weight",
    tied,
    layer(i: number): LayerTensorNames {
      const p = `${prefix}layers.${i}.`;
      return {
        inputNorm: `${p}input_layernorm.weight`,
        postNorm: `${p}post_attention_layernorm.weight`,
        q: `${p}self_attn.q_proj.weight`,
        k: `${p}self_attn.k_proj.weight`,
        v: `${p}self_attn.v_proj.weight`,
        o: `${p}self_attn.o_proj.weight`,
        qBias: `${p}self_attn.q_proj.bias`,
        kBias: `${p}self_attn.k_proj.bias`,
        vBias: `${p}self_attn.v_proj.bias`,
        oBias: `${p}self_attn.o_proj.bias`,
        qNorm: `${p}self_attn.q_norm.weight`,
        kNorm: `${p}self_attn.k_norm.weight`,
        gate: `${p}mlp.gate_proj.weight`,
        up: `${p}mlp.up_proj.weight`,
        down: `${p}mlp.down_proj.weight`,
        gateBias: `${p}mlp.gate_proj.bias`,
        upBias: `${p}mlp.up_proj.bias`,
        downBias: `${p}mlp.down_proj.bias`,
      };
    },
  };
}

const fmt = (d: readonly number[]) => `[${d.join(", ")}]`;

function shapeError(name: string, expected: readonly number[], actual: readonly number[]): BuildError {
  return new BuildError(
    `Tensor "${name}" has shape ${fmt(actual)} but config.json implies ${fmt(expected)}. ` +
      `config.json and the safetensors do not belong to the same model; re-download them together.`,
  );
}

/** Check a tensor's shape without reading it (when the source can tell), else read and check. */
export function checkShape(weights: WeightSource, name: string, expected: readonly number[]): void {
  if (!weights.has(name)) {
    throw new BuildError(
      `Tensor "${name}" (expected shape ${fmt(expected)}) is missing from the checkpoint. ` +
        `The weights are incomplete or for a different architecture; re-download the model.`,
    );
  }
  const actual = weights.shape ? weights.shape(name) : weights.get(name).dims;
  if (actual.length !== expected.length || actual.some((d, i) => d !== expected[i])) throw shapeError(name, expected, actual);
}

/** Read a tensor, checking its shape. */
export function getWeight(weights: WeightSource, name: string, expected: readonly number[]): Float32Array {
  checkShape(weights, name, expected);
  const t = weights.get(name);
  if (t.dims.length !== expected.length || t.dims.some((d, i) => d !== expected[i])) throw shapeError(name, expected, t.dims);
  return t.data;
}

/** Read an optional tensor (e.g. a bias); undefined when absent. */
export function getOptional(weights: WeightSource, name: string, expected: readonly number[]): Float32Array | undefined {
  return weights.has(name) ? getWeight(weights, name, expected) : undefined;
}

/** Check every tensor the decoder needs before any work is done, so a bad checkpoint fails fast. */
export function checkCheckpoint(cfg: DecoderConfig, weights: WeightSource, numLayers = cfg.numLayers): CheckpointNames {
  const names = checkpointNames(cfg, weights);
  const { hiddenSize: H, intermediateSize: I, numHeads: NH, numKvHeads: KV, headDim: D, vocabSize: V } = cfg;
  checkShape(weights, names.embed, [V, H]);
  checkShape(weights, names.norm, [H]);
  if (!names.tied) checkShape(weights, names.lmHead, [V, H]);
  for (let i = 0; i < numLayers; i++) {
    const l = names.layer(i);
    checkShape(weights, l.inputNorm, [H]);
    checkShape(weights, l.postNorm, [H]);
    checkShape(weights, l.q, [NH * D, H]);
    checkShape(weights, l.k, [KV * D, H]);
    checkShape(weights, l.v, [KV * D, H]);
    checkShape(weights, l.o, [H, NH * D]);
    if (cfg.attentionBias) {
      checkShape(weights, l.qBias, [NH * D]);
      checkShape(weights, l.kBias, [KV * D]);
      checkShape(weights, l.vBias, [KV * D]);
    }
    if (cfg.qkNorm) {
      checkShape(weights, l.qNorm, [D]);
      checkShape(weights, l.kNorm, [D]);
    }
    checkShape(weights, l.gate, [I, H]);
    checkShape(weights, l.up, [I, H]);
    checkShape(weights, l.down, [H, I]);
  }
  return names;
}

/**
 * config.json and the safetensors of `modelDir`, for code that reads a few of the model's own
 * weights (head trainers and builders). `need` says what they are needed for, e.g. "EAGLE heads
 * need the target's safetensors checkpoint and config.json", and opens the error when either fails.
 */
export function openCheckpoint(modelDir: string, need: string): { cfg: DecoderConfig; weights: SafetensorsSource; names: CheckpointNames } {
  let cfg: DecoderConfig;
  let weights: SafetensorsSource;
  try {
    cfg = readDecoderConfig(modelDir);
    weights = openSafetensorsDir(modelDir);
  } catch (err) {
    throw new BuildError(`${need} in ${modelDir}: ${(err as Error).message}`, { cause: err });
  }
  return { cfg, weights, names: checkpointNames(cfg, weights) };
}
