import { EXIT_WITHIN_MS, spawnWorker, startRedis } from "@coordis/testing";
import { describe, expect, it } from "vitest";

const WORKER = new URL("./fixtures/review3-durable-exit-worker.ts", import.meta.url);

describe("a durable call its client will never settle", () => {
  it("does not keep an exiting process alive for the rest of its deadline", async () => {
    const server = await startRedis();
    const port = server.port;
    await server.stop();
    let closedAt: number | undefined;
    const worker = spawnWorker(WORKER, [String(port)], () => {
      closedAt = performance.now();
    });
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      worker.exited,
      new Promise<"hung">((resolve) => {
        timer = setTimeout(() => resolve("hung"), 40_000);
      }),
    ]);
    clearTimeout(timer);
    if (code === "hung") {
      worker.child.kill("SIGKILL");
      await worker.exited;
    }
    // EXIT_WITHIN_MS is far below the call's deadline (10 s fallback + the wait's 100 ms + 250 ms margin).
    const exitAfterMs = performance.now() - (closedAt ?? Number.NaN);
    expect(code, worker.stderr()).toBe(0);
    expect(exitAfterMs).toBeLessThan(EXIT_WITHIN_MS);
  }, 60_000);
});
