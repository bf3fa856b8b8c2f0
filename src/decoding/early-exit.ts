/**
 * Early-exit self-speculation: the draft is the target's own first m layers plus its final norm
 * and LM head, built from the same checkpoint as `early_exit_{m}.onnx` beside the model
 * (`spec-decode build --model DIR --early-exit m`). No second model, same tokenizer by
 * construction. Drafting, verification, K control and statistics are draft-model.ts's.
 *
 * Exit layer: `exitLayer` (--exit-layer m) picks the graph; without it the smallest m built is
 * used (the cheapest draft; with several built, pass --exit-layer or run tune_draft_k).
 */
import { earlyExitFile } from "../engine/model-store.js";
import { InvalidOptionError, ModelLoadError } from "../errors.js";
import { earlyExitLayersOf } from "./capabilities.js";
import { createDraftProposer, validateDraftOptions } from "./draft-model.js";
import type { LoadedResources, MethodDefinition, ResourceRequest } from "./methods.js";

export const earlyExitMethod: MethodDefinition = {
  name: "early-exit",
  summary:
    "Early-exit self-speculation: the target's first m layers (+ final norm and LM head) draft K tokens, the full model " +
    "verifies them (exact; needs early_exit_{m}.onnx from `spec-decode build --early-exit m`).",
  async loadResources(req: ResourceRequest): Promise<LoadedResources> {
    validateDraftOptions(req.options);
    const target = req.target.lm;
    const L = target.info.numLayers;
    let m = req.options.exitLayer;
    if (m === undefined) {
      const built = earlyExitLayersOf(target);
      if (built.length === 0) {
        throw new ModelLoadError(
          `Method "early-exit" needs an early-exit draft graph beside ${target.info.file}, and there is none. Build one with ` +
            `\`spec-decode build --model ${target.info.dir} --early-exit ${Math.max(1, Math.floor(L / 4))}\` ` +
            `(needs the safetensors checkpoint), then pass --exit-layer M.`,
        );
      }
      m = built[0]!;
    }
    if (!Number.isInteger(m) || m < 1 || m >= L) {
      throw new InvalidOptionError(`exitLayer must be an integer from 1 to ${L - 1} (the target has ${L} layers; got ${String(m)}).`);
    }
    const file = earlyExitFile(target, m); // ModelLoadError naming `spec-decode build --early-exit m` when absent
    const draft = await req.store.load(target.info.dir, { file, pin: true });
    if (draft.lm.info.numLayers !== m) {
      req.store.unpin(draft);
      throw new ModelLoadError(`${file} has ${draft.lm.info.numLayers} layers, expected ${m}. Rebuild it with \`spec-decode build --early-exit ${m}\`.`);
    }
    return { draft: draft.lm, loaded: [draft] };
  },
  unavailableReason(res) {
    if (res.draft) return undefined;
    return earlyExitLayersOf(res.target).length > 0
      ? undefined
      : "no early-exit draft graph beside the model (build one with `spec-decode build --early-exit M`)";
  },
  create(res, options) {
    if (!res.draft) {
      throw new InvalidOptionError(`Method "early-exit" needs its draft graph loaded; call loadResources (or use SpecEngine.generate).`);
    }
    return createDraftProposer({ method: "early-exit", target: res.target, draft: res.draft, options });
  },
};
