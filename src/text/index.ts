export {
  TextTokenizer,
  type ChatMessage,
  type ChatTemplateOptions,
  type DecodeOptions,
  type EncodeOptions,
  type TokenizerExtras,
  type VocabComparison,
} from "./tokenizer.js";
export { StreamDecoder, type StreamDecoderOptions } from "./stream-decoder.js";
export { StopMatcher, type StopPushResult } from "./stop.js";
export {
  makeFixtureTokenizer,
  writeFixtureTokenizer,
  type FixtureTokenizer,
  FIXTURE_BOS,
  FIXTURE_EOS,
  FIXTURE_PAD,
  FIXTURE_UNK,
  FIXTURE_CHAT_TEMPLATE,
  FIXTURE_MIN_VOCAB,
  FIXTURE_BYTE_LEVEL_MIN_VOCAB,
} from "./fixture-tokenizer.js";
export { displayText, type DisplayTextOptions } from "./display.js";
