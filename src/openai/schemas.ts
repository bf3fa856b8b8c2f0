/**
 * Request schemas of the OpenAI-compatible server (zod), and the translation of zod's issues into
 * OpenAI-style 400 errors. Objects are strict: a field we do not know is an error naming the
 * nearest valid field, never silently dropped. OpenAI fields that we accept but that change
 * nothing here are listed in IGNORED_FIELDS (and in the README); fields whose non-default values
 * we cannot honour accept only their default.
 */
import { z } from "zod";
import { METHOD_NAMES, METHOD_OPTIONS_SHAPE, OPTION_KEYS } from "../decoding/methods.js";
import { snakeOf } from "../vocabulary.js";

/** Longest stop list and stop string, messages per request: every size a client controls is bounded. */
export const MAX_STOP = 16;
export const MAX_STOP_CHARS = 256;
export const MAX_MESSAGES = 512;

/**
 * OpenAI request fields accepted and ignored (documented): they describe the caller or the
 * account, not the generation.
 */
export const IGNORED_FIELDS = ["user", "metadata", "store", "service_tier", "parallel_tool_calls", "prediction"] as const;

const ignored = {
  user: z.string().max(256).optional(),
  metadata: z.record(z.string(), z.string()).optional(),
  store: z.boolean().optional(),
  service_tier: z.string().max(64).optional(),
  parallel_tool_calls: z.boolean().optional(),
  prediction: z.unknown().optional(),
};

/** Our speculation overrides (an extra body field; with the openai client: `extra_body` / a cast). */
export const speculationSchema = z
  .object({
    method: z.enum(["auto", ...METHOD_NAMES]).optional(),
    // Every method option, snake_case, with the methods' own schemas (decoding/methods.ts).
    ...(Object.fromEntries(OPTION_KEYS.map((key) => [snakeOf(key), (METHOD_OPTIONS_SHAPE as Record<string, z.ZodType>)[key]!])) as Record<
      string,
      z.ZodType
    >),
  })
  .strict();

const stopSchema = z.union([
  z.string().min(1).max(MAX_STOP_CHARS),
  z.array(z.string().min(1).max(MAX_STOP_CHARS)).max(MAX_STOP),
]);

/** Fields common to /v1/completions and /v1/chat/completions. */
const common = {
  model: z.string().min(1).max(256),
  temperature: z.number().min(0).max(2).optional(),
  top_p: z.number().gt(0).max(1).optional(),
  seed: z.number().int().min(0).max(2 ** 32 - 1).optional(),
  stop: stopSchema.nullable().optional(),
  n: z.literal(1, { error: "n must be 1: this server returns one choice per request (send n requests instead)." }).nullable().optional(),
  stream: z.boolean().nullable().optional(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).strict().nullable().optional(),
  max_tokens: z.number().int().min(1).nullable().optional(),
  presence_penalty: z.literal(0, { error: "presence_penalty is not supported (only 0); use repetition_penalty." }).nullable().optional(),
  frequency_penalty: z.literal(0, { error: "frequency_penalty is not supported (only 0); use repetition_penalty." }).nullable().optional(),
  logit_bias: z
    .record(z.string(), z.number())
    .refine((o) => Object.keys(o).length === 0, "logit_bias is not supported (only an empty object).")
    .nullable()
    .optional(),
  // Extensions (vLLM uses the same names for the first four).
  top_k: z.number().int().min(0).optional(),
  min_p: z.number().min(0).lt(1).optional(),
  repetition_penalty: z.number().gt(0).max(10).optional(),
  return_token_ids: z.boolean().optional(),
  speculation: speculationSchema.optional(),
  ...ignored,
};

const textPart = z.object({ type: z.literal("text"), text: z.string() }).strict();

export const chatMessageSchema = z
  .object({
    role: z.enum(["system", "developer", "user", "assistant"], {
      error: 'role must be "system", "developer", "user" or "assistant" (tool calls are not supported).',
    }),
    content: z.union([z.string(), z.array(textPart).max(256)], {
      error: 'content must be a string or a list of {"type": "text", "text": ...} parts (images and audio are not supported).',
    }),
    name: z.string().max(64).optional(),
  })
  .strict();

export const chatRequestSchema = z
  .object({
    ...common,
    messages: z.array(chatMessageSchema).min(1).max(MAX_MESSAGES),
    max_completion_tokens: z.number().int().min(1).nullable().optional(),
    logprobs: z.literal(false, { error: "logprobs is not supported (only false)." }).nullable().optional(),
    top_logprobs: z.null({ error: "top_logprobs is not supported." }).optional(),
    response_format: z.object({ type: z.literal("text", { error: 'response_format: only {"type": "text"} is supported.' }) }).strict().nullable().optional(),
    tools: z.array(z.unknown()).max(0, "tools are not supported by this server.").nullable().optional(),
    tool_choice: z.literal("none", { error: 'tool_choice: only "none" is supported (no tools).' }).nullable().optional(),
  })
  .strict();

export const completionRequestSchema = z
  .object({
    ...common,
    prompt: z.union(
      [
        z.string(),
        z.array(z.string()).length(1, "prompt: give one prompt per request (a list of several is a batch, not supported)."),
        z.array(z.number().int().min(0)).min(1),
        z.array(z.array(z.number().int().min(0)).min(1)).length(1, "prompt: give one token list per request (batches are not supported)."),
      ],
      { error: "prompt must be a string, a list with one string, a list of token ids, or a list with one list of token ids." },
    ),
    echo: z.literal(false, { error: "echo is not supported (only false)." }).nullable().optional(),
    best_of: z.literal(1, { error: "best_of must be 1." }).nullable().optional(),
    logprobs: z.null({ error: "logprobs is not supported." }).optional(),
    suffix: z.null({ error: "suffix is not supported." }).optional(),
  })
  .strict();

export type ChatRequest = z.infer<typeof chatRequestSchema>;
export type CompletionRequest = z.infer<typeof completionRequestSchema>;
export type Speculation = z.infer<typeof speculationSchema>;

/** An error in OpenAI's shape: {error: {message, type, param, code}} with an HTTP status. */
export class OpenAIError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = "invalid_request_error",
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** Edit distance (a dozen lines; not worth a dependency). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

export function nearest(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(name.length / 2)) ? best : undefined;
}

/** The keys a strict object schema at `path` accepts (to name the nearest one). */
function keysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let s: z.ZodType | undefined = schema;
  for (const p of path) {
    s = unwrap(s);
    if (s instanceof z.ZodObject) s = (s.shape as Record<string, z.ZodType>)[String(p)];
    else if (s instanceof z.ZodArray) s = s.element as z.ZodType;
    else if (s instanceof z.ZodUnion) s = (s.options as z.ZodType[]).map(unwrap).find((o) => o instanceof z.ZodArray || o instanceof z.ZodObject);
    else return [];
    if (!s) return [];
  }
  s = unwrap(s);
  if (s instanceof z.ZodUnion) s = (s.options as z.ZodType[]).map(unwrap).find((o) => o instanceof z.ZodObject);
  return s instanceof z.ZodObject ? Object.keys(s.shape as object) : [];
}

function unwrap(s: z.ZodType): z.ZodType {
  let cur: z.ZodType = s;
  while (cur instanceof z.ZodOptional || cur instanceof z.ZodNullable || cur instanceof z.ZodDefault) cur = cur.unwrap() as z.ZodType;
  return cur;
}

function paramOf(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join("");
}

/** Parse a request body, or throw an OpenAIError 400 that names the field and the fix. */
export function parseRequest<T extends z.ZodType>(schema: T, body: unknown, what: string): z.infer<T> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new OpenAIError(400, `The request body must be a JSON object (the ${what} request).`);
  }
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0]!;
    const valid = keysAt(schema, issue.path);
    const near = nearest(key, valid);
    const where = issue.path.length ? ` in ${paramOf(issue.path)}` : "";
    throw new OpenAIError(
      400,
      `Unrecognized request argument supplied${where}: ${key}.` + (near ? ` Did you mean "${near}"?` : "") + ` Valid fields: ${valid.join(", ")}.`,
      "invalid_request_error",
      paramOf([...issue.path, key]),
      "unknown_parameter",
    );
  }
  const param = paramOf(issue.path);
  const missing = issue.code === "invalid_type" && (body as Record<string, unknown>)[String(issue.path[0])] === undefined && issue.path.length === 1;
  const message = missing ? `Missing required parameter: '${param}'.` : `Invalid value for '${param || "body"}': ${issue.message}`;
  throw new OpenAIError(400, message, "invalid_request_error", param || null, missing ? "missing_required_parameter" : "invalid_value");
}
