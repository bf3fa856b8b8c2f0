/**
 * Build a safetensors-only snapshot into ONNX, in OUR cache (hub-builds/), never inside the HF
 * snapshot (whose files are shared with Python tools and named by content hash). The small files
 * are copied, the safetensors linked (the links are removed once the graph is written), the build written to a staging folder and renamed into place
 * with a completion marker, so a half-built model is never picked up.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, realpathSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { BUILD_COMPLETE, buildDirFor, isBuilt, variantName } from "./cache.js";
import { HubError } from "./errors.js";
import { assertDiskRoom, formatBytes } from "./disk.js";
import { withFileLock } from "./download.js";
import type { HubOptions } from "./pull.js";

/** Options handed to the builder untouched (e.g. quantization once the builder has it). */
export type BuildPassThrough = Record<string, unknown>;

/**
 * Bytes the build will write: every weight as float32 (the builder's output dtype; a tied LM head
 * is written once), plus 2% for the rotary tables and the graph (measured: a Qwen2.5-0.5B-shaped
 * checkpoint gave 1.993 GB of ONNX for 1.976 GB of float32 weights, +0.9%).
 */
export async function estimateBuildBytes(dir: string): Promise<number> {
  const { openSafetensorsDir } = await import("../builder/safetensors.js");
  const src = openSafetensorsDir(dir);
  let elements = 0;
  for (const n of src.names()) elements += src.shape(n).reduce((a, b) => a * b, 1);
  return Math.ceil(elements * 4 * 1.02);
}

/** Variants a safetensors-only repo can be built as: onnx-community names -> builder options. */
const BUILDABLE: Record<string, { quantize?: { kind: "int4" | "int8" | "uint8" | "bnb4" }; ioDtype?: "float16" }> = {
  fp32: {},
  q4: { quantize: { kind: "int4" } },
  q4f16: { quantize: { kind: "int4" }, ioDtype: "float16" },
  int8: { quantize: { kind: "int8" } },
  uint8: { quantize: { kind: "uint8" } },
  bnb4: { quantize: { kind: "bnb4" } },
};

/**
 * The build a `:variant` asks of a safetensors-only repo: `org/name:q4` builds int4 MatMulNBits
 * (onnx/model_q4.onnx, the builder's defaults: block 32, accuracy level 4) into its own folder
 * (`<commit>-q4`), so each variant is built once and float32 stays beside it.
 */
export function buildForVariant(variant: string | undefined): { tag?: string; options: BuildPassThrough } {
  if (variant === undefined) return { options: {} };
  const name = variantName(variant);
  const b = BUILDABLE[name];
  if (!b) {
    throw new HubError(
      "HUB_NOT_FOUND",
      `variant "${variant}" cannot be built from safetensors; buildable variants: ${Object.keys(BUILDABLE).join(", ")} (spec-decode build --quantize for other settings).`,
    );
  }
  return { tag: name === "fp32" ? undefined : name, options: { ...(b.quantize ? { quantize: b.quantize } : {}), ...(b.ioDtype ? { ioDtype: b.ioDtype } : {}) } };
}

export async function buildSnapshot(repo: string, commit: string, snapshot: string, o: HubOptions & { build?: BuildPassThrough; variant?: string } = {}): Promise<string> {
  const env = o.env ?? process.env;
  const wanted = buildForVariant(o.variant);
  const out = buildDirFor(repo, commit, env, wanted.tag);
  if (isBuilt(out)) return out;
  mkdirSync(dirname(out), { recursive: true });
  return withFileLock(`${out}.lock`, async () => {
    if (isBuilt(out)) return out;
    const bytes = await estimateBuildBytes(snapshot);
    o.log?.(`${repo}: building ONNX from safetensors into ${out} (about ${formatBytes(bytes)} to write)`);
    assertDiskRoom(dirname(out), bytes, `ONNX build of ${repo}`, env);
    const staging = `${out}.tmp-${process.pid}`;
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
    try {
      for (const name of readdirSync(snapshot)) {
        const src = realpathSync(join(snapshot, name));
        if (!statSync(src).isFile()) continue;
        if (name.endsWith(".safetensors")) symlinkSync(src, join(staging, name));
        else copyFileSync(src, join(staging, name));
      }
      const { buildModelDir } = await import("../builder/build-dir.js");
      await buildModelDir(staging, {
        ...(o.build ?? {}),
        ...wanted.options,
        onProgress: (m: string) => {
          o.log?.(m);
          o.onProgress?.({ phase: "build", file: m, bytes: 0, total: 0 });
        },
      });
      // The links were only the builder's input: a built model directory holds no link that
      // leaves it (model loading confines every link), and the ONNX graph is all that loads.
      for (const name of readdirSync(staging)) if (name.endsWith(".safetensors")) rmSync(join(staging, name));
      writeFileSync(join(staging, BUILD_COMPLETE), JSON.stringify({ repo, commit, builtAt: new Date().toISOString() }) + "\n");
      if (existsSync(out)) rmSync(out, { recursive: true, force: true });
      renameSync(staging, out);
    } catch (err) {
      rmSync(staging, { recursive: true, force: true });
      throw err;
    }
    return out;
  }, o.signal);
}
