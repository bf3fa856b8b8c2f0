/**
 * Train an early-exit adapter (`spec-decode train-early-exit`): a decoder block on top of the
 * target's layer m, trained by self-distillation against the FULL model's own next-token
 * distribution, the target (its first m layers, final norm and LM head) frozen.
 *
 *  1. Data (medusa/data.ts, as train-medusa / train-eagle): self-distilled sequences (the model's
 *     own generations; token-id prompts from --prompt-ids or BOS + sampled tokens for models without
 *     a tokenizer) or text, with the full model's pre-final-norm features f_t at every position.
 *     The early-exit graph early_exit_{m}.onnx gives the layer-m states h_t of the same sequences.
 *  2. Loss at every position: cross-entropy of softmax(lm_head(norm(adapter(h)_t))) against the full
 *     model's distribution softmax(lm_head(norm(f_t))) (soft targets: the model's own outputs).
 *     The draft is teacher-forced by construction at decode time too (every drafted token runs the
 *     target's real first m layers), so there is no train/test gap to unroll.
 *  3. Minibatches of causal windows, Adam with warmup + cosine decay, global-norm clipping (tfjs).
 *  4. Held-out evaluation on the generated part of held-out sequences: top-1 agreement with the full
 *     model's argmax (trained adapter, the initial adapter, and the untrained exit norm(h) -> LM head),
 *     and the mean accepted length a greedy chain of K drafts would get from these agreements.
 *  5. Files beside the model (builder/exit-adapter.ts): exit_adapter_{m}.safetensors and the drafting
 *     graph exit_adapter_{m}.onnx, both written atomically.
 */
import { dirname, join, resolve } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { getWeight, openCheckpoint } from "../builder/checkpoint.js";
import type { DecoderConfig } from "../builder/config.js";
import {
  buildExitAdapterOnnx,
  exitAdapterOnnxName,
  exitAdapterWeightsName,
  readCheckpointLayer,
  readExitAdapterWeights,
  writeExitAdapterWeights,
  type AdapterLayerWeights,
} from "../builder/exit-adapter.js";
import { CausalLM } from "../engine/causal-lm.js";
import { earlyExitFile } from "../engine/model-store.js";
import { InvalidOptionError, ModelInterfaceError } from "../errors.js";
import { BestCheckpoint } from "../train-common/best-checkpoint.js";
import { tfReady } from "../train-common/tf-layers.js";
import { checkFeatureModel, featureSequences } from "../train-common/feature-data.js";
import { adam, type TrainRunReport, checkLrAndWindow, heldOutSplit, packer, pct, round4, trainLoop } from "../train-common/loop.js";
import {
  checkTrainingDataOptions,
  trainingDataSummary,
  type SelfDistillDataOptions,
  type TrainingDataSummary,
} from "../medusa/data.js";
import {
  adapterForward,
  adapterParamList,
  adapterParamsFrom,
  adapterWeightsFrom,
  disposeAdapterFrozen,
  disposeCausalBiases,
  exitLogits,
  makeAdapterFrozen,
  randomAdapterWeights,
  softCrossEntropy,
  type AdapterFrozen,
  type AdapterParams,
} from "./model.js";

export interface ExitAdapterTrainingOptions {
  epochs?: number;
  /** Rows (positions) per minibatch, about. Default 512. */
  batchRows?: number;
  /**
   * Training window (rows); longer sequences are cut into windows that attend within themselves.
   * Default 64 (the attention cost per row grows with it on tfjs's JS backend).
   */
  window?: number;
  lr?: number;
  /** Draft length K for the chain estimate (mean accepted length of a greedy chain of K drafts). Default 4. */
  evalDepth?: number;
  evalFraction?: number;
  seed?: number;
  maxSteps?: number;
  maxSeconds?: number;
  /** Initial weights: "layer" (the target's own layer m, default) or "random". */
  initFrom?: "layer" | "random";
  /** Train the attention block too (default). false: MLP-only (o_proj fixed at 0), an ablation. */
  attention?: boolean;
  /**
   * Weight of the full model's greedy token in the training target, 0..1 (default 0): the target is
   * (1 - w) * the full model's distribution + w * one-hot(its argmax). Greedy drafting is accepted on
   * argmax agreement only; a small model's next-token distribution is wide, and w > 0 moves the
   * adapter's capacity from matching its tail towards agreeing on its top token.
   */
  hardWeight?: number;
  /**
   * Evaluate held-out top-1 agreement after every epoch and end with the weights of the best epoch
   * (default true when sequences are held out): small data sets overfit (stories260K on 300 sequences did).
   */
  keepBest?: boolean;
  onLog?: (line: string) => void;
  logEvery?: number;
}

export interface AgreementReport {
  /** Held-out top-1 agreement with the full model's next token. */
  top1: number;
  /** Held-out cross-entropy against the full model's next-token distribution (the training loss), nats. */
  loss: number;
  /** 1 + sum over d <= K of P(the first d drafts all agree): the mean accepted length of a greedy chain of K. */
  chainAcceptedLength: number;
}

export interface ExitAdapterTrainingReport extends TrainRunReport {
  exitLayer: number;
  numLayers: number;
  lr: number;
  trainSeconds: number;
  positionsPerSecond: number;
  initFrom: "layer" | "random" | "file";
  attention: boolean;
  hardWeight: number;
  /** Held-out top-1 after each full epoch (keepBest), and the epoch whose weights were kept (0: none kept, the last weights). */
  epochTop1: number[];
  bestEpoch: number;
  evalDepth: number;
  /** norm(h_m) -> LM head, no adapter (what `early-exit` without an adapter drafts with). */
  untrained: AgreementReport;
  /** The adapter as initialised (the target's layer m by default: the untrained exit at m + 1). */
  initial: AgreementReport;
  trained: AgreementReport;
}

interface Seq {
  tokens: number[];
  /** layer-m states [L, H] */
  h: Float32Array;
  /** full model features [L, H] */
  f: Float32Array;
  offset: number;
  /** first position whose next token was generated (held-out evaluation starts there) */
  from: number;
  /** the full model's next-token distribution [L, V], precomputed when it fits in memory */
  target?: Float32Array;
}

function windows(s: Seq, w: number, H: number): Seq[] {
  const out: Seq[] = [];
  const L = s.tokens.length;
  for (let a = 0; a < L; a += w) {
    const b = Math.min(L, a + w);
    if (b - a < 2) break;
    out.push({ tokens: s.tokens.slice(a, b), h: s.h.subarray(a * H, b * H), f: s.f.subarray(a * H, b * H), offset: a, from: 0 });
  }
  return out;
}

function positionsOf(s: Seq): tf.Tensor1D {
  return tf.tensor1d(Int32Array.from({ length: s.tokens.length }, (_, i) => s.offset + i), "int32");
}

/** hardWeight in [0, 1] (default 0), or a clear error. */
function checkHardWeight(w: number | undefined): number {
  if (w !== undefined && !(w >= 0 && w <= 1)) throw new InvalidOptionError(`--hard-weight must be from 0 to 1 (got ${w}).`);
  return w ?? 0;
}

/**
 * The training target [L, V] of a sequence: the full model's next-token distribution, mixed with the
 * one-hot of its argmax by `hardWeight` (rows still sum to 1).
 */
export function teacherTargets(fullLogits: tf.Tensor2D, hardWeight: number): tf.Tensor2D {
  const soft = tf.softmax(fullLogits);
  if (hardWeight === 0) return soft;
  const hard = tf.oneHot(fullLogits.argMax(-1) as tf.Tensor1D, fullLogits.shape[1]).toFloat();
  return soft.mul(1 - hardWeight).add(hard.mul(hardWeight)) as tf.Tensor2D;
}

function lossOf(cfg: DecoderConfig, p: AdapterParams, fz: AdapterFrozen, s: Seq, attention: boolean, hardWeight: number): tf.Scalar {
  const H = cfg.hiddenSize;
  const L = s.tokens.length;
  const h = tf.tensor2d(s.h, [L, H]);
  const target = s.target ? tf.tensor2d(s.target, [L, cfg.vocabSize]) : teacherTargets(exitLogits(cfg, fz, tf.tensor2d(s.f, [L, H])), hardWeight);
  return softCrossEntropy(exitLogits(cfg, fz, adapterForward(cfg, p, fz, h, positionsOf(s), attention)), target);
}

/**
 * Per-position agreement (draft argmax == full argmax) on the generated part of each held-out
 * sequence, and the mean cross-entropy against the full model's distribution there.
 */
function agreements(cfg: DecoderConfig, fz: AdapterFrozen, seqs: Seq[], draftOut: ((s: Seq, h: tf.Tensor2D) => tf.Tensor2D) | undefined): { agree: Uint8Array[]; loss: number } {
  const H = cfg.hiddenSize;
  let lossSum = 0;
  let rows = 0;
  const agree = seqs.map((s) =>
    tf.tidy(() => {
      const L = s.tokens.length;
      const h = tf.tensor2d(s.h, [L, H]);
      const fullLogits = exitLogits(cfg, fz, tf.tensor2d(s.f, [L, H]));
      const draftLogits = exitLogits(cfg, fz, draftOut ? draftOut(s, h) : h);
      const full = fullLogits.argMax(-1).dataSync();
      const draft = draftLogits.argMax(-1).dataSync();
      const n = Math.max(0, L - s.from);
      if (n > 0) {
        lossSum += n * softCrossEntropy(draftLogits.slice([s.from, 0], [n, -1]), tf.softmax(fullLogits.slice([s.from, 0], [n, -1]))).dataSync()[0]!;
        rows += n;
      }
      const out = new Uint8Array(n);
      for (let t = s.from; t < L; t++) out[t - s.from] = draft[t] === full[t] ? 1 : 0;
      return out;
    }),
  );
  return { agree, loss: lossSum / Math.max(1, rows) };
}

function summarize({ agree, loss }: { agree: Uint8Array[]; loss: number }, K: number): AgreementReport {
  let n = 0;
  let hits = 0;
  let chain = 0;
  for (const a of agree) {
    for (let t = 0; t < a.length; t++) {
      n++;
      hits += a[t]!;
      // A round starting at t accepts the first d drafts iff agreements t .. t+d-1 all hold
      // (each drafted token runs the real first m layers, so an accepted prefix is the true one).
      for (let d = 0; d < K && t + d < a.length && a[t + d]; d++) chain++;
    }
  }
  return { top1: round4(hits / Math.max(1, n)), loss: round4(loss), chainAcceptedLength: round4(1 + chain / Math.max(1, n)) };
}

export interface ExitAdapterTrainingData {
  /** Token sequences with the full model's features and the layer-m states of the same tokens. */
  seqs: { tokens: number[]; features: Float32Array; exitStates: Float32Array; firstTarget: number }[];
}

/** Train an adapter on prepared data. */
export async function trainExitAdapter(
  data: ExitAdapterTrainingData,
  cfg: DecoderConfig,
  exitLayer: number,
  parts: { init: AdapterLayerWeights; initFrom: "layer" | "random" | "file"; finalNorm: Float32Array; lmHead: Float32Array },
  o: ExitAdapterTrainingOptions = {},
): Promise<{ weights: AdapterLayerWeights; report: ExitAdapterTrainingReport }> {
  await tfReady();
  const log = o.onLog ?? (() => {});
  const H = cfg.hiddenSize;
  const attention = o.attention ?? true;
  const seqs: Seq[] = data.seqs
    .filter((s) => s.tokens.length >= 3)
    .map((s) => {
      if (s.features.length !== s.tokens.length * H || s.exitStates.length !== s.tokens.length * H) {
        throw new InvalidOptionError(`training sequence lacks features / exit states of hidden size ${H}; build the model with \`spec-decode build\`.`);
      }
      return { tokens: s.tokens, h: s.exitStates, f: s.features, offset: 0, from: Math.max(0, s.firstTarget - 1) };
    });
  if (seqs.length === 0) throw new InvalidOptionError("No training sequences of at least 3 tokens.");
  const lr = o.lr ?? 5e-3;
  const hardWeight = checkHardWeight(o.hardWeight);
  const K = o.evalDepth ?? 4;
  const batchRows = o.batchRows ?? 512;
  const window = o.window ?? 64;
  checkLrAndWindow(lr, window);
  const { trainSeqs, held, nEval } = heldOutSplit(seqs, o.evalFraction ?? 0.1);
  if (nEval === 0) log("only one sequence: evaluating on the training data");
  const train = trainSeqs.flatMap((s) => windows(s, window, H));
  const trainPositions = train.reduce((a, s) => a + s.tokens.length, 0);
  const packs = packer(train.map((s) => s.tokens.length), batchRows, o.seed ?? 0);
  const stepsPerEpoch = packs().length;
  const epochs = o.epochs ?? Math.min(200, Math.max(2, Math.ceil(400 / stepsPerEpoch)));
  const totalSteps = Math.min(o.maxSteps ?? Infinity, epochs * stepsPerEpoch);
  const init = attention ? parts.init : { ...parts.init, o: new Float32Array(parts.init.o.length) };
  const fz = makeAdapterFrozen(cfg, init, parts.finalNorm, parts.lmHead);
  const params = adapterParamsFrom(cfg, init);
  const vars = adapterParamList(params, attention);
  const opt = adam(lr);
  // Copies of the best epoch's weights (keepBest), freed when the run settles or fails.
  const best = new BestCheckpoint<tf.Tensor[]>({ copy: () => vars.map((v) => tf.keep(v.clone())), free: (w) => tf.dispose(w) });
  try {
    // The full model's distributions are fixed: compute them once when they fit (<= 1 GB).
    if (trainPositions * cfg.vocabSize <= 256 * 1024 * 1024) {
      for (const s of train) s.target = tf.tidy(() => teacherTargets(exitLogits(cfg, fz, tf.tensor2d(s.f, [s.tokens.length, H])), hardWeight).dataSync() as Float32Array);
    }
    const withAdapter = (s: Seq, h: tf.Tensor2D) => adapterForward(cfg, params, fz, h, positionsOf(s), attention);
    const untrained = summarize(agreements(cfg, fz, held, undefined), K);
    const initial = summarize(agreements(cfg, fz, held, withAdapter), K);
    log(
      `training an exit adapter on layer ${exitLayer} of ${cfg.numLayers} (${attention ? "attention + MLP block" : "MLP only"}, init ${parts.initFrom}) ` +
        `on ${trainPositions} positions (${trainSeqs.length} sequences), held out ${held.length}; ${totalSteps} steps of ~${batchRows} rows, lr ${lr}` +
        (hardWeight > 0 ? `, target = ${1 - hardWeight} x the full model's distribution + ${hardWeight} x its greedy token` : ""),
    );
    log(`before training: held-out top-1 ${pct(untrained.top1)} untrained exit, ${pct(initial.top1)} initial adapter (held-out loss ${initial.loss.toFixed(3)})`);
    const keepBest = (o.keepBest ?? true) && nEval > 0;
    const epochTop1: number[] = [];
    const onEpochEnd = (epoch: number) => {
      const r = summarize(agreements(cfg, fz, held, withAdapter), K);
      epochTop1.push(r.top1);
      const better = best.offer(epoch, r);
      log(`epoch ${epoch}: held-out top-1 ${pct(r.top1)}, loss ${r.loss.toFixed(3)}${better ? " (best so far)" : ""}`);
    };
    const { steps, epochsRun, positions, trainSeconds } = await trainLoop({ opt, vars, lr, epochs, totalSteps, packs, onEpochEnd: keepBest ? onEpochEnd : undefined }, o, log, (pack) => ({
      loss: () => tf.addN(pack.map((i) => lossOf(cfg, params, fz, train[i]!, attention, hardWeight))).div(pack.length) as tf.Scalar,
      positions: pack.reduce((a, i) => a + train[i]!.tokens.length, 0),
    }));
    let trained = summarize(agreements(cfg, fz, held, withAdapter), K);
    let bestEpoch = 0;
    // The last weights unless an earlier full epoch scored better on the held-out sequences.
    const kept = best.settle(trained, (w) => vars.forEach((v, i) => v.assign(w[i]!)));
    if (kept) {
      log(`keeping the weights of epoch ${kept.epoch} (held-out top-1 ${pct(kept.score.top1)} against ${pct(trained.top1)} at the end)`);
      trained = summarize(agreements(cfg, fz, held, withAdapter), K);
      bestEpoch = kept.epoch;
    }
    log(
      `held-out top-1 agreement with the full model: ${pct(trained.top1)} (untrained exit ${pct(untrained.top1)}, initial adapter ${pct(initial.top1)}); ` +
        `held-out loss ${trained.loss.toFixed(3)} (initial ${initial.loss.toFixed(3)}); ` +
        `greedy chain of ${K}: mean accepted length ${trained.chainAcceptedLength.toFixed(3)} (untrained ${untrained.chainAcceptedLength.toFixed(3)})`,
    );
    const weights = adapterWeightsFrom(cfg, params, init);
    return {
      weights,
      report: {
        exitLayer,
        numLayers: cfg.numLayers,
        trainSequences: trainSeqs.length,
        evalSequences: nEval,
        trainPositions,
        evalPositions: held.reduce((a, s) => a + s.tokens.length - s.from, 0),
        epochs: epochsRun,
        steps,
        lr,
        trainSeconds: Math.round(trainSeconds * 100) / 100,
        positionsPerSecond: Math.round(positions / Math.max(trainSeconds, 1e-9)),
        initFrom: parts.initFrom,
        attention,
        hardWeight,
        epochTop1,
        bestEpoch,
        evalDepth: K,
        untrained,
        initial,
        trained,
      },
    };
  } finally {
    best.release();
    disposeAdapterFrozen(fz);
    disposeCausalBiases();
    tf.dispose(vars.length === 9 ? vars : adapterParamList(params, true));
    opt.dispose();
  }
}

export interface TrainEarlyExitOptions extends ExitAdapterTrainingOptions, SelfDistillDataOptions {
  model: string;
  exitLayer: number;
  /** Continue training this adapter (an exit_adapter_{m}.safetensors). */
  init?: string;
}

export interface TrainEarlyExitReport extends ExitAdapterTrainingReport {
  model: string;
  files: string[];
  data: TrainingDataSummary;
}

/** The `spec-decode train-early-exit` job: data, training, files, report. */
export async function trainEarlyExit(o: TrainEarlyExitOptions): Promise<TrainEarlyExitReport> {
  const model = resolve(o.model);
  const log = o.onLog ?? (() => {});
  checkTrainingDataOptions(o, "target");
  checkHardWeight(o.hardWeight);
  const { cfg, weights, names } = openCheckpoint(
    model,
    "Training an exit adapter needs the target's safetensors checkpoint and config.json (its layer m, final norm and LM head)",
  );
  const m = o.exitLayer;
  if (!Number.isInteger(m) || m < 1 || m >= cfg.numLayers) {
    throw new InvalidOptionError(`--exit-layer must be an integer from 1 to ${cfg.numLayers - 1} (the model has ${cfg.numLayers} layers; got ${String(m)}).`);
  }
  let init: AdapterLayerWeights;
  let initFrom: "layer" | "random" | "file";
  if (o.init) {
    const a = readExitAdapterWeights(resolve(o.init), cfg);
    if (a.exitLayer !== m) throw new InvalidOptionError(`--init ${o.init} is an adapter for exit layer ${a.exitLayer}, not ${m}.`);
    init = a.weights;
    initFrom = "file";
  } else {
    const layer = readCheckpointLayer(cfg, weights, m);
    init = o.initFrom === "random" ? randomAdapterWeights(cfg, o.seed ?? 0, layer) : layer;
    initFrom = o.initFrom ?? "layer";
  }
  const finalNorm = getWeight(weights, names.norm, [cfg.hiddenSize]);
  const lmHead = getWeight(weights, names.lmHead, [cfg.vocabSize, cfg.hiddenSize]);
  const lm = await CausalLM.load(model, { device: o.device, threads: o.threads });
  let exitLm: CausalLM | undefined;
  try {
    checkFeatureModel(lm, cfg.vocabSize);
    exitLm = await CausalLM.load(model, { file: earlyExitFile(lm, m), device: o.device, threads: o.threads });
    if (!exitLm.info.hasFeatures || exitLm.info.numLayers !== m) {
      throw new ModelInterfaceError(`${exitLm.info.file} is not a ${m}-layer early exit with a features output; rebuild it with \`spec-decode build --model ${model} --early-exit ${m}\`.`);
    }
    const t0 = performance.now();
    const seqs = await featureSequences(lm, model, o, log);
    const data: ExitAdapterTrainingData = { seqs: [] };
    for (const s of seqs) {
      const out = await exitLm.forward(exitLm.newCache(), s.tokens, { features: true, logits: "none" });
      if (!out.features || !s.features) throw new ModelInterfaceError(`${exitLm.label} returned no features.`);
      data.seqs.push({ tokens: s.tokens, features: s.features, exitStates: out.features.slice(), firstTarget: s.firstTarget });
    }
    const dataSeconds = (performance.now() - t0) / 1000;
    const tokens = seqs.reduce((a, q) => a + q.tokens.length, 0);
    const { weights: trained, report } = await trainExitAdapter(data, cfg, m, { init, initFrom, finalNorm, lmHead }, o);
    const dir = dirname(lm.info.file);
    const wFile = join(dir, exitAdapterWeightsName(m));
    const oFile = join(dir, exitAdapterOnnxName(m));
    const info = {
      trained_by: "spec-decode train-early-exit",
      data: o.selfDistill !== undefined ? `self-distill ${o.selfDistill}` : `text ${o.data}`,
      init: o.init ? resolve(o.init) : initFrom,
      attention: report.attention,
      hard_weight: report.hardWeight,
      steps: report.steps,
      held_out_top1: report.trained.top1,
      untrained_top1: report.untrained.top1,
      chain_accepted_length: report.trained.chainAcceptedLength,
    };
    // The graph first, then the weights: an interrupted run never leaves weights without their graph.
    await buildExitAdapterOnnx(model, m, trained, oFile, { "spec_decode.exit_adapter_info": JSON.stringify(info) });
    writeExitAdapterWeights(wFile, cfg, m, trained, info);
    log(`wrote ${oFile}, ${wFile}`);
    return { ...report, model, files: [oFile, wFile], data: trainingDataSummary(o, seqs.length, tokens, dataSeconds) };
  } finally {
    await exitLm?.dispose();
    await lm.dispose();
  }
}
