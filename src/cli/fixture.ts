/** `spec-decode fixture`: a tiny random checkpoint + tokenizer, built to ONNX, for tests and demos. */
import { makeFixture, quantizeFromArgs } from "../builder/index.js";
import { twinCommand } from "./fixture-twin.js";
import { InvalidOptionError } from "../errors.js";
import { intList, intOpt, parse, required } from "./args.js";

const USAGE = `Usage: spec-decode fixture --out DIR [--arch llama|qwen2|qwen3|mistral] [--layers N] [--hidden D]
  [--heads H] [--kv-heads H] [--intermediate I] [--vocab V] [--max-positions P] [--seed S] [--tie-embeddings]
  [--early-exit M[,M...]] [--layout onnx-community|optimum|genai] [--io-dtype float32|float16]
  [--no-tree-mask] [--no-hidden-states] [--json]
  [--quantize int4|int8|uint8|bnb4 [--block-size 32|64|128] [--accuracy-level 0|1|2|4] [--quantize-lm-head] [--quantize-embeddings]]
       spec-decode fixture --twin --out DIR [--agreement X | --divergence S] [--calibrate S1,S2,...]
  [--layers N] [--hidden D] [--heads H] [--kv-heads H] [--intermediate I] [--vocab V] [--max-positions P]
  [--draft-hidden h] [--draft-layers m] [--draft-intermediate i] [--seed S] [--no-safetensors] [--json]
  [--quantize int4[,int8...] [--block-size B] [--accuracy-level A] [--quantize-lm-head]]

--twin builds the synthetic benchmark pair: DIR/target (~101M parameters fp32 by default, with
onnx/early_exit_<m>.onnx) and DIR/draft (a small model equal to the target's first m layers in a
128-wide subspace). The knob --divergence scales the target's upper layers (0 = the target agrees with
the draft everywhere); --agreement X picks it from the calibration table of the default size.
--calibrate builds one twin per value under DIR/calibration and prints the measured greedy agreement.
--twin --quantize int4,int8 also writes the quantized target, early exit and draft beside the float
files (onnx/model_q4.onnx, onnx/early_exit_<m>_q4.onnx, onnx/model_int8.onnx ...).`;

export async function fixtureCommand(argv: string[]): Promise<number> {
  const { values: v } = parse(
    argv,
    {
      out: { type: "string" },
      arch: { type: "string" },
      layers: { type: "string" },
      hidden: { type: "string" },
      heads: { type: "string" },
      "kv-heads": { type: "string" },
      intermediate: { type: "string" },
      vocab: { type: "string" },
      "max-positions": { type: "string" },
      seed: { type: "string" },
      "tie-embeddings": { type: "boolean", default: false },
      "early-exit": { type: "string" },
      layout: { type: "string" },
      "io-dtype": { type: "string" },
      "no-tree-mask": { type: "boolean", default: false },
      "no-hidden-states": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
      twin: { type: "boolean", default: false },
      agreement: { type: "string" },
      divergence: { type: "string" },
      calibrate: { type: "string" },
      "draft-hidden": { type: "string" },
      "draft-layers": { type: "string" },
      "draft-intermediate": { type: "string" },
      "no-safetensors": { type: "boolean", default: false },
      quantize: { type: "string" },
      "block-size": { type: "string" },
      "accuracy-level": { type: "string" },
      "quantize-lm-head": { type: "boolean" },
      "quantize-embeddings": { type: "boolean" },
    },
    USAGE,
  );
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  if (v.twin) return twinCommand(v, USAGE);
  for (const k of ["agreement", "divergence", "calibrate", "draft-hidden", "draft-layers", "draft-intermediate"]) {
    if (v[k as keyof typeof v] !== undefined) throw new InvalidOptionError(`--${k} only applies to --twin.`);
  }
  const arch = v.arch as string | undefined;
  if (arch && !["llama", "qwen2", "qwen3", "mistral"].includes(arch)) throw new InvalidOptionError(`--arch must be llama, qwen2, qwen3 or mistral (got "${arch}").`);
  const layout = v.layout as string | undefined;
  if (layout && !["onnx-community", "optimum", "genai"].includes(layout)) throw new InvalidOptionError(`--layout must be onnx-community, optimum or genai (got "${layout}").`);
  const ioDtype = v["io-dtype"] as string | undefined;
  if (ioDtype && !["float32", "float16"].includes(ioDtype)) throw new InvalidOptionError(`--io-dtype must be float32 or float16.`);
  const res = await makeFixture({
    out: required(v.out as string | undefined, "out", USAGE),
    arch: arch as "llama" | undefined,
    layers: intOpt(v.layers, "layers", 1),
    hidden: intOpt(v.hidden, "hidden", 2),
    heads: intOpt(v.heads, "heads", 1),
    kvHeads: intOpt(v["kv-heads"], "kv-heads", 1),
    intermediate: intOpt(v.intermediate, "intermediate", 1),
    vocab: intOpt(v.vocab, "vocab", 4),
    maxPositions: intOpt(v["max-positions"], "max-positions", 2),
    seed: intOpt(v.seed, "seed"),
    tieEmbeddings: Boolean(v["tie-embeddings"]),
    earlyExit: intList(v["early-exit"], "early-exit"),
    layout: layout as "onnx-community" | undefined,
    ioDtype: ioDtype as "float32" | undefined,
    treeMask: !v["no-tree-mask"],
    hiddenStates: !v["no-hidden-states"],
    quantize: quantizeFromArgs({ quantize: v.quantize, blockSize: v["block-size"], accuracyLevel: v["accuracy-level"], lmHead: v["quantize-lm-head"], embeddings: v["quantize-embeddings"] }, "cli"),
  });
  if (v.json) console.log(JSON.stringify({ dir: res.dir, config: res.config }));
  else console.log(`Wrote a random ${res.config.architecture} fixture (${res.config.numLayers} layers, hidden ${res.config.hiddenSize}, vocab ${res.config.vocabSize}) to ${res.dir}`);
  return 0;
}
