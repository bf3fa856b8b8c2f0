/** Medusa heads opened by a test file, freed together in its afterAll. */
import { loadMedusaHeads as openHeads, type MedusaHeadsModel } from "../../src/decoding/medusa.js";

const openedHeads: MedusaHeadsModel[] = [];

export async function loadMedusaHeads(path: string): Promise<MedusaHeadsModel> {
  const h = await openHeads(path);
  openedHeads.push(h);
  return h;
}

export async function disposeOpenedHeads(): Promise<void> {
  for (const h of openedHeads.splice(0)) await h.dispose();
}
