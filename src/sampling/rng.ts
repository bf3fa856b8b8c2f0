/**
 * A seeded, reproducible pseudo-random number generator: xoshiro128** (Blackman & Vigna), with
 * its 128-bit state filled from the seed by a SplitMix-style counter hashed with MurmurHash3's
 * 32-bit finalizer.
 *
 * Why not a dependency: it is twenty lines, it must be seedable (Math.random is not), and its
 * output must be bit-identical on every platform and Node version so that a seed reproduces a
 * generation forever. Everything here is 32-bit integer arithmetic (Math.imul, >>>), which
 * JavaScript defines exactly.
 */

const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** MurmurHash3 fmix32: a bijective 32-bit mixer. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /**
   * @param seed any finite number; integers up to 2^53 are used in full (the low and high 32-bit
   * halves both feed the state), fractional parts are dropped, negative values are allowed.
   */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new RangeError(`Rng seed must be a finite number (got ${seed}).`);
    const n = Math.trunc(seed);
    const lo = n >>> 0; // ToUint32 is modular, so negatives are fine
    const hi = Math.floor(n / TWO_POW_32) >>> 0;
    // SplitMix-style: a Weyl sequence started from the seed, each step hashed.
    let x = (lo ^ Math.imul(hi, 0x9e3779b9) ^ 0x6a09e667) >>> 0;
    const step = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      return fmix32(x ^ hi);
    };
    this.s0 = step();
    this.s1 = step();
    this.s2 = step();
    this.s3 = step();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // all-zero state is a fixed point
  }

  /** The next 32-bit unsigned integer (xoshiro128**). */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A uniform double in [0, 1) with 53 random bits (two 32-bit outputs). */
  next(): number {
    const a = this.nextUint32() >>> 5; // 27 bits
    const b = this.nextUint32() >>> 6; // 26 bits
    return (a * 67108864 + b) / TWO_POW_53;
  }

  /** An independent generator seeded from this one's next outputs (advances this one). */
  fork(): Rng {
    const r = new Rng(0);
    r.s0 = fmix32(this.nextUint32() ^ 0x243f6a88);
    r.s1 = fmix32(this.nextUint32() ^ 0x85a308d3);
    r.s2 = fmix32(this.nextUint32() ^ 0x13198a2e);
    r.s3 = fmix32(this.nextUint32() ^ 0x03707344);
    if ((r.s0 | r.s1 | r.s2 | r.s3) === 0) r.s0 = 1;
    return r;
  }

  /** A copy in the same state (it will produce the same sequence). */
  clone(): Rng {
    const r = new Rng(0);
    r.s0 = this.s0;
    r.s1 = this.s1;
    r.s2 = this.s2;
    r.s3 = this.s3;
    return r;
  }

  /** The raw state, e.g. to checkpoint a generation. */
  getState(): [number, number, number, number] {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
  }

  /** Restores a state from `getState()`. */
  setState(state: readonly [number, number, number, number]): void {
    const [a, b, c, d] = state;
    if ((a | b | c | d) === 0) throw new RangeError("Rng state must not be all zero.");
    this.s0 = a | 0;
    this.s1 = b | 0;
    this.s2 = c | 0;
    this.s3 = d | 0;
  }
}
