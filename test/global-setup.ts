import type { TestProject } from "vitest/node";
import startTopologies from "../packages/testing/src/vitest-setup.js";
import { generateAll, repoRoot } from "../scripts/gen-lua.js";

/**
 * Global setup of the Coordis suite: brings the generated Lua modules up to date (in CI a stale committed file is
 * an error, not something to fix silently), then starts the shared Redis topologies.
 */
export default async function setup(project: TestProject) {
  const { changed } = generateAll(repoRoot, process.env.CI !== undefined);
  if (changed.length > 0) {
    if (process.env.CI !== undefined) {
      throw new Error(
        `generated Lua modules are stale in this checkout (run npm run gen and commit): ${changed.join(", ")}`,
      );
    }
    console.log(`gen-lua: regenerated ${changed.join(", ")}`);
  }
  return startTopologies(project);
}
