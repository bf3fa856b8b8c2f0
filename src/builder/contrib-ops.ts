/**
 * Emitters for onnxruntime's fused `com.microsoft` operators used by the decoder graph's opt-in
 * "fused" form (BuildDecoderOptions.attention): GroupQueryAttention (rotary embedding, causal +
 * tree masking, KV append and GQA in one node) and SkipSimplifiedLayerNormalization (residual add +
 * RMSNorm in one node). One layer drops from ~40 nodes to ~10 (the twin target: 475 -> 141
 * onnxruntime nodes). Not the default: GroupQueryAttention is not bitwise row-consistent between
 * one-token and multi-token forwards (see llama.ts). CPU float32 kernels only.
 */
import { attr, dtypeCode, type GraphBuilder } from "./onnx-graph.js";
import { MS_DOMAIN } from "./onnx-graph.js";

const INT32 = dtypeCode("int32");

/**
 * The per-forward inputs GroupQueryAttention needs besides Q/K/V and the cache, built once:
 * `seqlensK` int32 [batch] = total_sequence_length - 1 for every row (each row is attended in full;
 * padding and tree structure come from `bias`), `totalSeqLen` int32 scalar.
 */
export function gqaLengths(g: GraphBuilder, attentionMask: string, inputIds: string): { seqlensK: string; totalSeqLen: string } {
  const totalLen = g.op("Shape", [attentionMask], { start: 1, end: 2 }); // int64 [1]
  const batch = g.op("Shape", [inputIds], { start: 0, end: 1 }); // int64 [1]
  const totalSeqLen = g.op("Cast", [g.op("Squeeze", [totalLen, g.constInt64([0])])], { to: INT32 });
  const lastIndex = g.op("Sub", [totalLen, g.constInt64([1])]);
  const seqlensK = g.op("Cast", [g.op("Expand", [lastIndex, batch])], { to: INT32 });
  return { seqlensK, totalSeqLen };
}

/**
 * An additive attention bias [batch, 1, seq, total] from a boolean "may attend" mask of the same
 * rank-4 shape (or broadcastable): 0 where allowed, `negInf` where not.
 */
export function attentionBias(g: GraphBuilder, allowed4d: string, negInf: number): string {
  return g.op("Where", [allowed4d, g.constFloat(0), g.constFloat(negInf)]);
}

export interface GqaArgs {
  /** Packed [B, S, (NH + 2 KV) * D] (then `key`/`value` are omitted) or the query [B, S, NH * D]. */
  query: string;
  key?: string;
  value?: string;
  pastKey: string;
  pastValue: string;
  seqlensK: string;
  totalSeqLen: string;
  /** [max_positions, D/2] tables (HF half rotation); with `positionIds`, rotary runs inside the op. */
  cosCache: string;
  sinCache: string;
  positionIds: string;
  /** [B or 1, 1, S, T] additive bias. */
  bias: string;
  numHeads: number;
  kvHeads: number;
  /** Softmax scale; the decoder folds 1/sqrt(head_dim) into W_q, so it passes 1. */
  scale: number;
  /** Output names for present key / value. */
  presentKey: string;
  presentValue: string;
}

/** com.microsoft GroupQueryAttention; returns the attention output [B, S, NH * D]. */
export function groupQueryAttention(g: GraphBuilder, a: GqaArgs): string {
  const inputs = [a.query, a.key ?? "", a.value ?? "", a.pastKey, a.pastValue, a.seqlensK, a.totalSeqLen, a.cosCache, a.sinCache, a.positionIds, a.bias];
  const out = g.freshName("gqa_out");
  g.node(
    "GroupQueryAttention",
    inputs,
    { num_heads: a.numHeads, kv_num_heads: a.kvHeads, do_rotary: 1, rotary_interleaved: 0, scale: attr.float(a.scale) },
    [out, a.presentKey, a.presentValue],
    MS_DOMAIN,
  );
  return out;
}

/**
 * com.microsoft SkipSimplifiedLayerNormalization: sum = x + skip, y = RMSNorm(sum) * weight.
 * Returns [y, sum].
 */
export function skipRmsNorm(g: GraphBuilder, x: string, skip: string, weight: string, eps: number): [string, string] {
  const y = g.freshName("skip_rms");
  const sum = g.freshName("residual");
  g.node("SkipSimplifiedLayerNormalization", [x, skip, weight], { epsilon: attr.float(eps) }, [y, "", "", sum], MS_DOMAIN);
  return [y, sum];
}
