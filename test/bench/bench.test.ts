import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { SpecEngine } from "../../src/api.js";
import { runBench } from "../../src/bench/bench.js";
import { benchMarkdown } from "../../src/bench/report.js";
import { buildTwin } from "../../src/bench/twin.js";
import { parseWorkloadSpec } from "../../src/bench/workload.js";
import { benchCommand } from "../../src/cli/bench.js";
import { tuneCommand } from "../../src/cli/tune.js";
import { registeredMethods } from "../../src/decoding/methods.js";
import { tempDir } from "../helpers/fixtures.js";
import { pngChunks, TINY_TWIN } from "./helpers.js";

const ARM_FIELDS = [
  "label",
  "method",
  "medianTokensPerSecond",
  "speedup",
  "acceptanceRate",
  "meanAcceptedLength",
  "perPositionAcceptance",
  "idealSpeedup",
  "efficiency",
  "overheadMsPerToken",
  "overheadShare",
  "onnxRuntimeMsPerToken",
  "peakRssBytes",
  "greedyIdentical",
];

describe("spec-decode bench on a tiny twin", () => {
  const root = tempDir("bench");
  let twin: Awaited<ReturnType<typeof buildTwin>>;
  const engine = new SpecEngine();
  beforeAll(async () => {
    twin = await buildTwin({ ...TINY_TWIN, out: join(root, "twin"), divergence: 0.3 });
  });
  afterAll(async () => {
    await engine.dispose();
  });

  it("measures every registered method (skipping the unavailable with a reason) with the documented fields", async () => {
    const notes: string[] = [];
    const report = await runBench({
      engine,
      model: twin.target,
      draft: twin.draft,
      prompts: parseWorkloadSpec("builtin:qa").slice(0, 2),
      workloadSource: "builtin:qa",
      maxNewTokens: 12,
      repeats: 1,
      ks: [2],
      onNote: (s) => notes.push(s),
    });
    const res = report.result;
    const measured = [res.baseline, ...res.arms];
    const accounted = new Set([...measured.map((a) => a.method), ...res.skipped.map((s) => s.method)]);
    for (const m of registeredMethods()) expect(accounted.has(m.name)).toBe(true);
    for (const s of res.skipped) expect(s.reason.length).toBeGreaterThan(5);
    for (const a of measured) {
      for (const f of ARM_FIELDS) expect(a).toHaveProperty(f);
      expect(a.greedyIdentical).toBe(true);
      expect(a.medianTokensPerSecond).toBeGreaterThan(0);
      expect(a.peakRssBytes).toBeGreaterThan(0);
      expect(a.overheadShare).toBeGreaterThanOrEqual(0);
      expect(a.overheadShare).toBeLessThanOrEqual(1);
    }
    expect(res.baseline.speedup.mean).toBe(1);
    expect(res.baseline.meanAcceptedLength).toBe(1);
    expect(report.twin?.synthetic).toBe(true);
    expect(report.machine.cores).toBeGreaterThan(0);
    const draft = res.arms.find((a) => a.label === "draft");
    if (draft) {
      expect(draft.acceptanceRate).toBeGreaterThan(0);
      expect(draft.idealSpeedup).toBeGreaterThan(0);
    }
    if (registeredMethods().some((m) => m.name === "draft")) {
      expect(report.tune?.points.map((p) => p.label)).toEqual(["draft K=2"]);
      expect(report.tune?.predictedCurve.length).toBeGreaterThan(0);
    }
    const md = benchMarkdown(report);
    expect(md).toMatch(/Synthetic models/);
    expect(md).toMatch(/\| method \| tok\/s \(median\) \| speedup \[95% CI\] \| acceptance \| mean accepted length \| ideal \| efficiency \|/);
    expect(md).toMatch(/\| baseline \|/);
  });

  it("CLI: --json prints the report, --chart writes a valid PNG, unknown methods are refused", async () => {
    const chart = join(root, "chart.png");
    const out: string[] = [];
    const log = vi.spyOn(console, "log").mockImplementation((s: unknown) => void out.push(String(s)));
    const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      const code = await benchCommand([
        "--model", twin.target, "--draft", twin.draft, "--methods", "baseline,draft,prompt-lookup",
        "--workload", "builtin:math", "--max-new-tokens", "8", "--repeats", "1", "--json", "--chart", chart, "--quiet",
      ]);
      expect(code).toBe(0);
    } finally {
      log.mockRestore();
      err.mockRestore();
    }
    const report = JSON.parse(out.join("\n"));
    expect(report.kind).toBe("spec-decode-bench");
    expect(report.workload.prompts).toBe(3);
    expect(report.result.baseline.label).toBe("baseline");
    expect(report.conventions.join(" ")).toMatch(/t-interval on the log ratios/);
    const chunks = pngChunks(readFileSync(chart));
    expect(chunks[0]!.type).toBe("IHDR");
    expect(chunks.at(-1)!.type).toBe("IEND");
    await expect(benchCommand(["--model", twin.target, "--methods", "baseline,warp-drive"])).rejects.toThrow(/Unknown method "warp-drive"/);
  });

  it("CLI tune: K sweep with predicted curve, --json and --chart", async () => {
    const chart = join(root, "tune.png");
    const out: string[] = [];
    const log = vi.spyOn(console, "log").mockImplementation((s: unknown) => void out.push(String(s)));
    const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      await tuneCommand(["--model", twin.target, "--draft", twin.draft, "--ks", "1,3", "--workload", "builtin:qa", "--max-new-tokens", "8", "--repeats", "1", "--json", "--chart", chart, "--quiet"]);
    } finally {
      log.mockRestore();
      err.mockRestore();
    }
    const res = JSON.parse(out.join("\n"));
    expect(res.points.map((p: { label: string }) => p.label)).toEqual(["K=1", "K=3"]);
    expect(res.predictedCurve.length).toBeGreaterThanOrEqual(8);
    expect(res.twin.synthetic).toBe(true);
    expect(pngChunks(readFileSync(chart))[0]!.type).toBe("IHDR");
  });
});
