/**
 * A thin, typed wrapper over tokenizers.js (`@huggingface/tokenizers`) plus chat templates
 * (`@huggingface/jinja`), loaded from a Hugging Face model directory.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";
import { TokenizerError, errorMessage } from "../errors.js";

export interface ChatMessage {
  role: string;
  content: string;
  /** Extra fields (name, tool_calls, ...) are passed to the template as they are. */
  [key: string]: unknown;
}

export interface EncodeOptions {
  /** Add the tokenizer's own special tokens (e.g. BOS) via its post-processor. Default true. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (BOS, EOS, pad, chat markers...). Default false. */
  skipSpecialTokens?: boolean;
  /**
   * Apply the legacy " ." -> "." style clean-up. Default: the tokenizer config's
   * `clean_up_tokenization_spaces` (tokenizers.js treats a missing value as true).
   */
  cleanUpTokenizationSpaces?: boolean;
}

export interface ChatTemplateOptions {
  /** Append the assistant prefix so that the model answers next. Default false. */
  addGenerationPrompt?: boolean;
  /** Extra template variables (`tools`, `documents`, `enable_thinking`, ...). */
  variables?: Record<string, unknown>;
}

/** Optional extra files of a model directory, for building a tokenizer from objects. */
export interface TokenizerExtras {
  /** Contents of `special_tokens_map.json`. */
  specialTokensMap?: Record<string, unknown>;
  /** Contents of `generation_config.json` (its `eos_token_id` is merged into `eosIds`). */
  generationConfig?: Record<string, unknown>;
  /** A chat template that overrides the one in `tokenizer_config.json`. */
  chatTemplate?: string;
  /** Where the files came from, for error messages. */
  source?: string;
}

/** The result of comparing two vocabularies (for draft/target compatibility checks). */
export interface VocabComparison {
  /** Same size and the same token string at every id. */
  identical: boolean;
  sizeA: number;
  sizeB: number;
  /** Ids below min(sizeA, sizeB) whose token strings differ. */
  mismatchCount: number;
  /** Up to 5 differing ids, for error messages. */
  examples: Array<{ id: number; a: string | undefined; b: string | undefined }>;
}

/** The bits of tokenizers.js internals this wrapper reads (declared `private` or loosely typed upstream). */
interface TokenizerInternals {
  model: { vocab: Array<string | undefined>; tokens_to_ids: Map<string, number> } | null;
  special_tokens: string[];
}

/** `"</s>"` or `{ "content": "</s>", ... }` (AddedToken form) -> `"</s>"`. */
function tokenString(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content;
  }
  return undefined;
}

function asIdList(value: unknown): number[] {
  if (typeof value === "number" && Number.isInteger(value)) return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === "number" && Number.isInteger(v));
  return [];
}

async function readJson(dir: string, name: string, required: true): Promise<Record<string, unknown>>;
async function readJson(dir: string, name: string, required: false): Promise<Record<string, unknown> | undefined>;
async function readJson(dir: string, name: string, required: boolean): Promise<Record<string, unknown> | undefined> {
  const path = join(dir, name);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      if (!required) return undefined;
      throw new TokenizerError(
        `Missing ${name} in ${dir}. Copy ${name} from the original Hugging Face model repository ` +
          `(it is written by tokenizer.save_pretrained()) into this directory.`,
        { cause: err },
      );
    }
    throw new TokenizerError(`Cannot read ${path}: ${errorMessage(err)}. Check the file's permissions.`, {
      cause: err,
    });
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("not a JSON object");
    return parsed as Record<string, unknown>;
  } catch (err) {
    throw new TokenizerError(
      `${path} is not valid JSON (${errorMessage(err)}). Re-download it from the model repository.`,
      { cause: err },
    );
  }
}

async function readOptionalText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new TokenizerError(`Cannot read ${path}: ${errorMessage(err)}. Check the file's permissions.`, {
      cause: err,
    });
  }
}

/** `chat_template` may be a string or a list of `{name, template}` (HF multi-template form). */
function pickChatTemplate(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = value.filter(
      (t): t is { name: string; template: string } =>
        !!t && typeof t === "object" && typeof (t as { template?: unknown }).template === "string",
    );
    return (named.find((t) => t.name === "default") ?? named[0])?.template;
  }
  return undefined;
}

export class TextTokenizer {
  /** The underlying tokenizers.js tokenizer (for anything this wrapper does not cover). */
  readonly inner: Tokenizer;
  /** `tokenizer_config.json` as loaded. */
  readonly config: Readonly<Record<string, unknown>>;
  readonly bosToken: string | undefined;
  readonly eosToken: string | undefined;
  readonly padToken: string | undefined;
  readonly unkToken: string | undefined;
  readonly bosId: number | undefined;
  /**
   * End-of-sequence ids: tokenizer_config's `eos_token` first, then special_tokens_map's, then
   * generation_config's `eos_token_id` (number or list), without duplicates. Model config.json
   * lists are not read here.
   */
  readonly eosIds: number[];
  readonly padId: number | undefined;
  /** Ids of all special tokens (added tokens flagged `special`). */
  readonly specialIds: ReadonlySet<number>;
  readonly chatTemplate: string | undefined;
  private readonly internals: TokenizerInternals;
  private compiledTemplate: Template | undefined;
  private readonly cleanUpDefault: boolean;
  private readonly source: string;

  private constructor(
    inner: Tokenizer,
    config: Record<string, unknown>,
    extras: TokenizerExtras,
  ) {
    this.inner = inner;
    this.config = config;
    this.internals = inner as unknown as TokenizerInternals;
    this.source = extras.source ?? "the tokenizer";
    const stm = extras.specialTokensMap ?? {};
    const pick = (key: string): string | undefined => tokenString(config[key]) ?? tokenString(stm[key]);
    this.bosToken = pick("bos_token");
    this.eosToken = pick("eos_token");
    this.padToken = pick("pad_token");
    this.unkToken = pick("unk_token");
    this.bosId = this.bosToken === undefined ? undefined : this.tokenToId(this.bosToken);
    this.padId = this.padToken === undefined ? undefined : this.tokenToId(this.padToken);
    const eos: number[] = [];
    const pushEos = (id: number | undefined): void => {
      if (id !== undefined && !eos.includes(id)) eos.push(id);
    };
    for (const key of [tokenString(config.eos_token), tokenString(stm.eos_token)]) {
      if (key !== undefined) pushEos(this.tokenToId(key));
    }
    for (const id of asIdList(extras.generationConfig?.eos_token_id)) pushEos(id);
    this.eosIds = eos;
    const special = new Set<number>();
    for (const [id, tok] of inner.get_added_tokens_decoder()) if (tok.special) special.add(id);
    for (const s of this.internals.special_tokens) {
      const id = this.tokenToId(s);
      if (id !== undefined) special.add(id);
    }
    this.specialIds = special;
    this.chatTemplate = extras.chatTemplate ?? pickChatTemplate(config.chat_template);
    this.cleanUpDefault = typeof config.clean_up_tokenization_spaces === "boolean" ? config.clean_up_tokenization_spaces : true;
  }

  /**
   * Loads `tokenizer.json` and `tokenizer_config.json` (both required) from a model directory,
   * plus, when present, `special_tokens_map.json`, `generation_config.json` and a chat template
   * in `chat_template.jinja` / `chat_template.json` (used when tokenizer_config has none).
   */
  static async load(dir: string): Promise<TextTokenizer> {
    const tokenizerJson = await readJson(dir, "tokenizer.json", true);
    const tokenizerConfig = await readJson(dir, "tokenizer_config.json", true);
    const specialTokensMap = await readJson(dir, "special_tokens_map.json", false);
    const generationConfig = await readJson(dir, "generation_config.json", false);
    let chatTemplate: string | undefined;
    if (pickChatTemplate(tokenizerConfig.chat_template) === undefined) {
      chatTemplate = await readOptionalText(join(dir, "chat_template.jinja"));
      if (chatTemplate === undefined) {
        const ct = await readJson(dir, "chat_template.json", false);
        chatTemplate = pickChatTemplate(ct?.chat_template);
      }
    }
    return TextTokenizer.fromJSON(tokenizerJson, tokenizerConfig, {
      specialTokensMap,
      generationConfig,
      chatTemplate,
      source: dir,
    });
  }

  /** Builds a tokenizer from already-parsed `tokenizer.json` / `tokenizer_config.json` objects. */
  static fromJSON(
    tokenizerJson: object,
    tokenizerConfig: object,
    extras: TokenizerExtras = {},
  ): TextTokenizer {
    const config = { ...(tokenizerConfig as Record<string, unknown>) };
    // tokenizers.js expects plain strings for these; HF files may hold AddedToken objects.
    for (const key of ["bos_token", "eos_token", "pad_token", "unk_token", "sep_token", "cls_token", "mask_token"]) {
      const s = tokenString(config[key]);
      if (s !== undefined) config[key] = s;
    }
    if (Array.isArray(config.additional_special_tokens)) {
      config.additional_special_tokens = config.additional_special_tokens
        .map(tokenString)
        .filter((s): s is string => s !== undefined);
    }
    let inner: Tokenizer;
    try {
      inner = new Tokenizer(tokenizerJson, config);
    } catch (err) {
      throw new TokenizerError(
        `Cannot build the tokenizer from ${extras.source ?? "tokenizer.json"}: ${errorMessage(err)}. ` +
          `The file may be corrupt or use a tokenizer type tokenizers.js does not support; ` +
          `re-export it with a recent version of the Python tokenizers library.`,
        { cause: err },
      );
    }
    return new TextTokenizer(inner, config, extras);
  }

  /** Token ids for `text`. With `addSpecialTokens` (default true) the post-processor adds BOS etc. */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    return this.inner.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  /** Text for `ids`. An empty list decodes to "". Ids outside the vocabulary decode to nothing. */
  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    if (ids.length === 0) return "";
    const list = Array.isArray(ids) ? (ids as number[]) : Array.from(ids);
    return this.inner.decode(list, {
      skip_special_tokens: opts.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: opts.cleanUpTokenizationSpaces ?? this.cleanUpDefault,
    });
  }

  /**
   * Number of token ids the tokenizer can produce, added tokens included (max id + 1). A model's
   * embedding may be larger (padded); ids at or beyond this size have no text.
   */
  get vocabSize(): number {
    return this.internals.model?.vocab.length ?? 0;
  }

  tokenToId(token: string): number | undefined {
    return this.inner.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.inner.id_to_token(id);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** Token string -> id for the whole vocabulary, added tokens included. */
  vocabFingerprint(): Map<string, number> {
    const out = new Map<string, number>();
    const vocab = this.internals.model?.vocab ?? [];
    for (let i = 0; i < vocab.length; i++) {
      const t = vocab[i];
      if (t !== undefined) out.set(t, i);
    }
    return out;
  }

  /** SHA-256 over the id-ordered token strings: equal hashes mean identical vocabularies. */
  vocabHash(): string {
    const h = createHash("sha256");
    const vocab = this.internals.model?.vocab ?? [];
    for (let i = 0; i < vocab.length; i++) {
      const t = vocab[i];
      h.update(t === undefined ? "\u0000<none>" : t);
      h.update("\u0000");
    }
    return h.digest("hex");
  }

  /** Compares the token strings id by id with another tokenizer's. */
  compareVocab(other: TextTokenizer): VocabComparison {
    const a = this.internals.model?.vocab ?? [];
    const b = other.internals.model?.vocab ?? [];
    const n = Math.min(a.length, b.length);
    let mismatchCount = 0;
    const examples: VocabComparison["examples"] = [];
    for (let i = 0; i < n; i++) {
      if (a[i] !== b[i]) {
        mismatchCount++;
        if (examples.length < 5) examples.push({ id: i, a: a[i], b: b[i] });
      }
    }
    return { identical: mismatchCount === 0 && a.length === b.length, sizeA: a.length, sizeB: b.length, mismatchCount, examples };
  }

  get hasChatTemplate(): boolean {
    return this.chatTemplate !== undefined && this.chatTemplate.length > 0;
  }

  /**
   * Renders `messages` with the model's chat template (jinja). The template sees `messages`,
   * `add_generation_prompt`, `bos_token`, `eos_token`, `pad_token`, `unk_token` and any extra
   * `variables`; `raise_exception(msg)` in the template becomes a TokenizerError. The result
   * usually already contains BOS, so encode it with `addSpecialTokens: false`.
   */
  applyChatTemplate(messages: ChatMessage[], opts: ChatTemplateOptions = {}): string {
    if (!this.hasChatTemplate) {
      throw new TokenizerError(
        `${this.source} has no chat template (looked for chat_template in tokenizer_config.json, ` +
          `chat_template.jinja and chat_template.json). Pass a plain prompt instead of messages, or add ` +
          `a chat_template to tokenizer_config.json.`,
      );
    }
    if (!this.compiledTemplate) {
      try {
        this.compiledTemplate = new Template(this.chatTemplate!);
      } catch (err) {
        throw new TokenizerError(
          `The chat template of ${this.source} cannot be parsed: ${errorMessage(err)}. ` +
            `Fix or replace chat_template in tokenizer_config.json, or pass a plain prompt.`,
          { cause: err },
        );
      }
    }
    try {
      return this.compiledTemplate.render({
        ...opts.variables,
        messages,
        add_generation_prompt: opts.addGenerationPrompt ?? false,
        bos_token: this.bosToken ?? "",
        eos_token: this.eosToken ?? "",
        pad_token: this.padToken ?? "",
        unk_token: this.unkToken ?? "",
      });
    } catch (err) {
      throw new TokenizerError(
        `The chat template of ${this.source} failed on these messages: ${errorMessage(err)}. ` +
          `Check the roles and their order (many templates require alternating user/assistant turns), ` +
          `or pass a plain prompt.`,
        { cause: err },
      );
    }
  }

  /**
   * `applyChatTemplate` then `encode` without the post-processor's special tokens (the template
   * writes its own BOS), as HF's `apply_chat_template(tokenize=True)` does.
   */
  encodeChat(messages: ChatMessage[], opts: ChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, opts), { addSpecialTokens: false });
  }
}
