/**
 * Early-exit self-speculation: the draft is the target's own first m layers plus its final norm
 * and LM head, built from the same checkpoint as `early_exit_{m}.onnx` beside the model
 * (`spec-decode build --model DIR --early-exit m`). No second model, same tokenizer by
 * construction. Drafting, verification, K control and statistics are draft-model.ts's.
 *
 * Trained exit (Kangaroo-style): when `spec-decode train-early-exit --exit-layer m` has written
 * `exit_adapter_{m}.onnx` beside the model (m target layers + a trained adapter block + the final
 * norm and LM head; builder/exit-adapter.ts), that graph is the draft instead. On real weights an
 * untrained exit agrees with the full model on few tokens (stories260K: mean accepted length
 * 1.03-1.08 at layers 1-3 of 5); the adapter is what makes the exit draft well. `adapter: false`
 * forces the untrained exit, `adapter: true` requires the adapter. Stats report which
 * (`extra.exitAdapter`: "trained" | "untrained"). Exactness does not depend on the draft: greedy
 * output is the target's, sampling keeps the target's distribution (verify.ts).
 *
 * Exit layer: `exitLayer` picks the graph; without it the smallest m with a trained adapter is
 * used, else the smallest m built.
 */
import { existsSync, realpathSync } from "node:fs";
import { z } from "zod";
import { exitAdapterLayerOf, exitAdapterLayers, exitAdapterOnnxFile } from "../builder/exit-adapter.js";
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

/** Exit layers with a trained adapter graph (exit_adapter_{m}.onnx) beside the model. */
export function exitAdapterLayersOf(lm: CausalLM): number[] {
  return exitAdapterLayers(lm.info.file, lm.info.numLayers);
}

export const EARLY_EXIT_OPTIONS = {
  ...CONTROLLER_OPTIONS,
  exitLayer: z
    .number()
    .int()
    .min(1)
    .max(OPTION_MAX.exitLayer)
    .optional()
    .describe("Draft layers (a built early-exit draft; default the smallest, trained first)."),
  adapter: z.boolean().optional().describe("Use the trained exit adapter (default: when one exists)."),
};

/** Which draft a loaded early-exit graph is (its layer count tells: m + 1 with the adapter). */
const drafts = new WeakMap<CausalLM, { exitLayer: number; exitAdapter: "trained" | "untrained" }>();

function sameDir(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

/**
 * Which draft a graph that loadResources did not load is: an adapter graph says so in its metadata;
 * else its layer count is the exit layer (draft-model.ts). It must be one of the target's own exit
 * graphs (beside the target, fewer layers than it); a separate model is method "draft".
 */
function exitDraftKind(target: CausalLM, draft: CausalLM): { exitLayer?: number; exitAdapter: "trained" | "untrained" } {
  const m = exitAdapterLayerOf(draft.info.file);
  const layers = m ?? draft.info.numLayers;
  if (!sameDir(draft.info.dir, target.info.dir) || layers >= target.info.numLayers) {
    throw new InvalidOptionError(
      `Method "early-exit" drafts with the target's own exit graphs (early_exit_{m}.onnx or exit_adapter_{m}.onnx beside ${target.info.file}, ` +
        `m < ${target.info.numLayers}); ${draft.info.file} (${draft.info.numLayers} layers) is not one. For a separate draft model use method "draft".`,
    );
  }
  return m !== undefined ? { exitLayer: m, exitAdapter: "trained" } : { exitAdapter: "untrained" };
}

export const earlyExitMethod = defineMethod({
  name: "early-exit",
  summary: (v) =>
    "Early-exit self-speculation: the target's first m layers (+ a trained adapter block when `spec-decode train-early-exit` made one, " +
    `+ final norm and LM head) draft K tokens, the full model verifies them (exact; needs early_exit_{m}.onnx from ${v.buildEarlyExit("DIR", "m")}). ` +
    "Untrained exits accept few tokens on real models: train the adapter.",
  options: EARLY_EXIT_OPTIONS,
  async loadResources(req) {
    validateDraftOptions(req.options);
    const want = req.options.adapter;
    const target = req.target.lm;
    const L = target.info.numLayers;
    let m = req.options.exitLayer;
    if (m === undefined) {
      const trained = want === false ? [] : exitAdapterLayersOf(target);
      const built = earlyExitLayersOf(target);
      if (trained.length === 0 && built.length === 0) {
        throw new ModelLoadError(
          (v) =>
            `Method "early-exit" needs an early-exit draft graph beside ${target.info.file}, and there is none. Build one with ` +
            `${v.buildEarlyExit(target.info.dir, Math.max(1, Math.floor(L / 4)))} ` +
            `(needs the safetensors checkpoint), train its adapter with ${v.train("early-exit", target.info.dir)}, then pass ${v.option("exitLayer")}.`,
        );
      }
      m = trained[0] ?? built[0]!;
    }
    if (!Number.isInteger(m) || m < 1 || m >= L) {
      const got = m;
      throw new InvalidOptionError((v) => `${v.option("exitLayer")} must be an integer from 1 to ${L - 1} (the target has ${L} layers; got ${String(got)}).`);
    }
    const layer = m;
    const adapterFile = exitAdapterOnnxFile(target.info.file, layer);
    const useAdapter = want ?? existsSync(adapterFile);
    if (useAdapter && !existsSync(adapterFile)) {
      throw new ModelLoadError(
        (v) =>
          `${v.option("adapter")} is true, but there is no trained exit adapter for layer ${layer} (looked for ${adapterFile}). Train one with ` +
          `${v.train("early-exit", target.info.dir, layer)}, or drop ${v.option("adapter")} to use the untrained exit.`,
      );
    }
    const file = useAdapter ? adapterFile : earlyExitFile(target, layer); // ModelLoadError naming the build step when absent
    const draft = await req.store.load(target.info.dir, { file, pin: true });
    const layers = useAdapter ? layer + 1 : layer;
    if (draft.lm.info.numLayers !== layers || (useAdapter && exitAdapterLayerOf(file) !== layer)) {
      req.store.unpin(draft);
      throw new ModelLoadError((v) =>
        useAdapter
          ? `${file} is not an exit adapter graph for layer ${layer} (${draft.lm.info.numLayers} layers). Retrain it with ${v.train("early-exit", target.info.dir, layer)}.`
          : `${file} has ${draft.lm.info.numLayers} layers, expected ${layer}. Rebuild it with ${v.buildEarlyExit(target.info.dir, layer)}.`,
      );
    }
    drafts.set(draft.lm, { exitLayer: layer, exitAdapter: useAdapter ? "trained" : "untrained" });
    return { draft: draft.lm, loaded: [draft] };
  },
  unavailableReason(res) {
    if (res.draft) return undefined;
    return earlyExitLayersOf(res.target).length > 0 || exitAdapterLayersOf(res.target).length > 0
      ? undefined
      : (v) =>
          `no early-exit draft graph beside the model (build one with ${v.buildEarlyExit(res.target.info.dir, "M")}, ` +
          `then train its adapter with ${v.train("early-exit", res.target.info.dir)})`;
  },
  create(res, options) {
    if (!res.draft) {
      throw new InvalidOptionError(`Method "early-exit" needs its draft graph loaded; call loadResources (or use SpecEngine.generate).`);
    }
    validateDraftOptions(options); // option errors first, whatever the draft
    const which = drafts.get(res.draft) ?? exitDraftKind(res.target, res.draft);
    return createDraftProposer({ method: "early-exit", target: res.target, draft: res.draft, options, extraStats: which });
  },
});
