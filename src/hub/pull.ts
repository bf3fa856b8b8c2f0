/**
 * `pullModel`: fetch what one variant of a Hub repo needs into the Hugging Face cache (and, for a
 * safetensors-only repo, build ONNX into our own cache). The Hub protocol goes through
 * @huggingface/hub (modelInfo for the revision's commit, listFiles for sizes and hashes,
 * fileDownloadInfo for each file's URL, size and X-Linked-Etag); the bytes through download.ts.
 */
import { fileDownloadInfo, HubApiError, listFiles, modelInfo } from "@huggingface/hub";
import { existsSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { errorMessage } from "../errors.js";
import { huggingFaceCacheDir, repoFolder, snapshotDir, writeRef } from "./cache.js";
import { assertDiskRoom, formatBytes } from "./disk.js";
import { fetchBlob, linkIntoSnapshot } from "./download.js";
import { HubError } from "./errors.js";
import { isCommitHash } from "./repo-id.js";
import { selectFiles, type FilePlan, type RepoFile } from "./select.js";

export const DEFAULT_ENDPOINT = "https://huggingface.co";
/** Bound on the repo listing we read (a model repo has tens of files; a dataset-sized repo is refused). */
export const MAX_LISTED_FILES = 20000;
/** Repo-relative paths we accept: relative, forward slashes, no control characters. */
const SAFE_PATH = /^(?!\/)[^\\\0-\x1f]{1,1000}$/;

export interface HubProgress {
  phase: "download" | "build";
  /** Repo-relative file being fetched (download) or a build message. */
  file: string;
  /** Bytes done / total over the whole pull (download). */
  bytes: number;
  total: number;
}

export interface HubOptions {
  /** HF_ENDPOINT (default https://huggingface.co). */
  endpoint?: string;
  /** HF_TOKEN (default: $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN, or the token file `hf auth login` writes). */
  token?: string;
  /** Hub cache dir (default: $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** HF_HUB_OFFLINE=1: never touch the network. */
  offline?: boolean;
  /** Environment to read the defaults from (default process.env). */
  env?: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
  /** Per-file re-requests after a dropped connection. */
  retries?: number;
  onProgress?: (p: HubProgress) => void;
  /** One-line notes (what will be written, build steps). */
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface ResolvedHubOptions {
  endpoint: string;
  token?: string;
  cacheDir: string;
  offline: boolean;
  env: NodeJS.ProcessEnv;
}

function truthy(v: string | undefined): boolean {
  return v !== undefined && ["1", "true", "yes", "on"].includes(v.toLowerCase());
}

export function hubSettings(o: HubOptions = {}): ResolvedHubOptions {
  const env = o.env ?? process.env;
  let token = o.token ?? env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN;
  if (!token) {
    const file = env.HF_TOKEN_PATH ?? join(env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "huggingface"), "token");
    try {
      if (existsSync(file)) token = readFileSync(file, "utf8").trim() || undefined;
    } catch {
      /* unreadable token file: go without */
    }
  }
  return {
    endpoint: (o.endpoint ?? env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, ""),
    token,
    cacheDir: o.cacheDir ?? huggingFaceCacheDir(env),
    offline: o.offline ?? truthy(env.HF_HUB_OFFLINE),
    env,
  };
}

export function authMessage(repo: string, s: ResolvedHubOptions, status: number): string {
  return (
    `${repo} refused access (HTTP ${status}): it is gated or private. ` +
    (s.token
      ? `The token in HF_TOKEN has no access to it: open ${s.endpoint}/${repo}, accept the license or request access with the account that owns the token, and try again.`
      : `Open ${s.endpoint}/${repo} and accept its license (or request access), create a read token at ${s.endpoint}/settings/tokens, ` +
        `then set it: export HF_TOKEN=hf_... (or run \`hf auth login\`).`)
  );
}

/** Turn a library/HTTP failure into a HubError that names the fix. */
export function hubFailure(err: unknown, repo: string, s: ResolvedHubOptions, what: string): HubError {
  if (err instanceof HubError) return err;
  if (err instanceof HubApiError) {
    if (err.statusCode === 401 || err.statusCode === 403) return new HubError("HUB_AUTH", authMessage(repo, s, err.statusCode), { cause: err });
    if (err.statusCode === 404) {
      return new HubError(
        "HUB_NOT_FOUND",
        `${what}: not found on ${s.endpoint} (HTTP 404). Check the repo id and revision (a private repo also answers 404 without a token: set HF_TOKEN).`,
        { cause: err },
      );
    }
    return new HubError("HUB_NETWORK", `${what}: the Hub answered HTTP ${err.statusCode} (${err.message}). Try again later.`, { cause: err });
  }
  if (err instanceof TypeError && /access token/i.test(err.message)) {
    return new HubError("HUB_AUTH", `HF_TOKEN is not a Hugging Face token (they start with "hf_"). Create one at ${s.endpoint}/settings/tokens.`, { cause: err });
  }
  return new HubError(
    "HUB_NETWORK",
    `${what}: could not reach ${s.endpoint} (${errorMessage(err)}). Check the connection or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only the cache.`,
    { cause: err },
  );
}

export interface PullRequest {
  repo: string;
  revision?: string;
  variant?: string;
  /** "heads": Medusa heads files instead of a decoder. */
  kind?: "model" | "heads";
}

export interface PullResult {
  repo: string;
  revision: string;
  commit: string;
  /** The snapshot directory in the HF cache. */
  snapshot: string;
  plan: FilePlan;
  /** Bytes fetched over the network in this call. */
  downloadedBytes: number;
  /** Bytes of the files the variant needs (already cached ones included). */
  totalBytes: number;
}

/** Download (or verify present) what `req` needs. Always asks the Hub for the revision's current commit. */
export async function pullSnapshot(req: PullRequest, o: HubOptions = {}): Promise<PullResult> {
  const s = hubSettings(o);
  const revision = req.revision ?? "main";
  if (s.offline) {
    throw new HubError("HUB_OFFLINE", `HF_HUB_OFFLINE is set, so ${req.repo} cannot be downloaded. Unset HF_HUB_OFFLINE to pull it.`);
  }
  const common = { hubUrl: s.endpoint, accessToken: s.token, fetch: o.fetch };
  let commit: string;
  try {
    const info = await modelInfo({ ...common, name: req.repo, revision, additionalFields: ["sha"] });
    commit = info.sha;
  } catch (err) {
    throw hubFailure(err, req.repo, s, `${req.repo}@${revision}`);
  }
  if (!isCommitHash(commit ?? "")) throw new HubError("HUB_NETWORK", `${s.endpoint} did not return a commit for ${req.repo}@${revision}.`);

  const listing: RepoFile[] = [];
  try {
    for await (const e of listFiles({ ...common, repo: { type: "model", name: req.repo }, revision: commit, recursive: true })) {
      if (e.type !== "file") continue;
      if (listing.length >= MAX_LISTED_FILES) throw new HubError("HUB_NOT_FOUND", `${req.repo} lists more than ${MAX_LISTED_FILES} files; it is not a model repository.`);
      const oid = e.lfs?.oid ?? e.oid;
      if (!oid) continue;
      // Paths and hashes become file names in the cache: refuse anything that could leave it.
      if (!SAFE_PATH.test(e.path) || e.path.split("/").some((seg) => seg === "." || seg === "..")) {
        throw new HubError("HUB_INTEGRITY", `${s.endpoint} listed an unsafe path "${e.path}" in ${req.repo}; nothing was downloaded.`);
      }
      if (!/^[0-9a-f]{40}$|^[0-9a-f]{64}$/.test(oid)) {
        throw new HubError("HUB_INTEGRITY", `${s.endpoint} listed "${e.path}" with a hash that is not sha1/sha256 hex ("${oid}"); nothing was downloaded.`);
      }
      listing.push({ path: e.path, size: e.lfs?.size ?? e.size, oid, lfs: e.lfs !== undefined });
    }
  } catch (err) {
    throw hubFailure(err, req.repo, s, `listing ${req.repo}@${revision}`);
  }
  const plan = selectFiles(req.repo, listing, { variant: req.variant, kind: req.kind });

  const folder = repoFolder(s.cacheDir, req.repo);
  const snapshot = snapshotDir(folder, commit);
  const blobOf = (f: RepoFile) => join(folder, "blobs", f.oid);
  const totalBytes = plan.files.reduce((a, f) => a + f.size, 0);
  const partial = (f: RepoFile) => {
    try {
      return Math.min(f.size, statSync(`${blobOf(f)}.incomplete`).size);
    } catch {
      return 0;
    }
  };
  const missing = plan.files.filter((f) => !existsSync(blobOf(f)));
  const toWrite = missing.reduce((a, f) => a + f.size - partial(f), 0);
  if (toWrite > 0) {
    o.log?.(
      `${req.repo}@${revision} (${commit.slice(0, 10)}): ${missing.length} of ${plan.files.length} files to download, ` +
        `${formatBytes(toWrite)} to write under ${s.cacheDir}` + (plan.modelFile ? ` (${plan.modelFile})` : plan.kind === "safetensors" ? " (safetensors; an ONNX build follows)" : ""),
    );
    assertDiskRoom(s.cacheDir, toWrite, `download of ${req.repo}`, s.env);
  }

  let done = totalBytes - missing.reduce((a, f) => a + f.size - partial(f), 0);
  let downloadedBytes = 0;
  for (const f of plan.files) {
    const blob = blobOf(f);
    if (!existsSync(blob)) {
      const what = `${req.repo}/${f.path}`;
      let info;
      try {
        info = await fileDownloadInfo({ ...common, repo: { type: "model", name: req.repo }, path: f.path, revision: commit });
      } catch (err) {
        throw hubFailure(err, req.repo, s, what);
      }
      if (!info) throw new HubError("HUB_NOT_FOUND", `${what} is listed but the Hub does not serve it (404).`);
      const etag = info.etag.replace(/^W\//, "").replace(/"/g, "");
      // The etag of the final (possibly CDN) response is only comparable when it is a content hash.
      const etagIsHash = /^[0-9a-f]{40}$|^[0-9a-f]{64}$/.test(etag);
      if (info.size !== f.size || (etagIsHash && etag !== f.oid && !info.xet)) {
        throw new HubError(
          "HUB_INTEGRITY",
          `${what}: the Hub lists size ${f.size} and hash ${f.oid}, but serves size ${info.size} and etag ${etag}. Nothing was downloaded; try again later (or check the mirror at HF_ENDPOINT).`,
        );
      }
      const sameOrigin = new URL(info.url).origin === new URL(s.endpoint).origin;
      o.onProgress?.({ phase: "download", file: f.path, bytes: done, total: totalBytes });
      const got = await fetchBlob(blob, f, {
        url: info.url,
        headers: s.token && sameOrigin ? { Authorization: `Bearer ${s.token}` } : {},
        fetch: o.fetch,
        retries: o.retries,
        signal: o.signal,
        authMessage: authMessage(req.repo, s, 403),
        onBytes: (n) => {
          done += n;
          o.onProgress?.({ phase: "download", file: f.path, bytes: done, total: totalBytes });
        },
      });
      downloadedBytes += got;
    }
    await linkIntoSnapshot(blob, join(snapshot, ...f.path.split("/")));
  }
  writeRef(folder, revision, commit);
  o.onProgress?.({ phase: "download", file: "", bytes: totalBytes, total: totalBytes });
  return { repo: req.repo, revision, commit, snapshot, plan, downloadedBytes, totalBytes };
}

