/**
 * A small ONNX model loaded beside the target (Medusa heads, an EAGLE head): its session, its
 * configuration and files, the time its runs spent in onnxruntime (decoding's timing report adds it
 * up), and an idempotent dispose.
 */
import type * as ort from "onnxruntime-node";

export class SidecarModel<C> {
  readonly timing = { runs: 0, runMs: 0 };
  private disposed = false;

  constructor(
    readonly session: ort.InferenceSession,
    readonly config: C,
    /** The weights file and the ONNX file built from it. */
    readonly file: string,
    readonly onnxFile: string,
  ) {}

  /** session.run, its time counted in `timing`. */
  protected async timedRun(feeds: ort.InferenceSession.FeedsType): Promise<ort.InferenceSession.ReturnType> {
    const t0 = performance.now();
    const out = await this.session.run(feeds);
    this.timing.runMs += performance.now() - t0;
    this.timing.runs++;
    return out;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.session.release();
  }
}
