export { Rng } from "./rng.js";
export { type SamplingOptions, validateSamplingOptions, isGreedy } from "./options.js";
export { applyRepetitionPenalty, argmax, greedyToken, toProbabilities } from "./processors.js";
export { sampleFrom, residualDistribution } from "./sample.js";
