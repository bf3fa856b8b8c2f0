/**
 * Text a model produced, made safe to show: a terminal or a chat client must not receive raw
 * control characters (ESC starts terminal escape sequences, NUL and the other C0/C1 controls can
 * hide or rewrite text, bidirectional overrides reorder it) or an unannounced U+FFFD (the decoder's
 * mark for bytes that were not valid UTF-8). Each such character is shown escaped instead: `\x1b`,
 * `\x00`, `\x9b`, `\ufffd`, `\u202e`. Newlines and tabs stay as they are unless `keepNewlines` is
 * false (one-line displays), which shows them as `\n`, `\r`, `\t`. Everything else, backslashes
 * included, passes through unchanged, so ordinary text reads as written. For display only: the
 * token ids and the unescaped text stay in the structured results.
 */

export interface DisplayTextOptions {
  /** Keep `\n` and `\t` as they are (default true); false escapes them for one-line output. */
  keepNewlines?: boolean;
}

// C0 controls, DEL, C1 controls, U+FFFD, the bidirectional embeddings/overrides/isolates, and the
// line/paragraph separators (which JavaScript and some terminals treat as line breaks).
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\ufffd\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;
const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

function escapeChar(c: string): string {
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
}

/** `text` with every control character, U+FFFD and bidi control shown escaped (see above). */
export function displayText(text: string, options: DisplayTextOptions = {}): string {
  const keepNewlines = options.keepNewlines ?? true;
  return text.replace(UNSAFE, (c) => {
    if (keepNewlines && (c === "\n" || c === "\t")) return c;
    return NAMED[c] ?? escapeChar(c);
  });
}
