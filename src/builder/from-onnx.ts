/**
 * Rebuild an existing ONNX export with our interface (`spec-decode build --from-onnx`): the export's
 * decoder is recognised from its graph (recognise-export.ts), its weights read out of it
 * (onnx-reader.ts; MatMulNBits / MatMulInteger weights kept as they are, prequantized.ts), and the
 * ordinary builder (llama.ts) writes our graph (tree mask, hidden states, features, early exits)
 * into our cache. Nothing is written before the graph is recognised; the output is staged and
 * renamed into place; the export is never modified.
 */
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { inspectModelDir } from "../engine/model-dir.js";
import { BuildError } from "../errors.js";
import { userModelDir } from "../mcp/roots.js";
import { atomicWriteFileSync } from "../util/atomic-file.js";
import { checkEarlyExit } from "./build-dir.js";
import type { DecoderConfig } from "./config.js";
import { buildDecoderOnnx } from "./llama.js";
import { readOnnxModel, tensorFloats } from "./onnx-reader.js";
import { dequantizePreQuantized } from "./prequantized.js";
import { earlyExitFileName } from "./quantize.js";
import { recogniseExport } from "./recognise-export.js";

export type { RecognisedExport } from "./recognise-export.js";
export { recogniseExport };

export interface BuildFromOnnxOptions {
  /** Output directory; default: our cache, <cache>/from-onnx/<name>-<hash of the export file>. */
  out?: string;
  /** Which ONNX file of the directory (as `--variant`). */
  variant?: string;
  earlyExit?: number[];
  treeMask?: boolean;
  hiddenStates?: boolean;
  features?: boolean;
  env?: NodeJS.ProcessEnv;
  onProgress?: (msg: string) => void;
}

export interface BuildFromOnnxResult {
  /** The rebuilt model directory. */
  dir: string;
  files: string[];
  /** The export file read. */
  source: string;
  family: string;
}

/** Small files of the export directory the rebuilt model needs (tokenizer, configs, chat template). */
const COPY = /^(config\.json|generation_config\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|added_tokens\.json|vocab\.json|merges\.txt|tokenizer\.model|chat_template\.(jinja|json))$/;

/** Where a rebuild of `modelFile` goes by default. */
export function defaultRebuildDir(srcDir: string, modelFile: string, env: NodeJS.ProcessEnv = process.env): string {
  const st = statSync(modelFile);
  const hash = createHash("sha256").update(`${realpathSync(modelFile)}\0${st.size}\0${st.mtimeMs}`).digest("hex").slice(0, 12);
  return join(userModelDir(env), "from-onnx", `${basename(resolve(srcDir))}-${hash}`);
}

/** Marker written last into a completed rebuild. */
export const FROM_ONNX_MARKER = ".spec-decode-from-onnx.json";

/**
 * Rebuild the ONNX export in `dirIn` with our interface. Nothing is written before the graph is
 * recognised; the output is staged and renamed into place; the export is never modified.
 */
export async function buildFromOnnx(dirIn: string, opts: BuildFromOnnxOptions = {}): Promise<BuildFromOnnxResult> {
  const src = resolve(dirIn);
  let info;
  try {
    info = inspectModelDir(src, { variant: opts.variant });
  } catch (err) {
    throw new BuildError(`--from-onnx needs an ONNX export directory: ${(err as Error).message}`, { cause: err });
  }
  const progress = opts.onProgress ?? (() => {});
  progress(`reading ${info.modelFile}`);
  const model = readOnnxModel(info.modelFile);
  const textCfg = ((info.config.text_config ?? info.config) as Record<string, unknown>) ?? {};
  const rec = recogniseExport(model, { config: textCfg });
  rec.cfg.eosTokenIds = info.eosIds.length ? info.eosIds : rec.cfg.eosTokenIds;
  rec.cfg.bosTokenId = info.bosId ?? rec.cfg.bosTokenId;
  if (info.maxContext && info.maxContext < rec.cfg.maxPositionEmbeddings) rec.cfg.maxPositionEmbeddings = info.maxContext;
  const earlyExit = checkEarlyExit(rec.cfg, opts.earlyExit);
  progress(`recognised ${rec.cfg.numLayers} layers, hidden ${rec.cfg.hiddenSize}, ${rec.cfg.numHeads}/${rec.cfg.numKvHeads} heads: ${rec.family}`);

  const out = resolve(opts.out ?? defaultRebuildDir(src, info.modelFile, opts.env));
  if (out === src || out.startsWith(`${src}/`)) {
    throw new BuildError(`The rebuild must go outside the export directory (${src}) so the original stays untouched; pick another --out.`);
  }
  mkdirSync(resolve(out, ".."), { recursive: true });
  const staging = `${out}.tmp-${process.pid}-${Date.now()}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(join(staging, "onnx"), { recursive: true });
  try {
    for (const name of readdirSync(src)) {
      if (COPY.test(name) && statSync(join(src, name)).isFile()) copyFileSync(join(src, name), join(staging, name));
    }
    if (!existsSync(join(staging, "config.json"))) {
      // genai-only directory: a config.json our loader reads (ids from genai_config.json).
      const c = rec.cfg;
      const json = {
        architectures: ["LlamaForCausalLM"],
        model_type: "llama",
        hidden_size: c.hiddenSize,
        intermediate_size: c.intermediateSize,
        num_hidden_layers: c.numLayers,
        num_attention_heads: c.numHeads,
        num_key_value_heads: c.numKvHeads,
        head_dim: c.headDim,
        vocab_size: c.vocabSize,
        rms_norm_eps: c.rmsNormEps,
        max_position_embeddings: c.maxPositionEmbeddings,
        tie_word_embeddings: c.tieWordEmbeddings,
        ...(c.bosTokenId !== undefined ? { bos_token_id: c.bosTokenId } : {}),
        ...(c.eosTokenIds.length ? { eos_token_id: c.eosTokenIds.length === 1 ? c.eosTokenIds[0] : c.eosTokenIds } : {}),
        ...(info.padId !== undefined ? { pad_token_id: info.padId } : {}),
      };
      atomicWriteFileSync(join(staging, "config.json"), JSON.stringify(json, null, 2) + "\n");
    }
    const files: string[] = [];
    const common = {
      treeMask: opts.treeMask,
      hiddenStates: opts.hiddenStates,
      features: opts.features,
      ioDtype: rec.ioDtype,
      metadata: { "spec_decode.from_onnx": basename(info.modelFile), "spec_decode.from_onnx_family": rec.family },
    };
    const build = async (numLayers: number, file: string) => {
      progress(`writing ${file} (${numLayers}/${rec.cfg.numLayers} layers)`);
      await buildDecoderOnnx(rec.cfg, rec.weights, join(staging, "onnx", file), { ...common, numLayers, onProgress: (m) => progress(`  ${file}: ${m}`) });
      files.push(join(out, "onnx", file));
      if (existsSync(join(staging, "onnx", `${file}_data`))) files.push(join(out, "onnx", `${file}_data`));
    };
    await build(rec.cfg.numLayers, "model.onnx");
    for (const m of earlyExit) await build(m, earlyExitFileName(m, undefined));
    const marker = { source: info.modelFile, family: rec.family, config: rec.cfg, builtAt: new Date().toISOString() };
    atomicWriteFileSync(join(staging, FROM_ONNX_MARKER), JSON.stringify(marker, null, 2) + "\n");
    // Swap into place: an earlier rebuild is moved aside first and removed after.
    const old = `${out}.old-${process.pid}-${Date.now()}`;
    if (existsSync(out)) renameSync(out, old);
    renameSync(staging, out);
    rmSync(old, { recursive: true, force: true });
    for (const f of readdirSync(out)) if (COPY.test(f) || f === FROM_ONNX_MARKER) files.push(join(out, f));
    return { dir: out, files, source: info.modelFile, family: rec.family };
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw err;
  }
}

/**
 * The embedding, final norm and LM head of a model rebuilt by `build --from-onnx` (it has no
 * safetensors): read back from the rebuilt graph, with the recognised config. Undefined for other
 * directories. EAGLE heads need these parts (builder/eagle-head.ts).
 */
export function readRebuiltTargetParts(modelDir: string): { cfg: DecoderConfig; embed: Float32Array; finalNorm: Float32Array; lmHead: Float32Array } | undefined {
  const markerPath = join(modelDir, FROM_ONNX_MARKER);
  const graphPath = join(modelDir, "onnx", "model.onnx");
  if (!existsSync(markerPath) || !existsSync(graphPath)) return undefined;
  const marker = JSON.parse(readFileSync(markerPath, "utf8")) as { config?: DecoderConfig };
  const cfg = marker.config;
  if (!cfg || typeof cfg.hiddenSize !== "number") throw new BuildError(`${markerPath} holds no recognised config; rebuild with \`spec-decode build --from-onnx\` again.`);
  const model = readOnnxModel(graphPath);
  const t = (name: string) => {
    const x = model.tensors.get(name);
    if (!x) throw new BuildError(`${graphPath} has no tensor "${name}"; rebuild it with \`spec-decode build --from-onnx\` again.`);
    return x;
  };
  const embed = tensorFloats(t("model.embed_tokens.weight"));
  let lmHead: Float32Array;
  if (model.tensors.has("lm_head.weight")) lmHead = tensorFloats(t("lm_head.weight"));
  else if (model.tensors.has("lm_head.qweight")) {
    const node = model.nodes.find((n) => n.opType === "MatMulNBits" && n.inputs[1] === "lm_head.qweight")!;
    const num = (k: string) => node.attrs.get(k) as number;
    lmHead = dequantizePreQuantized({
      kind: "nbits",
      bits: num("bits"),
      blockSize: num("block_size"),
      N: num("N"),
      K: num("K"),
      packed: t("lm_head.qweight").bytes(),
      scales: tensorFloats(t("lm_head.scales")),
      zeroPoints: model.tensors.get("lm_head.zero_points")?.bytes(),
      accuracyLevel: 0,
    });
  } else if (model.tensors.has("lm_head.weight_quantized")) {
    const w = t("lm_head.weight_quantized");
    lmHead = dequantizePreQuantized({
      kind: "integer",
      K: w.dims[0]!,
      N: w.dims[1]!,
      signed: w.elemType === "int8",
      weight: w.bytes(),
      zeroPoints: t("lm_head.weight_zero_point").bytes(),
      scales: tensorFloats(t("lm_head.weight_scale")),
    });
  } else lmHead = embed; // tied
  return { cfg, embed, finalNorm: tensorFloats(t("model.norm.weight")), lmHead };
}
