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
  model: modelArg.describe("Directory holding config.json and model.safetensors (or a sharded index), inside a model root."),
  earlyExit: z
    .array(z.number().int().min(1))
    .max(16)
    .optional()
    .describe("Also build early-exit drafts with these layer counts (each 1 .. layers-1), for method early-exit."),
  ioDtype: z.enum(["float32", "float16"]).optional().describe("KV cache / logits dtype (default float32)."),
  treeMask: z.boolean().optional().describe("Add the tree_attention_mask input (default true; lookahead and Medusa need it)."),
  hiddenStates: z.boolean().optional().describe("Add the hidden_states output (default true; Medusa needs it)."),
  layout: z.enum(["onnx-community", "optimum", "genai"]).optional().describe("Where the files go (default onnx-community: onnx/model.onnx)."),
  quantize: z
    .enum(["int4", "int8", "uint8", "bnb4"])
    .optional()
    .describe(
      "Quantize the linear layers: int4 / int8 = com.microsoft MatMulNBits (written as onnx/model_q4.onnx, model_q4f16.onnx with float16 io, " +
        "model_int8.onnx; early exits early_exit_M_q4.onnx), uint8 = MatMulInteger (model_uint8.onnx), bnb4 = MatMulBnb4 NF4 (model_bnb4.onnx). " +
        'Load with variant "q4" etc.',
    ),
  blockSize: z.union([z.literal(32), z.literal(64), z.literal(128)]).optional().describe("Values per quantization block (default 32); needs quantize."),
  accuracyLevel: z
    .union([z.literal(0), z.literal(1), z.literal(2), z.literal(4)])
    .optional()
    .describe("MatMulNBits compute precision: 4 = int8 activations (default, fastest on CPU), 0/1 = float32; needs quantize."),
  quantizeLmHead: z.boolean().optional().describe("Also quantize lm_head (default false); needs quantize."),
  quantizeEmbeddings: z.boolean().optional().describe("Also quantize the embedding table (GatherBlockQuantized; int4/int8; default false); needs quantize."),
  fromOnnx: z
    .boolean()
    .optional()
    .describe(
      "model is an existing ONNX export (onnxruntime-genai builder, Optimum / onnx-community; Llama-family): rebuild it from its own weights " +
        "(MatMulNBits blocks kept as they are) with our interface into our cache, leaving the export untouched. For exports that can only " +
        "verify token by token (model_info says so). Not combinable with quantize / ioDtype / layout.",
    ),
};

export const outputSchema = {
  dir: z.string(),
  files: z.array(z.string()),
  bytes: z.number(),
  elapsedMs: z.number(),
  unloadedSessions: z.number().describe("Cached sessions of this directory that were unloaded because their files changed."),
};

export const config = {
  title: "Build ONNX model",
  description:
    "Convert a Hugging Face Llama-family checkpoint (config.json + safetensors: Llama, Mistral, Qwen2, Qwen3) into an ONNX " +
    "model with the engine's interface (tree attention mask, hidden states), optionally with early-exit drafts made of the " +
    "first layers. Writes into the model directory (overwrites earlier builds). With fromOnnx, rebuilds an existing ONNX export from its " +
      "own weights into our cache instead (the export is not modified). Long: sends progress when given a progress token.",
  inputSchema,
  outputSchema,
  annotations: { title: "Build model", readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
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
