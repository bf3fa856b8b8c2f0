/** What a loaded model can do: its interface and which methods can run on it, with reasons. */
import { statSync } from "node:fs";
import type { CausalLM } from "../engine/causal-lm.js";
import { readWeightFormat } from "../engine/weight-format.js";
import { renderMessage, LIBRARY_VOCABULARY, MCP_VOCABULARY, type Vocabulary } from "../vocabulary.js";
import { earlyExitLayersOf, exitAdapterLayersOf } from "./early-exit.js";
import { registeredMethods, type MethodName } from "./methods.js";

export { earlyExitLayersOf, exitAdapterLayersOf };

export interface MethodSupport {
  method: MethodName;
  available: boolean;
  /** Why not, or what it will use. */
  reason: string;
}

export interface ModelDescription {
  dir: string;
  file: string;
  layout: string;
  architecture: string;
  device: string;
  numLayers: number;
  kvHeads: number;
  headDim: number;
  kvDtype: string;
  logitsDtype: string;
  vocabSize?: number;
  maxContext: number | null;
  eosIds: number[];
  /** Bytes of the ONNX file (external data not included). */
  fileBytes: number;
  /** Weight format read from the graph ("float32", "int4 (MatMulNBits, block 32) ..."); "unknown" if unreadable. */
  weightFormat: string;
  /** Weight bytes one decode step reads (0 if unreadable). */
  weightBytesPerToken: number;
  hasTreeMask: boolean;
  hasHiddenStates: boolean;
  /** Exit layers for which an early-exit draft graph exists beside the model. */
  earlyExitLayers: number[];
  /** Exit layers with a trained exit adapter (exit_adapter_{m}.onnx, `spec-decode train-early-exit`): early-exit drafts with it there. */
  earlyExitAdapters: number[];
  multiTokenWithPast: boolean | null;
  methods: MethodSupport[];
  /** Why and how to rebuild this export with our interface (`build --from-onnx`), or null when it would gain nothing. */
  rebuild: string | null;
}

/**
 * The advice to rebuild an export that cannot use speculation fully (null for builder-made graphs
 * and exports that verify several tokens in one forward and have a tree mask).
 */
export function rebuildAdvice(lm: CausalLM, v: Vocabulary = LIBRARY_VOCABULARY): string | null {
  const i = lm.info;
  if (i.metadata["spec_decode.builder"] !== undefined) return null;
  const how =
    `Rebuild it from its own weights with our interface: ${v.rebuildFromOnnx(i.dir)}` +
    (v.surface === "library" ? ` (MCP: ${MCP_VOCABULARY.rebuildFromOnnx(i.dir)})` : "") +
    `; MatMulNBits weights are kept as they are and the export is not modified.`;
  if (i.multiTokenWithPast === false) {
    return (
      `This export cannot run several new tokens on a filled KV cache (a multi-token forward with a past failed inside its graph, ` +
      `e.g. the mask-reformat subgraph of onnxruntime-genai exports), so every method verifies one token per forward: exact, but no faster than plain decoding. ` +
      how
    );
  }
  if (!i.hasTreeMask) return `This export has no tree_attention_mask input, so lookahead and Medusa verify chains only (no token trees). ${how}`;
  return null;
}

/** The weight format of a loaded model's graph, read once per loaded model (the file does not change under a session). */
const weightFormats = new WeakMap<CausalLM, { weightFormat: string; weightBytesPerToken: number; weightBytes: number }>();

export function weightFormatOf(lm: CausalLM): { weightFormat: string; weightBytesPerToken: number; weightBytes: number } {
  let w = weightFormats.get(lm);
  if (!w) {
    try {
      const r = readWeightFormat(lm.info.file);
      w = { weightFormat: r.format, weightBytesPerToken: r.bytesPerToken, weightBytes: r.totalBytes };
    } catch {
      w = { weightFormat: "unknown", weightBytesPerToken: 0, weightBytes: 0 }; // advisory: never fail a description over it
    }
    weightFormats.set(lm, w);
  }
  return w;
}

/** Describe a loaded model; reasons and summaries in the words of `v` (CLI flags, MCP arguments). */
export function describeModel(lm: CausalLM, v: Vocabulary = LIBRARY_VOCABULARY): ModelDescription {
  const i = lm.info;
  const methods: MethodSupport[] = registeredMethods().map((def) => {
    const why = def.unavailableReason({ target: lm });
    return { method: def.name as MethodName, available: why === undefined, reason: renderMessage(why ?? def.summary, v) };
  });
  return {
    dir: i.dir,
    file: i.file,
    layout: i.layout,
    architecture: i.architecture,
    device: i.device,
    numLayers: i.numLayers,
    kvHeads: i.kvHeads,
    headDim: i.headDim,
    kvDtype: i.kvDtype,
    logitsDtype: i.logitsDtype,
    vocabSize: i.vocabSize,
    maxContext: Number.isFinite(i.maxContext) ? i.maxContext : null,
    eosIds: i.eosIds,
    fileBytes: statSync(i.file).size,
    weightFormat: weightFormatOf(lm).weightFormat,
    weightBytesPerToken: weightFormatOf(lm).weightBytesPerToken,
    hasTreeMask: i.hasTreeMask,
    hasHiddenStates: i.hasHiddenStates,
    earlyExitLayers: earlyExitLayersOf(lm),
    earlyExitAdapters: exitAdapterLayersOf(lm),
    multiTokenWithPast: i.multiTokenWithPast ?? null,
    methods,
    rebuild: rebuildAdvice(lm, v),
  };
}
