import { InvalidOptionError } from "../errors.js";

/**
 * How logits become a next-token distribution. Filters apply in Hugging Face transformers' order:
 * repetition penalty, temperature, top-k, top-p, min-p.
 */
export interface SamplingOptions {
  /** 0 (the default) = greedy (argmax). Otherwise logits are divided by it before softmax. */
  temperature?: number;
  /** Keep only the k most likely tokens (ties with the k-th are kept too). 0 or unset = off. */
  topK?: number;
  /** Nucleus: keep the smallest set of most likely tokens whose mass reaches topP. 1 = off. */
  topP?: number;
  /** Drop tokens whose probability is below minP times the top token's. 0 = off. */
  minP?: number;
  /** HF repetition penalty over the context: >1 discourages repeats, 1 = off. */
  repetitionPenalty?: number;
  /** Seed for the sampler's random generator (integer). Same seed + same model = same text. */
  seed?: number;
}

function fail(name: string, value: unknown, allowed: string): never {
  throw new InvalidOptionError(`Invalid ${name}: ${String(value)}. ${allowed}`);
}

/**
 * Checks ranges and types; throws InvalidOptionError naming the option and its allowed range.
 * Returns the options unchanged, for chaining.
 */
export function validateSamplingOptions<T extends SamplingOptions>(o: T): T {
  const num = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
  if (o.temperature !== undefined && !(num(o.temperature) && o.temperature >= 0)) {
    fail("temperature", o.temperature, "Use a number >= 0 (0 = greedy; typical values are 0.2 to 1.0).");
  }
  if (o.topK !== undefined && !(num(o.topK) && Number.isInteger(o.topK) && o.topK >= 0)) {
    fail("topK", o.topK, "Use an integer >= 0 (0 = no top-k filtering).");
  }
  if (o.topP !== undefined && !(num(o.topP) && o.topP > 0 && o.topP <= 1)) {
    fail("topP", o.topP, "Use a number in (0, 1] (1 = no nucleus filtering; typical values are 0.8 to 0.95).");
  }
  if (o.minP !== undefined && !(num(o.minP) && o.minP >= 0 && o.minP < 1)) {
    fail("minP", o.minP, "Use a number in [0, 1) (0 = no min-p filtering; typical values are 0.05 to 0.1).");
  }
  if (o.repetitionPenalty !== undefined && !(num(o.repetitionPenalty) && o.repetitionPenalty > 0)) {
    fail("repetitionPenalty", o.repetitionPenalty, "Use a number > 0 (1 = off; typical values are 1.05 to 1.3).");
  }
  if (o.seed !== undefined && !(num(o.seed) && Number.isSafeInteger(o.seed))) {
    fail("seed", o.seed, "Use an integer (any safe integer, negative allowed).");
  }
  return o;
}

/**
 * True when the next token is a deterministic argmax: temperature unset or 0, or topK = 1.
 * (The repetition penalty still applies before the argmax.)
 */
export function isGreedy(o: SamplingOptions | undefined): boolean {
  return !o || !o.temperature || o.topK === 1;
}
