import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { InvalidOptionError } from "../../src/errors.js";
import { Rng } from "../../src/sampling/rng.js";
import {
  FIXTURE_BOS,
  FIXTURE_EOS,
  FIXTURE_PAD,
  FIXTURE_UNK,
  makeFixtureTokenizer,
  writeFixtureTokenizer,
} from "../../src/text/fixture-tokenizer.js";
import { TextTokenizer } from "../../src/text/tokenizer.js";

function load(vocabSize: number): TextTokenizer {
  const fx = makeFixtureTokenizer(vocabSize);
  return TextTokenizer.fromJSON(fx.tokenizerJson, fx.tokenizerConfig);
}

/** Random valid Unicode text: ASCII words, accents, CJK, emoji, combining marks, whitespace. */
function randomText(rng: Rng, length: number): string {
  const pools = [
    "abcdefghijklmnopqrstuvwxyz      ",
    "ABCXYZ0123456789.,;:!?'\"()[]{}<>-_/\\\n\t",
    "éèêëàâäçñöüßøåæœÉÀÇ",
    "日本語中文한국어кириллицаΕλληνικά",
    "🦀😀🎉👍🏽❤️🇫🇷",
    "e\u0301a\u0308\u200d\u00a0",
  ];
  let s = "";
  while (s.length < length) {
    const pool = [...pools[Math.floor(rng.next() * pools.length)]!];
    s += pool[Math.floor(rng.next() * pool.length)]!;
  }
  // Also a few arbitrary code points from the whole range (no surrogates).
  for (let i = 0; i < 5; i++) {
    let cp = Math.floor(rng.next() * 0x10ffff);
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x1f600;
    s += String.fromCodePoint(cp);
  }
  return s;
}

describe("makeFixtureTokenizer (byte-level BPE)", () => {
  it.each([259, 260, 300, 512, 1024, 4096, 40000])("has exactly %i tokens and the fixed specials", (n) => {
    const fx = makeFixtureTokenizer(n);
    expect(fx.kind).toBe("byte-level-bpe");
    const tok = TextTokenizer.fromJSON(fx.tokenizerJson, fx.tokenizerConfig);
    expect(tok.vocabSize).toBe(n);
    expect([fx.padId, fx.bosId, fx.eosId]).toEqual([0, 1, 2]);
    expect(tok.tokenToId(FIXTURE_PAD)).toBe(0);
    expect(tok.tokenToId(FIXTURE_BOS)).toBe(1);
    expect(tok.tokenToId(FIXTURE_EOS)).toBe(2);
    expect(tok.bosId).toBe(1);
    expect(tok.eosIds).toEqual([2]);
    expect(tok.padId).toBe(0);
    // Byte b is id 3 + b: "A" (0x41), space (Ġ), and byte 0 (Ā).
    expect(tok.tokenToId("A")).toBe(3 + 0x41);
    expect(tok.tokenToId("\u0120")).toBe(3 + 0x20);
    expect(tok.tokenToId("\u0100")).toBe(3);
  });

  it.each([259, 300, 1024, 8192])("round-trips arbitrary UTF-8 text (vocab %i)", (n) => {
    const tok = load(n);
    const rng = new Rng(n);
    const samples = [
      "Hello, world!",
      "naïve café, crème brûlée — déjà vu",
      "emoji 🦀🎉 and flags 🇫🇷 and skin tones 👍🏽",
      "日本語のテキスト and 中文 and 한국어",
      "  leading and trailing spaces  \n\nnew lines\ttabs\r\n",
      "e\u0301 combining, zero\u200bwidth, nbsp\u00a0here",
      "",
    ];
    for (let i = 0; i < 20; i++) samples.push(randomText(rng, 10 + Math.floor(rng.next() * 80)));
    for (const text of samples) {
      const ids = tok.encode(text, { addSpecialTokens: false });
      for (const id of ids) expect(id).toBeLessThan(n);
      expect(tok.decode(ids)).toBe(text);
      const withBos = tok.encode(text);
      expect(withBos[0]).toBe(1);
      expect(tok.decode(withBos, { skipSpecialTokens: true })).toBe(text);
    }
  });

  it("learns merges from English: common words become few tokens", () => {
    const tok = load(1024);
    const ids = tok.encode(" the model", { addSpecialTokens: false });
    expect(ids.length).toBeLessThanOrEqual(2);
    expect(load(259).encode(" the model", { addSpecialTokens: false }).length).toBe(10); // bytes only
  });

  it("is deterministic and prefix-stable across sizes", () => {
    const a = makeFixtureTokenizer(700);
    const b = makeFixtureTokenizer(700);
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    const small = load(300).vocabFingerprint();
    const big = load(5000).vocabFingerprint();
    for (const [tokStr, id] of small) expect(big.get(tokStr)).toBe(id);
    expect(load(300).compareVocab(load(5000))).toMatchObject({ identical: false, mismatchCount: 0 });
  });

  it("returns fresh objects", () => {
    const a = makeFixtureTokenizer(300);
    (a.tokenizerConfig as Record<string, unknown>).eos_token = "<x>";
    expect(makeFixtureTokenizer(300).tokenizerConfig.eos_token).toBe(FIXTURE_EOS);
  });
});

describe("makeFixtureTokenizer (character level)", () => {
  it.each([8, 16, 64, 200, 258])("has exactly %i tokens", (n) => {
    const fx = makeFixtureTokenizer(n);
    expect(fx.kind).toBe("char-level");
    const tok = TextTokenizer.fromJSON(fx.tokenizerJson, fx.tokenizerConfig);
    expect(tok.vocabSize).toBe(n);
    expect(fx.unkId).toBe(3);
    expect(tok.tokenToId(FIXTURE_UNK)).toBe(3);
    expect(tok.eosIds).toEqual([2]);
  });

  it("encodes known characters one per token and unknown ones as <unk>", () => {
    const tok = load(8); // specials + " ", e, t, a
    expect(tok.encode("tea eat", { addSpecialTokens: false })).toEqual([6, 5, 7, 4, 5, 7, 6]);
    expect(tok.decode([6, 5, 7])).toBe("tea");
    expect(tok.encode("tex", { addSpecialTokens: false })).toEqual([6, 5, 3]);
    expect(tok.encode("tea")).toEqual([1, 6, 5, 7]);
    expect(tok.decode([1, 6, 5, 7, 2], { skipSpecialTokens: true })).toBe("tea");
  });

  it("round-trips text made of its own characters", () => {
    const tok = load(200);
    const text = "The model said: \"Hello, World!\" (42 times); naïve façade.\n";
    const ids = tok.encode(text, { addSpecialTokens: false });
    expect(ids).not.toContain(3);
    expect(tok.decode(ids)).toBe(text);
  });

  it("decodes every id to something (usable for random tiny models)", () => {
    const tok = load(32);
    const ids = Array.from({ length: 32 }, (_, i) => i);
    expect(tok.decode(ids, { skipSpecialTokens: true }).length).toBe(28);
  });
});

describe("makeFixtureTokenizer errors and files", () => {
  it("rejects sizes below 8 or non-integers", () => {
    expect(() => makeFixtureTokenizer(7)).toThrow(InvalidOptionError);
    expect(() => makeFixtureTokenizer(300.5)).toThrow(/integer >= 8/);
  });

  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it("writeFixtureTokenizer writes files TextTokenizer.load reads", async () => {
    const dir = await mkdtemp(join(tmpdir(), "fixture-tok-"));
    dirs.push(dir);
    const fx = await writeFixtureTokenizer(join(dir, "model"), 512);
    const tok = await TextTokenizer.load(join(dir, "model"));
    expect(tok.vocabSize).toBe(512);
    expect(tok.eosIds).toEqual([fx.eosId]);
    expect(tok.hasChatTemplate).toBe(true);
    expect(tok.decode(tok.encode("round trip ✓", { addSpecialTokens: false }))).toBe("round trip ✓");
  });
});
