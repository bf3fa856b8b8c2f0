/**
 * Model roots: the only directories the MCP server reads models from or writes built models to.
 *
 * Every model path a client sends is resolved to its real path (symlinks followed) and must lie
 * inside one of the configured roots; anything else is refused with an error that names the roots
 * and says how to add one. Roots come from `--model-root DIR` (repeatable) or
 * `SPEC_DECODE_MODEL_ROOTS` (path-list, `:` separated on POSIX, `;` on Windows); when neither is
 * given, the defaults are the user's model directory (`$SPEC_DECODE_CACHE` or
 * `~/.cache/speculative-decoding`, where the demo model lives) and the Hugging Face hub cache
 * (`$HF_HUB_CACHE`, `$HF_HOME/hub` or `~/.cache/huggingface/hub`).
 */
import { existsSync, lstatSync, readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import { assertDirEntriesConfined } from "../engine/confine.js";
import { homedir } from "node:os";
import { delimiter, isAbsolute, join, relative, resolve, sep } from "node:path";
import { InvalidOptionError, ModelLoadError } from "../errors.js";

export const MODEL_ROOTS_ENV = "SPEC_DECODE_MODEL_ROOTS";

/** The user's model directory (also where `spec-decode demo` builds its model). */
export function userModelDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.SPEC_DECODE_CACHE ?? join(homedir(), ".cache", "speculative-decoding"));
}

/** The Hugging Face hub cache directory, as huggingface_hub computes it. */
export function huggingFaceCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return resolve(env.HF_HUB_CACHE);
  if (env.HF_HOME) return resolve(env.HF_HOME, "hub");
  return resolve(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "huggingface", "hub");
}

export function defaultModelRoots(env: NodeJS.ProcessEnv = process.env): string[] {
  return [userModelDir(env), huggingFaceCacheDir(env)];
}

/**
 * The roots to use: `--model-root` flags if any, else `SPEC_DECODE_MODEL_ROOTS`, else the defaults.
 * Explicit roots replace the defaults (list them too to keep them).
 */
export function configuredModelRoots(flags: string[] = [], env: NodeJS.ProcessEnv = process.env): string[] {
  if (flags.length > 0) return flags;
  const fromEnv = (env[MODEL_ROOTS_ENV] ?? "").split(delimiter).map((s) => s.trim()).filter(Boolean);
  return fromEnv.length > 0 ? fromEnv : defaultModelRoots(env);
}

function realOrResolved(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel) && rel.split(sep)[0] !== "..");
}

export class ModelRoots {
  /** Configured roots, absolute, real paths where they exist. */
  readonly roots: string[];

  constructor(roots: string[]) {
    if (roots.length === 0) throw new InvalidOptionError("At least one model root is needed (--model-root DIR).");
    this.roots = [...new Set(roots.map((r) => realOrResolved(resolve(r))))];
  }

  /** Roots that exist on disk. */
  existing(): string[] {
    return this.roots.filter((r) => existsSync(r));
  }

  /** True when `path`'s real path lies inside a root. */
  contains(path: string): boolean {
    const real = realOrResolved(path);
    return this.roots.some((r) => isInside(real, r));
  }

  private howToAdd(): string {
    return (
      `Allowed model roots: ${this.roots.join(", ")}. To use a model elsewhere, restart the server with ` +
      `--model-root <dir> (repeatable) or ${MODEL_ROOTS_ENV}=<dir>${delimiter}<dir> (explicit roots replace the defaults), ` +
      `or move the model under one of the roots.`
    );
  }

  /**
   * Resolve a model argument to a real directory (or file) inside a root:
   *  - an absolute path (must lie inside a root after following symlinks);
   *  - a path relative to a root (tried in order);
   *  - a Hugging Face repo id `org/name` found in a hub cache root (`models--org--name/snapshots/<rev>`).
   * `kind` names the argument in errors ("model", "draft", "heads").
   */
  resolve(arg: string, kind = "model", opts: { mustExist?: boolean; directory?: boolean } = {}): string {
    const mustExist = opts.mustExist ?? true;
    if (typeof arg !== "string" || arg.trim() === "") throw new InvalidOptionError(`${kind} is empty: give a model directory path.`);
    if (arg.includes("\0")) throw new InvalidOptionError(`${kind} contains a NUL byte.`);
    const candidates: string[] = [];
    if (isAbsolute(arg)) candidates.push(resolve(arg));
    else {
      for (const r of this.roots) candidates.push(resolve(r, arg));
      const hub = this.hubSnapshot(arg);
      if (hub) candidates.push(hub);
    }
    let outside: string | undefined;
    for (const c of candidates) {
      if (!existsSync(c)) continue;
      const real = realpathSync(c);
      if (!this.roots.some((r) => isInside(real, r))) {
        outside ??= real;
        continue;
      }
      if (opts.directory && !statSync(real).isDirectory()) {
        throw new InvalidOptionError(`${kind} ${real} is a file; give the model's directory (the one holding config.json).`);
      }
      this.assertContentsInside(real, kind);
      return real;
    }
    if (outside) {
      throw new InvalidOptionError(`${kind} "${arg}" resolves to ${outside}, which is outside the model roots. ${this.howToAdd()}`);
    }
    if (!mustExist) {
      // For outputs that do not exist yet: the lexical path must still be inside a root.
      const target = isAbsolute(arg) ? resolve(arg) : resolve(this.roots[0]!, arg);
      let parent = target;
      while (!existsSync(parent)) {
        if (isLink(parent)) throw new InvalidOptionError(`${kind} "${arg}" goes through ${parent}, a symbolic link whose target does not exist. Remove the link.`);
        parent = resolve(parent, "..");
      }
      const realParent = realpathSync(parent);
      const full = resolve(realParent, relative(parent, target));
      if (!this.roots.some((r) => isInside(full, r))) {
        throw new InvalidOptionError(`${kind} "${arg}" is outside the model roots. ${this.howToAdd()}`);
      }
      return full;
    }
    throw new ModelLoadError(
      `${kind} "${arg}" was not found${isAbsolute(arg) ? "" : " under any model root"}. Call list_models to see the models ` +
        `the server can use, or give an absolute path. ${this.howToAdd()}`,
    );
  }

  /**
   * The files a loader will open (the directory's entries and its onnx/ subfolder) must not be
   * symlinks that leave the roots (Hugging Face cache snapshots link into the same cache's blobs)
   * or dangle (a write through a dangling link would create its target anywhere).
   */
  private assertContentsInside(real: string, kind: string): void {
    if (!statSync(real).isDirectory()) return;
    try {
      assertDirEntriesConfined(real, { roots: this.roots });
    } catch (err) {
      throw new InvalidOptionError(`${kind} ${real}: ${(err as Error).message} ${this.howToAdd()}`);
    }
  }

  /** `org/name` -> the snapshot directory in a hub cache root (refs/main first, else the newest). */
  private hubSnapshot(arg: string): string | undefined {
    if (!/^[\w.-]+\/[\w.-]+$/.test(arg)) return undefined;
    const folder = `models--${arg.replace("/", "--")}`;
    for (const r of this.roots) {
      const repo = join(r, folder);
      if (!existsSync(join(repo, "snapshots"))) continue;
      try {
        const ref = readFileSync(join(repo, "refs", "main"), "utf8").trim();
        if (ref && existsSync(join(repo, "snapshots", ref))) return join(repo, "snapshots", ref);
      } catch {
        /* no refs/main: take the newest snapshot */
      }
      const snaps = readdirSync(join(repo, "snapshots"))
        .map((s) => join(repo, "snapshots", s))
        .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
      if (snaps[0]) return snaps[0];
    }
    return undefined;
  }
}
