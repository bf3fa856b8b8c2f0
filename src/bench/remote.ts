/**
 * Measure any OpenAI-compatible server (ours, vLLM, SGLang, llama-server, ...) the way
 * `spec-decode bench` measures local methods: the same prompts sent to an endpoint and, optionally,
 * a baseline endpoint (e.g. the same model without speculation), interleaved (A B, B A, ...) after a
 * warm-up request each; streamed responses give time to first token and decode tokens/s; the ratio
 * of the two per (prompt, repeat) pair is summarized as a geometric mean with a t-based 95% CI
 * (statistics.ts, the local bench's code). Acceptance is read from each server's /metrics around
 * every request where it exposes vLLM's or SGLang's speculative-decoding counters (deltas, so the
 * server's earlier traffic does not count; other clients' traffic during the run would).
 * Greedy (temperature 0) outputs of the two endpoints are compared text for text.
 */
import { InvalidOptionError } from "../errors.js";
import { scrapeSpecMetrics, type ScrapedSpec } from "../openai/metrics.js";
import { median, round4, summarizeRatios, type RatioSummary } from "./statistics.js";
import type { BenchPrompt } from "./workload.js";
import { speedupVerdict } from "./verdict.js";

export interface EndpointSpec {
  /** Base URL of the OpenAI API, e.g. http://127.0.0.1:8080/v1 (a URL without /v1 gets it added). */
  url: string;
  /** Model id to send (default: the first one /v1/models lists). */
  model?: string;
  apiKey?: string;
  /** Prometheus page (default: the server's origin + /metrics). */
  metricsUrl?: string;
  /** fetch's redirect mode (default "follow"); the MCP tool uses "error" so an allowed host cannot bounce requests elsewhere. */
  redirect?: "follow" | "error";
}

export interface RemoteBenchOptions {
  endpoint: EndpointSpec;
  baseline?: EndpointSpec;
  prompts: BenchPrompt[];
  maxNewTokens: number;
  repeats: number;
  temperature?: number;
  seed?: number;
  /** Per-request timeout, ms (default 10 minutes). */
  timeoutMs?: number;
  onProgress?: (done: number, total: number, message: string) => void;
  signal?: AbortSignal;
}

export interface RemoteRun {
  prompt: string;
  repeat: number;
  text: string;
  completionTokens: number;
  /** Request sent -> first streamed text, ms. */
  ttftMs: number;
  /** Request sent -> stream end, ms. */
  totalMs: number;
  /** (completion tokens - 1) / (last chunk - first chunk): decode speed, prefill excluded. */
  decodeTokensPerSecond: number;
  finishReason: string | null;
}

export interface RemoteAcceptance {
  source: "vllm" | "sglang";
  drafts?: number;
  draftTokens?: number;
  acceptedTokens?: number;
  /** accepted / drafted (bonus not counted). */
  acceptanceRate?: number;
  /** 1 + accepted / drafts (bonus included, vLLM's definition), or SGLang's spec_accept_length gauge. */
  meanAcceptedLength?: number;
  /** P(position j accepted | positions before it accepted), from vLLM's per-position counters. */
  perPositionAcceptance?: number[];
}

export interface RemoteArmSummary {
  label: "endpoint" | "baseline";
  url: string;
  model: string;
  runs: RemoteRun[];
  medianDecodeTokensPerSecond: number;
  medianTtftMs: number;
  medianTotalMs: number;
  completionTokens: number;
  /** From the server's /metrics; null when it exposes no speculative-decoding counters. */
  acceptance: RemoteAcceptance | null;
  metricsNote: string;
}

export interface RemoteBenchResult {
  kind: "spec-decode-bench-endpoint";
  createdAt: string;
  prompts: number;
  repeats: number;
  maxNewTokens: number;
  greedy: boolean;
  endpoint: RemoteArmSummary;
  baseline?: RemoteArmSummary;
  /** endpoint decode tok/s / baseline decode tok/s, paired per (prompt, repeat). */
  speedup?: RatioSummary;
  /** baseline TTFT / endpoint TTFT (> 1 = the endpoint answers first sooner). */
  ttftRatio?: RatioSummary;
  verdict?: string;
  /** Greedy only: every pair of outputs equal; null when sampling or without a baseline. */
  greedyIdentical: boolean | null;
  mismatches: string[];
  elapsedMs: number;
}

/** http://h:p -> http://h:p/v1; trailing slashes dropped. */
export function apiBase(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new InvalidOptionError(`"${url}" is not a URL; give the server's OpenAI base URL like http://127.0.0.1:8080/v1.`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new InvalidOptionError(`Endpoint URLs must be http(s) (got "${url}").`);
  const path = u.pathname.replace(/\/+$/, "");
  return `${u.origin}${path.endsWith("/v1") ? path : `${path}/v1`}`;
}

function headers(ep: EndpointSpec): Record<string, string> {
  return { "content-type": "application/json", ...(ep.apiKey ? { authorization: `Bearer ${ep.apiKey}` } : {}) };
}

async function firstModel(ep: EndpointSpec, signal?: AbortSignal): Promise<string> {
  const res = await fetch(`${apiBase(ep.url)}/models`, { headers: headers(ep), signal, redirect: ep.redirect });
  if (!res.ok) throw new InvalidOptionError(`GET ${apiBase(ep.url)}/models answered ${res.status}: ${(await res.text()).slice(0, 300)}. Check the URL and --api-key, or pass --endpoint-model.`);
  const body = (await res.json()) as { data?: Array<{ id: string }> };
  const id = body.data?.[0]?.id;
  if (!id) throw new InvalidOptionError(`${apiBase(ep.url)}/models lists no model; pass --endpoint-model NAME.`);
  return id;
}

async function scrape(ep: EndpointSpec, signal?: AbortSignal): Promise<ScrapedSpec | null> {
  const url = ep.metricsUrl ?? `${new URL(apiBase(ep.url)).origin}/metrics`;
  try {
    const res = await fetch(url, { headers: ep.apiKey ? { authorization: `Bearer ${ep.apiKey}` } : {}, signal, redirect: ep.redirect });
    if (!res.ok) return null;
    return scrapeSpecMetrics(await res.text());
  } catch {
    return null;
  }
}

/** One streamed request; times taken on this side of the wire. */
export async function streamOnce(
  ep: EndpointSpec & { model: string },
  prompt: BenchPrompt,
  o: { maxNewTokens: number; temperature: number; seed?: number; timeoutMs: number; signal?: AbortSignal },
): Promise<Omit<RemoteRun, "prompt" | "repeat">> {
  const chat = prompt.messages !== undefined;
  const body: Record<string, unknown> = {
    model: ep.model,
    max_tokens: o.maxNewTokens,
    temperature: o.temperature,
    stream: true,
    stream_options: { include_usage: true },
    ...(o.seed !== undefined ? { seed: o.seed } : {}),
    ...(chat ? { messages: prompt.messages } : { prompt: prompt.promptIds ?? prompt.prompt }),
  };
  const signal = o.signal ? AbortSignal.any([o.signal, AbortSignal.timeout(o.timeoutMs)]) : AbortSignal.timeout(o.timeoutMs);
  const t0 = performance.now();
  const res = await fetch(`${apiBase(ep.url)}/${chat ? "chat/completions" : "completions"}`, { method: "POST", headers: headers(ep), body: JSON.stringify(body), signal, redirect: ep.redirect });
  if (!res.ok || !res.body) {
    throw new InvalidOptionError(`${ep.url} answered ${res.status} to prompt ${prompt.id}: ${(await res.text()).slice(0, 500)}`);
  }
  let text = "";
  let first = -1;
  let last = t0;
  let chunks = 0;
  let usageTokens: number | undefined;
  let finishReason: string | null = null;
  let buf = "";
  const decoder = new TextDecoder();
  const handle = (data: string) => {
    if (data === "[DONE]") return;
    let j: { choices?: Array<{ text?: string; delta?: { content?: string | null }; finish_reason?: string | null }>; usage?: { completion_tokens?: number }; error?: { message?: string } };
    try {
      j = JSON.parse(data);
    } catch {
      return;
    }
    if (j.error) throw new InvalidOptionError(`${ep.url} reported an error mid-stream: ${j.error.message ?? JSON.stringify(j.error)}`);
    const c = j.choices?.[0];
    const piece = c ? (chat ? c.delta?.content ?? "" : c.text ?? "") : "";
    if (piece) {
      const now = performance.now();
      if (first < 0) first = now;
      last = now;
      chunks++;
      text += piece;
    }
    if (c?.finish_reason) finishReason = c.finish_reason;
    if (j.usage?.completion_tokens !== undefined) usageTokens = j.usage.completion_tokens;
  };
  for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(part, { stream: true });
    let i: number;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const event = buf.slice(0, i);
      buf = buf.slice(i + 2);
      for (const line of event.split("\n")) if (line.startsWith("data:")) handle(line.slice(5).trim());
    }
  }
  const end = performance.now();
  // Without usage in the stream, count content chunks (servers send about one token per chunk).
  const completionTokens = usageTokens ?? chunks;
  const decodeS = first >= 0 ? (last - first) / 1000 : 0;
  return {
    text,
    completionTokens,
    ttftMs: first >= 0 ? first - t0 : end - t0,
    totalMs: end - t0,
    decodeTokensPerSecond: decodeS > 0 && completionTokens > 1 ? (completionTokens - 1) / decodeS : 0,
    finishReason,
  };
}

function acceptanceOf(before: ScrapedSpec | null, after: ScrapedSpec | null): RemoteAcceptance | null {
  if (!before || !after || !after.source) return null;
  if (after.source === "sglang") return { source: "sglang", meanAcceptedLength: after.acceptLength };
  const d = (a?: number, b?: number) => (a ?? 0) - (b ?? 0);
  const drafts = d(after.drafts, before.drafts);
  const draftTokens = d(after.draftTokens, before.draftTokens);
  const accepted = d(after.acceptedTokens, before.acceptedTokens);
  const perPosAbs = (after.acceptedPerPos ?? []).map((x, j) => x - (before.acceptedPerPos?.[j] ?? 0));
  // Conditional on reaching the position: accepted through j / accepted through j-1 (position 0: / drafts).
  const perPosition = perPosAbs.map((x, j) => {
    const reached = j === 0 ? drafts : perPosAbs[j - 1]!;
    return reached > 0 ? round4(x / reached) : 0;
  });
  return {
    source: "vllm",
    drafts,
    draftTokens,
    acceptedTokens: accepted,
    acceptanceRate: draftTokens > 0 ? round4(accepted / draftTokens) : 0,
    meanAcceptedLength: drafts > 0 ? round4(1 + accepted / drafts) : 1,
    perPositionAcceptance: perPosition,
  };
}

function addScrapes(acc: { before: ScrapedSpec | null; after: ScrapedSpec | null; ok: boolean }, before: ScrapedSpec | null, after: ScrapedSpec | null) {
  // Sum per-request deltas by keeping the first "before" and accumulating deltas into "after".
  if (!before || !after || !after.source) {
    acc.ok = false;
    return;
  }
  if (!acc.before) {
    acc.before = before;
    acc.after = after;
    return;
  }
  const a = acc.after!;
  const add = (x?: number, b?: number, c?: number) => (x ?? 0) + ((b ?? 0) - (c ?? 0));
  acc.after = {
    ...after,
    drafts: add(a.drafts, after.drafts, before.drafts),
    draftTokens: add(a.draftTokens, after.draftTokens, before.draftTokens),
    acceptedTokens: add(a.acceptedTokens, after.acceptedTokens, before.acceptedTokens),
    acceptedPerPos: Array.from({ length: Math.max(a.acceptedPerPos?.length ?? 0, after.acceptedPerPos?.length ?? 0) }, (_, j) =>
      add(a.acceptedPerPos?.[j], after.acceptedPerPos?.[j], before.acceptedPerPos?.[j]),
    ),
  };
}

/** The verdict line of `bench --endpoint`: the shared speedup verdict (verdict.ts). */
export function verdictOf(s: RatioSummary): string {
  return speedupVerdict(s).text;
}

export async function benchEndpoints(o: RemoteBenchOptions): Promise<RemoteBenchResult> {
  const t0 = performance.now();
  if (o.prompts.length === 0) throw new InvalidOptionError("No prompts to send.");
  const temperature = o.temperature ?? 0;
  const timeoutMs = o.timeoutMs ?? 600_000;
  const eps = [o.endpoint, ...(o.baseline ? [o.baseline] : [])];
  const resolved = await Promise.all(eps.map(async (ep) => ({ ...ep, url: apiBase(ep.url), model: ep.model ?? (await firstModel(ep, o.signal)) })));
  const labels = ["endpoint", "baseline"] as const;
  const runs: RemoteRun[][] = resolved.map(() => []);
  const scrapes = resolved.map(() => ({ before: null as ScrapedSpec | null, after: null as ScrapedSpec | null, ok: true }));
  const total = resolved.length * (1 + o.prompts.length * o.repeats);
  let done = 0;
  const req = { maxNewTokens: o.maxNewTokens, temperature, seed: o.seed, timeoutMs, signal: o.signal };
  // Warm-up: one request per endpoint (first-request costs: graph capture, caches, JIT).
  for (let a = 0; a < resolved.length; a++) {
    await streamOnce(resolved[a]!, o.prompts[0]!, req);
    o.onProgress?.(++done, total, `warm-up ${labels[a]}`);
  }
  for (let r = 0; r < o.repeats; r++) {
    for (let p = 0; p < o.prompts.length; p++) {
      // Alternate which endpoint goes first so that slow drift does not favour either.
      const order = resolved.map((_, i) => i);
      if ((r * o.prompts.length + p) % 2 === 1) order.reverse();
      for (const a of order) {
        const ep = resolved[a]!;
        const before = scrapes[a]!.ok ? await scrape(ep, o.signal) : null;
        const run = await streamOnce(ep, o.prompts[p]!, req);
        const after = scrapes[a]!.ok ? await scrape(ep, o.signal) : null;
        if (scrapes[a]!.ok) addScrapes(scrapes[a]!, before, after);
        runs[a]!.push({ prompt: o.prompts[p]!.id, repeat: r, ...run });
        o.onProgress?.(++done, total, `${labels[a]} ${o.prompts[p]!.id} #${r + 1}`);
      }
    }
  }
  const summaries: RemoteArmSummary[] = resolved.map((ep, a) => {
    const rs = runs[a]!;
    const acc = scrapes[a]!.ok ? acceptanceOf(scrapes[a]!.before, scrapes[a]!.after) : null;
    return {
      label: labels[a]!,
      url: ep.url,
      model: ep.model,
      runs: rs,
      medianDecodeTokensPerSecond: round4(median(rs.map((x) => x.decodeTokensPerSecond))),
      medianTtftMs: round4(median(rs.map((x) => x.ttftMs))),
      medianTotalMs: round4(median(rs.map((x) => x.totalMs))),
      completionTokens: rs.reduce((s, x) => s + x.completionTokens, 0),
      acceptance: acc,
      metricsNote: acc
        ? acc.source === "vllm"
          ? "acceptance from vllm:spec_decode_* counter deltas around each request"
          : "sglang:spec_accept_length gauge (the server's own running value, not this run's alone)"
        : "no speculative-decoding counters at /metrics (plain decoding, or the server does not export them)",
    };
  });
  const result: RemoteBenchResult = {
    kind: "spec-decode-bench-endpoint",
    createdAt: new Date().toISOString(),
    prompts: o.prompts.length,
    repeats: o.repeats,
    maxNewTokens: o.maxNewTokens,
    greedy: temperature === 0,
    endpoint: summaries[0]!,
    baseline: summaries[1],
    greedyIdentical: null,
    mismatches: [],
    elapsedMs: 0,
  };
  if (summaries[1]) {
    const e = runs[0]!;
    const b = runs[1]!;
    result.speedup = summarizeRatios(e.map((x, i) => x.decodeTokensPerSecond / b[i]!.decodeTokensPerSecond));
    result.ttftRatio = summarizeRatios(e.map((x, i) => b[i]!.ttftMs / x.ttftMs));
    result.verdict = verdictOf(result.speedup);
    if (temperature === 0) {
      result.mismatches = [...new Set(e.filter((x, i) => x.text !== b[i]!.text).map((x) => x.prompt))];
      result.greedyIdentical = result.mismatches.length === 0;
    }
  }
  result.elapsedMs = Math.round(performance.now() - t0);
  return result;
}

function num(x: number | null | undefined, d = 2): string {
  return x === null || x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(d);
}

export function remoteBenchMarkdown(r: RemoteBenchResult): string {
  const rows = [r.baseline, r.endpoint].filter((x): x is RemoteArmSummary => x !== undefined);
  const out: string[] = [];
  out.push("## spec-decode bench --endpoint", "");
  out.push(
    `- ${r.prompts} prompts x ${r.repeats} repeats, ${r.maxNewTokens} max new tokens, ${r.greedy ? "greedy" : "sampling"}; ` +
      `${r.baseline ? "the two endpoints interleaved (order alternating) after one warm-up request each" : "one warm-up request"}; elapsed ${(r.elapsedMs / 1000).toFixed(0)} s`,
  );
  out.push("");
  out.push("| endpoint | model | decode tok/s (median) | TTFT ms (median) | request ms (median) | tokens | acceptance | mean accepted length | per-position acceptance |");
  out.push("|---|---|---:|---:|---:|---:|---:|---:|---|");
  for (const a of rows) {
    const acc = a.acceptance;
    out.push(
      `| ${a.label} ${a.url} | ${a.model} | ${num(a.medianDecodeTokensPerSecond, 1)} | ${num(a.medianTtftMs, 1)} | ${num(a.medianTotalMs, 0)} | ${a.completionTokens} | ` +
        `${acc?.acceptanceRate !== undefined ? `${(acc.acceptanceRate * 100).toFixed(1)}%` : "-"} | ${num(acc?.meanAcceptedLength)} | ` +
        `${acc?.perPositionAcceptance?.length ? acc.perPositionAcceptance.slice(0, 8).map((x) => x.toFixed(2)).join(" / ") : "-"} |`,
    );
  }
  out.push("");
  if (r.speedup) {
    out.push(`- decode speedup (endpoint / baseline, paired): ${r.verdict}`);
    out.push(`- time-to-first-token ratio (baseline / endpoint): ${num(r.ttftRatio?.mean)}x${r.ttftRatio?.low != null ? ` [${num(r.ttftRatio.low)}, ${num(r.ttftRatio.high)}]` : ""}`);
    out.push(`- greedy outputs identical: ${r.greedyIdentical === null ? "n/a (sampling)" : r.greedyIdentical ? "yes" : `NO (${r.mismatches.join(", ")})`}`);
  }
  for (const a of rows) out.push(`- ${a.label}: ${a.metricsNote}`);
  out.push(
    "",
    "Conventions: decode tok/s = (completion tokens - 1) / (last streamed chunk - first streamed chunk), prefill excluded; TTFT = request sent to first streamed text; " +
      "speedup = geometric mean over (prompt, repeat) pairs with a t-based 95% CI on the log ratios; acceptance = accepted / drafted tokens; mean accepted length = 1 + accepted / drafts (bonus included).",
  );
  return out.join("\n") + "\n";
}
