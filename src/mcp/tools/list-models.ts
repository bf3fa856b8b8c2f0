/** `list_models`: models found under the model roots, what is loaded, and the memory bound. */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { existsSync } from "node:fs";
import { z } from "zod";
import type { ToolContext } from "../context.js";
import { findModels } from "../models.js";
import { loadedModelSchema, memorySchema, runTool, textResult } from "../tool-kit.js";

export const name = "list_models";

export const inputSchema = {
  root: z.string().optional().describe("Only scan this directory (inside a model root). Default: every model root."),
};

export const foundModelSchema = z.object({
  dir: z.string(),
  name: z.string().describe("Path relative to its root, or the Hugging Face repo id; usable as `model`."),
  root: z.string(),
  status: z.enum(["ready", "needs-build", "invalid"]),
  layout: z.string().nullable(),
  architecture: z.string().nullable(),
  vocabSize: z.number().nullable(),
  maxContext: z.number().nullable(),
  modelFile: z.string().nullable(),
  bytes: z.number(),
  earlyExitLayers: z.array(z.number()),
  hasTokenizer: z.boolean(),
  hasSafetensors: z.boolean(),
  loaded: z.boolean(),
  error: z.string().nullable(),
  hub: z
    .object({
      repo: z.string(),
      commit: z.string(),
      refs: z.array(z.string()).describe("Branches/tags (refs/) pointing at this snapshot."),
      dir: z.string(),
      variants: z.array(z.string()).describe('ONNX variants present, e.g. ["fp32", "q4"] (pass as "org/name:q4").'),
      hasSafetensors: z.boolean(),
      needsBuild: z.boolean().describe("Safetensors only and not built yet: call pull_model to build it."),
      builtDir: z.string().nullable(),
      bytes: z.number().describe("Size on disk (snapshot + our build)."),
    })
    .nullable()
    .describe("For Hugging Face cache snapshots; null otherwise."),
});

export const outputSchema = {
  roots: z.array(z.object({ path: z.string(), exists: z.boolean() })),
  models: z.array(foundModelSchema),
  truncated: z.boolean().describe("The scan stopped early (too many directories); pass root to narrow it."),
  loaded: z.array(loadedModelSchema),
  memory: memorySchema,
};

export const config = {
  title: "List models",
  description:
    "List the model directories under the server's model roots (ONNX models ready to load, safetensors checkpoints that " +
    "build_model can convert), which models are loaded, and the memory bound. Use a listed `name` or `dir` as the model argument of the other tools.",
  inputSchema,
  outputSchema,
  annotations: { title: "List models", readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
};

export async function loadedState(ctx: ToolContext) {
  const u = await ctx.store.usage();
  return {
    loaded: u.models.map((m) => ({
      dir: m.dir,
      file: m.lm.info.file,
      device: m.device,
      threads: m.threads,
      bytes: m.bytes,
      loadedAt: new Date(m.loadedAt).toISOString(),
      lastUsed: new Date(m.lastUsed).toISOString(),
    })),
    memory: { usedBytes: u.usedBytes, maxBytes: u.maxBytes, models: u.models.length },
  };
}

export function register(server: McpServer, ctx: ToolContext) {
  return server.registerTool(name, config, (args) =>
    runTool(ctx, name, async () => {
      const { models, truncated } = await findModels(ctx.roots, ctx.store, { root: args.root });
      const state = await loadedState(ctx);
      const roots = ctx.roots.roots.map((p) => ({ path: p, exists: existsSync(p) }));
      const lines = models.map(
        (m) =>
          `- ${m.name} [${m.status}${m.loaded ? ", loaded" : ""}] ${m.architecture ?? ""}${m.earlyExitLayers.length ? ` early-exit ${m.earlyExitLayers.join(",")}` : ""}` +
          (m.hub
            ? ` (hub ${m.hub.refs.join(",") || m.hub.commit.slice(0, 10)}; variants ${m.hub.variants.join(",") || "none"}; ${(m.hub.bytes / 2 ** 20).toFixed(1)} MiB` +
              `${m.hub.needsBuild ? "; needs build: call pull_model" : m.hub.builtDir ? "; built" : ""})`
            : ""),
      );
      const text =
        `${models.length} model(s) under ${roots.map((r) => r.path).join(", ")}${truncated ? " (scan truncated)" : ""}` +
        (lines.length ? `\n${lines.join("\n")}` : "\nNone found: put model directories under a root, or start the server with --model-root DIR.") +
        `\n${state.loaded.length} loaded, ${(state.memory.usedBytes / 2 ** 20).toFixed(1)} MiB of ${(state.memory.maxBytes / 2 ** 30).toFixed(1)} GiB`;
      return textResult(text, { roots, models, truncated, ...state });
    }),
  );
}
