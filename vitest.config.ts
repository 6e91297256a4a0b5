import { defineConfig } from "vitest/config";

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
    reporters: ["default", "./test/summary-reporter.ts"],
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
  },
});
