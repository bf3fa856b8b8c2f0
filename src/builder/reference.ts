/**
 * A plain float64 forward pass of the same decoder, straight from the HF-layout weights (no
 * fusions, no folding, no KV cache). Slow; for tests only: it is the ground truth the ONNX
 * graphs are compared against.
 */
import { BuildError } from "../errors.js";
import { checkCheckpoint, getOptional, getWeight } from "./checkpoint.js";
import { ropeTables, type DecoderConfig } from "./config.js";
import { fakeQuantize, resolveQuantize, type QuantizeOptions } from "./quantize.js";
import type { WeightSource } from "./safetensors.js";

type Vec = Float64Array;

function rmsNorm(x: Vec, w: Float32Array, eps: number): Vec {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i]! * x[i]!;
  const r = 1 / Math.sqrt(ss / x.length + eps);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! * r * w[i]!;
  return out;
}

/** y = W x (+ b) with W in HF layout [out, in]. */
function linear(w: Float32Array, out: number, inn: number, x: Vec, b?: Float32Array): Vec {
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = b ? b[o]! : 0;
    const row = o * inn;
    for (let i = 0; i < inn; i++) s += w[row + i]! * x[i]!;
    y[o] = s;
  }
  return y;
}

/**
 * Logits [T, vocab] (row-major) for `tokenIds` at positions 0..T-1 with full causal attention.
 * `numLayers` < config layers gives the early-exit model (first m layers + final norm + lm_head).
 * `quantize` is the "dequantize then compute" mode: every weight the builder would quantize with
 * these options is replaced by its quantized-then-dequantized values (same codes and scales as the
 * MatMulNBits graph), and the forward runs in float64 as usual. With accuracy_level 0/1 the built
 * graph computes exactly this (in float32); level 2/4 also round the activations (float16 / int8
 * per block), which this reference does not model.
 */
export function referenceLogits(
  cfg: DecoderConfig,
  weights: WeightSource,
  tokenIds: number[],
  opts: { numLayers?: number; quantize?: QuantizeOptions } = {},
): Float64Array {
  const numLayers = opts.numLayers ?? cfg.numLayers;
  if (!Number.isInteger(numLayers) || numLayers < 1 || numLayers > cfg.numLayers) {
    throw new BuildError(`numLayers must be an integer from 1 to ${cfg.numLayers}, got ${numLayers}.`);
  }
  const names = checkCheckpoint(cfg, weights, numLayers);
  const { hiddenSize: H, intermediateSize: I, numHeads: NH, numKvHeads: KV, headDim: D, vocabSize: V, rmsNormEps: eps } = cfg;
  const T = tokenIds.length;
  const G = NH / KV;
  const half = D / 2;
  const { cos, sin } = ropeTables(cfg, Math.max(T, 1));
  const quant = opts.quantize ? resolveQuantize(opts.quantize) : undefined;
  /** A linear weight [N, K] as the graph sees it (fake-quantized when `quantize` covers it). */
  const lin = (name: string, dims: [number, number], quantized = true): Float32Array => {
    const w = getWeight(weights, name, dims);
    return quant && quantized ? fakeQuantize(w, dims[0], dims[1], quant.kind, quant.blockSize) : w;
  };

  const embed = lin(names.embed, [V, H], quant?.embeddings ?? false);
  let xs: Vec[] = tokenIds.map((id) => {
    if (!Number.isInteger(id) || id < 0 || id >= V) throw new BuildError(`Token id ${id} is outside the vocabulary [0, ${V}).`);
    return Float64Array.from(embed.subarray(id * H, (id + 1) * H));
  });

  const applyRope = (v: Vec, offset: number, pos: number) => {
    for (let j = 0; j < half; j++) {
      const a = v[offset + j]!;
      const b = v[offset + half + j]!;
      const c1 = cos[pos * D + j]!;
      const s1 = sin[pos * D + j]!;
      const c2 = cos[pos * D + half + j]!;
      const s2 = sin[pos * D + half + j]!;
      // x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x2, x1)
      v[offset + j] = a * c1 - b * s1;
      v[offset + half + j] = b * c2 + a * s2;
    }
  };
  const headNorm = (v: Vec, heads: number, w: Float32Array) => {
    for (let h = 0; h < heads; h++) v.set(rmsNorm(v.subarray(h * D, (h + 1) * D), w, eps), h * D);
  };

  for (let layer = 0; layer < numLayers; layer++) {
    const l = names.layer(layer);
    const wq = lin(l.q, [NH * D, H]);
    const wk = lin(l.k, [KV * D, H]);
    const wv = lin(l.v, [KV * D, H]);
    const wo = lin(l.o, [H, NH * D]);
    const bq = cfg.attentionBias ? getWeight(weights, l.qBias, [NH * D]) : undefined;
    const bk = cfg.attentionBias ? getWeight(weights, l.kBias, [KV * D]) : undefined;
    const bv = cfg.attentionBias ? getWeight(weights, l.vBias, [KV * D]) : undefined;
    const bo = getOptional(weights, l.oBias, [H]);
    const qn = cfg.qkNorm ? getWeight(weights, l.qNorm, [D]) : undefined;
    const kn = cfg.qkNorm ? getWeight(weights, l.kNorm, [D]) : undefined;
    const inNorm = getWeight(weights, l.inputNorm, [H]);
    const postNorm = getWeight(weights, l.postNorm, [H]);

    const qs: Vec[] = [];
    const ks: Vec[] = [];
    const vs: Vec[] = [];
    for (let t = 0; t < T; t++) {
      const xn = rmsNorm(xs[t]!, inNorm, eps);
      const q = linear(wq, NH * D, H, xn, bq);
      const k = linear(wk, KV * D, H, xn, bk);
      const v = linear(wv, KV * D, H, xn, bv);
      if (qn && kn) {
        headNorm(q, NH, qn);
        headNorm(k, KV, kn);
      }
      for (let h = 0; h < NH; h++) applyRope(q, h * D, t);
      for (let h = 0; h < KV; h++) applyRope(k, h * D, t);
      qs.push(q);
      ks.push(k);
      vs.push(v);
    }
    const scale = 1 / Math.sqrt(D);
    const next: Vec[] = [];
    for (let t = 0; t < T; t++) {
      const ctx = new Float64Array(NH * D);
      for (let h = 0; h < NH; h++) {
        const kvh = Math.floor(h / G);
        const scores = new Float64Array(t + 1);
        let max = -Infinity;
        for (let j = 0; j <= t; j++) {
          let s = 0;
          for (let d = 0; d < D; d++) s += qs[t]![h * D + d]! * ks[j]![kvh * D + d]!;
          scores[j] = s * scale;
          if (scores[j]! > max) max = scores[j]!;
        }
        let sum = 0;
        for (let j = 0; j <= t; j++) {
          scores[j] = Math.exp(scores[j]! - max);
          sum += scores[j]!;
        }
        for (let j = 0; j <= t; j++) {
          const p = scores[j]! / sum;
          for (let d = 0; d < D; d++) ctx[h * D + d]! += p * vs[j]![kvh * D + d]!;
        }
      }
      const attn = linear(wo, H, NH * D, ctx, bo);
      const x = new Float64Array(H);
      for (let i = 0; i < H; i++) x[i] = xs[t]![i]! + attn[i]!;
      next.push(x);
    }
    xs = next;

    const wg = lin(l.gate, [I, H]);
    const wu = lin(l.up, [I, H]);
    const wd = lin(l.down, [H, I]);
    const bg = getOptional(weights, l.gateBias, [I]);
    const bu = getOptional(weights, l.upBias, [I]);
    const bd = getOptional(weights, l.downBias, [H]);
    xs = xs.map((x) => {
      const xn = rmsNorm(x, postNorm, eps);
      const gate = linear(wg, I, H, xn, bg);
      const up = linear(wu, I, H, xn, bu);
      const act = new Float64Array(I);
      for (let i = 0; i < I; i++) act[i] = (gate[i]! / (1 + Math.exp(-gate[i]!))) * up[i]!;
      const down = linear(wd, H, I, act, bd);
      const out = new Float64Array(H);
      for (let i = 0; i < H; i++) out[i] = x[i]! + down[i]!;
      return out;
    });
  }

  const normW = getWeight(weights, names.norm, [H]);
  const lm = lin(names.lmHead, [V, H], quant?.lmHead ?? false);
  const logits = new Float64Array(T * V);
  for (let t = 0; t < T; t++) logits.set(linear(lm, V, H, rmsNorm(xs[t]!, normW, eps)), t * V);
  return logits;
}
