/** Path confinement of the MCP server: every model path must resolve inside a configured root. */
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ModelRoots, configuredModelRoots, defaultModelRoots, huggingFaceCacheDir } from "../../src/mcp/roots.js";
import { tempDir } from "../helpers/fixtures.js";

describe("ModelRoots", () => {
  let base: string;
  let root: string;
  let hub: string;
  let outside: string;
  let roots: ModelRoots;

  beforeAll(() => {
    base = tempDir("roots");
    root = join(base, "models");
    hub = join(base, "hub");
    outside = join(base, "outside");
    for (const d of [join(root, "org", "m1"), join(outside, "secret"), join(hub, "models--acme--tiny-lm", "snapshots", "abc123"), join(hub, "models--acme--tiny-lm", "refs")]) {
      mkdirSync(d, { recursive: true });
    }
    writeFileSync(join(root, "org", "m1", "config.json"), "{}");
    writeFileSync(join(outside, "secret", "config.json"), "{}");
    writeFileSync(join(hub, "models--acme--tiny-lm", "refs", "main"), "abc123");
    symlinkSync(join(outside, "secret"), join(root, "escape-link"));
    mkdirSync(join(root, "sneaky"));
    symlinkSync(join(outside, "secret", "config.json"), join(root, "sneaky", "model.onnx"));
    roots = new ModelRoots([root, hub]);
  });
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it("resolves absolute paths and paths relative to a root", () => {
    expect(roots.resolve(join(root, "org", "m1"))).toBe(join(roots.roots[0]!, "org", "m1"));
    expect(roots.resolve("org/m1")).toBe(join(roots.roots[0]!, "org", "m1"));
  });

  it("resolves a Hugging Face repo id to its cached snapshot", () => {
    expect(roots.resolve("acme/tiny-lm")).toBe(join(roots.roots[1]!, "models--acme--tiny-lm", "snapshots", "abc123"));
  });

  it("refuses paths outside the roots, naming the roots and how to add one", () => {
    const msg = () => roots.resolve(join(outside, "secret"));
    expect(msg).toThrow(/outside the model roots/);
    expect(msg).toThrow(/--model-root/);
    expect(msg).toThrow(/SPEC_DECODE_MODEL_ROOTS/);
    expect(msg).toThrow(root.split("/").pop()!);
    expect(() => roots.resolve("../outside/secret")).toThrow(/outside the model roots/);
    expect(() => roots.resolve("org/../../outside/secret")).toThrow(/outside the model roots/);
  });

  it("follows symlinks before checking (a link inside a root cannot point out)", () => {
    expect(() => roots.resolve("escape-link")).toThrow(/outside the model roots/);
    expect(() => roots.resolve("sneaky")).toThrow(/link to .* outside the model roots/);
  });

  it("says how to find models when a path does not exist", () => {
    expect(() => roots.resolve("nope/nothing")).toThrow(/list_models/);
  });

  it("confines not-yet-existing output paths too", () => {
    expect(roots.resolve("new/dir", "out", { mustExist: false })).toBe(join(roots.roots[0]!, "new", "dir"));
    expect(() => roots.resolve(join(outside, "new"), "out", { mustExist: false })).toThrow(/outside the model roots/);
  });

  it("takes roots from flags, else the environment, else the defaults", () => {
    expect(configuredModelRoots(["/a"], { SPEC_DECODE_MODEL_ROOTS: "/b:/c" })).toEqual(["/a"]);
    expect(configuredModelRoots([], { SPEC_DECODE_MODEL_ROOTS: "/b:/c" })).toEqual(["/b", "/c"]);
    const env = { HOME: "/home/u", HF_HOME: "/data/hf", SPEC_DECODE_CACHE: "/data/sd" };
    expect(configuredModelRoots([], env)).toEqual(defaultModelRoots(env));
    expect(defaultModelRoots(env)).toEqual(["/data/sd", "/data/hf/hub"]);
    expect(huggingFaceCacheDir({ HF_HUB_CACHE: "/x/hub" })).toBe("/x/hub");
  });
});
