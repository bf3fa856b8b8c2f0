/**
 * Find the files of a model directory and read its configuration, whatever the exporter:
 *  - onnx-community / transformers.js: config.json + onnx/model*.onnx
 *  - Optimum: model.onnx or decoder_model_merged.onnx beside config.json
 *  - onnxruntime-genai: genai_config.json beside the model file
 */
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { assertDirEntriesConfined, confineModelPath } from "./confine.js";
import { ModelLoadError } from "../errors.js";

export type ModelLayout = "onnx-community" | "optimum" | "genai";

/** Names of the KV inputs/outputs; `%d` stands for the layer index. */
export interface KvNameTemplates {
  pastKey: string;
  pastValue: string;
  presentKey: string;
  presentValue: string;
}

export interface ModelDirInfo {
  dir: string;
  layout: ModelLayout;
  /** Absolute path of the ONNX file to load. */
  modelFile: string;
  /** Other ONNX files found (variants, early-exit drafts, heads). */
  otherOnnxFiles: string[];
  /** Parsed config.json (may be {} for a genai-only directory). */
  config: Record<string, unknown>;
  genaiConfig?: Record<string, unknown>;
  generationConfig?: Record<string, unknown>;
  architecture: string;
  /** Context length from config (max_position_embeddings / context_length), if known. */
  maxContext?: number;
  /** Vocabulary size from config, if known. */
  vocabSize?: number;
  eosIds: number[];
  bosId?: number;
  padId?: number;
  kvNames: KvNameTemplates;
  hasTokenizer: boolean;
}

/** Preference order among onnx-community variants when the user names none. */
const VARIANT_ORDER = [
  "model.onnx",
  "model_fp16.onnx",
  "model_quantized.onnx",
  "model_int8.onnx",
  "model_uint8.onnx",
  "model_q4.onnx",
  "model_q4f16.onnx",
  "model_bnb4.onnx",
];

const DEFAULT_KV_NAMES: KvNameTemplates = {
  pastKey: "past_key_values.%d.key",
  pastValue: "past_key_values.%d.value",
  presentKey: "present.%d.key",
  presentValue: "present.%d.value",
};

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new ModelLoadError(
      `Could not parse ${path}: ${(err as Error).message}. Re-download the file or fix its JSON.`,
      { cause: err },
    );
  }
}

function readJsonIfExists(path: string): Record<string, unknown> | undefined {
  return existsSync(path) ? readJson(path) : undefined;
}

/** eos ids may be a number, a list, or missing; several files may name them. */
export function collectIds(...values: unknown[]): number[] {
  const out: number[] = [];
  for (const v of values) {
    const list = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
    for (const x of list) if (typeof x === "number" && Number.isInteger(x) && !out.includes(x)) out.push(x);
  }
  return out;
}

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/**
 * Inspect a model directory. `variant` picks an ONNX file by name (e.g. "model_fp16.onnx" or a
 * path relative to the directory); `file` overrides everything.
 */
export function inspectModelDir(dirIn: string, opts: { variant?: string; roots?: readonly string[] } = {}): ModelDirInfo {
  const dir = resolve(dirIn);
  if (!existsSync(dir)) {
    throw new ModelLoadError(
      `Model directory ${dir} does not exist. Pass the path of a directory holding config.json and an ONNX file ` +
        `(or build one with \`spec-decode build\` / \`spec-decode fixture\`), or a Hugging Face repo id such as ` +
        `onnx-community/Qwen2.5-0.5B-Instruct (the CLI and SpecEngine download it; \`spec-decode pull\`).`,
    );
  }
  if (!statSync(dir).isDirectory()) {
    throw new ModelLoadError(`${dir} is a file, not a model directory. Pass the directory that contains it.`);
  }
  // Links among the directory's files (config, tokenizer, onnx/...) must stay inside it (or the roots).
  assertDirEntriesConfined(dir, { roots: opts.roots });
  const config = readJsonIfExists(join(dir, "config.json"));
  const genaiConfig = readJsonIfExists(join(dir, "genai_config.json"));
  const generationConfig = readJsonIfExists(join(dir, "generation_config.json"));
  if (!config && !genaiConfig) {
    throw new ModelLoadError(
      `${dir} has neither config.json nor genai_config.json. Download the whole model repository ` +
        `(onnx-community, Optimum or onnxruntime-genai export), not only the .onnx file.`,
    );
  }

  const onnxDir = join(dir, "onnx");
  const topOnnx = readdirSync(dir).filter((f) => f.endsWith(".onnx"));
  const subOnnx = existsSync(onnxDir) ? readdirSync(onnxDir).filter((f) => f.endsWith(".onnx")) : [];
  const all = [...topOnnx.map((f) => join(dir, f)), ...subOnnx.map((f) => join(onnxDir, f))];

  let layout: ModelLayout;
  let modelFile: string | undefined;
  let kvNames = { ...DEFAULT_KV_NAMES };
  const genaiModel = obj(genaiConfig?.model);
  const genaiDecoder = obj(genaiModel?.decoder);

  if (opts.variant) {
    const candidates = [opts.variant, join("onnx", opts.variant), join("onnx", `${opts.variant}.onnx`), join("onnx", `model_${opts.variant}.onnx`)].map((p) =>
      confineModelPath(dir, p, { roots: opts.roots, source: `the variant "${opts.variant}"` }),
    );
    modelFile = candidates.find((p) => existsSync(p) && statSync(p).isFile());
    if (!modelFile) {
      throw new ModelLoadError(
        `No ONNX file named "${opts.variant}" in ${dir}. Available: ${all.map((p) => p.slice(dir.length + 1)).join(", ") || "none"}.`,
      );
    }
  }

  if (genaiDecoder) {
    layout = "genai";
    const filename = typeof genaiDecoder.filename === "string" ? genaiDecoder.filename : "model.onnx";
    modelFile ??= confineModelPath(dir, filename, { roots: opts.roots, source: 'genai_config.json\'s "model.decoder.filename"' });
    const inputs = obj(genaiDecoder.inputs) ?? {};
    const outputs = obj(genaiDecoder.outputs) ?? {};
    const s = (v: unknown, d: string) => (typeof v === "string" ? v : d);
    kvNames = {
      pastKey: s(inputs.past_key_names, kvNames.pastKey),
      pastValue: s(inputs.past_value_names, kvNames.pastValue),
      presentKey: s(outputs.present_key_names, kvNames.presentKey),
      presentValue: s(outputs.present_value_names, kvNames.presentValue),
    };
  } else if (subOnnx.length > 0) {
    layout = "onnx-community";
    if (!modelFile) {
      const name = VARIANT_ORDER.find((n) => subOnnx.includes(n)) ??
        subOnnx.find((n) => n.startsWith("model") || n.startsWith("decoder_model_merged"));
      if (name) modelFile = join(onnxDir, name);
    }
  } else {
    layout = "optimum";
    if (!modelFile) {
      const name = ["model.onnx", "decoder_model_merged.onnx", "decoder_with_past_model.onnx"].find((n) => topOnnx.includes(n));
      if (name) modelFile = join(dir, name);
    }
  }

  if (!modelFile || !existsSync(modelFile)) {
    throw new ModelLoadError(
      `No decoder ONNX file found in ${dir} (looked for onnx/model*.onnx, model.onnx, decoder_model_merged.onnx` +
        `${genaiDecoder ? `, and genai_config.json's ${String(genaiDecoder.filename)}` : ""}). ` +
        `If the directory holds safetensors, convert it with \`spec-decode build --model ${dirIn}\`.`,
    );
  }

  confineModelPath(dir, relative(dir, modelFile), { roots: opts.roots, source: "the model file" });

  const cfg = config ?? {};
  const textCfg = obj(cfg.text_config) ?? cfg;
  const architectures = Array.isArray(cfg.architectures) ? (cfg.architectures as unknown[]) : [];
  const architecture =
    (typeof architectures[0] === "string" ? (architectures[0] as string) : undefined) ??
    (typeof cfg.model_type === "string" ? (cfg.model_type as string) : undefined) ??
    (typeof genaiModel?.type === "string" ? (genaiModel.type as string) : "unknown");

  const maxContext =
    num(genaiModel?.context_length) ?? num(textCfg.max_position_embeddings) ?? num(textCfg.n_positions) ?? num(textCfg.seq_length);
  const vocabSize = num(textCfg.vocab_size) ?? num(genaiModel?.vocab_size);
  const eosIds = collectIds(generationConfig?.eos_token_id, textCfg.eos_token_id, genaiModel?.eos_token_id);
  const bosId = num(generationConfig?.bos_token_id) ?? num(textCfg.bos_token_id) ?? num(genaiModel?.bos_token_id);
  const padIdRaw = num(generationConfig?.pad_token_id) ?? num(textCfg.pad_token_id) ?? num(genaiModel?.pad_token_id);

  return {
    dir,
    layout,
    modelFile: resolve(modelFile),
    otherOnnxFiles: all.filter((p) => resolve(p) !== resolve(modelFile!)),
    config: cfg,
    genaiConfig,
    generationConfig,
    architecture,
    maxContext,
    vocabSize,
    eosIds,
    bosId,
    padId: padIdRaw,
    kvNames,
    hasTokenizer: existsSync(join(dir, "tokenizer.json")),
  };
}

/** Fill a `%d` template. */
export function layerName(template: string, layer: number): string {
  return template.replace("%d", String(layer));
}
