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
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

type Lock = Mutex | Semaphore | Redlock;

/** Blocks this process' event loop for `ms` (a GC pause, a slow synchronous parse). */
function blockEventLoop(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // spin
  }
}

/**
 * Several clients of one lock, two of them through a faulty link (latency with jitter, dropped connections, short
 * partitions), holders that block the event loop past their TTL. The checked promise: a lease is handed out only once
 * every other lease of the name has locally expired or ended (Mutex, Redlock), or fewer than `permits` others are
 * still valid (Semaphore) — `signal.aborted` read at that moment — and every new lease's fence is above all fences
 * handed out before it (a Semaphore's: never one handed out before).
 */
async function chaos(opts: {
  locks: Lock[];
  permits: number;
  proxies: FaultProxy[];
  seed: number;
  durationMs: number;
  ttlMs: number;
}): Promise<{ leases: number; violations: string[] }> {
  const rand = mulberry32(opts.seed);
  const live = new Set<Lease>();
  const violations: string[] = [];
  let highest = 0;
  const fences = new Set<number>();
  let leases = 0;
  const until = performance.now() + opts.durationMs;
  const enter = (lease: Lease) => {
    leases++;
    const valid = [...live].filter((l) => !l.signal.aborted);
    if (valid.length >= opts.permits) {
      violations.push(
        `fence ${lease.fence} handed out while ${valid.length} lease(s) still valid: ${valid
          .map((l) => `${l.fence} (${l.remainingMs().toFixed(1)} ms left)`)
          .join(", ")}`,
      );
    }
    // A Semaphore's concurrent holders get their fences in Redis' order, not in the order their answers arrive.
    if (opts.permits === 1 ? lease.fence <= highest : fences.has(lease.fence)) {
      violations.push(`fence ${lease.fence} after ${highest}`);
    }
    fences.add(lease.fence);
    highest = Math.max(highest, lease.fence);
    live.add(lease);
  };
  const worker = async (lock: Lock) => {
    while (performance.now() < until) {
      const r = rand();
      try {
        if (r < 0.5) {
          await lock.using(
            async (lease) => {
              enter(lease);
              try {
                if (rand() < 0.08) blockEventLoop(opts.ttlMs * (0.5 + rand()));
                await sleep(Math.floor(rand() * opts.ttlMs));
              } finally {
                live.delete(lease);
              }
            },
            { waitMs: Math.floor(rand() * 2 * opts.ttlMs) },
          );
        } else {
          const lease = await lock.acquire({
            waitMs: Math.floor(rand() * 2 * opts.ttlMs),
            signal: AbortSignal.timeout(1 + Math.floor(rand() * opts.ttlMs)),
          });
          enter(lease);
          if (rand() < 0.5) await lease.extend().catch(() => {});
          if (rand() < 0.05) blockEventLoop(opts.ttlMs * (0.5 + rand()));
          await sleep(Math.floor((rand() * opts.ttlMs) / 2));
          live.delete(lease);
          await lease.release().catch(() => {});
        }
      } catch {
        await sleep(1);
      }
    }
  };
  const faults = async () => {
    while (performance.now() < until) {
      await sleep(20 + Math.floor(rand() * 100));
      const proxy = opts.proxies[Math.floor(rand() * opts.proxies.length)] as FaultProxy;
      const f = rand();
      if (f < 0.3) proxy.setLatency(Math.floor(rand() * 15), Math.floor(rand() * 10));
      else if (f < 0.45) proxy.dropConnections();
      else if (f < 0.6) {
        proxy.blackhole();
        await sleep(Math.floor(rand() * opts.ttlMs));
        proxy.heal();
      } else proxy.setLatency(0);
    }
    for (const p of opts.proxies) {
      p.setLatency(0);
      p.heal();
    }
  };
  await Promise.all([faults(), ...opts.locks.flatMap((l) => [worker(l), worker(l)])]);
  return { leases, violations };
}

describe("adversarial: leases under a faulty link and a blocked event loop", () => {
  let servers: RedisServer[];
  let proxies: FaultProxy[];
  let clients: RedisClient[];
  beforeAll(async () => {
    servers = await Promise.all([startRedis(), startRedis(), startRedis()]);
    proxies = await Promise.all(servers.map((s) => startProxy({ target: s })));
    clients = [
      ...proxies.map((p) => connect(p.url, { commandTimeoutMs: 100 })),
      ...proxies.map((p) => connect(p.url, { commandTimeoutMs: 100 })),
      ...servers.map((s) => connect(s.url, { commandTimeoutMs: 100 })),
    ];
    for (const c of clients) c.on("error", () => {});
    await Promise.all(clients.map((c) => c.ping()));
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await Promise.all(proxies.map((p) => p.close()));
    await Promise.all(servers.map((s) => s.stop()));
  });

  const seed = randomSeed();
  const ttlMs = 200;
  const on = (i: number) => [clients[i], clients[i + 3], clients[i + 6]] as RedisClient[];

  it(`Mutex: no lease handed out while another is still valid; fences only go up (seed ${seed})`, async () => {
    const locks = on(0).map((c) => new Mutex(c, "chaos-mutex", { prefix, ttlMs }));
    const { leases, violations } = await chaos({
      locks,
      permits: 1,
      proxies: [proxies[0] as FaultProxy],
      seed,
      durationMs: 5_000,
      ttlMs,
    });
    expect(violations).toEqual([]);
    expect(leases).toBeGreaterThan(10);
  }, 30_000);

  it(`Semaphore: never more than permits valid leases; fences only go up (seed ${seed})`, async () => {
    const locks = on(0).map((c) => new Semaphore(c, "chaos-sem", { prefix, ttlMs, permits: 2 }));
    const { leases, violations } = await chaos({
      locks,
      permits: 2,
      proxies: [proxies[0] as FaultProxy],
      seed,
      durationMs: 5_000,
      ttlMs,
    });
    expect(violations).toEqual([]);
    expect(leases).toBeGreaterThan(10);
  }, 30_000);

  it(`Redlock: no lease handed out while another is still valid; fences only go up (seed ${seed})`, async () => {
    // Counters that disagree, so that winning rounds raise the masters behind, under the same faults.
    await Promise.all(
      [300, 150, 0].map((f, i) => (clients[6 + i] as RedisClient).set(`${prefix}:lock:{chaos-rl}:fence`, f)),
    );
    const locks = [0, 3, 6].map(
      (k) => new Redlock([clients[k], clients[k + 1], clients[k + 2]] as RedisClient[], "chaos-rl", { prefix, ttlMs }),
    );
    const { leases, violations } = await chaos({ locks, permits: 1, proxies, seed, durationMs: 5_000, ttlMs });
    expect(violations).toEqual([]);
    expect(leases).toBeGreaterThan(10);
  }, 30_000);
});
