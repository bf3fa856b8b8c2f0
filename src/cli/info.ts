/** `spec-decode info`: describe a model directory. */
import { describeModel } from "../decoding/capabilities.js";
import { CausalLM } from "../engine/causal-lm.js";
import type { Device } from "../engine/session.js";
import { errorMessage } from "../errors.js";
import { CLI_VOCABULARY } from "../vocabulary.js";
import { resolveModel } from "../hub/index.js";
import { TextTokenizer } from "../text/index.js";
import { hubProgress } from "./hub-progress.js";
import { COMMON_MODEL_OPTIONS, parse, required } from "./args.js";

const USAGE = "Usage: spec-decode info --model DIR|org/name[@rev][:variant] [--variant NAME] [--device cpu|webgpu|cuda] [--json]";

export async function infoCommand(argv: string[]): Promise<number> {
  const { values: v } = parse(argv, { ...COMMON_MODEL_OPTIONS, model: { type: "string" }, variant: { type: "string" } }, USAGE);
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  const r = await resolveModel(required(v.model as string | undefined, "model", USAGE), hubProgress());
  const lm = await CausalLM.load(r.dir, { device: v.device as Device | undefined, variant: (v.variant as string | undefined) ?? r.variant });
  try {
    await lm.probeMultiTokenWithPast(); // so the rebuild advice knows whether this export verifies token by token
    const d = describeModel(lm, CLI_VOCABULARY);
    if (v.json) console.log(JSON.stringify(d, null, 2));
    else {
      console.log(`${d.architecture} (${d.layout}) ${d.file}`);
      console.log(`  layers ${d.numLayers}, kv heads ${d.kvHeads}, head dim ${d.headDim}, kv ${d.kvDtype}, logits ${d.logitsDtype}`);
      console.log(`  weights ${d.weightFormat}, ${(d.weightBytesPerToken / 2 ** 20).toFixed(1)} MiB read per token`);
      console.log(`  vocab ${d.vocabSize ?? "?"}, context ${d.maxContext ?? "unknown"}, eos ${JSON.stringify(d.eosIds)}`);
      console.log(`  tree mask ${d.hasTreeMask ? "yes" : "no"}, hidden states ${d.hasHiddenStates ? "yes" : "no"}, early-exit drafts ${JSON.stringify(d.earlyExitLayers)} (trained adapters ${JSON.stringify(d.earlyExitAdapters)})`);
      for (const m of d.methods) console.log(`  ${m.available ? "✓" : "✗"} ${m.method}: ${m.reason}`);
      if (d.rebuild) console.log(`  rebuild: ${d.rebuild}`);
    }
    // A tokenizer that cannot be loaded is an error (text prompts would fail): exit non-zero.
    if (lm.dirInfo.hasTokenizer) {
      try {
        await TextTokenizer.load(lm.info.dir);
      } catch (err) {
        process.stderr.write(`spec-decode info: error: the tokenizer of ${lm.info.dir} cannot be loaded: ${errorMessage(err)}\n`);
        return 1;
      }
    }
  } finally {
    await lm.dispose();
  }
  return 0;
}
