/**
 * Named errors. Every message says what went wrong and what to do about it. A message that names
 * something the user passes is a function of a Vocabulary (vocabulary.ts): the CLI renders it with
 * flags, the MCP server with tool arguments (`render`); `message` holds the default rendering.
 */
import { LIBRARY_VOCABULARY, renderMessage, type Message, type Vocabulary } from "./vocabulary.js";

export type { Message, Vocabulary } from "./vocabulary.js";

export class SpecDecodeError extends Error {
  /** A short machine-readable code, stable across versions. */
  readonly code: string;
  private readonly source: Message;
  constructor(code: string, message: Message, options?: { cause?: unknown }) {
    super(renderMessage(message, LIBRARY_VOCABULARY), options);
    this.name = new.target.name;
    this.code = code;
    this.source = message;
  }

  /** The message in the words of one surface (CLI flags, MCP tool arguments). */
  render(v: Vocabulary): string {
    return renderMessage(this.source, v);
  }
}

/** An error's message in the words of `v` (SpecDecodeError), or its plain message. */
export function renderError(err: unknown, v: Vocabulary): string {
  return err instanceof SpecDecodeError ? err.render(v) : errorMessage(err);
}

/** A model directory is missing, incomplete or of an unknown layout. */
export class ModelLoadError extends SpecDecodeError {
  constructor(message: Message, options?: { cause?: unknown }) {
    super("MODEL_LOAD", message, options);
  }
}

/** The model's graph does not have the interface the engine needs. */
export class ModelInterfaceError extends SpecDecodeError {
  constructor(message: Message, options?: { cause?: unknown }) {
    super("MODEL_INTERFACE", message, options);
  }
}

/** A checkpoint cannot be converted by the builder (unknown architecture, missing tensors...). */
export class BuildError extends SpecDecodeError {
  constructor(message: Message, options?: { cause?: unknown }) {
    super("BUILD", message, options);
  }
}

/** Draft and target (or heads and base) do not share a vocabulary / hidden size. */
export class VocabMismatchError extends SpecDecodeError {
  constructor(message: Message, options?: { cause?: unknown }) {
    super("VOCAB_MISMATCH", message, options);
  }
}

/** A user-supplied option is out of range or inconsistent. */
export class InvalidOptionError extends SpecDecodeError {
  constructor(message: Message, options?: { cause?: unknown }) {
    super("INVALID_OPTION", message, options);
  }
}

/** The prompt (plus what must be generated) does not fit the model's context. */
export class ContextLengthError extends SpecDecodeError {
  constructor(message: Message, options?: { cause?: unknown }) {
    super("CONTEXT_LENGTH", message, options);
  }
}

/** An execution provider was asked for but cannot be used here. */
export class DeviceError extends SpecDecodeError {
  constructor(message: Message, options?: { cause?: unknown }) {
    super("DEVICE", message, options);
  }
}

/** The tokenizer or chat template could not be loaded or applied. */
export class TokenizerError extends SpecDecodeError {
  constructor(message: Message, options?: { cause?: unknown }) {
    super("TOKENIZER", message, options);
  }
}

/** Work was cancelled by the caller (AbortSignal). */
export class CancelledError extends SpecDecodeError {
  constructor(message = "The operation was cancelled.") {
    super("CANCELLED", message);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
