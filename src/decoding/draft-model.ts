/**
 * Draft-model speculative decoding (Leviathan et al. 2023; Chen et al. 2023): a small model of the
 * same family drafts K tokens one forward at a time, the target verifies them all in one forward
 * (verify.ts: greedy argmax match, or min(1, p/q) rejection sampling with the draft's q).
 * early-exit.ts reuses this proposer with the target's own first layers as the draft.
 *
 * The draft keeps its own KV cache. Invariant: it holds a prefix of `ctx.tokens` (`held`).
 *  - prepare(): prefill the draft with the prompt but its last token.
 *  - propose(): catch up — feed every token of ctx.tokens the draft has not seen in one forward
 *    (normally the bonus token, plus the last drafted token after a fully accepted round); its
 *    last logits row drafts token 1; then one forward per further drafted token. The K-th drafted
 *    token is never fed (its logits are not needed).
 *  - observe(): crop the draft cache to its longest prefix that still agrees with ctx.tokens.
 * Drafting uses the same toProbabilities() transform as the target (temperature, top-k/p, min-p,
 * penalty), and the same greedyToken() (argmax after the repetition penalty) for greedy decoding.
 */
import type { CausalLM } from "../engine/causal-lm.js";
import type { KVCache } from "../engine/kv-cache.js";
import type { LoadedModel } from "../engine/model-store.js";
import { ContextLengthError, InvalidOptionError, VocabMismatchError } from "../errors.js";
import { greedyToken, sampleFrom, toProbabilities } from "../sampling/index.js";
import {
  CONTROLLER_OPTIONS,
  createController,
  resolveControllerOptions,
  type ControllerOptions,
  type KController,
  type ResolvedControllerOptions,
} from "./controllers.js";
import { defineMethod, type MethodResources } from "./method-definition.js";
import { EMPTY_PROPOSAL, type DecodeContext, type Proposal, type Proposer, type RoundResult } from "./proposer.js";
import type { StatsCollector } from "./stats.js";

export interface DraftProposerOptions {
  /** Method name for stats ("draft" or "early-exit"). */
  method: string;
  target: CausalLM;
  draft: CausalLM;
  options: ControllerOptions;
  /** Extra stats the method reports for every generation (early-exit: exit layer, trained or untrained exit). */
  extraStats?: Record<string, number | string>;
}

/** Validate the K options of a draft method (InvalidOptionError) without making a proposer. */
export function validateDraftOptions(options: ControllerOptions): ResolvedControllerOptions {
  return resolveControllerOptions(options);
}

/** One generation's draft proposer. */
export function createDraftProposer(o: DraftProposerOptions): Proposer {
  return new DraftProposer(o.method, o.target, o.draft, resolveControllerOptions(o.options), o.extraStats);
}

class DraftProposer implements Proposer {
  readonly method: string;
  readonly models: CausalLM[];
  private readonly draft: CausalLM;
  private readonly target: CausalLM;
  private readonly opts: ResolvedControllerOptions;
  private controller!: KController;
  private cache!: KVCache;
  /** Token ids in the draft cache, in order (always a prefix of ctx.tokens after observe). */
  private held: number[] = [];
  private stats?: StatsCollector;
  /** Rounds by number of drafted tokens (index = K). */
  private readonly kHistogram: number[] = [];
  /** Draft forwards in the decode phase (the prefill not counted). */
  private draftForwards = 0;
  private draftedRounds = 0;
  private draftedTotal = 0;
  // The current round, for the controller.
  private roundForwards = 0;
  private roundDraftMs = 0;
  /** Time of this round's catch-up forward when it fed more than two tokens (not representative). */
  private roundLongCatchUpMs = 0;
  private targetMsBefore = 0;

  constructor(
    method: string,
    target: CausalLM,
    draft: CausalLM,
    opts: ResolvedControllerOptions,
    private readonly extraStats: Record<string, number | string> = {},
  ) {
    this.method = method;
    this.target = target;
    this.draft = draft;
    this.models = draft === target ? [] : [draft];
    this.opts = opts;
  }

  async prepare(ctx: DecodeContext): Promise<void> {
    this.stats = ctx.stats;
    const P = ctx.promptLength;
    const k = this.opts.k;
    const tMax = this.target.info.maxContext;
    const dMax = this.draft.info.maxContext;
    if (P > dMax) {
      throw new ContextLengthError(
        `The prompt has ${P} tokens but the draft ${this.draft.label} has a context of ${dMax}. Shorten the prompt to at ` +
          `most ${dMax} tokens, or use a draft with a longer context.`,
      );
    }
    // A round needs the prompt, K drafted tokens and the bonus token in the target's context, and
    // the prompt plus K - 1 drafted tokens in the draft's.
    const fits = Math.min(tMax - P - 1, dMax - P + 1);
    if (this.opts.explicitK && k > fits) {
      const which = tMax - P - 1 <= dMax - P + 1 ? `${this.target.label} has a context of ${tMax}` : `the draft ${this.draft.label} has a context of ${dMax}`;
      throw new ContextLengthError(
        (v) =>
          `K=${k} would run past the context: the prompt has ${P} tokens, a round needs prompt + K + 1 positions, and ${which}. ` +
          (fits >= 1 ? `Lower ${v.option("k")} to at most ${fits} (or use "auto"), or shorten the prompt.` : `Shorten the prompt to leave room for drafted tokens.`),
      );
    }
    this.controller = createController(this.opts, Math.max(1, fits));
    ctx.stats.extra.kController = this.controller.name;
    if (this.method === "early-exit") ctx.stats.extra.exitLayer = this.draft.info.numLayers;
    Object.assign(ctx.stats.extra, this.extraStats);
    this.cache = this.draft.newCache();
    this.held = [];
    if (P > 1) {
      const prefix = ctx.tokens.slice(0, P - 1);
      await this.draft.forward(this.cache, prefix, { logits: "none" });
      this.held = prefix;
    }
  }

  async propose(ctx: DecodeContext, room: number): Promise<Proposal> {
    const t0 = performance.now();
    this.targetMsBefore = ctx.stats.targetMs;
    this.roundForwards = 0;
    this.roundLongCatchUpMs = 0;
    const tokens = ctx.tokens;
    // The draft holds held.length tokens and needs tokens.length + K - 1 positions for K drafts.
    const draftRoom = this.draft.info.maxContext - tokens.length + 1;
    const K = Math.min(this.controller.nextK(), room, draftRoom);
    if (K <= 0) {
      if (draftRoom <= 0) ctx.stats.note(`the draft's context (${this.draft.info.maxContext}) was exhausted; the rest was decoded without drafting`);
      this.record(0);
      this.roundDraftMs = performance.now() - t0;
      return EMPTY_PROPOSAL;
    }

    // Catch up: feed what the draft has not seen (at least the last token, whose logits we need).
    let from = this.held.length;
    if (from >= tokens.length) from = tokens.length - 1;
    if (from < this.cache.length) this.cache.crop(from);
    const feed = tokens.slice(from);
    const tc = performance.now();
    let out = await this.draft.forward(this.cache, feed, { logits: "last" });
    // Normally 1 or 2 tokens; more after plain rounds, and then not a typical draft step.
    if (feed.length > 2) this.roundLongCatchUpMs = performance.now() - tc;
    this.held = tokens.slice(0, tokens.length);
    this.roundForwards++;

    const V = this.target.info.vocabSize ?? out.vocab;
    // Never draft ids the target cannot take (a draft embedding padded beyond the target's).
    const limit = Math.min(ctx.vocabLimit ?? Number.POSITIVE_INFINITY, V, out.vocab);
    const penalty = ctx.sampling.repetitionPenalty !== undefined && ctx.sampling.repetitionPenalty !== 1;
    const history = penalty ? tokens.slice() : undefined;
    const drafted: number[] = [];
    const draftProbs: Float32Array[] | undefined = ctx.greedy ? undefined : [];
    for (let i = 0; ; i++) {
      const row = out.logits.subarray(0, out.vocab);
      let x: number;
      let top = 1;
      if (ctx.greedy) {
        x = greedyToken(row, ctx.sampling, history, limit); // what verify.ts takes as the target's token
        history?.push(x);
        if (this.controller.needsConfidence) top = softmaxAt(row, x, limit);
      } else {
        const q = toProbabilities(row, ctx.sampling, history, limit);
        x = sampleFrom(q, ctx.rng);
        top = maxOf(q);
        draftProbs!.push(padTo(q, V));
        history?.push(x);
      }
      if (x >= V) {
        throw new VocabMismatchError(`The draft ${this.draft.label} proposed token ${x}, outside the target's vocabulary of ${V}.`);
      }
      drafted.push(x);
      if (drafted.length >= K || this.controller.shouldStop(i, top)) break;
      out = await this.draft.forward(this.cache, [x], { logits: "last" });
      this.held.push(x);
      this.roundForwards++;
    }
    this.draftForwards += this.roundForwards;
    this.record(drafted.length);
    this.roundDraftMs = performance.now() - t0;
    return draftProbs ? { tokens: drafted, draftProbs } : { tokens: drafted };
  }

  observe(ctx: DecodeContext, result: RoundResult): void {
    const t0 = performance.now();
    const tokens = ctx.tokens;
    const n = Math.min(this.held.length, tokens.length);
    let keep = 0;
    while (keep < n && this.held[keep] === tokens[keep]) keep++;
    if (keep < this.cache.length) this.cache.crop(keep);
    if (keep < this.held.length) this.held.length = keep;

    const drafted = result.proposal.tokens.length;
    const long = this.roundLongCatchUpMs > 0;
    this.controller.update({
      drafted,
      accepted: result.path.length,
      draftForwards: long ? this.roundForwards - 1 : this.roundForwards,
      draftMs: this.roundDraftMs + (performance.now() - t0) - this.roundLongCatchUpMs,
      targetMs: ctx.stats.targetMs - this.targetMsBefore,
    });
    this.roundForwards = 0;
    this.roundDraftMs = 0;
  }

  private record(drafted: number): void {
    while (this.kHistogram.length <= drafted) this.kHistogram.push(0);
    this.kHistogram[drafted]!++;
    if (drafted > 0) {
      this.draftedRounds++;
      this.draftedTotal += drafted;
    }
  }

  dispose(): void {
    const s = this.stats;
    if (s && this.controller) {
      // Rounds the loop ran without asking for a proposal (no room left) drafted nothing.
      const recorded = this.kHistogram.reduce((a, b) => a + b, 0);
      if (s.rounds > recorded) {
        if (this.kHistogram.length === 0) this.kHistogram.push(0);
        this.kHistogram[0]! += s.rounds - recorded;
      }
      for (const [key, v] of Object.entries(this.controller.summary())) s.extra[key] = v;
      s.extra.kHistogram = [...this.kHistogram];
      s.extra.meanK = this.draftedRounds > 0 ? Math.round((this.draftedTotal / this.draftedRounds) * 1000) / 1000 : 0;
      s.extra.draftForwards = this.draftForwards;
    }
    this.cache?.reset();
    this.held = [];
  }
}

/** softmax(row)[x] over the first `limit` entries (the draft's confidence in a greedy token). */
function softmaxAt(row: Float32Array, x: number, limit: number): number {
  const n = Math.min(limit, row.length);
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (row[i]! > max) max = row[i]!;
  if (!(max > -Infinity && max < Infinity)) return 1;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const v = row[i]!;
    if (v === v) sum += Math.exp(v - max);
  }
  return Math.exp(row[x]! - max) / sum;
}

function maxOf(a: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) if (a[i]! > m) m = a[i]!;
  return m;
}

/** q with exactly `n` entries (zero-padded, or cut where the draft's extra ids have no mass). */
function padTo(q: Float32Array, n: number): Float32Array {
  if (q.length === n) return q;
  if (q.length > n) return q.slice(0, n);
  const out = new Float32Array(n);
  out.set(q);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Vocabulary check and the method definition.

/**
 * Draft and target must share a tokenizer: identical token strings at every id. Their embeddings
 * may be padded differently (e.g. 151936 vs 152064 rows) as long as both cover the tokenizer.
 * Without tokenizer files the logits sizes must be equal.
 */
export function checkDraftVocab(target: LoadedModel, draft: LoadedModel): void {
  const tv = target.lm.info.vocabSize;
  const dv = draft.lm.info.vocabSize;
  const same = "Draft and target must come from the same model family (same tokenizer).";
  const tt = target.tokenizer;
  const dt = draft.tokenizer;
  if (tt && dt) {
    const cmp = tt.compareVocab(dt);
    if (!cmp.identical) {
      const sizes = cmp.sizeA !== cmp.sizeB ? ` The target's tokenizer has ${cmp.sizeA} tokens, the draft's ${cmp.sizeB}.` : "";
      const diffs =
        cmp.mismatchCount > 0
          ? ` ${cmp.mismatchCount} ids map to different tokens, e.g. ` +
            cmp.examples.map((e) => `id ${e.id}: ${JSON.stringify(e.a)} vs ${JSON.stringify(e.b)}`).join(", ") +
            "."
          : "";
      throw new VocabMismatchError(
        `The draft ${draft.lm.info.dir} does not share the target's tokenizer (${target.lm.info.dir}).${sizes}${diffs} ${same}`,
      );
    }
    for (const [who, v] of [
      ["target", tv],
      ["draft", dv],
    ] as const) {
      if (v !== undefined && v < cmp.sizeA) {
        throw new VocabMismatchError(
          `The ${who}'s output vocabulary (${v}) is smaller than the shared tokenizer (${cmp.sizeA} tokens). ${same}`,
        );
      }
    }
    return;
  }
  if (tv !== undefined && dv !== undefined && tv !== dv) {
    const tok = tt ?? dt;
    if (tok && Math.min(tv, dv) >= tok.vocabSize) return; // one tokenizer, both embeddings cover it (padding)
    throw new VocabMismatchError(
      `The draft ${draft.lm.info.dir} has a vocabulary of ${dv} but the target ${target.lm.info.dir} has ${tv}. ${same}` +
        (tok ? "" : " (With tokenizer.json in both directories, embeddings padded to different sizes are accepted.)"),
    );
  }
}

export const draftMethod = defineMethod({
  name: "draft",
  summary: (v) =>
    "Draft-model speculation: a smaller model of the same family drafts K tokens, the target verifies them in one forward " +
    `(exact for greedy and sampling; needs ${v.arg("draft")}).`,
  options: CONTROLLER_OPTIONS,
  async loadResources(req) {
    validateDraftOptions(req.options);
    if (!req.draft) {
      throw new InvalidOptionError(
        (v) =>
          `Method "draft" needs a draft model: pass ${v.arg("draft")}, a smaller model of the same family ` +
          `that shares the target's tokenizer. Without a second model, try ${v.method("early-exit")} or ${v.method("prompt-lookup")}.`,
      );
    }
    const draft = await req.store.load(req.draft, { pin: true, variant: req.draftVariant });
    try {
      checkDraftVocab(req.target, draft);
    } catch (err) {
      req.store.unpin(draft);
      throw err;
    }
    return { draft: draft.lm, loaded: [draft] };
  },
  unavailableReason(res: MethodResources) {
    return res.draft ? undefined : (v) => `needs a draft model of the same family (${v.arg("draft")})`;
  },
  create(res: MethodResources, options): Proposer {
    if (!res.draft) throw new InvalidOptionError((v) => `Method "draft" needs a draft model: pass ${v.arg("draft")}.`);
    return createDraftProposer({ method: "draft", target: res.target, draft: res.draft, options });
  },
});
