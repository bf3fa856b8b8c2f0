/** `spec-decode build`: safetensors checkpoint -> ONNX with our interface (+ early-exit drafts). */
import { buildModelDir } from "../builder/index.js";
import { InvalidOptionError } from "../errors.js";
import { intList, parse, required } from "./args.js";

const USAGE = `Usage: spec-decode build --model DIR [--early-exit M[,M...]] [--io-dtype float32|float16]
  [--no-tree-mask] [--no-hidden-states] [--no-features] [--json]
Reads DIR/config.json and DIR/model.safetensors (or a sharded index) and writes DIR/onnx/model.onnx
(and DIR/onnx/early_exit_M.onnx for each M).`;

export async function buildCommand(argv: string[]): Promise<number> {
  const { values: v } = parse(
    argv,
    {
      model: { type: "string" },
      "early-exit": { type: "string" },
      "io-dtype": { type: "string" },
      "no-tree-mask": { type: "boolean", default: false },
      "no-hidden-states": { type: "boolean", default: false },
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
  const ioDtype = v["io-dtype"] as string | undefined;
  if (ioDtype && !["float32", "float16"].includes(ioDtype)) throw new InvalidOptionError(`--io-dtype must be float32 or float16.`);
  const res = await buildModelDir(required(v.model as string | undefined, "model", USAGE), {
    earlyExit: intList(v["early-exit"], "early-exit"),
    ioDtype: ioDtype as "float32" | undefined,
    treeMask: !v["no-tree-mask"],
    hiddenStates: !v["no-hidden-states"],
    features: !v["no-features"],
    onProgress: v.json ? undefined : (msg) => process.stderr.write(`${msg}\n`),
  });
  if (v.json) console.log(JSON.stringify(res));
  else for (const f of res.files) console.log(f);
  return 0;
}
