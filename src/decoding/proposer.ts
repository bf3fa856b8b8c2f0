/**
 * The contract between the decode loop and a speculation technique.
 *
 * Each round the loop asks the method's Proposer for candidate tokens that continue
 * `ctx.tokens` (the last of which, `cur`, is not yet in the target's KV cache), runs ONE target
 * forward over [cur, ...candidates, ...aux], accepts a path (verify.ts), and then tells the
 * proposer what happened. A technique is one file implementing this interface plus one line in
 * methods.ts; it never runs the target, crops the target cache or samples target tokens itself.
 */
import type { CausalLM, ForwardOutput } from "../engine/causal-lm.js";
import type { KVCache } from "../engine/kv-cache.js";
import type { Rng, SamplingOptions } from "../sampling/index.js";
import type { StatsCollector } from "./stats.js";

export interface DecodeContext {
  target: CausalLM;
  cache: KVCache;
  /** Prompt + generated tokens. The last one ("cur") is not in `cache` yet. */
  tokens: number[];
  promptLength: number;
  sampling: SamplingOptions;
  greedy: boolean;
  rng: Rng;
  /** Sample only among ids below this (embedding padded beyond the tokenizer). */
  vocabLimit?: number;
  stats: StatsCollector;
  signal?: AbortSignal;
}

/** Tokens that run in the verification forward only to serve the proposer (lookahead's Jacobi window). */
export interface AuxTokens {
  tokens: number[];
  /** Position offsets relative to `cur` (cur is at offset 0). */
  positions: number[];
  /**
   * For each aux token, the indices it attends to among the forward's new tokens
   * (0 = cur, 1..n = candidates, n+1.. = aux), itself included. The whole past is always visible.
   */
  attends: number[][];
}

export interface Proposal {
  /** Candidate tokens (a chain, or a tree flattened so that parents come before children). */
  tokens: number[];
  /**
   * parents[i] = index of node i's parent in `tokens`, or -1 when its parent is `cur`.
   * Omitted for a chain (parents[i] = i - 1). Siblings must carry distinct tokens.
   */
  parents?: number[];
  /**
   * For sampling with a draft model: the draft's processed distribution q for each chain token.
   * Present => rejection sampling (Leviathan/Chen); absent => sample the target and match.
   */
  draftProbs?: Float32Array[];
  aux?: AuxTokens;
  /** Ask the target forward for its hidden states (Medusa). */
  wantHidden?: boolean;
  /** Ask the target forward for its pre-final-norm features (EAGLE). */
  wantFeatures?: boolean;
  /**
   * Acceptance rule when sampling without `draftProbs`. Absent = exact (sample-and-match,
   * distribution-preserving). "typical" = Medusa's typical acceptance (verify.ts): faster but NOT
   * distribution-preserving. Greedy decoding ignores it (greedy is always exact).
   */
  acceptance?: TypicalAcceptance;
}

/** Medusa's typical acceptance: accept x when p(x) > min(threshold, alpha * exp(-H(p))). */
export interface TypicalAcceptance {
  mode: "typical";
  /** Medusa's posterior_threshold (epsilon), e.g. 0.09. */
  threshold: number;
  /** Medusa's posterior_alpha (delta), e.g. 0.3. */
  alpha: number;
}

export interface RoundResult {
  proposal: Proposal;
  /** Indices (into proposal.tokens) of the accepted nodes, root to leaf. */
  path: number[];
  acceptedTokens: number[];
  /** The target's own token after the accepted path (correction or extra token). */
  bonus: number;
  /**
   * The target forward's raw output; row 0 = cur, row 1+i = candidate i, then aux rows. After token-by-token
   * verification only cur's and the accepted path's rows were run; the others are NaN.
   */
  output: ForwardOutput;
  /** Cache length before the round's forward (the position of cur). */
  start: number;
}

export interface Proposer {
  readonly method: string;
  /** Extra models this proposer runs (drafts, heads), so their onnxruntime time is accounted for. */
  readonly models?: { timing: { runMs: number } }[];
  /** Ask the prefill forward for the target's features (EAGLE); they reach prepare() as `prefill`. */
  readonly prefillFeatures?: boolean;
  /** Ask the prefill forward for the target's final hidden states (published EAGLE-1/2 heads); they reach prepare() as `prefill`. */
  readonly prefillHidden?: boolean;
  /**
   * Called once after the target prefill (e.g. to prefill a draft model). `prefill` is the prefill
   * forward's output when `prefillFeatures` asked for it (absent for a one-token prompt).
   */
  prepare?(ctx: DecodeContext, prefill?: ForwardOutput): Promise<void>;
  /** Propose at most `maxTokens` candidate nodes. Return an empty list to decode one token plainly. */
  propose(ctx: DecodeContext, maxTokens: number): Promise<Proposal>;
  /** Called after each round, once ctx.tokens holds the round's new tokens. */
  observe?(ctx: DecodeContext, result: RoundResult): Promise<void> | void;
  /** Free resources that belong to this generation (draft caches...). */
  dispose?(): Promise<void> | void;
}

export const EMPTY_PROPOSAL: Proposal = Object.freeze({ tokens: [] }) as Proposal;
