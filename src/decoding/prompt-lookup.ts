/**
 * Prompt lookup decoding: no draft model. The last n tokens of the text so far (prompt + generated)
 * are looked up in that same text; the tokens that followed the match are proposed as a chain.
 *
 *  - n-gram sizes are tried from `maxNgram` down to `minNgram`; the first size with a match wins.
 *  - Among several matches of that size, the LATEST one wins (the most recent context is usually
 *    the best predictor, and in a generation loop it is the loop itself).
 *  - The continuation is read from "history + the proposal so far", so a match that runs into the
 *    end of the text continues periodically (a repeating pattern is proposed as repeating).
 *  - Matching is O(maxNgram - minNgram + 1) map look-ups per round: an index n-gram -> latest end
 *    position is extended incrementally with the tokens added since the previous round.
 *
 * Candidates are a chain, so any graph verifies them with its ordinary causal mask (no tree mask
 * needed). Verification (verify.ts) keeps the target's distribution: greedy argmax matching, or
 * sample-from-the-target-and-match when sampling.
 */
import { z } from "zod";
import { InvalidOptionError } from "../errors.js";
import { OPTION_MAX } from "./limits.js";
import { defineMethod } from "./method-definition.js";
import { parseOptions, type OptionsOf } from "./options.js";
import { EMPTY_PROPOSAL, type DecodeContext, type Proposal, type Proposer } from "./proposer.js";

export const PROMPT_LOOKUP_DEFAULTS = { maxNgram: 3, minNgram: 1, numPredict: 10 } as const;

export interface PromptLookupOptions {
  maxNgram: number;
  minNgram: number;
  numPredict: number;
}

const D = PROMPT_LOOKUP_DEFAULTS;
export const PROMPT_LOOKUP_OPTIONS = {
  maxNgram: z.number().int().min(1).max(OPTION_MAX.maxNgram).optional().describe(`Longest n-gram to match (default ${D.maxNgram}).`),
  minNgram: z.number().int().min(1).max(OPTION_MAX.minNgram).optional().describe(`Shortest n-gram to match (default ${D.minNgram}).`),
  numPredict: z.number().int().min(1).max(OPTION_MAX.numPredict).optional().describe(`Tokens proposed per match (default ${D.numPredict}).`),
};

export function promptLookupOptions(options: OptionsOf<typeof PROMPT_LOOKUP_OPTIONS>): PromptLookupOptions {
  const o = parseOptions(PROMPT_LOOKUP_OPTIONS, options);
  const maxNgram = o.maxNgram ?? PROMPT_LOOKUP_DEFAULTS.maxNgram;
  const minNgram = o.minNgram ?? Math.min(PROMPT_LOOKUP_DEFAULTS.minNgram, maxNgram);
  const numPredict = o.numPredict ?? PROMPT_LOOKUP_DEFAULTS.numPredict;
  if (minNgram > maxNgram) {
    throw new InvalidOptionError((v) => `${v.option("minNgram")} (${minNgram}) must not exceed ${v.option("maxNgram")} (${maxNgram}).`);
  }
  return { maxNgram, minNgram, numPredict };
}

/**
 * For each n in [minN, maxN]: n-gram -> end index of its latest occurrence in `tokens`.
 * `sync(tokens, end)` indexes the n-grams ending before `end` that were not indexed yet; tokens
 * only ever grow (generated tokens are final), so this is incremental.
 */
export class NgramIndex {
  private readonly maps: Map<string, number>[];
  private indexed = 0;
  constructor(
    readonly minN: number,
    readonly maxN: number,
  ) {
    this.maps = Array.from({ length: maxN - minN + 1 }, () => new Map());
  }

  /** Index every n-gram that ends at a position < end. */
  sync(tokens: readonly number[], end: number): void {
    for (let i = this.indexed; i < end; i++) {
      let key = "";
      for (let n = 1; n <= this.maxN && n <= i + 1; n++) {
        key = n === 1 ? String(tokens[i]) : `${tokens[i - n + 1]},${key}`;
        if (n >= this.minN) this.maps[n - this.minN]!.set(key, i);
      }
    }
    if (end > this.indexed) this.indexed = end;
  }

  /**
   * The latest earlier occurrence of the last n tokens, longest n first.
   * Returns the end index of the match and its size, or undefined.
   */
  lookup(tokens: readonly number[]): { end: number; n: number } | undefined {
    const len = tokens.length;
    this.sync(tokens, len - 1); // the suffix itself (ending at len - 1) must not match itself
    for (let n = Math.min(this.maxN, len - 1); n >= this.minN; n--) {
      const key = tokens.slice(len - n).join(",");
      const end = this.maps[n - this.minN]!.get(key);
      if (end !== undefined) return { end, n };
    }
    return undefined;
  }
}

/** Continuation of a match ending at `end`: up to `count` tokens, reading past the end periodically. */
export function continuation(tokens: readonly number[], end: number, count: number): number[] {
  const out: number[] = [];
  const len = tokens.length;
  for (let i = 0; i < count; i++) {
    const at = end + 1 + i;
    out.push(at < len ? tokens[at]! : out[at - len]!);
  }
  return out;
}

export function createPromptLookupProposer(options: OptionsOf<typeof PROMPT_LOOKUP_OPTIONS> = {}): Proposer {
  const o = promptLookupOptions(options);
  const index = new NgramIndex(o.minNgram, o.maxNgram);
  return {
    method: "prompt-lookup",
    async prepare(ctx: DecodeContext) {
      ctx.stats.extra.maxNgram = o.maxNgram;
      ctx.stats.extra.numPredict = o.numPredict;
      index.sync(ctx.tokens, ctx.tokens.length - 1);
    },
    async propose(ctx: DecodeContext, maxTokens: number): Promise<Proposal> {
      const match = index.lookup(ctx.tokens);
      if (!match) {
        ctx.stats.count("lookupMisses");
        return EMPTY_PROPOSAL;
      }
      ctx.stats.count("lookupHits");
      return { tokens: continuation(ctx.tokens, match.end, Math.min(o.numPredict, maxTokens)) };
    },
  };
}

export const promptLookupMethod = defineMethod({
  name: "prompt-lookup",
  summary:
    "Prompt lookup: propose the continuation of the latest n-gram match in the prompt and generated text " +
    "(no draft model; best on summarize/edit/code tasks that repeat the input).",
  options: PROMPT_LOOKUP_OPTIONS,
  unavailableReason: () => undefined,
  create: (_res, options) => createPromptLookupProposer(options),
});
