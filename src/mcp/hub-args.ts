/**
 * Model arguments of the MCP tools that name a Hugging Face repo (`org/name[@revision][:variant]`):
 * resolved from the Hugging Face cache only (never downloaded here; pull_model downloads), then
 * confined to the model roots like any path. Paths keep going through ModelRoots.resolve.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { HubError } from "../hub/errors.js";
import { hubSettings } from "../hub/pull.js";
import { loaderVariant, parseRepoRef } from "../hub/repo-id.js";
import { lookupCache } from "../hub/resolve.js";
import type { ModelRoots } from "./roots.js";

export function resolveModelArg(roots: ModelRoots, arg: string, kind = "model", opts: { directory?: boolean } = {}): string {
  const ref = typeof arg === "string" ? parseRepoRef(arg) : undefined;
  const plain = ref !== undefined && ref.revision === "main" && !ref.variant;
  if (!ref || (plain && roots.roots.some((r) => existsSync(join(r, arg))))) return roots.resolve(arg, kind, opts);
  const s = hubSettings();
  const c = lookupCache(ref, kind === "heads" ? "heads" : "model", s.cacheDir, s.env);
  if (c.ok) return roots.resolve(c.dir, kind, opts);
  if (plain && !c.needsBuild) {
    try {
      return roots.resolve(arg, kind, opts); // e.g. a hub cache given as an explicit --model-root
    } catch {
      /* report the hub error below */
    }
  }
  throw new HubError(
    s.offline ? "HUB_OFFLINE" : "HUB_NOT_CACHED",
    `${kind} "${arg}" is not complete in the Hugging Face cache ${s.cacheDir} (missing: ${c.missing}). ` +
      `Call pull_model with model "${arg}" to download it${c.needsBuild ? " (it also builds ONNX from the safetensors)" : ""}` +
      `${s.offline ? " once HF_HUB_OFFLINE is unset" : ""}. If you meant a path, it is not under any model root: call list_models to see the models the server can use.`,
  );
}

/** The variant a model argument names with `:variant`, for the loader. */
export function variantOfArg(arg: string): string | undefined {
  return loaderVariant(parseRepoRef(arg)?.variant);
}

/**
 * The target and draft variants of a tool call: the `variant` / `draftVariant` arguments, else the
 * `:variant` their model arguments name (the tools that take a model and a draft share this).
 */
export function variantsOfArgs(args: { model?: string; variant?: string; draft?: string; draftVariant?: string }): { variant?: string; draftVariant?: string } {
  return {
    variant: args.variant ?? (args.model !== undefined ? variantOfArg(args.model) : undefined),
    draftVariant: args.draftVariant ?? (args.draft !== undefined ? variantOfArg(args.draft) : undefined),
  };
}
