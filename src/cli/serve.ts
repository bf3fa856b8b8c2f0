/** `spec-decode serve`: the MCP server, over stdio (default) or Streamable HTTP (`--http`). */
import { DEVICES, type Device } from "../engine/session.js";
import { InvalidOptionError } from "../errors.js";
import { stderrLogger, type LogLevel } from "../mcp/context.js";
import { DEFAULT_HTTP_PORT, TOKEN_ENV } from "../mcp/http.js";
import { DEFAULT_OPENAI_PORT } from "../openai/defaults.js";
import { parseAllowedEndpoints } from "../mcp/endpoints.js";
import { MODEL_ROOTS_ENV, ModelRoots, configuredModelRoots } from "../mcp/roots.js";
import { intOpt, numOpt, parse, threadsOpt } from "./args.js";
import { SERVE_OPENAI_OPTIONS, serveOpenAI } from "./serve-openai.js";

export const SERVE_USAGE = `Usage: spec-decode serve [--model-root DIR]... [--device cpu|webgpu|cuda] [--threads N] [--max-memory GIB]
  [--http [--host 127.0.0.1] [--port ${DEFAULT_HTTP_PORT}] [--token SECRET] [--allow-origin URL]... [--allowed-host NAME]...]
  [--allow-endpoint URL_PREFIX]... [--log-level debug|info|warn|error]
       spec-decode serve --openai --model DIR|REPO [--draft DIR] [--heads PATH] [--method M] [--k N|auto] [--exit-layer M]
  [--host 127.0.0.1] [--port ${DEFAULT_OPENAI_PORT}] [--token SECRET] [--served-model-name NAME] [--max-queue N] [--max-tokens N]
  [--max-body-bytes N] [--device cpu|webgpu|cuda] [--threads N]
Runs the MCP server on stdio (for Claude Code: claude mcp add speculative-decoding -- spec-decode serve),
or on Streamable HTTP at http://HOST:PORT/mcp with --http. Models are read only inside the model roots
(--model-root, repeatable, or ${MODEL_ROOTS_ENV}; default ~/.cache/speculative-decoding and the Hugging Face
cache). Binding --host beyond loopback needs --token (or ${TOKEN_ENV}). measure_speedup's endpoint arguments reach
only loopback servers unless --allow-endpoint names a URL prefix (e.g. http://gpu-box:8000; repeatable).
With --openai: an OpenAI-compatible server (/v1/models, /v1/completions, /v1/chat/completions with SSE
streaming, /metrics in Prometheus format with vLLM's spec-decode counter names) for one model, with the
given method as every request's default (a request may override it in the extra field "speculation").`;

export async function serveCommand(argv: string[]): Promise<number> {
  const { values: v } = parse(
    argv,
    {
      "model-root": { type: "string", multiple: true },
      device: { type: "string" },
      threads: { type: "string" },
      "max-memory": { type: "string" },
      http: { type: "boolean", default: false },
      host: { type: "string" },
      port: { type: "string" },
      token: { type: "string" },
      "allow-origin": { type: "string", multiple: true },
      "allowed-host": { type: "string", multiple: true },
      "allow-endpoint": { type: "string", multiple: true },
      "log-level": { type: "string" },
      ...SERVE_OPENAI_OPTIONS,
      help: { type: "boolean", short: "h", default: false },
    },
    SERVE_USAGE,
  );
  if (v.help) {
    process.stderr.write(`${SERVE_USAGE}\n`);
    return 0;
  }
  const device = v.device as string | undefined;
  if (device !== undefined && !(DEVICES as readonly string[]).includes(device)) {
    throw new InvalidOptionError(`--device must be one of ${DEVICES.join(", ")} (got "${device}").`);
  }
  const level = (v["log-level"] as string | undefined) ?? "info";
  if (!["debug", "info", "warn", "error"].includes(level)) throw new InvalidOptionError(`--log-level must be debug, info, warn or error.`);
  const maxMemGiB = numOpt(v["max-memory"], "max-memory") ?? (process.env.SPEC_DECODE_MAX_MEMORY ? numOpt(process.env.SPEC_DECODE_MAX_MEMORY, "SPEC_DECODE_MAX_MEMORY") : undefined);
  if (maxMemGiB !== undefined && !(maxMemGiB > 0)) throw new InvalidOptionError("--max-memory must be a positive number of GiB.");
  const common = {
    roots: new ModelRoots(configuredModelRoots((v["model-root"] as string[] | undefined) ?? [])),
    storeOptions: {
      device: device as Device | undefined,
      threads: threadsOpt(v.threads),
      maxBytes: maxMemGiB !== undefined ? Math.round(maxMemGiB * 1024 ** 3) : undefined,
    },
    logger: stderrLogger(level as LogLevel),
  };
  const allowEndpoints = v["allow-endpoint"] as string[] | undefined;
  if (v.openai) {
    if (allowEndpoints) throw new InvalidOptionError("--allow-endpoint applies to the MCP server (without --openai).");
    return serveOpenAI(v, common);
  }
  parseAllowedEndpoints(allowEndpoints); // a malformed prefix is an error now, not on the first call
  for (const k of Object.keys(SERVE_OPENAI_OPTIONS)) if (v[k] !== undefined && v[k] !== false) throw new InvalidOptionError(`--${k} applies to --openai only.`);
  if (!v.http) {
    if (v.host || v.port || v.token) throw new InvalidOptionError("--host, --port and --token apply to --http only.");
    const { runStdio } = await import("../mcp/stdio.js");
    await runStdio({ ...common, allowEndpoints });
    await new Promise<void>(() => {}); // runs until stdin closes (runStdio exits the process)
    return 0;
  }
  const { startHttpServer } = await import("../mcp/http.js");
  const server = await startHttpServer({
    ...common,
    allowEndpoints,
    host: v.host as string | undefined,
    port: intOpt(v.port, "port", 0, 65535),
    token: v.token as string | undefined,
    allowedOrigins: v["allow-origin"] as string[] | undefined,
    allowedHosts: v["allowed-host"] as string[] | undefined,
  });
  // Tests and scripts read this line to find an ephemeral port.
  process.stderr.write(`spec-decode serve: listening on ${server.url}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      server.close().finally(resolve);
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return 0;
}
