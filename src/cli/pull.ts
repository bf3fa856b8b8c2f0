/** `spec-decode pull`: download one variant of a Hugging Face model into the HF cache (and build safetensors-only repos). */
import { formatBytes } from "../hub/disk.js";
import { pullModel, pullSummary, parseRepoRef } from "../hub/index.js";
import { InvalidOptionError } from "../errors.js";
import { parseArgs } from "node:util";
import { hubProgress } from "./hub-progress.js";

const USAGE = `Usage: spec-decode pull org/name[@revision][:variant] [--variant q4|fp16|fp32|model_q4.onnx...] [--revision R] [--heads] [--json] [--quiet]
Downloads config, tokenizer and ONE ONNX variant (with its external data) of a Hugging Face repo into the
Hugging Face cache (HF_HUB_CACHE / HF_HOME, shared with Python tools), verifying each file's sha256.
A safetensors-only repo is downloaded and built to ONNX in our cache (SPEC_DECODE_CACHE). Interrupted
downloads resume. Honours HF_TOKEN (gated repos), HF_ENDPOINT (mirrors) and HF_HUB_OFFLINE.
--heads downloads Medusa heads files instead of a decoder.`;

export async function pullCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        model: { type: "string" },
        variant: { type: "string" },
        revision: { type: "string" },
        heads: { type: "boolean", default: false },
        json: { type: "boolean", default: false },
        quiet: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (err) {
    throw new InvalidOptionError(`${(err as Error).message}\n\n${USAGE}`);
  }
  const { values: v, positionals } = parsed;
  if (positionals.length > 1) throw new InvalidOptionError(`Pull one model at a time (got ${positionals.join(", ")}).\n\n${USAGE}`);
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  const arg = (v.model as string | undefined) ?? positionals[0];
  if (!arg) throw new InvalidOptionError(`Name the model to pull.\n\n${USAGE}`);
  const ref = parseRepoRef(arg);
  if (!ref) throw new InvalidOptionError(`"${arg}" is not a Hugging Face repo id; write it as org/name (optionally @revision and :variant).`);
  if (v.revision) ref.revision = v.revision as string;
  if (v.variant) {
    if (ref.variant && ref.variant !== v.variant) throw new InvalidOptionError(`Give the variant once: "${arg}" already names :${ref.variant}.`);
    ref.variant = v.variant as string;
  }
  const progress = hubProgress(process.stderr, { quiet: Boolean(v.quiet) });
  try {
    const r = await pullModel(ref, { ...progress, kind: v.heads ? "heads" : "model" });
    progress.done();
    const summary = pullSummary(r);
    if (v.json) console.log(JSON.stringify(summary, null, 2));
    else {
      console.log(
        r.plan.files.length === 0
          ? `${r.repo}@${r.revision} (${r.commit.slice(0, 12)}): complete in the cache (HF_HUB_OFFLINE is set, the Hub was not asked)`
          : `${r.repo}@${r.revision} (${r.commit.slice(0, 12)}): ${r.plan.files.length} files, ${formatBytes(r.totalBytes)} ` +
              `(${formatBytes(r.downloadedBytes)} downloaded now)${r.built ? ", built to ONNX" : ""}`,
      );
      console.log(r.dir);
    }
  } finally {
    progress.done();
  }
  return 0;
}
