/** `spec-decode build`: safetensors checkpoint (or an existing ONNX export) -> ONNX with our interface (+ early-exit drafts). */
import { buildModelDir, quantizeFromArgs } from "../builder/index.js";
import { buildFromOnnx } from "../builder/from-onnx.js";
import { InvalidOptionError } from "../errors.js";
import { intList, parse, required } from "./args.js";

const USAGE = `Usage: spec-decode build --model DIR [--early-exit M[,M...]] [--io-dtype float32|float16]
  [--no-tree-mask] [--no-hidden-states] [--no-features] [--json]
  [--quantize int4|int8|uint8|bnb4 [--block-size 32|64|128] [--accuracy-level 0|1|2|4] [--quantize-lm-head] [--quantize-embeddings]]
Reads DIR/config.json and DIR/model.safetensors (or a sharded index) and writes DIR/onnx/model.onnx
(and DIR/onnx/early_exit_M.onnx for each M). --quantize writes onnx-community variant names instead:
model_q4.onnx / model_q4f16.onnx (int4 com.microsoft MatMulNBits, float32 / float16 io), model_int8.onnx
(8-bit MatMulNBits), model_uint8.onnx (MatMulInteger), model_bnb4.onnx (MatMulBnb4 NF4), and
early_exit_M_q4.onnx etc.; load one with --variant q4. Defaults: block 32, accuracy level 4 (int8
activations, the fastest on CPU), lm_head and embedding kept float.

       spec-decode build --from-onnx DIR [--variant NAME] [--out DIR] [--early-exit M[,M...]]
  [--no-tree-mask] [--no-hidden-states] [--no-features] [--json]
Rebuilds an existing ONNX export (onnxruntime-genai builder or Optimum / onnx-community Llama-family
decoders) from its own weights, MatMulNBits blocks kept as they are, into our cache
(<cache>/from-onnx/NAME-HASH, or --out) with our interface: tree attention mask, hidden states,
multi-token verification. The export is not modified; a graph that cannot be mapped is an error
naming the op or tensor, and nothing is left behind.`;

export async function buildCommand(argv: string[]): Promise<number> {
  const { values: v } = parse(
    argv,
    {
      model: { type: "string" },
      "from-onnx": { type: "string" },
      out: { type: "string" },
      variant: { type: "string" },
      "early-exit": { type: "string" },
      "io-dtype": { type: "string" },
      "no-tree-mask": { type: "boolean", default: false },
      "no-hidden-states": { type: "boolean", default: false },
      quantize: { type: "string" },
      "block-size": { type: "string" },
      "accuracy-level": { type: "string" },
      "quantize-lm-head": { type: "boolean" },
      "quantize-embeddings": { type: "boolean" },
      "no-features": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    USAGE,
  );
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  const fromOnnx = v["from-onnx"] as string | undefined;
  if (fromOnnx !== undefined) {
    if (v.model !== undefined) throw new InvalidOptionError("Give either --model (safetensors) or --from-onnx (an ONNX export), not both.");
    for (const flag of ["io-dtype", "quantize", "block-size", "accuracy-level", "quantize-lm-head", "quantize-embeddings"] as const) {
      if (v[flag] !== undefined) {
        throw new InvalidOptionError(`--${flag} does not apply to --from-onnx: the rebuild keeps the export's own weights (MatMulNBits blocks as they are) and KV dtype.`);
      }
    }
    const res = await buildFromOnnx(fromOnnx, {
      out: v.out as string | undefined,
      variant: v.variant as string | undefined,
      earlyExit: intList(v["early-exit"], "early-exit"),
      treeMask: !v["no-tree-mask"],
      hiddenStates: !v["no-hidden-states"],
      features: !v["no-features"],
      onProgress: v.json ? undefined : (msg) => process.stderr.write(`${msg}\n`),
    });
    if (v.json) console.log(JSON.stringify(res));
    else {
      console.log(`rebuilt ${res.source} (${res.family}) into ${res.dir}`);
      for (const f of res.files) console.log(f);
    }
    return 0;
  }
  for (const flag of ["out", "variant"] as const) {
    if (v[flag] !== undefined) throw new InvalidOptionError(`--${flag} only applies with --from-onnx DIR.`);
  }
  const ioDtype = v["io-dtype"] as string | undefined;
  if (ioDtype && !["float32", "float16"].includes(ioDtype)) throw new InvalidOptionError(`--io-dtype must be float32 or float16.`);
  const res = await buildModelDir(required(v.model as string | undefined, "model", USAGE), {
    earlyExit: intList(v["early-exit"], "early-exit"),
    ioDtype: ioDtype as "float32" | undefined,
    treeMask: !v["no-tree-mask"],
    hiddenStates: !v["no-hidden-states"],
    quantize: quantizeFromArgs({ quantize: v.quantize, blockSize: v["block-size"], accuracyLevel: v["accuracy-level"], lmHead: v["quantize-lm-head"], embeddings: v["quantize-embeddings"] }, "cli"),
    features: !v["no-features"],
    onProgress: v.json ? undefined : (msg) => process.stderr.write(`${msg}\n`),
  });
  if (v.json) console.log(JSON.stringify(res));
  else for (const f of res.files) console.log(f);
  return 0;
}
