import { connect, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { Mutex, Semaphore } from "@coordis/lock";
import { type FaultProxy, type RedisServer, startProxy, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

// using() "always releases". Its release, sent once, was lost in a blip (a command timeout, a dropped connection):
// the lock then stayed held by nobody for the rest of its time to live (just renewed by the automatic extension, so
// up to a whole ttlMs), as a grant nobody holds did before its give-back was sent again. The release is now sent
// again while Redis does not answer, until the lease's validity ends; the caller still hears of the first failure.
describe("using(): a release that gets no answer", () => {
  let server: RedisServer;
  let proxy: FaultProxy;
  let redis: RedisClient;
  let admin: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    proxy = await startProxy({ target: server });
    redis = connect(proxy.url, { commandTimeoutMs: 300 });
    redis.on("error", () => {});
    admin = server.adminClient();
    await Promise.all([redis.ping(), admin.ping()]);
  });
  afterAll(async () => {
    redis.disconnect();
    admin.disconnect();
    await proxy.close();
    await server.stop();
  });

  const locks = (name: string) => [
    { lock: new Mutex(redis, name, { prefix, ttlMs: 60_000 }), key: `${prefix}:lock:{${name}}` },
    { lock: new Semaphore(redis, name, { prefix, permits: 1, ttlMs: 60_000 }), key: `${prefix}:sem:{${name}}` },
  ];

  it("is sent again once Redis answers, whether fn returned or threw (Mutex, Semaphore)", async () => {
    for (const fails of [false, true]) {
      for (const { lock, key } of locks(`using-release-${fails}`)) {
        const boom = new Error("fn failed");
        const outcome = await lock
          .using(async () => {
            // Redis goes silent as fn ends: the release gets no answer.
            proxy.blackhole();
            if (fails) throw boom;
            return "done";
          })
          .catch((e: unknown) => e);
        if (fails) expect(outcome, key).toBe(boom);
        else expect(outcome, key).toBeInstanceOf(RedisUnavailableError);
        expect(await admin.exists(key), key).toBe(1);
        proxy.heal();
        // Freed long before the lease's 60 s would have run out.
        await waitUntil(`${key}: the release to be sent again`, async () => (await admin.exists(key)) === 0, 10_000);
        const next = await lock.tryAcquire();
        expect(next, key).not.toBeNull();
        await next?.release();
      }
    }
  });
});
