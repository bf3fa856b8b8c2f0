/**
 * train-eagle end to end on a fixture without a tokenizer: token-id self-distillation, a short
 * training run that must beat the untrained head on held-out depth-1 accuracy, and the written
 * head decoding exactly (greedy equals plain greedy) while accepting drafted tokens.
 */
import { cpSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createEagleProposer, eagleSettings, loadEagleHead } from "../../src/decoding/eagle.js";
import { generateTokens } from "../../src/decoding/generate.js";
import { trainEagle } from "../../src/eagle/train.js";
import { trainMedusa } from "../../src/medusa/train.js";
import { CausalLM } from "../../src/engine/causal-lm.js";
import { InvalidOptionError } from "../../src/errors.js";
import { fixture, tempDir } from "../helpers/fixtures.js";

describe("train-eagle", () => {
  const root = tempDir("eagle-train");
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("trains in token-id space on a model without tokenizer, improves held-out top-1, and decodes exactly", async () => {
    const src = await fixture({ layers: 2, hidden: 32, heads: 4, kvHeads: 2, vocab: 128, seed: 3 });
    const model = join(root, "model");
    for (const f of ["config.json", "generation_config.json", "model.safetensors", "onnx"]) cpSync(join(src, f), join(model, f), { recursive: true });
    const lines: string[] = [];
    const report = await trainEagle({
      model,
      selfDistill: 8,
      maxNewTokens: 40,
      maxSteps: 40,
      window: 16,
      batchRows: 64,
      lr: 1e-2,
      evalDepth: 3,
      unrollAfter: 0.5,
      onLog: (l) => lines.push(l),
    });
    expect(lines.some((l) => l.includes("token-id space"))).toBe(true);
    // Single-step for the first half of the 40 steps, then the default 3 unrolled steps.
    expect(lines.some((l) => /^step 20: single-step phase done, training 3 unrolled steps/.test(l))).toBe(true);
    expect(report.unrollAfter).toBe(0.5);
    expect(lines.some((l) => l.startsWith("held-out top-1 per draft depth"))).toBe(true);
    expect(report.depthTop1).toHaveLength(3);
    expect(report.depthTop1[0]!).toBeGreaterThan(report.initialDepthTop1[0]!);
    expect(report.files.some((f) => f.endsWith("eagle_head.safetensors"))).toBe(true);

    const lm = await CausalLM.load(model);
    const head = await loadEagleHead(report.out, model);
    try {
      const prompt = [1, 5, 9, 20];
      const base = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens: 40, eosIds: [] });
      const res = await generateTokens({ target: lm, promptIds: prompt, maxNewTokens: 40, eosIds: [], proposer: createEagleProposer(lm, head, eagleSettings({})) });
      expect(res.tokens).toEqual(base.tokens);
      expect(res.stats.meanAcceptedLength).toBeGreaterThan(1);
    } finally {
      await head.dispose();
      await lm.dispose();
    }
  }, 240_000);

  it("train-medusa also self-distills in token-id space when the model has no tokenizer (from --prompt-ids too)", async () => {
    const src = await fixture({ layers: 2, hidden: 32, heads: 4, kvHeads: 2, vocab: 128, seed: 3 });
    const model = join(root, "model3");
    for (const f of ["config.json", "model.safetensors", "onnx"]) cpSync(join(src, f), join(model, f), { recursive: true });
    const report = await trainMedusa({ model, selfDistill: 3, maxNewTokens: 20, maxSteps: 3 });
    expect(report.data.sequences).toBe(3);
    const ids = join(root, "ids.txt");
    writeFileSync(ids, "1 5 9\n1,7,7,3\n");
    const r2 = await trainMedusa({ model, selfDistill: 2, promptIds: ids, maxNewTokens: 20, maxSteps: 2, out: join(root, "m2") });
    expect(r2.data.tokens).toBe(3 + 4 + 2 * 20);
    writeFileSync(ids, "1 x 9\n");
    await expect(trainMedusa({ model, selfDistill: 2, promptIds: ids, maxSteps: 1 })).rejects.toThrow(/token ids/);
  }, 120_000);

  it("rejects missing data and --data text on a model without tokenizer, naming the fix", async () => {
    const src = await fixture({ layers: 2, hidden: 32, heads: 4, kvHeads: 2, vocab: 128, seed: 3 });
    await expect(trainEagle({ model: src })).rejects.toThrow(InvalidOptionError);
    const model = join(root, "model2");
    for (const f of ["config.json", "model.safetensors", "onnx"]) cpSync(join(src, f), join(model, f), { recursive: true });
    await expect(trainEagle({ model, selfDistill: 2, data: join(root, "nope.txt") })).rejects.toThrow(/--prompt-ids/);
  });
});
