#!/usr/bin/env node
/**
 * Register the speculative-decoding MCP server with Claude Code:
 *   claude mcp add --scope <scope> speculative-decoding -- node <checkout>/dist/cli/main.js serve [--model-root DIR]...
 * and, with --skill, link this checkout into ~/.claude/skills/speculative-decoding so Claude Code
 * loads SKILL.md.
 *
 * Usage: node scripts/install-claude-code.mjs [--scope user|project|local] [--model-root DIR]...
 *          [--name NAME] [--skill] [--force] [--dry-run]
 */
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, readlinkSync, symlinkSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(ROOT, "dist", "cli", "main.js");

const USAGE = `Usage: node scripts/install-claude-code.mjs [--scope user|project|local] [--model-root DIR]...
  [--name speculative-decoding] [--skill] [--force] [--dry-run]
  --scope       where Claude Code stores the server (default user: every project)
  --model-root  directory the server may read models from (repeatable; default: its built-in roots)
  --skill       also link this checkout as the skill ~/.claude/skills/speculative-decoding
  --force       replace an existing registration of the same name
  --dry-run     print what would run`;

let args;
try {
  args = parseArgs({
    options: {
      scope: { type: "string", default: "user" },
      "model-root": { type: "string", multiple: true, default: [] },
      name: { type: "string", default: "speculative-decoding" },
      skill: { type: "boolean", default: false },
      force: { type: "boolean", default: false },
      "dry-run": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  }).values;
} catch (err) {
  console.error(`${err.message}\n\n${USAGE}`);
  process.exit(2);
}
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
if (!["user", "project", "local"].includes(args.scope)) {
  console.error(`--scope must be user, project or local (got "${args.scope}").`);
  process.exit(2);
}
if (!existsSync(CLI)) {
  console.error(`${CLI} does not exist: build the package first (npm install, or npm run build), then rerun.`);
  process.exit(1);
}

const roots = args["model-root"].map((r) => resolve(r));
const serverArgs = [CLI, "serve", ...roots.flatMap((r) => ["--model-root", r])];
const add = ["mcp", "add", "--scope", args.scope, args.name, "--", process.execPath, ...serverArgs];
const quote = (s) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
const dry = args["dry-run"];

function claude(argv, { allowFail = false } = {}) {
  console.log(`$ claude ${argv.map(quote).join(" ")}`);
  if (dry) return 0;
  const r = spawnSync("claude", argv, { stdio: "inherit", shell: process.platform === "win32" });
  if (r.error) {
    console.error(
      `Could not run the Claude Code CLI (${r.error.message}). Install Claude Code, or run the command above yourself.`,
    );
    process.exit(1);
  }
  if (r.status !== 0 && !allowFail) {
    console.error(`claude exited with ${r.status}.${args.force ? "" : " If the server is already registered, rerun with --force."}`);
    process.exit(r.status ?? 1);
  }
  return r.status ?? 0;
}

if (args.force) claude(["mcp", "remove", "--scope", args.scope, args.name], { allowFail: true });
claude(add);

if (args.skill) {
  const skills = join(homedir(), ".claude", "skills");
  const link = join(skills, "speculative-decoding");
  console.log(`link ${link} -> ${ROOT}`);
  if (!dry) {
    mkdirSync(skills, { recursive: true });
    let exists = false;
    try {
      exists = lstatSync(link) !== undefined;
    } catch {
      exists = false;
    }
    if (exists) {
      const same = lstatSync(link).isSymbolicLink() && resolve(skills, readlinkSync(link)) === ROOT;
      if (!same) {
        console.error(`${link} already exists and is not a link to this checkout; remove it and rerun to install the skill.`);
        process.exit(1);
      }
    } else {
      symlinkSync(ROOT, link, process.platform === "win32" ? "junction" : "dir");
    }
  }
}

console.log(
  dry
    ? "Dry run: nothing changed."
    : `Done. Check with: claude mcp list   (the server "${args.name}" should be connected).`,
);
