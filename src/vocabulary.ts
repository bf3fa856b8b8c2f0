/**
 * One message, two surfaces. An error or a capability reason that names something the user passes
 * (a method option, a request argument, a build or training step) is written once as a function of
 * a Vocabulary; the CLI renders it with flags and commands (`--exit-layer M`, `spec-decode build
 * --early-exit 1`), the MCP server with tool arguments (`methodOptions.exitLayer`, `build_model
 * {earlyExit: [1]}`). The default rendering (an error's `message`, for library callers and logs)
 * names both.
 */

export interface Vocabulary {
  readonly surface: "library" | "cli" | "mcp" | "openai";
  /** A method option by its MethodOptions key (exitLayer, k, window...). */
  option(key: string): string;
  /** A request argument by its library name (draft, heads, method, promptIds, model...). */
  arg(name: string): string;
  /** How to pass method `name` (generate's method argument set to it). */
  method(name: string): string;
  /** The step that builds early-exit drafts of `layers` layers for the checkpoint in `dir`. */
  buildEarlyExit(dir: string, layers: number | string): string;
  /** The step that converts the checkpoint in `dir` to ONNX. */
  build(dir: string): string;
  /** The step that rebuilds the ONNX export in `dir` from its own weights with our interface. */
  rebuildFromOnnx(dir: string): string;
  /** The step that trains Medusa heads, an EAGLE head, or the exit adapter on layer `layer`, for the model in `dir`. */
  train(kind: "medusa" | "eagle" | "early-exit", dir: string, layer?: number | string): string;
}

/** A message in every vocabulary: plain text, or text that names options/arguments/steps through one. */
export type Message = string | ((v: Vocabulary) => string);

export function renderMessage(m: Message, v: Vocabulary): string {
  return typeof m === "string" ? m : m(v);
}

// ---------------------------------------------------------------------------------------------
// CLI flags

/** Flags whose name is not the kebab-case of the option key (declared by the option's owner). */
const FLAG_OVERRIDES = new Map<string, string>();

/** Declare that option `key` is spelled `--flag` on the command line (e.g. treeTopK -> tree-topk). */
export function declareFlag(key: string, flag: string): void {
  FLAG_OVERRIDES.set(key, flag);
}

/** The flag of an option or argument key, without dashes: exitLayer -> exit-layer. */
export function flagOf(key: string): string {
  return FLAG_OVERRIDES.get(key) ?? key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** Placeholders shown after a flag in messages. */
const ARG_PLACEHOLDER: Record<string, string> = {
  model: "DIR",
  draft: "DIR",
  heads: "DIR",
  promptIds: "1,2,3",
  variant: "NAME",
  draftVariant: "NAME",
  method: "NAME",
};

/** Request arguments whose CLI flag differs from the kebab-case of their library name. */
const ARG_FLAG: Record<string, string> = { promptIds: "prompt-ids", messages: "messages", prompt: "prompt" };

export const CLI_VOCABULARY: Vocabulary = {
  surface: "cli",
  option: (key) => `--${flagOf(key)}`,
  arg: (name) => `--${ARG_FLAG[name] ?? flagOf(name)}${ARG_PLACEHOLDER[name] ? ` ${ARG_PLACEHOLDER[name]}` : ""}`,
  method: (name) => `--method ${name}`,
  buildEarlyExit: (dir, layers) => `\`spec-decode build --model ${dir} --early-exit ${layers}\``,
  build: (dir) => `\`spec-decode build --model ${dir}\``,
  rebuildFromOnnx: (dir) => `\`spec-decode build --from-onnx ${dir}\``,
  train: (kind, dir, layer = "M") =>
    kind === "medusa"
      ? `\`spec-decode train-medusa --model ${dir}\``
      : kind === "eagle"
        ? `\`spec-decode train-eagle --model ${dir} --self-distill 200\``
        : `\`spec-decode train-early-exit --model ${dir} --exit-layer ${layer} --self-distill 200\``,
};

/**
 * The MCP rendering. `topLevel` maps option keys the tool takes as top-level arguments to their
 * names there (generate_speculative: k; tune_draft_k: exitLayer, confidenceThreshold, ks); every
 * other option is `methodOptions.<key>`.
 */
export function mcpVocabulary(topLevel: Record<string, string> = { k: "k" }): Vocabulary {
  return {
    surface: "mcp",
    option: (key) => topLevel[key] ?? `methodOptions.${key}`,
    arg: (name) => name,
    method: (name) => `method: "${name}"`,
    buildEarlyExit: (dir, layers) => `build_model {model: ${JSON.stringify(dir)}, earlyExit: [${layers}]}`,
    build: (dir) => `build_model {model: ${JSON.stringify(dir)}}`,
    rebuildFromOnnx: (dir) => `build_model {model: ${JSON.stringify(dir)}, fromOnnx: true}`,
    train: (kind, dir, layer = "M") =>
      kind === "medusa"
        ? `\`spec-decode train-medusa --model ${dir}\` (a CLI step; there is no MCP tool for training)`
        : kind === "eagle"
          ? `\`spec-decode train-eagle --model ${dir} --self-distill 200\` (a CLI step; there is no MCP tool for training)`
          : `\`spec-decode train-early-exit --model ${dir}\` for exit layer ${layer} (a CLI step; there is no MCP tool for training)`,
  };
}

export const MCP_VOCABULARY: Vocabulary = mcpVocabulary();

/** exitLayer -> exit_layer (the OpenAI-compatible server's `speculation` fields). */
export function snakeOf(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** The OpenAI-compatible server: options are `speculation.<snake_case>` fields; models and heads are server flags. */
export const OPENAI_VOCABULARY: Vocabulary = {
  ...CLI_VOCABULARY,
  surface: "openai",
  option: (key) => `speculation.${snakeOf(key)}`,
  method: (name) => `speculation.method "${name}"`,
};

/** The default rendering: library names with the CLI flag beside them, CLI commands for steps. */
export const LIBRARY_VOCABULARY: Vocabulary = {
  ...CLI_VOCABULARY,
  surface: "library",
  option: (key) => `${key} (--${flagOf(key)})`,
  arg: (name) => `${CLI_VOCABULARY.arg(name)} (library/MCP: ${name})`,
  method: (name) => `--method ${name}`,
};
