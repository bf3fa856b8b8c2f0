/**
 * Deterministic, self-contained Hugging Face tokenizers for tiny random test models.
 *
 * `makeFixtureTokenizer(vocabSize)` returns a `tokenizer.json` and a `tokenizer_config.json` (as
 * objects) that `@huggingface/tokenizers` loads, with exactly `vocabSize` tokens:
 *
 * - `vocabSize >= 259`: byte-level BPE (GPT-2 style). Ids 0..2 are `<|pad|>`, `<s>`, `</s>`;
 *   ids 3..258 are the 256 bytes (byte `b` is id `3 + b`, spelled with GPT-2's byte-to-unicode
 *   mapping); the remaining ids are merges learned greedily from a small built-in English text,
 *   then (once that text has nothing left to merge) synthetic merges of letters. Any UTF-8 text
 *   round-trips through encode/decode.
 * - `8 <= vocabSize <= 258`: character level. Ids 0..3 are `<|pad|>`, `<s>`, `</s>`, `<unk>`; the
 *   rest are single characters, most frequent English ones first (space, e, t, a, ...). Characters
 *   outside the vocabulary encode to `<unk>`.
 *
 * Both add `<s>` in front when encoding with special tokens (like Llama), and the chat template
 * starts with `{{ bos_token }}`, so text rendered by the template must be encoded with
 * `addSpecialTokens: false`.
 *
 * The construction is deterministic and prefix-stable: the vocabulary of size N is the first N
 * entries of the vocabulary of any larger size (same kind), so two fixture models of different
 * sizes share ids for their common tokens.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { InvalidOptionError } from "../errors.js";

export interface FixtureTokenizer {
  /** Contents of `tokenizer.json`. */
  tokenizerJson: Record<string, unknown>;
  /** Contents of `tokenizer_config.json` (bos/eos/pad tokens and a chat template). */
  tokenizerConfig: Record<string, unknown>;
  bosId: number;
  eosId: number;
  padId: number;
  /** Id of `<unk>` for the character-level kind; undefined for byte-level (it needs none). */
  unkId?: number;
  kind: "byte-level-bpe" | "char-level";
}

export const FIXTURE_PAD = "<|pad|>";
export const FIXTURE_BOS = "<s>";
export const FIXTURE_EOS = "</s>";
export const FIXTURE_UNK = "<unk>";

/** Smallest vocabulary that gets the byte-level BPE kind (3 specials + 256 bytes). */
export const FIXTURE_BYTE_LEVEL_MIN_VOCAB = 259;
/** Smallest vocabulary accepted at all. */
export const FIXTURE_MIN_VOCAB = 8;

/**
 * A Zephyr/ChatML-like template. It uses `bos_token`, `eos_token`, `add_generation_prompt` and
 * `raise_exception` (for unknown roles), so it exercises everything the tokenizer wrapper provides.
 */
export const FIXTURE_CHAT_TEMPLATE =
  "{{- bos_token -}}" +
  "{%- for message in messages -%}" +
  "{%- if message['role'] not in ['system', 'user', 'assistant'] -%}" +
  "{{- raise_exception('Unknown role: ' + message['role'] + '. Use system, user or assistant.') -}}" +
  "{%- endif -%}" +
  "{{- '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' -}}" +
  "{%- endfor -%}" +
  "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}";

/** Built-in training text for the byte-level merges (original prose, written for this file). */
const TRAINING_TEXT = `
The little model runs on the laptop in the kitchen. It reads the question, thinks for a moment,
and then it writes the answer one token at a time. When the draft model guesses the next words,
the target model checks them all at once, and the text comes out faster than before.
There is nothing magic about it: the small model is often right about the easy words, like "the",
"and", "of" and "to", and the large model only has to verify what was proposed. If the guess is
wrong, the large model keeps the tokens that were right and corrects the first one that was not.

On Monday the weather was cold and grey, but by Wednesday the sun had come back over the hills.
We walked along the river, counted 12 boats and 3 bridges, and talked about the things that we
would build next year. She said that the best tools are the ones you don't notice; he said that
they're the ones you can fix yourself. I think they were both right, and we'll see who wins.

Speculative decoding is lossless: with the right acceptance rule, the output follows exactly the
same distribution as the target model would have produced on its own. Greedy decoding is the
simplest case, where the draft token is accepted only when it matches the target's best token.
Sampling needs a little more care: the token is accepted with probability min(1, p / q), and
when it is rejected, a new token is drawn from the residual distribution, max(0, p - q), after it
has been normalized so that it sums to one.

What is the capital of France? Paris is the capital of France. What is two plus two? Four.
Please write a short poem about the sea. The sea is wide, the sea is deep, it sings the sailors
into sleep. Thank you! You're welcome. Is there anything else that I can help you with today?
Yes, please explain how the tokenizer works. The tokenizer splits the text into pieces, and every
piece has a number; the model only ever sees the numbers, and the tokenizer turns them back into
text when the model is done.
`;

// ---------------------------------------------------------------------------------------------
// GPT-2 byte <-> unicode mapping: printable bytes map to themselves, the others to U+0100 + n.

function buildByteToUnicode(): string[] {
  const direct: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) direct.push(b);
  for (let b = 0xa1; b <= 0xac; b++) direct.push(b);
  for (let b = 0xae; b <= 0xff; b++) direct.push(b);
  const map: string[] = new Array<string>(256);
  const isDirect = new Set(direct);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    map[b] = isDirect.has(b) ? String.fromCharCode(b) : String.fromCharCode(256 + n++);
  }
  return map;
}

const BYTE_TO_UNICODE = buildByteToUnicode();

/** GPT-2's pre-tokenization pattern (what the ByteLevel pre-tokenizer uses with `use_regex`). */
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

function toByteLevel(text: string): string[] {
  return Array.from(new TextEncoder().encode(text), (b) => BYTE_TO_UNICODE[b]!);
}

// ---------------------------------------------------------------------------------------------
// Merge learning (computed once; every vocabulary size takes a prefix of the same sequence).

interface MergePlan {
  merges: Array<[string, string]>;
}

let learnedCache: MergePlan | undefined;

/** Greedy BPE training on TRAINING_TEXT: most frequent pair first, ties by the pair's spelling. */
function learnMerges(): MergePlan {
  if (learnedCache) return learnedCache;
  const wordCounts = new Map<string, number>();
  for (const piece of TRAINING_TEXT.match(GPT2_SPLIT) ?? []) {
    const key = toByteLevel(piece).join("\u0000");
    wordCounts.set(key, (wordCounts.get(key) ?? 0) + 1);
  }
  // Sorted for determinism independent of Map insertion details.
  const words: Array<{ symbols: string[]; count: number }> = [...wordCounts.entries()]
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([key, count]) => ({ symbols: key.split("\u0000"), count }));

  const merges: Array<[string, string]> = [];
  for (;;) {
    const pairCounts = new Map<string, number>();
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = symbols[i] + " " + symbols[i + 1];
        pairCounts.set(key, (pairCounts.get(key) ?? 0) + count);
      }
    }
    let best: string | undefined;
    let bestCount = 1; // a pair must occur at least twice to be learned
    for (const [key, count] of pairCounts) {
      if (count > bestCount || (count === bestCount && best !== undefined && key < best)) {
        best = key;
        bestCount = count;
      }
    }
    if (best === undefined) break;
    const [a, b] = best.split(" ") as [string, string];
    merges.push([a, b]);
    const merged = a + b;
    for (const w of words) {
      const s = w.symbols;
      if (s.length < 2) continue;
      const out: string[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(merged);
          i++;
        } else {
          out.push(s[i]!);
        }
      }
      w.symbols = out;
    }
  }
  learnedCache = { merges };
  return learnedCache;
}

/** Letters (and the space marker Ġ) used to make synthetic merges once the text is exhausted. */
const SYNTHETIC_ALPHABET = [..."etaoinshrdlcumwfgypbvkjxqz"].concat(BYTE_TO_UNICODE[0x20]!);

function buildByteLevel(vocabSize: number): FixtureTokenizer {
  const vocab = new Map<string, number>();
  const add = (tok: string): void => {
    vocab.set(tok, vocab.size);
  };
  add(FIXTURE_PAD);
  add(FIXTURE_BOS);
  add(FIXTURE_EOS);
  for (let b = 0; b < 256; b++) add(BYTE_TO_UNICODE[b]!);

  const merges: Array<[string, string]> = [];
  const addMerge = (a: string, b: string): void => {
    merges.push([a, b]);
    add(a + b);
  };
  for (const [a, b] of learnMerges().merges) {
    if (vocab.size >= vocabSize) break;
    if (vocab.has(a + b)) merges.push([a, b]); // a second way to spell an existing token
    else addMerge(a, b);
  }
  // Synthetic phase: breadth-first letter strings (ab, ac, ..., abc, ...), skipping existing ones.
  const queue: string[] = [...SYNTHETIC_ALPHABET];
  for (let qi = 0; vocab.size < vocabSize && qi < queue.length; qi++) {
    const left = queue[qi]!;
    for (const c of SYNTHETIC_ALPHABET) {
      if (vocab.size >= vocabSize) break;
      const tok = left + c;
      queue.push(tok);
      if (!vocab.has(tok)) addMerge(left, c);
    }
  }
  if (vocab.size !== vocabSize) {
    throw new InvalidOptionError(`Could not build a fixture tokenizer with ${vocabSize} tokens.`);
  }

  const tokenizerJson = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specialEntries([FIXTURE_PAD, FIXTURE_BOS, FIXTURE_EOS]),
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: bosTemplate(1),
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      // Byte-level symbols never contain a space, so the classic "a b" spelling is unambiguous and
      // readable by every version of the Python and JS libraries.
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  return {
    tokenizerJson,
    tokenizerConfig: tokenizerConfig(false),
    padId: 0,
    bosId: 1,
    eosId: 2,
    kind: "byte-level-bpe",
  };
}

// ---------------------------------------------------------------------------------------------
// Character-level kind for small vocabularies.

function charAlphabet(): string[] {
  const chars: string[] = [];
  const seen = new Set<string>();
  const push = (s: string): void => {
    for (const c of s) {
      if (!seen.has(c)) {
        seen.add(c);
        chars.push(c);
      }
    }
  };
  push(" etaoinshrdlcumwfgypbvkjxqz");
  push("\n.,'");
  push("ETAOINSHRDLCUMWFGYPBVKJXQZ");
  push("0123456789");
  push("!\"#$%&()*+-/:;<=>?@[\\]^_`{|}~\t");
  // Then Latin-1 and Latin Extended-A letters/symbols (skipping the soft hyphen).
  for (let cp = 0xa1; chars.length < 260 && cp <= 0x17f; cp++) {
    if (cp !== 0xad) push(String.fromCodePoint(cp));
  }
  return chars;
}

function buildCharLevel(vocabSize: number): FixtureTokenizer {
  const specials = [FIXTURE_PAD, FIXTURE_BOS, FIXTURE_EOS, FIXTURE_UNK];
  const vocab = new Map<string, number>();
  for (const s of specials) vocab.set(s, vocab.size);
  for (const c of charAlphabet()) {
    if (vocab.size >= vocabSize) break;
    vocab.set(c, vocab.size);
  }
  const tokenizerJson = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specialEntries(specials),
    normalizer: null,
    pre_tokenizer: null,
    post_processor: bosTemplate(1),
    decoder: { type: "Fuse" },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: FIXTURE_UNK,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      merges: [],
    },
  };
  return {
    tokenizerJson,
    tokenizerConfig: tokenizerConfig(true),
    padId: 0,
    bosId: 1,
    eosId: 2,
    unkId: 3,
    kind: "char-level",
  };
}

// ---------------------------------------------------------------------------------------------

function specialEntries(tokens: string[]): Array<Record<string, unknown>> {
  return tokens.map((content, id) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
}

/** TemplateProcessing that prepends `<s>` (Llama style). */
function bosTemplate(bosId: number): Record<string, unknown> {
  return {
    type: "TemplateProcessing",
    single: [
      { SpecialToken: { id: FIXTURE_BOS, type_id: 0 } },
      { Sequence: { id: "A", type_id: 0 } },
    ],
    pair: [
      { SpecialToken: { id: FIXTURE_BOS, type_id: 0 } },
      { Sequence: { id: "A", type_id: 0 } },
      { SpecialToken: { id: FIXTURE_BOS, type_id: 1 } },
      { Sequence: { id: "B", type_id: 1 } },
    ],
    special_tokens: { [FIXTURE_BOS]: { id: FIXTURE_BOS, ids: [bosId], tokens: [FIXTURE_BOS] } },
  };
}

function tokenizerConfig(withUnk: boolean): Record<string, unknown> {
  return {
    tokenizer_class: "PreTrainedTokenizerFast",
    bos_token: FIXTURE_BOS,
    eos_token: FIXTURE_EOS,
    pad_token: FIXTURE_PAD,
    ...(withUnk ? { unk_token: FIXTURE_UNK } : {}),
    add_bos_token: true,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    model_max_length: 4096,
    chat_template: FIXTURE_CHAT_TEMPLATE,
  };
}

/**
 * Builds a working tokenizer with exactly `vocabSize` tokens (see the module comment).
 * Returns fresh objects on every call, so callers may mutate them.
 */
export function makeFixtureTokenizer(vocabSize: number): FixtureTokenizer {
  if (!Number.isInteger(vocabSize) || vocabSize < FIXTURE_MIN_VOCAB) {
    throw new InvalidOptionError(
      `Fixture vocabSize must be an integer >= ${FIXTURE_MIN_VOCAB} (got ${vocabSize}); ` +
        `use >= ${FIXTURE_BYTE_LEVEL_MIN_VOCAB} for a byte-level tokenizer that round-trips any text.`,
    );
  }
  return vocabSize >= FIXTURE_BYTE_LEVEL_MIN_VOCAB ? buildByteLevel(vocabSize) : buildCharLevel(vocabSize);
}

/**
 * Writes `tokenizer.json` and `tokenizer_config.json` for `makeFixtureTokenizer(vocabSize)` into
 * `dir` (created if needed) and returns what was written.
 */
export async function writeFixtureTokenizer(dir: string, vocabSize: number): Promise<FixtureTokenizer> {
  const fx = makeFixtureTokenizer(vocabSize);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify(fx.tokenizerJson), "utf8");
  await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify(fx.tokenizerConfig, null, 2), "utf8");
  return fx;
}
