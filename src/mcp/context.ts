/** What every tool receives: the shared engine/model store, the model roots, and a logger. */
import { SpecEngine } from "../api.js";
import type { ModelStore } from "../engine/model-store.js";
import type { ModelRoots } from "./roots.js";

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface Logger {
  log(level: LogLevel, message: string): void;
}

const LEVELS: LogLevel[] = ["debug", "info", "warn", "error"];

/** Logs to stderr (never stdout: stdout is the stdio transport's channel). */
export function stderrLogger(minLevel: LogLevel = "info"): Logger {
  const min = LEVELS.indexOf(minLevel);
  return {
    log(level, message) {
      if (LEVELS.indexOf(level) < min) return;
      process.stderr.write(`[spec-decode ${level}] ${message}\n`);
    },
  };
}

export const silentLogger: Logger = { log() {} };

export interface ToolContext {
  engine: SpecEngine;
  store: ModelStore;
  roots: ModelRoots;
  logger: Logger;
  /** URL prefixes beyond loopback that measure_speedup's endpoint arguments may reach (`serve --allow-endpoint`, parsed by endpoints.ts). */
  allowedEndpoints?: readonly string[];
  /** Serializes work per key (e.g. two builds of the same directory). */
  exclusive<T>(key: string, fn: () => Promise<T>): Promise<T>;
}

export function makeExclusive(): ToolContext["exclusive"] {
  const chains = new Map<string, Promise<unknown>>();
  return async <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const prev = chains.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    chains.set(key, tail);
    try {
      return await run;
    } finally {
      if (chains.get(key) === tail) chains.delete(key);
    }
  };
}
