/** Public library API. */
export { SpecEngine, chooseAutoMethod, DEFAULT_MAX_NEW_TOKENS, type GenerateRequest, type GenerateResponse, type ChatMessage } from "./api.js";
export { CausalLM, type LoadOptions, type ModelInfo, type ForwardOptions, type ForwardOutput } from "./engine/causal-lm.js";
export { KVCache, type KvShape, type KvDtype } from "./engine/kv-cache.js";
export { ModelStore, type LoadedModel, type ModelStoreOptions } from "./engine/model-store.js";
export { inspectModelDir, type ModelDirInfo, type ModelLayout } from "./engine/model-dir.js";
export { DEVICES, type Device } from "./engine/session.js";
export { generateTokens, checkContext, type GenerateTokensRequest, type GenerateTokensResult, type FinishReason } from "./decoding/generate.js";
export { verifyRound, buildTreeInputs } from "./decoding/verify.js";
export { METHOD_NAMES, getMethod, registeredMethods, type MethodName, type MethodOptions, type MethodDefinition } from "./decoding/methods.js";
export type { Proposer, Proposal, DecodeContext, RoundResult, AuxTokens } from "./decoding/proposer.js";
export type { GenerationStats } from "./decoding/stats.js";
export { describeModel, type ModelDescription } from "./decoding/capabilities.js";
export * from "./sampling/index.js";
export { TextTokenizer, StreamDecoder, StopMatcher } from "./text/index.js";
export { buildModelDir, buildDecoderOnnx, makeFixture, readDecoderConfig } from "./builder/index.js";
export * from "./errors.js";
