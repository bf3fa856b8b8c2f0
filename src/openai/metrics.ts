/**
 * Counters of the OpenAI-compatible server, rendered in the Prometheus text format (0.0.4).
 * The speculative-decoding and request counters carry vLLM's names and labels
 * (vllm/v1/spec_decode/metrics.py, vllm/v1/metrics/loggers.py), so dashboards and scripts built for
 * vLLM read ours unchanged:
 *   vllm:spec_decode_num_drafts_total                 rounds that proposed >= 1 token
 *   vllm:spec_decode_num_draft_tokens_total           proposed tokens
 *   vllm:spec_decode_num_accepted_tokens_total        accepted proposed tokens (bonus not counted)
 *   vllm:spec_decode_num_accepted_tokens_per_pos_total{position="j"}
 *                                                     rounds whose proposal was accepted through position j
 * so mean acceptance length = 1 + accepted / drafts, as vLLM computes it. Our own counters use the
 * spec_decode_ prefix. Written by hand (a few dozen lines) rather than with prom-client: we need
 * counters and two gauges, no histograms, and no process metrics.
 */
import type { GenerationStats } from "../decoding/stats.js";

type Labels = Record<string, string>;

interface Family {
  help: string;
  type: "counter" | "gauge";
  /** Rendered sample name (counters get _total). */
  sample: string;
  values: Map<string, { labels: Labels; value: number }>;
}

function labelKey(labels: Labels): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"')}"`)
    .join(",");
}

export class Metrics {
  private readonly families = new Map<string, Family>();
  private readonly base: Labels;

  constructor(readonly modelName: string) {
    this.base = { model_name: modelName, engine: "0" };
    this.define("vllm:spec_decode_num_drafts", "counter", "Number of spec decoding drafts (rounds that proposed at least one token).");
    this.define("vllm:spec_decode_num_draft_tokens", "counter", "Number of draft tokens.");
    this.define("vllm:spec_decode_num_accepted_tokens", "counter", "Number of accepted tokens.");
    this.define("vllm:spec_decode_num_accepted_tokens_per_pos", "counter", "Accepted tokens per draft position.");
    this.define("vllm:prompt_tokens", "counter", "Number of prefill tokens processed.");
    this.define("vllm:generation_tokens", "counter", "Number of generation tokens processed.");
    this.define("vllm:request_success", "counter", "Count of finished requests (finished_reason: stop, length, abort).");
    this.define("vllm:num_requests_running", "gauge", "Number of requests generating now.");
    this.define("vllm:num_requests_waiting", "gauge", "Number of requests waiting in the queue.");
    this.define("spec_decode_target_forwards", "counter", "Target model forwards during decoding (one per round).");
    this.define("spec_decode_requests_rejected", "counter", "Requests refused before generation (reason: queue_full, invalid, ...).");
    this.define("spec_decode_requests_cancelled", "counter", "Requests whose client went away (stopped within one decoding round).");
    this.set("vllm:num_requests_running", 0);
    this.set("vllm:num_requests_waiting", 0);
    for (const name of ["vllm:spec_decode_num_drafts", "vllm:spec_decode_num_draft_tokens", "vllm:spec_decode_num_accepted_tokens", "vllm:prompt_tokens", "vllm:generation_tokens", "spec_decode_target_forwards", "spec_decode_requests_cancelled"]) {
      this.inc(name, 0);
    }
  }

  private define(name: string, type: "counter" | "gauge", help: string): void {
    this.families.set(name, { help, type, sample: type === "counter" ? `${name}_total` : name, values: new Map() });
  }

  inc(name: string, by = 1, labels: Labels = {}): void {
    const f = this.families.get(name);
    if (!f) throw new Error(`unknown metric ${name}`);
    const all = { ...this.base, ...labels };
    const key = labelKey(all);
    const cur = f.values.get(key);
    if (cur) cur.value += by;
    else f.values.set(key, { labels: all, value: by });
  }

  set(name: string, value: number): void {
    const f = this.families.get(name)!;
    const key = labelKey(this.base);
    f.values.set(key, { labels: { ...this.base }, value });
  }

  get(name: string, labels: Labels = {}): number {
    return this.families.get(name)?.values.get(labelKey({ ...this.base, ...labels }))?.value ?? 0;
  }

  /** Add one finished (or cancelled) generation. */
  record(stats: GenerationStats, finishedReason: "stop" | "length" | "abort"): void {
    this.inc("vllm:spec_decode_num_drafts", stats.draftRounds);
    this.inc("vllm:spec_decode_num_draft_tokens", stats.draftedTokens);
    this.inc("vllm:spec_decode_num_accepted_tokens", stats.acceptedTokens);
    // Rounds that accepted more than j proposed tokens = rounds accepted through position j.
    const hist = stats.acceptanceHistogram;
    for (let j = 0; j + 1 < hist.length; j++) {
      let n = 0;
      for (let a = j + 1; a < hist.length; a++) n += hist[a]!;
      if (n > 0) this.inc("vllm:spec_decode_num_accepted_tokens_per_pos", n, { position: String(j) });
    }
    this.inc("vllm:prompt_tokens", stats.promptTokens);
    this.inc("vllm:generation_tokens", stats.newTokens);
    this.inc("spec_decode_target_forwards", stats.targetForwards);
    this.inc("vllm:request_success", 1, { finished_reason: finishedReason });
    if (finishedReason === "abort") this.inc("spec_decode_requests_cancelled");
  }

  render(): string {
    const lines: string[] = [];
    for (const [name, f] of this.families) {
      lines.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`);
      for (const { labels, value } of f.values.values()) lines.push(`${f.sample}{${labelKey(labels)}} ${value}`);
    }
    return lines.join("\n") + "\n";
  }
}

/**
 * Read speculative-decoding counters from a Prometheus text page: vLLM's names (above) or
 * SGLang's (sglang:spec_accept_length gauge, or its accept counters where exported). Sums over
 * label sets. Undefined fields = the page does not expose them.
 */
export interface ScrapedSpec {
  drafts?: number;
  draftTokens?: number;
  acceptedTokens?: number;
  acceptedPerPos?: number[];
  /** SGLang's mean accepted length gauge (bonus included), when that is all the page has. */
  acceptLength?: number;
  generationTokens?: number;
  source?: "vllm" | "sglang";
}

export function parsePrometheus(text: string): Map<string, Array<{ labels: Labels; value: number }>> {
  const out = new Map<string, Array<{ labels: Labels; value: number }>>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Labels = {};
    if (m[3]) for (const lm of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]!] = lm[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    const value = Number(m[4]);
    if (!Number.isFinite(value)) continue;
    const list = out.get(m[1]!) ?? [];
    list.push({ labels, value });
    out.set(m[1]!, list);
  }
  return out;
}

export function scrapeSpecMetrics(text: string): ScrapedSpec {
  const samples = parsePrometheus(text);
  const sum = (...names: string[]): number | undefined => {
    for (const n of names) {
      const s = samples.get(n);
      if (s) return s.reduce((a, b) => a + b.value, 0);
    }
    return undefined;
  };
  const drafts = sum("vllm:spec_decode_num_drafts_total", "vllm:spec_decode_num_drafts");
  if (drafts !== undefined) {
    const per = samples.get("vllm:spec_decode_num_accepted_tokens_per_pos_total") ?? samples.get("vllm:spec_decode_num_accepted_tokens_per_pos") ?? [];
    const perPos: number[] = [];
    for (const s of per) {
      const p = Number(s.labels.position);
      if (Number.isInteger(p) && p >= 0 && p < 1024) perPos[p] = (perPos[p] ?? 0) + s.value;
    }
    return {
      source: "vllm",
      drafts,
      draftTokens: sum("vllm:spec_decode_num_draft_tokens_total", "vllm:spec_decode_num_draft_tokens"),
      acceptedTokens: sum("vllm:spec_decode_num_accepted_tokens_total", "vllm:spec_decode_num_accepted_tokens"),
      acceptedPerPos: Array.from(perPos, (x) => x ?? 0),
      generationTokens: sum("vllm:generation_tokens_total", "vllm:generation_tokens"),
    };
  }
  const acceptLength = samples.get("sglang:spec_accept_length");
  if (acceptLength) {
    return {
      source: "sglang",
      acceptLength: acceptLength.reduce((a, b) => a + b.value, 0) / acceptLength.length,
      generationTokens: sum("sglang:generation_tokens_total"),
    };
  }
  return {};
}
