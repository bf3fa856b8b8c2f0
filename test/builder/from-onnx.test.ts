/**
 * `build --from-onnx`: exports written in the formats other tools produce (test/helpers/onnx-exports.ts:
 * onnxruntime-genai style and Optimum style) are rebuilt from their own weights, and the rebuilt
 * model's greedy tokens equal the ORIGINAL export's greedy tokens, the original run token by token
 * through onnxruntime as the reference. Then every method runs on a rebuilt export with chain/tree
 * verification (stats.verification says which), while the original MHA export can only verify token
 * by token (and model_info / auto say to rebuild it).
 *
 * Exactness rule. Float32 exports (plain MatMul or MatMulNBits with float32 activations, block
 * accuracy level 0) must match token for token. A float16 export computes every op in float16,
 * while the rebuild computes in float32 (KV cache and logits float16): logits then differ by float16
 * rounding (~1e-2 on these fixtures), so the fp16 arms accept "equal, or equal up to a position
 * whose reference top-1/top-2 logit gap is below 0.05" (the near-tie rule of the quantized method
 * tests, test/decoding/quantized-methods.test.ts), at most once per arm. The same rule covers the
 * dynamic-int8 exports: their activations are rounded to uint8 per forward, and the rebuild's
 * RMSNorm (x / sqrt) and the export's (x * 1/sqrt) differ in the last bit, which can move a value
 * across an int8 rounding edge (weights, zero points and scales are the export's own). The fixture weights
 * (src/builder/fixture.ts) give a median top-2 gap of ~0.8 logit, so such a tie is rare.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SpecEngine } from "../../src/api.js";
import { buildFromOnnx } from "../../src/builder/from-onnx.js";
import { GraphBuilder } from "../../src/builder/onnx-graph.js";
import { readOnnxMetadataProps } from "../../src/engine/onnx-file.js";
import { readOnnxModel } from "../../src/builder/onnx-reader.js";
import { describeModel } from "../../src/decoding/capabilities.js";
import type { MethodName, MethodOptions } from "../../src/decoding/methods.js";
import { CausalLM } from "../../src/engine/causal-lm.js";
import { fixture, tempDir } from "../helpers/fixtures.js";
import { writeGenaiExport, writeOptimumExport, type GenaiExportOptions } from "../../src/builder/export-fixtures.js";
import { writeRandomEagleHead } from "../eagle/helpers.js";
import { writeRandomHeads } from "../medusa/helpers.js";

const BASE = { layers: 3, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 7 } as const;
const MHA = { ...BASE, kvHeads: 4, seed: 8 } as const;
const PROMPTS = [
  [1, 17, 93, 200, 5, 64],
  [1, 40, 41, 42, 43],
];
const N = 16;
const NEAR_TIE = 0.05;

const argmax = (row: ArrayLike<number>) => {
  let best = 0;
  for (let j = 1; j < row.length; j++) if (row[j]! > row[best]!) best = j;
  return best;
};

/** The reference: the export itself, one token per forward, greedy; with each step's top-2 gap. */
async function greedyOneByOne(dir: string, prompt: number[], n: number): Promise<{ tokens: number[]; gaps: number[] }> {
  const lm = await CausalLM.load(dir);
  try {
    const cache = lm.newCache();
    let out = await lm.forward(cache, [prompt[0]!], { logits: "last" });
    for (const t of prompt.slice(1)) out = await lm.forward(cache, [t], { logits: "last" });
    const tokens: number[] = [];
    const gaps: number[] = [];
    for (let i = 0; i < n; i++) {
      const row = out.logits.subarray(out.logits.length - out.vocab);
      const sorted = Array.from(row).sort((a, b) => b - a);
      gaps.push(sorted[0]! - sorted[1]!);
      tokens.push(argmax(row));
      out = await lm.forward(cache, [tokens[i]!], { logits: "last" });
    }
    return { tokens, gaps };
  } finally {
    await lm.dispose();
  }
}

/** Files of a directory with sizes and mtimes (to show the export is untouched). */
function listing(dir: string): string[] {
  return readdirSync(dir, { recursive: true })
    .map(String)
    .sort()
    .map((f) => {
      const s = statSync(join(dir, f));
      return `${f}:${s.size}:${s.mtimeMs}`;
    });
}

interface Arm {
  label: string;
  mha?: boolean;
  write: (src: string, out: string) => string;
  /** float16 compute, or int8 activations (DynamicQuantizeLinear) in the original: the near-tie rule applies. */
  fp16?: boolean;
  family: RegExp;
}

const genai = (o: GenaiExportOptions) => (src: string, out: string) => writeGenaiExport(src, out, o);
const ARMS: Arm[] = [
  { label: "genai GQA + RotaryEmbedding, float32", write: genai({}), family: /GroupQueryAttention \+ RotaryEmbedding, SimplifiedLayerNormalization.*MatMul \(float32\)/ },
  { label: "genai GQA + RotaryEmbedding, float16", write: genai({ dtype: "float16", withConfigJson: true }), fp16: true, family: /MatMul \(float16\), float16 KV/ },
  {
    label: "genai GQA rotary-in-attention, MatMulNBits int4, fused qkv + gate_up, int4 lm_head, external data",
    write: genai({ attention: "gqa-rotary", weights: "int4", fuseQkv: true, fuseGateUp: true, quantizeLmHead: true, externalData: true }),
    family: /rotary inside GQA.*MatMulNBits 4-bit block 32/,
  },
  { label: "genai GQA, MatMulNBits int4 with zero points, float16", write: genai({ weights: "int4-zp", dtype: "float16", blockSize: 16 }), fp16: true, family: /MatMulNBits 4-bit block 16/ },
  { label: "genai MultiHeadAttention + RotaryEmbedding, float32", mha: true, write: genai({ attention: "mha" }), family: /MultiHeadAttention \+ RotaryEmbedding/ },
  { label: "Optimum plain ops, float32", write: (s, o) => writeOptimumExport(s, o), family: /plain ops.*rotary from inv_freq, RMSNorm as plain ops/ },
  { label: "Optimum plain ops, float32, external data", write: (s, o) => writeOptimumExport(s, o, { externalData: true }), family: /plain ops/ },
  { label: "onnx-community dynamic int8 (MatMulInteger, int8 weights)", write: (s, o) => writeOptimumExport(s, o, { int8: "int8" }), fp16: true, family: /MatMulInteger int8/ },
  { label: "onnx-community dynamic int8 (MatMulInteger, uint8 weights)", write: (s, o) => writeOptimumExport(s, o, { int8: "uint8" }), fp16: true, family: /MatMulInteger uint8/ },
];

describe("build --from-onnx: rebuilt exports decode exactly like the originals", () => {
  const root = tempDir("from-onnx");
  let src: string;
  let srcMha: string;
  beforeAll(async () => {
    src = await fixture(BASE);
    srcMha = await fixture(MHA);
  });

  ARMS.forEach((arm, a) => {
    it(arm.label, async () => {
      const exp = arm.write(arm.mha ? srcMha : src, join(root, `export-${a}`));
      const before = listing(exp);
      const refs = [];
      for (const p of PROMPTS) refs.push(await greedyOneByOne(exp, p, N));

      const res = await buildFromOnnx(exp, { out: join(root, `rebuilt-${a}`), earlyExit: [1] });
      expect(res.family).toMatch(arm.family);
      expect(listing(exp)).toEqual(before); // the original is untouched
      const meta = readOnnxMetadataProps(join(res.dir, "onnx", "model.onnx"));
      expect(meta["spec_decode.builder"]).toBeDefined();
      expect(meta["spec_decode.tree_mask"]).toBe("true");
      expect(meta["spec_decode.from_onnx"]).toBe("model.onnx");
      expect(existsSync(join(res.dir, "onnx", "early_exit_1.onnx"))).toBe(true);
      expect(existsSync(join(res.dir, "tokenizer.json"))).toBe(true);

      let nearTies = 0;
      for (let i = 0; i < PROMPTS.length; i++) {
        const got = await greedyOneByOne(res.dir, PROMPTS[i]!, N);
        const ref = refs[i]!;
        const at = ref.tokens.findIndex((t, j) => t !== got.tokens[j]);
        if (at >= 0 && arm.fp16) {
          expect(ref.gaps[at], `diverged at ${at} with reference top-2 gap ${ref.gaps[at]}`).toBeLessThan(NEAR_TIE);
          nearTies++;
        } else expect(got.tokens).toEqual(ref.tokens);
      }
      expect(nearTies).toBeLessThanOrEqual(1);
    });
  });

  it("keeps quantized weights as they are: MatMulNBits blocks, MatMulInteger codes (no requantization)", async () => {
    const exp = writeGenaiExport(src, join(root, "blocks"), { weights: "int4-zp", blockSize: 16 });
    const res = await buildFromOnnx(exp, { out: join(root, "blocks-rebuilt") });
    const orig = readOnnxModel(join(exp, "model.onnx"));
    const ours = readOnnxModel(join(res.dir, "onnx", "model.onnx"));
    const bytes = (m: typeof orig, name: string) => Buffer.from(m.tensors.get(name)!.bytes());
    // o_proj and down_proj are single weights: same codes and zero points, scales exactly the same values.
    for (const [o, n] of [
      ["model.layers.1.attn.o_proj.MatMul.weight_Q4", "model.layers.1.self_attn.o_proj"],
      ["model.layers.2.mlp.down_proj.MatMul.weight_Q4", "model.layers.2.mlp.down_proj"],
    ] as const) {
      expect(bytes(ours, `${n}.qweight`).equals(bytes(orig, o))).toBe(true);
      expect(bytes(ours, `${n}.zero_points`).equals(bytes(orig, `${o}.zero_points`))).toBe(true);
      expect(bytes(ours, `${n}.scales`).equals(bytes(orig, `${o}.scales`))).toBe(true);
    }
    // q/k/v are stacked row blocks: the rebuilt codes are the three originals concatenated.
    const qkv = bytes(ours, "model.layers.0.self_attn.qkv_proj.qweight");
    const parts = ["q", "k", "v"].map((r) => bytes(orig, `model.layers.0.attn.${r}_proj.MatMul.weight_Q4`));
    expect(qkv.equals(Buffer.concat(parts))).toBe(true);

    // dynamic int8: MatMulInteger codes kept, the per-tensor zero point / scale written per column
    const exp8 = writeOptimumExport(src, join(root, "blocks-int8"), { int8: "int8" });
    const res8 = await buildFromOnnx(exp8, { out: join(root, "blocks-int8-rebuilt") });
    const orig8 = readOnnxModel(join(exp8, "model.onnx"));
    const ours8 = readOnnxModel(join(res8.dir, "onnx", "model.onnx"));
    const mmi = orig8.nodes.find((n) => n.opType === "MatMulInteger" && n.outputs[0] === "/model/layers.1/self_attn/o_proj/MatMul_output_0_quantized")!;
    expect(bytes(ours8, "model.layers.1.self_attn.o_proj.weight_quantized").equals(bytes(orig8, mmi.inputs[1]!))).toBe(true);
    const scale = new Float32Array(Uint8Array.from(bytes(orig8, mmi.inputs[1]!.replace(/_quantized$/, "_scale"))).buffer)[0]!;
    const ourScales = new Float32Array(Uint8Array.from(bytes(ours8, "model.layers.1.self_attn.o_proj.weight_scale")).buffer);
    expect(ourScales.every((x) => x === scale)).toBe(true);
  });
});

describe("every method on a rebuilt export", () => {
  const engine = new SpecEngine();
  const root = tempDir("from-onnx-methods");
  let original: string;
  let rebuilt: string;
  let draft: string;
  let heads: string;
  let eagle: string;
  const modes = new Set<string>();

  beforeAll(async () => {
    const src = await fixture(MHA);
    original = writeGenaiExport(src, join(root, "export"), { attention: "mha" });
    rebuilt = (await buildFromOnnx(original, { out: join(root, "rebuilt"), earlyExit: [1] })).dir;
    // A draft from a shallower checkpoint of the same seed (shares layer 0, embedding and head), also an export rebuilt.
    const draftSrc = await fixture({ ...MHA, layers: 1 });
    draft = (await buildFromOnnx(writeOptimumExport(draftSrc, join(root, "draft-export")), { out: join(root, "draft") })).dir;
    heads = writeRandomHeads(join(root, "heads"), { heads: 3, layers: 1, hidden: MHA.hidden, vocab: MHA.vocab, seed: 3 });
    eagle = writeRandomEagleHead(join(root, "eagle"), rebuilt, 5);
  });
  afterAll(() => engine.dispose());

  it("the original only verifies token by token; model_info and auto say to rebuild it, and why", async () => {
    const m = await engine.store.load(original);
    expect(await m.lm.probeMultiTokenWithPast()).toBe(false);
    const d = describeModel(m.lm);
    expect(d.rebuild).toMatch(/one token per forward/);
    expect(d.rebuild).toContain(`spec-decode build --from-onnx ${original}`);
    const auto = await engine.generate({ model: original, promptIds: PROMPTS[0]!, maxNewTokens: 4, method: "auto" });
    expect(auto.method).toBe("baseline");
    expect(auto.methodReason).toMatch(/--from-onnx/);
    const pl = await engine.generate({ model: original, promptIds: [...PROMPTS[1]!, ...PROMPTS[1]!], maxNewTokens: 8, method: "draft", draft });
    expect(pl.stats.verification).toBe("token-by-token");

    const r = await engine.store.load(rebuilt);
    expect(describeModel(r.lm).rebuild).toBeNull();
    const autoR = await engine.generate({ model: rebuilt, promptIds: PROMPTS[0]!, maxNewTokens: 4, method: "auto" });
    expect(autoR.method).not.toBe("baseline");
  });

  const arms: { method: MethodName; options?: MethodOptions; verification: string[]; extra?: "draft" | "heads" | "eagle" }[] = [
    { method: "draft", options: { k: 3 }, verification: ["chain"], extra: "draft" },
    { method: "early-exit", options: { exitLayer: 1, k: 2 }, verification: ["chain"] },
    { method: "prompt-lookup", verification: ["chain"] },
    { method: "lookahead", verification: ["tree", "chain"] },
    { method: "medusa", verification: ["tree", "chain"], extra: "heads" },
    { method: "eagle", verification: ["tree", "chain"], extra: "eagle" },
  ];
  for (const arm of arms) {
    it(`${arm.method} returns the original export's greedy tokens`, async () => {
      const seen = new Set<string>();
      for (const p of PROMPTS) {
        const promptIds = [...p, ...p, ...p]; // repeats give the pools something to find
        const ref = await greedyOneByOne(original, promptIds, N);
        const res = await engine.generate({
          model: rebuilt,
          promptIds,
          maxNewTokens: N,
          method: arm.method,
          methodOptions: arm.options,
          draft: arm.extra === "draft" ? draft : undefined,
          heads: arm.extra === "heads" ? heads : arm.extra === "eagle" ? eagle : undefined,
        });
        expect(res.tokens).toEqual(ref.tokens);
        seen.add(res.stats.verification);
      }
      for (const v of seen) expect(arm.verification).toContain(v);
      for (const v of seen) modes.add(v);
    });
  }

  it("every method on a rebuilt int4 export (MatMulNBits kept, int4 lm_head) returns the original's greedy tokens", async () => {
    const src = await fixture(MHA);
    const orig4 = writeGenaiExport(src, join(root, "export-q4"), { attention: "gqa-rotary", weights: "int4", fuseQkv: true, quantizeLmHead: true });
    const q4 = (await buildFromOnnx(orig4, { out: join(root, "rebuilt-q4"), earlyExit: [1] })).dir;
    const eagle4 = writeRandomEagleHead(join(root, "eagle-q4"), q4, 6); // its target parts come from the rebuilt graph (int4 lm_head dequantized)
    const promptIds = [...PROMPTS[0]!, ...PROMPTS[0]!];
    const ref = await greedyOneByOne(orig4, promptIds, N);
    for (const arm of arms) {
      const res = await engine.generate({
        model: q4,
        promptIds,
        maxNewTokens: N,
        method: arm.method,
        methodOptions: arm.options,
        draft: arm.extra === "draft" ? draft : undefined,
        heads: arm.extra === "heads" ? heads : arm.extra === "eagle" ? eagle4 : undefined,
      });
      expect(res.tokens, arm.method).toEqual(ref.tokens);
      expect(arm.verification, arm.method).toContain(res.stats.verification);
    }
  });

  it("the runs used both chain and tree verification, never token by token", () => {
    expect([...modes].sort()).toEqual(["chain", "tree"]);
  });
});

describe("build --from-onnx errors", () => {
  const root = tempDir("from-onnx-errors");

  it("names the op it does not understand and leaves nothing behind", async () => {
    const dir = join(root, "layernorm");
    const src = await fixture(BASE);
    writeOptimumExport(src, dir); // config + tokenizer; the graph is replaced below
    const g = new GraphBuilder({ name: "gpt2ish" });
    const ids = g.input("input_ids", "int64", ["b", "s"]);
    g.input("past_key_values.0.key", "float32", ["b", 2, "p", 16]);
    g.initializer("wte", "float32", [320, 64], new Float32Array(320 * 64));
    g.initializer("ln.w", "float32", [64], new Float32Array(64));
    g.initializer("ln.b", "float32", [64], new Float32Array(64));
    const x = g.op("Gather", ["wte", ids], { axis: 0 });
    g.output("logits", "float32", ["b", "s", 64], g.op("LayerNormalization", [x, "ln.w", "ln.b"], { axis: -1 }));
    g.save(join(dir, "model.onnx"));
    const out = join(root, "out-layernorm");
    await expect(buildFromOnnx(dir, { out })).rejects.toThrow(/LayerNormalization.*not RMSNorm/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(root).filter((f) => f.includes(".tmp-"))).toEqual([]);
  });

  it("a failure while writing removes the staging folder", async () => {
    const exp = writeGenaiExport(await fixture(BASE), join(root, "genai"), {});
    const out = join(root, "out-fail");
    const onProgress = (m: string) => {
      if (m.startsWith("writing early_exit_1")) throw new Error("disk full (simulated)");
    };
    await expect(buildFromOnnx(exp, { out, earlyExit: [1], onProgress })).rejects.toThrow(/simulated/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(root).filter((f) => f.includes(".tmp-"))).toEqual([]);
  });

  it("refuses a graph our builder wrote, and an output inside the export", async () => {
    const ours = await fixture(BASE);
    await expect(buildFromOnnx(ours, { out: join(root, "x") })).rejects.toThrow(/already has our interface/);
    const exp = writeGenaiExport(await fixture(BASE), join(root, "genai2"), {});
    await expect(buildFromOnnx(exp, { out: join(exp, "rebuilt") })).rejects.toThrow(/outside the export directory/);
  });
});
