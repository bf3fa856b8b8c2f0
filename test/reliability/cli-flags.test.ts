/**
 * CLI flags at and past their documented limits (in process: the same parsing `spec-decode` runs):
 * every out-of-range value is an error naming the flag and its range; in-range boundaries run.
 * Plus the minor cases of issue 13: --k 0 and --threads 0 for non-draft methods, --prompt-ids 1,,2,
 * and `info` on a corrupted tokenizer.json (non-zero exit).
 */
import { cpSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { OPTION_MAX } from "../../src/decoding/limits.js";
import { K_MAX } from "../../src/decoding/controllers.js";
import { GENERATE_USAGE, generateCommand } from "../../src/cli/generate.js";
import { OPTION_KEYS } from "../../src/decoding/methods.js";
import { renderError } from "../../src/errors.js";
import { CLI_VOCABULARY, MCP_VOCABULARY, flagOf } from "../../src/vocabulary.js";
import { infoCommand } from "../../src/cli/info.js";
import { fixture, tempDir } from "../helpers/fixtures.js";

let model: string;
let work: string;

beforeAll(async () => {
  model = await fixture({ layers: 1, hidden: 32, heads: 2, kvHeads: 1, vocab: 300, seed: 41, maxPositions: 256 });
  work = tempDir("cli-flags");
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function quiet<T>(fn: () => Promise<T>): Promise<T> {
  const out = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
  const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
  const log = vi.spyOn(console, "log").mockImplementation(() => {});
  try {
    return await fn();
  } finally {
    out.mockRestore();
    err.mockRestore();
    log.mockRestore();
  }
}

const gen = (...flags: string[]) => quiet(() => generateCommand(["--model", model, "--prompt-ids", "1,2,3", "--max-new-tokens", "2", "--json", ...flags]));

describe("CLI flags are bounded", () => {
  const bounded: [string, number, number, string?][] = [
    ["--window", 1, OPTION_MAX.window, "lookahead"],
    ["--ngram", 2, OPTION_MAX.ngram, "lookahead"],
    ["--guesses", 1, OPTION_MAX.guesses, "lookahead"],
    ["--max-ngram", 1, OPTION_MAX.maxNgram, "prompt-lookup"],
    ["--num-predict", 1, OPTION_MAX.numPredict, "prompt-lookup"],
    ["--k", 1, K_MAX, "baseline"],
    ["--threads", 1, availableParallelism(), "baseline"],
    ["--max-new-tokens", 1, OPTION_MAX.maxNewTokens, "baseline"],
  ];
  for (const [flag, min, max, method] of bounded) {
    it(`${flag}: ${min - 1}, ${max + 1}, 1e12, 1.5 and "x" are refused naming the flag and range`, async () => {
      for (const bad of [min - 1, max + 1, 1e12, 1.5, "x"]) {
        await expect(gen("--method", method!, flag, String(bad)), `${flag} ${bad}`).rejects.toThrow(new RegExp(`${flag}.*${min}.*${max}`));
      }
    });
  }

  it("in-range boundaries run (or fail only on the model's own bound, named)", async () => {
    expect(await gen("--method", "lookahead", "--window", "1", "--ngram", "2", "--guesses", "1")).toBe(0);
    expect(await gen("--method", "prompt-lookup", "--max-ngram", String(OPTION_MAX.maxNgram), "--num-predict", String(OPTION_MAX.numPredict))).toBe(0);
    await expect(gen("--method", "lookahead", "--window", "64", "--ngram", "16", "--guesses", "64")).rejects.toThrow(/verification forward of \d+ tokens/);
    expect(await gen("--threads", "1", "--k", String(K_MAX))).toBe(0);
  });

  it("--prompt-ids with an empty item is refused", async () => {
    await expect(quiet(() => generateCommand(["--model", model, "--prompt-ids", "1,,2"]))).rejects.toThrow(/--prompt-ids/);
    await expect(quiet(() => generateCommand(["--model", model, "--prompt-ids", ","]))).rejects.toThrow(/--prompt-ids/);
  });

  it("info exits non-zero on a corrupted tokenizer.json", async () => {
    const dir = join(work, "bad-tokenizer");
    cpSync(model, dir, { recursive: true });
    expect(await quiet(() => infoCommand(["--model", dir]))).toBe(0);
    writeFileSync(join(dir, "tokenizer.json"), "{ this is not json");
    expect(await quiet(() => infoCommand(["--model", dir]))).toBe(1);
  });

  it("errors render with flags on the CLI and argument paths over MCP (one message, two renderings)", async () => {
    const err = await gen("--method", "lookahead", "--window", "100").catch((e: unknown) => e);
    expect(renderError(err, CLI_VOCABULARY)).toMatch(/^--window must be an integer in 1\.\.64 \(got 100\)/);
    expect(renderError(err, MCP_VOCABULARY)).toMatch(/^methodOptions\.window must be an integer in 1\.\.64/);
    const ee = await gen("--method", "early-exit").catch((e: unknown) => e);
    expect(renderError(ee, CLI_VOCABULARY)).toMatch(/spec-decode build --model .* --early-exit \d+`.*then pass --exit-layer\./);
    const draft = await gen("--method", "draft").catch((e: unknown) => e);
    expect(renderError(draft, CLI_VOCABULARY)).toMatch(/pass --draft DIR,.*try --method early-exit or --method prompt-lookup/);
  });

  it("generate --help lists every method option, with flags and help derived from the methods' schemas", () => {
    for (const key of OPTION_KEYS) expect(GENERATE_USAGE, key).toContain(`--${flagOf(key)} `);
    expect(GENERATE_USAGE).toMatch(/--tree-topk N +Children per expanded node/);
    expect(GENERATE_USAGE).toMatch(/--k N\|auto/);
  });
});
