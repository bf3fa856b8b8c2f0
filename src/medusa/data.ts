/**
 * Training data for Medusa heads: token sequences with the base model's hidden state at every
 * position (the builder graph's `hidden_states`, i.e. the final-norm output the heads read).
 *
 *  - Self-distillation (`--self-distill N`): the base generates N continuations (greedy by
 *    default, or sampled with a seed) of built-in seed prompts or of the prompts in a data file;
 *    the heads learn the base's own next tokens. Targets lie in the generated part only.
 *  - Text (`--data FILE` alone): each line (plain text, or JSON with "text" / "prompt" /
 *    "messages") is one training sequence, every position a target.
 * Then one forward over each whole sequence collects the hidden states.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { CausalLM } from "../engine/causal-lm.js";
import type { Device } from "../engine/session.js";
import { InvalidOptionError, TokenizerError } from "../errors.js";
import { generateTokens } from "../decoding/generate.js";
import type { ChatMessage, TextTokenizer } from "../text/index.js";

export interface TrainingSequence {
  tokens: number[];
  /** Row-major [tokens.length, hidden] final-norm hidden states (empty when not collected). */
  hidden: Float32Array;
  /** Row-major [tokens.length, hidden] pre-final-norm features (EAGLE), when collected. */
  features?: Float32Array;
  /** Index of the first token that may serve as a target (the prompt before it is context only). */
  firstTarget: number;
}

/** One entry of a data file: a text, or a chat. */
export type DataEntry = { text: string } | { messages: ChatMessage[] };

const TOPICS = [
  "the ocean", "a small town", "machine learning", "cooking pasta", "the history of trains", "a rainy afternoon",
  "learning a language", "the solar system", "gardening", "a job interview", "chess openings", "the human heart",
  "writing a novel", "bicycles", "ancient Rome", "coffee", "mountain hiking", "electric cars", "friendship",
  "the stock market", "volcanoes", "jazz music", "a birthday party", "honey bees", "the internet", "winter",
  "building a website", "photography", "the moon landing", "recycling", "a lost dog", "sleep", "bread baking",
  "city traffic", "a science fair", "the desert", "origami", "public libraries", "earthquakes", "space travel",
];
const TEMPLATES = [
  "Write a short story about {}.",
  "Explain {} to a ten-year-old.",
  "What are three interesting facts about {}?",
  "Describe {} in a few sentences.",
  "Give me some practical tips about {}.",
  "Write a short poem about {}.",
  "Summarize the main ideas behind {}.",
  "Tell me about {}.",
];

/** N distinct built-in seed prompts (templates x topics, in a fixed order). */
export function seedPrompts(n: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) {
    const t = TEMPLATES[i % TEMPLATES.length]!;
    const topic = TOPICS[(i * 7 + Math.floor(i / TOPICS.length)) % TOPICS.length]!;
    out.push(t.replace("{}", topic));
    if (i > TEMPLATES.length * TOPICS.length * 4) break;
  }
  while (out.length < n) out.push(out[out.length % (TEMPLATES.length * TOPICS.length)]!);
  return out;
}

/** Parse a data file: one entry per non-empty line, plain text or JSON ({text}|{prompt}|{messages}). */
export function readDataFile(file: string): DataEntry[] {
  let raw: string;
  try {
    raw = readFileSync(file, "utf8");
  } catch (err) {
    throw new InvalidOptionError(`Cannot read --data ${file}: ${(err as Error).message}`);
  }
  const out: DataEntry[] = [];
  raw.split(/\r?\n/).forEach((line, i) => {
    const s = line.trim();
    if (!s) return;
    if (s.startsWith("{")) {
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(s) as Record<string, unknown>;
      } catch (err) {
        throw new InvalidOptionError(`${file}:${i + 1}: invalid JSON (${(err as Error).message}). Use one JSON object or one plain text per line.`);
      }
      if (typeof o.text === "string") out.push({ text: o.text });
      else if (typeof o.prompt === "string") out.push({ text: o.prompt });
      else if (Array.isArray(o.messages) && o.messages.every((m) => typeof m?.role === "string" && typeof m?.content === "string")) {
        out.push({ messages: o.messages as ChatMessage[] });
      } else {
        throw new InvalidOptionError(`${file}:${i + 1}: a JSON line needs "text", "prompt" or "messages" ([{role, content}]).`);
      }
    } else out.push({ text: s });
  });
  if (out.length === 0) throw new InvalidOptionError(`--data ${file} has no lines with text.`);
  return out;
}

function requireTokenizer(lm: CausalLM, tok: TextTokenizer | undefined): TextTokenizer {
  if (!tok) {
    throw new TokenizerError(`${lm.info.dir} has no tokenizer.json; training data is text, so the tokenizer is needed. Add the tokenizer files.`);
  }
  return tok;
}

/** Token ids of a prompt (chat template with a generation prompt when the tokenizer has one and chat is on). */
export function encodePrompt(tok: TextTokenizer, e: DataEntry, chat: boolean): number[] {
  if ("messages" in e) return tok.encodeChat(e.messages, { addGenerationPrompt: true });
  if (chat && tok.hasChatTemplate) return tok.encodeChat([{ role: "user", content: e.text }], { addGenerationPrompt: true });
  return tok.encode(e.text, { addSpecialTokens: true });
}

/** The base's final hidden states for `tokens` (one forward, no logits). */
export async function hiddenStatesOf(lm: CausalLM, tokens: number[]): Promise<Float32Array> {
  const cache = lm.newCache();
  const out = await lm.forward(cache, tokens, { hidden: true, logits: "none" });
  if (!out.hidden) throw new InvalidOptionError(`${lm.label} returned no hidden states.`);
  return out.hidden.slice();
}

/** What a training sequence carries: final hidden states (Medusa) or pre-norm features (EAGLE). */
export type Collect = "hidden" | "features";

async function sequenceOf(lm: CausalLM, tokens: number[], firstTarget: number, collect: Collect): Promise<TrainingSequence> {
  if (collect === "hidden") return { tokens, hidden: await hiddenStatesOf(lm, tokens), firstTarget };
  const out = await lm.forward(lm.newCache(), tokens, { features: true, logits: "none" });
  if (!out.features) throw new InvalidOptionError(`${lm.label} returned no features.`);
  return { tokens, hidden: new Float32Array(0), features: out.features.slice(), firstTarget };
}

/**
 * Prompts in token-id space for models without a tokenizer: BOS followed by `sampled` tokens the
 * model samples itself (temperature 1, seed + i), so greedy continuations differ and look like the
 * model's own text.
 */
export async function sampledIdPrompts(lm: CausalLM, count: number, o: { sampled?: number; seed?: number; bos?: number } = {}): Promise<number[][]> {
  const bos = o.bos ?? lm.info.bosId ?? 1;
  const n = o.sampled ?? 8;
  const out: number[][] = [];
  for (let i = 0; i < count; i++) {
    const res = await generateTokens({ target: lm, promptIds: [bos], maxNewTokens: n, eosIds: [], sampling: { temperature: 1, seed: (o.seed ?? 0) * 100_003 + i } });
    out.push([bos, ...res.tokens]);
  }
  return out;
}

/** Read a --prompt-ids file: one prompt per line, token ids separated by spaces or commas (or a JSON array). */
export function readPromptIdsFile(file: string, vocab?: number): number[][] {
  let raw: string;
  try {
    raw = readFileSync(file, "utf8");
  } catch (err) {
    throw new InvalidOptionError(`Cannot read --prompt-ids ${file}: ${(err as Error).message}`);
  }
  const out: number[][] = [];
  raw.split(/\r?\n/).forEach((line, i) => {
    const s = line.trim().replace(/^\[|\]$/g, "");
    if (!s) return;
    const ids = s.split(/[\s,]+/).map(Number);
    if (ids.some((x) => !Number.isInteger(x) || x < 0 || (vocab !== undefined && x >= vocab))) {
      throw new InvalidOptionError(`${file}:${i + 1}: expected token ids (integers from 0 to ${(vocab ?? 1) - 1}) separated by spaces or commas.`);
    }
    out.push(ids);
  });
  if (out.length === 0) throw new InvalidOptionError(`--prompt-ids ${file} has no prompts.`);
  return out;
}

export interface SelfDistillOptions {
  count: number;
  /** Prompts as token ids (cycled): for models without a tokenizer. Wins over `prompts`. */
  promptIds?: number[][];
  /** Collect hidden states (default, Medusa) or features (EAGLE). */
  collect?: Collect;
  maxNewTokens: number;
  /** Prompts to continue (cycled); default: built-in seed prompts. */
  prompts?: DataEntry[];
  temperature?: number;
  seed?: number;
  chat?: boolean;
  onProgress?: (done: number, total: number, tokens: number) => void;
}

/** Let the base generate `count` sequences and collect their hidden states. */
export async function selfDistill(lm: CausalLM, tokIn: TextTokenizer | undefined, o: SelfDistillOptions): Promise<TrainingSequence[]> {
  const tok = o.promptIds ? tokIn : requireTokenizer(lm, tokIn);
  const prompts = o.prompts ?? seedPrompts(o.count).map((text) => ({ text }));
  const temperature = o.temperature ?? 0;
  const out: TrainingSequence[] = [];
  const maxCtx = lm.info.maxContext;
  let total = 0;
  for (let i = 0; i < o.count; i++) {
    const prompt = o.promptIds ? o.promptIds[i % o.promptIds.length]! : encodePrompt(tok!, prompts[i % prompts.length]!, o.chat ?? true);
    const room = Math.min(o.maxNewTokens, Number.isFinite(maxCtx) ? maxCtx - prompt.length : o.maxNewTokens);
    if (prompt.length === 0 || room < 2) continue;
    const vocab = lm.info.vocabSize;
    const res = await generateTokens({
      target: lm,
      promptIds: prompt,
      maxNewTokens: room,
      vocabLimit: tok && vocab !== undefined && tok.vocabSize < vocab ? tok.vocabSize : undefined,
      sampling: temperature > 0 ? { temperature, seed: (o.seed ?? 0) + i } : {},
    });
    const tokens = [...prompt, ...res.tokens];
    out.push(await sequenceOf(lm, tokens, prompt.length, o.collect ?? "hidden"));
    total += res.tokens.length;
    o.onProgress?.(i + 1, o.count, total);
  }
  return out;
}

/** Text sequences as training data: every position is a target. */
export async function textSequences(
  lm: CausalLM,
  tokIn: TextTokenizer | undefined,
  entries: DataEntry[],
  o: { maxLength: number; collect?: Collect; onProgress?: (done: number, total: number, tokens: number) => void },
): Promise<TrainingSequence[]> {
  const tok = requireTokenizer(lm, tokIn);
  const out: TrainingSequence[] = [];
  const maxCtx = lm.info.maxContext;
  const limit = Math.min(o.maxLength, Number.isFinite(maxCtx) ? maxCtx : o.maxLength);
  let total = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    let tokens = "messages" in e ? tok.encodeChat(e.messages) : tok.encode(e.text, { addSpecialTokens: true });
    tokens = tokens.slice(0, limit);
    if (tokens.length < 3) continue;
    out.push(await sequenceOf(lm, tokens, 0, o.collect ?? "hidden"));
    total += tokens.length;
    o.onProgress?.(i + 1, entries.length, total);
  }
  return out;
}

/** Where a trainer's data came from, as its report states it (train-medusa, train-eagle). */
export interface TrainingDataSummary {
  source: "self-distill" | "text";
  sequences: number;
  tokens: number;
  seconds: number;
  temperature?: number;
  file?: string;
  promptIds?: string;
  /** The ONNX build (relative to the model directory) whose sequences/features the data holds. */
  build?: string;
}

export function trainingDataSummary(
  o: { selfDistill?: number; temperature?: number; data?: string; promptIds?: string },
  sequences: number,
  tokens: number,
  seconds: number,
  build?: string,
): TrainingDataSummary {
  return {
    source: o.selfDistill !== undefined ? "self-distill" : "text",
    ...(build !== undefined ? { build } : {}),
    sequences,
    tokens,
    seconds: Math.round(seconds * 100) / 100,
    ...(o.selfDistill !== undefined ? { temperature: o.temperature ?? 0 } : {}),
    ...(o.data ? { file: resolve(o.data) } : {}),
    ...(o.promptIds ? { promptIds: resolve(o.promptIds) } : {}),
  };
}

/** A trainer needs data: self-distillation (N >= 1 sequences the model generates) and/or a text file. */
export function checkTrainingDataOptions(o: { selfDistill?: number; data?: string }, who: "target" | "base"): void {
  if (o.selfDistill === undefined && o.data === undefined) {
    throw new InvalidOptionError(`Give training data: --self-distill N (the ${who} generates N sequences) and/or --data FILE.`);
  }
  if (o.selfDistill !== undefined && (!Number.isInteger(o.selfDistill) || o.selfDistill < 1)) {
    throw new InvalidOptionError(`--self-distill must be an integer >= 1 (got ${o.selfDistill}).`);
  }
}

/** The data and runtime options every self-distilling trainer takes (train-medusa, train-eagle). */
export interface SelfDistillDataOptions {
  /**
   * The ONNX build that generates the sequences and their features/hidden states (e.g. "q4",
   * "int8" or "model_q4.onnx", as inspectModelDir takes it): the build the head will run on.
   * The frozen embedding, final norm and LM head still come from the checkpoint. Default: the
   * model's default build.
   */
  variant?: string;
  /** Generate this many sequences with the model (self-distillation). */
  selfDistill?: number;
  /** Text/jsonl file: training text, or the prompts for self-distillation. */
  data?: string;
  /**
   * Self-distillation prompts as token ids (a file, one prompt per line). Without it, a model
   * without tokenizer.json starts from BOS + a few tokens it samples itself.
   */
  promptIds?: string;
  /** Self-distillation: tokens generated per sequence (default 128). */
  maxNewTokens?: number;
  /** Text data: tokens per sequence (default 512). */
  maxLength?: number;
  /** Self-distillation temperature (default 0 = greedy). */
  temperature?: number;
  /** Wrap prompts in the chat template when the tokenizer has one (default true). */
  chat?: boolean;
  threads?: number;
  device?: Device;
}

/**
 * Token-id prompts for self-distillation: from --prompt-ids, or (no tokenizer and no --data)
 * BOS + a few tokens the model samples itself. Undefined = use text prompts.
 */
export async function idPromptsFor(
  lm: CausalLM,
  hasTokenizer: boolean,
  o: { promptIds?: string; data?: string; selfDistill?: number; seed?: number },
  log: (line: string) => void,
): Promise<number[][] | undefined> {
  if (o.promptIds) return readPromptIdsFile(o.promptIds, lm.info.vocabSize);
  if (hasTokenizer) return undefined;
  if (o.data) {
    throw new InvalidOptionError(
      `${lm.info.dir} has no tokenizer.json, so --data text cannot be encoded. Give prompts as token ids with --prompt-ids FILE, ` +
        `or neither (the model then starts from BOS and a few tokens it samples itself).`,
    );
  }
  log("no tokenizer: self-distilling in token-id space from BOS + 8 tokens the model samples itself (seeded)");
  return sampledIdPrompts(lm, o.selfDistill ?? 1, { seed: o.seed });
}
