import { connect, type RedisClient } from "@coordis/core";
import { Redlock } from "@coordis/lock";
import { type FaultProxy, type RedisGroup, startProxy, startRedisGroup, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

// A lost round gives back what it may have won on every master. A master cut off at that moment (a partition longer
// than the command timeout) never gets that release: sent once, it would leave the grant blocking the master for its
// whole TTL. It is sent again until the master answers.
describe("Redlock: a lost round's release reaches a master cut off when it was sent", () => {
  let group: RedisGroup;
  /** One fault proxy in front of each master. */
  let proxies: FaultProxy[];
  /** Through the proxies. */
  let clients: RedisClient[];
  /** Straight to the masters, to look at keys from outside. */
  let admins: RedisClient[];
  beforeAll(async () => {
    group = await startRedisGroup(3);
    proxies = await Promise.all(group.servers.map((s) => startProxy({ target: s })));
    clients = proxies.map((p) => connect(p.url, { commandTimeoutMs: 1_500 }));
    admins = group.adminUrls.map((u) => connect(u));
    await Promise.all([...clients, ...admins].map((c) => c.ping()));
  });
  afterAll(async () => {
    for (const c of [...clients, ...admins]) c.disconnect();
    await Promise.all(proxies.map((p) => p.close()));
    await group.stop();
  });

  it("a grant on a partitioned master is released soon after the partition heals, long before its TTL", async () => {
    const key = `${prefix}:lock:{give-back}`;
    const lock = new Redlock(clients, "give-back", { prefix, ttlMs: 60_000, nodeTimeoutMs: 100 });
    await (await lock.acquire()).release(); // the scripts are cached on every master
    // Someone else holds masters 0 and 1: the round is lost whatever master 2 answers.
    for (const i of [0, 1]) await admins[i]?.set(key, "someone-else", "PX", 60_000);
    const proxy = proxies[2] as FaultProxy;
    const admin = admins[2] as RedisClient;
    // Master 2 gets the acquire a second late, and its answer would take another second: the round gives up on it,
    // and its release is sent once the acquire's call has timed out (1.5 s).
    proxy.setLatency(1_000);
    expect(await lock.tryAcquire()).toBeNull();
    // The acquire reached master 2 and granted the lock to a token nobody holds; then the partition starts (its answer,
    // still in the proxy, is lost with it).
    await waitUntil("master 2 to run the late acquire", async () => (await admin.exists(key)) === 1, 5_000);
    proxy.blackhole();
    proxy.setLatency(0);
    const discarded = proxy.stats().bytesDiscarded;
    // The release is sent into the partition.
    await waitUntil("the release to be lost in the partition", () => proxy.stats().bytesDiscarded > discarded, 5_000);
    expect(await admin.exists(key)).toBe(1);
    proxy.heal();
    await waitUntil("master 2 to drop the grant", async () => (await admin.exists(key)) === 0, 10_000);
    // The lock is free: someone else's locks on masters 0 and 1 gone, a quorum grants at once.
    for (const i of [0, 1]) await admins[i]?.del(key);
    const lease = await lock.tryAcquire();
    expect(lease).not.toBeNull();
    await lease?.release();
  });
});
