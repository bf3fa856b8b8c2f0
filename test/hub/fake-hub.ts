/**
 * A Hugging Face Hub look-alike on 127.0.0.1 (node:http) for tests, serving files the test made:
 *   GET /api/models/{repo}/revision/{rev}     model info with `sha` (the commit)
 *   GET /api/models/{repo}/tree/{rev}[/path]  recursive listing with LFS oids and sizes (paginated)
 *   GET /{repo}/resolve/{rev}/{path}          small files: 200 + ETag (git sha1) + X-Repo-Commit;
 *                                             LFS files: 302 to /cdn/{sha256} with X-Linked-Etag,
 *                                             X-Linked-Size, X-Repo-Commit
 *   GET /cdn/{sha256}                          the bytes, with Range support
 * Knobs: gated repos (Bearer token required), dropping a connection mid-file, serving corrupted
 * bytes for one file, and a request log to assert on (Range headers, which files were fetched).
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { readdirSync, readFileSync, statSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";

interface HubFile {
  content: Buffer;
  lfs: boolean;
  sha256: string;
  gitSha1: string;
}

interface Repo {
  commit: string;
  refs: Map<string, string>;
  files: Map<string, HubFile>;
  gatedToken?: string;
}

export interface LoggedRequest {
  method: string;
  url: string;
  range?: string;
  auth?: string;
}

const LFS_EXT = /\.(onnx|onnx_data|onnx\.data|safetensors|bin|pt)$/;

function listDir(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith(".")) continue;
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listDir(join(dir, e.name), rel));
    else if (statSync(join(dir, e.name)).isFile()) out.push(rel);
  }
  return out;
}

export class FakeHub {
  private server?: Server;
  readonly repos = new Map<string, Repo>();
  readonly log: LoggedRequest[] = [];
  /** Close the connection after this many bytes of the file, `times` times. */
  drop?: { path: string; afterBytes: number; times: number };
  /** Serve these bytes instead of the real ones for this path (the listing keeps the real hash). */
  corrupt?: { path: string; bytes: Buffer };
  /** Delay each CDN chunk (ms), to overlap concurrent pulls. */
  chunkDelayMs = 0;
  url = "";

  /** Publish the files of `dir` (as the Hub would store them) as `repo` at a fresh commit. */
  addRepo(repo: string, dir: string, opts: { include?: (path: string) => boolean; gatedToken?: string } = {}): string {
    const files = new Map<string, HubFile>();
    for (const path of listDir(dir)) {
      if (opts.include && !opts.include(path)) continue;
      const content = readFileSync(join(dir, path));
      files.set(path, {
        content,
        lfs: LFS_EXT.test(path),
        sha256: createHash("sha256").update(content).digest("hex"),
        gitSha1: createHash("sha1").update(`blob ${content.length}\0`).update(content).digest("hex"),
      });
    }
    const commit = createHash("sha1").update(`${repo}${Date.now()}${Math.random()}`).digest("hex");
    this.repos.set(repo, { commit, refs: new Map([["main", commit]]), files, gatedToken: opts.gatedToken });
    return commit;
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", () => r()));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()) ?? r());
  }

  requests(pattern: RegExp): LoggedRequest[] {
    return this.log.filter((r) => pattern.test(r.url));
  }

  private commitOf(repo: Repo, rev: string): string | undefined {
    return rev === repo.commit || rev === "HEAD" ? repo.commit : repo.refs.get(rev);
  }

  private json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
    res.writeHead(status, { "Content-Type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.url);
    this.log.push({ method: req.method ?? "GET", url: url.pathname, range: req.headers.range, auth: req.headers.authorization });
    const path = decodeURIComponent(url.pathname);
    let m: RegExpExecArray | null;

    if ((m = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(path))) {
      const repo = this.repos.get(m[1]!);
      const commit = repo && this.commitOf(repo, m[2]!);
      if (!repo || !commit) return this.json(res, 404, { error: "Repository not found" }, { "X-Error-Code": "RepoNotFound" });
      return this.json(res, 200, {
        _id: m[1],
        id: m[1],
        sha: commit,
        private: false,
        gated: repo.gatedToken ? "manual" : false,
        downloads: 0,
        likes: 0,
        lastModified: new Date().toISOString(),
        pipeline_tag: "text-generation",
        siblings: [...repo.files.keys()].map((rfilename) => ({ rfilename })),
      });
    }

    if ((m = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)(?:\/(.*))?$/.exec(path))) {
      const repo = this.repos.get(m[1]!);
      const commit = repo && this.commitOf(repo, m[2]!);
      if (!repo || !commit) return this.json(res, 404, { error: "Repository not found" });
      const under = m[3] ? `${m[3]}/` : "";
      const entries = [...repo.files.entries()]
        .filter(([p]) => p.startsWith(under))
        .map(([p, f]) => ({
          type: "file",
          oid: f.lfs ? createHash("sha1").update(`pointer ${f.sha256}`).digest("hex") : f.gitSha1,
          size: f.content.length,
          path: p,
          ...(f.lfs ? { lfs: { oid: f.sha256, size: f.content.length, pointerSize: 134 } } : {}),
        }));
      // Paginate like the Hub (Link: <next>; rel="next") so the client's paging is exercised.
      const page = Number(url.searchParams.get("cursor") ?? "0");
      const size = 3;
      const next = page + size < entries.length ? `${this.url}${url.pathname}?recursive=true&expand=false&cursor=${page + size}` : undefined;
      return this.json(res, 200, entries.slice(page, page + size), next ? { Link: `<${next}>; rel="next"` } : {});
    }

    if ((m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path))) {
      const repo = this.repos.get(m[1]!);
      const commit = repo && this.commitOf(repo, m[2]!);
      if (!repo || !commit) return this.json(res, 404, { error: "Repository not found" }, { "X-Error-Code": "RepoNotFound" });
      if (repo.gatedToken && req.headers.authorization !== `Bearer ${repo.gatedToken}`) {
        return this.json(res, 401, { error: `Access to model ${m[1]} is restricted. You must have access to it and be authenticated to access it.` }, { "X-Error-Code": "GatedRepo" });
      }
      const f = repo.files.get(m[3]!);
      if (!f) return this.json(res, 404, { error: "Entry not found" }, { "X-Error-Code": "EntryNotFound" });
      if (f.lfs) {
        res.writeHead(302, {
          Location: `${this.url}/cdn/${f.sha256}?file=${encodeURIComponent(m[3]!)}`,
          "X-Linked-Etag": `"${f.sha256}"`,
          "X-Linked-Size": String(f.content.length),
          "X-Repo-Commit": commit,
          ETag: `"${f.gitSha1}"`,
        });
        res.end();
        return;
      }
      return this.serveBytes(req, res, m[3]!, f.content, { ETag: `"${f.gitSha1}"`, "X-Repo-Commit": commit });
    }

    if ((m = /^\/cdn\/([0-9a-f]{64})$/.exec(path))) {
      for (const repo of this.repos.values()) {
        for (const [p, f] of repo.files) if (f.sha256 === m[1]) return this.serveBytes(req, res, p, f.content, { ETag: `"${f.sha256}"` });
      }
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(404);
    res.end();
  }

  private async serveBytes(req: IncomingMessage, res: ServerResponse, path: string, real: Buffer, headers: Record<string, string>) {
    const content = this.corrupt?.path === path ? this.corrupt.bytes : real;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    let start = 0;
    let end = content.length - 1;
    let status = 200;
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), end) : end;
      if (start >= content.length) {
        res.writeHead(416, { "Content-Range": `bytes */${content.length}` });
        res.end();
        return;
      }
      status = 206;
    }
    res.writeHead(status, {
      ...headers,
      "Content-Type": "application/octet-stream",
      "Content-Length": String(end - start + 1),
      "Accept-Ranges": "bytes",
      ...(status === 206 ? { "Content-Range": `bytes ${start}-${end}/${content.length}` } : {}),
    });
    const body = content.subarray(start, end + 1);
    const drop = this.drop;
    if (drop && drop.path === path && drop.times > 0 && body.length > 1 && end - start + 1 > 1) {
      drop.times--;
      const cut = Math.max(1, Math.min(drop.afterBytes, body.length - 1));
      res.write(body.subarray(0, cut), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    const chunk = 64 * 1024;
    for (let i = 0; i < body.length; i += chunk) {
      if (this.chunkDelayMs) await new Promise((r) => setTimeout(r, this.chunkDelayMs));
      if (!res.write(body.subarray(i, i + chunk))) await new Promise((r) => res.once("drain", r));
    }
    res.end();
  }
}
