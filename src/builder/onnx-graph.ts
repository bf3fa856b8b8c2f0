/**
 * A small typed layer over the `onnx-proto` protobuf classes for writing ONNX models.
 *
 * `save()` streams the model to disk instead of encoding one giant protobuf in memory: the
 * graph without its initializers is encoded by protobufjs, and each initializer's TensorProto is
 * appended as a repeated `GraphProto.initializer` field (protobuf allows fields in any order), with
 * its raw bytes written straight from the typed array. So the tensors are held once, not twice.
 *
 * Large models: when the initializers would pass `externalDataThreshold` bytes (default 1.5 GB;
 * a protobuf file cannot exceed 2 GB), tensors move to `<model file>_data` beside the model
 * (ONNX external data: data_location EXTERNAL + location/offset/length), which onnxruntime reads.
 * Spilled tensors are written to disk as soon as they are added and their memory is released.
 */
import { closeSync, copyFileSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { openAtomic, safeWriteTarget } from "../util/atomic-file.js";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import onnxProto from "onnx-proto";
import { BuildError } from "../errors.js";
import { f32ArrayToBf16, f32ArrayToF16 } from "../util/half.js";

const { onnx } = onnxProto;

/** IR version written; onnx-proto 8 knows up to IR 8, which onnxruntime 1.30 loads. */
export const ONNX_IR_VERSION = 8;
/** Default ai.onnx opset. 17 keeps ReduceMean's `axes` an attribute and has LessOrEqual, Range, Trilu. */
export const ONNX_OPSET = 17;
/** onnxruntime's contrib-op domain (MatMulNBits, GatherBlockQuantized, ...) and the opset version imported for it. */
export const MS_DOMAIN = "com.microsoft";
export const MS_OPSET = 1;

export type DType = "float32" | "float16" | "bfloat16" | "float64" | "int64" | "int32" | "int8" | "uint8" | "bool";

const DTYPE_CODE: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
  bfloat16: 16,
};

const DTYPE_BYTES: Record<DType, number> = {
  float32: 4,
  uint8: 1,
  int8: 1,
  int32: 4,
  int64: 8,
  bool: 1,
  float16: 2,
  float64: 8,
  bfloat16: 2,
};

export function dtypeCode(dtype: DType): number {
  return DTYPE_CODE[dtype];
}

/** A dimension: a fixed size, or a symbolic name such as "batch_size". */
export type Dim = number | string;

/** Attribute values. Plain numbers and number arrays are INTs; use the helpers for the others. */
export type AttrValue =
  | number
  | number[]
  | { kind: "float"; value: number }
  | { kind: "floats"; value: number[] }
  | { kind: "string"; value: string }
  | { kind: "strings"; value: string[] }
  | { kind: "tensor"; dtype: DType; dims: number[]; data: TensorInput };

export const attr = {
  float: (value: number): AttrValue => ({ kind: "float", value }),
  floats: (value: number[]): AttrValue => ({ kind: "floats", value }),
  string: (value: string): AttrValue => ({ kind: "string", value }),
  strings: (value: string[]): AttrValue => ({ kind: "strings", value }),
  tensor: (dtype: DType, dims: number[], data: TensorInput): AttrValue => ({ kind: "tensor", dtype, dims, data }),
};

/**
 * Tensor data. Float32Array may be given for float16/bfloat16 (converted); number[] for any type;
 * otherwise the typed array must match the dtype (Uint16Array holds half/bfloat16 bits).
 */
export type TensorInput =
  | Float32Array
  | Float64Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Int8Array
  | Uint16Array
  | number[];

/** Little-endian bytes of `data` as `dtype` (host order: every platform onnxruntime-node ships for is LE). */
export function tensorBytes(dtype: DType, data: TensorInput, count: number): Uint8Array {
  const view = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  let out: ArrayBufferView;
  switch (dtype) {
    case "float32":
      out = data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
      break;
    case "float64":
      out = data instanceof Float64Array ? data : Float64Array.from(data as ArrayLike<number>);
      break;
    case "float16":
      out = data instanceof Uint16Array ? data : f32ArrayToF16(data as ArrayLike<number>);
      break;
    case "bfloat16":
      out = data instanceof Uint16Array ? data : f32ArrayToBf16(data as ArrayLike<number>);
      break;
    case "int64":
      out = data instanceof BigInt64Array ? data : BigInt64Array.from(Array.from(data as ArrayLike<number>, (x) => BigInt(x)));
      break;
    case "int32":
      out = data instanceof Int32Array ? data : Int32Array.from(data as ArrayLike<number>);
      break;
    case "int8":
      out = data instanceof Int8Array ? data : Int8Array.from(data as ArrayLike<number>);
      break;
    case "uint8":
    case "bool":
      out = data instanceof Uint8Array ? data : Uint8Array.from(data as ArrayLike<number>, (x) => (dtype === "bool" ? (x ? 1 : 0) : x));
      break;
  }
  const bytes = view(out);
  if (bytes.byteLength !== count * DTYPE_BYTES[dtype]) {
    throw new BuildError(
      `Internal builder error: tensor data has ${bytes.byteLength} bytes, expected ${count} ${dtype} values ` +
        `(${count * DTYPE_BYTES[dtype]} bytes). Please report this.`,
    );
  }
  return bytes;
}

function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

interface Initializer {
  name: string;
  dtype: DType;
  dims: number[];
  /** Inline bytes, or undefined once spilled to the external data file. */
  bytes?: Uint8Array;
  external?: { offset: number; length: number };
}

export interface GraphBuilderOptions {
  /** Graph name. */
  name?: string;
  /** Where the model will be saved; lets spilled tensors go straight to `<modelPath>_data`. */
  modelPath?: string;
  /** "auto" (default): external data once initializers pass `externalDataThreshold` bytes. */
  externalData?: "auto" | "always" | "never";
  externalDataThreshold?: number;
  opset?: number;
  producerName?: string;
  producerVersion?: string;
}

/** Tensors smaller than this stay inline even when external data is used (like onnx's default). */
const EXTERNAL_MIN_BYTES = 1024;
/** Offsets of external tensors are aligned so onnxruntime can memory-map them. */
const EXTERNAL_ALIGN = 4096;

export class GraphBuilder {
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly inits: Initializer[] = [];
  private readonly names = new Set<string>();
  private readonly constCache = new Map<string, string>();
  private readonly metadata = new Map<string, string>();
  /** Non-default operator domains used by nodes -> the opset version imported for each. */
  private readonly domains = new Map<string, number>();
  private counter = 0;
  private inlineBytes = 0;
  private spill?: { path: string; fd: number; size: number };
  private saved = false;
  readonly opset: number;

  constructor(private readonly opts: GraphBuilderOptions = {}) {
    this.opset = opts.opset ?? ONNX_OPSET;
  }

  /** A fresh value name with the given prefix (not reserved: pass it to input/initializer/node). */
  freshName(prefix: string): string {
    let name: string;
    do name = `${prefix}_${this.counter++}`;
    while (this.names.has(name));
    return name;
  }

  /** A fresh value name, reserved. */
  private uniqueName(prefix: string): string {
    const name = this.freshName(prefix);
    this.names.add(name);
    return name;
  }

  private claim(name: string): void {
    if (this.names.has(name)) {
      throw new BuildError(`Internal builder error: value name "${name}" is used twice in the graph. Please report this.`);
    }
    this.names.add(name);
  }

  private valueInfo(name: string, dtype: DType, dims: readonly Dim[]): onnxProto.onnx.IValueInfoProto {
    return {
      name,
      type: {
        tensorType: {
          elemType: DTYPE_CODE[dtype],
          shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
        },
      },
    };
  }

  /** Declare a graph input; returns its name. */
  input(name: string, dtype: DType, dims: readonly Dim[]): string {
    this.claim(name);
    this.inputs.push(this.valueInfo(name, dtype, dims));
    return name;
  }

  /**
   * Declare a graph output. When `from` names another value, an Identity node copies it to `name`
   * (onnxruntime removes it); otherwise a node must produce `name` itself.
   */
  output(name: string, dtype: DType, dims: readonly Dim[], from?: string): string {
    if (from !== undefined && from !== name) {
      this.claim(name);
      this.nodes.push({ opType: "Identity", input: [from], output: [name], name: `n${this.nodes.length}_Identity` });
    }
    this.outputs.push(this.valueInfo(name, dtype, dims));
    return name;
  }

  /** Add a weight. `data` holds numel(dims) values (see TensorInput). Returns its name. */
  initializer(name: string, dtype: DType, dims: readonly number[], data: TensorInput): string {
    this.claim(name);
    const bytes = tensorBytes(dtype, data, numel(dims));
    const init: Initializer = { name, dtype, dims: [...dims], bytes };
    this.inits.push(init);
    const mode = this.opts.externalData ?? "auto";
    const threshold = this.opts.externalDataThreshold ?? 1.5e9;
    if (bytes.byteLength >= EXTERNAL_MIN_BYTES && mode !== "never") {
      if (mode === "always" || this.spill || this.inlineBytes + bytes.byteLength > threshold) {
        this.startSpill();
        if (!init.external) this.spillOne(init);
        return name;
      }
    }
    this.inlineBytes += bytes.byteLength;
    return name;
  }

  private startSpill(): void {
    if (this.spill) return;
    // Beside the model (same filesystem, renamed into place by save()), never over the live data file.
    const path = this.opts.modelPath
      ? join(dirname(resolve(this.opts.modelPath)), `.${basename(this.opts.modelPath)}_data.tmp-${process.pid}-${Date.now()}`)
      : join(tmpdir(), `spec-decode-${process.pid}-${Date.now()}.onnx_data`);
    mkdirSync(dirname(path), { recursive: true });
    this.spill = { path, fd: openSync(path, "wx"), size: 0 };
    // Move what is already inline (and large enough) out too.
    for (const init of this.inits) {
      if (init.bytes && init.bytes.byteLength >= EXTERNAL_MIN_BYTES) {
        this.inlineBytes -= init.bytes.byteLength;
        this.spillOne(init);
      }
    }
  }

  private spillOne(init: Initializer): void {
    const spill = this.spill!;
    const bytes = init.bytes!;
    const offset = Math.ceil(spill.size / EXTERNAL_ALIGN) * EXTERNAL_ALIGN;
    writeAll(spill.fd, bytes, offset);
    spill.size = offset + bytes.byteLength;
    init.external = { offset, length: bytes.byteLength };
    init.bytes = undefined;
  }

  /**
   * Add a node. Returns its output names: `outputs` is a count (fresh names) or explicit names
   * ("" leaves an optional output out).
   */
  node(
    opType: string,
    inputs: readonly string[],
    attrs: Record<string, AttrValue> = {},
    outputs: number | readonly string[] = 1,
    domain?: string,
  ): string[] {
    const outNames =
      typeof outputs === "number"
        ? Array.from({ length: outputs }, () => this.uniqueName(opType))
        : outputs.map((n) => {
            if (n !== "") this.claim(n); // "" = an optional output left out
            return n;
          });
    const attribute = Object.entries(attrs).map(([k, v]) => encodeAttr(k, v));
    if (domain && !this.domains.has(domain)) this.domains.set(domain, domain === MS_DOMAIN ? MS_OPSET : 1);
    this.nodes.push({
      opType,
      input: [...inputs],
      output: outNames,
      name: `n${this.nodes.length}_${opType}`,
      attribute,
      ...(domain ? { domain } : {}),
    });
    return outNames;
  }

  /** A single-output node; returns the output name. */
  op(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}): string {
    return this.node(opType, inputs, attrs, 1)[0]!;
  }

  /** A single-output onnxruntime contrib node (domain com.microsoft, imported at opset 1). */
  msOp(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}): string {
    return this.node(opType, inputs, attrs, 1, MS_DOMAIN)[0]!;
  }

  /** The operator domains the graph imports besides the default one. */
  get importedDomains(): ReadonlyMap<string, number> {
    return this.domains;
  }

  private cachedConst(key: string, make: () => string): string {
    let name = this.constCache.get(key);
    if (!name) {
      name = make();
      this.constCache.set(key, name);
    }
    return name;
  }

  /** An int64 constant (1-D, or a scalar with `scalar`). Reused when asked twice. */
  constInt64(values: readonly number[], scalar = false): string {
    return this.cachedConst(`i64:${scalar}:${values.join(",")}`, () =>
      this.initializer(this.freshName("const_i64"), "int64", scalar ? [] : [values.length], [...values]),
    );
  }

  /** A float32 scalar constant. */
  constFloat(value: number, dtype: "float32" | "float16" = "float32"): string {
    return this.cachedConst(`${dtype}:${Object.is(value, -0) ? "-0" : value}`, () =>
      this.initializer(this.freshName(`const_${dtype === "float32" ? "f32" : "f16"}`), dtype, [], [value]),
    );
  }

  setMetadata(key: string, value: string): void {
    this.metadata.set(key, value);
  }

  get initializerBytes(): number {
    let n = 0;
    for (const i of this.inits) n += i.bytes?.byteLength ?? i.external?.length ?? 0;
    return n;
  }

  /** Drop the builder without saving: closes and deletes a spill file. Safe to call twice. */
  dispose(): void {
    if (this.spill && !this.saved) {
      try {
        closeSync(this.spill.fd);
      } catch {
        /* already closed */
      }
      rmSync(this.spill.path, { force: true });
      this.spill = undefined;
    }
  }

  /** Serialize the ModelProto to `path` (and `<path>_data` when tensors are external). */
  save(path: string): void {
    if (this.saved) throw new BuildError("Internal builder error: GraphBuilder.save() called twice. Please report this.");
    this.saved = true;
    const modelPath = resolve(path);
    mkdirSync(dirname(modelPath), { recursive: true });
    const dataPath = `${modelPath}_data`;
    const location = basename(dataPath);

    // Crash safety: the model is written to a temporary file and renamed over the old one last, so
    // a kill at any point leaves the previous good model (or the new complete one). The external
    // data is renamed into place just before (the only window where a kill leaves the old graph
    // beside new data; list_models' extent check flags it when sizes differ).
    safeWriteTarget(dataPath, { base: dirname(modelPath) });
    let spillPath: string | undefined;
    if (this.spill) {
      fsyncSync(this.spill.fd);
      closeSync(this.spill.fd);
      spillPath = this.spill.path;
      if (dirname(spillPath) !== dirname(modelPath)) {
        const local = join(dirname(modelPath), `.${basename(dataPath)}.tmp-${process.pid}-${Date.now()}`);
        copyFileSync(spillPath, local);
        rmSync(spillPath, { force: true });
        spillPath = local;
      }
    }

    const modelHead = onnx.ModelProto.encode({
      irVersion: ONNX_IR_VERSION,
      producerName: this.opts.producerName ?? "speculative-decoding",
      producerVersion: this.opts.producerVersion ?? "",
      opsetImport: [{ domain: "", version: this.opset }, ...[...this.domains].map(([domain, version]) => ({ domain, version }))],
      metadataProps: [...this.metadata].map(([key, value]) => ({ key, value })),
    }).finish();
    const graphHead = onnx.GraphProto.encode({
      name: this.opts.name ?? "main",
      node: this.nodes,
      input: this.inputs,
      output: this.outputs,
    }).finish();

    // Each initializer: TensorProto metadata, then (inline) field 9 raw_data written separately.
    const entries = this.inits.map((init) => {
      const meta = onnx.TensorProto.encode({
        name: init.name,
        dims: init.dims,
        dataType: DTYPE_CODE[init.dtype],
        ...(init.external
          ? {
              dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
              externalData: [
                { key: "location", value: location },
                { key: "offset", value: String(init.external.offset) },
                { key: "length", value: String(init.external.length) },
              ],
            }
          : {}),
      }).finish();
      const raw = init.bytes;
      const rawHead = raw ? concatBytes([Uint8Array.of((9 << 3) | 2), varint(raw.byteLength)]) : new Uint8Array(0);
      const size = meta.byteLength + rawHead.byteLength + (raw?.byteLength ?? 0);
      const head = concatBytes([Uint8Array.of((5 << 3) | 2), varint(size), meta, rawHead]);
      return { head, raw, total: head.byteLength + (raw?.byteLength ?? 0) };
    });
    const graphLen = graphHead.byteLength + entries.reduce((s, e) => s + e.total, 0);
    if (graphLen > 2 ** 31 - 1) {
      throw new BuildError(
        `The ONNX graph would be ${graphLen} bytes, over protobuf's 2 GB limit. Build with external data ` +
          `(the default "auto" mode moves weights to ${location}).`,
      );
    }

    const out = openAtomic(modelPath);
    try {
      const fd = out.fd;
      let pos = 0;
      const put = (b: Uint8Array) => {
        writeAll(fd, b, pos);
        pos += b.byteLength;
      };
      put(modelHead);
      put(concatBytes([Uint8Array.of((7 << 3) | 2), varint(graphLen)]));
      put(graphHead);
      for (const e of entries) {
        put(e.head);
        if (e.raw) put(e.raw);
      }
    } catch (err) {
      out.abort();
      if (spillPath) rmSync(spillPath, { force: true });
      throw err;
    }
    if (spillPath) renameSync(spillPath, dataPath);
    out.commit();
    // Stale data from an earlier build of the same file (only once the new graph is in place).
    if (!spillPath && existsSync(dataPath)) rmSync(dataPath, { force: true });
  }
}

function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.byteLength) {
    const chunk = Math.min(bytes.byteLength - done, 1 << 30);
    done += writeSync(fd, bytes, done, chunk, position + done);
  }
}

function varint(n: number): Uint8Array {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Uint8Array.from(out);
}

function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

function encodeAttr(name: string, v: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === "number") {
    if (!Number.isInteger(v)) {
      throw new BuildError(`Internal builder error: attribute ${name}=${v} is not an integer; use attr.float(). Please report this.`);
    }
    return { name, type: T.INT, i: v };
  }
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  switch (v.kind) {
    case "float":
      return { name, type: T.FLOAT, f: v.value };
    case "floats":
      return { name, type: T.FLOATS, floats: v.value };
    case "string":
      return { name, type: T.STRING, s: new TextEncoder().encode(v.value) };
    case "strings":
      return { name, type: T.STRINGS, strings: v.value.map((s) => new TextEncoder().encode(s)) };
    case "tensor":
      return {
        name,
        type: T.TENSOR,
        t: { dims: v.dims, dataType: DTYPE_CODE[v.dtype], rawData: tensorBytes(v.dtype, v.data, numel(v.dims)) },
      };
  }
}
