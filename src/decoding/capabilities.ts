/** What a loaded model can do: its interface and which methods can run on it, with reasons. */
import { readdirSync, statSync } from "node:fs";
import { dirname } from "node:path";
import type { CausalLM } from "../engine/causal-lm.js";
import { registeredMethods, type MethodName } from "./methods.js";

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
  hasTreeMask: boolean;
  hasHiddenStates: boolean;
  /** Exit layers for which an early-exit draft graph exists beside the model. */
  earlyExitLayers: number[];
  multiTokenWithPast: boolean | null;
  methods: MethodSupport[];
}

export function earlyExitLayersOf(lm: CausalLM): number[] {
  const dir = dirname(lm.info.file);
  const out: number[] = [];
  for (const f of readdirSync(dir)) {
    const m = /^early_exit_(\d+)\.onnx$/.exec(f);
    if (m) out.push(Number(m[1]));
  }
  return out.sort((a, b) => a - b);
}

export function describeModel(lm: CausalLM): ModelDescription {
  const i = lm.info;
  const methods: MethodSupport[] = registeredMethods().map((def) => {
    const why = def.unavailableReason({ target: lm });
    return { method: def.name, available: why === undefined, reason: why ?? def.summary };
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
    hasTreeMask: i.hasTreeMask,
    hasHiddenStates: i.hasHiddenStates,
    earlyExitLayers: earlyExitLayersOf(lm),
    multiTokenWithPast: i.multiTokenWithPast ?? null,
    methods,
  };
}
