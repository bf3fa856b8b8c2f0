/**
 * Plain decoding: propose nothing, so each round is one target forward and one sampled token.
 * It runs through the same loop as every speculative method, which keeps comparisons honest.
 */
import { EMPTY_PROPOSAL, type Proposer } from "./proposer.js";

export function createBaselineProposer(): Proposer {
  return {
    method: "baseline",
    async propose() {
      return EMPTY_PROPOSAL;
    },
  };
}
