/**
 * What a decoding method is (one file per technique exports one, methods.ts lists them): its name,
 * summary, options (a zod shape), the extra models it loads and the proposer it makes.
 */
import type { CausalLM } from "../engine/causal-lm.js";
import type { LoadedModel, ModelStore } from "../engine/model-store.js";
import type { Message } from "../vocabulary.js";
import type { OptionsOf, OptionsShape } from "./options.js";
import type { Proposer } from "./proposer.js";

/** Models a method may need besides the target. */
export interface MethodResources {
  target: CausalLM;
  /** A draft model (separate model, or the target's early-exit graph). */
  draft?: CausalLM;
  /** Medusa heads (medusa-heads.ts) or an EAGLE head (eagle.ts). */
  heads?: unknown;
}

/** What a method may use to load its extra models. */
export interface LoadedResources extends Omit<MethodResources, "target"> {
  /** Models loaded through the store, locked together with the target during generation. */
  loaded?: LoadedModel[];
}

export interface ResourceRequest<O = Record<string, unknown>> {
  /** Load extra models with `pin: true` (and list them in `loaded`): the caller unpins them after the request. */
  store: ModelStore;
  target: LoadedModel;
  /** Draft model directory given by the user. */
  draft?: string;
  /** The draft's onnx-community variant (e.g. "q4"). */
  draftVariant?: string;
  /** Medusa heads directory/file given by the user. */
  heads?: string;
  options: O;
}

export interface MethodDefinition<S extends OptionsShape = OptionsShape, N extends string = string> {
  name: N;
  /** One line for help texts and model_info. */
  summary: Message;
  /**
   * The method's options, one optional zod field each; the description is the help text (MCP and
   * CLI). Validation, the MCP schemas and the CLI flags derive from it (options.ts).
   */
  options: S;
  /** Load the extra models this method needs (draft, heads); errors name the missing argument. */
  loadResources?(req: ResourceRequest<OptionsOf<S>>): Promise<LoadedResources>;
  /** Why the method cannot run with these resources, or undefined when it can. */
  unavailableReason(res: MethodResources): Message | undefined;
  /** Validate options (throw InvalidOptionError) and make a proposer for one generation. */
  create(res: MethodResources, options: OptionsOf<S>): Proposer;
}

/** Typed identity: keeps a definition's name and option shape for the registry's derived types. */
export function defineMethod<const N extends string, S extends OptionsShape>(def: MethodDefinition<S, N>): MethodDefinition<S, N> {
  return def;
}
