import { it } from "vitest";
import { join } from "node:path";
import { existsSync } from "node:fs";
import * as ort from "onnxruntime-node";
import { buildTwin } from "../src/bench/twin.js";
import { buildDecoderOnnx } from "../src/builder/llama.js";
import { readDecoderConfig } from "../src/builder/config.js";
import { openSafetensorsDir } from "../src/builder/safetensors.js";
import { run } from "./builder/helpers.js";
it("probe", async () => {
  const out = "/tmp/wt-quant/probe/twin";
  if (!existsSync(join(out, "target/onnx/model_q4.onnx"))) {
    await buildTwin({ out, quantize: [{ kind: "int4", lmHead: true }, { kind: "int8", lmHead: true }], onProgress: (s) => console.log(s) });
  }
  const cfg = readDecoderConfig(join(out, "target"));
  const acc0 = join(out, "target/onnx/model_q4acc0.onnx");
  if (!existsSync(acc0)) await buildDecoderOnnx(cfg, openSafetensorsDir(join(out, "target")), acc0, { quantize: { kind: "int4", lmHead: true, accuracyLevel: 0 } });
  for (const th of [1, 2]) for (const f of ["model.onnx", "model_int8.onnx", "model_q4.onnx", "model_q4acc0.onnx"]) {
    const s = await ort.InferenceSession.create(join(out, "target/onnx", f), { intraOpNumThreads: th, interOpNumThreads: 1, extra: { session: { intra_op: { allow_spinning: "0" } } } } as any);
    const pre = await run(s, cfg, cfg.numLayers, Array.from({ length: 64 }, (_, i) => 3 + i));
    const times: Record<number, number> = {};
    for (const M of [1, 2, 4, 8, 16]) {
      const ts: number[] = [];
      for (let r = 0; r < 7; r++) {
        const t0 = performance.now();
        await run(s, cfg, cfg.numLayers, Array.from({ length: M }, (_, i) => 5 + i), { kv: pre.kv });
        ts.push(performance.now() - t0);
      }
      ts.sort((a, b) => a - b);
      times[M] = Math.round(ts[3]! * 100) / 100;
    }
    console.log("threads", th, f, JSON.stringify(times));
    await s.release();
  }
}, 600000);
