/**
 * A progress bar on stderr for long runs. On a terminal it redraws one line in place; otherwise
 * (logs, CI, pipes) it prints a plain line every ~10% so the log stays readable. Never on stdout,
 * which carries the table or the JSON.
 */
export interface ProgressBar {
  update(done: number, total: number, message?: string): void;
  /** Print a line above the bar (a note), keeping the bar. */
  log(line: string): void;
  done(): void;
}

export function progressBar(label: string, stream: NodeJS.WriteStream = process.stderr, opts: { quiet?: boolean } = {}): ProgressBar {
  const tty = Boolean(stream.isTTY) && !opts.quiet;
  const t0 = Date.now();
  let lastDecile = -1;
  let lastLine = "";
  const eta = (done: number, total: number) => {
    if (done <= 0) return "";
    const s = ((Date.now() - t0) / 1000 / done) * (total - done);
    return s >= 1 ? ` ETA ${s >= 90 ? `${Math.round(s / 60)}m` : `${Math.round(s)}s`}` : "";
  };
  return {
    update(done, total, message = "") {
      if (opts.quiet) return;
      const frac = total > 0 ? Math.min(1, done / total) : 0;
      if (tty) {
        const cols = Math.max(40, (stream.columns ?? 80) - 1);
        const width = 24;
        const filled = Math.round(frac * width);
        const head = `${label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total}${eta(done, total)} `;
        lastLine = (head + message).slice(0, cols);
        stream.write(`\r\x1b[2K${lastLine}`);
      } else {
        const decile = Math.floor(frac * 10);
        if (decile !== lastDecile) {
          lastDecile = decile;
          stream.write(`${label}: ${done}/${total} (${Math.round(frac * 100)}%)${eta(done, total)} ${message}\n`);
        }
      }
    },
    log(line) {
      if (tty) stream.write(`\r\x1b[2K${line}\n${lastLine}`);
      else stream.write(`${line}\n`);
    },
    done() {
      if (tty && lastLine) stream.write("\r\x1b[2K");
    },
  };
}
