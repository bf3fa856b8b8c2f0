/** `spec-decode train-medusa`: train Medusa heads on a base model's own hidden states (Medusa-1, base frozen). */
import { trainMedusa } from "../medusa/train.js";
import { intOpt, parse, SELF_DISTILL_OPTIONS, selfDistillArgs } from "./args.js";

const USAGE = `Usage: spec-decode train-medusa --model DIR [--variant NAME] (--self-distill N [--data PROMPTS | --prompt-ids FILE] | --data FILE)
  [--heads H] [--out DIR] [--epochs E] [--batch N] [--lr LR] [--train-lm-head]
  [--max-new-tokens N] [--temperature T] [--seed S] [--no-chat] [--max-length N]
  [--tree-nodes N] [--max-steps N] [--keep-last] [--threads N] [--device cpu|webgpu|cuda]

Trains H heads (default 3; head k predicts token t+k+1 from the hidden state at t) on the base
model's final hidden states, base frozen, on CPU. Data:
  --self-distill N   the base generates N sequences (greedy unless --temperature > 0) from built-in
                     seed prompts, or from the prompts in --data; the heads learn its own tokens.
  --prompt-ids FILE  self-distillation prompts as token ids (one prompt per line); a model without
                     tokenizer.json starts from BOS + 8 tokens it samples itself when neither is given.
  --data FILE        (alone) text to train on: one plain text or JSON {"text"|"prompt"|"messages"} per line.
  --variant NAME     the base build that generates the data and its hidden states (e.g. q4, int8;
                     default: model.onnx): train for the build the heads will run on; the LM
                     head still comes from the checkpoint; config.json's
                     spec_decode.target_build names it.
Each head is a residual SiLU block (W, b start at zero) before an LM head initialised from the
base's: frozen and shared by default, trained per head with --train-lm-head.
After every full epoch the mean held-out top-1 over heads is measured and the run ends with the best
weights among the initial heads (epoch 0: the base's own next-token guess), every epoch and the last
(small data overfits; on a small model training can lower top-1 while the loss falls); the report's
keptEpoch says which. --keep-last keeps the last weights instead.
Progress goes to stderr (loss and top-1 accuracy per head); the final report (held-out top-1 per
head, chance level, per-rank accuracies, the candidate tree) is printed as JSON on stdout.
Writes DIR/medusa/medusa_lm_head.safetensors + config.json (Medusa's format; --out to change),
which \`spec-decode generate --method medusa --heads DIR\` reads. The model must be built with
\`spec-decode build\` (hidden_states output) and keep its safetensors (for the LM head).`;

export async function trainMedusaCommand(argv: string[]): Promise<number> {
  const { values: v } = parse(
    argv,
    {
      ...SELF_DISTILL_OPTIONS,
      heads: { type: "string" },
      batch: { type: "string" },
      "train-lm-head": { type: "boolean", default: false },
      "tree-nodes": { type: "string" },
      "keep-last": { type: "boolean", default: false },
    },
    USAGE,
  );
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  const report = await trainMedusa({
    ...selfDistillArgs(v, USAGE),
    heads: intOpt(v.heads, "heads", 1, 16),
    batchSize: intOpt(v.batch, "batch", 1),
    trainLmHead: Boolean(v["train-lm-head"]),
    treeNodes: intOpt(v["tree-nodes"], "tree-nodes", 1, 512),
    keepBest: !v["keep-last"],
    onLog: (line) => process.stderr.write(`[train-medusa] ${line}\n`),
  });
  console.log(JSON.stringify(report, null, 2));
  return 0;
}
