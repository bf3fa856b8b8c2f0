/**
 * The plugin layout Claude Code loads (checked by hand with `claude plugin validate .` and
 * `claude --plugin-dir . plugin details speculative-decoding`; see references/setup.md): one skill,
 * the top-level SKILL.md, listed by the manifest; the MCP server declared inline with
 * ${CLAUDE_PLUGIN_ROOT}; one set-up path in README, SKILL.md and references/setup.md; references/
 * holds only documents, and every relative link of the documents resolves.
 */
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { frontmatter } from "../helpers/frontmatter.js";
import { REPO } from "../helpers/dist.js";

const read = (p: string) => readFileSync(join(REPO, p), "utf8");
const manifest = JSON.parse(read(".claude-plugin/plugin.json")) as {
  name: string;
  skills?: string[];
  mcpServers?: Record<string, { command: string; args: string[] }>;
};
const pkg = JSON.parse(read("package.json")) as { bin: Record<string, string> };

/** Every file under dir, skipping node_modules, dist and dot directories. */
function walk(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === "node_modules" || e.name === "dist" || e.name.startsWith(".")) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

describe("plugin layout", () => {
  it("has one skill: the top-level SKILL.md, named like the plugin and listed by the manifest", () => {
    const skills = walk(REPO).filter((f) => f.endsWith("/SKILL.md")).map((f) => relative(REPO, f));
    expect(skills).toEqual(["SKILL.md"]);
    // A skills/ folder would be loaded as well as "./" (two copies), or instead of it without "./".
    expect(existsSync(join(REPO, "skills"))).toBe(false);
    expect(manifest.skills).toEqual(["./"]);
    expect(frontmatter(read("SKILL.md")).name).toBe(manifest.name);
  });

  it("declares the MCP server inline, at the plugin root, on the package's own CLI", () => {
    const server = manifest.mcpServers?.["speculative-decoding"];
    expect(server?.command).toBe("node");
    expect(server?.args).toEqual(["${CLAUDE_PLUGIN_ROOT}/" + pkg.bin["spec-decode"]!.replace(/^\.\//, ""), "serve"]);
    // Claude Code substitutes ${CLAUDE_PLUGIN_ROOT} literally; "${CLAUDE_PLUGIN_ROOT:-.}" fell back to the cwd.
    expect(read(".claude-plugin/plugin.json")).not.toMatch(/\$\{[A-Z_]+:-/);
    // No project-scoped .mcp.json: it would register the same tools a second time inside the checkout.
    expect(existsSync(join(REPO, ".mcp.json"))).toBe(false);
  });

  it("describes one set-up path in README, SKILL.md and references/setup.md", () => {
    const clone = "~/.claude/skills/speculative-decoding";
    for (const f of ["README.md", "SKILL.md", "references/setup.md"]) {
      const text = read(f);
      expect(text, f).toContain(clone);
      expect(text, `${f} registers a second server`).not.toMatch(/claude mcp add [^`]|install-claude-code/);
    }
  });
});

describe("documents", () => {
  const docs = [
    "README.md",
    "SKILL.md",
    ...[...walk(join(REPO, "references")), ...walk(join(REPO, "bench-results"))].map((f) => relative(REPO, f)),
  ].filter((f) => f.endsWith(".md"));

  it("references/ holds only Markdown documents", () => {
    for (const f of readdirSync(join(REPO, "references"))) expect(f, `references/${f}`).toMatch(/\.md$/);
  });

  it("link only to files that exist (documents, JSON, images)", () => {
    let n = 0;
    for (const d of docs) {
      const text = read(d);
      for (const m of text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/.test(target)) continue;
        n++;
        expect(existsSync(join(REPO, dirname(d), target)), `${d} -> ${target}`).toBe(true);
      }
      // Paths written out in text or commands, like bench-results/bench-twin.json.
      for (const m of text.matchAll(/\b((?:bench-results|references)\/[\w.-]+\.(?:json|png|md))\b/g)) {
        expect(existsSync(join(REPO, m[1]!)) && statSync(join(REPO, m[1]!)).isFile(), `${d}: ${m[1]}`).toBe(true);
      }
    }
    expect(n).toBeGreaterThan(20);
  });
});
