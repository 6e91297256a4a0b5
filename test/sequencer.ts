import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * Runs the slowest test files first, so the last minutes of a run are not one long file on a single worker while the
 * other idles. A file's expected duration is what Vitest's cache recorded for it (the last local run), else the
 * checked-in list test/durations.json (a fresh clone, CI), else one second. Regenerate the list after a full run
 * with `node scripts/test-durations.mjs`.
 */
const known: Record<string, number> = JSON.parse(readFileSync(new URL("./durations.json", import.meta.url), "utf8"));

export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const { cache, config } = this.ctx;
    const expected = (spec: TestSpecification): number => {
      const path = relative(config.root, spec.moduleId);
      return cache.getFileTestResults(`${spec.project.name}:${path}`)?.duration ?? known[path] ?? 1000;
    };
    return [...files].sort((a, b) => expected(b) - expected(a));
  }
}
