/** Which files of a repo a variant needs: never all eight ONNX variants, only the chosen one and its data. */
import { HubError } from "./errors.js";
import { variantName } from "./cache.js";
import { variantCandidates } from "./repo-id.js";

export interface RepoFile {
  path: string;
  size: number;
  /** sha256 (LFS) or git blob sha1. */
  oid: string;
  lfs: boolean;
}

/** Small files a model directory needs beside its weights (the ones present are taken). */
export const META_FILES = [
  "config.json",
  "generation_config.json",
  "genai_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "vocab.json",
  "merges.txt",
  "tokenizer.model",
  "chat_template.jinja",
  "chat_template.json",
];

/** Preference order when no variant is named (the same order inspectModelDir uses). */
export const DEFAULT_VARIANT_ORDER = [
  "onnx/model.onnx",
  "onnx/model_fp16.onnx",
  "onnx/model_quantized.onnx",
  "onnx/model_int8.onnx",
  "onnx/model_uint8.onnx",
  "onnx/model_q4.onnx",
  "onnx/model_q4f16.onnx",
  "onnx/model_bnb4.onnx",
  "model.onnx",
  "decoder_model_merged.onnx",
];

export type PlanKind = "onnx" | "safetensors" | "heads";

export interface FilePlan {
  kind: PlanKind;
  /** The ONNX file chosen (kind "onnx"). */
  modelFile?: string;
  files: RepoFile[];
}

/** External data of an ONNX file: model.onnx_data, model.onnx.data, model.onnx_data_1, ... */
function isExternalDataOf(path: string, onnx: string): boolean {
  if (!path.startsWith(onnx) || path === onnx) return false;
  return /^(_data|\.data)(_\d+)?$/.test(path.slice(onnx.length));
}

export function selectFiles(repo: string, listing: RepoFile[], opts: { variant?: string; kind?: "model" | "heads"; genaiFilename?: string } = {}): FilePlan {
  const byPath = new Map(listing.map((f) => [f.path, f]));
  const meta = META_FILES.map((p) => byPath.get(p)).filter((f): f is RepoFile => f !== undefined);
  const onnx = listing.filter((f) => f.path.endsWith(".onnx") && (!f.path.includes("/") || f.path.startsWith("onnx/")));
  const safetensors = listing.filter((f) => !f.path.includes("/") && (f.path.endsWith(".safetensors") || f.path === "model.safetensors.index.json"));

  if (opts.kind === "heads") {
    const files = listing.filter((f) => !f.path.includes("/") && /\.(safetensors|pt|bin|json)$/.test(f.path));
    if (files.length === 0) throw new HubError("HUB_NOT_FOUND", `${repo} has no Medusa heads files (*.safetensors, *.pt or *.bin at the top level).`);
    return { kind: "heads", files };
  }

  let chosen: string | undefined;
  if (opts.variant && onnx.length === 0 && safetensors.some((f) => f.path.endsWith(".safetensors"))) {
    // Safetensors only: the variant is built after the download (hub/build.ts buildForVariant).
  } else if (opts.variant) {
    chosen = variantCandidates(opts.variant).find((p) => byPath.has(p) && p.endsWith(".onnx"));
    if (!chosen) {
      const have = onnx.map((f) => variantName(f.path));
      throw new HubError(
        "HUB_NOT_FOUND",
        have.length > 0
          ? `${repo} has no ONNX variant "${opts.variant}". Available variants: ${have.join(", ")}.`
          : `${repo} has no ONNX files, so --variant does not apply${safetensors.length > 0 ? "; omit it to download the safetensors and build an ONNX model" : ""}.`,
      );
    }
  } else if (opts.genaiFilename && byPath.has(opts.genaiFilename)) {
    chosen = opts.genaiFilename;
  } else {
    chosen = DEFAULT_VARIANT_ORDER.find((p) => byPath.has(p)) ?? onnx.find((f) => f.path.startsWith("onnx/model"))?.path;
  }
  if (chosen) {
    const data = listing.filter((f) => isExternalDataOf(f.path, chosen!));
    return { kind: "onnx", modelFile: chosen, files: [...meta, byPath.get(chosen)!, ...data] };
  }
  if (safetensors.some((f) => f.path.endsWith(".safetensors"))) {
    if (!byPath.has("config.json")) throw new HubError("HUB_NOT_FOUND", `${repo} has safetensors but no config.json, so it cannot be built.`);
    return { kind: "safetensors", files: [...meta, ...safetensors] };
  }
  throw new HubError(
    "HUB_NOT_FOUND",
    `${repo} has neither an ONNX decoder (onnx/model*.onnx, model.onnx) nor safetensors weights. ` +
      `Look for an ONNX export of it (for example under https://huggingface.co/onnx-community).`,
  );
}
