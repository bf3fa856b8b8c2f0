/** `model_info`: architecture, size, vocabulary, context, and which methods the model supports and why. */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { describeModel } from "../../decoding/capabilities.js";
import { METHOD_NAMES, registeredMethods } from "../../decoding/methods.js";
import { resolveModelArg, variantOfArg } from "../hub-args.js";
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
  tokenizerVocabSize: z.number().nullable().describe("null when the directory has no tokenizer.json (then only promptIds work)."),
  maxContext: z.number().nullable(),
  eosIds: z.array(z.number()),
  bytes: z.number().describe("ONNX file plus external data."),
  weightFormat: z.string().describe('e.g. "float32", "int4 (MatMulNBits, block 32) 78% + float32 22%" (share of the weight bytes a decode step reads).'),
  weightBytesPerToken: z.number().describe("Weight bytes one decode step reads (gathered tables count one row): what bounds CPU decoding speed."),
  hasTreeMask: z.boolean().describe("Builder-made graphs verify token trees in one forward (lookahead, Medusa)."),
  hasHiddenStates: z.boolean().describe("Needed by Medusa heads."),
  earlyExitLayers: z.array(z.number()).describe("Early-exit drafts built beside the model (methodOptions.exitLayer)."),
  multiTokenWithPast: z.boolean().nullable(),
  methods: z.array(z.object({ method: z.string(), available: z.boolean(), reason: z.string() })),
  rebuild: z.string().nullable().describe("Why and how to rebuild this export with our interface (build_model fromOnnx), or null."),
};

export const config = {
  title: "Model info",
  description:
    "Describe a model directory: architecture, layers, size, vocabulary, context length, interface (tree mask, hidden states, " +
    "early-exit drafts) and which decoding methods it supports, with the reason when one is not available. Loads the model into the cache.",
  inputSchema,
  outputSchema,
  annotations: { title: "Model info", readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
};

export function register(server: McpServer, ctx: ToolContext) {
  return server.registerTool(name, config, (args, extra) =>
    runTool(ctx, name, async () => {
      const dir = resolveModelArg(ctx.roots, args.model, "model", { directory: true });
      const m = await ctx.store.load(dir, { variant: args.variant ?? variantOfArg(args.model) });
      throwIfCancelled(extra);
      await m.lm.probeMultiTokenWithPast(); // so multiTokenWithPast and the rebuild advice are known, not null
      const d = describeModel(m.lm);
      const registered = new Set(registeredMethods().map((x) => x.name));
      const methods = [
        ...d.methods,
        ...METHOD_NAMES.filter((n) => !registered.has(n)).map((n) => ({ method: n, available: false, reason: "not implemented in this build yet" })),
      ];
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
        multiTokenWithPast: d.multiTokenWithPast,
        methods,
        rebuild: d.rebuild,
      };
      const text = [
        `${d.architecture} (${d.layout}) ${d.file}: ${d.numLayers} layers, ${(out.bytes / 2 ** 20).toFixed(1)} MiB, vocab ${d.vocabSize ?? "?"}, context ${d.maxContext ?? "unknown"}`,
        `weights ${d.weightFormat}, ${(d.weightBytesPerToken / 2 ** 20).toFixed(1)} MiB read per token`,
        `tree mask ${d.hasTreeMask ? "yes" : "no"}, hidden states ${d.hasHiddenStates ? "yes" : "no"}, early-exit drafts ${d.earlyExitLayers.length ? d.earlyExitLayers.join(", ") : "none"}`,
        ...methods.map((x) => `${x.available ? "✓" : "✗"} ${x.method}: ${x.reason}`),
        ...(d.rebuild ? [`rebuild: ${d.rebuild}`] : []),
      ].join("\n");
      return textResult(text, out);
    }),
  );
}
