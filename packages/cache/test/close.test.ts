import { fileURLToPath } from "node:url";
import { closeDuringOutage, EXIT_WITHIN_MS, OUTAGE_MODES, testPrefix } from "@coordis/testing";
import { describe, expect, it } from "vitest";

const prefix = testPrefix();
const workerFile = fileURLToPath(new URL("./fixtures/close-worker.ts", import.meta.url));

/** close()'s documented bound (PubSub's CLOSE_TIMEOUT_MS) plus a margin for a loaded machine, ms. */
const CLOSE_BOUND_MS = 1_000 + 1_500;

describe("Cache.close() after a Redis outage (fault proxy)", () => {
  for (const mode of OUTAGE_MODES) {
    it(`${mode}: close() resolves within its bound and leaves nothing running`, async () => {
      const r = await closeDuringOutage<{ closeMs: number }>({ workerFile, args: [prefix], mode });
      expect(r.result.closeMs).toBeLessThan(CLOSE_BOUND_MS);
      expect(r.exit).toBe(0);
      expect(r.exitAfterMs).toBeLessThan(EXIT_WITHIN_MS);
    });
  }
});
