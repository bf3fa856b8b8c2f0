import { expect } from "vitest";
import { crc32 } from "../../src/bench/png.js";
import type { TwinOptions } from "../../src/bench/twin.js";

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Parse the chunks of a PNG, checking every CRC. */
export function pngChunks(png: Buffer): { type: string; data: Buffer }[] {
  expect(png.subarray(0, 8).equals(SIGNATURE)).toBe(true);
  const out: { type: string; data: Buffer }[] = [];
  let off = 8;
  while (off < png.length) {
    const len = png.readUInt32BE(off);
    const type = png.toString("ascii", off + 4, off + 8);
    const data = png.subarray(off + 8, off + 8 + len);
    expect(png.readUInt32BE(off + 8 + len)).toBe(crc32(png.subarray(off + 4, off + 8 + len)));
    out.push({ type, data });
    off += 12 + len;
  }
  return out;
}

// A tiny twin (hidden 128, 4 layers): the same construction as the ~100M benchmark pair.
export const TINY_TWIN: Omit<TwinOptions, "out"> = {
  hidden: 128,
  layers: 4,
  heads: 4,
  kvHeads: 2,
  intermediate: 256,
  vocab: 512,
  draftHidden: 64,
  draftIntermediate: 128,
  maxPositions: 512,
  safetensors: false,
};
