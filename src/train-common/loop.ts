/**
 * The optimisation loop shared by the tfjs trainers (eagle/train.ts, whose single-step phase takes
 * its steps on onnxruntime through it, and exit-adapter/train.ts): held-out split, shuffled
 * minibatch packing, Adam with warmup + cosine decay over the run (its steps, or its time budget
 * when that ends it sooner), global-norm clipping at 1.0, the step and time limits, and the
 * progress log. Each trainer keeps its own data, loss and evaluation.
 */
import * as tf from "@tensorflow/tfjs";
import { InvalidOptionError } from "../errors.js";
import { Rng } from "../sampling/index.js";

export const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
export const round4 = (x: number) => Math.round(x * 10000) / 10000;

/** lr in (0, 1) and window an integer from 2 to 4096, or a clear error. */
export function checkLrAndWindow(lr: number, window: number): void {
  if (!(lr > 0 && lr < 1)) throw new InvalidOptionError(`lr must be in (0, 1) (got ${lr}).`);
  if (!Number.isInteger(window) || window < 2 || window > 4096) throw new InvalidOptionError(`window must be an integer from 2 to 4096 (got ${window}).`);
}

/**
 * The last evalFraction of the sequences (at least one, at most maxEval) held out; with a single
 * sequence nothing is held out and evaluation runs on the training data (`held` is then all of it).
 */
export function heldOutSplit<S>(seqs: S[], evalFraction: number, maxEval = Infinity): { trainSeqs: S[]; held: S[]; nEval: number } {
  const nEval = seqs.length >= 2 ? Math.min(maxEval, Math.max(1, Math.round(seqs.length * evalFraction))) : 0;
  const trainSeqs = seqs.slice(0, seqs.length - nEval);
  const held = nEval > 0 ? seqs.slice(seqs.length - nEval) : seqs;
  return { trainSeqs, held, nEval };
}

/**
 * Minibatches: each call shuffles the items (the order carries over between calls) and packs them
 * greedily into groups of about batchRows rows (`rows[i]` rows for item i).
 */
export function packer(rows: number[], batchRows: number, seed: number): () => number[][] {
  const rng = new Rng(seed);
  const order = rows.map((_, i) => i);
  return () => {
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const out: number[][] = [];
    let cur: number[] = [];
    let n = 0;
    for (const i of order) {
      const L = rows[i]!;
      if (cur.length > 0 && n + L > batchRows) {
        out.push(cur);
        cur = [];
        n = 0;
      }
      cur.push(i);
      n += L;
    }
    if (cur.length) out.push(cur);
    return out;
  };
}

/** Adam as both trainers use it (beta2 0.95). */
export function adam(lr: number): tf.AdamOptimizer {
  return tf.train.adam(lr, 0.9, 0.95, 1e-8);
}

export interface TrainRun {
  opt: tf.Optimizer;
  vars: tf.Variable[];
  lr: number;
  epochs: number;
  totalSteps: number;
  /** Minibatches of one epoch (called once per epoch). */
  packs: () => number[][];
  /** Called after each full epoch (not after one cut short by a limit) with the epoch number (1-based) and steps so far. */
  onEpochEnd?: (epoch: number, steps: number) => void | Promise<void>;
}

/**
 * One step's work and how many positions it covers: the loss to minimise (run inside tfjs's
 * variableGrads, then clipped and applied with `opt`), or `run`, a step taken elsewhere (onnxruntime
 * plus a JS optimizer, eagle/train-ort.ts) at learning rate `lr` that returns its loss. `secs`:
 * seconds since the loop started.
 */
export type BatchFn = (
  pack: number[],
  step: number,
  secs: number,
) => { loss: () => tf.Scalar; positions: number } | { run: (lr: number) => Promise<number>; positions: number };

/** What every trainer's report says about its data split and its run. */
export interface TrainRunReport {
  trainSequences: number;
  evalSequences: number;
  trainPositions: number;
  evalPositions: number;
  epochs: number;
  steps: number;
}

export interface TrainLoopResult {
  steps: number;
  epochsRun: number;
  positions: number;
  trainSeconds: number;
}

/**
 * Run epochs of minibatches until the epochs, totalSteps or maxSeconds end it: learning rate by
 * warmup then cosine decay (to 5% of lr), gradients clipped to global norm 1.0, the mean loss and
 * positions/s logged every logEvery steps (default 1/20 of the run) and at least every 30 s.
 */
export async function trainLoop(
  run: TrainRun,
  o: { maxSeconds?: number; logEvery?: number },
  log: (line: string) => void,
  batch: BatchFn,
): Promise<TrainLoopResult> {
  const { opt, vars, lr, epochs, totalSteps } = run;
  const maxSeconds = o.maxSeconds;
  const setLr = (x: number) => ((opt as unknown as { learningRate: number }).learningRate = x);
  const warmup = Math.min(50, Math.max(1, Math.ceil(0.05 * totalSteps)));
  const lrAt = (t: number, secs: number) => {
    if (t < warmup) return (lr * (t + 1)) / warmup;
    const byStep = (t - warmup) / Math.max(1, totalSteps - warmup);
    const progress = Math.min(1, Math.max(byStep, maxSeconds !== undefined ? secs / maxSeconds : 0));
    return lr * (0.05 + 0.475 * (1 + Math.cos(Math.PI * progress)));
  };
  const logEvery = o.logEvery ?? Math.max(1, Math.round(totalSteps / 20));
  const t0 = performance.now();
  let step = 0;
  let positions = 0;
  let accLoss = 0;
  let accN = 0;
  let epochsRun = 0;
  let lastLog = t0;
  outer: for (let e = 0; e < epochs; e++) {
    epochsRun = e + 1;
    for (const pack of run.packs()) {
      if (step >= totalSteps) break outer;
      if (maxSeconds !== undefined && (performance.now() - t0) / 1000 >= maxSeconds) {
        log(`time budget of ${maxSeconds}s reached after ${step} steps`);
        break outer;
      }
      const secs = (performance.now() - t0) / 1000;
      const b = batch(pack, step, secs);
      const rate = lrAt(step, secs);
      if ("run" in b) accLoss += await b.run(rate);
      else {
        setLr(rate);
        const loss = b.loss;
        accLoss += tf.tidy(() => {
          const { value, grads } = tf.variableGrads(loss, vars);
          const names = Object.keys(grads);
          const norm = Math.sqrt(names.reduce((s, n) => s + (grads[n]!.square().sum().dataSync()[0] ?? 0), 0));
          const scale = norm > 1 ? 1 / norm : 1;
          opt.applyGradients(names.map((name) => ({ name, tensor: grads[name]!.mul(scale) })));
          return value.dataSync()[0]!;
        });
      }
      accN++;
      step++;
      positions += b.positions;
      const now = performance.now();
      if (step % logEvery === 0 || step === totalSteps || now - lastLog > 30_000) {
        lastLog = now;
        const secs = (now - t0) / 1000;
        log(`step ${step}/${totalSteps} epoch ${e + 1}/${epochs}  loss ${(accLoss / accN).toFixed(4)}  (${Math.round(positions / Math.max(secs, 1e-9))} positions/s)`);
        accLoss = 0;
        accN = 0;
      }
    }
    await run.onEpochEnd?.(e + 1, step);
  }
  return { steps: step, epochsRun, positions, trainSeconds: (performance.now() - t0) / 1000 };
}
