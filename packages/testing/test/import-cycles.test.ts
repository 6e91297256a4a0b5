import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/**
 * Every workspace's `src` keeps its imports pointing one way: no module reaches itself again through relative
 * imports (static, `export ... from`, type-only and dynamic `import()` all count, since each is an arrow a reader
 * has to follow). Shared shapes go into a small types module both sides import.
 */

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** Sources not checked (none today): add one only with the cycle it still has and a plan to remove it. */
const NOT_YET = new Set<string>([]);

function sourceDirs(): string[] {
  const dirs: string[] = [];
  for (const group of ["packages", "services"]) {
    for (const name of readdirSync(join(root, group))) {
      const src = join(root, group, name, "src");
      if (statSync(src, { throwIfNoEntry: false })?.isDirectory() && !NOT_YET.has(relative(root, src))) dirs.push(src);
    }
  }
  return dirs.sort();
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((f) => /\.tsx?$/.test(f) && !f.endsWith(".d.ts"))
    .map((f) => join(dir, f));
}

const IMPORT =
  /(?:^|[\s;}])(?:import|export)\b[^;'"]*?\bfrom\s*["'](\.{1,2}\/[^"']+)["']|\bimport\s*\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)|^\s*import\s*["'](\.{1,2}\/[^"']+)["']/gm;

/** Relative imports of one file, resolved to files (`./x.js` → `x.ts`, a directory → its `index.ts`). */
function importsOf(file: string, known: Set<string>): string[] {
  const text = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\/|(^|[^:])\/\/.*$/gm, "$1");
  const out = new Set<string>();
  for (const m of text.matchAll(IMPORT)) {
    const spec = (m[1] ?? m[2] ?? m[3]) as string;
    const base = resolve(dirname(file), spec);
    const candidates = [
      base.replace(/\.js$/, ".ts"),
      base.replace(/\.js$/, ".tsx"),
      `${base}.ts`,
      join(base, "index.ts"),
    ];
    const target = candidates.find((c) => known.has(c));
    if (target !== undefined) out.add(target);
  }
  return [...out];
}

/** The import cycles of the files in `dir`: strongly connected components with more than one module, or a self-import. */
function importCycles(dir: string): string[][] {
  const files = tsFiles(dir);
  const known = new Set(files);
  const edges = new Map(files.map((f) => [f, importsOf(f, known)]));
  // Tarjan's strongly connected components.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      for (;;) {
        const w = stack.pop() as string;
        onStack.delete(w);
        component.push(w);
        if (w === v) break;
      }
      if (component.length > 1 || (edges.get(v) ?? []).includes(v)) {
        cycles.push(component.map((f) => relative(dir, f)).sort());
      }
    }
  };
  for (const f of files) if (!index.has(f)) visit(f);
  return cycles.sort((x, y) => (x[0] as string).localeCompare(y[0] as string));
}

describe("import cycles", () => {
  it("finds a cycle, including one closed by a dynamic or type-only import", async () => {
    const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "coordis-cycles-"));
    try {
      mkdirSync(join(dir, "sub"));
      writeFileSync(join(dir, "a.ts"), 'import { b } from "./sub/b.js";\nexport const a = b;\n');
      writeFileSync(
        join(dir, "sub", "b.ts"),
        'export const b = 1;\nexport async function c() { return import("../a.js"); }\n',
      );
      writeFileSync(join(dir, "d.ts"), 'import type { E } from "./e.js";\nexport type D = E;\n');
      writeFileSync(join(dir, "e.ts"), 'export type { D } from "./d.js";\nexport type E = number;\n');
      writeFileSync(
        join(dir, "f.ts"),
        '// import { a } from "./a.js";\nimport { a } from "./a.js";\nexport const f = a;\n',
      );
      expect(importCycles(dir)).toEqual([
        ["a.ts", join("sub", "b.ts")],
        ["d.ts", "e.ts"],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each(sourceDirs().map((d) => [relative(root, d), d]))("%s has none", (_name, dir) => {
    expect(importCycles(dir)).toEqual([]);
  });
});
