import { inflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { renderBenchChart } from "../../src/bench/chart.js";
import { Canvas, crc32, encodePng } from "../../src/bench/png.js";
import { pngChunks } from "./helpers.js";

describe("PNG encoder", () => {
  it("CRC-32 check value", () => {
    expect(crc32(Buffer.from("123456789"))).toBe(0xcbf43926);
  });

  it("writes signature, IHDR, IDAT, IEND and round-trips the pixels", () => {
    const rgba = new Uint8Array(3 * 2 * 4);
    for (let i = 0; i < rgba.length; i++) rgba[i] = (i * 37) & 0xff;
    const png = encodePng(3, 2, rgba);
    const chunks = pngChunks(png);
    expect(chunks.map((c) => c.type)).toEqual(["IHDR", "IDAT", "IEND"]);
    const ihdr = chunks[0]!.data;
    expect(ihdr.readUInt32BE(0)).toBe(3);
    expect(ihdr.readUInt32BE(4)).toBe(2);
    expect([...ihdr.subarray(8)]).toEqual([8, 6, 0, 0, 0]);
    const raw = inflateSync(chunks[1]!.data);
    expect(raw.length).toBe(2 * (1 + 12));
    expect([...raw.subarray(1, 13)]).toEqual([...rgba.subarray(0, 12)]);
    expect([...raw.subarray(14, 26)]).toEqual([...rgba.subarray(12, 24)]);
  });

  it("draws text with the bitmap font", () => {
    const c = new Canvas(40, 10, [255, 255, 255, 255]);
    c.text(1, 1, "1.5x", [0, 0, 0, 255]);
    const dark = [...Array(c.width * c.height).keys()].filter((i) => c.data[i * 4] === 0).length;
    expect(dark).toBeGreaterThan(10);
    expect(Canvas.textWidth("abc", 2)).toBe(34);
    expect(Canvas.wrap("aaa bbb ccc", 6 * 7, 1)).toEqual(["aaa bbb", "ccc"]);
  });

  it("renders a bench chart (bars and K sweep) as a valid PNG", () => {
    const png = renderBenchChart({
      title: "Speedup",
      subtitle: "test",
      bars: [
        { label: "baseline", speedup: 1 },
        { label: "draft", speedup: 2.1, low: 1.9, high: 2.3, ideal: 2.5 },
      ],
      sweep: { title: "K", measured: [{ k: 1, speedup: 1.5, low: 1.4, high: 1.6 }, { k: 4, speedup: 2.2 }], predicted: [1, 2, 3, 4].map((k) => ({ k, speedup: 1 + k / 3 })) },
      footnote: "synthetic",
    });
    const chunks = pngChunks(png);
    expect(chunks[0]!.type).toBe("IHDR");
    expect(chunks[0]!.data.readUInt32BE(0)).toBe(960);
  });
});
