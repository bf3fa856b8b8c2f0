/**
 * The skill's documents against the code: SKILL.md frontmatter (Agent Skills spec), size, tool
 * names both ways, every JSON recipe validated against the tool's input schema, relative links,
 * and the defaults the documents state.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { DEFAULT_CONFIDENCE_THRESHOLD, K_MAX } from "../../src/decoding/controllers.js";
import { EAGLE_DEFAULTS } from "../../src/decoding/eagle.js";
import { LOOKAHEAD_DEFAULTS } from "../../src/decoding/lookahead.js";
import { TYPICAL_DEFAULTS } from "../../src/decoding/medusa.js";
import { PROMPT_LOOKUP_DEFAULTS } from "../../src/decoding/prompt-lookup.js";
import { DEFAULT_HTTP_PORT } from "../../src/mcp/http.js";
import { TOOL_NAMES } from "../../src/mcp/tools/index.js";
import * as generate from "../../src/mcp/tools/generate-speculative.js";
import * as measure from "../../src/mcp/tools/measure-speedup.js";
import * as tune from "../../src/mcp/tools/tune-draft-k.js";
import * as buildModel from "../../src/mcp/tools/build-model.js";
import * as listModels from "../../src/mcp/tools/list-models.js";
import * as loadModel from "../../src/mcp/tools/load-model.js";
import * as unloadModel from "../../src/mcp/tools/unload-model.js";
import * as modelInfo from "../../src/mcp/tools/model-info.js";
import * as pullModel from "../../src/mcp/tools/pull-model.js";
import * as suggestDraft from "../../src/mcp/tools/suggest-draft.js";
import { methodOptionsSchema } from "../../src/mcp/tool-kit.js";
import { REPO } from "./helpers.js";
import { frontmatter } from "../helpers/frontmatter.js";

const INPUT_SCHEMAS: Record<string, z.ZodRawShape> = Object.fromEntries(
  [generate, measure, tune, buildModel, listModels, loadModel, unloadModel, modelInfo, pullModel, suggestDraft].map((t) => [t.name, t.inputSchema]),
);

const skillPath = join(REPO, "SKILL.md");
const skill = readFileSync(skillPath, "utf8");
const refDir = join(REPO, "references");
const refs = readdirSync(refDir)
  .filter((f) => f.endsWith(".md"))
  .map((f) => ({ file: join(refDir, f), text: readFileSync(join(refDir, f), "utf8") }));
const docs = [{ file: skillPath, text: skill }, ...refs];

describe("SKILL.md", () => {
  const fm = frontmatter(skill);

  it("has spec-valid frontmatter", () => {
    expect(fm.name).toBe("speculative-decoding");
    expect(fm.name!).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/);
    expect(fm.name!.length).toBeLessThanOrEqual(64);
    expect(fm.description!.length).toBeGreaterThan(50);
    expect(fm.description!.length).toBeLessThan(1024);
    expect(fm.description).toMatch(/Use it when/);
    if (fm.compatibility) expect(fm.compatibility.length).toBeLessThanOrEqual(500);
  });

  it("is under 500 lines", () => {
    expect(skill.split("\n").length).toBeLessThan(500);
  });

  it("mentions every registered tool", () => {
    for (const name of TOOL_NAMES) expect(skill, name).toContain(`\`${name}\``);
  });
});

describe("SKILL.md and references/ against the code", () => {
  it("name only tools that exist", () => {
    const toolLike = /\b(?:generate|tune|measure|list|load|unload|model|build|pull|suggest)_[a-z_]+\b/g;
    for (const d of docs) {
      for (const m of d.text.matchAll(toolLike)) expect(TOOL_NAMES, `${d.file}: ${m[0]}`).toContain(m[0]);
    }
  });

  it("have recipes whose arguments each tool accepts", () => {
    let n = 0;
    for (const d of docs) {
      for (const m of d.text.matchAll(/```json\n([\s\S]*?)```/g)) {
        const block = JSON.parse(m[1]!) as { tool?: string; arguments?: unknown; mcpServers?: unknown };
        if (block.tool === undefined) continue;
        n++;
        expect(TOOL_NAMES, `${d.file}: recipe for ${block.tool}`).toContain(block.tool);
        const r = z.object(INPUT_SCHEMAS[block.tool]!).strict().safeParse(block.arguments);
        expect(r.success, `${d.file}: ${block.tool} ${JSON.stringify(block.arguments)}: ${r.success ? "" : r.error.message}`).toBe(true);
      }
    }
    expect(n).toBeGreaterThanOrEqual(8);
  });

  it("name only parameters that exist", () => {
    const methodKeys = Object.keys(methodOptionsSchema.shape);
    const generateKeys = Object.keys(generate.inputSchema);
    for (const d of docs) {
      for (const m of d.text.matchAll(/`methodOptions\.(\w+)`/g)) expect(methodKeys, `${d.file}: ${m[0]}`).toContain(m[1]);
    }
    // Parameter tables of the technique references: every name in the first column is an argument
    // of generate_speculative or a method option.
    for (const f of ["draft-model.md", "prompt-lookup.md", "lookahead.md", "medusa.md", "eagle.md", "early-exit.md"]) {
      const text = readFileSync(join(refDir, f), "utf8");
      for (const row of text.split("\n").filter((l) => l.startsWith("| `"))) {
        const cell = row.split("|")[1]!;
        for (const m of cell.matchAll(/`(?:methodOptions\.)?(\w+)`/g)) expect([...generateKeys, ...methodKeys], `${f}: ${m[1]}`).toContain(m[1]);
      }
    }
  });

  it("link only to files that exist", () => {
    for (const d of docs) {
      for (const m of d.text.matchAll(/\]\(([^)#]+\.md)\)/g)) {
        if (/^https?:/.test(m[1]!)) continue;
        expect(existsSync(join(dirname(d.file), m[1]!)), `${d.file} -> ${m[1]}`).toBe(true);
      }
    }
  });

  it("state the defaults the code has", () => {
    const known: Record<string, number | string> = {
      maxNgram: PROMPT_LOOKUP_DEFAULTS.maxNgram,
      minNgram: PROMPT_LOOKUP_DEFAULTS.minNgram,
      numPredict: PROMPT_LOOKUP_DEFAULTS.numPredict,
      window: LOOKAHEAD_DEFAULTS.window,
      ngram: LOOKAHEAD_DEFAULTS.ngram,
      guesses: LOOKAHEAD_DEFAULTS.guesses,
      posteriorThreshold: TYPICAL_DEFAULTS.posteriorThreshold,
      posteriorAlpha: TYPICAL_DEFAULTS.posteriorAlpha,
      treeTotal: EAGLE_DEFAULTS.total,
      treeDepth: EAGLE_DEFAULTS.depth,
      treeTopK: EAGLE_DEFAULTS.topK,
    };
    let checked = 0;
    for (const d of docs) {
      for (const row of d.text.split("\n").filter((l) => l.startsWith("| `"))) {
        const opt = /^\| `(?:methodOptions\.)?(\w+)` \|/.exec(row)?.[1];
        const def = /\(default ([^)]+)\)/.exec(row);
        if (opt && def && opt in known) {
          expect(def[1], `${d.file}: ${opt}`).toBe(String(known[opt]));
          checked++;
        }
      }
      for (const m of d.text.matchAll(/\b1 to (\d+)\b/g)) expect(Number(m[1]), `${d.file}: K range`).toBe(K_MAX);
    }
    expect(checked).toBe(11);
    expect(readFileSync(join(refDir, "draft-model.md"), "utf8")).toContain(`(default ${DEFAULT_CONFIDENCE_THRESHOLD})`);

    // The tool defaults SKILL.md lists.
    const g = z.object(generate.inputSchema).parse({ model: "m", prompt: "p" });
    const ms = z.object(measure.inputSchema).parse({ model: "m", methods: ["baseline"] });
    const t = z.object(tune.inputSchema).parse({ model: "m" });
    expect(skill).toContain(`\`method\` \`${g.method}\`, \`maxNewTokens\` ${g.maxNewTokens}`);
    expect(skill).toContain(`\`maxNewTokens\` ${ms.maxNewTokens}, \`repeats\` ${ms.repeats}, \`warmup\` ${ms.warmup}`);
    expect(skill).toContain(`\`ks\` [${t.ks.join(", ")}], \`controllers\` all three, \`repeats\` ${t.repeats}`);
    expect(t.controllers.length).toBe(3);
    expect(readFileSync(join(refDir, "setup.md"), "utf8")).toContain(`http://127.0.0.1:${DEFAULT_HTTP_PORT}/mcp`);
  });
});
