/**
 * Map a tuned draft setting (fixed K, or an adaptive controller) to the equivalent options of
 * other inference stacks, so a setting found here on a laptop can be carried to a server.
 *
 *  - vLLM: `--speculative-config '{"model": DRAFT, "num_speculative_tokens": K}'` (fixed K only;
 *    vLLM has no per-round adaptive K, so adaptive settings map to their mean K).
 *  - SGLang: `--speculative-algorithm STANDALONE --speculative-draft-model-path DRAFT
 *    --speculative-num-steps K --speculative-eagle-topk 1 --speculative-num-draft-tokens K+1` (a chain
 *    of K drafted tokens; fixed K, so adaptive settings map to their mean K, as for vLLM).
 *  - llama.cpp (llama-server / llama-speculative): `-md DRAFT --draft-max K --draft-min N
 *    --draft-p-min P`; `--draft-p-min` is a draft-confidence stop like our "confidence" controller.
 *  - Hugging Face transformers `generate(assistant_model=..., ...)`: `num_assistant_tokens=K`,
 *    `num_assistant_tokens_schedule` ("constant" for fixed K, "heuristic" for the +2/-1 schedule)
 *    and `assistant_confidence_threshold` (confidence stop; 0 turns it off).
 */

export type Controller = "fixed" | "heuristic" | "confidence" | "cost";

export interface DraftSetting {
  /** "draft" (separate draft model) or "early-exit" (self-speculation). */
  method: "draft" | "early-exit";
  controller: Controller;
  /** The configured K: fixed K, the heuristic's starting K, or the confidence/cost controllers' largest K. */
  k: number;
  /** Mean K actually drafted per round, when measured (used for stacks without adaptive K). */
  meanK?: number;
  /** Confidence threshold (controller "confidence"). */
  confidenceThreshold?: number;
  /** Early-exit depth (method "early-exit"). */
  exitLayer?: number;
}

export interface PeerSettings {
  vllm: { num_speculative_tokens: number; commandLine: string; note: string };
  sglang: { algorithm: "STANDALONE"; num_steps: number; eagle_topk: number; num_draft_tokens: number; flags: string[]; commandLine: string; note: string };
  llamaCpp: { draftMax: number; draftMin: number; draftPMin: number; commandLine: string; note: string };
  transformers: {
    num_assistant_tokens: number;
    num_assistant_tokens_schedule: "constant" | "heuristic";
    assistant_confidence_threshold: number;
    code: string;
    note: string;
  };
}

export function peerSettings(s: DraftSetting): PeerSettings {
  const c = s.controller;
  const meanK = Math.max(1, Math.round(s.meanK ?? s.k));
  // Stacks without per-round adaptive K get the mean K our controller actually drafted.
  const fixedEquivalent = c === "fixed" ? s.k : meanK;
  const selfSpec =
    s.method === "early-exit"
      ? " Our early-exit draft is the target's first layers; these stacks do not run that draft as is, so give them a separate small draft model with the same tokenizer (or use their own self-speculation, e.g. EAGLE/MTP heads in vLLM/SGLang)."
      : "";
  const threshold = s.confidenceThreshold ?? 0;
  const vllmCfg = JSON.stringify({ model: "<draft-model>", num_speculative_tokens: fixedEquivalent });

  const draftMax = c === "confidence" ? s.k : fixedEquivalent;
  const pMin = c === "confidence" ? threshold : 0;

  const hfSchedule = c === "heuristic" ? "heuristic" : "constant";
  const hfTokens = c === "heuristic" || c === "confidence" ? s.k : fixedEquivalent;
  // 0 turns transformers' confidence stop off, so K stays as measured here.
  const hfThreshold = c === "confidence" ? threshold : 0;
  const hfArgs = [
    `assistant_model=draft`,
    `num_assistant_tokens=${hfTokens}`,
    `num_assistant_tokens_schedule="${hfSchedule}"`,
    `assistant_confidence_threshold=${hfThreshold}`,
  ];
  return {
    vllm: {
      num_speculative_tokens: fixedEquivalent,
      commandLine: `vllm serve <target-model> --speculative-config '${vllmCfg}'`,
      note:
        (c !== "fixed" ? `vLLM drafts a fixed number of tokens; ${fixedEquivalent} is the mean K our ${c} controller drafted. ` : "") +
        "Batching lowers the speedup: re-tune at your production batch size." +
        selfSpec,
    },
    sglang: {
      algorithm: "STANDALONE",
      num_steps: fixedEquivalent,
      eagle_topk: 1,
      num_draft_tokens: fixedEquivalent + 1,
      flags: sglangFlags(fixedEquivalent),
      commandLine: `python -m sglang.launch_server --model-path <target-model> ${sglangFlags(fixedEquivalent).join(" ")}`,
      note:
        (c !== "fixed" ? `SGLang drafts a fixed number of steps; ${fixedEquivalent} is the mean K our ${c} controller drafted. ` : "") +
        "A chain (topk 1) of K draft steps verified as K+1 tokens, as measured here; SGLang's trees (topk > 1) need their own tuning. " +
        "Batching lowers the speedup: re-tune at your production batch size." +
        selfSpec,
    },
    llamaCpp: {
      draftMax,
      draftMin: 0,
      draftPMin: pMin,
      commandLine: `llama-server -m <target.gguf> -md <draft.gguf> --draft-max ${draftMax} --draft-min 0 --draft-p-min ${pMin}`,
      note:
        (c === "confidence"
          ? "--draft-p-min is the same draft-confidence stop as our confidence controller, with --draft-max as its largest K."
          : c === "fixed"
            ? "--draft-p-min 0 turns llama.cpp's confidence stop off so that K stays fixed, as measured here."
            : `llama.cpp has no ${c} schedule; --draft-max is the mean K our controller drafted, with the confidence stop off.`) + selfSpec,
    },
    transformers: {
      num_assistant_tokens: hfTokens,
      num_assistant_tokens_schedule: hfSchedule,
      assistant_confidence_threshold: hfThreshold,
      code: `model.generate(**inputs, ${hfArgs.join(", ")})`,
      note:
        (c === "heuristic"
          ? "transformers' \"heuristic\" schedule is the same +2 / -1 rule as our heuristic controller, from the same starting K."
          : c === "cost"
            ? "transformers has no cost-aware schedule; this is the mean K our controller drafted, with the constant schedule."
            : c === "confidence"
              ? "assistant_confidence_threshold is the same draft-confidence stop as our confidence controller."
              : "The constant schedule with assistant_confidence_threshold=0 keeps K fixed, as measured here.") + selfSpec,
    },
  };
}

/** SGLang's flags for a chain of K tokens from a separate draft model. */
function sglangFlags(k: number): string[] {
  return [
    "--speculative-algorithm STANDALONE",
    "--speculative-draft-model-path <draft-model>",
    `--speculative-num-steps ${k}`,
    "--speculative-eagle-topk 1",
    `--speculative-num-draft-tokens ${k + 1}`,
  ];
}

/** The peer command lines, one per stack; empty when nothing is recommended (no commands for a losing setting). */
export function peerCommandText(eq: PeerSettings | null): string {
  if (!eq) return "";
  return `vLLM: ${eq.vllm.commandLine}\nSGLang: ${eq.sglang.commandLine}\nllama.cpp: ${eq.llamaCpp.commandLine}\ntransformers: ${eq.transformers.code}`;
}
