/**
 * Lua pipeline: turns `lua/<package>/<operation>.lua` into `packages/<package>/src/scripts.generated.ts`.
 * Usage: `tsx scripts/gen-lua.ts` (write) or `tsx scripts/gen-lua.ts --check` (exit 1 when a file is stale).
 * The header format and the include mechanism are documented in lua/README.md.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

export interface ScriptHeader {
  summary: string;
  keys: Array<{ name: string; type: string; doc: string }>;
  args: Array<{ name: string; unit: string; doc: string }>;
  reply: string;
}

export class LuaHeaderError extends Error {}

const IDENT = "[A-Za-z][A-Za-z0-9]*";
const KEY_LINE = new RegExp(`^-- KEYS\\[(\\d+)\\] (${IDENT}) \\(([^)]+)\\): (.+)$`);
const ARG_LINE = new RegExp(`^-- ARGV\\[(\\d+)\\] (${IDENT}) \\(([^)]+)\\): (.+)$`);

/** Parses and validates the header comment of one script. */
export function parseHeader(text: string, file: string): ScriptHeader {
  const lines = text.split(/\r?\n/);
  const header: string[] = [];
  for (const line of lines) {
    if (!line.startsWith("--") || line.startsWith("--@include")) break;
    header.push(line.trimEnd());
  }
  const fail = (why: string): never => {
    throw new LuaHeaderError(`${file}: ${why} (see lua/README.md for the header format)`);
  };
  if (header.length === 0) fail("missing header comment");
  // The summary is the header's opening free-text paragraph: every line up to the first KEYS, ARGV or Reply line
  // (or an empty comment line), joined with spaces.
  const structured = (text: string) => /^(KEYS|ARGV|Reply)\b/.test(text);
  const paragraph: string[] = [];
  for (const line of header) {
    const text = line.replace(/^--\s*/, "");
    if (text === "" || structured(text)) break;
    paragraph.push(text);
  }
  const summary = paragraph.join(" ");
  if (summary === "") fail("the first header line must be a summary");
  const keys: ScriptHeader["keys"] = [];
  const args: ScriptHeader["args"] = [];
  let reply: string | undefined;
  let keysNone = false;
  let argsNone = false;
  for (const line of header.slice(paragraph.length)) {
    const keyLine = KEY_LINE.exec(line);
    const argLine = ARG_LINE.exec(line);
    if (line === "-- KEYS: none") keysNone = true;
    else if (line === "-- ARGV: none") argsNone = true;
    else if (keyLine !== null) {
      const [, index, name, type, doc] = keyLine as unknown as [string, string, string, string, string];
      if (Number(index) !== keys.length + 1) fail(`KEYS[${index}] is out of order (expected KEYS[${keys.length + 1}])`);
      keys.push({ name, type, doc });
    } else if (argLine !== null) {
      const [, index, name, unit, doc] = argLine as unknown as [string, string, string, string, string];
      if (Number(index) !== args.length + 1) fail(`ARGV[${index}] is out of order (expected ARGV[${args.length + 1}])`);
      args.push({ name, unit, doc });
    } else if (line.startsWith("-- Reply:")) {
      if (reply !== undefined) fail("more than one Reply line");
      reply = line.slice("-- Reply:".length).trim();
      if (reply === "") fail("Reply line without a type");
    } else if (/^-- (KEYS|ARGV)/.test(line)) {
      fail(`malformed line "${line}" (expected "-- KEYS[n] name (type): description")`);
    }
  }
  if (keys.length === 0 && !keysNone) fail('no KEYS lines (write "-- KEYS: none" for a keyless script)');
  if (args.length === 0 && !argsNone) fail('no ARGV lines (write "-- ARGV: none" when there are none)');
  if (keysNone && keys.length > 0) fail('"KEYS: none" together with KEYS lines');
  if (argsNone && args.length > 0) fail('"ARGV: none" together with ARGV lines');
  if (reply === undefined) fail('no "-- Reply: <TypeScript type>" line');
  for (const names of [keys.map((k) => k.name), args.map((a) => a.name)]) {
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup !== undefined) fail(`duplicate name "${dup}"`);
  }
  return { summary, keys, args, reply: reply as string };
}

/** Replaces `--@include <name>` lines with `lua/_lib/<name>.lua`. */
export function expandIncludes(text: string, libDir: string, file: string): string {
  return text
    .split("\n")
    .map((line) => {
      const m = /^--@include\s+([a-z0-9-]+)\s*$/.exec(line);
      if (m === null) {
        if (line.startsWith("--@include")) throw new LuaHeaderError(`${file}: malformed include "${line}"`);
        return line;
      }
      const path = join(libDir, `${m[1]}.lua`);
      if (!existsSync(path)) throw new LuaHeaderError(`${file}: include "${m[1]}" not found at ${path}`);
      const lib = readFileSync(path, "utf8");
      if (lib.includes("--@include")) throw new LuaHeaderError(`${path}: library files may not include others`);
      return lib.trimEnd();
    })
    .join("\n");
}

/** Width of a generated doc comment's text (the line is 5 characters longer). */
const DOC_WIDTH = 110;

/** Splits `text` into lines of at most `width` characters at spaces (a longer word gets a line of its own). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (line === "") line = word;
    else if (line.length + 1 + word.length <= width) line += ` ${word}`;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line !== "") lines.push(line);
  return lines;
}

const camel = (s: string) => s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** Renders the generated module of one package. */
export function renderModule(pkg: string, files: Array<{ path: string; text: string }>, libDir: string): string {
  const importFrom = pkg === "core" ? "./scripts.js" : "@coordis/core";
  const entries = files
    .sort((a, b) => a.path.localeCompare(b.path))
    .map(({ path, text }) => {
      const op = basename(path, ".lua");
      if (!/^[a-z][a-z0-9-]*$/.test(op)) throw new LuaHeaderError(`${path}: file name must be kebab-case`);
      const header = parseHeader(text, path);
      const source = expandIncludes(text, libDir, path);
      const sha1 = createHash("sha1").update(source).digest("hex");
      const doc = [
        `  /**`,
        ...wrap(header.summary.replace(/\*\//g, "* /"), DOC_WIDTH).map((line) => `   * ${line}`),
        `   * KEYS: ${header.keys.map((k) => `${k.name} (${k.type})`).join(", ") || "none"}.`,
        `   * ARGV: ${header.args.map((a) => `${a.name} (${a.unit})`).join(", ") || "none"}.`,
        `   */`,
      ].join("\n");
      return `${doc}
  ${camel(op)}: defineScript<${JSON.stringify(header.keys.map((k) => k.name))}, ${JSON.stringify(
    header.args.map((a) => a.name),
  )}, ${header.reply}>({
    name: ${JSON.stringify(`${pkg}/${op}`)},
    keys: ${JSON.stringify(header.keys.map((k) => k.name))},
    args: ${JSON.stringify(header.args.map((a) => a.name))},
    sha1: ${JSON.stringify(sha1)},
    source: ${JSON.stringify(source)},
  }),`;
    });
  return `// Generated by scripts/gen-lua.ts from lua/${pkg}/*.lua. Do not edit: change the .lua file and run npm run gen.
import { defineScript } from "${importFrom}";

/** The Lua scripts of @coordis/${pkg}, one per operation. */
export const ${camel(pkg)}Scripts = {
${entries.join("\n")}
} as const;
`;
}

export interface GenerateResult {
  /** Generated files whose content changed (written, or stale in check mode). */
  changed: string[];
  /** Every generated file. */
  outputs: string[];
}

/** Generates every package's module. With `check`, writes nothing and reports stale files. */
export function generateAll(root: string, check = false): GenerateResult {
  const luaDir = join(root, "lua");
  const libDir = join(luaDir, "_lib");
  const result: GenerateResult = { changed: [], outputs: [] };
  for (const pkg of readdirSync(luaDir, { withFileTypes: true })) {
    if (!pkg.isDirectory() || pkg.name.startsWith("_")) continue;
    const pkgDir = join(root, "packages", pkg.name);
    if (!existsSync(pkgDir)) throw new LuaHeaderError(`lua/${pkg.name}/ has no package at packages/${pkg.name}`);
    const files = readdirSync(join(luaDir, pkg.name))
      .filter((f) => f.endsWith(".lua"))
      .map((f) => {
        const path = join(luaDir, pkg.name, f);
        return { path: relative(root, path), text: readFileSync(path, "utf8") };
      });
    if (files.length === 0) continue;
    const out = join(pkgDir, "src", "scripts.generated.ts");
    const content = renderModule(pkg.name, files, libDir);
    result.outputs.push(relative(root, out));
    const current = existsSync(out) ? readFileSync(out, "utf8") : undefined;
    if (current !== content) {
      result.changed.push(relative(root, out));
      if (!check) writeFileSync(out, content);
    }
  }
  return result;
}

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..");

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const check = process.argv.includes("--check");
  try {
    const { changed, outputs } = generateAll(repoRoot, check);
    if (check && changed.length > 0) {
      console.error(`Stale generated Lua modules (run npm run gen):\n  ${changed.join("\n  ")}`);
      process.exit(1);
    }
    console.log(
      `gen-lua: ${outputs.length} module(s), ${changed.length} ${check ? "stale" : "written"}${
        changed.length ? `: ${changed.join(", ")}` : ""
      }`,
    );
  } catch (err) {
    console.error(err instanceof LuaHeaderError ? err.message : err);
    process.exit(1);
  }
}
