/**
 * Plain decoding: propose nothing, so each round is one target forward and one sampled token.
 * It runs through the same loop as every speculative method, which keeps comparisons honest.
 */
import { defineMethod } from "./method-definition.js";
import { EMPTY_PROPOSAL, type Proposer } from "./proposer.js";

export function createBaselineProposer(): Proposer {
  return {
    method: "baseline",
    async propose() {
      return EMPTY_PROPOSAL;
    },
  };
}

export const baselineMethod = defineMethod({
  name: "baseline",
  summary: "Plain autoregressive decoding (one target forward per token); the reference every method must match.",
  options: {},
  unavailableReason: () => undefined,
  create: () => createBaselineProposer(),
});
