import { runScript } from "@coordis/core";
import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { queueKeys } from "../src/keys.js";
import { queueScripts } from "../src/scripts.generated.js";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-review-lease-jitter");

describe("the retries of jobs whose leases expired together (a crashed worker's jobs)", () => {
  const { queue, redis } = onSharedServer(prefix);

  it("are spread by the backoff's jitter, as the retries of failures recorded together are, not due at one instant", async () => {
    const name = "crashed";
    const q = queue<number>(name);
    const [k] = queueKeys(prefix, name, 1);
    if (k === undefined) throw new Error("no partition keys");
    const n = 20;
    await q.addMany(
      Array.from({ length: n }, (_, i) => ({
        data: i,
        opts: { attempts: 3, backoff: { type: "fixed" as const, delayMs: 600_000, jitter: 1 } },
      })),
    );
    // A worker fetches every job (the arguments a Worker sends, lease 1 s) and dies: nothing renews the leases.
    const fetchArgs = (count: number) => [count, 1_000, 0, "", 100, 86_400_000, Math.random(), "", k.channel];
    const first = await runScript(redis(), queueScripts.fetch, k.all as never, fetchArgs(n) as never);
    expect((first.length - 6) / 5).toBe(n);
    const leaseEnd = Number(first[0]) + 1_000;
    await waitUntil(
      "the leases to expire (server time)",
      async () => {
        const [sec, usec] = await redis().time();
        return Number(sec) * 1000 + Math.floor(Number(usec) / 1000) > leaseEnd;
      },
      10_000,
    );
    // The next fetch (any worker's) counts the lost attempts and schedules each job's retry after its backoff.
    await runScript(redis(), queueScripts.fetch, k.all as never, fetchArgs(1) as never);
    const scores = (await redis().zrange(k.delayed, "0", "-1", "WITHSCORES")).filter((_, i) => i % 2 === 1);
    expect(scores).toHaveLength(n);
    // jitter 1: each retry is due anywhere in the 10 minutes after the expiry. One random draw shared by every job
    // would make them all due in the same millisecond, the thundering herd the jitter is there to prevent.
    const dueMs = new Set(scores.map((s) => Math.floor(Number(s))));
    expect(dueMs.size).toBe(n);
  });
});
