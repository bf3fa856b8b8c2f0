/**
 * Token-by-token verification (models that cannot append several tokens to a filled KV cache, e.g.
 * onnxruntime-genai exports): the target runs one forward for cur and one per accepted candidate,
 * never past the first miss, so a fully rejected round costs exactly one forward, as plain decoding
 * does. The result must not change: greedy tokens equal plain decoding's, and with sampling the same
 * seed gives the same tokens as one batched verification forward on the same weights (the walk and
 * its random draws are the same), so the distribution is the batched one (draft-sampling.test.ts).
 */
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { writeGenaiExport } from "../../src/builder/export-fixtures.js";
import { generateTokens } from "../../src/decoding/generate.js";
import { getMethod } from "../../src/decoding/methods.js";
import type { DecodeContext, Proposal, Proposer, RoundResult } from "../../src/decoding/proposer.js";
import { CausalLM } from "../../src/engine/causal-lm.js";
import { ModelInterfaceError } from "../../src/errors.js";
import { fixture, tempDir } from "../helpers/fixtures.js";

const MODEL = { layers: 2, hidden: 64, heads: 4, kvHeads: 4, vocab: 320, seed: 8 } as const;
const PROMPT = [1, 17, 93, 200, 5, 64, 1, 17, 93, 200, 5, 64];
const N = 20;
const K = 4;

/** Plain greedy decoding (one token per forward). */
async function plainGreedy(lm: CausalLM, prompt: number[], n: number): Promise<number[]> {
  return (await generateTokens({ target: lm, promptIds: prompt, maxNewTokens: n, eosIds: [] })).tokens;
}

interface Round {
  offered: number;
  accepted: number;
  forwards: number;
}

/**
 * A proposer that knows the greedy continuation `ref` and offers, each round, `right(round)` correct
 * tokens followed by wrong ones (K in all), optionally as a tree with a wrong sibling before each
 * right node. It records the target forwards (session runs) each round cost.
 */
function scripted(lm: CausalLM, ref: number[], right: (round: number) => number, tree = false): Proposer & { rounds: Round[] } {
  const rounds: Round[] = [];
  let runs0 = 0;
  let offered: number | undefined;
  const wrong = (t: number) => (t + 1) % MODEL.vocab;
  return {
    method: "scripted",
    rounds,
    async propose(ctx: DecodeContext, room: number): Promise<Proposal> {
      const at = ctx.tokens.length - ctx.promptLength;
      const n = Math.min(K, tree ? Math.floor(room / 2) : room, ref.length - at);
      const good = Math.min(right(rounds.length), n);
      offered = n;
      runs0 = lm.timing.runs;
      if (!tree) {
        const tokens = Array.from({ length: n }, (_, i) => (i < good ? ref[at + i]! : wrong(ref[at + i]!)));
        return { tokens };
      }
      // Each depth: a wrong sibling first, then the right node (whose parent is the previous right node).
      const tokens: number[] = [];
      const parents: number[] = [];
      let parent = -1;
      for (let d = 0; d < n; d++) {
        const t = ref[at + d]!;
        tokens.push(wrong(t));
        parents.push(parent);
        tokens.push(d < good ? t : wrong(wrong(t)));
        parents.push(parent);
        parent = tokens.length - 1;
      }
      return { tokens, parents };
    },
    observe(_ctx: DecodeContext, result: RoundResult) {
      // (a last one-token round with no room for candidates is not ours)
      if (offered !== undefined && result.proposal.tokens.length > 0) rounds.push({ offered, accepted: result.path.length, forwards: lm.timing.runs - runs0 });
      offered = undefined;
    },
  };
}

describe("token-by-token verification", () => {
  let exportDir: string;
  let builderDir: string;
  beforeAll(async () => {
    builderDir = await fixture(MODEL);
    exportDir = writeGenaiExport(builderDir, join(tempDir("token-by-token"), "export"), { attention: "mha" });
  });

  it("costs one forward per accepted candidate plus one: a fully rejected round costs exactly one", async () => {
    const lm = await CausalLM.load(exportDir);
    try {
      expect(await lm.probeMultiTokenWithPast()).toBe(false); // the genai export verifies token by token
      const ref = await plainGreedy(lm, PROMPT, N);
      // Rejected outright every round: one forward per round, one token per round, as plain decoding.
      const none = scripted(lm, ref, () => 0);
      const r0 = await generateTokens({ target: lm, promptIds: PROMPT, maxNewTokens: N, eosIds: [], proposer: none });
      expect(r0.tokens).toEqual(ref);
      expect(r0.stats.verification).toBe("token-by-token");
      expect(none.rounds.length).toBeGreaterThan(5);
      expect(none.rounds.filter((r) => r.offered === K).length).toBeGreaterThan(5);
      for (const r of none.rounds) expect({ accepted: r.accepted, forwards: r.forwards }).toEqual({ accepted: 0, forwards: 1 });
      // Partly right: 1 + accepted forwards, whatever was offered beyond the miss.
      const some = scripted(lm, ref, (i) => i % (K + 1));
      const r1 = await generateTokens({ target: lm, promptIds: PROMPT, maxNewTokens: N, eosIds: [], proposer: some });
      expect(r1.tokens).toEqual(ref);
      expect(new Set(some.rounds.map((r) => r.accepted)).size).toBeGreaterThan(2);
      for (const r of some.rounds) expect(r.forwards).toBe(1 + r.accepted);
      // In all, a token-by-token run costs one session run per generated token (+ the prefill).
      const runs0 = lm.timing.runs;
      const r2 = await generateTokens({ target: lm, promptIds: PROMPT, maxNewTokens: N, eosIds: [], proposer: scripted(lm, ref, () => K) });
      expect(r2.tokens).toEqual(ref);
      expect(lm.timing.runs - runs0).toBe(1 + N); // prefill + one per token, as plain decoding
    } finally {
      await lm.dispose();
    }
  });

  it("walks token trees along one path, running only the nodes it accepts", async () => {
    const lm = await CausalLM.load(builderDir); // has a tree mask, but pretend it cannot run several tokens
    try {
      const ref = await plainGreedy(lm, PROMPT, N);
      lm.info.multiTokenWithPast = false;
      const p = scripted(lm, ref, (i) => i % (K + 1), true);
      const res = await generateTokens({ target: lm, promptIds: PROMPT, maxNewTokens: N, eosIds: [], proposer: p });
      expect(res.tokens).toEqual(ref);
      expect(res.stats.verification).toBe("token-by-token");
      expect(p.rounds.some((r) => r.accepted >= 2)).toBe(true);
      for (const r of p.rounds) expect(r.forwards).toBe(1 + r.accepted);
      // Auxiliary tokens (lookahead's Jacobi window) need a multi-token forward: a clear error.
      const aux: Proposer = {
        method: "aux",
        async propose() {
          return { tokens: [5], aux: { tokens: [6], positions: [1], attends: [[0, 2]] } };
        },
      };
      await expect(generateTokens({ target: lm, promptIds: PROMPT, maxNewTokens: 4, eosIds: [], proposer: aux })).rejects.toThrow(ModelInterfaceError);
    } finally {
      await lm.dispose();
    }
  });

  it("keeps greedy output equal to plain decoding for prompt lookup and a draft model on the export", async () => {
    const lm = await CausalLM.load(exportDir);
    const draft = await CausalLM.load(await fixture({ ...MODEL, layers: 1 }));
    try {
      const ref = await plainGreedy(lm, PROMPT, N);
      expect(lm.info.multiTokenWithPast).toBeUndefined(); // not probed yet: the first verification round finds out
      // The probe, once per model: one token, then two on top of it, which fails inside the graph
      // (not counted) and reruns token by token (two runs).
      let probe = 3;
      for (const proposer of [getMethod("prompt-lookup").create({ target: lm }, {}), getMethod("draft").create({ target: lm, draft }, { k: 3 })]) {
        const runs0 = lm.timing.runs;
        const res = await generateTokens({ target: lm, promptIds: PROMPT, maxNewTokens: N, eosIds: [], proposer });
        expect(res.tokens).toEqual(ref);
        expect(res.stats.verification).toBe("token-by-token");
        expect(res.stats.acceptedTokens).toBeGreaterThan(0);
        expect(lm.timing.runs - runs0).toBe(probe + 1 + N); // as many target runs as plain decoding
        probe = 0;
      }
    } finally {
      await lm.dispose();
      await draft.dispose();
    }
  });

  it("samples exactly what one batched verification forward samples, seed for seed", async () => {
    const batched = await CausalLM.load(builderDir);
    const stepwise = await CausalLM.load(builderDir);
    const draft = await CausalLM.load(await fixture({ ...MODEL, layers: 1, seed: 9 }));
    try {
      batched.info.multiTokenWithPast = true;
      stepwise.info.multiTokenWithPast = false;
      const methods = [
        (t: CausalLM) => getMethod("draft").create({ target: t, draft }, { k: 3 }), // accept min(1, p/q), residual on rejection
        (t: CausalLM) => getMethod("prompt-lookup").create({ target: t }, {}), // sample y ~ p and match
      ];
      let accepted = 0;
      for (const make of methods) {
        for (let seed = 0; seed < 6; seed++) {
          const sampling = { temperature: 1.3, seed };
          const a = await generateTokens({ target: batched, promptIds: PROMPT, maxNewTokens: N, eosIds: [], sampling, proposer: make(batched) });
          const runs0 = stepwise.timing.runs;
          const b = await generateTokens({ target: stepwise, promptIds: PROMPT, maxNewTokens: N, eosIds: [], sampling, proposer: make(stepwise) });
          expect(b.tokens).toEqual(a.tokens);
          expect(b.stats.acceptanceHistogram).toEqual(a.stats.acceptanceHistogram);
          expect(b.stats.verification).toBe("token-by-token");
          // prefill + per round one forward for cur and one per accepted candidate
          expect(stepwise.timing.runs - runs0).toBe(1 + a.stats.targetForwards + a.stats.acceptedTokens);
          accepted += a.stats.acceptedTokens;
        }
      }
      expect(accepted).toBeGreaterThan(0); // some rounds accepted candidates, so the stepwise walk went deep
    } finally {
      await batched.dispose();
      await stepwise.dispose();
      await draft.dispose();
    }
  });
});
