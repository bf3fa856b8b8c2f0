/**
 * The Medusa heads trainer (Medusa-1: the base model stays frozen), on sequences whose hidden
 * states are already computed (data.ts); train.ts is the `train-medusa` job around it.
 *
 *  1. Examples: position t of a sequence gives head k (0-based) the target token t + k + 2 (head 0
 *     predicts the token after the next one), when that token lies in the sequence's target part.
 *  2. Model per head: h' = h + SiLU(W h + b), logits = L h'. W and b start at zero (the head begins
 *     as the base's own next-token prediction, like Medusa's initialisation), L is the base's LM
 *     head: frozen and shared by default (cheap, memory-light, one copy in the ONNX), or trained
 *     per head with `trainLmHead` (more capacity; costs a [vocab, hidden] gradient and Adam state
 *     per head).
 *  3. Optimisation: minibatch Adam with warmup + cosine decay; forward and the hand-written
 *     backward run in onnxruntime (train-graph.ts), Adam in JS. Progress lines report loss and
 *     top-1 accuracy per head; the held-out split (last sequences) gives the final report and the
 *     per-rank accuracies.
 */
import * as ort from "onnxruntime-node";
import type { MedusaHead } from "../builder/medusa-heads.js";
import { BuildError, InvalidOptionError } from "../errors.js";
import { Rng } from "../sampling/index.js";
import type { TrainingSequence } from "./data.js";
import { buildEvalOnnx, buildTrainStepOnnx } from "./train-graph.js";
import { BestCheckpoint, type CheckpointScore } from "../train-common/best-checkpoint.js";
import { Adam } from "../train-common/adam.js";
import { GraphSessions } from "../train-common/graph-sessions.js";

/** Heads trained by default (the Medusa project's README trains 3; deeper heads rarely pay on CPU trees). */
export const DEFAULT_HEADS = 3;

/** Ranks measured per head on the held-out split (for top-5 and the candidate tree). */
export const EVAL_RANKS = 10;

export interface HeadsTrainingOptions {
  heads: number;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  trainLmHead?: boolean;
  /** Fraction of sequences held out (default 0.1, at least one sequence when there are two). */
  evalFraction?: number;
  seed?: number;
  threads?: number;
  /** Stop after this many optimizer steps (tests, quick tries). */
  maxSteps?: number;
  /** Progress lines (default: none). */
  onLog?: (line: string) => void;
  /** Log every this many steps (default: about 20 lines per run). */
  logEvery?: number;
  /**
   * Keep the weights with the best mean held-out top-1 over heads among the initial heads, the end
   * of every full epoch and the last weights (default true; false keeps the last weights).
   */
  keepBest?: boolean;
}

export interface HeadReport {
  /** 1-based head number: head k predicts token t+k+1 from the hidden state at t (head 1: the token after the next). */
  head: number;
  predicts: string;
  initialTop1: number;
  evalTop1: number;
  evalTop5: number;
  evalLoss: number;
  trainTop1: number;
}

export interface HeadsTrainingResult {
  heads: MedusaHead[];
  report: {
    hiddenSize: number;
    vocabSize: number;
    numHeads: number;
    trainLmHead: boolean;
    trainPositions: number;
    evalPositions: number;
    trainSequences: number;
    evalSequences: number;
    epochs: number;
    steps: number;
    batchSize: number;
    lr: number;
    trainSeconds: number;
    examplesPerSecond: number;
    /** Top-1 accuracy of a uniform guess. */
    chance: number;
    perHead: HeadReport[];
    /** Mean held-out top-1 over heads after each full epoch (keepBest). */
    epochTop1: number[];
    /** Whose weights were kept: 0 the initial heads, e the end of epoch e (the last epoch run: the last weights). */
    keptEpoch: number;
    /** [head][rank]: P(target = the head's rank-r token) on the held-out split. */
    rankAccuracy: number[][];
  };
}

interface Dataset {
  /** [P, H] */
  hidden: Float32Array;
  /** [K * P]: targets[k * P + i], -1 when head k has no target at example i. */
  targets: Int32Array;
  size: number;
}

/** Examples of the given sequences for K heads (see the module comment). */
export function buildDataset(seqs: TrainingSequence[], K: number, H: number): Dataset {
  let P = 0;
  for (const s of seqs) for (let t = 0; t + 2 < s.tokens.length; t++) if (t + K + 1 >= s.firstTarget) P++;
  const hidden = new Float32Array(P * H);
  const targets = new Int32Array(K * P).fill(-1);
  let i = 0;
  for (const s of seqs) {
    const L = s.tokens.length;
    if (s.hidden.length !== L * H) throw new InvalidOptionError(`training sequence has ${s.hidden.length / H} hidden rows for ${L} tokens.`);
    for (let t = 0; t + 2 < L; t++) {
      if (t + K + 1 < s.firstTarget) continue;
      hidden.set(s.hidden.subarray(t * H, (t + 1) * H), i * H);
      for (let k = 0; k < K; k++) {
        const j = t + k + 2;
        if (j < L && j >= s.firstTarget) targets[k * P + i] = s.tokens[j]!;
      }
      i++;
    }
  }
  return { hidden, targets, size: P };
}

interface EvalResult {
  /** hits[k][r] = rows whose target is head k's rank-r token. */
  hits: number[][];
  count: number[];
  nll: number[];
}

/** The trainable heads, their optimizer, and the onnxruntime sessions of the step/eval graphs. */
export class HeadsTrainer {
  readonly wt: Float32Array;
  readonly b: Float32Array;
  readonly lm?: Float32Array;
  private readonly opt: Adam[];

  private constructor(
    readonly K: number,
    readonly H: number,
    readonly V: number,
    readonly baseLmHead: Float32Array,
    private readonly graphs: GraphSessions,
    trainLmHead: boolean,
  ) {
    this.wt = new Float32Array(K * H * H);
    this.b = new Float32Array(K * H);
    this.opt = [new Adam(this.wt), new Adam(this.b)];
    if (trainLmHead) {
      this.lm = new Float32Array(K * V * H);
      for (let k = 0; k < K; k++) this.lm.set(baseLmHead, k * V * H);
      this.opt.push(new Adam(this.lm));
    }
  }

  static async create(K: number, H: number, V: number, baseLmHead: Float32Array, o: { trainLmHead?: boolean; threads?: number } = {}): Promise<HeadsTrainer> {
    if (baseLmHead.length !== V * H) throw new BuildError(`base LM head has ${baseLmHead.length} values, expected ${V} x ${H}.`);
    const spec = { heads: K, hidden: H, vocab: V, frozenLmHead: o.trainLmHead ? undefined : baseLmHead };
    const graphs = await GraphSessions.create("medusa-train", [(f) => buildTrainStepOnnx(spec, f), (f) => buildEvalOnnx(spec, f, EVAL_RANKS)], o.threads);
    return new HeadsTrainer(K, H, V, baseLmHead, graphs, o.trainLmHead ?? false);
  }

  private paramFeeds(): Record<string, ort.Tensor> {
    const { K, H, V } = this;
    const feeds: Record<string, ort.Tensor> = {
      wt: new ort.Tensor("float32", this.wt, [K, H, H]),
      b: new ort.Tensor("float32", this.b, [K, 1, H]),
    };
    if (this.lm) feeds.lm = new ort.Tensor("float32", this.lm, [K, V, H]);
    return feeds;
  }

  private batchFeeds(ds: Dataset, rows: ArrayLike<number>): { feeds: Record<string, ort.Tensor>; valid: Float32Array; n: number } {
    const { K, H } = this;
    const n = rows.length;
    const h = new Float32Array(n * H);
    const targets = new BigInt64Array(K * n);
    const valid = new Float32Array(K * n);
    for (let i = 0; i < n; i++) {
      const r = rows[i]!;
      h.set(ds.hidden.subarray(r * H, (r + 1) * H), i * H);
      for (let k = 0; k < K; k++) {
        const y = ds.targets[k * ds.size + r]!;
        if (y >= 0) {
          targets[k * n + i] = BigInt(y);
          valid[k * n + i] = 1;
        }
      }
    }
    return {
      feeds: { h: new ort.Tensor("float32", h, [n, H]), targets: new ort.Tensor("int64", targets, [K, n]) },
      valid,
      n,
    };
  }

  /** One optimizer step on `rows` of the dataset. Returns summed loss and hits per head, and valid counts. */
  async step(ds: Dataset, rows: ArrayLike<number>, lr: number): Promise<{ loss: number[]; correct: number[]; count: number[] }> {
    const { K } = this;
    const { feeds, valid, n } = this.batchFeeds(ds, rows);
    const weights = new Float32Array(K * n);
    const count: number[] = [];
    for (let k = 0; k < K; k++) {
      let c = 0;
      for (let i = 0; i < n; i++) c += valid[k * n + i]!;
      count.push(c);
      if (c > 0) for (let i = 0; i < n; i++) weights[k * n + i] = valid[k * n + i]! / c;
    }
    const out = await this.graphs.sessions[0]!.run({
      ...feeds,
      ...this.paramFeeds(),
      weights: new ort.Tensor("float32", weights, [K, n]),
      valid: new ort.Tensor("float32", valid, [K, n]),
    });
    this.opt[0]!.step(out.grad_wt!.data as Float32Array, lr);
    this.opt[1]!.step(out.grad_b!.data as Float32Array, lr);
    if (this.lm) this.opt[2]!.step(out.grad_lm!.data as Float32Array, lr);
    const loss = Array.from(out.loss!.data as Float32Array, (l, k) => l * count[k]!);
    return { loss, correct: Array.from(out.correct!.data as Float32Array), count };
  }

  /** Per-head NLL and rank hits over `rows` (batched). */
  async evaluate(ds: Dataset, rows: ArrayLike<number>, batch = 256): Promise<EvalResult> {
    const { K } = this;
    const R = Math.min(EVAL_RANKS, this.V);
    const hits = Array.from({ length: K }, () => new Array<number>(R).fill(0));
    const count = new Array<number>(K).fill(0);
    const nll = new Array<number>(K).fill(0);
    for (let s = 0; s < rows.length; s += batch) {
      const part = Array.from({ length: Math.min(batch, rows.length - s) }, (_, i) => rows[s + i]!);
      const { feeds, valid, n } = this.batchFeeds(ds, part);
      const out = await this.graphs.sessions[1]!.run({ ...feeds, ...this.paramFeeds() });
      const l = out.nll!.data as Float32Array;
      const top = out.topk!.data as BigInt64Array;
      for (let k = 0; k < K; k++) {
        for (let i = 0; i < n; i++) {
          if (!valid[k * n + i]) continue;
          count[k]!++;
          nll[k]! += l[k * n + i]!;
          const y = BigInt(ds.targets[k * ds.size + part[i]!]!);
          for (let r = 0; r < R; r++) {
            if (top[(k * n + i) * R + r] === y) {
              hits[k]![r]!++;
              break;
            }
          }
        }
      }
    }
    return { hits, count, nll };
  }

  /** A copy of the trainable parameters (restore() puts them back). */
  snapshot(): Float32Array[] {
    return [this.wt.slice(), this.b.slice(), ...(this.lm ? [this.lm.slice()] : [])];
  }

  restore(values: Float32Array[]): void {
    this.wt.set(values[0]!);
    this.b.set(values[1]!);
    if (this.lm) this.lm.set(values[2]!);
  }

  /** The heads in Medusa's layout (W as out x in). The frozen LM head is shared, not copied. */
  exportHeads(): MedusaHead[] {
    const { K, H, V } = this;
    return Array.from({ length: K }, (_, k) => {
      const weight = new Float32Array(H * H);
      const base = k * H * H;
      for (let i = 0; i < H; i++) for (let o = 0; o < H; o++) weight[o * H + i] = this.wt[base + i * H + o]!;
      return {
        blocks: [{ weight, bias: this.b.slice(k * H, (k + 1) * H) }],
        lmHead: this.lm ? this.lm.slice(k * V * H, (k + 1) * V * H) : this.baseLmHead,
      };
    });
  }

  async dispose(): Promise<void> {
    await this.graphs.dispose();
  }
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** Train heads on collected sequences. `baseLmHead` is the base model's [vocab, hidden] LM head. */
export async function trainHeads(seqs: TrainingSequence[], baseLmHead: Float32Array, V: number, o: HeadsTrainingOptions): Promise<HeadsTrainingResult> {
  const K = o.heads;
  if (!Number.isInteger(K) || K < 1 || K > 16) throw new InvalidOptionError(`heads must be an integer from 1 to 16 (got ${K}).`);
  if (seqs.length === 0) throw new InvalidOptionError("No training sequences (the data produced no usable text).");
  const H = baseLmHead.length / V;
  const lr = o.lr ?? defaultLearningRate(H);
  if (!(lr > 0 && lr < 1)) throw new InvalidOptionError(`lr must be in (0, 1) (got ${lr}).`);
  // 64 rows, fewer when the [heads, rows, vocab] activations of one step would pass ~64 MB.
  const batchSize = o.batchSize ?? Math.max(8, Math.min(64, Math.floor((16 * 1024 * 1024) / (K * V))));
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new InvalidOptionError(`batch size must be an integer >= 1 (got ${batchSize}).`);
  const log = o.onLog ?? (() => {});

  const nEval = seqs.length >= 2 ? Math.max(1, Math.round(seqs.length * (o.evalFraction ?? 0.1))) : 0;
  const trainSeqs = seqs.slice(0, seqs.length - nEval);
  const evalSeqs = nEval > 0 ? seqs.slice(seqs.length - nEval) : seqs;
  if (nEval === 0) log("only one sequence: evaluating on the training data (give more sequences for a held-out score)");
  const train = buildDataset(trainSeqs, K, H);
  const held = buildDataset(evalSeqs, K, H);
  if (train.size === 0) throw new InvalidOptionError("The training sequences are too short to give examples (need at least 3 tokens).");
  const allEval = Array.from({ length: held.size }, (_, i) => i);

  const stepsPerEpoch = Math.ceil(train.size / batchSize);
  const epochs = o.epochs ?? defaultEpochs(stepsPerEpoch);
  if (!Number.isInteger(epochs) || epochs < 1) throw new InvalidOptionError(`epochs must be an integer >= 1 (got ${epochs}).`);
  const trainer = await HeadsTrainer.create(K, H, V, baseLmHead, { trainLmHead: o.trainLmHead, threads: o.threads });
  try {
    const initial = await trainer.evaluate(held, allEval);
    const keepBest = (o.keepBest ?? true) && nEval > 0;
    // Mean held-out top-1 over heads, then mean NLL (ties).
    const score = (r: EvalResult): CheckpointScore => ({
      top1: r.hits.reduce((a, h, k) => a + h[0]! / Math.max(1, r.count[k]!), 0) / K,
      loss: r.nll.reduce((a, n, k) => a + n / Math.max(1, r.count[k]!), 0) / K,
    });
    // Candidates: the initial heads (epoch 0), the end of every full epoch, the last weights.
    const best = keepBest ? new BestCheckpoint({ copy: () => trainer.snapshot() }) : undefined;
    best?.offer(0, score(initial));
    const epochTop1: number[] = [];
    const totalSteps = Math.min(o.maxSteps ?? Infinity, epochs * stepsPerEpoch);
    const warmup = Math.min(100, Math.max(1, Math.ceil(0.05 * totalSteps)));
    const lrAt = (t: number) => (t < warmup ? (lr * (t + 1)) / warmup : lr * (0.1 + 0.45 * (1 + Math.cos((Math.PI * (t - warmup)) / Math.max(1, totalSteps - warmup)))));
    const logEvery = o.logEvery ?? Math.max(1, Math.round(totalSteps / 20));
    log(
      `training ${K} heads (hidden ${H}, vocab ${V}, LM head ${o.trainLmHead ? "trained" : "frozen"}) on ${train.size} positions ` +
        `(${trainSeqs.length} sequences), held out ${held.size} (${evalSeqs.length}); ${totalSteps} steps of ${batchSize}, lr ${lr}`,
    );
    log(`before training (heads = the base's next-token guess): held-out top-1 ${initial.hits.map((h, k) => pct(h[0]! / Math.max(1, initial.count[k]!))).join(" ")}`);
    const rng = new Rng(o.seed ?? 0);
    const order = Array.from({ length: train.size }, (_, i) => i);
    let step = 0;
    const acc = { loss: new Array<number>(K).fill(0), correct: new Array<number>(K).fill(0), count: new Array<number>(K).fill(0) };
    const t0 = performance.now();
    let examples = 0;
    let epochsRun = 0;
    outer: for (let e = 0; e < epochs && step < totalSteps; e++) {
      epochsRun = e + 1;
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(rng.next() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      for (let s = 0; s < order.length; s += batchSize) {
        if (step >= totalSteps) break outer;
        const rows = order.slice(s, s + batchSize);
        const r = await trainer.step(train, rows, lrAt(step));
        examples += rows.length;
        step++;
        for (let k = 0; k < K; k++) {
          acc.loss[k]! += r.loss[k]!;
          acc.correct[k]! += r.correct[k]!;
          acc.count[k]! += r.count[k]!;
        }
        if (step % logEvery === 0 || step === totalSteps) {
          const secs = (performance.now() - t0) / 1000;
          log(
            `step ${step}/${totalSteps} epoch ${e + 1}/${epochs}  loss ${acc.loss.map((l, k) => (l / Math.max(1, acc.count[k]!)).toFixed(3)).join(" ")}  ` +
              `top-1 ${acc.correct.map((c, k) => pct(c / Math.max(1, acc.count[k]!))).join(" ")}  (${Math.round(examples / Math.max(secs, 1e-9))} pos/s)`,
          );
          acc.loss.fill(0);
          acc.correct.fill(0);
          acc.count.fill(0);
        }
      }
      if (best && e + 1 < epochs && step < totalSteps) {
        // The end of a full epoch that is not the last (the last weights are scored below).
        const sc = score(await trainer.evaluate(held, allEval));
        epochTop1.push(round4(sc.top1));
        const better = best.offer(e + 1, sc);
        log(`epoch ${e + 1}: held-out mean top-1 ${pct(sc.top1)}${better ? " (best so far)" : ""}`);
      }
    }
    const trainSeconds = (performance.now() - t0) / 1000;
    let final = await trainer.evaluate(held, allEval);
    let keptEpoch = epochsRun;
    if (best) {
      const last = score(final);
      epochTop1.push(round4(last.top1));
      log(`epoch ${epochsRun}${step < epochs * stepsPerEpoch ? " (stopped early)" : ""}: held-out mean top-1 ${pct(last.top1)}`);
      const kept = best.settle(last, (w) => trainer.restore(w));
      if (kept) {
        log(
          `keeping the weights of epoch ${kept.epoch}${kept.epoch === 0 ? ", the initial heads," : ""} ` +
            `(held-out mean top-1 ${pct(kept.score.top1)} against ${pct(last.top1)} at the end)`,
        );
        final = await trainer.evaluate(held, allEval);
        keptEpoch = kept.epoch;
      }
    }
    const trainSample = Array.from({ length: Math.min(train.size, 4096) }, (_, i) => Math.floor((i * train.size) / Math.min(train.size, 4096)));
    const onTrain = await trainer.evaluate(train, trainSample);
    const rate = (r: EvalResult, k: number, ranks: number) => r.hits[k]!.slice(0, ranks).reduce((a, b) => a + b, 0) / Math.max(1, r.count[k]!);
    const perHead: HeadReport[] = Array.from({ length: K }, (_, k) => ({
      head: k + 1,
      predicts: `t+${k + 2}`,
      initialTop1: round4(rate(initial, k, 1)),
      evalTop1: round4(rate(final, k, 1)),
      evalTop5: round4(rate(final, k, 5)),
      evalLoss: round4(final.nll[k]! / Math.max(1, final.count[k]!)),
      trainTop1: round4(rate(onTrain, k, 1)),
    }));
    log(`held-out top-1 per head${keptEpoch !== epochsRun ? ` (epoch ${keptEpoch}'s weights)` : ""}: ${perHead.map((h) => pct(h.evalTop1)).join(" ")} (chance ${pct(1 / V)}; before training ${perHead.map((h) => pct(h.initialTop1)).join(" ")})`);
    return {
      heads: trainer.exportHeads(),
      report: {
        hiddenSize: H,
        vocabSize: V,
        numHeads: K,
        trainLmHead: o.trainLmHead ?? false,
        trainPositions: train.size,
        evalPositions: held.size,
        trainSequences: trainSeqs.length,
        evalSequences: nEval,
        epochs,
        steps: step,
        batchSize,
        lr,
        trainSeconds: Math.round(trainSeconds * 100) / 100,
        examplesPerSecond: Math.round(examples / Math.max(trainSeconds, 1e-9)),
        chance: 1 / V,
        perHead,
        epochTop1,
        keptEpoch,
        rankAccuracy: final.hits.map((h, k) => h.map((x) => round4(x / Math.max(1, final.count[k]!)))),
      },
    };
  } finally {
    await trainer.dispose();
  }
}

/**
 * Default Adam learning rate: Medusa's 1e-3 at hidden size 4096, scaled by sqrt(4096 / hidden)
 * (a step moves W h by about lr * sqrt(hidden)), clamped to [1e-3, 1e-2]. Measured on the
 * fixtures (hidden 64): 1e-2 reaches in 380 steps what 1e-3 does not reach in 760.
 */
export function defaultLearningRate(hidden: number): number {
  return Math.min(1e-2, Math.max(1e-3, 1e-3 * Math.sqrt(4096 / hidden)));
}

/** Default epochs: enough for about 600 optimizer steps (small data sets need many passes), 2..50. */
export function defaultEpochs(stepsPerEpoch: number): number {
  return Math.min(50, Math.max(2, Math.ceil(600 / Math.max(1, stepsPerEpoch))));
}

function round4(x: number): number {
  return Math.round(x * 10000) / 10000;
}
