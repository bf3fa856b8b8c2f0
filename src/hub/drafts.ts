/**
 * Draft pairing: known same-tokenizer drafts for common families, from the model cards (a small
 * table, not a search), and a check that two downloaded models really share a tokenizer.
 */
import { TextTokenizer } from "../text/index.js";

export interface DraftSuggestion {
  /** The draft's original repo. */
  repo: string;
  /** An ONNX export that loads without a build, when one is known. */
  onnx: string | null;
  note?: string;
}

export interface DraftFamily {
  family: string;
  /** Matched against the target's repo name (org and -ONNX suffix stripped). */
  targets: RegExp;
  drafts: DraftSuggestion[];
  note?: string;
}

export const DRAFT_TABLE: DraftFamily[] = [
  {
    family: "Qwen2.5-Coder",
    targets: /^Qwen2\.5-Coder-(1\.5B|3B|7B|14B|32B)(-Instruct)?$/i,
    drafts: [{ repo: "Qwen/Qwen2.5-Coder-0.5B-Instruct", onnx: "onnx-community/Qwen2.5-Coder-0.5B-Instruct" }],
  },
  {
    family: "Qwen2.5",
    targets: /^Qwen2\.5-(1\.5B|3B|7B|14B|32B|72B)(-Instruct)?$/i,
    drafts: [
      { repo: "Qwen/Qwen2.5-0.5B-Instruct", onnx: "onnx-community/Qwen2.5-0.5B-Instruct" },
      { repo: "Qwen/Qwen2.5-1.5B-Instruct", onnx: "onnx-community/Qwen2.5-1.5B-Instruct", note: "for 7B and larger targets" },
    ],
    note: "7B+ pad the embedding to 152064 rows (0.5B-3B: 151936); the tokenizer is the same and the engine limits drafting to the shared ids.",
  },
  {
    family: "Qwen3",
    targets: /^Qwen3-(1\.7B|4B|8B|14B|32B|30B-A3B)(-Base)?$/i,
    drafts: [{ repo: "Qwen/Qwen3-0.6B", onnx: "onnx-community/Qwen3-0.6B-ONNX" }],
  },
  {
    family: "Llama 3.x",
    targets: /^(Meta-)?Llama-3\.[123]-(3B|8B|70B|405B)(-Instruct)?$/i,
    drafts: [{ repo: "meta-llama/Llama-3.2-1B-Instruct", onnx: "onnx-community/Llama-3.2-1B-Instruct", note: "gated: accept the license and set HF_TOKEN" }],
  },
  {
    family: "SmolLM2",
    targets: /^SmolLM2-(360M|1\.7B)(-Instruct)?$/i,
    drafts: [{ repo: "HuggingFaceTB/SmolLM2-135M-Instruct", onnx: "HuggingFaceTB/SmolLM2-135M-Instruct", note: "the repo ships onnx/" }],
  },
  {
    family: "Gemma 2",
    targets: /^gemma-2-(9b|27b)(-it)?$/i,
    drafts: [{ repo: "google/gemma-2-2b-it", onnx: null, note: "gated; no ONNX export known here (its architecture is not one our builder converts)" }],
  },
  {
    family: "Gemma 3",
    targets: /^gemma-3-(4b|12b|27b)(-it)?$/i,
    drafts: [{ repo: "google/gemma-3-1b-it", onnx: "onnx-community/gemma-3-1b-it-ONNX", note: "gated; the 4B+ targets are multimodal: use a text-only ONNX export of the target" }],
  },
  {
    family: "Phi-3",
    targets: /^Phi-3-medium-(4k|128k)-instruct$/i,
    drafts: [{ repo: "microsoft/Phi-3-mini-4k-instruct", onnx: null, note: "microsoft's ONNX repos use per-device subfolders: download one and pass its folder" }],
    note: "Phi-3.5/Phi-4 have no smaller sibling with the same tokenizer: use prompt lookup, lookahead or early exit.",
  },
];

function baseName(repo: string): string {
  return (repo.split("/").pop() ?? repo).replace(/[-_](ONNX|onnx|GGUF|gguf)$/, "");
}

/** Known drafts for a target repo id; null when the family is not in the table. */
export function suggestDrafts(repo: string): DraftFamily | null {
  const name = baseName(repo.split("@")[0]!.split(":")[0]!);
  return DRAFT_TABLE.find((f) => f.targets.test(name)) ?? null;
}

export interface CompatCheck {
  name: "vocabulary" | "special tokens" | "probe text";
  ok: boolean;
  detail: string;
}

export interface TokenizerCompat {
  compatible: boolean;
  checks: CompatCheck[];
}

/** Text that exercises bytes, digits, punctuation, non-Latin scripts and spacing. */
export const PROBE_TEXT = "Speculative decoding: the quick brown fox (v2.5) costs $1,234.56 — ¿qué tal? 你好，世界！  indented\n\tdef f(x): return x**2";

/** Do two model directories share a tokenizer? (same vocabulary, same special tokens, same ids for a probe text) */
export async function checkTokenizerCompat(targetDir: string, draftDir: string): Promise<TokenizerCompat> {
  const [a, b] = await Promise.all([TextTokenizer.load(targetDir), TextTokenizer.load(draftDir)]);
  const checks: CompatCheck[] = [];
  const cmp = a.compareVocab(b);
  checks.push({
    name: "vocabulary",
    ok: cmp.mismatchCount === 0 && cmp.sizeA === cmp.sizeB,
    detail:
      cmp.mismatchCount === 0 && cmp.sizeA === cmp.sizeB
        ? `identical (${cmp.sizeA} tokens)`
        : `${cmp.sizeA} vs ${cmp.sizeB} tokens, ${cmp.mismatchCount} ids differ` +
          (cmp.examples.length ? ` (e.g. id ${cmp.examples[0]!.id}: ${JSON.stringify(cmp.examples[0]!.a)} vs ${JSON.stringify(cmp.examples[0]!.b)})` : ""),
  });
  const specials = (t: TextTokenizer) => ({ bos: t.bosId ?? null, eos: [...t.eosIds].sort((x, y) => x - y), pad: t.padId ?? null });
  const sa = specials(a);
  const sb = specials(b);
  const sameEos = sa.eos.some((id) => sb.eos.includes(id));
  const specialOk = sa.bos === sb.bos && sameEos;
  checks.push({
    name: "special tokens",
    ok: specialOk,
    detail: `target bos ${sa.bos} eos ${JSON.stringify(sa.eos)} pad ${sa.pad}; draft bos ${sb.bos} eos ${JSON.stringify(sb.eos)} pad ${sb.pad}`,
  });
  const ia = a.encode(PROBE_TEXT, { addSpecialTokens: false });
  const ib = b.encode(PROBE_TEXT, { addSpecialTokens: false });
  const first = ia.findIndex((x, i) => ib[i] !== x);
  const probeOk = ia.length === ib.length && first === -1;
  checks.push({
    name: "probe text",
    ok: probeOk,
    detail: probeOk ? `same ${ia.length} ids` : `ids differ from position ${first === -1 ? Math.min(ia.length, ib.length) : first} (${ia.length} vs ${ib.length} ids)`,
  });
  return { compatible: checks.every((c) => c.ok), checks };
}
