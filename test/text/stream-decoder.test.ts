import { describe, expect, it } from "vitest";
import { Rng } from "../../src/sampling/rng.js";
import { makeFixtureTokenizer } from "../../src/text/fixture-tokenizer.js";
import { StreamDecoder } from "../../src/text/stream-decoder.js";
import { TextTokenizer } from "../../src/text/tokenizer.js";

function fixture(n: number): TextTokenizer {
  const fx = makeFixtureTokenizer(n);
  return TextTokenizer.fromJSON(fx.tokenizerJson, fx.tokenizerConfig);
}

/** A Llama-2 style SentencePiece tokenizer (Metaspace "▁" + byte fallback), for decoding only. */
function sentencePieceLike(): TextTokenizer {
  const tokens = ["<unk>", "<s>", "</s>", "▁Hello", "▁world", "!", "▁again", "<0xF0>", "<0x9F>", "<0xA6>", "<0x80>", "▁", "▁é", "t"];
  const vocab = Object.fromEntries(tokens.map((t, i) => [t, i]));
  const json = {
    version: "1.0",
    added_tokens: ["<unk>", "<s>", "</s>"].map((content, id) => ({
      id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "▁" }, { type: "Replace", pattern: { String: " " }, content: "▁" }] },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: { type: "BPE", dropout: null, unk_token: "<unk>", byte_fallback: true, fuse_unk: true, vocab, merges: [] },
  };
  return TextTokenizer.fromJSON(json, { bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>", clean_up_tokenization_spaces: false });
}

function streamAll(dec: StreamDecoder, chunks: number[][]): string[] {
  const out = chunks.map((c) => dec.push(c));
  out.push(dec.flush());
  return out;
}

describe("StreamDecoder, byte-level BPE", () => {
  it("holds back a character split over byte tokens until it is complete", () => {
    const tok = fixture(259); // bytes only: "🦀" is 4 tokens
    const ids = tok.encode("a🦀b", { addSpecialTokens: false });
    expect(ids).toEqual([3 + 0x61, 3 + 0xf0, 3 + 0x9f, 3 + 0xa6, 3 + 0x80, 3 + 0x62]);
    const dec = new StreamDecoder(tok);
    expect(ids.map((id) => dec.push([id]))).toEqual(["a", "", "", "", "🦀", "b"]);
    expect(dec.flush()).toBe("");
  });

  it("emits the complete part of a chunk and holds only the broken tail", () => {
    const tok = fixture(259);
    const ids = tok.encode("héllo 😀!", { addSpecialTokens: false });
    const dec = new StreamDecoder(tok);
    const cut = ids.length - 3; // inside the emoji
    expect(dec.push(ids.slice(0, cut))).toBe("héllo ");
    expect(dec.push(ids.slice(cut, cut + 2))).toBe("😀");
    expect(dec.push(ids.slice(cut + 2))).toBe("!");
  });

  it("matches decode(all) for random texts and random chunking, never emitting U+FFFD", () => {
    const rng = new Rng(7);
    for (const n of [259, 600, 4096]) {
      const tok = fixture(n);
      const texts = ["Grüße aus Köln 🎉🎉 — naïve 日本語 test", "👍🏽👍🏽 e\u0301 🇫🇷🇫🇷 end", "plain ascii words only here"];
      for (const text of texts) {
        const ids = tok.encode(text);
        const dec = new StreamDecoder(tok);
        const chunks: number[][] = [];
        for (let i = 0; i < ids.length; ) {
          const k = 1 + Math.floor(rng.next() * 3);
          chunks.push(ids.slice(i, i + k));
          i += k;
        }
        const pieces = streamAll(dec, chunks);
        for (const p of pieces) expect(p).not.toContain("\uFFFD");
        expect(pieces.join("")).toBe(text);
        expect(pieces.join("")).toBe(tok.decode(ids, { skipSpecialTokens: true }));
      }
    }
  });

  it("skips special tokens by default and keeps them when asked", () => {
    const tok = fixture(512);
    const ids = [1, ...tok.encode("hi there", { addSpecialTokens: false }), 2];
    expect(streamAll(new StreamDecoder(tok), ids.map((i) => [i])).join("")).toBe("hi there");
    expect(streamAll(new StreamDecoder(tok, { skipSpecialTokens: false }), ids.map((i) => [i])).join("")).toBe(
      "<s>hi there</s>",
    );
  });

  it("flush emits an incomplete tail as U+FFFD; reset starts over", () => {
    const tok = fixture(259);
    const dec = new StreamDecoder(tok);
    expect(dec.push([3 + 0x61, 3 + 0xf0, 3 + 0x9f])).toBe("a");
    expect(dec.flush()).toBe("\uFFFD");
    dec.reset();
    expect(dec.push([3 + 0x62])).toBe("b");
    expect(dec.push([])).toBe("");
  });

  it("passes through invalid byte sequences once they are followed by more text", () => {
    const tok = fixture(259);
    const dec = new StreamDecoder(tok);
    expect(dec.push([3 + 0xff])).toBe("");
    expect(dec.push([3 + 0x61])).toBe("\uFFFDa");
  });
});

describe("StreamDecoder, SentencePiece-style leading spaces", () => {
  const tok = sentencePieceLike();

  it("keeps the space that single-token decoding would drop", () => {
    expect(tok.decode([4])).toBe("world"); // why a window is needed
    const ids = [1, 3, 4, 5, 11, 7, 8, 9, 10, 6, 2];
    const full = tok.decode(ids, { skipSpecialTokens: true });
    expect(full).toBe("Hello world! 🦀 again");
    const dec = new StreamDecoder(tok);
    const pieces = ids.map((id) => dec.push([id]));
    expect(pieces).toEqual(["", "Hello", " world", "!", " ", "", "", "", "🦀", " again", ""]);
    expect(pieces.join("") + dec.flush()).toBe(full);
  });

  it("keeps spacing across skipped special tokens and bare spaces", () => {
    const dec = new StreamDecoder(tok);
    const ids = [3, 2, 6, 11, 11, 12, 13];
    const pieces = ids.map((id) => dec.push([id]));
    expect(pieces.join("") + dec.flush()).toBe(tok.decode(ids, { skipSpecialTokens: true }));
    expect(pieces.join("")).toBe("Hello again   ét");
  });

  it("handles byte-fallback characters split across pushes in any chunking", () => {
    const ids = [3, 7, 8, 9, 10, 7, 8, 9, 10, 4];
    const full = tok.decode(ids);
    const rng = new Rng(3);
    for (let trial = 0; trial < 20; trial++) {
      const dec = new StreamDecoder(tok);
      const pieces: string[] = [];
      for (let i = 0; i < ids.length; ) {
        const k = 1 + Math.floor(rng.next() * 4);
        pieces.push(dec.push(ids.slice(i, i + k)));
        i += k;
      }
      pieces.push(dec.flush());
      for (const p of pieces) expect(p).not.toContain("\uFFFD");
      expect(pieces.join("")).toBe(full);
    }
  });
});
