/**
 * The library entry point: text in, text out, any method. The CLI and the MCP tools are thin
 * layers over `SpecEngine.generate`.
 */
import { join } from "node:path";
import type { LoadedModel } from "./engine/model-store.js";
import { ModelStore, type ModelStoreOptions } from "./engine/model-store.js";
import { InvalidOptionError, TokenizerError } from "./errors.js";
import { resolveModel, type ResolveOptions } from "./hub/resolve.js";
import { generateTokens, type FinishReason } from "./decoding/generate.js";
import { MESSAGES_MAX, OPTION_MAX, PROMPT_IDS_MAX, checkPromptBytes } from "./decoding/limits.js";
import { isEagleHeadDir } from "./decoding/eagle.js";
import { parseOptions, type OptionsShape } from "./decoding/options.js";
import { renderMessage } from "./vocabulary.js";
import { checkMethodOptions, getMethod, registeredMethods, type LoadedResources, type MethodDefinition, type MethodName, type MethodOptions, type MethodResources } from "./decoding/methods.js";
import { exitAdapterLayersOf } from "./decoding/early-exit.js";
import type { GenerationStats } from "./decoding/stats.js";
import { earlyExitLayersOf, rebuildAdvice, weightFormatOf } from "./decoding/capabilities.js";
import type { SamplingOptions } from "./sampling/index.js";
import { StopMatcher, StreamDecoder, type ChatMessage } from "./text/index.js";

export type { ChatMessage };

export interface GenerateRequest {
  /** Target model directory, or a Hugging Face repo id `org/name[@revision][:variant]` (see hub/resolve.ts). */
  model: string;
  /** onnx-community variant of the target (e.g. "model_fp16.onnx", "fp16", "q4"). */
  variant?: string;
  /** Draft model directory or repo id (method "draft"). */
  draft?: string;
  /** onnx-community variant of the draft (e.g. "q4"): a draft is quantized independently of the target. */
  draftVariant?: string;
  /** Medusa heads (method "medusa"). */
  heads?: string;
  /** Default "baseline"; "auto" picks from what is available. */
  method?: MethodName | "auto";
  prompt?: string;
  /** Token ids fed exactly as given (no BOS added). */
  promptIds?: number[];
  messages?: ChatMessage[];
  maxNewTokens?: number;
  sampling?: SamplingOptions;
  stop?: string[];
  methodOptions?: MethodOptions;
  /** Streamed text as it becomes final (never a broken UTF-8 sequence). */
  onText?: (chunk: string) => void;
  /** Called after each round with the number of new tokens so far. */
  onProgress?: (newTokens: number, maxNewTokens: number) => void;
  signal?: AbortSignal;
}

export interface GenerateResponse {
  text: string;
  /** Generated ids only. */
  tokens: number[];
  promptTokens: number;
  finishReason: FinishReason;
  method: MethodName;
  /** Why this method (for "auto"), or "requested". */
  methodReason: string;
  /** Method "auto" only: what it knew of the target and the request when it chose. */
  autoFacts?: AutoFacts;
  stats: GenerationStats;
}

/** The facts "auto" chose from (see chooseAutoMethod), so that a choice can be checked from a log. */
export interface AutoFacts {
  /** The target's ONNX file, its weight format and all its weight bytes (readWeightFormat; "unknown" / 0 if unreadable). */
  file: string;
  weightFormat: string;
  weightBytes: number;
  /** Whether the export verifies several tokens on a filled KV cache (false: auto picks plain decoding). */
  multiTokenWithPast: boolean | null;
  /** The graph's tree_attention_mask input (token trees), hidden_states output (Medusa) and features output (EAGLE). */
  hasTreeMask: boolean;
  hasHiddenStates: boolean;
  hasFeatures: boolean;
  /** Early-exit draft graphs beside the model, and the exit layers with a trained exit adapter. */
  earlyExitLayers: number[];
  exitAdapters: number[];
  /** What the request brought: a draft model, heads (given, or an EAGLE head found beside the model), an exit layer. */
  draft: string | null;
  heads: string | null;
  headsFound: boolean;
  exitLayer: number | null;
}

/** One line of AutoFacts, for logs. */
export function autoFactsText(f: AutoFacts): string {
  const list = (xs: number[]) => (xs.length ? xs.join(",") : "none");
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  return (
    `target ${f.file}: weights ${f.weightFormat}, ${mb(f.weightBytes)}; multi-token verify ${f.multiTokenWithPast ?? "unknown"}, ` +
    `tree mask ${f.hasTreeMask}, hidden states ${f.hasHiddenStates}, features ${f.hasFeatures}; early-exit drafts ${list(f.earlyExitLayers)}, exit adapters ${list(f.exitAdapters)}; ` +
    `draft ${f.draft ?? "none"}, heads ${f.heads ? `${f.heads}${f.headsFound ? " (found beside the model)" : ""}` : "none"}, exitLayer ${f.exitLayer ?? "none"}`
  );
}

export const DEFAULT_MAX_NEW_TOKENS = 128;

/** `<model>/eagle` when it holds an EAGLE head (train-eagle's default output) and the target can run it. */
function trainedEagleHead(model: string, target: LoadedModel): string | undefined {
  const dir = join(model, "eagle");
  const info = target.lm.info;
  return info.hasFeatures && info.hasTreeMask && isEagleHeadDir(dir) ? dir : undefined;
}

/** Decide which method "auto" means for this request. */
export function chooseAutoMethod(
  req: Pick<GenerateRequest, "draft" | "heads" | "methodOptions">,
  /** What auto knows of the target: whether it verifies several tokens per forward (else the rebuild advice), and its trained exit adapters. */
  target?: { multiTokenWithPast?: boolean; advice?: string | null; exitAdapters?: number[] },
): { method: MethodName; reason: string } {
  const available = new Set(registeredMethods().map((m) => m.name));
  if (target?.multiTokenWithPast === false) {
    return { method: "baseline", reason: `plain decoding: speculation cannot be faster on this model. ${target.advice ?? ""}`.trim() };
  }
  if (req.draft && available.has("draft")) return { method: "draft", reason: "a draft model was given: draft-model speculation usually gives the largest speedup" };
  if (req.heads && available.has("eagle") && isEagleHeadDir(req.heads)) return { method: "eagle", reason: "an EAGLE head was given" };
  if (req.heads && available.has("medusa")) return { method: "medusa", reason: "Medusa heads were given" };
  if (req.methodOptions?.exitLayer !== undefined && available.has("early-exit")) {
    const m = req.methodOptions.exitLayer;
    const trained = req.methodOptions.adapter !== false && (target?.exitAdapters?.includes(m) ?? false);
    return {
      method: "early-exit",
      reason: trained
        ? `an exit layer was given: self-speculation with the target's first ${m} layers and their trained exit adapter`
        : `an exit layer was given: self-speculation with the target's first ${m} layers, untrained (on real weights an untrained exit drafts poorly; ` +
          "train an adapter with `spec-decode train-early-exit`)",
    };
  }
  if (available.has("prompt-lookup")) {
    return { method: "prompt-lookup", reason: "no draft model or heads: prompt lookup needs nothing extra and costs almost nothing when it misses" };
  }
  return { method: "baseline", reason: "no speculative method is available for this model" };
}

export class SpecEngine {
  readonly store: ModelStore;
  /** How repo ids are resolved (cache, download, progress); `download: false` to never download. */
  readonly hub: ResolveOptions;

  constructor(opts: ModelStoreOptions & { store?: ModelStore; hub?: ResolveOptions } = {}) {
    this.store = opts.store ?? new ModelStore(opts);
    this.hub = opts.hub ?? {};
  }

  /** Turn repo ids in model / draft / heads into directories (local paths pass through unchanged). */
  async resolveRequest<T extends Pick<GenerateRequest, "model" | "variant" | "draft" | "draftVariant" | "heads">>(req: T): Promise<T> {
    const model = await resolveModel(req.model, this.hub);
    const draft = req.draft ? await resolveModel(req.draft, this.hub) : undefined;
    const heads = req.heads ? await resolveModel(req.heads, { ...this.hub, kind: "heads" }) : undefined;
    return {
      ...req,
      model: model.dir,
      variant: req.variant ?? model.variant,
      draft: draft?.dir,
      draftVariant: req.draftVariant ?? draft?.variant,
      heads: heads?.dir,
    };
  }

  /** Turn prompt / promptIds / messages into token ids. */
  encodePrompt(target: LoadedModel, req: Pick<GenerateRequest, "prompt" | "promptIds" | "messages">): number[] {
    const given = [req.prompt !== undefined, req.promptIds !== undefined, req.messages !== undefined].filter(Boolean).length;
    if (given !== 1) throw new InvalidOptionError("Give exactly one of prompt, promptIds or messages.");
    if (req.promptIds) {
      if (req.promptIds.length > PROMPT_IDS_MAX) {
        throw new InvalidOptionError(`promptIds has ${req.promptIds.length} ids; at most ${PROMPT_IDS_MAX} (and the model's context).`);
      }
      return [...req.promptIds];
    }
    // Bounded in bytes before tokenizing (synchronous work that would block other sessions).
    if (req.messages) {
      if (req.messages.length > MESSAGES_MAX) throw new InvalidOptionError(`messages has ${req.messages.length} entries; at most ${MESSAGES_MAX}.`);
      const bytes = req.messages.reduce((s, m) => s + Buffer.byteLength(String(m?.content ?? "")) + Buffer.byteLength(String(m?.role ?? "")), 0);
      checkPromptBytes(bytes, target.lm.info, "messages (all contents together)");
    } else if (req.prompt !== undefined) {
      checkPromptBytes(Buffer.byteLength(req.prompt), target.lm.info, "prompt");
    }
    const tok = target.tokenizer;
    if (!tok) {
      throw new TokenizerError(
        `${target.lm.info.dir} has no tokenizer.json, so text prompts cannot be encoded. Add the tokenizer files ` +
          `from the model repository, or pass token ids (--prompt-ids / promptIds).`,
      );
    }
    if (req.messages) {
      if (req.messages.length === 0) throw new InvalidOptionError("messages is empty; give at least one {role, content}.");
      const text = tok.applyChatTemplate(req.messages, { addGenerationPrompt: true });
      return tok.encode(text, { addSpecialTokens: false });
    }
    return tok.encode(req.prompt!, { addSpecialTokens: true });
  }

  async generate(reqIn: GenerateRequest): Promise<GenerateResponse> {
    const req = await this.resolveRequest(reqIn);
    // Pinned (before any await) so that loads by concurrent requests cannot evict it mid-request. Holding
    // no pins yet, the request may wait for running ones to release memory (ModelStore.load).
    const target = await this.store.load(req.model, { variant: req.variant, pin: true, waitForRoom: true, signal: req.signal });
    try {
      return await this.generateWith(target, req);
    } finally {
      this.store.unpin(target);
    }
  }

  private async generateWith(target: LoadedModel, reqIn: GenerateRequest): Promise<GenerateResponse> {
    let req = reqIn;
    // auto without draft or heads: an EAGLE head that train-eagle wrote beside the model (its default --out) is used.
    const found = req.method === "auto" && !req.draft && !req.heads ? trainedEagleHead(req.model, target) : undefined;
    if (found) req = { ...req, heads: found };
    let auto: { multiTokenWithPast?: boolean; advice?: string | null } | undefined;
    if (req.method === "auto") {
      // An export that can only verify token by token gains nothing from speculation: find out first (once per load).
      auto = { multiTokenWithPast: await target.lm.probeMultiTokenWithPast() };
      auto.advice = rebuildAdvice(target.lm);
    }
    const exitAdapters = exitAdapterLayersOf(target.lm);
    const { method, reason: autoReason } =
      req.method === "auto" ? chooseAutoMethod(req, { ...auto, exitAdapters }) : { method: req.method ?? "baseline", reason: "requested" };
    const methodReason = found && method === "eagle" ? `an EAGLE head trained for this model was found in ${found}` : autoReason;
    const info = target.lm.info;
    const autoFacts: AutoFacts | undefined =
      req.method === "auto"
        ? {
            file: info.file,
            weightFormat: weightFormatOf(target.lm).weightFormat,
            weightBytes: weightFormatOf(target.lm).weightBytes,
            multiTokenWithPast: auto?.multiTokenWithPast ?? null,
            hasTreeMask: info.hasTreeMask,
            hasHiddenStates: info.hasHiddenStates,
            hasFeatures: info.hasFeatures,
            earlyExitLayers: earlyExitLayersOf(target.lm),
            exitAdapters,
            draft: req.draft ?? null,
            heads: req.heads ?? null,
            headsFound: found !== undefined,
            exitLayer: req.methodOptions?.exitLayer ?? null,
          }
        : undefined;
    const def = getMethod(method);
    // Keys no method knows are errors; the method's own are checked against its schema.
    checkMethodOptions(req.methodOptions ?? {});
    const options = parseOptions(def.options, req.methodOptions ?? {});
    const extra = def.loadResources
      ? await def.loadResources({ store: this.store, target, draft: req.draft, draftVariant: req.draftVariant, heads: req.heads, options })
      : {};
    try {
      const res = await this.run(target, req, def, options, methodReason, extra);
      return autoFacts ? { ...res, autoFacts } : res;
    } finally {
      // loadResources pins what it loads (see ResourceRequest); release it with the request.
      for (const m of extra.loaded ?? []) this.store.unpin(m);
    }
  }

  private async run(
    target: LoadedModel,
    req: GenerateRequest,
    def: MethodDefinition<OptionsShape, MethodName>,
    options: Record<string, unknown>,
    methodReason: string,
    extra: LoadedResources,
  ): Promise<GenerateResponse> {
    const method = def.name;
    const resources: MethodResources = { target: target.lm, draft: extra.draft, heads: extra.heads };
    const why = def.unavailableReason(resources);
    if (why) throw new InvalidOptionError((v) => `Method "${method}" cannot run: ${renderMessage(why, v)}`);

    if (req.stop && (req.stop.length > OPTION_MAX.stopStrings || req.stop.some((x) => typeof x !== "string" || x.length === 0 || x.length > OPTION_MAX.stopChars))) {
      throw new InvalidOptionError(`stop takes at most ${OPTION_MAX.stopStrings} non-empty strings of at most ${OPTION_MAX.stopChars} characters each.`);
    }
    const promptIds = this.encodePrompt(target, req);
    const maxNewTokens = req.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
    const tok = target.tokenizer;
    const eosIds = [...new Set([...target.lm.info.eosIds, ...(tok?.eosIds ?? [])])];
    const vocab = target.lm.info.vocabSize;
    const vocabLimit = tok && vocab !== undefined && tok.vocabSize < vocab ? tok.vocabSize : undefined;
    const stream = tok ? new StreamDecoder(tok, { skipSpecialTokens: true }) : undefined;
    const stops = req.stop && req.stop.length > 0 ? new StopMatcher(req.stop) : undefined;
    let text = "";
    let stoppedByString = false;
    const lockModels = [target, ...(extra.loaded ?? [])];
    let produced = 0;
    const result = await this.store.withModels(lockModels, async () => {
      const proposer = def.create(resources, options);
      return generateTokens({
        target: target.lm,
        promptIds,
        maxNewTokens,
        sampling: req.sampling,
        proposer,
        eosIds,
        vocabLimit,
        signal: req.signal,
        onTokens: (ids) => {
          produced += ids.length;
          req.onProgress?.(produced, maxNewTokens);
          if (!stream) return;
          let chunk = stream.push(ids.filter((t) => !eosIds.includes(t)));
          if (stops) {
            const r = stops.push(chunk);
            chunk = r.emit;
            if (r.stopped) stoppedByString = true;
          }
          if (chunk) {
            text += chunk;
            req.onText?.(chunk);
          }
          if (stoppedByString) return false;
        },
      });
    });
    if (stream && !stoppedByString) {
      let tail = stream.flush();
      if (stops) {
        const r = stops.push(tail);
        tail = r.emit + (r.stopped ? "" : stops.flush());
        if (r.stopped) stoppedByString = true;
      }
      if (tail) {
        text += tail;
        req.onText?.(tail);
      }
    }
    return {
      text,
      tokens: result.tokens,
      promptTokens: promptIds.length,
      finishReason: stoppedByString ? "stop" : result.finishReason,
      method,
      methodReason,
      stats: result.stats,
    };
  }

  async dispose(): Promise<void> {
    await this.store.dispose();
  }
}
