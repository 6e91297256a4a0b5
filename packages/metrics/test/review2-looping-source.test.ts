import { SOURCE_TIMEOUT_MS } from "@coordis/metrics";
import { spawnWorker } from "@coordis/testing";
import { describe, expect, it } from "vitest";

const WORKER = new URL("./fixtures/review2-looping-source.ts", import.meta.url);

describe("a source answering a thenable that resolves with itself", () => {
  it("keeps the last figures and the scrape ends, instead of starving the process", async () => {
    let answer: unknown;
    const worker = spawnWorker(WORKER, [], (msg) => {
      answer = msg;
    });
    // The second scrape waits for the source at most SOURCE_TIMEOUT_MS; the rest is starting tsx on a loaded machine.
    const deadline = 30_000 + SOURCE_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      worker.exited,
      new Promise<"hung">((resolve) => {
        timer = setTimeout(() => resolve("hung"), deadline);
      }),
    ]);
    clearTimeout(timer);
    if (code === "hung") {
      worker.child.kill("SIGKILL");
      await worker.exited;
    }
    expect(code, worker.stderr()).toBe(0);
    expect(answer).toEqual({ depth: 4, lag: 5 });
  });
});
