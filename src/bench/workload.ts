/**
 * The built-in benchmark workload: a small prompt set written for this project, grouped like
 * Spec-Bench's categories (chat, translation, summarization, qa, math, rag). Categories matter for
 * speculation: summarization and RAG copy from their input (prompt lookup shines), math and QA are
 * short and formulaic, open chat is the hardest for any drafter.
 *
 * Three prompts per category, written for this project (not taken from Spec-Bench). Prompts are
 * kept short (a few hundred characters at most) so that they fit the context of tiny
 * test models too. The bench engineer may add prompts and categories here; `builtinWorkload` is
 * what `measure_speedup` / `tune_draft_k` (MCP) and `spec-decode bench|tune` read.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { ChatMessage } from "../api.js";
import { InvalidOptionError } from "../errors.js";

export const WORKLOAD_CATEGORIES = ["chat", "translation", "summarization", "qa", "math", "rag"] as const;
export type WorkloadCategory = (typeof WORKLOAD_CATEGORIES)[number];

export interface BenchPrompt {
  /** Stable id, e.g. "qa-2". */
  id: string;
  category: string;
  /** Exactly one of prompt / messages / promptIds. */
  prompt?: string;
  messages?: ChatMessage[];
  promptIds?: number[];
}

const user = (content: string): ChatMessage[] => [{ role: "user", content }];

const PROMPTS: Record<WorkloadCategory, string[]> = {
  chat: [
    "I keep forgetting to water my plants. Suggest three simple habits that would help, one sentence each.",
    "Write a short, friendly message inviting a new colleague to join our team for lunch on Friday.",
    "My neighbour's dog barks every morning at six. How can I bring it up politely? Give me two opening lines.",
  ],
  translation: [
    "Translate into French: The train to the coast leaves every morning at seven, and the tickets are cheaper if you buy them the day before.",
    "Translate into German: Please close the windows before you leave the office, because rain is expected tonight.",
    "Translate into Spanish: The museum is free on the first Sunday of every month, but you still need to book a time slot online.",
  ],
  summarization: [
    "Summarize in two sentences:\nThe town library reopened on Monday after a six-month renovation. The building now has a larger " +
      "children's room, a quiet study floor, and a small workshop with sewing machines and 3D printers that anyone with a " +
      "library card can book. Opening hours were extended to nine in the evening on weekdays. The renovation was paid for " +
      "by a regional grant and by donations from residents.",
    "Summarize the following note in one sentence:\nThe quarterly meeting is moved from Tuesday to Thursday because the " +
      "main room is being repainted. The agenda stays the same: budget review, hiring plan, and the office move. Please " +
      "send your slides to Maria by Wednesday noon.",
    "Summarize this review in one sentence:\nThe blender is loud and the lid is hard to clean, but it crushes ice in " +
      "seconds and the motor has not slowed down after a year of daily smoothies. For the price, I would buy it again, " +
      "although I wish it came with a smaller cup for single portions.",
  ],
  qa: [
    "What is the boiling point of water at sea level in degrees Celsius, and why does it drop at high altitude?",
    "Which planet in our solar system has the shortest year, and roughly how long is it?",
    "Why do leaves of many trees change colour in autumn? Answer in three sentences.",
  ],
  math: [
    "A shop sells pencils in packs of 12. A teacher needs 150 pencils. How many packs must she buy? Explain step by step.",
    "If 3x + 7 = 25, what is x? Show each step.",
    "A train travels 180 km in 2 hours and then 120 km in 1.5 hours. What is its average speed for the whole trip? Show your work.",
  ],
  rag: [
    "Context: The Harbor Line tram runs every 10 minutes from 6:00 to 23:00. On Sundays it runs every 20 minutes. Tickets " +
      "cost 2.40 euros and are valid for 90 minutes, transfers included.\n\nQuestion: How often does the Harbor Line tram " +
      "run on Sundays, and how long is a ticket valid? Answer using the context.",
    "Context: Our return policy allows returns within 30 days of delivery. Items must be unused and in their original " +
      "packaging. Refunds go back to the original payment method within 5 business days of receiving the item.\n\n" +
      "Question: Can I return an opened item after three weeks? Answer using the context.",
    "Context: The community garden has 24 plots. Each plot costs 35 euros per season, water is included, and tools can be " +
      "borrowed from the shed between 8:00 and 20:00. New members are placed on a waiting list in the order they apply.\n\n" +
      "Question: How much does a plot cost, and when can I borrow tools? Answer using the context.",
  ],
};

/**
 * The built-in workload, optionally one category only. With `chat: true` prompts are given as chat
 * messages (for instruction-tuned models with a chat template), else as plain text.
 */
export function builtinWorkload(category?: string, opts: { chat?: boolean } = {}): BenchPrompt[] {
  if (category !== undefined && !(WORKLOAD_CATEGORIES as readonly string[]).includes(category)) {
    throw new InvalidOptionError(`Unknown workload category "${category}". Use one of: ${WORKLOAD_CATEGORIES.join(", ")}.`);
  }
  const cats = category ? [category as WorkloadCategory] : [...WORKLOAD_CATEGORIES];
  return cats.flatMap((c) =>
    PROMPTS[c].map((text, i) => (opts.chat ? { id: `${c}-${i + 1}`, category: c, messages: user(text) } : { id: `${c}-${i + 1}`, category: c, prompt: text })),
  );
}

/** Parse "builtin" or "builtin:<category>". */
export function parseWorkloadSpec(spec: string, opts: { chat?: boolean } = {}): BenchPrompt[] {
  const m = /^builtin(?::(\w+))?$/.exec(spec.trim());
  if (!m) throw new InvalidOptionError(`Workload must be "builtin" or "builtin:<category>" (categories: ${WORKLOAD_CATEGORIES.join(", ")}); got "${spec}".`);
  return builtinWorkload(m[1], opts);
}

// ---------------------------------------------------------------------------------------------
// Prompt files: Spec-Bench's question.jsonl, or our own jsonl.

/**
 * Spec-Bench's question.jsonl categories -> our six. Spec-Bench groups MT-bench's eight categories
 * as one "multi-turn conversation" task; we call it chat. math_reasoning (GSM8K) is our math.
 */
export const SPEC_BENCH_CATEGORIES: Record<string, WorkloadCategory> = {
  writing: "chat",
  roleplay: "chat",
  reasoning: "chat",
  math: "chat",
  coding: "chat",
  extraction: "chat",
  stem: "chat",
  humanities: "chat",
  translation: "translation",
  summarization: "summarization",
  qa: "qa",
  math_reasoning: "math",
  rag: "rag",
};

/**
 * Parse a prompts file, one JSON object per line (blank lines ignored):
 *  - Spec-Bench / MT-bench format: {"question_id", "category", "turns": [first, second, ...]}. Only the
 *    first turn is used (later turns need the model's own first answer); the category is mapped with
 *    SPEC_BENCH_CATEGORIES (the original is kept in the id: "<category>-<question_id>").
 *  - Ours: {"id"?, "category"?, and exactly one of "prompt" | "messages" | "promptIds"}.
 * With `chat`, text prompts become one user message (for models with a chat template).
 */
export function parsePromptsJsonl(text: string, opts: { chat?: boolean; source?: string } = {}): BenchPrompt[] {
  const src = opts.source ?? "prompts file";
  const out: BenchPrompt[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "") continue;
    let obj: Record<string, unknown>;
    try {
      obj = JSON.parse(line) as Record<string, unknown>;
    } catch (err) {
      throw new InvalidOptionError(`${src}, line ${i + 1}: not valid JSON (${(err as Error).message}). Each line must be one JSON object.`);
    }
    if (obj === null || typeof obj !== "object" || Array.isArray(obj)) throw new InvalidOptionError(`${src}, line ${i + 1}: expected a JSON object.`);
    const asPrompt = (t: string): Pick<BenchPrompt, "prompt" | "messages"> => (opts.chat ? { messages: user(t) } : { prompt: t });
    if ("turns" in obj) {
      const turns = obj.turns;
      if (!Array.isArray(turns) || turns.length === 0 || typeof turns[0] !== "string" || turns[0] === "") {
        throw new InvalidOptionError(`${src}, line ${i + 1}: "turns" must be a non-empty list of strings (Spec-Bench format).`);
      }
      const orig = typeof obj.category === "string" ? obj.category : "custom";
      const qid = obj.question_id ?? i + 1;
      out.push({ id: `${orig}-${String(qid)}`, category: SPEC_BENCH_CATEGORIES[orig] ?? orig, ...asPrompt(turns[0] as string) });
      continue;
    }
    const given = ["prompt", "messages", "promptIds"].filter((k) => obj[k] !== undefined);
    if (given.length !== 1) {
      throw new InvalidOptionError(
        `${src}, line ${i + 1}: give exactly one of "prompt", "messages" or "promptIds" (or Spec-Bench's "turns"); found ${given.length === 0 ? "none" : given.join(", ")}.`,
      );
    }
    const id = typeof obj.id === "string" || typeof obj.id === "number" ? String(obj.id) : `prompt-${out.length + 1}`;
    const category = typeof obj.category === "string" ? obj.category : "custom";
    if (obj.prompt !== undefined) {
      if (typeof obj.prompt !== "string" || obj.prompt === "") throw new InvalidOptionError(`${src}, line ${i + 1}: "prompt" must be a non-empty string.`);
      out.push({ id, category, ...asPrompt(obj.prompt) });
    } else if (obj.messages !== undefined) {
      const msgs = obj.messages;
      if (!Array.isArray(msgs) || msgs.length === 0 || msgs.some((m) => !m || typeof (m as ChatMessage).role !== "string" || typeof (m as ChatMessage).content !== "string")) {
        throw new InvalidOptionError(`${src}, line ${i + 1}: "messages" must be a non-empty list of {role, content} strings.`);
      }
      out.push({ id, category, messages: msgs as ChatMessage[] });
    } else {
      const ids = obj.promptIds;
      if (!Array.isArray(ids) || ids.length === 0 || ids.some((t) => !Number.isInteger(t) || (t as number) < 0)) {
        throw new InvalidOptionError(`${src}, line ${i + 1}: "promptIds" must be a non-empty list of token ids.`);
      }
      out.push({ id, category, promptIds: ids as number[] });
    }
  }
  if (out.length === 0) throw new InvalidOptionError(`${src} holds no prompts.`);
  const seen = new Set<string>();
  for (const p of out) {
    if (seen.has(p.id)) throw new InvalidOptionError(`${src}: prompt id "${p.id}" appears twice; ids must be unique.`);
    seen.add(p.id);
  }
  return out;
}

/** Read a prompts file (see parsePromptsJsonl). */
export async function readPromptsFile(path: string, opts: { chat?: boolean } = {}): Promise<BenchPrompt[]> {
  const { readFile } = await import("node:fs/promises");
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new InvalidOptionError(`Cannot read the prompts file ${path}: ${(err as Error).message}. Give a .jsonl file (Spec-Bench's question.jsonl works).`);
  }
  return parsePromptsJsonl(text, { ...opts, source: path });
}

/**
 * Keep one category and/or the first `perCategory` prompts of each category (in file order), so a
 * 480-question file can be sampled evenly.
 */
export function selectPrompts(prompts: BenchPrompt[], opts: { category?: string; perCategory?: number } = {}): BenchPrompt[] {
  let out = prompts;
  if (opts.category !== undefined) {
    out = out.filter((p) => p.category === opts.category);
    if (out.length === 0) {
      const cats = [...new Set(prompts.map((p) => p.category))];
      throw new InvalidOptionError(`No prompt has category "${opts.category}" (categories: ${cats.join(", ")}).`);
    }
  }
  if (opts.perCategory !== undefined) {
    const n = new Map<string, number>();
    out = out.filter((p) => {
      const c = n.get(p.category) ?? 0;
      n.set(p.category, c + 1);
      return c < opts.perCategory!;
    });
  }
  return out;
}

/**
 * Where Spec-Bench's question.jsonl is, if present: $SPEC_BENCH_QUESTIONS, else
 * ../shared/workloads/spec-bench-questions.jsonl next to the working directory or to this package.
 * (The file is Apache-2.0, from Spec-Bench; it is read in place, never copied into this repository.)
 */
export function findSpecBenchQuestions(): string | undefined {
  const pkgRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
  const candidates = [
    process.env.SPEC_BENCH_QUESTIONS,
    join(process.cwd(), "..", "shared", "workloads", "spec-bench-questions.jsonl"),
    join(pkgRoot, "..", "shared", "workloads", "spec-bench-questions.jsonl"),
  ];
  return candidates.find((c): c is string => typeof c === "string" && c !== "" && existsSync(c));
}
