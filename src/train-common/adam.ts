/**
 * Adam on Float32Arrays, for the trainers whose gradients come out of an onnxruntime graph (the
 * Medusa heads, the EAGLE head's single-step phase): the same update as tf.train.adam (bias-corrected
 * moments, eps outside the square root), and the global-norm clipping scale the tfjs loop applies.
 */
export class Adam {
  readonly m: Float32Array;
  readonly v: Float32Array;
  private t = 0;
  constructor(readonly param: Float32Array) {
    this.m = new Float32Array(param.length);
    this.v = new Float32Array(param.length);
  }
  /** One update of `param` with `grad` (times `gradScale`, e.g. a clipping factor). */
  step(grad: Float32Array, lr: number, b1 = 0.9, b2 = 0.999, eps = 1e-8, gradScale = 1): void {
    this.t++;
    const c1 = 1 / (1 - Math.pow(b1, this.t));
    const c2 = 1 / (1 - Math.pow(b2, this.t));
    const { param: p, m, v } = this;
    const n = p.length;
    for (let i = 0; i < n; i++) {
      const g = grad[i]! * gradScale;
      const mi = b1 * m[i]! + (1 - b1) * g;
      const vi = b2 * v[i]! + (1 - b2) * g * g;
      m[i] = mi;
      v[i] = vi;
      p[i] = p[i]! - (lr * (mi * c1)) / (Math.sqrt(vi * c2) + eps);
    }
  }
}

/** The factor that scales `grads` to global L2 norm `maxNorm` when they exceed it (1 otherwise). */
export function clipScale(grads: Float32Array[], maxNorm = 1): number {
  let s = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) s += g[i]! * g[i]!;
  const norm = Math.sqrt(s);
  return norm > maxNorm ? maxNorm / norm : 1;
}
