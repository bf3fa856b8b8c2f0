/** Tests that spawn the CLI or the MCP server need dist/; build it when missing or stale. */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const CLI = join(REPO, "dist", "cli", "main.js");

function newestMtime(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newestMtime(p));
    else if (e.name.endsWith(".ts")) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

/** Build dist/ with tsc when it is missing or older than src/ (so a plain `npx vitest` works). */
export function ensureBuilt(): void {
  const stale = !existsSync(CLI) || statSync(CLI).mtimeMs < newestMtime(join(REPO, "src"));
  if (!stale) return;
  try {
    execFileSync(process.execPath, [join(REPO, "node_modules", "typescript", "bin", "tsc"), "-p", join(REPO, "tsconfig.json")], {
      cwd: REPO,
      stdio: "pipe",
    });
  } catch (err) {
    // Type errors elsewhere still emit JavaScript; fail only when the entry point is missing.
    if (!existsSync(CLI)) throw err;
  }
}
