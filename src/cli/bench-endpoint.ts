/**
 * `spec-decode bench --endpoint URL [--endpoint-baseline URL]`: measure OpenAI-compatible servers
 * (ours, vLLM, SGLang, llama-server) with the local bench's prompts, statistics and verdicts
 * (src/bench/remote.ts). Markdown on stdout, JSON with --json / --out.
 */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { benchEndpoints, remoteBenchMarkdown } from "../bench/remote.js";
import { InvalidOptionError } from "../errors.js";
import { intOpt, numOpt, type Options } from "./args.js";
import { loadPrompts } from "./prompts.js";
import { progressBar } from "./progress.js";

export const BENCH_ENDPOINT_OPTIONS: Options = {
  endpoint: { type: "string" },
  "endpoint-baseline": { type: "string" },
  "endpoint-model": { type: "string" },
  "baseline-model": { type: "string" },
  "api-key": { type: "string" },
};

/** Local-only options that make no sense against a server. */
const LOCAL_ONLY = ["model", "draft", "heads", "twin", "agreement", "divergence", "methods", "k", "exit-layer", "ks", "sweep", "device", "threads", "chart"];

export const BENCH_ENDPOINT_USAGE = `       spec-decode bench --endpoint URL [--endpoint-baseline URL] [--endpoint-model NAME] [--baseline-model NAME] [--api-key KEY]
  [--workload ... | --prompts ...] [--max-new-tokens N] [--repeats R] [--temperature T] [--seed S] [--json] [--out FILE.json]
Measures OpenAI-compatible servers (URL like http://127.0.0.1:8080/v1): streamed decode tokens/s and time to first
token, acceptance from the server's /metrics (vLLM or SGLang counter names) where exposed, and with a baseline the
paired speedup with a 95% CI, a verdict, and whether greedy outputs are identical. --api-key defaults to $OPENAI_API_KEY.`;

export async function benchEndpointCommand(v: Record<string, unknown>): Promise<number> {
  for (const k of LOCAL_ONLY) {
    if (v[k] !== undefined && v[k] !== false) throw new InvalidOptionError(`--${k} applies to local benchmarks; with --endpoint the server decides the model and method.`);
  }
  if (v.endpoint === undefined) throw new InvalidOptionError("--endpoint-baseline needs --endpoint URL (the server to measure against it).");
  const apiKey = (v["api-key"] as string | undefined) ?? (process.env.OPENAI_API_KEY || undefined);
  const bar = progressBar("bench", process.stderr, { quiet: Boolean(v.quiet) });
  const { prompts } = await loadPrompts(v);
  const result = await benchEndpoints({
    endpoint: { url: String(v.endpoint), model: v["endpoint-model"] as string | undefined, apiKey },
    baseline: v["endpoint-baseline"] !== undefined ? { url: String(v["endpoint-baseline"]), model: (v["baseline-model"] ?? v["endpoint-model"]) as string | undefined, apiKey } : undefined,
    prompts,
    maxNewTokens: intOpt(v["max-new-tokens"], "max-new-tokens", 1) ?? 128,
    repeats: intOpt(v.repeats, "repeats", 1, 100) ?? 3,
    temperature: numOpt(v.temperature, "temperature"),
    seed: intOpt(v.seed, "seed", 0),
    onProgress: (done, total, msg) => bar.update(done, total, msg),
  });
  bar.done();
  const json = JSON.stringify(result, null, 2);
  if (v.out) writeFileSync(resolve(String(v.out)), json + "\n");
  if (v.json) console.log(json);
  else process.stdout.write(remoteBenchMarkdown(result));
  return result.greedyIdentical === false ? 3 : 0;
}
