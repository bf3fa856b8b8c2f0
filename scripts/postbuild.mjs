// Make the CLI entry point executable after `tsc` (npm links it as the `spec-decode` bin).
import { chmodSync, existsSync } from "node:fs";

const bin = new URL("../dist/cli/main.js", import.meta.url);
if (existsSync(bin)) chmodSync(bin, 0o755);
