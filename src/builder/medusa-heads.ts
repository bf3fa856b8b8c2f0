/**
 * Medusa heads: read and write the Medusa project's format, build the heads into an ONNX graph,
 * and a float64 reference of their math.
 *
 * Format (FasterDecoding/Medusa, "Medusa-1" heads saved on their own):
 *   medusa_lm_head.safetensors  the state dict of `medusa_head`, a list of H heads, each a
 *                               Sequential of L residual blocks and one LM head:
 *     {i}.{j}.linear.weight  [hidden, hidden]  (nn.Linear: out x in)   j = 0 .. L-1
 *     {i}.{j}.linear.bias    [hidden]
 *     {i}.{L}.weight         [vocab, hidden]   the head's own LM head (no bias)
 *   config.json                 medusa_num_heads, medusa_num_layers, base_model_name_or_path
 *                               (heads we train add hidden_size, vocab_size and `medusa_choices`,
 *                               the candidate tree measured for them).
 * Some exporters prefix the names (`medusa_head.0.0.linear.weight`); the prefix is detected.
 * Older releases ship `medusa_lm_head.pt` (a pickled state dict): we do not parse pickles; the error
 * says how to convert it to safetensors.
 *
 * Head i maps the base model's last hidden state h_t (the final-norm output) to logits for token
 * t + i + 2 (head 0 predicts the token after the next one):
 *     x = h;  for each block: x = x + SiLU(W x + b);  logits_i = W_lm x
 *
 * ONNX graph (`medusa_heads.onnx`): input `hidden_states` float32 [batch, seq, hidden], output
 * `medusa_logits` float32 [heads, batch, seq, vocab]. LM-head matrices that are identical across
 * heads are stored once; when all heads share one (heads trained with the base's frozen LM head),
 * their rows go through a single Gemm, so the [vocab, hidden] matrix is read once per call.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { BuildError } from "../errors.js";
import { ensureDerivedOnnx } from "./derived-onnx.js";
import { GraphBuilder, attr } from "./onnx-graph.js";
import { atomicWriteFileSync } from "../util/atomic-file.js";
import { SafetensorsSource, writeSafetensors, type TensorToWrite } from "./safetensors.js";

export const MEDUSA_HEADS_FILE = "medusa_lm_head.safetensors";
export const MEDUSA_HEADS_PT_FILE = "medusa_lm_head.pt";
export const MEDUSA_ONNX_FILE = "medusa_heads.onnx";
/** Bump when the heads graph changes, so cached ONNX files are rebuilt. */
export const MEDUSA_GRAPH_VERSION = "2";

export interface MedusaResBlock {
  /** [hidden, hidden], row-major out x in (nn.Linear layout). */
  weight: Float32Array;
  /** [hidden]. */
  bias: Float32Array;
}

export interface MedusaHead {
  blocks: MedusaResBlock[];
  /** [vocab, hidden], row-major. */
  lmHead: Float32Array;
}

export interface MedusaHeadsConfig {
  numHeads: number;
  numLayers: number;
  hiddenSize: number;
  vocabSize: number;
  /** base_model_name_or_path, when given. */
  baseModel?: string;
  /** Candidate tree recommended for these heads (paths of per-head ranks), when given. */
  choices?: number[][];
  /** Measured P(target is the head's rank-r token), [head][rank], when given (our trained heads). */
  rankAccuracy?: number[][];
}

export interface MedusaHeadsWeights extends MedusaHeadsConfig {
  heads: MedusaHead[];
  /** The safetensors file read. */
  file: string;
  /** The parsed config.json (empty object when there is none). */
  rawConfig: Record<string, unknown>;
}

/** Where the heads' files are: `path` is a directory or the safetensors file itself. */
export function locateMedusaHeads(pathIn: string): { file: string; dir: string; configFile?: string } {
  const path = resolve(pathIn);
  if (!existsSync(path)) {
    throw new BuildError(
      `Medusa heads not found at ${path}. Pass a directory holding ${MEDUSA_HEADS_FILE} and config.json ` +
        `(or the safetensors file itself); train heads with \`spec-decode train-medusa --model DIR\`.`,
    );
  }
  let file: string;
  if (statSync(path).isDirectory()) {
    file = join(path, MEDUSA_HEADS_FILE);
    if (!existsSync(file)) {
      if (existsSync(join(path, MEDUSA_HEADS_PT_FILE))) throw ptError(join(path, MEDUSA_HEADS_PT_FILE));
      throw new BuildError(
        `${path} has no ${MEDUSA_HEADS_FILE}. Medusa heads are a directory with ${MEDUSA_HEADS_FILE} and config.json ` +
          `(as published by the Medusa project, or written by \`spec-decode train-medusa\`).`,
      );
    }
  } else {
    if (path.endsWith(".pt") || path.endsWith(".bin")) throw ptError(path);
    file = path;
  }
  const dir = dirname(file);
  const configFile = join(dir, "config.json");
  return { file, dir, configFile: existsSync(configFile) ? configFile : undefined };
}

function ptError(file: string): BuildError {
  return new BuildError(
    `${file} is a PyTorch pickle; this engine reads Medusa heads only as safetensors (it never unpickles files). ` +
      `Convert it once with Python: \`python -c "import torch; from safetensors.torch import save_file; ` +
      `sd = torch.load('${basename(file)}', map_location='cpu'); save_file({k: v.contiguous() for k, v in sd.items()}, ` +
      `'${MEDUSA_HEADS_FILE}')"\` in ${dirname(file)}, keep config.json beside it, and pass that directory.`,
  );
}

const PREFIXES = ["", "medusa_head.", "medusa_heads.", "model.medusa_head.", "base_model.medusa_head."];

function positiveInt(v: unknown): number | undefined {
  return typeof v === "number" && Number.isInteger(v) && v > 0 ? v : undefined;
}

function parseChoices(v: unknown): number[][] | undefined {
  if (!Array.isArray(v)) return undefined;
  const ok = v.every((p) => Array.isArray(p) && p.length > 0 && p.every((r) => Number.isInteger(r) && r >= 0));
  return ok ? (v as number[][]).map((p) => [...p]) : undefined;
}

interface HeadsLayout {
  config: MedusaHeadsConfig;
  file: string;
  rawConfig: Record<string, unknown>;
  st: SafetensorsSource;
  prefix: string;
}

function inspect(pathIn: string): HeadsLayout {
  const { file, configFile } = locateMedusaHeads(pathIn);
  let raw: Record<string, unknown> = {};
  if (configFile) {
    try {
      raw = JSON.parse(readFileSync(configFile, "utf8")) as Record<string, unknown>;
    } catch (err) {
      throw new BuildError(`Could not parse ${configFile}: ${(err as Error).message}. Fix or re-download it.`, { cause: err });
    }
  }
  const st = new SafetensorsSource([file]);
  const names = st.names();
  const prefix = PREFIXES.find((p) => st.has(`${p}0.0.linear.weight`) || st.has(`${p}0.0.weight`));
  if (prefix === undefined) {
    throw new BuildError(
      `${file} does not hold Medusa heads: expected tensors named like "0.0.linear.weight" (residual block) and ` +
        `"0.1.weight" (LM head); found ${names.slice(0, 6).join(", ")}${names.length > 6 ? ", ..." : ""}.`,
    );
  }
  // Heads and layers: from config.json when given, else counted from the tensor names.
  const headIds = new Set<number>();
  for (const n of names) {
    const m = /^(\d+)\./.exec(n.slice(prefix.length));
    if (n.startsWith(prefix) && m) headIds.add(Number(m[1]));
  }
  let counted = 0;
  while (headIds.has(counted)) counted++;
  let layersCounted = 0;
  while (st.has(`${prefix}0.${layersCounted}.linear.weight`)) layersCounted++;
  const numLayers = positiveInt(raw.medusa_num_layers) ?? (raw.medusa_num_layers === 0 ? 0 : layersCounted);
  const numHeads = positiveInt(raw.medusa_num_heads) ?? counted;
  if (numHeads < 1) throw new BuildError(`${file} holds no Medusa heads.`);
  if (numHeads > counted) {
    throw new BuildError(
      `config.json says medusa_num_heads = ${numHeads} but ${file} holds ${counted} heads. The files do not belong ` +
        `together; download both again.`,
    );
  }
  const lm0 = `${prefix}0.${numLayers}.weight`;
  if (!st.has(lm0)) {
    throw new BuildError(
      `${file}: head 0 has no LM head "${lm0}" (with medusa_num_layers = ${numLayers}). Check medusa_num_layers ` +
        `in config.json (the tensors suggest ${layersCounted}).`,
    );
  }
  const shape = st.shape(lm0);
  if (shape.length !== 2) throw new BuildError(`${file}: "${lm0}" must be a 2-D [vocab, hidden] matrix.`);
  const [V, H] = shape as [number, number];
  const cfgHidden = positiveInt(raw.hidden_size);
  const cfgVocab = positiveInt(raw.vocab_size);
  if (cfgHidden !== undefined && cfgHidden !== H) {
    throw new BuildError(`${configFile}: hidden_size ${cfgHidden} disagrees with the heads' tensors (hidden ${H}).`);
  }
  if (cfgVocab !== undefined && cfgVocab !== V) {
    throw new BuildError(`${configFile}: vocab_size ${cfgVocab} disagrees with the heads' tensors (vocab ${V}).`);
  }
  const sd = (raw.spec_decode ?? {}) as Record<string, unknown>;
  const config: MedusaHeadsConfig = {
    numHeads,
    numLayers,
    hiddenSize: H,
    vocabSize: V,
    baseModel: typeof raw.base_model_name_or_path === "string" && raw.base_model_name_or_path ? raw.base_model_name_or_path : undefined,
    choices: parseChoices(raw.medusa_choices),
    rankAccuracy: Array.isArray(sd.rank_accuracy) ? (sd.rank_accuracy as number[][]) : undefined,
  };
  return { config, file, rawConfig: raw, st, prefix };
}

/** The heads' configuration and shapes, without reading their weights. */
export function inspectMedusaHeads(pathIn: string): MedusaHeadsConfig & { file: string } {
  const { config, file } = inspect(pathIn);
  return { ...config, file };
}

/** Read Medusa heads (Medusa's safetensors format, or ours, which is the same). */
export function readMedusaHeads(pathIn: string): MedusaHeadsWeights {
  const { config, file, rawConfig, st, prefix } = inspect(pathIn);
  const { numHeads, numLayers, hiddenSize: H, vocabSize: V } = config;
  const expect = (name: string, dims: number[]): Float32Array => {
    if (!st.has(name)) throw new BuildError(`${file}: tensor "${name}" is missing; the heads file is incomplete.`);
    const shape = st.shape(name);
    if (shape.length !== dims.length || shape.some((d, k) => d !== dims[k])) {
      throw new BuildError(
        `${file}: tensor "${name}" has shape [${shape.join(", ")}], expected [${dims.join(", ")}] ` +
          `(hidden ${H}, vocab ${V} from the first LM head). The file is corrupt or mixes heads of different models.`,
      );
    }
    return st.get(name).data;
  };
  const heads: MedusaHead[] = [];
  for (let i = 0; i < numHeads; i++) {
    const blocks: MedusaResBlock[] = [];
    for (let j = 0; j < numLayers; j++) {
      blocks.push({ weight: expect(`${prefix}${i}.${j}.linear.weight`, [H, H]), bias: expect(`${prefix}${i}.${j}.linear.bias`, [H]) });
    }
    heads.push({ blocks, lmHead: expect(`${prefix}${i}.${numLayers}.weight`, [V, H]) });
  }
  return { ...config, heads, file, rawConfig };
}

export interface WriteMedusaHeadsOptions {
  baseModel?: string;
  choices?: number[][];
  rankAccuracy?: number[][];
  /** Extra fields under config.json's "spec_decode" key (training report...). */
  extra?: Record<string, unknown>;
  /** Stored dtype of the tensors (default F32). */
  dtype?: "F32" | "F16" | "BF16";
}

/** Write heads in the Medusa format (safetensors + config.json) into `dir`. Returns the files. */
export function writeMedusaHeads(dirIn: string, heads: MedusaHead[], opts: WriteMedusaHeadsOptions = {}): string[] {
  const dir = resolve(dirIn);
  if (heads.length === 0) throw new BuildError("writeMedusaHeads: no heads to write.");
  const L = heads[0]!.blocks.length;
  const H = heads[0]!.blocks[0]?.bias.length ?? Math.round(Math.sqrt(heads[0]!.lmHead.length));
  const V = heads[0]!.lmHead.length / H;
  if (!Number.isInteger(V)) throw new BuildError("writeMedusaHeads: LM head size is not a multiple of the hidden size.");
  const tensors: TensorToWrite[] = [];
  heads.forEach((h, i) => {
    if (h.blocks.length !== L) throw new BuildError("writeMedusaHeads: every head must have the same number of blocks.");
    h.blocks.forEach((b, j) => {
      tensors.push({ name: `${i}.${j}.linear.weight`, dims: [H, H], data: b.weight, dtype: opts.dtype });
      tensors.push({ name: `${i}.${j}.linear.bias`, dims: [H], data: b.bias, dtype: opts.dtype });
    });
    tensors.push({ name: `${i}.${L}.weight`, dims: [V, H], data: h.lmHead, dtype: opts.dtype });
  });
  mkdirSync(dir, { recursive: true });
  const file = join(dir, MEDUSA_HEADS_FILE);
  writeSafetensors(file, tensors, { format: "pt" });
  const config: Record<string, unknown> = {
    medusa_num_heads: heads.length,
    medusa_num_layers: L,
    base_model_name_or_path: opts.baseModel ?? "",
    hidden_size: H,
    vocab_size: V,
    ...(opts.choices ? { medusa_choices: opts.choices } : {}),
    spec_decode: { ...(opts.rankAccuracy ? { rank_accuracy: opts.rankAccuracy } : {}), ...(opts.extra ?? {}) },
  };
  const configFile = join(dir, "config.json");
  atomicWriteFileSync(configFile, JSON.stringify(config, null, 2) + "\n");
  return [file, configFile];
}

function sameData(a: Float32Array, b: Float32Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Write the heads' ONNX graph (see the module comment). */
export function buildMedusaHeadsOnnx(w: Pick<MedusaHeadsWeights, "heads" | "hiddenSize" | "vocabSize">, outPath: string, metadata: Record<string, string> = {}): void {
  const H = w.hiddenSize;
  const V = w.vocabSize;
  const g = new GraphBuilder({ name: "medusa_heads", modelPath: outPath, producerVersion: MEDUSA_GRAPH_VERSION });
  try {
    const hidden = g.input("hidden_states", "float32", ["batch_size", "sequence_length", H]);
    const lmNames: { data: Float32Array; name: string }[] = [];
    const outShape = g.op("Concat", [g.constInt64([1]), g.op("Shape", [hidden], { start: 0, end: 2 }), g.constInt64([V])], { axis: 0 });
    const K = w.heads.length;
    const flats = w.heads.map((head, i) => {
      let x = hidden;
      head.blocks.forEach((b, j) => {
        const wt = new Float32Array(H * H); // [in, out] for MatMul
        for (let o = 0; o < H; o++) for (let k = 0; k < H; k++) wt[k * H + o] = b.weight[o * H + k]!;
        const wName = g.initializer(`medusa.${i}.${j}.linear.weight_t`, "float32", [H, H], wt);
        const bName = g.initializer(`medusa.${i}.${j}.linear.bias`, "float32", [H], b.bias);
        const z = g.op("Add", [g.op("MatMul", [x, wName]), bName]);
        x = g.op("Add", [x, g.op("Mul", [z, g.op("Sigmoid", [z])])]);
      });
      return g.op("Reshape", [x, g.constInt64([-1, H])]); // [B*S, H]
    });
    let all: string;
    const shared = w.heads.every((h) => sameData(h.lmHead, w.heads[0]!.lmHead));
    if (shared && K > 1) {
      // One LM head for all heads (heads trained with the base's frozen LM head): stack the rows and
      // run one Gemm, so the [vocab, hidden] matrix is read once per call instead of once per head.
      const lm = g.initializer("medusa.lm_head.weight", "float32", [V, H], w.heads[0]!.lmHead);
      const stacked = g.op("Concat", flats, { axis: 0 }); // [K*B*S, H]
      const logits = g.op("Gemm", [stacked, lm], { transB: 1, alpha: attr.float(1), beta: attr.float(1) });
      const shape = g.op("Concat", [g.constInt64([K]), g.op("Shape", [hidden], { start: 0, end: 2 }), g.constInt64([V])], { axis: 0 });
      all = g.op("Reshape", [logits, shape]);
    } else {
      const perHead = w.heads.map((head, i) => {
        let lm = lmNames.find((e) => sameData(e.data, head.lmHead))?.name;
        if (!lm) {
          lm = g.initializer(`medusa.${i}.lm_head.weight`, "float32", [V, H], head.lmHead);
          lmNames.push({ data: head.lmHead, name: lm });
        }
        const logits = g.op("Gemm", [flats[i]!, lm], { transB: 1, alpha: attr.float(1), beta: attr.float(1) });
        return g.op("Reshape", [logits, outShape]);
      });
      all = perHead.length === 1 ? perHead[0]! : g.op("Concat", perHead, { axis: 0 });
    }
    g.output("medusa_logits", "float32", [w.heads.length, "batch_size", "sequence_length", V], all);
    g.setMetadata("spec_decode.medusa_graph", MEDUSA_GRAPH_VERSION);
    g.setMetadata("spec_decode.medusa_num_heads", String(w.heads.length));
    g.setMetadata("spec_decode.hidden_size", String(H));
    g.setMetadata("spec_decode.vocab_size", String(V));
    for (const [k, v] of Object.entries(metadata)) g.setMetadata(k, v);
    g.save(outPath);
  } finally {
    g.dispose();
  }
}

function sourceStamp(file: string): string {
  const s = statSync(file);
  return `${MEDUSA_GRAPH_VERSION}:${s.size}:${Math.round(s.mtimeMs)}`;
}

/**
 * The ONNX file of the heads at `path`, built on first use: `medusa_heads.onnx` beside the
 * safetensors (or in a cache directory under the OS temp dir when that directory is read-only).
 * Rebuilt when the safetensors file changed (size/mtime stamp in the graph's metadata).
 */
export function ensureMedusaHeadsOnnx(pathIn: string, onProgress?: (msg: string) => void): { onnxFile: string; built: boolean; stamp: string } {
  const { file, dir } = locateMedusaHeads(pathIn);
  const stamp = sourceStamp(file);
  const r = ensureDerivedOnnx({
    source: file,
    dir,
    name: MEDUSA_ONNX_FILE,
    namespace: "spec-decode-medusa",
    stampKey: "spec_decode.medusa_source",
    stamp,
    build: (out) => buildMedusaHeadsOnnx(readMedusaHeads(pathIn), out, { "spec_decode.medusa_source": stamp }),
    onProgress,
  });
  return { ...r, stamp };
}

/**
 * Float64 reference of the heads: `hidden` is row-major [rows, hidden]; returns [heads, rows, vocab].
 */
export function medusaHeadsReference(w: Pick<MedusaHeadsWeights, "heads" | "hiddenSize" | "vocabSize">, hidden: ArrayLike<number>, rows: number): Float64Array {
  const H = w.hiddenSize;
  const V = w.vocabSize;
  const K = w.heads.length;
  const out = new Float64Array(K * rows * V);
  const x = new Float64Array(H);
  const z = new Float64Array(H);
  for (let k = 0; k < K; k++) {
    const head = w.heads[k]!;
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < H; j++) x[j] = hidden[r * H + j]!;
      for (const b of head.blocks) {
        for (let o = 0; o < H; o++) {
          let s = b.bias[o]!;
          for (let j = 0; j < H; j++) s += b.weight[o * H + j]! * x[j]!;
          z[o] = s;
        }
        for (let o = 0; o < H; o++) x[o] = x[o]! + z[o]! / (1 + Math.exp(-z[o]!));
      }
      const base = (k * rows + r) * V;
      for (let v = 0; v < V; v++) {
        let s = 0;
        for (let j = 0; j < H; j++) s += head.lmHead[v * H + j]! * x[j]!;
        out[base + v] = s;
      }
    }
  }
  return out;
}
