/**
 * train-eagle / train-medusa --variant: the self-distilled sequences and their features come from
 * the named build (here model_q4.onnx beside model.onnx), the head records that build, and the head
 * trained for the int4 build decodes the int4 target exactly. An unknown variant names the builds.
 */
import { cpSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { trainEagle } from "../../src/eagle/train.js";
import { trainMedusa } from "../../src/medusa/train.js";
import { trainEarlyExitCommand } from "../../src/cli/train-early-exit.js";
import { fixture, tempDir } from "../helpers/fixtures.js";
import { expectExactGreedyWithHead, withModelAndHead } from "./helpers.js";

const BASE = { layers: 2, hidden: 32, heads: 4, kvHeads: 2, vocab: 128, seed: 3 } as const;

describe("training heads for a quantized build (--variant)", () => {
  const root = tempDir("train-variant");
  const model = join(root, "model");
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  beforeAll(async () => {
    // The float fixture plus the int4 build of the same checkpoint (accuracy level 0: row-consistent).
    const float = await fixture(BASE);
    const q4 = await fixture({ ...BASE, quantize: { kind: "int4", accuracyLevel: 0 } });
    for (const f of ["config.json", "generation_config.json", "model.safetensors", "onnx"]) cpSync(join(float, f), join(model, f), { recursive: true });
    cpSync(join(q4, "onnx", "model_q4.onnx"), join(model, "onnx", "model_q4.onnx"));
  }, 120_000);

  const recipe = { selfDistill: 8, maxNewTokens: 40, maxSteps: 40, window: 16, batchRows: 64, lr: 1e-2, evalDepth: 2, unroll: 1, seed: 1, keepBest: false } as const;

  it("train-eagle --variant q4 learns model_q4.onnx's features, records the build, and decodes the q4 target exactly", async () => {
    const fp = await trainEagle({ model, ...recipe, out: join(root, "h-fp32") });
    const q = await trainEagle({ model, ...recipe, variant: "q4", out: join(root, "h-q4") });
    expect(fp.data.build).toBe(join("onnx", "model.onnx"));
    expect(q.data.build).toBe(join("onnx", "model_q4.onnx"));
    const cfg = JSON.parse(readFileSync(join(root, "h-q4", "config.json"), "utf8")) as { spec_decode: Record<string, unknown> };
    expect(cfg.spec_decode.target_build).toBe(join("onnx", "model_q4.onnx"));
    // Same recipe and seed, other build: the int4 features (and sequences) change the trained head.
    const bytes = (d: string) => readFileSync(join(root, d, "eagle_head.safetensors"));
    expect(bytes("h-q4").equals(bytes("h-fp32"))).toBe(false);

    await withModelAndHead(model, q.out, { variant: "q4" }, async (lm, head) => {
      expect(lm.dirInfo.modelFile.endsWith("model_q4.onnx")).toBe(true);
      await expectExactGreedyWithHead(lm, head);
    });
  }, 240_000);

  it("an unknown variant is a clear error naming the builds present", async () => {
    await expect(trainEagle({ model, ...recipe, variant: "q3" })).rejects.toThrow(/No ONNX file named "q3".*Available: .*model\.onnx.*model_q4\.onnx/s);
    await expect(trainMedusa({ model, selfDistill: 2, maxNewTokens: 8, epochs: 1, variant: "q3" })).rejects.toThrow(/No ONNX file named "q3"/);
    // train-early-exit trains beside the float build's early-exit graph only: --variant is unknown there.
    await expect(trainEarlyExitCommand(["--model", model, "--exit-layer", "1", "--self-distill", "2", "--variant", "q4"])).rejects.toThrow(/Unknown option '--variant'/);
  });

  it("train-medusa --variant q4 trains on model_q4.onnx's hidden states and records the build", async () => {
    const r = await trainMedusa({ model, selfDistill: 4, maxNewTokens: 16, epochs: 1, heads: 2, seed: 1, variant: "q4", out: join(root, "m-q4") });
    expect(r.data.build).toBe(join("onnx", "model_q4.onnx"));
    const cfg = JSON.parse(readFileSync(join(root, "m-q4", "config.json"), "utf8")) as { spec_decode: Record<string, unknown> };
    expect(cfg.spec_decode.target_build).toBe(join("onnx", "model_q4.onnx"));
  }, 120_000);
});
