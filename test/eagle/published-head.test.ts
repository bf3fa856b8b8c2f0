/**
 * Published EAGLE heads (the EAGLE project's config.json + model.safetensors), written here by the
 * test in that layout: EAGLE-1/2 heads load and run with their semantics (normed hidden states in,
 * LM head without a norm out, no input_layernorm on layer 0); EAGLE-3 and other unmappable heads
 * are refused with errors that name what is unsupported.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SpecEngine } from "../../src/api.js";
import { readDecoderConfig } from "../../src/builder/config.js";
import { inspectEagleHead, readEagleTargetParts } from "../../src/builder/eagle-head.js";
import { SeededRandom } from "../../src/builder/fixture.js";
import { writeSafetensors, type TensorToWrite } from "../../src/builder/safetensors.js";
import { isEagleHeadDir, loadEagleHead } from "../../src/decoding/eagle.js";
import { fixture, tempDir } from "../helpers/fixtures.js";

const FX = { layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 1 };

interface Published {
  dir: string;
  t: Record<string, Float32Array>;
}

/** An EAGLE-1/2 head as the EAGLE project saves it (names, nn.Linear layout, config keys). */
function writePublished(dir: string, modelDir: string, seed: number, edit: (cfg: Record<string, unknown>, ts: TensorToWrite[]) => void = () => {}): Published {
  const c = readDecoderConfig(modelDir);
  const H = c.hiddenSize;
  const I = c.intermediateSize;
  const rng = new SeededRandom(seed);
  const m = (rows: number, cols: number, s = 1) => Float32Array.from({ length: rows * cols }, () => (s * rng.normal()) / Math.sqrt(cols));
  const t: Record<string, Float32Array> = {
    "fc.weight": m(H, 2 * H),
    "fc.bias": m(1, H, 0.3),
    "layers.0.self_attn.q_proj.weight": m(H, H),
    "layers.0.self_attn.k_proj.weight": m(H, H),
    "layers.0.self_attn.v_proj.weight": m(H, H),
    "layers.0.self_attn.o_proj.weight": m(H, H),
    "layers.0.post_attention_layernorm.weight": Float32Array.from({ length: H }, () => 1 + 0.1 * rng.normal()),
    "layers.0.mlp.gate_proj.weight": m(I, H),
    "layers.0.mlp.up_proj.weight": m(I, H),
    "layers.0.mlp.down_proj.weight": m(H, I),
    "embed_tokens.weight": m(c.vocabSize, H), // published heads may carry a copy; the target's own is used
  };
  const dims: Record<string, number[]> = { "fc.bias": [H], "layers.0.post_attention_layernorm.weight": [H] };
  const ts: TensorToWrite[] = Object.entries(t).map(([name, data]) => ({
    name,
    data,
    dims: dims[name] ?? (name === "fc.weight" ? [H, 2 * H] : name.includes("gate") || name.includes("up_proj") ? [I, H] : name.includes("down") ? [H, I] : name.startsWith("embed") ? [c.vocabSize, H] : [H, H]),
  }));
  const cfg: Record<string, unknown> = {
    architectures: ["LlamaForCausalLM"],
    bias: true,
    hidden_act: "silu",
    hidden_size: H,
    intermediate_size: I,
    max_position_embeddings: c.maxPositionEmbeddings,
    model_type: "llama",
    num_attention_heads: c.numHeads,
    num_hidden_layers: 1,
    num_key_value_heads: c.numHeads,
    rms_norm_eps: c.rmsNormEps,
    rope_scaling: null,
    rope_theta: c.ropeTheta,
    torch_dtype: "float16",
    vocab_size: c.vocabSize,
  };
  edit(cfg, ts);
  mkdirSync(dir, { recursive: true });
  writeSafetensors(join(dir, "model.safetensors"), ts, { format: "pt" });
  writeFileSync(join(dir, "config.json"), JSON.stringify(cfg, null, 2));
  return { dir, t };
}

/** out[r] = W [rows x cols] · x */
function mv(W: Float32Array, x: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += W[r * cols + j]! * x[j]!;
    out[r] = s;
  }
  return out;
}

describe("published EAGLE heads", () => {
  const root = tempDir("eagle-published");
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("an EAGLE-1/2 head computes EAGLE's semantics: fc(embed ++ normed hidden), layer 0 without input norm, LM head without norm", async () => {
    const dir = await fixture(FX);
    const p = writePublished(join(root, "e2"), dir, 3);
    const info = inspectEagleHead(p.dir);
    expect(info.featureSource).toBe("hidden_states");
    expect(info.published).toBe(true);
    expect(isEagleHeadDir(p.dir)).toBe(true);
    expect(isEagleHeadDir(dir)).toBe(false); // a model directory is not a head
    const head = await loadEagleHead(p.dir, dir);
    const { embed, lmHead, cfg } = readEagleTargetParts(dir);
    const H = cfg.hiddenSize;
    const V = cfg.vocabSize;
    const I = cfg.intermediateSize;
    const rng = new SeededRandom(11);
    const feat = Float32Array.from({ length: H }, () => rng.normal());
    const token = 123;
    const out = await head.run(head.newCache(), [token], [0], feat);

    // Float64 reference for one row at position 0 (attention over itself only: context = v).
    const x0 = new Float64Array(2 * H);
    for (let j = 0; j < H; j++) {
      x0[j] = embed[token * H + j]!; // the target's embedding, not the head's copy
      x0[H + j] = feat[j]!;
    }
    const x = mv(p.t["fc.weight"]!, x0, H, 2 * H).map((v, j) => v + p.t["fc.bias"]![j]!);
    const v = mv(p.t["layers.0.self_attn.v_proj.weight"]!, x, H, H); // no input_layernorm on layer 0
    const x2 = mv(p.t["layers.0.self_attn.o_proj.weight"]!, v, H, H).map((o, j) => o + x[j]!);
    const rms = Math.sqrt(x2.reduce((a, b) => a + b * b, 0) / H + cfg.rmsNormEps);
    const n2 = x2.map((a, j) => (a / rms) * p.t["layers.0.post_attention_layernorm.weight"]![j]!);
    const g = mv(p.t["layers.0.mlp.gate_proj.weight"]!, n2, I, H);
    const u = mv(p.t["layers.0.mlp.up_proj.weight"]!, n2, I, H);
    const act = g.map((a, i) => (a / (1 + Math.exp(-a))) * u[i]!);
    const x3 = mv(p.t["layers.0.mlp.down_proj.weight"]!, act, H, I).map((d, j) => d + x2[j]!);
    const logits = mv(lmHead, x3, V, H); // no final norm
    let maxF = 0;
    let maxL = 0;
    for (let j = 0; j < H; j++) maxF = Math.max(maxF, Math.abs(out.features[j]! - x3[j]!));
    for (let k = 0; k < V; k++) maxL = Math.max(maxL, Math.abs(out.logits[k]! - logits[k]!));
    expect(maxF).toBeLessThan(1e-3);
    expect(maxL).toBeLessThan(1e-3);
    await head.dispose();
  });

  it("decodes through SpecEngine (explicit and auto) with greedy output identical to plain decoding", async () => {
    const dir = await fixture(FX);
    const p = writePublished(join(root, "e2-engine"), dir, 5);
    const engine = new SpecEngine();
    try {
      for (const promptIds of [[1, 5, 9], [4], [7, 7, 7, 30, 2, 19, 250, 8]]) {
        const base = await engine.generate({ model: dir, promptIds, maxNewTokens: 24, method: "baseline" });
        for (const methodOptions of [{}, { treeTotal: 6, treeDepth: 3, treeTopK: 2 }]) {
          const res = await engine.generate({ model: dir, promptIds, maxNewTokens: 24, method: "eagle", heads: p.dir, methodOptions });
          expect(res.tokens).toEqual(base.tokens);
          expect(res.stats.extra.eagleHeadRuns).toBeGreaterThan(0);
        }
      }
      const auto = await engine.generate({ model: dir, promptIds: [1, 5, 9], maxNewTokens: 10, method: "auto", heads: p.dir });
      expect(auto.method).toBe("eagle");
    } finally {
      await engine.dispose();
    }
  });

  it("refuses EAGLE-3 heads and unmappable EAGLE-1/2 variants, naming what is unsupported", async () => {
    const dir = await fixture(FX);
    const H = FX.hidden;
    const eagle3 = writePublished(join(root, "e3"), dir, 7, (cfg, ts) => {
      for (const t of ts) if (t.name.startsWith("layers.0.")) t.name = t.name.replace("layers.0.", "midlayer.");
      const fc = ts.find((t) => t.name === "fc.weight")!;
      fc.dims = [H, 3 * H];
      fc.data = new Float32Array(3 * H * H);
      ts.push({ name: "d2t", dims: [FX.vocab], data: new Float32Array(FX.vocab) }, { name: "lm_head.weight", dims: [FX.vocab, H], data: new Float32Array(FX.vocab * H) });
      cfg.draft_vocab_size = FX.vocab;
    });
    expect(() => inspectEagleHead(eagle3.dir)).toThrow(/EAGLE-3 head.*midlayer.*three target layers.*d2t/);
    // Still recognised as an EAGLE head, so `auto` picks eagle and reports why it cannot run it.
    expect(isEagleHeadDir(eagle3.dir)).toBe(true);

    const gqa = writePublished(join(root, "gqa"), dir, 8, (cfg) => {
      cfg.num_key_value_heads = 2;
    });
    expect(() => inspectEagleHead(gqa.dir)).toThrow(/grouped-query.*num_key_value_heads 2/);

    const qkvBias = writePublished(join(root, "bias"), dir, 9, (_cfg, ts) => {
      ts.push({ name: "layers.0.self_attn.q_proj.bias", dims: [H], data: new Float32Array(H) });
    });
    expect(() => inspectEagleHead(qkvBias.dir)).toThrow(/q\/k\/v biases/);

    const twoLayers = writePublished(join(root, "two"), dir, 10, (cfg) => {
      cfg.num_hidden_layers = 2;
    });
    expect(() => inspectEagleHead(twoLayers.dir)).toThrow(/2 decoder layers/);

    const pickle = join(root, "pickle");
    mkdirSync(pickle, { recursive: true });
    writeFileSync(join(pickle, "config.json"), "{}");
    writeFileSync(join(pickle, "pytorch_model.bin"), "not read");
    expect(() => inspectEagleHead(pickle)).toThrow(/pytorch_model\.bin.*convert the state dict to safetensors/);

    // Through the engine: the method's error carries the reason.
    const engine = new SpecEngine();
    try {
      await expect(engine.generate({ model: dir, promptIds: [1, 2], maxNewTokens: 4, method: "eagle", heads: eagle3.dir })).rejects.toThrow(/EAGLE-3/);
    } finally {
      await engine.dispose();
    }
  });
});
