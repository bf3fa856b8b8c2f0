/**
 * An OpenAI-compatible HTTP server over SpecEngine (`spec-decode serve --openai`):
 *   GET  /v1/models, /v1/models/{id}      the one served model
 *   POST /v1/completions                  prompt (text or token ids) -> text
 *   POST /v1/chat/completions             messages (chat template) -> text
 *   GET  /metrics                         Prometheus text, vLLM's spec-decode counter names
 *   GET  /health                          200 when up
 * Streaming is Server-Sent Events (`stream: true`, `stream_options.include_usage`). Every response
 * carries `speculation` (method, drafts, acceptance...) beside `usage`; a request may override the
 * server's method and its options in the extra field `speculation`.
 *
 * Security defaults are the MCP transport's (createRequestGuard): loopback bind, bearer token
 * required off loopback, Host and Origin checks, a body size limit.
 * Scheduling: one generation at a time (the engine serializes a model anyway; two would only share
 * the same cores), a FIFO queue of bounded length, 429 + Retry-After when it is full. A client that
 * goes away leaves the queue, or stops its generation before the next decoding round.
 */
import { randomUUID } from "node:crypto";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { SpecEngine, type ChatMessage, type GenerateRequest, type GenerateResponse } from "../api.js";
import { OPTION_KEYS, type MethodName, type MethodOptions } from "../decoding/methods.js";
import { OPENAI_VOCABULARY, snakeOf } from "../vocabulary.js";
import type { LoadedModel } from "../engine/model-store.js";
import type { ModelStoreOptions } from "../engine/model-store.js";
import { ContextLengthError, SpecDecodeError, errorMessage } from "../errors.js";
import { silentLogger, type Logger } from "../mcp/context.js";
import { assertTokenForHost, createRequestGuard, readBody } from "../mcp/http.js";
import type { SamplingOptions } from "../sampling/index.js";
import { Metrics } from "./metrics.js";
import { OpenAIError, chatRequestSchema, completionRequestSchema, parseRequest, type ChatRequest, type CompletionRequest, type Speculation } from "./schemas.js";

export { DEFAULT_OPENAI_PORT } from "./defaults.js";
import { DEFAULT_OPENAI_PORT } from "./defaults.js";

export interface OpenAIServerOptions {
  /** Target model directory (resolved). */
  model: string;
  /** The id clients send as `model` (default: the directory's name). */
  servedModelName?: string;
  variant?: string;
  draft?: string;
  heads?: string;
  /** Default method for requests that do not set speculation.method (default: draft with --draft, else auto). */
  method?: MethodName | "auto";
  methodOptions?: MethodOptions;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8080; 0 = ephemeral. */
  port?: number;
  token?: string;
  allowedOrigins?: string[];
  allowedHosts?: string[];
  /** Largest request body, bytes (default 1 MiB). */
  maxBodyBytes?: number;
  /** Requests waiting behind the running one, at most (default 16); more get 429. */
  maxQueue?: number;
  /** Largest max_tokens a request may ask for, and the default when it asks for none (default 4096). */
  maxTokens?: number;
  engine?: SpecEngine;
  storeOptions?: ModelStoreOptions;
  logger?: Logger;
}

export interface RunningOpenAIServer {
  url: string;
  host: string;
  port: number;
  modelName: string;
  http: Server;
  metrics: Metrics;
  close(): Promise<void>;
}

/** A first-in first-out queue with one slot running and a bounded number waiting. */
export class FifoQueue {
  private busy = false;
  private readonly waiting: Array<{ go: () => void }> = [];

  constructor(readonly maxWaiting: number) {}

  get queued(): number {
    return this.waiting.length;
  }

  get running(): number {
    return this.busy ? 1 : 0;
  }

  /** Resolves with a release function when it is this caller's turn; throws "full" or on abort. */
  acquire(signal: AbortSignal): Promise<() => void> {
    const release = () => {
      const next = this.waiting.shift();
      if (next) next.go();
      else this.busy = false;
    };
    if (!this.busy) {
      this.busy = true;
      return Promise.resolve(once(release));
    }
    if (this.waiting.length >= this.maxWaiting) return Promise.reject(new QueueFullError());
    return new Promise((resolve, reject) => {
      const entry = {
        go: () => {
          signal.removeEventListener("abort", onAbort);
          resolve(once(release));
        },
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new Error("aborted while queued"));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(entry);
    });
  }
}

class QueueFullError extends Error {}

function once(f: () => void): () => void {
  let done = false;
  return () => {
    if (!done) {
      done = true;
      f();
    }
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

function sendError(res: ServerResponse, err: OpenAIError): void {
  sendJson(res, err.status, err.body(), err.headers);
}

/** Our errors (and the body reader's) in OpenAI's vocabulary. */
function toOpenAIError(err: unknown): OpenAIError {
  if (err instanceof OpenAIError) return err;
  const status = (err as { status?: number }).status;
  if (status === 413) return new OpenAIError(413, errorMessage(err), "invalid_request_error", null, "request_too_large");
  if (status === 400) return new OpenAIError(400, errorMessage(err), "invalid_request_error", null, "invalid_json");
  if (err instanceof ContextLengthError) return new OpenAIError(400, err.render(OPENAI_VOCABULARY), "invalid_request_error", "messages", "context_length_exceeded");
  if (err instanceof SpecDecodeError && ["INVALID_OPTION", "TOKENIZER", "VOCAB_MISMATCH"].includes(err.code)) {
    return new OpenAIError(400, err.render(OPENAI_VOCABULARY), "invalid_request_error", null, err.code.toLowerCase());
  }
  return new OpenAIError(500, `Internal error: ${errorMessage(err)}. The server is still running.`, "server_error", null, null);
}

/** speculation.<snake_case> -> the MethodOptions key (every option of every method). */
const SPEC_OPTION_KEYS: Record<string, keyof MethodOptions> = Object.fromEntries(OPTION_KEYS.map((key) => [snakeOf(key), key]));

function messageText(content: string | Array<{ type: "text"; text: string }>): string {
  return typeof content === "string" ? content : content.map((p) => p.text).join("");
}

export async function startOpenAIServer(opts: OpenAIServerOptions): Promise<RunningOpenAIServer> {
  const host = opts.host ?? "127.0.0.1";
  const token = opts.token ?? (process.env.SPEC_DECODE_TOKEN || undefined);
  assertTokenForHost(host, token);
  const logger = opts.logger ?? silentLogger;
  const ownEngine = !opts.engine;
  const engine = opts.engine ?? new SpecEngine(opts.storeOptions ?? {});
  const modelName = opts.servedModelName ?? (opts.model.split(/[\\/]/).filter(Boolean).pop() || "model");
  const maxBody = opts.maxBodyBytes ?? 1024 * 1024;
  const maxTokensCap = opts.maxTokens ?? 4096;
  const defaultMethod: MethodName | "auto" = opts.method ?? (opts.draft ? "draft" : "auto");
  const metrics = new Metrics(modelName);
  const queue = new FifoQueue(opts.maxQueue ?? 16);
  let avgRequestS = 1;
  let port = 0;
  const guard = createRequestGuard({ host, token, allowedOrigins: opts.allowedOrigins, allowedHosts: opts.allowedHosts, port: () => port });

  // Load once up front: a broken model fails the start, not the first request. Kept pinned.
  const target: LoadedModel = await engine.store.load(opts.model, { variant: opts.variant, pin: true });
  const maxContext = target.lm.info.maxContext;
  const created = Math.floor(Date.now() / 1000);
  const modelCard = { id: modelName, object: "model", created, owned_by: "spec-decode", max_model_len: Number.isFinite(maxContext) ? maxContext : null };

  const updateGauges = () => {
    metrics.set("vllm:num_requests_running", queue.running);
    metrics.set("vllm:num_requests_waiting", queue.queued);
  };

  /** Body -> the engine request (prompt encoded here so that sizes are checked before queueing). */
  const prepare = (kind: "chat" | "completion", body: ChatRequest | CompletionRequest) => {
    if (body.model !== modelName) {
      throw new OpenAIError(404, `The model \`${body.model}\` does not exist. This server serves "${modelName}" (GET /v1/models).`, "invalid_request_error", "model", "model_not_found");
    }
    let promptIds: number[];
    if (kind === "chat") {
      const messages: ChatMessage[] = (body as ChatRequest).messages.map((m) => ({ role: m.role === "developer" ? "system" : m.role, content: messageText(m.content) }));
      promptIds = engine.encodePrompt(target, { messages });
    } else {
      const p = (body as CompletionRequest).prompt;
      if (typeof p === "string") promptIds = engine.encodePrompt(target, { prompt: p });
      else if (typeof p[0] === "string") promptIds = engine.encodePrompt(target, { prompt: p[0] });
      else if (Array.isArray(p[0])) promptIds = [...(p[0] as number[])];
      else promptIds = [...(p as number[])];
      if (promptIds.length === 0) throw new OpenAIError(400, "prompt is empty.", "invalid_request_error", "prompt", "invalid_value");
    }
    const chat = body as ChatRequest;
    if (kind === "chat" && chat.max_completion_tokens != null && body.max_tokens != null) {
      throw new OpenAIError(400, "Give max_completion_tokens or max_tokens, not both (max_tokens is the older name).", "invalid_request_error", "max_tokens", "invalid_value");
    }
    const asked = (kind === "chat" ? chat.max_completion_tokens : undefined) ?? body.max_tokens ?? undefined;
    const param = kind === "chat" && chat.max_completion_tokens != null ? "max_completion_tokens" : "max_tokens";
    if (asked !== undefined && asked > maxTokensCap) {
      throw new OpenAIError(400, `${param} is ${asked}, above this server's limit of ${maxTokensCap} (start it with --max-tokens to raise it).`, "invalid_request_error", param, "invalid_value");
    }
    const room = maxContext - promptIds.length;
    if (room < 1 || (asked !== undefined && asked > room)) {
      throw new OpenAIError(
        400,
        `This model's maximum context length is ${maxContext} tokens. The prompt has ${promptIds.length} tokens` +
          (asked !== undefined ? ` and ${param} asks for ${asked} more` : "") + `. Shorten the prompt or lower ${param}.`,
        "invalid_request_error",
        kind === "chat" ? "messages" : "prompt",
        "context_length_exceeded",
      );
    }
    const maxNewTokens = asked ?? Math.min(maxTokensCap, room);
    const spec: Speculation = body.speculation ?? {};
    const method = spec.method ?? defaultMethod;
    if (method === "draft" && !opts.draft) {
      throw new OpenAIError(400, 'speculation.method "draft" needs a draft model, and this server was started without --draft. Use another method (prompt-lookup, lookahead, early-exit) or restart with --draft DIR.', "invalid_request_error", "speculation.method", "invalid_value");
    }
    if (method === "medusa" && !opts.heads) {
      throw new OpenAIError(400, 'speculation.method "medusa" needs Medusa heads, and this server was started without --heads.', "invalid_request_error", "speculation.method", "invalid_value");
    }
    const methodOptions: MethodOptions = { ...(opts.methodOptions ?? {}) };
    for (const [k, v] of Object.entries(spec)) {
      const key = SPEC_OPTION_KEYS[k];
      if (key && v !== undefined) (methodOptions as Record<string, unknown>)[key] = v;
    }
    const sampling: SamplingOptions = {};
    if (body.temperature != null) sampling.temperature = body.temperature;
    if (body.top_p != null) sampling.topP = body.top_p;
    if (body.top_k != null) sampling.topK = body.top_k;
    if (body.min_p != null) sampling.minP = body.min_p;
    if (body.repetition_penalty != null) sampling.repetitionPenalty = body.repetition_penalty;
    if (body.seed != null) sampling.seed = body.seed;
    const stop = body.stop == null ? undefined : typeof body.stop === "string" ? [body.stop] : body.stop;
    const req: GenerateRequest = {
      model: opts.model,
      variant: opts.variant,
      draft: opts.draft,
      heads: opts.heads,
      method,
      promptIds,
      maxNewTokens,
      sampling,
      stop,
      methodOptions,
    };
    return req;
  };

  const speculationOf = (r: GenerateResponse) => {
    const s = r.stats;
    return {
      method: r.method,
      method_reason: r.methodReason,
      drafts: s.draftRounds,
      draft_tokens: s.draftedTokens,
      accepted_tokens: s.acceptedTokens,
      acceptance_rate: s.acceptanceRate,
      mean_accepted_length: s.meanAcceptedLength,
      per_position_acceptance: s.perPositionAcceptance,
      target_forwards: s.targetForwards,
      tokens_per_second: s.tokensPerSecond,
      prefill_ms: s.prefillMs,
      decode_ms: s.decodeMs,
    };
  };
  const usageOf = (r: GenerateResponse) => ({ prompt_tokens: r.promptTokens, completion_tokens: r.tokens.length, total_tokens: r.promptTokens + r.tokens.length });
  const finishOf = (r: GenerateResponse) => (r.finishReason === "length" ? "length" : "stop");

  const generate = async (kind: "chat" | "completion", body: ChatRequest | CompletionRequest, req: IncomingMessage, res: ServerResponse) => {
    const greq = prepare(kind, body);
    const ac = new AbortController();
    const onClose = () => {
      if (!res.writableEnded) ac.abort();
    };
    res.on("close", onClose);
    req.on("aborted", onClose);
    let release: () => void;
    try {
      release = await queue.acquire(ac.signal);
    } catch (err) {
      if (err instanceof QueueFullError) {
        metrics.inc("spec_decode_requests_rejected", 1, { reason: "queue_full" });
        const retry = Math.max(1, Math.min(600, Math.ceil(avgRequestS * (queue.queued + 1))));
        throw new OpenAIError(
          429,
          `The server is busy: ${queue.queued} requests are already waiting (limit --max-queue ${queue.maxWaiting}). Retry after ${retry} s.`,
          "rate_limit_error",
          null,
          "queue_full",
          { "retry-after": String(retry) },
        );
      }
      logger.log("info", "client went away while queued");
      metrics.inc("spec_decode_requests_cancelled");
      return;
    }
    updateGauges();
    const t0 = performance.now();
    const id = `${kind === "chat" ? "chatcmpl" : "cmpl"}-${randomUUID().replace(/-/g, "")}`;
    const createdAt = Math.floor(Date.now() / 1000);
    const object = kind === "chat" ? "chat.completion" : "text_completion";
    const stream = body.stream === true;
    const includeUsage = stream && body.stream_options?.include_usage === true;
    const wantIds = body.return_token_ids === true;
    try {
      if (ac.signal.aborted) {
        metrics.inc("spec_decode_requests_cancelled");
        return;
      }
      const chunkObject = kind === "chat" ? "chat.completion.chunk" : "text_completion";
      const sse = (data: unknown) => {
        if (!res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify(data)}\n\n`);
      };
      const chunk = (text: string | undefined, finish: string | null, extra: Record<string, unknown> = {}) => {
        const choice =
          kind === "chat"
            ? { index: 0, delta: text === undefined ? {} : { content: text }, logprobs: null, finish_reason: finish }
            : { index: 0, text: text ?? "", logprobs: null, finish_reason: finish };
        return { id, object: chunkObject, created: createdAt, model: modelName, choices: [choice], ...extra };
      };
      if (stream) {
        res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" });
        res.flushHeaders();
        if (kind === "chat") {
          sse({ id, object: chunkObject, created: createdAt, model: modelName, choices: [{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }] });
        }
        greq.onText = (t) => sse(chunk(t, null));
      }
      greq.signal = ac.signal;
      const r = await engine.generate(greq);
      const cancelled = r.finishReason === "cancelled";
      metrics.record(r.stats, cancelled ? "abort" : finishOf(r));
      const dt = (performance.now() - t0) / 1000;
      avgRequestS = 0.8 * avgRequestS + 0.2 * dt;
      logger.log("info", `${kind} ${id}: ${r.method}, ${r.tokens.length} tokens, finish ${r.finishReason}, ${dt.toFixed(2)} s`);
      if (cancelled) return;
      const speculation = speculationOf(r);
      const usage = usageOf(r);
      if (stream) {
        sse(chunk(undefined, finishOf(r), { speculation, ...(wantIds ? { token_ids: r.tokens, prompt_token_ids: greq.promptIds } : {}) }));
        if (includeUsage) sse({ id, object: chunkObject, created: createdAt, model: modelName, choices: [], usage, speculation });
        res.end("data: [DONE]\n\n");
        return;
      }
      const choice =
        kind === "chat"
          ? { index: 0, message: { role: "assistant", content: r.text }, logprobs: null, finish_reason: finishOf(r), ...(wantIds ? { token_ids: r.tokens } : {}) }
          : { index: 0, text: r.text, logprobs: null, finish_reason: finishOf(r), ...(wantIds ? { token_ids: r.tokens } : {}) };
      sendJson(res, 200, { id, object, created: createdAt, model: modelName, choices: [choice], usage, speculation, ...(wantIds ? { prompt_token_ids: greq.promptIds } : {}) });
    } catch (err) {
      const e = toOpenAIError(err);
      if (res.headersSent) {
        // Mid-stream: OpenAI-style error event, then close.
        if (!res.writableEnded) res.end(`data: ${JSON.stringify(e.body())}\n\n`);
        logger.log("error", `${id}: ${e.message}`);
        return;
      }
      throw e;
    } finally {
      release();
      updateGauges();
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const refused = guard(req);
    if (refused) {
      logger.log("warn", `refused request (${refused.status}): ${refused.message}`);
      const type = refused.status === 401 ? "authentication_error" : "permission_error";
      throw new OpenAIError(refused.status, refused.message, type, null, refused.status === 401 ? "invalid_api_key" : "forbidden", refused.headers);
    }
    const path = new URL(req.url ?? "/", "http://placeholder").pathname.replace(/\/+$/, "") || "/";
    const method = req.method ?? "GET";
    const allow = (m: string) => {
      if (method !== m) throw new OpenAIError(405, `${path} takes ${m} requests (got ${method}).`, "invalid_request_error", null, "method_not_allowed", { allow: m });
    };
    switch (path) {
      case "/health":
        allow("GET");
        return sendJson(res, 200, { status: "ok" });
      case "/metrics":
        allow("GET");
        updateGauges();
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
        return res.end(metrics.render());
      case "/v1/models":
        allow("GET");
        return sendJson(res, 200, { object: "list", data: [modelCard] });
      case "/v1/completions":
      case "/v1/chat/completions": {
        allow("POST");
        const kind = path === "/v1/completions" ? "completion" : "chat";
        let body: unknown;
        try {
          body = await readBody(req, maxBody);
        } catch (err) {
          const e = toOpenAIError(err);
          if (e.status === 413) e.message += ` Start the server with a larger --max-body-bytes, or send less.`;
          throw e;
        }
        const parsed =
          kind === "chat" ? parseRequest(chatRequestSchema, body, "chat completion") : parseRequest(completionRequestSchema, body, "completion");
        return generate(kind, parsed, req, res);
      }
      default:
        if (path.startsWith("/v1/models/")) {
          allow("GET");
          const id = decodeURIComponent(path.slice("/v1/models/".length));
          if (id === modelName) return sendJson(res, 200, modelCard);
          throw new OpenAIError(404, `The model \`${id}\` does not exist. This server serves "${modelName}".`, "invalid_request_error", "model", "model_not_found");
        }
        throw new OpenAIError(404, `No route ${method} ${path}. Routes: GET /v1/models, POST /v1/completions, POST /v1/chat/completions, GET /metrics, GET /health.`, "invalid_request_error", null, "not_found");
    }
  };

  const http = createHttpServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const e = toOpenAIError(err);
      if (e.status >= 500) logger.log("error", `${req.method} ${req.url}: ${errorMessage(err)}`);
      else logger.log("debug", `${req.method} ${req.url}: ${e.status} ${e.message}`);
      if (e.status === 400 || e.status === 404 || e.status === 413) metrics.inc("spec_decode_requests_rejected", 1, { reason: e.code ?? "invalid" });
      // A 413 leaves the rest of the body unread: close the connection instead of draining it.
      const socket = req.socket;
      if (e.status === 413) {
        e.headers.connection = "close";
        res.once("finish", () => socket?.destroy());
      }
      if (!res.headersSent) sendError(res, e);
      else res.end();
    });
  });
  await new Promise<void>((resolvePromise, rejectPromise) => {
    http.once("error", rejectPromise);
    http.listen(opts.port ?? DEFAULT_OPENAI_PORT, host, () => {
      http.off("error", rejectPromise);
      resolvePromise();
    });
  });
  port = (http.address() as AddressInfo).port;
  const shownHost = host.includes(":") ? `[${host}]` : host;
  const url = `http://${shownHost}:${port}/v1`;
  logger.log("info", `OpenAI-compatible server for "${modelName}" on ${url} (default method ${defaultMethod})${token ? " (bearer token required)" : ""}`);
  return {
    url,
    host,
    port,
    modelName,
    http,
    metrics,
    async close() {
      http.closeAllConnections?.();
      await new Promise<void>((r) => http.close(() => r()));
      engine.store.unpin(target);
      if (ownEngine) await engine.dispose();
    },
  };
}
