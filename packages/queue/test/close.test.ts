import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { CLOSE_GRACE_MS } from "@coordis/queue";
import { type FaultProxy, type RedisServer, startProxy, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("queue");
const workerFile = fileURLToPath(new URL("./fixtures/close-worker.ts", import.meta.url));

/** The worker's close({ timeoutMs }) in the child. */
const CLOSE_TIMEOUT_MS = 500;
/** Margin for a loaded machine on top of the documented bound, ms (the child's commands time out after 10 s). */
const MARGIN_MS = 1_500;
/** Queue.close(): core's disconnectWithin bound (1 s) plus the margin. */
const QUEUE_CLOSE_BOUND_MS = 1_000 + MARGIN_MS;
/** How soon the child must exit once both closes resolved and its client was closed, ms. */
const EXIT_WITHIN_MS = 1_000;

type Fault = "blackhole" | "blackhole-then-reconnect" | "refused-while-reconnecting";

describe("Worker.close() and Queue.close() after a Redis outage (fault proxy)", () => {
  let server: RedisServer;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    await server.stop();
  });

  async function closeDuring(fault: Fault) {
    const proxy: FaultProxy = await startProxy({ target: server });
    try {
      const child = spawn(
        process.execPath,
        [
          "--conditions=@coordis/source",
          "--import",
          "tsx",
          workerFile,
          proxy.url,
          prefix,
          `close-${fault}`,
          String(CLOSE_TIMEOUT_MS),
        ],
        { stdio: ["pipe", "pipe", "inherit"] },
      );
      children.push(child);
      const exited = once(child, "exit");
      const lines: string[] = [];
      let buffered = "";
      child.stdout?.on("data", (d: Buffer) => {
        buffered += d.toString();
        const parts = buffered.split("\n");
        buffered = parts.pop() ?? "";
        lines.push(...parts);
      });
      await waitUntil("worker ready with a running job", () => lines.includes("ready"), 30_000);
      const accepted = proxy.stats().accepted;
      if (fault === "refused-while-reconnecting") proxy.refuse();
      else proxy.blackhole();
      if (fault !== "blackhole") {
        proxy.dropConnections();
        await waitUntil("client lost", () => lines.includes("lost"), 10_000);
      }
      if (fault === "blackhole-then-reconnect") {
        await waitUntil("reconnect into the partition", () => proxy.stats().accepted > accepted, 10_000);
      }
      child.stdin?.write("close\n");
      await waitUntil("close result", () => lines.some((l) => l.startsWith("{")), 30_000);
      const resultAt = performance.now();
      const result = JSON.parse(lines.find((l) => l.startsWith("{")) as string) as {
        closeMs: number;
        queueCloseMs: number;
      };
      const timeout = new Promise<"alive">((resolve) => setTimeout(() => resolve("alive"), 10_000).unref());
      const exit = await Promise.race([exited.then(([code]) => code as number | null), timeout]);
      return { ...result, exit, exitAfterMs: performance.now() - resultAt };
    } finally {
      await proxy.close();
    }
  }

  for (const fault of ["blackhole", "blackhole-then-reconnect", "refused-while-reconnecting"] as const) {
    it(`${fault}: both close() calls resolve within their bounds and leave nothing running`, async () => {
      const r = await closeDuring(fault);
      expect(r.closeMs).toBeLessThan(CLOSE_TIMEOUT_MS + CLOSE_GRACE_MS + MARGIN_MS);
      expect(r.queueCloseMs).toBeLessThan(QUEUE_CLOSE_BOUND_MS);
      expect(r.exit).toBe(0);
      expect(r.exitAfterMs).toBeLessThan(EXIT_WITHIN_MS);
    }, 60_000);
  }
});
