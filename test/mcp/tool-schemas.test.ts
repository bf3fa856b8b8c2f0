/**
 * tools/list as a client sees it (SDK Client over InMemoryTransport):
 *  - its JSON stays under 15,000 characters (it is part of every conversation);
 *  - every parameter, nested ones included, has a description;
 *  - one snapshot file per tool in test/mcp/tool-schemas/<tool>.json, so that a schema change is a
 *    visible diff. `UPDATE_TOOL_SCHEMAS=1 npx vitest run test/mcp/tool-schemas.test.ts` rewrites them.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { maxThreads } from "../../src/engine/session.js";
import { silentLogger } from "../../src/mcp/context.js";
import { TOOLS } from "../../src/mcp/tools/index.js";
import { connectInMemory, REPO } from "./helpers.js";
import { tempDir } from "../helpers/fixtures.js";

const DIR = join(REPO, "test", "mcp", "tool-schemas");
const UPDATE = process.env.UPDATE_TOOL_SCHEMAS === "1";
/** The bound on tools/list (JSON characters). It was ~51.5k before issue #12. */
const TOOLS_LIST_MAX_CHARS = 15_000;

type Json = Record<string, any>;
let client: Client;
let tools: Json[];

beforeAll(async () => {
  ({ client } = await connectInMemory({ roots: [tempDir("tool-schemas")], logger: silentLogger }, "schemas"));
  tools = (await client.listTools()).tools as Json[];
});

afterAll(async () => {
  await client?.close();
});

/**
 * The snapshot text of a tool: the machine-dependent value (the core count bounds load_model's threads)
 * replaced where it is, not as text (a text replace also hit e.g. `"maximum": 20` on a 2-core machine).
 */
function snapshot(tool: Json): string {
  const copy = structuredClone(tool);
  const threads = copy.inputSchema?.properties?.threads;
  if (threads?.maximum === maxThreads()) threads.maximum = "<cores>";
  return `${JSON.stringify(copy, null, 2)}\n`;
}

/** Properties without a description, as paths (nested objects and array items included). */
function undescribed(schema: Json, path: string, out: string[] = []): string[] {
  for (const [name, prop] of Object.entries((schema.properties ?? {}) as Record<string, Json>)) {
    const p = `${path}.${name}`;
    if (!prop.description) out.push(p);
    if (prop.properties) undescribed(prop, p, out);
    if (prop.items?.properties) undescribed(prop.items, `${p}[]`, out);
    for (const alt of (prop.items?.anyOf ?? []) as Json[]) if (alt.properties) undescribed(alt, `${p}[]`, out);
  }
  return out;
}

describe("tools/list", () => {
  it(`stays under ${TOOLS_LIST_MAX_CHARS} characters`, async () => {
    const size = JSON.stringify(await client.listTools()).length;
    const perTool = Object.fromEntries(tools.map((t) => [t.name, JSON.stringify(t).length]));
    expect(size, JSON.stringify(perTool)).toBeLessThan(TOOLS_LIST_MAX_CHARS);
  });

  it("describes every parameter of every tool", () => {
    expect(tools.map((t) => t.name).sort()).toEqual(TOOLS.map((t) => t.name).sort());
    const missing = tools.flatMap((t) => undescribed(t.inputSchema as Json, t.name as string));
    expect(missing).toEqual([]);
    for (const t of tools) expect((t.description as string).length, t.name).toBeGreaterThan(40);
  });

  it("matches the snapshot of every tool schema (UPDATE_TOOL_SCHEMAS=1 rewrites them)", () => {
    if (UPDATE) {
      rmSync(DIR, { recursive: true, force: true });
      mkdirSync(DIR, { recursive: true });
    }
    for (const t of tools) {
      const file = join(DIR, `${t.name}.json`);
      if (UPDATE) writeFileSync(file, snapshot(t));
      expect(existsSync(file), `${file} missing: run with UPDATE_TOOL_SCHEMAS=1`).toBe(true);
      expect(snapshot(t), `${t.name} changed: review the diff, then run with UPDATE_TOOL_SCHEMAS=1`).toBe(readFileSync(file, "utf8"));
    }
    const stale = readdirSync(DIR).filter((f) => !tools.some((t) => `${t.name}.json` === f));
    expect(stale, "snapshots of tools that no longer exist").toEqual([]);
  });
});
