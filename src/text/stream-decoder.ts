/**
 * Incremental detokenization for streaming.
 *
 * Decoding tokens one at a time is wrong for two reasons: a multi-byte UTF-8 character may be
 * split over several byte tokens (decoding a prefix yields U+FFFD), and SentencePiece-style
 * decoders drop the leading space of the *first* token of whatever they are given. So this
 * decodes a small window: `prefix` = the tokens of the previous chunk, and the new text is
 * `decode(prefix + new)` minus `decode(prefix)` (the "prefix offset" technique). A trailing U+FFFD
 * (an incomplete character) is held back until later tokens complete it, or until `flush()`.
 *
 * Decoding never applies the " ." -> "." clean-up (it would rewrite text already emitted), so for
 * tokenizers whose config enables `clean_up_tokenization_spaces` the stream may differ from
 * `decode(allIds)` in exactly those spots.
 */
import type { TextTokenizer } from "./tokenizer.js";

export interface StreamDecoderOptions {
  /** Drop special tokens from the text. Default true (chat markers, EOS... are not user text). */
  skipSpecialTokens?: boolean;
}

const REPLACEMENT = "\uFFFD";

export class StreamDecoder {
  private readonly tok: TextTokenizer;
  private readonly skipSpecialTokens: boolean;
  /** Tokens from the start of the window (the prefix) to the newest. */
  private window: number[] = [];
  /** window[0, readIndex) is the prefix; window[readIndex, ...) are tokens not yet fully emitted. */
  private readIndex = 0;
  /** decode(window[0, readIndex)). */
  private prefixText = "";
  /** Characters after prefixText already emitted while the tail was held back. */
  private emittedBeyondPrefix = 0;

  constructor(tok: TextTokenizer, opts: StreamDecoderOptions = {}) {
    this.tok = tok;
    this.skipSpecialTokens = opts.skipSpecialTokens ?? true;
  }

  private decode(ids: number[]): string {
    return this.tok.decode(ids, { skipSpecialTokens: this.skipSpecialTokens, cleanUpTokenizationSpaces: false });
  }

  /** Adds tokens; returns the text they complete (possibly ""). */
  push(ids: ArrayLike<number>): string {
    if (ids.length === 0) return "";
    for (let i = 0; i < ids.length; i++) this.window.push(ids[i]!);
    const text = this.decode(this.window);
    const start = this.prefixText.length + this.emittedBeyondPrefix;
    if (text.endsWith(REPLACEMENT)) {
      // The last character may be incomplete: emit what is before it, keep the tokens.
      const stableEnd = text.length - 1;
      if (stableEnd > start) {
        this.emittedBeyondPrefix = stableEnd - this.prefixText.length;
        return text.slice(start, stableEnd);
      }
      return "";
    }
    const out = text.length > start ? text.slice(start) : "";
    this.advance(text);
    return out;
  }

  /** Ends the stream: returns everything held back (an incomplete character becomes U+FFFD). */
  flush(): string {
    if (this.window.length === 0) return "";
    const text = this.decode(this.window);
    const start = this.prefixText.length + this.emittedBeyondPrefix;
    const out = text.length > start ? text.slice(start) : "";
    this.advance(text);
    return out;
  }

  /** Forgets all state (for reuse on an unrelated stream). */
  reset(): void {
    this.window = [];
    this.readIndex = 0;
    this.prefixText = "";
    this.emittedBeyondPrefix = 0;
  }

  /** Everything in the window has been emitted: the unemitted tokens become the next prefix. */
  private advance(windowText: string): void {
    const tail = this.window.slice(this.readIndex);
    const tailText = this.decode(tail);
    if (tailText.length > 0 && !tailText.startsWith(REPLACEMENT)) {
      this.window = tail;
      this.prefixText = tailText;
    } else {
      // The tail alone decodes to nothing (skipped special tokens, a bare "▁") or starts with a
      // broken character (its first bytes live in the older tokens): keep the older tokens in the
      // prefix so that spacing and characters stay right.
      this.prefixText = windowText;
    }
    this.readIndex = this.window.length;
    this.emittedBeyondPrefix = 0;
  }
}
