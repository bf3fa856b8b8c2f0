/**
 * EAGLE-2 (Li et al. 2024, "EAGLE-2: Faster Inference of Language Models with Dynamic Draft
 * Trees"): a one-layer autoregressive draft head over the target's own features proposes a
 * dynamic token tree, verified in the round's one target forward with the tree mask.
 *
 * How it fits the loop (the proposer never runs the target):
 *  - Every proposal sets `wantFeatures`, so verification returns the target's pre-final-norm
 *    features for cur and every candidate. observe() feeds the head the committed pairs
 *    (f_p, x_{p+1}) of the round (cur and the accepted path, each with the token that followed it)
 *    at their positions, extending the head's KV cache with TRUE target features. The prefill
 *    asks for features too (`prefillFeatures`), so the head's cache covers the whole prompt.
 *  - The last committed row's output ("root") holds the head's guess f^_c of cur's feature and the
 *    logits of the token after cur (depth 1).
 *  - Drafting (EAGLE-2): depth 1 = the root's top `topK` tokens, scored by log-probability. Then,
 *    `depth - 1` times, the `topK` best nodes of the newest layer (by cumulative log-probability,
 *    the head's confidence in the whole path) are run through the head in one call (tree mask over
 *    the committed cache + their ancestors; their input feature is the parent's predicted
 *    feature) and each gets its `topK` best children. Finally all drafted nodes are reranked by
 *    cumulative score and the best `total` are verified. A child never scores above its parent, so
 *    the chosen set always contains its nodes' ancestors. Drafted entries are cropped from the
 *    head's cache after drafting. Default (no treeTopK, no treeTotal): topK is chosen per round,
 *    6 down to 1 (a chain), from measured costs (eagle-shape.ts).
 *  - A head with a draft vocabulary (EAGLE-3's d2t, train-eagle --draft-vocab) outputs logits over
 *    its N draft ids only; drafted ids map back to target ids here (the map is ascending, so a
 *    vocabulary limit is a prefix of it). Tokens outside it are never drafted, only verified.
 *  - Acceptance: verify.ts. Greedy: exact (the target's argmax path); sampling: sample-and-match,
 *    distribution-preserving whatever the head proposes (a draft vocabulary only makes the draft
 *    distribution zero outside the subset). Siblings are distinct top-k tokens.
 *  - Head quality only changes speed: a random head gives the same tokens, just fewer accepted.
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import {
  EAGLE_HEAD_FILE,
  EAGLE_HEAD_WEIGHTS,
  PUBLISHED_EAGLE_FILE,
  draftVocabSize,
  ensureEagleHeadOnnx,
  inspectEagleHead,
  type EagleHeadConfig,
  type EagleHeadWeightForm,
} from "../builder/eagle-head.js";
import { SafetensorsSource } from "../builder/safetensors.js";
import type { CausalLM } from "../engine/causal-lm.js";
import { KVCache } from "../engine/kv-cache.js";
import { createSession, type Device } from "../engine/session.js";
import { InvalidOptionError, ModelLoadError, VocabMismatchError } from "../errors.js";
import { EAGLE_AUTO_MAX_TOTAL, EagleBudget } from "./eagle-budget.js";
import { EagleShape } from "./eagle-shape.js";
import { checkRoundSize, maxRoundTokens, OPTION_MAX } from "./limits.js";
import { topK } from "./top-k.js";
import { SidecarModel } from "./sidecar-model.js";
import { z } from "zod";
import { defineMethod, type MethodResources } from "./method-definition.js";
import { parseOptions, withFlag, type OptionsOf } from "./options.js";
import type { DecodeContext, Proposal, Proposer, RoundResult } from "./proposer.js";
import type { ForwardOutput } from "../engine/causal-lm.js";

/**
 * Defaults: EAGLE-2 uses total 60, depth 5-6, top-k 10 on GPUs. Without treeTotal the nodes
 * verified per round are chosen each round from the measured verification cost (eagle-budget.ts),
 * up to `autoTotal`; without treeTopK too, each round's width (topK down to a chain) is chosen
 * from the measured drafting cost per head row (eagle-shape.ts).
 */
export const EAGLE_DEFAULTS = { total: "auto", autoTotal: EAGLE_AUTO_MAX_TOTAL, depth: 6, topK: 6 } as const;
/** Bounds on client-controlled tree sizes. */
export const EAGLE_LIMITS = { total: OPTION_MAX.treeTotal, depth: OPTION_MAX.treeDepth, topK: OPTION_MAX.treeTopK } as const;

export interface HeadOutput {
  /** [rows, draft vocabulary] (draft ids; the whole vocabulary when the head has no draft vocabulary) */
  logits: Float32Array;
  /** [rows, hidden] */
  features: Float32Array;
}

/** A loaded EAGLE head: its ONNX session and configuration. */
export class EagleHeadModel extends SidecarModel<EagleHeadConfig> {
  newCache(): KVCache {
    return new KVCache({ numLayers: 1, kvHeads: this.config.numHeads, headDim: this.config.headDim, dtype: "float32" });
  }

  /**
   * Run rows on top of `cache` (which grows by rows). `mask` is row-major [rows, cache.length + rows]
   * (1 = may attend); omitted = causal.
   */
  async run(cache: KVCache, tokens: number[], positions: number[], features: Float32Array, mask?: Uint8Array): Promise<HeadOutput> {
    const S = tokens.length;
    const H = this.config.hiddenSize;
    const past = cache.length;
    const total = past + S;
    if (features.length !== S * H) throw new VocabMismatchError(`EAGLE head: got ${features.length / H} feature rows for ${S} tokens (hidden ${H}).`);
    if (!mask) {
      mask = new Uint8Array(S * total);
      for (let t = 0; t < S; t++) mask.fill(1, t * total, t * total + past + t + 1);
    }
    const ids = new BigInt64Array(S);
    const pos = new BigInt64Array(S);
    for (let i = 0; i < S; i++) {
      ids[i] = BigInt(tokens[i]!);
      pos[i] = BigInt(positions[i]!);
    }
    const out = await this.timedRun({
      input_ids: new ort.Tensor("int64", ids, [1, S]),
      position_ids: new ort.Tensor("int64", pos, [1, S]),
      features: new ort.Tensor("float32", features, [1, S, H]),
      "past_key_values.0.key": cache.key(0),
      "past_key_values.0.value": cache.value(0),
      tree_attention_mask: new ort.Tensor("uint8", mask, [1, S, total]),
    });
    cache.update([out["present.0.key"]!], [out["present.0.value"]!]);
    return { logits: out.logits!.data as Float32Array, features: out.next_features!.data as Float32Array };
  }
}

/** Load the head in `headPath` for the target checkpoint in `modelDir` (building its ONNX on first use). */
export async function loadEagleHead(
  headPath: string,
  modelDir: string,
  opts: { device?: Device; threads?: number; weights?: EagleHeadWeightForm } = {},
): Promise<EagleHeadModel> {
  const { onnxFile } = ensureEagleHeadOnnx(headPath, modelDir, undefined, opts.weights);
  const { file, dir: _dir, ...config } = inspectEagleHead(headPath);
  // A one-layer head is small: one thread keeps it from competing with the target's pool.
  const session = await createSession(onnxFile, { device: opts.device, threads: opts.threads ?? 1 });
  return new EagleHeadModel(session, config, file, onnxFile);
}

export interface EagleSettings {
  /** Nodes verified per round: fixed, or (auto) at most this many, chosen from measured costs. */
  total: number;
  /** treeTotal not given: choose each round's size from the measured verification cost. */
  auto: boolean;
  depth: number;
  /** Children per expanded node: fixed, or (autoWidth) at most this many, chosen per round. */
  topK: number;
  /** Neither treeTotal nor treeTopK given: choose each round's width from measured costs (eagle-shape.ts). */
  autoWidth: boolean;
}

export const EAGLE_OPTIONS = {
  treeTotal: z.number().int().min(1).max(EAGLE_LIMITS.total).optional().describe(`Draft-tree nodes verified per round (default auto); auto sizes each round from the measured verify cost, at most ${EAGLE_AUTO_MAX_TOTAL}.`),
  treeDepth: z.number().int().min(1).max(EAGLE_LIMITS.depth).optional().describe(`Draft depth (default ${EAGLE_DEFAULTS.depth}).`),
  headWeights: z
    .enum(EAGLE_HEAD_WEIGHTS)
    .optional()
    .describe("The head graph's weights: float32 (default), or int8/int4 blocks (a smaller, faster head on CPU; acceptance may change, output stays exact)."),
  treeTopK: withFlag(
    "treeTopK",
    "tree-topk",
    z.number().int().min(1).max(EAGLE_LIMITS.topK).optional().describe(`Children per expanded node (default ${EAGLE_DEFAULTS.topK}).`),
  ),
};

export function eagleSettings(options: OptionsOf<typeof EAGLE_OPTIONS>): EagleSettings {
  const o = parseOptions(EAGLE_OPTIONS, options);
  return {
    total: o.treeTotal ?? EAGLE_DEFAULTS.autoTotal,
    auto: o.treeTotal === undefined,
    depth: o.treeDepth ?? EAGLE_DEFAULTS.depth,
    topK: o.treeTopK ?? EAGLE_DEFAULTS.topK,
    autoWidth: o.treeTotal === undefined && o.treeTopK === undefined,
  };
}

/** How many of the ascending `ids` are below `limit`. */
function countBelow(ids: Int32Array, limit: number): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ids[mid]! < limit) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** log-softmax of `row[0, limit)` at the given ids. */
function logProbs(row: Float32Array, limit: number, ids: number[]): number[] {
  let max = -Infinity;
  for (let i = 0; i < limit; i++) if (row[i]! > max) max = row[i]!;
  let sum = 0;
  for (let i = 0; i < limit; i++) sum += Math.exp(row[i]! - max);
  const lse = max + Math.log(sum);
  return ids.map((i) => row[i]! - lse);
}

interface DraftNode {
  token: number;
  parent: number; // index into nodes, -1 = root
  score: number;
  depth: number;
  /** Index of the node's entry in the head cache (set once the node is expanded). */
  slot?: number;
  /** The head's output feature at this node (after expansion). */
  feature?: Float32Array;
}

/** Measured costs per (head, target, tree settings), kept while both are loaded. */
const LEARNED = new WeakMap<EagleHeadModel, WeakMap<CausalLM, Map<string, { sizer: EagleBudget; shaper?: EagleShape }>>>();

function learnedCosts(head: EagleHeadModel, target: CausalLM, settings: EagleSettings): { sizer: EagleBudget; shaper?: EagleShape } {
  let byTarget = LEARNED.get(head);
  if (!byTarget) LEARNED.set(head, (byTarget = new WeakMap()));
  let bySettings = byTarget.get(target);
  if (!bySettings) byTarget.set(target, (bySettings = new Map()));
  const key = JSON.stringify([settings.total, settings.depth, settings.topK, settings.autoWidth]);
  let got = bySettings.get(key);
  if (!got) {
    got = { sizer: new EagleBudget(settings.total), shaper: settings.autoWidth ? new EagleShape(settings.topK) : undefined };
    bySettings.set(key, got);
  }
  return got;
}

export function createEagleProposer(target: CausalLM, head: EagleHeadModel, settings: EagleSettings): Proposer {
  const H = head.config.hiddenSize;
  // The head's logits cover its draft vocabulary (draft id i = target id d2t[i], ascending) or the whole vocabulary.
  const V = draftVocabSize(head.config);
  const d2t = head.config.draftVocab;
  const cache = head.newCache();
  // Published EAGLE-1/2 heads read the target's normed hidden states, ours its pre-norm features.
  const onHidden = head.config.featureSource === "hidden_states";
  const want = onHidden ? { wantHidden: true } : { wantFeatures: true };
  const rowsOf = (o: ForwardOutput | undefined) => (onHidden ? o?.hidden : o?.features);
  // auto: what the budget and the width chooser measured lives as long as this head and target
  // (later generations start from it instead of probing again); the stats count this generation.
  const learned = settings.auto ? learnedCosts(head, target, settings) : undefined;
  const sizer = learned?.sizer;
  // Width too (neither treeTotal nor treeTopK given): wide tree or narrower, down to a chain.
  const shaper = learned?.shaper;
  sizer?.resetReport();
  shaper?.resetReport();
  /** The last proposal, for the budget: nodes verified, their predicted acceptance, target ms before verification. */
  let pending: { verified: number; predicted: number; predictedAt: number[]; targetMs0: number } | undefined;
  /**
   * ms of the last observe() (the head's run over the round's committed rows): per-round head work
   * outside drafting, so the budget counts it in the round's cost beside the drafting time.
   */
  let commitMs = 0;
  /** Head output of the last committed row: predicts cur's feature and the token after cur. */
  let root: { logits: Float32Array; feature: Float32Array } | undefined;
  /** Set when the head lost track of the committed sequence; the rest decodes plainly (still exact). */
  let broken = false;
  let noted = false;

  const commit = async (start: number, tokens: number[], feats: Float32Array): Promise<void> => {
    if (cache.length !== start) {
      broken = true;
      root = undefined;
      return;
    }
    const positions = tokens.map((_, i) => start + i);
    const out = await head.run(cache, tokens, positions, feats);
    const last = tokens.length - 1;
    root = { logits: out.logits.slice(last * V, (last + 1) * V), feature: out.features.slice(last * H, (last + 1) * H) };
  };

  return {
    method: "eagle",
    models: [head],
    prefillFeatures: !onHidden,
    prefillHidden: onHidden,
    async prepare(ctx: DecodeContext, prefill?: ForwardOutput): Promise<void> {
      const f = rowsOf(prefill);
      if (!f) return; // one-token prompt: the first round fetches features
      await commit(0, ctx.tokens.slice(1), f);
    },
    async propose(ctx: DecodeContext, maxTokens: number): Promise<Proposal> {
      const t0 = performance.now();
      pending = undefined;
      if (!noted) {
        noted = true;
        ctx.stats.extra.eagleTreeTotal = settings.auto ? `auto (at most ${settings.total})` : settings.total;
        ctx.stats.extra.eagleTreeDepth = settings.depth;
        ctx.stats.extra.eagleTreeTopK = shaper ? `auto (at most ${settings.topK})` : settings.topK;
      }
      if (broken) return { tokens: [] };
      if (!root) return { tokens: [], ...want };
      // Draft ids below `limit` are the target ids below ctx.vocabLimit (d2t ascending: a prefix).
      const limit = ctx.vocabLimit === undefined ? V : d2t ? countBelow(d2t, ctx.vocabLimit) : Math.min(ctx.vocabLimit, V);
      const budget = Math.min(settings.total, maxTokens);
      const K = shaper ? shaper.next() : settings.topK;
      let rows = 0;
      const committed = cache.length;
      const cur = committed; // position of cur
      // Expanded nodes sit at positions cur .. cur + depth - 2: keep them inside the context (and
      // never draft deeper than the budget can hold).
      const maxDepth = Math.max(1, Math.min(settings.depth, budget, Number.isFinite(target.info.maxContext) ? target.info.maxContext - cur + 1 : Infinity));
      const nodes: DraftNode[] = [];
      const addChildren = (logits: Float32Array, parent: number, base: number, depth: number): number[] => {
        const ids = topK(logits, K, limit);
        const lps = logProbs(logits, limit, ids);
        return ids.map((t, j) => nodes.push({ token: d2t ? d2t[t]! : t, parent, score: base + lps[j]!, depth }) - 1);
      };
      let layer = addChildren(root.logits, -1, 0, 1);
      try {
        for (let d = 1; d < maxDepth && layer.length > 0; d++) {
          // Expanding deeper cannot help once the budget is filled by better-scored nodes.
          const expand = [...layer].sort((a, b) => nodes[b]!.score - nodes[a]!.score || a - b).slice(0, K);
          const S = expand.length;
          const past = cache.length;
          const total = past + S;
          const mask = new Uint8Array(S * total);
          const feats = new Float32Array(S * H);
          const toks: number[] = [];
          const pos: number[] = [];
          expand.forEach((ni, r) => {
            const n = nodes[ni]!;
            mask.fill(1, r * total, r * total + committed);
            for (let a = n.parent; a !== -1; a = nodes[a]!.parent) mask[r * total + nodes[a]!.slot!] = 1;
            mask[r * total + past + r] = 1;
            feats.set(n.parent === -1 ? root!.feature : nodes[n.parent]!.feature!, r * H);
            toks.push(n.token);
            pos.push(cur + n.depth - 1);
            n.slot = past + r;
          });
          const out = await head.run(cache, toks, pos, feats, mask);
          rows += S;
          ctx.stats.count("eagleHeadRuns");
          const next: number[] = [];
          expand.forEach((ni, r) => {
            const n = nodes[ni]!;
            n.feature = out.features.slice(r * H, (r + 1) * H);
            next.push(...addChildren(out.logits.subarray(r * V, (r + 1) * V), ni, n.score, n.depth + 1));
          });
          layer = next;
        }
      } finally {
        cache.crop(committed);
      }
      // Rerank: the best `budget` nodes by cumulative score (ties: earlier node first, so a parent
      // always precedes an equally scored child), emitted in creation order (parents first).
      const ranked = nodes.map((_, i) => i).sort((a, b) => nodes[b]!.score - nodes[a]!.score || a - b);
      // auto: as many of the ranked nodes as pay for their verification at the measured costs.
      const draftMs = performance.now() - t0;
      if (shaper && sizer) {
        shaper.timeDraft(rows, draftMs);
        // Estimate every shape up to this round's width from its nodes, pick the next rounds' width.
        shaper.decide(nodes, K, maxDepth, budget, commitMs, (d) => sizer.calibrationAt(d), (T) => sizer.verifyMs(T));
      }
      const size = sizer ? sizer.choose(ranked.map((i) => nodes[i]!.score), draftMs + commitMs, budget, K, ranked.map((i) => nodes[i]!.depth)) : budget;
      const chosen = ranked.slice(0, size).sort((a, b) => a - b);
      if (sizer) {
        const predictedAt: number[] = [];
        for (const i of chosen) predictedAt[nodes[i]!.depth - 1] = (predictedAt[nodes[i]!.depth - 1] ?? 0) + Math.exp(nodes[i]!.score);
        pending = { verified: chosen.length, predicted: chosen.reduce((s, i) => s + Math.exp(nodes[i]!.score), 0), predictedAt, targetMs0: target.timing.runMs };
      }
      const index = new Map<number, number>();
      chosen.forEach((ni, j) => index.set(ni, j));
      const parents = chosen.map((ni) => {
        const p = nodes[ni]!.parent;
        if (p === -1) return -1;
        const j = index.get(p);
        if (j === undefined) throw new Error("EAGLE tree: a chosen node's parent was not chosen (scores must not increase along a path).");
        return j;
      });
      return { tokens: chosen.map((ni) => nodes[ni]!.token), parents, ...want };
    },
    async observe(ctx: DecodeContext, result: RoundResult): Promise<void> {
      if (sizer && pending && result.proposal.tokens.length === pending.verified) {
        sizer.observe(pending.verified, target.timing.runMs - pending.targetMs0, pending.predicted, result.path.length, pending.predictedAt);
        ctx.stats.extra.eagleMeanTreeTotal = Math.round(sizer.meanTotal() * 100) / 100;
        const curve = sizer.verifyCurve([1, 2, 4, 8, 16, 32, 64].filter((T) => T <= settings.total + 1));
        if (curve.length > 0) ctx.stats.extra.eagleVerifyCost = curve;
        if (shaper) {
          ctx.stats.extra.eagleMeanTreeTopK = Math.round(shaper.meanWidth() * 100) / 100;
          ctx.stats.extra.eagleTreeWidths = shaper.summary();
        }
      }
      pending = undefined;
      if (broken) return;
      const f = rowsOf(result.output);
      if (!f) {
        // A round run without our proposal (no room for candidates): the head cannot catch up.
        broken = true;
        root = undefined;
        return;
      }
      const rows = [0, ...result.path.map((i) => i + 1)];
      const feats = new Float32Array(rows.length * H);
      rows.forEach((r, j) => feats.set(f.subarray(r * H, (r + 1) * H), j * H));
      const tc = performance.now();
      await commit(result.start, [...result.acceptedTokens, result.bonus], feats);
      commitMs = performance.now() - tc;
      ctx.stats.count("eagleHeadRuns");
    },
  };
}

/** Whether `path` holds an EAGLE head (for `auto`: --heads may name Medusa or EAGLE heads). */
export function isEagleHeadDir(path: string): boolean {
  try {
    if (!statSync(path).isDirectory()) return path.endsWith(EAGLE_HEAD_FILE);
    if (existsSync(join(path, EAGLE_HEAD_FILE))) return true;
    // A published EAGLE head: config.json + model.safetensors holding an fc projection (a model has none).
    const st = join(path, PUBLISHED_EAGLE_FILE);
    return existsSync(join(path, "config.json")) && existsSync(st) && new SafetensorsSource([st]).has("fc.weight");
  } catch {
    return false;
  }
}

function headOf(res: MethodResources): EagleHeadModel | undefined {
  return res.heads instanceof EagleHeadModel ? res.heads : undefined;
}

function checkAgainstTarget(head: EagleHeadConfig & { file?: string }, target: CausalLM): void {
  const vocab = target.info.vocabSize;
  const hidden = target.info.hiddenSize;
  if ((vocab !== undefined && vocab !== head.vocabSize) || (hidden !== undefined && hidden !== head.hiddenSize)) {
    throw new VocabMismatchError(
      (v) =>
        `The EAGLE head${head.file ? ` in ${head.file}` : ""} (hidden ${head.hiddenSize}, vocabulary ${head.vocabSize}) does not fit ` +
        `${target.label} (hidden ${hidden}, vocabulary ${vocab}). Train a head for this model with ${v.train("eagle", target.info.dir)}.`,
    );
  }
}

export const eagleMethod = defineMethod({
  name: "eagle",
  summary: (v) =>
    `EAGLE-2: a one-layer draft head over the target's own features drafts a dynamic token tree, verified in one forward (needs ${v.arg("heads")} from ${v.train("eagle", "DIR")}).`,
  options: EAGLE_OPTIONS,
  async loadResources(req) {
    const lm = req.target.lm;
    if (!req.heads) {
      throw new InvalidOptionError(
        (v) =>
          `Method "eagle" needs an EAGLE head: pass ${v.arg("heads")} (a directory with eagle_head.safetensors and config.json, ` +
          `written by ${v.train("eagle", lm.info.dir)}).`,
      );
    }
    const path = req.heads;
    const info = inspectEagleHead(path);
    const needs = info.featureSource === "hidden_states" ? lm.info.hasHiddenStates : lm.info.hasFeatures;
    if (!needs || !lm.info.hasTreeMask) {
      const out = info.featureSource === "hidden_states" ? "hidden_states output (a published EAGLE-1/2 head reads it)" : "features output";
      throw new ModelLoadError((v) => `${lm.label} lacks the ${out} or the tree_attention_mask input EAGLE needs. Rebuild it with ${v.build(lm.info.dir)}.`);
    }
    checkAgainstTarget(info, lm);
    const weights = parseOptions(EAGLE_OPTIONS, req.options).headWeights ?? "float32";
    const { stamp, onnxFile } = ensureEagleHeadOnnx(path, lm.info.dir, undefined, weights);
    const opts = { device: req.store.device, threads: req.store.threads, weights };
    const heads = await req.store.loadExtra(path, JSON.stringify(["eagle-head", opts]), stamp, () => loadEagleHead(path, lm.info.dir, opts), onnxFile);
    return { heads };
  },
  unavailableReason(res) {
    const t = res.target;
    if (!t.info.hasFeatures) return (v) => `${t.label} has no features output; rebuild it with ${v.build(t.info.dir)} to use EAGLE heads.`;
    if (!t.info.hasTreeMask) return (v) => `${t.label} has no tree_attention_mask input; rebuild it with ${v.build(t.info.dir)} to verify EAGLE trees.`;
    if (!headOf(res)) return (v) => `needs an EAGLE head (${v.arg("heads")}); train one with ${v.train("eagle", t.info.dir)}.`;
    return undefined;
  },
  create(res, options) {
    const head = headOf(res);
    if (!head) throw new InvalidOptionError((v) => `Method "eagle" needs an EAGLE head (${v.arg("heads")}).`);
    checkAgainstTarget({ ...head.config, file: head.file }, res.target);
    const settings = eagleSettings(options);
    // One verification forward carries cur + the tree: size it against the model before drafting
    // (auto: the cap shrinks to what the model allows).
    if (settings.auto) settings.total = Math.max(1, Math.min(settings.total, maxRoundTokens(res.target.info) - 1));
    checkRoundSize(res.target.info, 1 + settings.total, "treeTotal (the EAGLE tree)");
    return createEagleProposer(res.target, head, settings);
  },
});
