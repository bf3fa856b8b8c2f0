import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { relErr, run } from "./helpers.js";
import {
  fixtureTensors,
  openSafetensorsDir,
  parseDecoderConfig,
  fixtureConfigJson,
  referenceLogits,
  SafetensorsSource,
  writeSafetensors,
  writeShardedSafetensors,
  MemoryWeights,
  makeFixture,
} from "../../src/builder/index.js";
import { f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from "../../src/util/half.js";
import { BuildError } from "../../src/errors.js";

const root = mkdtempSync(join(tmpdir(), "sd-st-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const values = Float32Array.from([0, 1, -1.5, 3.14159, 1e-3, -65000, 2.5e-6, 123.456]);

describe("safetensors", () => {
  it("writes and reads F32 / F16 / BF16 (converted to float32)", () => {
    const path = join(root, "mixed.safetensors");
    writeSafetensors(path, [
      { name: "a", dims: [2, 4], data: values },
      { name: "b", dims: [8], data: values, dtype: "F16" },
      { name: "c", dims: [4, 2], data: values, dtype: "BF16" },
    ]);
    const buf = readFileSync(path);
    const headerLen = Number(buf.readBigUInt64LE(0));
    expect((8 + headerLen) % 8).toBe(0);
    const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString("utf8"));
    expect(header.b).toEqual({ dtype: "F16", shape: [8], data_offsets: [32, 48] });

    const src = new SafetensorsSource([path]);
    expect(src.names().sort()).toEqual(["a", "b", "c"]);
    expect(src.shape("c")).toEqual([4, 2]);
    expect(src.dtype("c")).toBe("BF16");
    expect(Array.from(src.get("a").data)).toEqual(Array.from(values));
    const f16 = src.get("b").data;
    const bf16 = src.get("c").data;
    for (let i = 0; i < values.length; i++) {
      expect(f16[i]).toBe(f16BitsToF32(f32ToF16Bits(values[i]!)));
      expect(bf16[i]).toBe(new Float32Array(new Uint32Array([f32ToBf16Bits(values[i]!) << 16]).buffer)[0]);
      expect(Math.abs(bf16[i]! - values[i]!)).toBeLessThanOrEqual(Math.abs(values[i]!) * 2 ** -8);
    }
    expect(src.get("c").dims).toEqual([4, 2]);
  });

  it("reads a sharded checkpoint through model.safetensors.index.json, identical to a single file", () => {
    const cfg = parseDecoderConfig(
      fixtureConfigJson({
        arch: "llama", layers: 2, hidden: 32, heads: 2, kvHeads: 1, intermediate: 48, vocab: 64, maxPositions: 32,
        tieEmbeddings: false, bosId: 1, eosId: 2, padId: 0,
      }),
    );
    const tensors = fixtureTensors(cfg, 3);
    const single = join(root, "single");
    const sharded = join(root, "sharded");
    writeSafetensors(join(single, "model.safetensors"), tensors);
    const shards = writeShardedSafetensors(sharded, tensors, 20_000);
    expect(shards.length).toBeGreaterThan(2);
    expect(shards[0]).toBe(`model-00001-of-${String(shards.length).padStart(5, "0")}.safetensors`);
    expect(readdirSync(sharded)).toContain("model.safetensors.index.json");
    const a = openSafetensorsDir(single);
    const b = openSafetensorsDir(sharded);
    expect(b.names().sort()).toEqual(a.names().sort());
    for (const n of a.names()) expect(Array.from(b.get(n).data)).toEqual(Array.from(a.get(n).data));
    const toks = [1, 5, 9, 33];
    expect(Array.from(referenceLogits(cfg, b, toks))).toEqual(Array.from(referenceLogits(cfg, new MemoryWeights(tensors), toks)));

    // A missing shard is reported by name.
    rmSync(join(sharded, shards[1]!));
    expect(() => openSafetensorsDir(sharded)).toThrow(/incomplete: missing model-00002/);
  });

  it("builds from F16 and BF16 checkpoints (reference reads the same rounded weights)", async () => {
    for (const weightDtype of ["F16", "BF16"] as const) {
      const { dir, config } = await makeFixture({ out: join(root, `fx_${weightDtype}`), layers: 1, weightDtype });
      const src = openSafetensorsDir(dir);
      expect(src.dtype("model.norm.weight")).toBe(weightDtype);
      const s = await ort.InferenceSession.create(join(dir, "onnx", "model.onnx"));
      const toks = [1, 2, 3, 200];
      const { logits } = await run(s, config, 1, toks);
      expect(relErr(logits as Float32Array, referenceLogits(config, src, toks))).toBeLessThan(1e-4);
      await s.release();
    }
  });

  it("reports missing, corrupt and unsupported weights clearly", () => {
    const empty = join(root, "empty");
    expect(() => openSafetensorsDir(empty)).toThrow(BuildError);
    const dir = join(root, "bin");
    writeSafetensors(join(dir, "unused.txt.safetensors"), [{ name: "x", dims: [1], data: Float32Array.of(1) }]);
    rmSync(join(dir, "unused.txt.safetensors"));
    writeFileSync(join(dir, "pytorch_model.bin"), "x");
    expect(() => openSafetensorsDir(dir)).toThrow(/PyTorch \.bin/);

    const lfs = join(root, "lfs");
    writeSafetensors(join(lfs, "model.safetensors"), []);
    writeFileSync(join(lfs, "model.safetensors"), "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n");
    expect(() => openSafetensorsDir(lfs)).toThrow(/Git LFS pointer/);

    const trunc = join(root, "trunc");
    writeSafetensors(join(trunc, "model.safetensors"), [{ name: "x", dims: [1000], data: new Float32Array(1000) }]);
    const full = readFileSync(join(trunc, "model.safetensors"));
    writeFileSync(join(trunc, "model.safetensors"), full.subarray(0, full.byteLength - 100));
    expect(() => openSafetensorsDir(trunc)).toThrow(/truncated/);

    const src = new SafetensorsSource([join(root, "mixed.safetensors")]);
    expect(() => src.get("nope")).toThrow(/"nope" is not in the checkpoint/);
  });
});
