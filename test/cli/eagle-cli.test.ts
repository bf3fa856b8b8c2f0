/** EAGLE on the CLI: tune --heads sweeps the tree size (fixed totals vs auto); bench runs EAGLE beside Medusa with --eagle-heads, and more eagle arms with --eagle-arms. */
import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, ensureBuilt } from "../helpers/dist.js";
import { fixture, tempDir } from "../helpers/fixtures.js";
import { writeRandomEagleHead } from "../eagle/helpers.js";

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 240_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("EAGLE on the CLI", () => {
  let model: string;
  let work: string;
  let head: string;
  let prompts: string;
  beforeAll(async () => {
    ensureBuilt();
    model = await fixture({ layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 1 });
    work = tempDir("eagle-cli");
    head = writeRandomEagleHead(join(work, "head"), model, 3);
    prompts = join(work, "prompts.jsonl");
    writeFileSync(prompts, [[1, 17, 93], [4, 4, 8, 250]].map((ids, i) => JSON.stringify({ id: `p${i}`, category: "ids", promptIds: ids })).join("\n") + "\n");
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("tune --heads sweeps fixed tree totals against auto in one interleaved run", () => {
    const r = cli(["tune", "--model", model, "--heads", head, "--totals", "2,6", "--prompts", prompts, "--max-new-tokens", "10", "--repeats", "1", "--json", "--quiet"]);
    expect(r.code, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout) as { kind: string; result: { arms: { label: string; greedyIdentical: boolean; meanDrafted: number }[] } };
    expect(o.kind).toBe("spec-decode-tune-eagle");
    expect(o.result.arms.map((a) => a.label)).toEqual(["eagle auto", "eagle treeTotal 2", "eagle treeTotal 6"]);
    for (const a of o.result.arms) expect(a.greedyIdentical).toBe(true);
    expect(o.result.arms[1]!.meanDrafted).toBeLessThanOrEqual(2);
    const bad = cli(["tune", "--model", model, "--heads", head, "--exit-layer", "1"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/without --draft \/ --exit-layer/);
    const stray = cli(["tune", "--model", model, "--exit-layer", "1", "--tree-topk", "1"]);
    expect(stray.code).not.toBe(0);
    expect(stray.stderr).toMatch(/--tree-topk applies with --heads/);
    const chain = cli(["tune", "--model", model, "--heads", head, "--totals", "3", "--tree-topk", "1", "--tree-depth", "3", "--prompts", prompts, "--max-new-tokens", "8", "--repeats", "1", "--json", "--quiet"]);
    expect(chain.code, chain.stderr).toBe(0);
    const c = JSON.parse(chain.stdout) as { result: { arms: { methodOptions: Record<string, number>; greedyIdentical: boolean }[] } };
    expect(c.result.arms[1]!.methodOptions).toMatchObject({ treeTotal: 3, treeTopK: 1, treeDepth: 3 });
    for (const a of c.result.arms) expect(a.greedyIdentical).toBe(true);
  });

  it("bench --eagle-heads gives the eagle arm its own head", () => {
    const r = cli(["bench", "--model", model, "--eagle-heads", head, "--methods", "eagle", "--prompts", prompts, "--max-new-tokens", "8", "--repeats", "1", "--json", "--quiet"]);
    expect(r.code, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout) as { eagleHeads: string; result: { arms: { method: string; greedyIdentical: boolean }[] } };
    expect(o.eagleHeads).toBe(head);
    expect(o.result.arms.find((a) => a.method === "eagle")?.greedyIdentical).toBe(true);
  });

  it("bench --eagle-arms adds eagle arms with their own options (a chain, int8 head weights, a head) to the same run", () => {
    const r = cli([
      "bench", "--model", model, "--eagle-heads", head, "--methods", "eagle", "--eagle-arms", `treeTotal=3,treeDepth=3,treeTopK=1; headWeights=int8,heads=${head}`,
      "--prompts", prompts, "--max-new-tokens", "8", "--repeats", "1", "--json", "--quiet",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout) as { result: { arms: { label: string; method: string; methodOptions: Record<string, unknown>; greedyIdentical: boolean }[] } };
    const eagle = o.result.arms.filter((a) => a.method === "eagle");
    expect(eagle.map((a) => a.label)).toEqual(["eagle", "eagle treeTotal=3 treeDepth=3 treeTopK=1", "eagle heads=head headWeights=int8"]);
    expect(eagle[2]!.methodOptions).toMatchObject({ headWeights: "int8" });
    for (const a of eagle) expect(a.greedyIdentical).toBe(true);
    const bad = cli(["bench", "--model", model, "--eagle-heads", head, "--methods", "eagle", "--eagle-arms", "treeTopk=1"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/"treeTopk" is not an eagle option/);
  });
});
