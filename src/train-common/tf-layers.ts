/**
 * TensorFlow.js pieces shared by the trainers of decoder-layer drafters (eagle/model.ts for the
 * EAGLE head, exit-adapter/model.ts for the early-exit adapter): the backend setup, RMSNorm, the
 * HF half-rotation RoPE, and the transposition between nn.Linear ("out x in") and matMul ("in x out")
 * layouts. Each model file keeps its own layer; these are the parts whose math is the same.
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm"; // registers the "wasm" backend (XNNPACK, SIMD; binaries ship in the npm package)
import { signedRopeTables, type DecoderConfig } from "../builder/config.js";

let backendReady: Promise<void> | undefined;

/**
 * Select the training backend once, without tfjs's console banner about tfjs-node: tfjs's
 * WebAssembly backend (XNNPACK matmuls with SIMD, 5-6x the plain JS "cpu" backend's GFLOP/s on this
 * project's shapes, measured in the commit that chose it), or "cpu" where wasm cannot start or
 * `SPEC_DECODE_TF_BACKEND=cpu` asks for it (tf.getBackend() says which). tfjs-node would be faster
 * still but downloads libtensorflow at install time, which a closed network cannot do.
 */
export function tfReady(): Promise<void> {
  backendReady ??= (async () => {
    const warn = console.warn;
    const log = console.log;
    console.warn = () => {};
    console.log = () => {};
    try {
      const wanted = process.env.SPEC_DECODE_TF_BACKEND ?? "wasm";
      if (wanted !== "wasm" && wanted !== "cpu") throw new Error(`SPEC_DECODE_TF_BACKEND must be "wasm" or "cpu" (got "${wanted}").`);
      const ok = wanted === "wasm" && (await tf.setBackend("wasm").catch(() => false));
      if (!ok) await tf.setBackend("cpu");
      await tf.ready();
      tf.enableProdMode(); // no per-op debug checks
      tf.tensor1d([0]).dispose(); // the CPU backend prints its banner on first write
    } finally {
      console.warn = warn;
      console.log = log;
    }
  })();
  return backendReady;
}

export function rmsNorm(x: tf.Tensor, w: tf.Tensor, eps: number): tf.Tensor {
  return x.div(x.square().mean(-1, true).add(eps).sqrt()).mul(w);
}

/** A row-major [out, inn] matrix as [inn, out] (and back, with the sizes swapped). */
export function transposed(src: Float32Array, out: number, inn: number): Float32Array {
  const t = new Float32Array(src.length);
  for (let o = 0; o < out; o++) for (let i = 0; i < inn; i++) t[i * out + o] = src[o * inn + i]!;
  return t;
}

/** RoPE tables for positions 0..maxPos-1: cos, and sin with its first half negated (see ropeAt). */
export function ropeTensors(cfg: Pick<DecoderConfig, "headDim" | "ropeTheta" | "ropeScaling">, maxPos: number): { cos: tf.Tensor2D; sinSigned: tf.Tensor2D } {
  const D = cfg.headDim;
  const { cos, sinSigned } = signedRopeTables(cfg, maxPos);
  return { cos: tf.tensor2d(cos, [maxPos, D]), sinSigned: tf.tensor2d(sinSigned, [maxPos, D]) };
}

/**
 * HF half-rotation RoPE at `positions` int32 [N], for tensors [N, heads, D]:
 * x * cos + rotate_half(x) * sin, with rotate_half(x) = [-x2, x1] folded into sinSigned.
 */
export function ropeAt(tables: { cos: tf.Tensor2D; sinSigned: tf.Tensor2D }, positions: tf.Tensor1D, D: number): (t: tf.Tensor) => tf.Tensor {
  const N = positions.shape[0];
  const cos = tf.gather(tables.cos, positions).reshape([N, 1, D]);
  const sin = tf.gather(tables.sinSigned, positions).reshape([N, 1, D]);
  return (t) => {
    const [a, b] = tf.split(t, 2, -1) as [tf.Tensor, tf.Tensor];
    return t.mul(cos).add(tf.concat([b, a], -1).mul(sin));
  };
}
