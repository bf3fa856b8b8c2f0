/**
 * Train an EAGLE head locally (the target frozen), on the target's own features.
 *
 *  1. Data (medusa/data.ts, collecting features): self-distilled sequences (the target's own
 *     generations; in token-id space from --prompt-ids or BOS + sampled tokens for models without a
 *     tokenizer) or text, with the target's pre-final-norm features f_t at every position.
 *  2. Rows: position t of a sequence gives the row (f_t, x_{t+1}) whose output should be f_{t+1},
 *     and whose logits should match the target's own next-token distribution there
 *     softmax(lm_head(norm(f_{t+1}))) (soft cross-entropy: the target's outputs, not the sampled
 *     token). Loss = SmoothL1(feature) + ceWeight * CE, as in EAGLE (ceWeight 0.1 there).
 *  3. Training-time test (as in EAGLE-3): the head is unrolled `unroll` steps. Step u feeds each
 *     row the head's own predicted feature from step u-1 (the true token), at position t+u,
 *     attending to the committed rows <= t and its own earlier steps, exactly the attention pattern
 *     of a drafted chain at decode time. So depth >= 2 is trained on the inputs it will see.
 *  4. Minibatches of whole sequences (block-diagonal masks), Adam with warmup + cosine decay and
 *     global-norm clipping. The single-step phase runs on onnxruntime by default (train-graph.ts's
 *     hand-written backward, train-ort.ts's JS Adam: the same update), the unrolled phase on
 *     TensorFlow.js (model.ts says why).
 *  5. The best held-out weights are kept (train-common/best-checkpoint.ts): the starting head, every
 *     full epoch's end when evaluation runs on onnxruntime, and the last weights compete on the
 *     held-out greedy chain's accepted length.
 *  6. Held-out top-1 per draft depth: greedy chain drafting from every position of the held-out
 *     sequences (the head's own tokens and features), conditional on the earlier depths being
 *     right, against the sequence's next tokens (the target's own greedy tokens when
 *     self-distilling at temperature 0, the default).
 */
import { resolve, join, relative } from "node:path";
import * as tf from "@tensorflow/tfjs";
import {
  checkHeadAgainstTarget,
  draftVocabSize,
  eagleWeightsFromTargetLayer,
  eagleConfigFor,
  readEagleHead,
  readEagleTargetParts,
  writeEagleHead,
  type EagleHeadConfig,
  type EagleHeadWeights,
  type EagleTargetParts,
} from "../builder/eagle-head.js";
import { CausalLM } from "../engine/causal-lm.js";
import { InvalidOptionError } from "../errors.js";
import { checkTrainingDataOptions, trainingDataSummary, type SelfDistillDataOptions, type TrainingDataSummary, type TrainingSequence } from "../medusa/data.js";
import {
  disposeFrozen,
  headForward,
  headLogits,
  initParams,
  makeFrozen,
  paramsFromWeights,
  paramList,
  toTargetIds,
  weightsFromParams,
  type Frozen,
  type HeadParams,
} from "./model.js";
import { tfReady } from "../train-common/tf-layers.js";
import { checkFeatureModel, featureSequences } from "../train-common/feature-data.js";
import { Rng } from "../sampling/index.js";
import { EagleOrtEvaluator, EagleOrtTrainer, singleStepFeeds } from "./train-ort.js";
import { BestCheckpoint, type CheckpointScore } from "../train-common/best-checkpoint.js";
import { adam, type TrainRunReport, checkLrAndWindow, heldOutSplit, packer, pct, round4, trainLoop } from "../train-common/loop.js";

export interface EagleTrainingOptions {
  /** Start from these weights (continue training a head) instead of a fresh initialisation. */
  init?: EagleHeadWeights;
  epochs?: number;
  /** Rows (positions) per minibatch, about; training windows are packed up to it. Default 256. */
  batchRows?: number;
  /**
   * Training window (rows): sequences are cut into windows of this many positions, each attending
   * only within itself. Keeps the attention cost per row small on the JS backend. Default 48.
   * Held-out evaluation always runs on whole sequences.
   */
  window?: number;
  lr?: number;
  /** Unrolled draft steps trained (training-time test). Default 3. */
  unroll?: number;
  /**
   * Train single-step (unroll 1, several times faster per position) for this fraction of the run
   * (of its steps, or of --max-seconds when that ends it sooner), then unrolled. Depth 1 limits
   * acceptance and learns as well single-step; deeper depths need the unrolled phase. Default 0.
   */
  unrollAfter?: number;
  /** Weight of the token cross-entropy against the feature regression. Default 0.5. */
  ceWeight?: number;
  /**
   * Reduced draft vocabulary (EAGLE-3's d2t): the N most frequent next tokens of the training split
   * (the generated tokens of self-distilled sequences); the head's logits and cross-entropy cover
   * only those (the target's LM head rows, frozen). "auto" (default): a quarter of the vocabulary
   * when it has at least DRAFT_VOCAB_AUTO_MIN tokens and they cover at least
   * DRAFT_VOCAB_AUTO_MIN_COVERAGE of the held-out next tokens, else off; "off" or 0: the whole vocabulary;
   * ids: this exact draft vocabulary (ascending). At most the number of distinct tokens in the data.
   */
  draftVocab?: number | "auto" | "off" | Int32Array;
  /**
   * Uniform noise U(-a, a) added to the committed (true) input features during training, as EAGLE
   * does, so the head does not rely on features being exact (at decode time deeper drafts read its
   * own predicted features). Default 0 (off). Held-out evaluation never adds noise.
   */
  featureNoise?: number;
  /**
   * End with the best held-out weights (default true): candidates are the starting weights, the
   * end of every full epoch when the evaluation runs on onnxruntime, and the last weights; the
   * held-out greedy chain's accepted length decides, then depth-1 top-1. false keeps the last.
   */
  keepBest?: boolean;
  /** Depths evaluated on the held-out split. Default 6. */
  evalDepth?: number;
  /** Fraction of the sequences held out for evaluation (default 0.1, at most MAX_EVAL_SEQUENCES of them). */
  evalFraction?: number;
  seed?: number;
  maxSteps?: number;
  /** Stop training after this many seconds (checked between steps). */
  maxSeconds?: number;
  /**
   * What runs the single-step phase (unroll 1, or the first unrollAfter of the run): "onnx"
   * (default) the hand-written training graph of train-graph.ts on onnxruntime with `threads`
   * threads, or "tfjs" (model.ts's autodiff, single-threaded). The unrolled phase and the held-out
   * evaluation always run on tfjs.
   */
  trainer?: "onnx" | "tfjs";
  /** onnxruntime threads of the single-step phase (default: onnxruntime's choice). */
  threads?: number;
  onLog?: (line: string) => void;
  logEvery?: number;
}

export interface EagleTrainingReport extends TrainRunReport {
  hiddenSize: number;
  vocabSize: number;
  /** Size of the draft vocabulary the head was trained over (= vocabSize without one). */
  draftVocabSize: number;
  /** Fraction of the held-out (generated) next tokens inside the draft vocabulary (1 without one): a bound on depth-1 top-1. */
  draftVocabCoverage: number;
  unroll: number;
  unrollAfter: number;
  /** What ran the single-step phase (see EagleTrainingOptions.trainer). */
  trainer: "onnx" | "tfjs";
  lr: number;
  ceWeight: number;
  featureNoise: number;
  trainSeconds: number;
  positionsPerSecond: number;
  chance: number;
  /** Held-out top-1 per draft depth before training (depth d: token d after cur, given 1..d-1 right). */
  initialDepthTop1: number[];
  depthTop1: number[];
  /**
   * The same top-1 per depth on (up to MAX_EVAL_SEQUENCES of) the training sequences after
   * training: far above depthTop1 means the head memorises its data (more data helps), close to
   * it means the head's capacity or the training bounds it.
   */
  trainDepthTop1: number[];
  /** Unconditional: fraction of positions whose chain is right through depth d. */
  chainThrough: number[];
  /** 1 + sum of chainThrough: the mean accepted length of a greedy chain of evalDepth tokens. */
  chainAcceptedLength: number;
  /** Whose weights were kept (keepBest): 0 the starting head, e the end of epoch e (the last epoch run: the last weights). */
  keptEpoch: number;
  /** Held-out greedy chain accepted length at each candidate epoch end and at the end (keepBest). */
  epochChainAcceptedLength: number[];
}

/** Most held-out sequences evaluated (the rest of the data trains). */
export const MAX_EVAL_SEQUENCES = 24;
/** `draftVocab: "auto"` reduces vocabularies of at least this many tokens (to a quarter of them). */
export const DRAFT_VOCAB_AUTO_MIN = 8192;
/** ... when the chosen tokens cover at least this fraction of the held-out next tokens. */
export const DRAFT_VOCAB_AUTO_MIN_COVERAGE = 0.95;

/** The draft vocabulary size "auto" picks for a vocabulary of V tokens (0 = none). */
export function autoDraftVocab(V: number): number {
  return V >= DRAFT_VOCAB_AUTO_MIN ? Math.round(V / 4) : 0;
}

/**
 * The N most frequent next tokens of `seqs` (their generated part, from firstTarget; ties to the
 * lower id), ascending: at most the number of distinct tokens seen.
 */
export function chooseDraftVocab(seqs: { tokens: number[]; firstTarget?: number }[], N: number, V: number): Int32Array {
  const counts = new Map<number, number>();
  for (const s of seqs) for (let i = Math.max(1, s.firstTarget ?? 1); i < s.tokens.length; i++) counts.set(s.tokens[i]!, (counts.get(s.tokens[i]!) ?? 0) + 1);
  const ranked = [...counts.entries()].filter(([t]) => t >= 0 && t < V).sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  return Int32Array.from(ranked.slice(0, N).map(([t]) => t)).sort();
}

/**
 * The draft vocabulary a training run uses (ids undefined: the whole vocabulary) and the fraction
 * of the held-out next tokens it covers (1 without one). A count picks that
 * many of the training split's most frequent next tokens (fewer when the data has fewer distinct
 * ones). "auto" does the same with autoDraftVocab(V) tokens, but keeps the whole vocabulary when
 * they cover less than DRAFT_VOCAB_AUTO_MIN_COVERAGE of the held-out next tokens: a small or
 * narrow data set is a poor sample of what the model will generate, and every token outside the
 * subset is a depth-1 miss.
 */
export function resolveDraftVocab(
  dv: number | "auto" | "off" | Int32Array,
  trainSeqs: { tokens: number[]; firstTarget?: number }[],
  held: { tokens: number[]; firstTarget?: number }[],
  V: number,
  log: (line: string) => void = () => {},
): { ids: Int32Array | undefined; coverage: number } {
  if (dv instanceof Int32Array) return { ids: dv, coverage: coverage(held, dv) };
  const want = dv === "off" ? 0 : dv === "auto" ? autoDraftVocab(V) : dv;
  if (!Number.isInteger(want) || want < 0 || want > V) throw new InvalidOptionError(`draft-vocab must be auto, off, or an integer from 1 to the vocabulary size ${V} (got ${dv}).`);
  if (want === 0 || want >= V) return { ids: undefined, coverage: 1 };
  const ids = chooseDraftVocab(trainSeqs, want, V);
  if (ids.length < want) log(`draft vocabulary: only ${ids.length} distinct next tokens in the training data (asked for ${want})`);
  const cov = coverage(held, ids);
  if (dv === "auto" && cov < DRAFT_VOCAB_AUTO_MIN_COVERAGE) {
    log(
      `draft vocabulary: auto keeps the whole vocabulary: the ${ids.length} most frequent next tokens of the training split cover only ` +
        `${pct(cov)} of the held-out next tokens (< ${pct(DRAFT_VOCAB_AUTO_MIN_COVERAGE)}); more data, or --draft-vocab N to force it`,
    );
    return { ids: undefined, coverage: 1 };
  }
  return { ids, coverage: cov };
}

/** Fraction of the generated tokens of `seqs` inside `ids`. */
function coverage(seqs: { tokens: number[]; firstTarget?: number }[], ids: Int32Array | undefined): number {
  if (!ids) return 1;
  const set = new Set(ids);
  let n = 0;
  let hit = 0;
  for (const s of seqs)
    for (let i = Math.max(1, s.firstTarget ?? 1); i < s.tokens.length; i++) {
      n++;
      if (set.has(s.tokens[i]!)) hit++;
    }
  return n === 0 ? 1 : hit / n;
}

export interface Seq {
  tokens: number[];
  features: Float32Array;
  /** Absolute position of tokens[0] (training windows of a longer sequence). */
  offset?: number;
}

/** Cut a sequence into windows of `w` rows (w + 1 tokens; consecutive windows share one token). */
export function windows(s: Seq, w: number, H: number): Seq[] {
  const out: Seq[] = [];
  for (let a = 0; a + 2 < s.tokens.length; a += w) {
    const b = Math.min(s.tokens.length, a + w + 1);
    out.push({ tokens: s.tokens.slice(a, b), features: s.features.subarray(a * H, b * H), offset: a });
  }
  return out;
}

/** Block-diagonal masks and indices for a minibatch of sequences, unrolled U steps. */
interface Batch {
  /** rows of step 0 (and every step): one per (sequence, t), t = 0..L-2 */
  n: number;
  tokensByStep: Int32Array[]; // [U][n]: token fed at step u (x_{t+u+1}, clamped)
  positionsByStep: Int32Array[]; // [U][n]: t + u
  valid: Float32Array[]; // [U][n]: 1 when f_{t+u+1} exists
  targetRowByStep: Int32Array[]; // [U][n]: index into the batch's feature rows of f_{t+u+1}
  featRows: Float32Array; // [n0, H]: all feature rows of the batch's sequences
  inputRows: Int32Array; // [n]: index of f_t in featRows (step 0 input)
  masks: Uint8Array[]; // [U]: [n, (u+1) n]
  /** sequence id of each row, and t */
  seqOf: Int32Array;
  tOf: Int32Array;
}

function makeBatch(seqs: Seq[], H: number, U: number): Batch {
  let n = 0;
  let rows = 0;
  for (const s of seqs) {
    n += s.tokens.length - 1;
    rows += s.tokens.length;
  }
  const featRows = new Float32Array(rows * H);
  const seqOf = new Int32Array(n);
  const tOf = new Int32Array(n);
  const inputRows = new Int32Array(n);
  const rowBase: number[] = [];
  let r = 0;
  let i = 0;
  seqs.forEach((s, si) => {
    featRows.set(s.features, r * H);
    rowBase.push(r);
    for (let t = 0; t + 1 < s.tokens.length; t++) {
      seqOf[i] = si;
      tOf[i] = t;
      inputRows[i] = r + t;
      i++;
    }
    r += s.tokens.length;
  });
  const tokensByStep: Int32Array[] = [];
  const positionsByStep: Int32Array[] = [];
  const valid: Float32Array[] = [];
  const targetRowByStep: Int32Array[] = [];
  const masks: Uint8Array[] = [];
  for (let u = 0; u < U; u++) {
    const tok = new Int32Array(n);
    const pos = new Int32Array(n);
    const val = new Float32Array(n);
    const tr = new Int32Array(n);
    const cols = (u + 1) * n;
    const mask = new Uint8Array(n * cols);
    for (let j = 0; j < n; j++) {
      const s = seqs[seqOf[j]!]!;
      const L = s.tokens.length;
      const t = tOf[j]!;
      const nxt = Math.min(t + u + 1, L - 1);
      tok[j] = s.tokens[nxt]!;
      pos[j] = (s.offset ?? 0) + t + u;
      val[j] = t + u + 1 <= L - 1 ? 1 : 0;
      tr[j] = rowBase[seqOf[j]!]! + nxt;
      // committed rows of the same sequence with t' <= t (step 0 block)
      const first = j - t;
      mask.fill(1, j * cols + first, j * cols + j + 1);
      // its own earlier steps (and itself)
      for (let w = 1; w <= u; w++) mask[j * cols + w * n + j] = 1;
    }
    tokensByStep.push(tok);
    positionsByStep.push(pos);
    valid.push(val);
    targetRowByStep.push(tr);
    masks.push(mask);
  }
  return { n, tokensByStep, positionsByStep, valid, targetRowByStep, featRows, inputRows, masks, seqOf, tOf };
}

/** Unrolled forward over a batch; returns per-step outputs (caller disposes via tidy). */
function unrolled(
  config: EagleHeadConfig,
  p: HeadParams,
  fz: Frozen,
  b: Batch,
  U: number,
  tokensOverride?: (u: number, prevLogits: tf.Tensor2D) => tf.Tensor1D,
  noise?: { amplitude: number; seed: number },
) {
  const H = config.hiddenSize;
  const feats = tf.tensor2d(b.featRows, [b.featRows.length / H, H]);
  let input = tf.gather(feats, tf.tensor1d(b.inputRows, "int32")) as tf.Tensor2D;
  // Only the inputs are perturbed: the regression and CE targets stay the true features.
  if (noise && noise.amplitude > 0) input = input.add(tf.randomUniform(input.shape, -noise.amplitude, noise.amplitude, "float32", noise.seed));
  const past: { k: tf.Tensor3D; v: tf.Tensor3D }[] = [];
  const outs: tf.Tensor2D[] = [];
  let prevLogits: tf.Tensor2D | undefined;
  for (let u = 0; u < U; u++) {
    const toks = tokensOverride && u > 0 ? tokensOverride(u, prevLogits!) : tf.tensor1d(b.tokensByStep[u]!, "int32");
    const mask = tf.tensor2d(b.masks[u]!, [b.n, (u + 1) * b.n], "bool");
    const r = headForward(config, p, fz, toks, input, tf.tensor1d(b.positionsByStep[u]!, "int32"), mask, past);
    past.push({ k: r.k, v: r.v });
    outs.push(r.out);
    if (tokensOverride) prevLogits = headLogits(config, fz, r.out);
    input = r.out;
  }
  return { feats, outs };
}

function lossOf(config: EagleHeadConfig, p: HeadParams, fz: Frozen, b: Batch, U: number, ceWeight: number, noise?: { amplitude: number; seed: number }): tf.Scalar {
  const { feats, outs } = unrolled(config, p, fz, b, U, undefined, noise);
  const losses: tf.Scalar[] = [];
  for (let u = 0; u < U; u++) {
    const valid = tf.tensor1d(b.valid[u]!);
    const count = Math.max(1, b.valid[u]!.reduce((a, x) => a + x, 0));
    const target = tf.gather(feats, tf.tensor1d(b.targetRowByStep[u]!, "int32")) as tf.Tensor2D;
    const diff = outs[u]!.sub(target).abs();
    const m = tf.minimum(diff, 1); // SmoothL1 (beta 1) = 0.5 min(d,1)^2 + (d - min(d,1))
    const smoothL1 = m.square().mul(0.5).add(diff.sub(m)).mean(-1);
    const tprobs = tf.softmax(headLogits(config, fz, target));
    const logq = tf.logSoftmax(headLogits(config, fz, outs[u]!));
    const ce = tprobs.mul(logq).sum(-1).neg();
    losses.push(smoothL1.add(ce.mul(ceWeight)).mul(valid).sum().div(count) as tf.Scalar);
  }
  return tf.addN(losses).div(U) as tf.Scalar;
}

/**
 * The training loss of a minibatch of windows (one batch per window: attention stays within it),
 * the mean over its windows; `noise(j)` the feature noise of window j.
 */
export function packLoss(
  config: EagleHeadConfig,
  p: HeadParams,
  fz: Frozen,
  wins: Seq[],
  U: number,
  ceWeight: number,
  noise: (j: number) => { amplitude: number; seed: number } | undefined = () => undefined,
): tf.Scalar {
  const H = config.hiddenSize;
  return tf.addN(wins.map((w, j) => lossOf(config, p, fz, makeBatch([w], H, U), U, ceWeight, noise(j)))).div(wins.length) as tf.Scalar;
}

/** preds[s][u][t]: the target id a greedy chain drafts at depth u + 1 from row t of sequence s. */
type Predict = (seqs: Seq[]) => Promise<Int32Array[][]>;

/** Greedy chains drafted on tfjs (train-ort.ts's EagleOrtEvaluator drafts the same on onnxruntime). */
export function tfPredict(config: EagleHeadConfig, p: HeadParams, fz: Frozen, depth: number): Predict {
  return async (seqs) =>
    seqs.map((s) => {
      const b = makeBatch([s], config.hiddenSize, depth);
      return tf.tidy(() => {
        const out: Int32Array[] = [];
        // Step 0 is teacher-forced by construction (committed rows); later steps feed the head's own
        // argmax token of the previous step.
        // (Draft ids map to target ids: the token fed on and the one compared.)
        unrolled(config, p, fz, b, depth, (u, prev) => {
          const a = toTargetIds(fz, prev.argMax(-1) as tf.Tensor1D);
          out.push(a.dataSync() as Int32Array);
          return a;
        }).outs.forEach((o, u) => {
          if (u === depth - 1) out.push(toTargetIds(fz, headLogits(config, fz, o).argMax(-1) as tf.Tensor1D).dataSync() as Int32Array);
        });
        return out;
      });
    });
}

/** Greedy chain drafting from every position: hits[d] / tries[d] conditional top-1 per depth. */
async function evaluate(predict: Predict, seqs: Seq[], depth: number, positionsFrom: (s: number) => number): Promise<{ hits: number[]; tries: number[]; through: number[]; positions: number }> {
  const hits = new Array<number>(depth).fill(0);
  const tries = new Array<number>(depth).fill(0);
  const through = new Array<number>(depth).fill(0);
  let positions = 0;
  const all = await predict(seqs);
  for (let si = 0; si < seqs.length; si++) {
    const s = seqs[si]!;
    const preds = all[si]!;
    // preds[u][row t] = drafted token at depth u+1 for cur at position t+1 (compares with x_{t+u+2}).
    const L = s.tokens.length;
    for (let t = 0; t + 2 < L; t++) {
      if (t + 1 < positionsFrom(si)) continue; // cur must be a generated token's predecessor
      positions++;
      let ok = true;
      for (let d = 0; d < depth && t + d + 2 < L; d++) {
        if (!ok) break;
        tries[d]!++;
        if (preds[d]![t] === s.tokens[t + d + 2]) {
          hits[d]!++;
          through[d]!++;
        } else ok = false;
      }
    }
  }
  return { hits, tries, through: through.map((x) => x / Math.max(1, positions)), positions };
}

/** Train a head on sequences with features. */
export async function trainEagleHead(
  seqsIn: TrainingSequence[],
  target: EagleTargetParts,
  configIn: EagleHeadConfig,
  o: EagleTrainingOptions = {},
): Promise<{ params: HeadParams; config: EagleHeadConfig; report: EagleTrainingReport; dispose: () => void }> {
  await tfReady();
  const log = o.onLog ?? (() => {});
  const H = configIn.hiddenSize;
  const seqs: (Seq & { firstTarget: number })[] = seqsIn
    .filter((s) => s.tokens.length >= 3)
    .map((s) => {
      if (!s.features || s.features.length !== s.tokens.length * H) {
        throw new InvalidOptionError(`training sequence has no features of hidden size ${H}; build the model with \`spec-decode build\`.`);
      }
      return { tokens: s.tokens, features: s.features, firstTarget: s.firstTarget };
    });
  if (seqs.length === 0) throw new InvalidOptionError("No training sequences of at least 3 tokens.");
  const U = o.unroll ?? 3;
  if (!Number.isInteger(U) || U < 1 || U > 8) throw new InvalidOptionError(`unroll must be an integer from 1 to 8 (got ${U}).`);
  const unrollAfter = o.unrollAfter ?? 0;
  if (!(unrollAfter >= 0 && unrollAfter < 1)) throw new InvalidOptionError(`unrollAfter must be in [0, 1) (got ${unrollAfter}).`);
  const lr = o.lr ?? 3e-3;
  const ceWeight = o.ceWeight ?? 0.5;
  const featureNoise = o.featureNoise ?? 0;
  if (!(featureNoise >= 0 && featureNoise < 100)) throw new InvalidOptionError(`featureNoise must be in [0, 100) (got ${featureNoise}).`);
  const evalDepth = o.evalDepth ?? 6;
  const batchRows = o.batchRows ?? 256;
  const window = o.window ?? 48;
  checkLrAndWindow(lr, window);
  // Held out: evalFraction of the sequences, at most MAX_EVAL_SEQUENCES (evaluation drafts evalDepth
  // steps from every position of each, which costs minutes on the JS backend for large sets).
  const { trainSeqs, held, nEval } = heldOutSplit(seqs, o.evalFraction ?? 0.1, MAX_EVAL_SEQUENCES);
  const train = trainSeqs.flatMap((s) => windows(s, window, H));
  const V = configIn.vocabSize;
  const { ids: draftVocab, coverage: covered } = resolveDraftVocab(o.draftVocab ?? "auto", trainSeqs, held, V, log);
  const config: EagleHeadConfig = { ...configIn, draftVocab };
  const draftCoverage = round4(covered);
  if (draftVocab) log(`draft vocabulary: ${draftVocab.length} of ${V} tokens (the most frequent next tokens of the training split); they cover ${pct(draftCoverage)} of the held-out next tokens`);
  if (nEval === 0) log("only one sequence: evaluating on the training data");
  // Pack sequences into minibatches of about batchRows rows.
  const packs = packer(train.map((s) => s.tokens.length - 1), batchRows, o.seed ?? 0);
  const trainPositions = train.reduce((a, s) => a + s.tokens.length - 1, 0);
  const stepsPerEpoch = packs().length;
  const epochs = o.epochs ?? Math.min(200, Math.max(2, Math.ceil(300 / stepsPerEpoch)));
  const totalSteps = Math.min(o.maxSteps ?? Infinity, epochs * stepsPerEpoch);
  const fz = makeFrozen(target, config);
  const params = o.init ? paramsFromWeights(config, o.init) : initParams(config, o.seed ?? 0);
  const vars = paramList(params);
  const opt = adam(lr);
  const from = (set: typeof seqs) => (i: number) => Math.max(0, set[i]!.firstTarget - 1);
  const rate = (e: { hits: number[]; tries: number[] }) => e.hits.map((h, d) => round4(h / Math.max(1, e.tries[d]!)));

  const trainer = o.trainer ?? "onnx";
  if (trainer !== "onnx" && trainer !== "tfjs") throw new InvalidOptionError(`trainer must be onnx or tfjs (got ${String(trainer)}).`);
  // Held-out evaluation on onnxruntime too (the same greedy chains; tfjs takes minutes on a wide head).
  const evaluator = trainer === "onnx" ? await EagleOrtEvaluator.create(config, target, evalDepth, { threads: o.threads }) : undefined;
  // The current parameters: on onnxruntime during its phase, else the tfjs variables.
  let ortTrainer: EagleOrtTrainer | undefined;
  const current = () => ortTrainer?.params ?? vars.map((v) => v.dataSync() as Float32Array);
  const predict: Predict = evaluator ? (s) => evaluator.predict(current(), s) : tfPredict(config, params, fz, evalDepth);
  // Chain accepted length first (what decoding gets), then depth-1 top-1.
  const score = (e: { hits: number[]; tries: number[]; through: number[] }): CheckpointScore => ({ top1: 1 + e.through.reduce((a, x) => a + x, 0), loss: 1 - e.hits[0]! / Math.max(1, e.tries[0]!) });
  const keepBest = (o.keepBest ?? true) && nEval > 0;
  const best = keepBest ? new BestCheckpoint<Float32Array[]>({ copy: () => current().map((a) => Float32Array.from(a)) }) : undefined;
  try {
    const initial = await evaluate(predict, held, evalDepth, from(held));
    log(
      `training an EAGLE head (hidden ${H}, MLP ${config.intermediateSize}, vocab ${config.vocabSize}) on ${trainPositions} positions (${trainSeqs.length} sequences), ` +
        `held out ${held.length}; ${totalSteps} steps of ~${batchRows} rows x ${U} unrolled steps${unrollAfter > 0 ? ` (single-step for the first ${Math.round(unrollAfter * 100)}%)` : ""}, lr ${lr}, CE weight ${ceWeight}${featureNoise > 0 ? `, feature noise U(-${featureNoise}, ${featureNoise})` : ""}`,
    );
    log(`before training: held-out top-1 per depth ${rate(initial).map(pct).join(" ")}`);
    best?.offer(0, score(initial));
    const epochChain: number[] = [];
    // With the evaluation on onnxruntime (seconds), the end of every full epoch is a candidate too.
    const onEpochEnd = async (epoch: number, steps: number) => {
      if (epoch === epochs || steps >= totalSteps) return; // the last weights: scored after the loop
      const sc = score(await evaluate(predict, held, evalDepth, from(held)));
      epochChain.push(round4(sc.top1));
      const better = best!.offer(epoch, sc);
      log(`epoch ${epoch}: held-out greedy chain ${sc.top1.toFixed(3)}, depth-1 top-1 ${pct(1 - sc.loss)}${better ? " (best so far)" : ""}`);
    };
    let unrolling = false;
    // The release of the onnxruntime trainer when the unrolled phase starts inside the (synchronous)
    // batch callback: awaited with the final one below.
    let released: Promise<void> | undefined;
    // The single-step phase on onnxruntime: the parameters move to it now and back to tfjs when the
    // unrolled phase starts or the run ends.
    ortTrainer = trainer === "onnx" && (U === 1 || unrollAfter > 0) ? await EagleOrtTrainer.create(config, target, vars.map((v) => v.dataSync() as Float32Array), { ceWeight, threads: o.threads }) : undefined;
    if (ortTrainer) log(`single-step phase on onnxruntime (${o.threads ?? "its default"} threads)`);
    const backToTf = () => {
      if (!ortTrainer) return;
      const t = ortTrainer;
      vars.forEach((v, i) => v.assign(tf.tensor(t.params[i]!, v.shape)));
      ortTrainer = undefined;
      return t.dispose();
    };
    let loopResult;
    try {
      loopResult = await trainLoop({ opt, vars, lr, epochs, totalSteps, packs, onEpochEnd: best && evaluator ? onEpochEnd : undefined }, o, log, (pack, step, secs) => {
        // One batch per sequence (attention stays within a sequence), losses averaged over the pack.
        const progress = Math.max(step / totalSteps, o.maxSeconds !== undefined ? secs / o.maxSeconds : 0);
        const u = progress < unrollAfter ? 1 : U;
        if (u === U && U > 1 && unrollAfter > 0 && !unrolling) {
          unrolling = true;
          log(`step ${step}: single-step phase done, training ${U} unrolled steps from here`);
          released = backToTf();
        }
        const wins = pack.map((i) => train[i]!);
        const seedOf = (j: number) => ((o.seed ?? 0) * 1_000_003 + step * 4099 + j) % 2 ** 31;
        if (u === 1 && ortTrainer) {
          const t = ortTrainer;
          // Seeded like the tfjs path (a different draw per step), not the same numbers.
          const rng = new Rng(seedOf(0));
          const noise = featureNoise > 0 ? () => featureNoise * (2 * rng.next() - 1) : undefined;
          const { feeds, n } = singleStepFeeds(wins, H, noise);
          return { run: (rate: number) => t.step(feeds, rate), positions: n };
        }
        // A different noise draw per step and sequence (seeded: runs repeat).
        const noise = (j: number) => (featureNoise > 0 ? { amplitude: featureNoise, seed: seedOf(j) } : undefined);
        return {
          loss: () => packLoss(config, params, fz, wins, u, ceWeight, noise),
          positions: wins.reduce((a, w) => a + w.tokens.length - 1, 0),
        };
      });
    } finally {
      await backToTf();
      await released;
    }
    const { steps, epochsRun, positions, trainSeconds } = loopResult;
    let final = await evaluate(predict, held, evalDepth, from(held));
    let keptEpoch = epochsRun;
    if (best) {
      epochChain.push(round4(score(final).top1));
      const kept = best.settle(score(final), (w) => vars.forEach((v, i) => v.assign(tf.tensor(w[i]!, v.shape))));
      if (kept) {
        log(
          `keeping the weights of epoch ${kept.epoch}${kept.epoch === 0 ? ", the starting head," : ""} (held-out greedy chain ${kept.score.top1.toFixed(3)} against ${score(final).top1.toFixed(3)} at the end)`,
        );
        final = await evaluate(predict, held, evalDepth, from(held));
        keptEpoch = kept.epoch;
      }
    }
    const depthTop1 = rate(final);
    log(`held-out top-1 per draft depth: ${depthTop1.map(pct).join(" ")} (chance ${pct(1 / config.vocabSize)}; before training ${rate(initial).map(pct).join(" ")})`);
    const seen = trainSeqs.slice(0, MAX_EVAL_SEQUENCES);
    const trainDepthTop1 = rate(await evaluate(predict, seen, evalDepth, from(seen)));
    log(`training-set top-1 per draft depth (${seen.length} training sequences): ${trainDepthTop1.map(pct).join(" ")}`);
    const chainThrough = final.through.map(round4);
    log(`held-out greedy chain of ${evalDepth}: mean accepted length ${(1 + chainThrough.reduce((a, x) => a + x, 0)).toFixed(3)}`);
    return {
      params,
      config,
      dispose: () => {
        disposeFrozen(fz);
        tf.dispose(vars);
        opt.dispose();
      },
      report: {
        hiddenSize: H,
        vocabSize: config.vocabSize,
        draftVocabSize: draftVocabSize(config),
        draftVocabCoverage: draftCoverage,
        trainSequences: trainSeqs.length,
        evalSequences: nEval,
        trainPositions,
        evalPositions: final.positions,
        epochs: epochsRun,
        keptEpoch,
        epochChainAcceptedLength: epochChain,
        steps,
        unroll: U,
        unrollAfter,
        trainer: U === 1 || unrollAfter > 0 ? trainer : "tfjs",
        lr,
        ceWeight,
        featureNoise,
        trainSeconds: Math.round(trainSeconds * 100) / 100,
        positionsPerSecond: Math.round(positions / Math.max(trainSeconds, 1e-9)),
        chance: 1 / config.vocabSize,
        initialDepthTop1: rate(initial),
        depthTop1,
        trainDepthTop1,
        chainThrough,
        chainAcceptedLength: round4(1 + chainThrough.reduce((a, x) => a + x, 0)),
      },
    };
  } finally {
    best?.release();
    await evaluator?.dispose();
  }
}

export interface TrainEagleOptions extends Omit<EagleTrainingOptions, "init">, SelfDistillDataOptions {
  model: string;
  /** Continue training the head in this directory. */
  init?: string;
  /** Start from the target's decoder layer N (0-based; see eagleWeightsFromTargetLayer) instead of a random head. */
  initLayer?: number;
  /** Output directory (default <model>/eagle). */
  out?: string;
  /**
   * MLP width of a fresh head (default: the target's intermediate_size). The head's config.json
   * carries it, and the ONNX head builder and loader read it from there.
   */
  intermediateSize?: number;
}

export interface TrainEagleReport extends EagleTrainingReport {
  out: string;
  files: string[];
  model: string;
  data: TrainingDataSummary;
}

/** The `spec-decode train-eagle` job: data, training, files, report. */
export async function trainEagle(o: TrainEagleOptions): Promise<TrainEagleReport> {
  const model = resolve(o.model);
  const log = o.onLog ?? (() => {});
  checkTrainingDataOptions(o, "target");
  const target = readEagleTargetParts(model);
  const config = eagleConfigFor(target.cfg, model);
  const width = o.intermediateSize;
  if (width !== undefined && !(Number.isInteger(width) && width >= 1 && width <= 65536)) {
    throw new InvalidOptionError(`intermediateSize (--intermediate-size) must be an integer from 1 to 65536 (got ${width}).`);
  }
  let init: EagleHeadWeights | undefined;
  let initVocab: Int32Array | undefined;
  if (o.init && o.initLayer !== undefined) throw new InvalidOptionError("Give --init (continue a head) or --init-layer (start from a target layer), not both.");
  if (o.initLayer !== undefined) {
    if (width !== undefined && width !== config.intermediateSize) {
      throw new InvalidOptionError(`--init-layer copies the target layer's MLP (width ${config.intermediateSize}); drop --intermediate-size ${width} or --init-layer.`);
    }
    init = eagleWeightsFromTargetLayer(model, o.initLayer);
  } else if (width !== undefined && !o.init) config.intermediateSize = width;
  if (o.init) {
    const h = readEagleHead(o.init);
    if (h.config.featureSource === "hidden_states") {
      throw new InvalidOptionError(`--init ${o.init}: a published EAGLE-1/2 head reads the target's normed hidden states; train-eagle trains heads over pre-norm features. Start from a fresh head (drop --init).`);
    }
    checkHeadAgainstTarget(h.config, target.cfg, `The head given with --init (${o.init})`);
    if (h.config.numHeads !== config.numHeads) {
      throw new InvalidOptionError(`--init ${o.init}: the head's attention heads (${h.config.numHeads}) differ from a fresh head's for this model (${config.numHeads}).`);
    }
    if (width !== undefined && width !== h.config.intermediateSize) {
      throw new InvalidOptionError(`--init ${o.init}: the head's MLP width is ${h.config.intermediateSize}, not --intermediate-size ${width}; drop --intermediate-size to continue it.`);
    }
    config.intermediateSize = h.config.intermediateSize; // continue the head at its own width
    init = h.weights;
    initVocab = h.config.draftVocab;
  }
  const lm = await CausalLM.load(model, { variant: o.variant, device: o.device, threads: o.threads });
  try {
    checkFeatureModel(lm, config.vocabSize);
    const t0 = performance.now();
    const seqs = await featureSequences(lm, model, o, log);
    const dataSeconds = (performance.now() - t0) / 1000;
    const tokens = seqs.reduce((s, q) => s + q.tokens.length, 0);
    const build = relative(model, lm.dirInfo.modelFile);
    // Continuing a head keeps its draft vocabulary unless --draft-vocab is given.
    const draftVocab = o.draftVocab ?? initVocab;
    const { params, report, dispose, config: trained } = await trainEagleHead(seqs, target, config, { ...o, init, ...(draftVocab !== undefined ? { draftVocab } : {}) });
    try {
      const out = resolve(o.out ?? join(model, "eagle"));
      const files = writeEagleHead(out, { ...trained, depthAccuracy: report.depthTop1 }, weightsFromParams(trained, params), {
        trained_by: "spec-decode train-eagle",
        // The target build whose features the head learnt (the one it is meant to run on).
        target_build: build,
        data: o.selfDistill !== undefined ? `self-distill ${o.selfDistill}` : `text ${o.data}`,
        ...(o.init ? { continued_from: resolve(o.init) } : {}),
        ...(o.initLayer !== undefined ? { initialised_from_layer: o.initLayer } : {}),
        unroll: report.unroll,
        steps: report.steps,
        chain_accepted_length: report.chainAcceptedLength,
        ...(trained.draftVocab ? { draft_vocab_coverage: report.draftVocabCoverage } : {}),
      });
      log(`wrote ${files.join(", ")}`);
      return {
        ...report,
        out,
        files,
        model,
        data: trainingDataSummary(o, seqs.length, tokens, dataSeconds, build),
      };
    } finally {
      dispose();
    }
  } finally {
    await lm.dispose();
  }
}
