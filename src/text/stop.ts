/**
 * Stop-string matching over streamed text. Text that could be the beginning of a stop string is
 * held back until it is known not to be one; when a stop string appears, the text before it is
 * emitted and the stream is over (the stop string itself is not emitted).
 */
import { InvalidOptionError } from "../errors.js";

export interface StopPushResult {
  /** Text that is safe to show now. */
  emit: string;
  /** True once a stop string was found (now or earlier); later pushes emit nothing. */
  stopped: boolean;
  /** The stop string that matched (when `stopped`). */
  stop?: string;
}

export class StopMatcher {
  private readonly stops: string[];
  private readonly maxLen: number;
  private held = "";
  private matched: string | undefined;
  private done = false;

  constructor(stops: readonly string[]) {
    for (const s of stops) {
      if (typeof s !== "string" || s.length === 0) {
        throw new InvalidOptionError("Stop strings must be non-empty strings; remove empty entries from `stop`.");
      }
    }
    this.stops = [...new Set(stops)];
    this.maxLen = this.stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /** True once a stop string has been seen. */
  get stopped(): boolean {
    return this.done;
  }

  /** The stop string that ended the stream, if any. */
  get matchedStop(): string | undefined {
    return this.matched;
  }

  /** Feeds newly decoded text. */
  push(text: string): StopPushResult {
    if (this.done) return { emit: "", stopped: true, stop: this.matched };
    if (this.stops.length === 0) return { emit: text, stopped: false };
    const buf = this.held + text;
    // Earliest occurrence of any stop string (on a tie, the first one listed).
    let cut = -1;
    let which: string | undefined;
    for (const s of this.stops) {
      const at = buf.indexOf(s);
      if (at !== -1 && (cut === -1 || at < cut)) {
        cut = at;
        which = s;
      }
    }
    if (cut !== -1) {
      this.done = true;
      this.matched = which;
      this.held = "";
      return { emit: buf.slice(0, cut), stopped: true, stop: which };
    }
    // Hold back the longest tail that is a proper prefix of some stop string.
    const keep = this.partialTailLength(buf);
    this.held = buf.slice(buf.length - keep);
    return { emit: buf.slice(0, buf.length - keep), stopped: false };
  }

  /** The stream ended without a stop string: returns the held-back text. */
  flush(): string {
    const out = this.done ? "" : this.held;
    this.held = "";
    return out;
  }

  private partialTailLength(buf: string): number {
    for (let k = Math.min(this.maxLen - 1, buf.length); k > 0; k--) {
      const tail = buf.slice(buf.length - k);
      for (const s of this.stops) if (s.length > k && s.startsWith(tail)) return k;
    }
    return 0;
  }
}
