/**
 * Download one file into the Hugging Face cache: resumable, verified, atomic, safe under concurrency.
 *
 * Written here rather than with @huggingface/hub's downloadFileToCacheDir (which we still use for
 * the protocol: listFiles, modelInfo, fileDownloadInfo, getRepoFolderName) because that function
 * (2.17.x) restarts every download from byte 0, verifies no hash, reports no progress, lets two
 * processes write the same `.incomplete` file, names the snapshot after each file's last commit
 * instead of the revision's commit, and writes no refs/. Here:
 *  - bytes go to blobs/<etag>.incomplete, resumed with an HTTP Range request after a dropped
 *    connection (in the same run, up to `retries` times) or a killed process (next run);
 *  - the sha256 (LFS files) or git blob sha1 (small files) and the size are checked BEFORE the
 *    file is renamed to blobs/<etag>; a mismatch deletes the partial file and fails;
 *  - the snapshot entry is a relative symlink created under a temporary name and renamed into
 *    place, so a snapshot never holds a half file;
 *  - a lock file (blobs/<etag>.lock, O_EXCL, holding the pid) serializes writers of one blob
 *    across processes and within one; waiters reuse the finished blob; a dead holder's lock is taken over.
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, promises as fsp, readFileSync, rmSync, statSync } from "node:fs";
import { dirname, relative } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CancelledError } from "../errors.js";
import { HubError } from "./errors.js";

export interface ExpectedFile {
  /** Repo-relative path (for messages and the snapshot entry). */
  path: string;
  size: number;
  /** sha256 hex for LFS files; git blob sha1 hex otherwise. */
  oid: string;
  lfs: boolean;
}

export interface FetchFileOptions {
  url: string;
  headers?: Record<string, string>;
  fetch?: typeof fetch;
  /** Re-requests (with Range) after a dropped connection or a 5xx, per file. Default 5. */
  retries?: number;
  onBytes?: (delta: number) => void;
  signal?: AbortSignal;
  /** Message for 401/403 (gated repos). */
  authMessage: string;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Run `fn` holding `lockPath` (created with O_EXCL); waits while another live holder has it. */
export async function withFileLock<T>(lockPath: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  const token = `${process.pid} ${Math.random().toString(36).slice(2)}`;
  for (;;) {
    if (signal?.aborted) throw new CancelledError();
    try {
      await fsp.writeFile(lockPath, token, { flag: "wx" });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      let holder = "";
      try {
        holder = readFileSync(lockPath, "utf8");
      } catch {
        continue; // released between our attempt and the read
      }
      const pid = Number(holder.split(" ")[0]);
      if (holder && Number.isInteger(pid) && pid > 0 && !pidAlive(pid)) {
        rmSync(lockPath, { force: true }); // the holder died: take over (its partial file is resumed)
        continue;
      }
      await sleep(50);
    }
  }
  try {
    return await fn();
  } finally {
    try {
      if (readFileSync(lockPath, "utf8") === token) rmSync(lockPath, { force: true });
    } catch {
      /* already gone */
    }
  }
}

function newHasher(f: ExpectedFile): Hash {
  if (f.lfs) return createHash("sha256");
  const h = createHash("sha1");
  h.update(`blob ${f.size}\0`); // git's blob object header: the oid of a non-LFS file is sha1 of header + content
  return h;
}

async function hashExisting(path: string, h: Hash): Promise<void> {
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
}

/** Make `pointer` a relative symlink to `blob`, atomically (temp name + rename); copies where links are not allowed. */
export async function linkIntoSnapshot(blob: string, pointer: string): Promise<void> {
  mkdirSync(dirname(pointer), { recursive: true });
  const tmp = `${pointer}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    await fsp.symlink(relative(dirname(pointer), blob), tmp);
  } catch {
    await fsp.copyFile(blob, tmp);
  }
  await fsp.rename(tmp, pointer);
}

/**
 * Make sure blobs/<oid> holds the verified file; returns the number of bytes fetched over the network.
 */
export async function fetchBlob(blob: string, f: ExpectedFile, o: FetchFileOptions): Promise<number> {
  mkdirSync(dirname(blob), { recursive: true });
  if (existsSync(blob)) return 0;
  return withFileLock(`${blob}.lock`, async () => {
    if (existsSync(blob)) return 0; // another pull finished it while we waited
    const incomplete = `${blob}.incomplete`;
    let offset = existsSync(incomplete) ? statSync(incomplete).size : 0;
    if (offset > f.size) {
      rmSync(incomplete, { force: true });
      offset = 0;
    }
    let hasher = newHasher(f);
    if (offset > 0) await hashExisting(incomplete, hasher);
    const retries = o.retries ?? 5;
    let fetched = 0;
    let failures = 0;
    let lastError: unknown;
    while (offset < f.size || (f.size === 0 && !existsSync(incomplete))) {
      if (o.signal?.aborted) throw new CancelledError();
      if (failures > retries) {
        throw new HubError(
          "HUB_NETWORK",
          `Downloading ${f.path} failed ${failures} times (last: ${(lastError as Error)?.message ?? lastError}); ` +
            `${offset} of ${f.size} bytes are kept in ${incomplete} and the next pull resumes from there.`,
          { cause: lastError },
        );
      }
      let res: Response;
      try {
        res = await (o.fetch ?? fetch)(o.url, {
          headers: { ...o.headers, ...(offset > 0 ? { Range: `bytes=${offset}-` } : {}), "Accept-Encoding": "identity" },
          signal: o.signal,
          redirect: "follow",
        });
      } catch (err) {
        if (o.signal?.aborted) throw new CancelledError();
        lastError = err;
        failures++;
        await sleep(Math.min(2000, 100 * 2 ** failures));
        continue;
      }
      if (res.status === 401 || res.status === 403) {
        await res.body?.cancel();
        throw new HubError("HUB_AUTH", o.authMessage);
      }
      if (res.status === 416 && offset === f.size) {
        await res.body?.cancel();
        break;
      }
      if (res.status >= 500 || res.status === 429) {
        await res.body?.cancel();
        lastError = new Error(`HTTP ${res.status}`);
        failures++;
        await sleep(Math.min(2000, 100 * 2 ** failures));
        continue;
      }
      if (res.status !== 200 && res.status !== 206) {
        await res.body?.cancel();
        throw new HubError("HUB_NOT_FOUND", `Downloading ${f.path} answered HTTP ${res.status} (${o.url}).`);
      }
      if (res.status === 200 && offset > 0) {
        // The server ignored the Range request: start over.
        rmSync(incomplete, { force: true });
        offset = 0;
        hasher = newHasher(f);
      }
      const fh = await fsp.open(incomplete, offset > 0 ? "a" : "w");
      try {
        if (!res.body) throw new Error("empty response body");
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          if (offset + chunk.length > f.size) {
            throw new HubError("HUB_INTEGRITY", `${f.path}: the server sent more than the ${f.size} bytes the Hub lists; nothing was kept.`);
          }
          await fh.write(chunk);
          hasher.update(chunk);
          offset += chunk.length;
          fetched += chunk.length;
          o.onBytes?.(chunk.length);
        }
      } catch (err) {
        await fh.close();
        if (err instanceof HubError) {
          rmSync(incomplete, { force: true });
          throw err;
        }
        if (o.signal?.aborted) throw new CancelledError();
        lastError = err;
        failures++;
        await sleep(Math.min(2000, 100 * 2 ** failures));
        continue; // resume from `offset` with a Range request
      }
      await fh.sync();
      await fh.close();
      if (offset < f.size) {
        lastError = new Error(`connection closed after ${offset} of ${f.size} bytes`);
        failures++;
        continue;
      }
    }
    const digest = hasher.digest("hex");
    if (digest !== f.oid) {
      rmSync(incomplete, { force: true });
      throw new HubError(
        "HUB_INTEGRITY",
        `${f.path} failed the integrity check: its ${f.lfs ? "sha256" : "git sha1"} is ${digest}, the Hub lists ${f.oid}. ` +
          `The download was deleted and nothing was added to the cache; run the pull again (if it repeats, the mirror at HF_ENDPOINT serves a different file).`,
      );
    }
    await fsp.rename(incomplete, blob);
    return fetched;
  }, o.signal);
}

