/** Draft-model / early-exit misuse gives clear errors that name the fix. */
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SpecEngine } from "../../src/api.js";
import { describeModel } from "../../src/decoding/capabilities.js";
import { generateTokens } from "../../src/decoding/generate.js";
import { getMethod } from "../../src/decoding/methods.js";
import { CausalLM } from "../../src/engine/causal-lm.js";
import { ContextLengthError, InvalidOptionError, ModelLoadError, VocabMismatchError } from "../../src/errors.js";
import { CLI_VOCABULARY, MCP_VOCABULARY } from "../../src/vocabulary.js";
import { fixture, tempDir } from "../helpers/fixtures.js";

const base = { layers: 2, hidden: 32, heads: 2, kvHeads: 1, vocab: 320, seed: 31 } as const;

describe("draft / early-exit errors", () => {
  let root: string;
  let model: string;
  let engine: SpecEngine;
  beforeAll(async () => {
    root = tempDir("draft-errors");
    model = await fixture(base);
    engine = new SpecEngine();
  });
  afterAll(async () => {
    await engine.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  const gen = (extra: Record<string, unknown>) =>
    engine.generate({ model, method: "draft", promptIds: [1, 2, 3], maxNewTokens: 4, ...extra });

  it("a missing draft names --draft", async () => {
    await expect(gen({})).rejects.toThrow(InvalidOptionError);
    await expect(gen({})).rejects.toThrow(/--draft DIR/);
  });

  it("a draft with another vocabulary size is a VocabMismatchError naming both sizes", async () => {
    const small = await fixture({ ...base, layers: 1, vocab: 300 });
    const err = await gen({ draft: small }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VocabMismatchError);
    expect((err as Error).message).toMatch(/320 tokens, the draft's 300/);
    expect((err as Error).message).toMatch(/same model family/);
  });

  it("a draft whose tokenizer maps ids to other tokens is a VocabMismatchError with examples", async () => {
    const src = await fixture({ ...base, layers: 1 });
    const d = join(root, "swapped");
    mkdirSync(join(d, "onnx"), { recursive: true });
    for (const f of ["config.json", "generation_config.json", "tokenizer_config.json"]) copyFileSync(join(src, f), join(d, f));
    copyFileSync(join(src, "onnx", "model.onnx"), join(d, "onnx", "model.onnx"));
    const tok = JSON.parse(readFileSync(join(src, "tokenizer.json"), "utf8")) as { model: { vocab: Record<string, number> } };
    const entries = Object.entries(tok.model.vocab);
    const [a, b] = [entries.find(([, id]) => id === 10)!, entries.find(([, id]) => id === 11)!];
    tok.model.vocab[a[0]] = 11;
    tok.model.vocab[b[0]] = 10;
    writeFileSync(join(d, "tokenizer.json"), JSON.stringify(tok));
    const err = await gen({ draft: d }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VocabMismatchError);
    expect((err as Error).message).toMatch(/2 ids map to different tokens, e\.g\. id 10/);
  });

  it("without tokenizers, different logits sizes are a mismatch", async () => {
    const src = await fixture({ ...base, layers: 1, vocab: 300 });
    const d = join(root, "notok");
    mkdirSync(join(d, "onnx"), { recursive: true });
    copyFileSync(join(src, "config.json"), join(d, "config.json"));
    copyFileSync(join(src, "onnx", "model.onnx"), join(d, "onnx", "model.onnx"));
    const m = join(root, "notok-target");
    mkdirSync(join(m, "onnx"), { recursive: true });
    copyFileSync(join(model, "config.json"), join(m, "config.json"));
    copyFileSync(join(model, "onnx", "model.onnx"), join(m, "onnx", "model.onnx"));
    const err = await engine.generate({ model: m, draft: d, method: "draft", promptIds: [1, 2], maxNewTokens: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VocabMismatchError);
    expect((err as Error).message).toMatch(/vocabulary of 300 but the target .* has 320/);
  });

  it("K must be an integer from 1 to 32", async () => {
    const draft = await fixture({ ...base, layers: 1 });
    for (const k of [0, 33, 1.5, -1, Number.NaN]) {
      await expect(gen({ draft, methodOptions: { k } })).rejects.toThrow(/integer in 1\.\.32, or "auto"/);
      expect(() => getMethod("early-exit").create({ target: {} as CausalLM, draft: {} as CausalLM }, { k })).toThrow(InvalidOptionError);
    }
    await expect(gen({ draft, methodOptions: { k: "many" as never } })).rejects.toThrow(InvalidOptionError);
    await expect(gen({ draft, methodOptions: { controller: "magic" as never } })).rejects.toThrow(/fixed, heuristic, confidence, cost/);
    await expect(gen({ draft, methodOptions: { confidenceThreshold: 1.5 } })).rejects.toThrow(/confidenceThreshold/);
    const ok = await gen({ draft, methodOptions: { k: 32 } });
    expect(ok.tokens).toHaveLength(4);
  });

  it("a K that would run past the remaining context is a ContextLengthError naming the largest K that fits", async () => {
    const short = await fixture({ ...base, maxPositions: 16 });
    const lm = await CausalLM.load(short);
    const draft = await CausalLM.load(await fixture({ ...base, layers: 1, maxPositions: 16 }));
    const prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const run = (k: number | "auto") =>
      generateTokens({ target: lm, promptIds: prompt, maxNewTokens: 4, eosIds: [], proposer: getMethod("draft").create({ target: lm, draft }, { k }) });
    await expect(run(8)).rejects.toThrow(ContextLengthError);
    await expect(run(8)).rejects.toThrow(/K=8 .*Lower k \(--k\) to at most 5/);
    // One message, two renderings: CLI flags, MCP argument names.
    const err = (await run(8).catch((e: unknown) => e)) as ContextLengthError;
    expect(err.render(CLI_VOCABULARY)).toMatch(/Lower --k to at most 5/);
    expect(err.render(MCP_VOCABULARY)).toMatch(/Lower k to at most 5/);
    // K = 5 fits; "auto" clamps itself; both still equal plain greedy.
    const plain = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens: 6, eosIds: [] });
    for (const k of [5, "auto"] as const) {
      const res = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens: 6, eosIds: [], proposer: getMethod("draft").create({ target: lm, draft }, { k }) });
      expect(res.tokens).toEqual(plain.tokens);
    }
    await lm.dispose();
    await draft.dispose();
  });

  it("a missing early-exit graph names `spec-decode build --early-exit`", async () => {
    const ee = (methodOptions: Record<string, unknown>) =>
      engine.generate({ model, method: "early-exit", promptIds: [1, 2], maxNewTokens: 2, methodOptions });
    await expect(ee({ exitLayer: 1 })).rejects.toThrow(ModelLoadError);
    await expect(ee({ exitLayer: 1 })).rejects.toThrow(/spec-decode build --model .* --early-exit 1/);
    await expect(ee({})).rejects.toThrow(/needs an early-exit draft graph.*spec-decode build/);
    await expect(ee({ exitLayer: 2 })).rejects.toThrow(/exitLayer \(--exit-layer\) must be an integer from 1 to 1/);
    const missing = (await ee({}).catch((e: unknown) => e)) as ModelLoadError;
    expect(missing.render(CLI_VOCABULARY)).toMatch(/spec-decode build --model .* --early-exit 1`.*then pass --exit-layer\./);
    expect(missing.render(MCP_VOCABULARY)).toMatch(/build_model \{model: ".*", earlyExit: \[1\]\}.*then pass methodOptions\.exitLayer\./);
    expect(missing.render(MCP_VOCABULARY)).not.toMatch(/spec-decode build|--exit-layer|--early-exit/);
    const lm = await CausalLM.load(model);
    const info = describeModel(lm).methods.find((m) => m.method === "early-exit")!;
    expect(info.available).toBe(false);
    expect(info.reason).toMatch(/--early-exit/);
    expect(describeModel(lm, MCP_VOCABULARY).methods.find((m) => m.method === "early-exit")!.reason).toMatch(/build_model \{model: ".*", earlyExit: \[M\]\}/);
    await lm.dispose();
    const built = await fixture({ ...base, earlyExit: [1] });
    const lm2 = await CausalLM.load(built);
    expect(describeModel(lm2).methods.find((m) => m.method === "early-exit")!.available).toBe(true);
    await lm2.dispose();
  });

  it("early-exit's create() takes the target's own exit graph and refuses a separate model, naming method draft", async () => {
    const built = await fixture({ ...base, earlyExit: [1] });
    const target = await CausalLM.load(built);
    const exit = await CausalLM.load(built, { file: join(built, "onnx", "early_exit_1.onnx") });
    const other = await CausalLM.load(await fixture({ ...base, layers: 1 })); // same vocabulary, another directory
    const full = await CausalLM.load(built); // beside the target, but all its layers
    try {
      const res = await generateTokens({ target, promptIds: [1, 2], maxNewTokens: 3, eosIds: [], proposer: getMethod("early-exit").create({ target, draft: exit }, { k: 2 }) });
      expect(res.stats.extra).toMatchObject({ exitLayer: 1, exitAdapter: "untrained" });
      for (const draft of [other, full]) {
        expect(() => getMethod("early-exit").create({ target, draft }, { k: 2 })).toThrow(InvalidOptionError);
        expect(() => getMethod("early-exit").create({ target, draft }, { k: 2 })).toThrow(/target's own exit graphs .* use method "draft"/);
      }
    } finally {
      for (const m of [target, exit, other, full]) await m.dispose();
    }
  });
});
