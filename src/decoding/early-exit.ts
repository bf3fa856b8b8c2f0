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
 * Exit layer: `exitLayer` (--exit-layer m) picks the graph; without it the smallest m with a
 * trained adapter is used, else the smallest m built.
 */
import { existsSync } from "node:fs";
import { exitAdapterLayerOf, exitAdapterOnnxFile } from "../builder/exit-adapter.js";
import type { CausalLM } from "../engine/causal-lm.js";
import { earlyExitFile } from "../engine/model-store.js";
import { InvalidOptionError, ModelLoadError } from "../errors.js";
import { earlyExitLayersOf, exitAdapterLayersOf } from "./capabilities.js";
import { createDraftProposer, validateDraftOptions } from "./draft-model.js";
import type { LoadedResources, MethodDefinition, ResourceRequest } from "./methods.js";

/** Which draft a loaded early-exit graph is (its layer count tells: m + 1 with the adapter). */
const drafts = new WeakMap<CausalLM, { exitLayer: number; exitAdapter: "trained" | "untrained" }>();

export const earlyExitMethod: MethodDefinition = {
  name: "early-exit",
  summary:
    "Early-exit self-speculation: the target's first m layers (+ a trained adapter block when `spec-decode train-early-exit` made one, " +
    "+ final norm and LM head) draft K tokens, the full model verifies them (exact; needs early_exit_{m}.onnx from " +
    "`spec-decode build --early-exit m`). Untrained exits accept few tokens on real models: train the adapter.",
  async loadResources(req: ResourceRequest): Promise<LoadedResources> {
    validateDraftOptions(req.options);
    const want = req.options.adapter;
    if (want !== undefined && typeof want !== "boolean") throw new InvalidOptionError(`adapter must be true or false (got ${String(want)}).`);
    const target = req.target.lm;
    const L = target.info.numLayers;
    let m = req.options.exitLayer;
    if (m === undefined) {
      const trained = want === false ? [] : exitAdapterLayersOf(target);
      const built = earlyExitLayersOf(target);
      if (trained.length === 0 && built.length === 0) {
        throw new ModelLoadError(
          `Method "early-exit" needs an early-exit draft graph beside ${target.info.file}, and there is none. Build one with ` +
            `\`spec-decode build --model ${target.info.dir} --early-exit ${Math.max(1, Math.floor(L / 4))}\` ` +
            `(needs the safetensors checkpoint), train its adapter with \`spec-decode train-early-exit --model ${target.info.dir} --exit-layer M --self-distill 200\`, then pass --exit-layer M.`,
        );
      }
      m = trained[0] ?? built[0]!;
    }
    if (!Number.isInteger(m) || m < 1 || m >= L) {
      throw new InvalidOptionError(`exitLayer must be an integer from 1 to ${L - 1} (the target has ${L} layers; got ${String(m)}).`);
    }
    const adapterFile = exitAdapterOnnxFile(target.info.file, m);
    const useAdapter = want ?? existsSync(adapterFile);
    if (useAdapter && !existsSync(adapterFile)) {
      throw new ModelLoadError(
        `adapter: true, but there is no trained exit adapter for layer ${m} (looked for ${adapterFile}). Train one with ` +
          `\`spec-decode train-early-exit --model ${target.info.dir} --exit-layer ${m} --self-distill 200\`, or drop adapter to use the untrained exit.`,
      );
    }
    const file = useAdapter ? adapterFile : earlyExitFile(target, m); // ModelLoadError naming `spec-decode build --early-exit m` when absent
    const draft = await req.store.load(target.info.dir, { file, pin: true });
    const layers = useAdapter ? m + 1 : m;
    if (draft.lm.info.numLayers !== layers || (useAdapter && exitAdapterLayerOf(file) !== m)) {
      req.store.unpin(draft);
      throw new ModelLoadError(
        useAdapter
          ? `${file} is not an exit adapter graph for layer ${m} (${draft.lm.info.numLayers} layers). Retrain it with \`spec-decode train-early-exit --exit-layer ${m}\`.`
          : `${file} has ${draft.lm.info.numLayers} layers, expected ${m}. Rebuild it with \`spec-decode build --early-exit ${m}\`.`,
      );
    }
    drafts.set(draft.lm, { exitLayer: m, exitAdapter: useAdapter ? "trained" : "untrained" });
    return { draft: draft.lm, loaded: [draft] };
  },
  unavailableReason(res) {
    if (res.draft) return undefined;
    return earlyExitLayersOf(res.target).length > 0 || exitAdapterLayersOf(res.target).length > 0
      ? undefined
      : "no early-exit draft graph beside the model (build one with `spec-decode build --early-exit M`, then train its adapter with `spec-decode train-early-exit`)";
  },
  create(res, options) {
    if (!res.draft) {
      throw new InvalidOptionError(`Method "early-exit" needs its draft graph loaded; call loadResources (or use SpecEngine.generate).`);
    }
    // A draft not loaded by loadResources: an adapter graph says so in its metadata; else its layer count is the exit layer (draft-model.ts).
    const file = (res.draft.info as { file?: string } | undefined)?.file;
    const m = file ? exitAdapterLayerOf(file) : undefined;
    const which = drafts.get(res.draft) ?? (m !== undefined ? { exitLayer: m, exitAdapter: "trained" } : { exitAdapter: "untrained" });
    return createDraftProposer({ method: "early-exit", target: res.target, draft: res.draft, options, extraStats: which });
  },
};
