/** `unload_model`: free a model (every file/device loaded from its directory). */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { resolveModelArg } from "../hub-args.js";
import type { ToolContext } from "../context.js";
import { loadedModelSchema, memorySchema, modelArg, runTool, textResult } from "../tool-kit.js";
import { loadedState } from "./list-models.js";

export const name = "unload_model";

export const inputSchema = {
  model: modelArg,
};

export const outputSchema = {
  dir: z.string(),
  unloaded: z.number().describe("Sessions freed."),
  loaded: z.array(loadedModelSchema),
  memory: memorySchema,
};

export const config = {
  title: "Unload model",
  description: "Unload a model and free its memory (waits for generations using it).",
  inputSchema,
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
};

export function register(server: McpServer, ctx: ToolContext) {
  return server.registerTool(name, config, (args) =>
    runTool(ctx, name, async () => {
      const dir = resolveModelArg(ctx.roots, args.model, "model", { directory: true });
      const unloaded = await ctx.store.unload(dir);
      const state = await loadedState(ctx);
      return textResult(
        unloaded > 0 ? `Unloaded ${unloaded} session(s) of ${dir}.` : `${dir} was not loaded; nothing to do.`,
        { dir, unloaded, ...state },
      );
    }),
  );
}
