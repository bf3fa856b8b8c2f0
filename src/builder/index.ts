/**
 * The model builder: Hugging Face Llama-family checkpoints (config.json + safetensors) -> ONNX
 * graphs with the engine's interface, random tiny fixtures, and a float64 reference forward.
 */
export { buildModelDir, checkEarlyExit, genaiConfigFor, type BuildLayout, type BuildModelDirOptions } from "./build-dir.js";
export { checkCheckpoint, checkpointNames, type CheckpointNames } from "./checkpoint.js";
export {
  parseDecoderConfig,
  readDecoderConfig,
  ropeInvFreq,
  ropeTables,
  SUPPORTED_ARCHITECTURES,
  type Architecture,
  type DecoderConfig,
  type RopeScaling,
} from "./config.js";
export { fixtureConfigJson, fixtureTensors, makeFixture, SeededRandom, type FixtureOptions } from "./fixture.js";
export { BUILDER_VERSION, buildDecoderOnnx, type BuildDecoderOptions } from "./llama.js";
export { GraphBuilder, MS_DOMAIN, MS_OPSET, ONNX_IR_VERSION, ONNX_OPSET, attr, type DType, type Dim } from "./onnx-graph.js";
export { referenceLogits } from "./reference.js";
export {
  ACCURACY_LEVELS,
  BLOCK_SIZES,
  QUANTIZE_KINDS,
  dequantizeMatrix,
  earlyExitFileName,
  fakeQuantize,
  modelFileName,
  quantizeFromArgs,
  quantizeMatrix,
  resolveQuantize,
  variantSuffix,
  type AccuracyLevel,
  type BlockSize,
  type QuantizeKind,
  type QuantizeOptions,
  type QuantizedMatrix,
  type ResolvedQuantize,
} from "./quantize.js";
export {
  MemoryWeights,
  openSafetensorsDir,
  SafetensorsSource,
  writeSafetensors,
  writeShardedSafetensors,
  type TensorToWrite,
  type WeightSource,
  type WeightTensor,
} from "./safetensors.js";
