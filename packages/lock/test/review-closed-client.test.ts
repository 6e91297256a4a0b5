import { connect, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { Mutex, Redlock, runOncePerTick } from "@coordis/lock";
import { recordObserver, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, inject, it } from "vitest";

const prefix = testPrefix();

// A client closed by the application (quit() or disconnect() during a shutdown) never answers again. Waiting for
// it to come back only delays the caller: a Mutex's acquire already fails at once there.
describe("a client closed by the application", () => {
  it("runOncePerTick: the outcome of a run whose client was closed is tried once, not until the lease ends", async () => {
    const redis = connect(inject("coordisRedisUrl"));
    await redis.ping();
    const rec = recordObserver();
    const err = await runOncePerTick(
      redis,
      "closed-mid-run",
      1,
      async () => {
        await redis.quit();
        return "done";
      },
      { prefix, ttlMs: 3_000, observer: rec },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisUnavailableError);
    // The finish is the lease's release: one attempt (the old code sent one every 50 ms doubling to 1 s until the
    // lease's validity ended, keeping the call and the process alive for up to ttlMs after the close).
    expect(rec.ops.filter((o) => o.op === "release").map((o) => o.outcome)).toEqual(["error"]);
    expect(rec.ops.filter((o) => o.op === "tick").map((o) => o.outcome)).toEqual(["error"]);
  });

  it("Redlock: acquire with a quorum of clients closed rejects at once, as a Mutex does, not after waitMs", async () => {
    // three masters (Redlock refuses one server counted twice): the shared server and two of the test's own
    const own = await Promise.all([startRedis(), startRedis()]);
    const clients = [connect(inject("coordisRedisUrl")), ...own.map((s) => connect(s.url))];
    await Promise.all(clients.map((c) => c.ping()));
    await Promise.all([clients[0]?.quit(), clients[1]?.quit()]);
    await waitUntil("the two clients to be closed", () => clients[0]?.status === "end" && clients[1]?.status === "end");
    const rec = recordObserver();
    const redlock = new Redlock(clients, "closed-quorum", { prefix, observer: rec });
    const err = await redlock.acquire({ waitMs: 3_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisUnavailableError);
    expect((err as Error).message).toMatch(/closed/);
    expect(rec.ops.map((o) => [o.outcome, o.attributes?.attempts])).toEqual([["error", 1]]);
    // The Mutex's behaviour on a closed client, for comparison.
    const mutexRec = recordObserver();
    const mutexErr = await new Mutex(clients[0] as RedisClient, "closed-quorum", { prefix, observer: mutexRec })
      .acquire({ waitMs: 3_000 })
      .catch((e: unknown) => e);
    expect(mutexErr).toBeInstanceOf(RedisUnavailableError);
    expect(mutexRec.ops.map((o) => [o.outcome, o.attributes?.attempts])).toEqual([["error", 1]]);
    for (const c of clients) c.disconnect();
    await Promise.all(own.map((s) => s.stop()));
  });
});
