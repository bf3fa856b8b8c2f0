import { mkdirSync, rmSync, writeFileSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SpecEngine } from "../../src/api.js";
import { openSafetensorsDir, readDecoderConfig, referenceLogits } from "../../src/builder/index.js";
import { generateTokens } from "../../src/decoding/generate.js";
import { CausalLM } from "../../src/engine/causal-lm.js";
import { ContextLengthError, InvalidOptionError, ModelInterfaceError, ModelLoadError } from "../../src/errors.js";
import { fixture, tempDir } from "../helpers/fixtures.js";

function argmax(row: ArrayLike<number>, from: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (row[from + i]! > row[from + best]!) best = i;
  return best;
}

/** Greedy decoding with the float64 reference forward (no cache, full recompute). */
function referenceGreedy(dir: string, prompt: number[], n: number): number[] {
  const cfg = readDecoderConfig(dir);
  const w = openSafetensorsDir(dir);
  const seq = [...prompt];
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const logits = referenceLogits(cfg, w, seq);
    const t = argmax(logits, (seq.length - 1) * cfg.vocabSize, cfg.vocabSize);
    out.push(t);
    seq.push(t);
  }
  return out;
}

describe("baseline generation", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fixture({ layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 1 });
  });

  it("greedy tokens equal the float64 reference's greedy tokens", async () => {
    const lm = await CausalLM.load(dir);
    const prompt = [1, 17, 93, 200, 5, 64];
    const res = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens: 24, eosIds: [] });
    expect(res.tokens).toEqual(referenceGreedy(dir, prompt, 24));
    expect(res.stats.newTokens).toBe(24);
    expect(res.stats.targetForwards).toBe(24);
    expect(res.stats.meanAcceptedLength).toBe(1);
    expect(res.finishReason).toBe("length");
    await lm.dispose();
  });

  it("a one-token prompt works (no prefill)", async () => {
    const lm = await CausalLM.load(dir);
    const res = await generateTokens({ target: lm, promptIds: [7], maxNewTokens: 6, eosIds: [] });
    expect(res.tokens).toEqual(referenceGreedy(dir, [7], 6));
    await lm.dispose();
  });

  it("sampling is reproducible for a seed and varies across seeds", async () => {
    const lm = await CausalLM.load(dir);
    const run = (seed: number) => generateTokens({ target: lm, promptIds: [3, 4, 5], maxNewTokens: 12, eosIds: [], sampling: { temperature: 1, seed } });
    const a = await run(1);
    const b = await run(1);
    const c = await run(2);
    expect(a.tokens).toEqual(b.tokens);
    expect(c.tokens).not.toEqual(a.tokens);
    await lm.dispose();
  });

  it("stops on eos and includes it", async () => {
    const lm = await CausalLM.load(dir);
    const free = await generateTokens({ target: lm, promptIds: [1, 2, 3], maxNewTokens: 10, eosIds: [] });
    const eos = free.tokens[4]!;
    const first = free.tokens.indexOf(eos);
    const res = await generateTokens({ target: lm, promptIds: [1, 2, 3], maxNewTokens: 10, eosIds: [eos] });
    expect(res.finishReason).toBe("eos");
    expect(res.tokens).toEqual(free.tokens.slice(0, first + 1));
    await lm.dispose();
  });

  it("rejects prompts that do not fit the context, and bad options, with clear errors", async () => {
    const small = await fixture({ layers: 1, hidden: 32, heads: 2, kvHeads: 1, vocab: 300, maxPositions: 16, seed: 2 });
    const lm = await CausalLM.load(small);
    await expect(generateTokens({ target: lm, promptIds: new Array(16).fill(5), maxNewTokens: 1 })).rejects.toThrow(ContextLengthError);
    await expect(generateTokens({ target: lm, promptIds: new Array(10).fill(5), maxNewTokens: 10 })).rejects.toThrow(/at most 6/);
    await expect(generateTokens({ target: lm, promptIds: [], maxNewTokens: 1 })).rejects.toThrow(InvalidOptionError);
    await expect(generateTokens({ target: lm, promptIds: [1], maxNewTokens: 0 })).rejects.toThrow(InvalidOptionError);
    await expect(generateTokens({ target: lm, promptIds: [100000], maxNewTokens: 1 })).rejects.toThrow(/outside the model's vocabulary/);
    await expect(generateTokens({ target: lm, promptIds: [1], maxNewTokens: 2, sampling: { temperature: -1 } })).rejects.toThrow(InvalidOptionError);
    await lm.dispose();
  });
});

describe("layouts and interfaces", () => {
  it("loads and generates identically from onnx-community, optimum and genai layouts", async () => {
    const opts = { layers: 2, hidden: 48, heads: 4, kvHeads: 2, vocab: 300, seed: 3 } as const;
    const outs: number[][] = [];
    for (const layout of ["onnx-community", "optimum", "genai"] as const) {
      const d = await fixture({ ...opts, layout });
      const lm = await CausalLM.load(d);
      expect(lm.info.layout).toBe(layout);
      outs.push((await generateTokens({ target: lm, promptIds: [5, 6, 7], maxNewTokens: 8, eosIds: [] })).tokens);
      await lm.dispose();
    }
    expect(outs[1]).toEqual(outs[0]);
    expect(outs[2]).toEqual(outs[0]);
  });

  it("drives fp16 KV and logits graphs", async () => {
    const d16 = await fixture({ layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 1, ioDtype: "float16" });
    const lm = await CausalLM.load(d16);
    expect(lm.info.kvDtype).toBe("float16");
    expect(lm.info.logitsDtype).toBe("float16");
    const res = await generateTokens({ target: lm, promptIds: [1, 17, 93], maxNewTokens: 8, eosIds: [] });
    expect(res.tokens).toHaveLength(8);
    // fp16 rounding of the KV can change near-tied argmaxes; the first tokens match fp32.
    const d32 = await fixture({ layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 1 });
    expect(res.tokens.slice(0, 3)).toEqual(referenceGreedy(d32, [1, 17, 93], 3));
    await lm.dispose();
  });

  it("falls back to causal-only graphs (no tree mask) for plain decoding", async () => {
    const d = await fixture({ layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 1, treeMask: false, hiddenStates: false });
    const lm = await CausalLM.load(d);
    expect(lm.info.hasTreeMask).toBe(false);
    const res = await generateTokens({ target: lm, promptIds: [1, 17, 93, 200, 5, 64], maxNewTokens: 10, eosIds: [] });
    expect(res.tokens).toEqual(referenceGreedy(d, [1, 17, 93, 200, 5, 64], 10));
    await lm.dispose();
  });
});

describe("bad model directories", () => {
  let root: string;
  beforeAll(() => {
    root = tempDir("badmodels");
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("names the problem and the fix", async () => {
    await expect(CausalLM.load(join(root, "nope"))).rejects.toThrow(/does not exist/);
    const empty = join(root, "empty");
    mkdirSync(empty);
    await expect(CausalLM.load(empty)).rejects.toThrow(/neither config.json nor genai_config.json/);
    const noOnnx = join(root, "no-onnx");
    mkdirSync(noOnnx);
    writeFileSync(join(noOnnx, "config.json"), JSON.stringify({ architectures: ["LlamaForCausalLM"] }));
    await expect(CausalLM.load(noOnnx)).rejects.toThrow(/spec-decode build/);
    const broken = join(root, "broken");
    mkdirSync(join(broken, "onnx"), { recursive: true });
    writeFileSync(join(broken, "config.json"), "{ not json");
    await expect(CausalLM.load(broken)).rejects.toThrow(ModelLoadError);
    const garbage = join(root, "garbage");
    mkdirSync(join(garbage, "onnx"), { recursive: true });
    writeFileSync(join(garbage, "config.json"), "{}");
    writeFileSync(join(garbage, "onnx", "model.onnx"), "this is not an onnx file");
    await expect(CausalLM.load(garbage)).rejects.toThrow(/could not load/);
  });

  it("rejects a graph that is not a decoder with a KV cache", async () => {
    // The early-exit graph is a fine decoder; a graph without KV inputs is not. Use the builder's
    // graph layer to write a tiny Identity model.
    const { GraphBuilder } = await import("../../src/builder/index.js");
    const d = join(root, "identity");
    mkdirSync(d);
    writeFileSync(join(d, "config.json"), "{}");
    const g = new GraphBuilder();
    g.input("input_ids", "int64", [1, "s"]);
    g.node("Identity", ["input_ids"], {}, ["logits"]);
    g.output("logits", "int64", [1, "s"]);
    g.save(join(d, "model.onnx"));
    await expect(CausalLM.load(d)).rejects.toThrow(ModelInterfaceError);
  });

  it("gives text-prompt requests on a tokenizer-less model a fix", async () => {
    const src = await fixture({ layers: 1, hidden: 32, heads: 2, kvHeads: 1, vocab: 300, seed: 4 });
    const d = join(root, "notok");
    mkdirSync(join(d, "onnx"), { recursive: true });
    copyFileSync(join(src, "config.json"), join(d, "config.json"));
    copyFileSync(join(src, "onnx", "model.onnx"), join(d, "onnx", "model.onnx"));
    const engine = new SpecEngine();
    await expect(engine.generate({ model: d, prompt: "hello", maxNewTokens: 2 })).rejects.toThrow(/--prompt-ids/);
    const ok = await engine.generate({ model: d, promptIds: [1, 2], maxNewTokens: 2 });
    expect(ok.tokens).toHaveLength(2);
    await engine.dispose();
  });
});

describe("exports of unknown ability", () => {
  it("probes multi-token verification once and stays exact", async () => {
    const dir = await fixture({ layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 1 });
    const { getMethod } = await import("../../src/decoding/methods.js");
    const lm = await CausalLM.load(dir);
    const prompt = [1, 17, 93, 200, 5, 64, 1, 17, 93, 200, 5, 64];
    const plain = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens: 16, eosIds: [] });
    lm.info.multiTokenWithPast = undefined; // as for a third-party export
    const pl = await generateTokens({
      target: lm,
      promptIds: prompt,
      maxNewTokens: 16,
      eosIds: [],
      proposer: getMethod("prompt-lookup").create({ target: lm }, {}),
    });
    expect(pl.tokens).toEqual(plain.tokens);
    expect(lm.info.multiTokenWithPast).toBe(true);
    // A model that failed the probe verifies token by token, still exactly.
    lm.info.multiTokenWithPast = false;
    const slow = await generateTokens({
      target: lm,
      promptIds: prompt,
      maxNewTokens: 16,
      eosIds: [],
      proposer: getMethod("prompt-lookup").create({ target: lm }, {}),
    });
    expect(slow.tokens).toEqual(plain.tokens);
    expect(slow.stats.verification).toBe("token-by-token");
    await lm.dispose();
  });
});
