/**
 * Crash-safe writes for model files (build, train-medusa, fixtures): the bytes go to a temporary
 * file in the same directory (created exclusively, never through a link), which is flushed and
 * renamed over the target only once complete. A `kill -9` at any point leaves either the previous
 * good file or the new complete one, never a truncated one (plus, at worst, a stray
 * `.<name>.tmp-*` file that the next write of the same target removes).
 *
 * Targets are checked first: the parent directory is resolved to its real path, and a target that
 * is a symbolic link (dangling or not) is refused, so that a link planted in a model directory
 * cannot redirect a write elsewhere. With `base`, the real parent must also lie inside `base`.
 *
 * Hand-written: the npm packages for this (write-file-atomic) are callback/stream based and do not
 * refuse links or support the positional writes the ONNX and safetensors writers do.
 */
import { closeSync, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, realpathSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { SpecDecodeError } from "../errors.js";

/** A write that would follow a link or leave its directory. */
export class UnsafeWriteError extends SpecDecodeError {
  constructor(message: string) {
    super("UNSAFE_WRITE", message);
  }
}

function inside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

/**
 * Check a write target and return its path under the parent's real path. Creates the parent
 * directories when missing (`mkdir -p`, which does not follow a dangling link: it fails).
 */
export function safeWriteTarget(path: string, opts: { base?: string } = {}): string {
  const abs = resolve(path);
  const parent = dirname(abs);
  mkdirSync(parent, { recursive: true });
  const realParent = realpathSync(parent);
  if (opts.base !== undefined) {
    const realBase = realpathSync(resolve(opts.base));
    if (!inside(realParent, realBase)) {
      throw new UnsafeWriteError(`Refusing to write ${abs}: its directory resolves to ${realParent}, outside ${realBase} (a symbolic link?). Remove the link.`);
    }
  }
  const target = join(realParent, basename(abs));
  let isLink = false;
  try {
    isLink = lstatSync(target).isSymbolicLink();
  } catch {
    /* does not exist yet: fine */
  }
  if (isLink) throw new UnsafeWriteError(`Refusing to write ${target}: it is a symbolic link. Remove it (or replace it with a regular file) and retry.`);
  return target;
}

export interface AtomicFile {
  /** Open descriptor of the temporary file (write with writeSync at positions). */
  fd: number;
  /** The final path. */
  path: string;
  /** The temporary path (same directory). */
  tmpPath: string;
  /** Flush, close and rename over the target. */
  commit(): void;
  /** Close and delete the temporary file. */
  abort(): void;
}

const TMP_MARK = ".tmp-";

/** Remove leftovers of interrupted writes of `target` (temporary files of dead processes). */
function removeStaleTemps(target: string): void {
  const dir = dirname(target);
  const prefix = `.${basename(target)}${TMP_MARK}`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    if (!n.startsWith(prefix)) continue;
    const pid = Number(n.slice(prefix.length).split("-")[0]);
    if (Number.isInteger(pid) && pid !== process.pid && isAlive(pid)) continue;
    if (pid === process.pid) continue;
    rmSync(join(dir, n), { force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

let counter = 0;

/** A temporary file beside `path` that becomes `path` on commit(). */
export function openAtomic(path: string, opts: { base?: string } = {}): AtomicFile {
  const target = safeWriteTarget(path, opts);
  removeStaleTemps(target);
  const tmpPath = join(dirname(target), `.${basename(target)}${TMP_MARK}${process.pid}-${++counter}`);
  const fd = openSync(tmpPath, "wx", 0o644);
  let open = true;
  return {
    fd,
    path: target,
    tmpPath,
    commit() {
      if (!open) throw new Error(`${tmpPath} was already committed or aborted.`);
      open = false;
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      // The target may have become a link since the check: rename replaces the link itself, never its target.
      renameSync(tmpPath, target);
    },
    abort() {
      if (open) {
        open = false;
        closeSync(fd);
      }
      rmSync(tmpPath, { force: true });
    },
  };
}

/** Write all of `data` at `position`. */
export function writeAllAt(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.byteLength) done += writeSync(fd, data, done, Math.min(data.byteLength - done, 1 << 30), position + done);
}

/** Write a whole file atomically (see openAtomic). */
export function atomicWriteFileSync(path: string, data: string | Uint8Array, opts: { base?: string } = {}): string {
  const f = openAtomic(path, opts);
  try {
    writeAllAt(f.fd, typeof data === "string" ? Buffer.from(data, "utf8") : data, 0);
    f.commit();
  } catch (err) {
    f.abort();
    throw err;
  }
  return f.path;
}
