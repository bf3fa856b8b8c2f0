/**
 * Cheap checks of an .onnx file without loading it: the protobuf is walked field by field with
 * positional reads (weights are skipped by their length, never read), which finds
 *  - truncation: a field whose length runs past the end of the file (an interrupted write);
 *  - the external-data references of the graph's initializers (`location`, `offset`, `length`),
 *    which are confined to the model directory (see confine.ts) and checked against the size of
 *    the data file they point into.
 * Hand-written because onnxruntime loads the whole graph to tell (slow, memory, and it follows
 * `location` wherever it points), and the onnx-proto decoder needs the whole file in memory.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { ModelLoadError } from "../errors.js";
import { confineModelPath } from "./confine.js";

export interface ExternalDataRef {
  tensor: string;
  location: string;
  offset: number;
  length: number;
}

class Reader {
  private readonly buf = Buffer.alloc(16);
  constructor(
    readonly fd: number,
    readonly size: number,
    readonly path: string,
  ) {}

  truncated(what: string): never {
    throw new ModelLoadError(
      `spec-decode could not load ${this.path}: it is truncated or not an ONNX file (${what}; the file has ${this.size} bytes). ` +
        `It was probably cut by an interrupted write or download: rebuild it (\`spec-decode build\`) or download it again.`,
    );
  }

  /** [value, bytes] of the varint at `pos`. */
  varint(pos: number, end: number): [number, number] {
    const n = readSync(this.fd, this.buf, 0, Math.min(10, end - pos), pos);
    let v = 0;
    let mul = 1;
    for (let i = 0; i < n; i++) {
      const b = this.buf[i]!;
      v += (b & 0x7f) * mul;
      if (b < 0x80) return [v, i + 1];
      mul *= 128;
    }
    return this.truncated(`a varint at byte ${pos} runs past the end`);
  }

  /** Visit the fields in [start, end): fn(field, wire, valueStart, valueEnd). */
  fields(start: number, end: number, fn: (field: number, wire: number, vStart: number, vEnd: number) => void): void {
    let pos = start;
    while (pos < end) {
      const [tag, tl] = this.varint(pos, end);
      const field = Math.floor(tag / 8);
      const wire = tag & 7;
      pos += tl;
      let vStart = pos;
      let vEnd: number;
      if (wire === 0) vEnd = pos + this.varint(pos, end)[1];
      else if (wire === 1) vEnd = pos + 8;
      else if (wire === 5) vEnd = pos + 4;
      else if (wire === 2) {
        const [len, l] = this.varint(pos, end);
        vStart = pos + l;
        vEnd = vStart + len;
      } else return this.truncated(`unknown wire type ${wire} at byte ${pos}`);
      if (vEnd > end) this.truncated(`field ${field} at byte ${pos} needs ${vEnd - end} more bytes`);
      fn(field, wire, vStart, vEnd);
      pos = vEnd;
    }
  }

  bytes(start: number, end: number): Buffer {
    const b = Buffer.alloc(end - start);
    readSync(this.fd, b, 0, end - start, start);
    return b;
  }
}

/**
 * The model's metadata_props (ModelProto field 14), read without loading the graph or weights
 * (onnxruntime-node does not expose custom metadata). The one reader: the session reads the
 * builder's `spec_decode.*` props with it, and builder/derived-onnx.ts its rebuild stamps.
 */
export function readOnnxMetadataProps(file: string): Record<string, string> {
  const fd = openSync(file, "r");
  try {
    const size = fstatSync(fd).size;
    const r = new Reader(fd, size, file);
    const out: Record<string, string> = {};
    r.fields(0, size, (field, wire, s, e) => {
      if (field !== 14 || wire !== 2 || e - s > 1 << 20) return;
      const entry = r.bytes(s, e);
      let key = "";
      let value = "";
      r.fields(s, e, (ef, ew, es, ee) => {
        if (ew !== 2) return;
        const str = entry.subarray(es - s, ee - s).toString("utf8");
        if (ef === 1) key = str;
        else if (ef === 2) value = str;
      });
      out[key] = value;
    });
    return out;
  } finally {
    closeSync(fd);
  }
}

/** Walk `file`; returns its external-data references. Throws ModelLoadError when it is truncated. */
export function readOnnxExternalData(file: string): ExternalDataRef[] {
  const fd = openSync(file, "r");
  try {
    const size = fstatSync(fd).size;
    const r = new Reader(fd, size, file);
    const refs: ExternalDataRef[] = [];
    let sawGraph = false;
    r.fields(0, size, (field, wire, s, e) => {
      if (field !== 7 || wire !== 2) return; // ModelProto.graph
      sawGraph = true;
      r.fields(s, e, (gf, gw, gs, ge) => {
        if (gf !== 5 || gw !== 2) return; // GraphProto.initializer (TensorProto)
        let tensor = "";
        const kv: Record<string, string> = {};
        r.fields(gs, ge, (tf, tw, ts, te) => {
          if (tf === 8 && tw === 2 && te - ts <= 4096) tensor = r.bytes(ts, te).toString("utf8");
          if (tf === 13 && tw === 2 && te - ts <= 65536) {
            // StringStringEntryProto { key = 1; value = 2; }
            const entry = r.bytes(ts, te);
            const sub = new Reader(fd, size, file);
            let key = "";
            let value = "";
            sub.fields(ts, te, (ef, ew, es, ee) => {
              if (ew !== 2) return;
              const str = entry.subarray(es - ts, ee - ts).toString("utf8");
              if (ef === 1) key = str;
              else if (ef === 2) value = str;
            });
            kv[key] = value;
          }
        });
        if (kv.location !== undefined) {
          refs.push({ tensor, location: kv.location, offset: Number(kv.offset ?? 0), length: Number(kv.length ?? NaN) });
        }
      });
    });
    if (!sawGraph) r.truncated("it has no graph");
    return refs;
  } finally {
    closeSync(fd);
  }
}

/**
 * Cheap integrity and confinement check of an ONNX model file: not truncated, every external-data
 * location confined to `modelDir` (plus `roots`) and long enough for its tensors' extents.
 * Returns the external data files (absolute paths).
 */
export function checkOnnxFile(file: string, modelDir: string, opts: { roots?: readonly string[] } = {}): string[] {
  const refs = readOnnxExternalData(file);
  const sizes = new Map<string, number>();
  for (const ref of refs) {
    const path = confineModelPath(modelDir, ref.location, {
      roots: opts.roots,
      relativeTo: dirname(file),
      source: `the external data of tensor "${ref.tensor}" in ${file}`,
    });
    if (!sizes.has(path)) {
      try {
        sizes.set(path, statSync(path).size);
      } catch {
        throw new ModelLoadError(`${file} keeps tensor "${ref.tensor}" in ${path}, which is missing. Copy it beside the .onnx file (or rebuild / re-download the model).`);
      }
    }
    const end = ref.offset + ref.length;
    if (!Number.isFinite(end) || ref.offset < 0 || end > sizes.get(path)!) {
      throw new ModelLoadError(
        `${path} is truncated: tensor "${ref.tensor}" needs bytes ${ref.offset}..${end} but the file has ${sizes.get(path)}. ` +
          `Rebuild the model (\`spec-decode build\`) or download it again.`,
      );
    }
  }
  return [...sizes.keys()];
}
