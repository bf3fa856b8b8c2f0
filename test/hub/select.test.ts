/** Repo references, file selection per variant, and what a hostile listing cannot do. */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HubError, parseRepoRef, pullModel } from "../../src/hub/index.js";
import { selectFiles, type RepoFile } from "../../src/hub/select.js";
import { suggestDrafts } from "../../src/hub/drafts.js";
import { tempDir } from "../helpers/fixtures.js";
import { FakeHub } from "./fake-hub.js";

const f = (path: string, size = 10): RepoFile => ({ path, size, oid: "0".repeat(64), lfs: path.endsWith(".onnx") || path.includes("_data") });

describe("parseRepoRef", () => {
  it("reads org/name, @revision and :variant; leaves paths alone", () => {
    expect(parseRepoRef("Qwen/Qwen2.5-0.5B-Instruct")).toEqual({ repo: "Qwen/Qwen2.5-0.5B-Instruct", revision: "main", variant: undefined });
    expect(parseRepoRef("onnx-community/Qwen3-0.6B-ONNX@v1.0:q4f16")).toEqual({ repo: "onnx-community/Qwen3-0.6B-ONNX", revision: "v1.0", variant: "q4f16" });
    expect(parseRepoRef("org/name@refs/pr/3")?.revision).toBe("refs/pr/3");
    for (const p of ["./models/x", "/abs/path", "a/b/c", "model", "../x/y", "x/model.onnx"]) expect(parseRepoRef(p), p).toBeUndefined();
    expect(() => parseRepoRef("org/name@../../etc")).toThrow(/not a valid branch/);
  });
});

describe("selectFiles", () => {
  const listing = [
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "README.md", "model.safetensors",
    "onnx/model.onnx", "onnx/model.onnx_data", "onnx/model_fp16.onnx", "onnx/model_fp16.onnx_data",
    "onnx/model_q4.onnx", "onnx/model_q4.onnx_data", "onnx/model_q4.onnx_data_1", "onnx/model_q4f16.onnx",
  ].map((p) => f(p));

  it("takes the one variant asked for, with its external data, and the small files", () => {
    const plan = selectFiles("o/n", listing, { variant: "q4" });
    expect(plan.modelFile).toBe("onnx/model_q4.onnx");
    expect(plan.files.map((x) => x.path).sort()).toEqual(
      ["config.json", "generation_config.json", "onnx/model_q4.onnx", "onnx/model_q4.onnx_data", "onnx/model_q4.onnx_data_1", "tokenizer.json", "tokenizer_config.json"].sort(),
    );
    expect(selectFiles("o/n", listing, { variant: "fp32" }).modelFile).toBe("onnx/model.onnx");
    expect(selectFiles("o/n", listing, { variant: "model_fp16.onnx" }).modelFile).toBe("onnx/model_fp16.onnx");
    expect(selectFiles("o/n", listing).modelFile).toBe("onnx/model.onnx");
  });

  it("falls back to safetensors (then a build) only without ONNX files, and names the variants it has", () => {
    const st = selectFiles("o/n", listing.filter((x) => !x.path.startsWith("onnx/")));
    expect(st.kind).toBe("safetensors");
    expect(st.files.map((x) => x.path)).toContain("model.safetensors");
    try {
      selectFiles("o/n", listing, { variant: "int3" });
      throw new Error("expected an error");
    } catch (err) {
      expect(err).toBeInstanceOf(HubError);
      expect((err as Error).message).toMatch(/Available variants: fp32, fp16, q4, q4f16/);
    }
    expect(() => selectFiles("o/n", [f("README.md")])).toThrow(/neither an ONNX decoder/);
  });
});

describe("suggestDrafts", () => {
  it("matches families by repo name, ONNX mirrors included", () => {
    expect(suggestDrafts("Qwen/Qwen2.5-7B-Instruct")?.family).toBe("Qwen2.5");
    expect(suggestDrafts("onnx-community/Qwen3-4B-ONNX")?.drafts[0]?.repo).toBe("Qwen/Qwen3-0.6B");
    expect(suggestDrafts("HuggingFaceTB/SmolLM2-1.7B-Instruct")?.family).toBe("SmolLM2");
    expect(suggestDrafts("Qwen/Qwen2.5-0.5B-Instruct")).toBeNull(); // already the smallest
    expect(suggestDrafts("someone/unknown-model")).toBeNull();
  });
});

describe("a hostile listing", () => {
  let hub: FakeHub;
  beforeAll(async () => {
    hub = new FakeHub();
    await hub.start();
    const src = tempDir("hub-evil");
    mkdirSync(join(src, "onnx"));
    writeFileSync(join(src, "config.json"), "{}");
    writeFileSync(join(src, "onnx", "model.onnx"), "x");
    hub.addRepo("evil/repo", src);
    const content = Buffer.from("pwned");
    hub.repos.get("evil/repo")!.files.set("onnx/../../../../escape.onnx", {
      content,
      lfs: true,
      sha256: createHash("sha256").update(content).digest("hex"),
      gitSha1: createHash("sha1").update(content).digest("hex"),
    });
  });
  afterAll(async () => hub.stop());

  it("cannot make a pull write outside the cache", async () => {
    const root = tempDir("hub-evil-cache");
    const env = { HF_ENDPOINT: hub.url, HF_HOME: join(root, "hf"), HF_HUB_CACHE: join(root, "hf", "hub"), SPEC_DECODE_CACHE: join(root, "ours") };
    await expect(pullModel("evil/repo", { env })).rejects.toThrow(/unsafe path/);
    expect(existsSync(join(root, "escape.onnx"))).toBe(false);
    expect(existsSync(join(root, "hf", "escape.onnx"))).toBe(false);
  });
});
