/**
 * Method options as zod schemas. Each method declares its options once (methods.ts
 * MethodDefinition.options: one optional zod field per option, its description the help text);
 * from that shape come the MethodOptions type, the MCP argument schemas (src/mcp/tool-kit.ts), the
 * CLI flags and their help (src/cli/method-flags.ts) and the validation below, whose errors name
 * the option in the caller's vocabulary (src/vocabulary.ts).
 */
import { z } from "zod";
import { InvalidOptionError } from "../errors.js";
import { nearestName } from "../util/nearest-name.js";
import { declareFlag, type Vocabulary } from "../vocabulary.js";

export type OptionsShape = z.ZodRawShape;
/** The parsed options of a shape (every field optional). */
export type OptionsOf<S extends OptionsShape> = z.infer<z.ZodObject<S>>;

/** Declare an option whose CLI flag is not the kebab-case of its key (e.g. treeTopK -> --tree-topk). */
export function withFlag<T extends z.ZodType>(key: string, flag: string, schema: T): T {
  declareFlag(key, flag);
  return schema;
}

/** What a value of `schema` must be, in words: "an integer in 1..64", "one of exact, typical". */
export function expectation(schema: z.ZodType): string {
  const js = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
  return describeJson(js);
}

function describeJson(js: Record<string, any>): string {
  if (Array.isArray(js.anyOf)) return (js.anyOf as Record<string, any>[]).map(describeJson).join(", or ");
  if (js.const !== undefined) return JSON.stringify(js.const);
  if (Array.isArray(js.enum)) return `one of ${(js.enum as unknown[]).join(", ")}`;
  const lo = js.minimum ?? js.exclusiveMinimum;
  const hi = js.maximum ?? js.exclusiveMaximum;
  if (js.type === "integer") {
    const big = (x: number) => Math.abs(x) >= Number.MAX_SAFE_INTEGER;
    if (lo !== undefined && hi !== undefined && !big(hi)) return `an integer in ${lo}..${hi}`;
    return lo !== undefined ? `an integer >= ${lo}` : "an integer";
  }
  if (js.type === "number") {
    if (lo !== undefined && hi !== undefined) return `a number in ${js.exclusiveMinimum !== undefined ? "(" : "["}${lo}, ${hi}${js.exclusiveMaximum !== undefined ? ")" : "]"}`;
    return lo !== undefined ? `a number >= ${lo}` : "a number";
  }
  if (js.type === "string") return js.maxLength !== undefined ? `a string of at most ${js.maxLength} characters` : "a string";
  if (js.type === "array") return `a list${js.maxItems !== undefined ? ` of at most ${js.maxItems} items` : ""}${js.items ? ` of ${describeJson(js.items)}` : ""}`;
  if (js.type === "boolean") return "true or false";
  return "a valid value";
}

function shown(v: unknown): string {
  const s = typeof v === "string" ? JSON.stringify(v) : (JSON.stringify(v) ?? String(v));
  return s.length > 80 ? `${s.slice(0, 80)}...` : s;
}

/**
 * Parse `options` with a method's shape: unknown keys are left to the caller (the options bag holds
 * every method's options; each surface rejects keys no method knows), known keys are checked and an
 * invalid one is an InvalidOptionError that names it (`--window` / `methodOptions.window`) and
 * what it must be.
 */
export function parseOptions<S extends OptionsShape>(shape: S, bag: object): OptionsOf<S> {
  const options = bag as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(shape) as [string, z.ZodType][]) {
    const value = options[key];
    if (value === undefined) continue;
    const r = schema.safeParse(value);
    if (!r.success) {
      throw new InvalidOptionError((v: Vocabulary) => `${v.option(key)} must be ${expectation(schema)} (got ${shown(value)}).`);
    }
    out[key] = r.data;
  }
  return out as OptionsOf<S>;
}

/** Reject keys that no method declares, naming the nearest one (library callers; the surfaces check first). */
export function checkKnownOptions(bag: object, known: readonly string[]): void {
  const options = bag as Record<string, unknown>;
  const unknown = Object.keys(options).filter((k) => !known.includes(k) && options[k] !== undefined);
  if (unknown.length === 0) return;
  throw new InvalidOptionError((v: Vocabulary) =>
    unknown
      .map((k) => {
        const near = nearestName(k, known);
        return `unknown method option ${v.option(k)}${near ? ` — did you mean ${v.option(near)}?` : `; valid: ${known.map((n) => v.option(n)).join(", ")}`}`;
      })
      .join("; "),
  );
}
