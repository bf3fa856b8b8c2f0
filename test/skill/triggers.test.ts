/**
 * Trigger evals for SKILL.md's description, deterministic: the queries in
 * test/data/skill-triggers.json against the scope the description states. The description is split
 * at its "Not for" sentence into what it claims (scope) and what it excludes. A query triggers when
 * it names a trigger phrase and no excluded scope. Each trigger phrase must be in the scope part,
 * each excluded scope in the excluded part and nowhere in the scope part, so dropping a trigger
 * phrase from the description, or claiming GGUF/Ollama/MLX users, fails here.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { frontmatter } from "../helpers/frontmatter.js";
import { REPO } from "../helpers/dist.js";

interface TriggerData {
  triggerPhrases: string[];
  excludedScopes: string[];
  shouldTrigger: string[];
  shouldNotTrigger: string[];
}

const data = JSON.parse(readFileSync(join(REPO, "test", "data", "skill-triggers.json"), "utf8")) as TriggerData;
const description = frontmatter(readFileSync(join(REPO, "SKILL.md"), "utf8")).description ?? "";

/** Lower case, `_` and `-` as spaces, one space between words: "assistant_model" names "assistant model". */
const norm = (s: string) => s.toLowerCase().replace(/[_-]+/g, " ").replace(/\s+/g, " ").trim();
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
/** Whether `text` names `phrase` as whole words. */
const names = (text: string, phrase: string) => new RegExp(`(^|[^a-z0-9])${escape(norm(phrase))}($|[^a-z0-9])`).test(norm(text));

const parts = description.split("Not for");
const scope = parts[0] ?? "";
const excluded = parts.slice(1).join("Not for");

function triggers(query: string): boolean {
  return data.triggerPhrases.some((p) => names(query, p)) && !data.excludedScopes.some((x) => names(query, x));
}

describe("SKILL.md description: stated scope", () => {
  it("has one 'Not for' sentence", () => {
    expect(parts.length, description).toBe(2);
  });

  it("claims every trigger phrase the issue asks for", () => {
    for (const p of ["assisted generation", "assistant model", "tokens/sec", "EAGLE", "draft model", "speculative decoding"]) {
      expect(data.triggerPhrases).toContain(p);
    }
    for (const p of data.triggerPhrases) expect(names(scope, p), `description scope lacks "${p}"`).toBe(true);
  });

  it("excludes GGUF, Ollama and MLX users and does not claim them", () => {
    for (const x of ["GGUF", "Ollama", "MLX"]) expect(data.excludedScopes).toContain(x);
    for (const x of data.excludedScopes) {
      expect(names(excluded, x), `"Not for" sentence lacks "${x}"`).toBe(true);
      expect(names(scope, x), `description scope claims "${x}"`).toBe(false);
    }
  });
});

describe("trigger evals (test/data/skill-triggers.json)", () => {
  it("has about twenty queries, each phrase and exclusion exercised", () => {
    expect(data.shouldTrigger.length + data.shouldNotTrigger.length).toBeGreaterThanOrEqual(20);
    expect(data.shouldNotTrigger.length).toBeGreaterThanOrEqual(6);
    for (const p of data.triggerPhrases) expect(data.shouldTrigger.some((q) => names(q, p)), `no query names "${p}"`).toBe(true);
    for (const x of data.excludedScopes) expect(data.shouldNotTrigger.some((q) => names(q, x)), `no query names "${x}"`).toBe(true);
  });

  it.each(data.shouldTrigger)("triggers: %s", (q) => {
    expect(triggers(q)).toBe(true);
  });

  it.each(data.shouldNotTrigger)("does not trigger: %s", (q) => {
    expect(triggers(q)).toBe(false);
  });

  it("matches whole words only", () => {
    expect(names("eagles fly", "EAGLE")).toBe(false);
    expect(names("an EAGLE-2 head", "EAGLE")).toBe(true);
    expect(names("assistant_model=draft", "assistant model")).toBe(true);
  });
});
