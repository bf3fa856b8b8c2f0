/**
 * Build a safetensors-only snapshot into ONNX, in OUR cache (hub-builds/), never inside the HF
 * snapshot (whose files are shared with Python tools and named by content hash). The small files
 * are copied, the safetensors linked (the links are removed once the graph is written), the build written to a staging folder and renamed into place
 * with a completion marker, so a half-built model is never picked up.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, realpathSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { BUILD_COMPLETE, buildDirFor, isBuilt } from "./cache.js";
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

export async function buildSnapshot(repo: string, commit: string, snapshot: string, o: HubOptions & { build?: BuildPassThrough } = {}): Promise<string> {
  const env = o.env ?? process.env;
  const out = buildDirFor(repo, commit, env);
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
