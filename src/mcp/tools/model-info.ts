/** `model_info`: architecture, size, vocabulary, context, and which methods the model supports and why. */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { describeModel } from "../../decoding/capabilities.js";
import { MCP_VOCABULARY } from "../../vocabulary.js";
import { resolveModelArg, variantsOfArgs } from "../hub-args.js";
import type { ToolContext } from "../context.js";
import { onnxBytes } from "../models.js";
import { modelArg, runTool, textResult, throwIfCancelled, variantSchema } from "../tool-kit.js";

export const name = "model_info";

export const inputSchema = {
  model: modelArg,
  variant: variantSchema,
};

export const outputSchema = {
  dir: z.string(),
  file: z.string(),
  layout: z.string(),
  architecture: z.string(),
  device: z.string(),
  numLayers: z.number(),
  kvHeads: z.number(),
  headDim: z.number(),
  hiddenSize: z.number().nullable(),
  kvDtype: z.string(),
  logitsDtype: z.string(),
  vocabSize: z.number().nullable(),
  tokenizerVocabSize: z.number().nullable().describe("null: no tokenizer (promptIds only)."),
  maxContext: z.number().nullable(),
  eosIds: z.array(z.number()),
  bytes: z.number(),
  weightFormat: z.string(),
  weightBytesPerToken: z.number().describe("Bounds CPU decode speed."),
  hasTreeMask: z.boolean(),
  hasHiddenStates: z.boolean(),
  earlyExitLayers: z.array(z.number()).describe("Built early-exit drafts (methodOptions.exitLayer)."),
  earlyExitAdapters: z.array(z.number()).describe("Trained exit adapters (train-early-exit)."),
  multiTokenWithPast: z.boolean().nullable(),
  methods: z.array(z.object({ method: z.string(), available: z.boolean(), reason: z.string() })),
  rebuild: z.string().nullable().describe("Why and how to rebuild this export with our interface (build_model fromOnnx), or null."),
};

export const config = {
  title: "Model info",
  description:
    "Describe a model (layers, size, weights, vocabulary, context, early-exit drafts) and which methods it supports, with " +
    "the fix when not. Loads it.",
  inputSchema,
  annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
};

export function register(server: McpServer, ctx: ToolContext) {
  return server.registerTool(name, config, (args, extra) =>
    runTool(ctx, name, async () => {
      const dir = resolveModelArg(ctx.roots, args.model, "model", { directory: true });
      const m = await ctx.store.load(dir, { variant: variantsOfArgs(args).variant, waitForRoom: true, signal: extra.signal });
      throwIfCancelled(extra);
      await m.lm.probeMultiTokenWithPast(); // so multiTokenWithPast and the rebuild advice are known, not null
      const d = describeModel(m.lm, MCP_VOCABULARY); // reasons name tool arguments (heads, build_model {earlyExit})
      const methods = d.methods;
      const cfg = (m.lm.dirInfo.config.text_config ?? m.lm.dirInfo.config) as Record<string, unknown>;
      const out = {
        dir: d.dir,
        file: d.file,
        layout: d.layout,
        architecture: d.architecture,
        device: d.device,
        numLayers: d.numLayers,
        kvHeads: d.kvHeads,
        headDim: d.headDim,
        hiddenSize: typeof cfg.hidden_size === "number" ? cfg.hidden_size : null,
        kvDtype: d.kvDtype,
        logitsDtype: d.logitsDtype,
        vocabSize: d.vocabSize ?? null,
        tokenizerVocabSize: m.tokenizer?.vocabSize ?? null,
        maxContext: d.maxContext,
        eosIds: d.eosIds,
        bytes: onnxBytes(d.file),
        weightFormat: d.weightFormat,
        weightBytesPerToken: d.weightBytesPerToken,
        hasTreeMask: d.hasTreeMask,
        hasHiddenStates: d.hasHiddenStates,
        earlyExitLayers: d.earlyExitLayers,
        earlyExitAdapters: d.earlyExitAdapters,
        multiTokenWithPast: d.multiTokenWithPast,
        methods,
        rebuild: d.rebuild,
      };
      const text = [
        `${d.architecture} (${d.layout}) ${d.file}: ${d.numLayers} layers, ${(out.bytes / 2 ** 20).toFixed(1)} MiB, vocab ${d.vocabSize ?? "?"}, context ${d.maxContext ?? "unknown"}`,
        `weights ${d.weightFormat}, ${(d.weightBytesPerToken / 2 ** 20).toFixed(1)} MiB read per token`,
        `tree mask ${d.hasTreeMask ? "yes" : "no"}, hidden states ${d.hasHiddenStates ? "yes" : "no"}, early-exit drafts ${d.earlyExitLayers.length ? d.earlyExitLayers.join(", ") : "none"} (trained adapters: ${d.earlyExitAdapters.length ? d.earlyExitAdapters.join(", ") : "none"})`,
        ...methods.map((x) => `${x.available ? "✓" : "✗"} ${x.method}: ${x.reason}`),
        ...(d.rebuild ? [`rebuild: ${d.rebuild}`] : []),
      ].join("\n");
      return textResult(text, out);
    }),
  );
}
