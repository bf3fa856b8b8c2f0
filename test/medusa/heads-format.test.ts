/** Medusa heads: the format reader, our writer, the ONNX graph against float64, trees, typical acceptance. */
import { existsSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import {
  buildMedusaHeadsOnnx,
  ensureMedusaHeadsOnnx,
  inspectMedusaHeads,
  medusaHeadsReference,
  readMedusaHeads,
  writeMedusaHeads,
} from "../../src/builder/medusa-heads.js";
import { SeededRandom } from "../../src/builder/fixture.js";
import { flattenTree, resolveTree, sparseTree, priorRankAccuracy, DEFAULT_TREE_NODES } from "../../src/decoding/medusa-tree.js";
import { medusaSettings, topK } from "../../src/decoding/medusa.js";
import { typicalStep } from "../../src/decoding/verify.js";
import { BuildError, InvalidOptionError } from "../../src/errors.js";
import { Rng } from "../../src/sampling/index.js";
import { tempDir } from "../helpers/fixtures.js";
import { randomHeads, writeMedusaProjectHeads } from "./helpers.js";

const root = tempDir("medusa-format");
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("Medusa heads format", () => {
  it("reads heads saved in the Medusa project's naming (with or without a prefix, F16 too)", () => {
    const heads = randomHeads({ heads: 3, layers: 2, hidden: 8, vocab: 11, seed: 1 });
    for (const [name, opts] of [
      ["plain", {}],
      ["prefixed", { prefix: "medusa_head." }],
      ["f16-noconfig", { dtype: "F16" as const, config: false }],
    ] as const) {
      const dir = join(root, name);
      writeMedusaProjectHeads(dir, heads, opts);
      const w = readMedusaHeads(dir);
      expect([w.numHeads, w.numLayers, w.hiddenSize, w.vocabSize]).toEqual([3, 2, 8, 11]);
      const tol = "dtype" in opts ? 2e-3 : 0;
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 2; j++) {
          const a = w.heads[i]!.blocks[j]!.weight;
          const b = heads[i]!.blocks[j]!.weight;
          for (let k = 0; k < a.length; k++) expect(Math.abs(a[k]! - b[k]!)).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(b[k]!)));
        }
        expect(w.heads[i]!.lmHead.length).toBe(11 * 8);
      }
      if (name === "plain") expect(w.baseModel).toBe("lmsys/vicuna-7b-v1.3");
      // The file itself works as well as its directory.
      expect(inspectMedusaHeads(join(dir, "medusa_lm_head.safetensors")).numHeads).toBe(3);
    }
  });

  it("our writer round-trips through the same reader, with the tree and accuracies in config.json", () => {
    const heads = randomHeads({ heads: 2, layers: 1, hidden: 6, vocab: 9, seed: 2 });
    const dir = join(root, "ours");
    const choices = [[0], [1], [0, 0]];
    writeMedusaHeads(dir, heads, { baseModel: "/m", choices, rankAccuracy: [[0.5, 0.2], [0.3, 0.1]] });
    const w = readMedusaHeads(dir);
    expect(w.choices).toEqual(choices);
    expect(w.rankAccuracy).toEqual([[0.5, 0.2], [0.3, 0.1]]);
    expect(Array.from(w.heads[1]!.blocks[0]!.bias)).toEqual(Array.from(heads[1]!.blocks[0]!.bias));
    expect(Array.from(w.heads[0]!.lmHead)).toEqual(Array.from(heads[0]!.lmHead));
  });

  it("a .pt file gets an error that says how to convert it", () => {
    const dir = join(root, "pt");
    writeMedusaProjectHeads(dir, randomHeads({ heads: 1, layers: 1, hidden: 4, vocab: 5, seed: 3 }));
    rmSync(join(dir, "medusa_lm_head.safetensors"));
    writeFileSync(join(dir, "medusa_lm_head.pt"), "not a pickle");
    expect(() => readMedusaHeads(dir)).toThrow(BuildError);
    expect(() => readMedusaHeads(dir)).toThrow(/save_file.*medusa_lm_head\.safetensors/);
    expect(() => readMedusaHeads(join(dir, "medusa_lm_head.pt"))).toThrow(/never unpickles/);
    expect(() => readMedusaHeads(join(root, "nowhere"))).toThrow(/train-medusa/);
  });

  it("inconsistent files are rejected with the numbers", () => {
    const dir = join(root, "bad");
    writeMedusaProjectHeads(dir, randomHeads({ heads: 2, layers: 1, hidden: 4, vocab: 5, seed: 4 }));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ medusa_num_heads: 5, medusa_num_layers: 1 }));
    expect(() => readMedusaHeads(dir)).toThrow(/medusa_num_heads = 5 but .* holds 2 heads/);
    writeFileSync(join(dir, "config.json"), JSON.stringify({ medusa_num_heads: 2, medusa_num_layers: 1, hidden_size: 7 }));
    expect(() => readMedusaHeads(dir)).toThrow(/hidden_size 7 disagrees .*hidden 4/);
  });
});

describe("Medusa heads ONNX graph", () => {
  it.each([
    ["own LM heads, two of them shared", false],
    ["one LM head for all (one Gemm)", true],
  ])("medusa_logits equal a float64 computation of the heads (2 blocks, %s)", async (_name, allShared) => {
    const H = 16;
    const V = 23;
    const heads = randomHeads({ heads: 3, layers: 2, hidden: H, vocab: V, seed: 5 });
    heads[2]!.lmHead = heads[0]!.lmHead; // shared LM head (stored once)
    if (allShared) heads[1]!.lmHead = heads[0]!.lmHead;
    const file = join(root, `graph-${allShared}.onnx`);
    buildMedusaHeadsOnnx({ heads, hiddenSize: H, vocabSize: V }, file);
    const rng = new SeededRandom(9);
    const rows = 5;
    const hidden = Float32Array.from({ length: rows * H }, () => rng.normal());
    const session = await ort.InferenceSession.create(file);
    const out = await session.run({ hidden_states: new ort.Tensor("float32", hidden, [1, rows, H]) });
    const got = out.medusa_logits!;
    expect(got.dims).toEqual([3, 1, rows, V]);
    const ref = medusaHeadsReference({ heads, hiddenSize: H, vocabSize: V }, hidden, rows);
    const data = got.data as Float32Array;
    let maxErr = 0;
    for (let i = 0; i < ref.length; i++) maxErr = Math.max(maxErr, Math.abs(data[i]! - ref[i]!));
    expect(maxErr).toBeLessThan(1e-4);
    await session.release();
  });

  it("builds medusa_heads.onnx beside the heads once, and again when the heads change", () => {
    const dir = join(root, "ensure");
    writeMedusaHeads(dir, randomHeads({ heads: 2, layers: 1, hidden: 4, vocab: 7, seed: 6 }));
    const a = ensureMedusaHeadsOnnx(dir);
    expect(a.built).toBe(true);
    expect(a.onnxFile).toBe(join(dir, "medusa_heads.onnx"));
    expect(ensureMedusaHeadsOnnx(dir).built).toBe(false);
    const st = join(dir, "medusa_lm_head.safetensors");
    const t = statSync(st).mtime;
    utimesSync(st, t, new Date(t.getTime() + 5000));
    expect(ensureMedusaHeadsOnnx(dir).built).toBe(true);
    expect(existsSync(a.onnxFile)).toBe(true);
  });
});

describe("Medusa trees", () => {
  it("sparse trees are prefix-closed, sized, and prefer top ranks of early heads", () => {
    const acc = priorRankAccuracy(4);
    for (const n of [1, 5, DEFAULT_TREE_NODES, 64]) {
      const t = sparseTree(n, acc);
      expect(t.length).toBe(n);
      const keys = new Set(t.map((p) => p.join(",")));
      for (const p of t) if (p.length > 1) expect(keys.has(p.slice(0, -1).join(","))).toBe(true);
      expect(t[0]).toEqual([0]);
    }
    expect(sparseTree(3, acc)).toEqual([[0], [1], [0, 0]]);
  });

  it("resolves presets and validates explicit trees", () => {
    const heads = { numHeads: 3 };
    expect(resolveTree("chain", heads).paths).toEqual([[0], [0, 0], [0, 0, 0]]);
    expect(resolveTree("sparse-10", heads).paths.length).toBe(10);
    expect(resolveTree(undefined, heads).paths.length).toBe(DEFAULT_TREE_NODES);
    expect(resolveTree(undefined, { numHeads: 3, choices: [[0], [0, 0]] }).paths).toEqual([[0], [0, 0]]);
    const t = flattenTree([[1], [0], [0, 2], [0, 0], [0, 0, 0]], 3);
    expect(t.paths).toEqual([[0], [1], [0, 0], [0, 2], [0, 0, 0]]);
    expect(t.parents).toEqual([-1, -1, 0, 0, 2]);
    expect(t.topk).toEqual([2, 3, 1]);
    expect(() => flattenTree([[0, 1]], 3)).toThrow(/needs its prefix \[0\]/);
    expect(() => flattenTree([[0], [0, 0], [0, 0, 0], [0, 0, 0, 0]], 3)).toThrow(/only 3 heads/);
    expect(() => resolveTree("bushy", heads)).toThrow(InvalidOptionError);
    expect(() => resolveTree("[[0],[0,", heads)).toThrow(/JSON/);
  });

  it("validates acceptance options", () => {
    const cfg = { numHeads: 2, numLayers: 1, hiddenSize: 4, vocabSize: 8 };
    expect(medusaSettings(cfg, {}).acceptance).toBeUndefined();
    expect(medusaSettings(cfg, { acceptance: "typical" }).acceptance).toEqual({ mode: "typical", threshold: 0.09, alpha: 0.3 });
    expect(() => medusaSettings(cfg, { acceptance: "typical", posteriorAlpha: 2 })).toThrow(/posteriorAlpha/);
    expect(() => medusaSettings(cfg, { posteriorThreshold: 0.1 })).toThrow(/only apply with acceptance.*"typical"/);
  });

  it("topK returns the best ids, best first, within the limit", () => {
    const row = Float32Array.from([0.1, 5, -1, 5, 3, 9, NaN, 2]);
    expect(topK(row, 3)).toEqual([5, 1, 3]);
    expect(topK(row, 3, 5)).toEqual([1, 3, 4]);
    expect(topK(row, 20).length).toBe(7);
  });
});

describe("typical acceptance (verify.ts)", () => {
  it("follows the most probable child above min(threshold, alpha * exp(-H)), else samples the bonus above the bar", () => {
    const p = Float32Array.from([0.5, 0.3, 0.15, 0.05]);
    // H ~= 1.14 nats, alpha * exp(-H) ~= 0.096 with alpha 0.3; min with 0.09 -> bar 0.09.
    const rng = new Rng(1);
    expect(typicalStep(p, [0, 1, 2], [3, 2, 1], 0.09, 0.3, rng)).toEqual({ next: 2 }); // token 1 (0.3) is the most probable
    expect(typicalStep(p, [0, 1], [3, 2], 0.09, 0.3, rng)).toEqual({ next: 1 }); // token 3 (0.05) is below the bar
    expect(typicalStep(p, [0], [3], 0.09, 0.3, rng).bonus).toBeDefined();
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) seen.add(typicalStep(p, [0], [3], 0.09, 0.3, rng).bonus!);
    expect([...seen].sort()).toEqual([0, 1, 2]); // never the token below the bar
  });
});
