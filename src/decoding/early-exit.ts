/**
 * Early-exit self-speculation: the draft is the target's own first m layers plus its final norm
 * and LM head, built from the same checkpoint as `early_exit_{m}.onnx` beside the model
 * (`spec-decode build --model DIR --early-exit m`). No second model, same tokenizer by
 * construction. Drafting, verification, K control and statistics are draft-model.ts's.
 *
 * Exit layer: the `exitLayer` option picks the graph; without it the smallest m built is used
 * (the cheapest draft; with several built, pass exitLayer or run tune).
 */
import { z } from "zod";
import type { CausalLM } from "../engine/causal-lm.js";
import { earlyExitFile, earlyExitFiles } from "../engine/model-store.js";
import { InvalidOptionError, ModelLoadError } from "../errors.js";
import { CONTROLLER_OPTIONS } from "./controllers.js";
import { createDraftProposer, validateDraftOptions } from "./draft-model.js";
import { OPTION_MAX } from "./limits.js";
import { defineMethod } from "./method-definition.js";

/** Exit layers for which an early-exit draft graph exists beside the model. */
export function earlyExitLayersOf(lm: CausalLM): number[] {
  return [...earlyExitFiles(lm.info.file).keys()];
}

export const EARLY_EXIT_OPTIONS = {
  ...CONTROLLER_OPTIONS,
  exitLayer: z
    .number()
    .int()
    .min(1)
    .max(OPTION_MAX.exitLayer)
    .optional()
    .describe("Draft layers (a built early-exit draft; default the smallest)."),
};

export const earlyExitMethod = defineMethod({
  name: "early-exit",
  summary: (v) =>
    "Early-exit self-speculation: the target's first m layers (+ final norm and LM head) draft K tokens, the full model " +
    `verifies them (exact; needs early_exit_{m}.onnx from ${v.buildEarlyExit("DIR", "m")}).`,
  options: EARLY_EXIT_OPTIONS,
  async loadResources(req) {
    validateDraftOptions(req.options);
    const target = req.target.lm;
    const L = target.info.numLayers;
    let m = req.options.exitLayer;
    if (m === undefined) {
      const built = earlyExitLayersOf(target);
      if (built.length === 0) {
        throw new ModelLoadError(
          (v) =>
            `Method "early-exit" needs an early-exit draft graph beside ${target.info.file}, and there is none. Build one with ` +
            `${v.buildEarlyExit(target.info.dir, Math.max(1, Math.floor(L / 4)))} ` +
            `(needs the safetensors checkpoint), then pass ${v.option("exitLayer")}.`,
        );
      }
      m = built[0]!;
    }
    if (!Number.isInteger(m) || m < 1 || m >= L) {
      const got = m;
      throw new InvalidOptionError((v) => `${v.option("exitLayer")} must be an integer from 1 to ${L - 1} (the target has ${L} layers; got ${String(got)}).`);
    }
    const file = earlyExitFile(target, m); // ModelLoadError naming the build step when absent
    const draft = await req.store.load(target.info.dir, { file, pin: true });
    if (draft.lm.info.numLayers !== m) {
      req.store.unpin(draft);
      const layers = m;
      throw new ModelLoadError((v) => `${file} has ${draft.lm.info.numLayers} layers, expected ${layers}. Rebuild it with ${v.buildEarlyExit(target.info.dir, layers)}.`);
    }
    return { draft: draft.lm, loaded: [draft] };
  },
  unavailableReason(res) {
    if (res.draft) return undefined;
    return earlyExitLayersOf(res.target).length > 0
      ? undefined
      : (v) => `no early-exit draft graph beside the model (build one with ${v.buildEarlyExit(res.target.info.dir, "M")})`;
  },
  create(res, options) {
    if (!res.draft) {
      throw new InvalidOptionError(`Method "early-exit" needs its draft graph loaded; call loadResources (or use SpecEngine.generate).`);
    }
    return createDraftProposer({ method: "early-exit", target: res.target, draft: res.draft, options });
  },
});
