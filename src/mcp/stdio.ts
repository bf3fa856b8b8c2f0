/**
 * The stdio transport (what `spec-decode serve` runs, and what Claude Code and most MCP clients
 * spawn). stdout carries the protocol only: everything else, console.log included, goes to stderr.
 * Runnable directly too: `node dist/mcp/stdio.js [--model-root DIR]...`.
 */
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createServer, type CreateServerOptions } from "./server.js";
import { stderrLogger } from "./context.js";
import { ModelStore } from "../engine/model-store.js";
import { ModelRoots, configuredModelRoots } from "./roots.js";

/** Keep stdout for JSON-RPC: route console output to stderr. */
export function protectStdout(): void {
  const toErr = (...a: unknown[]) => console.error(...a);
  console.log = toErr;
  console.info = toErr;
  console.debug = toErr;
}

export async function runStdio(opts: CreateServerOptions = {}): Promise<void> {
  protectStdout();
  const logger = opts.logger ?? stderrLogger();
  const store = opts.store ?? new ModelStore(opts.storeOptions);
  const roots = opts.roots instanceof ModelRoots ? opts.roots : new ModelRoots(opts.roots ?? configuredModelRoots());
  const server = createServer({ ...opts, store, logger, roots });
  const transport = new StdioServerTransport();
  let closing = false;
  const shutdown = async (why: string) => {
    if (closing) return;
    closing = true;
    logger.log("info", `shutting down (${why})`);
    try {
      await server.close();
    } catch {
      /* already closed */
    }
    await store.dispose().catch(() => undefined);
    process.exit(0);
  };
  transport.onclose = () => void shutdown("stdin closed");
  // The client went away (EPIPE on stdout): nothing more can be said; stop quietly.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => void shutdown(`stdout ${err.code ?? err.message}`));
  process.stdin.on("end", () => void shutdown("stdin ended"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  await server.connect(transport);
  logger.log("info", `MCP server ready on stdio (model roots: ${roots.roots.join(", ")})`);
}

function isMain(): boolean {
  try {
    return !!process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const roots: string[] = [];
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) if (argv[i] === "--model-root" && argv[i + 1]) roots.push(argv[++i]!);
  runStdio(roots.length ? { roots } : {}).catch((err) => {
    process.stderr.write(`spec-decode MCP server: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
