/** `build_model`: convert a safetensors checkpoint to ONNX with our interface, plus early-exit drafts. */
import { InvalidOptionError } from "../../errors.js";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { statSync } from "node:fs";
import { z } from "zod";
import { buildModelDir, quantizeFromArgs } from "../../builder/index.js";
import { buildFromOnnx } from "../../builder/from-onnx.js";
import type { ToolContext } from "../context.js";
import { modelArg, progressSender, runTool, textResult, throwIfCancelled } from "../tool-kit.js";

export const name = "build_model";

export const inputSchema = {
  model: modelArg.describe("Dir with config.json + safetensors."),
  earlyExit: z.array(z.number().int().min(1).max(4096)).max(16).optional().describe("Early-exit draft layer counts to build too."),
  ioDtype: z.enum(["float32", "float16"]).optional().describe("KV cache / logits dtype (default float32)."),
  treeMask: z.boolean().optional().describe("Add tree_attention_mask (default true; lookahead trees, Medusa, EAGLE)."),
  hiddenStates: z.boolean().optional().describe("Add hidden_states (default true; Medusa)."),
  layout: z.enum(["onnx-community", "optimum", "genai"]).optional().describe("File layout (default onnx-community)."),
  quantize: z
    .enum(["int4", "int8", "uint8", "bnb4"])
    .optional()
    .describe('Quantize linear layers (then variant "q4", "int8", "uint8", "bnb4").'),
  blockSize: z.literal([32, 64, 128]).optional().describe("Values per quantization block (default 32)."),
  accuracyLevel: z
    .literal([0, 1, 2, 4])
    .optional()
    .describe("int4/int8: 4 = int8 activations (default), 0/1 = float32."),
  quantizeLmHead: z.boolean().optional().describe("Also quantize lm_head (default false)."),
  quantizeEmbeddings: z.boolean().optional().describe("Also quantize embeddings (int4/int8; default false)."),
  fromOnnx: z.boolean().optional().describe("model is an ONNX export (genai/Optimum): rebuild it into our cache."),
};

export const outputSchema = {
  dir: z.string(),
  files: z.array(z.string()),
  bytes: z.number(),
  elapsedMs: z.number(),
  unloadedSessions: z.number().describe("Cached sessions unloaded (their files changed)."),
};

export const config = {
  title: "Build ONNX model",
  description:
    "Convert a Llama/Mistral/Qwen2/Qwen3 safetensors checkpoint to ONNX for this engine (plus early-exit drafts, quantized " +
    "weights). Overwrites earlier builds. fromOnnx: rebuild an ONNX export instead. Long: progress.",
  inputSchema,
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
};

export function register(server: McpServer, ctx: ToolContext) {
  return server.registerTool(name, config, (args, extra) =>
    runTool(ctx, name, async () => {
      const dir = ctx.roots.resolve(args.model, "model", { directory: true });
      if (args.fromOnnx) {
        for (const k of ["quantize", "blockSize", "accuracyLevel", "quantizeLmHead", "quantizeEmbeddings", "ioDtype", "layout"] as const) {
          if (args[k] !== undefined) throw new InvalidOptionError(`${k} does not apply with fromOnnx: the rebuild keeps the export's own weights, KV dtype and writes into our cache.`);
        }
        const progress = progressSender(extra);
        return ctx.exclusive(`build:${dir}`, async () => {
          throwIfCancelled(extra);
          const t0 = performance.now();
          let step = 0;
          const res = await buildFromOnnx(dir, {
            earlyExit: args.earlyExit,
            treeMask: args.treeMask,
            hiddenStates: args.hiddenStates,
            onProgress: (msg) => {
              ctx.logger.log("debug", `build_model: ${msg}`);
              progress(++step, undefined, msg);
            },
          });
          // Sessions of an earlier rebuild in the same place would read replaced files.
          const unloadedSessions = await ctx.store.unload(res.dir);
          const bytes = res.files.reduce((s, f) => s + (statSync(f, { throwIfNoEntry: false })?.size ?? 0), 0);
          const elapsedMs = Math.round(performance.now() - t0);
          return textResult(
            `Rebuilt ${res.source} (${res.family}) into ${res.dir}: ${res.files.length} file(s), ${(bytes / 2 ** 20).toFixed(1)} MiB in ${(elapsedMs / 1000).toFixed(1)} s. Load it with model "${res.dir}".`,
            { dir: res.dir, files: res.files, bytes, elapsedMs, unloadedSessions },
          );
        });
      }
      // A Hugging Face snapshot is shared with Python tools and named by content: never build into it.
      if (/(^|[\\/])models--[^\\/]+[\\/]snapshots[\\/]/.test(dir)) {
        throw new InvalidOptionError(
          `model ${JSON.stringify(args.model)} is a Hugging Face cache snapshot (${dir}); build_model never writes into the HF cache. ` +
            `Call pull_model with this repo id instead: a safetensors-only repo is built into our own cache.`,
        );
      }
      const progress = progressSender(extra);
      return ctx.exclusive(`build:${dir}`, async () => {
        throwIfCancelled(extra);
        const t0 = performance.now();
        // Sessions of this directory would read stale files: free them first (waits for their users).
        const unloadedSessions = await ctx.store.unload(dir);
        let step = 0;
        const res = await buildModelDir(dir, {
          earlyExit: args.earlyExit,
          ioDtype: args.ioDtype,
          treeMask: args.treeMask,
          hiddenStates: args.hiddenStates,
          layout: args.layout,
          quantize: quantizeFromArgs(
            { quantize: args.quantize, blockSize: args.blockSize, accuracyLevel: args.accuracyLevel, lmHead: args.quantizeLmHead, embeddings: args.quantizeEmbeddings },
            "api",
          ),
          onProgress: (msg) => {
            ctx.logger.log("debug", `build_model: ${msg}`);
            progress(++step, undefined, msg);
          },
        });
        const bytes = res.files.reduce((s, f) => {
          try {
            return s + statSync(f).size;
          } catch {
            return s;
          }
        }, 0);
        const elapsedMs = Math.round(performance.now() - t0);
        ctx.logger.log("info", `built ${res.files.length} file(s) in ${dir}`);
        return textResult(
          `Built ${res.files.length} file(s) (${(bytes / 2 ** 20).toFixed(1)} MiB) in ${(elapsedMs / 1000).toFixed(1)} s:\n${res.files.join("\n")}`,
          { dir, files: res.files, bytes, elapsedMs, unloadedSessions },
        );
      });
    }),
  );
}
