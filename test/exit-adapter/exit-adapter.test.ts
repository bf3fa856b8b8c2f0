/**
 * Trained early exit (exit adapters): the adapter graph computes what the trainer's tfjs model
 * computes (GQA, biases, q/k norms), `early-exit` uses the adapter when present and says so,
 * greedy output equals plain greedy with and without it, sampling with the adapter draft preserves
 * the target's distribution (chi-square, as draft-sampling.test.ts), and `train-early-exit` runs
 * end to end on a model without a tokenizer, improving held-out agreement.
 */
import { cpSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it, vi } from "vitest";
import { SpecEngine } from "../../src/api.js";
import { getWeight, openCheckpoint } from "../../src/builder/checkpoint.js";
import {
  buildExitAdapterOnnx,
  exitAdapterOnnxName,
  readCheckpointLayer,
  readExitAdapterWeights,
  type AdapterLayerWeights,
} from "../../src/builder/exit-adapter.js";
import type { DecoderConfig } from "../../src/builder/config.js";
import { benchCommand } from "../../src/cli/bench.js";
import { tuneCommand } from "../../src/cli/tune.js";
import { trainEarlyExitCommand } from "../../src/cli/train-early-exit.js";
import { tuneArms } from "../../src/bench/tune.js";
import { generateTokens } from "../../src/decoding/generate.js";
import { getMethod } from "../../src/decoding/methods.js";
import { tfReady } from "../../src/train-common/tf-layers.js";
import { CausalLM } from "../../src/engine/causal-lm.js";
import { adapterForward, adapterParamsFrom, makeAdapterFrozen, randomAdapterWeights } from "../../src/exit-adapter/model.js";
import { teacherTargets, trainEarlyExit } from "../../src/exit-adapter/train.js";
import { toProbabilities, type SamplingOptions } from "../../src/sampling/index.js";
import { chiSquare, chiSquarePValue } from "../helpers/chi-square.js";
import { fixture, tempDir, type FixtureOptions } from "../helpers/fixtures.js";

const root = tempDir("exit-adapter");
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A private copy of a fixture (all its files, or only `files`: leave tokenizer files out for a model without one). */
async function modelCopy(name: string, opts: FixtureOptions, files?: string[]): Promise<string> {
  const src = await fixture(opts);
  const dir = join(root, name);
  for (const f of files ?? readdirSync(src).filter((f) => f !== ".complete")) cpSync(join(src, f), join(dir, f), { recursive: true });
  return dir;
}

/** A random adapter (not the layer itself, so the test sees a different block) written as exit_adapter_{m}.onnx. */
async function randomAdapter(model: string, m: number, seed: number): Promise<{ cfg: DecoderConfig; w: AdapterLayerWeights }> {
  const { cfg, weights } = openCheckpoint(model, "test");
  const w = randomAdapterWeights(cfg, seed, readCheckpointLayer(cfg, weights, m));
  // Larger residual outputs than the trainer's init, so a wrong attention or MLP shows in the output.
  w.o = w.o.map((x) => x * 10);
  w.down = w.down.map((x) => x * 10);
  await buildExitAdapterOnnx(model, m, w, join(model, "onnx", exitAdapterOnnxName(m)));
  return { cfg, w };
}

describe("exit adapter graph", () => {
  const ARCHS: [string, FixtureOptions][] = [
    ["llama, GQA", { layers: 3, hidden: 32, heads: 4, kvHeads: 2, vocab: 64, seed: 3, earlyExit: [1] }],
    ["qwen2 (q/k/v biases), MQA", { arch: "qwen2", layers: 3, hidden: 32, heads: 4, kvHeads: 1, vocab: 64, seed: 4, earlyExit: [1] }],
    ["qwen3 (q/k norms)", { arch: "qwen3", layers: 3, hidden: 32, heads: 4, kvHeads: 2, vocab: 64, seed: 6, earlyExit: [1] }],
  ];
  for (const [name, opts] of ARCHS) {
    it(`computes what the trainer's tfjs adapter computes: ${name}`, async () => {
      const model = await modelCopy(`graph-${opts.arch ?? "llama"}`, opts);
      const { cfg, w } = await randomAdapter(model, 1, 9);
      const exit = await CausalLM.load(model, { file: join(model, "onnx", "early_exit_1.onnx") });
      const adapted = await CausalLM.load(model, { file: join(model, "onnx", exitAdapterOnnxName(1)) });
      try {
        expect(adapted.info.numLayers).toBe(2);
        const tokens = [1, 5, 9, 20, 33, 2, 7, 7, 40, 11];
        const h = (await exit.forward(exit.newCache(), tokens, { features: true, logits: "none" })).features!;
        const want = (await adapted.forward(adapted.newCache(), tokens, { features: true, logits: "none" })).features!;
        await tfReady();
        const { weights, names } = openCheckpoint(model, "test");
        const fz = makeAdapterFrozen(cfg, w, getWeight(weights, names.norm, [cfg.hiddenSize]), getWeight(weights, names.lmHead, [cfg.vocabSize, cfg.hiddenSize]));
        const p = adapterParamsFrom(cfg, w);
        const got = tf.tidy(() =>
          adapterForward(cfg, p, fz, tf.tensor2d(h, [tokens.length, cfg.hiddenSize]), tf.tensor1d(Int32Array.from(tokens.keys()), "int32")).dataSync(),
        );
        let maxDiff = 0;
        let maxDelta = 0;
        for (let i = 0; i < want.length; i++) {
          maxDiff = Math.max(maxDiff, Math.abs(got[i]! - want[i]!));
          maxDelta = Math.max(maxDelta, Math.abs(want[i]! - h[i]!));
        }
        expect(maxDelta).toBeGreaterThan(0.05); // the adapter does change the state
        expect(maxDiff).toBeLessThan(1e-4);
      } finally {
        await exit.dispose();
        await adapted.dispose();
      }
    });
  }
});

describe("early-exit with an adapter", () => {
  it("uses the adapter when present, reports trained/untrained, and greedy equals plain greedy either way", async () => {
    const model = await modelCopy("method", { layers: 4, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 21, earlyExit: [1, 2] });
    const engine = new SpecEngine();
    try {
      const prompt = [1, 17, 93, 200, 5, 64];
      const plain = await engine.generate({ model, promptIds: prompt, maxNewTokens: 24 });
      // No adapter yet: the untrained exit.
      const before = await engine.generate({ model, promptIds: prompt, maxNewTokens: 24, method: "early-exit", methodOptions: { exitLayer: 2, k: 3 } });
      expect(before.tokens).toEqual(plain.tokens);
      expect(before.stats.extra.exitAdapter).toBe("untrained");
      await expect(engine.generate({ model, promptIds: prompt, maxNewTokens: 4, method: "early-exit", methodOptions: { exitLayer: 2, adapter: true } })).rejects.toThrow(
        /train-early-exit/,
      );

      await randomAdapter(model, 2, 5);
      for (const k of [1, 3, 6]) {
        const res = await engine.generate({ model, promptIds: prompt, maxNewTokens: 24, method: "early-exit", methodOptions: { exitLayer: 2, k } });
        expect(res.tokens).toEqual(plain.tokens);
        expect(res.stats.extra.exitAdapter).toBe("trained");
        expect(res.stats.extra.exitLayer).toBe(2);
        expect(res.stats.draftedTokens).toBeGreaterThan(0);
      }
      // Without exitLayer the layer with an adapter is preferred; adapter: false forces the untrained exit.
      const auto = await engine.generate({ model, promptIds: prompt, maxNewTokens: 24, method: "early-exit", methodOptions: { k: 2 } });
      expect(auto.stats.extra).toMatchObject({ exitLayer: 2, exitAdapter: "trained" });
      expect(auto.tokens).toEqual(plain.tokens);
      const off = await engine.generate({ model, promptIds: prompt, maxNewTokens: 24, method: "early-exit", methodOptions: { exitLayer: 2, adapter: false, k: 2 } });
      expect(off.stats.extra.exitAdapter).toBe("untrained");
      expect(off.tokens).toEqual(plain.tokens);
    } finally {
      await engine.dispose();
    }
  }, 120_000);
});

describe("bench and tune choose the exit adapter (--adapter true|false)", () => {
  /** Run a CLI command with --json --quiet and parse what it prints. */
  async function json(cmd: (argv: string[]) => Promise<number>, argv: string[]): Promise<{ code: number; out: any }> {
    const out: string[] = [];
    const log = vi.spyOn(console, "log").mockImplementation((s: unknown) => void out.push(String(s)));
    const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      const code = await cmd([...argv, "--json", "--quiet"]);
      return { code, out: JSON.parse(out.join("\n")) };
    } finally {
      log.mockRestore();
      err.mockRestore();
    }
  }

  it("tuneArms puts adapter into every early-exit arm, and never into draft arms", () => {
    const arms = tuneArms({ method: "early-exit", ks: [2, 4], exitLayer: 2, adapter: false, controllers: ["cost"] });
    expect(arms.map((a) => a.methodOptions)).toEqual([
      { exitLayer: 2, adapter: false, k: 2, controller: "fixed" },
      { exitLayer: 2, adapter: false, k: 4, controller: "fixed" },
      { exitLayer: 2, adapter: false, k: "auto", controller: "cost" },
    ]);
    expect(tuneArms({ method: "draft", ks: [2], adapter: true })[0]!.methodOptions).toEqual({ k: 2, controller: "fixed" });
  });

  it("bench --adapter picks the draft of the early-exit arms and the K sweep; tune --adapter likewise; errors name the fix", async () => {
    const model = await modelCopy("bench", { layers: 4, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 21, earlyExit: [2] }, ["config.json", "model.safetensors", "onnx"]);
    const prompts = join(root, "bench-prompts.jsonl");
    writeFileSync(prompts, [[1, 17, 93, 200], [1, 5, 64, 9]].map((ids, i) => JSON.stringify({ id: `p${i}`, category: "ids", promptIds: ids })).join("\n") + "\n");
    const common = ["--model", model, "--prompts", prompts, "--max-new-tokens", "12", "--repeats", "1", "--threads", "1"];
    const bench = (...extra: string[]) => json(benchCommand, [...common, "--methods", "baseline,early-exit", "--exit-layer", "2", "--ks", "3", ...extra]);

    // No adapter yet: --adapter true skips the early-exit arm and the K sweep, naming train-early-exit.
    const none = await bench("--adapter", "true");
    expect(none.out.result.baseline.label).toBe("baseline");
    expect(none.out.result.arms).toEqual([]);
    expect(none.out.result.skipped.map((s: { label: string }) => s.label).sort()).toEqual(["early-exit", "early-exit K=3"]);
    for (const s of none.out.result.skipped) expect(s.reason).toMatch(/train-early-exit/);

    await randomAdapter(model, 2, 5);
    for (const [flag, which] of [[[], "trained"], [["--adapter", "true"], "trained"], [["--adapter", "false"], "untrained"]] as const) {
      const { code, out } = await bench(...flag);
      expect(code).toBe(0);
      const arms = out.result.arms.filter((a: { method: string }) => a.method === "early-exit");
      expect(arms.map((a: { label: string }) => a.label)).toEqual(["early-exit", "early-exit K=3"]);
      for (const a of arms) {
        expect(a.exitAdapter).toBe(which);
        expect(a.greedyIdentical).toBe(true);
        if (flag.length > 0) expect(a.methodOptions.adapter).toBe(flag[1] === "true");
      }
    }

    const tuned = await json(tuneCommand, [...common, "--exit-layer", "2", "--ks", "2", "--adapter", "false"]);
    expect(tuned.out.measurement.arms[0]).toMatchObject({ label: "K=2", exitAdapter: "untrained", methodOptions: { adapter: false } });
    await expect(benchCommand([...common, "--adapter", "maybe"])).rejects.toThrow(/--adapter/);
    await expect(tuneCommand([...common, "--draft", model, "--adapter", "true"])).rejects.toThrow(/--adapter chooses the early-exit draft/);
    await expect(tuneCommand([...common, "--draft", model, "--exit-layer", "2"])).rejects.toThrow(/--exit-layer tunes the early-exit draft/);
  }, 180_000);
});

describe("early-exit sampling with an adapter draft preserves the target distribution", () => {
  const V = 12;
  const SAMPLES = 3000;
  it("matches p(x1, x2) exactly (chi-square, p >= 1e-3)", async () => {
    const model = await modelCopy("sampling", { layers: 2, hidden: 32, heads: 2, kvHeads: 1, vocab: V, seed: 11, earlyExit: [1] });
    await randomAdapter(model, 1, 13);
    const target = await CausalLM.load(model, { threads: 1 });
    const draft = await CausalLM.load(model, { file: join(model, "onnx", exitAdapterOnnxName(1)), threads: 1 });
    try {
      const prompt = [1, 7];
      const sampling: SamplingOptions = { temperature: 2.5 };
      const row = async (ids: number[]) => (await target.forward(target.newCache(), ids, { logits: "last" })).logits;
      const p1 = toProbabilities(await row(prompt), sampling, prompt);
      const exact = new Map<string, number>();
      for (let a = 0; a < V; a++) {
        const ctx = [...prompt, a];
        const p2 = toProbabilities(await row(ctx), sampling, ctx);
        for (let b = 0; b < V; b++) if (p1[a]! * p2[b]! > 0) exact.set(`${a},${b}`, p1[a]! * p2[b]!);
      }
      const counts = new Map<string, number>();
      let drafted = 0;
      let accepted = 0;
      for (let s = 0; s < SAMPLES; s++) {
        const proposer = getMethod("early-exit").create({ target, draft }, { k: 2 });
        const res = await generateTokens({ target, promptIds: prompt, maxNewTokens: 3, eosIds: [], sampling: { ...sampling, seed: s }, proposer });
        const key = `${res.tokens[0]},${res.tokens[1]}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
        if (s === 0) expect(res.stats.extra).toMatchObject({ exitLayer: 1, exitAdapter: "trained" });
        drafted += res.stats.draftedTokens;
        accepted += res.stats.acceptedTokens;
      }
      const fit = chiSquare(counts, exact, SAMPLES);
      expect(accepted / drafted).toBeGreaterThan(0.05);
      expect(accepted / drafted).toBeLessThan(0.95);
      expect(fit.dof).toBeGreaterThan(10);
      expect(fit.pValue, `chi2 ${fit.stat.toFixed(1)} on ${fit.dof} dof`).toBeGreaterThanOrEqual(1e-3);
      expect(chiSquarePValue(29.588, 10)).toBeCloseTo(0.001, 4);
    } finally {
      await target.dispose();
      await draft.dispose();
    }
  }, 180_000);
});

describe("train-early-exit", () => {
  it("trains in token-id space on a model without tokenizer, lowers the held-out loss, writes graph + weights, decodes exactly", async () => {
    const model = await modelCopy("train", { layers: 3, hidden: 32, heads: 4, kvHeads: 2, vocab: 128, seed: 3, earlyExit: [1] }, ["config.json", "model.safetensors", "onnx"]);
    const lines: string[] = [];
    const report = await trainEarlyExit({ model, exitLayer: 1, selfDistill: 16, maxNewTokens: 40, maxSteps: 60, window: 16, batchRows: 64, lr: 3e-3, onLog: (l) => lines.push(l) });
    expect(lines.some((l) => l.includes("token-id space"))).toBe(true);
    expect(lines.some((l) => l.startsWith("held-out top-1 agreement"))).toBe(true);
    expect(report.steps).toBe(60);
    // The objective on held-out sequences (this random fixture's first layer already agrees with the
    // full model on most greedy tokens, so top-1 has little room; the stories260K run is in references/).
    expect(report.trained.loss).toBeLessThan(report.initial.loss);
    expect(report.trained.top1).toBeGreaterThan(0.5);
    expect(report.trained.chainAcceptedLength).toBeGreaterThanOrEqual(1);
    expect(report.files.map((f) => f.split("/").pop())).toEqual(["exit_adapter_1.onnx", "exit_adapter_1.safetensors"]);
    const saved = readExitAdapterWeights(report.files[1]!, openCheckpoint(model, "test").cfg);
    expect(saved.exitLayer).toBe(1);
    expect(saved.info.held_out_top1).toBe(report.trained.top1);

    // --init continues from the written adapter; a wrong exit layer is refused.
    const again = await trainEarlyExit({ model, exitLayer: 1, init: report.files[1]!, selfDistill: 4, maxNewTokens: 20, maxSteps: 2, window: 16 });
    expect(again.initFrom).toBe("file");
    await expect(trainEarlyExit({ model, exitLayer: 2, init: report.files[1]!, selfDistill: 2, maxSteps: 1 })).rejects.toThrow(/exit layer 1, not 2/);

    const engine = new SpecEngine();
    try {
      const prompt = [1, 5, 9, 20];
      const plain = await engine.generate({ model, promptIds: prompt, maxNewTokens: 40 });
      const res = await engine.generate({ model, promptIds: prompt, maxNewTokens: 40, method: "early-exit", methodOptions: { exitLayer: 1, k: 4 } });
      expect(res.tokens).toEqual(plain.tokens);
      expect(res.stats.extra.exitAdapter).toBe("trained");
    } finally {
      await engine.dispose();
    }
  }, 240_000);

  it("keeps the best epoch's weights by held-out top-1 (or the last with keepBest: false); --hard-weight mixes in the greedy token", async () => {
    const model = await modelCopy("best", { layers: 3, hidden: 32, heads: 4, kvHeads: 2, vocab: 128, seed: 3, earlyExit: [1] }, ["config.json", "model.safetensors", "onnx"]);
    const lines: string[] = [];
    const base = { model, exitLayer: 1, selfDistill: 16, maxNewTokens: 40, window: 16, batchRows: 64, epochs: 4, lr: 2e-2 };
    const report = await trainEarlyExit({ ...base, hardWeight: 0.5, onLog: (l) => lines.push(l) });
    expect(report.hardWeight).toBe(0.5);
    expect(lines.some((l) => l.includes("0.5 x its greedy token"))).toBe(true);
    // One evaluation per full epoch (the last epoch may be cut by a pack when reshuffling packs differently).
    expect(report.epochTop1.length).toBeGreaterThanOrEqual(3);
    expect(report.epochTop1.length).toBeLessThanOrEqual(4);
    expect(lines.filter((l) => /^epoch \d: held-out top-1/.test(l))).toHaveLength(report.epochTop1.length);
    // The run ends with the best weights seen: no full epoch scored higher on the held-out sequences.
    expect(report.trained.top1).toBeGreaterThanOrEqual(Math.max(...report.epochTop1));
    if (report.bestEpoch > 0) expect(report.epochTop1[report.bestEpoch - 1]).toBe(report.trained.top1);
    const last = await trainEarlyExit({ ...base, keepBest: false });
    expect(last.epochTop1).toEqual([]);
    expect(last.bestEpoch).toBe(0);
    await expect(trainEarlyExit({ ...base, hardWeight: 1.5 })).rejects.toThrow(/--hard-weight must be from 0 to 1/);

    // The target mix: rows still sum to 1, the argmax gains w, the rest scales by 1 - w.
    await tfReady();
    const logits = tf.tensor2d([[0, 1, 3, 2], [5, 0, 0, 0]]);
    const soft = tf.softmax(logits).arraySync() as number[][];
    const mixed = teacherTargets(logits, 0.25).arraySync() as number[][];
    for (const [r, row] of mixed.entries()) {
      expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      const top = r === 0 ? 2 : 0;
      row.forEach((x, j) => expect(x).toBeCloseTo(0.75 * soft[r]![j]! + (j === top ? 0.25 : 0), 6));
    }
    expect(teacherTargets(logits, 0).arraySync()).toEqual(soft);
    tf.dispose(logits);
  }, 240_000);

  it("CLI: --exit-layer is required, unknown flags and out-of-range layers are errors naming the fix", async () => {
    const model = await modelCopy("cli", { layers: 3, hidden: 32, heads: 4, kvHeads: 2, vocab: 128, seed: 3, earlyExit: [1] }, ["config.json", "model.safetensors", "onnx"]);
    await expect(trainEarlyExitCommand(["--model", model, "--self-distill", "2"])).rejects.toThrow(/--exit-layer is required/);
    await expect(trainEarlyExitCommand(["--model", model, "--exit-layer", "1", "--self-distill", "2", "--out", "x"])).rejects.toThrow(/out/);
    await expect(trainEarlyExitCommand(["--model", model, "--exit-layer", "3", "--self-distill", "2"])).rejects.toThrow(/from 1 to 2/);
    await expect(trainEarlyExitCommand(["--model", model, "--exit-layer", "2", "--self-distill", "2"])).rejects.toThrow(/--early-exit 2/);
  }, 60_000);
});

describe("auto with an exit layer", () => {
  it("says whether the exit is trained, and points at train-early-exit when it is not", async () => {
    const { chooseAutoMethod } = await import("../../src/api.js");
    expect(chooseAutoMethod({ methodOptions: { exitLayer: 2 } }, { exitAdapters: [2] }).reason).toMatch(/trained exit adapter/);
    expect(chooseAutoMethod({ methodOptions: { exitLayer: 2, adapter: false } }, { exitAdapters: [2] }).reason).toMatch(/untrained.*train-early-exit/);
    expect(chooseAutoMethod({ methodOptions: { exitLayer: 1 } }, { exitAdapters: [2] }).reason).toMatch(/untrained/);
  });
});
