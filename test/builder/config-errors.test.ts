import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  buildModelDir,
  fixtureConfigJson,
  fixtureTensors,
  makeFixture,
  parseDecoderConfig,
  readDecoderConfig,
  ropeInvFreq,
  writeSafetensors,
} from "../../src/builder/index.js";
import { BuildError } from "../../src/errors.js";

const root = mkdtempSync(join(tmpdir(), "sd-cfg-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const base = (over: Record<string, unknown> = {}) => ({
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 2048,
  intermediate_size: 8192,
  num_hidden_layers: 16,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  vocab_size: 128256,
  rms_norm_eps: 1e-5,
  rope_theta: 500000,
  max_position_embeddings: 131072,
  tie_word_embeddings: true,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  hidden_act: "silu",
  ...over,
});

async function expectBuildError(p: Promise<unknown> | (() => unknown), re: RegExp): Promise<void> {
  let err: unknown;
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(BuildError);
  expect((err as Error).message).toMatch(re);
}

describe("config.json parsing", () => {
  it("normalizes a Llama 3.2 config with llama3 rope scaling", () => {
    const cfg = parseDecoderConfig(
      base({
        rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: "llama3" },
      }),
      { bos_token_id: 128000, eos_token_id: [128001, 128009] },
    );
    expect(cfg).toMatchObject({
      architecture: "llama",
      headDim: 64,
      numKvHeads: 8,
      tieWordEmbeddings: true,
      attentionBias: false,
      qkNorm: false,
      bosTokenId: 128000,
      ropeScaling: { type: "llama3", factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
    });
    expect(cfg.eosTokenIds).toEqual([128001, 128009, 128008]);
    const plain = ropeInvFreq({ ...cfg, ropeScaling: { type: "none" } });
    const inv = ropeInvFreq(cfg);
    expect(inv[0]).toBe(plain[0]); // high frequency: unchanged
    expect(inv[31]).toBeCloseTo(plain[31]! / 32, 12); // low frequency: divided by factor
    for (let i = 0; i < 32; i++) {
      expect(inv[i]!).toBeLessThanOrEqual(plain[i]!);
      expect(inv[i]!).toBeGreaterThanOrEqual(plain[i]! / 32 - 1e-12);
    }
    // inv_freq = 1 / theta^(2i/d), in float32
    expect(plain[1]).toBe(Math.fround(1 / Math.fround(500000 ** Math.fround(2 / 64))));
    const lin = ropeInvFreq({ headDim: 64, ropeTheta: 10000, ropeScaling: { type: "linear", factor: 4 } });
    expect(lin[5]).toBeCloseTo(Math.fround(1 / 10000 ** (10 / 64)) / 4, 6);
  });

  it("maps Qwen2 (bias), Qwen3 (qk norm, head_dim), Mistral; and v5-style rope_parameters", () => {
    expect(parseDecoderConfig(base({ architectures: ["Qwen2ForCausalLM"], model_type: "qwen2" }))).toMatchObject({ architecture: "qwen2", attentionBias: true, qkNorm: false });
    const q3 = parseDecoderConfig(base({ architectures: ["Qwen3ForCausalLM"], model_type: "qwen3", head_dim: 128 }));
    expect(q3).toMatchObject({ architecture: "qwen3", attentionBias: false, qkNorm: true, headDim: 128 });
    expect(parseDecoderConfig(base({ architectures: ["MistralForCausalLM"] })).architecture).toBe("mistral");
    expect(parseDecoderConfig(base({ architectures: undefined, model_type: "qwen3" })).architecture).toBe("qwen3");
    const v5 = parseDecoderConfig(base({ rope_theta: undefined, rope_parameters: { rope_type: "default", rope_theta: 1e6 } }));
    expect(v5).toMatchObject({ ropeTheta: 1e6, ropeScaling: { type: "none" } });
    expect(parseDecoderConfig(base({ tie_word_embeddings: undefined })).tieWordEmbeddings).toBe(false);
  });

  it("rejects unknown architectures and unsupported settings with actionable messages", async () => {
    await expectBuildError(() => parseDecoderConfig(base({ architectures: ["GPT2LMHeadModel"], model_type: "gpt2" })), /"GPT2LMHeadModel" is not supported.*LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM/);
    await expectBuildError(() => parseDecoderConfig(base({ architectures: undefined, model_type: undefined })), /names no architecture/);
    await expectBuildError(() => parseDecoderConfig(base({ rope_scaling: { rope_type: "yarn", factor: 4 } })), /rope_scaling type "yarn".*not supported/);
    await expectBuildError(() => parseDecoderConfig(base({ hidden_act: "gelu" })), /hidden_act "gelu"/);
    await expectBuildError(() => parseDecoderConfig(base({ num_key_value_heads: 5 })), /multiple of num_key_value_heads/);
    await expectBuildError(() => parseDecoderConfig(base({ hidden_size: undefined })), /"hidden_size" must be a positive integer but is missing/);
  });
});

describe("buildModelDir errors", () => {
  it("missing directory / config.json / weights", async () => {
    await expectBuildError(buildModelDir(join(root, "nope")), /does not exist/);
    const d = join(root, "noconfig");
    mkdirSync(d);
    await expectBuildError(buildModelDir(d), /No config\.json in .*huggingface-cli download/);
    expect(() => readDecoderConfig(d)).toThrow(BuildError);
    writeFileSync(join(d, "config.json"), JSON.stringify(base({ architectures: ["FalconForCausalLM"] })));
    await expectBuildError(buildModelDir(d), /"FalconForCausalLM" is not supported/);
    writeFileSync(join(d, "config.json"), JSON.stringify(base()));
    await expectBuildError(buildModelDir(d), /No safetensors weights/);
    writeFileSync(join(d, "config.json"), "{ not json");
    await expectBuildError(buildModelDir(d), /Could not parse .*config\.json/);
  });

  it("wrong tensor shape names the tensor, expected and actual shape; missing tensors are named", async () => {
    const json = fixtureConfigJson({
      arch: "llama", layers: 1, hidden: 32, heads: 2, kvHeads: 2, intermediate: 48, vocab: 64, maxPositions: 16,
      tieEmbeddings: false, bosId: 1, eosId: 2, padId: 0,
    });
    const cfg = parseDecoderConfig(json);
    const d = join(root, "badshape");
    mkdirSync(d);
    writeFileSync(join(d, "config.json"), JSON.stringify(json));
    const tensors = fixtureTensors(cfg, 0);
    const k = tensors.find((t) => t.name === "model.layers.0.self_attn.k_proj.weight")!;
    k.dims = [16, 64];
    writeSafetensors(join(d, "model.safetensors"), tensors);
    await expectBuildError(buildModelDir(d), /"model\.layers\.0\.self_attn\.k_proj\.weight" has shape \[16, 64\] but config\.json implies \[32, 32\]/);

    k.dims = [32, 32];
    writeSafetensors(join(d, "model.safetensors"), tensors.filter((t) => !t.name.includes("mlp.down_proj")));
    await expectBuildError(buildModelDir(d), /"model\.layers\.0\.mlp\.down_proj\.weight" \(expected shape \[32, 48\]\) is missing/);

    await expectBuildError(
      buildModelDir(d, { earlyExit: [1] }),
      /Early-exit depth 1 is out of range: the model has 1 layers/,
    );
  });

  it("a fixture rebuilt in place replaces its files", async () => {
    const a = await makeFixture({ out: join(root, "again"), layers: 1 });
    const before = readFileSync(join(a.dir, "onnx", "model.onnx"));
    const res = await buildModelDir(a.dir, {});
    expect(res.files).toEqual([join(a.dir, "onnx", "model.onnx")]);
    expect(readFileSync(res.files[0]!).equals(before)).toBe(true);
  });
});
