/**
 * The EAGLE head's single-step training step (unroll 1, teacher-forced features) as one ONNX graph:
 * the forward of model.ts (headForward + headLogits), the loss of train.ts for unroll 1, and the
 * backward pass written out by hand, so onnxruntime's multi-threaded kernels run it (the tfjs
 * trainer's WebAssembly backend is single-threaded and slow on the big LM-head products). Adam runs
 * in JS on the returned gradients (train-ort.ts). test/eagle/train-graph.test.ts checks the loss and
 * every gradient against tf.grads of model.ts's loss.
 *
 * Rows r = 1..n (all the windows of a minibatch, concatenated): token x_r (the next token), input
 * feature f_r, target feature y_r (the next feature), position p_r, row weight w_r (1 / (windows *
 * rows of its window): train.ts's mean over each window's rows, then over windows), and an additive
 * mask M [n, n] (0 where row r may attend row c: same window, c <= r; -1e9 elsewhere).
 * Parameters in matMul ("in x out") layout, as model.ts's HeadParams.
 *
 * Forward (rms(x) = x * r, r = (mean_h x^2 + eps)^-1/2; xhat = x r):
 *   c   = [embed[x] , f]                                    [n, 2H]
 *   x   = c fcW + fcB                                       [n, H]
 *   xn  = xhat * inNorm                                     [n, H]
 *   q   = s rope(xn wq), k = rope(xn wk), v = xn wv         [NH, n, D] (s = 1/sqrt(D))
 *         rope(t) = t cos_p + swap(t) sin'_p, swap = exchange the halves, sin' = sin with its first half negated
 *   P   = softmax(q k^T + M)                                [NH, n, n]
 *   ctx = P v  (heads concatenated)                         [n, H]
 *   x2  = x + ctx wo
 *   xn2 = xhat2 * postNorm
 *   g = xn2 wg, u = xn2 wu, a = silu(g) u                   [n, I]
 *   o   = x2 + a wd                                         [n, H]  (the predicted next feature)
 *   z   = ohat * normW lmT,  t = softmax(yhat * normW lmT)  [n, N]  (frozen final norm, LM head over the draft vocabulary)
 * Loss:
 *   L = sum_r w_r ( mean_h SmoothL1(o - y) + cw * -sum_j t_j log softmax(z)_j )
 * Backward (dX = dL/dX):
 *   dz   = cw w (softmax(z) - t)                  (sum_j t_j = 1)
 *   do   = w clip(o - y, -1, 1) / H  +  rmsBack(dz lmT^T, normW, o)
 *          rmsBack(dy, W, x) = r (gy - xhat mean_h(gy xhat)),  gy = dy * W;   dW = sum_r dy * xhat
 *   dwd  = a^T do,  da = do wd^T,  du = da silu(g),  dg = da u sig(g) (1 + g (1 - sig(g)))
 *   dwg  = xn2^T dg,  dwu = xn2^T du,  dxn2 = dg wg^T + du wu^T
 *   dx2  = do + rmsBack(dxn2, postNorm, x2)
 *   dwo  = ctx^T dx2,  dctx = dx2 wo^T
 *   dP   = dctx v^T,  dv = P^T dctx,  dS = P * (dP - sum_c dP P)
 *   dq   = dS k,  dk = dS^T q  (q already scaled)
 *   d(xn wq) = ropeBack(s dq),  d(xn wk) = ropeBack(dk),  ropeBack(dt) = dt cos_p + swap(dt sin'_p)
 *   dwq = xn^T d(xn wq) (wk, wv alike),  dxn = sum of d(xn w) w^T over q, k, v
 *   dx   = dx2 + rmsBack(dxn, inNorm, x)
 *   dfcW = c^T dx,  dfcB = sum_r dx
 */
import { GraphBuilder } from "../builder/onnx-graph.js";

export interface EagleTrainGraphSpec {
  hidden: number;
  heads: number;
  headDim: number;
  intermediate: number;
  eps: number;
  ceWeight: number;
  /** Target embedding [V, H] (frozen). */
  embed: Float32Array;
  vocab: number;
  /** Final norm weight [H] (frozen). */
  normW: Float32Array;
  /** LM head over the draft vocabulary, transposed: [H, N] (frozen). */
  lmT: Float32Array;
  draftVocab: number;
  /** RoPE tables [maxPos, D]: cos, and sin with its first half negated (builder/config.ts signedRopeTables). */
  cos: Float32Array;
  sinSigned: Float32Array;
  maxPos: number;
}

/** The trainable parameters in graph-input order (model.ts HeadParams names), with their shapes. */
export function eagleParamShapes(H: number, I: number): [string, number[]][] {
  return [
    ["fcW", [2 * H, H]],
    ["fcB", [H]],
    ["inNorm", [H]],
    ["wq", [H, H]],
    ["wk", [H, H]],
    ["wv", [H, H]],
    ["wo", [H, H]],
    ["postNorm", [H]],
    ["wg", [H, I]],
    ["wu", [H, I]],
    ["wd", [I, H]],
  ];
}

/**
 * What the training-step and evaluation graphs share: their common inputs (tokens, positions,
 * feats, mask, the parameters), the frozen initializers, and small op helpers.
 */
function headGraph(g: GraphBuilder, spec: EagleTrainGraphSpec) {
  const { hidden: H, heads: NH, headDim: D, intermediate: I, vocab: V, draftVocab: N } = spec;
  const mm = (a: string, b: string) => g.op("MatMul", [a, b]);
  const add = (a: string, b: string) => g.op("Add", [a, b]);
  const sub = (a: string, b: string) => g.op("Sub", [a, b]);
  const mul = (a: string, b: string) => g.op("Mul", [a, b]);
  const last = g.constInt64([-1]);
  const meanLast = (x: string) => g.op("ReduceMean", [x], { axes: [-1], keepdims: 1 });
  const sumLast = (x: string, keepdims = 1) => g.op("ReduceSum", [x, last], { keepdims });
  const perm = (x: string, p: number[]) => g.op("Transpose", [x], { perm: p });
  const shape = (x: string, dims: number[]) => g.op("Reshape", [x, g.constInt64(dims)]);

  const tokens = g.input("tokens", "int64", ["n"]);
  const positions = g.input("positions", "int64", ["n"]);
  const feats = g.input("feats", "float32", ["n", H]);
  const mask = g.input("mask", "float32", ["n", "n"]);
  const p: Record<string, string> = {};
  for (const [name, dims] of eagleParamShapes(H, I)) p[name] = g.input(name, "float32", dims);
  const embed = g.initializer("embed", "float32", [V, H], spec.embed);
  const normW = g.initializer("final_norm", "float32", [H], spec.normW);
  const lmT = g.initializer("lm_t", "float32", [H, N], spec.lmT);
  const cosT = g.initializer("rope_cos", "float32", [spec.maxPos, D], spec.cos);
  const sinT = g.initializer("rope_sin", "float32", [spec.maxPos, D], spec.sinSigned);
  const eps = g.constFloat(spec.eps);

  /** RMSNorm forward: r [n,1], xhat [n,H], y = xhat * w. */
  const rms = (x: string, w: string) => {
    const r = g.op("Reciprocal", [g.op("Sqrt", [add(meanLast(mul(x, x)), eps)])]);
    const xhat = mul(x, r);
    return { r, xhat, y: mul(xhat, w) };
  };
  const swap = (t: string) => {
    const [a, b] = g.node("Split", [t], { axis: -1 }, 2) as [string, string];
    return g.op("Concat", [b, a], { axis: -1 });
  };
  /** RoPE at positions `pos` [n] on [n, NH, D], and its transpose (backward). */
  const ropeAt = (pos: string) => {
    const cos = shape(g.op("Gather", [cosT, pos], { axis: 0 }), [-1, 1, D]); // [n, 1, D]
    const sin = shape(g.op("Gather", [sinT, pos], { axis: 0 }), [-1, 1, D]);
    return {
      rope: (t: string) => add(mul(t, cos), mul(swap(t), sin)),
      back: (dt: string) => add(mul(dt, cos), swap(mul(dt, sin))),
    };
  };
  const toHeads = (t: string) => perm(shape(t, [-1, NH, D]), [1, 0, 2]); // [n, H] -> [NH, n, D]
  const fromHeads = (t: string) => shape(perm(t, [1, 0, 2]), [-1, H]); // [NH, n, D] -> [n, H]
  const scale = g.constFloat(1 / Math.sqrt(D));
  /** The layer up to attention for tokens `tok` [n], features `f` [n, H] at positions `pos`. */
  const preAttention = (tok: string, f: string, pos: string) => {
    const rp = ropeAt(pos);
    const e = g.op("Gather", [embed, tok], { axis: 0 }); // [n, H]
    const c = g.op("Concat", [e, f], { axis: -1 }); // [n, 2H]
    const x = add(mm(c, p.fcW!), p.fcB!); // [n, H]
    const n1 = rms(x, p.inNorm!);
    const xn = n1.y; // [n, H]
    const q = mul(perm(rp.rope(shape(mm(xn, p.wq!), [-1, NH, D])), [1, 0, 2]), scale); // [NH, n, D]
    const k = perm(rp.rope(shape(mm(xn, p.wk!), [-1, NH, D])), [1, 0, 2]); // [NH, n, D]
    const v = toHeads(mm(xn, p.wv!)); // [NH, n, D]
    return { rp, c, x, n1, xn, q, k, v };
  };
  /** The layer after attention: ctx [n, H] -> the next feature. */
  const postAttention = (x: string, ctx: string) => {
    const x2 = add(x, mm(ctx, p.wo!)); // [n, H]
    const n2 = rms(x2, p.postNorm!);
    const xn2 = n2.y; // [n, H]
    const gt = mm(xn2, p.wg!); // [n, I]
    const ut = mm(xn2, p.wu!); // [n, I]
    const sg = g.op("Sigmoid", [gt]); // [n, I]
    const silu = mul(gt, sg); // [n, I]
    const a = mul(silu, ut); // [n, I]
    const o = add(x2, mm(a, p.wd!)); // [n, H]
    return { x2, n2, xn2, gt, ut, sg, silu, a, o };
  };
  const logitsOf = (f: string) => mm(rms(f, normW).y, lmT); // [n, N]
  return { g, mm, add, sub, mul, last, meanLast, sumLast, perm, shape, tokens, positions, feats, mask, p, normW, lmT, rms, toHeads, fromHeads, scale, preAttention, postAttention, logitsOf };
}

/** Write the training-step graph (inputs, outputs: see the module comment; gradients are grad_<param>). */
export function buildEagleTrainStepOnnx(spec: EagleTrainGraphSpec, outPath: string): void {
  const { hidden: H, intermediate: I } = spec;
  const g = new GraphBuilder({ name: "eagle_train_step", modelPath: outPath });
  try {
    const h = headGraph(g, spec);
    const { mm, add, sub, mul, last, meanLast, sumLast, perm, shape, p, normW, lmT, rms, toHeads, fromHeads, scale } = h;
    // a^T b and a b^T for 2-D operands, without Transpose nodes.
    const tA = (a: string, b: string) => g.op("Gemm", [a, b], { transA: 1 });
    const tB = (a: string, b: string) => g.op("Gemm", [a, b], { transB: 1 });
    const rows = g.constInt64([0]);
    const sumRows = (x: string) => g.op("ReduceSum", [x, rows], { keepdims: 0 });
    /** RMSNorm backward: dx, and dW = sum over rows of dy * xhat. */
    const rmsBack = (dy: string, w: string, n: { r: string; xhat: string }) => {
      const gy = mul(dy, w);
      const dx = mul(n.r, sub(gy, mul(n.xhat, meanLast(mul(gy, n.xhat)))));
      return { dx, dw: () => sumRows(mul(dy, n.xhat)) };
    };
    const target = g.input("target", "float32", ["n", H]); // y
    const weights = g.input("weights", "float32", ["n"]); // w

    // ---- forward (f = feats, noise already added)
    const { rp, c, x, n1, xn, q, k, v } = h.preAttention(h.tokens, h.feats, h.positions);
    const P = g.op("Softmax", [add(mm(q, perm(k, [0, 2, 1])), h.mask)], { axis: -1 }); // [NH, n, n]
    const ctx = fromHeads(mm(P, v)); // [n, H]
    const { n2, xn2, gt, ut, sg, silu, a, o } = h.postAttention(x, ctx);
    const n3 = rms(o, normW);
    const z = mm(n3.y, lmT); // [n, N]
    const t = g.op("Softmax", [h.logitsOf(target)], { axis: -1 }); // [n, N]
    const logq = g.op("LogSoftmax", [z], { axis: -1 }); // [n, N]

    // ---- loss
    const one = g.constFloat(1);
    const diff = sub(o, target); // [n, H]
    const ad = g.op("Abs", [diff]);
    const m = g.op("Min", [ad, one]);
    const sl1 = g.op("ReduceMean", [add(mul(mul(m, m), g.constFloat(0.5)), sub(ad, m))], { axes: [-1], keepdims: 0 }); // [n]
    const ce = g.op("Neg", [sumLast(mul(t, logq), 0)]); // [n]
    const perRow = add(sl1, mul(ce, g.constFloat(spec.ceWeight))); // [n]
    g.output("loss", "float32", [], g.op("ReduceSum", [mul(perRow, weights)], { keepdims: 0 }));
    g.output("ce", "float32", [], g.op("ReduceSum", [mul(ce, weights)], { keepdims: 0 }));

    // ---- backward
    const w1 = g.op("Unsqueeze", [weights, last]); // [n, 1]
    const dz = mul(sub(g.op("Exp", [logq]), t), mul(w1, g.constFloat(spec.ceWeight))); // [n, N]
    const dSl1 = mul(g.op("Clip", [diff, g.constFloat(-1), one]), mul(w1, g.constFloat(1 / H))); // [n, H]
    const dO = add(dSl1, rmsBack(tB(dz, lmT), normW, n3).dx); // [n, H]
    const out = (name: string, dims: number[], value: string) => g.output(`grad_${name}`, "float32", dims, value);
    out("wd", [I, H], tA(a, dO));
    const da = tB(dO, p.wd!); // [n, I]
    const du = mul(da, silu); // [n, I]
    const dg = mul(mul(da, ut), mul(sg, add(one, mul(gt, sub(one, sg))))); // [n, I]
    out("wg", [H, I], tA(xn2, dg));
    out("wu", [H, I], tA(xn2, du));
    const dxn2 = add(tB(dg, p.wg!), tB(du, p.wu!)); // [n, H]
    const b2 = rmsBack(dxn2, p.postNorm!, n2);
    out("postNorm", [H], b2.dw());
    const dx2 = add(dO, b2.dx); // [n, H]
    out("wo", [H, H], tA(ctx, dx2));
    const dctx = toHeads(tB(dx2, p.wo!)); // [NH, n, D]
    const dP = mm(dctx, perm(v, [0, 2, 1])); // [NH, n, n]
    const dv = mm(perm(P, [0, 2, 1]), dctx); // [NH, n, D]
    const dS = mul(P, sub(dP, sumLast(mul(dP, P)))); // [NH, n, n]
    const dq = mm(dS, k); // [NH, n, D]
    const dk = mm(perm(dS, [0, 2, 1]), q); // [NH, n, D]
    const dqr = shape(rp.back(mul(perm(dq, [1, 0, 2]), scale)), [-1, H]); // [n, H]
    const dkr = shape(rp.back(perm(dk, [1, 0, 2])), [-1, H]); // [n, H]
    const dvr = fromHeads(dv); // [n, H]
    out("wq", [H, H], tA(xn, dqr));
    out("wk", [H, H], tA(xn, dkr));
    out("wv", [H, H], tA(xn, dvr));
    const dxn = add(add(tB(dqr, p.wq!), tB(dkr, p.wk!)), tB(dvr, p.wv!)); // [n, H]
    const b1 = rmsBack(dxn, p.inNorm!, n1);
    out("inNorm", [H], b1.dw());
    const dx = add(dx2, b1.dx); // [n, H]
    out("fcW", [2 * H, H], tA(c, dx));
    out("fcB", [H], sumRows(dx));
    g.save(outPath);
  } finally {
    g.dispose();
  }
}

/**
 * Write the evaluation graph: greedy chain drafting of `depth` steps from every row, as train.ts's
 * evaluate() does on tfjs. Step 0 reads (tokens, feats) at positions under `mask` (the committed
 * rows); step u >= 1 reads the previous step's argmax token (a target id, through `d2t` with a
 * draft vocabulary) and predicted feature at positions + u, attending to the committed rows as
 * step 0 does and to its own row of steps 1..u (the keys of a drafted chain). Output: preds
 * [depth, n] int64, the target id drafted at each step.
 */
export function buildEagleEvalOnnx(spec: EagleTrainGraphSpec & { d2t?: Int32Array }, depth: number, outPath: string): void {
  const g = new GraphBuilder({ name: "eagle_eval_chain", modelPath: outPath });
  try {
    const h = headGraph(g, spec);
    const { mm, add, mul, perm, sumLast } = h;
    const d2t = spec.d2t ? g.initializer("d2t", "int64", [spec.d2t.length], Array.from(spec.d2t)) : undefined;
    const preds: string[] = [];
    let tok = h.tokens;
    let f = h.feats;
    let pos = h.positions;
    let k0 = "";
    let v0 = "";
    const ks: string[] = [];
    const vs: string[] = [];
    for (let u = 0; u < depth; u++) {
      if (u > 0) pos = add(pos, g.constInt64([1], true));
      const s = h.preAttention(tok, f, pos);
      if (u === 0) {
        k0 = s.k;
        v0 = s.v;
      } else {
        ks.push(s.k);
        vs.push(s.v);
      }
      // Scores against the committed rows [NH, n, n], then the row's own steps 1..u [NH, n, 1] each.
      const scores = [add(mm(s.q, perm(k0, [0, 2, 1])), h.mask), ...ks.map((k) => sumLast(mul(s.q, k)))];
      const P = g.op("Softmax", [scores.length > 1 ? g.op("Concat", scores, { axis: -1 }) : scores[0]!], { axis: -1 }); // [NH, n, n + u]
      let ctx3 = mm(g.op("Slice", [P, g.constInt64([0]), g.constInt64([-u || 2 ** 62]), g.constInt64([-1])]), v0); // [NH, n, D]
      vs.forEach((v, w) => {
        const pw = g.op("Slice", [P, g.constInt64([w - u]), g.constInt64([w - u + 1 || 2 ** 62]), g.constInt64([-1])]); // [NH, n, 1]
        ctx3 = add(ctx3, mul(pw, v));
      });
      const out = h.postAttention(s.x, h.fromHeads(ctx3)).o; // [n, H]
      const am = g.op("ArgMax", [h.logitsOf(out)], { axis: -1, keepdims: 0 }); // [n] draft ids
      tok = d2t ? g.op("Gather", [d2t, am], { axis: 0 }) : am; // [n] target ids
      f = out;
      preds.push(g.op("Unsqueeze", [tok, g.constInt64([0])]));
    }
    g.output("preds", "int64", [depth, "n"], preds.length > 1 ? g.op("Concat", preds, { axis: 0 }) : preds[0]!);
    g.save(outPath);
  } finally {
    g.dispose();
  }
}
