/**
 * The quantized rows of the bench on a tiny twin built with int4 + int8 variants: plain and
 * speculative arms per variant (speculative ones checked against their own model's plain arm;
 * Medusa and EAGLE too when the run has heads),
 * the roofline rows (weight bytes per token from the graph, a measured bandwidth), agreement with
 * float32, and the Markdown section. Speed is printed, never asserted.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SpecEngine } from "../../src/api.js";
import { readDecoderConfig } from "../../src/builder/config.js";
import { eagleConfigFor, eagleWeightsFromTargetLayer, writeEagleHead } from "../../src/builder/eagle-head.js";
import { runBench } from "../../src/bench/bench.js";
import { measureReadBandwidth, quantArms } from "../../src/bench/quant.js";
import { benchMarkdown } from "../../src/bench/report.js";
import { buildTwin, type TwinResult } from "../../src/bench/twin.js";
import { builtinWorkload } from "../../src/bench/workload.js";
import { tempDir } from "../helpers/fixtures.js";
import { writeRandomHeads } from "../medusa/helpers.js";
import { TINY_TWIN } from "./helpers.js";

describe("bench with quantized builds", () => {
  const root = tempDir("quant-bench");
  const engine = new SpecEngine({ threads: 1 });
  let twin: TwinResult;
  beforeAll(async () => {
    // safetensors: the EAGLE head below starts from the target's layer 0 and reads its embedding / LM head.
    twin = await buildTwin({ ...TINY_TWIN, safetensors: true, out: join(root, "twin"), divergence: 0.02, quantize: [{ kind: "int4", lmHead: true }, { kind: "int8", lmHead: true }] });
  });
  afterAll(async () => {
    await engine.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  it("measures int8/int4 plain, draft and early-exit rows beside the float ones", async () => {
    expect(twin.info.quantized?.map((q) => q.targetFile)).toEqual(["model_q4.onnx", "model_int8.onnx"]);
    const arms = quantArms({ model: twin.target, draft: twin.draft, methods: ["draft", "early-exit"] });
    expect(arms.map((a) => a.label)).toEqual([
      "int8 plain",
      "int8 draft (int8 draft)",
      "int8 early-exit",
      "int4 plain",
      "int4 draft (int4 draft)",
      "int4 early-exit",
    ]);
    const prompts = builtinWorkload().slice(0, 2);
    const report = await runBench({
      engine,
      model: twin.target,
      draft: twin.draft,
      methods: ["draft", "early-exit"],
      prompts,
      workloadSource: "builtin (2)",
      maxNewTokens: 16,
      repeats: 1,
    });
    const byLabel = Object.fromEntries(report.result.arms.map((a) => [a.label, a]));
    for (const v of ["int8", "int4"]) {
      const plain = byLabel[`${v} plain`]!;
      expect(plain.greedyIdentical).toBeNull(); // a different model from float32: nothing to equal
      for (const m of ["draft", "early-exit"]) {
        const a = byLabel[m === "draft" ? `${v} draft (${v} draft)` : `${v} early-exit`]!;
        expect(a.reference).toBe(`${v} plain`);
        expect(a.newTokens).toBeGreaterThan(0);
        // int8 is row-consistent: exact. int4 at accuracy level 4 may take the other side of a
        // near tie (test/decoding/quantized-methods.test.ts), so it is reported, not asserted here.
        if (v === "int8") expect(a.greedyIdentical).toBe(true);
      }
    }
    const q = report.quant!;
    expect(q.bandwidthGBs).toBeGreaterThan(0);
    expect(q.rows.map((r) => r.label)).toEqual(["float32 plain", "int8 plain", "int4 plain"]);
    const [f32, i8, i4] = q.rows;
    expect(f32!.weightFormat).toMatch(/^float32/);
    expect(i8!.weightFormat).toMatch(/^int8 \(MatMulNBits, block 32\)/);
    expect(i4!.weightFormat).toMatch(/^int4 \(MatMulNBits, block 32\)/);
    expect(i8!.weightBytesPerToken).toBeLessThan(f32!.weightBytesPerToken * 0.35);
    expect(i4!.weightBytesPerToken).toBeLessThan(i8!.weightBytesPerToken * 0.65);
    expect(q.agreement.map((a) => a.variant)).toEqual(["int8", "int4"]);
    for (const a of q.agreement) expect(a.agreement).toBeGreaterThan(0.5);
    // Any int4 mismatch is re-run and located; an int8 one would be a bug (asserted above).
    for (const m of q.mismatches) {
      expect(m.arm).toMatch(/^int4 /);
      expect(m.position).toBeGreaterThanOrEqual(0);
      expect(m.gap).toBeGreaterThanOrEqual(0);
    }
    const md = benchMarkdown(report);
    expect(md).toContain("Measured read bandwidth");
    expect(md).toContain("| int4 draft (int4 draft) | int4 plain |");
    expect(md).toContain("Greedy top-1 agreement with float32");
  });

  it("runs Medusa and EAGLE arms (every eagle arm) on the int8 / int4 targets against their own plain arms", async () => {
    const medusa = writeRandomHeads(join(root, "medusa"), { heads: 2, layers: 1, hidden: 128, vocab: 512, seed: 5 });
    const eagle = join(root, "eagle");
    writeEagleHead(eagle, eagleConfigFor(readDecoderConfig(twin.target), "twin"), eagleWeightsFromTargetLayer(twin.target, 0));
    const chain = { treeTotal: 6, treeDepth: 6, treeTopK: 1, headWeights: "int8" as const };
    const report = await runBench({
      engine,
      model: twin.target,
      heads: medusa,
      eagleHeads: eagle,
      eagleArms: [chain],
      methods: ["medusa", "eagle"],
      prompts: builtinWorkload().slice(0, 2),
      workloadSource: "builtin (2)",
      maxNewTokens: 16,
      repeats: 1,
    });
    expect(report.result.skipped).toEqual([]);
    const chainLabel = "eagle treeTotal=6 treeDepth=6 treeTopK=1 headWeights=int8";
    expect(report.result.arms.map((a) => a.label)).toEqual([
      "medusa",
      "eagle",
      chainLabel,
      ...["int8", "int4"].flatMap((v) => [`${v} plain`, `${v} medusa`, `${v} eagle`, `${v} ${chainLabel}`]),
    ]);
    const byLabel = Object.fromEntries(report.result.arms.map((a) => [a.label, a]));
    for (const v of ["int8", "int4"]) {
      for (const m of ["medusa", "eagle", chainLabel]) {
        const a = byLabel[`${v} ${m}`]!;
        expect(a.variant).toBe(v === "int4" ? "q4" : "int8");
        expect(a.reference).toBe(`${v} plain`);
        expect(a.methodOptions).toEqual(m === chainLabel ? chain : {});
        expect(a.newTokens).toBeGreaterThan(0);
        // Its own plain greedy tokens: exact on int8 for chain-verified arms; int4 (accuracy level 4), and
        // int8 tree-verified arms, may differ only at a located near tie (checked below).
        if (v === "int8" && !a.verification.includes("tree")) expect(a.greedyIdentical).toBe(true);
      }
    }
    // The layer-0 EAGLE head drafts the early exit after one layer: it gets tokens accepted on the quantized targets too.
    expect(byLabel["int8 eagle"]!.meanAcceptedLength).toBeGreaterThan(1);
    const tree = new Set(report.result.arms.filter((a) => a.verification.includes("tree")).map((a) => a.label));
    for (const a of report.result.arms.filter((x) => x.reference !== undefined && x.greedyIdentical === false)) {
      expect(a.label.startsWith("int4 ") || tree.has(a.label)).toBe(true);
      for (const id of a.mismatches) expect(report.quant!.mismatches.find((m) => m.arm === a.label && m.prompt === id)?.nearTie).toBe(true);
    }
  });

  it("measures a read bandwidth", async () => {
    const bw = await measureReadBandwidth(1);
    expect(bw.gbs).toBeGreaterThan(0.1);
    expect(bw.method).toMatch(/ReduceSum/);
  });
});
