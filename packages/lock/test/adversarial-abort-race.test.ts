import { setTimeout as sleep } from "node:timers/promises";
import { connect, type RedisClient } from "@coordis/core";
import { type Lease, Mutex, Redlock, Semaphore } from "@coordis/lock";
import {
  type FaultProxy,
  mulberry32,
  type RedisServer,
  randomSeed,
  startProxy,
  startRedis,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

// Aborts landing at every stage of an acquisition: before the first attempt, while its request is on a slow link,
// in the microtasks between its answer and acquire() settling, and while it backs off between attempts. Whatever
// the moment, an aborted acquire() rejects with the signal's own reason, a resolved one hands out a lease that
// holds the lock, and nothing stays held by nobody: once every lease handed out is released, the lock is free at
// once, not after its 60 s time to live.
describe("adversarial: aborts racing acquisition", () => {
  let servers: RedisServer[];
  let proxies: FaultProxy[];
  let clients: RedisClient[];
  let admins: RedisClient[];
  beforeAll(async () => {
    servers = await Promise.all([startRedis(), startRedis(), startRedis()]);
    proxies = await Promise.all(servers.map((s) => startProxy({ target: s })));
    clients = proxies.map((p) => connect(p.url));
    admins = servers.map((s) => connect(s.url));
    await Promise.all([...clients, ...admins].map((c) => c.ping()));
    proxies.forEach((p, i) => {
      p.setLatency(1 + i, 1);
    });
  });
  afterAll(async () => {
    for (const c of [...clients, ...admins]) c.disconnect();
    await Promise.all(proxies.map((p) => p.close()));
    await Promise.all(servers.map((s) => s.stop()));
  });

  const seed = randomSeed();
  const cases: Array<[string, (name: string) => Mutex | Semaphore | Redlock, string]> = [
    ["Mutex", (name) => new Mutex(clients[0] as RedisClient, name, { prefix, ttlMs: 60_000 }), "lock"],
    [
      "Semaphore",
      (name) => new Semaphore(clients[0] as RedisClient, name, { prefix, ttlMs: 60_000, permits: 2 }),
      "sem",
    ],
    ["Redlock", (name) => new Redlock(clients, name, { prefix, ttlMs: 60_000 }), "lock"],
  ];

  it.each(cases)(
    `%s: an abort at any moment leaves nothing held by nobody (seed ${seed})`,
    async (kind, make, k) => {
      const rand = mulberry32(seed);
      const name = `abort-race-${kind}`;
      const lock = make(name);
      const key = `${prefix}:${k}:{${name}}`;
      const handedOut: Lease[] = [];
      let aborted = 0;
      const one = async () => {
        const controller = new AbortController();
        const reason = new Error("caller gave up");
        const when = rand();
        if (when < 0.1) queueMicrotask(() => controller.abort(reason));
        else if (when < 0.2) setImmediate(() => controller.abort(reason));
        else if (when < 0.85) setTimeout(() => controller.abort(reason), Math.floor(rand() * 12));
        // Some callers never give up: however slow the machine, leases are handed out too.
        try {
          const lease = await lock.acquire({ waitMs: 5_000, signal: controller.signal });
          handedOut.push(lease);
          // A lease handed out holds the lock: its extension is confirmed.
          await lease.extend();
          await sleep(Math.floor(rand() * 3));
          expect(await lease.release()).toBe(true);
        } catch (err) {
          expect(err).toBe(reason);
          aborted++;
        }
      };
      for (let round = 0; round < 25; round++) await Promise.all(Array.from({ length: 8 }, one));
      expect(aborted).toBeGreaterThan(0);
      expect(handedOut.length).toBeGreaterThan(0);
      // Every lease handed out was released; what aborted attempts won is given back too, once those attempts (still
      // out in the background when their acquire() rejected) have come back: the lock is free again, for everyone.
      await waitUntil(
        `${kind}: nothing held, and the lock free for a new caller`,
        async () => {
          const held = await Promise.all(admins.map((a) => a.exists(key)));
          if (held.some((h) => h !== 0)) return false;
          const again = await lock.tryAcquire();
          return again !== null && (await again.release());
        },
        5_000,
      );
    },
    60_000,
  );
});
