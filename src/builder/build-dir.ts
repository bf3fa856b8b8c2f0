/** Build a Hugging Face model directory (config.json + safetensors) into ONNX files beside it. */
import { existsSync } from "node:fs";
import { atomicWriteFileSync } from "../util/atomic-file.js";
import { join, resolve } from "node:path";
import { BuildError } from "../errors.js";
import { readDecoderConfig, type DecoderConfig } from "./config.js";
import { buildDecoderOnnx } from "./llama.js";
import { earlyExitFileName, modelFileName, resolveQuantize, type QuantizeOptions } from "./quantize.js";
import { openSafetensorsDir } from "./safetensors.js";

export type BuildLayout = "onnx-community" | "optimum" | "genai";

export interface BuildModelDirOptions {
  /** Also build early-exit drafts with these layer counts (each 1 .. numLayers-1). */
  earlyExit?: number[];
  treeMask?: boolean;
  hiddenStates?: boolean;
  /** The `features` output (pre-final-norm last layer output, for EAGLE heads); default true. */
  features?: boolean;
  ioDtype?: "float32" | "float16";
  /**
   * Where the files go. "onnx-community" (default): onnx/model.onnx; "optimum": model.onnx beside
   * config.json; "genai": model.onnx + genai_config.json. Early-exit drafts go beside the main file
   * as early_exit_{m}.onnx.
   */
  layout?: BuildLayout;
  /**
   * Quantize the linear layers (MatMulNBits int4/int8). The files get onnx-community variant names:
   * model_q4.onnx / model_q4f16.onnx (int4, float32 / float16 io) or model_int8.onnx, and the
   * early exits early_exit_{m}_q4.onnx etc., so float and quantized builds sit side by side and
   * `--variant q4` picks one.
   */
  quantize?: QuantizeOptions;
  /** Token ids for genai_config.json (default: from config.json / generation_config.json). */
  padTokenId?: number;
  onProgress?: (msg: string) => void;
}

/** Early-exit depths, validated and de-duplicated. */
export function checkEarlyExit(cfg: DecoderConfig, earlyExit: number[] = []): number[] {
  const out: number[] = [];
  for (const m of earlyExit) {
    if (!Number.isInteger(m) || m < 1 || m >= cfg.numLayers) {
      throw new BuildError(
        `Early-exit depth ${m} is out of range: the model has ${cfg.numLayers} layers, so pick integers from 1 to ${cfg.numLayers - 1}.`,
      );
    }
    if (!out.includes(m)) out.push(m);
  }
  return out;
}

/** onnxruntime-genai's genai_config.json for a graph with our interface. */
export function genaiConfigFor(
  cfg: DecoderConfig,
  opts: { filename?: string; padTokenId?: number; contextLength?: number } = {},
): Record<string, unknown> {
  const context = opts.contextLength ?? cfg.maxPositionEmbeddings;
  const eos = cfg.eosTokenIds.length === 1 ? cfg.eosTokenIds[0] : cfg.eosTokenIds;
  return {
    model: {
      bos_token_id: cfg.bosTokenId ?? 0,
      context_length: context,
      decoder: {
        session_options: { log_id: "onnxruntime-genai", provider_options: [] },
        filename: opts.filename ?? "model.onnx",
        head_size: cfg.headDim,
        hidden_size: cfg.hiddenSize,
        inputs: {
          input_ids: "input_ids",
          attention_mask: "attention_mask",
          position_ids: "position_ids",
          past_key_names: "past_key_values.%d.key",
          past_value_names: "past_key_values.%d.value",
        },
        outputs: {
          logits: "logits",
          present_key_names: "present.%d.key",
          present_value_names: "present.%d.value",
        },
        num_attention_heads: cfg.numHeads,
        num_hidden_layers: cfg.numLayers,
        num_key_value_heads: cfg.numKvHeads,
      },
      eos_token_id: eos ?? 0,
      pad_token_id: opts.padTokenId ?? cfg.eosTokenIds[0] ?? 0,
      type: cfg.architecture,
      vocab_size: cfg.vocabSize,
    },
    search: {
      diversity_penalty: 0.0,
      do_sample: false,
      early_stopping: true,
      length_penalty: 1.0,
      max_length: context,
      min_length: 0,
      no_repeat_ngram_size: 0,
      num_beams: 1,
      num_return_sequences: 1,
      past_present_share_buffer: false,
      repetition_penalty: 1.0,
      temperature: 1.0,
      top_k: 1,
      top_p: 1.0,
    },
  };
}

/**
 * Read `dir/config.json` + safetensors and write the ONNX decoder (and early-exit drafts).
 * Returns the files written (absolute paths, external-data files included).
 */
export async function buildModelDir(dirIn: string, opts: BuildModelDirOptions = {}): Promise<{ files: string[] }> {
  const dir = resolve(dirIn);
  if (!existsSync(dir)) {
    throw new BuildError(`Model directory ${dir} does not exist. Pass a directory holding config.json and *.safetensors.`);
  }
  const cfg = readDecoderConfig(dir);
  const earlyExit = checkEarlyExit(cfg, opts.earlyExit);
  const weights = openSafetensorsDir(dir);
  const layout = opts.layout ?? "onnx-community";
  const outDir = layout === "onnx-community" ? join(dir, "onnx") : dir;
  const progress = opts.onProgress ?? (() => {});
  const files: string[] = [];
  const quantize = opts.quantize ? resolveQuantize(opts.quantize) : undefined;
  const common = { treeMask: opts.treeMask, hiddenStates: opts.hiddenStates, features: opts.features, ioDtype: opts.ioDtype, quantize };
  const mainFile = modelFileName(quantize?.kind, opts.ioDtype);

  const build = async (numLayers: number, file: string) => {
    const path = join(outDir, file);
    progress(`building ${path} (${numLayers}/${cfg.numLayers} layers)`);
    await buildDecoderOnnx(cfg, weights, path, {
      ...common,
      numLayers,
      onProgress: (m) => progress(`  ${file}: ${m}`),
    });
    files.push(path);
    if (existsSync(`${path}_data`)) files.push(`${path}_data`);
  };
  await build(cfg.numLayers, mainFile);
  for (const m of earlyExit) await build(m, earlyExitFileName(m, quantize?.kind, opts.ioDtype));

  if (layout === "genai") {
    const path = join(dir, "genai_config.json");
    atomicWriteFileSync(path, JSON.stringify(genaiConfigFor(cfg, { padTokenId: opts.padTokenId, filename: mainFile }), null, 2) + "\n");
    files.push(path);
  }
  return { files };
}
