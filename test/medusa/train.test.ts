/** Medusa head training: the hand-written backward pass against finite differences, and a short run on a fixture. */
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it, vi } from "vitest";
import { SeededRandom } from "../../src/builder/fixture.js";
import { readMedusaHeads } from "../../src/builder/medusa-heads.js";
import { trainMedusaCommand } from "../../src/cli/train-medusa.js";
import { generateTokens } from "../../src/decoding/generate.js";
import { createMedusaProposer, medusaSettings } from "../../src/decoding/medusa.js";
import { disposeOpenedHeads, loadMedusaHeads } from "./heads-helpers.js";
import { CausalLM } from "../../src/engine/causal-lm.js";
import { InvalidOptionError } from "../../src/errors.js";
import { buildDataset, trainHeads } from "../../src/medusa/heads-trainer.js";
import { trainMedusa } from "../../src/medusa/train.js";
import { buildTrainStepOnnx, trainLossReference } from "../../src/medusa/train-graph.js";
import { encodePrompt, readDataFile, seedPrompts } from "../../src/medusa/data.js";
import { TextTokenizer } from "../../src/text/index.js";
import { fixture, tempDir } from "../helpers/fixtures.js";


const root = tempDir("medusa-train");
afterAll(async () => {
  await disposeOpenedHeads();
  rmSync(root, { recursive: true, force: true });
});

describe("training step graph", () => {
  for (const frozen of [true, false]) {
    it(`gradients match central finite differences of a float64 loss (${frozen ? "frozen" : "trained"} LM head)`, async () => {
      const K = 2, H = 5, V = 7, N = 4;
      const rng = new SeededRandom(frozen ? 1 : 2);
      const rand = (n: number, s: number) => Float64Array.from({ length: n }, () => s * rng.normal());
      const wt = rand(K * H * H, 0.4);
      const b = rand(K * H, 0.3);
      const lm = rand((frozen ? 1 : K) * V * H, 0.8);
      const h = rand(N * H, 1);
      const targets = [[0, 3, 6, 2], [5, 1, 1, 4]];
      const valid = [[1, 1, 1, 1], [1, 0, 1, 1]];
      const weights = valid.map((r) => r.map((v) => v / r.reduce((a, c) => a + c, 0)));
      const file = join(root, `step-${frozen}.onnx`);
      buildTrainStepOnnx({ heads: K, hidden: H, vocab: V, frozenLmHead: frozen ? Float32Array.from(lm) : undefined }, file);
      const session = await ort.InferenceSession.create(file);
      const f32 = (a: Float64Array) => Float32Array.from(a);
      const feeds: Record<string, ort.Tensor> = {
        h: new ort.Tensor("float32", f32(h), [N, H]),
        targets: new ort.Tensor("int64", BigInt64Array.from(targets.flat(), (x) => BigInt(x)), [K, N]),
        weights: new ort.Tensor("float32", Float32Array.from(weights.flat()), [K, N]),
        valid: new ort.Tensor("float32", Float32Array.from(valid.flat()), [K, N]),
        wt: new ort.Tensor("float32", f32(wt), [K, H, H]),
        b: new ort.Tensor("float32", f32(b), [K, 1, H]),
      };
      if (!frozen) feeds.lm = new ort.Tensor("float32", f32(lm), [K, V, H]);
      const out = await session.run(feeds);
      await session.release();
      // Parameters are read in float32 by the graph; use the same rounded values for the reference.
      const P = { wt: Float64Array.from(f32(wt)), b: Float64Array.from(f32(b)), lm: Float64Array.from(f32(lm)), lmShared: frozen };
      const hh = Float64Array.from(f32(h));
      const loss = () => trainLossReference({ heads: K, hidden: H, vocab: V }, P, hh, N, targets, weights);
      const lossOut = out.loss!.data as Float32Array;
      expect(lossOut[0]! + lossOut[1]!).toBeCloseTo(loss(), 4);
      const check = (param: Float64Array, grad: Float32Array) => {
        expect(grad.length).toBe(param.length);
        const eps = 1e-5;
        let worst = 0;
        for (let i = 0; i < param.length; i++) {
          const x = param[i]!;
          param[i] = x + eps;
          const up = loss();
          param[i] = x - eps;
          const down = loss();
          param[i] = x;
          const fd = (up - down) / (2 * eps);
          worst = Math.max(worst, Math.abs(grad[i]! - fd) / Math.max(1e-2, Math.abs(fd)));
        }
        expect(worst).toBeLessThan(2e-3);
      };
      check(P.wt, out.grad_wt!.data as Float32Array);
      check(P.b, out.grad_b!.data as Float32Array);
      if (!frozen) check(P.lm, out.grad_lm!.data as Float32Array);
      // top-1 hits among valid rows
      const correct = out.correct!.data as Float32Array;
      expect(correct.every((c, k) => c >= 0 && c <= valid[k]!.reduce((a, v) => a + v, 0))).toBe(true);
    });
  }

  it("examples give head k the token k + 2 places ahead, only inside the target part", () => {
    const H = 1;
    const ds = buildDataset([{ tokens: [10, 11, 12, 13, 14, 15], hidden: Float32Array.from([0, 1, 2, 3, 4, 5]), firstTarget: 4 }], 2, H);
    // positions t with t + 2 < 6 and t + 3 >= 4: t = 1, 2, 3
    expect(Array.from(ds.hidden)).toEqual([1, 2, 3]);
    expect(Array.from(ds.targets)).toEqual([-1, 14, 15, 14, 15, -1]);
  });
});

describe("train-medusa on a fixture", () => {
  it("self-distilled training raises head-1 top-1 far above chance; trained heads keep greedy output exact and speed up", async () => {
    const dir = await fixture({ layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 1 });
    const out = join(root, "heads");
    const logs: string[] = [];
    const report = await trainMedusa({ model: dir, out, heads: 3, selfDistill: 32, maxNewTokens: 48, epochs: 10, onLog: (l) => logs.push(l) });
    expect(logs.some((l) => /^step \d+\/\d+ .*top-1/.test(l))).toBe(true);
    const chance = 1 / 320;
    expect(report.chance).toBeCloseTo(chance);
    const h1 = report.perHead[0]!;
    expect(h1.evalTop1).toBeGreaterThan(0.3);
    expect(h1.evalTop1).toBeGreaterThan(50 * chance);
    expect(h1.evalTop1).toBeGreaterThan(h1.initialTop1 + 0.2);
    expect(report.tree.length).toBeGreaterThan(0);
    expect(existsSync(join(out, "medusa_lm_head.safetensors"))).toBe(true);
    const w = readMedusaHeads(out);
    expect([w.numHeads, w.hiddenSize, w.vocabSize]).toEqual([3, 64, 320]);
    expect(w.choices).toEqual(report.tree);

    const lm = await CausalLM.load(dir);
    const tok = await TextTokenizer.load(dir);
    const heads = await loadMedusaHeads(out);
    let newTokens = 0;
    let forwards = 0;
    // Prompts the training never saw (seed prompts 32..37), plus raw ids.
    const prompts = [...seedPrompts(38).slice(32).map((text) => encodePrompt(tok, { text }, true)), [1, 17, 93, 200, 5, 64]];
    for (const p of prompts) {
      const base = await generateTokens({ target: lm, promptIds: p, maxNewTokens: 48, eosIds: [] });
      const res = await generateTokens({ target: lm, promptIds: p, maxNewTokens: 48, eosIds: [], proposer: createMedusaProposer(lm, heads, medusaSettings(heads.config, {})) });
      expect(res.tokens).toEqual(base.tokens);
      newTokens += res.stats.newTokens;
      forwards += res.stats.targetForwards;
    }
    expect(newTokens / forwards).toBeGreaterThan(1.5);
    await lm.dispose();
  });

  it("trained heads keep greedy output exact on a second fixture (qwen2, tied embeddings)", async () => {
    const dir = await fixture({ arch: "qwen2", layers: 2, hidden: 48, heads: 4, kvHeads: 1, vocab: 300, seed: 7, tieEmbeddings: true });
    const out = join(root, "heads-qwen2");
    const report = await trainMedusa({ model: dir, out, heads: 2, selfDistill: 16, maxNewTokens: 40, maxSteps: 200 });
    expect(report.perHead[0]!.evalTop1).toBeGreaterThan(20 / 300);
    const lm = await CausalLM.load(dir);
    const heads = await loadMedusaHeads(out);
    let accepted = 0;
    for (const p of [[1, 17, 93, 200, 5, 64], [7], [1, 250, 33, 12]]) {
      const base = await generateTokens({ target: lm, promptIds: p, maxNewTokens: 40, eosIds: [] });
      const res = await generateTokens({ target: lm, promptIds: p, maxNewTokens: 40, eosIds: [], proposer: createMedusaProposer(lm, heads, medusaSettings(heads.config, {})) });
      expect(res.tokens).toEqual(base.tokens);
      accepted += res.stats.acceptedTokens;
    }
    expect(accepted).toBeGreaterThan(0);
    await lm.dispose();
  });

  it("ends with the best held-out weights (the initial heads included) unless keepLast; the report says which", async () => {
    // Identity LM head; the hidden state at t is the one-hot of the token at t + 2 on the held-out
    // sequence (the initial head is always right there) and of the token after it on the training
    // ones, so training moves the head away from the held-out answer.
    const V = 8;
    const lmHead = new Float32Array(V * V);
    for (let i = 0; i < V; i++) lmHead[i * V + i] = 4;
    const rng = new SeededRandom(5);
    const seq = (shift: number) => {
      const tokens = Array.from({ length: 40 }, () => Math.floor(rng.next() * V));
      const hidden = new Float32Array(tokens.length * V);
      for (let t = 0; t + 2 < tokens.length; t++) hidden[t * V + ((tokens[t + 2]! + shift) % V)] = 1;
      return { tokens, hidden, firstTarget: 1 };
    };
    const seqs = [...Array.from({ length: 6 }, () => seq(1)), seq(0)];
    const o = { heads: 1, epochs: 3, lr: 0.05, batchSize: 16, evalFraction: 0.15, seed: 2 };
    const last = await trainHeads(seqs, lmHead, V, { ...o, keepBest: false });
    expect(last.report.perHead[0]!.initialTop1).toBe(1);
    expect(last.report.perHead[0]!.evalTop1).toBeLessThan(0.9);
    expect(last.report.keptEpoch).toBe(3);
    expect(last.report.epochTop1).toEqual([]);
    const logs: string[] = [];
    const best = await trainHeads(seqs, lmHead, V, { ...o, onLog: (l) => logs.push(l) });
    expect(best.report.epochTop1.length).toBe(3);
    expect(best.report.epochTop1[2]).toBeLessThan(0.9);
    expect(best.report.keptEpoch).toBe(0);
    expect(best.report.perHead[0]!.evalTop1).toBe(1);
    expect(Array.from(best.heads[0]!.blocks[0]!.weight).every((w) => w === 0)).toBe(true);
    expect(logs.some((l) => l.startsWith("keeping the weights of epoch 0, the initial heads,"))).toBe(true);
  });

  it("--data: text lines and JSON lines train on the text itself, or serve as self-distillation prompts", async () => {
    const dir = await fixture({ layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 1 });
    const file = join(root, "data.jsonl");
    writeFileSync(
      file,
      [
        "The quick brown fox jumps over the lazy dog, again and again.",
        JSON.stringify({ text: "A short note about rivers and the sea, and the rain that feeds them." }),
        JSON.stringify({ prompt: "Tell me about bread." }),
        JSON.stringify({ messages: [{ role: "user", content: "Hi there" }, { role: "assistant", content: "Hello! How can I help?" }] }),
        "",
      ].join("\n"),
    );
    expect(readDataFile(file).length).toBe(4);
    const text = await trainMedusa({ model: dir, out: join(root, "data-heads"), heads: 2, data: file, maxSteps: 3 });
    expect(text.data.source).toBe("text");
    expect(text.data.sequences).toBe(4);
    const distill = await trainMedusa({ model: dir, out: join(root, "data-heads2"), heads: 2, data: file, selfDistill: 4, maxNewTokens: 8, maxSteps: 3 });
    expect(distill.data.source).toBe("self-distill");
    writeFileSync(file, '{"question": "no text field"}\n');
    expect(() => readDataFile(file)).toThrow(/"text", "prompt" or "messages"/);
  });

  it("the CLI prints a JSON report and refuses to run without data", async () => {
    const dir = await fixture({ layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 1 });
    const printed: string[] = [];
    const log = vi.spyOn(console, "log").mockImplementation((s: string) => void printed.push(s));
    const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      const code = await trainMedusaCommand(["--model", dir, "--out", join(root, "cli"), "--heads", "2", "--self-distill", "4", "--max-new-tokens", "16", "--max-steps", "5"]);
      expect(code).toBe(0);
      const rep = JSON.parse(printed.join("\n")) as { perHead: { evalTop1: number }[]; chance: number; steps: number };
      expect(rep.perHead.length).toBe(2);
      expect(rep.steps).toBe(5);
      expect(err.mock.calls.some((c) => String(c[0]).includes("[train-medusa] step"))).toBe(true);
      await expect(trainMedusaCommand(["--model", dir])).rejects.toThrow(InvalidOptionError);
    } finally {
      log.mockRestore();
      err.mockRestore();
    }
  });
});
