import { DurabilityError, type RedisClient, serverAtLeast } from "@coordis/core";
import { Mutex, Redlock, Semaphore } from "@coordis/lock";
import { countCommands, type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();
const aof = { replicas: 0, aof: true, timeoutMs: 200 } as const;

// `aof: true` asks for WAITAOF, which Redis < 7.2 does not have (the suite's Redis is 7.0): every durable acquire must
// fail at once with DurabilityError "unsupported", nothing sent (no script that could take the lock, no undo of it),
// and not be retried until waitMs as if Redis were unreachable.
describe("durability.aof: true on a Redis without WAITAOF", () => {
  let servers: RedisServer[];
  let clients: RedisClient[];
  beforeAll(async () => {
    servers = await Promise.all([0, 1, 2].map(() => startRedis()));
    clients = servers.map((s) => s.client({ commandTimeoutMs: 2_000 }));
    // Connected, scripts cached, and the server version read before counting.
    await (await new Redlock(clients, "warm", { prefix }).acquire()).release();
    for (const c of clients) expect(await serverAtLeast(c, "7.2.0")).toBe(false);
  });
  afterAll(async () => {
    for (const s of servers) await s.stop();
  });

  it("Redlock: acquire rejects at once with DurabilityError 'unsupported', nothing sent to any master", async () => {
    const redlock = new Redlock(clients, "rl", { prefix, durability: aof });
    const started = performance.now();
    const counted = await countCommands(servers, () => redlock.acquire({ waitMs: 3_000 }).catch((e: unknown) => e));
    expect(counted.result).toBeInstanceOf(DurabilityError);
    expect(counted.result).toMatchObject({ reason: "unsupported", operation: "lock/acquire" });
    // Not retried until waitMs (3 s) as an outage would be.
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(counted.sent).toEqual({});
  });

  it("Mutex and Semaphore: acquire rejects at once, nothing sent (no undo of a request that never left)", async () => {
    const mutex = new Mutex(clients[0] as RedisClient, "m", { prefix, durability: aof });
    const m = await countCommands(servers, () => mutex.acquire({ waitMs: 3_000 }).catch((e: unknown) => e));
    expect(m.result).toMatchObject({ reason: "unsupported", operation: "lock/acquire" });
    const semaphore = new Semaphore(clients[0] as RedisClient, "s", { prefix, permits: 2, durability: aof });
    const s = await countCommands(servers, () => semaphore.acquire({ waitMs: 3_000 }).catch((e: unknown) => e));
    expect(s.result).toMatchObject({ reason: "unsupported", operation: "lock/sem-acquire" });
    // The undo of an acquire is sent in the background: give it the time a reply would take, then count.
    const later = await countCommands(servers, () => (clients[0] as RedisClient).get(`${prefix}:after`));
    expect({ ...m.sent, ...s.sent, ...later.sent }).toEqual({ get: 1 });
  });
});
