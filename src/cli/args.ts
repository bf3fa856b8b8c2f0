/** Small helpers shared by the CLI commands: typed option parsing with errors that name the fix. */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { maxThreads } from "../engine/session.js";
import { InvalidOptionError } from "../errors.js";

export type Options = NonNullable<ParseArgsConfig["options"]>;

export function parse(argv: string[], options: Options, usage: string) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: false, strict: true });
  } catch (err) {
    throw new InvalidOptionError(`${(err as Error).message}\n\n${usage}`);
  }
}

export function intOpt(v: unknown, name: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new InvalidOptionError(`--${name} must be an integer${min > Number.MIN_SAFE_INTEGER ? ` >= ${min}` : ""}${max < Number.MAX_SAFE_INTEGER ? ` and <= ${max}` : ""} (got "${String(v)}").`);
  }
  return n;
}

export function numOpt(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidOptionError(`--${name} must be a number (got "${String(v)}").`);
  return n;
}

export function intList(v: unknown, name: string): number[] | undefined {
  if (v === undefined) return undefined;
  const parts = String(v).split(",").map((s) => s.trim());
  const out = parts.map((p) => (p === "" ? NaN : Number(p)));
  if (out.length === 0 || out.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new InvalidOptionError(`--${name} must be a comma-separated list of non-negative integers like 1,2,3 (got "${String(v)}").`);
  }
  return out;
}

export function required<T>(v: T | undefined, name: string, usage: string): T {
  if (v === undefined || v === "") throw new InvalidOptionError(`--${name} is required.\n\n${usage}`);
  return v;
}

export const COMMON_MODEL_OPTIONS: Options = {
  device: { type: "string" },
  threads: { type: "string" },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
};

/** --threads: 1 .. the core count (omit it to let onnxruntime choose). */
export function threadsOpt(v: unknown): number | undefined {
  return intOpt(v, "threads", 1, maxThreads());
}
