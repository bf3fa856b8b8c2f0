/** Disk honesty: say what a pull or build will write, and refuse before writing when it cannot fit. */
import { existsSync, statfsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { HubError } from "./errors.js";

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}

/** Free bytes for an unprivileged user on the file system that holds `path` (or its nearest existing parent). */
export function freeBytes(path: string): number {
  let p = resolve(path);
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  const s = statfsSync(p);
  return Number(s.bavail) * Number(s.bsize);
}

/** Headroom kept free beyond what is written (file systems misbehave when full). */
export const DISK_MARGIN_BYTES = 64 * 1024 * 1024;

/**
 * Throw DISK_SPACE when `bytes` (+ margin) do not fit under `path`. `what` says what would be
 * written ("download of org/name (3 files)"). SPEC_DECODE_FREE_BYTES overrides the measured free
 * space (tests, and quota-limited file systems that statfs cannot see).
 */
export function assertDiskRoom(path: string, bytes: number, what: string, env: NodeJS.ProcessEnv = process.env): void {
  const free = env.SPEC_DECODE_FREE_BYTES !== undefined ? Number(env.SPEC_DECODE_FREE_BYTES) : freeBytes(path);
  if (bytes + DISK_MARGIN_BYTES > free) {
    throw new HubError(
      "DISK_SPACE",
      `Not enough disk space for the ${what}: it will write ${formatBytes(bytes)} under ${path}, and only ${formatBytes(Math.max(0, free))} ` +
        `is free (${formatBytes(DISK_MARGIN_BYTES)} is kept as headroom). Free some space, or point HF_HUB_CACHE / HF_HOME ` +
        `(downloads) or SPEC_DECODE_CACHE (builds) at a larger disk.`,
    );
  }
}
