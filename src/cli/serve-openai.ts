/** `spec-decode serve --openai`: the OpenAI-compatible server (src/openai/server.ts) for one model. */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { METHOD_NAMES, type MethodName, type MethodOptions } from "../decoding/methods.js";
import { InvalidOptionError } from "../errors.js";
import type { Logger } from "../mcp/context.js";
import { ModelRoots, configuredModelRoots } from "../mcp/roots.js";
import type { ModelStoreOptions } from "../engine/model-store.js";
import { intOpt, numOpt, type Options } from "./args.js";
import { methodFlagOptions, methodOptionsFromFlags } from "./method-flags.js";

/** The method options `serve --openai` takes as flags (the server's defaults for every request). */
const SERVE_METHOD_OPTIONS = ["k", "controller", "exitLayer"] as const;

export const SERVE_OPENAI_OPTIONS: Options = {
  openai: { type: "boolean", default: false },
  model: { type: "string" },
  variant: { type: "string" },
  draft: { type: "string" },
  heads: { type: "string" },
  method: { type: "string" },
  ...methodFlagOptions(SERVE_METHOD_OPTIONS),
  "served-model-name": { type: "string" },
  "max-queue": { type: "string" },
  "max-tokens": { type: "string" },
  "max-body-bytes": { type: "string" },
};

/** A directory path as given, or a Hugging Face repo id found in the model roots / HF cache. */
function modelPath(arg: string, kind: string, roots: ModelRoots): string {
  if (existsSync(arg)) return resolve(arg);
  return roots.resolve(arg, kind, { directory: kind !== "heads" });
}

export async function serveOpenAI(
  v: Record<string, unknown>,
  common: { roots: ModelRoots; storeOptions: ModelStoreOptions; logger: Logger },
): Promise<number> {
  if (v.http) throw new InvalidOptionError("Give --http (MCP) or --openai (OpenAI-compatible API), not both; run two servers for both.");
  const modelArg = v.model as string | undefined;
  if (!modelArg) throw new InvalidOptionError("--openai needs --model DIR (a model directory, or a Hugging Face repo id in the HF cache).");
  const roots = common.roots ?? new ModelRoots(configuredModelRoots());
  const method = v.method as string | undefined;
  if (method !== undefined && method !== "auto" && !(METHOD_NAMES as readonly string[]).includes(method)) {
    throw new InvalidOptionError(`--method must be one of auto, ${METHOD_NAMES.join(", ")} (got "${method}").`);
  }
  if (method === "draft" && !v.draft) throw new InvalidOptionError('--method draft needs --draft DIR (a smaller model with the same tokenizer).');
  if (method === "medusa" && !v.heads) throw new InvalidOptionError("--method medusa needs --heads PATH.");
  const methodOptions: MethodOptions = methodOptionsFromFlags(v, SERVE_METHOD_OPTIONS);
  const { startOpenAIServer } = await import("../openai/server.js");
  const server = await startOpenAIServer({
    model: modelPath(modelArg, "model", roots),
    variant: v.variant as string | undefined,
    draft: v.draft ? modelPath(v.draft as string, "draft", roots) : undefined,
    heads: v.heads ? modelPath(v.heads as string, "heads", roots) : undefined,
    method: method as MethodName | "auto" | undefined,
    methodOptions,
    servedModelName: v["served-model-name"] as string | undefined,
    host: v.host as string | undefined,
    port: intOpt(v.port, "port", 0, 65535),
    token: v.token as string | undefined,
    allowedOrigins: v["allow-origin"] as string[] | undefined,
    allowedHosts: v["allowed-host"] as string[] | undefined,
    maxQueue: intOpt(v["max-queue"], "max-queue", 0, 10_000),
    maxTokens: intOpt(v["max-tokens"], "max-tokens", 1, 1_000_000),
    maxBodyBytes: numOpt(v["max-body-bytes"], "max-body-bytes") !== undefined ? intOpt(v["max-body-bytes"], "max-body-bytes", 1024, 1024 ** 3) : undefined,
    storeOptions: common.storeOptions,
    logger: common.logger,
  });
  // Tests and scripts read this line to find an ephemeral port.
  process.stderr.write(`spec-decode serve: listening on ${server.url} (model "${server.modelName}")\n`);
  await new Promise<void>((done) => {
    const stop = () => {
      server.close().finally(done);
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return 0;
}
