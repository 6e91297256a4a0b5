import { fileURLToPath } from "node:url";
import { CLOSE_TIMEOUT_MS } from "@coordis/pubsub";
import { closeDuringOutage, EXIT_WITHIN_MS, OUTAGE_MODES, testPrefix } from "@coordis/testing";
import { describe, expect, it } from "vitest";

const prefix = testPrefix();
const workerFile = fileURLToPath(new URL("./fixtures/close-worker.ts", import.meta.url));

/** Margin for a loaded machine on top of the documented bound, ms. */
const MARGIN_MS = 1_500;

describe("PubSub.close() after a Redis outage (fault proxy)", () => {
  for (const mode of OUTAGE_MODES) {
    it(`${mode}: close() resolves within its bound, settles a pending subscribe and leaves nothing running`, async () => {
      const r = await closeDuringOutage<{ closeMs: number; pending: string }>({
        workerFile,
        args: [prefix],
        mode,
      });
      expect(r.result.closeMs).toBeLessThan(CLOSE_TIMEOUT_MS + MARGIN_MS);
      expect(r.result.pending).toBe("ERR_PUBSUB_CLOSED");
      expect(r.exit).toBe(0);
      expect(r.exitAfterMs).toBeLessThan(EXIT_WITHIN_MS);
    });
  }
});
