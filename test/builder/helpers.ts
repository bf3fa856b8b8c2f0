/** Helpers for the builder tests: run a built graph directly through onnxruntime-node. */
import * as ort from "onnxruntime-node";
import { expect } from "vitest";
import type { DecoderConfig } from "../../src/builder/index.js";

export interface RunResult {
  logits: Float32Array;
  hidden?: Float32Array;
  present: ort.Tensor[][]; // [layer][key, value]
}

export interface Kv {
  keys: ort.Tensor[];
  values: ort.Tensor[];
}

export function emptyKv(cfg: DecoderConfig, layers: number, dtype: "float32" | "float16" = "float32"): Kv {
  const mk = () =>
    new ort.Tensor(dtype, dtype === "float32" ? new Float32Array(0) : new Uint16Array(0), [1, cfg.numKvHeads, 0, cfg.headDim]);
  return { keys: Array.from({ length: layers }, mk), values: Array.from({ length: layers }, mk) };
}

export async function run(
  session: ort.InferenceSession,
  cfg: DecoderConfig,
  layers: number,
  tokens: number[],
  opts: { kv?: Kv; positions?: number[]; treeMask?: Uint8Array; attention?: number[]; dtype?: "float32" | "float16" } = {},
): Promise<{ logits: Float32Array | Uint16Array; hidden?: Float32Array; kv: Kv }> {
  const kv = opts.kv ?? emptyKv(cfg, layers, opts.dtype);
  const past = kv.keys[0]!.dims[2]!;
  const S = tokens.length;
  const T = past + S;
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor("int64", BigInt64Array.from(tokens.map(BigInt)), [1, S]),
    attention_mask: new ort.Tensor("int64", BigInt64Array.from((opts.attention ?? new Array(T).fill(1)).map(BigInt)), [1, T]),
    position_ids: new ort.Tensor(
      "int64",
      BigInt64Array.from((opts.positions ?? tokens.map((_, i) => past + i)).map(BigInt)),
      [1, S],
    ),
  };
  for (let i = 0; i < layers; i++) {
    feeds[`past_key_values.${i}.key`] = kv.keys[i]!;
    feeds[`past_key_values.${i}.value`] = kv.values[i]!;
  }
  if (session.inputNames.includes("tree_attention_mask")) {
    let m = opts.treeMask;
    if (!m) {
      m = new Uint8Array(S * T);
      for (let t = 0; t < S; t++) for (let j = 0; j <= past + t; j++) m[t * T + j] = 1;
    }
    feeds.tree_attention_mask = new ort.Tensor("uint8", m, [1, S, T]);
  }
  const out = await session.run(feeds);
  return {
    logits: out.logits!.data as Float32Array | Uint16Array,
    hidden: out.hidden_states?.data as Float32Array | undefined,
    kv: {
      keys: Array.from({ length: layers }, (_, i) => out[`present.${i}.key`]!),
      values: Array.from({ length: layers }, (_, i) => out[`present.${i}.value`]!),
    },
  };
}

/** max |a - b| / max |b|. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / den;
}

export function argmax(a: ArrayLike<number>, row: number, width: number): number {
  let best = 0;
  for (let j = 1; j < width; j++) if (a[row * width + j]! > a[row * width + best]!) best = j;
  return best;
}

/**
 * What makes greedy speculation exact: scoring tokens[split..] in one forward after tokens[..split]
 * gives each of them bitwise the logits of one-token decoding.
 */
export async function expectRowConsistent(s: ort.InferenceSession, cfg: DecoderConfig, tokens: number[], split = 7): Promise<void> {
  const V = cfg.vocabSize;
  const pre = await run(s, cfg, cfg.numLayers, tokens.slice(0, split));
  const multi = await run(s, cfg, cfg.numLayers, tokens.slice(split), { kv: pre.kv });
  let kv = pre.kv;
  for (let t = split; t < tokens.length; t++) {
    const one = await run(s, cfg, cfg.numLayers, [tokens[t]!], { kv });
    kv = one.kv;
    expect(Array.from(one.logits)).toEqual(Array.from((multi.logits as Float32Array).subarray((t - split) * V, (t - split + 1) * V)));
  }
}
