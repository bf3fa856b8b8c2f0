/**
 * A tiny raster canvas and PNG encoder for benchmark charts, with no dependency beyond node:zlib.
 *
 * Why hand-rolled: the npm chart/PNG options either pull native code (canvas, sharp: prebuilt
 * binaries per platform) or a full plotting stack for two simple charts. A PNG is a signature, an
 * IHDR chunk, zlib-compressed scanlines in IDAT chunks and an IEND chunk, each chunk with a CRC-32;
 * that and a 5x7 bitmap font (the classic public-domain glyph table, one byte per column, bit 0 at
 * the top) is all the charts need.
 */
import { deflateSync } from "node:zlib";

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO-HDLC, the one PNG uses). */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = (crc ^ 0xffffffff) >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "ascii");
  Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** Encode 8-bit RGBA pixels (row-major, 4 bytes per pixel) as a PNG file. */
export function encodePng(width: number, height: number, rgba: Uint8Array): Buffer {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) throw new RangeError(`bad PNG size ${width}x${height}`);
  if (rgba.length !== width * height * 4) throw new RangeError(`expected ${width * height * 4} RGBA bytes, got ${rgba.length}`);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // colour type: RGBA
  ihdr[10] = 0; // deflate
  ihdr[11] = 0; // filter method 0
  ihdr[12] = 0; // no interlace
  const stride = width * 4;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (stride + 1)] = 0; // filter type None
    Buffer.from(rgba.buffer, rgba.byteOffset + y * stride, stride).copy(raw, y * (stride + 1) + 1);
  }
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk("IHDR", ihdr), chunk("IDAT", deflateSync(raw, { level: 9 })), chunk("IEND", new Uint8Array(0))]);
}

// 5x7 glyphs for ASCII 32..126: five column bytes each, bit 0 = top row (bit 7: descenders of g j p q y , ;).
const FONT_5X7 = [
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x5f, 0x00, 0x00, 0x00, 0x07, 0x00, 0x07, 0x00, 0x14, 0x7f, 0x14, 0x7f, 0x14,
  0x24, 0x2a, 0x7f, 0x2a, 0x12, 0x23, 0x13, 0x08, 0x64, 0x62, 0x36, 0x49, 0x55, 0x22, 0x50, 0x00, 0x05, 0x03, 0x00, 0x00,
  0x00, 0x1c, 0x22, 0x41, 0x00, 0x00, 0x41, 0x22, 0x1c, 0x00, 0x08, 0x2a, 0x1c, 0x2a, 0x08, 0x08, 0x08, 0x3e, 0x08, 0x08,
  0x00, 0x80, 0x60, 0x00, 0x00, 0x08, 0x08, 0x08, 0x08, 0x08, 0x00, 0x60, 0x60, 0x00, 0x00, 0x20, 0x10, 0x08, 0x04, 0x02,
  0x3e, 0x51, 0x49, 0x45, 0x3e, 0x00, 0x42, 0x7f, 0x40, 0x00, 0x42, 0x61, 0x51, 0x49, 0x46, 0x21, 0x41, 0x45, 0x4b, 0x31,
  0x18, 0x14, 0x12, 0x7f, 0x10, 0x27, 0x45, 0x45, 0x45, 0x39, 0x3c, 0x4a, 0x49, 0x49, 0x30, 0x01, 0x71, 0x09, 0x05, 0x03,
  0x36, 0x49, 0x49, 0x49, 0x36, 0x06, 0x49, 0x49, 0x29, 0x1e, 0x00, 0x36, 0x36, 0x00, 0x00, 0x00, 0x80, 0x6c, 0x00, 0x00,
  0x08, 0x14, 0x22, 0x41, 0x00, 0x14, 0x14, 0x14, 0x14, 0x14, 0x00, 0x41, 0x22, 0x14, 0x08, 0x02, 0x01, 0x51, 0x09, 0x06,
  0x32, 0x49, 0x79, 0x41, 0x3e, 0x7e, 0x11, 0x11, 0x11, 0x7e, 0x7f, 0x49, 0x49, 0x49, 0x36, 0x3e, 0x41, 0x41, 0x41, 0x22,
  0x7f, 0x41, 0x41, 0x22, 0x1c, 0x7f, 0x49, 0x49, 0x49, 0x41, 0x7f, 0x09, 0x09, 0x09, 0x01, 0x3e, 0x41, 0x49, 0x49, 0x7a,
  0x7f, 0x08, 0x08, 0x08, 0x7f, 0x00, 0x41, 0x7f, 0x41, 0x00, 0x20, 0x40, 0x41, 0x3f, 0x01, 0x7f, 0x08, 0x14, 0x22, 0x41,
  0x7f, 0x40, 0x40, 0x40, 0x40, 0x7f, 0x02, 0x0c, 0x02, 0x7f, 0x7f, 0x04, 0x08, 0x10, 0x7f, 0x3e, 0x41, 0x41, 0x41, 0x3e,
  0x7f, 0x09, 0x09, 0x09, 0x06, 0x3e, 0x41, 0x51, 0x21, 0x5e, 0x7f, 0x09, 0x19, 0x29, 0x46, 0x46, 0x49, 0x49, 0x49, 0x31,
  0x01, 0x01, 0x7f, 0x01, 0x01, 0x3f, 0x40, 0x40, 0x40, 0x3f, 0x1f, 0x20, 0x40, 0x20, 0x1f, 0x3f, 0x40, 0x38, 0x40, 0x3f,
  0x63, 0x14, 0x08, 0x14, 0x63, 0x07, 0x08, 0x70, 0x08, 0x07, 0x61, 0x51, 0x49, 0x45, 0x43, 0x00, 0x7f, 0x41, 0x41, 0x00,
  0x02, 0x04, 0x08, 0x10, 0x20, 0x00, 0x41, 0x41, 0x7f, 0x00, 0x04, 0x02, 0x01, 0x02, 0x04, 0x40, 0x40, 0x40, 0x40, 0x40,
  0x00, 0x01, 0x02, 0x04, 0x00, 0x20, 0x54, 0x54, 0x54, 0x78, 0x7f, 0x48, 0x44, 0x44, 0x38, 0x38, 0x44, 0x44, 0x44, 0x20,
  0x38, 0x44, 0x44, 0x48, 0x7f, 0x38, 0x54, 0x54, 0x54, 0x18, 0x08, 0x7e, 0x09, 0x01, 0x02, 0x18, 0xa4, 0xa4, 0xa4, 0x7c,
  0x7f, 0x08, 0x04, 0x04, 0x78, 0x00, 0x44, 0x7d, 0x40, 0x00, 0x40, 0x80, 0x84, 0x7d, 0x00, 0x7f, 0x10, 0x28, 0x44, 0x00,
  0x00, 0x41, 0x7f, 0x40, 0x00, 0x7c, 0x04, 0x18, 0x04, 0x78, 0x7c, 0x08, 0x04, 0x04, 0x78, 0x38, 0x44, 0x44, 0x44, 0x38,
  0xfc, 0x24, 0x24, 0x24, 0x18, 0x18, 0x24, 0x24, 0x18, 0xfc, 0x7c, 0x08, 0x04, 0x04, 0x08, 0x48, 0x54, 0x54, 0x54, 0x20,
  0x04, 0x3f, 0x44, 0x40, 0x20, 0x3c, 0x40, 0x40, 0x20, 0x7c, 0x1c, 0x20, 0x40, 0x20, 0x1c, 0x3c, 0x40, 0x30, 0x40, 0x3c,
  0x44, 0x28, 0x10, 0x28, 0x44, 0x1c, 0xa0, 0xa0, 0xa0, 0x7c, 0x44, 0x64, 0x54, 0x4c, 0x44, 0x00, 0x08, 0x36, 0x41, 0x00,
  0x00, 0x00, 0x7f, 0x00, 0x00, 0x00, 0x41, 0x36, 0x08, 0x00, 0x08, 0x04, 0x08, 0x10, 0x08,
];

export type Rgba = readonly [number, number, number, number?];

/** An RGBA raster with the few primitives the charts use. */
export class Canvas {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;

  constructor(width: number, height: number, background: Rgba = [255, 255, 255, 255]) {
    this.width = Math.round(width);
    this.height = Math.round(height);
    this.data = new Uint8Array(this.width * this.height * 4);
    this.fillRect(0, 0, this.width, this.height, background);
  }

  /** Blend one pixel (alpha 0..255). */
  setPixel(x: number, y: number, c: Rgba): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * 4;
    const a = (c[3] ?? 255) / 255;
    const d = this.data;
    d[i] = Math.round(c[0] * a + d[i]! * (1 - a));
    d[i + 1] = Math.round(c[1] * a + d[i + 1]! * (1 - a));
    d[i + 2] = Math.round(c[2] * a + d[i + 2]! * (1 - a));
    d[i + 3] = 255;
  }

  fillRect(x: number, y: number, w: number, h: number, c: Rgba): void {
    const x0 = Math.max(0, Math.round(x));
    const y0 = Math.max(0, Math.round(y));
    const x1 = Math.min(this.width, Math.round(x + w));
    const y1 = Math.min(this.height, Math.round(y + h));
    for (let yy = y0; yy < y1; yy++) for (let xx = x0; xx < x1; xx++) this.setPixel(xx, yy, c);
  }

  /** A line of the given thickness (Bresenham, square pen); `dash` = [on, off] pixels. */
  line(x0: number, y0: number, x1: number, y1: number, c: Rgba, thickness = 1, dash?: [number, number]): void {
    x0 = Math.round(x0);
    y0 = Math.round(y0);
    x1 = Math.round(x1);
    y1 = Math.round(y1);
    const dx = Math.abs(x1 - x0);
    const dy = -Math.abs(y1 - y0);
    const sx = x0 < x1 ? 1 : -1;
    const sy = y0 < y1 ? 1 : -1;
    let err = dx + dy;
    const half = Math.floor((thickness - 1) / 2);
    let step = 0;
    for (;;) {
      const on = !dash || step % (dash[0] + dash[1]) < dash[0];
      if (on) this.fillRect(x0 - half, y0 - half, thickness, thickness, c);
      step++;
      if (x0 === x1 && y0 === y1) break;
      const e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x0 += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y0 += sy;
      }
    }
  }

  /** Width in pixels of `text` at this scale (6 columns per character: 5 + 1 space). */
  static textWidth(text: string, scale = 1): number {
    return Math.max(0, text.length * 6 - 1) * scale;
  }

  /** Draw text with its top-left corner at (x, y); `align` shifts it so x is the left, centre or right edge. */
  text(x: number, y: number, text: string, c: Rgba, scale = 1, align: "left" | "center" | "right" = "left"): void {
    const w = Canvas.textWidth(text, scale);
    let cx = Math.round(align === "left" ? x : align === "center" ? x - w / 2 : x - w);
    for (const ch of text) {
      let code = ch.charCodeAt(0);
      if (ch === "×") code = "x".charCodeAt(0);
      if (code < 32 || code > 126) code = "?".charCodeAt(0);
      const g = (code - 32) * 5;
      for (let col = 0; col < 5; col++) {
        const bits = FONT_5X7[g + col]!;
        for (let row = 0; row < 8; row++) if (bits & (1 << row)) this.fillRect(cx + col * scale, y + row * scale, scale, scale, c);
      }
      cx += 6 * scale;
    }
  }

  /** Vertical text (rotated 90 degrees counter-clockwise), bottom-left corner at (x, y). */
  textVertical(x: number, y: number, text: string, c: Rgba, scale = 1): void {
    let cy = Math.round(y);
    for (const ch of text) {
      let code = ch.charCodeAt(0);
      if (code < 32 || code > 126) code = "?".charCodeAt(0);
      const g = (code - 32) * 5;
      for (let col = 0; col < 5; col++) {
        const bits = FONT_5X7[g + col]!;
        for (let row = 0; row < 8; row++) if (bits & (1 << row)) this.fillRect(x + row * scale, cy - (col + 1) * scale, scale, scale, c);
      }
      cy -= 6 * scale;
    }
  }

  /** Split `text` into lines no wider than `maxWidth` pixels at this scale (breaking at spaces). */
  static wrap(text: string, maxWidth: number, scale = 1): string[] {
    const maxChars = Math.max(1, Math.floor((maxWidth / scale + 1) / 6));
    const lines: string[] = [];
    let cur = "";
    for (const word of text.split(/\s+/)) {
      if (cur === "") cur = word;
      else if (cur.length + 1 + word.length <= maxChars) cur += ` ${word}`;
      else {
        lines.push(cur);
        cur = word;
      }
      while (cur.length > maxChars) {
        lines.push(cur.slice(0, maxChars));
        cur = cur.slice(maxChars);
      }
    }
    if (cur) lines.push(cur);
    return lines;
  }

  toPng(): Buffer {
    return encodePng(this.width, this.height, this.data);
  }
}
