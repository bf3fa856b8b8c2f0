/**
 * Medusa heads as a loaded model: the ONNX session over `medusa_heads.onnx` (built from the
 * Medusa-format safetensors on first use, builder/medusa-heads.ts), one row of logits per head per
 * call, and the check that heads fit the base model. The proposer that uses them is medusa.ts.
 */
import * as ort from "onnxruntime-node";
import { ensureMedusaHeadsOnnx, inspectMedusaHeads, type MedusaHeadsConfig } from "../builder/medusa-heads.js";
import type { CausalLM } from "../engine/causal-lm.js";
import { createSession, type Device } from "../engine/session.js";
import { VocabMismatchError } from "../errors.js";
import { SidecarModel } from "./sidecar-model.js";

/** Loaded heads: the ONNX session plus what the proposer needs to know about them. */
export class MedusaHeadsModel extends SidecarModel<MedusaHeadsConfig> {
  get numHeads(): number {
    return this.config.numHeads;
  }

  /** Logits of every head for one hidden row: [heads, vocab], row-major. */
  async run(hiddenRow: Float32Array): Promise<Float32Array> {
    const H = this.config.hiddenSize;
    if (hiddenRow.length !== H) {
      throw new VocabMismatchError(`The Medusa heads take hidden states of size ${H} but got a row of ${hiddenRow.length}.`);
    }
    const out = await this.timedRun({ hidden_states: new ort.Tensor("float32", hiddenRow, [1, 1, H]) });
    return out.medusa_logits!.data as Float32Array;
  }
}

/**
 * Load heads from a directory (medusa_lm_head.safetensors + config.json) or the safetensors file,
 * building `medusa_heads.onnx` on first use. The caller owns the result (dispose() it); the
 * method's loadResources caches it in the ModelStore, which frees it on unload/dispose.
 */
export async function loadMedusaHeads(path: string, opts: { device?: Device; threads?: number; onProgress?: (m: string) => void } = {}): Promise<MedusaHeadsModel> {
  const { onnxFile } = ensureMedusaHeadsOnnx(path, opts.onProgress);
  const { file, ...config } = inspectMedusaHeads(path);
  const session = await createSession(onnxFile, { device: opts.device, threads: headsThreads(config, opts.threads) });
  return new MedusaHeadsModel(session, config, file, onnxFile);
}

/**
 * Small heads run on one thread: a second intra-op pool next to the target's only competes with
 * it for the cores (measured on the demo fixture: heads run 2.8 -> 0.6 ms, decoding 2.6x faster).
 * Heads with big LM heads (real vocabularies) keep the caller's setting.
 */
function headsThreads(config: MedusaHeadsConfig, threads: number | undefined): number | undefined {
  const small = config.numHeads * config.vocabSize * config.hiddenSize <= 16_000_000;
  return threads ?? (small ? 1 : undefined);
}

/** The base model's hidden size (graph output metadata, else config.json). */
export function baseHiddenSize(target: CausalLM): number | undefined {
  if (target.info.hiddenSize) return target.info.hiddenSize;
  const cfg = (target.dirInfo.config.text_config ?? target.dirInfo.config) as Record<string, unknown>;
  return typeof cfg.hidden_size === "number" ? cfg.hidden_size : undefined;
}

/** Throw VocabMismatchError when heads and base disagree on hidden size or vocabulary. */
export function checkHeadsAgainstBase(heads: MedusaHeadsConfig & { file?: string }, target: CausalLM): void {
  const what = heads.file ? `The Medusa heads in ${heads.file}` : "The Medusa heads";
  const hidden = baseHiddenSize(target);
  if (hidden !== undefined && hidden !== heads.hiddenSize) {
    throw new VocabMismatchError(
      (v) =>
        `${what} take hidden states of size ${heads.hiddenSize}, but ${target.label} has hidden size ${hidden}. ` +
        `Heads only work on the base model they were trained for; train heads for this model with ${v.train("medusa", target.info.dir)}.`,
    );
  }
  const vocab = target.info.vocabSize;
  if (vocab !== undefined && vocab !== heads.vocabSize) {
    throw new VocabMismatchError(
      (v) =>
        `${what} predict ${heads.vocabSize} tokens, but ${target.label} has a vocabulary of ${vocab}. ` +
        `Heads only work on the base model they were trained for; train heads for this model with ${v.train("medusa", target.info.dir)}.`,
    );
  }
}

