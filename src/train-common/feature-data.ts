/**
 * Training data for the trainers that learn on the target's pre-final-norm features (train-eagle,
 * train-early-exit): the model check and the collection (medusa/data.ts) with a progress log.
 */
import type { CausalLM } from "../engine/causal-lm.js";
import { BuildError, ModelInterfaceError } from "../errors.js";
import { idPromptsFor, readDataFile, selfDistill, textSequences, type SelfDistillDataOptions, type TrainingSequence } from "../medusa/data.js";
import { TextTokenizer } from "../text/index.js";

/** The loaded model has a features output and the checkpoint's vocabulary, or a clear error. */
export function checkFeatureModel(lm: CausalLM, vocabSize: number): void {
  if (!lm.info.hasFeatures) {
    throw new ModelInterfaceError(`${lm.label} has no features output; rebuild the model with \`spec-decode build\` (features are on by default).`);
  }
  if (lm.info.vocabSize !== undefined && lm.info.vocabSize !== vocabSize) {
    throw new BuildError(`The ONNX graph has vocabulary ${lm.info.vocabSize} but the checkpoint has ${vocabSize}; rebuild the model.`);
  }
}

/**
 * Sequences with features: self-distilled (--self-distill N, prompts from --prompt-ids, --data or
 * the model's own BOS + samples) or from text (--data), logging progress every tenth sequence.
 */
export async function featureSequences(
  lm: CausalLM,
  model: string,
  o: SelfDistillDataOptions & { seed?: number },
  log: (line: string) => void,
): Promise<TrainingSequence[]> {
  const tok = lm.dirInfo.hasTokenizer ? await TextTokenizer.load(model) : undefined;
  const progress = (what: string) => (done: number, total: number, tokens: number) => {
    if (done === total || done % Math.max(1, Math.round(total / 10)) === 0) log(`${what}: ${done}/${total} sequences, ${tokens} tokens`);
  };
  if (o.selfDistill !== undefined) {
    const promptIds = await idPromptsFor(lm, tok !== undefined, o, log);
    const entries = o.data && !promptIds ? readDataFile(o.data) : undefined;
    return selfDistill(lm, tok, {
      count: o.selfDistill,
      maxNewTokens: o.maxNewTokens ?? 128,
      prompts: entries,
      promptIds,
      temperature: o.temperature,
      seed: o.seed,
      chat: o.chat,
      collect: "features",
      onProgress: progress("self-distillation"),
    });
  }
  return textSequences(lm, tok, readDataFile(o.data!), { maxLength: o.maxLength ?? 512, collect: "features", onProgress: progress("features") });
}
