/**
 * A causal language model behind one interface, whatever the exporter:
 *   forward(cache, tokens, {positions?, treeMask?}) -> logits for every new token (+ hidden states)
 * This is the one place that runs a decoder model.
 */
import { basename, relative, resolve } from "node:path";
import * as ort from "onnxruntime-node";
import { ContextLengthError, InvalidOptionError, ModelInterfaceError } from "../errors.js";
import { f16ArrayToF32 } from "../util/half.js";
import { confineModelPath } from "./confine.js";
import { KVCache } from "./kv-cache.js";
import { checkOnnxFile } from "./onnx-file.js";
import { inspectModelDir, layerName, type ModelDirInfo } from "./model-dir.js";
import { createSession, describeSession, type Device, type SessionInterface } from "./session.js";

export interface LoadOptions {
  device?: Device;
  threads?: number;
  /** onnx-community variant (e.g. "model_fp16.onnx", "fp16", "q4"). */
  variant?: string;
  /** Load this ONNX file instead of the directory's main model (e.g. an early-exit draft); inside the directory. */
  file?: string;
  /** Extra directories the model's files may link into (the MCP server's model roots); see confine.ts. */
  roots?: readonly string[];
}

export interface ModelInfo extends SessionInterface {
  dir: string;
  file: string;
  layout: ModelDirInfo["layout"];
  architecture: string;
  /** Usable context (positions), from config; Infinity when unknown. */
  maxContext: number;
  eosIds: number[];
  bosId?: number;
  padId?: number;
  device: Device;
  /**
   * Whether one forward can append several tokens to a non-empty cache with per-position logits.
   * `undefined` until first needed (probed lazily); false for exports that cannot, in which case
   * verification runs token by token (still exact, no speedup) and stats say so.
   */
  multiTokenWithPast?: boolean;
}

export interface ForwardOptions {
  /** Position ids of the new tokens (default: cache.length + i). */
  positions?: number[];
  /**
   * Row-major [tokens.length, cache.length + tokens.length] attention mask, 1 = may attend.
   * Only for graphs with a `tree_attention_mask` input. Default: causal.
   */
  treeMask?: Uint8Array;
  /** Which logits the caller needs. "none" skips the LM head entirely (prefill). Default "all". */
  logits?: "all" | "last" | "none";
  /** Also return the final hidden states (graphs with a `hidden_states` output). */
  hidden?: boolean;
  /** Also return the pre-final-norm features (graphs with a `features` output; EAGLE). */
  features?: boolean;
}

export interface ForwardOutput {
  /** Row-major [rows, vocab] float32 logits. */
  logits: Float32Array;
  rows: number;
  vocab: number;
  /** Row-major [tokens, hiddenSize] when asked for. */
  hidden?: Float32Array;
  hiddenSize?: number;
  /** Row-major [tokens, hiddenSize] pre-final-norm features when asked for. */
  features?: Float32Array;
}

export interface ForwardTiming {
  runs: number;
  /** Milliseconds inside session.run. */
  runMs: number;
}

export class CausalLM {
  readonly info: ModelInfo;
  readonly session: ort.InferenceSession;
  readonly dirInfo: ModelDirInfo;
  readonly timing: ForwardTiming = { runs: 0, runMs: 0 };
  private readonly pastKeyNames: string[];
  private readonly pastValueNames: string[];
  private readonly presentKeyNames: string[];
  private readonly presentValueNames: string[];
  private disposed = false;

  private constructor(session: ort.InferenceSession, dirInfo: ModelDirInfo, info: ModelInfo) {
    this.session = session;
    this.dirInfo = dirInfo;
    this.info = info;
    const n = dirInfo.kvNames;
    const L = info.numLayers;
    this.pastKeyNames = Array.from({ length: L }, (_, i) => layerName(n.pastKey, i));
    this.pastValueNames = Array.from({ length: L }, (_, i) => layerName(n.pastValue, i));
    this.presentKeyNames = Array.from({ length: L }, (_, i) => layerName(n.presentKey, i));
    this.presentValueNames = Array.from({ length: L }, (_, i) => layerName(n.presentValue, i));
  }

  static async load(dir: string, opts: LoadOptions = {}): Promise<CausalLM> {
    const dirInfo = inspectModelDir(dir, { variant: opts.variant, roots: opts.roots });
    const file = opts.file ? confineModelPath(dirInfo.dir, relative(dirInfo.dir, resolve(opts.file)), { roots: opts.roots, source: "the model file" }) : dirInfo.modelFile;
    // Before onnxruntime opens it: not truncated, and its external data stays inside the directory.
    checkOnnxFile(file, dirInfo.dir, { roots: opts.roots });
    const session = await createSession(file, { device: opts.device, threads: opts.threads });
    const cfg = (dirInfo.config.text_config ?? dirInfo.config) as Record<string, unknown>;
    const heads = typeof cfg.num_attention_heads === "number" ? cfg.num_attention_heads : undefined;
    const hidden = typeof cfg.hidden_size === "number" ? cfg.hidden_size : undefined;
    const genaiDecoder = (dirInfo.genaiConfig?.model as Record<string, Record<string, unknown>> | undefined)?.decoder;
    const fallback = {
      kvHeads: (cfg.num_key_value_heads as number | undefined) ?? (genaiDecoder?.num_key_value_heads as number | undefined) ?? heads,
      headDim:
        (cfg.head_dim as number | undefined) ??
        (genaiDecoder?.head_size as number | undefined) ??
        (heads && hidden ? hidden / heads : undefined),
    };
    const iface = describeSession(session, dirInfo.kvNames, fallback, file);
    const builderMade = iface.metadata["spec_decode.builder"] !== undefined;
    const info: ModelInfo = {
      ...iface,
      vocabSize: iface.vocabSize ?? dirInfo.vocabSize,
      dir: dirInfo.dir,
      file,
      layout: dirInfo.layout,
      architecture: dirInfo.architecture,
      maxContext: contextLimit(dirInfo, iface.metadata, file),
      eosIds: dirInfo.eosIds,
      bosId: dirInfo.bosId,
      padId: dirInfo.padId,
      device: opts.device ?? "cpu",
      multiTokenWithPast: builderMade ? true : undefined,
    };
    return new CausalLM(session, dirInfo, info);
  }

  newCache(): KVCache {
    return new KVCache({
      numLayers: this.info.numLayers,
      kvHeads: this.info.kvHeads,
      headDim: this.info.headDim,
      dtype: this.info.kvDtype,
    });
  }

  /** Short label for logs and stats. */
  get label(): string {
    return `${basename(this.info.dir)}/${basename(this.info.file)}`;
  }

  /**
   * Run `tokens` on top of `cache`; the cache grows by tokens.length. Returns logits for the rows asked.
   */
  async forward(cache: KVCache, tokens: number[], opts: ForwardOptions = {}): Promise<ForwardOutput> {
    if (this.disposed) throw new InvalidOptionError(`Model ${this.label} was unloaded; load it again.`);
    const T = tokens.length;
    if (T === 0) throw new InvalidOptionError("forward() needs at least one token.");
    const past = cache.length;
    if (past + T > this.info.maxContext) {
      throw new ContextLengthError(
        `The sequence would reach ${past + T} positions but ${this.label} supports ${this.info.maxContext}. ` +
          `Shorten the prompt or lower max new tokens.`,
      );
    }
    if (opts.treeMask && !this.info.hasTreeMask) {
      throw new ModelInterfaceError(
        `${this.label} has no tree_attention_mask input, so it cannot verify token trees in one forward. ` +
          `Rebuild it with \`spec-decode build\` (tree mask on by default) or use chain verification.`,
      );
    }
    const want = opts.logits ?? "all";
    if (T > 1 && this.info.multiTokenWithPast !== true && (past > 0 || want === "all")) {
      if (this.info.multiTokenWithPast === false) return this.forwardOneByOne(cache, tokens, opts);
      // Probe once: some exports cannot append several tokens to a non-empty cache, or return
      // only the last position's logits. Only a forward that asked for every row can prove the
      // export fine; any failure switches this model to token-by-token verification (exact, slower).
      const snapshot = past > 0 ? cache.clone() : undefined;
      try {
        const out = await this.run(cache, tokens, opts);
        if (want === "all") this.info.multiTokenWithPast = true;
        return out;
      } catch {
        this.info.multiTokenWithPast = false;
        if (snapshot) {
          cache.update(
            Array.from({ length: this.info.numLayers }, (_, i) => snapshot.key(i)),
            Array.from({ length: this.info.numLayers }, (_, i) => snapshot.value(i)),
          );
        } else cache.reset();
        return this.forwardOneByOne(cache, tokens, opts);
      }
    }
    return this.run(cache, tokens, opts);
  }

  /**
   * Whether this graph can run several new tokens on a filled cache (what speculation's one-forward
   * verification needs): known for builder-made graphs, otherwise found out once with a tiny probe
   * (one token, then two on top of it) that sets `info.multiTokenWithPast` like a real forward would.
   */
  async probeMultiTokenWithPast(): Promise<boolean> {
    if (this.info.multiTokenWithPast !== undefined) return this.info.multiTokenWithPast;
    const t = this.info.bosId ?? 0;
    const cache = this.newCache();
    await this.forward(cache, [t], { logits: "none" });
    await this.forward(cache, [t, t], { logits: "all" });
    return this.info.multiTokenWithPast ?? false;
  }

  private async forwardOneByOne(cache: KVCache, tokens: number[], opts: ForwardOptions): Promise<ForwardOutput> {
    if (opts.treeMask) {
      throw new ModelInterfaceError(`${this.label} cannot run several tokens on a cache, so tree verification is unavailable.`);
    }
    const outs: ForwardOutput[] = [];
    for (let i = 0; i < tokens.length; i++) {
      const last = i === tokens.length - 1;
      const want = opts.logits === "none" ? "none" : opts.logits === "last" && !last ? "none" : "all";
      outs.push(
        await this.run(cache, [tokens[i]!], {
          positions: opts.positions ? [opts.positions[i]!] : undefined,
          logits: want,
          hidden: opts.hidden,
          features: opts.features,
        }),
      );
    }
    const vocab = outs[outs.length - 1]!.vocab;
    const rows = outs.reduce((s, o) => s + o.rows, 0);
    const logits = new Float32Array(rows * vocab);
    let r = 0;
    for (const o of outs) {
      logits.set(o.logits, r * vocab);
      r += o.rows;
    }
    let hidden: Float32Array | undefined;
    const hiddenSize = outs[0]!.hiddenSize;
    if (opts.hidden && hiddenSize) {
      hidden = new Float32Array(tokens.length * hiddenSize);
      outs.forEach((o, i) => hidden!.set(o.hidden!, i * hiddenSize));
    }
    let features: Float32Array | undefined;
    if (opts.features && outs[0]!.features) {
      const F = outs[0]!.features.length;
      features = new Float32Array(tokens.length * F);
      outs.forEach((o, i) => features!.set(o.features!, i * F));
    }
    return { logits, rows, vocab, hidden, hiddenSize, features };
  }

  private async run(cache: KVCache, tokens: number[], opts: ForwardOptions): Promise<ForwardOutput> {
    const T = tokens.length;
    const past = cache.length;
    const total = past + T;
    const ids = new BigInt64Array(T);
    for (let i = 0; i < T; i++) ids[i] = BigInt(tokens[i]!);
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor("int64", ids, [1, T]),
    };
    if (this.info.hasAttentionMask) feeds.attention_mask = new ort.Tensor("int64", new BigInt64Array(total).fill(1n), [1, total]);
    if (this.info.hasPositionIds) {
      const pos = new BigInt64Array(T);
      for (let i = 0; i < T; i++) pos[i] = BigInt(opts.positions ? opts.positions[i]! : past + i);
      feeds.position_ids = new ort.Tensor("int64", pos, [1, T]);
    } else if (opts.positions && opts.positions.some((p, i) => p !== past + i)) {
      throw new ModelInterfaceError(`${this.label} has no position_ids input, so it cannot verify token trees.`);
    }
    if (this.info.hasTreeMask) {
      let mask = opts.treeMask;
      if (mask) {
        if (mask.length !== T * total) throw new InvalidOptionError(`tree mask has ${mask.length} entries, expected ${T}×${total}.`);
      } else {
        mask = new Uint8Array(T * total);
        for (let t = 0; t < T; t++) mask.fill(1, t * total, t * total + past + t + 1);
      }
      feeds.tree_attention_mask = new ort.Tensor("uint8", mask, [1, T, total]);
    }
    if (this.info.hasUseCacheBranch) feeds.use_cache_branch = new ort.Tensor("bool", new Uint8Array([past > 0 ? 1 : 0]), [1]);
    for (let i = 0; i < this.info.numLayers; i++) {
      feeds[this.pastKeyNames[i]!] = cache.key(i);
      feeds[this.pastValueNames[i]!] = cache.value(i);
    }
    const want = opts.logits ?? "all";
    const fetches = [...this.presentKeyNames, ...this.presentValueNames];
    if (want !== "none") fetches.push("logits");
    if (opts.hidden) {
      if (!this.info.hasHiddenStates) {
        throw new ModelInterfaceError(`${this.label} has no hidden_states output; rebuild it with \`spec-decode build\` to use Medusa heads.`);
      }
      fetches.push("hidden_states");
    }
    if (opts.features) {
      if (!this.info.hasFeatures) {
        throw new ModelInterfaceError(`${this.label} has no features output; rebuild it with \`spec-decode build\` to use EAGLE heads.`);
      }
      fetches.push("features");
    }
    const t0 = performance.now();
    let out: ort.InferenceSession.ReturnType;
    try {
      out = await this.session.run(feeds, fetches);
    } catch (err) {
      throw explainRunError(err, this.info, past + T);
    }
    this.timing.runMs += performance.now() - t0;
    this.timing.runs++;
    cache.update(
      this.presentKeyNames.map((n) => out[n]!),
      this.presentValueNames.map((n) => out[n]!),
    );
    if (cache.length !== total) {
      throw new ModelInterfaceError(`${this.label} returned a KV cache of ${cache.length} positions, expected ${total}.`);
    }
    let logits: Float32Array = new Float32Array(0);
    let rows = 0;
    let vocab = this.info.vocabSize ?? 0;
    if (want !== "none") {
      const lt = out.logits!;
      const dims = lt.dims;
      vocab = dims[dims.length - 1]!;
      const n = dims.length === 3 ? dims[1]! : 1;
      const data = lt.type === "float16" ? f16ArrayToF32(lt.data as Uint16Array) : (lt.data as Float32Array);
      if (want === "all" && n !== T) {
        throw new ModelInterfaceError(`${this.label} returned logits for ${n} of ${T} positions; it cannot verify several tokens in one forward.`);
      }
      if (want === "last" || n !== T) {
        logits = data.slice((n - 1) * vocab, n * vocab);
        rows = 1;
      } else {
        logits = data;
        rows = n;
      }
    }
    let hidden: Float32Array | undefined;
    let hiddenSize: number | undefined;
    if (opts.hidden) {
      const ht = out.hidden_states!;
      hiddenSize = ht.dims[ht.dims.length - 1]!;
      hidden = ht.type === "float16" ? f16ArrayToF32(ht.data as Uint16Array) : (ht.data as Float32Array);
    }
    const features = opts.features ? (out.features!.data as Float32Array) : undefined;
    return { logits, rows, vocab, hidden, hiddenSize, features };
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.session.release();
  }
}

/**
 * The usable context: config.json's (max_position_embeddings...) capped by the graph's own limit
 * when the graph records one (builder graphs: spec_decode.max_positions, the rows of their
 * rotary tables). A config that overstates it would otherwise fail mid-generation.
 */
function contextLimit(dirInfo: ModelDirInfo, metadata: Record<string, string>, file: string): number {
  const fromConfig = dirInfo.maxContext ?? Number.POSITIVE_INFINITY;
  const graph = Number(metadata["spec_decode.max_positions"]);
  if (Number.isInteger(graph) && graph > 0 && graph < fromConfig) {
    process.emitWarning(
      `${dirInfo.dir}/config.json says the context is ${fromConfig} positions but ${file} supports ${graph}; using ${graph}. ` +
        `Fix config.json (max_position_embeddings) or rebuild the model.`,
      { code: "SPEC_DECODE_CONTEXT" },
    );
    return graph;
  }
  return fromConfig;
}

/**
 * onnxruntime's own error for a position past what the graph supports ("Gather ... idx=512 out of
 * range") means the configuration overstates the context: say which file is wrong.
 */
function explainRunError(err: unknown, info: ModelInfo, positions: number): unknown {
  const msg = err instanceof Error ? err.message : String(err);
  if (/idx|out of (range|bounds)|indices element out of data bounds/i.test(msg) && /gather/i.test(msg)) {
    return new ModelInterfaceError(
      `${info.file} failed at ${positions} positions (${msg.split("\n")[0]}): the graph supports fewer positions than ` +
        `the ${Number.isFinite(info.maxContext) ? info.maxContext : "unbounded"} its configuration claims. config.json ` +
        `(max_position_embeddings) or genai_config.json (context_length) in ${info.dir} overstates the context: lower it ` +
        `to what the graph supports, or use shorter prompts and fewer new tokens.`,
      { cause: err },
    );
  }
  return err;
}
