/** `generate_speculative`: generate text with any method; returns text, token ids and statistics. */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { DEFAULT_MAX_NEW_TOKENS, autoFactsText, type GenerateRequest } from "../../api.js";
import { MESSAGES_MAX, OPTION_MAX, PROMPT_IDS_MAX, PROMPT_MAX_BYTES } from "../../decoding/limits.js";
import type { MethodOptions } from "../../decoding/methods.js";
import { InvalidOptionError } from "../../errors.js";
import { resolveModelArg, variantsOfArgs } from "../hub-args.js";
import type { ToolContext } from "../context.js";
import {
  boundedString,
  chatMessageSchema,
  compact,
  fmt,
  detailSchema,
  kSchema,
  methodOptionsArg,
  methodSchema,
  modelArg,
  pathArg,
  progressSender,
  runTool,
  samplingSchema,
  seedSchema,
  tokenId,
  textResult,
  type Extra,
  variantSchema,
} from "../tool-kit.js";

export const name = "generate_speculative";

export const inputSchema = {
  model: modelArg,
  prompt: boundedString(z.string().max(PROMPT_MAX_BYTES)).optional().describe("Text; or give messages or promptIds."),
  messages: z.array(chatMessageSchema).min(1).max(MESSAGES_MAX).optional().describe("Chat (the model's template)."),
  promptIds: z.array(tokenId).min(1).max(PROMPT_IDS_MAX).optional().describe("Token ids, fed as given."),
  variant: variantSchema,
  method: methodSchema.default("auto"),
  draft: pathArg().optional().describe("Draft model dir or repo id (method draft; same tokenizer)."),
  heads: pathArg().optional().describe("Medusa heads or EAGLE head dir (methods medusa, eagle)."),
  k: kSchema.optional(),
  methodOptions: methodOptionsArg.optional(),
  sampling: samplingSchema.optional(),
  seed: seedSchema,
  stop: z.array(z.string().min(1).max(OPTION_MAX.stopChars)).max(OPTION_MAX.stopStrings).optional().describe("Stop strings (cut from the text)."),
  maxNewTokens: z.number().int().min(1).max(8192).default(DEFAULT_MAX_NEW_TOKENS).describe("Tokens to generate at most."),
  detail: detailSchema,
};

/** The statistics a summary reply carries (detail "full": every GenerationStats field). */
const SUMMARY_STATS = ["newTokens", "targetForwards", "tokensPerSecond", "acceptanceRate", "meanAcceptedLength", "draftedTokens", "acceptedTokens", "elapsedMs", "notes"] as const;

export const outputSchema = {
  text: z.string(),
  tokens: z.array(z.number()).optional().describe("Token ids (detail full)."),
  promptTokens: z.number(),
  finishReason: z.enum(["eos", "length", "stop", "cancelled"]),
  method: z.string(),
  methodReason: z.string(),
  stats: z.looseObject({ tokensPerSecond: z.number(), meanAcceptedLength: z.number(), acceptanceRate: z.number() }),
};

export const config = {
  title: "Generate (speculative)",
  description:
    "Generate text with a speculative method or plain decoding; greedy output equals plain decoding's, sampling keeps the " +
    "distribution. Returns text and stats (tokens/s, acceptance, mean accepted length). Progress; cancellable.",
  inputSchema,
  annotations: { readOnlyHint: true, openWorldHint: false },
};

type Args = z.infer<z.ZodObject<typeof inputSchema>>;

export async function handle(ctx: ToolContext, args: Args, extra: Extra) {
  const given = [args.prompt, args.messages, args.promptIds].filter((x) => x !== undefined).length;
  if (given !== 1) throw new InvalidOptionError("Give exactly one of prompt, messages or promptIds.");
  const model = resolveModelArg(ctx.roots, args.model, "model", { directory: true });
  const draft = args.draft ? resolveModelArg(ctx.roots, args.draft, "draft", { directory: true }) : undefined;
  const heads = args.heads ? resolveModelArg(ctx.roots, args.heads, "heads") : undefined;
  const methodOptions: MethodOptions = compact({ ...(args.methodOptions ?? {}), k: args.k });
  const progress = progressSender(extra);
  const req: GenerateRequest = {
    model,
    ...variantsOfArgs(args),
    draft,
    heads,
    method: args.method,
    prompt: args.prompt,
    messages: args.messages,
    promptIds: args.promptIds,
    maxNewTokens: args.maxNewTokens,
    sampling: compact({ ...(args.sampling ?? {}), seed: args.seed }),
    stop: args.stop,
    methodOptions,
    signal: extra.signal,
    onProgress: (n, total) => progress(n, total, `${n}/${total} tokens`),
  };
  const res = await ctx.engine.generate(req);
  // The engine's own choice with the target facts it chose from (weights, size, heads, early exits and adapters).
  if (res.autoFacts) ctx.logger.log("debug", `auto -> ${res.method} (${res.methodReason}); ${autoFactsText(res.autoFacts)}`);
  const s = res.stats;
  ctx.logger.log("debug", `generate_speculative: ${res.method}, ${s.newTokens} of ${args.maxNewTokens} tokens, finish ${res.finishReason}`);
  const summary =
    `[${res.method}${res.methodReason !== "requested" ? ` (auto: ${res.methodReason})` : ""}] ${s.newTokens} tokens, ` +
    `${fmt(s.tokensPerSecond, 1)} tok/s, ${s.targetForwards} target forwards, mean accepted length ${fmt(s.meanAcceptedLength)}` +
    (s.draftedTokens > 0 ? `, acceptance ${fmt(s.acceptanceRate * 100, 1)}%` : "") +
    `, finish: ${res.finishReason}`;
  const full = args.detail === "full";
  return textResult(`${res.text}\n\n${summary}`, {
    text: res.text,
    ...(full ? { tokens: res.tokens } : {}),
    promptTokens: res.promptTokens,
    finishReason: res.finishReason,
    method: res.method,
    methodReason: res.methodReason,
    stats: full ? s : Object.fromEntries(SUMMARY_STATS.map((k) => [k, s[k]])),
  });
}

export function register(server: McpServer, ctx: ToolContext) {
  return server.registerTool(name, config, (args, extra) => runTool(ctx, name, () => handle(ctx, args, extra)));
}
