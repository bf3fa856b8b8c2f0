/** Small helpers shared by the CLI commands: typed option parsing with errors that name the fix. */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { maxThreads, type Device } from "../engine/session.js";
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

/**
 * Flags every self-distilling trainer takes (train-medusa, train-eagle): the model, where to
 * write, the data (generated from prompts / token ids, or a text file) and the runtime.
 */
export const SELF_DISTILL_OPTIONS: Options = {
  model: { type: "string" },
  variant: { type: "string" },
  out: { type: "string" },
  "self-distill": { type: "string" },
  data: { type: "string" },
  "prompt-ids": { type: "string" },
  "max-new-tokens": { type: "string" },
  "max-length": { type: "string" },
  temperature: { type: "string" },
  seed: { type: "string" },
  "no-chat": { type: "boolean", default: false },
  "max-steps": { type: "string" },
  epochs: { type: "string" },
  lr: { type: "string" },
  threads: { type: "string" },
  device: { type: "string" },
  help: { type: "boolean", short: "h", default: false },
};

/** The trainer options named by SELF_DISTILL_OPTIONS, checked (threads capped like every command's). */
export function selfDistillArgs(v: Record<string, unknown>, usage: string, epochsMax = Number.MAX_SAFE_INTEGER) {
  return {
    model: required(v.model as string | undefined, "model", usage),
    variant: v.variant as string | undefined,
    out: v.out as string | undefined,
    selfDistill: intOpt(v["self-distill"], "self-distill", 1),
    data: v.data as string | undefined,
    promptIds: v["prompt-ids"] as string | undefined,
    maxNewTokens: intOpt(v["max-new-tokens"], "max-new-tokens", 2),
    maxLength: intOpt(v["max-length"], "max-length", 3),
    temperature: numOpt(v.temperature, "temperature"),
    seed: intOpt(v.seed, "seed"),
    chat: !v["no-chat"],
    maxSteps: intOpt(v["max-steps"], "max-steps", 1),
    epochs: intOpt(v.epochs, "epochs", 1, epochsMax),
    lr: numOpt(v.lr, "lr"),
    threads: threadsOpt(v.threads),
    device: v.device as Device | undefined,
  };
}
