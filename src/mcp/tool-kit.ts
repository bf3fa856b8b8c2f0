/**
 * Shared pieces of the MCP tools: zod schemas used by several tools, result/error helpers,
 * progress notifications, and the wrapper every tool handler goes through (errors become
 * `isError` results whose text says how to fix the call; the server stays up).
 */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { CallToolResult, ServerNotification, ServerRequest } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { K_MAX, K_MIN } from "../decoding/controllers.js";
import { MESSAGES_MAX, OPTION_MAX, PROMPT_IDS_MAX, PROMPT_MAX_BYTES } from "../decoding/limits.js";
import { METHOD_NAMES } from "../decoding/methods.js";
import { CancelledError, SpecDecodeError, errorMessage } from "../errors.js";
import type { ToolContext } from "./context.js";

export type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

// ---------------------------------------------------------------------------------------------
// Unknown arguments

/** Edit distance (Levenshtein); small inputs only (argument names). */
function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** The valid name closest to `key` (case, `_` and `-` ignored), or undefined when none is close. */
export function nearestName(key: string, names: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_\s]/g, "");
  const k = norm(key.slice(0, 200));
  let best: string | undefined;
  let bestD = Infinity;
  for (const n of names) {
    const d = editDistance(k, norm(n));
    if (d < bestD) [best, bestD] = [n, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(k.length / 3)) ? best : undefined;
}

/** "unknown argument max_new_tokens — did you mean maxNewTokens?" (or the list of valid names). */
export function unknownArgumentMessage(keys: readonly string[], names: readonly string[], parent?: string): string {
  return keys
    .map((key) => {
      const shown = JSON.stringify(key.length > 60 ? `${key.slice(0, 60)}...` : key).slice(1, -1);
      const full = parent ? `${parent}.${shown}` : shown;
      const near = nearestName(key, names);
      return near
        ? `unknown argument ${full} — did you mean ${parent ? `${parent}.` : ""}${near}?`
        : `unknown argument ${full}; valid ${parent ? `${parent} fields` : "arguments"}: ${names.join(", ")}`;
    })
    .join("; ");
}

/**
 * A zod object that rejects unknown keys with a message naming the nearest valid one (all tool
 * arguments and nested option objects go through this, so a typo is an error, never ignored).
 */
export function strictArgs<S extends z.ZodRawShape>(shape: S, parent?: string) {
  const names = Object.keys(shape);
  return z.strictObject(shape, {
    error: (iss) => (iss.code === "unrecognized_keys" ? unknownArgumentMessage(iss.keys, names, parent) : undefined),
  });
}

/**
 * Wrap `server` so that every tool registered through it gets a strict input schema (see strictArgs).
 * Tools keep exporting their raw `inputSchema` shape (docs and tests read it).
 */
export function withStrictArguments(server: McpServer): McpServer {
  const register = server.registerTool.bind(server) as (...a: unknown[]) => unknown;
  return new Proxy(server, {
    get(target, prop, receiver) {
      if (prop !== "registerTool") return Reflect.get(target, prop, receiver);
      return (name: string, config: { inputSchema?: unknown }, cb: unknown) => {
        const shape = config.inputSchema;
        const isRawShape = shape && typeof shape === "object" && !("_zod" in shape) && !("_def" in shape);
        return register(name, isRawShape ? { ...config, inputSchema: strictArgs(shape as z.ZodRawShape) } : config, cb);
      };
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Schemas

export const methodSchema = z
  .enum(["auto", ...METHOD_NAMES])
  .describe(
    "Decoding method. auto: draft if a draft is given, eagle if heads are an EAGLE head, medusa if heads are Medusa heads, early-exit if methodOptions.exitLayer is given, else prompt-lookup (baseline when none is available).",
  );

export const modelArg = z
  .string()
  .min(1)
  .max(4096)
  .describe(
    'Model directory (an absolute path or a path relative to a model root), or a Hugging Face repo id "org/name[@revision][:variant]" in the HF cache (see list_models; pull_model downloads).',
  );

export const kSchema = z
  .union([z.number().int().min(K_MIN).max(K_MAX), z.literal("auto")])
  .describe('draft / early-exit: tokens drafted per round, or "auto" (the default) for the adaptive controller.');

export const chatMessageSchema = strictArgs({ role: z.string().min(1).max(64), content: z.string() }, "messages[]");

export const samplingSchema = strictArgs(
  {
    temperature: z.number().min(0).optional().describe("0 (default) = greedy."),
    topK: z.number().int().min(0).optional().describe("0 = off."),
    topP: z.number().gt(0).max(1).optional().describe("1 = off."),
    minP: z.number().min(0).lt(1).optional().describe("0 = off."),
    repetitionPenalty: z.number().gt(0).optional().describe("1 = off."),
  },
  "sampling",
).describe("Sampling options (greedy when omitted or temperature is 0). The seed is a separate argument.");

export const methodOptionsSchema = strictArgs(
  {
    controller: z.enum(["fixed", "heuristic", "confidence", "cost"]).optional().describe("draft / early-exit: how K is chosen."),
    confidenceThreshold: z.number().min(0).max(1).optional().describe("confidence controller: stop drafting below this draft probability."),
    exitLayer: z.number().int().min(1).max(4096).optional().describe("early-exit: target layers in the draft (needs an early_exit_<m>.onnx, see build_model); default: the smallest one built."),
    maxNgram: z.number().int().min(1).max(OPTION_MAX.maxNgram).optional().describe("prompt-lookup: longest n-gram to match."),
    minNgram: z.number().int().min(1).max(OPTION_MAX.minNgram).optional().describe("prompt-lookup: shortest n-gram to match."),
    numPredict: z.number().int().min(1).max(OPTION_MAX.numPredict).optional().describe("prompt-lookup: tokens to propose."),
    window: z.number().int().min(1).max(OPTION_MAX.window).optional().describe("lookahead: window W."),
    ngram: z.number().int().min(2).max(OPTION_MAX.ngram).optional().describe("lookahead: n-gram size N."),
    guesses: z.number().int().min(1).max(OPTION_MAX.guesses).optional().describe("lookahead: verification candidates G."),
    tree: z
      .union([z.string().max(20000), z.array(z.array(z.number().int().min(0).max(1023)).max(64)).max(OPTION_MAX.medusaTreeNodes)])
      .optional()
      .describe('medusa: "default", "chain", "sparse-N", or a list of paths like [[0],[1],[0,0]].'),
    acceptance: z.enum(["exact", "typical"]).optional().describe("medusa: exact (default, lossless) or typical (faster, not distribution-preserving)."),
    posteriorThreshold: z.number().min(0).max(1).optional().describe("medusa typical acceptance: posterior threshold."),
    posteriorAlpha: z.number().min(0).max(1).optional().describe("medusa typical acceptance: alpha."),
    treeTotal: z.number().int().min(1).max(OPTION_MAX.treeTotal).optional().describe("eagle: draft-tree nodes verified per round (default: chosen each round from the measured verification cost, at most 64)."),
    treeDepth: z.number().int().min(1).max(OPTION_MAX.treeDepth).optional().describe("eagle: draft depth (default 6)."),
    treeTopK: z.number().int().min(1).max(OPTION_MAX.treeTopK).optional().describe("eagle: children per expanded node and nodes expanded per depth (default 6)."),
  },
  "methodOptions",
).describe("Method options; each method reads its own and ignores the rest. K is the separate argument k.");

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
  z.string().min(1).max(PROMPT_MAX_BYTES),
  strictArgs(
    {
      id: z.string().max(256).optional(),
      category: z.string().max(256).optional(),
      prompt: z.string().max(PROMPT_MAX_BYTES).optional(),
      messages: z.array(chatMessageSchema).min(1).max(MESSAGES_MAX).optional(),
      promptIds: z.array(z.number().int().min(0)).min(1).max(PROMPT_IDS_MAX).optional(),
    },
    "prompts[]",
  ),
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
