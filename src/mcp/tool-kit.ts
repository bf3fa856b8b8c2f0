/**
 * Shared pieces of the MCP tools: zod schemas used by several tools, result/error helpers,
 * progress notifications, and the wrapper every tool handler goes through (errors become
 * `isError` results whose text says how to fix the call; the server stays up).
 */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import { ListToolsRequestSchema, type CallToolResult, type ListToolsResult, type ServerNotification, type ServerRequest } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { MESSAGES_MAX, PROMPT_IDS_MAX, PROMPT_MAX_BYTES } from "../decoding/limits.js";
import { METHOD_NAMES, METHOD_OPTIONS_SHAPE, OPTION_KEYS, methodsOfOption } from "../decoding/methods.js";
import { CancelledError, SpecDecodeError, errorMessage } from "../errors.js";
import { nearestName } from "../util/nearest-name.js";
import { MCP_VOCABULARY, type Vocabulary } from "../vocabulary.js";
import type { ToolContext } from "./context.js";
import { displayText } from "../text/display.js";

export { nearestName };

export type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

// ---------------------------------------------------------------------------------------------
// Unknown arguments

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

/**
 * tools/list without the SDK's boilerplate: each schema's `$schema` URL and `execution:
 * {taskSupport: "forbidden"}` (the protocol's default) go; nothing a client validates against
 * changes. Wraps the handler the SDK installs (through the public setRequestHandler), so call it
 * before the first tool is registered. tools/list is in every conversation: see
 * test/mcp/tool-schemas.test.ts for its size bound.
 */
export function withLeanToolList(server: McpServer): void {
  const inner = server.server;
  const set = inner.setRequestHandler.bind(inner) as (schema: unknown, handler: (...a: unknown[]) => unknown) => void;
  (inner as { setRequestHandler: unknown }).setRequestHandler = (schema: unknown, handler: (...a: unknown[]) => unknown) =>
    set(schema, schema !== ListToolsRequestSchema ? handler : async (...a: unknown[]) => leanTools((await handler(...a)) as ListToolsResult));
}

function leanTools(list: ListToolsResult): ListToolsResult {
  return {
    ...list,
    tools: list.tools.map((t) => {
      const { execution, inputSchema, outputSchema, ...rest } = t;
      const strip = <S extends object>(s: S): S => {
        const { $schema: _s, ...r } = s as S & { $schema?: unknown };
        return r as S;
      };
      return {
        ...rest,
        inputSchema: strip(inputSchema),
        ...(outputSchema ? { outputSchema: strip(outputSchema) } : {}),
        ...(execution && execution.taskSupport !== "forbidden" ? { execution } : {}),
      };
    }),
  };
}

// ---------------------------------------------------------------------------------------------
// Schemas

/**
 * A schema that tools/list shows as `shown` (a plain object) and that checks values with `checked`
 * (strict, every field typed and bounded): for nested objects whose full schema is already listed
 * by another argument or tool, so that tools/list stays small (test/mcp/tool-schemas.test.ts).
 */
export function listedAs<C extends z.ZodType<unknown, Record<string, unknown>>>(checked: C, description: string) {
  return z.record(z.string(), z.unknown()).pipe(checked).describe(description);
}

export const methodSchema = z
  .enum(["auto", ...METHOD_NAMES])
  .describe("auto: draft with draft, eagle/medusa with heads, early-exit with methodOptions.exitLayer, else prompt-lookup.");

/**
 * A string listed as a plain string and checked by `checked` (length bounds a model never comes
 * near, patterns): enforced like any bound, left out of tools/list to keep it small.
 */
export function boundedString(checked: z.ZodType<string, string>) {
  return z.string().pipe(checked);
}

/** A path or repo id argument (model, draft, heads). */
export const pathArg = () => boundedString(z.string().min(1, "must not be empty").max(4096));

export const modelArg = pathArg()
  .describe("Model dir or HF repo id org/name[@rev][:variant].");

export const kSchema = METHOD_OPTIONS_SHAPE.k.unwrap().describe('draft/early-exit: tokens per round, or "auto" (default).');

export const chatMessageSchema = strictArgs(
  { role: z.string().min(1).max(64).describe("user, assistant, system..."), content: boundedString(z.string().max(PROMPT_MAX_BYTES)).describe("Text.") },
  "messages[]",
);

export const samplingSchema = strictArgs(
  {
    temperature: z.number().min(0).optional().describe("0 (default) = greedy."),
    topK: z.number().int().min(0).max(1e9).optional().describe("0 = off."),
    topP: z.number().gt(0).max(1).optional().describe("1 = off."),
    minP: z.number().min(0).lt(1).optional().describe("0 = off."),
    repetitionPenalty: z.number().gt(0).optional().describe("1 = off."),
  },
  "sampling",
).describe("Greedy when omitted; seed is separate.");

/**
 * Every method's options but k (a top-level argument), from the methods' own schemas
 * (decoding/methods.ts): each described as "<methods that read it>: <the option's help>".
 */
export const methodOptionsShape = Object.fromEntries(
  OPTION_KEYS.filter((key) => key !== "k").map((key) => {
    const schema = (METHOD_OPTIONS_SHAPE as Record<string, z.ZodType>)[key]!;
    return [key, schema.describe(`${methodsOfOption(key).join("/")}: ${schema.description ?? ""}`)];
  }),
) as Omit<typeof METHOD_OPTIONS_SHAPE, "k">;

/**
 * methodOptions in one line per method, derived from the schemas: "name range (default)". The
 * full per-field schema would be ~2.4k characters of tools/list; the fields are checked by it
 * all the same (strict, with the nearest name for a typo and the range in the error).
 */
export function methodOptionsSummary(): string {
  const groups = new Map<string, string[]>();
  for (const [key, schema] of Object.entries(methodOptionsShape) as [string, z.ZodType][]) {
    const users = methodsOfOption(key).join("/");
    const js = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as Record<string, any>;
    const range = (j: Record<string, any>): string =>
      Array.isArray(j.anyOf)
        ? (j.anyOf as Record<string, any>[]).map(range).join("|")
        : Array.isArray(j.enum)
          ? (j.enum as unknown[]).join("|")
          : j.type === "integer" || j.type === "number"
            ? `${j.minimum ?? j.exclusiveMinimum ?? ""}-${j.maximum ?? j.exclusiveMaximum ?? ""}`
            : j.type === "array"
              ? "paths"
              : j.type === "boolean" ? "true|false" : "name";
    const def = /\(default ([^)]*)\)/.exec(schema.description ?? "")?.[1];
    groups.set(users, [...(groups.get(users) ?? []), `${key} ${range(js)}${def ? ` (${def})` : ""}`]);
  }
  return [...groups].map(([users, fields]) => `${users}: ${fields.join(", ")}`).join("; ") + ".";
}

export const methodOptionsSchema = strictArgs(methodOptionsShape, "methodOptions");

/** generate_speculative's methodOptions as tools/list shows it (see methodOptionsSummary). */
export const methodOptionsArg = listedAs(methodOptionsSchema, `Per method, range (default): ${methodOptionsSummary()}`);

/** `detail`: replies carry the numbers a model acts on; "full" adds token ids and per-prompt/per-position rows. */
export const detailSchema = z
  .enum(["summary", "full"])
  .default("summary")
  .describe('"full" adds token ids, per-prompt rows.');

export const memorySchema = z.looseObject({ usedBytes: z.number(), maxBytes: z.number(), models: z.number() });

export const loadedModelSchema = z.looseObject({ dir: z.string(), file: z.string(), device: z.string() });

export const ratioSchema = z.object({
  mean: z.number(),
  low: z.number().nullable(),
  high: z.number().nullable(),
  n: z.number(),
});

/** A token id (bounded: ids index an embedding). */
export const tokenId = z.number().int().min(0).max(2 ** 31 - 1);

/** A sampler seed. */
export const seedSchema = z.number().int().min(0).max(2 ** 32 - 1).optional().describe("Sampler seed.");

export const benchPromptSchema = z.union([
  boundedString(z.string().min(1).max(PROMPT_MAX_BYTES)),
  listedAs(
    strictArgs(
      {
        id: z.string().max(256).optional(),
        category: z.string().max(256).optional(),
        prompt: z.string().max(PROMPT_MAX_BYTES).optional(),
        messages: z.array(chatMessageSchema).min(1).max(MESSAGES_MAX).optional(),
        promptIds: z.array(tokenId).min(1).max(PROMPT_IDS_MAX).optional(),
      },
      "prompts[]",
    ),
    "{id?, category?, prompt | messages | promptIds}",
  ),
]);

/** Prompts of the benchmark tools. */
export const benchPromptsArg = z.array(benchPromptSchema).min(1).max(64).optional().describe("Default: workload.");

// ---------------------------------------------------------------------------------------------
// Results

/** The reply: `text` shown with control characters escaped (model output can hold any); `structured` as is. */
export function textResult(text: string, structured: Record<string, unknown>): CallToolResult {
  return { content: [{ type: "text", text: displayText(text) }], structuredContent: structured };
}

/** An isError result; library errors speak the tool's vocabulary (argument names, not CLI flags). */
export function errorResult(err: unknown, vocabulary: Vocabulary = MCP_VOCABULARY): CallToolResult {
  let text: string;
  if (err instanceof SpecDecodeError) text = `Error (${err.code}): ${err.render(vocabulary)}`;
  else text = `Error: ${errorMessage(err)}. This looks like a bug in spec-decode; the server is still running.`;
  return { content: [{ type: "text", text: displayText(text) }], isError: true };
}

/** Run a tool body; any thrown error becomes an isError result (and is logged to stderr). */
export async function runTool(
  ctx: ToolContext,
  name: string,
  fn: () => Promise<CallToolResult>,
  vocabulary: Vocabulary = MCP_VOCABULARY,
): Promise<CallToolResult> {
  const t0 = performance.now();
  try {
    const res = await fn();
    ctx.logger.log("debug", `${name} done in ${(performance.now() - t0).toFixed(0)} ms`);
    return res;
  } catch (err) {
    const level = err instanceof SpecDecodeError ? "info" : "error";
    ctx.logger.log(level, `${name} failed: ${errorMessage(err)}`);
    if (level === "error" && err instanceof Error && err.stack) ctx.logger.log("debug", err.stack);
    return errorResult(err, vocabulary);
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
  .pipe(z.string().max(256).regex(/^(?!\.)[A-Za-z0-9._-]+$/, "a file name such as model_fp16.onnx, or a short name such as fp16 or q4 (no paths)"))
  .optional()
  .describe("ONNX variant: q4, fp16, a file name.");

/** The draft model's variant (tools that take a draft): the same names and checks as variantSchema. */
export const draftVariantSchema = variantSchema.describe("The draft's variant.");
