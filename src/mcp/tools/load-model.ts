/** `load_model`: load (or reuse) a model on a device with a thread count, so later calls start fast. */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { maxThreads } from "../../engine/session.js";
import { DEVICES, type Device } from "../../engine/session.js";
import { resolveModelArg, variantsOfArgs } from "../hub-args.js";
import type { ToolContext } from "../context.js";
import { loadedModelSchema, memorySchema, modelArg, runTool, textResult, throwIfCancelled, variantSchema } from "../tool-kit.js";
import { loadedState } from "./list-models.js";

export const name = "load_model";

export const inputSchema = {
  model: modelArg,
  device: z.enum(DEVICES as [Device, ...Device[]]).optional().describe("Execution provider (default: the server's)."),
  threads: z.number().int().min(1).max(maxThreads()).optional().describe("Intra-op threads (default: onnxruntime's choice)."),
  variant: variantSchema,
};

export const outputSchema = {
  dir: z.string(),
  file: z.string(),
  device: z.string(),
  threads: z.number().nullable(),
  bytes: z.number(),
  alreadyLoaded: z.boolean(),
  loadMs: z.number(),
  loaded: z.array(loadedModelSchema),
  memory: memorySchema,
};

export const config = {
  title: "Load model",
  description:
    "Load a model with a device and thread count; later calls reuse it (least recently used unloaded beyond the memory bound).",
  inputSchema,
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
};

export function register(server: McpServer, ctx: ToolContext) {
  return server.registerTool(name, config, (args, extra) =>
    runTool(ctx, name, async () => {
      const dir = resolveModelArg(ctx.roots, args.model, "model", { directory: true });
      const before = new Set((await ctx.store.usage()).models.map((x) => x.key));
      const t0 = performance.now();
      const variant = variantsOfArgs(args).variant;
      const m = await ctx.store.load(dir, { device: args.device, threads: args.threads, variant, waitForRoom: true, signal: extra.signal });
      throwIfCancelled(extra);
      const loadMs = Math.round(performance.now() - t0);
      const state = await loadedState(ctx);
      const alreadyLoaded = before.has(m.key);
      const threads = (await ctx.store.usage()).models.find((x) => x.key === m.key)?.threads ?? null;
      ctx.logger.log("info", `loaded ${m.lm.info.file} on ${m.lm.info.device}`);
      return textResult(
        `${alreadyLoaded ? "Already loaded" : "Loaded"} ${m.lm.info.file} on ${m.lm.info.device}${threads ? ` with ${threads} threads` : ""} ` +
          `(${(m.bytes / 2 ** 20).toFixed(1)} MiB, ${loadMs} ms). ${state.memory.models} model(s) loaded.`,
        { dir: m.lm.info.dir, file: m.lm.info.file, device: m.lm.info.device, threads, bytes: m.bytes, alreadyLoaded, loadMs, ...state },
      );
    }),
  );
}
