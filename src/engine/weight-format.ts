/**
 * What an ONNX decoder's weights are (float32, float16, int4 MatMulNBits, int8 MatMulInteger,
 * nf4 MatMulBnb4 ...) and how many weight bytes one decode step streams, read from the file
 * without loading it: the graph's nodes are decoded (they are small) and each initializer's header
 * (name, dims, data type) is read while its data is skipped, so a multi-GB model costs a few
 * reads. onnxruntime-node exposes neither.
 *
 * Bytes per token: every initializer a one-token forward reads in full (all of them but the
 * gathered tables: the embedding and RoPE tables, of which one row is read per token, counted as
 * one row). This is the memory traffic that bounds decoding speed on a CPU (the roofline).
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;

/** Bits per element of ONNX TensorProto data types (uint4/int4 = 4). */
const ELEM_BITS: Record<number, number> = { 1: 32, 2: 8, 3: 8, 4: 16, 5: 16, 6: 32, 7: 64, 9: 8, 10: 16, 11: 64, 12: 32, 13: 64, 16: 16, 17: 8, 18: 8, 19: 8, 20: 8, 21: 4, 22: 4 };
const ELEM_NAME: Record<number, string> = { 1: "float32", 2: "uint8", 3: "int8", 10: "float16", 11: "float64", 16: "bfloat16", 21: "uint4", 22: "int4" };

export interface WeightFormat {
  /** Short description, e.g. "int4 (MatMulNBits, block 32)" or "float32"; the dominant format first when mixed. */
  format: string;
  /** Share of the streamed weight bytes per format (e.g. { "int4 (MatMulNBits, block 32)": 0.86, float32: 0.14 }). */
  shares: Record<string, number>;
  /** Weight bytes one decode step reads (see the module comment). */
  bytesPerToken: number;
  /** All initializer bytes (the file's weights). */
  totalBytes: number;
}

interface InitHeader {
  name: string;
  dims: number[];
  dataType: number;
}

class FileReader {
  private readonly fd: number;
  readonly size: number;
  constructor(path: string) {
    this.fd = openSync(path, "r");
    this.size = fstatSync(this.fd).size;
  }
  close(): void {
    closeSync(this.fd);
  }
  bytes(pos: number, len: number): Buffer {
    const b = Buffer.alloc(len);
    let done = 0;
    while (done < len) {
      const n = readSync(this.fd, b, done, len - done, pos + done);
      if (n === 0) throw new Error("truncated ONNX file");
      done += n;
    }
    return b;
  }
  /** [value, bytes used] of the varint at `pos`. */
  varint(pos: number): [number, number] {
    const b = this.bytes(pos, Math.min(10, this.size - pos));
    let v = 0;
    let mul = 1;
    for (let i = 0; i < b.length; i++) {
      v += (b[i]! & 0x7f) * mul;
      if (b[i]! < 0x80) return [v, i + 1];
      mul *= 128;
    }
    throw new Error("bad varint in ONNX file");
  }
  /** Walk the fields of a message in [start, end): cb(field, wire, valueStart, valueLen or varint value). */
  fields(start: number, end: number, cb: (field: number, wire: number, at: number, lenOrValue: number) => void): void {
    let pos = start;
    while (pos < end) {
      const [tag, tl] = this.varint(pos);
      pos += tl;
      const field = Math.floor(tag / 8);
      const wire = tag & 7;
      if (wire === 0) {
        const [v, l] = this.varint(pos);
        cb(field, wire, pos, v);
        pos += l;
      } else if (wire === 1) {
        cb(field, wire, pos, 8);
        pos += 8;
      } else if (wire === 5) {
        cb(field, wire, pos, 4);
        pos += 4;
      } else if (wire === 2) {
        const [len, l] = this.varint(pos);
        pos += l;
        cb(field, wire, pos, len);
        pos += len;
      } else throw new Error(`unsupported wire type ${wire} in ONNX file`);
    }
  }
}

function readInitHeader(r: FileReader, start: number, len: number): InitHeader {
  const h: InitHeader = { name: "", dims: [], dataType: 0 };
  r.fields(start, start + len, (field, wire, at, v) => {
    if (field === 1) {
      if (wire === 0) h.dims.push(v);
      else if (wire === 2) {
        // packed dims
        let p = at;
        while (p < at + v) {
          const [d, l] = r.varint(p);
          h.dims.push(d);
          p += l;
        }
      }
    } else if (field === 2 && wire === 0) h.dataType = v;
    else if (field === 8 && wire === 2) h.name = r.bytes(at, v).toString("utf8");
  });
  return h;
}

function bytesOf(h: InitHeader): number {
  const n = h.dims.reduce((a, b) => a * b, 1);
  return Math.ceil((n * (ELEM_BITS[h.dataType] ?? 32)) / 8);
}

/** Read the weight format and bytes per token of an ONNX file (see the module comment). */
export function readWeightFormat(path: string): WeightFormat {
  const r = new FileReader(path);
  try {
    const nodes: onnxProto.onnx.NodeProto[] = [];
    const inits: InitHeader[] = [];
    r.fields(0, r.size, (field, wire, at, len) => {
      if (field !== 7 || wire !== 2) return;
      r.fields(at, at + len, (gf, gw, gat, glen) => {
        if (gw !== 2) return;
        if (gf === 1) nodes.push(onnx.NodeProto.decode(r.bytes(gat, glen)));
        else if (gf === 5) inits.push(readInitHeader(r, gat, glen));
      });
    });
    const consumers = new Map<string, { node: onnxProto.onnx.NodeProto; index: number }[]>();
    for (const node of nodes) {
      node.input.forEach((name, index) => {
        const list = consumers.get(name) ?? [];
        list.push({ node, index });
        consumers.set(name, list);
      });
    }
    const intAttr = (n: onnxProto.onnx.NodeProto, name: string, dflt: number): number => {
      const a = n.attribute.find((x) => x.name === name);
      return a ? Number(a.i) : dflt;
    };
    const shares = new Map<string, number>();
    let perToken = 0;
    let total = 0;
    for (const h of inits) {
      const bytes = bytesOf(h);
      total += bytes;
      const uses = consumers.get(h.name) ?? [];
      if (uses.length === 0) continue;
      // Read one row per token: Gather tables, and the rotary cos/sin caches of GroupQueryAttention
      // (inputs 7, 8) and RotaryEmbedding (inputs 2, 3), indexed by position.
      const gathered = uses.every(
        (u) =>
          ((u.node.opType === "Gather" || u.node.opType === "GatherBlockQuantized") && u.index === 0) ||
          (u.node.opType === "GroupQueryAttention" && (u.index === 7 || u.index === 8)) ||
          (u.node.opType === "RotaryEmbedding" && (u.index === 2 || u.index === 3)),
      );
      if (gathered) {
        perToken += h.dims.length > 0 && h.dims[0]! > 0 ? bytes / h.dims[0]! : bytes;
        continue;
      }
      perToken += bytes;
      const u = uses[0]!;
      let kind: string;
      if (u.node.opType === "MatMulNBits") kind = `int${intAttr(u.node, "bits", 4)} (MatMulNBits, block ${intAttr(u.node, "block_size", 0)})`;
      else if (u.node.opType === "MatMulBnb4") kind = `${intAttr(u.node, "quant_type", 1) === 1 ? "nf4" : "fp4"} (MatMulBnb4, block ${intAttr(u.node, "block_size", 0)})`;
      else if (u.node.opType === "MatMulInteger" || u.node.opType === "DynamicQuantizeMatMul") kind = `${ELEM_NAME[h.dataType] ?? "int8"} (${u.node.opType})`;
      else kind = ELEM_NAME[h.dataType] ?? `type ${h.dataType}`;
      shares.set(kind, (shares.get(kind) ?? 0) + bytes);
    }
    const sorted = [...shares].sort((a, b) => b[1] - a[1]);
    const sum = sorted.reduce((s, [, b]) => s + b, 0) || 1;
    const shareObj: Record<string, number> = {};
    for (const [k, b] of sorted) shareObj[k] = Math.round((b / sum) * 1000) / 1000;
    const format =
      sorted.length === 0
        ? "unknown"
        : sorted.length === 1
          ? sorted[0]![0]
          : sorted
              .filter(([, b], i) => i === 0 || b / sum >= 0.01)
              .map(([k, b]) => `${k} ${Math.round((b / sum) * 100)}%`)
              .join(" + ");
    return { format, shares: shareObj, bytesPerToken: Math.round(perToken), totalBytes: total };
  } finally {
    r.close();
  }
}
