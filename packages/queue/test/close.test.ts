import { fileURLToPath } from "node:url";
import { CLOSE_GRACE_MS } from "@coordis/queue";
import { closeDuringOutage, EXIT_WITHIN_MS, OUTAGE_MODES, testPrefix } from "@coordis/testing";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("queue");
const workerFile = fileURLToPath(new URL("./fixtures/close-worker.ts", import.meta.url));

/** The worker's close({ timeoutMs }) in the child. */
const CLOSE_TIMEOUT_MS = 500;
/** Margin for a loaded machine on top of the documented bound, ms (the child's commands time out after 10 s). */
const MARGIN_MS = 1_500;
/** Queue.close(): core's disconnectWithin bound (1 s) plus the margin. */
const QUEUE_CLOSE_BOUND_MS = 1_000 + MARGIN_MS;

describe("Worker.close() and Queue.close() after a Redis outage (fault proxy)", () => {
  for (const mode of OUTAGE_MODES) {
    it(`${mode}: both close() calls resolve within their bounds and leave nothing running`, async () => {
      // The child holds a running job and an open result() subscriber; it closes the Worker, then the Queue.
      const r = await closeDuringOutage<{ closeMs: number; queueCloseMs: number }>({
        workerFile,
        args: [prefix, `close-${mode}`, String(CLOSE_TIMEOUT_MS)],
        mode,
        resultTimeoutMs: 30_000,
      });
      expect(r.result.closeMs).toBeLessThan(CLOSE_TIMEOUT_MS + CLOSE_GRACE_MS + MARGIN_MS);
      expect(r.result.queueCloseMs).toBeLessThan(QUEUE_CLOSE_BOUND_MS);
      expect(r.exit).toBe(0);
      expect(r.exitAfterMs).toBeLessThan(EXIT_WITHIN_MS);
    }, 60_000);
  }

  it("a bare ioredis client closed with disconnect() while it reconnects: the process still exits at once", async () => {
    // Such a client never settles the commands it queued while reconnecting (here the hand-back of the running job):
    // what bounds them on Coordis' side must not keep the process alive.
    const r = await closeDuringOutage<{ closeMs: number; queueCloseMs: number }>({
      workerFile,
      args: [prefix, "close-plain", String(CLOSE_TIMEOUT_MS), "plain"],
      mode: "refused-while-reconnecting",
      resultTimeoutMs: 30_000,
    });
    expect(r.result.closeMs).toBeLessThan(CLOSE_TIMEOUT_MS + CLOSE_GRACE_MS + MARGIN_MS);
    expect(r.exit).toBe(0);
    expect(r.exitAfterMs).toBeLessThan(EXIT_WITHIN_MS);
  }, 60_000);
});
