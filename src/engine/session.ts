/**
 * onnxruntime sessions: execution provider selection with errors that name the fix, and discovery
 * of the model interface (KV dtype, layers, heads, optional extras) from the session's metadata.
 */
import * as ort from "onnxruntime-node";
import { DeviceError, ModelInterfaceError, ModelLoadError } from "../errors.js";
import { readOnnxMetadataProps } from "./onnx-file.js";
import type { KvDtype } from "./kv-cache.js";
import { layerName, type KvNameTemplates } from "./model-dir.js";

import { availableParallelism } from "node:os";
import { InvalidOptionError } from "../errors.js";

export type Device = "cpu" | "webgpu" | "cuda";

/**
 * The most intra-op threads a session may use: the machine's core count (more only oversubscribes
 * the cores and costs an OS thread each).
 */
export function maxThreads(): number {
  return Math.max(1, availableParallelism());
}

/** Check a thread count (undefined = onnxruntime's choice); `name` is the argument as the user wrote it. */
export function checkThreads(threads: number | undefined, name = "threads"): number | undefined {
  if (threads === undefined) return undefined;
  const max = maxThreads();
  if (!Number.isInteger(threads) || threads < 1 || threads > max) {
    throw new InvalidOptionError(`${name} must be an integer in 1..${max} (this machine's core count; got ${threads}).`);
  }
  return threads;
}
export const DEVICES: readonly Device[] = ["cpu", "webgpu", "cuda"];

export interface SessionOptions {
  device?: Device;
  /** Intra-op threads; 0 or undefined lets onnxruntime choose (one per core). */
  threads?: number;
}

/**
 * onnxruntime's log severity for our sessions: 4 (fatal only) unless SPEC_DECODE_ORT_LOG_LEVEL
 * (0 verbose .. 4 fatal) says otherwise. Errors still reach the caller as exceptions.
 */
export function ortLogLevel(): 0 | 1 | 2 | 3 | 4 {
  const v = Number(process.env.SPEC_DECODE_ORT_LOG_LEVEL ?? 4);
  return (Number.isInteger(v) && v >= 0 && v <= 4 ? v : 4) as 0 | 1 | 2 | 3 | 4;
}
const ORT_ENV_LEVELS = ["verbose", "info", "warning", "error", "fatal"] as const;
try {
  ort.env.logLevel = ORT_ENV_LEVELS[ortLogLevel()];
} catch {
  /* older bindings: session options still apply */
}

export type SpinningPolicy = "off" | "run" | "always";

/**
 * How the intra-op worker threads wait between parallel sections (SPEC_DECODE_INTRA_OP_SPINNING:
 * 0 (the default) = never spin, run = spin inside a Run and park the workers when it returns,
 * 1 = onnxruntime's own behaviour, spin on after a Run). Workers that keep spinning after a Run
 * steal the cores from the next session's run: with a target and a draft alternating on 2 cores
 * (twin pair, 2 threads) draft decoding ran at 64 tok/s with spinning and 103 tok/s without. Never
 * spinning, every node of a forward wakes the sleeping worker. On the 2-core benchmark VM, "run"
 * made 2-thread int4 plain decoding 18-25% faster than "0" and a draft round 17% faster when the
 * cores were ours, but 1.4-2x slower when a third process held one core (spinning workers then fight
 * it for the CPU), so it is opt-in (references/benchmarks.md, quantized weights, third pass).
 */
export function spinningPolicy(env: NodeJS.ProcessEnv = process.env): SpinningPolicy {
  const v = env.SPEC_DECODE_INTRA_OP_SPINNING;
  if (v === "1" || v === "always") return "always";
  if (v === "run") return "run";
  return "off";
}

/** onnxruntime session config entries (the `extra.session` object) for a spinning policy. */
export function spinningConfig(policy: SpinningPolicy = spinningPolicy()): Record<string, unknown> {
  if (policy === "off") return { intra_op: { allow_spinning: "0" } };
  // "run": spin inside a Run, park the workers the moment it returns (session.force_spinning_stop).
  return { intra_op: { allow_spinning: "1" }, ...(policy === "run" ? { force_spinning_stop: "1" } : {}) };
}

export async function createSession(file: string, opts: SessionOptions = {}): Promise<ort.InferenceSession> {
  const device = opts.device ?? "cpu";
  if (!DEVICES.includes(device)) {
    throw new DeviceError(`Unknown device "${device}". Use one of: ${DEVICES.join(", ")}.`);
  }
  checkThreads(opts.threads === 0 ? undefined : opts.threads);
  const providers: string[] = device === "cpu" ? ["cpu"] : [device];
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: providers,
    // onnxruntime's own log lines (red "[E:onnxruntime:...]" on the cuda/webgpu failure paths and on
    // the multi-token probe) would duplicate our errors, which say what to do; see ortLogLevel().
    logSeverityLevel: ortLogLevel(),
    graphOptimizationLevel: "all",
    executionMode: "sequential",
    interOpNumThreads: 1,
    ...(opts.threads && opts.threads > 0 ? { intraOpNumThreads: opts.threads } : {}),
    extra: { session: spinningConfig() },
  };
  try {
    return await ort.InferenceSession.create(file, options);
  } catch (err) {
    const msg = (err as Error).message ?? String(err);
    if (device === "cuda") {
      throw new DeviceError(
        `The CUDA execution provider could not be used (${msg}). This package installs onnxruntime-node without ` +
          `its CUDA binaries (.npmrc sets onnxruntime-node-install=skip). On a machine with an NVIDIA GPU, CUDA 12 ` +
          `and cuDNN 9, run \`npm rebuild onnxruntime-node --onnxruntime-node-install=cuda12\` (or reinstall with ` +
          `ONNXRUNTIME_NODE_INSTALL=cuda12), then retry; or use --device cpu.`,
        { cause: err },
      );
    }
    if (device === "webgpu") {
      throw new DeviceError(
        `The WebGPU execution provider could not be used (${msg}). It needs a GPU with a working Vulkan/Metal/D3D12 ` +
          `driver (software Vulkan is not enough). Use --device cpu, or --device cuda on NVIDIA machines.`,
        { cause: err },
      );
    }
    throw new ModelLoadError(
      `onnxruntime could not load ${file}: ${msg}. Check that the file is a complete ONNX export (external data ` +
        `files such as *.onnx_data must sit beside it) and that it is a decoder-only causal LM.`,
      { cause: err },
    );
  }
}

export interface SessionInterface {
  numLayers: number;
  kvHeads: number;
  headDim: number;
  kvDtype: KvDtype;
  logitsDtype: "float32" | "float16";
  hasAttentionMask: boolean;
  hasPositionIds: boolean;
  hasTreeMask: boolean;
  hasHiddenStates: boolean;
  /** The graph outputs `features` (last layer output before the final norm; EAGLE heads read it). */
  hasFeatures: boolean;
  /** Optimum merged decoders take a boolean `use_cache_branch`. */
  hasUseCacheBranch: boolean;
  /** Vocabulary size from the logits output's metadata when static. */
  vocabSize?: number;
  hiddenSize?: number;
  metadata: Record<string, string>;
}

const KNOWN_INPUTS = new Set(["input_ids", "attention_mask", "position_ids", "tree_attention_mask", "use_cache_branch"]);

function tensorMeta(list: readonly ort.InferenceSession.ValueMetadata[], name: string) {
  const m = list.find((x) => x.name === name);
  return m && m.isTensor ? m : undefined;
}

/** Read the interface of a decoder session; throws ModelInterfaceError when it is not one we can drive. */
export function describeSession(
  session: ort.InferenceSession,
  names: KvNameTemplates,
  fallback: { kvHeads?: number; headDim?: number },
  file: string,
): SessionInterface {
  const inputs = session.inputNames;
  const outputs = session.outputNames;
  if (!inputs.includes("input_ids")) {
    throw new ModelInterfaceError(
      `${file} has no input_ids input (inputs: ${inputs.join(", ")}). Only decoder-only text models exported with ` +
        `input_ids are supported; for a vision-language export, use its text decoder file.`,
    );
  }
  if (!outputs.includes("logits")) {
    throw new ModelInterfaceError(`${file} has no logits output (outputs: ${outputs.join(", ")}). Export the model with its LM head ("text-generation-with-past").`);
  }
  let numLayers = 0;
  while (inputs.includes(layerName(names.pastKey, numLayers))) numLayers++;
  if (numLayers === 0) {
    throw new ModelInterfaceError(
      `${file} has no KV-cache inputs named like ${names.pastKey.replace("%d", "0")}. Export with past key values ` +
        `(Optimum: --task text-generation-with-past) or build the model with \`spec-decode build\`.`,
    );
  }
  for (let i = 0; i < numLayers; i++) {
    for (const n of [layerName(names.pastValue, i)]) {
      if (!inputs.includes(n)) throw new ModelInterfaceError(`${file} lacks input ${n} (layer ${i} of ${numLayers}).`);
    }
    for (const n of [layerName(names.presentKey, i), layerName(names.presentValue, i)]) {
      if (!outputs.includes(n)) throw new ModelInterfaceError(`${file} lacks output ${n} (layer ${i} of ${numLayers}).`);
    }
  }
  const kvNames = new Set<string>();
  for (let i = 0; i < numLayers; i++) {
    kvNames.add(layerName(names.pastKey, i));
    kvNames.add(layerName(names.pastValue, i));
  }
  const unknown = inputs.filter((n) => !KNOWN_INPUTS.has(n) && !kvNames.has(n));
  if (unknown.length > 0) {
    throw new ModelInterfaceError(
      `${file} has inputs this engine does not know how to feed: ${unknown.join(", ")}. Supported: input_ids, ` +
        `attention_mask, position_ids, past key/values, tree_attention_mask, use_cache_branch.`,
    );
  }
  const pk = tensorMeta(session.inputMetadata, layerName(names.pastKey, 0));
  const dtype = pk?.type;
  if (dtype !== undefined && dtype !== "float32" && dtype !== "float16") {
    throw new ModelInterfaceError(`${file}: KV cache dtype ${dtype} is not supported (float32 or float16 only).`);
  }
  const shape = pk?.shape ?? [];
  const kvHeads = typeof shape[1] === "number" ? shape[1] : fallback.kvHeads;
  const headDim = typeof shape[3] === "number" ? shape[3] : fallback.headDim;
  if (!kvHeads || !headDim) {
    throw new ModelInterfaceError(
      `${file}: could not tell the number of KV heads and head size from the graph or config.json ` +
        `(set num_key_value_heads and head_dim in config.json).`,
    );
  }
  const logitsMeta = tensorMeta(session.outputMetadata, "logits");
  const logitsDtype = logitsMeta?.type === "float16" ? "float16" : "float32";
  if (logitsMeta && logitsMeta.type !== "float16" && logitsMeta.type !== "float32") {
    throw new ModelInterfaceError(`${file}: logits dtype ${logitsMeta.type} is not supported (float32 or float16).`);
  }
  const vshape = logitsMeta?.shape ?? [];
  const hidMeta = tensorMeta(session.outputMetadata, "hidden_states");
  const hshape = hidMeta?.shape ?? [];
  return {
    numLayers,
    kvHeads,
    headDim,
    kvDtype: (dtype ?? "float32") as KvDtype,
    logitsDtype,
    hasAttentionMask: inputs.includes("attention_mask"),
    hasPositionIds: inputs.includes("position_ids"),
    hasTreeMask: inputs.includes("tree_attention_mask"),
    hasHiddenStates: outputs.includes("hidden_states"),
    hasFeatures: outputs.includes("features"),
    hasUseCacheBranch: inputs.includes("use_cache_branch"),
    vocabSize: typeof vshape[2] === "number" ? vshape[2] : undefined,
    hiddenSize: typeof hshape[2] === "number" ? hshape[2] : undefined,
    metadata: readMetadata(file),
  };
}

function readMetadata(file: string): Record<string, string> {
  // onnxruntime-node 1.30 does not expose custom metadata props: read them from the file's header.
  try {
    return readOnnxMetadataProps(file);
  } catch {
    return {};
  }
}
