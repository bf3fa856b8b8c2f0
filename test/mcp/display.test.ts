/** The MCP render points (tool-kit.ts textResult / errorResult) show model text with control characters escaped. */
import { describe, expect, it } from "vitest";
import { errorResult, textResult } from "../../src/mcp/tool-kit.js";
import { InvalidOptionError } from "../../src/errors.js";

const RAW = "ok \u001b[2J\u0000 \u009b \ufffd end";
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\ufffd]/;

const textOf = (r: { content: unknown[] }) => (r.content[0] as { type: string; text: string }).text;

describe("MCP replies", () => {
  it("escape control characters in the text and keep the structured content raw", () => {
    const r = textResult(`Text: ${RAW}\nline two`, { text: RAW, tokens: [27, 0] });
    expect(textOf(r)).toBe("Text: ok \\x1b[2J\\x00 \\x9b \\ufffd end\nline two");
    expect(textOf(r)).not.toMatch(CONTROL);
    expect(r.structuredContent).toEqual({ text: RAW, tokens: [27, 0] });
  });

  it("escape them in errors too (messages can quote a stop string or a prompt)", () => {
    const r = errorResult(new InvalidOptionError(`stop string "${RAW}" is too long`));
    expect(r.isError).toBe(true);
    expect(textOf(r)).not.toMatch(CONTROL);
    expect(textOf(r)).toContain("\\x1b[2J\\x00");
    expect(textOf(errorResult(new Error(RAW)))).not.toMatch(CONTROL);
  });
});
