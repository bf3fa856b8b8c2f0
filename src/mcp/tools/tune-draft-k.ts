/**
 * `tune_draft_k`: sweep K (and the adaptive controllers) for the draft or early-exit method.
 * Calls `tuneDraftK` from src/bench/tune.ts, the same function as the CLI.
 */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { DEFAULT_TUNE_KS, tuneDraftK } from "../../bench/tune.js";
import { ADAPTIVE_CONTROLLERS, CONTROLLER_NAMES, K_MAX, K_MIN } from "../../decoding/controllers.js";
import { METHOD_OPTIONS_SHAPE } from "../../decoding/methods.js";
import { peerCommandText } from "../../bench/peers.js";
import { verdictSchema } from "../../bench/verdict.js";
import { InvalidOptionError } from "../../errors.js";
import { mcpVocabulary } from "../../vocabulary.js";
import { resolveModelArg, variantsOfArgs } from "../hub-args.js";
import type { ToolContext } from "../context.js";
import {
  benchPromptsArg,
  detailSchema,
  draftVariantSchema,
  listedAs,
  pathArg,
  fmt,
  modelArg,
  ratioSchema,
  runTool,
  samplingSchema,
  seedSchema,
  textResult,
  type Extra,
  variantSchema,
} from "../tool-kit.js";
import { benchCommon, workloadArg } from "./measure-speedup.js";

export const name = "tune_draft_k";

export const inputSchema = {
  model: modelArg,
  variant: variantSchema,
  method: z.enum(["draft", "early-exit"]).optional().describe("Default: draft with draft, early-exit with exitLayer."),
  draft: pathArg().optional().describe("Draft model dir or repo id (method draft)."),
  draftVariant: draftVariantSchema,
  exitLayer: METHOD_OPTIONS_SHAPE.exitLayer.describe("early-exit: draft layers (default: smallest built)."),
  adapter: METHOD_OPTIONS_SHAPE.adapter.describe("early-exit: the trained adapter."),
  ks: z.array(z.number().int().min(K_MIN).max(K_MAX)).min(1).max(16).default(DEFAULT_TUNE_KS).describe("Fixed K values to sweep."),
  controllers: z
    .array(z.enum(ADAPTIVE_CONTROLLERS))
    .max(3)
    .default([...ADAPTIVE_CONTROLLERS])
    .describe('Also try these with k "auto" ([]: none).'),
  confidenceThreshold: METHOD_OPTIONS_SHAPE.confidenceThreshold,
  prompts: benchPromptsArg,
  workload: workloadArg,
  chat: z.boolean().default(false).describe("Built-in prompts as chat messages."),
  maxNewTokens: z.number().int().min(1).max(4096).default(64).describe("Tokens per run."),
  repeats: z.number().int().min(1).max(20).default(2).describe("Runs per prompt and setting."),
  sampling: listedAs(samplingSchema, "As generate_speculative's sampling.").optional(),
  seed: seedSchema,
  warmup: z.boolean().default(true).describe("One warm-up run per setting first."),
  detail: detailSchema,
};

const controllerName = z.enum(CONTROLLER_NAMES);

export const outputSchema = {
  method: z.enum(["draft", "early-exit"]),
  exitLayer: z.number().optional(),
  baselineTokensPerSecond: z.number(),
  points: z.array(
    z.looseObject({
      label: z.string(),
      k: z.number().nullable(),
      controller: controllerName,
      medianTokensPerSecond: z.number(),
      speedup: ratioSchema,
      acceptanceRate: z.number(),
      meanAcceptedLength: z.number(),
      greedyIdentical: z.boolean().nullable(),
    }),
  ),
  alpha: z.number().describe("Fitted per-token acceptance."),
  costRatio: z.number().describe("Draft step / target forward cost."),
  predictedCurve: z.array(z.looseObject({ k: z.number(), predictedSpeedup: z.number() })).optional().describe("detail full."),
  predictedBestK: z.number(),
  best: z.looseObject({ label: z.string(), k: z.number().nullable(), speedup: z.number() }).describe("Fastest measured setting, even if slower than plain decoding."),
  verdict: verdictSchema,
  recommended: z
    .looseObject({ method: z.enum(["draft", "early-exit"]), k: z.union([z.number(), z.literal("auto")]) })
    .nullable()
    .describe("generate_speculative arguments to spread into a call as is; null: use plain decoding."),
  equivalents: z.looseObject({}).nullable().describe("vLLM / SGLang / llama.cpp / transformers settings for recommended; null without one."),
  prompts: z.number(),
  repeats: z.number(),
  elapsedMs: z.number(),
};

export const config = {
  title: "Tune draft K",
  description:
    "Sweep K (draft model or early exit) vs plain decoding: speedup, acceptance, verdict; if a setting wins, " +
    "`recommended` generate_speculative args + vLLM/SGLang/llama.cpp equivalents. Long: progress; cancellable.",
  inputSchema,
  annotations: { readOnlyHint: true, openWorldHint: false },
};

type Args = z.infer<z.ZodObject<typeof inputSchema>>;

export async function handle(ctx: ToolContext, args: Args, extra: Extra) {
  const model = resolveModelArg(ctx.roots, args.model, "model", { directory: true });
  const draft = args.draft ? resolveModelArg(ctx.roots, args.draft, "draft", { directory: true }) : undefined;
  // Never guess: without draft the caller says early-exit (method or exitLayer).
  const method = args.method ?? (draft ? "draft" : args.exitLayer !== undefined ? "early-exit" : undefined);
  if (method === undefined) {
    throw new InvalidOptionError(
      'tune_draft_k sweeps K of a draft: pass draft (a draft model of the same family), or method "early-exit" / exitLayer ' +
        "(the target's own first layers; build_model {earlyExit: [m]} builds one). Without either, try measure_speedup with prompt-lookup.",
    );
  }
  if (method === "draft" && !draft) throw new InvalidOptionError('method "draft" needs draft (a draft model of the same family).');
  const variants = variantsOfArgs(args);
  if (method === "early-exit" && args.draftVariant !== undefined) {
    throw new InvalidOptionError("draftVariant applies to method draft: early-exit drafts with the target variant's own first layers (set variant), so drop draftVariant.");
  }
  const res = await tuneDraftK({
    ...benchCommon(ctx, args, extra),
    model,
    ...variants,
    draft,
    method,
    exitLayer: args.exitLayer,
    adapter: args.adapter,
    ks: args.ks,
    controllers: args.controllers,
    confidenceThreshold: args.confidenceThreshold,
  });
  const { measurement, predictedCurve, ...rest } = res;
  const full = args.detail === "full";
  const points = full ? rest.points : rest.points.map(({ perPositionAcceptance: _p, ...p }) => p);
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
  return textResult(text, {
    ...rest,
    points,
    ...(full ? { predictedCurve } : {}),
    recommended,
    prompts: measurement.prompts,
    repeats: measurement.repeats,
    elapsedMs: measurement.elapsedMs,
  });
}

/** Errors name this tool's arguments: exitLayer, adapter and confidenceThreshold are top-level here, K is swept by ks. */
const VOCABULARY = mcpVocabulary({ exitLayer: "exitLayer", confidenceThreshold: "confidenceThreshold", adapter: "adapter", k: "ks" });

export function register(server: McpServer, ctx: ToolContext) {
  return server.registerTool(name, config, (args, extra) => runTool(ctx, name, () => handle(ctx, args, extra), VOCABULARY));
}
