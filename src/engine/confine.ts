/**
 * Confinement of the files a model directory points to. A model directory may name other files:
 * genai_config.json's decoder filename, ONNX external-data `location` entries inside .onnx files,
 * sharded safetensors index entries, Medusa head configs, tokenizer files. Each such reference is
 * confined like the directory itself:
 *  - lexically: a relative path that stays inside the directory (no `..` out of it, no absolute path);
 *  - really: after following symbolic links, inside the directory, inside the Hugging Face cache
 *    repository that holds it (snapshots link to `../../blobs/<sha>`), or inside one of the extra
 *    `roots` the caller allows (the MCP server passes its model roots).
 * A dangling link is refused (something could be created at its target later).
 *
 * `confineModelPath` is the one function every reader calls for such a path.
 */
import { existsSync, lstatSync, readdirSync, realpathSync } from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { ModelLoadError } from "../errors.js";

export function isInsideDir(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === "" || (!isAbsolute(rel) && rel !== ".." && !rel.startsWith(`..${sep}`));
}

function realOr(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

/** Directories a model directory's files may really live in (see the module comment). */
export function allowedRealDirs(modelDir: string, roots: readonly string[] = []): string[] {
  const real = realOr(modelDir);
  const out = [real, ...roots.map(realOr)];
  // Hugging Face cache: <cache>/models--org--name/snapshots/<rev>/... -> allow <cache>/models--org--name.
  for (const d of [resolve(modelDir), real]) {
    const parts = d.split(sep);
    const i = parts.lastIndexOf("snapshots");
    if (i > 0 && /^models--/.test(parts[i - 1] ?? "")) out.push(parts.slice(0, i).join(sep) || sep);
  }
  return [...new Set(out)];
}

export interface ConfineOptions {
  /** Extra directories the real path may lie in (the MCP server's model roots). */
  roots?: readonly string[];
  /** What points to the file, for errors, e.g. `genai_config.json "filename"`. */
  source?: string;
}

/**
 * Resolve `ref` (a path a file in `modelDir` names, relative to `relativeTo`, default `modelDir`)
 * and check that it stays inside the model directory. Returns the absolute lexical path.
 * Throws ModelLoadError naming the source and the fix.
 */
export function confineModelPath(modelDir: string, ref: string, opts: ConfineOptions & { relativeTo?: string } = {}): string {
  const dir = resolve(modelDir);
  const src = opts.source ?? "a file of the model directory";
  const fix = "Edit that file (references must be relative paths inside the model directory) or re-download the model.";
  if (typeof ref !== "string" || ref === "" || ref.includes("\0")) {
    throw new ModelLoadError(`${src} in ${dir} names an invalid path ${JSON.stringify(ref)}. ${fix}`);
  }
  const full = resolve(opts.relativeTo ?? dir, ref);
  if (isAbsolute(ref) || !isInsideDir(full, dir)) {
    throw new ModelLoadError(`${src} in ${dir} points to ${JSON.stringify(ref)}, outside the model directory. ${fix}`);
  }
  let isLink = false;
  try {
    isLink = lstatSync(full).isSymbolicLink();
  } catch {
    /* missing: the caller reports that */
  }
  if (isLink || existsSync(full)) {
    let real: string;
    try {
      real = realpathSync(full);
    } catch {
      throw new ModelLoadError(`${src} in ${dir} points to ${full}, a symbolic link whose target does not exist. Remove the link or restore its target.`);
    }
    const allowed = allowedRealDirs(dir, opts.roots);
    if (!allowed.some((a) => isInsideDir(real, a))) {
      throw new ModelLoadError(
        `${src} in ${dir} points to ${full}, a link to ${real} outside ` +
          `${opts.roots && opts.roots.length > 0 ? "the model roots" : "the model directory"}. ${fix}`,
      );
    }
  }
  return full;
}

/**
 * Check every entry of `dir` and its `onnx/` subfolder: links must resolve inside the allowed
 * directories and must not dangle. Throws ModelLoadError.
 */
export function assertDirEntriesConfined(dir: string, opts: ConfineOptions = {}): void {
  for (const sub of [dir, join(dir, "onnx")]) {
    let names: string[];
    try {
      names = readdirSync(sub);
    } catch {
      continue;
    }
    for (const n of names) {
      const p = join(sub, n);
      let link = false;
      try {
        link = lstatSync(p).isSymbolicLink();
      } catch {
        continue;
      }
      if (link) confineModelPath(dir, relative(dir, p), { ...opts, source: opts.source ?? `the entry ${basename(dirname(p)) === "onnx" ? "onnx/" : ""}${n}` });
    }
  }
}
