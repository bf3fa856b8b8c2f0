/** Models from the Hugging Face Hub: repo ids anywhere a model directory goes. */
export { HubError, type HubErrorCode } from "./errors.js";
export { parseRepoRef, formatRepoRef, type RepoRef } from "./repo-id.js";
export { resolveModel, pullModel, pullSummary, lookupCache, type ResolveOptions, type ResolvedModel, type PulledModel } from "./resolve.js";
export { hubSettings, type HubOptions, type HubProgress } from "./pull.js";
export { describeSnapshot, huggingFaceCacheDir, type CachedSnapshot } from "./cache.js";
