/**
 * The one decode loop: prefill -> (propose -> verify -> accept -> update) until done.
 *
 * Plain decoding is the same loop with a proposer that proposes nothing: each round feeds `cur`
 * alone and samples one token, so every method shares exactly the same target code path.
 */
import type { CausalLM } from "../engine/causal-lm.js";
import { ContextLengthError, InvalidOptionError } from "../errors.js";
import { Rng, isGreedy, validateSamplingOptions, type SamplingOptions } from "../sampling/index.js";
import { EMPTY_PROPOSAL, type DecodeContext, type Proposer, type RoundResult } from "./proposer.js";
import { StatsCollector, type GenerationStats } from "./stats.js";
import { offeredAlongPath, verifyRound } from "./verify.js";

export type FinishReason = "eos" | "length" | "stop" | "cancelled";

export interface GenerateTokensRequest {
  target: CausalLM;
  promptIds: number[];
  maxNewTokens: number;
  sampling?: SamplingOptions;
  /** Defaults to plain decoding. */
  proposer?: Proposer;
  /** Defaults to the model's eos ids. Pass [] to never stop on eos. */
  eosIds?: number[];
  /** Sample only among ids below this (e.g. the tokenizer's size when the embedding is padded). */
  vocabLimit?: number;
  /** Called with each round's new tokens; return false to stop (e.g. a stop string matched). */
  onTokens?: (tokens: number[]) => boolean | void;
  signal?: AbortSignal;
}

export interface GenerateTokensResult {
  /** Generated ids only (eos included when it ended the run; partial when cancelled). */
  tokens: number[];
  finishReason: FinishReason;
  stats: GenerationStats;
}

/** Check a prompt against the model's context; returns the max new tokens that fit. */
export function checkContext(target: CausalLM, promptLength: number, maxNewTokens: number): void {
  const ctxLen = target.info.maxContext;
  if (promptLength >= ctxLen) {
    throw new ContextLengthError(
      `The prompt has ${promptLength} tokens but ${target.label} has a context of ${ctxLen}. Shorten the prompt ` +
        `to at most ${ctxLen - 1} tokens.`,
    );
  }
  if (promptLength + maxNewTokens > ctxLen) {
    throw new ContextLengthError(
      `The prompt (${promptLength} tokens) plus maxNewTokens (${maxNewTokens}) exceeds the context of ${ctxLen}. ` +
        `Lower maxNewTokens to at most ${ctxLen - promptLength}, or shorten the prompt.`,
    );
  }
}

export async function generateTokens(req: GenerateTokensRequest): Promise<GenerateTokensResult> {
  const { target, promptIds } = req;
  const sampling = req.sampling ?? {};
  validateSamplingOptions(sampling);
  if (!Number.isInteger(req.maxNewTokens) || req.maxNewTokens < 1) {
    throw new InvalidOptionError(`maxNewTokens must be an integer >= 1 (got ${req.maxNewTokens}).`);
  }
  if (promptIds.length === 0) {
    throw new InvalidOptionError("The prompt is empty. Give at least one token (a BOS token is enough).");
  }
  const vocab = target.info.vocabSize;
  for (const id of promptIds) {
    if (!Number.isInteger(id) || id < 0 || (vocab !== undefined && id >= vocab)) {
      throw new InvalidOptionError(`Prompt token id ${id} is outside the model's vocabulary 0..${(vocab ?? 0) - 1}.`);
    }
  }
  checkContext(target, promptIds.length, req.maxNewTokens);

  const proposer = req.proposer;
  const stats = new StatsCollector(proposer?.method ?? "baseline");
  stats.promptTokens = promptIds.length;
  const eos = new Set(req.eosIds ?? target.info.eosIds);
  const ctx: DecodeContext = {
    target,
    cache: target.newCache(),
    tokens: [...promptIds],
    promptLength: promptIds.length,
    sampling,
    greedy: isGreedy(sampling),
    rng: new Rng(sampling.seed ?? 0),
    vocabLimit: req.vocabLimit,
    stats,
    signal: req.signal,
  };
  const models = [target, ...(proposer?.models ?? [])];
  const ortTime = () => models.reduce((s, m) => s + m.timing.runMs, 0);

  const out: number[] = [];
  let finishReason: FinishReason = "length";
  try {
    // Prefill: everything but the last prompt token, which becomes `cur`.
    const tPrefill = performance.now();
    const features = proposer?.prefillFeatures === true;
    const hidden = proposer?.prefillHidden === true;
    const prefill = promptIds.length > 1 ? await target.forward(ctx.cache, promptIds.slice(0, -1), { logits: "none", features, hidden }) : undefined;
    await proposer?.prepare?.(ctx, features || hidden ? prefill : undefined);
    stats.prefillMs = performance.now() - tPrefill;

    const tDecode = performance.now();
    const ort0 = ortTime();
    while (out.length < req.maxNewTokens) {
      if (req.signal?.aborted) {
        finishReason = "cancelled";
        break;
      }
      const remaining = req.maxNewTokens - out.length;
      // Room for candidates: the bonus token always comes on top, and cur + candidates must fit.
      const room = Math.min(remaining - 1, target.info.maxContext - ctx.cache.length - 1);
      let proposal = EMPTY_PROPOSAL;
      if (proposer && room > 0) {
        const tp = performance.now();
        proposal = await proposer.propose(ctx, room);
        stats.draftMs += performance.now() - tp;
        if (proposal.tokens.length > room) {
          throw new InvalidOptionError(`${proposer.method} proposed ${proposal.tokens.length} tokens but only ${room} fit.`);
        }
      }
      const result: RoundResult = await verifyRound(ctx, proposal);
      let emitted = [...result.acceptedTokens, result.bonus];
      let stop = false;
      const eosAt = emitted.findIndex((t) => eos.has(t));
      if (eosAt >= 0) {
        emitted = emitted.slice(0, eosAt + 1);
        finishReason = "eos";
        stop = true;
      }
      if (emitted.length > remaining) emitted = emitted.slice(0, remaining);
      stats.recordRound(offeredAlongPath(proposal, result.path), result.path.length, emitted.length);
      out.push(...emitted);
      ctx.tokens.push(...emitted);
      if (req.onTokens?.(emitted) === false) {
        finishReason = "stop";
        stop = true;
      }
      if (stop) break;
      if (proposer?.observe) {
        const to = performance.now();
        await proposer.observe(ctx, result);
        stats.draftMs += performance.now() - to;
      }
    }
    stats.decodeMs = performance.now() - tDecode;
    stats.onnxRuntimeMs = ortTime() - ort0;
  } finally {
    await proposer?.dispose?.();
  }
  return { tokens: out, finishReason, stats: stats.finish() };
}
