/**
 * The exit adapter's math in TensorFlow.js (autodiff + Adam), for `spec-decode train-early-exit`.
 * It computes what the builder's decoder layer computes (builder/llama.ts: RMSNorm, GQA attention
 * with HF half-rotation RoPE, SwiGLU), so trained weights drive the adapter graph unchanged; a test
 * checks the two agree. tfjs for the same reason as the EAGLE trainer (eagle/model.ts): a kept
 * autodiff library whose WebAssembly backend (train-common/tf-layers.ts) installs from npm without downloads.
 *
 * Trainable: the layer's norms and projections. Frozen: q/k/v biases and q/k norms when the
 * architecture has them (kept from the initialisation), and the target's final norm and LM head.
 */
import * as tf from "@tensorflow/tfjs";
import type { AdapterLayerWeights } from "../builder/exit-adapter.js";
import type { DecoderConfig } from "../builder/config.js";
import { SeededRandom } from "../builder/fixture.js";
import { ropeAt, ropeTensors, rmsNorm, transposed } from "../train-common/tf-layers.js";

/** Trainable parameters, "in x out" layout for matMul. */
export interface AdapterParams {
  inNorm: tf.Variable; // [H]
  wq: tf.Variable; // [H, NH*D]
  wk: tf.Variable; // [H, KV*D]
  wv: tf.Variable; // [H, KV*D]
  wo: tf.Variable; // [NH*D, H]
  postNorm: tf.Variable; // [H]
  wg: tf.Variable; // [H, I]
  wu: tf.Variable; // [H, I]
  wd: tf.Variable; // [I, H]
}

/** Frozen tensors: the adapter's fixed parts and the target's final norm + LM head + RoPE tables. */
export interface AdapterFrozen {
  qBias?: tf.Tensor1D;
  kBias?: tf.Tensor1D;
  vBias?: tf.Tensor1D;
  qNorm?: tf.Tensor1D;
  kNorm?: tf.Tensor1D;
  normW: tf.Tensor1D; // [H]
  lmT: tf.Tensor2D; // [H, V]
  cos: tf.Tensor2D; // [maxPos, D]
  sinSigned: tf.Tensor2D; // [maxPos, D]
}

const dims = (cfg: DecoderConfig) => ({ H: cfg.hiddenSize, I: cfg.intermediateSize, NH: cfg.numHeads, KV: cfg.numKvHeads, D: cfg.headDim });

export function makeAdapterFrozen(cfg: DecoderConfig, w: AdapterLayerWeights, finalNorm: Float32Array, lmHead: Float32Array): AdapterFrozen {
  const { H } = dims(cfg);
  const V = cfg.vocabSize;
  const opt = (a?: Float32Array) => (a ? tf.tensor1d(a) : undefined);
  return {
    qBias: opt(w.qBias),
    kBias: opt(w.kBias),
    vBias: opt(w.vBias),
    qNorm: opt(w.qNorm),
    kNorm: opt(w.kNorm),
    normW: tf.tensor1d(finalNorm),
    lmT: tf.tensor2d(transposed(lmHead, V, H), [H, V]),
    ...ropeTensors(cfg, cfg.maxPositionEmbeddings),
  };
}

export function disposeAdapterFrozen(f: AdapterFrozen): void {
  tf.dispose([f.qBias, f.kBias, f.vBias, f.qNorm, f.kNorm, f.normW, f.lmT, f.cos, f.sinSigned].filter((t): t is tf.Tensor1D => t !== undefined));
}

/** Parameters from layer weights (nn.Linear layout). */
export function adapterParamsFrom(cfg: DecoderConfig, w: AdapterLayerWeights): AdapterParams {
  const { H, I, NH, KV, D } = dims(cfg);
  const m = (data: Float32Array, out: number, inn: number) => tf.variable(tf.tensor2d(transposed(data, out, inn), [inn, out]));
  return {
    inNorm: tf.variable(tf.tensor1d(w.inputNorm)),
    wq: m(w.q, NH * D, H),
    wk: m(w.k, KV * D, H),
    wv: m(w.v, KV * D, H),
    wo: m(w.o, H, NH * D),
    postNorm: tf.variable(tf.tensor1d(w.postNorm)),
    wg: m(w.gate, I, H),
    wu: m(w.up, I, H),
    wd: m(w.down, H, I),
  };
}

/** A fresh layer (Xavier-like projections, unit norms, small residual outputs: starts near identity). */
export function randomAdapterWeights(cfg: DecoderConfig, seed: number, like: AdapterLayerWeights): AdapterLayerWeights {
  const { H, I, NH, KV, D } = dims(cfg);
  const rng = new SeededRandom(seed);
  const r = (n: number, std: number) => Float32Array.from({ length: n }, () => std * rng.normal());
  return {
    ...like,
    inputNorm: new Float32Array(H).fill(1),
    q: r(NH * D * H, 1 / Math.sqrt(H)),
    k: r(KV * D * H, 1 / Math.sqrt(H)),
    v: r(KV * D * H, 1 / Math.sqrt(H)),
    o: r(H * NH * D, 0.1 / Math.sqrt(NH * D)),
    postNorm: new Float32Array(H).fill(1),
    gate: r(I * H, 1 / Math.sqrt(H)),
    up: r(I * H, 1 / Math.sqrt(H)),
    down: r(H * I, 0.1 / Math.sqrt(I)),
  };
}

/** Layer weights (nn.Linear layout) from parameters; the frozen parts come from `base`. */
export function adapterWeightsFrom(cfg: DecoderConfig, p: AdapterParams, base: AdapterLayerWeights): AdapterLayerWeights {
  const { H, I, NH, KV, D } = dims(cfg);
  const lin = (t: tf.Variable, inn: number, out: number) => transposed(t.dataSync() as Float32Array, inn, out);
  return {
    ...base,
    inputNorm: Float32Array.from(p.inNorm.dataSync()),
    q: lin(p.wq, H, NH * D),
    k: lin(p.wk, H, KV * D),
    v: lin(p.wv, H, KV * D),
    o: lin(p.wo, NH * D, H),
    postNorm: Float32Array.from(p.postNorm.dataSync()),
    gate: lin(p.wg, H, I),
    up: lin(p.wu, H, I),
    down: lin(p.wd, I, H),
  };
}

/** The trained variables; without attention (the MLP-only ablation) the attention projections stay fixed. */
export function adapterParamList(p: AdapterParams, attention = true): tf.Variable[] {
  return attention ? [p.inNorm, p.wq, p.wk, p.wv, p.wo, p.postNorm, p.wg, p.wu, p.wd] : [p.postNorm, p.wg, p.wu, p.wd];
}

const biases = new Map<number, tf.Tensor3D>();

/** Additive causal mask [1, N, N] (0 on and below the diagonal, -1e9 above), built once per N. */
function causalBias(N: number): tf.Tensor3D {
  let b = biases.get(N);
  if (!b) {
    const a = new Float32Array(N * N);
    for (let i = 0; i < N; i++) a.fill(-1e9, i * N + i + 1, (i + 1) * N);
    b = tf.keep(tf.tensor3d(a, [1, N, N]));
    biases.set(N, b);
  }
  return b;
}

/** Free the cached causal masks (end of training). */
export function disposeCausalBiases(): void {
  for (const b of biases.values()) b.dispose();
  biases.clear();
}

/**
 * The adapter on one causal window: `x` [N, H] (the target's layer-m hidden states), `positions`
 * int32 [N]. Row i attends to rows 0..i. Returns the adapter's output [N, H] (before the final norm).
 * `attention: false` skips the attention block (the MLP-only ablation; its graph is the block with
 * o_proj = 0).
 */
export function adapterForward(cfg: DecoderConfig, p: AdapterParams, fz: AdapterFrozen, x: tf.Tensor2D, positions: tf.Tensor1D, attention = true): tf.Tensor2D {
  const { H, NH, KV, D } = dims(cfg);
  const N = x.shape[0];
  const eps = cfg.rmsNormEps;
  let x2: tf.Tensor2D = x;
  if (attention) {
    const xn = rmsNorm(x, p.inNorm, eps) as tf.Tensor2D;
    const rope = ropeAt(fz, positions, D);
    const proj = (w: tf.Variable, bias: tf.Tensor1D | undefined, heads: number) => {
      const y = xn.matMul(w);
      return (bias ? y.add(bias) : y).reshape([N, heads, D]);
    };
    let q = proj(p.wq, fz.qBias, NH);
    let k = proj(p.wk, fz.kBias, KV);
    const v = proj(p.wv, fz.vBias, KV);
    if (fz.qNorm) q = rmsNorm(q, fz.qNorm, eps);
    if (fz.kNorm) k = rmsNorm(k, fz.kNorm, eps);
    const G = NH / KV;
    const qh = rope(q).transpose([1, 0, 2]).mul(1 / Math.sqrt(D)); // [NH, N, D]
    // GQA as HF repeat_kv: query head h reads kv head floor(h / G).
    const rep = (t: tf.Tensor) => (G === 1 ? t : t.expandDims(1).tile([1, G, 1, 1]).reshape([NH, N, D]));
    const kh = rep(rope(k).transpose([1, 0, 2]));
    const vh = rep(v.transpose([1, 0, 2]));
    const scores = tf.matMul(qh as tf.Tensor3D, kh as tf.Tensor3D, false, true); // [NH, N, N]
    const masked = scores.add(causalBias(N));
    // Softmax from elementary ops: autodiff through them is several times faster than through tf.softmax on tfjs's CPU backend.
    const e = masked.sub(masked.max(-1, true)).exp();
    const ctx = tf.matMul(e.div(e.sum(-1, true)), vh as tf.Tensor3D).transpose([1, 0, 2]).reshape([N, NH * D]);
    x2 = x.add(ctx.matMul(p.wo)) as tf.Tensor2D;
  }
  const xn2 = rmsNorm(x2, p.postNorm, eps) as tf.Tensor2D;
  const g = xn2.matMul(p.wg);
  const act = g.mul(tf.sigmoid(g)).mul(xn2.matMul(p.wu));
  return x2.add(act.matMul(p.wd)).reshape([N, H]) as tf.Tensor2D;
}

/**
 * mean over rows of the cross-entropy of softmax(z) against the distributions `p` (rows summing to
 * 1): logsumexp(z) - <p, z>, with its gradient (softmax(z) - p) / N written out: 2-3x faster than
 * autodiff through tf.logSoftmax on the CPU backend. `p` gets no gradient.
 */
export const softCrossEntropy = tf.customGrad(((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [z, p, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
  const m = z.max(-1, true);
  const e = z.sub(m).exp();
  const s = e.sum(-1, true);
  save([e, s, p]);
  const rows = z.shape[0]!;
  return {
    value: s.log().add(m).sub(p.mul(z).sum(-1, true)).mean(),
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [ee, ss, pp] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
      return [ee.div(ss).sub(pp).mul((dy as tf.Tensor).div(rows)), tf.zerosLike(pp)];
    },
  };
}) as Parameters<typeof tf.customGrad>[0]) as unknown as (z: tf.Tensor, p: tf.Tensor) => tf.Scalar;

/** Logits through the target's frozen final norm and LM head: [N, V]. */
export function exitLogits(cfg: DecoderConfig, fz: AdapterFrozen, h: tf.Tensor2D): tf.Tensor2D {
  return rmsNorm(h, fz.normW, cfg.rmsNormEps).matMul(fz.lmT) as tf.Tensor2D;
}
