/** EAGLE's tree width from measured costs (treeTopK and treeTotal not given). */
import { describe, expect, it } from "vitest";
import { EagleShape, bestShape, candidateWidths, subtreeScores, type ShapeNode } from "../../src/decoding/eagle-shape.js";

/**
 * A drafted wide tree as eagle.ts builds it: K children per node (best first), the K best of each
 * layer expanded. The head is confident in its top child (p1) and spreads the rest (each sibling p).
 */
function wideTree(K: number, depth: number, p1: number, p: number): ShapeNode[] {
  const nodes: ShapeNode[] = [];
  const kids = (parent: number, base: number) =>
    Array.from({ length: K }, (_, j) => nodes.push({ parent, score: base + Math.log(j === 0 ? p1 : p) }) - 1);
  let layer = kids(-1, 0);
  for (let d = 1; d < depth; d++) {
    const expand = [...layer].sort((a, b) => nodes[b]!.score - nodes[a]!.score || a - b).slice(0, K);
    layer = expand.flatMap((i) => kids(i, nodes[i]!.score));
  }
  return nodes;
}

describe("EagleShape", () => {
  it("candidate widths and the width-w subtree of a wide round", () => {
    expect(candidateWidths(6)).toEqual([6, 4, 2, 1]);
    expect(candidateWidths(1)).toEqual([1]);
    expect(candidateWidths(8)).toEqual([8, 4, 2, 1]);
    const nodes = wideTree(6, 6, 0.8, 0.03);
    // The chain is the top-1 path: depth nodes, scores log(0.8^d).
    const chain = subtreeScores(nodes, 1, 6);
    expect(chain.length).toBe(6);
    chain.forEach((s, d) => expect(s).toBeCloseTo((d + 1) * Math.log(0.8), 9));
    expect(subtreeScores(nodes, 6, 6).length).toBe(nodes.length);
    expect(subtreeScores(nodes, 2, 6).length).toBe(2 + 5 * 4);
  });

  it("chooses a chain when head rows are dear and verification cheap, the wide tree when rows are cheap", () => {
    const nodes = wideTree(6, 6, 0.7, 0.05);
    const base = { verifyMs: (T: number) => 10 + 0.05 * T, fixedMs: 1, g: () => 1 };
    // 1.5 ms per expanded row (a wide vocabulary's LM head on a CPU): 30 rows wide, 5 as a chain.
    const dear = bestShape(nodes, candidateWidths(6), 6, 64, { ...base, draftMs: (r) => 1 + 1.5 * r });
    expect(dear.width).toBe(1);
    expect(dear.total).toBe(6);
    // Rows nearly free: the wide tree's extra nodes pay for themselves.
    const cheap = bestShape(nodes, candidateWidths(6), 6, 64, { ...base, draftMs: (r) => 1 + 0.001 * r });
    expect(cheap.width).toBe(6);
    expect(cheap.total).toBeGreaterThan(6);
    // Steep verification makes the extra nodes dear again.
    const steep = bestShape(nodes, candidateWidths(6), 6, 64, { ...base, verifyMs: (T) => 1 + 2 * T, draftMs: (r) => 1 + 0.001 * r });
    expect(steep.total).toBeLessThan(cheap.total);
  });

  it("probes wide then a chain, decides after wide rounds, re-probes wide after the interval", () => {
    const s = new EagleShape(6);
    const nodes = wideTree(6, 6, 0.7, 0.05);
    const verify = (T: number) => 10 + 0.05 * T;
    const round = (w: number) => s.timeDraft(w * 5, 1 + 1.5 * w * 5);
    expect(s.next()).toBe(6);
    round(6);
    expect(s.decide(nodes, 6, 6, 64, 1, () => 1, () => undefined)).toBe(6); // verify cost not yet known
    expect(s.next()).toBe(1); // second row count
    round(1);
    expect(s.next()).toBe(6); // first decision round
    round(6);
    expect(s.decide(nodes, 6, 6, 64, 1, () => 1, verify)).toBe(1);
    const seq = Array.from({ length: 5 }, () => s.next());
    expect(seq).toEqual([1, 1, 1, 1, 6]); // the choice holds MIN_INTERVAL (4) rounds, then a wide probe
    expect(s.decide(nodes, 6, 6, 64, 1, () => 1, verify)).toBe(1);
    const seq2 = Array.from({ length: 9 }, () => s.next());
    expect(seq2).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 6]); // the same choice again: the interval doubles
    expect(s.summary()).toBe("6:4 1:13");
    expect(s.meanWidth()).toBeCloseTo((6 * 4 + 13) / 17, 9);
    // Cheap rows at the next wide round: back to the wide tree for every round.
    for (let i = 0; i < 9; i++) s.timeDraft(30, 1.03);
    for (let i = 0; i < 9; i++) s.timeDraft(5, 1.005);
    expect(s.decide(nodes, 6, 6, 64, 1, () => 1, verify)).toBe(6);
    expect([s.next(), s.next()]).toEqual([6, 6]);
  });

  it("a narrower round re-decides only among widths up to its own", () => {
    const s = new EagleShape(6);
    s.timeDraft(30, 1.03);
    s.timeDraft(5, 1.005);
    // Rows nearly free: wide would win, but a width-2 round cannot see it.
    const narrow = wideTree(2, 6, 0.7, 0.05);
    expect(s.decide(narrow, 2, 6, 64, 1, () => 1, (T) => 10 + 0.05 * T)).toBe(2);
  });
});
