/** `spec-decode fixture --twin`: the option handling (the fixture command delegates here). */
import { resolve } from "node:path";
import { intOpt, numOpt, required } from "./args.js";
import { InvalidOptionError } from "../errors.js";
import { buildTwin, calibrateTwin, TWIN_CALIBRATION } from "../bench/twin.js";
import { quantizeFromArgs } from "../builder/quantize.js";
import { builtinWorkload } from "../bench/workload.js";

export async function twinCommand(v: Record<string, unknown>, usage: string): Promise<number> {
  for (const k of ["arch", "early-exit", "layout", "io-dtype", "tie-embeddings", "no-tree-mask", "no-hidden-states"]) {
    if (v[k] !== undefined && v[k] !== false) throw new InvalidOptionError(`--${k} does not apply to --twin (twins are llama, untied, fp32, with tree mask and hidden states).`);
  }
  const out = resolve(required(v.out as string | undefined, "out", usage));
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const shape = {
    layers: intOpt(v.layers, "layers", 2),
    hidden: intOpt(v.hidden, "hidden", 2),
    heads: intOpt(v.heads, "heads", 1),
    kvHeads: intOpt(v["kv-heads"], "kv-heads", 1),
    intermediate: intOpt(v.intermediate, "intermediate", 1),
    vocab: intOpt(v.vocab, "vocab", 259),
    maxPositions: intOpt(v["max-positions"], "max-positions", 2),
    seed: intOpt(v.seed, "seed"),
    draftHidden: intOpt(v["draft-hidden"], "draft-hidden", 1),
    draftLayers: intOpt(v["draft-layers"], "draft-layers", 1),
    draftIntermediate: intOpt(v["draft-intermediate"], "draft-intermediate", 1),
    safetensors: !v["no-safetensors"],
  };
  if (v.calibrate !== undefined) {
    const ds = String(v.calibrate).split(",").map((s) => Number(s.trim()));
    if (ds.length === 0 || ds.some((d) => !Number.isFinite(d) || d < 0)) throw new InvalidOptionError(`--calibrate must be a list of numbers >= 0 like 0.01,0.02,0.05.`);
    const rows = await calibrateTwin({ out: resolve(out, "calibration"), divergences: ds, prompts: builtinWorkload(), maxNewTokens: 64, twin: { ...shape, safetensors: false }, log });
    if (v.json) console.log(JSON.stringify(rows));
    else {
      console.log("| divergence | greedy agreement | positions |\n|---:|---:|---:|");
      for (const r of rows) console.log(`| ${r.divergence} | ${r.agreement} | ${r.positions} |`);
    }
    return 0;
  }
  const agreement = numOpt(v.agreement, "agreement");
  const divergence = numOpt(v.divergence, "divergence");
  if (agreement !== undefined && divergence !== undefined) throw new InvalidOptionError("Give --agreement or --divergence, not both.");
  const kinds = v.quantize === undefined ? [] : String(v.quantize).split(",").map((s) => s.trim()).filter((s) => s.length > 0);
  if (v.quantize !== undefined && kinds.length === 0) throw new InvalidOptionError("--quantize needs a kind: int4, int8, uint8 or bnb4 (a comma-separated list with --twin).");
  const quantize = kinds.map(
    (kind) => quantizeFromArgs({ quantize: kind, blockSize: v["block-size"], accuracyLevel: v["accuracy-level"], lmHead: v["quantize-lm-head"], embeddings: v["quantize-embeddings"] }, "cli")!,
  );
  if (kinds.length === 0) quantizeFromArgs({ blockSize: v["block-size"], accuracyLevel: v["accuracy-level"], lmHead: v["quantize-lm-head"], embeddings: v["quantize-embeddings"] }, "cli");
  const res = await buildTwin({ ...shape, out, agreement, divergence, quantize, onProgress: log });
  if (v.json) console.log(JSON.stringify(res));
  else {
    const i = res.info;
    console.log(
      `Wrote synthetic twin models (random weights; text is gibberish) to ${res.dir}:\n` +
        `  target ${i.target.dir}: ${(i.target.parameters / 1e6).toFixed(1)}M parameters fp32 (hidden ${i.target.hidden}, ${i.target.layers} layers, vocab ${i.target.vocab}), ` +
        `early exit onnx/early_exit_${i.earlyExitLayers}.onnx\n` +
        `  draft  ${i.draft.dir}: ${(i.draft.parameters / 1e6).toFixed(1)}M parameters (hidden ${i.draft.hidden}, ${i.draft.layers} layer(s))\n` +
        `  knob: divergence ${i.divergence}` +
        (i.calibratedAgreement !== undefined
          ? ` (calibrated greedy agreement ~${i.calibratedAgreement}; table: ${TWIN_CALIBRATION.map((r) => `${r.divergence}->${r.agreement}`).join(", ")})`
          : " (not the default size: measure its agreement with `spec-decode bench` or --calibrate)") +
        (i.quantized?.length ? `\n  quantized: ${i.quantized.map((q) => `${q.kind} (${q.targetFile}, ${q.earlyExitFile}, draft ${q.draftFile}; block ${q.blockSize}, accuracy level ${q.accuracyLevel}${q.lmHead ? ", lm_head" : ""})`).join("; ")}` : "") +
        `\n  built in ${i.buildSeconds} s`,
    );
  }
  return 0;
}
