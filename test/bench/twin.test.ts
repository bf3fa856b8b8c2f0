import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { SpecEngine } from "../../src/api.js";
import { buildTwin, measureAgreement, readTwinInfo } from "../../src/bench/twin.js";
import { builtinWorkload } from "../../src/bench/workload.js";
import { fixtureCommand } from "../../src/cli/fixture.js";
import { tempDir } from "../helpers/fixtures.js";
import { TINY_TWIN } from "./helpers.js";

describe("twin benchmark models", () => {
  const root = tempDir("twin");
  const engine = new SpecEngine();
  const knobs = [0, 0.3, 1, 3];
  const twins: Record<number, Awaited<ReturnType<typeof buildTwin>>> = {};

  beforeAll(async () => {
    for (const d of knobs) twins[d] = await buildTwin({ ...TINY_TWIN, out: join(root, `d${d}`), divergence: d });
  });
  afterAll(async () => {
    await engine.dispose();
  });

  it("writes target (with early exit), draft and twin.json saying they are synthetic", () => {
    const t = twins[0.3]!;
    expect(existsSync(join(t.target, "onnx", "model.onnx"))).toBe(true);
    expect(existsSync(join(t.target, "onnx", "early_exit_1.onnx"))).toBe(true);
    expect(existsSync(join(t.draft, "onnx", "model.onnx"))).toBe(true);
    // Same tokenizer for both (the engine's vocabulary check needs it).
    expect(readFileSync(join(t.target, "tokenizer.json"), "utf8")).toBe(readFileSync(join(t.draft, "tokenizer.json"), "utf8"));
    const info = readTwinInfo(t.target)!;
    expect(info.synthetic).toBe(true);
    expect(info.divergence).toBe(0.3);
    expect(info.note).toMatch(/Synthetic random models/);
    expect(info.draft.parameters).toBeLessThan(info.target.parameters / 2);
  });

  it("the separate draft computes the target's early-exit logits", async () => {
    const t = twins[1]!;
    const draft = await engine.store.load(t.draft);
    const early = await engine.store.load(t.target, { file: join(t.target, "onnx", "early_exit_1.onnx") });
    const ids = [1, 40, 77, 300, 12, 9, 250];
    const a = await draft.lm.forward(draft.lm.newCache(), ids);
    const b = await early.lm.forward(early.lm.newCache(), ids);
    let maxDiff = 0;
    for (let i = 0; i < a.logits.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a.logits[i]! - b.logits[i]!));
    expect(maxDiff).toBeLessThan(1e-3);
  });

  it("greedy agreement is 1 at knob 0 and falls monotonically as the knob rises", async () => {
    const prompts = builtinWorkload().filter((_, i) => i % 3 === 0);
    const agreement: number[] = [];
    for (const d of knobs) {
      const a = await measureAgreement({ engine, target: twins[d]!.target, draft: twins[d]!.draft, prompts, maxNewTokens: 24 });
      expect(a.positions).toBeGreaterThan(50);
      agreement.push(a.agreement);
    }
    expect(agreement[0]).toBe(1);
    for (let i = 1; i < agreement.length; i++) expect(agreement[i]!).toBeLessThan(agreement[i - 1]!);
    expect(agreement[agreement.length - 1]!).toBeLessThan(0.3);
  });

  it("CLI: spec-decode fixture --twin writes the pair and reports the knob", async () => {
    const out: string[] = [];
    const log = vi.spyOn(console, "log").mockImplementation((s: unknown) => void out.push(String(s)));
    const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      await fixtureCommand([
        "--twin", "--out", join(root, "cli"), "--hidden", "128", "--layers", "3", "--heads", "4", "--kv-heads", "2", "--intermediate", "256",
        "--vocab", "400", "--draft-hidden", "64", "--draft-intermediate", "128", "--max-positions", "256", "--divergence", "0.5", "--json",
      ]);
      await expect(fixtureCommand(["--out", join(root, "x"), "--divergence", "0.5"])).rejects.toThrow(/only applies to --twin/);
    } finally {
      log.mockRestore();
      err.mockRestore();
    }
    const res = JSON.parse(out.join("\n"));
    expect(res.info.divergence).toBe(0.5);
    expect(res.info.target.layers).toBe(3);
    expect(existsSync(join(res.draft, "onnx", "model.onnx"))).toBe(true);
    expect(existsSync(join(res.target, "model.safetensors"))).toBe(true);
  });
});
