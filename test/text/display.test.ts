import { describe, expect, it } from "vitest";
import { displayText } from "../../src/text/display.js";

describe("displayText", () => {
  it("escapes ESC, NUL, the other C0 controls, DEL and C1 controls", () => {
    expect(displayText("a\u001b[31mred\u001b[0m")).toBe("a\\x1b[31mred\\x1b[0m");
    expect(displayText("nul\u0000here")).toBe("nul\\x00here");
    expect(displayText("\u0007\u0008\u000b\u000c\u007f")).toBe("\\x07\\x08\\x0b\\x0c\\x7f");
    expect(displayText("csi\u009b2J next\u0085line")).toBe("csi\\x9b2J next\\x85line");
    for (let c = 0; c < 0x20; c++) {
      const ch = String.fromCharCode(c);
      if (ch === "\n" || ch === "\t") continue;
      expect(displayText(ch), `U+${c.toString(16)}`).toMatch(/^\\(x[0-9a-f]{2}|r)$/);
    }
    for (let c = 0x7f; c <= 0x9f; c++) expect(displayText(String.fromCharCode(c))).toBe(`\\x${c.toString(16)}`);
  });

  it("shows U+FFFD, bidi controls and line separators escaped", () => {
    expect(displayText("bad byte \ufffd")).toBe("bad byte \\ufffd");
    expect(displayText("abc\u202edef\u2066x\u2069")).toBe("abc\\u202edef\\u2066x\\u2069");
    expect(displayText("a\u2028b")).toBe("a\\u2028b");
    expect(displayText("\r")).toBe("\\r");
  });

  it("keeps newlines and tabs unless asked for one line", () => {
    expect(displayText("one\n\ttwo")).toBe("one\n\ttwo");
    expect(displayText("one\n\ttwo\r", { keepNewlines: false })).toBe("one\\n\\ttwo\\r");
  });

  it("leaves ordinary text alone: backslashes, quotes, non-ASCII letters, emoji", () => {
    const s = 'path C:\\x1b is text, "quoted", héllo, 日本語, 🙂, ä\u0301';
    expect(displayText(s)).toBe(s);
    expect(displayText("")).toBe("");
  });

  it("never lets a control character through (every code unit below U+00A0 is checked)", () => {
    let all = "";
    for (let c = 0; c < 0xa0; c++) all += String.fromCharCode(c);
    const out = displayText(all, { keepNewlines: false });
    expect(out).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
  });
});
