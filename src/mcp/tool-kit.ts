/**
 * Shared pieces of the MCP tools: zod schemas used by several tools, result/error helpers,
 * progress notifications, and the wrapper every tool handler goes through (errors become
 * `isError` results whose text says how to fix the call; the server stays up).
 */
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { CallToolResult, ServerNotification, ServerRequest } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { K_MAX, K_MIN } from "../decoding/controllers.js";
import { METHOD_NAMES } from "../decoding/methods.js";
import { CancelledError, SpecDecodeError, errorMessage } from "../errors.js";
import type { ToolContext } from "./context.js";

export type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

// ---------------------------------------------------------------------------------------------
// Schemas

export const methodSchema = z
  .enum(["auto", ...METHOD_NAMES])
  .describe(
    "Decoding method. auto: draft if a draft is given, medusa if heads are given, early-exit if methodOptions.exitLayer is given, else prompt-lookup (baseline when none is available).",
  );

export const modelArg = z
  .string()
  .min(1)
  .describe("Model directory: an absolute path or a path relative to a model root, or a Hugging Face repo id found in the HF cache (see list_models).");

export const kSchema = z
  .union([z.number().int().min(K_MIN).max(K_MAX), z.literal("auto")])
  .describe('draft / early-exit: tokens drafted per round, or "auto" (the default) for the adaptive controller.');

export const chatMessageSchema = z.object({ role: z.string().min(1), content: z.string() });

export const samplingSchema = z
  .object({
    temperature: z.number().min(0).optional().describe("0 (default) = greedy."),
    topK: z.number().int().min(0).optional().describe("0 = off."),
    topP: z.number().gt(0).max(1).optional().describe("1 = off."),
    minP: z.number().min(0).lt(1).optional().describe("0 = off."),
    repetitionPenalty: z.number().gt(0).optional().describe("1 = off."),
  })
  .strict()
  .describe("Sampling options (greedy when omitted or temperature is 0). The seed is a separate argument.");

export const methodOptionsSchema = z
  .object({
    controller: z.enum(["fixed", "heuristic", "confidence", "cost"]).optional().describe("draft / early-exit: how K is chosen."),
    confidenceThreshold: z.number().min(0).max(1).optional().describe("confidence controller: stop drafting below this draft probability."),
    exitLayer: z.number().int().min(1).optional().describe("early-exit: target layers in the draft (needs an early_exit_<m>.onnx, see build_model); default: the smallest one built."),
    maxNgram: z.number().int().min(1).optional().describe("prompt-lookup: longest n-gram to match."),
    minNgram: z.number().int().min(1).optional().describe("prompt-lookup: shortest n-gram to match."),
    numPredict: z.number().int().min(1).optional().describe("prompt-lookup: tokens to propose."),
    window: z.number().int().min(1).optional().describe("lookahead: window W."),
    ngram: z.number().int().min(2).optional().describe("lookahead: n-gram size N."),
    guesses: z.number().int().min(1).optional().describe("lookahead: verification candidates G."),
    tree: z
      .union([z.string(), z.array(z.array(z.number().int().min(0)))])
      .optional()
      .describe('medusa: "default", "chain", "sparse-N", or a list of paths like [[0],[1],[0,0]].'),
    acceptance: z.enum(["exact", "typical"]).optional().describe("medusa: exact (default, lossless) or typical (faster, not distribution-preserving)."),
    posteriorThreshold: z.number().min(0).max(1).optional().describe("medusa typical acceptance: posterior threshold."),
    posteriorAlpha: z.number().min(0).max(1).optional().describe("medusa typical acceptance: alpha."),
  })
  .strict()
  .describe("Method options; each method reads its own and ignores the rest. K is the separate argument k.");

export const statsSchema = z.object({
  method: z.string(),
  promptTokens: z.number(),
  newTokens: z.number(),
  targetForwards: z.number(),
  prefillMs: z.number(),
  decodeMs: z.number(),
  elapsedMs: z.number(),
  tokensPerSecond: z.number(),
  draftedTokens: z.number(),
  acceptedTokens: z.number(),
  acceptanceRate: z.number(),
  draftRounds: z.number().describe("Rounds that proposed at least one token."),
  meanAcceptedLength: z.number().describe("New tokens per target forward, bonus token included (1.0 = plain decoding)."),
  perPositionAcceptance: z.array(z.number()),
  acceptanceHistogram: z.array(z.number()),
  draftMs: z.number(),
  targetMs: z.number(),
  onnxRuntimeMs: z.number(),
  overheadMs: z.number(),
  verification: z.enum(["none", "chain", "tree", "token-by-token"]),
  notes: z.array(z.string()),
  extra: z.record(z.string(), z.union([z.number(), z.string(), z.array(z.number())])),
});

export const memorySchema = z.object({
  usedBytes: z.number().describe("Approximate bytes of the loaded models (ONNX files + external data)."),
  maxBytes: z.number().describe("Least-recently-used models are unloaded beyond this (--max-memory)."),
  models: z.number(),
});

export const loadedModelSchema = z.object({
  dir: z.string(),
  file: z.string(),
  device: z.string(),
  threads: z.number().nullable(),
  bytes: z.number(),
  loadedAt: z.string(),
  lastUsed: z.string(),
});

export const ratioSchema = z.object({
  mean: z.number().describe("Geometric mean of the per-run ratios."),
  low: z.number().nullable().describe("95% confidence interval (null with fewer than 2 paired runs)."),
  high: z.number().nullable(),
  n: z.number(),
});

export const benchPromptSchema = z.union([
  z.string().min(1),
  z
    .object({
      id: z.string().optional(),
      category: z.string().optional(),
      prompt: z.string().optional(),
      messages: z.array(chatMessageSchema).min(1).optional(),
      promptIds: z.array(z.number().int().min(0)).min(1).optional(),
    })
    .strict(),
]);

// ---------------------------------------------------------------------------------------------
// Results

export function textResult(text: string, structured: Record<string, unknown>): CallToolResult {
  return { content: [{ type: "text", text }], structuredContent: structured };
}

export function errorResult(err: unknown): CallToolResult {
  let text: string;
  if (err instanceof SpecDecodeError) text = `Error (${err.code}): ${err.message}`;
  else text = `Error: ${errorMessage(err)}. This looks like a bug in spec-decode; the server is still running.`;
  return { content: [{ type: "text", text }], isError: true };
}

/** Run a tool body; any thrown error becomes an isError result (and is logged to stderr). */
export async function runTool(ctx: ToolContext, name: string, fn: () => Promise<CallToolResult>): Promise<CallToolResult> {
  const t0 = performance.now();
  try {
    const res = await fn();
    ctx.logger.log("debug", `${name} done in ${(performance.now() - t0).toFixed(0)} ms`);
    return res;
  } catch (err) {
    const level = err instanceof SpecDecodeError ? "info" : "error";
    ctx.logger.log(level, `${name} failed: ${errorMessage(err)}`);
    if (level === "error" && err instanceof Error && err.stack) ctx.logger.log("debug", err.stack);
    return errorResult(err);
  }
}

export function throwIfCancelled(extra: Extra): void {
  if (extra.signal.aborted) throw new CancelledError("The call was cancelled by the client.");
}

/**
 * A progress callback that sends `notifications/progress` when the client gave a progress token
 * (at most every `minIntervalMs`, always with increasing progress); a no-op otherwise.
 */
export function progressSender(extra: Extra, minIntervalMs = 100): (progress: number, total?: number, message?: string) => void {
  const token = extra._meta?.progressToken;
  if (token === undefined) return () => {};
  let last = -Infinity;
  let lastAt = 0;
  return (progress, total, message) => {
    const now = performance.now();
    const final = total !== undefined && progress >= total;
    if (progress <= last || (!final && now - lastAt < minIntervalMs)) return;
    last = progress;
    lastAt = now;
    extra
      .sendNotification({
        method: "notifications/progress",
        params: { progressToken: token, progress, ...(total !== undefined ? { total } : {}), ...(message ? { message } : {}) },
      })
      .catch(() => {
        /* the client may be gone; the call itself will notice */
      });
  };
}

/** Drop undefined values (so that library defaults apply). */
export function compact<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

export function fmt(x: number, digits = 2): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "n/a";
}

/** An onnx-community variant: a file name inside the model directory, never a path (no escape from the roots). */
export const variantSchema = z
  .string()
  .regex(/^(?!\.)[A-Za-z0-9._-]+$/, "a file name such as model_fp16.onnx, or a short name such as fp16 or q4 (no paths)")
  .optional()
  .describe('onnx-community variant, e.g. "model_fp16.onnx", "fp16", "q4" (default: onnx/model.onnx, or whatever load_model loaded).');
