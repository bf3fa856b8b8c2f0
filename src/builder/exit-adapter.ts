/**
 * Trained early-exit adapters (Kangaroo-style, Liu et al. 2024): one extra decoder block on top of
 * the target's first m layers, trained by self-distillation (`spec-decode train-early-exit`) so
 * that adapter(h_m) read through the target's own final norm and LM head (frozen, shared) predicts
 * the full model's next token.
 *
 * The adapter is a decoder layer in the target's own layer shape (RMSNorms, GQA attention with
 * RoPE, SwiGLU MLP; biases / q-k norms when the architecture has them). That makes the drafting
 * graph an ordinary decoder of m + 1 layers: the target's layers 0..m-1 followed by the adapter,
 * built by the same builder (llama.ts) from the checkpoint with layer m's tensors replaced. So it
 * has our KV conventions unchanged, and the adapter's attention gets its own small KV cache as the
 * graph's layer m (the draft cache), with no new graph code to keep right.
 *
 * Files, beside the model's ONNX file (next to early_exit_{m}.onnx):
 *   exit_adapter_{m}.safetensors  the adapter layer: layers.0.{input_layernorm, self_attn.{q,k,v,o}_proj,
 *                                 post_attention_layernorm, mlp.{gate,up,down}_proj}.weight (+ biases,
 *                                 q/k norms), metadata spec_decode.* (exit layer, training summary)
 *   exit_adapter_{m}.onnx         the drafting graph (m target layers + adapter + final norm + LM head)
 * Both are written atomically (temp file + rename). The names are outside the early_exit_* pattern
 * (engine/model-store.ts earlyExitFiles) on purpose: the untrained exit stays what it was.
 */
import { existsSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { BuildError } from "../errors.js";
import { checkpointNames, getOptional, getWeight, openCheckpoint, type LayerTensorNames } from "./checkpoint.js";
import type { DecoderConfig } from "./config.js";
import { buildDecoderOnnx } from "./llama.js";
import { readOnnxMetadataProps } from "../engine/onnx-file.js";
import { SafetensorsSource, safetensorsMetadata, writeSafetensors, type TensorToWrite, type WeightSource, type WeightTensor } from "./safetensors.js";

/** Bump when the adapter graph changes. */
export const EXIT_ADAPTER_VERSION = "1";

export const exitAdapterWeightsName = (m: number) => `exit_adapter_${m}.safetensors`;
export const exitAdapterOnnxName = (m: number) => `exit_adapter_${m}.onnx`;

/** The adapter's ONNX file for exit layer m beside a model's ONNX file (it may not exist). */
export function exitAdapterOnnxFile(modelFile: string, m: number): string {
  return join(dirname(resolve(modelFile)), exitAdapterOnnxName(m));
}

/** Exit layers 1..numLayers-1 with an adapter graph (exitAdapterOnnxName) beside a model's ONNX file, ascending. */
export function exitAdapterLayers(modelFile: string, numLayers: number): number[] {
  const out: number[] = [];
  for (const f of readdirSync(dirname(resolve(modelFile)))) {
    const m = Number(/^exit_adapter_(\d+)\.onnx$/.exec(f)?.[1]);
    if (Number.isInteger(m) && m >= 1 && m < numLayers && f === exitAdapterOnnxName(m)) out.push(m);
  }
  return out.sort((a, b) => a - b);
}

/** One decoder layer, nn.Linear layout (out x in), row-major. */
export interface AdapterLayerWeights {
  inputNorm: Float32Array; // [H]
  q: Float32Array; // [NH*D, H]
  k: Float32Array; // [KV*D, H]
  v: Float32Array; // [KV*D, H]
  o: Float32Array; // [H, NH*D]
  qBias?: Float32Array;
  kBias?: Float32Array;
  vBias?: Float32Array;
  qNorm?: Float32Array; // [D]
  kNorm?: Float32Array;
  postNorm: Float32Array; // [H]
  gate: Float32Array; // [I, H]
  up: Float32Array; // [I, H]
  down: Float32Array; // [H, I]
}

const FIELDS: [keyof AdapterLayerWeights, keyof LayerTensorNames][] = [
  ["inputNorm", "inputNorm"],
  ["q", "q"],
  ["k", "k"],
  ["v", "v"],
  ["o", "o"],
  ["qBias", "qBias"],
  ["kBias", "kBias"],
  ["vBias", "vBias"],
  ["qNorm", "qNorm"],
  ["kNorm", "kNorm"],
  ["postNorm", "postNorm"],
  ["gate", "gate"],
  ["up", "up"],
  ["down", "down"],
];

function layerShapes(cfg: DecoderConfig): Record<keyof AdapterLayerWeights, number[]> {
  const { hiddenSize: H, intermediateSize: I, numHeads: NH, numKvHeads: KV, headDim: D } = cfg;
  return {
    inputNorm: [H],
    q: [NH * D, H],
    k: [KV * D, H],
    v: [KV * D, H],
    o: [H, NH * D],
    qBias: [NH * D],
    kBias: [KV * D],
    vBias: [KV * D],
    qNorm: [D],
    kNorm: [D],
    postNorm: [H],
    gate: [I, H],
    up: [I, H],
    down: [H, I],
  };
}

/** Layer i of a checkpoint as adapter weights (the default initialisation: the target's layer m). */
export function readCheckpointLayer(cfg: DecoderConfig, weights: WeightSource, i: number): AdapterLayerWeights {
  return readLayer(cfg, weights, checkpointNames(cfg, weights).layer(i));
}

function readLayer(cfg: DecoderConfig, weights: WeightSource, l: LayerTensorNames): AdapterLayerWeights {
  const shapes = layerShapes(cfg);
  const out: Partial<AdapterLayerWeights> = {};
  for (const [field, name] of FIELDS) {
    const optional = field === "qBias" || field === "kBias" || field === "vBias" || field === "qNorm" || field === "kNorm";
    const v = optional ? getOptional(weights, l[name], shapes[field]) : getWeight(weights, l[name], shapes[field]);
    if (v) out[field] = v;
  }
  return out as AdapterLayerWeights;
}

/** The checkpoint with layer m's tensors replaced by the adapter's (none of layer m's own show through). */
class OverlayWeights implements WeightSource {
  constructor(
    private readonly base: WeightSource,
    private readonly overlay: Map<string, WeightTensor>,
    private readonly hiddenPrefix: string,
  ) {}
  get(name: string): WeightTensor {
    const t = this.overlay.get(name);
    if (t) return t;
    if (name.startsWith(this.hiddenPrefix)) throw new BuildError(`Internal error: the exit adapter has no tensor ${name}. Please report this.`);
    return this.base.get(name);
  }
  has(name: string): boolean {
    return this.overlay.has(name) || (!name.startsWith(this.hiddenPrefix) && this.base.has(name));
  }
  names(): string[] {
    return [...new Set([...this.base.names().filter((n) => !n.startsWith(this.hiddenPrefix)), ...this.overlay.keys()])];
  }
  shape(name: string): number[] {
    const t = this.overlay.get(name);
    if (t) return t.dims.slice();
    return this.base.shape ? this.base.shape(name) : this.base.get(name).dims;
  }
}

export interface ExitAdapterInfo {
  exitLayer: number;
  /** Held-out top-1 agreement with the full model (training report), when recorded. */
  heldOutTop1?: number;
  untrainedTop1?: number;
  [k: string]: unknown;
}

/** Tensor names of the adapter file: the HF layer names at index 0, without the "model." prefix. */
function layerNamesAt0(): LayerTensorNames {
  const st = { has: (n: string) => n === "embed_tokens.weight", get: () => ({ dims: [], data: new Float32Array(0) }), names: () => [] };
  return checkpointNames({ tieWordEmbeddings: true } as DecoderConfig, st).layer(0);
}

/** Write the adapter's weights (atomically). */
export function writeExitAdapterWeights(file: string, cfg: DecoderConfig, m: number, w: AdapterLayerWeights, info: Record<string, unknown> = {}): void {
  const shapes = layerShapes(cfg);
  const tensors: TensorToWrite[] = [];
  const l = layerNamesAt0();
  for (const [field, name] of FIELDS) {
    const data = w[field];
    if (data) tensors.push({ name: l[name], dims: shapes[field], data });
  }
  writeSafetensors(file, tensors, {
    format: "pt",
    "spec_decode.exit_adapter": EXIT_ADAPTER_VERSION,
    "spec_decode.exit_layer": String(m),
    "spec_decode.info": JSON.stringify(info),
  });
}

/** Read an adapter's weights for a target config (shape-checked). */
export function readExitAdapterWeights(file: string, cfg: DecoderConfig): { weights: AdapterLayerWeights; exitLayer: number; info: Record<string, unknown> } {
  if (!existsSync(file)) throw new BuildError(`No exit adapter at ${file}; train one with \`spec-decode train-early-exit\`.`);
  const st = new SafetensorsSource([file]);
  const meta = safetensorsMetadata(file);
  const exitLayer = Number(meta["spec_decode.exit_layer"]);
  if (!Number.isInteger(exitLayer) || exitLayer < 1) throw new BuildError(`${file} is not an exit adapter written by \`spec-decode train-early-exit\` (no spec_decode.exit_layer).`);
  let info: Record<string, unknown> = {};
  try {
    info = JSON.parse(meta["spec_decode.info"] ?? "{}") as Record<string, unknown>;
  } catch {
    /* advisory */
  }
  return { weights: readLayer(cfg, st, layerNamesAt0()), exitLayer, info };
}

/**
 * Build the drafting graph: the checkpoint's first m layers, the adapter as layer m, the final
 * norm and LM head. Written atomically by the graph builder.
 */
export async function buildExitAdapterOnnx(modelDir: string, m: number, w: AdapterLayerWeights, outPath: string, metadata: Record<string, string> = {}): Promise<void> {
  const { cfg, weights, names } = openCheckpoint(modelDir, "An exit adapter graph needs the target's safetensors checkpoint and config.json (its first layers, final norm and LM head)");
  if (!Number.isInteger(m) || m < 1 || m >= cfg.numLayers) {
    throw new BuildError(`Exit layer ${m} is out of range: the model has ${cfg.numLayers} layers, so pick an integer from 1 to ${cfg.numLayers - 1}.`);
  }
  const l = names.layer(m);
  const shapes = layerShapes(cfg);
  const overlay = new Map<string, WeightTensor>();
  for (const [field, name] of FIELDS) {
    const data = w[field];
    if (data) overlay.set(l[name], { dims: shapes[field], data });
  }
  await buildDecoderOnnx(cfg, new OverlayWeights(weights, overlay, l.inputNorm.replace(/input_layernorm\.weight$/, "")), outPath, {
    numLayers: m + 1,
    metadata: {
      "spec_decode.exit_adapter": EXIT_ADAPTER_VERSION,
      "spec_decode.exit_layer": String(m),
      ...metadata,
    },
  });
}

/** The exit layer recorded in an adapter graph (undefined when the file is not one). */
export function exitAdapterLayerOf(onnxFile: string): number | undefined {
  try {
    const meta = readOnnxMetadataProps(onnxFile);
    const m = Number(meta["spec_decode.exit_layer"]);
    return meta["spec_decode.exit_adapter"] !== undefined && Number.isInteger(m) ? m : undefined;
  } catch {
    return undefined;
  }
}
