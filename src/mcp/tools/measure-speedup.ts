/**
 * `measure_speedup`: baseline vs one or more methods on the same prompts in the same run. Calls
 * `measureSpeedup` from src/bench/measure.ts, the same function as the CLI benchmark.
 */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { speedupVerdict, verdictSchema } from "../../bench/verdict.js";
import { measureSpeedup, type ArmSpec, type BenchProgress } from "../../bench/measure.js";
import type { SamplingOptions } from "../../sampling/index.js";
import { parseWorkloadSpec, type BenchPrompt } from "../../bench/workload.js";
import { METHOD_NAMES, type MethodOptions } from "../../decoding/methods.js";
import { InvalidOptionError } from "../../errors.js";
import { resolveModelArg } from "../hub-args.js";
import type { ToolContext } from "../context.js";
import {
  benchPromptSchema,
  compact,
  fmt,
  kSchema,
  methodOptionsSchema,
  modelArg,
  progressSender,
  ratioSchema,
  runTool,
  samplingSchema,
  textResult,
  type Extra,
} from "../tool-kit.js";

export const name = "measure_speedup";

const methodName = z.enum(METHOD_NAMES);

export const workloadArg = z
  .string()
  .optional()
  .describe('Built-in workload when no prompts are given: "builtin" (all categories) or "builtin:<chat|translation|summarization|qa|math|rag>".');

export const inputSchema = {
  model: modelArg,
  draft: z.string().min(1).optional().describe("Draft model directory (method draft)."),
  heads: z.string().min(1).optional().describe("Medusa heads (method medusa) or an EAGLE head (method eagle)."),
  methods: z
    .array(
      z.union([
        methodName,
        z
          .object({
            method: methodName,
            label: z.string().min(1).optional(),
            k: kSchema.optional(),
            methodOptions: methodOptionsSchema.optional(),
          })
          .strict(),
      ]),
    )
    .min(1)
    .max(12)
    .describe("Methods to compare with baseline (baseline is always measured). Objects give per-method options and a label."),
  k: kSchema.optional().describe("Default K for methods that take one."),
  methodOptions: methodOptionsSchema.optional().describe("Default method options for every method."),
  prompts: z.array(benchPromptSchema).min(1).max(64).optional().describe("Prompts: strings, or {prompt | messages | promptIds}."),
  workload: workloadArg,
  chat: z.boolean().default(false).describe("Give built-in prompts as chat messages (instruction-tuned models)."),
  maxNewTokens: z.number().int().min(1).max(4096).default(64),
  repeats: z.number().int().min(1).max(20).default(3),
  sampling: samplingSchema.optional(),
  seed: z.number().int().optional(),
  warmup: z.boolean().default(true),
};

/**
 * Loose objects: the bench library (src/bench/measure.ts) may add fields; clients then see them
 * without a schema change. The fields listed here are always present.
 */
export const armSchema = z.looseObject({
  label: z.string(),
  method: z.string(),
  methodOptions: z.record(z.string(), z.unknown()),
  runs: z.number(),
  medianTokensPerSecond: z.number(),
  speedup: ratioSchema,
  verdict: verdictSchema.optional().describe("Does this method help here (methods only, not baseline)."),
  acceptanceRate: z.number(),
  meanAcceptedLength: z.number().describe("New tokens per target forward, bonus included."),
  perPositionAcceptance: z.array(z.number()),
  meanDrafted: z.number(),
  draftMsPerToken: z.number(),
  targetMsPerForward: z.number(),
  newTokens: z.number(),
  targetForwards: z.number(),
  greedyIdentical: z.boolean().nullable().describe("Greedy only: every output equal to baseline's; null when sampling."),
  mismatches: z.array(z.string()),
  perPrompt: z.array(z.object({ id: z.string(), category: z.string(), medianTokensPerSecond: z.number(), speedup: z.number() })),
  verification: z.array(z.string()),
  notes: z.array(z.string()),
  decodeMsPerToken: z.number(),
  onnxRuntimeMsPerToken: z.number(),
  overheadMsPerToken: z.number().describe("Decode time outside onnxruntime per token (sampling, cache bookkeeping, JS)."),
  overheadShare: z.number(),
  draftCostRatio: z.number().describe("Draft ms per drafted token / baseline target ms per forward (c)."),
  idealSpeedup: z.number().describe("Leviathan et al.'s ideal speedup from the measured acceptance and draft cost."),
  efficiency: z.number().describe("Measured speedup / ideal speedup."),
  peakRssBytes: z.number(),
});

export const outputSchema = {
  model: z.string(),
  prompts: z.number(),
  repeats: z.number(),
  maxNewTokens: z.number(),
  greedy: z.boolean(),
  baseline: armSchema,
  arms: z.array(armSchema),
  skipped: z.array(z.object({ label: z.string(), method: z.string(), reason: z.string() })).optional(),
  maxRssBytes: z.number().optional(),
  elapsedMs: z.number(),
};

export const config = {
  title: "Measure speedup",
  description:
    "Measure speculative methods against plain decoding on the same prompts in the same run (warm-up, interleaved repeats): " +
    "median tokens/s, speedup with a 95% confidence interval, acceptance rate, mean accepted length, per-position acceptance, " +
    "and whether greedy outputs were identical to plain decoding. Long: sends progress; cancellable.",
  inputSchema,
  outputSchema: z.looseObject(outputSchema),
  annotations: { title: "Measure speedup", readOnlyHint: true, destructiveHint: false, idempotentHint: false, openWorldHint: false },
};

/** Prompts from `prompts`, else the built-in workload. */
/**
 * The request fields measure_speedup and tune_draft_k share: engine, prompts, lengths, sampling,
 * warm-up, cancellation and progress notifications.
 */
export function benchCommon(
  ctx: ToolContext,
  args: {
    prompts?: z.infer<typeof benchPromptSchema>[];
    workload?: string;
    chat?: boolean;
    maxNewTokens: number;
    repeats: number;
    sampling?: SamplingOptions;
    seed?: number;
    warmup?: boolean;
  },
  extra: Extra,
) {
  const progress = progressSender(extra);
  return {
    engine: ctx.engine,
    prompts: benchPrompts(args),
    maxNewTokens: args.maxNewTokens,
    repeats: args.repeats,
    sampling: compact({ ...(args.sampling ?? {}), seed: args.seed }),
    warmup: args.warmup,
    signal: extra.signal,
    onProgress: (p: BenchProgress) => progress(p.done, p.total, p.message),
  };
}

export function benchPrompts(args: { prompts?: z.infer<typeof benchPromptSchema>[]; workload?: string; chat?: boolean }): (string | Partial<BenchPrompt>)[] {
  if (args.prompts && args.workload) throw new InvalidOptionError("Give prompts or workload, not both.");
  return args.prompts ?? parseWorkloadSpec(args.workload ?? "builtin", { chat: args.chat });
}

/** Resolve draft / heads inside the roots and check each method has what it needs. */
export function checkResources(ctx: ToolContext, arms: ArmSpec[], args: { draft?: string; heads?: string }) {
  const draft = args.draft ? resolveModelArg(ctx.roots, args.draft, "draft", { directory: true }) : undefined;
  const heads = args.heads ? resolveModelArg(ctx.roots, args.heads, "heads") : undefined;
  for (const a of arms) {
    if (a.method === "draft" && !draft) throw new InvalidOptionError('method "draft" needs a draft model: pass draft.');
    if ((a.method === "medusa" || a.method === "eagle") && !heads) throw new InvalidOptionError(`method "${a.method}" needs heads: pass heads.`);
  }
  return { draft, heads };
}

type Args = z.infer<z.ZodObject<typeof inputSchema>>;

export async function handle(ctx: ToolContext, args: Args, extra: Extra) {
  const model = resolveModelArg(ctx.roots, args.model, "model", { directory: true });
  const defaults: MethodOptions = compact({ ...(args.methodOptions ?? {}), k: args.k });
  const arms: ArmSpec[] = args.methods.map((m) =>
    typeof m === "string"
      ? { method: m, methodOptions: m === "baseline" ? undefined : defaults }
      : { method: m.method, label: m.label, methodOptions: compact({ ...defaults, ...(m.methodOptions ?? {}), k: m.k ?? defaults.k }) },
  );
  const { draft, heads } = checkResources(ctx, arms, args);
  const res = await measureSpeedup({ ...benchCommon(ctx, args, extra), model, draft, heads, methods: arms });
  const line = (a: typeof res.baseline) =>
    `- ${a.label}: ${fmt(a.medianTokensPerSecond, 1)} tok/s, speedup ${fmt(a.speedup.mean)}x` +
    (a.speedup.low !== null ? ` [${fmt(a.speedup.low)}, ${fmt(a.speedup.high ?? NaN)}]` : "") +
    (a.method !== "baseline" ? ` (${speedupVerdict(a.speedup).verdict})` : "") +
    (a.method !== "baseline" ? `, acceptance ${fmt(a.acceptanceRate * 100, 1)}%, mean accepted length ${fmt(a.meanAcceptedLength)}` : "") +
    (a.greedyIdentical === false ? `, OUTPUT DIFFERS from baseline on ${a.mismatches.join(", ")}` : a.greedyIdentical ? ", greedy output identical" : "");
  const text =
    `${res.prompts} prompt(s) x ${res.repeats} repeat(s), ${res.maxNewTokens} new tokens, ${res.greedy ? "greedy" : "sampling"}:\n` +
    [res.baseline, ...res.arms].map(line).join("\n");
  return textResult(text, { ...res, arms: res.arms.map((a) => ({ ...a, verdict: speedupVerdict(a.speedup) })) });
}

export function register(server: McpServer, ctx: ToolContext) {
  return server.registerTool(name, config, (args, extra) => runTool(ctx, name, () => handle(ctx, args, extra)));
}
