import { connect, type RedisClient } from "@coordis/core";
import { type Lease, LeaseLostError, Mutex, Redlock, Semaphore } from "@coordis/lock";
import {
  type RedisGroup,
  type RedisServer,
  recordObserver,
  startRedis,
  startRedisGroup,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

/** Waits until `lease.signal` aborts, then gives its reason. */
function lostReason(lease: Lease, timeoutMs: number): Promise<unknown> {
  return waitUntil("the lease to end", () => lease.signal.aborted, timeoutMs).then(() => lease.signal.reason);
}

// A Redis restarted without persistence mid-lease (no AOF: the lock and its fence counter are gone). The holder may
// not go on believing it holds: its next automatic extension finds the token gone, `lease.signal` aborts with
// LeaseLostError("not-held"), and using() still returns the routine's result, the lock free for the next caller.
describe("adversarial: a Redis restarted empty under a held lease", () => {
  let server: RedisServer;
  let redis: RedisClient;
  let other: RedisClient;
  beforeAll(async () => {
    server = await startRedis();
    redis = connect(server.url, { commandTimeoutMs: 500 });
    other = connect(server.url, { commandTimeoutMs: 500 });
    for (const c of [redis, other]) c.on("error", () => {});
    await Promise.all([redis.ping(), other.ping()]);
  });
  afterAll(async () => {
    redis.disconnect();
    other.disconnect();
    await server.stop();
  });

  it.each([
    ["Mutex", (c: RedisClient) => new Mutex(c, "restart-empty", { prefix, ttlMs: 6_000 })],
    ["Semaphore", (c: RedisClient) => new Semaphore(c, "restart-empty", { prefix, ttlMs: 6_000, permits: 1 })],
  ])(
    "%s: the holder's signal aborts with not-held at its next extension",
    async (_kind, make) => {
      const result = await make(redis).using(async (lease) => {
        await server.restart();
        const reason = await lostReason(lease, 10_000);
        expect(reason).toBeInstanceOf(LeaseLostError);
        expect((reason as LeaseLostError).reason).toBe("not-held");
        return "done";
      });
      expect(result).toBe("done");
      const next = await make(other).tryAcquire();
      expect(next).not.toBeNull();
      expect(await next?.release()).toBe(true);
    },
    20_000,
  );
});

// Redlock over three masters without persistence: one master restarted empty mid-lease costs nothing (the two others
// still confirm every extension), a second one restarted empty leaves only one master holding the token, and the
// lease is then lost ("not-held": two masters answered that the token is gone), not kept on one master's word.
describe("adversarial: Redlock masters restarted empty under a held lease", () => {
  let group: RedisGroup;
  let clients: RedisClient[];
  let others: RedisClient[];
  beforeAll(async () => {
    group = await startRedisGroup(3);
    clients = group.urls.map((u) => connect(u, { commandTimeoutMs: 500 }));
    others = group.urls.map((u) => connect(u, { commandTimeoutMs: 500 }));
    for (const c of [...clients, ...others]) c.on("error", () => {});
    await Promise.all([...clients, ...others].map((c) => c.ping()));
  });
  afterAll(async () => {
    for (const c of [...clients, ...others]) c.disconnect();
    await group.stop();
  });

  it("one master restarted empty: still extended; a second one: lost with not-held, and free for others", async () => {
    const observer = recordObserver();
    const lock = new Redlock(clients, "restart-empty", { prefix, ttlMs: 3_000, observer });
    const rival = new Redlock(others, "restart-empty", { prefix, ttlMs: 3_000 });
    const okExtensions = () => observer.ops.filter((o) => o.op === "extend" && o.outcome === "ok").length;
    await lock.using(async (lease) => {
      await (group.servers[0] as RedisServer).restart();
      const before = okExtensions();
      // Two more extensions confirmed by the two masters that kept their data.
      await waitUntil("two extensions after the restart", () => okExtensions() >= before + 2, 8_000);
      expect(lease.signal.aborted).toBe(false);
      expect(await rival.tryAcquire()).toBeNull();
      await (group.servers[1] as RedisServer).restart();
      const reason = await lostReason(lease, 8_000);
      expect(reason).toBeInstanceOf(LeaseLostError);
      expect((reason as LeaseLostError).reason).toBe("not-held");
    });
    // Master 2 is freed by using()'s release; the two restarted masters hold nothing.
    const next = await rival.acquire({ waitMs: 2_000 });
    expect(await next.release()).toBe(true);
  }, 30_000);
});
