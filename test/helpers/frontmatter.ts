/**
 * A minimal YAML front matter reader for SKILL.md: `key: value` lines and folded or literal
 * blocks (`key: >-`). Enough for the Agent Skills fields; not a YAML parser.
 */
export function frontmatter(text: string): Record<string, string> {
  const m = /^---\n([\s\S]*?)\n---\n/.exec(text);
  if (!m) throw new Error("no YAML front matter");
  const out: Record<string, string> = {};
  const lines = m[1]!.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const kv = /^([a-z][\w-]*):\s*(.*)$/.exec(lines[i]!);
    if (!kv) continue;
    let value = kv[2]!.trim();
    if (/^[>|][+-]?$/.test(value)) {
      const block: string[] = [];
      while (i + 1 < lines.length && /^\s+\S/.test(lines[i + 1]!)) block.push(lines[++i]!.trim());
      value = block.join(value.startsWith(">") ? " " : "\n");
    }
    out[kv[1]!] = value.replace(/^["'](.*)["']$/, "$1");
  }
  return out;
}
