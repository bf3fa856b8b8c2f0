/**
 * Test fixtures, built by the real builder (so tests exercise the real loading path) and cached
 * per option set in the OS temp dir for the duration of a test run.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeFixture } from "../../src/builder/index.js";

export type FixtureOptions = Omit<Parameters<typeof makeFixture>[0], "out">;

const ROOT = join(tmpdir(), "spec-decode-test-fixtures");
const BUILDER_STAMP = "v3"; // v3: graphs have the `features` output (EAGLE)

/** Build (once) and return the directory of a fixture with these options. */
export async function fixture(opts: FixtureOptions = {}): Promise<string> {
  const key = createHash("sha256").update(BUILDER_STAMP + JSON.stringify(opts)).digest("hex").slice(0, 16);
  const dir = join(ROOT, key);
  if (existsSync(join(dir, ".complete"))) return dir;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  await makeFixture({ ...opts, out: dir });
  const { writeFileSync } = await import("node:fs");
  writeFileSync(join(dir, ".complete"), "");
  return dir;
}

export function tempDir(prefix: string): string {
  const dir = join(tmpdir(), `spec-decode-${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}
