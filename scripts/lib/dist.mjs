// The scripts run the compiled package: import a module of dist/, or say how to build it.
import { existsSync } from "node:fs";

/** import("../../dist/<path>") with a clear message when dist/ has not been built. */
export async function fromDist(path) {
  const url = new URL(`../../dist/${path}`, import.meta.url);
  if (!existsSync(url)) {
    console.error(`dist/${path} is missing: run \`npm install\` (or \`npm run build\`) first.`);
    process.exit(1);
  }
  return import(url.href);
}
