/**
 * Loaded models, cached by (directory, file, device, threads), with their tokenizers.
 * Shared by the CLI, the library API and the MCP server. Calls that use the same model are
 * serialized with a per-model lock (an onnxruntime session is not re-entrant for our KV handling,
 * and two generations would only fight over the same cores).
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { ModelLoadError } from "../errors.js";
import { TextTokenizer } from "../text/index.js";
import { CausalLM } from "./causal-lm.js";
import { inspectModelDir } from "./model-dir.js";
import { checkThreads, type Device } from "./session.js";

export interface LoadedModel {
  key: string;
  lm: CausalLM;
  tokenizer?: TextTokenizer;
  loadedAt: number;
  lastUsed: number;
  /** Approximate bytes (file sizes of the ONNX graph and its external data). */
  bytes: number;
}

/** Anything the store can free. */
export interface Disposable {
  dispose(): Promise<void>;
}

/** A cache entry; `explicit` = loaded by file (e.g. an early-exit draft), not as the directory's model. */
interface StoreEntry {
  key: string;
  dir: string;
  explicit: boolean;
  p: Promise<LoadedModel>;
  /** Set once the load has finished (eviction only considers settled entries). */
  settled?: LoadedModel;
  /** Bytes counted against maxBytes from the moment the load starts (file sizes). */
  bytes: number;
  /** Requests using this entry: it is never evicted, and unload() waits for them to finish. */
  pins: number;
  /** Resolved when pins drops to 0 (set by whoever waits). */
  drained?: () => void;
}

export interface ModelStoreOptions {
  device?: Device;
  threads?: number;
  /** Unload least-recently-used models beyond this many bytes (default 8 GiB). */
  maxBytes?: number;
  /** Extra directories model files may link into (the MCP server's model roots); see confine.ts. */
  roots?: readonly string[];
  /** How long a `waitForRoom` load waits for running requests to release memory (default 60 s). */
  roomWaitMs?: number;
}

/** Loads waiting for room at once, at most (more are refused at once, like a load that may not wait). */
export const MAX_ROOM_WAITERS = 64;
export const DEFAULT_ROOM_WAIT_MS = 60_000;

export class ModelStore {
  readonly device: Device;
  readonly threads?: number;
  readonly maxBytes: number;
  private readonly models = new Map<string, StoreEntry>();
  private readonly locks = new Map<string, Promise<void>>();
  /** Other loaded sessions (e.g. Medusa heads), keyed, owned by a directory for unload(). */
  private readonly extras = new Map<string, { dir: string; version: string; bytes: number; p: Promise<Disposable> }>();
  /** The entry each loaded model came from (pins are counted per entry, not per key). */
  private readonly entryOf = new WeakMap<LoadedModel, StoreEntry>();
  private roots: readonly string[];
  readonly roomWaitMs: number;
  /** Loads waiting for room: woken whenever memory may have been released (an unpin, a settled load, an unload). */
  private readonly roomWaiters = new Set<() => void>();

  constructor(opts: ModelStoreOptions = {}) {
    this.device = opts.device ?? "cpu";
    this.threads = checkThreads(opts.threads === 0 ? undefined : opts.threads);
    this.maxBytes = opts.maxBytes ?? 8 * 1024 ** 3;
    this.roots = opts.roots ?? [];
    this.roomWaitMs = opts.roomWaitMs ?? DEFAULT_ROOM_WAIT_MS;
  }

  /** Allow model files to link into these directories too (the MCP server sets its model roots). */
  setRoots(roots: readonly string[]): void {
    this.roots = [...roots];
  }

  /**
   * Load (or reuse) a model. `file` picks a specific ONNX file in the directory (e.g. an early-exit
   * draft); `variant` an onnx-community variant. A bare load(dir) reuses the directory's model
   * however it was loaded (e.g. by the MCP tool load_model with a device, threads or variant).
   * `pin: true` pins the model before anything is awaited, so that no concurrent load can evict it;
   * the caller unpins it when done.
   *
   * When the memory bound leaves no room because running requests pin models (or loads are under
   * way), `waitForRoom: true` waits for them to release memory (at most roomWaitMs, or until
   * `signal` aborts) instead of refusing at once. Only a caller that holds no pins may wait (a
   * request loading its target, load_model): one that waits while pinning a model could wait on
   * itself, or on a second request that waits on it. Loads made while holding pins (a draft, an
   * early-exit graph, heads) are refused at once, as is a load that could not fit even if every
   * request finished (loaded heads are only freed by unload). At most MAX_ROOM_WAITERS loads wait.
   */
  async load(
    dir: string,
    opts: { file?: string; variant?: string; device?: Device; threads?: number; pin?: boolean; waitForRoom?: boolean; signal?: AbortSignal } = {},
  ): Promise<LoadedModel> {
    const d = resolve(dir);
    const explicit = opts.file !== undefined;
    checkThreads(opts.threads);
    const deadline = Date.now() + this.roomWaitMs;
    let entry: StoreEntry | undefined;
    // Looked up again after each wait: a concurrent request may have loaded the same model meanwhile.
    for (;;) {
      if (!explicit && opts.variant === undefined && opts.device === undefined && opts.threads === undefined) {
        for (const e of this.models.values()) {
          if (e.dir === d && !e.explicit) {
            entry = e;
            break;
          }
        }
      }
      if (entry) break;
      const file = opts.file ? resolve(opts.file) : inspectModelDir(d, { variant: opts.variant, roots: this.roots }).modelFile;
      const k = JSON.stringify([d, file, opts.device ?? this.device, opts.threads ?? this.threads ?? 0]);
      entry = this.models.get(k);
      if (entry) break;
      // Sized before it loads: every session counts against maxBytes, loading ones included.
      const bytes = fileBytes(file);
      const held = this.makeRoom(bytes);
      if (held !== undefined) {
        const mayWait = opts.waitForRoom === true && this.couldFit(bytes) && this.roomWaiters.size < MAX_ROOM_WAITERS;
        if (!mayWait || Date.now() >= deadline) throw this.noRoomError(d, bytes, held, mayWait);
        await this.waitForRoom(deadline, opts.signal);
        continue;
      }
      const load = async (): Promise<LoadedModel> => {
        const lm = await CausalLM.load(d, {
          file: opts.file,
          variant: opts.variant,
          device: opts.device ?? this.device,
          threads: opts.threads ?? this.threads,
          roots: this.roots,
        });
        const tokenizer = lm.dirInfo.hasTokenizer ? await TextTokenizer.load(lm.info.dir) : undefined;
        const now = Date.now();
        return { key: k, lm, tokenizer, loadedAt: now, lastUsed: now, bytes: fileBytes(lm.info.file) };
      };
      const e: StoreEntry = { key: k, dir: d, explicit, p: load(), bytes, pins: 0 };
      e.p.then(
        (m) => {
          e.settled = m;
          e.bytes = m.bytes;
          this.entryOf.set(m, e);
          this.roomMayBeFree(); // settled and unpinned: evictable now
        },
        () => {
          if (this.models.get(k) === e) this.models.delete(k);
          this.roomMayBeFree();
        },
      );
      this.models.set(k, e);
      entry = e;
      break;
    }
    const e = entry;
    // Pinned before anything is awaited: no concurrent load can evict it, no unload can free it.
    if (opts.pin) e.pins++;
    try {
      const m = await e.p;
      m.lastUsed = Date.now();
      return m;
    } catch (err) {
      if (opts.pin) this.unpinEntry(e);
      throw err;
    }
  }

  /** Memory bound and what is loaded (for status reports). */
  async usage(): Promise<{ usedBytes: number; maxBytes: number; models: (LoadedModel & { dir: string; device: string; threads: number | null })[] }> {
    const all = await this.loaded();
    return {
      usedBytes: all.reduce((s, m) => s + m.bytes, 0) + this.extraBytes(),
      maxBytes: this.maxBytes,
      models: all.map((m) => {
        const [dir, , device, threads] = JSON.parse(m.key) as [string, string, string, number];
        return { ...m, dir, device, threads: threads || null };
      }),
    };
  }

  /**
   * Load (or reuse) something other than a decoder that belongs to the directory `dir` — e.g.
   * Medusa heads. It is freed by unload(dir) and dispose(), like the models. When `version`
   * changes (the files were rebuilt), the old one is freed and the new one loaded. `file` (its ONNX
   * graph) sizes it: extras count against the memory bound like models (room is made before loading).
   */
  async loadExtra<T extends Disposable>(dir: string, key: string, version: string, load: () => Promise<T>, file?: string): Promise<T> {
    const k = JSON.stringify([resolve(dir), key]);
    let e = this.extras.get(k);
    if (e && e.version !== version) {
      this.extras.delete(k);
      await e.p.then((x) => x.dispose()).catch(() => undefined);
      e = undefined;
    }
    if (!e) {
      const bytes = file ? fileBytes(file) : 0;
      const held = this.makeRoom(bytes);
      if (held !== undefined) throw this.noRoomError(resolve(dir), bytes, held, false);
      const p = load();
      const entry = { dir: resolve(dir), version, bytes, p };
      this.extras.set(k, entry);
      p.catch(() => this.extras.get(k) === entry && this.extras.delete(k));
      e = entry;
    }
    return (await e.p) as T;
  }

  async loaded(): Promise<LoadedModel[]> {
    const settled = await Promise.allSettled([...this.models.values()].map((e) => e.p));
    return settled.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  }

  /**
   * Unload every model loaded from `dir` (any file/device). Returns how many were unloaded.
   * New requests no longer get the old sessions; requests already using them finish first
   * (their sessions are freed once the last one unpins), so nothing accepted is lost.
   */
  async unload(dir: string): Promise<number> {
    const d = resolve(dir);
    let n = 0;
    const waits: Promise<void>[] = [];
    for (const [key, e] of [...this.models]) {
      if (e.dir !== d) continue;
      this.models.delete(key);
      waits.push(this.retire(e));
      n++;
    }
    await Promise.all(waits);
    for (const [key, e] of [...this.extras]) {
      if (e.dir !== d) continue;
      this.extras.delete(key);
      await e.p.then((x) => x.dispose()).catch(() => undefined);
      n++;
    }
    if (n > 0) this.roomMayBeFree();
    return n;
  }

  /** Free an entry that is no longer in the map, once its requests are done. */
  private async retire(e: StoreEntry): Promise<void> {
    if (e.pins > 0) await new Promise<void>((r) => (e.drained = r));
    await this.withLock(e.key, async () => {
      try {
        await (await e.p).lm.dispose();
      } catch {
        /* a failed load has nothing to free */
      }
    });
  }

  async dispose(): Promise<void> {
    const all = await this.loaded();
    this.models.clear();
    const extras = [...this.extras.values()];
    this.extras.clear();
    await Promise.all([
      ...all.map((m) => this.withLock(m.key, () => m.lm.dispose())),
      ...extras.map((e) => e.p.then((x) => x.dispose()).catch(() => undefined)),
    ]);
  }

  /** Keep `m` from being evicted or freed until `unpin` (a request that loads several models pins each). */
  pin(m: LoadedModel): void {
    const e = this.entryOf.get(m);
    if (e) e.pins++;
  }

  unpin(m: LoadedModel): void {
    const e = this.entryOf.get(m);
    if (e) this.unpinEntry(e);
  }

  private unpinEntry(e: StoreEntry): void {
    e.pins = Math.max(0, e.pins - 1);
    if (e.pins === 0 && e.drained) {
      const r = e.drained;
      e.drained = undefined;
      r();
    }
    if (e.pins === 0) this.roomMayBeFree();
  }

  /** Wake the loads waiting for room (each looks again). */
  private roomMayBeFree(): void {
    for (const wake of [...this.roomWaiters]) wake();
  }

  /** Until memory may have been released, the deadline passes (then the caller refuses), or `signal` aborts. */
  private waitForRoom(deadline: number, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    return new Promise<void>((res, rej) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", aborted);
        this.roomWaiters.delete(wake);
      };
      const wake = () => {
        done();
        res();
      };
      const aborted = () => {
        done();
        rej(signal!.reason);
      };
      const timer = setTimeout(wake, Math.max(0, deadline - Date.now()));
      this.roomWaiters.add(wake);
      signal?.addEventListener("abort", aborted, { once: true });
    });
  }

  /** Run `fn` while holding the locks of the given models (in a fixed order, so no deadlock). */
  async withModels<T>(models: LoadedModel[], fn: () => Promise<T>): Promise<T> {
    const keys = [...new Set(models.map((m) => m.key))].sort();
    const run = async (i: number): Promise<T> => (i === keys.length ? fn() : this.withLock(keys[i]!, () => run(i + 1)));
    return run(0);
  }

  private async withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const chained = prev.then(() => mine);
    this.locks.set(key, chained);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.locks.get(key) === chained) this.locks.delete(key);
    }
  }

  private extraBytes(): number {
    return [...this.extras.values()].reduce((s, e) => s + e.bytes, 0);
  }

  /**
   * Make room for `bytes` more under maxBytes before a load starts: unload least-recently-used
   * settled models nobody is using (they are freed once their lock is free). Returns undefined when
   * the load fits, else the bytes still held by models in use or still loading (and loaded heads):
   * the load must then wait or be refused rather than exceed the bound. A single model larger than
   * the bound loads when nothing else is held.
   */
  private makeRoom(bytes: number): number | undefined {
    const entries = [...this.models.values()];
    // Extras (heads) are freed with their directory, not evicted on their own: they only take room.
    let total = entries.reduce((s, e) => s + e.bytes, 0) + this.extraBytes();
    if (total + bytes <= this.maxBytes) return undefined;
    const idle = entries.filter((e) => e.settled && e.pins === 0).sort((a, b) => a.settled!.lastUsed - b.settled!.lastUsed);
    for (const e of idle) {
      if (total + bytes <= this.maxBytes) break;
      this.models.delete(e.key);
      void this.retire(e);
      total -= e.bytes;
    }
    return total + bytes > this.maxBytes && total > 0 ? total : undefined;
  }

  /** Whether `bytes` would fit once every request has released its models (loaded heads stay until unload). */
  private couldFit(bytes: number): boolean {
    const extras = this.extraBytes();
    return extras === 0 || extras + bytes <= this.maxBytes;
  }

  private noRoomError(dir: string, bytes: number, held: number, waited: boolean): ModelLoadError {
    const mib = (x: number) => `${(x / 2 ** 20).toFixed(1)} MiB`;
    return new ModelLoadError(
      `Loading ${dir} (${mib(bytes)}) would exceed the memory bound (${mib(this.maxBytes)}, --max-memory): ${mib(held)} ` +
        `are held by models that running requests are using (and loaded heads)` +
        (waited ? `, still after waiting ${this.roomWaitMs < 1000 ? `${this.roomWaitMs} ms` : `${(this.roomWaitMs / 1000).toFixed(0)} s`} for them to finish` : "") +
        `. Retry when they finish, unload a model (unload_model), or restart the server with a larger --max-memory.`,
    );
  }
}

function fileBytes(file: string): number {
  let total = 0;
  try {
    total += statSync(file).size;
    const dir = dirname(file);
    const base = file.slice(dir.length + 1);
    for (const f of readdirSync(dir)) {
      if (f !== base && f.startsWith(base) && (f.endsWith("_data") || f.endsWith(".data"))) total += statSync(join(dir, f)).size;
    }
  } catch {
    /* size is advisory */
  }
  return total;
}

/**
 * Early-exit draft graphs beside a model file, by exit layer. A float build writes
 * early_exit_{m}.onnx; a quantized one (model_q4.onnx) writes early_exit_{m}_q4.onnx. A variant
 * model uses its own early exits, else the float ones (still exact: any draft is verified).
 */
export function earlyExitFiles(modelFile: string): Map<number, string> {
  const dir = dirname(modelFile);
  const variant = /^model_(.+)\.onnx$/.exec(basename(modelFile))?.[1];
  const own = new Map<number, string>();
  const plain = new Map<number, string>();
  for (const f of readdirSync(dir)) {
    const m = /^early_exit_(\d+)(?:_(.+))?\.onnx$/.exec(f);
    if (!m) continue;
    if (m[2] === undefined) plain.set(Number(m[1]), join(dir, f));
    else if (m[2] === variant) own.set(Number(m[1]), join(dir, f));
  }
  for (const [k, f] of plain) if (!own.has(k)) own.set(k, f);
  return new Map([...own].sort((x, y) => x[0] - y[0]));
}

/** The early-exit draft graph for `exitLayer` beside the model file (see earlyExitFiles). */
export function earlyExitFile(lm: CausalLM, exitLayer: number): string {
  const file = earlyExitFiles(lm.info.file).get(exitLayer) ?? join(dirname(lm.info.file), `early_exit_${exitLayer}.onnx`);
  if (!existsSync(file)) {
    throw new ModelLoadError(
      (v) =>
        `No early-exit draft with ${exitLayer} layers for ${lm.info.dir} (looked for ${file}). Build it with ` +
        `${v.buildEarlyExit(lm.info.dir, exitLayer)} (needs the safetensors checkpoint).`,
    );
  }
  return file;
}
