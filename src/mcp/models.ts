/** Finding and describing model directories inside the model roots (for list_models / model_info). */
import { existsSync, readdirSync, statSync, type Dirent } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { inspectModelDir } from "../engine/model-dir.js";
import { checkOnnxFile } from "../engine/onnx-file.js";
import type { ModelStore } from "../engine/model-store.js";
import { errorMessage } from "../errors.js";
import { describeSnapshot, type CachedSnapshot } from "../hub/cache.js";
import type { ModelRoots } from "./roots.js";

export interface FoundModel {
  /** Absolute path (pass this, or `name`, as `model`). */
  dir: string;
  /** Path relative to its root, or the Hugging Face repo id for hub-cache snapshots. */
  name: string;
  root: string;
  /** "ready": loadable ONNX; "needs-build": safetensors only (see build_model); "invalid": see error. */
  status: "ready" | "needs-build" | "invalid";
  layout: string | null;
  architecture: string | null;
  vocabSize: number | null;
  maxContext: number | null;
  modelFile: string | null;
  /** Bytes of the main ONNX file and its external data. */
  bytes: number;
  earlyExitLayers: number[];
  hasTokenizer: boolean;
  hasSafetensors: boolean;
  loaded: boolean;
  error: string | null;
  /** Hugging Face cache snapshots: repo id, commit, refs, variants present, size on disk, whether a build is needed. */
  hub: CachedSnapshot | null;
}

const SKIP = new Set(["node_modules", ".git", "blobs", ".locks", "refs", "onnx"]);
const MAX_DEPTH = 5;
const MAX_DIRS = 20000;

function filesOf(dir: string): Dirent[] {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
}

function isModelDir(entries: Dirent[]): boolean {
  const names = new Set(entries.map((e) => e.name));
  return names.has("config.json") || names.has("genai_config.json");
}

/** HF hub cache snapshot dir -> "org/name". */
function hubName(root: string, dir: string): string | undefined {
  const rel = relative(root, dir).split(/[\\/]/);
  const m = /^models--(.+?)--(.+)$/.exec(rel[0] ?? "");
  if (m && rel[1] === "snapshots" && rel.length === 3) return `${m[1]}/${m[2]}`;
  return undefined;
}

export function onnxBytes(file: string): number {
  let total = 0;
  try {
    total += statSync(file).size;
    const base = basename(file);
    for (const f of readdirSync(dirname(file))) {
      if (f !== base && f.startsWith(base) && (f.endsWith("_data") || f.endsWith(".data"))) total += statSync(join(dirname(file), f)).size;
    }
  } catch {
    /* advisory */
  }
  return total;
}

export function earlyExitLayersIn(dir: string): number[] {
  const out: number[] = [];
  for (const e of filesOf(dir)) {
    const m = /^early_exit_(\d+)\.onnx$/.exec(e.name);
    if (m) out.push(Number(m[1]));
  }
  return out.sort((a, b) => a - b);
}

export function describeDir(dir: string, root: string, name: string, loadedDirs: Set<string>, roots: readonly string[] = [root]): FoundModel {
  const entries = filesOf(dir);
  const hasSafetensors = entries.some((e) => e.name.endsWith(".safetensors") || e.name === "model.safetensors.index.json");
  const base: FoundModel = {
    dir,
    name,
    root,
    status: "invalid",
    layout: null,
    architecture: null,
    vocabSize: null,
    maxContext: null,
    modelFile: null,
    bytes: 0,
    earlyExitLayers: [],
    hasTokenizer: entries.some((e) => e.name === "tokenizer.json"),
    hasSafetensors,
    loaded: loadedDirs.has(dir),
    error: null,
    hub: null,
  };
  try {
    const info = inspectModelDir(dir, { roots });
    // Cheap integrity check: a truncated graph or external data file is not "ready".
    checkOnnxFile(info.modelFile, info.dir, { roots });
    return {
      ...base,
      status: "ready",
      layout: info.layout,
      architecture: info.architecture,
      vocabSize: info.vocabSize ?? null,
      maxContext: info.maxContext ?? null,
      modelFile: info.modelFile,
      bytes: onnxBytes(info.modelFile),
      earlyExitLayers: earlyExitLayersIn(dirname(info.modelFile)),
    };
  } catch (err) {
    return { ...base, status: hasSafetensors ? "needs-build" : "invalid", error: errorMessage(err) };
  }
}

/** Walk the roots (bounded depth and size) for directories holding config.json / genai_config.json. */
export async function findModels(roots: ModelRoots, store: ModelStore, opts: { root?: string } = {}): Promise<{ models: FoundModel[]; truncated: boolean }> {
  const loadedDirs = new Set((await store.usage()).models.map((m) => m.dir));
  const models: FoundModel[] = [];
  let visited = 0;
  let truncated = false;
  const scanRoots = opts.root ? [roots.resolve(opts.root, "root", { directory: true })] : roots.existing();
  for (const root of scanRoots) {
    const realRoot = roots.roots.find((r) => root === r || root.startsWith(r + "/")) ?? root;
    const walk = (dir: string, depth: number) => {
      if (visited++ > MAX_DIRS) {
        truncated = true;
        return;
      }
      const entries = filesOf(dir);
      if (isModelDir(entries)) {
        const name = hubName(realRoot, dir) ?? (relative(realRoot, dir) || basename(dir));
        const found = describeDir(dir, realRoot, name, loadedDirs, roots.roots);
        found.hub = hubName(realRoot, dir) ? (describeSnapshot(realRoot, dir) ?? null) : null;
        models.push(found);
      }
      if (depth >= MAX_DEPTH) return;
      for (const e of entries) {
        if (!e.isDirectory() || e.name.startsWith(".") || SKIP.has(e.name)) continue;
        walk(join(dir, e.name), depth + 1);
      }
    };
    if (existsSync(root)) walk(root, 0);
  }
  models.sort((a, b) => a.name.localeCompare(b.name));
  return { models, truncated };
}
