/**
 * The CLI flags of the method options, derived from each method's zod shape (decoding/options.ts):
 * flag names (kebab-case of the key unless the option declares another), the usage line, the help
 * text (the schema's descriptions, grouped by method), and parsing + validation (the schema's).
 */
import { z } from "zod";
import { METHOD_OPTIONS_SHAPE, OPTION_KEYS, methodsOfOption, registeredMethods, type MethodOptions } from "../decoding/methods.js";
import { parseOptions } from "../decoding/options.js";
import { InvalidOptionError } from "../errors.js";
import { flagOf } from "../vocabulary.js";
import type { Options } from "./args.js";

type OptionKey = (typeof OPTION_KEYS)[number];

function schemaOf(key: OptionKey): z.ZodType {
  return (METHOD_OPTIONS_SHAPE as Record<string, z.ZodType>)[key]!;
}

/** parseArgs options for these method options (all strings; the schema checks the values). */
export function methodFlagOptions(keys: readonly OptionKey[] = OPTION_KEYS): Options {
  return Object.fromEntries(keys.map((k) => [flagOf(k), { type: "string" as const }]));
}

/** What follows a flag in the usage line: N, X, one|of|these, N|auto, NAME|JSON. */
export function flagPlaceholder(key: OptionKey): string {
  const js = z.toJSONSchema(schemaOf(key), { io: "input", unrepresentable: "any" }) as Record<string, any>;
  const one = (s: Record<string, any>): string =>
    Array.isArray(s.anyOf)
      ? (s.anyOf as Record<string, any>[]).map(one).join("|")
      : s.const !== undefined
        ? String(s.const)
        : Array.isArray(s.enum)
          ? (s.enum as unknown[]).join("|")
          : s.type === "integer"
            ? "N"
            : s.type === "number"
              ? "X"
              : s.type === "array"
                ? "JSON"
                : s.type === "boolean"
                  ? "true|false"
                  : "NAME";
  return one(js);
}

/** "[--k N|auto] [--controller fixed|heuristic|confidence|cost] ..." */
export function methodFlagUsage(keys: readonly OptionKey[] = OPTION_KEYS): string {
  return keys.map((k) => `[--${flagOf(k)} ${flagPlaceholder(k)}]`).join(" ");
}

/** The method options' help: per method, each flag with its description. */
export function methodFlagHelp(keys: readonly OptionKey[] = OPTION_KEYS): string {
  const lines: string[] = ["Method options:"];
  const done = new Set<string>();
  for (const def of registeredMethods()) {
    const own = Object.keys(def.options).filter((k) => keys.includes(k as OptionKey) && !done.has(k)) as OptionKey[];
    if (own.length === 0) continue;
    const users = methodsOfOption(own[0]!).join(", ");
    lines.push(`  ${users}:`);
    for (const k of own) {
      done.add(k);
      const flag = `--${flagOf(k)} ${flagPlaceholder(k)}`;
      lines.push(`    ${flag.padEnd(44)} ${schemaOf(k).description ?? ""}`);
    }
  }
  return lines.join("\n");
}

/** A flag's text as the value the schema takes: the string itself, else a number, else JSON. */
function coerce(key: OptionKey, raw: string): unknown {
  const schema = schemaOf(key);
  if (schema.safeParse(raw).success) return raw;
  const trimmed = raw.trim();
  if (trimmed === "true" || trimmed === "false") return trimmed === "true";
  if (trimmed !== "" && Number.isFinite(Number(trimmed))) return Number(trimmed);
  if (/^[[{]/.test(trimmed)) {
    try {
      return JSON.parse(trimmed) as unknown;
    } catch (err) {
      throw new InvalidOptionError(`--${flagOf(key)} must be JSON like [[0],[1],[0,0]] or a name: ${(err as Error).message}`);
    }
  }
  return raw;
}

/** The method options given as flags, checked by their schemas (errors name the flag when rendered for the CLI). */
export function methodOptionsFromFlags(v: Record<string, unknown>, keys: readonly OptionKey[] = OPTION_KEYS): MethodOptions {
  const raw: Record<string, unknown> = {};
  for (const k of keys) {
    const s = v[flagOf(k)];
    if (typeof s === "string") raw[k] = coerce(k, s);
  }
  const shape = Object.fromEntries(keys.map((k) => [k, schemaOf(k)])) as z.ZodRawShape;
  return parseOptions(shape, raw) as MethodOptions;
}
