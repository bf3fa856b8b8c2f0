/**
 * The Medusa-1 training step as an ONNX graph: forward, softmax cross-entropy, and the backward
 * pass written out by hand (no autodiff), for all heads at once. onnxruntime runs it, so the big
 * [rows x hidden] x [hidden x vocab] products use its multi-threaded SIMD kernels; the optimizer
 * (Adam) runs in JS on the returned gradients.
 *
 * Per head k (base frozen; x = the base's final hidden state h, rows n):
 *     z = h Wt_k + b_k                       Wt_k = W_k^T, [hidden, hidden]
 *     s = sigmoid(z);  h' = h + z * s        (residual SiLU block)
 *     logits = h' L_k^T                      L_k [vocab, hidden]: the base's LM head (frozen,
 *                                            shared) or the head's own (trainable)
 *     loss_k = sum_n w_kn * (-log softmax(logits_n)[y_kn])   (w = 1/valid count, 0 if invalid)
 * Backward:
 *     dlogits = (softmax(logits) - onehot(y)) * w
 *     dh'     = dlogits L_k                  dL_k = dlogits^T h'   (trainable LM head only)
 *     dz      = dh' * s * (1 + z (1 - s))    (SiLU')
 *     dWt_k   = h^T dz                       db_k = sum_n dz
 *
 * Inputs:  h [N, H] float, targets [K, N] int64, weights [K, N] float, valid [K, N] float (0/1),
 *          wt [K, H, H], b [K, 1, H], and lm [K, V, H] when the LM heads are trained.
 * Outputs: loss [K], correct [K] (top-1 hits among valid rows), grad_wt, grad_b (, grad_lm).
 * The eval graph has the same inputs but weights/valid, and outputs nll [K, N] and topk [K, N, R].
 */
import { GraphBuilder, attr, dtypeCode } from "../builder/onnx-graph.js";

export interface TrainGraphSpec {
  heads: number;
  hidden: number;
  vocab: number;
  /** The base's LM head [vocab, hidden] when it is frozen (stored once, shared by all heads). */
  frozenLmHead?: Float32Array;
}

const FLOAT = dtypeCode("float32");

function forward(g: GraphBuilder, spec: TrainGraphSpec) {
  const { heads: K, hidden: H, vocab: V } = spec;
  const h = g.input("h", "float32", ["n", H]);
  const targets = g.input("targets", "int64", [K, "n"]);
  const wt = g.input("wt", "float32", [K, H, H]);
  const b = g.input("b", "float32", [K, 1, H]);
  const lm = spec.frozenLmHead
    ? g.initializer("lm_head", "float32", [V, H], spec.frozenLmHead)
    : g.input("lm", "float32", [K, V, H]);
  const z = g.op("Add", [g.op("MatMul", [h, wt]), b]); // [K, N, H]
  const s = g.op("Sigmoid", [z]);
  const hp = g.op("Add", [h, g.op("Mul", [z, s])]); // [K, N, H]
  let logits: string;
  if (spec.frozenLmHead) {
    const flat = g.op("Reshape", [hp, g.constInt64([-1, H])]);
    const l2 = g.op("Gemm", [flat, lm], { transB: 1, alpha: attr.float(1), beta: attr.float(1) });
    logits = g.op("Reshape", [l2, g.constInt64([K, -1, V])]);
  } else {
    logits = g.op("MatMul", [hp, g.op("Transpose", [lm], { perm: [0, 2, 1] })]); // [K, N, V]
  }
  const lsm = g.op("LogSoftmax", [logits], { axis: -1 });
  const tgt3 = g.op("Unsqueeze", [targets, g.constInt64([2])]);
  const nll = g.op("Neg", [g.op("Squeeze", [g.op("GatherElements", [lsm, tgt3], { axis: 2 }), g.constInt64([2])])]); // [K, N]
  return { h, targets, wt, b, lm, z, s, hp, logits, lsm, nll };
}

/** Write the training-step graph. */
export function buildTrainStepOnnx(spec: TrainGraphSpec, outPath: string): void {
  const { heads: K, hidden: H, vocab: V } = spec;
  const g = new GraphBuilder({ name: "medusa_train_step", modelPath: outPath });
  try {
    const f = forward(g, spec);
    const weights = g.input("weights", "float32", [K, "n"]);
    const valid = g.input("valid", "float32", [K, "n"]);
    const axis1 = g.constInt64([1]);
    g.output("loss", "float32", [K], g.op("ReduceSum", [g.op("Mul", [f.nll, weights]), axis1], { keepdims: 0 }));
    const am = g.op("ArgMax", [f.logits], { axis: -1, keepdims: 0 }); // [K, N]
    const hits = g.op("Mul", [g.op("Cast", [g.op("Equal", [am, f.targets])], { to: FLOAT }), valid]);
    g.output("correct", "float32", [K], g.op("ReduceSum", [hits, axis1], { keepdims: 0 }));

    // Backward.
    const p = g.op("Exp", [f.lsm]);
    const onehot = g.op("OneHot", [f.targets, g.constInt64([V]), g.initializer("onehot_values", "float32", [2], [0, 1])], { axis: -1 });
    const dlogits = g.op("Mul", [g.op("Sub", [p, onehot]), g.op("Unsqueeze", [weights, g.constInt64([2])])]); // [K, N, V]
    let dhp: string;
    if (spec.frozenLmHead) {
      const flat = g.op("Reshape", [dlogits, g.constInt64([-1, V])]);
      dhp = g.op("Reshape", [g.op("MatMul", [flat, f.lm]), g.constInt64([K, -1, H])]);
    } else {
      dhp = g.op("MatMul", [dlogits, f.lm]); // [K, N, H]
      const glm = g.op("MatMul", [g.op("Transpose", [dlogits], { perm: [0, 2, 1] }), f.hp]); // [K, V, H]
      g.output("grad_lm", "float32", [K, V, H], glm);
    }
    const one = g.constFloat(1);
    const dsilu = g.op("Mul", [f.s, g.op("Add", [one, g.op("Mul", [f.z, g.op("Sub", [one, f.s])])])]);
    const dz = g.op("Mul", [dhp, dsilu]); // [K, N, H]
    const hT = g.op("Transpose", [f.h], { perm: [1, 0] }); // [H, N]
    g.output("grad_wt", "float32", [K, H, H], g.op("MatMul", [hT, dz]));
    g.output("grad_b", "float32", [K, 1, H], g.op("ReduceSum", [dz, axis1], { keepdims: 1 }));
    g.save(outPath);
  } finally {
    g.dispose();
  }
}

/** Write the evaluation graph: per-row NLL and the top-`ranks` token ids of every head. */
export function buildEvalOnnx(spec: TrainGraphSpec, outPath: string, ranks: number): void {
  const { heads: K, vocab: V } = spec;
  const g = new GraphBuilder({ name: "medusa_eval", modelPath: outPath });
  try {
    const f = forward(g, spec);
    g.output("nll", "float32", [K, "n"], f.nll);
    const [, idx] = g.node("TopK", [f.logits, g.constInt64([Math.min(ranks, V)])], { axis: -1, largest: 1, sorted: 1 }, 2) as [string, string];
    g.output("topk", "int64", [K, "n", Math.min(ranks, V)], idx);
    g.save(outPath);
  } finally {
    g.dispose();
  }
}

/**
 * Float64 reference of the summed loss (sum over heads of sum_n w_kn * nll_kn), for gradient
 * checks. wt [K,H,H] (in x out), b [K,H], lm [K,V,H] or one shared [V,H], h [N,H], targets [K][N].
 */
export function trainLossReference(
  spec: { heads: number; hidden: number; vocab: number },
  p: { wt: ArrayLike<number>; b: ArrayLike<number>; lm: ArrayLike<number>; lmShared: boolean },
  h: ArrayLike<number>,
  n: number,
  targets: number[][],
  weights: number[][],
): number {
  const { heads: K, hidden: H, vocab: V } = spec;
  let total = 0;
  const hp = new Float64Array(H);
  const logits = new Float64Array(V);
  for (let k = 0; k < K; k++) {
    const lmBase = p.lmShared ? 0 : k * V * H;
    for (let r = 0; r < n; r++) {
      for (let o = 0; o < H; o++) {
        let z = p.b[k * H + o]!;
        for (let i = 0; i < H; i++) z += h[r * H + i]! * p.wt[k * H * H + i * H + o]!;
        hp[o] = h[r * H + o]! + z / (1 + Math.exp(-z));
      }
      let max = -Infinity;
      for (let v = 0; v < V; v++) {
        let s = 0;
        for (let i = 0; i < H; i++) s += hp[i]! * p.lm[lmBase + v * H + i]!;
        logits[v] = s;
        if (s > max) max = s;
      }
      let sum = 0;
      for (let v = 0; v < V; v++) sum += Math.exp(logits[v]! - max);
      const nll = max + Math.log(sum) - logits[targets[k]![r]!]!;
      total += weights[k]![r]! * nll;
    }
  }
  return total;
}
