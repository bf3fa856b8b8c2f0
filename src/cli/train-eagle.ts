/** `spec-decode train-eagle`: train an EAGLE draft head on a model's own features (target frozen). */
import { DRAFT_VOCAB_AUTO_MIN, DRAFT_VOCAB_AUTO_MIN_COVERAGE, trainEagle } from "../eagle/train.js";
import { InvalidOptionError } from "../errors.js";
import { intOpt, numOpt, parse, SELF_DISTILL_OPTIONS, selfDistillArgs } from "./args.js";

const USAGE = `Usage: spec-decode train-eagle --model DIR [--variant NAME] (--self-distill N [--data PROMPTS | --prompt-ids FILE] | --data FILE)
  [--out DIR] [--init HEAD_DIR | --init-layer N] [--epochs E] [--max-steps N] [--max-seconds S] [--batch-rows N] [--window W] [--lr LR] [--unroll U] [--unroll-after F]
  [--ce-weight W] [--feature-noise A] [--intermediate-size N] [--eval-depth D] [--draft-vocab N|auto|off] [--trainer onnx|tfjs] [--keep-last] [--max-new-tokens N] [--temperature T] [--seed S] [--no-chat]
  [--max-length N] [--threads N] [--device cpu|webgpu|cuda]

Trains an EAGLE head (fc(embed(next token) ++ feature) -> one decoder layer -> the model's own final
norm and LM head, frozen) on the model's pre-final-norm features, the model frozen, on CPU.
The single-step phase (--unroll 1, or the first --unroll-after of the run) and the held-out
evaluation run hand-written graphs on onnxruntime with --threads threads (--trainer tfjs: on
TensorFlow.js instead); the unrolled phase runs on TensorFlow.js's WebAssembly backend
(single-threaded; SPEC_DECODE_TF_BACKEND=cpu selects its ~7x slower JS backend).
Data:
  --self-distill N   the model generates N sequences (greedy unless --temperature > 0) from built-in
                     seed prompts, the prompts in --data, or token ids in --prompt-ids (one prompt
                     per line); a model without tokenizer.json starts from BOS + 8 tokens it samples.
  --data FILE        (alone) text to train on: one plain text or JSON {"text"|"prompt"|"messages"} per line.
  --variant NAME     the target build that generates the data and its features (e.g. q4, int8 or
                     model_q4.onnx; default: the build other commands load, model.onnx): train
                     the head for the build it will run on (a float-trained head loses acceptance
                     on int4). The frozen embedding, final norm and LM head still come from the
                     checkpoint; config.json's spec_decode.target_build names the build.
Loss: SmoothL1 on the next feature + --ce-weight (default 0.5) x cross-entropy against the model's
own next-token distribution, over --unroll (default 3) draft steps that feed the head its own
features (training-time test); --unroll-after F trains single-step (several times faster) for the
first fraction F of the run, then unrolled. --feature-noise A adds uniform noise U(-A, A) to the
true input features while training (as EAGLE does; default 0, off). --intermediate-size N sets a
fresh head's MLP width (default: the model's; config.json records it). --max-seconds bounds the training time; --init continues
training an existing head; --init-layer N starts the head as the model's decoder layer N (0-based)
reading the next token's embedding, i.e. as the early exit after that layer, instead of at random.
--draft-vocab N: the head drafts over the N most frequent next tokens of the training data only
(EAGLE-3's reduced draft vocabulary): its LM head is the model's LM head rows of those tokens and
its cross-entropy runs over them, so training and drafting cost H x N instead of H x vocab per
row; the head can never draft a token outside them (output stays exact; only acceptance drops).
Default auto: a quarter of the vocabulary when it has >= ${DRAFT_VOCAB_AUTO_MIN} tokens and those cover
>= ${Math.round(DRAFT_VOCAB_AUTO_MIN_COVERAGE * 100)}% of the held-out next tokens, else off; at most the distinct tokens in the
data. off: the whole vocabulary. --init keeps the head's own.
The run ends with the best held-out weights among the starting head, the end of every full epoch
(when evaluating on onnxruntime) and the last ones, by the held-out greedy chain's accepted length
(the report's keptEpoch says which); --keep-last keeps the last weights instead.
Progress goes to stderr; the report (held-out top-1 per draft depth, the same on training sequences,
greedy chain accepted length)
is printed as JSON on stdout. Writes DIR/eagle/eagle_head.safetensors + config.json (--out to
change), which \`spec-decode generate --method eagle --heads DIR\` reads. The model must be built
with \`spec-decode build\` (features output) and keep its safetensors.`;

export async function trainEagleCommand(argv: string[]): Promise<number> {
  const { values: v } = parse(
    argv,
    {
      ...SELF_DISTILL_OPTIONS,
      init: { type: "string" },
      "init-layer": { type: "string" },
      "max-seconds": { type: "string" },
      "batch-rows": { type: "string" },
      window: { type: "string" },
      unroll: { type: "string" },
      "unroll-after": { type: "string" },
      "ce-weight": { type: "string" },
      "feature-noise": { type: "string" },
      "intermediate-size": { type: "string" },
      "eval-depth": { type: "string" },
      "draft-vocab": { type: "string" },
      trainer: { type: "string" },
      "keep-last": { type: "boolean", default: false },
    },
    USAGE,
  );
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  const report = await trainEagle({
    ...selfDistillArgs(v, USAGE, 10_000),
    init: v.init as string | undefined,
    initLayer: intOpt(v["init-layer"], "init-layer", 0),
    maxSeconds: numOpt(v["max-seconds"], "max-seconds"),
    batchRows: intOpt(v["batch-rows"], "batch-rows", 8, 8192),
    window: intOpt(v.window, "window", 2, 4096),
    unroll: intOpt(v.unroll, "unroll", 1, 8),
    unrollAfter: numOpt(v["unroll-after"], "unroll-after"),
    ceWeight: numOpt(v["ce-weight"], "ce-weight"),
    featureNoise: numOpt(v["feature-noise"], "feature-noise"),
    intermediateSize: intOpt(v["intermediate-size"], "intermediate-size", 1, 65536),
    evalDepth: intOpt(v["eval-depth"], "eval-depth", 1, 16),
    draftVocab: draftVocabArg(v["draft-vocab"] as string | undefined),
    trainer: trainerArg(v.trainer as string | undefined),
    keepBest: !v["keep-last"],
    onLog: (line) => process.stderr.write(`[train-eagle] ${line}\n`),
  });
  console.log(JSON.stringify(report, null, 2));
  return 0;
}

function draftVocabArg(raw: string | undefined): number | "auto" | "off" | undefined {
  if (raw === undefined || raw === "auto" || raw === "off") return raw;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new InvalidOptionError(`--draft-vocab must be a token count, auto or off (got "${raw}").`);
  return n === 0 ? "off" : n;
}

function trainerArg(raw: string | undefined): "onnx" | "tfjs" | undefined {
  if (raw === undefined || raw === "onnx" || raw === "tfjs") return raw;
  throw new InvalidOptionError(`--trainer must be onnx or tfjs (got "${raw}").`);
}
