/**
 * The EAGLE head's single-step training on onnxruntime: the parameters as Float32Arrays (matMul
 * "in x out" layout, model.ts's HeadParams order), the training-step graph of train-graph.ts in a
 * session with `threads` threads, and Adam with global-norm clipping in JS (the tfjs loop's
 * settings: beta2 0.95, clip at 1.0). train.ts feeds it minibatches of windows and hands the
 * parameters to tfjs for the unrolled phase and the evaluation.
 */
import * as ort from "onnxruntime-node";
import { draftRows, draftVocabSize, type EagleHeadConfig, type EagleTargetParts } from "../builder/eagle-head.js";
import { signedRopeTables } from "../builder/config.js";
import { Adam, clipScale } from "../train-common/adam.js";
import { GraphSessions } from "../train-common/graph-sessions.js";
import { transposed } from "../train-common/tf-layers.js";
import { buildEagleEvalOnnx, buildEagleTrainStepOnnx, eagleParamShapes, type EagleTrainGraphSpec } from "./train-graph.js";

/** One training window: tokens x_0..x_{L-1}, their features [L, H], the absolute position of x_0. */
export interface Window {
  tokens: number[];
  features: Float32Array;
  offset?: number;
}

/** Most rows one graph run takes: its attention mask and scores are [rows, rows] (per head). */
export const MAX_GRAPH_ROWS = 512;

/**
 * Graph inputs for a minibatch of windows (each attends causally within itself), unroll 1, in runs
 * of at most MAX_GRAPH_ROWS rows (whole windows; the gradients of the runs add up). Row weights
 * give train.ts's loss: the mean over each window's rows, then over the minibatch's windows.
 * `noise` (optional): each call returns the noise added to the next input feature value.
 */
export function singleStepFeeds(wins: Window[], H: number, noise?: () => number): { feeds: Record<string, ort.Tensor>[]; n: number } {
  const feeds = runsOf(wins).map((ws) => runFeeds(ws, H, wins.length, noise));
  return { feeds, n: wins.reduce((a, w) => a + w.tokens.length - 1, 0) };
}

function runFeeds(wins: Window[], H: number, totalWindows: number, noise?: () => number, forEval = false): Record<string, ort.Tensor> {
  const n = wins.reduce((a, w) => a + w.tokens.length - 1, 0);
  const tokens = new BigInt64Array(n);
  const positions = new BigInt64Array(n);
  const feats = new Float32Array(n * H);
  const target = new Float32Array(n * H);
  const weights = new Float32Array(n);
  const mask = new Float32Array(n * n).fill(-1e9);
  let r = 0;
  for (const w of wins) {
    const rows = w.tokens.length - 1;
    const first = r;
    for (let t = 0; t < rows; t++, r++) {
      tokens[r] = BigInt(w.tokens[t + 1]!);
      positions[r] = BigInt((w.offset ?? 0) + t);
      feats.set(w.features.subarray(t * H, (t + 1) * H), r * H);
      target.set(w.features.subarray((t + 1) * H, (t + 2) * H), r * H);
      weights[r] = 1 / (totalWindows * rows);
      mask.fill(0, r * n + first, r * n + r + 1);
    }
  }
  if (noise) for (let i = 0; i < feats.length; i++) feats[i]! += noise();
  return {
    tokens: new ort.Tensor("int64", tokens, [n]),
    positions: new ort.Tensor("int64", positions, [n]),
    feats: new ort.Tensor("float32", feats, [n, H]),
    mask: new ort.Tensor("float32", mask, [n, n]),
    ...(forEval
      ? {}
      : {
          target: new ort.Tensor("float32", target, [n, H]),
          weights: new ort.Tensor("float32", weights, [n]),
        }),
  };
}

/** Runs of whole windows of at most MAX_GRAPH_ROWS rows (one window alone when it is longer). */
function runsOf(wins: Window[]): Window[][] {
  const runs: Window[][] = [];
  let rows = 0;
  for (const w of wins) {
    const r = w.tokens.length - 1;
    if (runs.length === 0 || rows + r > MAX_GRAPH_ROWS) {
      runs.push([]);
      rows = 0;
    }
    runs.at(-1)!.push(w);
    rows += r;
  }
  return runs;
}

/** The graph spec of a head and its target (frozen parts; the LM head over the draft vocabulary). */
function graphSpec(config: EagleHeadConfig, target: EagleTargetParts, ceWeight: number): EagleTrainGraphSpec {
  const { hiddenSize: H, headDim: D } = config;
  const N = draftVocabSize(config);
  const lm = config.draftVocab ? draftRows(target.lmHead, H, config.draftVocab) : target.lmHead;
  const maxPos = target.cfg.maxPositionEmbeddings;
  const rope = signedRopeTables({ ...target.cfg, headDim: D }, maxPos);
  return {
    hidden: H,
    heads: config.numHeads,
    headDim: D,
    intermediate: config.intermediateSize,
    eps: config.rmsNormEps,
    ceWeight,
    embed: target.embed,
    vocab: config.vocabSize,
    normW: target.finalNorm,
    lmT: transposed(lm, N, H),
    draftVocab: N,
    cos: rope.cos,
    sinSigned: rope.sinSigned,
    maxPos,
  };
}

function paramFeeds(config: EagleHeadConfig, params: Float32Array[]): Record<string, ort.Tensor> {
  return Object.fromEntries(eagleParamShapes(config.hiddenSize, config.intermediateSize).map(([name, dims], i) => [name, new ort.Tensor("float32", params[i]!, dims)]));
}

/**
 * Held-out evaluation on onnxruntime: greedy chains of `depth` drafted tokens from every row of
 * whole sequences (train-graph.ts buildEagleEvalOnnx), as train.ts's tfjs evaluate() drafts them.
 */
export class EagleOrtEvaluator {
  private constructor(
    readonly config: EagleHeadConfig,
    readonly depth: number,
    private readonly graph: GraphSessions,
  ) {}

  static async create(config: EagleHeadConfig, target: EagleTargetParts, depth: number, o: { threads?: number } = {}): Promise<EagleOrtEvaluator> {
    const spec = { ...graphSpec(config, target, 0), ...(config.draftVocab ? { d2t: config.draftVocab } : {}) };
    return new EagleOrtEvaluator(config, depth, await GraphSessions.create("eagle-eval", [(f) => buildEagleEvalOnnx(spec, depth, f)], o.threads));
  }

  /** preds[s][u][t]: the target id drafted at step u + 1 from row t of sequence s (parameters in eagleParamShapes order). */
  async predict(params: Float32Array[], seqs: Window[]): Promise<Int32Array[][]> {
    const H = this.config.hiddenSize;
    const out: Int32Array[][] = [];
    const pf = paramFeeds(this.config, params);
    for (const run of runsOf(seqs)) {
      const res = await this.graph.sessions[0]!.run({ ...runFeeds(run, H, run.length, undefined, true), ...pf });
      const data = res.preds!.data as BigInt64Array;
      const n = data.length / this.depth;
      let r = 0;
      for (const w of run) {
        const rows = w.tokens.length - 1;
        out.push(Array.from({ length: this.depth }, (_, u) => Int32Array.from(data.subarray(u * n + r, u * n + r + rows), Number)));
        r += rows;
      }
    }
    return out;
  }

  async dispose(): Promise<void> {
    await this.graph.dispose();
  }
}

export class EagleOrtTrainer {
  private readonly opt: Adam[];

  private constructor(
    readonly config: EagleHeadConfig,
    /** Parameters in eagleParamShapes order. */
    readonly params: Float32Array[],
    private readonly graph: GraphSessions,
  ) {
    this.opt = params.map((p) => new Adam(p));
  }

  /** The step graph for this head and target, in a session; `params` are copied. */
  static async create(
    config: EagleHeadConfig,
    target: EagleTargetParts,
    params: Float32Array[],
    o: { ceWeight: number; threads?: number },
  ): Promise<EagleOrtTrainer> {
    const { hiddenSize: H, intermediateSize: I } = config;
    const shapes = eagleParamShapes(H, I);
    params.forEach((p, i) => {
      const want = shapes[i]![1].reduce((a, b) => a * b, 1);
      if (p.length !== want) throw new Error(`Internal error: EAGLE parameter ${shapes[i]![0]} has ${p.length} values, expected ${want}. Please report this.`);
    });
    const graph = await GraphSessions.create("eagle-train", [(f) => buildEagleTrainStepOnnx(graphSpec(config, target, o.ceWeight), f)], o.threads);
    return new EagleOrtTrainer(config, params.map((p) => p.slice()), graph);
  }

  /** Loss and gradients (eagleParamShapes order) of a minibatch (singleStepFeeds' runs), parameters unchanged. */
  async lossAndGrads(runs: Record<string, ort.Tensor>[]): Promise<{ loss: number; grads: Float32Array[] }> {
    const { hiddenSize: H, intermediateSize: I } = this.config;
    const names = eagleParamShapes(H, I).map(([name]) => `grad_${name}`);
    let loss = 0;
    let grads: Float32Array[] | undefined;
    const pf = paramFeeds(this.config, this.params);
    for (const feeds of runs) {
      const out = await this.graph.sessions[0]!.run({ ...feeds, ...pf });
      loss += (out.loss!.data as Float32Array)[0]!;
      const gs = names.map((n) => out[n]!.data as Float32Array);
      if (!grads) grads = gs;
      else grads.forEach((g, i) => gs[i]!.forEach((x, j) => (g[j]! += x)));
    }
    return { loss, grads: grads ?? [] };
  }

  /** One Adam step (gradients clipped to global norm 1) on a minibatch; returns its loss. */
  async step(feeds: Record<string, ort.Tensor>[], lr: number): Promise<number> {
    const { loss, grads } = await this.lossAndGrads(feeds);
    const scale = clipScale(grads, 1);
    this.opt.forEach((a, i) => a.step(grads[i]!, lr, 0.9, 0.95, 1e-8, scale));
    return loss;
  }

  async dispose(): Promise<void> {
    await this.graph.dispose();
  }
}
