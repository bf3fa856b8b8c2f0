/** Random Medusa heads for tests, written in the Medusa project's naming. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SeededRandom } from "../../src/builder/fixture.js";
import { writeMedusaHeads, type MedusaHead } from "../../src/builder/medusa-heads.js";
import { writeSafetensors, type TensorToWrite } from "../../src/builder/safetensors.js";

export function randomHeads(o: { heads: number; layers: number; hidden: number; vocab: number; seed: number; lmScale?: number }): MedusaHead[] {
  const rng = new SeededRandom(o.seed);
  const fill = (n: number, std: number) => Float32Array.from({ length: n }, () => std * rng.normal());
  return Array.from({ length: o.heads }, () => ({
    blocks: Array.from({ length: o.layers }, () => ({ weight: fill(o.hidden * o.hidden, 1 / Math.sqrt(o.hidden)), bias: fill(o.hidden, 0.1) })),
    lmHead: fill(o.vocab * o.hidden, (o.lmScale ?? 4) / Math.sqrt(o.hidden)),
  }));
}

/** Write random heads with our writer (Medusa names, config.json). Returns the directory. */
export function writeRandomHeads(dir: string, o: Parameters<typeof randomHeads>[0]): string {
  writeMedusaHeads(dir, randomHeads(o), { baseModel: "test" });
  return dir;
}

/**
 * Write heads exactly as the Medusa project's training script saves them: the state dict of
 * `medusa_head` (optionally with a name prefix), F16/BF16 allowed, config.json with only
 * medusa_num_heads / medusa_num_layers / base_model_name_or_path.
 */
export function writeMedusaProjectHeads(
  dir: string,
  heads: MedusaHead[],
  o: { prefix?: string; dtype?: "F32" | "F16" | "BF16"; config?: boolean } = {},
): void {
  mkdirSync(dir, { recursive: true });
  const hidden = heads[0]!.blocks[0]!.bias.length;
  const V = heads[0]!.lmHead.length / hidden;
  const L = heads[0]!.blocks.length;
  const p = o.prefix ?? "";
  const tensors: TensorToWrite[] = [];
  heads.forEach((h, i) => {
    h.blocks.forEach((b, j) => {
      tensors.push({ name: `${p}${i}.${j}.linear.weight`, dims: [hidden, hidden], data: b.weight, dtype: o.dtype });
      tensors.push({ name: `${p}${i}.${j}.linear.bias`, dims: [hidden], data: b.bias, dtype: o.dtype });
    });
    tensors.push({ name: `${p}${i}.${L}.weight`, dims: [V, hidden], data: h.lmHead, dtype: o.dtype });
  });
  writeSafetensors(join(dir, "medusa_lm_head.safetensors"), tensors, { format: "pt" });
  if (o.config ?? true) {
    writeFileSync(
      join(dir, "config.json"),
      JSON.stringify({ medusa_num_heads: heads.length, medusa_num_layers: L, base_model_name_or_path: "lmsys/vicuna-7b-v1.3", transformers_version: "4.33.0" }),
    );
  }
}
