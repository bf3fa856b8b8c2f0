/**
 * `tune_draft_k`: sweep K (and the adaptive controllers) for the draft or early-exit method.
 * Calls `tuneDraftK` from src/bench/tune.ts, the same function as the CLI.
 */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { ADAPTIVE_CONTROLLERS, DEFAULT_TUNE_KS, tuneDraftK } from "../../bench/tune.js";
import { K_MAX, K_MIN } from "../../decoding/controllers.js";
import { peerCommandText } from "../../bench/peers.js";
import { verdictSchema } from "../../bench/verdict.js";
import { resolveModelArg } from "../hub-args.js";
import type { ToolContext } from "../context.js";
import { benchPromptSchema, fmt, modelArg, ratioSchema, runTool, samplingSchema, textResult, type Extra } from "../tool-kit.js";
import { benchCommon, workloadArg } from "./measure-speedup.js";

export const name = "tune_draft_k";

export const inputSchema = {
  model: modelArg,
  method: z.enum(["draft", "early-exit"]).optional().describe("Default: draft when a draft is given, else early-exit (needs an early-exit draft built with build_model)."),
  draft: z.string().min(1).optional().describe("Draft model directory (method draft)."),
  exitLayer: z.number().int().min(1).optional().describe("Early-exit depth (method early-exit; default: the smallest built)."),
  ks: z.array(z.number().int().min(K_MIN).max(K_MAX)).min(1).max(16).default(DEFAULT_TUNE_KS).describe("Fixed K values to sweep."),
  controllers: z
    .array(z.enum(ADAPTIVE_CONTROLLERS))
    .max(3)
    .default([...ADAPTIVE_CONTROLLERS])
    .describe('Adaptive controllers to try with k="auto" ([] for fixed K only).'),
  confidenceThreshold: z.number().min(0).max(1).optional().describe("Threshold for the confidence controller."),
  prompts: z.array(benchPromptSchema).min(1).max(64).optional(),
  workload: workloadArg,
  chat: z.boolean().default(false),
  maxNewTokens: z.number().int().min(1).max(4096).default(64),
  repeats: z.number().int().min(1).max(20).default(2),
  sampling: samplingSchema.optional(),
  seed: z.number().int().optional(),
  warmup: z.boolean().default(true),
};

const pointSchema = z.looseObject({
  label: z.string(),
  k: z.number().nullable().describe("Fixed K, or null for an adaptive controller."),
  controller: z.enum(["fixed", "heuristic", "confidence", "cost"]),
  medianTokensPerSecond: z.number(),
  speedup: ratioSchema,
  acceptanceRate: z.number(),
  meanAcceptedLength: z.number(),
  perPositionAcceptance: z.array(z.number()),
  meanDrafted: z.number().describe("Mean tokens drafted per round."),
  predictedSpeedup: z.number().nullable(),
  efficiency: z.number().nullable().describe("Measured / predicted speedup."),
  greedyIdentical: z.boolean().nullable(),
});

export const outputSchema = {
  method: z.enum(["draft", "early-exit"]),
  exitLayer: z.number().optional(),
  baselineTokensPerSecond: z.number(),
  points: z.array(pointSchema),
  alpha: z.number().describe("Fitted per-token acceptance probability."),
  costRatio: z.number().describe("Draft step cost / target forward cost, measured."),
  predictedCurve: z.array(
    z.object({
      k: z.number(),
      expectedAcceptedLength: z.number(),
      predictedSpeedup: z.number(),
      verifyCost: z.number().describe("Target forward over K+1 tokens / a one-token forward: measured on the swept K, a fitted line elsewhere."),
    }),
  ),
  predictedBestK: z.number(),
  best: z
    .object({ label: z.string(), k: z.number().nullable(), controller: z.enum(["fixed", "heuristic", "confidence", "cost"]), speedup: z.number(), reason: z.string() })
    .describe("The fastest measured setting, whether or not it beats plain decoding (see verdict, recommended)."),
  verdict: verdictSchema.describe('Whether to speculate here: recommended only when the fastest setting beats plain decoding (> 1x); "speculation helps here" when its 95% interval is above 1, "no clear gain" when it includes 1, "use plain decoding" when no setting beat plain decoding.'),
  recommended: z
    .object({
      method: z.enum(["draft", "early-exit"]),
      draft: z.string().optional(),
      k: z.union([z.number(), z.literal("auto")]),
      methodOptions: z.record(z.string(), z.unknown()),
    })
    .nullable()
    .describe("The recommended setting as generate_speculative arguments (spread into a call as is), or null: use plain decoding."),
  equivalents: z
    .object({
    vllm: z.object({ num_speculative_tokens: z.number(), commandLine: z.string(), note: z.string() }),
    sglang: z.object({
      algorithm: z.literal("STANDALONE"),
      num_steps: z.number(),
      eagle_topk: z.number(),
      num_draft_tokens: z.number(),
      flags: z.array(z.string()),
      commandLine: z.string(),
      note: z.string(),
    }),
    llamaCpp: z.object({ draftMax: z.number(), draftMin: z.number(), draftPMin: z.number(), commandLine: z.string(), note: z.string() }),
    transformers: z.object({
      num_assistant_tokens: z.number(),
      num_assistant_tokens_schedule: z.enum(["constant", "heuristic"]),
      assistant_confidence_threshold: z.number(),
      code: z.string(),
      note: z.string(),
    }),
  })
    .nullable()
    .describe("vLLM / SGLang / llama.cpp / transformers settings for the recommended setting; null when nothing is recommended."),
  prompts: z.number(),
  repeats: z.number(),
  elapsedMs: z.number(),
};

export const config = {
  title: "Tune draft K",
  description:
    "Find the best number of drafted tokens K for draft-model or early-exit speculation: sweeps fixed K and the adaptive " +
    "controllers (heuristic, confidence, cost) against plain decoding, and returns per-K tokens/s, speedup, acceptance, " +
    "per-position acceptance, the speedup curve predicted from measured acceptance and draft cost, a verdict (does speculation help here?), and, " +
    "only when a setting beats plain decoding, `recommended` (generate_speculative arguments: method, k, methodOptions, draft) " +
    "and its equivalent settings for vLLM, SGLang, llama.cpp and Hugging Face transformers. Long: sends progress; cancellable.",
  inputSchema,
  outputSchema: z.looseObject(outputSchema),
  annotations: { title: "Tune draft K", readOnlyHint: true, destructiveHint: false, idempotentHint: false, openWorldHint: false },
};

type Args = z.infer<z.ZodObject<typeof inputSchema>>;

export async function handle(ctx: ToolContext, args: Args, extra: Extra) {
  const model = resolveModelArg(ctx.roots, args.model, "model", { directory: true });
  const draft = args.draft ? resolveModelArg(ctx.roots, args.draft, "draft", { directory: true }) : undefined;
  const method = args.method ?? (draft ? "draft" : "early-exit");
  const res = await tuneDraftK({
    ...benchCommon(ctx, args, extra),
    model,
    draft,
    method,
    exitLayer: args.exitLayer,
    ks: args.ks,
    controllers: args.controllers,
    confidenceThreshold: args.confidenceThreshold,
  });
  const { measurement, ...rest } = res;
  // The draft argument as the caller gave it, so the object spreads into generate_speculative as is.
  const recommended = res.recommended && { ...res.recommended, ...(res.recommended.method === "draft" && args.draft ? { draft: args.draft } : {}) };
  const text =
    `${res.method}: baseline ${fmt(res.baselineTokensPerSecond, 1)} tok/s; alpha ${fmt(res.alpha, 3)}, draft/target cost ${fmt(res.costRatio, 3)}\n` +
    res.points
      .map(
        (p) =>
          `- ${p.label}: ${fmt(p.speedup.mean)}x (${fmt(p.medianTokensPerSecond, 1)} tok/s), acceptance ${fmt(p.acceptanceRate * 100, 1)}%, ` +
          `mean accepted length ${fmt(p.meanAcceptedLength)}` +
          (p.predictedSpeedup !== null ? `, predicted ${fmt(p.predictedSpeedup)}x` : "") +
          (p.greedyIdentical === false ? ", OUTPUT DIFFERS from baseline" : ""),
      )
      .join("\n") +
    `\nFastest measured: ${res.best.label} (${res.best.reason})\nPredicted best K: ${res.predictedBestK}\nVerdict: ${res.verdict.text}` +
    (recommended
      ? `\nRecommended generate_speculative arguments: ${JSON.stringify(recommended)}\n${peerCommandText(res.equivalents)}`
      : "\nNo recommended setting: generate with method baseline.");
  return textResult(text, { ...rest, recommended, prompts: measurement.prompts, repeats: measurement.repeats, elapsedMs: measurement.elapsedMs });
}

export function register(server: McpServer, ctx: ToolContext) {
  return server.registerTool(name, config, (args, extra) => runTool(ctx, name, () => handle(ctx, args, extra)));
}
