import { describe, expect, it } from "vitest";
import { builtinWorkload, parsePromptsJsonl, parseWorkloadSpec, selectPrompts, WORKLOAD_CATEGORIES } from "../../src/bench/workload.js";

// Two lines in Spec-Bench's question.jsonl format (written for this test) and one of ours.
const SPEC_BENCH_LINES = [
  JSON.stringify({ question_id: 7, category: "writing", turns: ["Write a haiku about rain.", "Now make it rhyme."] }),
  JSON.stringify({ question_id: 201, category: "math_reasoning", turns: ["What is 12 times 11?"] }),
  "",
  JSON.stringify({ question_id: 301, category: "rag", turns: ["Context: The shop opens at nine.\nQuestion: When does it open?"] }),
].join("\n");

describe("prompt files", () => {
  it("reads Spec-Bench's question.jsonl format (first turn, mapped category)", () => {
    const ps = parsePromptsJsonl(SPEC_BENCH_LINES);
    expect(ps).toEqual([
      { id: "writing-7", category: "chat", prompt: "Write a haiku about rain." },
      { id: "math_reasoning-201", category: "math", prompt: "What is 12 times 11?" },
      { id: "rag-301", category: "rag", prompt: "Context: The shop opens at nine.\nQuestion: When does it open?" },
    ]);
    const chat = parsePromptsJsonl(SPEC_BENCH_LINES, { chat: true });
    expect(chat[0]!.messages).toEqual([{ role: "user", content: "Write a haiku about rain." }]);
    expect(chat[0]!.prompt).toBeUndefined();
  });

  it("reads our own format", () => {
    const text = [
      JSON.stringify({ id: "a", category: "qa", prompt: "Why is the sky blue?" }),
      JSON.stringify({ messages: [{ role: "user", content: "hi" }] }),
      JSON.stringify({ id: 3, promptIds: [1, 2, 3] }),
    ].join("\r\n");
    expect(parsePromptsJsonl(text)).toEqual([
      { id: "a", category: "qa", prompt: "Why is the sky blue?" },
      { id: "prompt-2", category: "custom", messages: [{ role: "user", content: "hi" }] },
      { id: "3", category: "custom", promptIds: [1, 2, 3] },
    ]);
  });

  it("errors name the line and the fix", () => {
    expect(() => parsePromptsJsonl('{"prompt": "x"}\nnot json')).toThrow(/line 2: not valid JSON/);
    expect(() => parsePromptsJsonl('{"turns": []}')).toThrow(/line 1: "turns" must be a non-empty list/);
    expect(() => parsePromptsJsonl('{"prompt": "x", "promptIds": [1]}')).toThrow(/exactly one of/);
    expect(() => parsePromptsJsonl('{"id": "x", "prompt": "a"}\n{"id": "x", "prompt": "b"}')).toThrow(/appears twice/);
    expect(() => parsePromptsJsonl("\n\n")).toThrow(/no prompts/);
  });

  it("selects a category and the first N per category", () => {
    const ps = parsePromptsJsonl(SPEC_BENCH_LINES);
    expect(selectPrompts(ps, { category: "rag" }).map((p) => p.id)).toEqual(["rag-301"]);
    expect(() => selectPrompts(ps, { category: "poetry" })).toThrow(/categories: chat, math, rag/);
    const all = builtinWorkload();
    expect(selectPrompts(all, { perCategory: 1 }).map((p) => p.category)).toEqual([...WORKLOAD_CATEGORIES]);
  });

  it("built-in workload: our own prompts, three per Spec-Bench-like category", () => {
    const all = builtinWorkload();
    expect(all).toHaveLength(3 * WORKLOAD_CATEGORIES.length);
    expect(new Set(all.map((p) => p.id)).size).toBe(all.length);
    expect(parseWorkloadSpec("builtin:math").map((p) => p.id)).toEqual(["math-1", "math-2", "math-3"]);
    expect(() => parseWorkloadSpec("builtin:poetry")).toThrow(/Unknown workload category/);
  });
});
