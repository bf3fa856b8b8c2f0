/**
 * The one verdict on a speedup (speculation / plain decoding, as a geometric-mean ratio with its
 * 95% interval, see statistics.ts). Used by `measure_speedup` (per method), `tune_draft_k` (on its
 * recommended setting) and `bench --endpoint` (endpoint vs baseline):
 *  - interval entirely above 1 -> "speculation helps here" (recommend it);
 *  - interval spans 1, or fewer than 2 paired runs (no interval) -> "no clear gain";
 *  - interval entirely below 1 -> "use plain decoding".
 */
import { z } from "zod";
import type { RatioSummary } from "./statistics.js";

export const VERDICTS = ["speculation helps here", "no clear gain", "use plain decoding"] as const;
export type VerdictKind = (typeof VERDICTS)[number];

export interface Verdict {
  verdict: VerdictKind;
  /** One line: the verdict, the speedup and its interval, and why. */
  text: string;
}

const x = (v: number) => `${v.toFixed(2)}x`;

export function speedupVerdict(s: RatioSummary): Verdict {
  if (s.n < 2 || s.low === null || s.high === null) {
    return {
      verdict: "no clear gain",
      text: `no clear gain: ${x(s.mean)} from ${s.n} paired run${s.n === 1 ? "" : "s"}, too few for an interval; use more prompts or repeats`,
    };
  }
  const ci = `${x(s.mean)}, 95% CI [${s.low.toFixed(2)}, ${s.high.toFixed(2)}]`;
  if (s.low > 1) return { verdict: "speculation helps here", text: `speculation helps here: ${ci} is above 1` };
  if (s.high < 1) return { verdict: "use plain decoding", text: `use plain decoding: ${ci} is below 1` };
  return { verdict: "no clear gain", text: `no clear gain: ${ci} includes 1; use more prompts or repeats to decide` };
}

/** The verdict as it appears in tool outputs (measure_speedup per method, tune_draft_k). */
export const verdictSchema = z
  .object({ verdict: z.enum(VERDICTS), text: z.string() })
  .describe('From the speedup\'s 95% interval: above 1 "speculation helps here", includes 1 "no clear gain", below 1 "use plain decoding".');
