/**
 * THE entry point that turns a model argument into a directory the engine can load:
 *   1. an existing local path -> itself;
 *   2. a repo id (`org/name[@revision][:variant]`) complete in the Hugging Face cache -> its snapshot
 *      (or our build of a safetensors-only snapshot);
 *   3. else a download (`download: true`, the default for the CLI and the library; the MCP server
 *      passes false and offers pull_model instead), honouring HF_HUB_OFFLINE, HF_ENDPOINT, HF_TOKEN.
 * Anything else is returned as a path, so the loader's "does not exist" error applies.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { buildForVariant, buildSnapshot, type BuildPassThrough } from "./build.js";
import { buildDirFor, isBuilt, onnxFilesIn, readRef, repoFolder, snapshotDir, variantName } from "./cache.js";
import { HubError } from "./errors.js";
import { hubSettings, pullSnapshot, type HubOptions, type PullResult } from "./pull.js";
import { formatRepoRef, loaderVariant, parseRepoRef, variantCandidates, type RepoRef } from "./repo-id.js";

export interface ResolveOptions extends HubOptions {
  /** Download what the cache lacks (default true). */
  download?: boolean;
  /** "heads": Medusa heads (any files), not a decoder. */
  kind?: "model" | "heads";
  /** Passed to the builder for safetensors-only repos. */
  build?: BuildPassThrough;
  /** How to download, in the caller's vocabulary (used when download is false). */
  pullHint?: string;
}

export interface ResolvedModel {
  /** Directory to load (or, for heads, the snapshot directory). */
  dir: string;
  /** Variant for the loader (from `:variant`), if one was named. */
  variant?: string;
  source: "local" | "cache" | "download";
  repo?: string;
  revision?: string;
  commit?: string;
  /** The HF snapshot directory (differs from dir when we built ONNX from safetensors). */
  snapshot?: string;
  /** True when dir is our ONNX build of a safetensors-only repo. */
  built?: boolean;
}

type CacheLookup =
  | { ok: true; dir: string; snapshot: string; commit: string; built: boolean }
  | { ok: false; missing: string; needsBuild?: { snapshot: string; commit: string } };

/** What the cache holds for `ref`, without touching the network. */
export function lookupCache(ref: RepoRef, kind: "model" | "heads", cacheDir: string, env: NodeJS.ProcessEnv = process.env): CacheLookup {
  const folder = repoFolder(cacheDir, ref.repo);
  const commit = readRef(folder, ref.revision);
  if (!commit) return { ok: false, missing: `no snapshot of revision "${ref.revision}"` };
  const snap = snapshotDir(folder, commit);
  if (!existsSync(snap)) return { ok: false, missing: `snapshot ${commit} is missing` };
  if (kind === "heads") return { ok: true, dir: snap, snapshot: snap, commit, built: false };
  if (!existsSync(join(snap, "config.json")) && !existsSync(join(snap, "genai_config.json"))) {
    return { ok: false, missing: "config.json" };
  }
  const onnx = onnxFilesIn(snap);
  if (ref.variant && onnx.length > 0) {
    if (!variantCandidates(ref.variant).some((p) => p.endsWith(".onnx") && existsSync(join(snap, p)))) {
      return { ok: false, missing: `variant "${ref.variant}" (cached: ${onnx.map(variantName).join(", ") || "none"})` };
    }
    return { ok: true, dir: snap, snapshot: snap, commit, built: false };
  }
  if (onnx.length > 0) return { ok: true, dir: snap, snapshot: snap, commit, built: false };
  // Safetensors only: our build of the variant asked for (float32 without one).
  let tag: string | undefined;
  try {
    tag = buildForVariant(ref.variant).tag;
  } catch (err) {
    return { ok: false, missing: (err as Error).message };
  }
  const built = buildDirFor(ref.repo, commit, env, tag);
  if (isBuilt(built)) return { ok: true, dir: built, snapshot: snap, commit, built: true };
  const hasWeights = existsSync(join(snap, "model.safetensors")) || existsSync(join(snap, "model.safetensors.index.json"));
  if (hasWeights) return { ok: false, missing: "an ONNX build of the safetensors", needsBuild: { snapshot: snap, commit } };
  return { ok: false, missing: "an ONNX file or safetensors weights" };
}

export async function resolveModel(arg: string, o: ResolveOptions = {}): Promise<ResolvedModel> {
  if (existsSync(arg)) return { dir: resolve(arg), source: "local" };
  const ref = parseRepoRef(arg);
  if (!ref) return { dir: resolve(arg), source: "local" };
  const s = hubSettings(o);
  const kind = o.kind ?? "model";
  const download = o.download ?? true;
  const variant = loaderVariant(ref.variant);
  const base = { repo: ref.repo, revision: ref.revision, variant };

  const cached = lookupCache(ref, kind, s.cacheDir, s.env);
  if (cached.ok) return { ...base, dir: cached.dir, source: "cache", commit: cached.commit, snapshot: cached.snapshot, built: cached.built };
  if (cached.needsBuild && download) {
    const dir = await buildSnapshot(ref.repo, cached.needsBuild.commit, cached.needsBuild.snapshot, { ...o, variant: ref.variant });
    return { ...base, dir, source: "cache", commit: cached.needsBuild.commit, snapshot: cached.needsBuild.snapshot, built: true };
  }
  const name = formatRepoRef(ref);
  if (s.offline) {
    throw new HubError(
      "HUB_OFFLINE",
      `HF_HUB_OFFLINE is set and ${name} is not complete in the Hugging Face cache ${s.cacheDir} (missing: ${cached.missing}). ` +
        `Unset HF_HUB_OFFLINE and run \`spec-decode pull ${name}\` once online, or pass a local model directory.`,
    );
  }
  if (!download) {
    throw new HubError(
      "HUB_NOT_CACHED",
      `${name} is not complete in the Hugging Face cache ${s.cacheDir} (missing: ${cached.missing}). ${o.pullHint ?? `Run \`spec-decode pull ${name}\` first.`}`,
    );
  }
  let pulled: PulledModel;
  try {
    pulled = await pullModel(ref, { ...o, kind });
  } catch (err) {
    if (err instanceof HubError && err.code === "HUB_NOT_FOUND" && !ref.variant && ref.revision === "main") {
      throw new HubError("HUB_NOT_FOUND", `${err.message} (There is no local directory "${resolve(arg)}" either.)`, { cause: err });
    }
    throw err;
  }
  return { ...base, dir: pulled.dir, source: "download", commit: pulled.commit, snapshot: pulled.snapshot, built: pulled.built };
}

export interface PulledModel extends PullResult {
  /** Directory to load: the snapshot, or our build of it. */
  dir: string;
  built: boolean;
  variant?: string;
}

/** What a pull reports to a person or a client (CLI --json, pull_model's structured result). */
export function pullSummary(r: PulledModel) {
  return {
    repo: r.repo,
    revision: r.revision,
    commit: r.commit,
    dir: r.dir,
    snapshot: r.snapshot,
    built: r.built,
    modelFile: r.plan.modelFile ?? null,
    files: r.plan.files.map((f) => f.path),
    downloadedBytes: r.downloadedBytes,
    totalBytes: r.totalBytes,
  };
}

/** Always ask the Hub for the revision's commit, fetch what is missing, build when safetensors-only. */
export async function pullModel(refIn: RepoRef | string, o: ResolveOptions = {}): Promise<PulledModel> {
  const ref = typeof refIn === "string" ? parseRepoRef(refIn) : refIn;
  if (!ref) {
    throw new HubError("HUB_NOT_FOUND", `"${String(refIn)}" is not a Hugging Face repo id; write it as org/name, org/name@revision or org/name:variant.`);
  }
  const s = hubSettings(o);
  if (s.offline) {
    // Like `hf download` offline: a complete cached snapshot is the answer; anything else names what is missing.
    const c = lookupCache(ref, o.kind ?? "model", s.cacheDir, s.env);
    if (c.ok) {
      return {
        repo: ref.repo,
        revision: ref.revision,
        commit: c.commit,
        snapshot: c.snapshot,
        plan: { kind: c.built ? "safetensors" : "onnx", files: [] },
        downloadedBytes: 0,
        totalBytes: 0,
        dir: c.dir,
        built: c.built,
        variant: loaderVariant(ref.variant),
      };
    }
    throw new HubError(
      "HUB_OFFLINE",
      `HF_HUB_OFFLINE is set and ${formatRepoRef(ref)} is not complete in the Hugging Face cache ${s.cacheDir} (missing: ${c.missing}). Unset HF_HUB_OFFLINE to download it.`,
    );
  }
  const r = await pullSnapshot({ repo: ref.repo, revision: ref.revision, variant: ref.variant, kind: o.kind }, o);
  if (r.plan.kind === "safetensors") {
    const dir = await buildSnapshot(ref.repo, r.commit, r.snapshot, { ...o, variant: ref.variant });
    return { ...r, dir, built: true, variant: loaderVariant(ref.variant) };
  }
  return { ...r, dir: r.snapshot, built: false, variant: loaderVariant(ref.variant) };
}
