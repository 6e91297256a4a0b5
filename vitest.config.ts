import { defineConfig } from "vitest/config";
import LongestFirst from "./test/sequencer.js";

// Packages export their TypeScript sources under the "@coordis/source" condition, so tests run without a build.
// Vitest resolves custom conditions for server-side code only through ssr.resolve.conditions.
const conditions = ["@coordis/source", "node", "import", "default"];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ["@coordis/source"] } },
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/dist/**", "test/bench/**", "test/chaos/**"],
    globalSetup: ["./test/global-setup.ts"],
    // The slowest files first (see test/sequencer.ts), so that a run does not end on one long file.
    sequence: { sequencer: LongestFirst },
    reporters: ["default", "./test/summary-reporter.ts"],
    pool: "forks",
    // Three files at a time, also on a 2-CPU machine (Vitest's default there is one): most test time is waiting on
    // Redis servers, failovers and child processes (a run keeps about one CPU busy with two files at a time), and
    // every test already has to hold on a loaded machine. Measured on a 2-CPU host: 630 s with two, 452 s with three,
    // the files' own time up 4 %.
    maxWorkers: 3,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
  },
});
