/**
 * Lookahead decoding (Fu et al., "Break the Sequential Dependency of LLM Inference Using Lookahead
 * Decoding", ICML 2024): no draft model. Every target forward carries two branches besides `cur`:
 *
 *  - Verification branch: up to G n-grams from a pool, keyed by their first token, whose first token
 *    is `cur`; their remaining N-1 tokens are merged into a prefix tree (siblings distinct) and
 *    verified by verify.ts like any candidate tree.
 *  - Lookahead branch: a 2-D Jacobi window, passed as `Proposal.aux`. It only serves the proposer.
 *
 * The window (our layout; the reference implementation's, written out):
 *   a grid g[l][c] of levels l = 0..f (f <= N-2) and columns c = 0..M-1, with g[0][0] = cur.
 *   g[l][c] sits at position cur + l + c and attends to the past, g[0][0..c] (the oldest level up
 *   to its column: a causal chain that starts at cur) and g[1..l][c] (its own column's earlier
 *   levels), itself included. So every window token sees one consistent sequence at consecutive
 *   positions, cur, g[0][1], ..., g[0][c], g[1][c], ..., g[l][c], and its logits predict the token
 *   at position cur + l + c + 1. The verification branch and cur never see window tokens, so the
 *   window cannot change what is accepted.
 * Jacobi update (after each forward; argmax, whatever the sampling mode, since it only makes guesses):
 *   new[c] = argmax of g[f][c]'s logits (the top level's outputs).
 *   - Warm-up (f < N-2): drop column 0 of every level (cur moved one position on), append
 *     new[1..] as level f+1: M shrinks by one, f grows by one. It starts from W+N-2 columns of
 *     prompt tokens picked at random, so after N-2 rounds the window is W columns × N-1 levels.
 *   - Steady state (f = N-2): column c's trajectory g[0][c], g[1][c], ..., g[N-2][c], new[c] is an
 *     N-gram at consecutive positions; it goes into the pool under key g[0][c]. Then the levels
 *     slide: level l <- level l+1, the top level <- new, and column 0 of level 0 becomes the new cur.
 *   As in the reference implementation (its default ALWAYS_FWD_ONE), the window advances one step
 *   per forward however many tokens were accepted: its positions are simply re-read relative to the
 *   new cur. Eos tokens in the new top level are replaced by random prompt tokens (as the reference
 *   does), so that the window does not fill up with eos.
 * Pool: per first token, the G most recently seen N-grams (LRU), filled from the window's
 * trajectories, from the prompt at prepare() and from the generated text as it grows.
 *
 * Graphs without a `tree_attention_mask` input (other exporters) cannot run the window or a tree:
 * the proposer then verifies the most recent pool n-gram for `cur` as a plain chain (n-grams from
 * the prompt and the generated text only) and says so in the stats notes.
 */
import type { ModelInfo } from "../engine/causal-lm.js";
import { z } from "zod";
import { checkRoundSize, OPTION_MAX } from "./limits.js";
import { defineMethod } from "./method-definition.js";
import { parseOptions, type OptionsOf } from "./options.js";
import { Rng, argmax } from "../sampling/index.js";
import { EMPTY_PROPOSAL, type AuxTokens, type DecodeContext, type Proposal, type Proposer, type RoundResult } from "./proposer.js";

/**
 * Defaults for small models on CPU, where every extra token in the forward costs real time (the
 * paper uses e.g. W=15, N=5, G=15 for 7B models on GPUs, which are memory-bound up to far larger
 * forwards). On these 2-core machines a forward of up to ~8-12 tokens costs about as much as one
 * (shared design notes), so W=3, N=3, G=3 keep a round at most 1 + 6 candidates + 5 window tokens.
 * Measured on the demo fixture (4 layers, hidden 256, 1 thread, 5 repeat-free prompts × 100
 * tokens): W3/N3/G3 mean accepted length 1.51 at 1.08× plain decoding's tokens/s; W5/N3/G5 1.60 at
 * 1.00×; W4/N3/G3 1.53 at 0.94×; W3/N4/G2 1.56 at 0.86× (timing noise on a shared CPU is ~±10%).
 */
export const LOOKAHEAD_DEFAULTS = { window: 3, ngram: 3, guesses: 3 } as const;

export interface LookaheadOptions {
  window: number;
  ngram: number;
  guesses: number;
}

export const LOOKAHEAD_OPTIONS = {
  window: z.number().int().min(1).max(OPTION_MAX.window).optional().describe(`Jacobi window W (default ${LOOKAHEAD_DEFAULTS.window}).`),
  ngram: z.number().int().min(2).max(OPTION_MAX.ngram).optional().describe(`N-gram size N (default ${LOOKAHEAD_DEFAULTS.ngram}).`),
  guesses: z.number().int().min(1).max(OPTION_MAX.guesses).optional().describe(`Candidates G verified per round (default ${LOOKAHEAD_DEFAULTS.guesses}).`),
};

export function lookaheadOptions(options: OptionsOf<typeof LOOKAHEAD_OPTIONS>, target?: Pick<ModelInfo, "maxContext" | "vocabSize">): LookaheadOptions {
  const o = parseOptions(LOOKAHEAD_OPTIONS, options);
  const window = o.window ?? LOOKAHEAD_DEFAULTS.window;
  const ngram = o.ngram ?? LOOKAHEAD_DEFAULTS.ngram;
  const guesses = o.guesses ?? LOOKAHEAD_DEFAULTS.guesses;
  // Sized before the window is built: cur + up to G n-grams of N-1 tokens + the (N-1) x (W+N-2) window.
  if (target) checkRoundSize(target, lookaheadRoundTokens({ window, ngram, guesses }), "window (W), ngram (N) and guesses (G)");
  return { window, ngram, guesses };
}

/** Upper bound on the tokens of one lookahead forward (cur + candidates + Jacobi window). */
export function lookaheadRoundTokens(o: LookaheadOptions): number {
  return 1 + o.guesses * (o.ngram - 1) + (o.ngram - 1) * (o.window + o.ngram - 2);
}

const FROM_TEXT = 1;
const FROM_JACOBI = 2;

interface PoolEntry {
  /** The N-1 tokens after the key. */
  tokens: number[];
  /** FROM_TEXT | FROM_JACOBI */
  sources: number;
}

/** Per first token, the `capacity` most recently seen continuations (least recent first). */
export class NgramPool {
  private readonly map = new Map<number, PoolEntry[]>();
  size = 0;
  constructor(readonly capacity: number) {}

  add(key: number, tokens: number[], source: number): void {
    let list = this.map.get(key);
    if (!list) {
      list = [];
      this.map.set(key, list);
    }
    const at = list.findIndex((e) => e.tokens.length === tokens.length && e.tokens.every((t, i) => t === tokens[i]));
    if (at >= 0) {
      const [e] = list.splice(at, 1);
      e!.sources |= source;
      list.push(e!);
      return;
    }
    list.push({ tokens, sources: source });
    this.size++;
    if (list.length > this.capacity) {
      list.shift();
      this.size--;
    }
  }

  /** Most recent first. */
  get(key: number): PoolEntry[] {
    const list = this.map.get(key);
    return list ? [...list].reverse() : [];
  }

  get keys(): number {
    return this.map.size;
  }
}

/** Merge n-grams into a prefix tree of at most `budget` nodes (parents first, siblings distinct). */
function buildTrie(entries: PoolEntry[], budget: number): { tokens: number[]; parents: number[]; sources: number[] } {
  const tokens: number[] = [];
  const parents: number[] = [];
  const sources: number[] = [];
  const childOf = new Map<string, number>(); // `${parent}:${token}` -> node
  for (const e of entries) {
    let parent = -1;
    for (const t of e.tokens) {
      const k = `${parent}:${t}`;
      let node = childOf.get(k);
      if (node === undefined) {
        if (tokens.length >= budget) break;
        node = tokens.length;
        tokens.push(t);
        parents.push(parent);
        sources.push(0);
        childOf.set(k, node);
      }
      sources[node]! |= e.sources;
      parent = node;
    }
  }
  return { tokens, parents, sources };
}

export function createLookaheadProposer(options: OptionsOf<typeof LOOKAHEAD_OPTIONS> = {}, target?: Pick<ModelInfo, "maxContext" | "vocabSize">): Proposer {
  const { window: W, ngram: N, guesses: G } = lookaheadOptions(options, target);
  const pool = new NgramPool(G);
  // levels[0] = g[0][1..M-1] (g[0][0] is cur); levels[l >= 1] = g[l][0..M-1].
  let levels: number[][] = [];
  let rng = new Rng(0);
  let promptTokens: number[] = [];
  let pooledFrom = 0; // n-grams of ctx.tokens starting before this index are in the pool
  let treeMode = true;
  let last: { proposal: Proposal; sources: number[]; aux: boolean } | undefined;

  const randomPromptToken = () => promptTokens[Math.floor(rng.next() * promptTokens.length)]!;

  function poolText(tokens: readonly number[]): void {
    for (let i = pooledFrom; i + N <= tokens.length; i++) pool.add(tokens[i]!, tokens.slice(i + 1, i + N), FROM_TEXT);
    pooledFrom = Math.max(pooledFrom, tokens.length - N + 1);
  }

  /** Forward index of g[l][c] among [cur, candidates (n), aux]. */
  function indexOf(l: number, c: number, n: number, M: number): number {
    if (l === 0) return c === 0 ? 0 : 1 + n + (c - 1);
    return 1 + n + (M - 1) + (l - 1) * M + c;
  }

  function buildAux(n: number): AuxTokens {
    const f = levels.length - 1;
    const M = levels[0]!.length + 1;
    const aux: AuxTokens = { tokens: [], positions: [], attends: [] };
    for (let l = 0; l <= f; l++) {
      for (let c = l === 0 ? 1 : 0; c < M; c++) {
        aux.tokens.push(l === 0 ? levels[0]![c - 1]! : levels[l]![c]!);
        aux.positions.push(l + c);
        const sees: number[] = [];
        for (let k = 0; k <= c; k++) sees.push(indexOf(0, k, n, M));
        for (let m = 1; m <= l; m++) sees.push(indexOf(m, c, n, M));
        aux.attends.push(sees);
      }
    }
    return aux;
  }

  return {
    method: "lookahead",

    async prepare(ctx: DecodeContext) {
      const info = ctx.target.info;
      treeMode = info.hasTreeMask && info.multiTokenWithPast !== false;
      if (!treeMode) {
        ctx.stats.note(
          `lookahead: ${ctx.target.label} has no tree_attention_mask input, so the Jacobi lookahead branch and ` +
            `tree verification are off; the most recent pool n-gram (from the prompt and the generated text) is ` +
            `verified as a chain instead. Rebuild the model with \`spec-decode build\` for full lookahead decoding.`,
        );
      }
      promptTokens = ctx.tokens.slice(0, ctx.promptLength);
      rng = new Rng((ctx.sampling.seed ?? 0) ^ 0x5eed);
      levels = [Array.from({ length: W + N - 3 }, randomPromptToken)];
      pooledFrom = 0;
      poolText(ctx.tokens);
      Object.assign(ctx.stats.extra, { window: W, ngram: N, guesses: G, poolSize: pool.size });
      ctx.stats.count("poolHits", 0);
    },

    async propose(ctx: DecodeContext, maxTokens: number): Promise<Proposal> {
      const cur = ctx.tokens[ctx.tokens.length - 1]!;
      const entries = pool.get(cur);
      const trie = treeMode
        ? buildTrie(entries, maxTokens)
        : buildTrie(entries.slice(0, 1), Math.min(maxTokens, N - 1));
      const n = trie.tokens.length;
      let proposal: Proposal = n > 0 ? { tokens: trie.tokens, parents: trie.parents } : EMPTY_PROPOSAL;
      let withAux = false;
      if (treeMode) {
        const aux = buildAux(n);
        const start = ctx.cache.length;
        const maxPos = start + Math.max(0, ...aux.positions);
        const fits = start + 1 + n + aux.tokens.length <= ctx.target.info.maxContext && maxPos < ctx.target.info.maxContext;
        if (aux.tokens.length > 0 && fits) {
          proposal = { ...proposal, tokens: trie.tokens, parents: trie.parents, aux };
          withAux = true;
        }
      }
      if (n > 0) ctx.stats.count("poolLookups");
      last = { proposal, sources: trie.sources, aux: withAux };
      return proposal;
    },

    observe(ctx: DecodeContext, result: RoundResult) {
      const round = last;
      last = undefined;
      if (round && result.proposal === round.proposal && result.path.length > 0) {
        ctx.stats.count("poolHits");
        const src = round.sources[result.path[result.path.length - 1]!]!;
        if (src & FROM_JACOBI) ctx.stats.count("poolHitsJacobi");
        if (src & FROM_TEXT) ctx.stats.count("poolHitsText");
      }
      if (round?.aux && result.proposal === round.proposal) {
        ctx.stats.count("lookaheadRounds");
        const n = round.proposal.tokens.length;
        const f = levels.length - 1;
        const M = levels[0]!.length + 1;
        const { logits, vocab: V } = result.output;
        const fresh: number[] = [];
        for (let c = 0; c < M; c++) fresh.push(argmax(logits, ctx.vocabLimit, indexOf(f, c, n, M) * V, V));
        const eos = new Set(ctx.target.info.eosIds);
        for (let c = 0; c < M; c++) if (eos.has(fresh[c]!)) fresh[c] = randomPromptToken();
        if (f < N - 2) {
          levels = levels.map((lv) => lv.slice(1));
          levels.push(fresh.slice(1));
        } else {
          const cur = ctx.tokens[result.start]!; // the round's cur (the cache held everything before it)
          for (let c = 0; c < M; c++) {
            const gram: number[] = [];
            for (let l = 1; l <= f; l++) gram.push(levels[l]![c]!);
            gram.push(fresh[c]!);
            pool.add(c === 0 ? cur : levels[0]![c - 1]!, gram, FROM_JACOBI);
          }
          const next = [...levels.slice(1), fresh];
          next[0] = next[0]!.slice(1);
          levels = next;
        }
      }
      poolText(ctx.tokens);
      ctx.stats.extra.poolSize = pool.size;
      ctx.stats.extra.poolKeys = pool.keys;
    },
  };
}

export const lookaheadMethod = defineMethod({
  name: "lookahead",
  summary:
    "Lookahead decoding (Fu et al. 2024): Jacobi iteration over a W×(N-1) window fills an n-gram pool; up to G " +
    "pool n-grams are verified in the same forward (no draft model; chain-only on graphs without a tree mask).",
  options: LOOKAHEAD_OPTIONS,
  unavailableReason: () => undefined,
  create: (res, options) => createLookaheadProposer(options, res.target.info),
});
