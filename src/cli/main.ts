#!/usr/bin/env node
/**
 * spec-decode: the command-line entry point. One file per command; this file only dispatches.
 * Errors print to stderr with a message that says what to do, and the exit code is non-zero.
 */
import { SpecDecodeError, errorMessage, renderError } from "../errors.js";
import { CLI_VOCABULARY } from "../vocabulary.js";

type Command = { summary: string; run: (argv: string[]) => Promise<number> };

const COMMANDS: Record<string, Command> = {
  generate: { summary: "generate text with any method (streams; --json for one object with stats)", run: async (a) => (await import("./generate.js")).generateCommand(a) },
  fixture: { summary: "write a tiny random checkpoint + tokenizer and build it to ONNX (tests, demos)", run: async (a) => (await import("./fixture.js")).fixtureCommand(a) },
  build: { summary: "convert a safetensors checkpoint (config.json + model.safetensors) to ONNX", run: async (a) => (await import("./build.js")).buildCommand(a) },
  info: { summary: "describe a model directory: interface, context, which methods it supports", run: async (a) => (await import("./info.js")).infoCommand(a) },
  serve: { summary: "run the MCP server (stdio by default, --http for Streamable HTTP) or, with --openai, an OpenAI-compatible server", run: async (a) => (await import("./serve.js")).serveCommand(a) },
  "train-medusa": { summary: "train Medusa heads on a model's own hidden states (self-distillation, CPU)", run: async (a) => (await import("./train-medusa.js")).trainMedusaCommand(a) },
  "train-eagle": { summary: "train an EAGLE draft head on a model's own features (self-distillation, CPU)", run: async (a) => (await import("./train-eagle.js")).trainEagleCommand(a) },
  "train-early-exit": { summary: "train an early-exit adapter on top of layer m (Kangaroo-style self-distillation, CPU)", run: async (a) => (await import("./train-early-exit.js")).trainEarlyExitCommand(a) },
  bench: { summary: "benchmark methods against plain decoding (speedup with CI, acceptance, ideal vs measured; --json, --chart; --endpoint for OpenAI-compatible servers)", run: async (a) => (await import("./bench.js")).benchCommand(a) },
  tune: { summary: "sweep K for a draft model or early exit: measured vs predicted speedup, a verdict, the recommended setting and its peer settings", run: async (a) => (await import("./tune.js")).tuneCommand(a) },
  pull: { summary: "download a Hugging Face model (one ONNX variant, verified, resumable) into the HF cache", run: async (a) => (await import("./pull.js")).pullCommand(a) },
  "suggest-draft": { summary: "list known same-tokenizer draft models for a target (and check a pair's tokenizers)", run: async (a) => (await import("./suggest-draft.js")).suggestDraftCommand(a) },
  demo: { summary: "the `npm start` job: build the embedded demo model and compare methods", run: async (a) => (await import("./demo.js")).demoCommand(a) },
};

/** Commands contributed by other modules register here (one line each). */
export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    "Usage: spec-decode <command> [options]   (spec-decode <command> --help for its options)",
    "",
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
  ].join("\n");
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === "--help" || cmd === "-h" || cmd === "help") {
    console.log(usage());
    return cmd ? 0 : 1;
  }
  const command = COMMANDS[cmd];
  if (!command) {
    process.stderr.write(`spec-decode: unknown command "${cmd}".\n\n${usage()}\n`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    const prefix = err instanceof SpecDecodeError ? `error (${err.code})` : "error";
    process.stderr.write(`spec-decode ${cmd}: ${prefix}: ${renderError(err, CLI_VOCABULARY)}\n`);
    if (!(err instanceof SpecDecodeError) && process.env.SPEC_DECODE_DEBUG) console.error(err);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`spec-decode: ${errorMessage(err)}\n`);
    process.exitCode = 1;
  },
);
