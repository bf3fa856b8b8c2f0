/**
 * Read an existing ONNX model: its nodes, graph inputs and tensors (initializers and Constant
 * node values, inline or in external data files), for the rebuild of exports (from-onnx.ts).
 * The graph is decoded with onnx-proto (a model file is at most 2 GB; large weights live in
 * external data, which is read per tensor on demand, confined to the model's directory).
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from "node:fs";
import { dirname } from "node:path";
import onnxProto from "onnx-proto";
import { confineModelPath } from "../engine/confine.js";
import { BuildError } from "../errors.js";
import { bf16ArrayToF32, f16ArrayToF32 } from "../util/half.js";

const { onnx } = onnxProto;

export type ElemType = "float32" | "float16" | "bfloat16" | "float64" | "int64" | "int32" | "int8" | "uint8" | "bool" | "other";
const ELEM: Record<number, ElemType> = { 1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool", 10: "float16", 11: "float64", 16: "bfloat16" };
const ELEM_BYTES: Partial<Record<ElemType, number>> = { float32: 4, float16: 2, bfloat16: 2, float64: 8, int64: 8, int32: 4, int8: 1, uint8: 1, bool: 1 };

export type AttrValue = number | string | number[] | string[] | OnnxTensor | undefined;

export interface OnnxNode {
  opType: string;
  /** "" for the default ai.onnx domain. */
  domain: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attrs: Map<string, AttrValue>;
}

export interface OnnxValueInfo {
  name: string;
  elemType: ElemType;
  /** Numbers for fixed sizes, strings for symbolic ones, undefined when unknown. */
  dims: (number | string | undefined)[];
}

/** A tensor whose bytes are read on demand. */
export interface OnnxTensor {
  name: string;
  elemType: ElemType;
  dims: number[];
  /** Little-endian bytes. */
  bytes(): Uint8Array;
}

export interface OnnxModel {
  path: string;
  nodes: OnnxNode[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  /** Initializers and Constant-node values by name. */
  tensors: Map<string, OnnxTensor>;
  metadata: Record<string, string>;
  opsetImports: Map<string, number>;
}

const num = (v: unknown): number => (typeof v === "number" ? v : Number(String(v)));
const numel = (dims: number[]) => dims.reduce((a, b) => a * b, 1);

function readAt(path: string, offset: number, length: number): Uint8Array {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    if (offset + length > size) {
      throw new BuildError(`External data file ${path} has ${size} bytes but a tensor needs bytes ${offset}..${offset + length}: it is truncated. Re-download the export.`);
    }
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, out, done, Math.min(length - done, 1 << 30), offset + done);
      if (n <= 0) throw new BuildError(`Could not read ${path} (stopped at byte ${offset + done}).`);
      done += n;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

function tensorOf(t: onnxProto.onnx.ITensorProto, modelPath: string, nameOverride?: string): OnnxTensor {
  const name = nameOverride ?? t.name ?? "";
  const elemType = ELEM[t.dataType ?? 0] ?? "other";
  const dims = (t.dims ?? []).map(num);
  const count = numel(dims);
  const width = ELEM_BYTES[elemType];
  const expect = width === undefined ? undefined : count * width;
  const check = (b: Uint8Array): Uint8Array => {
    if (expect !== undefined && b.byteLength !== expect) {
      throw new BuildError(`Tensor "${name}" of ${modelPath} holds ${b.byteLength} bytes, but its ${elemType} shape [${dims.join(", ")}] needs ${expect}. The export is damaged.`);
    }
    return b;
  };
  const bytes = (): Uint8Array => {
    if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
      const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? "", e.value ?? ""]));
      const location = kv.get("location");
      if (!location) throw new BuildError(`Tensor "${name}" of ${modelPath} is external but names no location.`);
      const file = confineModelPath(dirname(modelPath), location, { source: `tensor "${name}" of ${modelPath}` });
      const offset = Number(kv.get("offset") ?? 0);
      const length = kv.has("length") ? Number(kv.get("length")) : (expect ?? 0);
      return check(readAt(file, offset, length));
    }
    if (t.rawData && t.rawData.length > 0) return check(new Uint8Array(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength).slice());
    // Typed fields (small tensors, Constant values).
    switch (elemType) {
      case "float32":
        return check(new Uint8Array(Float32Array.from(t.floatData ?? []).buffer));
      case "float64":
        return check(new Uint8Array(Float64Array.from(t.doubleData ?? []).buffer));
      case "int64":
        return check(new Uint8Array(BigInt64Array.from((t.int64Data ?? []).map((x) => BigInt(String(x)))).buffer));
      case "int32":
        return check(new Uint8Array(Int32Array.from(t.int32Data ?? []).buffer));
      case "float16":
      case "bfloat16":
        return check(new Uint8Array(Uint16Array.from(t.int32Data ?? []).buffer));
      case "int8":
        return check(new Uint8Array(Int8Array.from(t.int32Data ?? []).buffer));
      case "uint8":
      case "bool":
        return check(Uint8Array.from(t.int32Data ?? []));
      default:
        throw new BuildError(`Tensor "${name}" of ${modelPath} has data type ${t.dataType}, which the rebuild cannot read.`);
    }
  };
  return { name, elemType, dims, bytes };
}

function attrValue(a: onnxProto.onnx.IAttributeProto, modelPath: string): AttrValue {
  const T = onnx.AttributeProto.AttributeType;
  const dec = (b: Uint8Array) => new TextDecoder().decode(b);
  switch (a.type) {
    case T.INT:
      return num(a.i);
    case T.FLOAT:
      return a.f ?? 0;
    case T.INTS:
      return (a.ints ?? []).map(num);
    case T.FLOATS:
      return [...(a.floats ?? [])];
    case T.STRING:
      return dec(a.s ?? new Uint8Array());
    case T.STRINGS:
      return (a.strings ?? []).map(dec);
    case T.TENSOR:
      return a.t ? tensorOf(a.t, modelPath) : undefined;
    default:
      return undefined;
  }
}

function valueInfo(v: onnxProto.onnx.IValueInfoProto): OnnxValueInfo {
  const tt = v.type?.tensorType;
  return {
    name: v.name ?? "",
    elemType: ELEM[tt?.elemType ?? 0] ?? "other",
    dims: (tt?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : d.dimValue !== undefined && d.dimValue !== null ? num(d.dimValue) : undefined)),
  };
}

export function readOnnxModel(path: string): OnnxModel {
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(readFileSync(path));
  } catch (err) {
    throw new BuildError(`Could not read ${path} as an ONNX model (${(err as Error).message}). Re-download the export.`, { cause: err });
  }
  const graph = model.graph;
  if (!graph) throw new BuildError(`${path} holds no graph.`);
  const tensors = new Map<string, OnnxTensor>();
  for (const t of graph.initializer ?? []) tensors.set(t.name ?? "", tensorOf(t, path));
  const nodes: OnnxNode[] = [];
  for (const n of graph.node ?? []) {
    const attrs = new Map<string, AttrValue>();
    for (const a of n.attribute ?? []) attrs.set(a.name ?? "", attrValue(a, path));
    const node: OnnxNode = { opType: n.opType ?? "", domain: n.domain ?? "", name: n.name ?? "", inputs: [...(n.input ?? [])], outputs: [...(n.output ?? [])], attrs };
    if (node.opType === "Constant" && node.domain === "" && node.outputs[0]) {
      const v = attrs.get("value");
      if (v && typeof v === "object" && !Array.isArray(v)) tensors.set(node.outputs[0], { ...v, name: node.outputs[0] });
      else {
        const f = attrs.get("value_float");
        const i = attrs.get("value_int");
        const fs = attrs.get("value_floats");
        const is = attrs.get("value_ints");
        const mk = (elemType: ElemType, dims: number[], b: Uint8Array): OnnxTensor => ({ name: node.outputs[0]!, elemType, dims, bytes: () => b });
        if (typeof f === "number") tensors.set(node.outputs[0], mk("float32", [], new Uint8Array(Float32Array.of(f).buffer)));
        else if (typeof i === "number") tensors.set(node.outputs[0], mk("int64", [], new Uint8Array(BigInt64Array.of(BigInt(i)).buffer)));
        else if (Array.isArray(fs)) tensors.set(node.outputs[0], mk("float32", [fs.length], new Uint8Array(Float32Array.from(fs as number[]).buffer)));
        else if (Array.isArray(is)) tensors.set(node.outputs[0], mk("int64", [is.length], new Uint8Array(BigInt64Array.from((is as number[]).map((x) => BigInt(x))).buffer)));
      }
    }
    nodes.push(node);
  }
  const metadata: Record<string, string> = {};
  for (const p of model.metadataProps ?? []) metadata[p.key ?? ""] = p.value ?? "";
  const opsetImports = new Map<string, number>();
  for (const o of model.opsetImport ?? []) opsetImports.set(o.domain ?? "", num(o.version));
  return { path, nodes, inputs: (graph.input ?? []).map(valueInfo), outputs: (graph.output ?? []).map(valueInfo), tensors, metadata, opsetImports };
}

/** A float tensor's values as float32 (float16 / bfloat16 / float64 converted). */
export function tensorFloats(t: OnnxTensor): Float32Array {
  const b = t.bytes();
  const aligned = (n: number) => (b.byteOffset % n === 0 ? b : b.slice());
  switch (t.elemType) {
    case "float32": {
      const a = aligned(4);
      return new Float32Array(a.buffer, a.byteOffset, a.byteLength / 4).slice();
    }
    case "float16": {
      const a = aligned(2);
      return f16ArrayToF32(new Uint16Array(a.buffer, a.byteOffset, a.byteLength / 2));
    }
    case "bfloat16": {
      const a = aligned(2);
      return bf16ArrayToF32(new Uint16Array(a.buffer, a.byteOffset, a.byteLength / 2));
    }
    case "float64": {
      const a = aligned(8);
      return Float32Array.from(new Float64Array(a.buffer, a.byteOffset, a.byteLength / 8));
    }
    default:
      throw new BuildError(`Tensor "${t.name}" is ${t.elemType}, expected a float tensor.`);
  }
}

/** An integer tensor's values as numbers. */
export function tensorInts(t: OnnxTensor): number[] {
  const b = t.bytes().slice();
  switch (t.elemType) {
    case "int64":
      return Array.from(new BigInt64Array(b.buffer), (x) => Number(x));
    case "int32":
      return Array.from(new Int32Array(b.buffer));
    case "int8":
      return Array.from(new Int8Array(b.buffer));
    case "uint8":
    case "bool":
      return Array.from(b);
    default:
      throw new BuildError(`Tensor "${t.name}" is ${t.elemType}, expected an integer tensor.`);
  }
}
