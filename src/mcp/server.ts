/**
 * The MCP server: `createServer()` builds an McpServer with every tool registered over a shared
 * engine (model store + roots). Transports live in stdio.ts and http.ts; one server instance per
 * connection (HTTP sessions), all sharing one ModelStore so models load once and calls that use
 * the same model are serialized by the store's per-model locks.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { createRequire } from "node:module";
import { SpecEngine } from "../api.js";
import { ModelStore, type ModelStoreOptions } from "../engine/model-store.js";
import { makeExclusive, stderrLogger, type Logger, type ToolContext } from "./context.js";
import { ModelRoots, configuredModelRoots } from "./roots.js";
import { parseAllowedEndpoints } from "./endpoints.js";
import { withLeanToolList, withStrictArguments } from "./tool-kit.js";
import { TOOLS } from "./tools/index.js";

export const SERVER_NAME = "speculative-decoding";

export function packageVersion(): string {
  try {
    const require = createRequire(import.meta.url);
    return (require("../../package.json") as { version: string }).version;
  } catch {
    return "0.0.0";
  }
}

export interface CreateServerOptions {
  /** Shared model cache (default: a new one from `storeOptions`). */
  store?: ModelStore;
  storeOptions?: ModelStoreOptions;
  /** Model roots (default: --model-root / SPEC_DECODE_MODEL_ROOTS / the defaults). */
  roots?: ModelRoots | string[];
  logger?: Logger;
  /** `--allow-endpoint` URL prefixes: non-loopback servers measure_speedup may measure (see endpoints.ts). */
  allowEndpoints?: string[];
  /** Shared by all servers of one process (HTTP sessions); made when absent. */
  exclusive?: ToolContext["exclusive"];
}

const INSTRUCTIONS =
  "Speculative decoding for local ONNX language models. Start with list_models (or pull_model for a Hugging Face repo id, build_model for a safetensors checkpoint), " +
  "then model_info to see which methods a model supports. generate_speculative generates text (method auto picks one and says why); " +
  "measure_speedup compares methods with plain decoding; tune_draft_k finds the best K for a draft model or early-exit draft. " +
  "Greedy outputs of every method are identical to plain decoding.";

export function createServer(opts: CreateServerOptions = {}): McpServer {
  const store = opts.store ?? new ModelStore(opts.storeOptions);
  const roots = opts.roots instanceof ModelRoots ? opts.roots : new ModelRoots(opts.roots ?? configuredModelRoots());
  store.setRoots(roots.roots); // model files may link anywhere inside the roots, nowhere else
  const ctx: ToolContext = {
    engine: new SpecEngine({ store }),
    store,
    roots,
    logger: opts.logger ?? stderrLogger(),
    allowedEndpoints: parseAllowedEndpoints(opts.allowEndpoints),
    exclusive: opts.exclusive ?? makeExclusive(),
  };
  const server = new McpServer(
    { name: SERVER_NAME, title: "Speculative decoding", version: packageVersion() },
    // No `capabilities.tools` here: the SDK then installs its tools handlers at the first registerTool,
    // after withLeanToolList wrapped them (it declares the tools capability itself).
    { instructions: INSTRUCTIONS },
  );
  withLeanToolList(server); // tools/list without the SDK's $schema / default execution boilerplate
  const strict = withStrictArguments(server); // unknown arguments are errors that name the nearest valid one
  for (const tool of TOOLS) tool.register(strict, ctx);
  return server;
}
