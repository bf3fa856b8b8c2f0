/** `pull_model`: download one variant of a Hugging Face model into the Hugging Face cache (the only MCP tool that downloads). */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { InvalidOptionError } from "../../errors.js";
import { userModelDir } from "../../hub/cache.js";
import { formatBytes } from "../../hub/disk.js";
import { hubSettings, parseRepoRef, pullModel, pullSummary } from "../../hub/index.js";
import type { ToolContext } from "../context.js";
import { boundedString, progressSender, runTool, textResult } from "../tool-kit.js";

export const name = "pull_model";

export const inputSchema = {
  model: boundedString(z.string().min(3).max(300)).describe('Repo id "org/name[@revision][:variant]".'),
  variant: boundedString(z.string().regex(/^(?!\.)[A-Za-z0-9._-]{1,100}$/, "a short name such as q4, fp16, fp32 or a file name such as model_q4.onnx"))
    .optional()
    .describe('ONNX variant, e.g. "q4" (default onnx/model.onnx).'),
  revision: boundedString(z.string().regex(/^[\w./-]{1,200}$/)).optional().describe("Branch, tag or commit (default main)."),
  heads: z.boolean().optional().describe("Download Medusa heads instead of a decoder."),
};

export const outputSchema = {
  repo: z.string(),
  revision: z.string(),
  commit: z.string(),
  dir: z.string().describe("Pass as model."),
  snapshot: z.string(),
  built: z.boolean(),
  modelFile: z.string().nullable(),
  files: z.array(z.string()),
  downloadedBytes: z.number(),
  totalBytes: z.number(),
};

export const config = {
  title: "Pull from Hugging Face",
  description:
    "Download one variant of a Hugging Face model (ONNX, or safetensors then built) into the HF cache; verified, resumable, " +
    "HF_TOKEN honoured. Progress; cancellable. Then pass the repo id as model.",
  inputSchema,
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: true },
};

export function register(server: McpServer, ctx: ToolContext) {
  return server.registerTool(name, config, (args, extra) =>
    runTool(ctx, name, async () => {
      const ref = parseRepoRef(args.model);
      if (!ref) throw new InvalidOptionError(`model "${args.model}" is not a Hugging Face repo id: write it as org/name, org/name@revision or org/name:variant.`);
      if (args.revision) ref.revision = args.revision;
      if (args.variant) {
        if (ref.variant && ref.variant !== args.variant) throw new InvalidOptionError(`Give the variant once: model already names :${ref.variant}.`);
        ref.variant = args.variant;
      }
      // Downloads are confined to the Hugging Face cache, and builds to our cache: both must be model roots.
      const s = hubSettings();
      for (const [dir, what] of [[s.cacheDir, "Hugging Face cache (HF_HUB_CACHE / HF_HOME)"], [userModelDir(), "model cache (SPEC_DECODE_CACHE)"]] as const) {
        if (!ctx.roots.contains(dir)) {
          throw new InvalidOptionError(`The ${what} ${dir} is not a model root, so pull_model cannot write there. Restart the server with --model-root ${dir} (plus your other roots).`);
        }
      }
      const progress = progressSender(extra);
      const r = await ctx.exclusive(`pull:${ref.repo}`, () =>
        pullModel(ref, {
          kind: args.heads ? "heads" : "model",
          signal: extra.signal,
          log: (line) => ctx.logger.log("info", line),
          onProgress: (p) => {
            if (p.phase === "download" && p.total > 0) progress(p.bytes, p.total, `${formatBytes(p.bytes)}/${formatBytes(p.total)} ${p.file}`);
          },
        }),
      );
      const out = pullSummary(r);
      return textResult(
        `${r.repo}@${r.revision} (${r.commit.slice(0, 12)}): ${out.files.length} files, ${formatBytes(r.totalBytes)} in the cache ` +
          `(${formatBytes(r.downloadedBytes)} downloaded now)${r.built ? ", ONNX built from safetensors" : ""}. Use model "${args.model}" (or ${r.dir}).`,
        out,
      );
    }),
  );
}
