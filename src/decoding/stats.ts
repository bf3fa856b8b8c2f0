/**
 * The statistics every run returns. Conventions (references/statistics.md):
 *  - acceptanceRate = accepted proposed tokens / proposed tokens (bonus tokens not counted);
 *    for trees, "proposed" counts one token per depth level reached (the best path's length
 *    it could have had), so the rate stays comparable with chains.
 *  - meanAcceptedLength = new tokens / target forwards, BONUS INCLUDED (1.0 for plain decoding).
 *  - perPositionAcceptance[i] = P(token i of a round accepted | tokens 0..i-1 accepted).
 *  - acceptanceHistogram[n] = number of rounds that accepted n proposed tokens.
 */
export type VerificationMode = "none" | "chain" | "tree" | "token-by-token";

export interface GenerationStats {
  method: string;
  promptTokens: number;
  newTokens: number;
  /** Decode rounds: one target forward each (prefill not counted). */
  targetForwards: number;
  /** Prompt processing (target and draft prefill), milliseconds. */
  prefillMs: number;
  /** Decode phase, milliseconds (everything after prefill). */
  decodeMs: number;
  /** prefillMs + decodeMs. */
  elapsedMs: number;
  /** newTokens / decode seconds. */
  tokensPerSecond: number;
  draftedTokens: number;
  /** Rounds that proposed at least one token (vLLM's num_drafts). */
  draftRounds: number;
  acceptedTokens: number;
  acceptanceRate: number;
  meanAcceptedLength: number;
  perPositionAcceptance: number[];
  acceptanceHistogram: number[];
  /** Time spent proposing (draft forwards, pool look-ups, head runs), ms. */
  draftMs: number;
  /** Time in target forwards (verification), ms. */
  targetMs: number;
  /** Of which inside onnxruntime's session.run (target and draft), ms. */
  onnxRuntimeMs: number;
  /** Decode time outside onnxruntime (sampling, cache crops, JS glue), ms. */
  overheadMs: number;
  verification: VerificationMode;
  notes: string[];
  /** Method-specific counters (e.g. lookahead pool hits, chosen K values). */
  extra: Record<string, number | string | number[]>;
}

export class StatsCollector {
  readonly method: string;
  promptTokens = 0;
  newTokens = 0;
  rounds = 0;
  prefillMs = 0;
  decodeMs = 0;
  drafted = 0;
  draftRounds = 0;
  accepted = 0;
  draftMs = 0;
  targetMs = 0;
  onnxRuntimeMs = 0;
  verification: VerificationMode = "none";
  readonly notes: string[] = [];
  readonly extra: Record<string, number | string | number[]> = {};
  private readonly posAttempts: number[] = [];
  private readonly posAccepts: number[] = [];
  private readonly histogram: number[] = [];

  constructor(method: string) {
    this.method = method;
  }

  note(msg: string): void {
    if (!this.notes.includes(msg)) this.notes.push(msg);
  }

  count(key: string, by = 1): void {
    this.extra[key] = ((this.extra[key] as number | undefined) ?? 0) + by;
  }

  /**
   * Record a round. `offered` = how many positions were proposed along the path the target took
   * (chain length, or the depth reachable along the accepted path in a tree); `accepted` how many
   * of them the target accepted.
   */
  recordRound(offered: number, accepted: number, emitted: number): void {
    this.rounds++;
    this.newTokens += emitted;
    this.drafted += offered;
    if (offered > 0) this.draftRounds++;
    this.accepted += accepted;
    for (let i = 0; i < offered; i++) {
      this.posAttempts[i] = (this.posAttempts[i] ?? 0) + 1;
      if (i < accepted) this.posAccepts[i] = (this.posAccepts[i] ?? 0) + 1;
      if (i >= accepted) break;
    }
    while (this.histogram.length <= accepted) this.histogram.push(0);
    this.histogram[accepted]!++;
  }

  /** Per-position acceptance (conditional on reaching the position). */
  perPosition(): number[] {
    return this.posAttempts.map((n, i) => (n > 0 ? (this.posAccepts[i] ?? 0) / n : 0));
  }

  finish(): GenerationStats {
    const decodeS = this.decodeMs / 1000;
    return {
      method: this.method,
      promptTokens: this.promptTokens,
      newTokens: this.newTokens,
      targetForwards: this.rounds,
      prefillMs: round3(this.prefillMs),
      decodeMs: round3(this.decodeMs),
      elapsedMs: round3(this.prefillMs + this.decodeMs),
      tokensPerSecond: decodeS > 0 ? round3(this.newTokens / decodeS) : 0,
      draftedTokens: this.drafted,
      draftRounds: this.draftRounds,
      acceptedTokens: this.accepted,
      acceptanceRate: this.drafted > 0 ? round4(this.accepted / this.drafted) : 0,
      meanAcceptedLength: this.rounds > 0 ? round4(this.newTokens / this.rounds) : 0,
      perPositionAcceptance: this.perPosition().map(round4),
      acceptanceHistogram: [...this.histogram],
      draftMs: round3(this.draftMs),
      targetMs: round3(this.targetMs),
      onnxRuntimeMs: round3(this.onnxRuntimeMs),
      overheadMs: round3(Math.max(0, this.decodeMs - this.onnxRuntimeMs)),
      verification: this.verification,
      notes: [...this.notes],
      extra: { ...this.extra },
    };
  }
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
function round4(x: number): number {
  return Math.round(x * 10000) / 10000;
}
