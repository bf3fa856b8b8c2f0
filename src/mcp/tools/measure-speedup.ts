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
import { resolveModelArg, variantOfArg } from "../hub-args.js";
import { ALLOW_ENDPOINT_FLAG, ENDPOINT_URL_MAX, checkEndpointUrl } from "../endpoints.js";
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
  throwIfCancelled,
  type Extra,
  variantSchema,
} from "../tool-kit.js";

export const name = "measure_speedup";

const methodName = z.enum(METHOD_NAMES);

export const workloadArg = z
  .string()
  .optional()
  .describe('Built-in workload when no prompts are given: "builtin" (all categories) or "builtin:<chat|translation|summarization|qa|math|rag>".');

const endpointUrl = z.string().min(1).max(ENDPOINT_URL_MAX);
const servedModelName = z.string().min(1).max(256);

/** Local-model arguments that make no sense with `endpoint` (the server decides model and method). */
const LOCAL_ONLY = ["model", "variant", "draft", "draftVariant", "heads", "methods", "k", "methodOptions"] as const;
/** Endpoint arguments that make no sense without `endpoint`. */
const ENDPOINT_ONLY = ["endpointBaseline", "endpointModel", "baselineModel", "apiKey"] as const;

export const inputSchema = {
  model: modelArg.optional().describe(`${modelArg.description} Local mode; omit with endpoint.`),
  variant: variantSchema,
  endpoint: endpointUrl
    .optional()
    .describe(
      "Remote mode instead of model: the OpenAI base URL of a server to measure (ours, vLLM, SGLang, llama-server), e.g. http://127.0.0.1:8080/v1. " +
        `Only loopback hosts (127.0.0.0/8, ::1, localhost) unless the MCP server was started with ${ALLOW_ENDPOINT_FLAG} URL_PREFIX.`,
    ),
  endpointBaseline: endpointUrl.optional().describe("Remote mode: a second server (e.g. the same model without speculation) measured interleaved with endpoint; gives speedup, verdict and greedy comparison."),
  endpointModel: servedModelName.optional().describe("Remote mode: model id sent to endpoint (default: the first one its /v1/models lists)."),
  baselineModel: servedModelName.optional().describe("Remote mode: model id sent to endpointBaseline (default: endpointModel, else its first listed model)."),
  apiKey: z.string().min(1).max(4096).optional().describe("Remote mode: bearer token sent to both servers (never read from the MCP server's environment)."),
  draft: z.string().min(1).optional().describe("Draft model directory (method draft)."),
  draftVariant: variantSchema.describe('Variant of the draft model (like variant), e.g. "q4".'),
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
    .optional()
    .describe("Local mode (required there): methods to compare with baseline (baseline is always measured). Objects give per-method options and a label."),
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

/** One server's summary in remote mode (src/bench/remote.ts RemoteArmSummary; per-run texts left out). */
export const remoteArmSchema = z.looseObject({
  label: z.string(),
  url: z.string(),
  model: z.string(),
  runs: z.array(
    z.looseObject({
      prompt: z.string(),
      repeat: z.number(),
      completionTokens: z.number(),
      ttftMs: z.number(),
      totalMs: z.number(),
      decodeTokensPerSecond: z.number(),
      finishReason: z.string().nullable(),
    }),
  ),
  medianDecodeTokensPerSecond: z.number(),
  medianTtftMs: z.number(),
  medianTotalMs: z.number(),
  completionTokens: z.number(),
  acceptance: z
    .looseObject({
      source: z.string(),
      drafts: z.number().optional(),
      draftTokens: z.number().optional(),
      acceptedTokens: z.number().optional(),
      acceptanceRate: z.number().optional(),
      meanAcceptedLength: z.number().optional(),
      perPositionAcceptance: z.array(z.number()).optional(),
    })
    .nullable()
    .describe("From the server's /metrics (vLLM or SGLang counter names); null when it exposes none."),
  metricsNote: z.string(),
});

export const outputSchema = {
  mode: z.enum(["local", "endpoint"]).describe("local: model and methods measured here; endpoint: OpenAI-compatible servers measured over HTTP."),
  model: z.string().optional().describe("Local mode."),
  prompts: z.number(),
  repeats: z.number(),
  maxNewTokens: z.number(),
  greedy: z.boolean(),
  baseline: armSchema.optional().describe("Local mode: plain decoding."),
  arms: z.array(armSchema).optional().describe("Local mode: the methods asked for."),
  endpoint: remoteArmSchema.optional().describe("Endpoint mode: the measured server."),
  endpointBaseline: remoteArmSchema.optional().describe("Endpoint mode: the baseline server, when given."),
  speedup: ratioSchema.optional().describe("Endpoint mode with endpointBaseline: endpoint / baseline decode tokens/s, paired per (prompt, repeat)."),
  ttftRatio: ratioSchema.optional().describe("Endpoint mode with endpointBaseline: baseline / endpoint time to first token (> 1 = endpoint answers sooner)."),
  verdict: z.string().optional().describe('Endpoint mode with endpointBaseline: "speculation helps here", "no clear gain" or "use plain decoding" (from the 95% CI), with the numbers.'),
  greedyIdentical: z.boolean().nullable().optional().describe("Endpoint mode: every greedy output equal between the two servers; null when sampling or without a baseline."),
  mismatches: z.array(z.string()).optional().describe("Endpoint mode: prompt ids whose greedy outputs differ."),
  skipped: z.array(z.object({ label: z.string(), method: z.string(), reason: z.string() })).optional(),
  maxRssBytes: z.number().optional(),
  elapsedMs: z.number(),
};

export const config = {
  title: "Measure speedup",
  description:
    "Measure speculative methods against plain decoding on the same prompts in the same run (warm-up, interleaved repeats): " +
    "median tokens/s, speedup with a 95% confidence interval, acceptance rate, mean accepted length, per-position acceptance, " +
    "and whether greedy outputs were identical to plain decoding. Long: sends progress; cancellable. " +
    "With endpoint (instead of model) it measures OpenAI-compatible servers (ours, vLLM, SGLang, llama-server) over HTTP: streamed decode tokens/s, " +
    "time to first token, acceptance from the server's /metrics, and against endpointBaseline the paired speedup, a verdict and a greedy-output comparison. " +
    `Endpoint URLs must be loopback (127.0.0.0/8, ::1, localhost) unless the MCP server was started with ${ALLOW_ENDPOINT_FLAG} URL_PREFIX; redirects are refused.`,
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
  if (args.endpoint !== undefined) return handleEndpoint(ctx, args, extra);
  for (const k of ENDPOINT_ONLY) if (args[k] !== undefined) throw new InvalidOptionError(`${k} applies to remote mode: pass endpoint (a server URL) too, or drop ${k}.`);
  if (args.model === undefined) throw new InvalidOptionError("Pass model (a local model to measure) or endpoint (an OpenAI-compatible server URL).");
  if (args.methods === undefined) throw new InvalidOptionError('Pass methods, e.g. ["prompt-lookup"] (baseline is always measured).');
  const model = resolveModelArg(ctx.roots, args.model, "model", { directory: true });
  const defaults: MethodOptions = compact({ ...(args.methodOptions ?? {}), k: args.k });
  const methods = args.methods;
  const arms: ArmSpec[] = methods.map((m) =>
    typeof m === "string"
      ? { method: m, methodOptions: m === "baseline" ? undefined : defaults }
      : { method: m.method, label: m.label, methodOptions: compact({ ...defaults, ...(m.methodOptions ?? {}), k: m.k ?? defaults.k }) },
  );
  const { draft, heads } = checkResources(ctx, arms, args);
  const res = await measureSpeedup({
    ...benchCommon(ctx, args, extra),
    model,
    variant: args.variant ?? variantOfArg(args.model),
    draft,
    draftVariant: args.draftVariant ?? (args.draft ? variantOfArg(args.draft) : undefined),
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
  return textResult(text, { mode: "local", ...res, arms: res.arms.map((a) => ({ ...a, verdict: speedupVerdict(a.speedup) })) });
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
  const arm = (a: NonNullable<typeof res.baseline>) => ({ ...a, runs: a.runs.map(({ text: _text, ...r }) => r) });
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
