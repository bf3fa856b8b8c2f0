/** `spec-decode train-early-exit`: train a Kangaroo-style adapter on top of layer m (self-distillation, target frozen). */
import { trainEarlyExit } from "../exit-adapter/train.js";
import { InvalidOptionError } from "../errors.js";
import { intOpt, numOpt, parse, required, SELF_DISTILL_OPTIONS, selfDistillArgs } from "./args.js";

const USAGE = `Usage: spec-decode train-early-exit --model DIR --exit-layer M (--self-distill N [--data PROMPTS | --prompt-ids FILE] | --data FILE)
  [--init ADAPTER | --init-from layer|random] [--mlp-only] [--hard-weight W] [--keep-last]
  [--epochs E] [--max-steps N] [--max-seconds S] [--batch-rows N] [--window W] [--lr LR]
  [--eval-depth K] [--max-new-tokens N] [--temperature T] [--seed S] [--no-chat] [--max-length N]
  [--threads N] [--device cpu|webgpu|cuda]

Trains an early-exit adapter: one decoder block (the model's own layer shape, initialised from its
layer M) on top of the model's first M layers, so that the block's output read through the model's
own final norm and LM head (frozen, shared) predicts the FULL model's next token. The model is frozen.
Runs on CPU (TensorFlow.js's WebAssembly backend; SPEC_DECODE_TF_BACKEND=cpu selects its slower JS one).
An untrained early exit (layer M straight into the final norm + LM head) agrees with the full model
on few tokens on real weights; the adapter is what makes early exit draft well.
Data (as train-eagle / train-medusa):
  --self-distill N   the model generates N sequences (greedy unless --temperature > 0) from built-in
                     seed prompts, the prompts in --data, or token ids in --prompt-ids (one prompt
                     per line); a model without tokenizer.json starts from BOS + 8 tokens it samples.
  --data FILE        (alone) text to train on: one plain text or JSON {"text"|"prompt"|"messages"} per line.
Loss: cross-entropy against the full model's own next-token distribution at every position.
--max-seconds bounds the training time; --init continues training an adapter (exit_adapter_M.safetensors);
--init-from picks a fresh adapter's start: the model's own layer M (default) or random (near identity:
small residual outputs, so it starts close to the untrained exit). --mlp-only trains the block's MLP
alone (attention output fixed at 0): an ablation measuring what the adapter's attention buys; its
graph still runs the (zeroed) attention, so it is not cheaper to decode. --hard-weight W (0..1, default 0)
trains against (1 - W) x the full model's distribution + W x its greedy token: greedy drafts are
accepted on top-1 agreement only, and a small model's distribution is wide. After every full epoch the
held-out top-1 agreement is measured and the run ends with the best epoch's weights (small data overfits);
--keep-last keeps the last weights instead.
Progress goes to stderr; the report (held-out top-1 agreement with the full model for the untrained
exit, the initial and the trained adapter, and the mean accepted length of a greedy chain of
--eval-depth drafts) is printed as JSON on stdout. Writes exit_adapter_M.onnx (the drafting graph:
M layers + adapter + final norm + LM head) and exit_adapter_M.safetensors beside the model's ONNX
file, atomically; \`--method early-exit --exit-layer M\` then uses the adapter. Needs
\`spec-decode build --model DIR --early-exit M\` first (the model's safetensors stay in DIR).`;

export async function trainEarlyExitCommand(argv: string[]): Promise<number> {
  const { out: _out, variant: _variant, ...common } = SELF_DISTILL_OPTIONS;
  const { values: v } = parse(
    argv,
    {
      ...common,
      "exit-layer": { type: "string" },
      init: { type: "string" },
      "max-seconds": { type: "string" },
      "batch-rows": { type: "string" },
      window: { type: "string" },
      "eval-depth": { type: "string" },
      "init-from": { type: "string" },
      "mlp-only": { type: "boolean", default: false },
      "hard-weight": { type: "string" },
      "keep-last": { type: "boolean", default: false },
    },
    USAGE,
  );
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  const initFrom = v["init-from"] as string | undefined;
  if (initFrom !== undefined && initFrom !== "layer" && initFrom !== "random") throw new InvalidOptionError(`--init-from must be layer or random (got "${initFrom}").`);
  if (initFrom !== undefined && v.init !== undefined) throw new InvalidOptionError("Give --init ADAPTER (continue training) or --init-from (a fresh adapter), not both.");
  const report = await trainEarlyExit({
    ...selfDistillArgs(v, USAGE, 10_000),
    exitLayer: intOpt(required(v["exit-layer"] as string | undefined, "exit-layer", USAGE), "exit-layer", 1)!,
    init: v.init as string | undefined,
    maxSeconds: numOpt(v["max-seconds"], "max-seconds"),
    batchRows: intOpt(v["batch-rows"], "batch-rows", 8, 65536),
    window: intOpt(v.window, "window", 2, 4096),
    evalDepth: intOpt(v["eval-depth"], "eval-depth", 1, 16),
    initFrom,
    attention: !v["mlp-only"],
    hardWeight: numOpt(v["hard-weight"], "hard-weight"),
    keepBest: !v["keep-last"],
    onLog: (line) => process.stderr.write(`[train-early-exit] ${line}\n`),
  });
  console.log(JSON.stringify(report, null, 2));
  return 0;
}
