/**
 * The `spec-decode train-medusa` job: read the base's LM head from its checkpoint, make the data
 * (data.ts: self-distillation or text, with the base's hidden states), train the heads
 * (heads-trainer.ts), choose the candidate tree from the held-out per-rank accuracies, and write
 * the heads with their config.json (builder/medusa-heads.ts).
 */
import { join, relative, resolve } from "node:path";
import { openCheckpoint } from "../builder/checkpoint.js";
import { writeMedusaHeads } from "../builder/medusa-heads.js";
import { DEFAULT_TREE_NODES, sparseTree } from "../decoding/medusa-tree.js";
import { CausalLM } from "../engine/causal-lm.js";
import { BuildError, ModelInterfaceError } from "../errors.js";
import { TextTokenizer } from "../text/index.js";
import {
  checkTrainingDataOptions,
  idPromptsFor,
  readDataFile,
  selfDistill,
  textSequences,
  trainingDataSummary,
  type SelfDistillDataOptions,
  type TrainingDataSummary,
  type TrainingSequence,
} from "./data.js";
import { DEFAULT_HEADS, trainHeads, type HeadReport, type HeadsTrainingOptions, type HeadsTrainingResult } from "./heads-trainer.js";

/** The base model's LM head [vocab, hidden] from its safetensors checkpoint. */
export function readBaseLmHead(modelDir: string): { data: Float32Array; vocab: number; hidden: number } {
  const { cfg, weights, names } = openCheckpoint(
    modelDir,
    "Training Medusa heads needs the base model's safetensors checkpoint (for its LM head) and config.json",
  );
  const t = weights.get(names.lmHead);
  if (t.dims.length !== 2 || t.dims[0] !== cfg.vocabSize || t.dims[1] !== cfg.hiddenSize) {
    throw new BuildError(`${names.lmHead} has shape [${t.dims.join(", ")}], expected [${cfg.vocabSize}, ${cfg.hiddenSize}].`);
  }
  return { data: t.data, vocab: cfg.vocabSize, hidden: cfg.hiddenSize };
}

export interface TrainMedusaOptions extends Omit<HeadsTrainingOptions, "heads">, SelfDistillDataOptions {
  model: string;
  /** Output directory (default: <model>/medusa). */
  out?: string;
  heads?: number;
  /** Nodes of the candidate tree written into config.json (default DEFAULT_TREE_NODES). */
  treeNodes?: number;
}

export interface TrainMedusaReport extends Omit<HeadsTrainingResult["report"], "perHead"> {
  out: string;
  files: string[];
  model: string;
  data: TrainingDataSummary;
  perHead: HeadReport[];
  /** The candidate tree written into config.json (medusa_choices). */
  tree: number[][];
  /** 1 + sum over tree nodes of P(node's path all right), from the held-out per-rank accuracies. */
  estimatedMeanAcceptedLength: number;
}

/** Estimated mean accepted length (bonus included) of a tree under independent per-rank accuracies. */
export function estimateAcceptedLength(tree: number[][], rankAccuracy: number[][]): number {
  let sum = 1;
  for (const p of tree) sum += p.reduce((v, r, d) => v * (rankAccuracy[d]?.[r] ?? 0), 1);
  return sum;
}

/** The \`spec-decode train-medusa\` job: data, training, files, report. */
export async function trainMedusa(o: TrainMedusaOptions): Promise<TrainMedusaReport> {
  const model = resolve(o.model);
  const K = o.heads ?? DEFAULT_HEADS;
  const log = o.onLog ?? (() => {});
  checkTrainingDataOptions(o, "base");
  const lmHead = readBaseLmHead(model);
  const lm = await CausalLM.load(model, { variant: o.variant, device: o.device, threads: o.threads });
  try {
    if (!lm.info.hasHiddenStates) {
      throw new ModelInterfaceError(`${lm.label} has no hidden_states output; build the model with \`spec-decode build\` first.`);
    }
    if (lm.info.vocabSize !== undefined && lm.info.vocabSize !== lmHead.vocab) {
      throw new BuildError(`The ONNX graph has vocabulary ${lm.info.vocabSize} but the checkpoint's LM head has ${lmHead.vocab}; rebuild the model.`);
    }
    const tok = lm.dirInfo.hasTokenizer ? await TextTokenizer.load(model) : undefined;
    const entries = o.data ? readDataFile(o.data) : undefined;
    const t0 = performance.now();
    let seqs: TrainingSequence[];
    const progress = (what: string) => (done: number, total: number, tokens: number) => {
      if (done === total || done % Math.max(1, Math.round(total / 10)) === 0) log(`${what}: ${done}/${total} sequences, ${tokens} tokens`);
    };
    if (o.selfDistill !== undefined) {
      const distinct = entries?.length ?? 320;
      if ((o.temperature ?? 0) === 0 && o.selfDistill > distinct) {
        log(`note: ${o.selfDistill} greedy sequences from ${distinct} distinct prompts repeat; use --temperature 0.7 for variety`);
      }
      const promptIds = await idPromptsFor(lm, tok !== undefined, o, log);
      seqs = await selfDistill(lm, tok, {
        count: o.selfDistill,
        promptIds,
        maxNewTokens: o.maxNewTokens ?? 128,
        prompts: entries,
        temperature: o.temperature,
        seed: o.seed,
        chat: o.chat,
        onProgress: progress("self-distillation"),
      });
    } else {
      seqs = await textSequences(lm, tok, entries!, { maxLength: o.maxLength ?? 512, onProgress: progress("hidden states") });
    }
    const dataSeconds = (performance.now() - t0) / 1000;
    const tokens = seqs.reduce((s, q) => s + q.tokens.length, 0);
    // The build whose hidden states the heads learn (the one they are meant to run on).
    const build = relative(model, lm.dirInfo.modelFile);
    const H = lmHead.hidden;
    if (seqs[0] && seqs[0].hidden.length !== seqs[0].tokens.length * H) {
      throw new BuildError(`The graph's hidden states do not have the checkpoint's hidden size ${H}; rebuild the model.`);
    }
    const { heads, report } = await trainHeads(seqs, lmHead.data, lmHead.vocab, { ...o, heads: K, onLog: log });
    const treeNodes = o.treeNodes ?? DEFAULT_TREE_NODES;
    const tree = sparseTree(treeNodes, report.rankAccuracy.map((r) => r.slice(0, 8)), K);
    const out = resolve(o.out ?? join(model, "medusa"));
    const estimated = Math.round(estimateAcceptedLength(tree, report.rankAccuracy) * 1000) / 1000;
    const files = writeMedusaHeads(out, heads, {
      baseModel: model,
      choices: tree,
      rankAccuracy: report.rankAccuracy,
      extra: {
        trained_by: "spec-decode train-medusa",
        target_build: build,
        train_lm_head: report.trainLmHead,
        eval_top1: report.perHead.map((h) => h.evalTop1),
        kept_epoch: report.keptEpoch,
        data: o.selfDistill !== undefined ? `self-distill ${o.selfDistill}` : `text ${o.data}`,
      },
    });
    log(`wrote ${files.join(", ")}`);
    return {
      ...report,
      out,
      files,
      model,
      data: trainingDataSummary(o, seqs.length, tokens, dataSeconds, build),
      tree,
      estimatedMeanAcceptedLength: estimated,
    };
  } finally {
    await lm.dispose();
  }
}
