/**
 * Download progress for the CLI (stderr): on a terminal one line redrawn in place with bytes,
 * rate and ETA; otherwise (logs, CI, pipes) a plain line every ~10% and per file.
 */
import { formatBytes } from "../hub/disk.js";
import type { HubProgress, ResolveOptions } from "../hub/index.js";

export function hubProgress(stream: NodeJS.WriteStream = process.stderr, opts: { quiet?: boolean } = {}): Pick<ResolveOptions, "onProgress" | "log"> & { done(): void } {
  const tty = Boolean(stream.isTTY);
  let t0 = 0;
  let startBytes = 0;
  let lastDecile = -1;
  let lastFile = "";
  let drawn = false;
  let lastDraw = 0;
  const clear = () => {
    if (tty && drawn) stream.write("\r\x1b[2K");
    drawn = false;
  };
  return {
    log(line) {
      if (opts.quiet) return;
      clear();
      stream.write(`${line}\n`);
    },
    onProgress(p: HubProgress) {
      if (opts.quiet || p.phase !== "download" || p.total <= 0) return;
      const now = Date.now();
      if (!t0) {
        t0 = now;
        startBytes = p.bytes;
      }
      const secs = (now - t0) / 1000;
      const rate = secs > 0.2 ? (p.bytes - startBytes) / secs : 0;
      const left = rate > 0 ? (p.total - p.bytes) / rate : undefined;
      const eta = left === undefined ? "" : ` ETA ${left >= 90 ? `${Math.round(left / 60)}m` : `${Math.max(0, Math.round(left))}s`}`;
      const frac = Math.min(1, p.bytes / p.total);
      const stats = `${formatBytes(p.bytes)}/${formatBytes(p.total)} ${Math.round(frac * 100)}%${rate > 0 ? ` ${formatBytes(rate)}/s` : ""}${eta}`;
      if (tty) {
        if (now - lastDraw < 100 && p.bytes < p.total) return; // redraw at most 10 times a second
        lastDraw = now;
        const width = 24;
        const filled = Math.round(frac * width);
        const cols = Math.max(40, (stream.columns ?? 80) - 1);
        stream.write(`\r\x1b[2K${`[${"#".repeat(filled)}${".".repeat(width - filled)}] ${stats} ${p.file}`.slice(0, cols)}`);
        drawn = true;
      } else {
        const decile = Math.floor(frac * 10);
        if (decile !== lastDecile || (p.file && p.file !== lastFile)) {
          lastDecile = decile;
          lastFile = p.file;
          stream.write(`download: ${stats}${p.file ? ` ${p.file}` : ""}\n`);
        }
      }
    },
    done: clear,
  };
}
