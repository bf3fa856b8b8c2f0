import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import {
  buildDecoderOnnx,
  makeFixture,
  openSafetensorsDir,
  referenceLogits,
} from "../../src/builder/index.js";
import { readOnnxMetadataProps } from "../../src/engine/onnx-file.js";
import { inspectModelDir } from "../../src/engine/model-dir.js";
import onnxProto from "onnx-proto";
import { argmax, expectRowConsistent, relErr, run } from "./helpers.js";

const root = mkdtempSync(join(tmpdir(), "sd-builder-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const TOKENS = [1, 17, 250, 3, 99, 42, 7, 300, 150, 64, 12];

describe("decoder graph vs float64 reference", () => {
  const cases = [
    { name: "llama GQA untied", opts: { arch: "llama" as const } },
    { name: "llama MHA tied", opts: { arch: "llama" as const, kvHeads: 4, tieEmbeddings: true } },
    { name: "qwen2 bias", opts: { arch: "qwen2" as const } },
    { name: "qwen3 qk-norm tied MQA", opts: { arch: "qwen3" as const, tieEmbeddings: true, kvHeads: 1 } },
    { name: "mistral 1 layer", opts: { arch: "mistral" as const, layers: 1 } },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const { dir, config } = await makeFixture({ out: join(root, c.name.replace(/\W+/g, "_")), ...c.opts });
      const s = await ort.InferenceSession.create(join(dir, "onnx", "model.onnx"));
      const { logits, hidden } = await run(s, config, config.numLayers, TOKENS);
      const ref = referenceLogits(config, openSafetensorsDir(dir), TOKENS);
      expect(relErr(logits as Float32Array, ref)).toBeLessThan(1e-4);
      expect(hidden!.length).toBe(TOKENS.length * config.hiddenSize);
      await s.release();
    });
  }

  it("the fused form (GroupQueryAttention, SkipSimplifiedLayerNormalization) and the ops form both equal the reference", async () => {
    const { dir, config } = await makeFixture({ out: join(root, "forms"), arch: "llama" }); // head_dim 16
    const weights = openSafetensorsDir(dir);
    const ref = referenceLogits(config, weights, TOKENS);
    const counts: Record<string, number> = {};
    for (const form of ["fused", "ops"] as const) {
      const file = join(root, `forms-${form}.onnx`);
      await buildDecoderOnnx(config, weights, file, { attention: form });
      expect(readOnnxMetadataProps(file)["spec_decode.graph_form"]).toBe(form);
      const s = await ort.InferenceSession.create(file);
      const { logits } = await run(s, config, config.numLayers, TOKENS);
      expect(relErr(logits as Float32Array, ref)).toBeLessThan(1e-4);
      await s.release();
      const model = onnxProto.onnx.ModelProto.decode(readFileSync(file));
      const ops = (model.graph?.node ?? []).map((n) => n.opType);
      counts[form] = ops.length;
      expect(ops.filter((o) => o === "GroupQueryAttention").length).toBe(form === "fused" ? config.numLayers : 0);
    }
    expect(counts.fused!).toBeLessThan(counts.ops! / 2);
    await expect(buildDecoderOnnx(config, weights, join(root, "bad.onnx"), { attention: "flash" as "ops" })).rejects.toThrow(/attention must be "fused" or "ops"/);
  });

  it("the default form gives a token bitwise the same logits in a one-token and a multi-token forward", async () => {
    // What makes greedy speculation exact: verifying K tokens in one forward must score each of
    // them exactly as one-token decoding would (the fused form does not guarantee this).
    const { dir, config } = await makeFixture({ out: join(root, "rows"), arch: "llama" });
    const s = await ort.InferenceSession.create(join(dir, "onnx", "model.onnx"));
    await expectRowConsistent(s, config, TOKENS);
    await s.release();
  });

  it("early-exit graphs equal the reference with numLayers m, and carry metadata", async () => {
    const { dir, config } = await makeFixture({ out: join(root, "ee"), arch: "qwen2", layers: 3, earlyExit: [1, 2] });
    const weights = openSafetensorsDir(dir);
    for (const m of [1, 2]) {
      const file = join(dir, "onnx", `early_exit_${m}.onnx`);
      const s = await ort.InferenceSession.create(file);
      expect(s.inputNames.filter((n) => n.startsWith("past_key_values")).length).toBe(2 * m);
      expect(s.outputNames.filter((n) => n.startsWith("present")).length).toBe(2 * m);
      const { logits } = await run(s, config, m, TOKENS);
      expect(relErr(logits as Float32Array, referenceLogits(config, weights, TOKENS, { numLayers: m }))).toBeLessThan(1e-4);
      await s.release();
      expect(readOnnxMetadataProps(file)).toMatchObject({
        "spec_decode.builder": "1",
        "spec_decode.architecture": "qwen2",
        "spec_decode.num_layers": String(m),
        "spec_decode.source_num_layers": "3",
        "spec_decode.early_exit": "true",
      });
    }
    expect(readOnnxMetadataProps(join(dir, "onnx", "model.onnx"))).toMatchObject({ "spec_decode.num_layers": "3", "spec_decode.early_exit": "false" });
    // The engine's directory inspection picks the full model, and lists the drafts.
    const info = inspectModelDir(dir);
    expect(info.layout).toBe("onnx-community");
    expect(info.modelFile).toBe(join(dir, "onnx", "model.onnx"));
    expect(info.otherOnnxFiles.sort()).toEqual([join(dir, "onnx", "early_exit_1.onnx"), join(dir, "onnx", "early_exit_2.onnx")]);
    expect(info.eosIds).toEqual(config.eosTokenIds);
  });

  it("writes external data (<model>_data) that onnxruntime loads", async () => {
    const { dir, config } = await makeFixture({ out: join(root, "ext"), layers: 1 });
    const out = join(dir, "ext", "model.onnx");
    await buildDecoderOnnx(config, openSafetensorsDir(dir), out, { externalData: "always" });
    expect(existsSync(`${out}_data`)).toBe(true);
    expect(readFileSync(out).byteLength).toBeLessThan(100_000);
    const s = await ort.InferenceSession.create(out);
    const { logits } = await run(s, config, 1, TOKENS);
    expect(relErr(logits as Float32Array, referenceLogits(config, openSafetensorsDir(dir), TOKENS))).toBeLessThan(1e-4);
    await s.release();
  });

  it("optimum and genai layouts put model.onnx beside config.json", async () => {
    const opt = await makeFixture({ out: join(root, "optimum"), layout: "optimum", layers: 2, earlyExit: [1] });
    expect(existsSync(join(opt.dir, "model.onnx"))).toBe(true);
    expect(existsSync(join(opt.dir, "early_exit_1.onnx"))).toBe(true);
    expect(existsSync(join(opt.dir, "onnx"))).toBe(false);
    expect(inspectModelDir(opt.dir).layout).toBe("optimum");

    const gen = await makeFixture({ out: join(root, "genai"), layout: "genai", layers: 1 });
    const gc = JSON.parse(readFileSync(join(gen.dir, "genai_config.json"), "utf8"));
    expect(gc.model.decoder).toMatchObject({
      filename: "model.onnx",
      head_size: 16,
      hidden_size: 64,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      num_hidden_layers: 1,
      inputs: { past_key_names: "past_key_values.%d.key", past_value_names: "past_key_values.%d.value" },
      outputs: { present_key_names: "present.%d.key", present_value_names: "present.%d.value" },
    });
    expect(gc.model).toMatchObject({ context_length: 512, vocab_size: 320, type: "llama" });
    expect(gc.search.max_length).toBe(512);
    const info = inspectModelDir(gen.dir);
    expect(info.layout).toBe("genai");
    expect(info.modelFile).toBe(join(gen.dir, "model.onnx"));
    const s = await ort.InferenceSession.create(info.modelFile);
    const { logits } = await run(s, gen.config, 1, [1, 2, 3]);
    expect(argmax(logits, 2, 320)).toBe(argmax(referenceLogits(gen.config, openSafetensorsDir(gen.dir), [1, 2, 3]), 2, 320));
    await s.release();
  });

  it("fixtures are deterministic per seed and well separated", async () => {
    const a = await makeFixture({ out: join(root, "seedA"), layers: 1, seed: 7 });
    const b = await makeFixture({ out: join(root, "seedB"), layers: 1, seed: 7 });
    const c = await makeFixture({ out: join(root, "seedC"), layers: 1, seed: 8 });
    const st = (d: string) => readFileSync(join(d, "model.safetensors"));
    expect(st(a.dir).equals(st(b.dir))).toBe(true);
    expect(st(a.dir).equals(st(c.dir))).toBe(false);
    // Peaked distributions: most greedy gaps are well above float noise.
    const toks = Array.from({ length: 40 }, (_, i) => (i * 37 + 5) % 320);
    const ref = referenceLogits(a.config, openSafetensorsDir(a.dir), toks);
    let big = 0;
    let top1 = 0;
    for (let t = 0; t < toks.length; t++) {
      const row = Array.from(ref.subarray(t * 320, (t + 1) * 320)).sort((x, y) => y - x);
      if (row[0]! - row[1]! > 0.1) big++;
      top1 += 1 / row.reduce((s, x) => s + Math.exp(x - row[0]!), 0);
    }
    expect(big / toks.length).toBeGreaterThan(0.8);
    expect(top1 / toks.length).toBeGreaterThan(0.2); // far from uniform (1/320)
  });
});
