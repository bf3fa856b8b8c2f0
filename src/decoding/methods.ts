/**
 * The registry of decoding methods: one entry per technique file. Adding a method = one file that
 * exports a MethodDefinition (made with defineMethod, its options a zod shape) + one line in
 * METHOD_LIST below. Method names, the MethodOptions type, the MCP schemas and the CLI flags of
 * the options all come from this list.
 */
import { InvalidOptionError } from "../errors.js";
import { baselineMethod } from "./baseline.js";
import { draftMethod } from "./draft-model.js";
import { earlyExitMethod } from "./early-exit.js";
import { promptLookupMethod } from "./prompt-lookup.js";
import { lookaheadMethod } from "./lookahead.js";
import { medusaMethod } from "./medusa.js";
import { eagleMethod } from "./eagle.js";
import type { MethodDefinition } from "./method-definition.js";
import { checkKnownOptions, type OptionsOf, type OptionsShape } from "./options.js";

export { defineMethod, type LoadedResources, type MethodDefinition, type MethodResources, type ResourceRequest } from "./method-definition.js";

const METHOD_LIST = [
  baselineMethod,
  draftMethod,
  earlyExitMethod,
  promptLookupMethod,
  lookaheadMethod,
  medusaMethod,
  eagleMethod,
] as const;

type Registered = (typeof METHOD_LIST)[number];
export type MethodName = Registered["name"];
export const METHOD_NAMES = METHOD_LIST.map((m) => m.name) as [MethodName, ...MethodName[]];

type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never;
type AllShapes = UnionToIntersection<Registered["options"]>;

/** Every method's options in one shape (keys shared by methods, like k, are one field). */
export const METHOD_OPTIONS_SHAPE = Object.assign({}, ...METHOD_LIST.map((m) => m.options)) as { [K in keyof AllShapes]: AllShapes[K] };

/** Options for all methods in one bag; each method reads its own and ignores the rest. */
export type MethodOptions = OptionsOf<typeof METHOD_OPTIONS_SHAPE>;

/** Option keys, and the methods that read each. */
export const OPTION_KEYS = Object.keys(METHOD_OPTIONS_SHAPE) as (keyof MethodOptions & string)[];
export function methodsOfOption(key: string): MethodName[] {
  return METHOD_LIST.filter((m) => key in m.options).map((m) => m.name);
}

export function registeredMethods(): MethodDefinition<OptionsShape, MethodName>[] {
  return [...METHOD_LIST] as MethodDefinition<OptionsShape, MethodName>[];
}

export function isMethodName(name: string): name is MethodName {
  return (METHOD_NAMES as readonly string[]).includes(name);
}

export function getMethod(name: string): MethodDefinition<OptionsShape, MethodName> {
  const m = METHOD_LIST.find((d) => d.name === name);
  if (!m) {
    throw new InvalidOptionError(
      `Unknown method "${name}". Available: ${METHOD_NAMES.join(", ")}.`,
    );
  }
  return m as MethodDefinition<OptionsShape, MethodName>;
}

/** Reject option keys no method declares (library callers; every surface checks its own first). */
export function checkMethodOptions(options: Record<string, unknown>): void {
  checkKnownOptions(options, OPTION_KEYS);
}
