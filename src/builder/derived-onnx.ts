/**
 * ONNX graphs derived from weights the user gave (Medusa heads, EAGLE heads): built on first use
 * beside the weights, or under the OS temp dir when that directory is read-only, and rebuilt when
 * the stamp recorded in the graph's metadata no longer matches the sources.
 */
import { accessSync, constants, existsSync, mkdirSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { readOnnxMetadataProps } from "../engine/onnx-file.js";

export interface DerivedOnnx {
  /** The weights file the graph is made from (names the temp-dir fallback). */
  source: string;
  /** Directory beside which the graph is written when it is writable. */
  dir: string;
  /** File name of the graph, e.g. medusa_heads.onnx. */
  name: string;
  /** Temp-dir folder for read-only sources, e.g. spec-decode-medusa. */
  namespace: string;
  /** Metadata key holding the stamp, and the stamp of the current sources. */
  stampKey: string;
  stamp: string;
  /** Write the graph to `out`, recording `{ [stampKey]: stamp }` in its metadata. */
  build: (out: string) => void;
  onProgress?: (msg: string) => void;
}

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** The up-to-date graph for `d`, building it when none matches the stamp. */
export function ensureDerivedOnnx(d: DerivedOnnx): { onnxFile: string; built: boolean } {
  const besides = join(d.dir, d.name);
  const cache = join(tmpdir(), d.namespace, createHash("sha256").update(d.source).digest("hex").slice(0, 16), d.name);
  for (const c of [besides, cache]) {
    if (!existsSync(c)) continue;
    try {
      if (readOnnxMetadataProps(c)[d.stampKey] === d.stamp) return { onnxFile: c, built: false };
    } catch {
      /* unreadable: rebuild */
    }
  }
  const out = writable(d.dir) ? besides : cache;
  mkdirSync(dirname(out), { recursive: true });
  d.onProgress?.(`building ${out} from ${d.source}`);
  d.build(out);
  return { onnxFile: out, built: true };
}
