/** `spec-decode generate`: stream text (or print one JSON object) from any method. */
import { SpecEngine, type ChatMessage, type GenerateRequest } from "../api.js";
import { OPTION_MAX } from "../decoding/limits.js";
import { METHOD_NAMES, type MethodName, type MethodOptions } from "../decoding/methods.js";
import type { Device } from "../engine/session.js";
import { InvalidOptionError } from "../errors.js";
import type { SamplingOptions } from "../sampling/index.js";
import { hubProgress } from "./hub-progress.js";
import { COMMON_MODEL_OPTIONS, intList, intOpt, numOpt, parse, required, threadsOpt } from "./args.js";
import { displayText } from "../text/display.js";
import { methodFlagHelp, methodFlagOptions, methodOptionsFromFlags } from "./method-flags.js";

export const GENERATE_USAGE = `Usage: spec-decode generate --model DIR|org/name[@rev][:variant] [--variant NAME] (--prompt TEXT | --prompt-ids 1,2,3 | --messages JSON)
  [--method ${["auto", ...METHOD_NAMES].join("|")}] [--draft DIR|org/name] [--draft-variant NAME] [--heads PATH|org/name]
  [method options, below]
  [--max-new-tokens N] [--temperature T] [--top-p P] [--top-k K] [--min-p P] [--repetition-penalty R] [--seed S]
  [--stop STRING]... [--device cpu|webgpu|cuda] [--threads N] [--json]

${methodFlagHelp()}`;

export async function generateCommand(argv: string[]): Promise<number> {
  const { values: v } = parse(
    argv,
    {
      ...COMMON_MODEL_OPTIONS,
      model: { type: "string" },
      variant: { type: "string" },
      draft: { type: "string" },
      "draft-variant": { type: "string" },
      heads: { type: "string" },
      method: { type: "string" },
      prompt: { type: "string" },
      "prompt-ids": { type: "string" },
      messages: { type: "string" },
      "max-new-tokens": { type: "string" },
      temperature: { type: "string" },
      "top-p": { type: "string" },
      "top-k": { type: "string" },
      "min-p": { type: "string" },
      "repetition-penalty": { type: "string" },
      seed: { type: "string" },
      stop: { type: "string", multiple: true },
      ...methodFlagOptions(),
    },
    GENERATE_USAGE,
  );
  if (v.help) {
    console.log(GENERATE_USAGE);
    return 0;
  }
  const model = required(v.model as string | undefined, "model", GENERATE_USAGE);
  const method = (v.method as string | undefined) ?? (v.draft ? "draft" : "baseline");
  if (method !== "auto" && !(METHOD_NAMES as readonly string[]).includes(method)) {
    throw new InvalidOptionError(`--method must be one of auto, ${METHOD_NAMES.join(", ")} (got "${method}").`);
  }
  let messages: ChatMessage[] | undefined;
  if (v.messages !== undefined) {
    try {
      messages = JSON.parse(v.messages as string) as ChatMessage[];
    } catch (err) {
      throw new InvalidOptionError(`--messages must be JSON like '[{"role":"user","content":"Hi"}]': ${(err as Error).message}`);
    }
    if (!Array.isArray(messages) || messages.some((m) => typeof m?.role !== "string" || typeof m?.content !== "string")) {
      throw new InvalidOptionError(`--messages must be a JSON array of {"role": string, "content": string}.`);
    }
  }
  const methodOptions: MethodOptions = methodOptionsFromFlags(v);
  const sampling: SamplingOptions = {
    temperature: numOpt(v.temperature, "temperature"),
    topP: numOpt(v["top-p"], "top-p"),
    topK: intOpt(v["top-k"], "top-k"),
    minP: numOpt(v["min-p"], "min-p"),
    repetitionPenalty: numOpt(v["repetition-penalty"], "repetition-penalty"),
    seed: intOpt(v.seed, "seed"),
  };
  const engine = new SpecEngine({ device: v.device as Device | undefined, threads: threadsOpt(v.threads), hub: hubProgress() });
  const json = Boolean(v.json);
  const req: GenerateRequest = {
    model,
    variant: v.variant as string | undefined,
    draft: v.draft as string | undefined,
    draftVariant: v["draft-variant"] as string | undefined,
    heads: v.heads as string | undefined,
    method: method as MethodName | "auto",
    prompt: v.prompt as string | undefined,
    promptIds: intList(v["prompt-ids"], "prompt-ids"),
    messages,
    maxNewTokens: intOpt(v["max-new-tokens"], "max-new-tokens", 1, OPTION_MAX.maxNewTokens),
    sampling: stripUndefined(sampling),
    stop: v.stop as string[] | undefined,
    methodOptions: stripUndefined(methodOptions),
    // On a terminal, control characters in the model's text are shown escaped (text/display.ts);
    // piped output stays byte-exact, and --json carries the token ids.
    onText: json ? undefined : (chunk) => process.stdout.write(process.stdout.isTTY ? displayText(chunk) : chunk),
  };
  try {
    const res = await engine.generate(req);
    if (json) {
      console.log(JSON.stringify({ text: res.text, tokens: res.tokens, finishReason: res.finishReason, method: res.method, methodReason: res.methodReason, stats: res.stats }));
    } else {
      process.stdout.write("\n");
      const s = res.stats;
      process.stderr.write(
        `[${res.method}] ${s.newTokens} tokens in ${s.decodeMs.toFixed(0)} ms (${s.tokensPerSecond.toFixed(1)} tok/s), ` +
          `${s.targetForwards} target forwards, mean accepted length ${s.meanAcceptedLength.toFixed(2)} (bonus included)` +
          (s.draftedTokens > 0 ? `, acceptance ${(s.acceptanceRate * 100).toFixed(1)}%` : "") +
          `\n`,
      );
    }
  } finally {
    await engine.dispose();
  }
  return 0;
}

export function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as T;
}
