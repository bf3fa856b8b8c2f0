/**
 * `spec-decode generate` on a terminal shows control characters in the model's text escaped
 * (text/display.ts); piped, the text is byte-exact. A pseudo-terminal comes from util-linux
 * `script`; the test skips where it is missing. The random fixture's byte-level tokens give text
 * with raw control characters, which the piped run checks first (so the terminal check can fail).
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { displayText } from "../../src/text/display.js";
import { CLI, ensureBuilt } from "../helpers/dist.js";
import { fixture } from "../helpers/fixtures.js";

const hasScript = spawnSync("script", ["--version"], { encoding: "utf8" }).status === 0;
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\ufffd]/;
const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

describe.skipIf(!hasScript)("generate on a terminal", () => {
  it("escapes control characters on a TTY and keeps piped output raw", async () => {
    ensureBuilt();
    const model = await fixture({ layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 1 });
    const args = ["generate", "--model", model, "--prompt-ids", "1,17,93", "--max-new-tokens", "48"];
    const piped = spawnSync(process.execPath, [CLI, ...args, "--json"], { encoding: "utf8", timeout: 120_000 });
    expect(piped.status, piped.stderr).toBe(0);
    const text = (JSON.parse(piped.stdout) as { text: string }).text;
    expect(text, "the fixture's text should hold control characters for this test to mean anything").toMatch(CONTROL);

    const raw = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 120_000 });
    expect(raw.stdout).toBe(`${text}\n`);

    const cmd = [process.execPath, CLI, ...args].map(quote).join(" ") + " 2>/dev/null";
    const tty = spawnSync("script", ["-qec", cmd, "/dev/null"], { encoding: "utf8", timeout: 120_000 });
    expect(tty.status, tty.stderr).toBe(0);
    // The terminal turns each \n into \r\n; the model's own \r is shown as the two characters \r.
    const shown = tty.stdout.replace(/\r\n/g, "\n");
    expect(shown).not.toMatch(CONTROL);
    expect(shown).toBe(`${displayText(text)}\n`);
  });
});
