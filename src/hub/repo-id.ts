/**
 * Hugging Face repo references as users type them: `org/name`, `org/name@revision`,
 * `org/name:variant`, `org/name@revision:variant` (variant = an onnx-community file such as
 * `q4`, `fp16`, `model_q4.onnx`, or `fp32` for onnx/model.onnx).
 */
import { InvalidOptionError } from "../errors.js";

export interface RepoRef {
  /** `org/name`. */
  repo: string;
  /** Branch, tag or commit (default "main"). */
  revision: string;
  /** Variant as typed (see variantCandidates), if any. */
  variant?: string;
}

const REPO_REF = /^([A-Za-z0-9][\w.-]{0,95})\/([A-Za-z0-9][\w.-]{0,95})(?:@([\w./-]{1,200}))?(?::([\w.-]{1,100}))?$/;

/** Parse a repo reference; undefined when `arg` does not look like one (then it is a path). */
export function parseRepoRef(arg: string): RepoRef | undefined {
  const m = REPO_REF.exec(arg.trim());
  if (!m) return undefined;
  const [, org, name, revision, variant] = m;
  if (name!.endsWith(".onnx") || name === "." || name === "..") return undefined;
  if (revision !== undefined && (revision.includes("..") || revision.startsWith("/") || revision.endsWith("/"))) {
    throw new InvalidOptionError(`Revision "${revision}" in "${arg}" is not a valid branch, tag or commit.`);
  }
  return { repo: `${org}/${name}`, revision: revision ?? "main", variant };
}

export function formatRepoRef(ref: RepoRef): string {
  return `${ref.repo}${ref.revision !== "main" ? `@${ref.revision}` : ""}${ref.variant ? `:${ref.variant}` : ""}`;
}

export function isCommitHash(rev: string): boolean {
  return /^[0-9a-f]{40}$/.test(rev);
}

/**
 * Repo-relative paths a variant may name, in the order inspectModelDir tries them
 * ("q4" -> onnx/model_q4.onnx; "fp32" -> onnx/model.onnx).
 */
export function variantCandidates(variant: string): string[] {
  if (variant === "fp32" || variant === "model") return ["onnx/model.onnx", "model.onnx"];
  return [variant, `onnx/${variant}`, `onnx/${variant}.onnx`, `onnx/model_${variant}.onnx`];
}

/** The name to hand to inspectModelDir / ModelStore.load for a variant (maps fp32 to a file name). */
export function loaderVariant(variant: string | undefined): string | undefined {
  if (variant === undefined) return undefined;
  return variant === "fp32" || variant === "model" ? "model.onnx" : variant;
}
