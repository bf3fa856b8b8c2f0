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
 * The heads run as their own small ONNX graph (`medusa_heads.onnx`, built from the Medusa-format
 * safetensors on first use), one row per round.
 */
import * as ort from "onnxruntime-node";
import { ensureMedusaHeadsOnnx, inspectMedusaHeads, type MedusaHeadsConfig } from "../builder/medusa-heads.js";
import type { CausalLM } from "../engine/causal-lm.js";
import { createSession, type Device } from "../engine/session.js";
import { InvalidOptionError, ModelLoadError, VocabMismatchError } from "../errors.js";
import type { MethodDefinition, MethodOptions, MethodResources } from "./methods.js";
import { checkRoundSize } from "./limits.js";
import { resolveTree, type FlatTree } from "./medusa-tree.js";
import type { DecodeContext, Proposal, Proposer, RoundResult, TypicalAcceptance } from "./proposer.js";

/** Medusa's defaults for typical acceptance (posterior_threshold, posterior_alpha). */
export const TYPICAL_DEFAULTS = { posteriorThreshold: 0.09, posteriorAlpha: 0.3 } as const;

/** Loaded heads: the ONNX session plus what the proposer needs to know about them. */
export class MedusaHeadsModel {
  readonly timing = { runs: 0, runMs: 0 };
  private disposed = false;

  constructor(
    readonly session: ort.InferenceSession,
    readonly config: MedusaHeadsConfig,
    /** The safetensors file and the ONNX file built from it. */
    readonly file: string,
    readonly onnxFile: string,
  ) {}

  get numHeads(): number {
    return this.config.numHeads;
  }

  /** Logits of every head for one hidden row: [heads, vocab], row-major. */
  async run(hiddenRow: Float32Array): Promise<Float32Array> {
    const H = this.config.hiddenSize;
    if (hiddenRow.length !== H) {
      throw new VocabMismatchError(`The Medusa heads take hidden states of size ${H} but got a row of ${hiddenRow.length}.`);
    }
    const t0 = performance.now();
    const out = await this.session.run({ hidden_states: new ort.Tensor("float32", hiddenRow, [1, 1, H]) });
    this.timing.runMs += performance.now() - t0;
    this.timing.runs++;
    return out.medusa_logits!.data as Float32Array;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.session.release();
  }
}

/**
 * Load heads from a directory (medusa_lm_head.safetensors + config.json) or the safetensors file,
 * building `medusa_heads.onnx` on first use. The caller owns the result (dispose() it); the
 * method's loadResources caches it in the ModelStore, which frees it on unload/dispose.
 */
export async function loadMedusaHeads(path: string, opts: { device?: Device; threads?: number; onProgress?: (m: string) => void } = {}): Promise<MedusaHeadsModel> {
  const { onnxFile } = ensureMedusaHeadsOnnx(path, opts.onProgress);
  const { file, ...config } = inspectMedusaHeads(path);
  const session = await createSession(onnxFile, { device: opts.device, threads: headsThreads(config, opts.threads) });
  return new MedusaHeadsModel(session, config, file, onnxFile);
}

/**
 * Small heads run on one thread: a second intra-op pool next to the target's only competes with
 * it for the cores (measured on the demo fixture: heads run 2.8 -> 0.6 ms, decoding 2.6x faster).
 * Heads with big LM heads (real vocabularies) keep the caller's setting.
 */
function headsThreads(config: MedusaHeadsConfig, threads: number | undefined): number | undefined {
  const small = config.numHeads * config.vocabSize * config.hiddenSize <= 16_000_000;
  return threads ?? (small ? 1 : undefined);
}

/** The base model's hidden size (graph output metadata, else config.json). */
export function baseHiddenSize(target: CausalLM): number | undefined {
  if (target.info.hiddenSize) return target.info.hiddenSize;
  const cfg = (target.dirInfo.config.text_config ?? target.dirInfo.config) as Record<string, unknown>;
  return typeof cfg.hidden_size === "number" ? cfg.hidden_size : undefined;
}

/** Throw VocabMismatchError when heads and base disagree on hidden size or vocabulary. */
export function checkHeadsAgainstBase(heads: MedusaHeadsConfig & { file?: string }, target: CausalLM): void {
  const what = heads.file ? `The Medusa heads in ${heads.file}` : "The Medusa heads";
  const hidden = baseHiddenSize(target);
  if (hidden !== undefined && hidden !== heads.hiddenSize) {
    throw new VocabMismatchError(
      `${what} take hidden states of size ${heads.hiddenSize}, but ${target.label} has hidden size ${hidden}. ` +
        `Heads only work on the base model they were trained for; train heads for this model with ` +
        `\`spec-decode train-medusa --model ${target.info.dir}\`.`,
    );
  }
  const vocab = target.info.vocabSize;
  if (vocab !== undefined && vocab !== heads.vocabSize) {
    throw new VocabMismatchError(
      `${what} predict ${heads.vocabSize} tokens, but ${target.label} has a vocabulary of ${vocab}. ` +
        `Heads only work on the base model they were trained for; train heads for this model with ` +
        `\`spec-decode train-medusa --model ${target.info.dir}\`.`,
    );
  }
}

export interface MedusaSettings {
  tree: FlatTree;
  acceptance?: TypicalAcceptance;
}

/** Validate the method options that concern Medusa. */
export function medusaSettings(heads: MedusaHeadsConfig, o: MethodOptions): MedusaSettings {
  const tree = resolveTree(o.tree, heads);
  const mode = o.acceptance ?? "exact";
  if (mode !== "exact" && mode !== "typical") {
    throw new InvalidOptionError(`acceptance must be "exact" or "typical" (got "${String(mode)}").`);
  }
  if (mode === "exact") {
    if (o.posteriorThreshold !== undefined || o.posteriorAlpha !== undefined) {
      throw new InvalidOptionError(`posteriorThreshold / posteriorAlpha only apply with acceptance "typical".`);
    }
    return { tree };
  }
  const threshold = o.posteriorThreshold ?? TYPICAL_DEFAULTS.posteriorThreshold;
  const alpha = o.posteriorAlpha ?? TYPICAL_DEFAULTS.posteriorAlpha;
  if (!(threshold > 0 && threshold <= 1)) throw new InvalidOptionError(`posteriorThreshold must be in (0, 1] (got ${threshold}).`);
  if (!(alpha > 0 && alpha <= 1)) throw new InvalidOptionError(`posteriorAlpha must be in (0, 1] (got ${alpha}).`);
  return { tree, acceptance: { mode: "typical", threshold, alpha } };
}

/**
 * Indices of the k largest values of `row[0, n)`, best first (ties: lower id first).
 * One pass with a small sorted buffer: O(n) compares for small k.
 */
export function topK(row: Float32Array, k: number, n = row.length): number[] {
  const kk = Math.min(k, n);
  const ids: number[] = [];
  const vals: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = row[i]!;
    if (!(v === v)) continue; // NaN
    if (ids.length === kk && !(v > vals[kk - 1]!)) continue;
    let j = ids.length === kk ? kk - 1 : ids.length;
    while (j > 0 && v > vals[j - 1]!) {
      if (j < kk) {
        vals[j] = vals[j - 1]!;
        ids[j] = ids[j - 1]!;
      }
      j--;
    }
    vals[j] = v;
    ids[j] = i;
    if (ids.length > kk) {
      ids.length = kk;
      vals.length = kk;
    }
  }
  return ids;
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

export const medusaMethod: MethodDefinition = {
  name: "medusa",
  summary:
    "Medusa heads on the target's hidden state propose a token tree, verified in one forward with tree attention (needs --heads; train them with `spec-decode train-medusa`).",
  async loadResources(req) {
    if (!req.heads) {
      throw new InvalidOptionError(
        `Method "medusa" needs Medusa heads: pass --heads DIR (a directory with medusa_lm_head.safetensors and ` +
          `config.json, as published by the Medusa project or written by \`spec-decode train-medusa --model ${req.target.lm.info.dir}\`).`,
      );
    }
    const lm = req.target.lm;
    if (!lm.info.hasHiddenStates) {
      throw new ModelLoadError(
        `${lm.label} has no hidden_states output, which Medusa heads read. Build the model with \`spec-decode build\` ` +
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
    if (!t.info.hasHiddenStates) return `${t.label} has no hidden_states output; rebuild it with \`spec-decode build\` to use Medusa heads.`;
    if (!t.info.hasTreeMask) return `${t.label} has no tree_attention_mask input; rebuild it with \`spec-decode build\` to verify Medusa trees.`;
    if (!headsOf(res)) return "needs Medusa heads (--heads DIR); train them with `spec-decode train-medusa --model DIR`.";
    return undefined;
  },
  create(res, options) {
    const heads = headsOf(res);
    if (!heads) throw new InvalidOptionError("Method \"medusa\" needs Medusa heads (--heads DIR).");
    checkHeadsAgainstBase({ ...heads.config, file: heads.file }, res.target);
    const settings = medusaSettings(heads.config, options);
    // Sized before anything is built: cur + every tree node in one verification forward.
    checkRoundSize(res.target.info, 1 + settings.tree.parents.length, "the Medusa tree (tree)");
    return createMedusaProposer(res.target, heads, settings);
  },
};
