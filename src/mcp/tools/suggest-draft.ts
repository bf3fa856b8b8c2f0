/** `suggest_draft`: known same-tokenizer drafts for a target, and a tokenizer check of pairs found locally or in the cache. */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { errorMessage } from "../../errors.js";
import { checkTokenizerCompat, suggestDrafts } from "../../hub/drafts.js";
import type { ToolContext } from "../context.js";
import { resolveModelArg } from "../hub-args.js";
import { boundedString, runTool, textResult } from "../tool-kit.js";

export const name = "suggest_draft";

export const inputSchema = {
  model: boundedString(z.string().min(1).max(300)).describe("Target repo id or model dir."),
  draft: boundedString(z.string().min(1).max(300)).optional().describe("A draft to check against it (repo id in the cache, or dir)."),
};

export const outputSchema = {
  model: z.string(),
  family: z.string().nullable(),
  note: z.string().nullable(),
  drafts: z.array(z.looseObject({ repo: z.string(), onnx: z.string().nullable() })),
  checks: z.array(z.looseObject({ draft: z.string(), compatible: z.boolean().nullable().describe("null: not checked (pull both first).") })),
};

export const config = {
  title: "Suggest a draft model",
  description:
    "Known draft models with the target's tokenizer and their ONNX exports; local ones (and draft) get a tokenizer check. " +
    "Downloads nothing.",
  inputSchema,
  annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
};

export function register(server: McpServer, ctx: ToolContext) {
  return server.registerTool(name, config, (args) =>
    runTool(ctx, name, async () => {
      const fam = suggestDrafts(args.model);
      const drafts = (fam?.drafts ?? []).map((d) => ({ repo: d.repo, onnx: d.onnx, note: d.note ?? null }));
      const candidates = [...drafts.map((d) => d.onnx ?? d.repo), ...(args.draft ? [args.draft] : [])];
      const checks = [];
      for (const d of candidates) {
        try {
          const t = resolveModelArg(ctx.roots, args.model, "model", { directory: true });
          const r = await checkTokenizerCompat(t, resolveModelArg(ctx.roots, d, "draft", { directory: true }));
          checks.push({ draft: d, compatible: r.compatible, checks: r.checks, error: null });
        } catch (err) {
          checks.push({ draft: d, compatible: null, checks: [], error: errorMessage(err) });
        }
      }
      const lines = [
        fam ? `${args.model} (${fam.family}): ${drafts.map((d) => d.onnx ?? d.repo).join(", ")}` : `${args.model}: no known draft in the table; use prompt-lookup, lookahead or early-exit, or a smaller model of the same family.`,
        ...(fam?.note ? [`note: ${fam.note}`] : []),
        ...checks.map((c) => `check ${c.draft}: ${c.compatible === null ? `not checked (${c.error})` : c.compatible ? "compatible" : `NOT compatible (${c.checks.filter((x) => !x.ok).map((x) => x.detail).join("; ")})`}`),
      ];
      return textResult(lines.join("\n"), { model: args.model, family: fam?.family ?? null, note: fam?.note ?? null, drafts, checks });
    }),
  );
}
