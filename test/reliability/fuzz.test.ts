/**
 * Schema-driven fuzz pass over every MCP tool: boundary and wrong-typed values for each argument
 * (nested objects included) are derived from the tool's own zod schema (as JSON Schema), plus a
 * seeded random pass and unknown argument names. After each call, a good call must succeed. No
 * call may crash the server, answer with a transport error, or be reported as an internal bug;
 * unknown names must be errors that name the nearest valid argument. RSS stays bounded.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { z } from "zod";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/mcp/context.js";
import { strictArgs } from "../../src/mcp/tool-kit.js";
import { ModelStore } from "../../src/engine/model-store.js";
import { TOOLS } from "../../src/mcp/tools/index.js";
import * as buildModel from "../../src/mcp/tools/build-model.js";
import * as generate from "../../src/mcp/tools/generate-speculative.js";
import * as listModels from "../../src/mcp/tools/list-models.js";
import * as loadModel from "../../src/mcp/tools/load-model.js";
import * as measure from "../../src/mcp/tools/measure-speedup.js";
import * as modelInfo from "../../src/mcp/tools/model-info.js";
import * as pullModel from "../../src/mcp/tools/pull-model.js";
import * as suggestDraft from "../../src/mcp/tools/suggest-draft.js";
import * as tune from "../../src/mcp/tools/tune-draft-k.js";
import * as unloadModel from "../../src/mcp/tools/unload-model.js";
import { callOk, connectInMemory, makeMcpFixtures, textOf, type McpFixtures } from "../mcp/helpers.js";
import { Rng } from "../../src/sampling/index.js";

type Json = Record<string, any>;
type Args = Record<string, unknown>;

const MODULES = [generate, tune, measure, listModels, loadModel, unloadModel, modelInfo, buildModel, pullModel, suggestDraft];

let fx: McpFixtures;
let client: Client;
let store: ModelStore;

/**
 * Tools whose valid boundary values may run long (builds, benchmarks) or reach the network
 * (pull_model; measure_speedup's endpoint URLs): only values that are invalid by construction are
 * sent to them, so no fuzzed call ever opens a connection.
 */
const HEAVY = new Set(["build_model", "measure_speedup", "tune_draft_k", "pull_model"]);

function baseArgs(tool: string): Args {
  switch (tool) {
    case "generate_speculative":
      return { model: fx.model, promptIds: [1, 2, 3], maxNewTokens: 3, method: "baseline" };
    case "measure_speedup":
    case "tune_draft_k":
    case "model_info":
    case "load_model":
    case "unload_model":
      return { model: fx.model };
    case "build_model":
      return { model: fx.buildDir };
    default:
      return {};
  }
}

/** Values for one property: [value, validByConstruction?]. Invalid ones must be errors. */
function valuesFor(s: Json, depth = 0): { v: unknown; invalid: boolean }[] {
  const out: { v: unknown; invalid: boolean }[] = [];
  const bad = (v: unknown) => out.push({ v, invalid: true });
  const ok = (v: unknown) => out.push({ v, invalid: false });
  const types: string[] = s.anyOf ? [] : Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
  if (s.anyOf) {
    bad({ "?": 1 });
    bad(-1e300);
    for (const alt of s.anyOf as Json[]) for (const x of valuesFor(alt, depth + 1)) if (!x.invalid) ok(x.v);
    return out;
  }
  if (s.enum) {
    bad("not-a-valid-choice");
    bad(7);
    for (const e of s.enum as unknown[]) ok(e);
    return out;
  }
  if (s.const !== undefined) {
    bad("not-the-constant");
    ok(s.const);
    return out;
  }
  for (const t of types) {
    if (t === "number" || t === "integer") {
      const min = s.minimum ?? (s.exclusiveMinimum !== undefined ? s.exclusiveMinimum : undefined);
      const max = s.maximum ?? (s.exclusiveMaximum !== undefined ? s.exclusiveMaximum : undefined);
      if (min !== undefined) {
        bad(min - 1);
        ok(s.exclusiveMinimum !== undefined ? min + 1 : min);
      }
      if (max !== undefined) {
        bad(max + 1);
        ok(s.exclusiveMaximum !== undefined ? max - 1 : max);
      }
      if (max === undefined) ok(1e12); // unbounded in the schema: the library must bound it
      if (min === undefined) ok(-1e12);
      if (t === "integer") bad(1.5);
      bad("12");
      bad(null);
    } else if (t === "string") {
      bad(42);
      if (s.minLength) bad("");
      if (s.maxLength !== undefined && s.maxLength <= 1 << 16) bad("x".repeat(s.maxLength + 1));
      ok("../../../../etc/passwd");
      ok("with\u0000nul");
      ok("ü".repeat(300));
    } else if (t === "boolean") {
      bad("yes");
      bad(1);
    } else if (t === "array") {
      bad("not-an-array");
      if (s.minItems) bad([]);
      const item = (s.items ?? {}) as Json;
      const goodItem = valuesFor(item, depth + 1).find((x) => !x.invalid)?.v;
      if (s.maxItems !== undefined && s.maxItems <= 1000 && goodItem !== undefined) bad(Array.from({ length: s.maxItems + 1 }, () => goodItem));
      for (const x of valuesFor(item, depth + 1).filter((x) => x.invalid).slice(0, 2)) bad([x.v]);
    } else if (t === "object") {
      bad("not-an-object");
      bad([1]);
      bad({ definitelyNotAField: 1 });
      if (depth < 2 && s.properties) {
        for (const [k, ps] of Object.entries(s.properties as Record<string, Json>)) {
          for (const x of valuesFor(ps, depth + 1)) (x.invalid ? bad : ok)({ [k]: x.v });
        }
      }
    }
  }
  return out;
}

async function goodCall() {
  const r = await callOk(client, "generate_speculative", { model: fx.model, promptIds: [5, 6], maxNewTokens: 2, method: "baseline", detail: "full" });
  expect(r.tokens).toHaveLength(2);
}

function checkAnswer(tool: string, args: Args, r: Awaited<ReturnType<Client["callTool"]>>, mustFail: boolean) {
  const text = textOf(r);
  const shown = JSON.stringify(args).slice(0, 300);
  expect(text.length, `${tool} ${shown}: empty answer`).toBeGreaterThan(0);
  expect(text, `${tool} ${shown}`).not.toMatch(/looks like a bug/);
  if (mustFail) expect(r.isError, `${tool} ${shown} should be refused; got: ${text.slice(0, 300)}`).toBe(true);
}

beforeAll(async () => {
  // No call of this suite may reach a Hub: offline mode, and an endpoint nothing listens on.
  process.env.HF_HUB_OFFLINE = "1";
  process.env.HF_ENDPOINT = "http://127.0.0.1:9";
  fx = await makeMcpFixtures("fuzz");
  store = new ModelStore({ maxBytes: 256 * 2 ** 20 });
  ({ client } = await connectInMemory({ store, roots: [fx.root], logger: silentLogger }, "fuzz"));
  await goodCall();
}, 120_000);

afterAll(async () => {
  await client?.close();
  await store?.dispose();
  fx?.cleanup();
});

describe("schema-driven fuzz of every tool", () => {
  it("covers every registered tool", () => {
    expect(MODULES.map((m) => m.name).sort()).toEqual(TOOLS.map((t) => (t as { name: string }).name).sort());
  });

  for (const mod of MODULES) {
    it(`${mod.name}: boundary and wrong-typed values per argument, each followed by a good call`, async () => {
      const schema = z.toJSONSchema(strictArgs(mod.inputSchema as z.ZodRawShape), { io: "input", unrepresentable: "any" }) as Json;
      const rss0 = process.memoryUsage().rss;
      let calls = 0;
      for (const [prop, ps] of Object.entries(schema.properties as Record<string, Json>)) {
        for (const { v, invalid } of valuesFor(ps)) {
          if (HEAVY.has(mod.name) && !invalid) continue;
          const args = { ...baseArgs(mod.name), [prop]: v };
          const r = await client.callTool({ name: mod.name, arguments: args });
          checkAnswer(mod.name, args, r, invalid);
          await goodCall();
          calls++;
        }
      }
      // Unknown names, top level and nested: an error naming the nearest valid argument.
      const names = Object.keys(schema.properties as object);
      for (const name of names.slice(0, 3)) {
        const typo = name.length > 3 ? `${name.slice(0, -1)}_` : `${name}x`;
        const args = { ...baseArgs(mod.name), [typo]: 1 };
        const r = await client.callTool({ name: mod.name, arguments: args });
        checkAnswer(mod.name, args, r, true);
        expect(textOf(r)).toMatch(new RegExp(`unknown argument ${typo}`));
        await goodCall();
      }
      expect(calls).toBeGreaterThan(0);
      expect((process.memoryUsage().rss - rss0) / 2 ** 20).toBeLessThan(300);
    }, 120_000);
  }

  it("names the nearest valid argument, top level and nested", async () => {
    const r1 = await client.callTool({ name: "generate_speculative", arguments: { model: fx.model, promptIds: [1], max_new_tokens: 3 } });
    expect(r1.isError).toBe(true);
    expect(textOf(r1)).toMatch(/unknown argument max_new_tokens — did you mean maxNewTokens\?/);
    const r2 = await client.callTool({ name: "generate_speculative", arguments: { model: fx.model, promptIds: [1], methodOptions: { windw: 3 } } });
    expect(textOf(r2)).toMatch(/unknown argument methodOptions\.windw — did you mean methodOptions\.window\?/);
    const r3 = await client.callTool({ name: "generate_speculative", arguments: { model: fx.model, promptIds: [1], sampling: { temprature: 0.5 } } });
    expect(textOf(r3)).toMatch(/did you mean sampling\.temperature\?/);
    const r4 = await client.callTool({ name: "list_models", arguments: { zzzzzzzz: 1 } });
    expect(textOf(r4)).toMatch(/unknown argument zzzzzzzz; valid arguments: root/);
    await goodCall();
  });

  it("a seeded random pass: random keys of each tool get random values of random types", async () => {
    const rng = new Rng(1234);
    const pick = <T,>(xs: T[]) => xs[Math.floor(rng.next() * xs.length)]!;
    const randomValue = (): unknown =>
      pick<() => unknown>([
        () => Math.floor((rng.next() - 0.5) * 2e9),
        () => rng.next() * 1e6,
        () => "s".repeat(Math.floor(rng.next() * 2000)),
        () => null,
        () => rng.next() < 0.5,
        () => Array.from({ length: Math.floor(rng.next() * 50) }, () => Math.floor(rng.next() * 1e6)),
        () => ({ [pick(["window", "ngram", "k", "x"])]: Math.floor(rng.next() * 1e7) }),
      ])();
    const rss0 = process.memoryUsage().rss;
    for (let i = 0; i < 60; i++) {
      const mod = pick(MODULES);
      const keys = Object.keys(mod.inputSchema);
      const args: Args = { ...baseArgs(mod.name) };
      const nKeys = 1 + Math.floor(rng.next() * 2);
      for (let j = 0; j < nKeys; j++) args[pick(keys)] = randomValue();
      // Heavy tools only ever get a wrong-typed first key (never a runnable request).
      if (HEAVY.has(mod.name)) args.model = 12345;
      const r = await client.callTool({ name: mod.name, arguments: args });
      checkAnswer(mod.name, args, r, HEAVY.has(mod.name));
      await goodCall();
    }
    expect((process.memoryUsage().rss - rss0) / 2 ** 20).toBeLessThan(300);
  }, 120_000);
});
