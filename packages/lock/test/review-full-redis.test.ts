import { connect, type RedisClient } from "@coordis/core";
import { Mutex, runOncePerTick, Semaphore, tickHistory } from "@coordis/lock";
import { type RedisServer, recordObserver, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

// A noeviction Redis that is full refuses new data (OOM) but keeps what it holds: what was granted before must go
// on working — a held lease is extended and released, a running tick is extended and its outcome recorded.
describe("what is held on a full noeviction Redis (new writes refused with OOM)", () => {
  let server: RedisServer;
  let redis: RedisClient;
  let raw: RedisClient;
  /** Redis refuses new data with OOM from now on: its memory is above a maxmemory set below what it holds. */
  async function fill() {
    await raw.set(`${prefix}:filler`, "x".repeat(2_000_000));
    await raw.config("SET", "maxmemory", "1mb");
    await expect(raw.set(`${prefix}:probe`, "x")).rejects.toThrow(/OOM/);
  }
  async function empty() {
    await raw.config("SET", "maxmemory", "0");
    await raw.del(`${prefix}:filler`);
  }
  beforeAll(async () => {
    server = await startRedis({ config: { "maxmemory-policy": "noeviction" } });
    redis = connect(server.url);
    raw = connect(server.url);
    await Promise.all([redis.ping(), raw.ping()]);
  });
  afterAll(async () => {
    redis.disconnect();
    raw.disconnect();
    await server.stop();
  });

  it.each([
    ["Mutex", (name: string) => new Mutex(redis, name, { prefix, ttlMs: 60_000 })],
    ["Semaphore", (name: string) => new Semaphore(redis, name, { prefix, permits: 2, ttlMs: 60_000 })],
  ] as const)("%s: a lease taken before Redis filled up is still extended and released", async (kind, make) => {
    const lease = await make(`full-${kind}`).acquire();
    await fill();
    try {
      // A new lock is refused (new data)...
      await expect(make(`full-${kind}-new`).tryAcquire()).rejects.toThrow(/OOM/);
      // ...but the held lease keeps working, to a shorter time to live too.
      await lease.extend(30_000);
      expect(lease.remainingMs()).toBeGreaterThan(25_000);
      expect(lease.remainingMs()).toBeLessThanOrEqual(30_000);
      expect(lease.signal.aborted).toBe(false);
      expect(await lease.release()).toBe(true);
    } finally {
      await empty();
      await lease.release().catch(() => false);
    }
  });

  it("runOncePerTick: a run claimed before Redis filled up keeps its lease and has its outcome recorded", async () => {
    const observer = recordObserver();
    let filled = false;
    try {
      const { ran, state } = await runOncePerTick(
        redis,
        "full-tick",
        1,
        async ({ signal }) => {
          await fill();
          filled = true;
          // The automatic extensions (every ttlMs / 3) renew the lease while Redis is full. The first one reported
          // from here may have been sent before Redis filled up; the one after it was sent after.
          const isExtend = (op: { op: string }) => op.op === "extend";
          const first = await observer.waitForOperation(isExtend, { from: observer.ops.length });
          const second = await observer.waitForOperation(isExtend, { from: observer.ops.indexOf(first) + 1 });
          expect([first.outcome, second.outcome]).toEqual(["ok", "ok"]);
          expect(signal.aborted).toBe(false);
          return "done";
        },
        { prefix, ttlMs: 600, observer },
      );
      expect({ ran, state }).toEqual({ ran: true, state: "ok" });
      // The tick is not run again, and its run is in the history.
      const again = await runOncePerTick(redis, "full-tick", 1, () => "twice", { prefix });
      expect(again).toMatchObject({ ran: false, state: "ok" });
    } finally {
      if (filled) await empty();
    }
    const history = await tickHistory(redis, "full-tick", { prefix });
    expect(history.map((r) => [r.tick, r.ok])).toEqual([[1, true]]);
  });
});
