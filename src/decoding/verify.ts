/**
 * Verification: one target forward over [cur, ...candidates, ...aux], then the acceptance rule,
 * then the cache keeps only cur + the accepted path. On a model that cannot append several tokens
 * to a filled cache (`info.multiTokenWithPast === false`), verification runs token by token instead:
 * one forward for cur and one for each node the walk accepts, so the cache holds cur + the path
 * as it goes and a miss costs no further forward (trees too: only the walked path is run).
 *
 * Acceptance rules (references/draft-model.md, "Acceptance rules"):
 *  - greedy: follow the child whose token equals the target's argmax; the first miss is the bonus.
 *  - sampling with draft probabilities (chain): accept x with prob min(1, p(x)/q(x)); on rejection
 *    sample the bonus from norm(max(0, p - q)); if all pass, sample the bonus from p.
 *  - sampling without them (n-grams, lookahead, Medusa): sample y ~ p at each node and follow the
 *    child whose token is y; the first y without a child is the bonus. Distribution-preserving.
 *  - Medusa's typical acceptance (only when the proposal asks, `acceptance.mode === "typical"`,
 *    and only when sampling): at each node follow the most probable child x with
 *    p(x) > min(threshold, alpha * exp(-H(p))); when none qualifies, the bonus is sampled from p
 *    restricted to the tokens at or above that bar. NOT distribution-preserving (it favours likely
 *    tokens); an explicit, documented option.
 * p is always the processed target distribution (temperature, top-k/p, min-p, penalties) with the
 * history up to that node, exactly as plain sampling would compute it.
 */
import { InvalidOptionError, ModelInterfaceError } from "../errors.js";
import { greedyToken, residualDistribution, sampleFrom, toProbabilities, type Rng } from "../sampling/index.js";
import type { ForwardOutput } from "../engine/causal-lm.js";
import type { DecodeContext, Proposal, RoundResult } from "./proposer.js";

/** Depth of each node (1 for children of cur). Throws when parents are not topologically ordered. */
export function nodeDepths(proposal: Proposal): number[] {
  const n = proposal.tokens.length;
  const depth = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const p = proposal.parents ? proposal.parents[i]! : i - 1;
    if (p >= i || p < -1) throw new InvalidOptionError(`proposal node ${i} has parent ${p}; parents must come first.`);
    depth[i] = p === -1 ? 1 : depth[p]! + 1;
  }
  return depth;
}

function isChain(proposal: Proposal): boolean {
  return !proposal.parents || proposal.parents.every((p, i) => p === i - 1);
}

/**
 * Build the tree attention mask, row-major [T, past + T] for T = 1 + n + aux, and the positions.
 * Exported for tests.
 */
export function buildTreeInputs(past: number, proposal: Proposal): { mask: Uint8Array; positions: number[] } {
  const n = proposal.tokens.length;
  const aux = proposal.aux;
  const a = aux ? aux.tokens.length : 0;
  const T = 1 + n + a;
  const total = past + T;
  const mask = new Uint8Array(T * total);
  const positions = new Array<number>(T);
  const depth = nodeDepths(proposal);
  // Every new token sees the whole past.
  for (let t = 0; t < T; t++) mask.fill(1, t * total, t * total + past);
  mask[past] = 1; // cur sees itself
  positions[0] = past;
  for (let i = 0; i < n; i++) {
    const row = (1 + i) * total + past;
    mask[row] = 1; // cur
    let node = i;
    while (node !== -1) {
      mask[row + 1 + node] = 1;
      node = proposal.parents ? proposal.parents[node]! : node - 1;
    }
    positions[1 + i] = past + depth[i]!;
  }
  for (let j = 0; j < a; j++) {
    const row = (1 + n + j) * total + past;
    for (const k of aux!.attends[j]!) {
      if (k < 0 || k >= T) throw new InvalidOptionError(`aux token ${j} attends to index ${k}, outside 0..${T - 1}.`);
      mask[row + k] = 1;
    }
    mask[row + 1 + n + j] = 1;
    positions[1 + n + j] = past + aux!.positions[j]!;
  }
  return { mask, positions };
}

export async function verifyRound(ctx: DecodeContext, proposal: Proposal): Promise<RoundResult> {
  const { target, cache } = ctx;
  const start = cache.length;
  const cur = ctx.tokens[ctx.tokens.length - 1]!;
  const n = proposal.tokens.length;
  const chain = isChain(proposal);
  const plain = chain && !proposal.aux;
  // A model that cannot append several tokens to a filled cache verifies token by token: one
  // forward per node the acceptance walk reaches (see StepwiseRows), never past the first miss.
  // An export not probed yet is probed first (a few one- and two-token forwards on a scratch cache,
  // once per model), so that even its first round runs no forward past a miss.
  if (n > 0 && target.info.multiTokenWithPast === undefined) {
    const t0 = performance.now();
    await target.probeMultiTokenWithPast();
    ctx.stats.targetMs += performance.now() - t0;
  }
  const stepwise = n > 0 && target.info.multiTokenWithPast === false;
  let output: ForwardOutput;
  let rowAt: (node: number) => Float32Array | Promise<Float32Array>;
  if (stepwise) {
    if (proposal.aux) {
      throw new ModelInterfaceError(
        `${target.label} cannot run several tokens on a filled KV cache, so it cannot verify a proposal's auxiliary tokens; ` +
          `rebuild the model with \`spec-decode build --from-onnx\` or propose candidates only.`,
      );
    }
    const rows = new StepwiseRows(ctx, proposal, cur);
    output = rows.output;
    rowAt = (node) => rows.row(node);
    ctx.stats.verification = "token-by-token";
  } else {
    const inputs = [cur, ...proposal.tokens, ...(proposal.aux?.tokens ?? [])];
    let tree: { mask: Uint8Array; positions: number[] } | undefined;
    if (!plain) {
      if (!target.info.hasTreeMask) {
        throw new InvalidOptionError(
          `${target.label} has no tree_attention_mask input; this proposal needs tree verification. ` +
            `Rebuild the model with \`spec-decode build\` or use a chain method.`,
        );
      }
      tree = buildTreeInputs(start, proposal);
    }
    const t0 = performance.now();
    output = await target.forward(cache, inputs, {
      positions: tree?.positions,
      treeMask: tree?.mask,
      hidden: proposal.wantHidden,
      features: proposal.wantFeatures,
    });
    ctx.stats.targetMs += performance.now() - t0;
    if (output.rows !== inputs.length) {
      throw new ModelInterfaceError(`${target.label} returned ${output.rows} logits rows for ${inputs.length} tokens; verification needs one per token.`);
    }
    if (n > 0) ctx.stats.verification = plain ? "chain" : "tree";
    const V = output.vocab;
    const all = output.logits;
    rowAt = (node) => all.subarray((node + 1) * V, (node + 2) * V);
  }

  // children lists
  const children: number[][] = Array.from({ length: n + 1 }, () => []); // index 0 = cur
  for (let i = 0; i < n; i++) {
    const p = proposal.parents ? proposal.parents[i]! : i - 1;
    children[p + 1]!.push(i);
  }

  const penalty = ctx.sampling.repetitionPenalty !== undefined && ctx.sampling.repetitionPenalty !== 1;
  const history = penalty ? ctx.tokens.slice() : undefined;
  const path: number[] = [];
  const acceptedTokens: number[] = [];
  let node = -1;
  let bonus: number;
  for (;;) {
    const row = await rowAt(node);
    const kids = children[node + 1]!;
    if (ctx.greedy) {
      const t = greedyToken(row, ctx.sampling, history, ctx.vocabLimit);
      const next = kids.find((c) => proposal.tokens[c] === t);
      if (next === undefined) {
        bonus = t;
        break;
      }
      node = next;
    } else {
      const p = toProbabilities(row, ctx.sampling, history, ctx.vocabLimit);
      if (proposal.draftProbs && kids.length > 0) {
        const c = kids[0]!;
        const x = proposal.tokens[c]!;
        const q = proposal.draftProbs[c]!;
        const qx = q[x]!;
        const px = p[x]!;
        if (qx > 0 && ctx.rng.next() * qx < px) {
          node = c;
        } else {
          bonus = sampleFrom(residualDistribution(p, q), ctx.rng);
          break;
        }
      } else if (proposal.acceptance?.mode === "typical") {
        const step = typicalStep(p, kids, proposal.tokens, proposal.acceptance.threshold, proposal.acceptance.alpha, ctx.rng);
        if (step.bonus !== undefined) {
          bonus = step.bonus;
          break;
        }
        node = step.next!;
      } else {
        const y = sampleFrom(p, ctx.rng);
        const next = kids.find((c) => proposal.tokens[c] === y);
        if (next === undefined) {
          bonus = y;
          break;
        }
        node = next;
      }
    }
    path.push(node);
    acceptedTokens.push(proposal.tokens[node]!);
    history?.push(proposal.tokens[node]!);
  }

  // Keep cur + the accepted path in the cache; drop the rest (other branches, aux tokens).
  // Token by token, the cache already holds exactly that: only cur and the path were run.
  if (stepwise) {
    if (cache.length !== start + 1 + path.length) {
      throw new ModelInterfaceError(`${target.label} left a KV cache of ${cache.length} positions after verification, expected ${start + 1 + path.length}.`);
    }
  } else if (plain) cache.crop(start + 1 + path.length);
  else cache.gather(start, [0, ...path.map((i) => i + 1)]);

  return { proposal, path, acceptedTokens, bonus, output, start };
}

/**
 * Token-by-token verification's logits rows, run on demand: row(node) runs that node's token (cur
 * for -1) as a one-token forward on the cache, which then holds cur and the accepted path up to it,
 * so the default positions and causal mask are the tree's own (position start + depth). The walk
 * asks for a row only for cur and for each node it accepts, so a round costs 1 + accepted forwards
 * and a miss costs none beyond the row that found it. The walk and its random draws are the same
 * as with one batched forward, so are the tokens, the cache and the sampling distribution.
 * `output` has the batched layout (row 1 + i = candidate i); rows never run stay NaN.
 */
class StepwiseRows {
  output: ForwardOutput;
  private readonly ctx: DecodeContext;
  private readonly proposal: Proposal;
  private readonly cur: number;

  constructor(ctx: DecodeContext, proposal: Proposal, cur: number) {
    this.ctx = ctx;
    this.proposal = proposal;
    this.cur = cur;
    this.output = { logits: new Float32Array(0), rows: 1 + proposal.tokens.length, vocab: 0 };
  }

  async row(node: number): Promise<Float32Array> {
    const { target, cache } = this.ctx;
    const token = node === -1 ? this.cur : this.proposal.tokens[node]!;
    const t0 = performance.now();
    const o = await target.forward(cache, [token], { hidden: this.proposal.wantHidden, features: this.proposal.wantFeatures });
    this.ctx.stats.targetMs += performance.now() - t0;
    if (o.rows !== 1) throw new ModelInterfaceError(`${target.label} returned ${o.rows} logits rows for one token.`);
    const out = this.output;
    const R = out.rows;
    const r = node + 1;
    if (out.vocab === 0) {
      out.vocab = o.vocab;
      out.logits = new Float32Array(R * o.vocab).fill(Number.NaN);
      if (o.hidden && o.hiddenSize) {
        out.hiddenSize = o.hiddenSize;
        out.hidden = new Float32Array(R * o.hiddenSize).fill(Number.NaN);
      }
      if (o.features) out.features = new Float32Array(R * o.features.length).fill(Number.NaN);
    }
    out.logits.set(o.logits, r * out.vocab);
    if (out.hidden && o.hidden) out.hidden.set(o.hidden, r * out.hiddenSize!);
    if (out.features && o.features) out.features.set(o.features, r * o.features.length);
    return out.logits.subarray(r * out.vocab, (r + 1) * out.vocab);
  }
}

/**
 * One node of Medusa's typical acceptance over the processed target distribution `p` (exported for
 * tests). Returns the child to follow, or the bonus token when no child passes the bar.
 */
export function typicalStep(
  p: Float32Array,
  kids: number[],
  tokens: number[],
  threshold: number,
  alpha: number,
  rng: Rng,
): { next?: number; bonus?: number } {
  let entropy = 0;
  for (let i = 0; i < p.length; i++) {
    const x = p[i]!;
    if (x > 0) entropy -= x * Math.log(x);
  }
  const bar = Math.min(threshold, alpha * Math.exp(-entropy));
  let next: number | undefined;
  let best = -1;
  for (const c of kids) {
    const px = p[tokens[c]!]!;
    if (px > bar && px > best) {
      best = px;
      next = c;
    }
  }
  if (next !== undefined) return { next };
  // The argmax always clears the bar when alpha <= 1 (p_max >= exp(-H)), so this is never empty.
  const kept = new Float32Array(p.length);
  for (let i = 0; i < p.length; i++) kept[i] = p[i]! >= bar ? p[i]! : 0;
  return { bonus: sampleFrom(kept, rng) };
}

/** How many proposed positions were on offer along the path the target took (for stats). */
export function offeredAlongPath(proposal: Proposal, path: number[]): number {
  if (proposal.tokens.length === 0) return 0;
  if (isChain(proposal)) return proposal.tokens.length;
  // Tree: the deepest depth reachable below the last accepted node, measured from the root.
  const depth = nodeDepths(proposal);
  const last = path.length > 0 ? path[path.length - 1]! : -1;
  let maxBelow = path.length;
  for (let i = 0; i < proposal.tokens.length; i++) {
    let a = i;
    while (a !== -1 && a !== last) a = proposal.parents ? proposal.parents[a]! : a - 1;
    if (a === last) maxBelow = Math.max(maxBelow, depth[i]!);
  }
  return maxBelow;
}
