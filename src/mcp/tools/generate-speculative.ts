/** `generate_speculative`: generate text with any method; returns text, token ids and statistics. */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { DEFAULT_MAX_NEW_TOKENS, chooseAutoMethod, type GenerateRequest } from "../../api.js";
import { MESSAGES_MAX, OPTION_MAX, PROMPT_IDS_MAX, PROMPT_MAX_BYTES } from "../../decoding/limits.js";
import type { MethodOptions } from "../../decoding/methods.js";
import { InvalidOptionError } from "../../errors.js";
import { assertMethodsAvailable } from "../../bench/measure.js";
import { resolveModelArg, variantOfArg } from "../hub-args.js";
import type { ToolContext } from "../context.js";
import {
  chatMessageSchema,
  compact,
  fmt,
  kSchema,
  methodOptionsSchema,
  methodSchema,
  modelArg,
  progressSender,
  runTool,
  samplingSchema,
  statsSchema,
  textResult,
  type Extra,
  variantSchema,
} from "../tool-kit.js";

export const name = "generate_speculative";

export const inputSchema = {
  model: modelArg,
  prompt: z.string().max(PROMPT_MAX_BYTES).optional().describe("Plain text prompt (BOS added). Give exactly one of prompt, messages, promptIds."),
  messages: z.array(chatMessageSchema).min(1).max(MESSAGES_MAX).optional().describe("Chat messages, formatted with the model's chat template."),
  promptIds: z.array(z.number().int().min(0)).min(1).max(PROMPT_IDS_MAX).optional().describe("Token ids fed exactly as given."),
  variant: variantSchema,
  method: methodSchema.default("auto"),
  draft: z.string().min(1).max(4096).optional().describe("Draft model directory (method draft); must share the target's tokenizer."),
  heads: z.string().min(1).max(4096).optional().describe("Medusa heads directory or file (method medusa), or an EAGLE head directory (method eagle)."),
  k: kSchema.optional(),
  methodOptions: methodOptionsSchema.optional(),
  sampling: samplingSchema.optional(),
  seed: z.number().int().optional().describe("Sampler seed (same seed + same model = same text)."),
  stop: z.array(z.string().min(1).max(OPTION_MAX.stopChars)).max(OPTION_MAX.stopStrings).optional().describe("Stop strings (not included in the text)."),
  maxNewTokens: z.number().int().min(1).max(8192).default(DEFAULT_MAX_NEW_TOKENS),
};

export const outputSchema = {
  text: z.string(),
  tokens: z.array(z.number()).describe("Generated token ids."),
  promptTokens: z.number(),
  finishReason: z.enum(["eos", "length", "stop", "cancelled"]),
  method: z.string().describe("The method that ran."),
  methodReason: z.string().describe('Why this method ("requested", or auto\'s reason).'),
  stats: statsSchema,
};

export const config = {
  title: "Generate with speculative decoding",
  description:
    "Generate text from a local ONNX model with a speculative method (draft model, prompt lookup, lookahead, Medusa, early-exit) " +
    "or plain decoding. Greedy output is token-identical to plain decoding; sampling keeps the target's distribution " +
    "(except Medusa's typical acceptance). Returns the text, token ids and statistics (acceptance rate, mean accepted length, tokens/s). " +
    "Sends progress notifications when given a progress token; cancellable.",
  inputSchema,
  outputSchema,
  annotations: { title: "Generate (speculative)", readOnlyHint: true, destructiveHint: false, idempotentHint: false, openWorldHint: false },
};

type Args = z.infer<z.ZodObject<typeof inputSchema>>;

export async function handle(ctx: ToolContext, args: Args, extra: Extra) {
  const given = [args.prompt, args.messages, args.promptIds].filter((x) => x !== undefined).length;
  if (given !== 1) throw new InvalidOptionError("Give exactly one of prompt, messages or promptIds.");
  const model = resolveModelArg(ctx.roots, args.model, "model", { directory: true });
  const draft = args.draft ? resolveModelArg(ctx.roots, args.draft, "draft", { directory: true }) : undefined;
  const heads = args.heads ? resolveModelArg(ctx.roots, args.heads, "heads") : undefined;
  const methodOptions: MethodOptions = compact({ ...(args.methodOptions ?? {}), k: args.k });
  if (args.method !== "auto") assertMethodsAvailable([args.method]);
  if (args.method === "draft" && !draft) throw new InvalidOptionError('method "draft" needs a draft model: pass draft (a model directory with the same tokenizer).');
  if (args.method === "medusa" && !heads) throw new InvalidOptionError('method "medusa" needs heads: pass heads (a Medusa heads directory or file).');
  if (args.method === "eagle" && !heads) throw new InvalidOptionError('method "eagle" needs heads: pass heads (an EAGLE head directory from `spec-decode train-eagle`).');
  const progress = progressSender(extra);
  const req: GenerateRequest = {
    model,
    variant: args.variant ?? variantOfArg(args.model),
    draft,
    draftVariant: args.draft ? variantOfArg(args.draft) : undefined,
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
  if (args.method === "auto") ctx.logger.log("debug", `auto -> ${chooseAutoMethod(req).method}`);
  const res = await ctx.engine.generate(req);
  const s = res.stats;
  ctx.logger.log("debug", `generate_speculative: ${res.method}, ${s.newTokens} of ${args.maxNewTokens} tokens, finish ${res.finishReason}`);
  const summary =
    `[${res.method}${res.methodReason !== "requested" ? ` (auto: ${res.methodReason})` : ""}] ${s.newTokens} tokens, ` +
    `${fmt(s.tokensPerSecond, 1)} tok/s, ${s.targetForwards} target forwards, mean accepted length ${fmt(s.meanAcceptedLength)}` +
    (s.draftedTokens > 0 ? `, acceptance ${fmt(s.acceptanceRate * 100, 1)}%` : "") +
    `, finish: ${res.finishReason}`;
  return textResult(`${res.text}\n\n${summary}`, {
    text: res.text,
    tokens: res.tokens,
    promptTokens: res.promptTokens,
    finishReason: res.finishReason,
    method: res.method,
    methodReason: res.methodReason,
    stats: s,
  });
}

export function register(server: McpServer, ctx: ToolContext) {
  return server.registerTool(name, config, (args, extra) => runTool(ctx, name, () => handle(ctx, args, extra)));
}
