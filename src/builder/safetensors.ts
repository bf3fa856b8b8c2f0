/**
 * safetensors reading and writing, hand-written. The format is simple: an 8-byte little-endian
 * header length N, then N bytes of JSON `{ name: { dtype, shape, data_offsets: [begin, end] }, ...,
 * "__metadata__"?: {string: string} }`, then the tensor bytes (offsets are relative to the byte
 * after the header), little-endian, row-major.
 *
 * Reading is lazy: only the headers are parsed up front; each `get()` reads that one tensor from
 * its file offset, so a multi-GB checkpoint is never held in memory at once.
 */
import { confineModelPath } from "../engine/confine.js";
import { atomicWriteFileSync, openAtomic, writeAllAt } from "../util/atomic-file.js";
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";
import { join, resolve } from "node:path";
import { BuildError } from "../errors.js";
import type { PreQuantized } from "./prequantized.js";
import { bf16ArrayToF32, f16ArrayToF32, f32ArrayToBf16, f32ArrayToF16 } from "../util/half.js";

export interface WeightTensor {
  dims: number[];
  data: Float32Array;
}

/** Named float tensors, read on demand and converted to float32. */
export interface WeightSource {
  get(name: string): WeightTensor;
  has(name: string): boolean;
  names(): string[];
  /** Shape without reading the data. */
  shape?(name: string): number[];
  /**
   * A linear weight that is already quantized (MatMulNBits blocks of an ONNX export): the builder
   * writes it as it is instead of reading floats (see prequantized.ts). Undefined for float weights.
   */
  quantized?(name: string): PreQuantized | undefined;
  /** The source's own RoPE cos/sin tables [positions, head_dim] (HF half-rotation layout), if it carries them. */
  ropeTables?(positions: number): { cos: Float32Array; sin: Float32Array };
}

type StDtype = "F32" | "F16" | "BF16" | "F64";
const READABLE: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

interface Entry {
  file: string;
  dtype: string;
  shape: number[];
  /** Absolute byte offsets in `file`. */
  begin: number;
  end: number;
}

function parseHeader(file: string): Map<string, Entry> {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (err) {
    throw new BuildError(`Cannot open weights file ${file}: ${(err as Error).message}. Check that it exists and is readable.`, {
      cause: err,
    });
  }
  try {
    const size = fstatSync(fd).size;
    const lenBuf = Buffer.alloc(8);
    if (size < 8 || readSync(fd, lenBuf, 0, 8, 0) !== 8) {
      throw new BuildError(`${file} is too short to be a safetensors file. Re-download it.`);
    }
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen <= 0 || headerLen > 100_000_000 || 8 + headerLen > size) {
      throw new BuildError(
        `${file} does not look like a safetensors file (header length ${headerLen}, file size ${size}). ` +
          `Re-download it; a Git LFS pointer file or a truncated download looks like this.`,
      );
    }
    const headerBuf = Buffer.alloc(headerLen);
    readFully(fd, headerBuf, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(headerBuf.toString("utf8")) as Record<string, unknown>;
    } catch (err) {
      throw new BuildError(`${file} has a corrupt safetensors header (${(err as Error).message}). Re-download it.`, { cause: err });
    }
    const base = 8 + headerLen;
    const out = new Map<string, Entry>();
    for (const [name, raw] of Object.entries(header)) {
      if (name === "__metadata__") continue;
      const info = raw as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
      if (!info || typeof info.dtype !== "string" || !Array.isArray(info.shape) || !Array.isArray(info.data_offsets)) {
        throw new BuildError(`${file}: tensor "${name}" has a malformed header entry. Re-download the file.`);
      }
      const [b, e] = info.data_offsets;
      if (base + e > size || b > e) {
        throw new BuildError(`${file}: tensor "${name}" lies past the end of the file. The download is truncated; fetch it again.`);
      }
      out.set(name, { file, dtype: info.dtype, shape: info.shape.slice(), begin: base + b, end: base + e });
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

function readFully(fd: number, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.byteLength) {
    const n = readSync(fd, buf, done, Math.min(buf.byteLength - done, 1 << 30), position + done);
    if (n <= 0) throw new BuildError(`Unexpected end of file while reading weights. The file is truncated; re-download it.`);
    done += n;
  }
}

/** The `__metadata__` string map of a safetensors file ({} when it has none). */
export function safetensorsMetadata(file: string): Record<string, string> {
  const fd = openSync(file, "r");
  try {
    const lenBuf = Buffer.alloc(8);
    if (readSync(fd, lenBuf, 0, 8, 0) !== 8) throw new BuildError(`${file} is too short to be a safetensors file.`);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen <= 0 || headerLen > 100_000_000 || 8 + headerLen > fstatSync(fd).size) throw new BuildError(`${file} does not look like a safetensors file.`);
    const headerBuf = Buffer.alloc(headerLen);
    readFully(fd, headerBuf, 8);
    const meta = (JSON.parse(headerBuf.toString("utf8")) as { __metadata__?: Record<string, string> }).__metadata__;
    return meta && typeof meta === "object" ? { ...meta } : {};
  } finally {
    closeSync(fd);
  }
}

/** Lazily read tensors from one or more safetensors files. */
export class SafetensorsSource implements WeightSource {
  private readonly entries = new Map<string, Entry>();

  constructor(files: string[]) {
    for (const f of files) {
      for (const [name, entry] of parseHeader(f)) this.entries.set(name, entry);
    }
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  shape(name: string): number[] {
    return this.entry(name).shape.slice();
  }

  /** The stored dtype ("F32", "BF16", ...). */
  dtype(name: string): string {
    return this.entry(name).dtype;
  }

  private entry(name: string): Entry {
    const e = this.entries.get(name);
    if (!e) {
      throw new BuildError(
        `Tensor "${name}" is not in the checkpoint (${this.entries.size} tensors found). ` +
          `The weights do not match config.json's architecture, or a shard is missing; re-download the model.`,
      );
    }
    return e;
  }

  get(name: string): WeightTensor {
    const e = this.entry(name);
    const width = READABLE[e.dtype];
    if (!width) {
      throw new BuildError(
        `Tensor "${name}" is stored as ${e.dtype}; the builder reads F32, F16, BF16 and F64. ` +
          `Use an unquantized checkpoint (float32/float16/bfloat16).`,
      );
    }
    const count = e.shape.reduce((a, b) => a * b, 1);
    if (count * width !== e.end - e.begin) {
      throw new BuildError(
        `Tensor "${name}" in ${e.file} has ${e.end - e.begin} bytes but shape [${e.shape.join(", ")}] as ${e.dtype} needs ` +
          `${count * width}. The file is corrupt; re-download it.`,
      );
    }
    const bytes = new Uint8Array(e.end - e.begin); // fresh buffer: aligned for the typed views below
    const fd = openSync(e.file, "r");
    try {
      readFully(fd, bytes, e.begin);
    } finally {
      closeSync(fd);
    }
    let data: Float32Array;
    switch (e.dtype as StDtype) {
      case "F32":
        data = new Float32Array(bytes.buffer, 0, count);
        break;
      case "F16":
        data = f16ArrayToF32(new Uint16Array(bytes.buffer, 0, count));
        break;
      case "BF16":
        data = bf16ArrayToF32(new Uint16Array(bytes.buffer, 0, count));
        break;
      case "F64":
        data = Float32Array.from(new Float64Array(bytes.buffer, 0, count));
        break;
    }
    return { dims: e.shape.slice(), data };
  }
}

/**
 * Open the safetensors weights of a Hugging Face model directory: `model.safetensors.index.json`
 * (sharded) if present, else `model.safetensors`, else every `*.safetensors` file in the directory.
 */
export function openSafetensorsDir(dirIn: string): SafetensorsSource {
  const dir = resolve(dirIn);
  const index = join(dir, "model.safetensors.index.json");
  if (existsSync(index)) {
    let parsed: { weight_map?: Record<string, string> };
    try {
      parsed = JSON.parse(readFileSync(index, "utf8")) as typeof parsed;
    } catch (err) {
      throw new BuildError(`Could not parse ${index}: ${(err as Error).message}. Re-download it.`, { cause: err });
    }
    if (!parsed.weight_map || typeof parsed.weight_map !== "object") {
      throw new BuildError(`${index} has no "weight_map". Re-download it.`);
    }
    // Each shard named by the index must stay inside the directory (no ../, no links out of it).
    const files = [...new Set(Object.values(parsed.weight_map))].map((f) =>
      confineModelPath(dir, String(f), { source: "model.safetensors.index.json's weight_map" }),
    );
    const missing = files.filter((f) => !existsSync(f));
    if (missing.length > 0) {
      throw new BuildError(
        `The sharded checkpoint in ${dir} is incomplete: missing ${missing.map((f) => f.slice(dir.length + 1)).join(", ")}. ` +
          `Download all shards listed in model.safetensors.index.json.`,
      );
    }
    return new SafetensorsSource(files);
  }
  const single = join(dir, "model.safetensors");
  if (existsSync(single)) return new SafetensorsSource([single]);
  const any = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".safetensors")).sort() : [];
  if (any.length > 0) return new SafetensorsSource(any.map((f) => join(dir, f)));
  const hasBin = existsSync(dir) && readdirSync(dir).some((f) => f.endsWith(".bin") || f.endsWith(".pt") || f.endsWith(".gguf"));
  throw new BuildError(
    `No safetensors weights in ${dir} (looked for model.safetensors.index.json, model.safetensors, *.safetensors). ` +
      (hasBin
        ? `The directory has PyTorch .bin/.pt or GGUF weights, which the builder does not read; download the safetensors version of the model.`
        : `Download the model's *.safetensors files into this directory (e.g. \`huggingface-cli download <repo> --local-dir ${dirIn}\`).`),
  );
}

export interface TensorToWrite {
  name: string;
  dims: number[];
  data: Float32Array;
  /** Stored dtype; default F32. */
  dtype?: "F32" | "F16" | "BF16";
}

function encodeTensor(t: TensorToWrite): Uint8Array {
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (count !== t.data.length) {
    throw new BuildError(`Tensor "${t.name}": ${t.data.length} values do not fill shape [${t.dims.join(", ")}].`);
  }
  const arr = t.dtype === "F16" ? f32ArrayToF16(t.data) : t.dtype === "BF16" ? f32ArrayToBf16(t.data) : t.data;
  return new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
}

/** Write one safetensors file (tensors in the given order). */
export function writeSafetensors(path: string, tensors: TensorToWrite[], metadata: Record<string, string> = { format: "pt" }): void {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const blobs: Uint8Array[] = [];
  let offset = 0;
  for (const t of tensors) {
    const b = encodeTensor(t);
    header[t.name] = { dtype: t.dtype ?? "F32", shape: t.dims, data_offsets: [offset, offset + b.byteLength] };
    blobs.push(b);
    offset += b.byteLength;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned (as the reference writer does).
  json += " ".repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.byteLength));
  // Temp file + rename: an interrupted write leaves the previous file, never a truncated one.
  const f = openAtomic(path);
  try {
    let pos = 0;
    for (const b of [len, headerBytes, ...blobs]) {
      writeAllAt(f.fd, b, pos);
      pos += b.byteLength;
    }
    f.commit();
  } catch (err) {
    f.abort();
    throw err;
  }
}

/**
 * Write a sharded checkpoint the way transformers does: `model-0000i-of-0000n.safetensors` files
 * of at most `maxShardBytes` each (a larger tensor gets its own shard) plus
 * `model.safetensors.index.json`. Returns the shard file names.
 */
export function writeShardedSafetensors(dir: string, tensors: TensorToWrite[], maxShardBytes: number): string[] {
  const shards: TensorToWrite[][] = [];
  let current: TensorToWrite[] = [];
  let bytes = 0;
  const width = (t: TensorToWrite) => (t.dtype === "F16" || t.dtype === "BF16" ? 2 : 4);
  for (const t of tensors) {
    const n = t.data.length * width(t);
    if (current.length > 0 && bytes + n > maxShardBytes) {
      shards.push(current);
      current = [];
      bytes = 0;
    }
    current.push(t);
    bytes += n;
  }
  if (current.length > 0) shards.push(current);
  const pad = (i: number) => String(i).padStart(5, "0");
  const names = shards.map((_, i) => `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`);
  const weightMap: Record<string, string> = {};
  let total = 0;
  shards.forEach((s, i) => {
    writeSafetensors(join(dir, names[i]!), s);
    for (const t of s) {
      weightMap[t.name] = names[i]!;
      total += t.data.length * width(t);
    }
  });
  const index = { metadata: { total_size: total }, weight_map: weightMap };
  writeFileJson(join(dir, "model.safetensors.index.json"), index);
  return names;
}

function writeFileJson(path: string, value: unknown): void {
  atomicWriteFileSync(path, JSON.stringify(value, null, 2) + "\n");
}

/** A WeightSource over tensors already in memory (fixtures, tests). */
export class MemoryWeights implements WeightSource {
  private readonly map = new Map<string, WeightTensor>();
  constructor(tensors: Iterable<{ name: string; dims: number[]; data: Float32Array }> = []) {
    for (const t of tensors) this.set(t.name, t.dims, t.data);
  }
  set(name: string, dims: number[], data: Float32Array): void {
    this.map.set(name, { dims: dims.slice(), data });
  }
  has(name: string): boolean {
    return this.map.has(name);
  }
  names(): string[] {
    return [...this.map.keys()];
  }
  shape(name: string): number[] {
    return this.get(name).dims.slice();
  }
  get(name: string): WeightTensor {
    const t = this.map.get(name);
    if (!t) throw new BuildError(`Tensor "${name}" is not in the weights. The weights do not match the config.`);
    return t;
  }
}
