/**
 * onnxruntime sessions over graphs a trainer writes for itself (a training step, an evaluation):
 * GraphBuilder saves to files (big frozen initializers spill beside them), so each graph is written
 * into a private temporary directory, loaded, and the directory kept until dispose(). If a build
 * or a load fails, what was loaded is released and the directory removed before the error goes on.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type * as ort from "onnxruntime-node";
import { createSession } from "../engine/session.js";

export class GraphSessions {
  private constructor(
    /** One session per graph, in the order the builds were given. */
    readonly sessions: ort.InferenceSession[],
    private readonly workDir: string,
  ) {}

  /** `builds`: functions that write one graph each to the file they are given. */
  static async create(prefix: string, builds: ((file: string) => void)[], threads?: number): Promise<GraphSessions> {
    const workDir = mkdtempSync(join(tmpdir(), `spec-decode-${prefix}-`));
    const sessions: ort.InferenceSession[] = [];
    try {
      for (const [i, build] of builds.entries()) {
        const file = join(workDir, `graph${i}.onnx`);
        build(file);
        sessions.push(await createSession(file, { threads }));
      }
      return new GraphSessions(sessions, workDir);
    } catch (err) {
      await new GraphSessions(sessions, workDir).dispose();
      throw err;
    }
  }

  async dispose(): Promise<void> {
    try {
      for (const s of this.sessions) await s.release();
    } finally {
      rmSync(this.workDir, { recursive: true, force: true });
    }
  }
}
