/** `spec-decode suggest-draft`: known same-tokenizer drafts for a target, and a tokenizer check of cached pairs. */
import { InvalidOptionError } from "../errors.js";
import { checkTokenizerCompat, suggestDrafts, type TokenizerCompat } from "../hub/drafts.js";
import { resolveModel } from "../hub/index.js";
import { parse } from "./args.js";

const USAGE = `Usage: spec-decode suggest-draft --model org/name|DIR [--draft org/name|DIR] [--json]
Lists known draft models that share the target's tokenizer (a table of common families: Qwen2.5, Qwen3,
Llama 3.x, SmolLM2, Gemma, Phi). Drafts (and --draft) found locally or in the HF cache are checked:
same vocabulary, same special tokens, same ids for a probe text. Nothing is downloaded.`;

async function tryCheck(model: string, draft: string): Promise<TokenizerCompat | string> {
  try {
    const t = await resolveModel(model, { download: false });
    const d = await resolveModel(draft, { download: false });
    return await checkTokenizerCompat(t.dir, d.dir);
  } catch (err) {
    return `not checked: ${(err as Error).message.split(". ")[0]}`;
  }
}

export async function suggestDraftCommand(argv: string[]): Promise<number> {
  const { values: v } = parse(
    argv,
    { model: { type: "string" }, draft: { type: "string" }, json: { type: "boolean", default: false }, help: { type: "boolean", short: "h", default: false } },
    USAGE,
  );
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  const model = v.model as string | undefined;
  if (!model) throw new InvalidOptionError(`--model is required.\n\n${USAGE}`);
  const fam = suggestDrafts(model);
  const drafts = fam ? fam.drafts : [];
  const checked = await Promise.all(
    [...drafts.map((d) => d.onnx ?? d.repo), ...(v.draft ? [v.draft as string] : [])].map(async (d) => ({ draft: d, check: await tryCheck(model, d) })),
  );
  if (v.json) {
    console.log(JSON.stringify({ model, family: fam?.family ?? null, note: fam?.note ?? null, drafts, checks: checked }, null, 2));
    return 0;
  }
  if (!fam) console.log(`${model}: no known draft in the table. Pick a smaller model of the same family (same tokenizer), or use --method prompt-lookup / early-exit.`);
  else {
    console.log(`${model} (${fam.family}): drafts that share its tokenizer`);
    for (const d of drafts) console.log(`  ${d.repo}${d.onnx ? `  (ONNX: ${d.onnx})` : ""}${d.note ? `  - ${d.note}` : ""}`);
    if (fam.note) console.log(`  note: ${fam.note}`);
  }
  for (const c of checked) {
    if (typeof c.check === "string") console.log(`  check ${c.draft}: ${c.check}`);
    else console.log(`  check ${c.draft}: ${c.check.compatible ? "compatible" : "NOT compatible"} (${c.check.checks.map((x) => `${x.name}: ${x.detail}`).join("; ")})`);
  }
  return 0;
}
