/**
 * Best-checkpoint selection, shared by the trainers that end with their best held-out weights (exit
 * adapters, Medusa heads): candidates are scored on the held-out split, a higher top-1 wins and a
 * lower loss breaks ties; a copy of the best candidate's weights is kept until the run settles on it
 * or on its last weights. How weights are copied, freed and put back is the trainer's (tfjs
 * variables, Float32Arrays).
 */
export interface CheckpointScore {
  top1: number;
  loss: number;
}

/** Whether `a` scores above `b`: higher top-1, or the same top-1 at a lower loss. */
export function scoresAbove(a: CheckpointScore, b: CheckpointScore): boolean {
  return a.top1 > b.top1 || (a.top1 === b.top1 && a.loss < b.loss);
}

export class BestCheckpoint<W> {
  private kept: { epoch: number; score: CheckpointScore; weights: W } | undefined;

  constructor(private readonly weights: { copy: () => W; free?: (w: W) => void }) {}

  /** The current weights scored as `epoch`'s: kept (a copy) when they score above the best so far; returns whether they did. */
  offer(epoch: number, score: CheckpointScore): boolean {
    if (this.kept && !scoresAbove(score, this.kept.score)) return false;
    this.release();
    this.kept = { epoch, score, weights: this.weights.copy() };
    return true;
  }

  /**
   * The end of the run: when the kept candidate scores above the last weights (`last`), `restore`
   * puts its weights back and its epoch and score are returned; else undefined (the last weights
   * stand). The kept copy is released either way.
   */
  settle(last: CheckpointScore, restore: (w: W) => void): { epoch: number; score: CheckpointScore } | undefined {
    const k = this.kept;
    const won = k !== undefined && scoresAbove(k.score, last);
    if (won) restore(k.weights);
    this.release();
    return won ? { epoch: k.epoch, score: k.score } : undefined;
  }

  /** Free the kept copy (settle does; call it too when a run ends early, e.g. on an error). */
  release(): void {
    if (this.kept) this.weights.free?.(this.kept.weights);
    this.kept = undefined;
  }
}
