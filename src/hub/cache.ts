/**
 * The Hugging Face cache layout, shared with Python tools (huggingface_hub, transformers):
 *   <cache>/models--org--name/blobs/<etag>            file contents (etag = sha256 for LFS files, git sha1 otherwise)
 *   <cache>/models--org--name/snapshots/<commit>/<path> relative symlink to ../../blobs/<etag>
 *   <cache>/models--org--name/refs/<revision>          the commit a branch/tag pointed to
 * Models we build from a safetensors-only repo go to OUR cache (never into the HF snapshot):
 *   <user model dir>/hub-builds/models--org--name/<commit>/
 */
import { getRepoFolderName } from "@huggingface/hub";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { huggingFaceCacheDir, userModelDir } from "../mcp/roots.js";
import { isCommitHash } from "./repo-id.js";

export { huggingFaceCacheDir, userModelDir };

export function repoFolderName(repo: string): string {
  return getRepoFolderName({ name: repo, type: "model" });
}

export function repoFolder(cacheDir: string, repo: string): string {
  return join(cacheDir, repoFolderName(repo));
}

/** The commit a revision points to in the cache (a commit hash is its own ref). */
export function readRef(folder: string, revision: string): string | undefined {
  if (isCommitHash(revision)) return revision;
  try {
    const sha = readFileSync(join(folder, "refs", ...revision.split("/")), "utf8").trim();
    return isCommitHash(sha) ? sha : undefined;
  } catch {
    return undefined;
  }
}

/** Write refs/<revision> atomically (no reader ever sees a half-written ref). */
export function writeRef(folder: string, revision: string, commit: string): void {
  if (isCommitHash(revision)) return;
  const path = join(folder, "refs", ...revision.split("/"));
  mkdirSync(join(path, ".."), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  writeFileSync(tmp, commit);
  renameSync(tmp, path);
}

export function snapshotDir(folder: string, commit: string): string {
  return join(folder, "snapshots", commit);
}

/** Where an automatic build of a safetensors-only snapshot goes (`tag`: a quantized variant such as "q4"). */
export function buildDirFor(repo: string, commit: string, env: NodeJS.ProcessEnv = process.env, tag?: string): string {
  return join(userModelDir(env), "hub-builds", repoFolderName(repo), tag ? `${commit}-${tag}` : commit);
}

/** Marker written last by a completed build. */
export const BUILD_COMPLETE = ".spec-decode-build-complete";

export function isBuilt(dir: string): boolean {
  return existsSync(join(dir, BUILD_COMPLETE));
}

/** ONNX decoder files in a snapshot (repo-relative), e.g. ["onnx/model.onnx", "onnx/model_q4.onnx"]. */
export function onnxFilesIn(dir: string): string[] {
  const out: string[] = [];
  for (const sub of ["", "onnx"]) {
    try {
      for (const f of readdirSync(join(dir, sub))) if (f.endsWith(".onnx")) out.push(sub ? `${sub}/${f}` : f);
    } catch {
      /* no such folder */
    }
  }
  return out.sort();
}

/** Short variant names as `--variant` / `:variant` accept them ("fp32" for model.onnx). */
export function variantName(path: string): string {
  const base = path.split("/").pop()!.replace(/\.onnx$/, "");
  if (base === "model") return "fp32";
  return base.startsWith("model_") ? base.slice("model_".length) : base;
}

/** Bytes on disk of every file under `dir`, links followed (each blob counted once). */
export function sizeOnDisk(dir: string): number {
  const seen = new Set<string>();
  let total = 0;
  const walk = (d: string, depth: number) => {
    if (depth > 4) return;
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      try {
        const s = statSync(p);
        if (s.isDirectory()) walk(p, depth + 1);
        else {
          const key = `${s.dev}:${s.ino}`;
          if (!seen.has(key)) {
            seen.add(key);
            total += s.size;
          }
        }
      } catch {
        /* dangling link */
      }
    }
  };
  walk(dir, 0);
  return total;
}

export interface CachedSnapshot {
  repo: string;
  commit: string;
  /** Branches/tags in refs/ that point at this commit. */
  refs: string[];
  dir: string;
  /** Variants present in the snapshot (see variantName). */
  variants: string[];
  hasSafetensors: boolean;
  /** Safetensors only and no completed build in our cache. */
  needsBuild: boolean;
  /** Our build of it, when one exists. */
  builtDir: string | null;
  bytes: number;
}

/** Describe one snapshot directory of a hub cache (for list_models). */
export function describeSnapshot(cacheDir: string, snapshot: string, env: NodeJS.ProcessEnv = process.env): CachedSnapshot | undefined {
  const rel = snapshot.slice(cacheDir.length + 1).split(/[\\/]/);
  const m = /^models--(.+?)--(.+)$/.exec(rel[0] ?? "");
  if (!m || rel[1] !== "snapshots" || rel.length !== 3) return undefined;
  const repo = `${m[1]}/${m[2]}`;
  const commit = rel[2]!;
  const folder = join(cacheDir, rel[0]!);
  const refs: string[] = [];
  const walkRefs = (d: string, prefix: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walkRefs(p, `${prefix}${n}/`);
      else if (readRef(folder, `${prefix}${n}`) === commit) refs.push(`${prefix}${n}`);
    }
  };
  walkRefs(join(folder, "refs"), "");
  let names: string[] = [];
  try {
    names = readdirSync(snapshot);
  } catch {
    /* empty */
  }
  const hasSafetensors = names.some((n) => n.endsWith(".safetensors"));
  const variants = onnxFilesIn(snapshot).map(variantName);
  const built = buildDirFor(repo, commit, env);
  const builtDir = isBuilt(built) ? built : null;
  return {
    repo,
    commit,
    refs: refs.sort(),
    dir: snapshot,
    variants,
    hasSafetensors,
    needsBuild: variants.length === 0 && hasSafetensors && !builtDir,
    builtDir,
    bytes: sizeOnDisk(snapshot) + (builtDir ? sizeOnDisk(builtDir) : 0),
  };
}
