/**
 * The surfaces of the export rebuild: `spec-decode build --from-onnx` (flags in CLI words) and MCP
 * `build_model {fromOnnx: true}` (into our cache), with model_info saying why an export that can
 * only verify token by token should be rebuilt, and saying nothing once it is.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, ensureBuilt } from "../helpers/dist.js";
import { fixture, tempDir } from "../helpers/fixtures.js";
import { writeGenaiExport } from "../../src/builder/export-fixtures.js";
import { callErr, callOk, connectInMemory } from "../mcp/helpers.js";

const MHA = { layers: 2, hidden: 64, heads: 4, kvHeads: 4, vocab: 320, seed: 8 };

function cli(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 120_000, env });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("spec-decode build --from-onnx", () => {
  let exp: string;
  let work: string;
  beforeAll(async () => {
    ensureBuilt();
    work = tempDir("from-onnx-cli");
    exp = writeGenaiExport(await fixture(MHA), join(work, "export"), { attention: "mha" });
  });

  it("rebuilds into --out (or our cache) and prints what it recognised", () => {
    const r = cli(["build", "--from-onnx", exp, "--out", join(work, "out"), "--json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const res = JSON.parse(r.stdout) as { dir: string; family: string; files: string[] };
    expect(res.dir).toBe(join(work, "out"));
    expect(res.family).toMatch(/MultiHeadAttention \+ RotaryEmbedding/);
    expect(existsSync(join(res.dir, "onnx", "model.onnx"))).toBe(true);

    const cache = join(work, "cache");
    const d = cli(["build", "--from-onnx", exp], { ...process.env, SPEC_DECODE_CACHE: cache });
    expect(d.code).toBe(0);
    expect(d.stdout).toMatch(new RegExp(`rebuilt .*model\\.onnx \\(MultiHeadAttention.*\\) into ${cache}/from-onnx/export-[0-9a-f]{12}`));
  });

  it("info says why and how to rebuild an export that verifies token by token", () => {
    const r = cli(["info", "--model", exp]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/rebuild: .*one token per forward.*spec-decode build --from-onnx/);
  });

  it("rejects flags that do not apply, in CLI words", () => {
    const q = cli(["build", "--from-onnx", exp, "--quantize", "int4"]);
    expect(q.code).not.toBe(0);
    expect(q.stderr).toMatch(/--quantize does not apply to --from-onnx/);
    const both = cli(["build", "--from-onnx", exp, "--model", exp]);
    expect(both.stderr).toMatch(/either --model .* or --from-onnx/);
    const out = cli(["build", "--model", exp, "--out", join(work, "x")]);
    expect(out.stderr).toMatch(/--out only applies with --from-onnx/);
  });
});

describe("MCP build_model {fromOnnx: true}", () => {
  const root = tempDir("from-onnx-mcp");
  const cache = join(root, "cache");
  const saved = process.env.SPEC_DECODE_CACHE;
  let exp: string;
  beforeAll(async () => {
    process.env.SPEC_DECODE_CACHE = cache;
    exp = writeGenaiExport(await fixture(MHA), join(root, "models", "genai-mha"), { attention: "mha" });
  });
  afterAll(() => {
    if (saved === undefined) delete process.env.SPEC_DECODE_CACHE;
    else process.env.SPEC_DECODE_CACHE = saved;
  });

  it("model_info advises the rebuild, build_model does it into our cache, model_info is then content", async () => {
    const { client } = await connectInMemory({ roots: [join(root, "models"), cache] });
    const before = (await callOk(client, "model_info", { model: exp })) as { multiTokenWithPast: boolean | null; rebuild: string | null };
    expect(before.multiTokenWithPast).toBe(false);
    expect(before.rebuild).toMatch(/one token per forward.*build_model \{model: .*fromOnnx: true\}/s);

    const built = (await callOk(client, "build_model", { model: exp, fromOnnx: true, earlyExit: [1] })) as { dir: string; files: string[] };
    expect(built.dir.startsWith(join(cache, "from-onnx"))).toBe(true);
    expect(built.files.some((f) => f.endsWith("early_exit_1.onnx"))).toBe(true);
    const after = (await callOk(client, "model_info", { model: built.dir })) as { multiTokenWithPast: boolean | null; rebuild: string | null; hasTreeMask: boolean };
    expect(after).toMatchObject({ multiTokenWithPast: true, rebuild: null, hasTreeMask: true });

    expect(await callErr(client, "build_model", { model: exp, fromOnnx: true, quantize: "int4" })).toMatch(/quantize does not apply with fromOnnx/);
    await client.close();
  });
});
