import { describe, expect, it } from "vitest";
import { InvalidOptionError } from "../../src/errors.js";
import { Rng } from "../../src/sampling/rng.js";
import { StopMatcher } from "../../src/text/stop.js";

function run(stops: string[], chunks: string[]): { text: string; stopped: boolean; stop?: string } {
  const m = new StopMatcher(stops);
  let text = "";
  for (const c of chunks) {
    const r = m.push(c);
    text += r.emit;
    if (r.stopped) return { text, stopped: true, stop: r.stop };
  }
  return { text: text + m.flush(), stopped: false };
}

describe("StopMatcher", () => {
  it("cuts before a stop string split across chunks", () => {
    const m = new StopMatcher(["###"]);
    expect(m.push("Hello #")).toEqual({ emit: "Hello ", stopped: false });
    expect(m.push("#")).toEqual({ emit: "", stopped: false });
    expect(m.push("# bye")).toEqual({ emit: "", stopped: true, stop: "###" });
    expect(m.stopped).toBe(true);
    expect(m.matchedStop).toBe("###");
    expect(m.push("more")).toEqual({ emit: "", stopped: true, stop: "###" });
    expect(m.flush()).toBe("");
  });

  it("releases held text once it cannot be a stop string", () => {
    const m = new StopMatcher(["###"]);
    expect(m.push("a ##")).toEqual({ emit: "a ", stopped: false });
    expect(m.push(" b")).toEqual({ emit: "## b", stopped: false });
    expect(m.push("#")).toEqual({ emit: "", stopped: false });
    expect(m.flush()).toBe("#");
  });

  it("emits the text before the stop in the same chunk", () => {
    expect(run(["\nUser:"], ["The answer is 4.\nUser: next"])).toEqual({ text: "The answer is 4.", stopped: true, stop: "\nUser:" });
  });

  it("picks the earliest of several stops", () => {
    expect(run(["END", "\n\n"], ["one\n", "\ntwo END"])).toEqual({ text: "one", stopped: true, stop: "\n\n" });
    expect(run(["b", "abc"], ["xab"])).toEqual({ text: "xa", stopped: true, stop: "b" });
  });

  it("handles self-overlapping stops", () => {
    expect(run(["abab"], ["aba", "bab"])).toEqual({ text: "", stopped: true, stop: "abab" });
    expect(run(["aab"], ["a", "a", "a", "b", "c"])).toEqual({ text: "a", stopped: true, stop: "aab" });
  });

  it("passes everything through without stops", () => {
    const m = new StopMatcher([]);
    expect(m.push("abc")).toEqual({ emit: "abc", stopped: false });
    expect(m.flush()).toBe("");
  });

  it("rejects empty stop strings", () => {
    expect(() => new StopMatcher(["ok", ""])).toThrow(InvalidOptionError);
  });

  it("agrees with a whole-text search for random texts and chunkings", () => {
    const rng = new Rng(11);
    const alphabet = "ab\n#";
    const stops = ["ab#", "\n\n", "bb"];
    for (let trial = 0; trial < 300; trial++) {
      let text = "";
      const len = 1 + Math.floor(rng.next() * 30);
      for (let i = 0; i < len; i++) text += alphabet[Math.floor(rng.next() * alphabet.length)];
      let cut = -1;
      for (const s of stops) {
        const at = text.indexOf(s);
        if (at !== -1 && (cut === -1 || at < cut)) cut = at;
      }
      const chunks: string[] = [];
      for (let i = 0; i < text.length; ) {
        const k = 1 + Math.floor(rng.next() * 5);
        chunks.push(text.slice(i, i + k));
        i += k;
      }
      const r = run(stops, chunks);
      expect(r.stopped).toBe(cut !== -1);
      expect(r.text).toBe(cut === -1 ? text : text.slice(0, cut));
    }
  });
});
