/**
 * Logits -> next-token distribution. One place for it, so that every decoding method (plain,
 * draft-model, lookahead, Medusa...) processes the target's and the draft's logits identically;
 * speculative sampling is only lossless when p and q go through the same transform.
 *
 * Rows: a multi-token forward pass returns one [T, V] buffer. Pass a row as
 * `buffer.subarray(t * V, (t + 1) * V)`: subarray is a view (no copy). `argmax` and `greedyToken`
 * also take (offset, length) directly.
 *
 * `vocabLimit`: models often pad their embedding beyond the tokenizer (e.g. 151936 rows for
 * 151665 tokens); ids >= vocabLimit get probability 0 and are never picked.
 *
 * Scratch buffers are module-level and reused (JavaScript is single-threaded; none of these
 * functions re-enter each other), so steady-state calls allocate almost nothing.
 */
import type { SamplingOptions } from "./options.js";
import { isGreedy } from "./options.js";

// ---------------------------------------------------------------------------------------------
// Scratch space.

/** Generation-stamped marks for "token already seen" (avoids clearing a V-sized array per call). */
let stamp = new Uint32Array(0);
let stampGen = 0;

function nextStamp(size: number): number {
  if (stamp.length < size) {
    stamp = new Uint32Array(Math.max(size, stamp.length * 2));
    stampGen = 0;
  }
  stampGen++;
  if (stampGen === 0xffffffff) {
    stamp.fill(0);
    stampGen = 1;
  }
  return stampGen;
}

let selectScratch = new Float32Array(0);
let indexScratch: Int32Array = new Int32Array(0);

function floatScratch(n: number): Float32Array {
  if (selectScratch.length < n) selectScratch = new Float32Array(Math.max(n, selectScratch.length * 2));
  return selectScratch;
}
function indexScratchOf(n: number): Int32Array {
  if (indexScratch.length < n) indexScratch = new Int32Array(Math.max(n, indexScratch.length * 2));
  return indexScratch;
}
/** A larger index scratch that keeps the first `used` entries of `current`. */
function growIndexScratch(current: Int32Array, used: number): Int32Array {
  const bigger = new Int32Array(Math.max(64, current.length * 2));
  bigger.set(current.subarray(0, used));
  indexScratch = bigger;
  return bigger;
}

function clampLimit(vocabLimit: number | undefined, n: number): number {
  if (vocabLimit === undefined) return n;
  return Math.max(0, Math.min(n, Math.floor(vocabLimit)));
}

// ---------------------------------------------------------------------------------------------

/**
 * Hugging Face repetition penalty, in place: for every distinct token in `history`, a positive
 * logit is divided by `penalty` and a negative one multiplied (once, however often it occurred).
 * Ids outside the row are ignored. Returns `logits`.
 */
export function applyRepetitionPenalty(logits: Float32Array, history: ArrayLike<number>, penalty: number): Float32Array {
  if (penalty === 1 || history.length === 0) return logits;
  const n = logits.length;
  const gen = nextStamp(n);
  for (let h = 0; h < history.length; h++) {
    const t = history[h]!;
    if (t >= 0 && t < n && stamp[t] !== gen) {
      stamp[t] = gen;
      const v = logits[t]!;
      logits[t] = v < 0 ? v * penalty : v / penalty;
    }
  }
  return logits;
}

/**
 * Index of the largest value in `logits[offset, offset + length)`, looking only at the first
 * `vocabLimit` entries of that row; relative to the row. Ties go to the lowest id; NaN is never
 * picked; a row with nothing above -Infinity yields 0.
 */
export function argmax(logits: Float32Array, vocabLimit?: number, offset = 0, length?: number): number {
  const len = length ?? logits.length - offset;
  const n = clampLimit(vocabLimit, len);
  let best = -Infinity;
  let bestIdx = 0;
  for (let i = 0; i < n; i++) {
    const v = logits[offset + i]!;
    if (v > best) {
      best = v;
      bestIdx = i;
    }
  }
  return bestIdx;
}

/**
 * The greedy next token under `o`'s repetition penalty (the only option that changes an argmax),
 * without copying the row. Same row conventions as `argmax`.
 */
export function greedyToken(
  logits: Float32Array,
  o?: SamplingOptions,
  history?: ArrayLike<number>,
  vocabLimit?: number,
  offset = 0,
  length?: number,
): number {
  const penalty = o?.repetitionPenalty ?? 1;
  if (penalty === 1 || !history || history.length === 0) return argmax(logits, vocabLimit, offset, length);
  const len = length ?? logits.length - offset;
  const n = clampLimit(vocabLimit, len);
  const gen = nextStamp(len);
  for (let h = 0; h < history.length; h++) {
    const t = history[h]!;
    if (t >= 0 && t < len) stamp[t] = gen;
  }
  let best = -Infinity;
  let bestIdx = 0;
  for (let i = 0; i < n; i++) {
    let v = logits[offset + i]!;
    if (stamp[i] === gen) v = v < 0 ? v * penalty : v / penalty;
    if (v > best) {
      best = v;
      bestIdx = i;
    }
  }
  return bestIdx;
}

/**
 * The value that would sit at ascending position `m` of `a[0, n)` (quickselect; reorders `a`).
 * Median-of-three Hoare partitioning; falls back to a native sort of the remaining range if it
 * ever degenerates, so the worst case stays O(n log n).
 */
function selectAscending(a: Float32Array, n: number, m: number): number {
  let lo = 0;
  let hi = n - 1;
  for (let round = 0; hi > lo; round++) {
    if (round > 64) {
      a.subarray(lo, hi + 1).sort();
      return a[m]!;
    }
    const mid = (lo + hi) >>> 1;
    const x = a[lo]!;
    const y = a[mid]!;
    const z = a[hi]!;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (m <= j) hi = j;
    else if (m >= i) lo = i;
    else return a[m]!; // between j and i everything equals the pivot
  }
  return a[m]!;
}

/** The k-th largest value of `row[0, n)` (1-based k, 0 < k < n; NaN counts as -Infinity). */
function kthLargest(row: Float32Array, n: number, k: number): number {
  const s = floatScratch(n);
  for (let i = 0; i < n; i++) {
    const v = row[i]!;
    s[i] = v === v ? v : -Infinity;
  }
  return selectAscending(s, n, n - k);
}

/** Token `a` ranks before token `b`: heavier, or as heavy with a lower id. */
function before(e: Float32Array, a: number, b: number): boolean {
  const wa = e[a]!;
  const wb = e[b]!;
  return wa > wb || (wa === wb && a < b);
}

/**
 * Top-p over unnormalized weights `e[0, n)`. Tokens are ranked by weight (ties: lower id first);
 * a token is kept iff the mass ranked before it is below `target` (so at least one is kept).
 * `cand[0, count)` must hold (in any order) a prefix of that ranking that contains every token
 * that can be kept. Finds the last kept token by a weighted quickselect (expected O(count), no
 * sort), zeroes every token ranked after it, and returns the kept mass.
 */
function applyTopP(e: Float32Array, n: number, cand: Int32Array, count: number, target: number): number {
  let lo = 0;
  let hi = count;
  let acc = 0; // mass of the tokens known to rank before cand[lo, hi), all kept
  let cutId = cand[0]!;
  for (let round = 0; hi > lo; round++) {
    if (round > 96) {
      // Degenerate pivots (should not happen): finish by sorting what is left.
      const rest = cand.subarray(lo, hi).sort((a, b) => (before(e, a, b) ? -1 : before(e, b, a) ? 1 : 0));
      for (let c = 0; c < rest.length && acc < target; c++) {
        cutId = rest[c]!;
        acc += e[cutId]!;
      }
      break;
    }
    const x = cand[lo]!;
    const y = cand[(lo + hi) >>> 1]!;
    const z = cand[hi - 1]!;
    const piv = before(e, x, y)
      ? before(e, y, z) ? y : before(e, x, z) ? z : x
      : before(e, x, z) ? x : before(e, y, z) ? z : y;
    const pw = e[piv]!;
    // Partition [lo, hi): tokens ranked before the pivot go to [lo, mid).
    let mid = lo;
    let massBefore = 0;
    for (let i = lo; i < hi; i++) {
      const t = cand[i]!;
      const w = e[t]!;
      if (w > pw || (w === pw && t < piv)) {
        cand[i] = cand[mid]!;
        cand[mid] = t;
        mid++;
        massBefore += w;
      }
    }
    if (acc + massBefore >= target) {
      hi = mid; // the pivot is not kept, so the cut is among the heavier ones
      continue;
    }
    acc += massBefore + pw; // all the heavier ones and the pivot are kept
    cutId = piv;
    if (acc >= target) break;
    for (let i = mid; i < hi; i++) {
      if (cand[i] === piv) {
        cand[i] = cand[mid]!;
        cand[mid] = piv;
        break;
      }
    }
    lo = mid + 1;
  }
  const cw = e[cutId]!;
  let kept = 0;
  for (let i = 0; i < n; i++) {
    const w = e[i]!;
    if (w > cw || (w === cw && i <= cutId)) kept += w;
    else e[i] = 0;
  }
  return kept;
}

/**
 * The next-token distribution for one row of logits under `o`: a new Float32Array (or `out`,
 * which must have the row's length; it may be `logits` itself to work in place).
 *
 * Steps, as in HF transformers: repetition penalty over `history` (distinct tokens), then, if
 * greedy (temperature 0 or topK 1), a one-hot at the argmax; else temperature, top-k (ties with
 * the k-th kept), top-p (keeps at least one), min-p, and a max-subtracted softmax. Entries at or
 * beyond `vocabLimit` are 0. NaN logits get probability 0.
 *
 * Cost: a few linear passes and one exp per entry; top-k is a quickselect and top-p a weighted
 * quickselect over the few tokens that can possibly be kept, so nothing sorts the vocabulary.
 */
export function toProbabilities(
  logits: Float32Array,
  o: SamplingOptions,
  history?: ArrayLike<number>,
  vocabLimit?: number,
  out?: Float32Array,
): Float32Array {
  const size = logits.length;
  if (out && out.length !== size) {
    throw new RangeError(`toProbabilities: out has length ${out.length}, the logits row has ${size}.`);
  }
  const p = out ?? new Float32Array(size);
  const n = clampLimit(vocabLimit, size);
  p.fill(0, n);
  if (n === 0) return p;

  // Source of the (penalized) logits: `p` itself when a penalty must be applied to a copy.
  let src = logits;
  const penalty = o.repetitionPenalty ?? 1;
  if (penalty !== 1 && history && history.length > 0) {
    if (p !== logits) p.set(logits.subarray(0, n));
    applyRepetitionPenalty(n === size ? p : p.subarray(0, n), history, penalty);
    src = p;
  }

  const invT = 1 / o.temperature!;
  const best = argmax(src, n);
  const lmax = src[best]!;
  if (isGreedy(o) || !(invT < Infinity) || !(lmax > -Infinity && lmax < Infinity)) {
    // Greedy (or a temperature so small it is), or nothing usable (all masked / an infinite
    // logit): a one-hot at the argmax.
    p.fill(0, 0, n);
    p[best] = 1;
    return p;
  }

  const topK = o.topK ?? 0;
  const topP = o.topP ?? 1;
  const minP = o.minP ?? 0;
  const kActive = topK > 0 && topK < n;
  const pActive = topP < 1;
  const thrK = kActive ? kthLargest(src, n, topK) : -Infinity;

  // Softmax numerators w = exp((l - lmax) / T) for the survivors of top-k, and of min-p when
  // top-p is off (w < minP x w_max, w_max = 1, i.e. l < lmax + T ln minP); everything else is 0
  // without computing an exp. NaN fails the `>=`.
  const thr = pActive || minP <= 0 ? thrK : Math.max(thrK, lmax + Math.log(minP) / invT);
  const gather = kActive && pActive;
  let cand: Int32Array | undefined = gather ? indexScratchOf(Math.min(n, topK * 2 + 16)) : undefined;
  let count = 0;
  let total = 0;
  let survivors = 0;
  for (let i = 0; i < n; i++) {
    const v = src[i]!;
    if (v >= thr) {
      const w = Math.fround(Math.exp((v - lmax) * invT)); // exactly what is stored
      p[i] = w;
      total += w;
      survivors++;
      if (cand) {
        if (count === cand.length) cand = growIndexScratch(cand, count); // many ties with the k-th (rare)
        cand[count++] = i;
      }
    } else {
      p[i] = 0;
    }
  }

  if (pActive) {
    // Candidates: a prefix of the ranking that holds every token top-p and min-p can keep.
    // A token lighter than (1 - topP) * total / survivors cannot be kept by top-p (it and all
    // lighter ones weigh less than (1 - topP) * total); 0.999 leaves room for rounding.
    const floor = Math.max(((1 - topP) * total * 0.999) / survivors, minP, Number.MIN_VALUE);
    if (cand) {
      let c = 0;
      for (let j = 0; j < count; j++) {
        const i = cand[j]!;
        if (p[i]! >= floor) cand[c++] = i;
      }
      count = c;
    } else {
      cand = indexScratchOf(64);
      for (let i = 0; i < n; i++) {
        if (p[i]! >= floor) {
          if (count === cand.length) cand = growIndexScratch(cand, count);
          cand[count++] = i;
        }
      }
    }
    total = applyTopP(p, n, cand, count, topP * total);
  }

  const inv = 1 / total;
  for (let i = 0; i < n; i++) p[i] = p[i]! * inv;
  return p;
}
