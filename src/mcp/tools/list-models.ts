/** `list_models`: models found under the model roots, what is loaded, and the memory bound. */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { existsSync } from "node:fs";
import { z } from "zod";
import type { ToolContext } from "../context.js";
import { findModels } from "../models.js";
import { loadedModelSchema, memorySchema, runTool, textResult } from "../tool-kit.js";

export const name = "list_models";

export const inputSchema = {
  root: z.string().max(4096).optional().describe("Scan only this directory (inside a root)."),
};

/** One model found (src/mcp/models.ts FoundModel; loose: every field it has is sent). */
export const foundModelSchema = z.looseObject({
  name: z.string().describe("Pass as model."),
  dir: z.string(),
  status: z.enum(["ready", "needs-build", "invalid"]),
});

export const outputSchema = {
  roots: z.array(z.looseObject({ path: z.string() })),
  models: z.array(foundModelSchema),
  truncated: z.boolean().describe("Scan stopped early: pass root."),
  loaded: z.array(loadedModelSchema),
  memory: memorySchema,
};

export const config = {
  title: "List models",
  description:
    "List models in the model roots and HF cache (ready, or a checkpoint for build_model), what is loaded, and the memory " +
    "bound. Pass a listed name as model.",
  inputSchema,
  annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
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
