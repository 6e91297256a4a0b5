import { connect, type RedisClient } from "@coordis/core";
import { Redlock } from "@coordis/lock";
import {
  type RedisGroup,
  type RedisServer,
  recordObserver,
  startRedisGroup,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

/** How long a master may take to answer again after a pause; errors meanwhile mean "not yet". */
const RECOVERY = { timeoutMs: 8_000, intervalMs: 50, ignoreErrors: true };

// One master of three stopped (SIGSTOP) while the other two answer at once: a quorum confirms every extension and
// release, so nothing may wait for the stopped master, and no lease may end because of it.
describe("Redlock with one of three masters paused", () => {
  let group: RedisGroup;
  let clients: RedisClient[];
  let admins: RedisClient[];
  let paused: RedisServer;
  beforeAll(async () => {
    group = await startRedisGroup(3);
    clients = group.urls.map((u) => connect(u, { commandTimeoutMs: 5_000 }));
    admins = group.adminUrls.map((u) => connect(u));
    await Promise.all([...clients, ...admins].map((c) => c.ping()));
    // Scripts cached on every master before one of them stops answering.
    await (await new Redlock(clients, "warm", { prefix }).acquire()).release();
    paused = group.servers[2] as RedisServer;
  });
  afterEach(async () => {
    if (paused.paused) paused.resume();
    await waitUntil("master 2 to answer again", async () => (await admins[2]?.ping()) === "PONG", RECOVERY);
  });
  afterAll(async () => {
    for (const c of [...clients, ...admins]) c.disconnect();
    await group.stop();
  });

  it("using(): the lease is extended again and again, never lost, though each acquire round waits nodeTimeoutMs", async () => {
    // The acquire round waits 250 ms for the paused master, leaving 342 ms of the 592 ms validity. An extension a
    // third of the ttl after that, waiting another 250 ms, would come back after the lease expired.
    const observer = recordObserver();
    const lock = new Redlock(clients, "using", { prefix, ttlMs: 600, nodeTimeoutMs: 250, observer });
    paused.pause();
    const outcomes = await lock.using(async () => {
      const seen: string[] = [];
      let from = observer.ops.length;
      while (seen.length < 5) {
        const op = await observer.waitForOperation((o) => o.op === "extend", { from, what: "an extension" });
        from = observer.ops.indexOf(op) + 1;
        seen.push(op.outcome);
        if (op.outcome !== "ok") break;
      }
      return seen;
    });
    expect(outcomes).toEqual(["ok", "ok", "ok", "ok", "ok"]);
    expect(observer.events.filter((e) => e.type === "lease-lost")).toEqual([]);
    // using() released it on the two masters that answer: the lock is free for a quorum at once.
    const key = `${prefix}:lock:{using}`;
    for (const i of [0, 1]) expect(await admins[i]?.exists(key), `master ${i}`).toBe(0);
    paused.resume();
    // Resumed, the paused master runs what was queued for it (the acquire, the extensions, the release) in order.
    await waitUntil("master 2 to drop the key", async () => (await admins[2]?.exists(key)) === 0, RECOVERY);
  });

  it("using(): after an acquire that took most of the validity, the first extension comes before the deadline", async () => {
    // The acquire round waits 1 100 ms for the paused master, leaving 383 ms of the 1 483 ms validity: an extension
    // a third of the ttl (500 ms) after acquire() returned would come after the lease expired.
    const observer = recordObserver();
    const lock = new Redlock(clients, "slow-acquire", { prefix, ttlMs: 1_500, nodeTimeoutMs: 1_100, observer });
    paused.pause();
    const first = await lock.using(async () => {
      const op = await observer.waitForOperation((o) => o.op === "extend", { from: 0, what: "an extension" });
      return op.outcome;
    });
    expect(first).toBe("ok");
    expect(observer.events.filter((e) => e.type === "lease-lost")).toEqual([]);
  });

  it("extend() is confirmed by the quorum that answered, even with nodeTimeoutMs beyond the lease", async () => {
    const key = `${prefix}:lock:{extend}`;
    const lock = new Redlock(clients, "extend", { prefix, ttlMs: 1_000, nodeTimeoutMs: 3_000 });
    const lease = await lock.acquire();
    paused.pause();
    await lease.extend(2_000);
    expect(lease.signal.aborted).toBe(false);
    expect(lease.remainingMs()).toBeGreaterThan(0);
    for (const i of [0, 1]) {
      expect(await admins[i]?.get(key), `master ${i}`).toBe(lease.token);
      expect(await admins[i]?.pttl(key), `master ${i}`).toBeGreaterThan(1_000);
    }
    // A quorum already answered "released": release() resolves while master 2 is still stopped.
    expect(await lease.release()).toBe(true);
    expect(paused.paused).toBe(true);
    paused.resume();
    await waitUntil("master 2 to drop the key", async () => (await admins[2]?.exists(key)) === 0, RECOVERY);
  });

  it("release() is confirmed by the quorum that answered, without waiting nodeTimeoutMs for the paused master", async () => {
    const key = `${prefix}:lock:{release}`;
    // Clients and a round that would wait a minute for the paused master: longer than this test's own timeout.
    const patient = group.urls.map((u) => connect(u, { commandTimeoutMs: 60_000 }));
    try {
      await Promise.all(patient.map((c) => c.ping()));
      const lock = new Redlock(patient, "release", { prefix, ttlMs: 5_000, nodeTimeoutMs: 60_000 });
      const lease = await lock.acquire();
      paused.pause();
      expect(await lease.release()).toBe(true);
      expect(paused.paused).toBe(true);
      for (const i of [0, 1]) expect(await admins[i]?.exists(key), `master ${i}`).toBe(0);
      // Resumed, master 2 runs the acquire and the release queued for it, in order: the lock is free everywhere.
      paused.resume();
      const next = await new Redlock(clients, "release", { prefix, ttlMs: 5_000 }).acquire({ waitMs: 5_000 });
      expect(next.fence).toBeGreaterThan(lease.fence);
      expect(await next.release()).toBe(true);
    } finally {
      for (const c of patient) c.disconnect();
    }
  }, 15_000);
});
