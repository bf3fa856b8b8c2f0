/** The prompts of a measuring command (bench, tune, bench --endpoint): --workload or --prompts, then --category / --per-category. */
import { resolve } from "node:path";
import { findSpecBenchQuestions, parseWorkloadSpec, readPromptsFile, selectPrompts, type BenchPrompt } from "../bench/workload.js";
import { InvalidOptionError } from "../errors.js";
import { intOpt } from "./args.js";

/** --workload / --prompts / --category / --per-category / --chat -> prompts and a description. */
export async function loadPrompts(v: Record<string, unknown>): Promise<{ prompts: BenchPrompt[]; source: string }> {
  const chat = Boolean(v.chat);
  if (v.workload !== undefined && v.prompts !== undefined) throw new InvalidOptionError("Give --workload or --prompts, not both.");
  let prompts: BenchPrompt[];
  let source: string;
  if (v.prompts !== undefined) {
    let file = String(v.prompts);
    if (file === "spec-bench") {
      const found = findSpecBenchQuestions();
      if (!found) {
        throw new InvalidOptionError(
          "Spec-Bench's question.jsonl was not found (looked at $SPEC_BENCH_QUESTIONS and ../shared/workloads/spec-bench-questions.jsonl). Pass its path to --prompts.",
        );
      }
      file = found;
    }
    prompts = await readPromptsFile(resolve(file), { chat });
    source = file;
  } else {
    const spec = (v.workload as string | undefined) ?? "builtin";
    prompts = parseWorkloadSpec(spec, { chat });
    source = spec;
  }
  const perCategory = intOpt(v["per-category"], "per-category", 1);
  const category = v.category as string | undefined;
  if (category !== undefined || perCategory !== undefined) {
    prompts = selectPrompts(prompts, { category, perCategory });
    source += `${category ? ` category ${category}` : ""}${perCategory ? ` (first ${perCategory} per category)` : ""}`;
  }
  return { prompts, source };
}
