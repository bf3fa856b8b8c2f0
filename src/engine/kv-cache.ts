/**
 * The KV cache of one sequence (batch 1): per layer a key and a value tensor shaped
 * [1, kvHeads, length, headDim], exactly as the model's `present.*` outputs return them, so that
 * a forward's outputs become the next forward's inputs without a copy.
 *
 * Speculation rejects tokens, so the cache can crop back to any earlier length, and after tree
 * verification keep only the accepted path (gather). This is the one place that crops caches.
 */
import * as ort from "onnxruntime-node";

export type KvDtype = "float32" | "float16";
type KvData = Float32Array | Uint16Array;

export interface KvShape {
  numLayers: number;
  kvHeads: number;
  headDim: number;
  dtype: KvDtype;
}

export class KVCache {
  readonly shape: KvShape;
  private keys: ort.Tensor[];
  private values: ort.Tensor[];
  private len = 0;

  constructor(shape: KvShape) {
    this.shape = shape;
    this.keys = [];
    this.values = [];
    this.reset();
  }

  /** Number of positions held. */
  get length(): number {
    return this.len;
  }

  reset(): void {
    const empty = () => new ort.Tensor(this.shape.dtype, this.alloc(0), [1, this.shape.kvHeads, 0, this.shape.headDim]);
    this.keys = Array.from({ length: this.shape.numLayers }, empty);
    this.values = Array.from({ length: this.shape.numLayers }, empty);
    this.len = 0;
  }

  key(layer: number): ort.Tensor {
    return this.keys[layer]!;
  }

  value(layer: number): ort.Tensor {
    return this.values[layer]!;
  }

  /** Replace the contents with a forward's `present` tensors (which already hold past + new). */
  update(keys: ort.Tensor[], values: ort.Tensor[]): void {
    const n = keys[0]!.dims[2]!;
    this.keys = keys;
    this.values = values;
    this.len = n;
  }

  /** Drop every position at or after `length`. */
  crop(length: number): void {
    if (length < 0 || length > this.len) throw new RangeError(`cannot crop a KV cache of ${this.len} positions to ${length}`);
    if (length === this.len) return;
    const keep = Array.from({ length }, (_, i) => i);
    this.select(keep);
  }

  /**
   * Keep positions [0, start) and then `start + offsets[i]` for each i, in that order; drop the rest.
   * Used after tree verification: `start` is the cache length before the forward, `offsets` index the
   * accepted path among the new tokens.
   */
  gather(start: number, offsets: number[]): void {
    const keep: number[] = [];
    for (let i = 0; i < start; i++) keep.push(i);
    let contiguous = true;
    for (let i = 0; i < offsets.length; i++) {
      keep.push(start + offsets[i]!);
      if (offsets[i] !== i) contiguous = false;
    }
    if (contiguous) this.crop(start + offsets.length);
    else this.select(keep);
  }

  /** Copy of the cache (independent tensors). */
  clone(): KVCache {
    const c = new KVCache(this.shape);
    const copy = (t: ort.Tensor) => new ort.Tensor(this.shape.dtype, (t.data as KvData).slice(), t.dims);
    c.update(this.keys.map(copy), this.values.map(copy));
    c.len = this.len;
    return c;
  }

  private alloc(n: number): KvData {
    return this.shape.dtype === "float16" ? new Uint16Array(n) : new Float32Array(n);
  }

  private select(positions: number[]): void {
    const { kvHeads: H, headDim: D } = this.shape;
    const L = this.len;
    const n = positions.length;
    const pick = (t: ort.Tensor): ort.Tensor => {
      const src = t.data as KvData;
      const dst = this.alloc(H * n * D);
      for (let h = 0; h < H; h++) {
        const srcBase = h * L * D;
        const dstBase = h * n * D;
        // Copy runs of consecutive positions in one go.
        let i = 0;
        while (i < n) {
          let j = i + 1;
          while (j < n && positions[j] === positions[j - 1]! + 1) j++;
          const from = srcBase + positions[i]! * D;
          dst.set(src.subarray(from, from + (j - i) * D), dstBase + i * D);
          i = j;
        }
      }
      return new ort.Tensor(this.shape.dtype, dst, [1, H, n, D]);
    };
    this.keys = this.keys.map(pick);
    this.values = this.values.map(pick);
    this.len = n;
  }
}
