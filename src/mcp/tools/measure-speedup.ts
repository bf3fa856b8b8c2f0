/**
 * `measure_speedup`: baseline vs one or more methods on the same prompts in the same run. Calls
 * `measureSpeedup` from src/bench/measure.ts, the same function as the CLI benchmark.
 */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { speedupVerdict, verdictSchema } from "../../bench/verdict.js";
import { measureSpeedup, normalizePrompts, type ArmSpec, type BenchProgress } from "../../bench/measure.js";
import { benchEndpoints, type EndpointSpec } from "../../bench/remote.js";
import type { SamplingOptions } from "../../sampling/index.js";
import { parseWorkloadSpec, type BenchPrompt } from "../../bench/workload.js";
import { METHOD_NAMES, type MethodOptions } from "../../decoding/methods.js";
import { InvalidOptionError, SpecDecodeError, errorMessage } from "../../errors.js";
import { resolveModelArg, variantsOfArgs } from "../hub-args.js";
import { ALLOW_ENDPOINT_FLAG, ENDPOINT_URL_MAX, checkEndpointUrl } from "../endpoints.js";
import type { ToolContext } from "../context.js";
import {
  benchPromptSchema,
  boundedString,
  pathArg,
  benchPromptsArg,
  listedAs,
  compact,
  fmt,
  detailSchema,
  kSchema,
  methodOptionsSchema,
  methodOptionsShape,
  modelArg,
  progressSender,
  ratioSchema,
  runTool,
  samplingSchema,
  seedSchema,
  strictArgs,
  textResult,
  throwIfCancelled,
  type Extra,
  variantSchema,
  draftVariantSchema,
} from "../tool-kit.js";

export const name = "measure_speedup";

const methodName = z.enum(METHOD_NAMES);

export const workloadArg = z
  .string()
  .optional()
  .describe("builtin[:chat|translation|summarization|qa|math|rag].");

const endpointUrl = boundedString(z.string().min(1).max(ENDPOINT_URL_MAX));
const servedModelName = boundedString(z.string().min(1).max(256));

/** Local-model arguments that make no sense with `endpoint` (the server decides model and method). */
const LOCAL_ONLY = ["model", "variant", "draft", "draftVariant", "heads", "methods", "k", "methodOptions"] as const;
/** Endpoint arguments that make no sense without `endpoint`. */
const ENDPOINT_ONLY = ["endpointBaseline", "endpointModel", "baselineModel", "apiKey"] as const;

export const inputSchema = {
  model: modelArg.optional().describe(`${modelArg.description} Or give endpoint.`),
  variant: variantSchema,
  endpoint: endpointUrl
    .optional()
    .describe(`OpenAI-API server URL to measure instead of model (loopback unless ${ALLOW_ENDPOINT_FLAG}).`),
  endpointBaseline: endpointUrl.optional().describe("endpoint: server to compare with."),
  endpointModel: servedModelName.optional().describe("endpoint: model id (default its first)."),
  baselineModel: servedModelName.optional().describe("endpointBaseline: model id."),
  apiKey: boundedString(z.string().min(1).max(4096)).optional().describe("endpoint: bearer token."),
  draft: pathArg().optional().describe("Draft model dir or repo id (method draft)."),
  draftVariant: draftVariantSchema,
  heads: pathArg().optional().describe("Medusa heads or EAGLE head dir (methods medusa, eagle)."),
  methods: z
    .array(
      z.union([
        methodName,
        listedAs(
          strictArgs(
            {
              method: methodName,
              label: z.string().min(1).max(256).optional(),
              k: kSchema.optional(),
              methodOptions: strictArgs(methodOptionsShape, "methods[].methodOptions").optional(),
            },
            "methods[]",
          ),
          "{method, label?, k?, methodOptions?}",
        ),
      ]),
    )
    .min(1)
    .max(12)
    .optional()
    .describe("Methods vs baseline (always run); objects add a label, options."),
  k: kSchema.optional(),
  methodOptions: listedAs(methodOptionsSchema, "As generate_speculative's methodOptions, for every method.").optional(),
  prompts: benchPromptsArg,
  workload: workloadArg,
  chat: z.boolean().default(false).describe("Built-in prompts as chat messages."),
  maxNewTokens: z.number().int().min(1).max(4096).default(64).describe("Tokens per run."),
  repeats: z.number().int().min(1).max(20).default(3).describe("Runs per prompt and method."),
  sampling: listedAs(samplingSchema, "As generate_speculative's sampling (endpoint: temperature only).").optional(),
  seed: seedSchema,
  warmup: z.boolean().default(true).describe("One warm-up run per method first."),
  detail: detailSchema,
};

/** One measured method (src/bench/measure.ts ArmSummary; loose: every field it has is sent). */
export const armSchema = z.looseObject({
  label: z.string(),
  method: z.string(),
  medianTokensPerSecond: z.number(),
  speedup: ratioSchema,
  verdict: verdictSchema.optional(),
  acceptanceRate: z.number(),
  meanAcceptedLength: z.number(),
  greedyIdentical: z.boolean().nullable().describe("Every greedy output equal to baseline's; null when sampling."),
});

/** One server in remote mode (src/bench/remote.ts RemoteArmSummary; per-run rows with detail full). */
export const remoteArmSchema = z.looseObject({
  label: z.string(),
  url: z.string(),
  model: z.string(),
  medianDecodeTokensPerSecond: z.number(),
  medianTtftMs: z.number(),
  acceptance: z.looseObject({}).nullable().describe("From the server's /metrics; null when it has none."),
});

export const outputSchema = {
  mode: z.enum(["local", "endpoint"]),
  model: z.string().optional(),
  prompts: z.number(),
  repeats: z.number(),
  maxNewTokens: z.number(),
  greedy: z.boolean(),
  baseline: armSchema.optional().describe("Local: plain decoding."),
  arms: z.array(armSchema).optional().describe("Local: the methods."),
  endpoint: remoteArmSchema.optional(),
  endpointBaseline: remoteArmSchema.optional(),
  speedup: ratioSchema.optional().describe("Remote: endpoint / endpointBaseline decode tokens/s."),
  ttftRatio: ratioSchema.optional(),
  verdict: z.string().optional(),
  greedyIdentical: z.boolean().nullable().optional(),
  mismatches: z.array(z.string()).optional(),
  skipped: z.array(z.looseObject({ label: z.string(), reason: z.string() })).optional(),
  maxRssBytes: z.number().optional(),
  elapsedMs: z.number(),
};

export const config = {
  title: "Measure speedup",
  description:
    "Measure methods vs plain decoding on the same prompts, interleaved: speedup with 95% interval, verdict, " +
    "acceptance, greedy output identical; or OpenAI-API servers (endpoint vs endpointBaseline). Long: progress; cancellable.",
  inputSchema,
  annotations: { readOnlyHint: true, openWorldHint: false },
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

/** A local-mode arm without its per-prompt and per-position rows (detail summary). */
function leanArm<T extends { perPrompt?: unknown; perPositionAcceptance?: unknown }>(a: T) {
  const { perPrompt: _p, perPositionAcceptance: _q, ...rest } = a;
  return rest;
}

export async function handle(ctx: ToolContext, args: Args, extra: Extra) {
  if (args.endpoint !== undefined) return handleEndpoint(ctx, args, extra);
  for (const k of ENDPOINT_ONLY) if (args[k] !== undefined) throw new InvalidOptionError(`${k} applies to remote mode: pass endpoint (a server URL) too, or drop ${k}.`);
  if (args.model === undefined) throw new InvalidOptionError("Pass model (a local model to measure) or endpoint (an OpenAI-compatible server URL).");
  if (args.methods === undefined) throw new InvalidOptionError('Pass methods, e.g. ["prompt-lookup"] (baseline is always measured).');
  const model = resolveModelArg(ctx.roots, args.model, "model", { directory: true });
  const defaults: MethodOptions = compact({ ...(args.methodOptions ?? {}), k: args.k });
  const methods = args.methods;
  const arms: ArmSpec[] = methods.map((m) => {
    if (typeof m === "string") return { method: m, methodOptions: m === "baseline" ? undefined : defaults };
    return { method: m.method, label: m.label, methodOptions: compact({ ...defaults, ...(m.methodOptions ?? {}), k: m.k ?? defaults.k }) };
  });
  const { draft, heads } = checkResources(ctx, arms, args);
  const res = await measureSpeedup({
    ...benchCommon(ctx, args, extra),
    model,
    ...variantsOfArgs(args),
    draft,
    heads,
    methods: arms,
  });
  const line = (a: typeof res.baseline) =>
    `- ${a.label}: ${fmt(a.medianTokensPerSecond, 1)} tok/s, speedup ${fmt(a.speedup.mean)}x` +
    (a.speedup.low !== null ? ` [${fmt(a.speedup.low)}, ${fmt(a.speedup.high ?? NaN)}]` : "") +
    (a.method !== "baseline" ? ` (${speedupVerdict(a.speedup).verdict})` : "") +
    (a.method !== "baseline" ? `, acceptance ${fmt(a.acceptanceRate * 100, 1)}%, mean accepted length ${fmt(a.meanAcceptedLength)}` : "") +
    (a.greedyIdentical === false ? `, OUTPUT DIFFERS from baseline on ${a.mismatches.join(", ")}` : a.greedyIdentical ? ", greedy output identical" : "");
  const text =
    `${res.prompts} prompt(s) x ${res.repeats} repeat(s), ${res.maxNewTokens} new tokens, ${res.greedy ? "greedy" : "sampling"}:\n` +
    [res.baseline, ...res.arms].map(line).join("\n");
  const full = args.detail === "full";
  const arm = <T extends { perPrompt?: unknown; perPositionAcceptance?: unknown }>(a: T) => (full ? a : leanArm(a));
  return textResult(text, {
    mode: "local",
    ...res,
    baseline: arm(res.baseline),
    arms: res.arms.map((a) => ({ ...arm(a), verdict: speedupVerdict(a.speedup) })),
  });
}

/** The CLI flag names src/bench/remote.ts uses in its messages, as this tool's argument names. */
const FLAG_TO_ARG: [RegExp, string][] = [
  [/--endpoint-model( NAME)?/g, "endpointModel (baselineModel for endpointBaseline)"],
  [/--api-key/g, "apiKey"],
  [/--repeats/g, "repeats"],
];

export function inToolVocabulary(text: string): string {
  return FLAG_TO_ARG.reduce((t, [re, arg]) => t.replace(re, arg), text);
}

/** fetch's network failures (refused, DNS, redirect refused, timeout) as errors that say what failed, not as bugs. */
async function unreachableAsError<T>(fn: () => Promise<T>, extra: Extra): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof InvalidOptionError) throw new InvalidOptionError(inToolVocabulary(err.message), { cause: err });
    if (err instanceof SpecDecodeError) throw err;
    throwIfCancelled(extra);
    const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : "";
    throw new SpecDecodeError(
      "ENDPOINT",
      `The endpoint could not be reached or answered unusably (${errorMessage(err)}${cause}). Check that the server is running at that URL and speaks the OpenAI API; redirects are not followed, so give its final URL.`,
      { cause: err },
    );
  }
}

/**
 * Remote mode: `benchEndpoints` (src/bench/remote.ts, the function behind `spec-decode bench
 * --endpoint`) on URLs that passed the endpoint policy (endpoints.ts), redirects refused.
 */
async function handleEndpoint(ctx: ToolContext, args: Args, extra: Extra) {
  const local = LOCAL_ONLY.filter((k) => args[k] !== undefined);
  if (local.length) throw new InvalidOptionError(`${local.join(", ")} appl${local.length > 1 ? "y" : "ies"} to local models; with endpoint the server decides the model and method. Drop ${local.join(", ")} or endpoint.`);
  if (args.warmup === false) throw new InvalidOptionError("With endpoint every server always gets one warm-up request; drop warmup: false.");
  const allowed = ctx.allowedEndpoints ?? [];
  const spec = (url: string, argName: string, model: string | undefined): EndpointSpec => ({
    url: checkEndpointUrl(url, argName, allowed),
    model,
    apiKey: args.apiKey,
    redirect: "error",
  });
  const endpoint = spec(args.endpoint!, "endpoint", args.endpointModel);
  const baseline = args.endpointBaseline !== undefined ? spec(args.endpointBaseline, "endpointBaseline", args.baselineModel ?? args.endpointModel) : undefined;
  const common = benchCommon(ctx, args, extra);
  const s = common.sampling;
  if (s.topK !== undefined || s.topP !== undefined || s.minP !== undefined || s.repetitionPenalty !== undefined) {
    throw new InvalidOptionError("With endpoint only sampling.temperature and seed are sent; drop sampling.topK / topP / minP / repetitionPenalty.");
  }
  const res = await unreachableAsError(() => benchEndpoints({
    endpoint,
    baseline,
    prompts: normalizePrompts(common.prompts),
    maxNewTokens: common.maxNewTokens,
    repeats: common.repeats,
    temperature: s.temperature,
    seed: s.seed,
    signal: extra.signal,
    onProgress: (done, total, message) => common.onProgress({ done, total, message } as BenchProgress),
  }), extra);
  // Per-run texts stay out of the MCP result (up to prompts x repeats x maxNewTokens tokens each); mismatches names the prompts.
  const full = args.detail === "full";
  const arm = (a: NonNullable<typeof res.baseline>) => {
    const { runs, ...rest } = a;
    return full ? { ...rest, runs: runs.map(({ text: _text, ...r }) => r) } : rest;
  };
  const line = (a: NonNullable<typeof res.baseline>, label: string) =>
    `- ${label} ${a.url} (${a.model}): ${fmt(a.medianDecodeTokensPerSecond, 1)} decode tok/s, TTFT ${fmt(a.medianTtftMs, 0)} ms` +
    (a.acceptance?.acceptanceRate !== undefined ? `, acceptance ${fmt(a.acceptance.acceptanceRate * 100, 1)}%` : "") +
    (a.acceptance?.meanAcceptedLength !== undefined ? `, mean accepted length ${fmt(a.acceptance.meanAcceptedLength)}` : "");
  const text = [
    `${res.prompts} prompt(s) x ${res.repeats} repeat(s), ${res.maxNewTokens} max tokens, ${res.greedy ? "greedy" : "sampling"}:`,
    line(res.endpoint, "endpoint"),
    ...(res.baseline ? [line(res.baseline, "endpointBaseline")] : []),
    ...(res.speedup
      ? [
          `speedup ${fmt(res.speedup.mean)}x` + (res.speedup.low !== null ? ` [${fmt(res.speedup.low)}, ${fmt(res.speedup.high ?? NaN)}]` : "") + `: ${inToolVocabulary(res.verdict ?? "")}`,
          res.greedyIdentical === true ? "greedy outputs identical" : res.greedyIdentical === false ? `greedy OUTPUTS DIFFER on ${res.mismatches.join(", ")}` : "",
        ].filter(Boolean)
      : []),
  ].join("\n");
  return textResult(text, {
    mode: "endpoint",
    prompts: res.prompts,
    repeats: res.repeats,
    maxNewTokens: res.maxNewTokens,
    greedy: res.greedy,
    endpoint: arm(res.endpoint),
    ...(res.baseline ? { endpointBaseline: arm(res.baseline) } : {}),
    ...(res.speedup ? { speedup: res.speedup } : {}),
    ...(res.ttftRatio ? { ttftRatio: res.ttftRatio } : {}),
    ...(res.verdict !== undefined ? { verdict: inToolVocabulary(res.verdict) } : {}),
    greedyIdentical: res.greedyIdentical,
    mismatches: res.mismatches,
    elapsedMs: res.elapsedMs,
  });
}

export function register(server: McpServer, ctx: ToolContext) {
  return server.registerTool(name, config, (args, extra) => runTool(ctx, name, () => handle(ctx, args, extra)));
}
