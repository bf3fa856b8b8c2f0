/** Random EAGLE heads for tests (our writer, the target fixture's shapes). */
import { SeededRandom } from "../../src/builder/fixture.js";
import { eagleConfigFor, writeEagleHead, type EagleHeadWeights } from "../../src/builder/eagle-head.js";
import { readDecoderConfig } from "../../src/builder/config.js";

export function randomEagleWeights(H: number, I: number, seed: number, scale = 1): EagleHeadWeights {
  const rng = new SeededRandom(seed);
  const fill = (n: number, fanIn: number) => Float32Array.from({ length: n }, () => (scale * rng.normal()) / Math.sqrt(fanIn));
  const ones = (n: number) => Float32Array.from({ length: n }, () => 1 + 0.1 * rng.normal());
  return {
    fcWeight: fill(H * 2 * H, 2 * H),
    fcBias: fill(H, 10),
    inputNorm: ones(H),
    q: fill(H * H, H),
    k: fill(H * H, H),
    v: fill(H * H, H),
    o: fill(H * H, H),
    postNorm: ones(H),
    gate: fill(I * H, H),
    up: fill(I * H, H),
    down: fill(H * I, I),
  };
}

/** Write a random head for the target checkpoint in `modelDir` into `dir` (a draft vocabulary, an MLP width other than the target's, when given). */
export function writeRandomEagleHead(
  dir: string,
  modelDir: string,
  seed: number,
  scale = 1,
  opts: { draftVocab?: number[]; intermediateSize?: number } = {},
): string {
  const cfg = readDecoderConfig(modelDir);
  const config = {
    ...eagleConfigFor(cfg, "test"),
    ...(opts.draftVocab ? { draftVocab: Int32Array.from(opts.draftVocab) } : {}),
    ...(opts.intermediateSize !== undefined ? { intermediateSize: opts.intermediateSize } : {}),
  };
  writeEagleHead(dir, config, randomEagleWeights(cfg.hiddenSize, config.intermediateSize, seed, scale));
  return dir;
}
