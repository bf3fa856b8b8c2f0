/**
 * The GGUF writer (llama.cpp side-by-side): node-llama-cpp's own GGUF parser reads our file back
 * (metadata, tensor names, shapes, types), and the Q4_0 / Q8_0 blocks hold our quantizer's codes in
 * ggml's layout. (Loading it into llama.cpp and decoding is scripts/peer-llama-cpp.mjs.)
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { readGgufFileInfo } from "node-llama-cpp";
import { describe, expect, it } from "vitest";
import { ggufQuantize, ggufVocabFromTokenizerJson, writeLlamaGguf } from "../../src/bench/gguf.js";
import { openSafetensorsDir, quantizeMatrix, readDecoderConfig } from "../../src/builder/index.js";
import { f16BitsToF32 } from "../../src/util/half.js";
import { fixture, tempDir } from "../helpers/fixtures.js";

describe("GGUF writer", () => {
  it("writes a llama GGUF that node-llama-cpp's parser reads back", async () => {
    const dir = await fixture({ layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 320, seed: 2 });
    const cfg = readDecoderConfig(dir);
    const tok = JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8"));
    const vocab = ggufVocabFromTokenizerJson(tok, { vocabSize: 320, bos: 1, eos: 2, pad: 0 });
    for (const q of ["Q4_0", "Q8_0"] as const) {
      const file = join(tempDir("gguf"), `m.${q}.gguf`);
      const res = writeLlamaGguf(file, cfg, openSafetensorsDir(dir), q, vocab);
      expect(res.tensors).toBe(3 + 9 * 2);
      const info = await readGgufFileInfo(file, { readTensorInfo: true, logWarnings: false });
      const md = info.metadata as unknown as Record<string, Record<string, unknown>>;
      expect(md.general!.architecture).toBe("llama");
      expect((md.llama as Record<string, unknown>).block_count).toBe(2);
      expect(((md.llama as Record<string, Record<string, unknown>>).attention!).head_count_kv).toBe(2);
      const tensors = info.fullTensorInfo ?? info.tensorInfo ?? [];
      const q0 = tensors.find((t) => t.name === "blk.0.attn_q.weight")!;
      expect(q0.dimensions.map(Number)).toEqual([64, 64]);
      expect(Number(q0.ggmlType)).toBe(q === "Q4_0" ? 2 : 8);
      expect(Number(tensors.find((t) => t.name === "token_embd.weight")!.ggmlType)).toBe(0);
      expect(Number(tensors.find((t) => t.name === "output.weight")!.ggmlType)).toBe(q === "Q4_0" ? 2 : 8);
    }
  });

  it("packs Q4_0 as (j, j+16) nibbles and Q8_0 as int8, with our quantizer's codes and float16 d", () => {
    const w = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i * 0.7) * (i % 5));
    const m4 = quantizeMatrix(w, 2, 32, 4, 32);
    const b4 = ggufQuantize(w, 2, 32, "Q4_0");
    expect(b4.length).toBe(2 * 18);
    for (let r = 0; r < 2; r++) {
      expect(f16BitsToF32(b4.readUInt16LE(r * 18))).toBe(m4.scales[r]);
      for (let j = 0; j < 32; j++) {
        const ours = (m4.packed[r * 16 + (j >> 1)]! >> ((j & 1) * 4)) & 15;
        const byte = b4[r * 18 + 2 + (j % 16)]!;
        expect(j < 16 ? byte & 15 : byte >> 4).toBe(ours);
      }
    }
    const m8 = quantizeMatrix(w, 2, 32, 8, 32);
    const b8 = ggufQuantize(w, 2, 32, "Q8_0");
    expect(b8.length).toBe(2 * 34);
    for (let j = 0; j < 32; j++) expect(b8.readInt8(2 + j)).toBe(m8.packed[j]! - 128);
    expect(() => ggufQuantize(new Float32Array(48), 1, 48, "Q4_0")).toThrow(/multiple of 32/);
  });
});
