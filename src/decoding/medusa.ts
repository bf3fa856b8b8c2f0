/**
 * Medusa (Cai et al. 2024): extra decoding heads on the target's last hidden state propose a tree
 * of candidates, verified in the one target forward of each round with the tree attention mask.
 *
 * How it fits the loop (the proposer never runs the target):
 *  - Every proposal sets `wantHidden`, so the verification forward returns the target's final
 *    hidden states. In observe() the proposer keeps the hidden row of the last accepted node (row 0
 *    = cur when nothing was accepted, row 1+i = candidate i): that is the state whose logits gave
 *    the round's bonus token, the new `cur`. Head i applied to it predicts the token i+1 places
 *    after cur, so head 0 fills depth 1 of the tree, head 1 depth 2, and so on.
 *  - The first round has no hidden state yet (the prefill computes no outputs): it proposes
 *    nothing but asks for the hidden state, so round 1 is a plain decoding step.
 *  - Candidates: the tree's paths of (head, rank) choices (medusa-tree.ts), each node taking the
 *    rank-r token of its head. Siblings are distinct ranks of one head, hence distinct tokens.
 *  - Acceptance: verify.ts. Exact by default (greedy: identical to plain greedy; sampling:
 *    sample-and-match, distribution-preserving). `acceptance: "typical"` switches sampling to
 *    Medusa's typical acceptance, which is NOT distribution-preserving. The KV cache keeps only
 *    cur + the accepted path (verify.ts gathers it).
 *
 * The heads run as their own small ONNX graph, one row per round (medusa-heads-model.ts).
 */
import { z } from "zod";
import { ensureMedusaHeadsOnnx, inspectMedusaHeads, type MedusaHeadsConfig } from "../builder/medusa-heads.js";
import type { CausalLM } from "../engine/causal-lm.js";
import { InvalidOptionError, ModelLoadError } from "../errors.js";
import { defineMethod, type MethodResources } from "./method-definition.js";
import { checkRoundSize, OPTION_MAX } from "./limits.js";
import { MedusaHeadsModel, checkHeadsAgainstBase, loadMedusaHeads } from "./medusa-heads-model.js";
import { parseOptions, type OptionsOf } from "./options.js";
import { topK } from "./top-k.js";
import { resolveTree, type FlatTree } from "./medusa-tree.js";
import type { DecodeContext, Proposal, Proposer, RoundResult, TypicalAcceptance } from "./proposer.js";

/** Medusa's defaults for typical acceptance (posterior_threshold, posterior_alpha). */
export const TYPICAL_DEFAULTS = { posteriorThreshold: 0.09, posteriorAlpha: 0.3 } as const;

export { MedusaHeadsModel, baseHiddenSize, checkHeadsAgainstBase, loadMedusaHeads } from "./medusa-heads-model.js";
export { topK } from "./top-k.js";

export const MEDUSA_OPTIONS = {
  tree: z
    .union([
      z.string().max(20000),
      z.array(z.array(z.number().int().min(0).max(1023)).min(1).max(64)).min(1).max(OPTION_MAX.medusaTreeNodes),
    ])
    .optional()
    .describe('Tree: "default", "chain", "sparse-N" or paths [[0],[1],[0,0]].'),
  acceptance: z.enum(["exact", "typical"]).optional().describe("exact (default, lossless) or typical (not distribution-preserving)."),
  posteriorThreshold: z
    .number()
    .gt(0)
    .max(1)
    .optional()
    .describe(`typical acceptance: posterior threshold (default ${TYPICAL_DEFAULTS.posteriorThreshold}).`),
  posteriorAlpha: z.number().gt(0).max(1).optional().describe(`typical acceptance: alpha (default ${TYPICAL_DEFAULTS.posteriorAlpha}).`),
};

export interface MedusaSettings {
  tree: FlatTree;
  acceptance?: TypicalAcceptance;
}

/** Validate the method options that concern Medusa. */
export function medusaSettings(heads: MedusaHeadsConfig, options: OptionsOf<typeof MEDUSA_OPTIONS>): MedusaSettings {
  const o = parseOptions(MEDUSA_OPTIONS, options);
  const tree = resolveTree(o.tree, heads);
  const mode = o.acceptance ?? "exact";
  if (mode === "exact") {
    if (o.posteriorThreshold !== undefined || o.posteriorAlpha !== undefined) {
      throw new InvalidOptionError(
        (v) => `${v.option("posteriorThreshold")} / ${v.option("posteriorAlpha")} only apply with ${v.option("acceptance")} "typical".`,
      );
    }
    return { tree };
  }
  const threshold = o.posteriorThreshold ?? TYPICAL_DEFAULTS.posteriorThreshold;
  const alpha = o.posteriorAlpha ?? TYPICAL_DEFAULTS.posteriorAlpha;
  return { tree, acceptance: { mode: "typical", threshold, alpha } };
}

export function createMedusaProposer(target: CausalLM, heads: MedusaHeadsModel, settings: MedusaSettings): Proposer {
  const { tree, acceptance } = settings;
  const V = heads.config.vocabSize;
  /** topk[h] = the head's best tokens for the current cur, or undefined before the first round. */
  let top: number[][] | undefined;
  let noted = false;
  return {
    method: "medusa",
    models: [heads],
    async propose(ctx: DecodeContext, maxTokens: number): Promise<Proposal> {
      if (!noted) {
        noted = true;
        ctx.stats.extra.medusaTreeNodes = tree.paths.length;
        ctx.stats.extra.medusaHeads = heads.numHeads;
        if (acceptance && !ctx.greedy) {
          ctx.stats.note(
            "typical acceptance (Medusa) is on: it is NOT distribution-preserving; output does not follow the target's sampling distribution exactly",
          );
        }
        if (acceptance && ctx.greedy) ctx.stats.note("typical acceptance has no effect at temperature 0: greedy verification is exact");
      }
      if (!top) return { tokens: [], wantHidden: true };
      const n = Math.min(maxTokens, tree.paths.length);
      const tokens: number[] = new Array(n);
      for (let i = 0; i < n; i++) tokens[i] = top[tree.head[i]!]![tree.rank[i]!]!;
      // A head may offer fewer tokens than a rank asks for (tiny vocabularies): drop those nodes
      // and their subtrees.
      if (tokens.some((t) => t === undefined)) return prune(tokens, tree.parents.slice(0, n), acceptance);
      return { tokens, parents: tree.parents.slice(0, n), wantHidden: true, acceptance };
    },
    async observe(ctx: DecodeContext, result: RoundResult): Promise<void> {
      const out = result.output;
      if (!out.hidden || !out.hiddenSize) {
        // A round the loop ran without asking us (no room for candidates): no hidden state, so
        // the next round is a plain step that fetches one again.
        top = undefined;
        return;
      }
      const row = result.path.length > 0 ? 1 + result.path[result.path.length - 1]! : 0;
      const Hs = out.hiddenSize;
      const hidden = out.hidden.slice(row * Hs, (row + 1) * Hs);
      const logits = await heads.run(hidden);
      const limit = ctx.vocabLimit !== undefined ? Math.min(ctx.vocabLimit, V) : V;
      top = tree.topk.map((k, h) => (k > 0 ? topK(logits.subarray(h * V, (h + 1) * V), k, limit) : []));
      ctx.stats.count("medusaHeadRuns");
    },
  };
}

function prune(tokens: (number | undefined)[], parents: number[], acceptance?: TypicalAcceptance): Proposal {
  const keep: number[] = [];
  const newIndex = new Map<number, number>();
  for (let i = 0; i < tokens.length; i++) {
    const p = parents[i]!;
    if (tokens[i] === undefined || (p !== -1 && !newIndex.has(p))) continue;
    newIndex.set(i, keep.length);
    keep.push(i);
  }
  return {
    tokens: keep.map((i) => tokens[i]!),
    parents: keep.map((i) => (parents[i] === -1 ? -1 : newIndex.get(parents[i]!)!)),
    wantHidden: true,
    acceptance,
  };
}

function headsOf(res: MethodResources): MedusaHeadsModel | undefined {
  return res.heads instanceof MedusaHeadsModel ? res.heads : undefined;
}

export const medusaMethod = defineMethod({
  name: "medusa",
  summary: (v) =>
    `Medusa heads on the target's hidden state propose a token tree, verified in one forward with tree attention (needs ${v.arg("heads")}; train them with ${v.train("medusa", "DIR")}).`,
  options: MEDUSA_OPTIONS,
  async loadResources(req) {
    if (!req.heads) {
      throw new InvalidOptionError(
        (v) =>
          `Method "medusa" needs Medusa heads: pass ${v.arg("heads")} (a directory with medusa_lm_head.safetensors and ` +
          `config.json, as published by the Medusa project or written by ${v.train("medusa", req.target.lm.info.dir)}).`,
      );
    }
    const lm = req.target.lm;
    if (!lm.info.hasHiddenStates) {
      throw new ModelLoadError(
        (v) => `${lm.label} has no hidden_states output, which Medusa heads read. Build the model with ${v.build(lm.info.dir)} ` +
          `(builder graphs expose the final hidden state).`,
      );
    }
    checkHeadsAgainstBase(inspectMedusaHeads(req.heads), lm); // before building their ONNX graph
    const path = req.heads;
    const { stamp, onnxFile } = ensureMedusaHeadsOnnx(path);
    const opts = { device: req.store.device, threads: req.store.threads };
    const heads = await req.store.loadExtra(path, JSON.stringify(["medusa-heads", opts]), stamp, () => loadMedusaHeads(path, opts), onnxFile);
    return { heads };
  },
  unavailableReason(res) {
    const t = res.target;
    if (!t.info.hasHiddenStates) return (v) => `${t.label} has no hidden_states output; rebuild it with ${v.build(t.info.dir)} to use Medusa heads.`;
    if (!t.info.hasTreeMask) return (v) => `${t.label} has no tree_attention_mask input; rebuild it with ${v.build(t.info.dir)} to verify Medusa trees.`;
    if (!headsOf(res)) return (v) => `needs Medusa heads (${v.arg("heads")}); train them with ${v.train("medusa", t.info.dir)}.`;
    return undefined;
  },
  create(res, options) {
    const heads = headsOf(res);
    if (!heads) throw new InvalidOptionError((v) => `Method "medusa" needs Medusa heads (${v.arg("heads")}).`);
    checkHeadsAgainstBase({ ...heads.config, file: heads.file }, res.target);
    const settings = medusaSettings(heads.config, options);
    // Sized before anything is built: cur + every tree node in one verification forward.
    checkRoundSize(res.target.info, 1 + settings.tree.parents.length, "the Medusa tree (tree)");
    return createMedusaProposer(res.target, heads, settings);
  },
});
