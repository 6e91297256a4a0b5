import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { type FaultProxy, type RedisServer, startProxy, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();
const workerFile = fileURLToPath(new URL("./fixtures/close-worker.ts", import.meta.url));

/** close()'s documented bound (PubSub's CLOSE_TIMEOUT_MS) plus a margin for a loaded machine, ms. */
const CLOSE_BOUND_MS = 1_000 + 1_500;
/**
 * How soon the worker must exit once close() resolved, ms. ioredis' own close timer alone (`disconnectTimeout`,
 * 2 s by default) would keep it alive twice as long.
 */
const EXIT_WITHIN_MS = 1_000;

type Fault = "blackhole" | "blackhole-then-reconnect" | "refused-while-reconnecting";

describe("Cache.close() after a Redis outage (fault proxy)", () => {
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
        ["--conditions=@coordis/source", "--import", "tsx", workerFile, proxy.url, prefix],
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
      await waitUntil("worker ready", () => lines.includes("ready"), 30_000);
      const accepted = proxy.stats().accepted;
      if (fault === "refused-while-reconnecting") proxy.refuse();
      else proxy.blackhole();
      if (fault !== "blackhole") {
        proxy.dropConnections();
        await waitUntil("bus subscriber lost", () => lines.includes("lost"), 10_000);
      }
      if (fault === "blackhole-then-reconnect") {
        await waitUntil("reconnect into the partition", () => proxy.stats().accepted > accepted, 10_000);
      }
      child.stdin?.write("close\n");
      await waitUntil("close result", () => lines.some((l) => l.startsWith("{")), 15_000);
      const resultAt = performance.now();
      const result = JSON.parse(lines.find((l) => l.startsWith("{")) as string) as { closeMs: number };
      const timeout = new Promise<"alive">((resolve) => setTimeout(() => resolve("alive"), 10_000).unref());
      const exit = await Promise.race([exited.then(([code]) => code as number | null), timeout]);
      return { ...result, exit, exitAfterMs: performance.now() - resultAt };
    } finally {
      await proxy.close();
    }
  }

  for (const fault of ["blackhole", "blackhole-then-reconnect", "refused-while-reconnecting"] as const) {
    it(`${fault}: close() resolves within its bound and leaves nothing running`, async () => {
      const r = await closeDuring(fault);
      expect(r.closeMs).toBeLessThan(CLOSE_BOUND_MS);
      expect(r.exit).toBe(0);
      expect(r.exitAfterMs).toBeLessThan(EXIT_WITHIN_MS);
    });
  }
});
