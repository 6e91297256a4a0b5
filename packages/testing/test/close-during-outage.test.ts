import { fileURLToPath } from "node:url";
import { closeDuringOutage, EXIT_WITHIN_MS } from "@coordis/testing";
import { describe, expect, it } from "vitest";

const workerFile = fileURLToPath(new URL("./fixtures/close-outage-worker.ts", import.meta.url));

describe("closeDuringOutage", () => {
  it("fails at once, naming the exit code, when the worker dies before it is ready", async () => {
    const started = performance.now();
    await expect(
      closeDuringOutage({ workerFile, args: ["exit"], mode: "blackhole", readyTimeoutMs: 20_000 }),
    ).rejects.toThrow("the worker exited with code 3 while waiting for the worker to be ready");
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it("reports a worker that something keeps alive after its close", async () => {
    const r = await closeDuringOutage<{ closeMs: number }>({ workerFile, args: ["linger"], mode: "blackhole" });
    expect(r.result).toEqual({ closeMs: 0 });
    expect(r.exit).toBe(0);
    expect(r.exitAfterMs).toBeGreaterThan(EXIT_WITHIN_MS);
  });
});
