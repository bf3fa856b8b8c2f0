/**
 * Hugging Face config.json -> a normalized decoder description, plus the RoPE frequency tables
 * (computed in JS the way transformers computes them, in float32).
 */
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { BuildError } from "../errors.js";

export type Architecture = "llama" | "mistral" | "qwen2" | "qwen3";

export type RopeScaling =
  | { type: "none" }
  | { type: "linear"; factor: number }
  | {
      type: "llama3";
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    };

export interface DecoderConfig {
  architecture: Architecture;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** q/k/v projections have a bias (always for qwen2; `attention_bias` for llama/qwen3). */
  attentionBias: boolean;
  /** qwen3: RMSNorm over head_dim on each query/key head before RoPE. */
  qkNorm: boolean;
  bosTokenId: number | undefined;
  eosTokenIds: number[];
}

/** Class names (config.architectures[0]) and model_type values the builder converts. */
export const SUPPORTED_ARCHITECTURES: Record<string, Architecture> = {
  LlamaForCausalLM: "llama",
  MistralForCausalLM: "mistral",
  Qwen2ForCausalLM: "qwen2",
  Qwen3ForCausalLM: "qwen3",
};
const MODEL_TYPES: Record<string, Architecture> = { llama: "llama", mistral: "mistral", qwen2: "qwen2", qwen3: "qwen3" };

const supportedList = () =>
  `${Object.keys(SUPPORTED_ARCHITECTURES).join(", ")} (Llama-family models such as SmolLM, SmolLM2, TinyLlama, Llama 3.x, Mistral, Qwen2/2.5, Qwen3)`;

function ids(...values: unknown[]): number[] {
  const out: number[] = [];
  for (const v of values) {
    const list = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
    for (const x of list) if (typeof x === "number" && Number.isInteger(x) && !out.includes(x)) out.push(x);
  }
  return out;
}

/**
 * Normalize a parsed config.json (and optionally generation_config.json, whose eos ids come first).
 * Throws BuildError for unsupported architectures or missing/invalid fields.
 */
export function parseDecoderConfig(json: Record<string, unknown>, generationConfig?: Record<string, unknown>): DecoderConfig {
  const archs = Array.isArray(json.architectures) ? (json.architectures as unknown[]) : [];
  const className = typeof archs[0] === "string" ? (archs[0] as string) : undefined;
  const modelType = typeof json.model_type === "string" ? json.model_type : undefined;
  let architecture: Architecture | undefined;
  if (className !== undefined) architecture = SUPPORTED_ARCHITECTURES[className];
  else if (modelType !== undefined) architecture = MODEL_TYPES[modelType];
  if (!architecture) {
    const what = className ?? modelType;
    throw new BuildError(
      what === undefined
        ? `config.json names no architecture ("architectures" and "model_type" are missing). Supported: ${supportedList()}.`
        : `Architecture "${what}" is not supported by the builder. Supported: ${supportedList()}. ` +
            `For other models, use an ONNX export (onnx-community / Optimum / onnxruntime-genai) instead of building.`,
    );
  }

  const int = (key: string, fallback?: number): number => {
    const v = json[key] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
      throw new BuildError(
        `config.json: "${key}" must be a positive integer${v === undefined ? " but is missing" : `, got ${JSON.stringify(v)}`}. ` +
          `Fix config.json or download it again from the model repository.`,
      );
    }
    return v;
  };
  const float = (key: string, fallback: number): number => {
    const v = json[key] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      throw new BuildError(`config.json: "${key}" must be a positive number, got ${JSON.stringify(v)}. Fix config.json.`);
    }
    return v;
  };

  const act = json.hidden_act ?? json.hidden_activation ?? "silu";
  if (act !== "silu" && act !== "swish") {
    throw new BuildError(`config.json: hidden_act "${String(act)}" is not supported; the builder implements SwiGLU (silu). Use an ONNX export of this model.`);
  }

  const hiddenSize = int("hidden_size");
  const numHeads = int("num_attention_heads");
  const numKvHeads = int("num_key_value_heads", numHeads);
  const headDim = json.head_dim === undefined || json.head_dim === null ? hiddenSize / numHeads : int("head_dim");
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new BuildError(
      `config.json: head size ${headDim} (hidden_size / num_attention_heads) must be an even integer for RoPE. ` +
        `Set "head_dim" in config.json if the model uses a different head size.`,
    );
  }
  if (numHeads % numKvHeads !== 0) {
    throw new BuildError(
      `config.json: num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads}). Fix config.json.`,
    );
  }

  const ropeParams = (json.rope_parameters && typeof json.rope_parameters === "object" ? json.rope_parameters : undefined) as
    | Record<string, unknown>
    | undefined;
  const ropeTheta = float("rope_theta", typeof ropeParams?.rope_theta === "number" ? ropeParams.rope_theta : 10000);
  const ropeScaling = parseRopeScaling(
    (json.rope_scaling && typeof json.rope_scaling === "object" ? json.rope_scaling : ropeParams) as Record<string, unknown> | undefined,
    architecture,
  );

  const tie = json.tie_word_embeddings;
  return {
    architecture,
    hiddenSize,
    intermediateSize: int("intermediate_size"),
    numLayers: int("num_hidden_layers"),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: int("vocab_size"),
    rmsNormEps: float("rms_norm_eps", 1e-6),
    ropeTheta,
    ropeScaling,
    maxPositionEmbeddings: int("max_position_embeddings", 2048),
    // LlamaConfig / MistralConfig / Qwen2Config / Qwen3Config default tie_word_embeddings to false.
    // (The builder still ties when lm_head.weight is absent from the checkpoint.)
    tieWordEmbeddings: typeof tie === "boolean" ? tie : false,
    attentionBias: architecture === "qwen2" ? true : json.attention_bias === true,
    qkNorm: architecture === "qwen3",
    bosTokenId:
      typeof generationConfig?.bos_token_id === "number"
        ? generationConfig.bos_token_id
        : typeof json.bos_token_id === "number"
          ? json.bos_token_id
          : undefined,
    eosTokenIds: ids(generationConfig?.eos_token_id, json.eos_token_id),
  };
}

function parseRopeScaling(rs: Record<string, unknown> | undefined, arch: Architecture): RopeScaling {
  if (!rs) return { type: "none" };
  const type = (rs.rope_type ?? rs.type ?? "default") as string;
  const num = (k: string, d?: number): number => {
    const v = rs[k] ?? d;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      throw new BuildError(`config.json: rope_scaling.${k} must be a positive number for rope_type "${type}", got ${JSON.stringify(v)}.`);
    }
    return v;
  };
  switch (type) {
    case "default":
      return { type: "none" };
    case "linear":
      return { type: "linear", factor: num("factor") };
    case "llama3":
      return {
        type: "llama3",
        factor: num("factor"),
        lowFreqFactor: num("low_freq_factor", 1),
        highFreqFactor: num("high_freq_factor", 4),
        originalMaxPositionEmbeddings: num("original_max_position_embeddings", 8192),
      };
    default:
      throw new BuildError(
        `config.json: rope_scaling type "${type}" (${arch}) is not supported; the builder handles none, "linear" and "llama3". ` +
          `Remove rope_scaling from config.json to build for the original context length, or use an ONNX export.`,
      );
  }
}

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new BuildError(`Could not parse ${path}: ${(err as Error).message}. Re-download it or fix its JSON.`, { cause: err });
  }
}

/** Read `dir/config.json` (+ `generation_config.json` if present). */
export function readDecoderConfig(dirIn: string): DecoderConfig {
  const dir = resolve(dirIn);
  const path = join(dir, "config.json");
  if (!existsSync(path)) {
    throw new BuildError(
      `No config.json in ${dir}. Point the builder at a Hugging Face model directory (config.json + *.safetensors), ` +
        `e.g. one downloaded with \`huggingface-cli download <repo> --local-dir <dir>\`.`,
    );
  }
  const gen = join(dir, "generation_config.json");
  return parseDecoderConfig(readJson(path), existsSync(gen) ? readJson(gen) : undefined);
}

const f = Math.fround;

/**
 * RoPE inverse frequencies [headDim / 2], as transformers computes them in float32
 * (`1 / base ** (arange(0, dim, 2) / dim)`, then the scaling rule).
 */
export function ropeInvFreq(cfg: Pick<DecoderConfig, "headDim" | "ropeTheta" | "ropeScaling">): Float64Array {
  const half = cfg.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = f(1 / f(cfg.ropeTheta ** f((2 * i) / cfg.headDim)));
  const rs = cfg.ropeScaling;
  if (rs.type === "linear") {
    for (let i = 0; i < half; i++) inv[i] = f(inv[i]! / rs.factor);
  } else if (rs.type === "llama3") {
    const lowWavelen = rs.originalMaxPositionEmbeddings / rs.lowFreqFactor;
    const highWavelen = rs.originalMaxPositionEmbeddings / rs.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const x = inv[i]!;
      const wavelen = (2 * Math.PI) / x;
      if (wavelen > lowWavelen) inv[i] = f(x / rs.factor);
      else if (wavelen >= highWavelen) {
        // medium frequencies: interpolate between scaled and unscaled
        const smooth = (rs.originalMaxPositionEmbeddings / wavelen - rs.lowFreqFactor) / (rs.highFreqFactor - rs.lowFreqFactor);
        inv[i] = f((1 - smooth) * (x / rs.factor) + smooth * x);
      }
    }
  }
  return inv;
}

/**
 * cos/sin tables [positions, headDim] in HF's half-rotation layout (cat(freqs, freqs)),
 * with float32 rounding as in transformers (angle = float32(pos * inv_freq)).
 */
export function ropeTables(
  cfg: Pick<DecoderConfig, "headDim" | "ropeTheta" | "ropeScaling">,
  positions: number,
): { cos: Float32Array; sin: Float32Array } {
  const inv = ropeInvFreq(cfg);
  const d = cfg.headDim;
  const half = d / 2;
  const cos = new Float32Array(positions * d);
  const sin = new Float32Array(positions * d);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = f(p * inv[i]!);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[p * d + i] = c;
      cos[p * d + half + i] = c;
      sin[p * d + i] = s;
      sin[p * d + half + i] = s;
    }
  }
  return { cos, sin };
}

/**
 * ropeTables with sin's first half negated: rope(x) = x cos + swap_halves(x) sinSigned, HF's
 * x cos + rotate_half(x) sin with rotate_half's sign folded in (the trainers' form).
 */
export function signedRopeTables(
  cfg: Pick<DecoderConfig, "headDim" | "ropeTheta" | "ropeScaling">,
  positions: number,
): { cos: Float32Array; sinSigned: Float32Array } {
  const { cos, sin } = ropeTables(cfg, positions);
  const d = cfg.headDim;
  for (let p = 0; p < positions; p++) for (let i = 0; i < d / 2; i++) sin[p * d + i] = -sin[p * d + i]!;
  return { cos, sinSigned: sin };
}
