/**
 * The EAGLE head's math in TensorFlow.js, for training (autodiff + Adam) and held-out evaluation.
 * It computes exactly what the ONNX graph of builder/eagle-head.ts computes (a test checks the two
 * agree), so weights trained here drive the decoder unchanged.
 *
 * Why TensorFlow.js: the head is a full decoder layer (RMSNorm, RoPE attention over a KV cache,
 * SwiGLU); the unrolled training (the head reading its own features over several steps) needs
 * that layer's autodiff in general form, and the held-out evaluation its forward over drafted chains. tfjs is a kept library whose
 * CPU backends (WebAssembly, the default here, and pure JS) install from npm with no download. Its
 * WebAssembly backend is single-threaded, so the single-step phase (unroll 1, the bulk of a run)
 * runs instead on onnxruntime through the hand-derived backward of train-graph.ts, which a test
 * checks against tf.grads of the loss here; the forward used for decoding stays in onnxruntime.
 */
import * as tf from "@tensorflow/tfjs";
import { draftRows, draftVocabSize, type EagleHeadConfig, type EagleHeadWeights, type EagleTargetParts } from "../builder/eagle-head.js";
import { SeededRandom } from "../builder/fixture.js";
import { ropeAt, ropeTensors, rmsNorm, transposed } from "../train-common/tf-layers.js";

/** Trainable parameters, "in x out" layout for matMul. */
export interface HeadParams {
  fcW: tf.Variable; // [2H, H]
  fcB: tf.Variable; // [H]
  inNorm: tf.Variable; // [H]
  wq: tf.Variable; // [H, H]
  wk: tf.Variable;
  wv: tf.Variable;
  wo: tf.Variable;
  postNorm: tf.Variable; // [H]
  wg: tf.Variable; // [H, I]
  wu: tf.Variable;
  wd: tf.Variable; // [I, H]
}

/** The frozen target pieces as tensors. */
export interface Frozen {
  embed: tf.Tensor2D; // [V, H]
  normW: tf.Tensor1D; // [H]
  lmT: tf.Tensor2D; // [H, N]: the LM head over the draft vocabulary (N = V without one)
  /** Draft id -> target id ([N] int32), when the head has a draft vocabulary. */
  d2t?: tf.Tensor1D;
  cos: tf.Tensor2D; // [maxPos, D]
  sinSigned: tf.Tensor2D; // [maxPos, D]
}

export function makeFrozen(target: EagleTargetParts, config: EagleHeadConfig): Frozen {
  const { hiddenSize: H, vocabSize: V, headDim: D } = config;
  const N = draftVocabSize(config);
  const lm = config.draftVocab ? draftRows(target.lmHead, H, config.draftVocab) : target.lmHead;
  return {
    embed: tf.tensor2d(target.embed, [V, H]),
    normW: tf.tensor1d(target.finalNorm),
    lmT: tf.tensor2d(transposed(lm, N, H), [H, N]),
    ...(config.draftVocab ? { d2t: tf.tensor1d(config.draftVocab, "int32") } : {}),
    ...ropeTensors({ ...target.cfg, headDim: D }, target.cfg.maxPositionEmbeddings),
  };
}

export function disposeFrozen(f: Frozen): void {
  tf.dispose([f.embed, f.normW, f.lmT, f.cos, f.sinSigned, ...(f.d2t ? [f.d2t] : [])]);
}

/** Fresh parameters: Xavier-like projections, unit norms, and small residual outputs (the layer starts near identity). */
export function initParams(config: EagleHeadConfig, seed: number): HeadParams {
  const { hiddenSize: H, intermediateSize: I } = config;
  const rng = new SeededRandom(seed);
  const v = (rows: number, cols: number, std: number) =>
    tf.variable(tf.tensor2d(Float32Array.from({ length: rows * cols }, () => std * rng.normal()), [rows, cols]));
  const ones = () => tf.variable(tf.ones([H]));
  return {
    fcW: v(2 * H, H, 1 / Math.sqrt(2 * H)),
    fcB: tf.variable(tf.zeros([H])),
    inNorm: ones(),
    wq: v(H, H, 1 / Math.sqrt(H)),
    wk: v(H, H, 1 / Math.sqrt(H)),
    wv: v(H, H, 1 / Math.sqrt(H)),
    wo: v(H, H, 0.1 / Math.sqrt(H)),
    postNorm: ones(),
    wg: v(H, I, 1 / Math.sqrt(H)),
    wu: v(H, I, 1 / Math.sqrt(H)),
    wd: v(I, H, 0.1 / Math.sqrt(I)),
  };
}

/** Parameters from head weights (nn.Linear layout). */
export function paramsFromWeights(config: EagleHeadConfig, w: EagleHeadWeights): HeadParams {
  const { hiddenSize: H, intermediateSize: I } = config;
  const m = (data: Float32Array, out: number, inn: number) => tf.variable(tf.tensor2d(transposed(data, out, inn), [inn, out]));
  return {
    fcW: m(w.fcWeight, H, 2 * H),
    fcB: tf.variable(tf.tensor1d(w.fcBias)),
    inNorm: tf.variable(w.inputNorm ? tf.tensor1d(w.inputNorm) : tf.ones([H])),
    wq: m(w.q, H, H),
    wk: m(w.k, H, H),
    wv: m(w.v, H, H),
    wo: m(w.o, H, H),
    postNorm: tf.variable(tf.tensor1d(w.postNorm)),
    wg: m(w.gate, I, H),
    wu: m(w.up, I, H),
    wd: m(w.down, H, I),
  };
}

/** Head weights (nn.Linear layout) from parameters. */
export function weightsFromParams(config: EagleHeadConfig, p: HeadParams): EagleHeadWeights {
  const { hiddenSize: H, intermediateSize: I } = config;
  const lin = (t: tf.Variable, inn: number, out: number) => transposed(t.dataSync() as Float32Array, inn, out);
  return {
    fcWeight: lin(p.fcW, 2 * H, H),
    fcBias: Float32Array.from(p.fcB.dataSync()),
    inputNorm: Float32Array.from(p.inNorm.dataSync()),
    q: lin(p.wq, H, H),
    k: lin(p.wk, H, H),
    v: lin(p.wv, H, H),
    o: lin(p.wo, H, H),
    postNorm: Float32Array.from(p.postNorm.dataSync()),
    gate: lin(p.wg, H, I),
    up: lin(p.wu, H, I),
    down: lin(p.wd, I, H),
  };
}

export function paramList(p: HeadParams): tf.Variable[] {
  return [p.fcW, p.fcB, p.inNorm, p.wq, p.wk, p.wv, p.wo, p.postNorm, p.wg, p.wu, p.wd];
}

export interface LayerOut {
  out: tf.Tensor2D; // [N, H] = next features
  k: tf.Tensor3D; // [NH, N, D]
  v: tf.Tensor3D;
}

/**
 * The head on N rows: `tokens` int32 [N], `feats` [N, H], `positions` int32 [N]. Rows attend to
 * `past` keys/values (concatenated along rows) and to each other as `mask` bool [N, P + N] allows.
 */
export function headForward(
  config: EagleHeadConfig,
  p: HeadParams,
  fz: Frozen,
  tokens: tf.Tensor1D,
  feats: tf.Tensor2D,
  positions: tf.Tensor1D,
  mask: tf.Tensor2D,
  past: { k: tf.Tensor3D; v: tf.Tensor3D }[] = [],
): LayerOut {
  const { hiddenSize: H, numHeads: NH, headDim: D, rmsNormEps: eps } = config;
  const N = tokens.shape[0];
  const e = tf.gather(fz.embed, tokens);
  const x = tf.concat([e, feats], -1).matMul(p.fcW).add(p.fcB) as tf.Tensor2D;
  const xn = rmsNorm(x, p.inNorm, eps) as tf.Tensor2D;
  const rope = ropeAt(fz, positions, D);
  const heads = (t: tf.Tensor) => t.reshape([N, NH, D]);
  const q = rope(heads(xn.matMul(p.wq))).transpose([1, 0, 2]).mul(1 / Math.sqrt(D)) as tf.Tensor3D;
  const k = rope(heads(xn.matMul(p.wk))).transpose([1, 0, 2]) as tf.Tensor3D;
  const v = heads(xn.matMul(p.wv)).transpose([1, 0, 2]) as tf.Tensor3D;
  const kAll = past.length ? tf.concat([...past.map((s) => s.k), k], 1) : k;
  const vAll = past.length ? tf.concat([...past.map((s) => s.v), v], 1) : v;
  const scores = tf.matMul(q, kAll, false, true); // [NH, N, T]
  // Additive mask (0 or -1e9), broadcast over heads: the same softmax as the graph's Where, cheaper to differentiate.
  const masked = scores.add(tf.sub(1, mask.cast("float32")).mul(-1e9).expandDims(0));
  const ctx = tf.matMul(tf.softmax(masked, -1), vAll).transpose([1, 0, 2]).reshape([N, H]);
  const x2 = x.add(ctx.matMul(p.wo));
  const xn2 = rmsNorm(x2, p.postNorm, eps) as tf.Tensor2D;
  const g = xn2.matMul(p.wg);
  const act = g.mul(tf.sigmoid(g)).mul(xn2.matMul(p.wu));
  const out = x2.add(act.matMul(p.wd)) as tf.Tensor2D;
  return { out, k, v };
}

/** Logits through the target's frozen final norm and LM head: [rows, N] over the draft vocabulary (draft ids). */
export function headLogits(config: EagleHeadConfig, fz: Frozen, feats: tf.Tensor2D): tf.Tensor2D {
  return rmsNorm(feats, fz.normW, config.rmsNormEps).matMul(fz.lmT) as tf.Tensor2D;
}

/** Target token ids of draft ids (identity without a draft vocabulary). */
export function toTargetIds(fz: Frozen, draftIds: tf.Tensor1D): tf.Tensor1D {
  return fz.d2t ? (tf.gather(fz.d2t, draftIds.cast("int32")) as tf.Tensor1D) : (draftIds.cast("int32") as tf.Tensor1D);
}
