/**
 * Bounds on every size a caller controls, so that no option can make one request allocate
 * unbounded memory (see references/reliability.md). Two kinds:
 *  - documented maxima (OPTION_MAX), checked by the CLI flags, the MCP schemas and the library;
 *  - bounds derived from the model: one verification forward runs T tokens and returns T x vocab
 *    logits, so T must fit the context and T x vocab x 4 bytes must stay under ROUND_LOGITS_MAX_BYTES.
 * Memory-heavy structures (lookahead's Jacobi window, Medusa trees) are sized with these checks
 * BEFORE they are built.
 */
import type { ModelInfo } from "../engine/causal-lm.js";
import { InvalidOptionError } from "../errors.js";

/** Documented maxima of the method options (also the MCP schemas' max). */
export const OPTION_MAX = {
  /** early-exit: target layers in the draft (also below the target's layer count) */
  exitLayer: 4096,
  /** lookahead window W */
  window: 64,
  /** lookahead n-gram size N */
  ngram: 16,
  /** lookahead verification candidates G */
  guesses: 64,
  /** prompt-lookup longest / shortest n-gram */
  maxNgram: 64,
  minNgram: 64,
  /** prompt-lookup tokens proposed per round */
  numPredict: 256,
  /** Medusa candidate tree nodes */
  medusaTreeNodes: 512,
  /** EAGLE draft tree: nodes verified per round, depth, children per node */
  treeTotal: 256,
  treeDepth: 16,
  treeTopK: 32,
  /** new tokens per request (also bounded by the model's context) */
  maxNewTokens: 65536,
  /** stop strings per request, and characters per stop string */
  stopStrings: 16,
  stopChars: 256,
} as const;

/**
 * Prompts are checked in bytes BEFORE tokenizing (tokenizing is synchronous and would block every
 * other session): 1 MiB of text, and at most 64 bytes per token of the model's context (no
 * tokenizer averages more), whichever is smaller. Chat messages count their contents together.
 */
export const PROMPT_MAX_BYTES = 2 ** 20;
export const PROMPT_BYTES_PER_TOKEN_MAX = 64;
/** Token ids given directly (also bounded by the context) and chat messages per request. */
export const PROMPT_IDS_MAX = 131072;
export const MESSAGES_MAX = 1024;

/** The byte limit for a text prompt to `target` (see PROMPT_MAX_BYTES). */
export function promptByteLimit(target: Pick<ModelInfo, "maxContext">): number {
  const byContext = Number.isFinite(target.maxContext) ? target.maxContext * PROMPT_BYTES_PER_TOKEN_MAX : Infinity;
  return Math.max(4096, Math.min(PROMPT_MAX_BYTES, byContext));
}

/** Throw before tokenizing when a text prompt is over the byte limit; `name` is the argument as the user wrote it. */
export function checkPromptBytes(bytes: number, target: Pick<ModelInfo, "maxContext">, name = "prompt"): void {
  const limit = promptByteLimit(target);
  if (bytes > limit) {
    throw new InvalidOptionError(
      `${name} is ${bytes} bytes; the limit for this model is ${limit} bytes (min(${PROMPT_MAX_BYTES}, ` +
        `${PROMPT_BYTES_PER_TOKEN_MAX} x context ${target.maxContext})), checked before tokenizing. Shorten it.`,
    );
  }
}

/** The largest logits block one verification forward may return (T x vocab x 4 bytes). */
export const ROUND_LOGITS_MAX_BYTES = 256 * 2 ** 20;

/** Throw InvalidOptionError unless `v` is an integer in [min, max]; `name` is the argument as the user wrote it. */
export function checkIntRange(v: unknown, name: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new InvalidOptionError(`${name} must be an integer in ${min}..${max} (got ${String(v)}).`);
  }
  return v;
}

/**
 * The most tokens one verification forward of `target` may run: the context, and the logits
 * budget (T x vocab x 4 bytes <= ROUND_LOGITS_MAX_BYTES).
 */
export function maxRoundTokens(target: Pick<ModelInfo, "maxContext" | "vocabSize">): number {
  const byContext = Number.isFinite(target.maxContext) ? target.maxContext : Number.MAX_SAFE_INTEGER;
  const vocab = target.vocabSize && target.vocabSize > 0 ? target.vocabSize : 1;
  const byMemory = Math.floor(ROUND_LOGITS_MAX_BYTES / (vocab * 4));
  return Math.max(1, Math.min(byContext, byMemory));
}

/**
 * Check that a round of `tokens` forward tokens fits `target` before anything that size is built.
 * `what` names the options that set the size, e.g. "window (W) x ngram (N)".
 */
export function checkRoundSize(target: Pick<ModelInfo, "maxContext" | "vocabSize">, tokens: number, what: string): void {
  const max = maxRoundTokens(target);
  if (tokens > max) {
    const ctx = Number.isFinite(target.maxContext) ? `context ${target.maxContext}` : "unknown context";
    throw new InvalidOptionError(
      `${what} make a verification forward of ${tokens} tokens, but this model allows at most ${max} per forward ` +
        `(${ctx}, vocabulary ${target.vocabSize ?? "unknown"}, logits capped at ${ROUND_LOGITS_MAX_BYTES / 2 ** 20} MiB). Lower them.`,
    );
  }
}
