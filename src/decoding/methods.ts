/**
 * The registry of decoding methods: one entry per technique file. Adding a method = one file that
 * exports a MethodDefinition + one line in METHOD_LIST below.
 */
import type { CausalLM } from "../engine/causal-lm.js";
import type { LoadedModel, ModelStore } from "../engine/model-store.js";
import { InvalidOptionError } from "../errors.js";
import { createBaselineProposer } from "./baseline.js";
import { draftMethod } from "./draft-model.js";
import { earlyExitMethod } from "./early-exit.js";
import { promptLookupMethod } from "./prompt-lookup.js";
import { lookaheadMethod } from "./lookahead.js";
import { medusaMethod } from "./medusa.js";
import { eagleMethod } from "./eagle.js";
import type { Proposer } from "./proposer.js";

export const METHOD_NAMES = ["baseline", "draft", "early-exit", "prompt-lookup", "lookahead", "medusa", "eagle"] as const;
export type MethodName = (typeof METHOD_NAMES)[number];

/** Options for all methods in one bag; each method reads its own and ignores the rest. */
export interface MethodOptions {
  /** draft / early-exit: tokens per round, or "auto" for the default adaptive controller. */
  k?: number | "auto";
  /** draft / early-exit: how K is chosen when k = "auto" (or explicitly). */
  controller?: "fixed" | "heuristic" | "confidence" | "cost";
  /** confidence controller: stop drafting when the draft's top probability falls below this. */
  confidenceThreshold?: number;
  /** early-exit: number of target layers in the draft. */
  exitLayer?: number;
  /** early-exit: use the trained exit adapter (exit_adapter_{m}.onnx); default: when one exists. false = the untrained exit. */
  adapter?: boolean;
  /** prompt-lookup: longest / shortest n-gram to match, tokens to propose. */
  maxNgram?: number;
  minNgram?: number;
  numPredict?: number;
  /** lookahead: window W, n-gram size N, verification candidates G. */
  window?: number;
  ngram?: number;
  guesses?: number;
  /** medusa: candidate tree ("default" sparse tree or a JSON list of paths), acceptance mode. */
  tree?: string | number[][];
  acceptance?: "exact" | "typical";
  posteriorThreshold?: number;
  posteriorAlpha?: number;
  /** eagle: nodes verified per round (EAGLE-2's total_token), draft depth, children per expanded node. */
  treeTotal?: number;
  treeDepth?: number;
  treeTopK?: number;
}

/** Models a method may need besides the target. */
export interface MethodResources {
  target: CausalLM;
  /** A draft model (separate model, or the target's early-exit graph). */
  draft?: CausalLM;
  /** Medusa heads (medusa.ts) or an EAGLE head (eagle.ts). */
  heads?: unknown;
}

/** What a method may use to load its extra models. */
export interface LoadedResources extends Omit<MethodResources, "target"> {
  /** Models loaded through the store, locked together with the target during generation. */
  loaded?: LoadedModel[];
}

export interface ResourceRequest {
  /** Load extra models with `pin: true` (and list them in `loaded`): the caller unpins them after the request. */
  store: ModelStore;
  target: LoadedModel;
  /** Draft model directory given by the user. */
  draft?: string;
  /** The draft's onnx-community variant (e.g. "q4"). */
  draftVariant?: string;
  /** Medusa heads directory/file given by the user. */
  heads?: string;
  options: MethodOptions;
}

export interface MethodDefinition {
  name: MethodName;
  /** One line for help texts and model_info. */
  summary: string;
  /** Load the extra models this method needs (draft, heads); errors name the missing flag. */
  loadResources?(req: ResourceRequest): Promise<LoadedResources>;
  /** Why the method cannot run with these resources, or undefined when it can. */
  unavailableReason(res: MethodResources): string | undefined;
  /** Validate options (throw InvalidOptionError) and make a proposer for one generation. */
  create(res: MethodResources, options: MethodOptions): Proposer;
}

const baseline: MethodDefinition = {
  name: "baseline",
  summary: "Plain autoregressive decoding (one target forward per token); the reference every method must match.",
  unavailableReason: () => undefined,
  create: () => createBaselineProposer(),
};

const METHOD_LIST: MethodDefinition[] = [
  baseline,
  draftMethod,
  earlyExitMethod,
  promptLookupMethod,
  lookaheadMethod,
  medusaMethod,
  eagleMethod,
];

export function registeredMethods(): MethodDefinition[] {
  return [...METHOD_LIST];
}

export function getMethod(name: string): MethodDefinition {
  const m = METHOD_LIST.find((d) => d.name === name);
  if (!m) {
    throw new InvalidOptionError(
      `Unknown method "${name}". Available: ${METHOD_LIST.map((d) => d.name).join(", ")}.`,
    );
  }
  return m;
}
