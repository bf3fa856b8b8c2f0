import { mkdtemp, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenizerError } from "../../src/errors.js";
import { FIXTURE_CHAT_TEMPLATE, makeFixtureTokenizer } from "../../src/text/fixture-tokenizer.js";
import { TextTokenizer } from "../../src/text/tokenizer.js";

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "text-tok-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let counter = 0;
async function modelDir(files: Record<string, unknown>): Promise<string> {
  const dir = join(root, `m${counter++}`);
  await mkdir(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    await writeFile(join(dir, name), typeof content === "string" ? content : JSON.stringify(content), "utf8");
  }
  return dir;
}

function fixtureFiles(vocab = 512, configPatch: Record<string, unknown> = {}): Record<string, unknown> {
  const fx = makeFixtureTokenizer(vocab);
  return { "tokenizer.json": fx.tokenizerJson, "tokenizer_config.json": { ...fx.tokenizerConfig, ...configPatch } };
}

describe("TextTokenizer.load", () => {
  it("loads a model directory", async () => {
    const tok = await TextTokenizer.load(await modelDir(fixtureFiles()));
    expect(tok.vocabSize).toBe(512);
    expect(tok.bosId).toBe(1);
    expect(tok.eosIds).toEqual([2]);
    expect(tok.padId).toBe(0);
    expect(tok.bosToken).toBe("<s>");
    expect(tok.eosToken).toBe("</s>");
    expect(tok.hasChatTemplate).toBe(true);
    expect([...tok.specialIds].sort()).toEqual([0, 1, 2]);
    expect(tok.isSpecial(2)).toBe(true);
    expect(tok.isSpecial(100)).toBe(false);
  });

  it("names a missing tokenizer.json", async () => {
    const files = fixtureFiles();
    delete files["tokenizer.json"];
    const dir = await modelDir(files);
    await expect(TextTokenizer.load(dir)).rejects.toThrow(TokenizerError);
    await expect(TextTokenizer.load(dir)).rejects.toThrow(/Missing tokenizer\.json in .*Copy tokenizer\.json/);
  });

  it("names a missing tokenizer_config.json", async () => {
    const files = fixtureFiles();
    delete files["tokenizer_config.json"];
    await expect(TextTokenizer.load(await modelDir(files))).rejects.toThrow(/Missing tokenizer_config\.json/);
  });

  it("reports a directory that does not exist", async () => {
    await expect(TextTokenizer.load(join(root, "nope"))).rejects.toThrow(TokenizerError);
  });

  it("reports invalid JSON with the file name", async () => {
    const dir = await modelDir({ ...fixtureFiles(), "tokenizer.json": "{ not json" });
    await expect(TextTokenizer.load(dir)).rejects.toThrow(/tokenizer\.json is not valid JSON/);
  });

  it("wraps tokenizers.js construction errors", async () => {
    const dir = await modelDir({ ...fixtureFiles(), "tokenizer.json": { model: { type: "Nope" } } });
    await expect(TextTokenizer.load(dir)).rejects.toThrow(TokenizerError);
  });

  it("merges generation_config eos ids after the tokenizer's, without duplicates", async () => {
    const dir = await modelDir({ ...fixtureFiles(), "generation_config.json": { eos_token_id: [2, 7, 9] } });
    expect((await TextTokenizer.load(dir)).eosIds).toEqual([2, 7, 9]);
    const dir2 = await modelDir({ ...fixtureFiles(), "generation_config.json": { eos_token_id: 5 } });
    expect((await TextTokenizer.load(dir2)).eosIds).toEqual([2, 5]);
  });

  it("accepts AddedToken objects and falls back to special_tokens_map.json", async () => {
    const dir = await modelDir({
      ...fixtureFiles(512, { eos_token: { __type: "AddedToken", content: "</s>", special: true }, bos_token: null }),
      "special_tokens_map.json": { bos_token: { content: "<s>" } },
    });
    const tok = await TextTokenizer.load(dir);
    expect(tok.eosIds).toEqual([2]);
    expect(tok.bosId).toBe(1);
    expect(tok.eosToken).toBe("</s>");
  });

  it("reads chat_template.jinja / chat_template.json when the config has none", async () => {
    const jinja = await modelDir({ ...fixtureFiles(512, { chat_template: undefined }), "chat_template.jinja": "J{{ messages[0].content }}" });
    expect((await TextTokenizer.load(jinja)).applyChatTemplate([{ role: "user", content: "x" }])).toBe("Jx");
    const json = await modelDir({
      ...fixtureFiles(512, { chat_template: undefined }),
      "chat_template.json": { chat_template: "N{{ messages | length }}" },
    });
    expect((await TextTokenizer.load(json)).applyChatTemplate([{ role: "user", content: "x" }])).toBe("N1");
  });
});

describe("TextTokenizer encode/decode", () => {
  const fx = makeFixtureTokenizer(512);
  const tok = TextTokenizer.fromJSON(fx.tokenizerJson, fx.tokenizerConfig, { source: "fixture" });

  it("adds BOS by default, not with addSpecialTokens: false", () => {
    const plain = tok.encode("hello there", { addSpecialTokens: false });
    expect(tok.encode("hello there")).toEqual([1, ...plain]);
  });

  it("decodes, optionally skipping special tokens; [] is empty", () => {
    const ids = [1, ...tok.encode("Hi!", { addSpecialTokens: false }), 2];
    expect(tok.decode(ids)).toBe("<s>Hi!</s>");
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe("Hi!");
    expect(tok.decode([])).toBe("");
    expect(tok.decode(Int32Array.from(ids), { skipSpecialTokens: true })).toBe("Hi!");
  });

  it("encodes special token text as the special token", () => {
    expect(tok.encode("a</s>", { addSpecialTokens: false }).at(-1)).toBe(2);
  });

  it("maps tokens and ids both ways", () => {
    expect(tok.tokenToId("</s>")).toBe(2);
    expect(tok.idToToken(2)).toBe("</s>");
    expect(tok.idToToken(3 + 0x61)).toBe("a");
    expect(tok.tokenToId("definitely-not-a-token")).toBeUndefined();
    expect(tok.idToToken(10_000)).toBeUndefined();
  });

  it("fingerprints and compares vocabularies", () => {
    const same = TextTokenizer.fromJSON(makeFixtureTokenizer(512).tokenizerJson, fx.tokenizerConfig);
    const other = TextTokenizer.fromJSON(makeFixtureTokenizer(64).tokenizerJson, makeFixtureTokenizer(64).tokenizerConfig);
    expect(tok.vocabFingerprint().size).toBe(512);
    expect(tok.vocabHash()).toBe(same.vocabHash());
    expect(tok.vocabHash()).not.toBe(other.vocabHash());
    expect(tok.compareVocab(same)).toEqual({ identical: true, sizeA: 512, sizeB: 512, mismatchCount: 0, examples: [] });
    const cmp = tok.compareVocab(other);
    expect(cmp.identical).toBe(false);
    expect(cmp.sizeB).toBe(64);
    expect(cmp.mismatchCount).toBe(61); // only the three specials agree
    expect(cmp.examples[0]).toEqual({ id: 3, a: "\u0100", b: "<unk>" });
  });

  it("counts added tokens beyond the model vocabulary in vocabSize", () => {
    const json = structuredClone(makeFixtureTokenizer(300).tokenizerJson) as {
      added_tokens: Array<Record<string, unknown>>;
    };
    json.added_tokens.push({ id: 300, content: "<|im_end|>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    const t = TextTokenizer.fromJSON(json, { ...fx.tokenizerConfig, eos_token: "<|im_end|>" });
    expect(t.vocabSize).toBe(301);
    expect(t.eosIds).toEqual([300]);
    expect(t.encode("x<|im_end|>", { addSpecialTokens: false })).toEqual([3 + 0x78, 300]);
    expect(t.decode([3 + 0x78, 300], { skipSpecialTokens: true })).toBe("x");
  });
});

describe("TextTokenizer chat templates", () => {
  const fx = makeFixtureTokenizer(512);
  const tok = TextTokenizer.fromJSON(fx.tokenizerJson, fx.tokenizerConfig, { source: "fixture" });

  it("renders the fixture template (golden)", () => {
    const msgs = [
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi" },
    ];
    expect(tok.applyChatTemplate(msgs)).toBe("<s><|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n");
    expect(tok.applyChatTemplate(msgs, { addGenerationPrompt: true })).toBe(
      "<s><|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n",
    );
    expect(tok.chatTemplate).toBe(FIXTURE_CHAT_TEMPLATE);
  });

  it("encodeChat tokenizes the rendered chat without a second BOS", () => {
    const ids = tok.encodeChat([{ role: "user", content: "Hi" }], { addGenerationPrompt: true });
    expect(ids[0]).toBe(1);
    expect(ids[1]).not.toBe(1);
    expect(ids.filter((i) => i === 2)).toHaveLength(1);
    expect(tok.decode(ids)).toBe("<s><|user|>\nHi</s>\n<|assistant|>\n");
  });

  it("turns raise_exception into a TokenizerError carrying the template's message", () => {
    expect(() => tok.applyChatTemplate([{ role: "tool", content: "x" }])).toThrow(TokenizerError);
    expect(() => tok.applyChatTemplate([{ role: "tool", content: "x" }])).toThrow(/Unknown role: tool/);
  });

  it("passes extra variables and message fields", () => {
    const t = TextTokenizer.fromJSON(fx.tokenizerJson, {
      ...fx.tokenizerConfig,
      chat_template: "{{ greeting }} {{ messages[0].name }}: {{ messages[0].content }}{{ eos_token }}",
    });
    expect(t.applyChatTemplate([{ role: "user", content: "hi", name: "Ann" }], { variables: { greeting: "Hey" } })).toBe(
      "Hey Ann: hi</s>",
    );
  });

  it("picks the default of a list of named templates", () => {
    const t = TextTokenizer.fromJSON(fx.tokenizerJson, {
      ...fx.tokenizerConfig,
      chat_template: [
        { name: "tool_use", template: "T" },
        { name: "default", template: "D" },
      ],
    });
    expect(t.applyChatTemplate([])).toBe("D");
  });

  it("fails clearly without a template, or with a broken one", () => {
    const none = TextTokenizer.fromJSON(fx.tokenizerJson, { ...fx.tokenizerConfig, chat_template: undefined }, { source: "/models/x" });
    expect(none.hasChatTemplate).toBe(false);
    expect(() => none.applyChatTemplate([{ role: "user", content: "x" }])).toThrow(/\/models\/x has no chat template/);
    const broken = TextTokenizer.fromJSON(fx.tokenizerJson, { ...fx.tokenizerConfig, chat_template: "{% for %}" });
    expect(() => broken.applyChatTemplate([{ role: "user", content: "x" }])).toThrow(TokenizerError);
  });
});
